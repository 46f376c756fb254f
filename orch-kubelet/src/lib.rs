//! # orch-kubelet — the node agent
//!
//! Owns: node registration and Lease heartbeats, the pod worker state machine (init containers,
//! hooks, probes, restart back-off, phases and conditions, graceful termination), logs, and the
//! [`runtime::ContainerRuntime`] trait with the `process` and `sim` runtimes. Talks to an API
//! server only through `orch_types::client::Client`; never depends on `orch-apiserver`.
//!
//! Shape: a pure core ([`worker::PodWorker`], [`status`], [`env`], [`backoff`]) that takes time
//! as an argument and talks to the runtime through the trait, and a thin async driver
//! ([`Kubelet`]) that watches pods, runs probe and hook jobs on blocking threads, writes status
//! and heartbeats, and serves logs. Between them, [`pod_sync`] is one pod's sync step as data
//! (admission, the environment from fetched objects, and [`pod_sync::PodSync::step`]: jobs,
//! events, the status to write, deletion, the next wake-up), which the live kubelet and the
//! simulator both drive.
//!
//! Modules: [`runtime`] (the trait, [`runtime::fake`], [`runtime::sim`] with its documented
//! `sim.orch.dev/*` annotations, [`runtime::process`]), [`image`] (the `ImageSource` trait and
//! the local catalog), [`prober`] (exec/httpGet/tcpSocket/grpc), [`node`] (Node object,
//! capacity, allocatable, admission), [`eviction`] (hard eviction thresholds, node stats and
//! the MemoryPressure/DiskPressure/PIDPressure conditions), [`logs`] (CRI log reading and the
//! `/containerLogs` endpoint), [`volume`] (PersistentVolumeClaim-backed volumes: containers wait
//! for their claims to be bound, then see the volume's directory), [`projected`] (projected
//! volumes such as the service-account token volume, written atomically) and [`token`] (the
//! service-account tokens requested for them, refreshed before they expire).
//!
//! [`streaming`] serves `/exec`, `/attach` and `/portForward` over WebSocket (the channel
//! protocols kubectl and the Python client speak), through
//! [`runtime::ContainerRuntime::exec`], `attach` and `port_forward`.
//!
//! Over HTTPS ([`tls`]) every request is authenticated (client certificate or bearer token
//! through a TokenReview) and authorized with a SubjectAccessReview of `nodes/proxy`,
//! `nodes/stats`, `nodes/log`, … ([`auth`]), as upstream's kubelet with its default
//! configuration.
//!
//! [`stats`] serves the Summary API at `/stats/summary` (each running container's CPU and
//! memory working set from [`runtime::ContainerRuntime::container_usage`]), from which the API
//! server builds `metrics.k8s.io` for `kubectl top`.
//!
//! A pod whose sandbox dies ([`runtime::ContainerRuntime::sandbox_alive`] turns false) is
//! handled as upstream `computePodActions`: event `SandboxChanged`, every container killed, a
//! new sandbox, all init containers re-run in order, then the app containers (restart counts
//! go up, the pod IP may change); a `restartPolicy: Never` pod that already created containers
//! is only killed.
//!
//! Ephemeral containers (`kubectl debug`, added through the API's `pods/ephemeralcontainers`)
//! reach the worker as a pod update ([`worker::PodWorker::update_pod`]): each new one is
//! started once the pod has its sandbox, even before its init containers are done (upstream
//! `computePodActions`), in the pod's environment like its other containers (env, volumes,
//! network namespace), with no probes or hooks; it is never restarted, counts for neither
//! the phase nor readiness, is stopped with the pod, and is reported in
//! `status.ephemeralContainerStatuses`. The other containers are not touched. Its logs are
//! served like any container's.
//!
//! Deviations from upstream, on purpose or for now:
//! - `targetContainerName` is accepted but has no effect of its own: upstream puts the
//!   ephemeral container in the target's process namespace; `process` containers have no
//!   namespaces per container (every process of the node is visible to all of them, the
//!   target's included), and the `sim` runtime has no processes.
//! - The process runtime ([`runtime::process`]) gives each pod a network namespace on a node
//!   bridge only when running as root (else host networking, and pods whose host ports collide
//!   are refused); host ports are forwarded by a userspace TCP proxy instead of iptables DNAT
//!   (UDP host ports are reserved, not forwarded); CPU/memory limits need writable cgroups;
//!   exec probes run in the pod's network namespace but not in the container's cgroup.
//! - Events use the kubelet's reasons and messages.
//! - Node pressure is reported (conditions, so the node lifecycle controller taints the node)
//!   but pods are not evicted under pressure; soft thresholds and min-reclaim are not
//!   supported. Node-status events (`NodeHasInsufficientMemory`, …) are not recorded.
//!
//! ```
//! use orch_kubelet::runtime::{fake::FakeRuntime, ContainerRuntime};
//! use orch_kubelet::worker::{PodWorker, WorkerConfig};
//! use orch_types::clock::{Clock, ManualClock};
//! let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
//!     "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
//! })).unwrap();
//! let clock = ManualClock::at_epoch_seconds(1_700_000_000);
//! let rt = FakeRuntime::new();
//! let cfg = WorkerConfig { node_name: "n1".into(), host_ip: "127.0.0.1".into(), allow_privileged: false, dns: Default::default() };
//! let mut w = PodWorker::new(cfg, pod, clock.now());
//! w.tick(clock.now(), &rt);
//! let status = w.status(clock.now());
//! assert_eq!(status.phase.as_deref(), Some("Running"));
//! ```

pub mod auth;
pub mod backoff;
pub mod certificate;
pub mod dns;
pub mod env;
pub mod eviction;
pub mod image;
pub mod kubelet;
pub mod logs;
pub mod node;
pub mod pod_sync;
pub mod prober;
pub mod projected;
pub mod proxy;
pub mod runtime;
pub mod stats;
pub mod status;
pub mod streaming;
pub mod tls;
pub mod token;
pub mod volume;
pub mod worker;

pub use kubelet::{Kubelet, KubeletConfig, KubeletError};
