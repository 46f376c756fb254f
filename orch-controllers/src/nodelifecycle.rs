//! Node lifecycle (`pkg/controller/nodelifecycle/node_lifecycle_controller.go`) and taint-based
//! eviction (`pkg/controller/tainteviction/taint_eviction.go`).
//!
//! [`NodeLifecycle::monitor`] is one `monitorNodeHealth` pass over every node:
//! - a node is healthy while its Lease in `kube-node-lease` is renewed or its Ready condition's
//!   heartbeat moves; after `grace_period` (default 50 s; 60 s startup grace for a node that
//!   never posted status) Ready, MemoryPressure, DiskPressure and PIDPressure become `Unknown`
//!   (`NodeStatusUnknown`, "Kubelet stopped posting node status.") and its pods get Ready=False;
//! - NoSchedule taints mirror conditions (`not-ready`, `unreachable`, `memory-pressure`,
//!   `disk-pressure`, `pid-pressure`, `network-unavailable`) and `spec.unschedulable` maps to
//!   `node.kubernetes.io/unschedulable`;
//! - NoExecute `not-ready` / `unreachable` taints are added per zone through a rate limiter
//!   (0.1 node/s normally, 0.01 in a large partially disrupted zone, none in a small one) and
//!   removed as soon as the node is Ready; when every zone is fully disrupted no NoExecute
//!   taint is kept (upstream "master disruption mode").
//!
//! [`taint_eviction`] deletes pods that do not tolerate a NoExecute taint of their node, at once
//! or after the smallest matching `tolerationSeconds` counted from the taint's `timeAdded`.

use crate::controller_utils::{is_pod_ready, is_pod_terminal};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use orch_runtime::action::Action;
use orch_runtime::controller::{Caches, Controller, Watches};
use orch_runtime::object::is_deleting;
use orch_types::events::{reason, ObjectRef};
use parking_lot::Mutex;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// `node.kubernetes.io/not-ready`.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// `node.kubernetes.io/unreachable`.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// `node.kubernetes.io/unschedulable`.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// `node.kubernetes.io/memory-pressure`.
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// `node.kubernetes.io/disk-pressure`.
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// `node.kubernetes.io/pid-pressure`.
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// `node.kubernetes.io/network-unavailable`.
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
/// The namespace of node heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

const MANAGED: &[&str] = &[
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    TAINT_MEMORY_PRESSURE,
    TAINT_DISK_PRESSURE,
    TAINT_PID_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
];

/// Configuration (upstream kube-controller-manager flags).
#[derive(Debug, Clone)]
pub struct NodeLifecycleConfig {
    /// `--node-monitor-grace-period`.
    pub grace_period: SignedDuration,
    /// `--node-startup-grace-period`.
    pub startup_grace_period: SignedDuration,
    /// `--node-eviction-rate` (nodes per second per zone).
    pub eviction_qps: f64,
    /// `--secondary-node-eviction-rate`.
    pub secondary_eviction_qps: f64,
    /// `--large-cluster-size-threshold`.
    pub large_cluster_threshold: usize,
    /// `--unhealthy-zone-threshold`.
    pub unhealthy_zone_threshold: f64,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        Self {
            grace_period: SignedDuration::from_secs(50),
            startup_grace_period: SignedDuration::from_secs(60),
            eviction_qps: 0.1,
            secondary_eviction_qps: 0.01,
            large_cluster_threshold: 50,
            unhealthy_zone_threshold: 0.55,
        }
    }
}

/// A zone's health (`ZoneState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    /// Fewer unhealthy nodes than the threshold.
    Normal,
    /// Many unhealthy nodes: evictions slowed or stopped.
    PartialDisruption,
    /// No healthy node.
    FullDisruption,
}

#[derive(Debug, Clone)]
struct Health {
    probe: Timestamp,
    heartbeat: Option<Timestamp>,
    lease_renew: Option<Timestamp>,
}

