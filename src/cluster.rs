//! [`Cluster`]: a whole orch cluster in one process — API server, scheduler, controller manager
//! and N kubelets — for `orch up`, for the Python bindings and for Rust users' own tests (the
//! way Go users use envtest).
//!
//! Components are the same code as the separate `orch apiserver`, `orch scheduler`,
//! `orch controller-manager` and `orch kubelet` processes; in-process they share the API
//! server's in-process client (no HTTP, no JSON). The API is also served over HTTP on
//! `127.0.0.1` (port 0 by default) with a kubeconfig, so `kubectl` and any Kubernetes client can
//! talk to the cluster: HTTPS by default, with the cluster PKI in `DIR/pki`
//! ([`orch_apiserver::pki`]) and the admin client certificate and CA embedded in the kubeconfig;
//! kubelets serve HTTPS too and the API server verifies their certificates. Plain HTTP only with
//! [`ClusterBuilder::insecure_http`] (tests that are not about transport).
//!
//! Shutdown order matters: kubelets first (they stop their containers gracefully while the API
//! is still up), then the controllers and the scheduler, then the HTTP server.

use orch_apiserver::{ApiServer, ApiServerConfig};
use orch_types::client::SharedClient;
use orch_types::clock::{SharedClock, SystemClock};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Version of the data-dir layout written by this orch (`DIR/orch-data-format`).
pub const DATA_FORMAT: u32 = 1;

/// Name of the data-format marker file in a data dir.
pub const DATA_FORMAT_FILE: &str = "orch-data-format";

/// Where the API server keeps its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// In memory: fast, nothing survives the process.
    Memory,
    /// Durable in the cluster's data dir (`DIR/store`; in the temporary work dir without a
    /// data dir): `orch up`'s default.
    Embedded,
    /// An etcd v3 cluster (cargo feature `etcd`; see [`orch_apiserver::storage::etcd`]).
    #[cfg(feature = "etcd")]
    Etcd {
        /// Client URLs of the etcd members.
        servers: Vec<String>,
        /// Prepended to every key (empty: keys are `/registry/…`).
        prefix: String,
        /// Client TLS (CA bundle, client certificate and key).
        tls: Option<orch_apiserver::storage::etcd::EtcdTls>,
    },
}

/// How kubelets run containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Real host processes.
    Process,
    /// Simulated containers driven by pod annotations; no processes.
    Sim,
    /// OCI containers through CRI on a containerd each kubelet starts (issue 22).
    Cri,
}

/// Errors starting or stopping a [`Cluster`].
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The listen address is taken by another program.
    #[error("cannot listen on {addr}: address already in use (is another orch or Kubernetes API server running? choose another with --listen)")]
    AddrInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// Binding the listen address failed for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data dir was written by a newer orch.
    #[error("data dir {dir} has format {found}, newer than the format {supported} this orch understands; use a newer orch or another --data-dir")]
    NewerDataFormat {
        /// The data dir.
        dir: PathBuf,
        /// Format found on disk.
        found: u32,
        /// Format this build writes.
        supported: u32,
    },
    /// The data-format marker is unreadable.
    #[error("data dir {dir}: bad {DATA_FORMAT_FILE} file: {content:?}")]
    BadDataFormat {
        /// The data dir.
        dir: PathBuf,
        /// What the file holds.
        content: String,
    },
    /// A file or directory of the data dir could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The cluster PKI could not be created or read.
    #[error("PKI: {0}")]
    Pki(#[from] orch_apiserver::pki::PkiError),
    /// A TLS configuration could not be built from the PKI.
    #[error("TLS: {0}")]
    Tls(#[from] orch_apiserver::tls::TlsError),
    /// The kubeconfig could not be written.
    #[error(transparent)]
    Kubeconfig(#[from] orch_apiserver::kubeconfig::KubeconfigError),
    /// The API server could not start.
    #[error("API server: {0}")]
    ApiServer(Box<orch_apiserver::ApiServerError>),
    /// Another component could not start or failed.
    #[error("{component}: {message}")]
    Component {
        /// The component (`scheduler`, `controller-manager`, `kubelet node-1`, …).
        component: String,
        /// What happened.
        message: String,
    },
    /// Nodes did not become Ready in time.
    #[error("timed out after {0:?} waiting for the nodes to be Ready")]
    NodesNotReady(Duration),
}

impl From<orch_apiserver::ApiServerError> for ClusterError {
    fn from(e: orch_apiserver::ApiServerError) -> Self {
        Self::ApiServer(Box::new(e))
    }
}

/// Builder of a [`Cluster`]; see the crate docs for an example.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    storage: Storage,
    runtime: Runtime,
    nodes: usize,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    scheduler: bool,
    controllers: bool,
    node_monitor_grace_period: Option<Duration>,
    wait_ready: Option<Duration>,
    clock: SharedClock,
    auth: Option<orch_apiserver::auth::AuthConfig>,
    pod_network: orch_kubelet::runtime::process::PodNetwork,
    cluster_cidr: Option<String>,
    event_ttl: Option<Duration>,
    service_account_admission: bool,
    tls: bool,
    max_in_flight: (usize, usize),
    priority_and_fairness: bool,
    service_alloc: orch_apiserver::service_alloc::ServiceAllocConfig,
    /// The cluster DNS server (`orch up`; none by default).
    dns: Option<crate::dns::DnsConfig>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        Self {
            storage: Storage::Memory,
            runtime: Runtime::Sim,
            nodes: 1,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            data_dir: None,
            scheduler: true,
            controllers: true,
            node_monitor_grace_period: None,
            wait_ready: Some(Duration::from_secs(30)),
            clock: Arc::new(SystemClock),
            auth: None,
            pod_network: Default::default(),
            cluster_cidr: None,
            event_ttl: ApiServerConfig::memory().event_ttl,
            service_account_admission: false,
            tls: true,
            max_in_flight: (
                orch_apiserver::flowcontrol::maxinflight::DEFAULT_MAX_REQUESTS_INFLIGHT,
                orch_apiserver::flowcontrol::maxinflight::DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
            ),
            priority_and_fairness: true,
            service_alloc: Default::default(),
            dns: None,
        }
    }
}

