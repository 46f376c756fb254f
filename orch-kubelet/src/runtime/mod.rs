//! The [`ContainerRuntime`] trait: what the pod worker needs from a runtime, and nothing more.
//!
//! This module must never depend on a concrete runtime (as TiKV's `engine_traits` never depends
//! on RocksDB): [`fake`] is the scriptable runtime for tests and the skeleton to copy when adding
//! a runtime, [`sim`] runs in virtual time from pod annotations, [`process`] runs host processes.
//!
//! Every call is non-blocking except [`ContainerRuntime::run_handler`] (probes and hooks, which
//! may wait up to their timeout); the driver runs those on blocking threads.

pub mod cri;
pub mod fake;
pub mod limits;
pub mod process;
pub mod sim;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ExecAction, GRPCAction, HTTPGetAction, Secret, SleepAction, TCPSocketAction,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A runtime-assigned container identifier (without the `scheme://` prefix).
pub type ContainerId = String;

/// Errors a runtime reports to the pod worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The container does not exist (any more).
    #[error("container {0} not found")]
    NotFound(String),
    /// The container could not be created or started (`RunContainerError`/`StartError`).
    #[error("failed to start container: {0}")]
    Start(String),
    /// The pod sandbox could not be created (e.g. host port already in use).
    #[error("failed to create pod sandbox: {0}")]
    Sandbox(String),
    /// An I/O error with its description.
    #[error("runtime I/O error: {0}")]
    Io(String),
}

/// Name and version of a runtime, as `node.status.nodeInfo.containerRuntimeVersion` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// Scheme used in `containerID` (`process`, `sim`, `fake`).
    pub name: String,
    /// Version string.
    pub version: String,
}

/// A pulled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The reference as written in the pod spec.
    pub reference: String,
    /// The image ID reported in `containerStatuses[].imageID`.
    pub id: String,
    /// Size in bytes, for `node.status.images`.
    pub size_bytes: i64,
}

/// Result of one non-blocking pull step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    /// The image is present.
    Ready(ImageInfo),
    /// Still pulling; ask again later (at `ready_at` if the runtime knows when it will be done).
    InProgress {
        /// When the pull completes, if known (virtual-time runtimes).
        ready_at: Option<Timestamp>,
    },
    /// The pull failed (reported as `ErrImagePull` with this message).
    Failed(String),
}

/// The hostname a pod's containers see: `spec.hostname` when set, else the pod name, cut to 63
/// characters without a trailing `-` or `.` (upstream `GeneratePodHostNameAndDomain` and
/// `truncatePodHostnameIfNeeded` in `pkg/kubelet/kubelet_pods.go`). `spec.subdomain` only adds
/// a domain (the DNS name `HOSTNAME.SUBDOMAIN.NAMESPACE.svc.DOMAIN`), not a different hostname.
///
/// ```
/// use orch_kubelet::runtime::pod_hostname;
/// assert_eq!(pod_hostname("web-0", None), "web-0");
/// assert_eq!(pod_hostname("web-0", Some("db")), "db");
/// assert_eq!(pod_hostname(&format!("{}-x", "a".repeat(62)), None), "a".repeat(62));
/// ```
pub fn pod_hostname(pod_name: &str, spec_hostname: Option<&str>) -> String {
    const MAX: usize = 63;
    let h = spec_hostname.filter(|h| !h.is_empty()).unwrap_or(pod_name);
    if h.len() <= MAX {
        return h.to_string();
    }
    let mut end = MAX;
    while !h.is_char_boundary(end) {
        end -= 1;
    }
    h[..end].trim_end_matches(['-', '.']).to_string()
}

