use super::*;
use orch_runtime::store::Writer;
use orch_types::dynamic::DynamicObject;
use orch_types::registry::ApiResource;
use serde_json::json;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

/// A running, ready pod `name` of `app=web` started at t(0), ready since t(5), its one
/// container requesting `cpu`.
fn pod(name: &str, cpu: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx",
                 "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]},
        "status": {"phase": "Running", "startTime": t(0).to_string(),
                   "conditions": [{"type": "Ready", "status": "True",
                                   "lastTransitionTime": t(5).to_string()}]},
    }))
    .unwrap()
}

fn pending(name: &str) -> Pod {
    let mut p = pod(name, "1");
    p.status = Some(serde_json::from_value(json!({"phase": "Pending"})).unwrap());
    p
}

fn usage(name: &str, cpu: &str) -> PodMetrics {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "timestamp": t(600).to_string(), "window": "10s",
        "containers": [{"name": "app", "usage": {"cpu": cpu, "memory": "32Mi"}}],
    }))
    .unwrap()
}

fn store<K: orch_runtime::object::Object>(items: Vec<K>) -> Store<K> {
    let mut w = Writer::new();
    for i in items {
        w.apply(i);
    }
    w.store()
}

fn info(pods: &[&Pod], metrics: Vec<PodMetrics>) -> PodMetricsInfo {
    pod_metrics_info(pods, &store(metrics), "cpu", None)
}

const NOW: i64 = 610;

fn replicas(
    current: i32,
    target: Target,
    pods: &[Pod],
    metrics: Vec<PodMetrics>,
) -> Result<Proposal, String> {
    let pods: Vec<&Pod> = pods.iter().collect();
    let m = info(&pods, metrics);
    resource_replicas(
        current,
        target,
        "cpu",
        None,
        &pods,
        m,
        t(NOW),
        &HpaConfig::default(),
    )
}

#[test]
fn utilization_above_target_scales_by_the_ratio() {
    let pods = [pod("a", "500m"), pod("b", "500m")];
    let p = replicas(
        2,
        Target::Utilization(50),
        &pods,
        vec![usage("a", "500m"), usage("b", "400m")],
    )
    .unwrap();
    // (900m / 1000m) = 90 % of request, 1.8× the 50 % target: ceil(1.8 × 2) = 4.
    assert_eq!(
        p,
        Proposal {
            replicas: 4,
            utilization: Some(90),
            average_milli: 450
        }
    );
}

#[test]
fn within_tolerance_nothing_changes() {
    let pods = [pod("a", "1"), pod("b", "1")];
    let p = replicas(
        2,
        Target::Utilization(50),
        &pods,
        vec![usage("a", "540m"), usage("b", "500m")],
    )
    .unwrap();
    assert_eq!((p.replicas, p.utilization), (2, Some(52)));
    // 44 % is 0.88 of the target: outside the 0.1 tolerance, so down to ceil(0.88 × 2) = 2.
    let p = replicas(
        3,
        Target::Utilization(50),
        &[pod("a", "1"), pod("b", "1"), pod("c", "1")],
        vec![usage("a", "100m"), usage("b", "100m"), usage("c", "100m")],
    )
    .unwrap();
    assert_eq!((p.replicas, p.utilization), (1, Some(10)));
}

#[test]
fn missing_pods_hold_a_scale_down_at_their_request() {
    // a uses 10 %; b has no figure. Counting b at 100 % of its request makes 55 %, above
    // the 50 % target: the direction would flip, so nothing changes.
    let pods = [pod("a", "1"), pod("b", "1")];
    let p = replicas(2, Target::Utilization(50), &pods, vec![usage("a", "100m")]).unwrap();
    assert_eq!(p.replicas, 2);
}

