"""The requests writes make on S3 (a real SeaweedFS, through a counting proxy): planning's
reads of the manifest list and manifests serve the commit too (of a merge, a delete and a
compaction), a table's metadata file is read once per location (opening the table and merging
into it read it once; a commit of another process moves the pointer, and its new file is
read), and a commit another writer lands between the plan and the commit is still read,
validated against and kept. On a SQLite and a PostgreSQL catalog."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

import phlo
import process_support
from phlo.errors import CommitConflictError, StorageError
from s3_requests import LoseReply, Request, Requests, counting_proxy
from seaweedfs_server import S3Server

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])


def rows(ids: range, tag: str) -> pa.Table:
    return pa.table({"id": list(ids), "v": [f"{tag}{i}" for i in ids]}, schema=SCHEMA)


def contents(table: phlo.Table) -> dict[int, str]:
    data = table.to_arrow().to_pydict()
    return dict(zip(data["id"], data["v"], strict=True))


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def lakehouses(
    catalog: str, s3_server: S3Server, s3_warehouse: str
) -> Iterator[tuple[phlo.Lakehouse, phlo.Lakehouse, Requests]]:
    """The same lakehouse twice: through the counting proxy, and direct (another writer)."""
    direct = phlo.Lakehouse.connect(catalog, s3_warehouse, s3_server.properties())
    direct.create_namespace("raw")
    table = direct.create_table("raw.t", SCHEMA)
    table.append(rows(range(0, 100), "a"))
    table.append(rows(range(100, 200), "a"))
    with counting_proxy(s3_server.endpoint) as (endpoint, requests):
        properties = {**s3_server.properties(), "s3.endpoint": endpoint}
        yield phlo.Lakehouse.connect(catalog, s3_warehouse, properties), direct, requests


def test_a_merge_reads_the_metadata_manifest_list_and_manifests_once(lakehouses) -> None:
    lh, direct, requests = lakehouses
    model = contents(direct.table("raw.t"))
    requests.clear()
    table = lh.table("raw.t")
    result = table.merge(rows(range(150, 250), "m"), "id")
    # Opening the table read its metadata file; the merge's own load of the table found the
    # same location in the catalog and read nothing (it read the file again before). Then one
    # read each of the manifest list and the two manifests (one per append): planning's, which
    # the commit reuses (it read the list and both manifests again before).
    assert len(requests.gets("metadata.json")) == 1
    assert len(requests.gets("manifest list")) == 1
    manifests = requests.gets("avro")
    assert len(manifests) == len(set(manifests)) == 2, manifests
    assert (result.commit_retries, result.rows_updated, result.rows_inserted) == (0, 50, 50)
    model.update({i: f"m{i}" for i in range(150, 250)})
    assert contents(table) == model


def test_a_delete_and_a_compaction_read_the_manifest_list_and_manifests_once(lakehouses) -> None:
    lh, direct, requests = lakehouses
    table = lh.table("raw.t")
    model = contents(table)
    for write in (lambda: table.delete(("id", "<", 50)), lambda: table.compact()):
        requests.clear()
        result = write()
        # Planning's reads of the head's manifest list and manifests serve the commit too
        # (it read the list and the manifests of the files it removes again before).
        assert len(requests.gets("manifest list")) == 1
        manifests = requests.gets("avro")
        assert len(manifests) == len(set(manifests)), manifests
        assert result.commit_retries == 0
    assert result.files_rewritten >= 2
    model = {i: v for i, v in model.items() if i >= 50}
    assert contents(table) == model == contents(direct.table("raw.t"))


def test_a_filtered_compaction_reads_the_manifest_list_and_manifests_once(lakehouses) -> None:
    lh, direct, requests = lakehouses
    direct.table("raw.t").append(rows(range(200, 300), "a"))
    table = lh.table("raw.t")
    model = contents(table)
    requests.clear()
    result = table.compact(filter=("id", ">=", 100))
    # The filter is judged on the files planning read, which the commit reuses: no scan of
    # its own reads the list and the manifests again.
    assert len(requests.gets("manifest list")) == 1
    manifests = requests.gets("avro")
    assert len(manifests) == len(set(manifests)) == 3, manifests
    # Only the two files that may hold ids >= 100 were rewritten.
    assert (result.files_rewritten, result.files_added, result.commit_retries) == (2, 1, 0)
    assert contents(table) == model == contents(direct.table("raw.t"))


def test_a_delete_re_reads_what_another_writer_committed_before_it(lakehouses) -> None:
    lh, direct, requests = lakehouses
    table, model, committed = raced_by_an_append(lh, direct, requests)
    result = table.delete(("id", "<", 50))
    assert committed.is_set()
    # The first attempt lost; the retry built on the new head's manifest list, which the
    # plan never read, and kept the other writer's rows.
    assert result.commit_retries == 1
    assert len(set(requests.gets("manifest list"))) == 2
    model = {i: v for i, v in model.items() if i >= 50}
    model.update({i: f"other{i}" for i in range(1000, 1010)})
    assert contents(table) == model


def test_the_metadata_file_a_commit_wrote_is_not_read_back(lakehouses) -> None:
    lh, direct, requests = lakehouses
    table = lh.table("raw.t")
    table.merge(rows(range(150, 250), "m"), "id")
    requests.clear()
    # The next merge (and the read after it) load the table the first merge left: its
    # metadata file is the one that merge wrote, known without a read.
    result = table.merge(rows(range(200, 300), "n"), "id")
    assert contents(table) == contents(direct.table("raw.t"))
    assert requests.gets("metadata.json") == []
    assert (result.rows_updated, result.rows_inserted) == (50, 50)


def _append_in_another_process(catalog: str, warehouse: str, properties: dict[str, str]) -> None:
    other = phlo.Lakehouse.connect(catalog, warehouse, properties)
    other.table("raw.t").append(rows(range(1000, 1010), "other"))


def test_a_commit_of_another_process_is_read_at_its_new_location(
    lakehouses, catalog: str, s3_server: S3Server, s3_warehouse: str
) -> None:
    lh, direct, requests = lakehouses
    model = contents(direct.table("raw.t"))
    table = lh.table("raw.t")
    before = table.metadata_location
    process = process_support.context().Process(
        target=_append_in_another_process,
        args=(catalog, s3_warehouse, s3_server.properties()),
    )
    process.start()
    process.join(timeout=120)
    assert process.exitcode == 0
    theirs = direct.table("raw.t").metadata_location
    assert theirs != before
    requests.clear()
    result = table.merge(rows(range(150, 250), "m"), "id")
    # The catalog points at the other process's metadata file, which this process had never
    # seen: read once, and the merge builds on it, keeping the appended rows.
    read = [path.rsplit("/", 1)[-1] for path in requests.gets("metadata.json")]
    assert read == [theirs.rsplit("/", 1)[-1]]
    assert result.commit_retries == 0
    model.update({i: f"other{i}" for i in range(1000, 1010)})
    model.update({i: f"m{i}" for i in range(150, 250)})
    assert contents(table) == model == contents(direct.table("raw.t"))


def commit_before_first_data_write(requests: Requests, commit) -> threading.Event:
    """Runs `commit` (another writer's) when the proxy sees the first request writing a data
    file: planning is over then, the commit has not started."""
    done = threading.Event()

    def before(request: Request) -> None:
        writes_data = request.method in ("PUT", "POST") and ".parquet" in request.path
        if writes_data and not done.is_set():
            done.set()
            commit()

    requests.before = before
    return done


def raced_by_an_append(
    lh: phlo.Lakehouse, direct: phlo.Lakehouse, requests: Requests
) -> tuple[phlo.Table, dict[int, str], threading.Event]:
    """`raw.t` as `lh` loads it, its rows, and an event set once another writer (`direct`)
    has appended ids 1000..1009 just before this one's first data write."""
    table = lh.table("raw.t")
    model = contents(table)
    other = direct.table("raw.t")
    committed = commit_before_first_data_write(
        requests, lambda: other.append(rows(range(1000, 1010), "other"))
    )
    requests.clear()
    return table, model, committed


def test_a_commit_landing_between_plan_and_commit_is_read_and_kept(lakehouses) -> None:
    lh, direct, requests = lakehouses
    table, model, committed = raced_by_an_append(lh, direct, requests)
    result = table.merge(rows(range(150, 250), "m"), "id")
    assert committed.is_set()
    # The first attempt lost the race; the retry read the new head's manifest list (which
    # the plan never saw) and built on it, keeping the other writer's rows.
    assert result.commit_retries == 1
    lists = requests.gets("manifest list")
    assert len(set(lists)) == 2, lists
    model.update({i: f"m{i}" for i in range(150, 250)})
    model.update({i: f"other{i}" for i in range(1000, 1010)})
    assert contents(table) == model


def test_a_file_compacted_away_between_plan_and_commit_is_a_conflict(lakehouses) -> None:
    lh, direct, requests = lakehouses
    table = lh.table("raw.t")
    other = direct.table("raw.t")
    commit_before_first_data_write(requests, lambda: other.compact())
    with pytest.raises(CommitConflictError, match="no longer in the table"):
        table.merge(rows(range(150, 250), "m"), "id")
    # What the compaction left: every row once, none of the merge's.
    assert contents(direct.table("raw.t")) == {i: f"a{i}" for i in range(200)}
    assert direct.table("raw.t").history()[-1].operation == "replace"


def test_a_data_file_goes_up_in_parts_at_once_while_it_is_written(
    s3_server: S3Server, s3_warehouse: str, tmp_path: Path
) -> None:
    """The parts of a large data file are uploaded concurrently, not one after the other in
    the writer's call: while the first part's upload is held at the proxy, the next part's
    upload arrives."""
    parts: list[tuple[str, str]] = []
    second = threading.Event()
    lock = threading.Lock()

    def before(request: Request) -> None:
        if request.method != "PUT" or request.kind != "multipart":
            return
        number = parse_qs(request.query)["partNumber"][0]
        with lock:
            parts.append((request.path, number))
            first = len(parts) == 1
        if first:
            # Held until another part of the same file is on its way. A writer that waits for
            # each part sends none: its request times out and it sends this part again.
            second.wait(timeout=60)
        elif request.path == parts[0][0] and number != parts[0][1]:
            second.set()

    with counting_proxy(s3_server.endpoint) as (endpoint, requests):
        requests.before = before
        properties = {**s3_server.properties(), "s3.endpoint": endpoint}
        lh = phlo.Lakehouse.connect(f"sqlite:///{tmp_path / 'c.db'}", s3_warehouse, properties)
        lh.create_namespace("raw")
        schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("b", pa.binary())])
        table = lh.create_table("raw.big", schema)
        # Random bytes do not compress: row groups of 128k rows are ~6 MiB each, so every
        # data file (a lane takes 128k-row slices in turn) is two or more parts of 5 MiB.
        n = 600_000
        ids = pa.array(range(n), pa.int64())
        blobs = pa.array([os.urandom(48) for _ in range(n)], pa.binary())
        table.append(pa.table({"id": ids, "b": blobs}, schema=schema))
        assert second.is_set(), f"part uploads seen: {parts}"
        # The next part came while the first was held, not after it was sent again.
        of_file = [number for path, number in parts if path == parts[0][0]]
        assert of_file[1] != of_file[0], parts
        assert table.to_arrow().num_rows == n


