//! Controllers against the in-process API server with simulated pod readiness (no scheduler, no
//! kubelet): a helper task marks every pod Running and Ready with a pod IP.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Pod, Service};
use orch_apiserver::{ApiServer, ApiServerConfig};
use orch_controllers::manager::{ControllerManager, ManagerConfig};
use orch_types::client::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy, SharedClient,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

struct Env {
    client: SharedClient,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Env {
    async fn start() -> Env {
        Self::start_with(ManagerConfig::default()).await
    }

    async fn start_with(config: ManagerConfig) -> Env {
        let api = ApiServer::new(ApiServerConfig::memory()).expect("api server");
        let client = api.client();
        let clock: orch_types::clock::SharedClock = Arc::new(orch_types::clock::SystemClock);
        let cm = ControllerManager::new(client.clone(), clock, config).expect("manager");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (tx2, mut rx2) = tokio::sync::watch::channel(false);
        let mut tasks = vec![tokio::spawn(async move {
            cm.run(async {
                let _ = rx.await;
                let _ = tx2.send(true);
            })
            .await;
        })];
        // Simulated kubelet: pods become Running + Ready with an IP.
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let pods: Api<Pod> = Api::all(c.clone());
            let mut n = 0u32;
            loop {
                if *rx2.borrow() {
                    return;
                }
                if let Ok(list) = pods.list(&ListParams::default()).await {
                    for p in list.items {
                        let ready = p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready"));
                        if ready || p.metadata.deletion_timestamp.is_some() {
                            continue;
                        }
                        n += 1;
                        let ns = p.metadata.namespace.clone().unwrap_or_default();
                        let name = p.metadata.name.clone().unwrap_or_default();
                        let api: Api<Pod> = Api::namespaced(c.clone(), &ns);
                        let now = k8s_openapi::jiff::Timestamp::now().to_string();
                        let _ = api
                            .patch_status(
                                &name,
                                &Patch::Merge(json!({"status": {"phase": "Running", "podIP": format!("10.1.{}.{}", n / 250, n % 250 + 1),
                                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}})),
                                &PatchParams::default(),
                            )
                            .await;
                    }
                }
                tokio::select! {
                    _ = rx2.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }));
        Env {
            client,
            stop: Some(tx),
            tasks,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

/// Polls `f` until it returns `Some`, at most 20 s.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let last = match f().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn deployment(image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "annotations": {"kubernetes.io/change-cause": format!("set {image}")}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_rolls_out_and_rolls_back() {
    let env = Env::start().await;
    let deps: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    deps.create(&deployment("nginx:1"))
        .await
        .expect("create deployment");
    let first = eventually("3 available replicas", || async {
        let d = deps.get("web").await.map_err(|e| e.to_string())?;
        let st = d.status.clone().unwrap_or_default();
        (st.available_replicas == Some(3) && st.updated_replicas == Some(3))
            .then_some(d)
            .ok_or(format!("{st:?}"))
    })
    .await;
    assert_eq!(
        first.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    let rs1 = rss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let hash = rs1.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        rs1.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs1.metadata.annotations.as_ref().unwrap()["kubernetes.io/change-cause"],
        "set nginx:1"
    );

    // `kubectl set image`.
    deps.patch(
        "web",
        &Patch::Merge(json!({"metadata": {"annotations": {"kubernetes.io/change-cause": "set nginx:2"}},
                             "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}})),
        &PatchParams::default(),
    )
    .await
    .unwrap();
    eventually("rollout to nginx:2", || async {
        let list = rss
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let sizes: Vec<(String, i32, String)> = list
            .items
            .iter()
            .map(|r| {
                (
                    r.spec
                        .as_ref()
                        .unwrap()
                        .template
                        .as_ref()
                        .unwrap()
                        .spec
                        .as_ref()
                        .unwrap()
                        .containers[0]
                        .image
                        .clone()
                        .unwrap(),
                    r.status
                        .as_ref()
                        .map_or(0, |s| s.available_replicas.unwrap_or(0)),
                    r.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("deployment.kubernetes.io/revision").cloned())
                        .unwrap_or_default(),
                )
            })
            .collect();
        let done = sizes
            .iter()
            .any(|(i, a, r)| i == "nginx:2" && *a == 3 && r == "2")
            && sizes.iter().all(|(i, a, _)| i == "nginx:2" || *a == 0);
        done.then_some(()).ok_or(format!("{sizes:?}"))
    })
    .await;
    // `kubectl rollout undo`: copy revision 1's template back.
    let mut tpl = rs1.spec.unwrap().template.unwrap();
    tpl.metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .remove("pod-template-hash");
    deps.patch(
        "web",
        &Patch::Merge(json!({"spec": {"template": tpl}})),
        &PatchParams::default(),
    )
    .await
    .unwrap();
    eventually("rollback to revision 3 on the first ReplicaSet", || async {
        let r = rss
            .get(rs1.metadata.name.as_deref().unwrap())
            .await
            .map_err(|e| e.to_string())?;
        let ann = r.metadata.annotations.clone().unwrap_or_default();
        let avail = r
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        (ann.get("deployment.kubernetes.io/revision")
            .map(String::as_str)
            == Some("3")
            && avail == 3)
            .then_some(())
            .ok_or(format!("{ann:?} avail={avail}"))
    })
    .await;
    assert_eq!(
        rss.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    // Events with upstream reasons, aggregated rather than one object per repeat.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(env.client.clone(), "default");
    let evs = events.list(&ListParams::default()).await.unwrap().items;
    let by_reason = |r: &str| {
        evs.iter()
            .filter(|e| e.reason.as_deref() == Some(r))
            .collect::<Vec<_>>()
    };
    let scaled = by_reason("ScalingReplicaSet");
    assert!(
        scaled.iter().any(|e| e
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("Scaled up replica set web-"))),
        "{scaled:?}"
    );
    assert!(scaled
        .iter()
        .all(|e| e.involved_object.kind.as_deref() == Some("Deployment")));
    let created = by_reason("SuccessfulCreate");
    assert!(!created.is_empty());
    assert!(created
        .iter()
        .all(|e| e.source.as_ref().and_then(|s| s.component.as_deref())
            == Some("replicaset-controller")));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_pods_are_readopted_untouched_and_relabelled_pods_replaced() {
    let env = Env::start().await;
    let rss: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "front", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"tier": "front"}},
                 "template": {"metadata": {"labels": {"tier": "front"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}
    }))
    .unwrap();
    rss.create(&rs).await.unwrap();
    let before = eventually("2 pods", || async {
        let l = pods
            .list(&ListParams::default().labels("tier=front"))
            .await
            .map_err(|e| e.to_string())?;
        let n = l.items.len();
        (n == 2).then_some(l.items).ok_or(format!("{n} pods"))
    })
    .await;
    // `kubectl delete rs front --cascade=orphan`
    rss.delete(
        "front",
        &DeleteParams::propagation(PropagationPolicy::Orphan),
    )
    .await
    .unwrap();
    eventually("RS gone and pods orphaned", || async {
        let gone = rss
            .get_opt("front")
            .await
            .map_err(|e| e.to_string())?
            .is_none();
        let l = pods
            .list(&ListParams::default().labels("tier=front"))
            .await
            .map_err(|e| e.to_string())?;
        let orphaned = l.items.len() == 2
            && l.items.iter().all(|p| {
                p.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(Vec::is_empty)
            });
        (gone && orphaned).then_some(()).ok_or(format!(
            "gone={gone} pods={:?}",
            l.items
                .iter()
                .map(|p| &p.metadata.owner_references)
                .collect::<Vec<_>>()
        ))
    })
    .await;
    let mut rs2 = rs.clone();
    rs2.metadata.name = Some("front2".into());
    let created = rss.create(&rs2).await.unwrap();
    let after = eventually("pods adopted by front2", || async {
        let l = pods
            .list(&ListParams::default().labels("tier=front"))
            .await
            .map_err(|e| e.to_string())?;
        let n = l.items.len();
        let adopted = l.items.iter().all(|p| {
            p.metadata
                .owner_references
                .as_ref()
                .is_some_and(|r| r.len() == 1 && r[0].uid == created.metadata.uid.clone().unwrap())
        });
        (adopted && l.items.len() == 2)
            .then_some(l.items)
            .ok_or(format!("{n} pods"))
    })
    .await;
    let names = |v: &[Pod]| {
        let mut n: Vec<(String, String)> = v
            .iter()
            .map(|p| {
                (
                    p.metadata.name.clone().unwrap(),
                    p.metadata.uid.clone().unwrap(),
                )
            })
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&before),
        names(&after),
        "the same pods, not replacements"
    );
    // Relabel one pod out: a replacement is created, the pod is released.
    let victim = after[0].metadata.name.clone().unwrap();
    pods.patch(
        &victim,
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "debug"}}})),
        &PatchParams::default(),
    )
    .await
    .unwrap();
    eventually("replacement created and pod released", || async {
        let l = pods
            .list(&ListParams::default().labels("tier=front"))
            .await
            .map_err(|e| e.to_string())?;
        let v = pods.get(&victim).await.map_err(|e| e.to_string())?;
        let released = v
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(Vec::is_empty);
        (l.items.len() == 2 && released)
            .then_some(())
            .ok_or(format!("{} pods, released={released}", l.items.len()))
    })
    .await;
    // Background deletion: the collector removes the dependents.
    rss.delete("front2", &DeleteParams::default())
        .await
        .unwrap();
    eventually("pods collected", || async {
        let l = pods
            .list(&ListParams::default().labels("tier=front"))
            .await
            .map_err(|e| e.to_string())?;
        l.items
            .is_empty()
            .then_some(())
            .ok_or(format!("{} pods left", l.items.len()))
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_pods_and_namespace_deletion_empties_the_namespace() {
    let env = Env::start().await;
    let nss: Api<Namespace> = Api::all(env.client.clone());
    nss.create(&serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap())
        .await
        .unwrap();
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), "team");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "team");
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "team");
    let eps: Api<Endpoints> = Api::namespaced(env.client.clone(), "team");
    svcs.create(
        &serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "team"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}))
        .unwrap(),
    )
    .await
    .unwrap();
    pods.create(
        &serde_json::from_value(
            json!({"metadata": {"name": "w1", "namespace": "team", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    cms.create(
        &serde_json::from_value(
            json!({"metadata": {"name": "cfg", "namespace": "team"}, "data": {"a": "b"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    eventually("endpoints with the ready pod", || async {
        let e = eps.get("web").await.map_err(|e| e.to_string())?;
        let s = e.subsets.clone().unwrap_or_default();
        let ok = s.len() == 1
            && s[0].addresses.as_ref().is_some_and(|a| a.len() == 1)
            && s[0].ports.as_ref().is_some_and(|p| p[0].port == 8080);
        ok.then_some(()).ok_or(format!("{s:?}"))
    })
    .await;
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    eventually("namespace removed", || async {
        match nss.get_opt("team").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(n) => Err(format!("still there: {:?} {:?}", n.status, n.spec)),
        }
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_node_is_tainted_its_pods_evicted_and_it_recovers() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Node;
    let mut config = ManagerConfig::default();
    config.node_lifecycle.grace_period = k8s_openapi::jiff::SignedDuration::from_secs(2);
    config.node_monitor_period = Duration::from_millis(200);
    let env = Env::start_with(config).await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-node-lease");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    // Two nodes (one node alone down is "full disruption" and stops NoExecute tainting).
    for name in ["n1", "n2"] {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        nodes
            .create(&serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "lastHeartbeatTime": now, "lastTransitionTime": now}]}})).unwrap())
            .await
            .unwrap();
        leases
            .create(
                &serde_json::from_value(
                    json!({"metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}}),
                )
                .unwrap(),
            )
            .await
            .unwrap();
    }
    // n2 keeps renewing its lease; n1 goes silent.
    let c = env.client.clone();
    let renew = tokio::spawn(async move {
        let leases: Api<Lease> = Api::namespaced(c, "kube-node-lease");
        loop {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let _ = leases
                .patch(
                    "n2",
                    &Patch::Merge(json!({"spec": {"renewTime": now}})),
                    &PatchParams::default(),
                )
                .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    pods.create(
        &serde_json::from_value(
            json!({"metadata": {"name": "victim", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}],
                 "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    pods.create(&serde_json::from_value(json!({"metadata": {"name": "patient", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}],
                 "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]}})).unwrap())
        .await
        .unwrap();
    eventually("n1 Unknown with unreachable taints", || async {
        let n = nodes.get("n1").await.map_err(|e| e.to_string())?;
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready").cloned());
        let taints: Vec<(String, String)> = n
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.key, t.effect))
            .collect();
        let ok = ready.as_ref().is_some_and(|r| r.status == "Unknown")
            && taints.contains(&("node.kubernetes.io/unreachable".into(), "NoSchedule".into()))
            && taints.contains(&("node.kubernetes.io/unreachable".into(), "NoExecute".into()));
        ok.then_some(()).ok_or(format!("{ready:?} {taints:?}"))
    })
    .await;
    eventually("untolerating pod evicted, tolerating pod kept", || async {
        let v = pods.get_opt("victim").await.map_err(|e| e.to_string())?;
        let p = pods.get("patient").await.map_err(|e| e.to_string())?;
        let evicted = v
            .as_ref()
            .is_none_or(|v| v.metadata.deletion_timestamp.is_some());
        (evicted && p.metadata.deletion_timestamp.is_none())
            .then_some(())
            .ok_or(format!("victim present={}", v.is_some()))
    })
    .await;
    let n2 = nodes.get("n2").await.unwrap();
    assert!(
        n2.spec
            .and_then(|s| s.taints)
            .unwrap_or_default()
            .is_empty(),
        "healthy node untouched"
    );
    // n1 heartbeats again: the taints go.
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    nodes
        .patch_status(
            "n1",
            &Patch::Merge(
                json!({"status": {"conditions": [{"type": "Ready", "status": "True",
            "reason": "KubeletReady", "lastHeartbeatTime": now, "lastTransitionTime": now}]}}),
            ),
            &PatchParams::default(),
        )
        .await
        .unwrap();
    leases
        .patch(
            "n1",
            &Patch::Merge(json!({"spec": {"renewTime": now}})),
            &PatchParams::default(),
        )
        .await
        .unwrap();
    eventually("n1 untainted", || async {
        let n = nodes.get("n1").await.map_err(|e| e.to_string())?;
        let t = n.spec.and_then(|s| s.taints).unwrap_or_default();
        t.is_empty().then_some(()).ok_or(format!("{t:?}"))
    })
    .await;
    renew.abort();
    env.stop().await;
}
