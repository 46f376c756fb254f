//! [`ApiServer`]: storage + watch cache + REST semantics, and [`serve`] to put it on a socket.

use crate::cache::{WatchCache, DEFAULT_WINDOW};
use crate::storage::{embedded::EmbeddedStore, memory::MemoryStore, SharedStorage, StorageError};
use orch_types::clock::{SharedClock, SystemClock};
use orch_types::registry::ResourceInfo;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Which storage backend to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// In memory, nothing durable.
    Memory,
    /// Durable in this data directory (see [`crate::storage::embedded`]).
    Embedded(PathBuf),
    /// An etcd v3 cluster (see [`crate::storage::etcd`]). Connecting is async: open it with
    /// [`ApiServer::open`] ([`ApiServer::new`] refuses it).
    #[cfg(feature = "etcd")]
    Etcd {
        /// Client URLs of the etcd members (`http://127.0.0.1:2379`, `https://…` with `tls`).
        servers: Vec<String>,
        /// Prepended to every key; empty: keys are `/registry/…`, as kube-apiserver's default
        /// `--etcd-prefix`.
        prefix: String,
        /// Client TLS (CA bundle, client certificate and key).
        tls: Option<crate::storage::etcd::EtcdTls>,
    },
}

/// Configuration of an [`ApiServer`].
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// Storage backend.
    pub storage: StorageConfig,
    /// Clock for creationTimestamp/deletionTimestamp.
    pub clock: SharedClock,
    /// Events kept per resource type in the watch cache.
    pub watch_window: usize,
    /// Idle time after which a watch with `allowWatchBookmarks` gets a bookmark.
    pub bookmark_interval: Duration,
    /// History older than this is compacted (upstream compacts every 5 minutes); `None`: never.
    pub compaction_interval: Option<Duration>,
    /// Largest accepted request body (upstream: 3 MiB).
    pub max_body_bytes: usize,
    /// An HTTP watch without `timeoutSeconds` ends after a random time between this and twice
    /// this (upstream `--min-request-timeout`, 30 minutes).
    pub min_request_timeout: Duration,
    /// How often deleted [`SYSTEM_NAMESPACES`] are re-created (upstream: one minute).
    pub system_namespaces_interval: Duration,
    /// Events (`v1` and `events.k8s.io/v1`) are deleted this long after their last write
    /// (upstream `--event-ttl`, one hour); `None`: kept until deleted.
    pub event_ttl: Option<Duration>,
    /// TLS towards kubelets (`pods/log`, metrics, streaming; see [`crate::kubelet_client`]):
    /// verifying their serving certificates against the cluster CA and presenting the
    /// `apiserver-kubelet-client` certificate; `None`: plain HTTP.
    pub kubelet_tls: Option<Arc<rustls::ClientConfig>>,
    /// Service-account tokens: signing key (none: an ephemeral key generated at start),
    /// issuer and accepted audiences ([`crate::serviceaccount`]).
    pub service_account_tokens: crate::serviceaccount::TokenConfig,
    /// Runs the ServiceAccount admission plugin on pod creation
    /// ([`crate::admission::service_account`]): pods need their service account to exist and
    /// get the projected token volume. Off by default for an API server without controllers
    /// (nothing would create the `default` accounts); `orch up` and `orch apiserver` turn it
    /// on, as kube-apiserver enables the plugin by default.
    pub service_account_admission: bool,
    /// Authentication and authorization (default: AlwaysAllow, anonymous allowed;
    /// [`crate::auth::AuthConfig::secure`] is `Node,RBAC`).
    pub auth: crate::auth::AuthConfig,
    /// Publishes this server as an endpoint of the `kubernetes` Service
    /// ([`crate::kubernetes_service`]); `None` (the default, for servers nobody reaches over
    /// the network): no Service.
    pub kubernetes_service: Option<crate::kubernetes_service::KubernetesServiceConfig>,
    /// Reads (`get`, `list`) served at once over HTTP before answering 429 (upstream
    /// `--max-requests-inflight`, 400; 0: no limit); see [`crate::flowcontrol`].
    pub max_requests_inflight: usize,
    /// Writes served at once over HTTP before answering 429 (upstream
    /// `--max-mutating-requests-inflight`, 200; 0: no limit).
    pub max_mutating_requests_inflight: usize,
    /// API Priority and Fairness (kube-apiserver's `--enable-priority-and-fairness`, default
    /// true): the FlowSchemas and PriorityLevelConfigurations share the two limits above;
    /// false keeps max-in-flight; see [`crate::flowcontrol`].
    pub enable_priority_and_fairness: bool,
    /// Service cluster IP and node port ranges and the repair loop's timing
    /// ([`crate::service_alloc`]; kube-apiserver's `--service-cluster-ip-range`,
    /// `--service-node-port-range`).
    pub services: crate::service_alloc::ServiceAllocConfig,
}

