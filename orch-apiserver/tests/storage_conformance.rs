//! Storage conformance: every backend must pass these cases, ported from upstream
//! `staging/src/k8s.io/apiserver/pkg/storage/testing/store_tests.go` and `watcher_tests.go`
//! (Create, Get, (Conditional)Delete, GuaranteedUpdate conflicts, List at a revision, paging,
//! Compaction, Watch from a revision, Delete events, concurrent writers).

use futures::StreamExt;
use orch_apiserver::storage::{
    embedded::EmbeddedStore, memory::MemoryStore, EventType, ListOptions, Storage, StorageError,
};
use orch_types::DynamicObject;
use std::sync::Arc;

// The etcd process helper (its three-member cluster is for `etcd_failover.rs`).
#[cfg(feature = "etcd")]
#[allow(dead_code)]
#[path = "common/etcd.rs"]
mod etcd_server;
#[cfg(feature = "etcd")]
use etcd_server::EtcdServer;
#[cfg(feature = "etcd")]
use orch_apiserver::storage::etcd::EtcdStore;

fn obj(name: &str, v: &str) -> DynamicObject {
    let mut o = DynamicObject::new("v1", "ConfigMap", name);
    o.data.insert("data".into(), serde_json::json!({ "v": v }));
    o
}

fn data(o: &DynamicObject) -> &str {
    o.data["data"]["v"].as_str().unwrap_or("")
}

async fn create_and_get(s: Arc<dyn Storage>) {
    let v = s.create("/registry/t/a", obj("a", "1")).await.unwrap();
    assert_eq!(v.create_revision, v.mod_revision);
    assert_eq!(
        v.object.resource_version(),
        Some(v.mod_revision.to_string().as_str())
    );
    let got = s.get("/registry/t/a").await.unwrap().unwrap();
    assert_eq!(got, v);
    assert!(s.get("/registry/t/missing").await.unwrap().is_none());
    let dup = s.create("/registry/t/a", obj("a", "2")).await.unwrap_err();
    assert!(matches!(dup, StorageError::KeyExists { .. }), "{dup}");
    assert_eq!(
        s.current_revision(),
        v.mod_revision,
        "a failed create must not use a revision"
    );
}

async fn conditional_update_and_delete(s: Arc<dyn Storage>) {
    let v1 = s.create("/registry/t/a", obj("a", "1")).await.unwrap();
    let v2 = s
        .update("/registry/t/a", obj("a", "2"), Some(v1.mod_revision))
        .await
        .unwrap();
    assert!(v2.mod_revision > v1.mod_revision);
    assert_eq!(v2.create_revision, v1.create_revision);
    let stale = s
        .update("/registry/t/a", obj("a", "3"), Some(v1.mod_revision))
        .await
        .unwrap_err();
    assert!(
        matches!(stale, StorageError::Conflict { expected, actual, .. } if expected == v1.mod_revision && actual == v2.mod_revision)
    );
    let stale_del = s
        .delete("/registry/t/a", Some(v1.mod_revision))
        .await
        .unwrap_err();
    assert!(matches!(stale_del, StorageError::Conflict { .. }));
    let missing = s
        .update("/registry/t/b", obj("b", "1"), None)
        .await
        .unwrap_err();
    assert!(matches!(missing, StorageError::NotFound { .. }));
    let d = s
        .delete("/registry/t/a", Some(v2.mod_revision))
        .await
        .unwrap();
    assert_eq!(data(&d.object), "2");
    assert_eq!(
        d.object.resource_version(),
        Some(s.current_revision().to_string().as_str())
    );
    assert!(s.get("/registry/t/a").await.unwrap().is_none());
    let again = s.delete("/registry/t/a", None).await.unwrap_err();
    assert!(matches!(again, StorageError::NotFound { .. }));
    // Recreate after delete: a new create revision.
    let re = s.create("/registry/t/a", obj("a", "new")).await.unwrap();
    assert!(re.create_revision > v1.create_revision);
}

