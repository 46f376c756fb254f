//! PodTopologySpread: hard constraints as a filter (maxSkew, minDomains, node inclusion
//! policies, matchLabelKeys), soft constraints as a score (upstream `podtopologyspread`).

use crate::cycle_state::CycleState;
use crate::framework::{
    FilterPlugin, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin, ScorePlugin,
    MAX_NODE_SCORE,
};
use crate::node_info::NodeInfo;
use crate::pod_index::{Domains, PodFilter, PodIndex, MISSING};
use crate::pod_info::{PodInfo, SpreadConstraint};
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};
use parking_lot::Mutex;

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

/// The plugin. It keeps, per (namespace, selector), the number of matching pods on every node,
/// updated from the snapshot's change log, and per topology key the domain of every node
/// ([`PodIndex`]), so a cycle aggregates integers instead of matching every pod of the cluster
/// (upstream counts from scratch each cycle; the results are the same).
#[derive(Debug, Default)]
pub struct PodTopologySpread {
    index: Mutex<PodIndex>,
}

/// True when the node inclusion policies let every node with the key count for `c`.
fn is_trivial(c: &SpreadConstraint, pod: &PodInfo) -> bool {
    !c.honor_node_taints
        && (!c.honor_node_affinity
            || (pod.node_selector.is_empty() && pod.required_node_affinity.is_none()))
}

/// A constraint's domains and, per domain, (matching pods, has an eligible node).
type DomainTotals = (Domains, Vec<(i64, bool)>);

/// Per constraint: for every domain, (matching pods over eligible nodes, domain has an
/// eligible node). Eligible: the node has every constraint's key and passes the constraint's
/// node inclusion policies.
fn domain_totals(
    index: &mut PodIndex,
    pod: &PodInfo,
    cs: &[&SpreadConstraint],
    snap: &Snapshot,
) -> Vec<DomainTotals> {
    index.trim();
    if let [c] = cs {
        if is_trivial(c, pod) {
            // One constraint, every node with the key eligible: the index keeps the totals.
            let filter = PodFilter::Spread {
                namespace: pod.namespace.clone(),
                selector: c.selector.clone(),
            };
            let (d, totals) = index.domain_counts(snap, &filter, &c.topology_key);
            let v = totals.iter().map(|n| (*n, true)).collect();
            return vec![(d, v)];
        }
    }
    let ids: Vec<(Domains, usize)> = cs
        .iter()
        .map(|c| {
            let filter = PodFilter::Spread {
                namespace: pod.namespace.clone(),
                selector: c.selector.clone(),
            };
            (
                index.domains(snap, &c.topology_key).clone(),
                index.counts(snap, &filter),
            )
        })
        .collect();
    let trivial: Vec<bool> = cs.iter().map(|c| is_trivial(c, pod)).collect();
    let mut out: Vec<Vec<(i64, bool)>> = ids
        .iter()
        .map(|(d, _)| vec![(0, false); d.names.len()])
        .collect();
    'nodes: for i in 0..snap.len() {
        for (d, _) in &ids {
            if d.domain_of[i] == MISSING {
                continue 'nodes;
            }
        }
        for (k, (d, c)) in ids.iter().enumerate() {
            if !trivial[k] && !inclusion(cs[k], pod, snap.node(i)) {
                continue;
            }
            let e = &mut out[k][d.domain_of[i] as usize];
            e.0 += index.per_node(*c)[i];
            e.1 = true;
        }
    }
    ids.into_iter().map(|(d, _)| d).zip(out).collect()
}

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
                && !orch_types::taints::tolerations_tolerate(&pod.tolerations, t)
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
    /// Per constraint: the nodes' domains.
    domains: Vec<Domains>,
    /// Per constraint and domain: matching pods (0 for a domain without eligible nodes).
    counts: Vec<Vec<i64>>,
    /// Per constraint: global minimum (0 when fewer domains than minDomains).
    min: Vec<i64>,
    /// Per constraint: 1 when the pod matches its own selector.
    self_match: Vec<i64>,
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
        let totals = domain_totals(&mut self.index.lock(), pod, &cs, snap);
        let mut domains = Vec::with_capacity(cs.len());
        let mut counts = Vec::with_capacity(cs.len());
        let mut min = Vec::with_capacity(cs.len());
        for (c, (d, v)) in cs.iter().zip(totals) {
            let present = v.iter().filter(|(_, p)| *p).count();
            min.push(if (present as i64) < i64::from(c.min_domains) {
                0
            } else {
                v.iter()
                    .filter(|(_, p)| *p)
                    .map(|(n, _)| *n)
                    .min()
                    .unwrap_or(i64::from(i32::MAX))
            });
            counts.push(v.iter().map(|(n, p)| if *p { *n } else { 0 }).collect());
            domains.push(d);
        }
        let self_match = cs
            .iter()
            .map(|c| i64::from(c.selector.matches(&pod.labels)))
            .collect();
        state.write(FilterState {
            constraints: idx,
            domains,
            counts,
            min,
            self_match,
        });
        Status::success().into()
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        snap: &Snapshot,
    ) -> Status {
        let Some(s) = state.read::<FilterState>() else {
            return Status::success();
        };
        for (i, ci) in s.constraints.iter().enumerate() {
            let Some(d) = s.domains[i].of(node, snap) else {
                return Status::fixed(
                    Code::UnschedulableAndUnresolvable,
                    &[Reason::SpreadMissingTopologyLabel],
                );
            };
            let matched = s.counts[i].get(d).copied().unwrap_or(0);
            let skew = matched + s.self_match[i] - s.min[i];
            if skew > i64::from(pod.spread[*ci].max_skew) {
                return Status::fixed(Code::Unschedulable, &[Reason::SpreadConstraintsNotMatch]);
            }
        }
        Status::success()
    }
}

