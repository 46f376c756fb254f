//! The simulation engine: one deterministic loop that drives the real cores on a virtual clock.
//!
//! Every write goes through the real API server (memory storage) with the in-process client,
//! and the engine keeps its caches from the objects the server returns (write-through), so no
//! watch fan-out is needed and the order of everything is fixed. Per virtual instant the loop
//! runs, until nothing changes: the Deployment and ReplicaSet reconcilers
//! (`orch_controllers::{deployment, replicaset}`), node lifecycle (`NodeLifecycle::monitor` +
//! `taint_eviction`), the scheduler (`orch_scheduler::Scheduler` over an incrementally kept
//! `Snapshot`) and one `orch_kubelet::worker::PodWorker` per bound pod on a per-node
//! `SimRuntime`. Then the clock jumps to the next timer (scenario event, worker wake-up,
//! requeue, node-monitor pass, utilization sample).
//!
//! Determinism: maps are ordered, generated names come from a seeded generator, the API server
//! runs on the same virtual clock, and the event log excludes UIDs. Same scenario and seed ⇒
//! same log, byte for byte.

use super::report::*;
use super::scenario::{parse_target, Action as Disrupt, Scenario};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use orch_apiserver::rest::update::Part;
use orch_apiserver::{ApiServer, ApiServerConfig};
use orch_controllers::action::Action;
use orch_controllers::deployment::{self, DeploymentView};
use orch_controllers::nodelifecycle::{taint_eviction, NodeLifecycle, NodeLifecycleConfig};
use orch_controllers::replicaset::{self, SyncContext, Workload};
use orch_kubelet::runtime::sim::SimRuntime;
use orch_kubelet::runtime::ContainerRuntime;
use orch_kubelet::worker::{PodWorker, WorkerConfig};
use orch_scheduler::pod_info::PodInfo;
use orch_scheduler::{Outcome, Scheduler, Snapshot};
use orch_types::client::{
    DeleteOutcome, DeleteParams, Patch, PatchParams, PostParams, Preconditions, SharedClient,
};
use orch_types::clock::{Clock, ManualClock};
use orch_types::{ApiResource, DynamicObject};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Errors of a simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] super::ScenarioError),
    /// The API server could not start.
    #[error("cannot start the API server: {0}")]
    ApiServer(String),
    /// A manifest of the scenario (or given to `apply`) was rejected.
    #[error("{what}: {source}")]
    Apply {
        /// Which object.
        what: String,
        /// The server's answer.
        #[source]
        source: orch_types::client::ClientError,
    },
    /// A manifest could not be read.
    #[error("{0}")]
    Manifest(String),
}

/// Virtual epoch of every simulation: 2025-01-01T00:00:00Z.
pub const EPOCH_SECONDS: i64 = 1_735_689_600;

/// Taint-manager and scheduler loops cannot livelock an instant: past this many rounds the
/// clock moves on anyway.
const MAX_ROUNDS_PER_INSTANT: usize = 200;

/// The engine compacts the API server's history every this many writes...
const COMPACT_EVERY: u64 = 20_000;
/// ...keeping this many revisions.
const KEEP_REVISIONS: u64 = 2_000;
/// The engine lets the watch cache catch up every this many writes: on a current-thread
/// runtime (`orch sim`, `orch.Simulation`, the bench) the cache only runs while the engine
/// waits, and once it is 65,536 events behind the storage it reloads and ends every open watch.
pub(super) const SYNC_CACHE_EVERY: u64 = 16_384;

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

fn pods_res() -> ApiResource {
    ApiResource::of::<Pod>()
}

fn pods_info() -> orch_apiserver::rest::Resource {
    orch_types::registry::by_kind("v1", "Pod").expect("Pod is a built-in kind")
}

/// A typed Pod from a stored object: metadata copied as is, `spec` and `status` read in place
/// (no intermediate JSON copy of the whole object).
fn pod_of(o: &DynamicObject) -> Option<Pod> {
    fn field<T: serde::de::DeserializeOwned>(o: &DynamicObject, k: &str) -> Option<Option<T>> {
        match o.data.get(k) {
            None | Some(Value::Null) => Some(None),
            Some(v) => T::deserialize(v).ok().map(Some),
        }
    }
    if o.data.keys().any(|k| k != "spec" && k != "status") {
        return o.to_typed::<Pod>().ok();
    }
    Some(Pod {
        metadata: o.metadata.clone(),
        spec: field(o, "spec")?,
        status: field(o, "status")?,
    })
}

/// The Pod after a status write that succeeded: metadata and status from the server's answer,
/// the spec from `old` (the engine's pod). A status write never changes the spec, and it was
/// pinned to `old`'s resourceVersion, so the stored spec is `old`'s: it is reused instead of
/// being converted again.
fn pod_after_status_write(o: &DynamicObject, old: &Pod) -> Option<Pod> {
    if o.data.keys().any(|k| k != "spec" && k != "status") {
        return pod_of(o);
    }
    let status = match o.data.get("status") {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde::Deserialize::deserialize(v).ok()?),
    };
    Some(Pod {
        metadata: o.metadata.clone(),
        spec: old.spec.clone(),
        status,
    })
}

/// A 64-bit FNV-1a digest of a pod status' JSON form: what a worker last wrote, kept instead of
/// a copy of the status to tell whether the next one differs.
fn status_digest(s: &k8s_openapi::api::core::v1::PodStatus) -> u64 {
    struct W(Fnv64);
    impl std::io::Write for W {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.write(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = W(Fnv64::default());
    // Serialising plain data into a writer that cannot fail does not fail.
    let _ = serde_json::to_writer(&mut w, s);
    w.0.value()
}

fn key_of(ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

fn meta_key(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    key_of(m.namespace.as_deref(), m.name.as_deref().unwrap_or(""))
}

/// SplitMix64: the seeded generator of names (no dependency, stable across versions).
#[derive(Debug, Clone)]
struct Names(u64);

impl Names {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Five characters from upstream's alphabet (`bcdfghjklmnpqrstvwxz2456789`).
    fn suffix(&mut self) -> String {
        const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut v = self.next();
        (0..5)
            .map(|_| {
                let c = ALPHA[(v % ALPHA.len() as u64) as usize] as char;
                v /= ALPHA.len() as u64;
                c
            })
            .collect()
    }
}

struct NodeState {
    up: bool,
    last_heartbeat: Timestamp,
    zone: Option<String>,
    rt: SimRuntime,
}

struct WorkerState {
    worker: PodWorker,
    node: String,
    /// Digest of the status last written ([`status_digest`]; `None`: write the next one
    /// whatever it is).
    last_status: Option<u64>,
    due: Option<Timestamp>,
}

#[derive(Default)]
struct PodTimes {
    created: Option<Timestamp>,
    bound: Option<Timestamp>,
    running: Option<Timestamp>,
}

/// Scenario items on the timeline.
#[derive(Debug, Clone)]
enum Item {
    Workload(usize),
    Disruption(usize),
}

/// A running simulation.
pub struct Simulation {
    api: Arc<ApiServer>,
    client: SharedClient,
    clock: ManualClock,
    start: Timestamp,
    seed: u64,
    names: Names,
    scenario: Scenario,
    timeline: BTreeMap<(Timestamp, usize), Item>,
    nodes: BTreeMap<String, Arc<Node>>,
    node_state: BTreeMap<String, NodeState>,
    pods: BTreeMap<String, Arc<Pod>>,
    rss: BTreeMap<String, Arc<ReplicaSet>>,
    deploys: BTreeMap<String, Arc<Deployment>>,
    /// Boxed: a map node holds up to 11 entries, and most workers are in nodes far from full.
    workers: BTreeMap<String, Box<WorkerState>>,
    /// Who reads which pods and ReplicaSets (the informer indexes of the controllers): pod
    /// keys by controlling ReplicaSet (`ns/name`), ReplicaSet keys by controlling Deployment,
    /// and the objects without a controller (candidates for adoption).
    owned_pods: BTreeMap<String, BTreeSet<String>>,
    orphan_pods: BTreeSet<String>,
    owned_rss: BTreeMap<String, BTreeSet<String>>,
    orphan_rss: BTreeSet<String>,
    /// Pods the scheduler has to look at: unbound, not being deleted, phase Pending.
    unbound: BTreeSet<String>,
    /// Storage revision up to which history was compacted by the engine.
    compacted: u64,
    /// Storage revision the watch cache was last let catch up to.
    cache_synced: u64,
    wakeups: BTreeSet<(Timestamp, String)>,
    snapshot: Snapshot,
    scheduler: Scheduler,
    lifecycle: NodeLifecycle,
    next_monitor: Timestamp,
    dirty_rs: BTreeSet<String>,
    dirty_deploy: BTreeSet<String>,
    requeues: BTreeSet<(Timestamp, u8, String)>,
    unschedulable: BTreeMap<String, String>,
    retry_unschedulable: bool,
    times: BTreeMap<String, PodTimes>,
    sched_latency: Vec<f64>,
    startup_latency: Vec<f64>,
    evictions: Vec<Eviction>,
    samples: Vec<UtilizationSample>,
    next_sample: Timestamp,
    sample_every: SignedDuration,
    decisions: std::collections::VecDeque<DecisionRecord>,
    decision_limit: usize,
    log: Vec<String>,
    keep_log: bool,
    hash: Fnv64,
    event_count: usize,
    events: bool,
    event_seq: u64,
    wall: std::time::Duration,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("now", &self.clock.now())
            .field("nodes", &self.nodes.len())
            .field("pods", &self.pods.len())
            .finish()
    }
}

/// Options of a simulation beyond the scenario.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Seed (scheduler tie-break, generated names).
    pub seed: u64,
    /// Keep the event log lines in memory (for `event_log()`); the hash is always kept.
    pub keep_log: bool,
    /// Write core/v1 Events to the API server (for `events()`); off in benchmarks.
    pub events: bool,
    /// Keep at most this many decisions in the report.
    pub decision_limit: usize,
    /// Record the scheduler's per-node explanation (feasible nodes, winning score, why).
    pub explain: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            keep_log: true,
            events: true,
            decision_limit: 10_000,
            explain: true,
        }
    }
}