impl ApiServerConfig {
    /// In-memory storage, system clock.
    pub fn memory() -> Self {
        Self {
            storage: StorageConfig::Memory,
            clock: Arc::new(SystemClock),
            watch_window: DEFAULT_WINDOW,
            bookmark_interval: Duration::from_secs(60),
            compaction_interval: Some(Duration::from_secs(300)),
            max_body_bytes: 3 * 1024 * 1024,
            min_request_timeout: Duration::from_secs(1800),
            system_namespaces_interval: Duration::from_secs(60),
            event_ttl: Some(Duration::from_secs(3600)),
            kubelet_tls: None,
            service_account_tokens: Default::default(),
            service_account_admission: false,
            auth: crate::auth::AuthConfig::default(),
            kubernetes_service: None,
            max_requests_inflight: crate::flowcontrol::maxinflight::DEFAULT_MAX_REQUESTS_INFLIGHT,
            max_mutating_requests_inflight:
                crate::flowcontrol::maxinflight::DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
            enable_priority_and_fairness: true,
            services: Default::default(),
        }
    }

    /// Durable storage in `dir`, system clock.
    pub fn embedded(dir: impl Into<PathBuf>) -> Self {
        Self {
            storage: StorageConfig::Embedded(dir.into()),
            ..Self::memory()
        }
    }

