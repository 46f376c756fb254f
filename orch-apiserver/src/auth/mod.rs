//! Who is asking, and may they: the identities the API server authenticates and the
//! interfaces its authenticators share.
//!
//! - A TLS client certificate verified against the cluster CA arrives as a
//!   [`ClientIdentity`] request extension (inserted by the TLS acceptor): the user is its
//!   Common Name, the groups its Organizations (upstream `x509.CommonNameUserConversion`,
//!   `staging/src/k8s.io/apiserver/pkg/authentication/request/x509/x509.go`).
//! - A bearer token is offered to each [`TokenAuthenticator`] in turn.
//!
//! Identities are Kubernetes' `authentication.k8s.io/v1` [`UserInfo`].
//!
//! Layout: [`authn`] (the authentication middleware: client certificates, the static token
//! file, bootstrap tokens, registered [`TokenAuthenticator`]s, anonymous; impersonation),
//! [`request_info`] (what a request asks), [`authz`] (the [`authz::Authorizer`] chain and the
//! 403), [`rbac`] (roles, bindings, bootstrap policy, escalation), [`node`] (the Node
//! authorizer and NodeRestriction admission), [`review`] (the access and token review APIs).
//! The user of a request is [`current_user`] while the API server handles it; the in-process
//! client runs as [`loopback_user`].

pub mod authn;
pub mod authz;
pub mod node;
pub mod rbac;
pub mod request_info;
pub mod review;

pub use k8s_openapi::api::authentication::v1::UserInfo;
use std::sync::Arc;

tokio::task_local! {
    static CURRENT_USER: Arc<UserInfo>;
}

/// The user of the in-process client (upstream's loopback client identity).
pub const LOOPBACK_USER: &str = "system:apiserver";

/// `system:apiserver` in `system:masters`: who in-process callers act as.
pub fn loopback_user() -> UserInfo {
    UserInfo {
        username: Some(LOOPBACK_USER.into()),
        uid: Some(LOOPBACK_USER.into()),
        groups: Some(vec![
            authz::PRIVILEGED_GROUP.into(),
            authn::ALL_AUTHENTICATED.into(),
        ]),
        extra: None,
    }
}

/// The user the current request runs as: the authenticated one over HTTP, the
/// [`loopback_user`] for in-process calls.
pub fn current_user() -> Arc<UserInfo> {
    CURRENT_USER
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::new(loopback_user()))
}

/// Runs `f` as `user` (what [`current_user`] returns inside it).
pub async fn run_as<F: std::future::Future>(user: Arc<UserInfo>, f: F) -> F::Output {
    CURRENT_USER.scope(user, f).await
}

/// Whether `user` is in `system:masters`.
pub fn is_privileged(user: &UserInfo) -> bool {
    user.groups
        .iter()
        .flatten()
        .any(|g| g == authz::PRIVILEGED_GROUP)
}

/// The authentication and authorization configuration of an API server.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `--authorization-mode`, in order (`[AlwaysAllow]`: everything allowed).
    pub authorization_modes: Vec<authz::Mode>,
    /// `--token-auth-file`: a CSV of `token,user,uid,"group1,group2"`.
    pub token_auth_file: Option<std::path::PathBuf>,
    /// `--anonymous-auth`: requests without credentials run as `system:anonymous` (else 401).
    pub anonymous: bool,
}

impl Default for AuthConfig {
    /// AlwaysAllow, no token file, anonymous requests allowed (what an embedded server wants).
    fn default() -> Self {
        Self {
            authorization_modes: vec![authz::Mode::AlwaysAllow],
            token_auth_file: None,
            anonymous: true,
        }
    }
}

impl AuthConfig {
    /// What `orch up` and `orch apiserver` use: `Node,RBAC`, anonymous allowed.
    pub fn secure() -> Self {
        Self {
            authorization_modes: vec![authz::Mode::Node, authz::Mode::Rbac],
            ..Self::default()
        }
    }
}

/// The authenticators and authorizers of an API server.
#[derive(Debug)]
pub struct Auth {
    /// The authorizer chain.
    pub authorizer: authz::Chain,
    /// The RBAC index, when RBAC is a mode.
    pub rbac: Option<Arc<rbac::Index>>,
    static_tokens: authn::StaticTokens,
    extra: parking_lot::RwLock<Vec<Arc<dyn TokenAuthenticator>>>,
    anonymous: bool,
}

impl Auth {
    /// Builds the chain of `config` over `cache` (RBAC follows it); reads the token file.
    pub fn new(config: &AuthConfig, cache: &Arc<crate::cache::WatchCache>) -> Result<Self, String> {
        let static_tokens = match &config.token_auth_file {
            Some(p) => authn::StaticTokens::load(p)?,
            None => authn::StaticTokens::default(),
        };
        let mut members: Vec<Arc<dyn authz::Authorizer>> = Vec::new();
        let mut index = None;
        for mode in &config.authorization_modes {
            match mode {
                authz::Mode::AlwaysAllow => {
                    members.push(Arc::new(authz::AlwaysAllow));
                }
                authz::Mode::Node => {
                    members.push(Arc::new(node::NodeAuthorizer::new(cache.clone())))
                }
                authz::Mode::Rbac => {
                    let i = index
                        .get_or_insert_with(|| rbac::Index::follow(cache))
                        .clone();
                    members.push(Arc::new(rbac::Rbac::new(i)));
                }
            }
        }
        if config.authorization_modes == [authz::Mode::AlwaysAllow] {
            members.clear();
        }
        Ok(Self {
            authorizer: authz::Chain::new(members),
            rbac: index,
            static_tokens,
            extra: Default::default(),
            anonymous: config.anonymous,
        })
    }

