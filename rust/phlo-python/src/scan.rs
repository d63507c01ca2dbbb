//! A planned scan handed to Python: pruning statistics plus a lazily read Arrow stream.

use std::sync::{Arc, Mutex};

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use futures::StreamExt;
use futures::stream::BoxStream;
use phlo_core::iceberg::ScanPlan;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3_arrow::{PyRecordBatchReader, PySchema};
use tokio::runtime::Runtime;

use crate::errors::IntoPyResult;
use crate::runtime::runtime;

#[pyclass(module = "phlo._native", frozen)]
pub struct NativeScan {
    plan: Mutex<Option<ScanPlan>>,
    schema: SchemaRef,
    #[pyo3(get)]
    files_total: usize,
    #[pyo3(get)]
    files_scanned: usize,
    #[pyo3(get)]
    snapshot_id: Option<i64>,
}

impl NativeScan {
    pub fn new(plan: ScanPlan) -> Self {
        Self {
            schema: plan.schema(),
            files_total: plan.files_total,
            files_scanned: plan.files_scanned,
            snapshot_id: plan.snapshot_id,
            plan: Mutex::new(Some(plan)),
        }
    }
}

#[pymethods]
impl NativeScan {
    #[getter]
    fn schema(&self) -> PySchema {
        PySchema::new(self.schema.clone())
    }

    /// The rows as an Arrow stream (readable once). Batches are read as they are consumed.
    fn reader(&self) -> PyResult<PyRecordBatchReader> {
        let plan = self
            .plan
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this scan was already read; scan again"))?;
        let stream = plan.into_stream().py_err()?;
        Ok(PyRecordBatchReader::new(Box::new(BlockingReader {
            schema: self.schema.clone(),
            stream,
            runtime: runtime(),
        })))
    }
}

/// Pulls batches from the async scan on the caller's thread (the Arrow C stream consumer).
struct BlockingReader {
    schema: SchemaRef,
    stream: BoxStream<'static, phlo_core::Result<RecordBatch>>,
    runtime: Arc<Runtime>,
}

impl Iterator for BlockingReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.runtime.block_on(self.stream.next())?;
        Some(next.map_err(|e| ArrowError::ExternalError(Box::new(e))))
    }
}

impl RecordBatchReader for BlockingReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