def test_a_merge_on_read_merge_uploads_its_rows_while_it_reads_the_table(lakehouses) -> None:
    """Merge-on-read keeps the table's files: the batch's rows are written and uploaded
    while the candidates are read, not after. The proxy holds the merge's first read of a
    data file until a data file of the merge's rows is being uploaded."""
    lh, direct, requests = lakehouses
    table = lh.table("raw.t")
    model = contents(table)
    uploading = threading.Event()
    waited: list[bool] = []

    def before(request: Request) -> None:
        if request.method in ("PUT", "POST") and request.kind in ("parquet", "multipart"):
            if "-deletes-" not in request.path:
                uploading.set()
        elif request.method == "GET" and request.kind == "parquet" and not waited:
            # A merge that writes its rows only after reading the table never sends them
            # while this read is held: then the hold ends after a minute and the test fails.
            waited.append(uploading.wait(timeout=60))

    requests.before = before
    result = table.merge(rows(range(150, 250), "m"), "id", write_mode="merge-on-read")
    assert waited == [True]
    assert (result.rows_updated, result.rows_inserted, result.files_removed) == (50, 50, 0)
    model.update({i: f"m{i}" for i in range(150, 250)})
    assert contents(table) == model == contents(direct.table("raw.t"))


def test_a_data_file_upload_whose_connection_drops_is_sent_again(lakehouses) -> None:
    """A connection the store drops mid-upload is temporary: the writer sends the file again
    (as iceberg's own writer did), and the append lands whole."""
    lh, direct, requests = lakehouses
    model = contents(direct.table("raw.t"))
    dropped: list[Request] = []

    def drop_first_data_upload(request: Request) -> None:
        if request.method == "PUT" and request.path.endswith(".parquet") and not dropped:
            dropped.append(request)
            raise ConnectionResetError("the proxy drops this connection")

    requests.before = drop_first_data_upload
    lh.table("raw.t").append(rows(range(200, 300), "n"))
    requests.before = None
    assert dropped, "no data file was uploaded through the proxy"
    sent = [r for r in requests.seen if r.method == "PUT" and r.path == dropped[0].path]
    assert len(sent) == 2, sent
    model.update({i: f"n{i}" for i in range(200, 300)})
    assert contents(direct.table("raw.t")) == model


