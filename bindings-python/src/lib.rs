//! # orch-python — the `orch` Python package (pyo3 + maturin)
//!
//! The native module `orch._orch` behind the pure-Python package in `python/orch/`. It owns
//! only the boundary: converting Python values to Kubernetes JSON and back (`pythonize`), the
//! exception hierarchy ([`errors`]), releasing the GIL around long calls and checking for
//! Ctrl-C. Everything it exposes is built in the root `orch` crate (`orch::sim`, `orch::Cluster`)
//! and in `orch-scheduler`; the Python layer adds input coercion (YAML, paths, `kubernetes`
//! models), DataFrames and progress bars.
//!
//! It never enables pyo3's `extension-module` feature (maturin sets what it needs), so
//! `cargo test --workspace` still links.

pub mod cluster;
pub mod controller;
pub mod errors;
pub mod exec;
pub mod handle;
pub mod objects;
pub mod schedule;
pub mod simulation;

use pyo3::prelude::*;

/// The native module `orch._orch`.
#[pymodule]
fn _orch(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<handle::Handle>()?;
    m.add_class::<simulation::Simulation>()?;
    m.add_class::<cluster::Cluster>()?;
    m.add_function(wrap_pyfunction!(schedule::schedule, m)?)?;
    m.add_class::<objects::Watch>()?;
    m.add_class::<controller::ReconcileContext>()?;
    Ok(())
}
