//! OpenAPI v2 (Swagger 2.0): `GET /openapi/v2`, one document for the whole API, as JSON or as
//! gnostic's protobuf `Document` (our own prost messages, `openapi::gnostic`).
//!
//! Who reads it: client-go's `discovery.OpenAPISchema()` (protobuf), hence kubectl's client-side
//! validation (`kubectl create -f` of a `kind: List` file in every bundled version, any
//! `create`/`apply -f` in kubectl 1.27 and 1.28), `kubectl explain` before 1.29 and
//! `kubectl explain --output=plaintext-openapiv2`.
//!
//! The document is converted from the v3 documents ([`super::document`], one per group
//! version), so both come from the same schemas; nothing here knows a Kubernetes type. What v2
//! spells differently:
//! - references: `#/components/schemas/X` becomes `#/definitions/X`; v3's reference with
//!   siblings, `{"allOf": [{"$ref": …}], "description": …}`, becomes a plain `$ref` beside its
//!   siblings, as upstream's v2 document has it (kubectl's v2 reader,
//!   `k8s.io/kube-openapi/pkg/util/proto/document.go`, follows the `$ref` and keeps the
//!   description and extensions);
//! - keywords v2 lacks (`oneOf`, `anyOf`, `not`, `nullable`) are dropped: the
//!   `JSONSchemaPropsOr*` definitions keep their description only, as upstream's v2 does;
//! - `x-kubernetes-int-or-string` without a `type` gets upstream v2's form of an int-or-string,
//!   `type: string, format: int-or-string`;
//! - parameters carry their schema's `type` themselves; a `requestBody` becomes the `body`
//!   parameter plus `consumes`; response `content` becomes `schema` plus `produces`.
//!
//! Serving follows kube-apiserver's handler (kube-openapi `pkg/handler/handler.go`): the Accept
//! header is negotiated clause by clause (highest `q` first, specific before wildcard): JSON for
//! `application/json`, `*/*` or no Accept, protobuf for
//! `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and its dotted form
//! `…spec.v2.v1.0+protobuf` (answered with the dotted content type, as upstream), 406 for
//! anything else. Both forms share one `ETag` (of the JSON) with `Vary: Accept`, and a matching
//! `If-None-Match` gets 304. Unlike upstream, clauses with `q=0` are not acceptable, and there is
//! no gzip: the router compresses nothing, and Go clients take the identity encoding.
//! Both bodies are built once, on first request.
//!
//! ```
//! let doc = orch_apiserver::openapi::v2::document();
//! assert_eq!(doc["swagger"], "2.0");
//! let d = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
//! assert_eq!(d["properties"]["spec"]["$ref"], "#/definitions/io.k8s.api.apps.v1.DeploymentSpec");
//! ```

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use orch_types::registry;
use prost::Message;
use serde_json::{json, Map, Value};

use super::gnostic;
use crate::schema::REF_PREFIX;

/// Prefix of a `$ref` to a definition in an OpenAPI v2 document.
pub const DEFINITIONS_PREFIX: &str = "#/definitions/";

/// The protobuf media type client-go sends in `Accept` (upstream's `subTypeProtobufDeprecated`).
pub const PROTOBUF_ACCEPT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The protobuf content type kube-apiserver answers with, for either protobuf Accept.
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Keywords of a Swagger 2.0 Schema Object (besides `x-` extensions).
const SCHEMA_KEYWORDS: &[&str] = &[
    "$ref",
    "format",
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "additionalProperties",
    "type",
    "items",
    "allOf",
    "properties",
    "discriminator",
    "readOnly",
    "example",
];

/// Keywords a v3 parameter's `schema` contributes to a v2 non-body parameter.
const PARAMETER_SCHEMA_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "items",
    "collectionFormat",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

/// The whole API's OpenAPI v2 document (built from every served group version's v3 document).
pub fn document() -> Value {
    let mut info = None;
    let mut paths = BTreeMap::new();
    let mut definitions = BTreeMap::new();
    for (g, v) in registry::group_versions() {
        let Some(doc) = super::document(g, v) else {
            continue;
        };
        info.get_or_insert_with(|| doc["info"].clone());
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            paths.insert(path.clone(), path_item(item));
        }
        for (name, def) in doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            definitions
                .entry(name.clone())
                .or_insert_with(|| schema(def));
        }
    }
    json!({
        "swagger": "2.0",
        "info": info.unwrap_or_default(),
        "paths": paths,
        "definitions": definitions,
    })
}

