//! Resource metrics: the Summary API the kubelet serves at `GET /stats/summary`, the source
//! `metrics.k8s.io` (and so `kubectl top`) is built from.
//!
//! The JSON shape is upstream's `stats/v1alpha1` (`staging/src/k8s.io/kubelet/pkg/apis/stats/
//! v1alpha1/types.go`): a node and its pods, each pod with its containers' CPU
//! (`usageNanoCores`, `usageCoreNanoSeconds`) and memory (`workingSetBytes`) at a `time`. Only
//! the fields orch can measure are filled; the rest are omitted, as upstream omits unknown
//! figures. The figures come from [`ContainerRuntime::container_usage`]; the node's usage is
//! the sum of its pods' (the kubelet has no better whole-node figure of the same kind).
//!
//! [`ContainerRuntime::container_usage`]: crate::runtime::ContainerRuntime::container_usage

use crate::runtime::{ContainerRuntime, ContainerState, ContainerUsage};
use crate::worker::PodWorker;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The `/stats/summary` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The node's totals.
    pub node: NodeStats,
    /// Every pod with at least one running container.
    pub pods: Vec<PodStats>,
}

/// A node's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// The node name.
    pub node_name: String,
    /// When the kubelet started.
    pub start_time: Timestamp,
    /// CPU of all pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory of all pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// Which pod a [`PodStats`] is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodReference {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod UID.
    pub uid: String,
}

/// A pod's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    /// The pod.
    pub pod_ref: PodReference,
    /// When the pod started (`status.startTime`, else its first container's start).
    pub start_time: Timestamp,
    /// Its running containers.
    pub containers: Vec<ContainerStats>,
    /// Sum of the containers' CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Sum of the containers' memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// A container's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    /// Container name.
    pub name: String,
    /// When this instance started.
    pub start_time: Timestamp,
    /// CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// CPU figures at `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    /// When sampled.
    pub time: Timestamp,
    /// Average usage over the sampling window, in nano-cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    /// Cumulative CPU time in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

/// Memory figures at `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    /// When sampled.
    pub time: Timestamp,
    /// Working set in bytes (what `kubectl top` shows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
}

/// One running container as the kubelet sees it, the input of [`summarize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSample {
    /// Container name.
    pub name: String,
    /// When this instance started.
    pub start_time: Timestamp,
    /// What the runtime measured.
    pub usage: ContainerUsage,
}

/// One pod and its running containers' samples, the input of [`summarize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSample {
    /// The pod.
    pub pod_ref: PodReference,
    /// `status.startTime`, if set.
    pub start_time: Option<Timestamp>,
    /// Its running containers that the runtime could measure.
    pub containers: Vec<ContainerSample>,
}

fn cpu(time: Timestamp, nano_cores: u64, total: Option<u64>) -> CpuStats {
    CpuStats {
        time,
        usage_nano_cores: Some(nano_cores),
        usage_core_nano_seconds: total,
    }
}

fn memory(time: Timestamp, bytes: u64) -> MemoryStats {
    MemoryStats {
        time,
        working_set_bytes: Some(bytes),
    }
}

/// Sums a set of usages (saturating): nano-cores, cumulative CPU (known only if known for all)
/// and working set.
fn total<'a>(usages: impl IntoIterator<Item = &'a ContainerUsage>) -> (u64, Option<u64>, u64) {
    usages.into_iter().fold((0, Some(0), 0), |(c, t, m), u| {
        (
            c.saturating_add(u.cpu_nano_cores),
            t.zip(u.cpu_core_nano_seconds)
                .map(|(a, b)| a.saturating_add(b)),
            m.saturating_add(u.memory_working_set_bytes),
        )
    })
}

/// The running containers of the pod `worker` runs, with what `rt` measured at `now` (a
/// container the runtime cannot measure is left out): what the kubelet's Summary reads, and
/// the simulator's metrics scrape.
pub fn container_samples(
    worker: &PodWorker,
    rt: &dyn ContainerRuntime,
    now: Timestamp,
) -> Vec<ContainerSample> {
    let mut out = vec![];
    for c in worker.pod().spec.iter().flat_map(|s| &s.containers) {
        let Some((Some(id), true)) = worker.log_instance(&c.name, false) else {
            continue;
        };
        let Some(ContainerState::Running { started_at }) = rt.container_state(&id, now) else {
            continue;
        };
        if let Some(usage) = rt.container_usage(&id, now) {
            out.push(ContainerSample {
                name: c.name.clone(),
                start_time: started_at,
                usage,
            });
        }
    }
    out
}

