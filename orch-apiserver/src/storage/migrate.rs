//! Copying a whole cluster from one [`Storage`] to another (`orch storage migrate`).
//!
//! [`copy`] reads every key under [`key::ROOT`] (`/registry/`) of the source in pages of
//! [`PAGE_SIZE`], all at the revision of the first page (one consistent snapshot), checks that
//! the target holds nothing under `/registry/`, and creates each object in the target with its
//! key unchanged. Objects keep everything — name, `metadata.uid`, `creationTimestamp`,
//! `generation`, `managedFields`, labels, spec and status — except `metadata.resourceVersion`,
//! which the target assigns (its own revision counter).
//!
//! **Order.** The creates are issued one at a time in the order of the source's `mod_revision`,
//! i.e. of the objects' `resourceVersion`s. Every object gets a new revision in the target, and
//! for any two objects, the one with the lower `resourceVersion` in the source has the lower one
//! in the target: the relative `resourceVersion` order of the objects is kept (this is the order
//! a client can observe; the creation order remains visible as the copied `creationTimestamp`).
//! The source's history (older versions, deletions) is not copied: only the latest version of
//! each live key. The target's `resourceVersion`s are new numbers (possibly lower than the
//! source's), so clients of the old cluster must relist, as after restoring an etcd snapshot.
//!
//! **Failure.** The target must be empty under `/registry/`, otherwise nothing is written
//! ([`MigrateError::TargetNotEmpty`]). A write failing midway stops the copy and reports how
//! many objects were copied and the key that failed ([`MigrateError::Write`]); the target then
//! holds a partial copy, which can be cleared (a fresh data directory, or the keys under the
//! etcd prefix deleted) before running the copy again. Stop every API server of the source
//! before copying: writes made during the copy are not in the snapshot.
//!
//! ```
//! # tokio_test_block_on(async {
//! use orch_apiserver::storage::{memory::MemoryStore, migrate, Storage};
//! use orch_types::DynamicObject;
//! let (from, to) = (MemoryStore::new(), MemoryStore::new());
//! from.create("/registry/core/configmaps/default/a",
//!             DynamicObject::new("v1", "ConfigMap", "a")).await.unwrap();
//! let report = migrate::copy(&from, &to, &mut |_| {}).await.unwrap();
//! assert_eq!(report.objects, 1);
//! assert!(to.get("/registry/core/configmaps/default/a").await.unwrap().is_some());
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f) }
//! ```

use super::{key, ListOptions, Revision, Storage, StorageError, Stored, WriteOp};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Keys read from the source per list call.
pub const PAGE_SIZE: usize = 500;

/// What [`copy`] has done so far, reported to its progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// The source has been read: `objects` keys at `revision`; the creates start.
    Read {
        /// Number of objects to copy.
        objects: usize,
        /// The source revision of the snapshot.
        revision: Revision,
    },
    /// One more object has been created in the target.
    Copied {
        /// The key just created.
        key: &'a str,
        /// Objects copied so far, this one included.
        done: usize,
        /// Objects to copy in all.
        total: usize,
    },
}

/// What [`copy`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// The source revision the snapshot was read at.
    pub source_revision: Revision,
    /// Objects copied.
    pub objects: usize,
    /// The target revisions of the first and last object created (`None` when nothing was
    /// copied).
    pub target_revisions: Option<(Revision, Revision)>,
    /// Objects copied per resource, named as kubectl does (`configmaps`,
    /// `deployments.apps`); a key outside the `/registry/GROUP/PLURAL/` layout counts under
    /// itself.
    pub per_resource: BTreeMap<String, usize>,
}

/// Why [`copy`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
    /// The target already holds objects; nothing was written.
    #[error(
        "the target is not empty: it holds {keys} key(s) under {root} (the first is {first}); \
         nothing was written. Migrate only into an empty store: a fresh data directory, or an \
         etcd prefix with nothing under it",
        root = key::ROOT
    )]
    TargetNotEmpty {
        /// The first key found in the target.
        first: String,
        /// How many keys the target holds under `/registry/`.
        keys: usize,
    },
    /// Checking whether the target is empty failed; nothing was written.
    #[error("cannot read the target: {0}; nothing was written")]
    ReadTarget(#[source] StorageError),
    /// Reading the source failed; nothing was written.
    #[error("cannot read the source: {0}; nothing was written")]
    ReadSource(#[source] StorageError),
    /// A create in the target failed after `copied` of `total` objects.
    #[error(
        "writing {key} into the target failed after {copied} of {total} objects were copied: \
         {source}. The target holds a partial copy: clear it (a fresh data directory, or delete \
         the keys under the etcd prefix) and run the migration again"
    )]
    Write {
        /// The key whose create failed.
        key: String,
        /// Objects copied before it.
        copied: usize,
        /// Objects to copy in all.
        total: usize,
        /// The target's error.
        source: StorageError,
    },
}

