//! A history of operations on Kubernetes objects, its recorder over the HTTP API, the model of one
//! object for the linearizability checker, and the durability checks of a history that spans
//! crashes.
//!
//! Every write carries a value unique in the whole run (`c3-17`: client 3, its 17th write) in the
//! annotation [`VALUE_ANNOTATION`]; status writes put theirs in the message of the condition
//! [`STATUS_CONDITION`]. So any state read back names the write that produced it, and a state no
//! write produced (half-applied, or made up) is visible.

use super::linearizability::{self, Model};
use orch_types::client::{
    Client, ClientError, DeleteOutcome, DeleteParams, PostParams, Preconditions,
};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

/// The annotation holding the value of the write that produced an object's current metadata.
pub const VALUE_ANNOTATION: &str = "reliability.orch.dev/value";
/// The status condition type whose message is the value of the last status write.
pub const STATUS_CONDITION: &str = "ReliabilityProbe";

/// The value annotation of an object (empty when absent).
pub fn annotation(o: &DynamicObject) -> String {
    o.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(VALUE_ANNOTATION))
        .cloned()
        .unwrap_or_default()
}

/// An object as an operation saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    /// `metadata.resourceVersion`.
    pub rv: u64,
    /// `metadata.uid`.
    pub uid: String,
    /// The value annotation (empty when absent).
    pub value: String,
    /// The message of the status condition (empty when absent).
    pub status: String,
}

impl Version {
    /// Reads the fields the history tracks from an object.
    pub fn of(o: &DynamicObject) -> Self {
        let status = o
            .data
            .get("status")
            .and_then(|s| s["conditions"].as_array())
            .and_then(|cs| cs.iter().find(|c| c["type"] == STATUS_CONDITION))
            .and_then(|c| c["message"].as_str())
            .unwrap_or_default()
            .to_string();
        Self {
            rv: o
                .resource_version()
                .and_then(|r| r.parse().ok())
                .unwrap_or_default(),
            uid: o.metadata.uid.clone().unwrap_or_default(),
            value: annotation(o),
            status,
        }
    }
}

/// What an operation asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// GET.
    Get,
    /// POST a new object with this value.
    Create {
        /// The value written.
        value: String,
    },
    /// PUT with `metadata.resourceVersion` as precondition.
    Update {
        /// The precondition.
        expected_rv: u64,
        /// The value written.
        value: String,
    },
    /// PUT of the `status` subresource with `metadata.resourceVersion` as precondition.
    UpdateStatus {
        /// The precondition.
        expected_rv: u64,
        /// The status value written.
        status: String,
    },
    /// DELETE, with a resourceVersion precondition or none.
    Delete {
        /// The precondition.
        expected_rv: Option<u64>,
    },
}

impl Input {
    /// Does the operation write?
    pub fn is_write(&self) -> bool {
        !matches!(self, Self::Get)
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Success: the object returned (for a delete, its last state).
    Ok(Version),
    /// 404.
    NotFound,
    /// 409 Conflict (a resourceVersion precondition failed).
    Conflict,
    /// 409 AlreadyExists.
    AlreadyExists,
    /// No definite answer (the connection broke, a timeout, a 5xx): it may or may not have
    /// taken effect.
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The client (one sequential process) that issued it.
    pub client: usize,
    /// `resource/namespace/name`.
    pub key: String,
    /// What was asked.
    pub input: Input,
    /// Invocation, in nanoseconds since the history started.
    pub call: u64,
    /// Completion; `None` when the outcome is unknown (it may take effect any time later).
    pub ret: Option<u64>,
    /// The outcome.
    pub output: Output,
}

/// The history of a run, recorded by every client concurrently.
#[derive(Debug)]
pub struct History {
    start: Instant,
    ops: Mutex<Vec<Operation>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history starting now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the start.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Records an operation invoked at `call` that just completed with `output`.
    pub fn record(&self, client: usize, key: &str, input: Input, call: u64, output: Output) {
        let ret = (output != Output::Unknown).then(|| self.now());
        self.ops.lock().expect("history lock").push(Operation {
            client,
            key: key.to_string(),
            input,
            call,
            ret,
            output,
        });
    }

