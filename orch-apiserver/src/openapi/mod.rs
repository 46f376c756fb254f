//! OpenAPI v3: `/openapi/v3` (the index) and `/openapi/v3/api/v1`,
//! `/openapi/v3/apis/GROUP/VERSION` (one document per group version).
//!
//! Schemas come from [`crate::schema::Schemas::builtin`] (k8s-openapi's definitions plus the
//! merge-semantics table), so they carry `x-kubernetes-group-version-kind`,
//! `x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy` and the list-type extensions.
//! Paths carry one operation per verb with `x-kubernetes-action`,
//! `x-kubernetes-group-version-kind` and the `fieldValidation` / `fieldManager` / `dryRun`
//! parameters: kubectl checks for them on PATCH before it validates server-side, and
//! `kubectl explain` walks the schemas.
//!
//! `/openapi/v2` ([`v2`]) is one Swagger 2.0 document for the whole API, converted from these
//! documents, as JSON or as gnostic's protobuf (our own prost messages, `gnostic`): client-go's
//! `discovery.OpenAPISchema()` still fetches it for kubectl's client-side validation (`create -f`
//! of a `kind: List`; every `create`/`apply -f` in kubectl 1.27–1.28) and for `kubectl explain`
//! before 1.29.
//!
//! ```
//! let doc = orch_apiserver::openapi::document("apps", "v1").unwrap();
//! let d = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
//! assert_eq!(d["x-kubernetes-group-version-kind"][0]["kind"], "Deployment");
//! ```

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use orch_types::registry::{self, ResourceInfo};
use serde_json::{json, Map, Value};

use crate::schema::{Schemas, REF_PREFIX};
use crate::server::ApiServer;

mod gnostic;
pub mod v2;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn schema_ref(def: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{def}")})
}

fn query_param(name: &str, description: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        query_param("dryRun", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed", "string"),
        query_param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes.", "string"),
        query_param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict", "string"),
    ]
}

fn list_params() -> Vec<Value> {
    [
        ("allowWatchBookmarks", "boolean"),
        ("continue", "string"),
        ("fieldSelector", "string"),
        ("labelSelector", "string"),
        ("limit", "integer"),
        ("resourceVersion", "string"),
        ("resourceVersionMatch", "string"),
        ("sendInitialEvents", "boolean"),
        ("timeoutSeconds", "integer"),
        ("watch", "boolean"),
    ]
    .iter()
    .map(|(n, t)| query_param(n, n, t))
    .collect()
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}, "application/yaml": {"schema": schema}})
}

fn op_id(verb: &str, r: &ResourceInfo, suffix: &str) -> String {
    let group: String = r
        .group
        .split('.')
        .next()
        .unwrap_or("")
        .split('-')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let version = {
        let mut c = r.version.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    };
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let group = if group.is_empty() {
        "Core".to_string()
    } else {
        group
    };
    format!("{verb}{group}{version}{scope}{}{suffix}", r.kind)
}

