//! The split deployment: `orch apiserver`, `orch scheduler`, `orch controller-manager` and two
//! `orch kubelet` processes talking HTTP, driven through the Deployment journey with kubectl.
//!
//! Slow (real processes): `#[ignore]`d by default; CI runs it with `ORCH_SLOW=1`
//! (`cargo test -- --include-ignored`).

mod common;

use common::{Split, TestEnv};
use std::time::Duration;

#[test]
#[ignore = "slow end-to-end test (real processes); run with ORCH_SLOW=1 or --include-ignored"]
fn slow_split_components_deployment_journey() {
    let env = TestEnv::new();
    let mut split = Split::apiserver(&env);
    split.component(&env, "scheduler", "scheduler", &[]);
    split.component(&env, "controller-manager", "controller-manager", &[]);
    split.kubelet(&env, "node-a");
    split.kubelet(&env, "node-b");
    let nodes = env.wait_nodes_ready(2, Duration::from_secs(90));
    assert_eq!(
        common::journey::names(&nodes),
        ["node-a", "node-b"].map(String::from).into()
    );
    common::journey::deployment_journey(&env);
    for p in &mut split.procs {
        p.assert_running();
    }
}