impl ClusterBuilder {
    /// Storage backend (default: memory).
    pub fn storage(mut self, s: Storage) -> Self {
        self.storage = s;
        self
    }

    /// Events are deleted this long after their last write (default: one hour, as
    /// kube-apiserver's `--event-ttl`); `None` keeps them.
    pub fn event_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.event_ttl = ttl;
        self
    }

    /// Run the ServiceAccount admission plugin (default: off): pods need their service
    /// account (the serviceaccount controller creates `default` in every namespace) and get
    /// the projected token volume. `orch up` turns it on.
    pub fn service_account_admission(mut self, on: bool) -> Self {
        self.service_account_admission = on;
        self
    }

    /// Reads and writes the API server serves at once over HTTP before answering 429
    /// (default 400 and 200, as kube-apiserver's `--max-requests-inflight` and
    /// `--max-mutating-requests-inflight`; 0: no limit).
    pub fn max_in_flight(mut self, read_only: usize, mutating: usize) -> Self {
        self.max_in_flight = (read_only, mutating);
        self
    }

    /// API Priority and Fairness (default on, as kube-apiserver's
    /// `--enable-priority-and-fairness`); off keeps the two max-in-flight pools.
    pub fn priority_and_fairness(mut self, on: bool) -> Self {
        self.priority_and_fairness = on;
        self
    }

    /// Service cluster IP and node port ranges (default: kube-apiserver's, `10.96.0.0/12`
    /// and `30000-32767`); see [`orch_apiserver::service_alloc`].
    pub fn service_alloc(mut self, c: orch_apiserver::service_alloc::ServiceAllocConfig) -> Self {
        self.service_alloc = c;
        self
    }

    /// Container runtime of the kubelets (default: sim).
    pub fn runtime(mut self, r: Runtime) -> Self {
        self.runtime = r;
        self
    }

    /// Number of in-process kubelets, named `node-1` … `node-N` (default 1; 0 is allowed, e.g.
    /// when kubelets run as separate processes).
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// HTTP listen address (default `127.0.0.1:0`); `None` serves no HTTP and writes no
    /// kubeconfig (the fastest start, in-process client only).
    pub fn listen(mut self, addr: Option<SocketAddr>) -> Self {
        self.listen = addr;
        self
    }

    /// Serve plain HTTP instead of HTTPS, for tests that are not about transport: no PKI, a
    /// kubeconfig without credentials, kubelets on plain HTTP. Anyone reaching the port is
    /// cluster admin: keep it on loopback.
    pub fn insecure_http(mut self) -> Self {
        self.tls = false;
        self
    }

    /// Runs the cluster DNS server ([`crate::dns`]) in-process, published as the
    /// `kube-system/kube-dns` Service; with port 53 on all addresses (root) pods of the process
    /// runtime get it as their nameserver (their gateway's address), otherwise the server
    /// answers the host only (`127.0.0.1` on a free port) and pods use the node's resolver.
    pub fn cluster_dns(mut self, config: crate::dns::DnsConfig) -> Self {
        self.dns = Some(config);
        self
    }

    /// Data dir: embedded store, kubeconfig, kubelet root dirs. Without one, the kubeconfig and
    /// kubelet dirs go to a temporary directory removed at shutdown.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Run the scheduler (default true).
    pub fn scheduler(mut self, on: bool) -> Self {
        self.scheduler = on;
        self
    }

    /// Run the controller manager (default true).
    pub fn controllers(mut self, on: bool) -> Self {
        self.controllers = on;
        self
    }

    /// Node lifecycle controller's grace period before a silent node becomes Unknown.
    pub fn node_monitor_grace_period(mut self, d: Duration) -> Self {
        self.node_monitor_grace_period = Some(d);
        self
    }

    /// Wait at most this long in [`ClusterBuilder::start`] for every node to be Ready
    /// (default 30 s); `None` returns as soon as everything is started.
    pub fn wait_ready(mut self, d: Option<Duration>) -> Self {
        self.wait_ready = d;
        self
    }

    /// Clock of the API server and the components (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Authentication and authorization of the API server (default:
    /// [`AuthConfig::secure`](orch_apiserver::auth::AuthConfig::secure), `Node,RBAC`, when
    /// serving HTTPS, where every identity the cluster hands out is authorized: the admin
    /// kubeconfig is in `system:masters`, in-process components are the privileged loopback;
    /// AlwaysAllow with [`Self::insecure_http`] or without HTTP, where nobody is authenticated).
    pub fn auth(mut self, config: orch_apiserver::auth::AuthConfig) -> Self {
        self.auth = Some(config);
        self
    }

    /// Pod networking of the process runtime (default: auto = a network namespace per pod when
    /// running as root, else host networking).
    pub fn pod_network(mut self, n: orch_kubelet::runtime::process::PodNetwork) -> Self {
        self.pod_network = n;
        self
    }

    /// Node IPAM's cluster CIDR (each node gets a /24 of it). Default: 10.244.0.0/16, or with
    /// pod network namespaces the first /16 from 10.244 on that no other cluster on this host
    /// uses (see `orch_kubelet::runtime::process::claim`), remembered in the data dir.
    pub fn cluster_cidr(mut self, cidr: impl Into<String>) -> Self {
        self.cluster_cidr = Some(cidr.into());
        self
    }

    /// Starts the cluster. Must run inside a multi-threaded tokio runtime.
    pub async fn start(self) -> Result<Cluster, ClusterError> {
        Cluster::start(self).await
    }
}

