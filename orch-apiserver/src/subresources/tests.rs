use orch_types::client::PostParams;
use orch_types::registry;
use serde_json::json;

use super::*;

fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("object")
}

fn info(plural: &str) -> Resource {
    registry::BUILTIN
        .iter()
        .find(|r| r.plural == plural && r.group != "events.k8s.io")
        .expect("served")
}

#[test]
fn scale_documents() {
    let rc = obj(json!({"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "rc", "namespace": "ns", "resourceVersion": "5"},
        "spec": {"replicas": 2, "selector": {"b": "2", "a": "1"}}, "status": {"replicas": 1}}));
    let s = scale_of(&rc);
    assert_eq!(s["kind"], "Scale");
    assert_eq!(s["apiVersion"], "autoscaling/v1");
    assert_eq!(s["metadata"]["resourceVersion"], "5");
    assert_eq!(s["status"], json!({"replicas": 1, "selector": "a=1,b=2"}));
    let cases: &[(Value, Result<i64, u16>)] = &[
        (json!({"spec": {"replicas": 4}}), Ok(4)),
        (json!({"spec": {}}), Ok(0)),
        (json!({"spec": {"replicas": -1}}), Err(422)),
        (json!({"spec": {"replicas": "3"}}), Err(422)),
    ];
    for (doc, want) in cases {
        assert_eq!(
            replicas_from_scale(doc, "x").map_err(|e| e.code),
            *want,
            "{doc}"
        );
    }
}

#[test]
fn bindings_and_log_urls() {
    let b = obj(
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}),
    );
    assert_eq!(binding_target(&b).expect("target"), "n1");
    let bad = obj(
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {}}),
    );
    assert_eq!(binding_target(&bad).map_err(|e| e.code), Err(422));
    let node = obj(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "Hostname", "address": "h"}, {"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}),
    );
    let q = vec![
        ("container".to_string(), "c".to_string()),
        ("follow".to_string(), "true".to_string()),
        ("sinceTime".to_string(), "2025-01-01T00:00:00Z".to_string()),
    ];
    assert_eq!(
        kubelet_log_url(&node, "default", "p", "c", &q).expect("url"),
        "http://127.0.0.1:10250/containerLogs/default/p/c?follow=true&sinceTime=2025-01-01T00%3A00%3A00Z"
    );
    let no_port =
        obj(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}, "status": {}}));
    assert_eq!(
        kubelet_log_url(&no_port, "d", "p", "c", &[]).map_err(|e| e.code),
        Err(400)
    );
    let two = obj(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
    );
    assert_eq!(
        log_container(&two, &[]).map_err(|e| e.message),
        Err("a container name must be specified for pod p, choose one of: [a b]".to_string())
    );
}

async fn server_api() -> Arc<ApiServer> {
    ApiServer::new(crate::ApiServerConfig::memory()).expect("server")
}

#[tokio::test]
async fn scale_get_put_patch() {
    let api = server_api().await;
    let deploy = obj(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}));
    let d = info("deployments");
    api.create_object(d, Some("default"), deploy, &PostParams::default())
        .await
        .expect("create");
    let s = api.get_scale(d, Some("default"), "web").await.expect("get");
    assert_eq!(s["spec"]["replicas"], 1);
    assert_eq!(s["status"]["selector"], "app=web");
    let s = api
        .patch_scale(
            d,
            Some("default"),
            "web",
            PatchType::Merge,
            &json!({"spec": {"replicas": 3}}),
            false,
        )
        .await
        .expect("patch");
    assert_eq!(s["spec"]["replicas"], 3);
    let stored = api
        .get_object(d, Some("default"), "web")
        .await
        .expect("get");
    assert_eq!(stored.data["spec"]["replicas"], 3);
    assert_eq!(stored.metadata.generation, Some(2));
    let dry = api
        .update_scale(
            d,
            Some("default"),
            "web",
            &json!({"spec": {"replicas": 7}}),
            true,
        )
        .await
        .expect("dry run");
    assert_eq!(dry["spec"]["replicas"], 7);
    let unchanged = api.get_scale(d, Some("default"), "web").await.expect("get");
    assert_eq!(unchanged["spec"]["replicas"], 3);
    let stale = json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 5}});
    let err = api
        .update_scale(d, Some("default"), "web", &stale, false)
        .await
        .expect_err("stale resourceVersion");
    assert_eq!(err.code, 409);
    let err = api
        .get_scale(info("configmaps"), Some("default"), "web")
        .await
        .expect_err("no scale");
    assert_eq!(err.code, 404);
}

