//! `orch bench api`: create throughput and latency over HTTP at several client counts, on the
//! memory and embedded stores, and watch delivery latency (commit → delivered) with many
//! watchers. Measured here, printed by the `orch` CLI. `orch bench crd` is [`crd`], `orch bench
//! overload` is [`overload`].

pub mod crd;
pub mod overload;

use crate::client::HttpClient;
use crate::server::{serve, ApiServer, ApiServerConfig};
use futures::StreamExt;
use orch_types::client::{Client, PostParams, WatchEvent, WatchParams};
use orch_types::registry;
use orch_types::DynamicObject;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Benchmark parameters.
#[derive(Debug, Clone)]
pub struct ApiBenchConfig {
    /// Concurrent HTTP clients per round.
    pub clients: Vec<usize>,
    /// Creates per round.
    pub creates: usize,
    /// Watchers for the watch-latency round.
    pub watchers: usize,
    /// Objects written during the watch-latency round.
    pub watch_events: usize,
    /// Stores to measure (`Etcd` and `OrchEtcd` are skipped when `etcd` is not installed).
    pub stores: Vec<BenchStore>,
    /// Connection setups (a fresh connection and `GET /healthz`) measured plain and over TLS
    /// on the memory store; 0 skips them. Pair with [`BenchStore::MemoryTls`] to see the
    /// per-request overhead of TLS beside [`BenchStore::Memory`].
    pub connections: usize,
}

impl Default for ApiBenchConfig {
    fn default() -> Self {
        Self {
            clients: vec![1, 8, 64],
            creates: 2000,
            watchers: 1000,
            watch_events: 100,
            stores: [
                BenchStore::Memory,
                BenchStore::Embedded,
                BenchStore::Etcd,
                BenchStore::OrchEtcd,
            ]
            .into_iter()
            .filter(|s| cfg!(feature = "etcd") || *s != BenchStore::OrchEtcd)
            .collect(),
            connections: 0,
        }
    }
}

/// A store under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchStore {
    /// In memory.
    Memory,
    /// In memory, served over HTTPS (a fresh PKI; the clients present the admin certificate).
    #[serde(rename = "memory+tls")]
    MemoryTls,
    /// Durable (redb, group commit) in a temporary directory.
    Embedded,
    /// A local etcd (`etcd` on PATH), raw puts through its JSON gateway, for comparison.
    Etcd,
    /// Two orch API servers on one local etcd (cargo feature `etcd`): creates through the
    /// first, the watchers split between both.
    #[serde(rename = "orch-etcd")]
    OrchEtcd,
}

impl fmt::Display for BenchStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Memory => "memory",
            Self::MemoryTls => "memory+tls",
            Self::Embedded => "embedded",
            Self::Etcd => "etcd (put)",
            Self::OrchEtcd => "orch/etcd",
        })
    }
}

