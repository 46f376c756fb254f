//! [`Kubelet`]: the thin async driver around the pod workers.
//!
//! It registers the Node, renews its Lease every 10 s (retrying with back-off 200 ms → 7 s),
//! updates node status on change or every 5 minutes, lists and watches the pods bound to the
//! node, admits them, runs one task per pod (ticking its [`PodWorker`], running probe and hook
//! jobs on blocking threads, writing status with optimistic-concurrency retries, recording
//! events, deleting the pod object with grace 0 once terminated), collects logs and serves
//! them over HTTP. Everything goes through [`Client`](orch_types::client::Client).
//!
//! Each pod task is a loop around [`PodSync::step`](crate::pod_sync::PodSync::step), and a pod
//! is admitted with [`pod_sync::admit`](crate::pod_sync::admit): this driver only carries out
//! what a step returns (jobs on blocking threads, events, the status write, the deletion) and
//! sleeps until its wake-up or news. The simulator drives the same step function on its
//! virtual clock, with its own I/O around it; it does not run this driver.
//!
//! Time: cores read the [`Clock`](orch_types::clock::Clock); the driver sleeps with tokio
//! timers.

use crate::env::EnvContext;
use crate::logs::{LogError, LogSource, LogTarget};
use crate::node::{self, NodeConfig};
use crate::pod_sync::{self, EnvObjects, PodSync};
use crate::runtime::{ContainerRecord, ContainerRuntime, StopSignal};
use crate::worker::{EventKind, Job, WorkerConfig};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Node, NodeStatus, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use orch_types::client::{
    Api, DeleteParams, ListParams, Preconditions, SharedClient, WatchEvent, WatchParams,
};
use orch_types::clock::SharedClock;
use orch_types::events::{EventRecorder, EventType, ObjectRef};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Settings of a kubelet.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// Node identity, capacity, labels, taints.
    pub node: NodeConfig,
    /// Address the log server listens on (port from `node.port`, 0 = any).
    pub listen_ip: std::net::IpAddr,
    /// `--allow-privileged`.
    pub allow_privileged: bool,
    /// How often a pod worker polls the runtime when no timer is due (exits of real
    /// processes are noticed this fast).
    pub poll_interval: Duration,
    /// Lease renew interval (10 s).
    pub heartbeat: Duration,
    /// `leaseDurationSeconds` (40).
    pub lease_duration_seconds: i32,
    /// Node status is written at least this often even without change (5 min).
    pub status_report: Duration,
    /// Stop containers when the kubelet shuts down (in-process clusters); a crashed or killed
    /// kubelet leaves them running and re-attaches.
    pub stop_pods_on_shutdown: bool,
    /// Serve HTTPS with this configuration (its serving certificate and the client CA; see
    /// [`crate::tls`]); `None`: plain HTTP (tests and the simulation).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The kubelet's directory (upstream `--root-dir`): projected volumes are written to
    /// `ROOT/pods/UID/volumes/kubernetes.io~projected/NAME` ([`crate::projected`]). `None`: they
    /// are not written (runtimes whose containers read no files, such as the simulated one).
    pub root_dir: Option<std::path::PathBuf>,
    /// `--cluster-dns`, `--cluster-domain`, `--resolv-conf`: the pods' resolver configuration
    /// ([`crate::dns`]).
    pub dns: crate::dns::DnsSettings,
}

impl KubeletConfig {
    /// Defaults for `node_name`.
    pub fn new(node_name: &str) -> Self {
        Self {
            node: NodeConfig::new(node_name),
            listen_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            allow_privileged: false,
            poll_interval: Duration::from_millis(100),
            heartbeat: Duration::from_secs(10),
            lease_duration_seconds: 40,
            status_report: Duration::from_secs(300),
            stop_pods_on_shutdown: true,
            tls: None,
            root_dir: None,
            dns: crate::dns::DnsSettings::default(),
        }
    }
}

/// Errors that stop a kubelet.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The log server could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

struct PodEntry {
    sync: Arc<Mutex<PodSync>>,
    notify: Arc<Notify>,
    namespace: String,
    name: String,
}

/// A kubelet: create with [`Kubelet::new`], run with [`Kubelet::run`].
pub struct Kubelet {
    cfg: Mutex<KubeletConfig>,
    client: SharedClient,
    rt: Arc<dyn ContainerRuntime>,
    clock: SharedClock,
    pods: Mutex<HashMap<String, PodEntry>>,
    recorder: EventRecorder,
    adoptable: Mutex<Vec<ContainerRecord>>,
    addr: Mutex<Option<SocketAddr>>,
    stop: watch::Sender<bool>,
    tokens: crate::token::TokenManager,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("node", &self.cfg.lock().node.name)
            .finish_non_exhaustive()
    }
}

/// A pod task with no wake-up of its own still looks again this often.
const IDLE: Duration = Duration::from_secs(10);

