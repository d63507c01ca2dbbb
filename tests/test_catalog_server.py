"""`phlo catalog serve` as other engines see it: a real server process on 127.0.0.1 and
PyIceberg's RestCatalog as the client, on main and on a branch URI, with concurrent writers
and a token."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NoSuchTableError, UnauthorizedError
from pyiceberg.types import StringType
from tests.conftest import EVENTS_SCHEMA, make_events
from tests.duckdb_support import duckdb_rest

import phlo

SERVE = "from phlo.cli import main; main()"


@contextlib.contextmanager
def served(root: Path, *options: str) -> Iterator[str]:
    """`phlo catalog serve` on a free port of 127.0.0.1; yields the URI it prints. On exit
    stops it with SIGTERM and checks that it stopped cleanly."""
    command = [sys.executable, "-c", SERVE, "--root", str(root), "catalog", "serve"]
    proc = subprocess.Popen(
        [*command, "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        uri = next((line.split()[-1] for line in proc.stdout if "main:" in line), None)
        assert uri is not None, proc.stderr.read() if proc.stderr else ""
        yield uri
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in out


def by_id(table: pa.Table) -> list[dict]:
    return sorted(table.select(["id", "category", "value"]).to_pylist(), key=lambda r: r["id"])


@pytest.fixture
def seeded(lh: phlo.Lakehouse, events_table: phlo.Table) -> phlo.Lakehouse:
    events_table.append(make_events(0, 40))
    return lh


def test_pyiceberg_lists_loads_scans_appends_and_creates(seeded: phlo.Lakehouse):
    lh = seeded
    with served(lh.root) as uri:
        catalog = RestCatalog("phlo", uri=uri)
        assert catalog.list_namespaces() == [("raw",)]
        assert catalog.list_tables("raw") == [("raw", "events")]
        table = catalog.load_table("raw.events")
        assert by_id(table.scan().to_arrow()) == by_id(lh.table("raw.events").scan().to_arrow())

        table.append(make_events(100, 10))
        expected = make_events(0, 40).to_pylist() + make_events(100, 10).to_pylist()
        read = lh.table("raw.events").scan().to_arrow()
        assert sorted(r["id"] for r in read.to_pylist()) == sorted(r["id"] for r in expected)
        entry = lh.log("main", limit=1)[0]
        assert entry.tables == ["raw.events"]
        assert entry.message.startswith("append raw.events")
        assert entry.author.startswith("PyIceberg/")

        schema = pa.schema([pa.field("id", pa.int64()), pa.field("city", pa.string())])
        cities = catalog.create_table("raw.cities", schema=schema)
        rows = pa.table({"id": [1, 2, 3], "city": ["Oslo", "Lima", "Pune"]}, schema=schema)
        cities.append(rows)
        assert lh.table("raw.cities").scan().to_arrow().sort_by("id").to_pylist() == (
            rows.to_pylist()
        )
        with pytest.raises(NoSuchTableError):
            catalog.load_table("raw.nope")

        # A staged create: the table and its first rows land in one commit.
        with catalog.create_table_transaction("raw.towns", schema=schema) as tx:
            tx.append(rows)
        assert lh.table("raw.towns").scan().to_arrow().num_rows == 3
        assert lh.log("main", limit=1)[0].message == "create table raw.towns (iceberg-rest)"


def test_a_branch_uri_writes_to_that_branch_and_phlo_merges_it(seeded: phlo.Lakehouse):
    lh = seeded
    lh.create_branch("dev")
    with served(lh.root) as uri:
        dev = RestCatalog("dev", uri=f"{uri}/iceberg/dev")
        dev.load_table("raw.events").append(make_events(500, 7))
        assert lh.table("raw.events", ref="dev").scan().to_arrow().num_rows == 47
        main = RestCatalog("main", uri=f"{uri}/iceberg")
        assert main.load_table("raw.events").scan().to_arrow().num_rows == 40
        assert lh.table("raw.events").scan().to_arrow().num_rows == 40
        assert lh.log("dev", limit=1)[0].tables == ["raw.events"]

        lh.merge("dev")
        assert main.load_table("raw.events").scan().to_arrow().num_rows == 47


def test_a_tag_uri_reads_and_refuses_writes(seeded: phlo.Lakehouse):
    lh = seeded
    lh.create_tag("v1")
    with served(lh.root) as uri:
        tag = RestCatalog("v1", uri=f"{uri}/iceberg/v1")
        table = tag.load_table("raw.events")
        assert table.scan().to_arrow().num_rows == 40
        with pytest.raises(Exception, match="tag"):
            table.append(make_events(900, 3))
    assert lh.table("raw.events", ref="v1").scan().to_arrow().num_rows == 40


WRITER = """
import datetime as dt
import sys