    /// With this clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

/// Errors starting an [`ApiServer`].
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The storage could not be opened.
    #[error("cannot open storage: {0}")]
    Storage(#[from] StorageError),
    /// The watch cache could not be loaded.
    #[error("cannot start the watch cache: {0}")]
    Cache(#[from] crate::cache::CacheError),
    /// Creating a system namespace or the default StorageClass failed.
    #[error("cannot create {name}: {source}")]
    Bootstrap {
        /// What: `namespace default`, `storageclass local`.
        name: String,
        /// Why.
        #[source]
        source: orch_types::ApiError,
    },
    /// Listening or serving failed.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The service-account signing key cannot be used.
    #[error("service-account tokens: {0}")]
    ServiceAccountKey(#[from] crate::serviceaccount::keys::KeyError),
    /// The authentication or authorization configuration is not usable (a bad token file).
    #[error("authentication: {0}")]
    Auth(String),
    /// `ApiServer::new` was called outside a tokio runtime.
    #[error("ApiServer::new must be called inside a tokio runtime")]
    NoRuntime,
    /// `ApiServer::new` was given a storage that connects asynchronously (etcd); use
    /// `ApiServer::open`.
    #[cfg(feature = "etcd")]
    #[error("the etcd storage connects asynchronously: open the API server with ApiServer::open")]
    AsyncStorage,
}

/// The namespaces that exist from the start; the API server re-creates any of them that is
/// deleted, every [`ApiServerConfig::system_namespaces_interval`] (upstream
/// `pkg/controlplane/controller/systemnamespaces`, every minute).
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The namespaces that may not be deleted (upstream `NamespaceLifecycle` admission's immortal
/// namespaces, `staging/src/k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle/
/// admission.go`). `kube-node-lease` is not among them: upstream lets it be deleted and
/// re-creates it.
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// The StorageClass that exists from the start, annotated as the default class (so claims
/// without a class get it, see [`crate::admission::default_storage_class`]).
pub const DEFAULT_STORAGE_CLASS: &str = "local";

/// Its provisioner: the `persistentvolume-binder` controller of orch-controllers creates a
/// node-local directory volume for each claim of the class.
pub const LOCAL_PROVISIONER: &str = "orch.dev/local";

/// The default StorageClass object: provisioner [`LOCAL_PROVISIONER`], volumes deleted with
/// their claims (`reclaimPolicy: Delete`), bound once a pod using the claim is scheduled
/// (`volumeBindingMode: WaitForFirstConsumer`, so the volume is created on the pod's node).
pub fn default_storage_class() -> orch_types::DynamicObject {
    let mut sc =
        orch_types::DynamicObject::new("storage.k8s.io/v1", "StorageClass", DEFAULT_STORAGE_CLASS);
    sc.metadata.annotations = Some(
        [(
            crate::admission::default_storage_class::IS_DEFAULT_CLASS.to_string(),
            "true".to_string(),
        )]
        .into(),
    );
    sc.data
        .insert("provisioner".into(), LOCAL_PROVISIONER.into());
    sc.data.insert("reclaimPolicy".into(), "Delete".into());
    sc.data
        .insert("volumeBindingMode".into(), "WaitForFirstConsumer".into());
    sc
}

/// An API server: storage, watch cache and REST semantics. Cheap to share (`Arc`).
pub struct ApiServer {
    pub(crate) storage: SharedStorage,
    pub(crate) cache: Arc<WatchCache>,
    pub(crate) config: ApiServerConfig,
    pub(crate) me: Weak<ApiServer>,
    /// Set when the HTTP server shuts down: ends open watches so shutdown does not hang.
    pub(crate) stop: tokio::sync::watch::Sender<bool>,
    /// ResourceQuota admission checks one namespace at a time.
    pub(crate) quota_locks: crate::admission::resource_quota::NamespaceLocks,
    /// The custom resources this server's CRDs define ([`crate::crd`]).
    pub(crate) custom_resources: crate::crd::CustomResources,
    /// CRDs whose objects this server is deleting.
    pub(crate) crd_finalizing: crate::crd::controller::Finalizing,
    /// The APIServices this server proxies to ([`crate::aggregator`]).
    pub(crate) aggregator: crate::aggregator::Aggregator,
    /// The HTTP client of requests to kubelets ([`crate::kubelet_client`]).
    pub(crate) kubelet_http: reqwest::Client,
    /// Signs and verifies service-account tokens ([`crate::serviceaccount`]).
    pub(crate) tokens: crate::serviceaccount::Issuer,
    /// Authenticators and authorizers ([`crate::auth`]).
    pub(crate) auth: crate::auth::Auth,
    /// The overload filter: APF or max-in-flight ([`crate::flowcontrol`]).
    pub(crate) inflight: crate::flowcontrol::Limiter,
    /// Service cluster IPs and node ports ([`crate::service_alloc`]).
    pub(crate) service_alloc: crate::service_alloc::ServiceAllocator,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("storage", &self.config.storage)
            .field("revision", &self.storage.current_revision())
            .finish()
    }
}

impl ApiServer {
    /// Opens the storage, loads the watch cache and creates the system namespaces.
    ///
    /// Must be called inside a tokio runtime (the watch cache runs a task).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use orch_apiserver::{ApiServer, ApiServerConfig};
    /// use orch_types::client::ListParams;
    /// use orch_types::registry;
    /// let api = ApiServer::new(ApiServerConfig::memory()).unwrap();
    /// let ns = registry::by_name("ns")[0].api_resource();
    /// let list = api.client().list(&ns, None, &ListParams::default()).await.unwrap();
    /// assert_eq!(list.items.len(), 4);
    /// # }
    /// ```
    pub fn new(config: ApiServerConfig) -> Result<Arc<Self>, ApiServerError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ApiServerError::NoRuntime);
        }
        let storage: SharedStorage = match &config.storage {
            StorageConfig::Memory => Arc::new(MemoryStore::new()),
            StorageConfig::Embedded(dir) => Arc::new(EmbeddedStore::open(dir)?),
            #[cfg(feature = "etcd")]
            StorageConfig::Etcd { .. } => return Err(ApiServerError::AsyncStorage),
        };
        Self::with_storage(storage, config)
    }

