"""Storage credentials handed out by the REST catalog: a lakehouse on SeaweedFS (S3) served by
`phlo catalog serve`'s server, and clients that have no S3 keys at all. Without
`vend_credentials` such a client is refused, typed and naming the missing keys; with it, the
load-table answers carry the warehouse's storage properties and phlo's client and PyIceberg's
RestCatalog read and write the tables' files with them, and a keyless client's transaction
re-applies its appends after losing a race, and cleans up after itself, with them too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pytest
from pyarrow.fs import FileSelector, FileType, S3FileSystem
from pyiceberg.catalog.rest import RestCatalog

import phlo
from phlo.catalog_server import CatalogServer
from phlo.errors import ConfigError
from seaweedfs_server import ACCESS_KEY, SECRET_KEY, S3Server

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])


def rows(ids: range, tag: str) -> pa.Table:
    return pa.table({"id": list(ids), "v": [tag] * len(ids)}, schema=SCHEMA)


def model_of(table: pa.Table) -> dict[int, str]:
    data = table.to_pydict()
    return dict(zip(data["id"], data["v"], strict=True))


@pytest.fixture
def served_lh(
    tmp_path: Path, s3_server: S3Server, s3_warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> phlo.Lakehouse:
    """A lakehouse on S3 (the SQLite catalog, SeaweedFS's keys) with `raw.t` holding 0..9; the
    test process itself has no AWS keys in its environment."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    lh = phlo.Lakehouse.connect(
        f"sqlite:///{tmp_path / 'catalog.db'}", s3_warehouse, s3_server.properties()
    )
    lh.create_namespace("raw")
    lh.create_table("raw.t", SCHEMA).append(rows(range(10), "served"))
    return lh


def test_a_client_without_keys_is_refused_naming_them_when_nothing_is_vended(
    served_lh: phlo.Lakehouse,
) -> None:
    with CatalogServer(served_lh, port=0) as server:
        client = phlo.Lakehouse.connect(server.uri, served_lh.warehouse)
        table = client.table("raw.t")
        with pytest.raises(ConfigError, match=r"no S3 credentials for table raw\.t") as refused:
            table.to_arrow()
        assert "s3.access-key-id" in str(refused.value)
        assert "--vend-credentials" in str(refused.value)
        with pytest.raises(ConfigError, match=r"s3\.secret-access-key"):
            table.append(rows(range(100, 101), "client"))
    assert model_of(served_lh.table("raw.t").to_arrow()) == model_of(rows(range(10), "served"))


def test_vended_credentials_let_clients_without_keys_read_and_write(
    served_lh: phlo.Lakehouse,
) -> None:
    model = model_of(rows(range(10), "served"))
    with CatalogServer(served_lh, port=0, vend_credentials=True) as server:
        client = phlo.Lakehouse.connect(server.uri, served_lh.warehouse)
        table = client.table("raw.t")
        assert model_of(table.to_arrow()) == model
        table.append(rows(range(100, 105), "client"))
        table.merge(rows(range(5, 12), "merged"), "id")
        model.update(model_of(rows(range(100, 105), "client")))
        model.update(model_of(rows(range(5, 12), "merged")))
        assert model_of(table.to_arrow()) == model
        # A table the client creates gets the same handed-out properties.
        created = client.create_table("raw.new", SCHEMA)
        created.append(rows(range(3), "new"))
        assert model_of(client.table("raw.new").to_arrow()) == model_of(rows(range(3), "new"))

        # PyIceberg's RestCatalog, given no storage properties, applies the answer's config.
        pyiceberg = RestCatalog("phlo", uri=server.uri)
        assert model_of(pyiceberg.load_table("raw.t").scan().to_arrow()) == model
        # The keys are in the load answer (that is the feature), never in phlo's messages.
        with pytest.raises(phlo.errors.NoSuchTableError) as missing:
            client.table("raw.nope")
        assert SECRET_KEY not in str(missing.value)
        assert SECRET_KEY not in repr(client)
    assert model_of(served_lh.table("raw.t").to_arrow()) == model


