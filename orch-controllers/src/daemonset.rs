//! DaemonSet controller, after upstream `pkg/controller/daemon/daemon_controller.go`,
//! `update.go` and `util/daemonset_util.go` (Kubernetes 1.33):
//! - one pod on every node that should run it: the template's `nodeSelector` and required node
//!   affinity match, and every `NoSchedule`/`NoExecute` taint is tolerated, counting the
//!   tolerations upstream adds to every daemon pod (`not-ready`/`unreachable` `NoExecute`
//!   without `tolerationSeconds`; disk/memory/pid pressure and `unschedulable` `NoSchedule`;
//!   `network-unavailable` for host-network pods), so a cordoned node keeps its daemon;
//! - a pod already on a node whose new taints it does not tolerate for `NoSchedule` only keeps
//!   running (`shouldContinueRunning`); a node relabelled out of the selector loses it;
//! - pods go through the scheduler: the template's required node affinity is replaced by one
//!   term selecting the node by `metadata.name` (`ReplaceDaemonSetPodNodeNameNodeAffinity`);
//!   an unscheduled pod whose node is gone is deleted;
//! - extra pods on a node are deleted, oldest kept; failed pods are deleted with a per-node
//!   back-off (1 s doubling to 15 min) and a `FailedDaemonPod` event;
//! - ControllerRevisions hold the template as a strategic merge patch (what `kubectl rollout
//!   undo` applies); pods carry the `controller-revision-hash` of theirs; old revisions beyond
//!   `revisionHistoryLimit` that no pod uses are deleted;
//! - `RollingUpdate` with `maxUnavailable` or `maxSurge` (resolved against the number of nodes
//!   that should run the pod), and `OnDelete`;
//! - status: desired, current, ready, available, updated, misscheduled, unavailable,
//!   `observedGeneration` (only after a full sync), `collisionCount`.
//!
//! Pods are claimed by controller reference only: orphans matching the selector are not
//! adopted (the ReplicaSet controller's adoption is not shared yet).

use crate::controller_utils::{
    claim, delete_pod, is_pod_available, is_pod_ready, orphan_pods, owned_pods, until_available,
};
use crate::history::{self, pod_hash, REVISION_HASH};
use crate::selector::{from_label_selector, scaled_value, selects, Selector};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_owner, trigger_self, Caches, Controller, Watches};
use orch_runtime::expectations::Expectations;
use orch_runtime::object::{controller_ref, is_deleting, key_of, name};
use orch_runtime::store::Change;
use orch_types::dynamic::DynamicObject;
use orch_types::events::ObjectRef;
use orch_types::node_selector::pod_matches_node;
use orch_types::taints::tolerations_tolerate;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Label with the DaemonSet generation a pod was made from (kept by upstream for old clients).
pub const TEMPLATE_GENERATION: &str = "pod-template-generation";
/// Pods created, and deleted, per sync at most (upstream `BurstReplicas`).
const BURST: usize = 250;
/// Back-off before a failed daemon pod on a node is deleted again (upstream
/// `failedPodsBackoff`: 1 s doubling to 15 min).
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// The tolerations every daemon pod gets (`AddOrUpdateDaemonPodTolerations`): the first two
/// `NoExecute` without `tolerationSeconds`, the rest `NoSchedule`.
const DAEMON_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];
/// Added for `hostNetwork` pods only.
const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

fn ds_ref(ds: &DaemonSet) -> ObjectRef {
    ObjectRef::of(ds)
}

fn owner_ref(ds: &DaemonSet) -> OwnerReference {
    controller_ref("apps/v1", "DaemonSet", &ds.metadata)
}

