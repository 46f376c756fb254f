//! Property: a pod is never placed on a node where any enabled filter fails — checked with the
//! plugins themselves and with independent arithmetic for resources, taints, cordons,
//! selectors and host ports.

use k8s_openapi::api::core::v1::{Node, Pod};
use orch_scheduler::pod_info::PodInfo;
use orch_scheduler::profile::Profile;
use orch_scheduler::scheduler::fits_on;
use orch_scheduler::{Scheduler, Snapshot};
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;

#[derive(Debug, Clone)]
struct NodeSpec {
    cpu_m: i64,
    pods: i64,
    taint: Option<usize>,
    cordoned: bool,
    zone: usize,
}

#[derive(Debug, Clone)]
struct PodSpec {
    cpu_m: i64,
    tolerate: Option<usize>,
    zone_selector: Option<usize>,
    host_port: Option<i32>,
    anti: bool,
}

const TAINTS: [&str; 3] = ["gpu", "spot", "infra"];

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (
        500i64..4000,
        1i64..6,
        prop::option::of(0usize..3),
        prop::bool::weighted(0.2),
        0usize..3,
    )
        .prop_map(|(cpu_m, pods, taint, cordoned, zone)| NodeSpec {
            cpu_m,
            pods,
            taint,
            cordoned,
            zone,
        })
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        0i64..1500,
        prop::option::of(0usize..3),
        prop::option::of(0usize..3),
        prop::option::of(8080i32..8083),
        any::<bool>(),
    )
        .prop_map(
            |(cpu_m, tolerate, zone_selector, host_port, anti)| PodSpec {
                cpu_m,
                tolerate,
                zone_selector,
                host_port,
                anti,
            },
        )
}

fn node(i: usize, n: &NodeSpec) -> Node {
    let taints: Vec<_> = n
        .taint
        .iter()
        .map(|t| json!({"key": TAINTS[*t], "value": "true", "effect": "NoSchedule"}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("n{i}"), "labels": {"zone": format!("z{}", n.zone), "kubernetes.io/hostname": format!("n{i}")}},
        "spec": {"unschedulable": n.cordoned, "taints": taints},
        "status": {"allocatable": {"cpu": format!("{}m", n.cpu_m), "memory": "8Gi", "pods": n.pods.to_string()}}}))
    .unwrap()
}

fn pod(i: usize, p: &PodSpec) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "app",
        "resources": {"requests": {"cpu": format!("{}m", p.cpu_m)}}}]});
    if let Some(hp) = p.host_port {
        spec["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": hp}]);
    }
    if let Some(t) = p.tolerate {
        spec["tolerations"] =
            json!([{"key": TAINTS[t], "operator": "Exists", "effect": "NoSchedule"}]);
    }
    if let Some(z) = p.zone_selector {
        spec["nodeSelector"] = json!({"zone": format!("z{z}")});
    }
    if p.anti {
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"anti": "yes"}}, "topologyKey": "kubernetes.io/hostname"}]}});
    }
    let labels = if p.anti {
        json!({"anti": "yes"})
    } else {
        json!({})
    };
    serde_json::from_value(json!({"metadata": {"name": format!("p{i}"), "namespace": "default", "labels": labels}, "spec": spec})).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn placements_pass_every_filter(nodes in prop::collection::vec(node_spec(), 1..8), pods in prop::collection::vec(pod_spec(), 1..25)) {
        let mut snap = Snapshot::new();
        for (i, n) in nodes.iter().enumerate() {
            snap.upsert_node(node(i, n)).unwrap();
        }
        let profile = Profile::default();
        let mut s = Scheduler::default();
        for (i, p) in pods.iter().enumerate() {
            let info = PodInfo::new(pod(i, p)).unwrap();
            let d = s.schedule(&info, &mut snap);
            if let Some(n) = d.node() {
                let idx = snap.node_index(n).unwrap();
                // The plugins agree on the chosen node (fresh cycle state).
                let st = fits_on(&profile, &info, &snap, idx);
                prop_assert!(st.is_success(), "{} placed on {} but {:?}", info.key, n, st);
                // Independent checks.
                let ni = snap.node(idx);
                let spec = &nodes[idx];
                prop_assert!(ni.requested.milli_cpu + p.cpu_m <= spec.cpu_m);
                prop_assert!((ni.pods.len() as i64) < spec.pods);
                prop_assert!(!spec.cordoned);
                if let Some(t) = spec.taint { prop_assert_eq!(p.tolerate, Some(t)); }
                if let Some(z) = p.zone_selector { prop_assert_eq!(spec.zone, z); }
                if let Some(hp) = p.host_port {
                    prop_assert!(!ni.used_ports.iter().any(|u| u.port == hp));
                }
                if p.anti {
                    prop_assert!(!ni.pods.iter().any(|e| e.labels.get("anti").is_some_and(|v| v == "yes")));
                }
                snap.upsert_pod_info(Arc::new(info.bound_to(n)));
            }
        }
    }
}
