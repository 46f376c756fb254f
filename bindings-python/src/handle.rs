//! `_orch.Handle`: object access to one cluster (live or simulated) from Python.

use crate::errors::Error;
use crate::exec::Exec;
use crate::objects::{self, from_py, to_py, to_py_list, Watch};
use orch_types::client::{SharedClient, WatchParams};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use std::sync::Arc;
use std::time::Duration;

/// Object access to one cluster: the in-process client plus the runtime that drives it.
#[pyclass(module = "orch._orch", frozen)]
pub struct Handle {
    exec: Arc<Exec>,
    client: SharedClient,
}

impl Handle {
    /// A handle over `client`, driven by `exec`.
    pub fn new(exec: Arc<Exec>, client: SharedClient) -> Self {
        Self { exec, client }
    }
}

#[pymethods]
impl Handle {
    /// Creates or merge-patches objects given as YAML/JSON text or as dicts (a list or one).
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
        let client = self.client.clone();
        let res = self
            .exec
            .block(py, async move { objects::apply(&client, values).await })??;
        Ok(to_py_list(py, &res)?)
    }

    /// Creates objects (YAML/JSON text, a dict or a list); AlreadyExistsError if one exists.
    fn create<'py>(
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
        let client = self.client.clone();
        let res = self
            .exec
            .block(py, async move { objects::create(&client, values).await })??;
        Ok(to_py_list(py, &res)?)
    }

    /// One object.
    #[pyo3(signature = (kind, name, namespace=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        name: &str,
        namespace: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let (kind, name, ns) = (
            kind.to_string(),
            name.to_string(),
            namespace.map(str::to_string),
        );
        let v = self.exec.block(py, async move {
            objects::get(&client, &kind, &name, ns.as_deref()).await
        })??;
        Ok(to_py(py, &v)?)
    }

    /// Objects of a kind (every namespace when `namespace` is None).
    #[pyo3(signature = (kind, namespace=None, label_selector=None, field_selector=None))]
    fn list<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        let client = self.client.clone();
        let kind = kind.to_string();
        let ns = namespace.map(str::to_string);
        let (ls, fs) = (
            label_selector.map(str::to_string),
            field_selector.map(str::to_string),
        );
        let v = self.exec.block(py, async move {
            objects::list(&client, &kind, ns.as_deref(), ls.as_deref(), fs.as_deref()).await
        })??;
        Ok(to_py_list(py, &v)?)
    }

    /// Patches an object (`merge`, `json` or `strategic`).
    #[pyo3(signature = (kind, name, patch, namespace=None, patch_type="merge", subresource=None))]
    #[allow(clippy::too_many_arguments)]
    fn patch<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        name: &str,
        patch: &Bound<'py, PyAny>,
        namespace: Option<&str>,
        patch_type: &str,
        subresource: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let body = from_py(patch)?;
        let client = self.client.clone();
        let (kind, name, ns) = (
            kind.to_string(),
            name.to_string(),
            namespace.map(str::to_string),
        );
        let (pt, sub) = (patch_type.to_string(), subresource.map(str::to_string));
        let v = self.exec.block(py, async move {
            objects::patch(
                &client,
                &kind,
                &name,
                ns.as_deref(),
                body,
                &pt,
                sub.as_deref(),
            )
            .await
        })??;
        Ok(to_py(py, &v)?)
    }

    /// Deletes an object; returns its last state.
    #[pyo3(signature = (kind, name, namespace=None, grace_period_seconds=None))]
    fn delete<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        name: &str,
        namespace: Option<&str>,
        grace_period_seconds: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let (kind, name, ns) = (
            kind.to_string(),
            name.to_string(),
            namespace.map(str::to_string),
        );
        let v = self.exec.block(py, async move {
            objects::delete(&client, &kind, &name, ns.as_deref(), grace_period_seconds).await
        })??;
        Ok(to_py(py, &v)?)
    }

    /// A watch iterator of `{"type", "object"}` dicts; `timeout` (seconds) ends it when idle.
    #[pyo3(signature = (kind, namespace=None, label_selector=None, field_selector=None, resource_version=None, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn watch(
        &self,
        py: Python<'_>,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
        resource_version: Option<String>,
        timeout: Option<f64>,
    ) -> PyResult<Watch> {
        let timeout = timeout
            .map(|t| {
                Duration::try_from_secs_f64(t)
                    .map_err(|_| Error::Input(format!("invalid timeout {t}")))
            })
            .transpose()?;
        let client = self.client.clone();
        let k = kind.to_string();
        let r = self
            .exec
            .block(py, async move { objects::resolve_in(&client, &k).await })??;
        let ns = if r.namespaced {
            namespace.map(str::to_string)
        } else {
            None
        };
        let p = WatchParams {
            label_selector: label_selector.map(str::to_string),
            field_selector: field_selector.map(str::to_string),
            resource_version,
            ..Default::default()
        };
        Ok(Watch::open(
            py,
            self.exec.clone(),
            self.client.clone(),
            r,
            ns,
            p,
            timeout,
        )?)
    }

    /// A container's log.
    #[pyo3(signature = (pod, namespace=None, container=None, tail_lines=None))]
    fn logs(
        &self,
        py: Python<'_>,
        pod: &str,
        namespace: Option<&str>,
        container: Option<String>,
        tail_lines: Option<i64>,
    ) -> PyResult<String> {
        let client = self.client.clone();
        let pod = pod.to_string();
        let ns = namespace.unwrap_or("default").to_string();
        Ok(self.exec.block(py, async move {
            objects::logs(&client, &ns, &pod, container, tail_lines).await
        })??)
    }
}
