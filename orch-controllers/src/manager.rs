//! [`ControllerManager`]: kube-controller-manager. Every controller is a declaration on
//! orch-runtime ([`Controller`]), registered here by its upstream name ([`controllers`]); the
//! manager runs the enabled ones with orch-runtime's live driver, and the simulator runs the
//! same list with the steppable driver.
//!
//! ```no_run
//! # async fn f(client: orch_types::client::SharedClient) -> Result<(), orch_controllers::manager::ManagerError> {
//! use orch_controllers::manager::{ControllerManager, ManagerConfig};
//! let clock = std::sync::Arc::new(orch_types::clock::SystemClock);
//! let cm = ControllerManager::new(client, clock, ManagerConfig::default())?;
//! cm.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

use crate::certificates::approver::CsrApprovingController;
use crate::certificates::cleaner::CsrCleanerController;
use crate::certificates::signer::{ClusterSigning, CsrSigningController};
use crate::clusterroleaggregation::ClusterRoleAggregationController;
use crate::cronjob::CronJobController;
use crate::daemonset::DaemonSetController;
use crate::deployment::DeploymentController;
use crate::disruption::DisruptionController;
use crate::endpoints::EndpointsController;
use crate::endpointslice::EndpointSliceController;
use crate::endpointslicemirroring::EndpointSliceMirroringController;
use crate::garbagecollector::GarbageCollector;
use crate::job::JobController;
use crate::namespace::NamespaceController;
use crate::nodeipam::{IpamError, NodeIpamController};
use crate::nodelifecycle::{NodeLifecycleConfig, NodeLifecycleController, TaintEvictionController};
use crate::podautoscaler::{HorizontalController, HpaConfig};
use crate::podgc::{PodGcConfig, PodGcController};
use crate::replicaset::WorkloadController;
use crate::resourcequota::ResourceQuotaController;
use crate::rootcacertpublisher::RootCaCertPublisher;
use crate::serviceaccount::ServiceAccountsController;
use crate::statefulset::StatefulSetController;
use crate::ttlafterfinished::TtlAfterFinishedController;
use crate::volume::PersistentVolumeController;
use orch_runtime::controller::Controller;
use orch_runtime::live::{self, LiveConfig};
use orch_types::client::SharedClient;
use orch_types::clock::SharedClock;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Every controller name `--controllers` accepts (upstream names), in the order they run.
pub const ALL_CONTROLLERS: &[&str] = &[
    "replicaset",
    "replicationcontroller",
    "deployment",
    "daemonset",
    "statefulset",
    "job",
    "cronjob",
    "ttl-after-finished",
    "disruption",
    "resourcequota",
    "horizontalpodautoscaling",
    "garbagecollector",
    "nodelifecycle",
    "taint-eviction-controller",
    "namespace",
    "endpoints",
    "endpointslice",
    "endpointslicemirroring",
    "podgc",
    "nodeipam",
    "persistentvolume-binder",
    "serviceaccount",
    "root-ca-cert-publisher",
    "csrapproving",
    "csrsigning",
    "csrcleaner",
    "clusterrole-aggregation",
];

/// Configuration of the controller manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Controllers to run (names from [`ALL_CONTROLLERS`]).
    pub controllers: Vec<String>,
    /// Workers per queued controller (`--concurrent-*-syncs`, upstream default 5).
    pub workers: usize,
    /// Node lifecycle settings (`--node-monitor-grace-period`, eviction rates).
    pub node_lifecycle: NodeLifecycleConfig,
    /// `--node-monitor-period`.
    pub node_monitor_period: Duration,
    /// Pod GC settings.
    pub pod_gc: PodGcConfig,
    /// `--cluster-cidr`.
    pub cluster_cidr: String,
    /// `--node-cidr-mask-size`.
    pub node_cidr_mask: u8,
    /// Informer resync period.
    pub resync: Duration,
    /// HorizontalPodAutoscaler settings (`--horizontal-pod-autoscaler-*`).
    pub hpa: HpaConfig,
    /// `--resource-quota-sync-period`: how often every quota is recounted.
    pub resource_quota_sync: Duration,
    /// `--root-ca-file`'s PEM: the cluster CA bundle the `root-ca-cert-publisher` puts in each
    /// namespace's `kube-root-ca.crt` (empty: no CA, an empty `ca.crt` is published).
    pub root_ca: String,
    /// `--cluster-signing-cert-file`/`--cluster-signing-key-file`/`--cluster-signing-duration`:
    /// the CA `csrsigning` issues certificates with (`None`: it issues none).
    pub cluster_signing: Option<ClusterSigning>,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            controllers: ALL_CONTROLLERS.iter().map(|s| s.to_string()).collect(),
            workers: 5,
            node_lifecycle: NodeLifecycleConfig::default(),
            node_monitor_period: Duration::from_secs(5),
            pod_gc: PodGcConfig::default(),
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask: 24,
            resync: Duration::from_secs(600),
            hpa: HpaConfig::default(),
            resource_quota_sync: crate::resourcequota::DEFAULT_SYNC_PERIOD,
            root_ca: String::new(),
            cluster_signing: None,
        }
    }
}

