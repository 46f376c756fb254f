//! Authorization: may this user do what this request asks (upstream
//! `staging/src/k8s.io/apiserver/pkg/authorization/authorizer/interfaces.go` and the union in
//! `.../authorizerfactory` / `union.go`).
//!
//! An [`Authorizer`] answers allow, deny or no opinion; the [`Chain`] asks each configured
//! mode in order and the first that decides wins; members of [`PRIVILEGED_GROUP`]
//! (`system:masters`) are always allowed, as upstream's privileged-group authorizer does. A
//! refused request gets upstream's 403 ([`forbidden`]).

use super::request_info::RequestInfo;
use super::UserInfo;
use orch_types::ApiError;
use std::sync::Arc;

/// The group allowed everything (upstream `user.SystemPrivilegedGroup`).
pub const PRIVILEGED_GROUP: &str = "system:masters";

/// What an authorizer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed: no later authorizer is asked.
    Allow,
    /// Refused: no later authorizer is asked.
    Deny,
    /// No opinion: the next authorizer is asked; refused when none allows.
    NoOpinion,
}

/// Who asks to do what (upstream `authorizer.AttributesRecord`).
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    /// The user.
    pub user: &'a UserInfo,
    /// The request.
    pub request: &'a RequestInfo,
}

impl Attributes<'_> {
    /// The user name.
    pub fn user_name(&self) -> &str {
        self.user.username.as_deref().unwrap_or("")
    }

    /// The user's groups.
    pub fn groups(&self) -> &[String] {
        self.user.groups.as_deref().unwrap_or_default()
    }
}

/// A rule a user holds, as a rules review reports it (upstream `authorizer.ResourceRuleInfo`
/// and `NonResourceRuleInfo` in one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// Verbs.
    pub verbs: Vec<String>,
    /// API groups (resource rules).
    pub api_groups: Vec<String>,
    /// Resources (resource rules).
    pub resources: Vec<String>,
    /// Object names (resource rules; empty: all).
    pub resource_names: Vec<String>,
    /// Paths (non-resource rules).
    pub non_resource_urls: Vec<String>,
}

/// Decides requests.
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    /// The decision and, when not allowed, why (may be empty).
    fn authorize(&self, a: &Attributes<'_>) -> (Decision, String);

    /// The rules `user` holds in `namespace` (upstream `RuleResolver.RulesFor`) and whether
    /// the list is incomplete (an authorizer that cannot list its rules says so).
    fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<Rule>, bool);
}

/// Allows everything (upstream `--authorization-mode=AlwaysAllow`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _: &Attributes<'_>) -> (Decision, String) {
        (Decision::Allow, String::new())
    }

    fn rules_for(&self, _: &UserInfo, _: &str) -> (Vec<Rule>, bool) {
        let all = vec!["*".to_string()];
        (
            vec![
                Rule {
                    verbs: all.clone(),
                    api_groups: all.clone(),
                    resources: all.clone(),
                    ..Default::default()
                },
                Rule {
                    verbs: all.clone(),
                    non_resource_urls: all,
                    ..Default::default()
                },
            ],
            false,
        )
    }
}

/// The modes of `--authorization-mode` orch implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Everything allowed.
    AlwaysAllow,
    /// The Node authorizer (`system:node:NAME` users, [`super::node`]).
    Node,
    /// Role-based access control ([`super::rbac`]).
    Rbac,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "AlwaysAllow" => Ok(Self::AlwaysAllow),
            "Node" => Ok(Self::Node),
            "RBAC" => Ok(Self::Rbac),
            other => Err(format!(
                "authorization mode {other:?} is not supported: use AlwaysAllow, Node or RBAC"
            )),
        }
    }
}

/// Parses a comma-separated `--authorization-mode` value (`Node,RBAC`).
pub fn parse_modes(s: &str) -> Result<Vec<Mode>, String> {
    let modes: Vec<Mode> = s
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if modes.is_empty() {
        return Err("at least one authorization mode must be given".into());
    }
    Ok(modes)
}

/// The configured authorizers in order, after the privileged group.
#[derive(Debug, Clone)]
pub struct Chain {
    members: Vec<Arc<dyn Authorizer>>,
}

impl Chain {
    /// A chain of these authorizers.
    pub fn new(members: Vec<Arc<dyn Authorizer>>) -> Self {
        Self { members }
    }

