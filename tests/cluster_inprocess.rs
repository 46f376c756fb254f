//! The in-process [`orch::Cluster`] (memory store, sim runtime): every component is wired —
//! a Deployment becomes ReplicaSet and pods, the scheduler binds them, the sim kubelets run
//! them — and kubectl works against its kubeconfig. Fast: no real processes besides kubectl
//! (and the few real ones where their output matters: `kubectl debug`'s runs on the process
//! runtime with host networking).

mod common;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use orch::{Cluster, Runtime, Storage};
use orch_types::client::{Api, ListParams, WatchEvent, WatchParams};
use std::collections::BTreeSet;
use std::time::Duration;

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
            }
        }
    }))
    .expect("deployment")
}

/// Waits (bounded) until `n` pods labelled app=web are Running; returns them.
async fn running_pods(pods: &Api<Pod>, n: usize) -> Vec<Pod> {
    let lp = ListParams::default().labels("app=web");
    let wait = async {
        loop {
            let l = pods.list(&lp).await.expect("list pods");
            let running: Vec<Pod> = l
                .items
                .into_iter()
                .filter(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                })
                .collect();
            if running.len() == n {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("{n} running pods within 30 s"))
}

/// Waits (bounded) until `n` pods labelled app=web exist; returns their UIDs.
async fn pod_uids(pods: &Api<Pod>, n: usize) -> BTreeSet<String> {
    let lp = ListParams::default().labels("app=web");
    let wait = async {
        loop {
            let l = pods.list(&lp).await.expect("list pods");
            if l.items.len() == n {
                return l.items.into_iter().filter_map(|p| p.metadata.uid).collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("{n} pods within 30 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_runs_on_sim_nodes() {
    let cluster = Cluster::builder()
        .storage(Storage::Memory)
        .runtime(Runtime::Sim)
        .nodes(2)
        .start()
        .await
        .expect("cluster starts");
    assert_eq!(cluster.node_names(), ["node-1", "node-2"]);
    let nodes: Api<Node> = Api::all(cluster.client());
    let names: BTreeSet<String> = nodes
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(names, BTreeSet::from(["node-1".into(), "node-2".into()]));

    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    deployments.create(&deployment(4)).await.expect("create");
    let running = running_pods(&pods, 4).await;
    for p in &running {
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
        assert!(
            node.as_deref().is_some_and(|n| names.contains(n)),
            "bound to an in-process node: {node:?}"
        );
        let owner = &p.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.kind, "ReplicaSet");
        assert!(owner.name.starts_with("web-"));
    }

    // Scale down through the API; the watch sees the deletions.
    let list = pods.list(&ListParams::default()).await.expect("list");
    let mut watch = pods
        .watch(&WatchParams {
            resource_version: list.metadata.resource_version.clone(),
            label_selector: Some("app=web".into()),
            ..Default::default()
        })
        .await
        .expect("watch");
    // Read-modify-write, retried on a conflict (the deployment controller may write the
    // status in between), as client-go's RetryOnConflict.
    for attempt in 1.. {
        let mut d = deployments.get("web").await.expect("get");
        d.spec.as_mut().expect("spec").replicas = Some(1);
        match deployments.replace(&d).await {
            Ok(_) => break,
            Err(orch_types::client::ClientError::Api(e)) if e.is_conflict() && attempt < 10 => {}
            Err(e) => panic!("scale down: {e}"),
        }
    }
    let mut deleted = 0;
    tokio::time::timeout(Duration::from_secs(30), async {
        while deleted < 3 {
            if let Some(Ok(WatchEvent::Deleted(_))) = watch.next().await {
                deleted += 1;
            }
        }
    })
    .await
    .expect("3 pods deleted within 30 s");
    running_pods(&pods, 1).await;
    cluster.shutdown().await.expect("clean shutdown");
}

/// Runs kubectl (blocking) against the cluster's kubeconfig, with a cache dir of its own.
fn kubectl_for(cluster: &Cluster) -> impl Fn(&[&str]) -> std::process::Output + Send + 'static {
    kubectl_bin_for(cluster, "kubectl".into(), "kube-cache")
}

/// [`kubectl_for`] with a given kubectl binary and cache dir name.
fn kubectl_bin_for(
    cluster: &Cluster,
    bin: std::path::PathBuf,
    cache: &str,
) -> impl Fn(&[&str]) -> std::process::Output + Send + 'static {
    let kubeconfig = cluster.kubeconfig().expect("kubeconfig").to_path_buf();
    let cache = cluster.work_dir().join(cache);
    move |args| {
        std::process::Command::new(&bin)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .output()
            .expect("run kubectl")
    }
}

/// A kubectl runner that must succeed: the command's trimmed stdout (its stderr in the panic).
fn must_succeed(run: impl Fn(&[&str]) -> std::process::Output) -> impl Fn(&[&str]) -> String {
    move |args| {
        let out = run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// The REVISION column of `kubectl rollout history` (after its title and header lines).
fn revisions(history: &str) -> Vec<&str> {
    history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_talks_to_the_cluster() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let kubectl = kubectl_for(&cluster);
    let out = tokio::task::spawn_blocking(move || kubectl(&["get", "nodes", "-o", "name"]))
        .await
        .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "node/node-1");
    cluster.shutdown().await.expect("clean shutdown");
}

/// `/openapi/v2` (gnostic protobuf via `discovery.OpenAPISchema()`) is what kubectl still reads
/// for: `explain --output=plaintext-openapiv2`; client-side validation of a `kind: List` file
/// (every bundled version; an unknown field is rejected with the v2 validator's message); and,
/// in kubectl 1.27 (and 1.28), before any `explain` and any `create -f` (checked in `-v=8` logs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_openapi_v2() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let list = cluster.work_dir().join("v2-list.yaml");
    std::fs::write(
        &list,
        "apiVersion: v1\nkind: List\nitems:\n\
         - apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: listed}\n  data: {a: b}\n\
         - apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: listed}\n  spec:\n    \
         selector: {matchLabels: {app: listed}}\n    template:\n      metadata: {labels: {app: listed}}\n      \
         spec: {containers: [{name: c, image: nginx}]}\n",
    )
    .expect("write list");
    let bad = cluster.work_dir().join("v2-bad-list.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: List\nitems:\n\
         - apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: bad}\n  bogus: 1\n",
    )
    .expect("write bad list");
    let single = cluster.work_dir().join("v2-single.yaml");
    std::fs::write(
        &single,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: single}\ndata: {a: b}\n",
    )
    .expect("write single");
    let bin = |minor: &str| {
        common::bundled_kubectl(minor)
            .unwrap_or_else(|| panic!("kubectl.{minor} is not installed beside kubectl"))
    };
    let k133 = kubectl_bin_for(&cluster, bin("1.33"), "cache-v2-133");
    let k127 = kubectl_bin_for(&cluster, bin("1.27"), "cache-v2-127");
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let (list, bad, single) = (path(&list), path(&bad), path(&single));
    tokio::task::spawn_blocking(move || {
        let ok = must_succeed(&k133);
        let explained = ok(&[
            "explain",
            "deployment.spec.replicas",
            "--output=plaintext-openapiv2",
        ]);
        let field = explained
            .lines()
            .find(|l| l.starts_with("FIELD:"))
            .unwrap_or_default();
        assert!(field.ends_with("replicas <integer>"), "{explained}");
        assert!(explained.contains("Number of desired pods"), "{explained}");

        let raw: serde_json::Value =
            serde_json::from_str(&ok(&["get", "--raw", "/openapi/v2"])).expect("json");
        assert_eq!(raw["swagger"], "2.0");
        assert_eq!(
            raw["definitions"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"]
                [0]["kind"],
            "Deployment"
        );

        let created = k133(&["create", "-f", &list, "-v=8"]);
        let log = String::from_utf8_lossy(&created.stderr);
        assert!(created.status.success(), "{log}");
        assert!(
            log.contains("/openapi/v2"),
            "List validated through v2: {log}"
        );
        assert_eq!(
            ok(&["get", "configmap/listed", "deployment/listed", "-o", "name"]),
            "configmap/listed\ndeployment.apps/listed"
        );
        let rejected = k133(&["create", "-f", &bad]);
        assert!(!rejected.status.success());
        let stderr = String::from_utf8_lossy(&rejected.stderr);
        assert!(
            stderr.contains(r#"unknown field "bogus" in io.k8s.api.core.v1.ConfigMap"#),
            "{stderr}"
        );

        let ok = must_succeed(&k127);
        let explained = ok(&["explain", "deployment.spec.replicas"]);
        assert!(explained.contains("Number of desired pods"), "{explained}");
        ok(&["create", "-f", &single]);
        assert_eq!(
            ok(&["get", "configmap", "single", "-o", "jsonpath={.data.a}"]),
            "b"
        );
    })
    .await
    .expect("join");
    cluster.shutdown().await.expect("clean shutdown");
}

/// A Job runs its completions (pods that exit after a simulated second), `kubectl wait
/// --for=condition=complete` returns, each pod is counted once and its tracking finalizer
/// removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_waits_for_a_job_to_complete() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let run = kubectl_for(&cluster);
    let manifest = cluster.work_dir().join("job.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: pi\nspec:\n  completions: 3\n  \
         parallelism: 2\n  template:\n    metadata:\n      annotations:\n        \
         sim.orch.dev/run-seconds: \"1\"\n    spec:\n      restartPolicy: Never\n      \
         containers:\n      - name: pi\n        image: busybox\n",
    )
    .expect("write manifest");
    let kubectl = must_succeed(run);
    let (succeeded, finalizers, reason) = tokio::task::spawn_blocking(move || {
        kubectl(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
        kubectl(&[
            "wait",
            "--for=condition=complete",
            "job/pi",
            "--timeout=60s",
        ]);
        (
            kubectl(&["get", "job", "pi", "-o", "jsonpath={.status.succeeded}"]),
            kubectl(&[
                "get",
                "pods",
                "-l",
                "job-name=pi",
                "-o",
                "jsonpath={..finalizers}",
            ]),
            kubectl(&[
                "get",
                "job",
                "pi",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Complete\")].reason}",
            ]),
        )
    })
    .await
    .expect("join");
    assert_eq!(succeeded, "3");
    assert_eq!(finalizers, "", "every pod accounted for");
    assert_eq!(reason, "CompletionsReached");
    cluster.shutdown().await.expect("clean shutdown");
}

/// `ttlSecondsAfterFinished`: a Job is deleted (its pods with it) once it has finished and the
/// TTL has passed; `kubectl wait --for=delete` sees it go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_is_deleted_after_its_ttl() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let run = kubectl_for(&cluster);
    let manifest = cluster.work_dir().join("ttl.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: brief\nspec:\n  \
         ttlSecondsAfterFinished: 1\n  template:\n    metadata:\n      annotations:\n        \
         sim.orch.dev/run-seconds: \"1\"\n    spec:\n      restartPolicy: Never\n      \
         containers:\n      - name: c\n        image: busybox\n",
    )
    .expect("write manifest");
    let pods = tokio::task::spawn_blocking(move || {
        let ok = must_succeed(&run);
        ok(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
        assert_eq!(
            ok(&["get", "job", "brief", "-o", "name"]),
            "job.batch/brief"
        );
        // Only a finished Job is deleted by its TTL: its going shows it completed.
        ok(&["wait", "--for=delete", "job/brief", "--timeout=60s"]);
        ok(&["get", "pods", "-l", "job-name=brief", "-o", "name"])
    })
    .await
    .expect("join");
    assert_eq!(pods, "", "the Job's pods went with it");
    cluster.shutdown().await.expect("clean shutdown");
}

/// Upstream refuses a pod template whose container has no image (only an empty string counts
/// as missing): `kubectl apply` shows the field error and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_of_a_template_without_image_is_refused() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let kubectl = kubectl_for(&cluster);
    let manifest = cluster.work_dir().join("no-image.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    \
         matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    \
         spec:\n      containers:\n      - name: web\n",
    )
    .expect("write manifest");
    let (apply, get) = tokio::task::spawn_blocking(move || {
        let path = manifest.to_str().expect("utf-8 path").to_string();
        let apply = kubectl(&["apply", "-f", &path]);
        let get = kubectl(&["get", "deployments", "-o", "name"]);
        (apply, get)
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&apply.stderr);
    assert!(!apply.status.success(), "accepted: {stderr}");
    assert!(
        stderr.contains(
            "The Deployment \"web\" is invalid: spec.template.spec.containers[0].image: Required value"
        ),
        "{stderr}"
    );
    assert!(get.status.success());
    assert_eq!(
        String::from_utf8_lossy(&get.stdout).trim(),
        "",
        "nothing stored"
    );
    cluster.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_cluster_keeps_objects_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No nodes: the controllers still turn the Deployment into a ReplicaSet and pods (Pending).
    let start = || {
        Cluster::builder()
            .storage(Storage::Embedded)
            .data_dir(dir.path())
            .nodes(0)
            .start()
    };
    let c = start().await.expect("first start");
    let created = Api::<Deployment>::namespaced(c.client(), "default")
        .create(&deployment(2))
        .await
        .expect("create");
    let pods_before = pod_uids(&Api::namespaced(c.client(), "default"), 2).await;
    // Every client handle is gone once the cluster is shut down, so the store is released
    // and can be opened again in this process.
    c.shutdown().await.expect("shutdown");

    let c = start().await.expect("second start");
    let deployments: Api<Deployment> = Api::namespaced(c.client(), "default");
    let again = deployments.get("web").await.expect("still there");
    assert_eq!(again.metadata.uid, created.metadata.uid);
    let pods_after = pod_uids(&Api::namespaced(c.client(), "default"), 2).await;
    assert_eq!(pods_after, pods_before, "the same pods, no new ones");
    let rv = |d: &Deployment| -> u64 {
        d.metadata
            .resource_version
            .as_deref()
            .and_then(|s| s.parse().ok())
            .expect("numeric resourceVersion")
    };
    let mut next = deployment(1);
    next.metadata.name = Some("web2".into());
    let newer = deployments
        .create(&next)
        .await
        .expect("create after restart");
    assert!(rv(&newer) > rv(&again), "resourceVersions continue upward");
    c.shutdown().await.expect("shutdown");
}

/// A DaemonSet runs one pod on each of three nodes, a cordoned one included; `kubectl rollout
/// status|history|undo daemonset` work over its ControllerRevisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rolls_out_and_undoes_a_daemon_set() {
    let cluster = Cluster::builder().nodes(3).start().await.expect("start");
    let run = kubectl_for(&cluster);
    let manifest = cluster.work_dir().join("ds.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    \
         matchLabels:\n      app: agent\n  updateStrategy:\n    rollingUpdate:\n      \
         maxUnavailable: 2\n  template:\n    metadata:\n      labels:\n        app: agent\n    \
         spec:\n      containers:\n      - name: agent\n        image: agent:1\n",
    )
    .expect("write manifest");
    let kubectl = must_succeed(run);
    let (nodes, rolled, history, image) = tokio::task::spawn_blocking(move || {
        kubectl(&["cordon", "node-2"]);
        kubectl(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
        kubectl(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
        let nodes = kubectl(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ]);
        kubectl(&["set", "image", "daemonset/agent", "agent=agent:2"]);
        let rolled = kubectl(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
        kubectl(&["rollout", "undo", "daemonset/agent"]);
        kubectl(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
        let image = kubectl(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ]);
        // Orphaned, then adopted: a DaemonSet created again over the same selector takes
        // the running pods (and the revisions) instead of starting new ones.
        let pods = "jsonpath={range .items[*]}{.metadata.name}/\
                    {.metadata.ownerReferences[0].uid} {end}";
        let before = kubectl(&["get", "pods", "-l", "app=agent", "-o", pods]);
        kubectl(&["delete", "daemonset", "agent", "--cascade=orphan"]);
        kubectl(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
        let uid = kubectl(&[
            "get",
            "daemonset",
            "agent",
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let adopted = loop {
            let now = kubectl(&["get", "pods", "-l", "app=agent", "-o", pods]);
            if now
                .split_whitespace()
                .all(|p| p.ends_with(&format!("/{uid}")))
            {
                break now;
            }
            assert!(std::time::Instant::now() < deadline, "not adopted: {now}");
            std::thread::sleep(Duration::from_millis(200));
        };
        let names = |s: &str| -> Vec<String> {
            s.split_whitespace()
                .filter_map(|p| p.split('/').next())
                .map(str::to_string)
                .collect()
        };
        assert_eq!(names(&before), names(&adopted), "the same pods");
        let history = kubectl(&["rollout", "history", "daemonset/agent"]);
        (nodes, rolled, history, image)
    })
    .await
    .expect("join");
    let mut nodes: Vec<&str> = nodes.split_whitespace().collect();
    nodes.sort();
    assert_eq!(nodes, ["node-1", "node-2", "node-3"]);
    assert!(rolled.contains("successfully rolled out"), "{rolled}");
    // The adopted revisions: 2 (agent:2) and 3 (the undo back to agent:1).
    assert_eq!(revisions(&history), ["2", "3"], "{history}");
    assert_eq!(image, "agent:1 agent:1 agent:1");
    cluster.shutdown().await.expect("clean shutdown");
}

/// A PodDisruptionBudget holds `kubectl drain`: with `minAvailable: 2` over a Deployment of two
/// ready pods the disruption controller allows no disruption, the eviction is refused with 429
/// naming the budget, and drain gives up at its timeout. Scaled to three (the third pod lands on
/// the other node), the budget allows one disruption at a time: draining the node with two pods
/// evicts one, is refused the other (kubectl retries a 429 every 5 s) until the first one's
/// replacement is Ready on the other node, then evicts it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drain_respects_a_pod_disruption_budget() {
    let cluster = Cluster::builder().nodes(2).start().await.expect("start");
    let run = kubectl_for(&cluster);
    let manifest = cluster.work_dir().join("pdb.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  \
         selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n  \
         \x20     app: web\n    spec:\n      containers:\n      - name: web\n        image: nginx\n\
         ---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  \
         minAvailable: 2\n  selector:\n    matchLabels:\n      app: web\n",
    )
    .expect("write manifest");
    let (table, first, second, nodes) = tokio::task::spawn_blocking(move || {
        let ok = must_succeed(&run);
        let nodes = || {
            ok(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].spec.nodeName}",
            ])
        };
        let drain = |node: &str, timeout: &str| {
            let out = run(&[
                "drain",
                node,
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                timeout,
            ]);
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (out.status.success(), text(&out.stdout), text(&out.stderr))
        };
        ok(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
        ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
        // The controller has seen both pods Ready.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while ok(&[
            "get",
            "pdb",
            "web",
            "-o",
            "jsonpath={.status.currentHealthy}",
        ]) != "2"
        {
            assert!(
                std::time::Instant::now() < deadline,
                "budget status within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let table = ok(&["get", "pdb", "web"]);
        // A node that runs one of the pods: no eviction within the budget.
        let one = nodes()
            .split_whitespace()
            .next()
            .expect("a pod")
            .to_string();
        let first = drain(&one, "--timeout=5s");
        // A third pod goes to the other node (`one` is cordoned); then drain that one.
        ok(&["scale", "deployment/web", "--replicas=3"]);
        ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
        ok(&["uncordon", &one]);
        let two = nodes()
            .split_whitespace()
            .find(|n| *n != one)
            .expect("a pod on the other node")
            .to_string();
        let second = drain(&two, "--timeout=60s");
        ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
        (table, first, (two, second), nodes())
    })
    .await
    .expect("join");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "MIN",
            "AVAILABLE",
            "MAX",
            "UNAVAILABLE",
            "ALLOWED",
            "DISRUPTIONS",
            "AGE"
        ]
    );
    assert_eq!(rows[1][..4], ["web", "2", "N/A", "0"], "{table}");
    let (drained, _, refused) = first;
    assert!(!drained, "drain must not get past the budget");
    assert!(
        refused.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{refused}"
    );
    let (two, (drained, out, err)) = second;
    assert!(drained, "drain within the budget: {err}");
    assert!(out.contains(&format!("node/{two} drained")), "{out}");
    assert!(
        err.contains("(will retry after 5s): Cannot evict pod"),
        "the second pod waited for the first one's replacement: {err}"
    );
    let nodes: Vec<&str> = nodes.split_whitespace().collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(nodes.iter().all(|n| *n != two), "{nodes:?} all off {two}");
    cluster.shutdown().await.expect("clean shutdown");
}

/// A StatefulSet creates `web-0` before `web-1` (each after its predecessor is ready), rolls a
/// new image out from the highest ordinal, and `kubectl rollout status|history|undo
/// statefulset` work; scaling down removes the highest ordinal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rolls_out_a_stateful_set_in_order() {
    let cluster = Cluster::builder().nodes(2).start().await.expect("start");
    let run = kubectl_for(&cluster);
    let manifest = cluster.work_dir().join("sts.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1"}]
"#,
    )
    .expect("write manifest");
    let kubectl = must_succeed(run);
    let (created, hostnames, rolled, history, image, after_scale) =
        tokio::task::spawn_blocking(move || {
            kubectl(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
            kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
            let created = kubectl(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "--sort-by=.metadata.creationTimestamp",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ]);
            let hostnames = kubectl(&[
                "get",
                "pod",
                "web-1",
                "-o",
                "jsonpath={.spec.hostname}.{.spec.subdomain}",
            ]);
            kubectl(&["set", "image", "statefulset/web", "web=web:2"]);
            let rolled = kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
            let history = kubectl(&["rollout", "history", "statefulset/web"]);
            kubectl(&["rollout", "undo", "statefulset/web"]);
            kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
            let image = kubectl(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].spec.containers[0].image}",
            ]);
            kubectl(&["scale", "statefulset/web", "--replicas=1"]);
            kubectl(&[
                "wait",
                "--for=delete",
                "pod/web-2",
                "pod/web-1",
                "--timeout=60s",
            ]);
            let after_scale = kubectl(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ]);
            (created, hostnames, rolled, history, image, after_scale)
        })
        .await
        .expect("join");
    assert_eq!(created, "web-0 web-1 web-2");
    assert_eq!(hostnames, "web-1.web");
    assert!(rolled.contains("partitioned roll out complete"), "{rolled}");
    assert_eq!(revisions(&history), ["1", "2"], "{history}");
    assert_eq!(image, "web:1 web:1 web:1");
    assert_eq!(after_scale, "web-0");
    cluster.shutdown().await.expect("clean shutdown");
}

