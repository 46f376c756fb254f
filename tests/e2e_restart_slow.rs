//! Restart durability of `orch up` on the embedded store: stop (Ctrl-C) and start again on the
//! same data dir — every object is back with the same UID and resourceVersions continue upward;
//! after a crash (SIGKILL) the kubelet re-attaches to the containers it left running.
//!
//! Slow (real processes): `#[ignore]`d by default; CI runs it with `ORCH_SLOW=1`
//! (`cargo test -- --include-ignored`).

mod common;

use common::journey::{example, uids, wait_ready_pods, T};
use common::{free_port, wait_for, TestEnv, Up};
use serde_json::Value;
use std::collections::BTreeMap;

const CONFIGMAP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  colour: blue
"#;

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("numeric resourceVersion in {:#}", v["metadata"]))
}

/// kind/name → uid of everything the test created (and what controllers made from it).
fn inventory(env: &TestEnv) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for kind in ["configmaps", "deployments", "replicasets", "pods", "nodes"] {
        for o in env.get_items(&[kind]).expect("list") {
            if o["metadata"]["name"] == "kube-root-ca.crt" {
                continue;
            }
            m.insert(
                format!("{kind}/{}", o["metadata"]["name"].as_str().unwrap_or("?")),
                o["metadata"]["uid"].as_str().unwrap_or("?").to_string(),
            );
        }
    }
    m
}

/// pod name → (containerID, restartCount) of the first container.
fn containers(env: &TestEnv) -> BTreeMap<String, (String, i64)> {
    env.get_items(&["pods", "-l", "app=app"])
        .expect("pods")
        .iter()
        .map(|p| {
            let cs = &p["status"]["containerStatuses"][0];
            (
                p["metadata"]["name"].as_str().unwrap_or("?").to_string(),
                (
                    cs["containerID"].as_str().unwrap_or("").to_string(),
                    cs["restartCount"].as_i64().unwrap_or(-1),
                ),
            )
        })
        .collect()
}

#[test]
#[ignore = "slow end-to-end test (real processes); run with ORCH_SLOW=1 or --include-ignored"]
fn slow_restart_keeps_objects_and_reattaches() {
    let env = TestEnv::new();
    let port = free_port();
    let mut up = Up::start_on(&env, port, 1, "process", &[]);
    env.apply(CONFIGMAP);
    env.kubectl(&["apply", "-f", &example("tour/deployment.yaml")]);
    let pods = wait_ready_pods(&env, "app=app", 3);
    let before = inventory(&env);
    assert!(
        before.keys().any(|k| k.starts_with("replicasets/app-")),
        "{before:#?}"
    );
    // `kubectl get -o json` wraps lists client-side (empty resourceVersion): ask the API.
    let raw = env.kubectl(&["get", "--raw", "/api/v1/namespaces/default/configmaps"]);
    let list_rv = rv(&serde_json::from_str(&raw).expect("list JSON"));

    // Ctrl-C: a clean stop.
    let code = up.proc.interrupt(T);
    assert_eq!(
        code,
        Some(0),
        "orch up exit code; log:\n{}",
        up.proc.log_tail(40)
    );
    drop(up);

    let up = Up::start_on(&env, port, 1, "process", &[]);
    let pods_again = wait_ready_pods(&env, "app=app", 3);
    assert_eq!(uids(&pods_again), uids(&pods), "the same pods come back");
    let after = inventory(&env);
    assert_eq!(after, before, "same objects, same UIDs");
    let cm = env.get_json(&["configmap", "settings"]).expect("configmap");
    assert_eq!(cm["data"]["colour"], "blue");

    // resourceVersions continue upward.
    env.apply(&CONFIGMAP.replace("settings", "more"));
    let more = env.get_json(&["configmap", "more"]).expect("new configmap");
    assert!(rv(&more) > list_rv, "{} <= {list_rv}", rv(&more));

    // A crash: the kubelet re-attaches to the containers it left running.
    let running = containers(&env);
    assert!(
        running.values().all(|(id, _)| !id.is_empty()),
        "{running:?}"
    );
    let mut up = up;
    up.proc.kill9();
    drop(up);
    let _up = Up::start_on(&env, port, 1, "process", &[]);
    wait_ready_pods(&env, "app=app", 3);
    let reattached = wait_for("container statuses after restart", T, || {
        let c = containers(&env);
        if c.values().all(|(id, _)| !id.is_empty()) {
            Ok(c)
        } else {
            Err(format!("{c:?}"))
        }
    });
    assert_eq!(reattached, running, "same containers, no restart");
    assert_eq!(inventory(&env).len(), before.len() + 1);
}