fn pod_template(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

fn min_ready(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// Adds `toleration` to `tols`, replacing one with the same key, operator, value and effect
/// (`AddOrUpdateTolerationInPodSpec`).
fn add_or_update(tols: &mut Vec<Toleration>, toleration: Toleration) {
    let same = |t: &Toleration| {
        t.key == toleration.key
            && t.effect == toleration.effect
            && t.operator == toleration.operator
            && t.value == toleration.value
    };
    match tols.iter_mut().find(|t| same(t)) {
        Some(t) => *t = toleration,
        None => tols.push(toleration),
    }
}

/// The pod the DaemonSet would run on `node_name`: the template with the daemon tolerations
/// (`NewPod`). Its node affinity is still the template's; see [`pin_to_node`].
fn daemon_pod(ds: &DaemonSet) -> Pod {
    let t = pod_template(ds);
    let mut spec = t.spec.unwrap_or_default();
    let tols = spec.tolerations.get_or_insert_with(Vec::new);
    let host_network = spec.host_network == Some(true);
    let extra = host_network.then_some((NETWORK_UNAVAILABLE, "NoSchedule"));
    for (key, effect) in DAEMON_TOLERATIONS.iter().copied().chain(extra) {
        add_or_update(
            tols,
            Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Default::default()
            },
        );
    }
    Pod {
        metadata: t.metadata.unwrap_or_default(),
        spec: Some(spec),
        status: None,
    }
}

/// Replaces the pod's required node affinity with one term selecting `node` by name
/// (`ReplaceDaemonSetPodNodeNameNodeAffinity`): the controller has already checked the
/// template's own terms against the node.
fn pin_to_node(pod: &mut Pod, node: &str) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
        }],
    });
}

/// The node a daemon pod is meant for (`GetTargetNodeName`): `spec.nodeName`, else the one
/// name its node affinity selects by `metadata.name`.
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([one]) => Some(one.as_str()),
            _ => None,
        })
}

fn untolerated(taints: &[Taint], tols: &[Toleration], effects: &[&str]) -> bool {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .any(|t| !tolerations_tolerate(tols, t))
}

/// `NodeShouldRunDaemonPod`: whether a new daemon pod should run on the node, and whether
/// one already there should keep running.
pub fn should_run(pod: &Pod, node: &Node) -> (bool, bool) {
    let spec = pod.spec.as_ref();
    let node_name = name(&node.metadata);
    if spec
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty() && n != node_name)
    {
        return (false, false);
    }
    if !pod_matches_node(pod, node) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let tols = spec
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    if untolerated(taints, tols, &["NoSchedule", "NoExecute"]) {
        return (false, !untolerated(taints, tols, &["NoExecute"]));
    }
    (true, true)
}

fn phase(p: &Pod) -> &str {
    crate::controller_utils::phase(p)
}

