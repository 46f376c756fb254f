//! The watch cache: one [`ResourceCache`] per resource type, fed by a single storage watch.
//!
//! Each resource cache holds the current objects of its type and a window of its most recent
//! events. Watches and `resourceVersion=0` (and consistent) lists are served from memory; a
//! thousand watchers cost one `Arc` clone per event each, never a storage read. The current
//! objects are the store's own shared [`Encoded`] forms (one copy of an object in the whole
//! process); lists and initial events hand them out and the reader decodes them outside the
//! lock, as upstream's cacher decodes what etcd returns. A watch from a
//! revision older than the window fails with [`CacheError::Expired`] (410 `Expired` on the wire).
//!
//! Consistency: the dispatcher applies storage events in revision order, and publishes the last
//! applied revision while holding the lock of the resource it just changed, so a reader holding a
//! resource's lock sees exactly the events up to [`WatchCache::applied`] (upstream
//! `staging/src/k8s.io/apiserver/pkg/storage/cacher/watch_cache.go` gives the same guarantee with
//! its `resourceVersion` field). A consistent read waits until the cache has applied the storage's
//! current revision (upstream "consistent list from cache", KEP-2340).

use crate::storage::{
    key, Encoded, Event, EventType, ListOptions, Revision, SharedStorage, StorageError,
};
use dashmap::DashMap;
use futures::StreamExt;
use parking_lot::RwLock;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// Default number of events kept per resource type.
pub const DEFAULT_WINDOW: usize = 10_000;
/// Capacity of a resource's live broadcast; a watcher further behind is closed.
const FANOUT_CAPACITY: usize = 8192;
/// How long a read waits for the cache to catch up before failing.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(3);
/// While a consistent read waits, how often the store is asked for a progress notification
/// (upstream's progress requester asks every 100 ms).
const PROGRESS_REQUEST_INTERVAL: Duration = Duration::from_millis(100);

/// Raises the applied revision to `revision` (never lowers it: a progress notification may have
/// raised it past events still on their way from a store that reports progress early).
fn advance(applied: &watch::Sender<Revision>, revision: Revision) {
    applied.send_if_modified(|r| {
        let raised = revision > *r;
        if raised {
            *r = revision;
        }
        raised
    });
}

/// Errors of the watch cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The requested revision is older than the window.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// Requested revision.
        requested: Revision,
        /// Oldest revision a watch can start from.
        oldest: Revision,
    },
    /// The cache did not reach the requested revision in time.
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLarge {
        /// Requested revision.
        requested: Revision,
        /// Revision the cache has applied.
        current: Revision,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, Encoded>,
    window: VecDeque<Arc<Event>>,
    /// Every event of this type with a revision greater than this is in `window`.
    oldest: Revision,
}

/// The cached state and recent events of one resource type.
#[derive(Debug)]
pub struct ResourceCache {
    state: RwLock<State>,
    tx: broadcast::Sender<Arc<Event>>,
    capacity: usize,
}

/// A snapshot list from the cache.
#[derive(Debug, Clone)]
pub struct CachedList {
    /// Objects in key order, as stored.
    pub items: Vec<Encoded>,
    /// The revision the snapshot reflects.
    pub revision: Revision,
}

/// Events for a watcher: the window part already due, then the live receiver.
#[derive(Debug)]
pub struct CacheWatch {
    /// Events after the requested revision already in the window.
    pub backlog: Vec<Arc<Event>>,
    /// Live events (only those with a revision greater than `start`).
    pub live: broadcast::Receiver<Arc<Event>>,
    /// Live events at or below this revision are already in `backlog` or the snapshot.
    pub start: Revision,
    /// Current objects as stored, when the watch asked for initial state.
    pub initial: Option<Vec<Encoded>>,
}

impl ResourceCache {
    fn new(capacity: usize, oldest: Revision) -> Self {
        Self {
            state: RwLock::new(State {
                oldest,
                ..Default::default()
            }),
            tx: broadcast::channel(FANOUT_CAPACITY).0,
            capacity,
        }
    }

    fn apply(&self, ev: Arc<Event>, applied: &watch::Sender<Revision>) {
        let mut st = self.state.write();
        // Deletes carry no encoding: the key is gone.
        match &ev.encoded {
            None => {
                st.objects.remove(&ev.key);
            }
            Some(e) => {
                st.objects.insert(ev.key.clone(), e.clone());
            }
        }
        st.window.push_back(ev.clone());
        while st.window.len() > self.capacity {
            if let Some(old) = st.window.pop_front() {
                st.oldest = old.revision;
            }
        }
        advance(applied, ev.revision);
        let _ = self.tx.send(ev);
    }
}

