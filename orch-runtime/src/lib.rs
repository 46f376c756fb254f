//! # orch-runtime — what every orch component shares (the kube-runtime analogue)
//!
//! Owns: object helpers (keys, owner and controller references: one implementation for the
//! scheduler, the controllers, the kubelet and the simulator), the reflector/informer and its
//! indexed [`store`] (one writer, many readers, `Arc` objects, relist on 410), the rate-limited
//! [`queue`], [`expectations`], the [`action::Applier`] of [`action::Action`]s (slow start,
//! expectations, events, field manager), and the [`controller`] declaration with its two
//! drivers: [`live`] (informers, tokio) and [`step`] (the simulator's, deterministic, on a
//! manual clock). [`custom`] makes a kind a CustomResourceDefinition defines a typed kind
//! like the built-in ones ([`custom_kind!`] on a `serde` struct), or names its resource for
//! dynamic controllers. [`volume`] holds the claim/volume matching rules the volume binder, the
//! scheduler and the kubelet share.
//!
//! Depends on `orch-types` only: never on the API server, the scheduler or any controller.
//!
//! ```
//! use orch_runtime::object::{controller_key, key_of};
//! use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
//! let m = ObjectMeta {
//!     name: Some("web-1".into()),
//!     namespace: Some("default".into()),
//!     owner_references: Some(vec![OwnerReference {
//!         kind: "ReplicaSet".into(), name: "web".into(), controller: Some(true),
//!         ..Default::default()
//!     }]),
//!     ..Default::default()
//! };
//! assert_eq!(key_of(&m), "default/web-1");
//! assert_eq!(controller_key(&m, "ReplicaSet").as_deref(), Some("default/web"));
//! assert_eq!(controller_key(&m, "Deployment"), None);
//! ```

pub mod action;
pub mod controller;
pub mod custom;
pub mod expectations;
pub mod informer;
pub mod live;
pub mod object;
pub mod queue;
pub mod step;
pub mod store;
#[cfg(test)]
mod testclient;
pub mod volume;

pub use action::{Action, Applier};
pub use controller::{Caches, Controller, Watches};

/// What [`custom_kind!`] expands to refers to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use k8s_openapi;
    pub use orch_types;
}
