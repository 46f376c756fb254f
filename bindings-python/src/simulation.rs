//! `_orch.Simulation`: the virtual-time engine of `orch::sim` behind a Python object.

use crate::controller::{PyControllers, Reconciler, Registry};
use crate::errors::{Error, Result};
use crate::exec::Exec;
use crate::handle::Handle;
use crate::objects::{self, from_py, to_py, to_py_list};
use orch::sim::{Scenario, SimError, SimOptions, Simulation as Engine};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

impl From<SimError> for Error {
    fn from(e: SimError) -> Self {
        match e {
            SimError::Apply { source, .. } => Error::from(source),
            other => Error::Input(other.to_string()),
        }
    }
}

/// Checks for Ctrl-C at most every 50 ms from inside a long engine call (the GIL is taken only
/// for the check).
struct Interrupt {
    last: Instant,
    err: Option<PyErr>,
}

impl Interrupt {
    fn new() -> Self {
        Self {
            last: Instant::now(),
            err: None,
        }
    }
    fn check(&mut self) -> bool {
        if self.err.is_some() {
            return true;
        }
        if self.last.elapsed() < Duration::from_millis(50) {
            return false;
        }
        self.last = Instant::now();
        Python::attach(|py| {
            if let Err(e) = py.check_signals() {
                self.err = Some(e);
            }
        });
        self.err.is_some()
    }
    fn finish(self) -> Result<()> {
        match self.err {
            Some(e) => Err(Error::Py(e)),
            None => Ok(()),
        }
    }
}

/// A simulated cluster on a virtual clock.
#[pyclass(module = "orch._orch", frozen)]
pub struct Simulation {
    exec: Arc<Exec>,
    engine: Mutex<Engine>,
    client: orch_types::client::SharedClient,
    /// Python reconcile functions, run by the engine's steppable driver.
    registry: Arc<Registry>,
}

impl Simulation {
    fn engine(&self) -> Result<MutexGuard<'_, Engine>> {
        self.engine
            .lock()
            .map_err(|_| Error::Input("the simulation panicked earlier and cannot be used".into()))
    }
}

#[pymethods]
impl Simulation {
    /// Builds the cluster of a scenario given as YAML text or a dict.
    #[new]
    #[pyo3(signature = (scenario, seed=0, events=true, keep_log=true, explain=true))]
    fn new(
        py: Python<'_>,
        scenario: &Bound<'_, PyAny>,
        seed: u64,
        events: bool,
        keep_log: bool,
        explain: bool,
    ) -> PyResult<Self> {
        let scenario = if let Ok(s) = scenario.cast::<PyString>() {
            Scenario::from_yaml(s.to_str()?)
                .map_err(SimError::from)
                .map_err(Error::from)?
        } else {
            let v = from_py(scenario)?;
            let s: Scenario = serde_json::from_value(v)
                .map_err(|e| Error::Input(format!("scenario is not valid: {e}")))?;
            s.check().map_err(SimError::from).map_err(Error::from)?;
            s
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Input(format!("cannot start the async runtime: {e}")))?;
        let exec = Arc::new(Exec::from_runtime(rt));
        // One declaration for every Python function registered later: its discovered set
        // follows the registry (see `controller`). It watches nothing until one is.
        let registry = Arc::new(Registry::default());
        let opts = SimOptions {
            seed,
            events,
            keep_log,
            explain,
            controllers: vec![Arc::new(PyControllers::new(registry.clone()))],
            ..Default::default()
        };
        let engine = exec
            .block(py, Engine::new(scenario, opts))?
            .map_err(Error::from)?;
        let client = engine.client();
        Ok(Self {
            exec,
            engine: Mutex::new(engine),
            client,
            registry,
        })
    }

    /// Object access (reads, watches; writes go through `apply` / `refresh`).
    fn handle(&self) -> Handle {
        Handle::new(self.exec.clone(), self.client.clone())
    }

    /// Runs `func(obj, ctx)` for every object of `kind` in `api_version` (and when a child of a
    /// kind in `owns` changes) in the engine's steppable driver, on the virtual clock.
    fn add_controller(
        &self,
        py: Python<'_>,
        api_version: &str,
        kind: &str,
        owns: Vec<String>,
        func: Py<PyAny>,
    ) -> PyResult<()> {
        self.registry
            .add(Reconciler::new(api_version, kind, owns, func));
        // The driver follows discovery after a CustomResourceDefinition changes: show it the
        // CRDs of the kind again (unchanged), so the next step discovers and the kind's
        // objects are queued now rather than at the next periodic discovery.
        let (group, _) = orch_types::registry::split_api_version(api_version);
        let crds = objects::resolve("customresourcedefinitions")?.api_resource();
        let client = self.client.clone();
        let (group, kind) = (group.to_string(), kind.to_string());
        let mut engine = self.engine()?;
        let engine = &mut *engine;
        self.exec.block(py, async move {
            let Ok(list) = client
                .list(&crds, None, &orch_types::client::ListParams::default())
                .await
            else {
                return;
            };
            for c in &list.items {
                let v = c.to_value();
                let spec = |p: &str| v.pointer(p).and_then(serde_json::Value::as_str);
                if spec("/spec/group") == Some(&group) && spec("/spec/names/kind") == Some(&kind) {
                    engine.refresh(&crds, None, c.name()).await;
                }
            }
        })?;
        Ok(())
    }