/// The controller's memory across passes.
#[derive(Debug, Default)]
pub struct NodeLifecycle {
    /// Configuration.
    pub config: NodeLifecycleConfig,
    health: HashMap<String, Health>,
    zones: BTreeMap<String, ZoneState>,
    next_taint: BTreeMap<String, Timestamp>,
}

fn cond<'a>(n: &'a Node, t: &str) -> Option<&'a NodeCondition> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
}

fn cond_status(n: &Node, t: &str) -> Option<String> {
    cond(n, t).map(|c| c.status.clone())
}

/// Zone key (region and zone labels), `""` when unlabelled.
pub fn zone_of(n: &Node) -> String {
    let l = n.metadata.labels.clone().unwrap_or_default();
    let region = l
        .get("topology.kubernetes.io/region")
        .cloned()
        .unwrap_or_default();
    let zone = l
        .get("topology.kubernetes.io/zone")
        .cloned()
        .unwrap_or_default();
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:{zone}")
    }
}

fn taint(key: &str, effect: &str, now: Option<Timestamp>) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        value: None,
        time_added: now.map(Time),
    }
}

impl NodeLifecycle {
    /// A controller with `config`.
    pub fn new(config: NodeLifecycleConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    /// Current zone states.
    pub fn zone_states(&self) -> &BTreeMap<String, ZoneState> {
        &self.zones
    }

    /// One pass over all nodes. `lease` finds a node's Lease; `pods_on` its pods.
    pub fn monitor(
        &mut self,
        nodes: &[Arc<Node>],
        lease: &dyn Fn(&str) -> Option<Arc<Lease>>,
        pods_on: &dyn Fn(&str) -> Vec<Arc<Pod>>,
        now: Timestamp,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        // Each node with the status patch (and event) of this pass, if it went silent.
        let mut effective: Vec<(Arc<Node>, Node, Vec<Action>)> = Vec::new();
        for n in nodes {
            let name = n.metadata.name.clone().unwrap_or_default();
            let mut updated = n.as_ref().clone();
            let mut health = Vec::new();
            if let Some(a) = self.update_health(&mut updated, lease(&name).as_deref(), now) {
                health.push(a);
                if cond_status(n, "Ready").as_deref() == Some("True") {
                    health.push(Action::normal(
                        ObjectRef::of(n.as_ref()),
                        reason::NODE_NOT_READY,
                        format!("Node {name} status is now: NodeNotReady"),
                    ));
                }
            }
            effective.push((n.clone(), updated, health));
        }
        // Forget nodes that are gone (a set: a scan per node made the monitor quadratic).
        let present: std::collections::HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        self.health.retain(|k, _| present.contains(k.as_str()));
        // Zone states (computeZoneStateFunc).
        let mut per_zone: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (_, n, _) in &effective {
            let e = per_zone.entry(zone_of(n)).or_default();
            if cond_status(n, "Ready").as_deref() == Some("True") {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        self.zones = per_zone
            .iter()
            .map(|(z, (ready, not_ready))| {
                let total = ready + not_ready;
                let s = if *ready == 0 && *not_ready > 0 {
                    ZoneState::FullDisruption
                } else if *not_ready > 2
                    && (*not_ready as f64) / (total as f64) >= self.config.unhealthy_zone_threshold
                {
                    ZoneState::PartialDisruption
                } else {
                    ZoneState::Normal
                };
                (z.clone(), s)
            })
            .collect();
        let all_full =
            !self.zones.is_empty() && self.zones.values().all(|s| *s == ZoneState::FullDisruption);
        for (orig, n, health) in effective {
            let (orig, n) = (&orig, &n);
            let zone = zone_of(n);
            let zone_size = per_zone.get(&zone).map_or(0, |(r, u)| r + u);
            let qps = match self.zones.get(&zone) {
                Some(ZoneState::PartialDisruption)
                    if zone_size <= self.config.large_cluster_threshold =>
                {
                    0.0
                }
                Some(ZoneState::PartialDisruption) => self.config.secondary_eviction_qps,
                _ => self.config.eviction_qps,
            };
            // The taints first: their patch is conditional on the resourceVersion read, which
            // the status patch of the same pass moves on. The other way round, the taints of
            // the pass a node turns Unknown were refused (409) and, the zone's NoExecute token
            // spent, only added 1/qps (10 s) later (upstream retries the conflict at once:
            // `SwapNodeControllerTaint`, `pkg/controller/nodelifecycle/
            // node_lifecycle_controller.go`).
            if let Some(a) = self.taints(orig, n, &zone, qps, all_full, now) {
                actions.push(a);
            }
            actions.extend(health);
            // MarkPodsNotReady.
            if cond_status(n, "Ready").as_deref() != Some("True") {
                for p in pods_on(n.metadata.name.as_deref().unwrap_or("")) {
                    if is_pod_ready(&p) && !is_pod_terminal(&p) {
                        actions.push(pod_not_ready(&p, now));
                    }
                }
            }
        }
        actions
    }

    /// tryUpdateNodeHealth: returns the status patch when the node went silent.
    fn update_health(
        &mut self,
        n: &mut Node,
        lease: Option<&Lease>,
        now: Timestamp,
    ) -> Option<Action> {
        let name = n.metadata.name.clone().unwrap_or_default();
        let heartbeat = cond(n, "Ready").and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
        let renew = lease.and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
        let h = self.health.entry(name.clone()).or_insert(Health {
            probe: now,
            heartbeat,
            lease_renew: renew,
        });
        if heartbeat != h.heartbeat {
            h.heartbeat = heartbeat;
            h.probe = now;
        }
        if renew.is_some() && renew != h.lease_renew {
            h.lease_renew = renew;
            h.probe = now;
        }
        let ready = cond(n, "Ready").cloned();
        let grace = if ready.is_none() {
            self.config.startup_grace_period
        } else {
            self.config.grace_period
        };
        if now.duration_since(h.probe) <= grace {
            return None;
        }
        let st = n.status.get_or_insert_with(Default::default);
        let conds = st.conditions.get_or_insert_with(Vec::new);
        let mut changed = false;
        if ready.is_none() {
            conds.push(NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: n.metadata.creation_timestamp.clone(),
                last_transition_time: Some(Time(now)),
            });
            changed = true;
        }
        for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
            if let Some(c) = conds.iter_mut().find(|c| c.type_ == t) {
                if c.status != "Unknown" {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = Some(Time(now));
                    changed = true;
                }
            }
        }
        if !changed {
            return None;
        }
        Some(Action::merge_patch::<Node>(
            None,
            &name,
            Some("status"),
            json!({"status": {"conditions": conds}}),
        ))
    }

    fn taints(
        &mut self,
        orig: &Node,
        n: &Node,
        zone: &str,
        qps: f64,
        all_full: bool,
        now: Timestamp,
    ) -> Option<Action> {
        let current: Vec<Taint> = orig
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let ready = cond_status(n, "Ready");
        let mut want: Vec<(String, &str)> = Vec::new();
        match ready.as_deref() {
            Some("False") => want.push((TAINT_NOT_READY.into(), "NoSchedule")),
            Some("Unknown") => want.push((TAINT_UNREACHABLE.into(), "NoSchedule")),
            _ => {}
        }
        for (c, t) in [
            ("MemoryPressure", TAINT_MEMORY_PRESSURE),
            ("DiskPressure", TAINT_DISK_PRESSURE),
            ("PIDPressure", TAINT_PID_PRESSURE),
            ("NetworkUnavailable", TAINT_NETWORK_UNAVAILABLE),
        ] {
            if cond_status(n, c).as_deref() == Some("True") {
                want.push((t.into(), "NoSchedule"));
            }
        }
        if n.spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
        {
            want.push((TAINT_UNSCHEDULABLE.into(), "NoSchedule"));
        }
        let no_exec = match ready.as_deref() {
            Some("False") => Some(TAINT_NOT_READY),
            Some("Unknown") => Some(TAINT_UNREACHABLE),
            _ => None,
        };
        if let Some(k) = no_exec.filter(|_| !all_full) {
            let has = current
                .iter()
                .any(|t| t.key == k && t.effect == "NoExecute");
            if has {
                want.push((k.into(), "NoExecute"));
            } else {
                let due = self.next_taint.get(zone).is_none_or(|t| *t <= now);
                if qps > 0.0 && due {
                    let step = SignedDuration::from_secs_f64(1.0 / qps);
                    self.next_taint
                        .insert(zone.into(), now.checked_add(step).unwrap_or(now));
                    want.push((k.into(), "NoExecute"));
                }
            }
        }
        // Build the new list: unmanaged taints untouched, managed ones as wanted (keeping the
        // original timeAdded of those already present).
        let mut next: Vec<Taint> = current
            .iter()
            .filter(|t| {
                !MANAGED.contains(&t.key.as_str())
                    || want.iter().any(|(k, e)| *k == t.key && *e == t.effect)
            })
            .cloned()
            .collect();
        for (k, e) in &want {
            if !next.iter().any(|t| t.key == *k && t.effect == *e) {
                let time = (*e == "NoExecute").then_some(now);
                next.push(taint(k, e, time));
            }
        }
        if next == current {
            return None;
        }
        Some(Action::merge_patch::<Node>(
            None,
            orig.metadata.name.as_deref().unwrap_or(""),
            None,
            json!({"metadata": {"resourceVersion": orig.metadata.resource_version}, "spec": {"taints": next}}),
        ))
    }
}

fn pod_not_ready(p: &Pod, now: Timestamp) -> Action {
    let mut conds = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for c in conds.iter_mut().filter(|c| c.type_ == "Ready") {
        c.status = "False".into();
        c.last_transition_time = Some(Time(now));
    }
    Action::merge_patch::<Pod>(
        p.metadata.namespace.as_deref(),
        p.metadata.name.as_deref().unwrap_or(""),
        Some("status"),
        json!({"status": {"conditions": conds}}),
    )
}

/// Taint-based eviction of the pods of one node; returns deletions and, for pods that tolerate
/// for a while, a requeue at the earliest deadline.
pub fn taint_eviction(node: &Node, pods: &[Arc<Pod>], now: Timestamp) -> Vec<Action> {
    let taints: Vec<&Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == "NoExecute")
        .collect();
    let mut actions = Vec::new();
    if taints.is_empty() {
        return actions;
    }
    let mut next: Option<Duration> = None;
    for p in pods {
        if is_deleting(&p.metadata) || is_pod_terminal(p) {
            continue;
        }
        let tols: Vec<&Toleration> = p
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_ref())
            .into_iter()
            .flatten()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "NoExecute")
            })
            .collect();
        // Deadline per taint: min tolerationSeconds of the tolerations that match it.
        let mut deadline: Option<Timestamp> = None;
        let mut forever = true;
        let mut untolerated = false;
        for t in &taints {
            // The scheduler's TaintToleration filter uses the same rule.
            let matching: Vec<&&Toleration> = tols
                .iter()
                .filter(|tol| orch_types::taints::tolerates(tol, t))
                .collect();
            if matching.is_empty() {
                untolerated = true;
                break;
            }
            let secs = matching
                .iter()
                .filter_map(|tol| tol.toleration_seconds)
                .min();
            if let Some(s) = secs {
                forever = false;
                let from = t.time_added.as_ref().map_or(now, |x| x.0);
                let at = from
                    .checked_add(SignedDuration::from_secs(s.max(0)))
                    .unwrap_or(from);
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
        }
        let evict_now = untolerated || (!forever && deadline.is_some_and(|d| d <= now));
        if evict_now {
            let ns = p.metadata.namespace.as_deref().unwrap_or("");
            let name = p.metadata.name.as_deref().unwrap_or("");
            actions.push(Action::merge_patch::<Pod>(
                Some(ns),
                name,
                Some("status"),
                json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
                    "reason": "DeletionByTaintManager", "message": "Taint manager: deleting due to NoExecute taint",
                    "lastTransitionTime": now.to_string()}]}}),
            ));
            actions.push(Action::normal(
                ObjectRef::of(p.as_ref()),
                reason::TAINT_MANAGER_EVICTION,
                format!("Marking for deletion Pod {ns}/{name}"),
            ));
            actions.push(Action::delete(p.as_ref()));
        } else if let Some(d) = deadline.filter(|_| !forever) {
            let wait = Duration::try_from(d.duration_since(now)).unwrap_or_default();
            next = Some(next.map_or(wait, |n| n.min(wait)));
        }
    }
    if let Some(n) = next {
        actions.push(Action::requeue(n));
    }
    actions
}