#[test]
fn pending_pods_count_as_idle_on_a_scale_up() {
    let pods = [pod("a", "1"), pending("b"), pending("c"), pending("d")];
    let p = replicas(4, Target::Utilization(50), &pods, vec![usage("a", "1")]).unwrap();
    // ratio 2.0 on a alone; with b, c, d at 0: 25 % → 0.5, the direction flips: no change.
    assert_eq!(p.replicas, 4);
    let pods = [pod("a", "1"), pending("b")];
    let p = replicas(2, Target::Utilization(50), &pods, vec![usage("a", "1500m")]).unwrap();
    // 150 % alone is 3×; with b at 0 it is 75 % → 1.5 × 2 pods = 3.
    assert_eq!(p.replicas, 3);
}

#[test]
fn cpu_figures_taken_before_readiness_settled_are_not_trusted() {
    let mut young = pod("a", "1");
    let st = young.status.as_mut().unwrap();
    st.start_time = Some(Time(t(NOW - 60)));
    st.conditions.as_mut().unwrap()[0].last_transition_time = Some(Time(t(NOW - 5)));
    // The figure (sampled at t(600) over 10 s) predates ready-time + window: unready.
    let pods = [young, pod("b", "1")];
    let p = replicas(
        2,
        Target::Utilization(50),
        &pods,
        vec![usage("a", "1"), usage("b", "1500m")],
    )
    .unwrap();
    // b alone is 150 % (3× the target); a counts as 0 on the scale up: 75 % → 1.5 × 2 = 3.
    assert_eq!(p.replicas, 3);
}

#[test]
fn average_value_targets_use_the_raw_figure() {
    let pods = [pod("a", "1"), pod("b", "1")];
    let p = replicas(
        2,
        Target::AverageValue(200),
        &pods,
        vec![usage("a", "300m"), usage("b", "500m")],
    )
    .unwrap();
    assert_eq!(
        p,
        Proposal {
            replicas: 4,
            utilization: None,
            average_milli: 400
        }
    );
}

#[test]
fn errors_name_what_is_missing() {
    let mut no_request = pod("a", "1");
    no_request.spec.as_mut().unwrap().containers[0].resources = None;
    let e = replicas(
        1,
        Target::Utilization(50),
        &[no_request],
        vec![usage("a", "1")],
    )
    .unwrap_err();
    assert_eq!(e, "missing request for cpu in container app of Pod a");
    let e = replicas(1, Target::Utilization(50), &[], vec![]).unwrap_err();
    assert_eq!(
        e,
        "no pods returned by selector while calculating replica count"
    );
    let e = replicas(1, Target::Utilization(50), &[pending("a")], vec![]).unwrap_err();
    assert!(e.starts_with("did not receive metrics"), "{e}");
}

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u-web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": {}},
    }))
    .unwrap()
}

fn hpa(behavior: Option<serde_json::Value>) -> HorizontalPodAutoscaler {
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 10,
        "metrics": [{"type": "Resource",
                     "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
    });
    if let Some(b) = behavior {
        spec["behavior"] = b;
    }
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "generation": 1, "resourceVersion": "3"},
        "spec": spec,
    }))
    .unwrap()
}

/// A cluster of `n` pods of Deployment `web` (at `n` replicas) each using `cpu` of 1 CPU.
struct World {
    workloads: Workloads,
    custom: CustomScales,
    pods: Store<Pod>,
    metrics: Store<PodMetrics>,
}

fn world(n: usize, cpu: &str) -> World {
    let pods: Vec<Pod> = (0..n).map(|i| pod(&format!("p{i}"), "1")).collect();
    let metrics = (0..n).map(|i| usage(&format!("p{i}"), cpu)).collect();
    World {
        workloads: Workloads {
            replication_controllers: store(vec![]),
            replica_sets: store(vec![]),
            deployments: store(vec![deployment(n as i32)]),
            stateful_sets: store(vec![]),
        },
        custom: CustomScales::default(),
        pods: store(pods),
        metrics: store(metrics),
    }
}

