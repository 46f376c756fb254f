//! Python reconcile functions as orch-runtime controllers (`@cluster.controller`,
//! `@sim.controller`).
//!
//! [`PyControllers`] is one orch-runtime [`Controller`] declaration holding a [`Registry`] of
//! Python functions, each for one kind (`apiVersion`, `kind`) and the kinds it owns. Its
//! `sync` reads the object from the driver's cache, calls the function with the object as a
//! dict and a [`ReconcileContext`] under the GIL, and turns what the function asked for
//! (`ctx.apply`, `ctx.patch_status`, …, the requeue it returned) into orch-runtime
//! [`Action`]s; the driver applies them with its applier, exactly as for a Rust controller.
//! So the same function runs in the live driver (`orch.Cluster`) and in the simulator's
//! steppable driver (`orch.Simulation`, virtual time, deterministic).
//!
//! The kinds are watched through a discovered set
//! ([`Watches::watch_discovered_metadata`]): both drivers discover the API at start and again
//! after any CustomResourceDefinition change, so a function may be registered before its CRD
//! is applied, and the simulation (wired once, when it is built) can take functions
//! registered later: the filter reads the registry at every discovery. The caches of custom
//! kinds hold whole objects; a built-in kind the simulator's own controllers cache typed is
//! seen with its metadata only (the function then gets `apiVersion`, `kind` and
//! `metadata`).
//!
//! A Python exception is logged (logger `orch.controller`, with the key and the traceback)
//! and the key is retried with exponential back-off ([`backoff`]); the driver never sees it.
//! The GIL is taken only around the call: the drivers run without it.

use crate::objects::{from_py, to_py};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use orch_runtime::action::Action;
use orch_runtime::controller::{Caches, Controller, MetaChange, Watches};
use orch_runtime::object::{key_from, key_of, split_key};
use orch_types::client::{DiscoveredResource, Patch};
use orch_types::events::{EventType, ObjectRef};
use orch_types::registry::{self, ApiResource};
use orch_types::DynamicObject;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// First retry delay after a Python exception.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest retry delay after repeated exceptions.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Delay before retry `n` (1-based) of a key whose function raised: 0.1 s doubling per
/// failure, at most 300 s (upstream's per-item exponential limiter, with a base that keeps a
/// broken function from flooding the log).
pub fn backoff(n: u32) -> Duration {
    let d = BACKOFF_BASE.saturating_mul(1u32 << n.saturating_sub(1).min(20));
    d.min(BACKOFF_MAX)
}

/// One Python reconcile function and what it watches.
pub struct Reconciler {
    api_version: String,
    group: String,
    kind: String,
    /// Kinds of children (`Kind` or `Kind.group`) whose changes reconcile their controller.
    owns: Vec<String>,
    func: Py<PyAny>,
}

impl Reconciler {
    /// A function for `kind` in `api_version` that owns children of `owns`.
    pub fn new(api_version: &str, kind: &str, owns: Vec<String>, func: Py<PyAny>) -> Self {
        let (group, _) = registry::split_api_version(api_version);
        Self {
            api_version: api_version.into(),
            group: group.into(),
            kind: kind.into(),
            owns,
            func,
        }
    }

    fn is_primary(&self, r: &ApiResource) -> bool {
        r.group == self.group && r.kind == self.kind
    }

    fn owns(&self, r: &ApiResource) -> bool {
        self.owns.iter().any(|o| match o.split_once('.') {
            Some((k, g)) => r.kind == k && r.group == g,
            None => r.kind == o.as_str(),
        })
    }

    fn owner_of(&self, meta: &ObjectMeta) -> Option<String> {
        meta.owner_references.as_ref()?.iter().find_map(|o| {
            let (g, _) = registry::split_api_version(&o.api_version);
            (o.controller == Some(true) && o.kind == self.kind && g == self.group)
                .then(|| o.name.clone())
        })
    }
}

