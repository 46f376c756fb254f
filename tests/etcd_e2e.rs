//! End to end on etcd (cargo feature `etcd`; `scripts/test-all.sh` builds with it): two
//! `orch apiserver` processes on one real etcd serve the same objects to real kubectl, a watch on
//! one sees the other's writes in order, a stale write through one is refused after a write
//! through the other, one survives the other's `kill -9`; and `orch up --storage etcd` keeps a
//! whole cluster's state in etcd across a restart with a fresh data dir; Events expire after
//! `--event-ttl` on etcd (a lease) as on the embedded store (here too: the suite is built with
//! the feature).
#![cfg(feature = "etcd")]

mod common;
// The etcd process helper of the storage conformance suite (its TLS half is unused here).
#[allow(dead_code)]
#[path = "../orch-apiserver/tests/common/etcd.rs"]
mod etcd;

use common::{OrchProcess, Split, TestEnv};
use etcd::EtcdServer;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn start_etcd(env: &TestEnv) -> EtcdServer {
    let rt = tokio::runtime::Runtime::new().expect("a runtime to start etcd");
    rt.block_on(EtcdServer::start(env.path()))
}

fn apiserver(env: &TestEnv, name: &str, etcd: &EtcdServer) -> OrchProcess {
    let data = env.data_dir();
    let p = OrchProcess::spawn(
        name,
        env.path(),
        &[
            "apiserver",
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
            "--storage",
            "etcd",
            "--etcd-servers",
            &etcd.url,
            "--etcd-prefix",
            "/e2e",
        ],
    );
    env.wait_api_ready(Duration::from_secs(60));
    p
}

/// The lines `kubectl get configmaps --watch-only -o name` prints through `env`'s server.
fn watch_names(env: &TestEnv) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["get", "configmaps", "--watch-only", "-o", "name"])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run kubectl get --watch-only");
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

