//! Running async work from Python: release the GIL, block on the runtime, and wake up every
//! 100 ms (real or virtual) to let Python deliver Ctrl-C as `KeyboardInterrupt` (polars'
//! `enter_polars` pattern).

use crate::errors::{Error, Result};
use pyo3::prelude::*;
use std::future::Future;
use std::time::Duration;

/// A tokio runtime owned by a Python object: multi-threaded for a live cluster, current-thread
/// with paused (virtual) time for a simulation.
#[derive(Debug)]
pub struct Exec {
    rt: tokio::runtime::Runtime,
}

impl Exec {
    /// A runtime for a live cluster (components run on worker threads while Python waits).
    pub fn threaded() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Input(format!("cannot start the async runtime: {e}")))?;
        Ok(Self { rt })
    }

    /// Wraps an existing runtime (a simulation's paused current-thread runtime).
    pub fn from_runtime(rt: tokio::runtime::Runtime) -> Self {
        Self { rt }
    }

    /// The runtime.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    /// Runs `fut` to completion without the GIL; between 100 ms slices checks for Ctrl-C.
    pub fn block<F>(&self, py: Python<'_>, fut: F) -> Result<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let mut fut = Box::pin(fut);
        loop {
            let slice = py.detach(|| {
                self.rt.block_on(async {
                    tokio::time::timeout(Duration::from_millis(100), &mut fut).await
                })
            });
            match slice {
                Ok(out) => return Ok(out),
                Err(_elapsed) => py.check_signals().map_err(Error::Py)?,
            }
        }
    }
}
