//! The root CA certificate publisher, after upstream
//! `pkg/controller/certificates/rootcacertpublisher/publisher.go`: every active namespace has
//! a ConfigMap `kube-root-ca.crt` whose `ca.crt` is the cluster CA bundle (what pods use to
//! verify the API server; the service-account admission projects it into every pod). A
//! ConfigMap that is deleted or changed is put back.
//!
//! A cluster without a CA (plain HTTP, for tests) publishes an empty `ca.crt`, so pods that
//! mount it still start.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_self, Caches, Controller, Watches};
use orch_runtime::object::{is_deleting, key_from, namespace};
use orch_runtime::store::Change;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The ConfigMap's name.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// Its key holding the CA bundle.
pub const CA_CERT_KEY: &str = "ca.crt";

/// The annotation upstream's publisher puts on the ConfigMap.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";

/// Its value (upstream's wording).
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The controller's declaration: the CA bundle (PEM) it publishes. Keys are namespace names.
#[derive(Debug, Default, Clone)]
pub struct RootCaCertPublisher {
    /// The cluster CA bundle, PEM (empty: no CA).
    pub root_ca: String,
}

impl RootCaCertPublisher {
    /// What namespace `ns` needs given its current ConfigMap: created, its data put back, or
    /// nothing.
    pub fn reconcile(&self, ns: &Namespace, current: Option<&ConfigMap>) -> Vec<Action> {
        let active = ns
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Active");
        if !active || is_deleting(&ns.metadata) {
            return Vec::new();
        }
        let data = BTreeMap::from([(CA_CERT_KEY.to_string(), self.root_ca.clone())]);
        match current {
            None => vec![Action::create(&ConfigMap {
                metadata: ObjectMeta {
                    name: Some(ROOT_CA_CONFIG_MAP.into()),
                    namespace: ns.metadata.name.clone(),
                    annotations: Some(BTreeMap::from([(
                        DESCRIPTION_ANNOTATION.to_string(),
                        DESCRIPTION.to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            })],
            Some(cm) if cm.data.as_ref() == Some(&data) || is_deleting(&cm.metadata) => Vec::new(),
            Some(cm) => {
                let mut next = cm.clone();
                next.data = Some(data);
                next.binary_data = None;
                vec![Action::update(&next)]
            }
        }
    }
}

impl Controller for RootCaCertPublisher {
    fn name(&self) -> &'static str {
        "root-ca-cert-publisher"
    }

    fn component(&self) -> &'static str {
        "root-ca-certificate-publisher-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<Namespace>(trigger_self());
        w.watch::<ConfigMap>(Arc::new(|c, _, keys| {
            let cm = c.object();
            let ours = cm.metadata.name.as_deref() == Some(ROOT_CA_CONFIG_MAP);
            if ours && !matches!(c, Change::Added(_)) {
                keys.push(namespace(&cm.metadata).to_string());
            }
        }));
    }

    fn sync(&self, key: &str, caches: &Caches, _now: Timestamp) -> Vec<Action> {
        let Some(ns) = caches.get::<Namespace>().get(key) else {
            return Vec::new();
        };
        let cm = caches
            .get::<ConfigMap>()
            .get(&key_from(Some(key), ROOT_CA_CONFIG_MAP));
        self.reconcile(&ns, cm.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn publisher() -> RootCaCertPublisher {
        RootCaCertPublisher {
            root_ca: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n".into(),
        }
    }

    #[test]
    fn a_namespace_gets_the_bundle() {
        let out = publisher().reconcile(&ns(), None);
        let [Action::Create { object, .. }] = &out[..] else {
            panic!("{out:?}")
        };
        let cm: ConfigMap = object.to_typed().unwrap();
        assert_eq!(cm.metadata.name.as_deref(), Some(ROOT_CA_CONFIG_MAP));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(cm.data.unwrap()[CA_CERT_KEY], publisher().root_ca);
        assert!(cm.metadata.annotations.unwrap()[DESCRIPTION_ANNOTATION].contains("kube-apiserver"));
    }

    #[test]
    fn a_changed_bundle_is_put_back_and_a_correct_one_left_alone() {
        let p = publisher();
        let out = p.reconcile(&ns(), None);
        let [Action::Create { object, .. }] = &out[..] else {
            panic!()
        };
        let mut cm: ConfigMap = object.to_typed().unwrap();
        assert!(p.reconcile(&ns(), Some(&cm)).is_empty());
        cm.data = Some(BTreeMap::from([(CA_CERT_KEY.into(), "tampered".into())]));
        let out = p.reconcile(&ns(), Some(&cm));
        let [Action::Update { object, .. }] = &out[..] else {
            panic!("{out:?}")
        };
        let fixed: ConfigMap = object.to_typed().unwrap();
        assert_eq!(fixed.data.unwrap()[CA_CERT_KEY], p.root_ca);
    }
}
