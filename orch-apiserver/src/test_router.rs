//! Test support: requests to an API server's router without sockets, and polling for what
//! the server's background controllers do.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use crate::ApiServer;

/// An answer: status, body as JSON (`Null` when it is not JSON) and `Warning` headers.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub warnings: Vec<String>,
}

/// Sends `body` (of `content_type`, when given) to `path`, accepting `accept`.
pub(crate) async fn send(
    api: &Arc<ApiServer>,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    accept: &str,
    body: Body,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("accept", accept);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = api
        .router()
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .expect("body");
    Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        warnings,
    }
}

/// A JSON request (`body` as `application/json` when given), answered as JSON.
pub(crate) async fn call(
    api: &Arc<ApiServer>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_accept(api, method, path, body, "application/json").await
}

/// [`call`] accepting `accept` (a Table, aggregated discovery).
pub(crate) async fn call_accept(
    api: &Arc<ApiServer>,
    method: Method,
    path: &str,
    body: Option<Value>,
    accept: &str,
) -> (StatusCode, Value) {
    let a = match body {
        Some(b) => {
            let bytes = serde_json::to_vec(&b).expect("json");
            send(
                api,
                method,
                path,
                Some("application/json"),
                accept,
                Body::from(bytes),
            )
            .await
        }
        None => send(api, method, path, None, accept, Body::empty()).await,
    };
    (a.status, a.body)
}

/// Polls `f` every 50 ms until it holds, for at most 15 s.
pub(crate) async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
