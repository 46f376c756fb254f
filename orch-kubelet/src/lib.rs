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
//! and heartbeats, and serves logs.
//!
//! Modules: [`runtime`] (the trait, [`runtime::fake`], [`runtime::sim`] with its documented
//! `sim.orch.dev/*` annotations, [`runtime::process`]), [`image`] (the `ImageSource` trait and
//! the local catalog), [`prober`] (exec/httpGet/tcpSocket), [`node`] (Node object, capacity,
//! allocatable, admission), [`logs`] (CRI log reading and the `/containerLogs` endpoint).
//!
//! Deviations from upstream, on purpose or for now:
//! - The process runtime uses host networking only (no per-pod network namespace, no cgroup
//!   limits, so no OOMKilled from it); pods whose host ports collide are refused.
//! - Sandboxes are never recreated, so init containers do not re-run for that reason.
//! - Probes of type `grpc` are ignored; events use the kubelet's reasons and messages.
//! - Node conditions are always healthy (no eviction manager).
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
//! let cfg = WorkerConfig { node_name: "n1".into(), host_ip: "127.0.0.1".into(), allow_privileged: false };
//! let mut w = PodWorker::new(cfg, pod, clock.now());
//! w.tick(clock.now(), &rt);
//! let status = w.status(clock.now());
//! assert_eq!(status.phase.as_deref(), Some("Running"));
//! ```

pub mod backoff;
pub mod env;
pub mod eviction;
pub mod image;
pub mod kubelet;
pub mod logs;
pub mod node;
pub mod prober;
pub mod runtime;
pub mod status;
pub mod worker;

pub use kubelet::{Kubelet, KubeletConfig, KubeletError};
