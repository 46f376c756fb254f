//! Cluster DNS: names of Services and Pods under the cluster domain (`cluster.local`), served
//! by [hickory-server](https://docs.rs/hickory-server) over UDP and TCP, everything else
//! forwarded to upstream nameservers.
//!
//! - [`bench`]: `orch bench dns`;
//! - [`client`]: a minimal stub client (tests, `orch bench dns`);
//! - [`records`]: the record set, a pure function of Services, endpoints and Pods
//!   ([`ClusterZone::build`]) and the answer to a question ([`ClusterZone::lookup`]);
//! - [`server`]: the request handler (authoritative answers, NXDOMAIN/NODATA with the SOA,
//!   truncation for UDP, forwarding);
//! - [`DnsServer`]: binds the listeners, keeps the zone current from informers of Services,
//!   Endpoints and Pods through any [`orch_types::client::Client`], and serves until stopped.
//!
//! `orch dns` runs it alone against an API server; `orch up` runs it in-process and publishes
//! it as the `kube-system/kube-dns` Service (docs/design/services.md, "Cluster DNS").
//!
//! ```no_run
//! # async fn run(client: orch_types::client::SharedClient) -> Result<(), orch::dns::DnsError> {
//! use orch::dns::{DnsConfig, DnsServer};
//! let server = DnsServer::bind(&DnsConfig::new(vec!["127.0.0.1:1053".parse().unwrap()])).await?;
//! println!("cluster DNS on {:?}", server.local_addrs());
//! server.run(client, std::future::pending()).await
//! # }
//! ```

pub mod bench;
pub mod client;
pub mod records;
pub mod server;

pub use records::{Answer, ClusterZone, ServiceEndpoints};
pub use server::{DnsHandler, Forwarder, ZoneHandle};

use hickory_server::ServerFuture;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use orch_runtime::informer::Informer;
use orch_types::client::SharedClient;
use orch_types::registry::ApiResource;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};

/// The default cluster domain (kubelet `--cluster-domain`).
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// How long an idle TCP connection is kept.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The cluster domain is not a DNS name.
    #[error(transparent)]
    Zone(#[from] records::ZoneError),
    /// The server stopped with an error.
    #[error("DNS server: {0}")]
    Serve(String),
}

/// Settings of the DNS server.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Addresses to serve on (UDP and TCP on each; port 0 picks one free for both).
    pub listen: Vec<SocketAddr>,
    /// The cluster domain.
    pub cluster_domain: String,
    /// Upstream nameservers for other names (empty: names outside the cluster are refused).
    pub upstream: Vec<SocketAddr>,
}

impl DnsConfig {
    /// Serves `listen` for `cluster.local`, forwarding to the host's nameservers.
    pub fn new(listen: Vec<SocketAddr>) -> Self {
        Self {
            listen,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.into(),
            upstream: Forwarder::system_nameservers(),
        }
    }
}

/// A bound DNS server, not serving yet.
pub struct DnsServer {
    sockets: Vec<(UdpSocket, TcpListener)>,
    addrs: Vec<SocketAddr>,
    zone: ZoneHandle,
    domain: String,
    forwarder: Option<Forwarder>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("addrs", &self.addrs)
            .field("domain", &self.domain)
            .finish()
    }
}

/// Binds UDP and TCP on the same address and port (a free one for port 0).
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let err = |source| DnsError::Bind { addr, source };
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr).await.map_err(err)?;
        let tcp = TcpListener::bind(addr).await.map_err(err)?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(addr).await.map_err(err)?;
        let port = udp.local_addr().map_err(err)?;
        match TcpListener::bind(port).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(err(
        last.unwrap_or_else(|| std::io::Error::other("no free port"))
    ))
}