// One builder for every operation shape; the arguments are exactly an operation's fields.
#[allow(clippy::too_many_arguments)]
fn operation(
    verb: &str,
    action: &str,
    r: &ResourceInfo,
    gvk: &Value,
    suffix: &str,
    params: Vec<Value>,
    body: Option<Value>,
    response: Value,
) -> Value {
    let mut op = json!({
        "tags": [gv_path(r.group, r.version).replace('/', "_")],
        "operationId": op_id(verb, r, suffix),
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": json_content(response)},
                      "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    if let Some(b) = body {
        op["requestBody"] = json!({"content": b, "required": true});
    }
    op
}

fn patch_body() -> Value {
    let patch = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch");
    json!({
        "application/apply-patch+yaml": {"schema": patch},
        "application/json-patch+json": {"schema": patch},
        "application/merge-patch+json": {"schema": patch},
        "application/strategic-merge-patch+json": {"schema": patch},
    })
}

pub(crate) fn resource_paths(
    r: &ResourceInfo,
    def: &str,
    kind_gvk: &Value,
    paths: &mut Map<String, Value>,
) {
    let base = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let ns_param = json!({"name": "namespace", "in": "path", "required": true,
        "description": "object name and auth scope, such as for teams and projects",
        "schema": {"type": "string", "uniqueItems": true}});
    let name_param = json!({"name": "name", "in": "path", "required": true,
        "description": format!("name of the {}", r.kind),
        "schema": {"type": "string", "uniqueItems": true}});
    let collection = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{base}/{}", r.plural)
    };
    let item = format!("{collection}/{{name}}");
    let obj = schema_ref(def);
    let has = |v: &str| r.verbs.contains(&v);
    let mut coll = Map::new();
    if has("list") {
        coll.insert(
            "get".into(),
            operation(
                "list",
                "list",
                r,
                kind_gvk,
                "",
                list_params(),
                None,
                json!({"type": "object"}),
            ),
        );
    }
    if has("create") {
        coll.insert(
            "post".into(),
            operation(
                "create",
                "post",
                r,
                kind_gvk,
                "",
                write_params(),
                Some(json_content(obj.clone())),
                obj.clone(),
            ),
        );
    }
    if has("deletecollection") {
        coll.insert(
            "delete".into(),
            operation(
                "delete",
                "deletecollection",
                r,
                kind_gvk,
                "Collection",
                list_params(),
                None,
                schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
            ),
        );
    }
    let mut scope_params = Vec::new();
    if r.namespaced {
        scope_params.push(ns_param.clone());
    }
    if !coll.is_empty() {
        coll.insert("parameters".into(), json!(scope_params));
        paths.insert(collection.clone(), Value::Object(coll));
    }
    let mut it = Map::new();
    let mut patch_params = write_params();
    patch_params.push(query_param(
        "force",
        "Force is going to \"force\" Apply requests.",
        "boolean",
    ));
    if has("get") {
        it.insert(
            "get".into(),
            operation("read", "get", r, kind_gvk, "", vec![], None, obj.clone()),
        );
    }
    if has("update") {
        it.insert(
            "put".into(),
            operation(
                "replace",
                "put",
                r,
                kind_gvk,
                "",
                write_params(),
                Some(json_content(obj.clone())),
                obj.clone(),
            ),
        );
    }
    if has("patch") {
        it.insert(
            "patch".into(),
            operation(
                "patch",
                "patch",
                r,
                kind_gvk,
                "",
                patch_params.clone(),
                Some(patch_body()),
                obj.clone(),
            ),
        );
    }
    if has("delete") {
        it.insert(
            "delete".into(),
            operation(
                "delete",
                "delete",
                r,
                kind_gvk,
                "",
                write_params(),
                Some(json_content(schema_ref(
                    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
                ))),
                schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
            ),
        );
    }
    if !it.is_empty() {
        let mut p = vec![name_param.clone()];
        p.extend(scope_params.iter().cloned());
        it.insert("parameters".into(), json!(p));
        paths.insert(item.clone(), Value::Object(it));
    }
    // Subresources: their own kind's schema where it has one (scale → autoscaling/v1 Scale).
    for s in r.subresources {
        if s.name == "log" {
            continue;
        }
        let schemas = Schemas::builtin();
        let Some(sub_def) = schemas.root_info(s.group, s.version, s.kind) else {
            continue;
        };
        let sub_obj = schema_ref(&sub_def.definition);
        let sub_gvk = json!({"group": s.group, "version": s.version, "kind": s.kind});
        let suffix: String = {
            let mut c = s.name.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        };
        let mut sp = Map::new();
        for verb in s.verbs {
            let (method, op) = match *verb {
                "get" => (
                    "get",
                    operation(
                        "read",
                        "get",
                        r,
                        &sub_gvk,
                        &suffix,
                        vec![],
                        None,
                        sub_obj.clone(),
                    ),
                ),
                "update" => (
                    "put",
                    operation(
                        "replace",
                        "put",
                        r,
                        &sub_gvk,
                        &suffix,
                        write_params(),
                        Some(json_content(sub_obj.clone())),
                        sub_obj.clone(),
                    ),
                ),
                "patch" => (
                    "patch",
                    operation(
                        "patch",
                        "patch",
                        r,
                        &sub_gvk,
                        &suffix,
                        patch_params.clone(),
                        Some(patch_body()),
                        sub_obj.clone(),
                    ),
                ),
                "create" => (
                    "post",
                    operation(
                        "create",
                        "post",
                        r,
                        &sub_gvk,
                        &suffix,
                        write_params(),
                        Some(json_content(sub_obj.clone())),
                        sub_obj.clone(),
                    ),
                ),
                _ => continue,
            };
            sp.insert(method.into(), op);
        }
        if !sp.is_empty() {
            let mut p = vec![name_param.clone()];
            p.extend(scope_params.iter().cloned());
            sp.insert("parameters".into(), json!(p));
            paths.insert(format!("{item}/{}", s.name), Value::Object(sp));
        }
    }
}

