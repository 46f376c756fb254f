//! Subresources other than `status` and `finalize` (which the verbs handle through
//! [`super::update::Part`]): `scale`, `binding`, `eviction`, `log`, and the `bindings`
//! collection. Each gets an arm in [`handle`]; anything without one answers 404.

use super::negotiate::Failure;
use super::router::Request;
use crate::server::ApiServer;
use axum::response::{IntoResponse, Response};
use orch_types::ApiError;
use std::sync::Arc;

/// Handles a request to a subresource; `None` when `req` is not for one handled here.
pub async fn handle(api: &Arc<ApiServer>, req: &Request) -> Option<Response> {
    let _ = api;
    let sub = req.target.subresource.as_deref()?;
    match sub {
        "status" | "finalize" => None,
        other => Some(
            Failure(ApiError::not_found(
                &format!("{}/{other}", super::qualified(req.target.info)),
                req.target.name.as_deref().unwrap_or(""),
            ))
            .into_response(),
        ),
    }
}