    /// Every operation so far, in completion order.
    pub fn operations(&self) -> Vec<Operation> {
        self.ops.lock().expect("history lock").clone()
    }
}

/// The key of an object in a history.
pub fn key_of(r: &ApiResource, ns: &str, name: &str) -> String {
    format!("{}/{ns}/{name}", r.plural)
}

/// Maps a client error to an outcome: the definite answers of the API, else unknown.
fn outcome(e: &ClientError) -> Output {
    match e.api() {
        Some(a) if a.code == 404 => Output::NotFound,
        Some(a) if a.code == 409 && a.reason == "AlreadyExists" => Output::AlreadyExists,
        Some(a) if a.code == 409 => Output::Conflict,
        _ => Output::Unknown,
    }
}

/// A client of the recorded operations on one kind of object, in one namespace.
pub struct Recorder<'a> {
    /// The history written to.
    pub history: &'a History,
    /// The API client.
    pub client: &'a dyn Client,
    /// The resource.
    pub resource: ApiResource,
    /// The namespace.
    pub namespace: String,
    /// This client's number.
    pub id: usize,
    /// Writes issued so far (the suffix of unique values).
    pub seq: u64,
    /// API errors other than 404 and 409 (`CODE message`): a 5xx is an unknown outcome, a 4xx a
    /// request the test got wrong.
    pub odd: Vec<String>,
}

impl<'a> Recorder<'a> {
    /// A recorder for client `id`.
    pub fn new(
        history: &'a History,
        client: &'a dyn Client,
        resource: ApiResource,
        namespace: &str,
        id: usize,
    ) -> Self {
        Self {
            history,
            client,
            resource,
            namespace: namespace.to_string(),
            id,
            seq: 0,
            odd: Vec::new(),
        }
    }

    fn next_value(&mut self) -> String {
        self.seq += 1;
        format!("c{}-{}", self.id, self.seq)
    }

    /// `o` carrying a fresh value in its value annotation, and the value.
    fn with_next_value(&mut self, o: &DynamicObject) -> (DynamicObject, String) {
        let value = self.next_value();
        let mut o = o.clone();
        o.metadata
            .annotations
            .get_or_insert_default()
            .insert(VALUE_ANNOTATION.into(), value.clone());
        (o, value)
    }

    fn finish(
        &mut self,
        name: &str,
        input: Input,
        call: u64,
        r: Result<Version, ClientError>,
    ) -> Output {
        let out = match r {
            Ok(v) => Output::Ok(v),
            Err(e) => {
                let o = outcome(&e);
                if let (Output::Unknown, Some(a)) = (&o, e.api()) {
                    self.odd.push(format!("{} {a}", a.code));
                }
                o
            }
        };
        let key = key_of(&self.resource, &self.namespace, name);
        self.history.record(self.id, &key, input, call, out.clone());
        out
    }

    /// GET `name`.
    pub async fn get(&mut self, name: &str) -> Output {
        let call = self.history.now();
        let r = self
            .client
            .get(&self.resource, Some(&self.namespace), name)
            .await
            .map(|o| Version::of(&o));
        self.finish(name, Input::Get, call, r)
    }

    /// POST `body` (its name, spec and so on) with a fresh value.
    pub async fn create(&mut self, body: &DynamicObject) -> Output {
        let (o, value) = self.with_next_value(body);
        let call = self.history.now();
        let r = self
            .client
            .create(
                &self.resource,
                Some(&self.namespace),
                &o,
                &PostParams::default(),
            )
            .await
            .map(|o| Version::of(&o));
        self.finish(body.name(), Input::Create { value }, call, r)
    }

    /// PUT `current` (as read) with a fresh value, on its resourceVersion.
    pub async fn update(&mut self, current: &DynamicObject) -> Output {
        let expected_rv = Version::of(current).rv;
        let (o, value) = self.with_next_value(current);
        let call = self.history.now();
        let r = self
            .client
            .update(
                &self.resource,
                Some(&self.namespace),
                &o,
                &PostParams::default(),
            )
            .await
            .map(|o| Version::of(&o));
        self.finish(
            current.name(),
            Input::Update { expected_rv, value },
            call,
            r,
        )
    }

    /// PUT `current`'s status with a fresh status value, on its resourceVersion.
    pub async fn update_status(&mut self, current: &DynamicObject) -> Output {
        let status = self.next_value();
        let expected_rv = Version::of(current).rv;
        let mut o = current.clone();
        o.data.insert(
            "status".into(),
            json!({"conditions": [{
                "type": STATUS_CONDITION,
                "status": "True",
                "reason": "Written",
                "message": status,
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }]}),
        );
        let call = self.history.now();
        let r = self
            .client
            .update_status(
                &self.resource,
                Some(&self.namespace),
                &o,
                &PostParams::default(),
            )
            .await
            .map(|o| Version::of(&o));
        self.finish(
            current.name(),
            Input::UpdateStatus {
                expected_rv,
                status,
            },
            call,
            r,
        )
    }

