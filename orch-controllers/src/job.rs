//! Job controller, after upstream `pkg/controller/job/job_controller.go` (Kubernetes 1.33), the
//! parts orch models:
//! - `completions` / `parallelism`, `NonIndexed` and `Indexed` completion modes (`Indexed` pods
//!   carry their index in the `batch.kubernetes.io/job-completion-index` annotation and label,
//!   the `JOB_COMPLETION_INDEX` variable and the hostname `<job>-<index>`; the status keeps
//!   `completedIndexes`);
//! - `backoffLimit`, with replacements of failed pods delayed 10 s × 2^(failures − 1), at most
//!   6 minutes, from the last failure (`getRemainingTime`); `activeDeadlineSeconds`; `suspend`
//!   (active pods deleted, `startTime` reset on resume);
//! - terminal conditions `Complete` / `Failed` (reasons `BackoffLimitExceeded`,
//!   `DeadlineExceeded`) and `completionTime`;
//! - a pod deleted before it succeeded counts as failed (`isPodFailed`);
//! - tracking with the `batch.kubernetes.io/job-tracking` finalizer: a finished pod's UID goes
//!   into `status.uncountedTerminatedPods` before its finalizer is removed, and into the
//!   counters once it no longer has it, so no pod is counted twice or lost when pods are
//!   deleted.
//!
//! - `podFailurePolicy` (`match_pod_failure_policy`): `FailJob` fails the job with reason
//!   `PodFailurePolicy`, `Ignore` lets the pod go uncounted and replaced at once, `Count` is
//!   the default; a policy implies `podReplacementPolicy: Failed`, under which a terminating
//!   pod (`status.terminating`) is replaced only once it has failed;
//! - the interim conditions of 1.31+: the outcome is decided first (`FailureTarget` or
//!   `SuccessCriteriaMet`, active pods deleted) and the terminal `Failed` / `Complete` (with
//!   its event and `completionTime`) follows once no pod runs, terminates or waits to be
//!   counted.
//! - `backoffLimitPerIndex` (Indexed): each index counts its failures in the
//!   `batch.kubernetes.io/job-index-failure-count` annotation of its next pod and backs off on
//!   its own; an index past its limit (or matching a `FailIndex` rule) fails and is not
//!   retried (`status.failedIndexes`); more than `maxFailedIndexes` fails the job
//!   (`MaxFailedIndexesExceeded`), and a job whose indexes all ended with some failed fails
//!   with `FailedIndexes`;
//! - `successPolicy` (Indexed): the first rule the succeeded indexes meet ends the job with
//!   `SuccessPolicy` ("Matched rules at index N"), its other pods deleted.
//! - a job whose `managedBy` names another controller is left to it (upstream
//!   `JobManagedBy`).

use crate::controller_utils::{
    controlled, delete_pod, is_pod_ready, is_pod_terminal, owned_pods, phase, pod_from_template,
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, JobCondition, PodFailurePolicy, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_self, Caches, Controller, Watches};
use orch_runtime::expectations::Expectations;
use orch_runtime::object::{controller_ref, is_deleting, key_of};
use orch_types::dynamic::DynamicObject;
use orch_types::events::{EventType, ObjectRef};
use orch_types::registry::ApiResource;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The finalizer on every pod the controller creates, removed once the pod is accounted for.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation and label with an `Indexed` pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// `spec.managedBy` of the jobs this controller runs (unset means the same).
pub const MANAGED_BY: &str = "kubernetes.io/job-controller";
/// Annotation with the failures an index had before the pod (`backoffLimitPerIndex`).
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// Annotation with the ignored failures an index had before the pod.
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";
/// First replacement delay after a failure (upstream `DefaultJobPodFailureBackOff`).
const BACKOFF_BASE: SignedDuration = SignedDuration::from_secs(10);
/// Longest replacement delay (upstream `MaxJobPodFailureBackOff`).
const BACKOFF_MAX: SignedDuration = SignedDuration::from_secs(360);
/// Pods created or deleted per sync at most (upstream `MaxPodCreateDeletePerSync`).
const MAX_PER_SYNC: i64 = 500;

/// The Job controller's declaration.
#[derive(Debug, Default)]
pub struct JobController {
    expectations: Expectations,
}

fn condition_true(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// Finished: a `Complete` or `Failed` condition is true.
pub fn is_finished(job: &Job) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

fn index_of(p: &Pod) -> Option<i32> {
    p.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse()
        .ok()
        .filter(|i: &i32| *i >= 0)
}

/// A count annotation of a pod (0 when absent).
fn annotation_count(p: &Pod, key: &str) -> i32 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Parses `completedIndexes` ("1,3-5").
fn parse_indexes(s: Option<&str>) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.unwrap_or_default().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
            out.extend(a..=b);
        }
    }
    out
}

/// Formats indexes as `completedIndexes` does: ascending, runs of three or more as intervals
/// (`0-2`), a run of two as two indexes (`0,1`), as upstream `orderedIntervals.String`
/// (`indexed_job_utils.go`).
fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end += 1;
            it.next();
        }
        out.push(match end - start {
            0 => start.to_string(),
            1 => format!("{start},{end}"),
            _ => format!("{start}-{end}"),
        });
    }
    out.join(",")
}

fn has_finalizer(p: &Pod) -> bool {
    p.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == TRACKING_FINALIZER))
}

/// Failed for the count, as upstream `isPodFailed`: in phase `Failed`; with the default
/// replacement policy also deleted before it succeeded (an orphan may never reach `Failed`).
/// With `only_failed` (`podReplacementPolicy: Failed`, which a `podFailurePolicy` implies) a
/// pod being deleted is not failed until it is.
fn is_failed(p: &Pod, only_failed: bool) -> bool {
    phase(p) == "Failed" || (!only_failed && is_deleting(&p.metadata) && phase(p) != "Succeeded")
}

/// Being deleted and not finished yet (`status.terminating`).
fn is_terminating(p: &Pod) -> bool {
    is_deleting(&p.metadata) && !is_pod_terminal(p)
}

/// What a job's `podFailurePolicy` says of a failed pod (upstream `matchPodFailurePolicy`,
/// `pod_failure_policy.go`): the first rule that matches decides; no match counts.
#[derive(Debug, Clone, PartialEq)]
pub enum FailureVerdict {
    /// Counts towards `backoffLimit` (`Count`, or no rule matched).
    Count,
    /// Not counted, replaced at once (`Ignore`).
    Ignore,
    /// The job fails with reason `PodFailurePolicy` and this message (`FailJob`).
    FailJob(String),
    /// The pod's index fails (`FailIndex`, with `backoffLimitPerIndex`).
    FailIndex,
}

