//! End to end `orch storage migrate` (cargo feature `etcd`; `scripts/test-all.sh` builds with
//! it): a cluster made by `orch up` on the embedded store is copied into a real etcd and back
//! into a fresh data directory; API servers on each copy serve the same objects with the same
//! UIDs in the same resourceVersion order, to real kubectl, and `orch up` runs the cluster on
//! the copy. And over TLS with a client certificate, between embedded stores the test fills and
//! reads itself.
#![cfg(feature = "etcd")]

mod common;
// The etcd process helper of the storage conformance suite.
#[allow(dead_code)]
#[path = "../orch-apiserver/tests/common/etcd.rs"]
mod etcd;

use common::{OrchProcess, TestEnv};
use etcd::EtcdServer;
use orch_apiserver::storage::{embedded::EmbeddedStore, ListOptions, Storage};
use orch_types::DynamicObject;
use std::process::{Command, Output};
use std::time::Duration;

/// The resources compared between the copies (written by users and controllers, not by an
/// API server starting up).
const COMPARED: &str = "deployments,replicasets,pods,configmaps";

fn start_etcd(env: &TestEnv) -> EtcdServer {
    let rt = tokio::runtime::Runtime::new().expect("a runtime to start etcd");
    rt.block_on(EtcdServer::start(env.path()))
}

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `orch storage migrate --from FROM --to TO EXTRA…`.
fn migrate_with(env: &TestEnv, from: &str, to: &str, extra: &[&str]) -> Output {
    Command::new(common::orch_bin())
        .current_dir(env.path())
        .args(["storage", "migrate", "--from", from, "--to", to])
        .args(extra)
        .output()
        .expect("run orch storage migrate")
}

/// `orch storage migrate --from FROM --to TO`.
fn migrate(env: &TestEnv, from: &str, to: &str) -> Output {
    migrate_with(env, from, to, &[])
}

