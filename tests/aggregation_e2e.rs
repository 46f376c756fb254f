//! API aggregation with real kubectl against `orch apiserver`: an extension API server written
//! here (HTTPS, certificate signed by a test CA given as the APIService's `caBundle`) serves
//! `widgets` of `metrics.example.com/v1`; the APIService routes to it through a Service
//! without selector and its Endpoints, becomes Available, its resources are discovered and
//! listed through the API server; when the extension server stops, the APIService says so
//! and requests get 503.

mod common;

use std::time::Duration;

use axum::routing::get;
use base64::Engine;
use common::{wait_for, Split, TestEnv};
use serde_json::{json, Value};

fn extension() -> axum::Router {
    axum::Router::new()
        .route(
            "/apis/metrics.example.com/v1",
            get(|| async {
                axum::Json(json!({
                    "kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": "metrics.example.com/v1",
                    "resources": [{"name": "widgets", "singularName": "widget", "namespaced": true,
                        "kind": "Widget", "verbs": ["get", "list"], "shortNames": ["wd"]}]
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
                            "metadata": {"name": "w1", "namespace": ns,
                                "creationTimestamp": "2026-01-01T00:00:00Z"}, "value": 42}]
                    }))
                },
            ),
        )
}

fn condition(env: &TestEnv) -> Result<(String, String), String> {
    let a: Value = env.get_json(&["apiservice", "v1.metrics.example.com"])?;
    let c = a["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Available").cloned())
        .ok_or("no Available condition yet")?;
    Ok((
        c["status"].as_str().unwrap_or("").to_string(),
        c["reason"].as_str().unwrap_or("").to_string(),
    ))
}

#[test]
fn an_extension_api_server_is_aggregated() {
    let env = TestEnv::new();
    let _api = Split::apiserver(&env);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (port, ca, backend) = rt.block_on(common::tls::serve_router(extension()));
    let ca = base64::engine::general_purpose::STANDARD.encode(&ca);
    env.apply(&format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: metrics, namespace: default}}
spec:
  ports: [{{name: https, port: 443, targetPort: {port}}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: metrics, namespace: default}}
subsets:
- addresses: [{{ip: 127.0.0.1}}]
  ports: [{{name: https, port: {port}}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1.metrics.example.com}}
spec:
  group: metrics.example.com
  version: v1
  groupPriorityMinimum: 100
  versionPriority: 10
  caBundle: {ca}
  service: {{namespace: default, name: metrics, port: 443}}
"#
    ));
    env.kubectl(&[
        "wait",
        "--for=condition=Available",
        "--timeout=30s",
        "apiservice/v1.metrics.example.com",
    ]);
    let table = env.kubectl(&["get", "apiservices"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("v1.metrics.example.com")
                && l.contains("default/metrics")
                && l.contains("True")),
        "{table}"
    );
    let resources = env.kubectl(&["api-resources", "--api-group=metrics.example.com"]);
    assert!(
        resources.contains("widgets") && resources.contains("wd"),
        "{resources}"
    );
    let widgets = env.kubectl(&["get", "wd", "-n", "default", "-o", "name"]);
    assert_eq!(widgets.trim(), "widget.metrics.example.com/w1");
    let list: Value = env.get_json(&["widgets", "-n", "default"]).expect("list");
    assert_eq!(list["items"][0]["value"], 42);

    // The extension server stops: the APIService says so, requests get 503.
    backend.abort();
    drop(rt);
    let (status, reason) = wait_for(
        "the APIService to become unavailable",
        Duration::from_secs(30),
        || match condition(&env)? {
            (s, r) if s == "False" => Ok((s, r)),
            other => Err(format!("still {other:?}")),
        },
    );
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "FailedDiscoveryCheck")
    );
    let err = env
        .kubectl_try(&["get", "widgets", "-n", "default"])
        .expect_err("503 while unavailable");
    assert!(
        err.contains("ServiceUnavailable") || err.contains("unable to handle the request"),
        "{err}"
    );
}
