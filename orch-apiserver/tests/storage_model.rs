//! Property test: random operation sequences against the memory store and a naive model (a full
//! snapshot per revision). Every list at every revision, and the watch replay from revision 0,
//! must agree with the model.

use futures::StreamExt;
use orch_apiserver::storage::{memory::MemoryStore, EventType, ListOptions, Storage, StorageError};
use orch_types::DynamicObject;
use proptest::prelude::*;
use std::collections::BTreeMap;

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn memory_store_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let s = MemoryStore::new();
            let mut watch = s.watch("/registry/m/", 0).unwrap();
            // snapshots[r] = state after revision r.
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
                        let exp = mod_rev.get(&key(*k)).map(|r| if *stale { r.saturating_sub(1) } else { *r });
                        s.update(&key(*k), obj(tag), exp.or(Some(0))).await
                    }
                    Op::Delete(k, stale) => {
                        let exp = mod_rev.get(&key(*k)).map(|r| if *stale { r.saturating_sub(1) } else { *r });
                        s.delete(&key(*k), exp.or(Some(0))).await
                    }
                    Op::Compact => {
                        let at = (snapshots.len() as u64 - 1) / 2;
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
                    (Op::Update(k, _) | Op::Delete(k, _), Err(StorageError::Conflict { .. } | StorageError::NotFound { .. })) => {
                        // Missing key (expected 0 never matches) or a stale compare.
                        let _ = k;
                        continue;
                    }
                    (op, Err(e)) => prop_assert!(false, "{op:?}: unexpected {e}"),
                    (Op::Compact, Ok(_)) => unreachable!(),
                }
                snapshots.push(next);
                events += 1;
                prop_assert_eq!(s.current_revision(), snapshots.len() as u64 - 1);
            }
            for (rev, snap) in snapshots.iter().enumerate() {
                let rev = rev as u64;
                let l = s.list("/registry/m/", &ListOptions { revision: Some(rev), ..Default::default() }).await;
                if rev < compacted {
                    let compacted_err = matches!(l, Err(StorageError::Compacted { .. }));
                    prop_assert!(compacted_err, "list below the compacted revision must fail");
                    continue;
                }
                let got: Snapshot = l.unwrap().items.into_iter()
                    .map(|(k, v)| (k, v.object.data["data"]["tag"].as_str().unwrap().to_string()))
                    .collect();
                prop_assert_eq!(&got, snap, "revision {}", rev);
            }
            // The watch opened at revision 0 replays exactly one event per revision, in order.
            for r in 1..=events {
                let ev = watch.next().await.unwrap().unwrap();
                prop_assert_eq!(ev.revision, r as u64);
                let before = &snapshots[r - 1];
                let after = &snapshots[r];
                match ev.kind {
                    EventType::Added => prop_assert!(!before.contains_key(&ev.key) && after.contains_key(&ev.key)),
                    EventType::Modified => prop_assert!(before.contains_key(&ev.key) && after.contains_key(&ev.key)),
                    EventType::Deleted => prop_assert!(before.contains_key(&ev.key) && !after.contains_key(&ev.key)),
                }
            }
            Ok(())
        })?;
    }
}