    /// DELETE `name`, on `expected_rv` if given.
    pub async fn delete(&mut self, name: &str, expected_rv: Option<u64>) -> Output {
        let p = DeleteParams {
            preconditions: expected_rv.map(|rv| Preconditions {
                uid: None,
                resource_version: Some(rv.to_string()),
            }),
            ..Default::default()
        };
        let call = self.history.now();
        let r = self
            .client
            .delete(&self.resource, Some(&self.namespace), name, &p)
            .await
            .map(|o| match o {
                DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o) => Version::of(&o),
            });
        self.finish(name, Input::Delete { expected_rv }, call, r)
    }

    /// GET `name` as an object (for a following update), recorded as a read.
    pub async fn read(&mut self, name: &str) -> Option<DynamicObject> {
        let call = self.history.now();
        let r = self
            .client
            .get(&self.resource, Some(&self.namespace), name)
            .await;
        match r {
            Ok(o) => {
                self.finish(name, Input::Get, call, Ok(Version::of(&o)));
                Some(o)
            }
            Err(e) => {
                self.finish(name, Input::Get, call, Err(e));
                None
            }
        }
    }
}

/// The state of one object in [`ObjectModel`]: absent, or present with what the last writes
/// made it. A resourceVersion or UID is unknown (`None`) after a write whose answer was lost,
/// until an operation observes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ObjectState {
    /// The object, if it exists.
    pub object: Option<ObjectVersion>,
    /// The highest resourceVersion the key has had: every new one must be greater.
    pub floor: u64,
}

/// A present object of [`ObjectState`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectVersion {
    /// The value annotation.
    pub value: String,
    /// The status value.
    pub status: String,
    /// The resourceVersion, if known.
    pub rv: Option<u64>,
    /// The UID, if known.
    pub uid: Option<String>,
}

/// The sequential specification of one Kubernetes object: compare-and-swap on resourceVersion,
/// resourceVersions increasing, the UID fixed for an incarnation, status and metadata written
/// separately.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObjectModel;

/// `known` is compatible with the observed `seen`: equal, or unknown and above `floor`.
fn same_rv(known: Option<u64>, seen: u64, floor: u64) -> bool {
    match known {
        Some(k) => k == seen,
        None => seen > floor,
    }
}

fn same_uid(known: &Option<String>, seen: &str) -> bool {
    known.as_deref().is_none_or(|k| k == seen)
}

impl ObjectModel {
    /// The state after an operation whose outcome is unknown took effect: what it asked for if
    /// its precondition holds, else nothing changes (it failed). Not taking effect at all is
    /// the checker's business (the operation may be placed after everything).
    fn unknown(s: &ObjectState, input: &Input) -> ObjectState {
        let mut n = s.clone();
        match (input, &s.object) {
            (Input::Get, _) => {}
            (Input::Create { value }, None) => {
                n.object = Some(ObjectVersion {
                    value: value.clone(),
                    status: String::new(),
                    rv: None,
                    uid: None,
                });
            }
            (Input::Update { expected_rv, value }, Some(o)) if o.rv == Some(*expected_rv) => {
                n.object = Some(ObjectVersion {
                    value: value.clone(),
                    rv: None,
                    ..o.clone()
                });
            }
            (
                Input::UpdateStatus {
                    expected_rv,
                    status,
                },
                Some(o),
            ) if o.rv == Some(*expected_rv) => {
                n.object = Some(ObjectVersion {
                    status: status.clone(),
                    rv: None,
                    ..o.clone()
                });
            }
            (Input::Delete { expected_rv }, Some(o))
                if expected_rv.is_none() || o.rv == *expected_rv =>
            {
                n.object = None;
            }
            _ => {}
        }
        n
    }

    /// The state after a write that answered `v`, from the present object `o` with precondition
    /// `expected_rv`.
    fn written(
        s: &ObjectState,
        o: &ObjectVersion,
        expected_rv: u64,
        v: &Version,
        value: &str,
        status: &str,
    ) -> Option<ObjectState> {
        let ok = same_rv(o.rv, expected_rv, s.floor)
            && v.rv > expected_rv
            && v.rv > s.floor
            && same_uid(&o.uid, &v.uid)
            && v.value == value
            && v.status == status;
        ok.then(|| ObjectState {
            object: Some(ObjectVersion {
                value: value.to_string(),
                status: status.to_string(),
                rv: Some(v.rv),
                uid: Some(v.uid.clone()),
            }),
            floor: v.rv,
        })
    }
}

