//! # orch-scheduler — scheduling framework, default plugins, preemption, explained decisions
//!
//! Owns: one trait per extension point ([`framework`]), the default plugins with upstream
//! kube-scheduler 1.33 semantics and weights ([`plugins`]), an incrementally updated cluster
//! [`snapshot`], the scheduling [`queue`], preemption, [`config`] (`KubeSchedulerConfiguration`)
//! and [`decision`]s that explain every node's filter result and score. The core is pure: no
//! I/O, no clock reads except through `orch_types::clock::Clock` (queue backoff). The
//! [`cycle`] is the decision step every executor shares (queue + snapshot + algorithm,
//! synchronous, effects returned as data); the [`driver`] executes it against any API server
//! through `orch_types::client::Client`, the simulator on a virtual clock; this crate never
//! depends on `orch-apiserver`.
//!
//! Hot path: pods are compiled once into [`pod_info::PodInfo`] (integer requests packed from
//! `orch_types::resources`, selectors compiled by `orch_types::labels`/`node_selector`),
//! nodes keep integer aggregates, and a filter that passes allocates nothing.
//!
//! ```
//! use k8s_openapi::api::core::v1::{Node, Pod};
//! use orch_scheduler::{pod_info::PodInfo, scheduler::Scheduler, snapshot::Snapshot};
//! let mut snap = Snapshot::new();
//! for (name, cpu) in [("small", "1"), ("big", "8")] {
//!     let n: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": name},
//!         "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}})).unwrap();
//!     snap.upsert_node(n).unwrap();
//! }
//! let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "web"},
//!     "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]}})).unwrap();
//! let mut sched = Scheduler::default();
//! let d = sched.schedule_and_assume(&PodInfo::new(pod).unwrap(), &mut snap);
//! assert_eq!(d.node(), Some("big"));
//! ```

pub mod bench;
pub mod config;
pub mod cycle;
pub mod cycle_state;
pub mod decision;
pub mod driver;
pub mod framework;
pub mod node_info;
pub mod plugins;
pub mod pod_index;
pub mod pod_info;
pub mod profile;
pub mod queue;
pub mod resources;
pub mod scheduler;
pub mod simulate;
pub mod snapshot;
pub mod status;

pub use cycle::{Attempt, Effect, SchedulingCycle};
pub use decision::{Decision, Outcome};
pub use scheduler::Scheduler;
pub use snapshot::Snapshot;
