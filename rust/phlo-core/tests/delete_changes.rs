//! `delete` (by filter, copy-on-write) against a reference model, with pruning, branches, bad
//! input and a concurrent writer; `changes` (rows appended between two snapshots).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use futures::TryStreamExt;
use phlo_core::Lakehouse;
use phlo_core::catalog::{MAIN, RefKind};
use phlo_core::delete::{commit_delete, plan_delete};
use phlo_core::merge::WriteMode;
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions, ScanPlan};

use crate::model::upsert;
use crate::support::files_under;

/// One row: (id, day, value). `day` is the identity partition column.
type Row = (i64, String, Option<f64>);

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("day", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
    ]))
}

fn batch(rows: &[Row]) -> Vec<Result<RecordBatch, ArrowError>> {
    vec![Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.1.as_str()),
            )),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap())]
}

/// Rows `ids` spread over days d0..d2; every fifth value is null.
fn rows(ids: std::ops::Range<i64>) -> Vec<Row> {
    ids.map(|i| {
        let value = (i % 5 != 0).then_some(i as f64 * 0.5);
        (i, format!("d{}", i % 3), value)
    })
    .collect()
}

fn filter(column: &str, op: &str, values: Vec<Literal>) -> Filter {
    Filter {
        column: column.into(),
        op: FilterOp::parse(op).unwrap(),
        values,
    }
}

