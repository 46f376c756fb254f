//! CronJob controller, after upstream `pkg/controller/cronjob/cronjob_controllerv2.go` and
//! `utils.go` (Kubernetes 1.33):
//! - the schedule (robfig/cron's standard grammar, [`orch_types::cron`]) is read in
//!   `spec.timeZone`, or in UTC when there is none (upstream: the controller manager's local
//!   zone); a `TZ=` prefix left in an old schedule wins, with an `UnsupportedSchedule` warning;
//! - the next run is the most recent schedule time after `status.lastScheduleTime` (or the
//!   creation time) that has passed (`mostRecentScheduleTime`): after any downtime at most one
//!   catch-up run, the latest one missed, and none once `startingDeadlineSeconds` has passed
//!   for it; more than 100 missed times give a `TooManyMissedTimes` warning;
//! - a Job is `<cronjob>-<scheduled time in minutes since the epoch>` (`getJobName`), with the
//!   template's labels and annotations, `batch.kubernetes.io/cronjob-scheduled-timestamp` (RFC
//!   3339 in the CronJob's zone) and a controller reference;
//! - `concurrencyPolicy`: `Allow`; `Forbid` skips a run while one is active
//!   (`JobAlreadyActive`); `Replace` deletes the active Jobs (background propagation) first;
//! - `suspend` stops new runs; `status.active` follows the Jobs that exist (`SawCompletedJob`,
//!   `MissingJob`, `UnexpectedJob`), with `lastScheduleTime` and `lastSuccessfulTime`;
//! - the oldest finished Jobs beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit`
//!   are deleted (background propagation, oldest `status.startTime` first);
//! - the CronJob is looked at again at its next schedule time plus 100 ms
//!   (`nextScheduleTimeDuration`).
//!
//! The clock is the `now` handed to `sync`, so CronJobs run in the simulator's virtual time.
//!
//! Where orch differs: upstream reads the API server before acting on a Job missing from its
//! cache and checks `AlreadyExists` after a create; here the create is guarded (done only if
//! the API has no Job of that name) and is followed, only once it succeeded, by the status
//! update that records it in `status.active` (without its UID, which is filled in when the
//! Job is seen); the removal of a missing active Job is guarded the same way. A finished Job
//! updates `lastSuccessfulTime` in the pass that sees it finish (upstream: the next pass).

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use orch_runtime::action::{Action, Lookup};
use orch_runtime::controller::{trigger_owner, trigger_self, Caches, Controller, Watches};
use orch_runtime::object::{controller_of, controller_ref, is_deleting, name, uid};
use orch_types::client::PropagationPolicy;
use orch_types::cron::{load_time_zone, Schedule};
use orch_types::events::ObjectRef;
use orch_types::registry::ApiResource;
use std::sync::Arc;
use std::time::Duration;

/// Annotation on a Job with the time it was scheduled for (RFC 3339 in the CronJob's zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Added to a requeue at the next schedule time against clock skew (`nextScheduleDelta`).
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);
/// More missed schedule times than this give a `TooManyMissedTimes` warning.
const TOO_MANY_MISSED: i64 = 100;

/// The CronJob controller's declaration.
#[derive(Debug, Default)]
pub struct CronJobController;

/// How many schedule times passed unmet (`missedSchedulesType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missed {
    None,
    Few,
    Many,
}

/// What `mostRecentScheduleTime` finds.
#[derive(Debug, Clone, Copy)]
struct MostRecent {
    /// The last schedule time or the creation time (moved up to the starting deadline).
    earliest: Timestamp,
    /// The latest schedule time not after `now`, if one passed since `earliest`.
    time: Option<Timestamp>,
    missed: Missed,
}

/// The schedule of one CronJob with the zone it is read in.
struct Clock<'a> {
    schedule: &'a Schedule,
    zone: &'a TimeZone,
}

