//! rbac.authorization.k8s.io/v1 defaults (upstream `pkg/apis/rbac/v1/defaults.go`): a binding's
//! `roleRef.apiGroup` and its subjects' `apiGroup` (RBAC's for users and groups, core's for
//! service accounts).

use crate::validation::rbac::GROUP;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};

fn role_ref(r: &mut RoleRef) {
    if r.api_group.is_empty() {
        r.api_group = GROUP.to_string();
    }
}

fn subjects(ss: Option<&mut Vec<Subject>>) {
    for s in ss.into_iter().flatten() {
        if s.api_group.as_deref().unwrap_or("").is_empty() {
            s.api_group = match s.kind.as_str() {
                "User" | "Group" => Some(GROUP.to_string()),
                _ => s.api_group.take(),
            };
        }
    }
}

/// `SetDefaults_RoleBinding` and `SetDefaults_Subject`.
pub(crate) fn role_binding(b: &mut RoleBinding) {
    role_ref(&mut b.role_ref);
    subjects(b.subjects.as_mut());
}

/// `SetDefaults_ClusterRoleBinding` and `SetDefaults_Subject`.
pub(crate) fn cluster_role_binding(b: &mut ClusterRoleBinding) {
    role_ref(&mut b.role_ref);
    subjects(b.subjects.as_mut());
}
