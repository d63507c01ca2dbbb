//! Quality checks over a scan, against a plain model of the table: exact failing counts of
//! every check in one pass over a pruned partition, samples that really fail, checks that
//! cannot run (missing column, wrong type) failing alone, empty partitions, and uniqueness
//! across batches (nulls, -0.0 and NaN as pandas compares them).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};
use futures::StreamExt;
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::quality::{Evaluator, Outcome, QualityPlan};
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions, ScanPlan};
use serde_json::json;

const HOUR_US: i64 = 3_600_000_000;
const BASE_US: i64 = 1_704_067_200_000_000; // 2024-01-01T00:00:00Z

#[derive(Debug, Clone)]
struct Row {
    id: Option<i64>,
    day: String,
    value: Option<f64>,
    code: Option<String>,
    ts: i64,
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("day", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
        Field::new("code", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

/// Row `i`: ids repeat in pairs every 40 rows and are null every 97th; values run 0..120
/// (null every 13th, NaN every 11th); codes are `C000`-style except every 23rd (with a quote
/// and a semicolon) and null every 19th.
fn row(i: i64) -> Row {
    Row {
        id: (i % 97 != 0).then_some(if i % 40 == 39 { i - 1 } else { i }),
        day: format!("d{}", i % 3),
        value: match i {
            i if i % 13 == 0 => None,
            i if i % 11 == 0 => Some(f64::NAN),
            i => Some((i % 120) as f64),
        },
        code: match i {
            i if i % 19 == 0 => None,
            i if i % 23 == 0 => Some(format!("bad;'{i}")),
            i => Some(format!("C{i:03}")),
        },
        ts: BASE_US + i * HOUR_US,
    }
}

fn batch(rows: &[Row]) -> RecordBatch {
    let ts: TimestampMicrosecondArray = rows.iter().map(|r| Some(r.ts)).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.day.as_str()),
            )),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.value).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.code.as_deref()).collect::<Vec<_>>(),
            )),
            Arc::new(ts.with_timezone("UTC")),
        ],
    )
    .unwrap()
}

/// `raw.t` partitioned by `day`, filled by three appends of 200 rows (three files a day).
async fn setup() -> (tempfile::TempDir, Lakehouse, Vec<Row>) {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    let partition = [("day".to_string(), "identity".to_string())];
    lh.create_table("raw.t", &schema(), &partition, HashMap::new(), MAIN)
        .await
        .unwrap();
    let mut model = Vec::new();
    for start in [0, 200, 400] {
        let rows: Vec<Row> = (start..start + 200).map(row).collect();
        let input: Vec<Result<RecordBatch, ArrowError>> = vec![Ok(batch(&rows))];
        lh.append("raw.t", input, MAIN, HashMap::new())
            .await
            .unwrap();
        model.extend(rows);
    }
    (dir, lh, model)
}

fn day_filter(day: &str) -> Filter {
    Filter {
        column: "day".into(),
        op: FilterOp::Eq,
        values: vec![Literal::String(day.into())],
    }
}

async fn evaluate(plan: ScanPlan, checks: serde_json::Value) -> Vec<Outcome> {
    evaluate_sampling(plan, checks, 5).await
}

/// Every check of `checks` over what `plan` reads, in one pass, keeping up to `sample_limit`
/// failing rows (by `id`) each.
pub(crate) async fn evaluate_sampling(
    plan: ScanPlan,
    checks: serde_json::Value,
    sample_limit: usize,
) -> Vec<Outcome> {
    let plan_json = json!({"checks": checks, "id_columns": ["id"], "sample_limit": sample_limit});
    let quality = QualityPlan::from_json(&plan_json.to_string()).unwrap();
    let mut evaluator = Evaluator::new(&quality, &plan.schema());
    let mut stream = plan.into_stream().unwrap();
    while let Some(batch) = stream.next().await {
        evaluator.update(&batch.unwrap()).unwrap();
    }
    evaluator.finish().unwrap()
}

