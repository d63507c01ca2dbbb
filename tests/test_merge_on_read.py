"""Merge-on-read merges and deletes (position-delete files) driven from Python: a reference
model (a dict by key) that phlo and PyIceberg both match at every snapshot, in each write mode
with compactions in between; `set_properties` and the `write_mode=` override; a merge killed
(SIGKILL) midway; two processes merging at once."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from pyiceberg.catalog.sql import SqlCatalog
from tests.test_crash import kill_once_committed

import phlo
import process_support
from phlo import errors
from phlo.cli import main

SCHEMA = {"id": pa.int64(), "seq": pa.int64(), "v": pa.string()}
# DuckDB with its Iceberg extension, apart from the venv's DuckDB (see
# requirements-duckdb-iceberg.txt; `make dev` installs it).
DUCKDB_ICEBERG = Path(sys.prefix) / "duckdb-iceberg"
DUCKDB_SCAN = textwrap.dedent(
    """
    import json, sys
    import duckdb
    root = sys.argv[1]
    con = duckdb.connect(
        config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    )
    for ext in ("avro", "iceberg"):
        con.execute(f"LOAD '{root}/duckdb_extension_{ext}/extensions/v{duckdb.__version__}/{ext}.duckdb_extension'")
    out = []
    for location in json.loads(sys.stdin.read()):
        rows = con.execute(f"SELECT id, seq, v FROM iceberg_scan('{location}')").fetchall()
        out.append(rows)
    print(json.dumps(out))
    """
)
MOR = {"write.merge.mode": "merge-on-read", "write.delete.mode": "merge-on-read"}


def as_model(data: pa.Table) -> dict[int, tuple[int, str]]:
    rows = data.to_pydict()
    model = {k: (s, v) for k, s, v in zip(rows["id"], rows["seq"], rows["v"], strict=True)}
    assert len(model) == data.num_rows, "a key was read twice"
    return model


def duckdb_models(locations: list[str]) -> list[dict[int, tuple[int, str]]]:
    """The rows DuckDB's `iceberg_scan` reads from each metadata file, in a subprocess (no site
    packages: only the separately installed DuckDB is seen)."""
    assert DUCKDB_ICEBERG.is_dir(), f"{DUCKDB_ICEBERG} is missing: run `make dev`"
    done = subprocess.run(
        [sys.executable, "-S", "-c", DUCKDB_SCAN, str(DUCKDB_ICEBERG)],
        input=json.dumps(locations),
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(DUCKDB_ICEBERG), "HOME": str(DUCKDB_ICEBERG)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    models = []
    for rows in json.loads(done.stdout):
        model = {k: (s, v) for k, s, v in rows}
        assert len(model) == len(rows), "DuckDB read a key twice"
        models.append(model)
    return models


def pyiceberg_table(lh: phlo.Lakehouse, name: str):
    return SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table(name)


def seed(table: phlo.Table, parts: int = 4, rows: int = 50) -> dict[int, tuple[int, str]]:
    model: dict[int, tuple[int, str]] = {}
    for part in range(parts):
        keys = list(range(part * rows, (part + 1) * rows))
        table.append(pa.table({"id": keys, "seq": [0] * rows, "v": [f"a{k}" for k in keys]}))
        model.update({k: (0, f"a{k}") for k in keys})
    return model


@pytest.mark.parametrize("mode", ["copy-on-write", "merge-on-read", "auto"])
def test_every_snapshot_matches_the_model_in_phlo_and_pyiceberg(lh, mode):
    table = lh.create_table("raw.t", SCHEMA)
    model = seed(table)
    rng = random.Random(f"mor-{mode}")
    snapshots = {table.current_snapshot_id: dict(model)}
    locations = {table.current_snapshot_id: table.metadata_location}
    for step in range(1, 16):
        action = rng.random()
        if action < 0.55:
            keys = sorted({rng.randrange(260) for _ in range(rng.randint(1, 12))})
            batch = pa.table(
                {"id": keys, "seq": [step] * len(keys), "v": [f"s{step}-{k}" for k in keys]}
            )
            result = table.merge(batch, "id", write_mode=mode)
            model.update({k: (step, f"s{step}-{k}") for k in keys})
            if mode == "copy-on-write":
                assert result.delete_files_added == 0
        elif action < 0.85:
            low = rng.randrange(260)
            high = low + rng.randrange(8)
            before = len(model)
            deleted = table.delete(("id", "between", [low, high]), write_mode=mode)
            model = {k: v for k, v in model.items() if not low <= k <= high}
            assert deleted.rows_deleted == before - len(model)
        else:
            table.compact(target_file_size=1 << 30)
        snapshots[table.current_snapshot_id] = dict(model)
        locations[table.current_snapshot_id] = table.metadata_location
        assert as_model(table.scan().to_arrow()) == model, f"step {step}"
    summary = table.history()[-1].summary
    if mode == "copy-on-write":
        assert summary.get("total-delete-files", "0") == "0"
    # Time travel (across compactions), PyIceberg and DuckDB read every snapshot as the model
    # had it (DuckDB each snapshot's own metadata file).
    other = pyiceberg_table(lh, "raw.t")
    for snapshot_id, expected in snapshots.items():
        assert as_model(table.scan(snapshot_id=snapshot_id).to_arrow()) == expected
        assert as_model(other.scan(snapshot_id=snapshot_id).to_arrow()) == expected
    ids = list(snapshots)
    for snapshot_id, read in zip(ids, duckdb_models([locations[i] for i in ids]), strict=True):
        assert read == snapshots[snapshot_id], f"DuckDB at snapshot {snapshot_id}"


def test_merge_on_read_writes_delete_files_pyiceberg_applies(lh):
    table = lh.create_table("raw.t", SCHEMA, properties=MOR)
    assert table.properties["write.merge.mode"] == "merge-on-read"
    model = seed(table, parts=2)
    batch = pa.table({"id": [3, 70, 999], "seq": [1, 1, 1], "v": ["x", "y", "z"]})
    result = table.merge(batch, "id")
    model.update({3: (1, "x"), 70: (1, "y"), 999: (1, "z")})
    assert (result.rows_updated, result.rows_inserted) == (2, 1)
    assert (result.delete_files_added, result.files_removed) == (2, 0)
    head = table.history()[-1]
    assert head.operation == "overwrite"
    assert head.summary["added-delete-files"] == "2"
    assert head.summary["added-position-deletes"] == "2"
    assert head.summary["total-position-deletes"] == "2"
    deleted = table.delete(("id", "in", [3, 4]))
    del model[3], model[4]
    assert deleted.rows_deleted == 2 and deleted.delete_files_added == 2
    assert table.history()[-1].operation == "delete"
    assert as_model(table.scan().to_arrow()) == model
    assert as_model(pyiceberg_table(lh, "raw.t").scan().to_arrow()) == model
    # PyIceberg sees position delete files, each of one live data file, sorted by position.
    inspect = pyiceberg_table(lh, "raw.t").inspect
    data_files = set(inspect.data_files().column("file_path").to_pylist())
    entries = inspect.delete_files().to_pylist()
    assert len(entries) == 4
    assert all(e["content"] == 1 for e in entries)
    for entry in entries:
        deletes = pq.read_table(entry["file_path"].removeprefix("file://"))
        assert deletes.column_names == ["file_path", "pos"]
        field_ids = [f.metadata[b"PARQUET:field_id"] for f in deletes.schema]
        assert field_ids == [b"2147483546", b"2147483545"]
        assert len(set(deletes.column("file_path").to_pylist()) & data_files) == 1
        positions = deletes.column("pos").to_pylist()
        assert positions == sorted(set(positions))
    compacted = table.compact(target_file_size=1 << 30)
    assert compacted.snapshot_id is not None
    assert table.history()[-1].summary["total-delete-files"] == "0"
    assert as_model(pyiceberg_table(lh, "raw.t").scan().to_arrow()) == model


def test_set_properties_and_the_override(lh):
    table = lh.create_table("raw.t", SCHEMA)
    seed(table, parts=1)
    snapshot = table.current_snapshot_id
    assert table.set_properties({"write.merge.mode": "merge-on-read"}) is True
    assert table.set_properties({"write.merge.mode": "merge-on-read"}) is False
    assert table.current_snapshot_id == snapshot, "a metadata-only commit"
    assert pyiceberg_table(lh, "raw.t").properties["write.merge.mode"] == "merge-on-read"
    one = pa.table({"id": [1], "seq": [1], "v": ["b"]})
    assert table.merge(one, "id").delete_files_added == 1
    overridden = table.merge(one, "id", write_mode="copy-on-write")
    assert (overridden.delete_files_added, overridden.files_removed) == (0, 1)
    # merge_config carries the mode too (how @phlo_ingestion chooses it).
    configured = table.merge(one, "id", merge_config={"write_mode": "copy-on-write"})
    assert (configured.delete_files_added, configured.files_removed) == (0, 1)
    with pytest.raises(errors.InputError, match="disagree"):
        table.merge(one, "id", merge_config={"write_mode": "auto"}, write_mode="merge-on-read")
    assert table.set_properties({"write.merge.mode": None}) is True
    assert "write.merge.mode" not in table.properties

    with pytest.raises(errors.InputError, match=r"write\.merge\.mode.*merge-on-read") as info:
        table.set_properties({"write.merge.mode": "fast"})
    assert "auto" in str(info.value)
    assert "write.merge.mode" not in table.properties
    before = table.current_snapshot_id
    with pytest.raises(errors.InputError, match=r"write_mode.*copy-on-write"):
        table.merge(one, "id", write_mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(errors.InputError, match=r"write_mode"):
        table.delete(("id", "=", 1), write_mode="MOR")  # type: ignore[arg-type]
    with pytest.raises(errors.InputError, match="strings or None"):
        table.set_properties({"write.merge.mode": 3})  # type: ignore[dict-item]
    assert table.current_snapshot_id == before


# The child opens the table (merge-on-read by property), says "ready", upserts batch `k`
# (half updates of earlier keys, half new), then prints its merge time.
CHILD = textwrap.dedent(
    """
    import sys, time
    import pyarrow as pa
    import phlo
    root, k, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    table = phlo.Lakehouse.open(root).table("raw.crash")
    ids = list(range(k * rows // 2, k * rows // 2 + rows))
    batch = pa.table({"id": ids, "seq": [k] * rows, "v": [str(k)] * rows})
    print("ready", flush=True)
    started = time.perf_counter()
    table.merge(batch, "id")
    print(time.perf_counter() - started, flush=True)
    """
)
CRASH_ROWS = 60_000


def crash_child(root, k: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(k), str(CRASH_ROWS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def after_merge(state: dict, k: int) -> dict:
    start = k * CRASH_ROWS // 2
    return {**state, **{i: (k, str(k)) for i in range(start, start + CRASH_ROWS)}}


def test_a_killed_merge_on_read_merge_leaves_the_old_or_the_new_state(lh):
    table = lh.create_table("raw.crash", SCHEMA, properties=MOR)
    state: dict = {}
    for k in (0, 1):
        proc = crash_child(lh.root, k)
        assert proc.stdout is not None
        duration = float(proc.stdout.readline())
        assert proc.wait() == 0
        proc.stdout.close()
        state = after_merge(state, k)
    assert as_model(table.scan().to_arrow()) == state
    kills = 10
    moments = [duration * 1.4 * i / kills for i in range(kills)]
    random.Random(20261129).shuffle(moments)
    outcomes = {"old": 0, "new": 0}
    # The last merge is killed once its commit shows (a kill after a commit on any machine).
    for k, moment in enumerate([*moments, None], start=2):
        proc = crash_child(lh.root, k)
        if moment is None:
            kill_once_committed(table, proc)
        else:
            time.sleep(moment)
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        after = as_model(table.scan().to_arrow())
        new_state = after_merge(state, k)
        assert after in (state, new_state), f"kill at {moment}s: neither old nor new"
        outcomes["new" if after == new_state else "old"] += 1
        state = after
    assert outcomes["old"] >= 1 and outcomes["new"] >= 1, outcomes
    assert as_model(pyiceberg_table(lh, "raw.crash").scan().to_arrow()) == state


def _merge_keys(root: str, worker: int, keys: list[int], barrier, results) -> None:
    table = phlo.Lakehouse.open(root).table("raw.t")
    batch = pa.table({"id": keys, "seq": [worker + 1] * len(keys), "v": [f"w{worker}"] * len(keys)})
    barrier.wait()
    conflicts = 0
    # A conflict is the only failure allowed, and the merge is simply done again.
    for _ in range(20):
        try:
            table.merge(batch, "id", write_mode="merge-on-read")
            break
        except errors.CommitConflictError:
            conflicts += 1
    else:
        conflicts = -1
    results.put((worker, conflicts, time.monotonic()))


def _race(lh: phlo.Lakehouse, keys: list[list[int]]) -> dict[int, tuple[int, float]]:
    ctx = process_support.context()
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_merge_keys, args=(str(lh.root), w, keys[w], barrier, results))
        for w in range(2)
    ]
    for p in procs:
        p.start()
    done = {w: (c, t) for w, c, t in (results.get(timeout=300) for _ in procs)}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert all(c >= 0 for c, _ in done.values()), done
    return done


@pytest.mark.parametrize("overlap", [False, True])
def test_concurrent_merge_on_read_merges_lose_no_update(lh, overlap):
    table = lh.create_table("raw.t", SCHEMA)
    model = seed(table, parts=2, rows=500)
    keys = [list(range(0, 150)), list(range(100, 250) if overlap else range(600, 750))]
    done = _race(lh, keys)
    if not overlap:
        assert all(c == 0 for c, _ in done.values()), "disjoint merges never conflict"

    def serial(order: list[int]) -> dict:
        out = dict(model)
        for w in order:
            out.update({k: (w + 1, f"w{w}") for k in keys[w]})
        return out

    final = as_model(table.scan().to_arrow())
    assert final in (serial([0, 1]), serial([1, 0]))
    assert as_model(pyiceberg_table(lh, "raw.t").scan().to_arrow()) == final


def test_maintain_reports_read_amplification_and_compacts_past_the_threshold(lh):
    table = lh.create_table("raw.t", SCHEMA, properties=MOR)
    model = seed(table, parts=1, rows=100)
    other = lh.create_table("raw.plain", SCHEMA)
    seed(other, parts=1, rows=10)
    table.delete(("id", "<", 20))
    model = {k: v for k, v in model.items() if k >= 20}
    stats = table.delete_stats()
    assert (stats.delete_files, stats.rows, stats.deleted_rows) == (1, 100, 20)
    assert stats.read_amplification == pytest.approx(100 / 80)

    def maintain(*args: str) -> list[dict]:
        result = CliRunner().invoke(main, ["--root", str(lh.root), "maintain", "deletes", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    report = {r["table"]: r for r in maintain("--json")}
    assert report["raw.t"]["delete_files"] == 1
    assert report["raw.t"]["read_amplification"] == 1.25
    assert report["raw.plain"]["read_amplification"] == 1.0
    assert all(r["compacted"] is None for r in report.values())
    # Below the threshold nothing happens; above it the table is compacted.
    assert maintain("raw.t", "--compact-above", "1.3", "--json")[0]["compacted"] is None
    assert table.delete_stats().delete_files == 1
    done = maintain("--compact-above", "1.2", "--json")
    assert [r["table"] for r in done if r["compacted"]] == ["raw.t"]
    after = table.delete_stats()
    assert (after.delete_files, after.deleted_rows, after.read_amplification) == (0, 0, 1.0)
    assert as_model(table.scan().to_arrow()) == model
    text = CliRunner().invoke(main, ["--root", str(lh.root), "maintain", "deletes", "raw.t"])
    assert "0 delete files" in text.output and "read amplification 1.0" in text.output


def test_merge_on_read_on_a_partitioned_table(lh):
    schema = {"day": pa.string(), "id": pa.int64(), "v": pa.string()}
    table = lh.create_table("raw.p", schema, partition_by=[("day", "identity")], properties=MOR)
    days = ["d1", "d2", "d3"]
    rows = [(d, i, "a") for d in days for i in range(40)]
    table.append(pa.table({k: [r[j] for r in rows] for j, k in enumerate(schema)}))
    model = {(d, i): v for d, i, v in rows}
    batch = [("d1", 3, "b"), ("d2", 3, "b"), ("d3", 99, "n")]
    result = table.merge(
        pa.table({k: [r[j] for r in batch] for j, k in enumerate(schema)}), ["day", "id"]
    )
    model.update({(d, i): v for d, i, v in batch})
    assert (result.rows_updated, result.delete_files_added) == (2, 2)
    table.delete([("day", "=", "d3"), ("id", "<", 5)])
    model = {k: v for k, v in model.items() if not (k[0] == "d3" and k[1] < 5)}

    def read(data: pa.Table) -> dict:
        d = data.to_pydict()
        out = {(a, b): c for a, b, c in zip(d["day"], d["id"], d["v"], strict=True)}
        assert len(out) == data.num_rows
        return out

    assert read(table.scan().to_arrow()) == model
    assert read(pyiceberg_table(lh, "raw.p").scan().to_arrow()) == model
    assert read(table.scan(filter=("day", "=", "d1")).to_arrow()) == {
        k: v for k, v in model.items() if k[0] == "d1"
    }
