//! The kubelet driver in-process on the sim runtime (fast): registration, Lease heartbeat, pod
//! sync to Running/Ready, a failing sim container with restartPolicy Never, admission
//! rejection, graceful deletion ending with the kubelet deleting the object.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use orch::cluster::{Cluster, Runtime};
use orch_types::client::{Api, DeleteParams};
use std::time::{Duration, Instant};

async fn wait<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pod(name: &str, extra: serde_json::Value) -> Pod {
    let mut v = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx:1.27"}]}
    });
    json_merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn json_merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                json_merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn cond(p: &Pod, t: &str) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_registers_heartbeats_and_runs_sim_pods() {
    let cluster = Cluster::builder()
        .runtime(Runtime::Sim)
        .nodes(1)
        .start()
        .await
        .expect("cluster");
    let client = cluster.client();

    let nodes: Api<Node> = Api::all(client.clone());
    let node = wait("node", async || {
        nodes.get_opt("node-1").await.ok().flatten()
    })
    .await;
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["kubernetes.io/hostname"], "node-1");
    let status = node.status.unwrap();
    assert!(status.capacity.unwrap().contains_key("pods"));
    assert!(status
        .node_info
        .unwrap()
        .container_runtime_version
        .starts_with("sim://"));
    assert!(
        status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port
            > 0
    );

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = wait("lease", async || {
        leases.get_opt("node-1").await.ok().flatten()
    })
    .await;
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("node-1"));
    assert_eq!(spec.lease_duration_seconds, Some(40));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&pod(
        "web",
        serde_json::json!({"spec": {"initContainers": [{"name": "init", "image": "busybox:1.36"}]}}),
    ))
    .await
    .unwrap();
    let p = wait("web Running and Ready", async || {
        let p = pods.get("web").await.ok()?;
        (cond(&p, "Ready").as_deref() == Some("True")).then_some(p)
    })
    .await;
    let st = p.status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert!(st.pod_ip.is_some() && st.start_time.is_some());
    assert_eq!(
        st.init_container_statuses.unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("Completed")
    );

    pods.create(&pod(
        "fails",
        serde_json::json!({
            "metadata": {"annotations": {"sim.orch.dev/run-seconds": "0.2", "sim.orch.dev/exit-code": "3"}},
            "spec": {"restartPolicy": "Never"}
        }),
    ))
    .await
    .unwrap();
    let p = wait("fails Failed", async || {
        let p = pods.get("fails").await.ok()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Failed")).then_some(p)
    })
    .await;
    let term = p.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((term.exit_code, term.reason.as_deref()), (3, Some("Error")));

    pods.create(&pod(
        "huge",
        serde_json::json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.27",
            "resources": {"requests": {"cpu": "100000"}}}]}}),
    ))
    .await
    .unwrap();
    let p = wait("huge rejected", async || {
        let p = pods.get("huge").await.ok()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Failed")).then_some(p)
    })
    .await;
    assert_eq!(p.status.unwrap().reason.as_deref(), Some("OutOfcpu"));

    // A pod created before its ConfigMap waits with CreateContainerConfigError, then starts.
    pods.create(&pod(
        "needs-cm",
        serde_json::json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.27",
            "env": [{"name": "COLOUR", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "colour"}}}]}]}}),
    ))
    .await
    .unwrap();
    wait("CreateContainerConfigError", async || {
        let p = pods.get("needs-cm").await.ok()?;
        let w = p
            .status?
            .container_statuses?
            .first()?
            .state
            .clone()?
            .waiting?;
        (w.reason.as_deref() == Some("CreateContainerConfigError")).then_some(())
    })
    .await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    cms.create(
        &serde_json::from_value(
            serde_json::json!({"metadata": {"name": "late"}, "data": {"colour": "blue"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    wait("needs-cm Running", async || {
        let p = pods.get("needs-cm").await.ok()?;
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;

    pods.delete("web", &DeleteParams::default()).await.unwrap();
    wait("web deleted by the kubelet", async || {
        pods.get_opt("web")
            .await
            .ok()
            .and_then(|p| p.is_none().then_some(()))
    })
    .await;

    cluster.shutdown().await.expect("shutdown");
}
