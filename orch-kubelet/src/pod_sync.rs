//! One pod's sync step, shared by the live kubelet and the simulator.
//!
//! The live [`Kubelet`](crate::Kubelet) and the simulator drive the same synchronous code; only
//! the I/O around it differs:
//!
//! - [`admit`] turns a pod bound to the node into its [`PodWorker`]: admitted, or rejected with
//!   upstream's reason (`OutOfcpu`, `OutOfpods`, …) from [`node::admit`].
//! - [`env_refs`] says which ConfigMaps and Secrets a pod references; the caller fetches them
//!   (through the API, or from its caches) and [`env_context`] builds the [`EnvContext`].
//! - [`PodSync::step`] ticks the worker and returns what the driver must do, as data
//!   ([`StepOutput`]): handler jobs to run, events to record, the status to write (only when it
//!   changed since the last write or drifted from the API's copy), whether to delete the pod
//!   object, whether to refresh the environment, and when to look again. The driver reports
//!   the outcome of a status write with [`PodSync::status_written`] or
//!   [`PodSync::status_write_failed`].
//!
//! The live kubelet runs jobs on blocking threads and sleeps on tokio timers; the simulator
//! runs jobs inline ([`PodSync::step_inline`]) and jumps its virtual clock to
//! [`StepOutput::wake`].
//!
//! ```
//! use orch_kubelet::pod_sync::{self, PodSync};
//! use orch_kubelet::runtime::sim::SimRuntime;
//! use orch_kubelet::worker::WorkerConfig;
//! use orch_types::clock::{Clock, ManualClock};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
//!     "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
//! })).unwrap();
//! let pod = Arc::new(pod);
//! let clock = ManualClock::at_epoch_seconds(1_700_000_000);
//! let rt = SimRuntime::new(0);
//! let cfg = WorkerConfig { node_name: "n1".into(), host_ip: "10.0.0.1".into(), allow_privileged: false, dns: Default::default() };
//! let alloc = orch_types::resources::ResourceList::new();
//! let env = pod_sync::env_context(&pod, Default::default(), &alloc, "10.0.0.1");
//! let worker = pod_sync::admit(cfg, pod.clone(), &[], &alloc, env, clock.now());
//! let mut sync = PodSync::new(worker, clock.now(), Duration::from_secs(1));
//!
//! let out = sync.step_inline(clock.now(), &rt, pod.status.as_ref());
//! let status = out.status_to_write.expect("a new pod's first status is written");
//! assert_eq!(status.phase.as_deref(), Some("Running"));
//! sync.status_written(out.status_digest);
//! // Nothing new: nothing to write.
//! let again = sync.step_inline(clock.now(), &rt, Some(&status));
//! assert!(again.status_to_write.is_none());
//! ```

use crate::env::EnvContext;
use crate::node;
use crate::runtime::ContainerRuntime;
use crate::volume::PodVolumes;
use crate::worker::{Job, PodEvent, PodWorker, Rejection, WorkerConfig};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, PodStatus, Secret, Service,
};
use orch_types::resources::ResourceList;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// While a container waits on a missing ConfigMap or Secret (`CreateContainerConfigError`),
/// the environment is refetched this often ([`StepOutput::refresh_env`]).
pub const ENV_REFRESH: Duration = Duration::from_secs(5);

/// While the pod waits for its claims to be bound (`FailedMount`), the environment (with the
/// claims) is refetched this often ([`StepOutput::refresh_env`]).
pub const VOLUME_REFRESH: Duration = Duration::from_secs(1);

/// The least time between looks at a pod blocked on `CreateContainerConfigError` with no timer
/// of its own, whatever the poll interval.
const CONFIG_BLOCKED_POLL: Duration = Duration::from_secs(1);

/// True for a pod already `Succeeded` or `Failed`: no worker is made for it (a kubelet that
/// first sees it, e.g. after a restart, has nothing to run; if it is being deleted, the driver
/// finishes the deletion with grace period 0).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Admission (upstream `canAdmitPod`): the worker for `pod`, admitted when it fits beside the
/// pods `admitted` on the node (not yet finished) within `allocatable`, else rejected with the
/// reason and message of [`node::admit`] (`OutOfcpu`, `OutOfmemory`, `OutOfpods`, …), which
/// only reports the pod `Failed`. The worker shares `pod` (never copies it) and starts with
/// `env`.
pub fn admit(
    cfg: WorkerConfig,
    pod: Arc<Pod>,
    admitted: &[&Pod],
    allocatable: &ResourceList,
    env: EnvContext,
    now: Timestamp,
) -> PodWorker {
    admit_usage(
        cfg,
        pod,
        admitted.len(),
        &node::usage(admitted),
        allocatable,
        env,
        now,
    )
}

