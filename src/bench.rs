//! Benchmarks of the composed cluster, run by `orch bench startup` and `orch bench pod-startup`.
//! Figures are measured here, never asserted in tests.

use crate::cluster::{Cluster, ClusterError, Runtime, Storage};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use orch_types::client::{Api, ListParams, WatchEvent, WatchParams};
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Summary of a sample of durations, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Millis {
    /// Sample size.
    pub n: usize,
    /// Minimum.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Millis {
    /// Nearest-rank percentiles of `sample` (empty → all zero).
    pub fn of(sample: &[Duration]) -> Self {
        let mut ms: Vec<f64> = sample.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let pick = |q: f64| -> f64 {
            if ms.is_empty() {
                return 0.0;
            }
            let rank = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
            ms[rank - 1]
        };
        Self {
            n: ms.len(),
            min: pick(0.0),
            p50: pick(0.5),
            p90: pick(0.9),
            p99: pick(0.99),
            max: ms.last().copied().unwrap_or(0.0),
            mean: if ms.is_empty() {
                0.0
            } else {
                ms.iter().sum::<f64>() / ms.len() as f64
            },
        }
    }
}

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} min={:.2}ms p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms mean={:.2}ms",
            self.n, self.min, self.p50, self.p90, self.p99, self.max, self.mean
        )
    }
}

/// Result of [`startup`].
#[derive(Debug, Clone, Serialize)]
pub struct StartupReport {
    /// Nodes per cluster.
    pub nodes: usize,
    /// Whether HTTP was served.
    pub http: bool,
    /// `Cluster::builder()...start()` until every node is Ready.
    pub start: Millis,
    /// `shutdown()`.
    pub shutdown: Millis,
}

impl std::fmt::Display for StartupReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Cluster start (memory store, sim runtime, {} node(s), http={}):",
            self.nodes, self.http
        )?;
        writeln!(f, "  start    {}", self.start)?;
        write!(f, "  shutdown {}", self.shutdown)
    }
}

/// Starts and stops `iterations` clusters (memory store, sim runtime) one after the other and
/// reports how long start (until every node is Ready) and shutdown took.
pub async fn startup(
    iterations: usize,
    nodes: usize,
    http: bool,
) -> Result<StartupReport, ClusterError> {
    let mut starts = Vec::with_capacity(iterations);
    let mut stops = Vec::with_capacity(iterations);
    for _ in 0..iterations.max(1) {
        let t = Instant::now();
        let c = Cluster::builder()
            .nodes(nodes)
            .runtime(Runtime::Sim)
            .listen(http.then(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0))))
            .start()
            .await?;
        starts.push(t.elapsed());
        let t = Instant::now();
        c.shutdown().await?;
        stops.push(t.elapsed());
    }
    Ok(StartupReport {
        nodes,
        http,
        start: Millis::of(&starts),
        shutdown: Millis::of(&stops),
    })
}

/// Result of [`pod_startup`].
#[derive(Debug, Clone, Serialize)]
pub struct PodStartupReport {
    /// Replicas.
    pub replicas: usize,
    /// Nodes.
    pub nodes: usize,
    /// Runtime (`process` or `sim`).
    pub runtime: String,
    /// Pod networking of the process runtime as requested (`auto`, `host`, `netns`).
    pub pod_network: String,
    /// Per pod: first seen (created) → first seen Running.
    pub pod_created_to_running: Millis,
    /// Per pod: Deployment created → pod Running.
    pub deployment_created_to_running: Millis,
    /// Deployment created → all pods Running, in milliseconds.
    pub all_running_ms: f64,
}

impl std::fmt::Display for PodStartupReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Pod startup: Deployment of {} replicas, {} node(s), {} runtime, pod network {}",
            self.replicas, self.nodes, self.runtime, self.pod_network
        )?;
        writeln!(
            f,
            "  pod created → Running        {}",
            self.pod_created_to_running
        )?;
        writeln!(
            f,
            "  deployment created → Running {}",
            self.deployment_created_to_running
        )?;
        write!(f, "  all Running after {:.0}ms", self.all_running_ms)
    }
}

/// Error of [`pod_startup`].
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The cluster failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// An API call failed.
    #[error("API: {0}")]
    Client(#[from] orch_types::client::ClientError),
    /// Not every pod was Running in time.
    #[error("only {running} of {replicas} pods Running after {waited:?}")]
    Timeout {
        /// Running pods.
        running: usize,
        /// Replicas.
        replicas: usize,
        /// Time waited.
        waited: Duration,
    },
}

