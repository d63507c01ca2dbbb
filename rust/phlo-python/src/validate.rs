//! `validate()`: a plan compiled from a Pandera schema, evaluated by the engine on Arrow data.

use arrow_array::RecordBatchReader;
use phlo_core::schema::check_column_names;
use phlo_core::validate::{Plan, failure_cases, validate as validate_batches};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_arrow::input::AnyRecordBatch;
use pyo3_arrow::{PyRecordBatch, PySchema, PyTable};

use crate::errors::IntoPyResult;
use crate::guard::detached;

/// Validates `data` against `plan_json` (declared types in `declared`). Returns a dict:
/// `table` (validated, coerced), `failure_cases` (Pandera's layout), `counts`
/// (`[(context, column, check, check_number, count)]`) and `unsupported`
/// (`[(column, check_number, why)]`, the checks left to Pandera).
#[pyfunction]
pub fn validate<'py>(
    py: Python<'py>,
    data: AnyRecordBatch,
    plan_json: &str,
    declared: PySchema,
) -> PyResult<Bound<'py, PyDict>> {
    let plan = Plan::from_json(plan_json).py_err()?;
    let reader = data.into_reader()?;
    let schema = reader.schema();
    let declared = declared.into_inner();
    check_column_names(&schema).py_err()?;
    let (validated, failures) = detached(py, "validating", || {
        let batches =
            reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| phlo_core::Error::Arrow {
                    context: "reading the input".into(),
                    source,
                })?;
        let validated = validate_batches(&schema, &batches, &plan, &declared)?;
        let failures = failure_cases(&validated.failures)?;
        Ok::<_, phlo_core::Error>((validated, failures))
    })?;
    let counts: Vec<(&str, String, String, Option<i64>, usize)> = validated
        .failures
        .iter()
        .map(|f| {
            let (column, check) = (f.column.clone(), f.check.clone());
            (f.context.as_str(), column, check, f.check_number, f.count)
        })
        .collect();
    let out = PyDict::new(py);
    let table = PyTable::try_new(validated.batches, validated.schema)?;
    out.set_item("table", table)?;
    out.set_item("failure_cases", PyRecordBatch::new(failures))?;
    out.set_item("counts", counts)?;
    out.set_item("unsupported", validated.unsupported)?;
    Ok(out)
}
