//! `_orch.Cluster`: a live in-process cluster (`orch::Cluster`) on its own tokio runtime.

use crate::controller::{PyControllers, Reconciler, Registry};
use crate::errors::Error;
use crate::exec::Exec;
use crate::handle::Handle;
use orch::{Cluster as Inner, ClusterError, Runtime, Storage};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

impl From<ClusterError> for Error {
    fn from(e: ClusterError) -> Self {
        Error::Input(e.to_string())
    }
}

/// A live cluster: API server (HTTP on 127.0.0.1, kubeconfig written), scheduler, controller
/// manager and kubelets, running on background threads while Python does other things.
#[pyclass(module = "orch._orch", frozen)]
pub struct Cluster {
    exec: Arc<Exec>,
    inner: Mutex<Option<Inner>>,
    kubeconfig: Option<String>,
    url: Option<String>,
    node_names: Vec<String>,
    /// Live drivers of Python controllers: their stop signals and tasks.
    drivers: Mutex<Vec<Driver>>,
}

/// A live driver running Python reconcile functions.
type Driver = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

#[pymethods]
impl Cluster {
    /// Starts a cluster. `runtime`: "process" or "sim"; `storage`: "memory" or a directory.
    #[new]
    #[pyo3(signature = (nodes=1, runtime="process", storage="memory", ready_timeout=30.0))]
    fn new(
        py: Python<'_>,
        nodes: usize,
        runtime: &str,
        storage: &str,
        ready_timeout: f64,
    ) -> PyResult<Self> {
        let rt = match runtime {
            "process" => Runtime::Process,
            "sim" => Runtime::Sim,
            other => {
                return Err(Error::Input(format!(
                    "unknown runtime {other:?}: use \"process\" or \"sim\""
                ))
                .into())
            }
        };
        let mut b = Inner::builder()
            .nodes(nodes)
            .runtime(rt)
            .listen(Some(([127, 0, 0, 1], 0).into()))
            .wait_ready(Duration::try_from_secs_f64(ready_timeout).ok());
        b = match storage {
            "memory" => b.storage(Storage::Memory),
            dir => b.storage(Storage::Embedded).data_dir(dir),
        };
        let exec = Arc::new(Exec::threaded()?);
        let inner = exec.block(py, b.start())?.map_err(Error::from)?;
        Ok(Self {
            kubeconfig: inner.kubeconfig().map(|p| p.display().to_string()),
            url: inner.url(),
            node_names: inner.node_names().to_vec(),
            exec,
            inner: Mutex::new(Some(inner)),
            drivers: Mutex::default(),
        })
    }

    /// Object access (raises once the cluster is shut down).
    fn handle(&self) -> PyResult<Handle> {
        let g = self
            .inner
            .lock()
            .map_err(|_| Error::Input("cluster state poisoned".into()))?;
        let c = g
            .as_ref()
            .ok_or_else(|| Error::Input("the cluster is shut down".into()))?;
        Ok(Handle::new(self.exec.clone(), c.client()))
    }

    /// Runs `func(obj, ctx)` for every object of `kind` in `api_version` (and when a child of
    /// a kind in `owns` changes) in orch-runtime's live driver, on its own caches, until
    /// shutdown.
    fn add_controller(
        &self,
        api_version: &str,
        kind: &str,
        owns: Vec<String>,
        func: Py<PyAny>,
    ) -> PyResult<()> {
        let client = {
            let g = self
                .inner
                .lock()
                .map_err(|_| Error::Input("cluster state poisoned".into()))?;
            g.as_ref()
                .ok_or_else(|| Error::Input("the cluster is shut down".into()))?
                .client()
        };
        let registry = Arc::new(Registry::default());
        registry.add(Reconciler::new(api_version, kind, owns, func));
        let ctl: Arc<dyn orch_runtime::controller::Controller> =
            Arc::new(PyControllers::new(registry));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let clock: orch_types::clock::SharedClock = Arc::new(orch_types::clock::SystemClock);
        let task = self.exec.runtime().spawn(orch_runtime::live::run(
            client,
            clock,
            vec![ctl],
            orch_runtime::live::LiveConfig::default(),
            async move {
                let _ = rx.await;
            },
        ));
        self.drivers
            .lock()
            .map_err(|_| Error::Input("cluster state poisoned".into()))?
            .push((tx, task));
        Ok(())
    }

    /// A container's log, through the API server's `pods/log` (proxied to the kubelet).
    #[pyo3(signature = (pod, namespace=None, container=None, tail_lines=None))]
    fn logs(
        &self,
        py: Python<'_>,
        pod: &str,
        namespace: Option<&str>,
        container: Option<String>,
        tail_lines: Option<i64>,
    ) -> PyResult<String> {
        let kubeconfig = self
            .kubeconfig
            .clone()
            .ok_or_else(|| Error::Input("the cluster serves no HTTP".into()))?;
        let client: orch_types::client::SharedClient = Arc::new(
            orch_apiserver::client::HttpClient::from_kubeconfig(&kubeconfig)
                .map_err(|e| Error::Input(e.to_string()))?,
        );
        let (pod, ns) = (pod.to_string(), namespace.unwrap_or("default").to_string());
        Ok(self.exec.block(py, async move {
            crate::objects::logs(&client, &ns, &pod, container, tail_lines).await
        })??)
    }

    /// Path of the kubeconfig (for kubectl and the `kubernetes` client).
    #[getter]
    fn kubeconfig(&self) -> Option<String> {
        self.kubeconfig.clone()
    }

    /// `https://127.0.0.1:PORT` (the kubeconfig holds its CA and the admin certificate).
    #[getter]
    fn url(&self) -> Option<String> {
        self.url.clone()
    }

    /// Names of the in-process nodes.
    #[getter]
    fn node_names(&self) -> Vec<String> {
        self.node_names.clone()
    }

    /// Whether `shutdown` has run.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().map(|g| g.is_none()).unwrap_or(true)
    }

    /// Stops every component gracefully (idempotent).
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self
            .inner
            .lock()
            .map_err(|_| Error::Input("cluster state poisoned".into()))?
            .take();
        let drivers: Vec<Driver> = self
            .drivers
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default();
        if !drivers.is_empty() {
            let tasks: Vec<_> = drivers
                .into_iter()
                .map(|(tx, task)| {
                    let _ = tx.send(());
                    task
                })
                .collect();
            self.exec.block(py, futures::future::join_all(tasks))?;
        }
        if let Some(c) = inner {
            self.exec.block(py, c.shutdown())?.map_err(Error::from)?;
        }
        Ok(())
    }
}
