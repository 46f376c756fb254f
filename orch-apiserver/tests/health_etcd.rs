//! The `etcd` check of `/readyz`, `/livez` and `/healthz` on a real etcd (cargo feature
//! `etcd`): ok while etcd answers; once etcd is killed (its endpoint unreachable) the endpoints
//! answer 500 within a few seconds, naming the failed check without its reason, and the single
//! check `/readyz/etcd` gives the reason.
#![cfg(feature = "etcd")]

#[allow(dead_code)]
#[path = "common/etcd.rs"]
mod etcd_server;

use axum::http::StatusCode;
use etcd_server::EtcdServer;
use orch_apiserver::server::StorageConfig;
use orch_apiserver::{ApiServer, ApiServerConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

async fn get(api: &Arc<ApiServer>, uri: &str) -> (StatusCode, String) {
    let r = orch_apiserver::rest::router::router(api.clone())
        .oneshot(
            axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("answer");
    let code = r.status();
    let body = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .expect("body");
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_when_etcd_is_unreachable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut etcd = EtcdServer::start(dir.path()).await;
    let config = ApiServerConfig {
        storage: StorageConfig::Etcd {
            servers: vec![etcd.url.clone()],
            prefix: "/health-test".into(),
            tls: None,
        },
        ..ApiServerConfig::memory()
    };
    let api = ApiServer::open(config).await.expect("API server on etcd");
    let (code, body) = get(&api, "/readyz?verbose").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(body.contains("[+]etcd ok\n"), "{body}");
    assert!(body.ends_with("readyz check passed\n"), "{body}");

    etcd.kill();
    let killed = Instant::now();
    let (code, body) = loop {
        let (code, body) = get(&api, "/readyz?verbose").await;
        if code != StatusCode::OK || killed.elapsed() > Duration::from_secs(10) {
            break (code, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = killed.elapsed();
    eprintln!("/readyz failed {took:.1?} after etcd was killed");
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body.contains("[-]etcd failed: reason withheld\n")
            && body.contains("[-]etcd-readiness failed: reason withheld\n")
            && body.ends_with("readyz check failed\n"),
        "{body}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (code, body) = get(&api, "/livez").await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("[-]etcd failed: reason withheld\n"), "{body}");
    let (code, body) = get(&api, "/readyz/etcd").await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body.starts_with("internal server error: error getting data from etcd: "),
        "{body}"
    );
    let (code, body) = get(&api, "/readyz/ping").await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "ok"));
}
