//! [`SchedulingCycle`]: the scheduler's decision step, shared by every executor.
//!
//! The cycle owns the [`Scheduler`], the cluster [`Snapshot`], the [`SchedulingQueue`] and the
//! bookkeeping around them (the last version of each pending pod, the schedulerNames served, counters).
//! It is synchronous and deterministic: no tokio, no client, time only from the
//! [`Clock`](orch_types::clock::Clock) it was built with. Executors feed it typed cluster
//! changes ([`pod_added`](SchedulingCycle::pod_added), [`node_updated`](SchedulingCycle::node_updated),
//! …), call [`step`](SchedulingCycle::step) for one scheduling attempt, carry out the attempt's
//! [`Effect`]s, and report how binding went ([`bind_succeeded`](SchedulingCycle::bind_succeeded) /
//! [`bind_failed`](SchedulingCycle::bind_failed)).
//!
//! It is built for two executors: the live [`Driver`](crate::driver::Driver) (watches in,
//! effects out through any `Client`, binding asynchronously while the pod stays assumed) and the
//! simulator (effects applied on a virtual clock, which it advances to
//! [`next_due`](SchedulingCycle::next_due) when no pod is active). Both then get the same queue
//! semantics: back-off after failures, the unschedulable pool that only cluster events (or the
//! 5-minute flush) empty, scheduling gates, nominated nodes from preemption, and bindings from
//! the profile's Bind plugins.
//!
//! ```
//! use orch_scheduler::cycle::{Effect, SchedulingCycle};
//! use orch_scheduler::Scheduler;
//! use orch_types::clock::ManualClock;
//! use orch_types::testing::{NodeBuilder, PodBuilder};
//! use std::sync::Arc;
//!
//! let clock = ManualClock::at_epoch_seconds(1_000);
//! let mut cycle = SchedulingCycle::new(Scheduler::default(), Arc::new(clock.clone()));
//! cycle.node_added(Arc::new(NodeBuilder::new("n1").capacity("cpu", "2").build()));
//! cycle.pod_added(Arc::new(PodBuilder::new("web").req("cpu", "500m").build()));
//!
//! let attempt = cycle.step().expect("web is active");
//! assert_eq!(attempt.decision.node(), Some("n1"));
//! let Effect::Bind { binding, .. } = &attempt.effects[0] else { panic!("expected a bind") };
//! assert_eq!(binding.target.name.as_deref(), Some("n1"));
//! cycle.bind_succeeded(&attempt.key); // the executor posted `pods/binding`
//! assert_eq!(cycle.stats().bound, 1);
//! assert!(cycle.step().is_none());
//! ```

use crate::decision::{Decision, Outcome};
use crate::pod_info::PodInfo;
use crate::queue::{ClusterEvent, QueueConfig, SchedulingQueue};
use crate::scheduler::Scheduler;
use crate::snapshot::Snapshot;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Binding, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use orch_runtime::object::key_from;
use orch_types::clock::SharedClock;
use orch_types::events::{reason, EventType, ObjectRef};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The error a [`Attempt::bind_error`] carries when no Bind plugin of the pod's profile
/// produced a `Binding`.
pub const NO_BIND_PLUGIN: &str = "no bind plugin handled the pod";

/// Counters of a cycle (and of the executor driving it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SchedulingStats {
    /// Successful bindings (reported through [`SchedulingCycle::bind_succeeded`]).
    pub bound: u64,
    /// Failed scheduling attempts (no node fits, preemption or not).
    pub unschedulable: u64,
    /// Binding errors (reported through [`SchedulingCycle::bind_failed`], or no Bind plugin).
    pub bind_errors: u64,
    /// Preemption victims asked for.
    pub preempted: u64,
}

/// An event for the executor to record (through an `EventRecorder`, or a simulator's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulingEvent {
    /// The pod the event is about.
    pub object: ObjectRef,
    /// `Normal` or `Warning`.
    pub type_: EventType,
    /// `Scheduled` or `FailedScheduling`.
    pub reason: &'static str,
    /// The message (`Successfully assigned ns/p to n1`, or upstream's fit-error message).
    pub message: String,
}

