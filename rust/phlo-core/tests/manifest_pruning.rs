//! Scan planning skips whole manifests by their partition summaries: a table of many manifests
//! (one per append, manifest merging off), each append one day and one category, partitioned in
//! several ways (identity, day, month, truncate, bucket, two fields). Every filtered scan must
//! return exactly the rows a plain model selects, never skip a manifest holding a matching row,
//! and, where the projection pins the partitions, read only the manifests that hold one.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, Date32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use futures::StreamExt;
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions};

const TABLE: &str = "raw.events";
const APPENDS: i64 = 12;
const ROWS_PER_APPEND: i64 = 50;
/// 2024-01-25: the appends cross into February (day `FIRST_DAY + k` for append `k`).
const FIRST_DAY: i32 = 19747;
const CATEGORIES: [&str; 4] = ["apple", "banana", "cherry", "avocado"];

/// One row of the model: (id, day, category).
type Row = (i64, i32, Option<String>);

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("day", DataType::Date32, true),
        Field::new("category", DataType::Utf8, true),
    ]))
}

/// The rows of append `k`: one day and one category (append 5's category is null).
fn append_rows(k: i64) -> Vec<Row> {
    let category = (k != 5).then(|| CATEGORIES[(k % 4) as usize].to_string());
    (0..ROWS_PER_APPEND)
        .map(|i| (k * 100 + i, FIRST_DAY + k as i32, category.clone()))
        .collect()
}

fn batch(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.2.clone()))),
        ],
    )
    .unwrap()
}

/// A table partitioned by `partition_by` with one manifest per append.
async fn setup(partition_by: &[(&str, &str)]) -> (tempfile::TempDir, Lakehouse) {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    let partition_by: Vec<(String, String)> = partition_by
        .iter()
        .map(|(c, t)| (c.to_string(), t.to_string()))
        .collect();
    let properties = HashMap::from([(
        "commit.manifest-merge.enabled".to_string(),
        "false".to_string(),
    )]);
    lh.create_table(TABLE, &schema(), &partition_by, properties, MAIN)
        .await
        .unwrap();
    for k in 0..APPENDS {
        let rows: Vec<Result<RecordBatch, ArrowError>> = vec![Ok(batch(&append_rows(k)))];
        lh.append(TABLE, rows, MAIN, HashMap::new()).await.unwrap();
    }
    (dir, lh)
}

fn filter(column: &str, op: FilterOp, values: Vec<Literal>) -> Filter {
    Filter {
        column: column.into(),
        op,
        values,
    }
}

fn string(s: &str) -> Literal {
    Literal::String(s.into())
}

/// What the model says a filter selects (SQL semantics: comparisons with null do not match).
fn model_matches(f: &Filter, row: &Row) -> bool {
    use std::cmp::Ordering;
    let value: Option<Literal> = match f.column.as_str() {
        "id" => Some(Literal::Int(row.0)),
        "day" => Some(Literal::Date(row.1)),
        _ => row.2.clone().map(Literal::String),
    };
    let Some(value) = value else {
        return f.op == FilterOp::IsNull;
    };
    let cmp = |other: &Literal| match (&value, other) {
        (Literal::Int(a), Literal::Int(b)) => a.cmp(b),
        (Literal::Date(a), Literal::Date(b)) => a.cmp(b),
        (Literal::String(a), Literal::String(b)) => a.cmp(b),
        _ => panic!("model: mismatched literal"),
    };
    let v = &f.values;
    match f.op {
        FilterOp::Eq => cmp(&v[0]) == Ordering::Equal,
        FilterOp::NotEq => cmp(&v[0]) != Ordering::Equal,
        FilterOp::Lt => cmp(&v[0]) == Ordering::Less,
        FilterOp::LtEq => cmp(&v[0]) != Ordering::Greater,
        FilterOp::Gt => cmp(&v[0]) == Ordering::Greater,
        FilterOp::GtEq => cmp(&v[0]) != Ordering::Less,
        FilterOp::In => v.iter().any(|x| cmp(x) == Ordering::Equal),
        FilterOp::NotIn => v.iter().all(|x| cmp(x) != Ordering::Equal),
        FilterOp::Between => cmp(&v[0]) != Ordering::Less && cmp(&v[1]) != Ordering::Greater,
        FilterOp::IsNull => false,
        FilterOp::NotNull => true,
    }
}

/// Scans with `filters`; checks the rows against the model and that no manifest holding a
/// matching row was skipped. Returns how many manifests planning read.
async fn check(lh: &Lakehouse, filters: &[Filter]) -> usize {
    let options = ScanOptions {
        filters: filters.to_vec(),
        ..Default::default()
    };
    let plan = lh.scan(TABLE, &options).await.unwrap();
    let manifests = plan.manifests;
    assert_eq!(manifests.total, APPENDS as usize, "{filters:?}");
    // Files of skipped manifests still count among the snapshot's files.
    let unfiltered = lh.scan(TABLE, &ScanOptions::default()).await.unwrap();
    assert_eq!(plan.files_total, unfiltered.files_total, "{filters:?}");
    let mut got = Vec::new();
    let mut stream = plan.into_stream().unwrap();
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        got.extend(ids.values().iter().copied());
    }
    got.sort_unstable();
    let mut expected = Vec::new();
    let mut appends_matching = 0;
    for k in 0..APPENDS {
        let rows: Vec<Row> = append_rows(k)
            .into_iter()
            .filter(|r| filters.iter().all(|f| model_matches(f, r)))
            .collect();
        appends_matching += usize::from(!rows.is_empty());
        expected.extend(rows.iter().map(|r| r.0));
    }
    expected.sort_unstable();
    assert_eq!(got, expected, "{filters:?}");
    assert!(
        manifests.read >= appends_matching,
        "{filters:?}: read {} manifests, {appends_matching} hold matching rows",
        manifests.read
    );
    manifests.read
}

