//! Namespace deletion (`pkg/controller/namespace/deletion/namespaced_resources_deleter.go`):
//! once a namespace has a deletionTimestamp, delete every object in it, and when nothing is
//! left remove the `kubernetes` finalizer from `spec.finalizers` through `namespaces/finalize`,
//! which lets the API server delete the namespace.

use crate::action::Action;
use crate::garbagecollector::Node as Item;
use crate::object::{is_deleting, name};
use k8s_openapi::api::core::v1::Namespace;
use orch_types::client::{Patch, PropagationPolicy};
use orch_types::registry::ApiResource;
use serde_json::json;
use std::time::Duration;

/// The finalizer the namespace controller owns.
pub const KUBERNETES_FINALIZER: &str = "kubernetes";

/// How soon to look again while content remains (upstream requeues with a short delay when
/// content is still terminating).
pub const CONTENT_RECHECK: Duration = Duration::from_secs(2);

/// One pass over a namespace and its remaining content (every namespaced object in it).
pub fn reconcile(ns: &Namespace, content: &[Item]) -> Vec<Action> {
    let mut actions = Vec::new();
    if !is_deleting(&ns.metadata) {
        return actions;
    }
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == KUBERNETES_FINALIZER) {
        return actions;
    }
    if ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating") {
        actions.push(Action::merge_patch::<Namespace>(
            None,
            name(&ns.metadata),
            Some("status"),
            json!({"status": {"phase": "Terminating"}}),
        ));
    }
    if !content.is_empty() {
        for it in content {
            if !is_deleting(&it.object.metadata) {
                actions.push(Action::Delete {
                    resource: it.resource.clone(),
                    namespace: it.object.metadata.namespace.clone(),
                    name: it.object.name().into(),
                    uid: it.object.metadata.uid.clone(),
                    propagation: Some(PropagationPolicy::Background),
                    grace_period_seconds: None,
                    owner: None,
                });
            }
        }
        actions.push(Action::requeue(CONTENT_RECHECK));
        return actions;
    }
    let rest: Vec<&String> = finalizers
        .iter()
        .filter(|f| *f != KUBERNETES_FINALIZER)
        .collect();
    actions.push(Action::Patch {
        resource: ApiResource::of::<Namespace>(),
        namespace: None,
        name: name(&ns.metadata).into(),
        subresource: Some("finalize".into()),
        patch: Patch::Merge(json!({"spec": {"finalizers": rest}})),
    });
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_types::DynamicObject;
    use std::sync::Arc;

    fn ns(deleting: bool) -> Namespace {
        serde_json::from_value(json!({
            "metadata": {"name": "team", "uid": "u",
                         "deletionTimestamp": if deleting { json!("2026-01-01T00:00:00Z") } else { json!(null) }},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Terminating"}
        }))
        .unwrap()
    }

    #[test]
    fn deletes_content_then_finalizes() {
        let mut cm = DynamicObject::new("v1", "ConfigMap", "c");
        cm.metadata.namespace = Some("team".into());
        let item = Item {
            resource: ApiResource::of::<k8s_openapi::api::core::v1::ConfigMap>(),
            object: Arc::new(cm),
        };
        assert!(reconcile(&ns(false), std::slice::from_ref(&item)).is_empty());
        let a = reconcile(&ns(true), &[item]);
        assert!(matches!(&a[0], Action::Delete { name, .. } if name == "c"));
        assert!(matches!(a[1], Action::Requeue(_)));
        let a = reconcile(&ns(true), &[]);
        let [Action::Patch {
            subresource: Some(s),
            patch: Patch::Merge(b),
            ..
        }] = a.as_slice()
        else {
            panic!("finalize expected: {a:?}")
        };
        assert_eq!(s, "finalize");
        assert_eq!(b["spec"]["finalizers"], json!([]));
    }
}
