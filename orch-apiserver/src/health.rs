//! The health endpoints `/healthz`, `/livez` and `/readyz`, as kube-apiserver serves them
//! (`staging/src/k8s.io/apiserver/pkg/server/healthz/healthz.go`; the checks are added in
//! `staging/src/k8s.io/apiserver/pkg/server/options/etcd.go` `addEtcdHealthEndpoint` and
//! `staging/src/k8s.io/apiserver/pkg/server/config.go`).
//!
//! Each endpoint runs its named checks: `ping` (always ok), `etcd` (the storage answers,
//! [`crate::storage::Storage::check_health`]: a time-bounded, rate-limited read on etcd, always
//! ok for the in-process stores) and, on `/readyz` only, `etcd-readiness` (the same call) and
//! `shutdown` (fails once the server has begun to stop). A passing endpoint answers `ok`, or
//! with `?verbose` one `[+]NAME ok` line per check and `NAME check passed`; a failing one answers
//! 500 with every check's line (`[-]NAME failed: reason withheld`: the endpoint is public) and
//! `NAME check failed`, and logs the reasons. `?exclude=NAME` skips a check. Each check also
//! has its own path (`/readyz/etcd`), which answers `ok` or 500 with the reason.

use crate::rest::negotiate::Failure;
use crate::server::ApiServer;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use orch_types::ApiError;
use std::sync::Arc;

/// A health endpoint: `/healthz`, `/livez` or `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Healthz,
    Livez,
    Readyz,
}

impl Endpoint {
    /// The endpoint's name (its path without the slash).
    fn name(self) -> &'static str {
        match self {
            Self::Healthz => "healthz",
            Self::Livez => "livez",
            Self::Readyz => "readyz",
        }
    }

    /// The endpoint's checks, in upstream's order.
    fn checks(self) -> &'static [&'static str] {
        match self {
            Self::Healthz | Self::Livez => &["ping", "etcd"],
            Self::Readyz => &["ping", "etcd", "etcd-readiness", "shutdown"],
        }
    }
}

/// Runs the check `name` of `api`; the error is the reason.
async fn run(api: &ApiServer, name: &str) -> Result<(), String> {
    match name {
        "etcd" | "etcd-readiness" => api.storage.check_health().await,
        "shutdown" if *api.stop.borrow() => Err("process is shutting down".into()),
        _ => Ok(()),
    }
}

/// The routes of the three endpoints and of their single checks.
pub(crate) fn routes() -> Router<Arc<ApiServer>> {
    let mut r = Router::new();
    for e in [Endpoint::Healthz, Endpoint::Livez, Endpoint::Readyz] {
        r = r
            .route(
                &format!("/{}", e.name()),
                get(move |s: State<Arc<ApiServer>>, q: Query<Vec<(String, String)>>| root(e, s, q)),
            )
            .route(
                &format!("/{}/{{*check}}", e.name()),
                get(move |s: State<Arc<ApiServer>>, p: Path<String>| single(e, s, p)),
            );
    }
    r
}

/// A plain-text answer with upstream's headers.
fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `/healthz`, `/livez`, `/readyz`.
async fn root(
    e: Endpoint,
    State(api): State<Arc<ApiServer>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let mut excluded: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.as_str())
        .collect();
    let verbose = query.iter().any(|(k, _)| k == "verbose");
    let mut lines = String::new();
    let mut reasons = Vec::new();
    for &check in e.checks() {
        if excluded.contains(&check) {
            excluded.retain(|x| *x != check);
            lines.push_str(&format!("[+]{check} excluded: ok\n"));
            continue;
        }
        match run(&api, check).await {
            Ok(()) => lines.push_str(&format!("[+]{check} ok\n")),
            Err(reason) => {
                lines.push_str(&format!("[-]{check} failed: reason withheld\n"));
                reasons.push(format!("[-]{check} failed: {reason}"));
            }
        }
    }
    if !excluded.is_empty() {
        let names: Vec<String> = excluded.iter().map(|n| format!("{n:?}")).collect();
        lines.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            names.join(",")
        ));
    }
    let name = e.name();
    if !reasons.is_empty() {
        tracing::info!(reasons = %reasons.join("; "), "{name} check failed");
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{lines}{name} check failed\n"),
        );
    }
    if verbose {
        text(StatusCode::OK, format!("{lines}{name} check passed\n"))
    } else {
        text(StatusCode::OK, "ok".into())
    }
}

/// `/readyz/NAME` and the like: one check, with its reason when it fails.
async fn single(
    e: Endpoint,
    State(api): State<Arc<ApiServer>>,
    Path(check): Path<String>,
) -> Response {
    if !e.checks().contains(&check.as_str()) {
        return Failure(ApiError::unknown_resource(&format!(
            "/{}/{check}",
            e.name()
        )))
        .into_response();
    }
    match run(&api, &check).await {
        Ok(()) => text(StatusCode::OK, "ok".into()),
        Err(reason) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal server error: {reason}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiServerConfig;
    use tower::ServiceExt;

    async fn get(api: &Arc<ApiServer>, uri: &str) -> (StatusCode, String, Option<String>) {
        let r = crate::rest::router::router(api.clone())
            .oneshot(
                axum::http::Request::get(uri)
                    .body(axum::body::Body::empty())
                    .expect("request"),
            )
            .await
            .expect("answer");
        let code = r.status();
        let ct = r
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        (code, String::from_utf8_lossy(&body).into_owned(), ct)
    }

    #[tokio::test]
    async fn endpoints_list_their_checks_and_stop_being_ready_on_shutdown() {
        let api = ApiServer::new(ApiServerConfig::memory()).expect("server");
        for path in [
            "/healthz",
            "/livez",
            "/readyz",
            "/readyz/etcd",
            "/livez/ping",
        ] {
            let (code, body, ct) = get(&api, path).await;
            assert_eq!((code, body.as_str()), (StatusCode::OK, "ok"), "{path}");
            assert_eq!(ct.as_deref(), Some("text/plain; charset=utf-8"));
        }
        let (_, body, _) = get(&api, "/livez?verbose").await;
        assert_eq!(body, "[+]ping ok\n[+]etcd ok\nlivez check passed\n");
        let (_, body, _) = get(&api, "/readyz?verbose=&exclude=etcd&exclude=nope").await;
        assert_eq!(
            body,
            "[+]ping ok\n[+]etcd excluded: ok\n[+]etcd-readiness ok\n[+]shutdown ok\n\
             warn: some health checks cannot be excluded: no matches for \"nope\"\n\
             readyz check passed\n"
        );
        let (code, _, _) = get(&api, "/readyz/nope").await;
        assert_eq!(code, StatusCode::NOT_FOUND);

        api.stop.send_replace(true);
        let (code, body, _) = get(&api, "/readyz").await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            "[+]ping ok\n[+]etcd ok\n[+]etcd-readiness ok\n[-]shutdown failed: reason withheld\n\
             readyz check failed\n"
        );
        let (code, body, _) = get(&api, "/readyz/shutdown").await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, "internal server error: process is shutting down\n");
        let (code, _, _) = get(&api, "/livez").await;
        assert_eq!(code, StatusCode::OK, "a stopping server is still alive");
    }
}
