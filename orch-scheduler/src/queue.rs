//! The scheduling queue (upstream `internal/queue/scheduling_queue.go`): an active heap ordered
//! by the QueueSort plugin, a backoff queue (1 s doubling to 10 s per attempt), an
//! unschedulable pool whose pods move back when a cluster event could help them (per rejecting
//! plugin), or after 5 minutes, and a gated pool for PreEnqueue rejections.
//! Time comes from a [`Clock`](orch_types::clock::Clock); nothing here sleeps.

use crate::framework::{PreEnqueuePlugin, QueueSortPlugin};
use crate::pod_info::PodInfo;
use jiff::{SignedDuration, Timestamp};
use orch_types::clock::SharedClock;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A pod in the queue.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    /// The pod.
    pub pod: Arc<PodInfo>,
    /// When it (re-)entered the queue; QueueSort's tie-breaker.
    pub timestamp: Timestamp,
    /// Insertion sequence (stable order for equal timestamps).
    pub seq: u64,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// Plugins that rejected it in its last attempt.
    pub unschedulable_plugins: Vec<String>,
    /// When its backoff ends.
    pub backoff_until: Option<Timestamp>,
}

/// A cluster change that may make pending pods schedulable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterEvent {
    /// A node was added.
    NodeAdd,
    /// A node changed (labels, taints, allocatable, unschedulable).
    NodeUpdate,
    /// A node was deleted.
    NodeDelete,
    /// A scheduled pod was added.
    AssignedPodAdd,
    /// A scheduled pod changed.
    AssignedPodUpdate,
    /// A scheduled pod was deleted.
    AssignedPodDelete,
    /// A PersistentVolumeClaim was added or changed.
    PvcChange,
    /// A PersistentVolume was added or changed.
    PvChange,
    /// A StorageClass was added or changed.
    StorageClassChange,
}

/// Which events can help a pod rejected by `plugin` (upstream `EventsToRegister`).
pub fn plugin_cares(plugin: &str, ev: ClusterEvent) -> bool {
    use ClusterEvent::*;
    match plugin {
        "NodeUnschedulable" | "TaintToleration" | "NodeAffinity" => {
            matches!(ev, NodeAdd | NodeUpdate)
        }
        "NodeName" => ev == NodeAdd,
        "NodePorts" => matches!(ev, NodeAdd | AssignedPodDelete),
        "NodeResourcesFit" => matches!(
            ev,
            NodeAdd | NodeUpdate | AssignedPodDelete | AssignedPodUpdate
        ),
        "VolumeBinding" => matches!(
            ev,
            NodeAdd | NodeUpdate | PvcChange | PvChange | StorageClassChange
        ),
        "PodTopologySpread" | "InterPodAffinity" => true,
        // Unknown (custom) plugins: any event may help.
        _ => true,
    }
}

/// Backoff and flush settings.
#[derive(Debug, Clone, Copy)]
pub struct QueueConfig {
    /// First backoff (1 s).
    pub initial_backoff: std::time::Duration,
    /// Cap (10 s).
    pub max_backoff: std::time::Duration,
    /// Time after which unschedulable pods are retried anyway (5 min).
    pub max_in_unschedulable: std::time::Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            initial_backoff: std::time::Duration::from_secs(1),
            max_backoff: std::time::Duration::from_secs(10),
            max_in_unschedulable: std::time::Duration::from_secs(300),
        }
    }
}

/// The queue.
pub struct SchedulingQueue {
    sort: Arc<dyn QueueSortPlugin>,
    pre_enqueue: Vec<Arc<dyn PreEnqueuePlugin>>,
    clock: SharedClock,
    config: QueueConfig,
    active: Vec<QueuedPod>,
    backoff: BTreeMap<(Timestamp, u64), QueuedPod>,
    unschedulable: HashMap<String, (Timestamp, QueuedPod)>,
    gated: HashMap<String, QueuedPod>,
    /// Where each active (`None`) or backoff (`Some(key)`) pod is, so that `contains` and
    /// `delete` of a pod that is not there (most updates: bound pods) do not scan the heap.
    located: HashMap<String, Option<(Timestamp, u64)>>,
    seq: u64,
}

impl std::fmt::Debug for SchedulingQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulingQueue")
            .field("active", &self.active.len())
            .field("backoff", &self.backoff.len())
            .field("unschedulable", &self.unschedulable.len())
            .field("gated", &self.gated.len())
            .finish()
    }
}