async fn list_at_revision_and_prefix(s: Arc<dyn Storage>) {
    s.create("/registry/one/a", obj("a", "1")).await.unwrap();
    let r1 = s
        .create("/registry/one/b", obj("b", "1"))
        .await
        .unwrap()
        .mod_revision;
    s.create("/registry/onex/c", obj("c", "1")).await.unwrap();
    s.update("/registry/one/a", obj("a", "2"), None)
        .await
        .unwrap();
    s.delete("/registry/one/b", None).await.unwrap();
    let now = s
        .list("/registry/one/", &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(now.revision, s.current_revision());
    let names: Vec<_> = now
        .items
        .iter()
        .map(|(k, v)| (k.as_str(), data(&v.object)))
        .collect();
    assert_eq!(names, [("/registry/one/a", "2")]);
    let old = s
        .list(
            "/registry/one/",
            &ListOptions {
                revision: Some(r1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let names: Vec<_> = old
        .items
        .iter()
        .map(|(k, v)| (k.as_str(), data(&v.object)))
        .collect();
    assert_eq!(names, [("/registry/one/a", "1"), ("/registry/one/b", "1")]);
    let future = s
        .list(
            "/registry/one/",
            &ListOptions {
                revision: Some(s.current_revision() + 10),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(future, StorageError::FutureRevision { .. }));
}

async fn paging(s: Arc<dyn Storage>) {
    for i in 0..7 {
        s.create(&format!("/registry/p/k{i}"), obj(&format!("k{i}"), "x"))
            .await
            .unwrap();
    }
    let first = s
        .list(
            "/registry/p/",
            &ListOptions {
                limit: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.remaining, 4);
    // Writes after the first page are invisible to the following pages at the same revision.
    s.create("/registry/p/k8", obj("k8", "x")).await.unwrap();
    s.delete("/registry/p/k5", None).await.unwrap();
    let mut keys: Vec<String> = first.items.iter().map(|(k, _)| k.clone()).collect();
    let mut after = keys.last().cloned();
    loop {
        let page = s
            .list(
                "/registry/p/",
                &ListOptions {
                    revision: Some(first.revision),
                    limit: Some(3),
                    start_after: after.clone(),
                },
            )
            .await
            .unwrap();
        keys.extend(page.items.iter().map(|(k, _)| k.clone()));
        after = page.items.last().map(|(k, _)| k.clone());
        if page.remaining == 0 {
            break;
        }
    }
    let want: Vec<String> = (0..7).map(|i| format!("/registry/p/k{i}")).collect();
    assert_eq!(keys, want);
}

async fn compaction(s: Arc<dyn Storage>) {
    let a1 = s
        .create("/registry/c/a", obj("a", "1"))
        .await
        .unwrap()
        .mod_revision;
    s.create("/registry/c/b", obj("b", "1")).await.unwrap();
    s.update("/registry/c/a", obj("a", "2"), None)
        .await
        .unwrap();
    s.delete("/registry/c/b", None).await.unwrap();
    let at = s.current_revision();
    s.compact(at).await.unwrap();
    assert_eq!(s.compacted_revision(), at);
    let old = s
        .list(
            "/registry/c/",
            &ListOptions {
                revision: Some(a1),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(old, StorageError::Compacted { .. }), "{old}");
    let w = s.watch("/registry/c/", a1).err();
    assert!(matches!(w, Some(StorageError::Compacted { .. })));
    // The latest state survives compaction; the deleted key is gone.
    let now = s
        .list(
            "/registry/c/",
            &ListOptions {
                revision: Some(at),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(now.items.len(), 1);
    assert_eq!(data(&now.items[0].1.object), "2");
    // Watching from the compacted revision itself is allowed.
    let mut w = s.watch("/registry/c/", at).unwrap();
    s.update("/registry/c/a", obj("a", "3"), None)
        .await
        .unwrap();
    let ev = w.next().await.unwrap().unwrap();
    assert_eq!(ev.object().map(|o| data(o)), Some("3"));
}

async fn watch_from_revision(s: Arc<dyn Storage>) {
    let start = s.current_revision();
    let a = s.create("/registry/w/a", obj("a", "1")).await.unwrap();
    s.create("/registry/other/x", obj("x", "1")).await.unwrap();
    let mut w = s.watch("/registry/w/", start).unwrap();
    s.update("/registry/w/a", obj("a", "2"), Some(a.mod_revision))
        .await
        .unwrap();
    s.delete("/registry/w/a", None).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let ev = w.next().await.unwrap().unwrap();
        got.push((
            ev.kind,
            ev.object().map(|o| data(o).to_string()).unwrap_or_default(),
            ev.prev_object().map(|p| data(p).to_string()),
        ));
    }
    assert_eq!(
        got,
        [
            (EventType::Added, "1".to_string(), None),
            (EventType::Modified, "2".to_string(), Some("1".to_string())),
            (EventType::Deleted, "2".to_string(), Some("2".to_string())),
        ]
    );
    // A watch from a future revision only sees events after it.
    let future = s.current_revision() + 1;
    let mut w2 = s.watch("/registry/w/", future).unwrap();
    s.create("/registry/w/b", obj("b", "1")).await.unwrap(); // == future
    s.create("/registry/w/c", obj("c", "1")).await.unwrap();
    let ev = w2.next().await.unwrap().unwrap();
    assert_eq!(ev.key, "/registry/w/c");
}

async fn concurrent_writers_and_watch(s: Arc<dyn Storage>) {
    let start = s.current_revision();
    let mut w = s.watch("/registry/cc/", start).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..25 {
                revs.push(
                    s.create(&format!("/registry/cc/t{t}-{i}"), obj("x", "1"))
                        .await
                        .unwrap()
                        .mod_revision,
                );
            }
            revs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 200, "every write gets its own revision");
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen.push(w.next().await.unwrap().unwrap().revision);
    }
    assert_eq!(
        seen, all,
        "events in revision order, none skipped or repeated"
    );

    // Counter with compare-and-swap retries: final value == successful writes.
    s.create("/registry/cc/counter", obj("counter", "0"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..10 {
                loop {
                    let cur = s.get("/registry/cc/counter").await.unwrap().unwrap();
                    let n: u64 = data(&cur.object).parse().unwrap();
                    match s
                        .update(
                            "/registry/cc/counter",
                            obj("counter", &(n + 1).to_string()),
                            Some(cur.mod_revision),
                        )
                        .await
                    {
                        Ok(_) => {
                            ok += 1;
                            break;
                        }
                        Err(StorageError::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            ok
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let cur = s.get("/registry/cc/counter").await.unwrap().unwrap();
    assert_eq!(data(&cur.object), total.to_string());
}

/// The store holds one shared encoding per version: the compact JSON of what the writer got
/// back, the same bytes in the write's event, in `get_stored` and in `list_stored`.
async fn stored_encoding_is_shared(s: Arc<dyn Storage>) {
    let mut w = s.watch("/registry/e/", s.current_revision()).unwrap();
    let v = s.create("/registry/e/a", obj("a", "1")).await.unwrap();
    let ev = w.next().await.unwrap().unwrap();
    let stored = s.get_stored("/registry/e/a").await.unwrap().unwrap();
    assert_eq!(stored.mod_revision, v.mod_revision);
    assert_eq!(stored.create_revision, v.create_revision);
    assert_eq!(
        stored.encoded.as_bytes(),
        serde_json::to_vec(&*v.object).unwrap().as_slice()
    );
    let in_event = ev.encoded.as_ref().expect("an add carries its encoding");
    assert!(std::ptr::eq(
        in_event.as_bytes().as_ptr(),
        stored.encoded.as_bytes().as_ptr()
    ));
    let listed = s
        .list_stored("/registry/e/", &ListOptions::default())
        .await
        .unwrap();
    assert!(std::ptr::eq(
        listed.items[0].1.encoded.as_bytes().as_ptr(),
        stored.encoded.as_bytes().as_ptr()
    ));
    assert_eq!(stored.decode("/registry/e/a").unwrap(), v);
    // The next write's event carries this version as its previous state, shared too.
    s.update("/registry/e/a", obj("a", "2"), None)
        .await
        .unwrap();
    let ev = w.next().await.unwrap().unwrap();
    let prev = ev
        .prev
        .as_ref()
        .expect("an update carries the previous state");
    assert!(std::ptr::eq(
        prev.as_bytes().as_ptr(),
        stored.encoded.as_bytes().as_ptr()
    ));
    assert_eq!(ev.prev_object().map(|p| data(p)), Some("1"));
    let d = s.delete("/registry/e/a", None).await.unwrap();
    let ev = w.next().await.unwrap().unwrap();
    assert!(ev.encoded.is_none(), "a delete has no new state to store");
    assert_eq!(ev.object(), Some(&d.object));
    assert!(s.get_stored("/registry/e/a").await.unwrap().is_none());
}

/// Each case for one backend. `$make` (async, with `$dir` the test's temporary directory) gives
/// the store and what must live as long as the test (the etcd server process).
/// Writes with a TTL expire (deleted, seen by watches as deletes) once it passes, counted from
/// the last write; a write without one keeps the key; keys without TTL stay. Driven the way the
/// API server drives it: `expire_due` every 100 ms (a no-op where the engine expires keys
/// itself, etcd's leases).
async fn ttl_expiry(s: Arc<dyn Storage>) {
    use orch_apiserver::storage::WriteOp;
    use std::time::{Duration, Instant};
    let ttl = Some(Duration::from_secs(2));
    let create = |key: &str, ttl| WriteOp::Create {
        key: key.into(),
        object: obj("x", "1"),
        ttl,
    };
    let start = s.current_revision();
    let mut w = s.watch("/registry/ttl/", start).unwrap();
    s.write(create("/registry/ttl/expires", ttl)).await.unwrap();
    let kept = s.write(create("/registry/ttl/kept", ttl)).await.unwrap();
    s.write(create("/registry/ttl/plain", None)).await.unwrap();
    // Written again without a TTL: the earlier one no longer applies.
    s.write(WriteOp::Update {
        key: "/registry/ttl/kept".into(),
        object: obj("x", "2"),
        expected: Some(kept.mod_revision),
        ttl: None,
    })
    .await
    .unwrap();
    let t0 = Instant::now();
    while s.get("/registry/ttl/expires").await.unwrap().is_some() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "a key with a 2 s TTL still there after 10 s"
        );
        s.expire_due().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "expired early: {:?}",
        t0.elapsed()
    );
    let names: Vec<String> = s
        .list("/registry/ttl/", &ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(names, ["/registry/ttl/kept", "/registry/ttl/plain"]);
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let ev = w.next().await.unwrap().unwrap();
        seen.push((ev.kind, ev.key.clone()));
    }
    assert_eq!(
        seen.last(),
        Some(&(EventType::Deleted, "/registry/ttl/expires".to_string())),
        "{seen:?}"
    );
}

macro_rules! suite {
    ($backend:ident, |$dir:ident| $make:expr) => {
        mod $backend {
            use super::*;
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let tmp = tempfile::tempdir().unwrap();
                        #[allow(unused_variables)]
                        let $dir = tmp.path();
                        let (store, _server): (Arc<dyn Storage>, _) = $make;
                        super::$name(store).await;
                    }
                };
            }
            case!(create_and_get);
            case!(conditional_update_and_delete);
            case!(list_at_revision_and_prefix);
            case!(paging);
            case!(compaction);
            case!(watch_from_revision);
            case!(concurrent_writers_and_watch);
            case!(stored_encoding_is_shared);
            case!(ttl_expiry);
        }
    };
}

suite!(memory, |_dir| (Arc::new(MemoryStore::new()), ()));
suite!(embedded, |dir| (
    Arc::new(EmbeddedStore::open(dir).unwrap()),
    ()
));
#[cfg(feature = "etcd")]
suite!(etcd, |dir| etcd_store(dir, ETCD_TEST_PREFIX).await);

/// The etcd suite stores under a prefix, as a shared etcd would be used.
#[cfg(feature = "etcd")]
const ETCD_TEST_PREFIX: &str = "/orch-test";

/// A fresh etcd server in `dir` and a store on it.
#[cfg(feature = "etcd")]
async fn etcd_store(dir: &std::path::Path, prefix: &str) -> (Arc<dyn Storage>, EtcdServer) {
    let server = EtcdServer::start(dir).await;
    let store = EtcdStore::connect(&[server.url.as_str()], prefix, None)
        .await
        .unwrap_or_else(|e| panic!("connect to etcd: {e}\n{}", server.log()));
    (Arc::new(store), server)
}

/// The embedded store keeps a key's deadline across a restart.
#[tokio::test]
async fn embedded_reopen_keeps_deadlines() {
    use orch_apiserver::storage::WriteOp;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let expiring = |key: &str| WriteOp::Create {
            key: key.into(),
            object: obj("x", "1"),
            ttl: Some(Duration::from_millis(300)),
        };
        s.write(expiring("/registry/ttl/a")).await.unwrap();
        s.write(expiring("/registry/ttl/b")).await.unwrap();
        s.delete("/registry/ttl/b", None).await.unwrap();
        s.create("/registry/ttl/c", obj("c", "1")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(s.expire_due().await.unwrap(), 1, "a expires, c has no TTL");
    assert!(s.get("/registry/ttl/a").await.unwrap().is_none());
    assert!(s.get("/registry/ttl/c").await.unwrap().is_some());
    drop(s);
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        s.expire_due().await.unwrap(),
        0,
        "the deadline went with the key"
    );
}

#[tokio::test]
async fn embedded_reopen_keeps_state_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (rev, a) = {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let a = s.create("/registry/r/a", obj("a", "1")).await.unwrap();
        s.create("/registry/r/b", obj("b", "1")).await.unwrap();
        s.delete("/registry/r/b", None).await.unwrap();
        (s.current_revision(), a)
    };
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        s.current_revision(),
        rev,
        "the revision of the delete is persisted too"
    );
    assert_eq!(s.get("/registry/r/a").await.unwrap().unwrap(), a);
    assert!(s.get("/registry/r/b").await.unwrap().is_none());
    // History before the restart is gone: watching from before it is Compacted.
    assert!(matches!(
        s.watch("/registry/", 1).err(),
        Some(StorageError::Compacted { .. })
    ));
    let next = s.create("/registry/r/c", obj("c", "1")).await.unwrap();
    assert_eq!(next.mod_revision, rev + 1);
}

/// A data directory written before objects were stored as shared encodings (the record was
/// then built by serializing the tree: create revision, mod revision, JSON) opens unchanged.
#[tokio::test]
async fn embedded_opens_records_of_the_previous_layout() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join("store.redb")).unwrap();
        let kv: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("kv");
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        let wtx = db.begin_write().unwrap();
        {
            let mut o = obj("a", "1");
            o.metadata.resource_version = Some("3".into());
            let mut rec = Vec::new();
            rec.extend_from_slice(&2u64.to_le_bytes());
            rec.extend_from_slice(&3u64.to_le_bytes());
            serde_json::to_writer(&mut rec, &o).unwrap();
            wtx.open_table(kv)
                .unwrap()
                .insert("/registry/p/a", rec.as_slice())
                .unwrap();
            wtx.open_table(meta).unwrap().insert("revision", 4).unwrap();
        }
        wtx.commit().unwrap();
        std::fs::write(dir.path().join("FORMAT"), "orch-storage 1\n").unwrap();
    }
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(s.current_revision(), 4);
    let a = s.get("/registry/p/a").await.unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (2, 3));
    assert_eq!(data(&a.object), "1");
    assert_eq!(a.object.resource_version(), Some("3"));
}

#[test]
fn embedded_refuses_a_corrupt_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join("store.redb")).unwrap();
        let kv: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("kv");
        let wtx = db.begin_write().unwrap();
        {
            let mut rec = vec![0u8; 16];
            rec.extend_from_slice(b"{\"kind\":");
            wtx.open_table(kv)
                .unwrap()
                .insert("/registry/p/a", rec.as_slice())
                .unwrap();
        }
        wtx.commit().unwrap();
    }
    let err = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("corrupt record"), "{err}");
}

