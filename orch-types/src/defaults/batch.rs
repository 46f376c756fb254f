//! batch/v1 defaults, after upstream `pkg/apis/batch/v1/defaults.go` (Kubernetes 1.33,
//! `JobPodReplacementPolicy` on).

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};

use super::core::pod_template;

fn set<T>(slot: &mut Option<T>, v: T) {
    if slot.is_none() {
        *slot = Some(v);
    }
}

/// `SetDefaults_Job`.
pub(crate) fn job(j: &mut Job) {
    let Some(s) = j.spec.as_mut() else { return };
    if s.completions.is_none() && s.parallelism.is_none() {
        s.completions = Some(1);
        s.parallelism = Some(1);
    }
    set(&mut s.parallelism, 1);
    if s.backoff_limit.is_none() {
        s.backoff_limit = Some(if s.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            6
        });
    }
    let labels = s.template.metadata.as_ref().and_then(|m| m.labels.clone());
    if let Some(labels) = labels {
        if j.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            j.metadata.labels = Some(labels);
        }
    }
    set(&mut s.completion_mode, "NonIndexed".to_string());
    set(&mut s.suspend, false);
    if s.pod_replacement_policy.is_none() {
        s.pod_replacement_policy = Some(if s.pod_failure_policy.is_some() {
            "Failed".into()
        } else {
            "TerminatingOrFailed".into()
        });
    }
    pod_failure_policy(s);
    pod_template(&mut s.template);
}

/// `SetDefaults_PodFailurePolicyOnPodConditionsPattern` (a generated per-type default, so it
/// also reaches a CronJob's Job template): an `onPodConditions` pattern without a status
/// matches `True`.
fn pod_failure_policy(s: &mut JobSpec) {
    let rules = s
        .pod_failure_policy
        .iter_mut()
        .flat_map(|p| p.rules.iter_mut());
    for pattern in rules.flat_map(|r| r.on_pod_conditions.iter_mut().flatten()) {
        if pattern.status.is_empty() {
            pattern.status = "True".into();
        }
    }
}

/// `SetDefaults_CronJob`, plus the pod defaults of the Job template's pod template (the
/// generated `SetObjectDefaults_CronJob`); the Job's own defaults are applied when the
/// controller creates it.
pub(crate) fn cron_job(c: &mut CronJob) {
    let Some(s) = c.spec.as_mut() else { return };
    if s.concurrency_policy.as_deref().is_none_or(str::is_empty) {
        s.concurrency_policy = Some("Allow".into());
    }
    set(&mut s.suspend, false);
    set(&mut s.successful_jobs_history_limit, 3);
    set(&mut s.failed_jobs_history_limit, 1);
    if let Some(js) = s.job_template.spec.as_mut() {
        pod_failure_policy(js);
        pod_template(&mut js.template);
    }
}
