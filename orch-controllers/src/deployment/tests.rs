//! Deployment core tests: a small in-memory world where ReplicaSets reach their size at once
//! and new pods become available one step later.

use super::*;
use crate::testutil::template;
use k8s_openapi::api::apps::v1::ReplicaSetStatus;

fn deployment(replicas: i32, surge: i32, unavailable: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-web", "generation": 1,
                     "annotations": {"kubernetes.io/change-cause": format!("image {image}")}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(&[("app", "web")], image),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 10
        }
    }))
    .unwrap()
}

#[derive(Default)]
struct World {
    rs: Vec<ReplicaSet>,
    d: Option<Deployment>,
    now: i64,
    created: usize,
}

impl World {
    fn now(&self) -> Timestamp {
        Timestamp::from_second(self.now).unwrap()
    }

    /// One deployment pass; applies its writes to the world.
    fn step(&mut self) -> Vec<Action> {
        let d = self.d.clone().unwrap();
        let rss: Vec<Arc<ReplicaSet>> = self.rs.iter().cloned().map(Arc::new).collect();
        let actions = reconcile(
            &d,
            DeploymentView {
                replica_sets: &rss,
                pods: &[],
                now: self.now(),
            },
        );
        for a in &actions {
            match a {
                Action::Create { object, .. } => {
                    let mut rs: ReplicaSet = object.to_typed().unwrap();
                    self.created += 1;
                    rs.metadata.uid = Some(format!("uid-rs-{}", self.created));
                    rs.metadata.creation_timestamp = Some(Time(self.now()));
                    rs.metadata.generation = Some(1);
                    rs.status = Some(ReplicaSetStatus {
                        observed_generation: Some(1),
                        ..Default::default()
                    });
                    self.rs.push(rs);
                }
                Action::Patch {
                    name,
                    subresource: None,
                    patch: Patch::Merge(body),
                    resource,
                    ..
                } if resource.kind == "ReplicaSet" => {
                    let rs = self
                        .rs
                        .iter_mut()
                        .find(|r| r.metadata.name.as_deref() == Some(name))
                        .unwrap();
                    if let Some(n) = body["spec"]["replicas"].as_i64() {
                        rs.spec.as_mut().unwrap().replicas = Some(n as i32);
                    }
                    if let Some(a) = body["metadata"]["annotations"].as_object() {
                        let ann = rs.metadata.annotations.get_or_insert_with(Default::default);
                        for (k, v) in a {
                            ann.insert(k.clone(), v.as_str().unwrap().to_string());
                        }
                    }
                }
                Action::Patch {
                    subresource: Some(s),
                    patch: Patch::Merge(body),
                    ..
                } if s == "status" => {
                    self.d.as_mut().unwrap().status =
                        Some(serde_json::from_value(body["status"].clone()).unwrap());
                }
                Action::Patch {
                    subresource: None,
                    patch: Patch::Merge(body),
                    ..
                } => {
                    let rev = body["metadata"]["annotations"][REVISION]
                        .as_str()
                        .unwrap()
                        .to_string();
                    self.d
                        .as_mut()
                        .unwrap()
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(REVISION.into(), rev);
                }
                Action::Delete { name, .. } => {
                    self.rs.retain(|r| r.metadata.name.as_deref() != Some(name))
                }
                _ => {}
            }
        }
        // The ReplicaSet controller: reach the size at once; shrink unavailable pods first.
        for rs in &mut self.rs {
            let spec = rs_replicas(rs);
            let st = rs.status.get_or_insert_with(Default::default);
            if spec < st.replicas {
                st.available_replicas = Some(st.available_replicas.unwrap_or(0).min(spec));
                st.ready_replicas = st.available_replicas;
            }
            st.replicas = spec;
        }
        actions
    }

    /// Time passes: every pod becomes ready and available.
    fn pods_become_available(&mut self) {
        self.now += 5;
        for rs in &mut self.rs {
            let st = rs.status.get_or_insert_with(Default::default);
            st.available_replicas = Some(st.replicas);
            st.ready_replicas = Some(st.replicas);
        }
    }

    fn total(&self) -> i32 {
        self.rs.iter().map(|r| rs_status(r).0).sum()
    }
    fn available(&self) -> i32 {
        self.rs.iter().map(|r| rs_status(r).1).sum()
    }
    fn rs_named_by_image(&self, image: &str) -> &ReplicaSet {
        self.rs
            .iter()
            .find(|r| {
                r.spec
                    .as_ref()
                    .unwrap()
                    .template
                    .as_ref()
                    .unwrap()
                    .spec
                    .as_ref()
                    .unwrap()
                    .containers[0]
                    .image
                    .as_deref()
                    == Some(image)
            })
            .unwrap()
    }
    fn set_image(&mut self, image: &str) {
        let d = self.d.as_mut().unwrap();
        d.spec.as_mut().unwrap().template = template(&[("app", "web")], image);
        d.metadata.generation = Some(d.metadata.generation.unwrap() + 1);
        d.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(CHANGE_CAUSE.into(), format!("image {image}"));
    }
    fn run_to_completion(&mut self) {
        for _ in 0..50 {
            self.step();
            self.pods_become_available();
            self.step();
            let d = self.d.clone().unwrap();
            if is_complete(&d, d.status.as_ref().unwrap())
                && self.rs.iter().filter(|r| rs_replicas(r) > 0).count() == 1
            {
                return;
            }
        }
        panic!("rollout did not complete");
    }
}

