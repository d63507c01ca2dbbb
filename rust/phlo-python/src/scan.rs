//! A planned scan handed to Python: pruning statistics plus a lazily read Arrow stream.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use futures::StreamExt;
use futures::stream::BoxStream;
use phlo_core::tables::ScanPlan;
use pyo3::prelude::*;
use pyo3_arrow::{PyRecordBatchReader, PySchema};
use tokio::runtime::Runtime;

use crate::errors::{IntoPyResult, to_pyerr};
use crate::guard::{claim, guarded};
use crate::runtime::runtime;

/// The engine error that ended a stream. The Arrow C stream carries only a message, so the
/// error itself waits here for Python to raise it with its phlo type (`raise_error`).
type ErrorSlot = Arc<Mutex<Option<phlo_core::Error>>>;

#[pyclass(module = "phlo._native", frozen)]
pub struct NativeScan {
    plan: Mutex<Option<ScanPlan>>,
    schema: SchemaRef,
    failure: ErrorSlot,
    #[pyo3(get)]
    files_total: usize,
    #[pyo3(get)]
    files_scanned: usize,
    /// The snapshot's data manifests, and how many planning read (the others were skipped by
    /// their partition summaries).
    #[pyo3(get)]
    manifests_total: usize,
    #[pyo3(get)]
    manifests_scanned: usize,
    #[pyo3(get)]
    snapshot_id: Option<i64>,
    /// (path, delete files applying to it, is Parquet) of every file left after pruning.
    #[pyo3(get)]
    data_files: Vec<(String, usize, bool)>,
}

impl NativeScan {
    pub fn new(plan: ScanPlan) -> Self {
        Self {
            schema: plan.schema(),
            files_total: plan.files_total,
            files_scanned: plan.files_scanned,
            manifests_total: plan.manifests.total,
            manifests_scanned: plan.manifests.read,
            snapshot_id: plan.snapshot_id,
            data_files: plan
                .data_files()
                .map(|(path, deletes, parquet)| (path.to_string(), deletes, parquet))
                .collect(),
            plan: Mutex::new(Some(plan)),
            failure: ErrorSlot::default(),
        }
    }

    /// Runs `f` on the plan, while the scan has not been read (`InputError` once it has).
    pub fn with_plan<R>(&self, f: impl FnOnce(&ScanPlan) -> R) -> PyResult<R> {
        claim(&self.plan, "scan")?
            .as_ref()
            .map(f)
            .ok_or_else(already_read)
    }
}

/// A scan's rows stream once: reading (or narrowing) it again is the caller's mistake.
fn already_read() -> PyErr {
    to_pyerr(phlo_core::Error::invalid(
        "this scan was already read",
        "Scan again with table.scan(): a scan's rows are read once",
    ))
}

#[pymethods]
impl NativeScan {
    #[getter]
    fn schema(&self) -> PySchema {
        PySchema::new(self.schema.clone())
    }

    /// The rows as an Arrow stream (readable once). Batches are read as they are consumed.
    fn reader(&self) -> PyResult<PyRecordBatchReader> {
        let plan = claim(&self.plan, "scan")?.take().ok_or_else(already_read)?;
        let stream = guarded("starting a scan", || plan.into_stream().py_err())?;
        Ok(PyRecordBatchReader::new(Box::new(BlockingReader {
            schema: self.schema.clone(),
            stream,
            runtime: runtime(),
            failure: self.failure.clone(),
        })))
    }

    /// The same scan (snapshot, files, filter; not planned again) reading only `columns`.
    fn select(&self, columns: Vec<String>) -> PyResult<Self> {
        let plan = self.with_plan(|plan| plan.select(&columns))?;
        Ok(Self::new(plan.py_err()?))
    }

    /// Raises the phlo error that ended the stream, if the engine failed while streaming.
    fn raise_error(&self) -> PyResult<()> {
        match self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(error) => Err(to_pyerr(error)),
            None => Ok(()),
        }
    }
}

/// Pulls batches from the async scan on the caller's thread (the Arrow C stream consumer).
struct BlockingReader {
    schema: SchemaRef,
    stream: BoxStream<'static, phlo_core::Result<RecordBatch>>,
    runtime: Arc<Runtime>,
    failure: ErrorSlot,
}

impl Iterator for BlockingReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        // This runs inside an `extern "C"` callback of the Arrow C stream, where a panic
        // would abort the process.
        let next = catch_unwind(AssertUnwindSafe(|| {
            self.runtime.block_on(self.stream.next())
        }))
        .unwrap_or_else(|panic| {
            Some(Err(phlo_core::Error::from_panic("reading a scan", &*panic)))
        })?;
        Some(next.map_err(|error| {
            let message = error.to_string();
            *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
            ArrowError::ExternalError(message.into())
        }))
    }
}

impl RecordBatchReader for BlockingReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
