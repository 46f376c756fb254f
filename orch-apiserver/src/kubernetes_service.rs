//! The `kubernetes` Service: `default/kubernetes` with the cluster's first service IP and port
//! `https` 443, and its Endpoints listing every live API server, as kube-apiserver's
//! controlplane controller publishes them (`pkg/controlplane/controller/kubernetesservice`) with
//! the lease endpoint reconciler (`pkg/controlplane/reconcilers/lease.go`).
//!
//! Each API server keeps a record of its advertised address under `/masterleases/ADDR` in
//! storage with a TTL ([`KubernetesServiceConfig::lease_ttl`], 15 s as upstream's
//! `--endpoint-reconciler-type=lease`), renewed every [`KubernetesServiceConfig::interval`]
//! (10 s); the Endpoints list the addresses of the records still there, so several API servers
//! on one etcd all appear and one that stops disappears: at once when it shuts down (it removes
//! its record), after the TTL when it dies. The records are outside `/registry/`, so no API
//! and no watch serves them.
//!
//! Upstream keys records by IP only (every API server listens on the same secure port); orch
//! keys them by `IP:port`, so that several API servers on one machine (tests) are told apart,
//! and packs the addresses into one subset per port. The `kubernetes` EndpointSlice is written
//! beside the Endpoints ([`slice`]), from their first subset as upstream's adapter does. Routing
//! the service IP to the endpoints is the service proxy's job.

use crate::server::ApiServer;
use crate::storage::{ListOptions, StorageError, WriteOp};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use orch_types::client::Api;
use orch_types::DynamicObject;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The Service's name (in `default`).
pub const NAME: &str = "kubernetes";

/// Where the records of live API servers are kept (upstream's `/masterleases/`).
pub const LEASES_PREFIX: &str = "/masterleases/";

/// Label upstream puts on the Endpoints so the EndpointSlice mirroring controller leaves them
/// alone.
const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";

/// What an API server publishes as (one endpoint of) the `kubernetes` Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesServiceConfig {
    /// The address other components reach this API server at (upstream `--advertise-address`).
    pub advertise_address: IpAddr,
    /// Its HTTPS port (upstream `--secure-port`), the Service's target port.
    pub secure_port: u16,
    /// The Service's cluster IP: the first address of the service range
    /// ([`crate::pki::KUBERNETES_SERVICE_IP`]).
    pub service_ip: String,
    /// A record not renewed this long is gone (15 s).
    pub lease_ttl: Duration,
    /// How often the Service, the record and the Endpoints are reconciled (10 s).
    pub interval: Duration,
}

impl KubernetesServiceConfig {
    /// For an API server listening on `listen`: advertised at its IP, or, when it listens on
    /// every address, at the host's outbound address ([`advertise_address`]).
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            advertise_address: advertise_address(listen.ip()),
            secure_port: listen.port(),
            service_ip: crate::pki::KUBERNETES_SERVICE_IP.to_string(),
            lease_ttl: Duration::from_secs(15),
            interval: Duration::from_secs(10),
        }
    }

    /// The advertised `IP:port`.
    pub fn endpoint(&self) -> SocketAddr {
        SocketAddr::new(self.advertise_address, self.secure_port)
    }
}

/// The address to advertise for a server bound to `bind`: `bind` itself unless it is the
/// unspecified address, else the source address of the host's default route (as upstream picks
/// the default-route interface's address, `utilnet.ChooseHostInterface`), else loopback.
pub fn advertise_address(bind: IpAddr) -> IpAddr {
    if !bind.is_unspecified() {
        return bind;
    }
    // A UDP "connection" sends nothing: it only asks the kernel for the route's source.
    let probe = match bind {
        IpAddr::V4(_) => ("0.0.0.0:0", "192.0.2.1:9"),
        IpAddr::V6(_) => ("[::]:0", "[2001:db8::1]:9"),
    };
    let routed = std::net::UdpSocket::bind(probe.0)
        .and_then(|s| s.connect(probe.1).and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified());
    routed.unwrap_or(match bind {
        IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(_) => IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
    })
}

/// The `kubernetes` Service (upstream `createPortAndServiceSpec`): ClusterIP `service_ip`,
/// port `https` 443/TCP to `target_port`, labels `component=apiserver`,
/// `provider=kubernetes`.
pub fn service(service_ip: &str, target_port: u16) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some("default".into()),
            labels: Some(BTreeMap::from([
                ("component".into(), "apiserver".into()),
                ("provider".into(), "kubernetes".into()),
            ])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(service_ip.into()),
            cluster_ips: Some(vec![service_ip.into()]),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                port: 443,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(i32::from(target_port))),
                ..Default::default()
            }]),
            session_affinity: Some("None".into()),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Endpoints' subsets for the live API servers `live`: one subset per port (upstream has
