//! policy/v1 validation, after upstream `pkg/apis/policy/validation/validation.go` (1.33).

use k8s_openapi::api::policy::v1::{Eviction, PodDisruptionBudget};

use super::field::{FieldError, Path};
use super::meta::{self, int_or_percent, not_more_than_100_percent};

/// PodDisruptionBudget (create and update; the spec is mutable).
pub(crate) fn pdb(p: &PodDisruptionBudget) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&p.metadata, true, meta::NameRule::Subdomain);
    let sp = Path::new("spec");
    let Some(s) = &p.spec else { return errs };
    if s.min_available.is_some() && s.max_unavailable.is_some() {
        errs.push(FieldError::invalid_raw(
            sp.clone(),
            "{...}",
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (f, v) in [
        ("minAvailable", &s.min_available),
        ("maxUnavailable", &s.max_unavailable),
    ] {
        if let Some(v) = v {
            errs.extend(int_or_percent(v, &sp.child(f)));
            errs.extend(not_more_than_100_percent(v, &sp.child(f)));
        }
    }
    if let Some(sel) = &s.selector {
        errs.extend(meta::label_selector(sel, &sp.child("selector")));
    }
    if let Some(pol) = s.unhealthy_pod_eviction_policy.as_deref() {
        if !["AlwaysAllow", "IfHealthyBudget"].contains(&pol) {
            errs.push(FieldError::not_supported(
                sp.child("unhealthyPodEvictionPolicy"),
                pol,
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
    }
    errs
}

/// Eviction: metadata only.
pub(crate) fn eviction(e: &Eviction) -> Vec<FieldError> {
    meta::object_meta(&e.metadata, true, meta::NameRule::Subdomain)
}