BLOBS = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("b", pa.binary())])


def random_rows(n: int) -> pa.Table:
    """Random bytes do not compress: 128k rows (a lane's slice, one data file) are ~7 MiB,
    more than one part of 5 MiB and less than two."""
    blobs = pa.array([os.urandom(48) for _ in range(n)], pa.binary())
    return pa.table({"id": pa.array(range(n), pa.int64()), "b": blobs}, schema=BLOBS)


def part_number(request: Request) -> str | None:
    """The part an upload request sends, if it sends one."""
    if request.method != "PUT" or request.kind != "multipart":
        return None
    return parse_qs(request.query)["partNumber"][0]


def test_a_data_file_starts_uploading_when_its_first_part_is_full(lakehouses) -> None:
    """A data file's first part is sent as soon as it is full, before the writer has the
    bytes of a second: the appended stream gives one slice of rows (one row group of ~7 MiB,
    more than a part) and then waits until a part of it has reached the proxy before giving
    the rest. A writer that keeps the first part back until a second is full never sends it
    while the stream waits."""
    lh, direct, requests = lakehouses
    table = lh.create_table("raw.blobs", BLOBS)
    first_part = threading.Event()
    waited: list[bool] = []

    def before(request: Request) -> None:
        if part_number(request) is not None:
            first_part.set()

    def batches() -> Iterator[pa.RecordBatch]:
        yield from random_rows(128 * 1024).to_batches()
        waited.append(first_part.wait(timeout=60))
        yield from random_rows(1000).to_batches()

    requests.before = before
    table.append(pa.RecordBatchReader.from_batches(BLOBS, batches()))
    requests.before = None
    assert waited == [True], "no part was sent while the stream waited"
    assert direct.table("raw.blobs").to_arrow().num_rows == 128 * 1024 + 1000


