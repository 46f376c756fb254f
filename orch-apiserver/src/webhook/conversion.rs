//! Conversion webhooks of CustomResourceDefinitions (`spec.conversion.strategy: Webhook`):
//! an `apiextensions.k8s.io/v1` ConversionReview posted over [`super::client`], as upstream's
//! `apiextensions-apiserver/pkg/apiserver/conversion/webhook_converter.go`.
//!
//! Objects already at the desired version are not sent; the others go in one review. What the
//! webhook returns is checked as upstream checks it: as many objects as sent, each of the
//! desired `apiVersion` and the same kind, and of the metadata only labels and annotations
//! may change (the rest is restored from the object sent; a changed name, namespace or uid is
//! an error).

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use orch_types::ApiError;
use serde_json::{json, Value};

use super::client::{post_json, ClientConfig};

/// How long a conversion webhook may take (upstream's fixed 30 seconds).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `crd` converts between versions through a webhook.
pub fn uses_webhook(crd: &CustomResourceDefinition) -> bool {
    crd.spec
        .conversion
        .as_ref()
        .is_some_and(|c| c.strategy == "Webhook")
}

/// Upstream's message of a failed conversion: `conversion webhook for <gvk> failed: <why>`.
fn failed(api_version: &str, kind: &str, why: impl std::fmt::Display) -> ApiError {
    let gvk = match api_version.split_once('/') {
        Some((g, v)) => format!("{g}/{v}, Kind={kind}"),
        None => format!("/{api_version}, Kind={kind}"),
    };
    ApiError::internal(format!("conversion webhook for {gvk} failed: {why}"))
}

/// Converts `objects` (of `crd`'s kind, any served version) to `desired` (`group/version`)
/// through the CRD's conversion webhook.
pub async fn convert(
    crd: &CustomResourceDefinition,
    objects: Vec<Value>,
    desired: &str,
) -> Result<Vec<Value>, ApiError> {
    let kind = crd.spec.names.kind.as_str();
    let pending: Vec<usize> = objects
        .iter()
        .enumerate()
        .filter(|(_, o)| o["apiVersion"].as_str() != Some(desired))
        .map(|(i, _)| i)
        .collect();
    if pending.is_empty() {
        return Ok(objects);
    }
    let first_version = objects[pending[0]]["apiVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let fail = |why: String| failed(&first_version, kind, why);
    let webhook = crd
        .spec
        .conversion
        .as_ref()
        .and_then(|c| c.webhook.as_ref())
        .ok_or_else(|| fail("spec.conversion.webhook is not set".into()))?;
    let versions = webhook.conversion_review_versions.as_slice();
    if !versions.iter().any(|v| v == "v1") {
        return Err(fail(format!(
            "none of the conversionReviewVersions {versions:?} is supported (orch speaks v1)"
        )));
    }
    let cfg = webhook
        .client_config
        .as_ref()
        .map(ClientConfig::from)
        .ok_or_else(|| fail("spec.conversion.webhook.clientConfig is not set".into()))?;
    let uid = uuid::Uuid::new_v4().to_string();
    let sent: Vec<Value> = pending.iter().map(|i| objects[*i].clone()).collect();
    let review = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": sent},
    });
    let answer = post_json(&cfg, &review, TIMEOUT)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let converted = check_response(&answer, &uid, &sent, desired, kind).map_err(fail)?;
    let mut out = objects;
    for (i, obj) in pending.into_iter().zip(converted) {
        out[i] = obj;
    }
    Ok(out)
}

