//! The max-in-flight filter (upstream
//! `staging/src/k8s.io/apiserver/pkg/server/filters/maxinflight.go`): see [`super`].

use crate::auth::request_info::{self, RequestInfo};
use crate::rest::negotiate::Failure;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails;
use orch_types::status::reason;
use orch_types::ApiError;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// kube-apiserver's `--max-requests-inflight` default.
pub const DEFAULT_MAX_REQUESTS_INFLIGHT: usize = 400;
/// kube-apiserver's `--max-mutating-requests-inflight` default.
pub const DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT: usize = 200;

/// Seconds a refused client is asked to wait (upstream's constant `retryAfter`).
pub const RETRY_AFTER_SECONDS: i32 = 1;

/// The message of upstream's 429.
pub const TOO_MANY_REQUESTS_MESSAGE: &str = "Too many requests, please try again later.";

/// Verbs that read (upstream `nonMutatingRequestVerbs`); every other verb mutates.
const NON_MUTATING_VERBS: &[&str] = &["get", "list", "watch"];
/// Verbs of long-running requests (kube-apiserver's `BasicLongRunningRequestCheck` arguments).
const LONG_RUNNING_VERBS: &[&str] = &["watch", "proxy"];
/// Subresources of long-running requests (same).
const LONG_RUNNING_SUBRESOURCES: &[&str] = &["attach", "exec", "proxy", "log", "portforward"];

/// Whether `info` is a long-running request, which takes no seat (upstream
/// `BasicLongRunningRequestCheck` in `staging/src/k8s.io/apiserver/pkg/server/filters/longrunning.go`).
///
/// ```
/// use orch_apiserver::auth::request_info::parse;
/// use orch_apiserver::flowcontrol::maxinflight::is_long_running;
/// let q = Default::default();
/// assert!(is_long_running(&parse("GET", "/api/v1/watch/pods", &q)));
/// assert!(is_long_running(&parse("POST", "/api/v1/namespaces/d/pods/p/exec", &q)));
/// assert!(!is_long_running(&parse("GET", "/api/v1/pods", &q)));
/// ```
pub fn is_long_running(info: &RequestInfo) -> bool {
    LONG_RUNNING_VERBS.contains(&info.verb.as_str())
        || (info.is_resource_request
            && LONG_RUNNING_SUBRESOURCES.contains(&info.subresource.as_str()))
        || (!info.is_resource_request && info.path.starts_with("/debug/pprof/"))
}

/// Whether `info` mutates (takes a seat of the mutating pool).
pub fn is_mutating(info: &RequestInfo) -> bool {
    !NON_MUTATING_VERBS.contains(&info.verb.as_str())
}

/// The 429 upstream answers when a pool is full. Upstream writes it as plain text; here it is
/// a `Status` with reason `TooManyRequests`, the same message and `retryAfterSeconds`, and the
/// same `Retry-After: 1` header (clients read the code and the header either way).
pub fn too_many_requests() -> ApiError {
    let mut e = ApiError::new(429, reason::TOO_MANY_REQUESTS, TOO_MANY_REQUESTS_MESSAGE);
    e.details = Some(StatusDetails {
        retry_after_seconds: Some(RETRY_AFTER_SECONDS),
        ..Default::default()
    });
    e
}

/// The two seat pools; a limit of 0 is no limit (as upstream).
#[derive(Debug, Clone)]
pub struct MaxInFlight {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
}

impl MaxInFlight {
    /// Pools of `read_only` and `mutating` seats (0: unlimited).
    pub fn new(read_only: usize, mutating: usize) -> Self {
        let pool = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        Self {
            read_only: pool(read_only),
            mutating: pool(mutating),
        }
    }

    /// Takes a seat for `info`: `Ok(None)` when it needs none (long-running, or its pool is
    /// unlimited), `Ok(Some(permit))` held while it runs, `Err` the 429 when its pool is full
    /// and `privileged` (the user is in `system:masters`) is false.
    pub fn admit(
        &self,
        info: &RequestInfo,
        privileged: bool,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ApiError> {
        if is_long_running(info) {
            return Ok(None);
        }
        let pool = if is_mutating(info) {
            &self.mutating
        } else {
            &self.read_only
        };
        let Some(pool) = pool else {
            return Ok(None);
        };
        match pool.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) if privileged => Ok(None),
            Err(_) => Err(too_many_requests()),
        }
    }

    /// Runs `req` if a seat is free (or it needs none), else answers the 429.
    pub async fn run(&self, req: Request, next: Next) -> Response {
        if self.read_only.is_none() && self.mutating.is_none() {
            return next.run(req).await;
        }
        let query = crate::rest::router::parse_query(req.uri().query());
        let info = request_info::parse(req.method().as_str(), req.uri().path(), &query);
        let privileged = crate::auth::is_privileged(&crate::auth::current_user());
        match self.admit(&info, privileged) {
            Ok(seat) => super::apf::hold_until_sent(next.run(req).await, seat),
            Err(e) => Failure(e).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn info(method: &str, path: &str) -> RequestInfo {
        request_info::parse(method, path, &HashMap::new())
    }

    #[test]
    fn reads_and_writes_have_separate_pools() {
        let m = MaxInFlight::new(1, 1);
        let list = info("GET", "/api/v1/pods");
        let create = info("POST", "/api/v1/namespaces/d/pods");
        let first = m.admit(&list, false).unwrap();
        assert!(first.is_some());
        let e = m.admit(&list, false).unwrap_err();
        assert_eq!(
            (e.code, e.reason.as_str()),
            (429, reason::TOO_MANY_REQUESTS)
        );
        assert_eq!(e.message, TOO_MANY_REQUESTS_MESSAGE);
        assert_eq!(e.details.unwrap().retry_after_seconds, Some(1));
        let write = m.admit(&create, false).unwrap();
        assert!(write.is_some(), "the mutating pool is separate");
        assert!(m.admit(&create, false).is_err());
        drop(first);
        assert!(
            m.admit(&list, false).unwrap().is_some(),
            "a freed seat is reused"
        );
    }

    #[test]
    fn privileged_users_and_long_running_requests_are_never_refused() {
        let m = MaxInFlight::new(1, 1);
        let list = info("GET", "/api/v1/pods");
        let _held = m.admit(&list, false).unwrap();
        assert!(
            m.admit(&list, true).unwrap().is_none(),
            "system:masters runs without a seat"
        );
        for (method, path) in [
            ("GET", "/api/v1/watch/pods"),
            ("GET", "/api/v1/namespaces/d/pods/p/log"),
            ("POST", "/api/v1/namespaces/d/pods/p/exec"),
            ("POST", "/api/v1/namespaces/d/pods/p/attach"),
            ("POST", "/api/v1/namespaces/d/pods/p/portforward"),
            ("GET", "/api/v1/nodes/n/proxy/stats"),
        ] {
            assert!(
                m.admit(&info(method, path), false).unwrap().is_none(),
                "{path}"
            );
        }
    }

    #[test]
    fn zero_is_unlimited() {
        let m = MaxInFlight::new(0, 1);
        let list = info("GET", "/api/v1/pods");
        let seats: Vec<_> = (0..1000).map(|_| m.admit(&list, false).unwrap()).collect();
        assert!(seats.iter().all(Option::is_none));
        assert!(is_mutating(&info("DELETE", "/api/v1/namespaces/d/pods")));
        assert!(!is_mutating(&info("GET", "/healthz")));
    }
}
