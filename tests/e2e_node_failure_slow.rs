//! Node failure: a control plane (`orch up --nodes 0` with a short node-monitor grace period)
//! and three `orch kubelet` processes. Killing one kubelet makes its node Unknown, adds the
//! unreachable taints, evicts its pods after their (short) tolerationSeconds, and the
//! Deployment's replacements run on the other nodes; restarting the kubelet makes the node Ready
//! again and finishes the evicted pods.
//!
//! Slow (real processes, real grace periods): `#[ignore]`d by default; CI runs it with
//! `ORCH_SLOW=1` (`cargo test -- --include-ignored`).

mod common;

use common::journey::{live, T};
use common::{condition, pod_ready, summarize, wait_for, OrchProcess, TestEnv, Up};
use serde_json::Value;
use std::collections::BTreeMap;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: survivor
spec:
  replicas: 3
  selector:
    matchLabels:
      app: survivor
  template:
    metadata:
      labels:
        app: survivor
    spec:
      terminationGracePeriodSeconds: 2
      tolerations:
        - key: node.kubernetes.io/unreachable
          operator: Exists
          effect: NoExecute
          tolerationSeconds: 3
        - key: node.kubernetes.io/not-ready
          operator: Exists
          effect: NoExecute
          tolerationSeconds: 3
      containers:
        - name: app
          image: busybox:1.36
          command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#;

fn kubelet(env: &TestEnv, node: &str) -> OrchProcess {
    let kc = env.kubeconfig.to_str().expect("utf-8 path").to_string();
    let root = env.path().join(node);
    OrchProcess::spawn(
        &format!("kubelet-{node}"),
        env.path(),
        &[
            "kubelet",
            "--kubeconfig",
            &kc,
            "--node-name",
            node,
            "--runtime",
            "process",
            "--root-dir",
            root.to_str().expect("utf-8 path"),
            "--port",
            "0",
        ],
    )
}

fn taints(node: &Value) -> Vec<(String, String)> {
    node["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap_or_default().to_string(),
                        t["effect"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "slow end-to-end test (real processes); run with ORCH_SLOW=1 or --include-ignored"]
fn slow_node_failure_evicts_and_recovers() {
    let env = TestEnv::new();
    // The grace period must exceed the kubelet's 10 s Lease renewal (upstream: 40-50 s), or
    // healthy nodes flap to Unknown between two heartbeats.
    let _up = Up::start(&env, 0, "process", &["--node-monitor-grace-period", "20s"]);
    let mut kubelets: BTreeMap<String, OrchProcess> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| (n.to_string(), kubelet(&env, n)))
        .collect();
    env.wait_nodes_ready(3, T);

    env.apply(DEPLOYMENT);
    let pods = common::journey::wait_ready_pods(&env, "app=survivor", 3);
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &pods {
        *per_node
            .entry(p["spec"]["nodeName"].as_str().unwrap_or_default().into())
            .or_default() += 1;
    }
    let (victim, _) = per_node
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(k, v)| (k.clone(), *v))
        .expect("a node with pods");
    let victim_pods: Vec<String> = pods
        .iter()
        .filter(|p| p["spec"]["nodeName"] == victim.as_str())
        .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
        .collect();

    // The kubelet dies (no graceful shutdown: the heartbeats just stop).
    kubelets.get_mut(&victim).expect("victim").kill9();

    let node = wait_for("node Ready=Unknown with unreachable taints", T, || {
        let n = env.get_json(&["node", &victim])?;
        let t = taints(&n);
        let unreachable = |e: &str| {
            t.iter()
                .any(|(k, eff)| k == "node.kubernetes.io/unreachable" && eff == e)
        };
        if condition(&n, "Ready") == Some("Unknown")
            && unreachable("NoSchedule")
            && unreachable("NoExecute")
        {
            Ok(n)
        } else {
            Err(format!("{:#} taints {t:?}", n["status"]["conditions"]))
        }
    });
    let row = env.kubectl(&["get", "node", &victim, "--no-headers"]);
    assert!(row.contains("NotReady"), "{row}");
    assert!(node["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .filter(|c| c["type"] != "Ready")
        .all(|c| c["status"] == "Unknown"));

    // Its pods are evicted (marked for deletion) and replaced on the surviving nodes.
    wait_for("victim pods evicted", T, || {
        let pods = env.get_items(&["pods", "-l", "app=survivor"])?;
        let evicted = pods
            .iter()
            .filter(|p| {
                victim_pods
                    .iter()
                    .any(|v| p["metadata"]["name"] == v.as_str())
                    && !live(p)
            })
            .count();
        let gone = victim_pods
            .iter()
            .filter(|v| !pods.iter().any(|p| p["metadata"]["name"] == v.as_str()))
            .count();
        if evicted + gone == victim_pods.len() {
            Ok(())
        } else {
            Err(summarize(&pods))
        }
    });
    wait_for("3 ready replicas on surviving nodes", T, || {
        let all = env.get_items(&["pods", "-l", "app=survivor"])?;
        let pods: Vec<&Value> = all.iter().filter(|p| live(p) && pod_ready(p)).collect();
        if pods.len() == 3
            && pods
                .iter()
                .all(|p| p["spec"]["nodeName"] != victim.as_str())
        {
            Ok(())
        } else {
            Err(format!(
                "{}\n{}",
                summarize(&all),
                env.kubectl_try(&["get", "pods", "-o", "wide"])
                    .unwrap_or_else(|e| e)
            ))
        }
    });

    // The kubelet comes back: Ready again, taints gone, the evicted pods finished.
    kubelets.insert(victim.clone(), kubelet(&env, &victim));
    wait_for("node Ready again without unreachable taints", T, || {
        let n = env.get_json(&["node", &victim])?;
        let t = taints(&n);
        if condition(&n, "Ready") == Some("True")
            && !t
                .iter()
                .any(|(k, _)| k.starts_with("node.kubernetes.io/unreachable"))
        {
            Ok(())
        } else {
            Err(format!("{:#} taints {t:?}", n["status"]["conditions"]))
        }
    });
    wait_for("evicted pods deleted", T, || {
        let pods = env.get_items(&["pods", "-l", "app=survivor"])?;
        if pods.len() == 3 && pods.iter().all(live) {
            Ok(())
        } else {
            Err(summarize(&pods))
        }
    });
    for k in kubelets.values_mut() {
        k.assert_running();
    }
}
