use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use tower::ServiceExt;

use super::gnostic::*;
use super::*;

fn encoded() -> (Value, Document) {
    let doc = document();
    let bytes = Document::from_json(&doc).encode_to_vec();
    let decoded = Document::decode(bytes.as_slice()).expect("decodes");
    (doc, decoded)
}

fn named<'a>(d: &'a Document, name: &str) -> &'a Schema {
    d.definitions
        .as_ref()
        .expect("definitions")
        .additional_properties
        .iter()
        .find(|n| n.name == name)
        .and_then(|n| n.value.as_ref())
        .unwrap_or_else(|| panic!("{name} missing"))
}

fn prop<'a>(s: &'a Schema, name: &str) -> &'a Schema {
    s.properties
        .as_ref()
        .expect("properties")
        .additional_properties
        .iter()
        .find(|n| n.name == name)
        .and_then(|n| n.value.as_ref())
        .unwrap_or_else(|| panic!("property {name} missing"))
}

/// An extension as kubectl reads it: the YAML text decoded.
fn ext(e: &[NamedAny], name: &str) -> Value {
    let a = e
        .iter()
        .find(|n| n.name == name)
        .and_then(|n| n.value.as_ref())
        .unwrap_or_else(|| panic!("{name} missing"));
    serde_yaml_ng::from_str(&a.yaml).expect("yaml")
}

/// The inline parameter of an item (not a reference).
fn inline(p: &ParametersItem) -> Option<&ParameterOneof> {
    match &p.oneof {
        Some(ParametersItemOneof::Parameter(p)) => p.oneof.as_ref(),
        _ => None,
    }
}

fn non_body(p: &ParametersItem) -> Option<&NonBodyParameterOneof> {
    match inline(p) {
        Some(ParameterOneof::NonBodyParameter(n)) => n.oneof.as_ref(),
        _ => None,
    }
}

fn body(p: &ParametersItem) -> Option<&BodyParameter> {
    match inline(p) {
        Some(ParameterOneof::BodyParameter(b)) => Some(b),
        _ => None,
    }
}