#[test]
fn embedded_refuses_a_newer_format() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("FORMAT"), "orch-storage 99\n").unwrap();
    let err = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::UnsupportedFormat { .. }));
    assert!(err.to_string().contains("newer"), "{err}");
}

/// Two stores on one etcd (as two API servers): the second one learns the revision and the
/// compacted revision at connect, sees the first one's writes in its watch, and a watch or read
/// below a compaction it did not do itself fails with `Compacted` (from etcd's answer).
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stores_share_one_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, server) = etcd_store(tmp.path(), "/shared").await;
    let late = EtcdStore::connect(&[server.url.as_str()], "/shared", None)
        .await
        .unwrap();
    let late_reader = EtcdStore::connect(&[server.url.as_str()], "/shared", None)
        .await
        .unwrap();
    let v1 = a.create("/registry/s/x", obj("x", "1")).await.unwrap();
    a.update("/registry/s/x", obj("x", "2"), None)
        .await
        .unwrap();
    let at = a.current_revision();
    a.compact(at).await.unwrap();

    let b = EtcdStore::connect(&[server.url.as_str()], "/shared/", None)
        .await
        .unwrap();
    assert_eq!(b.prefix(), "/shared");
    assert_eq!(b.compacted_revision(), at, "found at connect");
    assert!(b.current_revision() >= at);
    assert_eq!(
        data(&b.get("/registry/s/x").await.unwrap().unwrap().object),
        "2"
    );
    let mut w = b.watch("/registry/s/", b.current_revision()).unwrap();
    a.delete("/registry/s/x", None).await.unwrap();
    let ev = w.next().await.unwrap().unwrap();
    assert_eq!(
        (ev.kind, ev.key.as_str()),
        (EventType::Deleted, "/registry/s/x")
    );
    assert_eq!(ev.object().map(|o| data(o)), Some("2"));

    // `late` connected before the compaction: its own view of the compacted revision is old,
    // etcd's answers correct it.
    assert_eq!(late.compacted_revision(), 0);
    let mut stale = late.watch("/registry/s/", v1.mod_revision - 1).unwrap();
    let err = stale.next().await.unwrap().unwrap_err();
    assert_eq!(
        err,
        StorageError::Compacted {
            requested: v1.mod_revision - 1,
            compacted: at
        }
    );
    assert!(
        stale.next().await.is_none(),
        "the stream ends after its error"
    );
    assert_eq!(late.compacted_revision(), at, "learnt from the watch");
    let old = ListOptions {
        revision: Some(v1.mod_revision),
        ..Default::default()
    };
    assert_eq!(late_reader.compacted_revision(), 0);
    let err = late_reader.list("/registry/s/", &old).await.unwrap_err();
    assert_eq!(
        err,
        StorageError::Compacted {
            requested: v1.mod_revision,
            compacted: at
        }
    );
    assert_eq!(late_reader.compacted_revision(), at, "learnt from the read");

    // Another prefix is another store.
    let other = EtcdStore::connect(&[server.url.as_str()], "/other", None)
        .await
        .unwrap();
    other.create("/registry/s/y", obj("y", "1")).await.unwrap();
    assert!(a
        .list("/registry/s/", &ListOptions::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(
        other
            .list("/registry/", &ListOptions::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    drop(server);
}

/// The API server opens on etcd without blocking its runtime (a current-thread one here) and
/// bootstraps its system namespaces into it.
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "current_thread")]
async fn api_server_opens_on_etcd() {
    use orch_apiserver::{ApiServer, ApiServerConfig, StorageConfig};
    let tmp = tempfile::tempdir().unwrap();
    let server = EtcdServer::start(tmp.path()).await;
    let config = ApiServerConfig {
        storage: StorageConfig::Etcd {
            servers: vec![server.url.clone()],
            prefix: String::new(),
            tls: None,
        },
        ..ApiServerConfig::memory()
    };
    assert!(matches!(
        ApiServer::new(config.clone()),
        Err(orch_apiserver::ApiServerError::AsyncStorage)
    ));
    let api = ApiServer::open(config).await.unwrap();
    let direct = EtcdStore::connect(&[server.url.as_str()], "", None)
        .await
        .unwrap();
    let ns = direct
        .get("/registry/core/namespaces/default")
        .await
        .unwrap()
        .expect("the default namespace is stored in etcd");
    assert_eq!(ns.object.metadata.name.as_deref(), Some("default"));
    // In etcd, under upstream's key layout.
    let mut raw = etcd_client::Client::connect([server.url.as_str()], None)
        .await
        .unwrap();
    let got = raw.get("/registry/namespaces/default", None).await.unwrap();
    assert_eq!(
        got.kvs().len(),
        1,
        "the default namespace at upstream's key"
    );
    // The empty prefix under the empty store prefix: every key.
    let all = direct.list("", &ListOptions::default()).await.unwrap();
    assert!(all.items.len() >= 4, "{:?}", all.items.len());
    drop(api);
}

/// Connecting to an address where no etcd listens fails (it does not wait forever).
#[cfg(feature = "etcd")]
#[tokio::test]
async fn etcd_connect_fails_without_a_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let err = EtcdStore::connect(&[url.as_str()], "", None)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Backend(_)), "{err}");
}

