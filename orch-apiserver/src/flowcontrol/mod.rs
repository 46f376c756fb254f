//! Overload protection: how many requests the API server runs at once.
//!
//! [`maxinflight`] is upstream's `--max-requests-inflight` / `--max-mutating-requests-inflight`
//! filter (`staging/src/k8s.io/apiserver/pkg/server/filters/maxinflight.go`): two pools of
//! seats, one for reads (`get`, `list`, `watch`) and one for everything else; a request that
//! finds its pool full is answered 429 `TooManyRequests` with `Retry-After: 1` at once (no
//! queueing), unless its user is in `system:masters`. Long-running requests (watches,
//! `exec`, `attach`, `portforward`, `proxy`, `log`) take no seat, as upstream's
//! `BasicLongRunningRequestCheck` (`staging/src/k8s.io/apiserver/pkg/server/filters/longrunning.go`).
//!
//! The filter is an axum middleware inside the authentication middleware
//! ([`crate::auth::authn::middleware`]), so it sees the request's user
//! ([`crate::auth::current_user`]). Upstream runs it between impersonation and authorization;
//! here authentication, impersonation and authorization are one middleware, so a request is
//! authorized before it takes a seat (a refused request never takes one).
//!
//! In-process callers (the LocalClient: scheduler, controllers and kubelets of `orch up`) do
//! not go over HTTP and take no seat; upstream they are the loopback `system:apiserver` in
//! `system:masters`, which this filter never refuses either.

pub mod maxinflight;

use crate::server::ApiServer;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// The overload-protection middleware of the API router: runs `req` within the server's
/// limits (see the module documentation).
pub async fn middleware(State(api): State<Arc<ApiServer>>, req: Request, next: Next) -> Response {
    api.inflight.run(req, next).await
}

#[cfg(test)]
mod tests;
