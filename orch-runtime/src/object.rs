//! [`Object`]: what the runtime needs from any stored kind (typed k8s-openapi structs and
//! [`DynamicObject`]), and the metadata helpers every component shares (keys, owner and
//! controller references): one implementation, as kube-core's `ResourceExt`.

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

/// A typed kind with a fixed [`ApiResource`] (every k8s-openapi kind the runtime knows).
pub trait Kind: Object {
    /// Its resource.
    fn api_resource() -> ApiResource;
}

macro_rules! typed_object {
    ($($t:ty),* $(,)?) => {$(
        impl Object for $t {
            fn meta(&self) -> &ObjectMeta { &self.metadata }
            fn meta_mut(&mut self) -> &mut ObjectMeta { &mut self.metadata }
            fn from_dynamic(d: &DynamicObject) -> Result<Self, orch_types::dynamic::ConvertError> { d.to_typed() }
            fn to_dynamic(&self) -> Result<DynamicObject, orch_types::dynamic::ConvertError> { DynamicObject::from_typed(self) }
        }
        impl Kind for $t {
            fn api_resource() -> ApiResource { ApiResource::of::<$t>() }
        }
    )*};
}

/// Kinds made of `metadata`, `spec` and `status` only: converted from the wire form field by
/// field, with the metadata copied as it is (no round trip of the whole object through JSON).
macro_rules! spec_status_object {
    ($($t:ty),* $(,)?) => {$(
        impl Object for $t {
            fn meta(&self) -> &ObjectMeta { &self.metadata }
            fn meta_mut(&mut self) -> &mut ObjectMeta { &mut self.metadata }
            fn from_dynamic(d: &DynamicObject) -> Result<Self, orch_types::dynamic::ConvertError> {
                if d.data.keys().any(|k| k != "spec" && k != "status") {
                    return d.to_typed();
                }
                let err = |source| orch_types::dynamic::ConvertError { kind: d.types.kind.clone(), source };
                Ok(Self {
                    metadata: d.metadata.clone(),
                    spec: field(d, "spec").map_err(err)?,
                    status: field(d, "status").map_err(err)?,
                })
            }
            fn to_dynamic(&self) -> Result<DynamicObject, orch_types::dynamic::ConvertError> { DynamicObject::from_typed(self) }
        }
        impl Kind for $t {
            fn api_resource() -> ApiResource { ApiResource::of::<$t>() }
        }
    )*};
}

fn field<T: DeserializeOwned>(d: &DynamicObject, k: &str) -> Result<Option<T>, serde_json::Error> {
    match d.data.get(k) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => T::deserialize(v).map(Some),
    }
}

spec_status_object!(
    k8s_openapi::api::core::v1::Pod,
    k8s_openapi::api::core::v1::Node,
    k8s_openapi::api::core::v1::Namespace,
    k8s_openapi::api::core::v1::Service,
    k8s_openapi::api::core::v1::ReplicationController,
    k8s_openapi::api::apps::v1::ReplicaSet,
    k8s_openapi::api::apps::v1::Deployment,
    k8s_openapi::api::apps::v1::DaemonSet,
    k8s_openapi::api::apps::v1::StatefulSet,
    k8s_openapi::api::batch::v1::CronJob,
    k8s_openapi::api::batch::v1::Job,
    k8s_openapi::api::policy::v1::PodDisruptionBudget,
    k8s_openapi::api::core::v1::PersistentVolumeClaim,
    k8s_openapi::api::core::v1::PersistentVolume,
    k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
    k8s_openapi::api::core::v1::ResourceQuota,
);

typed_object!(
    k8s_openapi::api::core::v1::Endpoints,
    k8s_openapi::api::discovery::v1::EndpointSlice,
    k8s_openapi::api::coordination::v1::Lease,
    k8s_openapi::api::core::v1::ConfigMap,
    k8s_openapi::api::core::v1::Secret,
    k8s_openapi::api::core::v1::ServiceAccount,
    k8s_openapi::api::core::v1::Event,
    k8s_openapi::api::apps::v1::ControllerRevision,
    k8s_openapi::api::storage::v1::StorageClass,
    k8s_openapi::api::core::v1::LimitRange,
    k8s_openapi::api::rbac::v1::ClusterRole,
    orch_types::metrics::PodMetrics,
    orch_types::metrics::NodeMetrics,
    k8s_openapi::api::certificates::v1::CertificateSigningRequest,
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
    key_from(m.namespace.as_deref(), m.name.as_deref().unwrap_or(""))
}

/// The key of `name` in `namespace` (`None` or `""`: cluster-scoped), as [`key_of`].
pub fn key_from(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// The key of the object's controller, when it is of `kind` (controllers live in the
/// namespace of what they control).
pub fn controller_key(m: &ObjectMeta, kind: &str) -> Option<String> {
    let r = controller_of(m)?;
    (r.kind == kind).then(|| key_from(m.namespace.as_deref(), &r.name))
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

/// A controller owner reference to the typed object `owner` (its apiVersion and kind from the
/// type): what a controller puts on the children it creates.
pub fn controller_ref_of<K: Object + k8s_openapi::Resource>(owner: &K) -> OwnerReference {
    controller_ref(K::API_VERSION, K::KIND, owner.meta())
}
