//! [`EmbeddedStore`]: durable storage in a data directory, on `redb`, with group commit.
//!
//! Layout of the data directory:
//! - `FORMAT`: `orch-storage N` — the on-disk format version; a newer one is refused.
//! - `store.redb`: table `kv` (key → create revision, mod revision, object JSON), table
//!   `meta` (`revision` → the last committed revision) and table `ttl` (key → deadline, for
//!   keys written with a TTL; absent in stores written before it, which had none). The object JSON is the store's
//!   [`Encoded`](super::Encoded) form, written and loaded as is (loading checks it is JSON
//!   without building a tree).
//!
//! One writer thread owns all writes. It takes every request queued at that moment (up to
//! [`MAX_BATCH`]), checks each compare against the latest state plus the earlier writes of the
//! batch, assigns consecutive revisions, and commits the whole batch in one redb transaction with
//! `Durability::Immediate` (one fsync). Only after the commit returns are the writes applied to
//! the in-memory MVCC index (reads, watches) and acknowledged. If the commit fails, none of the
//! batch is applied or acknowledged as successful. See `docs/design/storage.md` for the crash
//! argument.
//!
//! A full disk (ENOSPC, EDQUOT) fails the commit with [`StorageError::NoSpace`]; redb then
//! refuses every operation until the file is reopened, so the writer reopens it (redb's
//! recovery rolls back to the last commit) and writes resume once space is freed, without a
//! restart. Reads are served from memory throughout.

use super::mvcc::{prepare, Current, MvccIndex, Prepared};
use super::{
    delete_expired, Encoded, EventStream, ListOptions, Result, Revision, Storage, StorageError,
    Stored, StoredList, Versioned, WriteOp,
};
use async_trait::async_trait;
use parking_lot::RwLock;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;

/// The on-disk format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Most writes committed in one transaction.
pub const MAX_BATCH: usize = 4096;

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Keys written with a TTL → their deadline in milliseconds since the Unix epoch.
const TTL: TableDefinition<&str, u64> = TableDefinition::new("ttl");
const REVISION_KEY: &str = "revision";

type Reply = oneshot::Sender<Result<Versioned>>;

struct Request {
    op: WriteOp,
    reply: Reply,
}

/// Durable storage in a directory.
pub struct EmbeddedStore {
    index: Arc<RwLock<MvccIndex>>,
    tx: parking_lot::Mutex<Option<mpsc::Sender<Request>>>,
    writer: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    dir: PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.dir)
            .finish()
    }
}

fn backend(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(e.to_string())
}

/// Whether a redb error is an I/O failure, after which redb answers every later operation
/// with `PreviousIo` until the database is closed and opened again.
fn is_io(e: &redb::Error) -> bool {
    matches!(
        e,
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::Backend(_)
    )
}

/// Maps a redb error of the store in `dir`: a full filesystem (ENOSPC) or an exceeded quota
/// (EDQUOT) is [`StorageError::NoSpace`], anything else [`StorageError::Backend`].
fn failure(dir: &Path, e: impl Into<redb::Error>) -> StorageError {
    let e: redb::Error = e.into();
    match &e {
        redb::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) =>
        {
            StorageError::NoSpace {
                store: format!("the data directory {}", dir.display()),
                remedy: "free space there and retry".to_string(),
            }
        }
        _ => backend(e),
    }
}

/// The writer's handle on `store.redb`. After an I/O failure (a full disk) redb refuses every
/// later operation until the database is reopened, so the handle is closed then and opened
/// again before the next commit: redb's recovery on open rolls the file back to its last
/// committed transaction, and writes resume once the cause (no space) is gone.
struct DbFile {
    dir: PathBuf,
    db: Option<redb::Database>,
}

impl DbFile {
    /// The open database, reopening it if an I/O failure closed it.
    fn get(&mut self) -> Result<&redb::Database> {
        if self.db.is_none() {
            let db = redb::Database::create(self.dir.join("store.redb"))
                .map_err(|e| failure(&self.dir, e))?;
            tracing::info!(dir = %self.dir.display(), "storage reopened after an I/O failure");
            self.db = Some(db);
        }
        self.db.as_ref().ok_or(StorageError::Closed)
    }

    /// The last committed revision in the file.
    fn revision(db: &redb::Database) -> Result<Revision, redb::Error> {
        let rtx = db.begin_read()?;
        let meta = rtx.open_table(META)?;
        let revision = meta.get(REVISION_KEY)?.map(|v| v.value()).unwrap_or(0);
        Ok(revision)
    }

