//! The controller of `examples/backup_controller.rs` (a typed controller of the custom kind
//! Backup of `examples/crd/backup-crd.yaml`), unchanged, three ways: in process against
//! `orch::Cluster`; over HTTP against `orch up`, the way the example's `main` runs it (a
//! kubeconfig and orch-apiserver's HTTP client), driven and checked with real kubectl; and in
//! the simulator on the virtual clock (`SimOptions::controllers`). Each time the Backup gets a
//! ConfigMap it controls and a status, both follow spec changes, and deleting the Backup
//! deletes the ConfigMap through the garbage collector.

mod common;

#[allow(dead_code)]
#[path = "../examples/backup_controller.rs"]
mod backup_controller;

use std::sync::Arc;
use std::time::Duration;

use backup_controller::{Backup, BackupController};
use common::{wait_for, TestEnv, Up};
use orch::sim::{Scenario, SimOptions, Simulation};
use orch_runtime::object::Kind;
use orch_types::client::{DeleteParams, Patch, PatchParams, PostParams, SharedClient};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

fn crd_manifest() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/crd/backup-crd.yaml");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn crd() -> Value {
    serde_yaml_ng::from_str(&crd_manifest()).expect("CRD YAML")
}

fn crd_resource() -> ApiResource {
    orch_types::registry::by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .expect("built-in")
        .api_resource()
}

fn config_maps() -> ApiResource {
    orch_types::registry::by_kind("v1", "ConfigMap")
        .expect("built-in")
        .api_resource()
}

