//! The max-in-flight filter (APF off) on the router: a write held open by a slow body keeps the only
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
        enable_priority_and_fairness: false,
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

/// Bounded overload on real sockets: one client fires 1,000 concurrent lists at a server with
/// one read seat (eight worker threads) while a node renews its Lease every 50 ms. Semantics only: lists are refused
/// with 429 and `Retry-After: 1`, every renewal (the mutating pool) succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn lists_flooding_the_read_pool_do_not_stop_lease_renewals() {
    let api = ApiServer::new(ApiServerConfig {
        max_requests_inflight: 1,
        enable_priority_and_fairness: false,
        max_mutating_requests_inflight: 200,
        ..ApiServerConfig::memory()
    })
    .expect("server");
    let cm = orch_types::registry::by_name("configmaps")[0].api_resource();
    for i in 0..300 {
        let obj = orch_types::DynamicObject::new("v1", "ConfigMap", &format!("cm-{i}"));
        api.client()
            .create(&cm, Some("default"), &obj, &Default::default())
            .await
            .expect("create");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve(api.clone(), listener, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let lease = format!("{base}/apis/coordination.k8s.io/v1/namespaces/default/leases/node-1");
    let created = http
        .post(format!(
            "{base}/apis/coordination.k8s.io/v1/namespaces/default/leases"
        ))
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"node-1"},"spec":{"holderIdentity":"node-1","leaseDurationSeconds":40}}"#)
        .send()
        .await
        .expect("create lease");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let heartbeats = tokio::spawn({
        let (http, lease, flooding) = (http.clone(), lease.clone(), flooding.clone());
        async move {
            let mut codes = Vec::new();
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                let now = format!(
                    "2026-01-01T00:{:02}:{:02}.000000Z",
                    codes.len() / 60 % 60,
                    codes.len() % 60
                );
                let resp = http
                    .patch(&lease)
                    .header(header::CONTENT_TYPE, "application/merge-patch+json")
                    .body(format!(r#"{{"spec":{{"renewTime":"{now}"}}}}"#))
                    .send()
                    .await;
                codes.push(resp.map(|r| r.status().as_u16()).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            codes
        }
    });
    let lists: Vec<_> = (0..1000)
        .map(|_| {
            let (http, url) = (http.clone(), format!("{base}{CONFIGMAPS}"));
            tokio::spawn(async move {
                let r = http.get(url).send().await.ok()?;
                let retry = r.headers().get(header::RETRY_AFTER).cloned();
                Some((r.status().as_u16(), retry))
            })
        })
        .collect();
    let mut refused = 0;
    for l in lists {
        if let Some((429, retry)) = l.await.expect("list task") {
            refused += 1;
            assert_eq!(retry.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
        }
    }
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let codes = heartbeats.await.expect("heartbeats");
    assert!(
        refused > 0,
        "1,000 concurrent lists over one seat: some refused"
    );
    assert!(!codes.is_empty());
    assert!(
        codes.iter().all(|c| *c == 200),
        "every renewal succeeds: {codes:?}"
    );
    let _ = stop.send(());
    server.await.expect("server task").expect("serve");
}
