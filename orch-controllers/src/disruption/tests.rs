use super::*;
use crate::testutil::{labels, make_ready, pod, replica_set};
use k8s_openapi::api::apps::v1::{DeploymentSpec, StatefulSetSpec};
use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use orch_runtime::store::Writer;
use orch_types::clock::{Clock, ManualClock};

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn int(n: i32) -> IntOrString {
    IntOrString::Int(n)
}

fn pct(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

/// A budget `web` over `app=web` in `default`, at generation 1.
fn budget(
    min_available: Option<IntOrString>,
    max_unavailable: Option<IntOrString>,
) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("uid-pdb".into()),
            generation: Some(1),
            resource_version: Some("7".into()),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            min_available,
            max_unavailable,
            selector: Some(LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// `n` ready pods `web-0..` controlled by `(kind, name, uid)`.
fn ready_pods(n: usize, owner: Option<(&str, &str, &str)>) -> Vec<Arc<Pod>> {
    (0..n)
        .map(|i| {
            let mut p = pod(&format!("web-{i}"), &[("app", "web")], owner);
            make_ready(&mut p, "node-1", t(0));
            Arc::new(p)
        })
        .collect()
}

/// Workload caches holding `rs` (replicas `rs_replicas`, under Deployment `web` with
/// `deploy_replicas` when given) and StatefulSet `db` with 3 replicas.
fn workloads(rs_replicas: i32, deploy_replicas: Option<i32>) -> Workloads {
    let mut rss = Writer::<ReplicaSet>::new();
    let mut deps = Writer::<Deployment>::new();
    let mut sss = Writer::<StatefulSet>::new();
    let mut rs = replica_set("web-abc", rs_replicas, &[("app", "web")]);
    if let Some(n) = deploy_replicas {
        let d = Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("uid-deploy".into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(n),
                ..Default::default()
            }),
            status: None,
        };
        rs.metadata.owner_references = Some(vec![orch_runtime::object::controller_ref(
            "apps/v1",
            "Deployment",
            &d.metadata,
        )]);
        deps.apply(d);
    }
    rss.apply(rs);
    sss.apply(StatefulSet {
        metadata: ObjectMeta {
            name: Some("db".into()),
            namespace: Some("default".into()),
            uid: Some("uid-db".into()),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(3),
            ..Default::default()
        }),
        status: None,
    });
    Workloads {
        replication_controllers: Writer::new().store(),
        replica_sets: rss.store(),
        deployments: deps.store(),
        stateful_sets: sss.store(),
    }
}

fn none() -> Workloads {
    Workloads {
        replication_controllers: Writer::new().store(),
        replica_sets: Writer::new().store(),
        deployments: Writer::new().store(),
        stateful_sets: Writer::new().store(),
    }
}

/// The status `actions` write, if any.
fn written(actions: &[Action]) -> Option<PodDisruptionBudgetStatus> {
    actions.iter().find_map(|a| match a {
        Action::UpdateStatus { object, .. } => {
            let p: PodDisruptionBudget = object.to_typed().unwrap();
            p.status
        }
        _ => None,
    })
}

/// (expected, desired, current, allowed) of a written status.
fn counts(st: &PodDisruptionBudgetStatus) -> (i32, i32, i32, i32) {
    (
        st.expected_pods,
        st.desired_healthy,
        st.current_healthy,
        st.disruptions_allowed,
    )
}

