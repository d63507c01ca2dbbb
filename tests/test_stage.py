"""Staging to Parquet from Python, and merging what was staged."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import phlo
from phlo import errors


def test_stage_writes_readable_files_with_metadata(tmp_path):
    data = pa.table({"id": list(range(2500)), "name": [f"n{i}" for i in range(2500)]})
    staged = phlo.stage(
        data,
        tmp_path / "stage",
        run_id="r1",
        partition_date=dt.date(2024, 1, 2),
        rows_per_file=1000,
    )
    assert staged.rows == 2500 and len(staged.files) == 3
    assert [f.name for f in staged.files] == [
        "r1-00001.parquet",
        "r1-00002.parquet",
        "r1-00003.parquet",
    ]
    assert staged.bytes_written == sum(f.stat().st_size for f in staged.files)
    back = staged.read()
    assert back.column("id").to_pylist() == list(range(2500))
    assert set(back.column("_phlo_run_id").to_pylist()) == {"r1"}
    assert set(back.column("_phlo_partition_date").to_pylist()) == {dt.date(2024, 1, 2)}
    assert len(set(back.column("_phlo_row_id").to_pylist())) == 2500
    assert pq.read_schema(staged.files[0]).field("id").metadata[b"PARQUET:field_id"] == b"1"
    # Row ids are stored DELTA_BYTE_ARRAY-encoded; other readers decode them too.
    count = duckdb.sql(
        f"SELECT count(*), count(DISTINCT _phlo_row_id), min(_phlo_row_id) < max(_phlo_row_id)"
        f" FROM read_parquet('{tmp_path}/stage/*.parquet')"
    ).fetchall()
    assert count == [(2500, 2500, True)]
    encodings = pq.ParquetFile(staged.files[0]).metadata.row_group(0).column(2).encodings
    assert "DELTA_BYTE_ARRAY" in encodings


def test_staged_rows_merge_into_a_table(lh, tmp_path):
    staged = phlo.stage(
        pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]}), tmp_path / "s", run_id="run7"
    )
    table = lh.create_table("raw.staged", staged.schema)
    result = table.merge(staged.read(), "id")
    assert result.rows_inserted == 3
    assert table.schema.names == [
        "id",
        "v",
        "_phlo_row_id",
        "_phlo_ingested_at",
        "_phlo_partition_date",
        "_phlo_run_id",
    ]


def test_bad_staging_input(tmp_path):
    with pytest.raises(errors.InputError, match="partition_date"):
        phlo.stage(pa.table({"id": [1]}), tmp_path, partition_date="01/02/2024")
    with pytest.raises(errors.InputError, match="reserved"):
        phlo.stage(pa.table({"_phlo_run_id": ["x"]}), tmp_path)
    with pytest.raises(errors.EmptyInputError):
        phlo.stage(pa.table({"id": pa.array([], pa.int64())}), tmp_path)
    assert not list(tmp_path.glob("*.parquet"))
