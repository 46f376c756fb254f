//! TokenRequest through the router and the authenticator on what it issued.

use crate::test_router::call;
use crate::{ApiServer, ApiServerConfig};
use axum::http::{Method, StatusCode};
use orch_types::clock::ManualClock;
use serde_json::{json, Value};
use std::sync::Arc;

const T0: &str = "2026-01-01T00:00:00Z";

async fn server() -> (Arc<ApiServer>, ManualClock) {
    let clock = ManualClock::new(T0.parse().unwrap());
    let api =
        ApiServer::new(ApiServerConfig::memory().with_clock(Arc::new(clock.clone()))).unwrap();
    for ns in ["a", "b"] {
        let (s, _) = call(
            &api,
            Method::POST,
            "/api/v1/namespaces",
            Some(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        for sa in ["default", "build"] {
            let (s, _) = call(
                &api,
                Method::POST,
                &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
                Some(
                    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}}),
                ),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED);
        }
    }
    let (s, _) = call(&api, Method::POST, "/api/v1/namespaces/a/pods", Some(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"serviceAccountName": "default", "containers": [{"name": "c", "image": "busybox"}]}}))).await;
    assert_eq!(s, StatusCode::CREATED);
    (api, clock)
}

async fn token(api: &Arc<ApiServer>, ns: &str, sa: &str, spec: Value) -> (StatusCode, Value) {
    call(
        api,
        Method::POST,
        &format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"),
        Some(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})),
    )
    .await
}

fn pod_ref(name: &str) -> Value {
    json!({"kind": "Pod", "apiVersion": "v1", "name": name})
}

#[tokio::test]
async fn a_token_request_answers_a_token_that_authenticates() {
    let (api, _) = server().await;
    let (s, body) = token(&api, "a", "default", json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["kind"], "TokenRequest");
    assert_eq!(body["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        body["spec"]["audiences"],
        json!([crate::serviceaccount::DEFAULT_ISSUER])
    );
    assert_eq!(
        body["status"]["expirationTimestamp"],
        "2026-01-01T01:00:00Z"
    );
    let t = body["status"]["token"].as_str().unwrap();
    let user = api
        .authenticate_service_account_token(t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:a:default")
    );
    assert_eq!(
        user.groups.unwrap(),
        [
            "system:serviceaccounts",
            "system:serviceaccounts:a",
            "system:authenticated"
        ]
    );
    let sa = api
        .get_object(
            orch_types::registry::by_kind("v1", "ServiceAccount").unwrap(),
            Some("a"),
            "default",
        )
        .await
        .unwrap();
    assert_eq!(user.uid, sa.metadata.uid);
    // Not a service-account token at all: another authenticator's business.
    assert!(api
        .authenticate_service_account_token("abc")
        .await
        .is_none());
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (api, clock) = server().await;
    let (_, body) = token(&api, "a", "default", json!({"expirationSeconds": 600})).await;
    let t = body["status"]["token"].as_str().unwrap().to_string();
    clock.advance(std::time::Duration::from_secs(600 + 61));
    let e = api
        .authenticate_service_account_token(&t)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e, "service account token has expired");
}