/// one port for all), its addresses sorted, each with the port `https`/TCP.
pub fn subsets(live: &[SocketAddr]) -> Vec<EndpointSubset> {
    let mut by_port: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for a in live {
        by_port
            .entry(a.port())
            .or_default()
            .push(a.ip().to_string());
    }
    by_port
        .into_iter()
        .map(|(port, mut ips)| {
            ips.sort();
            ips.dedup();
            EndpointSubset {
                addresses: Some(
                    ips.into_iter()
                        .map(|ip| EndpointAddress {
                            ip,
                            ..Default::default()
                        })
                        .collect(),
                ),
                ports: Some(vec![EndpointPort {
                    name: Some("https".into()),
                    port: i32::from(port),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }
        })
        .collect()
}

fn lease_key(endpoint: SocketAddr) -> String {
    format!("{LEASES_PREFIX}{endpoint}")
}

/// Renews (or creates) this server's record with the TTL.
async fn renew(api: &ApiServer, cfg: &KubernetesServiceConfig) -> Result<(), StorageError> {
    let key = lease_key(cfg.endpoint());
    let mut record = DynamicObject::new("v1", "Endpoints", NAME);
    record.data.insert(
        "subsets".into(),
        serde_json::to_value(subsets(&[cfg.endpoint()])).unwrap_or_default(),
    );
    let update = WriteOp::Update {
        key: key.clone(),
        object: record.clone(),
        expected: None,
        ttl: Some(cfg.lease_ttl),
    };
    match api.storage.write(update).await {
        Err(StorageError::NotFound { .. }) => {
            let create = WriteOp::Create {
                key,
                object: record,
                ttl: Some(cfg.lease_ttl),
            };
            match api.storage.write(create).await {
                Ok(_) | Err(StorageError::KeyExists { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        other => other.map(|_| ()),
    }
}

/// The addresses of the live records.
async fn live(api: &ApiServer) -> Result<Vec<SocketAddr>, StorageError> {
    let list = api
        .storage
        .list(LEASES_PREFIX, &ListOptions::default())
        .await?;
    Ok(list
        .items
        .iter()
        .filter_map(|(k, _)| k.strip_prefix(LEASES_PREFIX)?.parse().ok())
        .collect())
}

/// Creates the Service if it is missing (not when `leaving`) and sets the Endpoints to the live
/// records (upstream `doReconcile`: an empty list is refused rather than written, so the last
/// API server to leave stays listed).
async fn reconcile(
    api: &ApiServer,
    cfg: &KubernetesServiceConfig,
    leaving: bool,
) -> Result<(), String> {
    let client = api.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    if !leaving
        && services
            .get_opt(NAME)
            .await
            .map_err(|e| e.to_string())?
            .is_none()
    {
        match services
            .create(&service(&cfg.service_ip, cfg.secure_port))
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let live = live(api).await.map_err(|e| e.to_string())?;
    if live.is_empty() {
        return Err("no API server records were listed in storage, refusing to erase all endpoints for the kubernetes service".into());
    }
    let want = subsets(&live);
    if let Err(e) = slice::ensure(client.clone(), &want).await {
        tracing::warn!(error = %e, "reconciling the kubernetes EndpointSlice failed");
    }
    let endpoints: Api<Endpoints> = Api::namespaced(client, "default");
    match endpoints.get_opt(NAME).await.map_err(|e| e.to_string())? {
        None => {
            let ep = Endpoints {
                metadata: ObjectMeta {
                    name: Some(NAME.into()),
                    namespace: Some("default".into()),
                    labels: Some(BTreeMap::from([(SKIP_MIRROR.into(), "true".into())])),
                    ..Default::default()
                },
                subsets: Some(want),
            };
            match endpoints.create(&ep).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_already_exists() => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
        Some(mut ep) => {
            let labels = ep.metadata.labels.get_or_insert_with(Default::default);
            let mirror_ok = labels.get(SKIP_MIRROR).map(String::as_str) == Some("true");
            if mirror_ok && ep.subsets.as_deref().unwrap_or_default() == want.as_slice() {
                return Ok(());
            }
            labels.insert(SKIP_MIRROR.into(), "true".into());
            ep.subsets = Some(want);
            tracing::info!(endpoints = ?live, "resetting endpoints for the kubernetes service");
            // A conflict means another API server just wrote them: the next round looks again.
            match endpoints.replace(&ep).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_conflict() => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

/// Keeps the Service, this server's record and the Endpoints up to date every interval until
/// the server stops serving, then removes the record and takes this server out of the
/// Endpoints.
pub(crate) async fn run(api: Weak<ApiServer>, cfg: KubernetesServiceConfig) {
    let mut stop = match api.upgrade() {
        Some(a) => a.stop.subscribe(),
        None => return,
    };
    loop {
        let Some(server) = api.upgrade() else { return };
        if *stop.borrow() {
            leave(&server, &cfg).await;
            return;
        }
        // Renew first, whatever happens next, so that every server lists this one (upstream).
        if let Err(e) = renew(&server, &cfg).await {
            tracing::warn!(error = %e, "renewing the API server's endpoint record failed");
        } else if let Err(e) = reconcile(&server, &cfg, false).await {
            tracing::warn!(error = %e, "reconciling the kubernetes service failed");
        }
        drop(server);
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(cfg.interval) => {}
        }
    }
}

/// Removes this server's record and reconciles the Endpoints without it (upstream
/// `RemoveEndpoints`), giving up after a few seconds.
async fn leave(api: &Arc<ApiServer>, cfg: &KubernetesServiceConfig) {
    let work = async {
        let delete = WriteOp::Delete {
            key: lease_key(cfg.endpoint()),
            expected: None,
        };
        match api.storage.write(delete).await {
            Ok(_) | Err(StorageError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "removing the API server's endpoint record"),
        }
        if let Err(e) = reconcile(api, cfg, true).await {
            tracing::warn!(error = %e, "removing this API server from the kubernetes endpoints");
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), work).await;
}

pub mod slice;
#[cfg(test)]
mod tests;