/// The Python functions of one [`PyControllers`]; more may be added while it runs.
#[derive(Default)]
pub struct Registry {
    reconcilers: RwLock<Vec<Arc<Reconciler>>>,
}

impl Registry {
    /// Adds a function; returns its index.
    pub fn add(&self, r: Reconciler) -> usize {
        let mut g = self.reconcilers.write().unwrap_or_else(|e| e.into_inner());
        g.push(Arc::new(r));
        g.len() - 1
    }

    fn all(&self) -> Vec<Arc<Reconciler>> {
        self.reconcilers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn get(&self, i: usize) -> Option<Arc<Reconciler>> {
        self.all().get(i).cloned()
    }
}

/// The controller declaration of a [`Registry`]: keys are `INDEX:namespace/name`.
pub struct PyControllers {
    registry: Arc<Registry>,
    failures: Mutex<HashMap<String, u32>>,
}

impl PyControllers {
    /// A declaration over `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            failures: Mutex::default(),
        }
    }

    fn failed(&self, key: &str) -> u32 {
        let mut g = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = g.entry(key.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

fn keys_for(
    registry: &Registry,
    r: &ApiResource,
    meta: &ObjectMeta,
    caches: &Caches,
    keys: &mut Vec<String>,
) {
    for (i, rec) in registry.all().iter().enumerate() {
        let k = if rec.is_primary(r) {
            Some(key_of(meta))
        } else if rec.owns(r) {
            rec.owner_of(meta).map(|name| {
                let namespaced = caches
                    .meta_by_kind(&rec.api_version, &rec.kind)
                    .is_none_or(|(pr, _)| pr.namespaced);
                let ns = meta.namespace.as_deref().filter(|_| namespaced);
                key_from(ns, &name)
            })
        } else {
            None
        };
        if let Some(k) = k.map(|k| format!("{i}:{k}")) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
}

impl Controller for PyControllers {
    fn name(&self) -> &'static str {
        "python"
    }

    fn component(&self) -> &'static str {
        "python-controller"
    }

    fn watches(&self, w: &mut Watches) {
        let (filter_reg, map_reg) = (self.registry.clone(), self.registry.clone());
        w.watch_discovered_metadata(
            Arc::new(move |d: &DiscoveredResource| {
                d.supports(&["list", "watch"])
                    && filter_reg
                        .all()
                        .iter()
                        .any(|r| r.is_primary(&d.resource) || r.owns(&d.resource))
            }),
            Arc::new(move |r, c, caches, keys| {
                if let MetaChange::Updated(old, new) = c {
                    // A write that changed nothing (the step driver feeds every write's
                    // answer; a watch would show nothing): no reconcile, or a function that
                    // writes the same status every time would loop.
                    if old.resource_version.is_some()
                        && old.resource_version == new.resource_version
                    {
                        return;
                    }
                    keys_for(&map_reg, r, old, caches, keys);
                }
                keys_for(&map_reg, r, c.meta(), caches, keys);
            }),
        );
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let Some((rec, okey)) = key
            .split_once(':')
            .and_then(|(i, k)| Some((self.registry.get(i.parse().ok()?)?, k)))
        else {
            return vec![];
        };
        let Some((resource, store)) = caches.meta_by_kind(&rec.api_version, &rec.kind) else {
            return vec![];
        };
        let (ns, name) = split_key(okey);
        let Some(obj) = store.get_meta(ns, name) else {
            self.succeeded(key);
            return vec![];
        };
        let ctx = ReconcileContext {
            key: format!("{} {okey}", rec.kind),
            now: now.to_string(),
            primary: resource,
            object: obj.clone(),
            discovered: caches.metadata().discovered().to_vec(),
            actions: Mutex::default(),
        };
        let outcome = Python::attach(|py| -> Result<Vec<Action>, PyErr> {
            let ctx = Py::new(py, ctx)?;
            let arg = to_py(py, &obj.to_value())?;
            let ret = rec.func.bind(py).call1((arg, ctx.clone_ref(py)))?;
            let mut actions = ctx.borrow(py).take();
            if let Some(d) = requeue_of(&ret)? {
                actions.push(Action::Requeue(d));
            }
            Ok(actions)
        });
        match outcome {
            Ok(actions) => {
                self.succeeded(key);
                actions
            }
            Err(e) => {
                let n = self.failed(key);
                let delay = backoff(n);
                log_failure(&rec.kind, okey, n, delay, e);
                vec![Action::Requeue(delay)]
            }
        }
    }
}

/// The requeue a function returned: None, or seconds (int or float, ≥ 0).
fn requeue_of(ret: &Bound<'_, PyAny>) -> PyResult<Option<Duration>> {
    if ret.is_none() {
        return Ok(None);
    }
    if ret.is_instance_of::<PyFloat>() || ret.is_instance_of::<PyInt>() {
        let s: f64 = ret.extract()?;
        return Duration::try_from_secs_f64(s).map(Some).map_err(|_| {
            PyValueError::new_err(format!(
                "a reconcile function returns None or seconds ≥ 0, not {s}"
            ))
        });
    }
    Err(PyValueError::new_err(format!(
        "a reconcile function returns None or seconds to requeue after, not {}",
        ret.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    )))
}

/// Logs a failed call on the `orch.controller` logger (traceback included) and in the tracing
/// log.
fn log_failure(kind: &str, key: &str, n: u32, delay: Duration, e: PyErr) {
    tracing::warn!(kind, key, attempt = n, error = %e, "python reconcile failed; retrying with back-off");
    Python::attach(|py| {
        let logged = (|| -> PyResult<()> {
            let logger = py
                .import("logging")?
                .call_method1("getLogger", ("orch.controller",))?;
            let kw = PyDict::new(py);
            kw.set_item("exc_info", e.value(py))?;
            logger.call_method(
                "error",
                (
                    "reconcile of %s %s failed (attempt %d); retrying in %.3gs",
                    kind,
                    key,
                    n,
                    delay.as_secs_f64(),
                ),
                Some(&kw),
            )?;
            Ok(())
        })();
        if logged.is_err() {
            e.print(py);
        }
    });
}

fn input(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// What a reconcile function gets besides the object: the writes it asks for are collected
/// and carried out by the driver after the function returns (none if it raises).
#[pyclass(module = "orch._orch", frozen)]
pub struct ReconcileContext {
    key: String,
    now: String,
    primary: ApiResource,
    object: Arc<DynamicObject>,
    discovered: Vec<DiscoveredResource>,
    actions: Mutex<Vec<Action>>,
}

impl ReconcileContext {
    fn push(&self, a: Action) {
        self.actions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(a);
    }

    fn take(&self) -> Vec<Action> {
        std::mem::take(&mut *self.actions.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn resource_of(&self, api_version: &str, kind: &str) -> PyResult<ApiResource> {
        if let Some(i) = registry::by_kind(api_version, kind) {
            return Ok(i.api_resource());
        }
        let (group, _) = registry::split_api_version(api_version);
        self.discovered
            .iter()
            .find(|d| !group.is_empty() && d.resource.group == group && d.resource.kind == kind)
            .map(|d| d.resource.clone())
            .ok_or_else(|| {
                input(format!(
                    "no matches for kind \"{kind}\" in version \"{api_version}\""
                ))
            })
    }

    /// The resource, namespace and name of a manifest (namespace defaulted to the
    /// reconciled object's).
    fn target(&self, obj: &Value) -> PyResult<(ApiResource, Option<String>, String)> {
        let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
        let (av, kind, name) = (s("/apiVersion"), s("/kind"), s("/metadata/name"));
        if av.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(input("an object needs apiVersion, kind and metadata.name"));
        }
        let r = self.resource_of(av, kind)?;
        let ns = r.namespaced.then(|| {
            let ns = s("/metadata/namespace");
            if ns.is_empty() {
                self.object.namespace().unwrap_or("default").to_string()
            } else {
                ns.to_string()
            }
        });
        Ok((r, ns, name.to_string()))
    }
}

#[pymethods]
impl ReconcileContext {
    /// `Kind namespace/name` of the object being reconciled.
    #[getter]
    fn key(&self) -> String {
        self.key.clone()
    }

    /// The driver's time (RFC 3339; virtual in a simulation).
    #[getter]
    fn now(&self) -> String {
        self.now.clone()
    }

    /// Server-side apply of `obj` (created if absent), in the reconciled object's namespace
    /// unless it names one; `owner` (an object dict) becomes its controller ownerReference.
    #[pyo3(signature = (obj, owner=None))]
    fn apply(&self, obj: &Bound<'_, PyAny>, owner: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let mut v = from_py(obj)?;
        let (resource, namespace, name) = self.target(&v)?;
        if let Some(ns) = &namespace {
            v["metadata"]["namespace"] = json!(ns);
        }
        if let Some(o) = owner {
            let o = from_py(o)?;
            let s = |p: &str| {
                o.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let uid = s("/metadata/uid");
            if uid.is_empty() {
                return Err(input("owner has no metadata.uid (pass the object as read)"));
            }
            let r = json!({
                "apiVersion": s("/apiVersion"), "kind": s("/kind"), "name": s("/metadata/name"),
                "uid": uid, "controller": true, "blockOwnerDeletion": true,
            });
            let refs = v["metadata"]
                .as_object_mut()
                .ok_or_else(|| input("metadata must be a mapping"))?
                .entry("ownerReferences")
                .or_insert_with(|| json!([]));
            let arr = refs
                .as_array_mut()
                .ok_or_else(|| input("metadata.ownerReferences must be a list"))?;
            arr.retain(|x| x.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
            arr.push(r);
        }
        self.push(Action::Patch {
            resource,
            namespace,
            name,
            subresource: None,
            patch: Patch::Apply(v),
        });
        Ok(())
    }

    /// Merge-patches the reconciled object's status subresource with `status`.
    fn patch_status(&self, status: &Bound<'_, PyAny>) -> PyResult<()> {
        let s = from_py(status)?;
        self.push(Action::Patch {
            resource: self.primary.clone(),
            namespace: self.object.namespace().map(str::to_string),
            name: self.object.name().to_string(),
            subresource: Some("status".into()),
            patch: Patch::Merge(json!({ "status": s })),
        });
        Ok(())
    }

    /// Merge-patches the reconciled object itself (labels, annotations, finalizers, spec).
    fn patch(&self, patch: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = from_py(patch)?;
        self.push(Action::Patch {
            resource: self.primary.clone(),
            namespace: self.object.namespace().map(str::to_string),
            name: self.object.name().to_string(),
            subresource: None,
            patch: Patch::Merge(p),
        });
        Ok(())
    }

    /// Deletes an object given as a dict (`apiVersion`, `kind`, `metadata.name`, and
    /// `metadata.uid` as a precondition when present).
    fn delete(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = from_py(obj)?;
        let (resource, namespace, name) = self.target(&v)?;
        let uid = v
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.push(Action::Delete {
            resource,
            namespace,
            name,
            uid,
            propagation: None,
            grace_period_seconds: None,
            owner: None,
        });
        Ok(())
    }

    /// Records an Event about the reconciled object (`type` "Normal" or "Warning").
    #[pyo3(signature = (reason, message, r#type="Normal"))]
    fn event(&self, reason: &str, message: &str, r#type: &str) -> PyResult<()> {
        let type_ = match r#type {
            "Normal" => EventType::Normal,
            "Warning" => EventType::Warning,
            other => {
                return Err(input(format!(
                    "event type {other:?}: use Normal or Warning"
                )))
            }
        };
        self.push(Action::Event {
            object: ObjectRef::of_dynamic(&self.object),
            type_,
            reason: reason.into(),
            message: message.into(),
        });
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("<orch.ReconcileContext {}>", self.key)
    }
}
