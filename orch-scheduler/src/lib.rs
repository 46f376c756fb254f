//! # orch-scheduler — scheduling framework, default plugins, preemption, explained decisions
//!
//! Owns: one trait per extension point, the default plugins with upstream kube-scheduler 1.33
//! semantics, an incrementally updated cluster snapshot, the scheduling queue, preemption, and
//! [`Decision`]s that explain every node's filter result and score. Pure: no I/O, time from
//! `orch_types::clock::Clock`. Talks to an API server only through `orch_types::client::Client`
//! in its driver; never depends on `orch-apiserver`.