/// The OpenAPI v3 document of one served group version, or `None` if not served.
pub fn document(group: &str, version: &str) -> Option<Value> {
    let schemas = Schemas::builtin();
    let mut paths = Map::new();
    let mut roots: Vec<String> = vec![
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status".into(),
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into(),
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
    ];
    let mut any = false;
    for r in registry::BUILTIN
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let Some(root) = schemas.root_info(r.group, r.version, r.kind) else {
            continue;
        };
        any = true;
        roots.push(root.definition.clone());
        for s in r.subresources {
            if let Some(sub) = schemas.root_info(s.group, s.version, s.kind) {
                roots.push(sub.definition.clone());
            }
        }
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        resource_paths(r, &root.definition, &gvk, &mut paths);
    }
    if !any {
        return None;
    }
    let names: Vec<&str> = roots.iter().map(String::as_str).collect();
    let mut components = Map::new();
    for n in schemas.closure(&names) {
        if let Some(d) = schemas.definition(&n) {
            components.insert(n, d.clone());
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::rest::router::KUBE_GIT_VERSION},
        "paths": paths,
        "components": {"schemas": components},
    }))
}

struct Served {
    /// `api/v1` → (hash, serialized document).
    docs: BTreeMap<String, (String, Vec<u8>)>,
}

fn served() -> &'static Served {
    static S: OnceLock<Served> = OnceLock::new();
    S.get_or_init(|| {
        let mut docs = BTreeMap::new();
        for (g, v) in registry::group_versions() {
            if let Some(doc) = document(g, v) {
                let bytes = serde_json::to_vec(&doc).unwrap_or_default();
                docs.insert(gv_path(g, v), (etag(&bytes), bytes));
            }
        }
        Served { docs }
    })
}

/// A served document's hash (the v3 index's `hash=`, the unquoted `ETag`): 16 hex digits.
pub(crate) fn etag(bytes: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016X}", h.finish())
}

/// The `/openapi/v3` index: every group version's path and its `serverRelativeURL`, the
/// custom group versions `custom` serves among them.
pub fn index(custom: &crate::crd::Catalog) -> Value {
    index_with(custom, &BTreeMap::new())
}

/// [`index`] with the documents of aggregated API servers too.
fn index_with(
    custom: &crate::crd::Catalog,
    aggregated: &BTreeMap<String, (String, Vec<u8>)>,
) -> Value {
    let paths: Map<String, Value> = served()
        .docs
        .iter()
        .chain(custom.openapi.0.iter())
        .chain(aggregated.iter())
        .map(|(p, (hash, _))| {
            (
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
            )
        })
        .collect();
    json!({"paths": paths})
}

fn serve_doc(
    path: &str,
    custom: &crate::crd::Catalog,
    aggregated: &BTreeMap<String, (String, Vec<u8>)>,
) -> Response {
    let path = path.trim_matches('/');
    match served()
        .docs
        .get(path)
        .or_else(|| custom.openapi.0.get(path))
        .or_else(|| aggregated.get(path))
    {
        Some((hash, bytes)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (header::ETAG, format!("\"{hash}\"")),
            ],
            bytes.clone(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json".to_string())],
            serde_json::to_vec(
                &orch_types::ApiError::new(
                    404,
                    "NotFound",
                    format!("the server could not find the requested resource (openapi/v3/{path})"),
                )
                .to_json(),
            )
            .unwrap_or_default(),
        )
            .into_response(),
    }
}

/// Routes: `/openapi/v2`, `/openapi/v3` and `/openapi/v3/{*gv}` (custom group versions from
/// the server's CRDs).
pub fn routes() -> Router<Arc<ApiServer>> {
    let index_route = |State(api): State<Arc<ApiServer>>| async move {
        axum::Json(index_with(
            &api.custom_catalog(),
            &api.aggregator.current().openapi(),
        ))
    };
    Router::new()
        .route("/openapi/v2", get(v2::serve))
        .route("/openapi/v3", get(index_route))
        .route("/openapi/v3/", get(index_route))
        .route(
            "/openapi/v3/{*gv}",
            get(
                |State(api): State<Arc<ApiServer>>, Path(gv): Path<String>| async move {
                    serve_doc(
                        &gv,
                        &api.custom_catalog(),
                        &api.aggregator.current().openapi(),
                    )
                },
            ),
        )
}

#[cfg(test)]
mod tests;
