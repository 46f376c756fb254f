//! The resource metrics API, `metrics.k8s.io/v1beta1`: `nodes` (`NodeMetrics`, cluster-scoped)
//! and `pods` (`PodMetrics`, namespaced), verbs `get` and `list` only — what `kubectl top
//! nodes|pods` and a HorizontalPodAutoscaler read.
//!
//! Upstream this group is served by metrics-server behind the aggregation layer, from the
//! kubelets' Summary API (`staging/src/k8s.io/kubelet/pkg/apis/stats/v1alpha1/types.go`); the
//! shapes are `staging/src/k8s.io/metrics/pkg/apis/metrics/v1beta1/types.go`. orch serves it
//! in the API server itself and keeps nothing: every answer is built on request by asking the
//! kubelets concerned for `GET /stats/summary` (at the address [`kubelet_url`] finds, as
//! `pods/log` does), with a short timeout ([`KUBELET_TIMEOUT`]). A kubelet that does not answer
//! in time leaves its node and pods out of lists (a `get` answers 404), as metrics-server does
//! for a node it could not scrape.
//!
//! Being storage-less and read-only, the group is not in [`orch_types::registry::BUILTIN`]
//! (whose kinds all get storage, watch and the generic REST verbs): [`RESOURCES`] describes
//! it, [`crate::discovery`] adds it to the legacy and aggregated documents, and [`routes`]
//! serves its five paths as static routes, which win over the generic `/apis/{*path}` handler.
//!
//! Lists honour `labelSelector` and `fieldSelector` (`metadata.name`) by listing the nodes or
//! pods themselves with them; each object carries its node's or pod's labels, `timestamp` is
//! when the kubelet sampled, and `window` is [`WINDOW`] (the sim runtime's figures are
//! instantaneous and the process runtime samples about that often).

use crate::rest::negotiate::Failure;
use crate::rest::{Resource, RestResult};
use crate::server::ApiServer;
use crate::subresources::kubelet_url;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use orch_types::client::ListParams;
use orch_types::metrics::{ContainerMetrics, NodeMetrics, PodMetrics, Usage};
use orch_types::quantity::{Format, Quantity};
use orch_types::registry::{self, ResourceInfo};
use orch_types::{ApiError, DynamicObject};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub use orch_types::metrics::{GROUP, VERSION};
/// How long a kubelet may take to answer `/stats/summary`.
pub const KUBELET_TIMEOUT: Duration = Duration::from_secs(5);
/// The `window` reported with every figure.
pub const WINDOW: &str = "10s";

const READ_ONLY: &[&str] = &["get", "list"];

/// The group's resources, for discovery (never stored).
pub static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        group: GROUP,
        version: VERSION,
        kind: "NodeMetrics",
        plural: "nodes",
        singular: "",
        short_names: &[],
        namespaced: false,
        verbs: READ_ONLY,
        categories: &[],
        subresources: &[],
    },
    ResourceInfo {
        group: GROUP,
        version: VERSION,
        kind: "PodMetrics",
        plural: "pods",
        singular: "",
        short_names: &[],
        namespaced: true,
        verbs: READ_ONLY,
        categories: &[],
        subresources: &[],
    },
];

/// The part of the kubelet's Summary this API reads (the rest is ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Summary {
    /// The node's totals.
    pub node: NodeStats,
    /// The pods with running containers.
    #[serde(default)]
    pub pods: Vec<PodStats>,
}

/// A node's usage in the Summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// The node name.
    #[serde(default)]
    pub node_name: String,
    /// CPU.
    pub cpu: Option<CpuStats>,
    /// Memory.
    pub memory: Option<MemoryStats>,
}

/// Which pod a [`PodStats`] is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PodReference {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID.
    #[serde(default)]
    pub uid: String,
}

/// A pod's usage in the Summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    /// The pod.
    pub pod_ref: PodReference,
    /// Its containers.
    #[serde(default)]
    pub containers: Vec<ContainerStats>,
}

/// A container's usage in the Summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ContainerStats {
    /// Container name.
    pub name: String,
    /// CPU.
    pub cpu: Option<CpuStats>,
    /// Memory.
    pub memory: Option<MemoryStats>,
}