/// CronJobs through kubectl: `kubectl create cronjob` is served (defaults applied, the
/// schedule shown by `kubectl get cronjob`), `kubectl create job --from=cronjob/...` makes a
/// Job the CronJob controls that completes (the template's pods exit after a simulated
/// second), and a schedule that does not parse is refused with 422 naming `spec.schedule`.
/// The controller's own runs on schedule are tested in virtual time (`src/sim/tests.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_cron_jobs_and_jobs_from_them() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let run = kubectl_for(&cluster);
    let manifest = cluster.work_dir().join("cronjob.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: nightly\nspec:\n  \
         schedule: \"0 3 * * *\"\n  timeZone: Europe/Paris\n  jobTemplate:\n    spec:\n      \
         template:\n        metadata:\n          annotations:\n            \
         sim.orch.dev/run-seconds: \"1\"\n        spec:\n          restartPolicy: Never\n          \
         containers:\n          - name: report\n            image: busybox\n",
    )
    .expect("write manifest");
    let kubectl = move |args: &[&str]| {
        let out = run(args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    };
    let (created, table, policy, owner, bad) = tokio::task::spawn_blocking(move || {
        let ok = |args: &[&str]| {
            let (success, stdout, stderr) = kubectl(args);
            assert!(success, "kubectl {args:?}: {stderr}");
            stdout
        };
        let created = ok(&[
            "create",
            "cronjob",
            "tick",
            "--image=busybox",
            "--schedule=*/1 * * * *",
        ]);
        let table = ok(&["get", "cronjob", "tick"]);
        let policy = ok(&[
            "get",
            "cj",
            "tick",
            "-o",
            "jsonpath={.spec.concurrencyPolicy} {.spec.successfulJobsHistoryLimit} \
             {.spec.failedJobsHistoryLimit} {.spec.suspend}",
        ]);
        ok(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
        ok(&["create", "job", "manual", "--from=cronjob/nightly"]);
        ok(&[
            "wait",
            "--for=condition=complete",
            "job/manual",
            "--timeout=60s",
        ]);
        let owner = ok(&[
            "get",
            "job",
            "manual",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
        ]);
        let bad = kubectl(&[
            "create",
            "cronjob",
            "bad",
            "--image=x",
            "--schedule=not a cron",
            "-v=6",
        ]);
        (created, table, policy, owner, bad)
    })
    .await
    .expect("join");
    assert_eq!(created, "cronjob.batch/tick created");
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"],
        "{table}"
    );
    let row = lines.next().unwrap_or_default();
    assert!(
        row.starts_with("tick") && row.contains("*/1 * * * *") && row.contains("<none>"),
        "{table}"
    );
    assert_eq!(policy, "Allow 3 1 false");
    assert_eq!(owner, "CronJob/nightly");
    let (success, _, stderr) = bad;
    assert!(!success);
    assert!(stderr.contains("422"), "{stderr}");
    assert!(
        stderr.contains(
            "spec.schedule: Invalid value: \"not a cron\": expected exactly 5 fields, found 3"
        ),
        "{stderr}"
    );
    cluster.shutdown().await.expect("clean shutdown");
}

