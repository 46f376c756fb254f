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
        // The probe's answer holds its seat until its body is gone.
        drop(resp);
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

/// A request as `token`'s user.
async fn send_as(
    api: &Arc<ApiServer>,
    token: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: Body,
) -> Response {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(body)
        .expect("request");
    api.router().oneshot(req).await.expect("response")
}

/// API Priority and Fairness on the router, 4 seats: the tenant's level (`global-default`, one
/// seat, a hand of 6 queues of 50 for its one flow) is held by a create whose body is still
/// arriving; of 400 concurrent lists the ones that find no place are refused at once with 429
/// and `Retry-After: 1` (counted `queue-full` at `/metrics`) while the scheduler binds a pod and
/// a node renews its Lease (levels of their own); the held seat freed, the queued lists run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apf_refuses_a_flooding_tenant_early_while_the_scheduler_and_nodes_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "tenant,tenant,1\nsched,system:kube-scheduler,2\nnode,system:node:n1,3,\"system:nodes\"\nadmin,admin,4,\"system:masters\"\n",
    )
    .expect("tokens");
    let api = ApiServer::new(ApiServerConfig {
        max_requests_inflight: 2,
        max_mutating_requests_inflight: 2,
        auth: crate::auth::AuthConfig {
            token_auth_file: Some(tokens),
            ..Default::default()
        },
        ..ApiServerConfig::memory()
    })
    .expect("server");
    // The follower reads the suggested levels.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while api
        .inflight
        .apf()
        .expect("APF is the default")
        .config()
        .level("global-default")
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no suggested levels"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = api.client();
    let pods = orch_types::registry::by_name("pods")[0].api_resource();
    let mut pod = orch_types::DynamicObject::new("v1", "Pod", "p");
    pod.metadata.namespace = Some("default".into());
    pod.data.insert(
        "spec".into(),
        serde_json::json!({"containers": [{"name": "c", "image": "pause"}]}),
    );
    client
        .create(&pods, Some("default"), &pod, &Default::default())
        .await
        .expect("pod");
    let leases = orch_types::registry::by_kind("coordination.k8s.io/v1", "Lease")
        .expect("Lease")
        .api_resource();
    let mut lease = orch_types::DynamicObject::new("coordination.k8s.io/v1", "Lease", "n1");
    lease.metadata.namespace = Some("kube-node-lease".into());
    client
        .create(
            &leases,
            Some("kube-node-lease"),
            &lease,
            &Default::default(),
        )
        .await
        .expect("lease");

    // The tenant's only seat: a create whose body is still arriving.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let held = tokio::spawn({
        let api = api.clone();
        async move {
            let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
            send_as(&api, "tenant", "POST", CONFIGMAPS, "application/json", body)
                .await
                .status()
        }
    });
    tx.send(Ok(Bytes::from_static(
        br#"{"apiVersion":"v1","kind":"ConfigMap","#,
    )))
    .await
    .expect("send");
    let apf = api.inflight.apf().expect("APF").clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while apf
        .counters("global-default", "global-default")
        .executing
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the create holds no seat"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let lists: Vec<_> = (0..400)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                let r = send_as(
                    &api,
                    "tenant",
                    "GET",
                    CONFIGMAPS,
                    "application/json",
                    Body::empty(),
                )
                .await;
                let retry = r.headers().get(header::RETRY_AFTER).cloned();
                (r.status(), retry)
            })
        })
        .collect();
    let counters = apf.counters("global-default", "global-default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while counters
        .queue_full
        .load(std::sync::atomic::Ordering::Relaxed)
        < 100
    {
        assert!(tokio::time::Instant::now() < deadline, "never refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Meanwhile the scheduler binds and the node renews its Lease.
    let binding = Body::from(
        r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p"},"target":{"kind":"Node","name":"n1"}}"#,
    );
    let bound = send_as(
        &api,
        "sched",
        "POST",
        "/api/v1/namespaces/default/pods/p/binding",
        "application/json",
        binding,
    )
    .await;
    assert_eq!(bound.status(), StatusCode::CREATED);
    let renewed = send_as(
        &api,
        "node",
        "PATCH",
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
        "application/merge-patch+json",
        Body::from(r#"{"spec":{"renewTime":"2026-01-01T00:00:00.000000Z"}}"#),
    )
    .await;
    assert_eq!(renewed.status(), StatusCode::OK);
    let metrics = send_as(
        &api,
        "admin",
        "GET",
        "/metrics",
        "text/plain",
        Body::empty(),
    )
    .await;
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = String::from_utf8(
        axum::body::to_bytes(metrics.into_body(), 1 << 20)
            .await
            .expect("metrics")
            .to_vec(),
    )
    .expect("utf-8");
    for series in [
        r#"apiserver_flowcontrol_rejected_requests_total{flow_schema="global-default",priority_level="global-default",reason="queue-full"} 100"#,
        r#"apiserver_flowcontrol_current_inqueue_requests{flow_schema="global-default",priority_level="global-default"} 300"#,
        r#"apiserver_flowcontrol_current_executing_requests{flow_schema="global-default",priority_level="global-default"} 1"#,
        r#"apiserver_flowcontrol_dispatched_requests_total{flow_schema="kube-scheduler",priority_level="workload-high"} 1"#,
        r#"apiserver_flowcontrol_dispatched_requests_total{flow_schema="system-node-high",priority_level="node-high"} 1"#,
        r#"apiserver_flowcontrol_nominal_limit_seats{priority_level="global-default"} 1"#,
    ] {
        assert!(text.contains(series), "{series} in\n{text}");
    }

    // The held create finishes; the queued lists run.
    tx.send(Ok(Bytes::from_static(br#""metadata":{"name":"held"}}"#)))
        .await
        .expect("send");
    drop(tx);
    assert_eq!(held.await.expect("held"), StatusCode::CREATED);
    let (mut ok, mut refused) = (0, 0);
    for l in lists {
        let (status, retry) = l.await.expect("list");
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                assert_eq!(retry.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
            }
            other => panic!("list answered {other}"),
        }
    }
    assert_eq!((ok, refused), (300, 100));
}
