use super::*;
use axum::body::Body;
use http::Request;
use orch_types::client::PostParams;
use tower::ServiceExt;

fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("object")
}

#[test]
fn quantities_are_canonical() {
    let cpu: Vec<String> = [0, 123, 250_000_000, 1_000_000_000, 1_500_000_000, 1_000]
        .into_iter()
        .map(cpu_quantity)
        .collect();
    assert_eq!(cpu, ["0", "123n", "250m", "1", "1500m", "1u"]);
    let mem: Vec<String> = [0, 1000, 65_536, 64 << 20, (64 << 20) + 4096, 3 << 30]
        .into_iter()
        .map(memory_quantity)
        .collect();
    assert_eq!(mem, ["0", "1k", "64Ki", "64Mi", "65540Ki", "3Gi"]);
}

fn summary() -> Value {
    let t = "2026-01-01T00:00:05Z";
    let c = |name: &str, cpu: u64, mem: u64| {
        json!({"name": name, "startTime": t,
               "cpu": {"time": t, "usageNanoCores": cpu, "usageCoreNanoSeconds": 1},
               "memory": {"time": t, "workingSetBytes": mem}})
    };
    json!({
        "node": {"nodeName": "n1", "startTime": t,
                 "cpu": {"time": t, "usageNanoCores": 500_000_123u64},
                 "memory": {"time": t, "workingSetBytes": 128u64 << 20}},
        "pods": [
            {"podRef": {"name": "web", "namespace": "default"}, "startTime": t,
             "containers": [c("app", 250_000_000, 64 << 20), c("side", 123, 4096)]},
            {"podRef": {"name": "db", "namespace": "default"}, "startTime": t,
             "containers": [c("db", 250_000_000, (64 << 20) - 4096)]},
            {"podRef": {"name": "half", "namespace": "default", "uid": "u-half"}, "startTime": t,
             "containers": [{"name": "x", "startTime": t, "cpu": {"time": t, "usageNanoCores": 1}}]},
            // an earlier pod of the name of one now on n2 (another UID): not its figures
            {"podRef": {"name": "away", "namespace": "default", "uid": "old"}, "startTime": t,
             "containers": [c("a", 1, 1)]}
        ]
    })
}

#[test]
fn conversion_of_summary_entries() {
    let s: Summary = serde_json::from_value(summary()).expect("summary");
    let node = obj(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "labels": {"zone": "a"}}}));
    let now: Timestamp = "2026-01-01T00:00:09Z".parse().expect("time");
    let m = wire(&node_metrics(&node, &s, now).expect("node figures")).expect("wire");
    assert_eq!(
        m,
        json!({"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": "n1", "labels": {"zone": "a"}, "creationTimestamp": "2026-01-01T00:00:09Z"},
            "timestamp": "2026-01-01T00:00:05Z", "window": "10s",
            "usage": {"cpu": "500000123n", "memory": "128Mi"}})
    );
    let pod = obj(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"}}));
    let m = wire(&pod_metrics(&pod, &s.pods[0], now).expect("pod figures")).expect("wire");
    assert_eq!(m["metadata"]["namespace"], "default");
    assert_eq!(
        m["containers"],
        json!([{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}},
               {"name": "side", "usage": {"cpu": "123n", "memory": "4Ki"}}])
    );
    assert_eq!(pod_metrics(&pod, &s.pods[2], now), None, "no memory figure");
}

/// An API server with node `n1` whose kubelet (a local server answering [`summary`]) is
/// reachable, node `n2` whose kubelet is not, and pods on them.
async fn cluster() -> (Arc<ApiServer>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let kubelet = Router::new().route("/stats/summary", get(|| async { axum::Json(summary()) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move { axum::serve(listener, kubelet).await });
    let api = ApiServer::new(crate::ApiServerConfig::memory()).expect("server");
    let nodes = core("nodes").expect("nodes");
    let pods = core("pods").expect("pods");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    for (name, port) in [("n1", port), ("n2", closed)] {
        let node = obj(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"node": name}},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}));
        api.create_object(nodes, None, node, &PostParams::default())
            .await
            .expect("node");
    }
    for (name, app, node) in [
        ("web", "web", "n1"),
        ("db", "db", "n1"),
        ("away", "web", "n2"),
    ] {
        let pod = obj(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}));
        api.create_object(pods, Some("default"), pod, &PostParams::default())
            .await
            .expect("pod");
    }
    (api, server)
}

