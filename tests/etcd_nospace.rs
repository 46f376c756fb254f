//! etcd out of space (issue 21; cargo feature `etcd`): an API server on a real etcd started
//! with a tiny `--quota-backend-bytes` is written to until etcd raises its NOSPACE alarm and
//! refuses the write with `etcdserver: mvcc: database space exceeded`. As kube-apiserver (which
//! passes etcd's error through as a 500,
//! `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/status.go`), the refusal
//! is a 500 Status: the one the embedded store's full disk answers (`tests/disk_full.rs`, one
//! `StorageError::NoSpace`), with etcd's words and the way out. Under the alarm, creates,
//! updates and `kubectl create` are refused and nothing changes; reads (from etcd and from the
//! watch cache, and `kubectl get`) keep working; deletes are taken, as etcd takes deletes under
//! the alarm (`server/etcdserver/apply/capped.go`: only writes that cost space are refused).
//! After deletes, a compaction, a defragmentation and the alarm disarmed (`etcdctl alarm
//! disarm`, here through the etcd client), writes resume on the same API server without a
//! restart; every acknowledged write is there with its resourceVersion, and a watch replays
//! exactly the acknowledged writes.
#![cfg(feature = "etcd")]

// The etcd process helper of the storage conformance suite (its TLS half is unused here).
#[allow(dead_code)]
#[path = "../orch-apiserver/tests/common/etcd.rs"]
mod etcd;

use etcd::EtcdServer;
use etcd_client::{AlarmAction, AlarmOptions, AlarmType};
use futures::StreamExt;
use orch_types::DynamicObject;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

const NS: &str = "default";
/// etcd's quota: a few dozen [`VALUE_BYTES`] writes reach it.
const QUOTA_BYTES: u64 = 8 << 20;
/// Data in each ConfigMap (below etcd's default 1.5 MiB request limit).
const VALUE_BYTES: usize = 256 << 10;
/// etcd's refusal under the alarm (`rpctypes.ErrGRPCNoSpace`).
const ETCD_NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";

/// An in-process API server on etcd, on its own runtime, plain HTTP on loopback.
struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    fn start(rt: &tokio::runtime::Runtime, etcd_url: &str) -> Self {
        let config = orch_apiserver::ApiServerConfig {
            storage: orch_apiserver::StorageConfig::Etcd {
                servers: vec![etcd_url.to_string()],
                prefix: "/nospace".to_string(),
                tls: None,
            },
            ..orch_apiserver::ApiServerConfig::memory()
        };
        let (url, stop, task) = rt.block_on(async move {
            let api = orch_apiserver::ApiServer::open(config)
                .await
                .expect("open the API server on etcd");
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
            task: Some(task),
        }
    }

    fn shutdown(mut self, rt: &tokio::runtime::Runtime) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ =
                rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await });
        }
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

/// Asserts `(status, body)` is the out-of-space refusal on etcd: the embedded store's Status
/// (500, `no space left on device: … is full (database space exceeded)`) naming etcd's alarm.
fn assert_no_space(status: u16, body: &Value) {
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], 500, "{body}");
    assert_eq!(body["reason"], "InternalError", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Internal error occurred: no space left on device: ")
            && message.contains(ETCD_NO_SPACE)
            && message.contains("NOSPACE alarm")
            && message.contains("etcdctl alarm disarm"),
        "the message names etcd's refusal and the way out: {message}"
    );
}

/// The alarms etcd has raised, as `(member, alarm)`.
async fn alarms(client: &mut etcd_client::Client) -> Vec<(u64, AlarmType)> {
    client
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .expect("list etcd's alarms")
        .alarms()
        .iter()
        .map(|a| (a.member_id(), a.alarm()))
        .collect()
}

