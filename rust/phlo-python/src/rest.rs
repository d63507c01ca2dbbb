//! `NativeRestService`: the Iceberg REST catalog of phlo-core's `rest` module, answering one
//! request per call with the GIL released (the HTTP server is Python's, one thread a request).

use std::sync::Arc;

use phlo_core::rest::{Request, RestService};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::lakehouse::NativeLakehouse;
use crate::runtime::wait_for;

#[pyclass(module = "phlo._native", frozen)]
pub struct NativeRestService {
    inner: Arc<RestService>,
}

/// `(status, headers, body)` of one response.
type PyResponse<'py> = (u16, Vec<(String, String)>, Bound<'py, PyBytes>);

#[pymethods]
impl NativeRestService {
    #[new]
    #[pyo3(signature = (lakehouse, token=None, vend_credentials=false))]
    fn new(lakehouse: &NativeLakehouse, token: Option<String>, vend_credentials: bool) -> Self {
        let service = RestService::new(lakehouse.shared(), token);
        let service = match vend_credentials {
            true => service.vending_credentials(),
            false => service,
        };
        Self {
            inner: Arc::new(service),
        }
    }

    fn handle<'py>(
        &self,
        py: Python<'py>,
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: &[u8],
    ) -> PyResult<PyResponse<'py>> {
        let request = Request {
            method,
            path,
            query,
            headers,
            body: body.to_vec(),
        };
        let service = self.inner.clone();
        let response = wait_for(py, "answering a REST catalog request", async move {
            Ok(service.handle(&request).await)
        })?;
        Ok((
            response.status,
            response.headers,
            PyBytes::new(py, &response.body),
        ))
    }
}
