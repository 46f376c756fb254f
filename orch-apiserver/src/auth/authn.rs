//! Authentication and the per-request authorization check: an axum middleware on the API
//! router (upstream `staging/src/k8s.io/apiserver/pkg/endpoints/filters/authentication.go`,
//! `impersonation.go`, `authorization.go`).
//!
//! In order: a verified client certificate ([`super::ClientIdentity`]); a bearer token, offered
//! to the static token file, service-account tokens, bootstrap tokens, then every registered
//! [`super::TokenAuthenticator`] — a token none accepts is a 401, never anonymous; no
//! credentials: `system:anonymous` in `system:unauthenticated` when anonymous auth is on (else
//! 401). Authenticated users get `system:authenticated`. Then the `Impersonate-*` headers,
//! then the authorizer; a refused request is a 403.

use super::authz::{self, Attributes, Authorizer, Decision};
use super::request_info::{self, RequestInfo};
use super::{ClientIdentity, RefusedClientCertificate, UserInfo};
use crate::rest::negotiate::Failure;
use crate::server::ApiServer;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orch_types::ApiError;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The group of every authenticated user.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// The group of anonymous requests.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The anonymous user.
pub const ANONYMOUS: &str = "system:anonymous";

/// The 401 upstream answers (`Status` with message and reason `Unauthorized`).
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// The users of a `--token-auth-file` (upstream
/// `staging/src/k8s.io/apiserver/pkg/authentication/token/tokenfile/tokenfile.go`).
#[derive(Debug, Default, Clone)]
pub struct StaticTokens {
    users: HashMap<String, UserInfo>,
}

/// One CSV record: fields separated by commas, a field in double quotes may hold commas
/// (`""` is a quote); spaces before a field are dropped.
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut start = true;
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' if start && !quoted => {}
            '"' if start && !quoted => {
                quoted = true;
                start = false;
            }
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            }
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
                start = true;
            }
            c => {
                cur.push(c);
                start = false;
            }
        }
    }
    out.push(cur);
    out
}

impl StaticTokens {
    /// Parses a token file: one `token,user,uid[,"group1,group2"]` record a line.
    pub fn parse(text: &str, path: &str) -> Result<Self, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let f = csv_fields(line);
            if f.len() < 3 {
                return Err(format!(
                    "token file '{path}' must have at least 3 columns (token, user name, user uid), found {}",
                    f.len()
                ));
            }
            if f[0].is_empty() {
                tracing::warn!(path, record = i + 1, "empty token in the token file");
                continue;
            }
            let groups: Vec<String> = f
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            users.insert(
                f[0].clone(),
                UserInfo {
                    username: Some(f[1].clone()),
                    uid: Some(f[2].clone()),
                    groups: Some(groups),
                    extra: None,
                },
            );
        }
        Ok(Self { users })
    }

    /// Reads and parses `path`.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }
}

/// Adds `system:authenticated` (upstream `group.AuthenticatedGroupAdder`).
fn authenticated(mut u: UserInfo) -> UserInfo {
    let groups = u.groups.get_or_insert_with(Vec::new);
    if !groups.iter().any(|g| g == ALL_AUTHENTICATED) {
        groups.push(ALL_AUTHENTICATED.into());
    }
    u
}

/// The anonymous user.
pub fn anonymous() -> UserInfo {
    UserInfo {
        username: Some(ANONYMOUS.into()),
        groups: Some(vec![ALL_UNAUTHENTICATED.into()]),
        ..Default::default()
    }
}

/// Bootstrap tokens (upstream `plugin/pkg/auth/authenticator/token/bootstrap/bootstrap.go`):
/// `ID.SECRET` checked against the Secret `bootstrap-token-ID` of type
/// `bootstrap.kubernetes.io/token` in `kube-system`.
async fn bootstrap_token(api: &ApiServer, token: &str) -> Option<Result<UserInfo, String>> {
    let (id, secret) = token.split_once('.')?;
    let lower = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !lower(id, 6) || !lower(secret, 16) {
        return None;
    }
    let info = orch_types::registry::by_kind("v1", "Secret")?;
    let name = format!("bootstrap-token-{id}");
    let invalid = || Some(Err("invalid bootstrap token".to_string()));
    let Ok(s) = api.get_object(info, Some("kube-system"), &name).await else {
        return invalid();
    };
    if s.metadata.deletion_timestamp.is_some()
        || s.data.get("type").and_then(|t| t.as_str()) != Some("bootstrap.kubernetes.io/token")
    {
        return invalid();
    }
    let field = |k: &str| -> Option<String> {
        use base64::Engine;
        let v = s.data.get("data")?.get(k)?.as_str()?;
        let raw = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
        String::from_utf8(raw).ok()
    };
    if field("token-id").as_deref() != Some(id) || field("token-secret").as_deref() != Some(secret)
    {
        return invalid();
    }
    if field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return invalid();
    }
    if let Some(exp) = field("expiration") {
        match exp.parse::<jiff::Timestamp>() {
            Ok(t) if t > jiff::Timestamp::now() => {}
            _ => return Some(Err("bootstrap token expired".to_string())),
        }
    }
    let mut groups = vec!["system:bootstrappers".to_string()];
    for g in field("auth-extra-groups").unwrap_or_default().split(',') {
        let g = g.trim();
        if g.starts_with("system:bootstrappers:") {
            groups.push(g.to_string());
        } else if !g.is_empty() {
            return invalid();
        }
    }
    Some(Ok(UserInfo {
        username: Some(format!("system:bootstrap:{id}")),
        groups: Some(groups),
        ..Default::default()
    }))
}

