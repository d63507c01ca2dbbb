//! `dedupe()`: the engine's deduplication on any Arrow-like batch.

use arrow_array::RecordBatchReader;
use arrow_select::concat::concat_batches;
use phlo_core::dedupe::{DedupeMethod, dedupe as dedupe_batch};
use phlo_core::schema::check_column_names;
use pyo3::prelude::*;
use pyo3_arrow::PyRecordBatch;
use pyo3_arrow::input::AnyRecordBatch;

use crate::errors::IntoPyResult;
use crate::guard::detached;

/// Deduplicates `data` on `unique_key`; returns the kept rows and how many were dropped.
#[pyfunction]
#[pyo3(signature = (data, unique_key, method, order_by=None))]
pub fn dedupe(
    py: Python<'_>,
    data: AnyRecordBatch,
    unique_key: Vec<String>,
    method: &str,
    order_by: Option<String>,
) -> PyResult<(PyRecordBatch, u64)> {
    let method = DedupeMethod::parse(method).py_err()?;
    let reader = data.into_reader()?;
    let schema = reader.schema();
    check_column_names(&schema).py_err()?;
    let deduped = detached(py, "deduplicating", || {
        let batches =
            reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| phlo_core::Error::Arrow {
                    context: "reading the input".into(),
                    source,
                })?;
        // One batch (the usual case) is used as it is; several are joined once.
        let batch = match batches.as_slice() {
            [one] => Ok(one.clone()),
            _ => concat_batches(&schema, &batches),
        }
        .map_err(|source| phlo_core::Error::Arrow {
            context: "collecting the input".into(),
            source,
        })?;
        dedupe_batch(&batch, &unique_key, method, order_by.as_deref())
    })?;
    Ok((
        PyRecordBatch::new(deduped.batch),
        deduped.duplicates_dropped,
    ))
}
