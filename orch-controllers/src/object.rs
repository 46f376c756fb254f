//! [`Object`]: what the runtime needs from any stored kind (typed k8s-openapi structs and
//! [`DynamicObject`]), plus small metadata helpers shared by the reconcilers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use serde::{de::DeserializeOwned, Serialize};

/// A kind the runtime can store, watch and write.
pub trait Object:
    Clone + Send + Sync + std::fmt::Debug + Serialize + DeserializeOwned + 'static
{
    /// Metadata.
    fn meta(&self) -> &ObjectMeta;
    /// Mutable metadata.
    fn meta_mut(&mut self) -> &mut ObjectMeta;
    /// Converts from the wire form.
    fn from_dynamic(d: &DynamicObject) -> Result<Self, orch_types::dynamic::ConvertError>;
    /// Converts to the wire form (with apiVersion and kind).
    fn to_dynamic(&self) -> Result<DynamicObject, orch_types::dynamic::ConvertError>;
}

macro_rules! typed_object {
    ($($t:ty),* $(,)?) => {$(
        impl Object for $t {
            fn meta(&self) -> &ObjectMeta { &self.metadata }
            fn meta_mut(&mut self) -> &mut ObjectMeta { &mut self.metadata }
            fn from_dynamic(d: &DynamicObject) -> Result<Self, orch_types::dynamic::ConvertError> { d.to_typed() }
            fn to_dynamic(&self) -> Result<DynamicObject, orch_types::dynamic::ConvertError> { DynamicObject::from_typed(self) }
        }
    )*};
}

typed_object!(
    k8s_openapi::api::core::v1::Pod,
    k8s_openapi::api::core::v1::Node,
    k8s_openapi::api::core::v1::Namespace,
    k8s_openapi::api::core::v1::Service,
    k8s_openapi::api::core::v1::Endpoints,
    k8s_openapi::api::core::v1::ReplicationController,
    k8s_openapi::api::apps::v1::ReplicaSet,
    k8s_openapi::api::apps::v1::Deployment,
    k8s_openapi::api::coordination::v1::Lease,
    k8s_openapi::api::core::v1::ConfigMap,
    k8s_openapi::api::core::v1::Secret,
    k8s_openapi::api::core::v1::Event,
    k8s_openapi::api::apps::v1::DaemonSet,
    k8s_openapi::api::apps::v1::StatefulSet,
);

impl Object for DynamicObject {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn from_dynamic(d: &DynamicObject) -> Result<Self, orch_types::dynamic::ConvertError> {
        Ok(d.clone())
    }
    fn to_dynamic(&self) -> Result<DynamicObject, orch_types::dynamic::ConvertError> {
        Ok(self.clone())
    }
}

/// `namespace/name` (or `name` for cluster-scoped objects), the work-queue key of client-go.
pub fn key_of(m: &ObjectMeta) -> String {
    match m.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", m.name.as_deref().unwrap_or("")),
        _ => m.name.clone().unwrap_or_default(),
    }
}

/// Splits a key into (namespace, name).
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, n)) => (Some(ns), n),
        None => (None, key),
    }
}

/// The controlling owner reference (`controller: true`), if any.
pub fn controller_of(m: &ObjectMeta) -> Option<&OwnerReference> {
    m.owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|r| r.controller == Some(true))
}

/// `metadata.deletionTimestamp` is set.
pub fn is_deleting(m: &ObjectMeta) -> bool {
    m.deletion_timestamp.is_some()
}

/// `metadata.uid` or `""`.
pub fn uid(m: &ObjectMeta) -> &str {
    m.uid.as_deref().unwrap_or("")
}

/// `metadata.name` or `""`.
pub fn name(m: &ObjectMeta) -> &str {
    m.name.as_deref().unwrap_or("")
}

/// `metadata.namespace` or `""`.
pub fn namespace(m: &ObjectMeta) -> &str {
    m.namespace.as_deref().unwrap_or("")
}

/// A controller owner reference to `owner` (`controller` and `blockOwnerDeletion` true), as
/// `metav1.NewControllerRef`.
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name(owner).into(),
        uid: uid(owner).into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The [`ApiResource`] of a typed kind.
pub fn resource_of<K: k8s_openapi::Resource>() -> ApiResource
where
    K::Scope: 'static,
{
    ApiResource::of::<K>()
}
