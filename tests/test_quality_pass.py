"""How one `@phlo_quality` run reads: one plan (the scan of the columns left to read is that
plan narrowed, `Scan.select`, so it reads the snapshot the metadata answers came from), the
same engine results whatever columns a Python check adds to the scan, a commit between two
runs seen by the second, and files that prove the filter read without it. A plain list of
rows per partition is the model."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import phlo
from phlo import _native
from phlo.quality import (
    AcceptedValuesCheck,
    CountCheck,
    NullCheck,
    PatternCheck,
    RowCheck,
    UniqueCheck,
    phlo_quality,
)
from phlo.quality.contract import SAMPLE_LIMIT

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("code", pa.string()),
        pa.field("_phlo_partition_date", pa.date32()),
        pa.field("_phlo_row_id", pa.string()),
    ]
)
DAYS = [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]


def rows_of(day: dt.date, ids: list[int | None], codes: list[str | None]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"id": i, "code": c, "_phlo_partition_date": day, "_phlo_row_id": f"{day}-{n}"}
            for n, (i, c) in enumerate(zip(ids, codes, strict=True))
        ],
        schema=SCHEMA,
    )


@pytest.fixture
def events(lh: phlo.Lakehouse) -> phlo.Table:
    """Two partitions of clean rows, one file each."""
    table = lh.create_table("raw.events", SCHEMA, partition_by=["_phlo_partition_date"])
    for number, day in enumerate(DAYS):
        ids = list(range(number * 1000, number * 1000 + 50))
        table.append(rows_of(day, ids, [f"C{i}" for i in ids]))
    return table


class LongCode(RowCheck):
    """A Python check: the scan reads its column too."""

    @property
    def name(self) -> str:
        return "long_code"

    def columns(self) -> list[str]:
        return ["code"]

    def failing(self, batch: pa.RecordBatch) -> pa.Array:
        return pc.greater(pc.utf8_length(batch.column("code")), 8)


def engine_checks() -> list[Any]:
    return [
        NullCheck(["id", "code"]),
        UniqueCheck(["id"]),
        CountCheck(min_rows=1),
        PatternCheck("code", r"C\d+$"),
        AcceptedValuesCheck("code", ["C1", "C2"], severity="warn"),
    ]


def outcome(results: list[Any]) -> dict[str, tuple[Any, ...]]:
    """What a run found; a sample cut at the limit as its size (the files are read in
    parallel: which failing rows come first varies)."""
    return {
        r.name: (
            r.passed,
            r.failed_count,
            r.total_count,
            sorted(s["_phlo_row_id"] for s in r.sample)
            if r.failed_count <= SAMPLE_LIMIT
            else len(r.sample),
            r.details.get("null_counts"),
            r.details.get("metadata_only"),
            r.details["files_read"],
        )
        for r in results
    }


def test_engine_checks_give_the_same_results_beside_a_python_check(
    lh: phlo.Lakehouse, events: phlo.Table
) -> None:
    day = DAYS[1]
    events.append(rows_of(day, [1000, 1000, None, 7], ["C1", "X1", None, "C22"]))

    @phlo_quality(table="raw.events", checks=engine_checks())
    def engine_only() -> None: ...

    @phlo_quality(table="raw.events", checks=[*engine_checks(), LongCode()])
    def with_python() -> None: ...

    engine = outcome(engine_only.run(day.isoformat(), lakehouse=lh))
    mixed = outcome(with_python.run(day.isoformat(), lakehouse=lh))
    assert mixed.pop("long_code")[1] == 0
    assert engine == mixed
    # The model: 54 rows, id 1000 three times, one null id and one null code.
    assert engine["unique_check_id"][1:3] == (3, 54)
    assert engine["null_check_id_code"][4] == {
        "id": 1,
        "code": 1,
    }
    assert engine["pattern_check_code"][1] == 1  # X1
    assert engine["accepted_values_check_code"][1] == 52  # all but C1
    assert engine["unique_check_id"][6] == 2  # this partition's two files


def test_a_commit_between_two_runs_is_seen_by_the_second(
    lh: phlo.Lakehouse, events: phlo.Table
) -> None:
    @phlo_quality(table="raw.events", checks=[UniqueCheck(["id"]), CountCheck(min_rows=1)])
    def checks() -> None: ...

    first = checks.run(DAYS[0].isoformat(), lakehouse=lh)
    assert [r.passed for r in first] == [True, True]
    assert first[0].total_count == 50
    events.append(rows_of(DAYS[0], [3, 4], ["C3", "C4"]))
    second = checks.run(DAYS[0].isoformat(), lakehouse=lh)
    assert second[0].details["snapshot_id"] == events.current_snapshot_id
    assert second[0].details["snapshot_id"] != first[0].details["snapshot_id"]
    assert (second[0].passed, second[0].failed_count, second[0].total_count) == (False, 4, 52)
    assert second[1].total_count == 52


def test_select_narrows_the_same_plan_even_after_a_commit(
    lh: phlo.Lakehouse, events: phlo.Table
) -> None:
    planned = events.scan(None, ("_phlo_partition_date", "=", DAYS[0]))
    events.append(rows_of(DAYS[0], [9], ["C9"]))
    narrowed = planned.select(["code"])
    assert narrowed.snapshot_id == planned.snapshot_id != events.current_snapshot_id
    assert narrowed.files_scanned == planned.files_scanned == 1
    assert narrowed.schema.names == ["code"]
    got = narrowed.to_arrow().column("code").to_pylist()
    assert sorted(got) == sorted(f"C{i}" for i in range(50))
    # The planned scan is still unread, and reads every column.
    assert planned.to_arrow().num_rows == 50


def test_select_refuses_unknown_and_repeated_columns(events: phlo.Table) -> None:
    planned = events.scan(["id"])
    with pytest.raises(phlo.errors.InputError, match="nope"):
        planned.select(["nope"])
    with pytest.raises(phlo.errors.InputError, match="twice"):
        planned.select(["id", "id"])


ALREADY_READ = (
    r"^this scan was already read\. Scan again with table\.scan\(\): a scan's rows are read once$"
)


@pytest.mark.parametrize("call", ["check", "settle"])
def test_a_quality_pass_over_a_scan_already_read_is_an_input_error(
    events: phlo.Table, call: str
) -> None:
    planned = events.scan(["id"])
    assert planned.to_arrow().num_rows == 100
    plan = json.dumps({"checks": [{"kind": "not_null", "columns": ["id"]}]})
    evaluator = _native.QualityEvaluator(plan, planned.schema)
    with pytest.raises(phlo.errors.InputError, match=ALREADY_READ):
        getattr(evaluator, call)(planned._native)
    # The evaluator is untouched: a new scan is checked.
    evaluator.check(events.scan(["id"])._native)
    [outcome] = evaluator.finish()
    assert (outcome["failed"], outcome["total"]) == (0, 100)


@pytest.mark.parametrize("again", ["to_arrow", "select"])
def test_reading_a_scan_twice_is_an_input_error(events: phlo.Table, again: str) -> None:
    planned = events.scan(["id"])
    planned.to_arrow()
    with pytest.raises(phlo.errors.InputError, match=ALREADY_READ):
        planned.to_arrow() if again == "to_arrow" else planned.select(["id"])


def test_a_scan_used_by_two_threads_at_once_is_an_input_error_not_a_deadlock(
    events: phlo.Table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quality pass holds its scan and evaluator with the GIL released; a second thread
    reading the same scan (or using the evaluator) meanwhile used to wait for them with the
    GIL held, and neither thread could go on."""
    monkeypatch.setenv("PHLO_FAILPOINTS", "quality.check:pause")
    monkeypatch.setenv("PHLO_FAILPOINT_DIR", str(tmp_path))
    planned = events.scan(["id"])
    plan = json.dumps({"checks": [{"kind": "not_null", "columns": ["id"]}]})
    evaluator = _native.QualityEvaluator(plan, planned.schema)
    checking = threading.Thread(target=evaluator.check, args=(planned._native,))
    checking.start()
    try:
        while not (tmp_path / "quality.check.paused").exists():
            checking.join(0.01)
            assert checking.is_alive(), "the check ended before its failpoint"
        with pytest.raises(phlo.errors.InputError, match="scan is in use by another thread"):
            planned.to_arrow()
        with pytest.raises(phlo.errors.InputError, match="evaluator is in use by another thread"):
            evaluator.finish()
    finally:
        (tmp_path / "quality.check.resume").touch()
        checking.join()
    [outcome] = evaluator.finish()
    assert (outcome["failed"], outcome["total"]) == (0, 100)


def test_files_that_prove_the_filter_and_files_that_do_not(
    lh: phlo.Lakehouse, events: phlo.Table
) -> None:
    """`id >= 1000` holds for every row of day 2's file (by its bounds), for no row of day
    1's, and for some rows of a third file: only that one is filtered row by row."""
    events.append(rows_of(DAYS[0], [998, 999, 1000, 1001], ["a", "b", "c", "d"]))
    model = [*range(1000, 1050), 1000, 1001]
    scan = events.scan(["code"], ("id", ">=", 1000))
    assert scan.schema.names == ["code"]
    got = scan.to_arrow().column("code").to_pylist()
    assert sorted(got) == sorted([f"C{i}" for i in range(1000, 1050)] + ["c", "d"])
    assert len(got) == len(model)
