//! NodeAffinity: `spec.nodeSelector`, required node affinity (filter), preferred node affinity
//! (score), and the profile's `addedAffinity` (upstream `nodeaffinity`).

use crate::cycle_state::CycleState;
use crate::framework::{
    FilterPlugin, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin, ScorePlugin,
    MAX_NODE_SCORE,
};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};
use k8s_openapi::api::core::v1::NodeAffinity as WireNodeAffinity;
use orch_types::labels::SelectorError;
use orch_types::node_selector::{CompiledNodeSelector, CompiledTerm};
use std::collections::BTreeSet;

/// The plugin, with the profile's enforced affinity.
#[derive(Debug, Default)]
pub struct NodeAffinity {
    added_required: Option<CompiledNodeSelector>,
    added_preferred: Vec<(i64, CompiledTerm)>,
}

impl NodeAffinity {
    /// Registry name.
    pub const NAME: &'static str = "NodeAffinity";

    /// With `NodeAffinityArgs.addedAffinity`.
    pub fn new(added: Option<&WireNodeAffinity>) -> Result<Self, SelectorError> {
        let Some(a) = added else {
            return Ok(Self::default());
        };
        Ok(Self {
            added_required: a
                .required_during_scheduling_ignored_during_execution
                .as_ref()
                .map(CompiledNodeSelector::new)
                .transpose()?,
            added_preferred: a
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
                .map(|p| Ok((i64::from(p.weight), CompiledTerm::new(&p.preference)?)))
                .collect::<Result<_, SelectorError>>()?,
        })
    }
}

