//! The scheduler driver: the live executor of a [`SchedulingCycle`] against any API server
//! through [`Client`](orch_types::client::Client). It lists and watches nodes, pods,
//! PodDisruptionBudgets, PersistentVolumeClaims, PersistentVolumes and StorageClasses and feeds
//! them to the cycle's typed handlers; for each attempt it
//! carries out the [`Effect`]s asynchronously: binds through `pods/binding` (the pod stays
//! assumed meanwhile, the result goes back to the cycle), deletes preemption victims
//! gracefully, writes the `PodScheduled=False/Unschedulable` condition and `nominatedNodeName`,
//! and records `Scheduled` / `FailedScheduling` events. The decisions and the queue are the
//! cycle's; pods whose schedulerName has no profile are left alone.

use crate::cycle::{unschedulable_status, Effect, SchedulingCycle, SchedulingEvent};
use crate::scheduler::Scheduler;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use orch_runtime::object::split_key;
use orch_types::client::{
    DeleteParams, ListParams, Patch, PatchParams, SharedClient, WatchEvent, WatchParams,
    WatchStream,
};
use orch_types::clock::SharedClock;
use orch_types::events::EventRecorder;
use orch_types::{ApiResource, DynamicObject};
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

/// Counters of a driver run (the cycle's).
pub type DriverStats = crate::cycle::SchedulingStats;

enum BindResult {
    Ok { key: String },
    Failed { key: String, error: String },
}

/// The driver.
pub struct Driver {
    client: SharedClient,
    cycle: SchedulingCycle,
    clock: SharedClock,
    events: Arc<EventRecorder>,
}

/// The typed form of a watched object, or `None` after a warning naming it.
fn typed<K: serde::de::DeserializeOwned>(obj: &DynamicObject, what: &str) -> Option<K> {
    match obj.to_typed::<K>() {
        Ok(k) => Some(k),
        Err(e) => {
            let name = orch_runtime::object::key_from(obj.namespace(), obj.name());
            tracing::warn!(%what, object = %name, error = %e, "ignoring object");
            None
        }
    }
}

impl Driver {
    /// A driver for `scheduler`'s profiles.
    pub fn new(client: SharedClient, scheduler: Scheduler, clock: SharedClock) -> Self {
        let events = Arc::new(EventRecorder::new(
            client.clone(),
            clock.clone(),
            "default-scheduler",
            None,
        ));
        Self {
            client,
            cycle: SchedulingCycle::new(scheduler, clock.clone()),
            clock,
            events,
        }
    }

    /// The decision step this driver executes.
    pub fn cycle(&self) -> &SchedulingCycle {
        &self.cycle
    }

    fn on_node(&mut self, ev: WatchEvent<DynamicObject>) {
        match ev {
            WatchEvent::Added(o) => {
                if let Some(n) = typed::<Node>(&o, "node") {
                    self.cycle.node_added(Arc::new(n));
                }
            }
            WatchEvent::Modified(o) => {
                if let Some(n) = typed::<Node>(&o, "node") {
                    self.cycle.node_updated(Arc::new(n));
                }
            }
            WatchEvent::Deleted(o) => {
                if let Some(n) = typed::<Node>(&o, "node") {
                    self.cycle.node_deleted(&n);
                }
            }
            _ => {}
        }
    }

    fn on_pdb(&mut self, ev: WatchEvent<DynamicObject>) {
        match ev {
            WatchEvent::Added(o) => {
                if let Some(p) = typed::<PodDisruptionBudget>(&o, "pdb") {
                    self.cycle.pdb_added(&p);
                }
            }
            WatchEvent::Modified(o) => {
                if let Some(p) = typed::<PodDisruptionBudget>(&o, "pdb") {
                    self.cycle.pdb_updated(&p);
                }
            }
            WatchEvent::Deleted(o) => {
                if let Some(p) = typed::<PodDisruptionBudget>(&o, "pdb") {
                    self.cycle.pdb_deleted(&p);
                }
            }
            _ => {}
        }
    }

