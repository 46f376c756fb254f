//! [`EtcdStore`]: the [`Storage`] trait on an etcd v3 cluster (cargo feature `etcd`).
//!
//! The mapping follows upstream kube-apiserver's etcd3 store
//! (`staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go`, `watcher.go`, `compact.go`):
//!
//! - **Keys**: `PREFIX` + upstream's layout of the trait's key: `/registry/pods/default/web` for
//!   the trait's `/registry/core/pods/default/web`, `/registry/deployments/…`,
//!   `/registry/minions/…` for nodes, `/registry/services/specs/…` (see [`upstream_key`]); with
//!   the default empty prefix the keys are kube-apiserver's with its default `--etcd-prefix`.
//! - **Values**: the object's compact JSON without `metadata.resourceVersion`. etcd assigns the
//!   revision at commit, so, as upstream, the stored bytes never carry it: reads set it to the
//!   key's `mod_revision` when they decode.
//! - **Revisions**: `resourceVersion` = etcd's `mod_revision`; `create_revision` is etcd's.
//!   [`Storage::current_revision`] is an atomic raised from every response header and watch
//!   event, so it is never behind what this process has seen (it may be behind writes of other
//!   processes until it sees them).
//! - **Writes**: one `Txn` each. Create compares `create_revision == 0` (upstream's
//!   `notFound`); update and delete compare `create_revision > 0` (the key exists) and, with an
//!   expected revision, `mod_revision == expected`; the failure branch reads the key so the
//!   error says whether it is missing or at which revision it is.
//! - **Lists**: one `Range` over the prefix at the requested revision, from the key after the
//!   continue key, with the limit; `remaining` is the range's count minus the items returned.
//! - **Watches**: one etcd watch per [`Storage::watch`], from `after + 1`, with `prev_kv`;
//!   a watch response that reports compaction ends the stream with [`StorageError::Compacted`].
//!   The etcd watch opens on the stream's first poll and replays from `after + 1`, so nothing
//!   is missed in between; but a compaction past `after` before it opens (or before it has
//!   caught up) ends the stream with `Compacted`, as etcd cancels a watcher that a compaction
//!   overtakes, where the in-memory backends, buffering from the call on, would still deliver.
//!   Consumers poll at once (the watch cache does).
//! - **Compaction**: etcd's `Compact`. The compacted revision is not exposed by etcd: it is
//!   found at connect time by bisecting revisions with one-key `Range`s (a read below it fails),
//!   and raised from this process' compactions, compacted watch responses and compacted reads.
//!
//! **Shared encodings.** The in-memory backends hold one [`Encoded`] per version, shared by the
//! writer's event, reads and watch events. Here etcd holds the bytes, so the store keeps the
//! encodings of recently seen versions (key, revision) in a bounded cache
//! ([`ENCODING_CACHE_BYTES`]): a version read or watched again while cached is the same
//! `Encoded`, so the watch cache above shares it with reads. A version no longer cached is
//! decoded again from etcd's bytes (same content, another copy).

use super::{
    CompactorState, Encoded, Event, EventStream, EventType, ListOptions, Result, Revision, Storage,
    StorageError, Stored, StoredList, Versioned, WriteOp,
};
use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, KeyValue,
    KvClient, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions, WatchRequestSender,
    WatchResponse, WatchResponseStream,
};
use futures::StreamExt;
use orch_types::DynamicObject;
use parking_lot::Mutex;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of encodings the store keeps to share them between reads and watch events.
pub const ENCODING_CACHE_BYTES: usize = 64 << 20;

/// The largest response the client takes from etcd: upstream's client takes any
/// (`client/v3/options.go`, `defaultMaxCallRecvMsgSize` = `math.MaxInt32`; kube-apiserver keeps
/// it, `staging/src/k8s.io/apiserver/pkg/storage/storagebackend/factory/etcd3.go`), where the
/// gRPC default of 4 MiB failed every list (and watch response) of more than 4 MiB of objects
/// with "storage failure" (found by `tests/etcd_nospace.rs`: `kubectl get` of 20 ConfigMaps of
/// 256 KiB).
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// With several members: how often each is asked whether it answers ([`watch_members`]).
const MEMBER_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long a member may take to answer that check.
const MEMBER_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// How long etcd may take to answer the health check ([`Storage::check_health`]; upstream's
/// `--etcd-healthcheck-timeout` and `--etcd-readycheck-timeout`, 2 s each).
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The state of the health check's limiter.
#[derive(Debug, Default)]
struct HealthCheck {
    /// When the last check started.
    started: Option<Instant>,
    /// What the last finished check found.
    last: Option<std::result::Result<(), String>>,
}

/// The key whose version the compactors of every API server on one etcd share as their
/// logical time (upstream's `compactRevKey`, outside any prefix as upstream's).
pub const COMPACT_REV_KEY: &str = "compact_rev_key";

/// etcd's message for a read or watch below the compacted revision (`mvcc.ErrCompacted`).
const ERR_COMPACTED: &str = "required revision has been compacted";
/// etcd's message for a put with a lease it does not have (`lease.ErrLeaseNotFound`).
const ERR_LEASE_NOT_FOUND: &str = "requested lease not found";
/// etcd's message for a read or compaction above the current revision (`mvcc.ErrFutureRev`).
const ERR_FUTURE: &str = "required revision is a future revision";
/// The end of etcd's message for a write refused under its NOSPACE alarm
/// (`rpctypes.ErrGRPCNoSpace`, `etcdserver: mvcc: database space exceeded`, gRPC
/// `ResourceExhausted`): once the database reaches `--quota-backend-bytes`, etcd raises the
/// alarm and refuses every put, every transaction with a put and every lease grant until the
/// alarm is disarmed; reads and deletes go on (`server/etcdserver/apply/capped.go`).
const ERR_NO_SPACE: &str = "mvcc: database space exceeded";

/// Client TLS of the connection to etcd (kube-apiserver's `--etcd-cafile`, `--etcd-certfile`,
/// `--etcd-keyfile`). Server URLs must then be `https://`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// PEM bundle of the CA that signed the etcd servers' certificates.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (needs `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// What went wrong reading etcd, as far as the trait cares.
enum Failure {
    /// Below the compacted revision.
    Compacted,
    /// Above the current revision.
    Future,
    /// Anything else (connection, permission, …).
    Other(StorageError),
}

