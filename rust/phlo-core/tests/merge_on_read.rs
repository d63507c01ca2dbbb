//! Merge-on-read writes: merges and deletes in copy-on-write, merge-on-read and auto modes
//! against a reference model (a map by key), with compactions in between; the position-delete
//! files phlo writes (fields, field ids, sort order, `referenced_data_file`), the snapshot
//! summaries' delete totals, time travel, and bad write modes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use futures::TryStreamExt;
use iceberg::spec::DataContentType;
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::compact::CompactOptions;
use phlo_core::error::Error;
use phlo_core::merge::{MergeOptions, WriteMode};
use phlo_core::tables::discard::Uncommitted;
use phlo_core::tables::manifests::snapshot_files;
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions};

use crate::model::upsert;

/// key → (seq, value)
type Model = BTreeMap<i64, (i64, String)>;

/// xorshift: a seeded generator so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
    ]))
}

fn batch(rows: &[(i64, i64, String)]) -> Vec<Result<RecordBatch, ArrowError>> {
    vec![Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.2.as_str()),
            )),
        ],
    )
    .unwrap())]
}

fn between(low: i64, high: i64) -> Filter {
    Filter {
        column: "id".into(),
        op: FilterOp::Between,
        values: vec![Literal::Int(low), Literal::Int(high)],
    }
}

async fn contents(lh: &Lakehouse, snapshot_id: Option<i64>) -> Model {
    let options = ScanOptions {
        snapshot_id,
        ..Default::default()
    };
    let plan = lh.scan("raw.t", &options).await.unwrap();
    let batches: Vec<RecordBatch> = plan.into_stream().unwrap().try_collect().await.unwrap();
    let mut rows = Model::new();
    for b in batches {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let seqs = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        let values = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            let previous = rows.insert(ids.value(i), (seqs.value(i), values.value(i).to_string()));
            assert!(previous.is_none(), "key {} read twice", ids.value(i));
        }
    }
    rows
}

/// Appends keys `0..4 * size` as four files of `size` rows (sequence 0, value `a{key}`), and
/// to `model`.
async fn append_parts(lh: &Lakehouse, model: &mut Model, size: i64) {
    for part in 0..4 {
        let rows: Vec<_> = (part * size..(part + 1) * size)
            .map(|k| (k, 0, format!("a{k}")))
            .collect();
        lh.append("raw.t", batch(&rows), MAIN, HashMap::new())
            .await
            .unwrap();
        model.extend(rows.into_iter().map(|(k, s, v)| (k, (s, v))));
    }
}

async fn setup(properties: HashMap<String, String>) -> (tempfile::TempDir, Lakehouse) {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    lh.create_table("raw.t", &schema(), &[], properties, MAIN)
        .await
        .unwrap();
    (dir, lh)
}

/// The live delete files of the head, checked against the spec: position deletes with the
/// reserved field ids, one data file each (named by `referenced_data_file`, live), positions
/// ascending; the summary's totals match them. Returns how many there are.
async fn check_delete_files(lh: &Lakehouse) -> usize {
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let Some(snapshot) = table.snapshot_for_ref(MAIN) else {
        return 0;
    };
    let files = snapshot_files(lh.file_io(), &table, snapshot)
        .await
        .unwrap();
    let live: HashSet<&str> = files.data.iter().map(|f| f.file.file_path()).collect();
    let mut positions_total = 0;
    for delete in &files.deletes {
        let file = &delete.file;
        assert_eq!(file.content_type(), DataContentType::PositionDeletes);
        let target = file.referenced_data_file().expect("referenced_data_file");
        assert!(live.contains(target.as_str()), "{target} is not live");
        let path = file.file_path().strip_prefix("file://").unwrap();
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
        let fields: Vec<(String, String)> = reader
            .schema()
            .fields()
            .iter()
            .map(|f| {
                let id = f.metadata()[PARQUET_FIELD_ID_META_KEY].clone();
                (f.name().clone(), id)
            })
            .collect();
        assert_eq!(
            fields,
            [
                ("file_path".to_string(), "2147483546".to_string()),
                ("pos".to_string(), "2147483545".to_string())
            ]
        );
        let mut positions = Vec::new();
        for (path, pos) in delete_rows(reader) {
            assert_eq!(path, target);
            positions.push(pos);
        }
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "not sorted");
        assert_eq!(positions.len() as u64, file.record_count());
        positions_total += positions.len();
    }
    let summary = &snapshot.summary().additional_properties;
    assert_eq!(
        summary["total-delete-files"],
        files.deletes.len().to_string()
    );
    assert_eq!(
        summary["total-position-deletes"],
        positions_total.to_string()
    );
    files.deletes.len()
}

