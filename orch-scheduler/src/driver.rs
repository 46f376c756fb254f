//! The scheduler driver: runs the pure [`Scheduler`] against any API server through
//! [`Client`](orch_types::client::Client). It lists and watches nodes and pods, keeps the
//! [`Snapshot`] and the [`SchedulingQueue`] up to date, and for each decision binds through
//! `pods/binding` (asynchronously, the pod stays assumed meanwhile), or writes the
//! `PodScheduled=False/Unschedulable` condition, `nominatedNodeName` and a `FailedScheduling`
//! event and deletes preemption victims gracefully. Pods whose schedulerName has no profile
//! are left alone.

use crate::decision::Outcome;
use crate::pod_info::PodInfo;
use crate::queue::{ClusterEvent, QueueConfig, SchedulingQueue};
use crate::scheduler::Scheduler;
use crate::snapshot::Snapshot;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use orch_types::client::{
    DeleteParams, ListParams, Patch, PatchParams, SharedClient, WatchEvent, WatchParams,
    WatchStream,
};
use orch_types::clock::SharedClock;
use orch_types::events::{reason, EventRecorder, EventType, ObjectRef};
use orch_types::{ApiResource, DynamicObject};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Errors that stop the driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The initial list failed.
    #[error("listing {what}: {source}")]
    List {
        /// Resource.
        what: &'static str,
        /// Error.
        #[source]
        source: orch_types::client::ClientError,
    },
}

/// Counters of a driver run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DriverStats {
    /// Successful bindings.
    pub bound: u64,
    /// Failed scheduling attempts.
    pub unschedulable: u64,
    /// Binding errors.
    pub bind_errors: u64,
    /// Preemption victims deleted.
    pub preempted: u64,
}

enum BindResult {
    Ok,
    Failed { key: String, error: String },
}

/// The driver.
pub struct Driver {
    client: SharedClient,
    scheduler: Scheduler,
    snapshot: Snapshot,
    queue: SchedulingQueue,
    clock: SharedClock,
    events: Arc<EventRecorder>,
    /// Fingerprint (spec + labels) of pending pods we know, to ignore status-only updates.
    pending: HashMap<String, String>,
    names: HashSet<String>,
    stats: DriverStats,
}

