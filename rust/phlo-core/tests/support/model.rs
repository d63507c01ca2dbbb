//! A table of `(id int64, name string)` rows read back as a map, to compare with a model.
//! Included with `#[path]` by the tests that use it (not through `support/mod.rs`, whose
//! PostgreSQL helpers would be dead code there).

use std::collections::BTreeMap;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use phlo_core::Lakehouse;
use phlo_core::tables::ScanOptions;

pub type Model = BTreeMap<i64, String>;

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
