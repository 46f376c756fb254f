use super::*;
use crate::deployment::util::compute_hash;
use crate::history::revision_hash;
use crate::testutil::{labels, make_ready, template};
use k8s_openapi::api::apps::v1::{DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet};
use k8s_openapi::api::core::v1::{NodeSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn node(name: &str, l: &[(&str, &str)], taints: &[(&str, &str)]) -> Arc<Node> {
    Arc::new(Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(l)),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then(|| {
                taints
                    .iter()
                    .map(|(k, e)| Taint {
                        key: (*k).into(),
                        effect: (*e).into(),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        }),
        status: None,
    })
}

fn daemon_set(strategy: &str, unavailable: i32, surge: i32) -> DaemonSet {
    DaemonSet {
        metadata: ObjectMeta {
            name: Some("agent".into()),
            namespace: Some("kube-system".into()),
            uid: Some("uid-agent".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "agent")])),
                ..Default::default()
            },
            template: template(&[("app", "agent")], "agent:1"),
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some(strategy.into()),
                rolling_update: (strategy == "RollingUpdate").then_some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(unavailable)),
                    max_surge: Some(IntOrString::Int(surge)),
                }),
            }),
            revision_history_limit: Some(10),
            min_ready_seconds: None,
        }),
        status: None,
    }
}

/// A little cluster the controller's actions are applied to, as the API and caches would.
struct World {
    ds: DaemonSet,
    nodes: Vec<Arc<Node>>,
    pods: Vec<Arc<Pod>>,
    revisions: Vec<Arc<ControllerRevision>>,
    backoff: FailedBackoff,
    clock: i64,
    serial: usize,
    events: Vec<String>,
}