fn assert_success(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "orch storage migrate failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `orch apiserver` alone (no controllers: the objects stay as stored) on `env`'s data dir.
fn apiserver(env: &TestEnv, name: &str, storage: &[&str]) -> OrchProcess {
    let _ = std::fs::remove_file(&env.kubeconfig);
    let data = env.data_dir();
    let mut args = vec![
        "apiserver",
        "--data-dir",
        path_str(&data),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(storage);
    let p = OrchProcess::spawn(name, env.path(), &args);
    env.wait_api_ready(Duration::from_secs(60));
    p
}

/// `kind/namespace/name uid` of the compared objects, in resourceVersion order.
fn objects_in_rv_order(env: &TestEnv) -> Vec<String> {
    let items = env
        .get_items(&[COMPARED, "--all-namespaces"])
        .expect("list the compared objects");
    let mut rows: Vec<(u64, String)> = items
        .iter()
        .map(|o| {
            let m = &o["metadata"];
            let rv = m["resourceVersion"]
                .as_str()
                .and_then(|rv| rv.parse().ok())
                .expect("a numeric resourceVersion");
            let row = format!(
                "{}/{}/{} {}",
                o["kind"].as_str().unwrap_or_default(),
                m["namespace"].as_str().unwrap_or_default(),
                m["name"].as_str().unwrap_or_default(),
                m["uid"].as_str().unwrap_or_default()
            );
            (rv, row)
        })
        .collect();
    rows.sort();
    rows.into_iter().map(|(_, row)| row).collect()
}

fn uid(env: &TestEnv, what: &str) -> String {
    env.kubectl(&["get", what, "-o", "jsonpath={.metadata.uid}"])
}

fn stop(mut p: OrchProcess) {
    assert_eq!(p.interrupt(Duration::from_secs(30)), Some(0), "{}", p.log());
}

#[test]
fn migrate_embedded_to_etcd_and_back() {
    let (a, b, c) = (TestEnv::new(), TestEnv::new(), TestEnv::new());
    let etcd_server = start_etcd(&a);

    // A cluster on the embedded store.
    let data_a = a.data_dir();
    let up = OrchProcess::spawn(
        "up-embedded",
        a.path(),
        &[
            "up",
            "--data-dir",
            path_str(&data_a),
            "--listen",
            "127.0.0.1:0",
            "--nodes",
            "1",
            "--runtime",
            "sim",
            "--storage",
            "embedded",
        ],
    );
    a.wait_api_ready(Duration::from_secs(60));
    a.wait_nodes_ready(1, Duration::from_secs(60));
    a.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    a.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    a.kubectl(&["create", "configmap", "settings", "--from-literal=k=v"]);
    let deployment_uid = uid(&a, "deployment/web");
    let configmap_uid = uid(&a, "configmap/settings");
    stop(up);

    // The objects as stored, served by an API server alone on the original store.
    let server = apiserver(&a, "apiserver-embedded", &["--storage", "embedded"]);
    let original = objects_in_rv_order(&a);
    stop(server);
    assert!(
        original.len() >= 5,
        "a Deployment, a ReplicaSet, 2 Pods and a ConfigMap at least: {original:?}"
    );

    // Into etcd (the store directory named directly).
    let to_etcd = format!("etcd:{}?prefix=/migrated", etcd_server.url);
    let out = migrate(
        &a,
        &format!("embedded:{}", path_str(&data_a.join("store"))),
        &to_etcd,
    );
    let summary = assert_success(&out);
    assert!(
        summary.contains("deployments.apps") && summary.contains("configmaps"),
        "{summary}"
    );
    let server = apiserver(
        &b,
        "apiserver-etcd",
        &[
            "--storage",
            "etcd",
            "--etcd-servers",
            &etcd_server.url,
            "--etcd-prefix",
            "/migrated",
        ],
    );
    assert_eq!(uid(&b, "deployment/web"), deployment_uid);
    assert_eq!(uid(&b, "configmap/settings"), configmap_uid);
    assert_eq!(
        b.kubectl(&["get", "configmap", "settings", "-o", "jsonpath={.data.k}"]),
        "v"
    );
    assert_eq!(objects_in_rv_order(&b), original);
    stop(server);

    // A second copy into the same etcd prefix is refused.
    let out = migrate(&a, &format!("embedded:{}", path_str(&data_a)), &to_etcd);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the target is not empty"), "{err}");

    // Back into a fresh data directory (named as the data dir of `orch up`).
    let data_c = c.data_dir();
    let out = migrate(&c, &to_etcd, &format!("embedded:{}", path_str(&data_c)));
    let summary = assert_success(&out);
    assert!(
        summary.contains(&format!("orch up --data-dir {}", path_str(&data_c))),
        "{summary}"
    );
    let server = apiserver(&c, "apiserver-embedded-copy", &["--storage", "embedded"]);
    assert_eq!(objects_in_rv_order(&c), original);
    stop(server);

    // The whole cluster runs on the copy.
    let _up = OrchProcess::spawn(
        "up-copy",
        c.path(),
        &[
            "up",
            "--data-dir",
            path_str(&data_c),
            "--listen",
            "127.0.0.1:0",
            "--nodes",
            "1",
            "--runtime",
            "sim",
        ],
    );
    c.wait_api_ready(Duration::from_secs(60));
    assert_eq!(uid(&c, "deployment/web"), deployment_uid);
    assert_eq!(uid(&c, "configmap/settings"), configmap_uid);
    c.kubectl(&["scale", "deployment", "web", "--replicas=3"]);
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
}

/// Keys, UIDs and data of every object of an embedded store, in resourceVersion order.
fn embedded_objects(dir: &std::path::Path) -> Vec<(String, Option<String>, String)> {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let store = EmbeddedStore::open(dir).expect("open the embedded store");
    let list = rt
        .block_on(store.list("/registry/", &ListOptions::default()))
        .expect("list the store");
    let mut items = list.items;
    items.sort_by_key(|(_, v)| v.mod_revision);
    items
        .into_iter()
        .map(|(k, v)| {
            let data = serde_json::to_string(&v.object.data).expect("JSON");
            (k, v.object.metadata.uid.clone(), data)
        })
        .collect()
}

#[test]
fn migrate_over_tls_with_a_client_certificate() {
    let env = TestEnv::new();
    let rt = tokio::runtime::Runtime::new().expect("a runtime to start etcd");
    let etcd_server = rt.block_on(EtcdServer::start_tls(env.path()));
    let tls = etcd_server.tls.as_ref().expect("TLS files");

    // A source store with objects updated out of creation order.
    let source = env.path().join("source").join("store");
    {
        let store = EmbeddedStore::open(&source).expect("open the source store");
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            let mut o = DynamicObject::new("v1", "ConfigMap", name);
            o.metadata.namespace = Some("default".into());
            o.metadata.uid = Some(format!("uid-{name}"));
            o.data.insert("data".into(), serde_json::json!({ "i": i }));
            let key = format!("/registry/core/configmaps/default/{name}");
            rt.block_on(store.create(&key, o.clone())).expect("create");
            if name == "a" {
                continue;
            }
            o.data
                .insert("data".into(), serde_json::json!({ "i": i * 10 }));
            rt.block_on(store.update(&key, o, None)).expect("update");
        }
        store.close();
    }
    let original = embedded_objects(&source);
    assert_eq!(original.len(), 3);

    let to_etcd = format!("etcd:{}", etcd_server.url);
    let flags = [
        "--etcd-cafile",
        path_str(&tls.ca),
        "--etcd-certfile",
        path_str(&tls.cert),
        "--etcd-keyfile",
        path_str(&tls.key),
    ];
    let from_source = format!("embedded:{}", path_str(&source));
    // Without the client certificate etcd refuses the connection.
    let out = migrate_with(&env, &from_source, &to_etcd, &flags[..2]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to etcd"), "{err}");

    assert_success(&migrate_with(&env, &from_source, &to_etcd, &flags));
    let copy = env.path().join("copy");
    let out = migrate_with(
        &env,
        &to_etcd,
        &format!("embedded:{}", path_str(&copy)),
        &flags,
    );
    assert_success(&out);
    assert_eq!(embedded_objects(&copy.join("store")), original);
}
