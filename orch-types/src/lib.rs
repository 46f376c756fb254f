//! # orch-types — the API object model every other orch crate builds on
//!
//! Owns: the registry of built-in kinds ([`registry`]), [`DynamicObject`], API errors as
//! Kubernetes `Status` ([`status`]), the [`client::Client`] trait and its option types, the
//! [`clock::Clock`] trait, and (in their own modules) quantities, label and field selectors,
//! validation, defaulting, manifest decoding and image references.
//!
//! Wire structs of every kind come from `k8s-openapi`; this crate adds what apimachinery adds on
//! top. It must never depend on an HTTP stack, a storage engine or an async runtime: it is pure
//! data and logic, so that any program can `cargo add orch-types` cheaply.
//!
//! k8s-openapi needs exactly one Kubernetes version feature enabled by the final binary (orch
//! uses `v1_33`); add `k8s-openapi = { version = "0.29", features = ["v1_33"] }` beside it.
//!
//! ```
//! use orch_types::registry;
//! let deploy = registry::by_name("deploy")[0];
//! assert_eq!(deploy.api_version(), "apps/v1");
//! assert_eq!(deploy.api_resource().collection_path(Some("default")),
//!            "/apis/apps/v1/namespaces/default/deployments");
//! ```

pub mod client;
pub mod clock;
pub mod decode;
pub mod defaults;
pub mod dynamic;
pub mod events;
pub mod fields;
pub mod image;
pub mod intstr;
pub mod labels;
pub mod names;
pub mod node_selector;
pub mod quantity;
pub mod registry;
pub mod resources;
pub mod status;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod validation;

pub use dynamic::{DynamicObject, TypeMeta};
pub use k8s_openapi;
pub use registry::ApiResource;
pub use status::ApiError;