fn backend(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("etcd: {e}"))
}

/// The error of a write (or lease grant) etcd refused: [`StorageError::NoSpace`] under the
/// NOSPACE alarm, the one error the embedded store's full disk is too, so both reach clients
/// as the same Status (`rest::storage_error`; kube-apiserver passes etcd's error through as a
/// 500, `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/status.go`);
/// anything else a backend error.
fn write_failure(e: etcd_client::Error) -> StorageError {
    match &e {
        etcd_client::Error::GRpcStatus(s) if is_no_space(s.message()) => no_space(),
        _ => backend(e),
    }
}

/// Whether an etcd error message is the NOSPACE refusal ([`ERR_NO_SPACE`]).
fn is_no_space(message: &str) -> bool {
    message.contains(ERR_NO_SPACE)
}

/// [`StorageError::NoSpace`] for etcd's NOSPACE alarm, with etcd's own words and what gives
/// space back: deletes are still taken, but the space is reused only after a compaction past
/// them and a defragmentation, and etcd refuses writes until the alarm is disarmed.
fn no_space() -> StorageError {
    StorageError::NoSpace {
        store: format!("etcd's database (etcdserver: {ERR_NO_SPACE}, NOSPACE alarm)"),
        remedy: "delete objects, compact and defragment etcd, disarm the alarm \
                 (etcdctl alarm disarm) and retry"
            .to_string(),
    }
}

fn classify(e: etcd_client::Error) -> Failure {
    match &e {
        etcd_client::Error::GRpcStatus(s) if s.message().contains(ERR_COMPACTED) => {
            Failure::Compacted
        }
        etcd_client::Error::GRpcStatus(s) if s.message().contains(ERR_FUTURE) => Failure::Future,
        _ => Failure::Other(backend(e)),
    }
}

/// etcd revisions are `int64`; a revision beyond it is in the future of any store.
fn to_etcd(revision: Revision, current: Revision) -> Result<i64> {
    i64::try_from(revision).map_err(|_| StorageError::FutureRevision {
        requested: revision,
        current,
    })
}

/// etcd never sends a negative revision; one would be a broken server.
fn from_etcd(revision: i64) -> Result<Revision> {
    Revision::try_from(revision).map_err(|_| backend(format!("negative revision {revision}")))
}

/// The end of the range of every key starting with `prefix` (etcd's `GetPrefix`): the prefix
/// with its last byte below 0xff incremented; `\0` (no end) if there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn keys_only() -> Option<GetOptions> {
    Some(GetOptions::new().with_keys_only())
}

/// Encodings of recently seen versions, oldest evicted first once they hold more than
/// `capacity` bytes.
struct Encodings {
    by_key: HashMap<String, Vec<(Revision, Encoded)>>,
    order: VecDeque<(String, Revision)>,
    bytes: usize,
    capacity: usize,
}

impl Encodings {
    fn new(capacity: usize) -> Self {
        Self {
            by_key: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            capacity,
        }
    }

    fn get(&self, key: &str, revision: Revision) -> Option<Encoded> {
        let versions = self.by_key.get(key)?;
        versions
            .iter()
            .find(|(r, _)| *r == revision)
            .map(|(_, e)| e.clone())
    }

    /// Keeps `encoded` as the encoding of `key` at `revision`, unless one is already kept: the
    /// kept one is returned (one shared encoding per version).
    fn insert(&mut self, key: &str, revision: Revision, encoded: Encoded) -> Encoded {
        if let Some(e) = self.get(key, revision) {
            return e;
        }
        self.bytes += encoded.len();
        self.by_key
            .entry(key.to_string())
            .or_default()
            .push((revision, encoded.clone()));
        self.order.push_back((key.to_string(), revision));
        while self.bytes > self.capacity {
            let Some((k, r)) = self.order.pop_front() else {
                break;
            };
            if let Some(versions) = self.by_key.get_mut(&k) {
                if let Some(i) = versions.iter().position(|(v, _)| *v == r) {
                    self.bytes -= versions.swap_remove(i).1.len();
                }
                if versions.is_empty() {
                    self.by_key.remove(&k);
                }
            }
        }
        encoded
    }
}

/// Upstream's resource prefixes that are not the resource's plural
/// (`pkg/kubeapiserver/default_storage_factory_builder.go`, `SpecialDefaultResourcePrefixes`;
/// a row applies once orch serves its resource, see [`group_dropped`]).
const SPECIAL_PREFIXES: &[(&str, &str, &str)] = &[
    ("", "replicationcontrollers", "controllers"),
    ("", "endpoints", "services/endpoints"),
    ("", "nodes", "minions"),
    ("", "services", "services/specs"),
    ("networking.k8s.io", "ingresses", "ingress"),
];

/// The resources upstream stores under `/registry/PREFIX/` without their group, by plural,
/// each with its group and PREFIX (its plural or its [`SPECIAL_PREFIXES`] row): every built-in
/// resource of kube-apiserver; not those of the apiextensions and apiregistration servers
/// (`/registry/apiextensions.k8s.io/customresourcedefinitions/`), nor custom resources
/// (`/registry/GROUP/PLURAL/`). `events.k8s.io` Events keep their group too: upstream stores
/// them as the core Events they are converted to, orch as a resource of their own. Plurals are
/// unique among them.
fn group_dropped() -> &'static HashMap<&'static str, (&'static str, &'static str)> {
    static MAP: std::sync::OnceLock<HashMap<&'static str, (&'static str, &'static str)>> =
        std::sync::OnceLock::new();
    MAP.get_or_init(|| {
        orch_types::registry::BUILTIN
            .iter()
            .filter(|r| {
                !matches!(
                    r.group,
                    "apiextensions.k8s.io" | "apiregistration.k8s.io" | "events.k8s.io"
                )
            })
            .map(|r| {
                let prefix = SPECIAL_PREFIXES
                    .iter()
                    .find(|(g, p, _)| *g == r.group && *p == r.plural)
                    .map_or(r.plural, |(_, _, special)| special);
                (r.plural, (r.group, prefix))
            })
            .collect()
    })
}

