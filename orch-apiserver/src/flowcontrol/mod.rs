//! Overload protection: how many requests the API server runs at once.
//!
//! Two filters, one at a time, as upstream (`--enable-priority-and-fairness`, default true):
//!
//! - [`apf`], API Priority and Fairness: requests are classified by the
//!   `flowcontrol.apiserver.k8s.io/v1` FlowSchemas into flows and priority levels; each
//!   limited level has its share of the server's seats and bounded, shuffle-sharded queues
//!   ([`queueset`]); the defaults are [`bootstrap`]'s.
//! - [`maxinflight`], upstream's `--max-requests-inflight` / `--max-mutating-requests-inflight`
//!   filter (`staging/src/k8s.io/apiserver/pkg/server/filters/maxinflight.go`), used when APF
//!   is off: two pools of seats, one for reads (`get`, `list`, `watch`) and one for everything
//!   else; a request that finds its pool full is answered 429 at once, unless its user is in
//!   `system:masters`.
//!
//! Both answer a refused request with the same 429 `TooManyRequests` and `Retry-After: 1`
//! ([`maxinflight::too_many_requests`]). Long-running requests (watches, `exec`, `attach`,
//! `portforward`, `proxy`, `log`) take no seat, as upstream's `BasicLongRunningRequestCheck`
//! (`staging/src/k8s.io/apiserver/pkg/server/filters/longrunning.go`).
//!
//! The filter is an axum middleware inside the authentication middleware
//! ([`crate::auth::authn::middleware`]), so it sees the request's user
//! ([`crate::auth::current_user`]). Upstream runs it between impersonation and authorization;
//! here authentication, impersonation and authorization are one middleware, so a request is
//! authorized before it takes a seat (a refused request never takes one).
//!
//! In-process callers (the LocalClient: scheduler, controllers and kubelets of `orch up`) do
//! not go over HTTP and take no seat; upstream they are the loopback `system:apiserver` in
//! `system:masters`, which both filters exempt.

pub mod apf;
pub mod bootstrap;
pub mod maxinflight;
pub mod queueset;

use crate::server::{ApiServer, ApiServerConfig};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The overload filter in force.
#[derive(Debug, Clone)]
pub enum Limiter {
    /// API Priority and Fairness.
    Apf(Arc<apf::Apf>),
    /// Max-in-flight (APF off).
    MaxInFlight(maxinflight::MaxInFlight),
}

impl Limiter {
    /// The filter `config` asks for: APF sharing `--max-requests-inflight` +
    /// `--max-mutating-requests-inflight` seats, or the two max-in-flight pools.
    pub fn new(config: &ApiServerConfig) -> Self {
        if config.enable_priority_and_fairness {
            Self::Apf(apf::Apf::new(
                config.max_requests_inflight + config.max_mutating_requests_inflight,
            ))
        } else {
            Self::MaxInFlight(maxinflight::MaxInFlight::new(
                config.max_requests_inflight,
                config.max_mutating_requests_inflight,
            ))
        }
    }

    /// Runs `req` within the limits (`cache` counts the objects a list goes through).
    pub async fn run(
        &self,
        req: Request,
        next: Next,
        cache: &crate::cache::WatchCache,
    ) -> Response {
        match self {
            Self::Apf(a) => a.run(req, next, cache).await,
            Self::MaxInFlight(m) => m.run(req, next).await,
        }
    }

    /// The APF filter, when on.
    pub fn apf(&self) -> Option<&Arc<apf::Apf>> {
        match self {
            Self::Apf(a) => Some(a),
            Self::MaxInFlight(_) => None,
        }
    }
}

/// The default FlowSchemas and PriorityLevelConfigurations to create at start (none when APF
/// is off).
pub(crate) fn bootstrap_objects(
    api: &ApiServer,
) -> Vec<(crate::rest::Resource, orch_types::DynamicObject)> {
    if api.inflight.apf().is_none() {
        return Vec::new();
    }
    bootstrap::mandatory()
        .into_iter()
        .chain(bootstrap::suggested())
        .filter_map(|o| {
            let info = orch_types::registry::by_kind(&o.types.api_version, &o.types.kind)?;
            Some((info, o))
        })
        .collect()
}

/// Starts following the APF objects (when APF is on).
pub(crate) fn spawn(api: &Arc<ApiServer>) {
    if let Some(a) = api.inflight.apf() {
        tokio::spawn(apf::follow(Arc::downgrade(api), Arc::downgrade(a)));
    }
}

/// The overload-protection middleware of the API router: runs `req` within the server's
/// limits (see the module documentation).
pub async fn middleware(State(api): State<Arc<ApiServer>>, req: Request, next: Next) -> Response {
    api.inflight.run(req, next, &api.cache).await
}

/// `GET /metrics`: the API Priority and Fairness metrics (see [`apf::Apf::metrics_text`]) in
/// the Prometheus text format; empty when APF is off. Upstream serves every metric of the
/// server there; these are the ones served here.
pub async fn metrics(State(api): State<Arc<ApiServer>>) -> Response {
    let text = api
        .inflight
        .apf()
        .map(|a| a.metrics_text())
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
