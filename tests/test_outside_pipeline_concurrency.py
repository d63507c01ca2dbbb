"""Several `@phlo_ingestion` runs of one table at once, from outside: processes released together
behind a barrier, on the embedded SQLite catalog and on PostgreSQL. Whatever the interleaving,
`main` holds each published run's rows exactly once, a run that cannot publish fails with a
typed `CommitConflictError` naming the table, its branch is kept, and re-running its partition
publishes. Different partitions of one table all publish, also when they are re-runs."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pandera.pandas as pa_schema
import pyarrow as pa
import pytest
from pandera.typing import Series

import phlo
import process_support
from phlo import errors


class Row(pa_schema.DataFrameModel):
    id: Series[str] = pa_schema.Field(nullable=False)
    version: Series[str]

    class Config:
        strict = True
        coerce = True


def _version() -> str:
    # Each run's rows carry a value of their own, so main shows which run they came from.
    return os.environ.get("PHLO_TEST_VERSION", "v0")


@phlo.phlo_ingestion(
    table_name="log", unique_key="id", group="g", validation_schema=Row, merge_strategy="append"
)
def appended(partition_date: str):
    return [{"id": f"{partition_date}-{i:03d}", "version": _version()} for i in range(20)]


@phlo.phlo_ingestion(table_name="upserts", unique_key="id", group="g", validation_schema=Row)
def merged(partition_date: str):
    return pa.Table.from_pylist(
        [{"id": f"{partition_date}-{i:03d}", "version": _version()} for i in range(20)]
    )


@phlo.phlo_ingestion(table_name="users", unique_key="id", group="g", validation_schema=Row)
def shared_keys(partition_date: str):
    """Every partition upserts the same ten users: runs of different days overlap."""
    return [{"id": f"user-{i}", "version": _version()} for i in range(10)]


DEFINITIONS = {"append": appended, "merge": merged, "shared": shared_keys}


def open_lakehouse(where: dict[str, str]) -> phlo.Lakehouse:
    if "url" in where:
        return phlo.Lakehouse.connect(where["url"], where["warehouse"])
    return phlo.Lakehouse.open(where["root"])


@pytest.fixture(params=["sqlite", "postgres"])
def where(request, tmp_path: Path) -> dict[str, str]:
    """Where the lakehouse is: an embedded folder, or a PostgreSQL catalog (a fresh database)."""
    if request.param == "sqlite":
        return {"root": str(tmp_path / "lake")}
    url = request.getfixturevalue("postgres_url")
    return {"url": url, "warehouse": f"file://{tmp_path / 'warehouse'}"}


def _run(where, name, partition_date, version, barrier, results) -> None:
    os.environ["PHLO_TEST_VERSION"] = version
    lh = open_lakehouse(where)
    barrier.wait()
    try:
        result = DEFINITIONS[name].run(partition_date, lakehouse=lh)
        results.put((version, result.status, ""))
    except Exception as e:  # reported to the parent, which judges it
        results.put((version, type(e).__name__, explained(e)))


def explained(error: BaseException) -> str:
    return "\n".join([str(error), *getattr(error, "__notes__", [])])


def run_at_once(where, name: str, runs: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Runs `(partition_date, version)` in processes released together; ``{version: (status or
    error type, message)}``."""
    ctx = process_support.context()
    barrier, results = ctx.Barrier(len(runs)), ctx.Queue()
    procs = [
        ctx.Process(target=_run, args=(where, name, day, version, barrier, results))
        for day, version in runs
    ]
    for p in procs:
        p.start()
    outcomes = {}
    for _ in procs:
        version, status, message = results.get(timeout=300)
        outcomes[version] = (status, message)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcomes


def table_rows(lh: phlo.Lakehouse, name: str) -> list[dict[str, Any]]:
    data = lh.table(name).scan(columns=["id", "version", "_phlo_partition_date"]).to_arrow()
    return data.to_pylist()


def run_branches(lh: phlo.Lakehouse) -> list[str]:
    return [b for b in lh.branches() if b.startswith("pipeline-run-")]


def check_conflicts(outcomes: dict[str, tuple[str, str]], table: str) -> list[str]:
    """The versions that conflicted; every outcome is a publish or a typed conflict naming the
    table."""
    conflicted = []
    for version, (status, message) in outcomes.items():
        if status != "published":
            assert status == "CommitConflictError", (version, status, message)
            assert table in message and "re-run" in message, message
            conflicted.append(version)
    return conflicted


def test_one_new_partition_appended_twice_at_once_lands_once(where):
    """Two runs of the same (new) partition of an append table: the partition's rows are on
    main once — never both runs' copies."""
    outcomes = run_at_once(where, "append", [("2025-03-01", "a"), ("2025-03-01", "b")])
    conflicted = check_conflicts(outcomes, "raw.log")
    assert len(conflicted) <= 1, outcomes
    lh = open_lakehouse(where)
    found = table_rows(lh, "raw.log")
    counts = Counter(r["id"] for r in found)
    assert sorted(counts) == [f"2025-03-01-{i:03d}" for i in range(20)]
    assert set(counts.values()) == {1}, "a partition's rows were appended twice"
    assert len({r["version"] for r in found}) == 1, "rows of two runs mixed"
    assert len(run_branches(lh)) == len(conflicted)
    # The conflicted run's partition, re-run, publishes: still once.
    if conflicted:
        os.environ["PHLO_TEST_VERSION"] = "c"
        try:
            assert appended.run("2025-03-01", lakehouse=lh).status == "published"
        finally:
            del os.environ["PHLO_TEST_VERSION"]
        found = table_rows(lh, "raw.log")
        assert len(found) == 20 and {r["version"] for r in found} == {"c"}


