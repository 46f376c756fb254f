//! `orch bench exec`: exec round-trip latency and port-forward throughput through the API
//! server, on an in-process cluster with the process runtime. Figures are measured here, never
//! asserted in tests.
//!
//! The client is what `kubectl` does, in Rust: a fresh connection per exec (TCP, the TLS
//! handshake with the admin's client certificate, the WebSocket upgrade relayed by the API
//! server to the kubelet), `v5.channel.k8s.io`, the command `true`, read until the status on
//! the error channel. Port-forward speaks `v4.channel.k8s.io` with `ports=` (what the Python
//! client speaks) to a server in the pod that writes the number of bytes asked for.

use crate::bench::Millis;
use crate::cluster::{Cluster, ClusterError, Runtime, Storage};
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use orch_types::client::Api;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The port the data server of the benchmark pod listens on.
const DATA_PORT: u16 = 9123;

/// The data server: for each connection, reads a decimal byte count and a newline, writes that
/// many bytes, closes.
const DATA_SERVER: &str = r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", PORT))
s.listen(16)
buf = b"x" * (1 << 20)
while True:
    c, _ = s.accept()
    try:
        n = int(c.makefile("rb").readline())
        while n > 0:
            n -= c.send(buf[: min(n, len(buf))])
    except (OSError, ValueError):
        pass
    c.close()
"#;

/// What `orch bench exec` measures.
#[derive(Debug, Clone)]
pub struct ExecBenchConfig {
    /// Sequential `exec true` round trips.
    pub execs: usize,
    /// Bytes transferred through port-forward.
    pub transfer_bytes: u64,
    /// Also measure over plain HTTP (a second cluster with `insecure_http`: the API server and
    /// the kubelet without TLS), beside HTTPS.
    pub plain_http: bool,
}

impl Default for ExecBenchConfig {
    fn default() -> Self {
        Self {
            execs: 200,
            transfer_bytes: 100 * 1024 * 1024,
            plain_http: false,
        }
    }
}

/// The figures of one transport (HTTPS, or plain HTTP).
#[derive(Debug, Clone, Serialize)]
pub struct ExecBenchRound {
    /// `https` or `http`: the client's connection to the API server and the API server's to
    /// the kubelet.
    pub transport: String,
    /// `exec true` round trips: connect, upgrade through the API server, the command, its
    /// status on the error channel.
    pub exec_round_trip: Millis,
    /// Port-forward: connect and upgrade, first frames of the port, in milliseconds.
    pub port_forward_setup_ms: f64,
    /// Bytes received through the port-forward.
    pub transfer_bytes: u64,
    /// Request sent → last byte received, in seconds.
    pub transfer_seconds: f64,
    /// `transfer_bytes / transfer_seconds` in MB/s (10^6 bytes).
    pub transfer_mb_per_s: f64,
}

/// Result of [`run`].
#[derive(Debug, Clone, Serialize)]
pub struct ExecBenchReport {
    /// One round per transport, HTTPS first.
    pub rounds: Vec<ExecBenchRound>,
}

impl std::fmt::Display for ExecBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "exec and port-forward through the API server (process runtime, 1 node)"
        )?;
        for (i, r) in self.rounds.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "  client → API server → kubelet over {}:", r.transport)?;
            writeln!(
                f,
                "    exec true round trip (v5.channel.k8s.io, new connection each) {}",
                r.exec_round_trip
            )?;
            writeln!(
                f,
                "    port-forward setup (v4.channel.k8s.io) {:.2}ms",
                r.port_forward_setup_ms
            )?;
            write!(
                f,
                "    port-forward transfer {:.1} MB in {:.2}s: {:.1} MB/s",
                r.transfer_bytes as f64 / 1e6,
                r.transfer_seconds,
                r.transfer_mb_per_s
            )?;
        }
        Ok(())
    }
}

/// Error of [`run`].
#[derive(Debug, thiserror::Error)]
pub enum ExecBenchError {
    /// The cluster failed.
    #[error(transparent)]
    Cluster(Box<ClusterError>),
    /// An API call failed.
    #[error("API: {0}")]
    Client(Box<orch_types::client::ClientError>),
    /// A streaming session failed.
    #[error("{0}")]
    Stream(String),
}

