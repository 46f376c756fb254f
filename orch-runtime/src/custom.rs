//! Kinds defined by a CustomResourceDefinition, for controllers written against them: typed
//! through a `serde` struct ([`custom_kind!`](crate::custom_kind)) or dynamic
//! ([`DynamicObject`] with the [`ApiResource`] of [`resource`]).
//!
//! A typed custom kind is a struct with a `metadata: ObjectMeta` field (and usually `spec` and
//! `status`) deriving `Clone`, `Debug`, `Serialize` and `Deserialize`; `custom_kind!` gives it
//! what a k8s-openapi kind has: `k8s_openapi::Resource` (group, version, kind, plural, scope),
//! [`Object`](crate::object::Object) and [`Kind`](crate::object::Kind). From then on it is
//! declared, cached and written like `Pod`: [`Watches::watch`](crate::controller::Watches::watch),
//! [`Caches::get`](crate::controller::Caches::get), [`Action::create_or_update`],
//! [`Action::patch_status`], [`controller_ref_of`](crate::object::controller_ref_of). The
//! strings must be those of the CRD's served version (kube-rs `#[kube(group, version, kind)]`).
//!
//! ```
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
//! use orch_runtime::controller::{trigger_owner, trigger_self, Caches, Controller, Watches};
//! use orch_runtime::object::{controller_ref_of, Kind};
//! use orch_runtime::Action;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, Serialize, Deserialize)]
//! struct Backup {
//!     metadata: ObjectMeta,
//!     spec: BackupSpec,
//!     #[serde(default, skip_serializing_if = "Option::is_none")]
//!     status: Option<BackupStatus>,
//! }
//! #[derive(Clone, Debug, Serialize, Deserialize)]
//! struct BackupSpec { database: String }
//! #[derive(Clone, Debug, Default, Serialize, Deserialize)]
//! struct BackupStatus { selector: Option<String> }
//!
//! orch_runtime::custom_kind!(Backup, group = "ops.example.org", version = "v1",
//!     kind = "Backup", plural = "backups", scope = Namespaced);
//!
//! /// Gives each Backup a ConfigMap naming its database, and a selector in its status.
//! struct Backups;
//! impl Controller for Backups {
//!     fn name(&self) -> &'static str { "backup" }
//!     fn component(&self) -> &'static str { "backup-controller" }
//!     fn watches(&self, w: &mut Watches) {
//!         w.watch::<Backup>(trigger_self());
//!         w.watch::<ConfigMap>(trigger_owner("Backup"));
//!     }
//!     fn sync(&self, key: &str, caches: &Caches, _now: jiff::Timestamp) -> Vec<Action> {
//!         let Some(b) = caches.get::<Backup>().get(key) else { return vec![] };
//!         let name = b.metadata.name.clone().unwrap_or_default();
//!         let cm = ConfigMap {
//!             metadata: ObjectMeta {
//!                 name: Some(format!("backup-{name}")),
//!                 namespace: b.metadata.namespace.clone(),
//!                 owner_references: Some(vec![controller_ref_of(b.as_ref())]),
//!                 ..Default::default()
//!             },
//!             data: Some([("database".into(), b.spec.database.clone())].into()),
//!             ..Default::default()
//!         };
//!         let status = BackupStatus { selector: Some(format!("backup={name}")) };
//!         vec![Action::create_or_update(&cm), Action::patch_status(b.as_ref(), &status)]
//!     }
//! }
//!
//! assert_eq!(Backup::api_resource().plural, "backups");
//! ```

use orch_types::registry::ApiResource;
#[cfg(doc)]
use orch_types::DynamicObject;
use std::borrow::Cow;

#[cfg(doc)]
use crate::action::Action;

/// The [`ApiResource`] of a custom kind given by its CRD's group, served version, kind and
/// plural, for dynamic controllers ([`Watches::watch_dynamic`](crate::controller::Watches::watch_dynamic))
/// and actions on [`DynamicObject`]s.
///
/// ```
/// let r = orch_runtime::custom::resource("ops.example.org", "v1", "Backup", "backups", true);
/// assert_eq!(r.api_version(), "ops.example.org/v1");
/// assert_eq!(r.collection_path(Some("ns")), "/apis/ops.example.org/v1/namespaces/ns/backups");
/// ```
pub fn resource(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
) -> ApiResource {
    ApiResource {
        group: Cow::Owned(group.into()),
        version: Cow::Owned(version.into()),
        kind: Cow::Owned(kind.into()),
        plural: Cow::Owned(plural.into()),
        namespaced,
    }
}

