//! `DefaultTolerationSeconds`: pods get 300 s `NoExecute` tolerations for the
//! `node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable` taints unless they already
//! tolerate them (upstream `plugin/pkg/admission/defaulttolerationseconds/admission.go`).

use crate::rest::Resource;
use k8s_openapi::api::core::v1::{Taint, Toleration};
use orch_types::{taints, DynamicObject};
use serde_json::{json, Value};

/// Taint key of a node whose Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint key of a node whose Ready condition is Unknown.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Seconds tolerated by default.
pub const DEFAULT_SECONDS: i64 = 300;

/// Whether the JSON toleration `t` already covers the `key:NoExecute` taint.
///
/// Upstream's plugin compares only key and effect (an `Equal` toleration of `key` with any value
/// counts), so the toleration is taken with operator `Exists` and then put to the shared rule,
/// [`orch_types::taints::tolerates`].
fn covers(t: &Value, key: &str) -> bool {
    let field = |name: &str| t.get(name).and_then(Value::as_str).map(str::to_string);
    let toleration = Toleration {
        key: field("key"),
        effect: field("effect"),
        operator: Some(taints::OP_EXISTS.into()),
        ..Default::default()
    };
    let taint = Taint {
        key: key.into(),
        effect: "NoExecute".into(),
        ..Default::default()
    };
    taints::tolerates(&toleration, &taint)
}

/// Adds the default tolerations to a pod being created.
///
/// ```
/// use orch_apiserver::admission::default_tolerations::admit;
/// let info = orch_types::registry::by_kind("v1", "Pod").unwrap();
/// let mut pod = orch_types::DynamicObject::new("v1", "Pod", "p");
/// pod.data.insert("spec".into(), serde_json::json!({"containers": []}));
/// admit(info, &mut pod);
/// assert_eq!(pod.data["spec"]["tolerations"].as_array().unwrap().len(), 2);
/// ```
pub fn admit(info: Resource, pod: &mut DynamicObject) {
    if info.kind != "Pod" || !info.group.is_empty() {
        return;
    }
    let Some(spec) = pod.data.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for key in [NOT_READY, UNREACHABLE] {
        if !list.iter().any(|t| covers(t, key)) {
            list.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_SECONDS,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_existing_and_wildcard_tolerations() {
        let info = orch_types::registry::by_kind("v1", "Pod").unwrap();
        let mut pod = DynamicObject::new("v1", "Pod", "p");
        pod.data.insert(
            "spec".into(),
            json!({"tolerations": [{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]}),
        );
        admit(info, &mut pod);
        let list = pod.data["spec"]["tolerations"].as_array().unwrap().clone();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["tolerationSeconds"], 10);
        assert_eq!(list[1]["key"], UNREACHABLE);
        assert_eq!(list[1]["tolerationSeconds"], 300);

        let mut all = DynamicObject::new("v1", "Pod", "q");
        all.data.insert(
            "spec".into(),
            json!({"tolerations": [{"operator": "Exists"}]}),
        );
        admit(info, &mut all);
        assert_eq!(all.data["spec"]["tolerations"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn only_key_and_effect_count() {
        // As upstream: an Equal toleration of the key with some value already covers it, a
        // NoSchedule one does not.
        let info = orch_types::registry::by_kind("v1", "Pod").unwrap();
        let mut pod = DynamicObject::new("v1", "Pod", "p");
        pod.data.insert(
            "spec".into(),
            json!({"tolerations": [
                {"key": NOT_READY, "operator": "Equal", "value": "x", "effect": "NoExecute"},
                {"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"},
                {"key": "other", "operator": "Exists"}]}),
        );
        admit(info, &mut pod);
        let list = pod.data["spec"]["tolerations"].as_array().unwrap();
        let keys: Vec<&str> = list.iter().map(|t| t["key"].as_str().unwrap()).collect();
        assert_eq!(keys, [NOT_READY, UNREACHABLE, "other", UNREACHABLE]);
        assert_eq!(list[3]["effect"], "NoExecute");
    }
}