fn run(
    h: &HorizontalPodAutoscaler,
    w: &World,
    hist: &mut History,
    at: i64,
) -> (Option<i32>, Vec<Action>) {
    let view = View {
        workloads: &w.workloads,
        custom: &w.custom,
        pods: &w.pods,
        metrics: &w.metrics,
    };
    let out = reconcile(h, &view, hist, t(at), &HpaConfig::default());
    if let Some((from, to)) = out.rescale {
        let keep = secs(3600);
        if to > from {
            record(&mut hist.scale_up, to - from, t(at), keep);
        } else {
            record(&mut hist.scale_down, from - to, t(at), keep);
        }
    }
    (out.rescale.map(|(_, to)| to), out.actions)
}

fn status_of(actions: &[Action]) -> HorizontalPodAutoscalerStatus {
    let obj = actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateStatus { object, .. } => Some(object.clone()),
            _ => None,
        })
        .expect("a status write");
    let h: HorizontalPodAutoscaler = obj.to_typed().unwrap();
    h.status.unwrap()
}

fn condition(st: &HorizontalPodAutoscalerStatus, type_: &str) -> (String, String) {
    let c = st
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap();
    (c.status.clone(), c.reason.clone().unwrap_or_default())
}

#[test]
fn rescale_patches_the_scale_subresource_and_reports_it() {
    let w = world(2, "900m");
    let mut hist = History::default();
    let (to, actions) = run(&hpa(None), &w, &mut hist, NOW);
    assert_eq!(to, Some(4)); // 90 % of request vs 50 %: ceil(1.8 × 2)
    let patch = actions.iter().find_map(|a| match a {
        Action::Patch {
            resource,
            name,
            subresource,
            patch,
            ..
        } => Some((
            resource.kind.to_string(),
            name.clone(),
            subresource.clone(),
            patch.clone(),
        )),
        _ => None,
    });
    assert_eq!(
        patch,
        Some((
            "Deployment".into(),
            "web".into(),
            Some("scale".into()),
            orch_types::client::Patch::Merge(json!({"spec": {"replicas": 4}}))
        ))
    );
    assert!(actions.iter().any(|a| matches!(a, Action::Event { reason, message, .. }
        if reason == "SuccessfulRescale"
            && message == "New size: 4; reason: cpu resource utilization (percentage of request) above target")));
    let st = status_of(&actions);
    assert_eq!((st.current_replicas, st.desired_replicas), (Some(2), 4));
    assert_eq!(st.last_scale_time, Some(Time(t(NOW))));
    assert_eq!(
        condition(&st, ABLE_TO_SCALE),
        ("True".into(), "SucceededRescale".into())
    );
    assert_eq!(
        condition(&st, SCALING_ACTIVE),
        ("True".into(), "ValidMetricFound".into())
    );
    assert_eq!(
        condition(&st, SCALING_LIMITED),
        ("False".into(), "DesiredWithinRange".into())
    );
    let cur = &st.current_metrics.unwrap()[0]
        .resource
        .clone()
        .unwrap()
        .current;
    assert_eq!(
        (cur.average_utilization, cur.average_value.clone()),
        (Some(90), Some(K8sQuantity("900m".into())))
    );
    assert!(matches!(actions.last(), Some(Action::Requeue(d)) if *d == Duration::from_secs(15)));
}

