//! The binder's pure core, driven by hand: claims, volumes and pods as the caches would hold
//! them, actions applied to that state as the API would (merge patches, creates, deletes).

use super::*;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, PodStatus};
use orch_types::client::Patch;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn claim(name: &str, class: Option<&str>, size: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "resourceVersion": "10"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                 "storageClassName": class, "volumeMode": "Filesystem"},
        "status": {"phase": "Pending"}}))
    .unwrap()
}

fn volume(name: &str, class: &str, size: &str, node: Option<&str>) -> PersistentVolume {
    let mut v = json!({
        "metadata": {"name": name, "resourceVersion": "20"},
        "spec": {"accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "capacity": {"storage": size},
                 "storageClassName": class, "hostPath": {"path": format!("/tmp/{name}")},
                 "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"},
        "status": {"phase": "Available"}});
    if let Some(n) = node {
        v["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": HOSTNAME_LABEL, "operator": "In", "values": [n]}]}]}});
    }
    serde_json::from_value(v).unwrap()
}

fn class(name: &str, provisioner: &str, mode: &str) -> StorageClass {
    serde_json::from_value(
        json!({"metadata": {"name": name}, "provisioner": provisioner,
        "reclaimPolicy": "Delete", "volumeBindingMode": mode}),
    )
    .unwrap()
}

fn node(name: &str, ready: bool) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(HOSTNAME_LABEL.into(), name.into())])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn pod_using(name: &str, claim: &str, node: Option<&str>) -> Pod {
    let mut p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}))
    .unwrap();
    if let Some(s) = p.spec.as_mut() {
        s.node_name = node.map(Into::into);
    }
    p
}

/// The cluster as the caches see it.
#[derive(Default)]
struct World {
    claims: Vec<Arc<PersistentVolumeClaim>>,
    volumes: Vec<Arc<PersistentVolume>>,
    classes: Vec<Arc<StorageClass>>,
    pods: Vec<Arc<Pod>>,
    nodes: Vec<Arc<Node>>,
    events: Vec<String>,
    rv: u64,
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl World {
    fn sync_claim(&self, name: &str, now: Timestamp) -> Vec<Action> {
        let c = self
            .claims
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .unwrap();
        let view = ClaimView {
            volumes: &self.volumes,
            classes: &self.classes,
            pods: &self.pods,
            nodes: &self.nodes,
            volume_root: DEFAULT_VOLUME_ROOT,
        };
        reconcile_claim(c, &view, now)
    }

    fn sync_volume(&self, name: &str, now: Timestamp) -> Vec<Action> {
        let v = self
            .volumes
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(name))
            .unwrap();
        let r = claim_ref(v);
        let c = r.and_then(|r| {
            self.claims
                .iter()
                .find(|c| c.metadata.name == r.name && c.metadata.namespace == r.namespace)
        });
        let cname = r.and_then(|r| r.name.clone()).unwrap_or_default();
        reconcile_volume(v, c.map(|c| c.as_ref()), in_use_by(&self.pods, &cname), now)
    }

