//! batch/v1 validation, after upstream `pkg/apis/batch/validation/validation.go` (1.33).

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec};

use super::core::workload_template;
use super::field::{FieldError, Path};
use super::meta::{self, immutable, non_negative, positive};
use crate::cron::{load_time_zone, Schedule};
use crate::labels::Selector;

/// Job (create). A missing selector is fine: the API server generates it from the uid.
pub(crate) fn job(j: &Job) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&j.metadata, true, meta::NameRule::Subdomain);
    let sp = Path::new("spec");
    let Some(s) = &j.spec else {
        errs.push(FieldError::required(sp, ""));
        return errs;
    };
    let mut sel = None;
    if let Some(ls) = &s.selector {
        errs.extend(meta::label_selector(ls, &sp.child("selector")));
        sel = Selector::try_from(ls).ok();
    }
    errs.extend(job_spec(s, &sp, sel.as_ref()));
    errs
}

/// upstream `validateJobSpec`: the rules a Job and a CronJob's `jobTemplate` share; the
/// template's labels must match `selector` when there is one.
fn job_spec(s: &JobSpec, sp: &Path, sel: Option<&Selector>) -> Vec<FieldError> {
    let mut errs = Vec::new();
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
    let restart = ["OnFailure", "Never"];
    errs.extend(workload_template(
        Some(&s.template),
        sel,
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

/// The longest CronJob name: its Jobs are named `<name>-<minutes since epoch>`, 11 more
/// characters, and a Job's name must stay a 63-character label (upstream
/// `ValidateCronJobCreate`).
const CRON_JOB_NAME_MAX: usize = 63 - 11;

/// CronJob (create), upstream `ValidateCronJobCreate`.
pub(crate) fn cron_job(c: &CronJob) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&c.metadata, true, meta::NameRule::Subdomain);
    match &c.spec {
        Some(s) => errs.extend(cron_job_spec(s, None)),
        None => errs.push(FieldError::required(Path::new("spec"), "")),
    }
    let name = c.metadata.name.as_deref().unwrap_or("");
    if name.len() > CRON_JOB_NAME_MAX {
        errs.push(FieldError::invalid(
            Path::new("metadata").child("name"),
            name,
            format!("must be no more than {CRON_JOB_NAME_MAX} characters"),
        ));
    }
    errs
}

/// CronJob update, upstream `ValidateCronJobUpdate`: the create rules but the name length
/// (older CronJobs may be longer), and a `TZ=` already in the schedule may stay.
pub(crate) fn cron_job_update(new: &CronJob, old: &CronJob) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if let Some(s) = &new.spec {
        errs.extend(cron_job_spec(s, old.spec.as_ref()));
    }
    errs
}

/// upstream `validateCronJobSpec`.
fn cron_job_spec(s: &CronJobSpec, old: Option<&CronJobSpec>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let sp = Path::new("spec");
    if s.schedule.is_empty() {
        errs.push(FieldError::required(sp.child("schedule"), ""));
    } else {
        let tz_allowed = old.is_some_and(|o| o.schedule.contains("TZ"));
        errs.extend(schedule_format(
            &s.schedule,
            tz_allowed,
            s.time_zone.is_some(),
            sp.child("schedule"),
        ));
    }
    errs.extend(non_negative(
        s.starting_deadline_seconds,
        sp.child("startingDeadlineSeconds"),
    ));
    if old.is_none_or(|o| o.time_zone != s.time_zone) {
        errs.extend(time_zone(s.time_zone.as_deref(), sp.child("timeZone")));
    }
    let cp = sp.child("concurrencyPolicy");
    match s.concurrency_policy.as_deref().unwrap_or("") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required(cp, "")),
        other => errs.push(FieldError::not_supported(
            cp,
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    // upstream `ValidateJobTemplateSpec`: the Job's selector is generated.
    let tp = sp.child("jobTemplate").child("spec");
    match &s.job_template.spec {
        Some(js) => {
            errs.extend(job_spec(js, &tp, None));
            if js.selector.is_some() {
                errs.push(FieldError::invalid_raw(
                    tp.child("selector"),
                    "{...}",
                    "`selector` will be auto-generated",
                ));
            }
            if js.manual_selector == Some(true) {
                errs.push(FieldError::not_supported(
                    tp.child("manualSelector"),
                    "true",
                    &["nil", "false"],
                ));
            }
        }
        None => errs.push(FieldError::required(tp, "")),
    }
    for (f, v) in [
        (
            "successfulJobsHistoryLimit",
            s.successful_jobs_history_limit,
        ),
        ("failedJobsHistoryLimit", s.failed_jobs_history_limit),
    ] {
        errs.extend(non_negative(v.map(i64::from), sp.child(f)));
    }
    errs
}

/// upstream `validateScheduleFormat`: the schedule parses, and carries no `TZ=` / `CRON_TZ=`
/// (use `timeZone`) unless it already did before an update.
fn schedule_format(
    schedule: &str,
    tz_allowed: bool,
    has_time_zone: bool,
    p: Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Err(e) = Schedule::parse(schedule) {
        errs.push(FieldError::invalid(p.clone(), schedule, e.to_string()));
    }
    let has_tz = schedule.contains("TZ");
    if tz_allowed && has_tz && has_time_zone {
        errs.push(FieldError::invalid(
            p,
            schedule,
            "cannot use both timeZone field and TZ or CRON_TZ in schedule",
        ));
    } else if !tz_allowed && has_tz {
        errs.push(FieldError::invalid(
            p,
            schedule,
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    }
    errs
}

/// upstream `validateTimeZone`: an IANA name (each `/`-separated part of 1 to 14 letters,
/// digits, `.`, `-`, `_` or `+`, not `.`, `..` or starting with `-`), not `Local`, that loads.
fn time_zone(tz: Option<&str>, p: Path) -> Vec<FieldError> {
    let Some(tz) = tz else {
        return Vec::new();
    };
    if tz.is_empty() {
        return vec![FieldError::invalid(
            p,
            tz,
            "timeZone must be nil or non-empty string",
        )];
    }
    let part_ok = |part: &str| {
        (1..=14).contains(&part.len())
            && part != "."
            && part != ".."
            && !part.starts_with('-')
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_+".contains(&b))
    };
    if !tz.split('/').all(part_ok) {
        return vec![FieldError::invalid(
            p,
            tz,
            format!("unknown time zone {tz}"),
        )];
    }
    let mut errs = Vec::new();
    if tz.eq_ignore_ascii_case("Local") {
        errs.push(FieldError::invalid(
            p.clone(),
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if let Err(e) = load_time_zone(tz) {
        errs.push(FieldError::invalid(p, tz, e.to_string()));
    }
    errs
}