fn day(k: i32) -> Literal {
    Literal::Date(FIRST_DAY + k)
}

/// Filters of every kind, on every column.
fn filters() -> Vec<Vec<Filter>> {
    vec![
        vec![],
        vec![filter("category", FilterOp::Eq, vec![string("banana")])],
        vec![filter("category", FilterOp::NotEq, vec![string("banana")])],
        vec![filter(
            "category",
            FilterOp::In,
            vec![string("apple"), string("cherry")],
        )],
        vec![filter("category", FilterOp::NotIn, vec![string("apple")])],
        vec![filter("category", FilterOp::Gt, vec![string("b")])],
        vec![filter("category", FilterOp::Lt, vec![string("apple")])],
        vec![filter("category", FilterOp::GtEq, vec![string("az")])],
        vec![filter("category", FilterOp::IsNull, vec![])],
        vec![filter("category", FilterOp::NotNull, vec![])],
        vec![filter("day", FilterOp::Eq, vec![day(3)])],
        vec![filter("day", FilterOp::Lt, vec![day(7)])],
        vec![filter("day", FilterOp::GtEq, vec![day(7)])],
        vec![filter("day", FilterOp::Gt, vec![day(6)])],
        vec![filter("day", FilterOp::LtEq, vec![day(0)])],
        vec![filter("day", FilterOp::Between, vec![day(2), day(4)])],
        vec![filter("day", FilterOp::In, vec![day(1), day(9), day(40)])],
        vec![filter("id", FilterOp::Eq, vec![Literal::Int(305)])],
        vec![filter("id", FilterOp::Lt, vec![Literal::Int(250)])],
        vec![filter(
            "id",
            FilterOp::In,
            vec![Literal::Int(7), Literal::Int(1107)],
        )],
        vec![
            filter("category", FilterOp::Eq, vec![string("apple")]),
            filter("day", FilterOp::Gt, vec![day(3)]),
        ],
        vec![
            filter("category", FilterOp::Eq, vec![string("apple")]),
            filter("day", FilterOp::Lt, vec![day(0)]),
        ],
    ]
}

/// Every filter against one partitioning; returns how many manifests each read.
async fn check_all(partition_by: &[(&str, &str)]) -> Vec<usize> {
    let (_dir, lh) = setup(partition_by).await;
    let mut read = Vec::new();
    for filters in filters() {
        read.push(check(&lh, &filters).await);
    }
    read
}

#[tokio::test]
async fn identity_partitions_read_only_the_manifests_holding_the_value() {
    let read = check_all(&[("category", "identity")]).await;
    // Appends 1 and 9 are bananas (5 is null).
    assert_eq!(read[1], 2);
    // Apple: 0, 4, 8; cherry: 2, 6, 10.
    assert_eq!(read[3], 6);
    // Null category: append 5 only.
    assert_eq!(read[8], 1);
    // "apple" is the lowest category: nothing is below it.
    assert_eq!(read[6], 0);
    // Day filters do not touch the partition column: every manifest.
    assert_eq!(read[10], APPENDS as usize);
}

#[tokio::test]
async fn day_partitions_read_only_the_manifests_of_the_days_asked() {
    let read = check_all(&[("day", "day")]).await;
    assert_eq!(read[10], 1);
    assert_eq!(read[11], 7);
    assert_eq!(read[12], 5);
    assert_eq!(read[13], 5);
    assert_eq!(read[14], 1);
    assert_eq!(read[15], 3);
    assert_eq!(read[16], 2);
    assert_eq!(read[21], 0);
}

#[tokio::test]
async fn month_partitions_prune_by_month_only() {
    let read = check_all(&[("day", "month")]).await;
    // January holds appends 0..=6, February 7..=11.
    assert_eq!(read[10], 7);
    assert_eq!(read[12], 5);
    // day > Jan 31 projects to month >= February.
    assert_eq!(read[13], 5);
    assert_eq!(read[14], 7);
}

#[tokio::test]
async fn truncated_strings_prune_by_prefix() {
    let read = check_all(&[("category", "truncate[1]")]).await;
    // "banana" → partition "b": appends 1 and 9.
    assert_eq!(read[1], 2);
    // category > "b": partitions "b" and "c" may match, "a" cannot.
    assert_eq!(read[5], 5);
}

#[tokio::test]
async fn bucket_partitions_return_the_right_rows() {
    check_all(&[("id", "bucket[4]")]).await;
}

#[tokio::test]
async fn two_partition_fields_prune_on_either() {
    let read = check_all(&[("category", "identity"), ("day", "day")]).await;
    assert_eq!(read[1], 2);
    assert_eq!(read[10], 1);
    // Apples are appends 0, 4 and 8; days after day 3: 4 and 8.
    assert_eq!(read[20], 2);
    assert_eq!(read[21], 0);
}

#[tokio::test]
async fn unpartitioned_tables_read_every_manifest() {
    let read = check_all(&[]).await;
    assert!(read.iter().all(|&r| r == APPENDS as usize), "{read:?}");
}