struct ScoreState {
    constraints: Vec<usize>,
    /// Per constraint: the domains and matching pods per domain (`None` for hostname
    /// constraints, counted per node in Score).
    counts: Vec<Option<(Domains, Vec<i64>)>>,
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
        let mut index = self.index.lock();
        index.trim();
        let domains: Vec<Option<Domains>> = cs
            .iter()
            .map(|c| {
                (c.topology_key != HOSTNAME).then(|| index.domains(snap, &c.topology_key).clone())
            })
            .collect();
        // Distinct domains among the feasible nodes that have every key.
        let mut seen: Vec<Vec<bool>> = domains
            .iter()
            .map(|d| vec![false; d.as_ref().map_or(0, |d| d.names.len())])
            .collect();
        let mut sizes = vec![0usize; cs.len()];
        let mut ignored = Vec::new();
        for &n in feasible {
            if !has_all_keys(snap.node(n), &cs) {
                ignored.push(n);
                continue;
            }
            for (i, d) in domains.iter().enumerate() {
                if let Some(&dom) = d.as_ref().and_then(|d| d.domain_of.get(n)) {
                    if dom != MISSING && !seen[i][dom as usize] {
                        seen[i][dom as usize] = true;
                        sizes[i] += 1;
                    }
                }
            }
        }
        ignored.sort_unstable();
        let weights = cs
            .iter()
            .zip(&sizes)
            .map(|(c, m)| {
                let size = if c.topology_key == HOSTNAME {
                    feasible.len() - ignored.len()
                } else {
                    *m
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        let mut counts: Vec<Option<(Domains, Vec<i64>)>> = vec![None; cs.len()];
        if domains.iter().any(Option::is_some) {
            // Hostname constraints are counted per node in Score; the others need all keys.
            let totals = domain_totals(&mut index, pod, &cs, snap);
            for (i, (d, v)) in totals.into_iter().enumerate() {
                if cs[i].topology_key != HOSTNAME {
                    counts[i] = Some((d, v.into_iter().map(|(n, _)| n).collect()));
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
        if let Some(i) = snap.index_of(node).or_else(|| snap.node_index(&node.name)) {
            if s.ignored.binary_search(&i).is_ok() {
                return 0;
            }
        }
        let mut score = 0.0;
        for (i, ci) in s.constraints.iter().enumerate() {
            let c = &pod.spread[*ci];
            let cnt = match &s.counts[i] {
                None if node.labels.contains_key(&c.topology_key) => {
                    count_matching(node, c, &pod.namespace)
                }
                None => continue,
                Some((d, v)) => match d.of(node, snap) {
                    Some(dom) => v.get(dom).copied().unwrap_or(0),
                    None => continue,
                },
            };
            score += cnt as f64 * s.weights[i] + f64::from(c.max_skew - 1);
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
        let pre = PodTopologySpread::default().pre_filter(&mut st, p, snap);
        assert!(pre.status.is_success());
        snap.nodes()
            .iter()
            .map(|n| PodTopologySpread::default().filter(&st, p, n, snap).code)
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
        assert!(PodTopologySpread::default()
            .pre_score(&mut st, &p, &feasible, &snap)
            .is_success());
        let mut s: Vec<i64> = feasible
            .iter()
            .map(|i| PodTopologySpread::default().score(&st, &p, snap.node(*i), &snap))
            .collect();
        PodTopologySpread::default().normalize(&st, &p, &feasible, &mut s);
        assert_eq!(s, vec![20, 60, 100, 0]);
    }

    #[test]
    fn incremental_counts_follow_assumed_and_removed_pods() {
        // One plugin instance (one cache) across many cycles: hard zone spread with maxSkew 1
        // must hold after every placement and after deletions.
        let mut snap = snapshot(zone_nodes(), vec![]);
        let mut s = crate::Scheduler::default();
        let spec = json!({"topologySpreadConstraints": [constraint(1, "zone", "DoNotSchedule")]});
        let zone_counts = |snap: &Snapshot| {
            let mut z = [0i64; 2];
            for n in snap.nodes() {
                let i = usize::from(n.labels["zone"] == "zone2");
                z[i] += n.pods.len() as i64;
            }
            z
        };
        for i in 0..12 {
            let p = pod_named(&format!("p{i}"), json!({"foo": ""}), spec.clone());
            assert!(s.schedule_and_assume(&p, &mut snap).node().is_some());
            let z = zone_counts(&snap);
            assert!((z[0] - z[1]).abs() <= 1, "after p{i}: {z:?}");
        }
        // Delete three pods of zone1: the next pods must go to zone1.
        let zone1: Vec<String> = snap
            .nodes()
            .iter()
            .filter(|n| n.labels["zone"] == "zone1")
            .flat_map(|n| n.pods.iter().map(|p| p.key.clone()))
            .take(3)
            .collect();
        for k in zone1 {
            snap.remove_pod(&k);
        }
        for i in 12..15 {
            let p = pod_named(&format!("p{i}"), json!({"foo": ""}), spec.clone());
            let n = s
                .schedule_and_assume(&p, &mut snap)
                .node()
                .unwrap()
                .to_string();
            assert!(n == "node-a" || n == "node-b", "p{i} went to {n}");
        }
    }
}
