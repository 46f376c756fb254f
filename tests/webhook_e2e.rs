//! Admission and conversion webhooks with real kubectl against `orch apiserver`, and a tiny
//! HTTPS webhook server written here (tokio + rustls, a certificate signed by an `rcgen` CA
//! given to the API server as `caBundle`): a MutatingWebhookConfiguration that labels new
//! ConfigMaps, a ValidatingWebhookConfiguration that denies ConfigMaps labelled `deny=true`,
//! and a CRD with two versions whose conversion webhook renames a field, read at both.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::{wait_for, Split, TestEnv};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The webhooks' answers to a review posted to `path`.
fn answer(path: &str, review: &Value) -> Value {
    let req = &review["request"];
    match path {
        "/mutate" => {
            let mut labels = req["object"]["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels["mutated"] = "yes".into();
            // Who asked, as the API server authenticated them (`request.userInfo`).
            labels["requested-by"] = req["userInfo"]["username"].clone();
            let patch = json!([{"op": "add", "path": "/metadata/labels", "value": labels}]);
            let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": req["uid"], "allowed": true, "patchType": "JSONPatch",
                    "patch": patch, "warnings": ["labelled by the test webhook"]}})
        }
        "/validate" => {
            let denied = req["object"]["metadata"]["labels"]["deny"] == "true";
            let mut response = json!({"uid": req["uid"], "allowed": !denied});
            if denied {
                response["status"] = json!({"code": 403, "reason": "Forbidden",
                    "message": "label deny is set"});
            }
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": response})
        }
        "/convert" => {
            let desired = req["desiredAPIVersion"].as_str().unwrap_or("").to_string();
            let objects: Vec<Value> = req["objects"]
                .as_array()
                .into_iter()
                .flatten()
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
                .collect();
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                "response": {"uid": req["uid"], "result": {"status": "Success"},
                    "convertedObjects": objects}})
        }
        _ => json!({}),
    }
}

/// Reads one HTTP/1.1 request (headers and a Content-Length body): its path and body.
async fn read_request<S: AsyncReadExt + Unpin>(s: &mut S) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head
        .split_whitespace()
        .nth(1)?
        .split('?')
        .next()?
        .to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, body))
}

/// Starts the webhook server on `rt`; returns its base URL and the CA PEM.
fn serve(rt: &tokio::runtime::Runtime) -> (String, String) {
    let (ca, cert, key) = common::tls::certificates();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                while let Some((path, body)) = read_request(&mut tls).await {
                    let review: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let out = answer(&path, &review).to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{out}",
                        out.len()
                    );
                    if tls.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                    let _ = tls.flush().await;
                }
            });
        }
    });
    (url, ca)
}

#[test]
fn admission_and_conversion_webhooks_with_kubectl() {
    let env = TestEnv::new();
    let _api = Split::apiserver(&env);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (url, ca) = serve(&rt);
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);

    let rules = json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": [""],
        "apiVersions": ["v1"], "resources": ["configmaps"]}]);
    env.apply(
        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "label"},
            "webhooks": [{"name": "label.example.com", "sideEffects": "None",
                "admissionReviewVersions": ["v1"], "rules": rules,
                "objectSelector": {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]},
                "clientConfig": {"url": format!("{url}/mutate"), "caBundle": ca}}]})
        .to_string(),
    );
    env.apply(
        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "deny"},
            "webhooks": [{"name": "deny.example.com", "sideEffects": "None",
                "admissionReviewVersions": ["v1"], "rules": rules, "timeoutSeconds": 5,
                "clientConfig": {"url": format!("{url}/validate"), "caBundle": ca}}]})
        .to_string(),
    );
    let listed = env.kubectl(&["get", "validatingwebhookconfigurations"]);
    assert!(
        listed.contains("WEBHOOKS") && listed.contains("deny"),
        "{listed}"
    );
    let hook = env
        .get_json(&["mutatingwebhookconfiguration", "label"])
        .expect("get");
    assert_eq!(hook["webhooks"][0]["failurePolicy"], "Fail");
    assert_eq!(hook["webhooks"][0]["timeoutSeconds"], 10);

    // An invalid configuration is refused with its causes.
    let bad = env.path().join("bad.json");
    std::fs::write(
        &bad,
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "bad"},
            "webhooks": [{"name": "bad", "sideEffects": "Some", "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 60, "clientConfig": {"url": "http://127.0.0.1/"}}]})
        .to_string(),
    )
    .expect("write");
    let err = env
        .kubectl_try(&["create", "-f", bad.to_str().expect("utf-8")])
        .expect_err("invalid configuration");
    assert!(
        err.contains("the timeout value must be between 1 and 30 seconds")
            && err.contains("'https' is the only allowed URL scheme"),
        "{err}"
    );

    // The mutating webhook labels a new ConfigMap, and its warning reaches kubectl.
    let out = env.kubectl_raw(&["create", "configmap", "plain", "--from-literal=a=b"]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: labelled by the test webhook"),
        "{stderr}"
    );
    let cm = env.get_json(&["configmap", "plain"]).expect("get");
    assert_eq!(cm["metadata"]["labels"]["mutated"], "yes");
    assert_eq!(
        cm["metadata"]["labels"]["requested-by"], "kubernetes-admin",
        "the webhook is told who asked: {cm}"
    );

    // The validating webhook denies by label; nothing is written.
    let denied = env.path().join("denied.json");
    std::fs::write(
        &denied,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "denied", "labels": {"deny": "true", "skip": "1"}}})
        .to_string(),
    )
    .expect("write");
    let err = env
        .kubectl_try(&["apply", "-f", denied.to_str().expect("utf-8")])
        .expect_err("denied");
    assert!(
        err.contains(
            r#"admission webhook "deny.example.com" denied the request: label deny is set"#
        ),
        "{err}"
    );
    assert!(env.get_json(&["configmap", "denied"]).is_err());

    // A CRD with two versions and a conversion webhook.
    let schema = |field: &str| {
        json!({"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": {field: {"type": "integer"}}}}}})
    };
    env.apply(
        &json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "schema": schema("length")},
                    {"name": "v2", "served": true, "storage": false, "schema": schema("size")}],
                "conversion": {"strategy": "Webhook", "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": {"url": format!("{url}/convert"), "caBundle": ca}}}}})
        .to_string(),
    );
    wait_for("widgets to be served", Duration::from_secs(20), || {
        env.kubectl_try(&["get", "widgets.v2.example.com"])
    });
    env.apply(
        &json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "one"}, "spec": {"length": 3}})
        .to_string(),
    );
    env.apply(
        &json!({"apiVersion": "example.com/v2", "kind": "Widget",
            "metadata": {"name": "two"}, "spec": {"size": 5}})
        .to_string(),
    );
    let v2 = env
        .get_json(&["widgets.v2.example.com", "one"])
        .expect("get v2");
    assert_eq!(v2["apiVersion"], "example.com/v2");
    assert_eq!(v2["spec"], json!({"size": 3}));
    let v1 = env
        .get_json(&["widgets.v1.example.com", "two"])
        .expect("get v1");
    assert_eq!(v1["apiVersion"], "example.com/v1");
    assert_eq!(v1["spec"], json!({"length": 5}));
    let list = env.get_items(&["widgets.v2.example.com"]).expect("list v2");
    let sizes: Vec<&Value> = list.iter().map(|w| &w["spec"]["size"]).collect();
    assert_eq!(sizes, [&json!(3), &json!(5)]);
}