impl World {
    fn new(ds: DaemonSet, nodes: Vec<Arc<Node>>) -> Self {
        Self {
            ds,
            nodes,
            pods: Vec::new(),
            revisions: Vec::new(),
            backoff: FailedBackoff::default(),
            clock: 0,
            serial: 0,
            events: Vec::new(),
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
        let actions = reconcile(
            &self.ds,
            DaemonSetView {
                nodes: &self.nodes,
                pods: &self.pods,
                revisions: &self.revisions,
                revision_named: &named,
                expectations_satisfied: true,
                backoff: &mut self.backoff,
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
                    self.serial += 1;
                    let n = format!("agent-{}", self.serial);
                    p.metadata.name = Some(n.clone());
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
                self.pods
                    .retain(|p| p.metadata.name.as_deref() != Some(name));
            }
            Action::Delete { resource, name, .. } if resource.kind == "ControllerRevision" => {
                self.revisions
                    .retain(|r| r.metadata.name.as_deref() != Some(name));
            }
            Action::Create { object, .. } => {
                let cr: ControllerRevision = object.to_typed().unwrap();
                self.revisions.push(Arc::new(cr));
            }
            Action::Patch {
                name,
                patch: orch_types::client::Patch::Merge(v),
                ..
            } => {
                if let Some(rev) = v.get("revision").and_then(|r| r.as_i64()) {
                    for r in &mut self.revisions {
                        if r.metadata.name.as_deref() == Some(name) {
                            Arc::make_mut(r).revision = rev;
                        }
                    }
                }
            }
            Action::UpdateStatus { object, .. } => {
                let d: DaemonSet = object.to_typed().unwrap();
                self.ds.status = d.status;
            }
            Action::Event { reason, .. } => self.events.push(reason.clone()),
            _ => {}
        }
    }

    /// The scheduler binds every pending pod to its target node and the kubelet makes it ready.
    fn run_pods(&mut self) {
        let now = t(self.clock);
        for p in &mut self.pods {
            if crate::controller_utils::phase(p) == "Pending" {
                let node = target_node(p).unwrap().to_string();
                make_ready(Arc::make_mut(p), &node, now);
            }
        }
    }

    fn pods_on(&self, node: &str) -> Vec<&Arc<Pod>> {
        self.pods
            .iter()
            .filter(|p| target_node(p) == Some(node))
            .collect()
    }

    fn image_of(p: &Pod) -> &str {
        p.spec.as_ref().unwrap().containers[0]
            .image
            .as_deref()
            .unwrap()
    }

    fn set_image(&mut self, image: &str) {
        let spec = self.ds.spec.as_mut().unwrap();
        spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        self.ds.metadata.generation = Some(self.ds.metadata.generation.unwrap() + 1);
    }

    fn status(&self) -> DaemonSetStatus {
        self.ds.status.clone().unwrap()
    }
}

fn three_nodes() -> Vec<Arc<Node>> {
    vec![
        node("n1", &[("disk", "ssd")], &[]),
        node("n2", &[("disk", "hdd")], &[]),
        node("n3", &[("disk", "ssd")], &[]),
    ]
}

#[test]
fn one_pod_per_node_pinned_by_node_affinity_with_the_daemon_tolerations() {
    let mut w = World::new(daemon_set("RollingUpdate", 1, 0), three_nodes());
    w.sync();
    assert_eq!(w.pods.len(), 3);
    assert_eq!(w.revisions.len(), 1);
    assert_eq!(w.revisions[0].revision, 1);
    let hash = revision_hash(&w.revisions[0]);
    for n in ["n1", "n2", "n3"] {
        let pods = w.pods_on(n);
        assert_eq!(pods.len(), 1, "{n}");
        let p = pods[0];
        // Through the scheduler: no nodeName, a matchFields term naming the node.
        assert_eq!(p.spec.as_ref().unwrap().node_name, None);
        assert_eq!(pod_hash(p), Some(hash.as_str()));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("agent-"));
        let tols = p.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
        let keys: Vec<(&str, &str, bool)> = tols
            .iter()
            .map(|t| {
                (
                    t.key.as_deref().unwrap(),
                    t.effect.as_deref().unwrap(),
                    t.toleration_seconds.is_some(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("node.kubernetes.io/not-ready", "NoExecute", false),
                ("node.kubernetes.io/unreachable", "NoExecute", false),
                ("node.kubernetes.io/disk-pressure", "NoSchedule", false),
                ("node.kubernetes.io/memory-pressure", "NoSchedule", false),
                ("node.kubernetes.io/pid-pressure", "NoSchedule", false),
                ("node.kubernetes.io/unschedulable", "NoSchedule", false),
            ]
        );
    }
    w.run_pods();
    w.sync();
    let st = w.status();
    assert_eq!(
        (
            st.desired_number_scheduled,
            st.current_number_scheduled,
            st.number_ready,
            st.number_available,
            st.updated_number_scheduled,
            st.number_unavailable,
            st.observed_generation
        ),
        (3, 3, 3, Some(3), Some(3), Some(0), Some(1))
    );
    // Nothing more to do: a steady state writes nothing.
    assert!(w.sync().is_empty());
}

#[test]
fn node_selector_and_taints_choose_the_nodes_and_cordon_keeps_the_daemon() {
    let mut ds = daemon_set("RollingUpdate", 1, 0);
    let spec = ds.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    spec.node_selector = Some(labels(&[("disk", "ssd")]));
    let nodes = vec![
        node("n1", &[("disk", "ssd")], &[]),
        node("n2", &[("disk", "hdd")], &[]),
        // Cordoned: tolerated by every daemon pod.
        node(
            "n3",
            &[("disk", "ssd")],
            &[("node.kubernetes.io/unschedulable", "NoSchedule")],
        ),
        node("n4", &[("disk", "ssd")], &[("dedicated", "NoSchedule")]),
    ];
    let mut w = World::new(ds, nodes);
    w.sync();
    let mut on: Vec<&str> = w.pods.iter().filter_map(|p| target_node(p)).collect();
    on.sort();
    assert_eq!(on, ["n1", "n3"]);
    w.run_pods();

    // n1 relabelled out of the selector: its pod goes, and counts as misscheduled meanwhile.
    let mut n1 = (*w.nodes[0]).clone();
    n1.metadata.labels = Some(labels(&[("disk", "hdd")]));
    w.nodes[0] = Arc::new(n1);
    let before = w.ds.status.clone();
    w.ds.status = before;
    let actions = w.sync();
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Delete { name, .. } if name == "agent-1")));
    assert!(w.pods_on("n1").is_empty());

    // A NoSchedule taint the pod does not tolerate: the running pod stays, no new one comes.
    let mut n3 = (*w.nodes[2]).clone();
    n3.spec
        .as_mut()
        .unwrap()
        .taints
        .as_mut()
        .unwrap()
        .push(Taint {
            key: "maintenance".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        });
    w.nodes[2] = Arc::new(n3);
    w.sync();
    assert_eq!(w.pods_on("n3").len(), 1);
    assert_eq!(w.status().number_misscheduled, 1);
    // A NoExecute one: the pod goes.
    let mut n3 = (*w.nodes[2]).clone();
    n3.spec
        .as_mut()
        .unwrap()
        .taints
        .as_mut()
        .unwrap()
        .push(Taint {
            key: "evict".into(),
            effect: "NoExecute".into(),
            ..Default::default()
        });
    w.nodes[2] = Arc::new(n3);
    w.sync();
    assert!(w.pods_on("n3").is_empty());
}

#[test]
fn a_new_node_gets_its_pod_and_a_removed_nodes_unscheduled_pod_is_deleted() {
    let mut w = World::new(daemon_set("RollingUpdate", 1, 0), three_nodes());
    w.sync();
    w.nodes.push(node("n4", &[], &[]));
    w.sync();
    assert_eq!(w.pods_on("n4").len(), 1);
    // n4 goes before its pod was scheduled: nothing else would ever delete that pod.
    w.nodes.pop();
    w.sync();
    assert!(w.pods_on("n4").is_empty());
    assert_eq!(w.pods.len(), 3);
}

