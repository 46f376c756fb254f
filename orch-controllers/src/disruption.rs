//! Disruption controller: the status of every PodDisruptionBudget, after upstream
//! `pkg/controller/disruption/disruption.go` (Kubernetes 1.33). The eviction subresource of the
//! API server reads that status to allow or refuse an eviction and records each eviction it
//! allows in `status.disruptedPods`; this controller recomputes the budget from the pods.
//!
//! - A budget selects the pods of its namespace its `selector` matches (policy/v1: an empty
//!   selector selects every pod, a missing one none, upstream `LabelSelectorAsSelector`).
//! - `minAvailable` as an integer: `expectedPods` is the number of selected pods and
//!   `desiredHealthy` the integer. `minAvailable` as a percentage and `maxUnavailable` (either
//!   form) count the expected pods from the scale of the pods' controllers
//!   (`getExpectedScale`): a ReplicationController, a ReplicaSet (the Deployment above it when
//!   there is one), a StatefulSet, each read from the caches (`spec.replicas`). Percentages
//!   round up; `desiredHealthy` is `expected − maxUnavailable`, at least 0. A pod without a
//!   controller is *unmanaged*: it is left out of the count with an `UnmanagedPods` warning
//!   (upstream since 1.26). A pod whose controller has no scale (a Job, a DaemonSet) or is not
//!   in the caches fails the sync.
//! - `currentHealthy`: selected pods that are Ready, not being deleted, and not in
//!   `disruptedPods`. `disruptionsAllowed` is `currentHealthy − desiredHealthy`, and 0 when that
//!   is negative or no pod is expected.
//! - `disruptedPods` keeps the pods the eviction handler let go until they are seen being
//!   deleted, or for at most [`DELETION_TIMEOUT`] (then a `NotDeleted` warning on the pod); the
//!   key is looked at again when the next entry expires.
//! - Condition `DisruptionAllowed`: `True`/`SufficientPods` when disruptions are allowed,
//!   `False`/`InsufficientPods` otherwise; a failed sync sets `False`/`SyncFailed` with the
//!   error and `disruptionsAllowed` 0 and leaves the rest of the status as it was (upstream
//!   `failSafe`), so no eviction is allowed on a budget the controller could not compute.
//! - The status is written only when it changed, with the cached resourceVersion (a conflict
//!   with the eviction handler's write retries the key).
//!
//! Not modelled: the scale subresource of custom resources (a pod controlled by one fails the
//! sync with "found no controllers"), the clean-up of stale `DisruptionTarget` pod conditions
//! (the eviction handler does not set that condition either), and the `MultiplePodDisruption
//! Budgets` pod event (a pod's change enqueues every budget that selects it).

use crate::controller_utils::is_pod_ready;
pub use crate::scale::Workloads;
use crate::selector::{from_label_selector, Selector};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_self, Caches, Controller, Watches};
use orch_runtime::object::{controller_of, is_deleting, key_of, name, namespace};
use orch_runtime::store::Change;
use orch_types::conditions::set_status_condition;
use orch_types::events::ObjectRef;
use orch_types::registry::split_api_version;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How long an entry of `status.disruptedPods` waits for its pod to be seen being deleted
/// (upstream `DeletionTimeout`).
pub const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);
pub use orch_types::conditions::{
    update_disruption_allowed_condition, DISRUPTION_ALLOWED, INSUFFICIENT_PODS, SUFFICIENT_PODS,
};
/// Reason of a `False` condition: the budget could not be computed.
pub const SYNC_FAILED: &str = "SyncFailed";

/// The disruption controller's declaration.
#[derive(Debug, Default)]
pub struct DisruptionController;