    /// Applies actions as the API server would; a patch carrying a stale resourceVersion fails
    /// (and is reported), as does creating a name that exists.
    fn apply(&mut self, actions: Vec<Action>) -> Vec<String> {
        let mut failures = Vec::new();
        for a in actions {
            match a {
                Action::Patch {
                    resource,
                    namespace,
                    name,
                    patch: Patch::Merge(p),
                    ..
                } => {
                    self.rv += 1;
                    let rv = self.rv.to_string();
                    let ok = if resource.kind == "PersistentVolume" {
                        patch_in(&mut self.volumes, None, &name, &p, &rv)
                    } else {
                        patch_in(&mut self.claims, namespace.as_deref(), &name, &p, &rv)
                    };
                    if let Err(e) = ok {
                        failures.push(e);
                    }
                }
                Action::Create { object, .. } => {
                    let mut v: PersistentVolume = object.to_typed().unwrap();
                    if self
                        .volumes
                        .iter()
                        .any(|x| x.metadata.name == v.metadata.name)
                    {
                        failures.push("already exists".into());
                        continue;
                    }
                    self.rv += 1;
                    v.metadata.resource_version = Some(self.rv.to_string());
                    v.status = Some(Default::default());
                    v.status.as_mut().unwrap().phase = Some("Pending".into());
                    self.volumes.push(Arc::new(v));
                }
                Action::Delete { name, .. } => self
                    .volumes
                    .retain(|v| v.metadata.name.as_deref() != Some(&name)),
                Action::Guarded { then, .. } => failures.extend(self.apply(then)),
                Action::Event {
                    reason, message, ..
                } => self.events.push(format!("{reason}: {message}")),
                Action::Requeue(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        failures
    }

    /// Syncs every claim and volume until nothing is left to do.
    fn settle(&mut self, now: Timestamp) {
        for _ in 0..10 {
            let mut acted = false;
            let names: Vec<String> = self
                .claims
                .iter()
                .map(|c| name(&c.metadata).to_string())
                .collect();
            for n in names {
                let a: Vec<Action> = self
                    .sync_claim(&n, now)
                    .into_iter()
                    .filter(|a| !matches!(a, Action::Event { .. } | Action::Requeue(_)))
                    .collect();
                acted |= !a.is_empty();
                self.apply(a);
            }
            let names: Vec<String> = self
                .volumes
                .iter()
                .map(|v| name(&v.metadata).to_string())
                .collect();
            for n in names {
                let a: Vec<Action> = self
                    .sync_volume(&n, now)
                    .into_iter()
                    .filter(|a| !matches!(a, Action::Event { .. } | Action::Requeue(_)))
                    .collect();
                acted |= !a.is_empty();
                self.apply(a);
            }
            if !acted {
                return;
            }
        }
        panic!("did not settle");
    }

    fn claim(&self, n: &str) -> &PersistentVolumeClaim {
        self.claims.iter().find(|c| name(&c.metadata) == n).unwrap()
    }

    fn volume(&self, n: &str) -> &PersistentVolume {
        self.volumes
            .iter()
            .find(|v| name(&v.metadata) == n)
            .unwrap()
    }
}

fn patch_in<K>(
    items: &mut [Arc<K>],
    ns: Option<&str>,
    n: &str,
    p: &Value,
    rv: &str,
) -> Result<(), String>
where
    K: serde::Serialize + serde::de::DeserializeOwned + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    let slot = items
        .iter_mut()
        .find(|o| {
            o.metadata().name.as_deref() == Some(n) && o.metadata().namespace.as_deref() == ns
        })
        .ok_or_else(|| format!("{n} not found"))?;
    let mut v = serde_json::to_value(slot.as_ref()).unwrap();
    if let Some(want) = p["metadata"]["resourceVersion"].as_str() {
        if v["metadata"]["resourceVersion"].as_str() != Some(want) {
            return Err(format!("conflict on {n}"));
        }
    }
    merge(&mut v, p);
    v["metadata"]["resourceVersion"] = json!(rv);
    *slot = Arc::new(serde_json::from_value(v).unwrap());
    Ok(())
}

fn phase_of_claim(c: &PersistentVolumeClaim) -> &str {
    claim_phase(c)
}

#[test]
fn a_claim_binds_to_the_smallest_fitting_volume() {
    let mut w = World {
        claims: vec![Arc::new(claim("data", Some("manual"), "2Gi"))],
        volumes: vec![
            Arc::new(volume("small", "manual", "1Gi", None)),
            Arc::new(volume("big", "manual", "10Gi", None)),
            Arc::new(volume("right", "manual", "5Gi", None)),
            Arc::new(volume("other-class", "fast", "2Gi", None)),
        ],
        classes: vec![Arc::new(class(
            "manual",
            "kubernetes.io/no-provisioner",
            "Immediate",
        ))],
        ..Default::default()
    };
    // First the volume is reserved, guarded by its resourceVersion.
    let a = w.sync_claim("data", t(0));
    assert_eq!(a.len(), 1);
    let Action::Patch {
        name: n,
        patch: Patch::Merge(p),
        subresource: None,
        ..
    } = &a[0]
    else {
        panic!("{a:?}")
    };
    assert_eq!(n, "right");
    assert_eq!(p["metadata"]["resourceVersion"], "20");
    assert_eq!(p["spec"]["claimRef"]["uid"], "uid-data");
    assert_eq!(p["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER], "yes");
    w.settle(t(1));
    let c = w.claim("data");
    assert_eq!(volume_name(c), "right");
    assert_eq!(phase_of_claim(c), "Bound");
    assert_eq!(annotation(&c.metadata, ANN_BIND_COMPLETED), Some("yes"));
    assert_eq!(
        annotation(&c.metadata, ANN_BOUND_BY_CONTROLLER),
        Some("yes")
    );
    let st = c.status.as_ref().unwrap();
    assert_eq!(st.capacity.as_ref().unwrap()["storage"].0, "5Gi");
    assert_eq!(
        st.access_modes.as_deref().unwrap(),
        ["ReadWriteOnce", "ReadOnlyMany"]
    );
    let v = w.volume("right");
    assert_eq!(volume_phase(v), "Bound");
    assert_eq!(
        v.status
            .as_ref()
            .unwrap()
            .last_phase_transition_time
            .as_ref()
            .unwrap()
            .0,
        t(1)
    );
    for free in ["small", "big", "other-class"] {
        assert_eq!(volume_phase(w.volume(free)), "Available", "{free}");
        assert!(claim_ref(w.volume(free)).is_none());
    }
    // Bound: nothing more to do.
    assert!(w.sync_claim("data", t(2)).is_empty());
    assert!(w.sync_volume("right", t(2)).is_empty());
}

#[test]
fn a_reservation_lost_to_another_claim_is_not_completed() {
    let mut w = World {
        claims: vec![
            Arc::new(claim("a", Some("manual"), "1Gi")),
            Arc::new(claim("b", Some("manual"), "1Gi")),
        ],
        volumes: vec![Arc::new(volume("only", "manual", "1Gi", None))],
        classes: vec![Arc::new(class(
            "manual",
            "kubernetes.io/no-provisioner",
            "Immediate",
        ))],
        ..Default::default()
    };
    // Both claims decide on the same cache state; the second reservation conflicts.
    let first = w.sync_claim("a", t(0));
    let second = w.sync_claim("b", t(0));
    assert!(w.apply(first).is_empty());
    assert_eq!(w.apply(second), ["conflict on only"]);
    w.settle(t(1));
    assert_eq!(volume_name(w.claim("a")), "only");
    assert_eq!(volume_name(w.claim("b")), "");
    assert_eq!(phase_of_claim(w.claim("b")), "Pending");
    let a = w.sync_claim("b", t(2));
    assert!(
        matches!(&a[..], [Action::Event { reason, .. }] if reason == "ExternalProvisioning"),
        "{a:?}"
    );
}

#[test]
fn wait_for_first_consumer_provisions_on_the_pods_node() {
    let mut w = World {
        claims: vec![Arc::new(claim("data", None, "1Gi"))],
        classes: vec![Arc::new(class(
            "local",
            PROVISIONER,
            "WaitForFirstConsumer",
        ))],
        nodes: vec![Arc::new(node("n1", true)), Arc::new(node("n2", true))],
        // A fitting volume pinned to the other node is not taken.
        volumes: vec![Arc::new(volume("on-n1", "local", "1Gi", Some("n1")))],
        ..Default::default()
    };
    // The admission plugin gave the claim the default class.
    let mut c = claim("data", Some("local"), "1Gi");
    c.metadata.annotations = None;
    w.claims = vec![Arc::new(c)];
    let a = w.sync_claim("data", t(0));
    assert!(
        matches!(&a[..], [Action::Event { reason, message, .. }]
            if reason == "WaitForFirstConsumer" && message == "waiting for first consumer to be created before binding"),
        "{a:?}"
    );
    // An unscheduled consumer changes nothing; a scheduled one on n2 does.
    w.pods = vec![Arc::new(pod_using("web", "data", None))];
    assert_eq!(w.sync_claim("data", t(1)).len(), 1);
    w.pods = vec![Arc::new(pod_using("web", "data", Some("n2")))];
    let a = w.sync_claim("data", t(2));
    let created: Vec<PersistentVolume> = a
        .iter()
        .filter_map(|a| match a {
            Action::Create { object, .. } => Some(object.to_typed().unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1);
    let pv = &created[0];
    assert_eq!(pv.metadata.name.as_deref(), Some("pvc-uid-data"));
    assert_eq!(
        annotation(&pv.metadata, ANN_PROVISIONED_BY),
        Some(PROVISIONER)
    );
    let spec = pv.spec.as_ref().unwrap();
    assert_eq!(
        spec.local.as_ref().unwrap().path,
        "/var/lib/orch/volumes/pvc-uid-data"
    );
    assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "1Gi");
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    assert_eq!(spec.storage_class_name.as_deref(), Some("local"));
    assert_eq!(
        spec.claim_ref.as_ref().unwrap().uid.as_deref(),
        Some("uid-data")
    );
    assert_eq!(local_node(pv), Some("n2"));
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Event { reason, .. } if reason == "Provisioning")));
    w.apply(a);
    let c = w.claim("data");
    assert_eq!(annotation(&c.metadata, ANN_SELECTED_NODE), Some("n2"));
    assert_eq!(
        annotation(&c.metadata, ANN_STORAGE_PROVISIONER),
        Some(PROVISIONER)
    );
    // The provisioned volume is reserved for the claim: the next syncs bind both.
    let a = w.sync_claim("data", t(3));
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Event { reason, message, .. }
        if reason == "ProvisioningSucceeded"
            && message == "Successfully provisioned volume pvc-uid-data using orch.dev/local")));
    w.apply(a);
    w.settle(t(4));
    assert_eq!(volume_name(w.claim("data")), "pvc-uid-data");
    assert_eq!(phase_of_claim(w.claim("data")), "Bound");
    assert_eq!(volume_phase(w.volume("pvc-uid-data")), "Bound");
    assert!(
        claim_ref(w.volume("on-n1")).is_none(),
        "the volume on n1 stays free"
    );
}

