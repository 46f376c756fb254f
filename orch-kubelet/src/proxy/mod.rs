//! The service proxy: traffic to a Service's cluster IP, external IPs and node ports reaches
//! one of its ready endpoints through the kernel's packet filter (nftables), as kube-proxy's
//! `nftables` mode does; no userspace copy loop.
//!
//! - [`model`] turns Services and their endpoints (from EndpointSlices when the API serves
//!   them, else from Endpoints, behind [`model::EndpointsSource`]) into plain data;
//! - [`rules`] generates the ruleset from it (pure, snapshot-tested);
//! - [`nft`] applies it with `nft -f -`, one atomic transaction per sync;
//! - [`Proxy`] is the driver: informers of Services and endpoints, a sync after each change
//!   but at most one per [`ProxyConfig::min_sync_period`] (kube-proxy's `--min-sync-period`),
//!   a full one every [`ProxyConfig::sync_period`] (`--sync-period`), and the table deleted on
//!   stop.
//!
//! One proxy per host: every kubelet of one machine shares its netfilter. Each cluster gets
//! its own table ([`table_name`]), so several clusters on one host (tests) do not clash, as
//! long as their service IP ranges differ (a host process connecting to a service IP goes
//! through every table). Needs root; without it, or without `nft`, [`Nft::detect`] says why.

pub mod bench;
pub mod model;
pub mod nft;
pub mod rules;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use model::{Endpoint, EndpointsSource, Protocol};
pub use nft::Nft;
use orch_runtime::informer::Informer;
use orch_runtime::store::Store;
use orch_types::client::{ListParams, SharedClient};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use rules::{RuleOptions, Ruleset};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// Settings of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The nftables table (see [`table_name`]).
    pub table: String,
    /// `--nodeport-addresses`: CIDRs of the node addresses that serve node ports (empty: all
    /// but loopback).
    pub nodeport_addresses: Vec<String>,
    /// Full re-sync period (kube-proxy's `--sync-period`, 30 s).
    pub sync_period: Duration,
    /// Least time between two syncs (kube-proxy's `--min-sync-period`, 1 s).
    pub min_sync_period: Duration,
}

impl ProxyConfig {
    /// kube-proxy's defaults, table of cluster `cluster`.
    pub fn new(cluster: &str) -> Self {
        Self {
            table: table_name(cluster),
            nodeport_addresses: vec![],
            sync_period: Duration::from_secs(30),
            min_sync_period: Duration::from_secs(1),
        }
    }
}

/// The table of a cluster: `orch-` and a hash of `cluster` (its data dir's absolute path, or
/// the name given with `--cluster-name`).
pub fn table_name(cluster: &str) -> String {
    format!(
        "orch-{}",
        crate::runtime::process::netns::short_hash(cluster)
    )
}

/// Errors of the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The packet filter cannot be programmed here.
    #[error("service proxy unavailable: {0}")]
    Unavailable(String),
}

/// Endpoints from core/v1 Endpoints.
struct FromEndpoints(Store<Endpoints>);

impl EndpointsSource for FromEndpoints {
    fn endpoints(&self, ns: &str, name: &str, port: &str, protocol: Protocol) -> Vec<Endpoint> {
        self.0
            .get_in(Some(ns), name)
            .map(|ep| model::from_endpoints(&ep, port, protocol))
            .unwrap_or_default()
    }
}

/// Endpoints from discovery.k8s.io/v1 EndpointSlices, grouped by Service.
struct FromSlices(HashMap<(String, String), Vec<EndpointSlice>>);

impl FromSlices {
    fn index(store: &Store<DynamicObject>) -> Self {
        let mut by_service: HashMap<(String, String), Vec<EndpointSlice>> = HashMap::new();
        for d in store.list() {
            let Ok(slice) = d.to_typed::<EndpointSlice>() else {
                continue;
            };
            let svc = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(model::SERVICE_NAME_LABEL))
                .cloned();
            if let (Some(ns), Some(svc)) = (slice.metadata.namespace.clone(), svc) {
                by_service.entry((ns, svc)).or_default().push(slice);
            }
        }
        Self(by_service)
    }
}

impl EndpointsSource for FromSlices {
    fn endpoints(&self, ns: &str, name: &str, port: &str, protocol: Protocol) -> Vec<Endpoint> {
        self.0
            .get(&(ns.to_string(), name.to_string()))
            .map(|s| model::from_slices(&s.iter().collect::<Vec<_>>(), port, protocol))
            .unwrap_or_default()
    }
}

