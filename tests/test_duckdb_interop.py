"""Tables DuckDB wrote through `phlo catalog serve`: DuckDB 1.5.5 inserts, deletes and updates
(it writes position-delete files), then phlo scans, appends, merges in both write modes and
compacts on top. After every step phlo, PyIceberg (through the same server) and DuckDB read
exactly the rows of a plain Python model. A corrupt manifest is a StorageError naming it."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.catalog.sql import SqlCatalog
from tests.duckdb_support import duckdb_rest

import phlo
from phlo import errors
from phlo.catalog_server import CatalogServer

SCHEMA = {"id": pa.int64(), "seq": pa.int64(), "v": pa.string()}
Model = dict[int, tuple[int, str]]


def rows_of(data: pa.Table) -> Model:
    rows = data.select(["id", "seq", "v"]).to_pylist()
    model = {r["id"]: (r["seq"], r["v"]) for r in rows}
    assert len(model) == len(rows), "a key was read twice"
    return model


def batch(model_rows: Model) -> pa.Table:
    keys = sorted(model_rows)
    return pa.table(
        {
            "id": keys,
            "seq": [model_rows[k][0] for k in keys],
            "v": [model_rows[k][1] for k in keys],
        },
        schema=pa.schema([pa.field(n, t) for n, t in SCHEMA.items()]),
    )


class Readers:
    """phlo, PyIceberg and DuckDB, each reading `raw.t` of main as it is now."""

    def __init__(self, lh: phlo.Lakehouse, uri: str) -> None:
        self.lh, self.uri = lh, uri
        self.catalog = RestCatalog("phlo", uri=uri)

    def duckdb(self, *statements: str) -> list[list[list]]:
        return duckdb_rest(self.uri, "main", list(statements))

    def data_files(self) -> set[str]:
        files = self.catalog.load_table("raw.t").inspect.data_files()
        return set(files.column("file_path").to_pylist())

    def delete_files(self) -> list[dict]:
        return self.catalog.load_table("raw.t").inspect.delete_files().to_pylist()

    def check(self, model: Model, step: str) -> None:
        assert rows_of(self.lh.table("raw.t").scan().to_arrow()) == model, f"phlo after {step}"
        pyiceberg = self.catalog.load_table("raw.t").scan().to_arrow()
        assert rows_of(pyiceberg) == model, f"PyIceberg after {step}"
        [duck] = self.duckdb("SELECT id, seq, v FROM lake.raw.t")
        assert {k: (s, v) for k, s, v in duck} == model, f"DuckDB after {step}"
        assert len(duck) == len(model), f"DuckDB read a key twice after {step}"


def seeded(lh: phlo.Lakehouse) -> tuple[phlo.Table, Model]:
    table = lh.create_table("raw.t", SCHEMA)
    model: Model = {}
    for part in range(3):
        rows = {k: (0, f"p{k}") for k in range(part * 20, (part + 1) * 20)}
        table.append(batch(rows))
        model.update(rows)
    return table, model


def test_duckdb_writes_then_phlo_merges_in_both_modes_and_compacts(lh: phlo.Lakehouse):
    table, model = seeded(lh)
    with CatalogServer(lh, port=0) as server:
        readers = Readers(lh, server.uri)
        phlo_files = readers.data_files()

        # DuckDB: an INSERT (a data file of its own), a DELETE and an UPDATE across phlo's
        # files and its own (position deletes, and the updated rows as a new data file).
        inserted = {k: (1, f"d{k}") for k in range(100, 110)}
        values = ", ".join(f"({k}, {s}, '{v}')" for k, (s, v) in inserted.items())
        readers.duckdb(f"INSERT INTO lake.raw.t VALUES {values}")
        model.update(inserted)
        duckdb_files = readers.data_files() - phlo_files
        assert len(duckdb_files) == 1
        readers.check(model, "DuckDB's INSERT")

        readers.duckdb("DELETE FROM lake.raw.t WHERE id BETWEEN 10 AND 14 OR id IN (45, 103)")
        for k in [*range(10, 15), 45, 103]:
            del model[k]
        readers.check(model, "DuckDB's DELETE")
        readers.duckdb("UPDATE lake.raw.t SET seq = 2, v = 'u' || id WHERE id % 7 = 0")
        model.update({k: (2, f"u{k}") for k in model if k % 7 == 0})
        readers.check(model, "DuckDB's UPDATE")

        # What DuckDB wrote: position deletes (content 1), no equality deletes, on a v2 table.
        deletes = readers.delete_files()
        assert deletes and all(d["content"] == 1 for d in deletes)
        assert readers.catalog.load_table("raw.t").format_version == 2
        assert lh.table("raw.t").history()[-1].summary.get("total-equality-deletes", "0") == "0"
        assert duckdb_files <= readers.data_files(), "DuckDB's insert is still live"

        # phlo on top: a copy-on-write merge of keys in phlo's files only (DuckDB's inserted
        # file is kept), with new keys.
        cow = {k: (3, f"c{k}") for k in [1, 2, 15, 21, 200, 201]}
        result = table.merge(batch(cow), "id", write_mode="copy-on-write")
        model.update(cow)
        assert (result.rows_updated, result.rows_inserted, result.delete_files_added) == (4, 2, 0)
        readers.check(model, "a copy-on-write merge")
        assert duckdb_files <= readers.data_files()

        # A merge-on-read merge updating rows in DuckDB's file and in files DuckDB deleted from.
        mor = {k: (4, f"m{k}") for k in [11, 16, 104, 105, 300]}
        result = table.merge(batch(mor), "id", write_mode="merge-on-read")
        model.update(mor)
        assert (result.rows_updated, result.rows_inserted) == (3, 2)
        assert result.delete_files_added >= 2 and result.files_removed == 0
        readers.check(model, "a merge-on-read merge")
        assert duckdb_files <= readers.data_files()

        appended = {k: (5, f"a{k}") for k in range(400, 405)}
        table.append(batch(appended))
        model.update(appended)
        readers.check(model, "an append")

        compacted = table.compact(target_file_size=1 << 30)
        assert compacted.rows == len(model)
        assert readers.delete_files() == []
        assert len(readers.data_files()) == 1
        readers.check(model, "compaction")

        # DuckDB writes again on what phlo compacted.
        readers.duckdb("DELETE FROM lake.raw.t WHERE id = 400")
        del model[400]
        readers.check(model, "DuckDB's DELETE after compaction")


# The `schema` DuckDB 1.4.4 writes into the Avro metadata of a manifest of an unpartitioned
# table (copied from one it wrote through `phlo catalog serve`): the manifest entries' schema,
# not the table's, which iceberg-rust alone refuses to parse.
DUCKDB_14_SCHEMA = (
    '{"type":"struct","schema-id":0,"fields":[{"id":0,"name":"status","required":true,'
    '"type":"int"},{"id":1,"name":"snapshot_id","required":false,"type":"long"},{"id":3,'
    '"name":"sequence_number","required":false,"type":"long"},{"id":4,'
    '"name":"file_sequence_number","required":false,"type":"long"},{"id":2,"name":"data_file",'
    '"required":true,"type":{"type":"struct","fields":[{"id":134,"name":"content",'
    '"required":true,"type":"int"},{"id":100,"name":"file_path","required":true,'
    '"type":"string"},{"id":101,"name":"file_format","required":true,"type":"string"},'
    '{"id":102,"name":"partition","required":true,"type":{"type":"struct","fields":[]}},'
    '{"id":103,"name":"record_count","required":true,"type":"long"},{"id":104,'
    '"name":"file_size_in_bytes","required":true,"type":"long"}]}}]}'
)


def _read_long(data: bytes, at: int) -> tuple[int, int]:
    raw = shift = 0
    while True:
        byte = data[at]
        at += 1
        raw |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), at


def _long(value: int) -> bytes:
    raw, out = (value << 1) ^ (value >> 63), bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    return bytes([*out, raw])


def set_avro_metadata(path: Path, key: str, value: str) -> None:
    """Sets one key of an Avro file's header metadata, as another writer would have (the
    blocks after the header are kept byte for byte)."""
    data = path.read_bytes()
    assert data[:4] == b"Obj\x01"
    at, metadata = 4, {}
    while True:
        count, at = _read_long(data, at)
        if count == 0:
            break
        if count < 0:
            _, at = _read_long(data, at)
        for _ in range(abs(count)):
            fields = []
            for _ in range(2):
                size, at = _read_long(data, at)
                fields.append(data[at : at + size])
                at += size
            metadata[fields[0]] = fields[1]
    metadata[key.encode()] = value.encode()
    header = b"".join(_long(len(k)) + k + _long(len(v)) + v for k, v in metadata.items())
    path.write_bytes(b"Obj\x01" + _long(len(metadata)) + header + _long(0) + data[at:])


def manifests_of(lh: phlo.Lakehouse, name: str) -> list[str]:
    table = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table(name)
    snapshot = table.current_snapshot()
    assert snapshot is not None
    return [m.manifest_path for m in snapshot.manifests(table.io)]


def test_manifests_duckdb_14_wrote_are_read_merged_and_compacted(lh: phlo.Lakehouse):
    table, model = seeded(lh)
    manifests = manifests_of(lh, "raw.t")
    for manifest in manifests:
        set_avro_metadata(Path(manifest.removeprefix("file://")), "schema", DUCKDB_14_SCHEMA)
    with CatalogServer(lh, port=0) as server:
        readers = Readers(lh, server.uri)
        readers.check(model, "DuckDB 1.4's manifests")
        files = readers.data_files()
        cow = {k: (1, f"c{k}") for k in [0, 1, 100]}
        table.merge(batch(cow), "id", write_mode="copy-on-write")
        model.update(cow)
        readers.check(model, "a copy-on-write merge")
        mor = {k: (2, f"m{k}") for k in [25, 45, 101]}
        table.merge(batch(mor), "id", write_mode="merge-on-read")
        model.update(mor)
        readers.check(model, "a merge-on-read merge")
        assert len(files - readers.data_files()) == 1, "only the file the first merge rewrote"
        table.compact(target_file_size=1 << 30)
        readers.check(model, "compaction")
    # phlo's own manifests replaced them: none of DuckDB's is listed any more.
    assert not set(manifests) & set(manifests_of(lh, "raw.t"))


def test_a_corrupt_manifest_is_a_storage_error_naming_it_and_changes_nothing(lh: phlo.Lakehouse):
    table, model = seeded(lh)
    manifest = manifests_of(lh, "raw.t")[0]
    local = Path(manifest.removeprefix("file://"))
    good = local.read_bytes()
    # Avro's magic, then garbage: not a manifest any engine could read.
    local.write_bytes(b"Obj\x01" + bytes(range(256)) * 4)
    location = lh.table("raw.t").metadata_location
    named = re.escape(manifest.removeprefix("file://"))

    with pytest.raises(errors.StorageError, match=named) as failure:
        lh.table("raw.t").scan().to_arrow()
    assert "not a readable Iceberg manifest" in str(failure.value)
    assert "restore it" in str(failure.value)
    with pytest.raises(errors.StorageError, match=named):
        table.merge(batch({1: (9, "x"), 500: (9, "y")}), "id", write_mode="copy-on-write")
    with pytest.raises(errors.StorageError, match=named):
        table.compact(target_file_size=1 << 30)
    assert lh.table("raw.t").metadata_location == location
    # Nothing else changed: with the manifest restored the table reads as before.
    local.write_bytes(good)
    assert rows_of(lh.table("raw.t").scan().to_arrow()) == model


def test_deletion_vectors_duckdb_writes_on_v3_tables_are_refused_not_misread(lh: phlo.Lakehouse):
    # On a format-v3 table DuckDB deletes with deletion vectors (Puffin files): phlo reads
    # Parquet delete files only, so every read and write of it is a typed error naming the
    # file, never rows the deletes should have hidden.
    with CatalogServer(lh, port=0) as server:
        duckdb_rest(
            server.uri,
            "main",
            [
                "CREATE TABLE lake.raw.v3 (id BIGINT, seq BIGINT, v VARCHAR) "
                "WITH ('format-version' = '3')",
                "INSERT INTO lake.raw.v3 VALUES (1, 0, 'a'), (2, 0, 'b'), (3, 0, 'c')",
            ],
        )
        table = lh.table("raw.v3")
        assert rows_of(table.scan().to_arrow()) == {1: (0, "a"), 2: (0, "b"), 3: (0, "c")}
        [[[deleted]]] = duckdb_rest(server.uri, "main", ["DELETE FROM lake.raw.v3 WHERE id = 2"])
        assert deleted == 1
    location = lh.table("raw.v3").metadata_location
    table = lh.table("raw.v3")
    puffin = r"delete file \S+-deletes\.puffin is puffin.*deletion vectors"
    with pytest.raises(errors.InputError, match=puffin):
        table.scan().to_arrow()
    with pytest.raises(errors.InputError, match=puffin):
        table.merge(batch({1: (1, "x"), 9: (1, "y")}), "id")
    with pytest.raises(errors.InputError, match=puffin):
        table.compact(target_file_size=1 << 30)
    with pytest.raises(errors.InputError, match="format v3"):
        table.append(batch({9: (1, "y")}))
    assert lh.table("raw.v3").metadata_location == location