/// What a pod sandbox needs: its identity and networking.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SandboxConfig {
    /// Pod UID.
    pub pod_uid: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// The pod's hostname ([`pod_hostname`]); empty: the pod name.
    pub hostname: String,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// Host ports requested by any container (`hostPort`, protocol).
    pub host_ports: Vec<(i32, String)>,
    /// The same host ports with their container port and `hostIP`, for runtimes that forward
    /// them into a pod network namespace.
    pub port_mappings: Vec<PortMapping>,
    /// The pod's QoS class (`Guaranteed`, `Burstable`, `BestEffort`; empty = unknown), which
    /// picks its cgroup parent.
    pub qos_class: String,
    /// Pod-level CPU request in milliCPU (sum over app containers), if any container sets one.
    pub cpu_request_milli: Option<i64>,
    /// Pod-level CPU limit in milliCPU, only when every app container has one.
    pub cpu_limit_milli: Option<i64>,
    /// Pod-level memory limit in bytes, only when every app container has one.
    pub memory_limit: Option<i64>,
    /// The pod's resolver configuration (its `/etc/resolv.conf`, [`crate::dns`]); `None`:
    /// the runtime's default (the node's).
    pub dns: Option<crate::dns::ResolverConfig>,
}

/// One `hostPort` → `containerPort` mapping of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortMapping {
    /// `hostPort`.
    pub host_port: i32,
    /// `containerPort`.
    pub container_port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// `hostIP` (empty = all host addresses).
    pub host_ip: String,
}

/// A running sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    /// The pod IP.
    pub ip: String,
}

/// Everything a runtime needs to start one container (already resolved by the kubelet).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerConfig {
    /// Pod UID.
    pub pod_uid: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod_name: String,
    /// Container name.
    pub name: String,
    /// Attempt (= restart count at start).
    pub attempt: i32,
    /// Image reference from the spec.
    pub image: String,
    /// `command` after `$(VAR)` expansion (empty = image entrypoint).
    pub command: Vec<String>,
    /// `args` after `$(VAR)` expansion (empty = image default args when command is empty too).
    pub args: Vec<String>,
    /// Environment, in order.
    pub env: Vec<(String, String)>,
    /// `workingDir`.
    pub working_dir: Option<String>,
    /// Pod annotations (the sim runtime reads its behaviour from them).
    pub annotations: BTreeMap<String, String>,
    /// True for an init container that is not a sidecar (the sim runtime lets it complete).
    pub run_to_completion: bool,
    /// Memory limit in bytes, if any.
    pub memory_limit: Option<i64>,
    /// `resources.requests.cpu` in milliCPU, if any.
    pub cpu_request_milli: Option<i64>,
    /// `resources.limits.cpu` in milliCPU, if any.
    pub cpu_limit_milli: Option<i64>,
    /// Directories of the node the container sees at other paths (its claim-backed
    /// `volumeMounts`, see [`crate::volume`]).
    pub mounts: Vec<Mount>,
    /// `stdin`: the container's stdin stays open for `kubectl attach -i`.
    pub stdin: bool,
    /// `stdinOnce`: the first attach that closes stdin closes it for the container.
    pub stdin_once: bool,
}

/// A node directory a container sees at `container_path`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// The directory on the node (created if missing).
    pub host_path: String,
    /// Where the container sees it (`volumeMounts[].mountPath`).
    pub container_path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Why a container exited, as the runtime knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// Exit code 0.
    Completed,
    /// Non-zero exit code or killed by a signal.
    Error,
    /// Killed for exceeding its memory limit.
    OomKilled,
    /// The runtime lost track of the exit (e.g. SIGKILLed while the kubelet was down).
    Unknown,
}

impl ExitReason {
    /// The `containerStatuses[].state.terminated.reason` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "Completed",
            Self::Error => "Error",
            Self::OomKilled => "OOMKilled",
            Self::Unknown => "ContainerStatusUnknown",
        }
    }
}

/// A container's state as the runtime observes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, the process is not running yet.
    Created,
    /// Running since `started_at`.
    Running {
        /// Start time.
        started_at: Timestamp,
    },
    /// Exited.
    Exited {
        /// Start time.
        started_at: Timestamp,
        /// Exit time.
        finished_at: Timestamp,
        /// Exit code (128 + signal when killed by a signal, as Kubernetes reports it).
        exit_code: i32,
        /// The signal that killed it, if any.
        signal: Option<i32>,
        /// The reason.
        reason: ExitReason,
    },
}

/// One container the runtime knows about (for re-attaching after a kubelet restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    /// ID.
    pub id: ContainerId,
    /// Pod UID.
    pub pod_uid: String,
    /// Container name.
    pub name: String,
    /// Attempt.
    pub attempt: i32,
    /// Image reference.
    pub image: String,
}

