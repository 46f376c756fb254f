//! The CertificateSigningRequest strategy (upstream
//! `pkg/registry/certificates/certificates/strategy.go`): what the server sets and keeps on
//! each write path. Validation is orch-types' `validation::certificates`.
//!
//! - Create: `spec.username`, `uid`, `groups` and `extra` are the requesting user's
//!   ([`crate::auth::current_user`]), whatever the body says; the status starts empty.
//! - The main resource: the spec is immutable and the status is the stored one.
//! - `/status`: the stored spec; the Approved and Denied conditions stay as stored.
//! - `/approval`: the stored spec and certificate; the client's conditions.
//!
//! On both subresources a condition without `lastUpdateTime` / `lastTransitionTime` gets now.

use crate::rest::update::Part;
use crate::rest::Resource;
use orch_types::DynamicObject;
use serde_json::{json, Map, Value};

/// Whether `info` is certificates.k8s.io CertificateSigningRequest.
pub fn is_csr(info: Resource) -> bool {
    info.group == "certificates.k8s.io" && info.kind == "CertificateSigningRequest"
}

/// PrepareForCreate: the requestor's identity into the spec, no status.
pub fn prepare_create(obj: &mut DynamicObject) {
    let user = crate::auth::current_user();
    let Some(spec) = obj
        .data
        .entry("spec")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    for field in ["username", "uid", "groups", "extra"] {
        spec.shift_remove(field);
    }
    if let Some(u) = user.username.as_deref().filter(|u| !u.is_empty()) {
        spec.insert("username".into(), json!(u));
    }
    if let Some(uid) = user.uid.as_deref().filter(|u| !u.is_empty()) {
        spec.insert("uid".into(), json!(uid));
    }
    if let Some(g) = user.groups.as_ref().filter(|g| !g.is_empty()) {
        spec.insert("groups".into(), json!(g));
    }
    if let Some(extra) = user.extra.as_ref().filter(|e| !e.is_empty()) {
        spec.insert("extra".into(), json!(extra));
    }
    obj.data.insert("status".into(), json!({}));
}