/// PodPreset (`settings.k8s.io/v1alpha1`, upstream's admission plugin as of 1.19): kubectl
/// discovers `podpresets`, applies one, lists and describes it; a pod it selects is created with
/// the preset's env var, volume mount, volume and `podpreset-<name>` annotation; a pod annotated
/// `exclude: "true"` gets nothing; a pod whose own env var conflicts gets nothing and a Warning
/// Event; `kubectl delete` removes the preset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_a_pod_preset_to_the_pods_it_selects() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let run = kubectl_for(&cluster);
    let preset = cluster.work_dir().join("preset.yaml");
    std::fs::write(
        &preset,
        r#"apiVersion: settings.k8s.io/v1alpha1
kind: PodPreset
metadata:
  name: allow-database
spec:
  selector:
    matchLabels:
      role: frontend
  env:
  - name: DB_PORT
    value: "6379"
  volumeMounts:
  - mountPath: /cache
    name: cache-volume
  volumes:
  - name: cache-volume
    emptyDir: {}
"#,
    )
    .expect("write preset");
    let pods = cluster.work_dir().join("pods.yaml");
    std::fs::write(
        &pods,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: website
  labels: {role: frontend}
spec:
  containers:
  - name: website
    image: nginx
---
apiVersion: v1
kind: Pod
metadata:
  name: excluded
  labels: {role: frontend}
  annotations:
    podpreset.admission.kubernetes.io/exclude: "true"
spec:
  containers:
  - name: website
    image: nginx
---
apiVersion: v1
kind: Pod
metadata:
  name: conflicting
  labels: {role: frontend}
spec:
  containers:
  - name: website
    image: nginx
    env:
    - name: DB_PORT
      value: "5432"
"#,
    )
    .expect("write pods");
    tokio::task::spawn_blocking(move || {
        let ok = must_succeed(&run);
        let resources = ok(&["api-resources", "--api-group=settings.k8s.io"]);
        assert!(
            resources.lines().any(|l| l.starts_with("podpresets")
                && l.contains("settings.k8s.io/v1alpha1")
                && l.contains("PodPreset")),
            "{resources}"
        );
        assert_eq!(
            ok(&["apply", "-f", preset.to_str().expect("utf-8 path")]),
            "podpreset.settings.k8s.io/allow-database created"
        );
        ok(&["apply", "-f", pods.to_str().expect("utf-8 path")]);
        let get = |pod: &str, path: &str| {
            ok(&["get", "pod", pod, "-o", &format!("jsonpath={path}")])
        };
        // The selected pod.
        assert_eq!(
            get("website", r#"{.spec.containers[0].env[?(@.name=="DB_PORT")].value}"#),
            "6379"
        );
        assert_eq!(
            get(
                "website",
                r#"{.spec.containers[0].volumeMounts[?(@.name=="cache-volume")].mountPath}"#
            ),
            "/cache"
        );
        assert_eq!(
            get("website", r#"{.spec.volumes[?(@.name=="cache-volume")].emptyDir}"#),
            "{}"
        );
        let rv = ok(&[
            "get",
            "podpreset",
            "allow-database",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ]);
        assert!(!rv.is_empty());
        assert_eq!(
            get(
                "website",
                r"{.metadata.annotations.podpreset\.admission\.kubernetes\.io/podpreset-allow-database}"
            ),
            rv
        );
        // Opted out, and in conflict: nothing injected.
        for pod in ["excluded", "conflicting"] {
            assert!(
                !get(pod, "{.spec.volumes[*].name}").contains("cache-volume"),
                "{pod}"
            );
            assert!(
                !get(pod, "{.spec.containers[0].volumeMounts[*].name}").contains("cache-volume"),
                "{pod}"
            );
            assert!(
                !get(pod, "{.metadata.annotations}").contains("podpreset-allow-database"),
                "{pod}"
            );
        }
        assert_eq!(get("excluded", "{.spec.containers[0].env}"), "");
        assert_eq!(
            get("conflicting", "{.spec.containers[0].env[*].value}"),
            "5432"
        );
        // The conflict is reported as a Warning Event on the pod (written in the background).
        let mut events = String::new();
        for _ in 0..50 {
            events = ok(&[
                "get",
                "events",
                "-o",
                r#"jsonpath={range .items[?(@.involvedObject.name=="conflicting")]}{.type} {.source.component}: {.message}{"\n"}{end}"#,
            ]);
            if !events.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(
            events.starts_with(
                "Warning pip allow-database: merging env for allow-database has a conflict on DB_PORT"
            ),
            "{events}"
        );
        // Listed, described, deleted.
        let table = ok(&["get", "podpresets"]);
        let header: Vec<&str> = table
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(header, ["NAME", "AGE"], "{table}");
        assert!(
            table.lines().nth(1).unwrap_or_default().starts_with("allow-database"),
            "{table}"
        );
        let explained = ok(&["explain", "podpresets.spec.volumeMounts"]);
        assert!(
            explained.contains("VERSION:    v1alpha1")
                && explained.contains("VolumeMounts defines the collection of VolumeMount"),
            "{explained}"
        );
        let described = ok(&["describe", "podpreset", "allow-database"]);
        assert!(
            described.contains("allow-database") && described.contains("DB_PORT"),
            "{described}"
        );
        assert_eq!(
            ok(&["delete", "podpreset", "allow-database"]),
            "podpreset.settings.k8s.io \"allow-database\" deleted"
        );
        let out = run(&["get", "podpresets"]);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("No resources found"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await
    .expect("join");
    cluster.shutdown().await.expect("clean shutdown");
}

/// Storage end to end with kubectl: the default StorageClass `local`, a claim without a class
/// (defaulted to it) and a pod using it. The claim waits for its first consumer, the scheduler
/// places the pod, the `persistentvolume-binder` provisions `pvc-<uid>` on the pod's node and
/// binds both, and the kubelet starts the pod once the claim is Bound. Deleting the pod and
/// then the claim deletes the volume (reclaimPolicy Delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_binds_a_claim_and_its_pod_runs() {
    let cluster = Cluster::builder().nodes(2).start().await.expect("start");
    let run = kubectl_for(&cluster);
    let manifest = cluster.work_dir().join("claim.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  \
         accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    \
         image: nginx:1.27\n    volumeMounts:\n    - {name: data, mountPath: /usr/share/nginx/html}\n  \
         volumes:\n  - name: data\n    persistentVolumeClaim: {claimName: data}\n",
    )
    .expect("write manifest");
    tokio::task::spawn_blocking(move || {
        let ok = must_succeed(&run);
        let words = |line: &str| -> Vec<String> {
            line.split_whitespace().map(str::to_string).collect()
        };
        // The default class, with upstream's columns.
        let classes = ok(&["get", "sc"]);
        let mut lines = classes.lines();
        assert_eq!(
            words(lines.next().unwrap_or_default()),
            ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"],
            "{classes}"
        );
        let row = words(lines.next().unwrap_or_default());
        assert_eq!(
            row[..6],
            ["local", "(default)", "orch.dev/local", "Delete", "WaitForFirstConsumer", "false"],
            "{classes}"
        );

        ok(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
        ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);
        let claim = ok(&["get", "pvc", "data", "-o", "jsonpath={.status.phase} {.spec.volumeName} {.spec.storageClassName} {.metadata.annotations.volume\\.kubernetes\\.io/selected-node}"]);
        let parts = words(&claim);
        assert_eq!(parts[0], "Bound", "{claim}");
        assert!(parts[1].starts_with("pvc-"), "{claim}");
        assert_eq!(parts[2], "local", "defaulted to the default class: {claim}");
        let node = ok(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"]);
        assert_eq!(parts[3], node, "provisioned on the pod's node");
        let volume = parts[1].clone();

        let table = ok(&["get", "pvc"]);
        let rows: Vec<Vec<String>> = table.lines().map(words).collect();
        assert_eq!(
            rows[0],
            ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"],
            "{table}"
        );
        assert_eq!(rows[1][..7], ["data", "Bound", volume.as_str(), "1Gi", "RWO", "local", "<unset>"], "{table}");

        let table = ok(&["get", "pv"]);
        let rows: Vec<Vec<String>> = table.lines().map(words).collect();
        assert_eq!(rows[0][..6], ["NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY"], "{table}");
        assert_eq!(
            rows[1][..7],
            [volume.as_str(), "1Gi", "RWO", "Delete", "Bound", "default/data", "local"],
            "{table}"
        );
        let source = ok(&["get", "pv", &volume, "-o", "jsonpath={.spec.local.path} {.metadata.annotations.pv\\.kubernetes\\.io/provisioned-by}"]);
        assert_eq!(source, format!("/var/lib/orch/volumes/{volume} orch.dev/local"));

        // The pod goes, then the claim: the volume is deleted with it.
        ok(&["delete", "pod", "web", "--timeout=60s"]);
        ok(&["delete", "pvc", "data", "--timeout=60s"]);
        ok(&["wait", "--for=delete", &format!("pv/{volume}"), "--timeout=60s"]);
    })
    .await
    .expect("join");
    cluster.shutdown().await.expect("clean shutdown");
}

/// A claim without `resources.requests.storage` is refused (422) with upstream's field path,
/// and a pod whose claim does not exist stays Pending with the scheduler's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_validated_and_pods_wait_for_theirs() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let run = kubectl_for(&cluster);
    let no_size = cluster.work_dir().join("no-size.yaml");
    std::fs::write(
        &no_size,
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: bad\nspec:\n  \
         accessModes: [ReadWriteOnce]\n",
    )
    .expect("write manifest");
    let orphan = cluster.work_dir().join("orphan.yaml");
    std::fs::write(
        &orphan,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: orphan\nspec:\n  containers:\n  \
         - {name: c, image: busybox}\n  volumes:\n  - name: data\n    \
         persistentVolumeClaim: {claimName: missing}\n",
    )
    .expect("write manifest");
    let client = cluster.client();
    let (refused, created) = tokio::task::spawn_blocking(move || {
        let refused = run(&["create", "-f", no_size.to_str().expect("utf-8 path")]);
        let created = run(&["create", "-f", orphan.to_str().expect("utf-8 path")]);
        (refused, created)
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "accepted: {stderr}");
    assert!(
        stderr.contains(
            "The PersistentVolumeClaim \"bad\" is invalid: spec.resources[storage]: Required value"
        ),
        "{stderr}"
    );
    assert!(created.status.success());
    // The API's answer itself: 422, the cause's field is upstream's path.
    let claims = Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(
        client.clone(),
        "default",
    );
    let body: k8s_openapi::api::core::v1::PersistentVolumeClaim = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "bad"}, "spec": {"accessModes": ["ReadWriteOnce"]}}),
    )
    .expect("claim");
    let err = claims.create(&body).await.expect_err("refused");
    let status = err.api().expect("an API status");
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    let causes = status
        .details
        .as_ref()
        .and_then(|d| d.causes.clone())
        .unwrap_or_default();
    assert_eq!(causes[0].field.as_deref(), Some("spec.resources[storage]"));
    // The pod's claim does not exist: unschedulable, with the scheduler's reason.
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut message = String::new();
    for _ in 0..100 {
        let p = pods.get("orphan").await.expect("pod");
        let cond = p
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "PodScheduled");
        if let Some(c) = cond {
            message = c.message.unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        message
            .starts_with("0/1 nodes are available: persistentvolumeclaim \"missing\" not found."),
        "{message}"
    );
    cluster.shutdown().await.expect("clean shutdown");
}

/// `kubectl top`: discovery lists `metrics.k8s.io`, the API server asks the kubelets'
/// `/stats/summary`, and the sim runtime reports the usage the pods' annotations declare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_top_shows_pod_and_node_usage() {
    let cluster = Cluster::builder().nodes(2).start().await.expect("start");
    let run = kubectl_for(&cluster);
    let manifest = cluster.work_dir().join("hog.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: hog\nspec:\n  replicas: 2\n  \
         selector:\n    matchLabels:\n      app: hog\n  template:\n    metadata:\n      \
         labels:\n        app: hog\n      annotations:\n        \
         sim.orch.dev/cpu-usage: 250m\n        sim.orch.dev/memory-usage: 64Mi\n    spec:\n      \
         containers:\n      - name: hog\n        image: busybox\n",
    )
    .expect("write manifest");
    let (pods, nodes) = tokio::task::spawn_blocking(move || {
        let out = run(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Until both pods run and their kubelets report them (bounded).
        let lines = |out: &std::process::Output| -> Vec<String> {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let pods = loop {
            let out = run(&["top", "pods", "-l", "app=hog"]);
            let l = lines(&out);
            if out.status.success() && l.len() == 3 {
                break l;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "kubectl top pods: {l:?} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(300));
        };
        let out = run(&["top", "nodes"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (pods, lines(&out))
    })
    .await
    .expect("join");
    let header: Vec<&str> = pods[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "CPU(cores)", "MEMORY(bytes)"]);
    for row in &pods[1..] {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert!(cols[0].starts_with("hog-"), "{row}");
        assert_eq!(cols[1..], ["250m", "64Mi"], "{row}");
    }
    let header: Vec<&str> = nodes[0].split_whitespace().collect();
    assert_eq!(header[..2], ["NAME", "CPU(cores)"]);
    assert!(header.contains(&"MEMORY(bytes)"), "{header:?}");
    assert_eq!(nodes.len(), 3, "both nodes: {nodes:?}");
    // The nodes' usage is the sum of their pods': 500m and 128Mi in all.
    let (mut cpu, mut mem) = (0, 0);
    for row in &nodes[1..] {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let m = cols[1].strip_suffix('m').expect("millicores");
        cpu += m.parse::<i64>().expect("cpu");
        let mi = cols[3].strip_suffix("Mi").expect("MiB");
        mem += mi.parse::<i64>().expect("memory");
    }
    assert_eq!((cpu, mem), (500, 128), "{nodes:?}");
    cluster.shutdown().await.expect("clean shutdown");
}

/// A StatefulSet with a volumeClaimTemplate: each pod gets its claim `data-db-<n>`, bound by the
/// local provisioner on the pod's node; a deleted pod comes back with the same name and the same
/// claim (and so the same volume), and the claims outlive a scale-down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_set_pods_keep_their_claims() {
    let cluster = Cluster::builder().nodes(2).start().await.expect("start");
    let run = kubectl_for(&cluster);
    let manifest = cluster.work_dir().join("sts-pvc.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: "db:1"
        volumeMounts: [{name: data, mountPath: /var/lib/db}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#,
    )
    .expect("write manifest");
    let raw = kubectl_for(&cluster);
    let kubectl = must_succeed(run);
    let (claims, volume_before, volume_after, node_before, node_after, kept) =
        tokio::task::spawn_blocking(move || {
            kubectl(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
            kubectl(&["rollout", "status", "statefulset/db", "--timeout=60s"]);
            let claims = kubectl(&[
                "get",
                "pvc",
                "-l",
                "app=db",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}={.status.phase} {end}",
            ]);
            let volume = |k: &dyn Fn(&[&str]) -> String| {
                k(&[
                    "get",
                    "pvc",
                    "data-db-1",
                    "-o",
                    "jsonpath={.spec.volumeName}",
                ])
            };
            let node = |k: &dyn Fn(&[&str]) -> String| {
                k(&["get", "pod", "db-1", "-o", "jsonpath={.spec.nodeName}"])
            };
            let volume_before = volume(&kubectl);
            let node_before = node(&kubectl);
            // Not `--wait=true`: kubectl's wait misses the deletion when the controller has
            // already created the next `db-1` by the time it lists (it then waits for that
            // one to go); the new pod's UID tells instead.
            let uid = |k: &dyn Fn(&[&str]) -> String| {
                k(&["get", "pod", "db-1", "-o", "jsonpath={.metadata.uid}"])
            };
            let uid_before = uid(&kubectl);
            kubectl(&["delete", "pod", "db-1", "--wait=false"]);
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let now = raw(&["get", "pod", "db-1", "-o", "jsonpath={.metadata.uid}"]);
                if now.status.success() && now.stdout.as_slice() != uid_before.as_bytes() {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "db-1 not replaced");
                std::thread::sleep(Duration::from_millis(200));
            }
            kubectl(&["rollout", "status", "statefulset/db", "--timeout=60s"]);
            kubectl(&["wait", "--for=condition=Ready", "pod/db-1", "--timeout=60s"]);
            let volume_after = volume(&kubectl);
            let node_after = node(&kubectl);
            kubectl(&["scale", "statefulset/db", "--replicas=1"]);
            kubectl(&["wait", "--for=delete", "pod/db-1", "--timeout=60s"]);
            let kept = kubectl(&["get", "pvc", "data-db-1", "-o", "jsonpath={.status.phase}"]);
            (
                claims,
                volume_before,
                volume_after,
                node_before,
                node_after,
                kept,
            )
        })
        .await
        .expect("join");
    assert_eq!(claims.trim(), "data-db-0=Bound data-db-1=Bound");
    assert!(volume_before.starts_with("pvc-"), "{volume_before}");
    assert_eq!(
        volume_after, volume_before,
        "the same claim, the same volume"
    );
    assert_eq!(
        node_after, node_before,
        "the volume's node affinity brings it back"
    );
    assert_eq!(kept, "Bound", "claims outlive a scale-down (Retain)");
    cluster.shutdown().await.expect("clean shutdown");
}

/// `kubectl autoscale` end to end: pods using 200 % of their CPU request against a 50 % target
/// make the HorizontalPodAutoscaler scale the Deployment up through its scale subresource, by
/// at most `max(2 × current, 4)` per step, to `--max`; `kubectl get hpa` shows the figure and
/// `kubectl describe` the rescale events and the limit that stopped it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_autoscale_scales_a_deployment_on_cpu() {
    let cluster = Cluster::builder().nodes(2).start().await.expect("start");
    let run = must_succeed(kubectl_for(&cluster));
    let manifest = cluster.work_dir().join("busy.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: busy\nspec:\n  replicas: 1\n  \
         selector:\n    matchLabels:\n      app: busy\n  template:\n    metadata:\n      \
         labels:\n        app: busy\n      annotations:\n        \
         sim.orch.dev/cpu-usage: 400m\n        sim.orch.dev/memory-usage: 32Mi\n    spec:\n      \
         containers:\n      - name: app\n        image: busybox\n        resources:\n          \
         requests:\n            cpu: 200m\n",
    )
    .expect("write manifest");
    let (hpa, describe, replicas) = tokio::task::spawn_blocking(move || {
        run(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
        run(&["rollout", "status", "deployment/busy", "--timeout=60s"]);
        run(&[
            "autoscale",
            "deployment",
            "busy",
            "--cpu-percent=50",
            "--min=1",
            "--max=5",
        ]);
        // Two rescales: 1 → 4 (the rate limit), then 4 → 5 (maxReplicas) once the new pods
        // have figures from after their readiness; each sync is 15 s apart.
        let deadline = std::time::Instant::now() + Duration::from_secs(150);
        loop {
            let st = run(&[
                "get",
                "hpa",
                "busy",
                "-o",
                "jsonpath={.status.currentReplicas}/{.status.desiredReplicas}",
            ]);
            if st == "5/5" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "hpa status {st}");
            std::thread::sleep(Duration::from_millis(500));
        }
        (
            run(&["get", "hpa", "busy"]),
            run(&["describe", "hpa", "busy"]),
            run(&[
                "get",
                "deployment",
                "busy",
                "-o",
                "jsonpath={.spec.replicas}",
            ]),
        )
    })
    .await
    .expect("join");
    assert_eq!(replicas, "5");
    let row: Vec<&str> = hpa
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..4],
        ["busy", "Deployment/busy", "cpu:", "200%/50%"],
        "{hpa}"
    );
    assert_eq!(row[4..7], ["1", "5", "5"], "{hpa}");
    for line in [
        "New size: 4; reason: cpu resource utilization (percentage of request) above target",
        "New size: 5; reason: cpu resource utilization (percentage of request) above target",
    ] {
        assert!(describe.contains(line), "{line:?} in:\n{describe}");
    }
    let limited = describe
        .lines()
        .find(|l| l.trim_start().starts_with("ScalingLimited"))
        .expect("ScalingLimited condition");
    assert!(
        limited.contains("True") && limited.contains("TooManyReplicas"),
        "{limited}"
    );
    cluster.shutdown().await.expect("clean shutdown");
}

