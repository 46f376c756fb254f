//! `orch.schedule(nodes, pods, config=None)`: the pure scheduler, no cluster.
//!
//! Pods that already name a node (`spec.nodeName`) are placed on it first, as running pods;
//! the others are scheduled one by one in the given order, each seeing the ones before it
//! (the scheduler's "assume"), exactly like the live scheduler's cycle.

use crate::errors::{Error, Result};
use crate::objects::{self, from_py, to_py_list};
use k8s_openapi::api::core::v1::{Node, Pod};
use orch_scheduler::config::KubeSchedulerConfiguration;
use orch_scheduler::pod_info::PodInfo;
use orch_scheduler::profile::Registry;
use orch_scheduler::{Scheduler, Snapshot};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use serde_json::Value;

fn values(obj: &Bound<'_, PyAny>) -> Result<Vec<Value>> {
    if let Ok(s) = obj.cast::<PyString>() {
        return objects::decode_text(s.to_str().map_err(Error::Py)?);
    }
    let mut out = Vec::new();
    objects::push_flat(from_py(obj)?, &mut out)?;
    Ok(out)
}

fn typed<T: serde::de::DeserializeOwned>(what: &str, i: usize, v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::Input(format!("{what}[{i}]: {e}")))
}

/// Schedules `pods` onto `nodes`; returns one decision per pending pod.
pub fn schedule_values(
    nodes: Vec<Value>,
    pods: Vec<Value>,
    config: Option<&str>,
    explain: bool,
    seed: Option<u64>,
) -> Result<Vec<Value>> {
    let mut snap = Snapshot::new();
    for (i, n) in nodes.into_iter().enumerate() {
        let node: Node = typed("nodes", i, n)?;
        snap.upsert_node(node)
            .map_err(|e| Error::Input(format!("nodes[{i}]: {e}")))?;
    }
    let mut pending = Vec::new();
    for (i, p) in pods.into_iter().enumerate() {
        let mut pod: Pod = typed("pods", i, p)?;
        if pod.metadata.namespace.is_none() {
            pod.metadata.namespace = Some("default".into());
        }
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some();
        if bound {
            snap.upsert_pod(pod)
                .map_err(|e| Error::Input(format!("pods[{i}]: {e}")))?;
        } else {
            pending.push(PodInfo::new(pod).map_err(|e| Error::Input(format!("pods[{i}]: {e}")))?);
        }
    }
    let mut sched = match config {
        None => Scheduler::default(),
        Some(text) => {
            let cfg = KubeSchedulerConfiguration::from_yaml(text)
                .map_err(|e| Error::Input(format!("config: {e}")))?;
            Scheduler::from_config(&cfg, &Registry::default())
                .map_err(|e| Error::Input(format!("config: {e}")))?
        }
    };
    if let Some(s) = seed {
        sched = sched.with_seed(s);
    }
    sched.set_explain(explain);
    pending
        .iter()
        .map(|p| {
            let d = sched.schedule_and_assume(p, &mut snap);
            serde_json::to_value(&d).map_err(|e| Error::Input(e.to_string()))
        })
        .collect()
}

/// Schedules `pods` onto `nodes` with the default profile (or a KubeSchedulerConfiguration).
///
/// `nodes` and `pods` are lists of dicts or YAML text; `config` is YAML/JSON text or a dict.
/// Returns one decision dict per pod without `spec.nodeName`, in order.
#[pyfunction]
#[pyo3(signature = (nodes, pods, config=None, explain=true, seed=None))]
pub fn schedule<'py>(
    py: Python<'py>,
    nodes: &Bound<'py, PyAny>,
    pods: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
    explain: bool,
    seed: Option<u64>,
) -> PyResult<Bound<'py, PyList>> {
    let nodes = values(nodes)?;
    let pods = values(pods)?;
    let config = match config {
        None => None,
        Some(c) => Some(match c.cast::<PyString>() {
            Ok(s) => s.to_str()?.to_string(),
            Err(_) => from_py(c)?.to_string(),
        }),
    };
    let out = py.detach(|| schedule_values(nodes, pods, config.as_deref(), explain, seed))?;
    Ok(to_py_list(py, &out)?)
}
