//! The kubelet on the process runtime in an in-process cluster (slow: real processes).
//!
//! `slow_kubelet_pod_startup_200`: 200 pods bound to one node (`--pods 300`), measured from
//! the create call to the watch event that shows them Running; prints p50/p99 (timing is
//! reported, never asserted) and checks every pod runs exactly one container process.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use orch::cluster::Cluster;
use orch_kubelet::runtime::process::{ProcessConfig, ProcessRuntime};
use orch_kubelet::runtime::ContainerRuntime;
use orch_kubelet::{Kubelet, KubeletConfig};
use orch_types::client::{Api, ListParams, WatchEvent, WatchParams};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow (200 real processes); run with --include-ignored"]
async fn slow_kubelet_pod_startup_200() {
    const N: usize = 200;
    let cluster = Cluster::builder().nodes(0).start().await.expect("cluster");
    let client = cluster.client();
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(ProcessRuntime::open(ProcessConfig::new(dir.path())).unwrap());
    let mut cfg = KubeletConfig::new("bench-node");
    cfg.node.pods = 300;
    let kubelet = Kubelet::new(
        cfg,
        client.clone(),
        rt.clone(),
        Arc::new(orch_types::clock::SystemClock),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(kubelet.run(async move {
        let _ = stop_rx.await;
    }));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let list = pods.list(&ListParams::default()).await.unwrap();
    let mut events = pods
        .watch(&WatchParams {
            resource_version: list.metadata.resource_version.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut created = HashMap::new();
    for i in 0..N {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("p{i}")},
            "spec": {"nodeName": "bench-node", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}
        }))
        .unwrap();
        created.insert(format!("p{i}"), Instant::now());
        pods.create(&p).await.unwrap();
    }
    let mut running: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    while running.len() < N {
        let ev = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .expect("all pods Running in time")
            .expect("watch open")
            .expect("watch event");
        if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev {
            if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                running
                    .entry(p.metadata.name.unwrap_or_default())
                    .or_insert_with(Instant::now);
            }
        }
    }
    let mut lat: Vec<Duration> = running
        .iter()
        .map(|(n, t)| t.duration_since(created[n]))
        .collect();
    lat.sort();
    println!(
        "pod startup (create → Running), process runtime, 1 node, {N} pods: p50={:?} p99={:?} max={:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
    // exactly one container per pod, no duplicates
    let mut per_pod: HashMap<String, usize> = HashMap::new();
    for r in rt.list_containers() {
        *per_pod.entry(r.pod_uid).or_default() += 1;
    }
    assert_eq!(per_pod.len(), N);
    assert!(per_pod.values().all(|n| *n == 1));
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
    cluster.shutdown().await.unwrap();
}
