//! Quality checks over a scan reading string columns as Arrow dictionaries, against the same
//! checks over the plain scan and a model of the rows: a low-cardinality column whose file
//! dictionaries are kept, and a column of distinct strings whose chunks fall back to plain
//! encoding mid-chunk (a dictionary of their own values per batch).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use futures::StreamExt;
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::quality::Outcome;
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions, ScanPlan};
use serde_json::json;

const ACCEPTED: [&str; 3] = ["click", "view", "buy"];

/// A row of the model: id, category, tag.
type Row = (i64, Option<String>, Option<String>);

/// Row `i`: its category (null every 11th, `nope` every 37th) and a tag distinct per row,
/// long enough that every row group's dictionary overflows the writer's 1 MiB limit (`bad`
/// every 41st).
fn row(i: i64) -> Row {
    let category = match i {
        i if i % 11 == 0 => None,
        i if i % 37 == 0 => Some("nope".to_string()),
        i => Some(ACCEPTED[(i % 3) as usize].to_string()),
    };
    let tag = match i {
        i if i % 13 == 0 => None,
        i if i % 41 == 0 => Some(format!("bad-{i:066}")),
        i => Some(format!("T{i:070}")),
    };
    (i, category, tag)
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("tag", DataType::Utf8, true),
    ]))
}

async fn setup(rows: i64) -> (tempfile::TempDir, Lakehouse) {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    lh.create_table("raw.s", &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    let rows: Vec<_> = (0..rows).map(row).collect();
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1.clone()))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.2.clone()))),
        ],
    )
    .unwrap();
    let input: Vec<Result<RecordBatch, ArrowError>> = vec![Ok(batch)];
    lh.append("raw.s", input, MAIN, HashMap::new())
        .await
        .unwrap();
    (dir, lh)
}

async fn evaluate(plan: ScanPlan) -> Vec<Outcome> {
    let checks = json!([
        {"kind": "accepted_values", "column": "category", "values": ACCEPTED},
        {"kind": "pattern", "column": "tag", "pattern": "T\\d+"},
        {"kind": "pattern", "column": "category", "pattern": "[a-z]+$"},
        {"kind": "not_null", "columns": ["category", "tag"]},
        {"kind": "unique", "columns": ["category"]},
    ]);
    crate::quality::evaluate_sampling(plan, checks, 20).await
}

fn ids(outcome: &Outcome) -> Vec<i64> {
    let sample = outcome.sample.as_ref().unwrap();
    let ids = sample
        .column_by_name("id")
        .unwrap()
        .as_primitive::<arrow_array::types::Int64Type>();
    ids.values().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn dictionary_scans_count_and_sample_as_plain_scans_and_the_model() {
    let rows = 150_000;
    let (_dir, lh) = setup(rows).await;
    let columns = Some(vec!["id".into(), "category".into(), "tag".into()]);
    let options = ScanOptions {
        columns: columns.clone(),
        ..Default::default()
    };
    let dictionaries = lh
        .scan("raw.s", &options)
        .await
        .unwrap()
        .with_string_dictionaries()
        .unwrap();
    let schema = dictionaries.schema();
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    assert_eq!(schema.field(1).data_type(), &dictionary);
    assert_eq!(schema.field(2).data_type(), &dictionary);
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);

    // The categories keep the file's dictionaries (a handful of values); the tags, whose
    // chunks fell back to plain encoding, come as one value per row.
    let mut stream = lh
        .scan("raw.s", &options)
        .await
        .unwrap()
        .with_string_dictionaries()
        .unwrap()
        .into_stream()
        .unwrap();
    let mut seen = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        let category = batch.column(1).as_dictionary::<Int32Type>();
        assert!(category.values().len() <= ACCEPTED.len() + 2);
        let tag = batch.column(2).as_dictionary::<Int32Type>();
        assert_eq!(tag.values().len(), batch.num_rows());
        seen += batch.num_rows();
    }
    assert_eq!(seen as i64, rows);

    let ours = evaluate(dictionaries).await;
    let plain = evaluate(lh.scan("raw.s", &options).await.unwrap()).await;
    let model: Vec<_> = (0..rows).map(row).collect();
    let failing: [fn(&Row) -> bool; 5] = [
        |r| r.1.as_deref().is_some_and(|c| !ACCEPTED.contains(&c)),
        |r| r.2.as_deref().is_some_and(|t| t.starts_with("bad")),
        |_| false,
        |r| r.1.is_none() || r.2.is_none(),
        |_| true,
    ];
    let null_cells = model.iter().filter(|r| r.1.is_none()).count()
        + model.iter().filter(|r| r.2.is_none()).count();
    for (i, fails) in failing.iter().enumerate() {
        let ids_failing: Vec<i64> = model.iter().filter(|r| fails(r)).map(|r| r.0).collect();
        // A null check counts cells, the others rows.
        let want = if i == 3 {
            null_cells
        } else {
            ids_failing.len()
        } as u64;
        assert_eq!(ours[i].error, None, "check {i}");
        assert_eq!(
            (ours[i].failed, ours[i].total),
            (want, rows as u64),
            "check {i}"
        );
        assert_eq!(
            (plain[i].failed, plain[i].total),
            (want, rows as u64),
            "check {i}"
        );
        if want == 0 {
            assert!(ours[i].sample.is_none(), "check {i}");
            continue;
        }
        // Batches of several files arrive in no fixed order: the sample is 20 failing rows.
        let sample = ids(&ours[i]);
        assert_eq!(sample.len(), 20.min(ids_failing.len()), "check {i}");
        assert!(
            sample.iter().all(|id| ids_failing.contains(id)),
            "check {i}"
        );
        let schema = ours[i].sample.as_ref().unwrap().schema();
        assert_eq!(schema, plain[i].sample.as_ref().unwrap().schema());
        assert!(
            schema
                .fields()
                .iter()
                .all(|f| !matches!(f.data_type(), DataType::Dictionary(..)))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn columns_the_filter_compares_stay_plain_strings() {
    let (_dir, lh) = setup(1_000).await;
    let options = ScanOptions {
        columns: Some(vec!["id".into(), "category".into(), "tag".into()]),
        filters: vec![Filter {
            column: "category".into(),
            op: FilterOp::Eq,
            values: vec![Literal::String("nope".into())],
        }],
        ..Default::default()
    };
    let plan = lh
        .scan("raw.s", &options)
        .await
        .unwrap()
        .with_string_dictionaries()
        .unwrap();
    assert_eq!(plan.schema().field(1).data_type(), &DataType::Utf8);
    let mut stream = plan.into_stream().unwrap();
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        assert!(
            batch
                .column(1)
                .as_string::<i32>()
                .iter()
                .all(|c| c == Some("nope"))
        );
        assert!(matches!(
            batch.column(2).data_type(),
            DataType::Dictionary(..)
        ));
        rows += batch.num_rows();
    }
    let nope = (0..1_000)
        .map(row)
        .filter(|r| r.1.as_deref() == Some("nope"))
        .count();
    assert_eq!(rows, nope);
}
