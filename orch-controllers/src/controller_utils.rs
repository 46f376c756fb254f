//! Pod helpers shared by the workload controllers, after `pkg/controller/controller_utils.go`
//! and `pkg/api/v1/pod/util.go`: readiness, availability, activeness, the deletion ranking, and
//! building a pod from a template; and claiming objects by selector
//! (`pkg/controller/controller_ref_manager.go`): [`claim`], [`orphan_pods`].

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_owner, Mapper};
use orch_runtime::expectations::Expectations;
use orch_runtime::object::{controller_key, is_deleting};
use orch_runtime::store::Change;
use orch_types::client::Patch;
use orch_types::events::ObjectRef;
use orch_types::registry::ApiResource;
use serde_json::json;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

/// `controller.kubernetes.io/pod-deletion-cost`.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The pod's condition of this type.
pub fn pod_condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// `IsPodReady`: condition Ready is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod_condition(pod, "Ready").is_some_and(|c| c.status == "True")
}

/// `IsPodAvailable`: ready for at least `min_ready_seconds` (Ready's lastTransitionTime).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(c) = pod_condition(pod, "Ready").filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds == 0 {
        return true;
    }
    match &c.last_transition_time {
        Some(t) => {
            t.0.checked_add(SignedDuration::from_secs(i64::from(min_ready_seconds)))
                .is_ok_and(|at| at <= now)
        }
        None => false,
    }
}

/// Time until a ready pod becomes available (`None` if not ready or already available).
pub fn until_available(
    pod: &Pod,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<std::time::Duration> {
    let c = pod_condition(pod, "Ready").filter(|c| c.status == "True")?;
    let at = c
        .last_transition_time
        .as_ref()?
        .0
        .checked_add(SignedDuration::from_secs(i64::from(min_ready_seconds)))
        .ok()?;
    (at > now).then(|| std::time::Duration::try_from(at.duration_since(now)).unwrap_or_default())
}

/// Pod phase or `""`.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// `IsPodActive`: not Succeeded, not Failed, not being deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    let p = phase(pod);
    p != "Succeeded" && p != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

/// `IsPodTerminal`.
pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn phase_rank(p: &str) -> u8 {
    // controller_utils.go: PodPending < PodUnknown < PodRunning
    match p {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter().map(|c| c.restart_count).max().unwrap_or(0)
        })
}

fn ready_time(pod: &Pod) -> Option<Timestamp> {
    pod_condition(pod, "Ready")
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Orders pods so that the ones to delete first come first (`ActivePodsWithRanks.Less`).
///
/// `rank` is the number of related pods on the same node ("doubled up" pods go first).
pub fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("")
            .to_string()
    };
    // 1. Unassigned < assigned.
    let (na, nb) = (node(a), node(b));
    if na.is_empty() != nb.is_empty() {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending < Unknown < Running.
    let (pa, pb) = (phase_rank(phase(a)), phase_rank(phase(b)));
    if pa != pb {
        return pa.cmp(&pb);
    }
    // 3. Not ready < ready.
    if is_pod_ready(a) != is_pod_ready(b) {
        return if is_pod_ready(a) {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    // 4. Lower pod-deletion-cost first.
    let (ca, cb) = (deletion_cost(a), deletion_cost(b));
    if ca != cb {
        return ca.cmp(&cb);
    }
    // 5. Doubled-up pods (higher rank) first.
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    // 6. Ready for less time first.
    if is_pod_ready(a) && is_pod_ready(b) {
        if let (Some(ta), Some(tb)) = (ready_time(a), ready_time(b)) {
            if ta != tb {
                return tb.cmp(&ta);
            }
        }
    }
    // 7. More restarts first.
    let (ra, rb) = (restarts(a), restarts(b));
    if ra != rb {
        return rb.cmp(&ra);
    }
    // 8. Newer first (empty creation time first).
    let ct = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    match (ct(a), ct(b)) {
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) if x != y => y.cmp(&x),
        _ => a.metadata.name.cmp(&b.metadata.name),
    }
}

/// Picks `n` pods to delete from `pods`, ranking by co-location with `related` pods
/// (`getPodsToDelete` + `getPodsRankedByRelatedPodsOnSameNode`).
pub fn pods_to_delete<'a>(pods: &[&'a Pod], related: &[&Pod], n: usize) -> Vec<&'a Pod> {
    if n >= pods.len() {
        return pods.to_vec();
    }
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_pod_active(p)) {
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let rank = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .and_then(|nd| per_node.get(nd).copied())
            .unwrap_or(0)
    };
    let mut v: Vec<(&Pod, usize)> = pods.iter().map(|p| (*p, rank(p))).collect();
    v.sort_by(|(a, ra), (b, rb)| deletion_order(a, *ra, b, *rb));
    v.into_iter().take(n).map(|(p, _)| p).collect()
}

