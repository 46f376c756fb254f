//! PodTopologySpread: hard constraints as a filter (maxSkew, minDomains, node inclusion
//! policies, matchLabelKeys), soft constraints as a score (upstream `podtopologyspread`).

use crate::cycle_state::CycleState;
use crate::framework::{
    FilterPlugin, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin, ScorePlugin,
    MAX_NODE_SCORE,
};
use crate::node_info::NodeInfo;
use crate::pod_info::{PodInfo, SpreadConstraint};
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};
use std::collections::HashMap;

/// Label every node has with its own name.
pub const HOSTNAME: &str = "kubernetes.io/hostname";

/// `PodTopologySpreadArgs`. Only `defaultingType: System` with no default constraints is
/// evaluated: cluster-level default constraints need the selectors of the pod's Services and
/// controllers, which the snapshot does not track (documented deviation).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTopologySpreadArgs {
    /// Cluster default constraints (accepted, see above).
    #[serde(default)]
    pub default_constraints: Vec<serde_json::Value>,
    /// `System` or `List`.
    #[serde(default)]
    pub defaulting_type: Option<String>,
}

/// The plugin.
#[derive(Debug, Default)]
pub struct PodTopologySpread;

impl PodTopologySpread {
    /// Registry name.
    pub const NAME: &'static str = "PodTopologySpread";
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

/// Pods on the node matching the selector in the namespace, not terminating
/// (upstream `countPodsMatchSelector`).
pub fn count_matching(node: &NodeInfo, c: &SpreadConstraint, ns: &str) -> i64 {
    node.pods
        .iter()
        .filter(|p| !p.terminating && p.namespace == ns && c.selector.matches(&p.labels))
        .count() as i64
}

fn has_all_keys(node: &NodeInfo, cs: &[&SpreadConstraint]) -> bool {
    cs.iter().all(|c| node.labels.contains_key(&c.topology_key))
}

fn inclusion(c: &SpreadConstraint, pod: &PodInfo, node: &NodeInfo) -> bool {
    if c.honor_node_affinity && !super::node_affinity::required_matches(pod, node) {
        return false;
    }
    if c.honor_node_taints {
        let untolerated = node.taints.iter().any(|t| {
            (t.effect == "NoSchedule" || t.effect == "NoExecute")
                && !pod
                    .tolerations
                    .iter()
                    .any(|tol| super::taint_toleration::tolerates(tol, t))
        });
        if untolerated {
            return false;
        }
    }
    true
}

struct FilterState {
    /// Indices into `pod.spread` of the hard constraints.
    constraints: Vec<usize>,
    /// Per constraint: topology value → matching pods.
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: global minimum (0 when fewer domains than minDomains).
    min: Vec<i64>,
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
    ) -> PreFilterResult {
        let idx: Vec<usize> = (0..pod.spread.len())
            .filter(|i| pod.spread[*i].hard)
            .collect();
        if idx.is_empty() {
            return Status::skip().into();
        }
        let cs: Vec<&SpreadConstraint> = idx.iter().map(|i| &pod.spread[*i]).collect();
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); cs.len()];
        for node in snap.nodes() {
            if !has_all_keys(node, &cs) {
                continue;
            }
            for (i, c) in cs.iter().enumerate() {
                if !inclusion(c, pod, node) {
                    continue;
                }
                let v = &node.labels[&c.topology_key];
                let n = count_matching(node, c, &pod.namespace);
                match counts[i].get_mut(v.as_str()) {
                    Some(x) => *x += n,
                    None => {
                        counts[i].insert(v.clone(), n);
                    }
                }
            }
        }
        let min = cs
            .iter()
            .zip(&counts)
            .map(|(c, m)| {
                if (m.len() as i64) < i64::from(c.min_domains) {
                    0
                } else {
                    m.values().copied().min().unwrap_or(i64::from(i32::MAX))
                }
            })
            .collect();
        state.write(FilterState {
            constraints: idx,
            counts,
            min,
        });
        Status::success().into()
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> Status {
        let Some(s) = state.read::<FilterState>() else {
            return Status::success();
        };
        for (i, ci) in s.constraints.iter().enumerate() {
            let c = &pod.spread[*ci];
            let Some(v) = node.labels.get(&c.topology_key) else {
                return Status::new(
                    Code::UnschedulableAndUnresolvable,
                    Reason::SpreadMissingTopologyLabel,
                );
            };
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let matched = s.counts[i].get(v.as_str()).copied().unwrap_or(0);
            let skew = matched + self_match - s.min[i];
            if skew > i64::from(c.max_skew) {
                return Status::new(Code::Unschedulable, Reason::SpreadConstraintsNotMatch);
            }
        }
        Status::success()
    }
}

