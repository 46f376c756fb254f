//! The schema of every served kind, in one place.
//!
//! Definitions are generated from k8s-openapi's types (their `schemars` implementations, which
//! mirror upstream's OpenAPI definitions and carry upstream's definition names such as
//! `io.k8s.api.apps.v1.Deployment`). The merge semantics of list and map fields come from one
//! table, [`table::FIELDS`], generated from upstream's Go struct tags. Both the OpenAPI documents
//! ([`crate::openapi`]) and strategic merge patch ([`crate::patch::strategic`]) read the result, so
//! what kubectl sees in `x-kubernetes-patch-merge-key` is exactly what the server merges by.
//!
//! ```
//! # use orch_apiserver::schema::Schemas;
//! let s = Schemas::builtin();
//! let spec = s.root("apps", "v1", "Deployment").unwrap().field("spec").0;
//! let (container, meta) = spec.field("template").0.field("spec").0.field("containers");
//! assert_eq!(meta.merge_key.as_deref(), Some("name"));
//! assert_eq!(container.field("ports").1.merge_key.as_deref(), Some("containerPort"));
//! ```

pub mod settings;
pub mod table;

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// Prefix of a `$ref` to a definition in an OpenAPI v3 document.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// Merge semantics of one field of one definition (upstream struct tags and markers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldExt {
    /// Definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    /// JSON field name.
    pub field: &'static str,
    /// `x-kubernetes-patch-strategy` (`merge`, `replace`, `retainKeys`, `merge,retainKeys`).
    pub patch_strategy: Option<&'static str>,
    /// `x-kubernetes-patch-merge-key`.
    pub patch_merge_key: Option<&'static str>,
    /// `x-kubernetes-list-type` (`atomic`, `set`, `map`).
    pub list_type: Option<&'static str>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: &'static [&'static str],
    /// `x-kubernetes-map-type` (`atomic`, `granular`).
    pub map_type: Option<&'static str>,
}

/// A kind served at the top level of an API group version, with its definition name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Definition name in [`Schemas::definitions`].
    pub definition: String,
}

/// A set of OpenAPI v3 schema definitions plus the kinds at their roots.
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    defs: Map<String, Value>,
    roots: Vec<Root>,
}

/// The patch metadata of a field: how strategic merge patch combines it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchMeta {
    /// Lists: merge instead of replace (`patchStrategy: merge`).
    pub merge: bool,
    /// Maps: replace instead of merge (`patchStrategy: replace`).
    pub replace: bool,
    /// `retainKeys` is part of the strategy (only matters when computing patches).
    pub retain_keys: bool,
    /// The merge key of a list of objects.
    pub merge_key: Option<String>,
}

impl PatchMeta {
    fn from_schema(v: &Value) -> Self {
        let mut m = PatchMeta::default();
        if let Some(s) = v.get("x-kubernetes-patch-strategy").and_then(Value::as_str) {
            for part in s.split(',') {
                match part.trim() {
                    "merge" => m.merge = true,
                    "replace" => m.replace = true,
                    "retainKeys" => m.retain_keys = true,
                    _ => {}
                }
            }
        }
        m.merge_key = v
            .get("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
            .map(str::to_string);
        m
    }
}

/// A position in a schema: the (resolved) schema of a value, or "unknown" (no schema; every
/// field then merges like JSON merge patch, lists are replaced).
#[derive(Debug, Clone, Copy)]
pub struct SchemaNode<'a> {
    schemas: &'a Schemas,
    schema: Option<&'a Value>,
    /// The definition the schema was reached through (its last `$ref`), if any.
    definition: Option<&'a str>,
}

impl<'a> SchemaNode<'a> {
    /// A node without schema.
    pub fn unknown(schemas: &'a Schemas) -> Self {
        Self {
            schemas,
            schema: None,
            definition: None,
        }
    }

