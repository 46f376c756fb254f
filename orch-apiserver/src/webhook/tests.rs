//! Admission and conversion webhooks against an in-process HTTPS webhook server whose
//! certificate an `rcgen` CA signs: a mutating webhook that adds a label, a validating one
//! that denies by a label, one that times out, one that answers garbage, one that warns; and
//! the whole write path through the router.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::admission::{self, Hook, Request};
use super::client::ClientConfig;
use crate::{ApiServer, ApiServerConfig};

/// The test webhook server: its base URL, the CA that signs it, and how often each path was
/// called.
struct Server {
    url: String,
    ca: Vec<u8>,
    calls: Arc<parking_lot::Mutex<BTreeMap<String, usize>>>,
}

impl Server {
    fn calls(&self, path: &str) -> usize {
        self.calls.lock().get(path).copied().unwrap_or(0)
    }
}

/// What the test webhooks answer to a review posted to `path`.
fn answer(path: &str, review: &Value) -> Option<Value> {
    let req = &review["request"];
    let uid = req["uid"].clone();
    let allow = |extra: Value| {
        let mut r = json!({"uid": uid, "allowed": true});
        if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        Some(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": r}))
    };
    match path {
        "/mutate" => {
            let mut labels = req["object"]["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels["mutated"] = "yes".into();
            let patch = json!([{"op": "add", "path": "/metadata/labels", "value": labels}]);
            let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
            allow(
                json!({"patchType": "JSONPatch", "patch": patch, "warnings": ["mutated"],
                "auditAnnotations": {"mutated": "yes"}}),
            )
        }
        "/count" => allow(json!({})),
        "/deny" => {
            let obj = if req["object"].is_null() {
                &req["oldObject"]
            } else {
                &req["object"]
            };
            if obj["metadata"]["labels"]["deny"] == "true" {
                Some(
                    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "response": {"uid": uid, "allowed": false,
                        "status": {"code": 403, "reason": "Forbidden", "message": "label deny is set"}}}),
                )
            } else {
                allow(json!({"warnings": ["checked by deny"]}))
            }
        }
        "/wronguid" => Some(
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "nope", "allowed": true}}),
        ),
        "/convert" => {
            let desired = review["request"]["desiredAPIVersion"].as_str()?.to_string();
            let objects = review["request"]["objects"]
                .as_array()?
                .iter()
                .map(|o| {
                    let mut o = o.clone();
                    let spec = o["spec"].clone();
                    o["spec"] = if desired.ends_with("/v2") {
                        json!({"size": spec["length"]})
                    } else {
                        json!({"length": spec["size"]})
                    };
                    o["apiVersion"] = desired.clone().into();
                    o
                })
                .collect::<Vec<_>>();
            Some(
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                "response": {"uid": review["request"]["uid"], "result": {"status": "Success"},
                    "convertedObjects": objects}}),
            )
        }
        _ => None,
    }
}

async fn serve() -> Server {
    let (ca, cert, key) = crate::test_tls::certificates();
    let acceptor = crate::test_tls::acceptor(cert, key);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let calls: Arc<parking_lot::Mutex<BTreeMap<String, usize>>> = Arc::default();
    let counter = calls.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let counter = counter.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            *counter.lock().entry(path.clone()).or_default() += 1;
                            let body = req.into_body().collect().await?.to_bytes();
                            let review: Value = serde_json::from_slice(&body).unwrap_or_default();
                            let out = match path.as_str() {
                                "/slow" => {
                                    tokio::time::sleep(Duration::from_secs(5)).await;
                                    "{}".to_string()
                                }
                                "/garbage" => "this is not JSON".to_string(),
                                p => answer(p, &review)
                                    .map(|v| v.to_string())
                                    .unwrap_or_default(),
                            };
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(
                                bytes::Bytes::from(out),
                            )))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Server {
        url,
        ca: ca.into_bytes(),
        calls,
    }
}