/// One create round.
#[derive(Debug, Clone, Serialize)]
pub struct CreateRound {
    /// Store.
    pub store: BenchStore,
    /// Concurrent clients.
    pub clients: usize,
    /// Creates done.
    pub creates: usize,
    /// Creates per second.
    pub per_second: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

/// The watch-latency round.
#[derive(Debug, Clone, Serialize)]
pub struct WatchRound {
    /// Store.
    pub store: BenchStore,
    /// Watchers.
    pub watchers: usize,
    /// Events delivered (watchers × objects).
    pub delivered: usize,
    /// Median create-sent → event-received latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct ApiBenchReport {
    /// Create rounds.
    pub creates: Vec<CreateRound>,
    /// Watch rounds.
    pub watch: Vec<WatchRound>,
    /// Connection setup rounds (plain and TLS).
    pub connections: Vec<ConnectRound>,
}

/// Fresh connections, each with one `GET /healthz`: the cost of connection setup (and of the
/// TLS handshake, ECDSA P-256 with a client certificate, for `tls`).
#[derive(Debug, Clone, Serialize)]
pub struct ConnectRound {
    /// Over TLS.
    pub tls: bool,
    /// Connections made.
    pub connections: usize,
    /// Median connect + request time.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

impl fmt::Display for ApiBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "creates over HTTP (ConfigMaps):")?;
        writeln!(
            f,
            "  {:<11} {:>7} {:>8} {:>10} {:>9} {:>9}",
            "store", "clients", "creates", "creates/s", "p50 ms", "p99 ms"
        )?;
        for r in &self.creates {
            writeln!(
                f,
                "  {:<11} {:>7} {:>8} {:>10.0} {:>9.2} {:>9.2}",
                r.store.to_string(),
                r.clients,
                r.creates,
                r.per_second,
                r.p50_ms,
                r.p99_ms
            )?;
        }
        if !self.connections.is_empty() {
            writeln!(
                f,
                "connection setup (fresh connection + GET /healthz, memory store):"
            )?;
        }
        for c in &self.connections {
            writeln!(
                f,
                "  {:<5} {} connections: p50 {:.2} ms, p99 {:.2} ms",
                if c.tls { "https" } else { "http" },
                c.connections,
                c.p50_ms,
                c.p99_ms
            )?;
        }
        writeln!(f, "watch latency (create sent → event received):")?;
        for w in &self.watch {
            writeln!(
                f,
                "  {:<9} {} watchers{}, {} deliveries: p50 {:.2} ms, p99 {:.2} ms",
                w.store.to_string(),
                w.watchers,
                if w.store == BenchStore::OrchEtcd {
                    " on 2 API servers"
                } else {
                    ""
                },
                w.delivered,
                w.p50_ms,
                w.p99_ms
            )?;
        }
        Ok(())
    }
}

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Setup failed.
    #[error("benchmark setup failed: {0}")]
    Setup(String),
    /// A request failed.
    #[error("request failed during the benchmark: {0}")]
    Request(#[from] orch_types::client::ClientError),
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

struct Running {
    client: HttpClient,
    /// Base URL and TLS client configuration (for the connection rounds).
    endpoint: crate::kubeconfig::Endpoint,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

/// Starts an API server on `store`; `OrchEtcd` needs the `etcd` to use.
async fn start(store: BenchStore, etcd: Option<&Etcd>) -> Result<Running, BenchError> {
    let setup = |e: &dyn fmt::Display| BenchError::Setup(e.to_string());
    let (config, dir) = match store {
        BenchStore::Memory => (ApiServerConfig::memory(), None),
        BenchStore::MemoryTls => (
            ApiServerConfig::memory(),
            Some(tempfile::tempdir().map_err(|e| setup(&e))?),
        ),
        BenchStore::Etcd => {
            return Err(BenchError::Setup(
                "etcd is measured with raw puts, not behind the API server".into(),
            ))
        }
        BenchStore::Embedded => {
            let d = tempfile::tempdir().map_err(|e| setup(&e))?;
            (ApiServerConfig::embedded(d.path().join("store")), Some(d))
        }
        BenchStore::OrchEtcd => (etcd_config(etcd)?, None),
    };
    let api = ApiServer::open(config).await.map_err(|e| setup(&e))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| setup(&e))?;
    let addr = listener.local_addr().map_err(|e| setup(&e))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stopped = async move {
        let _ = rx.await;
    };
    let (endpoint, task) = match (store, &dir) {
        (BenchStore::MemoryTls, Some(d)) => {
            let pki = crate::pki::Pki::load_or_create(&crate::pki::PkiOptions::new(d.path()))
                .map_err(|e| setup(&e))?;
            let tls = crate::tls::api_server_tls(pki.serving(), pki.client_ca_pem())
                .map_err(|e| setup(&e))?;
            let ep = crate::kubeconfig::Endpoint {
                ca_pem: Some(pki.ca_cert_pem().to_string()),
                client: Some(pki.admin().map_err(|e| setup(&e))?),
                ..crate::kubeconfig::Endpoint::new(format!("https://{addr}"))
            };
            let task = tokio::spawn(async move {
                let _ = crate::serve_tls(api, listener, tls, stopped).await;
            });
            (ep, task)
        }
        _ => {
            let task = tokio::spawn(async move {
                let _ = serve(api, listener, stopped).await;
            });
            (
                crate::kubeconfig::Endpoint::new(format!("http://{addr}")),
                task,
            )
        }
    };
    Ok(Running {
        client: HttpClient::from_endpoint(&endpoint).map_err(|e| setup(&e))?,
        endpoint,
        stop: Some(tx),
        task,
        _dir: dir,
    })
}

#[cfg(feature = "etcd")]
fn etcd_config(etcd: Option<&Etcd>) -> Result<ApiServerConfig, BenchError> {
    let etcd = etcd.ok_or_else(|| BenchError::Setup("orch/etcd needs a running etcd".into()))?;
    Ok(ApiServerConfig {
        storage: crate::StorageConfig::Etcd {
            servers: vec![etcd.url.clone()],
            prefix: String::new(),
            tls: None,
        },
        ..ApiServerConfig::memory()
    })
}

#[cfg(not(feature = "etcd"))]
fn etcd_config(_: Option<&Etcd>) -> Result<ApiServerConfig, BenchError> {
    Err(BenchError::Setup(
        "orch/etcd needs orch built with the cargo feature etcd".into(),
    ))
}

impl Running {
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}

fn configmap(name: &str) -> DynamicObject {
    let mut o = DynamicObject::new("v1", "ConfigMap", name);
    o.data
        .insert("data".into(), serde_json::json!({"key": "value"}));
    o
}

async fn create_round(
    r: &Running,
    store: BenchStore,
    clients: usize,
    creates: usize,
    round: usize,
) -> Result<CreateRound, BenchError> {
    let cm = registry::by_kind("v1", "ConfigMap")
        .map(|i| i.api_resource())
        .ok_or_else(|| BenchError::Setup("no ConfigMap kind".into()))?;
    let per = creates.div_ceil(clients.max(1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = r.client.clone();
        let cm = cm.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let t = Instant::now();
                client
                    .create(
                        &cm,
                        Some("default"),
                        &configmap(&format!("r{round}-c{c}-{i}")),
                        &PostParams::default(),
                    )
                    .await?;
                lat.push(t.elapsed());
            }
            Ok::<_, BenchError>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| BenchError::Setup(e.to_string()))??);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok(CreateRound {
        store,
        clients,
        creates: all.len(),
        per_second: all.len() as f64 / secs,
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
    })
}