/// A running in-process cluster. Dropping it without [`Cluster::shutdown`] aborts its tasks
/// (on the process runtime the containers then keep running: shut down to stop them).
pub struct Cluster {
    api: Arc<ApiServer>,
    client: SharedClient,
    addr: Option<SocketAddr>,
    kubeconfig: Option<PathBuf>,
    /// The cluster PKI, when serving HTTPS.
    pki: Option<Arc<orch_apiserver::pki::Pki>>,
    work_dir: PathBuf,
    temp_dir: Option<PathBuf>,
    node_names: Vec<String>,
    stop: watch::Sender<bool>,
    http: Option<JoinHandle<Result<(), orch_apiserver::ApiServerError>>>,
    components: Vec<(String, JoinHandle<()>)>,
    started_in: Duration,
    /// This cluster's hold on its pod range on the host (released on drop).
    cidr_claim: Option<orch_kubelet::runtime::process::claim::ClusterCidrClaim>,
    /// Each running in-process kubelet's own stop signal.
    kubelet_stops: std::collections::BTreeMap<String, watch::Sender<bool>>,
    runtime: Runtime,
    pod_network: orch_kubelet::runtime::process::PodNetwork,
    clock: SharedClock,
    /// The kubelets' DNS settings (cluster domain, and the cluster DNS server when pods reach
    /// it).
    kubelet_dns: orch_kubelet::dns::DnsSettings,
    /// Where the in-process DNS server listens.
    dns_addrs: Vec<SocketAddr>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("addr", &self.addr)
            .field("kubeconfig", &self.kubeconfig)
            .field("nodes", &self.node_names)
            .finish()
    }
}

