//! # orch-controllers — the controllers of kube-controller-manager
//!
//! Owns: one file per controller, each a pure reconciler (object + cache view + clock →
//! [`Action`]s) and its declaration on orch-runtime ([`orch_runtime::Controller`]: what it
//! watches, how a change maps to keys, `sync`): ReplicaSet and ReplicationController
//! ([`replicaset`]), [`deployment`], [`daemonset`] and [`statefulset`] (with their revision
//! [`history`]), [`job`] (and [`ttlafterfinished`], [`cronjob`]), [`volume`] (claim binding and
//! local provisioning),
//! [`disruption`] (PodDisruptionBudget status), [`resourcequota`] (ResourceQuota usage), [`podautoscaler`] (HorizontalPodAutoscaler,
//! reading targets through [`scale`]), [`garbagecollector`], [`nodelifecycle`] (and
//! taint eviction), [`namespace`], [`endpoints`] and [`endpointslice`] (sharing
//! [`endpointutil`]), [`endpointslicemirroring`], [`podgc`], [`nodeipam`], [`serviceaccount`]
//! (the `default` ServiceAccount of each namespace), [`rootcacertpublisher`] (the
//! `kube-root-ca.crt` ConfigMap of each namespace), [`clusterroleaggregation`] (the rules of
//! ClusterRoles with an `aggregationRule`), [`certificates`] (CertificateSigningRequest
//! approval, signing and cleanup). [`manager`]
//! registers them by their upstream names and runs them with orch-runtime's live driver; the
//! simulator runs the same list with the steppable driver. [`leader`] is Lease leader
//! election.
//!
//! Talks to an API server only through `orch_types::client::Client`; never depends on
//! `orch-apiserver`, and holds no runtime machinery of its own (informers, queues, the
//! Applier live in orch-runtime).
//!
//! Storage: [`volume`] (`persistentvolume-binder`) binds PersistentVolumeClaims to
//! PersistentVolumes and provisions node-local volumes for the `orch.dev/local` class.
//!
//! ```
//! use orch_controllers::manager::{controllers, ManagerConfig, ALL_CONTROLLERS};
//! let all = controllers(&ManagerConfig::default()).unwrap();
//! assert_eq!(all.len(), ALL_CONTROLLERS.len());
//! assert_eq!(all[0].name(), "replicaset");
//! assert_eq!(all[0].component(), "replicaset-controller");
//! ```

pub mod certificates;
pub mod clusterroleaggregation;
pub mod controller_utils;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod endpointutil;
pub mod garbagecollector;
pub mod history;
pub mod job;
pub mod leader;
pub mod manager;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podautoscaler;
pub mod podgc;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacertpublisher;
pub mod scale;
pub mod selector;
pub mod serviceaccount;
pub mod statefulset;
#[cfg(test)]
mod testutil;
pub mod ttlafterfinished;
pub mod volume;

pub use orch_runtime::action::Action;
