use super::*;
use crate::testutil::{labels, make_ready, template};
use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn stateful_set(replicas: i32, parallel: bool) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("uid-web".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            },
            service_name: Some("web".into()),
            template: template(&[("app", "web")], "web:1"),
            pod_management_policy: Some(if parallel { "Parallel" } else { "OrderedReady" }.into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(0),
                    max_unavailable: None,
                }),
            }),
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    labels: Some(labels(&[("tier", "db")])),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    ..Default::default()
                }),
                status: None,
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The API and caches as the controller's actions leave them.
struct World {
    set: StatefulSet,
    pods: Vec<Arc<Pod>>,
    revisions: Vec<Arc<ControllerRevision>>,
    claims: Vec<Arc<PersistentVolumeClaim>>,
    clock: i64,
    events: Vec<String>,
    /// Pods deleted with a grace period stay (terminating) until `finish_deletes`.
    graceful: bool,
}

impl World {
    fn new(set: StatefulSet) -> Self {
        Self {
            set,
            pods: Vec::new(),
            revisions: Vec::new(),
            claims: Vec::new(),
            clock: 0,
            events: Vec::new(),
            graceful: false,
        }
    }

    fn sync(&mut self) -> Vec<Action> {
        let revisions = self.revisions.clone();
        let named = move |n: &str| {
            revisions
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(n))
                .cloned()
        };
        let claims = self.claims.clone();
        let claim = move |n: &str| {
            claims
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(n))
                .cloned()
        };
        let actions = reconcile(
            &self.set,
            StatefulSetView {
                pods: &self.pods,
                revisions: &self.revisions,
                revision_named: &named,
                claim: &claim,
                expectations_satisfied: true,
                now: t(self.clock),
            },
        );
        for a in &actions {
            self.apply(a);
        }
        actions
    }

    fn apply(&mut self, a: &Action) {
        match a {
            Action::CreatePods { pods, .. } => {
                for d in pods {
                    let mut p: Pod = d.to_typed().unwrap();
                    let n = p.metadata.name.clone().unwrap();
                    assert!(
                        !self
                            .pods
                            .iter()
                            .any(|x| x.metadata.name.as_deref() == Some(&n)),
                        "{n} created twice"
                    );
                    p.metadata.uid = Some(format!("uid-{n}"));
                    p.metadata.creation_timestamp = Some(Time(t(self.clock)));
                    p.status = Some(PodStatus {
                        phase: Some("Pending".into()),
                        ..Default::default()
                    });
                    self.pods.push(Arc::new(p));
                }
            }
            Action::Delete { resource, name, .. } if resource.kind == "Pod" => {
                if self.graceful {
                    for p in &mut self.pods {
                        if p.metadata.name.as_deref() == Some(name) {
                            Arc::make_mut(p).metadata.deletion_timestamp = Some(Time(t(0)));
                        }
                    }
                } else {
                    self.pods
                        .retain(|p| p.metadata.name.as_deref() != Some(name));
                }
            }
            Action::Delete { resource, name, .. } if resource.kind == "ControllerRevision" => {
                self.revisions
                    .retain(|r| r.metadata.name.as_deref() != Some(name));
            }
            Action::Create { resource, object } if resource.kind == "ControllerRevision" => {
                self.revisions.push(Arc::new(object.to_typed().unwrap()));
            }
            Action::Create { resource, object } if resource.kind == "PersistentVolumeClaim" => {
                let mut c: PersistentVolumeClaim = object.to_typed().unwrap();
                c.metadata.uid = Some(format!("uid-{}", c.metadata.name.as_deref().unwrap()));
                self.claims.push(Arc::new(c));
            }
            Action::Patch {
                resource,
                name,
                patch: orch_types::client::Patch::Merge(v),
                ..
            } => {
                if resource.kind == "ControllerRevision" {
                    let rev = v["revision"].as_i64().unwrap();
                    for r in &mut self.revisions {
                        if r.metadata.name.as_deref() == Some(name) {
                            Arc::make_mut(r).revision = rev;
                        }
                    }
                } else if resource.kind == "PersistentVolumeClaim" {
                    let refs =
                        serde_json::from_value(v["metadata"]["ownerReferences"].clone()).unwrap();
                    for c in &mut self.claims {
                        if c.metadata.name.as_deref() == Some(name) {
                            Arc::make_mut(c).metadata.owner_references = Some(refs);
                            break;
                        }
                    }
                }
            }
            Action::UpdateStatus { object, .. } => {
                let s: StatefulSet = object.to_typed().unwrap();
                self.set.status = s.status;
            }
            Action::Event { reason, .. } => self.events.push(reason.clone()),
            _ => {}
        }
    }

    /// The kubelet runs every pending pod and it becomes ready.
    fn run_pods(&mut self) {
        let now = t(self.clock);
        for p in &mut self.pods {
            if crate::controller_utils::phase(p) == "Pending" {
                make_ready(Arc::make_mut(p), "n1", now);
            }
        }
    }

    fn finish_deletes(&mut self) {
        self.pods
            .retain(|p| p.metadata.deletion_timestamp.is_none());
    }

    fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self
            .pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        n.sort();
        n
    }

    fn image(&self, pod: &str) -> String {
        let p = self
            .pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pod))
            .unwrap();
        p.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    }

    fn set_image(&mut self, image: &str) {
        let spec = self.set.spec.as_mut().unwrap();
        spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        self.set.metadata.generation = Some(self.set.metadata.generation.unwrap() + 1);
    }

    fn st(&self) -> StatefulSetStatus {
        self.set.status.clone().unwrap()
    }
}

