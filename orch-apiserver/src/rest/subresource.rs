//! Subresources other than `status`, `finalize`, `pods/ephemeralcontainers` and
//! `certificatesigningrequests/approval` (which the
//! verbs handle through [`super::update::Part`]): `scale`, `binding`, `eviction`, `log`.
//!
//! Two hook points, one per shape of subresource:
//! - [`ApiServer::create_subresource`]: POST-only subresources (`pods/binding`, `pods/eviction`,
//!   `serviceaccounts/token`);
//!   the in-process client and HTTP both call it. Add an arm per (kind, subresource).
//! - [`handle`]: every other HTTP request to a subresource (GET/PUT/PATCH `scale`, GET `log`);
//!   add an arm per subresource. Anything without an arm answers 404.

use super::negotiate::{decode_body, render, response_format, Failure};
use super::router::Request;
use super::{qualified, Resource, RestResult};
use crate::server::ApiServer;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use orch_types::{ApiError, DynamicObject};
use std::sync::Arc;

fn no_such(info: Resource, sub: &str, name: &str) -> ApiError {
    ApiError::not_found(&format!("{}/{sub}", qualified(info)), name)
}

impl ApiServer {
    /// POST to a create-only subresource of object `name` (`pods/NAME/binding`, …).
    pub async fn create_subresource(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        subresource: &str,
        body: DynamicObject,
    ) -> RestResult<Arc<DynamicObject>> {
        match (info.kind, subresource) {
            ("Pod", "binding") => self.bind_pod(info, ns, name, &body).await,
            ("Pod", "eviction") => self.evict_pod(info, ns, name, &body).await,
            ("ServiceAccount", "token") => self.request_token(info, ns, name, &body).await,
            _ => Err(no_such(info, subresource, name)),
        }
    }
}

/// Handles a request to a subresource; `None` when `req` is not for one handled here.
pub async fn handle(api: &Arc<ApiServer>, req: &Request) -> Option<Response> {
    let sub = req.target.subresource.as_deref()?;
    let info = req.target.info;
    let name = req.target.name.as_deref().unwrap_or("");
    match (sub, &req.method) {
        // Updates of a part of the object: the verbs handle them (rest::update::Part).
        ("status" | "finalize", _) => None,
        ("ephemeralcontainers", _) if info.kind == "Pod" => None,
        ("approval", _) if crate::certificates::is_csr(info) => None,
        (_, &Method::POST) if info.subresource(sub).is_some_and(|s| s.verbs == ["create"]) => {
            let out = async {
                let format = response_format(&req.headers)?;
                let mut v = decode_body(&req.headers, &req.body)?;
                // A body without apiVersion or kind is of the subresource's kind, as upstream's
                // decoder defaults them from the endpoint (apimachinery
                // `runtime/serializer/json`, `gvkWithDefaults`).
                if let (Some(o), Some(s)) = (v.as_object_mut(), info.subresource(sub)) {
                    let api_version = if s.group.is_empty() {
                        s.version.to_string()
                    } else {
                        format!("{}/{}", s.group, s.version)
                    };
                    for (k, d) in [("apiVersion", api_version), ("kind", s.kind.to_string())] {
                        if o.get(k)
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or("")
                            .is_empty()
                        {
                            o.insert(k.to_string(), d.into());
                        }
                    }
                }
                let body = DynamicObject::from_value(v).map_err(|e| {
                    ApiError::bad_request(format!("cannot decode {sub} body: {}", e.source))
                })?;
                let o = api
                    .create_subresource(info, req.target.namespace.as_deref(), name, sub, body)
                    .await?;
                Ok::<_, ApiError>(render(Some(info), format, StatusCode::CREATED, &*o, &[]))
            };
            Some(out.await.unwrap_or_else(|e| Failure(e).into_response()))
        }
        ("scale" | "log", _) => Some(
            crate::subresources::handle_http(api, req, sub, info, name)
                .await
                .unwrap_or_else(|e| Failure(e).into_response()),
        ),
        (other, _) => Some(Failure(no_such(info, other, name)).into_response()),
    }
}

#[cfg(test)]
mod tests;