#[test]
fn without_behavior_a_scale_up_at_most_doubles_and_a_scale_down_waits_five_minutes() {
    // 1 pod at 500 % of its request (10× the target): limited to max(2 × 1, 4) = 4.
    let (to, actions) = run(&hpa(None), &world(1, "5"), &mut History::default(), NOW);
    assert_eq!(to, Some(4));
    assert_eq!(
        condition(&status_of(&actions), SCALING_LIMITED),
        ("True".into(), "ScaleUpLimit".into())
    );
    // 4 pods on target, then idle: the recommendations of 4 from a moment ago hold it.
    let mut hist = History::default();
    assert_eq!(run(&hpa(None), &world(4, "500m"), &mut hist, NOW).0, None);
    let idle = world(4, "100m");
    let (to, actions) = run(&hpa(None), &idle, &mut hist, NOW + 15);
    assert_eq!(to, None);
    assert_eq!(
        condition(&status_of(&actions), ABLE_TO_SCALE),
        ("True".into(), "ScaleDownStabilized".into())
    );
    // Five minutes after the last higher recommendation, down it goes (to the minimum, 1).
    assert_eq!(run(&hpa(None), &idle, &mut hist, NOW + 299).0, None);
    assert_eq!(run(&hpa(None), &idle, &mut hist, NOW + 301).0, Some(1));
}

#[test]
fn behavior_policies_bound_the_rate_over_their_period() {
    let b = json!({
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                      "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
    });
    let h = hpa(Some(b));
    let mut hist = History::default();
    let (to, actions) = run(&h, &world(2, "1"), &mut hist, NOW);
    assert_eq!(to, Some(3), "one pod per minute");
    assert_eq!(
        condition(&status_of(&actions), SCALING_LIMITED),
        ("True".into(), "ScaleUpLimit".into())
    );
    // 30 s later the minute's pod is spent.
    let (to, _) = run(&h, &world(3, "1"), &mut hist, NOW + 30);
    assert_eq!(to, None);
    // After the period, one more.
    let (to, _) = run(&h, &world(3, "1"), &mut hist, NOW + 61);
    assert_eq!(to, Some(4));
    // Idle: down by at most half of the replicas at the start of the minute.
    let (to, _) = run(&h, &world(4, "10m"), &mut hist, NOW + 122);
    assert_eq!(to, Some(2));
}

#[test]
fn behavior_stabilization_windows_hold_both_directions() {
    let b = json!({
        "scaleUp": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
        "scaleDown": {"stabilizationWindowSeconds": 120, "selectPolicy": "Max",
                      "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
    });
    let h = hpa(Some(b));
    let mut hist = History::default();
    // The first recommendation (the current 2) is in the scale-up window: no scale up yet.
    let (to, actions) = run(&h, &world(2, "1"), &mut hist, NOW);
    assert_eq!(to, None);
    assert_eq!(
        condition(&status_of(&actions), ABLE_TO_SCALE),
        ("True".into(), "ScaleUpStabilized".into())
    );
    let (to, _) = run(&h, &world(2, "1"), &mut hist, NOW + 61);
    assert_eq!(to, Some(4));
}

#[test]
fn limits_apply_before_metrics_and_zero_replicas_disable_scaling() {
    let mut hist = History::default();
    let (to, _) = run(&hpa(None), &world(12, "100m"), &mut hist, NOW);
    assert_eq!(to, Some(10), "above maxReplicas");
    let mut w = world(0, "1");
    w.workloads.deployments = store(vec![deployment(0)]);
    let (to, actions) = run(&hpa(None), &w, &mut hist, NOW);
    assert_eq!(to, None);
    assert_eq!(
        condition(&status_of(&actions), SCALING_ACTIVE),
        ("False".into(), "ScalingDisabled".into())
    );
}

#[test]
fn a_missing_target_or_an_unserved_metric_is_reported() {
    let mut w = world(2, "1");
    w.workloads.deployments = store(vec![]);
    let (_, actions) = run(&hpa(None), &w, &mut History::default(), NOW);
    let st = status_of(&actions);
    assert_eq!(
        condition(&st, ABLE_TO_SCALE),
        ("False".into(), "FailedGetScale".into())
    );
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Event { reason, message, .. }
        if reason == "FailedGetScale" && message == "deployments.apps \"web\" not found")));

    let mut h = hpa(None);
    h.spec.as_mut().unwrap().metrics = Some(vec![serde_json::from_value(json!({
        "type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}
    })).unwrap()]);
    let (to, actions) = run(&h, &world(2, "1"), &mut History::default(), NOW);
    assert_eq!(to, None);
    let st = status_of(&actions);
    assert_eq!(
        condition(&st, SCALING_ACTIVE),
        ("False".into(), "FailedGetPodsMetric".into())
    );
    assert_eq!(st.current_metrics, None);
}