/// Something an executor must do with the API after an attempt, in order.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Post `binding` to the pod's `pods/binding` subresource. The pod stays assumed in the
    /// snapshot until the executor reports [`SchedulingCycle::bind_succeeded`] or
    /// [`SchedulingCycle::bind_failed`]; on success it records `on_success` (the `Scheduled`
    /// event).
    Bind {
        /// The pod.
        pod: Arc<PodInfo>,
        /// The chosen node.
        node: String,
        /// The body, from the first Bind plugin of the pod's profile that handled it (boxed:
        /// it is most of the variant's size).
        binding: Box<Binding>,
        /// The event to record once the binding is acknowledged.
        on_success: SchedulingEvent,
    },
    /// Delete these pods (`namespace/name`, in order) gracefully: preemption's victims.
    Preempt {
        /// Victim keys.
        victims: Vec<String>,
    },
    /// Patch the pod's status with `PodScheduled=False/Unschedulable` and `nominatedNodeName`
    /// (see [`unschedulable_status`] for the body).
    MarkUnschedulable {
        /// The pod.
        pod: Arc<PodInfo>,
        /// The condition's message.
        message: String,
        /// The node preemption nominated, if any.
        nominated_node: Option<String>,
        /// The condition's `lastTransitionTime` (the cycle's clock at the attempt).
        at: Timestamp,
    },
    /// Record an event (`FailedScheduling`).
    Event(SchedulingEvent),
}

/// The body of the status patch of [`Effect::MarkUnschedulable`]: `{"status": {"conditions":
/// [PodScheduled=False/Unschedulable], "nominatedNodeName": …}}`, for a strategic merge patch
/// of `pods/status`.
pub fn unschedulable_status(
    message: &str,
    nominated_node: Option<&str>,
    at: Timestamp,
) -> serde_json::Value {
    let mut status = serde_json::json!({"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastTransitionTime": at.to_string()}]});
    if let Some(n) = nominated_node {
        status["nominatedNodeName"] = serde_json::json!(n);
    }
    serde_json::json!({ "status": status })
}

/// The outcome of one [`SchedulingCycle::step`], as data.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The pod, `namespace/name`.
    pub key: String,
    /// Its scheduling attempts so far, this one included.
    pub attempts: u32,
    /// The scheduler's decision (with its explanation when
    /// [`Scheduler::set_explain`] is on).
    pub decision: Decision,
    /// What the executor must do, in order. Empty for gated pods, scheduling errors and
    /// [`bind_error`](Self::bind_error)s.
    pub effects: Vec<Effect>,
    /// Set when the pod got a node but no Bind plugin produced a binding
    /// ([`NO_BIND_PLUGIN`]): the cycle already handled it as a bind failure (the assumed pod
    /// is forgotten and the pod waits out its back-off).
    pub bind_error: Option<String>,
}

/// The scheduler's decision step: queue, snapshot and algorithm behind a synchronous API.
/// See the [module documentation](self).
pub struct SchedulingCycle {
    scheduler: Scheduler,
    snapshot: Snapshot,
    queue: SchedulingQueue,
    clock: SharedClock,
    /// The last version of each pending pod we know (spec, labels, deletion), to ignore status-only
    /// updates (our own condition writes, …).
    pending: HashMap<String, Arc<Pod>>,
    /// The schedulerNames of our profiles.
    names: HashSet<String>,
    stats: SchedulingStats,
}

impl std::fmt::Debug for SchedulingCycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulingCycle")
            .field("scheduler", &self.scheduler)
            .field("nodes", &self.snapshot.len())
            .field("queue", &self.queue)
            .field("stats", &self.stats)
            .finish()
    }
}

fn key_of(m: &ObjectMeta) -> String {
    // The same form as `PodInfo::key` (a pod without a namespace is in `default`).
    key_from(
        Some(m.namespace.as_deref().unwrap_or("default")),
        m.name.as_deref().unwrap_or_default(),
    )
}

