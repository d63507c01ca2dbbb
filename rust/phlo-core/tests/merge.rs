//! The merge engine against a reference model, plus pruning, bad input and concurrency.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use futures::TryStreamExt;
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::dedupe::DedupeMethod;
use phlo_core::merge::{MergeOptions, MergeStrategy};
use phlo_core::tables::ScanOptions;

use crate::model::new_table;

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
        Field::new("id", DataType::Utf8, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("value", DataType::Float64, true),
    ]))
}

fn batch(rows: &[(String, i64, Option<f64>)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

fn options(strategy: MergeStrategy, dedupe: Option<DedupeMethod>) -> MergeOptions {
    MergeOptions {
        unique_key: vec!["id".into()],
        strategy,
        dedupe,
        order_by: None,
        ref_name: "main".into(),
        properties: HashMap::new(),
        write_mode: None,
    }
}

fn one(b: RecordBatch) -> Vec<Result<RecordBatch, ArrowError>> {
    vec![Ok(b)]
}

async fn contents(lh: &Lakehouse) -> Vec<(String, i64, Option<f64>)> {
    let plan = lh.scan("raw.t", &ScanOptions::default()).await.unwrap();
    let batches: Vec<RecordBatch> = plan.into_stream().unwrap().try_collect().await.unwrap();
    let mut rows = Vec::new();
    for b in batches {
        let ids = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let seqs = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        let values = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..b.num_rows() {
            let value = (!values.is_null(i)).then(|| values.value(i));
            rows.push((ids.value(i).to_string(), seqs.value(i), value));
        }
    }
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows
}

async fn setup() -> (tempfile::TempDir, Lakehouse) {
    new_table(&schema()).await
}

/// Keeps the last row of each key, in arrival order (what `deduplication_method=last` does).
fn dedupe_last(rows: &[(String, i64, Option<f64>)]) -> Vec<(String, i64, Option<f64>)> {
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        last.insert(&r.0, i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort();
    keep.into_iter().map(|i| rows[i].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_appends_and_merges_match_a_reference_model() {
    for seed in [7_u64, 1234, 99_991] {
        let (_dir, lh) = setup().await;
        let mut rng = Rng(seed);
        let mut model: Vec<(String, i64, Option<f64>)> = Vec::new();
        for step in 0..12 {
            let n = 1 + rng.next(40) as usize;
            let rows: Vec<_> = (0..n)
                .map(|i| {
                    let key = format!("k{:03}", rng.next(60));
                    let value = (rng.next(5) != 0).then(|| rng.next(1000) as f64 / 10.0);
                    (key, (step * 100 + i) as i64, value)
                })
                .collect();
            let rows_in = dedupe_last(&rows);
            if rng.next(4) == 0 {
                let r = lh
                    .merge(
                        "raw.t",
                        one(batch(&rows)),
                        &options(MergeStrategy::Append, Some(DedupeMethod::Last)),
                    )
                    .await
                    .unwrap();
                assert_eq!(r.rows_inserted as usize, rows_in.len());
                model.extend(rows_in);
            } else {
                let r = lh
                    .merge(
                        "raw.t",
                        one(batch(&rows)),
                        &options(MergeStrategy::Merge, Some(DedupeMethod::Last)),
                    )
                    .await
                    .unwrap();
                let replaced: std::collections::HashSet<&str> =
                    rows_in.iter().map(|r| r.0.as_str()).collect();
                let present = model
                    .iter()
                    .filter(|m| replaced.contains(m.0.as_str()))
                    .count();
                let updated = replaced
                    .iter()
                    .filter(|k| model.iter().any(|m| m.0 == **k))
                    .count();
                assert_eq!(r.rows_updated as usize, updated, "seed {seed} step {step}");
                assert_eq!((r.rows_updated + r.rows_deleted) as usize, present);
                assert_eq!((r.rows_inserted + r.rows_updated) as usize, rows_in.len());
                assert_eq!(r.duplicates_dropped as usize, rows.len() - rows_in.len());
                model.retain(|m| !replaced.contains(m.0.as_str()));
                model.extend(rows_in);
            }
            model.sort_by(|a, b| a.partial_cmp(b).unwrap());
            assert_eq!(contents(&lh).await, model, "seed {seed} after step {step}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_leave_files_without_batch_keys_alone() {
    let (_dir, lh) = setup().await;
    let merge = options(MergeStrategy::Merge, None);
    let low: Vec<_> = (0..100)
        .map(|i| (format!("a{i:03}"), i, Some(1.0)))
        .collect();
    let high: Vec<_> = (0..100)
        .map(|i| (format!("z{i:03}"), i, Some(1.0)))
        .collect();
    lh.merge("raw.t", one(batch(&low)), &merge).await.unwrap();
    lh.merge("raw.t", one(batch(&high)), &merge).await.unwrap();
    // Keys between the two files' ranges: no file can hold them, none is read or rewritten.
    let middle = vec![("m000".to_string(), 0, Some(2.0))];
    let r = lh
        .merge("raw.t", one(batch(&middle)), &merge)
        .await
        .unwrap();
    assert_eq!(
        (r.files_scanned, r.files_removed, r.rows_inserted),
        (0, 0, 1)
    );
    // An update of one key rewrites only the file holding it.
    let update = vec![("z050".to_string(), 999, Some(3.0))];
    let r = lh
        .merge("raw.t", one(batch(&update)), &merge)
        .await
        .unwrap();
    assert_eq!(
        (
            r.files_scanned,
            r.files_removed,
            r.rows_updated,
            r.rows_inserted
        ),
        (1, 1, 1, 0)
    );
    let rows = contents(&lh).await;
    assert_eq!(rows.len(), 201);
    assert!(rows.contains(&("z050".to_string(), 999, Some(3.0))));
    let table = lh.load_table("raw.t", "main").await.unwrap();
    let summary = &table
        .metadata
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties;
    assert_eq!(summary["total-records"], "201");
    assert_eq!(summary["phlo.rows-updated"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_merge_input_is_typed_and_changes_nothing() {
    let (_dir, lh) = setup().await;
    let merge = options(MergeStrategy::Merge, None);
    lh.merge("raw.t", one(batch(&[("a".into(), 1, None)])), &merge)
        .await
        .unwrap();
    let before = contents(&lh).await;

    let dupes = batch(&[("b".into(), 1, None), ("b".into(), 2, None)]);
    let err = lh.merge("raw.t", one(dupes), &merge).await.unwrap_err();
    assert_eq!(err.code(), "merge");
    assert!(err.to_string().contains("distinct keys"), "{err}");

    let mut bad_key = merge.clone();
    bad_key.unique_key = vec!["nope".into()];
    let err = lh
        .merge("raw.t", one(batch(&[("c".into(), 1, None)])), &bad_key)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.location().column.as_deref()),
        ("schema", Some("nope"))
    );

    let nullable = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]));
    lh.create_table("raw.n", &nullable, &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    let nulls = RecordBatch::try_new(
        nullable,
        vec![Arc::new(StringArray::from(vec![Some("x"), None]))],
    )
    .unwrap();
    let mut last = merge.clone();
    last.dedupe = Some(DedupeMethod::Last);
    let err = lh.merge("raw.n", one(nulls), &last).await.unwrap_err();
    assert_eq!(err.code(), "merge");
    assert!(err.to_string().contains("null"), "{err}");

    let empty = batch(&[]);
    assert_eq!(
        lh.merge("raw.t", one(empty), &merge)
            .await
            .unwrap_err()
            .code(),
        "empty_input"
    );
    assert_eq!(contents(&lh).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_merges_never_lose_an_update() {
    let (dir, lh) = setup().await;
    let base: Vec<_> = (0..50)
        .map(|i| (format!("k{i:02}"), 0, Some(0.0)))
        .collect();
    lh.merge(
        "raw.t",
        one(batch(&base)),
        &options(MergeStrategy::Merge, None),
    )
    .await
    .unwrap();
    // Writers upsert overlapping keys at once, each from its own catalog connection.
    let tasks: Vec<_> = (1..=4)
        .map(|w| {
            let root = dir.path().to_path_buf();
            tokio::spawn(async move {
                let lh = Lakehouse::open(&root).unwrap();
                let rows: Vec<_> = (0..50)
                    .map(|i| (format!("k{i:02}"), w, Some(w as f64)))
                    .collect();
                lh.merge(
                    "raw.t",
                    one(batch(&rows)),
                    &options(MergeStrategy::Merge, None),
                )
                .await
            })
        })
        .collect();
    let mut committed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => committed += 1,
            Err(e) => assert_eq!(e.code(), "commit_conflict", "{e}"),
        }
    }
    assert!(committed >= 1);
    let rows = contents(&lh).await;
    assert_eq!(
        rows.len(),
        50,
        "every key exactly once: no lost update, no duplicate"
    );
    let writers: std::collections::HashSet<i64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(
        writers.len(),
        1,
        "all rows come from the one writer that won"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_commit_removes_files_and_keeps_totals_right() {
    use phlo_core::tables::SnapshotChange;
    use phlo_core::tables::commit::{commit, live_data_files};

    let (_dir, lh) = setup().await;
    let append = options(MergeStrategy::Append, None);
    lh.merge("raw.t", one(batch(&[("a".into(), 1, None)])), &append)
        .await
        .unwrap();
    lh.merge(
        "raw.t",
        one(batch(&[("b".into(), 2, None), ("c".into(), 3, None)])),
        &append,
    )
    .await
    .unwrap();
    let table = lh.load_table("raw.t", "main").await.unwrap();
    let files = live_data_files(lh.file_io(), &table, "main").await.unwrap();
    let first = files
        .iter()
        .find(|f| f.record_count() == 1)
        .unwrap()
        .clone();
    let change = SnapshotChange {
        branch: "main".into(),
        removed_files: vec![first.clone()],
        ..Default::default()
    };
    commit(lh.catalog(), lh.file_io(), table.clone(), &change, &|_| {
        Ok(())
    })
    .await
    .unwrap();
    let ids: Vec<String> = contents(&lh).await.into_iter().map(|r| r.0).collect();
    assert_eq!(ids, ["b", "c"]);
    let table = lh.load_table("raw.t", "main").await.unwrap();
    let snapshot = table.metadata.current_snapshot().unwrap();
    assert_eq!(
        snapshot.summary().operation,
        iceberg::spec::Operation::Delete
    );
    assert_eq!(
        snapshot.summary().additional_properties["total-records"],
        "2"
    );
    assert_eq!(
        snapshot.summary().additional_properties["total-data-files"],
        "1"
    );
    // Removing the same file again is a conflict: it is no longer in the table.
    let err = commit(lh.catalog(), lh.file_io(), table, &change, &|_| Ok(()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "commit_conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_rows_between_refs() {
    use phlo_core::catalog::RefKind;

    let (_dir, lh) = setup().await;
    let merge = options(MergeStrategy::Merge, None);
    let base: Vec<_> = (0..20)
        .map(|i| (format!("k{i:02}"), i, Some(1.0)))
        .collect();
    lh.merge("raw.t", one(batch(&base)), &merge).await.unwrap();
    lh.catalog()
        .create_ref("dev", RefKind::Branch, "main")
        .unwrap();
    let mut on_dev = merge.clone();
    on_dev.ref_name = "dev".into();
    let change = vec![
        ("k03".to_string(), 3, Some(2.0)),
        ("new".to_string(), 99, None),
    ];
    lh.merge("raw.t", one(batch(&change)), &on_dev)
        .await
        .unwrap();
    let key = vec!["id".to_string()];
    let diff = lh
        .diff_rows("raw.t", "main", "dev", &key, 10)
        .await
        .unwrap();
    assert_eq!((diff.added, diff.removed, diff.changed), (1, 0, 1));
    assert_eq!(diff.changed_sample.num_rows(), 1);
    let same = lh.diff_rows("raw.t", "dev", "dev", &key, 10).await.unwrap();
    assert_eq!((same.added, same.removed, same.changed), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_keys_are_refused_with_and_without_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    let nullable = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("part", DataType::Int64, true),
    ]));
    let keyed = |k: Vec<Option<&str>>, part: Vec<Option<i64>>| {
        RecordBatch::try_new(
            nullable.clone(),
            vec![
                Arc::new(StringArray::from(k)),
                Arc::new(Int64Array::from(part)),
            ],
        )
        .unwrap()
    };
    lh.create_table("raw.n", &nullable, &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    let first = keyed(vec![Some(""), Some("a")], vec![Some(0), Some(1)]);
    let mut merge = options(MergeStrategy::Merge, None);
    merge.unique_key = vec!["k".into()];
    lh.merge("raw.n", one(first), &merge).await.unwrap();
    let head = || async {
        let table = lh.load_table("raw.n", MAIN).await.unwrap();
        table.metadata.current_snapshot_id()
    };
    let before = head().await;
    // A null `k` would read as "" on the direct key path, and replace the "" row.
    let with_nulls = keyed(vec![None, Some("b"), None], vec![Some(1), None, Some(2)]);
    for (key, column, nulls) in [(&["k"][..], "k", 2), (&["part", "k"][..], "part", 1)] {
        for dedupe in [None, Some(DedupeMethod::Last)] {
            let options = MergeOptions {
                unique_key: key.iter().map(|k| k.to_string()).collect(),
                ..options(MergeStrategy::Merge, dedupe)
            };
            let err = lh
                .merge("raw.n", one(with_nulls.clone()), &options)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "merge", "{key:?} {dedupe:?}: {err}");
            assert_eq!(err.location().table.as_deref(), Some("raw.n"));
            assert_eq!(err.location().column.as_deref(), Some(column));
            assert!(
                err.to_string().contains(&format!("{nulls} null value(s)")),
                "{err}"
            );
            assert_eq!(head().await, before, "the table is unchanged");
        }
    }
}

/// A branch that upserted keys publishes onto a target that moved: rebased when the target's
/// new files hold other keys, refused (nothing merged) when they may hold the branch's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_upserts_rebase_by_key_range() {
    use phlo_core::catalog::{CommitMeta, RefKind};

    let (_dir, lh) = setup().await;
    let append = options(MergeStrategy::Append, None);
    let merge = options(MergeStrategy::Merge, None);
    let rows = |prefix: &str, seq: i64| -> Vec<(String, i64, Option<f64>)> {
        (0..5)
            .map(|i| (format!("{prefix}{i}"), seq, None))
            .collect()
    };
    // Two files with disjoint key ranges: "a…" and "m…".
    for prefix in ["a", "m"] {
        lh.merge("raw.t", one(batch(&rows(prefix, 0))), &append)
            .await
            .unwrap();
    }
    for (branch, prefix) in [("run-1", "a"), ("run-2", "a")] {
        lh.catalog()
            .create_ref(branch, RefKind::Branch, MAIN)
            .unwrap();
        let mut on_branch = merge.clone();
        on_branch.ref_name = branch.into();
        lh.merge("raw.t", one(batch(&rows(prefix, 1)[..2])), &on_branch)
            .await
            .unwrap();
    }
    // main gains keys in the "m" range only: run-1's upsert of "a0", "a1" still holds.
    lh.merge("raw.t", one(batch(&rows("m", 2)[..1])), &merge)
        .await
        .unwrap();
    let merged = lh
        .merge_branch("run-1", MAIN, &CommitMeta::default())
        .await
        .unwrap();
    assert_eq!(merged.rebased, vec!["raw.t".to_string()]);
    let after = contents(&lh).await;
    let seq_of = |key: &str| after.iter().find(|r| r.0 == key).map(|r| r.1);
    assert_eq!(
        (seq_of("a0"), seq_of("a2"), seq_of("m0")),
        (Some(1), Some(0), Some(2))
    );
    assert_eq!(after.len(), 10, "no key twice");
    // run-2 upserted the same file run-1 replaced: a real overlap, nothing merges.
    let err = lh
        .merge_branch("run-2", MAIN, &CommitMeta::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "commit_conflict");
    assert_eq!(contents(&lh).await, after);
}

type Row = (String, i64, Option<f64>);

/// Upserts `rows` into raw.t on a new branch forked from main now, by `key`.
async fn upsert_on_new_branch(lh: &Lakehouse, branch: &str, rows: &[Row], key: &[&str]) {
    use phlo_core::catalog::RefKind;
    lh.catalog()
        .create_ref(branch, RefKind::Branch, MAIN)
        .unwrap();
    let mut on_branch = options(MergeStrategy::Merge, None);
    on_branch.unique_key = key.iter().map(|k| k.to_string()).collect();
    on_branch.ref_name = branch.into();
    lh.merge("raw.t", one(batch(rows)), &on_branch)
        .await
        .unwrap();
}

/// `count` distinct random hex keys, sorted: any two alternating halves have overlapping
/// min/max ranges, as random keys (UUIDs, hashes) do.
fn random_keys(rng: &mut Rng, count: usize) -> Vec<String> {
    let mut keys = std::collections::BTreeSet::new();
    while keys.len() < count {
        keys.insert(format!("{:016x}", rng.next(u64::MAX)));
    }
    keys.into_iter().collect()
}

/// Two runs forked from one main upsert different random keys (their key ranges overlap, and
/// one run also updates a key main held): both publish, and main holds the union.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_upserts_of_disjoint_keys_rebase_when_key_ranges_overlap() {
    use phlo_core::catalog::CommitMeta;

    let (_dir, lh) = setup().await;
    let mut rng = Rng(2026);
    let keys = random_keys(&mut rng, 61);
    let mut model: HashMap<String, Row> = HashMap::new();
    let seed: Vec<Row> = keys[..21].iter().map(|k| (k.clone(), 0, None)).collect();
    lh.merge(
        "raw.t",
        one(batch(&seed)),
        &options(MergeStrategy::Append, None),
    )
    .await
    .unwrap();
    model.extend(seed.into_iter().map(|r| (r.0.clone(), r)));
    // run-1 takes the even new keys and updates a seed key, run-2 the odd new keys.
    let new_keys = &keys[21..];
    let mut run_1: Vec<Row> = new_keys
        .iter()
        .step_by(2)
        .map(|k| (k.clone(), 1, Some(1.0)))
        .collect();
    run_1.push((keys[3].clone(), 1, Some(1.5)));
    let run_2: Vec<Row> = new_keys
        .iter()
        .skip(1)
        .step_by(2)
        .map(|k| (k.clone(), 2, Some(2.0)))
        .collect();
    upsert_on_new_branch(&lh, "run-1", &run_1, &["id"]).await;
    upsert_on_new_branch(&lh, "run-2", &run_2, &["id"]).await;
    for run in [&run_1, &run_2] {
        model.extend(run.iter().map(|r| (r.0.clone(), r.clone())));
    }
    let meta = CommitMeta::default();
    let first = lh.merge_branch("run-1", MAIN, &meta).await.unwrap();
    assert_eq!(first.fast_forwarded, vec!["raw.t".to_string()]);
    let second = lh.merge_branch("run-2", MAIN, &meta).await.unwrap();
    assert_eq!(second.rebased, vec!["raw.t".to_string()]);
    let mut expected: Vec<Row> = model.into_values().collect();
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(contents(&lh).await, expected);
}

/// Two runs that upsert one same key (among different ones) conflict, the error names the
/// table, the key column and the key, and the second run merges nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_upserts_sharing_a_key_conflict_naming_it() {
    use phlo_core::catalog::CommitMeta;

    let (_dir, lh) = setup().await;
    let keys = random_keys(&mut Rng(77), 40);
    let shared = keys[16].clone(); // run-1's, and run-2 upserts it too
    let run = |parity: usize, seq: i64| -> Vec<Row> {
        keys.iter()
            .skip(parity)
            .step_by(2)
            .map(|k| (k.clone(), seq, None))
            .chain((parity == 1).then(|| (shared.clone(), seq, None)))
            .collect()
    };
    upsert_on_new_branch(&lh, "run-1", &run(0, 1), &["id"]).await;
    upsert_on_new_branch(&lh, "run-2", &run(1, 2), &["id"]).await;
    let meta = CommitMeta::default();
    lh.merge_branch("run-1", MAIN, &meta).await.unwrap();
    let before = contents(&lh).await;
    let err = lh.merge_branch("run-2", MAIN, &meta).await.unwrap_err();
    assert_eq!(err.code(), "commit_conflict");
    let message = err.to_string();
    for part in ["raw.t", "(id)", &format!("{{\"id\":\"{shared}\"}}")] {
        assert!(message.contains(part), "{part} not in: {message}");
    }
    assert_eq!(contents(&lh).await, before);
}

/// A composite key is compared as a tuple: runs upserting the same ids with other `seq`
/// values hold different keys and both publish; a run repeating an (id, seq) pair conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_key_upserts_rebase_by_whole_key() {
    use phlo_core::catalog::CommitMeta;

    let (_dir, lh) = setup().await;
    let ids = random_keys(&mut Rng(5), 30);
    let rows = |seq: i64, value: f64| -> Vec<Row> {
        ids.iter().map(|k| (k.clone(), seq, Some(value))).collect()
    };
    let key = ["id", "seq"];
    upsert_on_new_branch(&lh, "run-1", &rows(1, 1.0), &key).await;
    upsert_on_new_branch(&lh, "run-2", &rows(2, 2.0), &key).await;
    upsert_on_new_branch(&lh, "run-3", &rows(1, 3.0)[7..8], &key).await;
    let meta = CommitMeta::default();
    lh.merge_branch("run-1", MAIN, &meta).await.unwrap();
    let merged = lh.merge_branch("run-2", MAIN, &meta).await.unwrap();
    assert_eq!(merged.rebased, vec!["raw.t".to_string()]);
    let mut expected: Vec<Row> = rows(1, 1.0).into_iter().chain(rows(2, 2.0)).collect();
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(contents(&lh).await, expected);
    let err = lh.merge_branch("run-3", MAIN, &meta).await.unwrap_err();
    assert_eq!(err.code(), "commit_conflict");
    let message = err.to_string();
    let example = format!("{{\"id\":\"{}\",\"seq\":1}}", ids[7]);
    for part in ["(id, seq)", example.as_str()] {
        assert!(message.contains(part), "{part} not in: {message}");
    }
    assert_eq!(contents(&lh).await, expected);
}