def test_files_smaller_than_a_part_go_up_in_one_put_each(lakehouses) -> None:
    lh, direct, requests = lakehouses
    requests.clear()
    lh.table("raw.t").append(rows(range(200, 300), "n"))
    writes = [r for r in requests.seen if r.method in ("PUT", "POST")]
    assert writes and all(r.method == "PUT" and not r.query for r in writes), writes
    # Each file once: data file, manifest, manifest list, metadata.
    assert len({r.path for r in writes}) == len(writes) >= 4, writes
    assert direct.table("raw.t").to_arrow().num_rows == 300


def test_a_part_whose_connection_drops_is_sent_again(lakehouses) -> None:
    lh, direct, requests = lakehouses
    table = lh.create_table("raw.blobs", BLOBS)
    dropped: list[Request] = []

    def drop_the_first_part(request: Request) -> None:
        if part_number(request) == "1" and not dropped:
            dropped.append(request)
            raise ConnectionResetError("the proxy drops this connection")

    requests.before = drop_the_first_part
    table.append(random_rows(150_000))
    requests.before = None
    assert dropped, "no part was uploaded through the proxy"
    sent = [r for r in requests.seen if r.path == dropped[0].path and part_number(r) == "1"]
    assert len(sent) == 2, sent
    assert direct.table("raw.blobs").to_arrow().num_rows == 150_000