impl ApiServer {
    /// Checks a bearer token: static tokens, service-account tokens of this server's issuer
    /// ([`crate::serviceaccount`]), bootstrap tokens, then the registered authenticators
    /// (`Err`: refused, answered with 401), in upstream's order
    /// (`pkg/kubeapiserver/authenticator/config.go`).
    pub async fn authenticate_token(&self, token: &str) -> Result<UserInfo, String> {
        if let Some(u) = self.auth.static_tokens.users.get(token) {
            return Ok(authenticated(u.clone()));
        }
        if let Some(r) = self.authenticate_service_account_token(token).await {
            return r.map(authenticated);
        }
        if let Some(r) = bootstrap_token(self, token).await {
            return r.map(authenticated);
        }
        let extra: Vec<_> = self.auth.extra.read().clone();
        for a in extra {
            if let Some(r) = a.authenticate(token).await {
                return r.map(authenticated);
            }
        }
        Err("invalid bearer token".to_string())
    }

    /// The decision of the authorizer chain on `request` by `user`.
    pub fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> (Decision, String) {
        self.auth
            .authorizer
            .authorize(&Attributes { user, request })
    }

    /// The user of an HTTP request, or the 401.
    async fn authenticate_request(
        &self,
        identity: Option<Result<ClientIdentity, RefusedClientCertificate>>,
        header: Option<String>,
    ) -> Result<UserInfo, ApiError> {
        let refused = match identity {
            Some(Ok(id)) => {
                return Ok(authenticated(UserInfo {
                    username: Some(id.common_name),
                    groups: Some(id.organizations),
                    ..Default::default()
                }));
            }
            Some(Err(RefusedClientCertificate(why))) => Some(why),
            None => None,
        };
        if let Some(h) = header.as_deref() {
            let token = h
                .strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty());
            if let Some(token) = token {
                return self.authenticate_token(token).await.map_err(|why| {
                    tracing::debug!(why, "bearer token refused");
                    unauthorized()
                });
            }
        }
        // A certificate that did not verify fails the request rather than falling through to
        // anonymous (upstream wraps its authenticators in `union.NewFailOnError` before the
        // anonymous one, `pkg/kubeapiserver/authenticator/config.go`).
        if let Some(why) = refused {
            tracing::debug!(why, "client certificate refused");
            return Err(unauthorized());
        }
        if self.auth.anonymous {
            Ok(anonymous())
        } else {
            Err(unauthorized())
        }
    }
}

const IMPERSONATE_USER: &str = "impersonate-user";
const IMPERSONATE_GROUP: &str = "impersonate-group";
const IMPERSONATE_UID: &str = "impersonate-uid";
const IMPERSONATE_EXTRA: &str = "impersonate-extra-";