/// With the CA, a client certificate and its key the store works against an etcd that serves
/// TLS only and requires client certificates; without the certificate it is refused, and a
/// certificate without its key is a configuration error.
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_over_tls_with_a_client_certificate() {
    use orch_apiserver::storage::etcd::EtcdTls;
    let tmp = tempfile::tempdir().unwrap();
    let server = EtcdServer::start_tls(tmp.path()).await;
    let files = server.tls.as_ref().expect("a TLS server has its files");
    let tls = EtcdTls {
        ca_file: Some(files.ca.clone()),
        cert_file: Some(files.cert.clone()),
        key_file: Some(files.key.clone()),
    };
    let s = EtcdStore::connect(&[server.url.as_str()], "", Some(&tls))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let v = s.create("/registry/t/a", obj("a", "1")).await.unwrap();
    assert_eq!(s.get("/registry/t/a").await.unwrap().unwrap(), v);

    let no_cert = EtcdTls {
        cert_file: None,
        key_file: None,
        ..tls.clone()
    };
    let refused = EtcdStore::connect(&[server.url.as_str()], "", Some(&no_cert)).await;
    assert!(
        matches!(refused, Err(StorageError::Backend(_))),
        "{refused:?}"
    );
    let half = EtcdTls {
        key_file: None,
        ..tls
    };
    let err = EtcdStore::connect(&[server.url.as_str()], "", Some(&half))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("both"), "{err}");
}