/// Watchers spread round-robin over `servers`; the objects are created through the first.
async fn watch_round(
    servers: &[&Running],
    store: BenchStore,
    watchers: usize,
    events: usize,
) -> Result<WatchRound, BenchError> {
    let r = servers
        .first()
        .ok_or_else(|| BenchError::Setup("no API server to watch".into()))?;
    let cm = registry::by_kind("v1", "ConfigMap")
        .map(|i| i.api_resource())
        .ok_or_else(|| BenchError::Setup("no ConfigMap kind".into()))?;
    let ns = registry::by_kind("v1", "Namespace")
        .map(|i| i.api_resource())
        .ok_or_else(|| BenchError::Setup("no Namespace kind".into()))?;
    r.client
        .create(
            &ns,
            None,
            &DynamicObject::new("v1", "Namespace", "watch-bench"),
            &PostParams::default(),
        )
        .await?;
    let rv = r
        .client
        .list(&cm, Some("watch-bench"), &Default::default())
        .await?
        .metadata
        .resource_version;
    let sent: Arc<parking_lot::Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(watchers.max(1));
    for w in 0..watchers {
        let client = servers[w % servers.len()].client.clone();
        let cm = cm.clone();
        let sent = sent.clone();
        let rv = rv.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let p = WatchParams {
                resource_version: rv,
                timeout_seconds: Some(600),
                ..Default::default()
            };
            let mut s = client.watch(&cm, Some("watch-bench"), &p).await?;
            let _ = ready.send(()).await;
            let mut lat = Vec::with_capacity(events);
            while lat.len() < events {
                match s.next().await {
                    Some(Ok(WatchEvent::Added(o))) => {
                        let t0 = sent.lock().get(o.name()).copied();
                        if let Some(t0) = t0 {
                            lat.push(t0.elapsed());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(BenchError::Request(e)),
                    None => break,
                }
            }
            Ok::<_, BenchError>(lat)
        }));
    }
    drop(ready_tx);
    for _ in 0..watchers {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    for i in 0..events {
        let name = format!("w{i}");
        sent.lock().insert(name.clone(), Instant::now());
        r.client
            .create(
                &cm,
                Some("watch-bench"),
                &configmap(&name),
                &PostParams::default(),
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| BenchError::Setup(e.to_string()))??);
    }
    all.sort_unstable();
    Ok(WatchRound {
        store,
        watchers,
        delivered: all.len(),
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
    })
}

/// A local etcd started for the comparison; killed on drop.
struct Etcd {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, BenchError> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| BenchError::Setup(e.to_string()))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| BenchError::Setup(e.to_string()))
}

/// Starts `etcd` from PATH on loopback ports, or `None` when it is not installed.
async fn start_etcd() -> Result<Option<Etcd>, BenchError> {
    let dir = tempfile::tempdir().map_err(|e| BenchError::Setup(e.to_string()))?;
    let (client, peer) = (free_port()?, free_port()?);
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = std::process::Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(child) = child else { return Ok(None) };
    let etcd = Etcd {
        child,
        url,
        _dir: dir,
    };
    let http = crate::tls::plain_reqwest_client();
    for _ in 0..100 {
        if http
            .get(format!("{}/health", etcd.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(Some(etcd));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::Setup("etcd did not become healthy".into()))
}

/// Raw etcd puts (v3 JSON gateway) of ConfigMap-sized values at `clients` concurrency.
async fn etcd_round(
    etcd: &Etcd,
    clients: usize,
    puts: usize,
    round: usize,
) -> Result<CreateRound, BenchError> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let value = b64(&serde_json::to_string(&configmap("x")).unwrap_or_default());
    let per = puts.div_ceil(clients.max(1));
    let http =
        crate::tls::reqwest_client(reqwest::Client::builder().pool_max_idle_per_host(128), None)
            .unwrap_or_default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let http = http.clone();
        let url = format!("{}/v3/kv/put", etcd.url);
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let key = b64(&format!("/registry/configmaps/default/r{round}-c{c}-{i}"));
                let body = serde_json::json!({"key": key, "value": value});
                let t = Instant::now();
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    Ok(r) => {
                        return Err(BenchError::Setup(format!("etcd put: HTTP {}", r.status())))
                    }
                    Err(e) => return Err(BenchError::Setup(format!("etcd put: {e}"))),
                }
                lat.push(t.elapsed());
            }
            Ok::<_, BenchError>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| BenchError::Setup(e.to_string()))??);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok(CreateRound {
        store: BenchStore::Etcd,
        clients,
        creates: all.len(),
        per_second: all.len() as f64 / secs,
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
    })
}