/// CPU figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    /// When sampled (RFC 3339).
    pub time: Option<String>,
    /// Usage in nano-cores.
    pub usage_nano_cores: Option<u64>,
}

/// Memory figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    /// When sampled (RFC 3339).
    pub time: Option<String>,
    /// Working set in bytes.
    pub working_set_bytes: Option<u64>,
}

/// Nano-cores as a CPU quantity in canonical form (`123` → `123n`, `250000000` → `250m`), as
/// metrics-server's `resource.NewScaledQuantity(nanoCores, -9)`.
///
/// ```
/// assert_eq!(orch_apiserver::metrics::cpu_quantity(250_000_000), "250m");
/// ```
pub fn cpu_quantity(nano_cores: u64) -> String {
    format!("{nano_cores}n")
        .parse::<Quantity>()
        .map(|q| q.to_string())
        .unwrap_or_else(|_| "0".into())
}

/// Bytes as a binary-SI memory quantity in canonical form (`65536` → `64Ki`,
/// `67108864` → `64Mi`; below 1024 decimal, `1000` → `1k`, as upstream prints it), as metrics-server's
/// `resource.NewQuantity(bytes, resource.BinarySI)`.
pub fn memory_quantity(bytes: u64) -> String {
    Quantity::from_value(i64::try_from(bytes).unwrap_or(i64::MAX), Format::BinarySI).to_string()
}

/// `{"cpu": …, "memory": …}`, or `None` unless both figures are known (metrics-server leaves
/// out what it cannot report in full).
fn usage(cpu: Option<&CpuStats>, memory: Option<&MemoryStats>) -> Option<Usage> {
    Some(usage_of(cpu?.usage_nano_cores?, memory?.working_set_bytes?))
}

/// The `usage` of a PodMetrics container or a NodeMetrics from CPU nano-cores and working-set
/// bytes, in canonical quantities (what the simulator's metrics feed uses too).
pub fn usage_of(nano_cores: u64, bytes: u64) -> Usage {
    Usage::from([
        ("cpu".to_string(), K8sQuantity(cpu_quantity(nano_cores))),
        ("memory".to_string(), K8sQuantity(memory_quantity(bytes))),
    ])
}

fn metadata(o: &DynamicObject, now: Timestamp) -> ObjectMeta {
    ObjectMeta {
        name: Some(o.name().to_string()),
        namespace: o.namespace().map(str::to_string),
        creation_timestamp: Some(Time(now)),
        labels: o.metadata.labels.clone().filter(|l| !l.is_empty()),
        ..Default::default()
    }
}

/// The sample time of a figure (RFC 3339 from the kubelet), else `now`.
fn sampled(time: Option<&str>, now: Timestamp) -> Time {
    Time(time.and_then(|t| t.parse().ok()).unwrap_or(now))
}

/// The `NodeMetrics` of `node` from its kubelet's Summary, `None` if the Summary has no
/// complete node figure.
pub fn node_metrics(node: &DynamicObject, s: &Summary, now: Timestamp) -> Option<NodeMetrics> {
    let usage = usage(s.node.cpu.as_ref(), s.node.memory.as_ref())?;
    let time = s.node.cpu.as_ref().and_then(|c| c.time.as_deref());
    Some(NodeMetrics {
        metadata: metadata(node, now),
        timestamp: sampled(time, now),
        window: WINDOW.into(),
        usage,
    })
}

/// The `PodMetrics` of `pod` from its entry in the Summary; `None` if no container has
/// complete figures.
pub fn pod_metrics(pod: &DynamicObject, p: &PodStats, now: Timestamp) -> Option<PodMetrics> {
    let containers: Vec<ContainerMetrics> = p
        .containers
        .iter()
        .filter_map(|c| {
            Some(ContainerMetrics {
                name: c.name.clone(),
                usage: usage(c.cpu.as_ref(), c.memory.as_ref())?,
            })
        })
        .collect();
    if containers.is_empty() {
        return None;
    }
    let time = p
        .containers
        .iter()
        .find_map(|c| c.cpu.as_ref().and_then(|c| c.time.as_deref()));
    Some(PodMetrics {
        metadata: metadata(pod, now),
        timestamp: sampled(time, now),
        window: WINDOW.into(),
        containers,
    })
}

