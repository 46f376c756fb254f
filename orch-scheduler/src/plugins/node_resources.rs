//! NodeResourcesFit (filter + LeastAllocated / MostAllocated / RequestedToCapacityRatio scoring)
//! and NodeResourcesBalancedAllocation (upstream `noderesources`).

use crate::cycle_state::CycleState;
use crate::framework::{FilterPlugin, Plugin, PreScorePlugin, ScorePlugin, MAX_NODE_SCORE};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::resources::{is_extended_resource, Resources, CPU, EPHEMERAL_STORAGE, MEMORY};
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A resource and its weight in scoring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSpec {
    /// Resource name.
    pub name: String,
    /// Weight (default 1).
    #[serde(default = "one")]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

/// `cpu` and `memory`, weight 1 each (upstream defaults).
pub fn default_resources() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec {
            name: CPU.into(),
            weight: 1,
        },
        ResourceSpec {
            name: MEMORY.into(),
            weight: 1,
        },
    ]
}

/// One point of the RequestedToCapacityRatio shape (utilization 0-100, score 0-10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapePoint {
    /// Utilization percent.
    pub utilization: i64,
    /// Score 0-10.
    pub score: i64,
}

/// `scoringStrategy.type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum StrategyType {
    /// Prefer the least allocated nodes (default).
    #[default]
    LeastAllocated,
    /// Prefer the most allocated nodes (bin packing).
    MostAllocated,
    /// Score by a piecewise linear function of utilization.
    RequestedToCapacityRatio,
}

/// `NodeResourcesFitArgs.scoringStrategy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoringStrategy {
    /// The strategy.
    #[serde(rename = "type", default)]
    pub kind: StrategyType,
    /// Resources and weights.
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
    /// The shape for RequestedToCapacityRatio.
    #[serde(default)]
    pub requested_to_capacity_ratio: Option<RatioArgs>,
}

impl Default for ScoringStrategy {
    fn default() -> Self {
        Self {
            kind: StrategyType::LeastAllocated,
            resources: default_resources(),
            requested_to_capacity_ratio: None,
        }
    }
}

/// `requestedToCapacityRatio`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatioArgs {
    /// Shape points sorted by utilization.
    pub shape: Vec<ShapePoint>,
}

/// `NodeResourcesFitArgs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FitArgs {
    /// Extended resources not checked.
    #[serde(default)]
    pub ignored_resources: Vec<String>,
    /// Extended resource groups (prefix before `/`) not checked.
    #[serde(default)]
    pub ignored_resource_groups: Vec<String>,
    /// Scoring.
    #[serde(default)]
    pub scoring_strategy: ScoringStrategy,
}

/// `NodeResourcesBalancedAllocationArgs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancedArgs {
    /// Resources (weights are ignored by the balance formula).
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
}

impl Default for BalancedArgs {
    fn default() -> Self {
        Self {
            resources: default_resources(),
        }
    }
}

#[derive(Debug, Clone)]
enum Dim {
    Cpu,
    Memory,
    Ephemeral,
    Scalar(Arc<str>),
}

#[derive(Debug, Clone)]
struct Dimension {
    dim: Dim,
    weight: i64,
}

fn dims(specs: &[ResourceSpec]) -> Vec<Dimension> {
    specs
        .iter()
        .map(|s| Dimension {
            dim: match s.name.as_str() {
                CPU => Dim::Cpu,
                MEMORY => Dim::Memory,
                EPHEMERAL_STORAGE => Dim::Ephemeral,
                n => Dim::Scalar(Arc::from(n)),
            },
            weight: s.weight,
        })
        .collect()
}

