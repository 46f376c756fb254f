//! Disk full on the embedded store (issue 21): an API server whose data directory is on a small
//! tmpfs of the test's is written to until the filesystem is full. A write refused for lack of
//! space answers 500 with a Status naming the data directory and the full disk (as
//! kube-apiserver answers 500 when etcd reports `mvcc: database space exceeded`), reads keep
//! working from the store and the watch cache, and once a filler file placed on the same
//! filesystem beforehand is deleted, writes resume without a restart. Last, the store is
//! reopened on the same directory: every acknowledged write is there with its resourceVersion.
//!
//! Mounting needs root (CAP_SYS_ADMIN): without it the test says so and passes without running.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const NS: &str = "default";
/// Size of the tmpfs holding the data directory.
const FS_SIZE: &str = "12m";
/// The filler file, deleted to give space back.
const FILLER_BYTES: usize = 4 << 20;
/// Data in each ConfigMap: a few dozen fill the filesystem.
const VALUE_BYTES: usize = 96 << 10;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of [`FS_SIZE`] at `dir`; `None` when this process may not mount.
    fn mount(dir: &Path) -> Option<Self> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_SIZE}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Self {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// An in-process API server on the embedded store in `data`, on its own runtime.
struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    rt: Option<tokio::runtime::Runtime>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    fn start(data: &Path) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let config = orch_apiserver::ApiServerConfig::embedded(data);
        let (url, stop, task) = rt.block_on(async move {
            let api = orch_apiserver::ApiServer::open(config)
                .await
                .expect("open the API server");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!("http://{}", listener.local_addr().expect("addr"));
            let (stop, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let _ = orch_apiserver::serve(api, listener, async move {
                    let _ = rx.await;
                })
                .await;
            });
            (url, stop, task)
        });
        Self {
            url,
            stop: Some(stop),
            rt: Some(rt),
            task: Some(task),
        }
    }

    fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let (Some(rt), Some(task)) = (self.rt.take(), self.task.take()) {
            let _ =
                rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `(status, body as JSON)` of a request.
fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut resp = match (method, body) {
        ("POST", Some(b)) => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(b.to_string()),
        ("PUT", Some(b)) => agent
            .put(url)
            .header("Content-Type", "application/json")
            .send(b.to_string()),
        ("DELETE", _) => agent.delete(url).call(),
        _ => agent.get(url).call(),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().expect("read body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, json)
}

fn configmap(name: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"v": "x".repeat(VALUE_BYTES)},
    })
}

fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no resourceVersion: {obj}"))
        .to_string()
}

/// Name → resourceVersion of the ConfigMaps listed at `query`.
fn listed(agent: &ureq::Agent, url: &str, query: &str) -> BTreeMap<String, String> {
    let (status, list) = call(
        agent,
        "GET",
        &format!("{url}/api/v1/namespaces/{NS}/configmaps{query}"),
        None,
    );
    assert_eq!(status, 200, "list{query}: {list}");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| (o["metadata"]["name"].as_str().expect("name").into(), rv(o)))
        .collect()
}

/// Asserts `(status, body)` is the disk-full refusal for the data directory `data`.
fn assert_disk_full(status: u16, body: &Value, data: &Path) {
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], 500, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no space left on device")
            && message.contains(&data.display().to_string()),
        "the message names the full disk and the data directory: {message}"
    );
}

