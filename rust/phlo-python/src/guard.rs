//! Panics stop at the Python boundary: a panic in phlo or a library it drives becomes
//! `phlo.errors.InternalError` ("please report it"), never `pyo3_runtime.PanicException`,
//! and never an abort inside an Arrow C stream callback.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::prelude::*;

use crate::errors::{IntoPyResult, to_pyerr};

/// Runs `f`; a panic becomes the `InternalError` of `context` (what phlo was doing).
pub fn guarded<T>(context: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(to_pyerr(phlo_core::Error::from_panic(context, &*panic))))
}

/// Runs a blocking engine call with the GIL released, panics turned into `InternalError`.
pub fn detached<T: Send>(
    py: Python<'_>,
    context: &str,
    f: impl FnOnce() -> phlo_core::Result<T> + Send,
) -> PyResult<T> {
    guarded(context, || py.detach(f).py_err())
}

/// Locks state that is held while the GIL is released: waiting for it with the GIL held would
/// deadlock against the thread holding it (which needs the GIL back), so a second thread using
/// the same object at once gets an `InputError` instead.
pub fn claim<'a, T>(state: &'a Mutex<T>, what: &str) -> PyResult<MutexGuard<'a, T>> {
    match state.try_lock() {
        Ok(guard) => Ok(guard),
        Err(TryLockError::Poisoned(poisoned)) => Ok(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => Err(to_pyerr(phlo_core::Error::invalid(
            format!("this {what} is in use by another thread"),
            format!("Use one {what} per thread, or wait for the other call to return"),
        ))),
    }
}
