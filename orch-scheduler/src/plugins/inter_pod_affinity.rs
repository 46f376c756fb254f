//! InterPodAffinity: required pod affinity / anti-affinity and existing pods' anti-affinity as
//! a filter, preferred terms (both ways) as a score (upstream `interpodaffinity`).

use crate::cycle_state::CycleState;
use crate::framework::{
    FilterPlugin, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin, ScorePlugin,
    MAX_NODE_SCORE,
};
use crate::node_info::NodeInfo;
use crate::pod_info::{AffinityTerm, PodInfo};
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// `InterPodAffinityArgs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterPodAffinityArgs {
    /// Weight of existing pods' required affinity terms in scoring (default 1).
    #[serde(default = "default_hard_weight")]
    pub hard_pod_affinity_weight: i64,
    /// Skip existing pods' preferred terms when the incoming pod has none.
    #[serde(default)]
    pub ignore_preferred_terms_of_existing_pods: bool,
}

fn default_hard_weight() -> i64 {
    1
}

impl Default for InterPodAffinityArgs {
    fn default() -> Self {
        Self {
            hard_pod_affinity_weight: 1,
            ignore_preferred_terms_of_existing_pods: false,
        }
    }
}

/// The plugin.
#[derive(Debug, Default)]
pub struct InterPodAffinity {
    args: InterPodAffinityArgs,
}

impl InterPodAffinity {
    /// Registry name.
    pub const NAME: &'static str = "InterPodAffinity";

    /// With args.
    pub fn new(args: InterPodAffinityArgs) -> Self {
        Self { args }
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

/// (topology key, value) → count. Pairs are keyed by a 64-bit FNV-1a hash of key and value so
/// building and probing the map never allocates; a collision needs two distinct label pairs
/// with equal 64-bit hashes in one cycle (probability ~n²/2⁶⁴, negligible).
#[derive(Debug, Default)]
struct TopologyCounts(HashMap<u64, i64, BuildHasherDefault<IdentityHasher>>);

/// Passes a precomputed u64 through.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn pair_hash(key: &str, val: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain(std::iter::once(0xff)).chain(val.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl TopologyCounts {
    #[inline]
    fn add(&mut self, node: &NodeInfo, key: &str, v: i64) {
        if let Some(val) = node.labels.get(key) {
            *self.0.entry(pair_hash(key, val)).or_default() += v;
        }
    }
    #[inline]
    fn get(&self, key: &str, val: &str) -> i64 {
        if self.0.is_empty() {
            return 0;
        }
        self.0.get(&pair_hash(key, val)).copied().unwrap_or(0)
    }
    fn is_empty(&self) -> bool {
        self.0.values().all(|v| *v == 0)
    }
}

struct FilterState {
    existing_anti: TopologyCounts,
    affinity: TopologyCounts,
    anti: TopologyCounts,
}

fn matches_all(
    terms: &[AffinityTerm],
    pod: &PodInfo,
    ns_labels: &BTreeMap<String, String>,
) -> bool {
    terms.iter().all(|t| t.matches(pod, ns_labels))
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
    ) -> PreFilterResult {
        if pod.required_affinity.is_empty()
            && pod.required_anti_affinity.is_empty()
            && snap.pods_with_required_anti_affinity() == 0
        {
            return Status::skip().into();
        }
        let mut existing_anti = TopologyCounts::default();
        if snap.pods_with_required_anti_affinity() > 0 {
            for node in snap
                .nodes()
                .iter()
                .filter(|n| n.pods_with_required_anti_affinity > 0)
            {
                for e in &node.pods {
                    for t in &e.required_anti_affinity {
                        if t.matches_in(pod, snap) {
                            existing_anti.add(node, &t.topology_key, 1);
                        }
                    }
                }
            }
        }
        let mut affinity = TopologyCounts::default();
        let mut anti = TopologyCounts::default();
        if !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty() {
            for node in snap.nodes() {
                for e in &node.pods {
                    if !pod.required_affinity.is_empty()
                        && pod.required_affinity.iter().all(|t| t.matches_in(e, snap))
                    {
                        for t in &pod.required_affinity {
                            affinity.add(node, &t.topology_key, 1);
                        }
                    }
                    for t in &pod.required_anti_affinity {
                        if t.matches_in(e, snap) {
                            anti.add(node, &t.topology_key, 1);
                        }
                    }
                }
            }
        }
        state.write(FilterState {
            existing_anti,
            affinity,
            anti,
        });
        Status::success().into()
    }
}