/// The signals the kubelet sends to stop a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM: graceful.
    Term,
    /// SIGKILL: when the grace period is spent.
    Kill,
}

/// Output of a synchronous exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    /// Exit code (`None` on timeout).
    pub exit_code: Option<i32>,
    /// Combined output, truncated to 10 KiB like upstream's probe output.
    pub output: String,
}

/// Which probe or hook a handler run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HandlerKind {
    /// `startupProbe`.
    Startup,
    /// `livenessProbe`.
    Liveness,
    /// `readinessProbe`.
    Readiness,
    /// `lifecycle.postStart`.
    PostStart,
    /// `lifecycle.preStop`.
    PreStop,
}

impl HandlerKind {
    /// `Startup`, `Liveness`, … as used in event messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "Startup",
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
            Self::PostStart => "PostStart",
            Self::PreStop => "PreStop",
        }
    }
}

/// The action of a probe or lifecycle hook.
#[derive(Debug, Clone, PartialEq)]
pub enum HandlerAction {
    /// `exec`.
    Exec(ExecAction),
    /// `httpGet`.
    HttpGet(HTTPGetAction),
    /// `tcpSocket`.
    TcpSocket(TCPSocketAction),
    /// `sleep` (hooks only).
    Sleep(SleepAction),
    /// `grpc` (probes only): `grpc.health.v1.Health/Check` on the pod IP.
    Grpc(GRPCAction),
}

/// Where network handlers connect and what they may use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandlerTarget {
    /// Pod IP (default host for httpGet/tcpSocket).
    pub pod_ip: String,
    /// Named container ports (`name` → port) for `port: http`.
    pub named_ports: BTreeMap<String, i32>,
    /// Pod annotations (the sim runtime reads probe behaviour from them).
    pub annotations: BTreeMap<String, String>,
    /// Container name.
    pub container: String,
}

/// Outcome of a probe or hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerOutcome {
    /// Succeeded.
    Success,
    /// Failed, with a message for events and logs.
    Failure(String),
}

/// What a pull may use: credentials, and the pod's annotations (the sim runtime reads its pull
/// time from them).
#[derive(Debug, Clone, Default)]
pub struct PullContext {
    /// The pod's resolved `imagePullSecrets`.
    pub secrets: Vec<Secret>,
    /// Pod annotations.
    pub annotations: BTreeMap<String, String>,
    /// The container the pull is for.
    pub container: String,
}