/// A Job's `podFailurePolicy` ends it on the first pod that exits with the listed code (no
/// retries up to `backoffLimit`), and `backoffLimitPerIndex` fails an Indexed Job's indexes
/// one by one; `kubectl wait --for=condition=failed` sees both, with upstream's reasons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_failure_policies_end_jobs_as_upstream() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let kubectl = must_succeed(kubectl_for(&cluster));
    let manifest = cluster.work_dir().join("jobs.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: check\nspec:\n  backoffLimit: 6\n  \
         podFailurePolicy:\n    rules:\n    - action: FailJob\n      onExitCodes:\n        \
         containerName: main\n        operator: In\n        values: [42]\n  template:\n    \
         metadata:\n      annotations:\n        sim.orch.dev/run-seconds: \"1\"\n        \
         sim.orch.dev/exit-code: \"42\"\n    spec:\n      restartPolicy: Never\n      \
         containers:\n      - name: main\n        image: busybox\n---\n\
         apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: idx\nspec:\n  completions: 2\n  \
         parallelism: 2\n  completionMode: Indexed\n  backoffLimitPerIndex: 0\n  template:\n    \
         metadata:\n      annotations:\n        sim.orch.dev/run-seconds: \"1\"\n        \
         sim.orch.dev/exit-code: \"1\"\n    spec:\n      restartPolicy: Never\n      \
         containers:\n      - name: main\n        image: busybox\n",
    )
    .expect("write manifest");
    let got = tokio::task::spawn_blocking(move || {
        kubectl(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
        let mut got = Vec::new();
        for job in ["check", "idx"] {
            kubectl(&[
                "wait",
                "--for=condition=failed",
                &format!("job/{job}"),
                "--timeout=60s",
            ]);
            got.push(kubectl(&[
                "get",
                "job",
                job,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Failed\")].reason}|\
                 {.status.conditions[?(@.type==\"Failed\")].message}|{.status.failed}|\
                 {.status.failedIndexes}",
            ]));
        }
        got
    })
    .await
    .expect("join");
    let check: Vec<&str> = got[0].split('|').collect();
    assert_eq!(check[0], "PodFailurePolicy");
    assert!(
        check[1].starts_with("Container main for pod default/check-")
            && check[1].ends_with("failed with exit code 42 matching FailJob rule at index 0"),
        "{}",
        check[1]
    );
    assert_eq!(check[2], "1", "no retry");
    assert_eq!(got[1], "FailedIndexes|Job has failed indexes|2|0,1");
    cluster.shutdown().await.expect("clean shutdown");
}

