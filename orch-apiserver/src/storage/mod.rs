//! The MVCC [`Storage`] trait and its backends.
//!
//! The trait is etcd-shaped so that an etcd backend maps one to one: one global revision counter,
//! every committed write gets the next revision (which becomes the object's `resourceVersion`),
//! creates are a transaction comparing "key absent", updates and deletes compare the key's
//! `mod_revision`, lists read a consistent snapshot at a revision with limit/continue, and a watch
//! delivers every event after a revision, in revision order, none skipped or repeated.
//!
//! Backends: [`memory::MemoryStore`] (tests, simulation), [`embedded::EmbeddedStore`] (durable,
//! redb with group commit) and `etcd::EtcdStore` (an etcd v3 cluster, cargo feature `etcd`, off
//! by default). The first two share the in-memory MVCC index of [`mvcc`], which holds every
//! version as its [`Encoded`] compact JSON (as etcd holds bytes): [`Storage::get_stored`] and
//! [`Storage::list_stored`] hand out those shared encodings, [`Storage::get`] and
//! [`Storage::list`] decode them. The etcd store keeps the encodings of recently seen versions
//! so that its reads and watch events share them too.

pub mod embedded;
pub mod encoded;
mod error;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod key;
pub mod memory;
pub mod migrate;
pub(crate) mod mvcc;

pub use encoded::Encoded;
pub use error::StorageError;

use async_trait::async_trait;
use futures::stream::BoxStream;
use orch_types::DynamicObject;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

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

/// One stored object as the store holds it: its shared encoding with its revisions.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The object's compact JSON; its `metadata.resourceVersion` equals `mod_revision`.
    pub encoded: Encoded,
    /// Revision at which the key was created.
    pub create_revision: Revision,
    /// Revision of the last change of the key.
    pub mod_revision: Revision,
}

impl Stored {
    /// Decodes the object of `key`; a stored encoding that does not decode is a backend error.
    pub fn decode(&self, key: &str) -> Result<Versioned> {
        Ok(Versioned {
            object: Arc::new(decode_stored(key, &self.encoded)?),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
        })
    }
}

/// Decodes a stored encoding of `key`.
pub(crate) fn decode_stored(key: &str, e: &Encoded) -> Result<DynamicObject> {
    e.decode()
        .map_err(|err| StorageError::Backend(format!("corrupt stored object {key}: {err}")))
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
    /// Not a change: every event of this watch up to the event's revision has been delivered
    /// (a progress notification, etcd's answer to `RequestProgress`; sent only after
    /// [`Storage::request_progress`]). Its key is empty and it carries no state.
    Progress,
}

/// One committed change.
///
/// It holds the stored encodings only (the event log and the watch cache window keep many
/// events); [`Event::object`] and [`Event::prev_object`] decode them once, for the first watcher
/// that needs the trees.
#[derive(Debug, Clone)]
pub struct Event {
    /// The revision of the change.
    pub revision: Revision,
    /// The key.
    pub key: String,
    /// What happened.
    pub kind: EventType,
    /// The new state as stored, shared with the store (`None` for deletes: the key is gone).
    pub encoded: Option<Encoded>,
    /// The previous state as stored (for modifications and deletes).
    pub prev: Option<Encoded>,
    object: OnceLock<Option<Arc<DynamicObject>>>,
    prev_object: OnceLock<Option<Arc<DynamicObject>>>,
}

fn decode_logged(key: &str, e: &Encoded) -> Option<DynamicObject> {
    match decode_stored(key, e) {
        Ok(o) => Some(o),
        Err(e) => {
            tracing::error!(error = %e, "undecodable object in a watch event");
            None
        }
    }
}

impl Event {
    /// A committed change: `encoded` is the new state (`None` for a delete), `prev` the
    /// previous one (`None` for a create).
    pub fn new(
        revision: Revision,
        key: String,
        kind: EventType,
        encoded: Option<Encoded>,
        prev: Option<Encoded>,
    ) -> Self {
        Self {
            revision,
            key,
            kind,
            encoded,
            prev,
            object: OnceLock::new(),
            prev_object: OnceLock::new(),
        }
    }

