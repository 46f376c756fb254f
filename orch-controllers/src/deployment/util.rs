//! Deployment helpers after `pkg/controller/deployment/util/deployment_util.go` and
//! `pkg/controller/controller_utils.go`: the pod-template hash, revision and replica
//! annotations, surge/unavailability bounds, conditions and completion checks.

use crate::selector::scaled_value;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// `pod-template-hash` label / selector key on ReplicaSets and pods.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Revision of a ReplicaSet / Deployment.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a reused ReplicaSet had (rollbacks).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// Deployment replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Change cause recorded by `kubectl --record` / annotate; copied like any other annotation.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// Upstream `maxRevHistoryLengthInChars`.
const MAX_REV_HISTORY_CHARS: usize = 2000;

/// Condition reasons (`deployment_util.go`).
pub mod reasons {
    /// New RS created.
    pub const NEW_RS: &str = "NewReplicaSetCreated";
    /// Existing new RS found.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// Rollout progressing.
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    /// Rollout complete.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// Progress deadline exceeded.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// Paused.
    pub const PAUSED: &str = "DeploymentPaused";
    /// Resumed.
    pub const RESUMED: &str = "DeploymentResumed";
    /// Available with enough replicas.
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Not enough available replicas.
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

const SAFE_ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// apimachinery `rand.SafeEncodeString`: maps each byte onto consonants and digits so the
/// result never forms words.
pub fn safe_encode_string(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE_ALPHANUMS[usize::from(b) % SAFE_ALPHANUMS.len()] as char)
        .collect()
}

/// FNV-32a.
fn fnv32a(data: &[u8], mut h: u32) -> u32 {
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(16_777_619);
    }
    h
}

/// Drops nulls, empty objects and empty arrays recursively: JSON forms that Go's
/// `apiequality.Semantic.DeepEqual` treats as equal to absent (a client may send
/// `resources: {}` where the stored template has nothing).
fn normalize(v: serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| normalize(v).map(|v| (k, v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => {
            let a: Vec<Value> = a
                .into_iter()
                .map(|v| normalize(v).unwrap_or(Value::Null))
                .collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        other => Some(other),
    }
}

fn canonical(t: &PodTemplateSpec) -> serde_json::Value {
    serde_json::to_value(t)
        .ok()
        .and_then(normalize)
        .unwrap_or_default()
}

/// `controller.ComputeHash`: FNV-32a over the template (its canonical JSON here — empty
/// values dropped, keys sorted — where upstream hashes a spew dump of the Go struct) and the
/// little-endian collision count, rendered with [`safe_encode_string`] of its decimal form.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let bytes = serde_json::to_vec(&sorted(canonical(template))).unwrap_or_default();
    let mut h = fnv32a(&bytes, 2_166_136_261);
    if let Some(c) = collision_count {
        h = fnv32a(&(c as u32).to_le_bytes(), h);
    }
    safe_encode_string(&h.to_string())
}

/// `EqualIgnoreHash`: templates equal once the `pod-template-hash` label is dropped.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut() {
            if let Some(l) = m.labels.as_mut() {
                l.remove(POD_TEMPLATE_HASH);
                if l.is_empty() {
                    m.labels = None;
                }
            }
        }
        t
    };
    canonical(&strip(a)) == canonical(&strip(b))
}

/// Re-inserts object keys in sorted order (the workspace enables serde_json's
/// `preserve_order`, so byte output would otherwise depend on how the object was built).
fn sorted(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// `spec.replicas` of a deployment (default 1).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet (default 1).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Status of a ReplicaSet (`replicas`, `available`, `ready`).
pub fn rs_status(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status.as_ref().map_or((0, 0, 0), |s| {
        (
            s.replicas,
            s.available_replicas.unwrap_or(0),
            s.ready_replicas.unwrap_or(0),
        )
    })
}

/// `IsRollingUpdate`: strategy type RollingUpdate (the default).
pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// `ResolveFenceposts`: (maxSurge rounded up, maxUnavailable rounded down); both zero → 1
/// unavailable. Defaults 25% / 25%.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let def = IntOrString::String("25%".into());
    let surge_v = ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&def);
    let unav_v = ru.and_then(|r| r.max_unavailable.as_ref()).unwrap_or(&def);
    let n = replicas(d);
    let surge = scaled_value(Some(surge_v), n, true);
    let unavailable = scaled_value(Some(unav_v), n, false);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

/// `MaxSurge` (0 unless rolling).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

/// `MaxUnavailable` (0 unless rolling or replicas is 0; capped at replicas).
pub fn max_unavailable(d: &Deployment) -> i32 {
    let n = replicas(d);
    if !is_rolling(d) || n == 0 {
        return 0;
    }
    fenceposts(d).1.min(n)
}

