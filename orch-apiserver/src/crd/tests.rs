//! Serving CRDs end to end through the router (no sockets): a CRD becomes a served resource
//! with its names, columns, selectable fields and scale; conflicting names are reported; a
//! deleted CRD takes its objects with it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use super::compare_versions;
use crate::test_router::{call, call_accept, eventually, send};
use crate::{ApiServer, ApiServerConfig};

fn shirt_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "shirts.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "shirts", "singular": "shirt", "kind": "Shirt", "shortNames": ["sh"], "categories": ["all"]},
            "versions": [
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                     "spec": {"type": "object", "properties": {
                         "color": {"type": "string"}, "size": {"type": "string"}, "replicas": {"type": "integer"}}},
                     "status": {"type": "object", "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"}}}}}},
                 "selectableFields": [{"jsonPath": ".spec.color"}],
                 "additionalPrinterColumns": [
                     {"jsonPath": ".spec.color", "name": "Color", "type": "string"},
                     {"jsonPath": ".spec.size", "name": "Size", "type": "string"}],
                 "subresources": {"status": {}, "scale": {
                     "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                     "labelSelectorPath": ".status.selector"}}}
            ]
        }
    })
}

fn shirt(name: &str, color: &str) -> Value {
    json!({"apiVersion": "stable.example.com/v1", "kind": "Shirt",
        "metadata": {"name": name}, "spec": {"color": color, "size": "M", "replicas": 1},
        "status": {"replicas": 7}})
}

async fn served(api: &Arc<ApiServer>) {
    serve(api, shirt_crd()).await;
}

