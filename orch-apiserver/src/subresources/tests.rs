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
            Some("kubectl"),
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
            None,
        )
        .await
        .expect("dry run");
    assert_eq!(dry["spec"]["replicas"], 7);
    let unchanged = api.get_scale(d, Some("default"), "web").await.expect("get");
    assert_eq!(unchanged["spec"]["replicas"], 3);
    let stale = json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 5}});
    let err = api
        .update_scale(d, Some("default"), "web", &stale, false, None)
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

/// A server with pod `default/p` (label `app=web`, on node `n1`) in phase `phase`, Ready or
/// not, and the pods resource.
async fn api_with_running_pod(phase: &str, ready: bool) -> (Arc<ApiServer>, Resource) {
    let api = server_api().await;
    let pods = info("pods");
    let pod = obj(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}));
    api.create_object(pods, Some("default"), pod, &PostParams::default())
        .await
        .expect("create pod");
    let status = obj(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]}}));
    api.update_object(
        pods,
        Some("default"),
        "p",
        crate::rest::update::Part::Status,
        status,
        &PostParams::default(),
    )
    .await
    .expect("pod status");
    (api, pods)
}

/// Creates budget `name` with `spec` (selecting `app=web` unless it has a selector) and then
/// `status`.
async fn budget(api: &ApiServer, name: &str, spec: Value, status: Value) {
    let pdbs = info("poddisruptionbudgets");
    let mut s = spec;
    if let Some(m) = s.as_object_mut() {
        m.entry("selector")
            .or_insert_with(|| json!({"matchLabels": {"app": "web"}}));
    }
    let pdb = obj(
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"}, "spec": s}),
    );
    api.create_object(pdbs, Some("default"), pdb, &PostParams::default())
        .await
        .expect("create budget");
    let st = obj(
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"}, "status": status}),
    );
    api.update_object(
        pdbs,
        Some("default"),
        name,
        crate::rest::update::Part::Status,
        st,
        &PostParams::default(),
    )
    .await
    .expect("budget status");
}