impl SchedulingQueue {
    /// A queue ordered by `sort`, admitting through `pre_enqueue`.
    pub fn new(
        sort: Arc<dyn QueueSortPlugin>,
        pre_enqueue: Vec<Arc<dyn PreEnqueuePlugin>>,
        clock: SharedClock,
        config: QueueConfig,
    ) -> Self {
        Self {
            sort,
            pre_enqueue,
            clock,
            config,
            active: Vec::new(),
            backoff: BTreeMap::new(),
            unschedulable: HashMap::new(),
            gated: HashMap::new(),
            located: HashMap::new(),
            seq: 0,
        }
    }

    /// True when a pod is ready to pop (after moving expired backoffs).
    pub fn has_active(&mut self) -> bool {
        self.flush_backoff();
        !self.active.is_empty()
    }

    /// True when the pod is anywhere in the queue.
    pub fn contains(&self, key: &str) -> bool {
        self.located.contains_key(key)
            || self.unschedulable.contains_key(key)
            || self.gated.contains_key(key)
    }

    /// Pods in activeQ / backoffQ / unschedulable / gated.
    pub fn lens(&self) -> (usize, usize, usize, usize) {
        (
            self.active.len(),
            self.backoff.len(),
            self.unschedulable.len(),
            self.gated.len(),
        )
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.active[a], &self.active[b]);
        if self.sort.less(x, y) {
            return true;
        }
        if self.sort.less(y, x) {
            return false;
        }
        x.seq < y.seq
    }

    fn push_active(&mut self, qp: QueuedPod) {
        self.located.insert(qp.pod.key.clone(), None);
        self.active.push(qp);
        let mut i = self.active.len() - 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.less(i, parent) {
                self.active.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.active.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < n && self.less(l, m) {
                m = l;
            }
            if r < n && self.less(r, m) {
                m = r;
            }
            if m == i {
                break;
            }
            self.active.swap(i, m);
            i = m;
        }
    }

    fn admit(&mut self, qp: QueuedPod) {
        for p in &self.pre_enqueue {
            if !p.pre_enqueue(&qp.pod).is_success() {
                self.gated.insert(qp.pod.key.clone(), qp);
                return;
            }
        }
        self.push_active(qp);
    }

    /// Adds a new pending pod (or replaces it, e.g. after its gates were removed).
    pub fn add(&mut self, pod: Arc<PodInfo>) {
        let qp = self.enqueue_fresh(pod, 0);
        self.admit(qp);
    }

    /// Returns a pod whose binding failed (upstream `handleBindingCycleError`): it waits out
    /// the initial backoff before the next attempt instead of being retried at once.
    pub fn add_after_error(&mut self, pod: Arc<PodInfo>) {
        let qp = self.enqueue_fresh(pod, 1);
        self.requeue_unschedulable(qp, Vec::new());
    }

    /// Drops any queued entry of `pod` and wraps it as a new entry with `attempts` so far.
    fn enqueue_fresh(&mut self, pod: Arc<PodInfo>, attempts: u32) -> QueuedPod {
        self.delete(&pod.key);
        self.seq += 1;
        QueuedPod {
            pod,
            timestamp: self.clock.now(),
            seq: self.seq,
            attempts,
            unschedulable_plugins: Vec::new(),
            backoff_until: None,
        }
    }

    /// Removes a pod wherever it is.
    pub fn delete(&mut self, key: &str) -> bool {
        match self.located.remove(key) {
            Some(None) => {
                if let Some(i) = self.active.iter().position(|q| q.pod.key == key) {
                    self.active.swap_remove(i);
                    // Re-heapify (removal is rare compared to push/pop).
                    for j in (0..self.active.len() / 2).rev() {
                        self.sift_down(j);
                    }
                }
                true
            }
            Some(Some(k)) => {
                self.backoff.remove(&k);
                true
            }
            None => self.unschedulable.remove(key).is_some() || self.gated.remove(key).is_some(),
        }
    }

    /// Pops the next pod to schedule (after moving expired backoffs to active).
    pub fn pop(&mut self) -> Option<QueuedPod> {
        self.flush_backoff();
        if self.active.is_empty() {
            return None;
        }
        let last = self.active.len() - 1;
        self.active.swap(0, last);
        let mut qp = self.active.pop()?;
        self.located.remove(&qp.pod.key);
        self.sift_down(0);
        qp.attempts += 1;
        Some(qp)
    }

    fn backoff_duration(&self, attempts: u32) -> std::time::Duration {
        let mut d = self.config.initial_backoff;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d >= self.config.max_backoff {
                return self.config.max_backoff;
            }
        }
        d.min(self.config.max_backoff)
    }

    /// Returns a pod that failed: to the unschedulable pool (rejected by `plugins`), or to
    /// backoff when it failed with an error or an event arrived during its attempt.
    pub fn requeue_unschedulable(&mut self, mut qp: QueuedPod, plugins: Vec<String>) {
        let now = self.clock.now();
        let d = SignedDuration::try_from(self.backoff_duration(qp.attempts)).unwrap_or_default();
        qp.backoff_until = now.checked_add(d).ok();
        qp.unschedulable_plugins = plugins;
        if qp.unschedulable_plugins.is_empty() {
            self.send_to_backoff(qp);
        } else {
            self.unschedulable.insert(qp.pod.key.clone(), (now, qp));
        }
    }

    fn send_to_backoff(&mut self, mut qp: QueuedPod) {
        let now = self.clock.now();
        match qp.backoff_until {
            Some(t) if t > now => {
                self.seq += 1;
                self.located.insert(qp.pod.key.clone(), Some((t, self.seq)));
                self.backoff.insert((t, self.seq), qp);
            }
            _ => {
                qp.timestamp = now;
                self.admit(qp)
            }
        }
    }

    /// Moves backoff pods whose time has come to active, and unschedulable pods older than
    /// `max_in_unschedulable` to backoff/active.
    pub fn flush_backoff(&mut self) {
        let now = self.clock.now();
        while let Some((&(t, s), _)) = self.backoff.iter().next() {
            if t > now {
                break;
            }
            if let Some(qp) = self.backoff.remove(&(t, s)) {
                self.located.remove(&qp.pod.key);
                self.admit(qp);
            }
        }
        let max = SignedDuration::try_from(self.config.max_in_unschedulable).unwrap_or_default();
        let stale: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|(_, (since, _))| since.checked_add(max).is_ok_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some((_, qp)) = self.unschedulable.remove(&k) {
                self.send_to_backoff(qp);
            }
        }
    }

    /// A cluster event: unschedulable pods rejected by a plugin that cares move to
    /// backoff/active. Returns how many moved.
    pub fn on_event(&mut self, ev: ClusterEvent) -> usize {
        let keys: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|(_, (_, qp))| qp.unschedulable_plugins.iter().any(|p| plugin_cares(p, ev)))
            .map(|(k, _)| k.clone())
            .collect();
        let n = keys.len();
        for k in keys {
            if let Some((_, qp)) = self.unschedulable.remove(&k) {
                self.send_to_backoff(qp);
            }
        }
        n
    }

    /// When the next backoff expires (for drivers that sleep).
    pub fn next_backoff(&self) -> Option<Timestamp> {
        self.backoff.keys().next().map(|(t, _)| *t)
    }

    /// When a waiting pod next moves to active on time alone: the earliest of the next
    /// backoff expiry and the next `max_in_unschedulable` flush of the unschedulable pool
    /// (for executors on a virtual clock, which advance it to this time).
    pub fn next_due(&self) -> Option<Timestamp> {
        let max = SignedDuration::try_from(self.config.max_in_unschedulable).unwrap_or_default();
        let flush = self
            .unschedulable
            .values()
            .filter_map(|(since, _)| since.checked_add(max).ok())
            .min();
        match (self.next_backoff(), flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::priority_sort::PrioritySort;
    use crate::plugins::scheduling_gates::SchedulingGates;
    use crate::plugins::testutil::pod_named;
    use orch_types::clock::ManualClock;
    use serde_json::json;
    use std::time::Duration;

    fn queue(clock: &ManualClock) -> SchedulingQueue {
        SchedulingQueue::new(
            Arc::new(PrioritySort),
            vec![Arc::new(SchedulingGates)],
            Arc::new(clock.clone()),
            QueueConfig::default(),
        )
    }

    fn p(name: &str, prio: i32) -> Arc<PodInfo> {
        Arc::new(pod_named(name, json!({}), json!({"priority": prio})))
    }

    #[test]
    fn priority_then_fifo() {
        let clock = ManualClock::at_epoch_seconds(1000);
        let mut q = queue(&clock);
        q.add(p("low", 0));
        clock.advance(Duration::from_millis(1));
        q.add(p("high", 10));
        q.add(p("low2", 0));
        let order: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|x| x.pod.name.clone())
            .collect();
        assert_eq!(order, vec!["high", "low", "low2"]);
    }

    #[test]
    fn gated_pods_wait() {
        let clock = ManualClock::at_epoch_seconds(1000);
        let mut q = queue(&clock);
        q.add(Arc::new(pod_named(
            "g",
            json!({}),
            json!({"schedulingGates": [{"name": "x"}]}),
        )));
        assert!(q.pop().is_none());
        assert_eq!(q.lens().3, 1);
        q.add(p("g", 0)); // gate removed
        assert_eq!(q.pop().unwrap().pod.name, "g");
    }

    #[test]
    fn backoff_doubles_and_caps_and_events_move_pods() {
        let clock = ManualClock::at_epoch_seconds(1000);
        let mut q = queue(&clock);
        assert_eq!(q.backoff_duration(1), Duration::from_secs(1));
        assert_eq!(q.backoff_duration(3), Duration::from_secs(4));
        assert_eq!(q.backoff_duration(9), Duration::from_secs(10));
        q.add(p("a", 0));
        let qp = q.pop().unwrap();
        q.requeue_unschedulable(qp, vec!["NodeResourcesFit".into()]);
        assert_eq!(q.on_event(ClusterEvent::NodeUpdate), 1);
        // Still in backoff (1 s).
        assert!(q.pop().is_none());
        clock.advance(Duration::from_secs(1));
        let qp = q.pop().unwrap();
        assert_eq!(qp.attempts, 2);
        q.requeue_unschedulable(qp, vec!["TaintToleration".into()]);
        assert_eq!(q.on_event(ClusterEvent::AssignedPodDelete), 0);
        clock.advance(Duration::from_secs(301));
        assert!(q.pop().is_some(), "flushed after 5 minutes");
    }

    #[test]
    fn failed_binding_waits_out_the_backoff() {
        let clock = ManualClock::at_epoch_seconds(1000);
        let mut q = queue(&clock);
        q.add_after_error(p("a", 0));
        assert!(q.pop().is_none(), "not retried at once");
        assert_eq!(q.next_backoff(), Timestamp::from_second(1001).ok());
        clock.advance(Duration::from_secs(1));
        assert_eq!(q.pop().unwrap().pod.name, "a");
    }

    #[test]
    fn delete_and_contains_find_pods_wherever_they_are() {
        let clock = ManualClock::at_epoch_seconds(1000);
        let mut q = queue(&clock);
        q.add(p("active", 0));
        q.add(p("active2", 0));
        q.add_after_error(p("backoff", 0));
        q.add(p("third", 0));
        let qp = q.pop().unwrap();
        assert_eq!(qp.pod.name, "active");
        q.add(p("active", 0));
        let qp = q.pop().unwrap();
        assert_eq!(qp.pod.name, "active2");
        q.requeue_unschedulable(qp, vec!["NodeAffinity".into()]);
        for k in ["active", "backoff", "active2", "third"] {
            assert!(q.contains(&format!("default/{k}")), "{k}");
        }
        assert!(!q.contains("default/nope"));
        assert!(!q.delete("default/nope"));
        assert!(q.delete("default/backoff"));
        assert!(q.delete("default/active2"));
        assert!(!q.contains("default/backoff"));
        assert_eq!(q.next_backoff(), None);
        clock.advance(Duration::from_secs(10));
        let left: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|x| x.pod.name.clone())
            .collect();
        assert_eq!(left, vec!["third", "active"]);
        assert!(!q.contains("default/active"));
    }

    #[test]
    fn next_due_covers_backoff_and_the_unschedulable_flush() {
        let clock = ManualClock::at_epoch_seconds(1000);
        let mut q = queue(&clock);
        assert_eq!(q.next_due(), None);
        q.add(p("a", 0));
        let qp = q.pop().unwrap();
        q.requeue_unschedulable(qp, vec!["NodeResourcesFit".into()]);
        assert_eq!(q.next_due(), Timestamp::from_second(1300).ok());
        q.add_after_error(p("b", 0));
        assert_eq!(q.next_due(), Timestamp::from_second(1001).ok());
    }
}