/// Creates `crd` (a definition of `shirts`) on `api` and waits until it is served.
async fn serve(api: &Arc<ApiServer>, crd: Value) {
    let (code, _) = call(
        api,
        Method::POST,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        Some(crd),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    eventually("shirts served", async || {
        api.lookup("stable.example.com", "v1", "shirts").is_some()
    })
    .await;
}

#[tokio::test]
async fn a_crd_is_served_with_its_names_columns_fields_and_scale() {
    let api = ApiServer::new(ApiServerConfig::memory()).expect("server");
    served(&api).await;
    // Status: names accepted, established, the storage version recorded.
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/shirts.stable.example.com";
    eventually("status", async || {
        let (_, crd) = call(&api, Method::GET, path, None).await;
        crd["status"]["storedVersions"] == json!(["v1"])
    })
    .await;
    let (_, crd) = call(&api, Method::GET, path, None).await;
    let conds = &crd["status"]["conditions"];
    assert_eq!(conds[0]["type"], "NamesAccepted");
    assert_eq!(conds[0]["reason"], "NoConflicts");
    assert_eq!(conds[1]["type"], "Established");
    assert_eq!(conds[1]["status"], "True");
    assert_eq!(crd["status"]["acceptedNames"]["listKind"], "ShirtList");

    // Discovery: legacy and aggregated, versions by priority.
    let (code, group) = call(&api, Method::GET, "/apis/stable.example.com", None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(group["preferredVersion"]["version"], "v1");
    let (_, list) = call(&api, Method::GET, "/apis/stable.example.com/v1", None).await;
    let names: Vec<&str> = list["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["shirts", "shirts/status", "shirts/scale"]);
    assert_eq!(list["resources"][0]["shortNames"], json!(["sh"]));
    let (_, agg) = call_accept(
        &api,
        Method::GET,
        "/apis",
        None,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    )
    .await;
    let item = agg["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["metadata"]["name"] == "stable.example.com")
        .expect("custom group aggregated");
    assert_eq!(item["versions"][0]["version"], "v1");
    assert_eq!(item["versions"][1]["version"], "v1beta1");

    // Objects: status is the subresource's; generation tracks the spec.
    let coll = "/apis/stable.example.com/v1/namespaces/default/shirts";
    for (n, c) in [("a", "blue"), ("b", "green")] {
        let (code, o) = call(&api, Method::POST, coll, Some(shirt(n, c))).await;
        assert_eq!(code, StatusCode::CREATED, "{o}");
        assert_eq!(o["metadata"]["generation"], 1);
        assert!(
            o.get("status").is_none(),
            "status is dropped on create: {o}"
        );
    }
    let (code, blue) = call(
        &api,
        Method::GET,
        &format!("{coll}?fieldSelector=spec.color%3Dblue"),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(blue["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(blue["kind"], "ShirtList");
    let (code, bad) = call(
        &api,
        Method::GET,
        &format!("{coll}?fieldSelector=spec.size%3DM"),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");

    // The other served version: the same objects, converted with the None strategy.
    let (code, beta) = call(
        &api,
        Method::GET,
        "/apis/stable.example.com/v1beta1/namespaces/default/shirts/a",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(beta["apiVersion"], "stable.example.com/v1beta1");

    // Table: name and the printer columns.
    let (_, table) = call_accept(
        &api,
        Method::GET,
        coll,
        None,
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    .await;
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(cols, ["Name", "Color", "Size"]);
    assert_eq!(table["rows"][0]["cells"], json!(["a", "blue", "M"]));

    // Scale at the CRD's paths.
    let (code, scale) = call(&api, Method::GET, &format!("{coll}/a/scale"), None).await;
    assert_eq!(code, StatusCode::OK, "{scale}");
    assert_eq!(scale["spec"]["replicas"], 1);
    let mut s2 = scale.clone();
    s2["spec"]["replicas"] = json!(4);
    let (code, _) = call(&api, Method::PUT, &format!("{coll}/a/scale"), Some(s2)).await;
    assert_eq!(code, StatusCode::OK);
    let (_, a) = call(&api, Method::GET, &format!("{coll}/a"), None).await;
    assert_eq!(a["spec"]["replicas"], 4);
    assert_eq!(a["metadata"]["generation"], 2);

    // OpenAPI v3 for `kubectl explain`.
    let (code, doc) = call(
        &api,
        Method::GET,
        "/openapi/v3/apis/stable.example.com/v1",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let schema = &doc["components"]["schemas"]["com.example.stable.v1.Shirt"];
    assert_eq!(
        schema["x-kubernetes-group-version-kind"][0]["kind"],
        "Shirt"
    );
    assert_eq!(
        schema["properties"]["spec"]["properties"]["color"]["type"],
        "string"
    );
}

#[tokio::test]
async fn conflicting_names_are_reported_and_not_served() {
    let api = ApiServer::new(ApiServerConfig::memory()).expect("server");
    served(&api).await;
    let mut other = shirt_crd();
    other["metadata"]["name"] = json!("blouses.stable.example.com");
    other["spec"]["names"] = json!({"plural": "blouses", "singular": "blouse", "kind": "Shirt", "listKind": "BlouseList"});
    let (code, _) = call(
        &api,
        Method::POST,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        Some(other),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/blouses.stable.example.com";
    eventually("conflict reported", async || {
        let (_, crd) = call(&api, Method::GET, path, None).await;
        crd["status"]["conditions"][0]["reason"] == "KindConflict"
    })
    .await;
    let (_, crd) = call(&api, Method::GET, path, None).await;
    assert_eq!(crd["status"]["conditions"][0]["status"], "False");
    assert_eq!(
        crd["status"]["conditions"][0]["message"],
        "\"Shirt\" is already in use"
    );
    assert_eq!(crd["status"]["conditions"][1]["reason"], "NotAccepted");
    assert!(api.lookup("stable.example.com", "v1", "blouses").is_none());
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_objects_first() {
    let api = ApiServer::new(ApiServerConfig::memory()).expect("server");
    served(&api).await;
    let coll = "/apis/stable.example.com/v1/namespaces/default/shirts";
    for n in ["a", "b", "c"] {
        let (code, _) = call(&api, Method::POST, coll, Some(shirt(n, "red"))).await;
        assert_eq!(code, StatusCode::CREATED);
    }
    // One object has a finalizer of its own: the CRD waits for it.
    let c = api
        .custom(
            api.lookup("stable.example.com", "v1", "shirts")
                .expect("served"),
        )
        .expect("custom");
    api.guaranteed_update(
        c.info,
        Some("default"),
        "c",
        crate::rest::update::Part::Main,
        false,
        |o| {
            let mut n = o.clone();
            n.metadata.finalizers = Some(vec!["example.com/hold".into()]);
            Ok(n)
        },
    )
    .await
    .expect("finalizer added");

    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/shirts.stable.example.com";
    let (code, marked) = call(&api, Method::DELETE, path, None).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{marked}");
    assert_eq!(
        marked["metadata"]["finalizers"],
        json!([super::CLEANUP_FINALIZER])
    );
    // Creates are refused while it terminates; reads still work.
    eventually("a and b deleted", async || {
        let (_, l) = call(&api, Method::GET, coll, None).await;
        l["items"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    let (code, refused) = call(&api, Method::POST, coll, Some(shirt("d", "red"))).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{refused}");
    let (_, crd) = call(&api, Method::GET, path, None).await;
    let terminating = crd["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Terminating")
        .cloned()
        .expect("terminating condition");
    assert_eq!(terminating["reason"], "InstanceDeletionInProgress");
    // Releasing the last object lets the CRD go, and the resource with it.
    api.remove_finalizer(c.info, Some("default"), "c", "example.com/hold")
        .await
        .expect("released");
    eventually("crd gone", async || {
        call(&api, Method::GET, path, None).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    eventually("not served", async || {
        api.lookup("stable.example.com", "v1", "shirts").is_none()
    })
    .await;
    assert_eq!(
        call(&api, Method::GET, coll, None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn versions_sort_as_kubernetes_sorts_them() {
    let mut v = vec![
        "v1alpha1",
        "foo",
        "v2",
        "v1",
        "v1beta2",
        "v11alpha2",
        "v1beta1",
        "bar",
        "v12alpha1",
    ];
    v.sort_by(|a, b| compare_versions(a, b));
    assert_eq!(
        v,
        [
            "v2",
            "v1",
            "v1beta2",
            "v1beta1",
            "v12alpha1",
            "v11alpha2",
            "v1alpha1",
            "bar",
            "foo"
        ]
    );
}

#[tokio::test]
async fn custom_objects_are_pruned_defaulted_and_validated_by_their_schema() {
    let api = ApiServer::new(ApiServerConfig::memory()).expect("server");
    let mut crd = shirt_crd();
    crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["size"] = json!({"type": "string", "default": "M", "enum": ["S", "M", "L"]});
    serve(&api, crd).await;
    let coll = "/apis/stable.example.com/v1/namespaces/default/shirts";
    let body = json!({"apiVersion": "stable.example.com/v1", "kind": "Shirt",
        "metadata": {"name": "p"}, "spec": {"color": "red", "extra": 1}});
    let (code, strict) = call(
        &api,
        Method::POST,
        &format!("{coll}?fieldValidation=Strict"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{strict}");
    assert!(
        strict["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown field \"spec.extra\"")),
        "{strict}"
    );
    let (code, stored) = call(&api, Method::POST, coll, Some(body)).await;
    assert_eq!(code, StatusCode::CREATED, "{stored}");
    assert_eq!(
        stored["spec"],
        json!({"color": "red", "size": "M"}),
        "pruned and defaulted"
    );
    let bad = json!({"apiVersion": "stable.example.com/v1", "kind": "Shirt",
        "metadata": {"name": "q"}, "spec": {"size": "XXL", "replicas": "two"}});
    let (code, invalid) = call(&api, Method::POST, coll, Some(bad)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{invalid}");
    let fields: Vec<&str> = invalid["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"spec.size") && fields.contains(&"spec.replicas"),
        "{invalid}"
    );
    assert!(
        invalid["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Shirt.stable.example.com \"q\" is invalid")),
        "{invalid}"
    );
    assert_eq!(
        call(&api, Method::GET, &format!("{coll}/q"), None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn server_side_apply_records_managed_fields_of_custom_objects() {
    let api = ApiServer::new(ApiServerConfig::memory()).expect("server");
    served(&api).await;
    let a = send(
        &api,
        Method::PATCH,
        "/apis/stable.example.com/v1/namespaces/default/shirts/s?fieldManager=kubectl&fieldValidation=Strict",
        Some("application/apply-patch+yaml"),
        "application/json",
        Body::from("apiVersion: stable.example.com/v1\nkind: Shirt\nmetadata:\n  name: s\nspec:\n  color: teal\n"),
    )
    .await;
    let (status, o) = (a.status, a.body);
    assert_eq!(status, StatusCode::CREATED, "{o}");
    let managed = &o["metadata"]["managedFields"][0];
    assert_eq!(managed["manager"], "kubectl", "{o}");
    assert_eq!(managed["operation"], "Apply");
    assert_eq!(managed["fieldsV1"]["f:spec"]["f:color"], json!({}), "{o}");
}

/// A server serving `shirts` whose `spec.ports` has the list type `list_type` (`None`: no
/// list type, an atomic list).
async fn shirts_with_ports(list_type: Option<&str>) -> Arc<ApiServer> {
    let api = ApiServer::new(ApiServerConfig::memory()).expect("server");
    let mut ports = json!({"type": "array", "items": {"type": "object", "required": ["name"],
        "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}});
    if let Some(t) = list_type {
        ports["x-kubernetes-list-type"] = json!(t);
        ports["x-kubernetes-list-map-keys"] = json!(["name"]);
    }
    let mut crd = shirt_crd();
    crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["ports"] = ports;
    serve(&api, crd).await;
    api
}

/// Server-side apply of shirt `s` with one port named `port` by `manager`.
async fn apply_port(api: &Arc<ApiServer>, manager: &str, port: &str) -> (StatusCode, Value) {
    let body = format!(
        "apiVersion: stable.example.com/v1\nkind: Shirt\nmetadata:\n  name: s\nspec:\n  ports:\n  - name: {port}\n    port: 80\n"
    );
    let a = send(
        api,
        Method::PATCH,
        &format!("/apis/stable.example.com/v1/namespaces/default/shirts/s?fieldManager={manager}"),
        Some("application/apply-patch+yaml"),
        "application/json",
        Body::from(body),
    )
    .await;
    (a.status, a.body)
}

/// Server-side apply merges a custom object's lists as its schema says: entries of an
/// `x-kubernetes-list-type: map` list applied by two managers are both kept, each owned by
/// its manager under its key. Each server merges by its own schema: a second server in the
/// process serving the same kind with an atomic list refuses the second manager's apply as
/// a conflict.
#[tokio::test]
async fn server_side_apply_follows_the_schema_list_types() {
    let keyed = shirts_with_ports(Some("map")).await;
    let atomic = shirts_with_ports(None).await;
    let (code, first) = apply_port(&keyed, "a", "http").await;
    assert_eq!(code, StatusCode::CREATED, "{first}");
    assert_eq!(
        first["metadata"]["managedFields"][0]["manager"], "a",
        "{first}"
    );
    let (code, o) = apply_port(&keyed, "b", "https").await;
    assert_eq!(code, StatusCode::OK, "{o}");
    let names: std::collections::BTreeSet<&str> = o["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["http", "https"].into(),
        "both managers' entries are kept: {o}"
    );
    let b = o["metadata"]["managedFields"]
        .as_array()
        .expect("managed")
        .iter()
        .find(|m| m["manager"] == "b")
        .expect("b's entry");
    assert!(
        b["fieldsV1"]["f:spec"]["f:ports"]["k:{\"name\":\"https\"}"].is_object(),
        "{b}"
    );

    let (code, o) = apply_port(&atomic, "a", "http").await;
    assert_eq!(code, StatusCode::CREATED, "{o}");
    let (code, conflict) = apply_port(&atomic, "b", "https").await;
    assert_eq!(
        code,
        StatusCode::CONFLICT,
        "an atomic list has one owner: {conflict}"
    );
    assert_eq!(conflict["reason"], "Conflict", "{conflict}");
}