/// Errors starting the controller manager.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// `--controllers` named something unknown.
    #[error("unknown controller {0:?} (known: {known})", known = ALL_CONTROLLERS.join(", "))]
    UnknownController(String),
    /// Bad `--cluster-cidr` / mask.
    #[error(transparent)]
    Ipam(#[from] IpamError),
}

/// Parses `--controllers a,b,-c,*` like kube-controller-manager (`*` = all, `-x` disables).
pub fn parse_controllers(spec: &str) -> Result<Vec<String>, ManagerError> {
    let mut on: BTreeSet<String> = BTreeSet::new();
    let mut off: BTreeSet<String> = BTreeSet::new();
    for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if part == "*" {
            on.extend(ALL_CONTROLLERS.iter().map(|s| s.to_string()));
            continue;
        }
        let (neg, name) = match part.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, part),
        };
        if !ALL_CONTROLLERS.contains(&name) {
            return Err(ManagerError::UnknownController(name.into()));
        }
        if neg {
            off.insert(name.into());
        } else {
            on.insert(name.into());
        }
    }
    if on.is_empty() && !off.is_empty() {
        on.extend(ALL_CONTROLLERS.iter().map(|s| s.to_string()));
    }
    Ok(ALL_CONTROLLERS
        .iter()
        .map(|s| s.to_string())
        .filter(|s| on.contains(s) && !off.contains(s))
        .collect())
}

/// The declaration of controller `name` (one of [`ALL_CONTROLLERS`]) configured by `config`.
pub fn controller(name: &str, config: &ManagerConfig) -> Result<Arc<dyn Controller>, ManagerError> {
    Ok(match name {
        "replicaset" => Arc::new(WorkloadController::replica_sets()),
        "replicationcontroller" => Arc::new(WorkloadController::replication_controllers()),
        "deployment" => Arc::new(DeploymentController),
        "daemonset" => Arc::new(DaemonSetController::default()),
        "statefulset" => Arc::new(StatefulSetController::default()),
        "job" => Arc::new(JobController::default()),
        "cronjob" => Arc::new(CronJobController),
        "ttl-after-finished" => Arc::new(TtlAfterFinishedController),
        "disruption" => Arc::new(DisruptionController),
        "resourcequota" => Arc::new(ResourceQuotaController {
            sync_period: config.resource_quota_sync,
        }),
        "horizontalpodautoscaling" => Arc::new(HorizontalController::new(config.hpa.clone())),
        "garbagecollector" => Arc::new(GarbageCollector),
        "nodelifecycle" => Arc::new(NodeLifecycleController::new(
            config.node_lifecycle.clone(),
            config.node_monitor_period,
        )),
        "taint-eviction-controller" => {
            Arc::new(TaintEvictionController::new(config.node_monitor_period))
        }
        "namespace" => Arc::new(NamespaceController),
        "endpoints" => Arc::new(EndpointsController),
        "endpointslice" => Arc::new(EndpointSliceController::default()),
        "endpointslicemirroring" => Arc::new(EndpointSliceMirroringController::default()),
        "podgc" => Arc::new(PodGcController::new(config.pod_gc.clone())),
        "nodeipam" => Arc::new(NodeIpamController::new(
            &config.cluster_cidr,
            config.node_cidr_mask,
        )?),
        "persistentvolume-binder" => Arc::new(PersistentVolumeController::default()),
        "serviceaccount" => Arc::new(ServiceAccountsController),
        "root-ca-cert-publisher" => Arc::new(RootCaCertPublisher {
            root_ca: config.root_ca.clone(),
        }),
        "clusterrole-aggregation" => Arc::new(ClusterRoleAggregationController),
        "csrapproving" => Arc::new(CsrApprovingController),
        "csrsigning" => Arc::new(CsrSigningController {
            signing: config.cluster_signing.clone(),
        }),
        "csrcleaner" => Arc::new(CsrCleanerController),
        other => return Err(ManagerError::UnknownController(other.into())),
    })
}

