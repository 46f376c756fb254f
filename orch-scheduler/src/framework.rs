//! The scheduling framework: one small trait per extension point, as upstream
//! `pkg/scheduler/framework/interface.go`. Plugins are synchronous and pure; the only I/O point,
//! binding, returns the `Binding` body for the driver to post.
//!
//! Skip semantics follow upstream: a PreFilter returning
//! [`Code::Skip`](crate::status::Code::Skip) disables that plugin's Filter for the cycle, a
//! PreScore returning Skip disables its Score.

use crate::cycle_state::CycleState;
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::queue::QueuedPod;
use crate::snapshot::Snapshot;
use crate::status::Status;
use k8s_openapi::api::core::v1::{Binding, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeSet;

/// Highest score a Score plugin may return after normalization (upstream `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// Every plugin has a name (used in configuration and explanations).
pub trait Plugin: Send + Sync {
    /// The registry name, e.g. `NodeResourcesFit`.
    fn name(&self) -> &'static str;
}

/// Orders the active queue.
pub trait QueueSortPlugin: Plugin {
    /// True when `a` should be scheduled before `b`.
    fn less(&self, a: &QueuedPod, b: &QueuedPod) -> bool;
}

/// Decides whether a pod may enter the active queue at all.
pub trait PreEnqueuePlugin: Plugin {
    /// `Success` to admit, `Pending` (with reasons) to hold the pod back.
    fn pre_enqueue(&self, pod: &PodInfo) -> Status;
}

/// What a PreFilter returns: a status and optionally the only nodes worth checking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreFilterResult {
    /// The status (Skip disables this plugin's Filter).
    pub status: Status,
    /// When set, only these nodes can pass (e.g. `spec.nodeName`).
    pub node_names: Option<BTreeSet<String>>,
}

impl From<Status> for PreFilterResult {
    fn from(status: Status) -> Self {
        Self {
            status,
            node_names: None,
        }
    }
}

/// Precomputes per-pod data once per cycle.
pub trait PreFilterPlugin: Plugin {
    /// Runs once per pod and cycle, before any Filter.
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snap: &Snapshot)
        -> PreFilterResult;
}

/// Decides whether one node can host the pod.
pub trait FilterPlugin: Plugin {
    /// Runs per node; must not allocate on success.
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo, snap: &Snapshot)
        -> Status;
}

/// The outcome of a PostFilter (preemption).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostFilterResult {
    /// The node nominated for the pod, if preemption found one.
    pub nominated_node: Option<String>,
    /// Pods (keys `namespace/name`) to delete so the pod fits.
    pub victims: Vec<String>,
}

/// Map of node name to its failing status, as collected during filtering.
pub type NodeStatuses = std::collections::BTreeMap<String, Status>;

/// Runs when no node passed the filters (preemption).
pub trait PostFilterPlugin: Plugin {
    /// `Success` with a nominated node, or `Unschedulable` with a message.
    fn post_filter(
        &self,
        pod: &PodInfo,
        snap: &mut Snapshot,
        statuses: &NodeStatuses,
        fwk: &crate::profile::Profile,
    ) -> (PostFilterResult, Status);
}

/// Precomputes data for scoring over the feasible nodes.
pub trait PreScorePlugin: Plugin {
    /// Runs once per cycle with the indices (into the snapshot) of feasible nodes.
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        feasible: &[usize],
        snap: &Snapshot,
    ) -> Status;
}

/// Ranks feasible nodes.
pub trait ScorePlugin: Plugin {
    /// The raw score of one node.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo, snap: &Snapshot) -> i64;
    /// Normalizes raw scores to `0..=MAX_NODE_SCORE` in place (`feasible[i]` is the node of
    /// `scores[i]`). The default keeps them.
    fn normalize(&self, state: &CycleState, pod: &PodInfo, feasible: &[usize], scores: &mut [i64]) {
        let _ = (state, pod, feasible, scores);
    }
}

/// Reserves (and on failure releases) per-node resources of plugins that keep state.
pub trait ReservePlugin: Plugin {
    /// Reserve.
    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status;
    /// Undo a reserve.
    fn unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str);
}

/// Approves, rejects or delays binding.
pub trait PermitPlugin: Plugin {
    /// `Success`, `Unschedulable`, or `Wait` with a timeout.
    fn permit(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        node: &str,
    ) -> (Status, std::time::Duration);
}

/// Work before binding (volumes, …).
pub trait PreBindPlugin: Plugin {
    /// Runs before Bind.
    fn pre_bind(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status;
}

/// Produces the binding the driver posts to `pods/binding`.
pub trait BindPlugin: Plugin {
    /// The body to post, or `None` to let the next bind plugin handle the pod (Skip).
    fn binding(&self, pod: &PodInfo, node: &str) -> Option<Binding>;
}

/// DefaultBinder: binds through `pods/binding` (upstream `defaultbinder`).
#[derive(Debug, Default)]
pub struct DefaultBinder;

impl DefaultBinder {
    /// Registry name.
    pub const NAME: &'static str = "DefaultBinder";
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

impl BindPlugin for DefaultBinder {
    fn binding(&self, pod: &PodInfo, node: &str) -> Option<Binding> {
        Some(Binding {
            metadata: ObjectMeta {
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: pod.pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                name: Some(node.into()),
                ..Default::default()
            },
        })
    }
}