/// A write outside the store's prefix (another program on the same etcd) moves etcd's revision
/// without an event for the store's watches: `latest_revision` reports it, and a watch learns
/// that it is current through a progress notification, sent only on request, after which its
/// events go on.
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_progress_notification_covers_a_write_outside_the_prefix() {
    use std::time::Duration;
    let tmp = tempfile::tempdir().unwrap();
    let (s, server) = etcd_store(tmp.path(), "/p").await;
    let a = s.create("/registry/t/a", obj("a", "1")).await.unwrap();
    let mut w = s.watch("/registry/", a.mod_revision).unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(300), w.next()).await;
    assert!(quiet.is_err(), "nothing yet: {quiet:?}");

    let mut raw = etcd_client::Client::connect([server.url.as_str()], None)
        .await
        .unwrap();
    let put = raw.put("/elsewhere/x", "1", None).await.unwrap();
    let foreign = u64::try_from(put.header().unwrap().revision()).unwrap();
    assert_eq!(s.latest_revision().await.unwrap(), foreign);
    let quiet = tokio::time::timeout(Duration::from_millis(300), w.next()).await;
    assert!(
        quiet.is_err(),
        "no event and no unrequested progress: {quiet:?}"
    );

    s.request_progress();
    let ev = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("a progress notification within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.kind, ev.revision, ev.key.as_str()),
        (EventType::Progress, foreign, "")
    );
    let b = s.create("/registry/t/b", obj("b", "1")).await.unwrap();
    let ev = w.next().await.unwrap().unwrap();
    assert_eq!(
        (ev.kind, ev.revision, ev.key.as_str()),
        (EventType::Added, b.mod_revision, "/registry/t/b")
    );
    drop(server);
}