impl FilterPlugin for InterPodAffinity {
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
        // satisfyPodAffinity
        let mut pods_exist = true;
        for t in &pod.required_affinity {
            match node.labels.get(&t.topology_key) {
                Some(v) => {
                    if s.affinity.get(&t.topology_key, v) <= 0 {
                        pods_exist = false;
                    }
                }
                None => {
                    return Status::new(
                        Code::UnschedulableAndUnresolvable,
                        Reason::PodAffinityRulesNotMatch,
                    )
                }
            }
        }
        if !pods_exist {
            // The first pod of a group with affinity to itself may go anywhere with the keys.
            let own = snap.namespace_labels(&pod.namespace);
            if !(s.affinity.is_empty() && matches_all(&pod.required_affinity, pod, own)) {
                return Status::new(
                    Code::UnschedulableAndUnresolvable,
                    Reason::PodAffinityRulesNotMatch,
                );
            }
        }
        // satisfyPodAntiAffinity
        for t in &pod.required_anti_affinity {
            if let Some(v) = node.labels.get(&t.topology_key) {
                if s.anti.get(&t.topology_key, v) > 0 {
                    return Status::new(Code::Unschedulable, Reason::PodAntiAffinityRulesNotMatch);
                }
            }
        }
        // satisfyExistingPodsAntiAffinity
        if !s.existing_anti.0.is_empty() {
            // Upstream probes every label of the node.
            for (k, v) in &node.labels {
                if s.existing_anti.get(k, v) > 0 {
                    return Status::new(
                        Code::Unschedulable,
                        Reason::ExistingPodsAntiAffinityRulesNotMatch,
                    );
                }
            }
        }
        Status::success()
    }
}

struct ScoreState(TopologyCounts);

