//! Failover on a three-member etcd cluster (cargo feature `etcd`): the leader member is killed
//! (SIGKILL) while several writers create keys through one [`EtcdStore`] connected to all three
//! members. No acknowledged create is lost, the store serves again within seconds, and a watch
//! opened before the kill delivers every acknowledged create, in revision order, once.
#![cfg(feature = "etcd")]

// The etcd process helper of the storage conformance suite (its single-member half is unused
// here).
#[allow(dead_code)]
#[path = "common/etcd.rs"]
mod etcd_server;

use etcd_server::EtcdCluster;
use futures::StreamExt;
use orch_apiserver::storage::etcd::EtcdStore;
use orch_apiserver::storage::{EventStream, ListOptions, Revision, Storage};
use orch_types::DynamicObject;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PREFIX: &str = "/registry/failover/";
const WRITERS: usize = 4;
/// A write not answered within this is counted as not acknowledged (the writer moves on).
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the store may take to serve again after the kill (a new leader is elected within
/// about a second, etcd's default election timeout; a write sent before may time out).
const RECOVERY: Duration = Duration::from_secs(5);
/// How long the writers go on after the kill.
const LOAD_AFTER_KILL: Duration = Duration::from_secs(6);
/// The key prefix of the stores in etcd.
const STORE_PREFIX: &str = "/orch-failover";

fn obj(tag: &str) -> DynamicObject {
    let mut o = DynamicObject::new("v1", "ConfigMap", tag);
    o.data
        .insert("data".into(), serde_json::json!({ "tag": tag }));
    o
}

fn tag(o: &DynamicObject) -> &str {
    o.data["data"]["tag"].as_str().unwrap_or_default()
}

/// One writer's outcome.
#[derive(Default)]
struct Writes {
    /// Acknowledged creates: key → (mod revision, tag).
    acked: BTreeMap<String, (Revision, String)>,
    /// Creates that failed or timed out, with when they ended.
    failed: Vec<Instant>,
    /// When the last create was acknowledged.
    last_ack: Option<Instant>,
}

/// Creates `PREFIX/w{id}-{n}` for n = 0, 1, … until `stop`; an error or a timeout is "not
/// acknowledged" and the next attempt uses a new key.
async fn writer(store: Arc<EtcdStore>, id: usize, stop: Arc<AtomicBool>) -> Writes {
    let mut out = Writes::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let name = format!("w{id}-{n}");
        n += 1;
        let key = format!("{PREFIX}{name}");
        match tokio::time::timeout(WRITE_TIMEOUT, store.create(&key, obj(&name))).await {
            Ok(Ok(v)) => {
                out.acked.insert(key, (v.mod_revision, name));
                out.last_ack = Some(Instant::now());
            }
            Ok(Err(_)) | Err(_) => {
                out.failed.push(Instant::now());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    out
}

/// What the watch delivered: (revision, key, tag) in delivery order, and how many times it
/// ended with an error and was opened again from the last revision it delivered.
struct Watched {
    events: Vec<(Revision, String, String)>,
    reopened: Vec<String>,
}

/// Watches `PREFIX` from `from` until it has delivered `end` (the key written last), opening
/// the watch again from the last delivered revision whenever it ends with an error.
async fn watcher(
    store: Arc<EtcdStore>,
    from: Revision,
    mut stream: EventStream,
    end: String,
) -> Watched {
    let mut out = Watched {
        events: Vec::new(),
        reopened: Vec::new(),
    };
    let mut last = from;
    loop {
        let ended = match stream.next().await {
            Some(Ok(ev)) => {
                last = ev.revision;
                let t = ev.object().map(|o| tag(o).to_string()).unwrap_or_default();
                let done = ev.key == end;
                out.events.push((ev.revision, ev.key.clone(), t));
                if done {
                    return out;
                }
                continue;
            }
            Some(Err(e)) => e.to_string(),
            None => "the stream ended without an error".to_string(),
        };
        out.reopened.push(ended);
        // Ended: open again from the last delivered revision, as the watch cache resumes.
        // Opening is lazy (first poll), so a failure to open shows as the new stream's error.
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream = store.watch(PREFIX, last).unwrap();
    }
}

/// Opens a watch on `PREFIX` after `from` and polls it until the etcd watch is open (it opens
/// on first poll), before the load.
async fn open_watch(store: &EtcdStore, from: Revision) -> EventStream {
    let mut stream = store.watch(PREFIX, from).unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(early.is_err(), "an event before the writes: {early:?}");
    stream
}

/// The watch's deliveries: revision order without a duplicate, every acknowledged create with
/// its revision and value, and nothing that is not stored (a create that committed without
/// its acknowledgement reaching the writer is stored and watched).
fn check_watched(
    what: &str,
    watched: Watched,
    acked: &BTreeMap<String, (Revision, String)>,
    stored: &BTreeMap<String, (Revision, String)>,
) {
    let revisions: Vec<Revision> = watched.events.iter().map(|e| e.0).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "{what}: revision order, no duplicate: {revisions:?}"
    );
    let seen: BTreeMap<String, (Revision, String)> = watched
        .events
        .into_iter()
        .map(|(r, k, t)| (k, (r, t)))
        .collect();
    for (key, want) in acked {
        assert_eq!(
            seen.get(key),
            Some(want),
            "{what}: acknowledged create {key}"
        );
    }
    assert_eq!(
        &seen, stored,
        "{what}: the watch saw exactly what is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_leader_killed_during_writes_loses_no_acknowledged_create() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = EtcdCluster::start(tmp.path()).await;
    let connect = |urls: Vec<String>| async move {
        EtcdStore::connect(&urls, STORE_PREFIX, None)
            .await
            .map(Arc::new)
    };
    let store = connect(cluster.urls())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", cluster.logs()));
    let leader = cluster
        .leader()
        .await
        .unwrap_or_else(|| panic!("no leader\n{}", cluster.logs()));
    // A second store on the leader member only: its watch is served by the member that dies.
    let on_leader = connect(vec![cluster.members[leader].url.clone()])
        .await
        .unwrap_or_else(|e| panic!("connect to the leader: {e}\n{}", cluster.logs()));
    let from = store.current_revision();
    let end = format!("{PREFIX}zz-end");
    // The watch of the store on all members: served by whichever member the client picked.
    let watch_all = tokio::spawn(watcher(
        store.clone(),
        from,
        open_watch(&store, from).await,
        end.clone(),
    ));
    // The watch on the leader, opened again on the store on all members when it ends.
    let watch_leader = tokio::spawn(watcher(
        store.clone(),
        from,
        open_watch(&on_leader, from).await,
        end.clone(),
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(store.clone(), id, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    cluster.members[leader].kill();
    tokio::time::sleep(LOAD_AFTER_KILL).await;
    stop.store(true, Ordering::SeqCst);
    let (mut acked, mut failed, mut last_acks) = (BTreeMap::new(), Vec::new(), Vec::new());
    for w in writers {
        let w = w.await.unwrap();
        acked.extend(w.acked);
        failed.extend(w.failed);
        last_acks.push(w.last_ack);
    }
    let since_kill = |t: &Instant| t.saturating_duration_since(killed_at);
    let first_failure = failed.iter().min().map(since_kill);
    let last_failure = failed.iter().max().map(since_kill);
    eprintln!(
        "killed member {leader} (the leader); {} creates acknowledged, {} not; failures from \
         {first_failure:?} to {last_failure:?} after the kill",
        acked.len(),
        failed.len(),
    );
    // The store serves writes again within RECOVERY of the kill: no write fails after it, and
    // every writer has its creates acknowledged after its last failure.
    assert!(
        last_failure.is_none_or(|t| t < RECOVERY),
        "writes still failed {last_failure:?} after the kill\n{}",
        cluster.logs()
    );
    let last_failure = failed.iter().max().copied().unwrap_or(killed_at);
    for (id, last_ack) in last_acks.iter().enumerate() {
        assert!(
            last_ack.is_some_and(|t| t > last_failure && t > killed_at),
            "writer {id} had no create acknowledged after the failover"
        );
    }

    // The end marker: a write after the load, then every acknowledged create is stored with
    // its value and revision.
    let v = store.create(&end, obj("zz-end")).await.unwrap();
    acked.insert(end.clone(), (v.mod_revision, "zz-end".into()));
    let list = store.list(PREFIX, &ListOptions::default()).await.unwrap();
    let stored: BTreeMap<String, (Revision, String)> = list
        .items
        .iter()
        .map(|(k, v)| (k.clone(), (v.mod_revision, tag(&v.object).to_string())))
        .collect();
    for (key, want) in &acked {
        assert_eq!(stored.get(key), Some(want), "acknowledged create {key}");
    }
    eprintln!(
        "{} creates were not acknowledged but are stored",
        stored.len() - acked.len()
    );

    // Both watches opened before the kill deliver every acknowledged create, in revision order,
    // once: the one served by the killed member ends with an error and, opened again from
    // the last revision it delivered, delivers the rest.
    for (what, watch) in [("watch", watch_all), ("watch on the leader", watch_leader)] {
        let watched = tokio::time::timeout(RECOVERY, watch)
            .await
            .unwrap_or_else(|_| panic!("{what}: no end marker within {RECOVERY:?}"))
            .unwrap();
        eprintln!(
            "{what}: {} events, ended and opened again {} times: {:?}",
            watched.events.len(),
            watched.reopened.len(),
            watched.reopened
        );
        if what == "watch on the leader" {
            assert!(
                !watched.reopened.is_empty(),
                "the watch served by the killed member ends with an error"
            );
        }
        check_watched(what, watched, &acked, &stored);
    }
}
