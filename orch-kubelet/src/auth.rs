//! Authentication and authorization of the requests to the kubelet's HTTPS API, as upstream's
//! kubelet with its default configuration (`pkg/kubelet/apis/config/v1beta1/defaults.go`:
//! anonymous authentication disabled, webhook authentication enabled, authorization mode
//! `Webhook`):
//!
//! - **Authentication** (upstream `pkg/kubelet/server/auth.go`, the delegating authenticator of
//!   `k8s.io/apiserver/pkg/authentication/authenticatorfactory/delegating.go`): a verified client
//!   certificate ([`crate::tls::ClientIdentity`]: user = Common Name, groups = Organizations),
//!   else a bearer token (`Authorization: Bearer T`) checked with a `TokenReview` sent to the
//!   API server; answers are cached for [`TOKEN_CACHE_TTL`]. Every authenticated user is in
//!   `system:authenticated`. Anything else is answered `401 Unauthorized`.
//! - **Authorization** (upstream webhook authorizer,
//!   `k8s.io/apiserver/plugin/pkg/authorizer/webhook`): each request is mapped to attributes
//!   ([`attributes`]: the verb from the HTTP method, resource `nodes`, a subresource from the
//!   path, name = the node) and sent as a `SubjectAccessReview` to the API server; allowed
//!   decisions are cached for [`CACHE_AUTHORIZED_TTL`], denied ones for
//!   [`CACHE_UNAUTHORIZED_TTL`]. Denied: `403` with upstream's text
//!   `Forbidden (user=U, verb=V, resource=nodes, subresource=S)`; a review that cannot be made:
//!   `500 Authorization error (…)`.
//!
//! The API server reaches the kubelet with its own client certificate
//! (`kube-apiserver-kubelet-client` in `system:masters`), which its authorizer always allows.
//! The reviews go through the kubelet's own [`Client`](orch_types::client::Client): under the
//! Node authorizer a kubelet may create `tokenreviews` and `subjectaccessreviews` (the
//! `system:node` rules).

use crate::tls::ClientIdentity;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orch_types::client::{PostParams, SharedClient};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an allowed decision is cached (upstream `authorization.webhook.cacheAuthorizedTTL`
/// default).
pub const CACHE_AUTHORIZED_TTL: Duration = Duration::from_secs(5 * 60);

/// How long a denied decision is cached (upstream
/// `authorization.webhook.cacheUnauthorizedTTL` default).
pub const CACHE_UNAUTHORIZED_TTL: Duration = Duration::from_secs(30);

/// How long a TokenReview answer is cached (upstream `authentication.webhook.cacheTTL`
/// default).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(2 * 60);

/// At most this many entries per cache; expired ones are dropped first, then all.
const CACHE_CAPACITY: usize = 4096;

/// The group every authenticated user is in.
const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// An authenticated user of the kubelet API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct User {
    /// The user name.
    pub name: String,
    /// Its UID, if the authenticator knows one.
    pub uid: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// Extra attributes (service-account token claims, …).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// The user a client certificate names: Common Name, Organizations as groups.
    pub fn from_certificate(id: &ClientIdentity) -> Self {
        Self {
            name: id.common_name.clone(),
            groups: id.organizations.clone(),
            ..Self::default()
        }
        .authenticated()
    }

    /// With `system:authenticated` among its groups (upstream `AuthenticatedGroupAdder`).
    fn authenticated(mut self) -> Self {
        if !self.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            self.groups.push(AUTHENTICATED_GROUP.to_string());
        }
        self
    }
}

/// What a request to the kubelet API asks for, as authorization attributes: always resource
/// `nodes` of the core group, version `v1`, no namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// The API verb of the HTTP method (`""` for methods without one, which nothing allows).
    pub verb: &'static str,
    /// `stats`, `metrics`, `log`, `spec`, `checkpoint` or `proxy`.
    pub subresource: &'static str,
    /// The node name.
    pub name: String,
}