/// Applies the `Impersonate-*` headers (upstream `WithImpersonation`): each impersonated
/// user, group, uid and extra value needs the `impersonate` verb on `users`, `groups`,
/// `uids` (authentication.k8s.io) or `userextras/KEY`, and service accounts on
/// `serviceaccounts` in their namespace. `None`: no impersonation asked.
fn impersonate(
    api: &ApiServer,
    user: &UserInfo,
    headers: &HeaderMap,
) -> Option<Result<UserInfo, ApiError>> {
    let values = |h: &str| -> Vec<String> {
        headers
            .get_all(h)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    };
    let name = values(IMPERSONATE_USER).into_iter().next();
    let groups = values(IMPERSONATE_GROUP);
    let uid = values(IMPERSONATE_UID).into_iter().next();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix(IMPERSONATE_EXTRA) {
            let key = crate::rest::router::pct_decode(key);
            extra
                .entry(key)
                .or_default()
                .extend(v.to_str().ok().map(str::to_string));
        }
    }
    let Some(name) = name else {
        if groups.is_empty() && uid.is_none() && extra.is_empty() {
            return None;
        }
        return Some(Err(ApiError::bad_request(
            "requested impersonation of groups, uid or extra without impersonating a user",
        )));
    };
    let check = |group: &str, resource: &str, sub: &str, namespace: &str, obj: &str| {
        let request = RequestInfo {
            is_resource_request: true,
            verb: "impersonate".into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: namespace.into(),
            name: obj.into(),
            ..Default::default()
        };
        match api.authorize(user, &request) {
            (Decision::Allow, _) => Ok(()),
            (_, why) => Err(authz::forbidden(
                &Attributes {
                    user,
                    request: &request,
                },
                &why,
            )),
        }
    };
    let mut checks = Vec::new();
    let sa = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'));
    match sa {
        Some((ns, sa)) => checks.push((
            "",
            "serviceaccounts",
            String::new(),
            ns.to_string(),
            sa.to_string(),
        )),
        None => checks.push(("", "users", String::new(), String::new(), name.clone())),
    }
    for g in &groups {
        checks.push(("", "groups", String::new(), String::new(), g.clone()));
    }
    if let Some(u) = &uid {
        checks.push((
            "authentication.k8s.io",
            "uids",
            String::new(),
            String::new(),
            u.clone(),
        ));
    }
    for (k, vs) in &extra {
        for v in vs {
            checks.push((
                "authentication.k8s.io",
                "userextras",
                k.clone(),
                String::new(),
                v.clone(),
            ));
        }
    }
    for (group, resource, sub, ns, obj) in &checks {
        if let Err(e) = check(group, resource, sub, ns, obj) {
            return Some(Err(e));
        }
    }
    let mut all_groups = groups;
    if let Some((ns, _)) = sa {
        for g in [
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
        ] {
            if !all_groups.contains(&g) {
                all_groups.push(g);
            }
        }
    }
    let impersonated = UserInfo {
        username: Some(name.clone()),
        uid,
        groups: Some(all_groups),
        extra: (!extra.is_empty()).then_some(extra),
    };
    Some(Ok(if name == ANONYMOUS {
        let mut u = impersonated;
        let g = u.groups.get_or_insert_with(Vec::new);
        if !g.iter().any(|x| x == ALL_UNAUTHENTICATED) {
            g.push(ALL_UNAUTHENTICATED.into());
        }
        u
    } else {
        authenticated(impersonated)
    }))
}

/// The middleware: authenticates, applies impersonation, authorizes, then runs the request
/// as its user ([`super::current_user`]).
pub async fn middleware(State(api): State<Arc<ApiServer>>, req: Request, next: Next) -> Response {
    let identity = match req.extensions().get::<ClientIdentity>() {
        Some(id) => Some(Ok(id.clone())),
        None => req
            .extensions()
            .get::<RefusedClientCertificate>()
            .map(|r| Err(r.clone())),
    };
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let user = match api.authenticate_request(identity, header).await {
        Ok(u) => u,
        Err(e) => return Failure(e).into_response(),
    };
    let user = match impersonate(&api, &user, req.headers()) {
        None => user,
        Some(Ok(u)) => u,
        Some(Err(e)) => return Failure(e).into_response(),
    };
    if !api.auth.authorizer.is_always_allow() {
        let query: HashMap<String, String> = crate::rest::router::parse_query(req.uri().query());
        let info = request_info::parse(req.method().as_str(), req.uri().path(), &query);
        if let (Decision::Deny | Decision::NoOpinion, why) = api.authorize(&user, &info) {
            let e = authz::forbidden(
                &Attributes {
                    user: &user,
                    request: &info,
                },
                &why,
            );
            return Failure(e).into_response();
        }
    }
    super::run_as(Arc::new(user), next.run(req)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_records() {
        let t = StaticTokens::parse("abc,jane,u1,\"dev,ops\"\n\n t2 , bob,u2\n,nobody,u3\n", "f")
            .unwrap();
        let jane = &t.users["abc"];
        assert_eq!(jane.username.as_deref(), Some("jane"));
        assert_eq!(
            jane.groups.as_deref(),
            Some(&["dev".to_string(), "ops".to_string()][..])
        );
        assert_eq!(t.users["t2 "].username.as_deref(), Some("bob"));
        assert_eq!(t.users.len(), 2, "an empty token is skipped");
        let e = StaticTokens::parse("abc,jane\n", "f").unwrap_err();
        assert!(e.contains("at least 3 columns"), "{e}");
    }
}