async fn collect(plan: ScanPlan) -> Vec<Row> {
    let batches: Vec<RecordBatch> = plan.into_stream().unwrap().try_collect().await.unwrap();
    let mut out = Vec::new();
    for b in batches {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let days = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let values = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..b.num_rows() {
            let value = (!values.is_null(i)).then(|| values.value(i));
            out.push((ids.value(i), days.value(i).to_string(), value));
        }
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

async fn contents(lh: &Lakehouse, ref_name: &str) -> Vec<Row> {
    let options = ScanOptions {
        ref_name: Some(ref_name.into()),
        ..Default::default()
    };
    collect(lh.scan("raw.t", &options).await.unwrap()).await
}

/// A lakehouse with `raw.t` partitioned by `day`, filled by three appends of 60 rows.
async fn setup() -> (tempfile::TempDir, Lakehouse, Vec<Row>) {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    let partition = [("day".to_string(), "identity".to_string())];
    lh.create_table("raw.t", &schema(), &partition, HashMap::new(), MAIN)
        .await
        .unwrap();
    let mut model = Vec::new();
    for start in [0, 60, 120] {
        let part = rows(start..start + 60);
        lh.append("raw.t", batch(&part), MAIN, HashMap::new())
            .await
            .unwrap();
        model.extend(part);
    }
    model.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (dir, lh, model)
}

async fn head(lh: &Lakehouse, ref_name: &str) -> (String, Option<i64>, usize) {
    let t = lh.load_table("raw.t", ref_name).await.unwrap();
    (
        t.metadata_location.clone(),
        t.metadata.current_snapshot_id(),
        t.metadata.snapshots().count(),
    )
}

async fn operation(lh: &Lakehouse, snapshot_id: i64) -> String {
    let t = lh.load_table("raw.t", MAIN).await.unwrap();
    let s = t.metadata.snapshot_by_id(snapshot_id).unwrap();
    s.summary().operation.as_str().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_match_a_reference_model() {
    let (_dir, lh, mut model) = setup().await;
    type Predicate = Box<dyn Fn(&Row) -> bool>;
    // SQL semantics: a comparison with a null value is no match, so that row stays.
    let cases: Vec<(Vec<Filter>, Predicate)> = vec![
        (
            vec![filter("id", "=", vec![Literal::Int(7)])],
            Box::new(|r| r.0 == 7),
        ),
        (
            vec![filter("value", "<", vec![Literal::Float(10.0)])],
            Box::new(|r| r.2.is_some_and(|v| v < 10.0)),
        ),
        (
            vec![filter(
                "id",
                "between",
                vec![Literal::Int(50), Literal::Int(70)],
            )],
            Box::new(|r| (50..=70).contains(&r.0)),
        ),
        (
            vec![
                filter("day", "=", vec![Literal::String("d1".into())]),
                filter("id", ">=", vec![Literal::Int(150)]),
            ],
            Box::new(|r| r.1 == "d1" && r.0 >= 150),
        ),
        (
            vec![filter(
                "id",
                "in",
                vec![Literal::Int(100), Literal::Int(101), Literal::Int(9999)],
            )],
            Box::new(|r| r.0 == 100 || r.0 == 101),
        ),
        (
            vec![
                filter("value", "!=", vec![Literal::Float(85.5)]),
                filter("id", ">=", vec![Literal::Int(170)]),
            ],
            Box::new(|r| r.2.is_some_and(|v| v != 85.5) && r.0 >= 170),
        ),
        (
            vec![filter("value", "is null", vec![])],
            Box::new(|r| r.2.is_none()),
        ),
        (
            vec![filter("day", "=", vec![Literal::String("d2".into())])],
            Box::new(|r| r.1 == "d2"),
        ),
    ];
    for (i, (filters, predicate)) in cases.into_iter().enumerate() {
        let before = model.len();
        model.retain(|r| !predicate(r));
        let result = lh
            .delete("raw.t", &filters, MAIN, HashMap::new())
            .await
            .unwrap();
        assert_eq!(
            result.rows_deleted as usize,
            before - model.len(),
            "case {i}"
        );
        assert_eq!(contents(&lh, MAIN).await, model, "case {i}");
    }
    // The `!=` case kept the row it names (id 171, value 85.5).
    assert!(model.iter().any(|r| r.0 == 171));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_files_are_dropped_unread() {
    let (_dir, lh, model) = setup().await;
    let files_before = lh
        .scan("raw.t", &ScanOptions::default())
        .await
        .unwrap()
        .files_total;
    // The partition value proves every row of d1's files matches: none is read.
    let by_day = [filter("day", "=", vec![Literal::String("d1".into())])];
    let r = lh
        .delete("raw.t", &by_day, MAIN, HashMap::new())
        .await
        .unwrap();
    assert_eq!(r.files_scanned, 0);
    assert_eq!(r.files_added, 0);
    assert_eq!(r.files_removed as usize, files_before / 3);
    assert_eq!(r.rows_deleted, 60);
    assert_eq!(operation(&lh, r.snapshot_id.unwrap()).await, "delete");
    // Min/max: the first append's files hold ids 0..59 only, every one below 60.
    let low = [filter("id", "<", vec![Literal::Int(60)])];
    let r = lh
        .delete("raw.t", &low, MAIN, HashMap::new())
        .await
        .unwrap();
    assert_eq!((r.files_scanned, r.files_added), (0, 0));
    // A filter that holds for part of a file reads and rewrites it: an overwrite.
    let some = [
        filter("id", "in", vec![Literal::Int(63), Literal::Int(66)]),
        filter("day", "=", vec![Literal::String("d0".into())]),
    ];
    let r = lh
        .delete("raw.t", &some, MAIN, HashMap::new())
        .await
        .unwrap();
    assert_eq!((r.files_scanned, r.files_removed, r.files_added), (1, 1, 1));
    assert_eq!(operation(&lh, r.snapshot_id.unwrap()).await, "overwrite");
    let expected: Vec<Row> = model
        .into_iter()
        .filter(|r| r.1 != "d1" && r.0 >= 60 && r.0 != 63 && r.0 != 66)
        .collect();
    assert_eq!(contents(&lh, MAIN).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_nothing_commits_nothing() {
    let (_dir, lh, model) = setup().await;
    let before = head(&lh, MAIN).await;
    // Outside every file's id range: decided from statistics alone.
    let none = [filter("id", ">", vec![Literal::Int(10_000)])];
    let r = lh
        .delete("raw.t", &none, MAIN, HashMap::new())
        .await
        .unwrap();
    assert_eq!(
        (r.snapshot_id, r.rows_deleted, r.files_scanned),
        (None, 0, 0)
    );
    // Inside a file's range but absent: the file is read, nothing matches, nothing is written.
    let gap = [filter("value", "=", vec![Literal::Float(40.25)])];
    let r = lh
        .delete("raw.t", &gap, MAIN, HashMap::new())
        .await
        .unwrap();
    assert_eq!(r.snapshot_id, None);
    assert!(r.files_scanned > 0);
    assert_eq!((r.files_added, r.files_removed), (0, 0));
    assert_eq!(head(&lh, MAIN).await, before);
    assert_eq!(contents(&lh, MAIN).await, model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_and_tags_are_typed_and_change_nothing() {
    let (_dir, lh, model) = setup().await;
    lh.catalog().create_ref("v1", RefKind::Tag, MAIN).unwrap();
    let before = head(&lh, MAIN).await;
    let cases = [
        (
            vec![filter("nope", "=", vec![Literal::Int(1)])],
            MAIN,
            Some("nope"),
        ),
        (
            vec![filter("id", "=", vec![Literal::String("x".into())])],
            MAIN,
            Some("id"),
        ),
        (vec![], MAIN, None),
        (vec![filter("id", "=", vec![Literal::Int(1)])], "v1", None),
    ];
    for (filters, ref_name, column) in cases {
        let err = lh
            .delete("raw.t", &filters, ref_name, HashMap::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{err}");
        assert_eq!(err.location().table.as_deref(), Some("raw.t"), "{err}");
        assert_eq!(err.location().column.as_deref(), column, "{err}");
    }
    assert_eq!(head(&lh, MAIN).await, before);
    assert_eq!(contents(&lh, "v1").await, model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_on_a_branch_leaves_main_alone() {
    let (_dir, lh, model) = setup().await;
    lh.catalog()
        .create_ref("dev", RefKind::Branch, MAIN)
        .unwrap();
    let some = [filter("id", "<", vec![Literal::Int(30)])];
    let r = lh
        .delete("raw.t", &some, "dev", HashMap::new())
        .await
        .unwrap();
    assert_eq!(r.rows_deleted, 30);
    assert_eq!(contents(&lh, MAIN).await, model);
    let on_dev: Vec<Row> = model.iter().filter(|r| r.0 >= 30).cloned().collect();
    assert_eq!(contents(&lh, "dev").await, on_dev);
    let log = lh.catalog().log(Some("dev"), 1).unwrap();
    assert_eq!(log[0].message, "delete from raw.t where id < 30");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_append_of_matching_rows_is_a_conflict() {
    let (_dir, lh, model) = setup().await;
    let by_id = [filter("id", "<", vec![Literal::Int(90)])];
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let plan = plan_delete(
        lh.catalog(),
        lh.file_io(),
        table,
        &by_id,
        HashMap::new(),
        None,
    )
    .await
    .unwrap();
    assert!(plan.result().files_added > 0);
    // Another writer lands rows the delete would have removed, after it read the table.
    let late = vec![(5, "d1".to_string(), Some(1.0))];
    lh.append("raw.t", batch(&late), MAIN, HashMap::new())
        .await
        .unwrap();
    let after_append = head(&lh, MAIN).await;
    let err = commit_delete(lh.catalog(), lh.file_io(), plan)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "commit_conflict", "{err}");
    assert_eq!(head(&lh, MAIN).await, after_append);
    let mut expected = model.clone();
    expected.push(late[0].clone());
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(contents(&lh, MAIN).await, expected);

    // Rows the filter cannot match do not conflict: the delete is re-applied on top.
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let plan = plan_delete(
        lh.catalog(),
        lh.file_io(),
        table,
        &by_id,
        HashMap::new(),
        None,
    )
    .await
    .unwrap();
    let other = rows(5000..5003);
    lh.append("raw.t", batch(&other), MAIN, HashMap::new())
        .await
        .unwrap();
    let r = commit_delete(lh.catalog(), lh.file_io(), plan)
        .await
        .unwrap();
    assert!(r.commit_retries >= 1);
    expected.retain(|r| r.0 >= 90);
    expected.extend(other);
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(contents(&lh, MAIN).await, expected);
}

/// A plan dropped without being committed removes the files it wrote, rewritten data files
/// (copy-on-write) and position-delete files (merge-on-read) alike; the table is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_plan_dropped_uncommitted_removes_its_files() {
    for mode in [WriteMode::CopyOnWrite, WriteMode::MergeOnRead] {
        let (dir, lh, model) = setup().await;
        let files = || files_under(&dir.path().join("warehouse/raw.db/t"));
        let before = (files(), head(&lh, MAIN).await);
        let table = lh.load_table("raw.t", MAIN).await.unwrap();
        let some = [filter("id", "<", vec![Literal::Int(7)])];
        let plan = plan_delete(
            lh.catalog(),
            lh.file_io(),
            table,
            &some,
            HashMap::new(),
            Some(mode),
        )
        .await
        .unwrap();
        let written = plan.result().files_added + plan.result().delete_files_added;
        assert!(written > 0, "{mode:?}");
        assert_eq!(files().len(), before.0.len() + written as usize, "{mode:?}");
        drop(plan);
        // The removal runs on the runtime in the background: wait for it (bounded).
        for _ in 0..3000 {
            if files() == before.0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!((files(), head(&lh, MAIN).await), before, "{mode:?}");
        assert_eq!(contents(&lh, MAIN).await, model, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_exactly_the_appended_rows() {
    let (_dir, lh, model) = setup().await;
    let t = lh.load_table("raw.t", MAIN).await.unwrap();
    let mut ids: Vec<(i64, i64)> = t
        .metadata
        .snapshots()
        .map(|s| (s.sequence_number(), s.snapshot_id()))
        .collect();
    ids.sort();
    let [first, second, third] = [ids[0].1, ids[1].1, ids[2].1];
    let later = rows(500..520);
    lh.append("raw.t", batch(&later), MAIN, HashMap::new())
        .await
        .unwrap();

    let plan = lh
        .changes("raw.t", MAIN, Some(first), Some(third), None)
        .await
        .unwrap();
    // Only the files the two appends added are read.
    assert_eq!(plan.files_scanned, 6);
    let expected: Vec<Row> = model.iter().filter(|r| r.0 >= 60).cloned().collect();
    assert_eq!(collect(plan).await, expected);
    let plan = lh
        .changes("raw.t", MAIN, Some(third), None, None)
        .await
        .unwrap();
    assert_eq!(collect(plan).await, later);
    let plan = lh
        .changes("raw.t", MAIN, None, Some(first), None)
        .await
        .unwrap();
    let expected: Vec<Row> = model.iter().filter(|r| r.0 < 60).cloned().collect();
    assert_eq!(collect(plan).await, expected);
    let plan = lh
        .changes("raw.t", MAIN, Some(second), Some(second), None)
        .await
        .unwrap();
    assert_eq!(collect(plan).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_across_removals_or_bad_snapshots_are_errors() {
    let (_dir, lh, _) = setup().await;
    let t = lh.load_table("raw.t", MAIN).await.unwrap();
    let start = t.metadata.current_snapshot_id().unwrap();
    let some = [filter("id", "=", vec![Literal::Int(61)])];
    let deleted = lh
        .delete("raw.t", &some, MAIN, HashMap::new())
        .await
        .unwrap()
        .snapshot_id
        .unwrap();
    lh.append("raw.t", batch(&rows(900..903)), MAIN, HashMap::new())
        .await
        .unwrap();
    let err = lh
        .changes("raw.t", MAIN, Some(start), None, None)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), "invalid_input");
    assert!(err.to_string().contains(&deleted.to_string()), "{err}");

    // An upsert that replaced a row is a removal too.
    let after_delete = lh.load_table("raw.t", MAIN).await.unwrap();
    let after_delete = after_delete.metadata.current_snapshot_id().unwrap();
    let options = upsert(None);
    let merged = lh
        .merge("raw.t", batch(&rows(900..901)), &options)
        .await
        .unwrap()
        .snapshot_id;
    let err = lh
        .changes("raw.t", MAIN, Some(after_delete), None, None)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains(&merged.to_string()), "{err}");

    for (from, to) in [
        (Some(424242), None),
        (Some(merged), Some(start)),
        (None, Some(7)),
    ] {
        let err = lh
            .changes("raw.t", MAIN, from, to, None)
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), "invalid_input", "{err}");
        assert_eq!(err.location().table.as_deref(), Some("raw.t"));
    }
}