/// Oldest first, then by name (`podByCreationTimestampAndPhase`).
fn by_age(a: &&Pod, b: &&Pod) -> std::cmp::Ordering {
    let ct = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    ct(a)
        .cmp(&ct(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Back-off of failed-pod deletions per node of one DaemonSet (`flowcontrol.Backoff`).
#[derive(Debug, Default, Clone)]
pub struct FailedBackoff {
    per_node: HashMap<String, (Duration, Timestamp)>,
}

impl FailedBackoff {
    /// `Some(delay)` while the node is in back-off since its last failure.
    fn in_backoff(&self, node: &str, now: Timestamp) -> Option<Duration> {
        let (delay, at) = self.per_node.get(node)?;
        let elapsed = Duration::try_from(now.duration_since(*at)).unwrap_or_default();
        (elapsed < *delay).then(|| *delay - elapsed)
    }

    /// Records a deletion: the next one waits twice as long (reset after twice the maximum).
    fn next(&mut self, node: &str, now: Timestamp) {
        let delay = match self.per_node.get(node) {
            Some((d, at))
                if Duration::try_from(now.duration_since(*at)).unwrap_or_default()
                    <= 2 * BACKOFF_MAX =>
            {
                (*d * 2).min(BACKOFF_MAX)
            }
            _ => BACKOFF_INITIAL,
        };
        self.per_node.insert(node.into(), (delay, now));
    }
}

/// What one sync of a DaemonSet sees.
pub struct DaemonSetView<'a> {
    /// Every node.
    pub nodes: &'a [Arc<Node>],
    /// Pods the DaemonSet controls.
    pub pods: &'a [Arc<Pod>],
    /// ControllerRevisions it controls.
    pub revisions: &'a [Arc<ControllerRevision>],
    /// A ControllerRevision of the DaemonSet's namespace by name (for hash collisions).
    pub revision_named: &'a dyn Fn(&str) -> Option<Arc<ControllerRevision>>,
    /// Whether earlier creates and deletes have all been observed.
    pub expectations_satisfied: bool,
    /// Failed-pod back-off of this DaemonSet.
    pub backoff: &'a mut FailedBackoff,
    /// Now.
    pub now: Timestamp,
}

/// One sync of `ds` (`syncDaemonSet`).
pub fn reconcile(ds: &DaemonSet, view: DaemonSetView<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    let Some(hash) = sync_history(ds, &view, &mut actions) else {
        return actions;
    };
    let (nodes, pods, now) = (view.nodes, view.pods, view.now);
    let proto = daemon_pod(ds);
    let decisions: Vec<(&Node, bool, bool)> = nodes
        .iter()
        .map(|n| {
            let (run, keep) = should_run(&proto, n);
            (&**n, run, keep)
        })
        .collect();
    let mut by_node: HashMap<&str, Vec<&Pod>> = HashMap::new();
    // A pod with no target node is not a daemon pod of any node (upstream skips it too).
    for p in pods {
        if let Some(n) = target_node(p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let gone = gone_nodes(&decisions, &by_node);
    let full = view.expectations_satisfied && !is_deleting(&ds.metadata);
    if full {
        let nv = (decisions.as_slice(), &by_node, gone.as_slice());
        let changed = manage(ds, view.backoff, now, &hash, nv, &mut actions);
        if !changed && rolling(ds) {
            rolling_update(ds, &hash, nv, now, &mut actions);
        }
        // `cleanupHistory`.
        let limit = ds.spec.as_ref().and_then(|s| s.revision_history_limit);
        history::truncate(limit, view.revisions, pods, &[&hash], &mut actions);
    }
    status(ds, &hash, &decisions, &by_node, full, now, &mut actions);
    actions
}

/// Nodes the DaemonSet's pods target that are not in the node list (sorted).
fn gone_nodes<'a>(
    decisions: &[(&Node, bool, bool)],
    by_node: &HashMap<&'a str, Vec<&Pod>>,
) -> Vec<&'a str> {
    let covered = decisions
        .iter()
        .filter(|(n, _, _)| by_node.contains_key(name(&n.metadata)))
        .count();
    if covered == by_node.len() {
        return Vec::new();
    }
    let known: HashSet<&str> = decisions
        .iter()
        .map(|(n, _, _)| name(&n.metadata))
        .collect();
    let mut gone: Vec<&str> = by_node
        .keys()
        .copied()
        .filter(|n| !known.contains(n))
        .collect();
    gone.sort_unstable();
    gone
}

/// What the passes over nodes share: each node's decision (`should_run`), the pods by target
/// node, and the nodes that are gone.
type NodeView<'v, 'a> = (
    &'v [(&'a Node, bool, bool)],
    &'v HashMap<&'a str, Vec<&'a Pod>>,
    &'v [&'a str],
);