#[test]
fn ordinals_parse_only_for_the_set() {
    assert_eq!(ordinal_of("web", "web-0"), Some(0));
    assert_eq!(ordinal_of("web", "web-12"), Some(12));
    assert_eq!(ordinal_of("web", "web-x"), None);
    assert_eq!(ordinal_of("web", "web-db-1"), None);
    assert_eq!(ordinal_of("web-db", "web-db-1"), Some(1));
    assert_eq!(ordinal_of("web", "web-"), None);
}

#[test]
fn ordered_ready_creates_one_pod_at_a_time_with_identity_and_claims() {
    let mut w = World::new(stateful_set(3, false));
    w.sync();
    assert_eq!(w.names(), ["web-0"]);
    // Not ready yet: web-1 waits.
    w.sync();
    assert_eq!(w.names(), ["web-0"]);
    w.run_pods();
    w.sync();
    assert_eq!(w.names(), ["web-0", "web-1"]);
    w.run_pods();
    w.sync();
    w.run_pods();
    w.sync();
    assert_eq!(w.names(), ["web-0", "web-1", "web-2"]);

    let p = &w.pods[1];
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("web"));
    let l = p.metadata.labels.as_ref().unwrap();
    assert_eq!(l[POD_NAME_LABEL], "web-1");
    assert_eq!(l[POD_INDEX_LABEL], "1");
    let vol = &spec.volumes.as_ref().unwrap()[0];
    assert_eq!(vol.name, "data");
    assert_eq!(
        vol.persistent_volume_claim.as_ref().unwrap().claim_name,
        "data-web-1"
    );
    let mut claims: Vec<&str> = w
        .claims
        .iter()
        .map(|c| c.metadata.name.as_deref().unwrap())
        .collect();
    claims.sort();
    assert_eq!(claims, ["data-web-0", "data-web-1", "data-web-2"]);
    let cl = w.claims[0].metadata.labels.as_ref().unwrap();
    assert_eq!((cl["tier"].as_str(), cl["app"].as_str()), ("db", "web"));
    // Retain by default: no owner, the claims outlive pods and set.
    assert!(w
        .claims
        .iter()
        .all(|c| c.metadata.owner_references.is_none()));

    let st = w.st();
    assert_eq!(
        (
            st.replicas,
            st.ready_replicas,
            st.current_replicas,
            st.updated_replicas
        ),
        (3, Some(3), Some(3), Some(3))
    );
    assert_eq!(st.current_revision, st.update_revision);
    assert!(w.sync().is_empty(), "steady state writes nothing");
}