fn definition_ref(r: &Value) -> Value {
    match r.as_str().and_then(|s| s.strip_prefix(REF_PREFIX)) {
        Some(name) => Value::String(format!("{DEFINITIONS_PREFIX}{name}")),
        None => r.clone(),
    }
}

/// A v3 schema in v2 form (see the module doc).
fn schema(v: &Value) -> Value {
    let Some(m) = v.as_object() else {
        return v.clone();
    };
    // v3's reference with siblings: a one-element allOf holding only the `$ref`.
    let lone_ref = match m.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
        Some([Value::Object(one)]) if one.len() == 1 => one.get("$ref"),
        _ => None,
    };
    let mut out = Map::new();
    for (k, val) in m {
        let converted = match k.as_str() {
            "$ref" => definition_ref(val),
            "allOf" => match lone_ref {
                Some(r) => {
                    out.insert("$ref".into(), definition_ref(r));
                    continue;
                }
                None => Value::Array(val.as_array().into_iter().flatten().map(schema).collect()),
            },
            "properties" => Value::Object(
                val.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(p, s)| (p.clone(), schema(s)))
                    .collect(),
            ),
            "items" => match val {
                Value::Array(a) => Value::Array(a.iter().map(schema).collect()),
                s => schema(s),
            },
            "additionalProperties" => schema(val),
            k if k.starts_with("x-") || SCHEMA_KEYWORDS.contains(&k) => val.clone(),
            _ => continue,
        };
        out.insert(k.clone(), converted);
    }
    if m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) && !m.contains_key("type") {
        out.insert("type".into(), "string".into());
        out.insert("format".into(), "int-or-string".into());
    }
    Value::Object(out)
}

fn path_item(v: &Value) -> Value {
    let mut out = Map::new();
    for (k, val) in v.as_object().into_iter().flatten() {
        let converted = match k.as_str() {
            m if METHODS.contains(&m) => operation(val),
            "parameters" if val.as_array().is_some_and(|a| !a.is_empty()) => parameters(val),
            k if k.starts_with("x-") => val.clone(),
            // empty parameters, summary, description, servers, trace: no v2 form
            _ => continue,
        };
        out.insert(k.clone(), converted);
    }
    Value::Object(out)
}

/// A v3 `content` map: the schema (the same for every media type in orch's documents) and the
/// media types.
fn content(v: Option<&Value>) -> (Option<Value>, Vec<String>) {
    let Some(c) = v.and_then(Value::as_object) else {
        return (None, Vec::new());
    };
    let schema = c.values().find_map(|m| m.get("schema")).map(schema);
    (schema, c.keys().cloned().collect())
}

fn operation(v: &Value) -> Value {
    let Some(m) = v.as_object() else {
        return v.clone();
    };
    let mut params = m.get("parameters").map(parameters).unwrap_or(json!([]));
    let mut consumes = Vec::new();
    if let Some(body) = m.get("requestBody") {
        let (schema, types) = content(body.get("content"));
        consumes = types;
        let mut p = json!({"name": "body", "in": "body", "required": body.get("required").cloned().unwrap_or(false.into())});
        if let Some(d) = body.get("description") {
            p["description"] = d.clone();
        }
        if let Some(s) = schema {
            p["schema"] = s;
        }
        if let Some(a) = params.as_array_mut() {
            a.insert(0, p);
        }
    }
    let mut produces: Vec<String> = Vec::new();
    let mut responses = Map::new();
    for (code, r) in m
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if code.starts_with("x-") {
            responses.insert(code.clone(), r.clone());
            continue;
        }
        let (schema, types) = content(r.get("content"));
        for t in types {
            if !produces.contains(&t) {
                produces.push(t);
            }
        }
        let mut out = json!({"description": r.get("description").cloned().unwrap_or_default()});
        if let Some(s) = schema {
            out["schema"] = s;
        }
        responses.insert(code.clone(), out);
    }
    let mut out = Map::new();
    for (k, val) in m {
        match k.as_str() {
            "tags" | "summary" | "description" | "operationId" | "deprecated" => {
                out.insert(k.clone(), val.clone());
            }
            "parameters" | "requestBody" | "responses" => {}
            k if k.starts_with("x-") => {
                out.insert(k.to_string(), val.clone());
            }
            // callbacks, servers, security: not produced
            _ => {}
        }
    }
    if !consumes.is_empty() {
        out.insert("consumes".into(), json!(consumes));
    }
    if !produces.is_empty() {
        out.insert("produces".into(), json!(produces));
    }
    if params.as_array().is_some_and(|a| !a.is_empty()) {
        out.insert("parameters".into(), params);
    }
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