fn backup(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "ops.example.org/v1", "kind": "Backup",
           "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

/// What the controller should have made of Backup `b` (wire form), if it has: `Ok` when the
/// ConfigMap `cm` (or its absence) and `b`'s status match the spec.
fn check(b: &Value, cm: Option<&Value>) -> Result<(), String> {
    let name = b["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &b["spec"];
    let cm = cm.ok_or_else(|| format!("no ConfigMap backup-{name} yet"))?;
    let want_data = json!({"database": spec["database"], "schedule": spec["schedule"]});
    if cm["data"] != want_data {
        return Err(format!("ConfigMap data {} != {want_data}", cm["data"]));
    }
    if cm["metadata"]["labels"]["backup"] != json!(name) {
        return Err(format!("labels {}", cm["metadata"]["labels"]));
    }
    let owners = &cm["metadata"]["ownerReferences"];
    let want_owner = json!([{"apiVersion": "ops.example.org/v1", "kind": "Backup",
        "name": name, "uid": b["metadata"]["uid"], "controller": true,
        "blockOwnerDeletion": true}]);
    if *owners != want_owner {
        return Err(format!("ownerReferences {owners} != {want_owner}"));
    }
    let want_status = json!({"workers": spec["workers"], "selector": format!("backup={name}")});
    if b["status"] != want_status {
        return Err(format!("status {} != {want_status}", b["status"]));
    }
    Ok(())
}

async fn get(c: &SharedClient, r: &ApiResource, name: &str) -> Option<Value> {
    c.get(r, Some("default"), name)
        .await
        .ok()
        .map(|o| o.to_value())
}

/// Polls `f` until it returns `Ok`, at most [`WAIT`] of wall time.
async fn eventually<T, Fut>(what: &str, mut f: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
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

/// Waits until the API server behind `c` serves Backups.
async fn served(c: &SharedClient) {
    eventually("Backups to be served", || async {
        let found = c.discover().await.map_err(|e| e.to_string())?;
        found
            .iter()
            .any(|d| d.resource.group == "ops.example.org" && d.resource.kind == "Backup")
            .then_some(())
            .ok_or_else(|| "not in discovery".to_string())
    })
    .await;
}

/// The Backup and its ConfigMap as the controller should have them, through `c`.
async fn converged(c: &SharedClient, name: &str) -> Result<(), String> {
    let b = get(c, &Backup::api_resource(), name)
        .await
        .ok_or("no Backup")?;
    let cm = get(c, &config_maps(), &format!("backup-{name}")).await;
    check(&b, cm.as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_process_against_a_cluster() {
    let cluster = orch::Cluster::builder()
        .nodes(0)
        .listen(None)
        .wait_ready(None)
        .start()
        .await
        .expect("cluster");
    let c = cluster.client();
    let crd = DynamicObject::from_value(crd()).unwrap();
    c.create(&crd_resource(), None, &crd, &PostParams::default())
        .await
        .expect("create CRD");
    served(&c).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ctl = tokio::spawn(backup_controller::run(c.clone(), async {
        let _ = stopped.await;
    }));

    let backups = Backup::api_resource();
    let obj = DynamicObject::from_value(backup(
        "nightly",
        json!({"database": "orders", "workers": 2}),
    ))
    .unwrap();
    c.create(&backups, Some("default"), &obj, &PostParams::default())
        .await
        .expect("create Backup");
    eventually("ConfigMap and status", || converged(&c, "nightly")).await;
    let b = get(&c, &backups, "nightly").await.unwrap();
    assert_eq!(b["spec"]["schedule"], "0 3 * * *", "the CRD's default");
    assert!(b["status"].get("lastRun").is_none());

    // The spec changes: the ConfigMap and the status follow.
    c.patch(
        &backups,
        Some("default"),
        "nightly",
        None,
        &Patch::Merge(
            json!({"spec": {"database": "sales", "schedule": "0 4 * * *", "workers": 5}}),
        ),
        &PatchParams::default(),
    )
    .await
    .expect("patch spec");
    eventually("the change to be followed", || async {
        let b = get(&c, &backups, "nightly").await.ok_or("no Backup")?;
        if b["status"]["workers"] != 5 {
            return Err(format!("status {}", b["status"]));
        }
        converged(&c, "nightly").await
    })
    .await;

    // Someone deletes the ConfigMap: it comes back.
    c.delete(
        &config_maps(),
        Some("default"),
        "backup-nightly",
        &DeleteParams::default(),
    )
    .await
    .expect("delete ConfigMap");
    eventually("the ConfigMap to come back", || converged(&c, "nightly")).await;

    // The Backup goes: the garbage collector takes the ConfigMap.
    c.delete(
        &backups,
        Some("default"),
        "nightly",
        &DeleteParams::default(),
    )
    .await
    .expect("delete Backup");
    eventually("the ConfigMap to go", || async {
        match get(&c, &config_maps(), "backup-nightly").await {
            None => Ok(()),
            Some(cm) => Err(format!("still there: {}", cm["metadata"])),
        }
    })
    .await;

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), ctl)
        .await
        .expect("the controller stops")
        .expect("the controller task");
    cluster.shutdown().await.expect("shutdown");
}

/// `kubectl get KIND NAME -o json` in `default`, `None` if it is not found.
fn kubectl_get(env: &TestEnv, kind: &str, name: &str) -> Result<Option<Value>, String> {
    match env.get_json(&[kind, name, "-n", "default"]) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.contains("NotFound") || e.contains("not found") => Ok(None),
        Err(e) => Err(e),
    }
}

fn kubectl_converged(env: &TestEnv, name: &str) -> Result<(), String> {
    let b = kubectl_get(env, "backup", name)?.ok_or("no Backup")?;
    let cm = kubectl_get(env, "configmap", &format!("backup-{name}"))?;
    check(&b, cm.as_ref())
}

#[test]
fn against_orch_up_over_http_with_kubectl() {
    let env = TestEnv::new();
    let up = Up::start(&env, 0, "sim", &[]);
    let _logs = common::LogsOnPanic(vec![env.path().to_path_buf()]);
    let _up = up;
    env.apply(&crd_manifest());
    wait_for("Backups to be served", WAIT, || {
        env.kubectl_try(&["get", "backups", "-n", "default"])
    });

    // The controller as the example's `main` runs it: a kubeconfig, the HTTP client, the live
    // driver, on its own runtime.
    let client: SharedClient = Arc::new(
        orch_apiserver::client::HttpClient::from_kubeconfig(&env.kubeconfig).expect("kubeconfig"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ctl = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(backup_controller::run(client, async {
                let _ = stopped.await;
            }));
    });

    env.apply(
        "apiVersion: ops.example.org/v1\nkind: Backup\nmetadata:\n  name: nightly\n  namespace: default\nspec:\n  database: orders\n  workers: 2\n",
    );
    wait_for("ConfigMap and status", WAIT, || {
        kubectl_converged(&env, "nightly")
    });

    // Spec changes through kubectl patch and kubectl scale (the scale subresource writes
    // spec.workers and reads status.workers, which the controller keeps).
    env.kubectl(&[
        "patch",
        "backup",
        "nightly",
        "-n",
        "default",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"database":"sales","schedule":"0 4 * * *"}}"#,
    ]);
    env.kubectl(&[
        "scale",
        "backup",
        "nightly",
        "-n",
        "default",
        "--replicas",
        "4",
    ]);
    wait_for("the changes to be followed", WAIT, || {
        let b = kubectl_get(&env, "backup", "nightly")?.ok_or("no Backup")?;
        if b["status"]["workers"] != 4 || b["spec"]["database"] != "sales" {
            return Err(format!("spec {} status {}", b["spec"], b["status"]));
        }
        kubectl_converged(&env, "nightly")
    });
    let out = env.kubectl(&[
        "get",
        "--raw",
        "/apis/ops.example.org/v1/namespaces/default/backups/nightly/scale",
    ]);
    let scale: Value = serde_json::from_str(&out).expect("Scale JSON");
    assert_eq!(scale["status"]["replicas"], 4, "{scale}");
    assert_eq!(scale["status"]["selector"], "backup=nightly", "{scale}");

    // kubectl delete: the garbage collector of `orch up` takes the ConfigMap.
    env.kubectl(&["delete", "backup", "nightly", "-n", "default"]);
    wait_for("the ConfigMap to go", WAIT, || {
        match kubectl_get(&env, "configmap", "backup-nightly")? {
            None => Ok(()),
            Some(cm) => Err(format!("still there: {}", cm["metadata"])),
        }
    });

    let _ = stop.send(());
    ctl.join().expect("the controller thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_simulator_on_the_virtual_clock() {
    let scenario = Scenario::from_yaml(
        "nodeGroups:\n- name: pool\n  count: 1\n  template: {status: {capacity: {cpu: \"2\", memory: 4Gi, pods: \"110\"}}}\n",
    )
    .expect("scenario");
    let opts = SimOptions {
        controllers: vec![Arc::new(BackupController)],
        ..Default::default()
    };
    let mut sim = Simulation::new(scenario, opts).await.expect("simulation");
    let c = sim.client();
    sim.apply(vec![crd()]).await.expect("apply CRD");
    // The API server's CRD controllers run on wall time, outside the simulation.
    served(&c).await;
    sim.apply(vec![backup(
        "nightly",
        json!({"database": "orders", "workers": 2}),
    )])
    .await
    .expect("apply Backup");
    let t0 = sim.now();
    sim.step(1.0).await;
    converged(&c, "nightly")
        .await
        .expect("converged after one step");
    assert!(sim.now() - t0 <= 1.0, "virtual time: {}", sim.now() - t0);
    let log = sim.event_log().join("\n");
    assert!(log.contains("APPLY Backup default/nightly"), "{log}");

    // A spec change applied later in virtual time is followed.
    sim.run_until(sim.now() + 3600.0, || false).await;
    sim.apply(vec![backup(
        "nightly",
        json!({"database": "sales", "workers": 7}),
    )])
    .await
    .expect("apply the change");
    sim.step(1.0).await;
    converged(&c, "nightly").await.expect("the change followed");
    let b = get(&c, &Backup::api_resource(), "nightly").await.unwrap();
    assert_eq!(b["status"]["workers"], 7);

    // Deleted (outside the engine, then shown to it): the simulated garbage collector takes
    // the ConfigMap.
    let backups = Backup::api_resource();
    c.delete(
        &backups,
        Some("default"),
        "nightly",
        &DeleteParams::default(),
    )
    .await
    .expect("delete Backup");
    sim.refresh(&backups, Some("default"), "nightly").await;
    sim.run_until(sim.now() + 10.0, || false).await;
    assert!(get(&c, &config_maps(), "backup-nightly").await.is_none());
}
