//! `kubectl` (on PATH) against the API server over HTTP: create -f, get -o yaml, label,
//! get -w, delete. Slow (real processes), hence the file name.

use orch_apiserver::{kubeconfig::write_kubeconfig, serve, ApiServer, ApiServerConfig};
use std::process::{Command, Output, Stdio};

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl on PATH")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_kubectl_create_get_label_watch_delete() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::new(ApiServerConfig::embedded(dir.path().join("store"))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(api, listener, async move {
        let _ = rx.await;
    }));
    let manifest = dir.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\ndata:\n  greeting: hello\n",
    )
    .unwrap();
    let kc2 = kc.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let kc = kc2;
        let out = ok(&kubectl(
            &kc,
            &[
                "create",
                "-f",
                manifest.to_str().unwrap(),
                "--validate=false",
            ],
        ));
        assert!(out.contains("configmap/demo created"), "{out}");
        let y = ok(&kubectl(&kc, &["get", "configmap", "demo", "-o", "yaml"]));
        let v: serde_json::Value = serde_yaml_ng::from_str(&y).unwrap();
        assert_eq!(v["data"]["greeting"], "hello");
        assert!(v["metadata"]["uid"].is_string() && v["metadata"]["resourceVersion"].is_string());
        // get -w in the background sees the label change.
        let mut watch = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kc)
            .args([
                "get",
                "configmap",
                "demo",
                "-w",
                "-o",
                "name",
                "--request-timeout=20s",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(800));
        let out = ok(&kubectl(&kc, &["label", "configmap", "demo", "tier=web"]));
        assert!(out.contains("labeled"), "{out}");
        let labels = ok(&kubectl(
            &kc,
            &["get", "configmap", "-l", "tier=web", "-o", "name"],
        ));
        assert_eq!(labels.trim(), "configmap/demo");
        let missing = kubectl(&kc, &["get", "configmap", "nope"]);
        assert!(!missing.status.success());
        assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
        let out = ok(&kubectl(&kc, &["delete", "configmap", "demo"]));
        assert!(out.contains("deleted"), "{out}");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = watch.kill();
        let w = watch.wait_with_output().unwrap();
        let lines = String::from_utf8_lossy(&w.stdout)
            .lines()
            .filter(|l| l.contains("configmap/demo"))
            .count();
        assert!(
            lines >= 2,
            "watch saw {lines} updates: {}",
            String::from_utf8_lossy(&w.stdout)
        );
        let gone = kubectl(&kc, &["get", "configmap", "demo"]);
        assert!(!gone.status.success());
    })
    .await;
    let _ = tx.send(());
    let _ = server.await;
    outcome.unwrap();
}