#[test]
fn wait_for_first_consumer_takes_a_fitting_volume_on_the_node() {
    let mut w = World {
        claims: vec![Arc::new(claim("data", Some("local"), "1Gi"))],
        classes: vec![Arc::new(class(
            "local",
            PROVISIONER,
            "WaitForFirstConsumer",
        ))],
        nodes: vec![Arc::new(node("n1", true))],
        volumes: vec![Arc::new(volume("on-n1", "local", "1Gi", Some("n1")))],
        pods: vec![Arc::new(pod_using("web", "data", Some("n1")))],
        ..Default::default()
    };
    w.settle(t(0));
    assert_eq!(volume_name(w.claim("data")), "on-n1");
    assert_eq!(w.volumes.len(), 1, "nothing provisioned");
}

#[test]
fn immediate_local_claims_go_to_the_emptiest_ready_node() {
    let mut w = World {
        claims: vec![
            Arc::new(claim("a", Some("now"), "1Gi")),
            Arc::new(claim("b", Some("now"), "1Gi")),
        ],
        classes: vec![Arc::new(class("now", PROVISIONER, "Immediate"))],
        nodes: vec![
            Arc::new(node("n1", true)),
            Arc::new(node("n2", true)),
            Arc::new(node("n0", false)),
        ],
        ..Default::default()
    };
    w.settle(t(0));
    assert_eq!(local_node(w.volume("pvc-uid-a")), Some("n1"));
    assert_eq!(local_node(w.volume("pvc-uid-b")), Some("n2"));
    assert_eq!(phase_of_claim(w.claim("b")), "Bound");
    // No ready node: a warning and a retry.
    let mut none = World {
        claims: vec![Arc::new(claim("c", Some("now"), "1Gi"))],
        classes: w.classes.clone(),
        nodes: vec![Arc::new(node("n0", false))],
        ..Default::default()
    };
    let a = none.sync_claim("c", t(0));
    assert!(
        matches!(a.last(), Some(Action::Requeue(d)) if *d == RETRY),
        "{a:?}"
    );
    assert!(none.apply(a).is_empty());
    assert_eq!(
        none.events,
        ["ProvisioningFailed: no ready node to create the local volume on"]
    );
}