impl Cluster {
    /// A builder with the defaults: memory storage, sim runtime, one node, HTTP on a free port.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    async fn start(b: ClusterBuilder) -> Result<Cluster, ClusterError> {
        let t0 = Instant::now();
        // Work dir: the data dir, or a private temporary one.
        let (work_dir, temp_dir) = match &b.data_dir {
            Some(d) => {
                prepare_data_dir(d)?;
                (d.clone(), None)
            }
            None => {
                let d = temp_work_dir()?;
                (d.clone(), Some(d))
            }
        };
        // Bind first: a taken port must fail before anything else starts.
        let listener = match b.listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let config = match &b.storage {
            Storage::Memory => ApiServerConfig::memory(),
            Storage::Embedded => ApiServerConfig::embedded(work_dir.join("store")),
            #[cfg(feature = "etcd")]
            Storage::Etcd {
                servers,
                prefix,
                tls,
            } => ApiServerConfig {
                storage: orch_apiserver::StorageConfig::Etcd {
                    servers: servers.clone(),
                    prefix: prefix.clone(),
                    tls: tls.clone(),
                },
                ..ApiServerConfig::memory()
            },
        }
        .with_clock(b.clock.clone());
        let mut config = ApiServerConfig {
            auth: b.auth.clone().unwrap_or_else(|| match (&b.listen, b.tls) {
                (Some(_), true) => orch_apiserver::auth::AuthConfig::secure(),
                _ => orch_apiserver::auth::AuthConfig::default(),
            }),
            event_ttl: b.event_ttl,
            service_account_admission: b.service_account_admission,
            max_requests_inflight: b.max_in_flight.0,
            max_mutating_requests_inflight: b.max_in_flight.1,
            enable_priority_and_fairness: b.priority_and_fairness,
            services: b.service_alloc.clone(),
            ..config
        };
        let pki = match (&listener, b.tls) {
            (Some(l), true) => {
                let a = l.local_addr().map_err(|source| ClusterError::Io {
                    path: work_dir.clone(),
                    source,
                })?;
                let pki =
                    orch_apiserver::pki::Pki::load_or_create(&orch_apiserver::pki::PkiOptions {
                        serving_hosts: vec![
                            a.ip().to_string(),
                            b.service_alloc.kubernetes_service_ip().to_string(),
                        ],
                        ..orch_apiserver::pki::PkiOptions::new(work_dir.join("pki"))
                    })?;
                config.kubelet_tls = Some(Arc::new(orch_apiserver::tls::client_config(
                    &orch_apiserver::tls::ServerTrust::Ca(pki.ca_cert_pem().to_string()),
                    Some(&pki.apiserver_kubelet_client()?),
                )?));
                config.service_account_tokens.signing_key_pem =
                    Some(pki.service_account_key_pem().to_string());
                Some(Arc::new(pki))
            }
            _ => None,
        };
        if let Some(l) = &listener {
            // Reachable over the network: published as the `kubernetes` Service's endpoint.
            if let Ok(a) = l.local_addr() {
                config.kubernetes_service = Some(
                    orch_apiserver::kubernetes_service::KubernetesServiceConfig {
                        service_ip: b.service_alloc.kubernetes_service_ip().to_string(),
                        ..orch_apiserver::kubernetes_service::KubernetesServiceConfig::new(a)
                    },
                );
            }
        }
        let api = ApiServer::open(config).await?;
        let client = api.client();
        let (stop, _) = watch::channel(false);

        let mut addr = None;
        let mut kubeconfig = None;
        let mut http = None;
        if let Some(listener) = listener {
            let a = listener.local_addr().map_err(|source| ClusterError::Io {
                path: work_dir.clone(),
                source,
            })?;
            let path = work_dir.join("kubeconfig");
            let mut rx = stop.subscribe();
            // In-process components use the in-process client, so HTTP can stop together with
            // them (open watches are ended).
            let stopped = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            match &pki {
                Some(pki) => {
                    write_kubeconfigs(pki, &work_dir, &format!("https://{a}"))?;
                    let tls =
                        orch_apiserver::tls::api_server_tls(pki.serving(), pki.client_ca_pem())?;
                    http = Some(tokio::spawn(orch_apiserver::serve_tls(
                        api.clone(),
                        listener,
                        tls,
                        stopped,
                    )));
                }
                None => {
                    orch_apiserver::kubeconfig::write_kubeconfig(&path, &format!("http://{a}"))?;
                    http = Some(tokio::spawn(orch_apiserver::serve(
                        api.clone(),
                        listener,
                        stopped,
                    )));
                }
            }
            addr = Some(a);
            kubeconfig = Some(path);
        }

