//! batch/v1 validation, after upstream `pkg/apis/batch/validation/validation.go` (1.33).

use k8s_openapi::api::batch::v1::Job;

use super::core::workload_template;
use super::field::{FieldError, Path};
use super::meta::{self, immutable, non_negative, positive};
use crate::labels::Selector;

/// Job (create). A missing selector is fine: the API server generates it from the uid.
pub(crate) fn job(j: &Job) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&j.metadata, true, meta::NameRule::Subdomain);
    let sp = Path::new("spec");
    let Some(s) = &j.spec else {
        errs.push(FieldError::required(sp, ""));
        return errs;
    };
    for (f, v) in [
        ("parallelism", s.parallelism),
        ("completions", s.completions),
        ("backoffLimit", s.backoff_limit),
        ("ttlSecondsAfterFinished", s.ttl_seconds_after_finished),
        ("backoffLimitPerIndex", s.backoff_limit_per_index),
        ("maxFailedIndexes", s.max_failed_indexes),
    ] {
        errs.extend(non_negative(v.map(i64::from), sp.child(f)));
    }
    errs.extend(positive(
        s.active_deadline_seconds,
        sp.child("activeDeadlineSeconds"),
    ));
    let mut sel = None;
    if let Some(ls) = &s.selector {
        errs.extend(meta::label_selector(ls, &sp.child("selector")));
        sel = Selector::try_from(ls).ok();
    }
    let restart = ["OnFailure", "Never"];
    errs.extend(workload_template(
        Some(&s.template),
        sel.as_ref(),
        &sp.child("template"),
        &restart,
        None,
    ));
    match s.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if s.completions.is_none() {
                errs.push(FieldError::required(
                    sp.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        Some(other) => errs.push(FieldError::not_supported(
            sp.child("completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    match s.pod_replacement_policy.as_deref() {
        None => {}
        Some("Failed") => {}
        Some("TerminatingOrFailed") if s.pod_failure_policy.is_none() => {}
        Some("TerminatingOrFailed") => errs.push(FieldError::not_supported(
            sp.child("podReplacementPolicy"),
            "TerminatingOrFailed",
            &["Failed"],
        )),
        Some(other) => errs.push(FieldError::not_supported(
            sp.child("podReplacementPolicy"),
            other,
            &["Failed", "TerminatingOrFailed"],
        )),
    }
    errs
}

/// Job update: selector, completionMode and (unless suspended) the template are immutable;
/// completions only changes for elastic Indexed jobs together with parallelism.
pub(crate) fn job_update(new: &Job, old: &Job) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    let (Some(n), Some(o)) = (&new.spec, &old.spec) else {
        return errs;
    };
    let sp = Path::new("spec");
    if o.selector.is_some() && n.selector != o.selector {
        errs.push(FieldError::invalid_raw(
            sp.child("selector"),
            "{...}",
            "field is immutable",
        ));
    }
    if n.completion_mode != o.completion_mode {
        errs.push(immutable(
            sp.child("completionMode"),
            n.completion_mode.as_deref().unwrap_or(""),
        ));
    }
    let elastic = n.completion_mode.as_deref() == Some("Indexed") && n.completions == n.parallelism;
    if n.completions != o.completions && !elastic {
        errs.push(FieldError::invalid_raw(
            sp.child("completions"),
            n.completions.map_or("null".into(), |c| c.to_string()),
            "field is immutable",
        ));
    }
    if n.template != o.template && o.suspend != Some(true) {
        errs.push(FieldError::invalid_raw(
            sp.child("template"),
            "{...}",
            "field is immutable",
        ));
    }
    errs
}