#[test]
fn rolling_update_never_violates_surge_or_unavailability_bounds() {
    let mut w = World {
        d: Some(deployment(10, 3, 2, "nginx:1")),
        ..Default::default()
    };
    w.run_to_completion();
    assert_eq!((w.total(), w.available()), (10, 10));
    w.set_image("nginx:2");
    let mut steps = 0;
    loop {
        w.step();
        assert!(
            w.total() <= 13,
            "more than replicas+maxSurge pods: {}",
            w.total()
        );
        assert!(
            w.available() >= 8,
            "fewer than replicas-maxUnavailable available: {}",
            w.available()
        );
        w.pods_become_available();
        let d = w.d.clone().unwrap();
        let st = d.status.clone().unwrap();
        if is_complete(&d, &st) && rs_replicas(w.rs_named_by_image("nginx:1")) == 0 {
            break;
        }
        steps += 1;
        assert!(steps < 30, "rollout stuck");
    }
    let new = w.rs_named_by_image("nginx:2");
    assert_eq!(rs_status(new).1, 10);
    assert_eq!(new.metadata.annotations.as_ref().unwrap()[REVISION], "2");
    assert_eq!(
        new.metadata.annotations.as_ref().unwrap()[CHANGE_CAUSE],
        "image nginx:2"
    );
    let hash = &new.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH];
    assert_eq!(
        new.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        new.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()[POD_TEMPLATE_HASH],
        *hash
    );
    let d = w.d.unwrap();
    assert_eq!(d.metadata.annotations.as_ref().unwrap()[REVISION], "2");
    let prog = condition(d.status.as_ref().unwrap(), "Progressing").unwrap();
    assert_eq!(prog.reason.as_deref(), Some(reasons::NEW_RS_AVAILABLE));
}

#[test]
fn rollback_reuses_the_old_replica_set_with_a_new_revision() {
    let mut w = World {
        d: Some(deployment(3, 1, 0, "nginx:1")),
        ..Default::default()
    };
    w.run_to_completion();
    w.set_image("nginx:2");
    w.run_to_completion();
    // `kubectl rollout undo`: the template of revision 1 is copied back (hash label removed).
    let mut old_tpl = w
        .rs_named_by_image("nginx:1")
        .spec
        .clone()
        .unwrap()
        .template
        .unwrap();
    old_tpl
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .remove(POD_TEMPLATE_HASH);
    w.d.as_mut().unwrap().spec.as_mut().unwrap().template = old_tpl;
    w.run_to_completion();
    assert_eq!(w.rs.len(), 2, "no third ReplicaSet");
    let back = w.rs_named_by_image("nginx:1");
    let ann = back.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        (ann[REVISION].as_str(), ann[REVISION_HISTORY].as_str()),
        ("3", "1")
    );
    assert_eq!(rs_replicas(back), 3);
    assert_eq!(rs_replicas(w.rs_named_by_image("nginx:2")), 0);
    assert_eq!(w.d.unwrap().metadata.annotations.unwrap()[REVISION], "3");
}

