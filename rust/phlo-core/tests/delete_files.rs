//! Tables carrying delete files as other engines' merge-on-read writes leave them (position
//! deletes with the spec's reserved field ids, equality deletes on a column), committed through
//! phlo's own commit path: every read (scan, time travel, merge, delete, row diff, changes,
//! compaction) leaves the deleted rows out by the spec's sequence-number rules. Each result is
//! compared with a plain model of the table (a map by key).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema as ArrowSchema};
use futures::TryStreamExt;
use iceberg::spec::{DataContentType, DataFile, DataFileBuilder, DataFileFormat, Struct};
use parquet::arrow::{ArrowWriter, PARQUET_FIELD_ID_META_KEY};
use parquet::file::properties::WriterProperties;
use phlo_core::Lakehouse;
use phlo_core::catalog::{MAIN, RefKind};
use phlo_core::compact::CompactOptions;
use phlo_core::merge::{MergeOptions, WriteMode};
use phlo_core::tables::commit::{SnapshotChange, commit, commit_append};
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions};

use crate::model::{new_table, upsert};

type Model = BTreeMap<i64, String>;

fn field(name: &str, kind: DataType, id: i32) -> Field {
    Field::new(name, kind, false).with_metadata(HashMap::from([(
        PARQUET_FIELD_ID_META_KEY.to_string(),
        id.to_string(),
    )]))
}

/// Writes `batch` as Parquet at `path` in row groups of `group_rows`; returns its size.
fn write_parquet(path: &Path, batch: &RecordBatch, group_rows: usize) -> u64 {
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    std::fs::metadata(path).unwrap().len()
}

fn described(path: &Path, content: DataContentType, rows: usize, size: u64) -> DataFileBuilder {
    let mut builder = DataFileBuilder::default();
    builder
        .content(content)
        .file_path(format!("file://{}", path.display()))
        .file_format(DataFileFormat::Parquet)
        .partition(Struct::empty())
        .record_count(rows as u64)
        .file_size_in_bytes(size);
    builder
}

fn id_v(ids: &[i64], values: &[&str]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(ArrowSchema::new(vec![
            field("id", DataType::Int64, 1),
            field("v", DataType::Utf8, 2),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(values.to_vec())),
        ],
    )
    .unwrap()
}

/// A data file of `ids` (values `v{id}`) in row groups of 3 rows.
fn data_file(dir: &Path, name: &str, ids: &[i64]) -> DataFile {
    data_file_in_groups(dir, name, ids, 3)
}

/// A data file of `ids` (values `v{id}`) in row groups of `group_rows` rows.
fn data_file_in_groups(dir: &Path, name: &str, ids: &[i64], group_rows: usize) -> DataFile {
    let values: Vec<String> = ids.iter().map(|i| format!("v{i}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let path = dir.join(format!("{name}.parquet"));
    let size = write_parquet(&path, &id_v(ids, &values), group_rows);
    described(&path, DataContentType::Data, ids.len(), size)
        .build()
        .unwrap()
}

/// A position delete file: (data file, row position) pairs, sorted as the spec asks.
fn position_deletes(dir: &Path, name: &str, rows: &[(&DataFile, i64)]) -> DataFile {
    position_deletes_builder(dir, name, rows).build().unwrap()
}

/// A position delete file of `positions` of `data` alone, which it names (as phlo writes them).
fn position_deletes_of(dir: &Path, name: &str, data: &DataFile, positions: &[i64]) -> DataFile {
    let rows: Vec<(&DataFile, i64)> = positions.iter().map(|&p| (data, p)).collect();
    position_deletes_builder(dir, name, &rows)
        .referenced_data_file(Some(data.file_path().to_string()))
        .build()
        .unwrap()
}

fn position_deletes_builder(dir: &Path, name: &str, rows: &[(&DataFile, i64)]) -> DataFileBuilder {
    let batch = RecordBatch::try_new(
        Arc::new(ArrowSchema::new(vec![
            field("file_path", DataType::Utf8, 2147483546),
            field("pos", DataType::Int64, 2147483545),
        ])),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(f, _)| f.file_path()),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, p)| *p))),
        ],
    )
    .unwrap();
    let path = dir.join(format!("{name}.parquet"));
    let size = write_parquet(&path, &batch, 1024);
    described(&path, DataContentType::PositionDeletes, rows.len(), size)
}