impl Simulation {
    /// Builds the cluster of `scenario` (nodes registered and Ready at time 0); nothing runs
    /// until [`run_until`](Self::run_until) or [`step`](Self::step).
    pub async fn new(scenario: Scenario, opts: SimOptions) -> Result<Self, SimError> {
        scenario.check()?;
        let seed = scenario.seed.unwrap_or(opts.seed);
        let clock = ManualClock::at_epoch_seconds(EPOCH_SECONDS);
        let start = clock.now();
        let api = ApiServer::new(ApiServerConfig::memory().with_clock(Arc::new(clock.clone())))
            .map_err(|e| SimError::ApiServer(e.to_string()))?;
        let client = api.client();
        let mut timeline = BTreeMap::new();
        for (i, w) in scenario.workloads.iter().enumerate() {
            timeline.insert((start + sd(w.at), i), Item::Workload(i));
        }
        let n = scenario.workloads.len();
        for (i, d) in scenario.disruptions.iter().enumerate() {
            timeline.insert((start + sd(d.at), n + i), Item::Disruption(i));
        }
        let sample_every = sd(scenario.sample_every.unwrap_or(Duration::from_secs(10)));
        let mut sim = Self {
            api,
            client,
            clock,
            start,
            seed,
            names: Names(seed ^ 0x6f72_6368_7369_6d00),
            scenario,
            timeline,
            nodes: BTreeMap::new(),
            node_state: BTreeMap::new(),
            pods: BTreeMap::new(),
            rss: BTreeMap::new(),
            deploys: BTreeMap::new(),
            workers: BTreeMap::new(),
            owned_pods: BTreeMap::new(),
            orphan_pods: BTreeSet::new(),
            owned_rss: BTreeMap::new(),
            orphan_rss: BTreeSet::new(),
            unbound: BTreeSet::new(),
            compacted: 0,
            cache_synced: 0,
            wakeups: BTreeSet::new(),
            snapshot: Snapshot::new(),
            scheduler: Scheduler::default().with_seed(seed),
            lifecycle: NodeLifecycle::new(NodeLifecycleConfig::default()),
            next_monitor: start,
            dirty_rs: BTreeSet::new(),
            dirty_deploy: BTreeSet::new(),
            requeues: BTreeSet::new(),
            unschedulable: BTreeMap::new(),
            retry_unschedulable: false,
            times: BTreeMap::new(),
            sched_latency: Vec::new(),
            startup_latency: Vec::new(),
            evictions: Vec::new(),
            samples: Vec::new(),
            next_sample: start,
            sample_every,
            decisions: Default::default(),
            decision_limit: opts.decision_limit,
            log: Vec::new(),
            keep_log: opts.keep_log,
            hash: Fnv64::default(),
            event_count: 0,
            events: opts.events,
            event_seq: 0,
            wall: Duration::ZERO,
        };
        sim.scheduler.set_explain(opts.explain);
        sim.create_nodes().await?;
        Ok(sim)
    }

    /// The in-process client of the simulated API server (reads; writes through
    /// [`apply`](Self::apply) so that the engine sees them).
    pub fn client(&self) -> SharedClient {
        self.client.clone()
    }

    /// The API server.
    pub fn api_server(&self) -> &Arc<ApiServer> {
        &self.api
    }

    /// Virtual seconds since the start.
    pub fn now(&self) -> f64 {
        secs(self.clock.now().duration_since(self.start))
    }

    /// The virtual wall-clock time.
    pub fn now_timestamp(&self) -> Timestamp {
        self.clock.now()
    }

    /// The scenario's duration, if any.
    pub fn duration(&self) -> Option<Duration> {
        self.scenario.duration
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Event log lines so far (empty unless `keep_log`).
    pub fn event_log(&self) -> &[String] {
        &self.log
    }

    fn record(&mut self, line: String) {
        let t = self.now();
        let line = format!("{t:.3} {line}");
        self.hash.write(line.as_bytes());
        self.hash.write(b"\n");
        self.event_count += 1;
        if self.keep_log {
            self.log.push(line);
        }
    }

    // ---- nodes ---------------------------------------------------------------------------

    async fn create_nodes(&mut self) -> Result<(), SimError> {
        let groups = self.scenario.node_groups.clone();
        let mut index = 0u32;
        for g in &groups {
            for i in 0..g.count {
                let name = format!("{}-{i}", g.name);
                let zone =
                    (!g.zones.is_empty()).then(|| g.zones[i as usize % g.zones.len()].clone());
                let node =
                    node_from_template(&g.template, &name, zone.as_deref(), self.clock.now())
                        .map_err(SimError::Manifest)?;
                self.node_state.insert(
                    name.clone(),
                    NodeState {
                        up: true,
                        last_heartbeat: self.clock.now(),
                        zone: zone.clone(),
                        rt: SimRuntime::new(index),
                    },
                );
                index += 1;
                let status = node.data.get("status").cloned();
                let created = self
                    .client
                    .create(
                        &ApiResource::of::<Node>(),
                        None,
                        &node,
                        &PostParams::default(),
                    )
                    .await
                    .map_err(|source| SimError::Apply {
                        what: format!("node {name}"),
                        source,
                    })?;
                let mut with_status = created;
                if let Some(s) = status {
                    with_status.data.insert("status".into(), s);
                }
                let o = self
                    .client
                    .update_status(
                        &ApiResource::of::<Node>(),
                        None,
                        &with_status,
                        &PostParams::default(),
                    )
                    .await
                    .map_err(|source| SimError::Apply {
                        what: format!("node {name} status"),
                        source,
                    })?;
                self.observe(&o);
            }
        }
        Ok(())
    }

    fn lease_of(&self, name: &str) -> Option<Arc<Lease>> {
        let st = self.node_state.get(name)?;
        let renew = if st.up {
            self.clock.now()
        } else {
            st.last_heartbeat
        };
        Some(Arc::new(Lease {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("kube-node-lease".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(name.to_string()),
                lease_duration_seconds: Some(40),
                renew_time: Some(MicroTime(renew)),
                ..Default::default()
            }),
        }))
    }