    /// Adds a token authenticator, asked after the static tokens and bootstrap tokens.
    pub fn add_token_authenticator(&self, a: Arc<dyn TokenAuthenticator>) {
        self.extra.write().push(a);
    }
}

/// The subject of a client certificate that verified against the client CA, put on each
/// request of the connection by the TLS acceptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Subject Common Name: the user name.
    pub common_name: String,
    /// Subject Organizations: the groups.
    pub organizations: Vec<String>,
}

/// A client certificate that did not verify against the client CA (why), put on each request
/// of the connection by the API server's TLS acceptor: such a request is answered `401` unless
/// it carries a valid bearer token, as upstream's union authenticator does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedClientCertificate(pub String);

/// Checks a bearer token.
#[async_trait::async_trait]
pub trait TokenAuthenticator: Send + Sync + std::fmt::Debug {
    /// `None`: not a token of this kind (the next authenticator is asked); `Some(Err(why))`:
    /// a token of this kind that is not valid (expired, revoked, bound object gone), answered
    /// with 401; `Some(Ok(user))`: authenticated.
    async fn authenticate(&self, token: &str) -> Option<Result<UserInfo, String>>;
}

/// Go's `%q` of a string list: `["a" "b"]`.
fn quoted_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// Admission of the current user's write: NodeRestriction ([`node::admit`]) and RBAC
/// escalation prevention (upstream `pkg/registry/rbac/{role,clusterrole,rolebinding,
/// clusterrolebinding}/policybased/storage.go`): writing a role needs the `escalate` verb on
/// it or holding all its rules; writing a binding needs `bind` on the role it refers to or
/// holding all that role's rules.
pub(crate) fn admit(
    api: &crate::server::ApiServer,
    info: &orch_types::registry::ResourceInfo,
    obj: &orch_types::DynamicObject,
    old: Option<&orch_types::DynamicObject>,
) -> Result<(), orch_types::ApiError> {
    use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
    let user = current_user();
    if is_privileged(&user) {
        return Ok(());
    }
    node::admit(&user, info, obj, old)?;
    let Some(index) = &api.auth.rbac else {
        return Ok(());
    };
    if info.group != "rbac.authorization.k8s.io" {
        return Ok(());
    }
    let ns = obj.namespace().unwrap_or("").to_string();
    let name = obj.name().to_string();
    let may = |verb: &str, resource: &str, target: &str| {
        let request = request_info::RequestInfo {
            is_resource_request: true,
            verb: verb.into(),
            api_group: info.group.into(),
            resource: resource.into(),
            namespace: ns.clone(),
            name: target.into(),
            ..Default::default()
        };
        matches!(api.authorize(&user, &request).0, authz::Decision::Allow)
    };
    let rules = |o: &orch_types::DynamicObject| -> Vec<PolicyRule> {
        o.data
            .get("rules")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default()
    };
    let aggregates = |o: &orch_types::DynamicObject| {
        info.kind == "ClusterRole"
            && o.data
                .get("aggregationRule")
                .and_then(|a| a.get("clusterRoleSelectors"))
                .and_then(serde_json::Value::as_array)
                .is_some_and(|s| !s.is_empty())
    };
    // Setting, changing or dropping an aggregationRule needs `*` on `*.*` (it can gather
    // anything), after the rules themselves (upstream clusterrole/policybased/storage.go).
    let mut full_authority_too = false;
    let wanted: Vec<PolicyRule> = match info.kind {
        "Role" | "ClusterRole" => {
            if may("escalate", info.plural, &name) {
                return Ok(());
            }
            full_authority_too = aggregates(obj) || old.is_some_and(aggregates);
            if old.is_some_and(|o| rules(o) == rules(obj) && !full_authority_too) {
                return Ok(());
            }
            rules(obj)
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let Some(role_ref) = obj
                .data
                .get("roleRef")
                .and_then(|r| serde_json::from_value::<RoleRef>(r.clone()).ok())
            else {
                return Ok(());
            };
            let plural = if role_ref.kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if may("bind", plural, &role_ref.name) {
                return Ok(());
            }
            index
                .rules_of(&ns, &role_ref)
                .map(|r| (*r).clone())
                .map_err(|e| orch_types::ApiError::forbidden(&info.group_resource(), &name, &e))?
        }
        _ => return Ok(()),
    };
    let mut held = Vec::new();
    let mut errors = Vec::new();
    index.visit_rules(
        &user,
        &ns,
        &mut |r| {
            held.push(r.clone());
            false
        },
        &mut errors,
    );
    let missing = rbac::escalation::uncovered(&held, &wanted);
    if missing.is_empty() {
        let everything = [
            PolicyRule {
                verbs: vec!["*".into()],
                api_groups: Some(vec!["*".into()]),
                resources: Some(vec!["*".into()]),
                ..Default::default()
            },
            PolicyRule {
                verbs: vec!["*".into()],
                non_resource_urls: Some(vec!["*".into()]),
                ..Default::default()
            },
        ];
        if full_authority_too && !rbac::escalation::uncovered(&held, &everything).is_empty() {
            return Err(orch_types::ApiError::forbidden(
                &info.group_resource(),
                &name,
                "must have cluster-admin privileges to use the aggregationRule",
            ));
        }
        return Ok(());
    }
    let lines: Vec<String> = missing.iter().map(rbac::escalation::compact).collect();
    Err(orch_types::ApiError::forbidden(
        &info.group_resource(),
        &name,
        &format!(
            "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            user.username.as_deref().unwrap_or(""),
            quoted_list(user.groups.as_deref().unwrap_or_default()),
            lines.join("\n")
        ),
    ))
}
