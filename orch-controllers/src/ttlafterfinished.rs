//! TTL-after-finished controller, after upstream `pkg/controller/ttlafterfinished`: a finished
//! Job (a `Complete` or `Failed` condition) with `spec.ttlSecondsAfterFinished` is deleted,
//! with foreground propagation so its pods go first, once that many seconds have passed since
//! the condition's `lastTransitionTime`. Before that the Job is looked at again when it
//! expires.

use crate::job::is_finished;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_self, Caches, Controller, Watches};
use orch_runtime::object::is_deleting;
use orch_types::client::PropagationPolicy;
use orch_types::registry::ApiResource;
use std::time::Duration;

/// The controller's declaration.
#[derive(Debug, Default)]
pub struct TtlAfterFinishedController;

/// When a finished Job expires: its finish time (the latest `Complete` / `Failed` condition
/// that is true) plus `ttlSecondsAfterFinished`; `None` when it has no TTL or is not finished
/// (upstream `timeLeft` / `jobFinishTime`).
pub fn expires_at(job: &Job) -> Option<Timestamp> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if !is_finished(job) {
        return None;
    }
    let finished = job
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .filter(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
        .max()?;
    Some(finished + SignedDuration::from_secs(i64::from(ttl)))
}

/// What to do about `job` at `now`: delete it (UID precondition: never a newer Job of the same
/// name), or look again when it expires.
pub fn reconcile(job: &Job, now: Timestamp) -> Vec<Action> {
    let Some(at) = expires_at(job).filter(|_| !is_deleting(&job.metadata)) else {
        return Vec::new();
    };
    if now < at {
        let wait = Duration::try_from(at.duration_since(now)).unwrap_or_default();
        return vec![Action::requeue(wait + Duration::from_millis(1))];
    }
    vec![Action::Delete {
        resource: ApiResource::of::<Job>(),
        namespace: job.metadata.namespace.clone(),
        name: job.metadata.name.clone().unwrap_or_default(),
        uid: job.metadata.uid.clone(),
        propagation: Some(PropagationPolicy::Foreground),
        grace_period_seconds: None,
        owner: None,
    }]
}

impl Controller for TtlAfterFinishedController {
    fn name(&self) -> &'static str {
        "ttl-after-finished"
    }

    fn component(&self) -> &'static str {
        "ttl-after-finished-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<Job>(trigger_self());
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        caches
            .get::<Job>()
            .get(key)
            .map(|j| reconcile(&j, now))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn job(ttl: Option<i32>, finished: Option<(&str, i64)>) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("default".into()),
                uid: Some("uid-pi".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                ttl_seconds_after_finished: ttl,
                ..Default::default()
            }),
            status: Some(JobStatus {
                conditions: finished.map(|(type_, at)| {
                    vec![JobCondition {
                        type_: type_.into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(t(at))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_finished_job_is_deleted_once_its_ttl_has_passed() {
        let j = job(Some(30), Some(("Complete", 100)));
        assert_eq!(expires_at(&j), Some(t(130)));
        let early = reconcile(&j, t(110));
        assert!(
            matches!(early[..], [Action::Requeue(d)] if d > Duration::from_secs(19) && d <= Duration::from_secs(21)),
            "{early:?}"
        );
        let due = reconcile(&j, t(130));
        assert!(matches!(
            &due[..],
            [Action::Delete { name, uid: Some(u), propagation: Some(PropagationPolicy::Foreground), .. }]
                if name == "pi" && u == "uid-pi"
        ));
        assert_eq!(expires_at(&job(Some(0), Some(("Failed", 5)))), Some(t(5)));
    }

    #[test]
    fn running_jobs_and_jobs_without_ttl_stay() {
        assert!(reconcile(&job(Some(30), None), t(1_000)).is_empty());
        assert!(reconcile(&job(None, Some(("Complete", 0))), t(1_000)).is_empty());
        let mut deleting = job(Some(1), Some(("Complete", 0)));
        deleting.metadata.deletion_timestamp = Some(Time(t(2)));
        assert!(reconcile(&deleting, t(1_000)).is_empty());
    }
}