#[test]
fn protobuf_round_trip_keeps_what_kubectl_reads() {
    let (doc, d) = encoded();
    assert_eq!(d.swagger, "2.0");
    let info = d.info.as_ref().expect("info");
    assert_eq!(
        (info.title.as_str(), info.version.as_str()),
        ("Kubernetes", crate::rest::router::KUBE_GIT_VERSION)
    );
    let defs = &d
        .definitions
        .as_ref()
        .expect("definitions")
        .additional_properties;
    assert_eq!(
        defs.len(),
        doc["definitions"].as_object().expect("map").len()
    );

    // A root: its GVK, a reference, required fields, descriptions.
    let deploy = named(&d, "io.k8s.api.apps.v1.Deployment");
    assert_eq!(
        ext(&deploy.vendor_extension, "x-kubernetes-group-version-kind"),
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    let spec = prop(deploy, "spec");
    assert_eq!(spec.xref, "#/definitions/io.k8s.api.apps.v1.DeploymentSpec");
    assert!(spec.r#type.is_none() && spec.properties.is_none());
    assert!(spec
        .description
        .starts_with("Specification of the desired behavior"));
    assert!(deploy.required.contains(&"metadata".to_string()));

    // Scalars, patch strategy beside a reference, lists with a merge key, maps.
    let dspec = named(&d, "io.k8s.api.apps.v1.DeploymentSpec");
    let replicas = prop(dspec, "replicas");
    assert_eq!(replicas.r#type.as_ref().expect("type").value, ["integer"]);
    assert_eq!(replicas.format, "int32");
    let strategy = prop(dspec, "strategy");
    assert_eq!(
        strategy.xref,
        "#/definitions/io.k8s.api.apps.v1.DeploymentStrategy"
    );
    assert_eq!(
        ext(&strategy.vendor_extension, "x-kubernetes-patch-strategy"),
        "retainKeys"
    );
    let containers = prop(named(&d, "io.k8s.api.core.v1.PodSpec"), "containers");
    assert_eq!(containers.r#type.as_ref().expect("type").value, ["array"]);
    let items = &containers.items.as_ref().expect("items").schema;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].xref, "#/definitions/io.k8s.api.core.v1.Container");
    assert_eq!(
        ext(&containers.vendor_extension, "x-kubernetes-patch-merge-key"),
        "name"
    );
    assert_eq!(
        ext(&containers.vendor_extension, "x-kubernetes-patch-strategy"),
        "merge"
    );
    let labels = prop(
        named(&d, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
        "labels",
    );
    match labels
        .additional_properties
        .as_deref()
        .and_then(|a| a.oneof.as_ref())
    {
        Some(AdditionalPropertiesOneof::Schema(s)) => {
            assert_eq!(s.r#type.as_ref().expect("type").value, ["string"])
        }
        other => panic!("labels: {other:?}"),
    }
    let int_or_string = named(&d, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    assert_eq!(
        int_or_string.r#type.as_ref().expect("type").value,
        ["string"]
    );
    assert_eq!(int_or_string.format, "int-or-string");

    // A path: its operations, their extensions and parameters by kind.
    let paths = &d.paths.as_ref().expect("paths").path;
    let item = paths
        .iter()
        .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        .and_then(|p| p.value.as_ref())
        .expect("deployment item path");
    let patch = item.patch.as_ref().expect("patch");
    assert_eq!(patch.operation_id, "patchAppsV1NamespacedDeployment");
    assert_eq!(ext(&patch.vendor_extension, "x-kubernetes-action"), "patch");
    assert_eq!(
        ext(&patch.vendor_extension, "x-kubernetes-group-version-kind"),
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    assert!(patch
        .consumes
        .iter()
        .any(|c| c == "application/strategic-merge-patch+json"));
    let query: Vec<&str> = patch
        .parameters
        .iter()
        .filter_map(|p| match non_body(p) {
            Some(NonBodyParameterOneof::Query(q)) => Some(q.name.as_str()),
            _ => None,
        })
        .collect();
    assert!(query.contains(&"fieldValidation"), "{query:?}");
    let patch_body = patch.parameters.iter().find_map(body);
    assert_eq!(
        patch_body
            .and_then(|b| b.schema.as_ref())
            .map(|s| s.xref.as_str()),
        Some("#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch")
    );
    let path_params: Vec<&str> = item
        .parameters
        .iter()
        .filter_map(|p| match non_body(p) {
            Some(NonBodyParameterOneof::Path(q)) if q.required => Some(q.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(path_params, ["name", "namespace"]);
    let ok = patch
        .responses
        .as_ref()
        .and_then(|r| r.response_code.iter().find(|c| c.name == "200"))
        .and_then(|c| c.value.as_ref());
    let ok_schema = match ok.and_then(|v| v.oneof.as_ref()) {
        Some(ResponseValueOneof::Response(r)) => {
            match r.schema.as_ref().and_then(|s| s.oneof.as_ref()) {
                Some(SchemaItemOneof::Schema(s)) => s,
                None => panic!("200 without schema"),
            }
        }
        other => panic!("200: {other:?}"),
    };
    assert_eq!(
        ok_schema.xref,
        "#/definitions/io.k8s.api.apps.v1.Deployment"
    );

    // And nothing else is lost: the decoded message reads back as the JSON document.
    assert_eq!(first_difference(&to_json(&d), &doc, ""), None);
}

/// Where two JSON values first differ (object key order aside).
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, &format!("{at}/{k}")),
                (p, q) => Some(format!("{at}/{k}: {p:?} != {q:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{at}/{i}"))),
        _ => (a != b).then(|| format!("{at}: {a} != {b}")),
    }
}

/// kubectl's reading of a v2 schema (`k8s.io/kube-openapi/pkg/util/proto/document.go`
/// `ParseSchema`) rejects the whole document on the first schema it cannot parse; these are
/// its rules.
fn kubectl_parses(s: &Schema, names: &BTreeSet<&str>, path: &str) {
    let types: Vec<&str> = s
        .r#type
        .iter()
        .flat_map(|t| &t.value)
        .map(String::as_str)
        .collect();
    if !s.xref.is_empty() {
        let target = s.xref.strip_prefix(DEFINITIONS_PREFIX);
        assert!(
            target.is_some_and(|t| names.contains(t)),
            "{path}: dangling {}",
            s.xref
        );
        assert!(
            s.properties.is_none() && types.is_empty(),
            "{path}: $ref with a type"
        );
        return;
    }
    let props = s.properties.iter().flat_map(|p| &p.additional_properties);
    match types.as_slice() {
        [] | ["object"] => {
            for p in props {
                kubectl_parses(
                    p.value.as_ref().expect("value"),
                    names,
                    &format!("{path}.{}", p.name),
                );
            }
            if let Some(AdditionalPropertiesOneof::Schema(a)) = s
                .additional_properties
                .as_deref()
                .and_then(|a| a.oneof.as_ref())
            {
                kubectl_parses(a, names, &format!("{path}{{}}"));
            }
        }
        ["array"] => {
            let items = s
                .items
                .as_ref()
                .map(|i| i.schema.as_slice())
                .unwrap_or_default();
            assert_eq!(
                items.len(),
                1,
                "{path}: array needs exactly one items schema"
            );
            kubectl_parses(&items[0], names, &format!("{path}[]"));
        }
        [t] => assert!(
            ["string", "number", "integer", "boolean"].contains(t),
            "{path}: unknown primitive {t}"
        ),
        _ => panic!("{path}: several types {types:?}"),
    }
}

#[test]
fn kubectl_can_parse_every_definition_and_operation_schema() {
    let (_, d) = encoded();
    let defs = &d
        .definitions
        .as_ref()
        .expect("definitions")
        .additional_properties;
    let names: BTreeSet<&str> = defs.iter().map(|n| n.name.as_str()).collect();
    for n in defs {
        kubectl_parses(n.value.as_ref().expect("schema"), &names, &n.name);
    }
    for p in &d.paths.as_ref().expect("paths").path {
        let item = p.value.as_ref().expect("item");
        let ops = [&item.get, &item.put, &item.post, &item.delete, &item.patch];
        for op in ops.into_iter().flatten() {
            for b in op.parameters.iter().filter_map(body) {
                kubectl_parses(b.schema.as_ref().expect("body schema"), &names, &p.name);
            }
        }
    }
}

#[test]
fn every_v3_path_and_definition_is_in_v2_with_the_same_operations() {
    let v2 = document();
    let mut components = BTreeSet::new();
    for (g, v) in registry::group_versions() {
        let v3 = super::super::document(g, v).expect("served");
        components.extend(
            v3["components"]["schemas"]
                .as_object()
                .expect("schemas")
                .keys()
                .cloned(),
        );
        for (path, item) in v3["paths"].as_object().expect("paths") {
            let item2 = &v2["paths"][path];
            for m in METHODS {
                let Some(op) = item.get(*m) else {
                    assert!(item2.get(*m).is_none(), "{path} {m}");
                    continue;
                };
                let op2 = &item2[*m];
                for k in [
                    "operationId",
                    "x-kubernetes-action",
                    "x-kubernetes-group-version-kind",
                ] {
                    assert_eq!(op[k], op2[k], "{path} {m} {k}");
                }
                let names = |ps: &Value| -> BTreeSet<String> {
                    ps.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p["name"].as_str().map(str::to_string))
                        .collect()
                };
                let mut expect = names(&op["parameters"]);
                if op.get("requestBody").is_some() {
                    expect.insert("body".into());
                }
                assert_eq!(names(&op2["parameters"]), expect, "{path} {m}");
            }
            assert_eq!(
                names_of(&item["parameters"]),
                names_of(&item2["parameters"]),
                "{path}"
            );
        }
    }
    let definitions: BTreeSet<String> = v2["definitions"]
        .as_object()
        .expect("definitions")
        .keys()
        .cloned()
        .collect();
    assert_eq!(definitions, components);
}

fn names_of(ps: &Value) -> Vec<String> {
    ps.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn accept_negotiation_follows_kube_apiserver() {
    let accept = |a: &str| {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(a).expect("header"));
        negotiate(&h)
    };
    assert_eq!(negotiate(&HeaderMap::new()), Some(Format::Json));
    assert_eq!(accept("application/json"), Some(Format::Json));
    assert_eq!(accept("*/*"), Some(Format::Json));
    assert_eq!(accept("application/*"), Some(Format::Json));
    assert_eq!(accept(PROTOBUF_ACCEPT), Some(Format::Protobuf));
    assert_eq!(accept(PROTOBUF_CONTENT_TYPE), Some(Format::Protobuf));
    assert_eq!(
        accept(
            "application/json;q=0.5, application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        ),
        Some(Format::Protobuf)
    );
    assert_eq!(
        accept("*/*, application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
        Some(Format::Protobuf)
    );
    assert_eq!(
        accept("text/html, application/json;q=0.1"),
        Some(Format::Json)
    );
    assert_eq!(accept("text/html"), None);
    assert_eq!(accept("application/yaml"), None);
    assert_eq!(accept("application/json;q=0"), None);
}

async fn get(app: &Router, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Bytes) {
    let mut req = Request::get("/openapi/v2");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.expect("body");
    (parts.status, parts.headers, body)
}

#[tokio::test]
async fn route_serves_json_protobuf_and_not_modified() {
    let api = crate::ApiServer::new(crate::ApiServerConfig::memory()).expect("server");
    let app: Router = super::super::routes().with_state(api);
    let (status, h, body) = get(&app, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/json");
    assert_eq!(h[header::VARY], "Accept");
    let etag = h[header::ETAG].to_str().expect("etag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let json: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["swagger"], "2.0");

    let (status, h, body) = get(&app, &[("accept", PROTOBUF_ACCEPT)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], PROTOBUF_CONTENT_TYPE);
    assert_eq!(h[header::ETAG].to_str().ok(), Some(etag.as_str()));
    let doc = Document::decode(body.as_ref()).expect("protobuf");
    assert_eq!(doc.swagger, "2.0");

    let (status, _, _) = get(&app, &[("accept", "text/html")]).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);

    for validator in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let (status, h, body) = get(&app, &[("if-none-match", &validator)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{validator}");
        assert_eq!(h[header::ETAG].to_str().ok(), Some(etag.as_str()));
        assert!(body.is_empty());
    }
    let (status, _, _) = get(&app, &[("if-none-match", "\"stale\"")]).await;
    assert_eq!(status, StatusCode::OK);
}

// --- The decoded message back to JSON (the inverse of `Document::from_json`), to show that the
// protobuf form loses nothing.

fn put(out: &mut Map<String, Value>, k: &str, v: Value) {
    let empty = match &v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        Value::Object(_) => false,
    };
    if !empty {
        out.insert(k.into(), v);
    }
}

fn any_json(a: &Any) -> Value {
    serde_yaml_ng::from_str(&a.yaml).expect("yaml")
}

fn num(f: f64) -> Value {
    if f.fract() == 0.0 {
        json!(f as i64)
    } else {
        json!(f)
    }
}

fn exts(out: &mut Map<String, Value>, e: &[NamedAny]) {
    for n in e {
        out.insert(
            n.name.clone(),
            n.value.as_ref().map(any_json).unwrap_or_default(),
        );
    }
}

fn schema_json(s: &Schema) -> Value {
    let mut o = Map::new();
    put(&mut o, "$ref", s.xref.clone().into());
    put(&mut o, "format", s.format.clone().into());
    put(&mut o, "title", s.title.clone().into());
    put(&mut o, "description", s.description.clone().into());
    put(
        &mut o,
        "default",
        s.default.as_ref().map(any_json).unwrap_or_default(),
    );
    put(&mut o, "multipleOf", num(s.multiple_of));
    put(&mut o, "maximum", num(s.maximum));
    put(&mut o, "exclusiveMaximum", s.exclusive_maximum.into());
    put(&mut o, "minimum", num(s.minimum));
    put(&mut o, "exclusiveMinimum", s.exclusive_minimum.into());
    put(&mut o, "maxLength", s.max_length.into());
    put(&mut o, "minLength", s.min_length.into());
    put(&mut o, "pattern", s.pattern.clone().into());
    put(&mut o, "maxItems", s.max_items.into());
    put(&mut o, "minItems", s.min_items.into());
    put(&mut o, "uniqueItems", s.unique_items.into());
    put(&mut o, "maxProperties", s.max_properties.into());
    put(&mut o, "minProperties", s.min_properties.into());
    put(&mut o, "required", json!(s.required));
    put(&mut o, "enum", s.r#enum.iter().map(any_json).collect());
    if let Some(a) = s
        .additional_properties
        .as_deref()
        .and_then(|a| a.oneof.as_ref())
    {
        let v = match a {
            AdditionalPropertiesOneof::Schema(s) => schema_json(s),
            AdditionalPropertiesOneof::Boolean(b) => (*b).into(),
        };
        o.insert("additionalProperties".into(), v);
    }
    if let Some(t) = &s.r#type {
        let v = match t.value.as_slice() {
            [one] => one.clone().into(),
            many => json!(many),
        };
        o.insert("type".into(), v);
    }
    if let Some(i) = &s.items {
        let v = match i.schema.as_slice() {
            [one] => schema_json(one),
            many => many.iter().map(schema_json).collect(),
        };
        o.insert("items".into(), v);
    }
    put(&mut o, "allOf", s.all_of.iter().map(schema_json).collect());
    if let Some(p) = &s.properties {
        o.insert("properties".into(), named_json(&p.additional_properties));
    }
    put(&mut o, "discriminator", s.discriminator.clone().into());
    put(&mut o, "readOnly", s.read_only.into());
    put(
        &mut o,
        "example",
        s.example.as_ref().map(any_json).unwrap_or_default(),
    );
    exts(&mut o, &s.vendor_extension);
    Value::Object(o)
}

fn named_json(n: &[NamedSchema]) -> Value {
    Value::Object(
        n.iter()
            .map(|n| {
                (
                    n.name.clone(),
                    n.value.as_ref().map(schema_json).unwrap_or_default(),
                )
            })
            .collect(),
    )
}

fn query_json(q: &QueryParameterSubSchema) -> Value {
    let mut o = Map::new();
    put(&mut o, "required", q.required.into());
    put(&mut o, "in", q.r#in.clone().into());
    put(&mut o, "description", q.description.clone().into());
    put(&mut o, "name", q.name.clone().into());
    put(&mut o, "allowEmptyValue", q.allow_empty_value.into());
    put(&mut o, "type", q.r#type.clone().into());
    put(&mut o, "format", q.format.clone().into());
    put(&mut o, "uniqueItems", q.unique_items.into());
    put(&mut o, "enum", q.r#enum.iter().map(any_json).collect());
    put(
        &mut o,
        "default",
        q.default.as_ref().map(any_json).unwrap_or_default(),
    );
    exts(&mut o, &q.vendor_extension);
    Value::Object(o)
}

fn path_param_json(q: &PathParameterSubSchema) -> Value {
    let mut o = Map::new();
    put(&mut o, "required", q.required.into());
    put(&mut o, "in", q.r#in.clone().into());
    put(&mut o, "description", q.description.clone().into());
    put(&mut o, "name", q.name.clone().into());
    put(&mut o, "type", q.r#type.clone().into());
    put(&mut o, "format", q.format.clone().into());
    put(&mut o, "uniqueItems", q.unique_items.into());
    put(&mut o, "enum", q.r#enum.iter().map(any_json).collect());
    put(
        &mut o,
        "default",
        q.default.as_ref().map(any_json).unwrap_or_default(),
    );
    exts(&mut o, &q.vendor_extension);
    Value::Object(o)
}

fn param_json(p: &ParametersItem) -> Value {
    match p.oneof.as_ref().expect("parameter") {
        ParametersItemOneof::JsonReference(r) => json!({"$ref": r.xref}),
        ParametersItemOneof::Parameter(p) => match p.oneof.as_ref().expect("parameter") {
            ParameterOneof::BodyParameter(b) => {
                let mut o = Map::new();
                put(&mut o, "description", b.description.clone().into());
                put(&mut o, "name", b.name.clone().into());
                put(&mut o, "in", b.r#in.clone().into());
                o.insert("required".into(), b.required.into());
                put(
                    &mut o,
                    "schema",
                    b.schema.as_ref().map(schema_json).unwrap_or_default(),
                );
                exts(&mut o, &b.vendor_extension);
                Value::Object(o)
            }
            ParameterOneof::NonBodyParameter(n) => match n.oneof.as_ref().expect("non-body") {
                NonBodyParameterOneof::Query(q) | NonBodyParameterOneof::FormData(q) => {
                    query_json(q)
                }
                NonBodyParameterOneof::Path(q) | NonBodyParameterOneof::Header(q) => {
                    path_param_json(q)
                }
            },
        },
    }
}

fn op_json(op: &Operation) -> Value {
    let mut o = Map::new();
    put(&mut o, "tags", json!(op.tags));
    put(&mut o, "summary", op.summary.clone().into());
    put(&mut o, "description", op.description.clone().into());
    put(&mut o, "operationId", op.operation_id.clone().into());
    put(&mut o, "produces", json!(op.produces));
    put(&mut o, "consumes", json!(op.consumes));
    put(
        &mut o,
        "parameters",
        op.parameters.iter().map(param_json).collect(),
    );
    if let Some(r) = &op.responses {
        let mut codes = Map::new();
        for c in &r.response_code {
            let v = match c.value.as_ref().and_then(|v| v.oneof.as_ref()) {
                Some(ResponseValueOneof::Response(r)) => {
                    let mut o = Map::new();
                    o.insert("description".into(), r.description.clone().into());
                    if let Some(SchemaItemOneof::Schema(s)) =
                        r.schema.as_ref().and_then(|s| s.oneof.as_ref())
                    {
                        o.insert("schema".into(), schema_json(s));
                    }
                    exts(&mut o, &r.vendor_extension);
                    Value::Object(o)
                }
                Some(ResponseValueOneof::JsonReference(j)) => json!({"$ref": j.xref}),
                None => Value::Null,
            };
            codes.insert(c.name.clone(), v);
        }
        exts(&mut codes, &r.vendor_extension);
        o.insert("responses".into(), Value::Object(codes));
    }
    put(&mut o, "schemes", json!(op.schemes));
    put(&mut o, "deprecated", op.deprecated.into());
    exts(&mut o, &op.vendor_extension);
    Value::Object(o)
}

fn to_json(d: &Document) -> Value {
    let mut o = Map::new();
    o.insert("swagger".into(), d.swagger.clone().into());
    if let Some(i) = &d.info {
        let mut info = Map::new();
        put(&mut info, "title", i.title.clone().into());
        put(&mut info, "version", i.version.clone().into());
        put(&mut info, "description", i.description.clone().into());
        exts(&mut info, &i.vendor_extension);
        o.insert("info".into(), Value::Object(info));
    }
    if let Some(p) = &d.paths {
        let mut paths = Map::new();
        for n in &p.path {
            let item = n.value.as_ref().expect("item");
            let mut it = Map::new();
            let ops = [
                ("get", &item.get),
                ("put", &item.put),
                ("post", &item.post),
                ("delete", &item.delete),
                ("options", &item.options),
                ("head", &item.head),
                ("patch", &item.patch),
            ];
            for (m, op) in ops {
                if let Some(op) = op {
                    it.insert(m.into(), op_json(op));
                }
            }
            put(
                &mut it,
                "parameters",
                item.parameters.iter().map(param_json).collect(),
            );
            exts(&mut it, &item.vendor_extension);
            paths.insert(n.name.clone(), Value::Object(it));
        }
        exts(&mut paths, &p.vendor_extension);
        o.insert("paths".into(), Value::Object(paths));
    }
    if let Some(defs) = &d.definitions {
        o.insert(
            "definitions".into(),
            named_json(&defs.additional_properties),
        );
    }
    exts(&mut o, &d.vendor_extension);
    Value::Object(o)
}