fn rolling(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// `constructHistory`: the current revision's hash (`None`: stop this sync after a hash
/// collision, with `collisionCount` raised).
fn sync_history(
    ds: &DaemonSet,
    view: &DaemonSetView<'_>,
    actions: &mut Vec<Action>,
) -> Option<String> {
    let template = pod_template(ds);
    let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
    let owner = history::Owner {
        meta: &ds.metadata,
        owner_ref: owner_ref(ds),
        template: &template,
        collision_count: collisions,
    };
    match history::sync(
        &owner,
        view.revisions,
        view.pods,
        view.revision_named,
        actions,
    ) {
        Ok(cur) => Some(cur.hash),
        Err(history::NameTaken) => {
            let mut st = ds.status.clone().unwrap_or_default();
            st.collision_count = Some(collisions.unwrap_or(0) + 1);
            actions.push(status_update(ds, st));
            None
        }
    }
}

/// A new pod of the current revision for `node`.
fn new_pod(ds: &DaemonSet, hash: &str, node: &str) -> DynamicObject {
    let mut pod = daemon_pod(ds);
    pin_to_node(&mut pod, node);
    let t = pod_template(ds);
    let mut meta =
        crate::controller_utils::pod_from_template(&t, &ds.metadata, owner_ref(ds)).metadata;
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(REVISION_HASH.into(), hash.into());
    if let Some(g) = ds.metadata.generation {
        labels.insert(TEMPLATE_GENERATION.into(), g.to_string());
    }
    pod.metadata = meta;
    DynamicObject::from_typed(&pod).unwrap_or_default()
}

/// Creates and deletes pods (`syncNodes`), at most [`BURST`] of each.
fn sync_nodes(
    ds: &DaemonSet,
    hash: &str,
    create_on: &[&str],
    delete: &[&Pod],
    actions: &mut Vec<Action>,
) {
    let key = key_of(&ds.metadata);
    if !create_on.is_empty() {
        actions.push(Action::CreatePods {
            pods: create_on
                .iter()
                .take(BURST)
                .map(|n| new_pod(ds, hash, n))
                .collect(),
            owner: ds_ref(ds),
            expectation_key: key.clone(),
        });
    }
    for p in delete.iter().take(BURST) {
        actions.push(delete_pod(p, None, Some((key.clone(), ds_ref(ds)))));
    }
}

/// `manage` + `podsShouldBeOnNode`: pods to create and delete so that each node that should
/// run the daemon has exactly one. Returns whether it changed anything.
fn manage(
    ds: &DaemonSet,
    backoff: &mut FailedBackoff,
    now: Timestamp,
    hash: &str,
    (decisions, by_node, gone): NodeView<'_, '_>,
    actions: &mut Vec<Action>,
) -> bool {
    let surge = max_surge_set(ds);
    let mut create_on: Vec<&str> = Vec::new();
    let mut delete: Vec<&Pod> = Vec::new();
    let mut requeue: Option<Duration> = None;
    for (node, run, keep) in decisions {
        let node_name = name(&node.metadata);
        let pods = by_node
            .get(node_name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let live: Vec<&Pod> = pods
            .iter()
            .copied()
            .filter(|p| !is_deleting(&p.metadata))
            .collect();
        if *run && pods.is_empty() {
            create_on.push(node_name);
            continue;
        }
        if *keep {
            let mut running: Vec<&Pod> = Vec::new();
            for p in &live {
                match phase(p) {
                    "Failed" => {
                        if let Some(d) = backoff.in_backoff(node_name, now) {
                            requeue = Some(requeue.map_or(d, |r| r.min(d)));
                            continue;
                        }
                        backoff.next(node_name, now);
                        actions.push(Action::warning(
                            ds_ref(ds),
                            "FailedDaemonPod",
                            format!(
                                "Found failed daemon pod {}/{} on node {node_name}, will try to kill it",
                                p.metadata.namespace.as_deref().unwrap_or(""),
                                name(&p.metadata)
                            ),
                        ));
                        delete.push(p);
                    }
                    "Succeeded" => delete.push(p),
                    _ => running.push(p),
                }
            }
            if running.len() <= 1 {
                continue;
            }
            running.sort_by(by_age);
            if !surge {
                delete.extend(&running[1..]);
                continue;
            }
            // With surge, an old and a new pod may both run while the new one is not ready.
            let (mut oldest_new, mut oldest_old) = (None, None);
            for p in running {
                let slot = if pod_hash(p) == Some(hash) {
                    &mut oldest_new
                } else {
                    &mut oldest_old
                };
                if slot.is_none() {
                    *slot = Some(p);
                } else {
                    delete.push(p);
                }
            }
            if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                if !is_pod_ready(old) || is_pod_ready(new) {
                    delete.push(old);
                }
            }
        } else {
            delete.extend(live);
        }
    }
    // Unscheduled pods meant for a node that no longer exists (`getUnscheduledPodsWithoutNode`).
    for pods in gone.iter().filter_map(|n| by_node.get(n)) {
        delete.extend(pods.iter().copied().filter(|p| {
            !is_deleting(&p.metadata)
                && p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty)
        }));
    }
    let changed = !create_on.is_empty() || !delete.is_empty();
    sync_nodes(ds, hash, &create_on, &delete, actions);
    if let Some(d) = requeue {
        actions.push(Action::Requeue(d));
    }
    changed
}

