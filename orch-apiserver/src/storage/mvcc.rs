//! The in-memory MVCC index shared by every backend: per-key version history, the event log
//! since the compacted revision, and the live event broadcast.
//!
//! Writes happen in two steps so that a durable backend can persist between them:
//! [`prepare`] checks the compare against the current state and builds the new version and event
//! (pure), then [`MvccIndex::apply`] makes it visible and notifies watchers.
//!
//! Every version is held as its [`Encoded`] compact JSON, never as a tree: a write encodes once
//! (the writer and the event keep the tree it wrote), reads decode.

use super::{
    deadline, decode_stored, Encoded, Event, EventStream, EventType, ListOptions, Result, Revision,
    StorageError, Stored, StoredList, Versioned, WriteOp,
};
use futures::StreamExt;
use orch_types::DynamicObject;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::broadcast;

/// Capacity of the live event broadcast; a watcher further behind is closed.
const BROADCAST_CAPACITY: usize = 1 << 16;

/// One version of a key; `object == None` is a tombstone.
#[derive(Debug, Clone)]
struct Version {
    mod_revision: Revision,
    create_revision: Revision,
    object: Option<Encoded>,
}

/// The latest live state of a key.
pub(crate) type Current = Stored;

/// A checked write, ready to be persisted and applied.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub event: Arc<Event>,
    pub create_revision: Revision,
    /// When the key expires (a write with a TTL); `None`: never.
    pub expires: Option<SystemTime>,
    /// What the writer gets back (the event holds only the encoding).
    object: Arc<DynamicObject>,
}

impl Prepared {
    /// The state of the key after this write (`None` for a delete).
    pub fn current(&self) -> Option<Current> {
        Some(Current {
            create_revision: self.create_revision,
            mod_revision: self.event.revision,
            encoded: self.event.encoded.clone()?,
        })
    }

    /// What the writer gets back.
    pub fn versioned(&self) -> Versioned {
        Versioned {
            object: self.object.clone(),
            create_revision: self.create_revision,
            mod_revision: self.event.revision,
        }
    }
}

fn with_rv(mut object: DynamicObject, revision: Revision) -> DynamicObject {
    object.metadata.resource_version = Some(revision.to_string());
    object
}

fn encode(key: &str, object: &DynamicObject) -> Result<Encoded> {
    Encoded::encode(object)
        .map_err(|e| StorageError::Backend(format!("cannot encode object {key}: {e}")))
}

/// Checks `op` against `current` and builds the write at `revision`.
pub(crate) fn prepare(
    op: WriteOp,
    current: Option<Current>,
    revision: Revision,
) -> Result<Prepared> {
    let check = |key: &str, expected: Option<Revision>, cur: &Option<Current>| match cur {
        None => Err(StorageError::NotFound { key: key.into() }),
        Some(c) => match expected {
            Some(e) if e != c.mod_revision => Err(StorageError::Conflict {
                key: key.into(),
                expected: e,
                actual: c.mod_revision,
            }),
            _ => Ok(()),
        },
    };
    let (key, kind, object, prev, create_revision, expires) = match op {
        WriteOp::Create { key, object, ttl } => {
            if current.is_some() {
                return Err(StorageError::KeyExists { key });
            }
            (
                key,
                EventType::Added,
                with_rv(object, revision),
                None,
                revision,
                deadline(ttl),
            )
        }
        WriteOp::Update {
            key,
            object,
            expected,
            ttl,
        } => {
            check(&key, expected, &current)?;
            let c = current.expect("checked above");
            (
                key,
                EventType::Modified,
                with_rv(object, revision),
                Some(c.encoded),
                c.create_revision,
                deadline(ttl),
            )
        }
        WriteOp::Delete { key, expected } => {
            check(&key, expected, &current)?;
            let c = current.expect("checked above");
            let last = with_rv(decode_stored(&key, &c.encoded)?, revision);
            (
                key,
                EventType::Deleted,
                last,
                Some(c.encoded),
                c.create_revision,
                None,
            )
        }
    };
    let encoded = match kind {
        EventType::Deleted => None,
        _ => Some(encode(&key, &object)?),
    };
    Ok(Prepared {
        event: Arc::new(Event::new(revision, key, kind, encoded, prev)),
        create_revision,
        expires,
        object: Arc::new(object),
    })
}

/// Version history, event log and broadcast.
#[derive(Debug)]
pub(crate) struct MvccIndex {
    revision: Revision,
    compacted: Revision,
    keys: BTreeMap<String, Vec<Version>>,
    log: VecDeque<Arc<Event>>,
    tx: broadcast::Sender<Arc<Event>>,
    /// The keys with a TTL: key → its deadline, and the same ordered by deadline.
    deadlines: HashMap<String, SystemTime>,
    by_deadline: BTreeSet<(SystemTime, String)>,
}

impl MvccIndex {
    /// An empty index at `revision` whose history before it is unavailable (compacted).
    pub fn new(revision: Revision) -> Self {
        Self {
            revision,
            compacted: revision,
            keys: BTreeMap::new(),
            log: VecDeque::new(),
            tx: broadcast::channel(BROADCAST_CAPACITY).0,
            deadlines: HashMap::new(),
            by_deadline: BTreeSet::new(),
        }
    }

