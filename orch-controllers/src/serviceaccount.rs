//! The service-account controller, after upstream
//! `pkg/controller/serviceaccount/serviceaccounts_controller.go`: every active namespace has a
//! ServiceAccount named `default`; one that is deleted is created again. A namespace being
//! deleted is left alone.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_self, Caches, Controller, Watches};
use orch_runtime::object::{is_deleting, key_from, namespace};
use orch_runtime::store::Change;
use std::sync::Arc;

/// The service account every namespace gets.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The controller's declaration. Keys are namespace names.
#[derive(Debug, Default)]
pub struct ServiceAccountsController;

/// What namespace `ns` needs: the `default` service account when it is active and has none.
pub fn reconcile(ns: &Namespace, has_default: bool) -> Vec<Action> {
    let active = ns
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_none_or(|p| p == "Active");
    if has_default || !active || is_deleting(&ns.metadata) {
        return Vec::new();
    }
    vec![Action::create(&ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT_SERVICE_ACCOUNT.into()),
            namespace: ns.metadata.name.clone(),
            ..Default::default()
        },
        ..Default::default()
    })]
}

impl Controller for ServiceAccountsController {
    fn name(&self) -> &'static str {
        "serviceaccount"
    }

    fn component(&self) -> &'static str {
        "serviceaccount-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<Namespace>(trigger_self());
        // A deleted `default` brings its namespace back to the queue.
        w.watch::<ServiceAccount>(Arc::new(|c, _, keys| {
            if let Change::Deleted(sa) = c {
                if sa.metadata.name.as_deref() == Some(DEFAULT_SERVICE_ACCOUNT) {
                    keys.push(namespace(&sa.metadata).to_string());
                }
            }
        }));
    }

    fn sync(&self, key: &str, caches: &Caches, _now: Timestamp) -> Vec<Action> {
        let Some(ns) = caches.get::<Namespace>().get(key) else {
            return Vec::new();
        };
        let has_default = caches
            .get::<ServiceAccount>()
            .get(&key_from(Some(key), DEFAULT_SERVICE_ACCOUNT))
            .is_some();
        reconcile(&ns, has_default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ns(phase: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                ..Default::default()
            },
            status: Some(NamespaceStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_active_namespace_gets_default() {
        let out = reconcile(&ns("Active"), false);
        match &out[..] {
            [Action::Create { resource, object }] => {
                assert_eq!(resource.kind, "ServiceAccount");
                assert_eq!(object.name(), "default");
                assert_eq!(object.namespace(), Some("team"));
            }
            other => panic!("{other:?}"),
        }
        assert!(reconcile(&ns("Active"), true).is_empty());
    }

    #[test]
    fn a_terminating_namespace_gets_nothing() {
        assert!(reconcile(&ns("Terminating"), false).is_empty());
        let mut deleting = ns("Active");
        deleting.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert!(reconcile(&deleting, false).is_empty());
    }
}