def test_a_failed_upload_is_aborted_and_leaves_no_object(lakehouses, s3_server: S3Server) -> None:
    """A part that cannot be sent (every attempt's connection dropped) fails the write: the
    multipart upload is aborted (the store drops the parts it holds), no object appears, and
    nothing is committed."""
    lh, direct, requests = lakehouses
    table = lh.create_table("raw.blobs", BLOBS)
    failed: list[Request] = []

    def drop_every_second_part(request: Request) -> None:
        if part_number(request) == "2" and (not failed or request.path == failed[0].path):
            failed.append(request)
            raise ConnectionResetError("the proxy drops this connection")

    requests.before = drop_every_second_part
    with pytest.raises(StorageError):
        table.append(random_rows(150_000))
    requests.before = None
    assert len(failed) >= 2, "the part was not sent again"
    path = failed[0].path
    upload = parse_qs(failed[0].query)["uploadId"][0]
    aborts = [
        r
        for r in requests.seen
        if r.method == "DELETE" and r.path == path and parse_qs(r.query).get("uploadId") == [upload]
    ]
    assert len(aborts) == 1, [r for r in requests.seen if r.path == path]
    info = s3_filesystem(s3_server).get_file_info(path.lstrip("/"))
    assert info.type == pafs.FileType.NotFound
    assert direct.table("raw.blobs").to_arrow().num_rows == 0


def is_completion(request: Request) -> bool:
    """Whether `request` completes a multipart upload."""
    return request.method == "POST" and "uploadId" in parse_qs(request.query)


def test_a_merge_reads_the_next_files_row_groups_while_it_rewrites_one(lakehouses) -> None:
    """Copy-on-write: while one candidate file is rewritten, the next one's first row groups
    are read already (one file ahead), so moving on to it costs no round trip. The proxy holds
    the first read of a row group (a data file's second GET: its first is the tail with the
    footer) until a row group of another file is asked for, or until the reader gives up on
    the held read (its timeout) and sends it again. A merge that reads a file's row groups
    only once the file before it is rewritten asks for the other file's only after that."""
    lh, direct, requests = lakehouses
    # Random values do not compress: row groups of 128k rows are ~3 MiB, so a row group ends
    # before each file's last MiB (read with its footer). One file per partition.
    schema = pa.schema(
        [pa.field("id", pa.int64(), nullable=False), pa.field("p", pa.int64())]
        + [pa.field(f"r{i}", pa.int64()) for i in range(2)]
    )
    table = lh.create_table("raw.wide", schema, partition_by=[("p", "identity")])
    n = 600_000
    ids = list(range(n))
    random.Random(7).shuffle(ids)

    def data(ids: list[int]) -> pa.Table:
        noise = [pa.array(random.getrandbits(62) for _ in ids) for _ in range(2)]
        return pa.table([pa.array(ids), pa.array([i % 2 for i in ids]), *noise], schema=schema)

    table.append(data(ids))
    reads: dict[str, int] = {}
    held: list[Request] = []
    other_file, given_up = threading.Event(), threading.Event()
    waited: list[bool] = []

    def before(request: Request) -> None:
        if request.method != "GET" or request.kind != "parquet":
            return
        reads[request.path] = reads.get(request.path, 0) + 1
        if reads[request.path] == 1:
            return
        if not held:
            held.append(request)
            # Until the other file is read, or the reader gives up on this read and sends it
            # again (its timeout): then the merge went on only once the hold had ended.
            while not (other_file.is_set() or given_up.is_set()):
                other_file.wait(timeout=0.05)
            waited.append(other_file.is_set())
        elif request.path != held[0].path:
            other_file.set()
        elif request.range == held[0].range:
            given_up.set()

    requests.before = before
    batch = data(list(range(n - 500, n + 500)))
    result = table.merge(batch, "id")
    requests.before = None
    assert len(reads) == 2, reads
    assert waited == [True], "no row group of the next file was read while one was held"
    assert (result.rows_updated, result.rows_inserted, result.files_removed) == (500, 500, 2)
    assert direct.table("raw.wide").to_arrow().num_rows == n + 500


