//! InterPodAffinity: required pod affinity / anti-affinity and existing pods' anti-affinity as
//! a filter, preferred terms (both ways) as a score (upstream `interpodaffinity`).
//!
//! Upstream walks the existing pods in every cycle to count, per topology pair, the pods
//! matching the incoming pod's terms and the existing pods' terms matching the incoming pod.
//! Here those counts come from a [`PodIndex`]: per-node counts of the pods matching the
//! incoming pod's terms, and the existing pods' terms grouped by identical term, summed per
//! topology domain once per cycle. The counts, and so the decisions, are the same.

use crate::cycle_state::CycleState;
use crate::framework::{
    FilterPlugin, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin, ScorePlugin,
    MAX_NODE_SCORE,
};
use crate::node_info::NodeInfo;
use crate::pod_index::{Domains, PodFilter, PodIndex, TermKind, MISSING};
use crate::pod_info::{AffinityTerm, PodInfo};
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    index: Mutex<PodIndex>,
}

impl InterPodAffinity {
    /// Registry name.
    pub const NAME: &'static str = "InterPodAffinity";

    /// With args.
    pub fn new(args: InterPodAffinityArgs) -> Self {
        Self {
            args,
            index: Mutex::default(),
        }
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

/// Matching pods per domain of one topology key (upstream's `topologyToMatchedTermCount`
/// restricted to one key).
#[derive(Debug)]
struct KeyCounts {
    domains: Domains,
    totals: Vec<i64>,
}

impl KeyCounts {
    /// `None` when the node lacks the key.
    #[inline]
    fn at(&self, node: &NodeInfo, snap: &Snapshot) -> Option<i64> {
        let d = self.domains.of(node, snap)?;
        Some(self.totals.get(d).copied().unwrap_or(0))
    }

    fn any(&self) -> bool {
        self.totals.iter().any(|v| *v != 0)
    }
}

/// Per-node counts summed over the domains of `key`.
fn key_counts(index: &mut PodIndex, snap: &Snapshot, key: &str, per_node: usize) -> KeyCounts {
    let domains = index.domains(snap, key).clone();
    let totals = domains.totals(index.per_node(per_node));
    KeyCounts { domains, totals }
}

struct FilterState {
    /// Existing pods' anti-affinity terms matching the pod, per group.
    existing_anti: Vec<KeyCounts>,
    /// Per required affinity term of the pod: pods matching all of them.
    affinity: Vec<KeyCounts>,
    /// Per required anti-affinity term of the pod: pods matching it.
    anti: Vec<KeyCounts>,
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
        let mut index = self.index.lock();
        index.trim();
        let mut existing_anti = Vec::new();
        if snap.pods_with_required_anti_affinity() > 0 {
            let matched: Vec<usize> = index
                .term_groups(snap)
                .iter()
                .enumerate()
                .filter(|(_, g)| {
                    g.kind == TermKind::RequiredAntiAffinity
                        && g.total > 0
                        && g.term.matches_in(pod, snap)
                })
                .map(|(i, _)| i)
                .collect();
            for gi in matched {
                let Some(key) = index.group(gi).map(|g| g.term.topology_key.clone()) else {
                    continue;
                };
                let domains = index.domains(snap, &key).clone();
                let totals = index
                    .group(gi)
                    .map_or_else(Vec::new, |g| domains.totals(&g.per_node));
                existing_anti.push(KeyCounts { domains, totals });
            }
        }
        let mut affinity = Vec::new();
        if !pod.required_affinity.is_empty() {
            let c = index.counts(snap, &PodFilter::AllTerms(pod.required_affinity.clone()));
            for t in &pod.required_affinity {
                affinity.push(key_counts(&mut index, snap, &t.topology_key, c));
            }
        }
        let mut anti = Vec::new();
        for t in &pod.required_anti_affinity {
            let c = index.counts(snap, &PodFilter::AllTerms(vec![t.clone()]));
            anti.push(key_counts(&mut index, snap, &t.topology_key, c));
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
        for k in &s.affinity {
            match k.at(node, snap) {
                Some(c) => {
                    if c <= 0 {
                        pods_exist = false;
                    }
                }
                None => {
                    return Status::fixed(
                        Code::UnschedulableAndUnresolvable,
                        &[Reason::PodAffinityRulesNotMatch],
                    )
                }
            }
        }
        if !pods_exist {
            // The first pod of a group with affinity to itself may go anywhere with the keys.
            let own = snap.namespace_labels(&pod.namespace);
            let none_matched = !s.affinity.iter().any(KeyCounts::any);
            if !(none_matched && matches_all(&pod.required_affinity, pod, own)) {
                return Status::fixed(
                    Code::UnschedulableAndUnresolvable,
                    &[Reason::PodAffinityRulesNotMatch],
                );
            }
        }
        // satisfyPodAntiAffinity
        if s.anti
            .iter()
            .any(|k| k.at(node, snap).is_some_and(|c| c > 0))
        {
            return Status::fixed(Code::Unschedulable, &[Reason::PodAntiAffinityRulesNotMatch]);
        }
        // satisfyExistingPodsAntiAffinity
        if s.existing_anti
            .iter()
            .any(|k| k.at(node, snap).is_some_and(|c| c > 0))
        {
            return Status::fixed(
                Code::Unschedulable,
                &[Reason::ExistingPodsAntiAffinityRulesNotMatch],
            );
        }
        Status::success()
    }
}

/// Per topology key, the score of every domain (upstream `scoreMap`).
struct ScoreState(Vec<KeyCounts>);

impl ScoreState {
    /// Adds `w` × the per-node counts to the domains of `domains.key`; true when any node
    /// with the key had a count (upstream then has an entry in its score map).
    fn add(&mut self, domains: &Domains, per_node: &[i64], w: i64) -> bool {
        let i = match self.0.iter().position(|k| k.domains.key == domains.key) {
            Some(i) => i,
            None => {
                self.0.push(KeyCounts {
                    domains: domains.clone(),
                    totals: vec![0; domains.names.len()],
                });
                self.0.len() - 1
            }
        };
        let k = &mut self.0[i];
        let mut touched = false;
        for (d, v) in k.domains.domain_of.iter().zip(per_node) {
            if *d != MISSING && *v != 0 {
                k.totals[*d as usize] += v * w;
                touched = true;
            }
        }
        touched
    }
}

/// Where the per-node counts of one score contribution live in the index.
enum Source {
    Counts(usize),
    Group(usize),
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
        let mut index = self.index.lock();
        index.trim();
        // Every (key, counts, weight) that upstream's processExistingPod would add.
        let mut adds: Vec<(String, Source, i64)> = Vec::new();
        for (terms, sign) in [
            (&pod.preferred_affinity, 1),
            (&pod.preferred_anti_affinity, -1),
        ] {
            for t in terms {
                let c = index.counts(snap, &PodFilter::AllTerms(vec![t.clone()]));
                adds.push((t.topology_key.clone(), Source::Counts(c), sign * t.weight));
            }
        }
        if snap.pods_with_affinity() > 0 {
            let hard = self.args.hard_pod_affinity_weight;
            for (gi, g) in index.term_groups(snap).iter().enumerate() {
                let w = match g.kind {
                    TermKind::RequiredAffinity if hard > 0 => hard,
                    TermKind::PreferredAffinity => g.term.weight,
                    TermKind::PreferredAntiAffinity => -g.term.weight,
                    _ => continue,
                };
                if g.total > 0 && g.term.matches_in(pod, snap) {
                    adds.push((g.term.topology_key.clone(), Source::Group(gi), w));
                }
            }
        }
        let mut scores = ScoreState(Vec::new());
        let mut touched = false;
        for (key, source, w) in &adds {
            let domains = index.domains(snap, key).clone();
            let per_node = match source {
                Source::Counts(c) => index.per_node(*c),
                Source::Group(g) => index.group(*g).map_or(&[][..], |g| &g.per_node),
            };
            touched |= scores.add(&domains, per_node, *w);
        }
        if !touched {
            return Status::skip();
        }
        state.write(scores);
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo, snap: &Snapshot) -> i64 {
        let Some(ScoreState(s)) = state.read::<ScoreState>() else {
            return 0;
        };
        s.iter().filter_map(|k| k.at(node, snap)).sum()
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