struct ScoreState {
    constraints: Vec<usize>,
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
    /// Sorted indices of feasible nodes lacking a topology key.
    ignored: Vec<usize>,
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        feasible: &[usize],
        snap: &Snapshot,
    ) -> Status {
        let idx: Vec<usize> = (0..pod.spread.len())
            .filter(|i| !pod.spread[*i].hard)
            .collect();
        if idx.is_empty() || feasible.is_empty() {
            return Status::skip();
        }
        let cs: Vec<&SpreadConstraint> = idx.iter().map(|i| &pod.spread[*i]).collect();
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); cs.len()];
        let mut ignored = Vec::new();
        for &n in feasible {
            let node = snap.node(n);
            if !has_all_keys(node, &cs) {
                ignored.push(n);
                continue;
            }
            for (i, c) in cs.iter().enumerate() {
                if c.topology_key == HOSTNAME {
                    continue;
                }
                let v = &node.labels[&c.topology_key];
                if !counts[i].contains_key(v.as_str()) {
                    counts[i].insert(v.clone(), 0);
                }
            }
        }
        ignored.sort_unstable();
        let weights = cs
            .iter()
            .zip(&counts)
            .map(|(c, m)| {
                let size = if c.topology_key == HOSTNAME {
                    feasible.len() - ignored.len()
                } else {
                    m.len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        for node in snap.nodes() {
            if !has_all_keys(node, &cs) {
                continue;
            }
            for (i, c) in cs.iter().enumerate() {
                if c.topology_key == HOSTNAME || !inclusion(c, pod, node) {
                    continue;
                }
                let v = &node.labels[&c.topology_key];
                if counts[i].contains_key(v.as_str()) {
                    let n = count_matching(node, c, &pod.namespace);
                    if let Some(x) = counts[i].get_mut(v.as_str()) {
                        *x += n;
                    }
                }
            }
        }
        state.write(ScoreState {
            constraints: idx,
            counts,
            weights,
            ignored,
        });
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo, snap: &Snapshot) -> i64 {
        let Some(s) = state.read::<ScoreState>() else {
            return 0;
        };
        if let Some(i) = snap.node_index(&node.name) {
            if s.ignored.binary_search(&i).is_ok() {
                return 0;
            }
        }
        let mut score = 0.0;
        for (i, ci) in s.constraints.iter().enumerate() {
            let c = &pod.spread[*ci];
            if let Some(v) = node.labels.get(&c.topology_key) {
                let cnt = if c.topology_key == HOSTNAME {
                    count_matching(node, c, &pod.namespace)
                } else {
                    s.counts[i].get(v.as_str()).copied().unwrap_or(0)
                };
                score += cnt as f64 * s.weights[i] + f64::from(c.max_skew - 1);
            }
        }
        score.round() as i64
    }

    fn normalize(&self, state: &CycleState, _: &PodInfo, feasible: &[usize], scores: &mut [i64]) {
        let Some(s) = state.read::<ScoreState>() else {
            return;
        };
        let ignored = |i: usize| s.ignored.binary_search(&feasible[i]).is_ok();
        let (mut min, mut max) = (i64::MAX, 0i64);
        for (i, sc) in scores.iter().enumerate() {
            if ignored(i) {
                continue;
            }
            min = min.min(*sc);
            max = max.max(*sc);
        }
        for (i, sc) in scores.iter_mut().enumerate() {
            if ignored(i) {
                *sc = 0;
            } else if max == 0 {
                *sc = MAX_NODE_SCORE;
            } else {
                *sc = MAX_NODE_SCORE * (max + min - *sc) / max;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod_named, snapshot};
    use serde_json::{json, Value};

    fn constraint(skew: i32, key: &str, when: &str) -> Value {
        json!({"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
               "labelSelector": {"matchExpressions": [{"key": "foo", "operator": "Exists"}]}})
    }

    fn zone_nodes() -> Vec<NodeInfo> {
        vec![
            node(
                "node-a",
                json!({"zone": "zone1", "node": "node-a"}),
                json!({}),
            ),
            node(
                "node-b",
                json!({"zone": "zone1", "node": "node-b"}),
                json!({}),
            ),
            node(
                "node-x",
                json!({"zone": "zone2", "node": "node-x"}),
                json!({}),
            ),
            node(
                "node-y",
                json!({"zone": "zone2", "node": "node-y"}),
                json!({}),
            ),
        ]
    }

    fn placed(name: &str, node: &str) -> PodInfo {
        pod_named(name, json!({"foo": ""}), json!({"nodeName": node}))
    }

    fn run_filter(p: &PodInfo, snap: &Snapshot) -> Vec<Code> {
        let mut st = CycleState::default();
        let pre = PodTopologySpread.pre_filter(&mut st, p, snap);
        assert!(pre.status.is_success());
        snap.nodes()
            .iter()
            .map(|n| PodTopologySpread.filter(&st, p, n, snap).code)
            .collect()
    }

    #[test]
    fn filter_table() {
        use Code::*;
        // TestSingleConstraint "pods spread across zones as 3/3, all nodes fit".
        let p = pod_named(
            "p",
            json!({"foo": ""}),
            json!({"topologySpreadConstraints": [constraint(1, "zone", "DoNotSchedule")]}),
        );
        let snap = snapshot(
            zone_nodes(),
            vec![
                placed("a1", "node-a"),
                placed("b1", "node-b"),
                placed("y1", "node-y"),
            ],
        );
        // zone1 = 2, zone2 = 1: zone1 nodes would give skew 2.
        assert_eq!(
            run_filter(&p, &snap),
            vec![Unschedulable, Unschedulable, Success, Success]
        );
        // "no existing pods, incoming pod matches itself": all fit.
        let snap0 = snapshot(zone_nodes(), vec![]);
        assert_eq!(run_filter(&p, &snap0), vec![Success; 4]);
        // Node without the key: missing required label.
        let mut nodes = zone_nodes();
        nodes.push(node("node-z", json!({"node": "node-z"}), json!({})));
        let snap2 = snapshot(nodes, vec![]);
        assert_eq!(run_filter(&p, &snap2)[4], UnschedulableAndUnresolvable);
        // minDomains 3 with 2 domains: global min treated as 0.
        let mut c = constraint(1, "zone", "DoNotSchedule");
        c["minDomains"] = json!(3);
        let p3 = pod_named(
            "p",
            json!({"foo": ""}),
            json!({"topologySpreadConstraints": [c]}),
        );
        let snap3 = snapshot(
            zone_nodes(),
            vec![placed("a1", "node-a"), placed("x1", "node-x")],
        );
        assert_eq!(run_filter(&p3, &snap3), vec![Unschedulable; 4]);
        // Two constraints (zone maxSkew 1, node maxSkew 1).
        let p4 = pod_named(
            "p",
            json!({"foo": ""}),
            json!({"topologySpreadConstraints": [
            constraint(1, "zone", "DoNotSchedule"), constraint(1, "node", "DoNotSchedule")]}),
        );
        let snap4 = snapshot(
            zone_nodes(),
            vec![
                placed("a1", "node-a"),
                placed("x1", "node-x"),
                placed("y1", "node-y"),
            ],
        );
        assert_eq!(
            run_filter(&p4, &snap4),
            vec![Unschedulable, Success, Unschedulable, Unschedulable]
        );
    }

    #[test]
    fn node_affinity_policy_excludes_domains() {
        // nodeAffinityPolicy Honor (default): nodes not matching the pod's nodeSelector are not counted.
        let p = pod_named(
            "p",
            json!({"foo": ""}),
            json!({"nodeSelector": {"zone": "zone1"},
            "topologySpreadConstraints": [constraint(1, "node", "DoNotSchedule")]}),
        );
        let snap = snapshot(zone_nodes(), vec![placed("a1", "node-a")]);
        // node-x/node-y are not domains, so the min is node-b's 0.
        let codes = run_filter(&p, &snap);
        assert_eq!(codes[0], Code::Unschedulable);
        assert_eq!(codes[1], Code::Success);
    }

    #[test]
    fn score_table() {
        // TestPodTopologySpreadScore "one constraint on node, all 4 nodes are candidates":
        // matching pods spread as 2/1/0/3 on hostname -> {a: 20, b: 60, c: 100, d: 0}.
        let p = pod_named(
            "p",
            json!({"foo": ""}),
            json!({"topologySpreadConstraints": [constraint(1, HOSTNAME, "ScheduleAnyway")]}),
        );
        let nodes = ["node-a", "node-b", "node-c", "node-d"]
            .iter()
            .map(|n| node(n, json!({HOSTNAME: n}), json!({})))
            .collect();
        let pods = [
            ("a1", "node-a"),
            ("a2", "node-a"),
            ("b1", "node-b"),
            ("d1", "node-d"),
            ("d2", "node-d"),
            ("d3", "node-d"),
        ]
        .iter()
        .map(|(p, n)| placed(p, n))
        .collect();
        let snap = snapshot(nodes, pods);
        let feasible: Vec<usize> = (0..4).collect();
        let mut st = CycleState::default();
        assert!(PodTopologySpread
            .pre_score(&mut st, &p, &feasible, &snap)
            .is_success());
        let mut s: Vec<i64> = feasible
            .iter()
            .map(|i| PodTopologySpread.score(&st, &p, snap.node(*i), &snap))
            .collect();
        PodTopologySpread.normalize(&st, &p, &feasible, &mut s);
        assert_eq!(s, vec![20, 60, 100, 0]);
    }
}