fn fingerprint(pod: &Pod) -> String {
    serde_json::to_string(&(
        &pod.spec,
        &pod.metadata.labels,
        &pod.metadata.deletion_timestamp,
    ))
    .unwrap_or_default()
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

impl Driver {
    /// A driver for `scheduler`'s profiles.
    pub fn new(client: SharedClient, scheduler: Scheduler, clock: SharedClock) -> Self {
        let first = scheduler
            .profiles()
            .first()
            .cloned()
            .unwrap_or_else(|| Arc::new(crate::profile::Profile::default()));
        let queue = SchedulingQueue::new(
            first.queue_sort.clone(),
            first.pre_enqueue.clone(),
            clock.clone(),
            QueueConfig::default(),
        );
        let names = scheduler
            .profiles()
            .iter()
            .map(|p| p.scheduler_name.clone())
            .collect();
        let events = Arc::new(EventRecorder::new(
            client.clone(),
            clock.clone(),
            "default-scheduler",
            None,
        ));
        Self {
            client,
            scheduler,
            snapshot: Snapshot::new(),
            queue,
            clock,
            events,
            pending: HashMap::new(),
            names,
            stats: DriverStats::default(),
        }
    }

    fn on_node(&mut self, ev: WatchEvent<DynamicObject>) {
        let (obj, deleted) = match ev {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => (o, false),
            WatchEvent::Deleted(o) => (o, true),
            _ => return,
        };
        if deleted {
            self.snapshot.remove_node(obj.name());
            self.queue.on_event(ClusterEvent::NodeDelete);
            return;
        }
        let existed = self.snapshot.node_index(obj.name()).is_some();
        match obj.to_typed::<Node>() {
            Ok(n) => {
                if let Err(e) = self.snapshot.upsert_node(n) {
                    tracing::warn!(node = obj.name(), error = %e, "ignoring node");
                    return;
                }
                self.queue.on_event(if existed {
                    ClusterEvent::NodeUpdate
                } else {
                    ClusterEvent::NodeAdd
                });
            }
            Err(e) => tracing::warn!(node = obj.name(), error = %e, "ignoring node"),
        }
    }

    fn on_pdb(&mut self, ev: WatchEvent<DynamicObject>) {
        match ev {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                if let Ok(p) = o.to_typed::<PodDisruptionBudget>() {
                    let _ = self.snapshot.upsert_pdb(&p);
                }
            }
            WatchEvent::Deleted(o) => {
                let key = format!("{}/{}", o.namespace().unwrap_or("default"), o.name());
                self.snapshot.remove_pdb(&key);
            }
            _ => {}
        }
    }

    fn on_pod(&mut self, ev: WatchEvent<DynamicObject>) {
        let (obj, deleted) = match ev {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => (o, false),
            WatchEvent::Deleted(o) => (o, true),
            _ => return,
        };
        let key = format!("{}/{}", obj.namespace().unwrap_or("default"), obj.name());
        if deleted {
            self.pending.remove(&key);
            self.queue.delete(&key);
            if self.snapshot.remove_pod(&key).is_some() {
                self.queue.on_event(ClusterEvent::AssignedPodDelete);
            }
            return;
        }
        let pod = match obj.to_typed::<Pod>() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "ignoring pod");
                return;
            }
        };
        let assigned = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if assigned {
            self.pending.remove(&key);
            self.queue.delete(&key);
            if is_terminal(&pod) {
                if self.snapshot.remove_pod(&key).is_some() {
                    self.queue.on_event(ClusterEvent::AssignedPodDelete);
                }
                return;
            }
            let existed = self.snapshot.pod(&key).is_some();
            match self.snapshot.upsert_pod(pod) {
                Ok(_) => {
                    self.queue.on_event(if existed {
                        ClusterEvent::AssignedPodUpdate
                    } else {
                        ClusterEvent::AssignedPodAdd
                    });
                }
                Err(e) => tracing::warn!(pod = %key, error = %e, "ignoring pod"),
            }
            return;
        }
        let sched = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.clone())
            .unwrap_or_else(|| "default-scheduler".into());
        if !self.names.contains(&sched)
            || is_terminal(&pod)
            || pod.metadata.deletion_timestamp.is_some()
        {
            self.pending.remove(&key);
            self.queue.delete(&key);
            return;
        }
        let fp = fingerprint(&pod);
        if self.pending.get(&key) == Some(&fp) && self.queue.contains(&key) {
            return; // status-only update (our own condition write, …)
        }
        // A pod we assumed but whose binding has not come back yet is not pending again.
        if self.snapshot.pod(&key).is_some() {
            return;
        }
        match PodInfo::new(pod) {
            Ok(info) => {
                self.pending.insert(key, fp);
                self.queue.add(Arc::new(info));
            }
            Err(e) => tracing::warn!(pod = %key, error = %e, "cannot schedule pod"),
        }
    }

    async fn list_into(
        &mut self,
        r: &ApiResource,
        what: &'static str,
    ) -> Result<String, DriverError> {
        let l = self
            .client
            .list(r, None, &ListParams::default())
            .await
            .map_err(|source| DriverError::List { what, source })?;
        for o in l.items {
            match what {
                "nodes" => self.on_node(WatchEvent::Added(o)),
                "pods" => self.on_pod(WatchEvent::Added(o)),
                _ => self.on_pdb(WatchEvent::Added(o)),
            }
        }
        Ok(l.metadata.resource_version.unwrap_or_default())
    }

    async fn watch(&self, r: &ApiResource, rv: &str) -> Option<WatchStream<DynamicObject>> {
        let p = WatchParams {
            resource_version: Some(rv.to_string()),
            allow_bookmarks: true,
            ..Default::default()
        };
        match self.client.watch(r, None, &p).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "watch failed");
                None
            }
        }
    }

    /// Runs until `shutdown` resolves; returns counters.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<DriverStats, DriverError> {
        let nodes_r = ApiResource::of::<Node>();
        let pods_r = ApiResource::of::<Pod>();
        let pdbs_r = ApiResource::of::<PodDisruptionBudget>();
        let mut node_rv = self.list_into(&nodes_r, "nodes").await?;
        let mut pod_rv = self.list_into(&pods_r, "pods").await?;
        let mut pdb_rv = self.list_into(&pdbs_r, "pdbs").await.unwrap_or_default();
        let mut nodes = self.watch(&nodes_r, &node_rv).await;
        let mut pods = self.watch(&pods_r, &pod_rv).await;
        let mut pdbs = self.watch(&pdbs_r, &pdb_rv).await;
        let (bind_tx, mut bind_rx) = mpsc::unbounded_channel::<BindResult>();
        tokio::pin!(shutdown);
        loop {
            let has_work = self.queue.has_active();
            let wait = self
                .queue
                .next_backoff()
                .and_then(|t| {
                    let d = t.duration_since(self.clock.now());
                    Duration::try_from(d).ok()
                })
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(r) = bind_rx.recv() => self.on_bind_result(r),
                ev = next(&mut nodes) => match ev {
                    Some(Ok(WatchEvent::Bookmark(o))) => { if let Some(rv) = o.resource_version() { node_rv = rv.to_string(); } }
                    Some(Ok(WatchEvent::Error(_))) | Some(Err(_)) | None => {
                        node_rv = self.list_into(&nodes_r, "nodes").await.unwrap_or(node_rv);
                        nodes = self.watch(&nodes_r, &node_rv).await;
                    }
                    Some(Ok(ev)) => { if let Some(rv) = rv_of(&ev) { node_rv = rv; } self.on_node(ev) }
                },
                ev = next(&mut pods) => match ev {
                    Some(Ok(WatchEvent::Bookmark(o))) => { if let Some(rv) = o.resource_version() { pod_rv = rv.to_string(); } }
                    Some(Ok(WatchEvent::Error(_))) | Some(Err(_)) | None => {
                        pod_rv = self.list_into(&pods_r, "pods").await.unwrap_or(pod_rv);
                        pods = self.watch(&pods_r, &pod_rv).await;
                    }
                    Some(Ok(ev)) => { if let Some(rv) = rv_of(&ev) { pod_rv = rv; } self.on_pod(ev) }
                },
                ev = next(&mut pdbs) => match ev {
                    Some(Ok(WatchEvent::Bookmark(_))) => {}
                    Some(Ok(WatchEvent::Error(_))) | Some(Err(_)) | None => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        pdb_rv = self.list_into(&pdbs_r, "pdbs").await.unwrap_or(pdb_rv);
                        pdbs = self.watch(&pdbs_r, &pdb_rv).await;
                    }
                    Some(Ok(ev)) => { if let Some(rv) = rv_of(&ev) { pdb_rv = rv; } self.on_pdb(ev) }
                },
                _ = async {}, if has_work => self.schedule_one(&bind_tx),
                _ = tokio::time::sleep(wait), if !has_work => {}
            }
        }
        Ok(self.stats)
    }

    fn on_bind_result(&mut self, r: BindResult) {
        match r {
            BindResult::Ok => self.stats.bound += 1,
            BindResult::Failed { key, error } => {
                self.stats.bind_errors += 1;
                tracing::warn!(pod = %key, %error, "binding failed; forgetting the assumed pod");
                if let Some(p) = self.snapshot.remove_pod(&key) {
                    let mut info = (*p).clone();
                    info.node_name = None;
                    self.queue.add_after_error(Arc::new(info));
                }
            }
        }
    }

    fn schedule_one(&mut self, bind_tx: &mpsc::UnboundedSender<BindResult>) {
        let Some(qp) = self.queue.pop() else {
            return;
        };
        let pod = qp.pod.clone();
        let d = self.scheduler.schedule_and_assume(&pod, &mut self.snapshot);
        let pods_r = ApiResource::of::<Pod>();
        let obj_ref = ObjectRef::of(pod.pod.as_ref());
        match d.outcome {
            Outcome::Scheduled { node } => {
                self.pending.remove(&pod.key);
                let client = self.client.clone();
                let events = self.events.clone();
                let tx = bind_tx.clone();
                let binding = self
                    .scheduler
                    .profile(&pod.scheduler_name)
                    .and_then(|p| p.bind.iter().find_map(|b| b.binding(&pod, &node)));
                tokio::spawn(async move {
                    let Some(binding) = binding else {
                        let _ = tx.send(BindResult::Failed {
                            key: pod.key.clone(),
                            error: "no bind plugin handled the pod".into(),
                        });
                        return;
                    };
                    let body = match DynamicObject::from_typed(&binding) {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = tx.send(BindResult::Failed {
                                key: pod.key.clone(),
                                error: e.to_string(),
                            });
                            return;
                        }
                    };
                    match client
                        .create_subresource(
                            &pods_r,
                            Some(&pod.namespace),
                            &pod.name,
                            "binding",
                            &body,
                        )
                        .await
                    {
                        Ok(_) => {
                            let _ = tx.send(BindResult::Ok);
                            let msg = format!("Successfully assigned {} to {node}", pod.key);
                            if let Err(e) = events
                                .record(&obj_ref, EventType::Normal, reason::SCHEDULED, &msg)
                                .await
                            {
                                tracing::debug!(error = %e, "event");
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(BindResult::Failed {
                                key: pod.key.clone(),
                                error: e.to_string(),
                            });
                        }
                    }
                });
            }
            Outcome::Unschedulable {
                message,
                nominated_node,
                victims,
                unschedulable_plugins,
                ..
            } => {
                self.stats.unschedulable += 1;
                self.stats.preempted += victims.len() as u64;
                self.queue.requeue_unschedulable(qp, unschedulable_plugins);
                let client = self.client.clone();
                let events = self.events.clone();
                let now = self.clock.now().to_string();
                tokio::spawn(async move {
                    for v in &victims {
                        let (ns, name) = v.split_once('/').unwrap_or(("default", v));
                        if let Err(e) = client
                            .delete(&pods_r, Some(ns), name, &DeleteParams::default())
                            .await
                        {
                            tracing::warn!(victim = %v, error = %e, "preemption delete failed");
                        }
                    }
                    let mut status = serde_json::json!({"conditions": [{
                        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": message, "lastTransitionTime": now}]});
                    if let Some(n) = &nominated_node {
                        status["nominatedNodeName"] = serde_json::json!(n);
                    }
                    let patch = Patch::Strategic(serde_json::json!({"status": status}));
                    if let Err(e) = client
                        .patch(
                            &pods_r,
                            Some(&pod.namespace),
                            &pod.name,
                            Some("status"),
                            &patch,
                            &PatchParams::default(),
                        )
                        .await
                    {
                        tracing::debug!(error = %e, "pod condition");
                    }
                    if let Err(e) = events
                        .record(
                            &obj_ref,
                            EventType::Warning,
                            reason::FAILED_SCHEDULING,
                            &message,
                        )
                        .await
                    {
                        tracing::debug!(error = %e, "event");
                    }
                });
            }
            Outcome::Gated { .. } => self.queue.add(pod),
            Outcome::Error { message } => {
                tracing::warn!(pod = %pod.key, %message, "scheduling error");
                self.queue.requeue_unschedulable(qp, Vec::new());
            }
        }
    }
}

fn rv_of(ev: &WatchEvent<DynamicObject>) -> Option<String> {
    match ev {
        WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
            o.resource_version().map(str::to_string)
        }
        _ => None,
    }
}

async fn next(
    s: &mut Option<WatchStream<DynamicObject>>,
) -> Option<orch_types::client::Result<WatchEvent<DynamicObject>>> {
    match s {
        Some(s) => s.next().await,
        None => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            None
        }
    }
}

/// Convenience: runs the default scheduler (or one from `config`) against `client` until
/// `shutdown`.
pub async fn run(
    client: SharedClient,
    config: Option<&crate::config::KubeSchedulerConfiguration>,
    clock: SharedClock,
    shutdown: impl Future<Output = ()>,
) -> Result<DriverStats, Box<dyn std::error::Error + Send + Sync>> {
    let scheduler = match config {
        Some(c) => Scheduler::from_config(c, &crate::profile::Registry::default())?,
        None => Scheduler::default(),
    };
    Ok(Driver::new(client, scheduler, clock).run(shutdown).await?)
}
