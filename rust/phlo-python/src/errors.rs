//! Engine errors become the matching `phlo.errors` class (chosen by the error's stable code in
//! `phlo.errors._from_native`), carrying table and column; never a panic or a bare Exception.

use pyo3::prelude::*;

pub fn to_pyerr(error: phlo_core::Error) -> PyErr {
    Python::attach(|py| {
        let at = error.location();
        let built = py.import("phlo.errors").and_then(|module| {
            module.getattr("_from_native")?.call1((
                error.code(),
                error_chain(&error),
                at.table,
                at.column,
            ))
        });
        match built {
            Ok(exception) => PyErr::from_value(exception),
            Err(import_failure) => import_failure,
        }
    })
}

/// The message with its causes, as delta-rs prints them: "what: why: root cause".
fn error_chain(error: &phlo_core::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

pub trait IntoPyResult<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for phlo_core::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_pyerr)
    }
}