/// [`admit`] for a caller that keeps each node's usage itself (the simulator): `running` pods
/// using `used` (see [`node::usage`]).
pub fn admit_usage(
    cfg: WorkerConfig,
    pod: Arc<Pod>,
    running: usize,
    used: &ResourceList,
    allocatable: &ResourceList,
    env: EnvContext,
    now: Timestamp,
) -> PodWorker {
    let mut worker = match node::admit_usage(&pod, running, used, allocatable) {
        Ok(()) => PodWorker::new(cfg, pod, now),
        Err(e) => PodWorker::rejected(
            cfg,
            pod,
            now,
            Rejection {
                reason: e.reason,
                message: e.message,
            },
        ),
    };
    worker.set_env_context(env);
    worker
}

/// The objects a pod's environment reads, by name in the pod's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvRefs {
    /// ConfigMaps named by `env[].valueFrom.configMapKeyRef` and `envFrom[].configMapRef`.
    pub config_maps: BTreeSet<String>,
    /// Secrets named by `env[].valueFrom.secretKeyRef` and `envFrom[].secretRef`.
    pub secrets: BTreeSet<String>,
    /// `imagePullSecrets`, in order.
    pub pull_secrets: Vec<String>,
}

impl EnvRefs {
    /// Every Secret to fetch: those of the environment and the pull secrets, each once.
    pub fn all_secrets(&self) -> BTreeSet<&str> {
        self.secrets
            .iter()
            .chain(self.pull_secrets.iter())
            .map(String::as_str)
            .collect()
    }
}

/// Which ConfigMaps and Secrets `pod` references (its containers, init containers and
/// ephemeral containers, and its `imagePullSecrets`): what a caller fetches before
/// [`env_context`].
pub fn env_refs(pod: &Pod) -> EnvRefs {
    let mut refs = EnvRefs::default();
    let Some(spec) = pod.spec.as_ref() else {
        return refs;
    };
    let ephemeral: Vec<_> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(orch_types::ephemeral::as_container)
        .collect();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .chain(&ephemeral)
    {
        for e in c.env.iter().flatten() {
            if let Some(s) = &e.value_from {
                if let Some(r) = &s.config_map_key_ref {
                    refs.config_maps.insert(r.name.clone());
                }
                if let Some(r) = &s.secret_key_ref {
                    refs.secrets.insert(r.name.clone());
                }
            }
        }
        for f in c.env_from.iter().flatten() {
            if let Some(r) = &f.config_map_ref {
                refs.config_maps.insert(r.name.clone());
            }
            if let Some(r) = &f.secret_ref {
                refs.secrets.insert(r.name.clone());
            }
        }
    }
    refs.pull_secrets = spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.clone())
        .collect();
    refs
}

/// Objects already fetched for a pod's environment. Missing ones are simply absent (the
/// container then waits in `CreateContainerConfigError`); objects of other namespaces and ones
/// the pod does not reference are ignored by [`env_context`].
#[derive(Debug, Clone, Default)]
pub struct EnvObjects {
    /// ConfigMaps of the pod's namespace.
    pub config_maps: Vec<ConfigMap>,
    /// Secrets of the pod's namespace: both those of the environment and the pull secrets.
    pub secrets: Vec<Secret>,
    /// Services of the pod's namespace (service-link variables).
    pub services: Vec<Service>,
    /// The `kubernetes` Service of `default` (`KUBERNETES_SERVICE_HOST`/`_PORT`).
    pub kubernetes_service: Option<Service>,
    /// The PersistentVolumeClaims the pod uses ([`crate::volume::claim_names`]) that exist.
    pub claims: Vec<PersistentVolumeClaim>,
    /// The PersistentVolumes those claims are bound to that exist.
    pub volumes: Vec<PersistentVolume>,
}

/// The pod's environment context from already-fetched objects (pure): the referenced
/// ConfigMaps and Secrets ([`env_refs`]) of the pod's namespace, its pull secrets in
/// `imagePullSecrets` order, the namespace's Services, the `kubernetes` Service's cluster IP and
/// first port, node allocatable cpu and memory (for unset limits), and `host_ip`. The pod IP is
/// left empty: the worker knows it from its sandbox.
pub fn env_context(
    pod: &Pod,
    objects: EnvObjects,
    allocatable: &ResourceList,
    host_ip: &str,
) -> EnvContext {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let in_ns = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.namespace.as_deref().is_none_or(|n| n == ns)
    };
    let refs = env_refs(pod);
    let mut ctx = EnvContext {
        node_cpu: allocatable.get("cpu").copied(),
        node_memory: allocatable.get("memory").copied(),
        host_ip: host_ip.to_string(),
        ..Default::default()
    };
    for cm in objects.config_maps {
        if !in_ns(&cm.metadata) {
            continue;
        }
        if let Some(name) = cm.metadata.name.clone() {
            if refs.config_maps.contains(&name) {
                ctx.config_maps.insert(name, cm);
            }
        }
    }
    let mut secrets = std::collections::BTreeMap::new();
    for s in objects.secrets {
        if !in_ns(&s.metadata) {
            continue;
        }
        if let Some(name) = s.metadata.name.clone() {
            secrets.insert(name, s);
        }
    }
    ctx.pull_secrets = refs
        .pull_secrets
        .iter()
        .filter_map(|n| secrets.get(n).cloned())
        .collect();
    ctx.secrets = secrets
        .into_iter()
        .filter(|(n, _)| refs.secrets.contains(n))
        .collect();
    ctx.services = objects
        .services
        .into_iter()
        .filter(|s| in_ns(&s.metadata))
        .collect();
    ctx.master_service = objects.kubernetes_service.and_then(|k| {
        let spec = k.spec?;
        let port = spec.ports.as_ref()?.first()?.port;
        Some((spec.cluster_ip?, port))
    });
    ctx.volumes = PodVolumes::resolve(pod, &objects.claims, &objects.volumes);
    ctx
}

