//! Object bookkeeping the server owns: server-set metadata, generation, status handling.
//!
//! Sources: upstream `staging/src/k8s.io/apiserver/pkg/registry/rest/create.go` (BeforeCreate),
//! `update.go` (BeforeUpdate) and each kind's `strategy.go` (PrepareForCreate/PrepareForUpdate).

use super::Resource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use orch_types::DynamicObject;
use rand::Rng;
use serde_json::Value;

/// Kinds whose `metadata.generation` tracks spec changes (their strategies set it).
const GENERATION_KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "StatefulSet",
    "Job",
    "CronJob",
    "ReplicationController",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "CustomResourceDefinition",
    "PriorityClass",
    "EndpointSlice",
];

/// Whether `info` tracks `metadata.generation`: the kinds whose strategies set it, and every
/// custom resource (upstream `customresource/strategy.go`).
pub fn tracks_generation(info: Resource) -> bool {
    GENERATION_KINDS.contains(&info.kind) || !builtin(info)
}

/// Whether `info` is a built-in resource (not one a CRD defines).
pub fn builtin(info: Resource) -> bool {
    orch_types::registry::is_builtin(info)
}

/// Whether `info` has a `status` subresource (so the main resource ignores status and the
/// subresource ignores everything else).
pub fn has_status(info: Resource) -> bool {
    info.subresource("status").is_some()
}

/// Everything that is not metadata or status: what a generation bump compares.
pub fn spec_part(o: &DynamicObject) -> impl Iterator<Item = (&String, &Value)> {
    o.data.iter().filter(|(k, _)| k.as_str() != "status")
}

/// True when the non-metadata, non-status content differs.
pub fn spec_changed(a: &DynamicObject, b: &DynamicObject) -> bool {
    !spec_part(a).eq(spec_part(b))
}

/// upstream `names.SimpleNameGenerator`: 5 random characters from a consonant/digit alphabet.
pub fn generate_name(base: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    const MAX_BASE: usize = 63 - 5;
    let base = if base.len() > MAX_BASE {
        &base[..MAX_BASE]
    } else {
        base
    };
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

/// `Time` at the given instant, truncated to seconds as Kubernetes serializes it.
pub fn time(now: jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// The status a kind's strategy sets on create (`PrepareForCreate`); `None` keeps the given one.
pub fn initial_status(info: Resource) -> Option<Value> {
    match info.kind {
        // Kubelets register Nodes with their status.
        "Node" => None,
        "Pod" => Some(serde_json::json!({"phase": "Pending"})),
        "Namespace" => Some(serde_json::json!({"phase": "Active"})),
        _ if has_status(info) && builtin(info) => Some(serde_json::json!({})),
        _ => None,
    }
}

/// `status.phase` of an object, if any.
pub fn phase(o: &DynamicObject) -> Option<&str> {
    o.data.get("status")?.get("phase")?.as_str()
}