#[test]
fn claims_without_a_way_to_a_volume_say_why() {
    let w = World {
        claims: vec![
            Arc::new(claim("none", Some(""), "1Gi")),
            Arc::new(claim("missing", Some("gold"), "1Gi")),
        ],
        ..Default::default()
    };
    let reasons = |a: Vec<Action>| -> Vec<String> {
        a.into_iter()
            .filter_map(|a| match a {
                Action::Event {
                    reason, message, ..
                } => Some(format!("{reason}: {message}")),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        reasons(w.sync_claim("none", t(0))),
        ["FailedBinding: no persistent volumes available for this claim and no storage class is set"]
    );
    assert_eq!(
        reasons(w.sync_claim("missing", t(0))),
        ["ProvisioningFailed: storageclass.storage.k8s.io \"gold\" not found"]
    );
}

#[test]
fn volumes_of_deleted_claims_are_reclaimed_by_policy() {
    let bound = |n: &str, policy: &str| {
        let mut v = volume(n, "local", "1Gi", None);
        let s = v.spec.as_mut().unwrap();
        s.persistent_volume_reclaim_policy = Some(policy.into());
        s.claim_ref = Some(ObjectReference {
            namespace: Some("default".into()),
            name: Some("gone".into()),
            uid: Some("uid-gone".into()),
            ..Default::default()
        });
        v.status.as_mut().unwrap().phase = Some("Bound".into());
        v
    };
    // Delete: released and deleted, once the API confirms the claim is gone.
    let del = bound("d", "Delete");
    let a = reconcile_volume(&del, None, false, t(0));
    let [Action::Guarded { absent, then }] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!(absent[0].uid.as_deref(), Some("uid-gone"));
    assert_eq!(absent[0].name.as_deref(), Some("gone"));
    assert!(
        matches!(&then[0], Action::Patch { patch: Patch::Merge(p), .. } if p["status"]["phase"] == "Released")
    );
    assert!(
        matches!(&then[1], Action::Delete { name, uid: None, .. } if name == "d")
            || matches!(&then[1], Action::Delete { name, .. } if name == "d")
    );
    // ... but not while a running pod still names the claim.
    let a = reconcile_volume(&del, None, true, t(0));
    assert!(matches!(a.last(), Some(Action::Requeue(_))));
    assert!(!a.iter().any(|a| matches!(a, Action::Guarded { then, .. } if then.iter().any(|t| matches!(t, Action::Delete { .. })))));
    // A claim of the same name but another UID is a new claim: the old one is gone.
    let newer = claim("gone", Some("local"), "1Gi");
    let mut newer = newer;
    newer.metadata.uid = Some("uid-new".into());
    assert!(matches!(
        &reconcile_volume(&del, Some(&newer), false, t(0))[..],
        [Action::Guarded { .. }]
    ));
    // Retain: released, kept.
    let keep = bound("k", "Retain");
    let a = reconcile_volume(&keep, None, false, t(0));
    let [Action::Guarded { then, .. }] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!(then.len(), 1);
    let mut released = keep.clone();
    released.status.as_mut().unwrap().phase = Some("Released".into());
    assert!(reconcile_volume(&released, None, false, t(1)).is_empty());
}

#[test]
fn deleting_the_claim_deletes_a_provisioned_volume_end_to_end() {
    let mut w = World {
        claims: vec![Arc::new(claim("data", Some("local"), "1Gi"))],
        classes: vec![Arc::new(class(
            "local",
            PROVISIONER,
            "WaitForFirstConsumer",
        ))],
        nodes: vec![Arc::new(node("n1", true))],
        pods: vec![Arc::new(pod_using("web", "data", Some("n1")))],
        ..Default::default()
    };
    w.settle(t(0));
    assert_eq!(volume_phase(w.volume("pvc-uid-data")), "Bound");
    // The claim goes while its pod still runs: released, kept.
    w.claims.clear();
    w.settle(t(1));
    assert_eq!(volume_phase(w.volume("pvc-uid-data")), "Released");
    // The pod finishes: the volume is deleted.
    let mut done = pod_using("web", "data", Some("n1"));
    done.status = Some(PodStatus {
        phase: Some("Succeeded".into()),
        ..Default::default()
    });
    w.pods = vec![Arc::new(done)];
    w.settle(t(2));
    assert!(w.volumes.is_empty());
}

#[test]
fn bound_claims_notice_a_lost_or_taken_volume() {
    let mut c = claim("data", Some("manual"), "1Gi");
    c.spec.as_mut().unwrap().volume_name = Some("vol".into());
    c.metadata.annotations = Some(BTreeMap::from([(ANN_BIND_COMPLETED.into(), "yes".into())]));
    c.status.as_mut().unwrap().phase = Some("Bound".into());
    let view = ClaimView {
        volumes: &[],
        classes: &[],
        pods: &[],
        nodes: &[],
        volume_root: "/v",
    };
    let a = reconcile_claim(&c, &view, t(0));
    assert!(
        matches!(&a[0], Action::Patch { patch: Patch::Merge(p), .. } if p["status"]["phase"] == "Lost")
    );
    assert!(matches!(&a[1], Action::Event { reason, .. } if reason == "ClaimLost"));
    let mut other = volume("vol", "manual", "1Gi", None);
    other.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
        namespace: Some("default".into()),
        name: Some("someone-else".into()),
        uid: Some("uid-x".into()),
        ..Default::default()
    });
    let vols = [Arc::new(other)];
    let view = ClaimView {
        volumes: &vols,
        ..view
    };
    let a = reconcile_claim(&c, &view, t(0));
    assert!(
        matches!(&a[1], Action::Event { reason, .. } if reason == "ClaimMisbound"),
        "{a:?}"
    );
    // A claim that names a free volume reserves it (a user's pre-binding from the claim side).
    let free = [Arc::new(volume("vol", "manual", "1Gi", None))];
    let view = ClaimView {
        volumes: &free,
        ..view
    };
    let a = reconcile_claim(&c, &view, t(0));
    assert!(matches!(&a[..], [Action::Patch { name, subresource: None, .. }] if name == "vol"));
}

#[test]
fn pod_claims_include_generic_ephemeral_volumes() {
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"containers": [], "volumes": [
            {"name": "a", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            {"name": "tmp", "emptyDir": {}}]}}))
    .unwrap();
    let claims: Vec<String> = pod_claims(&p).map(|c| c.claim).collect();
    assert_eq!(claims, ["data", "web-scratch"]);
}