    async fn set_node_up(&mut self, name: &str, up: bool) {
        let now = self.clock.now();
        let Some(st) = self.node_state.get_mut(name) else {
            self.record(format!("IGNORED node {name} does not exist"));
            return;
        };
        if st.up == up {
            return;
        }
        st.up = up;
        st.last_heartbeat = now;
        self.record(format!(
            "KUBELET {} node {name}",
            if up { "UP" } else { "DOWN" }
        ));
        if up {
            // The kubelet posts Ready again and resumes its pods.
            if let Some(n) = self.nodes.get(name).cloned() {
                let mut n = (*n).clone();
                set_ready(&mut n, now);
                if let Ok(d) = DynamicObject::from_typed(&n) {
                    if let Ok(o) = self
                        .client
                        .update_status(&ApiResource::of::<Node>(), None, &d, &PostParams::default())
                        .await
                    {
                        self.observe(&o);
                    }
                }
            }
            let keys: Vec<String> = self
                .workers
                .iter()
                .filter(|(_, w)| w.node == name)
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                self.wake(&k, now);
            }
            self.retry_unschedulable = true;
        }
        self.next_monitor = self.next_monitor.min(now);
    }

    // ---- caches --------------------------------------------------------------------------

    /// Takes an object the server returned into the caches.
    fn observe(&mut self, o: &DynamicObject) {
        match (o.types.api_version.as_str(), o.types.kind.as_str()) {
            ("v1", "Pod") => {
                if let Some(p) = pod_of(o) {
                    self.observe_pod(p);
                }
            }
            ("v1", "Node") => {
                if let Ok(n) = o.to_typed::<Node>() {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    let summary = node_summary(&n);
                    let old = self.nodes.get(&name).map(|o| node_summary(o));
                    if old.as_deref() != Some(summary.as_str()) {
                        self.record(format!("NODE {name} {summary}"));
                        self.retry_unschedulable = true;
                    }
                    let _ = self.snapshot.upsert_node(n.clone());
                    self.nodes.insert(name, Arc::new(n));
                }
            }
            ("apps/v1", "ReplicaSet") => {
                if let Ok(rs) = o.to_typed::<ReplicaSet>() {
                    let k = meta_key(&rs.metadata);
                    let summary = rs_summary(&rs);
                    let old = self.rss.get(&k).map(|o| rs_summary(o));
                    if old.as_deref() != Some(summary.as_str()) {
                        self.record(format!("RS {k} {summary}"));
                    }
                    if let Some(d) = controller_of(&rs.metadata, "Deployment") {
                        self.dirty_deploy
                            .insert(key_of(rs.metadata.namespace.as_deref(), &d));
                    }
                    self.dirty_rs.insert(k.clone());
                    if let Some(old) = self.rss.get(&k).cloned() {
                        unindex(&mut self.owned_rss, &mut self.orphan_rss, &k, &old.metadata);
                    }
                    index(&mut self.owned_rss, &mut self.orphan_rss, &k, &rs.metadata);
                    self.rss.insert(k, Arc::new(rs));
                }
            }
            ("apps/v1", "Deployment") => {
                if let Ok(d) = o.to_typed::<Deployment>() {
                    let k = meta_key(&d.metadata);
                    let summary = deploy_summary(&d);
                    let old = self.deploys.get(&k).map(|o| deploy_summary(o));
                    if old.as_deref() != Some(summary.as_str()) {
                        self.record(format!("DEPLOY {k} {summary}"));
                    }
                    self.dirty_deploy.insert(k.clone());
                    self.deploys.insert(k, Arc::new(d));
                }
            }
            _ => {}
        }
    }

    fn forget(&mut self, o: &DynamicObject) {
        let k = key_of(o.namespace(), o.name());
        match o.types.kind.as_str() {
            "Pod" => {
                if let Some(p) = self.pods.remove(&k) {
                    unindex(&mut self.owned_pods, &mut self.orphan_pods, &k, &p.metadata);
                    self.unbound.remove(&k);
                    self.record(format!("POD {k} deleted"));
                    self.snapshot.remove_pod(&k);
                    self.workers.remove(&k);
                    self.unschedulable.remove(&k);
                    self.times.remove(&k);
                    self.retry_unschedulable = true;
                    if let Some(rs) = controller_of(&p.metadata, "ReplicaSet") {
                        self.dirty_rs
                            .insert(key_of(p.metadata.namespace.as_deref(), &rs));
                    }
                }
            }
            "ReplicaSet" => {
                if let Some(rs) = self.rss.remove(&k) {
                    unindex(&mut self.owned_rss, &mut self.orphan_rss, &k, &rs.metadata);
                    self.record(format!("RS {k} deleted"));
                    if let Some(d) = controller_of(&rs.metadata, "Deployment") {
                        self.dirty_deploy
                            .insert(key_of(rs.metadata.namespace.as_deref(), &d));
                    }
                }
            }
            "Deployment" if self.deploys.remove(&k).is_some() => {
                self.record(format!("DEPLOY {k} deleted"));
            }
            "Node" if self.nodes.remove(&k).is_some() => {
                self.record(format!("NODE {k} deleted"));
                self.snapshot.remove_node(&k);
            }
            _ => {}
        }
    }

    fn observe_pod(&mut self, p: Pod) {
        let k = meta_key(&p.metadata);
        let now = self.clock.now();
        let summary = PodSummary::of(&p);
        if self.pods.get(&k).map(|o| PodSummary::of(o)) != Some(summary) {
            let line = format!("POD {k} {summary}");
            self.record(line);
        }
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if !self.times.contains_key(&k) {
            self.times.insert(k.clone(), PodTimes::default());
        }
        let t = self.times.get_mut(&k).expect("inserted above");
        if t.created.is_none() {
            t.created = Some(
                p.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|c| c.0)
                    .unwrap_or(now),
            );
        }
        if node.is_some() && t.bound.is_none() {
            t.bound = Some(now);
            if let Some(c) = t.created {
                self.sched_latency.push(secs(now.duration_since(c)));
            }
        }
        if phase == "Running" && t.running.is_none() {
            t.running = Some(now);
            if let Some(c) = t.created {
                self.startup_latency.push(secs(now.duration_since(c)));
            }
        }
        let terminal = phase == "Succeeded" || phase == "Failed";
        // Most updates (status writes, binds) keep the controller: the indexes stay as they are.
        let same_controller = self
            .pods
            .get(&k)
            .is_some_and(|o| controller_ref(&o.metadata) == controller_ref(&p.metadata));
        if !same_controller {
            if let Some(old) = self.pods.get(&k).cloned() {
                unindex(
                    &mut self.owned_pods,
                    &mut self.orphan_pods,
                    &k,
                    &old.metadata,
                );
            }
            index(&mut self.owned_pods, &mut self.orphan_pods, &k, &p.metadata);
        }
        if node.is_none() && p.metadata.deletion_timestamp.is_none() && phase_pending(&p) {
            self.unbound.insert(k.clone());
        } else {
            self.unbound.remove(&k);
        }
        let p = Arc::new(p);
        if node.is_some() && !terminal {
            let _ = self.snapshot.upsert_pod(p.clone());
        } else if terminal && self.snapshot.remove_pod(&k).is_some() {
            self.retry_unschedulable = true;
        }
        if let Some(rs) = controller_of(&p.metadata, "ReplicaSet") {
            self.dirty_rs
                .insert(key_of(p.metadata.namespace.as_deref(), &rs));
        }
        if let Some(n) = node {
            match self.workers.get_mut(&k) {
                Some(w) => {
                    w.worker.update_pod(p.clone());
                    self.wake(&k, now);
                }
                None if !terminal => {
                    let host_ip = format!(
                        "10.0.{}.{}",
                        (self.workers.len() / 250) % 250,
                        self.workers.len() % 250 + 1
                    );
                    let cfg = WorkerConfig {
                        node_name: n.clone(),
                        host_ip,
                        allow_privileged: false,
                    };
                    let worker = PodWorker::new(cfg, p.clone(), now);
                    self.workers.insert(
                        k.clone(),
                        Box::new(WorkerState {
                            worker,
                            node: n,
                            last_status: None,
                            due: None,
                        }),
                    );
                    self.wake(&k, now);
                }
                None => {}
            }
        }
        self.pods.insert(k, p);
    }

    fn wake(&mut self, key: &str, at: Timestamp) {
        if let Some(w) = self.workers.get_mut(key) {
            if let Some(old) = w.due {
                if old <= at {
                    return;
                }
                self.wakeups.remove(&(old, key.to_string()));
            }
            w.due = Some(at);
            self.wakeups.insert((at, key.to_string()));
        }
    }

    // ---- writes --------------------------------------------------------------------------

    /// Applies manifests now (create, or merge-patch what exists) and lets the engine see them.
    pub async fn apply(&mut self, objs: Vec<Value>) -> Result<Vec<Value>, SimError> {
        let mut out = Vec::new();
        for v in objs {
            let obj = DynamicObject::from_value(v.clone())
                .map_err(|e| SimError::Manifest(e.to_string()))?;
            let r = orch_types::registry::by_kind(&obj.types.api_version, &obj.types.kind)
                .map(|i| i.api_resource())
                .ok_or_else(|| {
                    SimError::Manifest(format!(
                        "no matches for kind \"{}\" in version \"{}\"",
                        obj.types.kind, obj.types.api_version
                    ))
                })?;
            let ns = r
                .namespaced
                .then(|| obj.namespace().unwrap_or("default").to_string());
            let what = format!("{} {}", obj.types.kind, key_of(ns.as_deref(), obj.name()));
            let res = match self
                .client
                .create(&r, ns.as_deref(), &obj, &PostParams::default())
                .await
            {
                Err(e) if e.is_already_exists() => {
                    self.client
                        .patch(
                            &r,
                            ns.as_deref(),
                            obj.name(),
                            None,
                            &Patch::Merge(v),
                            &PatchParams::default(),
                        )
                        .await
                }
                other => other,
            };
            let o = res.map_err(|source| SimError::Apply { what, source })?;
            out.push(o.to_value());
            self.record(format!(
                "APPLY {} {}",
                o.types.kind,
                key_of(o.namespace(), o.name())
            ));
            self.observe(&o);
        }
        Ok(out)
    }

    /// Re-reads an object after a write made outside the engine (patch, delete from Python).
    pub async fn refresh(&mut self, r: &ApiResource, ns: Option<&str>, name: &str) {
        match self.client.get(r, ns, name).await {
            Ok(o) => self.observe(&o),
            Err(e) if e.is_not_found() => {
                let mut gone = DynamicObject::new(&r.api_version(), &r.kind, name);
                gone.metadata.namespace = ns.map(str::to_string);
                self.forget(&gone);
            }
            Err(_) => {}
        }
    }

    async fn apply_actions(&mut self, actions: Vec<Action>, requeue_kind: u8, requeue_key: &str) {
        for a in actions {
            self.housekeep().await;
            let res = match a {
                Action::Create {
                    resource,
                    mut object,
                } => {
                    self.name_generated(&mut object);
                    let ns = object.namespace().map(str::to_string);
                    self.client
                        .create(&resource, ns.as_deref(), &object, &PostParams::default())
                        .await
                        .map(Some)
                }
                Action::CreatePods { pods, .. } => {
                    let mut last = Ok(None);
                    for mut p in pods {
                        self.housekeep().await;
                        self.name_generated(&mut p);
                        let ns = p.namespace().map(str::to_string);
                        match self
                            .api
                            .create_object(pods_info(), ns.as_deref(), p, &PostParams::default())
                            .await
                            .map_err(orch_types::client::ClientError::from)
                        {
                            Ok(w) => self.observe(&w.object),
                            Err(e) => {
                                last = Err(e);
                                break;
                            }
                        }
                    }
                    last
                }
                Action::Update { resource, object } => {
                    let ns = object.namespace().map(str::to_string);
                    self.client
                        .update(&resource, ns.as_deref(), &object, &PostParams::default())
                        .await
                        .map(Some)
                }
                Action::UpdateStatus { resource, object } => {
                    let ns = object.namespace().map(str::to_string);
                    self.client
                        .update_status(&resource, ns.as_deref(), &object, &PostParams::default())
                        .await
                        .map(Some)
                }
                Action::Patch {
                    resource,
                    namespace,
                    name,
                    subresource,
                    patch,
                } => self
                    .client
                    .patch(
                        &resource,
                        namespace.as_deref(),
                        &name,
                        subresource.as_deref(),
                        &patch,
                        &PatchParams::default(),
                    )
                    .await
                    .map(Some),
                Action::Delete {
                    resource,
                    namespace,
                    name,
                    uid,
                    propagation,
                    grace_period_seconds,
                    ..
                } => {
                    let p = DeleteParams {
                        propagation_policy: propagation,
                        grace_period_seconds,
                        preconditions: uid.map(|u| Preconditions {
                            uid: Some(u),
                            resource_version: None,
                        }),
                        dry_run: false,
                    };
                    match self
                        .client
                        .delete(&resource, namespace.as_deref(), &name, &p)
                        .await
                    {
                        Ok(DeleteOutcome::Deleted(o)) => {
                            self.forget(&o);
                            Ok(None)
                        }
                        Ok(DeleteOutcome::Pending(o)) => Ok(Some(o)),
                        Err(e) => Err(e),
                    }
                }
                Action::Event {
                    object,
                    type_,
                    reason,
                    message,
                } => {
                    self.record(format!(
                        "EVENT {} {}/{} {reason}: {message}",
                        type_.as_str(),
                        object.kind,
                        key_of(object.namespace.as_deref(), &object.name)
                    ));
                    if self.events {
                        self.write_event(&object, type_.as_str(), &reason, &message)
                            .await;
                    }
                    Ok(None)
                }
                Action::Requeue(d) => {
                    let at = self.clock.now() + sd(d);
                    self.requeues
                        .insert((at, requeue_kind, requeue_key.to_string()));
                    Ok(None)
                }
            };
            match res {
                Ok(Some(o)) => self.observe(&o),
                Ok(None) => {}
                Err(e) => {
                    self.record(format!("ERROR {requeue_key}: {}", e));
                    // Conflicts and the like: retry the owner after a second.
                    let at = self.clock.now() + SignedDuration::from_secs(1);
                    self.requeues
                        .insert((at, requeue_kind, requeue_key.to_string()));
                }
            }
        }
    }

    fn name_generated(&mut self, o: &mut DynamicObject) {
        if o.metadata.name.as_deref().is_none_or(str::is_empty) {
            if let Some(base) = o.metadata.generate_name.clone() {
                o.metadata.name = Some(format!("{base}{}", self.names.suffix()));
            }
        }
    }

    async fn write_event(
        &mut self,
        obj: &orch_types::events::ObjectRef,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        self.event_seq += 1;
        let ns = obj.namespace.clone().unwrap_or_else(|| "default".into());
        let now = self.clock.now();
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{}.{:016x}", obj.name, self.event_seq), "namespace": ns},
            "involvedObject": {"apiVersion": obj.api_version, "kind": obj.kind, "namespace": obj.namespace, "name": obj.name, "uid": obj.uid},
            "type": type_, "reason": reason, "message": message, "count": 1,
            "firstTimestamp": now.to_string(), "lastTimestamp": now.to_string(),
            "source": {"component": "orch-sim"},
        });
        if let Ok(d) = DynamicObject::from_value(ev) {
            let r = ApiResource::of::<k8s_openapi::api::core::v1::Event>();
            let _ = self
                .client
                .create(&r, Some(&ns), &d, &PostParams::default())
                .await;
        }
    }

    // ---- the loop ------------------------------------------------------------------------

    async fn run_controllers(&mut self) -> bool {
        let mut did = false;
        let now = self.clock.now();
        let deploys = std::mem::take(&mut self.dirty_deploy);
        for k in deploys {
            let Some(d) = self.deploys.get(&k).cloned() else {
                continue;
            };
            let ns = d.metadata.namespace.clone().unwrap_or_default();
            // What the Deployment can claim: its ReplicaSets and orphans of its namespace
            // (others' are skipped by the reconciler), and the pods of those.
            let rs_keys = with_orphans(self.owned_rss.get(&k), &self.orphan_rss, &ns);
            let rss: Vec<Arc<ReplicaSet>> = rs_keys
                .iter()
                .filter_map(|r| self.rss.get(r).cloned())
                .collect();
            let mut pod_keys: Vec<&String> = rs_keys
                .iter()
                .filter_map(|r| self.owned_pods.get(r))
                .flatten()
                .collect();
            pod_keys.sort();
            let pods: Vec<Arc<Pod>> = pod_keys
                .into_iter()
                .filter_map(|p| self.pods.get(p).cloned())
                .collect();
            let actions = deployment::reconcile(
                &d,
                DeploymentView {
                    replica_sets: &rss,
                    pods: &pods,
                    now,
                },
            );
            if actions.iter().any(|a| !matches!(a, Action::Requeue(_))) {
                did = true;
            }
            self.apply_actions(actions, 0, &k).await;
        }
        let rss = std::mem::take(&mut self.dirty_rs);
        for k in rss {
            let Some(rs) = self.rss.get(&k).cloned() else {
                continue;
            };
            let ns = rs.metadata.namespace.clone().unwrap_or_default();
            // Its pods and the orphans of its namespace (pods of other controllers are
            // skipped by the reconciler anyway), in key order as before.
            let pods: Vec<Arc<Pod>> = with_orphans(self.owned_pods.get(&k), &self.orphan_pods, &ns)
                .iter()
                .filter_map(|p| self.pods.get(p).cloned())
                .collect();
            let w = Workload::from_replica_set(&rs);
            let actions = replicaset::reconcile(
                &w,
                SyncContext {
                    pods: &pods,
                    expectations_satisfied: true,
                    last_failure: None,
                    now,
                },
            );
            if actions.iter().any(|a| !matches!(a, Action::Requeue(_))) {
                did = true;
            }
            self.apply_actions(actions, 1, &k).await;
        }
        did
    }

    fn monitor_needed(&self) -> bool {
        self.node_state.values().any(|s| !s.up)
            || self.nodes.values().any(|n| {
                n.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|t| t.iter().any(|t| t.key.starts_with("node.kubernetes.io/")))
            })
    }

    async fn run_lifecycle(&mut self) -> bool {
        let now = self.clock.now();
        if now < self.next_monitor {
            return false;
        }
        self.next_monitor = now + SignedDuration::from_secs(5);
        if !self.monitor_needed() {
            return false;
        }
        let nodes: Vec<Arc<Node>> = self.nodes.values().cloned().collect();
        let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        for p in self.pods.values() {
            if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
                by_node.entry(n).or_default().push(p.clone());
            }
        }
        let leases: BTreeMap<String, Arc<Lease>> = self
            .nodes
            .keys()
            .filter_map(|n| Some((n.clone(), self.lease_of(n)?)))
            .collect();
        let actions = self.lifecycle.monitor(
            &nodes,
            &|n| leases.get(n).cloned(),
            &|n| by_node.get(n).cloned().unwrap_or_default(),
            now,
        );
        let mut did = actions.iter().any(|a| !matches!(a, Action::Requeue(_)));
        self.apply_actions(actions, 2, "node-lifecycle").await;
        // Taint-based eviction over every node with a NoExecute taint.
        let tainted: Vec<Arc<Node>> = self
            .nodes
            .values()
            .filter(|n| {
                n.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|t| t.iter().any(|t| t.effect == "NoExecute"))
            })
            .cloned()
            .collect();
        for n in tainted {
            let name = n.metadata.name.clone().unwrap_or_default();
            let pods: Vec<Arc<Pod>> = by_node
                .get(&name)
                .map(|v| {
                    v.iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let actions = taint_eviction(&n, &pods, now);
            for a in &actions {
                if let Action::Delete {
                    namespace,
                    name: pod,
                    ..
                } = a
                {
                    let t = self.now();
                    self.evictions.push(Eviction {
                        time: t,
                        pod: key_of(namespace.as_deref(), pod),
                        node: name.clone(),
                        reason: "TaintManagerEviction".into(),
                    });
                    did = true;
                }
            }
            self.apply_actions(actions, 2, "node-lifecycle").await;
        }
        did
    }

    async fn run_scheduler(&mut self) -> bool {
        let retry = std::mem::take(&mut self.retry_unschedulable);
        let mut pending: Vec<(i32, Timestamp, String)> = self
            .unbound
            .iter()
            .filter(|k| retry || !self.unschedulable.contains_key(*k))
            .filter_map(|k| Some((k, self.pods.get(k)?)))
            .filter(|(_, p)| p.spec.is_some())
            .map(|(k, p)| {
                let prio = p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
                let c = p
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|c| c.0)
                    .unwrap_or(self.start);
                (-prio, c, k.clone())
            })
            .collect();
        if pending.is_empty() {
            return false;
        }
        pending.sort();
        let mut did = false;
        for (_, _, k) in pending {
            self.housekeep().await;
            let Some(p) = self.pods.get(&k).cloned() else {
                continue;
            };
            let Ok(info) = PodInfo::new(p.clone()) else {
                self.unschedulable.insert(k.clone(), "invalid pod".into());
                continue;
            };
            let d = self
                .scheduler
                .schedule_and_assume(&info, &mut self.snapshot);
            let t = self.now();
            match &d.outcome {
                Outcome::Scheduled { node } => {
                    self.record(format!("SCHEDULE {k} -> {node}"));
                    let ex = d.explanation.as_ref();
                    let winner = ex.and_then(|e| e.winner.as_ref());
                    self.push_decision(DecisionRecord {
                        time: t,
                        pod: k.clone(),
                        node: Some(node.clone()),
                        feasible: ex.map_or(0, |e| e.nodes_feasible),
                        score: winner.and_then(|w| w.score),
                        message: winner
                            .map_or_else(|| format!("assigned to {node}"), |w| w.summary.clone()),
                    });
                    self.unschedulable.remove(&k);
                    if self.bind(&p, node).await {
                        did = true;
                        if self.events {
                            let obj = orch_types::events::ObjectRef::of(p.as_ref());
                            let msg = format!("Successfully assigned {k} to {node}");
                            self.write_event(&obj, "Normal", "Scheduled", &msg).await;
                        }
                    } else {
                        self.snapshot.remove_pod(&k);
                    }
                }
                Outcome::Unschedulable {
                    message, victims, ..
                } => {
                    let first = self.unschedulable.get(&k) != Some(message);
                    if first {
                        self.record(format!("UNSCHEDULABLE {k}: {message}"));
                        self.push_decision(DecisionRecord {
                            time: t,
                            pod: k.clone(),
                            node: None,
                            feasible: d.explanation.as_ref().map_or(0, |e| e.nodes_feasible),
                            score: None,
                            message: message.clone(),
                        });
                        self.unschedulable.insert(k.clone(), message.clone());
                        self.mark_unschedulable(&p, message).await;
                    }
                    for v in victims.clone() {
                        let (ns, name) = v.split_once('/').unwrap_or(("default", &v));
                        self.record(format!("PREEMPT {v} for {k}"));
                        if let Ok(o) = self
                            .client
                            .delete(&pods_res(), Some(ns), name, &DeleteParams::default())
                            .await
                        {
                            match o {
                                DeleteOutcome::Deleted(o) => self.forget(&o),
                                DeleteOutcome::Pending(o) => self.observe(&o),
                            }
                            did = true;
                        }
                    }
                }
                Outcome::Gated { message } | Outcome::Error { message } => {
                    if self.unschedulable.get(&k) != Some(message) {
                        self.record(format!("NOT SCHEDULED {k}: {message}"));
                        self.unschedulable.insert(k.clone(), message.clone());
                    }
                }
            }
        }
        did
    }

    fn push_decision(&mut self, d: DecisionRecord) {
        if self.decisions.len() >= self.decision_limit {
            self.decisions.pop_front();
        }
        self.decisions.push_back(d);
    }

    async fn bind(&mut self, p: &Pod, node: &str) -> bool {
        let ns = p
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = p.metadata.name.clone().unwrap_or_default();
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": ns},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let Ok(b) = DynamicObject::from_value(binding) else {
            return false;
        };
        // `pods/binding` answers with the bound pod (as the in-process client's
        // `create_subresource` does): no second read.
        let res = self
            .api
            .bind_pod(pods_info(), Some(&ns), &name, &b)
            .await
            .map_err(orch_types::client::ClientError::from);
        match res {
            Ok(o) => {
                self.observe(&o);
                true
            }
            Err(e) => {
                self.record(format!("ERROR bind {ns}/{name}: {e}"));
                false
            }
        }
    }

    async fn mark_unschedulable(&mut self, p: &Pod, message: &str) {
        let ns = p
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = p.metadata.name.clone().unwrap_or_default();
        let now = self.clock.now();
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastTransitionTime": now.to_string(),
        }]}});
        if let Ok(o) = self
            .client
            .patch(
                &pods_res(),
                Some(&ns),
                &name,
                Some("status"),
                &Patch::Strategic(patch),
                &PatchParams::default(),
            )
            .await
        {
            self.observe(&o);
        }
        if self.events {
            let obj = orch_types::events::ObjectRef::of(p);
            self.write_event(&obj, "Warning", "FailedScheduling", message)
                .await;
        }
    }

    async fn run_workers(&mut self) -> bool {
        let now = self.clock.now();
        let mut due = Vec::new();
        while let Some((t, k)) = self.wakeups.first().cloned() {
            if t > now {
                break;
            }
            self.wakeups.pop_first();
            due.push(k);
        }
        let mut did = false;
        for k in due {
            self.housekeep().await;
            let Some(ws) = self.workers.get_mut(&k) else {
                continue;
            };
            ws.due = None;
            let node = ws.node.clone();
            let Some(st) = self.node_state.get(&node) else {
                continue;
            };
            if !st.up {
                continue; // the kubelet is down: its pods are frozen until it comes back
            }
            let rt = st.rt.clone();
            let ws = self.workers.get_mut(&k).expect("present above");
            for job in ws.worker.tick(now, &rt) {
                let out = rt.run_handler(
                    &job.id,
                    job.kind,
                    &job.action,
                    &job.target,
                    job.timeout,
                    now,
                );
                ws.worker.handler_done(&job, out, now);
            }
            let status = ws.worker.status(now);
            // The worker queues its events (Pulling, Started, ...) for the kubelet's recorder;
            // the engine does not report kubelet events, so they are dropped here instead of
            // piling up in every worker.
            drop(ws.worker.take_events());
            let digest = status_digest(&status);
            let changed = ws.last_status != Some(digest);
            let wants_delete = ws.worker.wants_delete();
            let next = ws.worker.next_wakeup(now, &rt);
            if changed {
                ws.last_status = Some(digest);
                if let Some(p) = self.pods.get(&k).cloned() {
                    // A status write reads only metadata and status (the server keeps the
                    // stored spec), so the spec is neither copied nor converted, and the
                    // metadata is taken over as it is (no round trip through JSON).
                    if let Ok(sv) = serde_json::to_value(&status) {
                        let mut d = DynamicObject::new("v1", "Pod", "");
                        d.metadata = p.metadata.clone();
                        d.data.insert("status".into(), sv);
                        let ns = p.metadata.namespace.clone();
                        let name = d.name().to_string();
                        // Straight to the server's update (what the in-process client calls)
                        // so the stored object is read in place, not copied out.
                        let written = self
                            .api
                            .update_object(
                                pods_info(),
                                ns.as_deref(),
                                &name,
                                Part::Status,
                                d,
                                &PostParams::default(),
                            )
                            .await
                            .map_err(orch_types::client::ClientError::from);
                        match written {
                            Ok(out) => {
                                let o = &out.written().object;
                                if let Some(new) = pod_after_status_write(o, &p) {
                                    self.observe_pod(new);
                                }
                                did = true;
                            }
                            Err(e) => {
                                self.record(format!("ERROR status {k}: {e}"));
                                self.refresh(&pods_res(), ns.as_deref(), &name).await;
                                if let Some(w) = self.workers.get_mut(&k) {
                                    w.last_status = None;
                                }
                                self.wake(&k, now + SignedDuration::from_secs(1));
                            }
                        }
                    }
                }
            }
            if wants_delete {
                if let Some(p) = self.pods.get(&k).cloned() {
                    let ns = p.metadata.namespace.clone();
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let uid = p.metadata.uid.clone();
                    let params = DeleteParams {
                        grace_period_seconds: Some(0),
                        preconditions: uid.map(|u| Preconditions {
                            uid: Some(u),
                            resource_version: None,
                        }),
                        ..Default::default()
                    };
                    match self
                        .client
                        .delete(&pods_res(), ns.as_deref(), &name, &params)
                        .await
                    {
                        Ok(DeleteOutcome::Deleted(o)) => self.forget(&o),
                        Ok(DeleteOutcome::Pending(o)) => self.observe(&o),
                        Err(e) if e.is_not_found() => {
                            let mut gone = DynamicObject::new("v1", "Pod", &name);
                            gone.metadata.namespace = ns;
                            self.forget(&gone);
                        }
                        Err(e) => self.record(format!("ERROR delete {k}: {e}")),
                    }
                    did = true;
                }
                continue;
            }
            // Like the kubelet's poll interval: a pod still starting (image pull, sandbox) or
            // terminating may have no timer of its own; look again a second later.
            let settling = self.pods.get(&k).is_some_and(|p| {
                p.metadata.deletion_timestamp.is_some()
                    || p.status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .is_none_or(|ph| ph == "Pending")
            });
            let next = match next {
                Some(t) => Some(t),
                None if settling => Some(now + SignedDuration::from_secs(1)),
                None => None,
            };
            if let Some(t) = next {
                self.wake(&k, t.max(now + SignedDuration::from_millis(1)));
            }
        }
        did
    }

    async fn run_timeline(&mut self) -> bool {
        let now = self.clock.now();
        let mut did = false;
        while let Some((&(t, i), _)) = self.timeline.first_key_value() {
            if t > now {
                break;
            }
            let item = self.timeline.remove(&(t, i)).expect("first key exists");
            did = true;
            match item {
                Item::Workload(w) => {
                    let w = self.scenario.workloads[w].clone();
                    let mut objs = w.manifests.clone();
                    if let Some(y) = &w.yaml {
                        match decode_yaml(y) {
                            Ok(mut v) => objs.append(&mut v),
                            Err(e) => self.record(format!("ERROR workload yaml: {e}")),
                        }
                    }
                    if let Err(e) = self.apply(objs).await {
                        self.record(format!("ERROR apply: {e}"));
                    }
                }
                Item::Disruption(d) => {
                    let action = self.scenario.disruptions[d].action.clone();
                    self.disrupt(action).await;
                }
            }
        }
        did
    }

    /// Applies one disruption now.
    pub async fn disrupt(&mut self, action: Disrupt) {
        match action {
            Disrupt::NodeDown { node } => self.set_node_up(&node, false).await,
            Disrupt::NodeUp { node } => self.set_node_up(&node, true).await,
            Disrupt::ZoneDown { zone } => {
                for n in self.nodes_in_zone(&zone) {
                    self.set_node_up(&n, false).await;
                }
            }
            Disrupt::ZoneUp { zone } => {
                for n in self.nodes_in_zone(&zone) {
                    self.set_node_up(&n, true).await;
                }
            }
            Disrupt::Cordon { node } => self.cordon(&node, true).await,
            Disrupt::Uncordon { node } => self.cordon(&node, false).await,
            Disrupt::Drain { node } => {
                self.cordon(&node, true).await;
                let pods: Vec<Arc<Pod>> = self
                    .pods
                    .values()
                    .filter(|p| {
                        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())
                    })
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| controller_of(&p.metadata, "DaemonSet").is_none())
                    .cloned()
                    .collect();
                for p in pods {
                    let ns = p.metadata.namespace.clone();
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let t = self.now();
                    self.evictions.push(Eviction {
                        time: t,
                        pod: key_of(ns.as_deref(), &name),
                        node: node.clone(),
                        reason: "Drain".into(),
                    });
                    self.record(format!(
                        "EVICT {} (drain {node})",
                        key_of(ns.as_deref(), &name)
                    ));
                    match self
                        .client
                        .delete(&pods_res(), ns.as_deref(), &name, &DeleteParams::default())
                        .await
                    {
                        Ok(DeleteOutcome::Deleted(o)) => self.forget(&o),
                        Ok(DeleteOutcome::Pending(o)) => self.observe(&o),
                        Err(e) => self.record(format!("ERROR drain {name}: {e}")),
                    }
                }
            }
            Disrupt::Scale { target, replicas } => {
                if let Ok((kind, ns, name)) = parse_target(&target) {
                    match resolve_workload(&kind) {
                        Some(r) => {
                            let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
                            match self
                                .client
                                .patch(&r, Some(&ns), &name, None, &patch, &PatchParams::default())
                                .await
                            {
                                Ok(o) => {
                                    self.record(format!("SCALE {target} to {replicas}"));
                                    self.observe(&o);
                                }
                                Err(e) => self.record(format!("ERROR scale {target}: {e}")),
                            }
                        }
                        None => self.record(format!("ERROR scale {target}: unknown kind")),
                    }
                }
            }
            Disrupt::SetImage {
                target,
                image,
                container,
            } => {
                if let Ok((kind, ns, name)) = parse_target(&target) {
                    let Some(r) = resolve_workload(&kind) else {
                        self.record(format!("ERROR set image {target}: unknown kind"));
                        return;
                    };
                    match self.client.get(&r, Some(&ns), &name).await {
                        Ok(mut o) => {
                            if let Some(cs) = o
                                .data
                                .get_mut("spec")
                                .and_then(|s| s.pointer_mut("/template/spec/containers"))
                                .and_then(Value::as_array_mut)
                            {
                                for c in cs {
                                    if container.as_deref().is_none_or(|n| c["name"] == n) {
                                        c["image"] = Value::String(image.clone());
                                    }
                                }
                            }
                            match self
                                .client
                                .update(&r, Some(&ns), &o, &PostParams::default())
                                .await
                            {
                                Ok(o) => {
                                    self.record(format!("SET IMAGE {target} {image}"));
                                    self.observe(&o);
                                }
                                Err(e) => self.record(format!("ERROR set image {target}: {e}")),
                            }
                        }
                        Err(e) => self.record(format!("ERROR set image {target}: {e}")),
                    }
                }
            }
        }
    }

    fn nodes_in_zone(&self, zone: &str) -> Vec<String> {
        self.node_state
            .iter()
            .filter(|(_, s)| s.zone.as_deref() == Some(zone))
            .map(|(n, _)| n.clone())
            .collect()
    }

    async fn cordon(&mut self, node: &str, on: bool) {
        let patch = Patch::Merge(
            json!({"spec": {"unschedulable": if on { Value::Bool(true) } else { Value::Null }}}),
        );
        match self
            .client
            .patch(
                &ApiResource::of::<Node>(),
                None,
                node,
                None,
                &patch,
                &PatchParams::default(),
            )
            .await
        {
            Ok(o) => {
                self.record(format!(
                    "{} node {node}",
                    if on { "CORDON" } else { "UNCORDON" }
                ));
                self.observe(&o);
            }
            Err(e) => self.record(format!("ERROR cordon {node}: {e}")),
        }
    }

    fn sample(&mut self) {
        let (mut cpu_req, mut cpu_alloc, mut mem_req, mut mem_alloc) = (0i64, 0i64, 0i64, 0i64);
        let mut nodes_ready = 0;
        for n in self.snapshot.nodes() {
            let ready = self.nodes.get(&n.name).is_some_and(|o| is_ready(o));
            if !ready {
                continue;
            }
            nodes_ready += 1;
            cpu_req += n.requested.milli_cpu;
            cpu_alloc += n.allocatable.milli_cpu;
            mem_req += n.requested.memory;
            mem_alloc += n.allocatable.memory;
        }
        let mut bound = 0;
        let mut pending = 0;
        let mut running = 0;
        for p in self.pods.values() {
            let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
            match node {
                Some(_) => bound += 1,
                None => pending += 1,
            }
            // A pod on a node whose kubelet is down is not known to run: its last reported
            // phase may still say Running until the node controller acts.
            let reachable = node.is_some_and(|n| self.node_state.get(n).is_some_and(|s| s.up));
            if reachable && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                running += 1;
            }
        }
        let ratio = |a: i64, b: i64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        let time = self.now();
        self.samples.push(UtilizationSample {
            time,
            cpu: ratio(cpu_req, cpu_alloc),
            memory: ratio(mem_req, mem_alloc),
            pods_bound: bound,
            pods_pending: pending,
            pods_running: running,
            evicted: self.evictions.len(),
            nodes_ready,
        });
    }

    /// Compacts the API server's history like its periodic compactor does, but by the number
    /// of writes (virtual time runs much faster than the real compactor's timer): everything
    /// but the last [`KEEP_REVISIONS`] revisions once [`COMPACT_EVERY`] writes have piled up.
    /// Called before every write of the long loops (controllers' actions, scheduling, pod
    /// workers), since one instant can hold hundreds of thousands of writes. Watches are
    /// served from the watch cache, whose window is unaffected. Every [`SYNC_CACHE_EVERY`]
    /// writes it also waits for the watch cache to apply them, so watches opened through the
    /// simulation's client see every event even in instants with hundreds of thousands of writes.
    async fn housekeep(&mut self) {
        let storage = self.api.storage();
        let rev = storage.current_revision();
        if rev.saturating_sub(self.cache_synced) >= SYNC_CACHE_EVERY
            && self.api.watch_cache().sync().await.is_ok()
        {
            self.cache_synced = rev;
        }
        if rev.saturating_sub(self.compacted) < COMPACT_EVERY {
            return;
        }
        let to = rev - KEEP_REVISIONS;
        if storage.compact(to).await.is_ok() {
            self.compacted = to;
        }
    }

    /// Runs every component until nothing changes at the current instant.
    async fn settle(&mut self) {
        for _ in 0..MAX_ROUNDS_PER_INSTANT {
            self.housekeep().await;
            let mut did = self.run_timeline().await;
            did |= self.run_controllers().await;
            did |= self.run_lifecycle().await;
            did |= self.run_scheduler().await;
            did |= self.run_workers().await;
            let now = self.clock.now();
            while let Some((t, kind, k)) = self.requeues.first().cloned() {
                if t > now {
                    break;
                }
                self.requeues.pop_first();
                match kind {
                    0 => drop(self.dirty_deploy.insert(k)),
                    1 => drop(self.dirty_rs.insert(k)),
                    _ => self.next_monitor = self.next_monitor.min(now),
                }
                did = true;
            }
            if !did && self.dirty_deploy.is_empty() && self.dirty_rs.is_empty() {
                return;
            }
        }
    }

    /// The next instant anything is due, if any.
    fn next_timer(&self) -> Option<Timestamp> {
        let mut t: Option<Timestamp> = None;
        let mut consider = |x: Timestamp| t = Some(t.map_or(x, |t| t.min(x)));
        if let Some((&(x, _), _)) = self.timeline.first_key_value() {
            consider(x);
        }
        if let Some((x, _)) = self.wakeups.first() {
            consider(*x);
        }
        if let Some((x, _, _)) = self.requeues.first() {
            consider(*x);
        }
        if self.monitor_needed() {
            consider(self.next_monitor);
        }
        t
    }

    /// Runs until virtual time `until` (seconds since the start); returns the new time.
    pub async fn run_until(&mut self, until: f64, mut interrupted: impl FnMut() -> bool) -> f64 {
        let wall = std::time::Instant::now();
        let end = self.start + SignedDuration::from_secs_f64(until.max(0.0));
        loop {
            self.settle().await;
            while self.next_sample <= self.clock.now() {
                self.sample();
                self.next_sample += self.sample_every;
            }
            if interrupted() {
                break;
            }
            let next = self
                .next_timer()
                .map_or(end, |t| t.min(end))
                .min(self.next_sample.max(self.clock.now()));
            let next = if next > end { end } else { next };
            if self.clock.now() >= end {
                break;
            }
            self.clock.set(next.max(self.clock.now()));
            if next == self.clock.now() && next >= end {
                self.settle().await;
                if self.next_sample <= self.clock.now() {
                    self.sample();
                    self.next_sample += self.sample_every;
                }
                break;
            }
        }
        self.wall += wall.elapsed();
        self.now()
    }

    /// Advances to the next timer (or by `max` seconds when none is due sooner); returns the
    /// new time.
    pub async fn step(&mut self, max: f64) -> f64 {
        self.settle().await;
        let now = self.clock.now();
        let cap = now + SignedDuration::from_secs_f64(max.max(0.0));
        let next = self.next_timer().map_or(cap, |t| t.min(cap)).max(now);
        let until = self.now() + secs(next.duration_since(now)).max(0.001);
        self.run_until(until, || false).await
    }

    /// Runs until no pod is pending-with-a-chance and no timer is due within `quiet` seconds,
    /// or until `limit` seconds of virtual time; returns the new time.
    pub async fn run_until_stable(
        &mut self,
        limit: f64,
        mut interrupted: impl FnMut() -> bool,
    ) -> f64 {
        let end = self.now() + limit;
        loop {
            self.settle().await;
            let now = self.now();
            let busy = self
                .next_timer()
                .map(|t| secs(t.duration_since(self.start)));
            let stable = self.dirty_rs.is_empty()
                && self.dirty_deploy.is_empty()
                && self.pods.values().all(|p| {
                    let ph = p
                        .status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .unwrap_or("Pending");
                    let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                    ph != "Pending" || !bound
                })
                && self.timeline.is_empty();
            if stable || now >= end || interrupted() {
                return now;
            }
            let target = busy.unwrap_or(end).min(end).max(now + 0.001);
            self.run_until(target, &mut interrupted).await;
        }
    }

    /// Runs the scenario's duration (or until stable when it has none) and reports.
    pub async fn run_scenario(&mut self) -> Report {
        match self.scenario.duration {
            Some(d) => {
                self.run_until(secs(sd(d)), || false).await;
            }
            None => {
                self.run_until_stable(24.0 * 3600.0, || false).await;
            }
        }
        self.report()
    }

    /// The report so far.
    pub fn report(&self) -> Report {
        let mut counts = PodCounts::default();
        for p in self.pods.values() {
            counts.total += 1;
            if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none() {
                counts.unscheduled += 1;
            }
            match p
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .unwrap_or("Pending")
            {
                "Running" => counts.running += 1,
                "Succeeded" => counts.succeeded += 1,
                "Failed" => counts.failed += 1,
                _ => counts.pending += 1,
            }
        }
        let node_utilization = self
            .snapshot
            .nodes()
            .iter()
            .map(|n| NodeUtilization {
                node: n.name.clone(),
                zone: self.node_state.get(&n.name).and_then(|s| s.zone.clone()),
                cpu: if n.allocatable.milli_cpu > 0 {
                    n.requested.milli_cpu as f64 / n.allocatable.milli_cpu as f64
                } else {
                    0.0
                },
                memory: if n.allocatable.memory > 0 {
                    n.requested.memory as f64 / n.allocatable.memory as f64
                } else {
                    0.0
                },
                pods: n.pods.len(),
            })
            .collect::<Vec<_>>();
        let mut node_utilization = node_utilization;
        node_utilization.sort_by(|a, b| a.node.cmp(&b.node));
        Report {
            seed: self.seed,
            virtual_seconds: self.now(),
            wall_seconds: self.wall.as_secs_f64(),
            nodes: self.nodes.len(),
            pods: counts,
            scheduling_latency: Percentiles::of(&mut self.sched_latency.clone()),
            startup_latency: Percentiles::of(&mut self.startup_latency.clone()),
            unschedulable: self
                .unschedulable
                .iter()
                .filter(|(k, _)| {
                    self.pods.get(*k).is_some_and(|p| {
                        p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none()
                    })
                })
                .map(|(k, r)| Unschedulable {
                    pod: k.clone(),
                    reason: r.clone(),
                })
                .collect(),
            evictions: self.evictions.clone(),
            utilization: self.samples.clone(),
            node_utilization,
            decisions: self.decisions.iter().cloned().collect(),
            event_count: self.event_count,
            event_log_hash: self.hash.hex(),
        }
    }
}