    /// Commits `staged` (up to `revision`). On an I/O failure the database is closed and
    /// reopened, and its last committed revision tells whether the commit landed after all
    /// (the failure came after redb's commit point): `Ok` then, else the failure.
    ///
    /// A database reopened before this commit must be at the revision the batch starts from:
    /// if an earlier failed commit landed after all while the reopen then failed too, the file
    /// holds writes the in-memory index lacks, and writes are refused until a restart loads them.
    fn commit(&mut self, staged: &[(Prepared, Reply)], revision: Revision) -> Result<()> {
        let reopened = self.db.is_none();
        let dir = self.dir.clone();
        let db = self.get()?;
        if reopened {
            let base = revision - staged.len() as Revision;
            let found = Self::revision(db).map_err(|e| failure(&dir, e))?;
            if found != base {
                self.db = None;
                return Err(StorageError::Backend(format!(
                    "{} is at revision {found} but the server at {base} after an I/O failure; \
                     restart the server to load it",
                    dir.join("store.redb").display()
                )));
            }
        }
        let e = match persist(db, staged, revision) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let io = is_io(&e);
        let err = failure(&self.dir, e);
        if !io {
            return Err(err);
        }
        self.db = None;
        match self.get().map(Self::revision) {
            Ok(Ok(found)) if found == revision => Ok(()),
            _ => Err(err),
        }
    }
}

fn check_format(dir: &Path) -> Result<()> {
    let path = dir.join("FORMAT");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let found = text.trim();
            let n = found
                .strip_prefix("orch-storage ")
                .and_then(|n| n.parse::<u32>().ok());
            match n {
                Some(n) if n <= FORMAT_VERSION => Ok(()),
                _ => Err(StorageError::UnsupportedFormat {
                    found: found.to_string(),
                    supported: FORMAT_VERSION,
                }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = dir.join("FORMAT.tmp");
            std::fs::write(&tmp, format!("orch-storage {FORMAT_VERSION}\n")).map_err(backend)?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(backend)?;
            std::fs::rename(&tmp, &path).map_err(backend)?;
            Ok(())
        }
        Err(e) => Err(backend(e)),
    }
}

fn encode(create: Revision, modr: Revision, obj: &Encoded) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + obj.len());
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&modr.to_le_bytes());
    out.extend_from_slice(obj.as_bytes());
    out
}

fn decode(key: &str, bytes: &[u8]) -> Result<Current> {
    let corrupt = || StorageError::Backend(format!("corrupt record for key {key}"));
    if bytes.len() < 16 {
        return Err(corrupt());
    }
    let create = u64::from_le_bytes(bytes[..8].try_into().map_err(|_| corrupt())?);
    let modr = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| corrupt())?);
    let json = &bytes[16..];
    // Checks the JSON is well formed without building it.
    serde_json::from_slice::<serde::de::IgnoredAny>(json).map_err(|_| corrupt())?;
    Ok(Current {
        create_revision: create,
        mod_revision: modr,
        encoded: Encoded::from_json_bytes(json),
    })
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(backend)?;
        check_format(&dir)?;
        let db = redb::Database::create(dir.join("store.redb")).map_err(|e| failure(&dir, e))?;
        // Make sure both tables exist, then load the live state.
        let wtx = db.begin_write().map_err(backend)?;
        {
            wtx.open_table(KV).map_err(backend)?;
            wtx.open_table(META).map_err(backend)?;
            wtx.open_table(TTL).map_err(backend)?;
        }
        wtx.commit().map_err(|e| failure(&dir, e))?;
        let rtx = db.begin_read().map_err(backend)?;
        let meta = rtx.open_table(META).map_err(backend)?;
        let revision = meta
            .get(REVISION_KEY)
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0);
        let mut index = MvccIndex::new(revision);
        let kv = rtx.open_table(KV).map_err(backend)?;
        for entry in kv.iter().map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let key = k.value().to_string();
            let cur = decode(&key, v.value())?;
            index.load(key, cur);
        }
        let ttl = rtx.open_table(TTL).map_err(backend)?;
        for entry in ttl.iter().map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let at = SystemTime::UNIX_EPOCH + Duration::from_millis(v.value());
            index.set_deadline(k.value(), Some(at));
        }
        drop((kv, ttl, meta, rtx));
        let index = Arc::new(RwLock::new(index));
        let (tx, rx) = mpsc::channel::<Request>();
        let w_index = index.clone();
        let file = DbFile {
            dir: dir.clone(),
            db: Some(db),
        };
        let writer = std::thread::Builder::new()
            .name("orch-storage-writer".into())
            .spawn(move || writer_loop(file, w_index, rx))
            .map_err(backend)?;
        Ok(Self {
            index,
            tx: parking_lot::Mutex::new(Some(tx)),
            writer: parking_lot::Mutex::new(Some(writer)),
            dir,
        })
    }

    /// Stops the writer after the queued writes; later writes fail with [`StorageError::Closed`].
    pub fn close(&self) {
        self.tx.lock().take();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_loop(mut db: DbFile, index: Arc<RwLock<MvccIndex>>, rx: mpsc::Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        commit_batch(&mut db, &index, batch);
    }
}