/// Starts a cluster like `orch up` (embedded store in a temporary dir, HTTP served), creates a
/// Deployment of `replicas` long-running `sleep` pods and measures, per pod, creation → Running.
pub async fn pod_startup(
    replicas: usize,
    nodes: usize,
    runtime: Runtime,
    pod_network: orch_kubelet::runtime::process::PodNetwork,
) -> Result<PodStartupReport, BenchError> {
    let cluster = Cluster::builder()
        .nodes(nodes)
        .runtime(runtime)
        .pod_network(pod_network)
        .storage(Storage::Embedded)
        .start()
        .await?;
    // On the cri runtime the pods run the project's busybox image, loaded into each node's
    // containerd first (as `orch images load` does; each kubelet built it at its start).
    let image = if runtime == Runtime::Cri {
        if let Err(message) = load_busybox(&cluster) {
            cluster.shutdown().await?;
            return Err(ClusterError::Component {
                component: "images".into(),
                message,
            }
            .into());
        }
        crate::images::BUSYBOX
    } else {
        "busybox:1.36"
    };
    // Always shut down, also after a failed measurement: on the process runtime only a
    // graceful shutdown stops the pods' processes.
    let measured = measure_pod_startup(&cluster, replicas, image).await;
    cluster.shutdown().await?;
    let (per_pod, from_deploy, all) = measured?;
    Ok(PodStartupReport {
        replicas,
        nodes,
        runtime: match runtime {
            Runtime::Process => "process".into(),
            Runtime::Sim => "sim".into(),
            Runtime::Cri => "cri".into(),
        },
        pod_network: pod_network.to_string(),
        pod_created_to_running: Millis::of(&per_pod),
        deployment_created_to_running: Millis::of(&from_deploy),
        all_running_ms: all.as_secs_f64() * 1e3,
    })
}

/// Imports the test busybox image into the containerd of every node of a cri cluster.
fn load_busybox(cluster: &Cluster) -> Result<(), String> {
    for node in cluster.node_names() {
        let root = cluster.work_dir().join("kubelet").join(node);
        let archive = root.join("containerd").join("images").join("busybox.tar");
        let socket = orch_kubelet::runtime::cri::CriConfig::own_socket(&root);
        orch_kubelet::runtime::cri::containerd::import_archive(&socket, &archive)?;
    }
    Ok(())
}

/// Per pod: created → Running and Deployment created → Running; and the total.
type PodStartupSample = (Vec<Duration>, Vec<Duration>, Duration);

async fn measure_pod_startup(
    cluster: &Cluster,
    replicas: usize,
    image: &str,
) -> Result<PodStartupSample, BenchError> {
    let client = cluster.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let list = pods.list(&ListParams::default()).await?;
    let mut events = pods
        .watch(&WatchParams {
            resource_version: list.metadata.resource_version.clone(),
            ..Default::default()
        })
        .await?;
    let manifest = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "sleep",
                        "image": image,
                        "command": ["sleep", "3600"],
                    }],
                },
            },
        },
    });
    let d: Deployment = serde_json::from_value(manifest).map_err(|e| {
        orch_types::client::ClientError::Decode(format!("benchmark Deployment: {e}"))
    })?;
    let t0 = Instant::now();
    deployments.create(&d).await?;
    let mut created: HashMap<String, Instant> = HashMap::new();
    let mut running: HashMap<String, Instant> = HashMap::new();
    let limit = Duration::from_secs(300);
    while running.len() < replicas {
        let ev = match tokio::time::timeout_at((t0 + limit).into(), events.next()).await {
            Ok(Some(ev)) => ev?,
            Ok(None) | Err(_) => {
                return Err(BenchError::Timeout {
                    running: running.len(),
                    replicas,
                    waited: t0.elapsed(),
                })
            }
        };
        let now = Instant::now();
        let pod = match ev {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => p,
            _ => continue,
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        created.entry(name.clone()).or_insert(now);
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Running") {
            running.entry(name).or_insert(now);
        }
    }
    let all = t0.elapsed();
    let per_pod: Vec<Duration> = running
        .iter()
        .map(|(n, r)| r.duration_since(*created.get(n).unwrap_or(r)))
        .collect();
    let from_deploy: Vec<Duration> = running.values().map(|r| r.duration_since(t0)).collect();
    Ok((per_pod, from_deploy, all))
}

#[cfg(test)]
mod tests {
    use super::Millis;
    use std::time::Duration;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let m = Millis::of(&s);
        assert_eq!(
            (m.n, m.min, m.p50, m.p90, m.p99, m.max),
            (100, 1.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert!((m.mean - 50.5).abs() < 1e-9);
        assert_eq!(Millis::of(&[]).p99, 0.0);
    }
}
