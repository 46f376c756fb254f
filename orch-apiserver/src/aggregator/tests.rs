//! API aggregation against an extension API server written for the test (HTTPS, signed by a
//! test CA): the APIService becomes Available, its group is discovered and proxied, and a
//! backend that goes away makes it unavailable with a 503.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::routing::get;
use base64::Engine;
use serde_json::{json, Value};

use crate::test_router::{call, call_accept, eventually};
use crate::{ApiServer, ApiServerConfig};

/// The extension server: one namespaced resource, `widgets` of `metrics.example.com/v1`.
fn extension() -> axum::Router {
    axum::Router::new()
        .route(
            "/apis/metrics.example.com/v1",
            get(|| async {
                axum::Json(json!({
                    "kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": "metrics.example.com/v1",
                    "resources": [
                        {"name": "widgets", "singularName": "widget", "namespaced": true,
                         "kind": "Widget", "verbs": ["get", "list"], "shortNames": ["wd"]},
                        {"name": "widgets/status", "singularName": "", "namespaced": true,
                         "kind": "Widget", "verbs": ["get"]}
                    ]
                }))
            }),
        )
        .route(
            "/apis/metrics.example.com/v1/namespaces/{ns}/widgets",
            get(
                |axum::extract::Path(ns): axum::extract::Path<String>| async move {
                    axum::Json(json!({
                        "kind": "WidgetList", "apiVersion": "metrics.example.com/v1",
                        "metadata": {"resourceVersion": "1"},
                        "items": [{"kind": "Widget", "apiVersion": "metrics.example.com/v1",
                            "metadata": {"name": "w1", "namespace": ns}, "value": 42}]
                    }))
                },
            ),
        )
}

async fn available(api: &Arc<ApiServer>) -> Value {
    let (_, a) = call(
        api,
        Method::GET,
        "/apis/apiregistration.k8s.io/v1/apiservices/v1.metrics.example.com",
        None,
    )
    .await;
    a["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Available").cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_apiservice_routes_its_group_version_to_the_extension_server() {
    let api = ApiServer::new(ApiServerConfig::memory()).expect("server");
    let (port, ca, backend) = crate::test_tls::serve_router(extension()).await;
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(&ca);
    let apiservice = json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1.metrics.example.com"},
        "spec": {"group": "metrics.example.com", "version": "v1", "groupPriorityMinimum": 100,
                 "versionPriority": 10, "caBundle": ca_b64,
                 "service": {"namespace": "default", "name": "metrics", "port": 443}}
    });
    let (code, created) = call(
        &api,
        Method::POST,
        "/apis/apiregistration.k8s.io/v1/apiservices",
        Some(apiservice),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["spec"]["service"]["port"], 443);

    // No Service yet.
    eventually("ServiceNotFound", async || {
        available(&api).await["reason"] == "ServiceNotFound"
    })
    .await;
    assert_eq!(
        available(&api).await["message"],
        "service/metrics in \"default\" is not present"
    );
    let (code, unavailable) = call(
        &api,
        Method::GET,
        "/apis/metrics.example.com/v1/namespaces/default/widgets",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{unavailable}");
    assert_eq!(unavailable["reason"], "ServiceUnavailable");

    // A Service without selector and its Endpoints: the aggregator's routing.
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "metrics"},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}});
    assert_eq!(
        call(
            &api,
            Method::POST,
            "/api/v1/namespaces/default/services",
            Some(svc)
        )
        .await
        .0,
        StatusCode::CREATED
    );
    eventually("MissingEndpoints", async || {
        available(&api).await["reason"] == "MissingEndpoints"
    })
    .await;
    let ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "metrics"},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": port}]}]});
    assert_eq!(
        call(
            &api,
            Method::POST,
            "/api/v1/namespaces/default/endpoints",
            Some(ep)
        )
        .await
        .0,
        StatusCode::CREATED
    );
    eventually("Available", async || {
        available(&api).await["status"] == "True"
    })
    .await;
    assert_eq!(available(&api).await["reason"], "Passed");

    // Proxied, and discovered.
    let (code, list) = call(
        &api,
        Method::GET,
        "/apis/metrics.example.com/v1/namespaces/default/widgets",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{list}");
    assert_eq!(list["items"][0]["value"], 42);
    let (_, group) = call(&api, Method::GET, "/apis/metrics.example.com", None).await;
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        "metrics.example.com/v1"
    );
    let (_, groups) = call(&api, Method::GET, "/apis", None).await;
    assert!(groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .any(|g| g["name"] == "metrics.example.com"));
    let (_, agg) = call_accept(
        &api,
        Method::GET,
        "/apis",
        None,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    )
    .await;
    let metrics = agg["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["metadata"]["name"] == "metrics.example.com")
        .expect("aggregated group discovered");
    let widgets = &metrics["versions"][0]["resources"][0];
    assert_eq!(widgets["resource"], "widgets");
    assert_eq!(widgets["verbs"], json!(["get", "list"]));
    assert_eq!(widgets["subresources"][0]["subresource"], "status");

    // The backend goes away: unavailable again, 503.
    backend.abort();
    let _ = backend.await;
    tokio::time::sleep(super::RECHECK + Duration::from_millis(500)).await;
    eventually("FailedDiscoveryCheck", async || {
        available(&api).await["reason"] == "FailedDiscoveryCheck"
    })
    .await;
    let (code, _) = call(
        &api,
        Method::GET,
        "/apis/metrics.example.com/v1/namespaces/default/widgets",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn invalid_apiservices_are_refused_with_causes() {
    let api = ApiServer::new(ApiServerConfig::memory()).expect("server");
    let bad = json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v2.other.example.com"},
        "spec": {"group": "metrics.example.com", "version": "v1", "groupPriorityMinimum": 0,
                 "versionPriority": 10, "insecureSkipTLSVerify": true, "caBundle": "Zm9v",
                 "service": {"namespace": "default", "name": "metrics"}}
    });
    let (code, st) = call(
        &api,
        Method::POST,
        "/apis/apiregistration.k8s.io/v1/apiservices",
        Some(bad),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{st}");
    let fields: Vec<&str> = st["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "metadata.name",
            "spec.groupPriorityMinimum",
            "spec.insecureSkipTLSVerify"
        ],
        "{st}"
    );
}