/// Whether `path` is `prefix` or below it (upstream `isSubpath`).
fn is_subpath(path: &str, prefix: &str) -> bool {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The attributes of a request with `method` to `path` on node `node` (upstream
/// `nodeAuthorizerAttributesGetter.GetRequestAttributes`): `/stats/*` → `stats`, `/metrics*` →
/// `metrics`, `/logs/*` → `log`, `/spec/*` → `spec`, `/checkpoint/*` → `checkpoint`, anything
/// else (`/exec`, `/attach`, `/portForward`, `/containerLogs`, `/run`, `/pods`, `/healthz`, …)
/// → `proxy`.
///
/// ```
/// use axum::http::Method;
/// let a = orch_kubelet::auth::attributes(&Method::GET, "/stats/summary", "n1");
/// assert_eq!((a.verb, a.subresource, a.name.as_str()), ("get", "stats", "n1"));
/// let a = orch_kubelet::auth::attributes(&Method::POST, "/exec/default/p/c", "n1");
/// assert_eq!((a.verb, a.subresource), ("create", "proxy"));
/// ```
pub fn attributes(method: &Method, path: &str, node: &str) -> Attributes {
    let verb = match *method {
        Method::POST => "create",
        Method::GET => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    };
    let subresource = [
        ("/stats/", "stats"),
        ("/metrics", "metrics"),
        ("/logs/", "log"),
        ("/spec/", "spec"),
        ("/checkpoint/", "checkpoint"),
    ]
    .into_iter()
    .find(|(prefix, _)| is_subpath(path, prefix))
    .map_or("proxy", |(_, s)| s);
    Attributes {
        verb,
        subresource,
        name: node.to_string(),
    }
}

/// The `SubjectAccessReview` asking whether `user` may do `a`.
pub fn access_review(user: &User, a: &Attributes) -> DynamicObject {
    let mut spec = json!({
        "user": user.name,
        "groups": user.groups,
        "resourceAttributes": {
            "verb": a.verb,
            "version": "v1",
            "resource": "nodes",
            "subresource": a.subresource,
            "name": a.name,
        },
    });
    if !user.uid.is_empty() {
        spec["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        spec["extra"] = json!(user.extra);
    }
    let mut o = DynamicObject::new("authorization.k8s.io/v1", "SubjectAccessReview", "");
    o.data.insert("spec".into(), spec);
    o
}

/// The `TokenReview` of `token`.
pub fn token_review(token: &str) -> DynamicObject {
    let mut o = DynamicObject::new("authentication.k8s.io/v1", "TokenReview", "");
    o.data.insert("spec".into(), json!({ "token": token }));
    o
}

/// The user of a `TokenReview` answer; `None` when the token was not authenticated.
pub fn reviewed_user(answer: &DynamicObject) -> Option<User> {
    let status = answer.data.get("status")?;
    if status.get("authenticated").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let u = status.get("user")?;
    let s = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let name = s("username");
    if name.is_empty() {
        return None;
    }
    let groups = u
        .get("groups")
        .and_then(|g| serde_json::from_value(g.clone()).ok())
        .unwrap_or_default();
    let extra = u
        .get("extra")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    Some(
        User {
            name,
            uid: s("uid"),
            groups,
            extra,
        }
        .authenticated(),
    )
}

/// The bearer token of `Authorization: Bearer T` (upstream `bearertoken` authenticator: the
/// scheme case-insensitive, an empty token is none).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A map whose entries expire.
#[derive(Debug)]
struct TtlCache<K, V> {
    entries: HashMap<K, (V, Instant)>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    fn new() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }

    /// The value of `k` unless it expired by `now`.
    fn get(&mut self, k: &K, now: Instant) -> Option<V> {
        match self.entries.get(k) {
            Some((v, until)) if *until > now => Some(v.clone()),
            Some(_) => {
                self.entries.remove(k);
                None
            }
            None => None,
        }
    }

    /// Keeps `v` for `k` until `now + ttl`.
    fn insert(&mut self, k: K, v: V, now: Instant, ttl: Duration) {
        if self.entries.len() >= CACHE_CAPACITY {
            self.entries.retain(|_, (_, until)| *until > now);
            if self.entries.len() >= CACHE_CAPACITY {
                self.entries.clear();
            }
        }
        self.entries.insert(k, (v, now + ttl));
    }
}

/// Why a request could not be authorized (the review failed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReviewError(String);

/// The kubelet's authenticator and authorizer, with their caches.
pub struct KubeletAuth {
    client: SharedClient,
    node: String,
    tokens: Mutex<TtlCache<String, Option<User>>>,
    decisions: Mutex<TtlCache<(User, Attributes), bool>>,
}

impl std::fmt::Debug for KubeletAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletAuth")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl KubeletAuth {
    /// Reviews through `client` for the kubelet of node `node`.
    pub fn new(client: SharedClient, node: &str) -> Self {
        Self {
            client,
            node: node.to_string(),
            tokens: Mutex::new(TtlCache::new()),
            decisions: Mutex::new(TtlCache::new()),
        }
    }

    /// The user of a request: its client certificate's, else its bearer token's (reviewed);
    /// `None` when it has neither or the token is not valid.
    pub async fn authenticate(
        &self,
        identity: Option<&ClientIdentity>,
        headers: &HeaderMap,
    ) -> Result<Option<User>, ReviewError> {
        if let Some(id) = identity {
            return Ok(Some(User::from_certificate(id)));
        }
        let Some(token) = bearer_token(headers) else {
            return Ok(None);
        };
        if let Some(user) = self.tokens.lock().get(&token.to_string(), Instant::now()) {
            return Ok(user);
        }
        let resource = ApiResource::of::<k8s_openapi::api::authentication::v1::TokenReview>();
        let answer = self
            .client
            .create(
                &resource,
                None,
                &token_review(token),
                &PostParams::default(),
            )
            .await
            .map_err(|e| ReviewError(e.to_string()))?;
        let user = reviewed_user(&answer);
        self.tokens.lock().insert(
            token.to_string(),
            user.clone(),
            Instant::now(),
            TOKEN_CACHE_TTL,
        );
        Ok(user)
    }

    /// Whether `user` may do `a`, from the cache or a SubjectAccessReview.
    pub async fn authorize(&self, user: &User, a: &Attributes) -> Result<bool, ReviewError> {
        let key = (user.clone(), a.clone());
        if let Some(allowed) = self.decisions.lock().get(&key, Instant::now()) {
            return Ok(allowed);
        }
        let resource =
            ApiResource::of::<k8s_openapi::api::authorization::v1::SubjectAccessReview>();
        let answer = self
            .client
            .create(
                &resource,
                None,
                &access_review(user, a),
                &PostParams::default(),
            )
            .await
            .map_err(|e| ReviewError(e.to_string()))?;
        let allowed = answer
            .data
            .get("status")
            .and_then(|s| s.get("allowed"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let ttl = if allowed {
            CACHE_AUTHORIZED_TTL
        } else {
            CACHE_UNAUTHORIZED_TTL
        };
        self.decisions
            .lock()
            .insert(key, allowed, Instant::now(), ttl);
        Ok(allowed)
    }
}

/// A plain-text error answer, as Go's `http.Error` writes it.
fn text(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            ),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{msg}\n"),
    )
        .into_response()
}

/// The middleware that authenticates and authorizes each request (upstream kubelet
/// `InstallAuthFilter`).
pub async fn middleware(
    State(auth): State<Arc<KubeletAuth>>,
    req: Request,
    next: Next,
) -> Response {
    let identity = req.extensions().get::<ClientIdentity>();
    let user = match auth.authenticate(identity, req.headers()).await {
        Ok(Some(user)) => user,
        Ok(None) => return text(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Err(e) => {
            tracing::warn!(error = %e, "kubelet: cannot review a bearer token");
            return text(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
    };
    let a = attributes(req.method(), req.uri().path(), &auth.node);
    let what = format!(
        "(user={}, verb={}, resource=nodes, subresource={})",
        user.name, a.verb, a.subresource
    );
    match auth.authorize(&user, &a).await {
        Ok(true) => next.run(req).await,
        Ok(false) => {
            tracing::debug!("kubelet: forbidden {what}");
            text(StatusCode::FORBIDDEN, &format!("Forbidden {what}"))
        }
        Err(e) => {
            tracing::warn!(error = %e, "kubelet: authorization error {what}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("Authorization error {what}"),
            )
        }
    }
}

#[cfg(test)]
mod tests;