/// (allocatable, requested-after-placing-the-pod) for one dimension, upstream
/// `calculateResourceAllocatableRequest`; `(0, 0)` for a scalar resource the pod does not request.
#[inline]
fn alloc_req(dim: &Dim, node: &NodeInfo, node_req: &Resources, pod_req: &Resources) -> (i64, i64) {
    match dim {
        Dim::Cpu => (
            node.allocatable.milli_cpu,
            node_req.milli_cpu + pod_req.milli_cpu,
        ),
        Dim::Memory => (node.allocatable.memory, node_req.memory + pod_req.memory),
        Dim::Ephemeral => (
            node.allocatable.ephemeral_storage,
            node_req.ephemeral_storage + pod_req.ephemeral_storage,
        ),
        Dim::Scalar(n) => {
            let p = pod_req.scalar(n);
            if p == 0 {
                (0, 0)
            } else {
                (node.allocatable.scalar(n), node_req.scalar(n) + p)
            }
        }
    }
}

/// The plugin NodeResourcesFit.
#[derive(Debug)]
pub struct Fit {
    ignored: Vec<String>,
    ignored_groups: Vec<String>,
    kind: StrategyType,
    dims: Vec<Dimension>,
    shape: Vec<ShapePoint>,
}

impl Default for Fit {
    fn default() -> Self {
        Self::new(&FitArgs::default())
    }
}

impl Fit {
    /// Registry name.
    pub const NAME: &'static str = "NodeResourcesFit";