#[test]
fn no_figures_at_all_leave_the_target_alone() {
    let mut w = world(2, "1");
    w.metrics = store(vec![]);
    let (to, actions) = run(&hpa(None), &w, &mut History::default(), NOW);
    assert_eq!(to, None);
    let st = status_of(&actions);
    assert_eq!(
        condition(&st, SCALING_ACTIVE),
        ("False".into(), "FailedGetResourceMetric".into())
    );
    assert_eq!(st.desired_replicas, 0, "as it was");
}

#[test]
fn scale_events_are_remembered_only_once_the_write_succeeded() {
    let b = json!({
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
    });
    let ctl = HorizontalController::default();
    let h = hpa(Some(b));
    let mut hist = History::default();
    let w = world(2, "1");
    let view = View {
        workloads: &w.workloads,
        custom: &w.custom,
        pods: &w.pods,
        metrics: &w.metrics,
    };
    let out = reconcile(&h, &view, &mut hist, t(NOW), &HpaConfig::default());
    hist.pending = out.rescale.map(|(a, b)| (a, b, t(NOW)));
    ctl.history.lock().insert("default/web".into(), hist);
    ctl.applied(
        "default/web",
        &Err(ClientError::Transport("connection reset".into())),
    );
    assert!(ctl.history.lock()["default/web"].scale_up.is_empty());
    ctl.history.lock().get_mut("default/web").unwrap().pending = Some((2, 3, t(NOW)));
    ctl.applied("default/web", &Ok(None));
    assert_eq!(
        ctl.history.lock()["default/web"].scale_up,
        vec![Stamped {
            value: 1,
            at: t(NOW)
        }]
    );
}

/// The CRD of `backups.ops.example.org` (`examples/crd/backup-crd.yaml`), with the scale
/// subresource on `.spec.workers` / `.status.workers` / `.status.selector` or without one.
fn backup_crd(scale: bool) -> DynamicObject {
    let mut v = json!({"name": "v1", "served": true, "storage": true,
                       "subresources": {"status": {}}});
    if scale {
        v["subresources"]["scale"] = json!({"specReplicasPath": ".spec.workers",
            "statusReplicasPath": ".status.workers", "labelSelectorPath": ".status.selector"});
    }
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "backups.ops.example.org"},
        "spec": {"group": "ops.example.org", "scope": "Namespaced", "versions": [v],
                 "names": {"plural": "backups", "kind": "Backup"}},
    }))
    .unwrap()
}

fn backup(workers: i64, selector: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "ops.example.org/v1", "kind": "Backup",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-backup"},
        "spec": {"database": "db", "workers": workers},
        "status": {"workers": workers, "selector": selector},
    }))
    .unwrap()
}

fn backups() -> ApiResource {
    orch_runtime::custom::resource("ops.example.org", "v1", "Backup", "backups", true)
}

/// A world whose target is Backup `web` (`workers` workers selecting `app=web`) instead of
/// the Deployment.
fn custom_world(n: usize, cpu: &str, crd: DynamicObject, backups_: Vec<DynamicObject>) -> World {
    let mut w = world(n, cpu);
    w.workloads.deployments = store(vec![]);
    let objects = store(backups_);
    w.custom = CustomScales {
        discovered: vec![orch_types::client::DiscoveredResource {
            resource: backups(),
            verbs: ["get", "list", "watch", "patch"].map(String::from).to_vec(),
        }],
        crds: store(vec![crd]),
        objects: Arc::new(move |r, ns, name| {
            (r == &backups()).then(|| objects.get_in(Some(ns), name))?
        }),
    };
    w
}

