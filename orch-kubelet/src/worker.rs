//! The pod worker: a state machine per pod, driven by runtime observations and time.
//!
//! [`PodWorker::tick`] looks at the runtime, starts/stops containers, and returns the probe and
//! hook runs ([`Job`]) that are due; the driver runs them (they may block up to their timeout)
//! and reports back with [`PodWorker::handler_done`]. [`PodWorker::status`] renders the pod
//! status exactly as upstream's `generateAPIPodStatus` would, and [`PodWorker::next_wakeup`]
//! says when the next timer fires, so a virtual-time driver can jump there.
//!
//! Rules follow upstream `pkg/kubelet/kuberuntime/kuberuntime_manager.go` (`computePodActions`,
//! `doBackOff`), `kuberuntime_container.go` (`killContainer`, hooks), `prober/worker.go` and the
//! pod-lifecycle documentation.

use crate::backoff::{go_duration, Backoff};
use crate::env::{container_env, expand_command, EnvContext};
use crate::runtime::*;
use crate::status;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{
    Container, ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, LifecycleHandler, Pod, PodCondition, PodIP,
    PodSpec, PodStatus, Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Static settings of the kubelet that the worker needs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Node name.
    pub node_name: String,
    /// Node IP (`status.hostIP`, and the pod IP of host-network pods).
    pub host_ip: String,
    /// `--allow-privileged`.
    pub allow_privileged: bool,
    /// What the pod's resolver configuration is formed from ([`crate::dns`]).
    pub dns: crate::dns::NodeDns,
}

/// Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Normal.
    Normal,
    /// Warning.
    Warning,
}

/// An event about the pod (or one of its containers) for the driver to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    /// Normal or Warning.
    pub kind: EventKind,
    /// Reason (`Pulling`, `Started`, `BackOff`, …).
    pub reason: String,
    /// Message.
    pub message: String,
    /// `involvedObject.fieldPath` (`spec.containers{web}`).
    pub field_path: Option<String>,
}

/// A probe or hook run the driver must perform.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Container name.
    pub container: String,
    /// Container instance.
    pub id: ContainerId,
    /// Which probe or hook.
    pub kind: HandlerKind,
    /// What to run.
    pub action: HandlerAction,
    /// Where.
    pub target: HandlerTarget,
    /// Bound on the run.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Init,
    Sidecar,
    App,
    /// An ephemeral container (`kubectl debug`): started once when it appears in the spec,
    /// never restarted, no probes or hooks, not part of the pod's phase or readiness.
    Ephemeral,
}

#[derive(Debug, Clone, Default)]
struct ProbeState {
    successes: i32,
    failures: i32,
    next_run: Option<Timestamp>,
    in_flight: bool,
}

#[derive(Debug, Clone)]
struct Kill {
    deadline: Timestamp,
    term_sent: bool,
    pre_stop_running: bool,
    extended: bool,
    force: bool,
}

#[derive(Debug, Clone)]
struct Instance {
    id: ContainerId,
    state: ContainerState,
    post_start_running: bool,
    started: bool,
    ready: bool,
    probes: BTreeMap<HandlerKind, ProbeState>,
    kill: Option<Kill>,
}

impl Instance {
    fn running(&self) -> bool {
        matches!(
            self.state,
            ContainerState::Running { .. } | ContainerState::Created
        )
    }
    fn exited(&self) -> Option<(i32, Timestamp)> {
        match self.state {
            ContainerState::Exited {
                exit_code,
                finished_at,
                ..
            } => Some((exit_code, finished_at)),
            _ => None,
        }
    }
}

/// The state of one container. Its spec is not copied: it is read from the worker's (shared)
/// pod at `index` of `spec.initContainers` (init containers and sidecars), `spec.containers`
/// or the view's ephemeral containers ([`PodView`]).
#[derive(Debug, Clone)]
struct CState {
    index: usize,
    role: Role,
    current: Option<Instance>,
    previous: Option<(ContainerId, ContainerState)>,
    waiting: Option<(String, Option<String>)>,
    attempts: i32,
    image_id: Option<String>,
    pull_ready_at: Option<Timestamp>,
    pull_started: Option<Timestamp>,
    spec_changed: bool,
    /// Init container (or sidecar) to run again from scratch: the sandbox was recreated.
    rerun: bool,
}

impl CState {
    fn field_path(&self, name: &str) -> String {
        match self.role {
            Role::App => format!("spec.containers{{{name}}}"),
            Role::Ephemeral => format!("spec.ephemeralContainers{{{name}}}"),
            Role::Init | Role::Sidecar => format!("spec.initContainers{{{name}}}"),
        }
    }
}

/// The pod as the worker sees it: the shared API object (never copied) and the ephemeral
/// containers it has seen, read as `Container`s (upstream's kubelet casts
/// `EphemeralContainerCommon` to `Container` the same way), so every role's spec is read
/// through [`container_spec`]. The list only grows: the API server lets ephemeral containers
/// be added, never changed or removed, and an instance keeps its spec whatever comes later.
#[derive(Debug)]
struct PodView {
    pod: Arc<Pod>,
    ephemeral: Vec<Container>,
}

impl PodView {
    /// The view of `pod`, keeping `known` ephemeral containers and adding its new ones.
    fn new(pod: Arc<Pod>, known: &[Container]) -> Self {
        let mut ephemeral = known.to_vec();
        for e in pod_spec(&pod).ephemeral_containers.iter().flatten() {
            if !ephemeral.iter().any(|k| k.name == e.name) {
                ephemeral.push(orch_types::ephemeral::as_container(e));
            }
        }
        Self { pod, ephemeral }
    }
}

impl std::ops::Deref for PodView {
    type Target = Pod;
    fn deref(&self) -> &Pod {
        &self.pod
    }
}

/// The spec of `pod` (an empty one if it has none).
fn pod_spec(pod: &Pod) -> &PodSpec {
    static NONE: LazyLock<PodSpec> = LazyLock::new(PodSpec::default);
    pod.spec.as_ref().unwrap_or(&NONE)
}

/// The spec of container `c` in `pod`. The worker only accepts pods whose containers line up
/// with its own (see [`PodWorker::update_pod`]), so the fallback is never hit in practice.
fn container_spec<'a>(pod: &'a PodView, c: &CState) -> &'a Container {
    static NONE: LazyLock<Container> = LazyLock::new(Container::default);
    let spec = pod.spec.as_ref();
    let list = match c.role {
        Role::App => spec.map(|s| s.containers.as_slice()),
        Role::Ephemeral => Some(pod.ephemeral.as_slice()),
        Role::Init | Role::Sidecar => spec.and_then(|s| s.init_containers.as_deref()),
    };
    list.and_then(|l| l.get(c.index)).unwrap_or(&NONE)
}

/// Why a pod worker was refused at admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `status.reason` (`OutOfcpu`, `OutOfmemory`, `OutOfpods`, …).
    pub reason: String,
    /// `status.message`.
    pub message: String,
}

/// The state machine of one pod.
#[derive(Debug)]
pub struct PodWorker {
    cfg: WorkerConfig,
    /// The pod as last seen, shared with the driver (not copied).
    pod: Arc<PodView>,
    containers: Vec<CState>,
    sandbox: Option<SandboxInfo>,
    sandbox_retry: Option<Timestamp>,
    /// Sandboxes created so far (upstream's sandbox `attempt` of the next one).
    sandboxes_created: u32,
    /// The sandbox died: containers are being stopped before a new sandbox is created.
    recreating: bool,
    /// The dead sandbox while its containers are stopped (preStop hooks still target its IP).
    dead_sandbox: Option<SandboxInfo>,
    start_time: Timestamp,
    crash_backoff: Backoff,
    pull_backoff: Backoff,
    env: EnvContext,
    initialized: bool,
    terminal: bool,
    deleting: bool,
    force: bool,
    stopped: bool,
    delete_requested: bool,
    rejected: Option<Rejection>,
    events: Vec<PodEvent>,
    /// The conditions the kubelet last reported, in the order [`PodWorker::status`] builds
    /// them: whether each was `True` and its `lastTransitionTime` (all are `True` or `False`).
    reported: [Option<(bool, Option<Time>)>; KUBELET_CONDITIONS],
    pending: Vec<Job>,
    scheme: String,
    progress: bool,
    /// The `FailedMount` message last recorded while the pod's claims cannot be mounted
    /// (`None`: they can, or the pod has none).
    mount_error: Option<String>,
}