def objects(s3_server: S3Server, prefix: str) -> set[str]:
    """Every object under `prefix` (`s3://bucket/key`), listed with the server's own keys."""
    endpoint = urlsplit(s3_server.endpoint)
    fs = S3FileSystem(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme,
        region="us-east-1",
    )
    listed = fs.get_file_info(FileSelector(prefix.removeprefix("s3://"), recursive=True))
    return {info.path for info in listed if info.type == FileType.File}


def referenced(catalog: RestCatalog, name: str) -> set[str]:
    """The manifest lists and manifests the table's snapshots reference (bucket/key)."""
    table = catalog.load_table(name)
    paths = set()
    for snapshot in table.snapshots():
        paths.add(snapshot.manifest_list)
        paths.update(m.manifest_path for m in snapshot.manifests(table.io))
    return {p.removeprefix("s3://") for p in paths}


def test_a_keyless_transaction_re_applied_after_a_race_uses_the_vended_credentials(
    served_lh: phlo.Lakehouse, s3_server: S3Server
) -> None:
    model = model_of(rows(range(10), "served"))
    metadata = f"{served_lh.warehouse}/raw.db/t/metadata"
    with CatalogServer(served_lh, port=0, vend_credentials=True) as server:
        client = phlo.Lakehouse.connect(server.uri, served_lh.warehouse)
        with client.transaction() as tx:
            tx.table("raw.t").append(rows(range(100, 105), "tx"))
            # Another writer moves raw.t first: the commit loses (409), then re-applies the
            # append on the new head, reading and writing manifests with the table's keys.
            served_lh.table("raw.t").append(rows(range(200, 203), "other"))
        assert tx.result is not None and tx.result.rebased == ["raw.t"]
        model.update(model_of(rows(range(100, 105), "tx")))
        model.update(model_of(rows(range(200, 203), "other")))
        assert model_of(client.table("raw.t").to_arrow()) == model
        # The first attempt's manifest and manifest list were removed; nothing else was.
        avro = {p for p in objects(s3_server, metadata) if p.endswith(".avro")}
        assert avro == referenced(RestCatalog("phlo", uri=server.uri), "raw.t")
    assert model_of(served_lh.table("raw.t").to_arrow()) == model


def test_a_keyless_transaction_that_raises_removes_its_files_with_the_vended_credentials(
    served_lh: phlo.Lakehouse, s3_server: S3Server
) -> None:
    before = objects(s3_server, served_lh.warehouse)
    with CatalogServer(served_lh, port=0, vend_credentials=True) as server:
        client = phlo.Lakehouse.connect(server.uri, served_lh.warehouse)
        with pytest.raises(RuntimeError, match="the block failed"):
            with client.transaction() as tx:
                tx.table("raw.t").append(rows(range(100, 105), "tx"))
                tx.table("raw.t").merge(rows(range(0, 3), "upserted"), "id")
                assert objects(s3_server, served_lh.warehouse) != before
                raise RuntimeError("the block failed")
    # Data files, manifests and manifest lists of both writes are gone; the table is as it was.
    assert objects(s3_server, served_lh.warehouse) == before
    assert model_of(served_lh.table("raw.t").to_arrow()) == model_of(rows(range(10), "served"))


def test_the_cli_flag_vends_the_servers_keys(
    tmp_path: Path, s3_server: S3Server, s3_warehouse: str
) -> None:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = phlo.Lakehouse.connect(catalog, s3_warehouse, s3_server.properties())
    lh.create_namespace("raw")
    lh.create_table("raw.t", SCHEMA).append(rows(range(4), "cli"))
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    env["AWS_ENDPOINT_URL"] = s3_server.endpoint
    command = [sys.executable, "-c", "from phlo.cli import main; main()", "catalog", "serve"]
    command += ["--catalog", catalog, "--warehouse", s3_warehouse, "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--vend-credentials"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_base_env(), **env},
    )
    assert proc.stdout is not None
    try:
        printed = [next(proc.stdout) for _ in range(5)]
        uri = next(line.split()[-1] for line in printed if "main:" in line)
        assert any("trusted networks only" in line for line in printed), printed
        client = phlo.Lakehouse.connect(uri, s3_warehouse)
        assert model_of(client.table("raw.t").to_arrow()) == model_of(rows(range(4), "cli"))
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _base_env() -> dict[str, str]:
    """The environment without AWS keys (they are the test's to give)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