fn all_checks(cutoff_us: i64) -> serde_json::Value {
    json!([
        {"kind": "not_null", "columns": ["id", "value"]},
        {"kind": "range", "column": "value", "min": 0, "max": 100},
        {"kind": "unique", "columns": ["id"]},
        {"kind": "freshness", "column": "ts", "cutoff_us": cutoff_us},
        {"kind": "count"},
        {"kind": "pattern", "column": "code", "pattern": "C\\d{3}"},
        {"kind": "accepted_values", "column": "day", "values": ["d1"]},
        {"kind": "unique", "columns": ["day", "code"]},
    ])
}

fn missing(v: Option<f64>) -> bool {
    v.is_none_or(f64::is_nan)
}

/// How often each key occurs; rows of keys occurring more than once.
fn duplicated<K: std::hash::Hash + Eq>(keys: impl Iterator<Item = K> + Clone) -> u64 {
    let mut counts: HashMap<K, u64> = HashMap::new();
    for key in keys {
        *counts.entry(key).or_default() += 1;
    }
    counts.values().filter(|&&n| n > 1).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_counts_exactly_in_one_pass_over_a_pruned_partition() {
    let (_dir, lh, model) = setup().await;
    let options = ScanOptions {
        filters: vec![day_filter("d1")],
        batch_size: Some(16),
        ..Default::default()
    };
    let plan = lh.scan("raw.t", &options).await.unwrap();
    assert_eq!((plan.files_scanned, plan.files_total), (3, 9));
    let rows: Vec<&Row> = model.iter().filter(|r| r.day == "d1").collect();
    let newest = rows.iter().map(|r| r.ts).max().unwrap();
    // Stale: the newest row is an hour older than the cutoff, so every row fails.
    let outcomes = evaluate(plan, all_checks(newest + HOUR_US)).await;
    let total = rows.len() as u64;
    assert!(
        outcomes
            .iter()
            .all(|o| o.total == total && o.error.is_none())
    );

    let null_ids = rows.iter().filter(|r| r.id.is_none()).count() as u64;
    let null_values = rows.iter().filter(|r| missing(r.value)).count() as u64;
    assert_eq!(outcomes[0].failed, null_ids + null_values);
    assert_eq!(
        outcomes[0].per_column,
        vec![("id".into(), null_ids), ("value".into(), null_values)]
    );
    let out_of_range = rows
        .iter()
        .filter(|r| !missing(r.value) && r.value.unwrap() > 100.0)
        .count() as u64;
    assert!(out_of_range > 0);
    assert_eq!(outcomes[1].failed, out_of_range);
    let sample = outcomes[1].sample.as_ref().unwrap();
    assert_eq!(sample.num_rows(), 5);
    assert_eq!(sample.schema().field(0).name(), "id");
    let sampled = sample.column(1).as_primitive::<Float64Type>();
    assert!(sampled.values().iter().all(|v| *v > 100.0));

    let dup_ids = duplicated(rows.iter().map(|r| r.id));
    assert!(dup_ids > 0);
    assert_eq!(outcomes[2].failed, dup_ids);
    assert_eq!(outcomes[3].failed, total);
    assert_eq!(outcomes[3].newest_us, Some(newest));
    assert_eq!(outcomes[4].failed, 0);
    let bad_codes = rows
        .iter()
        .filter(|r| r.code.as_deref().is_some_and(|c| !c.starts_with('C')))
        .count() as u64;
    assert!(bad_codes > 0);
    assert_eq!(outcomes[5].failed, bad_codes);
    assert_eq!(outcomes[6].failed, 0);
    assert_eq!(
        outcomes[7].failed,
        duplicated(rows.iter().map(|r| (r.day.clone(), r.code.clone())))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_partition_passes_and_keeps_no_sample() {
    let (_dir, lh, model) = setup().await;
    let options = ScanOptions {
        filters: vec![day_filter("d2")],
        ..Default::default()
    };
    let plan = lh.scan("raw.t", &options).await.unwrap();
    let newest = model
        .iter()
        .filter(|r| r.day == "d2")
        .map(|r| r.ts)
        .max()
        .unwrap();
    let checks = json!([{"kind": "freshness", "column": "ts", "cutoff_us": newest}]);
    let outcomes = evaluate(plan, checks).await;
    assert_eq!(outcomes[0].failed, 0);
    assert!(outcomes[0].sample.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_that_cannot_run_fail_alone_and_empty_partitions_pass() {
    let (_dir, lh, _model) = setup().await;
    let plan = lh.scan("raw.t", &ScanOptions::default()).await.unwrap();
    let checks = json!([
        {"kind": "not_null", "columns": ["id", "nope"]},
        {"kind": "pattern", "column": "value", "pattern": "x"},
        {"kind": "freshness", "column": "code", "cutoff_us": 0},
        {"kind": "pattern", "column": "code", "pattern": "("},
        {"kind": "count"},
        {"kind": "unique", "columns": []},
    ]);
    let outcomes = evaluate(plan, checks).await;
    assert_eq!(outcomes[0].missing_columns, vec!["nope".to_string()]);
    assert!(outcomes[5].error.as_deref().unwrap().contains("no columns"));
    assert!(
        outcomes[1]
            .error
            .as_deref()
            .unwrap()
            .contains("string column")
    );
    assert!(outcomes[2].error.as_deref().unwrap().contains("timestamp"));
    assert!(
        outcomes[3]
            .error
            .as_deref()
            .unwrap()
            .contains("does not compile")
    );
    assert_eq!(outcomes[4].total, 600);

    let options = ScanOptions {
        filters: vec![day_filter("d9")],
        ..Default::default()
    };
    let plan = lh.scan("raw.t", &options).await.unwrap();
    assert_eq!(plan.files_scanned, 0);
    let outcomes = evaluate(plan, all_checks(BASE_US)).await;
    assert!(outcomes.iter().all(|o| o.total == 0 && o.failed == 0));
}

fn evaluate_batches(checks: serde_json::Value, batches: &[RecordBatch]) -> Vec<Outcome> {
    let plan = QualityPlan::from_json(&json!({"checks": checks}).to_string()).unwrap();
    let mut evaluator = Evaluator::new(&plan, &batches[0].schema());
    for batch in batches {
        evaluator.update(batch).unwrap();
    }
    evaluator.finish().unwrap()
}

#[test]
fn uniqueness_spans_batches_with_nulls_zeros_and_nan_as_pandas_compares_them() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("x", DataType::Float64, true),
        Field::new("empty", DataType::Int64, true),
    ]));
    let part = |k: Vec<Option<&str>>, x: Vec<Option<f64>>| {
        let n = k.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(k)),
            Arc::new(Float64Array::from(x)),
            Arc::new(Int64Array::from(vec![None::<i64>; n])),
        ];
        RecordBatch::try_new(schema.clone(), columns).unwrap()
    };
    let batches = [
        part(
            vec![Some("a"), None, Some("b")],
            vec![Some(0.0), Some(f64::NAN), None],
        ),
        part(
            vec![Some("a"), None, Some("c")],
            vec![Some(-0.0), None, Some(1.0)],
        ),
        part(vec![Some("a'; DROP"), None], vec![Some(2.0), Some(3.0)]),
    ];
    let outcomes = evaluate_batches(
        json!([
            {"kind": "unique", "columns": ["k"]},
            {"kind": "unique", "columns": ["x"]},
            {"kind": "unique", "columns": ["k", "x"]},
            {"kind": "unique", "columns": ["empty"]},
            {"kind": "not_null", "columns": ["empty"]},
            {"kind": "range", "column": "empty", "min": 1},
        ]),
        &batches,
    );
    // k: "a" twice, null three times.
    assert_eq!(outcomes[0].failed, 5);
    // x: 0.0 = -0.0; NaN = null = null.
    assert_eq!(outcomes[1].failed, 5);
    // (k, x): ("a", 0.0) = ("a", -0.0); (null, NaN) = (null, null).
    assert_eq!(outcomes[2].failed, 4);
    // An all-null column: every row has the same (null) key, every cell is null, no value
    // is out of range.
    assert_eq!(outcomes[3].failed, 8);
    assert_eq!(outcomes[4].failed, 8);
    assert_eq!(outcomes[5].failed, 0);
    let sample = outcomes[0].sample.as_ref().unwrap();
    let keys = sample.column(0).as_string::<i32>();
    // The later occurrences, as they were met.
    assert_eq!(keys.iter().collect::<Vec<_>>(), vec![Some("a"), None, None]);
}