/// Commits one batch. Refusals (a failed compare, a key that exists) are answered only after
/// the batch is committed and applied: a write refused because of an earlier write of the same
/// batch must not be answered before that write is durable and readable, or its client could
/// read the old state right after (a stale read), or see a state that a failed commit or a
/// crash never let exist. If the commit fails, the refused writes get the commit's error too
/// (their refusal may rest on writes that did not happen).
fn commit_batch(db: &mut DbFile, index: &RwLock<MvccIndex>, batch: Vec<Request>) {
    let mut next = index.read().revision();
    let mut overlay: HashMap<String, Option<Current>> = HashMap::new();
    let mut staged: Vec<(Prepared, Reply)> = Vec::with_capacity(batch.len());
    let mut refused: Vec<(StorageError, Reply)> = Vec::new();
    for Request { op, reply } in batch {
        let key = op.key().to_string();
        let current = match overlay.get(&key) {
            Some(c) => c.clone(),
            None => index.read().latest(&key),
        };
        match prepare(op, current, next + 1) {
            Ok(p) => {
                next += 1;
                overlay.insert(key, p.current());
                staged.push((p, reply));
            }
            Err(e) => refused.push((e, reply)),
        }
    }
    let committed = if staged.is_empty() {
        Ok(())
    } else {
        db.commit(&staged, next)
    };
    match committed {
        Ok(()) => {
            let mut idx = index.write();
            for (p, reply) in staged {
                let out = p.versioned();
                idx.apply(p);
                let _ = reply.send(Ok(out));
            }
            drop(idx);
            for (e, reply) in refused {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "storage commit failed");
            for reply in staged
                .into_iter()
                .map(|(_, r)| r)
                .chain(refused.into_iter().map(|(_, r)| r))
            {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

fn persist(
    db: &redb::Database,
    staged: &[(Prepared, Reply)],
    revision: Revision,
) -> Result<(), redb::Error> {
    let wtx = db.begin_write()?;
    {
        let mut kv = wtx.open_table(KV)?;
        let mut ttl = wtx.open_table(TTL)?;
        for (p, _) in staged {
            let ev = &p.event;
            match p.expires {
                Some(at) => {
                    let ms = at
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                    ttl.insert(ev.key.as_str(), ms)?;
                }
                None => {
                    ttl.remove(ev.key.as_str())?;
                }
            }
            match &ev.encoded {
                None => {
                    kv.remove(ev.key.as_str())?;
                }
                Some(obj) => {
                    let bytes = encode(p.create_revision, ev.revision, obj);
                    kv.insert(ev.key.as_str(), bytes.as_slice())?;
                }
            }
        }
        let mut meta = wtx.open_table(META)?;
        meta.insert(REVISION_KEY, revision)?;
    }
    // Durability::Immediate is redb's default: commit returns after fsync.
    Ok(wtx.commit()?)
}

#[async_trait]
impl Storage for EmbeddedStore {
    async fn get_stored(&self, key: &str) -> Result<Option<Stored>> {
        Ok(self.index.read().latest(key))
    }

    async fn list_stored(&self, prefix: &str, opts: &ListOptions) -> Result<StoredList> {
        self.index.read().list(prefix, opts)
    }

    async fn write(&self, op: WriteOp) -> Result<Versioned> {
        let (reply, rx) = oneshot::channel();
        {
            let tx = self.tx.lock();
            let tx = tx.as_ref().ok_or(StorageError::Closed)?;
            tx.send(Request { op, reply })
                .map_err(|_| StorageError::Closed)?;
        }
        rx.await.map_err(|_| StorageError::Closed)?
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
        // Only in-memory history exists; the file holds the latest state of each key.
        self.index.write().compact(revision)
    }

    async fn expire_due(&self) -> Result<usize> {
        let due = self.index.read().due(SystemTime::now());
        delete_expired(self, due).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_types::DynamicObject;

    /// Found by the reliability harness (tests/reliability_crash.rs): a create refused because
    /// an earlier create of the same batch made the key exist was answered before that create
    /// was committed, so its client could read "not found" right after "already exists".
    #[test]
    fn a_write_refused_by_its_batch_is_answered_after_the_batch_is_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let index = store.index.clone();
        store.close();
        let mut db = DbFile {
            dir: dir.path().to_path_buf(),
            db: None,
        };
        let create = || WriteOp::Create {
            key: "/registry/configmaps/default/a".into(),
            object: DynamicObject::new("v1", "ConfigMap", "a"),
            ttl: None,
        };
        let (first, _first_rx) = oneshot::channel();
        let (second, second_rx) = oneshot::channel();
        let watcher = {
            let index = index.clone();
            std::thread::spawn(move || {
                let answer = second_rx.blocking_recv().expect("an answer");
                // What a read issued right after the answer sees.
                (
                    answer,
                    index.read().latest("/registry/configmaps/default/a"),
                )
            })
        };
        commit_batch(
            &mut db,
            &index,
            vec![
                Request {
                    op: create(),
                    reply: first,
                },
                Request {
                    op: create(),
                    reply: second,
                },
            ],
        );
        let (answer, seen) = watcher.join().expect("join");
        assert!(
            matches!(answer, Err(StorageError::KeyExists { .. })),
            "{answer:?}"
        );
        assert!(seen.is_some(), "already exists, yet a read finds nothing");
    }
}