/// How often projected volumes are rewritten (tokens refreshed when due).
const PROJECTED_RESYNC: Duration = Duration::from_secs(30);

fn backoff_sleep(d: &mut Duration) -> Duration {
    let cur = *d;
    *d = (*d * 2).min(Duration::from_secs(7));
    cur
}

impl Kubelet {
    /// A kubelet for `cfg.node.name` talking to `client`, running containers on `rt`.
    pub fn new(
        cfg: KubeletConfig,
        client: SharedClient,
        rt: Arc<dyn ContainerRuntime>,
        clock: SharedClock,
    ) -> Arc<Self> {
        let recorder = EventRecorder::new(
            client.clone(),
            clock.clone(),
            "kubelet",
            Some(&cfg.node.name),
        );
        Arc::new(Self {
            cfg: Mutex::new(cfg),
            client,
            rt,
            clock,
            pods: Mutex::new(HashMap::new()),
            recorder,
            adoptable: Mutex::new(vec![]),
            addr: Mutex::new(None),
            stop: watch::channel(false).0,
            tokens: crate::token::TokenManager::new(),
        })
    }

    /// The node name.
    pub fn node_name(&self) -> String {
        self.cfg.lock().node.name.clone()
    }

    /// The address the log server listens on, once [`run`](Self::run) bound it.
    pub fn addr(&self) -> Option<SocketAddr> {
        *self.addr.lock()
    }

    /// Runs until `shutdown` resolves: serves logs, registers the node, heartbeats, syncs pods.
    pub async fn run(
        self: Arc<Self>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), KubeletError> {
        let (ip, port) = {
            let c = self.cfg.lock();
            (c.listen_ip, c.node.port)
        };
        let addr = SocketAddr::new(ip, port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| KubeletError::Listen { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| KubeletError::Listen { addr, source })?;
        *self.addr.lock() = Some(bound);
        self.cfg.lock().node.port = bound.port();
        let stop_tx = self.stop.clone();
        let stop_rx = stop_tx.subscribe();
        let stats = Stats {
            kubelet: self.clone(),
            started: self.clock.now(),
        };
        let router = crate::logs::router(Arc::new(Source(self.clone())))
            .merge(crate::stats::router(Arc::new(stats)))
            .merge(crate::streaming::router(Arc::new(Source(self.clone()))));
        let mut srv_stop = stop_rx.clone();
        let tls = self.cfg.lock().tls.clone();
        // Over HTTPS every request is authenticated and authorized ([`crate::auth`]).
        let router = match &tls {
            Some(_) => {
                let auth = crate::auth::KubeletAuth::new(self.client.clone(), &self.node_name());
                router.layer(axum::middleware::from_fn_with_state(
                    Arc::new(auth),
                    crate::auth::middleware,
                ))
            }
            None => router,
        };
        let server = tokio::spawn(async move {
            let stopped = async move {
                let _ = srv_stop.changed().await;
            };
            if let Some(tls) = tls {
                crate::tls::serve(listener, tls, router, stopped).await;
                return;
            }
            let r = axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "kubelet server stopped");
            }
        });
        *self.adoptable.lock() = self.rt.list_containers();
        let mut tasks = vec![server];
        tasks.push(tokio::spawn(self.clone().node_loop(stop_rx.clone())));
        tasks.push(tokio::spawn(self.clone().lease_loop(stop_rx.clone())));
        tasks.push(tokio::spawn(self.clone().pod_sync_loop(stop_rx.clone())));
        tasks.push(tokio::spawn(
            self.clone().housekeeping_loop(stop_rx.clone()),
        ));
        tasks.push(tokio::spawn(
            self.clone().projected_volumes_loop(stop_rx.clone()),
        ));
        if self.rt.needs_pod_cidr() {
            tasks.push(tokio::spawn(self.clone().pod_cidr_loop(stop_rx.clone())));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        if self.cfg.lock().stop_pods_on_shutdown {
            self.stop_all_pods().await;
        }
        Ok(())
    }

