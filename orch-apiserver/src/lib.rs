//! # orch-apiserver — storage, REST API, watch and clients
//!
//! Owns: the MVCC `Storage` trait and its backends (memory, embedded durable), the watch cache,
//! Kubernetes REST semantics for every kind in the `orch_types::registry`, admission (defaulting,
//! validation), and the in-process and HTTP implementations of `orch_types::client::Client`.

// `orch_types::ApiError` (the Kubernetes Status every operation answers with) is 184 bytes; errors
// are the cold path and the type is shared with every client, so it is not boxed here.
#![allow(clippy::result_large_err)]

pub mod admission;
pub mod bench;
pub mod cache;
pub mod client;
pub mod kubeconfig;
pub mod patch;
pub mod rest;
pub mod schema;
pub mod server;
pub mod storage;

pub use server::{serve, ApiServer, ApiServerConfig, ApiServerError, StorageConfig};
pub mod discovery;
pub mod openapi;
pub mod protobuf;
pub mod table;
