//! Object access shared by `orch.Cluster` and `orch.Simulation`: apply / get / list / patch /
//! delete / watch / events / logs over any `orch_types::client::Client`, with objects crossing
//! the boundary as Kubernetes-shaped camelCase dicts.

use crate::errors::{Error, Result};
use crate::exec::Exec;
use futures::StreamExt;
use orch_types::client::{
    DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, SharedClient, WatchEvent,
    WatchParams, WatchStream,
};
use orch_types::registry::{self, ResourceInfo};
use orch_types::{ApiResource, DynamicObject};
use pyo3::prelude::*;
use pyo3::types::PyList;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Resolves any name kubectl accepts (`po`, `pods`, `Pod`, `deployments.apps`) to a resource.
pub fn resolve(kind: &str) -> Result<&'static ResourceInfo> {
    let (name, group) = match kind.split_once('.') {
        Some((n, g)) => (n, Some(g)),
        None => (kind, None),
    };
    registry::by_name(name)
        .into_iter()
        .find(|r| group.is_none_or(|g| r.group == g))
        .ok_or_else(|| {
            Error::Input(format!(
                "the server doesn't have a resource type \"{kind}\""
            ))
        })
}

/// The resource `kind` names (anything kubectl accepts: plural, singular, kind, short name,
/// optionally `.group`): a built-in one, else one the server serves for a
/// CustomResourceDefinition (through discovery; plural or kind, case-insensitive).
pub async fn resolve_in(client: &SharedClient, kind: &str) -> Result<ApiResource> {
    if let Ok(i) = resolve(kind) {
        return Ok(i.api_resource());
    }
    let (name, group) = match kind.split_once('.') {
        Some((n, g)) => (n, Some(g)),
        None => (kind, None),
    };
    let found = client.discover().await.ok().and_then(|ds| {
        ds.into_iter().map(|d| d.resource).find(|r| {
            group.is_none_or(|g| r.group == g)
                && (r.plural.eq_ignore_ascii_case(name) || r.kind.eq_ignore_ascii_case(name))
        })
    });
    found.ok_or_else(|| {
        Error::Input(format!(
            "the server doesn't have a resource type \"{kind}\""
        ))
    })
}

/// Parses YAML or JSON text (several documents, `kind: List`) into objects.
pub fn decode_text(text: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc)
            .map_err(|e| Error::Input(format!("document {}: {e}", i + 1)))?;
        push_flat(v, &mut out)?;
    }
    Ok(out)
}

use serde::Deserialize;

/// Flattens `kind: List` and skips empty documents.
pub fn push_flat(v: Value, out: &mut Vec<Value>) -> Result<()> {
    match v {
        Value::Null => Ok(()),
        Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
            for item in m
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                push_flat(item, out)?;
            }
            Ok(())
        }
        Value::Object(_) => {
            out.push(v);
            Ok(())
        }
        Value::Array(items) => {
            for item in items {
                push_flat(item, out)?;
            }
            Ok(())
        }
        other => Err(Error::Input(format!(
            "expected a Kubernetes object (a mapping), got {other}"
        ))),
    }
}

async fn resource_of(client: &SharedClient, obj: &DynamicObject) -> Result<ApiResource> {
    if obj.types.kind.is_empty() || obj.types.api_version.is_empty() {
        return Err(Error::Input(format!(
            "object {:?} has no apiVersion/kind",
            obj.name()
        )));
    }
    if let Some(i) = registry::by_kind(&obj.types.api_version, &obj.types.kind) {
        return Ok(i.api_resource());
    }
    let (group, _) = registry::split_api_version(&obj.types.api_version);
    let found = client.discover().await.ok().and_then(|ds| {
        ds.into_iter()
            .map(|d| d.resource)
            .find(|r| !group.is_empty() && r.group == group && r.kind == obj.types.kind)
    });
    found.ok_or_else(|| {
        Error::Input(format!(
            "no matches for kind \"{}\" in version \"{}\"",
            obj.types.kind, obj.types.api_version
        ))
    })
}

fn ns_for(r: &ApiResource, ns: Option<&str>) -> Option<String> {
    if r.namespaced {
        Some(ns.unwrap_or("default").to_string())
    } else {
        None
    }
}

/// `kubectl create`: every object must be new (409 AlreadyExists otherwise).
pub async fn create(client: &SharedClient, objs: Vec<Value>) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(objs.len());
    for v in objs {
        let obj = DynamicObject::from_value(v).map_err(|e| Error::Input(e.to_string()))?;
        let r = resource_of(client, &obj).await?;
        let ns = ns_for(&r, obj.namespace());
        let o = client
            .create(&r, ns.as_deref(), &obj, &PostParams::default())
            .await?;
        out.push(o.to_value());
    }
    Ok(out)
}

