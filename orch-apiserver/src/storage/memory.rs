//! [`MemoryStore`]: the MVCC index alone, no I/O. For tests and simulation.

use super::mvcc::{prepare, MvccIndex};
use super::{
    delete_expired, EventStream, ListOptions, Result, Revision, Storage, Stored, StoredList,
    Versioned, WriteOp,
};
use async_trait::async_trait;
use parking_lot::RwLock;

/// A storage backend that keeps everything in memory.
///
/// ```
/// # tokio_test_block_on(async {
/// use orch_apiserver::storage::{memory::MemoryStore, Storage};
/// use orch_types::DynamicObject;
/// let s = MemoryStore::new();
/// let v = s.create("/registry/core/configmaps/default/a",
///                  DynamicObject::new("v1", "ConfigMap", "a")).await.unwrap();
/// assert_eq!(v.mod_revision, 1);
/// assert_eq!(v.object.resource_version(), Some("1"));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f) }
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    index: RwLock<MvccIndex>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self {
            index: RwLock::new(MvccIndex::new(0)),
        }
    }
}

#[async_trait]
impl Storage for MemoryStore {
    async fn get_stored(&self, key: &str) -> Result<Option<Stored>> {
        Ok(self.index.read().latest(key))
    }

    async fn list_stored(&self, prefix: &str, opts: &ListOptions) -> Result<StoredList> {
        self.index.read().list(prefix, opts)
    }

    async fn write(&self, op: WriteOp) -> Result<Versioned> {
        let mut index = self.index.write();
        let current = index.latest(op.key());
        let p = prepare(op, current, index.revision() + 1)?;
        let out = p.versioned();
        index.apply(p);
        Ok(out)
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream> {
        self.index.read().watch(prefix, after)
    }

    fn current_revision(&self) -> Revision {
        self.index.read().revision()
    }

    fn compacted_revision(&self) -> Revision {
        self.index.read().compacted()
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.index.write().compact(revision)
    }

    async fn expire_due(&self) -> Result<usize> {
        let due = self.index.read().due(std::time::SystemTime::now());
        delete_expired(self, due).await
    }
}