impl InterPodAffinity {
    fn process_existing(
        &self,
        scores: &mut TopologyCounts,
        pod: &PodInfo,
        e: &PodInfo,
        node: &NodeInfo,
        snap: &Snapshot,
    ) {
        if node.labels.is_empty() {
            return;
        }
        for t in &pod.preferred_affinity {
            if t.matches_in(e, snap) {
                scores.add(node, &t.topology_key, t.weight);
            }
        }
        for t in &pod.preferred_anti_affinity {
            if t.matches_in(e, snap) {
                scores.add(node, &t.topology_key, -t.weight);
            }
        }
        if self.args.hard_pod_affinity_weight > 0 {
            for t in &e.required_affinity {
                if t.matches_in(pod, snap) {
                    scores.add(node, &t.topology_key, self.args.hard_pod_affinity_weight);
                }
            }
        }
        for t in &e.preferred_affinity {
            if t.matches_in(pod, snap) {
                scores.add(node, &t.topology_key, t.weight);
            }
        }
        for t in &e.preferred_anti_affinity {
            if t.matches_in(pod, snap) {
                scores.add(node, &t.topology_key, -t.weight);
            }
        }
    }
}

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[usize],
        snap: &Snapshot,
    ) -> Status {
        let has_constraints =
            !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if !has_constraints
            && (self.args.ignore_preferred_terms_of_existing_pods || snap.pods_with_affinity() == 0)
        {
            return Status::skip();
        }
        let mut scores = TopologyCounts::default();
        for node in snap.nodes() {
            if !has_constraints && node.pods_with_affinity == 0 {
                continue;
            }
            for e in &node.pods {
                if !has_constraints
                    && e.preferred_affinity.is_empty()
                    && e.preferred_anti_affinity.is_empty()
                    && (e.required_affinity.is_empty() || self.args.hard_pod_affinity_weight <= 0)
                {
                    continue;
                }
                self.process_existing(&mut scores, pod, e, node, snap);
            }
        }
        if scores.0.is_empty() {
            return Status::skip();
        }
        state.write(ScoreState(scores));
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        let Some(ScoreState(s)) = state.read::<ScoreState>() else {
            return 0;
        };
        node.labels.iter().map(|(k, v)| s.get(k, v)).sum()
    }

    fn normalize(&self, state: &CycleState, _: &PodInfo, _: &[usize], scores: &mut [i64]) {
        if state.read::<ScoreState>().is_none() {
            return;
        }
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod_named, snapshot};
    use serde_json::{json, Value};

    fn term(key: &str, op: &str, values: &[&str], topo: &str) -> Value {
        json!({"labelSelector": {"matchExpressions": [{"key": key, "operator": op, "values": values}]}, "topologyKey": topo})
    }

    fn run(p: &PodInfo, snap: &Snapshot) -> Vec<Status> {
        let mut st = CycleState::default();
        let pre = InterPodAffinity::default().pre_filter(&mut st, p, snap);
        if pre.status.is_skip() {
            return vec![Status::success(); snap.len()];
        }
        snap.nodes()
            .iter()
            .map(|n| InterPodAffinity::default().filter(&st, p, n, snap))
            .collect()
    }

    #[test]
    fn filter_table() {
        // Cases from upstream filtering_test.go TestRequiredAffinitySingleNode.
        let n1 = || {
            node(
                "machine1",
                json!({"region": "r1", "zone": "z11", "hostname": "h1"}),
                json!({}),
            )
        };
        let existing = |labels: Value| pod_named("e", labels, json!({"nodeName": "machine1"}));
        let aff = |t: Value| json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}});
        let anti = |t: Value| json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}});
        let cases: Vec<(PodInfo, Vec<PodInfo>, Option<&str>)> = vec![
            // "A pod that has no required pod affinity scheduling rules can schedule onto a node with no existing pods"
            (pod_named("p", json!({}), json!({})), vec![], None),
            // "satisfies with requiredDuringSchedulingIgnoredDuringExecution in PodAffinity using In operator"
            (
                pod_named(
                    "p",
                    json!({}),
                    aff(term("service", "In", &["securityscan", "value2"], "region")),
                ),
                vec![existing(json!({"service": "securityscan"}))],
                None,
            ),
            // "NotIn operator that matches the existing pod"
            (
                pod_named(
                    "p",
                    json!({}),
                    aff(term(
                        "service",
                        "NotIn",
                        &["securityscan3", "value3"],
                        "region",
                    )),
                ),
                vec![existing(json!({"service": "securityscan"}))],
                None,
            ),
            // "doesn't satisfy PodAffinity because of unmatching labelSelector with the existing pod"
            (
                pod_named(
                    "p",
                    json!({}),
                    aff(term(
                        "service",
                        "In",
                        &["antivirusscan", "value2"],
                        "region",
                    )),
                ),
                vec![existing(json!({"service": "securityscan"}))],
                Some("node(s) didn't match pod affinity rules"),
            ),
            // "satisfies the PodAntiAffinity with existing pod but doesn't satisfy PodAntiAffinity symmetry with incoming pod"
            (
                pod_named(
                    "p",
                    json!({"service": "securityscan"}),
                    anti(term("service", "In", &["antivirusscan"], "zone")),
                ),
                vec![pod_named(
                    "e",
                    json!({"service": "antivirusscan"}),
                    json!({"nodeName": "machine1",
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("service", "In", &["securityscan"], "zone")]}}}),
                )],
                Some("node(s) didn't match pod anti-affinity rules"),
            ),
            // existing pod's anti-affinity only
            (
                pod_named("p", json!({"service": "securityscan"}), json!({})),
                vec![pod_named(
                    "e",
                    json!({}),
                    json!({"nodeName": "machine1",
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("service", "In", &["securityscan"], "zone")]}}}),
                )],
                Some("node(s) didn't satisfy existing pods anti-affinity rules"),
            ),
            // "pod matches its own affinity and there are no matching pods: allowed"
            (
                pod_named(
                    "p",
                    json!({"service": "securityscan"}),
                    aff(term("service", "In", &["securityscan"], "region")),
                ),
                vec![],
                None,
            ),
            // node lacking the topology key
            (
                pod_named(
                    "p",
                    json!({}),
                    aff(term("service", "In", &["securityscan"], "rack")),
                ),
                vec![existing(json!({"service": "securityscan"}))],
                Some("node(s) didn't match pod affinity rules"),
            ),
        ];
        for (i, (p, pods, want)) in cases.into_iter().enumerate() {
            let snap = snapshot(vec![n1()], pods);
            let got = &run(&p, &snap)[0];
            match want {
                None => assert!(got.is_success(), "case {i}: {got:?}"),
                Some(m) => assert_eq!(got.message(), m, "case {i}"),
            }
        }
    }

    #[test]
    fn anti_affinity_spreads_across_hosts() {
        let nodes = vec![
            node("a", json!({"kubernetes.io/hostname": "a"}), json!({})),
            node("b", json!({"kubernetes.io/hostname": "b"}), json!({})),
        ];
        let t = term("app", "In", &["web"], "kubernetes.io/hostname");
        let spec = json!({"nodeName": "a", "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t.clone()]}}});
        let snap = snapshot(nodes, vec![pod_named("w1", json!({"app": "web"}), spec)]);
        let p = pod_named(
            "w2",
            json!({"app": "web"}),
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}}),
        );
        let got = run(&p, &snap);
        assert_eq!(got[0].code, Code::Unschedulable);
        assert!(got[1].is_success());
    }

    #[test]
    fn score_table() {
        // TestPreferredAffinity "Affinity: pod that matches topology key & pods in nodes will get high score":
        // preferred affinity weight 5 to service=securityscan in region; existing pod in region r1.
        let nodes = vec![
            node("machine1", json!({"region": "r1"}), json!({})),
            node("machine2", json!({"region": "r2"}), json!({})),
            node("machine3", json!({"region": "r1"}), json!({})),
        ];
        let snap = snapshot(
            nodes,
            vec![pod_named(
                "e",
                json!({"service": "securityscan"}),
                json!({"nodeName": "machine1"}),
            )],
        );
        let p = pod_named(
            "p",
            json!({}),
            json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "podAffinityTerm": term("service", "In", &["securityscan"], "region")}]}}}),
        );
        let pl = InterPodAffinity::default();
        let mut st = CycleState::default();
        assert!(pl.pre_score(&mut st, &p, &[0, 1, 2], &snap).is_success());
        let mut s: Vec<i64> = snap
            .nodes()
            .iter()
            .map(|n| pl.score(&st, &p, n, &snap))
            .collect();
        pl.normalize(&st, &p, &[0, 1, 2], &mut s);
        assert_eq!(s, vec![100, 0, 100]);
    }
}
