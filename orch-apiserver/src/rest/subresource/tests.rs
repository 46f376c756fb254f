//! `pods/ephemeralcontainers` through the router, as kubectl reaches it (upstream
//! `EphemeralContainersREST`): GET is the pod, PUT and every patch type change only
//! `spec.ephemeralContainers`, which may only grow.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use orch_types::client::PostParams;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::server::ApiServer;

const POD: &str = "/api/v1/namespaces/default/pods/p";
const EPHEMERAL: &str = "/api/v1/namespaces/default/pods/p/ephemeralcontainers";
const STRATEGIC: &str = "application/strategic-merge-patch+json";

/// A server with the pod `default/p` (one container `app`, bound to `n1`).
async fn server() -> std::sync::Arc<ApiServer> {
    let api = ApiServer::new(crate::ApiServerConfig::memory()).expect("server");
    let pods = orch_types::registry::by_kind("v1", "Pod").expect("pods");
    let pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "p"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "nginx:1.27"}]}}))
    .expect("pod");
    api.create_object(pods, Some("default"), pod, &PostParams::default())
        .await
        .expect("create");
    api
}

/// One request through the router: (status, JSON body).
async fn call(
    api: &ApiServer,
    method: Method,
    uri: &str,
    content_type: &str,
    body: Value,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(Body::from(serde_json::to_vec(&body).expect("body")))
        .expect("request");
    let resp = api.router().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn names(pod: &Value) -> Vec<&str> {
    pod["spec"]["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

/// The 422's causes as `field: message`.
fn causes(status: &Value) -> Vec<String> {
    status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn dbg(name: &str) -> Value {
    json!({"name": name, "image": "busybox", "command": ["sh", "-c", "echo hi"],
           "targetContainerName": "app", "terminationMessagePolicy": "File", "resources": {}})
}

#[tokio::test]
async fn ephemeral_containers_are_added_through_the_subresource_only() {
    let api = server().await;
    let (code, got) = call(
        &api,
        Method::GET,
        EPHEMERAL,
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!((code, got["kind"].as_str()), (StatusCode::OK, Some("Pod")));

    // kubectl debug: a strategic merge patch computed against the pod. Everything but the
    // ephemeral containers is ignored (here a label and the image).
    let patch = json!({"metadata": {"labels": {"app": "other"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.28"}],
                 "ephemeralContainers": [dbg("dbg")]}});
    let (code, pod) = call(&api, Method::PATCH, EPHEMERAL, STRATEGIC, patch).await;
    assert_eq!(code, StatusCode::OK, "{pod}");
    assert_eq!(names(&pod), ["dbg"]);
    assert_eq!(pod["metadata"]["labels"]["app"], "p");
    assert_eq!(pod["spec"]["containers"][0]["image"], "nginx:1.27");
    // Defaulted as any pod's containers.
    assert_eq!(
        pod["spec"]["ephemeralContainers"][0]["imagePullPolicy"],
        "Always"
    );
    // The pod's other admission (DefaultTolerationSeconds added two tolerations on create)
    // is not in the way.
    assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(2));

    // Strategic merge by name: a second one joins the first (kubectl's two-way patch names
    // the order).
    let patch = json!({"spec": {
        "$setElementOrder/ephemeralContainers": [{"name": "dbg"}, {"name": "dbg2"}],
        "ephemeralContainers": [dbg("dbg2")]}});
    let (code, pod) = call(&api, Method::PATCH, EPHEMERAL, STRATEGIC, patch).await;
    assert_eq!((code, names(&pod)), (StatusCode::OK, vec!["dbg", "dbg2"]));

    // PUT of the pod with a third one (what an update of the subresource sends).
    let (_, mut current) = call(
        &api,
        Method::GET,
        EPHEMERAL,
        "application/json",
        Value::Null,
    )
    .await;
    current["spec"]["ephemeralContainers"]
        .as_array_mut()
        .expect("list")
        .push(dbg("dbg3"));
    let (code, pod) = call(&api, Method::PUT, EPHEMERAL, "application/json", current).await;
    assert_eq!(
        (code, names(&pod)),
        (StatusCode::OK, vec!["dbg", "dbg2", "dbg3"])
    );

    // Removing or changing one is refused with upstream's messages.
    let (code, status) = call(
        &api,
        Method::PATCH,
        EPHEMERAL,
        "application/json-patch+json",
        json!([{"op": "remove", "path": "/spec/ephemeralContainers/0"}]),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(causes(&status), ["spec.ephemeralContainers: Forbidden: existing ephemeral containers \"dbg\" may not be removed\n"]);
    let (code, status) = call(
        &api,
        Method::PATCH,
        EPHEMERAL,
        "application/json-patch+json",
        json!([{"op": "replace", "path": "/spec/ephemeralContainers/1/image", "value": "alpine"}]),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(causes(&status), ["spec.ephemeralContainers: Forbidden: existing ephemeral containers \"dbg2\" may not be changed\n-image: \"busybox\"\n+image: \"alpine\"\n"]);

    // A merge patch replaces the list: the old entries must be in it.
    let (code, status) = call(
        &api,
        Method::PATCH,
        EPHEMERAL,
        "application/merge-patch+json",
        json!({"spec": {"ephemeralContainers": [dbg("dbg4")]}}),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(causes(&status).len(), 3, "{status}");

    // Fields an ephemeral container may not set; a name already taken. (Without
    // `$setElementOrder` a strategic merge puts the new entry first, as upstream's
    // `normalizeElementOrder`.)
    let mut bad = dbg("app");
    bad["ports"] = json!([{"containerPort": 80}]);
    bad["readinessProbe"] = json!({"exec": {"command": ["true"]}});
    let (code, status) = call(
        &api,
        Method::PATCH,
        EPHEMERAL,
        STRATEGIC,
        json!({"spec": {"ephemeralContainers": [bad]}}),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(causes(&status), [
        "spec.ephemeralContainers[0].name: Duplicate value: \"app\"",
        "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
        "spec.ephemeralContainers[0].readinessProbe: Forbidden: cannot be set for an Ephemeral Container",
    ]);
    let (_, pod) = call(&api, Method::GET, POD, "application/json", Value::Null).await;
    assert_eq!(
        names(&pod),
        ["dbg", "dbg2", "dbg3"],
        "nothing written by refused writes"
    );
}

#[tokio::test]
async fn the_pod_itself_cannot_touch_ephemeral_containers() {
    let api = server().await;
    // Through the main resource: the pod update rules refuse it.
    let (code, status) = call(
        &api,
        Method::PATCH,
        POD,
        STRATEGIC,
        json!({"spec": {"ephemeralContainers": [dbg("dbg")]}}),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let msg = causes(&status).join("\n");
    assert!(
        msg.starts_with("spec: Forbidden: pod updates may not change fields other than"),
        "{msg}"
    );
    // Nor created with them.
    let (code, status) = call(
        &api,
        Method::POST,
        "/api/v1/namespaces/default/pods",
        "application/json",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"},
               "spec": {"containers": [{"name": "app", "image": "nginx"}],
                        "ephemeralContainers": [dbg("dbg")]}}),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        causes(&status),
        ["spec.ephemeralContainers: Forbidden: cannot be set on create"]
    );
    // A pod with ephemeral containers still takes ordinary updates of its main resource.
    let (code, _) = call(
        &api,
        Method::PATCH,
        EPHEMERAL,
        STRATEGIC,
        json!({"spec": {"ephemeralContainers": [dbg("dbg")]}}),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let (code, pod) = call(
        &api,
        Method::PATCH,
        POD,
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"debugged": "yes"}}}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{pod}");
    assert_eq!(names(&pod), ["dbg"]);
    // Other kinds have no such subresource; pods do not take DELETE or POST on it.
    let (code, _) = call(
        &api,
        Method::GET,
        "/apis/apps/v1/namespaces/default/deployments/d/ephemeralcontainers",
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = call(
        &api,
        Method::DELETE,
        EPHEMERAL,
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn discovery_lists_the_subresource() {
    let api = server().await;
    let (_, list) = call(
        &api,
        Method::GET,
        "/api/v1",
        "application/json",
        Value::Null,
    )
    .await;
    let entry = list["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "pods/ephemeralcontainers")
        .expect("pods/ephemeralcontainers in /api/v1");
    assert_eq!(entry["kind"], "Pod");
    assert_eq!(entry["namespaced"], true);
    assert_eq!(entry["verbs"], json!(["get", "patch", "update"]));
}
