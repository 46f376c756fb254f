//! # orch-apiserver — storage, REST API, watch and clients
//!
//! Owns: the MVCC `Storage` trait and its backends (memory, embedded durable), the watch cache,
//! Kubernetes REST semantics for every kind in the `orch_types::registry`, admission (defaulting,
//! validation), and the in-process and HTTP implementations of `orch_types::client::Client`.
//! It must never depend on the scheduler, controllers or kubelet: they reach it only through the
//! `Client` trait.
//!
//! Layout: [`storage`] (the etcd-shaped MVCC trait, memory and embedded backends) → [`cache`]
//! (watch cache) → [`rest`] (Kubernetes semantics, independent of HTTP; `rest::router` maps HTTP
//! onto it) → [`client`] (in-process and HTTP clients). See `docs/design/storage.md`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use orch_apiserver::{ApiServer, ApiServerConfig};
//! use orch_types::client::{ListParams, PostParams};
//! use orch_types::{registry, DynamicObject};
//! let api = ApiServer::new(ApiServerConfig::memory()).unwrap();
//! let client = api.client(); // in-process: no HTTP, no JSON
//! let cm = registry::by_name("cm")[0].api_resource();
//! let created = client
//!     .create(&cm, Some("default"), &DynamicObject::new("v1", "ConfigMap", "a"), &PostParams::default())
//!     .await
//!     .unwrap();
//! assert!(created.metadata.uid.is_some());
//! let list = client.list(&cm, Some("default"), &ListParams::default()).await.unwrap();
//! assert_eq!(list.items.len(), 1);
//! // Serve it over HTTP with `orch_apiserver::serve(api, listener, shutdown)`.
//! # }
//! ```

// `orch_types::ApiError` (the Kubernetes Status every operation answers with) is 184 bytes; errors
// are the cold path and the type is shared with every client, so it is not boxed here.
#![allow(clippy::result_large_err)]

pub mod admission;
pub mod aggregator;
pub mod bench;
pub mod cache;
pub mod certificates;
pub mod client;
pub mod conversion;
pub mod crd;
pub mod fieldmanager;
pub mod flowcontrol;
pub mod health;
pub mod kubeconfig;
pub mod kubelet_client;
pub mod kubernetes_service;
pub mod patch;
pub mod pki;
pub mod rest;
pub mod schema;
pub mod server;
pub mod service_alloc;
pub mod serviceaccount;
pub mod storage;
pub mod webhook;

pub use server::{
    listen, serve, serve_tls, ApiServer, ApiServerConfig, ApiServerError, StorageConfig,
};
pub mod apply;
pub mod auth;
pub mod discovery;
pub mod metrics;
pub mod openapi;
pub mod protobuf;
pub mod subresources;
pub mod table;
#[cfg(test)]
mod test_router;
#[cfg(test)]
mod test_tls;
pub mod tls;