/// The declarations of every controller `config` enables, in [`ALL_CONTROLLERS`] order: what
/// the live manager runs, and what the simulator runs.
pub fn controllers(config: &ManagerConfig) -> Result<Vec<Arc<dyn Controller>>, ManagerError> {
    for c in &config.controllers {
        if !ALL_CONTROLLERS.contains(&c.as_str()) {
            return Err(ManagerError::UnknownController(c.clone()));
        }
    }
    ALL_CONTROLLERS
        .iter()
        .filter(|n| config.controllers.iter().any(|c| c == *n))
        .map(|n| controller(n, config))
        .collect()
}

/// Runs the enabled controllers against one API.
pub struct ControllerManager {
    client: SharedClient,
    clock: SharedClock,
    config: ManagerConfig,
    controllers: Vec<Arc<dyn Controller>>,
}

impl std::fmt::Debug for ControllerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ControllerManager {
    /// A manager; fails on bad configuration.
    pub fn new(
        client: SharedClient,
        clock: SharedClock,
        config: ManagerConfig,
    ) -> Result<Self, ManagerError> {
        let controllers = controllers(&config)?;
        Ok(Self {
            client,
            clock,
            config,
            controllers,
        })
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let config = LiveConfig {
            workers: self.config.workers.max(1),
            resync: Some(self.config.resync),
            ..LiveConfig::default()
        };
        live::run(self.client, self.clock, self.controllers, config, shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_types::client::{ClientError, ListParams};
    use orch_types::registry::ApiResource;
    use orch_types::DynamicObject;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn run_future_is_send_so_it_can_be_spawned() {
        let api: SharedClient = Arc::new(NoApi);
        let cm = ControllerManager::new(
            api,
            Arc::new(orch_types::clock::SystemClock),
            ManagerConfig::default(),
        )
        .unwrap();
        let fut = cm.run(async {});
        assert_send(&fut);
    }

    /// A client that is never called (the future above is not polled).
    struct NoApi;
    #[async_trait::async_trait]
    impl orch_types::client::Client for NoApi {
        async fn get(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &str,
        ) -> orch_types::client::Result<DynamicObject> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn list(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &ListParams,
        ) -> orch_types::client::Result<orch_types::client::ObjectList<DynamicObject>> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn create(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &DynamicObject,
            _: &orch_types::client::PostParams,
        ) -> orch_types::client::Result<DynamicObject> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn update(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &DynamicObject,
            _: &orch_types::client::PostParams,
        ) -> orch_types::client::Result<DynamicObject> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn update_status(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &DynamicObject,
            _: &orch_types::client::PostParams,
        ) -> orch_types::client::Result<DynamicObject> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn patch(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &str,
            _: Option<&str>,
            _: &orch_types::client::Patch,
            _: &orch_types::client::PatchParams,
        ) -> orch_types::client::Result<DynamicObject> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn delete(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &str,
            _: &orch_types::client::DeleteParams,
        ) -> orch_types::client::Result<orch_types::client::DeleteOutcome> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn create_subresource(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &str,
            _: &str,
            _: &DynamicObject,
        ) -> orch_types::client::Result<DynamicObject> {
            Err(ClientError::Transport("unused".into()))
        }
        async fn watch(
            &self,
            _: &ApiResource,
            _: Option<&str>,
            _: &orch_types::client::WatchParams,
        ) -> orch_types::client::Result<orch_types::client::WatchStream<DynamicObject>> {
            Err(ClientError::Transport("unused".into()))
        }
    }

    #[test]
    fn controllers_flag_like_kube_controller_manager() {
        assert_eq!(parse_controllers("*").unwrap().len(), ALL_CONTROLLERS.len());
        assert_eq!(
            parse_controllers("deployment,replicaset").unwrap(),
            ["replicaset", "deployment"]
        );
        let all_but = parse_controllers("*,-podgc").unwrap();
        assert!(
            !all_but.contains(&"podgc".to_string()) && all_but.len() == ALL_CONTROLLERS.len() - 1
        );
        assert!(
            matches!(parse_controllers("bogus"), Err(ManagerError::UnknownController(n)) if n == "bogus")
        );
    }
}
