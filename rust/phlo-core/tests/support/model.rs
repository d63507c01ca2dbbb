//! A table of `(id int64, name string)` rows: its schema, batches of it, and the table read
//! back as a map, to compare with a model. Declared once in `tests/engine.rs` (not through
//! `support/mod.rs`, whose PostgreSQL helpers are a module of their own).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use futures::TryStreamExt;
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::dedupe::DedupeMethod;
use phlo_core::merge::{MergeOptions, MergeStrategy, WriteMode};
use phlo_core::tables::ScanOptions;

pub type Model = BTreeMap<i64, String>;

/// `(id int64 not null, name string)`.
pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

/// `rows` as one batch of [`schema`], in the shape the engine's writes take.
pub fn rows(rows: &[(i64, &str)]) -> Vec<Result<RecordBatch, ArrowError>> {
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .unwrap();
    vec![Ok(batch)]
}

/// A lakehouse in a new temporary folder, holding the empty table `raw.t` of `schema` on main.
pub async fn new_table(schema: &Schema) -> (tempfile::TempDir, Lakehouse) {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    lh.create_table("raw.t", schema, &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    (dir, lh)
}

/// What a table holding `rows` reads back as.
pub fn model_of(rows: &[(i64, &str)]) -> Model {
    rows.iter().map(|(id, v)| (*id, v.to_string())).collect()
}

/// The rows of `table` on `ref_name`, keyed by id; a duplicate id fails the test.
pub async fn contents(lh: &Lakehouse, table: &str, ref_name: &str) -> Model {
    let options = ScanOptions {
        ref_name: Some(ref_name.into()),
        ..Default::default()
    };
    scan_model(lh, table, &options).await
}

/// The rows a scan with `options` returns, keyed by id; a duplicate id fails the test.
pub async fn scan_model(lh: &Lakehouse, table: &str, options: &ScanOptions) -> Model {
    let plan = lh.scan(table, options).await.unwrap();
    let batches: Vec<RecordBatch> = plan.into_stream().unwrap().try_collect().await.unwrap();
    let mut model = Model::new();
    for b in batches {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            let duplicate = model.insert(ids.value(i), names.value(i).to_string());
            assert!(duplicate.is_none(), "id {} read twice", ids.value(i));
        }
    }
    model
}

/// A merge by `id` on main (the last of duplicate keys wins) in `write_mode` (`None`: the
/// table's).
pub fn upsert(write_mode: Option<WriteMode>) -> MergeOptions {
    MergeOptions {
        unique_key: vec!["id".into()],
        strategy: MergeStrategy::Merge,
        dedupe: Some(DedupeMethod::Last),
        order_by: None,
        ref_name: MAIN.into(),
        properties: HashMap::new(),
        write_mode,
    }
}