    /// With args.
    pub fn new(args: &FitArgs) -> Self {
        let s = &args.scoring_strategy;
        let shape = s
            .requested_to_capacity_ratio
            .as_ref()
            .map(|r| {
                r.shape
                    .iter()
                    .map(|p| ShapePoint {
                        utilization: p.utilization,
                        score: p.score * (MAX_NODE_SCORE / 10),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            ignored: args.ignored_resources.clone(),
            ignored_groups: args.ignored_resource_groups.clone(),
            kind: s.kind.clone(),
            dims: dims(&s.resources),
            shape,
        }
    }

    fn is_ignored(&self, name: &str) -> bool {
        is_extended_resource(name)
            && (self.ignored.iter().any(|i| i == name)
                || name
                    .split_once('/')
                    .is_some_and(|(g, _)| self.ignored_groups.iter().any(|i| i == g)))
    }
}

/// Every insufficient resource of a node for a pod (upstream `fitsRequest`).
pub fn insufficient(
    pod: &PodInfo,
    node: &NodeInfo,
    ignored: impl Fn(&str) -> bool,
) -> Vec<(Reason, bool)> {
    let mut out = Vec::new();
    let used = node.pods.len() as i64;
    if used + 1 > node.allocatable.allowed_pods {
        out.push((
            Reason::TooManyPods {
                used,
                capacity: node.allocatable.allowed_pods,
            },
            false,
        ));
    }
    let r = &pod.requests.requested;
    if r.is_zero() {
        return out;
    }
    let a = &node.allocatable;
    let q = &node.requested;
    let mut check = |name: &str, want: i64, used: i64, cap: i64| {
        if want > 0 && want > cap - used {
            out.push((
                Reason::InsufficientResource {
                    resource: name.into(),
                    requested: want,
                    used,
                    capacity: cap,
                },
                want > cap,
            ));
        }
    };
    check(CPU, r.milli_cpu, q.milli_cpu, a.milli_cpu);
    check(MEMORY, r.memory, q.memory, a.memory);
    check(
        EPHEMERAL_STORAGE,
        r.ephemeral_storage,
        q.ephemeral_storage,
        a.ephemeral_storage,
    );
    for (name, want) in &r.scalar {
        if ignored(name) {
            continue;
        }
        check(name, *want, q.scalar(name), a.scalar(name));
    }
    out
}

impl Plugin for Fit {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

impl FilterPlugin for Fit {
    #[inline]
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> Status {
        // Fast path without allocation: the common case fits.
        let r = &pod.requests.requested;
        let a = &node.allocatable;
        let q = &node.requested;
        if (node.pods.len() as i64) < a.allowed_pods
            && r.scalar.is_empty()
            && (r.milli_cpu == 0 || r.milli_cpu <= a.milli_cpu - q.milli_cpu)
            && (r.memory == 0 || r.memory <= a.memory - q.memory)
            && (r.ephemeral_storage == 0
                || r.ephemeral_storage <= a.ephemeral_storage - q.ephemeral_storage)
        {
            return Status::success();
        }
        let bad = insufficient(pod, node, |n| self.is_ignored(n));
        if bad.is_empty() {
            return Status::success();
        }
        let code = if bad.iter().any(|(_, unresolvable)| *unresolvable) {
            Code::UnschedulableAndUnresolvable
        } else {
            Code::Unschedulable
        };
        Status::with_reasons(code, bad.into_iter().map(|(r, _)| r).collect())
    }
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

fn most_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

fn broken_linear(shape: &[ShapePoint], p: i64) -> i64 {
    for (i, pt) in shape.iter().enumerate() {
        if p <= pt.utilization {
            if i == 0 {
                return pt.score;
            }
            let prev = &shape[i - 1];
            return prev.score
                + (pt.score - prev.score) * (p - prev.utilization)
                    / (pt.utilization - prev.utilization);
        }
    }
    shape.last().map_or(0, |p| p.score)
}

impl ScorePlugin for Fit {
    #[inline]
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        // Scoring uses the non-zero requests (upstream useRequested=false for Fit).
        let pod_req = &pod.requests.non_zero;
        let (mut score, mut weights) = (0i64, 0i64);
        match self.kind {
            StrategyType::LeastAllocated | StrategyType::MostAllocated => {
                for d in &self.dims {
                    let (alloc, req) = alloc_req(&d.dim, node, &node.non_zero_requested, pod_req);
                    if alloc == 0 {
                        continue;
                    }
                    let s = if self.kind == StrategyType::LeastAllocated {
                        least_requested(req, alloc)
                    } else {
                        most_requested(req, alloc)
                    };
                    score += s * d.weight;
                    weights += d.weight;
                }
                if weights == 0 {
                    0
                } else {
                    score / weights
                }
            }
            StrategyType::RequestedToCapacityRatio => {
                for d in &self.dims {
                    let (alloc, req) = alloc_req(&d.dim, node, &node.non_zero_requested, pod_req);
                    if alloc == 0 {
                        continue;
                    }
                    let s = if req > alloc {
                        broken_linear(&self.shape, 100)
                    } else {
                        broken_linear(&self.shape, req * 100 / alloc)
                    };
                    if s > 0 {
                        score += s * d.weight;
                        weights += d.weight;
                    }
                }
                if weights == 0 {
                    0
                } else {
                    (score as f64 / weights as f64).round() as i64
                }
            }
        }
    }
}

/// The plugin NodeResourcesBalancedAllocation.
#[derive(Debug)]
pub struct BalancedAllocation {
    dims: Vec<Dimension>,
}

impl Default for BalancedAllocation {
    fn default() -> Self {
        Self::new(&BalancedArgs::default())
    }
}

impl BalancedAllocation {
    /// Registry name.
    pub const NAME: &'static str = "NodeResourcesBalancedAllocation";

    /// With args.
    pub fn new(args: &BalancedArgs) -> Self {
        Self {
            dims: dims(&args.resources),
        }
    }
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

impl PreScorePlugin for BalancedAllocation {
    fn pre_score(&self, _: &mut CycleState, pod: &PodInfo, _: &[usize], _: &Snapshot) -> Status {
        // Best-effort pods are not scored (upstream 1.33, kubernetes#129138).
        let r = &pod.requests.requested;
        let best_effort = self.dims.iter().all(|d| match &d.dim {
            Dim::Cpu => r.milli_cpu == 0,
            Dim::Memory => r.memory == 0,
            Dim::Ephemeral => r.ephemeral_storage == 0,
            Dim::Scalar(n) => r.scalar(n) == 0,
        });
        if best_effort {
            Status::skip()
        } else {
            Status::success()
        }
    }
}

impl ScorePlugin for BalancedAllocation {
    #[inline]
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        // useRequested=true: actual requests, not the non-zero defaults.
        let pod_req = &pod.requests.requested;
        let mut fr = [0f64; 8];
        let mut n = 0usize;
        let mut total = 0.0;
        let mut extra: Vec<f64> = Vec::new();
        for d in &self.dims {
            let (alloc, req) = alloc_req(&d.dim, node, &node.requested, pod_req);
            if alloc == 0 {
                continue;
            }
            let f = (req as f64 / alloc as f64).min(1.0);
            total += f;
            if n < fr.len() {
                fr[n] = f;
            } else {
                extra.push(f);
            }
            n += 1;
        }
        let all: Vec<f64>;
        let fractions: &[f64] = if extra.is_empty() {
            &fr[..n]
        } else {
            all = fr.iter().copied().chain(extra).collect();
            &all
        };
        let std = match fractions.len() {
            0 | 1 => 0.0,
            2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
            len => {
                let mean = total / len as f64;
                let sum: f64 = fractions.iter().map(|f| (f - mean) * (f - mean)).sum();
                (sum / len as f64).sqrt()
            }
        };
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{pod, pod_named};
    use k8s_openapi::api::core::v1::Node;
    use serde_json::{json, Value};

    fn req(cpu: &str, mem: &str) -> Value {
        json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]})
    }

    fn node_with(alloc: Value, pods: &[Value]) -> NodeInfo {
        let n: Node = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "status": {"allocatable": alloc}}),
        )
        .unwrap();
        let mut ni = NodeInfo::new(n).unwrap();
        for (i, p) in pods.iter().enumerate() {
            ni.add_pod(Arc::new(pod_named(&format!("e{i}"), json!({}), p.clone())));
        }
        ni
    }

    #[test]
    fn filter_table() {
        // Cases from upstream fit_test.go TestEnoughRequests (node: 10 cpu (milli), 20 memory, 32 pods).
        let alloc = json!({"cpu": "10m", "memory": "20", "pods": "32", "example.com/aaa": "5"});
        let cases: Vec<(Value, Vec<Value>, Vec<&str>, Code)> = vec![
            (json!({}), vec![req("10m", "20")], vec![], Code::Success),
            (
                req("1m", "1"),
                vec![req("10m", "20")],
                vec!["Insufficient cpu", "Insufficient memory"],
                Code::Unschedulable,
            ),
            (req("1m", "1"), vec![req("5m", "5")], vec![], Code::Success),
            (req("1m", "1"), vec![req("9m", "19")], vec![], Code::Success),
            (
                req("2m", "1"),
                vec![req("9m", "5")],
                vec!["Insufficient cpu"],
                Code::Unschedulable,
            ),
            (
                req("1m", "2"),
                vec![req("5m", "19")],
                vec!["Insufficient memory"],
                Code::Unschedulable,
            ),
            (
                req("11m", "1"),
                vec![],
                vec!["Insufficient cpu"],
                Code::UnschedulableAndUnresolvable,
            ),
            (
                json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/aaa": "6"}}}]}),
                vec![],
                vec!["Insufficient example.com/aaa"],
                Code::UnschedulableAndUnresolvable,
            ),
            (
                json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/aaa": "3"}}}]}),
                vec![
                    json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/aaa": "3"}}}]}),
                ],
                vec!["Insufficient example.com/aaa"],
                Code::Unschedulable,
            ),
            (
                json!({"initContainers": [{"name": "i", "resources": {"requests": {"cpu": "3m", "memory": "1"}}}],
                    "containers": [{"name": "c", "resources": {"requests": {"cpu": "1m", "memory": "1"}}}]}),
                vec![req("8m", "19")],
                vec!["Insufficient cpu"],
                Code::Unschedulable,
            ),
        ];
        let fit = Fit::default();
        for (i, (p, existing, reasons, code)) in cases.into_iter().enumerate() {
            let n = node_with(alloc.clone(), &existing);
            let got = fit.filter(&CycleState::default(), &pod(p), &n, &Snapshot::new());
            assert_eq!(got.code, code, "case {i}: {got:?}");
            let msgs: Vec<String> = got
                .reasons
                .iter()
                .map(|r| r.message().into_owned())
                .collect();
            assert_eq!(msgs, reasons, "case {i}");
        }
        let ignoring = Fit::new(&FitArgs {
            ignored_resource_groups: vec!["example.com".into()],
            ..Default::default()
        });
        let p = pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/aaa": "6"}}}]}),
        );
        assert!(ignoring
            .filter(
                &CycleState::default(),
                &p,
                &node_with(alloc, &[]),
                &Snapshot::new()
            )
            .is_success());
    }

    #[test]
    fn too_many_pods() {
        let n = node_with(
            json!({"cpu": "1", "memory": "1Gi", "pods": "1"}),
            &[json!({})],
        );
        let got = Fit::default().filter(
            &CycleState::default(),
            &pod(json!({})),
            &n,
            &Snapshot::new(),
        );
        assert_eq!(got.message(), "Too many pods");
        assert_eq!(got.code, Code::Unschedulable);
    }

    #[test]
    fn least_and_most_allocated() {
        // TestLeastAllocatedScoringStrategy "nothing scheduled, resources requested, differently sized nodes":
        // node1 4000m/10000, node2 6000m/10000, pod 3000m/5000 -> 37, 50.
        let p = pod(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "1000m", "memory": "2000"}}},
            {"name": "b", "resources": {"requests": {"cpu": "2000m", "memory": "3000"}}}]}));
        let n1 = node_with(
            json!({"cpu": "4000m", "memory": "10000", "pods": "110"}),
            &[],
        );
        let n2 = node_with(
            json!({"cpu": "6000m", "memory": "10000", "pods": "110"}),
            &[],
        );
        let st = CycleState::default();
        let least = Fit::default();
        assert_eq!(least.score(&st, &p, &n1, &Snapshot::new()), 37);
        assert_eq!(least.score(&st, &p, &n2, &Snapshot::new()), 50);
        let most = Fit::new(&FitArgs {
            scoring_strategy: ScoringStrategy {
                kind: StrategyType::MostAllocated,
                ..Default::default()
            },
            ..Default::default()
        });
        // (3000*100/4000 + 5000*100/10000)/2 = (75+50)/2 = 62; (50+50)/2 = 50.
        assert_eq!(most.score(&st, &p, &n1, &Snapshot::new()), 62);
        assert_eq!(most.score(&st, &p, &n2, &Snapshot::new()), 50);
    }

    #[test]
    fn requested_to_capacity_ratio() {
        // TestRequestedToCapacityRatioScoringStrategy: shape (0,10),(100,0) = least allocated-like.
        let args = FitArgs {
            scoring_strategy: ScoringStrategy {
                kind: StrategyType::RequestedToCapacityRatio,
                resources: default_resources(),
                requested_to_capacity_ratio: Some(RatioArgs {
                    shape: vec![
                        ShapePoint {
                            utilization: 0,
                            score: 10,
                        },
                        ShapePoint {
                            utilization: 100,
                            score: 0,
                        },
                    ],
                }),
            },
            ..Default::default()
        };
        let fit = Fit::new(&args);
        let p = pod(req("3000m", "5000"));
        let n1 = node_with(
            json!({"cpu": "4000m", "memory": "10000", "pods": "110"}),
            &[],
        );
        // cpu 75% -> 25, mem 50% -> 50; mean 37.5 -> 38.
        assert_eq!(
            fit.score(&CycleState::default(), &p, &n1, &Snapshot::new()),
            38
        );
    }

    #[test]
    fn balanced_allocation() {
        // TestNodeResourcesBalancedAllocation: cpu 3000/4000 and mem 5000/10000 -> std 0.125 -> 87.
        let p = pod(req("3000m", "5000"));
        let n1 = node_with(
            json!({"cpu": "4000m", "memory": "10000", "pods": "110"}),
            &[],
        );
        let ba = BalancedAllocation::default();
        let mut st = CycleState::default();
        assert!(ba
            .pre_score(&mut st, &p, &[], &Snapshot::new())
            .is_success());
        assert_eq!(ba.score(&st, &p, &n1, &Snapshot::new()), 87);
        assert!(ba
            .pre_score(&mut st, &pod(json!({})), &[], &Snapshot::new())
            .is_skip());
    }
}
