//! [`ControllerManager`]: the thin async drivers around the reconcilers — shared informers,
//! one work queue per controller, workers that apply [`Action`]s through the `Client`.
//!
//! ```no_run
//! # async fn f(client: orch_types::client::SharedClient) -> Result<(), orch_controllers::manager::ManagerError> {
//! use orch_controllers::manager::{ControllerManager, ManagerConfig};
//! let clock = std::sync::Arc::new(orch_types::clock::SystemClock);
//! let cm = ControllerManager::new(client, clock, ManagerConfig::default())?;
//! cm.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

use crate::action::{Action, Applier};
use crate::deployment::{self, DeploymentView};
use crate::endpoints;
use crate::expectations::Expectations;
use crate::garbagecollector::{self, GcView, Node as GcNode, OwnerState};
use crate::informer::{Handler, Informer};
use crate::namespace;
use crate::nodeipam::{CidrAllocator, IpamError};
use crate::nodelifecycle::{self, NodeLifecycle, NodeLifecycleConfig, LEASE_NAMESPACE};
use crate::object::{controller_of, key_of, split_key};
use crate::podgc::{PodGc, PodGcConfig};
use crate::queue::WorkQueue;
use crate::replicaset::{self, ManageFailure, SyncContext, Workload};
use crate::selector::{from_label_selector, from_map};
use crate::store::{Change, Store};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, ReplicationController, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use orch_types::client::{ClientError, ListParams, SharedClient};
use orch_types::clock::SharedClock;
use orch_types::events::EventRecorder;
use orch_types::registry::{self, ApiResource};
use orch_types::DynamicObject;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Every controller name `--controllers` accepts (upstream names).
pub const ALL_CONTROLLERS: &[&str] = &[
    "replicaset",
    "replicationcontroller",
    "deployment",
    "garbagecollector",
    "nodelifecycle",
    "namespace",
    "endpoints",
    "podgc",
    "nodeipam",
];

/// Configuration of the controller manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Controllers to run (names from [`ALL_CONTROLLERS`]).
    pub controllers: Vec<String>,
    /// Workers per queued controller (`--concurrent-*-syncs`, upstream default 5).
    pub workers: usize,
    /// Node lifecycle settings (`--node-monitor-grace-period`, eviction rates).
    pub node_lifecycle: NodeLifecycleConfig,
    /// `--node-monitor-period`.
    pub node_monitor_period: Duration,
    /// Pod GC settings.
    pub pod_gc: PodGcConfig,
    /// `--cluster-cidr`.
    pub cluster_cidr: String,
    /// `--node-cidr-mask-size`.
    pub node_cidr_mask: u8,
    /// Informer resync period.
    pub resync: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            controllers: ALL_CONTROLLERS.iter().map(|s| s.to_string()).collect(),
            workers: 5,
            node_lifecycle: NodeLifecycleConfig::default(),
            node_monitor_period: Duration::from_secs(5),
            pod_gc: PodGcConfig::default(),
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask: 24,
            resync: Duration::from_secs(600),
        }
    }
}

/// Errors starting the controller manager.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// `--controllers` named something unknown.
    #[error("unknown controller {0:?} (known: {known})", known = ALL_CONTROLLERS.join(", "))]
    UnknownController(String),
    /// Bad `--cluster-cidr` / mask.
    #[error(transparent)]
    Ipam(#[from] IpamError),
}

/// Parses `--controllers a,b,-c,*` like kube-controller-manager (`*` = all, `-x` disables).
pub fn parse_controllers(spec: &str) -> Result<Vec<String>, ManagerError> {
    let mut on: BTreeSet<String> = BTreeSet::new();
    let mut off: BTreeSet<String> = BTreeSet::new();
    for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if part == "*" {
            on.extend(ALL_CONTROLLERS.iter().map(|s| s.to_string()));
            continue;
        }
        let (neg, name) = match part.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, part),
        };
        if !ALL_CONTROLLERS.contains(&name) {
            return Err(ManagerError::UnknownController(name.into()));
        }
        if neg {
            off.insert(name.into());
        } else {
            on.insert(name.into());
        }
    }
    if on.is_empty() && !off.is_empty() {
        on.extend(ALL_CONTROLLERS.iter().map(|s| s.to_string()));
    }
    Ok(ALL_CONTROLLERS
        .iter()
        .map(|s| s.to_string())
        .filter(|s| on.contains(s) && !off.contains(s))
        .collect())
}

/// Runs the enabled controllers against one API.
pub struct ControllerManager {
    client: SharedClient,
    clock: SharedClock,
    config: ManagerConfig,
}