def forgetting_a_completed_upload(
    requests: Requests, server: S3Server, replace: Callable[[bytes], bytes | None]
) -> list[Request]:
    """Loses the reply to a data file's first multipart completion, and before the writer sends
    it again makes the store forget the upload, as S3 may once an upload is complete: the object
    is written over with `replace(its bytes)` (or deleted, for `None`) by a plain PUT, which
    SeaweedFS, idempotent for an object its upload completed, does not recognise as the
    upload's. The completions seen, once a second was sent."""
    completions: list[Request] = []

    def before(request: Request) -> None:
        if not is_completion(request) or (completions and request.path != completions[0].path):
            return
        completions.append(request)
        if len(completions) == 1:
            raise LoseReply
        fs, key = s3_filesystem(server), request.path.lstrip("/")
        with fs.open_input_stream(key) as f:
            replaced = replace(f.read())
        if replaced is None:
            fs.delete_file(key)
            return
        with fs.open_output_stream(key) as f:
            f.write(replaced)

    requests.before = before
    return completions


def test_a_completion_whose_reply_is_lost_and_upload_forgotten_keeps_the_object(
    lakehouses, s3_server: S3Server
) -> None:
    """The store completes a data file's multipart upload but the reply is lost (the proxy
    closes the connection once the store has answered): the writer sends the completion
    again, and the store, which no longer knows the upload, answers NoSuchUpload. The object
    is there with every byte written, which a HEAD shows: the append succeeds."""
    lh, direct, requests = lakehouses
    table = lh.create_table("raw.blobs", BLOBS)
    completions = forgetting_a_completed_upload(requests, s3_server, lambda data: data)
    appended = random_rows(150_000)
    table.append(appended)
    requests.before = None
    assert len(completions) == 2, completions
    heads = [r for r in requests.seen if r.method == "HEAD"]
    assert [r.path for r in heads] == [completions[0].path]
    assert heads[0].at > completions[1].at
    landed = direct.table("raw.blobs").to_arrow().sort_by("id")
    assert all(landed[c].to_pylist() == appended[c].to_pylist() for c in ("id", "b"))


@pytest.mark.parametrize("replace", [lambda data: None, lambda data: data[:-1]])
def test_a_resent_completion_of_an_upload_not_found_fails_unless_the_object_is_whole(
    lakehouses, s3_server: S3Server, replace
) -> None:
    """The same, but the object is gone, or shorter than what was written, when the completion
    is sent again: it is not this upload's, so NoSuchUpload is the failure it looks like, and
    nothing is committed."""
    lh, direct, requests = lakehouses
    table = lh.create_table("raw.blobs", BLOBS)
    completions = forgetting_a_completed_upload(requests, s3_server, replace)
    with pytest.raises(StorageError, match="NoSuchUpload"):
        table.append(random_rows(150_000))
    requests.before = None
    assert len(completions) == 2, completions
    assert direct.table("raw.blobs").to_arrow().num_rows == 0


def s3_filesystem(server: S3Server) -> pafs.S3FileSystem:
    props = server.properties()
    return pafs.S3FileSystem(
        access_key=props["s3.access-key-id"],
        secret_key=props["s3.secret-access-key"],
        endpoint_override=server.endpoint,
        region=props["s3.region"],
        scheme="http",
        allow_bucket_creation=False,
    )