/// The `kubectl create <generator>` commands of kubectl 1.27 and 1.33 make the objects they
/// describe. kubectl 1.33 sends these bodies as protobuf (checked in its `-v=8` log), decoded
/// through the `k8s-pb` wire types; 1.27 sends JSON. Both must give the same objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_commands_make_the_same_objects_in_protobuf_and_json() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    for minor in ["1.27", "1.33"] {
        let bin = common::bundled_kubectl(minor)
            .unwrap_or_else(|| panic!("kubectl.{minor} is not installed beside kubectl"));
        let raw = kubectl_bin_for(&cluster, bin, &format!("cache-{minor}"));
        let ns = format!("pb-{}", minor.replace('.', ""));
        let check = tokio::task::spawn_blocking(move || {
            let ok = must_succeed(&raw);
            let get = |args: &[&str]| -> serde_json::Value {
                let mut all = args.to_vec();
                all.extend(["-n", ns.as_str(), "-o", "json"]);
                serde_json::from_str(&ok(&[&["get"], all.as_slice()].concat())).expect("json")
            };
            let log = raw(&["create", "namespace", &ns, "-v=8"]);
            assert!(
                log.status.success(),
                "{}",
                String::from_utf8_lossy(&log.stderr)
            );
            let sent_protobuf = String::from_utf8_lossy(&log.stderr)
                .contains("Content-Type: application/vnd.kubernetes.protobuf");
            let n = ns.as_str();
            ok(&[
                "create",
                "deployment",
                "web",
                "--image=nginx:1.27",
                "--replicas=2",
                "--port=80",
                "-n",
                n,
            ]);
            ok(&["create", "configmap", "cm", "--from-literal=a=b", "-n", n]);
            ok(&[
                "create",
                "secret",
                "generic",
                "s",
                "--from-literal=pw=hunter2",
                "-n",
                n,
            ]);
            ok(&["create", "serviceaccount", "robot", "-n", n]);
            ok(&[
                "create",
                "job",
                "once",
                "--image=busybox",
                "-n",
                n,
                "--",
                "echo",
                "hi",
            ]);
            ok(&[
                "create",
                "cronjob",
                "tick",
                "--image=busybox",
                "--schedule=*/5 * * * *",
                "-n",
                n,
                "--",
                "date",
            ]);
            ok(&[
                "create",
                "service",
                "clusterip",
                "web",
                "--tcp=80:8080",
                "-n",
                n,
            ]);
            ok(&[
                "create",
                "poddisruptionbudget",
                "web",
                "--selector=app=web",
                "--min-available=1",
                "-n",
                n,
            ]);
            ok(&[
                "create",
                "priorityclass",
                &format!("{n}-high"),
                "--value=1000",
                "--description=batch",
            ]);

            let d = get(&["deployment", "web"]);
            assert_eq!(d["spec"]["replicas"], 2);
            let c = &d["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(
                (&c["name"], &c["image"]),
                (&"nginx".into(), &"nginx:1.27".into())
            );
            assert_eq!(c["ports"][0]["containerPort"], 80);
            assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
            assert!(d["metadata"]["creationTimestamp"].is_string());
            assert_eq!(get(&["configmap", "cm"])["data"]["a"], "b");
            assert_eq!(get(&["secret", "s"])["data"]["pw"], "aHVudGVyMg==");
            assert_eq!(
                get(&["serviceaccount", "robot"])["metadata"]["name"],
                "robot"
            );
            let job = get(&["job", "once"]);
            assert_eq!(
                job["spec"]["template"]["spec"]["containers"][0]["command"],
                serde_json::json!(["echo", "hi"])
            );
            assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
            let cj = get(&["cronjob", "tick"]);
            assert_eq!(cj["spec"]["schedule"], "*/5 * * * *");
            let svc = get(&["service", "web"]);
            assert_eq!(svc["spec"]["ports"][0]["port"], 80);
            assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
            assert_eq!(svc["spec"]["selector"]["app"], "web");
            let pdb = get(&["poddisruptionbudget", "web"]);
            assert_eq!(pdb["spec"]["minAvailable"], 1);
            let pc: serde_json::Value = serde_json::from_str(&ok(&[
                "get",
                "priorityclass",
                &format!("{n}-high"),
                "-o",
                "json",
            ]))
            .expect("json");
            assert_eq!(
                (&pc["value"], &pc["description"]),
                (&1000.into(), &"batch".into())
            );
            sent_protobuf
        });
        let sent_protobuf = check.await.expect("join");
        assert_eq!(
            sent_protobuf,
            minor == "1.33",
            "kubectl {minor} body encoding"
        );
    }
    cluster.shutdown().await.expect("clean shutdown");
}

