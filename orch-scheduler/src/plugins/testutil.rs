//! Helpers for the plugin table tests: pods and nodes from compact JSON.

use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::snapshot::Snapshot;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

/// A pod from a `spec` JSON (name `p`, namespace `default`) plus optional labels.
pub fn pod(spec: Value) -> PodInfo {
    pod_named("p", json!({}), spec)
}

/// A named pod with labels.
pub fn pod_named(name: &str, labels: Value, spec: Value) -> PodInfo {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c"}]);
    }
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": spec}))
    .unwrap();
    PodInfo::new(p).unwrap()
}

/// A node from name, labels and `spec`, with 4 CPU / 8Gi / 110 pods allocatable.
pub fn node(name: &str, labels: Value, spec: Value) -> NodeInfo {
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
    .unwrap();
    NodeInfo::new(n).unwrap()
}

/// A snapshot from nodes and bound pods.
pub fn snapshot(nodes: Vec<NodeInfo>, pods: Vec<PodInfo>) -> Snapshot {
    let mut s = Snapshot::new();
    for n in nodes {
        s.upsert_node((*n.node).clone()).unwrap();
    }
    for p in pods {
        s.upsert_pod_info(std::sync::Arc::new(p));
    }
    s
}