    /// Whether the chain allows everything (only [`AlwaysAllow`]).
    pub fn is_always_allow(&self) -> bool {
        self.members.is_empty()
    }
}

impl Authorizer for Chain {
    fn authorize(&self, a: &Attributes<'_>) -> (Decision, String) {
        if self.members.is_empty() || a.groups().iter().any(|g| g == PRIVILEGED_GROUP) {
            return (Decision::Allow, String::new());
        }
        let mut reasons = Vec::new();
        for m in &self.members {
            match m.authorize(a) {
                (Decision::NoOpinion, why) => {
                    if !why.is_empty() {
                        reasons.push(why);
                    }
                }
                decided => return decided,
            }
        }
        (Decision::NoOpinion, reasons.join(", "))
    }

    fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<Rule>, bool) {
        let privileged = user.groups.iter().flatten().any(|g| g == PRIVILEGED_GROUP);
        if self.members.is_empty() || privileged {
            return AlwaysAllow.rules_for(user, namespace);
        }
        let mut rules = Vec::new();
        let mut incomplete = false;
        for m in &self.members {
            let (r, inc) = m.rules_for(user, namespace);
            rules.extend(r);
            incomplete |= inc;
        }
        (rules, incomplete)
    }
}

/// Upstream `forbiddenMessage`: `User "jane" cannot list resource "pods" in API group "" in
/// the namespace "default"`.
pub fn forbidden_message(a: &Attributes<'_>) -> String {
    let user = a.user_name();
    let r = a.request;
    if !r.is_resource_request {
        return format!("User {user:?} cannot {} path {:?}", r.verb, r.path);
    }
    let mut resource = r.resource.clone();
    if !r.subresource.is_empty() {
        resource = format!("{resource}/{}", r.subresource);
    }
    if r.namespace.is_empty() {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            r.verb, r.api_group
        )
    } else {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            r.verb, r.api_group, r.namespace
        )
    }
}

/// The 403 of a refused request (upstream `responsewriters.Forbidden` →
/// `errors.NewForbidden`): `pods is forbidden: User "jane" cannot list …`, with the reason
/// appended after `: ` when there is one.
pub fn forbidden(a: &Attributes<'_>, reason: &str) -> ApiError {
    let mut why = forbidden_message(a);
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    let r = a.request;
    let resource = if r.api_group.is_empty() {
        r.resource.clone()
    } else {
        format!("{}.{}", r.resource, r.api_group)
    };
    let message = match (resource.is_empty(), r.name.is_empty()) {
        (true, _) => format!("forbidden: {why}"),
        (false, true) => format!("{resource} is forbidden: {why}"),
        (false, false) => format!("{resource} {:?} is forbidden: {why}", r.name),
    };
    let mut e = ApiError::new(403, orch_types::status::reason::FORBIDDEN, message);
    e.details = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
            name: Some(r.name.clone()).filter(|n| !n.is_empty()),
            group: Some(r.api_group.clone()).filter(|g| !g.is_empty()),
            kind: Some(r.resource.clone()).filter(|k| !k.is_empty()),
            ..Default::default()
        },
    );
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_are_upstreams() {
        let user = UserInfo {
            username: Some("jane".into()),
            ..Default::default()
        };
        let q = Default::default();
        let list = super::super::request_info::parse("GET", "/api/v1/namespaces/default/pods", &q);
        let a = Attributes {
            user: &user,
            request: &list,
        };
        assert_eq!(
            forbidden(&a, "").message,
            "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let status = super::super::request_info::parse("PUT", "/api/v1/nodes/n2/status", &q);
        let a = Attributes {
            user: &user,
            request: &status,
        };
        assert_eq!(
            forbidden(&a, "").message,
            "nodes \"n2\" is forbidden: User \"jane\" cannot update resource \"nodes/status\" in API group \"\" at the cluster scope"
        );
        let path = super::super::request_info::parse("GET", "/healthz", &q);
        let a = Attributes {
            user: &user,
            request: &path,
        };
        assert_eq!(
            forbidden(&a, "").message,
            "forbidden: User \"jane\" cannot get path \"/healthz\""
        );
    }

    #[test]
    fn modes_parse() {
        assert_eq!(parse_modes("Node,RBAC").unwrap(), [Mode::Node, Mode::Rbac]);
        assert!(parse_modes("ABAC").is_err());
        assert!(parse_modes("").is_err());
    }
}
