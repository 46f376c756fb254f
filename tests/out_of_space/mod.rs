//! What the out-of-space tests share (`tests/disk_full.rs` on the embedded store,
//! `tests/etcd_nospace.rs` on etcd under its NOSPACE alarm): an in-process API server on its own
//! runtime, raw HTTP calls, writing until the store refuses, the reads that must keep working
//! under the refusal, kubectl against the server and the events a watch replays.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// The namespace of the test's ConfigMaps.
pub const NS: &str = "default";

/// An in-process API server, plain HTTP on loopback, on a runtime of its own: shutting it down
/// ends every task of the server, so its store is closed and can be opened again.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    rt: Option<tokio::runtime::Runtime>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Opens an API server with `config` and serves it.
    pub fn start(config: orch_apiserver::ApiServerConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
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

    /// Stops serving and ends the server's runtime.
    pub fn shutdown(mut self) {
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

/// An HTTP agent that hands back error statuses as answers.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `(status, body as JSON)` of a request.
pub fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
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

/// A ConfigMap `name` holding `bytes` bytes of data.
pub fn configmap(name: &str, bytes: usize) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"v": "x".repeat(bytes)},
    })
}

/// The resourceVersion of an object.
pub fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no resourceVersion: {obj}"))
        .to_string()
}

/// Name → resourceVersion of the ConfigMaps listed at `query`.
pub fn listed(agent: &ureq::Agent, url: &str, query: &str) -> BTreeMap<String, String> {
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

/// What writing until the store refused left.
pub struct Filled {
    /// Acknowledged creates: name → resourceVersion.
    pub acked: BTreeMap<String, String>,
    /// Their names in the order they were written.
    pub order: Vec<String>,
    /// The name of the refused create.
    pub refused: String,
    /// The refusal: status and body.
    pub status: u16,
    /// The refusal's body.
    pub body: Value,
}

/// Creates ConfigMaps `cm-0`, `cm-1`, … of `bytes` bytes each into `collection` until one is
/// refused (every 201 is an acknowledged write); fails the test if the store never refuses or
/// took only a few.
pub fn fill(agent: &ureq::Agent, collection: &str, bytes: usize) -> Filled {
    let mut acked = BTreeMap::new();
    let mut order = Vec::new();
    for i in 0..1000 {
        let name = format!("cm-{i}");
        let (status, body) = call(agent, "POST", collection, Some(&configmap(&name, bytes)));
        if status != 201 {
            assert!(
                acked.len() > 3,
                "only {} writes before the refusal",
                acked.len()
            );
            return Filled {
                acked,
                order,
                refused: name,
                status,
                body,
            };
        }
        order.push(name.clone());
        acked.insert(name, rv(&body));
    }
    panic!("the store never refused a write");
}

/// The answers to `bodies` created at once, each from a thread of its own.
pub fn create_at_once(
    agent: &ureq::Agent,
    collection: &str,
    bodies: Vec<Value>,
) -> Vec<(u16, Value)> {
    let writers: Vec<_> = bodies
        .into_iter()
        .map(|b| {
            let (agent, collection) = (agent.clone(), collection.to_string());
            std::thread::spawn(move || call(&agent, "POST", &collection, Some(&b)))
        })
        .collect();
    writers
        .into_iter()
        .map(|w| w.join().expect("writer thread"))
        .collect()
}

/// Asserts reads keep working under the refusal: from the store (a quorum list and a get of
/// `first`) and from the watch cache (`resourceVersion=0`), with exactly the acknowledged
/// writes.
pub fn assert_reads(agent: &ureq::Agent, url: &str, acked: &BTreeMap<String, String>, first: &str) {
    assert_eq!(&listed(agent, url, ""), acked, "list from the store");
    assert_eq!(
        &listed(agent, url, "?resourceVersion=0"),
        acked,
        "list from the watch cache"
    );
    let (status, got) = call(
        agent,
        "GET",
        &format!("{url}/api/v1/namespaces/{NS}/configmaps/{first}"),
        None,
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(rv(&got), acked[first]);
}

/// kubectl against a server's URL, with a cache directory of its own.
pub struct Kubectl {
    url: String,
    cache: tempfile::TempDir,
}

impl Kubectl {
    /// kubectl for the server at `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            cache: tempfile::tempdir().expect("kubectl cache dir"),
        }
    }

    /// Runs `kubectl ARGS` with a 30 s request timeout.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("-s")
            .arg(&self.url)
            .arg("--cache-dir")
            .arg(PathBuf::from(self.cache.path()))
            .arg("--request-timeout=30s")
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap_or_else(|e| panic!("run kubectl {args:?}: {e} (is kubectl on PATH?)"))
    }
}

/// The events (type, name; for an ERROR event its code) a watch of `collection` from `from`
/// replays within two seconds, bookmarks left out.
pub fn watch_events(agent: &ureq::Agent, collection: &str, from: &str) -> Vec<(String, String)> {
    let mut resp = agent
        .get(&format!(
            "{collection}?watch=true&resourceVersion={from}&timeoutSeconds=2"
        ))
        .call()
        .expect("watch");
    // Every write replayed, values included: above ureq's default 10 MiB limit.
    let text = resp
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_string()
        .expect("watch body");
    text.lines()
        .map(|l| {
            let ev: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let kind = ev["type"].as_str().unwrap_or_default().to_string();
            let name = if kind == "ERROR" {
                ev["object"]["code"].to_string()
            } else {
                ev["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            (kind, name)
        })
        .filter(|(kind, _)| kind != "BOOKMARK")
        .collect()
}
