//! The scheduler driver against the in-process API server: binds pending pods through
//! `pods/binding`, writes PodScheduled=False with upstream's message and events, leaves pods of
//! other schedulers alone, and preempts (nominatedNodeName + graceful victim deletion).

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use orch_apiserver::{ApiServer, ApiServerConfig};
use orch_types::client::{Api, ListParams, SharedClient};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn node(name: &str, cpu: &str) -> Node {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                   "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}}),
    )
    .unwrap()
}

fn pod(name: &str, cpu: &str, extra: serde_json::Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "app", "resources": {"requests": {"cpu": cpu}}}]});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )
    .unwrap()
}

async fn wait_for<F: Fn(&Pod) -> bool>(pods: &Api<Pod>, name: &str, f: F) -> Pod {
    for _ in 0..200 {
        if let Ok(p) = pods.get(name).await {
            if f(&p) {
                return p;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "timed out waiting for pod {name}: {:?}",
        pods.get(name).await.ok().and_then(|p| p.status)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_binds_reports_and_preempts() {
    let api = ApiServer::new(ApiServerConfig::memory()).unwrap();
    let client: SharedClient = api.client();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.create(&node("n1", "2")).await.unwrap();
    nodes.create(&node("n2", "2")).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&pod("web", "500m", json!({}))).await.unwrap();
    pods.create(&pod(
        "other",
        "100m",
        json!({"schedulerName": "someone-else"}),
    ))
    .await
    .unwrap();
    pods.create(&pod("huge", "64", json!({}))).await.unwrap();

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let driver = tokio::spawn(orch_scheduler::driver::run(
        client.clone(),
        None,
        Arc::new(orch_types::clock::SystemClock),
        async move {
            let _ = rx.await;
        },
    ));

    let web = wait_for(&pods, "web", |p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
    })
    .await;
    let web_node = web.spec.unwrap().node_name.unwrap();
    assert!(web_node == "n1" || web_node == "n2");

    let huge = wait_for(&pods, "huge", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled"))
    })
    .await;
    let cond = huge
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(
        cond.message.as_deref(),
        Some("0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling..")
    );

    // Preemption: fill n1 and n2 with low-priority pods, then a high-priority one.
    pods.create(&pod("low-1", "1500m", json!({"priority": 1})))
        .await
        .unwrap();
    pods.create(&pod("low-2", "1500m", json!({"priority": 1})))
        .await
        .unwrap();
    for n in ["low-1", "low-2"] {
        wait_for(&pods, n, |p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
        })
        .await;
    }
    pods.create(&pod("vip", "1", json!({"priority": 100})))
        .await
        .unwrap();
    let vip = wait_for(&pods, "vip", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_ref())
            .is_some()
            || p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
    })
    .await;
    let target = vip
        .status
        .and_then(|s| s.nominated_node_name)
        .or(vip.spec.and_then(|s| s.node_name))
        .unwrap();
    // The victim on the nominated node is being (or has been) deleted.
    let mut victim_gone = false;
    for _ in 0..100 {
        let l = pods.list(&ListParams::default()).await.unwrap();
        victim_gone = !l.items.iter().any(|p| {
            let on_target =
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(target.as_str());
            on_target
                && p.spec.as_ref().and_then(|s| s.priority) == Some(1)
                && p.metadata.deletion_timestamp.is_none()
        });
        if victim_gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(victim_gone, "low-priority pod on {target} not deleted");

    // The other scheduler's pod is untouched.
    let other = pods.get("other").await.unwrap();
    assert!(other.spec.unwrap().node_name.is_none());
    assert!(other
        .status
        .and_then(|s| s.conditions)
        .is_none_or(|c| c.is_empty()));

    // Events: Scheduled for web, FailedScheduling for huge.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let mut reasons = Vec::new();
    for _ in 0..100 {
        let l = events.list(&ListParams::default()).await.unwrap();
        reasons = l
            .items
            .iter()
            .map(|e| {
                (
                    e.involved_object.name.clone().unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                )
            })
            .collect();
        if reasons.contains(&("web".into(), "Scheduled".into()))
            && reasons.contains(&("huge".into(), "FailedScheduling".into()))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        reasons.contains(&("web".into(), "Scheduled".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("huge".into(), "FailedScheduling".into())),
        "{reasons:?}"
    );

    let _ = tx.send(());
    let stats = driver.await.unwrap().unwrap();
    assert!(stats.bound >= 3, "{stats:?}");
}
