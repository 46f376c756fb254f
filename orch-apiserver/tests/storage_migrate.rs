//! `storage::migrate::copy` between backends: memory → embedded → memory keeps keys, UIDs, every
//! field but `resourceVersion`, and the relative `resourceVersion` order; a non-empty target is
//! refused with nothing written; a failing target reports how far the copy got. With the `etcd`
//! feature, memory → etcd → memory too, and an etcd prefix holding objects is refused.

use async_trait::async_trait;
use orch_apiserver::storage::migrate::{self, MigrateError, Progress};
use orch_apiserver::storage::{
    embedded::EmbeddedStore, memory::MemoryStore, EventStream, ListOptions, Revision, Storage,
    StorageError, Stored, StoredList, Versioned, WriteOp,
};
use orch_types::DynamicObject;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(feature = "etcd")]
#[allow(dead_code)]
#[path = "common/etcd.rs"]
mod etcd_server;

fn configmap(ns: &str, name: &str, uid: &str, v: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": uid,
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "labels": {"app": "web"},
            "managedFields": [{
                "manager": "kubectl-create",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2026-01-02T03:04:05Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:k": {}}}
            }]
        },
        "data": {"k": v}
    }))
    .expect("a valid ConfigMap")
}

fn deployment(name: &str, uid: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "uid": uid, "generation": 3},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}},
        "status": {"observedGeneration": 3, "replicas": 2}
    }))
    .expect("a valid Deployment")
}

fn cm_key(ns: &str, name: &str) -> String {
    format!("/registry/core/configmaps/{ns}/{name}")
}

/// A source with more than one page of keys, whose `resourceVersion` order differs from both key
/// order and creation order (updates move objects to the end), and with deleted keys.
async fn populated() -> MemoryStore {
    let s = MemoryStore::new();
    let n = migrate::PAGE_SIZE + 20;
    for i in 0..n {
        let name = format!("cm-{i:04}");
        let o = configmap("default", &name, &format!("uid-{i}"), "1");
        s.create(&cm_key("default", &name), o).await.unwrap();
    }
    s.create(
        "/registry/apps/deployments/default/web",
        deployment("web", "uid-web"),
    )
    .await
    .unwrap();
    s.create(
        "/registry/core/namespaces/default",
        DynamicObject::new("v1", "Namespace", "default"),
    )
    .await
    .unwrap();
    // Update a few early keys (now the newest) and delete some.
    for i in [3, 0, 7] {
        let name = format!("cm-{i:04}");
        let key = cm_key("default", &name);
        let o = configmap("default", &name, &format!("uid-{i}"), "2");
        s.update(&key, o, None).await.unwrap();
    }
    for i in [1, 8] {
        s.delete(&cm_key("default", &format!("cm-{i:04}")), None)
            .await
            .unwrap();
    }
    s
}

/// Every object, by key (a root list is in the backend's order of resources).
async fn all(s: &dyn Storage) -> Vec<(String, Versioned)> {
    let mut items = s
        .list("/registry/", &ListOptions::default())
        .await
        .unwrap()
        .items;
    items.sort_by(|(a, _), (b, _)| a.cmp(b));
    items
}

/// Keys in `resourceVersion` order.
fn rv_order(items: &[(String, Versioned)]) -> Vec<String> {
    let mut v: Vec<_> = items.iter().collect();
    v.sort_by_key(|(_, x)| x.mod_revision);
    v.into_iter().map(|(k, _)| k.clone()).collect()
}

fn without_rv(o: &DynamicObject) -> DynamicObject {
    let mut o = o.clone();
    o.metadata.resource_version = None;
    o
}