/// The scale of a pod's controller (its reference `r`, in namespace `ns`), as (UID,
/// `spec.replicas`); `Ok(None)` when it is not found; an error when its kind has no scale.
/// Upstream tries the ReplicationController, Deployment, ReplicaSet and StatefulSet finders,
/// then the scale subresource; a ReplicaSet whose Deployment is missing answers with its own
/// scale there, which is what happens here too.
fn scale_of(
    workloads: &Workloads,
    r: &OwnerReference,
    ns: &str,
) -> Result<Option<(String, i32)>, String> {
    let (group, _) = split_api_version(&r.api_version);
    let Some(own) = workloads
        .scale(group, &r.kind, ns, &r.name)?
        .filter(|s| s.uid == r.uid)
    else {
        return Ok(None);
    };
    if r.kind == "ReplicaSet" {
        let deployment = workloads
            .replica_sets
            .get_in(Some(ns), &r.name)
            .and_then(|rs| controller_of(&rs.metadata).cloned())
            .filter(|d| d.kind == "Deployment")
            .and_then(|d| {
                let (group, _) = split_api_version(&d.api_version);
                let s = workloads.scale(group, &d.kind, ns, &d.name).ok()??;
                (s.uid == d.uid).then_some((s.uid, s.replicas))
            });
        if deployment.is_some() {
            return Ok(deployment);
        }
    }
    Ok(Some((own.uid, own.replicas)))
}

/// The budget's selector (upstream `LabelSelectorAsSelector`).
pub fn selector(pdb: &PodDisruptionBudget) -> Result<Selector, String> {
    from_label_selector(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()))
        .map_err(|e| e.to_string())
}

/// Whether `pdb` selects `pod`: same namespace, selector matches (an invalid selector matches
/// nothing).
pub fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    pdb.metadata.namespace == pod.metadata.namespace
        && selector(pdb).is_ok_and(|s| s.matches_opt(pod.metadata.labels.as_ref()))
}

/// `(expectedPods, desiredHealthy, unmanaged pod names)` of a budget over its pods (upstream
/// `getExpectedPodCount`).
pub fn expected_pod_count(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    workloads: &Workloads,
) -> Result<(i32, i32, Vec<String>), String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    let scaled = |v: &IntOrString, total: i32| {
        orch_types::intstr::scaled_value(v, total, true).map_err(|e| e.to_string())
    };
    if let Some(max) = &spec.max_unavailable {
        let (expected, unmanaged) = expected_scale(pdb, pods, workloads)?;
        let desired = (expected - scaled(max, expected)?).max(0);
        return Ok((expected, desired, unmanaged));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((pods.len() as i32, *n, Vec::new())),
        Some(min) => {
            let (expected, unmanaged) = expected_scale(pdb, pods, workloads)?;
            Ok((expected, scaled(min, expected)?, unmanaged))
        }
        None => Ok((0, 0, Vec::new())),
    }
}

/// The sum of the scales of the pods' controllers, each counted once, and the names of the
/// pods without a controller (upstream `getExpectedScale`).
fn expected_scale(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    workloads: &Workloads,
) -> Result<(i32, Vec<String>), String> {
    let ns = namespace(&pdb.metadata);
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut resolved: HashSet<&str> = HashSet::new();
    let mut unmanaged = Vec::new();
    for p in pods {
        let Some(r) = controller_of(&p.metadata) else {
            unmanaged.push(name(&p.metadata).to_string());
            continue;
        };
        if resolved.contains(r.uid.as_str()) {
            continue;
        }
        match scale_of(workloads, r, ns)? {
            Some((uid, n)) => {
                scales.insert(uid, n);
                resolved.insert(&r.uid);
            }
            None => {
                return Err(format!(
                    "found no controllers for pod {:?}",
                    name(&p.metadata)
                ))
            }
        }
    }
    let expected = scales.values().fold(0i32, |a, n| a.saturating_add(*n));
    Ok((expected, unmanaged))
}

/// When an entry of `disruptedPods` made at `at` expires.
fn expires(at: &Time) -> Timestamp {
    at.0.checked_add(DELETION_TIMEOUT).unwrap_or(at.0)
}