/// Matches a failed pod against `policy` (`None`: no policy, every failure counts).
/// `onExitCodes` looks at terminated containers, then init containers, with a non-zero exit
/// code (of the named container when `containerName` is set); `onPodConditions` at the pod's
/// conditions by type and status.
pub fn match_pod_failure_policy(policy: Option<&PodFailurePolicy>, p: &Pod) -> FailureVerdict {
    let Some(policy) = policy else {
        return FailureVerdict::Count;
    };
    let st = p.status.clone().unwrap_or_default();
    let ns = p.metadata.namespace.as_deref().unwrap_or_default();
    let name = p.metadata.name.as_deref().unwrap_or_default();
    for (i, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(req) = &rule.on_exit_codes {
            st.container_statuses
                .iter()
                .chain(st.init_container_statuses.iter())
                .flatten()
                .find_map(|c| {
                    let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
                    let named = req.container_name.as_ref().is_none_or(|n| *n == c.name);
                    let listed = req.values.contains(&code);
                    let hit = match req.operator.as_str() {
                        "In" => listed,
                        "NotIn" => !listed,
                        _ => false,
                    };
                    (named && code != 0 && hit).then(|| {
                        format!(
                            "Container {} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {i}",
                            c.name, rule.action
                        )
                    })
                })
        } else if let Some(patterns) = &rule.on_pod_conditions {
            st.conditions.iter().flatten().find_map(|c| {
                patterns
                    .iter()
                    .any(|pat| pat.type_ == c.type_ && pat.status == c.status)
                    .then(|| {
                        format!(
                            "Pod {ns}/{name} has condition {} matching {} rule at index {i}",
                            c.type_, rule.action
                        )
                    })
            })
        } else {
            None
        };
        if let Some(message) = matched {
            return match rule.action.as_str() {
                "Ignore" => FailureVerdict::Ignore,
                "FailJob" => FailureVerdict::FailJob(message),
                "FailIndex" => FailureVerdict::FailIndex,
                _ => FailureVerdict::Count,
            };
        }
    }
    FailureVerdict::Count
}

/// When a pod ended: the latest container `finishedAt`, else its deletion, else its creation.
fn finished_at(p: &Pod) -> Option<Timestamp> {
    let st = p.status.as_ref();
    st.and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
        .or_else(|| p.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Sets a condition as upstream `ensureJobConditionStatus` does: a changed status, reason or
/// message replaces it (both times now), the same one is left alone, and a `False` one is not
/// added where there was none.
fn set_condition(
    conds: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let t = Some(Time(now));
    let fresh = JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: t.clone(),
        last_transition_time: t,
    };
    match conds.iter_mut().find(|c| c.type_ == type_) {
        Some(c)
            if c.status == status
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message) => {}
        Some(c) => *c = fresh,
        None if status != "False" => conds.push(fresh),
        None => {}
    }
}

/// Replacement delay after `failures` failures (0 when none).
fn backoff(failures: i32) -> SignedDuration {
    if failures <= 0 {
        return SignedDuration::ZERO;
    }
    let shift = (failures - 1).min(6) as u32;
    (BACKOFF_BASE * 2i32.pow(shift)).min(BACKOFF_MAX)
}

fn remove_finalizer(p: &Pod) -> Action {
    let kept: Vec<&String> = p
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != TRACKING_FINALIZER)
        .collect();
    Action::Patch {
        resource: ApiResource::of::<Pod>(),
        namespace: p.metadata.namespace.clone(),
        name: p.metadata.name.clone().unwrap_or_default(),
        subresource: None,
        // With the resourceVersion: a concurrent change of the finalizers is not overwritten.
        patch: orch_types::client::Patch::Merge(json!({"metadata": {
            "finalizers": if kept.is_empty() { None } else { Some(kept) },
            "resourceVersion": p.metadata.resource_version,
        }})),
    }
}

