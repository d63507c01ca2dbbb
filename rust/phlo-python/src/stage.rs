//! `stage()`: Arrow-like data → Parquet staging files with phlo's metadata columns.

use std::path::PathBuf;

use phlo_core::stage::{StageOptions, stage as stage_batches};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_arrow::PySchema;
use pyo3_arrow::input::AnyRecordBatch;

use crate::guard::detached;

#[pyfunction]
#[pyo3(signature = (data, directory, run_id, partition_date, rows_per_file))]
pub fn stage<'py>(
    py: Python<'py>,
    data: AnyRecordBatch,
    directory: PathBuf,
    run_id: String,
    partition_date: Option<String>,
    rows_per_file: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let reader = data.into_reader()?;
    let schema = reader.schema();
    let options = StageOptions {
        run_id,
        partition_date,
        rows_per_file,
    };
    let staged = detached(py, "staging", || {
        stage_batches(reader, schema, &directory, &options)
    })?;
    let out = PyDict::new(py);
    out.set_item("files", staged.files)?;
    out.set_item("rows", staged.rows)?;
    out.set_item("bytes_written", staged.bytes_written)?;
    out.set_item("schema", PySchema::new(staged.schema))?;
    Ok(out)
}