/// An object as served: its fields with `apiVersion` and `kind`.
fn wire<K: k8s_openapi::Resource + serde::Serialize>(o: &K) -> RestResult<Value> {
    let d = DynamicObject::from_typed(o).map_err(|e| ApiError::internal(e.to_string()))?;
    serde_json::to_value(d).map_err(|e| ApiError::internal(e.to_string()))
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({
        "kind": format!("{kind}List"),
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {},
        "items": items,
    })
}

fn core(plural: &str) -> RestResult<Resource> {
    registry::by_plural("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} not served")))
}

/// Asks `node`'s kubelet for its Summary; `None` (logged) if it has no address, does not
/// answer within [`KUBELET_TIMEOUT`] or answers something else.
async fn fetch_summary(
    api: &ApiServer,
    http: &reqwest::Client,
    node: &DynamicObject,
) -> Option<Summary> {
    let url = crate::kubelet_client::with_scheme(
        api,
        format!("{}/stats/summary", kubelet_url(node).ok()?),
    );
    let resp = http.get(&url).timeout(KUBELET_TIMEOUT).send().await;
    let parsed = match resp {
        Ok(r) if r.status().is_success() => r.json::<Summary>().await.map_err(|e| e.to_string()),
        Ok(r) => Err(format!("status {}", r.status())),
        Err(e) => Err(crate::kubelet_client::error_chain(&e)),
    };
    parsed
        .map_err(|e| tracing::debug!(node = %node.name(), error = %e, "no summary from kubelet"))
        .ok()
}

/// The Summaries of `nodes`, asked concurrently; missing ones are left out.
async fn summaries(api: &ApiServer, nodes: &[Arc<DynamicObject>]) -> HashMap<String, Summary> {
    let http = crate::kubelet_client::http(api);
    let answers =
        futures::future::join_all(nodes.iter().map(|n| fetch_summary(api, &http, n.as_ref())))
            .await;
    nodes
        .iter()
        .zip(answers)
        .filter_map(|(n, s)| Some((n.name().to_string(), s?)))
        .collect()
}

fn now(api: &ApiServer) -> Timestamp {
    api.config().clock.now()
}

fn params(q: &HashMap<String, String>) -> ListParams {
    ListParams {
        label_selector: q.get("labelSelector").cloned().filter(|s| !s.is_empty()),
        field_selector: q.get("fieldSelector").cloned().filter(|s| !s.is_empty()),
        ..Default::default()
    }
}

fn node_not_found(name: &str) -> ApiError {
    ApiError::not_found(&format!("nodemetrics.{GROUP}"), name)
}

fn pod_not_found(name: &str) -> ApiError {
    ApiError::not_found(&format!("podmetrics.{GROUP}"), name)
}

impl ApiServer {
    /// `NodeMetricsList` of the nodes matching `p` (those whose kubelet answered).
    pub async fn list_node_metrics(&self, p: &ListParams) -> RestResult<Value> {
        let nodes = self.list_objects(core("nodes")?, None, p).await?.items;
        let sums = summaries(self, &nodes).await;
        let now = now(self);
        let items = nodes
            .iter()
            .filter_map(|n| node_metrics(n, sums.get(n.name())?, now))
            .map(|m| wire(&m))
            .collect::<RestResult<_>>()?;
        Ok(list("NodeMetrics", items))
    }

    /// The `NodeMetrics` of node `name`; 404 if there is no such node or no figure for it.
    pub async fn get_node_metrics(&self, name: &str) -> RestResult<Value> {
        let node = self
            .get_object(core("nodes")?, None, name)
            .await
            .map_err(|e| {
                if e.code == 404 {
                    node_not_found(name)
                } else {
                    e
                }
            })?;
        let sums = summaries(self, std::slice::from_ref(&node)).await;
        let m = sums
            .get(name)
            .and_then(|s| node_metrics(&node, s, now(self)))
            .ok_or_else(|| node_not_found(name))?;
        wire(&m)
    }