fn condition(st: &PodDisruptionBudgetStatus) -> (String, String, String) {
    let c = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
        .expect("DisruptionAllowed condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn events(actions: &[Action]) -> Vec<(String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event { object, reason, .. } => Some((object.name.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn min_available_integer_counts_the_selected_pods() {
    let rs = Some(("ReplicaSet", "web-abc", "uid-web-abc"));
    let mut pods = ready_pods(3, rs);
    // Not ready, and one of another app: neither healthy; the other app is not selected.
    let mut starting = pod("web-3", &[("app", "web")], rs);
    starting.status.as_mut().unwrap().phase = Some("Running".into());
    pods.push(Arc::new(starting));
    pods.push(Arc::new(pod("db-0", &[("app", "db")], None)));
    let pdb = budget(Some(int(2)), None);
    let a = reconcile(&pdb, &pods, &none(), t(10));
    let st = written(&a).expect("status written");
    assert_eq!(counts(&st), (4, 2, 3, 1));
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(
        condition(&st),
        ("True".into(), SUFFICIENT_PODS.into(), String::new())
    );
    let c = st.conditions.as_ref().unwrap();
    assert_eq!(c[0].last_transition_time, Time(t(10)));
    assert_eq!(c[0].observed_generation, Some(1));

    // Written back, the same inputs write nothing.
    let mut seen = pdb.clone();
    seen.status = Some(st);
    assert!(written(&reconcile(&seen, &pods, &none(), t(11))).is_none());

    // minAvailable 3: no disruption, InsufficientPods, the transition time moves.
    seen.spec.as_mut().unwrap().min_available = Some(int(3));
    seen.metadata.generation = Some(2);
    let st = written(&reconcile(&seen, &pods, &none(), t(12))).expect("status");
    assert_eq!(counts(&st), (4, 3, 3, 0));
    assert_eq!(st.observed_generation, Some(2));
    assert_eq!(
        condition(&st),
        ("False".into(), INSUFFICIENT_PODS.into(), String::new())
    );
    assert_eq!(
        st.conditions.as_ref().unwrap()[0].last_transition_time,
        Time(t(12))
    );
}

#[test]
fn min_available_percent_counts_the_scale_of_the_deployment() {
    // Three of the Deployment's four replicas are up: 50% of 4 is 2, 30% rounds up to 2.
    let pods = ready_pods(3, Some(("ReplicaSet", "web-abc", "uid-web-abc")));
    let w = workloads(3, Some(4));
    for (min, want) in [
        ("50%", (4, 2, 3, 1)),
        ("30%", (4, 2, 3, 1)),
        ("80%", (4, 4, 3, 0)),
    ] {
        let a = reconcile(&budget(Some(pct(min)), None), &pods, &w, t(0));
        assert_eq!(counts(&written(&a).expect("status")), want, "{min}");
    }
    // A ReplicaSet without a Deployment: its own scale.
    let a = reconcile(
        &budget(Some(pct("50%")), None),
        &pods,
        &workloads(5, None),
        t(0),
    );
    assert_eq!(counts(&written(&a).unwrap()), (5, 3, 3, 0));
}

#[test]
fn max_unavailable_integer_and_percent() {
    let pods = ready_pods(5, Some(("ReplicaSet", "web-abc", "uid-web-abc")));
    let w = workloads(5, None);
    let cases = [
        (int(1), (5, 4, 5, 1)),
        (pct("25%"), (5, 3, 5, 2)), // 1.25 rounds up to 2
        (int(9), (5, 0, 5, 5)),     // never below 0 desired
    ];
    for (max, want) in cases {
        let a = reconcile(&budget(None, Some(max.clone())), &pods, &w, t(0));
        assert_eq!(counts(&written(&a).expect("status")), want, "{max:?}");
    }
    // StatefulSet pods: the StatefulSet's scale (3), one pod missing.
    let sts = ready_pods(2, Some(("StatefulSet", "db", "uid-db")));
    let a = reconcile(&budget(None, Some(int(1))), &sts, &w, t(0));
    assert_eq!(counts(&written(&a).unwrap()), (3, 2, 2, 0));
}

#[test]
fn an_evicted_pod_not_yet_gone_is_not_healthy_until_its_entry_expires() {
    let clock = ManualClock::new(t(0));
    let pods = ready_pods(3, None);
    let mut pdb = budget(Some(int(1)), None);
    let st = written(&reconcile(&pdb, &pods, &none(), clock.now())).unwrap();
    assert_eq!(st.disruptions_allowed, 2);
    // The eviction handler let web-0 and web-2 go; web-2 is already being deleted.
    let mut st = st;
    st.disruptions_allowed = 0;
    st.disrupted_pods = Some(
        [("web-0", t(5)), ("web-2", t(5)), ("gone", t(5))]
            .into_iter()
            .map(|(n, at)| (n.to_string(), Time(at)))
            .collect(),
    );
    pdb.status = Some(st);
    let mut pods = pods;
    let mut deleting = (*pods[2]).clone();
    deleting.metadata.deletion_timestamp = Some(Time(t(6)));
    pods[2] = Arc::new(deleting);

    clock.advance(Duration::from_secs(35));
    let a = reconcile(&pdb, &pods, &none(), clock.now());
    let st = written(&a).expect("status");
    // web-1 alone is healthy: web-0 is about to be deleted, web-2 is being deleted.
    assert_eq!(counts(&st), (3, 1, 1, 0));
    let kept: Vec<&String> = st.disrupted_pods.as_ref().unwrap().keys().collect();
    assert_eq!(
        kept,
        ["web-0"],
        "entries of deleting or missing pods are dropped"
    );
    // Looked at again when web-0's entry expires: 5 + 120 - 35 s.
    assert!(
        a.contains(&Action::Requeue(
            Duration::from_secs(90) + Duration::from_millis(1)
        )),
        "{a:?}"
    );

    // web-0 was never deleted: at expiry it counts again, with a NotDeleted warning on it.
    pdb.status = Some(st);
    clock.advance(Duration::from_secs(90));
    let a = reconcile(&pdb, &pods, &none(), clock.now());
    let st = written(&a).expect("status");
    assert_eq!(counts(&st), (3, 1, 2, 1));
    assert!(st.disrupted_pods.is_none());
    assert!(events(&a).contains(&("web-0".into(), "NotDeleted".into())));
    assert!(!a.iter().any(|a| matches!(a, Action::Requeue(_))));
}

#[test]
fn a_pod_whose_controller_has_no_scale_fails_the_sync() {
    let mut p = pod("batch-0", &[("app", "web")], None);
    p.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: "batch".into(),
        uid: "uid-batch".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    make_ready(&mut p, "node-1", t(0));
    let mut pods = ready_pods(2, None);
    pods.push(Arc::new(p));
    let mut pdb = budget(None, Some(int(1)));
    // It had allowed a disruption before: the failed sync takes it back and keeps the rest.
    pdb.status = Some(PodDisruptionBudgetStatus {
        disruptions_allowed: 1,
        current_healthy: 3,
        desired_healthy: 2,
        expected_pods: 3,
        observed_generation: Some(1),
        ..Default::default()
    });
    let a = reconcile(&pdb, &pods, &none(), t(0));
    let st = written(&a).expect("status");
    assert_eq!(counts(&st), (3, 2, 3, 0));
    assert_eq!(
        condition(&st),
        (
            "False".into(),
            SYNC_FAILED.into(),
            "jobs.batch does not implement the scale subresource".into()
        )
    );
    assert!(events(&a).contains(&("web".into(), "CalculateExpectedPodCountFailed".into())));
    // Nothing new: nothing written again.
    pdb.status = Some(st);
    assert!(written(&reconcile(&pdb, &pods, &none(), t(1))).is_none());

    // A controller with a scale that is not in the caches: "found no controllers".
    let orphaned = ready_pods(1, Some(("ReplicaSet", "web-old", "uid-web-old")));
    let a = reconcile(&budget(Some(pct("50%")), None), &orphaned, &none(), t(0));
    assert_eq!(
        condition(&written(&a).unwrap()).2,
        "found no controllers for pod \"web-0\""
    );
}

#[test]
fn unmanaged_pods_are_left_out_with_a_warning() {
    let mut pods = ready_pods(2, Some(("ReplicaSet", "web-abc", "uid-web-abc")));
    let mut bare = pod("bare", &[("app", "web")], None);
    make_ready(&mut bare, "node-1", t(0));
    pods.push(Arc::new(bare));
    let a = reconcile(
        &budget(None, Some(int(1))),
        &pods,
        &workloads(2, None),
        t(0),
    );
    assert!(events(&a).contains(&("web".into(), "UnmanagedPods".into())));
    // Expected from the ReplicaSet (2); the unmanaged pod still counts as healthy.
    assert_eq!(counts(&written(&a).unwrap()), (2, 1, 3, 2));
}

#[test]
fn selection_follows_policy_v1_and_no_pods_allow_nothing() {
    let p = pod("web-0", &[("app", "web")], None);
    let mut everything = budget(Some(int(0)), None);
    everything.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
    assert!(
        selects(&everything, &p),
        "an empty selector selects every pod"
    );
    let mut nothing = everything.clone();
    nothing.spec.as_mut().unwrap().selector = None;
    assert!(!selects(&nothing, &p), "a missing selector selects none");
    let mut elsewhere = p.clone();
    elsewhere.metadata.namespace = Some("other".into());
    assert!(!selects(&everything, &elsewhere));

    // minAvailable 0 over no pods: nothing expected, so nothing allowed.
    let a = reconcile(&budget(Some(int(0)), None), &[], &none(), t(0));
    assert_eq!(counts(&written(&a).unwrap()), (0, 0, 0, 0));
    assert!(events(&a).contains(&("web".into(), "NoPods".into())));
}