/// True when the pod's nodeSelector and required node affinity match the node.
pub fn required_matches(pod: &PodInfo, node: &NodeInfo) -> bool {
    pod.node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
        && pod
            .required_node_affinity
            .as_ref()
            .is_none_or(|m| m.matches(&node.labels, &node.name))
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

impl PreFilterPlugin for NodeAffinity {
    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &Snapshot) -> PreFilterResult {
        let Some(req) = &pod.required_node_affinity else {
            if self.added_required.is_none() && pod.node_selector.is_empty() {
                return Status::skip().into();
            }
            return Status::success().into();
        };
        // Terms restricting metadata.name narrow the nodes to check (upstream PreFilterResult).
        let mut names: BTreeSet<String> = BTreeSet::new();
        for t in &req.terms {
            match t.name_restriction() {
                Some(ns) => names.extend(ns.into_iter().map(str::to_string)),
                None => return Status::success().into(),
            }
        }
        if req.terms.is_empty() {
            return Status::success().into();
        }
        PreFilterResult {
            status: Status::success(),
            node_names: Some(names),
        }
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> Status {
        if let Some(m) = &self.added_required {
            if !m.matches(&node.labels, &node.name) {
                return Status::fixed(
                    Code::UnschedulableAndUnresolvable,
                    &[Reason::EnforcedNodeAffinityMismatch],
                );
            }
        }
        if required_matches(pod, node) {
            Status::success()
        } else {
            Status::fixed(
                Code::UnschedulableAndUnresolvable,
                &[Reason::NodeAffinityMismatch],
            )
        }
    }
}

impl PreScorePlugin for NodeAffinity {
    fn pre_score(&self, _: &mut CycleState, pod: &PodInfo, _: &[usize], _: &Snapshot) -> Status {
        if pod.preferred_node_affinity.is_empty() && self.added_preferred.is_empty() {
            Status::skip()
        } else {
            Status::success()
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        self.added_preferred
            .iter()
            .chain(pod.preferred_node_affinity.iter())
            .filter(|(w, t)| *w != 0 && t.matches(&node.labels, &node.name))
            .map(|(w, _)| *w)
            .sum()
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, _: &[usize], scores: &mut [i64]) {
        super::taint_toleration::default_normalize(MAX_NODE_SCORE, false, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod};
    use serde_json::json;

    fn req(terms: serde_json::Value) -> serde_json::Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    #[test]
    fn filter_table() {
        // Cases from upstream node_affinity_test.go TestNodeAffinity.
        let cases = [
            (json!({}), json!({"foo": "bar"}), true),
            (
                json!({"nodeSelector": {"foo": "bar"}}),
                json!({"baz": "blah"}),
                false,
            ),
            (
                json!({"nodeSelector": {"foo": "bar"}}),
                json!({"foo": "bar"}),
                true,
            ),
            (
                req(
                    json!([{"matchExpressions": [{"key": "foo", "operator": "In", "values": ["bar", "value2"]}]}]),
                ),
                json!({"foo": "bar"}),
                true,
            ),
            (
                req(
                    json!([{"matchExpressions": [{"key": "kernel-version", "operator": "Gt", "values": ["0204"]}]}]),
                ),
                json!({"kernel-version": "0206"}),
                true,
            ),
            (
                req(
                    json!([{"matchExpressions": [{"key": "mem-type", "operator": "NotIn", "values": ["DDR", "DDR2"]}]}]),
                ),
                json!({"mem-type": "DDR3"}),
                true,
            ),
            (
                req(json!([{"matchExpressions": [{"key": "GPU", "operator": "Exists"}]}])),
                json!({"GPU": "NVIDIA-GRID-K1"}),
                true,
            ),
            (
                req(
                    json!([{"matchExpressions": [{"key": "foo", "operator": "In", "values": ["value1", "value2"]}]}]),
                ),
                json!({"foo": "bar"}),
                false,
            ),
            (req(json!([])), json!({"foo": "bar"}), false),
            (
                req(json!([{"matchExpressions": []}])),
                json!({"foo": "bar"}),
                false,
            ),
            (
                req(
                    json!([{"matchExpressions": [{"key": "foo", "operator": "In", "values": ["bar"]}]},
                         {"matchExpressions": [{"key": "diffkey", "operator": "In", "values": ["wrong"]}]}]),
                ),
                json!({"foo": "bar"}),
                true,
            ),
            (
                json!({"nodeSelector": {"foo": "bar"},
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "foo", "operator": "Exists"}]}]}}}}),
                json!({"foo": "barrrrrr"}),
                false,
            ),
            (
                req(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node1"]}]}]),
                ),
                json!({}),
                true,
            ),
            (
                req(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node2"]}]}]),
                ),
                json!({}),
                false,
            ),
        ];
        let pl = NodeAffinity::default();
        for (i, (p, labels, ok)) in cases.into_iter().enumerate() {
            let got = pl.filter(
                &CycleState::default(),
                &pod(p),
                &node("node1", labels, json!({})),
                &Snapshot::new(),
            );
            assert_eq!(got.is_success(), ok, "case {i}: {got:?}");
            if !ok {
                assert_eq!(
                    got.message(),
                    "node(s) didn't match Pod's node affinity/selector"
                );
                assert_eq!(got.code, Code::UnschedulableAndUnresolvable);
            }
        }
    }

    #[test]
    fn prefilter_skip_and_node_names() {
        let pl = NodeAffinity::default();
        let mut st = CycleState::default();
        assert!(pl
            .pre_filter(&mut st, &pod(json!({})), &Snapshot::new())
            .status
            .is_skip());
        // Terms are ORed: the union of their metadata.name restrictions.
        let r = pl.pre_filter(
            &mut st,
            &pod(req(json!([
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]))),
            &Snapshot::new(),
        );
        assert_eq!(r.node_names.unwrap().len(), 2);
        // A field requirement needs exactly one value (upstream nodeaffinity), so the pod is
        // rejected when it is prepared.
        let two: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"}, "spec": {"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a", "b"]}]}]}}}}}))
        .unwrap();
        assert!(PodInfo::new(two).is_err());
    }

    #[test]
    fn added_affinity_is_enforced() {
        let added: WireNodeAffinity = serde_json::from_value(
            json!({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["foo"]}]}]}}),
        )
        .unwrap();
        let pl = NodeAffinity::new(Some(&added)).unwrap();
        let got = pl.filter(
            &CycleState::default(),
            &pod(json!({})),
            &node("n", json!({"zone": "bar"}), json!({})),
            &Snapshot::new(),
        );
        assert_eq!(got.reasons, vec![Reason::EnforcedNodeAffinityMismatch]);
    }

    #[test]
    fn score_table() {
        // TestNodeAffinityPriority: weights of matching preferred terms, normalized to 100.
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 2, "preference": {"matchExpressions": [{"key": "foo", "operator": "In", "values": ["bar"]}]}},
            {"weight": 4, "preference": {"matchExpressions": [{"key": "key", "operator": "In", "values": ["value"]}]}},
            {"weight": 5, "preference": {"matchExpressions": [
                {"key": "foo", "operator": "In", "values": ["bar"]},
                {"key": "key", "operator": "In", "values": ["value"]},
                {"key": "az", "operator": "In", "values": ["az1"]}]}}]}}}),
        );
        let nodes = [
            node("1", json!({"foo": "bar"}), json!({})),
            node("2", json!({"key": "value"}), json!({})),
            node(
                "3",
                json!({"foo": "bar", "key": "value", "az": "az1"}),
                json!({}),
            ),
        ];
        let pl = NodeAffinity::default();
        let st = CycleState::default();
        let mut s: Vec<i64> = nodes
            .iter()
            .map(|n| pl.score(&st, &p, n, &Snapshot::new()))
            .collect();
        assert_eq!(s, vec![2, 4, 11]);
        pl.normalize(&st, &p, &[0, 1, 2], &mut s);
        assert_eq!(s, vec![18, 36, 100]);
    }
}