/// Resolves when `stop` turns true (the guard `wait_for` returns is not held across awaits).
async fn stopped_now(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

/// A change handler that wakes the sync loop.
fn notifier<K: orch_runtime::object::Object>(
    n: &Arc<Notify>,
) -> orch_runtime::informer::Handler<K> {
    let n = n.clone();
    Arc::new(move |_| n.notify_one())
}

/// Where endpoints come from.
enum Source {
    Endpoints(Store<Endpoints>),
    Slices(Store<DynamicObject>),
}

/// The proxy of one cluster on this host.
pub struct Proxy {
    client: SharedClient,
    config: ProxyConfig,
    nft: Nft,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy of the cluster `client` talks to; refuses when nftables cannot be programmed
    /// here (not root, no `nft`).
    pub fn new(client: SharedClient, config: ProxyConfig) -> Result<Self, ProxyError> {
        let nft = Nft::detect().map_err(ProxyError::Unavailable)?;
        Ok(Self::with_nft(client, config, nft))
    }

    /// A proxy applying its rules with `nft` (e.g. [`Nft::in_netns`]).
    pub fn with_nft(client: SharedClient, config: ProxyConfig, nft: Nft) -> Self {
        Self {
            client,
            config,
            nft,
        }
    }

    /// Runs until `stop` turns true, then deletes the cluster's table.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        nft::enable_forwarding();
        let (nft, table) = (self.nft.clone(), self.config.table.clone());
        let _ = tokio::task::spawn_blocking(move || {
            nft::remove_stale_tables(&nft);
            nft::claim_table(&table);
        })
        .await;
        let changed = Arc::new(Notify::new());
        let stopped = |s: &watch::Receiver<bool>| {
            let mut s = s.clone();
            async move {
                let _ = s.wait_for(|v| *v).await;
            }
        };
        let mut services =
            Informer::<Service>::new(self.client.clone(), ApiResource::of::<Service>());
        services.on_change(notifier(&changed));
        let service_store = services.store();
        let mut tasks = vec![tokio::spawn(services.run(stopped(&stop)))];
        let slices = ApiResource::of::<EndpointSlice>();
        let probe = ListParams {
            limit: Some(1),
            ..Default::default()
        };
        let source = if self.client.list(&slices, None, &probe).await.is_ok() {
            let mut i = Informer::<DynamicObject>::new(self.client.clone(), slices);
            i.on_change(notifier(&changed));
            let store = i.store();
            tasks.push(tokio::spawn(i.run(stopped(&stop))));
            tracing::info!("service proxy: endpoints from EndpointSlices");
            Source::Slices(store)
        } else {
            let mut i =
                Informer::<Endpoints>::new(self.client.clone(), ApiResource::of::<Endpoints>());
            i.on_change(notifier(&changed));
            let store = i.store();
            tasks.push(tokio::spawn(i.run(stopped(&stop))));
            tracing::info!("service proxy: EndpointSlices not served, endpoints from Endpoints");
            Source::Endpoints(store)
        };
        let synced = |s: &Source| match s {
            Source::Endpoints(e) => e.is_synced(),
            Source::Slices(e) => e.is_synced(),
        };
        // first sync once both caches are filled
        while !(service_store.is_synced() && synced(&source)) {
            tokio::select! {
                _ = stopped_now(&mut stop) => return self.finish(tasks).await,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        let mut previous: Option<Ruleset> = None;
        loop {
            let started = Instant::now();
            previous = self.sync(&service_store, &source, previous).await;
            // the next sync: on a change, no sooner than min_sync_period; else after sync_period
            // (after a failure: retry then)
            let due = started + self.config.min_sync_period;
            if previous.is_some() {
                tokio::select! {
                    _ = stopped_now(&mut stop) => break,
                    _ = changed.notified() => {}
                    _ = tokio::time::sleep(self.config.sync_period) => {}
                }
            }
            tokio::select! {
                _ = stopped_now(&mut stop) => break,
                _ = tokio::time::sleep_until(due.into()) => {}
            }
        }
        self.finish(tasks).await;
    }

    /// One sync: the rules of the caches' Services, applied as one transaction; returns what
    /// is now in the kernel (`None` after a failure: the next sync rewrites the table).
    async fn sync(
        &self,
        services: &Store<Service>,
        source: &Source,
        previous: Option<Ruleset>,
    ) -> Option<Ruleset> {
        let t0 = Instant::now();
        let all = services.list();
        let refs: Vec<&Service> = all.iter().map(|s| s.as_ref()).collect();
        let ports = match source {
            Source::Endpoints(store) => model::service_ports(&refs, &FromEndpoints(store.clone())),
            Source::Slices(store) => model::service_ports(&refs, &FromSlices::index(store)),
        };
        let options = RuleOptions {
            table: self.config.table.clone(),
            nodeport_addresses: self.config.nodeport_addresses.clone(),
        };
        let ruleset = rules::generate(&ports, &options);
        let text = ruleset.transaction(&self.config.table, previous.as_ref());
        let generated = t0.elapsed();
        let nft = self.nft.clone();
        let applied = tokio::task::spawn_blocking(move || nft.apply(&text)).await;
        match applied {
            Ok(Ok(())) => {
                tracing::debug!(
                    ports = ports.len(),
                    endpoints = ruleset.endpoints,
                    ?generated,
                    total = ?t0.elapsed(),
                    "service proxy: rules synced"
                );
                Some(ruleset)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "service proxy: applying the rules failed; the next sync rewrites the table");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "service proxy: sync task failed");
                None
            }
        }
    }

    async fn finish(&self, tasks: Vec<tokio::task::JoinHandle<()>>) {
        for t in tasks {
            let _ = t.await;
        }
        let nft = self.nft.clone();
        let text = rules::cleanup(&self.config.table);
        match tokio::task::spawn_blocking(move || nft.apply(&text)).await {
            Ok(Ok(())) => {
                nft::release_table(&self.config.table);
                tracing::info!(table = %self.config.table, "service proxy: rules removed")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "service proxy: cannot remove its table"),
            Err(_) => {}
        }
    }
}