/// The runtime interface of the pod worker.
pub trait ContainerRuntime: Send + Sync + std::fmt::Debug {
    /// Name (the `containerID` scheme) and version.
    fn info(&self) -> RuntimeInfo;
    /// The image if already present.
    fn image_status(&self, image: &str) -> Option<ImageInfo>;
    /// One non-blocking step of pulling `image`.
    fn pull_image(&self, image: &str, ctx: &PullContext, now: Timestamp) -> PullOutcome;
    /// Every present image (for `node.status.images`).
    fn list_images(&self) -> Vec<ImageInfo>;
    /// Creates (or returns the existing) sandbox of a pod.
    fn run_sandbox(&self, cfg: &SandboxConfig) -> Result<SandboxInfo, RuntimeError>;
    /// Removes a pod's sandbox (after all its containers are gone).
    fn remove_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError>;
    /// True while the sandbox of `pod_uid` created by [`run_sandbox`](Self::run_sandbox) is
    /// still usable (for the process runtime: its network namespace still exists).
    ///
    /// When it returns false for a pod that has a sandbox, the pod worker treats the sandbox as
    /// dead, as upstream `computePodActions` does when `podSandboxChanged` (event
    /// `SandboxChanged`): it kills every container, calls [`remove_sandbox`](Self::remove_sandbox),
    /// creates a new sandbox with [`run_sandbox`](Self::run_sandbox), and re-runs all init
    /// containers in order before the app containers. Runtimes whose sandboxes cannot die keep
    /// the default (`true`). Must be cheap: it is asked on every pod sync.
    fn sandbox_alive(&self, pod_uid: &str) -> bool {
        let _ = pod_uid;
        true
    }
    /// The pod UIDs of every sandbox the runtime holds (for removing those of pods deleted while
    /// the kubelet was down); runtimes whose sandboxes hold nothing return none.
    fn list_sandboxes(&self) -> Vec<String> {
        vec![]
    }
    /// True while the runtime still needs the node's `spec.podCIDR` (pod network namespaces
    /// and no pod CIDR known yet); the kubelet then hands it over with
    /// [`update_pod_cidr`](Self::update_pod_cidr) as soon as the node IPAM controller assigned
    /// it, and new pods wait a few seconds for it.
    fn needs_pod_cidr(&self) -> bool {
        false
    }
    /// The node's `spec.podCIDR`, as upstream's CRI `UpdateRuntimeConfig`
    /// (`pkg/kubelet/kubelet_network.go`, `updatePodCIDR`).
    fn update_pod_cidr(&self, pod_cidr: &str) {
        let _ = pod_cidr;
    }
    /// Creates and starts a container.
    fn start_container(
        &self,
        cfg: &ContainerConfig,
        now: Timestamp,
    ) -> Result<ContainerId, RuntimeError>;
    /// The container's state, `None` if unknown.
    fn container_state(&self, id: &str, now: Timestamp) -> Option<ContainerState>;
    /// Sends a stop signal to the container (its whole process group).
    fn stop_container(
        &self,
        id: &str,
        signal: StopSignal,
        now: Timestamp,
    ) -> Result<(), RuntimeError>;
    /// Forgets an exited container and its logs.
    fn remove_container(&self, id: &str) -> Result<(), RuntimeError>;
    /// Every container the runtime knows, for re-attaching after a restart.
    fn list_containers(&self) -> Vec<ContainerRecord>;
    /// Runs a probe or hook to completion (blocking, bounded by `timeout`).
    fn run_handler(
        &self,
        id: &str,
        kind: HandlerKind,
        action: &HandlerAction,
        target: &HandlerTarget,
        timeout: Duration,
        now: Timestamp,
    ) -> HandlerOutcome;
    /// The container's log file in CRI format, if it has one.
    fn log_path(&self, id: &str) -> Option<PathBuf>;
    /// Whether containers can get volumes mounted at any path (the process runtime only as
    /// root); where not, the kubelet writes projected volumes without mounting them.
    fn mounts_anywhere(&self) -> bool {
        true
    }
    /// When the state of container `id` will change next, if the runtime knows (virtual time);
    /// real runtimes return `None` and are polled.
    fn next_change(&self, id: &str, now: Timestamp) -> Option<Timestamp> {
        let _ = (id, now);
        None
    }
    /// True if container exits are only noticed by polling [`container_state`](Self::container_state)
    /// (real runtimes); false if [`next_change`](Self::next_change) announces every change.
    fn needs_polling(&self) -> bool {
        true
    }
    /// Periodic housekeeping (log collection and rotation); cheap when nothing changed.
    fn housekeeping(&self) {}
    /// The resource usage of a running container, for the kubelet's `/stats/summary` (and so
    /// `metrics.k8s.io` and `kubectl top`); `None` when the runtime cannot tell or the
    /// container is not running. Real runtimes measure CPU as a rate between two samples, so
    /// the first call for a container may answer `None`.
    fn container_usage(&self, id: &str, now: Timestamp) -> Option<ContainerUsage> {
        let _ = (id, now);
        None
    }
    /// Starts `req.command` in running container `id` (`kubectl exec`), in its environment,
    /// working directory, namespaces and cgroup. Blocking: the kubelet calls it on a blocking
    /// thread.
    fn exec(&self, id: &str, req: &StreamRequest) -> Result<ProcessIo, StreamError> {
        let _ = (id, req);
        Err(StreamError::Unsupported(format!(
            "the {} runtime cannot exec in containers",
            self.info().name
        )))
    }
    /// Attaches to running container `id` (`kubectl attach`): its live stdout/stderr and, when
    /// it has `stdin: true`, its stdin. Blocking.
    fn attach(&self, id: &str, req: &StreamRequest) -> Result<ProcessIo, StreamError> {
        let _ = (id, req);
        Err(StreamError::Unsupported(format!(
            "the {} runtime cannot attach to containers",
            self.info().name
        )))
    }
    /// Whether the ports of pod `pod_uid` can be forwarded at all, asked before the client's
    /// connection is upgraded so that a refusal is an HTTP `Status` the client shows (a port
    /// that cannot be reached is reported later, per port, on its error stream). Default: yes.
    fn port_forward_available(&self, pod_uid: &str) -> Result<(), StreamError> {
        let _ = pod_uid;
        Ok(())
    }
    /// A TCP connection to `localhost:port` in the network namespace of pod `pod_uid`
    /// (`kubectl port-forward`). Blocking.
    fn port_forward(&self, pod_uid: &str, port: u16) -> Result<std::net::TcpStream, StreamError> {
        let _ = (pod_uid, port);
        Err(StreamError::Unsupported(format!(
            "the {} runtime cannot forward ports",
            self.info().name
        )))
    }
}