impl Clock<'_> {
    fn next(&self, t: Timestamp) -> Option<Timestamp> {
        self.schedule.next_after(t, self.zone)
    }

    /// upstream `mostRecentScheduleTime`; errors for a schedule that (almost) never fires.
    fn most_recent(
        &self,
        earliest: Timestamp,
        deadline: Option<i64>,
        now: Timestamp,
    ) -> Result<MostRecent, String> {
        let mut earliest = earliest;
        if let Some(limit) =
            deadline.and_then(|d| now.checked_sub(SignedDuration::from_secs(d)).ok())
        {
            if limit > earliest {
                earliest = limit;
            }
        }
        let none = |missed| MostRecent {
            earliest,
            time: None,
            missed,
        };
        let too_close = || "time difference between two schedules is less than 1 second".into();
        let Some(t1) = self.next(earliest) else {
            return Err(too_close());
        };
        if now < t1 {
            return Ok(none(Missed::None));
        }
        let Some(t2) = self.next(t1) else {
            return Err(too_close());
        };
        if now < t2 {
            return Ok(MostRecent {
                earliest,
                time: Some(t1),
                missed: Missed::None,
            });
        }
        // Go `Round(time.Second)`: half a second up.
        let between = (t2.duration_since(t1).as_millis() + 500).div_euclid(1000) as i64;
        if between < 1 {
            return Err(too_close());
        }
        // Counted roughly from the first two times, as upstream, then walked exactly from
        // one interval before the estimate.
        let elapsed = now.duration_since(t1).as_secs();
        let missed = elapsed / between + 1;
        let mut t = t1
            .checked_add(SignedDuration::from_secs(
                (missed - 2).saturating_mul(between),
            ))
            .unwrap_or(t1);
        let mut latest = None;
        while let Some(n) = self.next(t).filter(|n| *n <= now) {
            latest = Some(n);
            t = n;
        }
        let missed = if missed > TOO_MANY_MISSED {
            Missed::Many
        } else {
            Missed::Few
        };
        Ok(MostRecent {
            earliest,
            time: latest,
            missed,
        })
    }

    /// upstream `nextScheduleTimeDuration`: until the schedule time after the most recent one
    /// (ignoring the starting deadline), plus [`NEXT_SCHEDULE_DELTA`].
    fn requeue(&self, earliest: Timestamp, now: Timestamp) -> Action {
        let from = match self.most_recent(earliest, None, now) {
            Err(_) => now,
            Ok(MostRecent { time: Some(t), .. }) => t,
            Ok(MostRecent {
                time: None,
                missed: Missed::None,
                earliest,
            }) => earliest,
            Ok(_) => now,
        };
        let wait = self
            .next(from)
            .map(|n| Duration::try_from(n.duration_since(now)).unwrap_or(Duration::ZERO))
            // A schedule that never fires again: look once a day.
            .unwrap_or(Duration::from_secs(24 * 3600));
        Action::requeue(wait + NEXT_SCHEDULE_DELTA)
    }
}

/// `getJobName`: the CronJob's name and the scheduled time in minutes since the epoch.
pub fn job_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second() / 60)
}

/// Go's `time.RFC3339` of `t` in `zone` (`Z` for a zero offset).
fn rfc3339(t: Timestamp, zone: &TimeZone) -> String {
    let z = t.to_zoned(zone.clone());
    let offset = z.offset().seconds();
    let base = z.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if offset == 0 {
        return format!("{base}Z");
    }
    let sign = if offset < 0 { '-' } else { '+' };
    let o = offset.abs();
    format!("{base}{sign}{:02}:{:02}", o / 3600, (o % 3600) / 60)
}

/// `getJobFromTemplate2`: the Job for `scheduled`.
fn job_from_template(cj: &CronJob, scheduled: Timestamp, zone: &TimeZone) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    let mut annotations = tm.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339(scheduled, zone));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(name(&cj.metadata), scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: tm.labels.filter(|l| !l.is_empty()),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref("batch/v1", "CronJob", &cj.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// `Complete` or `Failed` when the Job has finished (`getFinishedStatus`).
fn finished_as(j: &Job) -> Option<&'static str> {
    let conds = j.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some("Complete"),
            "Failed" => Some("Failed"),
            _ => None,
        })
}

/// `getRef` of a Job.
fn job_ref(j: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        namespace: j.metadata.namespace.clone(),
        name: j.metadata.name.clone(),
        uid: j.metadata.uid.clone(),
        resource_version: j.metadata.resource_version.clone(),
        field_path: None,
    }
}

fn job_lookup(namespace: Option<&String>, name: &str, uid: Option<&String>) -> Lookup {
    Lookup {
        resource: ApiResource::of::<Job>(),
        namespace: namespace.cloned(),
        name: Some(name.into()),
        uid: uid.cloned(),
    }
}

/// `deleteJob`: background propagation, never a newer Job of the same name.
fn delete_job(j: &Job) -> Action {
    Action::Delete {
        resource: ApiResource::of::<Job>(),
        namespace: j.metadata.namespace.clone(),
        name: name(&j.metadata).into(),
        uid: j.metadata.uid.clone(),
        propagation: Some(PropagationPolicy::Background),
        grace_period_seconds: None,
        owner: None,
    }
}

/// Actions carried out in order, stopping at the first that fails (a guard on nothing).
fn in_sequence(then: Vec<Action>) -> Action {
    Action::Guarded {
        absent: Vec::new(),
        then,
    }
}

/// What one pass decides.
struct Plan<'a> {
    cj: &'a CronJob,
    me: ObjectRef,
    status: CronJobStatus,
    /// History clean-up: each deletion with its event, independent of the others.
    cleanup: Vec<Action>,
    events: Vec<Action>,
    /// Active Jobs deleted before a replacement is created.
    replace: Vec<Action>,
    create: Option<Job>,
    /// Active Jobs the cache does not have: their removal waits for the API to agree.
    missing: Vec<Lookup>,
    requeue: Option<Action>,
}