/// A pod for `job` (with completion `index` when `Indexed`).
fn new_pod(job: &Job, owner: OwnerReference, index: Option<i32>) -> Pod {
    let spec = job.spec.clone().unwrap_or_default();
    let mut p = pod_from_template(&spec.template, &job.metadata, owner);
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let labels = p.metadata.labels.get_or_insert_with(Default::default);
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels.entry(k.into()).or_insert_with(|| v.clone());
    }
    p.metadata
        .finalizers
        .get_or_insert_with(Vec::new)
        .push(TRACKING_FINALIZER.into());
    if let Some(i) = index {
        // upstream `addCompletionIndexEnvVariables` / `addCompletionIndexAnnotation`.
        p.metadata.generate_name = Some(format!("{name}-{i}-"));
        labels.insert(COMPLETION_INDEX.into(), i.to_string());
        p.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(COMPLETION_INDEX.into(), i.to_string());
        if let Some(ps) = p.spec.as_mut() {
            if ps.hostname.is_none() {
                ps.hostname = Some(format!("{name}-{i}"));
            }
            for c in ps
                .init_containers
                .iter_mut()
                .flatten()
                .chain(ps.containers.iter_mut())
            {
                let env = c.env.get_or_insert_with(Vec::new);
                if !env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
                    env.push(EnvVar {
                        name: "JOB_COMPLETION_INDEX".into(),
                        value_from: Some(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                field_path: format!("metadata.labels['{COMPLETION_INDEX}']"),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                }
            }
        }
    }
    p
}

/// The index of the first `successPolicy` rule the succeeded indexes meet (upstream
/// `matchSuccessPolicy`): with `succeededIndexes`, `succeededCount` of them (all of them
/// without a count) succeeded; with a count only, that many indexes succeeded.
fn success_policy_match(job: &Job, succeeded: &BTreeSet<i32>) -> Option<usize> {
    let rules = &job.spec.as_ref()?.success_policy.as_ref()?.rules;
    rules.iter().position(|r| match &r.succeeded_indexes {
        Some(set) => {
            let set = parse_indexes(Some(set));
            let hit = set.intersection(succeeded).count();
            match r.succeeded_count {
                Some(n) => hit as i32 >= n,
                None => hit == set.len(),
            }
        }
        None => r
            .succeeded_count
            .is_some_and(|n| succeeded.len() as i32 >= n),
    })
}

/// One reconcile of `job` with the pods it controls: status, pods to create or delete,
/// finalizers to remove, and when to look again. `satisfied`: the cache has seen the pods
/// this controller created or deleted before (expectations), so counting is safe.
pub fn reconcile(job: &Job, pods: &[Arc<Pod>], satisfied: bool, now: Timestamp) -> Vec<Action> {
    let key = key_of(&job.metadata);
    let jref = ObjectRef::of(job);
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let mut actions = Vec::new();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let policy = spec.pod_failure_policy.as_ref();
    let only_failed = policy.is_some() || spec.pod_replacement_policy.as_deref() == Some("Failed");
    // A failure that counts (an `Ignore`d one is replaced at once, without back-off).
    let counts = |p: &Pod| {
        is_failed(p, only_failed) && match_pod_failure_policy(policy, p) != FailureVerdict::Ignore
    };

    // Accounting: UIDs already in uncountedTerminatedPods move to the counters once their pod
    // has no finalizer (or is gone); finished pods still holding it join the uncounted lists.
    let mut unc = st.uncounted_terminated_pods.take().unwrap_or_default();
    let mut unc_ok: Vec<String> = unc.succeeded.take().unwrap_or_default();
    let mut unc_failed: Vec<String> = unc.failed.take().unwrap_or_default();
    let by_uid: HashMap<&str, &Pod> = pods
        .iter()
        .filter_map(|p| Some((p.metadata.uid.as_deref()?, p.as_ref())))
        .collect();
    let by_uid = |uid: &str| by_uid.get(uid).copied();
    let mut completed = parse_indexes(st.completed_indexes.as_deref());
    let settled = |uid: &String| by_uid(uid).is_none_or(|p| !has_finalizer(p));
    for uid in unc_ok.iter().filter(|u| settled(u)) {
        st.succeeded = Some(st.succeeded.unwrap_or(0) + 1);
        if let Some(i) = by_uid(uid).and_then(index_of) {
            completed.insert(i);
        }
    }
    for _ in unc_failed.iter().filter(|u| settled(u)) {
        st.failed = Some(st.failed.unwrap_or(0) + 1);
    }
    unc_ok.retain(|u| !settled(u));
    unc_failed.retain(|u| !settled(u));
    let per_index = spec.backoff_limit_per_index.filter(|_| indexed);
    let mut failed_indexes = parse_indexes(st.failed_indexes.as_deref());
    let mut to_release: Vec<&Pod> = Vec::new();
    let mut fail_job: Option<String> = None;
    for p in pods
        .iter()
        .filter(|p| (phase(p) == "Succeeded" || is_failed(p, only_failed)) && has_finalizer(p))
    {
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let list = if phase(p) == "Succeeded" {
            Some(&mut unc_ok)
        } else {
            let verdict = match_pod_failure_policy(policy, p);
            // upstream `isIndexFailed`: a `FailIndex` match, or a counted failure of an
            // index that had `backoffLimitPerIndex` failures before.
            if let (Some(limit), Some(i)) = (per_index, index_of(p)) {
                let over = verdict != FailureVerdict::Ignore
                    && annotation_count(p, INDEX_FAILURE_COUNT) >= limit;
                if verdict == FailureVerdict::FailIndex || over {
                    failed_indexes.insert(i);
                }
            }
            match verdict {
                FailureVerdict::Ignore => None,
                FailureVerdict::FailJob(m) => {
                    fail_job.get_or_insert(m);
                    Some(&mut unc_failed)
                }
                FailureVerdict::Count | FailureVerdict::FailIndex => Some(&mut unc_failed),
            }
        };
        if let Some(list) = list.filter(|l| !l.contains(&uid)) {
            list.push(uid);
        }
        to_release.push(p);
    }
    let succeeded = st.succeeded.unwrap_or(0) + unc_ok.len() as i32;
    let failed = st.failed.unwrap_or(0) + unc_failed.len() as i32;
    // Indexes done: counted ones plus finished pods not yet counted.
    let mut done_indexes = completed.clone();
    done_indexes.extend(
        pods.iter()
            .filter(|p| phase(p) == "Succeeded")
            .filter_map(|p| index_of(p)),
    );

    let active: Vec<&Pod> = pods
        .iter()
        .map(Arc::as_ref)
        .filter(|p| !is_pod_terminal(p) && !is_deleting(&p.metadata))
        .collect();
    let terminating = pods.iter().filter(|p| is_terminating(p)).count();
    let mut conds = st.conditions.take().unwrap_or_default();
    // An interim condition already decided the outcome (upstream 1.31+: the terminal
    // condition waits for the pods to be gone): (terminal type, reason, message).
    let decided = [
        ("FailureTarget", "Failed"),
        ("SuccessCriteriaMet", "Complete"),
    ]
    .into_iter()
    .find_map(|(interim, terminal)| {
        let c = conds
            .iter()
            .find(|c| c.type_ == interim && c.status == "True")?;
        let text = |s: &Option<String>| s.clone().unwrap_or_default();
        Some((terminal, text(&c.reason), text(&c.message)))
    });
    let finished_before = is_finished(job);
    let mut requeue: Option<SignedDuration> = None;
    let mut deletes: Vec<&Pod> = Vec::new();
    let mut creates: Vec<Pod> = Vec::new();

    if !finished_before && !is_deleting(&job.metadata) {
        let suspended = spec.suspend == Some(true);
        if suspended {
            if !condition_true(job, "Suspended") {
                let c = ("Suspended", "True", "JobSuspended", "Job suspended");
                let e = (EventType::Normal, "Suspended", "Job suspended");
                mark(&mut conds, &mut actions, &jref, c, e, now);
            }
            deletes.extend(active.iter().copied());
        } else {
            if condition_true(job, "Suspended") {
                let c = ("Suspended", "False", "JobResumed", "Job resumed");
                let e = (EventType::Normal, "Resumed", "Job resumed");
                mark(&mut conds, &mut actions, &jref, c, e, now);
                st.start_time = None;
            }
            let start = st.start_time.get_or_insert(Time(now)).0;
            let deadline = spec
                .active_deadline_seconds
                .map(|s| start + SignedDuration::from_secs(s));
            let backoff_limit = spec.backoff_limit.unwrap_or(6);
            let completions = spec.completions.unwrap_or(0);
            let in_range = |set: &BTreeSet<i32>| set.iter().filter(|i| **i < completions).count();
            let failed_only: BTreeSet<i32> =
                failed_indexes.difference(&done_indexes).copied().collect();
            let complete = match spec.completions {
                Some(c) if indexed => {
                    (in_range(&done_indexes) + in_range(&failed_only)) as i32 >= c
                }
                Some(c) => succeeded >= c,
                None => succeeded > 0 && active.is_empty(),
            };
            let max_failed = spec.max_failed_indexes.filter(|_| per_index.is_some());
            let success_rule = indexed
                .then(|| success_policy_match(job, &done_indexes))
                .flatten();
            // upstream order: a `FailJob` rule, too many failed indexes, the back-off limit,
            // the deadline, a success policy, then completions (failed indexes fail it).
            let decided = decided.or_else(|| {
                let (interim, terminal, reason, message) = if let Some(m) = fail_job.take() {
                    ("FailureTarget", "Failed", "PodFailurePolicy", m)
                } else if max_failed.is_some_and(|m| failed_only.len() as i32 > m) {
                    let m = "Job has exceeded the specified maximal number of failed indexes";
                    (
                        "FailureTarget",
                        "Failed",
                        "MaxFailedIndexesExceeded",
                        m.to_string(),
                    )
                } else if failed > backoff_limit {
                    let m = "Job has reached the specified backoff limit";
                    (
                        "FailureTarget",
                        "Failed",
                        "BackoffLimitExceeded",
                        m.to_string(),
                    )
                } else if deadline.is_some_and(|d| now >= d) {
                    let m = "Job was active longer than specified deadline";
                    ("FailureTarget", "Failed", "DeadlineExceeded", m.to_string())
                } else if let Some(i) = success_rule {
                    let m = format!("Matched rules at index {i}");
                    ("SuccessCriteriaMet", "Complete", "SuccessPolicy", m)
                } else if complete && !failed_only.is_empty() {
                    let m = "Job has failed indexes";
                    ("FailureTarget", "Failed", "FailedIndexes", m.to_string())
                } else if complete {
                    // upstream `JobReasonCompletionsReached` (1.31+).
                    let m = "Reached expected number of succeeded pods";
                    (
                        "SuccessCriteriaMet",
                        "Complete",
                        "CompletionsReached",
                        m.to_string(),
                    )
                } else {
                    return None;
                };
                set_condition(&mut conds, interim, "True", reason, &message, now);
                Some((terminal, reason.to_string(), message))
            });
            if let Some((terminal, reason, message)) = decided {
                deletes.extend(active.iter().copied());
                // The terminal condition once no pod runs, terminates or waits to be counted.
                let settled = active.is_empty()
                    && terminating == 0
                    && to_release.is_empty()
                    && unc_ok.is_empty()
                    && unc_failed.is_empty();
                if settled {
                    let e = if terminal == "Failed" {
                        (EventType::Warning, reason.as_str(), message.as_str())
                    } else {
                        st.completion_time = Some(Time(now));
                        (EventType::Normal, "Completed", "Job completed")
                    };
                    let c = (terminal, "True", reason.as_str(), message.as_str());
                    mark(&mut conds, &mut actions, &jref, c, e, now);
                }
            } else {
                if let Some(d) = deadline {
                    requeue = Some(d.duration_since(now));
                }
                let parallelism = spec.parallelism.unwrap_or(1).max(0) as i64;
                let want = match spec.completions {
                    Some(c) if indexed => {
                        let left = (c.max(0) as usize)
                            .saturating_sub(in_range(&done_indexes) + in_range(&failed_only));
                        parallelism.min(left as i64)
                    }
                    Some(c) => parallelism.min((c - succeeded).max(0) as i64),
                    None if succeeded > 0 => 0,
                    None => parallelism,
                };
                // The pods of a failed index go.
                deletes.extend(
                    active
                        .iter()
                        .filter(|p| index_of(p).is_some_and(|i| failed_indexes.contains(&i))),
                );
                // With `podReplacementPolicy: Failed` a terminating pod is replaced only once
                // it has failed.
                let have = (active.len() + if only_failed { terminating } else { 0 }) as i64;
                if satisfied && have > want {
                    // Fewest-progress first: not yet running, then not ready, then newest.
                    let mut extra = active.clone();
                    extra.sort_by_key(|p| {
                        (
                            phase(p) == "Running",
                            is_pod_ready(p),
                            std::cmp::Reverse(p.metadata.creation_timestamp.clone().map(|t| t.0)),
                        )
                    });
                    deletes.extend(
                        extra
                            .into_iter()
                            .take((have - want).min(MAX_PER_SYNC) as usize),
                    );
                } else if satisfied && have < want && per_index.is_some() {
                    // Each index backs off on its own failures (upstream
                    // `getNewIndexFailureCounts`, `getRemainingTimePerIndex`).
                    let busy: BTreeSet<i32> = active.iter().filter_map(|p| index_of(p)).collect();
                    let n = (want - have).min(MAX_PER_SYNC) as usize;
                    let owner = owner_ref(job);
                    for i in (0..completions).filter(|i| {
                        !done_indexes.contains(i)
                            && !busy.contains(i)
                            && !failed_indexes.contains(i)
                    }) {
                        if creates.len() >= n {
                            break;
                        }
                        let last = pods
                            .iter()
                            .filter(|p| index_of(p) == Some(i) && is_failed(p, only_failed))
                            .max_by_key(|p| finished_at(p));
                        let (failures, ignored) = last.map_or((0, 0), |p| {
                            let f = annotation_count(p, INDEX_FAILURE_COUNT);
                            let g = annotation_count(p, INDEX_IGNORED_FAILURE_COUNT);
                            if counts(p) {
                                (f + 1, g)
                            } else {
                                (f, g + 1)
                            }
                        });
                        let wait = last
                            .filter(|p| counts(p))
                            .and_then(|p| finished_at(p))
                            .map(|t| t + backoff(failures))
                            .filter(|t| *t > now);
                        if let Some(t) = wait {
                            let d = t.duration_since(now);
                            requeue = Some(requeue.map_or(d, |r| r.min(d)));
                            continue;
                        }
                        let mut pod = new_pod(job, owner.clone(), Some(i));
                        let ann = pod
                            .metadata
                            .annotations
                            .get_or_insert_with(Default::default);
                        ann.insert(INDEX_FAILURE_COUNT.into(), failures.to_string());
                        ann.insert(INDEX_IGNORED_FAILURE_COUNT.into(), ignored.to_string());
                        creates.push(pod);
                    }
                } else if satisfied && have < want {
                    let last_failure = pods
                        .iter()
                        .filter(|p| counts(p))
                        .filter_map(|p| finished_at(p))
                        .max();
                    let wait_until = last_failure.map(|t| t + backoff(failed));
                    match wait_until.filter(|t| *t > now) {
                        Some(t) => {
                            let d = t.duration_since(now);
                            requeue = Some(requeue.map_or(d, |r| r.min(d)));
                        }
                        None => {
                            let n = (want - have).min(MAX_PER_SYNC);
                            let owner = owner_ref(job);
                            if indexed {
                                let busy: BTreeSet<i32> =
                                    active.iter().filter_map(|p| index_of(p)).collect();
                                let c = spec.completions.unwrap_or(0);
                                for i in (0..c)
                                    .filter(|i| !done_indexes.contains(i) && !busy.contains(i))
                                    .take(n as usize)
                                {
                                    creates.push(new_pod(job, owner.clone(), Some(i)));
                                }
                            } else {
                                for _ in 0..n {
                                    creates.push(new_pod(job, owner.clone(), None));
                                }
                            }
                        }
                    }
                }
            }
        }
    } else if finished_before {
        deletes.extend(active.iter().copied());
    }

    // Pods being deleted now are no longer active (deletes are drawn from `active`).
    st.active = Some(active.len().saturating_sub(deletes.len()) as i32);
    st.ready = Some(active.iter().filter(|p| is_pod_ready(p)).count() as i32);
    st.terminating = Some(terminating as i32);
    st.succeeded = st.succeeded.or(Some(0));
    st.failed = st.failed.or(Some(0));
    if indexed {
        st.completed_indexes = Some(format_indexes(&completed));
    }
    if per_index.is_some() {
        st.failed_indexes = Some(format_indexes(&failed_indexes));
    }
    st.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: Some(unc_ok),
        failed: Some(unc_failed),
    });
    st.conditions = (!conds.is_empty()).then_some(conds);
    if st != old {
        let mut j = job.clone();
        j.status = Some(st);
        if let Ok(d) = DynamicObject::from_typed(&j) {
            // The status goes first: a pod's finalizer is removed only once its UID is
            // recorded, so the count survives the pod.
            actions.insert(
                0,
                Action::UpdateStatus {
                    resource: ApiResource::of::<Job>(),
                    object: d,
                },
            );
        }
    }
    actions.extend(to_release.into_iter().map(remove_finalizer));
    actions.extend(
        deletes
            .into_iter()
            .map(|p| delete_pod(p, None, Some((key.clone(), jref.clone())))),
    );
    if !creates.is_empty() {
        let pods = creates
            .iter()
            .filter_map(|p| DynamicObject::from_typed(p).ok())
            .collect();
        actions.push(Action::CreatePods {
            pods,
            owner: jref.clone(),
            expectation_key: key.clone(),
        });
    }
    if let Some(d) = requeue {
        actions.push(Action::requeue(
            Duration::try_from(d).unwrap_or(Duration::ZERO) + Duration::from_millis(1),
        ));
    }
    actions
}

