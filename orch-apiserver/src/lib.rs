//! # orch-apiserver — storage, REST API, watch and clients
//!
//! Owns: the MVCC `Storage` trait and its backends (memory, embedded durable), the watch cache,
//! Kubernetes REST semantics for every kind in the `orch_types::registry`, admission (defaulting,
//! validation), and the in-process and HTTP implementations of `orch_types::client::Client`.

pub mod patch;
pub mod schema;
