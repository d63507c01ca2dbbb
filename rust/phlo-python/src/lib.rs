//! phlo._native: thin PyO3 bindings over phlo-core. This crate only converts types and errors,
//! releases the GIL around engine calls and keeps them interruptible; all logic is in phlo-core.

mod dedupe;
mod errors;
mod guard;
mod lakehouse;
mod malloc;
mod quality;
mod rest;
mod runtime;
mod scan;
mod schema;
mod stage;
mod validate;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    malloc::tune();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<lakehouse::NativeLakehouse>()?;
    m.add_class::<scan::NativeScan>()?;
    m.add_class::<quality::QualityEvaluator>()?;
    m.add_class::<rest::NativeRestService>()?;
    m.add_function(wrap_pyfunction!(dedupe::dedupe, m)?)?;
    m.add_function(wrap_pyfunction!(stage::stage, m)?)?;
    m.add_function(wrap_pyfunction!(schema::iceberg_schema, m)?)?;
    m.add_function(wrap_pyfunction!(validate::validate, m)?)?;
    Ok(())
}