    /// The resolved schema, if known.
    pub fn schema(&self) -> Option<&'a Value> {
        self.schema
    }

    /// The definition name of this schema (`io.k8s.api.core.v1.PodSpec`), when it was reached
    /// through a reference or by name.
    pub fn definition(&self) -> Option<&'a str> {
        self.definition
    }

    /// Whether field `key` of this object is a Go pointer to a scalar, where a zero value is
    /// set rather than absent (see [`table::POINTER_SCALARS`]).
    pub fn is_pointer_scalar(&self, key: &str) -> bool {
        self.definition.is_some_and(|d| {
            table::POINTER_SCALARS
                .iter()
                .any(|(def, field)| *def == d && *field == key)
        })
    }

    /// Follows references from `v`; returns the schema and the last definition name.
    fn resolve(&self, v: &'a Value) -> Option<(&'a Value, Option<&'a str>)> {
        let mut cur = v;
        let mut name = None;
        // Follow `$ref` and single-element `allOf: [{$ref}]` (upstream's form for refs with
        // siblings), a few levels at most.
        for _ in 0..8 {
            if let Some(r) = cur.get("$ref").and_then(Value::as_str) {
                let n = r.strip_prefix(REF_PREFIX).unwrap_or(r);
                let (key, def) = self.schemas.defs.get_key_value(n)?;
                cur = def;
                name = Some(key.as_str());
                continue;
            }
            if let Some([one]) = cur
                .get("allOf")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                cur = one;
                continue;
            }
            return Some((cur, name));
        }
        None
    }

    /// Looks up field `key` of this object schema. For a list field the returned node is the
    /// schema of the list's elements; for a map (`additionalProperties`) the schema of its values.
    pub fn field(&self, key: &str) -> (SchemaNode<'a>, PatchMeta) {
        let Some(s) = self.schema else {
            return (*self, PatchMeta::default());
        };
        let prop = s
            .get("properties")
            .and_then(|p| p.get(key))
            .or_else(|| s.get("additionalProperties").filter(|v| v.is_object()));
        let Some(prop) = prop else {
            return (SchemaNode::unknown(self.schemas), PatchMeta::default());
        };
        let meta = PatchMeta::from_schema(prop);
        let resolved = self.resolve(prop);
        let node = match resolved {
            Some((r, _)) if r.get("type").and_then(Value::as_str) == Some("array") => {
                r.get("items").and_then(|i| self.resolve(i))
            }
            other => other,
        };
        (
            SchemaNode {
                schemas: self.schemas,
                schema: node.map(|(s, _)| s),
                definition: node.and_then(|(_, d)| d),
            },
            meta,
        )
    }
}

static BUILTIN: OnceLock<Schemas> = OnceLock::new();

impl Schemas {
    /// Builds a schema set from definitions (e.g. a test schema) without roots.
    pub fn from_definitions(defs: Map<String, Value>) -> Self {
        Self {
            defs,
            roots: Vec::new(),
        }
    }