/// `findUpdatedPodsOnNode`: the node's one pod of the current revision and one of an older
/// one; `None` if it has more than one of either (the manage pass cleans that up first).
fn updated_on_node<'p>(pods: &[&'p Pod], hash: &str) -> Option<(Option<&'p Pod>, Option<&'p Pod>)> {
    let (mut new, mut old) = (None, None);
    for p in pods.iter().copied().filter(|p| !is_deleting(&p.metadata)) {
        let slot = if pod_hash(p) == Some(hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.replace(p).is_some() {
            return None;
        }
    }
    Some((new, old))
}

/// Whether `maxSurge` is set to more than zero (`AllowsSurge`).
fn max_surge_set(ds: &DaemonSet) -> bool {
    let ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref());
    ru.and_then(|r| r.max_surge.as_ref())
        .is_some_and(|v| scaled_value(Some(v), 100, true) > 0)
}

/// `rollingUpdate`: replaces old pods node by node within `maxUnavailable`, or with
/// `maxSurge` starts the new pod first and deletes the old one once the new one is available.
fn rolling_update(
    ds: &DaemonSet,
    hash: &str,
    (decisions, by_node, gone): NodeView<'_, '_>,
    now: Timestamp,
    actions: &mut Vec<Action>,
) {
    // `updatedDesiredNodeCounts`: nodes with pods and nodes that want one, with whether a
    // daemon should run there.
    let empty: &[&Pod] = &[];
    let mut nodes: Vec<(&str, &[&Pod], bool)> = Vec::new();
    for (n, run, _) in decisions {
        let pods = by_node.get(name(&n.metadata)).map_or(empty, Vec::as_slice);
        if *run || !pods.is_empty() {
            nodes.push((name(&n.metadata), pods, *run));
        }
    }
    nodes.extend(
        gone.iter()
            .filter_map(|n| Some((*n, by_node.get(n)?.as_slice(), false))),
    );
    let desired = decisions.iter().filter(|d| d.1).count() as i32;
    let ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.clone())
        .unwrap_or_default();
    let mut max_unavailable = scaled_value(ru.max_unavailable.as_ref(), desired, true);
    let max_surge = scaled_value(ru.max_surge.as_ref(), desired, true);
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    let min_ready = min_ready(ds);
    let available = |p: &Pod| is_pod_available(p, min_ready, now);
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut delete: Vec<&Pod> = Vec::new();
        let mut candidates: Vec<&Pod> = Vec::new();
        for (_, pods, _) in &nodes {
            match updated_on_node(pods, hash) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(old) {
                        // Not available anyway: replacing it costs nothing.
                        delete.push(old);
                    } else if unavailable < max_unavailable {
                        candidates.push(old);
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i32) as usize;
        delete.extend(&candidates[..room]);
        sync_nodes(ds, hash, &[], &delete, actions);
        return;
    }
    let mut surged = 0;
    let mut delete: Vec<&Pod> = Vec::new();
    let mut create_on: Vec<&str> = Vec::new();
    let mut candidates: Vec<&str> = Vec::new();
    for (node, pods, run) in &nodes {
        match updated_on_node(pods, hash) {
            None | Some((_, None)) => {}
            Some((None, Some(old))) => {
                if !available(old) {
                    if *run {
                        create_on.push(node);
                    } else {
                        delete.push(old);
                    }
                } else if surged < max_surge {
                    candidates.push(node);
                }
            }
            Some((Some(new), Some(old))) => {
                if available(new) {
                    delete.push(old);
                } else {
                    surged += 1;
                }
            }
        }
    }
    let room = (max_surge - surged).clamp(0, candidates.len() as i32) as usize;
    create_on.extend(&candidates[..room]);
    sync_nodes(ds, hash, &create_on, &delete, actions);
}