    /// PersistentVolumeClaims, PersistentVolumes and StorageClasses (the VolumeBinding
    /// plugin's view): `what` is `claims`, `volumes` or `classes`.
    fn on_storage(&mut self, what: &str, ev: WatchEvent<DynamicObject>) {
        let (o, deleted) = match ev {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => (o, false),
            WatchEvent::Deleted(o) => (o, true),
            _ => return,
        };
        match (what, deleted) {
            ("claims", false) => {
                if let Some(c) = typed::<PersistentVolumeClaim>(&o, "persistentvolumeclaim") {
                    self.cycle.claim_updated(Arc::new(c));
                }
            }
            ("claims", true) => {
                if let Some(c) = typed::<PersistentVolumeClaim>(&o, "persistentvolumeclaim") {
                    self.cycle.claim_deleted(&c);
                }
            }
            ("volumes", false) => {
                if let Some(v) = typed::<PersistentVolume>(&o, "persistentvolume") {
                    self.cycle.volume_updated(Arc::new(v));
                }
            }
            ("volumes", true) => {
                if let Some(v) = typed::<PersistentVolume>(&o, "persistentvolume") {
                    self.cycle.volume_deleted(&v);
                }
            }
            (_, false) => {
                if let Some(c) = typed::<StorageClass>(&o, "storageclass") {
                    self.cycle.storage_class_updated(Arc::new(c));
                }
            }
            (_, true) => {
                if let Some(c) = typed::<StorageClass>(&o, "storageclass") {
                    self.cycle.storage_class_deleted(&c);
                }
            }
        }
    }

