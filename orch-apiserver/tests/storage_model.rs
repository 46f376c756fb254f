//! Property test: random operation sequences against a store and a naive model (a full
//! snapshot per revision). Every list at every revision, and the watch replay from the first
//! revision, must agree with the model. Runs on the memory store and, with the `etcd` feature,
//! on a real etcd.

use futures::StreamExt;
use orch_apiserver::storage::{memory::MemoryStore, EventType, ListOptions, Storage, StorageError};
use orch_types::DynamicObject;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::BTreeMap;
use std::time::Duration;

// The etcd process helper of the storage conformance suite (its TLS half is unused here).
#[cfg(feature = "etcd")]
#[allow(dead_code)]
#[path = "common/etcd.rs"]
mod etcd_server;

#[derive(Debug, Clone)]
enum Op {
    Create(u8),
    Update(u8, bool),
    Delete(u8, bool),
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4).prop_map(Op::Create),
        (0u8..4, any::<bool>()).prop_map(|(k, s)| Op::Update(k, s)),
        (0u8..4, any::<bool>()).prop_map(|(k, s)| Op::Delete(k, s)),
        Just(Op::Compact),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..40)
}

fn key(k: u8) -> String {
    format!("/registry/m/k{k}")
}

fn obj(tag: u64) -> DynamicObject {
    let mut o = DynamicObject::new("v1", "ConfigMap", "x");
    o.data
        .insert("data".into(), serde_json::json!({ "tag": tag.to_string() }));
    o
}

type Snapshot = BTreeMap<String, String>;

/// Runs `ops` on `s`, which holds nothing under `/registry/m/`, and checks it against the model.
///
/// Revisions are counted from `base`, the store's revision before the first op (0 for a fresh
/// in-memory store; etcd starts at 1, and a shared etcd is further on). The watch is opened at
/// `base` and polled for `open` before the first write: etcd opens its watch on first poll, and
/// a compaction that overtakes it before it is open cancels it (docs/design/storage.md).
async fn check_model<S: Storage>(s: &S, ops: &[Op], open: Duration) -> Result<(), TestCaseError> {
    let base = s.current_revision();
    let mut watch = s.watch("/registry/m/", base).unwrap();
    let early = tokio::time::timeout(open, watch.next()).await;
    prop_assert!(early.is_err(), "an event before any write: {early:?}");
    // snapshots[r] = state after revision base + r.
    let mut snapshots: Vec<Snapshot> = vec![Snapshot::new()];
    let mut mod_rev: BTreeMap<String, u64> = BTreeMap::new();
    let mut compacted = 0;
    let mut events = 0;
    for (i, op) in ops.iter().enumerate() {
        let tag = i as u64;
        let cur = snapshots.last().unwrap().clone();
        let res = match op {
            Op::Create(k) => s.create(&key(*k), obj(tag)).await,
            Op::Update(k, stale) => {
                let exp = mod_rev
                    .get(&key(*k))
                    .map(|r| if *stale { r.saturating_sub(1) } else { *r });
                s.update(&key(*k), obj(tag), exp.or(Some(0))).await
            }
            Op::Delete(k, stale) => {
                let exp = mod_rev
                    .get(&key(*k))
                    .map(|r| if *stale { r.saturating_sub(1) } else { *r });
                s.delete(&key(*k), exp.or(Some(0))).await
            }
            Op::Compact => {
                let at = base + (snapshots.len() as u64 - 1) / 2;
                s.compact(at.max(compacted)).await.unwrap();
                compacted = at.max(compacted);
                continue;
            }
        };
        let mut next = cur.clone();
        match (op, res) {
            (Op::Create(k), Ok(v)) => {
                prop_assert!(!cur.contains_key(&key(*k)));
                next.insert(key(*k), tag.to_string());
                mod_rev.insert(key(*k), v.mod_revision);
            }
            (Op::Create(k), Err(StorageError::KeyExists { .. })) => {
                prop_assert!(cur.contains_key(&key(*k)));
                continue;
            }
            (Op::Update(k, stale), Ok(v)) => {
                prop_assert!(cur.contains_key(&key(*k)) && !stale);
                next.insert(key(*k), tag.to_string());
                mod_rev.insert(key(*k), v.mod_revision);
            }
            (Op::Delete(k, stale), Ok(_)) => {
                prop_assert!(cur.contains_key(&key(*k)) && !stale);
                next.remove(&key(*k));
                mod_rev.remove(&key(*k));
            }
            (
                Op::Update(k, _) | Op::Delete(k, _),
                Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }),
            ) => {
                // Missing key (expected 0 never matches) or a stale compare.
                let _ = k;
                continue;
            }
            (op, Err(e)) => prop_assert!(false, "{op:?}: unexpected {e}"),
            (Op::Compact, Ok(_)) => unreachable!(),
        }
        snapshots.push(next);
        events += 1;
        prop_assert_eq!(s.current_revision(), base + snapshots.len() as u64 - 1);
    }
    for (r, snap) in snapshots.iter().enumerate() {
        let rev = base + r as u64;
        let l = s
            .list(
                "/registry/m/",
                &ListOptions {
                    revision: Some(rev),
                    ..Default::default()
                },
            )
            .await;
        if rev < compacted {
            let compacted_err = matches!(l, Err(StorageError::Compacted { .. }));
            prop_assert!(compacted_err, "list below the compacted revision must fail");
            continue;
        }
        let got: Snapshot = l
            .unwrap()
            .items
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.object.data["data"]["tag"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        prop_assert_eq!(&got, snap, "revision {}", rev);
    }
    // The watch opened at the first revision replays exactly one event per revision, in order.
    for r in 1..=events {
        let ev = watch.next().await.unwrap().unwrap();
        prop_assert_eq!(ev.revision, base + r as u64);
        let before = &snapshots[r - 1];
        let after = &snapshots[r];
        match ev.kind {
            EventType::Added => {
                prop_assert!(!before.contains_key(&ev.key) && after.contains_key(&ev.key))
            }
            EventType::Modified => {
                prop_assert!(before.contains_key(&ev.key) && after.contains_key(&ev.key))
            }
            EventType::Deleted => {
                prop_assert!(before.contains_key(&ev.key) && !after.contains_key(&ev.key))
            }
            EventType::Progress => prop_assert!(false, "a progress notification nobody asked for"),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn memory_store_matches_model(ops in ops()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // One poll of the watch before the writes: the memory store buffers from the call on.
        rt.block_on(check_model(&MemoryStore::new(), &ops, Duration::ZERO))?;
    }
}

/// The same model on a real etcd: one etcd for the whole test, each case on a fresh key prefix
/// (a store of its own, its revisions counted from etcd's revision when it starts). 24 cases,
/// not 64: each case costs a connect and the watch's opening wait, and the test stays within a
/// few seconds.
#[cfg(feature = "etcd")]
#[test]
fn etcd_store_matches_model() {
    use orch_apiserver::storage::etcd::EtcdStore;
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::Cell;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let server = rt.block_on(etcd_server::EtcdServer::start(tmp.path()));
    let case = Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let result = runner.run(&ops(), |ops| {
        case.set(case.get() + 1);
        rt.block_on(async {
            let prefix = format!("/model-{}", case.get());
            let s = EtcdStore::connect(&[server.url.as_str()], &prefix, None)
                .await
                .unwrap_or_else(|e| panic!("connect to etcd: {e}\n{}", server.log()));
            // Long enough for etcd to register the watch (a loopback round trip).
            check_model(&s, &ops, Duration::from_millis(200)).await
        })
    });
    if let Err(e) = result {
        panic!("{e}\n{}", server.log());
    }
}
