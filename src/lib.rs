//! # orch — a Kubernetes-compatible orchestrator
//!
//! The root package composes the crates (`orch-types`, `orch-apiserver`, `orch-scheduler`,
//! `orch-controllers`, `orch-kubelet`) into the `orch` CLI and an in-process cluster.

pub mod cli;
pub mod sim;