#[test]
fn extra_pods_on_a_node_keep_the_oldest_and_failed_pods_back_off() {
    let mut w = World::new(daemon_set("RollingUpdate", 1, 0), three_nodes());
    w.sync();
    w.run_pods();
    // A second pod on n1 (e.g. created by a controller that lost its cache).
    let mut extra = (**w.pods_on("n1")[0]).clone();
    extra.metadata.name = Some("agent-extra".into());
    extra.metadata.creation_timestamp = Some(Time(t(5)));
    w.pods.push(Arc::new(extra));
    w.clock = 10;
    w.sync();
    assert_eq!(w.pods_on("n1").len(), 1);
    assert_eq!(w.pods_on("n1")[0].metadata.name.as_deref(), Some("agent-1"));

    // The pod on n2 fails: deleted at once, replaced on the next sync.
    let fail = |w: &mut World| {
        let i = w
            .pods
            .iter()
            .position(|p| target_node(p) == Some("n2"))
            .unwrap();
        Arc::make_mut(&mut w.pods[i]).status.as_mut().unwrap().phase = Some("Failed".into());
    };
    fail(&mut w);
    w.sync();
    assert!(w.pods_on("n2").is_empty());
    assert_eq!(w.events, ["FailedDaemonPod"]);
    w.sync();
    assert_eq!(w.pods_on("n2").len(), 1);
    // It fails again within the back-off (1 s, now 2 s): kept, and the key comes back later.
    fail(&mut w);
    let actions = w.sync();
    assert_eq!(w.pods_on("n2").len(), 1);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Requeue(d) if *d <= Duration::from_secs(2))));
    w.clock += 3;
    w.sync();
    assert!(w.pods_on("n2").is_empty());
}

#[test]
fn rolling_update_never_has_more_than_max_unavailable_nodes_without_an_available_pod() {
    let nodes: Vec<Arc<Node>> = (0..10).map(|i| node(&format!("n{i}"), &[], &[])).collect();
    let mut w = World::new(daemon_set("RollingUpdate", 3, 0), nodes);
    w.sync();
    w.run_pods();
    w.sync();
    w.set_image("agent:2");
    for _ in 0..40 {
        w.clock += 1;
        w.sync();
        let available = w
            .nodes
            .iter()
            .filter(|n| {
                w.pods_on(n.metadata.name.as_deref().unwrap())
                    .iter()
                    .any(|p| is_pod_available(p, 0, t(w.clock)))
            })
            .count();
        assert!(
            available >= 7,
            "only {available} nodes with an available pod"
        );
        w.run_pods();
    }
    assert_eq!(w.pods.len(), 10);
    assert!(w.pods.iter().all(|p| World::image_of(p) == "agent:2"));
    assert_eq!(w.revisions.len(), 2);
    let st = w.status();
    assert_eq!(st.updated_number_scheduled, Some(10));
    assert_eq!(st.observed_generation, Some(2));
}

#[test]
fn surge_starts_the_new_pod_before_the_old_one_goes() {
    let nodes: Vec<Arc<Node>> = (0..4).map(|i| node(&format!("n{i}"), &[], &[])).collect();
    let mut w = World::new(daemon_set("RollingUpdate", 0, 1), nodes);
    w.sync();
    w.run_pods();
    w.set_image("agent:2");
    let mut max_per_node = 0;
    for _ in 0..30 {
        w.clock += 1;
        w.sync();
        // Every node always has an available pod, and at most one node has two.
        for n in &w.nodes {
            let pods = w.pods_on(n.metadata.name.as_deref().unwrap());
            assert!(
                pods.iter().any(|p| is_pod_available(p, 0, t(w.clock))),
                "a node without an available pod"
            );
            max_per_node = max_per_node.max(pods.len());
        }
        let doubled = w
            .nodes
            .iter()
            .filter(|n| w.pods_on(n.metadata.name.as_deref().unwrap()).len() > 1)
            .count();
        assert!(doubled <= 1);
        w.run_pods();
    }
    assert_eq!(max_per_node, 2);
    assert!(w.pods.iter().all(|p| World::image_of(p) == "agent:2"));
    assert_eq!(w.pods.len(), 4);
}

#[test]
fn on_delete_replaces_only_the_pods_someone_deleted() {
    let mut w = World::new(daemon_set("OnDelete", 0, 0), three_nodes());
    w.sync();
    w.run_pods();
    w.set_image("agent:2");
    w.sync();
    assert!(w.pods.iter().all(|p| World::image_of(p) == "agent:1"));
    assert_eq!(w.status().updated_number_scheduled, Some(0));
    w.pods.retain(|p| target_node(p) != Some("n2"));
    w.sync();
    assert_eq!(World::image_of(w.pods_on("n2")[0]), "agent:2");
}