    /// A progress notification at `revision` ([`EventType::Progress`]).
    pub fn progress(revision: Revision) -> Self {
        Self::new(revision, String::new(), EventType::Progress, None, None)
    }

    /// The new state, decoded; for a delete the last state with `resourceVersion` set to the
    /// delete's revision. `None` only if the stored bytes do not decode (logged).
    pub fn object(&self) -> Option<&Arc<DynamicObject>> {
        self.object
            .get_or_init(|| match (&self.encoded, &self.prev) {
                (Some(e), _) => decode_logged(&self.key, e).map(Arc::new),
                (None, Some(p)) => {
                    let mut o = decode_logged(&self.key, p)?;
                    o.metadata.resource_version = Some(self.revision.to_string());
                    Some(Arc::new(o))
                }
                (None, None) => None,
            })
            .as_ref()
    }

    /// The previous state, decoded (`None` for creates, or if the stored bytes do not decode,
    /// which is logged).
    pub fn prev_object(&self) -> Option<&Arc<DynamicObject>> {
        self.prev_object
            .get_or_init(|| decode_logged(&self.key, self.prev.as_ref()?).map(Arc::new))
            .as_ref()
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.revision == other.revision
            && self.key == other.key
            && self.kind == other.kind
            && self.encoded == other.encoded
            && self.prev == other.prev
    }
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

/// Result of [`Storage::list_stored`]: like [`ListResult`], with the stored encodings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredList {
    /// Keys and items in key order.
    pub items: Vec<(String, Stored)>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// Number of matching keys after the last returned one (non-zero: there is another page).
    pub remaining: usize,
}