/// The key upstream's layout gives the trait key (or key prefix) `key`:
/// `/registry/core/pods/default/web` → `/registry/pods/default/web`,
/// `/registry/apps/deployments/…` → `/registry/deployments/…`, `/registry/core/nodes/n1` →
/// `/registry/minions/n1`; keys of other resources (custom ones, tests') are kept as they are.
/// A prefix shorter than one resource's (the root, `/registry/`) is kept too.
fn upstream_key(key: &str) -> Cow<'_, str> {
    let Some(rest) = key.strip_prefix(super::key::ROOT) else {
        return Cow::Borrowed(key);
    };
    let mut parts = rest.splitn(3, '/');
    let (Some(group), Some(plural), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
        return Cow::Borrowed(key);
    };
    let group = if group == "core" { "" } else { group };
    match group_dropped().get(plural) {
        Some((g, prefix)) if *g == group => {
            Cow::Owned(format!("{}{prefix}/{tail}", super::key::ROOT))
        }
        _ => Cow::Borrowed(key),
    }
}

/// The trait key of an etcd key (without the store's prefix) in upstream's layout: the inverse
/// of [`upstream_key`].
fn orch_key(key: &str) -> String {
    let Some(rest) = key.strip_prefix(super::key::ROOT) else {
        return key.to_string();
    };
    // A resource prefix is one segment, or two (`services/specs`).
    let ends = rest.match_indices('/').map(|(i, _)| i).take(2);
    for end in ends {
        if let Some((group, plural)) = by_prefix().get(&rest[..end]) {
            return super::key::resource_prefix(group, plural) + &rest[end + 1..];
        }
    }
    key.to_string()
}

/// [`group_dropped`] the other way: each resource prefix with its group and plural.
fn by_prefix() -> &'static HashMap<&'static str, (&'static str, &'static str)> {
    static MAP: std::sync::OnceLock<HashMap<&'static str, (&'static str, &'static str)>> =
        std::sync::OnceLock::new();
    MAP.get_or_init(|| {
        group_dropped()
            .iter()
            .map(|(plural, (group, prefix))| (*prefix, (*group, *plural)))
            .collect()
    })
}

/// What the store and its watch streams share.
struct Shared {
    prefix: String,
    revision: AtomicU64,
    compacted: AtomicU64,
    encodings: Mutex<Encodings>,
    /// Counts [`Storage::request_progress`] calls; each open watch asks etcd for a progress
    /// notification when it changes.
    progress: tokio::sync::watch::Sender<u64>,
    /// The lease writes with a TTL share ([`EtcdStore::lease`]) and when it expires.
    lease: Mutex<Option<(i64, Instant)>>,
}

impl Shared {
    /// The etcd key of a trait key (or key prefix): the prefix, then [`upstream_key`].
    fn full_key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, upstream_key(key))
    }

    /// The trait's key of an etcd key under the prefix ([`orch_key`]).
    fn trait_key(&self, etcd_key: &[u8]) -> Result<String> {
        std::str::from_utf8(etcd_key)
            .ok()
            .and_then(|k| k.strip_prefix(self.prefix.as_str()))
            .map(orch_key)
            .ok_or_else(|| {
                backend(format!(
                    "key {} is not a UTF-8 key under the prefix {:?}",
                    String::from_utf8_lossy(etcd_key),
                    self.prefix
                ))
            })
    }

    /// Raises the current revision to one etcd reported.
    fn saw(&self, revision: i64) {
        if let Ok(r) = Revision::try_from(revision) {
            self.revision.fetch_max(r, Ordering::SeqCst);
        }
    }

    fn saw_header(&self, header: Option<&etcd_client::ResponseHeader>) {
        if let Some(h) = header {
            self.saw(h.revision());
        }
    }

    fn saw_compacted(&self, revision: Revision) {
        self.compacted.fetch_max(revision, Ordering::SeqCst);
    }

    /// The shared encoding of `key` at `revision` whose stored bytes are `value`.
    fn encoding(&self, key: &str, revision: Revision, value: &[u8]) -> Result<Encoded> {
        if let Some(e) = self.encodings.lock().get(key, revision) {
            return Ok(e);
        }
        let mut object: DynamicObject = serde_json::from_slice(value)
            .map_err(|e| backend(format!("corrupt stored object {key}: {e}")))?;
        object.metadata.resource_version = Some(revision.to_string());
        let encoded = encode(key, &object)?;
        Ok(self.encodings.lock().insert(key, revision, encoded))
    }

    fn stored(&self, key: &str, kv: &KeyValue) -> Result<Stored> {
        let mod_revision = from_etcd(kv.mod_revision())?;
        Ok(Stored {
            encoded: self.encoding(key, mod_revision, kv.value())?,
            create_revision: from_etcd(kv.create_revision())?,
            mod_revision,
        })
    }

    /// The events of one watch response, or why the watch ended.
    fn events(&self, after: Revision, resp: &WatchResponse) -> Result<Vec<Arc<Event>>> {
        self.saw_header(resp.header());
        if resp.canceled() {
            return Err(match from_etcd(resp.compact_revision()) {
                Ok(c) if c > 0 => {
                    self.saw_compacted(c);
                    StorageError::Compacted {
                        requested: after,
                        compacted: c,
                    }
                }
                _ => backend(format!("watch canceled: {}", resp.cancel_reason())),
            });
        }
        if resp.events().is_empty() && !resp.created() && resp.compact_revision() == 0 {
            // A progress notification (clientv3's IsProgressNotify): every event up to the
            // header's revision has been sent.
            let revision = resp.header().map_or(0, |h| h.revision());
            return Ok(if revision > 0 {
                vec![Arc::new(Event::progress(from_etcd(revision)?))]
            } else {
                Vec::new()
            });
        }
        let mut out = Vec::with_capacity(resp.events().len());
        for ev in resp.events() {
            let Some(kv) = ev.kv() else {
                return Err(backend("watch event without a key"));
            };
            self.saw(kv.mod_revision());
            let revision = from_etcd(kv.mod_revision())?;
            let key = self.trait_key(kv.key())?;
            let prev = ev
                .prev_kv()
                .map(|p| self.encoding(&key, from_etcd(p.mod_revision())?, p.value()))
                .transpose()?;
            let event = match ev.event_type() {
                etcd_client::EventType::Put => {
                    let kind = if kv.create_revision() == kv.mod_revision() {
                        EventType::Added
                    } else {
                        EventType::Modified
                    };
                    let encoded = self.encoding(&key, revision, kv.value())?;
                    Event::new(revision, key, kind, Some(encoded), prev)
                }
                etcd_client::EventType::Delete => {
                    // As upstream's watcher: a delete must carry the deleted object.
                    if prev.is_none() {
                        return Err(backend(format!(
                            "delete event of {key} at revision {revision} without its previous value"
                        )));
                    }
                    Event::new(revision, key, EventType::Deleted, None, prev)
                }
            };
            out.push(Arc::new(event));
        }
        Ok(out)
    }
}