/// A container's resource usage, as upstream's Summary API reports it
/// (`staging/src/k8s.io/kubelet/pkg/apis/stats/v1alpha1/types.go`, `CPUStats`/`MemoryStats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContainerUsage {
    /// CPU in nano-cores (`usageNanoCores`: 1 core = 1e9), averaged over `window`.
    pub cpu_nano_cores: u64,
    /// Total CPU time used since the container started, in nanoseconds, if known
    /// (`usageCoreNanoSeconds`).
    pub cpu_core_nano_seconds: Option<u64>,
    /// Memory working set in bytes (`workingSetBytes`; resident memory for processes).
    pub memory_working_set_bytes: u64,
    /// The sampling window the CPU rate was computed over (zero: an instantaneous figure).
    pub window: Duration,
}

/// A terminal size, as clients send it on the resize channel (`{"Width":80,"Height":24}`,
/// upstream `remotecommand.TerminalSize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct TermSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// What an exec or attach session asks for (the `command`, `stdin`, `stdout`, `stderr` and
/// `tty` query parameters of the kubelet's `/exec` and `/attach`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamRequest {
    /// The command (exec only; attach ignores it).
    pub command: Vec<String>,
    /// The client sends stdin.
    pub stdin: bool,
    /// The client wants stdout.
    pub stdout: bool,
    /// The client wants stderr (never with `tty`: the terminal merges it into stdout).
    pub stderr: bool,
    /// Run on a terminal (exec: a new pty; attach: the container's own).
    pub tty: bool,
}

/// Stops a session's process (the exec'd command's process group) when its client goes away.
pub type Canceller = Box<dyn Fn() + Send + Sync>;

/// Resizes a session's terminal.
pub type Resizer = Box<dyn Fn(TermSize) + Send + Sync>;

/// Waits (blocking) until a session's process is done: its exit code.
pub type Waiter = Box<dyn FnOnce() -> Result<i32, RuntimeError> + Send>;

/// The process side of an exec or attach session, in blocking I/O: the kubelet's streaming
/// layer ([`crate::streaming`]) pumps each end on a thread of its own, whatever the transport
/// (WebSocket or SPDY) on the client side.
pub struct ProcessIo {
    /// The process's stdin (dropped: EOF), when the request asked for stdin.
    pub stdin: Option<Box<dyn std::io::Write + Send>>,
    /// Its stdout (with a tty: the terminal's output), when asked for.
    pub stdout: Option<Box<dyn std::io::Read + Send>>,
    /// Its stderr, when asked for and without a tty.
    pub stderr: Option<Box<dyn std::io::Read + Send>>,
    /// Resizes the terminal (with a tty).
    pub resize: Option<Resizer>,
    /// Waits for the end of the session: the exec'd command's exit code, or `0` when an
    /// attached container exits.
    pub wait: Waiter,
    /// Ends the session early (the client went away).
    pub cancel: Option<Canceller>,
}

impl std::fmt::Debug for ProcessIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessIo")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("tty", &self.resize.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a streaming call (exec, attach, port-forward) failed in the runtime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The container is not running (or unknown to the runtime).
    #[error("container not running ({0})")]
    NotRunning(String),
    /// The request cannot be served (e.g. attaching stdin to a container without `stdin: true`).
    #[error("{0}")]
    BadRequest(String),
    /// This runtime cannot do it at all.
    #[error("{0}")]
    Unsupported(String),
    /// Starting the command or connecting failed.
    #[error("{0}")]
    Failed(String),
}
