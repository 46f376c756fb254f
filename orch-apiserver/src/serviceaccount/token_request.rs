//! `POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`: an `authentication.k8s.io/v1`
//! TokenRequest answered with a signed token (upstream
//! `pkg/registry/core/serviceaccount/storage/token.go` and the TokenRequest validation of
//! `pkg/apis/authentication/validation`).

use super::claims::{Bound, Claims, Ref, Request};
use crate::rest::{Resource, RestResult};
use crate::server::ApiServer;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestStatus};
use orch_types::validation::FieldError;
use orch_types::{ApiError, DynamicObject};
use std::sync::Arc;

/// `spec.expirationSeconds` when the request gives none (upstream defaulting: one hour).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// The shortest lifetime a TokenRequest may ask for (ten minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;

/// The longest lifetime a TokenRequest may ask for (2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// The field errors of a TokenRequest's spec (upstream `ValidateTokenRequest`).
pub fn validate(expiration_seconds: i64) -> Vec<FieldError> {
    let path = "spec.expirationSeconds";
    if expiration_seconds < MIN_EXPIRATION_SECONDS {
        vec![FieldError::invalid_num(
            path,
            expiration_seconds,
            "may not specify a duration less than 10 minutes",
        )]
    } else if expiration_seconds > MAX_EXPIRATION_SECONDS {
        vec![FieldError::invalid_num(
            path,
            expiration_seconds,
            "may not specify a duration larger than 2^32 seconds",
        )]
    } else {
        Vec::new()
    }
}

fn uid_of(o: &DynamicObject) -> String {
    o.metadata.uid.clone().unwrap_or_default()
}

fn reference(o: &DynamicObject) -> Ref {
    Ref {
        name: o.name().to_string(),
        uid: uid_of(o),
    }
}

impl ApiServer {
    /// Issues a token for service account `name` of `ns` as `body` (a TokenRequest) asks:
    /// 404 when the service account or the bound object does not exist (a bound object is
    /// looked up in the service account's namespace), 400 for a pod running as another
    /// service account or an unsupported kind, 409 when the bound object's UID differs, 422
    /// for a lifetime under ten minutes. Answers the TokenRequest with `status.token` and
    /// `status.expirationTimestamp`.
    pub(crate) async fn request_token(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        body: &DynamicObject,
    ) -> RestResult<Arc<DynamicObject>> {
        // A request's status is ignored (kubectl sends an empty one, which the typed status
        // cannot hold).
        let mut body = body.clone();
        body.data.remove("status");
        let mut req: TokenRequest = body.to_typed().map_err(|e| {
            ApiError::bad_request(format!("cannot decode TokenRequest: {}", e.source))
        })?;
        let expiration = req
            .spec
            .expiration_seconds
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        let errors = validate(expiration);
        if !errors.is_empty() {
            let causes = errors.iter().map(FieldError::to_status_cause).collect();
            return Err(ApiError::invalid("TokenRequest", name, causes));
        }
        let sa = self.get_object(info, ns, name).await?;
        let namespace = sa.namespace().unwrap_or_default().to_string();
        let bound = match req.spec.bound_object_ref.as_mut() {
            Some(r) => {
                let (bound, uid) = self.bound_object(&namespace, name, r).await?;
                r.uid = Some(uid);
                bound
            }
            None => Bound::None,
        };
        let audiences = if req.spec.audiences.is_empty() {
            self.tokens.audiences().to_vec()
        } else {
            req.spec.audiences.clone()
        };
        let now = self.config.clock.now();
        let claims = Claims::new(Request {
            issuer: self.tokens.issuer(),
            namespace: &namespace,
            service_account: reference(&sa),
            bound,
            audiences: audiences.clone(),
            now: now.as_second(),
            expiration_seconds: expiration,
            jti: uuid::Uuid::new_v4().to_string(),
        });
        let token = self
            .tokens
            .sign(&claims)
            .map_err(|e| ApiError::internal(format!("cannot sign the token: {e}")))?;
        let expires = jiff::Timestamp::from_second(claims.exp)
            .map_err(|_| ApiError::internal("token expiry out of range"))?;
        req.metadata.name = Some(name.to_string());
        req.metadata.namespace = Some(namespace);
        req.metadata.creation_timestamp = Some(crate::rest::meta::time(now));
        req.spec.audiences = audiences;
        req.spec.expiration_seconds = Some(expiration);
        req.status = Some(TokenRequestStatus {
            token,
            expiration_timestamp: crate::rest::meta::time(expires),
        });
        let out = DynamicObject::from_typed(&req)
            .map_err(|e| ApiError::internal(format!("cannot encode TokenRequest: {}", e.source)))?;
        Ok(Arc::new(out))
    }

    /// The object a TokenRequest binds to (upstream `token.go`: a Pod or Secret of the service
    /// account's namespace, or a Node), with its UID checked against the reference's.
    async fn bound_object(
        &self,
        namespace: &str,
        sa_name: &str,
        r: &k8s_openapi::api::authentication::v1::BoundObjectReference,
    ) -> RestResult<(Bound, String)> {
        let api_version = r.api_version.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or("");
        let ref_name = r.name.as_deref().unwrap_or("");
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let lookup = |k: &str| {
            orch_types::registry::by_kind("v1", k)
                .ok_or_else(|| ApiError::internal(format!("{k} is not registered")))
        };
        let (bound, found) = match (group, kind) {
            ("", "Pod") => {
                let pod = self
                    .get_object(lookup("Pod")?, Some(namespace), ref_name)
                    .await?;
                let runs_as = pod
                    .data
                    .get("spec")
                    .and_then(|s| s.get("serviceAccountName"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                if runs_as != sa_name {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
                    )));
                }
                let node_name = pod
                    .data
                    .get("spec")
                    .and_then(|s| s.get("nodeName"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                let node = if node_name.is_empty() {
                    None
                } else {
                    // The node is informational in a pod-bound token; a node that is gone is
                    // left out rather than failing the request.
                    self.get_object(lookup("Node")?, None, node_name)
                        .await
                        .ok()
                        .map(|n| reference(&n))
                };
                let pod_ref = reference(&pod);
                (
                    Bound::Pod {
                        pod: pod_ref.clone(),
                        node,
                    },
                    pod_ref,
                )
            }
            ("", "Secret") => {
                let s = self
                    .get_object(lookup("Secret")?, Some(namespace), ref_name)
                    .await?;
                (Bound::Secret(reference(&s)), reference(&s))
            }
            ("", "Node") => {
                let n = self.get_object(lookup("Node")?, None, ref_name).await?;
                (Bound::Node(reference(&n)), reference(&n))
            }
            _ => {
                // Upstream prints the GroupVersionKind: `group/version, Kind=kind`.
                let version = api_version.rsplit_once('/').map_or(api_version, |(_, v)| v);
                let gvk = format!("{group}/{version}, Kind={kind}");
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {gvk}"
                )));
            }
        };
        if let Some(want) = r.uid.as_deref().filter(|u| !u.is_empty()) {
            if want != found.uid {
                return Err(ApiError::conflict(
                    kind,
                    ref_name,
                    &format!("the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"),
                ));
            }
        }
        Ok((bound, found.uid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_under_ten_minutes_or_over_two_to_the_32_are_invalid() {
        assert!(validate(600).is_empty());
        assert!(validate(3600).is_empty());
        let e = validate(599);
        assert_eq!(e[0].path, "spec.expirationSeconds");
        assert!(e[0]
            .to_status_cause()
            .message
            .unwrap()
            .contains("less than 10 minutes"));
        assert!(!validate((1 << 32) + 1).is_empty());
    }
}
