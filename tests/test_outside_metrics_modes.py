"""Tables PyIceberg writes with `write.metadata.metrics.default` other than full — string
bounds truncated to two characters, or no bounds at all — and upserts by a string key. phlo's
pruning, a merge's re-validation after another writer committed, and a branch merge's key check
all read min/max bounds: a truncated bound is only a bound, a missing one rules nothing out.
A key both sides write is a conflict (never a duplicate), keys apart still land."""

from __future__ import annotations

import collections
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, StringType
from tests.outside_support import held, optional, sql_catalog

import phlo
from phlo.errors import CommitConflictError

MODES = ["truncate(2)", "none"]
KEYS = [f"prefix-{i:04d}-a-tail-longer-than-sixteen" for i in range(50)]
NEW = "prefix-7777-a-tail-longer-than-sixteen"


def rows(keys: list[str], values: list[int]) -> pa.Table:
    return pa.table({"k": keys, "v": pa.array(values, pa.int64())})


def string_keyed(tmp_path: Path, mode: str) -> tuple[phlo.Lakehouse, str]:
    """raw.s: KEYS in two PyIceberg files whose metrics follow `mode`."""
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = phlo.Lakehouse.connect(catalog=catalog, warehouse=f"file://{tmp_path}/warehouse")
    lh.create_namespace("raw")
    pyi = sql_catalog(lh)
    schema = Schema(optional(1, "k", StringType()), optional(2, "v", LongType()))
    t = pyi.create_table(
        "raw.s", schema=schema, properties={"write.metadata.metrics.default": mode}
    )
    t.append(rows(KEYS[:25], list(range(25))))
    t.append(rows(KEYS[25:], list(range(25, 50))))
    pyi.engine.dispose()
    return lh, catalog


def read(lh: phlo.Lakehouse) -> dict[str, int]:
    got = lh.table("raw.s").scan().to_arrow().to_pylist()
    assert max(collections.Counter(r["k"] for r in got).values()) == 1
    return {r["k"]: r["v"] for r in got}


@pytest.mark.parametrize("mode", MODES)
def test_reads_and_writes_of_phlo_prune_only_by_what_the_bounds_say(
    tmp_path: Path, mode: str
) -> None:
    lh, _ = string_keyed(tmp_path, mode)
    t = lh.table("raw.s")
    assert t.scan(filter=("k", "=", KEYS[30])).to_arrow().num_rows == 1
    assert t.scan(filter=("k", ">", "prefix-0040")).to_arrow().num_rows == 10
    t.merge(rows([KEYS[3], KEYS[30], NEW], [-1, -2, -3]), "k", write_mode="merge-on-read")
    assert t.delete(("k", "=", KEYS[40])).rows_deleted == 1
    model = {k: i for i, k in enumerate(KEYS) if i != 40} | {KEYS[3]: -1, KEYS[30]: -2, NEW: -3}
    assert read(lh) == model


@pytest.mark.parametrize("racer", ["append", "upsert"])
@pytest.mark.parametrize("mode", MODES)
def test_a_held_merge_conflicts_with_pyiceberg_writing_a_key_it_inserts(
    tmp_path: Path, mode: str, racer: str
) -> None:
    lh, catalog = string_keyed(tmp_path, mode)
    code = f"lh.table('raw.s').merge(pa.table({{'k': ['{NEW}'], 'v': [1]}}), 'k')"
    with held(lh, catalog, code, "commit.after-manifests", tmp_path / "fp") as writer:
        pyi = sql_catalog(lh)
        t = pyi.load_table("raw.s")
        t.append(rows([NEW], [99])) if racer == "append" else t.upsert(rows([NEW], [99]), ["k"])
        pyi.engine.dispose()
        kind, _ = writer.finish()
    assert kind == "CommitConflictError"
    assert read(lh)[NEW] == 99


@pytest.mark.parametrize("same_key", [True, False], ids=["same-key", "other-key"])
@pytest.mark.parametrize("mode", MODES)
def test_a_branch_merge_checks_keys_main_gained_without_full_bounds(
    tmp_path: Path, mode: str, same_key: bool
) -> None:
    lh, _ = string_keyed(tmp_path, mode)
    lh.create_branch("dev")
    lh.table("raw.s", ref="dev").merge(rows([KEYS[3], NEW], [-1, -3]), "k")
    theirs = NEW if same_key else NEW.replace("-a-", "-b-")
    pyi = sql_catalog(lh)
    pyi.load_table("raw.s").append(rows([theirs], [99]))
    pyi.engine.dispose()
    if same_key:
        with pytest.raises(CommitConflictError):
            lh.merge("dev", "main")
        assert read(lh)[NEW] == 99
    else:
        lh.merge("dev", "main")
        assert {k: read(lh)[k] for k in (KEYS[3], NEW, theirs)} == {
            KEYS[3]: -1,
            NEW: -3,
            theirs: 99,
        }