impl Plan<'_> {
    fn active(&mut self) -> &mut Vec<ObjectReference> {
        self.status.active.get_or_insert_with(Vec::new)
    }

    fn remove_active(&mut self, uid: &str) {
        self.active().retain(|r| r.uid.as_deref() != Some(uid));
    }

    fn warn(&mut self, reason: &str, message: String) {
        self.events
            .push(Action::warning(self.me.clone(), reason, message));
    }

    fn note(&mut self, reason: &str, message: String) {
        self.events
            .push(Action::normal(self.me.clone(), reason, message));
    }

    /// `cleanupFinishedJobs`: the oldest finished Jobs beyond each history limit.
    fn cleanup_finished(&mut self, jobs: &[Arc<Job>]) {
        let spec = self.cj.spec.clone().unwrap_or_default();
        for (limit, kind) in [
            (spec.successful_jobs_history_limit, "Complete"),
            (spec.failed_jobs_history_limit, "Failed"),
        ] {
            let Some(limit) = limit else { continue };
            let mut done: Vec<&Job> = jobs
                .iter()
                .map(Arc::as_ref)
                .filter(|j| finished_as(j) == Some(kind) && !is_deleting(&j.metadata))
                .collect();
            let excess = done.len().saturating_sub(limit.max(0) as usize);
            // `byJobStartTime`: by start time, those without one last, then by name.
            done.sort_by(|a, b| {
                let start = |j: &Job| j.status.as_ref().and_then(|s| s.start_time.clone());
                match (start(a), start(b)) {
                    (Some(x), Some(y)) if x != y => x.0.cmp(&y.0),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    _ => name(&a.metadata).cmp(name(&b.metadata)),
                }
            });
            for j in done.into_iter().take(excess) {
                self.remove_active(uid(&j.metadata));
                self.cleanup.push(in_sequence(vec![
                    delete_job(j),
                    Action::normal(
                        self.me.clone(),
                        "SuccessfulDelete",
                        format!("Deleted job {}", name(&j.metadata)),
                    ),
                ]));
            }
        }
    }

    /// `syncCronJob`.
    fn sync(&mut self, jobs: &[Arc<Job>], now: Timestamp) {
        let cj = self.cj;
        let spec = cj.spec.clone().unwrap_or_default();
        for j in jobs {
            let (jname, juid) = (name(&j.metadata), uid(&j.metadata));
            let finished = finished_as(j);
            // In the active list by UID, or by name where the UID is not known yet (a Job
            // this controller created is recorded before it is seen).
            let mut found = false;
            for r in self.active().iter_mut() {
                if r.uid.as_deref() == Some(juid) {
                    found = true;
                } else if r.uid.is_none() && r.name.as_deref() == Some(jname) {
                    *r = job_ref(j);
                    found = true;
                }
            }
            match finished {
                None if !found => self.warn(
                    "UnexpectedJob",
                    format!("Saw a job that the controller did not create or forgot: {jname}"),
                ),
                Some(how) if found => {
                    self.remove_active(juid);
                    self.note(
                        "SawCompletedJob",
                        format!("Saw completed job: {jname}, status: {how}"),
                    );
                }
                _ => {}
            }
            if finished == Some("Complete") {
                let done = j.status.as_ref().and_then(|s| s.completion_time.clone());
                if let Some(t) = done {
                    let last = &mut self.status.last_successful_time;
                    if last.as_ref().is_none_or(|l| t.0 > l.0) {
                        *last = Some(t);
                    }
                }
            }
        }
        // Active Jobs that no longer exist.
        let gone: Vec<ObjectReference> = self
            .active()
            .iter()
            .filter(|r| {
                !jobs.iter().any(|j| match &r.uid {
                    Some(u) => uid(&j.metadata) == u,
                    None => r.name.as_deref() == Some(name(&j.metadata)),
                })
            })
            .cloned()
            .collect();
        for r in gone {
            let rname = r.name.clone().unwrap_or_default();
            self.missing.push(job_lookup(
                r.namespace.as_ref().or(cj.metadata.namespace.as_ref()),
                &rname,
                r.uid.as_ref(),
            ));
            self.active().retain(|a| a != &r);
            self.note("MissingJob", format!("Active job went missing: {rname}"));
        }
        if is_deleting(&cj.metadata) {
            return;
        }
        let zone = match spec.time_zone.as_deref().map(load_time_zone) {
            None => TimeZone::UTC,
            Some(Ok(z)) => z,
            Some(Err(e)) => {
                let tz = spec.time_zone.clone().unwrap_or_default();
                self.warn("UnknownTimeZone", format!("invalid timeZone: {tz:?}: {e}"));
                return;
            }
        };
        if spec.suspend == Some(true) {
            return;
        }
        if spec.schedule.contains("TZ") {
            self.warn(
                "UnsupportedSchedule",
                format!(
                    "CRON_TZ or TZ used in schedule {:?} is not officially supported, see \
                     https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for \
                     more details",
                    spec.schedule
                ),
            );
        }
        let schedule = match Schedule::parse(&spec.schedule) {
            Ok(s) => s,
            Err(e) => {
                self.warn(
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return;
            }
        };
        let clock = Clock {
            schedule: &schedule,
            zone: &zone,
        };
        let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
        let earliest = |st: &CronJobStatus| st.last_schedule_time.as_ref().map_or(created, |t| t.0);
        // `nextScheduleTime`.
        let scheduled =
            match clock.most_recent(earliest(&self.status), spec.starting_deadline_seconds, now) {
                Ok(MostRecent {
                    time: Some(t),
                    missed,
                    ..
                }) => {
                    if missed == Missed::Many {
                        self.warn(
                            "TooManyMissedTimes",
                            "too many missed start times. Set or decrease \
                         .spec.startingDeadlineSeconds or check clock skew"
                                .into(),
                        );
                    }
                    t
                }
                Ok(_) => {
                    self.requeue = Some(clock.requeue(earliest(&self.status), now));
                    return;
                }
                Err(e) => {
                    self.warn(
                        "InvalidSchedule",
                        format!("invalid schedule: {} : {e}", spec.schedule),
                    );
                    return;
                }
            };
        let too_late = spec
            .starting_deadline_seconds
            .and_then(|d| scheduled.checked_add(SignedDuration::from_secs(d)).ok())
            .is_some_and(|limit| limit < now);
        if too_late {
            self.warn(
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    scheduled
                        .to_zoned(TimeZone::UTC)
                        .strftime("%a, %d %b %Y %H:%M:%S %z")
                ),
            );
            self.requeue = Some(clock.requeue(earliest(&self.status), now));
            return;
        }
        let jname = job_name(name(&cj.metadata), scheduled);
        let last_is_it = self
            .status
            .last_schedule_time
            .as_ref()
            .is_some_and(|t| t.0 == scheduled);
        let in_active = self
            .active()
            .iter()
            .any(|r| r.name.as_deref() == Some(jname.as_str()));
        if !in_active && !last_is_it {
            // Created before, but its status update was lost (upstream `AlreadyExists`).
            if let Some(j) = jobs.iter().find(|j| name(&j.metadata) == jname) {
                if finished_as(j).is_none() {
                    let r = job_ref(j);
                    self.active().push(r);
                }
                self.status.last_schedule_time = Some(Time(scheduled));
                self.requeue = Some(clock.requeue(scheduled, now));
                return;
            }
        }
        if in_active || last_is_it {
            self.requeue = Some(clock.requeue(earliest(&self.status), now));
            return;
        }
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        if policy == "Forbid" && !self.active().is_empty() {
            self.note(
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy \
                 is Forbid"
                    .into(),
            );
            self.requeue = Some(clock.requeue(earliest(&self.status), now));
            return;
        }
        if policy == "Replace" {
            let active = std::mem::take(self.active());
            for r in active {
                let Some(j) = jobs
                    .iter()
                    .find(|j| r.uid.as_deref() == Some(uid(&j.metadata)))
                else {
                    continue;
                };
                self.replace.push(delete_job(j));
                self.replace.push(Action::normal(
                    self.me.clone(),
                    "SuccessfulDelete",
                    format!("Deleted job {}", name(&j.metadata)),
                ));
            }
        }
        let job = job_from_template(cj, scheduled, &zone);
        self.active().push(ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            namespace: cj.metadata.namespace.clone(),
            name: Some(jname),
            ..Default::default()
        });
        self.status.last_schedule_time = Some(Time(scheduled));
        self.create = Some(job);
        self.requeue = Some(clock.requeue(scheduled, now));
    }

    fn into_actions(mut self) -> Vec<Action> {
        if self.status.active.as_ref().is_some_and(Vec::is_empty) {
            self.status.active = None;
        }
        let old = self.cj.status.clone().unwrap_or_default();
        let update = (self.status != old).then(|| {
            let mut c = self.cj.clone();
            c.status = Some(self.status.clone());
            Action::update_status(&c)
        });
        let mut out = self.cleanup;
        out.extend(self.events);
        match self.create {
            Some(job) => {
                let jname = name(&job.metadata).to_string();
                let mut then = vec![
                    Action::create(&job),
                    Action::normal(
                        self.me.clone(),
                        "SuccessfulCreate",
                        format!("Created job {jname}"),
                    ),
                ];
                then.extend(update);
                let mut seq = self.replace;
                seq.push(Action::Guarded {
                    absent: vec![job_lookup(job.metadata.namespace.as_ref(), &jname, None)],
                    then,
                });
                out.push(in_sequence(seq));
            }
            None => out.extend(update),
        }
        if !self.missing.is_empty() {
            out = vec![Action::Guarded {
                absent: self.missing,
                then: out,
            }];
        }
        out.extend(self.requeue);
        out
    }
}

