//! OpenAPI v3 documents of custom group versions, so `kubectl explain` and clients that read
//! schemas see custom kinds (upstream `apiextensions-apiserver/pkg/controller/openapi/builder/
//! builder.go`).
//!
//! Each served version contributes its paths (the same operations as a built-in kind's) and
//! two definitions named as upstream names them, by the reversed group (`com.example.stable.
//! v1.CronTab` and `…CronTabList`): the version's `openAPIV3Schema` with `apiVersion`, `kind`
//! and `metadata` (a reference to `ObjectMeta`) filled in and `x-kubernetes-group-version-kind`
//! set; a version without a schema is an object that preserves unknown fields.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::CustomResource;
use crate::schema::{Schemas, REF_PREFIX};

/// Served documents: `apis/GROUP/VERSION` → (hash, JSON bytes).
#[derive(Debug, Default)]
pub struct Documents(pub(crate) BTreeMap<String, (String, Vec<u8>)>);

impl Documents {
    /// The documents of every custom group version in `resources`.
    pub(crate) fn build(resources: &[Arc<CustomResource>]) -> Self {
        let mut by_gv: BTreeMap<String, Vec<&Arc<CustomResource>>> = BTreeMap::new();
        for r in resources {
            by_gv
                .entry(format!("apis/{}/{}", r.info.group, r.info.version))
                .or_default()
                .push(r);
        }
        let docs = by_gv
            .into_iter()
            .map(|(path, rs)| {
                let bytes = serde_json::to_vec(&document(&rs)).unwrap_or_default();
                (path, (crate::openapi::etag(&bytes), bytes))
            })
            .collect();
        Self(docs)
    }
}