/// Same keys, same objects but for `resourceVersion`, same relative order, and every object's
/// `resourceVersion` is its revision in `to`.
async fn assert_same_cluster(from: &dyn Storage, to: &dyn Storage) {
    let (a, b) = (all(from).await, all(to).await);
    assert_eq!(a.len(), b.len());
    for ((ka, va), (kb, vb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        assert_eq!(without_rv(&va.object), without_rv(&vb.object), "{ka}");
        assert_eq!(
            vb.object.resource_version(),
            Some(vb.mod_revision.to_string().as_str())
        );
    }
    assert_eq!(rv_order(&a), rv_order(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_memory_embedded_memory() {
    let source = populated().await;
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::open(dir.path().join("store")).unwrap();

    let mut read = None;
    let mut copied = 0;
    let report = migrate::copy(&source, &embedded, &mut |p| match p {
        Progress::Read { objects, revision } => read = Some((objects, revision)),
        Progress::Copied { done, total, .. } => {
            assert_eq!(done, copied + 1);
            assert_eq!(Some(total), read.map(|(n, _)| n));
            copied = done;
        }
    })
    .await
    .unwrap();
    // The ConfigMaps less the two deleted, the Deployment and the Namespace.
    let n = (migrate::PAGE_SIZE + 20 - 2) + 1 + 1;
    assert_eq!(read, Some((n, source.current_revision())));
    assert_eq!(copied, n);
    assert_eq!(report.objects, n);
    assert_eq!(report.source_revision, source.current_revision());
    assert_eq!(report.target_revisions, Some((1, n as Revision)));
    assert_eq!(report.per_resource["configmaps"], n - 2);
    assert_eq!(report.per_resource["deployments.apps"], 1);
    assert_eq!(report.per_resource["namespaces"], 1);
    assert_same_cluster(&source, &embedded).await;
    // The updated objects are the newest in the target too.
    let order = rv_order(&all(&embedded).await);
    assert_eq!(
        order[n - 3..],
        [
            cm_key("default", "cm-0003"),
            cm_key("default", "cm-0000"),
            cm_key("default", "cm-0007")
        ]
    );

    // The copy is durable: reopened, and copied back into memory.
    embedded.close();
    drop(embedded);
    let embedded = EmbeddedStore::open(dir.path().join("store")).unwrap();
    let back = MemoryStore::new();
    let report = migrate::copy(&embedded, &back, &mut |_| {}).await.unwrap();
    assert_eq!(report.objects, n);
    assert_same_cluster(&source, &back).await;
    assert_same_cluster(&embedded, &back).await;
}

#[tokio::test]
async fn an_empty_source_copies_nothing() {
    let report = migrate::copy(&MemoryStore::new(), &MemoryStore::new(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(report.objects, 0);
    assert_eq!(report.target_revisions, None);
}

#[tokio::test]
async fn a_target_with_objects_is_refused_untouched() {
    let source = populated().await;
    let target = MemoryStore::new();
    let o = configmap("default", "there", "uid-there", "x");
    target.create(&cm_key("default", "there"), o).await.unwrap();
    target
        .create(
            "/registry/core/namespaces/default",
            DynamicObject::new("v1", "Namespace", "default"),
        )
        .await
        .unwrap();
    let before = all(&target).await;

    let mut called = false;
    let err = migrate::copy(&source, &target, &mut |_| called = true)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        MigrateError::TargetNotEmpty {
            first: cm_key("default", "there"),
            keys: 2
        }
    );
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert!(!called, "no progress before the refusal");
    assert_eq!(target.current_revision(), 2);
    assert_eq!(all(&target).await, before);
}

/// A target whose creates fail after `ok` of them.
struct FailingAfter {
    inner: MemoryStore,
    ok: usize,
    writes: AtomicUsize,
}

#[async_trait]
impl Storage for FailingAfter {
    async fn get_stored(&self, key: &str) -> Result<Option<Stored>, StorageError> {
        self.inner.get_stored(key).await
    }
    async fn list_stored(
        &self,
        prefix: &str,
        opts: &ListOptions,
    ) -> Result<StoredList, StorageError> {
        self.inner.list_stored(prefix, opts).await
    }
    async fn write(&self, op: WriteOp) -> Result<Versioned, StorageError> {
        if self.writes.fetch_add(1, Ordering::SeqCst) >= self.ok {
            return Err(StorageError::Backend("disk full".into()));
        }
        self.inner.write(op).await
    }
    fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream, StorageError> {
        self.inner.watch(prefix, after)
    }
    fn current_revision(&self) -> Revision {
        self.inner.current_revision()
    }
    fn compacted_revision(&self) -> Revision {
        self.inner.compacted_revision()
    }
    async fn compact(&self, revision: Revision) -> Result<(), StorageError> {
        self.inner.compact(revision).await
    }
}

#[tokio::test]
async fn a_failed_write_says_how_far_the_copy_got() {
    let source = MemoryStore::new();
    for name in ["a", "b", "c"] {
        let o = configmap("default", name, name, "1");
        source.create(&cm_key("default", name), o).await.unwrap();
    }
    let target = FailingAfter {
        inner: MemoryStore::new(),
        ok: 2,
        writes: AtomicUsize::new(0),
    };
    let err = migrate::copy(&source, &target, &mut |_| {})
        .await
        .unwrap_err();
    let MigrateError::Write {
        key, copied, total, ..
    } = &err
    else {
        panic!("not a write error: {err}")
    };
    assert_eq!(
        (key.as_str(), *copied, *total),
        (cm_key("default", "c").as_str(), 2, 3)
    );
    let msg = err.to_string();
    assert!(
        msg.contains("after 2 of 3 objects") && msg.contains("disk full"),
        "{msg}"
    );
    assert!(msg.contains("run the migration again"), "{msg}");
    assert_eq!(all(&target.inner).await.len(), 2);
}

#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_memory_etcd_memory() {
    use orch_apiserver::storage::etcd::EtcdStore;
    let dir = tempfile::tempdir().unwrap();
    let server = etcd_server::EtcdServer::start(dir.path()).await;
    let source = populated().await;
    // Another prefix on the same etcd already holds objects: it is not in the way.
    let other = EtcdStore::connect(&[server.url.as_str()], "/other", None)
        .await
        .unwrap();
    let o = configmap("default", "cm-0002", "elsewhere", "x");
    other
        .create(&cm_key("default", "cm-0002"), o)
        .await
        .unwrap();

    let etcd = EtcdStore::connect(&[server.url.as_str()], "/migrated", None)
        .await
        .unwrap();
    let report = migrate::copy(&source, &etcd, &mut |_| {}).await.unwrap();
    assert_eq!(report.objects, all(&source).await.len());
    assert_same_cluster(&source, &etcd).await;

    let back = MemoryStore::new();
    migrate::copy(&etcd, &back, &mut |_| {}).await.unwrap();
    assert_same_cluster(&source, &back).await;

    // A second copy into the now populated prefix is refused.
    let err = migrate::copy(&source, &etcd, &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::TargetNotEmpty { .. }), "{err}");
}