/// One pass over `cj` and the Jobs it controls: history clean-up, the active list, and the
/// Job due at `now` if any; ends with when to look again (none while suspended or when the
/// schedule or zone is invalid).
pub fn reconcile(cj: &CronJob, jobs: &[Arc<Job>], now: Timestamp) -> Vec<Action> {
    let mut plan = Plan {
        cj,
        me: ObjectRef::of(cj),
        status: cj.status.clone().unwrap_or_default(),
        cleanup: Vec::new(),
        events: Vec::new(),
        replace: Vec::new(),
        create: None,
        missing: Vec::new(),
        requeue: None,
    };
    plan.cleanup_finished(jobs);
    plan.sync(jobs, now);
    plan.into_actions()
}

impl Controller for CronJobController {
    fn name(&self) -> &'static str {
        "cronjob"
    }

    fn component(&self) -> &'static str {
        "cronjob-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<CronJob>(trigger_self());
        w.watch::<Job>(trigger_owner("CronJob"));
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let Some(cj) = caches.get::<CronJob>().get(key) else {
            return Vec::new();
        };
        let me = uid(&cj.metadata).to_string();
        let jobs: Vec<Arc<Job>> = caches
            .get::<Job>()
            .owned_by(&me)
            .into_iter()
            .filter(|j| controller_of(&j.metadata).is_some_and(|r| r.uid == me))
            .collect();
        reconcile(&cj, &jobs, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::template;
    use k8s_openapi::api::batch::v1::{
        CronJobSpec, JobCondition, JobSpec, JobStatus, JobTemplateSpec,
    };
    use std::collections::BTreeMap;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A stored CronJob as the API has it after defaulting.
    fn cron_job(schedule: &str, created: &str) -> CronJob {
        CronJob {
            metadata: ObjectMeta {
                name: Some("tick".into()),
                namespace: Some("default".into()),
                uid: Some("uid-tick".into()),
                resource_version: Some("1".into()),
                creation_timestamp: Some(Time(t(created))),
                ..Default::default()
            },
            spec: Some(CronJobSpec {
                schedule: schedule.into(),
                concurrency_policy: Some("Allow".into()),
                suspend: Some(false),
                successful_jobs_history_limit: Some(3),
                failed_jobs_history_limit: Some(1),
                job_template: JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(BTreeMap::from([("app".into(), "tick".into())])),
                        annotations: Some(BTreeMap::from([("team".into(), "a".into())])),
                        ..Default::default()
                    }),
                    spec: Some(JobSpec {
                        template: template(&[("app", "tick")], "busybox"),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    /// Every action, with those inside guards.
    fn flat(actions: &[Action]) -> Vec<&Action> {
        let mut out = Vec::new();
        for a in actions {
            out.push(a);
            if let Action::Guarded { then, .. } = a {
                out.extend(flat(then));
            }
        }
        out
    }

    fn created(actions: &[Action]) -> Vec<Job> {
        flat(actions)
            .into_iter()
            .filter_map(|a| match a {
                Action::Create { object, .. } => Some(object.to_typed().unwrap()),
                _ => None,
            })
            .collect()
    }

    fn deleted(actions: &[Action]) -> Vec<(String, Option<PropagationPolicy>)> {
        flat(actions)
            .into_iter()
            .filter_map(|a| match a {
                Action::Delete {
                    name, propagation, ..
                } => Some((name.clone(), *propagation)),
                _ => None,
            })
            .collect()
    }

    fn reasons(actions: &[Action]) -> Vec<String> {
        flat(actions)
            .into_iter()
            .filter_map(|a| match a {
                Action::Event { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    fn requeue(actions: &[Action]) -> Option<Duration> {
        orch_runtime::action::requeue_of(actions)
    }

    /// Applies the status update of `actions` to `cj`, as the cache would then show it.
    fn apply_status(cj: &mut CronJob, actions: &[Action]) {
        for a in flat(actions) {
            if let Action::UpdateStatus { object, .. } = a {
                let c: CronJob = object.to_typed().unwrap();
                cj.status = c.status;
            }
        }
    }

    /// A Job as the API stores it.
    fn stored(mut j: Job) -> Arc<Job> {
        let n = name(&j.metadata).to_string();
        j.metadata.uid = Some(format!("uid-{n}"));
        j.metadata.resource_version = Some("7".into());
        Arc::new(j)
    }

    fn finish(j: &Arc<Job>, how: &str, start: &str, end: &str) -> Arc<Job> {
        let mut j = (**j).clone();
        j.status = Some(JobStatus {
            start_time: Some(Time(t(start))),
            completion_time: (how == "Complete").then(|| Time(t(end))),
            conditions: Some(vec![JobCondition {
                type_: how.into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        Arc::new(j)
    }

    fn active_names(cj: &CronJob) -> Vec<String> {
        cj.status
            .as_ref()
            .and_then(|s| s.active.as_ref())
            .into_iter()
            .flatten()
            .map(|r| r.name.clone().unwrap_or_default())
            .collect()
    }

    fn last_schedule(cj: &CronJob) -> Option<Timestamp> {
        cj.status.as_ref()?.last_schedule_time.as_ref().map(|t| t.0)
    }

    #[test]
    fn runs_on_schedule_and_records_the_job() {
        let mut cj = cron_job("*/5 * * * *", "2024-01-01T10:02:00Z");
        let a = reconcile(&cj, &[], t("2024-01-01T10:04:00Z"));
        assert!(created(&a).is_empty());
        assert_eq!(requeue(&a), Some(Duration::from_millis(60_100)));

        let a = reconcile(&cj, &[], t("2024-01-01T10:05:00.1Z"));
        let jobs = created(&a);
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        let minutes = t("2024-01-01T10:05:00Z").as_second() / 60;
        assert_eq!(name(&job.metadata), format!("tick-{minutes}"));
        assert_eq!(job.metadata.labels.as_ref().unwrap()["app"], "tick");
        let ann = job.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann["team"], "a");
        assert_eq!(ann[SCHEDULED_TIMESTAMP], "2024-01-01T10:05:00Z");
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("CronJob", "uid-tick", Some(true))
        );
        // The create is guarded on the name, and its status update follows it.
        assert!(matches!(&a[0], Action::Guarded { absent, then }
            if absent.is_empty() && matches!(&then[0], Action::Guarded { absent, .. }
                if absent[0].name.as_deref() == Some(name(&job.metadata)))));
        apply_status(&mut cj, &a);
        assert_eq!(last_schedule(&cj), Some(t("2024-01-01T10:05:00Z")));
        assert_eq!(active_names(&cj), [name(&job.metadata).to_string()]);
        assert_eq!(reasons(&a), ["SuccessfulCreate"]);
        assert_eq!(requeue(&a), Some(Duration::from_millis(299_900 + 100)));

        // Seen: its UID is filled in; nothing more is created before 10:10.
        let seen = stored(job.clone());
        let a = reconcile(&cj, std::slice::from_ref(&seen), t("2024-01-01T10:05:01Z"));
        assert!(created(&a).is_empty());
        apply_status(&mut cj, &a);
        let r = &cj.status.as_ref().unwrap().active.as_ref().unwrap()[0];
        assert_eq!(r.uid.as_deref(), Some(uid(&seen.metadata)));
        let a = reconcile(
            &cj,
            std::slice::from_ref(&seen),
            t("2024-01-01T10:10:00.1Z"),
        );
        assert_eq!(created(&a).len(), 1, "Allow: a second run beside the first");
        apply_status(&mut cj, &a);
        assert_eq!(active_names(&cj).len(), 2);
    }

    #[test]
    fn after_downtime_only_the_most_recent_missed_time_runs() {
        let mut cj = cron_job("*/5 * * * *", "2024-01-01T09:00:00Z");
        cj.status = Some(CronJobStatus {
            last_schedule_time: Some(Time(t("2024-01-01T10:00:00Z"))),
            ..Default::default()
        });
        // 3.5 hours down: 43 missed times, one run, for 13:35.
        let a = reconcile(&cj, &[], t("2024-01-01T13:37:00Z"));
        let jobs = created(&a);
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            name(&jobs[0].metadata),
            job_name("tick", t("2024-01-01T13:35:00Z"))
        );
        assert!(!reasons(&a).contains(&"TooManyMissedTimes".to_string()));
        assert_eq!(requeue(&a), Some(Duration::from_millis(180_100)));
        // Two days down: still one run, with a warning.
        let a = reconcile(&cj, &[], t("2024-01-03T10:01:00Z"));
        let jobs = created(&a);
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0].metadata.annotations.as_ref().unwrap()[SCHEDULED_TIMESTAMP],
            "2024-01-03T10:00:00Z"
        );
        assert_eq!(reasons(&a), ["TooManyMissedTimes", "SuccessfulCreate"]);
    }

    #[test]
    fn a_missed_time_past_the_starting_deadline_does_not_run() {
        let mut cj = cron_job("*/5 * * * *", "2024-01-01T09:00:00Z");
        cj.status = Some(CronJobStatus {
            last_schedule_time: Some(Time(t("2024-01-01T10:00:00Z"))),
            ..Default::default()
        });
        cj.spec.as_mut().unwrap().starting_deadline_seconds = Some(60);
        // 13:35 was 2 minutes ago, past its 60 s deadline.
        let a = reconcile(&cj, &[], t("2024-01-01T13:37:00Z"));
        assert!(created(&a).is_empty());
        assert_eq!(requeue(&a), Some(Duration::from_millis(180_100)));
        // Within the deadline it runs.
        cj.spec.as_mut().unwrap().starting_deadline_seconds = Some(300);
        assert_eq!(
            created(&reconcile(&cj, &[], t("2024-01-01T13:37:00Z"))).len(),
            1
        );
    }

    /// `cj` with one running Job scheduled at 10:00, and that Job.
    fn running(policy: &str) -> (CronJob, Arc<Job>) {
        let mut cj = cron_job("*/5 * * * *", "2024-01-01T09:00:00Z");
        cj.spec.as_mut().unwrap().concurrency_policy = Some(policy.into());
        let first = reconcile(&cj, &[], t("2024-01-01T10:00:00Z"));
        apply_status(&mut cj, &first);
        let job = stored(created(&first).remove(0));
        let a = reconcile(&cj, std::slice::from_ref(&job), t("2024-01-01T10:01:00Z"));
        apply_status(&mut cj, &a);
        (cj, job)
    }

    #[test]
    fn forbid_skips_while_a_run_is_active() {
        let (cj, job) = running("Forbid");
        let a = reconcile(&cj, std::slice::from_ref(&job), t("2024-01-01T10:05:00Z"));
        assert!(created(&a).is_empty());
        assert_eq!(reasons(&a), ["JobAlreadyActive"]);
        assert_eq!(requeue(&a), Some(Duration::from_millis(300_100)));
        // Once it finished, the skipped 10:05 run starts (late: `lastScheduleTime` stayed at
        // 10:00, as upstream), and the next one at 10:10.
        let done = finish(
            &job,
            "Complete",
            "2024-01-01T10:00:01Z",
            "2024-01-01T10:06:00Z",
        );
        let a = reconcile(&cj, std::slice::from_ref(&done), t("2024-01-01T10:06:30Z"));
        let mut after = cj.clone();
        apply_status(&mut after, &a);
        assert_eq!(reasons(&a), ["SawCompletedJob", "SuccessfulCreate"]);
        let late = created(&a);
        assert_eq!(
            name(&late[0].metadata),
            job_name("tick", t("2024-01-01T10:05:00Z"))
        );
        assert_eq!(active_names(&after), [name(&late[0].metadata).to_string()]);
        assert_eq!(
            after.status.as_ref().unwrap().last_successful_time,
            Some(Time(t("2024-01-01T10:06:00Z")))
        );
        assert_eq!(requeue(&a), Some(Duration::from_millis(210_100)));
    }

    #[test]
    fn replace_deletes_the_active_run_first() {
        let (mut cj, job) = running("Replace");
        let a = reconcile(&cj, std::slice::from_ref(&job), t("2024-01-01T10:05:00Z"));
        assert_eq!(
            deleted(&a),
            [(
                name(&job.metadata).to_string(),
                Some(PropagationPolicy::Background)
            )]
        );
        let new = created(&a);
        assert_eq!(new.len(), 1);
        // One sequence: the delete, then the guarded create.
        let Action::Guarded { then, .. } = &a[0] else {
            panic!("{a:?}")
        };
        assert!(matches!(then[0], Action::Delete { .. }));
        assert!(matches!(then.last(), Some(Action::Guarded { .. })));
        apply_status(&mut cj, &a);
        assert_eq!(active_names(&cj), [name(&new[0].metadata).to_string()]);
    }

    #[test]
    fn allow_runs_beside_an_active_run() {
        let (mut cj, job) = running("Allow");
        let a = reconcile(&cj, std::slice::from_ref(&job), t("2024-01-01T10:05:00Z"));
        assert!(deleted(&a).is_empty());
        assert_eq!(created(&a).len(), 1);
        apply_status(&mut cj, &a);
        assert_eq!(active_names(&cj).len(), 2);
    }

    #[test]
    fn suspend_stops_new_runs() {
        let mut cj = cron_job("*/5 * * * *", "2024-01-01T09:00:00Z");
        cj.spec.as_mut().unwrap().suspend = Some(true);
        let a = reconcile(&cj, &[], t("2024-01-01T10:00:00Z"));
        assert!(a.is_empty(), "{a:?}");
    }

    #[test]
    fn history_limits_delete_the_oldest_finished_jobs() {
        let cj = cron_job("@hourly", "2024-01-01T00:00:00Z");
        let job = |h: u32, how: &str| {
            let at = format!("2024-01-01T{h:02}:00:00Z");
            let mut j = job_from_template(&cj, t(&at), &TimeZone::UTC);
            j.metadata.name = Some(format!("tick-{h}"));
            finish(&stored(j), how, &at, &format!("2024-01-01T{h:02}:01:00Z"))
        };
        let jobs = vec![
            job(5, "Complete"),
            job(1, "Complete"),
            job(3, "Complete"),
            job(2, "Failed"),
            job(4, "Complete"),
            job(6, "Failed"),
            job(7, "Complete"),
        ];
        let a = reconcile(&cj, &jobs, t("2024-01-01T07:30:00Z"));
        let mut gone = deleted(&a);
        gone.sort_by(|a, b| a.0.cmp(&b.0));
        let bg = Some(PropagationPolicy::Background);
        assert_eq!(
            gone,
            [
                ("tick-1".to_string(), bg),
                ("tick-2".to_string(), bg),
                ("tick-3".to_string(), bg)
            ]
        );
        assert_eq!(
            reasons(&a)
                .iter()
                .filter(|r| *r == "SuccessfulDelete")
                .count(),
            3
        );
    }

    #[test]
    fn a_time_zone_moves_the_schedule() {
        let mut paris = cron_job("0 9 * * *", "2024-01-10T00:00:00Z");
        paris.spec.as_mut().unwrap().time_zone = Some("Europe/Paris".into());
        // 09:00 in Paris is 08:00 UTC in January.
        let a = reconcile(&paris, &[], t("2024-01-10T08:00:00Z"));
        let jobs = created(&a);
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0].metadata.annotations.as_ref().unwrap()[SCHEDULED_TIMESTAMP],
            "2024-01-10T09:00:00+01:00"
        );
        let utc = cron_job("0 9 * * *", "2024-01-10T00:00:00Z");
        let a = reconcile(&utc, &[], t("2024-01-10T08:00:00Z"));
        assert!(created(&a).is_empty());
        assert_eq!(requeue(&a), Some(Duration::from_millis(3_600_100)));

        let mut bad = cron_job("0 9 * * *", "2024-01-10T00:00:00Z");
        bad.spec.as_mut().unwrap().time_zone = Some("Mars/Base".into());
        let a = reconcile(&bad, &[], t("2024-01-10T09:00:00Z"));
        assert_eq!(reasons(&a), ["UnknownTimeZone"]);
        assert!(requeue(&a).is_none());
    }

    #[test]
    fn active_jobs_follow_the_jobs_that_exist() {
        let (cj, job) = running("Allow");
        // The Job is gone from the cache: removed once the API agrees.
        let a = reconcile(&cj, &[], t("2024-01-01T10:02:00Z"));
        let Action::Guarded { absent, then } = &a[0] else {
            panic!("{a:?}")
        };
        assert_eq!(absent[0].name.as_deref(), Some(name(&job.metadata)));
        assert_eq!(absent[0].uid.as_deref(), Some(uid(&job.metadata)));
        assert_eq!(reasons(then), ["MissingJob"]);
        let mut after = cj.clone();
        apply_status(&mut after, &a);
        assert!(active_names(&after).is_empty());

        // A running Job it did not create (e.g. `kubectl create job --from`): a warning.
        let mut manual = (*job).clone();
        manual.metadata.name = Some("manual".into());
        manual.metadata.uid = Some("uid-manual".into());
        let a = reconcile(&cj, &[job, Arc::new(manual)], t("2024-01-01T10:02:00Z"));
        assert_eq!(reasons(&a), ["UnexpectedJob"]);
    }

    #[test]
    fn a_created_job_whose_status_update_was_lost_is_recorded() {
        let cj = cron_job("*/5 * * * *", "2024-01-01T09:00:00Z");
        let first = reconcile(&cj, &[], t("2024-01-01T10:00:00Z"));
        let job = stored(created(&first).remove(0));
        // The status update never landed; the Job is there.
        let a = reconcile(&cj, std::slice::from_ref(&job), t("2024-01-01T10:00:30Z"));
        assert!(created(&a).is_empty());
        let mut after = cj.clone();
        apply_status(&mut after, &a);
        assert_eq!(last_schedule(&after), Some(t("2024-01-01T10:00:00Z")));
        assert_eq!(active_names(&after), [name(&job.metadata).to_string()]);
    }

    #[test]
    fn job_names_count_minutes() {
        assert_eq!(job_name("tick", t("1970-01-01T01:00:00Z")), "tick-60");
        assert_eq!(
            rfc3339(
                t("2024-07-01T07:00:00Z"),
                &load_time_zone("Asia/Kolkata").unwrap()
            ),
            "2024-07-01T12:30:00+05:30"
        );
    }
}