impl DnsServer {
    /// Binds every listen address (UDP and TCP) and prepares an empty zone.
    pub async fn bind(config: &DnsConfig) -> Result<Self, DnsError> {
        let zone = ZoneHandle::new(ClusterZone::build(
            &config.cluster_domain,
            0,
            &[],
            &[],
            &[],
        )?);
        let mut sockets = Vec::new();
        let mut addrs = Vec::new();
        for a in &config.listen {
            let (udp, tcp) = bind_pair(*a).await?;
            addrs.push(
                udp.local_addr()
                    .map_err(|source| DnsError::Bind { addr: *a, source })?,
            );
            sockets.push((udp, tcp));
        }
        Ok(Self {
            sockets,
            addrs,
            zone,
            domain: config.cluster_domain.clone(),
            forwarder: (!config.upstream.is_empty()).then(|| Forwarder::new(&config.upstream)),
        })
    }

    /// Where it listens (the real ports when port 0 was asked).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The zone it answers from (to feed it other than by [`run`](Self::run)).
    pub fn zone(&self) -> ZoneHandle {
        self.zone.clone()
    }

    /// Serves with the zone as it is (no informers) until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), DnsError> {
        let mut server = ServerFuture::new(DnsHandler::new(self.zone.clone(), self.forwarder));
        for (udp, tcp) in self.sockets {
            server.register_socket(udp);
            server.register_listener(tcp, TCP_TIMEOUT);
        }
        shutdown.await;
        server
            .shutdown_gracefully()
            .await
            .map_err(|e| DnsError::Serve(e.to_string()))
    }

    /// Serves, keeping the zone current from the cluster behind `client`, until `shutdown`
    /// resolves.
    pub async fn run(
        self,
        client: SharedClient,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), DnsError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let feed = tokio::spawn(keep_zone(
            client,
            self.domain.clone(),
            self.zone.clone(),
            stopped(),
        ));
        let r = self
            .serve(async move {
                shutdown.await;
                stop_tx.send_replace(true);
            })
            .await;
        let _ = feed.await;
        r
    }
}

/// The ClusterIP upstream clusters give `kube-system/kube-dns` (requested from the service
/// range; the Service gets whatever the range allows when it is elsewhere).
pub const KUBE_DNS_CLUSTER_IP: &str = "10.96.0.10";

/// Binds the DNS server of an in-process cluster: `config.listen` (`orch up`: the host's port
/// 53 on all addresses, which pods in network namespaces reach through their gateway), or
/// when that cannot be bound (not root, port taken by another cluster or resolver)
/// `127.0.0.1` on a free port, for the host only. Returns the server and whether pods can
/// reach it on port 53 of their gateway.
pub async fn bind_in_cluster(config: &DnsConfig) -> Result<(DnsServer, bool), DnsError> {
    match DnsServer::bind(config).await {
        Ok(s) => {
            let on_gateway = s
                .local_addrs()
                .iter()
                .any(|a| a.ip().is_unspecified() && a.port() == 53);
            Ok((s, on_gateway))
        }
        Err(e) => {
            tracing::warn!(error = %e, "cluster DNS for the host only (127.0.0.1), pods use the node's resolver");
            let host_only = DnsConfig {
                listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
                ..config.clone()
            };
            Ok((DnsServer::bind(&host_only).await?, false))
        }
    }
}