/// Field ownership as kube-apiserver records it, seen through kubectl 1.27 and 1.33: every
/// write (`create deployment`, `scale`, `label`, `set image`, client-side `apply`) leaves an
/// Update entry of its manager in `managedFields` (shown by `--show-managed-fields` only), and a
/// server-side apply by another manager of a field client-side apply set is a conflict naming
/// `kubectl-client-side-apply` until forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_writes_record_managed_fields() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    for minor in ["1.27", "1.33"] {
        let bin = common::bundled_kubectl(minor)
            .unwrap_or_else(|| panic!("kubectl.{minor} is not installed beside kubectl"));
        // `kubectl scale` sends no fieldManager: its manager is the User-Agent's program name.
        let program = bin
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let raw = kubectl_bin_for(&cluster, bin, &format!("cache-{minor}"));
        let ns = format!("mf-{}", minor.replace('.', ""));
        let dir = cluster.work_dir().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let ok = must_succeed(&raw);
            let n = ns.as_str();
            let file = |name: &str, text: &str| {
                let p = dir.join(format!("{n}-{name}"));
                std::fs::write(&p, text).expect("write manifest");
                p.to_string_lossy().into_owned()
            };
            let get = |args: &[&str]| -> serde_json::Value {
                let all = [&["get"], args, &["-n", n, "-o", "json"]].concat();
                serde_json::from_str(&ok(&all)).expect("json")
            };
            // (manager, operation, subresource) of each entry, and one manager's fields.
            let entries = |o: &serde_json::Value| -> Vec<(String, String, String)> {
                o["metadata"]["managedFields"]
                    .as_array()
                    .expect("managedFields shown")
                    .iter()
                    .map(|e| {
                        let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
                        (s("manager"), s("operation"), s("subresource"))
                    })
                    .collect()
            };
            let fields = |o: &serde_json::Value, manager: &str| -> serde_json::Value {
                o["metadata"]["managedFields"]
                    .as_array()
                    .and_then(|a| a.iter().find(|e| e["manager"] == manager))
                    .map(|e| e["fieldsV1"].clone())
                    .unwrap_or_default()
            };
            let entry = |m: &str, op: &str, sub: &str| (m.to_string(), op.to_string(), sub.to_string());

            ok(&["create", "namespace", n]);
            ok(&["create", "deployment", "web", "--image=nginx:1.27", "-n", n]);
            ok(&["scale", "deployment", "web", "--replicas=3", "-n", n]);
            ok(&["label", "deployment", "web", "tier=front", "-n", n]);
            ok(&["set", "image", "deployment/web", "nginx=nginx:1.28", "-n", n]);
            let d = get(&["deployment", "web", "--show-managed-fields"]);
            let got = entries(&d);
            for want in [
                entry("kubectl-create", "Update", ""),
                entry(&program, "Update", "scale"),
                entry("kubectl-label", "Update", ""),
                entry("kubectl-set", "Update", ""),
            ] {
                assert!(got.contains(&want), "kubectl {minor}: no {want:?} in {got:?}");
            }
            // Only status writes own status (the controller's, once it has run).
            for e in d["metadata"]["managedFields"].as_array().into_iter().flatten() {
                let status = e["fieldsV1"].get("f:status").is_some();
                assert_eq!(status, e["subresource"] == "status", "{e}");
            }
            let replicas = serde_json::json!({"f:spec": {"f:replicas": {}}});
            assert_eq!(fields(&d, &program), replicas, "scale owns replicas");
            let create = fields(&d, "kubectl-create");
            assert!(create["f:spec"].get("f:replicas").is_none(), "{create}");
            assert!(create["f:spec"]["f:template"]["f:spec"]["f:containers"]
                [r#"k:{"name":"nginx"}"#]
                .get("f:image")
                .is_none(), "set image took the image: {create}");
            assert!(create.get("f:status").is_none(), "{create}");
            assert_eq!(
                fields(&d, "kubectl-label")["f:metadata"]["f:labels"],
                serde_json::json!({"f:tier": {}})
            );
            // Hidden unless asked for.
            assert!(get(&["deployment", "web"])["metadata"]
                .get("managedFields")
                .is_none());

            // Client-side apply: create, then change a value (`--validate=false` here and below:
            // kubectl 1.27 validates against /openapi/v2).
            let cm = |mode: &str| {
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{mode: {mode}, size: big}}\n")
            };
            let csa = |f: &str| ok(&["apply", "--validate=false", "-f", f, "-n", n]);
            csa(&file("cm1.yaml", &cm("fast")));
            csa(&file("cm2.yaml", &cm("faster")));
            let c = get(&["configmap", "settings", "--show-managed-fields"]);
            assert_eq!(
                entries(&c),
                [entry("kubectl-client-side-apply", "Update", "")],
                "kubectl {minor}"
            );
            let csa = fields(&c, "kubectl-client-side-apply");
            assert!(csa["f:data"].get("f:mode").is_some(), "{csa}");

            // Server-side apply by another manager of a field client-side apply owns.
            let ssa = file("cm3.yaml", &cm("slow"));
            let out = raw(&[
                "apply",
                "--server-side",
                "--validate=false",
                "--field-manager=other",
                "-f",
                &ssa,
                "-n",
                n,
            ]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "kubectl {minor}: conflict accepted");
            assert!(
                err.contains(r#"conflict with "kubectl-client-side-apply" using v1"#)
                    && err.contains(".data.mode"),
                "kubectl {minor}: {err}"
            );
            ok(&[
                "apply",
                "--server-side",
                "--validate=false",
                "--field-manager=other",
                "--force-conflicts",
                "-f",
                &ssa,
                "-n",
                n,
            ]);
            let c = get(&["configmap", "settings", "--show-managed-fields"]);
            assert_eq!(c["data"]["mode"], "slow");
            // kubectl then hands client-side apply's fields to its server-side manager with a
            // JSON patch of managedFields (its csaupgrade), which the server takes as sent.
            assert_eq!(entries(&c), [entry("other", "Apply", "")], "kubectl {minor}");
            let other = fields(&c, "other");
            assert!(
                other["f:data"].get("f:mode").is_some() && other["f:data"].get("f:size").is_some(),
                "{other}"
            );
        })
        .await
        .expect("join");
    }
    cluster.shutdown().await.expect("clean shutdown");
}