/// Pods by the node they are bound to (one pass over the pod cache).
fn pods_by_node(caches: &Caches) -> HashMap<String, Vec<Arc<Pod>>> {
    let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
    for p in caches.get::<Pod>().list() {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            match by_node.get_mut(n) {
                Some(v) => v.push(p),
                None => drop(by_node.insert(n.to_string(), vec![p])),
            }
        }
    }
    by_node
}

/// The node lifecycle controller (`nodelifecycle`) as a declaration: one `monitorNodeHealth`
/// pass every `--node-monitor-period` over nodes, their Leases and pods.
#[derive(Debug)]
pub struct NodeLifecycleController {
    state: Mutex<NodeLifecycle>,
    period: Duration,
}

impl NodeLifecycleController {
    /// A controller with `config`, passing every `period` (`--node-monitor-period`).
    pub fn new(config: NodeLifecycleConfig, period: Duration) -> Self {
        Self {
            state: Mutex::new(NodeLifecycle::new(config)),
            period,
        }
    }
}

impl Controller for NodeLifecycleController {
    fn name(&self) -> &'static str {
        "nodelifecycle"
    }

    fn component(&self) -> &'static str {
        "node-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.reads::<Node>()
            .reads::<Lease>()
            .reads::<Pod>()
            .initial_key("");
    }

    fn sync(&self, _key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let nodes = caches.get::<Node>().list();
        let by_node = pods_by_node(caches);
        let leases = caches.get::<Lease>();
        let lease = |n: &str| leases.get_in(Some(LEASE_NAMESPACE), n);
        let pods_on = |n: &str| by_node.get(n).cloned().unwrap_or_default();
        let mut actions = self.state.lock().monitor(&nodes, &lease, &pods_on, now);
        actions.push(Action::requeue(self.period));
        actions
    }
}