async fn call(api: &Arc<ApiServer>, method: &str, uri: &str) -> (u16, Value) {
    let app = crate::rest::router::router(api.clone());
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let resp = app.oneshot(req).await.expect("response");
    let code = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect()
}

#[tokio::test]
async fn routes_ask_the_kubelets() {
    let (api, server) = cluster().await;
    let base = "/apis/metrics.k8s.io/v1beta1";
    let (code, l) = call(&api, "GET", &format!("{base}/nodes")).await;
    assert_eq!(code, 200);
    assert_eq!(l["kind"], "NodeMetricsList");
    assert_eq!(names(&l), ["n1"], "n2's kubelet does not answer");
    assert_eq!(l["items"][0]["metadata"]["labels"]["node"], "n1");
    let (code, n) = call(&api, "GET", &format!("{base}/nodes/n1")).await;
    assert_eq!((code, &n["usage"]["memory"]), (200, &json!("128Mi")));
    let (code, e) = call(&api, "GET", &format!("{base}/nodes/n2")).await;
    assert_eq!(code, 404);
    assert_eq!(e["message"], "nodemetrics.metrics.k8s.io \"n2\" not found");

    let (code, l) = call(&api, "GET", &format!("{base}/namespaces/default/pods")).await;
    assert_eq!((code, names(&l)), (200, vec!["db", "web"]));
    assert_eq!(l["kind"], "PodMetricsList");
    let (_, l) = call(
        &api,
        "GET",
        &format!("{base}/namespaces/default/pods?labelSelector=app%3Dweb"),
    )
    .await;
    assert_eq!(names(&l), ["web"]);
    assert_eq!(l["items"][0]["containers"][0]["usage"]["cpu"], "250m");
    let (_, l) = call(
        &api,
        "GET",
        &format!("{base}/pods?fieldSelector=metadata.name%3Ddb"),
    )
    .await;
    assert_eq!(names(&l), ["db"]);
    let (_, l) = call(&api, "GET", &format!("{base}/namespaces/other/pods")).await;
    assert_eq!(names(&l), Vec::<&str>::new());
    let (code, p) = call(&api, "GET", &format!("{base}/namespaces/default/pods/db")).await;
    assert_eq!(code, 200);
    assert_eq!(p["containers"][0]["usage"]["memory"], "65532Ki");
    for missing in ["nope", "away"] {
        let (code, e) = call(
            &api,
            "GET",
            &format!("{base}/namespaces/default/pods/{missing}"),
        )
        .await;
        assert_eq!(code, 404);
        assert_eq!(
            e["message"],
            format!("podmetrics.metrics.k8s.io \"{missing}\" not found")
        );
    }
    let (code, _) = call(&api, "DELETE", &format!("{base}/nodes/n1")).await;
    assert_eq!(code, 405, "read-only");
    server.abort();
}

/// The in-process client serves the group too (the HorizontalPodAutoscaler's polled cache
/// reads it through whichever client its controller manager has), typed as orch-types' kinds.
#[tokio::test]
async fn the_local_client_lists_and_gets_metrics() {
    use orch_types::client::Client;
    let (api, server) = cluster().await;
    let client = crate::client::LocalClient::new(api.clone());
    let pods = orch_types::ApiResource::of::<PodMetrics>();
    let l = client
        .list(&pods, Some("default"), &ListParams::default())
        .await
        .expect("list");
    let typed: Vec<PodMetrics> = l
        .items
        .iter()
        .map(|d| d.to_typed().expect("typed"))
        .collect();
    let named: Vec<(&str, Option<i64>)> = typed
        .iter()
        .map(|m| {
            (
                m.metadata.name.as_deref().unwrap_or(""),
                m.usage_millis("cpu"),
            )
        })
        .collect();
    assert_eq!(named, [("db", Some(250)), ("web", Some(251))]);
    let nodes = orch_types::ApiResource::of::<NodeMetrics>();
    let n = client.get(&nodes, None, "n1").await.expect("get");
    assert_eq!(n.types.kind, "NodeMetrics");
    let e = client.get(&nodes, None, "n2").await.expect_err("no figure");
    assert_eq!(e.api().map(|a| a.code), Some(404));
    server.abort();
}