/// How many conditions the kubelet reports (PodReadyToStartContainers, Initialized, Ready,
/// ContainersReady, PodScheduled).
const KUBELET_CONDITIONS: usize = 5;

fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(t)
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

fn handler_action(h: &LifecycleHandler) -> Option<HandlerAction> {
    if let Some(e) = &h.exec {
        Some(HandlerAction::Exec(e.clone()))
    } else if let Some(g) = &h.http_get {
        Some(HandlerAction::HttpGet(g.clone()))
    } else if let Some(t) = &h.tcp_socket {
        Some(HandlerAction::TcpSocket(t.clone()))
    } else {
        h.sleep.clone().map(HandlerAction::Sleep)
    }
}

fn probe_action(p: &Probe) -> Option<HandlerAction> {
    if let Some(e) = &p.exec {
        Some(HandlerAction::Exec(e.clone()))
    } else if let Some(g) = &p.http_get {
        Some(HandlerAction::HttpGet(g.clone()))
    } else if let Some(t) = &p.tcp_socket {
        Some(HandlerAction::TcpSocket(t.clone()))
    } else {
        p.grpc.clone().map(HandlerAction::Grpc)
    }
}

/// The default pull policy: `Always` for `:latest` or untagged images, else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match name.split_once(':') {
        None => "Always",
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
    }
}

impl PodWorker {
    /// A worker for an admitted pod, first seen at `now`. The pod may be shared
    /// (`Arc<Pod>`): the worker never copies it.
    pub fn new(cfg: WorkerConfig, pod: impl Into<Arc<Pod>>, now: Timestamp) -> Self {
        let pod = Arc::new(PodView::new(pod.into(), &[]));
        let spec = pod_spec(&pod);
        let mut containers = Vec::with_capacity(
            spec.containers.len() + spec.init_containers.as_ref().map_or(0, Vec::len),
        );
        for (i, c) in spec.init_containers.iter().flatten().enumerate() {
            let role = if status::is_sidecar(c) {
                Role::Sidecar
            } else {
                Role::Init
            };
            containers.push(CState::new(i, role));
        }
        for i in 0..spec.containers.len() {
            containers.push(CState::new(i, Role::App));
        }
        // Ephemeral containers last (the status splits the list by role in this order).
        for i in 0..pod.ephemeral.len() {
            containers.push(CState::new(i, Role::Ephemeral));
        }
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map_or(now, |t| t.0);
        let deleting = pod.metadata.deletion_timestamp.is_some();
        Self {
            cfg,
            pod,
            containers,
            sandbox: None,
            sandbox_retry: None,
            sandboxes_created: 0,
            recreating: false,
            dead_sandbox: None,
            start_time,
            crash_backoff: Backoff::kubelet(),
            pull_backoff: Backoff::kubelet(),
            env: EnvContext::default(),
            initialized: false,
            terminal: false,
            deleting,
            force: false,
            stopped: false,
            delete_requested: false,
            rejected: None,
            events: vec![],
            reported: Default::default(),
            pending: vec![],
            scheme: String::new(),
            progress: false,
            mount_error: None,
        }
    }

    /// A worker for a pod refused at admission: it only reports `Failed` with the reason.
    pub fn rejected(
        cfg: WorkerConfig,
        pod: impl Into<Arc<Pod>>,
        now: Timestamp,
        r: Rejection,
    ) -> Self {
        let mut w = Self::new(cfg, pod, now);
        w.events.push(PodEvent {
            kind: EventKind::Warning,
            reason: r.reason.clone(),
            message: r.message.clone(),
            field_path: None,
        });
        w.rejected = Some(r);
        w.terminal = true;
        w.stopped = true;
        w
    }

    /// The pod as last seen.
    pub fn pod(&self) -> &Pod {
        &self.pod
    }

    /// The pod as last seen, as the shared handle (cloning it copies a pointer, not the pod).
    pub fn shared_pod(&self) -> &Arc<Pod> {
        &self.pod.pod
    }

    /// Why admission refused the pod, for a worker made by [`PodWorker::rejected`].
    pub fn rejection(&self) -> Option<&Rejection> {
        self.rejected.as_ref()
    }

    /// Replaces the ConfigMaps/Secrets/Services used for environments. A context without a
    /// pod IP keeps the one the worker already knows (from its sandbox), so a refreshed context
    /// built without the pod's status does not lose it.
    pub fn set_env_context(&mut self, mut env: EnvContext) {
        if env.pod_ip.is_empty() {
            env.pod_ip = std::mem::take(&mut self.env.pod_ip);
        }
        self.env = env;
    }

    /// True while the pod's claim-backed volumes cannot be mounted (its sandbox is held back
    /// and `FailedMount` recorded): the driver refetches the claims
    /// ([`crate::pod_sync::StepOutput::refresh_env`]).
    pub fn waiting_for_volumes(&self) -> bool {
        self.mount_error.is_some()
    }

    /// A newer version of the pod from the API (deletion is noticed here). Ephemeral
    /// containers new in its spec join the worker (started by the next [`PodWorker::tick`]);
    /// nothing else about the running containers changes.
    pub fn update_pod(&mut self, pod: impl Into<Arc<Pod>>) {
        let pod = Arc::new(PodView::new(pod.into(), &self.pod.ephemeral));
        if pod.metadata.deletion_timestamp.is_some() {
            self.deleting = true;
        }
        let count = |p: &Pod| {
            let s = pod_spec(p);
            s.containers.len() + s.init_containers.as_ref().map_or(0, Vec::len)
        };
        // The API server lets no update add, remove, rename or reorder containers; should one
        // get here anyway, the containers keep their specs (only metadata and status change).
        let lines_up = count(&pod) == count(&self.pod)
            && self
                .containers
                .iter()
                .all(|c| container_spec(&pod, c).name == container_spec(&self.pod, c).name);
        if !lines_up {
            tracing::debug!(pod = %self.pod_ref(), "pod update changes the containers; ignoring their specs");
            let mut p = (*pod.pod).clone();
            p.spec = self.pod.spec.clone();
            self.pod = Arc::new(PodView::new(Arc::new(p), &self.pod.ephemeral));
            return;
        }
        // `image` is the one mutable container field: a change restarts the container
        // (upstream computePodActions: "definition changed", regardless of restart policy).
        for c in &mut self.containers {
            if container_spec(&pod, c).image != container_spec(&self.pod, c).image {
                c.spec_changed = c.current.is_some();
            }
        }
        for i in self.pod.ephemeral.len()..pod.ephemeral.len() {
            tracing::debug!(pod = %self.pod_ref(), container = %pod.ephemeral[i].name, "ephemeral container added");
            self.containers.push(CState::new(i, Role::Ephemeral));
        }
        self.pod = pod;
    }

    /// The spec of container `i`.
    fn spec(&self, i: usize) -> &Container {
        container_spec(&self.pod, &self.containers[i])
    }

    /// The pod is gone from the API (force deletion): kill everything at once.
    pub fn pod_removed(&mut self) {
        self.deleting = true;
        self.force = true;
        self.delete_requested = true;
    }

    /// True once the pod object is gone from the API (deleted with grace 0 or by us).
    pub fn pod_is_gone(&self) -> bool {
        self.force
    }