    /// Like [`ApiServer::new`] without blocking the runtime: opens the storage (connects to
    /// etcd for [`StorageConfig::Etcd`]), loads the watch cache and creates the system
    /// namespaces as async calls. Works on any runtime flavor, current-thread included.
    pub async fn open(config: ApiServerConfig) -> Result<Arc<Self>, ApiServerError> {
        let storage: SharedStorage = match &config.storage {
            StorageConfig::Memory => Arc::new(MemoryStore::new()),
            StorageConfig::Embedded(dir) => Arc::new(EmbeddedStore::open(dir)?),
            #[cfg(feature = "etcd")]
            StorageConfig::Etcd {
                servers,
                prefix,
                tls,
            } => Arc::new(
                crate::storage::etcd::EtcdStore::connect(servers, prefix, tls.as_ref()).await?,
            ),
        };
        Self::start(storage, config).await
    }

    /// Like [`ApiServer::with_storage`] without blocking the runtime (for a storage whose calls
    /// need the runtime to progress, such as etcd's client).
    pub async fn start(
        storage: SharedStorage,
        config: ApiServerConfig,
    ) -> Result<Arc<Self>, ApiServerError> {
        let tokens = crate::serviceaccount::Issuer::new(&config.service_account_tokens)?;
        let cache = WatchCache::start(storage.clone(), config.watch_window).await?;
        let api = Self::assemble(storage, cache, config, tokens)?;
        api.bootstrap().await?;
        api.spawn_loops();
        Ok(api)
    }