        let mut kubelet_dns = orch_kubelet::dns::DnsSettings::default();
        let dns = match &b.dns {
            Some(c) => {
                let (server, on_gateway) =
                    crate::dns::bind_in_cluster(c)
                        .await
                        .map_err(|e| ClusterError::Component {
                            component: "dns".into(),
                            message: e.to_string(),
                        })?;
                kubelet_dns.cluster_domain = c.cluster_domain.clone();
                kubelet_dns.cluster_dns_on_gateway = on_gateway
                    && b.runtime == Runtime::Process
                    && b.pod_network != orch_kubelet::runtime::process::PodNetwork::Host;
                Some(server)
            }
            None => None,
        };
        let mut cluster = Cluster {
            api,
            client,
            addr,
            kubeconfig,
            pki,
            work_dir,
            temp_dir,
            node_names: (1..=b.nodes).map(|i| format!("node-{i}")).collect(),
            stop,
            http,
            components: Vec::new(),
            started_in: Duration::ZERO,
            cidr_claim: None,
            kubelet_stops: Default::default(),
            runtime: b.runtime,
            pod_network: b.pod_network,
            clock: b.clock.clone(),
            dns_addrs: dns
                .as_ref()
                .map(|d| d.local_addrs().to_vec())
                .unwrap_or_default(),
            kubelet_dns,
        };
        if let Some(server) = dns {
            let (client, stop) = (cluster.client.clone(), cluster.stopped());
            cluster.spawn("dns", async move {
                if let Err(e) = server.run(client, stop).await {
                    tracing::error!(error = %e, "cluster DNS stopped");
                }
            });
        }
        cluster.start_components(&b).await?;
        if let Some(limit) = b.wait_ready {
            cluster.wait_nodes_ready(limit).await?;
        }
        cluster.publish_dns();
        cluster.started_in = t0.elapsed();
        Ok(cluster)
    }

    async fn start_components(&mut self, b: &ClusterBuilder) -> Result<(), ClusterError> {
        if b.scheduler {
            let client = self.component_client("kube-scheduler");
            let clock = b.clock.clone();
            let stop = self.stopped();
            self.spawn("scheduler", async move {
                if let Err(e) = orch_scheduler::driver::run(client, None, clock, stop).await {
                    tracing::error!(error = %e, "scheduler stopped");
                }
            });
        }
        if b.controllers {
            let mut config = orch_controllers::manager::ManagerConfig::default();
            // The cluster CA of the data dir's PKI (`pki/ca.crt`), published to every
            // namespace as `kube-root-ca.crt`; none on a plain-HTTP cluster.
            if let Ok(pem) = std::fs::read_to_string(self.work_dir.join("pki").join("ca.crt")) {
                config.root_ca = pem;
            }
            // csrsigning issues certificates with the same CA (kubelet TLS bootstrap).
            if let (Ok(cert_pem), Ok(key_pem)) = (
                std::fs::read_to_string(self.work_dir.join("pki").join("ca.crt")),
                std::fs::read_to_string(self.work_dir.join("pki").join("ca.key")),
            ) {
                config.cluster_signing =
                    Some(orch_controllers::certificates::signer::ClusterSigning {
                        cert_pem,
                        key_pem,
                        duration: orch_controllers::certificates::signer::DEFAULT_DURATION,
                    });
            }
            if let Some(c) = &b.cluster_cidr {
                config.cluster_cidr = c.clone();
            } else if b.runtime == Runtime::Cri
                || (b.runtime == Runtime::Process
                    && b.pod_network != orch_kubelet::runtime::process::PodNetwork::Host)
            {
                let claim =
                    orch_kubelet::runtime::process::claim::claim_cluster_cidr(&self.work_dir);
                config.cluster_cidr = claim.cidr().to_string();
                self.cidr_claim = Some(claim);
            }
            if let Some(grace) = b.node_monitor_grace_period {
                config.node_lifecycle.grace_period =
                    jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX);
                // Check a few times per grace period (upstream: 5 s for 40-50 s).
                config.node_monitor_period = config
                    .node_monitor_period
                    .min((grace / 4).max(Duration::from_millis(200)));
            }
            let manager = orch_controllers::manager::ControllerManager::new(
                self.component_client("kube-controller-manager"),
                b.clock.clone(),
                config,
            )
            .map_err(|e| ClusterError::Component {
                component: "controller-manager".into(),
                message: e.to_string(),
            })?;
            let stop = self.stopped();
            self.spawn("controller-manager", manager.run(stop));
        }
        for (i, name) in self.node_names.clone().iter().enumerate() {
            self.spawn_kubelet(i, name)?;
        }
        Ok(())
    }

    /// An in-process client whose writes `managedFields` records as `manager`'s, the name
    /// the component's User-Agent gives it upstream.
    fn component_client(&self, manager: &str) -> SharedClient {
        Arc::new(orch_apiserver::client::LocalClient::new(self.api.clone()).with_manager(manager))
    }

    /// Starts the kubelet of node `name` (index `i` among the nodes) with a fresh runtime.
    fn spawn_kubelet(&mut self, i: usize, name: &str) -> Result<(), ClusterError> {
        let runtime: Arc<dyn orch_kubelet::runtime::ContainerRuntime> = match self.runtime {
            Runtime::Sim => Arc::new(orch_kubelet::runtime::sim::SimRuntime::new(i as u32)),
            Runtime::Process => {
                let root = self.work_dir.join("kubelet").join(name);
                let mut pc = orch_kubelet::runtime::process::ProcessConfig::new(&root);
                pc.pod_network = self.pod_network;
                let rt = orch_kubelet::runtime::process::ProcessRuntime::open(pc).map_err(|e| {
                    ClusterError::Component {
                        component: format!("kubelet {name}"),
                        message: format!("process runtime in {}: {e}", root.display()),
                    }
                })?;
                Arc::new(rt)
            }
            Runtime::Cri => {
                let root = self.work_dir.join("kubelet").join(name);
                let rt = crate::images::open_cri_runtime(&root, name, "127.0.0.1", None, None)
                    .map_err(|message| ClusterError::Component {
                        component: format!("kubelet {name}"),
                        message,
                    })?;
                rt
            }
        };
        let mut config = orch_kubelet::KubeletConfig::new(name);
        config.dns = self.kubelet_dns.clone();
        if self.runtime != Runtime::Sim {
            // Projected volumes (the service-account token) beside the runtime's state.
            config.root_dir = Some(self.work_dir.join("kubelet").join(name));
        }
        if let Some(pki) = &self.pki {
            let addresses = [config.node.ip.clone(), config.listen_ip.to_string()];
            let serving = pki.kubelet_serving(name, &addresses)?;
            config.tls = Some(orch_apiserver::tls::server_config(
                &serving,
                pki.client_ca_pem(),
            )?);
        }
        let kubelet = orch_kubelet::Kubelet::new(
            config,
            self.component_client("kubelet"),
            runtime,
            self.clock.clone(),
        );
        let (own_tx, mut own_rx) = watch::channel(false);
        self.kubelet_stops.insert(name.to_string(), own_tx);
        let cluster_stop = self.stopped();
        let stop = async move {
            tokio::select! {
                _ = cluster_stop => {}
                _ = own_rx.wait_for(|s| *s) => {}
            }
        };
        let component = format!("kubelet {name}");
        let label = component.clone();
        self.spawn(&component, async move {
            if let Err(e) = kubelet.run(stop).await {
                tracing::error!(error = %e, component = %label, "kubelet stopped");
            }
        });
        Ok(())
    }

    /// Stops the kubelet of node `name` as a machine failure would look to the control plane:
    /// it stops renewing its Lease and reporting status; its pods are left as they are.
    pub async fn stop_kubelet(&mut self, name: &str) -> Result<(), ClusterError> {
        let unknown = || ClusterError::Component {
            component: format!("kubelet {name}"),
            message: "no such in-process node".into(),
        };
        let tx = self.kubelet_stops.remove(name).ok_or_else(unknown)?;
        tx.send_replace(true);
        let component = format!("kubelet {name}");
        if let Some(i) = self.components.iter().position(|(n, _)| *n == component) {
            let (_, task) = self.components.remove(i);
            let _ = task.await;
        }
        Ok(())
    }

    /// Starts the kubelet of node `name` again after [`stop_kubelet`](Self::stop_kubelet), with
    /// a fresh runtime (as after a reboot).
    pub fn start_kubelet(&mut self, name: &str) -> Result<(), ClusterError> {
        let i = self
            .node_names
            .iter()
            .position(|n| n == name)
            .filter(|_| !self.kubelet_stops.contains_key(name))
            .ok_or_else(|| ClusterError::Component {
                component: format!("kubelet {name}"),
                message: "not a stopped in-process node".into(),
            })?;
        self.spawn_kubelet(i, name)
    }

    /// A future that resolves when the cluster shuts down.
    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    fn spawn(&mut self, name: &str, f: impl std::future::Future<Output = ()> + Send + 'static) {
        self.components.push((name.to_string(), tokio::spawn(f)));
    }

    /// Where the in-process DNS server listens (empty without [`ClusterBuilder::cluster_dns`]).
    pub fn dns_addrs(&self) -> &[SocketAddr] {
        &self.dns_addrs
    }

    /// Publishes the DNS server as `kube-system/kube-dns` in the background: its endpoint is
    /// the first node's gateway on port 53 when pods use it there (once the node has its
    /// podCIDR, at most 30 s), else where it listens.
    fn publish_dns(&mut self) {
        let Some(addr) = self.dns_addrs.first().copied() else {
            return;
        };
        let client = self.client.clone();
        let node = self
            .node_names
            .first()
            .filter(|_| self.kubelet_dns.cluster_dns_on_gateway)
            .cloned();
        let stop = self.stopped();
        self.spawn("dns publisher", async move {
            tokio::select! {
                _ = stop => {}
                _ = publish_kube_dns_at(client, node, addr) => {}
            }
        });
    }
}