#[test]
fn undo_renumbers_the_old_revision_and_history_is_trimmed() {
    let mut ds = daemon_set("RollingUpdate", 10, 0);
    ds.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let mut w = World::new(ds, three_nodes());
    w.sync();
    let first = w.revisions[0].metadata.name.clone();
    w.run_pods();
    for image in ["agent:2", "agent:3"] {
        w.set_image(image);
        for _ in 0..3 {
            w.sync();
            w.run_pods();
        }
    }
    // Revisions 2 (agent:2) and 3 (agent:3); revision 1 trimmed (limit 1, no pod uses it).
    let mut revs: Vec<(i64, String)> = w
        .revisions
        .iter()
        .map(|r| {
            let d = &r.data.as_ref().unwrap().0;
            let image = d["spec"]["template"]["spec"]["containers"][0]["image"].clone();
            (r.revision, image.as_str().unwrap().to_string())
        })
        .collect();
    revs.sort();
    assert_eq!(revs, [(2, "agent:2".into()), (3, "agent:3".into())]);
    assert!(w.revisions.iter().all(|r| r.metadata.name != first));
    // `kubectl rollout undo`: the template of revision 2 comes back; that revision becomes 4.
    w.set_image("agent:2");
    w.sync();
    let undone = w
        .revisions
        .iter()
        .find(|r| r.revision == 4)
        .expect("revision 4");
    assert_eq!(
        undone.data.as_ref().unwrap().0["spec"]["template"]["$patch"],
        "replace"
    );
    assert_eq!(w.revisions.len(), 2);
}

#[test]
fn a_hash_collision_bumps_collision_count() {
    let mut w = World::new(daemon_set("RollingUpdate", 1, 0), three_nodes());
    let hash = compute_hash(&pod_template(&w.ds), None);
    // Someone else's revision under the name the DaemonSet wants.
    w.revisions.push(Arc::new(ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("agent-{hash}")),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        data: Some(RawExtension(json!({}))),
        revision: 1,
    }));
    let revisions = w.revisions.clone();
    w.revisions.clear();
    let named = move |n: &str| {
        revisions
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(n))
            .cloned()
    };
    let actions = reconcile(
        &w.ds,
        DaemonSetView {
            nodes: &w.nodes,
            pods: &[],
            revisions: &[],
            revision_named: &named,
            expectations_satisfied: true,
            backoff: &mut w.backoff,
            now: t(0),
        },
    );
    assert_eq!(actions.len(), 1);
    w.apply(&actions[0]);
    assert_eq!(w.status().collision_count, Some(1));
    w.sync();
    let new_name = format!("agent-{}", compute_hash(&pod_template(&w.ds), Some(1)));
    assert_eq!(
        w.revisions[0].metadata.name.as_deref(),
        Some(new_name.as_str())
    );
}

#[test]
fn unsatisfied_expectations_only_update_status_and_keep_observed_generation() {
    let mut w = World::new(daemon_set("RollingUpdate", 1, 0), three_nodes());
    w.sync();
    w.run_pods();
    w.sync();
    w.set_image("agent:2");
    let named = |_: &str| None;
    let actions = reconcile(
        &w.ds,
        DaemonSetView {
            nodes: &w.nodes,
            pods: &w.pods,
            revisions: &w.revisions,
            revision_named: &named,
            expectations_satisfied: false,
            backoff: &mut w.backoff,
            now: t(0),
        },
    );
    // The new revision is recorded, no pod is touched, observedGeneration stays 1.
    assert!(actions
        .iter()
        .all(|a| !matches!(a, Action::CreatePods { .. } | Action::Delete { .. })));
    for a in &actions {
        w.apply(a);
    }
    assert_eq!(w.status().observed_generation, Some(1));
    assert_eq!(w.status().updated_number_scheduled, Some(0));
}

#[test]
fn host_network_pods_tolerate_network_unavailable_and_user_tolerations_are_replaced() {
    let mut ds = daemon_set("RollingUpdate", 1, 0);
    let spec = ds.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    spec.host_network = Some(true);
    spec.tolerations = Some(vec![Toleration {
        key: Some("node.kubernetes.io/not-ready".into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: Some(30),
        ..Default::default()
    }]);
    let p = daemon_pod(&ds);
    let tols = p.spec.unwrap().tolerations.unwrap();
    assert_eq!(tols.len(), 7);
    assert_eq!(tols[0].toleration_seconds, None);
    assert!(tols
        .iter()
        .any(|t| t.key.as_deref() == Some(NETWORK_UNAVAILABLE)));
}