fn hook(server: &Server, name: &str, path: &str) -> Hook {
    Hook {
        name: name.into(),
        client: ClientConfig {
            url: Some(format!("{}{path}", server.url)),
            service: None,
            ca_bundle: Some(server.ca.clone()),
        },
        rules: vec![serde_json::from_value(json!({
            "operations": ["CREATE", "UPDATE", "DELETE"], "apiGroups": [""],
            "apiVersions": ["v1"], "resources": ["configmaps"]}))
        .expect("rule")],
        ignore_failures: false,
        namespace_selector: None,
        object_selector: None,
        side_effects: "None".into(),
        timeout: Duration::from_secs(10),
        match_conditions: Vec::new(),
        reinvoke_if_needed: false,
    }
}

fn request(op: &'static str) -> Request {
    Request {
        operation: op,
        group: String::new(),
        version: "v1".into(),
        kind: "ConfigMap".into(),
        resource: "configmaps".into(),
        subresource: String::new(),
        namespace: "default".into(),
        name: "cm".into(),
        old_object: None,
        dry_run: false,
        options: json!({"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}),
        namespace_labels: Some(BTreeMap::from([("env".into(), "test".into())])),
        user: crate::auth::current_user(),
    }
}

fn config_map(labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default", "labels": labels}})
}

#[tokio::test]
async fn a_mutating_webhook_patches_the_object() {
    let server = serve().await;
    let mut obj = config_map(json!({"app": "x"}));
    let out = admission::mutate(
        &[hook(&server, "label.example.com", "/mutate")],
        &request("CREATE"),
        Some(&mut obj),
    )
    .await
    .expect("mutate");
    assert!(out.changed);
    assert_eq!(out.warnings, ["mutated"]);
    assert_eq!(
        obj["metadata"]["labels"],
        json!({"app": "x", "mutated": "yes"})
    );
}

#[tokio::test]
async fn a_validating_webhook_denies_with_its_status() {
    let server = serve().await;
    let hooks = [hook(&server, "deny.example.com", "/deny")];
    let e = admission::validate(
        &hooks,
        &request("CREATE"),
        Some(&config_map(json!({"deny": "true"}))),
    )
    .await
    .expect_err("denied");
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        r#"admission webhook "deny.example.com" denied the request: label deny is set"#
    );
    let warnings = admission::validate(
        &hooks,
        &request("CREATE"),
        Some(&config_map(json!({"deny": "false"}))),
    )
    .await
    .expect("allowed");
    assert_eq!(warnings, ["checked by deny"]);
}

#[tokio::test]
async fn failures_obey_the_failure_policy() {
    let server = serve().await;
    let obj = config_map(json!({}));
    let mut slow = hook(&server, "slow.example.com", "/slow");
    slow.timeout = Duration::from_secs(1);
    let garbage = hook(&server, "garbage.example.com", "/garbage");
    let wrong_uid = hook(&server, "uid.example.com", "/wronguid");
    let mut untrusted = hook(&server, "ca.example.com", "/deny");
    untrusted.client.ca_bundle = Some(crate::test_tls::certificates().0.into_bytes());

    let e = admission::validate(std::slice::from_ref(&slow), &request("CREATE"), Some(&obj))
        .await
        .expect_err("timeout fails");
    assert_eq!(e.code, 500);
    assert!(
        e.message.starts_with(&format!(
            r#"Internal error occurred: failed calling webhook "slow.example.com": failed to call webhook: Post "{}/slow?timeout=1s": context deadline exceeded"#,
            server.url
        )),
        "{}",
        e.message
    );
    let e = admission::validate(
        std::slice::from_ref(&garbage),
        &request("CREATE"),
        Some(&obj),
    )
    .await
    .expect_err("garbage fails");
    assert!(
        e.message.contains(
            r#"failed calling webhook "garbage.example.com": received invalid webhook response"#
        ),
        "{}",
        e.message
    );
    let e = admission::validate(
        std::slice::from_ref(&wrong_uid),
        &request("CREATE"),
        Some(&obj),
    )
    .await
    .expect_err("wrong uid fails");
    assert!(
        e.message.contains("expected response.uid="),
        "{}",
        e.message
    );
    let e = admission::validate(
        std::slice::from_ref(&untrusted),
        &request("CREATE"),
        Some(&obj),
    )
    .await
    .expect_err("unknown CA fails");
    assert!(e.message.contains("tls:"), "{}", e.message);

    for mut h in [slow, garbage, wrong_uid, untrusted] {
        h.ignore_failures = true;
        let mut o = obj.clone();
        admission::validate(std::slice::from_ref(&h), &request("CREATE"), Some(&obj))
            .await
            .expect("ignored");
        admission::mutate(std::slice::from_ref(&h), &request("CREATE"), Some(&mut o))
            .await
            .expect("ignored");
        assert_eq!(o, obj);
    }
}

#[tokio::test]
async fn selectors_conditions_and_dry_run_pick_the_webhooks() {
    let server = serve().await;
    let obj = config_map(json!({"deny": "true"}));
    let mut by_ns = hook(&server, "ns.example.com", "/deny");
    by_ns.namespace_selector =
        Some(serde_json::from_value(json!({"matchLabels": {"env": "prod"}})).unwrap());
    let mut by_obj = hook(&server, "obj.example.com", "/deny");
    by_obj.object_selector =
        Some(serde_json::from_value(json!({"matchLabels": {"team": "a"}})).unwrap());
    let mut by_cond = hook(&server, "cond.example.com", "/deny");
    by_cond.match_conditions = vec![serde_json::from_value(json!({
        "name": "not-cm", "expression": "object.metadata.name != 'cm' && request.operation == 'CREATE'"})).unwrap()];
    let hooks = [by_ns, by_obj, by_cond];
    admission::validate(&hooks, &request("CREATE"), Some(&obj))
        .await
        .expect("no webhook matches");
    assert_eq!(server.calls("/deny"), 0);

    let mut unknown = hook(&server, "unknown.example.com", "/deny");
    unknown.side_effects = "Unknown".into();
    let mut dry = request("CREATE");
    dry.dry_run = true;
    let e = admission::validate(&[unknown], &dry, Some(&config_map(json!({}))))
        .await
        .expect_err("no dry run");
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        r#"admission webhook "unknown.example.com" does not support dry run"#
    );
}

