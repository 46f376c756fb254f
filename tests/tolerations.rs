//! The scheduler and taint eviction agree on which tolerations tolerate a taint: both use
//! `orch_types::taints::tolerates`. Regression: node lifecycle used to read `operator: ""` as
//! "tolerates nothing" while the scheduler (and upstream) read it as `Equal`, so a pod could be
//! placed on a `NoExecute`-tainted node and then evicted from it at once.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use orch_controllers::nodelifecycle::taint_eviction;
use orch_scheduler::cycle_state::CycleState;
use orch_scheduler::framework::FilterPlugin;
use orch_scheduler::node_info::NodeInfo;
use orch_scheduler::plugins::taint_toleration::TaintToleration;
use orch_scheduler::pod_info::PodInfo;
use orch_scheduler::Snapshot;
use serde_json::{json, Value};
use std::sync::Arc;

/// Node `n` tainted `k=v:NoExecute`.
fn tainted_node() -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": "n"},
        "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoExecute"}]},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
    .unwrap()
}

/// Pod `name` bound to `n` with the given tolerations.
fn pod(name: &str, tolerations: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": name},
        "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "app"}],
                 "tolerations": tolerations}}))
    .unwrap()
}

fn scheduler_feasible(pod: &Pod, node: &Node) -> bool {
    TaintToleration
        .filter(
            &CycleState::default(),
            &PodInfo::new(pod.clone()).unwrap(),
            &NodeInfo::new(node.clone()).unwrap(),
            &Snapshot::new(),
        )
        .is_success()
}

fn evicted(pod: &Pod, node: &Node) -> bool {
    let actions = taint_eviction(node, &[Arc::new(pod.clone())], Timestamp::now());
    !actions.is_empty()
}

#[test]
fn empty_operator_is_equal_for_scheduler_and_eviction() {
    let node = tainted_node();
    let p = pod(
        "tolerant",
        json!([{"key": "k", "operator": "", "value": "v", "effect": "NoExecute"}]),
    );
    // The explicit empty operator survives decoding (it is not the same as an absent field).
    let tols = p.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
    assert_eq!(tols[0].operator.as_deref(), Some(""));

    assert!(scheduler_feasible(&p, &node), "scheduler rejects the pod");
    assert!(!evicted(&p, &node), "taint eviction evicts the pod");
}

#[test]
fn scheduler_and_eviction_agree_on_other_tolerations() {
    let node = tainted_node();
    let cases = [
        (json!([]), false),
        (
            json!([{"key": "k", "operator": "Equal", "value": "v"}]),
            true,
        ),
        (
            json!([{"key": "k", "value": "v", "effect": "NoExecute"}]),
            true,
        ),
        (
            json!([{"key": "k", "operator": "", "value": "w", "effect": "NoExecute"}]),
            false,
        ),
        (
            json!([{"key": "k", "operator": "Exists", "effect": "NoExecute"}]),
            true,
        ),
        (json!([{"operator": "Exists"}]), true),
        (
            json!([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]),
            false,
        ),
        (
            json!([{"key": "k", "operator": "Maybe", "value": "v"}]),
            false,
        ),
    ];
    for (i, (tols, tolerated)) in cases.into_iter().enumerate() {
        let p = pod(&format!("p{i}"), tols);
        assert_eq!(
            scheduler_feasible(&p, &node),
            tolerated,
            "case {i}: scheduler"
        );
        assert_eq!(evicted(&p, &node), !tolerated, "case {i}: eviction");
    }
}
