//! # orch-python — the `orch` Python package (pyo3 + maturin)
//!
//! Exposes `orch.Cluster`, `orch.Simulation` and `orch.schedule`.

use pyo3::prelude::*;

/// The native module `orch._orch`.
#[pymodule]
fn _orch(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