impl From<ClusterError> for ExecBenchError {
    fn from(e: ClusterError) -> Self {
        Self::Cluster(Box::new(e))
    }
}

impl From<orch_types::client::ClientError> for ExecBenchError {
    fn from(e: orch_types::client::ClientError) -> Self {
        Self::Client(Box::new(e))
    }
}

fn stream_err(what: &str) -> impl Fn(String) -> ExecBenchError + '_ {
    move |e| ExecBenchError::Stream(format!("{what}: {e}"))
}

/// Runs the benchmark: over HTTPS, and with `plain_http` over plain HTTP too.
pub async fn run(cfg: &ExecBenchConfig) -> Result<ExecBenchReport, ExecBenchError> {
    let mut rounds = vec![round(cfg, true).await?];
    if cfg.plain_http {
        rounds.push(round(cfg, false).await?);
    }
    Ok(ExecBenchReport { rounds })
}

async fn round(cfg: &ExecBenchConfig, tls: bool) -> Result<ExecBenchRound, ExecBenchError> {
    let mut builder = Cluster::builder()
        .nodes(1)
        .runtime(Runtime::Process)
        .storage(Storage::Memory);
    if !tls {
        builder = builder.insecure_http();
    }
    let cluster = builder.start().await?;
    // Always shut down, also after a failed measurement: on the process runtime only a
    // graceful shutdown stops the pod's processes.
    let measured = measure(&cluster, cfg).await;
    cluster.shutdown().await?;
    let (execs, setup, seconds) = measured?;
    Ok(ExecBenchRound {
        transport: if tls { "https" } else { "http" }.into(),
        exec_round_trip: Millis::of(&execs),
        port_forward_setup_ms: setup.as_secs_f64() * 1e3,
        transfer_bytes: cfg.transfer_bytes,
        transfer_seconds: seconds.as_secs_f64(),
        transfer_mb_per_s: cfg.transfer_bytes as f64 / 1e6 / seconds.as_secs_f64().max(1e-9),
    })
}

/// Exec round trips; port-forward setup and transfer time.
async fn measure(
    cluster: &Cluster,
    cfg: &ExecBenchConfig,
) -> Result<(Vec<Duration>, Duration, Duration), ExecBenchError> {
    let dial = Dialer::of(cluster)?;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let manifest = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "exec-bench"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"]},
                {
                    "name": "data",
                    "image": "python:3.12",
                    "command": ["python3", "-c", DATA_SERVER.replace("PORT", &DATA_PORT.to_string())],
                },
            ],
        },
    });
    let pod: Pod = serde_json::from_value(manifest)
        .map_err(|e| orch_types::client::ClientError::Decode(format!("benchmark pod: {e}")))?;
    pods.create(&pod).await?;
    wait_running(&pods, "exec-bench").await?;

    let exec_path = "/api/v1/namespaces/default/pods/exec-bench/exec?container=app&command=true&stdout=true&stderr=true";
    // one unmeasured exec: the first one pays for lazy setup (the kubelet connection pool)
    dial.exec(exec_path).await?;
    let mut execs = Vec::with_capacity(cfg.execs);
    for _ in 0..cfg.execs {
        let t = Instant::now();
        dial.exec(exec_path).await?;
        execs.push(t.elapsed());
    }

    // The data server may still be starting: a 1-byte transfer until it answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match dial.transfer(1).await {
            Ok(_) => break,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let (setup, seconds) = dial.transfer(cfg.transfer_bytes).await?;
    Ok((execs, setup, seconds))
}