    /// Like [`ApiServer::new`] on an already opened storage (any backend).
    pub fn with_storage(
        storage: SharedStorage,
        config: ApiServerConfig,
    ) -> Result<Arc<Self>, ApiServerError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ApiServerError::NoRuntime);
        }
        let tokens = crate::serviceaccount::Issuer::new(&config.service_account_tokens)?;
        let cache =
            futures::executor::block_on(WatchCache::start(storage.clone(), config.watch_window))?;
        let api = Self::assemble(storage, cache, config, tokens)?;
        futures::executor::block_on(api.bootstrap())?;
        api.spawn_loops();
        Ok(api)
    }

    fn assemble(
        storage: SharedStorage,
        cache: Arc<WatchCache>,
        config: ApiServerConfig,
        tokens: crate::serviceaccount::Issuer,
    ) -> Result<Arc<Self>, ApiServerError> {
        let auth = crate::auth::Auth::new(&config.auth, &cache).map_err(ApiServerError::Auth)?;
        let kubelet_http = crate::kubelet_client::http_client(config.kubelet_tls.clone());
        let inflight = crate::flowcontrol::Limiter::new(&config);
        let config_services = config.services.clone();
        Ok(Arc::new_cyclic(|me| Self {
            storage,
            cache,
            config,
            me: me.clone(),
            stop: tokio::sync::watch::channel(false).0,
            quota_locks: Default::default(),
            custom_resources: Default::default(),
            crd_finalizing: Default::default(),
            aggregator: Default::default(),
            kubelet_http,
            tokens,
            auth,
            inflight,
            service_alloc: crate::service_alloc::ServiceAllocator::new(config_services),
        }))
    }

    /// Serves the CRDs already stored, then starts the compactor, the system namespaces loop,
    /// the expirer and the CRD controllers.
    fn spawn_loops(self: &Arc<Self>) {
        crate::crd::controller::rebuild(self);
        tokio::spawn(crate::crd::controller::run(Arc::downgrade(self)));
        tokio::spawn(crate::aggregator::run(Arc::downgrade(self)));
        if let Some(every) = self.config.compaction_interval {
            tokio::spawn(compactor(Arc::downgrade(self), every));
        }
        tokio::spawn(system_namespaces(
            Arc::downgrade(self),
            self.config.system_namespaces_interval,
        ));
        tokio::spawn(expirer(Arc::downgrade(self)));
        crate::flowcontrol::spawn(self);
        tokio::spawn(crate::service_alloc::repair::run(Arc::downgrade(self)));
        if let Some(k) = &self.config.kubernetes_service {
            tokio::spawn(crate::kubernetes_service::run(
                Arc::downgrade(self),
                k.clone(),
            ));
        }
    }

    /// Waits, once the server stopped serving ([`serve`], [`serve_tls`]), until what it does
    /// on stopping is done: open watches ended, the `kubernetes` Service's record of this
    /// server removed ([`crate::kubernetes_service`]). Its storage is then free to reopen.
    pub async fn stopped(&self) {
        self.stop.closed().await;
    }

    /// The TTL of a write of `info`'s objects: [`ApiServerConfig::event_ttl`] for Events
    /// (upstream's event registry gives every create and update it), none otherwise.
    pub(crate) fn ttl(&self, info: &ResourceInfo) -> Option<Duration> {
        let event = info.kind == "Event" && matches!(info.group, "" | "events.k8s.io");
        self.config.event_ttl.filter(|_| event)
    }

    async fn bootstrap(&self) -> Result<(), ApiServerError> {
        // The first repair of Service allocations runs before the server serves, as upstream's
        // start-up hook waits for the first pass of the repair controllers
        // (`pkg/registry/core/service/ipallocator/controller/repair.go` `RunUntil`); the loop
        // `service_alloc::repair::run` repeats it. Run from a spawned task instead, a pass still
        // reading the embedded store when a quick stop came kept the store open past `stopped()`.
        crate::service_alloc::repair::round(self).await;
        let mut wanted = self.system_namespace_objects()?;
        if let Some(sc) = orch_types::registry::by_kind("storage.k8s.io/v1", "StorageClass") {
            wanted.push((sc, default_storage_class()));
        }
        wanted.extend(crate::flowcontrol::bootstrap_objects(self));
        self.create_missing(wanted).await?;
        if self.auth.rbac.is_some() {
            self.ensure_rbac_policy()
                .await
                .map_err(|source| ApiServerError::Bootstrap {
                    name: "rbac bootstrap policy".into(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Adds a bearer-token authenticator (service-account tokens), asked after the static
    /// token file and bootstrap tokens.
    pub fn add_token_authenticator(&self, a: Arc<dyn crate::auth::TokenAuthenticator>) {
        self.auth.add_token_authenticator(a);
    }

    /// The [`SYSTEM_NAMESPACES`] as objects to create.
    fn system_namespace_objects(
        &self,
    ) -> Result<Vec<(crate::rest::Resource, orch_types::DynamicObject)>, ApiServerError> {
        let info = orch_types::registry::by_kind("v1", "Namespace").ok_or_else(|| {
            ApiServerError::Bootstrap {
                name: "-".into(),
                source: orch_types::ApiError::internal("Namespace kind is not registered"),
            }
        })?;
        Ok(SYSTEM_NAMESPACES
            .iter()
            .map(|name| {
                (
                    info,
                    orch_types::DynamicObject::new("v1", "Namespace", name),
                )
            })
            .collect())
    }

    /// Creates each object that does not exist yet.
    async fn create_missing(
        &self,
        wanted: Vec<(crate::rest::Resource, orch_types::DynamicObject)>,
    ) -> Result<(), ApiServerError> {
        for (info, obj) in wanted {
            let name = format!("{} {}", info.singular, obj.name());
            match self
                .create_object(info, None, obj, &Default::default())
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(source) => return Err(ApiServerError::Bootstrap { name, source }),
            }
        }
        Ok(())
    }

    /// The storage backend.
    pub fn storage(&self) -> &SharedStorage {
        &self.storage
    }

    /// The watch cache.
    pub fn watch_cache(&self) -> &Arc<WatchCache> {
        &self.cache
    }

    /// The configuration.
    pub fn config(&self) -> &ApiServerConfig {
        &self.config
    }

    /// A strong handle to this server.
    pub(crate) fn arc(&self) -> Arc<ApiServer> {
        self.me.upgrade().expect("ApiServer used after drop")
    }

    /// The in-process client: no HTTP, no JSON.
    pub fn client(&self) -> orch_types::client::SharedClient {
        Arc::new(crate::client::local::LocalClient::new(self.arc()))
    }

    /// The HTTP router (axum) serving the Kubernetes API.
    pub fn router(&self) -> axum::Router {
        crate::rest::router::router(self.arc())
    }
}

/// Re-creates deleted system namespaces (a namespace still terminating exists: it comes back
/// once it is gone).
async fn system_namespaces(api: Weak<ApiServer>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(api) = api.upgrade() else { return };
        let done = match api.system_namespace_objects() {
            Ok(wanted) => api.create_missing(wanted).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "re-creating system namespaces failed");
        }
    }
}

/// How often keys whose TTL passed are deleted (stores that do not expire keys themselves).
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

/// Deletes the keys whose TTL passed every [`EXPIRY_INTERVAL`] ([`crate::storage::Storage::expire_due`]).
async fn expirer(api: Weak<ApiServer>) {
    loop {
        tokio::time::sleep(EXPIRY_INTERVAL).await;
        let Some(api) = api.upgrade() else { return };
        if let Err(e) = api.storage.expire_due().await {
            tracing::warn!(error = %e, "deleting expired keys failed");
        }
    }
}

/// Compacts history older than one interval, like kube-apiserver's compactor (one
/// [`crate::storage::Storage::compactor_round`] per interval).
async fn compactor(api: Weak<ApiServer>, every: Duration) {
    let mut state = crate::storage::CompactorState::default();
    loop {
        tokio::time::sleep(every).await;
        let Some(api) = api.upgrade() else { return };
        if let Err(e) = api.storage.compactor_round(&mut state).await {
            tracing::warn!(error = %e, "compaction failed");
        }
    }
}

/// A listening socket for the API server on `addr`, with the accept queue as long as the
/// kernel allows (`/proc/sys/net/core/somaxconn`), as Go's `net.Listen` makes it
/// (`src/net/sock_linux.go`, `maxListenerBacklog`) for kube-apiserver. Tokio's
/// `TcpListener::bind` asks for 1,024: under a storm of new connections (thousands of clients
/// at once) the queue overflowed, the kernel dropped SYNs, and clients such as node heartbeats
/// waited for SYN retransmissions (1, 3, 7, 15 s …) before the server ever saw them.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(listen_backlog())
}