    /// Sets (or with `None` clears) the deadline of `key`.
    pub fn set_deadline(&mut self, key: &str, at: Option<SystemTime>) {
        if let Some(old) = self.deadlines.remove(key) {
            self.by_deadline.remove(&(old, key.to_string()));
        }
        if let Some(at) = at {
            self.deadlines.insert(key.to_string(), at);
            self.by_deadline.insert((at, key.to_string()));
        }
    }

    /// The keys whose deadline is at or before `now`, with their current revision.
    pub fn due(&self, now: SystemTime) -> Vec<(String, Revision)> {
        self.by_deadline
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, key)| Some((key.clone(), self.latest(key)?.mod_revision)))
            .collect()
    }

    /// Loads a live key without history (used when opening a durable store).
    pub fn load(&mut self, key: String, current: Current) {
        self.keys.insert(
            key,
            vec![Version {
                mod_revision: current.mod_revision,
                create_revision: current.create_revision,
                object: Some(current.encoded),
            }],
        );
    }

    pub fn revision(&self) -> Revision {
        self.revision
    }

    pub fn compacted(&self) -> Revision {
        self.compacted
    }

    /// The latest live state of `key`.
    pub fn latest(&self, key: &str) -> Option<Current> {
        let v = self.keys.get(key)?.last()?;
        Some(Current {
            create_revision: v.create_revision,
            mod_revision: v.mod_revision,
            encoded: v.object.clone()?,
        })
    }

    /// Makes a prepared write visible. Writes must be applied in revision order.
    pub fn apply(&mut self, p: Prepared) {
        let ev = p.event;
        debug_assert_eq!(ev.revision, self.revision + 1);
        self.revision = ev.revision;
        self.keys.entry(ev.key.clone()).or_default().push(Version {
            mod_revision: ev.revision,
            create_revision: p.create_revision,
            object: ev.encoded.clone(),
        });
        self.set_deadline(&ev.key, p.expires);
        self.log.push_back(ev.clone());
        // No receivers is fine.
        let _ = self.tx.send(ev);
    }

    pub fn list(&self, prefix: &str, opts: &ListOptions) -> Result<StoredList> {
        let at = opts.revision.unwrap_or(self.revision);
        if opts.revision.is_some() && at < self.compacted {
            return Err(StorageError::Compacted {
                requested: at,
                compacted: self.compacted,
            });
        }
        if at > self.revision {
            return Err(StorageError::FutureRevision {
                requested: at,
                current: self.revision,
            });
        }
        let start = match &opts.start_after {
            Some(k) if k.as_str() >= prefix => std::ops::Bound::Excluded(k.clone()),
            _ => std::ops::Bound::Included(prefix.to_string()),
        };
        let mut items = Vec::new();
        let mut remaining = 0;
        for (key, versions) in self
            .keys
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
        {
            let idx = versions.partition_point(|v| v.mod_revision <= at);
            let Some(v) = idx.checked_sub(1).map(|i| &versions[i]) else {
                continue;
            };
            let Some(object) = &v.object else { continue };
            if opts.limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            items.push((
                key.clone(),
                Stored {
                    encoded: object.clone(),
                    create_revision: v.create_revision,
                    mod_revision: v.mod_revision,
                },
            ));
        }
        Ok(StoredList {
            items,
            revision: at,
            remaining,
        })
    }

    /// Events under `prefix` after `after`: the logged ones now, then live ones.
    pub fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream> {
        if after < self.compacted {
            return Err(StorageError::Compacted {
                requested: after,
                compacted: self.compacted,
            });
        }
        let start = self.log.partition_point(|e| e.revision <= after);
        let history: Vec<Arc<Event>> = self
            .log
            .range(start..)
            .filter(|e| e.key.starts_with(prefix))
            .cloned()
            .collect();
        let last = self.revision.max(after);
        let rx = self.tx.subscribe();
        let prefix = prefix.to_string();
        let live = futures::stream::unfold(Some(rx), move |rx| {
            let prefix = prefix.clone();
            async move {
                let mut rx = rx?;
                loop {
                    match rx.recv().await {
                        Ok(ev) if ev.revision > last && ev.key.starts_with(&prefix) => {
                            return Some((Ok(ev), Some(rx)))
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            return Some((Err(StorageError::WatchLagged { missed }), None))
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(futures::stream::iter(history.into_iter().map(Ok))
            .chain(live)
            .boxed())
    }

    /// Drops history at and before `revision`.
    pub fn compact(&mut self, revision: Revision) -> Result<()> {
        if revision > self.revision {
            return Err(StorageError::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        if revision <= self.compacted {
            return Ok(());
        }
        while self.log.front().is_some_and(|e| e.revision <= revision) {
            self.log.pop_front();
        }
        self.keys.retain(|_, versions| {
            // Keep the newest version at or before `revision` (still visible at revisions up to
            // the next change) unless it is a tombstone, and everything after it.
            let idx = versions.partition_point(|v| v.mod_revision <= revision);
            if idx > 0 {
                let keep_from = if versions[idx - 1].object.is_some() {
                    idx - 1
                } else {
                    idx
                };
                versions.drain(..keep_from);
            }
            !versions.is_empty()
        });
        self.compacted = revision;
        Ok(())
    }
}