/// The (`file_path`, `pos`) rows of a position delete file.
fn delete_rows(reader: ParquetRecordBatchReaderBuilder<std::fs::File>) -> Vec<(String, i64)> {
    let mut rows = Vec::new();
    for b in reader.build().unwrap() {
        let b = b.unwrap();
        let paths = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let pos = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        rows.extend(
            paths
                .iter()
                .map(|p| p.unwrap().to_string())
                .zip(pos.values().iter().copied()),
        );
    }
    rows
}

/// Per live data file of the head: its stored rows and how many of them delete files remove.
async fn deleted_per_file(lh: &Lakehouse) -> Vec<(String, u64, u64)> {
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let Some(snapshot) = table.snapshot_for_ref(MAIN) else {
        return vec![];
    };
    let files = snapshot_files(lh.file_io(), &table, snapshot)
        .await
        .unwrap();
    let mut deleted: HashMap<String, HashSet<i64>> = HashMap::new();
    for delete in &files.deletes {
        let path = delete.file.file_path().strip_prefix("file://").unwrap();
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
        for (target, pos) in delete_rows(reader) {
            deleted.entry(target).or_default().insert(pos);
        }
    }
    files
        .data
        .iter()
        .map(|f| {
            let path = f.file.file_path();
            let gone = deleted.get(path).map_or(0, HashSet::len) as u64;
            (path.to_string(), f.file.record_count(), gone)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_and_deletes_in_every_mode_match_a_reference_model() {
    for (seed, mode) in [
        (7_u64, WriteMode::CopyOnWrite),
        (1234, WriteMode::MergeOnRead),
        (99_991, WriteMode::Auto),
        (4242, WriteMode::MergeOnRead),
    ] {
        let (_dir, lh) = setup(HashMap::new()).await;
        let mut rng = Rng(seed);
        let mut model = Model::new();
        let mut history: Vec<(i64, Model)> = Vec::new();
        let mut saw_deletes = false;
        // Several files, so that a batch replaces a small part of each.
        append_parts(&lh, &mut model, 50).await;
        for step in 1..=14_i64 {
            let action = rng.next(10);
            let snapshot = if action < 6 {
                // Upsert: updates of (possibly already updated or deleted) keys, and inserts.
                let n = 1 + rng.next(12) as usize;
                let rows: Vec<_> = (0..n)
                    .map(|i| {
                        let k = rng.next(240) as i64;
                        (k, step, format!("s{step}-{i}"))
                    })
                    .collect();
                let result = lh
                    .merge("raw.t", batch(&rows), &upsert(Some(mode)))
                    .await
                    .unwrap();
                for (k, s, v) in rows {
                    model.insert(k, (s, v));
                }
                if mode == WriteMode::CopyOnWrite {
                    assert_eq!(result.delete_files_added, 0);
                }
                Some(result.snapshot_id)
            } else if action < 9 {
                let low = rng.next(240) as i64;
                let high = low + rng.next(8) as i64;
                let result = lh
                    .delete_with_mode(
                        "raw.t",
                        &[between(low, high)],
                        MAIN,
                        HashMap::new(),
                        Some(mode),
                    )
                    .await
                    .unwrap();
                let before = model.len();
                model.retain(|k, _| !(low..=high).contains(k));
                assert_eq!(result.rows_deleted, (before - model.len()) as u64);
                result.snapshot_id
            } else {
                let options = CompactOptions {
                    target_file_size: Some(1 << 30),
                    filters: vec![],
                    properties: HashMap::new(),
                };
                lh.compact("raw.t", MAIN, &options)
                    .await
                    .unwrap()
                    .snapshot_id
            };
            assert_eq!(contents(&lh, None).await, model, "seed {seed} step {step}");
            let delete_files = check_delete_files(&lh).await;
            saw_deletes |= delete_files > 0;
            if mode == WriteMode::CopyOnWrite {
                assert_eq!(delete_files, 0);
            }
            if let Some(id) = snapshot {
                history.push((id, model.clone()));
            }
        }
        assert!(
            saw_deletes || mode == WriteMode::CopyOnWrite,
            "seed {seed}: {mode:?} wrote no delete file"
        );
        // Time travel, across the compactions, sees each snapshot as it was.
        for (id, expected) in &history {
            assert_eq!(&contents(&lh, Some(*id)).await, expected, "snapshot {id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_property_chooses_the_mode_and_summaries_count_delete_files() {
    let properties = HashMap::from([
        ("write.merge.mode".to_string(), "merge-on-read".to_string()),
        ("write.delete.mode".to_string(), "merge-on-read".to_string()),
    ]);
    let (_dir, lh) = setup(properties).await;
    let rows: Vec<_> = (0..100).map(|k| (k, 0, format!("a{k}"))).collect();
    lh.append("raw.t", batch(&rows), MAIN, HashMap::new())
        .await
        .unwrap();
    let update = [
        (5, 1, "b".to_string()),
        (6, 1, "b".into()),
        (500, 1, "new".into()),
    ];
    let merged = lh
        .merge("raw.t", batch(&update), &upsert(None))
        .await
        .unwrap();
    assert_eq!((merged.rows_updated, merged.rows_inserted), (2, 1));
    assert_eq!((merged.delete_files_added, merged.files_removed), (1, 0));
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let snapshot = table.snapshot_for_ref(MAIN).unwrap();
    let summary = &snapshot.summary().additional_properties;
    assert_eq!(snapshot.summary().operation.as_str(), "overwrite");
    assert_eq!(summary["added-delete-files"], "1");
    assert_eq!(summary["added-position-deletes"], "2");
    assert_eq!(summary["total-delete-files"], "1");
    assert_eq!(summary["total-position-deletes"], "2");

    // Updating updated rows and deleting deleted ones marks each position once.
    let again = lh
        .merge("raw.t", batch(&update[..1]), &upsert(None))
        .await
        .unwrap();
    assert_eq!(again.rows_updated, 1);
    let deleted = lh
        .delete("raw.t", &[between(4, 6)], MAIN, HashMap::new())
        .await
        .unwrap();
    // Row 4 of the first file, row 6's update, row 5's second update (the only row of its
    // file, which goes whole).
    assert_eq!(deleted.rows_deleted, 3);
    assert_eq!((deleted.delete_files_added, deleted.files_removed), (2, 1));
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let snapshot = table.snapshot_for_ref(MAIN).unwrap();
    assert_eq!(snapshot.summary().operation.as_str(), "delete");
    // Two on the first file (the first merge's, this delete's), two on the second.
    assert_eq!(check_delete_files(&lh).await, 4);
    let model = contents(&lh, None).await;
    assert_eq!(model.len(), 98);
    assert!(!model.contains_key(&5) && !model.contains_key(&4));

    // Compaction folds them in and drops every delete file in one replace snapshot.
    let options = CompactOptions {
        target_file_size: Some(1 << 30),
        filters: vec![],
        properties: HashMap::new(),
    };
    lh.compact("raw.t", MAIN, &options).await.unwrap();
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let snapshot = table.snapshot_for_ref(MAIN).unwrap();
    assert_eq!(snapshot.summary().operation.as_str(), "replace");
    assert_eq!(check_delete_files(&lh).await, 0);
    assert_eq!(contents(&lh, None).await, model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_properties_changes_the_mode_and_an_unknown_mode_is_refused() {
    let (_dir, lh) = setup(HashMap::new()).await;
    let rows: Vec<_> = (0..20).map(|k| (k, 0, format!("a{k}"))).collect();
    lh.append("raw.t", batch(&rows), MAIN, HashMap::new())
        .await
        .unwrap();
    let set = |v: Option<&str>| vec![("write.merge.mode".to_string(), v.map(String::from))];
    let error = lh
        .set_properties("raw.t", MAIN, &set(Some("fast")))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::InvalidInput { .. }), "{error:?}");
    for part in [
        "write.merge.mode",
        "merge-on-read",
        "copy-on-write",
        "auto",
        "raw.t",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    let before = lh.load_table("raw.t", MAIN).await.unwrap();
    assert!(
        !before
            .metadata
            .properties()
            .contains_key("write.merge.mode")
    );

    assert!(
        lh.set_properties("raw.t", MAIN, &set(Some("merge-on-read")))
            .await
            .unwrap()
    );
    assert!(
        !lh.set_properties("raw.t", MAIN, &set(Some("merge-on-read")))
            .await
            .unwrap()
    );
    let after = lh.load_table("raw.t", MAIN).await.unwrap();
    // Metadata only: the same snapshot.
    assert_eq!(
        after.metadata.current_snapshot_id(),
        before.metadata.current_snapshot_id()
    );
    let merged = lh
        .merge("raw.t", batch(&[(3, 1, "b".into())]), &upsert(None))
        .await
        .unwrap();
    assert_eq!(merged.delete_files_added, 1);
    // An override wins over the property.
    let merged = lh
        .merge(
            "raw.t",
            batch(&[(4, 1, "b".into())]),
            &upsert(Some(WriteMode::CopyOnWrite)),
        )
        .await
        .unwrap();
    assert_eq!((merged.delete_files_added, merged.files_removed), (0, 1));
    assert!(lh.set_properties("raw.t", MAIN, &set(None)).await.unwrap());
    let cleared = lh.load_table("raw.t", MAIN).await.unwrap();
    assert!(
        !cleared
            .metadata
            .properties()
            .contains_key("write.merge.mode")
    );

    // A bad value another engine left in the table: the merge names the property, and the
    // table is unchanged.
    let bad = HashMap::from([("write.merge.mode".to_string(), "sideways".to_string())]);
    lh.create_table("raw.bad", &schema(), &[], bad, MAIN)
        .await
        .unwrap();
    lh.append("raw.bad", batch(&rows), MAIN, HashMap::new())
        .await
        .unwrap();
    let head = lh
        .load_table("raw.bad", MAIN)
        .await
        .unwrap()
        .metadata_location;
    let error = lh
        .merge("raw.bad", batch(&[(3, 1, "b".into())]), &upsert(None))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("write.merge.mode") && text.contains("sideways") && text.contains("auto"),
        "{text}"
    );
    assert_eq!(
        lh.load_table("raw.bad", MAIN)
            .await
            .unwrap()
            .metadata_location,
        head
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_rewrites_files_losing_a_large_share_and_marks_the_rest() {
    let (_dir, lh) = setup(HashMap::new()).await;
    // Two files: 0..100 and 100..110.
    for range in [0..100, 100..110] {
        let rows: Vec<_> = range.map(|k| (k, 0, format!("a{k}"))).collect();
        lh.append("raw.t", batch(&rows), MAIN, HashMap::new())
            .await
            .unwrap();
    }
    // 2% of the first file, 30% of the second.
    let rows = [
        (1, 1, "b".to_string()),
        (2, 1, "b".into()),
        (101, 1, "b".into()),
        (102, 1, "b".into()),
        (103, 1, "b".into()),
    ];
    let merged = lh
        .merge("raw.t", batch(&rows), &upsert(Some(WriteMode::Auto)))
        .await
        .unwrap();
    assert_eq!(merged.delete_files_added, 1);
    assert_eq!(merged.files_removed, 1);
    assert_eq!(merged.rows_updated, 5);
    let model = contents(&lh, None).await;
    assert_eq!(model.len(), 110);
    assert_eq!(model[&102], (1, "b".to_string()));
    assert_eq!(check_delete_files(&lh).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_auto_writes_keep_every_file_under_a_fifth_deleted() {
    let (_dir, lh) = setup(HashMap::new()).await;
    let mut model = Model::new();
    append_parts(&lh, &mut model, 100).await;
    let mut rng = Rng(31);
    let (mut delete_files_written, mut files_rewritten) = (0, 0);
    for step in 1..=30_i64 {
        // Small writes, each replacing a few percent of a file: only their sum reaches a fifth.
        if step % 5 == 0 {
            let low = rng.next(400) as i64;
            let result = lh
                .delete_with_mode(
                    "raw.t",
                    &[between(low, low + 2)],
                    MAIN,
                    HashMap::new(),
                    Some(WriteMode::Auto),
                )
                .await
                .unwrap();
            delete_files_written += result.delete_files_added;
            model.retain(|k, _| !(low..=low + 2).contains(k));
        } else {
            let rows: Vec<_> = (0..8)
                .map(|i| (rng.next(400) as i64, step, format!("s{step}-{i}")))
                .collect();
            let result = lh
                .merge("raw.t", batch(&rows), &upsert(Some(WriteMode::Auto)))
                .await
                .unwrap();
            delete_files_written += result.delete_files_added;
            files_rewritten += result.files_removed;
            for (k, s, v) in rows {
                model.insert(k, (s, v));
            }
        }
        assert_eq!(contents(&lh, None).await, model, "step {step}");
        check_delete_files(&lh).await;
        for (path, stored, deleted) in deleted_per_file(&lh).await {
            assert!(
                (deleted as f64) < 0.2 * stored as f64,
                "step {step}: {deleted} of {stored} rows of {path} deleted"
            );
        }
    }
    // Both branches of the rule ran: positions were written, and files were rewritten once
    // their deletes added up.
    assert!(delete_files_written > 0 && files_rewritten > 0);
}

fn compact_all() -> CompactOptions {
    CompactOptions {
        target_file_size: Some(1 << 30),
        filters: vec![],
        properties: HashMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_whose_data_file_another_writer_removed_are_a_conflict_but_appends_are_not() {
    let (_dir, lh) = setup(HashMap::new()).await;
    for range in [0..50, 50..100] {
        let rows: Vec<_> = range.map(|k| (k, 0, format!("a{k}"))).collect();
        lh.append("raw.t", batch(&rows), MAIN, HashMap::new())
            .await
            .unwrap();
    }
    let mor = upsert(Some(WriteMode::MergeOnRead));
    // What `Lakehouse::merge` hands the engine: the batch cast to the table schema.
    let target = phlo_core::schema::arrow_schema_of(
        lh.load_table("raw.t", MAIN)
            .await
            .unwrap()
            .metadata
            .current_schema(),
    )
    .unwrap();
    let update = |k: i64| {
        let one = batch(&[(k, 1, "b".into())]).pop().unwrap().unwrap();
        phlo_core::schema::cast_to_schema(&one, &target, &[]).unwrap()
    };
    // Planned on a stale table: another writer appended meanwhile. Positions are per data
    // file, so the merge lands on top.
    let stale = lh.load_table("raw.t", MAIN).await.unwrap();
    lh.append(
        "raw.t",
        batch(&[(500, 0, "x".into())]),
        MAIN,
        HashMap::new(),
    )
    .await
    .unwrap();
    let written = Uncommitted::new(lh.file_io());
    let landed =
        phlo_core::merge::merge(lh.catalog(), lh.file_io(), stale, update(3), &mor, &written)
            .await
            .unwrap();
    assert_eq!((landed.delete_files_added, landed.commit_retries), (1, 1));
    let model = contents(&lh, None).await;
    assert_eq!((model.len(), &model[&3]), (101, &(1, "b".to_string())));

    // Planned on a stale table: another writer compacted (removed) the file the deletes name.
    let stale = lh.load_table("raw.t", MAIN).await.unwrap();
    lh.compact("raw.t", MAIN, &compact_all()).await.unwrap();
    let head = lh
        .load_table("raw.t", MAIN)
        .await
        .unwrap()
        .metadata_location;
    let written = Uncommitted::new(lh.file_io());
    let error = phlo_core::merge::merge(
        lh.catalog(),
        lh.file_io(),
        stale,
        update(60),
        &mor,
        &written,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, Error::CommitConflict { .. }), "{error:?}");
    assert!(error.to_string().contains("position deletes"), "{error}");
    assert_eq!(
        lh.load_table("raw.t", MAIN)
            .await
            .unwrap()
            .metadata_location,
        head
    );
    assert_eq!(contents(&lh, None).await, model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branchs_position_deletes_rebase_onto_a_moved_main_unless_their_file_went() {
    use phlo_core::catalog::{CommitMeta, RefKind};

    let (_dir, lh) = setup(HashMap::new()).await;
    let rows: Vec<_> = (0..100).map(|k| (k, 0, format!("a{k}"))).collect();
    lh.append("raw.t", batch(&rows), MAIN, HashMap::new())
        .await
        .unwrap();
    let mut model = contents(&lh, None).await;
    for (branch, main_moves_by_compaction) in [("dev", false), ("dev2", true)] {
        lh.catalog()
            .create_ref(branch, RefKind::Branch, MAIN)
            .unwrap();
        let on_branch = MergeOptions {
            ref_name: branch.into(),
            ..upsert(Some(WriteMode::MergeOnRead))
        };
        let key = if main_moves_by_compaction { 20 } else { 10 };
        let merged = lh
            .merge("raw.t", batch(&[(key, 1, "branch".into())]), &on_branch)
            .await
            .unwrap();
        assert_eq!(merged.delete_files_added, 1);
        if main_moves_by_compaction {
            // Main's only data files are rewritten: the branch's positions point nowhere.
            lh.append(
                "raw.t",
                batch(&[(700, 0, "m".into())]),
                MAIN,
                HashMap::new(),
            )
            .await
            .unwrap();
            lh.compact("raw.t", MAIN, &compact_all()).await.unwrap();
            let before = contents(&lh, None).await;
            let error = lh
                .merge_branch(branch, MAIN, &CommitMeta::default())
                .await
                .unwrap_err();
            assert!(matches!(error, Error::CommitConflict { .. }), "{error:?}");
            assert_eq!(contents(&lh, None).await, before);
        } else {
            lh.append(
                "raw.t",
                batch(&[(600, 0, "m".into())]),
                MAIN,
                HashMap::new(),
            )
            .await
            .unwrap();
            let published = lh
                .merge_branch(branch, MAIN, &CommitMeta::default())
                .await
                .unwrap();
            assert_eq!(published.rebased, vec!["raw.t".to_string()]);
            model.insert(600, (0, "m".into()));
            model.insert(key, (1, "branch".into()));
            assert_eq!(contents(&lh, None).await, model);
            assert_eq!(check_delete_files(&lh).await, 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_on_read_finds_keys_in_every_file_and_a_key_held_by_two_files() {
    let (_dir, lh) = setup(HashMap::new()).await;
    let mut model = Model::new();
    // Five files with interleaved keys (every file's range spans the whole key space), and
    // key 7 appended twice more: three rows in three files.
    for part in 0..5_i64 {
        let mut rows: Vec<_> = (0..200)
            .map(|i| i * 5 + part)
            .map(|k| (k, 0, format!("a{k}")))
            .collect();
        if part > 2 {
            rows.push((7, part, format!("again{part}")));
        }
        lh.append("raw.t", batch(&rows), MAIN, HashMap::new())
            .await
            .unwrap();
        model.extend(rows.into_iter().map(|(k, s, v)| (k, (s, v))));
    }
    // Updates of keys in every file (7 among them), and new keys.
    let rows: Vec<_> = (0..40_i64)
        .map(|i| i * 23 % 1000)
        .chain([7, 1000, 1001])
        .map(|k| (k, 1, format!("b{k}")))
        .collect();
    let result = lh
        .merge("raw.t", batch(&rows), &upsert(Some(WriteMode::MergeOnRead)))
        .await
        .unwrap();
    let updated = rows.iter().filter(|r| model.contains_key(&r.0)).count() as u64;
    for (k, s, v) in rows {
        model.insert(k, (s, v));
    }
    assert_eq!(
        (
            result.files_scanned,
            result.delete_files_added,
            result.rows_updated,
            result.rows_deleted,
            result.rows_inserted,
        ),
        // Key 7: one row updated, its two other copies deleted.
        (5, 5, updated, 2, 2),
    );
    assert_eq!(contents(&lh, None).await, model);
    assert_eq!(check_delete_files(&lh).await, 5);
}