fn encode(key: &str, object: &DynamicObject) -> Result<Encoded> {
    Encoded::encode(object).map_err(|e| backend(format!("cannot encode object {key}: {e}")))
}

/// A storage backend on etcd v3.
///
/// ```no_run
/// # async fn f() -> Result<(), orch_apiserver::storage::StorageError> {
/// use orch_apiserver::storage::{etcd::EtcdStore, Storage};
/// use orch_types::DynamicObject;
/// let s = EtcdStore::connect(&["http://127.0.0.1:2379"], "", None).await?;
/// let v = s
///     .create("/registry/core/configmaps/default/a", DynamicObject::new("v1", "ConfigMap", "a"))
///     .await?;
/// assert_eq!(v.object.resource_version(), Some(v.mod_revision.to_string().as_str()));
/// # Ok(()) }
/// ```
pub struct EtcdStore {
    client: Client,
    shared: Arc<Shared>,
    /// The last [`Storage::check_health`] call: when it started and, once done, what it found.
    health: Mutex<HealthCheck>,
    /// The task of [`watch_members`] (several members only), ended with the store.
    members: Option<tokio::task::AbortHandle>,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        if let Some(task) = &self.members {
            task.abort();
        }
    }
}

/// Keeps the members that do not answer out of `client`'s balanced channel, and puts each back
/// once it answers again; `members` are the client URLs, each with a client of its own.
///
/// The client balances requests over the members with tower's power-of-two-choices, and
/// tonic's reconnecting channel to a dead member stays "ready", failing each call at once (a
/// refused connection): so it is picked all the more as the live members are busy, and after
/// the leader member was killed a share of writes, and most watch (re)opens, kept failing for
/// as long as it was down (seen in `tests/etcd_failover.rs`). Upstream's client (clientv3 on
/// gRPC's round-robin balancer, `client/v3/internal/resolver`) picks only connections that are
/// READY, so a member that refuses connections is skipped until it is back; this does the
/// same with a status call per member every [`MEMBER_CHECK_INTERVAL`]. The last member in the
/// channel is never taken out.
async fn watch_members(client: Client, members: Vec<(String, Client)>) {
    let mut out = vec![false; members.len()];
    let mut tick = tokio::time::interval(MEMBER_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (i, (url, member)) in members.iter().enumerate() {
            let mut member = member.clone();
            let answers = matches!(
                tokio::time::timeout(MEMBER_CHECK_TIMEOUT, member.status()).await,
                Ok(Ok(_))
            );
            let others_in = out.iter().enumerate().any(|(j, o)| j != i && !*o);
            if !answers && !out[i] && others_in {
                out[i] = client.remove_endpoint(url).await.is_ok();
            } else if answers && out[i] {
                out[i] = client.add_endpoint(url).await.is_err();
            }
        }
    }
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.shared.prefix)
            .field("revision", &self.current_revision())
            .field("compacted", &self.compacted_revision())
            .finish()
    }
}

async fn read_pem(what: &str, path: &Path) -> Result<Vec<u8>> {
    tokio::fs::read(path).await.map_err(|e| {
        backend(format!(
            "cannot read the etcd {what} {}: {e}",
            path.display()
        ))
    })
}

async fn tls_options(tls: &EtcdTls) -> Result<TlsOptions> {
    let mut options = TlsOptions::new();
    if let Some(ca) = &tls.ca_file {
        options = options.ca_certificate(Certificate::from_pem(read_pem("CA file", ca).await?));
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let cert = read_pem("certificate file", cert).await?;
            let key = read_pem("key file", key).await?;
            options = options.identity(Identity::from_pem(cert, key));
        }
        (None, None) => {}
        _ => {
            return Err(backend(
                "a client certificate needs both the certificate and the key file",
            ))
        }
    }
    Ok(options)
}