/// `n` fresh connections to `r`, one after the other, each with one `GET /healthz`.
async fn connect_round(r: &Running, n: usize) -> Result<ConnectRound, BenchError> {
    let setup = |e: &dyn fmt::Display| BenchError::Setup(e.to_string());
    let tls = r.endpoint.tls_config().map_err(|e| setup(&e))?;
    let is_tls = tls.is_some();
    // No idle connections kept: every request opens (and handshakes) a new one.
    let http =
        crate::tls::reqwest_client(reqwest::Client::builder().pool_max_idle_per_host(0), tls)
            .map_err(|e| setup(&e))?;
    let url = format!("{}/healthz", r.endpoint.server);
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let resp = http.get(&url).send().await.map_err(|e| setup(&e))?;
        resp.bytes().await.map_err(|e| setup(&e))?;
        lat.push(t.elapsed());
    }
    lat.sort_unstable();
    Ok(ConnectRound {
        tls: is_tls,
        connections: n,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
    })
}

/// Runs the benchmark (with raw etcd puts beside it when `etcd` is on PATH).
pub async fn run(cfg: &ApiBenchConfig) -> Result<ApiBenchReport, BenchError> {
    let mut report = ApiBenchReport {
        creates: Vec::new(),
        watch: Vec::new(),
        connections: Vec::new(),
    };
    if cfg.connections > 0 {
        for store in [BenchStore::Memory, BenchStore::MemoryTls] {
            let r = start(store, None).await?;
            report
                .connections
                .push(connect_round(&r, cfg.connections).await?);
            r.stop().await;
        }
    }
    if cfg.stores.contains(&BenchStore::Etcd) {
        if let Some(etcd) = start_etcd().await? {
            for (round, &clients) in cfg.clients.iter().enumerate() {
                report
                    .creates
                    .push(etcd_round(&etcd, clients, cfg.creates, round).await?);
            }
        }
    }
    for &store in cfg.stores.iter().filter(|s| **s != BenchStore::Etcd) {
        // orch on etcd gets an etcd of its own (the raw puts' keys would be foreign writes) and
        // a second API server on it for the watchers.
        let etcd = match store {
            BenchStore::OrchEtcd => match start_etcd().await? {
                Some(e) => Some(e),
                None => continue,
            },
            _ => None,
        };
        let r = start(store, etcd.as_ref()).await?;
        let second = match store {
            BenchStore::OrchEtcd => Some(start(store, etcd.as_ref()).await?),
            _ => None,
        };
        for (round, &clients) in cfg.clients.iter().enumerate() {
            report
                .creates
                .push(create_round(&r, store, clients, cfg.creates, round).await?);
        }
        if cfg.watchers > 0 {
            let servers: Vec<&Running> = std::iter::once(&r).chain(second.as_ref()).collect();
            report
                .watch
                .push(watch_round(&servers, store, cfg.watchers, cfg.watch_events).await?);
        }
        if let Some(s) = second {
            s.stop().await;
        }
        r.stop().await;
    }
    Ok(report)
}

#[cfg(all(test, feature = "etcd"))]
mod tests {
    use super::*;

    /// A small run of orch on etcd (needs `etcd` on PATH, as the etcd storage tests): every
    /// create round is measured, and every watcher on either API server gets every object.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn orch_on_etcd_is_measured_with_watchers_on_two_api_servers() {
        let cfg = ApiBenchConfig {
            clients: vec![1, 4],
            creates: 20,
            watchers: 6,
            watch_events: 5,
            stores: vec![BenchStore::OrchEtcd],
            connections: 0,
        };
        let report = run(&cfg).await.expect("the benchmark runs");
        let rounds: Vec<_> = report
            .creates
            .iter()
            .map(|r| (r.store, r.clients, r.creates))
            .collect();
        assert_eq!(
            rounds,
            [(BenchStore::OrchEtcd, 1, 20), (BenchStore::OrchEtcd, 4, 20)],
            "no orch/etcd rounds: is etcd (Debian etcd-server) installed?"
        );
        let w = &report.watch[0];
        assert_eq!(
            (w.store, w.watchers, w.delivered),
            (BenchStore::OrchEtcd, 6, 30)
        );
    }
}
