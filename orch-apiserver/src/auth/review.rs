//! The review APIs (authorization.k8s.io/v1 and authentication.k8s.io/v1): created, answered
//! and never stored (upstream `pkg/registry/authorization/*review/rest.go`,
//! `pkg/registry/authentication/{tokenreview,selfsubjectreview}/storage.go`). They make
//! `kubectl auth can-i` (with `--list`) and `kubectl auth whoami` work.

use super::authz::{Attributes, Authorizer, Decision};
use super::request_info::RequestInfo;
use super::UserInfo;
use crate::rest::{Resource, RestResult};
use crate::server::ApiServer;
use orch_types::{ApiError, DynamicObject};
use serde_json::{json, Value};

/// The request of an access review's `resourceAttributes` or `nonResourceAttributes`.
fn attributes(spec: &Value, kind: &str) -> RestResult<RequestInfo> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) if r.is_object() => Ok(RequestInfo {
            is_resource_request: true,
            verb: s(r, "verb"),
            api_group: s(r, "group"),
            api_version: s(r, "version"),
            namespace: s(r, "namespace"),
            resource: s(r, "resource"),
            subresource: s(r, "subresource"),
            name: s(r, "name"),
            ..Default::default()
        }),
        (None, Some(n)) if n.is_object() => Ok(RequestInfo {
            path: s(n, "path"),
            verb: s(n, "verb"),
            ..Default::default()
        }),
        _ => Err(ApiError::invalid(
            kind,
            "",
            vec![orch_types::validation::FieldError::invalid_no_value(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
            .to_status_cause()],
        )),
    }
}

/// The answer of an access review.
fn access_status(api: &ApiServer, user: &UserInfo, request: &RequestInfo) -> Value {
    match api.auth.authorizer.authorize(&Attributes { user, request }) {
        (Decision::Allow, _) => json!({"allowed": true}),
        (Decision::Deny, why) => json!({"allowed": false, "denied": true, "reason": why}),
        (Decision::NoOpinion, why) if why.is_empty() => json!({"allowed": false}),
        (Decision::NoOpinion, why) => json!({"allowed": false, "reason": why}),
    }
}

/// The user a SubjectAccessReview's spec names.
fn spec_user(spec: &Value) -> UserInfo {
    let strings = |k: &str| -> Option<Vec<String>> {
        spec.get(k)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    };
    UserInfo {
        username: spec.get("user").and_then(Value::as_str).map(str::to_string),
        uid: spec.get("uid").and_then(Value::as_str).map(str::to_string),
        groups: strings("groups"),
        extra: spec
            .get("extra")
            .and_then(|v| serde_json::from_value(v.clone()).ok()),
    }
}

fn rules_status(api: &ApiServer, user: &UserInfo, namespace: &str) -> Value {
    let (rules, incomplete) = api.auth.authorizer.rules_for(user, namespace);
    let mut resource = Vec::new();
    let mut non_resource = Vec::new();
    for r in rules {
        if r.non_resource_urls.is_empty() {
            let mut v =
                json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                v["resourceNames"] = json!(r.resource_names);
            }
            resource.push(v);
        } else {
            non_resource.push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
        }
    }
    json!({"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": incomplete})
}

/// Answers a create of a review kind (`None`: `info` is not one).
pub async fn create(
    api: &ApiServer,
    info: Resource,
    ns: Option<&str>,
    obj: &DynamicObject,
) -> Option<RestResult<DynamicObject>> {
    if !matches!(info.group, "authorization.k8s.io" | "authentication.k8s.io") {
        return None;
    }
    let spec = obj.data.get("spec").cloned().unwrap_or(Value::Null);
    let user = super::current_user();
    let status = match info.kind {
        "SelfSubjectAccessReview" => {
            attributes(&spec, info.kind).map(|r| access_status(api, &user, &r))
        }
        "SubjectAccessReview" => attributes(&spec, info.kind).and_then(|r| {
            let u = spec_user(&spec);
            if u.username.as_deref().unwrap_or("").is_empty()
                && u.groups.as_ref().is_none_or(Vec::is_empty)
            {
                return Err(ApiError::invalid(
                    info.kind,
                    "",
                    vec![orch_types::validation::FieldError::invalid(
                        "spec.user",
                        "",
                        "at least one of user or group must be specified",
                    )
                    .to_status_cause()],
                ));
            }
            Ok(access_status(api, &u, &r))
        }),
        "LocalSubjectAccessReview" => attributes(&spec, info.kind).and_then(|r| {
            let want = ns.unwrap_or("");
            if !r.is_resource_request || r.namespace != want {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {want}"
                )));
            }
            Ok(access_status(api, &spec_user(&spec), &r))
        }),
        "SelfSubjectRulesReview" => {
            let namespace = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
            Ok(rules_status(api, &user, namespace))
        }
        "SelfSubjectReview" => Ok(json!({"userInfo": &*user})),
        "TokenReview" => {
            let token = spec.get("token").and_then(Value::as_str).unwrap_or("");
            if token.is_empty() {
                Err(ApiError::bad_request(
                    "token is required for TokenReview in authentication",
                ))
            } else {
                Ok(match api.authenticate_token(token).await {
                    Ok(u) => json!({"authenticated": true, "user": u}),
                    Err(e) => json!({"authenticated": false, "error": e}),
                })
            }
        }
        _ => return None,
    };
    Some(status.map(|status| {
        let mut out = obj.clone();
        out.types.api_version = info.api_version();
        out.types.kind = info.kind.to_string();
        out.data.insert("status".into(), status);
        out
    }))
}