/// Builds the Summary of node `node_name` (kubelet started at `started`) from its pods'
/// samples taken at `now`; pods without a measured container are left out.
pub fn summarize(
    node_name: &str,
    started: Timestamp,
    pods: Vec<PodSample>,
    now: Timestamp,
) -> Summary {
    let pods: Vec<PodSample> = pods
        .into_iter()
        .filter(|p| !p.containers.is_empty())
        .collect();
    let all = total(
        pods.iter()
            .flat_map(|p| p.containers.iter().map(|c| &c.usage)),
    );
    let node = NodeStats {
        node_name: node_name.to_string(),
        start_time: started,
        cpu: Some(cpu(now, all.0, all.1)),
        memory: Some(memory(now, all.2)),
    };
    let pods = pods
        .into_iter()
        .map(|p| {
            let (c, t, m) = total(p.containers.iter().map(|c| &c.usage));
            let first = p.containers.iter().map(|c| c.start_time).min();
            PodStats {
                start_time: p.start_time.or(first).unwrap_or(now),
                containers: p
                    .containers
                    .into_iter()
                    .map(|c| ContainerStats {
                        name: c.name,
                        start_time: c.start_time,
                        cpu: Some(cpu(
                            now,
                            c.usage.cpu_nano_cores,
                            c.usage.cpu_core_nano_seconds,
                        )),
                        memory: Some(memory(now, c.usage.memory_working_set_bytes)),
                    })
                    .collect(),
                pod_ref: p.pod_ref,
                cpu: Some(cpu(now, c, t)),
                memory: Some(memory(now, m)),
            }
        })
        .collect();
    Summary { node, pods }
}

/// What the stats server asks of the kubelet.
pub trait StatsSource: Send + Sync + 'static {
    /// The Summary as of now.
    fn summary(&self) -> Summary;
}

async fn summary(State(src): State<Arc<dyn StatsSource>>) -> Json<Summary> {
    // Real runtimes read /proc or cgroup files: off the async threads.
    let s = tokio::task::spawn_blocking(move || src.summary()).await;
    Json(s.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())))
}

/// The stats routes: `GET /stats/summary`.
pub fn router(src: Arc<dyn StatsSource>) -> Router {
    Router::new()
        .route("/stats/summary", get(summary))
        .with_state(src)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn usage(cpu: u64, total: Option<u64>, mem: u64) -> ContainerUsage {
        ContainerUsage {
            cpu_nano_cores: cpu,
            cpu_core_nano_seconds: total,
            memory_working_set_bytes: mem,
            window: Duration::ZERO,
        }
    }

    fn pod(name: &str, containers: Vec<(&str, ContainerUsage)>) -> PodSample {
        PodSample {
            pod_ref: PodReference {
                name: name.into(),
                namespace: "default".into(),
                uid: format!("uid-{name}"),
            },
            start_time: None,
            containers: containers
                .into_iter()
                .map(|(n, usage)| ContainerSample {
                    name: n.into(),
                    start_time: t(1),
                    usage,
                })
                .collect(),
        }
    }

    #[test]
    fn node_and_pods_sum_their_containers_and_serialize_as_upstream() {
        let pods = vec![
            pod(
                "a",
                vec![
                    ("app", usage(250_000_000, Some(10), 64 << 20)),
                    ("side", usage(1_000, None, 1024)),
                ],
            ),
            pod("b", vec![("app", usage(5, Some(7), 3))]),
            pod("idle", vec![]),
        ];
        let s = summarize("n1", t(0), pods, t(9));
        assert_eq!(s.pods.len(), 2, "a pod with nothing measured is left out");
        let a = &s.pods[0];
        assert_eq!(a.start_time, t(1), "first container start without status");
        assert_eq!(a.cpu.as_ref().unwrap().usage_nano_cores, Some(250_001_000));
        assert_eq!(a.cpu.as_ref().unwrap().usage_core_nano_seconds, None);
        assert_eq!(
            a.memory.as_ref().unwrap().working_set_bytes,
            Some((64 << 20) + 1024)
        );
        let node = &s.node;
        assert_eq!(
            node.cpu.as_ref().unwrap().usage_nano_cores,
            Some(250_001_005)
        );
        assert_eq!(
            node.memory.as_ref().unwrap().working_set_bytes,
            Some((64 << 20) + 1027)
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["node"]["nodeName"], "n1");
        assert_eq!(v["node"]["startTime"], "2023-11-14T22:13:20Z");
        assert_eq!(v["pods"][1]["podRef"]["uid"], "uid-b");
        let c = &v["pods"][1]["containers"][0];
        assert_eq!(c["cpu"]["usageNanoCores"], 5);
        assert_eq!(c["cpu"]["usageCoreNanoSeconds"], 7);
        assert_eq!(c["memory"]["workingSetBytes"], 3);
        assert_eq!(c["memory"]["time"], "2023-11-14T22:13:29Z");
        assert!(v["pods"][0]["cpu"].get("usageCoreNanoSeconds").is_none());
        let back: Summary = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[derive(Debug)]
    struct Fixed(Summary);

    impl StatsSource for Fixed {
        fn summary(&self) -> Summary {
            self.0.clone()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn router_serves_the_summary_over_http() {
        let s = summarize(
            "n1",
            t(0),
            vec![pod("a", vec![("c", usage(1, None, 2))])],
            t(3),
        );
        let app = router(Arc::new(Fixed(s.clone())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let body = tokio::task::spawn_blocking(move || {
            ureq::get(&format!("http://{addr}/stats/summary"))
                .call()
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap()
        })
        .await
        .unwrap();
        server.abort();
        let got: Summary = serde_json::from_str(&body).unwrap();
        assert_eq!(got, s);
    }
}