/// The kernel's `somaxconn` (at most 65,535, as Go caps it); 4,096 (the kernel's default since
/// Linux 5.4) when it cannot be read.
fn listen_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .map_or(4096, |n| n.min(65_535))
}

/// Serves `api` on `listener` until `shutdown` completes, then finishes in-flight requests
/// (open watches are ended).
pub async fn serve(
    api: Arc<ApiServer>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiServerError> {
    let router = api.router();
    let stopper = api.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopper.stop.send_replace(true);
        })
        .await?;
    Ok(())
}

/// Serves `api` over HTTPS with `tls` (see [`crate::tls::api_server_tls`]) until `shutdown`
/// resolves, like [`serve`]: open watches end, in-flight requests finish. Requests of a client
/// that presented a verified certificate carry its [`crate::auth::ClientIdentity`]; one whose
/// certificate did not verify is answered `401 Unauthorized` (unless it brings a valid token).
pub async fn serve_tls(
    api: Arc<ApiServer>,
    listener: tokio::net::TcpListener,
    tls: crate::tls::ServerTls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiServerError> {
    let router = api.router();
    let stopper = api.clone();
    crate::tls::serve_router(listener, tls, router, async move {
        shutdown.await;
        stopper.stop.send_replace(true);
    })
    .await?;
    Ok(())
}
