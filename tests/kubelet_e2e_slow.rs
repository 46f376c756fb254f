//! The kubelet on the process runtime in an in-process cluster (slow: real processes).
//!
//! `slow_kubelet_pod_startup_200`: 200 pods bound to one node (`--pods 300`), measured from
//! the create call to the watch event that shows them Running; prints p50/p99 (timing is
//! reported, never asserted) and checks every pod runs exactly one container process. It runs
//! twice, with host networking and (when possible here: root, `ip netns`) with a network
//! namespace per pod, so the two figures come from one run; with namespaces it also checks
//! every pod got its own IP from the node's podCIDR.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use orch::cluster::Cluster;
use orch_kubelet::runtime::process::{PodNetwork, ProcessConfig, ProcessRuntime};
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
    startup_200(PodNetwork::Host).await;
    startup_200(PodNetwork::Netns).await;
}

async fn startup_200(net: PodNetwork) {
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let mut pc = ProcessConfig::new(dir.path());
    pc.pod_network = net;
    let rt = match ProcessRuntime::open(pc) {
        Ok(rt) => Arc::new(rt),
        Err(e) => {
            println!("skipping pod network {net}: {e}");
            return;
        }
    };
    // a cluster CIDR no other test uses (node IPAM gives bench-node the first /24)
    let cluster = Cluster::builder()
        .nodes(0)
        .cluster_cidr("10.252.0.0/16")
        .start()
        .await
        .expect("cluster");
    let client = cluster.client();
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
    let mut ips: HashMap<String, String> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    while running.len() < N {
        let ev = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .expect("all pods Running in time")
            .expect("watch open")
            .expect("watch event");
        if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev {
            if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
                ips.insert(
                    p.metadata.name.clone().unwrap_or_default(),
                    ip.unwrap_or_default(),
                );
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
        "pod startup (create → Running), process runtime, pod network {net}, 1 node, {N} pods: p50={:?} p99={:?} max={:?}",
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
    if net == PodNetwork::Netns {
        let distinct: std::collections::HashSet<&String> = ips.values().collect();
        assert_eq!(distinct.len(), N, "every pod its own IP");
        assert!(
            ips.values().all(|ip| ip.starts_with("10.252.0.")),
            "{ips:?}"
        );
    }
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
    cluster.shutdown().await.unwrap();
}
