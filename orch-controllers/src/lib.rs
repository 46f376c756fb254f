//! # orch-controllers — controller runtime and reconcilers
//!
//! Owns: informers (list + watch into an indexed local store), a rate-limited work queue,
//! expectations, the event recorder, and the reconcilers (ReplicaSet, ReplicationController,
//! Deployment, garbage collector, node lifecycle, namespace, endpoints, pod GC, node IPAM).
//! Reconcilers are synchronous functions of (object, cache view, clock) → actions. Talks to an
//! API server only through `orch_types::client::Client`; never depends on `orch-apiserver`.
//!
//! Layout: the runtime is [`store`], [`informer`], [`queue`], [`expectations`] and [`action`];
//! each controller is one module with a pure `reconcile` core; [`manager`] wires cores to
//! informers and queues and applies their actions; [`leader`] is Lease leader election.
//!
//! ```
//! use orch_controllers::queue::RateLimiter;
//! use std::time::Duration;
//! let mut rl = RateLimiter::default();
//! // client-go's default: 5 ms for the first retry of a key, doubling after.
//! assert_eq!(rl.when("default/web", jiff::Timestamp::UNIX_EPOCH), Duration::from_millis(5));
//! assert_eq!(rl.when("default/web", jiff::Timestamp::UNIX_EPOCH), Duration::from_millis(10));
//! ```

pub mod controller_utils;
pub mod deployment;
pub mod endpoints;
pub mod garbagecollector;
pub mod leader;
pub mod manager;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
pub mod selector;
#[cfg(test)]
mod testutil;

pub use orch_runtime::action::Action;