    /// The schemas of every built-in kind (built once, on first use).
    pub fn builtin() -> &'static Schemas {
        BUILTIN.get_or_init(build_builtin)
    }

    /// All definitions, by name.
    pub fn definitions(&self) -> &Map<String, Value> {
        &self.defs
    }

    /// One definition.
    pub fn definition(&self, name: &str) -> Option<&Value> {
        self.defs.get(name)
    }

    /// The kinds at the roots.
    pub fn roots(&self) -> &[Root] {
        &self.roots
    }

    /// The node of a definition by name (unknown if absent).
    pub fn node(&self, definition: &str) -> SchemaNode<'_> {
        let found = self.defs.get_key_value(definition);
        SchemaNode {
            schemas: self,
            schema: found.map(|(_, v)| v),
            definition: found.map(|(k, _)| k.as_str()),
        }
    }

    /// The root node of a served kind.
    pub fn root(&self, group: &str, version: &str, kind: &str) -> Option<SchemaNode<'_>> {
        self.root_info(group, version, kind)
            .map(|r| self.node(&r.definition))
    }

    /// The [`Root`] entry of a served kind.
    pub fn root_info(&self, group: &str, version: &str, kind: &str) -> Option<&Root> {
        self.roots
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
    }

    /// Names of every definition reachable from `start` (including it), sorted.
    pub fn closure(&self, start: &[&str]) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack: Vec<String> = start.iter().map(|s| s.to_string()).collect();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(d) = self.defs.get(&n) {
                collect_refs(d, &mut stack);
            }
        }
        seen.into_iter().collect()
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                out.push(r.strip_prefix(REF_PREFIX).unwrap_or(r).to_string());
            }
            m.values().for_each(|c| collect_refs(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

/// Structs that are atomic as a whole (upstream `+structType=atomic`; its OpenAPI marks the
/// definition `x-kubernetes-map-type: atomic`): field management owns them as one field.
pub const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.SecretReference",
];

/// Adds the table's extensions to the definitions and marks roots with
/// `x-kubernetes-group-version-kind`.
fn decorate(defs: &mut Map<String, Value>, roots: &[Root]) {
    for name in ATOMIC_STRUCTS {
        if let Some(d) = defs.get_mut(*name).and_then(Value::as_object_mut) {
            d.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
    }
    for f in table::FIELDS {
        let Some(prop) = defs
            .get_mut(f.definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(f.field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if let Some(s) = f.patch_strategy {
            prop.insert("x-kubernetes-patch-strategy".into(), s.into());
        }
        if let Some(k) = f.patch_merge_key {
            prop.insert("x-kubernetes-patch-merge-key".into(), k.into());
        }
        if let Some(t) = f.list_type {
            prop.insert("x-kubernetes-list-type".into(), t.into());
        }
        if !f.list_map_keys.is_empty() {
            prop.insert("x-kubernetes-list-map-keys".into(), json!(f.list_map_keys));
        }
        if let Some(t) = f.map_type {
            prop.insert("x-kubernetes-map-type".into(), t.into());
        }
    }
    for r in roots {
        if let Some(d) = defs.get_mut(&r.definition).and_then(Value::as_object_mut) {
            let entry = json!({"group": r.group, "kind": r.kind, "version": r.version});
            match d
                .entry("x-kubernetes-group-version-kind")
                .or_insert_with(|| json!([]))
            {
                Value::Array(a) if !a.contains(&entry) => a.push(entry),
                _ => {}
            }
        }
    }
}

fn build_builtin() -> Schemas {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v1 as asv1, autoscaling::v2 as asv2, batch::v1 as batch,
        coordination::v1 as coord, core::v1 as core, events::v1 as events, policy::v1 as policy,
        scheduling::v1 as sched, storage::v1 as storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    use schemars::generate::SchemaSettings;

    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut roots = Vec::new();
    macro_rules! root {
        ($($g:literal $v:literal $k:literal => $t:ty),* $(,)?) => {$({
            let r = generator.subschema_for::<$t>();
            let name = r
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|s| s.strip_prefix(REF_PREFIX))
                .unwrap_or(stringify!($t))
                .to_string();
            roots.push(Root { group: $g, version: $v, kind: $k, definition: name });
        })*};
    }
    root! {
        "" "v1" "Pod" => core::Pod,
        "" "v1" "Node" => core::Node,
        "" "v1" "Namespace" => core::Namespace,
        "" "v1" "Service" => core::Service,
        "" "v1" "Endpoints" => core::Endpoints,
        "" "v1" "Event" => core::Event,
        "" "v1" "ConfigMap" => core::ConfigMap,
        "" "v1" "Secret" => core::Secret,
        "" "v1" "ServiceAccount" => core::ServiceAccount,
        "" "v1" "PodTemplate" => core::PodTemplate,
        "" "v1" "ReplicationController" => core::ReplicationController,
        "" "v1" "Binding" => core::Binding,
        "" "v1" "PersistentVolumeClaim" => core::PersistentVolumeClaim,
        "" "v1" "PersistentVolume" => core::PersistentVolume,
        "" "v1" "ResourceQuota" => core::ResourceQuota,
        "" "v1" "LimitRange" => core::LimitRange,
        "apps" "v1" "ReplicaSet" => apps::ReplicaSet,
        "apps" "v1" "Deployment" => apps::Deployment,
        "apps" "v1" "DaemonSet" => apps::DaemonSet,
        "apps" "v1" "StatefulSet" => apps::StatefulSet,
        "apps" "v1" "ControllerRevision" => apps::ControllerRevision,
        "batch" "v1" "Job" => batch::Job,
        "batch" "v1" "CronJob" => batch::CronJob,
        "policy" "v1" "PodDisruptionBudget" => policy::PodDisruptionBudget,
        "policy" "v1" "Eviction" => policy::Eviction,
        "coordination.k8s.io" "v1" "Lease" => coord::Lease,
        "autoscaling" "v1" "Scale" => asv1::Scale,
        "authentication.k8s.io" "v1" "TokenRequest" => k8s_openapi::api::authentication::v1::TokenRequest,
        "autoscaling" "v2" "HorizontalPodAutoscaler" => asv2::HorizontalPodAutoscaler,
        "autoscaling" "v1" "HorizontalPodAutoscaler" => asv1::HorizontalPodAutoscaler,
        "scheduling.k8s.io" "v1" "PriorityClass" => sched::PriorityClass,
        "storage.k8s.io" "v1" "StorageClass" => storage::StorageClass,
        "flowcontrol.apiserver.k8s.io" "v1" "FlowSchema" =>
            k8s_openapi::api::flowcontrol::v1::FlowSchema,
        "flowcontrol.apiserver.k8s.io" "v1" "PriorityLevelConfiguration" =>
            k8s_openapi::api::flowcontrol::v1::PriorityLevelConfiguration,
        "apiextensions.k8s.io" "v1" "CustomResourceDefinition" => apiext::CustomResourceDefinition,
        "events.k8s.io" "v1" "Event" => events::Event,
        "discovery.k8s.io" "v1" "EndpointSlice" => k8s_openapi::api::discovery::v1::EndpointSlice,
        "certificates.k8s.io" "v1" "CertificateSigningRequest" =>
            k8s_openapi::api::certificates::v1::CertificateSigningRequest,
        "apiregistration.k8s.io" "v1" "APIService" =>
            k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
        "admissionregistration.k8s.io" "v1" "MutatingWebhookConfiguration" =>
            k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
        "admissionregistration.k8s.io" "v1" "ValidatingWebhookConfiguration" =>
            k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
        "rbac.authorization.k8s.io" "v1" "Role" => k8s_openapi::api::rbac::v1::Role,
        "rbac.authorization.k8s.io" "v1" "ClusterRole" => k8s_openapi::api::rbac::v1::ClusterRole,
        "rbac.authorization.k8s.io" "v1" "RoleBinding" => k8s_openapi::api::rbac::v1::RoleBinding,
        "rbac.authorization.k8s.io" "v1" "ClusterRoleBinding" =>
            k8s_openapi::api::rbac::v1::ClusterRoleBinding,
        "authorization.k8s.io" "v1" "SelfSubjectAccessReview" =>
            k8s_openapi::api::authorization::v1::SelfSubjectAccessReview,
        "authorization.k8s.io" "v1" "SubjectAccessReview" =>
            k8s_openapi::api::authorization::v1::SubjectAccessReview,
        "authorization.k8s.io" "v1" "LocalSubjectAccessReview" =>
            k8s_openapi::api::authorization::v1::LocalSubjectAccessReview,
        "authorization.k8s.io" "v1" "SelfSubjectRulesReview" =>
            k8s_openapi::api::authorization::v1::SelfSubjectRulesReview,
        "authentication.k8s.io" "v1" "SelfSubjectReview" =>
            k8s_openapi::api::authentication::v1::SelfSubjectReview,
        "authentication.k8s.io" "v1" "TokenReview" => k8s_openapi::api::authentication::v1::TokenReview,
        "meta.k8s.io" "v1" "Status" => meta::Status,
        "meta.k8s.io" "v1" "DeleteOptions" => meta::DeleteOptions,
        "meta.k8s.io" "v1" "Patch" => meta::Patch,
    }
    let preset_defs = settings::definitions(&mut generator);
    roots.push(Root {
        group: "settings.k8s.io",
        version: "v1alpha1",
        kind: "PodPreset",
        definition: settings::POD_PRESET.into(),
    });
    let mut defs = generator.take_definitions(true);
    defs.extend(preset_defs);
    decorate(&mut defs, &roots);
    Schemas { defs, roots }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_kind_has_a_root_with_gvk() {
        let s = Schemas::builtin();
        for r in orch_types::registry::BUILTIN {
            let root = s
                .root_info(r.group, r.version, r.kind)
                .unwrap_or_else(|| panic!("no schema for {}/{}", r.api_version(), r.kind));
            let def = s.definition(&root.definition).expect("definition present");
            let gvk = &def["x-kubernetes-group-version-kind"];
            assert!(
                gvk.as_array()
                    .is_some_and(|a| a.iter().any(|e| e["kind"] == r.kind)),
                "{} lacks gvk: {gvk}",
                r.kind
            );
        }
    }

    #[test]
    fn table_entries_land_on_existing_properties() {
        let s = Schemas::builtin();
        let pod_spec = s.definition("io.k8s.api.core.v1.PodSpec").unwrap();
        assert_eq!(
            pod_spec["properties"]["containers"]["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert_eq!(
            pod_spec["properties"]["volumes"]["x-kubernetes-patch-strategy"],
            "merge,retainKeys"
        );
        assert_eq!(
            pod_spec["properties"]["tolerations"]["x-kubernetes-list-type"],
            "atomic"
        );
        let c = s.definition("io.k8s.api.core.v1.Container").unwrap();
        assert_eq!(
            c["properties"]["ports"]["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        // Every table row whose definition is generated names a real property.
        for f in table::FIELDS {
            if let Some(d) = s.definition(f.definition) {
                assert!(
                    d["properties"].get(f.field).is_some()
                        // fields newer than the k8s-openapi version in use
                        || !matches!(f.field, "containers" | "env" | "ports" | "volumes"),
                    "{}.{} missing",
                    f.definition,
                    f.field
                );
            }
        }
    }

    #[test]
    fn navigation_resolves_refs_lists_and_maps() {
        let s = Schemas::builtin();
        let pod = s.root("", "v1", "Pod").unwrap();
        let (labels, _) = pod.field("metadata").0.field("labels");
        assert_eq!(labels.schema().unwrap()["type"], "object");
        assert_eq!(labels.field("app").0.schema().unwrap()["type"], "string");
        let (owner, meta) = pod.field("metadata").0.field("ownerReferences");
        assert_eq!(meta.merge_key.as_deref(), Some("uid"));
        assert!(owner.schema().unwrap()["properties"].get("uid").is_some());
        let (_, tol) = pod.field("spec").0.field("tolerations");
        assert!(!tol.merge);
        let (unknown, meta) = pod.field("nonsense");
        assert!(unknown.schema().is_none());
        assert_eq!(meta, PatchMeta::default());
    }
}