    /// `PodMetrics` of `pods`, from the Summaries of the nodes they run on.
    async fn pod_metrics_of(&self, pods: &[Arc<DynamicObject>]) -> RestResult<Vec<Value>> {
        let mut node_names: Vec<&str> = pods
            .iter()
            .filter_map(|p| p.data.get("spec")?.get("nodeName")?.as_str())
            .filter(|n| !n.is_empty())
            .collect();
        node_names.sort_unstable();
        node_names.dedup();
        let mut nodes = vec![];
        for n in node_names {
            match self.get_object(core("nodes")?, None, n).await {
                Ok(node) => nodes.push(node),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let sums = summaries(self, &nodes).await;
        let mut by_pod: BTreeMap<(&str, &str), &PodStats> = BTreeMap::new();
        for s in sums.values() {
            for p in &s.pods {
                by_pod.insert((&p.pod_ref.namespace, &p.pod_ref.name), p);
            }
        }
        let now = now(self);
        pods.iter()
            .filter_map(|pod| {
                let s = by_pod.get(&(pod.namespace().unwrap_or_default(), pod.name()))?;
                let uid = pod.metadata.uid.as_deref().unwrap_or_default();
                if !s.pod_ref.uid.is_empty() && !uid.is_empty() && s.pod_ref.uid != uid {
                    return None; // a pod of the same name that is gone
                }
                pod_metrics(pod, s, now)
            })
            .map(|m| wire(&m))
            .collect()
    }

    /// `PodMetricsList` of the pods in `ns` (all namespaces: `None`) matching `p`.
    pub async fn list_pod_metrics(&self, ns: Option<&str>, p: &ListParams) -> RestResult<Value> {
        let pods = self.list_objects(core("pods")?, ns, p).await?.items;
        Ok(list("PodMetrics", self.pod_metrics_of(&pods).await?))
    }

    /// The `PodMetrics` of pod `ns/name`; 404 `podmetrics.metrics.k8s.io "<name>" not found`
    /// if there is no such pod or no figure for it.
    pub async fn get_pod_metrics(&self, ns: &str, name: &str) -> RestResult<Value> {
        let pod = self
            .get_object(core("pods")?, Some(ns), name)
            .await
            .map_err(|e| {
                if e.code == 404 {
                    pod_not_found(name)
                } else {
                    e
                }
            })?;
        self.pod_metrics_of(std::slice::from_ref(&pod))
            .await?
            .pop()
            .ok_or_else(|| pod_not_found(name))
    }
}

fn answer(r: RestResult<Value>) -> Response {
    match r {
        Ok(v) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&v).unwrap_or_default(),
        )
            .into_response(),
        Err(e) => Failure(e).into_response(),
    }
}

type Api = State<Arc<ApiServer>>;
type Params = Query<HashMap<String, String>>;

async fn list_nodes(State(api): Api, Query(q): Params) -> Response {
    answer(api.list_node_metrics(&params(&q)).await)
}

async fn get_node(State(api): Api, Path(name): Path<String>) -> Response {
    answer(api.get_node_metrics(&name).await)
}

async fn list_all_pods(State(api): Api, Query(q): Params) -> Response {
    answer(api.list_pod_metrics(None, &params(&q)).await)
}

async fn list_pods(State(api): Api, Path(ns): Path<String>, Query(q): Params) -> Response {
    answer(api.list_pod_metrics(Some(&ns), &params(&q)).await)
}

async fn get_pod(State(api): Api, Path((ns, name)): Path<(String, String)>) -> Response {
    answer(api.get_pod_metrics(&ns, &name).await)
}

/// The group's routes (GET only; other methods answer 405).
pub fn routes() -> Router<Arc<ApiServer>> {
    let base = format!("/apis/{GROUP}/{VERSION}");
    Router::new()
        .route(&format!("{base}/nodes"), get(list_nodes))
        .route(&format!("{base}/nodes/{{name}}"), get(get_node))
        .route(&format!("{base}/pods"), get(list_all_pods))
        .route(
            &format!("{base}/namespaces/{{namespace}}/pods"),
            get(list_pods),
        )
        .route(
            &format!("{base}/namespaces/{{namespace}}/pods/{{name}}"),
            get(get_pod),
        )
}

#[cfg(test)]
mod tests;
