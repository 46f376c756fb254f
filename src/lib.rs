//! # orch — a Kubernetes-compatible orchestrator
//!
//! The root package composes the crates (`orch-types`, `orch-apiserver`, `orch-scheduler`,
//! `orch-controllers`, `orch-kubelet`) into the `orch` CLI and an in-process cluster.
//!
//! ## An in-process cluster: [`Cluster`]
//!
//! [`Cluster`] starts the API server (memory or embedded store), the scheduler, the controller
//! manager and N kubelets (process or sim runtime) in this process, and hands back the
//! in-process client, the HTTP address and a kubeconfig. With the memory store and the sim
//! runtime it starts in milliseconds (`orch bench startup`), so Rust programs can use it in
//! their own tests the way Go programs use envtest:
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::{ConfigMap, Node};
//! use orch::{Cluster, Runtime, Storage};
//! use orch_types::client::{Api, ListParams};
//!
//! let cluster = Cluster::builder()
//!     .storage(Storage::Memory)
//!     .runtime(Runtime::Sim)
//!     .nodes(2)
//!     .start()
//!     .await?;
//! let nodes: Api<Node> = Api::all(cluster.client());
//! assert_eq!(nodes.list(&ListParams::default()).await?.items.len(), 2);
//!
//! let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
//! let cm: ConfigMap = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "settings"}, "data": {"colour": "blue"}
//! }))?;
//! cms.create(&cm).await?;
//!
//! // kubectl works too: `KUBECONFIG=<this path> kubectl get configmaps`.
//! assert!(cluster.kubeconfig().is_some() && cluster.addr().is_some());
//! cluster.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod bench;
pub mod cli;
pub mod cluster;
pub mod dns;
pub mod exec_bench;
pub mod images;
pub mod scheduler_bench;
pub mod sim;

pub use cluster::{Cluster, ClusterBuilder, ClusterError, Runtime, Storage};
