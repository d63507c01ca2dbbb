"""Failures injected between the steps of a commit (PHLO_FAILPOINTS): once the catalog pointer
has swapped, nothing deletes the files the new snapshot references; an outcome that cannot be
read back is CommitStateUnknownError, and the table stays readable and complete."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from phlo import errors


def rows(table) -> list[int]:
    return sorted(table.scan().to_arrow().column("id").to_pylist())


def pyiceberg_rows(lh, name: str) -> list[int]:
    table = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table(name)
    return sorted(table.scan().to_arrow().column("id").to_pylist())


@pytest.fixture
def table(lh):
    t = lh.create_table("raw.t", {"id": pa.int64(), "v": pa.string()})
    t.append(pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]}))
    return t


def test_an_error_after_the_swap_is_resolved_from_the_log(table, lh, monkeypatch):
    monkeypatch.setenv("PHLO_FAILPOINTS", "commit.after-swap")
    result = table.append(pa.table({"id": [4], "v": ["d"]}))
    assert result.rows == 1, "the commit landed, so the write succeeded"
    table.merge(pa.table({"id": [2], "v": ["B"]}), "id")
    monkeypatch.delenv("PHLO_FAILPOINTS")
    assert rows(table) == [1, 2, 3, 4]
    assert pyiceberg_rows(lh, "raw.t") == [1, 2, 3, 4]
    values = dict(zip(*table.scan().to_arrow().to_pydict().values(), strict=True))
    assert values[2] == "B"


@pytest.mark.parametrize("write", ["append", "merge"])
def test_an_unknown_outcome_keeps_every_file(table, lh, monkeypatch, write):
    monkeypatch.setenv("PHLO_FAILPOINTS", "commit.after-swap,commit.read-outcome")
    with pytest.raises(errors.CommitStateUnknownError, match=r"raw\.t") as info:
        if write == "append":
            table.append(pa.table({"id": [4], "v": ["d"]}))
        else:
            table.merge(pa.table({"id": [3, 4], "v": ["C", "d"]}), "id")
    assert "kept" in str(info.value)
    monkeypatch.delenv("PHLO_FAILPOINTS")
    # The swap did land: the new snapshot is live, and its files were not deleted.
    assert rows(table) == [1, 2, 3, 4]
    assert pyiceberg_rows(lh, "raw.t") == [1, 2, 3, 4]
    table.append(pa.table({"id": [5], "v": ["e"]}))
    assert rows(table) == [1, 2, 3, 4, 5]
