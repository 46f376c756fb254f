//! rbac.authorization.k8s.io/v1 (upstream `pkg/apis/rbac/validation/validation.go`): rule
//! shapes, role references and subjects; a binding's `roleRef` cannot change.

use super::field::{FieldError, Path};
use super::meta::{self, NameRule};
use crate::names;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

/// The API group of RBAC, the only one a `roleRef` may name.
pub const GROUP: &str = "rbac.authorization.k8s.io";

fn list(v: &[String]) -> String {
    format!(
        "[]string{{{}}}",
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn is_empty(v: Option<&Vec<String>>) -> bool {
    v.is_none_or(Vec::is_empty)
}

/// Upstream `ValidatePolicyRule`.
fn rule(r: &PolicyRule, namespaced: bool, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if r.verbs.is_empty() {
        errs.push(FieldError::required(
            p.child("verbs"),
            "verbs must contain at least one value",
        ));
    }
    if let Some(urls) = r.non_resource_urls.as_ref().filter(|u| !u.is_empty()) {
        if namespaced {
            errs.push(FieldError::invalid_raw(
                p.child("nonResourceURLs"),
                list(urls),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !is_empty(r.api_groups.as_ref())
            || !is_empty(r.resources.as_ref())
            || !is_empty(r.resource_names.as_ref())
        {
            errs.push(FieldError::invalid_raw(
                p.child("nonResourceURLs"),
                list(urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errs;
    }
    if is_empty(r.api_groups.as_ref()) {
        errs.push(FieldError::required(
            p.child("apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if is_empty(r.resources.as_ref()) {
        errs.push(FieldError::required(
            p.child("resources"),
            "resource rules must supply at least one resource",
        ));
    }
    errs
}

fn rules(rs: Option<&Vec<PolicyRule>>, namespaced: bool) -> Vec<FieldError> {
    let p = Path::new("rules");
    rs.into_iter()
        .flatten()
        .enumerate()
        .flat_map(|(i, r)| rule(r, namespaced, &p.index(i)))
        .collect()
}

/// Upstream `ValidateRole`.
pub(crate) fn role(r: &Role) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&r.metadata, true, NameRule::PathSegment);
    errs.extend(rules(r.rules.as_ref(), true));
    errs
}

/// Upstream `ValidateClusterRole`.
pub(crate) fn cluster_role(r: &ClusterRole) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&r.metadata, false, NameRule::PathSegment);
    errs.extend(rules(r.rules.as_ref(), false));
    if let Some(agg) = &r.aggregation_rule {
        let p = Path::new("aggregationRule").child("clusterRoleSelectors");
        let selectors = agg.cluster_role_selectors.as_deref().unwrap_or_default();
        if selectors.is_empty() {
            errs.push(FieldError::required(
                &p,
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for (i, s) in selectors.iter().enumerate() {
            errs.extend(meta::label_selector(s, &p.index(i)));
        }
    }
    errs
}

fn role_ref(r: &RoleRef, kinds: &[&str]) -> Vec<FieldError> {
    let p = Path::new("roleRef");
    let mut errs = Vec::new();
    if r.api_group != GROUP {
        errs.push(FieldError::not_supported(
            p.child("apiGroup"),
            &r.api_group,
            &[GROUP],
        ));
    }
    if !kinds.contains(&r.kind.as_str()) {
        errs.push(FieldError::not_supported(p.child("kind"), &r.kind, kinds));
    }
    if r.name.is_empty() {
        errs.push(FieldError::required(p.child("name"), ""));
    } else {
        for bad in ["/", "%"] {
            if r.name.contains(bad) {
                errs.push(FieldError::invalid(
                    p.child("name"),
                    &r.name,
                    format!("may not contain '{bad}'"),
                ));
            }
        }
        if r.name == "." || r.name == ".." {
            errs.push(FieldError::invalid(
                p.child("name"),
                &r.name,
                format!("may not be '{}'", r.name),
            ));
        }
    }
    errs
}

/// Upstream `ValidateRoleBindingSubject`.
fn subject(s: &Subject, namespaced: bool, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if s.name.is_empty() {
        errs.push(FieldError::required(p.child("name"), ""));
    }
    let group = s.api_group.as_deref().unwrap_or("");
    match s.kind.as_str() {
        "ServiceAccount" => {
            if !s.name.is_empty() {
                for msg in names::is_dns1123_subdomain(&s.name) {
                    errs.push(FieldError::invalid(p.child("name"), &s.name, msg));
                }
            }
            if !group.is_empty() {
                errs.push(FieldError::not_supported(p.child("apiGroup"), group, &[""]));
            }
            if !namespaced && s.namespace.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(p.child("namespace"), ""));
            }
        }
        "User" | "Group" => {
            if group != GROUP {
                errs.push(FieldError::not_supported(
                    p.child("apiGroup"),
                    group,
                    &[GROUP],
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            p.child("kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errs
}

fn subjects(ss: Option<&Vec<Subject>>, namespaced: bool) -> Vec<FieldError> {
    let p = Path::new("subjects");
    ss.into_iter()
        .flatten()
        .enumerate()
        .flat_map(|(i, s)| subject(s, namespaced, &p.index(i)))
        .collect()
}

/// Upstream `ValidateRoleBinding`.
pub(crate) fn role_binding(b: &RoleBinding) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&b.metadata, true, NameRule::PathSegment);
    errs.extend(role_ref(&b.role_ref, &["Role", "ClusterRole"]));
    errs.extend(subjects(b.subjects.as_ref(), true));
    errs
}

/// Upstream `ValidateClusterRoleBinding`.
pub(crate) fn cluster_role_binding(b: &ClusterRoleBinding) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&b.metadata, false, NameRule::PathSegment);
    errs.extend(role_ref(&b.role_ref, &["ClusterRole"]));
    errs.extend(subjects(b.subjects.as_ref(), false));
    errs
}

fn role_ref_update(new: &RoleRef, old: &RoleRef) -> Vec<FieldError> {
    if new == old {
        return Vec::new();
    }
    vec![FieldError::invalid_raw(
        "roleRef",
        format!(
            "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
            new.api_group, new.kind, new.name
        ),
        "cannot change roleRef",
    )]
}

/// Upstream `ValidateRoleBindingUpdate`.
pub(crate) fn role_binding_update(new: &RoleBinding, old: &RoleBinding) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    errs.extend(role_ref_update(&new.role_ref, &old.role_ref));
    errs
}

/// Upstream `ValidateClusterRoleBindingUpdate`.
pub(crate) fn cluster_role_binding_update(
    new: &ClusterRoleBinding,
    old: &ClusterRoleBinding,
) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    errs.extend(role_ref_update(&new.role_ref, &old.role_ref));
    errs
}

#[cfg(test)]
mod tests {
    use crate::validation::validate;
    use crate::DynamicObject;
    use serde_json::json;

    fn errors(v: serde_json::Value) -> Vec<String> {
        let d: DynamicObject = serde_json::from_value(v).unwrap();
        validate(&d).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn rules_have_verbs_and_one_shape() {
        let e = errors(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "d"},
            "rules": [{"verbs": [], "apiGroups": [""], "resources": ["pods"]},
                      {"verbs": ["get"], "nonResourceURLs": ["/x"]},
                      {"verbs": ["get"]}]}),
        );
        assert_eq!(e, [
            "rules[0].verbs: Required value: verbs must contain at least one value",
            "rules[1].nonResourceURLs: Invalid value: []string{\"/x\"}: namespaced rules cannot apply to non-resource URLs",
            "rules[2].apiGroups: Required value: resource rules must supply at least one api group",
            "rules[2].resources: Required value: resource rules must supply at least one resource",
        ]);
        let ok = errors(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:x"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}),
        );
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn bindings_check_role_ref_and_subjects() {
        let e = errors(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "x"}]}),
        );
        assert_eq!(e, [
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
            "subjects[0].namespace: Required value",
            "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
        ]);
        // Defaulting fills the subjects' and roleRef's API groups.
        let ok = errors(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "b", "namespace": "d"}, "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "sa"}]}),
        );
        assert!(ok.is_empty(), "{ok:?}");
    }
}