    /// Virtual seconds since the start.
    #[getter]
    fn now(&self) -> PyResult<f64> {
        Ok(self.engine()?.now())
    }

    /// The virtual wall-clock time (RFC 3339).
    #[getter]
    fn time(&self) -> PyResult<String> {
        Ok(self.engine()?.now_timestamp().to_string())
    }

    /// The seed.
    #[getter]
    fn seed(&self) -> PyResult<u64> {
        Ok(self.engine()?.seed())
    }

    /// Runs until virtual time `until` (seconds since the start); returns the new time.
    fn run_until(&self, py: Python<'_>, until: f64) -> PyResult<f64> {
        let mut engine = self.engine()?;
        let mut intr = Interrupt::new();
        let t = self
            .exec
            .block(py, engine.run_until(until, || intr.check()))?;
        intr.finish()?;
        Ok(t)
    }

    /// Advances to the next timer, at most `max` seconds; returns the new time.
    #[pyo3(signature = (max=60.0))]
    fn step(&self, py: Python<'_>, max: f64) -> PyResult<f64> {
        let mut engine = self.engine()?;
        Ok(self.exec.block(py, engine.step(max))?)
    }

    /// Runs until no pod is starting and nothing is scheduled to happen, or `limit` seconds.
    #[pyo3(signature = (limit=3600.0))]
    fn run_until_stable(&self, py: Python<'_>, limit: f64) -> PyResult<f64> {
        let mut engine = self.engine()?;
        let mut intr = Interrupt::new();
        let t = self
            .exec
            .block(py, engine.run_until_stable(limit, || intr.check()))?;
        intr.finish()?;
        Ok(t)
    }

    /// The scenario's duration in seconds, if it has one.
    #[getter]
    fn duration(&self) -> PyResult<Option<f64>> {
        Ok(self.engine()?.duration().map(|d| d.as_secs_f64()))
    }

    /// Applies manifests (YAML text, a dict or a list of dicts) now.
    fn apply<'py>(
        &self,
        py: Python<'py>,
        objs: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let values = if let Ok(s) = objs.cast::<PyString>() {
            objects::decode_text(s.to_str()?)?
        } else {
            let mut out = Vec::new();
            objects::push_flat(from_py(objs)?, &mut out)?;
            out
        };
        let mut engine = self.engine()?;
        let out = self
            .exec
            .block(py, engine.apply(values))?
            .map_err(Error::from)?;
        drop(engine);
        // The API server's CRD controllers (names accepted, established) run on wall time
        // on this runtime, which runs only inside a call: wait here until the kinds of the
        // CRDs just applied are served, so the next `apply` of such an object works.
        let crds: Vec<(String, String)> = out
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .filter_map(|o| {
                Some((
                    o.pointer("/spec/group")?.as_str()?.to_string(),
                    o.pointer("/spec/names/kind")?.as_str()?.to_string(),
                ))
            })
            .collect();
        if !crds.is_empty() {
            let client = self.client.clone();
            self.exec.block(py, wait_served(client, crds))?;
        }
        Ok(to_py_list(py, &out)?)
    }

    /// Makes the engine re-read an object written through the handle (patch, delete).
    #[pyo3(signature = (kind, name, namespace=None))]
    fn refresh(
        &self,
        py: Python<'_>,
        kind: &str,
        name: &str,
        namespace: Option<&str>,
    ) -> PyResult<()> {
        let client = self.client.clone();
        let kind = kind.to_string();
        let r = self
            .exec
            .block(py, async move { objects::resolve_in(&client, &kind).await })??;
        let ns = if r.namespaced {
            Some(namespace.unwrap_or("default").to_string())
        } else {
            None
        };
        let mut engine = self.engine()?;
        self.exec
            .block(py, engine.refresh(&r, ns.as_deref(), name))?;
        Ok(())
    }

    /// Applies a disruption now, e.g. `{"action": "zoneDown", "zone": "a"}`.
    fn disrupt(&self, py: Python<'_>, action: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = from_py(action)?;
        let a: orch::sim::Action = serde_json::from_value(v)
            .map_err(|e| Error::Input(format!("invalid disruption: {e}")))?;
        let mut engine = self.engine()?;
        self.exec.block(py, engine.disrupt(a))?;
        Ok(())
    }

    /// The report so far (latencies, unschedulable pods, evictions, utilization, decisions).
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let r = self.engine()?.report();
        let v = serde_json::to_value(&r).map_err(|e| Error::Input(e.to_string()))?;
        Ok(to_py(py, &v)?)
    }

    /// The event log lines so far.
    fn event_log(&self) -> PyResult<Vec<String>> {
        Ok(self.engine()?.event_log().to_vec())
    }
}

/// Waits (wall time, at most [`CRD_SERVED_TIMEOUT`]) until discovery lists every `(group,
/// kind)`.
async fn wait_served(client: orch_types::client::SharedClient, kinds: Vec<(String, String)>) {
    let deadline = tokio::time::Instant::now() + CRD_SERVED_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if let Ok(found) = client.discover().await {
            if kinds.iter().all(|(g, k)| {
                found
                    .iter()
                    .any(|d| &d.resource.group == g && &d.resource.kind == k)
            }) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long `apply` waits for the kinds of the CustomResourceDefinitions it applied to be
/// served.
const CRD_SERVED_TIMEOUT: Duration = Duration::from_secs(10);