/// A server with the unbound pod `default/p`, and the pods resource.
async fn api_with_pod_p() -> (Arc<ApiServer>, Resource) {
    let api = server_api().await;
    let pods = info("pods");
    let pod = obj(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    );
    api.create_object(pods, Some("default"), pod, &PostParams::default())
        .await
        .expect("create");
    (api, pods)
}

#[tokio::test]
async fn binding_and_eviction() {
    let (api, pods) = api_with_pod_p().await;
    let binding = obj(
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"kind": "Node", "name": "n1"}}),
    );
    let bound = api
        .create_subresource(pods, Some("default"), "p", "binding", binding.clone())
        .await
        .expect("bind");
    assert_eq!(bound.data["spec"]["nodeName"], "n1");
    let again = api
        .create_subresource(pods, Some("default"), "p", "binding", binding)
        .await
        .expect_err("already bound");
    assert_eq!(again.code, 409);
    let eviction = obj(
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"},
        "deleteOptions": {"gracePeriodSeconds": 0}}),
    );
    let st = api
        .create_subresource(pods, Some("default"), "p", "eviction", eviction)
        .await
        .expect("evict");
    assert_eq!(st.data["status"], "Success");
    let gone = api
        .get_object(pods, Some("default"), "p")
        .await
        .expect_err("deleted");
    assert_eq!(gone.code, 404);
}

/// Binding sets `PodScheduled=True` as upstream's `BindingREST` does: the scheduler's earlier
/// `False`/`Unschedulable` condition is replaced (reason and message gone), the other
/// conditions are kept.
#[tokio::test]
async fn binding_marks_the_pod_scheduled() {
    let (api, pods) = api_with_pod_p().await;
    let unschedulable = obj(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "status": {"phase": "Pending", "conditions": [
            {"type": "Custom", "status": "True"},
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/1 nodes are available", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}}));
    api.update_object(
        pods,
        Some("default"),
        "p",
        crate::rest::update::Part::Status,
        unschedulable,
        &PostParams::default(),
    )
    .await
    .expect("status");
    let binding = obj(
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"kind": "Node", "name": "n1"}}),
    );
    let bound = api
        .create_subresource(pods, Some("default"), "p", "binding", binding)
        .await
        .expect("bind");
    let conditions = bound.data["status"]["conditions"]
        .as_array()
        .expect("conditions");
    assert_eq!(conditions.len(), 2, "{conditions:?}");
    assert_eq!(conditions[0]["type"], "Custom");
    let scheduled = &conditions[1];
    assert_eq!(scheduled["type"], "PodScheduled");
    assert_eq!(scheduled["status"], "True");
    assert!(scheduled.get("reason").is_none() && scheduled.get("message").is_none());
    let since = scheduled["lastTransitionTime"]
        .as_str()
        .expect("transition time");
    assert_ne!(
        since, "2020-01-01T00:00:00Z",
        "False -> True is a transition"
    );
}

/// `pods/log` goes to the kubelet named by the pod's node (a fake kubelet on a real socket),
/// with the query passed through and the body streamed back.
#[tokio::test]
async fn log_is_proxied_to_the_kubelet() {
    use axum::extract::{Path, RawQuery};
    let kubelet = axum::Router::new().route(
        "/containerLogs/{ns}/{pod}/{container}",
        axum::routing::get(
            |Path((ns, pod, c)): Path<(String, String, String)>, RawQuery(q): RawQuery| async move {
                format!("{ns}/{pod}/{c}?{}\nline 2\n", q.unwrap_or_default())
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move { axum::serve(listener, kubelet).await });

    let api = server_api().await;
    let node = obj(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}),
    );
    api.create_object(info("nodes"), None, node, &PostParams::default())
        .await
        .expect("node");
    let pod = obj(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}),
    );
    api.create_object(info("pods"), Some("default"), pod, &PostParams::default())
        .await
        .expect("pod");
    let q = vec![("tailLines".to_string(), "10".to_string())];
    let resp = api
        .pod_log(info("pods"), Some("default"), "p", &q)
        .await
        .expect("log");
    assert_eq!(resp.status(), 200);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    assert_eq!(
        String::from_utf8_lossy(&body),
        "default/p/c?tailLines=10\nline 2\n"
    );
    let err = api
        .pod_log(info("pods"), Some("default"), "nope", &q)
        .await
        .expect_err("no pod");
    assert_eq!(err.code, 404);
    server.abort();
}