#[tokio::test]
async fn if_needed_webhooks_are_reinvoked_after_a_later_change() {
    let server = serve().await;
    let mut first = hook(&server, "a.example.com", "/count");
    first.reinvoke_if_needed = true;
    let second = hook(&server, "b.example.com", "/mutate");
    let mut obj = config_map(json!({}));
    admission::mutate(&[first, second], &request("CREATE"), Some(&mut obj))
        .await
        .expect("mutate");
    assert_eq!(server.calls("/count"), 2);
    assert_eq!(server.calls("/mutate"), 1);
}

#[tokio::test]
async fn conversion_webhooks_convert_both_ways() {
    let server = serve().await;
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(json!({
            "metadata": {"name": "ks.x.io"},
            "spec": {"group": "x.io", "scope": "Namespaced",
                "names": {"plural": "ks", "kind": "K"},
                "versions": [],
                "conversion": {"strategy": "Webhook", "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": {"url": format!("{}/convert", server.url),
                        "caBundle": base64::engine::general_purpose::STANDARD.encode(&server.ca)}}}}
        }))
        .expect("crd");
    let v1 = json!({"apiVersion": "x.io/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {"length": 3}});
    let out = super::conversion::convert(&crd, vec![v1.clone()], "x.io/v2")
        .await
        .expect("convert");
    assert_eq!(out[0]["apiVersion"], "x.io/v2");
    assert_eq!(out[0]["spec"], json!({"size": 3}));
    let back = super::conversion::convert(&crd, out, "x.io/v1")
        .await
        .expect("convert back");
    assert_eq!(back[0], v1);
    assert_eq!(server.calls("/convert"), 2);
}

async fn call(
    api: &Arc<ApiServer>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value, Vec<String>) {
    let body = body.map(|b| serde_json::to_vec(&b).expect("json"));
    let ct = body.as_ref().map(|_| "application/json");
    let a = crate::test_router::send(
        api,
        method,
        path,
        ct,
        "application/json",
        body.map_or_else(Body::empty, Body::from),
    )
    .await;
    (a.status, a.body, a.warnings)
}

#[tokio::test]
async fn the_write_path_calls_the_configured_webhooks() {
    let server = serve().await;
    let api = ApiServer::new(ApiServerConfig::memory()).expect("server");
    let ca = base64::engine::general_purpose::STANDARD.encode(&server.ca);
    let rules = json!([{"operations": ["CREATE", "UPDATE", "DELETE"], "apiGroups": [""],
        "apiVersions": ["v1"], "resources": ["configmaps"]}]);
    // A patch on a DELETE has no object to apply to (upstream: an internal error).
    let mutating_rules = json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": [""],
        "apiVersions": ["v1"], "resources": ["configmaps"]}]);
    let (code, body, _) = call(&api, Method::POST,
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        Some(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "label"},
            "webhooks": [{"name": "label.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "clientConfig": {"url": format!("{}/mutate", server.url), "caBundle": ca}, "rules": mutating_rules}]}))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["webhooks"][0]["failurePolicy"], "Fail");
    let (code, body, _) = call(&api, Method::POST,
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        Some(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "deny"},
            "webhooks": [{"name": "deny.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "clientConfig": {"url": format!("{}/deny", server.url), "caBundle": ca}, "rules": rules}]}))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    // The watch cache serves the configurations to admission.
    for _ in 0..200 {
        if api
            .webhook_configurations::<Value>("validatingwebhookconfigurations")
            .len()
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, body, warnings) = call(
        &api,
        Method::POST,
        cms,
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["metadata"]["labels"]["mutated"], "yes");
    assert_eq!(warnings.len(), 2, "{warnings:?}");

    let (code, body, _) = call(&api, Method::POST, cms,
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "no", "labels": {"deny": "true"}}}))).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        r#"admission webhook "deny.example.com" denied the request: label deny is set"#
    );
    let (code, _, _) = call(&api, Method::GET, &format!("{cms}/no"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "nothing is written");

    // An update that sets the label is denied; a delete goes through the webhooks too.
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok", "labels": {"deny": "true"}}});
    let (code, _, _) = call(&api, Method::PUT, &format!("{cms}/ok"), Some(cm.clone())).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _, _) = call(&api, Method::DELETE, &format!("{cms}/ok"), None).await;
    assert_eq!(code, StatusCode::OK);

    // The configurations themselves are never sent to webhooks.
    cm["metadata"]["name"] = "gone".into();
    let (code, _, _) = call(
        &api,
        Method::DELETE,
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/deny",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn a_failing_webhook_with_fail_writes_nothing() {
    let server = serve().await;
    let api = ApiServer::new(ApiServerConfig::memory()).expect("server");
    let ca = base64::engine::general_purpose::STANDARD.encode(&server.ca);
    let (code, body, _) = call(&api, Method::POST,
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        Some(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "garbage"},
            "webhooks": [{"name": "garbage.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "clientConfig": {"url": format!("{}/garbage", server.url), "caBundle": ca},
                "rules": [{"operations": ["CREATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]}]}))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    for _ in 0..200 {
        if api
            .webhook_configurations::<Value>("validatingwebhookconfigurations")
            .len()
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, body, _) = call(
        &api,
        Method::POST,
        cms,
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})),
    )
    .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["message"].as_str().unwrap_or("").starts_with(
        r#"Internal error occurred: failed calling webhook "garbage.example.com": received invalid webhook response"#), "{body}");
    let (code, _, _) = call(&api, Method::GET, &format!("{cms}/x"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
