//! Pod garbage collector (`pkg/controller/podgc/gc_controller.go`), one periodic pass:
//! - terminated pods (Succeeded/Failed) beyond `terminated_pod_threshold` (default 12500),
//!   oldest first;
//! - pods bound to a node that has not existed for `quarantine` (upstream re-checks after 40 s)
//!   are marked Failed with a `DisruptionTarget` condition and force-deleted;
//! - terminating pods that were never scheduled are force-deleted.

use crate::controller_utils::{delete_pod, is_pod_terminal};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, Pod};
use orch_runtime::action::Action;
use orch_runtime::controller::{Caches, Controller, Watches};
use orch_runtime::object::is_deleting;
use parking_lot::Mutex;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Configuration.
#[derive(Debug, Clone)]
pub struct PodGcConfig {
    /// `--terminated-pod-gc-threshold` (0 disables).
    pub terminated_pod_threshold: usize,
    /// How long a node must be missing before its pods are deleted.
    pub quarantine: SignedDuration,
}

impl Default for PodGcConfig {
    fn default() -> Self {
        Self {
            terminated_pod_threshold: 12_500,
            quarantine: SignedDuration::from_secs(40),
        }
    }
}

/// State across passes (when each missing node was first noticed).
#[derive(Debug, Default)]
pub struct PodGc {
    /// Configuration.
    pub config: PodGcConfig,
    missing_since: BTreeMap<String, Timestamp>,
}

fn force_delete(p: &Pod) -> Action {
    delete_pod(p, Some(0), None)
}

impl PodGc {
    /// A collector with `config`.
    pub fn new(config: PodGcConfig) -> Self {
        Self {
            config,
            missing_since: BTreeMap::new(),
        }
    }

    /// One pass over all pods and the names of existing nodes.
    pub fn reconcile(
        &mut self,
        pods: &[Arc<Pod>],
        nodes: &BTreeSet<String>,
        now: Timestamp,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        // Terminated pods over the threshold.
        let mut terminated: Vec<&Pod> = pods
            .iter()
            .map(Arc::as_ref)
            .filter(|p| is_pod_terminal(p))
            .collect();
        let th = self.config.terminated_pod_threshold;
        if th > 0 && terminated.len() > th {
            terminated.sort_by(|a, b| {
                let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                t(a).cmp(&t(b))
                    .then_with(|| a.metadata.name.cmp(&b.metadata.name))
            });
            let n = terminated.len() - th;
            for p in terminated.into_iter().take(n) {
                actions.push(force_delete(p));
            }
        }
        // Orphaned pods.
        let mut missing_now = BTreeSet::new();
        for p in pods {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            if node.is_empty() {
                if is_deleting(&p.metadata) {
                    actions.push(force_delete(p));
                }
                continue;
            }
            if nodes.contains(&node) {
                continue;
            }
            missing_now.insert(node.clone());
            let since = *self.missing_since.entry(node).or_insert(now);
            if now.duration_since(since) < self.config.quarantine {
                continue;
            }
            if !is_pod_terminal(p) {
                actions.push(Action::merge_patch::<Pod>(
                    p.metadata.namespace.as_deref(),
                    p.metadata.name.as_deref().unwrap_or(""),
                    Some("status"),
                    json!({"status": {"phase": "Failed", "conditions": [{
                        "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                        "message": "PodGC: node no longer exists",
                        "lastTransitionTime": now.to_string()}]}}),
                ));
            }
            actions.push(force_delete(p));
        }
        self.missing_since.retain(|n, _| missing_now.contains(n));
        actions
    }
}

/// How often the pod garbage collector passes (upstream `gcCheckPeriod` is 20 s; 10 s keeps
/// the 40 s quarantine tight).
pub const PASS_PERIOD: Duration = Duration::from_secs(10);

/// The pod garbage collector (`podgc`) as a declaration: one periodic pass over every pod and
/// the names of existing nodes.
#[derive(Debug)]
pub struct PodGcController {
    gc: Mutex<PodGc>,
}

impl PodGcController {
    /// A collector with `config`.
    pub fn new(config: PodGcConfig) -> Self {
        Self {
            gc: Mutex::new(PodGc::new(config)),
        }
    }
}

impl Controller for PodGcController {
    fn name(&self) -> &'static str {
        "podgc"
    }

    fn component(&self) -> &'static str {
        "pod-garbage-collector"
    }

    fn watches(&self, w: &mut Watches) {
        w.reads::<Pod>().reads::<Node>().initial_key("");
    }

    fn sync(&self, _key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let names: BTreeSet<String> = caches.get::<Node>().keys().into_iter().collect();
        let mut actions = self
            .gc
            .lock()
            .reconcile(&caches.get::<Pod>().list(), &names, now);
        actions.push(Action::requeue(PASS_PERIOD));
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{make_ready, pod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn deleted(a: &[Action]) -> Vec<String> {
        a.iter()
            .filter_map(|a| match a {
                Action::Delete {
                    name,
                    grace_period_seconds: Some(0),
                    ..
                } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn orphaned_pods_go_after_quarantine_and_terminated_over_threshold() {
        let mut gc = PodGc::new(PodGcConfig {
            terminated_pod_threshold: 1,
            ..Default::default()
        });
        let mut on_gone = pod("on-gone", &[], None);
        make_ready(&mut on_gone, "gone", Timestamp::UNIX_EPOCH);
        let mut on_live = pod("on-live", &[], None);
        make_ready(&mut on_live, "live", Timestamp::UNIX_EPOCH);
        let mut old_done = pod("old-done", &[], None);
        old_done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut new_done = pod("new-done", &[], None);
        new_done.status.as_mut().unwrap().phase = Some("Failed".into());
        new_done.metadata.creation_timestamp = Some(Time(Timestamp::from_second(100).unwrap()));
        let pods: Vec<Arc<Pod>> = [on_gone, on_live, old_done, new_done]
            .into_iter()
            .map(Arc::new)
            .collect();
        let nodes: BTreeSet<String> = ["live".to_string()].into();
        let t0 = Timestamp::from_second(1000).unwrap();
        assert_eq!(deleted(&gc.reconcile(&pods, &nodes, t0)), ["old-done"]);
        let t1 = Timestamp::from_second(1041).unwrap();
        let a = gc.reconcile(&pods, &nodes, t1);
        assert_eq!(deleted(&a), ["old-done", "on-gone"]);
        assert!(a
            .iter()
            .any(|a| matches!(a, Action::Patch { subresource: Some(s), .. } if s == "status")));
    }
}