def test_rerunning_appended_partitions_at_once_all_publish(where):
    """A backfill re-running three loaded partitions of an append table at once: each run
    replaces its own partition, so all publish."""
    lh = open_lakehouse(where)
    days = ["2025-03-01", "2025-03-02", "2025-03-03"]
    for day in days:
        assert appended.run(day, lakehouse=lh).status == "published"
    outcomes = run_at_once(where, "append", [(d, f"re-{d}") for d in days])
    assert {v: s for v, (s, _) in outcomes.items()} == {f"re-{d}": "published" for d in days}, (
        outcomes
    )
    found = table_rows(lh, "raw.log")
    assert len(found) == 60 and len({r["id"] for r in found}) == 60
    for row in found:
        assert row["version"] == f"re-{row['_phlo_partition_date']}"
    assert run_branches(lh) == []


@pytest.mark.parametrize("where", ["sqlite"], indirect=True)  # the catalogs: tests above
def test_one_partition_merged_twice_at_once_lands_once(where):
    outcomes = run_at_once(where, "merge", [("2025-03-01", "a"), ("2025-03-01", "b")])
    conflicted = check_conflicts(outcomes, "raw.upserts")
    lh = open_lakehouse(where)
    found = table_rows(lh, "raw.upserts")
    assert sorted(r["id"] for r in found) == [f"2025-03-01-{i:03d}" for i in range(20)]
    published = [v for v, (s, _) in outcomes.items() if s == "published"]
    assert published and len({r["version"] for r in found}) == 1
    assert found[0]["version"] in published
    assert len(run_branches(lh)) == len(conflicted)


def test_runs_upserting_overlapping_keys_publish_whole_or_conflict(where):
    """Three days upserting the same ten users at once: main ends as one published run wrote
    it (never a mix of runs), the others conflict and keep their branches; re-running a
    conflicted day publishes it."""
    days = ["2025-03-01", "2025-03-02", "2025-03-03"]
    outcomes = run_at_once(where, "shared", [(d, d) for d in days])
    conflicted = check_conflicts(outcomes, "raw.users")
    lh = open_lakehouse(where)
    found = table_rows(lh, "raw.users")
    assert sorted(r["id"] for r in found) == sorted(f"user-{i}" for i in range(10))
    versions = {r["version"] for r in found}
    assert len(versions) == 1 and versions <= {v for v in outcomes if v not in conflicted}
    assert len(run_branches(lh)) == len(conflicted)
    for day in conflicted:
        os.environ["PHLO_TEST_VERSION"] = f"again-{day}"
        try:
            assert shared_keys.run(day, lakehouse=lh).status == "published"
        finally:
            del os.environ["PHLO_TEST_VERSION"]
        assert {r["version"] for r in table_rows(lh, "raw.users")} == {f"again-{day}"}


def test_a_conflict_is_typed_and_says_which_run_and_how_to_publish(lh):
    """Deterministic: while one run of a day extracts (its branch forked), another run of the
    same users publishes; the first then cannot publish."""
    inner = {}

    @phlo.phlo_ingestion(table_name="users", unique_key="id", group="g", validation_schema=Row)
    def racing(partition_date: str):
        if not inner:
            inner["result"] = shared_keys.run("2025-03-02", lakehouse=lh)
        return [{"id": f"user-{i}", "version": "late"} for i in range(10)]

    with pytest.raises(errors.CommitConflictError) as info:
        racing.run("2025-03-01", lakehouse=lh)
    message = explained(info.value)
    assert "raw.users" in message and "2025-03-01" in message and "re-run" in message, message
    (branch,) = run_branches(lh)
    assert branch in message
    assert {r["version"] for r in table_rows(lh, "raw.users")} == {"v0"}
    assert racing.run("2025-03-01", lakehouse=lh).status == "published"
    assert {r["version"] for r in table_rows(lh, "raw.users")} == {"late"}


def test_with_wap_off_a_partition_appended_during_another_run_of_it_lands_once(
    lh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Without run branches: after one run of a day removed the day's earlier rows and before
    it appends its own, another run of the same day writes it to main. The first must then
    not append the day a second time."""
    (tmp_path / "phlo.yaml").write_text("wap: {enabled: false}\n")
    monkeypatch.chdir(tmp_path)
    inner = {}
    merge = phlo.Table.merge

    def merge_after_another_run(self, *args, **kwargs):
        if not inner:  # the first run's append: the other run goes first
            inner["running"] = True
            os.environ["PHLO_TEST_VERSION"] = "inner"
            try:
                inner["result"] = appended.run("2025-03-01", lakehouse=lh)
            finally:
                del os.environ["PHLO_TEST_VERSION"]
        return merge(self, *args, **kwargs)

    monkeypatch.setattr(phlo.Table, "merge", merge_after_another_run)
    with pytest.raises(errors.CommitConflictError, match=r"raw\.log"):
        appended.run("2025-03-01", lakehouse=lh)
    assert inner["result"].status == "published"
    found = table_rows(lh, "raw.log")
    assert len(found) == 20 and {r["version"] for r in found} == {"inner"}
    assert appended.run("2025-03-01", lakehouse=lh).status == "published"
    found = table_rows(lh, "raw.log")
    assert len(found) == 20 and {r["version"] for r in found} == {"v0"}