    /// Every container instance this worker knows (current and previous), for clean-up.
    pub fn container_ids(&self) -> Vec<ContainerId> {
        self.containers
            .iter()
            .flat_map(|c| {
                c.current
                    .iter()
                    .map(|i| i.id.clone())
                    .chain(c.previous.iter().map(|p| p.0.clone()))
            })
            .collect()
    }

    /// Stops every container gracefully without deleting the pod (kubelet shutdown).
    pub fn terminate(&mut self) {
        self.terminal = true;
    }

    /// The log target of a container: the instance whose logs `kubectl logs` shows (with
    /// `previous`, the last terminated one), and whether it still runs. `None` if the pod has
    /// no such container.
    pub fn log_instance(
        &self,
        container: &str,
        previous: bool,
    ) -> Option<(Option<ContainerId>, bool)> {
        let c = self
            .containers
            .iter()
            .find(|c| container_spec(&self.pod, c).name == container)?;
        let cur = c.current.as_ref();
        let running = cur.is_some_and(|i| matches!(i.state, ContainerState::Running { .. }));
        if !previous {
            return Some((cur.map(|i| i.id.clone()), running));
        }
        // In a crash loop the exited instance is still `current`; it is the "previous" one.
        let prev = match cur {
            Some(i) if i.exited().is_some() && c.waiting.is_some() => Some(i.id.clone()),
            _ => c.previous.as_ref().map(|p| p.0.clone()),
        };
        Some((prev, false))
    }

    /// Adopts containers left running by a previous kubelet (matching pod UID and name): the
    /// newest attempt becomes the current instance, so nothing is started twice.
    pub fn adopt(
        &mut self,
        records: &[ContainerRecord],
        rt: &dyn ContainerRuntime,
        now: Timestamp,
    ) {
        self.scheme = rt.info().name;
        let uid = self.uid();
        let pod = &self.pod;
        for c in &mut self.containers {
            let spec = container_spec(pod, c);
            let mine = records
                .iter()
                .filter(|r| r.pod_uid == uid && r.name == spec.name)
                .max_by_key(|r| r.attempt);
            let Some(r) = mine else { continue };
            let Some(state) = rt.container_state(&r.id, now) else {
                continue;
            };
            c.attempts = r.attempt + 1;
            c.image_id = rt.image_status(&r.image).map(|i| i.id);
            let running = matches!(state, ContainerState::Running { .. });
            c.current = Some(Instance {
                id: r.id.clone(),
                state,
                post_start_running: false,
                started: running && spec.startup_probe.is_none(),
                ready: false,
                probes: BTreeMap::new(),
                kill: None,
            });
        }
        if self
            .containers
            .iter()
            .any(|c| c.role == Role::App && c.current.is_some())
        {
            self.initialized = true;
        }
    }

    fn uid(&self) -> String {
        self.pod.metadata.uid.clone().unwrap_or_default()
    }