#[test]
fn paused_deployment_scales_but_does_not_roll_out() {
    let mut w = World {
        d: Some(deployment(4, 1, 1, "nginx:1")),
        ..Default::default()
    };
    w.run_to_completion();
    w.d.as_mut().unwrap().spec.as_mut().unwrap().paused = Some(true);
    w.set_image("nginx:2");
    w.d.as_mut().unwrap().spec.as_mut().unwrap().replicas = Some(6);
    w.step();
    w.step();
    assert_eq!(w.rs.len(), 1, "no new ReplicaSet while paused");
    assert_eq!(rs_replicas(&w.rs[0]), 6);
    let prog = condition(
        w.d.as_ref().unwrap().status.as_ref().unwrap(),
        "Progressing",
    )
    .unwrap()
    .clone();
    assert_eq!(
        (prog.status.as_str(), prog.reason.as_deref()),
        ("Unknown", Some(reasons::PAUSED))
    );
    // Resume: the rollout happens.
    w.d.as_mut().unwrap().spec.as_mut().unwrap().paused = Some(false);
    w.run_to_completion();
    assert_eq!(rs_replicas(w.rs_named_by_image("nginx:2")), 6);
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let mut w = World {
        d: Some(deployment(10, 3, 2, "nginx:1")),
        ..Default::default()
    };
    w.run_to_completion();
    w.set_image("nginx:2");
    w.step(); // new RS at 3 (surge), old RS scaled to 8
    let (old, new) = (
        rs_replicas(w.rs_named_by_image("nginx:1")),
        rs_replicas(w.rs_named_by_image("nginx:2")),
    );
    assert_eq!((old, new), (8, 3));
    w.d.as_mut().unwrap().spec.as_mut().unwrap().replicas = Some(20);
    w.step();
    let (old2, new2) = (
        rs_replicas(w.rs_named_by_image("nginx:1")),
        rs_replicas(w.rs_named_by_image("nginx:2")),
    );
    // 10+3 -> 20+3 = 23 pods allowed: 12 added in proportion 8:3 of the max-replicas
    // annotation (13), rounding leftovers to the largest ReplicaSet (upstream GetProportion).
    assert_eq!(old2 + new2, 23);
    assert!(old2 > old && new2 > new, "both grew: {old2} {new2}");
    assert_eq!((old2, new2), (18, 5));
}

#[test]
fn old_replica_sets_beyond_history_limit_are_deleted() {
    let mut d = deployment(1, 1, 0, "v0");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let mut w = World {
        d: Some(d),
        ..Default::default()
    };
    w.run_to_completion();
    for i in 1..4 {
        w.set_image(&format!("v{i}"));
        w.run_to_completion();
    }
    let images: Vec<_> =
        w.rs.iter()
            .map(|r| {
                r.spec
                    .as_ref()
                    .unwrap()
                    .template
                    .as_ref()
                    .unwrap()
                    .spec
                    .as_ref()
                    .unwrap()
                    .containers[0]
                    .image
                    .clone()
                    .unwrap()
            })
            .collect();
    assert_eq!(images, ["v2", "v3"]);
}

#[test]
fn progress_deadline_exceeded_when_pods_never_become_available() {
    let mut d = deployment(2, 1, 0, "nginx:1");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(60);
    let mut w = World {
        d: Some(d),
        ..Default::default()
    };
    let first = w.step();
    assert!(first
        .iter()
        .any(|a| matches!(a, Action::Requeue(d) if *d == Duration::from_secs(61))));
    w.now += 30;
    w.step();
    let c = condition(
        w.d.as_ref().unwrap().status.as_ref().unwrap(),
        "Progressing",
    )
    .unwrap()
    .clone();
    assert_eq!(c.status, "True");
    w.now += 61;
    w.step();
    let st = w.d.as_ref().unwrap().status.clone().unwrap();
    let c = condition(&st, "Progressing").unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some(reasons::TIMED_OUT))
    );
    assert_eq!(condition(&st, "Available").unwrap().status, "False");
}

#[test]
fn recreate_scales_old_to_zero_before_creating_new() {
    let mut d = deployment(3, 0, 0, "nginx:1");
    d.spec.as_mut().unwrap().strategy = Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    let mut w = World {
        d: Some(d),
        ..Default::default()
    };
    w.run_to_completion();
    w.set_image("nginx:2");
    // Pretend the old pods are still terminating: status.replicas of the old RS lags.
    let d = w.d.clone().unwrap();
    let rss: Vec<Arc<ReplicaSet>> = w.rs.iter().cloned().map(Arc::new).collect();
    let actions = reconcile(
        &d,
        DeploymentView {
            replica_sets: &rss,
            pods: &[],
            now: w.now(),
        },
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::Create { .. })));
    assert!(actions.iter().any(
        |a| matches!(a, Action::Patch { patch: Patch::Merge(b), .. } if b["spec"]["replicas"] == 0)
    ));
    w.run_to_completion();
    assert_eq!(rs_replicas(w.rs_named_by_image("nginx:2")), 3);
    assert_eq!(rs_replicas(w.rs_named_by_image("nginx:1")), 0);
}

#[test]
fn orphaned_replica_sets_are_adopted() {
    let mut w = World {
        d: Some(deployment(2, 1, 0, "nginx:1")),
        ..Default::default()
    };
    w.run_to_completion();
    for rs in &mut w.rs {
        rs.metadata.owner_references = None; // `kubectl delete deploy --cascade=orphan`
    }
    let actions = w.step();
    let adopt = actions.iter().find(|a| {
        matches!(
            a,
            Action::Patch {
                patch: Patch::Json(_),
                ..
            }
        )
    });
    let Some(Action::Patch {
        patch: Patch::Json(ops),
        ..
    }) = adopt
    else {
        panic!("no adoption in {actions:?}")
    };
    assert_eq!(ops[1]["value"][0]["uid"], "uid-web");
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Create { .. })),
        "adopted RS reused"
    );
}