/// [`Cluster::publish_dns`]'s task: waits for `node`'s podCIDR (when given), then publishes.
async fn publish_kube_dns_at(client: SharedClient, node: Option<String>, addr: SocketAddr) {
    let mut endpoint = addr;
    if let Some(node) = node {
        let nodes: orch_types::client::Api<k8s_openapi::api::core::v1::Node> =
            orch_types::client::Api::all(client.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let cidr = nodes
                .get_opt(&node)
                .await
                .ok()
                .flatten()
                .and_then(|n| n.spec?.pod_cidr)
                .and_then(|c| c.parse::<orch_kubelet::runtime::process::ipam::Cidr>().ok());
            if let Some(c) = cidr {
                endpoint = SocketAddr::new(c.gateway().into(), addr.port());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if endpoint.ip().is_unspecified() {
        endpoint = SocketAddr::new([127, 0, 0, 1].into(), addr.port());
    }
    if let Err(e) = crate::dns::publish_kube_dns(&client, endpoint).await {
        tracing::warn!(error = %e, "cannot publish the kube-dns Service");
    }
}

impl Cluster {
    /// Waits until every in-process node is registered and Ready.
    pub async fn wait_nodes_ready(&self, limit: Duration) -> Result<(), ClusterError> {
        if self.node_names.is_empty() {
            return Ok(());
        }
        let nodes: orch_types::client::Api<k8s_openapi::api::core::v1::Node> =
            orch_types::client::Api::all(self.client.clone());
        let deadline = Instant::now() + limit;
        loop {
            let mut ready = 0;
            for name in &self.node_names {
                if let Ok(Some(n)) = nodes.get_opt(name).await {
                    let is_ready = n
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    if is_ready {
                        ready += 1;
                    }
                }
            }
            if ready == self.node_names.len() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::NodesNotReady(limit));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The in-process client (no HTTP, no JSON).
    pub fn client(&self) -> SharedClient {
        self.client.clone()
    }

    /// The API server.
    pub fn api_server(&self) -> &Arc<ApiServer> {
        &self.api
    }

    /// The HTTP address, if serving HTTP.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// `https://ADDR` (`http://ADDR` with [`ClusterBuilder::insecure_http`]), if serving HTTP.
    pub fn url(&self) -> Option<String> {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        self.addr.map(|a| format!("{scheme}://{a}"))
    }

    /// The cluster PKI (`DIR/pki`), when serving HTTPS.
    pub fn pki(&self) -> Option<&orch_apiserver::pki::Pki> {
        self.pki.as_deref()
    }

    /// The kubeconfig pointing at this cluster, if serving HTTP.
    pub fn kubeconfig(&self) -> Option<&Path> {
        self.kubeconfig.as_deref()
    }

    /// Names of the in-process nodes.
    pub fn node_names(&self) -> &[String] {
        &self.node_names
    }

    /// The data dir (or the temporary work dir).
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// How long [`ClusterBuilder::start`] took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Stops everything gracefully: kubelets (pods terminated on the process runtime), then
    /// controllers and scheduler, then the HTTP server; removes the temporary work dir.
    pub async fn shutdown(mut self) -> Result<(), ClusterError> {
        self.stop.send_replace(true);
        for (name, task) in std::mem::take(&mut self.components) {
            if let Err(e) = task.await {
                if e.is_panic() {
                    return Err(ClusterError::Component {
                        component: name,
                        message: "panicked".into(),
                    });
                }
            }
        }
        if let Some(http) = self.http.take() {
            match http.await {
                Ok(r) => r?,
                Err(e) if e.is_panic() => {
                    return Err(ClusterError::Component {
                        component: "apiserver".into(),
                        message: "panicked".into(),
                    })
                }
                Err(_) => {}
            }
            // The storage is released only once the server's stopping work is done (a new
            // cluster on the same data dir could not open it before).
            let _ = tokio::time::timeout(Duration::from_secs(10), self.api.stopped()).await;
        }
        if let Some(t) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(t);
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        for (_, t) in &self.components {
            t.abort();
        }
        if let Some(h) = &self.http {
            h.abort();
        }
        if let Some(t) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(t);
        }
    }
}

/// The admin kubeconfig `DIR/kubeconfig` (`kubernetes-admin` in `system:masters`) and one per
/// component for when they run as separate processes: `scheduler.conf`
/// (`system:kube-scheduler`) and `controller-manager.conf` (`system:kube-controller-manager`),
/// kubeadm's names; each embeds the CA and its client certificate.
fn write_kubeconfigs(
    pki: &orch_apiserver::pki::Pki,
    dir: &Path,
    server: &str,
) -> Result<(), ClusterError> {
    use orch_apiserver::kubeconfig::{write, Endpoint};
    let ca = Some(pki.ca_cert_pem().to_string());
    let files = [
        ("kubeconfig", pki.admin()?),
        (
            "scheduler.conf",
            pki.client_cert("scheduler", "system:kube-scheduler", &[])?,
        ),
        (
            "controller-manager.conf",
            pki.client_cert("controller-manager", "system:kube-controller-manager", &[])?,
        ),
    ];
    for (file, client) in files {
        let ep = Endpoint {
            ca_pem: ca.clone(),
            client: Some(client),
            ..Endpoint::new(server)
        };
        write(dir.join(file), &ep)?;
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ClusterError> {
    orch_apiserver::listen(addr).map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => ClusterError::AddrInUse { addr },
        _ => ClusterError::Listen { addr, source },
    })
}

/// Creates the data dir if needed and checks (or writes) its format marker.
pub fn prepare_data_dir(dir: &Path) -> Result<(), ClusterError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ClusterError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let marker = dir.join(DATA_FORMAT_FILE);
    match std::fs::read_to_string(&marker) {
        Ok(content) => {
            let found: u32 = content
                .trim()
                .parse()
                .map_err(|_| ClusterError::BadDataFormat {
                    dir: dir.to_path_buf(),
                    content: content.clone(),
                })?;
            if found > DATA_FORMAT {
                return Err(ClusterError::NewerDataFormat {
                    dir: dir.to_path_buf(),
                    found,
                    supported: DATA_FORMAT,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&marker, format!("{DATA_FORMAT}\n")).map_err(io(&marker))
        }
        Err(e) => Err(io(&marker)(e)),
    }
}

fn temp_work_dir() -> Result<PathBuf, ClusterError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "orch-cluster-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).map_err(|source| ClusterError::Io {
        path: d.clone(),
        source,
    })?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_format_marker_is_written_then_checked() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("data");
        prepare_data_dir(&dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(DATA_FORMAT_FILE)).unwrap(),
            "1\n"
        );
        prepare_data_dir(&dir).unwrap();
        std::fs::write(dir.join(DATA_FORMAT_FILE), "7\n").unwrap();
        let e = prepare_data_dir(&dir).unwrap_err();
        assert!(matches!(
            e,
            ClusterError::NewerDataFormat {
                found: 7,
                supported: 1,
                ..
            }
        ));
        assert!(e.to_string().contains("newer"), "{e}");
        std::fs::write(dir.join(DATA_FORMAT_FILE), "x").unwrap();
        assert!(matches!(
            prepare_data_dir(&dir).unwrap_err(),
            ClusterError::BadDataFormat { .. }
        ));
    }
}