#[test]
fn embedded_store_refuses_writes_when_the_disk_is_full_and_resumes_when_space_returns() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(fs) = Tmpfs::mount(tmp.path()) else {
        eprintln!(
            "SKIPPED embedded_store_refuses_writes_when_the_disk_is_full_and_resumes_when_space_\
             returns: mounting a tmpfs needs root (CAP_SYS_ADMIN)"
        );
        return;
    };
    let filler = fs.dir.join("filler");
    std::fs::write(&filler, vec![0xa5u8; FILLER_BYTES]).expect("write the filler file");
    let data = fs.dir.join("data");
    let server = Server::start(&data);
    let agent = agent();
    let url = server.url.clone();
    let collection = format!("{url}/api/v1/namespaces/{NS}/configmaps");

    // Fill the filesystem: every 201 is an acknowledged write.
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut refusal = None;
    for i in 0..1000 {
        let name = format!("cm-{i}");
        let (status, body) = call(&agent, "POST", &collection, Some(&configmap(&name)));
        if status == 201 {
            order.push(name.clone());
            acked.insert(name, rv(&body));
        } else {
            refusal = Some((name, status, body));
            break;
        }
    }
    let (refused, status, body) = refusal.expect("the filesystem never filled up");
    assert!(acked.len() > 3, "only {} writes before full", acked.len());
    assert_disk_full(status, &body, &data);

    // Still full: an update and a delete are refused the same way, and nothing changes.
    let first = order[0].clone();
    let (_, mut current) = call(&agent, "GET", &format!("{collection}/{first}"), None);
    current["data"]["v"] = Value::String("y".repeat(VALUE_BYTES));
    let (status, body) = call(
        &agent,
        "PUT",
        &format!("{collection}/{first}"),
        Some(&current),
    );
    assert_disk_full(status, &body, &data);
    let (status, body) = call(&agent, "POST", &collection, Some(&configmap(&refused)));
    assert_disk_full(status, &body, &data);
    // Concurrent writes (committed as one batch or a few) are all refused.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let (agent, collection) = (agent.clone(), collection.clone());
            std::thread::spawn(move || {
                call(
                    &agent,
                    "POST",
                    &collection,
                    Some(&configmap(&format!("par-{i}"))),
                )
            })
        })
        .collect();
    for w in writers {
        let (status, body) = w.join().expect("writer thread");
        assert_disk_full(status, &body, &data);
    }
    // kubectl shows the refusal as kube-apiserver's 500 and still reads.
    let kubectl_cache = tempfile::tempdir().expect("kubectl cache dir");
    let kubectl_cache = kubectl_cache.path().to_path_buf();
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .arg("-s")
            .arg(&url)
            .arg("--cache-dir")
            .arg(&kubectl_cache)
            .arg("--request-timeout=30s")
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap_or_else(|e| panic!("run kubectl {args:?}: {e} (is kubectl on PATH?)"))
    };
    let literal = format!("v={}", "k".repeat(VALUE_BYTES));
    let out = kubectl(&[
        "create",
        "configmap",
        "by-kubectl",
        "--from-literal",
        &literal,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "kubectl create on a full disk succeeded"
    );
    assert!(
        stderr.contains("Internal error occurred: no space left on device")
            && stderr.contains(&data.display().to_string()),
        "kubectl create on a full disk: {stderr}"
    );
    let out = kubectl(&["get", "configmaps", "-n", NS, "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("configmap/").map(str::to_string))
        .collect();
    assert_eq!(
        names.len(),
        acked.len(),
        "kubectl get on a full disk: {names:?}"
    );

    // Reads keep working: from the store (a quorum list and a get) and from the watch cache
    // (resourceVersion=0), with exactly the acknowledged writes.
    assert_eq!(listed(&agent, &url, ""), acked, "list from the store");
    assert_eq!(
        listed(&agent, &url, "?resourceVersion=0"),
        acked,
        "list from the watch cache"
    );
    let (status, got) = call(&agent, "GET", &format!("{collection}/{first}"), None);
    assert_eq!(status, 200, "{got}");
    assert_eq!(rv(&got), acked[&first]);

    // Space returns: writes resume on the same server.
    std::fs::remove_file(&filler).expect("delete the filler file");
    let (status, body) = call(&agent, "POST", &collection, Some(&configmap(&refused)));
    assert_eq!(status, 201, "a write after space returned: {body}");
    acked.insert(refused.clone(), rv(&body));
    let acked_rv_of_first = acked[&first].clone();
    let (status, body) = call(&agent, "DELETE", &format!("{collection}/{first}"), None);
    assert_eq!(status, 200, "a delete after space returned: {body}");
    acked.remove(&first);
    assert_eq!(listed(&agent, &url, ""), acked, "list after space returned");

    // The watch cache saw exactly the acknowledged writes: a watch from the first write's
    // resourceVersion replays every later create, the one after space returned and the delete,
    // in order, and nothing of the refused writes.
    let from = &acked_rv_of_first;
    let mut expected: Vec<(String, String)> = order[1..]
        .iter()
        .map(|name| ("ADDED".to_string(), name.clone()))
        .collect();
    expected.push(("ADDED".into(), refused));
    expected.push(("DELETED".into(), first.clone()));
    let mut resp = agent
        .get(&format!(
            "{collection}?watch=true&resourceVersion={from}&timeoutSeconds=2"
        ))
        .call()
        .expect("watch");
    let text = resp.body_mut().read_to_string().expect("watch body");
    let events: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let ev: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (
                ev["type"].as_str().unwrap_or_default().to_string(),
                ev["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .filter(|(kind, _)| kind != "BOOKMARK")
        .collect();
    assert_eq!(events, expected, "watch from {from}");

    // Every acknowledged write survives a restart of the store, with its resourceVersion.
    server.shutdown();
    let server = Server::start(&data);
    assert_eq!(
        listed(&agent, &server.url, ""),
        acked,
        "list after reopening the store"
    );
    server.shutdown();
    drop(fs);
}