/// A 64-bit FNV-1a digest of a pod status' JSON form: what [`PodSync`] keeps of the status it
/// last wrote, instead of a copy, to tell whether the next one differs.
pub fn status_digest(status: &PodStatus) -> u64 {
    struct Fnv(u64);
    impl std::io::Write for Fnv {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            for x in b {
                self.0 ^= u64::from(*x);
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = Fnv(0xcbf2_9ce4_8422_2325);
    // Serialising plain data into a writer that cannot fail does not fail.
    let _ = serde_json::to_writer(&mut w, status);
    w.0
}

/// Phase and condition statuses: what must agree between our status and the API's copy.
fn summary(s: Option<&PodStatus>) -> (Option<&str>, Vec<(&str, &str)>) {
    let Some(s) = s else { return (None, vec![]) };
    let mut c: Vec<(&str, &str)> = s
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    c.sort_unstable();
    (s.phase.as_deref(), c)
}

/// True when a container waits on a missing ConfigMap/Secret (or key).
fn config_blocked(status: &PodStatus) -> bool {
    status
        .container_statuses
        .iter()
        .chain(status.init_container_statuses.iter())
        .chain(status.ephemeral_container_statuses.iter())
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
        .any(|r| r == "CreateContainerConfigError")
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(t)
}

/// What one [`PodSync::step`] asks the driver to do.
#[derive(Debug, Clone, Default)]
#[must_use = "a step's jobs, events, status write and deletion are for the driver to carry out"]
pub struct StepOutput {
    /// Probe and hook runs that are due; run each (it may block up to its timeout) and report
    /// with [`PodWorker::handler_done`]. Empty after [`PodSync::step_inline`].
    pub jobs: Vec<Job>,
    /// Events to record about the pod, in order (off the status path).
    pub events: Vec<PodEvent>,
    /// The status to write: `None` when it is unchanged since the last write and agrees with
    /// the API's copy (phase and conditions), or when the pod object is gone. Report the
    /// outcome with [`PodSync::status_written`] or [`PodSync::status_write_failed`].
    pub status_to_write: Option<PodStatus>,
    /// [`status_digest`] of `status_to_write` (0 when there is none), for
    /// [`PodSync::status_written`]: the step has it already.
    pub status_digest: u64,
    /// Every container stopped after deletion and a status was written (or is in
    /// `status_to_write`): delete the pod object with grace period 0 and a UID precondition,
    /// after writing `status_to_write` — not if that write failed (the next step asks again).
    pub delete: bool,
    /// The worker is finished and the pod object is gone: remove its containers
    /// ([`PodWorker::container_ids`]) and drop it. Nothing else in this output is set.
    pub finished: bool,
    /// A container waits on a missing ConfigMap or Secret and the environment was last
    /// refreshed [`ENV_REFRESH`] ago or more, or the pod waits for its claims
    /// ([`PodWorker::waiting_for_volumes`]) and it was refreshed [`VOLUME_REFRESH`] ago or
    /// more: refetch it ([`env_refs`], [`crate::volume::claim_names`], [`env_context`]) and
    /// hand it to [`PodWorker::set_env_context`].
    pub refresh_env: bool,
    /// When to step again without news: the worker's next timer; else, for a pod still
    /// Pending or terminating, the poll interval from now. A pod waiting on a ConfigMap/Secret
    /// or on a runtime that must be polled ([`ContainerRuntime::needs_polling`]: real
    /// processes) is looked at at least every poll interval (at least 1 s apart while waiting
    /// on a ConfigMap/Secret). `None`: only news (a pod update, a finished job) makes a
    /// difference.
    pub wake: Option<Timestamp>,
}

/// A [`PodWorker`] and what the sync loop remembers between steps: a digest of the status last
/// written, and when the environment was last refreshed.
#[derive(Debug)]
pub struct PodSync {
    worker: PodWorker,
    /// [`status_digest`] of the status last written (`None`: write the next one, whatever it is).
    last_written: Option<u64>,
    last_env_refresh: Timestamp,
    poll: Duration,
}

impl PodSync {
    /// Wraps `worker`, whose environment was fetched at `now`. `poll` is how long a pod with
    /// no timer of its own waits before it is looked at again while it settles (the live
    /// kubelet's `poll_interval`; the simulator's 1 s).
    pub fn new(worker: PodWorker, now: Timestamp, poll: Duration) -> Self {
        Self {
            worker,
            last_written: None,
            last_env_refresh: now,
            poll,
        }
    }

    /// The worker.
    pub fn worker(&self) -> &PodWorker {
        &self.worker
    }

    /// The worker, to feed it news ([`PodWorker::update_pod`], [`PodWorker::pod_removed`],
    /// [`PodWorker::handler_done`], [`PodWorker::set_env_context`]).
    pub fn worker_mut(&mut self) -> &mut PodWorker {
        &mut self.worker
    }

    /// The poll interval given to [`PodSync::new`].
    pub fn poll_interval(&self) -> Duration {
        self.poll
    }

    /// True once a status was written and none failed since.
    pub fn has_written(&self) -> bool {
        self.last_written.is_some()
    }

    /// One step at `now`: tick the worker against `rt` and say what to do. `api_copy` is the
    /// pod status as the API server last had it (a status that disagrees with ours in phase or
    /// conditions, e.g. after the node lifecycle controller marked the pod not Ready, is
    /// rewritten even if ours did not change, as upstream's status manager does).
    pub fn step(
        &mut self,
        now: Timestamp,
        rt: &dyn ContainerRuntime,
        api_copy: Option<&PodStatus>,
    ) -> StepOutput {
        let jobs = self.worker.tick(now, rt);
        self.finish_step(now, rt, api_copy, jobs)
    }

    /// [`PodSync::step`] for a driver whose handlers take no time (virtual time): the due jobs
    /// run at once on `rt` and are reported back before the status is taken, so
    /// [`StepOutput::jobs`] is empty.
    pub fn step_inline(
        &mut self,
        now: Timestamp,
        rt: &dyn ContainerRuntime,
        api_copy: Option<&PodStatus>,
    ) -> StepOutput {
        for job in self.worker.tick(now, rt) {
            let out = rt.run_handler(
                &job.id,
                job.kind,
                &job.action,
                &job.target,
                job.timeout,
                now,
            );
            self.worker.handler_done(&job, out, now);
        }
        self.finish_step(now, rt, api_copy, vec![])
    }

    fn finish_step(
        &mut self,
        now: Timestamp,
        rt: &dyn ContainerRuntime,
        api_copy: Option<&PodStatus>,
        jobs: Vec<Job>,
    ) -> StepOutput {
        let w = &mut self.worker;
        let events = w.take_events();
        let status = w.status(now);
        if w.is_finished() && w.pod_is_gone() {
            return StepOutput {
                jobs,
                events,
                finished: true,
                ..Default::default()
            };
        }
        let timer = w.next_wakeup(now, rt);
        let mounting = w.waiting_for_volumes();
        let blocked = config_blocked(&status) || mounting;
        let every = if mounting {
            VOLUME_REFRESH
        } else {
            ENV_REFRESH
        };
        let refresh_env = blocked
            && Duration::try_from(now.duration_since(self.last_env_refresh))
                .is_ok_and(|d| d >= every);
        if refresh_env {
            self.last_env_refresh = now;
        }
        // Look again after the poll interval while the pod settles (image pull, sandbox,
        // termination) or waits on a ConfigMap/Secret and has no timer of its own; a runtime
        // that must be polled (real processes) is looked at that often anyway.
        let finished = w.is_finished();
        let terminating = w.pod().metadata.deletion_timestamp.is_some() || w.pod_is_gone();
        let pending = status.phase.as_deref().is_none_or(|p| p == "Pending");
        let poll = if blocked {
            self.poll.max(CONFIG_BLOCKED_POLL)
        } else {
            self.poll
        };
        let settling = !finished && (pending || terminating);
        let polled = !finished && (rt.needs_polling() || blocked);
        let wake = match timer {
            Some(t) if polled => Some(t.min(plus(now, poll))),
            Some(t) => Some(t),
            None if settling || polled => Some(plus(now, poll)),
            None => None,
        };
        let drifted = summary(api_copy) != summary(Some(&status));
        let digest = status_digest(&status);
        let write = (self.last_written != Some(digest) || drifted) && !w.pod_is_gone();
        let delete = w.wants_delete() && (write || self.last_written.is_some());
        StepOutput {
            jobs,
            events,
            status_to_write: write.then_some(status),
            status_digest: if write { digest } else { 0 },
            delete,
            finished: false,
            refresh_env,
            wake,
        }
    }

    /// The driver wrote the status of a step's [`StepOutput::status_to_write`]; `digest` is
    /// that output's [`StepOutput::status_digest`].
    pub fn status_written(&mut self, digest: u64) {
        self.last_written = Some(digest);
    }

    /// Writing the status failed: the next step writes its status whatever it is.
    pub fn status_write_failed(&mut self) {
        self.last_written = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::FakeRuntime;
    use crate::runtime::sim::SimRuntime;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use orch_types::clock::{Clock, ManualClock};
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Arc<Pod> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn cfg() -> WorkerConfig {
        WorkerConfig {
            node_name: "n1".into(),
            host_ip: "192.0.2.1".into(),
            allow_privileged: false,
            dns: Default::default(),
        }
    }

    fn alloc(cpu: &str, memory: &str) -> ResourceList {
        let mut r = ResourceList::new();
        r.insert("cpu", cpu.parse().unwrap());
        r.insert("memory", memory.parse().unwrap());
        r.insert("pods", "110".parse().unwrap());
        r
    }

    /// A driver in virtual time: steps with jobs inline, "writes" statuses into `api`, and
    /// jumps the clock to the next wake-up.
    struct Driver {
        clock: ManualClock,
        rt: SimRuntime,
        sync: PodSync,
        api: Option<PodStatus>,
        writes: usize,
        deleted: bool,
    }

    impl Driver {
        fn new(p: Arc<Pod>) -> Self {
            let clock = ManualClock::at_epoch_seconds(1_700_000_000);
            let a = alloc("4", "8Gi");
            let env = env_context(&p, EnvObjects::default(), &a, "192.0.2.1");
            let w = admit(cfg(), p, &[], &a, env, clock.now());
            let sync = PodSync::new(w, clock.now(), Duration::from_secs(1));
            Self {
                clock,
                rt: SimRuntime::new(0),
                sync,
                api: None,
                writes: 0,
                deleted: false,
            }
        }

        /// One step and its execution; returns the output (status already reported).
        fn step(&mut self) -> StepOutput {
            let now = self.clock.now();
            let out = self.sync.step_inline(now, &self.rt, self.api.as_ref());
            assert!(out.jobs.is_empty());
            if let Some(s) = &out.status_to_write {
                self.sync.status_written(out.status_digest);
                self.api = Some(s.clone());
                self.writes += 1;
            }
            if out.delete {
                self.deleted = true;
            }
            out
        }

        /// Steps and jumps to each wake-up until `done` or 100 steps.
        fn run_until(&mut self, done: impl Fn(&Self) -> bool) {
            for _ in 0..100 {
                if done(self) {
                    return;
                }
                let out = self.step();
                match out.wake {
                    Some(t) => self.clock.set(t.max(self.clock.now())),
                    None => break,
                }
            }
            assert!(done(self), "condition not reached");
        }

        fn phase(&self) -> Option<&str> {
            self.api.as_ref()?.phase.as_deref()
        }
    }

    #[test]
    fn pod_that_does_not_fit_is_rejected_out_of_cpu() {
        let running = pod(json!({
            "metadata": {"name": "big", "namespace": "default", "uid": "u0"},
            "spec": {"containers": [{"name": "a", "image": "x:1",
                "resources": {"requests": {"cpu": "3"}}}]}
        }));
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "a", "image": "x:1",
                "resources": {"requests": {"cpu": "2"}}}]}
        }));
        let clock = ManualClock::at_epoch_seconds(1_700_000_000);
        let w = admit(
            cfg(),
            p.clone(),
            &[&running],
            &alloc("4", "8Gi"),
            EnvContext::default(),
            clock.now(),
        );
        assert_eq!(w.rejection().map(|r| r.reason.as_str()), Some("OutOfcpu"));
        assert!(Arc::ptr_eq(w.shared_pod(), &p), "the worker shares the pod");
        let mut sync = PodSync::new(w, clock.now(), Duration::from_secs(1));
        let out = sync.step_inline(clock.now(), &FakeRuntime::new(), None);
        let s = out.status_to_write.expect("the rejection is written");
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(s.reason.as_deref(), Some("OutOfcpu"));
        assert!(s
            .message
            .unwrap()
            .contains("Node didn't have enough resource: cpu"));
        assert_eq!(out.events[0].reason, "OutOfcpu");
        assert!(!out.delete && !out.finished);
        assert_eq!(out.wake, None, "a rejected pod has nothing more to do");
    }

    #[test]
    fn pod_that_fits_is_admitted() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "a", "image": "x:1",
                "resources": {"requests": {"cpu": "1"}}}]}
        }));
        let w = admit(
            cfg(),
            p,
            &[],
            &alloc("4", "8Gi"),
            EnvContext::default(),
            Timestamp::UNIX_EPOCH,
        );
        assert!(w.rejection().is_none());
    }

    #[test]
    fn sim_pod_runs_and_each_status_change_is_written_once() {
        let mut d = Driver::new(pod(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1",
                "annotations": {"sim.orch.dev/pull-seconds": "3"}},
            "spec": {"containers": [{"name": "a", "image": "x:1"}]}
        })));
        let first = d.step();
        assert!(
            first.status_to_write.is_some(),
            "the first status is written"
        );
        assert_eq!(d.phase(), Some("Pending"));
        assert!(first.wake.is_some(), "pulling: a timer");
        d.run_until(|d| d.phase() == Some("Running"));
        let writes = d.writes;
        // Nothing new: no write, and no wake-up (a running sim pod waits for news).
        let out = d.step();
        assert!(out.status_to_write.is_none());
        assert!(out.events.is_empty());
        assert_eq!(out.wake, None);
        assert_eq!(d.writes, writes);
    }

    /// `kubectl debug` on a running pod: the ephemeral container that appears in the spec is
    /// pulled and started once (events on `spec.ephemeralContainers{dbg}`), reported in
    /// `ephemeralContainerStatuses` (waiting, running, terminated with its exit code, never
    /// ready, no `started`), never restarted, and the app container is not touched.
    #[test]
    fn ephemeral_container_added_to_a_running_pod_runs_once() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1",
                "annotations": {"sim.orch.dev/pull-seconds.dbg": "2",
                                "sim.orch.dev/run-seconds.dbg": "5",
                                "sim.orch.dev/exit-code.dbg": "3"}},
            "spec": {"containers": [{"name": "a", "image": "x:1"}]}
        }));
        let mut d = Driver::new(p.clone());
        d.run_until(|d| d.phase() == Some("Running"));
        assert!(d
            .api
            .as_ref()
            .unwrap()
            .ephemeral_container_statuses
            .is_none());
        let app =
            |d: &Driver| d.api.as_ref().unwrap().container_statuses.clone().unwrap()[0].clone();
        let before = app(&d);
        let eph = |d: &Driver| {
            d.api
                .as_ref()
                .unwrap()
                .ephemeral_container_statuses
                .as_ref()
                .map(|s| s[0].clone())
        };

        let mut debugged = (*p).clone();
        debugged.spec.as_mut().unwrap().ephemeral_containers = Some(vec![serde_json::from_value(
            json!({"name": "dbg", "image": "busybox", "command": ["sh", "-c", "echo hi"],
                   "targetContainerName": "a"}),
        )
        .unwrap()]);
        debugged.status = d.api.clone();
        d.sync.worker_mut().update_pod(debugged);
        let t0 = d.clock.now();
        let out = d.step();
        let events: Vec<(String, Option<String>)> = out
            .events
            .iter()
            .map(|e| (e.reason.clone(), e.field_path.clone()))
            .collect();
        assert_eq!(
            events,
            [(
                "Pulling".to_string(),
                Some("spec.ephemeralContainers{dbg}".to_string())
            )]
        );
        let waiting = eph(&d).expect("reported at once");
        assert_eq!(waiting.name, "dbg");
        assert_eq!(
            waiting.state.unwrap().waiting.unwrap().reason.as_deref(),
            Some("ContainerCreating")
        );

        d.run_until(|d| eph(d).and_then(|s| s.state?.running).is_some());
        let running = eph(&d).unwrap();
        let started_at = running
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.clone())
            .unwrap()
            .0;
        assert_eq!(started_at.duration_since(t0).as_secs(), 2, "after its pull");
        assert!(!running.ready && running.started.is_none() && running.restart_count == 0);
        assert!(running.container_id.is_some());

        d.run_until(|d| eph(d).and_then(|s| s.state?.terminated).is_some());
        let done = eph(&d).unwrap().state.unwrap().terminated.unwrap();
        assert_eq!((done.exit_code, done.reason.as_deref()), (3, Some("Error")));
        let finished_at = done.finished_at.unwrap().0;
        assert_eq!(
            finished_at.duration_since(t0).as_secs(),
            7,
            "2 s pull, 5 s run"
        );

        // Never restarted, whatever the pod's restart policy (Always here); the pod is as it
        // was: running, ready, its app container the same instance.
        d.clock
            .set(jiff::Timestamp::from_second(d.clock.now().as_second() + 600).unwrap());
        let out = d.step();
        assert!(out.events.is_empty(), "{:?}", out.events);
        let dbg_instances =
            d.rt.list_containers()
                .iter()
                .filter(|c| c.name == "dbg")
                .count();
        assert_eq!(dbg_instances, 1);
        assert_eq!(d.phase(), Some("Running"));
        let after = app(&d);
        assert_eq!(
            (after.container_id, after.restart_count, after.ready),
            (before.container_id, 0, true)
        );
        let ready = d
            .api
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(
            ready,
            "an exited ephemeral container does not make the pod unready"
        );
        let wire = serde_json::to_value(eph(&d).unwrap()).unwrap();
        assert!(
            wire.get("started").is_none() && wire["ready"] == false,
            "{wire}"
        );
    }

    #[test]
    fn status_drifted_in_the_api_is_rewritten() {
        let mut d = Driver::new(pod(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "a", "image": "x:1"}]}
        })));
        d.run_until(|d| d.phase() == Some("Running"));
        // someone else marks the pod not Ready
        let api = d.api.as_mut().unwrap();
        for c in api.conditions.iter_mut().flatten() {
            if c.type_ == "Ready" {
                c.status = "False".into();
            }
        }
        let out = d.step();
        let s = out.status_to_write.expect("drift is corrected");
        assert!(s
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"));
    }

    #[test]
    fn failed_write_is_retried() {
        let mut d = Driver::new(pod(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "a", "image": "x:1"}]}
        })));
        let now = d.clock.now();
        let out = d.sync.step_inline(now, &d.rt, None);
        assert!(out.status_to_write.is_some());
        d.sync.status_write_failed();
        let out = d.sync.step_inline(now, &d.rt, None);
        assert!(
            out.status_to_write.is_some(),
            "written again after a failure"
        );
        assert!(!d.sync.has_written());
    }

    #[test]
    fn exiting_container_reaches_succeeded() {
        let mut d = Driver::new(pod(json!({
            "metadata": {"name": "job", "namespace": "default", "uid": "u1",
                "annotations": {"sim.orch.dev/run-seconds": "10", "sim.orch.dev/exit-code": "0"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "x:1"}]}
        })));
        let t0 = d.clock.now();
        d.run_until(|d| d.phase() == Some("Succeeded"));
        assert_eq!(d.clock.now().duration_since(t0).as_secs(), 10);
        let out = d.step();
        assert!(out.status_to_write.is_none() && !out.delete && out.wake.is_none());
    }

    #[test]
    fn deleted_pod_is_deleted_after_its_final_status_is_written() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"terminationGracePeriodSeconds": 30,
                "containers": [{"name": "a", "image": "x:1"}]}
        }));
        let mut d = Driver::new(p.clone());
        d.run_until(|d| d.phase() == Some("Running"));
        let mut deleting = (*p).clone();
        deleting.metadata.deletion_timestamp = Some(Time(d.clock.now()));
        deleting.status = d.api.clone();
        d.sync.worker_mut().update_pod(deleting);
        let mut failed_once = false;
        for _ in 0..20 {
            let now = d.clock.now();
            let out = d.sync.step_inline(now, &d.rt, d.api.as_ref());
            if out.delete && !failed_once {
                // The final status goes with the deletion; its write fails: no deletion yet.
                let s = out
                    .status_to_write
                    .expect("the final status is written first");
                let phase = s.phase.as_deref().unwrap();
                assert!(phase == "Succeeded" || phase == "Failed", "{phase}");
                d.sync.status_write_failed();
                failed_once = true;
                continue;
            }
            if let Some(s) = &out.status_to_write {
                d.sync.status_written(out.status_digest);
                d.api = Some(s.clone());
            }
            if out.delete {
                assert!(failed_once && !out.finished);
                assert!(d.sync.has_written());
                d.deleted = true;
                break;
            }
            let t = out.wake.expect("a terminating pod is looked at again");
            d.clock.set(t.max(now));
        }
        assert!(d.deleted, "the pod is deleted");
        let phase = d.phase().unwrap();
        assert!(phase == "Succeeded" || phase == "Failed", "{phase}");
        // The object is gone: the worker finishes and its containers are removed.
        d.sync.worker_mut().pod_removed();
        let out = d.step();
        assert!(out.finished && out.status_to_write.is_none() && !out.delete);
    }

    #[test]
    fn env_from_config_map_reaches_the_container_config() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "ns1", "uid": "u1"},
            "spec": {
                "imagePullSecrets": [{"name": "reg"}],
                "containers": [{"name": "a", "image": "x:1",
                "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}}],
                "envFrom": [{"secretRef": {"name": "creds"}}]}]}
        }));
        let refs = env_refs(&p);
        assert_eq!(refs.config_maps, BTreeSet::from(["cfg".to_string()]));
        assert_eq!(refs.secrets, BTreeSet::from(["creds".to_string()]));
        assert_eq!(refs.pull_secrets, vec!["reg".to_string()]);
        assert_eq!(refs.all_secrets(), BTreeSet::from(["creds", "reg"]));
        let cm = |ns: &str, mode: &str| -> ConfigMap {
            serde_json::from_value(json!({
                "metadata": {"name": "cfg", "namespace": ns},
                "data": {"mode": mode}
            }))
            .unwrap()
        };
        let secret = |name: &str| -> Secret {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns1"},
                "stringData": {"TOKEN": "t0k"}
            }))
            .unwrap()
        };
        let kube: Service = serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 443}]}
        }))
        .unwrap();
        let objects = EnvObjects {
            // another namespace's ConfigMap of the same name is ignored
            config_maps: vec![cm("other", "wrong"), cm("ns1", "fast")],
            secrets: vec![secret("creds"), secret("reg"), secret("unused")],
            services: vec![],
            kubernetes_service: Some(kube),
            claims: vec![],
            volumes: vec![],
        };
        let a = alloc("4", "8Gi");
        let ctx = env_context(&p, objects, &a, "192.0.2.1");
        assert_eq!(ctx.config_maps.len(), 1);
        assert_eq!(
            ctx.secrets.keys().collect::<Vec<_>>(),
            vec!["creds"],
            "only referenced Secrets"
        );
        assert_eq!(ctx.pull_secrets.len(), 1);
        assert_eq!(ctx.master_service, Some(("10.96.0.1".into(), 443)));
        assert_eq!(ctx.host_ip, "192.0.2.1");

        let clock = ManualClock::at_epoch_seconds(1_700_000_000);
        let rt = FakeRuntime::new();
        let w = admit(cfg(), p, &[], &a, ctx, clock.now());
        let mut sync = PodSync::new(w, clock.now(), Duration::from_millis(100));
        let out = sync.step(clock.now(), &rt, None);
        assert_eq!(
            out.status_to_write.unwrap().phase.as_deref(),
            Some("Running")
        );
        let config = rt.last_config("a").expect("container created");
        let env: std::collections::BTreeMap<_, _> = config.env.into_iter().collect();
        assert_eq!(env.get("MODE").map(String::as_str), Some("fast"));
        assert_eq!(
            env.get("KUBERNETES_SERVICE_HOST").map(String::as_str),
            Some("10.96.0.1")
        );
    }

    #[test]
    fn missing_config_map_asks_for_a_refresh_every_five_seconds() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "a", "image": "x:1",
                "envFrom": [{"configMapRef": {"name": "late"}}]}]}
        }));
        let clock = ManualClock::at_epoch_seconds(1_700_000_000);
        let rt = FakeRuntime::new();
        let a = alloc("4", "8Gi");
        let env = env_context(&p, EnvObjects::default(), &a, "192.0.2.1");
        let w = admit(cfg(), p.clone(), &[], &a, env, clock.now());
        let mut sync = PodSync::new(w, clock.now(), Duration::from_millis(100));
        let mut refreshes = vec![];
        for _ in 0..12 {
            let out = sync.step(clock.now(), &rt, None);
            if out.status_to_write.is_some() {
                sync.status_written(out.status_digest);
            }
            if out.refresh_env {
                refreshes.push(clock.now().as_second() - 1_700_000_000);
            }
            let wake = out.wake.expect("a blocked pod is looked at again");
            // at least a second between looks, whatever the poll interval
            assert!(wake.duration_since(clock.now()) >= SignedDuration::from_secs(1));
            clock.set(wake);
        }
        assert_eq!(refreshes, vec![5, 10]);
        // The ConfigMap appears: the refreshed context unblocks the container.
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "late", "namespace": "default"}, "data": {"K": "v"}
        }))
        .unwrap();
        let objects = EnvObjects {
            config_maps: vec![cm],
            ..Default::default()
        };
        sync.worker_mut()
            .set_env_context(env_context(&p, objects, &a, "192.0.2.1"));
        let out = sync.step(clock.now(), &rt, None);
        assert_eq!(
            out.status_to_write.unwrap().phase.as_deref(),
            Some("Running")
        );
    }

    /// A pod whose claim is not bound gets no sandbox: `FailedMount` once (upstream's message),
    /// the claims refetched every second; once bound, it starts with the volume mounted.
    #[test]
    fn unbound_claim_holds_the_pod_back_until_it_is_bound() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "a", "image": "x:1",
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "www"}}]}
        }));
        let claim = |phase: &str| -> PersistentVolumeClaim {
            serde_json::from_value(json!({
                "metadata": {"name": "www", "namespace": "default", "uid": "c1"},
                "spec": {"volumeName": if phase == "Bound" { Some("pvc-c1") } else { None }},
                "status": {"phase": phase}}))
            .unwrap()
        };
        let clock = ManualClock::at_epoch_seconds(1_700_000_000);
        let rt = FakeRuntime::new();
        let a = alloc("4", "8Gi");
        let pending = EnvObjects {
            claims: vec![claim("Pending")],
            ..Default::default()
        };
        let env = env_context(&p, pending, &a, "192.0.2.1");
        let w = admit(cfg(), p.clone(), &[], &a, env, clock.now());
        let mut sync = PodSync::new(w, clock.now(), Duration::from_millis(100));
        let mut events = vec![];
        let mut refreshes = vec![];
        for _ in 0..6 {
            let out = sync.step(clock.now(), &rt, None);
            events.extend(
                out.events
                    .iter()
                    .map(|e| format!("{}: {}", e.reason, e.message)),
            );
            if let Some(st) = &out.status_to_write {
                assert_eq!(st.phase.as_deref(), Some("Pending"));
                sync.status_written(out.status_digest);
            }
            if out.refresh_env {
                refreshes.push(clock.now().as_second() - 1_700_000_000);
            }
            clock.set(
                out.wake
                    .expect("a pod waiting for its claims is looked at again"),
            );
        }
        assert_eq!(
            events,
            [
                "FailedMount: Unable to attach or mount volumes: unmounted volumes=[data], \
              unattached volumes=[], failed to process volumes=[data]: error processing PVC \
              default/www: PVC is not bound"
            ]
        );
        assert!(refreshes.len() >= 4, "{refreshes:?}");
        assert_eq!(rt.sandboxes_created(), 0, "no sandbox while waiting");
        let volume: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": "pvc-c1"},
            "spec": {"local": {"path": "/var/lib/orch/volumes/pvc-c1"},
                     "claimRef": {"namespace": "default", "name": "www", "uid": "c1"}}}))
        .unwrap();
        let bound = EnvObjects {
            claims: vec![claim("Bound")],
            volumes: vec![volume],
            ..Default::default()
        };
        sync.worker_mut()
            .set_env_context(env_context(&p, bound, &a, "192.0.2.1"));
        let out = sync.step(clock.now(), &rt, None);
        assert_eq!(
            out.status_to_write.unwrap().phase.as_deref(),
            Some("Running")
        );
        assert!(!out.refresh_env);
        let started = rt.last_config("a").expect("container a started");
        assert_eq!(
            started.mounts,
            [crate::runtime::Mount {
                host_path: "/var/lib/orch/volumes/pvc-c1".into(),
                container_path: "/data".into(),
                read_only: false,
            }]
        );
    }
}