/// The `disruptedPods` entries still waiting (their pod present, not yet being deleted, the
/// entry not expired), the earliest expiry among them, and the pods whose entry expired
/// (upstream `buildDisruptedPodMap`). An entry expires at `at + DELETION_TIMEOUT` exactly (the
/// requeue lands there; upstream keeps it one instant longer).
fn disrupted_pods<'a>(
    pdb: &PodDisruptionBudget,
    pods: &[&'a Pod],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>, Vec<&'a Pod>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let mut expired = Vec::new();
    let Some(old) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return (kept, recheck, expired);
    };
    for p in pods.iter().filter(|p| !is_deleting(&p.metadata)) {
        let Some(at) = old.get(name(&p.metadata)) else {
            continue;
        };
        let until = expires(at);
        if until <= now {
            expired.push(*p);
        } else {
            recheck = Some(recheck.map_or(until, |r| r.min(until)));
            kept.insert(name(&p.metadata).to_string(), at.clone());
        }
    }
    (kept, recheck, expired)
}

/// Ready pods not being deleted and not about to be (upstream `countHealthyPods`).
fn count_healthy(pods: &[&Pod], disrupted: &BTreeMap<String, Time>) -> i32 {
    pods.iter()
        .filter(|p| !is_deleting(&p.metadata))
        .filter(|p| !disrupted.contains_key(name(&p.metadata)))
        .filter(|p| is_pod_ready(p))
        .count() as i32
}

/// Whether the status' condition matches its `disruptionsAllowed` and generation (upstream
/// `ConditionsAreUpToDate`).
fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(st) = &pdb.status else {
        return false;
    };
    let Some(c) = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    else {
        return false;
    };
    if st.observed_generation != pdb.metadata.generation {
        return false;
    }
    if st.disruptions_allowed > 0 {
        c.status == "True" && c.reason == SUFFICIENT_PODS
    } else {
        c.status == "False" && c.reason == INSUFFICIENT_PODS
    }
}

fn write_status(pdb: &PodDisruptionBudget, st: PodDisruptionBudgetStatus) -> Action {
    let mut p = pdb.clone();
    p.status = Some(st);
    Action::update_status(&p)
}

/// The failed sync's status: no disruption allowed, `SyncFailed` with the error, the rest as
/// it was (upstream `failSafe`). `None` when the status already says so.
fn fail_safe(pdb: &PodDisruptionBudget, message: &str, now: Timestamp) -> Option<Action> {
    let old = pdb.status.clone().unwrap_or_default();
    let mut st = old.clone();
    st.disruptions_allowed = 0;
    let og = st.observed_generation;
    set_status_condition(
        st.conditions.get_or_insert_with(Vec::new),
        Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: "False".into(),
            reason: SYNC_FAILED.into(),
            message: message.into(),
            observed_generation: og,
            last_transition_time: Time(now),
        },
    );
    (pdb.status.as_ref() != Some(&st)).then(|| write_status(pdb, st))
}

