//! The twin test: one scenario — two Deployments, a rolling update, a Deployment deletion, a
//! node failure and its recovery — run through the simulator (virtual time, orch-runtime's
//! steppable driver) and through a live in-process `Cluster` (memory store, sim runtime, real
//! time with a short node-monitor grace period). Both must end with the same objects: the same
//! Deployments, the same ReplicaSets with the same owners, the same number of pods per
//! ReplicaSet and phase, nothing of the deleted Deployment left.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use orch::sim::{Scenario, SimOptions, Simulation};
use orch::{Cluster, Runtime};
use orch_types::client::{Api, DeleteParams, Patch, PatchParams, PropagationPolicy, SharedClient};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// A Deployment whose pods leave an unreachable node after one second (both twins use the same
/// tolerations, so eviction does not wait for the 300 s default).
fn deployment(name: &str, replicas: i32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "app", "image": image,
                                    "resources": {"requests": {"cpu": "100m"}}}],
                    "tolerations": [
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 1},
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 1},
                    ],
                },
            },
        },
    })
}

/// What both twins must agree on, as sorted lines.
async fn outcome(client: &SharedClient) -> Vec<String> {
    let mut out = Vec::new();
    let ds: Api<Deployment> = Api::namespaced(client.clone(), "default");
    for d in ds
        .list(&Default::default())
        .await
        .expect("deployments")
        .items
    {
        let s = d.status.clone().unwrap_or_default();
        out.push(format!(
            "Deployment {} replicas={} updated={} available={}",
            d.metadata.name.clone().unwrap_or_default(),
            s.replicas.unwrap_or(0),
            s.updated_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        ));
    }
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    for r in rss
        .list(&Default::default())
        .await
        .expect("replicasets")
        .items
    {
        let owner = r
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect::<Vec<_>>()
            .join(",");
        out.push(format!(
            "ReplicaSet {} owner={owner} spec={} replicas={}",
            r.metadata.name.clone().unwrap_or_default(),
            r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            r.status.as_ref().map_or(0, |s| s.replicas),
        ));
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for p in pods.list(&Default::default()).await.expect("pods").items {
        let owner = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect::<Vec<_>>()
            .join(",");
        let status = p.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let line = format!(
            "Pod owner={owner} phase={} ready={ready} terminating={} image={}",
            status.phase.unwrap_or_default(),
            p.metadata.deletion_timestamp.is_some(),
            p.spec
                .as_ref()
                .map_or("", |s| s.containers[0].image.as_deref().unwrap_or("")),
        );
        *counts.entry(line).or_default() += 1;
    }
    out.extend(counts.into_iter().map(|(l, n)| format!("{n} x {l}")));
    let nodes: Api<Node> = Api::all(client.clone());
    let ready = nodes
        .list(&Default::default())
        .await
        .expect("nodes")
        .items
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    out.push(format!("Nodes ready={ready}"));
    out.sort();
    out
}

/// Settled: every Deployment fully rolled out and available, no pod terminating or pending.
async fn settled(client: &SharedClient) -> bool {
    let ds: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let Ok(ds) = ds.list(&Default::default()).await else {
        return false;
    };
    let rolled = ds.items.iter().all(|d| {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let s = d.status.clone().unwrap_or_default();
        s.observed_generation == d.metadata.generation
            && s.replicas == Some(want)
            && s.updated_replicas == Some(want)
            && s.available_replicas == Some(want)
    });
    let want: i32 = ds
        .items
        .iter()
        .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))
        .sum();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let Ok(pods) = pods.list(&Default::default()).await else {
        return false;
    };
    let calm = pods.items.iter().all(|p| {
        p.metadata.deletion_timestamp.is_none()
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    });
    rolled && calm && pods.items.len() as i32 == want
}

/// No ReplicaSet or pod of Deployment `name` is left.
async fn collected(client: &SharedClient, name: &str) -> bool {
    let sel = orch_types::client::ListParams::default().labels(&format!("app={name}"));
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    matches!(rss.list(&sel).await, Ok(l) if l.items.is_empty())
        && matches!(pods.list(&sel).await, Ok(l) if l.items.is_empty())
}

/// The node running the most pods (the one whose failure the scenario stages).
async fn busiest_node(client: &SharedClient) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in pods.list(&Default::default()).await.expect("pods").items {
        if let Some(n) = p.spec.and_then(|s| s.node_name) {
            *by_node.entry(n).or_default() += 1;
        }
    }
    let (node, n) = by_node
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .expect("pods are bound");
    assert!(n > 0);
    node
}

/// The pods bound to `node` that are not being deleted.
async fn live_pods_on(client: &SharedClient, node: &str) -> usize {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&Default::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .count()
        })
        .unwrap_or(usize::MAX)
}

fn set_image() -> Patch {
    Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "nginx:2"}]}}}}))
}

fn background() -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    }
}

/// Runs the simulator in steps of 5 virtual seconds until `done` holds (at most `limit` s).
async fn sim_until<F, Fut>(sim: &mut Simulation, limit: f64, what: &str, done: F)
where
    F: Fn(SharedClient) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = sim.now() + limit;
    while !done(sim.client()).await {
        assert!(
            sim.now() < end,
            "simulation: {what} not reached in {limit} s"
        );
        let t = sim.now() + 5.0;
        sim.run_until(t, || false).await;
    }
}