impl Model for ObjectModel {
    type State = ObjectState;
    type Input = Input;
    type Output = Output;

    fn init(&self) -> ObjectState {
        ObjectState::default()
    }

    fn step(&self, s: &ObjectState, input: &Input, output: &Output) -> Option<ObjectState> {
        let conflict = |expected: u64| match &s.object {
            Some(o) => (o.rv != Some(expected)).then(|| s.clone()),
            None => None,
        };
        match (input, output) {
            (_, Output::Unknown) => Some(Self::unknown(s, input)),
            (Input::Get, Output::Ok(v)) => {
                let o = s.object.as_ref()?;
                let ok = same_rv(o.rv, v.rv, s.floor)
                    && same_uid(&o.uid, &v.uid)
                    && o.value == v.value
                    && o.status == v.status;
                ok.then(|| ObjectState {
                    object: Some(ObjectVersion {
                        rv: Some(v.rv),
                        uid: Some(v.uid.clone()),
                        ..o.clone()
                    }),
                    floor: s.floor.max(v.rv),
                })
            }
            (Input::Create { value }, Output::Ok(v)) => {
                let ok = s.object.is_none() && v.rv > s.floor && v.value == *value;
                ok.then(|| ObjectState {
                    object: Some(ObjectVersion {
                        value: value.clone(),
                        status: v.status.clone(),
                        rv: Some(v.rv),
                        uid: Some(v.uid.clone()),
                    }),
                    floor: v.rv,
                })
            }
            (Input::Create { .. }, Output::AlreadyExists) => s.object.is_some().then(|| s.clone()),
            (Input::Update { expected_rv, value }, Output::Ok(v)) => {
                let o = s.object.as_ref()?;
                Self::written(s, o, *expected_rv, v, value, &o.status)
            }
            (
                Input::UpdateStatus {
                    expected_rv,
                    status,
                },
                Output::Ok(v),
            ) => {
                let o = s.object.as_ref()?;
                Self::written(s, o, *expected_rv, v, &o.value, status)
            }
            (Input::Update { expected_rv, .. }, Output::Conflict)
            | (Input::UpdateStatus { expected_rv, .. }, Output::Conflict) => conflict(*expected_rv),
            (Input::Delete { expected_rv }, Output::Ok(v)) => {
                let o = s.object.as_ref()?;
                let ok = expected_rv.is_none_or(|e| same_rv(o.rv, e, s.floor))
                    && same_uid(&o.uid, &v.uid)
                    && o.value == v.value
                    && v.rv >= o.rv.unwrap_or(0);
                ok.then(|| ObjectState {
                    object: None,
                    floor: s.floor.max(v.rv),
                })
            }
            (
                Input::Delete {
                    expected_rv: Some(e),
                },
                Output::Conflict,
            ) => conflict(*e),
            (_, Output::NotFound) => s.object.is_none().then(|| s.clone()),
            _ => None,
        }
    }
}

/// Checks a history of object operations for linearizability, one key at a time; reads whose
/// outcome is unknown are left out (they change nothing).
pub fn check_linearizable(
    ops: &[Operation],
    budget: std::time::Duration,
) -> linearizability::Report {
    let mut by_key: BTreeMap<&str, Vec<linearizability::Op<Input, Output>>> = BTreeMap::new();
    for o in ops {
        if o.input == Input::Get && o.output == Output::Unknown {
            continue;
        }
        by_key.entry(&o.key).or_default().push(linearizability::Op {
            client: o.client,
            call: o.call,
            ret: o.ret,
            input: o.input.clone(),
            output: o.output.clone(),
        });
    }
    let parts: Vec<(String, Vec<_>)> = by_key
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    linearizability::check_partitioned(&ObjectModel, parts, budget)
}

/// What [`check_durability`] found.
#[derive(Debug, Default, Clone)]
pub struct DurabilityReport {
    /// Operations checked.
    pub operations: usize,
    /// Writes acknowledged with success.
    pub acknowledged_writes: usize,
    /// Acknowledged writes whose effect is gone from the final state (must be none).
    pub lost: Vec<String>,
    /// Observed states no write produced (must be none).
    pub half_applied: Vec<String>,
    /// A client saw an object's resourceVersion go down (must be none).
    pub rv_regressions: Vec<String>,
    /// One resourceVersion with two UIDs, or two acknowledged writes with one resourceVersion
    /// (must be none).
    pub identity: Vec<String>,
}

