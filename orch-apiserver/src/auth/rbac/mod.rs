//! Role-based access control (upstream `plugin/pkg/auth/authorizer/rbac/rbac.go` and
//! `pkg/apis/rbac/v1/evaluation_helpers.go`).
//!
//! The roles and bindings come from the watch cache into an [`Index`] (bindings indexed by
//! subject, so a request looks at the bindings of its user and groups only). A request is
//! allowed when a rule of a role bound to the user (cluster-wide by a ClusterRoleBinding, or
//! in the request's namespace by a RoleBinding) covers it; otherwise RBAC has no opinion.
//! The bootstrap roles and bindings are in [`bootstrap`], escalation checks in [`escalation`].

pub mod bootstrap;
pub mod escalation;
mod index;

pub use index::Index;

use super::authz::{Attributes, Authorizer, Decision, Rule};
use super::request_info::RequestInfo;
use super::UserInfo;
use k8s_openapi::api::rbac::v1::PolicyRule;
use std::sync::Arc;

/// Upstream `VerbMatches`.
fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn list(v: Option<&Vec<String>>) -> &[String] {
    v.map(Vec::as_slice).unwrap_or_default()
}

/// Upstream `APIGroupMatches`.
fn group_matches(rule: &PolicyRule, group: &str) -> bool {
    list(rule.api_groups.as_ref())
        .iter()
        .any(|g| g == "*" || g == group)
}

/// Upstream `ResourceMatches`: `*`, the resource with its subresource (`pods/log`), or
/// `*/subresource`.
fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    list(rule.resources.as_ref()).iter().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// Upstream `ResourceNameMatches`: no names means all.
fn name_matches(rule: &PolicyRule, name: &str) -> bool {
    let names = list(rule.resource_names.as_ref());
    names.is_empty() || names.iter().any(|n| n == name)
}

/// Upstream `NonResourceURLMatches`: `*`, the path, or a prefix ending in `*`.
fn url_matches(rule: &PolicyRule, path: &str) -> bool {
    list(rule.non_resource_urls.as_ref()).iter().any(|u| {
        u == "*"
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// Whether `rule` covers the request (upstream `RuleAllows`).
pub fn rule_allows(request: &RequestInfo, rule: &PolicyRule) -> bool {
    if request.is_resource_request {
        let combined = if request.subresource.is_empty() {
            request.resource.clone()
        } else {
            format!("{}/{}", request.resource, request.subresource)
        };
        verb_matches(rule, &request.verb)
            && group_matches(rule, &request.api_group)
            && resource_matches(rule, &combined, &request.subresource)
            && name_matches(rule, &request.name)
    } else {
        verb_matches(rule, &request.verb) && url_matches(rule, &request.path)
    }
}

/// The RBAC authorizer over an [`Index`].
#[derive(Debug, Clone)]
pub struct Rbac {
    index: Arc<Index>,
}

impl Rbac {
    /// An authorizer reading `index`.
    pub fn new(index: Arc<Index>) -> Self {
        Self { index }
    }
}

impl Authorizer for Rbac {
    fn authorize(&self, a: &Attributes<'_>) -> (Decision, String) {
        let mut errors = Vec::new();
        let allowed = self.index.visit_rules(
            a.user,
            &a.request.namespace,
            &mut |rule| rule_allows(a.request, rule),
            &mut errors,
        );
        if allowed {
            return (Decision::Allow, String::new());
        }
        let reason = if errors.is_empty() {
            String::new()
        } else {
            format!("RBAC: [{}]", errors.join(", "))
        };
        (Decision::NoOpinion, reason)
    }

    fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<Rule>, bool) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.index.visit_rules(
            user,
            namespace,
            &mut |r| {
                rules.push(Rule {
                    verbs: r.verbs.clone(),
                    api_groups: list(r.api_groups.as_ref()).to_vec(),
                    resources: list(r.resources.as_ref()).to_vec(),
                    resource_names: list(r.resource_names.as_ref()).to_vec(),
                    non_resource_urls: list(r.non_resource_urls.as_ref()).to_vec(),
                });
                false
            },
            &mut errors,
        );
        (rules, !errors.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: serde_json::Value) -> PolicyRule {
        serde_json::from_value(v).unwrap()
    }

    fn req(method: &str, path: &str) -> RequestInfo {
        super::super::request_info::parse(method, path, &Default::default())
    }

    #[test]
    fn resource_rules_match_as_upstream() {
        let pods =
            rule(json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}));
        assert!(rule_allows(&req("GET", "/api/v1/namespaces/d/pods"), &pods));
        assert!(rule_allows(
            &req("GET", "/api/v1/namespaces/d/pods/p"),
            &pods
        ));
        assert!(!rule_allows(
            &req("DELETE", "/api/v1/namespaces/d/pods/p"),
            &pods
        ));
        assert!(
            !rule_allows(&req("GET", "/api/v1/namespaces/d/pods/p/log"), &pods),
            "subresource needs its own rule"
        );
        assert!(!rule_allows(
            &req("GET", "/apis/apps/v1/namespaces/d/deployments"),
            &pods
        ));
        let status =
            rule(json!({"verbs": ["update"], "apiGroups": ["*"], "resources": ["*/status"]}));
        assert!(rule_allows(
            &req("PUT", "/apis/apps/v1/namespaces/d/deployments/x/status"),
            &status
        ));
        assert!(!rule_allows(
            &req("PUT", "/apis/apps/v1/namespaces/d/deployments/x"),
            &status
        ));
        let named = rule(
            json!({"verbs": ["*"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}),
        );
        assert!(rule_allows(
            &req("PUT", "/api/v1/namespaces/d/configmaps/a"),
            &named
        ));
        assert!(!rule_allows(
            &req("PUT", "/api/v1/namespaces/d/configmaps/b"),
            &named
        ));
        assert!(
            !rule_allows(&req("GET", "/api/v1/namespaces/d/configmaps"), &named),
            "a list has no name"
        );
    }

    #[test]
    fn non_resource_rules_match_paths_and_prefixes() {
        let r = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}));
        assert!(rule_allows(&req("GET", "/healthz"), &r));
        assert!(rule_allows(&req("GET", "/apis/apps/v1"), &r));
        assert!(!rule_allows(&req("GET", "/version"), &r));
        assert!(!rule_allows(&req("POST", "/healthz"), &r));
        let pods = rule(json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]}));
        assert!(!rule_allows(&req("GET", "/healthz"), &pods));
    }
}