/// Two API servers on one etcd: a list without resourceVersion on one (a consistent read,
/// served from its watch cache) right after a create on the other includes the object, every
/// time; and a write outside the prefix does not stall such reads (the cache is told it is
/// current by a progress notification).
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_consistent_reads_see_the_other_api_servers_writes() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use orch_apiserver::{ApiServer, ApiServerConfig, StorageConfig};
    use orch_types::client::{ListParams, PostParams};
    use orch_types::ApiResource;
    let tmp = tempfile::tempdir().unwrap();
    let server = EtcdServer::start(tmp.path()).await;
    let config = || ApiServerConfig {
        storage: StorageConfig::Etcd {
            servers: vec![server.url.clone()],
            prefix: "/c".into(),
            tls: None,
        },
        ..ApiServerConfig::memory()
    };
    let a = ApiServer::open(config()).await.unwrap();
    let b = ApiServer::open(config()).await.unwrap();
    let (on_a, on_b) = (a.client(), b.client());
    let r = ApiResource::of::<ConfigMap>();
    let rv = |o: &orch_types::client::ObjectList<DynamicObject>| -> u64 {
        o.metadata
            .resource_version
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    };
    for i in 0..30 {
        let name = format!("cm-{i}");
        let created = on_a
            .create(
                &r,
                Some("default"),
                &obj(&name, "1"),
                &PostParams::default(),
            )
            .await
            .unwrap();
        let list = on_b
            .list(&r, Some("default"), &ListParams::default())
            .await
            .unwrap();
        assert!(
            list.items.iter().any(|o| o.name() == name),
            "a consistent list on B right after the create of {name} on A misses it"
        );
        let created_rv: u64 = created.resource_version().unwrap().parse().unwrap();
        assert!(rv(&list) >= created_rv);
    }

    let mut raw = etcd_client::Client::connect([server.url.as_str()], None)
        .await
        .unwrap();
    let put = raw.put("/elsewhere/x", "1", None).await.unwrap();
    let foreign = u64::try_from(put.header().unwrap().revision()).unwrap();
    let list = on_b
        .list(&r, Some("default"), &ListParams::default())
        .await
        .expect("a consistent read after a write outside the prefix");
    assert!(rv(&list) >= foreign, "{} < {foreign}", rv(&list));
    assert_eq!(list.items.len(), 30);
    drop((a, b, server));
}

