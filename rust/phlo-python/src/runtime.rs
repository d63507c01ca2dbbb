//! The tokio runtime: created lazily per process and re-created after a fork (Dagster and
//! multiprocessing fork workers; a runtime's threads do not survive a fork).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::guard::guarded;

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

pub fn runtime() -> Arc<Runtime> {
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    match slot.as_ref() {
        Some((owner, rt)) if *owner == pid => rt.clone(),
        _ => {
            if let Some((_, inherited)) = slot.take() {
                // The parent's worker threads do not exist here; dropping would wait on them.
                std::mem::forget(inherited);
            }
            let rt = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("phlo-worker")
                    .build()
                    .expect("phlo: cannot start the tokio runtime"),
            );
            *slot = Some((pid, rt.clone()));
            rt
        }
    }
}

/// Runs an engine future with the GIL released, checking for Ctrl-C every 100 ms; an interrupt
/// drops (cancels) the future and raises KeyboardInterrupt. A panic raises `InternalError`.
pub fn wait_for<F, T>(py: Python<'_>, context: &str, future: F) -> PyResult<T>
where
    F: Future<Output = PyResult<T>> + Send,
    T: Send,
{
    let rt = runtime();
    guarded(context, || {
        py.detach(|| {
            rt.block_on(async {
                tokio::pin!(future);
                let mut ticks = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tokio::select! {
                        result = &mut future => return result,
                        _ = ticks.tick() => {
                            Python::attach(|py| py.check_signals())?;
                        }
                    }
                }
            })
        })
    })
}