#[test]
fn etcd_nospace_alarm_refuses_writes_keeps_reads_and_deletes_and_writes_resume_after_disarm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let quota = format!("--quota-backend-bytes={QUOTA_BYTES}");
    let etcd = rt.block_on(EtcdServer::start_with_flags(tmp.path(), &[&quota]));
    let mut client = rt
        .block_on(etcd_client::Client::connect([etcd.url.as_str()], None))
        .expect("connect to etcd");
    let server = Server::start(&rt, &etcd.url);
    let agent = agent();
    let url = server.url.clone();
    let collection = format!("{url}/api/v1/namespaces/{NS}/configmaps");

    // Write until etcd refuses: every 201 is an acknowledged write.
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
    let (refused, status, body) = refusal.expect("etcd never raised its NOSPACE alarm");
    assert!(
        acked.len() > 3,
        "only {} writes before the alarm",
        acked.len()
    );
    assert_no_space(status, &body);
    let raised = rt.block_on(alarms(&mut client));
    assert!(
        raised.iter().any(|(_, a)| *a == AlarmType::Nospace),
        "etcd's alarms after the refusal: {raised:?}\n{}",
        etcd.log()
    );

    // Under the alarm: a create, an update and concurrent creates are refused the same way.
    let first = order[0].clone();
    let (_, mut current) = call(&agent, "GET", &format!("{collection}/{first}"), None);
    current["data"]["v"] = Value::String("y".into());
    let (status, body) = call(
        &agent,
        "PUT",
        &format!("{collection}/{first}"),
        Some(&current),
    );
    assert_no_space(status, &body);
    let (status, body) = call(&agent, "POST", &collection, Some(&configmap(&refused)));
    assert_no_space(status, &body);
    let writers: Vec<_> = (0..4)
        .map(|i| {
            let (agent, collection) = (agent.clone(), collection.clone());
            std::thread::spawn(move || {
                let small = serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": format!("par-{i}")},
                });
                call(&agent, "POST", &collection, Some(&small))
            })
        })
        .collect();
    for w in writers {
        let (status, body) = w.join().expect("writer thread");
        assert_no_space(status, &body);
    }

    // kubectl shows the refusal and still reads.
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
    let out = kubectl(&["create", "configmap", "by-kubectl", "--from-literal=v=1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "kubectl create under the alarm succeeded"
    );
    assert!(
        stderr.contains("Internal error occurred: no space left on device")
            && stderr.contains(ETCD_NO_SPACE),
        "kubectl create under the alarm: {stderr}"
    );
    let out = kubectl(&["get", "configmaps", "-n", NS, "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("configmap/cm-"))
        .count();
    assert_eq!(names, acked.len(), "kubectl get under the alarm");

    // Reads keep working: from etcd (a quorum list and a get) and from the watch cache, with
    // exactly the acknowledged writes.
    assert_eq!(listed(&agent, &url, ""), acked, "list from etcd");
    assert_eq!(
        listed(&agent, &url, "?resourceVersion=0"),
        acked,
        "list from the watch cache"
    );
    let (status, got) = call(&agent, "GET", &format!("{collection}/{first}"), None);
    assert_eq!(status, 200, "{got}");
    assert_eq!(rv(&got), acked[&first]);

    // Deletes are taken under the alarm (they cost etcd no space): all but the last two.
    let from = acked[&first].clone();
    let kept: Vec<String> = order[order.len() - 2..].to_vec();
    let deleted: Vec<String> = order[..order.len() - 2].to_vec();
    for name in &deleted {
        let (status, body) = call(&agent, "DELETE", &format!("{collection}/{name}"), None);
        assert_eq!(status, 200, "delete {name} under the alarm: {body}");
        acked.remove(name);
    }
    assert_eq!(listed(&agent, &url, ""), acked, "list after the deletes");
    // Still refused: the space of the deleted values is reused only after compaction and
    // defragmentation, and etcd refuses writes until the alarm is disarmed.
    let (status, body) = call(&agent, "POST", &collection, Some(&configmap(&refused)));
    assert_no_space(status, &body);

    // Give space back as an operator does: compact, defragment, disarm.
    rt.block_on(async {
        let revision = client
            .status()
            .await
            .expect("etcd status")
            .header()
            .expect("header")
            .revision();
        client.compact(revision, None).await.expect("compact");
        client.defragment().await.expect("defragment");
        for (member, alarm) in alarms(&mut client).await {
            let mut options = AlarmOptions::new();
            options.with_member(member);
            client
                .alarm(AlarmAction::Deactivate, alarm, Some(options))
                .await
                .expect("disarm");
        }
        assert_eq!(alarms(&mut client).await, Vec::new(), "alarms after disarm");
    });

    // Writes resume on the same API server, without a restart.
    let (status, body) = call(&agent, "POST", &collection, Some(&configmap(&refused)));
    assert_eq!(status, 201, "a create after the alarm was disarmed: {body}");
    acked.insert(refused.clone(), rv(&body));
    let name = &kept[0];
    let (_, mut current) = call(&agent, "GET", &format!("{collection}/{name}"), None);
    current["data"]["v"] = Value::String("updated".into());
    let (status, body) = call(
        &agent,
        "PUT",
        &format!("{collection}/{name}"),
        Some(&current),
    );
    assert_eq!(
        status, 200,
        "an update after the alarm was disarmed: {body}"
    );
    acked.insert(name.clone(), rv(&body));
    let out = kubectl(&["create", "configmap", "by-kubectl", "--from-literal=v=1"]);
    assert!(
        out.status.success(),
        "kubectl create after the alarm was disarmed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = call(&agent, "GET", &format!("{collection}/by-kubectl"), None);
    assert_eq!(status, 200, "{body}");
    acked.insert("by-kubectl".into(), rv(&body));
    assert_eq!(listed(&agent, &url, ""), acked, "list after writes resumed");
    assert_eq!(
        listed(&agent, &url, "?resourceVersion=0"),
        acked,
        "the watch cache after writes resumed"
    );

    // A watch from the first write replays exactly the acknowledged writes (the compaction was
    // at a later revision: the API server's window answers it, or it is 410 Expired as
    // upstream's, never a wrong history).
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
    let events: Vec<(String, String)> = text
        .lines()
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
        .collect();
    if events.first().map(|(k, _)| k.as_str()) != Some("ERROR") {
        let mut expected: Vec<(String, String)> = order[1..]
            .iter()
            .map(|name| ("ADDED".to_string(), name.clone()))
            .collect();
        expected.extend(deleted.iter().map(|n| ("DELETED".to_string(), n.clone())));
        expected.push(("ADDED".into(), refused));
        expected.push(("MODIFIED".into(), kept[0].clone()));
        expected.push(("ADDED".into(), "by-kubectl".into()));
        assert_eq!(events, expected, "watch from {from}");
    } else {
        assert_eq!(events, [("ERROR".to_string(), "410".to_string())]);
    }

    // Every acknowledged write is in etcd, with its resourceVersion, for a new API server.
    server.shutdown(&rt);
    let server = Server::start(&rt, &etcd.url);
    assert_eq!(
        listed(&agent, &server.url, ""),
        acked,
        "list through a new API server"
    );
    server.shutdown(&rt);
}

/// Regression (found by the test above: `kubectl get` of its ConfigMaps answered "storage
/// failure"): lists and watch responses of etcd larger than gRPC's default 4 MiB message limit
/// reach the store, as upstream's etcd client takes responses of any size.
#[test]
fn etcd_lists_and_watches_of_more_than_4_mib_are_read() {
    use orch_apiserver::storage::{etcd::EtcdStore, ListOptions, Storage};
    const OBJECTS: usize = 24;
    const BYTES: usize = 300 << 10;
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let etcd = EtcdServer::start(tmp.path()).await;
        let store = EtcdStore::connect(&[etcd.url.as_str()], "/large", None)
            .await
            .expect("connect");
        let prefix = "/registry/core/configmaps/default/";
        let mut first = None;
        for i in 0..OBJECTS {
            let name = format!("big-{i:02}");
            let mut o = DynamicObject::new("v1", "ConfigMap", &name);
            o.data
                .insert("data".into(), serde_json::json!({"v": "x".repeat(BYTES)}));
            let v = store
                .create(&format!("{prefix}{name}"), o)
                .await
                .expect("create");
            first.get_or_insert(v.mod_revision);
        }
        let first = first.expect("a create");
        // One range response of about 7 MiB, as a paged list of 500 reads it.
        let list = store
            .list_stored(
                prefix,
                &ListOptions {
                    limit: Some(500),
                    ..Default::default()
                },
            )
            .await
            .expect("a list of more than 4 MiB");
        assert_eq!(list.items.len(), OBJECTS);
        // A watch from before the creates catches up in one response of about 7 MiB.
        let mut events = store.watch(prefix, first - 1).expect("watch");
        for i in 0..OBJECTS {
            let ev = tokio::time::timeout(Duration::from_secs(30), events.next())
                .await
                .expect("an event within 30 s")
                .expect("the stream goes on")
                .expect("a watch response of more than 4 MiB");
            assert_eq!(ev.key, format!("{prefix}big-{i:02}"));
        }
    });
}