    fn pod_ref(&self) -> String {
        // upstream `format.Pod`: name_namespace(uid)
        format!(
            "{}_{}({})",
            self.pod.metadata.name.as_deref().unwrap_or_default(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
            self.uid()
        )
    }

    fn restart_policy(&self) -> &str {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always")
    }

    fn grace(&self) -> Duration {
        let g = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        // upstream killContainer: minimumGracePeriodInSeconds = 2
        Duration::from_secs(g.max(2) as u64)
    }

    fn event(&mut self, i: Option<usize>, kind: EventKind, reason: &str, message: String) {
        let field_path = i.map(|i| self.containers[i].field_path(&self.spec(i).name));
        self.events.push(PodEvent {
            kind,
            reason: reason.into(),
            message,
            field_path,
        });
    }

    /// Events produced since the last call.
    pub fn take_events(&mut self) -> Vec<PodEvent> {
        std::mem::take(&mut self.events)
    }

    /// True once every container stopped after deletion: the driver deletes the pod object
    /// with grace period 0 (after writing the final status).
    pub fn wants_delete(&self) -> bool {
        self.deleting && self.stopped && !self.force
    }

    /// True once all containers are stopped and nothing will restart.
    pub fn is_finished(&self) -> bool {
        self.stopped
    }

    /// When something next needs doing, without new observations.
    pub fn next_wakeup(&self, now: Timestamp, rt: &dyn ContainerRuntime) -> Option<Timestamp> {
        let mut best: Option<Timestamp> = None;
        let mut consider = |t: Option<Timestamp>| {
            if let Some(t) = t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        };
        consider(self.sandbox_retry);
        if !self.pending.is_empty() {
            consider(Some(now));
        }
        let uid = self.uid();
        for c in &self.containers {
            let spec = container_spec(&self.pod, c);
            if c.waiting
                .as_ref()
                .is_some_and(|w| w.1.as_deref() == Some("pulling"))
            {
                consider(c.pull_ready_at);
            }
            if let Some(inst) = &c.current {
                consider(rt.next_change(&inst.id, now));
                if let Some(k) = &inst.kill {
                    consider(Some(k.deadline));
                    if !k.term_sent && !k.pre_stop_running {
                        consider(Some(now)); // SIGTERM is due at once
                    }
                }
                if inst.running() {
                    for p in inst.probes.values() {
                        if !p.in_flight {
                            consider(p.next_run);
                        }
                    }
                }
                if let (Some((_, finished)), Some((reason, _))) = (inst.exited(), &c.waiting) {
                    if reason == "CrashLoopBackOff" {
                        consider(
                            self.crash_backoff
                                .until(&format!("{uid}/{}", spec.name), finished),
                        );
                    }
                }
            }
            if let Some((reason, _)) = &c.waiting {
                if reason == "ImagePullBackOff" || reason == "ErrImagePull" {
                    let img = spec.image.as_deref().unwrap_or_default();
                    consider(self.pull_backoff.until_update(&format!("{uid}/{img}")));
                }
            }
        }
        best.map(|b| b.max(now))
    }

    /// One step: observe the runtime, act, and return the probe/hook runs that are due.
    /// Repeats internally (a few rounds at most) while a round changed something, so that a
    /// started container gets its first probes and a killed one its restart in the same step.
    pub fn tick(&mut self, now: Timestamp, rt: &dyn ContainerRuntime) -> Vec<Job> {
        let mut jobs = vec![];
        for _ in 0..4 {
            self.progress = false;
            jobs.extend(self.tick_once(now, rt));
            if !self.progress {
                break;
            }
        }
        jobs
    }

    fn tick_once(&mut self, now: Timestamp, rt: &dyn ContainerRuntime) -> Vec<Job> {
        let mut jobs = self.take_pending();
        if self.rejected.is_some() {
            return jobs;
        }
        if self.scheme.is_empty() {
            self.scheme = rt.info().name;
        }
        self.observe(now, rt);
        if self.deleting || self.terminal {
            self.drive_termination(now, rt, &mut jobs);
            return jobs;
        }
        if self.sandbox.is_some() && !rt.sandbox_alive(&self.uid()) {
            self.sandbox_died(now, rt, &mut jobs);
            if self.terminal {
                return jobs;
            }
        }
        if self.recreating {
            if !self.stop_all(now, rt, &mut jobs) {
                return jobs;
            }
            self.finish_sandbox_teardown(rt);
        }
        if self.sandbox.is_none() {
            // Volumes first: a pod whose claims are not bound yet gets no sandbox (upstream
            // syncPod waits in WaitForAttachAndMount before the runtime's SyncPod).
            if let Some(msg) = self.env.volumes.mount_error() {
                if self.mount_error.as_deref() != Some(msg.as_str()) {
                    self.event(None, EventKind::Warning, "FailedMount", msg.clone());
                    self.mount_error = Some(msg);
                }
                return jobs;
            }
            self.mount_error = None;
            if self.sandbox_retry.is_some_and(|t| now < t) {
                return jobs;
            }
            let mut cfg = self.sandbox_config();
            let dns = crate::dns::pod_dns(&self.cfg.dns, &self.pod);
            for (reason, message) in dns.warnings {
                self.event(None, EventKind::Warning, &reason, message);
            }
            cfg.dns = Some(dns.config);
            match rt.run_sandbox(&cfg) {
                Ok(s) => {
                    self.sandboxes_created += 1;
                    self.sandbox = Some(s.clone());
                    self.env.pod_ip = s.ip;
                    self.env.host_ip = self.cfg.host_ip.clone();
                    self.sandbox_retry = None;
                }
                Err(e) => {
                    self.event(
                        None,
                        EventKind::Warning,
                        "FailedCreatePodSandBox",
                        e.to_string(),
                    );
                    self.sandbox_retry = Some(add(now, Duration::from_secs(10)));
                    return jobs;
                }
            }
        }
        self.start_ephemeral(now, rt, &mut jobs);
        if !self.initialized {
            for i in 0..self.containers.len() {
                let role = self.containers[i].role;
                if role == Role::App {
                    break;
                }
                // A re-run init container counts as never started (upstream purgeInitContainers).
                let cur = self.containers[i]
                    .current
                    .as_ref()
                    .filter(|_| !self.containers[i].rerun);
                let exited = cur.and_then(Instance::exited);
                let running = cur.is_some_and(Instance::running);
                match (role, cur.is_some(), running, exited) {
                    (_, false, _, _) => {
                        self.start(i, now, rt, &mut jobs);
                        return jobs;
                    }
                    (Role::Init, _, true, _) => {
                        self.drive_running(i, now, rt, &mut jobs);
                        return jobs;
                    }
                    (Role::Init, _, _, Some((0, _))) => continue,
                    (Role::Init, _, _, Some((code, _))) => {
                        if self.restart_policy() == "Never" {
                            let name = self.spec(i).name.clone();
                            tracing::debug!(pod = %self.pod_ref(), container = %name, code, "init container failed, pod fails");
                            self.terminal = true;
                            self.drive_termination(now, rt, &mut jobs);
                        } else {
                            self.restart(i, now, rt, &mut jobs);
                        }
                        return jobs;
                    }
                    (Role::Sidecar, _, true, _) => {
                        self.drive_running(i, now, rt, &mut jobs);
                        let started = self.containers[i]
                            .current
                            .as_ref()
                            .is_some_and(|c| c.started && !c.post_start_running);
                        if !started {
                            return jobs;
                        }
                    }
                    _ => {
                        self.restart(i, now, rt, &mut jobs);
                        return jobs;
                    }
                }
            }
            self.initialized = true;
        }
        let policy = self.restart_policy().to_string();
        let mut app_done = true;
        for i in 0..self.containers.len() {
            let c = &self.containers[i];
            if matches!(c.role, Role::Init | Role::Ephemeral) {
                continue;
            }
            let role = c.role;
            match c.current.as_ref() {
                None => {
                    app_done &= role != Role::App;
                    self.start(i, now, rt, &mut jobs);
                }
                Some(inst) if inst.running() => {
                    app_done &= role != Role::App;
                    if c.spec_changed && inst.kill.is_none() {
                        let name = container_spec(&self.pod, c).name.clone();
                        self.event(
                            Some(i),
                            EventKind::Normal,
                            "Killing",
                            format!("Container {name} definition changed, will be restarted"),
                        );
                        let grace = self.grace();
                        self.begin_kill(i, grace, false, now, &mut jobs);
                    }
                    self.drive_running(i, now, rt, &mut jobs);
                }
                Some(_) if c.spec_changed => {
                    app_done &= role != Role::App;
                    self.containers[i].spec_changed = false;
                    self.containers[i].waiting = Some(("ContainerCreating".into(), None));
                    self.restart(i, now, rt, &mut jobs);
                }
                Some(inst) => {
                    let code = inst.exited().map_or(0, |e| e.0);
                    let restart = role == Role::Sidecar
                        || policy == "Always"
                        || (policy == "OnFailure" && code != 0);
                    if restart {
                        app_done &= role != Role::App;
                        self.restart(i, now, rt, &mut jobs);
                    }
                }
            }
        }
        if app_done && policy != "Always" {
            self.terminal = true;
            self.drive_termination(now, rt, &mut jobs);
        }
        jobs
    }

    /// Upstream `computePodActions`: ephemeral containers start once the pod has its sandbox,
    /// even before initialization is done (they may be there to debug an init container),
    /// and are never restarted: one that has an instance (running or exited) is left alone,
    /// one that could not start yet (image pull, missing ConfigMap) is tried again.
    fn start_ephemeral(&mut self, now: Timestamp, rt: &dyn ContainerRuntime, jobs: &mut Vec<Job>) {
        for i in 0..self.containers.len() {
            let c = &self.containers[i];
            if c.role == Role::Ephemeral && c.current.is_none() {
                self.start(i, now, rt, jobs);
            }
        }
    }

    fn sandbox_config(&self) -> SandboxConfig {
        let spec = pod_spec(&self.pod);
        let host_ports = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                p.host_port
                    .filter(|h| *h > 0)
                    .map(|h| (h, p.protocol.clone().unwrap_or_else(|| "TCP".into())))
            })
            .collect();
        let pod_res = crate::runtime::limits::pod_resources(spec);
        SandboxConfig {
            pod_uid: self.uid(),
            namespace: self.pod.metadata.namespace.clone().unwrap_or_default(),
            name: self.pod.metadata.name.clone().unwrap_or_default(),
            hostname: crate::runtime::pod_hostname(
                self.pod.metadata.name.as_deref().unwrap_or_default(),
                spec.hostname.as_deref(),
            ),
            host_network: spec.host_network.unwrap_or(false),
            host_ports,
            port_mappings: crate::runtime::limits::port_mappings(spec),
            qos_class: orch_types::resources::qos_class(spec).into(),
            cpu_request_milli: pod_res.0,
            cpu_limit_milli: pod_res.1,
            memory_limit: pod_res.2,
            dns: None,
        }
    }

    fn observe(&mut self, now: Timestamp, rt: &dyn ContainerRuntime) {
        for c in &mut self.containers {
            if let Some(inst) = &mut c.current {
                if inst.exited().is_some() {
                    continue;
                }
                match rt.container_state(&inst.id, now) {
                    Some(s) => {
                        if matches!(s, ContainerState::Exited { .. }) {
                            inst.ready = false;
                            inst.started = false;
                            inst.post_start_running = false;
                            inst.kill = None;
                        }
                        inst.state = s;
                    }
                    None => {
                        // The runtime lost the container: report it as unknown, upstream style.
                        let started_at = match inst.state {
                            ContainerState::Running { started_at } => started_at,
                            _ => now,
                        };
                        inst.state = ContainerState::Exited {
                            started_at,
                            finished_at: now,
                            exit_code: 137,
                            signal: None,
                            reason: ExitReason::Unknown,
                        };
                        inst.ready = false;
                        inst.started = false;
                        inst.kill = None;
                    }
                }
            }
        }
    }

    fn target(&self, i: usize) -> HandlerTarget {
        let c = self.spec(i);
        HandlerTarget {
            pod_ip: self
                .sandbox
                .as_ref()
                .or(self.dead_sandbox.as_ref())
                .map(|s| s.ip.clone())
                .unwrap_or_default(),
            named_ports: c
                .ports
                .iter()
                .flatten()
                .filter_map(|p| p.name.clone().map(|n| (n, p.container_port)))
                .collect(),
            annotations: self.pod.metadata.annotations.clone().unwrap_or_default(),
            container: c.name.clone(),
        }
    }

    /// Pulls per policy; returns the image ID when the container may start.
    fn ensure_image(
        &mut self,
        i: usize,
        now: Timestamp,
        rt: &dyn ContainerRuntime,
    ) -> Option<String> {
        let spec = self.spec(i);
        let image = spec.image.clone().unwrap_or_default();
        let policy = spec
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image).to_string());
        let present = rt.image_status(&image);
        let key = format!("{}/{image}", self.uid());
        match (policy.as_str(), present) {
            ("Never", None) => {
                let msg =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                if self.set_waiting(i, "ErrImageNeverPull", Some(msg.clone())) {
                    self.event(Some(i), EventKind::Warning, "ErrImageNeverPull", msg);
                }
                return None;
            }
            ("Never" | "IfNotPresent", Some(info)) => {
                if self.containers[i].image_id.is_none() {
                    self.event(
                        Some(i),
                        EventKind::Normal,
                        "Pulled",
                        format!("Container image \"{image}\" already present on machine"),
                    );
                }
                return Some(info.id);
            }
            _ => {}
        }
        if self.pull_backoff.in_backoff_since_update(&key, now) {
            let msg = format!("Back-off pulling image \"{image}\"");
            if self.set_waiting(i, "ImagePullBackOff", Some(msg.clone())) {
                self.event(Some(i), EventKind::Normal, "BackOff", msg);
            }
            return None;
        }
        let was_pulling = self.containers[i]
            .waiting
            .as_ref()
            .is_some_and(|w| w.0 == "ContainerCreating" && w.1.as_deref() == Some("pulling"));
        if !was_pulling {
            self.containers[i].pull_started = Some(now);
            self.event(
                Some(i),
                EventKind::Normal,
                "Pulling",
                format!("Pulling image \"{image}\""),
            );
        }
        let ctx = PullContext {
            secrets: self.env.pull_secrets.clone(),
            annotations: self.pod.metadata.annotations.clone().unwrap_or_default(),
            container: self.spec(i).name.clone(),
        };
        match rt.pull_image(&image, &ctx, now) {
            PullOutcome::Ready(info) => {
                self.event(
                    Some(i),
                    EventKind::Normal,
                    "Pulled",
                    {
                        let took = self.containers[i]
                            .pull_started
                            .map(|t| now.duration_since(t))
                            .unwrap_or_default();
                        let took = format!("{:.3}s", took.as_secs_f64());
                        format!(
                            "Successfully pulled image \"{image}\" in {took} ({took} including waiting). Image size: {} bytes.",
                            info.size_bytes
                        )
                    },
                );
                Some(info.id)
            }
            PullOutcome::InProgress { ready_at } => {
                self.containers[i].pull_ready_at = ready_at;
                self.containers[i].waiting =
                    Some(("ContainerCreating".into(), Some("pulling".into())));
                None
            }
            PullOutcome::Failed(msg) => {
                self.pull_backoff.next(&key, now, now);
                let text = format!("Failed to pull image \"{image}\": {msg}");
                self.set_waiting(i, "ErrImagePull", Some(text.clone()));
                self.event(Some(i), EventKind::Warning, "Failed", text);
                self.event(
                    Some(i),
                    EventKind::Warning,
                    "Failed",
                    "Error: ErrImagePull".into(),
                );
                None
            }
        }
    }

    /// Sets the waiting reason; true if it changed (so events are not repeated every tick).
    fn set_waiting(&mut self, i: usize, reason: &str, msg: Option<String>) -> bool {
        let w = Some((reason.to_string(), msg));
        let changed = self.containers[i].waiting != w;
        self.containers[i].waiting = w;
        changed
    }

    fn start(&mut self, i: usize, now: Timestamp, rt: &dyn ContainerRuntime, jobs: &mut Vec<Job>) {
        let pod = self.pod.clone();
        let spec = container_spec(&pod, &self.containers[i]);
        let privileged = spec
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false);
        if privileged && !self.cfg.allow_privileged {
            let msg = format!(
                "pod with UID \"{}\" specified privileged container, but is disallowed",
                self.uid()
            );
            if self.set_waiting(i, "CreateContainerConfigError", Some(msg.clone())) {
                self.event(
                    Some(i),
                    EventKind::Warning,
                    "Failed",
                    format!("Error: {msg}"),
                );
            }
            return;
        }
        let Some(image_id) = self.ensure_image(i, now, rt) else {
            return;
        };
        let env = match container_env(&self.pod, spec, &self.env) {
            Ok(e) => e,
            Err(e) => {
                let msg = e.to_string();
                if self.set_waiting(i, "CreateContainerConfigError", Some(msg.clone())) {
                    self.event(
                        Some(i),
                        EventKind::Warning,
                        "Failed",
                        format!("Error: {msg}"),
                    );
                }
                return;
            }
        };
        let (command, args) = expand_command(spec, &env);
        let memory_limit = spec
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .and_then(|q| orch_types::quantity::Quantity::try_from(q).ok())
            .map(|q| q.value());
        let cpu = crate::runtime::limits::container_resources(spec);
        let c = &self.containers[i];
        let cfg = ContainerConfig {
            pod_uid: self.uid(),
            namespace: self.pod.metadata.namespace.clone().unwrap_or_default(),
            pod_name: self.pod.metadata.name.clone().unwrap_or_default(),
            name: spec.name.clone(),
            attempt: c.attempts,
            image: spec.image.clone().unwrap_or_default(),
            command,
            args,
            env,
            working_dir: spec.working_dir.clone(),
            annotations: self.pod.metadata.annotations.clone().unwrap_or_default(),
            run_to_completion: c.role == Role::Init,
            memory_limit,
            cpu_request_milli: cpu.0,
            cpu_limit_milli: cpu.1,
            mounts: self.env.volumes.mounts(spec),
            stdin: spec.stdin.unwrap_or(false),
            stdin_once: spec.stdin_once.unwrap_or(false),
        };
        match rt.start_container(&cfg, now) {
            Ok(id) => {
                let name = spec.name.clone();
                self.event(
                    Some(i),
                    EventKind::Normal,
                    "Created",
                    format!("Created container: {name}"),
                );
                self.event(
                    Some(i),
                    EventKind::Normal,
                    "Started",
                    format!("Started container {name}"),
                );
                let state = rt
                    .container_state(&id, now)
                    .unwrap_or(ContainerState::Running { started_at: now });
                let post_start = spec
                    .lifecycle
                    .as_ref()
                    .and_then(|l| l.post_start.as_ref())
                    .and_then(handler_action);
                let started = post_start.is_none() && spec.startup_probe.is_none();
                let ready = started && spec.readiness_probe.is_none();
                self.progress = true;
                let c = &mut self.containers[i];
                c.attempts += 1;
                c.waiting = None;
                c.rerun = false;
                c.image_id = Some(image_id);
                if let Some(prev) = c.current.take() {
                    c.previous = Some((prev.id, prev.state));
                }
                c.current = Some(Instance {
                    id: id.clone(),
                    state,
                    post_start_running: post_start.is_some(),
                    started,
                    ready,
                    probes: BTreeMap::new(),
                    kill: None,
                });
                if let Some(action) = post_start {
                    jobs.push(Job {
                        container: name,
                        id,
                        kind: HandlerKind::PostStart,
                        action,
                        target: self.target(i),
                        timeout: self.grace(),
                    });
                }
            }
            Err(e) => {
                let msg = e.to_string();
                if self.set_waiting(i, "RunContainerError", Some(msg.clone())) {
                    self.event(
                        Some(i),
                        EventKind::Warning,
                        "Failed",
                        format!("Error: {msg}"),
                    );
                }
            }
        }
    }

    /// Restarts an exited container, unless it is in crash-loop back-off.
    fn restart(
        &mut self,
        i: usize,
        now: Timestamp,
        rt: &dyn ContainerRuntime,
        jobs: &mut Vec<Job>,
    ) {
        let name = self.spec(i).name.clone();
        let key = format!("{}/{name}", self.uid());
        let Some((_, finished)) = self.containers[i]
            .current
            .as_ref()
            .and_then(Instance::exited)
        else {
            // Not started yet (e.g. image pull failed): try again.
            self.start(i, now, rt, jobs);
            return;
        };
        let restarting = self.containers[i]
            .waiting
            .as_ref()
            .is_some_and(|w| w.0 != "CrashLoopBackOff");
        if !restarting {
            if self.crash_backoff.in_backoff_since(&key, finished, now) {
                let delay = go_duration(self.crash_backoff.delay(&key));
                let msg = format!(
                    "back-off {delay} restarting failed container={name} pod={}",
                    self.pod_ref()
                );
                if self.set_waiting(i, "CrashLoopBackOff", Some(msg)) {
                    let ev = format!(
                        "Back-off restarting failed container {name} in pod {}",
                        self.pod_ref()
                    );
                    self.event(Some(i), EventKind::Warning, "BackOff", ev);
                }
                return;
            }
            self.crash_backoff.next(&key, finished, now);
        }
        // Keep the exited instance as `previous` even if the start has to wait (image pull).
        self.start(i, now, rt, jobs);
        if self.containers[i]
            .current
            .as_ref()
            .is_some_and(|c| c.exited().is_some())
        {
            // start did not happen yet; remember we are past the back-off for this exit
            let w = self.containers[i].waiting.clone();
            if w.is_none() {
                self.containers[i].waiting = Some(("ContainerCreating".into(), None));
            }
        }
    }

    fn schedule_probe(&mut self, i: usize, kind: HandlerKind, now: Timestamp, jobs: &mut Vec<Job>) {
        let pod = self.pod.clone();
        let spec = container_spec(&pod, &self.containers[i]);
        let probe = match kind {
            HandlerKind::Startup => spec.startup_probe.as_ref(),
            HandlerKind::Liveness => spec.liveness_probe.as_ref(),
            _ => spec.readiness_probe.as_ref(),
        };
        let Some(probe) = probe else { return };
        let Some(action) = probe_action(probe) else {
            return;
        };
        let Some(inst) = &self.containers[i].current else {
            return;
        };
        let ContainerState::Running { started_at } = inst.state else {
            return;
        };
        let id = inst.id.clone();
        let target = self.target(i);
        let Some(inst) = self.containers[i].current.as_mut() else {
            return;
        };
        let ps = inst.probes.entry(kind).or_default();
        if ps.in_flight {
            return;
        }
        let due = ps
            .next_run
            .unwrap_or_else(|| add(started_at, secs(probe.initial_delay_seconds, 0)));
        if now < due {
            ps.next_run = Some(due);
            return;
        }
        ps.in_flight = true;
        ps.next_run = Some(add(now, secs(probe.period_seconds, 10)));
        jobs.push(Job {
            container: spec.name.clone(),
            id,
            kind,
            action,
            target,
            timeout: secs(probe.timeout_seconds, 1),
        });
    }

    fn drive_running(
        &mut self,
        i: usize,
        now: Timestamp,
        rt: &dyn ContainerRuntime,
        jobs: &mut Vec<Job>,
    ) {
        let Some(inst) = &self.containers[i].current else {
            return;
        };
        if inst.kill.is_some() {
            self.drive_kill(i, now, rt);
            return;
        }
        if inst.post_start_running || !matches!(inst.state, ContainerState::Running { .. }) {
            return;
        }
        let has_startup = self.spec(i).startup_probe.is_some();
        let has_readiness = self.spec(i).readiness_probe.is_some();
        if !inst.started {
            if has_startup {
                self.schedule_probe(i, HandlerKind::Startup, now, jobs);
                return;
            }
            if let Some(inst) = self.containers[i].current.as_mut() {
                inst.started = true;
            }
        }
        if !has_readiness {
            if let Some(inst) = self.containers[i].current.as_mut() {
                inst.ready = true;
            }
        }
        self.schedule_probe(i, HandlerKind::Liveness, now, jobs);
        self.schedule_probe(i, HandlerKind::Readiness, now, jobs);
    }

    fn begin_kill(
        &mut self,
        i: usize,
        grace: Duration,
        force: bool,
        now: Timestamp,
        jobs: &mut Vec<Job>,
    ) {
        let pre_stop = self
            .spec(i)
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(handler_action);
        let target = self.target(i);
        let name = self.spec(i).name.clone();
        let Some(inst) = self.containers[i].current.as_mut() else {
            return;
        };
        if inst.kill.is_some() || !inst.running() {
            return;
        }
        let mut kill = Kill {
            deadline: add(now, grace),
            term_sent: false,
            pre_stop_running: false,
            extended: false,
            force,
        };
        if let (Some(action), false) = (pre_stop, force) {
            if matches!(inst.state, ContainerState::Running { .. }) {
                kill.pre_stop_running = true;
                jobs.push(Job {
                    container: name,
                    id: inst.id.clone(),
                    kind: HandlerKind::PreStop,
                    action,
                    target,
                    timeout: grace,
                });
            }
        }
        inst.kill = Some(kill);
    }

    fn drive_kill(&mut self, i: usize, now: Timestamp, rt: &dyn ContainerRuntime) {
        let Some(inst) = self.containers[i].current.as_mut() else {
            return;
        };
        let id = inst.id.clone();
        let Some(k) = inst.kill.as_mut() else { return };
        let mut signal = None;
        if k.force {
            signal = Some(StopSignal::Kill);
        } else if now >= k.deadline {
            if k.pre_stop_running && !k.extended {
                // upstream: a preStop that used up the grace period leaves 2 s for SIGTERM
                k.pre_stop_running = false;
                k.extended = true;
                k.deadline = add(now, Duration::from_secs(2));
                k.term_sent = true;
                signal = Some(StopSignal::Term);
            } else {
                signal = Some(StopSignal::Kill);
            }
        } else if !k.term_sent && !k.pre_stop_running {
            k.term_sent = true;
            signal = Some(StopSignal::Term);
        }
        if let Some(s) = signal {
            if let Err(e) = rt.stop_container(&id, s, now) {
                tracing::debug!(container = %id, error = %e, "stop failed");
            }
            if let Some(state) = rt.container_state(&id, now) {
                if matches!(state, ContainerState::Exited { .. }) {
                    inst.kill = None;
                    inst.ready = false;
                    inst.started = false;
                    self.progress = true;
                }
                inst.state = state;
            }
        }
    }

    fn drive_termination(
        &mut self,
        now: Timestamp,
        rt: &dyn ContainerRuntime,
        jobs: &mut Vec<Job>,
    ) {
        let all_stopped = self.stop_all(now, rt, jobs);
        if all_stopped && !self.stopped {
            self.stopped = true;
            self.terminal = true;
            for c in &mut self.containers {
                if c.waiting
                    .as_ref()
                    .is_some_and(|w| w.0 == "CrashLoopBackOff")
                {
                    c.waiting = None;
                }
            }
            if let Err(e) = rt.remove_sandbox(&self.uid()) {
                tracing::debug!(error = %e, "remove sandbox failed");
            }
        }
    }

    /// Stops every running container (regular containers first, sidecars after them, each
    /// with its preStop hook and grace period; at once when forced). True once none runs.
    fn stop_all(&mut self, now: Timestamp, rt: &dyn ContainerRuntime, jobs: &mut Vec<Job>) -> bool {
        let grace = if self.force {
            Duration::ZERO
        } else {
            self.grace()
        };
        let apps_running = self
            .containers
            .iter()
            .any(|c| c.role != Role::Sidecar && c.current.as_ref().is_some_and(Instance::running));
        for i in 0..self.containers.len() {
            let c = &self.containers[i];
            let Some(inst) = &c.current else { continue };
            if !inst.running() {
                continue;
            }
            // Sidecars stop after the regular containers (upstream: reverse order, after apps).
            if c.role == Role::Sidecar && apps_running {
                continue;
            }
            if inst.kill.is_none() {
                let name = container_spec(&self.pod, c).name.clone();
                self.event(
                    Some(i),
                    EventKind::Normal,
                    "Killing",
                    format!("Stopping container {name}"),
                );
                self.begin_kill(i, grace, self.force, now, jobs);
            }
            self.drive_kill(i, now, rt);
        }
        self.containers
            .iter()
            .all(|c| c.current.as_ref().is_none_or(|x| !x.running()))
    }

    /// Upstream `computePodActions` with `podSandboxChanged`: the sandbox is gone, so every
    /// container is killed and, unless the restart policy forbids it, a new sandbox is created
    /// and the pod starts over from its first init container.
    fn sandbox_died(&mut self, now: Timestamp, rt: &dyn ContainerRuntime, jobs: &mut Vec<Job>) {
        self.dead_sandbox = self.sandbox.take();
        self.progress = true;
        if !self.should_recreate_sandbox() {
            tracing::info!(pod = %self.pod_ref(), "sandbox died; restart policy forbids a new one, stopping the pod");
            self.terminal = true;
            self.drive_termination(now, rt, jobs);
            return;
        }
        tracing::info!(pod = %self.pod_ref(), attempt = self.sandboxes_created, "sandbox died; it will be re-created");
        self.event(
            None,
            EventKind::Normal,
            "SandboxChanged",
            "Pod sandbox changed, it will be killed and re-created.".into(),
        );
        self.recreating = true;
    }

    /// Whether a dead sandbox is replaced. Upstream `computePodActions`
    /// (pkg/kubelet/kuberuntime/kuberuntime_manager.go): with `restartPolicy: Never`
    /// (`!shouldRestartOnFailure`) a pod that already created any container is only killed;
    /// a pod with no container left to start (OnFailure: all regular containers succeeded)
    /// whose regular containers were created is only killed too.
    fn should_recreate_sandbox(&self) -> bool {
        let any_created = self.containers.iter().any(|c| c.current.is_some());
        if self.restart_policy() == "Never" && any_created {
            return false;
        }
        let on_failure = self.restart_policy() == "OnFailure";
        let succeeded = |c: &CState| {
            c.current
                .as_ref()
                .and_then(Instance::exited)
                .is_some_and(|(code, _)| code == 0)
        };
        let to_start = self
            .containers
            .iter()
            .filter(|c| c.role == Role::App)
            .filter(|c| !(on_failure && succeeded(c)))
            .count();
        let regular_created = self
            .containers
            .iter()
            .any(|c| c.role == Role::App && c.current.is_some());
        !(to_start == 0 && regular_created)
    }

    /// Every container of the dead sandbox stopped: remove it, and make the pod start over
    /// (all init containers run again, in order; upstream `purgeInitContainers`).
    fn finish_sandbox_teardown(&mut self, rt: &dyn ContainerRuntime) {
        if let Err(e) = rt.remove_sandbox(&self.uid()) {
            tracing::debug!(error = %e, "remove sandbox failed");
        }
        self.recreating = false;
        self.dead_sandbox = None;
        self.initialized = false;
        self.progress = true;
        for c in &mut self.containers {
            if matches!(c.role, Role::Init | Role::Sidecar) && c.current.is_some() {
                c.rerun = true;
                c.waiting = None;
            }
        }
    }

    /// Reports the result of a [`Job`].
    pub fn handler_done(&mut self, job: &Job, outcome: HandlerOutcome, now: Timestamp) {
        let Some(i) = self
            .containers
            .iter()
            .position(|c| container_spec(&self.pod, c).name == job.container)
        else {
            return;
        };
        let grace = self.grace();
        let name = job.container.clone();
        let pod = self.pod.clone();
        let spec = container_spec(&pod, &self.containers[i]);
        let Some(inst) = self.containers[i].current.as_mut() else {
            return;
        };
        if inst.id != job.id {
            return; // a stale result for an older instance
        }
        let mut jobs = vec![];
        match job.kind {
            HandlerKind::PostStart => {
                inst.post_start_running = false;
                inst.started = spec.startup_probe.is_none();
                inst.ready = inst.started && spec.readiness_probe.is_none();
                if let HandlerOutcome::Failure(msg) = outcome {
                    let text = format!("PostStartHook failed: {msg}");
                    self.event(Some(i), EventKind::Warning, "FailedPostStartHook", text);
                    self.event(
                        Some(i),
                        EventKind::Normal,
                        "Killing",
                        format!("FailedPostStartHook: stopping container {name}"),
                    );
                    self.begin_kill(i, grace, false, now, &mut jobs);
                }
            }
            HandlerKind::PreStop => {
                if let Some(k) = inst.kill.as_mut() {
                    k.pre_stop_running = false;
                }
                if let HandlerOutcome::Failure(msg) = outcome {
                    self.event(
                        Some(i),
                        EventKind::Warning,
                        "FailedPreStopHook",
                        format!("PreStopHook failed: {msg}"),
                    );
                }
            }
            kind => {
                let probe = match kind {
                    HandlerKind::Startup => spec.startup_probe.as_ref(),
                    HandlerKind::Liveness => spec.liveness_probe.as_ref(),
                    _ => spec.readiness_probe.as_ref(),
                };
                let Some(probe) = probe else { return };
                let ps = inst.probes.entry(kind).or_default();
                ps.in_flight = false;
                if !matches!(inst.state, ContainerState::Running { .. }) || inst.kill.is_some() {
                    return;
                }
                let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
                let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
                let failed_msg = match &outcome {
                    HandlerOutcome::Success => {
                        ps.successes += 1;
                        ps.failures = 0;
                        None
                    }
                    HandlerOutcome::Failure(m) => {
                        ps.failures += 1;
                        ps.successes = 0;
                        Some(m.clone())
                    }
                };
                let (succ, fail) = (ps.successes, ps.failures);
                match kind {
                    HandlerKind::Startup if succ >= 1 => inst.started = true,
                    HandlerKind::Readiness => {
                        if succ >= success_threshold {
                            inst.ready = true;
                        }
                        if fail >= failure_threshold {
                            inst.ready = false;
                        }
                    }
                    _ => {}
                }
                if let Some(m) = failed_msg {
                    self.event(
                        Some(i),
                        EventKind::Warning,
                        "Unhealthy",
                        format!("{} probe failed: {m}", kind.as_str()),
                    );
                    if kind != HandlerKind::Readiness && fail >= failure_threshold {
                        let what = if kind == HandlerKind::Startup {
                            "startup"
                        } else {
                            "liveness"
                        };
                        self.event(
                            Some(i),
                            EventKind::Normal,
                            "Killing",
                            format!("Container {name} failed {what} probe, will be restarted"),
                        );
                        let g = probe
                            .termination_grace_period_seconds
                            .map_or(grace, |s| Duration::from_secs(s.max(2) as u64));
                        self.begin_kill(i, g, false, now, &mut jobs);
                    }
                }
            }
        }
        debug_assert!(jobs.iter().all(|j| j.kind == HandlerKind::PreStop));
        self.pending.extend(jobs);
    }

    /// Jobs created while handling results (preStop hooks of probe kills); returned by `tick`.
    fn take_pending(&mut self) -> Vec<Job> {
        std::mem::take(&mut self.pending)
    }

    /// The pod status as the kubelet reports it.
    pub fn status(&mut self, now: Timestamp) -> PodStatus {
        static NO_STATUS: LazyLock<PodStatus> = LazyLock::new(PodStatus::default);
        let pod = self.pod.clone();
        let spec = pod_spec(&pod);
        let old = pod.status.as_ref().unwrap_or(&NO_STATUS);
        let host_ip = self.cfg.host_ip.clone();
        if let Some(r) = &self.rejected {
            return PodStatus {
                phase: Some(status::phase::FAILED.into()),
                reason: Some(r.reason.clone()),
                message: Some(r.message.clone()),
                start_time: Some(Time(self.start_time)),
                ..Default::default()
            };
        }
        let has_init = !spec
            .init_containers
            .as_deref()
            .unwrap_or_default()
            .is_empty();
        // Init containers (and sidecars) come first in `containers`, then the regular ones,
        // then the ephemeral ones, which count for neither phase nor conditions.
        let mut all: Vec<ContainerStatus> = self
            .containers
            .iter()
            .map(|c| self.container_status(c, has_init))
            .collect();
        let inits = self
            .containers
            .iter()
            .take_while(|c| c.role != Role::App)
            .count();
        let ephemeral = all.split_off(
            self.containers
                .iter()
                .take_while(|c| c.role != Role::Ephemeral)
                .count(),
        );
        let mut phase = status::pod_phase(spec, &all, self.stopped);
        let old_phase = old.phase.as_deref().unwrap_or_default();
        if old_phase == status::phase::FAILED || old_phase == status::phase::SUCCEEDED {
            phase = if old_phase == status::phase::FAILED {
                status::phase::FAILED
            } else {
                status::phase::SUCCEEDED
            };
        }
        let mut conditions: Vec<PodCondition> = old
            .conditions
            .iter()
            .flatten()
            .filter(|c| !status::is_kubelet_condition(&c.type_))
            .cloned()
            .collect();
        let cr = status::containers_ready(spec, &all, phase);
        // upstream generateAPIPodStatus (pkg/kubelet/kubelet_pods.go) appends its conditions
        // after the ones it does not own, PodScheduled=True last; the status manager's
        // mergePodStatus keeps that order, so the first status and the next ones agree.
        let kubelet: [PodCondition; KUBELET_CONDITIONS] = [
            status::ready_to_start(self.sandbox.is_some() && !self.stopped),
            status::initialized(spec, &all, phase),
            status::pod_ready(spec, &conditions, &cr),
            cr,
            PodCondition {
                type_: "PodScheduled".into(),
                status: "True".into(),
                ..Default::default()
            },
        ];
        // upstream updateLastTransitionTime: the time is kept while the status stays, taken
        // from what the kubelet reported last, else from the pod's status.
        for (slot, mut c) in kubelet.into_iter().enumerate() {
            let is_true = c.status == "True";
            let kept = match &self.reported[slot] {
                Some((was_true, t)) => t.clone().filter(|_| *was_true == is_true),
                None => old
                    .conditions
                    .iter()
                    .flatten()
                    .find(|p| p.type_ == c.type_)
                    .filter(|p| p.status == c.status)
                    .and_then(|p| p.last_transition_time.clone()),
            };
            c.last_transition_time = kept.or(Some(Time(now)));
            self.reported[slot] = Some((is_true, c.last_transition_time.clone()));
            conditions.push(c);
        }
        let pod_ip = self
            .sandbox
            .as_ref()
            .or(self.dead_sandbox.as_ref())
            .map(|s| s.ip.clone())
            .or(old.pod_ip.clone());
        let app_statuses = all.split_off(inits);
        let init_statuses = all;
        PodStatus {
            phase: Some(phase.into()),
            reason: old.reason.clone().filter(|_| old_phase == phase),
            message: old.message.clone().filter(|_| old_phase == phase),
            conditions: Some(conditions),
            host_ip: Some(host_ip.clone()),
            host_ips: Some(vec![HostIP { ip: host_ip }]),
            pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
            pod_ip,
            start_time: Some(Time(self.start_time)),
            // upstream GetPodQOS (pkg/apis/core/v1/helper/qos/qos.go): the class persisted in
            // the status wins; it is only computed while the status has none.
            qos_class: Some(
                old.qos_class
                    .clone()
                    .filter(|q| !q.is_empty())
                    .unwrap_or_else(|| orch_types::resources::qos_class(spec).into()),
            ),
            init_container_statuses: has_init.then_some(init_statuses),
            container_statuses: Some(app_statuses),
            // upstream convertStatusToAPIStatus: only for a pod with ephemeral containers
            ephemeral_container_statuses: (!ephemeral.is_empty()).then_some(ephemeral),
            nominated_node_name: old.nominated_node_name.clone(),
            ..Default::default()
        }
    }

    fn container_status(&self, c: &CState, has_init: bool) -> ContainerStatus {
        let spec = container_spec(&self.pod, c);
        let default_waiting = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let terminated = |id: &str, s: &ContainerState| -> Option<ApiState> {
            match s {
                ContainerState::Exited {
                    started_at,
                    finished_at,
                    exit_code,
                    reason,
                    ..
                } => Some(ApiState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: *exit_code,
                        reason: Some(reason.as_str().into()),
                        started_at: Some(Time(*started_at)),
                        finished_at: Some(Time(*finished_at)),
                        container_id: Some(id.to_string()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                _ => None,
            }
        };
        let waiting = |reason: &str, msg: Option<String>| ApiState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: msg,
            }),
            ..Default::default()
        };
        let user_waiting = c
            .waiting
            .as_ref()
            .filter(|w| w.0 != "ContainerCreating")
            .map(|w| waiting(&w.0, w.1.clone()));
        let prev_term = c
            .previous
            .as_ref()
            .and_then(|(id, s)| terminated(&self.qualify(id), s));
        let (state, last_state, id, started, ready) = match &c.current {
            None => (
                user_waiting.unwrap_or_else(|| waiting(default_waiting, None)),
                prev_term,
                None,
                false,
                false,
            ),
            Some(inst) => {
                let qid = self.qualify(&inst.id);
                match &inst.state {
                    ContainerState::Exited { .. } => match user_waiting
                        .or_else(|| c.waiting.as_ref().map(|_| waiting(default_waiting, None)))
                    {
                        Some(w) => (w, terminated(&qid, &inst.state), None, false, false),
                        None => (
                            terminated(&qid, &inst.state).unwrap_or_default(),
                            prev_term,
                            Some(qid),
                            false,
                            false,
                        ),
                    },
                    ContainerState::Running { started_at } if !inst.post_start_running => (
                        ApiState {
                            running: Some(ContainerStateRunning {
                                started_at: Some(Time(*started_at)),
                            }),
                            ..Default::default()
                        },
                        prev_term,
                        Some(qid),
                        inst.started,
                        inst.ready,
                    ),
                    _ => (
                        waiting(default_waiting, None),
                        prev_term,
                        Some(qid),
                        false,
                        false,
                    ),
                }
            }
        };
        // upstream prober manager: a regular init container is ready once it exited 0; it
        // leaves ephemeral containers alone (not ready, no `started`)
        let (ready, started) = match c.role {
            Role::Init => (
                state.terminated.as_ref().is_some_and(|t| t.exit_code == 0),
                Some(started),
            ),
            Role::Ephemeral => (false, None),
            Role::App | Role::Sidecar => (ready, Some(started)),
        };
        ContainerStatus {
            name: spec.name.clone(),
            image: spec.image.clone().unwrap_or_default(),
            image_id: c.image_id.clone().unwrap_or_default(),
            container_id: id,
            state: Some(state),
            last_state: Some(last_state.unwrap_or_default()),
            ready,
            restart_count: (c.attempts - 1).max(0),
            started,
            ..Default::default()
        }
    }

    fn qualify(&self, id: &str) -> String {
        format!("{}://{id}", self.scheme)
    }
}

impl CState {
    fn new(index: usize, role: Role) -> Self {
        Self {
            index,
            role,
            current: None,
            previous: None,
            waiting: None,
            attempts: 0,
            image_id: None,
            pull_ready_at: None,
            pull_started: None,
            spec_changed: false,
            rerun: false,
        }
    }
}