fn conditions(o: &DynamicObject) -> Vec<Value> {
    o.data
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn status_mut(o: &mut DynamicObject) -> Option<&mut Map<String, Value>> {
    o.data
        .entry("status")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

fn set_conditions(o: &mut DynamicObject, conds: Vec<Value>) {
    if let Some(s) = status_mut(o) {
        if conds.is_empty() {
            s.shift_remove("conditions");
        } else {
            s.insert("conditions".into(), Value::Array(conds));
        }
    }
}

fn type_of(c: &Value) -> &str {
    c.get("type").and_then(Value::as_str).unwrap_or("")
}

/// PrepareForUpdate of `part` (after the generic restriction to the part): see the module doc.
/// `now` is the RFC 3339 time given to conditions without timestamps.
pub fn prepare_update(part: Part, old: &DynamicObject, new: &mut DynamicObject, now: &str) {
    match old.data.get("spec") {
        Some(s) => new.data.insert("spec".into(), s.clone()),
        None => new.data.shift_remove("spec"),
    };
    match part {
        Part::Status => {
            // Upstream `preserveConditionInstances`: when the number of Approved (Denied)
            // conditions is unchanged, they keep their stored values; a different number is
            // left for validation to refuse.
            let mut conds = conditions(new);
            let stored = conditions(old);
            for t in ["Approved", "Denied"] {
                let old_of: Vec<&Value> = stored.iter().filter(|c| type_of(c) == t).collect();
                let new_at: Vec<usize> = (0..conds.len())
                    .filter(|&i| type_of(&conds[i]) == t)
                    .collect();
                if old_of.len() == new_at.len() {
                    for (i, o) in new_at.into_iter().zip(old_of) {
                        conds[i] = o.clone();
                    }
                }
            }
            stamp(&mut conds, now);
            set_conditions(new, conds);
        }
        Part::Approval => {
            let mut conds = conditions(new);
            stamp(&mut conds, now);
            let certificate = old
                .data
                .get("status")
                .and_then(|s| s.get("certificate"))
                .cloned();
            set_conditions(new, conds);
            if let Some(s) = status_mut(new) {
                match certificate {
                    Some(c) => s.insert("certificate".into(), c),
                    None => s.shift_remove("certificate"),
                };
            }
        }
        Part::Main | Part::Finalize | Part::EphemeralContainers => {}
    }
}

/// Upstream `populateConditionTimestamps`.
fn stamp(conds: &mut [Value], now: &str) {
    for c in conds.iter_mut().filter_map(Value::as_object_mut) {
        for f in ["lastUpdateTime", "lastTransitionTime"] {
            if c.get(f).is_none_or(Value::is_null) {
                c.insert(f.into(), json!(now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(status: Value) -> DynamicObject {
        DynamicObject::from_value(json!({
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "c"},
            "spec": {"request": "UkVR", "signerName": "example.com/s", "usages": ["client auth"],
                     "username": "alice"},
            "status": status}))
        .unwrap()
    }

    #[test]
    fn approval_keeps_spec_and_certificate_and_stamps_new_conditions() {
        let old = csr(json!({"certificate": "Q0VSVA=="}));
        let mut new = csr(json!({"conditions": [{"type": "Approved", "status": "True"}]}));
        new.data["spec"]["username"] = json!("mallory");
        prepare_update(Part::Approval, &old, &mut new, "2025-01-01T00:00:00Z");
        assert_eq!(new.data["spec"]["username"], "alice");
        assert_eq!(new.data["status"]["certificate"], "Q0VSVA==");
        assert_eq!(
            new.data["status"]["conditions"][0]["lastUpdateTime"],
            "2025-01-01T00:00:00Z"
        );
    }

    #[test]
    fn status_writes_keep_stored_approval_conditions() {
        let approved = json!({"type": "Approved", "status": "True", "reason": "R",
                              "lastUpdateTime": "2024-01-01T00:00:00Z",
                              "lastTransitionTime": "2024-01-01T00:00:00Z"});
        let old = csr(json!({"conditions": [approved]}));
        let mut new = csr(
            json!({"conditions": [{"type": "Approved", "status": "True", "reason": "Other"}],
                                 "certificate": "Q0VSVA=="}),
        );
        prepare_update(Part::Status, &old, &mut new, "2025-01-01T00:00:00Z");
        assert_eq!(new.data["status"]["conditions"][0], approved);
        assert_eq!(new.data["status"]["certificate"], "Q0VSVA==");
    }

    fn request_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
    }

    #[tokio::test]
    async fn the_api_sets_the_requestor_and_keeps_each_part_to_its_path() {
        use base64::Engine;
        use orch_types::client::{Patch, PatchParams, PostParams};
        let api = crate::ApiServer::new(crate::ApiServerConfig::memory()).unwrap();
        let client = api.client();
        let r = orch_types::registry::by_name("csr")[0].api_resource();
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = DynamicObject::from_value(json!({
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "c"},
            "spec": {"request": b64.encode(request_pem()), "signerName": "example.com/s",
                     "usages": ["client auth"], "username": "mallory"},
            "status": {"conditions": [{"type": "Approved", "status": "True"}]}}))
        .unwrap();
        let created = client
            .create(&r, None, &body, &PostParams::default())
            .await
            .unwrap();
        assert_eq!(created.data["spec"]["username"], crate::auth::LOOPBACK_USER);
        assert_eq!(conditions(&created), Vec::<Value>::new());
        // The main resource ignores conditions; the approval subresource takes them.
        let approve = Patch::Merge(json!({"status": {"conditions": [
            {"type": "Approved", "status": "True", "reason": "R", "message": "m"}]}}));
        let p = PatchParams::default();
        let main = client
            .patch(&r, None, "c", None, &approve, &p)
            .await
            .unwrap();
        assert_eq!(conditions(&main), Vec::<Value>::new());
        let approved = client
            .patch(&r, None, "c", Some("approval"), &approve, &p)
            .await
            .unwrap();
        assert_eq!(approved.data["status"]["conditions"][0]["reason"], "R");
        // Removing the approval is refused with 422.
        let remove = Patch::Merge(json!({"status": {"conditions": []}}));
        let err = client
            .patch(&r, None, "c", Some("approval"), &remove, &p)
            .await
            .unwrap_err();
        assert_eq!(err.api().map(|e| e.code), Some(422));
    }
}