#[test]
fn two_api_servers_share_one_etcd() {
    let (a, b) = (TestEnv::new(), TestEnv::new());
    let etcd = start_etcd(&a);
    let mut server_a = apiserver(&a, "apiserver-a", &etcd);
    let server_b = apiserver(&b, "apiserver-b", &etcd);

    // A write through one server is read through the other.
    a.kubectl(&["create", "configmap", "one", "--from-literal=k=v1"]);
    let got = b.kubectl(&["get", "configmap", "one", "-o", "jsonpath={.data.k}"]);
    assert_eq!(got, "v1");

    // A watch through B sees A's writes in order, each once.
    let (mut watch, lines) = watch_names(&b);
    // The watch is open once a write made after its start shows up.
    let mut probe = 0;
    common::wait_for(
        "the watch through B to open",
        Duration::from_secs(30),
        || {
            probe += 1;
            let label = format!("probe={probe}");
            a.kubectl(&["label", "configmap", "one", "--overwrite", &label]);
            lines
                .recv_timeout(Duration::from_secs(2))
                .map_err(|e| e.to_string())
        },
    );
    while lines.recv_timeout(Duration::from_millis(500)).is_ok() {}
    a.kubectl(&["create", "configmap", "two", "--from-literal=k=v"]);
    a.kubectl(&["patch", "configmap", "one", "-p", r#"{"data":{"k":"v2"}}"#]);
    a.kubectl(&["delete", "configmap", "two"]);
    a.kubectl(&["create", "configmap", "three"]);
    let seen: Vec<String> = (0..4)
        .map(|_| {
            lines
                .recv_timeout(Duration::from_secs(20))
                .expect("a watch event through B")
        })
        .collect();
    assert_eq!(
        seen,
        [
            "configmap/two",
            "configmap/one",
            "configmap/two",
            "configmap/three"
        ]
    );
    assert!(
        lines.recv_timeout(Duration::from_secs(1)).is_err(),
        "no duplicate event"
    );
    let _ = watch.kill();
    let _ = watch.wait();

    // A stale replace through B after a write through A is a 409.
    let stale = b.kubectl(&["get", "configmap", "one", "-o", "json"]);
    a.kubectl(&["label", "configmap", "one", "fresh=yes"]);
    let path = b.path().join("stale.json");
    std::fs::write(&path, stale).expect("write the stale object");
    let err = b
        .kubectl_try(&["replace", "-f", path.to_str().expect("utf-8 path")])
        .expect_err("a stale replace must fail");
    assert!(
        err.contains("the object has been modified"),
        "not a conflict: {err}"
    );

    // B keeps serving when A is killed, and sees everything A wrote.
    server_a.kill9();
    let names = b.kubectl(&["get", "configmaps", "-o", "name"]);
    assert!(
        names.contains("configmap/one") && names.contains("configmap/three"),
        "{names}"
    );
    b.kubectl(&["create", "configmap", "after-a"]);

    // B's /readyz follows etcd: with etcd stopped (SIGSTOP: its connections stay open, nothing
    // answers) the etcd check fails within its 2 s timeout; continued, B is ready again.
    let readyz = || b.kubectl_try(&["get", "--raw", "/readyz?verbose"]);
    assert!(readyz().is_ok_and(|out| out.contains("[+]etcd ok")));
    let signal = |sig: &str| {
        let pid = etcd.pid().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill {sig} {pid}");
    };
    signal("-STOP");
    let stopped = std::time::Instant::now();
    let err = common::wait_for(
        "B's /readyz to fail",
        Duration::from_secs(10),
        || match readyz() {
            Err(e) if e.contains("[-]etcd failed: reason withheld") => Ok(e),
            other => Err(format!("{other:?}")),
        },
    );
    eprintln!(
        "/readyz failed {:.1?} after etcd stopped: {err}",
        stopped.elapsed()
    );
    signal("-CONT");
    common::wait_for("B's /readyz to pass again", Duration::from_secs(10), || {
        readyz().map(drop)
    });
    drop(server_b);
}

#[test]
fn up_keeps_the_cluster_in_etcd() {
    let env = TestEnv::new();
    let etcd = start_etcd(&env);
    let up = |name: &str| {
        // A fresh data dir each time: the state must come back from etcd alone.
        let _ = std::fs::remove_dir_all(env.data_dir());
        let data = env.data_dir();
        OrchProcess::spawn(
            name,
            env.path(),
            &[
                "up",
                "--data-dir",
                data.to_str().expect("utf-8 path"),
                "--listen",
                "127.0.0.1:0",
                "--nodes",
                "1",
                "--runtime",
                "sim",
                "--storage",
                "etcd",
                "--etcd-servers",
                &etcd.url,
            ],
        )
    };
    let mut first = up("up-1");
    env.wait_api_ready(Duration::from_secs(60));
    env.wait_nodes_ready(1, Duration::from_secs(60));
    env.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    env.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let uid = env.kubectl(&["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(first.interrupt(Duration::from_secs(30)), Some(0));

    let _second = up("up-2");
    env.wait_api_ready(Duration::from_secs(60));
    assert_eq!(
        env.kubectl(&["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"]),
        uid
    );
    env.kubectl(&["scale", "deployment", "web", "--replicas=3"]);
    env.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
}

/// A v1 and an events.k8s.io/v1 Event, and a ConfigMap that must outlive them.
const EVENTS: &str = r#"
apiVersion: v1
kind: Event
metadata: {name: ev1, namespace: default}
involvedObject: {kind: Pod, name: p, namespace: default}
reason: Tested
message: hello
type: Normal
source: {component: e2e}
---
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: ev2, namespace: default}
eventTime: "2026-12-07T12:00:00.000000Z"
reportingController: e2e/test
reportingInstance: e2e-1
action: Test
reason: Tested
note: hello
type: Normal
regarding: {kind: Pod, name: p, namespace: default}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, namespace: default}
"#;

/// `orch apiserver --event-ttl 3s`, on the embedded store and on etcd: both kinds of Event are
/// gone (404) a few seconds after their write, not before, while the ConfigMap stays; an Event
/// written again lives on from that write.
#[test]
fn events_expire_after_the_event_ttl() {
    let etcd_env = TestEnv::new();
    let etcd = start_etcd(&etcd_env);
    for storage in ["embedded", "etcd"] {
        let env = TestEnv::new();
        let mut extra = vec!["--event-ttl", "3s"];
        if storage == "etcd" {
            extra.extend(["--storage", "etcd", "--etcd-servers", etcd.url.as_str()]);
        }
        let _api = Split::apiserver_with(&env, storage, &extra);
        let written = std::time::Instant::now();
        env.apply(EVENTS);
        env.kubectl(&["get", "events", "ev1"]);
        env.kubectl(&["get", "events.events.k8s.io", "ev2"]);
        // Written again after a second: ev1 lives three seconds from then.
        std::thread::sleep(Duration::from_secs(1));
        env.kubectl(&["annotate", "events", "ev1", "again=yes"]);
        let rewritten = std::time::Instant::now();
        let gone = |what: &str, name: &str| {
            common::wait_for(
                &format!("{storage}: {what} {name} to expire"),
                Duration::from_secs(20),
                || match env.kubectl_try(&["get", what, name]) {
                    Err(e) if e.contains("NotFound") => Ok(()),
                    other => Err(format!("{other:?}")),
                },
            )
        };
        gone("events.events.k8s.io", "ev2");
        let ev2_after = written.elapsed();
        gone("events", "ev1");
        let ev1_after = rewritten.elapsed();
        eprintln!("{storage}: ev2 gone after {ev2_after:?}, ev1 {ev1_after:?} after its rewrite");
        assert!(
            ev2_after >= Duration::from_secs(2),
            "{storage}: ev2 expired early"
        );
        assert!(
            ev1_after >= Duration::from_secs(2),
            "{storage}: ev1 expired early"
        );
        env.kubectl(&["get", "configmap", "cm"]);
    }
}
