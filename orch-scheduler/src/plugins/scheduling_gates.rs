//! SchedulingGates: keeps pods with `spec.schedulingGates` out of the active queue
//! (upstream `schedulinggates`).

use crate::framework::{Plugin, PreEnqueuePlugin};
use crate::pod_info::PodInfo;
use crate::status::{Code, Reason, Status};

/// The plugin.
#[derive(Debug, Default)]
pub struct SchedulingGates;

impl SchedulingGates {
    /// Registry name.
    pub const NAME: &'static str = "SchedulingGates";
}

impl Plugin for SchedulingGates {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

impl PreEnqueuePlugin for SchedulingGates {
    fn pre_enqueue(&self, pod: &PodInfo) -> Status {
        if pod.scheduling_gates.is_empty() {
            Status::success()
        } else {
            Status::new(
                Code::Pending,
                Reason::SchedulingGated {
                    gates: pod.scheduling_gates.clone(),
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::pod;
    use serde_json::json;

    #[test]
    fn gated_pods_are_pending() {
        assert!(SchedulingGates.pre_enqueue(&pod(json!({}))).is_success());
        let s = SchedulingGates.pre_enqueue(&pod(
            json!({"schedulingGates": [{"name": "foo"}, {"name": "bar"}]}),
        ));
        assert_eq!(s.code, Code::Pending);
        assert_eq!(s.message(), "waiting for scheduling gates: [foo bar]");
    }
}