/// Publishes the server as the `kube-system/kube-dns` Service (ports `dns` 53/UDP and
/// `dns-tcp` 53/TCP, ClusterIP [`KUBE_DNS_CLUSTER_IP`] when the range has it) with Endpoints
/// at `endpoint` (where it really listens), creating or updating both.
pub async fn publish_kube_dns(
    client: &SharedClient,
    endpoint: SocketAddr,
) -> Result<(), orch_types::client::ClientError> {
    use k8s_openapi::api::core::v1::{
        EndpointAddress, EndpointPort, EndpointSubset, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use orch_types::client::Api;
    let meta = ObjectMeta {
        name: Some("kube-dns".into()),
        namespace: Some("kube-system".into()),
        labels: Some(
            [
                ("k8s-app".to_string(), "kube-dns".to_string()),
                ("kubernetes.io/name".to_string(), "CoreDNS".to_string()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let port = |name: &str, proto: &str| ServicePort {
        name: Some(name.into()),
        port: 53,
        protocol: Some(proto.into()),
        target_port: Some(
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i32::from(
                endpoint.port(),
            )),
        ),
        ..Default::default()
    };
    let mut svc = Service {
        metadata: meta.clone(),
        spec: Some(ServiceSpec {
            cluster_ip: Some(KUBE_DNS_CLUSTER_IP.into()),
            ports: Some(vec![port("dns", "UDP"), port("dns-tcp", "TCP")]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    if services.get_opt("kube-dns").await?.is_none() {
        if let Err(e) = services.create(&svc).await {
            // The requested address is outside this cluster's range or taken: any address.
            tracing::debug!(error = %e, "kube-dns at {KUBE_DNS_CLUSTER_IP}");
            if let Some(spec) = svc.spec.as_mut() {
                spec.cluster_ip = None;
            }
            services.create(&svc).await?;
        }
    }
    let ep_port = |name: &str, proto: &str| EndpointPort {
        name: Some(name.into()),
        port: i32::from(endpoint.port()),
        protocol: Some(proto.into()),
        ..Default::default()
    };
    // Its slice is written below: the mirroring controller leaves these Endpoints alone.
    let mut ep_meta = meta;
    if let Some(l) = ep_meta.labels.as_mut() {
        l.insert(
            "endpointslice.kubernetes.io/skip-mirror".into(),
            "true".into(),
        );
    }
    let mut eps = Endpoints {
        metadata: ep_meta,
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: endpoint.ip().to_string(),
                ..Default::default()
            }]),
            ports: Some(vec![ep_port("dns", "UDP"), ep_port("dns-tcp", "TCP")]),
            ..Default::default()
        }]),
    };
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "kube-system");
    match endpoints.get_opt("kube-dns").await? {
        None => {
            endpoints.create(&eps).await?;
        }
        Some(old) => {
            eps.metadata.resource_version = old.metadata.resource_version;
            endpoints.replace(&eps).await?;
        }
    }
    // The same endpoint as an EndpointSlice (no controller mirrors the Endpoints of a Service
    // without a selector), so a service proxy reading slices routes the ClusterIP here.
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
    let slice_port = |name: &str, proto: &str| k8s_openapi::api::discovery::v1::EndpointPort {
        name: Some(name.into()),
        port: Some(i32::from(endpoint.port())),
        protocol: Some(proto.into()),
        ..Default::default()
    };
    let mut slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some("kube-dns-orch".into()),
            namespace: Some("kube-system".into()),
            labels: Some(
                [
                    (
                        "kubernetes.io/service-name".to_string(),
                        "kube-dns".to_string(),
                    ),
                    (
                        "endpointslice.kubernetes.io/managed-by".to_string(),
                        "orch-dns".to_string(),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        },
        address_type: if endpoint.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
        endpoints: vec![Endpoint {
            addresses: vec![endpoint.ip().to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            ..Default::default()
        }],
        ports: Some(vec![slice_port("dns", "UDP"), slice_port("dns-tcp", "TCP")]),
    };
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    let written = match slices.get_opt("kube-dns-orch").await {
        Ok(None) => slices.create(&slice).await.map(|_| ()),
        Ok(Some(old)) => {
            slice.metadata.resource_version = old.metadata.resource_version;
            slices.replace(&slice).await.map(|_| ())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        // A server without discovery.k8s.io/v1: the Endpoints are enough.
        tracing::debug!(error = %e, "kube-dns EndpointSlice");
    }
    Ok(())
}

/// Rebuilds the zone after every change of Services, Endpoints or Pods (changes arriving
/// within a few milliseconds are taken together), once all three caches are synced.
pub async fn keep_zone(
    client: SharedClient,
    domain: String,
    zone: ZoneHandle,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let changed = Arc::new(tokio::sync::Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut services = Informer::<Service>::new(client.clone(), ApiResource::of::<Service>());
    let mut endpoints = Informer::<Endpoints>::new(client.clone(), ApiResource::of::<Endpoints>());
    let mut pods = Informer::<Pod>::new(client, ApiResource::of::<Pod>());
    let n = changed.clone();
    services.on_change(Arc::new(move |_| n.notify_one()));
    let n = changed.clone();
    endpoints.on_change(Arc::new(move |_| n.notify_one()));
    let n = changed.clone();
    pods.on_change(Arc::new(move |_| n.notify_one()));
    let (svc_store, ep_store, pod_store) = (services.store(), endpoints.store(), pods.store());
    let tasks = [
        tokio::spawn(services.run(stopped())),
        tokio::spawn(endpoints.run(stopped())),
        tokio::spawn(pods.run(stopped())),
    ];
    tokio::pin!(shutdown);
    let mut serial: u32 = 0;
    loop {
        let synced = svc_store.is_synced() && ep_store.is_synced() && pod_store.is_synced();
        tokio::select! {
            _ = &mut shutdown => break,
            _ = changed.notified() => {}
            // Until the caches are synced there may be no change to wake up for.
            _ = tokio::time::sleep(Duration::from_millis(100)), if !synced || serial == 0 => {}
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        if !(svc_store.is_synced() && ep_store.is_synced() && pod_store.is_synced()) {
            continue;
        }
        let svcs = svc_store.list();
        let eps: Vec<ServiceEndpoints> = ep_store
            .list()
            .iter()
            .map(|e| ServiceEndpoints::from_endpoints(e))
            .collect();
        let pods = pod_store.list();
        let svc_refs: Vec<&Service> = svcs.iter().map(|s| s.as_ref()).collect();
        let pod_refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        serial = serial.wrapping_add(1).max(1);
        match ClusterZone::build(&domain, serial, &svc_refs, &eps, &pod_refs) {
            Ok(z) => zone.set(z),
            Err(e) => {
                tracing::error!(error = %e, "cluster DNS zone");
                break;
            }
        }
    }
    stop_tx.send_replace(true);
    for t in tasks {
        let _ = t.await;
    }
}

#[cfg(test)]
mod tests {
    use super::client::{query, Transport};
    use super::*;
    use hickory_proto::op::{Header, ResponseCode};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record, RecordType};
    use hickory_server::authority::MessageResponseBuilder;
    use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
    use serde_json::json;

    /// A fake upstream: `*.example.com` A 192.0.2.80, `missing.example.com` NXDOMAIN.
    struct Upstream;

    #[async_trait::async_trait]
    impl RequestHandler for Upstream {
        async fn handle_request<R: ResponseHandler>(
            &self,
            request: &Request,
            mut handle: R,
        ) -> ResponseInfo {
            let q = request.request_info().unwrap().query.original().clone();
            let mut header = Header::response_from_request(request.header());
            let b = MessageResponseBuilder::from_message_request(request);
            let answer = Record::from_rdata(q.name().clone(), 60, RData::A(A::new(192, 0, 2, 80)));
            let nx = q.name().to_ascii().starts_with("missing.");
            header.set_response_code(if nx {
                ResponseCode::NXDomain
            } else {
                ResponseCode::NoError
            });
            let answers: Vec<&Record> = if nx { vec![] } else { vec![&answer] };
            handle
                .send_response(b.build(header, answers, [], [], []))
                .await
                .unwrap()
        }
    }

    async fn upstream() -> SocketAddr {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let mut server = ServerFuture::new(Upstream);
        server.register_socket(udp);
        tokio::spawn(async move {
            let _keep = server;
            std::future::pending::<()>().await
        });
        addr
    }

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    /// A server on 127.0.0.1 with a ClusterIP Service, a headless one with 60 endpoints and an
    /// ExternalName, forwarding to the fake upstream.
    async fn server() -> SocketAddr {
        let config = DnsConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
            upstream: vec![upstream().await],
        };
        let server = DnsServer::bind(&config).await.unwrap();
        let addr = server.local_addrs()[0];
        let web = svc(json!({"metadata": {"name": "web", "namespace": "default"},
                              "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}}));
        let big = svc(json!({"metadata": {"name": "big", "namespace": "default"},
                              "spec": {"clusterIP": "None"}}));
        let ext = svc(json!({"metadata": {"name": "ext", "namespace": "default"},
                              "spec": {"type": "ExternalName", "externalName": "www.example.com"}}));
        let eps = ServiceEndpoints {
            namespace: "default".into(),
            service: "big".into(),
            groups: vec![(
                (0..60)
                    .map(|i| records::EndpointAddress {
                        ip: format!("10.244.1.{i}").parse().unwrap(),
                        hostname: String::new(),
                        ready: true,
                    })
                    .collect(),
                vec![],
            )],
        };
        server
            .zone()
            .set(ClusterZone::build("cluster.local", 1, &[&web, &big, &ext], &[eps], &[]).unwrap());
        tokio::spawn(server.serve(std::future::pending()));
        addr
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn answers_the_zone_over_udp_and_tcp() {
        let s = server().await;
        for t in [Transport::Udp, Transport::Tcp, Transport::UdpEdns(1232)] {
            let m = query(s, "web.default.svc.cluster.local", RecordType::A, t, T)
                .await
                .unwrap();
            assert_eq!(m.response_code(), ResponseCode::NoError, "{t:?}");
            assert!(m.authoritative());
            assert_eq!(m.answers().len(), 1);
            assert_eq!(m.answers()[0].data().to_string(), "10.96.0.20");
        }
    }

    #[tokio::test]
    async fn missing_name_is_nxdomain_with_soa() {
        let s = server().await;
        let m = query(
            s,
            "nope.default.svc.cluster.local",
            RecordType::A,
            Transport::Udp,
            T,
        )
        .await
        .unwrap();
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert_eq!(m.name_servers()[0].record_type(), RecordType::SOA);
        let m = query(
            s,
            "web.default.svc.cluster.local",
            RecordType::MX,
            Transport::Udp,
            T,
        )
        .await
        .unwrap();
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty());
        assert_eq!(m.name_servers()[0].record_type(), RecordType::SOA);
    }

    #[tokio::test]
    async fn big_answers_are_truncated_over_plain_udp() {
        let s = server().await;
        let name = "big.default.svc.cluster.local";
        let m = query(s, name, RecordType::A, Transport::Udp, T)
            .await
            .unwrap();
        assert!(m.truncated());
        assert!(m.answers().is_empty());
        let m = query(s, name, RecordType::A, Transport::Tcp, T)
            .await
            .unwrap();
        assert!(!m.truncated());
        assert_eq!(m.answers().len(), 60);
        let m = query(s, name, RecordType::A, Transport::UdpEdns(4096), T)
            .await
            .unwrap();
        assert_eq!(m.answers().len(), 60);
    }

    #[tokio::test]
    async fn other_names_are_forwarded() {
        let s = server().await;
        let m = query(s, "www.example.com", RecordType::A, Transport::Udp, T)
            .await
            .unwrap();
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(!m.authoritative());
        assert_eq!(m.answers()[0].data().to_string(), "192.0.2.80");
        let m = query(s, "missing.example.com", RecordType::A, Transport::Udp, T)
            .await
            .unwrap();
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        // An ExternalName's out-of-zone target is resolved upstream.
        let m = query(
            s,
            "ext.default.svc.cluster.local",
            RecordType::A,
            Transport::Udp,
            T,
        )
        .await
        .unwrap();
        let answers: Vec<String> = m.answers().iter().map(|r| r.data().to_string()).collect();
        assert_eq!(answers, ["www.example.com.", "192.0.2.80"]);
    }

    #[tokio::test]
    async fn without_upstream_other_names_are_refused() {
        let config = DnsConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
            upstream: vec![],
        };
        let server = DnsServer::bind(&config).await.unwrap();
        let s = server.local_addrs()[0];
        tokio::spawn(server.serve(std::future::pending()));
        let m = query(s, "www.example.com", RecordType::A, Transport::Tcp, T)
            .await
            .unwrap();
        assert_eq!(m.response_code(), ResponseCode::Refused);
        assert!(DnsServer::bind(&DnsConfig {
            cluster_domain: "bad..domain".into(),
            ..config
        })
        .await
        .is_err());
    }
}
