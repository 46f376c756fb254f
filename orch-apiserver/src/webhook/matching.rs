//! Whether a webhook is called for a request: its rules (upstream
//! `admission/plugin/webhook/predicates/rules/rules.go`), object selector
//! (`predicates/object/matcher.go`) and namespace selector (`predicates/namespace/matcher.go`).
//! `matchConditions` are evaluated by the dispatcher ([`super::admission`]).

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::RuleWithOperations;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use orch_types::labels::Selector;

/// What the rules of a webhook are matched against.
#[derive(Debug, Clone, Copy)]
pub struct RuleInput<'a> {
    /// `CREATE`, `UPDATE`, `DELETE`.
    pub operation: &'a str,
    /// API group of the resource.
    pub group: &'a str,
    /// Version of the resource.
    pub version: &'a str,
    /// Plural resource name.
    pub resource: &'a str,
    /// Subresource (`status`), `""` for the main resource.
    pub subresource: &'a str,
    /// The request's namespace (`""` for cluster-scoped objects).
    pub namespace: &'a str,
}

fn one_of(list: Option<&Vec<String>>, v: &str) -> bool {
    list.into_iter().flatten().any(|x| x == "*" || x == v)
}

/// Upstream `Matcher.Matches`: operation, group, version, resource (with `*`, `*/*`,
/// `res/*`, `*/sub`) and scope.
pub fn rule_matches(r: &RuleWithOperations, a: &RuleInput<'_>) -> bool {
    one_of(r.operations.as_ref(), a.operation)
        && one_of(r.api_groups.as_ref(), a.group)
        && one_of(r.api_versions.as_ref(), a.version)
        && resource_matches(r.resources.as_deref().unwrap_or_default(), a)
        && match r.scope.as_deref() {
            None | Some("*") => true,
            Some("Cluster") => a.namespace.is_empty(),
            Some("Namespaced") => !a.namespace.is_empty(),
            Some(_) => false,
        }
}

fn resource_matches(list: &[String], a: &RuleInput<'_>) -> bool {
    list.iter().any(|item| {
        let (res, sub) = item.split_once('/').unwrap_or((item, ""));
        if item == "*/*" {
            return true;
        }
        if a.subresource.is_empty() {
            sub.is_empty() && (res == "*" || res == a.resource)
        } else {
            !sub.is_empty()
                && (res == "*" || res == a.resource)
                && (sub == "*" || sub == a.subresource)
        }
    })
}

/// A selector as the webhook states it (`None`: everything, as the default `{}`); an invalid
/// one matches nothing.
pub fn selector(s: Option<&LabelSelector>) -> Selector {
    match s {
        None => Selector::everything(),
        Some(s) => Selector::try_from(s).unwrap_or_else(|_| Selector::nothing()),
    }
}

/// Upstream object matcher: the selector matches the new object's labels or the old
/// object's.
pub fn object_selector_matches(
    sel: &Selector,
    new: Option<&BTreeMap<String, String>>,
    old: Option<&BTreeMap<String, String>>,
) -> bool {
    if sel.is_everything() {
        return true;
    }
    let empty = BTreeMap::new();
    let hit = |l: Option<&BTreeMap<String, String>>| sel.matches(l.unwrap_or(&empty));
    (new.is_some() && hit(new))
        || (old.is_some() && hit(old))
        || (new.is_none() && old.is_none() && hit(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ops: &[&str], groups: &[&str], versions: &[&str], res: &[&str]) -> RuleWithOperations {
        let v = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect());
        RuleWithOperations {
            operations: v(ops),
            api_groups: v(groups),
            api_versions: v(versions),
            resources: v(res),
            scope: None,
        }
    }

    fn input<'a>(op: &'a str, resource: &'a str, sub: &'a str, ns: &'a str) -> RuleInput<'a> {
        RuleInput {
            operation: op,
            group: "",
            version: "v1",
            resource,
            subresource: sub,
            namespace: ns,
        }
    }

    #[test]
    fn rules_match_like_upstream() {
        let pods = rule(&["CREATE"], &[""], &["v1"], &["pods"]);
        assert!(rule_matches(&pods, &input("CREATE", "pods", "", "default")));
        assert!(!rule_matches(
            &pods,
            &input("UPDATE", "pods", "", "default")
        ));
        assert!(!rule_matches(
            &pods,
            &input("CREATE", "pods", "status", "default")
        ));
        assert!(!rule_matches(
            &pods,
            &input("CREATE", "configmaps", "", "default")
        ));

        let star = rule(&["*"], &["*"], &["*"], &["*"]);
        assert!(rule_matches(&star, &input("DELETE", "configmaps", "", "x")));
        assert!(!rule_matches(
            &star,
            &input("UPDATE", "pods", "status", "x")
        ));

        let status = rule(&["UPDATE"], &[""], &["v1"], &["pods/status"]);
        assert!(rule_matches(
            &status,
            &input("UPDATE", "pods", "status", "x")
        ));
        assert!(!rule_matches(&status, &input("UPDATE", "pods", "", "x")));

        let all_subs = rule(&["UPDATE"], &[""], &["v1"], &["*/status"]);
        assert!(rule_matches(
            &all_subs,
            &input("UPDATE", "nodes", "status", "")
        ));
        let everything = rule(&["UPDATE"], &[""], &["v1"], &["*/*"]);
        assert!(rule_matches(&everything, &input("UPDATE", "pods", "", "x")));
        assert!(rule_matches(
            &everything,
            &input("UPDATE", "pods", "status", "x")
        ));

        let apps = rule(&["CREATE"], &["apps"], &["v1"], &["deployments"]);
        assert!(!rule_matches(
            &apps,
            &input("CREATE", "deployments", "", "x")
        ));
    }

    #[test]
    fn scope_restricts_by_namespace() {
        let mut r = rule(&["*"], &["*"], &["*"], &["*"]);
        r.scope = Some("Namespaced".into());
        assert!(rule_matches(&r, &input("CREATE", "pods", "", "ns")));
        assert!(!rule_matches(&r, &input("CREATE", "nodes", "", "")));
        r.scope = Some("Cluster".into());
        assert!(!rule_matches(&r, &input("CREATE", "pods", "", "ns")));
        assert!(rule_matches(&r, &input("CREATE", "nodes", "", "")));
    }

    #[test]
    fn object_selector_looks_at_both_objects() {
        let sel: Selector = "team=a".parse().unwrap();
        let a: BTreeMap<_, _> = [("team".to_string(), "a".to_string())].into();
        let b: BTreeMap<_, _> = [("team".to_string(), "b".to_string())].into();
        assert!(object_selector_matches(&sel, Some(&a), None));
        assert!(object_selector_matches(&sel, Some(&b), Some(&a)));
        assert!(!object_selector_matches(&sel, Some(&b), None));
        assert!(object_selector_matches(&Selector::everything(), None, None));
        assert!(!object_selector_matches(&sel, None, Some(&b)));
    }
}
