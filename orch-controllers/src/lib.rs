//! # orch-controllers — controller runtime and reconcilers
//!
//! Owns: informers (list + watch into an indexed local store), a rate-limited work queue,
//! expectations, the event recorder, and the reconcilers (ReplicaSet, ReplicationController,
//! Deployment, garbage collector, node lifecycle, namespace, endpoints, pod GC, node IPAM).
//! Reconcilers are synchronous functions of (object, cache view, clock) → actions. Talks to an
//! API server only through `orch_types::client::Client`; never depends on `orch-apiserver`.
