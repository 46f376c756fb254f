//! NodeName: a pod with `spec.nodeName` only fits that node (upstream `nodename`).

use crate::cycle_state::CycleState;
use crate::framework::{FilterPlugin, Plugin};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};

/// The plugin.
#[derive(Debug, Default)]
pub struct NodeName;

impl NodeName {
    /// Registry name.
    pub const NAME: &'static str = "NodeName";
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> Status {
        match &pod.node_name {
            Some(n) if *n != node.name => Status::fixed(
                Code::UnschedulableAndUnresolvable,
                &[Reason::NodeNameMismatch],
            ),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn table() {
        // Cases from upstream node_name_test.go.
        let cases = [
            (json!({}), Code::Success),
            (json!({"nodeName": "foo"}), Code::Success),
            (
                json!({"nodeName": "bar"}),
                Code::UnschedulableAndUnresolvable,
            ),
        ];
        for (p, want) in cases {
            let got = NodeName.filter(
                &CycleState::default(),
                &pod(p),
                &node("foo", json!({}), json!({})),
                &Snapshot::new(),
            );
            assert_eq!(got.code, want);
        }
    }
}
