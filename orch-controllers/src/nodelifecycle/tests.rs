//! Node lifecycle tests on a manual clock.

use super::*;
use orch_types::testing::NodeBuilder;

fn node(name: &str, heartbeat: i64) -> Arc<Node> {
    let mut n = NodeBuilder::new(name)
        .ready(true)
        .label("topology.kubernetes.io/zone", "z1")
        .build();
    for c in n.status.as_mut().unwrap().conditions.as_mut().unwrap() {
        c.last_heartbeat_time = Some(Time(Timestamp::from_second(heartbeat).unwrap()));
    }
    n.metadata.resource_version = Some("7".into());
    Arc::new(n)
}

fn lease(renew: i64) -> Arc<Lease> {
    Arc::new(
        serde_json::from_value(
            json!({"metadata": {"name": "n", "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": "n", "leaseDurationSeconds": 40,
                     "renewTime": Timestamp::from_second(renew).unwrap().to_string()}}),
        )
        .unwrap(),
    )
}

fn ready_pod(name: &str, node: &str) -> Arc<Pod> {
    let mut p = crate::testutil::pod(name, &[], None);
    crate::testutil::make_ready(&mut p, node, Timestamp::UNIX_EPOCH);
    Arc::new(p)
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn taints_of(actions: &[Action]) -> Option<Vec<(String, String)>> {
    actions.iter().find_map(|a| match a {
        Action::Patch {
            subresource: None,
            patch,
            ..
        } => Some(
            patch.body()["spec"]["taints"]
                .as_array()?
                .iter()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap().to_string(),
                        t["effect"].as_str().unwrap().to_string(),
                    )
                })
                .collect(),
        ),
        _ => None,
    })
}

/// Applies the node patches of a pass to `n` (taints and conditions).
fn apply(n: &Node, actions: &[Action]) -> Node {
    let mut n = n.clone();
    for a in actions {
        if let Action::Patch {
            resource,
            patch,
            subresource,
            ..
        } = a
        {
            if resource.kind != "Node" {
                continue;
            }
            let b = patch.body();
            match subresource.as_deref() {
                None => {
                    n.spec.get_or_insert_with(Default::default).taints =
                        serde_json::from_value(b["spec"]["taints"].clone()).unwrap()
                }
                Some(_) => {
                    n.status.as_mut().unwrap().conditions =
                        serde_json::from_value(b["status"]["conditions"].clone()).unwrap()
                }
            }
        }
    }
    n
}

#[test]
fn silent_node_becomes_unknown_tainted_and_its_pods_not_ready() {
    let mut nl = NodeLifecycle::default();
    let n = node("n1", 0);
    let pods = vec![ready_pod("p", "n1")];
    let l = lease(0);
    let lookup = |_: &str| Some(l.clone());
    // n2 keeps posting status (a cluster where every node is down stops NoExecute tainting).
    let n2 = |t: i64| node("n2", t);
    let pods_on = |name: &str| {
        if name == "n1" {
            pods.clone()
        } else {
            Vec::new()
        }
    };
    assert!(nl
        .monitor(&[n.clone(), n2(0)], &lookup, &pods_on, at(0))
        .is_empty());
    // Lease renewed at 40: still healthy at 90.
    let l2 = lease(40);
    let lookup2 = |_: &str| Some(l2.clone());
    assert!(nl
        .monitor(&[n.clone(), n2(40)], &lookup2, &pods_on, at(40))
        .is_empty());
    assert!(nl
        .monitor(&[n.clone(), n2(90)], &lookup2, &pods_on, at(90))
        .is_empty());
    // 51 s after the last renewal observed.
    let actions = nl.monitor(&[n.clone(), n2(91)], &lookup2, &pods_on, at(91));
    let status = actions
        .iter()
        .find_map(|a| match a {
            Action::Patch {
                resource,
                subresource: Some(s),
                patch,
                ..
            } if s == "status" && resource.kind == "Node" => Some(patch.body().clone()),
            _ => None,
        })
        .expect("node status patch");
    let ready = status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("Unknown"), Some("NodeStatusUnknown"))
    );
    assert_eq!(
        taints_of(&actions).unwrap(),
        [
            (TAINT_UNREACHABLE.to_string(), "NoSchedule".to_string()),
            (TAINT_UNREACHABLE.to_string(), "NoExecute".to_string())
        ]
    );
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Patch { resource, .. } if resource.kind == "Pod")));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Event { reason, .. } if reason == "NodeNotReady")));
    // The kubelet comes back: Ready=True with a new heartbeat; taints go away.
    let tainted = apply(&n, &actions);
    let mut back_n = node("n1", 100).as_ref().clone();
    back_n.spec = tainted.spec.clone();
    let actions = nl.monitor(
        &[Arc::new(back_n), n2(100)],
        &lookup2,
        &|_: &str| Vec::new(),
        at(100),
    );
    assert_eq!(taints_of(&actions).unwrap(), Vec::<(String, String)>::new());
}

#[test]
fn grace_period_is_configurable_and_unschedulable_maps_to_taint() {
    let mut nl = NodeLifecycle::new(NodeLifecycleConfig {
        grace_period: SignedDuration::from_secs(10),
        ..Default::default()
    });
    let mut n = node("n1", 0).as_ref().clone();
    n.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
    let n = Arc::new(n);
    let none = |_: &str| None;
    let no_pods = |_: &str| Vec::new();
    let a = nl.monitor(&[n.clone(), node("n2", 0)], &none, &no_pods, at(0));
    assert_eq!(
        taints_of(&a).unwrap(),
        [(TAINT_UNSCHEDULABLE.to_string(), "NoSchedule".to_string())]
    );
    let a = nl.monitor(&[n.clone(), node("n2", 11)], &none, &no_pods, at(11));
    assert!(taints_of(&a)
        .unwrap()
        .contains(&(TAINT_UNREACHABLE.to_string(), "NoExecute".to_string())));
}