/// `stable.example.com` → `com.example.stable`.
fn reversed(group: &str) -> String {
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

/// The definition name of a custom kind (upstream `builder.go` `definitionName`'s form).
pub fn definition_name(group: &str, version: &str, kind: &str) -> String {
    format!("{}.{version}.{kind}", reversed(group))
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

fn object_schema(r: &CustomResource) -> Value {
    let info = r.info;
    let mut schema = match r.schema().and_then(|s| serde_json::to_value(s).ok()) {
        Some(Value::Object(m)) => m,
        _ => {
            let mut m = Map::new();
            m.insert("type".into(), "object".into());
            m.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
            m
        }
    };
    let props = schema
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut merged = Map::new();
    merged.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
    merged.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
    merged.insert("metadata".into(), json!({"allOf": [{"$ref": format!("{REF_PREFIX}{OBJECT_META}")}], "default": {}, "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}));
    for (k, v) in props {
        if k != "apiVersion" && k != "kind" && k != "metadata" {
            merged.insert(k, v);
        }
    }
    schema.insert("properties".into(), Value::Object(merged));
    schema.insert("type".into(), "object".into());
    schema.insert(
        "x-kubernetes-group-version-kind".into(),
        json!([{"group": info.group, "version": info.version, "kind": info.kind}]),
    );
    Value::Object(schema)
}

fn list_schema(r: &CustomResource, item: &str) -> Value {
    let info = r.info;
    json!({
        "type": "object",
        "description": format!("{}List is a list of {}", info.kind, info.kind),
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"allOf": [{"$ref": format!("{REF_PREFIX}{LIST_META}")}], "default": {}},
            "items": {"type": "array", "items": {"$ref": format!("{REF_PREFIX}{item}")},
                "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", info.plural)},
        },
        "x-kubernetes-group-version-kind": [{"group": info.group, "version": info.version, "kind": format!("{}List", info.kind)}],
    })
}

/// The OpenAPI v3 document of one custom group version.
fn document(resources: &[&Arc<CustomResource>]) -> Value {
    let schemas = Schemas::builtin();
    let mut paths = Map::new();
    let mut components = Map::new();
    let mut roots = vec![
        OBJECT_META,
        LIST_META,
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    ];
    for r in resources {
        let info = r.info;
        let def = definition_name(info.group, info.version, info.kind);
        components.insert(def.clone(), object_schema(r));
        components.insert(format!("{def}List"), list_schema(r, &def));
        if info.subresource("scale").is_some() {
            roots.push("io.k8s.api.autoscaling.v1.Scale");
        }
        let gvk = json!({"group": info.group, "version": info.version, "kind": info.kind});
        crate::openapi::resource_paths(info, &def, &gvk, &mut paths);
    }
    for n in schemas.closure(&roots) {
        if let Some(d) = schemas.definition(&n) {
            components.insert(n, d.clone());
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": components},
    })
}

/// The schema set a custom resource's fields are tracked and merged by in server-side apply
/// (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type` of its
/// `openAPIV3Schema`); `None` without a schema. The catalog that serves the resource keeps it
/// ([`CustomResource::apply_schemas`]), so API servers in one process that serve one kind with
/// different schemas each merge by their own. A set is made once per distinct definition and
/// kept for the life of the process, as the interned resource entries are.
pub(crate) fn apply_schemas_of(r: &CustomResource) -> Option<&'static Schemas> {
    static MADE: std::sync::OnceLock<
        parking_lot::Mutex<std::collections::HashMap<String, &'static Schemas>>,
    > = std::sync::OnceLock::new();
    r.schema()?;
    let info = r.info;
    let def = definition_name(info.group, info.version, info.kind);
    let object = object_schema(r);
    let key = format!("{def}\n{object}");
    let schemas = *MADE
        .get_or_init(Default::default)
        .lock()
        .entry(key)
        .or_insert_with(|| {
            let builtin = Schemas::builtin();
            let mut defs = Map::new();
            for n in builtin.closure(&[OBJECT_META]) {
                if let Some(d) = builtin.definition(&n) {
                    defs.insert(n, d.clone());
                }
            }
            let mut object = object;
            merge_by_list_type(&mut object);
            defs.insert(def, object);
            Box::leak(Box::new(Schemas::from_definitions(defs)))
        });
    Some(schemas)
}

/// The server-side apply schema of a custom resource, if its version has a schema.
pub fn apply_schema(r: &CustomResource) -> Option<crate::schema::SchemaNode<'static>> {
    let info = r.info;
    Some(
        r.apply_schemas?
            .node(&definition_name(info.group, info.version, info.kind)),
    )
}

/// Server-side apply merges the configuration into the live object with the strategic merge
/// machinery, which merges lists by `x-kubernetes-patch-merge-key`. Custom schemas declare
/// their lists with `x-kubernetes-list-type` instead (strategic merge patch itself is not
/// offered for custom resources): a `map` list with one key merges by it, a `set` merges as
/// a union. Lists keyed by several fields stay atomic in the merge (their ownership is still
/// tracked per key).
fn merge_by_list_type(schema: &mut Value) {
    let Some(m) = schema.as_object_mut() else {
        return;
    };
    let list_type = m.get("x-kubernetes-list-type").and_then(Value::as_str);
    let has_strategy = m.contains_key("x-kubernetes-patch-strategy");
    match list_type {
        Some("map") if !has_strategy => {
            let keys: Vec<String> = m
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if let [key] = keys.as_slice() {
                m.insert("x-kubernetes-patch-strategy".into(), "merge".into());
                m.insert("x-kubernetes-patch-merge-key".into(), key.clone().into());
            }
        }
        Some("set") if !has_strategy => {
            m.insert("x-kubernetes-patch-strategy".into(), "merge".into());
        }
        _ => {}
    }
    if let Some(Value::Object(props)) = m.get_mut("properties") {
        props.values_mut().for_each(merge_by_list_type);
    }
    for k in ["additionalProperties", "items"] {
        if let Some(v) = m.get_mut(k) {
            merge_by_list_type(v);
        }
    }
}
