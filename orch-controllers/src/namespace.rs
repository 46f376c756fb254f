//! Namespace deletion (`pkg/controller/namespace/deletion/namespaced_resources_deleter.go`):
//! once a namespace has a deletionTimestamp, delete every object in it, and when nothing is
//! left remove the `kubernetes` finalizer from `spec.finalizers` through `namespaces/finalize`,
//! which lets the API server delete the namespace.
//!
//! The content is every namespaced [`deletable`] resource the API serves, custom resources
//! included, as discovered while the controller runs (upstream's deleter lists deletable
//! resources from discovery, `pkg/controller/namespace/deletion/
//! namespaced_resources_deleter.go`).

use crate::garbagecollector::{deletable, Node as Item};
use k8s_openapi::api::core::v1::Namespace;
use orch_runtime::action::Action;
use orch_runtime::action::Lookup;
use orch_runtime::controller::{Caches, Controller, Watches};
use orch_runtime::object::{is_deleting, key_of, name};
use orch_types::client::{DiscoveredResource, Patch, PropagationPolicy};
use orch_types::registry::ApiResource;
use serde_json::json;
use std::sync::Arc;
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

/// Whether namespace deletion removes the objects of a served resource: namespaced and
/// [`deletable`].
pub fn is_content(d: &DiscoveredResource) -> bool {
    d.resource.namespaced && deletable(d)
}

/// The namespace controller (`namespace`) as a declaration: watches Namespaces being deleted
/// and reads the metadata of every namespaced [`deletable`] resource the API serves; removes
/// the `kubernetes` finalizer only once the API confirms that nothing is left (the caches may
/// lag).
#[derive(Debug, Default)]
pub struct NamespaceController;

impl Controller for NamespaceController {
    fn name(&self) -> &'static str {
        "namespace"
    }

    fn component(&self) -> &'static str {
        "namespace-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<Namespace>(Arc::new(|c, _, keys| {
            if is_deleting(&c.object().metadata) {
                keys.push(key_of(&c.object().metadata));
            }
        }));
        w.watch_discovered_metadata(Arc::new(is_content), Arc::new(|_, _, _, _| {}));
    }

    fn sync(&self, key: &str, caches: &Caches, _now: jiff::Timestamp) -> Vec<Action> {
        let Some(ns) = caches.get::<Namespace>().get(key) else {
            return Vec::new();
        };
        let index = caches.metadata();
        let resources: Vec<&ApiResource> = index
            .discovered()
            .iter()
            .filter(|d| is_content(d))
            .map(|d| &d.resource)
            .collect();
        let mut content = Vec::new();
        for r in &resources {
            if let Some(m) = index.get(r) {
                content.extend(m.namespace_meta(key).into_iter().map(|o| Item {
                    resource: (*r).clone(),
                    object: o,
                }));
            }
        }
        let absent: Vec<Lookup> = resources
            .iter()
            .map(|r| Lookup {
                resource: (*r).clone(),
                namespace: Some(key.to_string()),
                name: None,
                uid: None,
            })
            .collect();
        reconcile(&ns, &content)
            .into_iter()
            .map(|a| match a {
                Action::Patch {
                    subresource: Some(ref s),
                    ..
                } if s == "finalize" => Action::Guarded {
                    absent: absent.clone(),
                    then: vec![a],
                },
                a => a,
            })
            .collect()
    }
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
    fn content_is_every_namespaced_deletable_resource_custom_ones_included() {
        let custom = |namespaced: bool, verbs: &[&str]| DiscoveredResource {
            resource: ApiResource {
                group: "example.com".into(),
                version: "v1".into(),
                kind: "Backup".into(),
                plural: "backups".into(),
                namespaced,
            },
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
        };
        let all = ["get", "list", "watch", "delete", "create"];
        assert!(is_content(&custom(true, &all)));
        assert!(!is_content(&custom(false, &all)), "cluster-scoped");
        assert!(
            !is_content(&custom(true, &["get", "list"])),
            "not deletable"
        );
        let builtin: Vec<String> = orch_types::client::builtin_resources()
            .into_iter()
            .filter(is_content)
            .map(|d| d.resource.plural.to_string())
            .collect();
        assert!(builtin.iter().any(|p| p == "configmaps"));
        assert!(builtin.iter().any(|p| p == "pods"));
        assert!(!builtin.iter().any(|p| p == "events" || p == "namespaces"));
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