fn eviction(dry_run: bool) -> DynamicObject {
    let opts = if dry_run {
        json!({"dryRun": ["All"]})
    } else {
        json!({})
    };
    obj(json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": "p", "namespace": "default"}, "deleteOptions": opts}))
}

async fn evict(api: &ApiServer, pods: Resource, dry_run: bool) -> RestResult<Arc<DynamicObject>> {
    api.create_subresource(pods, Some("default"), "p", "eviction", eviction(dry_run))
        .await
}

async fn stored_budget(api: &ApiServer, name: &str) -> Arc<DynamicObject> {
    api.get_object(info("poddisruptionbudgets"), Some("default"), name)
        .await
        .expect("budget")
}

#[tokio::test]
async fn eviction_is_refused_with_429_naming_the_budget() {
    let (api, pods) = api_with_running_pod("Running", true).await;
    budget(
        &api,
        "web",
        json!({"minAvailable": 1}),
        json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 1,
               "desiredHealthy": 1, "expectedPods": 1}),
    )
    .await;
    let err = evict(&api, pods, false).await.expect_err("refused");
    assert_eq!((err.code, err.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(
        err.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let causes = err
        .details
        .as_ref()
        .and_then(|d| d.causes.clone())
        .expect("causes");
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason.as_deref(), Some("DisruptionBudget"));
    assert_eq!(
        causes[0].message.as_deref(),
        Some("The disruption budget web needs 1 healthy pods and has 1 currently")
    );
    let wire = err.to_json();
    assert_eq!(wire["details"]["causes"][0]["reason"], "DisruptionBudget");
    api.get_object(pods, Some("default"), "p")
        .await
        .expect("the pod stays");
}

#[tokio::test]
async fn eviction_waits_for_the_controller_to_see_a_new_generation() {
    let (api, pods) = api_with_running_pod("Running", true).await;
    budget(
        &api,
        "web",
        json!({"minAvailable": 1}),
        json!({"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2,
               "desiredHealthy": 1, "expectedPods": 2}),
    )
    .await;
    let pdbs = info("poddisruptionbudgets");
    api.patch_object(
        pdbs,
        Some("default"),
        "web",
        crate::rest::update::Part::Main,
        PatchType::Merge,
        &json!({"spec": {"minAvailable": 2}}),
        &Default::default(),
    )
    .await
    .expect("spec change");
    assert_eq!(
        stored_budget(&api, "web").await.metadata.generation,
        Some(2)
    );
    let err = evict(&api, pods, false).await.expect_err("refused");
    assert_eq!(err.code, 429);
    let details = err.details.expect("details");
    assert_eq!(details.retry_after_seconds, Some(10));
    assert_eq!(
        details.causes.expect("causes")[0].message.as_deref(),
        Some("The disruption budget web is still being processed by the server.")
    );
}

#[tokio::test]
async fn eviction_spends_the_budget_then_deletes_the_pod() {
    let (api, pods) = api_with_running_pod("Running", true).await;
    budget(
        &api,
        "web",
        json!({"minAvailable": 1}),
        json!({"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2,
               "desiredHealthy": 1, "expectedPods": 2,
               "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
                               "message": "", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}),
    )
    .await;
    // A dry run checks and writes nothing.
    let st = evict(&api, pods, true).await.expect("dry run allowed");
    assert_eq!(st.data["status"], "Success");
    let pdb = stored_budget(&api, "web").await;
    assert_eq!(pdb.data["status"]["disruptionsAllowed"], 1);
    assert!(pdb.data["status"].get("disruptedPods").is_none());
    let pod = api
        .get_object(pods, Some("default"), "p")
        .await
        .expect("pod");
    assert!(pod.metadata.deletion_timestamp.is_none());

    let st = evict(&api, pods, false).await.expect("evicted");
    assert_eq!(st.data["status"], "Success");
    let pdb = stored_budget(&api, "web").await;
    let status = &pdb.data["status"];
    assert_eq!(status["disruptionsAllowed"], 0);
    assert!(status["disruptedPods"]["p"].is_string(), "{status}");
    let cond = &status["conditions"][0];
    assert_eq!(
        (&cond["status"], &cond["reason"]),
        (&json!("False"), &json!("InsufficientPods"))
    );
    assert_ne!(cond["lastTransitionTime"], "2020-01-01T00:00:00Z");
    // On a node: a graceful delete.
    let pod = api
        .get_object(pods, Some("default"), "p")
        .await
        .expect("pod");
    assert!(pod.metadata.deletion_timestamp.is_some());
}

#[tokio::test]
async fn an_unready_pod_goes_without_spending_a_healthy_budget() {
    let (api, pods) = api_with_running_pod("Running", false).await;
    budget(
        &api,
        "web",
        json!({"minAvailable": 1}),
        json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 1,
               "desiredHealthy": 1, "expectedPods": 2}),
    )
    .await;
    evict(&api, pods, false).await.expect("evicted");
    let pdb = stored_budget(&api, "web").await;
    assert!(pdb.data["status"].get("disruptedPods").is_none());

    // A budget short of healthy pods protects even an unready pod, unless AlwaysAllow.
    let (api, pods) = api_with_running_pod("Running", false).await;
    let short = json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 0,
                       "desiredHealthy": 1, "expectedPods": 2});
    budget(&api, "web", json!({"minAvailable": 1}), short.clone()).await;
    assert_eq!(
        evict(&api, pods, false).await.expect_err("refused").code,
        429
    );
    let pdbs = info("poddisruptionbudgets");
    api.delete_object(pdbs, Some("default"), "web", &DeleteParams::default())
        .await
        .expect("delete budget");
    budget(
        &api,
        "web",
        json!({"minAvailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow"}),
        short,
    )
    .await;
    evict(&api, pods, false).await.expect("AlwaysAllow");
}

#[tokio::test]
async fn pending_pods_ignore_budgets_and_two_budgets_are_refused() {
    let (api, pods) = api_with_running_pod("Pending", false).await;
    let none_left = json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 0,
                           "desiredHealthy": 5, "expectedPods": 5});
    budget(&api, "web", json!({"minAvailable": 5}), none_left.clone()).await;
    evict(&api, pods, false)
        .await
        .expect("a pending pod is not protected");

    let (api, pods) = api_with_running_pod("Running", true).await;
    budget(&api, "web", json!({"minAvailable": 1}), none_left.clone()).await;
    budget(&api, "all", json!({"selector": {}}), none_left).await;
    let err = evict(&api, pods, false).await.expect_err("two budgets");
    assert_eq!(err.code, 500);
    assert_eq!(
        err.message,
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
}