#[test]
fn no_execute_tainting_is_rate_limited_per_zone_and_stops_in_full_disruption() {
    let mut nl = NodeLifecycle::default();
    let none = |_: &str| None;
    let no_pods = |_: &str| Vec::new();
    let mut nodes: Vec<Arc<Node>> = (0..10).map(|i| node(&format!("n{i}"), 0)).collect();
    assert!(nl.monitor(&nodes, &none, &no_pods, at(0)).is_empty());
    // n0 and n1 stop; the other 8 keep heartbeating.
    for (i, n) in nodes.iter_mut().enumerate().skip(2) {
        *n = node(&format!("n{i}"), 60);
    }
    let a = nl.monitor(&nodes, &none, &no_pods, at(60));
    let no_exec = |a: &[Action]| {
        a.iter()
            .filter(|x| matches!(x, Action::Patch { subresource: None, patch, .. } if patch.body().to_string().contains("NoExecute")))
            .count()
    };
    assert_eq!(no_exec(&a), 1, "0.1 qps: one node per 10 s");
    assert_eq!(nl.zone_states().get("z1:"), None);
    assert_eq!(nl.zone_states().get(":z1"), Some(&ZoneState::Normal));
    // Everything down: full disruption everywhere, no NoExecute taints at all.
    let mut nl = NodeLifecycle::default();
    let nodes: Vec<Arc<Node>> = (0..3).map(|i| node(&format!("n{i}"), 0)).collect();
    let _ = nl.monitor(&nodes, &none, &no_pods, at(0));
    let a = nl.monitor(&nodes, &none, &no_pods, at(60));
    assert_eq!(no_exec(&a), 0);
    assert_eq!(
        nl.zone_states().get(":z1"),
        Some(&ZoneState::FullDisruption)
    );
}

#[test]
fn taint_eviction_honours_toleration_seconds() {
    let mut n = NodeBuilder::new("n1").build();
    n.spec.get_or_insert_with(Default::default).taints =
        Some(vec![taint(TAINT_UNREACHABLE, "NoExecute", Some(at(100)))]);
    let plain = ready_pod("plain", "n1");
    let mut tolerant = ready_pod("tolerant", "n1").as_ref().clone();
    tolerant.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
        key: Some(TAINT_UNREACHABLE.into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: Some(300),
        value: None,
    }]);
    let mut forever = ready_pod("forever", "n1").as_ref().clone();
    forever.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
        operator: Some("Exists".into()),
        ..Default::default()
    }]);
    let pods = vec![plain, Arc::new(tolerant), Arc::new(forever)];
    let deleted = |a: &[Action]| -> Vec<String> {
        a.iter()
            .filter_map(|x| match x {
                Action::Delete { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    };
    let a = taint_eviction(&n, &pods, at(150));
    assert_eq!(deleted(&a), ["plain"]);
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Requeue(d) if *d == Duration::from_secs(250))));
    let a = taint_eviction(&n, &pods[1..], at(400));
    assert_eq!(deleted(&a), ["tolerant"]);
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Event { reason, .. } if reason == "TaintManagerEviction")));
}

#[test]
fn pressure_conditions_map_to_no_schedule_taints() {
    // upstream TaintNodesByCondition: MemoryPressure/DiskPressure/PIDPressure=True → NoSchedule
    let mut nl = NodeLifecycle::new(NodeLifecycleConfig::default());
    let mut n = node("n1", 0).as_ref().clone();
    let conds = n
        .status
        .as_mut()
        .unwrap()
        .conditions
        .get_or_insert_with(Vec::new);
    for (t, s) in [
        ("MemoryPressure", "True"),
        ("DiskPressure", "True"),
        ("PIDPressure", "False"),
    ] {
        conds.retain(|c| c.type_ != t);
        conds.push(NodeCondition {
            type_: t.into(),
            status: s.into(),
            last_heartbeat_time: Some(Time(at(0))),
            ..Default::default()
        });
    }
    let none = |_: &str| None;
    let no_pods = |_: &str| Vec::new();
    let a = nl.monitor(&[Arc::new(n)], &none, &no_pods, at(1));
    let mut taints = taints_of(&a).unwrap();
    taints.sort();
    assert_eq!(
        taints,
        [
            (TAINT_DISK_PRESSURE.to_string(), "NoSchedule".to_string()),
            (TAINT_MEMORY_PRESSURE.to_string(), "NoSchedule".to_string()),
        ]
    );
}

#[test]
fn taints_of_a_node_turning_unknown_are_patched_before_its_status() {
    // The taints patch is conditional on the node's resourceVersion; the status patch of the
    // same pass moves it on, so it must come second or the taints are refused with a conflict.
    let mut nl = NodeLifecycle::new(NodeLifecycleConfig {
        grace_period: SignedDuration::from_secs(10),
        ..Default::default()
    });
    let none = |_: &str| None;
    let no_pods = |_: &str| Vec::new();
    assert!(nl
        .monitor(&[node("n1", 0), node("n2", 0)], &none, &no_pods, at(0))
        .is_empty());
    let a = nl.monitor(&[node("n1", 0), node("n2", 11)], &none, &no_pods, at(11));
    let index = |status: bool| {
        a.iter()
            .position(|x| {
                matches!(x, Action::Patch { resource, subresource, .. }
                    if resource.kind == "Node" && subresource.is_some() == status)
            })
            .expect("a node patch")
    };
    assert!(taints_of(&a)
        .unwrap()
        .contains(&(TAINT_UNREACHABLE.to_string(), "NoExecute".to_string())));
    assert!(index(false) < index(true), "taints before status: {a:?}");
}
