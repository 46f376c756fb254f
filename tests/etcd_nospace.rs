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

mod out_of_space;

use etcd::EtcdServer;
use etcd_client::{AlarmAction, AlarmOptions, AlarmType};
use futures::StreamExt;
use orch_types::DynamicObject;
use out_of_space::{
    agent, assert_reads, call, configmap, create_at_once, fill, listed, rv, watch_events, Kubectl,
    Server, NS,
};
use serde_json::Value;
use std::time::Duration;

/// etcd's quota: a few dozen [`VALUE_BYTES`] writes reach it.
const QUOTA_BYTES: u64 = 8 << 20;
/// Data in each ConfigMap (below etcd's default 1.5 MiB request limit).
const VALUE_BYTES: usize = 256 << 10;
/// etcd's refusal under the alarm (`rpctypes.ErrGRPCNoSpace`).
const ETCD_NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";

/// An API server on the etcd at `etcd_url`, under the prefix `/nospace`.
fn start(etcd_url: &str) -> Server {
    Server::start(orch_apiserver::ApiServerConfig {
        storage: orch_apiserver::StorageConfig::Etcd {
            servers: vec![etcd_url.to_string()],
            prefix: "/nospace".to_string(),
            tls: None,
        },
        ..orch_apiserver::ApiServerConfig::memory()
    })
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
    let server = start(&etcd.url);
    let agent = agent();
    let url = server.url.clone();
    let collection = format!("{url}/api/v1/namespaces/{NS}/configmaps");

    // Write until etcd refuses: every 201 is an acknowledged write.
    let full = fill(&agent, &collection, VALUE_BYTES);
    let (mut acked, order, refused) = (full.acked, full.order, full.refused);
    assert_no_space(full.status, &full.body);
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
    let refused_again = configmap(&refused, VALUE_BYTES);
    let (status, body) = call(&agent, "POST", &collection, Some(&refused_again));
    assert_no_space(status, &body);
    let small = (0..4).map(|i| configmap(&format!("par-{i}"), 0)).collect();
    for (status, body) in create_at_once(&agent, &collection, small) {
        assert_no_space(status, &body);
    }

    // kubectl shows the refusal and still reads.
    let kubectl = Kubectl::new(&url);
    let kubectl = |args: &[&str]| kubectl.run(args);
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

    // Reads keep working: from etcd and from the watch cache.
    assert_reads(&agent, &url, &acked, &first);

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
    let (status, body) = call(&agent, "POST", &collection, Some(&refused_again));
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
    let (status, body) = call(&agent, "POST", &collection, Some(&refused_again));
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
    let events = watch_events(&agent, &collection, &from);
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
    server.shutdown();
    let server = start(&etcd.url);
    assert_eq!(
        listed(&agent, &server.url, ""),
        acked,
        "list through a new API server"
    );
    server.shutdown();
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
