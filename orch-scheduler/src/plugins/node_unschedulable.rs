//! NodeUnschedulable: rejects cordoned nodes unless the pod tolerates the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint (upstream `nodeunschedulable`).

use crate::cycle_state::CycleState;
use crate::framework::{FilterPlugin, Plugin};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};
use k8s_openapi::api::core::v1::Taint;

/// The plugin.
#[derive(Debug, Default)]
pub struct NodeUnschedulable;

impl NodeUnschedulable {
    /// Registry name.
    pub const NAME: &'static str = "NodeUnschedulable";
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> Status {
        if !node.unschedulable {
            return Status::success();
        }
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if orch_types::taints::tolerations_tolerate(&pod.tolerations, &taint) {
            return Status::success();
        }
        Status::fixed(
            Code::UnschedulableAndUnresolvable,
            &[Reason::NodeUnschedulable],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn table() {
        // Cases from upstream node_unschedulable_test.go.
        let cases = [
            (json!({}), json!({}), Code::Success),
            (
                json!({}),
                json!({"unschedulable": true}),
                Code::UnschedulableAndUnresolvable,
            ),
            (json!({}), json!({"unschedulable": false}), Code::Success),
            (
                json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable",
                                        "effect": "NoSchedule"}]}),
                json!({"unschedulable": true}),
                Code::Success,
            ),
        ];
        for (i, (p, n, want)) in cases.into_iter().enumerate() {
            let got = NodeUnschedulable.filter(
                &CycleState::default(),
                &pod(p),
                &node("n", json!({}), n),
                &Snapshot::new(),
            );
            assert_eq!(got.code, want, "case {i}");
        }
    }
}