/// The outcome fields a scan and metadata must agree on: failed, total, per-column failed
/// cells, newest value.
type Answer = (u64, u64, Vec<(String, u64)>, Option<i64>);

fn answers(outcomes: &[Outcome]) -> Vec<Answer> {
    outcomes
        .iter()
        .map(|o| (o.failed, o.total, o.per_column.clone(), o.newest_us))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_answers_equal_the_scan_and_leave_only_unsettled_columns_to_read() {
    let (_dir, lh, _model) = setup().await;
    let checks = json!([
        {"kind": "not_null", "columns": ["ts", "day"]},
        {"kind": "range", "column": "value", "min": -1, "max": 200.5},
        {"kind": "freshness", "column": "ts", "cutoff_us": BASE_US},
        {"kind": "count"},
        // Fail (nulls, values over 100, stale): the scan counts them and keeps samples.
        {"kind": "not_null", "columns": ["id"]},
        {"kind": "range", "column": "value", "min": 0, "max": 100},
        {"kind": "freshness", "column": "ts", "cutoff_us": BASE_US + 1000 * HOUR_US},
        // Never from metadata; the integer key is kept in a bitmap of its files' range.
        {"kind": "unique", "columns": ["id"]},
    ]);
    let plan_json = json!({"checks": checks, "id_columns": ["id"], "sample_limit": 5});
    let quality = QualityPlan::from_json(&plan_json.to_string()).unwrap();
    for filters in [vec![day_filter("d1")], vec![]] {
        let options = ScanOptions {
            filters,
            ..Default::default()
        };
        let scanned = evaluate(lh.scan("raw.t", &options).await.unwrap(), checks.clone()).await;

        let plan = lh.scan("raw.t", &options).await.unwrap();
        let mut evaluator = Evaluator::new(&quality, &plan.schema());
        let unsettled = evaluator.settle(plan.file_metadata());
        assert_eq!(unsettled, ["id", "value", "ts"]);
        let narrowed = ScanOptions {
            columns: Some(unsettled),
            ..options.clone()
        };
        let mut stream = lh
            .scan("raw.t", &narrowed)
            .await
            .unwrap()
            .into_stream()
            .unwrap();
        while let Some(batch) = stream.next().await {
            evaluator.update(&batch.unwrap()).unwrap();
        }
        let settled = evaluator.finish().unwrap();
        assert_eq!(answers(&settled), answers(&scanned));
        let provenance: Vec<bool> = settled.iter().map(|o| o.from_metadata).collect();
        assert_eq!(
            provenance,
            [true, true, true, true, false, false, false, false]
        );
        for (ours, theirs) in settled.iter().zip(&scanned).skip(4).take(3) {
            assert!(ours.failed > 0 && ours.sample.is_some() && theirs.sample.is_some());
        }

        // Nothing left to read: the row count comes from metadata.
        let only = json!({"checks": [{"kind": "count"}, checks[0].clone()]});
        let quality = QualityPlan::from_json(&only.to_string()).unwrap();
        let plan = lh.scan("raw.t", &options).await.unwrap();
        let mut evaluator = Evaluator::new(&quality, &plan.schema());
        assert!(evaluator.settle(plan.file_metadata()).is_empty());
        let outcomes = evaluator.finish().unwrap();
        let expected = [answers(&scanned[3..4]), answers(&scanned[0..1])].concat();
        assert_eq!(answers(&outcomes), expected);
    }
}

/// Batches large enough to check side by side (each running check on a thread of its own,
/// from the first large batch to the end of the pass, small batches included) give the
/// outcomes of small batches checked one check after another, in the plan's order (checks
/// that cannot run stay in their places), and the model's counts.
#[test]
fn checks_of_large_batches_run_side_by_side_with_the_outcomes_of_small_ones() {
    let rows: Vec<Row> = (0..50_000).map(row).collect();
    let checks = json!([
        {"kind": "not_null", "columns": ["missing"]},
        {"kind": "unique", "columns": ["id"]},
        {"kind": "not_null", "columns": ["id", "value"]},
        {"kind": "pattern", "column": "value", "pattern": "x"},
        {"kind": "range", "column": "value", "min": 0, "max": 100},
        {"kind": "pattern", "column": "code", "pattern": "C\\d{3}"},
        {"kind": "count"},
    ]);
    let large = [
        batch(&rows[..20_000]),
        batch(&rows[20_000..21_000]),
        batch(&rows[21_000..]),
    ];
    let small: Vec<RecordBatch> = rows.chunks(1000).map(batch).collect();
    let side_by_side = evaluate_batches(checks.clone(), &large);
    let one_by_one = evaluate_batches(checks, &small);

    let view = |o: &Outcome| {
        (
            answers(std::slice::from_ref(o)),
            o.missing_columns.clone(),
            o.error.clone(),
            o.sample.clone(),
        )
    };
    let side_by_side: Vec<_> = side_by_side.iter().map(view).collect();
    assert_eq!(
        side_by_side,
        one_by_one.iter().map(view).collect::<Vec<_>>()
    );

    let total = rows.len() as u64;
    let failed: Vec<u64> = side_by_side.iter().map(|v| v.0[0].0).collect();
    let null_ids = rows.iter().filter(|r| r.id.is_none()).count() as u64;
    let null_values = rows.iter().filter(|r| missing(r.value)).count() as u64;
    let out_of_range = rows
        .iter()
        .filter(|r| !missing(r.value) && r.value.unwrap() > 100.0)
        .count() as u64;
    let bad_codes = rows
        .iter()
        .filter(|r| r.code.as_deref().is_some_and(|c| !c.starts_with('C')))
        .count() as u64;
    assert_eq!(
        failed,
        [
            // Checks that could not run count nothing (Python fails them whole).
            0,
            duplicated(rows.iter().map(|r| r.id)),
            null_ids + null_values,
            0,
            out_of_range,
            bad_codes,
            0
        ]
    );
    assert_eq!(side_by_side[0].1, ["missing"]);
    assert!(side_by_side[3].2.is_some());
    assert!(side_by_side.iter().all(|v| v.0[0].1 == total));
    // Samples hold the first failing rows, whichever thread found them.
    let sample = side_by_side[4].3.as_ref().unwrap();
    let first = rows
        .iter()
        .filter(|r| !missing(r.value) && r.value.unwrap() > 100.0)
        .take(sample.num_rows())
        .map(|r| r.value);
    let sampled = sample.column(0).as_primitive::<Float64Type>();
    assert!(sampled.iter().eq(first));
}

/// A batch that lacks a column a running check reads fails the update with the column's
/// name, also once the checks run on threads of their own.
#[test]
fn a_batch_without_a_checked_column_fails_the_update_on_check_threads() {
    let rows: Vec<Row> = (0..20_000).map(row).collect();
    let full = batch(&rows);
    let plan = json!({"checks": [
        {"kind": "unique", "columns": ["id"]},
        {"kind": "range", "column": "value", "min": 0, "max": 100},
    ]});
    let quality = QualityPlan::from_json(&plan.to_string()).unwrap();
    let mut evaluator = Evaluator::new(&quality, &full.schema());
    evaluator.update(&full).unwrap();
    let without_value = full.project(&[0, 1, 3, 4]).unwrap();
    let err = evaluator.update(&without_value).unwrap_err();
    assert!(err.to_string().contains("lack column value"), "{err}");
}