    fn on_pod(&mut self, ev: WatchEvent<DynamicObject>) {
        match ev {
            WatchEvent::Added(o) => {
                if let Some(p) = typed::<Pod>(&o, "pod") {
                    self.cycle.pod_added(Arc::new(p));
                }
            }
            WatchEvent::Modified(o) => {
                if let Some(p) = typed::<Pod>(&o, "pod") {
                    self.cycle.pod_updated(Arc::new(p));
                }
            }
            WatchEvent::Deleted(o) => {
                if let Some(p) = typed::<Pod>(&o, "pod") {
                    self.cycle.pod_deleted(&p);
                }
            }
            _ => {}
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
                "pdbs" => self.on_pdb(WatchEvent::Added(o)),
                other => self.on_storage(other, WatchEvent::Added(o)),
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
        let storage_r = [
            ("claims", ApiResource::of::<PersistentVolumeClaim>()),
            ("volumes", ApiResource::of::<PersistentVolume>()),
            ("classes", ApiResource::of::<StorageClass>()),
        ];
        let mut node_rv = self.list_into(&nodes_r, "nodes").await?;
        // Storage before pods, so the first attempts see the claims their pods use.
        let mut storage_rv = Vec::new();
        for (what, r) in &storage_r {
            storage_rv.push(self.list_into(r, what).await.unwrap_or_default());
        }
        let mut pod_rv = self.list_into(&pods_r, "pods").await?;
        let mut pdb_rv = self.list_into(&pdbs_r, "pdbs").await.unwrap_or_default();
        let mut nodes = self.watch(&nodes_r, &node_rv).await;
        let mut pods = self.watch(&pods_r, &pod_rv).await;
        let mut pdbs = self.watch(&pdbs_r, &pdb_rv).await;
        let mut storage = Vec::new();
        for ((_, r), rv) in storage_r.iter().zip(&storage_rv) {
            storage.push(self.watch(r, rv).await);
        }
        let (bind_tx, mut bind_rx) = mpsc::unbounded_channel::<BindResult>();
        tokio::pin!(shutdown);
        loop {
            let has_work = self.cycle.has_active();
            let wait = self
                .cycle
                .next_due()
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
                (i, ev) = next_of(&mut storage) => match ev {
                    Some(Ok(WatchEvent::Bookmark(o))) => { if let Some(rv) = o.resource_version() { storage_rv[i] = rv.to_string(); } }
                    Some(Ok(WatchEvent::Error(_))) | Some(Err(_)) | None => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let (what, r) = &storage_r[i];
                        storage_rv[i] = self.list_into(r, what).await.unwrap_or(std::mem::take(&mut storage_rv[i]));
                        storage[i] = self.watch(r, &storage_rv[i]).await;
                    }
                    Some(Ok(ev)) => { if let Some(rv) = rv_of(&ev) { storage_rv[i] = rv; } self.on_storage(storage_r[i].0, ev) }
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
        Ok(self.cycle.stats())
    }

    fn on_bind_result(&mut self, r: BindResult) {
        match r {
            BindResult::Ok { key } => self.cycle.bind_succeeded(&key),
            BindResult::Failed { key, error } => self.cycle.bind_failed(&key, &error),
        }
    }

    /// One attempt: the cycle decides, a task carries out its effects in order.
    fn schedule_one(&mut self, bind_tx: &mpsc::UnboundedSender<BindResult>) {
        let Some(attempt) = self.cycle.step() else {
            return;
        };
        if attempt.effects.is_empty() {
            return;
        }
        let client = self.client.clone();
        let events = self.events.clone();
        let tx = bind_tx.clone();
        tokio::spawn(async move {
            for effect in attempt.effects {
                execute(&client, &events, &tx, effect).await;
            }
        });
    }
}

async fn record(events: &EventRecorder, ev: &SchedulingEvent) {
    if let Err(e) = events
        .record(&ev.object, ev.type_, ev.reason, &ev.message)
        .await
    {
        tracing::debug!(error = %e, "event");
    }
}

/// Carries out one effect with the client.
async fn execute(
    client: &SharedClient,
    events: &EventRecorder,
    tx: &mpsc::UnboundedSender<BindResult>,
    effect: Effect,
) {
    let pods_r = ApiResource::of::<Pod>();
    match effect {
        Effect::Bind {
            pod,
            binding,
            on_success,
            ..
        } => {
            let failed = |error: String| BindResult::Failed {
                key: pod.key.clone(),
                error,
            };
            let body = match DynamicObject::from_typed(&*binding) {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(failed(e.to_string()));
                    return;
                }
            };
            match client
                .create_subresource(&pods_r, Some(&pod.namespace), &pod.name, "binding", &body)
                .await
            {
                Ok(_) => {
                    let _ = tx.send(BindResult::Ok {
                        key: pod.key.clone(),
                    });
                    record(events, &on_success).await;
                }
                Err(e) => {
                    let _ = tx.send(failed(e.to_string()));
                }
            }
        }
        Effect::Preempt { victims } => {
            for v in &victims {
                let (ns, name) = split_key(v);
                if let Err(e) = client
                    .delete(&pods_r, ns, name, &DeleteParams::default())
                    .await
                {
                    tracing::warn!(victim = %v, error = %e, "preemption delete failed");
                }
            }
        }
        Effect::MarkUnschedulable {
            pod,
            message,
            nominated_node,
            at,
        } => {
            let patch = Patch::Strategic(unschedulable_status(
                &message,
                nominated_node.as_deref(),
                at,
            ));
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
        }
        Effect::Event(ev) => record(events, &ev).await,
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

/// The next event of any of `streams`, with its index (a missing stream waits like [`next`]).
async fn next_of(
    streams: &mut [Option<WatchStream<DynamicObject>>],
) -> (
    usize,
    Option<orch_types::client::Result<WatchEvent<DynamicObject>>>,
) {
    let futs = streams
        .iter_mut()
        .enumerate()
        .map(|(i, s)| Box::pin(async move { (i, next(s).await) }));
    futures::future::select_all(futs).await.0
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