impl EtcdStore {
    /// Connects to the etcd members at `servers` (client URLs, e.g. `http://127.0.0.1:2379`),
    /// storing every key under `prefix` (empty: keys are `/registry/…`; a trailing `/` is
    /// dropped), with client TLS when `tls` is given.
    ///
    /// Reads the current and the compacted revision, so it fails if no member answers.
    pub async fn connect<S: AsRef<str>>(
        servers: &[S],
        prefix: &str,
        tls: Option<&EtcdTls>,
    ) -> Result<Self> {
        // Upstream's client settings (`storagebackend/factory/etcd3.go`): a 20 s dial timeout,
        // keepalive pings every 30 s answered within 10 s (a dead member ends the watches).
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(20))
            .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10));
        if let Some(tls) = tls {
            options = options.with_tls(tls_options(tls).await?);
        }
        let client = Client::connect(servers, Some(options.clone()))
            .await
            .map_err(backend)?;
        let members = if servers.len() > 1 {
            let mut each = Vec::with_capacity(servers.len());
            for url in servers {
                let url = url.as_ref().to_string();
                let member = Client::connect([url.as_str()], Some(options.clone()))
                    .await
                    .map_err(backend)?;
                each.push((url, member));
            }
            Some(tokio::spawn(watch_members(client.clone(), each)).abort_handle())
        } else {
            None
        };
        let shared = Arc::new(Shared {
            prefix: prefix.trim_end_matches('/').to_string(),
            revision: AtomicU64::new(0),
            compacted: AtomicU64::new(0),
            encodings: Mutex::new(Encodings::new(ENCODING_CACHE_BYTES)),
            progress: tokio::sync::watch::channel(0).0,
            lease: Mutex::new(None),
        });
        let store = Self {
            client,
            shared,
            health: Mutex::new(HealthCheck::default()),
            members,
        };
        let compacted = store.probe_compacted(0).await?;
        store.shared.saw_compacted(compacted);
        Ok(store)
    }

    /// The key prefix in etcd.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    fn kv(&self) -> KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// Reads etcd's current revision (raising [`Storage::current_revision`]), then the
    /// compacted revision, at least `lower`: the smallest revision a read succeeds at (etcd
    /// refuses reads below its compacted revision), found by bisection between `lower` and the
    /// current revision; `0` if nothing was ever compacted.
    async fn probe_compacted(&self, lower: Revision) -> Result<Revision> {
        let current = self.latest_revision().await?;
        let mut kv = self.kv();
        // Any key: only whether a read at a revision succeeds matters.
        let key = self.shared.full_key(super::key::ROOT);
        // Invariant: a read at `hi` succeeds (the current revision is never compacted away);
        // every revision below `lo` fails.
        let (mut lo, mut hi) = (lower.max(1), current);
        if hi < lo {
            return Ok(lower.min(current));
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let opts = GetOptions::new()
                .with_count_only()
                .with_revision(to_etcd(mid, current)?);
            match kv.get(key.as_str(), Some(opts)).await {
                Ok(resp) => {
                    self.shared.saw_header(resp.header());
                    hi = mid;
                }
                Err(e) => match classify(e) {
                    Failure::Compacted => lo = mid + 1,
                    Failure::Future => {
                        return Err(backend(format!(
                            "revision {mid} is in the future though the store reported {current}"
                        )))
                    }
                    Failure::Other(e) => return Err(e),
                },
            }
        }
        // A read at revision 1 succeeds both when nothing was compacted and when revision 1
        // was: the same history is available either way.
        Ok(if lo == 1 { 0 } else { lo })
    }

    /// The error of a read at `requested` that etcd refused as compacted.
    async fn compacted_error(&self, requested: Revision) -> StorageError {
        let known = self.compacted_revision();
        let compacted = if known > requested {
            known
        } else {
            match self.probe_compacted(requested.saturating_add(1)).await {
                Ok(c) => c,
                Err(e) => return e,
            }
        };
        self.shared.saw_compacted(compacted);
        StorageError::Compacted {
            requested,
            compacted,
        }
    }

    /// A lease that lives at least `ttl` from now: the one granted last when it does and does
    /// not outlive `ttl` by more than the reuse window, else a new one of `ttl` plus that
    /// window, so that writes within one window share a lease (upstream's `leaseManager`,
    /// `staging/src/k8s.io/apiserver/pkg/storage/etcd3/lease_manager.go`: the window is 5% of
    /// the TTL, at most a minute).
    async fn lease(&self, ttl: Duration) -> Result<i64> {
        let secs = ttl.as_secs().max(1);
        let window = (secs / 20).min(60);
        let now = Instant::now();
        if let Some((id, expires)) = *self.shared.lease.lock() {
            let lives = now + Duration::from_secs(secs) < expires;
            let not_too_long = expires <= now + Duration::from_secs(secs + window);
            if lives && not_too_long {
                return Ok(id);
            }
        }
        let grant = i64::try_from(secs + window).unwrap_or(i64::MAX);
        let resp = self
            .client
            .lease_client()
            .grant(grant, None)
            .await
            .map_err(write_failure)?;
        let granted = Duration::from_secs(u64::try_from(resp.ttl()).unwrap_or(0));
        *self.shared.lease.lock() = Some((resp.id(), now + granted));
        Ok(resp.id())
    }

    async fn put(
        &self,
        key: String,
        object: DynamicObject,
        exists: bool,
        expected: Option<Revision>,
        ttl: Option<Duration>,
    ) -> Result<Versioned> {
        let Some(ttl) = ttl else {
            return self.put_once(key, object, exists, expected, None).await;
        };
        match self
            .put_once(key.clone(), object.clone(), exists, expected, Some(ttl))
            .await
        {
            // The shared lease ended early (revoked, or etcd lost it): once more with a new one.
            Err(StorageError::Backend(e)) if e.contains(ERR_LEASE_NOT_FOUND) => {
                self.shared.lease.lock().take();
                self.put_once(key, object, exists, expected, Some(ttl))
                    .await
            }
            other => other,
        }
    }

    async fn put_once(
        &self,
        key: String,
        mut object: DynamicObject,
        exists: bool,
        expected: Option<Revision>,
        ttl: Option<Duration>,
    ) -> Result<Versioned> {
        let lease = match ttl {
            Some(t) => Some(PutOptions::new().with_lease(self.lease(t).await?)),
            None => None,
        };
        let full = self.shared.full_key(&key);
        // Stored without resourceVersion: it is the mod revision, known only at commit.
        object.metadata.resource_version = None;
        let value = serde_json::to_vec(&object)
            .map_err(|e| backend(format!("cannot encode object {key}: {e}")))?;
        let mut when = Vec::with_capacity(2);
        if exists {
            when.push(Compare::create_revision(
                full.as_str(),
                CompareOp::Greater,
                0,
            ));
            if let Some(r) = expected {
                let r = to_etcd(r, self.current_revision())?;
                when.push(Compare::mod_revision(full.as_str(), CompareOp::Equal, r));
            }
        } else {
            when.push(Compare::create_revision(full.as_str(), CompareOp::Equal, 0));
        }
        let txn = Txn::new()
            .when(when)
            .and_then(vec![
                TxnOp::put(full.as_str(), value, lease),
                TxnOp::get(full.as_str(), keys_only()),
            ])
            .or_else(vec![TxnOp::get(full.as_str(), keys_only())]);
        let resp = self.kv().txn(txn).await.map_err(write_failure)?;
        self.shared.saw_header(resp.header());
        let state = read_state(&resp)?;
        if !resp.succeeded() {
            return Err(match (exists, state, expected) {
                (false, _, _) => StorageError::KeyExists { key },
                (true, None, _) => StorageError::NotFound { key },
                (true, Some(kv), Some(expected)) => StorageError::Conflict {
                    key,
                    expected,
                    actual: from_etcd(kv.mod_revision())?,
                },
                (true, Some(_), None) => backend(format!(
                    "the write of {key} failed its compare on a present key"
                )),
            });
        }
        let kv = state.ok_or_else(|| backend(format!("{key} is missing right after its put")))?;
        let mod_revision = from_etcd(kv.mod_revision())?;
        object.metadata.resource_version = Some(mod_revision.to_string());
        let encoded = encode(&key, &object)?;
        self.shared
            .encodings
            .lock()
            .insert(&key, mod_revision, encoded);
        Ok(Versioned {
            object: Arc::new(object),
            create_revision: from_etcd(kv.create_revision())?,
            mod_revision,
        })
    }

    async fn remove(&self, key: String, expected: Option<Revision>) -> Result<Versioned> {
        let full = self.shared.full_key(&key);
        let mut when = vec![Compare::create_revision(
            full.as_str(),
            CompareOp::Greater,
            0,
        )];
        if let Some(r) = expected {
            let r = to_etcd(r, self.current_revision())?;
            when.push(Compare::mod_revision(full.as_str(), CompareOp::Equal, r));
        }
        let txn = Txn::new()
            .when(when)
            .and_then(vec![TxnOp::delete(
                full.as_str(),
                Some(etcd_client::DeleteOptions::new().with_prev_key()),
            )])
            .or_else(vec![TxnOp::get(full.as_str(), keys_only())]);
        let resp = self.kv().txn(txn).await.map_err(write_failure)?;
        self.shared.saw_header(resp.header());
        let revision = resp
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| backend("transaction response without a header"))
            .and_then(from_etcd)?;
        if !resp.succeeded() {
            return Err(match (read_state(&resp)?, expected) {
                (None, _) => StorageError::NotFound { key },
                (Some(kv), Some(expected)) => StorageError::Conflict {
                    key,
                    expected,
                    actual: from_etcd(kv.mod_revision())?,
                },
                (Some(_), None) => backend(format!(
                    "the delete of {key} failed its compare on a present key"
                )),
            });
        }
        let prev = resp
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().cloned(),
                _ => None,
            })
            .ok_or_else(|| backend(format!("the delete of {key} returned no previous value")))?;
        let mut object: DynamicObject = serde_json::from_slice(prev.value())
            .map_err(|e| backend(format!("corrupt stored object {key}: {e}")))?;
        // As upstream and the other backends: the last state at the revision of the delete.
        object.metadata.resource_version = Some(revision.to_string());
        Ok(Versioned {
            object: Arc::new(object),
            create_revision: from_etcd(prev.create_revision())?,
            mod_revision: revision,
        })
    }
}

