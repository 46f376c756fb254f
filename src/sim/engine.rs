//! The simulation engine: the clock, the scenario timeline, disruptions and the report around
//! the same components a live cluster runs.
//!
//! Every write goes through the real API server (memory storage) with the in-process client.
//! The controllers are the live controller manager's declarations
//! (`orch_controllers::manager::controllers`), run by orch-runtime's steppable driver
//! ([`Stepper`]): its caches are fed from what the server returned for each write — the
//! controllers' own and the engine's — so no watch fan-out is needed and the order of
//! everything is fixed. The engine reads the same caches. Per virtual instant the loop runs,
//! until nothing changes: the timeline, the controllers (one key at a time), the scheduler's
//! decision step (`orch_scheduler::cycle::SchedulingCycle`, whose effects the engine executes)
//! and the kubelet's pod sync step (`orch_kubelet::pod_sync::PodSync`) per bound pod on a
//! per-node `SimRuntime`; kubelets renew their node Leases every 10 s while up. Then the clock
//! jumps to the next timer (scenario event, pod wake-up, controller requeue, scheduling
//! back-off, Lease renewal, utilization sample, metrics scrape).
//!
//! Metrics: while at least one HorizontalPodAutoscaler exists, the engine does what
//! metrics-server does for it every [`METRICS_RESOLUTION`]: it reads the running containers'
//! usage from the sim runtimes of the nodes whose kubelet is up (the same reading as the
//! kubelet's `/stats/summary`), overridden by the scenario's `load` steps, and replaces the
//! controllers' `metrics.k8s.io` PodMetrics cache with it — the cache the live driver fills
//! by listing. Once the instant settles, each autoscaler's status is sampled into the report.
//! Without autoscalers nothing is scraped and no timer is added.
//!
//! Determinism: caches list in key order, generated names come from a seeded generator, the
//! API server runs on the same virtual clock, and the event log excludes UIDs. Same scenario
//! and seed ⇒ same log, byte for byte.

use super::report::*;
use super::scenario::{load_nano_cores, parse_target, Action as Disrupt, Scenario};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use orch_apiserver::metrics::{cpu_quantity, usage_of, WINDOW};
use orch_apiserver::rest::update::Part;
use orch_apiserver::{ApiServer, ApiServerConfig};
use orch_controllers::manager::{controllers, ManagerConfig};
use orch_controllers::nodelifecycle::LEASE_NAMESPACE;
use orch_controllers::scale::Workloads;
use orch_kubelet::pod_sync::{self, PodSync};
use orch_kubelet::runtime::sim::SimRuntime;
use orch_kubelet::stats::{container_samples, ContainerSample};
use orch_kubelet::worker::{PodWorker, WorkerConfig};
use orch_runtime::action::SeededNames;
use orch_runtime::object::{controller_key, key_from, key_of, split_key, Object};
use orch_runtime::step::{RecordedEvent, StepConfig, Stepper, Subscription};
use orch_runtime::store::{Change, Store};
use orch_scheduler::cycle::{unschedulable_status, Effect, SchedulingCycle, SchedulingEvent};
use orch_scheduler::{Outcome, Scheduler};
use orch_types::client::{
    DeleteOutcome, DeleteParams, Patch, PatchParams, PostParams, Preconditions, SharedClient,
};
use orch_types::clock::{Clock, ManualClock};
use orch_types::events::reason;
use orch_types::metrics::{milli_value, ContainerMetrics, PodMetrics};
use orch_types::resources::ResourceList;
use orch_types::{ApiResource, DynamicObject};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
/// At most this many controller syncs per round of an instant (a controller that requeues
/// itself at once cannot hold the clock).
const MAX_SYNCS_PER_ROUND: usize = 1_000_000;

