//! Schema of `settings.k8s.io/v1alpha1` PodPreset, which k8s-openapi no longer has: written
//! here as upstream's OpenAPI definitions of 1.19 (`io.k8s.api.settings.v1alpha1.*`, from
//! `staging/src/k8s.io/api/settings/v1alpha1/types.go`), referring to the k8s-openapi generated
//! definitions of the core types it embeds. No field carries patch extensions upstream, so
//! strategic merge patch replaces its lists.

use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

/// Definition name of PodPreset.
pub const POD_PRESET: &str = "io.k8s.api.settings.v1alpha1.PodPreset";
/// Definition name of PodPresetSpec.
pub const POD_PRESET_SPEC: &str = "io.k8s.api.settings.v1alpha1.PodPresetSpec";
/// Definition name of PodPresetList.
pub const POD_PRESET_LIST: &str = "io.k8s.api.settings.v1alpha1.PodPresetList";

const API_VERSION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// `$ref` to the generated definition of `T`, with a description.
fn reference<T: schemars::JsonSchema>(generator: &mut SchemaGenerator, description: &str) -> Value {
    let mut v = serde_json::to_value(generator.subschema_for::<T>()).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("description".into(), description.into());
    }
    v
}

/// A list of the generated definition of `T`.
fn list_of<T: schemars::JsonSchema>(generator: &mut SchemaGenerator, description: &str) -> Value {
    let items = serde_json::to_value(generator.subschema_for::<T>()).unwrap_or(Value::Null);
    json!({"description": description, "type": "array", "items": items})
}

/// The three definitions. Call before the generator's definitions are taken, so the core
/// definitions they refer to are among them.
pub fn definitions(generator: &mut SchemaGenerator) -> Map<String, Value> {
    use k8s_openapi::api::core::v1 as core;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    let preset_ref = json!({"$ref": format!("{}{POD_PRESET}", super::REF_PREFIX)});
    let mut defs = Map::new();
    defs.insert(
        POD_PRESET.into(),
        json!({
            "description": "PodPreset is a policy resource that defines additional runtime requirements for a Pod.",
            "type": "object",
            "properties": {
                "apiVersion": {"description": API_VERSION, "type": "string"},
                "kind": {"description": KIND, "type": "string"},
                "metadata": reference::<meta::ObjectMeta>(generator, "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"),
                "spec": {"$ref": format!("{}{POD_PRESET_SPEC}", super::REF_PREFIX)},
            },
        }),
    );
    defs.insert(
        POD_PRESET_SPEC.into(),
        json!({
            "description": "PodPresetSpec is a description of a pod preset.",
            "type": "object",
            "properties": {
                "env": list_of::<core::EnvVar>(generator, "Env defines the collection of EnvVar to inject into containers."),
                "envFrom": list_of::<core::EnvFromSource>(generator, "EnvFrom defines the collection of EnvFromSource to inject into containers."),
                "selector": reference::<meta::LabelSelector>(generator, "Selector is a label query over a set of resources, in this case pods. Required."),
                "volumeMounts": list_of::<core::VolumeMount>(generator, "VolumeMounts defines the collection of VolumeMount to inject into containers."),
                "volumes": list_of::<core::Volume>(generator, "Volumes defines the collection of Volume to inject into the pod."),
            },
        }),
    );
    defs.insert(
        POD_PRESET_LIST.into(),
        json!({
            "description": "PodPresetList is a list of PodPreset objects.",
            "type": "object",
            "properties": {
                "apiVersion": {"description": API_VERSION, "type": "string"},
                "kind": {"description": KIND, "type": "string"},
                "metadata": reference::<meta::ListMeta>(generator, "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"),
                "items": {"description": "Items is a list of schema objects.", "type": "array", "items": preset_ref},
            },
            "required": ["items"],
            "x-kubernetes-group-version-kind": [{"group": "settings.k8s.io", "kind": "PodPresetList", "version": "v1alpha1"}],
        }),
    );
    defs
}

#[cfg(test)]
mod tests {
    use crate::schema::Schemas;

    #[test]
    fn pod_preset_is_a_root_whose_fields_resolve_to_core_definitions() {
        let s = Schemas::builtin();
        let root = s.root("settings.k8s.io", "v1alpha1", "PodPreset").unwrap();
        let spec = root.field("spec").0;
        let (env, _) = spec.field("env");
        assert!(env.schema().unwrap()["properties"]
            .get("valueFrom")
            .is_some());
        let (volume, _) = spec.field("volumes");
        assert!(volume.schema().unwrap()["properties"]
            .get("emptyDir")
            .is_some());
        let (selector, _) = spec.field("selector");
        assert!(selector.schema().unwrap()["properties"]
            .get("matchLabels")
            .is_some());
        let (meta, _) = root.field("metadata");
        assert!(meta.schema().unwrap()["properties"]
            .get("annotations")
            .is_some());
        let doc = crate::openapi::document("settings.k8s.io", "v1alpha1").unwrap();
        assert!(doc["paths"]
            .get("/apis/settings.k8s.io/v1alpha1/namespaces/{namespace}/podpresets/{name}")
            .is_some());
    }
}