impl DurabilityReport {
    /// Every violation, one per line.
    pub fn violations(&self) -> Vec<String> {
        let tag =
            |what: &str, v: &[String]| v.iter().map(|s| format!("{what}: {s}")).collect::<Vec<_>>();
        [
            tag("lost acknowledged write", &self.lost),
            tag("half-applied", &self.half_applied),
            tag("resourceVersion regression", &self.rv_regressions),
            tag("identity", &self.identity),
        ]
        .concat()
    }
}

/// The durability checks of a history spanning crashes, given the final state of every key
/// (read after the last restart, when no write was in flight):
///
/// - every acknowledged create or update of an incarnation is still there (same UID, a
///   resourceVersion at least its own) unless a delete of the key was issued after it, and
///   every acknowledged delete stays (its incarnation never comes back);
/// - every observed value and status is one a write issued on that key (nothing half-applied);
/// - each client sees an object's resourceVersion only increase;
/// - a resourceVersion names one object version: never two UIDs, never two acknowledged writes.
pub fn check_durability(
    ops: &[Operation],
    final_state: &BTreeMap<String, Option<Version>>,
) -> DurabilityReport {
    let mut r = DurabilityReport {
        operations: ops.len(),
        ..Default::default()
    };
    let mut issued: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for o in ops {
        let e = issued.entry(&o.key).or_default();
        e.insert("");
        match &o.input {
            Input::Create { value } | Input::Update { value, .. } => {
                e.insert(value);
            }
            Input::UpdateStatus { status, .. } => {
                e.insert(status);
            }
            _ => {}
        }
    }
    let observed = ops
        .iter()
        .filter_map(|o| match &o.output {
            Output::Ok(v) => Some((o.key.as_str(), v, format!("{o:?}"))),
            _ => None,
        })
        .chain(
            final_state
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k.as_str(), v, "final read".into()))),
        );
    let mut uid_at: HashMap<u64, (&str, &str)> = HashMap::new();
    for (key, v, what) in observed {
        let values = issued.get(key);
        let known = |s: &str| values.is_some_and(|vs| vs.contains(s));
        if !known(&v.value) || !known(&v.status) {
            r.half_applied
                .push(format!("{key} shows {v:?}, which no write issued ({what})"));
        }
        match uid_at.insert(v.rv, (key, &v.uid)) {
            Some((k, u)) if (k, u) != (key, v.uid.as_str()) => r.identity.push(format!(
                "resourceVersion {} is {k} uid {u} and {key} uid {}",
                v.rv, v.uid
            )),
            _ => {}
        }
    }
    let mut acked_rv: HashMap<u64, &Operation> = HashMap::new();
    let mut last_seen: HashMap<(usize, &str), u64> = HashMap::new();
    let mut by_client: Vec<&Operation> = ops.iter().collect();
    by_client.sort_by_key(|o| (o.client, o.call));
    for o in by_client {
        let Output::Ok(v) = &o.output else { continue };
        let last = last_seen.entry((o.client, &o.key)).or_default();
        if v.rv < *last {
            r.rv_regressions.push(format!(
                "client {} saw {} at {} after {}",
                o.client, o.key, v.rv, last
            ));
        }
        *last = (*last).max(v.rv);
        if !o.input.is_write() || matches!(o.input, Input::Delete { .. }) {
            continue;
        }
        r.acknowledged_writes += 1;
        if let Some(prev) = acked_rv.insert(v.rv, o) {
            r.identity.push(format!(
                "two acknowledged writes got resourceVersion {}: {prev:?} and {o:?}",
                v.rv
            ));
        }
    }
    for o in ops {
        let Output::Ok(v) = &o.output else { continue };
        if !o.input.is_write() {
            continue;
        }
        let now = final_state.get(&o.key).cloned().flatten();
        if matches!(o.input, Input::Delete { .. }) {
            r.acknowledged_writes += 1;
            if now.as_ref().is_some_and(|f| f.uid == v.uid) {
                r.lost.push(format!(
                    "{}: acknowledged delete of uid {} but it is back: {now:?}",
                    o.key, v.uid
                ));
            }
            continue;
        }
        let deleted_later = ops.iter().any(|d| {
            d.key == o.key
                && matches!(d.input, Input::Delete { .. })
                && d.call > o.call
                && matches!(d.output, Output::Ok(_) | Output::Unknown)
        });
        let kept = now.as_ref().is_some_and(|f| f.uid == v.uid && f.rv >= v.rv);
        if !kept && !deleted_later {
            r.lost.push(format!("{}: {o:?} but finally {now:?}", o.key));
        }
    }
    r
}
