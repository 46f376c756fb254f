//! NodePorts: rejects nodes where a requested host port is taken (upstream `nodeports`).

use crate::cycle_state::CycleState;
use crate::framework::{FilterPlugin, Plugin, PreFilterPlugin, PreFilterResult};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};

/// The plugin.
#[derive(Debug, Default)]
pub struct NodePorts;

impl NodePorts {
    /// Registry name.
    pub const NAME: &'static str = "NodePorts";
}

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

impl PreFilterPlugin for NodePorts {
    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &Snapshot) -> PreFilterResult {
        if pod.host_ports.is_empty() {
            Status::skip().into()
        } else {
            Status::success().into()
        }
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> Status {
        let conflict = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if conflict {
            Status::fixed(Code::Unschedulable, &[Reason::HostPortConflict])
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod, pod_named};
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn ports(list: &[(&str, &str, i32)]) -> Value {
        let ps: Vec<Value> = list
            .iter()
            .map(|(proto, ip, port)| {
                json!({"containerPort": port, "hostPort": port, "protocol": proto, "hostIP": ip})
            })
            .collect();
        json!({"containers": [{"name": "c", "ports": ps}]})
    }

    #[test]
    fn table() {
        // Cases from upstream node_ports_test.go.
        type Port<'a> = (&'a str, &'a str, i32);
        let cases: Vec<(Vec<Port>, Vec<Port>, Code)> = vec![
            (
                vec![("UDP", "127.0.0.1", 8080)],
                vec![("UDP", "127.0.0.1", 9090)],
                Code::Success,
            ),
            (
                vec![("UDP", "127.0.0.1", 8080)],
                vec![("UDP", "127.0.0.1", 8080)],
                Code::Unschedulable,
            ),
            (
                vec![("TCP", "127.0.0.1", 8080)],
                vec![("TCP", "127.0.0.1", 8080)],
                Code::Unschedulable,
            ),
            (
                vec![("TCP", "127.0.0.1", 8001)],
                vec![("UDP", "127.0.0.1", 8001)],
                Code::Success,
            ),
            (
                vec![("TCP", "0.0.0.0", 8001)],
                vec![("TCP", "127.0.0.1", 8001)],
                Code::Unschedulable,
            ),
            (
                vec![("TCP", "10.0.10.10", 8001)],
                vec![("TCP", "0.0.0.0", 8001)],
                Code::Unschedulable,
            ),
            (
                vec![("TCP", "127.0.0.1", 8001)],
                vec![("TCP", "127.0.0.2", 8001)],
                Code::Success,
            ),
        ];
        for (i, (want, existing, code)) in cases.into_iter().enumerate() {
            let mut n = node("n", json!({}), json!({}));
            n.add_pod(Arc::new(pod_named("e", json!({}), ports(&existing))));
            let p = pod(ports(&want));
            let mut st = CycleState::default();
            let pre = NodePorts.pre_filter(&mut st, &p, &Snapshot::new());
            assert!(pre.status.is_success());
            assert_eq!(
                NodePorts.filter(&st, &p, &n, &Snapshot::new()).code,
                code,
                "case {i}"
            );
        }
        let mut st = CycleState::default();
        assert!(NodePorts
            .pre_filter(&mut st, &pod(json!({})), &Snapshot::new())
            .status
            .is_skip());
    }
}