/// The kubectl name of the resource of `key` (`configmaps`, `deployments.apps`), or the key
/// itself when it does not follow the `/registry/GROUP/PLURAL/…` layout.
pub fn resource_name(key: &str) -> String {
    let Some(prefix) = key::resource_prefix_of(key) else {
        return key.to_string();
    };
    let inner = prefix
        .strip_prefix(key::ROOT)
        .and_then(|p| p.strip_suffix('/'))
        .unwrap_or(prefix);
    match inner.split_once('/') {
        Some(("core", plural)) => plural.to_string(),
        Some((group, plural)) => format!("{plural}.{group}"),
        None => inner.to_string(),
    }
}

/// Every key under `/registry/` of `from` at one revision, in key order.
async fn snapshot(from: &dyn Storage) -> Result<(Vec<(String, Stored)>, Revision), StorageError> {
    let mut opts = ListOptions {
        revision: None,
        limit: Some(PAGE_SIZE),
        start_after: None,
    };
    let mut items = Vec::new();
    loop {
        let page = from.list_stored(key::ROOT, &opts).await?;
        opts.revision = Some(page.revision);
        opts.start_after = page.items.last().map(|(k, _)| k.clone());
        items.extend(page.items);
        if page.remaining == 0 || opts.start_after.is_none() {
            return Ok((items, page.revision));
        }
    }
}

/// Copies every object under `/registry/` of `from` into `to`, which must hold nothing there.
///
/// See the module documentation for what is kept, the order of the creates and what a failure
/// leaves behind. `progress` is called once the source is read and after each create.
pub async fn copy(
    from: &dyn Storage,
    to: &dyn Storage,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<MigrateReport, MigrateError> {
    let probe = ListOptions {
        limit: Some(1),
        ..ListOptions::default()
    };
    let existing = to
        .list_stored(key::ROOT, &probe)
        .await
        .map_err(MigrateError::ReadTarget)?;
    if let Some((first, _)) = existing.items.first() {
        return Err(MigrateError::TargetNotEmpty {
            first: first.clone(),
            keys: existing.items.len() + existing.remaining,
        });
    }

    let (mut items, revision) = snapshot(from).await.map_err(MigrateError::ReadSource)?;
    // Every object must decode before anything is written; each is decoded again just before
    // its create, so that only the stored encodings (not the trees) are held meanwhile.
    for (k, s) in &items {
        s.decode(k).map_err(MigrateError::ReadSource)?;
    }
    // One write is one revision, so no two keys share a mod_revision.
    items.sort_by_key(|(_, s)| s.mod_revision);

    let total = items.len();
    progress(Progress::Read {
        objects: total,
        revision,
    });
    let mut report = MigrateReport {
        source_revision: revision,
        ..MigrateReport::default()
    };
    for (copied, (key, stored)) in items.into_iter().enumerate() {
        let fail = |key: String, source| MigrateError::Write {
            key,
            copied,
            total,
            source,
        };
        let mut object = match stored.decode(&key) {
            Ok(v) => Arc::unwrap_or_clone(v.object),
            Err(e) => return Err(fail(key, e)),
        };
        object.metadata.resource_version = None;
        // A TTL (an Event's) is not read from the source: copies stay until deleted.
        let op = WriteOp::Create {
            key: key.clone(),
            object,
            ttl: None,
        };
        let written = match to.write(op).await {
            Ok(v) => v,
            Err(e) => return Err(fail(key, e)),
        };
        let first = report
            .target_revisions
            .map_or(written.mod_revision, |(first, _)| first);
        report.target_revisions = Some((first, written.mod_revision));
        report.objects = copied + 1;
        *report.per_resource.entry(resource_name(&key)).or_default() += 1;
        progress(Progress::Copied {
            key: &key,
            done: copied + 1,
            total,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_kubectl_names() {
        assert_eq!(
            resource_name("/registry/core/configmaps/default/a"),
            "configmaps"
        );
        assert_eq!(
            resource_name("/registry/apps/deployments/default/web"),
            "deployments.apps"
        );
        assert_eq!(resource_name("/registry/core/nodes/n1"), "nodes");
        assert_eq!(resource_name("/registry/odd"), "/registry/odd");
    }
}