fn status_update(ds: &DaemonSet, st: DaemonSetStatus) -> Action {
    let mut d = ds.clone();
    d.status = Some(st);
    Action::update_status(&d)
}

/// `updateDaemonSetStatus`: the counts over nodes; `observedGeneration` moves only after a
/// full sync.
fn status(
    ds: &DaemonSet,
    hash: &str,
    decisions: &[(&Node, bool, bool)],
    by_node: &HashMap<&str, Vec<&Pod>>,
    full: bool,
    now: Timestamp,
    actions: &mut Vec<Action>,
) {
    let min_ready = min_ready(ds);
    let (mut desired, mut current, mut mis, mut ready, mut available, mut updated) =
        (0, 0, 0, 0, 0, 0);
    let mut wake: Option<Duration> = None;
    for (node, run, _) in decisions {
        // Deleted pods that already ended do not count (`getNodesToDaemonPods(ds, false)`).
        let oldest = by_node
            .get(name(&node.metadata))
            .into_iter()
            .flatten()
            .filter(|p| !(is_deleting(&p.metadata) && matches!(phase(p), "Succeeded" | "Failed")))
            .min_by(|a, b| by_age(a, b));
        if !run {
            if oldest.is_some() {
                mis += 1;
            }
            continue;
        }
        desired += 1;
        let Some(p) = oldest else {
            continue;
        };
        current += 1;
        if is_pod_ready(p) {
            ready += 1;
            if is_pod_available(p, min_ready, now) {
                available += 1;
            } else if let Some(d) = until_available(p, min_ready, now) {
                wake = Some(wake.map_or(d, |w| w.min(d)));
            }
        }
        if pod_hash(p) == Some(hash) {
            updated += 1;
        }
    }
    let old = ds.status.clone().unwrap_or_default();
    let st = DaemonSetStatus {
        desired_number_scheduled: desired,
        current_number_scheduled: current,
        number_misscheduled: mis,
        number_ready: ready,
        number_available: Some(available),
        updated_number_scheduled: Some(updated),
        number_unavailable: Some(desired - available),
        observed_generation: if full {
            ds.metadata.generation
        } else {
            old.observed_generation
        },
        ..old.clone()
    };
    if st != old {
        actions.push(status_update(ds, st));
    }
    if let Some(d) = wake {
        actions.push(Action::Requeue(d));
    }
}

/// Whether a node change can change where daemons run (`shouldIgnoreNodeUpdate` inverted):
/// labels, spec (taints, unschedulable) or the type and status of a condition.
fn node_change_matters(old: &Node, new: &Node) -> bool {
    let conds = |n: &Node| -> Vec<(String, String)> {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    };
    old.metadata.labels != new.metadata.labels || old.spec != new.spec || conds(old) != conds(new)
}

/// The DaemonSet controller's declaration.
#[derive(Debug, Default)]
pub struct DaemonSetController {
    expectations: Expectations,
    backoff: Mutex<HashMap<String, FailedBackoff>>,
    /// Node names in order, kept until a node is added or deleted: every sync walks all nodes,
    /// and sorting thousands of keys each time would cost more than the walk.
    node_names: Arc<Mutex<Option<Arc<Vec<String>>>>>,
}

/// The DaemonSet's selector, `None` if it does not parse (it then selects nothing).
fn selector(ds: &DaemonSet) -> Option<Selector> {
    from_label_selector(ds.spec.as_ref().map(|s| &s.selector)).ok()
}