/// The taint eviction controller (`taint-eviction-controller`) as a declaration: a pass over
/// the nodes with a NoExecute taint whenever such a taint appears, every `period`, and when
/// the earliest `tolerationSeconds` runs out.
#[derive(Debug)]
pub struct TaintEvictionController {
    period: Duration,
}

impl TaintEvictionController {
    /// A controller passing at least every `period`.
    pub fn new(period: Duration) -> Self {
        Self { period }
    }
}

fn no_execute(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.effect == "NoExecute"))
}

impl Controller for TaintEvictionController {
    fn name(&self) -> &'static str {
        "taint-eviction-controller"
    }

    fn component(&self) -> &'static str {
        "taint-eviction-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<Node>(Arc::new(|c, _, keys| {
            if no_execute(c.object()) {
                keys.push(String::new());
            }
        }))
        .reads::<Pod>()
        .initial_key("");
    }

    fn sync(&self, _key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let tainted: Vec<Arc<Node>> = caches
            .get::<Node>()
            .list()
            .into_iter()
            .filter(|n| no_execute(n))
            .collect();
        let mut actions = Vec::new();
        let mut next = self.period;
        if !tainted.is_empty() {
            let by_node = pods_by_node(caches);
            for n in &tainted {
                let pods = by_node
                    .get(n.metadata.name.as_deref().unwrap_or(""))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for a in taint_eviction(n, pods, now) {
                    match a {
                        Action::Requeue(d) => next = next.min(d.max(Duration::from_millis(100))),
                        a => actions.push(a),
                    }
                }
            }
        }
        actions.push(Action::requeue(next));
        actions
    }
}

#[cfg(test)]
mod tests;