async fn wait_running(pods: &Api<Pod>, name: &str) -> Result<(), ExecBenchError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let p = pods.get(name).await?;
        let running = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.len() == 2
                    && cs
                        .iter()
                        .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            });
        if running {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ExecBenchError::Stream(format!(
                "pod {name} not running after 120s: {:?}",
                p.status
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Any byte stream a WebSocket runs over (TCP, or TLS over TCP).
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Opens WebSocket sessions to the API server as the cluster admin.
struct Dialer {
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Dialer {
    fn of(cluster: &Cluster) -> Result<Self, ExecBenchError> {
        let addr = cluster
            .addr()
            .ok_or_else(|| ExecBenchError::Stream("the cluster serves no HTTP".into()))?;
        let tls = match cluster.pki() {
            None => None,
            Some(pki) => {
                let admin = pki
                    .admin()
                    .map_err(|e| ExecBenchError::from(ClusterError::from(e)))?;
                let config = orch_apiserver::tls::client_config(
                    &orch_apiserver::tls::ServerTrust::Ca(pki.ca_cert_pem().to_string()),
                    Some(&admin),
                )
                .map_err(|e| ExecBenchError::from(ClusterError::from(e)))?;
                Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
            }
        };
        Ok(Self { addr, tls })
    }

    /// A WebSocket session on `path` speaking `protocol`.
    async fn open(
        &self,
        path: &str,
        protocol: &'static str,
    ) -> Result<WebSocketStream<Box<dyn Conn>>, ExecBenchError> {
        let err = stream_err(path);
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let (scheme, conn): (&str, Box<dyn Conn>) = match &self.tls {
            None => ("ws", Box::new(tcp)),
            Some(c) => {
                let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
                let tls = c.connect(name, tcp).await.map_err(|e| err(e.to_string()))?;
                ("wss", Box::new(tls))
            }
        };
        let mut req = format!("{scheme}://{}{path}", self.addr)
            .into_client_request()
            .map_err(|e| err(e.to_string()))?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
        let (ws, _) = tokio_tungstenite::client_async(req, conn)
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(ws)
    }

    /// One exec, until its status: an error unless it is `Success`.
    async fn exec(&self, path: &str) -> Result<(), ExecBenchError> {
        let err = stream_err("exec");
        let mut ws = self.open(path, "v5.channel.k8s.io").await?;
        while let Some(m) = ws.next().await {
            match m.map_err(|e| err(e.to_string()))? {
                Message::Binary(b) if b.first() == Some(&3) => {
                    let status: serde_json::Value =
                        serde_json::from_slice(&b[1..]).map_err(|e| err(e.to_string()))?;
                    let _ = ws.close(None).await;
                    return if status["status"] == "Success" {
                        Ok(())
                    } else {
                        Err(err(status.to_string()))
                    };
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        Err(err("the session ended without a status".into()))
    }

    /// Asks the pod's data server for `bytes` bytes through a port-forward; returns the setup
    /// time (connect, upgrade, the port's first frames) and request → last byte.
    async fn transfer(&self, bytes: u64) -> Result<(Duration, Duration), ExecBenchError> {
        let err = stream_err("port-forward");
        let t0 = Instant::now();
        let path =
            format!("/api/v1/namespaces/default/pods/exec-bench/portforward?ports={DATA_PORT}");
        let mut ws = self.open(&path, "v4.channel.k8s.io").await?;
        // Each channel opens with the port number (two little-endian bytes).
        let (mut data_open, mut error_open) = (false, false);
        while !(data_open && error_open) {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) if b.first() == Some(&0) => data_open = true,
                Some(Ok(Message::Binary(b))) if b.first() == Some(&1) => error_open = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(err(e.to_string())),
                None => return Err(err("closed before the port was open".into())),
            }
        }
        let setup = t0.elapsed();
        let t1 = Instant::now();
        let mut request = vec![0u8];
        request.extend_from_slice(format!("{bytes}\n").as_bytes());
        ws.send(Message::binary(request))
            .await
            .map_err(|e| err(e.to_string()))?;
        let mut got = 0u64;
        while got < bytes {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) if b.first() == Some(&0) => {
                    got += (b.len() - 1) as u64;
                }
                Some(Ok(Message::Binary(b))) if b.first() == Some(&1) && b.len() > 1 => {
                    return Err(err(String::from_utf8_lossy(&b[1..]).into_owned()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(err(e.to_string())),
                None => return Err(err(format!("closed after {got} of {bytes} bytes"))),
            }
        }
        let seconds = t1.elapsed();
        let _ = ws.close(None).await;
        Ok((setup, seconds))
    }
}
