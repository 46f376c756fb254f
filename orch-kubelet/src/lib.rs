//! # orch-kubelet — the node agent
//!
//! Owns: node registration and Lease heartbeats, the pod worker state machine (init containers,
//! hooks, probes, restart back-off, phases and conditions, graceful termination), logs, and the
//! `ContainerRuntime` trait with the `process` and `sim` runtimes. Talks to an API server only
//! through `orch_types::client::Client`; never depends on `orch-apiserver`.