/// An equality delete file on column `v` (field id 2).
fn equality_deletes(dir: &Path, name: &str, values: &[&str]) -> DataFile {
    let batch = RecordBatch::try_new(
        Arc::new(ArrowSchema::new(vec![field("v", DataType::Utf8, 2)])),
        vec![Arc::new(StringArray::from(values.to_vec()))],
    )
    .unwrap();
    let path = dir.join(format!("{name}.parquet"));
    let size = write_parquet(&path, &batch, 1024);
    described(&path, DataContentType::EqualityDeletes, values.len(), size)
        .equality_ids(Some(vec![2]))
        .build()
        .unwrap()
}

async fn commit_files(lh: &Lakehouse, files: Vec<DataFile>) -> i64 {
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let change = SnapshotChange {
        branch: MAIN.into(),
        added_files: files,
        ..Default::default()
    };
    commit_append(lh.catalog(), lh.file_io(), table, &change)
        .await
        .unwrap()
        .snapshot_id
}

fn to_model(batches: &[RecordBatch]) -> Model {
    let mut model = Model::new();
    for batch in batches {
        let ids = batch
            .column_by_name("id")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let values = batch
            .column_by_name("v")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for i in 0..batch.num_rows() {
            let old = model.insert(ids.value(i), values.value(i).to_string());
            assert!(old.is_none(), "key {} read twice", ids.value(i));
        }
    }
    model
}

async fn scan(lh: &Lakehouse, options: &ScanOptions) -> Model {
    let plan = lh.scan("raw.t", options).await.unwrap();
    let batches: Vec<RecordBatch> = plan.into_stream().unwrap().try_collect().await.unwrap();
    to_model(&batches)
}

fn model(ids: impl IntoIterator<Item = i64>) -> Model {
    ids.into_iter().map(|i| (i, format!("v{i}"))).collect()
}

fn without(mut model: Model, ids: &[i64]) -> Model {
    for id in ids {
        model.remove(id);
    }
    model
}

fn one(batch: RecordBatch) -> Vec<Result<RecordBatch, ArrowError>> {
    vec![Ok(batch)]
}