impl std::fmt::Debug for ControllerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A shutdown signal shared by all tasks.
#[derive(Clone)]
struct Stop(watch::Receiver<bool>);

impl Stop {
    async fn wait(mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

fn applier(
    client: &SharedClient,
    clock: &SharedClock,
    component: &str,
    exp: Expectations,
) -> Applier {
    Applier {
        client: client.clone(),
        recorder: Arc::new(EventRecorder::new(
            client.clone(),
            clock.clone(),
            component,
            None,
        )),
        expectations: exp,
        clock: clock.clone(),
        field_manager: component.into(),
    }
}

/// Worker loop: take a key, sync it, requeue as asked or with back-off on error.
async fn work<F, Fut>(queue: WorkQueue, name: &'static str, sync: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Option<Duration>, ClientError>>,
{
    while let Some(key) = queue.get().await {
        match sync(key.clone()).await {
            Ok(requeue) => {
                queue.forget(&key);
                if let Some(d) = requeue {
                    queue.add_after(&key, d);
                }
            }
            Err(e) => {
                if e.is_conflict() {
                    tracing::debug!(controller = name, key, error = %e, "conflict; retrying");
                } else {
                    tracing::warn!(controller = name, key, error = %e, "sync failed; retrying with back-off");
                }
                queue.add_rate_limited(&key);
            }
        }
        queue.done(&key);
    }
}

fn owner_key(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: &str,
) -> Option<String> {
    let r = controller_of(meta)?;
    (r.kind == kind).then(|| match meta.namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", r.name),
        None => r.name.clone(),
    })
}

impl ControllerManager {
    /// A manager; fails on bad configuration.
    pub fn new(
        client: SharedClient,
        clock: SharedClock,
        config: ManagerConfig,
    ) -> Result<Self, ManagerError> {
        for c in &config.controllers {
            if !ALL_CONTROLLERS.contains(&c.as_str()) {
                return Err(ManagerError::UnknownController(c.clone()));
            }
        }
        CidrAllocator::new(&config.cluster_cidr, config.node_cidr_mask)?;
        Ok(Self {
            client,
            clock,
            config,
        })
    }

    fn enabled(&self, c: &str) -> bool {
        self.config.controllers.iter().any(|x| x == c)
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let (tx, rx) = watch::channel(false);
        let stop = Stop(rx);
        let mut tasks = Vec::new();
        let client = self.client.clone();
        let clock = self.clock.clone();
        let resync = self.config.resync;

        let mut pods =
            Informer::<Pod>::new(client.clone(), ApiResource::of::<Pod>()).resync(resync);
        let mut rss = Informer::<ReplicaSet>::new(client.clone(), ApiResource::of::<ReplicaSet>())
            .resync(resync);
        let mut rcs = Informer::<ReplicationController>::new(
            client.clone(),
            ApiResource::of::<ReplicationController>(),
        )
        .resync(resync);
        let mut deps = Informer::<Deployment>::new(client.clone(), ApiResource::of::<Deployment>())
            .resync(resync);
        let mut nodes =
            Informer::<Node>::new(client.clone(), ApiResource::of::<Node>()).resync(resync);
        let leases = Informer::<Lease>::new(client.clone(), ApiResource::of::<Lease>())
            .namespace(LEASE_NAMESPACE);
        let mut nss = Informer::<Namespace>::new(client.clone(), ApiResource::of::<Namespace>())
            .resync(resync);
        let mut svcs =
            Informer::<Service>::new(client.clone(), ApiResource::of::<Service>()).resync(resync);
        let mut eps = Informer::<Endpoints>::new(client.clone(), ApiResource::of::<Endpoints>());
        let (pod_store, rs_store, rc_store, d_store) =
            (pods.store(), rss.store(), rcs.store(), deps.store());
        let (node_store, lease_store, ns_store, svc_store, ep_store) = (
            nodes.store(),
            leases.store(),
            nss.store(),
            svcs.store(),
            eps.store(),
        );

        let mut queues: Vec<WorkQueue> = Vec::new();
        let mut workers: Vec<Box<dyn FnOnce() -> tokio::task::JoinHandle<()> + Send>> = Vec::new();
        let n_workers = self.config.workers.max(1);

        // ReplicaSet and ReplicationController.
        for (cname, kind) in [
            ("replicaset", "ReplicaSet"),
            ("replicationcontroller", "ReplicationController"),
        ] {
            if !self.enabled(cname) {
                continue;
            }
            let q = WorkQueue::new(clock.clone());
            queues.push(q.clone());
            let exp = Expectations::new();
            let rc_mode = kind == "ReplicationController";
            // Owner handlers.
            let qq = q.clone();
            if rc_mode {
                rcs.on_change(Arc::new(move |c: &Change<ReplicationController>| {
                    qq.add(&key_of(&c.object().metadata))
                }));
            } else {
                rss.on_change(Arc::new(move |c: &Change<ReplicaSet>| {
                    qq.add(&key_of(&c.object().metadata))
                }));
            }
            // Pod handler: owner, expectations, orphans.
            let (qq, e2, rs_s, rc_s) = (q.clone(), exp.clone(), rs_store.clone(), rc_store.clone());
            let workloads_in = move |ns: &str| -> Vec<Workload> {
                if rc_mode {
                    rc_s.list_namespace(ns)
                        .iter()
                        .map(|r| Workload::from_replication_controller(r))
                        .collect()
                } else {
                    rs_s.list_namespace(ns)
                        .iter()
                        .map(|r| Workload::from_replica_set(r))
                        .collect()
                }
            };
            let h: Handler<Pod> = Arc::new(move |c: &Change<Pod>| {
                let p = c.object();
                let enqueue_orphan = |pod: &Pod| {
                    for w in workloads_in(pod.metadata.namespace.as_deref().unwrap_or("")) {
                        if w.selector
                            .as_ref()
                            .is_ok_and(|s| s.matches_opt(pod.metadata.labels.as_ref()))
                        {
                            qq.add(&key_of(&w.meta));
                        }
                    }
                };
                match c {
                    Change::Added(_) => match owner_key(&p.metadata, kind) {
                        Some(k) => {
                            e2.creation_observed(&k);
                            qq.add(&k);
                        }
                        None if controller_of(&p.metadata).is_none() => enqueue_orphan(p),
                        None => {}
                    },
                    Change::Updated(old, new) => {
                        let (ko, kn) = (
                            owner_key(&old.metadata, kind),
                            owner_key(&new.metadata, kind),
                        );
                        if new.metadata.deletion_timestamp.is_some()
                            && old.metadata.deletion_timestamp.is_none()
                        {
                            if let Some(k) = &kn {
                                e2.deletion_observed(k);
                            }
                        }
                        for k in [ko.clone(), kn.clone()].into_iter().flatten() {
                            qq.add(&k);
                        }
                        if controller_of(&new.metadata).is_none()
                            && old.metadata.labels != new.metadata.labels
                        {
                            enqueue_orphan(new);
                        }
                    }
                    Change::Deleted(_) => {
                        if let Some(k) = owner_key(&p.metadata, kind) {
                            if p.metadata.deletion_timestamp.is_none() {
                                e2.deletion_observed(&k);
                            }
                            qq.add(&k);
                        }
                    }
                    Change::Resync(_) => {}
                }
            });
            pods.on_change(h);
            let failures: Arc<Mutex<HashMap<String, ManageFailure>>> = Arc::default();
            let ap = applier(
                &client,
                &clock,
                if rc_mode {
                    "replication-controller"
                } else {
                    "replicaset-controller"
                },
                exp.clone(),
            );
            let (rs_s, rc_s, pod_s, clk) = (
                rs_store.clone(),
                rc_store.clone(),
                pod_store.clone(),
                clock.clone(),
            );
            for _ in 0..n_workers {
                let (q, ap, rs_s, rc_s, pod_s, clk, exp, failures) = (
                    q.clone(),
                    ap.clone(),
                    rs_s.clone(),
                    rc_s.clone(),
                    pod_s.clone(),
                    clk.clone(),
                    exp.clone(),
                    failures.clone(),
                );
                workers.push(Box::new(move || {
                    tokio::spawn(work(q, cname, move |key| {
                        let w = if rc_mode {
                            rc_s.get(&key)
                                .map(|r| Workload::from_replication_controller(&r))
                        } else {
                            rs_s.get(&key).map(|r| Workload::from_replica_set(&r))
                        };
                        let (ap, pod_s, clk, exp, failures) = (
                            ap.clone(),
                            pod_s.clone(),
                            clk.clone(),
                            exp.clone(),
                            failures.clone(),
                        );
                        async move {
                            let Some(w) = w else {
                                exp.delete(&key);
                                failures.lock().remove(&key);
                                return Ok(None);
                            };
                            let now = clk.now();
                            let pods =
                                pod_s.list_namespace(w.meta.namespace.as_deref().unwrap_or(""));
                            let last = failures.lock().get(&key).cloned();
                            let actions = replicaset::reconcile(
                                &w,
                                SyncContext {
                                    pods: &pods,
                                    expectations_satisfied: exp.satisfied(&key, now),
                                    last_failure: last.as_ref(),
                                    now,
                                },
                            );
                            let creates = actions
                                .iter()
                                .any(|a| matches!(a, Action::CreatePods { .. }));
                            match ap.apply(actions).await {
                                Ok(r) => {
                                    failures.lock().remove(&key);
                                    Ok(r)
                                }
                                Err(e) => {
                                    let f = if creates {
                                        ManageFailure::Create(e.to_string())
                                    } else {
                                        ManageFailure::Delete(e.to_string())
                                    };
                                    failures.lock().insert(key.clone(), f);
                                    Err(e)
                                }
                            }
                        }
                    }))
                }));
            }
        }

        // Deployment.
        if self.enabled("deployment") {
            let q = WorkQueue::new(clock.clone());
            queues.push(q.clone());
            let qq = q.clone();
            deps.on_change(Arc::new(move |c: &Change<Deployment>| {
                qq.add(&key_of(&c.object().metadata))
            }));
            let (qq, ds) = (q.clone(), d_store.clone());
            rss.on_change(Arc::new(move |c: &Change<ReplicaSet>| {
                let rs = c.object();
                match owner_key(&rs.metadata, "Deployment") {
                    Some(k) => qq.add(&k),
                    None => {
                        for d in ds.list_namespace(rs.metadata.namespace.as_deref().unwrap_or("")) {
                            let sel = d.spec.as_ref().map(|s| &s.selector);
                            if from_label_selector(sel).is_ok_and(|s| {
                                !s.is_everything() && s.matches_opt(rs.metadata.labels.as_ref())
                            }) {
                                qq.add(&key_of(&d.metadata));
                            }
                        }
                    }
                }
                if let Change::Updated(old, _) = c {
                    if let Some(k) = owner_key(&old.metadata, "Deployment") {
                        qq.add(&k);
                    }
                }
            }));
            // Recreate waits for old pods to go away.
            let (qq, rs_s) = (q.clone(), rs_store.clone());
            pods.on_change(Arc::new(move |c: &Change<Pod>| {
                if let Change::Deleted(p) = c {
                    if let Some(rk) = owner_key(&p.metadata, "ReplicaSet") {
                        if let Some(rs) = rs_s.get(&rk) {
                            if let Some(dk) = owner_key(&rs.metadata, "Deployment") {
                                qq.add(&dk);
                            }
                        }
                    }
                }
            }));
            let ap = applier(
                &client,
                &clock,
                "deployment-controller",
                Expectations::new(),
            );
            for _ in 0..n_workers {
                let (q, ap, ds, rs_s, pod_s, clk) = (
                    q.clone(),
                    ap.clone(),
                    d_store.clone(),
                    rs_store.clone(),
                    pod_store.clone(),
                    clock.clone(),
                );
                workers.push(Box::new(move || {
                    tokio::spawn(work(q, "deployment", move |key| {
                        let d = ds.get(&key);
                        let (ap, rs_s, pod_s, clk) =
                            (ap.clone(), rs_s.clone(), pod_s.clone(), clk.clone());
                        async move {
                            let Some(d) = d else { return Ok(None) };
                            let ns = d.metadata.namespace.clone().unwrap_or_default();
                            let (rsl, pl) = (rs_s.list_namespace(&ns), pod_s.list_namespace(&ns));
                            let actions = deployment::reconcile(
                                &d,
                                DeploymentView {
                                    replica_sets: &rsl,
                                    pods: &pl,
                                    now: clk.now(),
                                },
                            );
                            ap.apply(actions).await
                        }
                    }))
                }));
            }
        }

        // Endpoints.
        if self.enabled("endpoints") {
            let q = WorkQueue::new(clock.clone());
            queues.push(q.clone());
            let qq = q.clone();
            svcs.on_change(Arc::new(move |c: &Change<Service>| {
                qq.add(&key_of(&c.object().metadata))
            }));
            let qq = q.clone();
            eps.on_change(Arc::new(move |c: &Change<Endpoints>| {
                if let Change::Deleted(e) = c {
                    qq.add(&key_of(&e.metadata));
                }
            }));
            let (qq, ss) = (q.clone(), svc_store.clone());
            pods.on_change(Arc::new(move |c: &Change<Pod>| {
                let mut label_sets = vec![c.object().metadata.labels.clone()];
                if let Change::Updated(old, _) = c {
                    label_sets.push(old.metadata.labels.clone());
                }
                for s in ss.list_namespace(c.object().metadata.namespace.as_deref().unwrap_or("")) {
                    let sel = from_map(s.spec.as_ref().and_then(|x| x.selector.as_ref()));
                    if label_sets.iter().any(|l| sel.matches_opt(l.as_ref())) {
                        qq.add(&key_of(&s.metadata));
                    }
                }
            }));
            let ap = applier(&client, &clock, "endpoint-controller", Expectations::new());
            for _ in 0..n_workers {
                let (q, ap, ss, es, pod_s) = (
                    q.clone(),
                    ap.clone(),
                    svc_store.clone(),
                    ep_store.clone(),
                    pod_store.clone(),
                );
                workers.push(Box::new(move || {
                    tokio::spawn(work(q, "endpoints", move |key| {
                        let (svc, ep) = (ss.get(&key), es.get(&key));
                        let pods = pod_s.list_namespace(split_key(&key).0.unwrap_or(""));
                        let ap = ap.clone();
                        async move {
                            ap.apply(endpoints::reconcile(svc.as_deref(), ep.as_deref(), &pods))
                                .await
                        }
                    }))
                }));
            }
        }

        // Namespace.
        if self.enabled("namespace") {
            let q = WorkQueue::new(clock.clone());
            queues.push(q.clone());
            let qq = q.clone();
            nss.on_change(Arc::new(move |c: &Change<Namespace>| {
                if c.object().metadata.deletion_timestamp.is_some() {
                    qq.add(&key_of(&c.object().metadata));
                }
            }));
            let ap = applier(&client, &clock, "namespace-controller", Expectations::new());
            let (q2, ns_s, cl) = (q.clone(), ns_store.clone(), client.clone());
            workers.push(Box::new(move || {
                tokio::spawn(work(q2, "namespace", move |key| {
                    let (ns, ap, cl) = (ns_s.get(&key), ap.clone(), cl.clone());
                    async move {
                        let Some(ns) = ns else { return Ok(None) };
                        if ns.metadata.deletion_timestamp.is_none() {
                            return Ok(None);
                        }
                        let content = namespace_content(&cl, &key).await?;
                        ap.apply(namespace::reconcile(&ns, &content)).await
                    }
                }))
            }));
        }

        // Node IPAM.
        if self.enabled("nodeipam") {
            let q = WorkQueue::new(clock.clone());
            queues.push(q.clone());
            // `new` validated the range; a failure here cannot happen, but never panic.
            let Ok(allocator) =
                CidrAllocator::new(&self.config.cluster_cidr, self.config.node_cidr_mask)
            else {
                return;
            };
            let alloc = Arc::new(Mutex::new(allocator));
            let (qq, al) = (q.clone(), alloc.clone());
            nodes.on_change(Arc::new(move |c: &Change<Node>| match c {
                Change::Deleted(n) => al.lock().release(n.metadata.name.as_deref().unwrap_or("")),
                other => {
                    let n = other.object();
                    if let Some(c) = n.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()) {
                        al.lock()
                            .occupy(n.metadata.name.as_deref().unwrap_or(""), c);
                    } else {
                        qq.add(&key_of(&n.metadata));
                    }
                }
            }));
            let ap = applier(&client, &clock, "node-ipam-controller", Expectations::new());
            let (q2, node_s) = (q.clone(), node_store.clone());
            workers.push(Box::new(move || {
                tokio::spawn(work(q2, "nodeipam", move |key| {
                    // Single worker: allocations are serialized.
                    let actions = node_s
                        .get(&key)
                        .map(|n| alloc.lock().reconcile(&n))
                        .unwrap_or_default();
                    let ap = ap.clone();
                    async move { ap.apply(actions).await }
                }))
            }));
        }

        // Garbage collector: dynamic informers over every deletable, watchable built-in kind.
        let mut gc_informers: Vec<Informer<DynamicObject>> = Vec::new();
        if self.enabled("garbagecollector") {
            let q = WorkQueue::new(clock.clone());
            queues.push(q.clone());
            let resources: Vec<ApiResource> = registry::BUILTIN
                .iter()
                .filter(|r| {
                    r.verbs.contains(&"watch") && r.verbs.contains(&"delete") && r.kind != "Event"
                })
                .map(|r| r.api_resource())
                .collect();
            let mut informers: Vec<Informer<DynamicObject>> = resources
                .iter()
                .map(|r| Informer::<DynamicObject>::new(client.clone(), r.clone()))
                .collect();
            let stores: Arc<Vec<Store<DynamicObject>>> =
                Arc::new(informers.iter().map(Informer::store).collect());
            for (i, inf) in informers.iter_mut().enumerate() {
                let qq = q.clone();
                let res_list = resources.clone();
                let all = stores.clone();
                inf.on_change(Arc::new(move |c: &Change<DynamicObject>| {
                    let o = c.object();
                    let key = key_of(&o.metadata);
                    let gc_relevant = o
                        .metadata
                        .owner_references
                        .as_ref()
                        .is_some_and(|v| !v.is_empty())
                        || o.metadata.finalizers.iter().flatten().any(|f| {
                            f == garbagecollector::ORPHAN || f == garbagecollector::FOREGROUND
                        });
                    if gc_relevant && !matches!(c, Change::Deleted(_)) {
                        qq.add(&format!("{i}|{key}"));
                    }
                    // An owner went away or started deleting: look at its dependents.
                    let owner_gone = match c {
                        Change::Deleted(_) => true,
                        Change::Updated(old, new) => {
                            old.metadata.deletion_timestamp.is_none()
                                && new.metadata.deletion_timestamp.is_some()
                        }
                        _ => false,
                    };
                    if owner_gone {
                        if let Some(uid) = o.metadata.uid.as_deref() {
                            for (j, s) in all.iter().enumerate() {
                                for d in s.owned_by(uid) {
                                    qq.add(&format!("{j}|{}", key_of(&d.metadata)));
                                }
                            }
                        }
                    }
                    // Owners of a changed/deleted dependent may be waiting on it.
                    if matches!(c, Change::Deleted(_) | Change::Updated(..)) {
                        for r in o.metadata.owner_references.iter().flatten() {
                            if let Some(j) = resource_index(&res_list, r) {
                                let ns = if res_list[j].namespaced {
                                    o.metadata.namespace.clone()
                                } else {
                                    None
                                };
                                let k = match ns {
                                    Some(ns) => format!("{ns}/{}", r.name),
                                    None => r.name.clone(),
                                };
                                qq.add(&format!("{j}|{k}"));
                            }
                        }
                    }
                }));
            }
            gc_informers = informers;
            let graph = Arc::new(Graph {
                resources,
                stores: stores.as_ref().clone(),
            });
            let ap = applier(
                &client,
                &clock,
                "garbage-collector-controller",
                Expectations::new(),
            );
            // Dependents of deleted owners: a periodic sweep catches dangling references whose
            // owner vanished while we were not watching (and the first sync).
            let (qs, gs) = (q.clone(), graph.clone());
            let stop_sweep = stop.clone();
            tasks.push(tokio::spawn(async move {
                let sweep = async {
                    loop {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        for (i, s) in gs.stores.iter().enumerate() {
                            for o in s.list() {
                                if o.metadata
                                    .owner_references
                                    .as_ref()
                                    .is_some_and(|v| !v.is_empty())
                                {
                                    qs.add(&format!("{i}|{}", key_of(&o.metadata)));
                                }
                            }
                        }
                    }
                };
                tokio::select! { _ = stop_sweep.wait() => {}, _ = sweep => {} }
            }));
            for _ in 0..n_workers {
                let (q, ap, g, cl) = (q.clone(), ap.clone(), graph.clone(), client.clone());
                workers.push(Box::new(move || {
                    tokio::spawn(work(q, "garbagecollector", move |qkey| {
                        let (ap, g, cl) = (ap.clone(), g.clone(), cl.clone());
                        async move {
                            let Some((i, key)) = qkey
                                .split_once('|')
                                .and_then(|(i, k)| Some((i.parse::<usize>().ok()?, k.to_string())))
                            else {
                                return Ok(None);
                            };
                            let Some(obj) = g.stores.get(i).and_then(|s| s.get(&key)) else {
                                return Ok(None);
                            };
                            let item = GcNode {
                                resource: g.resources[i].clone(),
                                object: obj,
                            };
                            let confirmed = g.confirm_owners(&cl, &item).await?;
                            let view = GraphView { g: &g, confirmed };
                            ap.apply(garbagecollector::reconcile(&item, &view)).await
                        }
                    }))
                }));
            }
        }

        // Periodic controllers: node lifecycle (+ taint eviction) and pod GC.
        if self.enabled("nodelifecycle") {
            let mut nl = NodeLifecycle::new(self.config.node_lifecycle.clone());
            let ap = applier(&client, &clock, "node-controller", Expectations::new());
            let ap_taint = applier(
                &client,
                &clock,
                "taint-eviction-controller",
                Expectations::new(),
            );
            let (ns_, ls, ps, clk, period) = (
                node_store.clone(),
                lease_store.clone(),
                pod_store.clone(),
                clock.clone(),
                self.config.node_monitor_period,
            );
            let stop_nl = stop.clone();
            workers.push(Box::new(move || {
                tokio::spawn(async move {
                    let lp = async {
                        loop {
                            let now = clk.now();
                            let nodes = ns_.list();
                            let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
                            for p in ps.list() {
                                if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
                                    by_node.entry(n).or_default().push(p);
                                }
                            }
                            let lease = |n: &str| ls.get_in(Some(LEASE_NAMESPACE), n);
                            let pods_on = |n: &str| by_node.get(n).cloned().unwrap_or_default();
                            let actions = nl.monitor(&nodes, &lease, &pods_on, now);
                            if let Err(e) = ap.apply(actions).await {
                                tracing::warn!(error = %e, "node lifecycle pass failed");
                            }
                            let mut next = period;
                            for n in &nodes {
                                let acts = nodelifecycle::taint_eviction(
                                    n,
                                    &pods_on(n.metadata.name.as_deref().unwrap_or("")),
                                    now,
                                );
                                if let Some(d) = crate::action::requeue_of(&acts) {
                                    next = next.min(d.max(Duration::from_millis(100)));
                                }
                                if let Err(e) = ap_taint.apply(acts).await {
                                    tracing::warn!(error = %e, "taint eviction failed");
                                }
                            }
                            tokio::time::sleep(next).await;
                        }
                    };
                    tokio::select! { _ = stop_nl.wait() => {}, _ = lp => {} }
                })
            }));
        }
        if self.enabled("podgc") {
            let mut gc = PodGc::new(self.config.pod_gc.clone());
            let ap = applier(
                &client,
                &clock,
                "pod-garbage-collector",
                Expectations::new(),
            );
            let (ns_, ps, clk) = (node_store.clone(), pod_store.clone(), clock.clone());
            let stop_gc = stop.clone();
            workers.push(Box::new(move || {
                tokio::spawn(async move {
                    let lp = async {
                        loop {
                            let names: BTreeSet<String> = ns_
                                .list()
                                .iter()
                                .filter_map(|n| n.metadata.name.clone())
                                .collect();
                            let actions = gc.reconcile(&ps.list(), &names, clk.now());
                            if let Err(e) = ap.apply(actions).await {
                                tracing::warn!(error = %e, "pod GC pass failed");
                            }
                            // Upstream gcCheckPeriod is 20 s; 10 s keeps the 40 s quarantine tight.
                            tokio::time::sleep(Duration::from_secs(10)).await;
                        }
                    };
                    tokio::select! { _ = stop_gc.wait() => {}, _ = lp => {} }
                })
            }));
        }

        // Start informers, wait for their first list, then the workers.
        let mut synced: Vec<Box<dyn Fn() -> bool + Send + Sync>> = Vec::new();
        macro_rules! start {
            ($($inf:ident),*) => {$(
                let s = $inf.store();
                synced.push(Box::new(move || s.is_synced()));
                let st = stop.clone();
                tasks.push(tokio::spawn($inf.run(st.wait())));
            )*};
        }
        start!(pods, rss, rcs, deps, nodes, leases, nss, svcs, eps);
        for inf in gc_informers {
            let s = inf.store();
            synced.push(Box::new(move || s.is_synced()));
            tasks.push(tokio::spawn(inf.run(stop.clone().wait())));
        }
        let wait_sync = async {
            while !synced.iter().all(|f| f()) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::pin!(shutdown);
        tokio::select! {
            _ = &mut shutdown => {
                let _ = tx.send(true);
                for q in &queues { q.shut_down(); }
                for t in tasks { let _ = t.await; }
                return;
            }
            _ = wait_sync => {}
        }
        tracing::info!(controllers = ?self.config.controllers, "caches synced; starting workers");
        for w in workers {
            tasks.push(w());
        }
        shutdown.await;
        let _ = tx.send(true);
        for q in &queues {
            q.shut_down();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

fn resource_index(resources: &[ApiResource], r: &OwnerReference) -> Option<usize> {
    let (g, v) = registry::split_api_version(&r.api_version);
    resources
        .iter()
        .position(|x| x.group == g && x.kind == r.kind && (x.version == v || !g.is_empty()))
}

/// Every namespaced, deletable object left in namespace `ns` (live lists, as upstream).
async fn namespace_content(client: &SharedClient, ns: &str) -> Result<Vec<GcNode>, ClientError> {
    let mut out = Vec::new();
    for r in registry::BUILTIN
        .iter()
        .filter(|r| r.namespaced && r.verbs.contains(&"delete") && r.verbs.contains(&"list"))
    {
        let res = r.api_resource();
        match client.list(&res, Some(ns), &ListParams::default()).await {
            Ok(l) => out.extend(l.items.into_iter().map(|o| GcNode {
                resource: res.clone(),
                object: Arc::new(o),
            })),
            Err(e) if e.is_not_found() || e.api().is_some_and(|a| a.code == 405) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

struct Graph {
    resources: Vec<ApiResource>,
    stores: Vec<Store<DynamicObject>>,
}

impl Graph {
    fn lookup(&self, ns: Option<&str>, r: &OwnerReference) -> OwnerState {
        let Some(i) = resource_index(&self.resources, r) else {
            // Unknown kind (e.g. a custom resource): never treat it as gone.
            return OwnerState::Present;
        };
        let res = &self.resources[i];
        if res.namespaced && ns.is_none() {
            return OwnerState::InvalidNamespace;
        }
        let ns = if res.namespaced { ns } else { None };
        match self.stores[i].get_in(ns, &r.name) {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => state_of(&o),
            _ => OwnerState::Absent,
        }
    }

    /// Confirms owners the cache reports absent with a live GET (the cache may lag), like
    /// upstream's `isDangling`.
    async fn confirm_owners(
        &self,
        client: &SharedClient,
        item: &GcNode,
    ) -> Result<HashMap<String, OwnerState>, ClientError> {
        let mut out = HashMap::new();
        let ns = item.object.metadata.namespace.as_deref();
        for r in item.object.metadata.owner_references.iter().flatten() {
            if self.lookup(ns, r) != OwnerState::Absent {
                continue;
            }
            let Some(i) = resource_index(&self.resources, r) else {
                continue;
            };
            let res = &self.resources[i];
            match client
                .get(res, if res.namespaced { ns } else { None }, &r.name)
                .await
            {
                Ok(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                    out.insert(r.uid.clone(), state_of(&o));
                }
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

fn state_of(o: &DynamicObject) -> OwnerState {
    if o.metadata.deletion_timestamp.is_some()
        && o.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == garbagecollector::FOREGROUND)
    {
        OwnerState::WaitingForDependents
    } else {
        OwnerState::Present
    }
}

struct GraphView<'a> {
    g: &'a Graph,
    confirmed: HashMap<String, OwnerState>,
}

impl GcView for GraphView<'_> {
    fn owner_state(&self, ns: Option<&str>, r: &OwnerReference) -> OwnerState {
        if let Some(s) = self.confirmed.get(&r.uid) {
            return s.clone();
        }
        self.g.lookup(ns, r)
    }

    fn dependents(&self, uid: &str) -> Vec<GcNode> {
        let mut out = Vec::new();
        for (i, s) in self.g.stores.iter().enumerate() {
            for o in s.owned_by(uid) {
                out.push(GcNode {
                    resource: self.g.resources[i].clone(),
                    object: o,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn run_future_is_send_so_it_can_be_spawned() {
        let api: SharedClient = Arc::new(NoApi);
        let cm = ControllerManager::new(
            api,
            Arc::new(orch_types::clock::SystemClock),
            ManagerConfig::default(),
        )
        .unwrap();
        let fut = cm.run(async {});
        assert_send(&fut);
    }

    /// A client that is never called (the future above is not polled).
    struct NoApi;
    #[async_trait::async_trait]
    impl orch_types::client::Client for NoApi {
        async fn get(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &str,
        ) -> orch_types::client::Result<DynamicObject> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn list(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &ListParams,
        ) -> orch_types::client::Result<orch_types::client::ObjectList<DynamicObject>> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn create(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &DynamicObject,
            _: &orch_types::client::PostParams,
        ) -> orch_types::client::Result<DynamicObject> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn update(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &DynamicObject,
            _: &orch_types::client::PostParams,
        ) -> orch_types::client::Result<DynamicObject> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn update_status(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &DynamicObject,
            _: &orch_types::client::PostParams,
        ) -> orch_types::client::Result<DynamicObject> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn patch(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &str,
            _: Option<&str>,
            _: &orch_types::client::Patch,
            _: &orch_types::client::PatchParams,
        ) -> orch_types::client::Result<DynamicObject> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn delete(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &str,
            _: &orch_types::client::DeleteParams,
        ) -> orch_types::client::Result<orch_types::client::DeleteOutcome> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn create_subresource(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &str,
            _: &str,
            _: &DynamicObject,
        ) -> orch_types::client::Result<DynamicObject> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn watch(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &orch_types::client::WatchParams,
        ) -> orch_types::client::Result<orch_types::client::WatchStream<DynamicObject>> {
            Err(ClientError::Transport("unused".into()))
        }
    }

    #[test]
    fn controllers_flag_like_kube_controller_manager() {
        assert_eq!(parse_controllers("*").unwrap().len(), ALL_CONTROLLERS.len());
        assert_eq!(
            parse_controllers("deployment,replicaset").unwrap(),
            ["replicaset", "deployment"]
        );
        let all_but = parse_controllers("*,-podgc").unwrap();
        assert!(
            !all_but.contains(&"podgc".to_string()) && all_but.len() == ALL_CONTROLLERS.len() - 1
        );
        assert!(
            matches!(parse_controllers("bogus"), Err(ManagerError::UnknownController(n)) if n == "bogus")
        );
    }
}