/// `kubectl apply` without the last-applied annotation: create, or merge-patch the manifest
/// onto the existing object.
pub async fn apply(client: &SharedClient, objs: Vec<Value>) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(objs.len());
    for v in objs {
        let obj = DynamicObject::from_value(v.clone()).map_err(|e| Error::Input(e.to_string()))?;
        let r = resource_of(client, &obj).await?;
        let ns = ns_for(&r, obj.namespace());
        let created = client
            .create(&r, ns.as_deref(), &obj, &PostParams::default())
            .await;
        let o = match created {
            Ok(o) => o,
            Err(e) if e.is_already_exists() => {
                client
                    .patch(
                        &r,
                        ns.as_deref(),
                        obj.name(),
                        None,
                        &Patch::Merge(v),
                        &PatchParams::default(),
                    )
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        out.push(o.to_value());
    }
    Ok(out)
}

/// GET.
pub async fn get(client: &SharedClient, kind: &str, name: &str, ns: Option<&str>) -> Result<Value> {
    let r = resolve_in(client, kind).await?;
    let ns = ns_for(&r, ns);
    Ok(client.get(&r, ns.as_deref(), name).await?.to_value())
}

/// LIST with selectors; `namespace=None` lists every namespace.
pub async fn list(
    client: &SharedClient,
    kind: &str,
    ns: Option<&str>,
    labels: Option<&str>,
    fields: Option<&str>,
) -> Result<Vec<Value>> {
    let r = resolve_in(client, kind).await?;
    let p = ListParams {
        label_selector: labels.map(str::to_string),
        field_selector: fields.map(str::to_string),
        ..Default::default()
    };
    let ns = if r.namespaced { ns } else { None };
    let l = client.list(&r, ns, &p).await?;
    Ok(l.items.iter().map(DynamicObject::to_value).collect())
}

/// PATCH (`merge`, `json`, `strategic`).
pub async fn patch(
    client: &SharedClient,
    kind: &str,
    name: &str,
    ns: Option<&str>,
    body: Value,
    patch_type: &str,
    subresource: Option<&str>,
) -> Result<Value> {
    let r = resolve_in(client, kind).await?;
    let ns = ns_for(&r, ns);
    let p = match patch_type {
        "merge" => Patch::Merge(body),
        "json" => Patch::Json(body),
        "strategic" => Patch::Strategic(body),
        other => {
            return Err(Error::Input(format!(
                "unknown patch type {other:?}: use \"merge\", \"json\" or \"strategic\""
            )))
        }
    };
    Ok(client
        .patch(
            &r,
            ns.as_deref(),
            name,
            subresource,
            &p,
            &PatchParams::default(),
        )
        .await?
        .to_value())
}

/// DELETE; returns the object's last state (or its state with a deletionTimestamp).
pub async fn delete(
    client: &SharedClient,
    kind: &str,
    name: &str,
    ns: Option<&str>,
    grace_period_seconds: Option<i64>,
) -> Result<Value> {
    let r = resolve_in(client, kind).await?;
    let ns = ns_for(&r, ns);
    let p = DeleteParams {
        grace_period_seconds,
        ..Default::default()
    };
    Ok(client
        .delete(&r, ns.as_deref(), name, &p)
        .await?
        .object()
        .to_value())
}

/// Container logs.
pub async fn logs(
    client: &SharedClient,
    ns: &str,
    pod: &str,
    container: Option<String>,
    tail_lines: Option<i64>,
) -> Result<String> {
    let p = LogParams {
        container,
        tail_lines,
        ..Default::default()
    };
    let bytes = client.logs(ns, pod, &p).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// An open watch, iterated from Python.
#[pyclass(module = "orch._orch")]
pub struct Watch {
    exec: Arc<Exec>,
    stream: Mutex<Option<WatchStream<DynamicObject>>>,
    timeout: Option<Duration>,
}

impl Watch {
    /// Opens a watch of `r` in `ns` (all namespaces when None).
    pub fn open(
        py: Python<'_>,
        exec: Arc<Exec>,
        client: SharedClient,
        r: ApiResource,
        ns: Option<String>,
        p: WatchParams,
        timeout: Option<Duration>,
    ) -> Result<Self> {
        let stream = exec.block(py, async move { client.watch(&r, ns.as_deref(), &p).await })??;
        Ok(Self {
            exec,
            stream: Mutex::new(Some(stream)),
            timeout,
        })
    }
}

#[pymethods]
impl Watch {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next event as `{"type": "ADDED"|"MODIFIED"|"DELETED", "object": {...}}`; stops when
    /// the watch ends or no event arrives within the timeout.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut guard = self
            .stream
            .lock()
            .map_err(|_| Error::Input("watch used from two threads at once".into()))?;
        let Some(stream) = guard.as_mut() else {
            return Ok(None);
        };
        let timeout = self.timeout;
        let next = self.exec.block(py, async move {
            match timeout {
                Some(t) => tokio::time::timeout(t, stream.next()).await.ok().flatten(),
                None => stream.next().await,
            }
        })?;
        let ev = match next {
            None => {
                *guard = None;
                return Ok(None);
            }
            Some(ev) => ev.map_err(Error::from)?,
        };
        let (kind, obj) = match ev {
            WatchEvent::Added(o) => ("ADDED", o.to_value()),
            WatchEvent::Modified(o) => ("MODIFIED", o.to_value()),
            WatchEvent::Deleted(o) => ("DELETED", o.to_value()),
            WatchEvent::Bookmark(o) => ("BOOKMARK", o.to_value()),
            WatchEvent::Error(s) => {
                *guard = None;
                return Err(Error::from(orch_types::ApiError::from_status(&s)).into());
            }
        };
        let v = serde_json::json!({"type": kind, "object": obj});
        Ok(Some(to_py(py, &v)?.unbind()))
    }

    /// Stops the watch.
    fn close(&self) -> PyResult<()> {
        if let Ok(mut g) = self.stream.lock() {
            *g = None;
        }
        Ok(())
    }
}

/// JSON → Python dict/list/str/…
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> Result<Bound<'py, PyAny>> {
    pythonize::pythonize(py, v).map_err(|e| Error::Input(e.to_string()))
}

/// Python dict/list/… → JSON.
pub fn from_py(obj: &Bound<'_, PyAny>) -> Result<Value> {
    pythonize::depythonize(obj).map_err(|e| Error::Input(format!("not a JSON-like value: {e}")))
}

/// A list of JSON values → Python list.
pub fn to_py_list<'py>(py: Python<'py>, vs: &[Value]) -> Result<Bound<'py, PyList>> {
    let l = PyList::empty(py);
    for v in vs {
        l.append(to_py(py, v)?)?;
    }
    Ok(l)
}