/// A table of two data files (ids 0..10 in row groups of 3, ids 10..13), and a lakehouse over
/// a folder that also holds the hand-written files.
async fn table() -> (tempfile::TempDir, Lakehouse, DataFile, DataFile) {
    let (dir, lh) = new_table(&id_v(&[], &[]).schema()).await;
    let first = data_file(dir.path(), "first", &(0..10).collect::<Vec<_>>());
    let second = data_file(dir.path(), "second", &[10, 11, 12]);
    commit_files(&lh, vec![first.clone(), second.clone()]).await;
    (dir, lh, first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn position_deletes_hide_rows_from_every_read() {
    let (dir, lh, first, second) = table().await;
    let before = lh.load_table("raw.t", MAIN).await.unwrap();
    let before = before.snapshot_for_ref(MAIN).unwrap().snapshot_id();
    lh.catalog()
        .create_ref("before", RefKind::Tag, MAIN)
        .unwrap();
    // Rows in several row groups, across batch boundaries, of both files.
    let deletes = position_deletes(
        dir.path(),
        "pos",
        &[(&first, 0), (&first, 4), (&first, 9), (&second, 1)],
    );
    let deleting = commit_files(&lh, vec![deletes]).await;
    let expected = without(model(0..13), &[0, 4, 9, 11]);
    assert_eq!(scan(&lh, &ScanOptions::default()).await, expected);
    let small_batches = ScanOptions {
        batch_size: Some(2),
        ..Default::default()
    };
    assert_eq!(scan(&lh, &small_batches).await, expected);
    let filtered = ScanOptions {
        filters: vec![Filter {
            column: "id".into(),
            op: FilterOp::In,
            values: vec![Literal::Int(3), Literal::Int(4), Literal::Int(11)],
        }],
        ..Default::default()
    };
    assert_eq!(scan(&lh, &filtered).await, model([3]));
    let plan = lh.scan("raw.t", &ScanOptions::default()).await.unwrap();
    let deletes_per_file: Vec<usize> = plan.data_files().map(|(_, d, _)| d).collect();
    assert_eq!(
        deletes_per_file,
        [1, 1],
        "lh.sql must not read these files directly"
    );

    // Time travel to before the deletes reads every row.
    let old = ScanOptions {
        snapshot_id: Some(before),
        ..Default::default()
    };
    assert_eq!(scan(&lh, &old).await, model(0..13));

    // The row diff sees the deletes as removed rows, and only those.
    let diff = lh
        .diff_rows("raw.t", "before", MAIN, &["id".into()], 10)
        .await
        .unwrap();
    assert_eq!((diff.added, diff.removed, diff.changed), (0, 4, 0));

    // Changes: the deleting snapshot removed rows, so it cannot be passed over; after it, yes.
    let err = lh
        .changes("raw.t", MAIN, Some(before), None, None)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains(&deleting.to_string()), "{err}");

    // A delete counts only rows that were still there.
    let gone = Filter {
        column: "id".into(),
        op: FilterOp::Lt,
        values: vec![Literal::Int(2)],
    };
    let deleted = lh
        .delete("raw.t", &[gone], MAIN, HashMap::new())
        .await
        .unwrap();
    assert_eq!(deleted.rows_deleted, 1, "row 0 was deleted already");
    let mut expected = without(expected, &[1]);
    assert_eq!(scan(&lh, &ScanOptions::default()).await, expected);

    // Compaction folds the deletes into the rewritten files and drops the delete file.
    assert_eq!(total_delete_files(&lh).await, "1");
    let compacted = lh.compact("raw.t", MAIN, &compact_all()).await.unwrap();
    assert!(compacted.files_rewritten >= 1);
    assert_eq!(compacted.rows, expected.len() as u64);
    assert_eq!(scan(&lh, &ScanOptions::default()).await, expected);
    assert_eq!(total_delete_files(&lh).await, "0");
    let plan = lh.scan("raw.t", &ScanOptions::default()).await.unwrap();
    assert!(plan.data_files().all(|(_, deletes, _)| deletes == 0));

    // A merge after that: a deleted key is an insert, a live key an update.
    let batch = id_v(&[4, 5, 11, 12], &["four", "five", "eleven", "twelve"]);
    let result = lh.merge("raw.t", one(batch), &upsert(None)).await.unwrap();
    assert_eq!((result.rows_updated, result.rows_inserted), (2, 2));
    for (id, v) in [(4, "four"), (5, "five"), (11, "eleven"), (12, "twelve")] {
        expected.insert(id, v.into());
    }
    assert_eq!(scan(&lh, &ScanOptions::default()).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_files_apply_by_sequence_number() {
    let (dir, lh, first, _second) = table().await;
    // Equality deletes remove matching rows of earlier files only: `v3` appended again in the
    // same commit, and `v5` later, stay.
    let again = data_file(dir.path(), "again", &[3]);
    let eq = equality_deletes(dir.path(), "eq", &["v3", "v5", "v11"]);
    commit_files(&lh, vec![eq, again]).await;
    let later = data_file(dir.path(), "later", &[5]);
    // A position delete applies to files of its own commit too.
    let own = data_file(dir.path(), "own", &[20, 21]);
    let own_deletes = position_deletes(dir.path(), "own-pos", &[(&own, 1)]);
    // And to older files, by path: position 2 of `first` is id 2.
    let old_deletes = position_deletes(dir.path(), "old-pos", &[(&first, 2)]);
    commit_files(&lh, vec![later, own, own_deletes, old_deletes]).await;
    // Ids 3 and 5 come back once each (from the files written with or after the deletes).
    let expected = without(model(0..13), &[2, 11])
        .into_iter()
        .chain([(20, "v20".to_string())])
        .collect::<Model>();
    assert_eq!(scan(&lh, &ScanOptions::default()).await, expected);

    let batch = id_v(&[3, 11], &["three", "eleven"]);
    let result = lh.merge("raw.t", one(batch), &upsert(None)).await.unwrap();
    assert_eq!((result.rows_updated, result.rows_inserted), (1, 1));
    let mut expected = expected;
    expected.insert(3, "three".into());
    expected.insert(11, "eleven".into());
    assert_eq!(scan(&lh, &ScanOptions::default()).await, expected);

    // Merged files are rewritten without the deleted rows; files the merge left alone keep
    // their deletes until compaction folds them in.
    let compacted = lh.compact("raw.t", MAIN, &compact_all()).await.unwrap();
    assert_eq!(compacted.rows, expected.len() as u64);
    assert_eq!(scan(&lh, &ScanOptions::default()).await, expected);
    assert_eq!(total_delete_files(&lh).await, "0");
}

fn compact_all() -> CompactOptions {
    CompactOptions {
        target_file_size: Some(1 << 20),
        filters: vec![],
        properties: HashMap::new(),
    }
}

async fn total_delete_files(lh: &Lakehouse) -> String {
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let snapshot = table.snapshot_for_ref(MAIN).unwrap();
    snapshot.summary().additional_properties["total-delete-files"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_that_raced_a_delete_file_is_a_conflict() {
    let (dir, lh, first, _second) = table().await;
    let stale = lh.load_table("raw.t", MAIN).await.unwrap();
    commit_files(
        &lh,
        vec![position_deletes(dir.path(), "pos", &[(&first, 0)])],
    )
    .await;
    // A rewrite planned before the deletes landed: its copy of `first` still holds row 0.
    let copy = data_file(dir.path(), "copy", &(0..10).collect::<Vec<_>>());
    let change = SnapshotChange {
        branch: MAIN.into(),
        added_files: vec![copy],
        removed_files: vec![first],
        ..Default::default()
    };
    let err = commit(lh.catalog(), lh.file_io(), stale, &change, &|_| Ok(()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "commit_conflict", "{err}");
    assert!(err.to_string().contains("delete files"), "{err}");
    assert_eq!(
        scan(&lh, &ScanOptions::default()).await,
        without(model(0..13), &[0])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_a_branch_that_rewrote_a_file_main_gained_deletes_for_is_a_conflict() {
    let (dir, lh, first, _second) = table().await;
    lh.catalog()
        .create_ref("dev", RefKind::Branch, MAIN)
        .unwrap();
    // On the branch, an upsert rewrites `first` (its copy holds row 0).
    let dev = MergeOptions {
        ref_name: "dev".into(),
        ..upsert(None)
    };
    lh.merge("raw.t", one(id_v(&[5], &["five"])), &dev)
        .await
        .unwrap();
    // Meanwhile another engine deletes row 0 of `first` on main.
    commit_files(
        &lh,
        vec![position_deletes(dir.path(), "pos", &[(&first, 0)])],
    )
    .await;
    let err = lh
        .merge_branch("dev", MAIN, &Default::default())
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), "commit_conflict", "{err}");
    assert!(err.to_string().contains("delete files"), "{err}");
    assert_eq!(
        scan(&lh, &ScanOptions::default()).await,
        without(model(0..13), &[0])
    );
}

/// Ids 100..130 in row groups of 3 rows (positions 0..30), with three delete files of it:
/// positions at the file's first and last rows, on both sides of row-group boundaries, every
/// row of two row groups, some positions in two files; one names the file (as phlo's own
/// do), one also deletes a row of `first`. And an equality delete of id 125.
async fn edges_table() -> (tempfile::TempDir, Lakehouse, Model) {
    let (dir, lh, first, _second) = table().await;
    let big = data_file(dir.path(), "big", &(100..130).collect::<Vec<_>>());
    commit_files(&lh, vec![big.clone()]).await;
    lh.catalog()
        .create_ref("before", RefKind::Tag, MAIN)
        .unwrap();
    let shared = position_deletes(dir.path(), "a", &[0, 2, 3, 9, 10, 11].map(|p| (&big, p)));
    let own = position_deletes_of(dir.path(), "b", &big, &[3, 11, 14, 15, 29]);
    let mixed = position_deletes(
        dir.path(),
        "c",
        &[
            (&big, 15),
            (&big, 20),
            (&big, 21),
            (&big, 22),
            (&big, 23),
            (&first, 0),
        ],
    );
    let eq = equality_deletes(dir.path(), "eq", &["v125"]);
    commit_files(&lh, vec![shared, own, mixed, eq]).await;
    let gone = [0, 2, 3, 9, 10, 11, 14, 15, 20, 21, 22, 23, 25, 29].map(|p| 100 + p);
    let expected = without(model((0..13).chain(100..130)), &gone);
    let expected = without(expected, &[0]);
    (dir, lh, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_at_row_group_edges_and_from_several_files_match_the_model() {
    let (_dir, lh, expected) = edges_table().await;
    for batch_size in [None, Some(1), Some(2), Some(4)] {
        let options = ScanOptions {
            batch_size,
            ..Default::default()
        };
        assert_eq!(
            scan(&lh, &options).await,
            expected,
            "batches of {batch_size:?}"
        );
    }
    let plan = lh.scan("raw.t", &ScanOptions::default()).await.unwrap();
    let mut per_file: Vec<usize> = plan.data_files().map(|(_, d, _)| d).collect();
    per_file.sort();
    // Delete files without a named data file (and the equality one) apply to every file.
    assert_eq!(per_file, [3, 3, 4]);

    // A filter and a projection: only `v` is returned, `id` is read for the filter.
    let options = ScanOptions {
        columns: Some(vec!["v".into()]),
        filters: vec![Filter {
            column: "id".into(),
            op: FilterOp::Between,
            values: vec![Literal::Int(101), Literal::Int(126)],
        }],
        batch_size: Some(2),
        ..Default::default()
    };
    let plan = lh.scan("raw.t", &options).await.unwrap();
    let batches: Vec<RecordBatch> = plan.into_stream().unwrap().try_collect().await.unwrap();
    let mut values: Vec<String> = Vec::new();
    for batch in &batches {
        assert_eq!(batch.num_columns(), 1);
        let v = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        values.extend(v.iter().map(|v| v.unwrap().to_string()));
    }
    values.sort();
    let mut want: Vec<String> = expected.range(101..=126).map(|(_, v)| v.clone()).collect();
    want.sort();
    assert_eq!(values, want);

    // The row diff from before the deletes counts exactly the deleted rows of `big`.
    let diff = lh
        .diff_rows("raw.t", "before", MAIN, &["id".into()], 10)
        .await
        .unwrap();
    assert_eq!((diff.added, diff.removed, diff.changed), (0, 15, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_on_read_writes_over_skipped_rows_match_the_model() {
    let (_dir, lh, mut expected) = edges_table().await;
    // Live keys next to deleted ones (and after a whole deleted row group), deleted keys
    // (inserted again), and a key deleted by value.
    let ids = [101, 103, 104, 116, 124, 125, 128, 129];
    let values: Vec<String> = ids.iter().map(|i| format!("new{i}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let options = upsert(Some(WriteMode::MergeOnRead));
    let result = lh
        .merge("raw.t", one(id_v(&ids, &values)), &options)
        .await
        .unwrap();
    let live = ids.iter().filter(|i| expected.contains_key(i)).count() as u64;
    assert_eq!(
        (result.rows_updated, result.rows_inserted),
        (live, ids.len() as u64 - live)
    );
    assert!(result.delete_files_added >= 1);
    for (id, v) in ids.iter().zip(&values) {
        expected.insert(*id, v.to_string());
    }
    assert_eq!(scan(&lh, &ScanOptions::default()).await, expected);

    // A merge-on-read delete counts only rows still live.
    let deleted = lh
        .delete_with_mode(
            "raw.t",
            &[Filter {
                column: "id".into(),
                op: FilterOp::Between,
                values: vec![Literal::Int(108), Literal::Int(113)],
            }],
            MAIN,
            HashMap::new(),
            Some(WriteMode::MergeOnRead),
        )
        .await
        .unwrap();
    let before = expected.len();
    expected.retain(|k, _| !(108..=113).contains(k));
    assert_eq!(deleted.rows_deleted, (before - expected.len()) as u64);
    assert_eq!(scan(&lh, &ScanOptions::default()).await, expected);

    let compacted = lh.compact("raw.t", MAIN, &compact_all()).await.unwrap();
    assert_eq!(compacted.rows, expected.len() as u64);
    assert_eq!(scan(&lh, &ScanOptions::default()).await, expected);
    assert_eq!(total_delete_files(&lh).await, "0");
}

/// Random deleted positions spread over three delete files (repeats among them), over files
/// of random row-group sizes, read in random batch sizes, against the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_position_deletes_over_row_groups_match_the_model() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    for round in 0..6 {
        let (dir, lh, _first, _second) = table().await;
        let rows = 20 + next(60) as i64;
        let group_rows = 1 + next(9) as usize;
        let ids: Vec<i64> = (1000..1000 + rows).collect();
        let data = data_file_in_groups(dir.path(), "data", &ids, group_rows);
        commit_files(&lh, vec![data.clone()]).await;
        let mut gone = std::collections::BTreeSet::new();
        let mut files = Vec::new();
        for f in 0..3 {
            // Runs of deleted rows of random length: a whole group now and then.
            let mut positions = std::collections::BTreeSet::new();
            for _ in 0..next(6) {
                let start = next(rows as u64) as i64;
                let len = 1 + next(group_rows as u64 + 2) as i64;
                positions.extend(start..(start + len).min(rows));
            }
            let positions: Vec<i64> = positions.into_iter().collect();
            gone.extend(positions.iter().map(|p| 1000 + p));
            let name = format!("d{f}");
            // The first names no data file (it is shared by a scan's files), the others do.
            match (positions.is_empty(), f) {
                (true, _) => {}
                (false, 0) => {
                    let rows: Vec<_> = positions.iter().map(|&p| (&data, p)).collect();
                    files.push(position_deletes(dir.path(), &name, &rows));
                }
                (false, _) => files.push(position_deletes_of(dir.path(), &name, &data, &positions)),
            }
        }
        commit_files(&lh, files).await;
        let expected = without(
            model((0..13).chain(ids.iter().copied())),
            &gone.into_iter().collect::<Vec<_>>(),
        );
        let options = ScanOptions {
            batch_size: Some(1 + next(7) as usize),
            ..Default::default()
        };
        assert_eq!(scan(&lh, &options).await, expected, "round {round}");
    }
}

/// A table of one data file of many row groups (fewer files than workers: its row groups are
/// read by both), with position deletes (whole groups, runs over group edges) and an equality
/// delete: every read, filtered or not, in any batch size, is the model's rows exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_file_split_over_row_groups_with_deletes_matches_the_model() {
    let (dir, lh) = new_table(&id_v(&[], &[]).schema()).await;
    let ids: Vec<i64> = (0..200).collect();
    let data = data_file_in_groups(dir.path(), "data", &ids, 7);
    commit_files(&lh, vec![data.clone()]).await;
    let positions: Vec<i64> = [0, 6, 7, 13]
        .into_iter()
        .chain(21..28)
        .chain(190..200)
        .collect();
    let deletes = position_deletes_of(dir.path(), "pos", &data, &positions);
    let eq = equality_deletes(dir.path(), "eq", &["v50", "v100", "v101"]);
    commit_files(&lh, vec![deletes, eq]).await;
    let gone: Vec<i64> = positions.iter().copied().chain([50, 100, 101]).collect();
    let expected = without(model(ids), &gone);
    for batch_size in [None, Some(1), Some(5)] {
        let options = ScanOptions {
            batch_size,
            ..Default::default()
        };
        assert_eq!(scan(&lh, &options).await, expected, "{batch_size:?}");
        let filtered = ScanOptions {
            filters: vec![Filter {
                column: "id".into(),
                op: FilterOp::Between,
                values: vec![Literal::Int(5), Literal::Int(150)],
            }],
            ..options
        };
        let want: Model = expected
            .range(5..=150)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        assert_eq!(scan(&lh, &filtered).await, want, "{batch_size:?}");
    }
}
