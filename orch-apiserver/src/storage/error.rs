//! [`StorageError`]: what a storage call can fail with.

use super::Revision;

/// Errors of a [`super::Storage`] call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// Create of a key that exists.
    #[error("key {key} already exists")]
    KeyExists {
        /// The key.
        key: String,
    },
    /// Update or delete of a missing key.
    #[error("key {key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The compare on `mod_revision` failed.
    #[error("key {key}: expected revision {expected}, found {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key's current revision.
        actual: Revision,
    },
    /// The requested revision has been compacted.
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        /// Requested revision.
        requested: Revision,
        /// Compacted revision.
        compacted: Revision,
    },
    /// The requested revision is in the future.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// Requested revision.
        requested: Revision,
        /// Current revision.
        current: Revision,
    },
    /// A watcher fell too far behind and was dropped; re-watch from its last revision.
    #[error("watcher fell behind by {missed} events and was closed")]
    WatchLagged {
        /// Events missed.
        missed: u64,
    },
    /// The data directory was written by a newer orch.
    #[error("data directory format {found} is newer than the supported format {supported}; upgrade orch")]
    UnsupportedFormat {
        /// Format found on disk.
        found: String,
        /// Newest format this build reads.
        supported: u32,
    },
    /// The store is out of space: the filesystem of the embedded store's data directory is
    /// full (or over its quota), or etcd refused the write with its NOSPACE alarm (`etcdserver:
    /// mvcc: database space exceeded`). The write was not made; reads go on, and writes succeed
    /// again once space is freed as `remedy` says.
    #[error("no space left on device: {store} is full (database space exceeded); {remedy}")]
    NoSpace {
        /// What is full: `the data directory DIR`, or etcd's database.
        store: String,
        /// How to give space back.
        remedy: String,
    },
    /// The store has been shut down.
    #[error("storage is closed")]
    Closed,
    /// The backend failed (I/O, corruption); nothing was written.
    #[error("storage backend error: {0}")]
    Backend(String),
}