fn resolve_workload(kind: &str) -> Option<ApiResource> {
    orch_types::registry::by_name(kind)
        .into_iter()
        .find(|r| r.group == "apps")
        .map(|r| r.api_resource())
}

fn decode_yaml(text: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| e.to_string())?;
        match v {
            Value::Null => {}
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                out.extend(
                    m.get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

fn sd(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn secs(d: SignedDuration) -> f64 {
    d.as_secs_f64()
}

fn controller_of(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: &str,
) -> Option<String> {
    // Validation allows one controller reference per object, so the first is the one.
    controller_ref(m)
        .filter(|(k, _)| *k == kind)
        .map(|(_, name)| name.to_string())
}

/// Phase Pending (or none yet).
fn phase_pending(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_none_or(|ph| ph == "Pending")
}

/// Files `key` under its controller (`ns/name`) or among the orphans.
fn index(
    owned: &mut BTreeMap<String, BTreeSet<String>>,
    orphans: &mut BTreeSet<String>,
    key: &str,
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) {
    match controller_key(m) {
        Some(Some(c)) => drop(owned.entry(c).or_default().insert(key.to_string())),
        Some(None) => {}
        None => drop(orphans.insert(key.to_string())),
    }
}

/// Undoes [`index`] for the same metadata.
fn unindex(
    owned: &mut BTreeMap<String, BTreeSet<String>>,
    orphans: &mut BTreeSet<String>,
    key: &str,
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) {
    match controller_key(m) {
        Some(Some(c)) => {
            if let Some(set) = owned.get_mut(&c) {
                set.remove(key);
                if set.is_empty() {
                    owned.remove(&c);
                }
            }
        }
        Some(None) => {}
        None => drop(orphans.remove(key)),
    }
}

/// Kind and name of the controller owner reference, if any (what [`controller_key`] depends
/// on).
fn controller_ref(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<(&str, &str)> {
    m.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.as_str(), r.name.as_str()))
}

/// `None`: no controller; `Some(None)`: a controller of a kind the engine does not run;
/// `Some(Some(ns/name))`: a ReplicaSet or Deployment controller.
fn controller_key(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<Option<String>> {
    let (kind, name) = controller_ref(m)?;
    Some(matches!(kind, "ReplicaSet" | "Deployment").then(|| key_of(m.namespace.as_deref(), name)))
}

/// The keys of `owned` and the orphans of namespace `ns`, in key order.
fn with_orphans(
    owned: Option<&BTreeSet<String>>,
    orphans: &BTreeSet<String>,
    ns: &str,
) -> Vec<String> {
    let prefix = format!("{ns}/");
    let mut keys: Vec<String> = owned.into_iter().flatten().cloned().collect();
    keys.extend(
        orphans
            .range(prefix.clone()..)
            .take_while(|k| k.starts_with(&prefix))
            .cloned(),
    );
    keys.sort();
    keys
}

fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

fn set_ready(n: &mut Node, now: Timestamp) {
    let status = n.status.get_or_insert_with(Default::default);
    let conds = status.conditions.get_or_insert_with(Vec::new);
    let t = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now);
    match conds.iter_mut().find(|c| c.type_ == "Ready") {
        Some(c) => {
            if c.status != "True" {
                c.last_transition_time = Some(t.clone());
            }
            c.status = "True".into();
            c.reason = Some("KubeletReady".into());
            c.message = Some("kubelet is posting ready status".into());
            c.last_heartbeat_time = Some(t);
        }
        None => conds.push(k8s_openapi::api::core::v1::NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("KubeletReady".into()),
            message: Some("kubelet is posting ready status".into()),
            last_heartbeat_time: Some(t.clone()),
            last_transition_time: Some(t),
        }),
    }
}

/// A Node object from a group template: name, zone label, capacity = allocatable by default,
/// Ready at `now`.
fn node_from_template(
    template: &Value,
    name: &str,
    zone: Option<&str>,
    now: Timestamp,
) -> Result<DynamicObject, String> {
    let mut v = if template.is_null() {
        json!({})
    } else {
        template.clone()
    };
    let m = v
        .as_object_mut()
        .ok_or_else(|| format!("node {name}: template is not a mapping"))?;
    m.insert("apiVersion".into(), json!("v1"));
    m.insert("kind".into(), json!("Node"));
    let meta = m.entry("metadata").or_insert_with(|| json!({}));
    meta["name"] = json!(name);
    let labels = meta
        .as_object_mut()
        .ok_or("metadata is not a mapping")?
        .entry("labels")
        .or_insert_with(|| json!({}));
    labels["kubernetes.io/hostname"] = json!(name);
    labels["kubernetes.io/os"] = json!("linux");
    if let Some(z) = zone {
        labels[ZONE_LABEL] = json!(z);
    }
    let status = m.entry("status").or_insert_with(|| json!({}));
    let cap = status
        .get("capacity")
        .cloned()
        .unwrap_or_else(|| json!({"cpu": "4", "memory": "16Gi", "pods": "110"}));
    let mut cap = cap;
    if cap.get("pods").is_none() {
        cap["pods"] = json!("110");
    }
    status["capacity"] = cap.clone();
    if status.get("allocatable").is_none() {
        status["allocatable"] = cap;
    }
    let mut node: Node = serde_json::from_value(v).map_err(|e| format!("node {name}: {e}"))?;
    set_ready(&mut node, now);
    DynamicObject::from_typed(&node).map_err(|e| format!("node {name}: {e}"))
}

fn node_summary(n: &Node) -> String {
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "Unknown".into());
    let unsched = n
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let taints: Vec<String> = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    format!(
        "ready={ready} unschedulable={unsched} taints=[{}]",
        taints.join(",")
    )
}

/// What the event log says of a pod (a line is written when it changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PodSummary<'a> {
    node: &'a str,
    phase: &'a str,
    ready: bool,
    deleting: bool,
}

impl<'a> PodSummary<'a> {
    fn of(p: &'a Pod) -> Self {
        let status = p.status.as_ref();
        Self {
            node: p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or("-"),
            phase: status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending"),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True"),
            deleting: p.metadata.deletion_timestamp.is_some(),
        }
    }
}

impl std::fmt::Display for PodSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            node,
            phase,
            ready,
            deleting,
        } = self;
        let deleting = if *deleting { " terminating" } else { "" };
        write!(f, "node={node} phase={phase} ready={ready}{deleting}")
    }
}

fn rs_summary(r: &ReplicaSet) -> String {
    let s = r.status.clone().unwrap_or_default();
    format!(
        "spec={} replicas={} ready={} available={}",
        r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0)
    )
}

fn deploy_summary(d: &Deployment) -> String {
    let s = d.status.clone().unwrap_or_default();
    format!(
        "spec={} replicas={} updated={} ready={} available={}",
        d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        s.replicas.unwrap_or(0),
        s.updated_replicas.unwrap_or(0),
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0)
    )
}
