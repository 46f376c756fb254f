//! Pod helpers shared by the workload controllers, after `pkg/controller/controller_utils.go`
//! and `pkg/api/v1/pod/util.go`: readiness, availability, activeness, the deletion ranking, and
//! building a pod from a template.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_owner, Mapper};
use orch_runtime::expectations::Expectations;
use orch_runtime::object::{controller_key, is_deleting};
use orch_runtime::store::Change;
use orch_types::events::ObjectRef;
use orch_types::registry::ApiResource;
use std::cmp::Ordering;
use std::collections::HashMap;

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