    async fn stop_all_pods(&self) {
        let workers: Vec<Arc<Mutex<PodSync>>> =
            self.pods.lock().values().map(|e| e.sync.clone()).collect();
        for w in &workers {
            w.lock().worker_mut().terminate();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            let mut all = true;
            for w in &workers {
                let mut w = w.lock();
                let w = w.worker_mut();
                let now = self.clock.now();
                for job in w.tick(now, self.rt.as_ref()) {
                    // preStop hooks still run, but bounded by the grace period
                    let out = self.rt.run_handler(
                        &job.id,
                        job.kind,
                        &job.action,
                        &job.target,
                        job.timeout,
                        now,
                    );
                    w.handler_done(&job, out, now);
                }
                all &= w.is_finished();
            }
            if all || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The pods whose workers have not finished (admitted and not yet gone).
    fn unfinished_pods(&self) -> Vec<Arc<Pod>> {
        self.pods
            .lock()
            .values()
            .filter_map(|e| {
                let s = e.sync.lock();
                let w = s.worker();
                (!w.is_finished()).then(|| w.shared_pod().clone())
            })
            .collect()
    }

    /// Rewrites the running pods' projected volumes every [`PROJECTED_RESYNC`]: tokens past
    /// 80 % of their lifetime are requested again ([`crate::token`]), ConfigMap and Secret
    /// changes reach the files (upstream remounts them on every pod sync).
    async fn projected_volumes_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(PROJECTED_RESYNC) => {}
            }
            let pods = self.unfinished_pods();
            for pod in pods {
                if crate::projected::volumes(&pod).is_empty() {
                    continue;
                }
                let alloc = {
                    let c = self.cfg.lock();
                    node::allocatable(&c.node, &node::capacity(&c.node))
                };
                let host_ip = self.cfg.lock().node.ip.clone();
                let env = pod_sync::env_context(&pod, EnvObjects::default(), &alloc, &host_ip);
                for (name, state) in self.projected_volumes(&pod, &env).await {
                    if let crate::volume::VolumeState::Failed(why) = state {
                        tracing::warn!(pod = ?pod.metadata.name, volume = %name, %why, "projected volume not refreshed");
                    }
                }
            }
        }
    }

    /// Writes the pod's projected volumes ([`crate::projected`]) under
    /// `ROOT/pods/UID/volumes/kubernetes.io~projected/NAME`, requesting its service-account
    /// tokens (bound to the pod) unless cached and fresh, and says for each whether it is ready
    /// (mounted read-only) or why not. Nothing without [`KubeletConfig::root_dir`]. Where the
    /// runtime cannot mount at any path ([`ContainerRuntime::mounts_anywhere`]: the process
    /// runtime without root), the files are written but not mounted: the pod finds them at that
    /// per-pod path (docs/design/process-runtime.md).
    async fn projected_volumes(
        &self,
        pod: &Pod,
        env: &EnvContext,
    ) -> Vec<(String, crate::volume::VolumeState)> {
        use crate::volume::VolumeState;
        let Some(root) = self.cfg.lock().root_dir.clone() else {
            return Vec::new();
        };
        let volumes = crate::projected::volumes(pod);
        let Some(uid) = pod.metadata.uid.clone().filter(|_| !volumes.is_empty()) else {
            return Vec::new();
        };
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let sources = crate::projected::sources(pod);
        let mut fetched = crate::projected::Fetched::default();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        for n in &sources.config_maps {
            if let Ok(Some(cm)) = cm_api.get_opt(n).await {
                fetched.config_maps.insert(n.clone(), cm);
            }
        }
        let s_api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        for n in &sources.secrets {
            if let Ok(Some(s)) = s_api.get_opt(n).await {
                fetched.secrets.insert(n.clone(), s);
            }
        }
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        for (audience, seconds) in sources.tokens {
            let key = crate::token::TokenKey {
                namespace: ns.clone(),
                service_account: sa.clone(),
                pod_uid: uid.clone(),
                audience: audience.clone(),
                expiration_seconds: seconds,
            };
            let token = match self.tokens.get(&key, self.clock.now()) {
                Some(t) => Ok(t),
                None => self.request_token(pod, &ns, &sa, &key).await,
            };
            fetched.tokens.insert((audience, seconds), token);
        }
        let mountable = self.rt.mounts_anywhere();
        let base = std::path::absolute(&root)
            .unwrap_or(root)
            .join("pods")
            .join(&uid)
            .join("volumes")
            .join("kubernetes.io~projected");
        let mut out = Vec::new();
        for (name, source) in volumes {
            let dir = base.join(name);
            let written = crate::projected::payload(pod, source, &fetched, env).and_then(|p| {
                crate::projected::write_atomic(&dir, &p)
                    .map_err(|e| format!("writing {}: {e}", dir.display()))
            });
            let state = match written {
                Ok(_) if !mountable => continue,
                Ok(_) => VolumeState::Ready {
                    host_path: dir.to_string_lossy().into_owned(),
                    read_only: true,
                },
                Err(e) => VolumeState::Failed(format!(
                    "MountVolume.SetUp failed for volume \"{name}\" : {e}"
                )),
            };
            out.push((name.to_string(), state));
        }
        out
    }

    /// Requests a token for the pod's service account (`serviceaccounts/NAME/token`, bound
    /// to the pod) and caches it.
    async fn request_token(
        &self,
        pod: &Pod,
        ns: &str,
        sa: &str,
        key: &crate::token::TokenKey,
    ) -> Result<String, String> {
        let resource = orch_types::registry::by_kind("v1", "ServiceAccount")
            .ok_or("the ServiceAccount kind is not registered")?
            .api_resource();
        let body = crate::token::request_body(pod, &key.audience, key.expiration_seconds);
        let answer = self
            .client
            .create_subresource(&resource, Some(ns), sa, "token", &body)
            .await
            .map_err(|e| format!("failed to fetch token: {e}"))?;
        let (token, expires) = crate::token::from_response(&answer)?;
        self.tokens.set(key.clone(), token.clone(), expires);
        Ok(token)
    }

    async fn housekeeping_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let rt = self.rt.clone();
            let _ = tokio::task::spawn_blocking(move || rt.housekeeping()).await;
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Hands the node's `spec.podCIDR` to the runtime (upstream `updatePodCIDR` →
    /// CRI `UpdateRuntimeConfig`): polled every 50 ms until the node IPAM controller assigned
    /// it (right after registration, so only a few polls), then every 30 s.
    async fn pod_cidr_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut known: Option<String> = None;
        loop {
            if let Ok(Some(n)) = nodes.get_opt(&self.node_name()).await {
                let cidr = n.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty());
                if let Some(c) = cidr.filter(|c| known.as_ref() != Some(c)) {
                    self.rt.update_pod_cidr(&c);
                    let mut cfg = self.cfg.lock();
                    if cfg.dns.cluster_dns_on_gateway {
                        if let Ok(cidr) = c.parse::<crate::runtime::process::ipam::Cidr>() {
                            cfg.dns.cluster_dns = vec![std::net::IpAddr::V4(cidr.gateway())];
                        }
                    }
                    drop(cfg);
                    known = Some(c);
                }
            }
            let wait = if known.is_some() {
                Duration::from_secs(30)
            } else {
                Duration::from_millis(50)
            };
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    // ---- node registration and status ----

    async fn register(&self) -> Result<Node, orch_types::client::ClientError> {
        let cfg = self.cfg.lock().node.clone();
        let nodes: Api<Node> = Api::all(self.client.clone());
        let now = self.clock.now();
        let want = node::build_node(&cfg, &self.rt.info(), &self.rt.list_images(), now);
        match nodes.create(&want).await {
            Ok(n) => Ok(n),
            Err(e) if e.is_already_exists() => {
                let mut existing = nodes.get(&cfg.name).await?;
                let labels = existing.metadata.labels.get_or_insert_with(BTreeMap::new);
                labels.extend(want.metadata.labels.clone().unwrap_or_default());
                let existing = nodes.replace(&existing).await?;
                let mut s = existing.clone();
                s.status = Some(node::node_status(
                    &cfg,
                    &self.rt.info(),
                    &self.rt.list_images(),
                    now,
                    existing.status.as_ref(),
                ));
                nodes.replace_status(&s).await
            }
            Err(e) => Err(e),
        }
    }

    async fn node_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut last: Option<(NodeStatus, Timestamp)> = None;
        let mut registered = false;
        loop {
            let wait = if !registered {
                match self.register().await {
                    Ok(n) => {
                        registered = true;
                        backoff = Duration::from_millis(200);
                        last = n.status.map(|s| (s, self.clock.now()));
                        tracing::info!(node = %self.node_name(), "node registered");
                        self.cfg.lock().heartbeat
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "node registration failed");
                        backoff_sleep(&mut backoff)
                    }
                }
            } else {
                match self.update_node_status(&nodes, &mut last).await {
                    Ok(()) => self.cfg.lock().heartbeat,
                    Err(e) if e.is_not_found() => {
                        registered = false;
                        Duration::ZERO
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "node status update failed");
                        backoff_sleep(&mut backoff)
                    }
                }
            };
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn update_node_status(
        &self,
        nodes: &Api<Node>,
        last: &mut Option<(NodeStatus, Timestamp)>,
    ) -> Result<(), orch_types::client::ClientError> {
        let cfg = self.cfg.lock().node.clone();
        let report = self.cfg.lock().status_report;
        let now = self.clock.now();
        let mut n = nodes.get(&cfg.name).await?;
        let new = node::node_status(
            &cfg,
            &self.rt.info(),
            &self.rt.list_images(),
            now,
            n.status.as_ref(),
        );
        let strip = |s: &NodeStatus| {
            let mut s = s.clone();
            for c in s.conditions.iter_mut().flatten() {
                c.last_heartbeat_time = None;
            }
            s
        };
        let due = match last {
            Some((prev, at)) => {
                strip(prev) != strip(&new)
                    || Duration::try_from(now.duration_since(*at)).unwrap_or_default() >= report
                    || n.status.as_ref().map(strip) != Some(strip(&new))
            }
            None => true,
        };
        if due {
            n.status = Some(new.clone());
            nodes.replace_status(&n).await?;
            *last = Some((new, now));
        }
        Ok(())
    }

    async fn lease_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let wait = match self.renew_lease().await {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    self.cfg.lock().heartbeat
                }
                Err(e) => {
                    tracing::debug!(error = %e, "lease renewal failed");
                    backoff_sleep(&mut backoff)
                }
            };
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn renew_lease(&self) -> Result<(), orch_types::client::ClientError> {
        let (name, duration) = {
            let c = self.cfg.lock();
            (c.node.name.clone(), c.lease_duration_seconds)
        };
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let now = MicroTime(self.clock.now());
        match leases.get_opt(&name).await? {
            Some(mut l) => {
                let spec = l.spec.get_or_insert_with(Default::default);
                spec.holder_identity = Some(name.clone());
                spec.lease_duration_seconds = Some(duration);
                spec.renew_time = Some(now);
                leases.replace(&l).await?;
            }
            None => {
                let nodes: Api<Node> = Api::all(self.client.clone());
                let owner = nodes
                    .get_opt(&name)
                    .await?
                    .and_then(|n| n.metadata.uid)
                    .map(|uid| OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: name.clone(),
                        uid,
                        ..Default::default()
                    });
                let l = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some("kube-node-lease".into()),
                        owner_references: owner.map(|o| vec![o]),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(name.clone()),
                        lease_duration_seconds: Some(duration),
                        renew_time: Some(now),
                        ..Default::default()
                    }),
                };
                leases.create(&l).await?;
            }
        }
        Ok(())
    }

    // ---- pods ----

    async fn pod_sync_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let selector = format!("spec.nodeName={}", self.node_name());
        let mut backoff = Duration::from_millis(200);
        let mut first = true;
        loop {
            let list = match pods.list(&ListParams::default().fields(&selector)).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "listing pods failed");
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(backoff_sleep(&mut backoff)) => {}
                    }
                    continue;
                }
            };
            backoff = Duration::from_millis(200);
            let seen: std::collections::HashSet<String> = list
                .items
                .iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            if first {
                first = false;
                self.remove_orphans(&seen);
            }
            let gone: Vec<String> = self
                .pods
                .lock()
                .keys()
                .filter(|u| !seen.contains(*u))
                .cloned()
                .collect();
            for uid in gone {
                self.pod_gone(&uid);
            }
            for p in list.items {
                self.pod_seen(p).await;
            }
            let wp = WatchParams {
                field_selector: Some(selector.clone()),
                resource_version: list.metadata.resource_version.clone(),
                allow_bookmarks: true,
                ..Default::default()
            };
            let mut stream = match pods.watch(&wp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "watch failed, relisting");
                    continue;
                }
            };
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    ev = stream.next() => match ev {
                        Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p))) => self.pod_seen(p).await,
                        Some(Ok(WatchEvent::Deleted(p))) => {
                            if let Some(uid) = p.metadata.uid.as_deref() {
                                self.pod_gone(uid);
                            }
                        }
                        Some(Ok(WatchEvent::Bookmark(_))) => {}
                        Some(Ok(WatchEvent::Error(_))) | Some(Err(_)) | None => break,
                    }
                }
            }
        }
    }

    /// Containers of pods that no longer exist: killed and removed (no orphans).
    fn remove_orphans(&self, live: &std::collections::HashSet<String>) {
        let now = self.clock.now();
        let records = std::mem::take(&mut *self.adoptable.lock());
        let mut keep = vec![];
        for r in records {
            if live.contains(&r.pod_uid) {
                keep.push(r);
            } else {
                tracing::info!(pod_uid = %r.pod_uid, container = %r.name, "removing orphaned container");
                let _ = self.rt.stop_container(&r.id, StopSignal::Kill, now);
                let _ = self.rt.remove_container(&r.id);
                let _ = self.rt.remove_sandbox(&r.pod_uid);
            }
        }
        *self.adoptable.lock() = keep;
        // sandboxes (namespace, IP, cgroups) of pods that no longer exist, even without containers
        for uid in self.rt.list_sandboxes() {
            if !live.contains(&uid) && !self.pods.lock().contains_key(&uid) {
                tracing::info!(pod_uid = %uid, "removing orphaned pod sandbox");
                let _ = self.rt.remove_sandbox(&uid);
            }
        }
    }

    fn pod_gone(&self, uid: &str) {
        if let Some(e) = self.pods.lock().get(uid) {
            e.sync.lock().worker_mut().pod_removed();
            e.notify.notify_one();
        }
    }

    async fn pod_seen(self: &Arc<Self>, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if let Some(e) = self.pods.lock().get(&uid) {
            e.sync.lock().worker_mut().update_pod(pod);
            e.notify.notify_one();
            return;
        }
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod_sync::is_terminal(&pod) {
            // Terminal before we saw it (or before a restart): nothing to run; finish deletion.
            if pod.metadata.deletion_timestamp.is_some() {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
                let mut dp = DeleteParams::immediate();
                dp.preconditions = Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                });
                let _ = pods.delete(&name, &dp).await;
            }
            return;
        }
        let (mut wcfg, alloc, poll, dns) = {
            let c = self.cfg.lock();
            let cap = node::capacity(&c.node);
            (
                WorkerConfig {
                    node_name: c.node.name.clone(),
                    host_ip: c.node.ip.clone(),
                    allow_privileged: c.allow_privileged,
                    dns: Default::default(),
                },
                node::allocatable(&c.node, &cap),
                c.poll_interval,
                c.dns.clone(),
            )
        };
        // The host's resolver configuration as it is now (upstream reads it per sandbox).
        let (node_dns, dns_error) = crate::dns::NodeDns::read(&dns);
        if let Some(e) = dns_error {
            tracing::warn!(error = %e, "cannot read the resolver configuration for pods");
        }
        wcfg.dns = node_dns;
        let pod = Arc::new(pod);
        let env = self.env_context(&pod, &alloc).await;
        let now = self.clock.now();
        let admitted = self.unfinished_pods();
        let refs: Vec<&Pod> = admitted.iter().map(|p| &**p).collect();
        let mut worker = pod_sync::admit(wcfg, pod, &refs, &alloc, env, now);
        let records = self.adoptable.lock().clone();
        worker.adopt(&records, self.rt.as_ref(), now);
        let sync = Arc::new(Mutex::new(PodSync::new(worker, now, poll)));
        let notify = Arc::new(Notify::new());
        self.pods.lock().insert(
            uid.clone(),
            PodEntry {
                sync: sync.clone(),
                notify: notify.clone(),
                namespace: ns,
                name,
            },
        );
        tokio::spawn(self.clone().pod_task(uid, sync, notify));
    }

    /// Fetches what the pod's environment references ([`pod_sync::env_refs`]) and builds the
    /// context with [`pod_sync::env_context`]; a missing pull secret is reported as an event.
    async fn env_context(
        &self,
        pod: &Pod,
        alloc: &orch_types::resources::ResourceList,
    ) -> EnvContext {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let refs = pod_sync::env_refs(pod);
        let mut objects = EnvObjects::default();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        for n in &refs.config_maps {
            if let Ok(Some(cm)) = cm_api.get_opt(n).await {
                objects.config_maps.push(cm);
            }
        }
        let s_api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        for n in refs.all_secrets() {
            match s_api.get_opt(n).await {
                Ok(Some(s)) => objects.secrets.push(s),
                _ if refs.pull_secrets.iter().any(|p| p == n) => {
                    let obj = pod_ref(pod, None);
                    let msg = format!(
                        "Unable to retrieve some image pull secrets ({n}); attempting to pull the image may not succeed."
                    );
                    let _ = self
                        .recorder
                        .record(
                            &obj,
                            EventType::Warning,
                            "FailedToRetrieveImagePullSecret",
                            &msg,
                        )
                        .await;
                }
                _ => {}
            }
        }
        let svc: Api<Service> = Api::namespaced(self.client.clone(), &ns);
        if let Ok(l) = svc.list(&ListParams::default()).await {
            objects.services = l.items;
        }
        let default_svc: Api<Service> = Api::namespaced(self.client.clone(), "default");
        objects.kubernetes_service = default_svc.get_opt("kubernetes").await.ok().flatten();
        // The pod's claims and the volumes they are bound to (a claim or volume that cannot be
        // fetched is missing: the pod waits for it, see `volume::PodVolumes`).
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        for n in crate::volume::claim_names(pod) {
            let Ok(Some(c)) = claims.get_opt(&n).await else {
                continue;
            };
            let bound = orch_runtime::volume::claim_volume(&c).to_string();
            if !bound.is_empty() {
                if let Ok(Some(v)) = volumes.get_opt(&bound).await {
                    objects.volumes.push(v);
                }
            }
            objects.claims.push(c);
        }
        let host_ip = self.cfg.lock().node.ip.clone();
        let mut ctx = pod_sync::env_context(pod, objects, alloc, &host_ip);
        for (name, state) in self.projected_volumes(pod, &ctx).await {
            ctx.volumes.insert(&name, state);
        }
        ctx
    }

    async fn pod_task(
        self: Arc<Self>,
        uid: String,
        sync: Arc<Mutex<PodSync>>,
        notify: Arc<Notify>,
    ) {
        let mut stop = self.stop.subscribe();
        if *stop.borrow() {
            return;
        }
        // The runtime's pod network is not ready (no podCIDR yet, e.g. right after the node
        // registered): wait a little for it, as upstream holds pods while the network is not
        // ready, rather than fail the sandbox and retry it 10 s later.
        let net_deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.rt.needs_pod_cidr() && tokio::time::Instant::now() < net_deadline {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        loop {
            if *stop.borrow() {
                return;
            }
            let now = self.clock.now();
            let (out, pod) = {
                let mut s = sync.lock();
                let pod = s.worker().shared_pod().clone();
                (s.step(now, self.rt.as_ref(), pod.status.as_ref()), pod)
            };
            for job in out.jobs {
                self.spawn_job(job, sync.clone(), notify.clone());
            }
            if !out.events.is_empty() {
                // Off the status path: events never delay a pod's status (order kept per batch).
                let me = self.clone();
                let pod = pod.clone();
                let events = out.events;
                tokio::spawn(async move {
                    for ev in events {
                        let obj = pod_ref(&pod, ev.field_path.as_deref());
                        let t = if ev.kind == EventKind::Normal {
                            EventType::Normal
                        } else {
                            EventType::Warning
                        };
                        if let Err(e) = me.recorder.record(&obj, t, &ev.reason, &ev.message).await {
                            tracing::debug!(error = %e, "recording event failed");
                        }
                    }
                });
            }
            if out.finished {
                break;
            }
            // A missing ConfigMap/Secret may appear later, a claim be bound: refetched while
            // blocked.
            if out.refresh_env {
                let alloc = {
                    let c = self.cfg.lock();
                    node::allocatable(&c.node, &node::capacity(&c.node))
                };
                let ctx = self.env_context(&pod, &alloc).await;
                sync.lock().worker_mut().set_env_context(ctx);
                notify.notify_one();
            }
            let mut write_failed = false;
            if let Some(status) = &out.status_to_write {
                match self.write_status(&sync, status).await {
                    Ok(()) => sync.lock().status_written(out.status_digest),
                    Err(e) => {
                        tracing::debug!(error = %e, "status update failed");
                        sync.lock().status_write_failed();
                        write_failed = true;
                    }
                }
            }
            if out.delete && !write_failed {
                let ns = pod
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                let name = pod.metadata.name.clone().unwrap_or_default();
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
                let mut dp = DeleteParams::immediate();
                dp.preconditions = Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                });
                match pods.delete(&name, &dp).await {
                    Ok(_) => break,
                    Err(e) if e.is_not_found() || e.is_conflict() => break,
                    Err(e) => tracing::debug!(error = %e, "deleting pod failed"),
                }
            }
            // The step's wake-up (timers, the poll while the pod settles or the runtime must be
            // polled); otherwise wait for news, looking again at least every 10 s.
            let sleep = out
                .wake
                .map(|t| Duration::try_from(t.duration_since(now)).unwrap_or_default())
                .unwrap_or(IDLE)
                .min(IDLE);
            tokio::select! {
                _ = notify.notified() => {}
                // Kubelet shutdown: leave the pod alone (no status, no clean-up); the next
                // kubelet re-attaches, or stop_all_pods stops its containers quietly.
                _ = stop.changed() => return,
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        let rt = self.rt.clone();
        let ids = sync.lock().worker().container_ids();
        for id in ids {
            let _ = rt.remove_container(&id);
        }
        // The pod's projected volumes and tokens go with it.
        self.tokens.forget_pod(&uid);
        if let Some(root) = self.cfg.lock().root_dir.clone() {
            let _ = std::fs::remove_dir_all(root.join("pods").join(&uid));
        }
        self.pods.lock().remove(&uid);
    }

    fn spawn_job(self: &Arc<Self>, job: Job, sync: Arc<Mutex<PodSync>>, notify: Arc<Notify>) {
        let rt = self.rt.clone();
        let clock = self.clock.clone();
        tokio::spawn(async move {
            let j = job.clone();
            let now = clock.now();
            let out = tokio::task::spawn_blocking(move || {
                rt.run_handler(&j.id, j.kind, &j.action, &j.target, j.timeout, now)
            })
            .await;
            if let Ok(out) = out {
                sync.lock()
                    .worker_mut()
                    .handler_done(&job, out, clock.now());
                notify.notify_one();
            }
        });
    }

    async fn write_status(
        &self,
        sync: &Arc<Mutex<PodSync>>,
        status: &k8s_openapi::api::core::v1::PodStatus,
    ) -> Result<(), orch_types::client::ClientError> {
        let pod = sync.lock().worker().pod().clone();
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let mut current = pod;
        for _ in 0..5 {
            current.status = Some(status.clone());
            match pods.replace_status(&current).await {
                Ok(p) => {
                    sync.lock().worker_mut().update_pod(p);
                    return Ok(());
                }
                Err(e) if e.is_conflict() => {
                    let fresh = pods.get(&name).await?;
                    if fresh.metadata.uid != current.metadata.uid {
                        sync.lock().worker_mut().pod_removed();
                        return Ok(());
                    }
                    sync.lock().worker_mut().update_pod(fresh.clone());
                    current = fresh;
                }
                Err(e) if e.is_not_found() => {
                    sync.lock().worker_mut().pod_removed();
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn log_target(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<LogTarget, LogError> {
        self.rt.housekeeping(); // collect fresh output first
        let pods = self.pods.lock();
        let entry = pods
            .values()
            .find(|e| e.namespace == ns && e.name == pod)
            .ok_or_else(|| LogError::PodNotFound(format!("{ns}/{pod}")))?;
        let s = entry.sync.lock();
        let w = s.worker();
        let not_found = || LogError::ContainerNotFound {
            pod: pod.into(),
            container: container.into(),
        };
        let (id, running) = w.log_instance(container, previous).ok_or_else(not_found)?;
        let id = id.ok_or_else(|| {
            if previous {
                LogError::NoPrevious {
                    pod: pod.into(),
                    container: container.into(),
                }
            } else {
                not_found()
            }
        })?;
        Ok(LogTarget {
            path: self.rt.log_path(&id),
            running,
        })
    }
}

impl Kubelet {
    /// The UID of pod `ns/pod` and the ID of its container `container` while it runs: upstream
    /// answers `container not found ("NAME")` for a container it does not run.
    fn running_container(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> Result<String, crate::streaming::Failure> {
        use crate::streaming::Failure;
        let pods = self.pods.lock();
        let entry = pods
            .values()
            .find(|e| e.namespace == ns && e.name == pod)
            .ok_or_else(|| Failure::not_found("pod does not exist"))?;
        let s = entry.sync.lock();
        match s.worker().log_instance(container, false) {
            Some((Some(id), true)) => Ok(id),
            _ => Err(Failure::not_found(format!(
                "container not found ({container:?})"
            ))),
        }
    }

    /// The running containers of every pod with the usage the runtime measured, for
    /// [`crate::stats::summarize`].
    fn usage_samples(&self, now: Timestamp) -> Vec<crate::stats::PodSample> {
        let syncs: Vec<Arc<Mutex<PodSync>>> =
            self.pods.lock().values().map(|e| e.sync.clone()).collect();
        let mut out = vec![];
        for sync in syncs {
            let s = sync.lock();
            let w = s.worker();
            let pod = w.pod();
            let containers = crate::stats::container_samples(w, self.rt.as_ref(), now);
            out.push(crate::stats::PodSample {
                pod_ref: crate::stats::PodReference {
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                    uid: pod.metadata.uid.clone().unwrap_or_default(),
                },
                start_time: pod
                    .status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| t.0),
                containers,
            });
        }
        out
    }
}

/// The kubelet as the stats server's source.
struct Stats {
    kubelet: Arc<Kubelet>,
    started: Timestamp,
}

impl crate::stats::StatsSource for Stats {
    fn summary(&self) -> crate::stats::Summary {
        let now = self.kubelet.clock.now();
        let pods = self.kubelet.usage_samples(now);
        crate::stats::summarize(&self.kubelet.node_name(), self.started, pods, now)
    }
}

fn pod_ref(pod: &Pod, field_path: Option<&str>) -> ObjectRef {
    let r = ObjectRef::new(
        "v1",
        "Pod",
        pod.metadata.namespace.as_deref(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default(),
    );
    match field_path {
        Some(p) => r.with_field_path(p),
        None => r,
    }
}

struct Source(Arc<Kubelet>);

impl crate::streaming::StreamSource for Source {
    fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        req: &crate::runtime::StreamRequest,
    ) -> Result<crate::runtime::ProcessIo, crate::streaming::Failure> {
        let id = self.0.running_container(namespace, pod, container)?;
        Ok(self.0.rt.exec(&id, req)?)
    }

    fn attach(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        req: &crate::runtime::StreamRequest,
    ) -> Result<crate::runtime::ProcessIo, crate::streaming::Failure> {
        let id = self.0.running_container(namespace, pod, container)?;
        Ok(self.0.rt.attach(&id, req)?)
    }

    fn pod_uid(&self, namespace: &str, pod: &str) -> Option<String> {
        let pods = self.0.pods.lock();
        pods.iter()
            .find(|(_, e)| e.namespace == namespace && e.name == pod)
            .map(|(uid, _)| uid.clone())
    }

    fn port_forward_available(&self, pod_uid: &str) -> Result<(), crate::streaming::Failure> {
        Ok(self.0.rt.port_forward_available(pod_uid)?)
    }

    fn port_forward(
        &self,
        pod_uid: &str,
        port: u16,
    ) -> Result<std::net::TcpStream, crate::streaming::Failure> {
        Ok(self.0.rt.port_forward(pod_uid, port)?)
    }
}

impl LogSource for Source {
    fn log_target(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<LogTarget, LogError> {
        self.0.log_target(namespace, pod, container, previous)
    }
    fn now(&self) -> Timestamp {
        self.0.clock.now()
    }
}