fn backup_hpa() -> HorizontalPodAutoscaler {
    let mut h = hpa(None);
    h.spec.as_mut().unwrap().scale_target_ref = serde_json::from_value(
        json!({"apiVersion": "ops.example.org/v1", "kind": "Backup", "name": "web"}),
    )
    .unwrap();
    h
}

fn scale_patch(actions: &[Action]) -> Option<(ApiResource, Option<String>, serde_json::Value)> {
    actions.iter().find_map(|a| match a {
        Action::Patch {
            resource,
            subresource,
            patch: orch_types::client::Patch::Merge(p),
            ..
        } => Some((resource.clone(), subresource.clone(), p.clone())),
        _ => None,
    })
}

#[test]
fn a_custom_resource_is_scaled_up_and_down_through_its_scale_subresource() {
    // Two workers at 90 % of their request: up to 4.
    let w = custom_world(2, "900m", backup_crd(true), vec![backup(2, "app=web")]);
    let mut hist = History::default();
    let (to, actions) = run(&backup_hpa(), &w, &mut hist, NOW);
    assert_eq!(to, Some(4));
    assert_eq!(
        scale_patch(&actions),
        Some((
            backups(),
            Some("scale".into()),
            json!({"spec": {"replicas": 4}})
        ))
    );
    let st = status_of(&actions);
    assert_eq!((st.current_replicas, st.desired_replicas), (Some(2), 4));
    assert_eq!(
        condition(&st, SCALING_ACTIVE),
        ("True".into(), "ValidMetricFound".into())
    );
    // Four workers at 10 %: down to 1 once the 5-minute stabilization window has passed.
    let w = custom_world(4, "100m", backup_crd(true), vec![backup(4, "app=web")]);
    let (to, _) = run(&backup_hpa(), &w, &mut History::default(), NOW);
    assert_eq!(to, None, "held by the stabilization window");
    let mut hist = History::default();
    let (to, _) = run(&backup_hpa(), &w, &mut hist, NOW - 400);
    assert_eq!(to, None);
    let (to, actions) = run(&backup_hpa(), &w, &mut hist, NOW);
    assert_eq!(to, Some(1));
    assert_eq!(
        scale_patch(&actions).map(|(_, _, p)| p),
        Some(json!({"spec": {"replicas": 1}}))
    );
}

#[test]
fn a_custom_target_without_a_scale_subresource_or_a_selector_is_reported() {
    let cases = [
        (
            custom_world(2, "1", backup_crd(false), vec![backup(2, "app=web")]),
            "backups.ops.example.org does not implement the scale subresource",
        ),
        (
            custom_world(2, "1", backup_crd(true), vec![]),
            "backups.ops.example.org \"web\" not found",
        ),
        (
            World {
                custom: CustomScales::default(),
                ..custom_world(2, "1", backup_crd(true), vec![])
            },
            "unable to determine resource for scale target reference: no matches for kind \"Backup\" in group \"ops.example.org\"",
        ),
    ];
    for (w, message) in cases {
        let (to, actions) = run(&backup_hpa(), &w, &mut History::default(), NOW);
        assert_eq!(to, None);
        assert_eq!(
            condition(&status_of(&actions), ABLE_TO_SCALE),
            ("False".into(), "FailedGetScale".into())
        );
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::Event { reason, message: m, .. }
                    if reason == "FailedGetScale" && m == message)),
            "{message}: {actions:?}"
        );
    }
    // A scale without a selector (the custom controller has not set it yet).
    let w = custom_world(2, "1", backup_crd(true), vec![backup(2, "")]);
    let (to, actions) = run(&backup_hpa(), &w, &mut History::default(), NOW);
    assert_eq!(to, None);
    assert_eq!(
        condition(&status_of(&actions), SCALING_ACTIVE),
        ("False".into(), "InvalidSelector".into())
    );
}