/// Upstream kubelet renews its node Lease every 10 s (a quarter of its 40 s duration).
const LEASE_RENEW: SignedDuration = SignedDuration::from_secs(10);
/// The simulated kubelets' poll interval: a pod still starting or terminating with no timer of
/// its own is looked at again this much later.
const KUBELET_POLL: Duration = Duration::from_secs(1);
/// How often metrics are scraped while a HorizontalPodAutoscaler exists: metrics-server's
/// default `--metric-resolution`, 15 s.
pub const METRICS_RESOLUTION: SignedDuration = SignedDuration::from_secs(15);
/// `SuccessfulRescale`, the HorizontalPodAutoscaler controller's event for a rescale
/// (upstream `pkg/controller/podautoscaler/horizontal.go`).
const SUCCESSFUL_RESCALE: &str = "SuccessfulRescale";
/// `spec.leaseDurationSeconds` of node Leases.
const LEASE_DURATION_SECONDS: i32 = 40;

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
/// The Pod after a status write that succeeded: metadata and status from the server's answer,
/// the spec from `old` (the cached pod). A status write never changes the spec, and it was
/// pinned to `old`'s resourceVersion, so the stored spec is `old`'s: it is reused instead of
/// being converted again.
fn pod_after_status_write(o: &DynamicObject, old: &Pod) -> Option<Pod> {
    if o.data.keys().any(|k| k != "spec" && k != "status") {
        return Pod::from_dynamic(o).ok();
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

struct NodeState {
    up: bool,
    zone: Option<String>,
    rt: SimRuntime,
    /// The node's address (from its index) when its status names none.
    ip: String,
    /// The node's allocatable, as the kubelet admits against it.
    allocatable: ResourceList,
    /// What the node's running (admitted, not finished) workers request, and how many there
    /// are: kept as workers start and stop (see `Simulation::account`), so admitting a pod
    /// does not sum the node's pods again.
    used: ResourceList,
    running: usize,
}

struct WorkerState {
    /// The kubelet's pod sync step, as the live kubelet runs it.
    sync: PodSync,
    /// What the pod requests (summed once, for the admission of the next pods of its node).
    requests: ResourceList,
    node: String,
    due: Option<Timestamp>,
    /// Whether `requests` are in the node's `used` (the worker runs).
    counted: bool,
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
    scenario: Scenario,
    timeline: BTreeMap<(Timestamp, usize), Item>,
    /// The controllers of the live manager, on the steppable driver.
    stepper: Stepper,
    /// The caches the controllers read (the engine reads the same).
    pods: Store<Pod>,
    nodes: Store<Node>,
    pod_changes: Subscription<Pod>,
    node_changes: Subscription<Node>,
    rs_changes: Subscription<ReplicaSet>,
    deploy_changes: Subscription<Deployment>,
    /// Claims, volumes and classes for the scheduler's VolumeBinding (the binder's caches).
    claim_changes: Subscription<PersistentVolumeClaim>,
    volume_changes: Subscription<PersistentVolume>,
    class_changes: Subscription<StorageClass>,
    node_state: BTreeMap<String, NodeState>,
    /// Pod workers by pod key. Hashed, not ordered: nothing iterates it (`workers_on` gives
    /// each node's in key order), and a lookup among 150,000 keys costs one comparison instead
    /// of seventeen. Boxed: the table stays small.
    workers: HashMap<String, Box<WorkerState>>,
    /// Worker keys by node (what each kubelet has admitted).
    workers_on: BTreeMap<String, BTreeSet<String>>,
    /// Storage revision up to which history was compacted by the engine.
    compacted: u64,
    /// Storage revision the watch cache was last let catch up to.
    cache_synced: u64,
    wakeups: BTreeSet<(Timestamp, String)>,
    next_renew: Timestamp,
    /// The scheduler's decision step (queue with back-off, snapshot, plugins), as the live
    /// scheduler runs it; the engine executes its effects.
    cycle: SchedulingCycle,
    unschedulable: BTreeMap<String, String>,
    /// Hashed: looked up on every pod change, never iterated.
    times: HashMap<String, PodTimes>,
    sched_latency: Vec<f64>,
    startup_latency: Vec<f64>,
    evictions: Vec<Eviction>,
    samples: Vec<UtilizationSample>,
    next_sample: Timestamp,
    sample_every: SignedDuration,
    decisions: std::collections::VecDeque<DecisionRecord>,
    decision_limit: usize,
    /// The autoscalers (the HorizontalPodAutoscaler controller's cache): metrics are scraped
    /// only while there is one.
    hpas: Store<HorizontalPodAutoscaler>,
    /// Load steps in force: total CPU in nano-cores by workload (group, kind, namespace, name).
    loads: BTreeMap<(String, String, String, String), u64>,
    next_scrape: Timestamp,
    /// A scrape (or a rescale) happened at this instant: sample the autoscalers once it
    /// settles.
    hpa_sample_due: bool,
    /// The reasons of the `SuccessfulRescale` events since the last sample, by autoscaler key.
    rescales: BTreeMap<String, String>,
    hpa_samples: Vec<HpaSample>,
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
            .field("controllers", &self.stepper.names())
            .finish()
    }
}

/// Options of a simulation beyond the scenario.
#[derive(Clone)]
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
    /// Controllers to run besides the built-in ones, stepped after them in this order: the
    /// same declarations the live driver runs (a controller of a custom kind, say), on the
    /// virtual clock. Their writes go to the log and their events to the API as the
    /// built-in controllers' do.
    pub controllers: Vec<Arc<dyn orch_runtime::Controller>>,
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("seed", &self.seed)
            .field("keep_log", &self.keep_log)
            .field("events", &self.events)
            .field("decision_limit", &self.decision_limit)
            .field("explain", &self.explain)
            .field(
                "controllers",
                &self
                    .controllers
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            keep_log: true,
            events: true,
            decision_limit: 10_000,
            explain: true,
            controllers: Vec::new(),
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
        // Events are kept: expiry runs on wall time, the simulation on its own clock.
        let config = ApiServerConfig {
            event_ttl: None,
            ..ApiServerConfig::memory().with_clock(Arc::new(clock.clone()))
        };
        let api = ApiServer::new(config).map_err(|e| SimError::ApiServer(e.to_string()))?;
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
        let mut declared =
            controllers(&sim_manager_config()).map_err(|e| SimError::ApiServer(e.to_string()))?;
        declared.extend(opts.controllers.iter().cloned());
        let mut stepper = Stepper::new(
            client.clone(),
            Arc::new(clock.clone()),
            declared,
            StepConfig {
                names: Some(Arc::new(SeededNames::new(seed ^ 0x6f72_6368_7369_6d00))),
                write_events: opts.events,
            },
        );
        let (pods, nodes, hpas) = (
            stepper.caches().get::<Pod>(),
            stepper.caches().get::<Node>(),
            stepper.caches().get::<HorizontalPodAutoscaler>(),
        );
        let pod_changes = stepper.subscribe::<Pod>();
        let node_changes = stepper.subscribe::<Node>();
        let rs_changes = stepper.subscribe::<ReplicaSet>();
        let deploy_changes = stepper.subscribe::<Deployment>();
        let claim_changes = stepper.subscribe::<PersistentVolumeClaim>();
        let volume_changes = stepper.subscribe::<PersistentVolume>();
        let class_changes = stepper.subscribe::<StorageClass>();
        let cycle = SchedulingCycle::new(
            Scheduler::default().with_seed(seed),
            Arc::new(clock.clone()),
        );
        let mut sim = Self {
            api,
            client,
            clock,
            start,
            seed,
            scenario,
            timeline,
            stepper,
            pods,
            nodes,
            pod_changes,
            node_changes,
            rs_changes,
            deploy_changes,
            claim_changes,
            volume_changes,
            class_changes,
            node_state: BTreeMap::new(),
            workers: HashMap::new(),
            workers_on: BTreeMap::new(),
            compacted: 0,
            cache_synced: 0,
            wakeups: BTreeSet::new(),
            next_renew: start + LEASE_RENEW,
            cycle,
            unschedulable: BTreeMap::new(),
            times: HashMap::new(),
            sched_latency: Vec::new(),
            startup_latency: Vec::new(),
            evictions: Vec::new(),
            samples: Vec::new(),
            next_sample: start,
            sample_every,
            decisions: Default::default(),
            decision_limit: opts.decision_limit,
            hpas,
            loads: BTreeMap::new(),
            next_scrape: start,
            hpa_sample_due: false,
            rescales: BTreeMap::new(),
            hpa_samples: Vec::new(),
            log: Vec::new(),
            keep_log: opts.keep_log,
            hash: Fnv64::default(),
            event_count: 0,
            events: opts.events,
            event_seq: 0,
            wall: Duration::ZERO,
        };
        sim.cycle.scheduler_mut().set_explain(opts.explain);
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
                        zone: zone.clone(),
                        rt: SimRuntime::new(index),
                        ip: format!("10.0.{}.{}", (index / 250) % 250, index % 250 + 1),
                        allocatable: ResourceList::new(),
                        used: ResourceList::new(),
                        running: 0,
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
                let lease = node_lease(&name, self.clock.now());
                let o = self
                    .client
                    .create(
                        &ApiResource::of::<Lease>(),
                        Some(LEASE_NAMESPACE),
                        &lease,
                        &PostParams::default(),
                    )
                    .await
                    .map_err(|source| SimError::Apply {
                        what: format!("lease {name}"),
                        source,
                    })?;
                self.observe(&o);
                self.housekeep().await;
            }
        }
        Ok(())
    }

    /// The kubelets that are up renew their node Leases (the node lifecycle controller reads
    /// them), as upstream's every 10 s.
    async fn renew_leases(&mut self) -> bool {
        let now = self.clock.now();
        if now < self.next_renew {
            return false;
        }
        self.next_renew = now + LEASE_RENEW;
        let up: Vec<String> = self
            .node_state
            .iter()
            .filter(|(_, s)| s.up)
            .map(|(n, _)| n.clone())
            .collect();
        for n in up {
            self.renew_lease(&n).await;
        }
        false
    }

    async fn renew_lease(&mut self, node: &str) {
        self.housekeep().await;
        let now = self.clock.now();
        let patch = Patch::Merge(json!({"spec": {"renewTime": MicroTime(now)}}));
        match self
            .client
            .patch(
                &ApiResource::of::<Lease>(),
                Some(LEASE_NAMESPACE),
                node,
                None,
                &patch,
                &PatchParams::default(),
            )
            .await
        {
            Ok(o) => self.observe(&o),
            Err(e) => self.record(format!("ERROR lease {node}: {e}")),
        }
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
        self.record(format!(
            "KUBELET {} node {name}",
            if up { "UP" } else { "DOWN" }
        ));
        if up {
            // The kubelet renews its Lease, posts Ready again and resumes its pods.
            self.renew_lease(name).await;
            if let Some(n) = self.nodes.get(name) {
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
                .workers_on
                .get(name)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            for k in keys {
                self.wake(&k, now);
            }
        }
    }

    // ---- caches --------------------------------------------------------------------------

    /// Takes an object the server returned into the caches (and so to the controllers).
    fn observe(&mut self, o: &DynamicObject) {
        self.stepper.observe(o);
        self.drain();
    }

    /// Takes the last state of a deleted object into the caches.
    fn forget(&mut self, o: &DynamicObject) {
        self.stepper.forget(o);
        self.drain();
    }

    /// Reacts to what changed in the caches since the last call: the log, the scheduler's
    /// snapshot and queue, the pod workers, the latencies; and the controllers' events.
    fn drain(&mut self) {
        for c in self.node_changes.drain() {
            self.node_changed(c);
        }
        for c in self.deploy_changes.drain() {
            let line = match &c {
                Change::Deleted(d) => Some(format!("DEPLOY {} deleted", key_of(&d.metadata))),
                Change::Added(d) => Some(format!(
                    "DEPLOY {} {}",
                    key_of(&d.metadata),
                    deploy_summary(d)
                )),
                Change::Updated(old, d) => {
                    let s = deploy_summary(d);
                    (deploy_summary(old) != s)
                        .then(|| format!("DEPLOY {} {s}", key_of(&d.metadata)))
                }
                Change::Resync(_) => None,
            };
            if let Some(l) = line {
                self.record(l);
            }
        }
        for c in self.rs_changes.drain() {
            let line = match &c {
                Change::Deleted(r) => Some(format!("RS {} deleted", key_of(&r.metadata))),
                Change::Added(r) => Some(format!("RS {} {}", key_of(&r.metadata), rs_summary(r))),
                Change::Updated(old, r) => {
                    let s = rs_summary(r);
                    (rs_summary(old) != s).then(|| format!("RS {} {s}", key_of(&r.metadata)))
                }
                Change::Resync(_) => None,
            };
            if let Some(l) = line {
                self.record(l);
            }
        }
        // Storage before pods: a pod's attempt sees the claims its volumes name.
        for c in self.class_changes.drain() {
            match c {
                Change::Deleted(o) => self.cycle.storage_class_deleted(&o),
                c => self.cycle.storage_class_updated(c.object().clone()),
            }
        }
        for c in self.volume_changes.drain() {
            match c {
                Change::Deleted(o) => self.cycle.volume_deleted(&o),
                c => self.cycle.volume_updated(c.object().clone()),
            }
        }
        for c in self.claim_changes.drain() {
            match c {
                Change::Deleted(o) => self.cycle.claim_deleted(&o),
                c => self.cycle.claim_updated(c.object().clone()),
            }
        }
        while let Some(c) = self.pod_changes.pop() {
            self.pod_changed(c);
        }
        for e in self.stepper.take_events() {
            self.controller_event(e);
        }
    }

    fn controller_event(&mut self, e: RecordedEvent) {
        let key = key_from(e.object.namespace.as_deref(), &e.object.name);
        self.record(format!(
            "EVENT {} {}/{key} {}: {}",
            e.type_.as_str(),
            e.object.kind,
            e.reason,
            e.message
        ));
        if e.reason == SUCCESSFUL_RESCALE && e.object.kind == "HorizontalPodAutoscaler" {
            // `New size: 4; reason: cpu resource utilization (percentage of request) above
            // target`
            let why = e
                .message
                .split_once("; reason: ")
                .map_or(e.message.as_str(), |(_, r)| r);
            self.rescales.insert(key.clone(), why.to_string());
            self.hpa_sample_due = true;
        }
        if e.reason == reason::TAINT_MANAGER_EVICTION {
            let node = self
                .pods
                .get(&key)
                .and_then(|p| p.spec.as_ref()?.node_name.clone())
                .unwrap_or_default();
            let time = self.now();
            self.evictions.push(Eviction {
                time,
                pod: key,
                node,
                reason: "TaintManagerEviction".into(),
            });
        }
    }

    fn node_changed(&mut self, c: Change<Node>) {
        match c {
            Change::Deleted(n) => {
                let name = n.metadata.name.clone().unwrap_or_default();
                self.record(format!("NODE {name} deleted"));
                self.cycle.node_deleted(&n);
            }
            c => {
                let (old, n) = match c {
                    Change::Updated(old, n) => (Some(old), n),
                    Change::Added(n) | Change::Resync(n) | Change::Deleted(n) => (None, n),
                };
                let name = n.metadata.name.clone().unwrap_or_default();
                let summary = node_summary(&n);
                let added = old.is_none();
                if old.map(|o| node_summary(&o)).as_deref() != Some(summary.as_str()) {
                    self.record(format!("NODE {name} {summary}"));
                }
                if let Some(st) = self.node_state.get_mut(&name) {
                    st.allocatable = ResourceList::from_k8s_opt(
                        n.status.as_ref().and_then(|s| s.allocatable.as_ref()),
                    );
                }
                if added {
                    self.cycle.node_added(n);
                } else {
                    self.cycle.node_updated(n);
                }
            }
        }
    }

    fn pod_changed(&mut self, c: Change<Pod>) {
        let (old, p) = match c {
            Change::Deleted(p) => return self.pod_deleted(&p),
            Change::Added(p) | Change::Resync(p) => (None, p),
            Change::Updated(old, p) => (Some(old), p),
        };
        let k = key_of(&p.metadata);
        let now = self.clock.now();
        let summary = PodSummary::of(&p);
        if old.as_deref().map(PodSummary::of) != Some(summary) {
            let line = format!("POD {k} {summary}");
            self.record(line);
        }
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or_default();
        let t = self.times.entry(k.clone()).or_default();
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
        match old {
            None => self.cycle.pod_added(p.clone()),
            Some(_) => self.cycle.pod_updated(p.clone()),
        }
        if let Some(n) = node {
            match self.workers.get_mut(&k) {
                Some(w) => {
                    w.sync.worker_mut().update_pod(p.clone());
                    self.account(&k);
                    self.wake(&k, now);
                }
                None if !terminal => {
                    let requests = orch_kubelet::node::usage(&[p.as_ref()]);
                    let worker = self.admit(&n, p, now);
                    self.workers.insert(
                        k.clone(),
                        Box::new(WorkerState {
                            sync: PodSync::new(worker, now, KUBELET_POLL),
                            requests,
                            node: n.clone(),
                            due: None,
                            counted: false,
                        }),
                    );
                    self.workers_on.entry(n).or_default().insert(k.clone());
                    self.account(&k);
                    self.wake(&k, now);
                }
                None => {}
            }
        }
    }

    /// The kubelet of `node` admits pod `p` as the live kubelet does
    /// (`orch_kubelet::pod_sync::admit`): against what the pods it already runs request (kept
    /// in the node's state by [`account`](Self::account)) and the node's allocatable, with the
    /// environment from the caches.
    fn admit(&self, node: &str, p: Arc<Pod>, now: Timestamp) -> PodWorker {
        let empty = ResourceList::new();
        let state = self.node_state.get(node);
        let allocatable = state.map_or(&empty, |s| &s.allocatable);
        let used = state.map_or(&empty, |s| &s.used);
        let running = state.map_or(0, |s| s.running);
        let host_ip = self.host_ip(node);
        let cfg = WorkerConfig {
            node_name: node.to_string(),
            host_ip: host_ip.clone(),
            allow_privileged: false,
            dns: Default::default(),
        };
        let env = pod_sync::env_context(&p, self.env_objects(&p), allocatable, &host_ip);
        pod_sync::admit_usage(cfg, p, running, used, allocatable, env, now)
    }

    /// Keeps the node's admitted usage in step with worker `key` after anything that may
    /// have started or stopped it: a worker counts while it is not finished.
    fn account(&mut self, key: &str) {
        let Some(w) = self.workers.get_mut(key) else {
            return;
        };
        let runs = !w.sync.worker().is_finished();
        if runs == w.counted {
            return;
        }
        let Some(st) = self.node_state.get_mut(&w.node) else {
            return;
        };
        w.counted = runs;
        if runs {
            st.used.add(&w.requests);
            st.running += 1;
        } else {
            st.used.sub(&w.requests);
            st.running -= 1;
        }
    }

    /// The node's address: its `InternalIP`, else one made from its index.
    fn host_ip(&self, node: &str) -> String {
        let n = self.nodes.get(node);
        let internal = n.as_ref().and_then(|n| {
            n.status
                .as_ref()?
                .addresses
                .as_ref()?
                .iter()
                .find(|a| a.type_ == "InternalIP")
                .map(|a| a.address.clone())
        });
        internal
            .or_else(|| self.node_state.get(node).map(|s| s.ip.clone()))
            .unwrap_or_default()
    }

    /// What a pod's environment reads, from the caches.
    fn env_objects(&self, p: &Pod) -> pod_sync::EnvObjects {
        let refs = pod_sync::env_refs(p);
        let ns = p.metadata.namespace.as_deref().unwrap_or("default");
        let caches = self.stepper.caches();
        let typed = |r: ApiResource, name: &str| -> Option<DynamicObject> {
            caches
                .meta(&r)?
                .get_meta(Some(ns), name)
                .map(|o| o.as_ref().clone())
        };
        pod_sync::EnvObjects {
            config_maps: refs
                .config_maps
                .iter()
                .filter_map(|n| typed(ApiResource::of::<ConfigMap>(), n)?.to_typed().ok())
                .collect(),
            secrets: refs
                .all_secrets()
                .into_iter()
                .filter_map(|n| typed(ApiResource::of::<Secret>(), n)?.to_typed().ok())
                .collect(),
            services: caches
                .get::<Service>()
                .list_namespace(ns)
                .iter()
                .map(|s| s.as_ref().clone())
                .collect(),
            kubernetes_service: caches
                .get::<Service>()
                .get("default/kubernetes")
                .map(|s| s.as_ref().clone()),
            claims: orch_kubelet::volume::claim_names(p)
                .iter()
                .filter_map(|n| caches.get::<PersistentVolumeClaim>().get_in(Some(ns), n))
                .map(|c| c.as_ref().clone())
                .collect(),
            volumes: orch_kubelet::volume::claim_names(p)
                .iter()
                .filter_map(|n| caches.get::<PersistentVolumeClaim>().get_in(Some(ns), n))
                .filter_map(|c| {
                    caches
                        .get::<PersistentVolume>()
                        .get(orch_runtime::volume::claim_volume(&c))
                })
                .map(|v| v.as_ref().clone())
                .collect(),
        }
    }

    fn pod_deleted(&mut self, p: &Pod) {
        let k = key_of(&p.metadata);
        self.record(format!("POD {k} deleted"));
        self.cycle.pod_deleted(p);
        if let Some(w) = self.workers.remove(&k) {
            if let Some(on) = self.workers_on.get_mut(&w.node) {
                on.remove(&k);
            }
            if let Some(st) = self.node_state.get_mut(&w.node).filter(|_| w.counted) {
                st.used.sub(&w.requests);
                st.running -= 1;
            }
        }
        self.unschedulable.remove(&k);
        self.times.remove(&k);
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
            let r = resource_of(&self.client, &obj.types.api_version, &obj.types.kind)
                .await
                .ok_or_else(|| {
                    SimError::Manifest(format!(
                        "no matches for kind \"{}\" in version \"{}\"",
                        obj.types.kind, obj.types.api_version
                    ))
                })?;
            let ns = r
                .namespaced
                .then(|| obj.namespace().unwrap_or("default").to_string());
            let what = format!("{} {}", obj.types.kind, key_from(ns.as_deref(), obj.name()));
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
                key_from(o.namespace(), o.name())
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

    /// Runs the controllers until none has a key ready now.
    async fn run_controllers(&mut self) -> bool {
        let mut did = false;
        for _ in 0..MAX_SYNCS_PER_ROUND {
            self.housekeep().await;
            let Some(s) = self.stepper.step().await else {
                return did;
            };
            did |= s.acted;
            if let Some(e) = s.error {
                self.record(format!("ERROR {} {}: {e}", s.controller, s.key));
            }
            self.drain();
        }
        true
    }

    /// Runs the scheduler's decision step until its queue has nothing active, executing each
    /// attempt's effects as the live scheduler's driver does (bind through the bind plugins'
    /// Binding, preemption victims, the unschedulable status, events).
    async fn run_scheduler(&mut self) -> bool {
        let mut did = false;
        while let Some(a) = self.cycle.step() {
            self.housekeep().await;
            let k = a.key.clone();
            let t = self.now();
            match &a.decision.outcome {
                Outcome::Scheduled { node } => {
                    let ex = a.decision.explanation.as_ref();
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
                    if let Some(e) = &a.bind_error {
                        self.record(format!("ERROR bind {k}: {e}"));
                    }
                }
                Outcome::Unschedulable { message, .. } => {
                    if self.unschedulable.get(&k) != Some(message) {
                        self.record(format!("UNSCHEDULABLE {k}: {message}"));
                        self.push_decision(DecisionRecord {
                            time: t,
                            pod: k.clone(),
                            node: None,
                            feasible: a
                                .decision
                                .explanation
                                .as_ref()
                                .map_or(0, |e| e.nodes_feasible),
                            score: None,
                            message: message.clone(),
                        });
                        self.unschedulable.insert(k.clone(), message.clone());
                    }
                }
                Outcome::Gated { message } | Outcome::Error { message } => {
                    if self.unschedulable.get(&k) != Some(message) {
                        self.record(format!("NOT SCHEDULED {k}: {message}"));
                        self.unschedulable.insert(k.clone(), message.clone());
                    }
                }
            }
            for e in a.effects {
                did = true;
                self.execute(&k, e).await;
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

    /// Carries out one effect of a scheduling attempt for pod `k`.
    async fn execute(&mut self, k: &str, e: Effect) {
        match e {
            Effect::Bind {
                pod,
                node,
                binding,
                on_success,
            } => {
                let Ok(b) = DynamicObject::from_typed(binding.as_ref()) else {
                    self.cycle.bind_failed(k, "binding does not serialize");
                    return;
                };
                // `pods/binding` answers with the bound pod (as the in-process client's
                // `create_subresource` does): no second read.
                let res = self
                    .api
                    .bind_pod(pods_info(), Some(&pod.namespace), &pod.name, &b)
                    .await
                    .map_err(orch_types::client::ClientError::from);
                match res {
                    Ok(o) => {
                        self.record(format!("SCHEDULE {k} -> {node}"));
                        self.cycle.bind_succeeded(k);
                        self.observe(&o);
                        self.scheduler_event(&on_success).await;
                    }
                    Err(e) => {
                        self.record(format!("ERROR bind {k}: {e}"));
                        self.cycle.bind_failed(k, &e.to_string());
                    }
                }
            }
            Effect::Preempt { victims } => {
                for v in victims {
                    let (ns, name) = split_key(&v);
                    self.record(format!("PREEMPT {v} for {k}"));
                    match self
                        .client
                        .delete(&pods_res(), ns, name, &DeleteParams::default())
                        .await
                    {
                        Ok(DeleteOutcome::Deleted(o)) => self.forget(&o),
                        Ok(DeleteOutcome::Pending(o)) => self.observe(&o),
                        Err(e) => self.record(format!("ERROR preempt {v}: {e}")),
                    }
                }
            }
            Effect::MarkUnschedulable {
                pod,
                message,
                nominated_node,
                at,
            } => {
                let patch = Patch::Strategic(unschedulable_status(
                    &message,
                    nominated_node.as_deref(),
                    at,
                ));
                match self
                    .client
                    .patch(
                        &pods_res(),
                        Some(&pod.namespace),
                        &pod.name,
                        Some("status"),
                        &patch,
                        &PatchParams::default(),
                    )
                    .await
                {
                    Ok(o) => self.observe(&o),
                    Err(e) => self.record(format!("ERROR status {k}: {e}")),
                }
            }
            Effect::Event(ev) => self.scheduler_event(&ev).await,
        }
    }

    async fn scheduler_event(&mut self, ev: &SchedulingEvent) {
        if self.events {
            self.write_event(&ev.object, ev.type_.as_str(), ev.reason, &ev.message)
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
            let Some(st) = self.node_state.get(&ws.node) else {
                continue;
            };
            if !st.up {
                continue; // the kubelet is down: its pods are frozen until it comes back
            }
            let api_copy = self.pods.get(&k);
            // The kubelet's own step (handlers take no virtual time). Its events (Pulling,
            // Started, ...) are not reported by the simulated kubelets: they are dropped here.
            let out = ws.sync.step_inline(
                now,
                &st.rt,
                api_copy.as_ref().and_then(|p| p.status.as_ref()),
            );
            self.account(&k);
            if out.finished {
                continue;
            }
            // A missing ConfigMap/Secret may have appeared, a claim been bound: as the live
            // kubelet, refetch the pod's environment (from the caches).
            if out.refresh_env {
                let node = self.workers.get(&k).map(|w| w.node.clone());
                if let (Some(p), Some(node)) = (&api_copy, node) {
                    let empty = ResourceList::new();
                    let alloc = self
                        .node_state
                        .get(&node)
                        .map_or(&empty, |s| &s.allocatable)
                        .clone();
                    let env =
                        pod_sync::env_context(p, self.env_objects(p), &alloc, &self.host_ip(&node));
                    if let Some(ws) = self.workers.get_mut(&k) {
                        ws.sync.worker_mut().set_env_context(env);
                    }
                }
            }
            if let (Some(status), Some(p)) = (&out.status_to_write, &api_copy) {
                did = true;
                if !self.write_status(&k, p, status, out.status_digest).await {
                    continue;
                }
            }
            if out.delete {
                self.delete_pod(&k).await;
                did = true;
                continue;
            }
            if let Some(t) = out.wake {
                self.wake(&k, t.max(now + SignedDuration::from_millis(1)));
            }
        }
        did
    }

    /// Writes a pod's status as its kubelet does; `false` when the write failed (the pod is
    /// re-read and its worker looked at again a second later).
    async fn write_status(
        &mut self,
        k: &str,
        p: &Arc<Pod>,
        status: &k8s_openapi::api::core::v1::PodStatus,
        digest: u64,
    ) -> bool {
        let now = self.clock.now();
        // A status write reads only metadata and status (the server keeps the stored spec), so
        // the spec is neither copied nor converted, and the metadata is taken over as it is.
        let Ok(sv) = serde_json::to_value(status) else {
            return false;
        };
        let mut d = DynamicObject::new("v1", "Pod", "");
        d.metadata = p.metadata.clone();
        d.data.insert("status".into(), sv);
        let ns = p.metadata.namespace.clone();
        let name = d.name().to_string();
        // Straight to the server's update (what the in-process client calls) so the stored
        // object is read in place, not copied out.
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
                if let Some(w) = self.workers.get_mut(k) {
                    w.sync.status_written(digest);
                }
                let o = &out.written().object;
                if let Some(new) = pod_after_status_write(o, p) {
                    self.stepper.observe_typed(Arc::new(new));
                    self.drain();
                }
                true
            }
            Err(e) => {
                self.record(format!("ERROR status {k}: {e}"));
                if let Some(w) = self.workers.get_mut(k) {
                    w.sync.status_write_failed();
                }
                self.refresh(&pods_res(), ns.as_deref(), &name).await;
                self.wake(k, now + SignedDuration::from_secs(1));
                false
            }
        }
    }

    /// The kubelet removes a pod whose containers are gone (grace period 0, UID precondition).
    async fn delete_pod(&mut self, k: &str) {
        let Some(p) = self.pods.get(k) else {
            return;
        };
        let ns = p.metadata.namespace.clone();
        let name = p.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: p.metadata.uid.clone().map(|u| Preconditions {
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
                    .list()
                    .into_iter()
                    .filter(|p| {
                        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())
                    })
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| controller_key(&p.metadata, "DaemonSet").is_none())
                    .collect();
                for p in pods {
                    let ns = p.metadata.namespace.clone();
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let t = self.now();
                    self.evictions.push(Eviction {
                        time: t,
                        pod: key_from(ns.as_deref(), &name),
                        node: node.clone(),
                        reason: "Drain".into(),
                    });
                    self.record(format!(
                        "EVICT {} (drain {node})",
                        key_from(ns.as_deref(), &name)
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
            Disrupt::Load { target, cpu } => self.set_load(&target, &cpu),
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

    // ---- metrics ------------------------------------------------------------------------

    /// Starts, changes or (at `0`) ends the load on a workload.
    fn set_load(&mut self, target: &str, cpu: &str) {
        let (Ok((kind, ns, name)), Ok(nanos)) = (parse_target(target), load_nano_cores(cpu)) else {
            self.record(format!(
                "ERROR load {target}: invalid target or cpu {cpu:?}"
            ));
            return;
        };
        let Some(r) = resolve_workload(&kind) else {
            self.record(format!("ERROR load {target}: unknown kind"));
            return;
        };
        let key = (r.group.to_string(), r.kind.to_string(), ns, name);
        if nanos == 0 {
            self.loads.remove(&key);
        } else {
            self.loads.insert(key, nanos);
        }
        self.record(format!("LOAD {target} cpu={}", cpu_quantity(nanos)));
    }

    /// The worker of pod `p` if metrics-server would report it: Running, on a node whose
    /// kubelet is up.
    fn scraped(&self, p: &Pod) -> Option<(&WorkerState, &NodeState)> {
        if p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
            return None;
        }
        let w = self.workers.get(&key_of(&p.metadata))?;
        let st = self.node_state.get(&w.node).filter(|s| s.up)?;
        Some((w, st))
    }

    /// Each loaded pod's share of its workload's load, in nano-cores: the total spread evenly
    /// over the workload's scraped pods that are not being deleted (a terminating pod is out
    /// of its Service's endpoints and gets no traffic), the remainder a nano-core each to the
    /// first ones in key order. The pods are the workload's scale selector's, as the
    /// autoscaler counts them.
    fn load_shares(&self) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        if self.loads.is_empty() {
            return out;
        }
        let workloads = Workloads::from_caches(self.stepper.caches());
        for ((group, kind, ns, name), total) in &self.loads {
            let Ok(Some(scale)) = workloads.scale(group, kind, ns, name) else {
                continue;
            };
            let Ok(selector) = scale.selector else {
                continue;
            };
            let pods: Vec<String> = self
                .pods
                .list_namespace(ns)
                .into_iter()
                .filter(|p| selector.matches_opt(p.metadata.labels.as_ref()))
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| self.scraped(p).is_some())
                .map(|p| key_of(&p.metadata))
                .collect();
            let n = pods.len() as u64;
            if n == 0 {
                continue;
            }
            for (i, k) in pods.into_iter().enumerate() {
                out.insert(k, total / n + u64::from((i as u64) < total % n));
            }
        }
        out
    }

    /// metrics-server's scrape, when due and some HorizontalPodAutoscaler exists: a PodMetrics
    /// for every scraped pod with a measured container replaces the controllers' cache.
    fn scrape_metrics(&mut self) {
        let now = self.clock.now();
        if now < self.next_scrape || self.hpas.is_empty() {
            return;
        }
        self.next_scrape = now + METRICS_RESOLUTION;
        self.hpa_sample_due = true;
        let shares = self.load_shares();
        let mut out = Vec::new();
        for p in self.pods.list() {
            let Some((w, st)) = self.scraped(&p) else {
                continue;
            };
            let mut samples = container_samples(w.sync.worker(), &st.rt, now);
            if samples.is_empty() {
                continue;
            }
            if let Some(share) = shares.get(&key_of(&p.metadata)) {
                spread_cpu(&p, *share, &mut samples);
            }
            out.push(PodMetrics {
                metadata: ObjectMeta {
                    name: p.metadata.name.clone(),
                    namespace: p.metadata.namespace.clone(),
                    labels: p.metadata.labels.clone(),
                    creation_timestamp: Some(Time(now)),
                    ..Default::default()
                },
                timestamp: Time(now),
                window: WINDOW.into(),
                containers: samples
                    .iter()
                    .map(|c| ContainerMetrics {
                        name: c.name.clone(),
                        usage: usage_of(c.usage.cpu_nano_cores, c.usage.memory_working_set_bytes),
                    })
                    .collect(),
            });
        }
        self.stepper.replace_typed(out);
    }

    /// Every autoscaler's status into the report, when a scrape or a rescale happened since
    /// the last sample.
    fn sample_hpas(&mut self) {
        if !std::mem::take(&mut self.hpa_sample_due) {
            return;
        }
        let time = self.now();
        for h in self.hpas.list() {
            let key = key_of(&h.metadata);
            let spec = h.spec.as_ref();
            let status = h.status.as_ref();
            let cpu_utilization = status
                .and_then(|s| s.current_metrics.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|m| m.resource.as_ref())
                .find(|r| r.name == "cpu")
                .and_then(|r| r.current.average_utilization);
            self.hpa_samples.push(HpaSample {
                time,
                namespace: h.metadata.namespace.clone().unwrap_or_default(),
                name: h.metadata.name.clone().unwrap_or_default(),
                min_replicas: spec.and_then(|s| s.min_replicas).unwrap_or(1),
                max_replicas: spec.map_or(0, |s| s.max_replicas),
                current_replicas: status.and_then(|s| s.current_replicas).unwrap_or(0),
                desired_replicas: status.map_or(0, |s| s.desired_replicas),
                cpu_utilization,
                rescale: self.rescales.remove(&key),
            });
        }
        self.rescales.clear();
    }

    fn sample(&mut self) {
        let (mut cpu_req, mut cpu_alloc, mut mem_req, mut mem_alloc) = (0i64, 0i64, 0i64, 0i64);
        let mut nodes_ready = 0;
        for n in self.cycle.snapshot().nodes() {
            let ready = self.nodes.get(&n.name).is_some_and(|o| is_ready(&o));
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
        for p in self.pods.list() {
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

    /// Runs every component until nothing changes at the current instant, then samples the
    /// autoscalers if metrics were scraped (or one rescaled) at this instant.
    async fn settle(&mut self) {
        for _ in 0..MAX_ROUNDS_PER_INSTANT {
            self.housekeep().await;
            let mut did = self.run_timeline().await;
            did |= self.renew_leases().await;
            self.scrape_metrics();
            did |= self.run_controllers().await;
            did |= self.run_scheduler().await;
            did |= self.run_workers().await;
            if !did && !self.stepper.has_ready() && !self.cycle.has_active() {
                break;
            }
        }
        self.sample_hpas();
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
        if let Some(x) = self.stepper.next_due() {
            consider(x);
        }
        if let Some(x) = self.cycle.next_due() {
            consider(x);
        }
        if self.node_state.values().any(|s| s.up) {
            consider(self.next_renew);
        }
        if !self.hpas.is_empty() {
            consider(self.next_scrape);
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
            let stable = !self.stepper.has_ready()
                && self.pods.list().iter().all(|p| {
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
        for p in self.pods.list() {
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
            .cycle
            .snapshot()
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
                    self.pods.get(k).is_some_and(|p| {
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
            hpa: self.hpa_samples.clone(),
            event_count: self.event_count,
            event_log_hash: self.hash.hex(),
        }
    }
}

/// Sets the CPU of a pod's measured containers to `share` nano-cores in all, split in
/// proportion to their CPU requests (evenly when none requests any); the last container gets
/// what rounding leaves.
pub(super) fn spread_cpu(p: &Pod, share: u64, samples: &mut [ContainerSample]) {
    let request = |name: &str| -> u128 {
        p.spec
            .iter()
            .flat_map(|s| &s.containers)
            .find(|c| c.name == name)
            .and_then(|c| c.resources.as_ref()?.requests.as_ref()?.get("cpu"))
            .and_then(milli_value)
            .map_or(0, |m| u128::try_from(m).unwrap_or(0))
    };
    let weights: Vec<u128> = samples.iter().map(|c| request(&c.name)).collect();
    let sum: u128 = weights.iter().sum();
    let (weights, sum) = if sum == 0 {
        (vec![1; samples.len()], samples.len() as u128)
    } else {
        (weights, sum)
    };
    let mut left = share;
    let last = samples.len().saturating_sub(1);
    for (i, (c, w)) in samples.iter_mut().zip(weights).enumerate() {
        let part = if i == last {
            left
        } else {
            u64::try_from(u128::from(share) * w / sum)
                .unwrap_or(u64::MAX)
                .min(left)
        };
        c.usage.cpu_nano_cores = part;
        left -= part;
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

/// Files `key` under its controller (`ns/name`) or among the orphans.
/// The Lease a kubelet holds for its node, renewed at `now`.
fn node_lease(node: &str, now: Timestamp) -> DynamicObject {
    let lease = Lease {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some(LEASE_NAMESPACE.into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    };
    // A Lease with plain fields always converts.
    DynamicObject::from_typed(&lease).unwrap_or_default()
}

/// The controller manager's settings for the simulator: every controller, and a cluster CIDR
/// large enough for one /24 per node of the largest scenarios.
fn sim_manager_config() -> ManagerConfig {
    ManagerConfig {
        cluster_cidr: "10.0.0.0/8".into(),
        ..ManagerConfig::default()
    }
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

/// The resource of `apiVersion` and `kind`: a built-in one, or one the API server serves
/// for a CustomResourceDefinition (through discovery).
async fn resource_of(client: &SharedClient, api_version: &str, kind: &str) -> Option<ApiResource> {
    if let Some(i) = orch_types::registry::by_kind(api_version, kind) {
        return Some(i.api_resource());
    }
    let (group, _) = orch_types::registry::split_api_version(api_version);
    // The in-process client serves a custom kind at its storage version, which is the
    // one discovery lists.
    client
        .discover()
        .await
        .ok()?
        .into_iter()
        .find(|d| !group.is_empty() && d.resource.group == group && d.resource.kind == kind)
        .map(|d| d.resource)
}