/// kubectl's everyday commands get kube-apiserver's answers: system namespaces may not be
/// deleted, a Secret's `stringData` lands in `data`, `kubectl replace` of an unchanged pod
/// succeeds, PodTemplates are served with their columns, discovery carries
/// `storageVersionHash`, and `--replicas=0` sent as protobuf stays 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_kube_apiserver_answers() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let raw = kubectl_for(&cluster);
    let dir = cluster.work_dir().to_path_buf();
    let kubeconfig = cluster.kubeconfig().expect("kubeconfig").to_path_buf();
    tokio::task::spawn_blocking(move || {
        let ok = must_succeed(&raw);
        let file = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write manifest");
            p.to_string_lossy().into_owned()
        };
        let json = |args: &[&str]| -> serde_json::Value {
            let mut all = vec!["get"];
            all.extend(args);
            all.extend(["-o", "json"]);
            serde_json::from_str(&ok(&all)).expect("json")
        };

        let secret = file(
            "secret.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\n\
             data: {user: b2xk, pw: eA==}\nstringData: {user: admin}\n",
        );
        ok(&["apply", "-f", &secret]);
        let s = json(&["secret", "creds"]);
        assert_eq!(s["data"], serde_json::json!({"pw": "eA==", "user": "YWRtaW4="}));
        assert!(s.get("stringData").is_none(), "{s}");

        // Unscheduled (no node matches), so nothing but the client's fields could differ.
        let pod = file(
            "pod.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: waiting}\n\
             spec:\n  nodeSelector: {nowhere: \"true\"}\n  containers:\n  - {name: c, image: busybox}\n",
        );
        ok(&["create", "-f", &pod]);
        assert_eq!(
            json(&["pod", "waiting"])["status"]["qosClass"],
            "BestEffort",
            "set at creation, before any kubelet sees the pod"
        );
        assert_eq!(ok(&["replace", "-f", &pod]), "pod/waiting replaced");

        let template = file(
            "template.yaml",
            "apiVersion: v1\nkind: PodTemplate\nmetadata: {name: worker}\n\
             template:\n  metadata: {labels: {app: worker}}\n  spec:\n    containers:\n    \
             - {name: w, image: busybox}\n    - {name: x, image: nginx:1.27}\n",
        );
        ok(&["create", "-f", &template]);
        let table = ok(&["get", "podtemplates"]);
        let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            rows,
            [
                vec!["NAME", "CONTAINERS", "IMAGES", "POD", "LABELS"],
                vec!["worker", "w,x", "busybox,nginx:1.27", "app=worker"]
            ],
            "{table}"
        );
        let t = json(&["podtemplate", "worker"]);
        assert_eq!(
            t["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always",
            "the template is defaulted"
        );

        let discovery: serde_json::Value =
            serde_json::from_str(&ok(&["get", "--raw", "/api/v1"])).expect("json");
        let pods = discovery["resources"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == "pods"))
            .expect("pods listed");
        assert_eq!(pods["storageVersionHash"], "xPOwRZ+Yhw8=");

        let kubectl_133 = common::bundled_kubectl("1.33").expect("kubectl 1.33");
        let out = std::process::Command::new(kubectl_133)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["create", "deployment", "idle", "--image=nginx", "--replicas=0"])
            .output()
            .expect("kubectl 1.33");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(json(&["deployment", "idle"])["spec"]["replicas"], 0);

        let out = raw(&["delete", "namespace", "--all", "--wait=false"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        for ns in ["default", "kube-system", "kube-public"] {
            assert!(
                stderr.contains(&format!(
                    "namespaces \"{ns}\" is forbidden: this namespace may not be deleted"
                )),
                "{stderr}"
            );
        }
        let left = ok(&["get", "namespaces", "-o", "name"]);
        for ns in ["default", "kube-system", "kube-public"] {
            assert!(left.contains(&format!("namespace/{ns}")), "{left}");
        }
    })
    .await
    .expect("join");
    cluster.shutdown().await.expect("clean shutdown");
}

/// `autoscaling/v1` HorizontalPodAutoscalers are served from the stored `autoscaling/v2`
/// objects: kubectl 1.27's `autoscale` (which posts v1) works, v1 reads show
/// `targetCPUUtilizationPercentage`, a v1 patch keeps the v2-only metrics (they travel in an
/// annotation), and v2 reads see one object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscaling_v1_is_served_by_conversion() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let kubectl_127 = kubectl_bin_for(
        &cluster,
        common::bundled_kubectl("1.27").expect("kubectl 1.27"),
        "cache-1.27",
    );
    let raw = kubectl_for(&cluster);
    let dir = cluster.work_dir().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let ok = must_succeed(&raw);
        let ok_127 = must_succeed(&kubectl_127);
        let json = |args: &[&str]| -> serde_json::Value {
            let mut all = vec!["get"];
            all.extend(args);
            all.extend(["-o", "json"]);
            serde_json::from_str(&ok(&all)).expect("json")
        };
        ok(&["create", "deployment", "web", "--image=nginx"]);
        ok_127(&["autoscale", "deployment", "web", "--max=4", "--cpu-percent=70"]);
        let v1 = json(&["horizontalpodautoscalers.v1.autoscaling", "web"]);
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
        let v2 = json(&["horizontalpodautoscalers.v2.autoscaling", "web"]);
        assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 70);

        // A v2-only metric survives a v1 read-modify-write.
        ok(&[
            "patch",
            "horizontalpodautoscalers.v2.autoscaling",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"metrics":[
                {"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":70}}},
                {"type":"Resource","resource":{"name":"memory","target":{"type":"AverageValue","averageValue":"100Mi"}}}]}}"#,
        ]);
        let v1 = json(&["horizontalpodautoscalers.v1.autoscaling", "web"]);
        assert!(
            v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]
                .as_str()
                .is_some_and(|m| m.contains("memory")),
            "{v1}"
        );
        let file = dir.join("hpa-v1.json");
        let mut edited = v1.clone();
        edited["spec"]["maxReplicas"] = 6.into();
        std::fs::write(&file, edited.to_string()).expect("write");
        ok(&["replace", "-f", &file.to_string_lossy()]);
        ok(&[
            "patch",
            "horizontalpodautoscalers.v1.autoscaling",
            "web",
            "-p",
            r#"{"spec":{"targetCPUUtilizationPercentage":50}}"#,
        ]);
        let v2 = json(&["horizontalpodautoscalers.v2.autoscaling", "web"]);
        assert_eq!(v2["spec"]["maxReplicas"], 6);
        let metrics = v2["spec"]["metrics"].as_array().expect("metrics");
        assert_eq!(metrics.len(), 2, "{v2}");
        assert!(metrics.iter().any(|m| m["resource"]["name"] == "memory"));
        assert!(metrics
            .iter()
            .any(|m| m["resource"]["target"]["averageUtilization"] == 50));
        assert!(
            v2["metadata"]["annotations"]
                .get("autoscaling.alpha.kubernetes.io/metrics")
                .is_none(),
            "round-trip annotations are not stored: {v2}"
        );
    })
    .await
    .expect("join");
    cluster.shutdown().await.expect("clean shutdown");
}