/// Upstream's checks of a ConversionReview response; returns the converted objects with
/// their metadata restored but for labels and annotations.
fn check_response(
    answer: &Value,
    uid: &str,
    sent: &[Value],
    desired: &str,
    kind: &str,
) -> Result<Vec<Value>, String> {
    let api_version = answer["apiVersion"].as_str().unwrap_or("");
    let answer_kind = answer["kind"].as_str().unwrap_or("");
    if api_version != "apiextensions.k8s.io/v1" || answer_kind != "ConversionReview" {
        return Err(format!(
            "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got {api_version}, Kind={answer_kind}"
        ));
    }
    let r = answer
        .get("response")
        .filter(|r| r.is_object())
        .ok_or("no response provided")?;
    let got = r["uid"].as_str().unwrap_or("");
    if got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    if r["result"]["status"].as_str() != Some("Success") {
        let msg = r["result"]["message"].as_str().unwrap_or("");
        return Err(if msg.is_empty() {
            "conversion failed without a message".to_string()
        } else {
            msg.to_string()
        });
    }
    let converted = r["convertedObjects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if converted.len() != sent.len() {
        return Err(format!(
            "returned {} objects, expected {}",
            converted.len(),
            sent.len()
        ));
    }
    let mut out = Vec::with_capacity(converted.len());
    for (i, (mut c, orig)) in converted.into_iter().zip(sent).enumerate() {
        let av = c["apiVersion"].as_str().unwrap_or("");
        if av != desired {
            return Err(format!(
                "invalid converted object at index {i}: invalid apiVersion {av:?}, expected {desired:?}"
            ));
        }
        let k = c["kind"].as_str().unwrap_or("");
        if k != kind {
            return Err(format!(
                "invalid converted object at index {i}: invalid kind {k:?}, expected {kind:?}"
            ));
        }
        restore_metadata(&mut c, orig)
            .map_err(|e| format!("invalid metadata of converted object at index {i}: {e}"))?;
        out.push(c);
    }
    Ok(out)
}

/// Upstream `restoreObjectMeta`: the original metadata with the converted labels and
/// annotations; a changed name, namespace or uid is refused.
fn restore_metadata(converted: &mut Value, orig: &Value) -> Result<(), String> {
    let new_meta = converted.get("metadata").cloned().unwrap_or(json!({}));
    for field in ["name", "namespace", "uid"] {
        if new_meta.get(field).is_some() && new_meta.get(field) != orig["metadata"].get(field) {
            return Err(format!("must not change metadata.{field}"));
        }
    }
    let mut meta = orig.get("metadata").cloned().unwrap_or(json!({}));
    if let Some(m) = meta.as_object_mut() {
        for field in ["labels", "annotations"] {
            match new_meta.get(field) {
                Some(v) if !v.is_null() => {
                    m.insert(field.into(), v.clone());
                }
                _ => {
                    m.remove(field);
                }
            }
        }
    }
    converted["metadata"] = meta;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_checked_as_upstream() {
        let sent = vec![json!({"apiVersion": "x.io/v1", "kind": "K",
            "metadata": {"name": "a", "uid": "u1", "resourceVersion": "5"}, "spec": {"old": 1}})];
        let ok = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": "id", "result": {"status": "Success"}, "convertedObjects": [
                {"apiVersion": "x.io/v2", "kind": "K", "metadata": {"name": "a", "labels": {"l": "v"}},
                 "spec": {"new": 1}}]}});
        let out = check_response(&ok, "id", &sent, "x.io/v2", "K").unwrap();
        assert_eq!(out[0]["spec"], json!({"new": 1}));
        assert_eq!(out[0]["metadata"]["resourceVersion"], "5");
        assert_eq!(out[0]["metadata"]["labels"], json!({"l": "v"}));

        let mut bad = ok.clone();
        bad["response"]["uid"] = "other".into();
        assert_eq!(
            check_response(&bad, "id", &sent, "x.io/v2", "K").unwrap_err(),
            r#"expected response.uid="id", got "other""#
        );
        let mut bad = ok.clone();
        bad["response"]["convertedObjects"][0]["apiVersion"] = "x.io/v1".into();
        assert!(check_response(&bad, "id", &sent, "x.io/v2", "K")
            .unwrap_err()
            .contains("invalid apiVersion"));
        let mut bad = ok.clone();
        bad["response"]["convertedObjects"][0]["metadata"]["name"] = "b".into();
        assert!(check_response(&bad, "id", &sent, "x.io/v2", "K")
            .unwrap_err()
            .contains("must not change metadata.name"));
        let mut bad = ok;
        bad["response"]["result"] = json!({"status": "Failure", "message": "nope"});
        assert_eq!(
            check_response(&bad, "id", &sent, "x.io/v2", "K").unwrap_err(),
            "nope"
        );
    }
}