/// Whether an update of a pending pod leaves what scheduling reads unchanged (spec, labels,
/// deletion): a status-only update, as upstream's `isPodUpdated` with the status stripped.
fn same_for_scheduling(old: &Pod, new: &Pod) -> bool {
    old.spec == new.spec
        && old.metadata.labels == new.metadata.labels
        && old.metadata.deletion_timestamp == new.metadata.deletion_timestamp
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

impl SchedulingCycle {
    /// A cycle for `scheduler`'s profiles with the default queue settings (1 s back-off
    /// doubling to 10 s, 5-minute unschedulable flush).
    pub fn new(scheduler: Scheduler, clock: SharedClock) -> Self {
        Self::with_queue_config(scheduler, clock, QueueConfig::default())
    }

    /// A cycle with explicit queue settings. The queue is ordered and admitted by the first
    /// profile's QueueSort and PreEnqueue plugins (upstream requires all profiles to share
    /// QueueSort).
    pub fn with_queue_config(
        scheduler: Scheduler,
        clock: SharedClock,
        config: QueueConfig,
    ) -> Self {
        let first = scheduler
            .profiles()
            .first()
            .cloned()
            .unwrap_or_else(|| Arc::new(crate::profile::Profile::default()));
        let queue = SchedulingQueue::new(
            first.queue_sort.clone(),
            first.pre_enqueue.clone(),
            clock.clone(),
            config,
        );
        let names = scheduler
            .profiles()
            .iter()
            .map(|p| p.scheduler_name.clone())
            .collect();
        Self {
            scheduler,
            snapshot: Snapshot::new(),
            queue,
            clock,
            pending: HashMap::new(),
            names,
            stats: SchedulingStats::default(),
        }
    }

    // ---- cluster changes -------------------------------------------------------------------

    /// A node appeared.
    pub fn node_added(&mut self, node: Arc<Node>) {
        self.upsert_node(node);
    }

    /// A node changed. Whether the change counts as `NodeAdd` or `NodeUpdate` for the queue
    /// depends on whether the snapshot knew the node, not on the caller.
    pub fn node_updated(&mut self, node: Arc<Node>) {
        self.upsert_node(node);
    }

    fn upsert_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let existed = self.snapshot.node_index(name).is_some();
        if let Err(e) = self.snapshot.upsert_node(node.clone()) {
            tracing::warn!(node = name, error = %e, "ignoring node");
            return;
        }
        self.queue.on_event(if existed {
            ClusterEvent::NodeUpdate
        } else {
            ClusterEvent::NodeAdd
        });
    }

    /// A node was deleted; its pods stay known to the snapshot (they come back with it).
    pub fn node_deleted(&mut self, node: &Node) {
        self.snapshot
            .remove_node(node.metadata.name.as_deref().unwrap_or_default());
        self.queue.on_event(ClusterEvent::NodeDelete);
    }

    /// A pod appeared. Pods bound to a node go into the snapshot (a `AssignedPodAdd` cluster
    /// event); unbound pods of one of our profiles into the queue; others are ignored.
    pub fn pod_added(&mut self, pod: Arc<Pod>) {
        self.upsert_pod(pod);
    }

    /// A pod changed. The cycle remembers what it needs of the previous version (the
    /// last version of a pending pod, the snapshot's copy of a bound one), so callers need not
    /// keep the old object: status-only updates of pending pods are ignored, spec or label
    /// changes re-queue them, and terminal bound pods leave the snapshot.
    pub fn pod_updated(&mut self, pod: Arc<Pod>) {
        self.upsert_pod(pod);
    }

    /// A pod was deleted: it leaves the queue, and the snapshot (an `AssignedPodDelete`
    /// cluster event) if it was there.
    pub fn pod_deleted(&mut self, pod: &Pod) {
        let key = key_of(&pod.metadata);
        self.pending.remove(&key);
        self.queue.delete(&key);
        if self.snapshot.remove_pod(&key).is_some() {
            self.queue.on_event(ClusterEvent::AssignedPodDelete);
        }
    }

    fn upsert_pod(&mut self, pod: Arc<Pod>) {
        let key = key_of(&pod.metadata);
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
            let existed = self.snapshot.pod(&key);
            let confirms = existed.is_some_and(|p| {
                p.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty)
            });
            let existed = existed.is_some();
            // An update that changes nothing the snapshot reads keeps the plugins' view as it
            // is. The binding of a pod this cycle assumed coming back is news to the queue
            // (as it was when the snapshot rebuilt the pod); a status write by the kubelet
            // (conditions, container states) is not: upstream calls it `updatePodOther`, which
            // none of the default plugins registers for (pkg/scheduler/framework/events.go).
            if self.snapshot.refresh_pod(&key, &pod) {
                if confirms {
                    self.queue.on_event(ClusterEvent::AssignedPodUpdate);
                }
                return;
            }
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
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler");
        if !self.names.contains(sched)
            || is_terminal(&pod)
            || pod.metadata.deletion_timestamp.is_some()
        {
            self.pending.remove(&key);
            self.queue.delete(&key);
            return;
        }
        if self
            .pending
            .get(&key)
            .is_some_and(|old| same_for_scheduling(old, &pod))
            && self.queue.contains(&key)
        {
            return; // status-only update (our own condition write, …)
        }
        // A pod we assumed but whose binding has not come back yet is not pending again.
        if self.snapshot.pod(&key).is_some() {
            return;
        }
        match PodInfo::new(pod.clone()) {
            Ok(info) => {
                self.pending.insert(key, pod);
                self.queue.add(Arc::new(info));
            }
            Err(e) => tracing::warn!(pod = %key, error = %e, "cannot schedule pod"),
        }
    }

    /// A PodDisruptionBudget appeared (preemption prefers victims it does not protect).
    pub fn pdb_added(&mut self, pdb: &PodDisruptionBudget) {
        self.pdb_updated(pdb);
    }

    /// A PodDisruptionBudget changed.
    pub fn pdb_updated(&mut self, pdb: &PodDisruptionBudget) {
        if let Err(e) = self.snapshot.upsert_pdb(pdb) {
            tracing::debug!(pdb = %key_of(&pdb.metadata), error = %e, "ignoring pdb");
        }
    }

    /// A PodDisruptionBudget was deleted.
    pub fn pdb_deleted(&mut self, pdb: &PodDisruptionBudget) {
        self.snapshot.remove_pdb(&key_of(&pdb.metadata));
    }

    // ---- storage ---------------------------------------------------------------------------

    /// A PersistentVolumeClaim appeared or changed: the VolumeBinding plugin reads it, and pods
    /// it rejected are looked at again (upstream registers PVC Add|Update).
    pub fn claim_updated(&mut self, claim: Arc<PersistentVolumeClaim>) {
        self.snapshot.upsert_claim(claim);
        self.queue.on_event(ClusterEvent::PvcChange);
    }

    /// A PersistentVolumeClaim was deleted.
    pub fn claim_deleted(&mut self, claim: &PersistentVolumeClaim) {
        self.snapshot.remove_claim(&key_of(&claim.metadata));
    }

    /// A PersistentVolume appeared or changed (PV Add|Update).
    pub fn volume_updated(&mut self, volume: Arc<PersistentVolume>) {
        self.snapshot.upsert_volume(volume);
        self.queue.on_event(ClusterEvent::PvChange);
    }

    /// A PersistentVolume was deleted.
    pub fn volume_deleted(&mut self, volume: &PersistentVolume) {
        self.snapshot
            .remove_volume(volume.metadata.name.as_deref().unwrap_or(""));
    }

    /// A StorageClass appeared or changed (StorageClass Add|Update).
    pub fn storage_class_updated(&mut self, class: Arc<StorageClass>) {
        self.snapshot.upsert_storage_class(class);
        self.queue.on_event(ClusterEvent::StorageClassChange);
    }

    /// A StorageClass was deleted.
    pub fn storage_class_deleted(&mut self, class: &StorageClass) {
        self.snapshot
            .remove_storage_class(class.metadata.name.as_deref().unwrap_or(""));
    }

    // ---- scheduling ------------------------------------------------------------------------

    /// Pops the next active pod (after moving expired back-offs to the active queue),
    /// schedules it and assumes it on its node, and returns the attempt with the effects to
    /// carry out. The queue bookkeeping is done: an unschedulable pod is in the unschedulable
    /// pool (or back-off), a gated pod in the gated pool, a pod with a scheduling error in
    /// back-off. `None` when no pod is active now.
    pub fn step(&mut self) -> Option<Attempt> {
        let qp = self.queue.pop()?;
        let pod = qp.pod.clone();
        let attempts = qp.attempts;
        let decision = self.scheduler.schedule_and_assume(&pod, &mut self.snapshot);
        let mut effects = Vec::new();
        let mut bind_error = None;
        match &decision.outcome {
            Outcome::Scheduled { node } => {
                self.pending.remove(&pod.key);
                let binding = self
                    .scheduler
                    .profile(&pod.scheduler_name)
                    .and_then(|p| p.bind.iter().find_map(|b| b.binding(&pod, node)));
                match binding {
                    Some(binding) => effects.push(Effect::Bind {
                        on_success: SchedulingEvent {
                            object: ObjectRef::of(pod.pod.as_ref()),
                            type_: EventType::Normal,
                            reason: reason::SCHEDULED,
                            message: format!("Successfully assigned {} to {node}", pod.key),
                        },
                        pod: pod.clone(),
                        node: node.clone(),
                        binding: Box::new(binding),
                    }),
                    None => {
                        self.bind_failed(&pod.key, NO_BIND_PLUGIN);
                        bind_error = Some(NO_BIND_PLUGIN.to_string());
                    }
                }
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
                let mut qp = qp;
                if let Some(n) = nominated_node {
                    // The next attempt tries the nominated node first (upstream reads it back
                    // from the pod's status; ours is ignored as a status-only update).
                    qp.pod = Arc::new(PodInfo {
                        nominated_node: Some(n.clone()),
                        ..(*qp.pod).clone()
                    });
                }
                self.queue
                    .requeue_unschedulable(qp, unschedulable_plugins.clone());
                if !victims.is_empty() {
                    effects.push(Effect::Preempt {
                        victims: victims.clone(),
                    });
                }
                effects.push(Effect::MarkUnschedulable {
                    pod: pod.clone(),
                    message: message.clone(),
                    nominated_node: nominated_node.clone(),
                    at: self.clock.now(),
                });
                effects.push(Effect::Event(SchedulingEvent {
                    object: ObjectRef::of(pod.pod.as_ref()),
                    type_: EventType::Warning,
                    reason: reason::FAILED_SCHEDULING,
                    message: message.clone(),
                }));
            }
            Outcome::Gated { .. } => self.queue.add(pod.clone()),
            Outcome::Error { message } => {
                tracing::warn!(pod = %pod.key, %message, "scheduling error");
                self.queue.requeue_unschedulable(qp, Vec::new());
            }
        }
        Some(Attempt {
            key: pod.key.clone(),
            attempts,
            decision,
            effects,
            bind_error,
        })
    }

    /// The executor posted the binding of `key` (an [`Effect::Bind`]) successfully. The pod
    /// stays assumed until its bound version arrives through [`pod_updated`](Self::pod_updated).
    pub fn bind_succeeded(&mut self, key: &str) {
        tracing::trace!(pod = %key, "bound");
        self.stats.bound += 1;
    }

    /// The executor's binding of `key` failed (upstream `handleBindingCycleError`): the
    /// assumed pod is forgotten and the pod waits out the initial back-off before its next
    /// attempt. `error` is logged.
    pub fn bind_failed(&mut self, key: &str, error: &str) {
        self.stats.bind_errors += 1;
        tracing::warn!(pod = %key, %error, "binding failed; forgetting the assumed pod");
        if let Some(p) = self.snapshot.remove_pod(key) {
            let mut info = (*p).clone();
            info.node_name = None;
            // Known again as pending, so our own status writes do not reset its back-off.
            self.pending.insert(key.to_string(), info.pod.clone());
            self.queue.add_after_error(Arc::new(info));
        }
    }

    /// Moves pods whose back-off ended (and unschedulable pods past the 5-minute flush) to
    /// the active queue. [`step`](Self::step) and [`has_active`](Self::has_active) do it too.
    pub fn flush(&mut self) {
        self.queue.flush_backoff();
    }

    /// True when [`step`](Self::step) has a pod to try now (after [`flush`](Self::flush)).
    pub fn has_active(&mut self) -> bool {
        self.queue.has_active()
    }

    /// When a waiting pod next becomes active without a cluster event: the earliest back-off
    /// expiry or unschedulable-pool flush. A simulator with nothing active advances its
    /// virtual clock to this time. `None` when no pod waits on time.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.queue.next_due()
    }

    // ---- accessors -------------------------------------------------------------------------

    /// The cluster as the scheduler sees it (bound and assumed pods, nodes, PDBs).
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The scheduling queue (read-only: sizes, membership).
    pub fn queue(&self) -> &SchedulingQueue {
        &self.queue
    }

    /// The algorithm.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The algorithm, e.g. for [`Scheduler::set_explain`].
    pub fn scheduler_mut(&mut self) -> &mut Scheduler {
        &mut self.scheduler
    }

    /// Counters so far.
    pub fn stats(&self) -> SchedulingStats {
        self.stats
    }
}

#[cfg(test)]
mod tests;