fn owner_ref(job: &Job) -> OwnerReference {
    controller_ref("batch/v1", "Job", &job.metadata)
}

/// Sets condition `(type, status, reason, message)` and records the event `(type, reason,
/// message)` that tells of it.
fn mark(
    conds: &mut Vec<JobCondition>,
    actions: &mut Vec<Action>,
    o: &ObjectRef,
    (type_, status, reason, message): (&str, &str, &str, &str),
    (event_type, event_reason, event_message): (EventType, &str, &str),
    now: Timestamp,
) {
    set_condition(conds, type_, status, reason, message, now);
    actions.push(Action::Event {
        object: o.clone(),
        type_: event_type,
        reason: event_reason.into(),
        message: event_message.into(),
    });
}

impl Controller for JobController {
    fn name(&self) -> &'static str {
        "job"
    }

    fn component(&self) -> &'static str {
        "job-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<Job>(trigger_self());
        w.watch::<Pod>(owned_pods("Job", self.expectations.clone()));
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let Some(job) = caches.get::<Job>().get(key) else {
            self.expectations.delete(key);
            return Vec::new();
        };
        let managed_by = job.spec.as_ref().and_then(|s| s.managed_by.as_deref());
        if managed_by.is_some_and(|m| m != MANAGED_BY) {
            return Vec::new();
        }
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = controlled(caches, &uid);
        reconcile(&job, &pods, self.expectations.satisfied(key, now), now)
    }

    fn expectations(&self) -> Option<Expectations> {
        Some(self.expectations.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::template;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn job(completions: Option<i32>, parallelism: i32, indexed: bool) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("default".into()),
                uid: Some("uid-pi".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                completions,
                parallelism: Some(parallelism),
                backoff_limit: Some(2),
                completion_mode: Some(if indexed { "Indexed" } else { "NonIndexed" }.into()),
                suspend: Some(false),
                template: template(&[("app", "pi")], "busybox"),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// Applies the status update of `actions` to `j` (what the cache would then show).
    fn apply_status(j: &mut Job, actions: &[Action]) {
        for a in actions {
            if let Action::UpdateStatus { object, .. } = a {
                let updated: Job = object.to_typed().unwrap();
                j.status = updated.status;
            }
        }
    }

    fn created(actions: &[Action]) -> Vec<Pod> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::CreatePods { pods, .. } => Some(pods),
                _ => None,
            })
            .flatten()
            .map(|d| d.to_typed().unwrap())
            .collect()
    }

    fn count(actions: &[Action], f: impl Fn(&Action) -> bool) -> usize {
        actions.iter().filter(|a| f(a)).count()
    }

    /// A pod of the job named `name`, as the API would have it after creation.
    fn stored(mut p: Pod, name: &str) -> Arc<Pod> {
        p.metadata.name = Some(name.into());
        p.metadata.uid = Some(format!("uid-{name}"));
        p.metadata.creation_timestamp = Some(Time(t(0)));
        p.status = Some(Default::default());
        Arc::new(p)
    }

    fn finished(p: &Arc<Pod>, phase: &str, at: Timestamp) -> Arc<Pod> {
        let mut p = (**p).clone();
        let st = p.status.get_or_insert_with(Default::default);
        st.phase = Some(phase.into());
        st.container_statuses = Some(vec![ContainerStatus {
            name: "app".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: if phase == "Succeeded" { 0 } else { 1 },
                    finished_at: Some(Time(at)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        Arc::new(p)
    }

    fn released(p: &Arc<Pod>) -> Arc<Pod> {
        let mut p = (**p).clone();
        p.metadata.finalizers = None;
        Arc::new(p)
    }

    fn condition(j: &Job, type_: &str) -> Option<(String, String)> {
        let c = j
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == type_)?;
        Some((c.status.clone(), c.reason.clone().unwrap_or_default()))
    }

    #[test]
    fn runs_completions_with_parallelism_and_counts_each_pod_once() {
        let mut j = job(Some(3), 2, false);
        let a = reconcile(&j, &[], true, t(0));
        assert!(matches!(a[0], Action::UpdateStatus { .. }), "status first");
        apply_status(&mut j, &a);
        assert_eq!(j.status.as_ref().unwrap().start_time, Some(Time(t(0))));
        let new = created(&a);
        assert_eq!(new.len(), 2, "parallelism 2");
        let meta = &new[0].metadata;
        assert_eq!(
            meta.finalizers.as_deref(),
            Some(&[TRACKING_FINALIZER.to_string()][..])
        );
        assert_eq!(meta.labels.as_ref().unwrap()["job-name"], "pi");
        assert_eq!(
            meta.labels.as_ref().unwrap()["batch.kubernetes.io/controller-uid"],
            "uid-pi"
        );
        let p1 = stored(new[0].clone(), "pi-a");
        let p2 = stored(new[1].clone(), "pi-b");

        // p1 succeeds: its UID is recorded before its finalizer goes.
        let done = finished(&p1, "Succeeded", t(5));
        let a = reconcile(&j, &[done.clone(), p2.clone()], true, t(6));
        apply_status(&mut j, &a);
        let st = j.status.clone().unwrap();
        assert_eq!(
            st.uncounted_terminated_pods.unwrap().succeeded,
            Some(vec!["uid-pi-a".to_string()])
        );
        assert_eq!(st.succeeded, Some(0));
        assert!(matches!(a[0], Action::UpdateStatus { .. }));
        assert_eq!(
            count(&a, |a| matches!(a, Action::Patch { .. })),
            1,
            "finalizer removed"
        );
        assert_eq!(created(&a).len(), 1, "a replacement towards 3 completions");

        // The finalizer is gone: counted once, and once only, even after the pod is deleted.
        let a = reconcile(&j, &[released(&done), p2.clone()], true, t(7));
        apply_status(&mut j, &a);
        assert_eq!(j.status.as_ref().unwrap().succeeded, Some(1));
        let a = reconcile(&j, std::slice::from_ref(&p2), true, t(8));
        apply_status(&mut j, &a);
        assert_eq!(j.status.as_ref().unwrap().succeeded, Some(1));

        // Two more successes complete the job.
        let p3 = stored(new[0].clone(), "pi-c");
        let pods = [
            finished(&p2, "Succeeded", t(9)),
            finished(&p3, "Succeeded", t(9)),
        ];
        let a = reconcile(&j, &pods, true, t(10));
        apply_status(&mut j, &a);
        // Success is decided (the interim condition) but the job is not complete until the
        // last pods are counted.
        assert_eq!(
            condition(&j, "SuccessCriteriaMet"),
            Some(("True".into(), "CompletionsReached".into()))
        );
        assert_eq!(condition(&j, "Complete"), None);
        assert!(!is_finished(&j));
        assert_eq!(count(&a, |a| matches!(a, Action::Patch { .. })), 2);
        assert!(created(&a).is_empty());
        let pods = pods.map(|p| released(&p));
        let a = reconcile(&j, &pods, true, t(11));
        apply_status(&mut j, &a);
        assert_eq!(
            condition(&j, "Complete"),
            Some(("True".into(), "CompletionsReached".into()))
        );
        assert_eq!(j.status.as_ref().unwrap().succeeded, Some(3));
        assert_eq!(
            j.status.as_ref().unwrap().completion_time,
            Some(Time(t(11)))
        );
        assert!(is_finished(&j));
        assert!(created(&reconcile(&j, &pods, true, t(12))).is_empty());
    }

    #[test]
    fn failures_back_off_exponentially_then_exceed_the_limit() {
        let mut j = job(Some(1), 1, false);
        let a = reconcile(&j, &[], true, t(0));
        apply_status(&mut j, &a);
        let p = stored(created(&a)[0].clone(), "pi-a");
        // First failure at t=5: the replacement waits 10 s from it.
        let f1 = released(&finished(&p, "Failed", t(5)));
        let mut st = j.status.clone().unwrap();
        st.failed = Some(1);
        j.status = Some(st);
        let a = reconcile(&j, std::slice::from_ref(&f1), true, t(6));
        assert!(created(&a).is_empty());
        assert!(
            a.iter().any(|a| matches!(a, Action::Requeue(d) if *d > Duration::from_secs(8) && *d <= Duration::from_secs(10))),
            "{a:?}"
        );
        assert_eq!(
            created(&reconcile(&j, std::slice::from_ref(&f1), true, t(15))).len(),
            1
        );
        // Second failure: 20 s.
        let mut st = j.status.clone().unwrap();
        st.failed = Some(2);
        j.status = Some(st);
        let f2 = released(&finished(&stored(Pod::default(), "pi-b"), "Failed", t(20)));
        assert!(created(&reconcile(&j, &[f1.clone(), f2.clone()], true, t(35))).is_empty());
        assert_eq!(
            created(&reconcile(&j, &[f1.clone(), f2.clone()], true, t(40))).len(),
            1
        );
        // A third failure is over backoffLimit 2: Failed, the active pod deleted.
        let running = stored(Pod::default(), "pi-c");
        let f3 = finished(&stored((*p).clone(), "pi-d"), "Failed", t(50));
        let a = reconcile(
            &j,
            &[f1.clone(), f2.clone(), f3.clone(), running],
            true,
            t(51),
        );
        apply_status(&mut j, &a);
        assert_eq!(
            condition(&j, "FailureTarget"),
            Some(("True".into(), "BackoffLimitExceeded".into()))
        );
        assert_eq!(condition(&j, "Failed"), None, "pi-c still runs");
        assert_eq!(
            count(
                &a,
                |a| matches!(a, Action::Delete { name, .. } if name == "pi-c")
            ),
            1
        );
        // pi-c gone and pi-d counted: Failed, with the reason of the decision.
        let a = reconcile(&j, &[f1, f2, released(&f3)], true, t(53));
        apply_status(&mut j, &a);
        assert_eq!(
            condition(&j, "Failed"),
            Some(("True".into(), "BackoffLimitExceeded".into()))
        );
        assert!(a.iter().any(
            |a| matches!(a, Action::Event { reason, .. } if reason == "BackoffLimitExceeded")
        ));
        assert!(j.status.as_ref().unwrap().completion_time.is_none());
    }

    #[test]
    fn indexed_pods_carry_their_index_and_missing_indexes_are_recreated() {
        let mut j = job(Some(3), 3, true);
        let a = reconcile(&j, &[], true, t(0));
        apply_status(&mut j, &a);
        let new = created(&a);
        let idx: Vec<String> = new
            .iter()
            .map(|p| p.metadata.annotations.as_ref().unwrap()[COMPLETION_INDEX].clone())
            .collect();
        assert_eq!(idx, ["0", "1", "2"]);
        let spec = new[1].spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pi-1"));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, "JOB_COMPLETION_INDEX");
        assert_eq!(new[1].metadata.generate_name.as_deref(), Some("pi-1-"));
        let pods: Vec<Arc<Pod>> = new
            .iter()
            .enumerate()
            .map(|(i, p)| stored(p.clone(), &format!("pi-{i}")))
            .collect();
        // Index 1 succeeds and is counted; index 2 fails: only index 2 is created again.
        let one = released(&finished(&pods[1], "Succeeded", t(3)));
        let two = released(&finished(&pods[2], "Failed", t(3)));
        let mut st = j.status.clone().unwrap();
        st.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: Some(vec!["uid-pi-1".into()]),
            failed: Some(vec!["uid-pi-2".into()]),
        });
        j.status = Some(st);
        let a = reconcile(&j, &[pods[0].clone(), one, two], true, t(20));
        apply_status(&mut j, &a);
        let st = j.status.clone().unwrap();
        assert_eq!(st.completed_indexes.as_deref(), Some("1"));
        assert_eq!((st.succeeded, st.failed), (Some(1), Some(1)));
        let again: Vec<String> = created(&a)
            .iter()
            .map(|p| p.metadata.annotations.as_ref().unwrap()[COMPLETION_INDEX].clone())
            .collect();
        assert_eq!(again, ["2"]);
        assert_eq!(format_indexes(&parse_indexes(Some("0,2-4,7"))), "0,2-4,7");
        assert_eq!(format_indexes(&parse_indexes(Some("0-1,3"))), "0,1,3");
    }

    #[test]
    fn suspend_deletes_active_pods_and_resume_restarts_the_clock() {
        let mut j = job(Some(2), 2, false);
        let a = reconcile(&j, &[], true, t(0));
        apply_status(&mut j, &a);
        let pods: Vec<Arc<Pod>> = created(&a)
            .into_iter()
            .enumerate()
            .map(|(i, p)| stored(p, &format!("pi-{i}")))
            .collect();
        j.spec.as_mut().unwrap().suspend = Some(true);
        let a = reconcile(&j, &pods, true, t(5));
        apply_status(&mut j, &a);
        assert_eq!(count(&a, |a| matches!(a, Action::Delete { .. })), 2);
        assert_eq!(
            condition(&j, "Suspended"),
            Some(("True".into(), "JobSuspended".into()))
        );
        assert_eq!(j.status.as_ref().unwrap().active, Some(0));
        j.spec.as_mut().unwrap().suspend = Some(false);
        let a = reconcile(&j, &[], true, t(60));
        apply_status(&mut j, &a);
        assert_eq!(
            condition(&j, "Suspended"),
            Some(("False".into(), "JobResumed".into()))
        );
        assert_eq!(j.status.as_ref().unwrap().start_time, Some(Time(t(60))));
        assert_eq!(created(&a).len(), 2);
    }

    #[test]
    fn active_deadline_fails_the_job() {
        let mut j = job(Some(1), 1, false);
        j.spec.as_mut().unwrap().active_deadline_seconds = Some(30);
        let a = reconcile(&j, &[], true, t(0));
        apply_status(&mut j, &a);
        assert!(a
            .iter()
            .any(|a| matches!(a, Action::Requeue(d) if *d >= Duration::from_secs(30))));
        let p = stored(created(&a)[0].clone(), "pi-a");
        let a = reconcile(&j, &[p], true, t(30));
        apply_status(&mut j, &a);
        assert_eq!(
            condition(&j, "FailureTarget"),
            Some(("True".into(), "DeadlineExceeded".into()))
        );
        assert_eq!(count(&a, |a| matches!(a, Action::Delete { .. })), 1);
        let a = reconcile(&j, &[], true, t(31));
        apply_status(&mut j, &a);
        assert_eq!(
            condition(&j, "Failed"),
            Some(("True".into(), "DeadlineExceeded".into()))
        );
    }

    #[test]
    fn a_deleted_pod_counts_as_failed_and_is_let_go() {
        let mut j = job(Some(1), 1, false);
        let a = reconcile(&j, &[], true, t(0));
        apply_status(&mut j, &a);
        let mut gone = (*stored(created(&a)[0].clone(), "pi-a")).clone();
        gone.metadata.deletion_timestamp = Some(Time(t(3)));
        let a = reconcile(&j, &[Arc::new(gone)], true, t(4));
        apply_status(&mut j, &a);
        let unc = j.status.clone().unwrap().uncounted_terminated_pods.unwrap();
        assert_eq!(unc.failed, Some(vec!["uid-pi-a".to_string()]));
        assert_eq!(
            count(&a, |a| matches!(a, Action::Patch { .. })),
            1,
            "finalizer removed"
        );
        assert!(
            created(&a).is_empty(),
            "the replacement waits out the back-off"
        );
    }

    #[test]
    fn nothing_is_created_while_expectations_wait() {
        let j = job(Some(3), 2, false);
        assert!(created(&reconcile(&j, &[], false, t(0))).is_empty());
    }

    /// `p` failed with `code` from container `app` at t(5), with `conditions` (type, status).
    fn exited(p: &Arc<Pod>, code: i32, conditions: &[(&str, &str)]) -> Arc<Pod> {
        let mut p = (*finished(p, "Failed", t(5))).clone();
        let st = p.status.as_mut().unwrap();
        st.container_statuses.as_mut().unwrap()[0]
            .state
            .as_mut()
            .unwrap()
            .terminated
            .as_mut()
            .unwrap()
            .exit_code = code;
        st.conditions = Some(
            conditions
                .iter()
                .map(|(ty, status)| k8s_openapi::api::core::v1::PodCondition {
                    type_: ty.to_string(),
                    status: status.to_string(),
                    ..Default::default()
                })
                .collect(),
        );
        Arc::new(p)
    }

    #[test]
    fn pod_failure_policy_fails_the_job_ignores_or_counts() {
        let mut j = job(Some(1), 1, false);
        let spec = j.spec.as_mut().unwrap();
        spec.pod_failure_policy = Some(
            serde_json::from_value(serde_json::json!({"rules": [
                {"action": "FailJob",
                 "onExitCodes": {"containerName": "app", "operator": "In", "values": [42]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [42]}},
            ]}))
            .unwrap(),
        );
        spec.pod_replacement_policy = Some("Failed".into()); // what defaulting sets
        let a = reconcile(&j, &[], true, t(0));
        apply_status(&mut j, &a);
        let new = created(&a)[0].clone();

        // A disruption is ignored: not counted, replaced at once (no back-off).
        let disrupted = exited(
            &stored(new.clone(), "pi-a"),
            137,
            &[("DisruptionTarget", "True")],
        );
        let a = reconcile(&j, std::slice::from_ref(&disrupted), true, t(6));
        apply_status(&mut j, &a);
        let st = j.status.clone().unwrap();
        assert_eq!(st.uncounted_terminated_pods.unwrap().failed, Some(vec![]));
        assert_eq!(
            count(&a, |a| matches!(a, Action::Patch { .. })),
            1,
            "let go"
        );
        assert_eq!(created(&a).len(), 1, "replaced without back-off");
        let disrupted = released(&disrupted);

        // Exit code 1 counts (the third rule), and backs off.
        let one = exited(&stored(new.clone(), "pi-b"), 1, &[]);
        let a = reconcile(&j, &[disrupted.clone(), one.clone()], true, t(6));
        apply_status(&mut j, &a);
        let unc = j.status.clone().unwrap().uncounted_terminated_pods.unwrap();
        assert_eq!(unc.failed, Some(vec!["uid-pi-b".to_string()]));
        assert!(created(&a).is_empty(), "back-off");

        // Exit code 42 fails the job at once, with the rule named.
        let code42 = exited(&stored(new, "pi-c"), 42, &[]);
        let pods = [disrupted, released(&one), code42.clone()];
        let a = reconcile(&j, &pods, true, t(30));
        apply_status(&mut j, &a);
        assert_eq!(
            condition(&j, "FailureTarget"),
            Some(("True".into(), "PodFailurePolicy".into()))
        );
        let msg = j.status.as_ref().unwrap().conditions.as_ref().unwrap()[0]
            .message
            .clone();
        assert_eq!(
            msg.as_deref(),
            Some("Container app for pod default/pi-c failed with exit code 42 matching FailJob rule at index 0")
        );
        assert!(created(&a).is_empty());
        let pods = [pods[0].clone(), pods[1].clone(), released(&code42)];
        let a = reconcile(&j, &pods, true, t(31));
        apply_status(&mut j, &a);
        assert_eq!(
            condition(&j, "Failed"),
            Some(("True".into(), "PodFailurePolicy".into()))
        );
        assert_eq!(j.status.as_ref().unwrap().failed, Some(2));
    }

    #[test]
    fn with_replacement_policy_failed_a_terminating_pod_is_replaced_once_it_failed() {
        let mut j = job(Some(1), 1, false);
        j.spec.as_mut().unwrap().pod_replacement_policy = Some("Failed".into());
        let a = reconcile(&j, &[], true, t(0));
        apply_status(&mut j, &a);
        let mut going = (*stored(created(&a)[0].clone(), "pi-a")).clone();
        going.metadata.deletion_timestamp = Some(Time(t(3)));
        going.status.get_or_insert_with(Default::default).phase = Some("Running".into());
        let going = Arc::new(going);
        let a = reconcile(&j, std::slice::from_ref(&going), true, t(4));
        apply_status(&mut j, &a);
        let st = j.status.clone().unwrap();
        assert_eq!((st.terminating, st.active), (Some(1), Some(0)));
        assert!(created(&a).is_empty(), "not replaced while terminating");
        assert_eq!(st.uncounted_terminated_pods.unwrap().failed, Some(vec![]));
        let failed = released(&finished(&going, "Failed", t(5)));
        let mut st = j.status.clone().unwrap();
        st.failed = Some(1);
        j.status = Some(st);
        let a = reconcile(&j, &[failed], true, t(20));
        assert_eq!(
            created(&a).len(),
            1,
            "replaced once failed (after its back-off)"
        );
    }

    fn ann(p: &Pod, key: &str) -> String {
        p.metadata.annotations.as_ref().unwrap()[key].clone()
    }

    #[test]
    fn backoff_limit_per_index_fails_indexes_not_the_job() {
        let mut j = job(Some(3), 3, true);
        let spec = j.spec.as_mut().unwrap();
        spec.backoff_limit_per_index = Some(1);
        spec.backoff_limit = Some(i32::MAX); // what defaulting sets
        let a = reconcile(&j, &[], true, t(0));
        apply_status(&mut j, &a);
        let new = created(&a);
        assert_eq!(ann(&new[0], INDEX_FAILURE_COUNT), "0");
        let pods: Vec<Arc<Pod>> = new
            .iter()
            .enumerate()
            .map(|(i, p)| stored(p.clone(), &format!("pi-{i}")))
            .collect();
        // Index 0 fails once: its replacement carries the count and waits 10 s.
        let f0 = released(&finished(&pods[0], "Failed", t(5)));
        let mut st = j.status.clone().unwrap();
        st.failed = Some(1);
        j.status = Some(st);
        let live = [f0.clone(), pods[1].clone(), pods[2].clone()];
        assert!(created(&reconcile(&j, &live, true, t(6))).is_empty());
        let a = reconcile(&j, &live, true, t(15));
        let again = created(&a);
        assert_eq!(again.len(), 1);
        assert_eq!(ann(&again[0], COMPLETION_INDEX), "0");
        assert_eq!(ann(&again[0], INDEX_FAILURE_COUNT), "1");
        // Its second failure exceeds the limit of 1: index 0 fails, not the job.
        let f0b = finished(&stored(again[0].clone(), "pi-0b"), "Failed", t(20));
        let live = [f0.clone(), f0b.clone(), pods[1].clone(), pods[2].clone()];
        let a = reconcile(&j, &live, true, t(21));
        apply_status(&mut j, &a);
        assert_eq!(
            j.status.as_ref().unwrap().failed_indexes.as_deref(),
            Some("0")
        );
        assert!(created(&a).is_empty(), "a failed index is not retried");
        assert_eq!(condition(&j, "FailureTarget"), None);
        // The other indexes succeed: the job fails, with its failed indexes as the reason.
        let done = [
            f0,
            released(&f0b),
            released(&finished(&pods[1], "Succeeded", t(30))),
            released(&finished(&pods[2], "Succeeded", t(30))),
        ];
        let mut st = j.status.clone().unwrap();
        st.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: Some(vec!["uid-pi-1".into(), "uid-pi-2".into()]),
            failed: Some(vec!["uid-pi-0b".into()]),
        });
        j.status = Some(st);
        let a = reconcile(&j, &done, true, t(31));
        apply_status(&mut j, &a);
        assert_eq!(
            j.status.as_ref().unwrap().completed_indexes.as_deref(),
            Some("1,2")
        );
        assert_eq!(
            condition(&j, "Failed"),
            Some(("True".into(), "FailedIndexes".into()))
        );
    }

    #[test]
    fn max_failed_indexes_and_fail_index_rules() {
        let mut j = job(Some(4), 4, true);
        let spec = j.spec.as_mut().unwrap();
        spec.backoff_limit_per_index = Some(3);
        spec.max_failed_indexes = Some(0);
        spec.backoff_limit = Some(i32::MAX);
        spec.pod_failure_policy = Some(
            serde_json::from_value(serde_json::json!({"rules": [
                {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [3]}},
            ]}))
            .unwrap(),
        );
        let a = reconcile(&j, &[], true, t(0));
        apply_status(&mut j, &a);
        let first = stored(created(&a)[0].clone(), "pi-0");
        // Exit code 3 fails index 0 at once; one failed index is more than 0 allowed.
        let a = reconcile(&j, &[exited(&first, 3, &[])], true, t(6));
        apply_status(&mut j, &a);
        assert_eq!(
            j.status.as_ref().unwrap().failed_indexes.as_deref(),
            Some("0")
        );
        assert_eq!(
            condition(&j, "FailureTarget"),
            Some(("True".into(), "MaxFailedIndexesExceeded".into()))
        );
    }

    #[test]
    fn a_success_policy_completes_the_job_early() {
        let mut j = job(Some(5), 5, true);
        j.spec.as_mut().unwrap().success_policy = Some(
            serde_json::from_value(serde_json::json!({"rules": [
                {"succeededIndexes": "0-1", "succeededCount": 2},
                {"succeededCount": 3},
            ]}))
            .unwrap(),
        );
        let a = reconcile(&j, &[], true, t(0));
        apply_status(&mut j, &a);
        let pods: Vec<Arc<Pod>> = created(&a)
            .iter()
            .enumerate()
            .map(|(i, p)| stored(p.clone(), &format!("pi-{i}")))
            .collect();
        // Index 0 and 3 done: neither rule met.
        let mut live = pods.clone();
        live[0] = finished(&pods[0], "Succeeded", t(5));
        live[3] = finished(&pods[3], "Succeeded", t(5));
        let a = reconcile(&j, &live, true, t(6));
        apply_status(&mut j, &a);
        assert_eq!(condition(&j, "SuccessCriteriaMet"), None);
        // Index 1 too: the first rule (0 and 1) is met; the rest are deleted.
        live[1] = finished(&pods[1], "Succeeded", t(7));
        let a = reconcile(&j, &live, true, t(8));
        apply_status(&mut j, &a);
        let c = j.status.as_ref().unwrap().conditions.clone().unwrap();
        let met = c.iter().find(|c| c.type_ == "SuccessCriteriaMet").unwrap();
        assert_eq!(met.reason.as_deref(), Some("SuccessPolicy"));
        assert_eq!(met.message.as_deref(), Some("Matched rules at index 0"));
        assert_eq!(count(&a, |a| matches!(a, Action::Delete { .. })), 2);
        // Once the others are gone and the successes counted: Complete.
        let rest = [0, 1, 3].map(|i| released(&live[i]));
        let a = reconcile(&j, &rest, true, t(9));
        apply_status(&mut j, &a);
        assert_eq!(
            condition(&j, "Complete"),
            Some(("True".into(), "SuccessPolicy".into()))
        );
    }
}