/// The key's state read by the last `get` of a write transaction (either branch ends with one).
fn read_state(resp: &etcd_client::TxnResponse) -> Result<Option<KeyValue>> {
    match resp.op_responses().pop() {
        Some(TxnOpResponse::Get(g)) => Ok(g.kvs().first().cloned()),
        _ => Err(backend("unexpected transaction response")),
    }
}

/// State of one [`Storage::watch`] stream.
enum WatchState {
    /// Not opened yet: the etcd watch is opened on first poll.
    Start(Box<Client>),
    /// Open: the stream's halves, and the events of the last response not yet delivered.
    Open(
        Box<(WatchRequestSender, WatchResponseStream)>,
        VecDeque<Arc<Event>>,
    ),
    /// Ended.
    Done,
}

#[async_trait]
impl Storage for EtcdStore {
    async fn get_stored(&self, key: &str) -> Result<Option<Stored>> {
        let full = self.shared.full_key(key);
        let resp = self.kv().get(full, None).await.map_err(backend)?;
        self.shared.saw_header(resp.header());
        resp.kvs()
            .first()
            .map(|kv| self.shared.stored(key, kv))
            .transpose()
    }

    async fn list_stored(&self, prefix: &str, opts: &ListOptions) -> Result<StoredList> {
        if let Some(at) = opts.revision {
            let compacted = self.compacted_revision();
            if at < compacted {
                return Err(StorageError::Compacted {
                    requested: at,
                    compacted,
                });
            }
            if at == 0 {
                // etcd reads revision 0 as "latest"; the store at revision 0 is empty.
                return Ok(StoredList::default());
            }
        }
        let current = self.current_revision();
        let full_prefix = self.shared.full_key(prefix);
        let end = prefix_end(full_prefix.as_bytes());
        // Continue: strictly after the last key returned (upstream appends `\0` to it).
        let start = match &opts.start_after {
            Some(k) if k.as_str() >= prefix => format!("{}\0", self.shared.full_key(k)),
            // etcd needs a key: `\0` is the first one.
            _ if full_prefix.is_empty() => "\0".to_string(),
            _ => full_prefix,
        };
        let mut get = GetOptions::new().with_range(end.clone());
        if let Some(at) = opts.revision {
            get = get.with_revision(to_etcd(at, current)?);
        }
        match opts.limit {
            Some(0) => get = get.with_count_only(),
            Some(l) => get = get.with_limit(i64::try_from(l).unwrap_or(i64::MAX)),
            None => {}
        }
        if end != [0] && start.as_bytes() >= end.as_slice() {
            // The continue key is past the prefix: nothing left.
            return Ok(StoredList {
                items: Vec::new(),
                revision: opts.revision.unwrap_or(current),
                remaining: 0,
            });
        }
        let resp = match self.kv().get(start, Some(get)).await {
            Ok(r) => r,
            Err(e) => {
                let requested = opts.revision.unwrap_or(current);
                return Err(match classify(e) {
                    Failure::Compacted => self.compacted_error(requested).await,
                    Failure::Future => StorageError::FutureRevision {
                        requested,
                        current: self.current_revision(),
                    },
                    Failure::Other(e) => e,
                });
            }
        };
        self.shared.saw_header(resp.header());
        let revision = match opts.revision {
            Some(at) => at,
            None => resp
                .header()
                .map(|h| h.revision())
                .ok_or_else(|| backend("range response without a header"))
                .and_then(from_etcd)?,
        };
        let items = resp
            .kvs()
            .iter()
            .map(|kv| {
                let key = self.shared.trait_key(kv.key())?;
                let stored = self.shared.stored(&key, kv)?;
                Ok((key, stored))
            })
            .collect::<Result<Vec<_>>>()?;
        let count = usize::try_from(resp.count()).unwrap_or(0);
        Ok(StoredList {
            remaining: count.saturating_sub(items.len()),
            items,
            revision,
        })
    }