#[tokio::test]
async fn a_pod_bound_token_dies_with_its_pod_and_its_service_account() {
    let (api, _) = server().await;
    let (s, body) = token(
        &api,
        "a",
        "default",
        json!({"boundObjectRef": pod_ref("web")}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert!(body["spec"]["boundObjectRef"]["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));
    let t = body["status"]["token"].as_str().unwrap().to_string();
    let user = api
        .authenticate_service_account_token(&t)
        .await
        .unwrap()
        .unwrap();
    let extra = user.extra.unwrap();
    assert_eq!(
        extra[crate::serviceaccount::claims::extra::POD_NAME],
        ["web"]
    );
    let (s, _) = call(
        &api,
        Method::DELETE,
        "/api/v1/namespaces/a/pods/web?gracePeriodSeconds=0",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let e = api
        .authenticate_service_account_token(&t)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e, "pod a/web has been deleted");

    let (_, body) = token(&api, "b", "build", json!({})).await;
    let t = body["status"]["token"].as_str().unwrap().to_string();
    let (s, _) = call(
        &api,
        Method::DELETE,
        "/api/v1/namespaces/b/serviceaccounts/build",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let e = api
        .authenticate_service_account_token(&t)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e, "service account b/build has been deleted");
}

#[tokio::test]
async fn bad_token_requests_get_upstreams_errors() {
    let (api, _) = server().await;
    // A missing service account.
    let (s, body) = token(&api, "a", "nobody", json!({})).await;
    assert_eq!(
        (s, body["reason"].as_str()),
        (StatusCode::NOT_FOUND, Some("NotFound"))
    );
    // A pod of another namespace: looked up in the service account's, so not found.
    let (s, body) = token(
        &api,
        "b",
        "default",
        json!({"boundObjectRef": pod_ref("web")}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["message"], "pods \"web\" not found");
    // A pod running as another service account.
    let (s, body) = token(
        &api,
        "a",
        "build",
        json!({"boundObjectRef": pod_ref("web")}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["message"],
        "cannot bind token for serviceaccount \"build\" to pod running with different serviceaccount name."
    );
    // A stale UID.
    let mut stale = pod_ref("web");
    stale["uid"] = json!("not-the-uid");
    let (s, body) = token(&api, "a", "default", json!({"boundObjectRef": stale})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    // An unsupported kind.
    let (s, body) = token(
        &api,
        "a",
        "default",
        json!({"boundObjectRef": {
        "kind": "Deployment", "apiVersion": "apps/v1", "name": "x"}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "cannot bind token to object of type apps/v1, Kind=Deployment"
    );
    // Too short a lifetime.
    let (s, body) = token(&api, "a", "default", json!({"expirationSeconds": 599})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "spec.expirationSeconds"
    );
}

#[tokio::test]
async fn the_token_subresource_is_in_discovery() {
    let (api, _) = server().await;
    let (_, body) = call(&api, Method::GET, "/api/v1", None).await;
    let token = body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "serviceaccounts/token")
        .expect("serviceaccounts/token");
    assert_eq!(
        (
            &token["group"],
            &token["version"],
            &token["kind"],
            &token["verbs"]
        ),
        (
            &json!("authentication.k8s.io"),
            &json!("v1"),
            &json!("TokenRequest"),
            &json!(["create"])
        )
    );
}

#[tokio::test]
async fn admission_sets_the_account_mounts_the_token_and_refuses_missing_accounts() {
    let config = ApiServerConfig {
        service_account_admission: true,
        ..ApiServerConfig::memory()
    };
    let api = ApiServer::new(config).unwrap();
    let pod = |name: &str, sa: Option<&str>| {
        let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
        if let Some(sa) = sa {
            spec["serviceAccountName"] = json!(sa);
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
    };
    // No `default` account (no controller here): refused after the retries.
    let (s, body) = call(
        &api,
        Method::POST,
        "/api/v1/namespaces/default/pods",
        Some(pod("a", None)),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "pods \"a\" is forbidden: service account default/default was not found, retry after the service account is created"
    );
    for sa in ["default", "other"] {
        let (s, _) = call(
            &api,
            Method::POST,
            "/api/v1/namespaces/default/serviceaccounts",
            Some(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, body) = call(
        &api,
        Method::POST,
        "/api/v1/namespaces/default/pods",
        Some(pod("a", None)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["spec"]["serviceAccountName"], "default");
    let volume = body["spec"]["volumes"][0]["name"].as_str().unwrap();
    assert!(volume.starts_with("kube-api-access-"), "{volume}");
    assert_eq!(
        body["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    // The account cannot be changed afterwards.
    let mut changed = body.clone();
    changed["spec"]["serviceAccountName"] = json!("other");
    let (s, _) = call(
        &api,
        Method::PUT,
        "/api/v1/namespaces/default/pods/a",
        Some(changed),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}