/// `GetPodFromTemplate`: a new pod for `owner` from `template` (`generateName: <owner>-`).
pub fn pod_from_template(
    template: &PodTemplateSpec,
    owner: &ObjectMeta,
    controller_ref: OwnerReference,
) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    let prefix = format!("{}-", owner.name.as_deref().unwrap_or(""));
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(prefix),
            namespace: owner.namespace.clone(),
            labels: tm.labels.clone(),
            annotations: tm.annotations.clone(),
            finalizers: tm.finalizers.clone(),
            owner_references: Some(vec![controller_ref]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Sets (or replaces) a condition in a list, keeping `lastTransitionTime` when the status does
/// not change. Returns true if anything changed.
pub fn set_pod_condition(conds: &mut Vec<PodCondition>, c: PodCondition) -> bool {
    match conds.iter_mut().find(|x| x.type_ == c.type_) {
        Some(x) => {
            if x.status == c.status && x.reason == c.reason && x.message == c.message {
                return false;
            }
            let keep_time = x.status == c.status;
            let ltt = x.last_transition_time.clone();
            *x = c;
            if keep_time {
                x.last_transition_time = ltt;
            }
            true
        }
        None => {
            conds.push(c);
            true
        }
    }
}

/// Deleting pod `p` (UID precondition, so a newer pod of the same name is never hit), with
/// `grace_period_seconds` (`Some(0)`: force) and, for a controller deleting its own pods, the
/// expectations key and event target `owner` (upstream `PodControl.DeletePod`).
pub fn delete_pod(
    p: &Pod,
    grace_period_seconds: Option<i64>,
    owner: Option<(String, ObjectRef)>,
) -> Action {
    Action::Delete {
        resource: ApiResource::of::<Pod>(),
        namespace: p.metadata.namespace.clone(),
        name: p.metadata.name.clone().unwrap_or_default(),
        uid: p.metadata.uid.clone(),
        propagation: None,
        grace_period_seconds,
        owner,
    }
}

/// The objects of kind `K` whose controller reference names `uid` (the controller's pods or
/// ControllerRevisions; no adoption of orphans).
pub fn controlled<K: orch_runtime::object::Kind>(
    caches: &orch_runtime::controller::Caches,
    uid: &str,
) -> Vec<std::sync::Arc<K>> {
    caches
        .get::<K>()
        .owned_by(uid)
        .into_iter()
        .filter(|o| orch_runtime::object::controller_of(o.meta()).is_some_and(|r| r.uid == uid))
        .collect()
}

/// Maps pod changes to their controller of `kind` (before and after the change) and lowers
/// its expectations: an added pod is a creation observed; a pod that starts terminating, or
/// goes without having been terminating, a deletion (upstream `addPod` / `updatePod` /
/// `deletePod` of the DaemonSet, StatefulSet and Job controllers).
pub fn owned_pods(kind: &'static str, exp: Expectations) -> Mapper<Pod> {
    let owner = trigger_owner::<Pod>(kind);
    std::sync::Arc::new(move |c, caches, keys| {
        match c {
            Change::Added(p) => {
                if let Some(k) = controller_key(&p.metadata, kind) {
                    exp.creation_observed(&k);
                }
            }
            Change::Updated(old, new)
                if is_deleting(&new.metadata) && !is_deleting(&old.metadata) =>
            {
                if let Some(k) = controller_key(&new.metadata, kind) {
                    exp.deletion_observed(&k);
                }
            }
            Change::Deleted(p) if !is_deleting(&p.metadata) => {
                if let Some(k) = controller_key(&p.metadata, kind) {
                    exp.deletion_observed(&k);
                }
            }
            _ => {}
        }
        owner(c, caches, keys);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(Into::into),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(Timestamp::UNIX_EPOCH)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn deletion_ranking_follows_upstream_order() {
        let unscheduled = pod("unscheduled", None, "Pending", false);
        let pending = pod("pending", Some("n1"), "Pending", false);
        let running_not_ready = pod("running-not-ready", Some("n1"), "Running", false);
        let ready = pod("ready", Some("n2"), "Running", true);
        let all = [&ready, &running_not_ready, &pending, &unscheduled];
        let picked: Vec<_> = pods_to_delete(&all, &all, 3)
            .into_iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(picked, ["unscheduled", "pending", "running-not-ready"]);
    }

    #[test]
    fn availability_waits_min_ready_seconds() {
        let p = pod("p", Some("n"), "Running", true);
        assert!(is_pod_available(&p, 0, Timestamp::UNIX_EPOCH));
        assert!(!is_pod_available(
            &p,
            10,
            Timestamp::from_second(9).unwrap()
        ));
        assert!(is_pod_available(
            &p,
            10,
            Timestamp::from_second(10).unwrap()
        ));
        assert_eq!(
            until_available(&p, 10, Timestamp::from_second(4).unwrap()),
            Some(std::time::Duration::from_secs(6))
        );
    }
}

/// What a controller claimed of the candidates [`claim`] was given.
#[derive(Debug)]
pub struct Claimed<K> {
    /// Objects it already controls whose labels still match.
    pub owned: Vec<Arc<K>>,
    /// Orphans it adopts (as cached: without the new owner reference yet).
    pub adopted: Vec<Arc<K>>,
    /// The adoption and release patches, to issue before anything that counts on them.
    pub actions: Vec<Action>,
}

impl<K> Claimed<K> {
    /// Owned and adopted objects.
    pub fn all(&self) -> Vec<Arc<K>> {
        self.owned.iter().chain(&self.adopted).cloned().collect()
    }
}

/// upstream `BaseControllerRefManager.ClaimObject` over `candidates` (objects the owner
/// controls and orphans of its namespace, `Store::claimable`): an object it controls whose
/// labels `selects` no longer is released (unless the owner is being deleted); an orphan it
/// selects is adopted (unless either is being deleted); objects of other controllers are left
/// alone. Adoption and release are JSON patches guarded by the object's UID (and the owner
/// reference's, for a release), as upstream's.
pub fn claim<K>(
    candidates: &[Arc<K>],
    owner: &ObjectMeta,
    owner_ref: &OwnerReference,
    selects: impl Fn(&K) -> bool,
) -> Claimed<K>
where
    K: orch_runtime::object::Object + k8s_openapi::Resource,
    K::Scope: 'static,
{
    let mut out = Claimed {
        owned: Vec::new(),
        adopted: Vec::new(),
        actions: Vec::new(),
    };
    let owner_uid = owner.uid.as_deref().unwrap_or_default();
    for o in candidates {
        let m = o.meta();
        match orch_runtime::object::controller_of(m) {
            Some(r) if r.uid == owner_uid => {
                if selects(o) {
                    out.owned.push(o.clone());
                } else if !is_deleting(owner) {
                    if let Some(p) = release_patch(m, owner_uid) {
                        out.actions.push(patch_of::<K>(m, p));
                    }
                }
            }
            Some(_) => {}
            None => {
                let same_ns = owner.namespace.is_none() || owner.namespace == m.namespace;
                if same_ns && !is_deleting(owner) && !is_deleting(m) && selects(o) {
                    out.actions
                        .push(patch_of::<K>(m, adopt_patch(m, owner_ref)));
                    out.adopted.push(o.clone());
                }
            }
        }
    }
    out
}

fn patch_of<K>(m: &ObjectMeta, patch: Patch) -> Action
where
    K: k8s_openapi::Resource,
    K::Scope: 'static,
{
    Action::Patch {
        resource: ApiResource::of::<K>(),
        namespace: m.namespace.clone(),
        name: m.name.clone().unwrap_or_default(),
        subresource: None,
        patch,
    }
}

/// JSON patch adding `owner` as the controller reference of `m` (guarded by its UID).
fn adopt_patch(m: &ObjectMeta, owner: &OwnerReference) -> Patch {
    let uid = m.uid.as_deref().unwrap_or_default();
    let owner = serde_json::to_value(owner).unwrap_or_default();
    let add = if m.owner_references.as_ref().is_none_or(Vec::is_empty) {
        json!({"op": "add", "path": "/metadata/ownerReferences", "value": [owner]})
    } else {
        json!({"op": "add", "path": "/metadata/ownerReferences/-", "value": owner})
    };
    Patch::Json(json!([{"op": "test", "path": "/metadata/uid", "value": uid}, add]))
}

/// JSON patch removing the owner reference with `owner_uid` from `m`.
fn release_patch(m: &ObjectMeta, owner_uid: &str) -> Option<Patch> {
    let refs = m.owner_references.as_deref().unwrap_or_default();
    let i = refs.iter().position(|r| r.uid == owner_uid)?;
    Some(Patch::Json(json!([
        {"op": "test", "path": "/metadata/uid", "value": m.uid.as_deref().unwrap_or_default()},
        {"op": "test", "path": format!("/metadata/ownerReferences/{i}/uid"), "value": owner_uid},
        {"op": "remove", "path": format!("/metadata/ownerReferences/{i}")},
    ])))
}

/// Keys the controllers of kind `K` in a pod's namespace that would adopt it: for a pod
/// without a controller that appears or changes its labels, each `K` whose selector
/// (`selector`) matches it (upstream `getPodReplicaSets` / `getPodDaemonSets` /
/// `getPodStatefulSets` on `addPod` / `updatePod`).
pub fn orphan_pods<K: orch_runtime::object::Kind>(selector: fn(&K, &Pod) -> bool) -> Mapper<Pod> {
    Arc::new(move |c, caches, keys| {
        let p = c.object();
        let relevant = match c {
            Change::Added(_) => true,
            Change::Updated(old, new) => old.metadata.labels != new.metadata.labels,
            _ => false,
        };
        if !relevant || orch_runtime::object::controller_of(&p.metadata).is_some() {
            return;
        }
        let ns = p.metadata.namespace.as_deref().unwrap_or_default();
        for k in caches.get::<K>().list_namespace(ns) {
            if selector(&k, p) {
                let key = orch_runtime::object::key_of(k.meta());
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
    })
}

#[cfg(test)]
mod claim_tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use orch_runtime::object::controller_ref;

    fn pod(name: &str, app: &str, owner: Option<&str>, deleting: bool) -> Arc<Pod> {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"),
                         "labels": {"app": app}},
        }))
        .unwrap();
        if let Some(o) = owner {
            p.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "DaemonSet".into(),
                name: o.into(),
                uid: format!("u-{o}"),
                controller: Some(true),
                ..Default::default()
            }]);
        }
        if deleting {
            p.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        }
        Arc::new(p)
    }

    fn owner(deleting: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some("ds".into()),
            namespace: Some("ns".into()),
            uid: Some("u-ds".into()),
            deletion_timestamp: deleting.then_some(Time(Timestamp::UNIX_EPOCH)),
            ..Default::default()
        }
    }

    fn names(v: &[Arc<Pod>]) -> Vec<&str> {
        v.iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect()
    }

    fn patched(actions: &[Action]) -> Vec<(String, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Patch {
                    name,
                    patch: Patch::Json(v),
                    ..
                } => Some((
                    name.clone(),
                    v.as_array()?.last()?["op"].as_str()?.to_string(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn claims_adopt_orphans_and_release_what_stopped_matching() {
        let pods = vec![
            pod("mine", "web", Some("ds"), false),
            pod("relabelled", "db", Some("ds"), false),
            pod("orphan", "web", None, false),
            pod("stray", "db", None, false),
            pod("theirs", "web", Some("other"), false),
            pod("going", "web", None, true),
        ];
        let web = |p: &Pod| {
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l["app"] == "web")
        };
        let m = owner(false);
        let r = controller_ref("apps/v1", "DaemonSet", &m);
        let c = claim(&pods, &m, &r, web);
        assert_eq!(names(&c.owned), ["mine"]);
        assert_eq!(names(&c.adopted), ["orphan"]);
        assert_eq!(
            patched(&c.actions),
            [
                ("relabelled".to_string(), "remove".to_string()),
                ("orphan".to_string(), "add".to_string())
            ]
        );
        // An owner being deleted adopts nothing and releases nothing.
        let m = owner(true);
        let c = claim(&pods, &m, &r, web);
        assert_eq!(names(&c.owned), ["mine"]);
        assert!(c.adopted.is_empty() && c.actions.is_empty());
    }
}
