"""Snapshot summary totals (`total-records`, `total-data-files`, `total-delete-files`,
`total-position-deletes`, …) after each write of a history PyIceberg, DuckDB (through
`phlo catalog serve`) and phlo write in turn — copy-on-write and merge-on-read merges and
deletes, a branch merge that rebases, compaction, manifest rewrite — against a recount of the
live files PyIceberg plans. PyIceberg's planners and `phlo show`/`phlo status` read these
totals; an engine that keeps none (DuckDB) must leave them out, not let phlo guess."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pyiceberg.expressions import EqualTo, LessThan
from pyiceberg.manifest import DataFileContent
from tests.outside_support import (
    BEFORE,
    Model,
    assert_reads,
    batch,
    duckdb,
    pyiceberg,
    pyiceberg_table,
    seeded,
)

import phlo

DATA, POSITION, EQUALITY = (
    DataFileContent.DATA,
    DataFileContent.POSITION_DELETES,
    DataFileContent.EQUALITY_DELETES,
)


def recount(lh: phlo.Lakehouse) -> tuple[dict[str, int], dict[str, str]]:
    """The totals of main's head counted from its live manifest entries, and its summary."""
    with pyiceberg_table(lh) as t:
        snapshot = t.current_snapshot()
        assert snapshot is not None
        live = [
            e.data_file
            for m in snapshot.manifests(t.io)
            for e in m.fetch_manifest_entry(t.io, discard_deleted=True)
        ]
        summary = dict(snapshot.summary.additional_properties)

    def rows(content: DataFileContent) -> int:
        return sum(f.record_count for f in live if f.content == content)

    counted = {
        "total-data-files": sum(f.content == DATA for f in live),
        "total-records": rows(DATA),
        "total-delete-files": sum(f.content != DATA for f in live),
        "total-position-deletes": rows(POSITION),
        "total-equality-deletes": rows(EQUALITY),
        "total-files-size": sum(f.file_size_in_bytes for f in live),
    }
    return counted, summary


def without(model: Model, *keys: int) -> Model:
    return {k: v for k, v in model.items() if k not in keys}


def rebased(lh: phlo.Lakehouse) -> None:
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").merge(batch({15: "dev"}), "id", write_mode="merge-on-read")
    duckdb(lh, "DELETE FROM lake.raw.t WHERE id = 25")
    assert lh.merge("dev", "main").rebased == ["raw.t"]


# Each step's write and what it does to the rows; DuckDB keeps no totals, so phlo's writes after
# it keep none either (the steps before it check phlo's arithmetic on PyIceberg's totals).
STEPS: list[tuple[str, Callable[[phlo.Lakehouse], object], Callable[[Model], Model]]] = [
    (
        "PyIceberg delete",
        lambda lh: pyiceberg(lh, lambda t: t.delete(EqualTo("id", 3))),
        lambda m: without(m, 3),
    ),
    (
        "PyIceberg upsert",
        lambda lh: pyiceberg(lh, lambda t: t.upsert(batch({4: "u", 300: "u"}), ["id"])),
        lambda m: {**m, 4: "u", 300: "u"},
    ),
    (
        "PyIceberg overwrite",
        lambda lh: pyiceberg(
            lh, lambda t: t.overwrite(batch({7: "o"}), overwrite_filter=EqualTo("id", 7))
        ),
        lambda m: {**m, 7: "o"},
    ),
    (
        "phlo merge-on-read merge",
        lambda lh: lh.table("raw.t").merge(
            batch({13: "m", 400: "m"}), "id", write_mode="merge-on-read"
        ),
        lambda m: {**m, 13: "m", 400: "m"},
    ),
    (
        "phlo merge-on-read delete",
        lambda lh: lh.table("raw.t").delete(("id", "=", 21), write_mode="merge-on-read"),
        lambda m: without(m, 21),
    ),
    (
        "phlo copy-on-write merge over phlo's deletes",
        lambda lh: lh.table("raw.t").merge(
            batch({14: "c", 22: "c"}), "id", write_mode="copy-on-write"
        ),
        lambda m: {**m, 14: "c", 22: "c"},
    ),
    ("phlo compaction", lambda lh: lh.table("raw.t").compact(), lambda m: m),
    (
        "PyIceberg delete after compaction",
        lambda lh: pyiceberg(lh, lambda t: t.delete(LessThan("id", 2))),
        lambda m: without(m, 0, 1),
    ),
    (
        "DuckDB delete",
        lambda lh: duckdb(lh, "DELETE FROM lake.raw.t WHERE id = 12"),
        lambda m: without(m, 12),
    ),
    (
        "DuckDB update",
        lambda lh: duckdb(lh, "UPDATE lake.raw.t SET v = 'd' WHERE id = 23"),
        lambda m: {**m, 23: "d"},
    ),
    (
        "phlo copy-on-write merge over DuckDB's deletes",
        lambda lh: lh.table("raw.t").merge(
            batch({11: "c", 23: "c"}), "id", write_mode="copy-on-write"
        ),
        lambda m: {**m, 11: "c", 23: "c"},
    ),
    ("phlo rebased branch merge", rebased, lambda m: without({**m, 15: "dev"}, 25)),
    ("phlo manifest rewrite", lambda lh: lh.rewrite_manifests("raw.t"), lambda m: m),
    (
        "phlo append",
        lambda lh: lh.table("raw.t").append(batch({500: "a"})),
        lambda m: {**m, 500: "a"},
    ),
]


def test_summary_totals_match_the_live_files_after_every_engine_write(tmp_path: Path) -> None:
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    model: Model = dict(BEFORE)
    kept_totals = True
    for name, write, change in STEPS:
        write(lh)
        model = change(model)
        assert_reads(lh, model, name)
        counted, summary = recount(lh)
        kept_totals = kept_totals and not name.startswith("DuckDB")
        for total, count in counted.items():
            if total in summary:
                assert int(summary[total]) == count, (name, total)
            elif kept_totals:
                pytest.fail(f"{name}: {total} is missing")
        stats = lh.table("raw.t").delete_stats()
        if "total-records" in summary:
            assert stats.rows == counted["total-records"], name
