//! TaintToleration: filters on NoSchedule/NoExecute taints, scores by the number of untolerated
//! PreferNoSchedule taints (fewer is better) (upstream `tainttoleration`). Whether a toleration
//! tolerates a taint is [`orch_types::taints::tolerates`], shared with taint eviction.

use crate::cycle_state::CycleState;
use crate::framework::{FilterPlugin, Plugin, PreScorePlugin, ScorePlugin, MAX_NODE_SCORE};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};
use k8s_openapi::api::core::v1::Toleration;
use orch_types::taints::tolerations_tolerate;

/// The plugin.
#[derive(Debug, Default)]
pub struct TaintToleration;

impl TaintToleration {
    /// Registry name.
    pub const NAME: &'static str = "TaintToleration";
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> Status {
        let untolerated = node.taints.iter().find(|taint| {
            (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
                && !tolerations_tolerate(&pod.tolerations, taint)
        });
        match untolerated {
            None => Status::success(),
            Some(t) => Status::new(
                Code::UnschedulableAndUnresolvable,
                Reason::UntoleratedTaint {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: t.effect.clone(),
                },
            ),
        }
    }
}

struct PreferTolerations(Vec<Toleration>);

impl PreScorePlugin for TaintToleration {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[usize],
        _: &Snapshot,
    ) -> Status {
        let t = pod
            .tolerations
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .cloned()
            .collect();
        state.write(PreferTolerations(t));
        Status::success()
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        let tols = state
            .read::<PreferTolerations>()
            .map_or(&[][..], |t| &t.0[..]);
        node.taints
            .iter()
            .filter(|taint| {
                taint.effect == "PreferNoSchedule" && !tolerations_tolerate(tols, taint)
            })
            .count() as i64
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, _: &[usize], scores: &mut [i64]) {
        default_normalize(MAX_NODE_SCORE, true, scores);
    }
}

/// Upstream `helper.DefaultNormalizeScore`: scale to `max`, optionally reversed.
pub fn default_normalize(max: i64, reverse: bool, scores: &mut [i64]) {
    let max_count = scores.iter().copied().max().unwrap_or(0).max(0);
    if max_count == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = max);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = max * *s / max_count;
        *s = if reverse { max - v } else { v };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn filter_table() {
        // Cases from upstream taint_toleration_test.go TestTaintTolerationFilter.
        let dedicated =
            json!({"taints": [{"key": "dedicated", "value": "user1", "effect": "NoSchedule"}]});
        let cases = [
            (
                json!({}),
                dedicated.clone(),
                Some("node(s) had untolerated taint {dedicated: user1}"),
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "value": "user1", "effect": "NoSchedule"}]}),
                dedicated.clone(),
                None,
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "user2", "effect": "NoSchedule"}]}),
                dedicated.clone(),
                Some("node(s) had untolerated taint {dedicated: user1}"),
            ),
            (
                json!({"tolerations": [{"key": "foo", "operator": "Exists", "effect": "NoSchedule"}]}),
                json!({"taints": [{"key": "foo", "value": "bar", "effect": "NoSchedule"}]}),
                None,
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "user2", "effect": "NoSchedule"},
                                    {"key": "foo", "operator": "Exists", "effect": "NoSchedule"}]}),
                json!({"taints": [{"key": "dedicated", "value": "user2", "effect": "NoSchedule"}, {"key": "foo", "value": "bar", "effect": "NoSchedule"}]}),
                None,
            ),
            (
                json!({"tolerations": [{"key": "foo", "operator": "Equal", "value": "bar", "effect": "PreferNoSchedule"}]}),
                json!({"taints": [{"key": "foo", "value": "bar", "effect": "NoSchedule"}]}),
                Some("node(s) had untolerated taint {foo: bar}"),
            ),
            (
                json!({"tolerations": [{"key": "foo", "operator": "Equal", "value": "bar"}]}),
                json!({"taints": [{"key": "foo", "value": "bar", "effect": "NoSchedule"}]}),
                None,
            ),
            (
                json!({}),
                json!({"taints": [{"key": "dedicated", "value": "user1", "effect": "PreferNoSchedule"}]}),
                None,
            ),
            (
                json!({"tolerations": [{"operator": "Exists"}]}),
                dedicated,
                None,
            ),
        ];
        for (i, (p, n, want)) in cases.into_iter().enumerate() {
            let got = TaintToleration.filter(
                &CycleState::default(),
                &pod(p),
                &node("n", json!({}), n),
                &Snapshot::new(),
            );
            match want {
                None => assert!(got.is_success(), "case {i}: {got:?}"),
                Some(msg) => {
                    assert_eq!(got.code, Code::UnschedulableAndUnresolvable, "case {i}");
                    assert_eq!(got.message(), msg, "case {i}");
                }
            }
        }
    }

    #[test]
    fn score_table() {
        // TestTaintTolerationScore: "the more intolerable PreferNoSchedule taints, the lower".
        let p = pod(
            json!({"tolerations": [{"key": "cpu-type", "operator": "Equal", "value": "arm64", "effect": "PreferNoSchedule"}]}),
        );
        let nodes = [
            node("a", json!({}), json!({})),
            node(
                "b",
                json!({}),
                json!({"taints": [{"key": "cpu-type", "value": "arm64", "effect": "PreferNoSchedule"}]}),
            ),
            node(
                "c",
                json!({}),
                json!({"taints": [{"key": "cpu-type", "value": "x86", "effect": "PreferNoSchedule"},
                                                   {"key": "disk", "value": "hdd", "effect": "PreferNoSchedule"}]}),
            ),
        ];
        let mut st = CycleState::default();
        TaintToleration.pre_score(&mut st, &p, &[], &Snapshot::new());
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| TaintToleration.score(&st, &p, n, &Snapshot::new()))
            .collect();
        TaintToleration.normalize(&st, &p, &[0, 1, 2], &mut scores);
        assert_eq!(scores, vec![100, 100, 0]);
    }
}