/// ResourceQuota and LimitRange end to end with kubectl: `kubectl create quota` (protobuf) and
/// a scoped quota from a manifest, a LimitRange whose defaults a pod without resources gets
/// (and which count against the quota), pods refused with upstream's messages once the quota
/// is full or a limit is over the LimitRange's max, `kubectl get quota|limits` and `kubectl
/// describe quota|limits` as upstream prints them, and a deleted pod's quota given back by the
/// controller so that a new pod fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_quota_and_limit_ranges() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let run = kubectl_for(&cluster);
    let manifests = cluster.work_dir().join("quota.yaml");
    std::fs::write(
        &manifests,
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits, namespace: quota}\nspec:\n  \
         limits:\n  - type: Container\n    max: {cpu: '1'}\n    default: {cpu: 500m, memory: 128Mi}\n    \
         defaultRequest: {cpu: 250m, memory: 64Mi}\n---\napiVersion: v1\nkind: ResourceQuota\n\
         metadata: {name: besteffort, namespace: quota}\nspec:\n  hard: {pods: '5'}\n  scopes: [BestEffort]\n",
    )
    .expect("write manifests");
    let big = cluster.work_dir().join("big.yaml");
    std::fs::write(
        &big,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: big, namespace: quota}\nspec:\n  containers:\n  \
         - name: c\n    image: nginx\n    resources: {limits: {cpu: '2'}}\n",
    )
    .expect("write pod");
    tokio::task::spawn_blocking(move || {
        let ok = must_succeed(&run);
        // Waits (bounded) until `status.used` of quota `q` reads `want`.
        let wait_used = |q: &str, want: &str, what: &str| {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let got = ok(&["get", "quota", q, "-n", "quota", "-o", "jsonpath={.status.used}"]);
                if got == want {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "{what}: {got:?}, want {want:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        ok(&["create", "namespace", "quota"]);
        ok(&["apply", "-f", manifests.to_str().expect("utf-8 path")]);
        assert_eq!(
            ok(&["create", "quota", "compute", "-n", "quota", "--hard=pods=2,requests.cpu=1"]),
            "resourcequota/compute created"
        );
        wait_used(
            "compute",
            r#"{"pods":"0","requests.cpu":"0"}"#,
            "the controller counts the empty namespace",
        );
        // A pod without resources gets the LimitRange's defaults, which count against quota.
        ok(&["run", "p1", "-n", "quota", "--image=nginx"]);
        assert_eq!(
            ok(&["get", "pod", "p1", "-n", "quota", "-o", "jsonpath={.spec.containers[0].resources}"]),
            r#"{"limits":{"cpu":"500m","memory":"128Mi"},"requests":{"cpu":"250m","memory":"64Mi"}}"#
        );
        assert_eq!(
            ok(&[
                "get",
                "pod",
                "p1",
                "-n",
                "quota",
                "-o",
                r"jsonpath={.metadata.annotations.kubernetes\.io/limit-ranger}"
            ]),
            "LimitRanger plugin set: cpu, memory request for container p1; cpu, memory limit for container p1"
        );
        ok(&["run", "p2", "-n", "quota", "--image=nginx"]);
        let refused = run(&["run", "p3", "-n", "quota", "--image=nginx"]);
        assert!(!refused.status.success());
        assert_eq!(
            String::from_utf8_lossy(&refused.stderr).trim(),
            "Error from server (Forbidden): pods \"p3\" is forbidden: exceeded quota: compute, \
             requested: pods=1, used: pods=2, limited: pods=2"
        );
        let over = run(&["create", "-f", big.to_str().expect("utf-8 path")]);
        assert!(!over.status.success());
        let err = String::from_utf8_lossy(&over.stderr);
        assert!(
            err.contains("pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"),
            "{err}"
        );
        // No pod is BestEffort (they all got defaults): the scoped quota counts none.
        wait_used("besteffort", r#"{"pods":"0"}"#, "the scoped quota");
        let table = ok(&["get", "quota", "-n", "quota"]);
        let header: Vec<&str> = table.lines().next().unwrap_or("").split_whitespace().collect();
        assert_eq!(header, ["NAME", "AGE", "REQUEST", "LIMIT"], "{table}");
        assert!(
            table.lines().any(|l| l.starts_with("compute ")
                && l.contains("pods: 2/2, requests.cpu: 500m/1")),
            "{table}"
        );
        let limits = ok(&["get", "limits", "-n", "quota"]);
        let header: Vec<&str> = limits.lines().next().unwrap_or("").split_whitespace().collect();
        assert_eq!(header, ["NAME", "CREATED", "AT"], "{limits}");
        let rows = |text: &str| -> Vec<Vec<String>> {
            text.lines()
                .map(|l| l.split_whitespace().map(str::to_string).collect())
                .collect()
        };
        let described = ok(&["describe", "quota", "compute", "-n", "quota"]);
        let table = rows(&described);
        assert!(table.contains(&vec!["Name:".into(), "compute".into()]), "{described}");
        assert!(table.contains(&vec!["pods".into(), "2".into(), "2".into()]), "{described}");
        assert!(
            table.contains(&vec!["requests.cpu".into(), "500m".into(), "1".into()]),
            "{described}"
        );
        let described = ok(&["describe", "quota", "besteffort", "-n", "quota"]);
        assert!(
            described.contains("Scopes:     BestEffort")
                && described.contains("Matches all pods that do not have resource requirements set"),
            "{described}"
        );
        let described = ok(&["describe", "limits", "limits", "-n", "quota"]);
        let table = rows(&described);
        for row in [
            ["Container", "cpu", "-", "1", "250m", "500m", "-"],
            ["Container", "memory", "-", "-", "64Mi", "128Mi", "-"],
        ] {
            assert!(
                table.contains(&row.iter().map(|s| s.to_string()).collect()),
                "{row:?} in {described}"
            );
        }
        // Deleting a pod gives its share back once the controller recounts.
        ok(&["delete", "pod", "p1", "-n", "quota", "--wait=true"]);
        wait_used(
            "compute",
            r#"{"pods":"1","requests.cpu":"250m"}"#,
            "the controller gives p1's share back",
        );
        ok(&["run", "p3", "-n", "quota", "--image=nginx"]);
        wait_used("compute", r#"{"pods":"2","requests.cpu":"500m"}"#, "p3 charged");
    })
    .await
    .expect("join");
    cluster.shutdown().await.expect("clean shutdown");
}

/// `kubectl debug POD --image=busybox -c NAME -- sh -c 'echo hello-from-debug'` (kubectl 1.33
/// and 1.27; no `-it`, attach is not served yet) sends a strategic merge patch to
/// `pods/POD/ephemeralcontainers` (both versions; checked in their `-v=6` log) that adds an
/// ephemeral container; the kubelet (process runtime, for real logs) runs it once beside the
/// untouched app container, `kubectl logs POD -c NAME` shows its output and
/// `status.ephemeralContainerStatuses` its exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_runs_an_ephemeral_container() {
    let cluster = Cluster::builder()
        .runtime(Runtime::Process)
        .pod_network(orch_kubelet::runtime::process::PodNetwork::Host)
        .nodes(1)
        .start()
        .await
        .expect("start");
    let manifest = cluster.work_dir().join("sleeper.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sleeper\nspec:\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: busybox\n    \
         command: [sleep, '3600']\n",
    )
    .expect("write manifest");
    let runners: Vec<_> = ["1.33", "1.27"]
        .into_iter()
        .map(|minor| {
            let bin = common::bundled_kubectl(minor)
                .unwrap_or_else(|| panic!("kubectl {minor} beside the kubectl on PATH"));
            (
                minor,
                kubectl_bin_for(&cluster, bin, &format!("cache-{minor}")),
            )
        })
        .collect();
    tokio::task::spawn_blocking(move || {
        let ok = must_succeed(&runners[0].1);
        ok(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
        ok(&[
            "wait",
            "--for=condition=Ready",
            "pod/sleeper",
            "--timeout=60s",
        ]);
        let app = "jsonpath={.status.containerStatuses[0].containerID} \
                   {.status.containerStatuses[0].restartCount} {.status.phase}";
        let before = ok(&["get", "pod", "sleeper", "-o", app]);
        for (i, (minor, run)) in runners.iter().enumerate() {
            let name = format!("dbg-{}", minor.replace('.', "-"));
            let out = run(&[
                "debug",
                "sleeper",
                "--image=busybox",
                "-c",
                &name,
                "-v=6",
                "--",
                "sh",
                "-c",
                "echo hello-from-debug",
            ]);
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "kubectl {minor} debug: {log}");
            let patched = log
                .lines()
                .any(|l| l.contains("PATCH") && l.contains("/pods/sleeper/ephemeralcontainers"));
            assert!(patched, "kubectl {minor} patches the subresource: {log}");
            let ok = must_succeed(run);
            let state = format!("jsonpath={{.status.ephemeralContainerStatuses[{i}].state}}");
            let state = common::wait_for(
                "the debug container to exit",
                Duration::from_secs(30),
                || {
                    let s = ok(&["get", "pod", "sleeper", "-o", &state]);
                    if s.contains("terminated") {
                        Ok(s)
                    } else {
                        Err(s)
                    }
                },
            );
            let state: serde_json::Value = serde_json::from_str(&state).expect("state JSON");
            let done = &state["terminated"];
            assert_eq!(
                (&done["exitCode"], &done["reason"]),
                (&0.into(), &"Completed".into()),
                "kubectl {minor}: {state}"
            );
            assert_eq!(
                ok(&["logs", "sleeper", "-c", &name]),
                "hello-from-debug",
                "kubectl {minor}"
            );
        }
        let after = ok(&["get", "pod", "sleeper", "-o", app]);
        assert_eq!(
            after, before,
            "the app container is the same, never restarted"
        );
        assert!(after.ends_with(" 0 Running"), "{after}");
        ok(&["delete", "pod", "sleeper", "--wait=true"]);
    })
    .await
    .expect("join");
    cluster.shutdown().await.expect("clean shutdown");
}

/// Concurrent creates against a quota with the quota controller running: exactly the hard
/// limit is admitted (admission charges `status.used` with a compare-and-swap before each
/// write), every other create is refused with upstream's message, and the controller's recount
/// agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_exceed_a_quota() {
    use k8s_openapi::api::core::v1::ResourceQuota;
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let quotas: Api<ResourceQuota> = Api::namespaced(cluster.client(), "default");
    let q = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pods"}, "spec": {"hard": {"pods": "3"}}
    }))
    .expect("quota");
    quotas.create(&q).await.expect("create quota");
    let used = || async {
        quotas
            .get("pods")
            .await
            .expect("get quota")
            .status
            .and_then(|s| s.used)
            .and_then(|u| u.get("pods").map(|q| q.0.clone()))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while used().await.as_deref() != Some("0") {
        assert!(
            std::time::Instant::now() < deadline,
            "first sync within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let creates: Vec<_> = (0..10)
        .map(|i| {
            let pods = pods.clone();
            tokio::spawn(async move {
                let p: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("p-{i}")},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                }))
                .expect("pod");
                pods.create(&p).await
            })
        })
        .collect();
    let mut admitted = 0;
    for (i, c) in creates.into_iter().enumerate() {
        match c.await.expect("join") {
            Ok(_) => admitted += 1,
            Err(e) => assert_eq!(
                e.api().map(|a| (a.code, a.message.clone())),
                Some((
                    403,
                    format!(
                        "pods \"p-{i}\" is forbidden: exceeded quota: pods, requested: pods=1, \
                         used: pods=3, limited: pods=3"
                    )
                ))
            ),
        }
    }
    assert_eq!(admitted, 3);
    assert_eq!(
        pods.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        3
    );
    assert_eq!(used().await.as_deref(), Some("3"));
    cluster.shutdown().await.expect("clean shutdown");
}
