"""`Lakehouse.connect` with an S3 warehouse on a real SeaweedFS (127.0.0.1) and the SQLite
catalog: phlo's writes, PyIceberg reading them from S3, `lh.sql`, maintenance, bad URIs and
credentials."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

import phlo
from phlo.errors import ConfigError, StorageError
from seaweedfs_server import S3Server, free_port

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])


def rows(ids: range, tag: str) -> pa.Table:
    return pa.table({"id": list(ids), "v": [f"{tag}{i}" for i in ids]}, schema=SCHEMA)


def model_of(table: pa.Table) -> dict[int, str]:
    data = table.to_pydict()
    return dict(zip(data["id"], data["v"], strict=True))


@pytest.fixture
def s3_lh(tmp_path: Path, s3_server: S3Server, s3_warehouse: str) -> phlo.Lakehouse:
    lh = phlo.Lakehouse.connect(
        f"sqlite:///{tmp_path / 'catalog.db'}", s3_warehouse, s3_server.properties()
    )
    lh.create_namespace("raw")
    return lh


def test_phlo_writes_on_s3_and_pyiceberg_reads_it_there(
    s3_lh: phlo.Lakehouse, s3_server: S3Server
) -> None:
    table = s3_lh.create_table("raw.t", SCHEMA)
    model: dict[int, str] = {}
    table.append(rows(range(0, 100), "a"))
    model.update(model_of(rows(range(0, 100), "a")))
    table.merge(rows(range(50, 150), "b"), "id")
    model.update(model_of(rows(range(50, 150), "b")))
    assert model_of(table.to_arrow()) == model
    assert s3_lh.warehouse.startswith("s3://warehouse/")

    catalog = SqlCatalog(
        "phlo", uri=s3_lh.catalog_uri, warehouse=s3_lh.warehouse, **s3_server.properties()
    )
    theirs = catalog.load_table("raw.t")
    assert theirs.metadata_location.startswith(s3_lh.warehouse + "/")
    assert model_of(theirs.scan().to_arrow()) == model

    # PyIceberg's append on S3 is read back by phlo.
    theirs.append(rows(range(1000, 1010), "p"))
    model.update(model_of(rows(range(1000, 1010), "p")))
    assert model_of(s3_lh.table("raw.t").to_arrow()) == model


def test_sql_streams_s3_tables_through_phlo(s3_lh: phlo.Lakehouse) -> None:
    s3_lh.create_table("raw.t", SCHEMA).append(rows(range(0, 10), "a"))
    got = s3_lh.sql("SELECT count(*), sum(id) FROM raw.t WHERE v LIKE 'a%'").fetchall()
    assert got == [(10, 45)]


def test_transactions_and_maintenance_work_on_s3(s3_lh: phlo.Lakehouse) -> None:
    a = s3_lh.create_table("raw.a", SCHEMA)
    b = s3_lh.create_table("raw.b", SCHEMA)
    with pytest.raises(RuntimeError, match="boom"), s3_lh.transaction() as tx:
        tx.table("raw.a").append(rows(range(0, 5), "x"))
        raise RuntimeError("boom")
    assert a.to_arrow().num_rows == 0
    with s3_lh.transaction() as tx:
        tx.table("raw.a").append(rows(range(0, 5), "t"))
        tx.table("raw.b").append(rows(range(0, 3), "t"))
    assert (a.to_arrow().num_rows, b.to_arrow().num_rows) == (5, 3)

    for i in range(3):
        a.append(rows(range(10 * i + 10, 10 * i + 20), "n"))
    expected = model_of(a.to_arrow())
    future = dt.timedelta(seconds=-60)  # an age: a minute after each call, whenever it comes
    expired = s3_lh.expire_snapshots(older_than=future, keep_last=1)
    assert expired.snapshots_expired > 0
    # The aborted transaction deleted its files on S3: nothing is an orphan.
    assert s3_lh.remove_orphan_files(older_than=future, dry_run=True).files == []
    # A transaction branch deleted without that cleanup (as maintenance deletes a killed
    # transaction's) leaves its files as orphans on S3, which go; live files stay.
    leftover = s3_lh.transaction().__enter__()
    leftover.table("raw.b").append(rows(range(50, 55), "killed"))
    s3_lh.delete_branch(leftover.branch)
    orphans = s3_lh.remove_orphan_files(older_than=future)
    assert orphans.files and all(f.startswith(s3_lh.warehouse + "/") for f in orphans.files)
    assert model_of(a.to_arrow()) == expected
    assert s3_lh.remove_orphan_files(older_than=future).files == []


def test_credentials_never_show(tmp_path: Path, s3_server: S3Server, s3_warehouse: str) -> None:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    wrong = "wrong-secret-Zk31"
    with pytest.raises(StorageError) as caught:
        phlo.Lakehouse.connect(catalog, s3_warehouse, s3_server.properties(wrong))
    assert wrong not in str(caught.value)
    assert "s3.secret-access-key" in str(caught.value)

    secret = s3_server.properties()["s3.secret-access-key"]
    lh = phlo.Lakehouse.connect(catalog, s3_warehouse, s3_server.properties())
    assert secret not in repr(lh) and secret not in lh._repr_html_()
    assert s3_warehouse in repr(lh)


@pytest.mark.parametrize("rows_", [3, 600_000])
def test_a_refused_upload_is_a_storage_error_naming_the_endpoint(
    tmp_path: Path, s3_server: S3Server, s3_warehouse: str, rows_: int
) -> None:
    """A data file's upload the server refuses raises StorageError, whether the file goes up
    whole when closed (a few rows) or in parts while it is written (~30 MiB of random bytes:
    the refused part fails the write later)."""
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = phlo.Lakehouse.connect(catalog, s3_warehouse, s3_server.properties())
    lh.create_namespace("raw")
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("b", pa.binary())])
    lh.create_table("raw.t", schema)
    # SSE-C with a key that is not 256 bits: the server refuses every data upload (400).
    refused = {
        **s3_server.properties(),
        "s3.sse.type": "custom",
        "s3.sse.key": "bm90LWEta2V5",
        "s3.sse.md5": "AAAAAAAAAAAAAAAAAAAAAA==",
    }
    other = phlo.Lakehouse.connect(catalog, s3_warehouse, refused)
    blobs = pa.array([os.urandom(48) for _ in range(rows_)], pa.binary())
    batch = pa.table({"id": pa.array(range(rows_), pa.int64()), "b": blobs}, schema=schema)
    with pytest.raises(StorageError, match="refused the request") as caught:
        other.table("raw.t").append(batch)
    assert s3_server.endpoint in str(caught.value)
    assert "bm90LWEta2V5" not in str(caught.value)
    assert lh.table("raw.t").to_arrow().num_rows == 0


def test_an_unreachable_endpoint_is_a_storage_error(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StorageError, match="reachable"):
        phlo.Lakehouse.connect(
            f"sqlite:///{tmp_path / 'c.db'}",
            "s3://bucket/x",
            {"s3.endpoint": endpoint, "s3.access-key-id": "k", "s3.secret-access-key": "s"},
        )


@pytest.mark.parametrize(
    ("catalog", "warehouse", "hint"),
    [
        ("mysql://host/db", "file:///{tmp}/wh", "sqlite:///"),
        ("ftp://catalog", "file:///{tmp}/wh", r"http\(s\)://host:port"),
        ("sqlite:///", "file:///{tmp}/wh", "names no file"),
        ("sqlite:///{tmp}/c.db", "gs://bucket/x", "s3://bucket/prefix"),
        ("sqlite:///{tmp}/c.db", "s3:///x", "names no bucket"),
    ],
)
def test_bad_uris_are_config_errors_with_a_hint(
    tmp_path: Path, catalog: str, warehouse: str, hint: str
) -> None:
    tmp = str(tmp_path).lstrip("/")
    with pytest.raises(ConfigError, match=hint):
        phlo.Lakehouse.connect(catalog.format(tmp=tmp), warehouse.format(tmp=tmp))


def test_a_connected_lakehouse_has_no_root_but_a_scratch_folder(
    s3_lh: phlo.Lakehouse, s3_server: S3Server
) -> None:
    with pytest.raises(ConfigError, match="no root folder"):
        _ = s3_lh.root
    other = phlo.Lakehouse.connect(
        s3_lh.catalog_uri, s3_lh.warehouse + "-other", s3_server.properties()
    )
    assert s3_lh.scratch_dir.is_absolute()
    assert s3_lh.scratch_dir != other.scratch_dir


def test_open_is_connect_with_the_embedded_uris(tmp_path: Path) -> None:
    opened = phlo.Lakehouse.open(tmp_path)
    opened.create_namespace("raw")
    opened.create_table("raw.t", SCHEMA).append(rows(range(3), "x"))
    connected = phlo.Lakehouse.connect(opened.catalog_uri, opened.warehouse)
    assert connected.warehouse == opened.warehouse
    assert model_of(connected.table("raw.t").to_arrow()) == model_of(rows(range(3), "x"))