#[test]
fn scale_down_goes_from_the_highest_ordinal_one_at_a_time_and_keeps_claims() {
    let mut w = World::new(stateful_set(3, false));
    for _ in 0..4 {
        w.sync();
        w.run_pods();
    }
    w.graceful = true;
    w.set.spec.as_mut().unwrap().replicas = Some(1);
    w.sync();
    let deleting: Vec<&str> = w
        .pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .map(|p| p.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(deleting, ["web-2"]);
    // web-1 waits until web-2 is gone.
    w.sync();
    assert_eq!(
        w.pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .count(),
        1
    );
    w.finish_deletes();
    w.sync();
    w.finish_deletes();
    assert_eq!(w.names(), ["web-0"]);
    assert_eq!(w.claims.len(), 3);
}

#[test]
fn a_replica_that_is_not_ready_blocks_later_ordinals_but_parallel_does_not_wait() {
    let mut w = World::new(stateful_set(3, true));
    w.sync();
    assert_eq!(w.names(), ["web-0", "web-1", "web-2"]);
    w.set.spec.as_mut().unwrap().replicas = Some(0);
    w.sync();
    assert!(w.pods.is_empty(), "parallel scale-down deletes all at once");
}

#[test]
fn rolling_update_goes_down_to_the_partition_then_completes() {
    let mut w = World::new(stateful_set(3, false));
    for _ in 0..4 {
        w.sync();
        w.run_pods();
    }
    let first = w.st().current_revision.unwrap();
    w.set
        .spec
        .as_mut()
        .unwrap()
        .update_strategy
        .as_mut()
        .unwrap()
        .rolling_update
        .as_mut()
        .unwrap()
        .partition = Some(1);
    w.set_image("web:2");
    for _ in 0..10 {
        w.sync();
        w.run_pods();
    }
    assert_eq!(
        [w.image("web-0"), w.image("web-1"), w.image("web-2")],
        ["web:1", "web:2", "web:2"]
    );
    let st = w.st();
    assert_eq!(st.current_revision.as_deref(), Some(first.as_str()));
    assert_eq!(st.updated_replicas, Some(2));
    assert_eq!(st.observed_generation, Some(2));
    // web-0 deleted by hand below the partition comes back at the current revision.
    w.pods
        .retain(|p| p.metadata.name.as_deref() != Some("web-0"));
    w.sync();
    assert_eq!(w.image("web-0"), "web:1");
    w.run_pods();
    // Partition 0: the last pod rolls and the update revision becomes current.
    w.set
        .spec
        .as_mut()
        .unwrap()
        .update_strategy
        .as_mut()
        .unwrap()
        .rolling_update
        .as_mut()
        .unwrap()
        .partition = Some(0);
    for _ in 0..4 {
        w.sync();
        w.run_pods();
    }
    assert_eq!(w.image("web-0"), "web:2");
    let st = w.st();
    assert_eq!(st.current_revision, st.update_revision);
    assert_ne!(st.current_revision.as_deref(), Some(first.as_str()));
    assert_eq!(st.current_replicas, Some(3));
}

#[test]
fn rolling_update_replaces_one_pod_at_a_time_highest_first() {
    let mut w = World::new(stateful_set(3, false));
    for _ in 0..4 {
        w.sync();
        w.run_pods();
    }
    w.graceful = true;
    w.set_image("web:2");
    let mut order = Vec::new();
    for _ in 0..12 {
        let actions = w.sync();
        let deleted: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert!(deleted.len() <= 1);
        order.extend(deleted.iter().map(|s| s.to_string()));
        // Never more than one pod missing or unready.
        let healthy = w.pods.iter().filter(|p| is_healthy(p)).count();
        assert!(healthy >= 2, "{healthy} healthy");
        w.finish_deletes();
        w.run_pods();
    }
    assert_eq!(order, ["web-2", "web-1", "web-0"]);
    assert!(["web-0", "web-1", "web-2"]
        .iter()
        .all(|p| w.image(p) == "web:2"));
}

#[test]
fn on_delete_and_failed_pods() {
    let mut w = World::new(stateful_set(2, false));
    w.set.spec.as_mut().unwrap().update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    for _ in 0..3 {
        w.sync();
        w.run_pods();
    }
    w.set_image("web:2");
    w.sync();
    assert_eq!([w.image("web-0"), w.image("web-1")], ["web:1", "web:1"]);
    // web-1 fails: deleted and created again, at the update revision.
    let i = w
        .pods
        .iter()
        .position(|p| p.metadata.name.as_deref() == Some("web-1"))
        .unwrap();
    Arc::make_mut(&mut w.pods[i]).status.as_mut().unwrap().phase = Some("Failed".into());
    w.sync();
    assert_eq!(w.events, ["RecreatingFailedPod"]);
    w.sync();
    assert_eq!(w.image("web-1"), "web:2");
}

#[test]
fn retention_policy_sets_claim_owners() {
    let mut set = stateful_set(2, false);
    set.spec
        .as_mut()
        .unwrap()
        .persistent_volume_claim_retention_policy =
        Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
            when_deleted: Some("Delete".into()),
            when_scaled: Some("Delete".into()),
        });
    let mut w = World::new(set);
    for _ in 0..3 {
        w.sync();
        w.run_pods();
    }
    let owner = |w: &World, c: &str| -> Vec<String> {
        w.claims
            .iter()
            .find(|x| x.metadata.name.as_deref() == Some(c))
            .unwrap()
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|r| format!("{}/{}", r.kind, r.name))
            .collect()
    };
    assert_eq!(owner(&w, "data-web-1"), ["StatefulSet/web"]);
    w.set.spec.as_mut().unwrap().replicas = Some(1);
    w.sync();
    // The condemned pod owns its claim now; the garbage collector deletes it after the pod.
    assert_eq!(owner(&w, "data-web-1"), ["Pod/web-1"]);
    assert_eq!(owner(&w, "data-web-0"), ["StatefulSet/web"]);
    assert_eq!(w.names(), ["web-0"]);
}
