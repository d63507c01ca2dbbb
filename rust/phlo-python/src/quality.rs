//! `QualityEvaluator`: the engine's quality checks, fed batch by batch from Python (which
//! drives the scan so checks the engine cannot evaluate see the same batches).

use std::sync::Mutex;

use phlo_core::quality::{Evaluator, QualityPlan};
use phlo_core::tables::ScanPlan;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_arrow::{PyRecordBatch, PySchema};

use crate::errors::{IntoPyResult, to_pyerr};
use crate::guard::{claim, detached};
use crate::runtime::wait_for;
use crate::scan::NativeScan;

#[pyclass(module = "phlo._native", frozen)]
pub struct QualityEvaluator {
    inner: Mutex<Option<Evaluator>>,
}

fn finished() -> PyErr {
    to_pyerr(phlo_core::Error::invalid(
        "this quality evaluation has finished",
        "Start a new QualityEvaluator",
    ))
}

impl QualityEvaluator {
    /// Runs `step` on the evaluator, while it has not finished.
    fn running<R>(&self, step: impl FnOnce(&mut Evaluator) -> PyResult<R>) -> PyResult<R> {
        let mut guard = claim(&self.inner, "quality evaluator")?;
        step(guard.as_mut().ok_or_else(finished)?)
    }

    /// Runs `step` on the evaluator and the plan of `scan` (not yet read).
    fn over<R>(
        &self,
        scan: &NativeScan,
        step: impl FnOnce(&mut Evaluator, &ScanPlan) -> PyResult<R>,
    ) -> PyResult<R> {
        self.running(|evaluator| scan.with_plan(|plan| step(evaluator, plan))?)
    }
}

#[pymethods]
impl QualityEvaluator {
    /// Checks of `plan_json` over batches of `schema`.
    #[new]
    fn new(plan_json: &str, schema: PySchema) -> PyResult<Self> {
        let plan = QualityPlan::from_json(plan_json).py_err()?;
        let evaluator = Evaluator::new(&plan, schema.as_ref());
        Ok(Self {
            inner: Mutex::new(Some(evaluator)),
        })
    }

    /// Settles the checks the data files' metadata and dictionary pages of `scan` (not yet
    /// read) prove; returns the columns the other checks still read.
    fn settle(&self, py: Python<'_>, scan: PyRef<'_, NativeScan>) -> PyResult<Vec<String>> {
        self.over(&scan, |evaluator, plan| {
            wait_for(py, "settling quality checks", async {
                evaluator.settle_scan(plan).await.py_err()
            })
        })
    }

    /// Checks the rows of `scan` (not yet read; planned with every column a check reads) in
    /// one call: settles what metadata and dictionary pages prove, reads the rest (the reading
    /// overlaps the judging of dictionary pages); returns the columns read.
    fn check(&self, py: Python<'_>, scan: PyRef<'_, NativeScan>) -> PyResult<Vec<String>> {
        self.over(&scan, |evaluator, plan| {
            wait_for(py, "checking quality", async {
                evaluator.check_scan(plan).await.py_err()
            })
        })
    }

    /// Updates every check with one batch.
    fn update(&self, py: Python<'_>, batch: PyRecordBatch) -> PyResult<()> {
        let batch = batch.into_inner();
        self.running(|evaluator| {
            detached(py, "evaluating quality checks", || evaluator.update(&batch))
        })
    }

    /// One dict per check: `failed`, `total`, `missing_columns`, `error`, `sample` (an Arrow
    /// record batch or None), `per_column`, `newest_us`, `from_metadata`,
    /// `from_dictionaries`.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let evaluator = claim(&self.inner, "quality evaluator")?
            .take()
            .ok_or_else(finished)?;
        let outcomes = detached(py, "finishing quality checks", || evaluator.finish())?;
        outcomes
            .into_iter()
            .map(|o| {
                let out = PyDict::new(py);
                out.set_item("failed", o.failed)?;
                out.set_item("total", o.total)?;
                out.set_item("missing_columns", o.missing_columns)?;
                out.set_item("error", o.error)?;
                out.set_item("sample", o.sample.map(PyRecordBatch::new))?;
                out.set_item("per_column", o.per_column)?;
                out.set_item("newest_us", o.newest_us)?;
                out.set_item("from_metadata", o.from_metadata)?;
                out.set_item("from_dictionaries", o.from_dictionaries)?;
                Ok(out)
            })
            .collect()
    }
}
