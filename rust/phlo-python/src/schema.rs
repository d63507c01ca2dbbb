//! `iceberg_schema()`: the Iceberg schema phlo derives from an Arrow schema, as Arrow again.

use phlo_core::schema::{arrow_schema_of, iceberg_schema_from_arrow};
use pyo3::prelude::*;
use pyo3_arrow::PySchema;

use crate::errors::IntoPyResult;
use crate::guard::guarded;

/// The Arrow schema of the Iceberg schema `create_table` would make from `schema`: the same
/// fields with their Iceberg ids (`PARQUET:field_id`) and docs.
#[pyfunction]
pub fn iceberg_schema(schema: PySchema) -> PyResult<PySchema> {
    let arrow = schema.into_inner();
    guarded("deriving an Iceberg schema", || {
        let iceberg = iceberg_schema_from_arrow(&arrow).py_err()?;
        let converted = arrow_schema_of(&iceberg).py_err()?;
        Ok(PySchema::new(converted))
    })
}
