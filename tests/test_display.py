"""How phlo's objects show themselves in Jupyter (`_repr_html_`) and a console (`__repr__`):
the right facts, HTML-escaped, previews that read only what they show — and the tour notebook
(docs/notebooks/tour.ipynb) executed in a real kernel, its outputs checked."""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import time
from pathlib import Path

import pyarrow as pa
import pytest
from pandera.pandas import Field

import phlo
from notebooks import execute, html_of, outputs_by_tag
from phlo import PhloSchema, RangeCheck, UniqueCheck, display, errors, phlo_quality

NOTEBOOK = Path(__file__).parent.parent / "docs" / "notebooks" / "tour.ipynb"
HOSTILE = "<script>alert(1)</script>"


def rows_between(start: int, stop: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(start, stop), pa.int64()),
            HOSTILE: [f"<b>{i}</b>" for i in range(start, stop)],
            "ts": pa.array(
                [dt.datetime(2024, 1, 1 + i % 3, tzinfo=dt.UTC) for i in range(start, stop)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


@pytest.fixture
def hostile(lh: phlo.Lakehouse) -> phlo.Table:
    """A table whose column name and values are HTML, in three appends of 10 rows."""
    table = lh.create_table("raw.hostile", rows_between(0, 1).schema, partition_by=["day(ts)"])
    for k in range(3):
        time.sleep(0.01)  # snapshots of distinct milliseconds: time travel by time resolves them
        table.append(rows_between(10 * k, 10 * k + 10), message=f"batch <{k}>")
    return table


def assert_escaped(markup: str) -> None:
    assert "<script" not in markup and "<b>" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup or "&lt;b&gt;" in markup


def cells(markup: str) -> list[str]:
    """The text of each cell (inner tags dropped, entities decoded) of every grid."""
    return [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td>(.*?)</td>", markup)]


# --- Lakehouse and Table --------------------------------------------------------------


def test_the_lakehouse_lists_tables_with_rows_and_branches(
    lh: phlo.Lakehouse, hostile: phlo.Table
) -> None:
    lh.create_table("raw.empty", {"id": pa.int64()})
    lh.create_branch("dev")
    lh.create_tag("v1")
    found = cells(lh._repr_html_())
    # raw.hostile: 30 rows in 3 snapshots; raw.empty: nothing yet.
    assert found[found.index("raw.hostile") + 1 : found.index("raw.hostile") + 3] == ["30", "3"]
    assert found[found.index("raw.empty") + 1 : found.index("raw.empty") + 3] == ["0", "0"]
    assert "dev" in found and "v1" in found
    assert repr(lh) == f"Lakehouse({str(lh.root)!r}, tables=2, branches=['main', 'dev'])"


def test_a_table_shows_iceberg_types_partitioning_and_snapshots(hostile: phlo.Table) -> None:
    markup = hostile._repr_html_()
    assert_escaped(markup)
    assert "30 rows · 3 columns · partitioned by day(ts)" in markup
    found = cells(markup)
    assert ["1", "id", "long"] == found[0:3] and "timestamptz" in found
    snapshot_ids = [str(s.snapshot_id) for s in hostile.history()]
    assert [c for c in found if c.isdigit() and len(c) > 6] == snapshot_ids[::-1]
    assert "batch <2>" in found  # the commit message (escaped in the markup)
    assert repr(hostile) == (
        f"Table('raw.hostile', ref='main', rows=30, snapshots=3, columns=[id, {HOSTILE}, ts])"
    )


def test_a_table_opened_in_the_past_shows_only_its_snapshots(
    lh: phlo.Lakehouse, hostile: phlo.Table
) -> None:
    first = hostile.history()[0]
    old = lh.table("raw.hostile", as_of=first.timestamp)
    assert "rows=10, snapshots=1" in repr(old)
    assert f"as of {first.timestamp}" in old._repr_html_()


def test_a_table_that_is_gone_says_so_instead_of_raising(
    lh: phlo.Lakehouse, hostile: phlo.Table
) -> None:
    lh.drop_table("raw.hostile")
    assert "cannot be displayed" in hostile._repr_html_() and "raw.hostile" in hostile._repr_html_()
    assert repr(hostile) == "Table('raw.hostile', ref='main')"


def test_a_contract_description_is_escaped_in_the_schema(lh: phlo.Lakehouse) -> None:
    class Contract(PhloSchema):
        note: str = Field(description="<img src=x onerror=alert(1)>")

    markup = lh.create_table("raw.noted", Contract)._repr_html_()
    assert "<img" not in markup and "&lt;img src=x onerror=alert(1)&gt;" in markup


# --- head and scans -------------------------------------------------------------------


def test_head_returns_the_first_rows_as_arrow(hostile: phlo.Table) -> None:
    all_ids = set(hostile.to_arrow()["id"].to_pylist())
    first = hostile.head(4)
    assert isinstance(first, pa.Table) and first.schema == hostile.scan().schema
    assert first.num_rows == 4 and set(first["id"].to_pylist()) <= all_ids
    assert hostile.head(100).num_rows == 30
    assert hostile.head(0).num_rows == 0 and hostile.head(0).schema.names == first.schema.names
    narrowed = hostile.head(5, columns=["id"], filter=("id", ">=", 25))
    assert narrowed.column_names == ["id"] and sorted(narrowed["id"].to_pylist()) == [
        25,
        26,
        27,
        28,
        29,
    ]
    with pytest.raises(errors.InputError, match="n"):
        hostile.head(-1)


def test_head_reads_only_the_files_its_rows_come_from(lh: phlo.Lakehouse) -> None:
    table = lh.create_table("raw.many", {"id": pa.int64()})
    for k in range(40):
        table.append(pa.table({"id": pa.array(range(100 * k, 100 * k + 100), pa.int64())}))
    files = table.scan().data_files
    for path in files[4:]:  # the scan reads files in this order, a few at a time
        os.remove(path.removeprefix("file://"))
    with pytest.raises(errors.StorageError):
        table.to_arrow()  # reading everything needs the removed files
    kept = {i for k in range(40) for i in range(100 * k, 100 * k + 100)}
    assert table.head(5).num_rows == 5 and set(table.head(5)["id"].to_pylist()) <= kept
    assert "first 10 rows" in table.scan()._repr_html_()


def test_a_scan_preview_leaves_the_scan_unread(hostile: phlo.Table) -> None:
    scan = hostile.scan(filter=("id", "<", 25))
    markup = scan._repr_html_()
    assert_escaped(markup)
    assert f"{scan.files_scanned} of {scan.files_total} data files" in markup
    shown = [int(c) for c in cells(markup) if c.isdigit()]
    assert len(shown) == display.PREVIEW_ROWS and all(i < 25 for i in shown)
    assert sorted(scan.head(30)["id"].to_pylist()) == list(range(25))
    assert scan.to_arrow().num_rows == 25  # the scan itself was not consumed
    assert repr(scan).startswith(f"Scan(snapshot_id={scan.snapshot_id}, files=")


def test_a_preview_reads_the_snapshot_the_scan_was_planned_on(hostile: phlo.Table) -> None:
    scan = hostile.scan()
    hostile.append(rows_between(1000, 1100))
    assert max(scan.head(200)["id"].to_pylist()) < 1000


def test_a_changes_scan_previews_the_appended_rows(hostile: phlo.Table) -> None:
    first = hostile.history()[0].snapshot_id
    changes = hostile.changes(first)
    assert sorted(changes.head(50)["id"].to_pylist()) == list(range(10, 30))
    assert changes.to_arrow().num_rows == 20


# --- results and errors ---------------------------------------------------------------


def test_write_results_show_their_fields(lh: phlo.Lakehouse, hostile: phlo.Table) -> None:
    appended = hostile.append(rows_between(30, 35))
    merged = hostile.merge(rows_between(33, 37), unique_key="id")
    append_cells = cells(appended._repr_html_())
    assert str(appended.snapshot_id) in append_cells and "5" in append_cells
    merge_markup = merged._repr_html_()
    assert re.search(r"<th>rows_inserted</th><td>2</td>", merge_markup)
    assert re.search(r"<th>rows_updated</th><td>2</td>", merge_markup)
    assert "<th>commit</th>" in merge_markup  # the timings

    lh.create_branch("dev")
    lh.table("raw.hostile", ref="dev").append(rows_between(50, 52))
    diff = lh.diff_rows("raw.hostile", "main", "dev", key="id")
    diff_markup = diff._repr_html_()
    assert_escaped(diff_markup)
    assert "&lt;b&gt;50&lt;/b&gt;" in diff_markup  # the added sample, as a grid
    assert "['raw.hostile']" in repr(lh.merge("dev"))


def test_a_check_result_shows_outcome_sample_and_sql(
    lh: phlo.Lakehouse, hostile: phlo.Table
) -> None:
    @phlo_quality(
        table="raw.hostile",
        checks=[RangeCheck(column="id", min_value=0, max_value=27), UniqueCheck(columns=["id"])],
        partition_aware=False,
    )
    def hostile_quality() -> None:
        """Ids in range and unique."""

    in_range, unique = hostile_quality.run(lakehouse=lh)
    failed = in_range._repr_html_()
    assert "failed (error)" in failed and "2 of 30 rows failed" in failed
    assert sorted(int(c) for c in cells(failed) if c in ("28", "29")) == [28, 29]
    assert "&quot;id&quot;" in failed  # the repro SQL, escaped
    assert "passed" in unique._repr_html_() and "0 of 30 rows failed" in unique._repr_html_()


def test_a_validation_error_shows_failed_checks_and_cases() -> None:
    class Contract(PhloSchema):
        name: str = Field(isin=["a", "b"])
        n: int = Field(ge=0)

    data = pa.table({"name": ["a", HOSTILE, "c"], "n": [1, -1, 2]})
    with pytest.raises(errors.ValidationError) as caught:
        phlo.validate(data, Contract)
    markup = caught.value._repr_html_()
    assert_escaped(markup)
    summary = cells(markup)
    assert summary[summary.index("name") + 1 : summary.index("name") + 4] == [
        "isin(['a', 'b'])",
        "check_failed",
        "2",
    ]
    assert summary[summary.index("n") + 3] == "1"
    assert "failure cases" in markup and "&lt;script&gt;alert(1)&lt;/script&gt;" in markup


# --- the notebook ---------------------------------------------------------------------


def test_the_tour_notebook_runs_and_shows_rich_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    notebook = execute(NOTEBOOK, tmp_path, monkeypatch, work)

    out = outputs_by_tag(notebook)
    assert not [
        o for cell in notebook.cells for o in cell.get("outputs", []) if o["output_type"] == "error"
    ]
    table = html_of(out["table"])[0]
    assert (
        "<code>raw.glucose_entries</code>" in table and "partitioned by day(date_string)" in table
    )
    assert ["1", "_id", "string", ""] == cells(table)[0:4]  # required: no "nullable" mark
    assert "timestamptz" in cells(table) and "sensor glucose value, mg/dL" in table
    assert "<th>rows</th><td>12</td>" in html_of(out["append"])[0]
    merged = html_of(out["merge"])[0]
    assert (
        "<th>rows_inserted</th><td>1</td>" in merged and "<th>rows_updated</th><td>2</td>" in merged
    )

    head = out["head"][0]["data"]["text/plain"]
    assert head.startswith("pyarrow.Table") and '_id: [["e000","e001","e002"]]' in head

    # sgv >= 140: readings 8-11 (100 + 5 i), e012 (160, inserted) and e003 (upserted to 250).
    scan = html_of(out["scan"])[0]
    assert sorted(int(c) for c in cells(scan) if c.isdigit()) == [140, 145, 150, 155, 160, 250]

    error = html_of(out["error"])[0]
    assert "ValidationError" in error and "duplicate_values" in error and "e021" in error

    diff = html_of(out["diff"])[0]
    assert "<th>added</th><td>2</td>" in diff and "e013" in diff and "e014" in diff

    quality = [html for html in html_of(out["quality"])]
    assert len(quality) == 4
    assert ["passed" in q and "failed (error)" not in q for q in quality] == [
        True,
        True,
        False,
        True,
    ]
    assert "2 of 15 rows failed" in quality[2]  # sgv 250 and 40

    ingestion = html_of(out["ingestion"])[0]
    assert "published" in ingestion and "<code>raw.glucose_readings</code>" in ingestion
    assert "<th>rows extracted</th><td>6</td>" in ingestion and "pandera_contract" in ingestion

    lakehouse = cells(html_of(out["lakehouse"])[0])
    assert lakehouse[lakehouse.index("raw.glucose_entries") + 1] == "15"
    assert lakehouse[lakehouse.index("raw.glucose_readings") + 1] == "6"
    assert "dev" in lakehouse
    assert out["sql"][0]["data"]["text/plain"] == "[(15, 250)]"
