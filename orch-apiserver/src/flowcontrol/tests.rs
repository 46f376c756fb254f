//! The max-in-flight filter on the router: a write held open by a slow body keeps the only
//! mutating seat; other writes get upstream's 429, reads and privileged users still run.

use crate::{ApiServer, ApiServerConfig};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

async fn send(api: &Arc<ApiServer>, method: &str, path: &str, body: Body) -> Response {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("request");
    api.router().oneshot(req).await.expect("response")
}

async fn json(resp: Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).unwrap_or_default()
}

fn configmap(name: &str) -> Body {
    Body::from(format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#
    ))
}

#[tokio::test]
async fn a_full_mutating_pool_answers_429_with_retry_after() {
    let api = ApiServer::new(ApiServerConfig {
        max_requests_inflight: 1,
        max_mutating_requests_inflight: 1,
        ..ApiServerConfig::memory()
    })
    .expect("server");
    // A create whose body arrives slowly holds the only mutating seat while it is read.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let held = tokio::spawn({
        let api = api.clone();
        async move {
            let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
            send(&api, "POST", CONFIGMAPS, body).await.status()
        }
    });
    tx.send(Ok(Bytes::from_static(
        br#"{"apiVersion":"v1","kind":"ConfigMap","#,
    )))
    .await
    .expect("send");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let resp = send(&api, "POST", CONFIGMAPS, configmap("probe")).await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            break resp;
        }
        assert!(tokio::time::Instant::now() < deadline, "never refused");
        // The probe ran before the held request took its seat: remove it and retry.
        let _ = send(
            &api,
            "DELETE",
            &format!("{CONFIGMAPS}/probe"),
            Body::empty(),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    let status = json(refused).await;
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["code"], 429);
    assert_eq!(
        status["message"],
        "Too many requests, please try again later."
    );
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
    // Reads have their own pool.
    let list = send(&api, "GET", CONFIGMAPS, Body::empty()).await;
    assert_eq!(list.status(), StatusCode::OK);
    // In-process callers (system:masters, no HTTP) are never limited.
    let cm = orch_types::registry::by_name("configmaps")[0].api_resource();
    let obj = orch_types::DynamicObject::new("v1", "ConfigMap", "inprocess");
    api.client()
        .create(&cm, Some("default"), &obj, &Default::default())
        .await
        .expect("in-process create");
    // The held request finishes and frees its seat.
    tx.send(Ok(Bytes::from_static(br#""metadata":{"name":"held"}}"#)))
        .await
        .expect("send");
    drop(tx);
    assert_eq!(held.await.expect("held"), StatusCode::CREATED);
    let after = send(&api, "POST", CONFIGMAPS, configmap("after")).await;
    assert_eq!(after.status(), StatusCode::CREATED);
}