/// One reconcile of `pdb` with the pods of its namespace and the workload caches at `now`:
/// events, the status update when it changed, and when to look again for an expiring
/// `disruptedPods` entry.
pub fn reconcile(
    pdb: &PodDisruptionBudget,
    namespace_pods: &[Arc<Pod>],
    workloads: &Workloads,
    now: Timestamp,
) -> Vec<Action> {
    let me = ObjectRef::of(pdb);
    let mut actions = Vec::new();
    let sel = match selector(pdb) {
        Ok(s) => s,
        Err(e) => {
            actions.push(Action::warning(
                me,
                "NoPods",
                format!("Failed to get pods: {e}"),
            ));
            actions.extend(fail_safe(pdb, &e, now));
            return actions;
        }
    };
    let pods: Vec<&Pod> = namespace_pods
        .iter()
        .map(Arc::as_ref)
        .filter(|p| p.metadata.namespace == pdb.metadata.namespace)
        .filter(|p| sel.matches_opt(p.metadata.labels.as_ref()))
        .collect();
    if pods.is_empty() {
        actions.push(Action::normal(
            me.clone(),
            "NoPods",
            "No matching pods found",
        ));
    }
    let (expected, desired, unmanaged) = match expected_pod_count(pdb, &pods, workloads) {
        Ok(v) => v,
        Err(e) => {
            actions.push(Action::warning(
                me,
                "CalculateExpectedPodCountFailed",
                format!("Failed to calculate the number of expected pods: {e}"),
            ));
            actions.extend(fail_safe(pdb, &e, now));
            return actions;
        }
    };
    if !unmanaged.is_empty() {
        actions.push(Action::warning(
            me.clone(),
            "UnmanagedPods",
            format!(
                "Pods selected by this PodDisruptionBudget (selector: {sel}) were found to be \
                 unmanaged. As a result, the status of the PDB cannot be calculated correctly, \
                 which may result in undefined behavior. To account for these pods please set \
                 \".spec.minAvailable\" field of the PDB to an integer value."
            ),
        ));
    }
    let (disrupted, recheck, expired) = disrupted_pods(pdb, &pods, now);
    for p in expired {
        actions.push(Action::warning(
            ObjectRef::of(p),
            "NotDeleted",
            format!(
                "Pod was expected by PDB {} to be deleted but it wasn't",
                key_of(&pdb.metadata)
            ),
        ));
    }
    let healthy = count_healthy(&pods, &disrupted);
    // upstream `updatePdbStatus`: no disruption while no pod is expected, so a budget whose
    // first pods appear is safe before this controller has seen them.
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    let old = pdb.status.clone().unwrap_or_default();
    let disrupted = (!disrupted.is_empty()).then_some(disrupted);
    let unchanged = old.current_healthy == healthy
        && old.desired_healthy == desired
        && old.expected_pods == expected
        && old.disruptions_allowed == allowed
        && old.disrupted_pods.as_ref().filter(|m| !m.is_empty()) == disrupted.as_ref()
        && old.observed_generation == pdb.metadata.generation
        && conditions_up_to_date(pdb);
    if !unchanged {
        let mut st = PodDisruptionBudgetStatus {
            current_healthy: healthy,
            desired_healthy: desired,
            expected_pods: expected,
            disruptions_allowed: allowed,
            disrupted_pods: disrupted,
            observed_generation: pdb.metadata.generation,
            conditions: old.conditions,
        };
        update_disruption_allowed_condition(&mut st, now);
        actions.push(write_status(pdb, st));
    }
    if let Some(at) = recheck {
        let d = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
        actions.push(Action::requeue(d + Duration::from_millis(1)));
    }
    actions
}

impl Controller for DisruptionController {
    fn name(&self) -> &'static str {
        "disruption"
    }

    fn component(&self) -> &'static str {
        "disruption-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<PodDisruptionBudget>(trigger_self());
        // Every budget of the pod's namespace that selects it, before or after the change.
        w.watch::<Pod>(Arc::new(|c, caches, keys| {
            let p = c.object();
            let old = match c {
                Change::Updated(old, _) => Some(old.metadata.labels.as_ref()),
                _ => None,
            };
            for pdb in caches
                .get::<PodDisruptionBudget>()
                .list_namespace(namespace(&p.metadata))
            {
                let Ok(sel) = selector(&pdb) else { continue };
                if sel.matches_opt(p.metadata.labels.as_ref())
                    || old.is_some_and(|l| sel.matches_opt(l))
                {
                    keys.push(key_of(&pdb.metadata));
                }
            }
        }));
        w.reads::<ReplicationController>()
            .reads::<ReplicaSet>()
            .reads::<Deployment>()
            .reads::<StatefulSet>();
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let Some(pdb) = caches.get::<PodDisruptionBudget>().get(key) else {
            return Vec::new();
        };
        let pods = caches.get::<Pod>().list_namespace(namespace(&pdb.metadata));
        reconcile(&pdb, &pods, &Workloads::from_caches(caches), now)
    }
}

#[cfg(test)]
mod tests;
