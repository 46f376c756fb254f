//! Escalation prevention (upstream `pkg/registry/rbac/escalation_check.go` and
//! `pkg/registry/rbac/validation/rule.go` `ConfirmNoEscalation` / `Covers`): a user may only
//! write a role, or bind one, whose rules they already hold, unless they may `escalate` the
//! role (or `bind` it) or are privileged.

use k8s_openapi::api::rbac::v1::PolicyRule;

fn list(v: Option<&Vec<String>>) -> Vec<String> {
    v.cloned().unwrap_or_default()
}

/// One verb on one group/resource/name, or one verb on one path (upstream `BreakdownRule`).
fn breakdown(r: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| Some(vec![s.clone()]);
    let mut out = Vec::new();
    for verb in &r.verbs {
        for url in list(r.non_resource_urls.as_ref()) {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: one(&url),
                ..Default::default()
            });
        }
        for group in list(r.api_groups.as_ref()) {
            for resource in list(r.resources.as_ref()) {
                let names = list(r.resource_names.as_ref());
                if names.is_empty() {
                    out.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: one(&group),
                        resources: one(&resource),
                        ..Default::default()
                    });
                }
                for name in names {
                    out.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: one(&group),
                        resources: one(&resource),
                        resource_names: one(&name),
                        ..Default::default()
                    });
                }
            }
        }
    }
    out
}

fn has(v: Option<&Vec<String>>, x: &str) -> bool {
    v.is_some_and(|v| v.iter().any(|e| e == "*" || e == x))
}

/// Upstream `ruleCovers` for a broken-down `sub`.
fn covers_one(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let first = |v: Option<&Vec<String>>| v.and_then(|v| v.first().cloned()).unwrap_or_default();
    let verb = sub.verbs.first().map(String::as_str).unwrap_or("");
    if !owner.verbs.iter().any(|v| v == "*" || v == verb) {
        return false;
    }
    if sub.non_resource_urls.is_some() {
        let url = first(sub.non_resource_urls.as_ref());
        return owner.non_resource_urls.iter().flatten().any(|o| {
            o == "*" || *o == url || o.strip_suffix('*').is_some_and(|p| url.starts_with(p))
        });
    }
    let resource = first(sub.resources.as_ref());
    let resource_ok = owner.resources.iter().flatten().any(|o| {
        o == "*"
            || *o == resource
            || (o.starts_with("*/") && resource.split_once('/').is_some_and(|(_, s)| o[2..] == *s))
    });
    let names = owner.resource_names.as_deref().unwrap_or_default();
    let name_ok = names.is_empty()
        || sub
            .resource_names
            .as_ref()
            .and_then(|n| n.first())
            .is_some_and(|n| names.contains(n));
    has(owner.api_groups.as_ref(), &first(sub.api_groups.as_ref())) && resource_ok && name_ok
}

/// The parts of `wanted` that no rule of `owner` covers (upstream `Covers`).
pub fn uncovered(owner: &[PolicyRule], wanted: &[PolicyRule]) -> Vec<PolicyRule> {
    wanted
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| covers_one(o, sub)))
        .collect()
}

/// A rule as upstream's `CompactString` prints it: `{APIGroups:["apps"], Resources:["x"], …}`.
pub fn compact(r: &PolicyRule) -> String {
    let q = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut parts = Vec::new();
    let fields = [
        ("APIGroups", r.api_groups.as_deref()),
        ("Resources", r.resources.as_deref()),
        ("ResourceNames", r.resource_names.as_deref()),
        ("NonResourceURLs", r.non_resource_urls.as_deref()),
        ("Verbs", Some(r.verbs.as_slice())),
    ];
    for (name, v) in fields {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            parts.push(format!("{name}:[{}]", q(v)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(v: serde_json::Value) -> PolicyRule {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn covers_like_upstream() {
        let owner = [
            r(
                json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]}),
            ),
            r(
                json!({"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"]}),
            ),
            r(json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]})),
        ];
        let ok = [
            r(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "nodes/status"]})),
            r(
                json!({"verbs": ["delete"], "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"]}),
            ),
            r(json!({"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]})),
        ];
        assert!(uncovered(&owner, &ok).is_empty());
        let more = [
            r(json!({"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods"]})),
            r(json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"]})),
        ];
        let missing: Vec<String> = uncovered(&owner, &more).iter().map(compact).collect();
        assert_eq!(
            missing,
            [
                "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}",
                "{APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"get\"]}",
            ]
        );
    }
}