fn parameters(v: &Value) -> Value {
    Value::Array(v.as_array().into_iter().flatten().map(parameter).collect())
}

/// A v3 (non-body) parameter in v2 form: its schema's keywords move onto it.
fn parameter(v: &Value) -> Value {
    let Some(m) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, val) in m {
        match k.as_str() {
            "schema" => {
                for (sk, sv) in schema(val).as_object().into_iter().flatten() {
                    if PARAMETER_SCHEMA_KEYWORDS.contains(&sk.as_str()) {
                        out.insert(sk.clone(), sv.clone());
                    }
                }
            }
            "name" | "in" | "description" | "required" | "allowEmptyValue" => {
                out.insert(k.clone(), val.clone());
            }
            k if k.starts_with("x-") => {
                out.insert(k.to_string(), val.clone());
            }
            // style, explode, deprecated, example(s), content: no v2 form
            _ => {}
        }
    }
    Value::Object(out)
}

/// The served bodies, built once.
struct Served {
    json: Bytes,
    protobuf: Bytes,
    /// Quoted, shared by both bodies (upstream reuses the JSON's, with `Vary: Accept`).
    etag: String,
}

fn served() -> &'static Served {
    static S: OnceLock<Served> = OnceLock::new();
    S.get_or_init(|| {
        let start = Instant::now();
        let doc = document();
        let json = serde_json::to_vec(&doc).unwrap_or_default();
        let protobuf = gnostic::Document::from_json(&doc).encode_to_vec();
        tracing::debug!(
            json_bytes = json.len(),
            protobuf_bytes = protobuf.len(),
            elapsed_ms = start.elapsed().as_millis() as u64,
            "built /openapi/v2"
        );
        Served {
            etag: format!("\"{}\"", super::etag(&json)),
            json: json.into(),
            protobuf: protobuf.into(),
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Protobuf,
}

/// What we offer, in upstream's order: `*/*` and `application/*` pick JSON.
const OFFERS: &[(&str, Format)] = &[
    ("json", Format::Json),
    (
        "com.github.proto-openapi.spec.v2@v1.0+protobuf",
        Format::Protobuf,
    ),
    (
        "com.github.proto-openapi.spec.v2.v1.0+protobuf",
        Format::Protobuf,
    ),
];

/// The format for an Accept header (all its values), or `None` (406).
fn negotiate(headers: &HeaderMap) -> Option<Format> {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let accept = if accept.trim().is_empty() {
        "*/*"
    } else {
        accept.as_str()
    };
    let mut clauses: Vec<(f32, &str, &str)> = accept
        .split(',')
        .filter_map(|clause| {
            let mut parts = clause.split(';');
            let range = parts.next()?.trim();
            let (ty, sub) = match range.split_once('/') {
                Some((t, s)) => (t.trim(), s.trim()),
                None if range == "*" => ("*", "*"),
                None => return None,
            };
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim() == "q")
                .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
            (q > 0.0).then_some((q, ty, sub))
        })
        .collect();
    // Highest q first; at equal q a specific type or subtype before a wildcard (goautoneg).
    clauses.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then((a.1 == "*").cmp(&(b.1 == "*")))
            .then((a.2 == "*").cmp(&(b.2 == "*")))
    });
    clauses.iter().find_map(|(_, ty, sub)| {
        if *ty != "*" && !ty.eq_ignore_ascii_case("application") {
            return None;
        }
        OFFERS
            .iter()
            .find(|(offer, _)| *sub == "*" || sub.eq_ignore_ascii_case(offer))
            .map(|(_, f)| *f)
    })
}

/// Whether `If-None-Match` names `etag` (quoted) or `*`; weak validators compare equal, as Go's
/// `http.ServeContent` does for this header.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// `GET /openapi/v2`.
pub(super) async fn serve(headers: HeaderMap) -> Response {
    let vary = (header::VARY, HeaderValue::from_static("Accept"));
    let Some(format) = negotiate(&headers) else {
        return (StatusCode::NOT_ACCEPTABLE, [vary]).into_response();
    };
    let s = served();
    let etag = (
        header::ETAG,
        HeaderValue::from_str(&s.etag).unwrap_or(HeaderValue::from_static("\"\"")),
    );
    if not_modified(&headers, &s.etag) {
        return (StatusCode::NOT_MODIFIED, [vary, etag]).into_response();
    }
    let (content_type, body) = match format {
        Format::Json => ("application/json", &s.json),
        Format::Protobuf => (PROTOBUF_CONTENT_TYPE, &s.protobuf),
    };
    (
        StatusCode::OK,
        [
            vary,
            etag,
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        ],
        body.clone(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