/// Makes a `serde` struct with a `metadata: ObjectMeta` field a kind the runtime watches,
/// caches and writes: implements `k8s_openapi::Resource`, [`Object`](crate::object::Object)
/// (conversion through the wire form) and [`Kind`](crate::object::Kind).
///
/// `scope` is `Namespaced` or `Cluster`, as the CRD's `spec.scope`. The struct needs no
/// `apiVersion` or `kind` field (they are added on the way out and ignored on the way in);
/// give `status` `#[serde(default, skip_serializing_if = "Option::is_none")]` so that objects
/// without one convert, and so that a create does not send an empty one. See the
/// [module](crate::custom) for a whole controller.
#[macro_export]
macro_rules! custom_kind {
    ($t:ty, group = $group:literal, version = $version:literal, kind = $kind:literal,
     plural = $plural:literal, scope = Namespaced $(,)?) => {
        $crate::custom_kind!(@impl $t, $group, $version, $kind, $plural,
            $crate::__private::k8s_openapi::NamespaceResourceScope);
    };
    ($t:ty, group = $group:literal, version = $version:literal, kind = $kind:literal,
     plural = $plural:literal, scope = Cluster $(,)?) => {
        $crate::custom_kind!(@impl $t, $group, $version, $kind, $plural,
            $crate::__private::k8s_openapi::ClusterResourceScope);
    };
    (@impl $t:ty, $group:literal, $version:literal, $kind:literal, $plural:literal, $scope:ty) => {
        impl $crate::__private::k8s_openapi::Resource for $t {
            const API_VERSION: &'static str = concat!($group, "/", $version);
            const GROUP: &'static str = $group;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = $scope;
        }
        impl $crate::object::Object for $t {
            fn meta(&self) -> &$crate::__private::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut $crate::__private::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
            fn from_dynamic(
                d: &$crate::__private::orch_types::DynamicObject,
            ) -> ::std::result::Result<Self, $crate::__private::orch_types::dynamic::ConvertError> {
                d.to_typed()
            }
            fn to_dynamic(
                &self,
            ) -> ::std::result::Result<$crate::__private::orch_types::DynamicObject, $crate::__private::orch_types::dynamic::ConvertError> {
                $crate::__private::orch_types::DynamicObject::from_typed(self)
            }
        }
        impl $crate::object::Kind for $t {
            fn api_resource() -> $crate::__private::orch_types::registry::ApiResource {
                $crate::__private::orch_types::registry::ApiResource::of::<$t>()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::object::{controller_ref_of, Kind, Object};
    use crate::Action;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use orch_types::client::Patch;
    use orch_types::DynamicObject;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Backup {
        metadata: ObjectMeta,
        spec: Spec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<Status>,
    }
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Spec {
        database: String,
        #[serde(default)]
        workers: i64,
    }
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Status {
        workers: i64,
    }
    crate::custom_kind!(
        Backup,
        group = "ops.example.org",
        version = "v1",
        kind = "Backup",
        plural = "backups",
        scope = Namespaced
    );

    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct Tenant {
        metadata: ObjectMeta,
    }
    crate::custom_kind!(
        Tenant,
        group = "ops.example.org",
        version = "v1alpha1",
        kind = "Tenant",
        plural = "tenants",
        scope = Cluster
    );

    fn wire() -> DynamicObject {
        DynamicObject::from_value(json!({
            "apiVersion": "ops.example.org/v1", "kind": "Backup",
            "metadata": {"name": "b", "namespace": "ns", "uid": "u1"},
            "spec": {"database": "db", "workers": 2, "keep": 7},
        }))
        .unwrap()
    }

    #[test]
    fn the_resource_is_the_crds() {
        assert_eq!(
            Backup::api_resource(),
            super::resource("ops.example.org", "v1", "Backup", "backups", true)
        );
        let t = Tenant::api_resource();
        assert!(!t.namespaced);
        assert_eq!(
            t.object_path(None, "a"),
            "/apis/ops.example.org/v1alpha1/tenants/a"
        );
    }

    #[test]
    fn converts_from_and_to_the_wire_form() {
        let b = Backup::from_dynamic(&wire()).unwrap();
        assert_eq!(b.meta().name.as_deref(), Some("b"));
        assert_eq!(b.spec.workers, 2);
        assert_eq!(b.status, None);
        let d = b.to_dynamic().unwrap();
        assert_eq!(d.types.api_version, "ops.example.org/v1");
        assert_eq!(d.types.kind, "Backup");
        // Fields the struct does not know (`keep`) are not kept: a controller writes status
        // through a patch, never the whole object back.
        assert_eq!(d.data["spec"], json!({"database": "db", "workers": 2}));
        assert!(!d.data.contains_key("status"));
        // What does not fit the struct is an error naming the kind.
        let mut bad = wire();
        bad.data.insert("spec".into(), json!({"workers": 1}));
        assert_eq!(Backup::from_dynamic(&bad).unwrap_err().kind, "Backup");
    }

    #[test]
    fn actions_on_a_custom_kind() {
        let b = Backup::from_dynamic(&wire()).unwrap();
        let r = controller_ref_of(&b);
        assert_eq!(
            (
                r.api_version.as_str(),
                r.kind.as_str(),
                r.name.as_str(),
                r.uid.as_str()
            ),
            ("ops.example.org/v1", "Backup", "b", "u1")
        );
        assert_eq!(r.controller, Some(true));
        match Action::patch_status(&b, &Status { workers: 2 }) {
            Action::Patch {
                resource,
                namespace,
                name,
                subresource,
                patch,
            } => {
                assert_eq!(resource, Backup::api_resource());
                assert_eq!((namespace.as_deref(), name.as_str()), (Some("ns"), "b"));
                assert_eq!(subresource.as_deref(), Some("status"));
                assert_eq!(patch, Patch::Merge(json!({"status": {"workers": 2}})));
            }
            other => panic!("{other:?}"),
        }
        match Action::create_or_update(&b) {
            Action::CreateOrUpdate { resource, object } => {
                assert_eq!(resource.plural, "backups");
                assert_eq!(object.types.kind, "Backup");
            }
            other => panic!("{other:?}"),
        }
    }
}