import pyarrow as pa
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import CommitFailedException

uri, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
catalog = RestCatalog("w", uri=uri)
schema = catalog.load_table("raw.events").schema().as_arrow()
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    ids = range(start + i * 10, start + i * 10 + 10)
    ts = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = pa.table(
        {"id": list(ids), "ts": [ts] * 10, "category": ["w"] * 10, "value": [1.0] * 10},
        schema=schema,
    )
    while True:
        try:
            catalog.load_table("raw.events").append(rows)
            break
        except CommitFailedException:
            continue  # another writer won: reload and append again
print("done", flush=True)
"""


def test_concurrent_appends_through_the_server_lose_no_commit(seeded: phlo.Lakehouse):
    lh = seeded
    writers, appends = 3, 3
    with served(lh.root) as uri:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, uri, str(1000 * (w + 1)), str(appends)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for w in range(writers)
        ]
        try:
            for proc in procs:  # the barrier: every writer connected before any writes
                assert proc.stdout is not None
                assert proc.stdout.readline().strip() == "ready", proc.communicate()[1]
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            for proc in procs:
                out, err = proc.communicate(timeout=300)
                assert proc.returncode == 0, err
                assert out.strip() == "done"
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    ids = sorted(lh.table("raw.events").scan().to_arrow().column("id").to_pylist())
    expected = list(range(40)) + [
        1000 * (w + 1) + i * 10 + k
        for w in range(writers)
        for i in range(appends)
        for k in range(10)
    ]
    assert ids == sorted(expected)
    logged = [e for e in lh.log("main") if e.message.startswith("append raw.events (")]
    assert len(logged) == writers * appends


def test_a_token_protected_server_rejects_clients_without_it(seeded: phlo.Lakehouse):
    with served(seeded.root, "--token", "s3cret") as uri:
        with pytest.raises(UnauthorizedError, match="NotAuthorizedException"):
            RestCatalog("anon", uri=uri).list_namespaces()
        with pytest.raises(UnauthorizedError, match="NotAuthorizedException"):
            RestCatalog("wrong", uri=uri, token="guess").list_namespaces()
        assert RestCatalog("t", uri=uri, token="s3cret").list_namespaces() == [("raw",)]
        oauth = RestCatalog(
            "c", uri=uri, credential="me:s3cret", **{"oauth2-server-uri": f"{uri}/v1/oauth/tokens"}
        )
        assert oauth.list_tables("raw") == [("raw", "events")]


def http_error(uri: str, method: str, path: str, body: object | bytes | None = None) -> dict:
    """The Iceberg error a request gets (it must fail)."""
    data = body if isinstance(body, bytes | None) else json.dumps(body).encode()
    request = urllib.request.Request(uri + path, data=data, method=method)
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(request, timeout=30)
    error = json.loads(failure.value.read())["error"]
    assert error["code"] == failure.value.code and error["type"] and error["message"]
    return error


def test_bad_requests_get_icebergs_error_model(seeded: phlo.Lakehouse):
    events = "/v1/main/namespaces/raw/tables/events"
    with served(seeded.root) as uri:
        assert http_error(uri, "POST", events, b"{not json")["code"] == 400
        assert http_error(uri, "POST", events, b'{"updates": 1}')["code"] == 400
        missing = http_error(uri, "POST", "/v1/main/namespaces/raw/tables/nope", {"updates": []})
        assert (missing["code"], missing["type"]) == (404, "NoSuchTableException")
        assert http_error(uri, "GET", "/v1/main/namespaces/..%2Fetc/tables")["code"] == 400
        assert http_error(uri, "GET", "/v2/anything")["code"] == 404

        # The body's framing: a bad Content-Length is a 400; a chunked body is read.
        host, port = uri.removeprefix("http://").split(":")
        bad = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            bad.putrequest("POST", "/v1/main/namespaces")
            bad.putheader("Content-Length", "12x")
            bad.endheaders()
            response = bad.getresponse()
            assert response.status == 400
            assert json.loads(response.read())["error"]["type"] == "BadRequestException"
        finally:
            bad.close()
        chunked = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            chunks = iter([b'{"namespace": ', b'["chunky"]}'])
            chunked.request("POST", "/v1/main/namespaces", body=chunks, encode_chunked=True)
            response = chunked.getresponse()
            assert response.status == 200, response.read()
            response.read()
        finally:
            chunked.close()
        assert "chunky" in seeded.namespaces()

        # A requirement that no longer holds: 409, and the table stays where phlo put it.
        stale = seeded.table("raw.events").current_snapshot_id
        seeded.table("raw.events").append(make_events(60, 5))
        after_phlo = seeded.table("raw.events").metadata_location
        commit = {
            "requirements": [
                {"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": stale}
            ],
            "updates": [{"action": "set-properties", "updates": {"late": "yes"}}],
        }
        conflict = http_error(uri, "POST", events, commit)
        assert (conflict["code"], conflict["type"]) == (409, "CommitFailedException")
    assert seeded.table("raw.events").metadata_location == after_phlo


def test_a_stale_spec_or_schema_requirement_is_a_409_and_an_unknown_one_a_400(
    seeded: phlo.Lakehouse,
):
    """Another engine changed the default spec and the schema without moving main: a commit
    that still asserts the old ones is refused, though its ref requirement holds."""
    events = "/v1/main/namespaces/raw/tables/events"
    head = seeded.table("raw.events").current_snapshot_id
    with served(seeded.root) as uri:
        table = RestCatalog("other", uri=uri).load_table("raw.events")
        spec, schema = table.metadata.default_spec_id, table.metadata.current_schema_id
        with table.update_spec() as update:
            update.add_identity("category")
        with table.update_schema() as update:
            update.add_column("note", StringType())
        evolved = seeded.table("raw.events").metadata_location
        ref = {"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": head}
        stale = [
            {"type": "assert-default-spec-id", "default-spec-id": spec},
            {"type": "assert-current-schema-id", "current-schema-id": schema},
        ]
        late = [{"action": "set-properties", "updates": {"late": "yes"}}]
        for requirement in stale:
            commit = {"requirements": [ref, requirement], "updates": late}
            conflict = http_error(uri, "POST", events, commit)
            assert (conflict["code"], conflict["type"]) == (409, "CommitFailedException")
        unknown = {"requirements": [ref, {"type": "assert-nothing-changed"}], "updates": late}
        refused = http_error(uri, "POST", events, unknown)
        assert (refused["code"], refused["type"]) == (400, "BadRequestException")
        assert seeded.table("raw.events").metadata_location == evolved
        # The requirements as they hold now: the commit lands.
        now = table.refresh().metadata
        holds = [
            ref,
            {"type": "assert-default-spec-id", "default-spec-id": now.default_spec_id},
            {"type": "assert-current-schema-id", "current-schema-id": now.current_schema_id},
        ]
        request = urllib.request.Request(
            uri + events,
            data=json.dumps({"requirements": holds, "updates": late}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
    assert seeded.table("raw.events").properties["late"] == "yes"


def test_ctrl_c_stops_the_server_and_a_busy_port_is_an_error(seeded: phlo.Lakehouse):
    command = [sys.executable, "-c", SERVE, "--root", str(seeded.root), "catalog", "serve"]
    proc = subprocess.Popen(
        [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    uri = next(line.split()[-1] for line in proc.stdout if "main:" in line)
    port = uri.rsplit(":", 1)[1]
    busy = subprocess.run([*command, "--port", port], capture_output=True, text=True, timeout=60)
    assert busy.returncode == 4
    assert busy.stderr.startswith("[address_in_use]") and "hint:" in busy.stderr
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out


def test_duckdb_attaches_reads_and_inserts_on_a_branch(lh: phlo.Lakehouse):
    table = lh.create_table("raw.flat", EVENTS_SCHEMA)
    table.append(make_events(0, 40))
    lh.create_branch("dev")
    expected = make_events(0, 40).to_pylist()
    with served(lh.root, "--log-requests") as uri:
        [read] = duckdb_rest(
            uri,
            "main",
            ["SELECT count(*), min(id), max(id), sum(value) FROM lake.raw.flat"],
        )
        assert read == [[40, 0, 39, sum(r["value"] for r in expected)]]

        insert = "INSERT INTO lake.raw.flat VALUES (1000, TIMESTAMPTZ '2024-01-02 00:00:00+00', 'd', 1.5)"
        _, after = duckdb_rest(uri, "dev", [insert, "SELECT count(*) FROM lake.raw.flat"])
        assert after == [[41]]
        entry = lh.log("dev", limit=1)[0]
        assert (entry.tables, entry.message) == (["raw.flat"], "append raw.flat (iceberg-rest)")
        assert entry.author.startswith("duckdb/")
        dev = RestCatalog("dev", uri=f"{uri}/iceberg/dev").load_table("raw.flat").scan().to_arrow()
        assert sorted(dev.column("id").to_pylist()) == [*range(40), 1000]
        main = RestCatalog("main", uri=uri)
        assert main.load_table("raw.flat").scan().to_arrow().num_rows == 40

        # CREATE TABLE is a staged create, committed with the INSERT's transaction or alone.
        create = "CREATE TABLE lake.raw.made (id BIGINT, name VARCHAR)"
        insert = "INSERT INTO lake.raw.made VALUES (1, 'a'), (2, 'b')"
        *_, made = duckdb_rest(uri, "dev", [create, insert, "FROM lake.raw.made"])
        assert sorted(made) == [[1, "a"], [2, "b"]]
        dev_catalog = RestCatalog("dev", uri=f"{uri}/iceberg/dev")
        assert dev_catalog.load_table("raw.made").scan().to_arrow().num_rows == 2
        assert ("raw", "made") not in main.list_tables("raw")

        lh.merge("dev")
        assert main.load_table("raw.flat").scan().to_arrow().num_rows == 41
        assert main.load_table("raw.made").scan().to_arrow().num_rows == 2


def test_json_output_and_usage_errors(seeded: phlo.Lakehouse):
    command = [sys.executable, "-c", SERVE, "--root", str(seeded.root), "catalog", "serve"]
    proc = subprocess.Popen([*command, "--port", "0", "--json"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.rstrip() == "}":
            break
    shown = json.loads("".join(lines))
    assert shown["uri"].startswith("http://127.0.0.1:") and shown["token"] is False
    assert RestCatalog("phlo", uri=shown["uri"]).list_namespaces() == [("raw",)]
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 0

    alone = subprocess.run(
        [*command, "--catalog", "sqlite:///x.db"], capture_output=True, text=True
    )
    assert alone.returncode == 2
    assert alone.stderr.startswith("[usage]") and "--warehouse" in alone.stderr
