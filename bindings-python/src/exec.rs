//! Running async work from Python: release the GIL, block on the runtime, and every 100 ms
//! let Python deliver Ctrl-C as `KeyboardInterrupt` (polars' `enter_polars` pattern).

use crate::errors::{Error, Result};
use pyo3::prelude::*;
use std::future::Future;
use std::time::Duration;

/// A tokio runtime owned by a Python object: multi-threaded for a live cluster, current-thread
/// for a simulation (whose engine keeps its own virtual clock).
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

    /// Wraps an existing runtime (a simulation's current-thread runtime).
    pub fn from_runtime(rt: tokio::runtime::Runtime) -> Self {
        Self { rt }
    }

    /// The runtime.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    /// Runs `fut` to completion without the GIL; every 100 ms checks for Ctrl-C.
    ///
    /// The check runs beside `fut` inside one `block_on`: leaving `block_on` between slices
    /// (a timeout around `fut`, then `block_on` again) loses the wake-ups tokio defers when a
    /// task runs out of its cooperative budget — they live in that `block_on`'s scheduler
    /// context — and a simulation then waits forever on a sub-future nothing will poll again
    /// (`tokio::sync::Mutex::lock` inside a `join_all` of pod creates did).
    pub fn block<F>(&self, py: Python<'_>, fut: F) -> Result<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        py.detach(|| {
            self.rt.block_on(async {
                tokio::pin!(fut);
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        biased;
                        _ = tick.tick() => {
                            Python::attach(|py| py.check_signals()).map_err(Error::Py)?;
                        }
                        out = &mut fut => return Ok(out),
                    }
                }
            })
        })
    }
}