impl Controller for DaemonSetController {
    fn name(&self) -> &'static str {
        "daemonset"
    }

    fn component(&self) -> &'static str {
        "daemonset-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<DaemonSet>(trigger_self());
        let (owned, orphans) = (
            owned_pods("DaemonSet", self.expectations.clone()),
            orphan_pods::<DaemonSet>(|ds, p| selects(selector(ds).as_ref(), &p.metadata)),
        );
        w.watch::<Pod>(Arc::new(move |c, caches, keys| {
            owned(c, caches, keys);
            orphans(c, caches, keys);
        }));
        w.watch::<ControllerRevision>(trigger_owner("DaemonSet"));
        // upstream addNode / updateNode: only DaemonSets whose decision for the node changes
        // (a Ready condition flipping alone changes none: the not-ready taints are tolerated).
        let names = self.node_names.clone();
        w.watch::<Node>(Arc::new(move |c, caches, keys| {
            let (old, new) = match c {
                Change::Updated(old, new) if node_change_matters(old, new) => (Some(old), new),
                Change::Added(n) => {
                    *names.lock() = None;
                    (None, n)
                }
                Change::Deleted(_) => {
                    // Its pods go with the node (pod GC); the count of desired pods changes.
                    *names.lock() = None;
                    keys.extend(caches.get::<DaemonSet>().keys());
                    return;
                }
                _ => return,
            };
            for ds in caches.get::<DaemonSet>().list() {
                let proto = daemon_pod(&ds);
                let now = should_run(&proto, new);
                if old.map_or(now.0, |o| should_run(&proto, o) != now) {
                    keys.push(key_of(&ds.metadata));
                }
            }
        }));
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let Some(ds) = caches.get::<DaemonSet>().get(key) else {
            self.expectations.delete(key);
            self.backoff.lock().remove(key);
            return Vec::new();
        };
        // Being deleted (foreground or orphaning): its pods and revisions may be going or
        // losing their owner, so no history is built and no pod made (upstream
        // `syncDaemonSet` / `updateStatefulSet` return early); the garbage collector
        // finishes it.
        if is_deleting(&ds.metadata) {
            return Vec::new();
        }
        // upstream `getDaemonPods` / `controlledHistories`: claim pods and revisions by the
        // selector (adopt orphans, release what stopped matching).
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let owner = controller_ref("apps/v1", "DaemonSet", &ds.metadata);
        let sel = selector(&ds);
        let pods = claim(
            &caches.get::<Pod>().claimable(&uid, &ns),
            &ds.metadata,
            &owner,
            |p: &Pod| selects(sel.as_ref(), &p.metadata),
        );
        let revisions = claim(
            &caches.get::<ControllerRevision>().claimable(&uid, &ns),
            &ds.metadata,
            &owner,
            |r: &ControllerRevision| selects(sel.as_ref(), &r.metadata),
        );
        let mut claims = pods.actions.clone();
        claims.extend(revisions.actions.iter().cloned());
        let (pods, revisions) = (pods.all(), revisions.all());
        let crs = caches.get::<ControllerRevision>();
        let node_store = caches.get::<Node>();
        let names = self
            .node_names
            .lock()
            .get_or_insert_with(|| {
                let mut keys = node_store.keys();
                keys.sort_unstable();
                Arc::new(keys)
            })
            .clone();
        let nodes: Vec<Arc<Node>> = names.iter().filter_map(|k| node_store.get(k)).collect();
        let ns = ds.metadata.namespace.clone();
        let named = move |n: &str| crs.get_in(ns.as_deref(), n);
        let mut backoff = self.backoff.lock();
        claims.extend(reconcile(
            &ds,
            DaemonSetView {
                nodes: &nodes,
                pods: &pods,
                revisions: &revisions,
                revision_named: &named,
                expectations_satisfied: self.expectations.satisfied(key, now),
                backoff: backoff.entry(key.to_string()).or_default(),
                now,
            },
        ));
        claims
    }

    fn expectations(&self) -> Option<Expectations> {
        Some(self.expectations.clone())
    }
}

#[cfg(test)]
mod tests;