async fn live_until<F, Fut>(client: &SharedClient, limit: Duration, what: &str, done: F)
where
    F: Fn(SharedClient) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = std::time::Instant::now() + limit;
    while !done(client.clone()).await {
        assert!(
            std::time::Instant::now() < end,
            "live cluster: {what} not reached in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run_sim() -> Vec<String> {
    let scenario = Scenario::from_yaml(
        "nodeGroups:\n  - name: node\n    count: 3\n    template: {status: {capacity: {cpu: \"4\", memory: 8Gi, pods: \"110\"}}}\n",
    )
    .expect("scenario");
    let mut sim = Simulation::new(scenario, SimOptions::default())
        .await
        .expect("simulation");
    sim.apply(vec![
        deployment("web", 4, "nginx:1"),
        deployment("batch", 2, "busybox:1"),
    ])
    .await
    .expect("apply");
    sim_until(&mut sim, 120.0, "first rollout", |c| async move {
        settled(&c).await
    })
    .await;
    let client = sim.client();
    let ds: Api<Deployment> = Api::namespaced(client.clone(), "default");
    ds.patch("web", &set_image(), &PatchParams::default())
        .await
        .expect("set image");
    sim.refresh(
        &orch_types::ApiResource::of::<Deployment>(),
        Some("default"),
        "web",
    )
    .await;
    sim_until(&mut sim, 300.0, "rolling update", |c| async move {
        settled(&c).await
    })
    .await;
    ds.delete("batch", &background())
        .await
        .expect("delete batch");
    sim.refresh(
        &orch_types::ApiResource::of::<Deployment>(),
        Some("default"),
        "batch",
    )
    .await;
    sim_until(&mut sim, 120.0, "batch collected", |c| async move {
        collected(&c, "batch").await
    })
    .await;
    let victim = busiest_node(&client).await;
    sim.disrupt(orch::sim::scenario::Action::NodeDown {
        node: victim.clone(),
    })
    .await;
    let v = victim.clone();
    sim_until(&mut sim, 600.0, "node drained", move |c| {
        let v = v.clone();
        async move { live_pods_on(&c, &v).await == 0 }
    })
    .await;
    sim.disrupt(orch::sim::scenario::Action::NodeUp { node: victim })
        .await;
    sim_until(
        &mut sim,
        300.0,
        "recovery",
        |c| async move { settled(&c).await },
    )
    .await;
    let out = outcome(&client).await;
    eprintln!("simulated outcome at {:.0} s: {out:#?}", sim.now());
    out
}

async fn run_live() -> Vec<String> {
    let mut cluster = Cluster::builder()
        .nodes(3)
        .runtime(Runtime::Sim)
        .listen(None)
        .node_monitor_grace_period(Duration::from_secs(2))
        .wait_ready(Some(Duration::from_secs(30)))
        .start()
        .await
        .expect("cluster");
    let client = cluster.client();
    let ds: Api<Deployment> = Api::namespaced(client.clone(), "default");
    for d in [
        deployment("web", 4, "nginx:1"),
        deployment("batch", 2, "busybox:1"),
    ] {
        ds.create(&serde_json::from_value(d).expect("deployment"))
            .await
            .expect("create");
    }
    let limit = Duration::from_secs(60);
    live_until(&client, limit, "first rollout", |c| async move {
        settled(&c).await
    })
    .await;
    ds.patch("web", &set_image(), &PatchParams::default())
        .await
        .expect("set image");
    live_until(&client, limit, "rolling update", |c| async move {
        settled(&c).await
    })
    .await;
    ds.delete("batch", &background())
        .await
        .expect("delete batch");
    live_until(&client, limit, "batch collected", |c| async move {
        collected(&c, "batch").await
    })
    .await;
    let victim = busiest_node(&client).await;
    cluster.stop_kubelet(&victim).await.expect("stop kubelet");
    let v = victim.clone();
    live_until(&client, limit, "node drained", move |c| {
        let v = v.clone();
        async move { live_pods_on(&c, &v).await == 0 }
    })
    .await;
    cluster.start_kubelet(&victim).expect("start kubelet");
    live_until(
        &client,
        limit,
        "recovery",
        |c| async move { settled(&c).await },
    )
    .await;
    let out = outcome(&client).await;
    cluster.shutdown().await.expect("shutdown");
    eprintln!("live outcome: {out:#?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_and_live_cluster_end_with_the_same_objects() {
    let sim = run_sim().await;
    let live = run_live().await;
    assert_eq!(
        sim, live,
        "simulator (left) and live cluster (right) disagree"
    );
    // And the outcome is the one the scenario implies.
    assert!(sim
        .iter()
        .any(|l| l.starts_with("Deployment web replicas=4 updated=4 available=4")));
    assert!(!sim.iter().any(|l| l.contains("batch")), "{sim:#?}");
    assert!(
        sim.iter()
            .any(|l| l.starts_with("4 x Pod owner=ReplicaSet/web-")
                && l.ends_with("phase=Running ready=true terminating=false image=nginx:2")),
        "{sim:#?}"
    );
    assert!(sim.contains(&"Nodes ready=3".to_string()), "{sim:#?}");
}