impl StoredList {
    /// Decodes every item.
    pub fn decode(self) -> Result<ListResult> {
        let items = self
            .items
            .into_iter()
            .map(|(k, s)| {
                let v = s.decode(&k)?;
                Ok((k, v))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ListResult {
            items,
            revision: self.revision,
            remaining: self.remaining,
        })
    }
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
        /// The key is deleted this long after the write (see [`Storage::expire_due`]).
        ttl: Option<Duration>,
    },
    /// Replace `key`; compares its `mod_revision` with `expected` when given.
    Update {
        /// Key.
        key: String,
        /// New object.
        object: DynamicObject,
        /// Expected current `mod_revision`.
        expected: Option<Revision>,
        /// The key is deleted this long after the write; `None` keeps it until deleted (a
        /// TTL an earlier write gave it ends), as etcd's put without a lease.
        ttl: Option<Duration>,
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

/// What an API server's compactor carries from one [`Storage::compactor_round`] to the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactorState {
    /// The compactors' logical time: rounds done (etcd: the version of `compact_rev_key`,
    /// shared by every API server on the etcd).
    pub time: i64,
    /// The revision the next round compacts at (`0`: none yet).
    pub revision: Revision,
}

/// An MVCC key-value store of API objects.
///
/// Every implementation must pass the conformance suite in `tests/storage_conformance.rs`.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The latest state of `key`, as stored.
    async fn get_stored(&self, key: &str) -> Result<Option<Stored>>;
    /// Keys starting with `prefix`, in key order, at a revision, as stored. A prefix that spans
    /// several resources (the root `/registry/`) lists each resource's keys in key order, the
    /// resources in the backend's order (etcd: upstream's key layout, `/registry/pods/` after
    /// `/registry/deployments/`); `start_after` continues in that order.
    async fn list_stored(&self, prefix: &str, opts: &ListOptions) -> Result<StoredList>;
    /// Applies one write (etcd: one `Txn` with a compare); returns the stored state (for a
    /// delete: the last state with `resourceVersion` set to the delete revision).
    async fn write(&self, op: WriteOp) -> Result<Versioned>;
    /// Every event for keys under `prefix` with a revision greater than `after`.
    /// Fails with [`StorageError::Compacted`] if `after` is older than the compacted revision.
    fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream>;
    /// The revision of the last committed write that this process saw.
    fn current_revision(&self) -> Revision;
    /// The revision of the last write committed in the store, asked of the store itself:
    /// with several clients on one store (API servers sharing an etcd) it can be ahead of
    /// [`Storage::current_revision`]. Consistent reads wait for it, as upstream's cacher asks
    /// etcd for its current revision (`GetCurrentResourceVersion`). The in-process backends
    /// answer [`Storage::current_revision`]: no other process writes them.
    async fn latest_revision(&self) -> Result<Revision> {
        Ok(self.current_revision())
    }
    /// Asks every open watch of this store for a progress notification: an
    /// [`EventType::Progress`] event at the store's revision once every earlier event is
    /// delivered. A store whose revisions can move without an event under `/registry/` (etcd:
    /// writes outside the key prefix) needs it so that a watcher can tell it is current.
    /// Nothing to do for the in-process backends, whose every revision is such an event.
    fn request_progress(&self) {}
    /// Whether the store answers now: the `etcd` check of `/healthz`, `/livez` and `/readyz`
    /// (see `crate::health`). etcd is asked for a small key within a timeout; the in-process
    /// backends have nothing to reach and always answer. The error is the reason, for the
    /// log and for the single check's endpoint (`/readyz/etcd`).
    async fn check_health(&self) -> std::result::Result<(), String> {
        Ok(())
    }
    /// The revision up to which history has been discarded.
    fn compacted_revision(&self) -> Revision;
    /// Discards history at and before `revision` (the latest version of each live key is kept).
    async fn compact(&self, revision: Revision) -> Result<()>;
    /// One round of the compactor an API server runs every compaction interval: compacts at
    /// the revision the previous round recorded in `state` (none on the first round) and
    /// records the current one, so history one interval old is discarded. Stores shared by
    /// several API servers (etcd) override this so that one round per interval compacts for all
    /// of them. `state` is updated even when the compaction fails.
    async fn compactor_round(&self, state: &mut CompactorState) -> Result<()> {
        let last = std::mem::replace(
            state,
            CompactorState {
                time: state.time + 1,
                revision: self.current_revision(),
            },
        );
        if last.revision > 0 {
            self.compact(last.revision).await?;
        }
        Ok(())
    }
    /// Deletes the keys whose TTL ([`WriteOp::Create`], [`WriteOp::Update`]) has passed, each
    /// with a compare on the revision that gave it (a key written again meanwhile stays), and
    /// returns how many it deleted; watchers see ordinary deletes. The API server calls it
    /// every second. Stores whose engine expires keys itself (etcd's leases) do nothing.
    async fn expire_due(&self) -> Result<usize> {
        Ok(0)
    }

    /// The latest state of `key`, decoded.
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        self.get_stored(key)
            .await?
            .map(|s| s.decode(key))
            .transpose()
    }
    /// Keys starting with `prefix`, in key order, at a revision, decoded.
    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
        self.list_stored(prefix, opts).await?.decode()
    }
    /// Creates `key`.
    async fn create(&self, key: &str, object: DynamicObject) -> Result<Versioned> {
        self.write(WriteOp::Create {
            key: key.into(),
            object,
            ttl: None,
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
            ttl: None,
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

/// The deadline of a write with `ttl` made now.
pub(crate) fn deadline(ttl: Option<Duration>) -> Option<SystemTime> {
    ttl.map(|t| SystemTime::now() + t)
}

/// Deletes each `(key, revision)` of `due` (keys whose deadline passed, with the revision that
/// set it) if it is still at that revision; the [`Storage::expire_due`] of the in-process
/// backends.
pub(crate) async fn delete_expired(
    store: &dyn Storage,
    due: Vec<(String, Revision)>,
) -> Result<usize> {
    let mut deleted = 0;
    for (key, revision) in due {
        match store.delete(&key, Some(revision)).await {
            Ok(_) => deleted += 1,
            // Written again (a new deadline) or deleted meanwhile.
            Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}