/// Numeric revision annotation of an object (0 if absent or bad).
pub fn revision_of(ann: Option<&std::collections::BTreeMap<String, String>>) -> i64 {
    ann.and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn skip_copy(k: &str) -> bool {
    matches!(
        k,
        "kubectl.kubernetes.io/last-applied-configuration"
            | REVISION
            | REVISION_HISTORY
            | DESIRED_REPLICAS
            | MAX_REPLICAS
            | "deprecated.deployment.rollback.to"
    )
}

/// `SetReplicasAnnotations`; true if changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(Default::default);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.into(), v);
            changed = true;
        }
    }
    changed
}

/// `ReplicasAnnotationsNeedUpdate`.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.as_ref();
    a.and_then(|a| a.get(DESIRED_REPLICAS)) != Some(&desired.to_string())
        || a.and_then(|a| a.get(MAX_REPLICAS)) != Some(&max.to_string())
}

/// `SetNewReplicaSetAnnotations`: copy deployment annotations (change-cause included), bump
/// the revision, keep the revision history of a reused ReplicaSet; true if changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    let a = rs.metadata.annotations.get_or_insert_with(Default::default);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy(k) || a.get(k) == Some(v) {
            continue;
        }
        a.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = a.get(REVISION).cloned();
    let old_n: i64 = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if old_n < new_revision {
        a.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let hist = a.get(REVISION_HISTORY).cloned().unwrap_or_default();
            let mut h = if hist.is_empty() {
                old
            } else {
                format!("{hist},{old}")
            };
            while h.len() > MAX_REV_HISTORY_CHARS {
                match h.split_once(',') {
                    Some((_, rest)) => h = rest.to_string(),
                    None => break,
                }
            }
            a.insert(REVISION_HISTORY.into(), h);
        }
    }
    if !exists && set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

/// The condition of a type.
pub fn condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// `NewDeploymentCondition`.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// `SetDeploymentCondition`: replaces the condition of the same type, keeping
/// lastTransitionTime when status and reason are unchanged (no-op then).
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    let conds = s.conditions.get_or_insert_with(Vec::new);
    if let Some(cur) = conds.iter().find(|x| x.type_ == c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    conds.retain(|x| x.type_ != c.type_);
    conds.push(c);
}

/// `RemoveDeploymentCondition`.
pub fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = s.conditions.as_mut() {
        c.retain(|x| x.type_ != type_);
    }
}

/// `HasProgressDeadline` (set and not MaxInt32).
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

/// `DeploymentComplete`.
pub fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let n = replicas(d);
    s.updated_replicas.unwrap_or(0) == n
        && s.replicas.unwrap_or(0) == n
        && s.available_replicas.unwrap_or(0) == n
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// `DeploymentProgressing`: new status shows progress over the old one.
pub fn is_progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

/// `DeploymentTimedOut`.
pub fn is_timed_out(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(secs) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = condition(s, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some(reasons::NEW_RS_AVAILABLE) => return false,
        Some(reasons::TIMED_OUT) => return true,
        _ => {}
    }
    let Some(from) = c.last_update_time.as_ref() else {
        return false;
    };
    from.0
        .checked_add(jiff::SignedDuration::from_secs(i64::from(secs)))
        .is_ok_and(|deadline| deadline < now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_encoding_and_hash_are_stable() {
        assert_eq!(safe_encode_string("0123456789"), "456789bcdf");
        let t = crate::testutil::template(&[("app", "web")], "nginx:1");
        let h = compute_hash(&t, None);
        assert_eq!(h, compute_hash(&t, None));
        assert_ne!(h, compute_hash(&t, Some(1)));
        assert!(h.bytes().all(|b| SAFE_ALPHANUMS.contains(&b)));
        let other = crate::testutil::template(&[("app", "web")], "nginx:2");
        assert_ne!(h, compute_hash(&other, None));
        // `resources: {}` (as kubectl rollout undo sends it) is the same template.
        let mut with_empty = t.clone();
        with_empty.spec.as_mut().unwrap().containers[0].resources = Some(Default::default());
        assert!(equal_ignore_hash(&t, &with_empty));
        assert_eq!(h, compute_hash(&with_empty, None));
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        let mut d: Deployment = serde_json::from_value(serde_json::json!({
            "spec": {"replicas": 10, "selector": {}, "template": {},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}
        }))
        .unwrap();
        assert_eq!(fenceposts(&d), (3, 2));
        d.spec
            .as_mut()
            .unwrap()
            .strategy
            .as_mut()
            .unwrap()
            .rolling_update = Some(Default::default());
        d.spec.as_mut().unwrap().replicas = Some(1);
        assert_eq!(fenceposts(&d), (1, 0));
    }
}