    async fn write(&self, op: WriteOp) -> Result<Versioned> {
        match op {
            WriteOp::Create { key, object, ttl } => self.put(key, object, false, None, ttl).await,
            WriteOp::Update {
                key,
                object,
                expected,
                ttl,
            } => self.put(key, object, true, expected, ttl).await,
            WriteOp::Delete { key, expected } => self.remove(key, expected).await,
        }
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream> {
        let compacted = self.compacted_revision();
        if after < compacted {
            return Err(StorageError::Compacted {
                requested: after,
                compacted,
            });
        }
        let start = to_etcd(after.saturating_add(1), self.current_revision())?;
        let key = self.shared.full_key(prefix);
        let shared = self.shared.clone();
        // Progress requests made from now on are for this watch.
        let mut asks = self.shared.progress.subscribe();
        asks.mark_unchanged();
        let state = WatchState::Start(Box::new(self.client.clone()));
        let stream = futures::stream::unfold((state, asks), move |(state, mut asks)| {
            let key = key.clone();
            let shared = shared.clone();
            async move {
                let (mut watch, mut pending) = match state {
                    WatchState::Done => return None,
                    WatchState::Open(w, p) => (w, p),
                    WatchState::Start(client) => {
                        let options = WatchOptions::new()
                            .with_prefix()
                            .with_start_revision(start)
                            .with_prev_key();
                        let mut watches = client
                            .watch_client()
                            .max_decoding_message_size(MAX_RESPONSE_BYTES);
                        match watches.watch(key, Some(options)).await {
                            Ok(w) => (Box::new(w.split()), VecDeque::new()),
                            Err(e) => return Some((Err(backend(e)), (WatchState::Done, asks))),
                        }
                    }
                };
                let next = loop {
                    if let Some(ev) = pending.pop_front() {
                        break Ok(ev);
                    }
                    let (requests, responses) = &mut *watch;
                    tokio::select! {
                        message = responses.message() => match message {
                            Ok(Some(resp)) => match shared.events(after, &resp) {
                                Ok(evs) => pending.extend(evs),
                                Err(e) => break Err(e),
                            },
                            Ok(None) => break Err(backend("watch stream closed")),
                            Err(e) => break Err(backend(e)),
                        },
                        Ok(()) = asks.changed() => {
                            if let Err(e) = requests.request_progress().await {
                                break Err(backend(e));
                            }
                        }
                    }
                };
                Some(match next {
                    Ok(ev) => (Ok(ev), (WatchState::Open(watch, pending), asks)),
                    Err(e) => (Err(e), (WatchState::Done, asks)),
                })
            }
        });
        Ok(stream.boxed())
    }

    fn current_revision(&self) -> Revision {
        self.shared.revision.load(Ordering::SeqCst)
    }

    async fn latest_revision(&self) -> Result<Revision> {
        // As upstream's GetCurrentResourceVersion: a linearizable count-only read of one key
        // (any: only the revision of the read matters), whose header carries etcd's revision.
        let only_count = GetOptions::new().with_count_only();
        let resp = self
            .kv()
            .get(self.shared.full_key(super::key::ROOT), Some(only_count))
            .await
            .map_err(backend)?;
        self.shared.saw_header(resp.header());
        resp.header()
            .ok_or_else(|| backend("range response without a header"))
            .and_then(|h| from_etcd(h.revision()))
    }

    fn request_progress(&self) {
        self.shared.progress.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Upstream's etcd check (`newETCD3Check`,
    /// `staging/src/k8s.io/apiserver/pkg/storage/storagebackend/factory/etcd3.go`): a get of
    /// `/PREFIX/health` within [`HEALTH_CHECK_TIMEOUT`], at most one every half of it (a
    /// limiter with a burst of one); a call in between answers what the last check found, so
    /// probes cost etcd nothing more under load.
    async fn check_health(&self) -> std::result::Result<(), String> {
        {
            let mut h = self.health.lock();
            if let (Some(at), Some(last)) = (h.started, &h.last) {
                if at.elapsed() < HEALTH_CHECK_TIMEOUT / 2 {
                    return last.clone();
                }
            }
            h.started = Some(Instant::now());
        }
        let prefix = self.shared.prefix.trim_matches('/');
        let key = if prefix.is_empty() {
            "/health".to_string()
        } else {
            format!("/{prefix}/health")
        };
        let found = match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, self.kv().get(key, None)).await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("error getting data from etcd: {e}")),
            Err(_) => Err(format!(
                "error getting data from etcd: no answer within {HEALTH_CHECK_TIMEOUT:?}"
            )),
        };
        self.health.lock().last = Some(found.clone());
        found
    }

    fn compacted_revision(&self) -> Revision {
        self.shared.compacted.load(Ordering::SeqCst)
    }

    /// Upstream's protocol (`staging/src/k8s.io/apiserver/pkg/storage/etcd3/compact.go`): the
    /// version of the key [`COMPACT_REV_KEY`] is the compactors' shared logical time. A round
    /// whose time matches it writes the key (its version, the time, goes up by one) and
    /// compacts at the revision it recorded the round before; a round that finds another API
    /// server was first takes its time and records the current revision. So all API servers on
    /// one etcd (whatever their prefix, as kube-apiservers) compact once per interval together,
    /// and when the one compacting stops, another takes over after at most two intervals.
    async fn compactor_round(&self, state: &mut CompactorState) -> Result<()> {
        let txn = Txn::new()
            .when(vec![Compare::version(
                COMPACT_REV_KEY,
                CompareOp::Equal,
                state.time,
            )])
            .and_then(vec![TxnOp::put(
                COMPACT_REV_KEY,
                state.revision.to_string(),
                None,
            )])
            .or_else(vec![TxnOp::get(COMPACT_REV_KEY, None)]);
        let resp = self.kv().txn(txn).await.map_err(write_failure)?;
        self.shared.saw_header(resp.header());
        let current = resp
            .header()
            .ok_or_else(|| backend("transaction response without a header"))
            .and_then(|h| from_etcd(h.revision()))?;
        if !resp.succeeded() {
            *state = CompactorState {
                time: read_state(&resp)?.map_or(0, |kv| kv.version()),
                revision: current,
            };
            return Ok(());
        }
        let last = std::mem::replace(
            state,
            CompactorState {
                time: state.time + 1,
                revision: current,
            },
        );
        if last.revision > 0 {
            self.compact(last.revision).await?;
        }
        Ok(())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        if revision <= self.compacted_revision() {
            return Ok(());
        }
        let r = to_etcd(revision, self.current_revision())?;
        match self.kv().compact(r, None).await {
            Ok(resp) => self.shared.saw_header(resp.header()),
            Err(e) => match classify(e) {
                // Another client compacted at or after `revision` already.
                Failure::Compacted => {}
                Failure::Future => {
                    return Err(StorageError::FutureRevision {
                        requested: revision,
                        current: self.current_revision(),
                    })
                }
                Failure::Other(e) => return Err(e),
            },
        }
        self.shared.saw_compacted(revision);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_upstreams_layout_both_ways() {
        let cases = [
            (
                "/registry/core/pods/default/web",
                "/registry/pods/default/web",
            ),
            ("/registry/core/pods/", "/registry/pods/"),
            ("/registry/core/nodes/n1", "/registry/minions/n1"),
            (
                "/registry/core/services/default/",
                "/registry/services/specs/default/",
            ),
            (
                "/registry/core/endpoints/default/web",
                "/registry/services/endpoints/default/web",
            ),
            (
                "/registry/core/replicationcontrollers/ns/rc",
                "/registry/controllers/ns/rc",
            ),
            (
                "/registry/apps/deployments/default/web",
                "/registry/deployments/default/web",
            ),
            (
                "/registry/coordination.k8s.io/leases/kube-system/l",
                "/registry/leases/kube-system/l",
            ),
            (
                "/registry/core/events/default/e",
                "/registry/events/default/e",
            ),
            // Kept: the apiextensions server's, a custom resource's, events.k8s.io's, tests'.
            (
                "/registry/apiextensions.k8s.io/customresourcedefinitions/c",
                "/registry/apiextensions.k8s.io/customresourcedefinitions/c",
            ),
            (
                "/registry/example.com/crontabs/default/c",
                "/registry/example.com/crontabs/default/c",
            ),
            (
                "/registry/events.k8s.io/events/default/e",
                "/registry/events.k8s.io/events/default/e",
            ),
            ("/registry/t/a", "/registry/t/a"),
            ("/registry/s/", "/registry/s/"),
            ("/registry/", "/registry/"),
        ];
        for (ours, theirs) in cases {
            assert_eq!(upstream_key(ours), theirs);
            assert_eq!(orch_key(theirs), ours);
        }
        // Every built-in resource maps to a key of its own and back.
        let mut seen = std::collections::HashSet::new();
        for r in orch_types::registry::BUILTIN {
            let ours = super::super::key::object_key(r.group, r.plural, Some("ns"), "n");
            let theirs = upstream_key(&ours).into_owned();
            assert!(
                seen.insert(theirs.clone()) || ours.contains("autoscaling"),
                "{theirs} twice"
            );
            assert_eq!(orch_key(&theirs), ours);
        }
    }

    #[test]
    fn nospace_alarm_is_the_stores_one_no_space_error() {
        // etcd's message under the alarm (`rpctypes.ErrGRPCNoSpace`), and others that are not.
        assert!(is_no_space("etcdserver: mvcc: database space exceeded"));
        assert!(!is_no_space("etcdserver: request timed out"));
        assert!(!is_no_space(ERR_COMPACTED));
        // Only a gRPC status from etcd is etcd's refusal.
        let other = write_failure(etcd_client::Error::Internal(ERR_NO_SPACE.to_string()));
        assert!(matches!(other, StorageError::Backend(_)), "{other:?}");

        // One error, one mapping: the Status the embedded store's full disk answers (a 500,
        // as kube-apiserver's for etcd's refusal), with etcd's words and the way out.
        let configmaps = orch_types::registry::BUILTIN
            .iter()
            .find(|r| r.group.is_empty() && r.plural == "configmaps")
            .expect("configmaps");
        let status = crate::rest::storage_error(configmaps, "c", no_space());
        assert_eq!(status.code, 500);
        assert_eq!(status.reason, orch_types::status::reason::INTERNAL_ERROR);
        assert_eq!(
            status.message,
            "Internal error occurred: no space left on device: etcd's database (etcdserver: \
             mvcc: database space exceeded, NOSPACE alarm) is full (database space exceeded); \
             delete objects, compact and defragment etcd, disarm the alarm (etcdctl alarm \
             disarm) and retry"
        );
        let embedded = StorageError::NoSpace {
            store: "the data directory /d".into(),
            remedy: "free space there and retry".into(),
        };
        let disk = crate::rest::storage_error(configmaps, "c", embedded);
        assert_eq!((disk.code, disk.reason), (status.code, status.reason));
        assert!(disk
            .message
            .starts_with("Internal error occurred: no space left on device: "));
    }

    #[test]
    fn prefix_end_is_etcds() {
        assert_eq!(prefix_end(b"/registry/"), b"/registry0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn encodings_share_one_per_version_and_evict_oldest() {
        let mut c = Encodings::new(10);
        let e = Encoded::from_json_bytes(b"{}");
        let kept = c.insert("/k", 2, e.clone());
        let again = c.insert("/k", 2, Encoded::from_json_bytes(b"{}"));
        assert!(std::ptr::eq(
            kept.as_bytes().as_ptr(),
            again.as_bytes().as_ptr()
        ));
        assert!(c.get("/k", 3).is_none());
        c.insert("/big", 4, Encoded::from_json_bytes(b"[1,2,3,4]"));
        assert!(
            c.get("/k", 2).is_none(),
            "the oldest version is evicted first"
        );
        assert!(c.get("/big", 4).is_some());
        assert_eq!(c.bytes, 9);
        assert!(!c.by_key.contains_key("/k"));
    }
}
