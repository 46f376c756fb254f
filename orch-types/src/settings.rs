//! `settings.k8s.io/v1alpha1`: [`PodPreset`], what the `PodPreset` admission plugin injects
//! into the pods its selector matches.
//!
//! Upstream served this group from 1.6 to 1.19 and removed it in 1.20
//! (`staging/src/k8s.io/api/settings/v1alpha1/types.go` of 1.19); k8s-openapi, generated from
//! later releases, has no such type, so it is defined here on k8s-openapi's field types.
//!
//! The wire form is upstream's: `apiVersion`, `kind`, `metadata`, `spec` with `selector`,
//! `env`, `envFrom`, `volumes`, `volumeMounts` (camelCase, empty lists omitted).
//!
//! ```
//! use orch_types::settings::PodPreset;
//! let pp: PodPreset = serde_json::from_value(serde_json::json!({
//!     "apiVersion": "settings.k8s.io/v1alpha1", "kind": "PodPreset",
//!     "metadata": {"name": "allow-database"},
//!     "spec": {"selector": {"matchLabels": {"role": "frontend"}},
//!              "env": [{"name": "DB_PORT", "value": "6379"}]}})).unwrap();
//! assert_eq!(pp.spec.env.as_ref().unwrap()[0].name, "DB_PORT");
//! let back = serde_json::to_value(&pp).unwrap();
//! assert_eq!(back["kind"], "PodPreset");
//! assert_eq!(back["spec"]["selector"]["matchLabels"]["role"], "frontend");
//! ```

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

/// A policy resource that defines additional runtime requirements for a Pod
/// (upstream `settings/v1alpha1.PodPreset`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "PodPresetWire")]
pub struct PodPreset {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// What to inject, and into which pods.
    pub spec: PodPresetSpec,
}

/// A list of [`PodPreset`]s (`kind: PodPresetList`).
pub type PodPresetList = k8s_openapi::List<PodPreset>;

/// The description of a pod preset (upstream `PodPresetSpec`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodPresetSpec {
    /// A label query over pods: the preset applies to the pods it matches (an empty selector
    /// matches every pod of the namespace).
    #[serde(default)]
    pub selector: LabelSelector,
    /// Environment variables to inject into containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// Sources of environment variables to inject into containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<EnvFromSource>>,
    /// Volumes to inject into the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    /// Volume mounts to inject into containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
}

/// The JSON shape, with the type fields a derived struct would otherwise report as unknown.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodPresetWire {
    #[serde(default)]
    #[allow(dead_code)]
    api_version: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    kind: Option<String>,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: PodPresetSpec,
}

impl From<PodPresetWire> for PodPreset {
    fn from(w: PodPresetWire) -> Self {
        PodPreset {
            metadata: w.metadata,
            spec: w.spec,
        }
    }
}

impl Serialize for PodPreset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("PodPreset", 4)?;
        st.serialize_field("apiVersion", <Self as k8s_openapi::Resource>::API_VERSION)?;
        st.serialize_field("kind", <Self as k8s_openapi::Resource>::KIND)?;
        st.serialize_field("metadata", &self.metadata)?;
        st.serialize_field("spec", &self.spec)?;
        st.end()
    }
}

impl k8s_openapi::Resource for PodPreset {
    const API_VERSION: &'static str = "settings.k8s.io/v1alpha1";
    const GROUP: &'static str = "settings.k8s.io";
    const KIND: &'static str = "PodPreset";
    const VERSION: &'static str = "v1alpha1";
    const URL_PATH_SEGMENT: &'static str = "podpresets";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::ListableResource for PodPreset {
    const LIST_KIND: &'static str = "PodPresetList";
}

impl k8s_openapi::Metadata for PodPreset {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_dynamic_object_and_reports_unknown_fields() {
        let v = serde_json::json!({
            "apiVersion": "settings.k8s.io/v1alpha1", "kind": "PodPreset",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"role": "frontend"}},
                     "volumeMounts": [{"name": "cache-volume", "mountPath": "/cache"}],
                     "volumes": [{"name": "cache-volume", "emptyDir": {}}],
                     "envFrom": [{"configMapRef": {"name": "cfg"}}],
                     "colour": "blue"}});
        let d = crate::DynamicObject::from_value(v.clone()).unwrap();
        let pp: PodPreset = d.to_typed().unwrap();
        assert_eq!(pp.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            pp.spec.volume_mounts.as_ref().unwrap()[0].mount_path,
            "/cache"
        );
        let back = crate::DynamicObject::from_typed(&pp).unwrap();
        assert_eq!(back.types.api_version, "settings.k8s.io/v1alpha1");
        assert_eq!(
            back.data["spec"]["envFrom"][0]["configMapRef"]["name"],
            "cfg"
        );
        assert!(back.data["spec"].get("env").is_none());
        let unknown =
            crate::decode::typed_check("settings.k8s.io/v1alpha1", "PodPreset", &v).unwrap();
        assert_eq!(unknown.unwrap(), ["spec.colour"]);
    }
}