/// Two stores on one etcd run the compactor's rounds as two API servers would: the shared
/// `compact_rev_key` version lets one compaction per interval happen, at the revision recorded
/// one round before, whichever store's round comes first.
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_compactor_rounds_are_shared_by_api_servers() {
    use orch_apiserver::storage::CompactorState;
    let tmp = tempfile::tempdir().unwrap();
    let (a, server) = etcd_store(tmp.path(), "/x").await;
    let b = EtcdStore::connect(&[server.url.as_str()], "/y", None)
        .await
        .unwrap();
    let (mut sa, mut sb) = (CompactorState::default(), CompactorState::default());
    let v1 = a.create("/registry/t/a", obj("a", "1")).await.unwrap();

    // Round 1: A is first (time 0 → 1), records the revision after its write, compacts nothing;
    // B finds time 1 and records the current revision.
    a.compactor_round(&mut sa).await.unwrap();
    assert_eq!(sa.time, 1);
    let recorded = sa.revision;
    assert!(recorded > v1.mod_revision);
    b.compactor_round(&mut sb).await.unwrap();
    assert_eq!(sb.time, 1);
    assert_eq!(a.compacted_revision(), 0);
    a.update("/registry/t/a", obj("a", "2"), None)
        .await
        .unwrap();

    // Round 2: B is first this time: it compacts at what it recorded; A's round finds B was
    // first and compacts nothing.
    b.compactor_round(&mut sb).await.unwrap();
    assert_eq!(sb.time, 2);
    let compacted_by_b = b.compacted_revision();
    assert!(compacted_by_b >= recorded, "{compacted_by_b} < {recorded}");
    a.compactor_round(&mut sa).await.unwrap();
    assert_eq!(sa.time, 2);
    let old = ListOptions {
        revision: Some(v1.mod_revision),
        ..Default::default()
    };
    let err = a.list("/registry/t/", &old).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Compacted { compacted, .. } if compacted == compacted_by_b),
        "{err}"
    );
    // The in-process default: the same rounds, one store.
    let m: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    let mut sm = CompactorState::default();
    let w = m.create("/registry/t/a", obj("a", "1")).await.unwrap();
    m.compactor_round(&mut sm).await.unwrap();
    m.update("/registry/t/a", obj("a", "2"), None)
        .await
        .unwrap();
    assert_eq!(m.compacted_revision(), 0);
    m.compactor_round(&mut sm).await.unwrap();
    assert_eq!(m.compacted_revision(), w.mod_revision);
    assert_eq!(sm.time, 2);
    drop(server);
}
