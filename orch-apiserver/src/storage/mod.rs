//! The MVCC [`Storage`] trait and its backends.
//!
//! The trait is etcd-shaped so that an etcd backend maps one to one: one global revision counter,
//! every committed write gets the next revision (which becomes the object's `resourceVersion`),
//! creates are a transaction comparing "key absent", updates and deletes compare the key's
//! `mod_revision`, lists read a consistent snapshot at a revision with limit/continue, and a watch
//! delivers every event after a revision, in revision order, none skipped or repeated.
//!
//! Backends: [`memory::MemoryStore`] (tests, simulation) and [`embedded::EmbeddedStore`] (durable,
//! redb with group commit). Both share the in-memory MVCC index of [`mvcc`].

pub mod embedded;
mod error;
pub mod key;
pub mod memory;
pub(crate) mod mvcc;

pub use error::StorageError;

use async_trait::async_trait;
use futures::stream::BoxStream;
use orch_types::DynamicObject;
use std::sync::Arc;

/// A storage revision (etcd's `revision`; the `resourceVersion` of an object).
pub type Revision = u64;

/// Result of a storage call.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// One stored object with its revisions.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    /// The object; `metadata.resourceVersion` equals `mod_revision` (or, for the object returned
    /// by a delete, the revision of the delete).
    pub object: Arc<DynamicObject>,
    /// Revision at which the key was created.
    pub create_revision: Revision,
    /// Revision of the last change of the key.
    pub mod_revision: Revision,
}

/// Kind of a storage event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Key created.
    Added,
    /// Key updated.
    Modified,
    /// Key deleted.
    Deleted,
}

/// One committed change.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The revision of the change.
    pub revision: Revision,
    /// The key.
    pub key: String,
    /// What happened.
    pub kind: EventType,
    /// New state (for deletes: the last state, with `resourceVersion` = the delete revision).
    pub object: Arc<DynamicObject>,
    /// Previous state (for modifications and deletes).
    pub prev: Option<Arc<DynamicObject>>,
}

/// Options of [`Storage::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read at this revision (`None`: the latest).
    pub revision: Option<Revision>,
    /// At most this many items (`None`: all).
    pub limit: Option<usize>,
    /// Start strictly after this key (continue).
    pub start_after: Option<String>,
}

/// Result of [`Storage::list`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListResult {
    /// Keys and items in key order.
    pub items: Vec<(String, Versioned)>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// Number of matching keys after the last returned one (non-zero: there is another page).
    pub remaining: usize,
}

/// A stream of committed events; an `Err` ends the stream (e.g. the watcher fell behind).
pub type EventStream = BoxStream<'static, Result<Arc<Event>>>;

/// A write to apply atomically with a compare.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Create `key`; fails with [`StorageError::KeyExists`] if present.
    Create {
        /// Key.
        key: String,
        /// Object to store.
        object: DynamicObject,
    },
    /// Replace `key`; compares its `mod_revision` with `expected` when given.
    Update {
        /// Key.
        key: String,
        /// New object.
        object: DynamicObject,
        /// Expected current `mod_revision`.
        expected: Option<Revision>,
    },
    /// Delete `key`; compares its `mod_revision` with `expected` when given.
    Delete {
        /// Key.
        key: String,
        /// Expected current `mod_revision`.
        expected: Option<Revision>,
    },
}

impl WriteOp {
    /// The key written.
    pub fn key(&self) -> &str {
        match self {
            Self::Create { key, .. } | Self::Update { key, .. } | Self::Delete { key, .. } => key,
        }
    }
}

/// An MVCC key-value store of API objects.
///
/// Every implementation must pass the conformance suite in `tests/storage_conformance.rs`.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The latest state of `key`.
    async fn get(&self, key: &str) -> Result<Option<Versioned>>;
    /// Keys starting with `prefix`, in key order, at a revision.
    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult>;
    /// Applies one write (etcd: one `Txn` with a compare); returns the stored state (for a
    /// delete: the last state with `resourceVersion` set to the delete revision).
    async fn write(&self, op: WriteOp) -> Result<Versioned>;
    /// Every event for keys under `prefix` with a revision greater than `after`.
    /// Fails with [`StorageError::Compacted`] if `after` is older than the compacted revision.
    fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream>;
    /// The revision of the last committed write.
    fn current_revision(&self) -> Revision;
    /// The revision up to which history has been discarded.
    fn compacted_revision(&self) -> Revision;
    /// Discards history at and before `revision` (the latest version of each live key is kept).
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Creates `key`.
    async fn create(&self, key: &str, object: DynamicObject) -> Result<Versioned> {
        self.write(WriteOp::Create {
            key: key.into(),
            object,
        })
        .await
    }
    /// Updates `key` if its `mod_revision` is `expected` (or unconditionally with `None`).
    async fn update(
        &self,
        key: &str,
        object: DynamicObject,
        expected: Option<Revision>,
    ) -> Result<Versioned> {
        self.write(WriteOp::Update {
            key: key.into(),
            object,
            expected,
        })
        .await
    }
    /// Deletes `key` if its `mod_revision` is `expected` (or unconditionally with `None`).
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Versioned> {
        self.write(WriteOp::Delete {
            key: key.into(),
            expected,
        })
        .await
    }
}

/// A shared storage handle.
pub type SharedStorage = Arc<dyn Storage>;