/// The watch cache of every resource type.
pub struct WatchCache {
    storage: SharedStorage,
    resources: DashMap<String, Arc<ResourceCache>>,
    applied: watch::Sender<Revision>,
    start: AtomicU64,
    window: usize,
}

impl std::fmt::Debug for WatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCache")
            .field("applied", &self.applied())
            .field("resources", &self.resources.len())
            .finish()
    }
}

impl WatchCache {
    /// Loads every object from storage and starts following it. Needs a tokio runtime.
    pub async fn start(storage: SharedStorage, window: usize) -> Result<Arc<Self>, CacheError> {
        let cache = Arc::new(Self {
            storage,
            resources: DashMap::new(),
            applied: watch::channel(0).0,
            start: AtomicU64::new(0),
            window: window.max(1),
        });
        let mut events = cache.load().await?;
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move {
            loop {
                let Some(ev) = events.next().await else {
                    return;
                };
                let Some(cache) = weak.upgrade() else { return };
                match ev {
                    Ok(ev) => cache.dispatch(ev),
                    Err(e) => {
                        // Lost the storage watch (fell behind): reload, which also ends every
                        // open watch (their receivers close) so clients re-watch or relist.
                        tracing::warn!(error = %e, "watch cache reloading from storage");
                        loop {
                            match cache.load().await {
                                Ok(ev) => {
                                    events = ev;
                                    break;
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "watch cache reload failed");
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                            }
                        }
                    }
                }
            }
        });
        Ok(cache)
    }

    /// (Re)loads every resource from a storage snapshot; returns the watch continuing it.
    async fn load(&self) -> Result<crate::storage::EventStream, CacheError> {
        let snapshot = self
            .storage
            .list_stored(key::ROOT, &ListOptions::default())
            .await?;
        let start = snapshot.revision;
        let mut fresh: std::collections::HashMap<String, ResourceCache> = Default::default();
        for (k, item) in snapshot.items {
            if let Some(prefix) = key::resource_prefix_of(&k) {
                fresh
                    .entry(prefix.to_string())
                    .or_insert_with(|| ResourceCache::new(self.window, start))
                    .state
                    .get_mut()
                    .objects
                    .insert(k.clone(), item.encoded);
            }
        }
        let events = self.storage.watch(key::ROOT, start)?;
        self.resources.clear();
        for (prefix, rc) in fresh {
            self.resources.insert(prefix, Arc::new(rc));
        }
        self.start.store(start, Ordering::SeqCst);
        self.applied.send_replace(start.max(self.applied()));
        Ok(events)
    }

    fn resource(&self, prefix: &str) -> Arc<ResourceCache> {
        if let Some(r) = self.resources.get(prefix) {
            return r.clone();
        }
        self.resources
            .entry(prefix.to_string())
            .or_insert_with(|| Arc::new(ResourceCache::new(self.window, *self.applied.borrow())))
            .clone()
    }

    fn dispatch(&self, ev: Arc<Event>) {
        if ev.kind == EventType::Progress {
            advance(&self.applied, ev.revision);
            return;
        }
        match key::resource_prefix_of(&ev.key) {
            Some(prefix) => {
                let prefix = prefix.to_string();
                self.resource(&prefix).apply(ev, &self.applied);
            }
            None => advance(&self.applied, ev.revision),
        }
    }

    /// The last storage revision the cache has applied.
    pub fn applied(&self) -> Revision {
        *self.applied.borrow()
    }

    /// Waits until the cache has applied `revision`.
    pub async fn wait_for(&self, revision: Revision) -> Result<(), CacheError> {
        let mut rx = self.applied.subscribe();
        let res = tokio::time::timeout(CATCH_UP_TIMEOUT, rx.wait_for(|r| *r >= revision)).await;
        match res {
            Ok(Ok(_)) => Ok(()),
            _ => Err(CacheError::TooLarge {
                requested: revision,
                current: self.applied(),
            }),
        }
    }

    /// Waits until the cache reflects every write committed to the store so far, by any
    /// process (a consistent read): the store's latest revision
    /// ([`crate::storage::Storage::latest_revision`]), asking the store for progress
    /// notifications every [`PROGRESS_REQUEST_INTERVAL`] after the first while waiting, since
    /// that revision may belong to a write the cache does not watch (upstream's cacher does the same through its
    /// `progressRequester`, `staging/src/k8s.io/apiserver/pkg/storage/cacher/progress`).
    pub async fn sync(&self) -> Result<Revision, CacheError> {
        let rev = self.storage.latest_revision().await?;
        if rev <= self.applied() {
            return Ok(rev);
        }
        let mut rx = self.applied.subscribe();
        // The first request only after one interval: the revision is most often a write this
        // cache is about to apply, and an etcd without the fix of etcd issue 15220 (Debian 12
        // ships 3.4.23) may answer a progress request ahead of events still on their way to a
        // watch that is catching up, which a watch that is an interval behind risks.
        let mut ask = tokio::time::interval_at(
            tokio::time::Instant::now() + PROGRESS_REQUEST_INTERVAL,
            PROGRESS_REQUEST_INTERVAL,
        );
        let deadline = tokio::time::sleep(CATCH_UP_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                caught_up = rx.wait_for(|r| *r >= rev) => {
                    return match caught_up {
                        Ok(_) => Ok(rev),
                        Err(_) => Err(CacheError::TooLarge { requested: rev, current: self.applied() }),
                    };
                }
                _ = ask.tick() => self.storage.request_progress(),
                () = &mut deadline => {
                    return Err(CacheError::TooLarge { requested: rev, current: self.applied() });
                }
            }
        }
    }

    /// How many objects of one resource type (`resource_prefix` from [`key`]) are stored.
    pub fn count(&self, resource_prefix: &str) -> usize {
        self.resources
            .get(resource_prefix)
            .map_or(0, |r| r.state.read().objects.len())
    }

    /// Objects of one resource type under `prefix` (a collection prefix from [`key`]).
    pub fn list(&self, resource_prefix: &str, prefix: &str) -> CachedList {
        let r = self.resource(resource_prefix);
        let st = r.state.read();
        let revision = self.applied();
        let items = st
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        CachedList { items, revision }
    }

    /// Starts a watch of one resource type after `after` (`None`: now, with the current objects
    /// as `initial`). `initial_too` also returns the current objects when `after` is given
    /// (`sendInitialEvents=true`).
    pub async fn watch(
        &self,
        resource_prefix: &str,
        after: Option<Revision>,
    ) -> Result<CacheWatch, CacheError> {
        if let Some(after) = after {
            if after > self.applied() {
                self.wait_for(after).await?;
            }
        }
        let r = self.resource(resource_prefix);
        let st = r.state.read();
        let applied = self.applied();
        let live = r.tx.subscribe();
        match after {
            None => Ok(CacheWatch {
                backlog: Vec::new(),
                live,
                start: applied,
                initial: Some(st.objects.values().cloned().collect()),
            }),
            Some(after) => {
                if after < st.oldest.max(self.start.load(Ordering::SeqCst)) && after < applied {
                    return Err(CacheError::Expired {
                        requested: after,
                        oldest: st.oldest.max(self.start.load(Ordering::SeqCst)),
                    });
                }
                let from = st.window.partition_point(|e| e.revision <= after);
                Ok(CacheWatch {
                    backlog: st.window.range(from..).cloned().collect(),
                    live,
                    start: applied,
                    initial: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;
    use orch_types::DynamicObject;

    fn same(a: &Encoded, b: &Encoded) -> bool {
        std::ptr::eq(a.as_bytes().as_ptr(), b.as_bytes().as_ptr())
    }

    #[tokio::test]
    async fn holds_the_stores_encoding_and_follows_writes() {
        let storage: SharedStorage = Arc::new(MemoryStore::new());
        let k = |n: &str| format!("/registry/core/configmaps/default/{n}");
        storage
            .create(&k("a"), DynamicObject::new("v1", "ConfigMap", "a"))
            .await
            .unwrap();
        let cache = WatchCache::start(storage.clone(), 10).await.unwrap();
        let res = "/registry/core/configmaps/";
        let l = cache.list(res, res);
        let a = storage.get_stored(&k("a")).await.unwrap().unwrap();
        assert!(same(&l.items[0], &a.encoded), "loaded from storage as is");

        storage
            .create(&k("b"), DynamicObject::new("v1", "ConfigMap", "b"))
            .await
            .unwrap();
        storage.delete(&k("a"), None).await.unwrap();
        cache.sync().await.unwrap();
        let l = cache.list(res, res);
        let b = storage.get_stored(&k("b")).await.unwrap().unwrap();
        assert_eq!(l.items.len(), 1);
        assert!(same(&l.items[0], &b.encoded), "applied from the event");
        assert_eq!(l.items[0].decode().unwrap().name(), "b");
        let w = cache.watch(res, None).await.unwrap();
        let initial = w.initial.unwrap();
        assert!(same(&initial[0], &b.encoded));
    }
}
