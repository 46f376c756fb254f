//! API Priority and Fairness: our simpler version of upstream's filter and configuration
//! controller (`staging/src/k8s.io/apiserver/pkg/server/filters/priority-and-fairness.go`,
//! `staging/src/k8s.io/apiserver/pkg/util/flowcontrol/apf_controller.go`,
//! `apf_filter.go`, matching in `rule.go`).
//!
//! Each request is classified by the FlowSchemas in order of `matchingPrecedence` (then
//! name): the first whose rules match the request's user and attributes, and whose priority
//! level exists, wins; its distinguisher (`ByUser`: the user name, `ByNamespace`: the
//! namespace) names the request's flow. An `Exempt` level runs the request at once; a
//! `Limited` one runs it through its [`QueueSet`], whose seats are the level's nominal share
//! of the server's total (`--max-requests-inflight` + `--max-mutating-requests-inflight`):
//! `ceil(total × nominalConcurrencyShares / Σ nominalConcurrencyShares)`, as upstream's
//! nominal concurrency limit. Levels do not lend or borrow seats (`lendablePercent` and
//! `borrowingLimitPercent` are served, not used). A request refused, or still queued after
//! [`QUEUE_WAIT_LIMIT`], gets the one 429 of [`super::maxinflight::too_many_requests`].
//!
//! Every classified answer carries `X-Kubernetes-PF-FlowSchema-UID` and
//! `X-Kubernetes-PF-PriorityLevel-UID`. The configuration follows the objects through the
//! watch cache (a change takes effect at once); the mandatory objects are used, and
//! re-created, when missing; each FlowSchema's `Dangling` condition tells whether its level
//! exists.

use super::bootstrap::{self, GROUP};
use super::queueset::{Admission, Params, QueueSet, Seat};
use crate::auth::request_info::{self, RequestInfo};
use crate::auth::UserInfo;
use crate::cache::WatchCache;
use crate::rest::negotiate::Failure;
use crate::storage::key;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::flowcontrol::v1::{
    FlowSchema, FlowSchemaCondition, PolicyRulesWithSubjects, PriorityLevelConfiguration, Subject,
};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How long a request waits in a queue before it is refused: upstream derives it from the
/// request timeout (a quarter of the default 60 s).
pub const QUEUE_WAIT_LIMIT: Duration = Duration::from_secs(15);

/// The response header naming the matched FlowSchema's UID.
pub const FLOW_SCHEMA_UID_HEADER: &str = "X-Kubernetes-PF-FlowSchema-UID";
/// The response header naming the matched priority level's UID.
pub const PRIORITY_LEVEL_UID_HEADER: &str = "X-Kubernetes-PF-PriorityLevel-UID";

/// How a level treats its requests.
#[derive(Debug, Clone)]
pub enum Limit {
    /// Run at once, no seat.
    Exempt,
    /// Seats and queues.
    Limited(Arc<QueueSet>),
}

/// One priority level in force.
#[derive(Debug, Clone)]
pub struct Level {
    /// Its name.
    pub name: String,
    /// Its object's UID (empty for a built-in mandatory level not stored yet).
    pub uid: String,
    /// Exempt or limited.
    pub limit: Limit,
}

#[derive(Debug, Clone)]
struct Schema {
    name: String,
    uid: String,
    precedence: i32,
    level: String,
    distinguisher: Option<String>,
    rules: Vec<PolicyRulesWithSubjects>,
}

/// The configuration in force: schemas in matching order and the levels by name.
#[derive(Debug, Default)]
pub struct Config {
    schemas: Vec<Schema>,
    levels: HashMap<String, Level>,
}

/// Where a request was classified: the schema's name and UID, the flow's hash and the level.
#[derive(Debug, Clone)]
pub struct Classification {
    /// The matched FlowSchema's name.
    pub schema: String,
    /// Its UID.
    pub schema_uid: String,
    /// The hash of the flow (schema name and distinguisher value).
    pub flow: u64,
    /// The level.
    pub level: Level,
}

fn subject_matches(s: &Subject, user: &UserInfo) -> bool {
    let name = user.username.as_deref().unwrap_or("");
    let groups = user.groups.as_deref().unwrap_or(&[]);
    match s.kind.as_str() {
        "User" => s
            .user
            .as_ref()
            .is_some_and(|u| u.name == "*" || u.name == name),
        "Group" => s
            .group
            .as_ref()
            .is_some_and(|g| g.name == "*" || groups.contains(&g.name)),
        "ServiceAccount" => s.service_account.as_ref().is_some_and(|sa| {
            let prefix = format!("system:serviceaccount:{}:", sa.namespace);
            name.strip_prefix(&prefix)
                .is_some_and(|n| sa.name == "*" || sa.name == n)
        }),
        _ => false,
    }
}

fn has(list: &[String], v: &str) -> bool {
    list.iter().any(|x| x == "*" || x == v)
}

/// Whether `rule` matches `user` making the request `info` (upstream `matchesPolicyRule`).
fn rule_matches(rule: &PolicyRulesWithSubjects, user: &UserInfo, info: &RequestInfo) -> bool {
    if !rule.subjects.iter().any(|s| subject_matches(s, user)) {
        return false;
    }
    if info.is_resource_request {
        let resource = if info.subresource.is_empty() {
            info.resource.clone()
        } else {
            format!("{}/{}", info.resource, info.subresource)
        };
        rule.resource_rules.iter().flatten().any(|r| {
            has(&r.verbs, &info.verb)
                && has(&r.api_groups, &info.api_group)
                && has(&r.resources, &resource)
                && if info.namespace.is_empty() {
                    r.cluster_scope.unwrap_or(false)
                } else {
                    has(r.namespaces.as_deref().unwrap_or(&[]), &info.namespace)
                }
        })
    } else {
        rule.non_resource_rules.iter().flatten().any(|r| {
            has(&r.verbs, &info.verb)
                && r.non_resource_urls.iter().any(|u| {
                    u == "*"
                        || *u == info.path
                        || u.strip_suffix('*')
                            .is_some_and(|p| info.path.starts_with(p))
                })
        })
    }
}

fn flow_hash(schema: &str, value: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    (schema, value).hash(&mut h);
    h.finish()
}

impl Config {
    /// The configuration of `schemas` and `levels` (the mandatory ones added when missing),
    /// with `total` seats shared among the limited levels; `previous` keeps the queue sets
    /// of levels that stay (their seats in use and waiters carry over).
    pub fn build(
        mut schemas: Vec<FlowSchema>,
        mut levels: Vec<PriorityLevelConfiguration>,
        total: usize,
        previous: Option<&Config>,
    ) -> Self {
        for o in bootstrap::mandatory() {
            let name = o.name().to_string();
            match o.types.kind.as_str() {
                "FlowSchema"
                    if !schemas
                        .iter()
                        .any(|s| s.metadata.name.as_deref() == Some(&name)) =>
                {
                    schemas.extend(o.to_typed::<FlowSchema>().ok());
                }
                "PriorityLevelConfiguration"
                    if !levels
                        .iter()
                        .any(|l| l.metadata.name.as_deref() == Some(&name)) =>
                {
                    levels.extend(o.to_typed::<PriorityLevelConfiguration>().ok());
                }
                _ => {}
            }
        }
        let limited = |l: &PriorityLevelConfiguration| {
            l.spec
                .as_ref()
                .filter(|s| s.type_ == "Limited")
                .and_then(|s| s.limited.clone())
        };
        let shares = |l: &PriorityLevelConfiguration| {
            limited(l).map_or(0, |x| {
                x.nominal_concurrency_shares.unwrap_or(30).max(0) as usize
            })
        };
        let sum: usize = levels.iter().map(shares).sum();
        let mut by_name = HashMap::new();
        for l in &levels {
            let name = l.metadata.name.clone().unwrap_or_default();
            let uid = l.metadata.uid.clone().unwrap_or_default();
            let limit = match limited(l) {
                None => Limit::Exempt,
                Some(lim) => {
                    let seats = if total == 0 || sum == 0 {
                        usize::MAX
                    } else {
                        (total * shares(l)).div_ceil(sum).max(1)
                    };
                    let q = lim
                        .limit_response
                        .as_ref()
                        .filter(|r| r.type_ == "Queue")
                        .and_then(|r| r.queuing.clone())
                        .unwrap_or_default();
                    let n = |v: Option<i32>| v.unwrap_or(0).max(0) as usize;
                    let params = Params {
                        limit: seats,
                        queues: n(q.queues),
                        hand_size: n(q.hand_size),
                        queue_length_limit: n(q.queue_length_limit),
                    };
                    let kept =
                        previous.and_then(|p| p.levels.get(&name)).and_then(|old| {
                            match &old.limit {
                                Limit::Limited(qs) => Some(qs.clone()),
                                Limit::Exempt => None,
                            }
                        });
                    Limit::Limited(match kept {
                        Some(qs) => {
                            qs.reconfigure(params);
                            qs
                        }
                        None => QueueSet::new(params),
                    })
                }
            };
            by_name.insert(name.clone(), Level { name, uid, limit });
        }
        let mut out: Vec<Schema> = schemas
            .into_iter()
            .map(|fs| {
                let spec = fs.spec.unwrap_or_default();
                Schema {
                    name: fs.metadata.name.unwrap_or_default(),
                    uid: fs.metadata.uid.unwrap_or_default(),
                    precedence: spec.matching_precedence.unwrap_or(1000),
                    level: spec.priority_level_configuration.name,
                    distinguisher: spec.distinguisher_method.map(|d| d.type_),
                    rules: spec.rules.unwrap_or_default(),
                }
            })
            .collect();
        out.sort_by(|a, b| (a.precedence, &a.name).cmp(&(b.precedence, &b.name)));
        Self {
            schemas: out,
            levels: by_name,
        }
    }

    /// Classifies `info` made by `user` (the catch-all schema matches whoever is left).
    pub fn classify(&self, user: &UserInfo, info: &RequestInfo) -> Option<Classification> {
        self.schemas.iter().find_map(|s| {
            let level = self.levels.get(&s.level)?;
            if !s.rules.iter().any(|r| rule_matches(r, user, info)) {
                return None;
            }
            let value = match s.distinguisher.as_deref() {
                Some("ByUser") => user.username.as_deref().unwrap_or(""),
                Some("ByNamespace") => info.namespace.as_str(),
                _ => "",
            };
            Some(Classification {
                schema: s.name.clone(),
                schema_uid: s.uid.clone(),
                flow: flow_hash(&s.name, value),
                level: level.clone(),
            })
        })
    }

    /// Whether the level `name` exists.
    fn has_level(&self, name: &str) -> bool {
        self.levels.contains_key(name)
    }

    /// The level `name`.
    pub fn level(&self, name: &str) -> Option<&Level> {
        self.levels.get(name)
    }
}

/// Objects a list goes through per seat it is charged (upstream `objectsPerSeat` in
/// `staging/src/k8s.io/apiserver/pkg/util/flowcontrol/request/config.go`).
pub const OBJECTS_PER_SEAT: usize = 100;
/// The most seats one request is charged (upstream `maximumSeats`, same file).
pub const MAXIMUM_SEATS: usize = 10;

/// The seats a request is charged: a list (not a watch, and not one naming a single object
/// with `fieldSelector=metadata.name=…`) one per [`OBJECTS_PER_SEAT`] objects of its resource
/// (`stored`, the count in the watch cache, all namespaces, as upstream's object count
/// tracker: a list served from the watch cache goes through every stored object of the type),
/// between 1 and [`MAXIMUM_SEATS`]; every other request 1. Upstream's count-based list work
/// estimator (`staging/src/k8s.io/apiserver/pkg/util/flowcontrol/request/list_work_estimator.go`);
/// the queue set caps it at the level's seats.
///
/// ```
/// use orch_apiserver::auth::request_info::parse;
/// use orch_apiserver::flowcontrol::apf::width;
/// let q = Default::default();
/// assert_eq!(width(&parse("GET", "/api/v1/pods", &q), || 250), 3);
/// assert_eq!(width(&parse("GET", "/api/v1/pods", &q), || 0), 1);
/// assert_eq!(width(&parse("GET", "/api/v1/pods", &q), || 1_000_000), 10);
/// assert_eq!(width(&parse("GET", "/api/v1/namespaces/d/pods/p", &q), || 250), 1);
/// assert_eq!(width(&parse("POST", "/api/v1/namespaces/d/pods", &q), || 250), 1);
/// ```
pub fn width(info: &RequestInfo, stored: impl FnOnce() -> usize) -> usize {
    if !info.is_resource_request || info.verb != "list" || !info.name.is_empty() {
        return 1;
    }
    stored().div_ceil(OBJECTS_PER_SEAT).clamp(1, MAXIMUM_SEATS)
}

/// What happened to the requests of one flow schema and priority level pair: upstream's
/// `apiserver_flowcontrol_*` metrics of that pair
/// (`staging/src/k8s.io/apiserver/pkg/util/flowcontrol/metrics/metrics.go`), served at
/// `/metrics` ([`Apf::metrics_text`]).
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests released for service (`dispatched_requests_total`).
    pub dispatched: AtomicU64,
    /// Refused because the chosen queue was full (`rejected_requests_total`, `queue-full`).
    pub queue_full: AtomicU64,
    /// Refused by a level that does not queue (`concurrency-limit`).
    pub concurrency_limit: AtomicU64,
    /// Refused after waiting [`QUEUE_WAIT_LIMIT`] (`time-out`).
    pub time_out: AtomicU64,
    /// Left their queue because the client went away (`cancelled`).
    pub cancelled: AtomicU64,
    /// Waiting now (`current_inqueue_requests`).
    pub inqueue: AtomicI64,
    /// Executing now (`current_executing_requests`).
    pub executing: AtomicI64,
    /// Seats held by those executing now (`current_executing_seats`).
    pub executing_seats: AtomicI64,
}

/// Raises a gauge of [`Counters`] while held; counts a still-queued request as `cancelled`
/// when its client went away (the request's future was dropped).
struct Gauge {
    counters: Arc<Counters>,
    gauge: fn(&Counters) -> &AtomicI64,
    by: i64,
    cancelled: bool,
}

impl Gauge {
    fn up(counters: &Arc<Counters>, gauge: fn(&Counters) -> &AtomicI64, by: i64) -> Self {
        gauge(counters).fetch_add(by, Ordering::Relaxed);
        Self {
            counters: counters.clone(),
            gauge,
            by,
            cancelled: false,
        }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        (self.gauge)(&self.counters).fetch_sub(self.by, Ordering::Relaxed);
        if self.cancelled {
            self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Keeps `held` (a request's seats and gauges) until `resp`'s body has been sent or dropped.
/// Upstream's handler writes the answer inside the filter, so a seat covers the writing of a
/// large list too; here the handler returns the body for the server to write, and without
/// this the seat would be free while thousands of list bodies were still being written.
pub fn hold_until_sent<T: Send + 'static>(resp: Response, held: T) -> Response {
    use axum::body::HttpBody;
    use http_body_util::BodyExt;
    let (mut parts, body) = resp.into_parts();
    if body.is_end_stream() {
        return Response::from_parts(parts, body);
    }
    // The wrapper does not forward the exact size: keep it as the header hyper would write.
    if let Some(n) = body.size_hint().exact() {
        parts
            .headers
            .entry(axum::http::header::CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(n));
    }
    let body = body.map_frame(move |frame| {
        let _held = &held;
        frame
    });
    Response::from_parts(parts, axum::body::Body::new(body))
}

/// The filter: the configuration in force, the server's total seats and the counters.
#[derive(Debug)]
pub struct Apf {
    config: RwLock<Arc<Config>>,
    total: usize,
    /// By (priority level, flow schema).
    counters: Mutex<BTreeMap<(String, String), Arc<Counters>>>,
}

impl Apf {
    /// A filter sharing `total` seats (0: no limit), with the mandatory configuration until
    /// [`follow`] reads the objects.
    pub fn new(total: usize) -> Arc<Self> {
        Arc::new(Self {
            config: RwLock::new(Arc::new(Config::build(Vec::new(), Vec::new(), total, None))),
            total,
            counters: Mutex::new(BTreeMap::new()),
        })
    }

    /// The counters of the pair (`level`, `schema`).
    pub fn counters(&self, level: &str, schema: &str) -> Arc<Counters> {
        let mut all = self.counters.lock();
        if let Some(c) = all.get(&(level.to_string(), schema.to_string())) {
            return c.clone();
        }
        all.entry((level.to_string(), schema.to_string()))
            .or_default()
            .clone()
    }

    /// Upstream's `apiserver_flowcontrol_*` metrics in the Prometheus text format: per flow
    /// schema and priority level `dispatched_requests_total`, `rejected_requests_total` by
    /// reason, `current_inqueue_requests`, `current_executing_requests`,
    /// `current_executing_seats`; per level `nominal_limit_seats`.
    pub fn metrics_text(&self) -> String {
        use std::fmt::Write;
        let all: Vec<_> = self
            .counters
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = String::new();
        let mut family =
            |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = (String, i64)>| {
                let _ = writeln!(out, "# HELP apiserver_flowcontrol_{name} {help}");
                let _ = writeln!(out, "# TYPE apiserver_flowcontrol_{name} {kind}");
                for (labels, v) in rows {
                    let _ = writeln!(out, "apiserver_flowcontrol_{name}{{{labels}}} {v}");
                }
            };
        let pair = |(l, s): &(String, String)| format!("flow_schema={s:?},priority_level={l:?}");
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as i64;
        family(
            "dispatched_requests_total",
            "counter",
            "Number of requests released by API Priority and Fairness system for service",
            &mut all.iter().map(|(k, c)| (pair(k), load(&c.dispatched))),
        );
        family(
            "rejected_requests_total",
            "counter",
            "Number of requests rejected by API Priority and Fairness system",
            &mut all.iter().flat_map(|(k, c)| {
                [
                    ("queue-full", &c.queue_full),
                    ("concurrency-limit", &c.concurrency_limit),
                    ("time-out", &c.time_out),
                    ("cancelled", &c.cancelled),
                ]
                .into_iter()
                .filter(|(_, n)| load(n) > 0)
                .map(move |(reason, n)| (format!("{},reason={reason:?}", pair(k)), load(n)))
            }),
        );
        for (name, help, pick) in [
            (
                "current_inqueue_requests",
                "Number of requests currently pending in queues of the API Priority and Fairness subsystem",
                (|c: &Counters| &c.inqueue) as fn(&Counters) -> &AtomicI64,
            ),
            (
                "current_executing_requests",
                "Number of requests in initial (for a WATCH) or any (for a non-WATCH) execution stage in the API Priority and Fairness subsystem",
                |c: &Counters| &c.executing,
            ),
            (
                "current_executing_seats",
                "Concurrency (number of seats) occupied by the currently executing (initial stage for a WATCH, any stage otherwise) requests in the API Priority and Fairness subsystem",
                |c: &Counters| &c.executing_seats,
            ),
        ] {
            family(
                name,
                "gauge",
                help,
                &mut all
                    .iter()
                    .map(|(k, c)| (pair(k), pick(c).load(Ordering::Relaxed))),
            );
        }
        let config = self.config();
        let mut levels: Vec<_> = config
            .levels
            .values()
            .filter_map(|l| match &l.limit {
                Limit::Limited(qs) => Some((l.name.clone(), qs.params().limit)),
                Limit::Exempt => None,
            })
            .collect();
        levels.sort();
        family(
            "nominal_limit_seats",
            "gauge",
            "Nominal number of execution seats configured for each priority level",
            &mut levels.into_iter().map(|(l, n)| {
                (
                    format!("priority_level={l:?}"),
                    n.min(i64::MAX as usize) as i64,
                )
            }),
        );
        out
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().clone()
    }

    /// Replaces the configuration with one built from `schemas` and `levels`.
    pub fn reload(&self, schemas: Vec<FlowSchema>, levels: Vec<PriorityLevelConfiguration>) {
        let mut slot = self.config.write();
        let next = Config::build(schemas, levels, self.total, Some(&slot));
        *slot = Arc::new(next);
    }

    /// Runs `req` through its level (see the module documentation); `cache` counts the
    /// objects a list goes through ([`width`]). A refused request is answered before anything
    /// of it is read beyond its head, or anything stored is touched.
    pub async fn run(&self, req: Request, next: Next, cache: &WatchCache) -> Response {
        let query = crate::rest::router::parse_query(req.uri().query());
        let info = request_info::parse(req.method().as_str(), req.uri().path(), &query);
        let user = crate::auth::current_user();
        let Some(c) = self.config().classify(&user, &info) else {
            return next.run(req).await;
        };
        let counters = self.counters(&c.level.name, &c.schema);
        let seat = if super::maxinflight::is_long_running(&info) {
            Ok(None)
        } else {
            let width = width(&info, || {
                cache.count(&key::resource_prefix(&info.api_group, &info.resource))
            });
            admit(&c.level.limit, c.flow, width, &counters).await
        };
        let mut resp = match seat {
            Ok(seat) => {
                counters.dispatched.fetch_add(1, Ordering::Relaxed);
                let executing = Gauge::up(&counters, |c| &c.executing, 1);
                let seats = Gauge::up(
                    &counters,
                    |c| &c.executing_seats,
                    seat.as_ref().map_or(0, |s| s.width() as i64),
                );
                let resp = next.run(req).await;
                match seat {
                    Some(seat) => hold_until_sent(resp, (seat, executing, seats)),
                    // Exempt or long-running: counted while the handler runs (a watch's
                    // stream is not held, as upstream counts only its initialization).
                    None => resp,
                }
            }
            Err(()) => Failure(super::maxinflight::too_many_requests()).into_response(),
        };
        let h = resp.headers_mut();
        for (name, v) in [
            (FLOW_SCHEMA_UID_HEADER, &c.schema_uid),
            (PRIORITY_LEVEL_UID_HEADER, &c.level.uid),
        ] {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(name, v);
            }
        }
        resp
    }
}

/// `width` seats of `limit` for `flow` (`None`: exempt), or `Err` when refused; `counters`
/// count the refusals by reason and the requests waiting.
pub async fn admit(
    limit: &Limit,
    flow: u64,
    width: usize,
    counters: &Arc<Counters>,
) -> Result<Option<Seat>, ()> {
    let Limit::Limited(qs) = limit else {
        return Ok(None);
    };
    match qs.enqueue(flow, width) {
        Admission::Run(s) => Ok(Some(s)),
        Admission::Queued(t) => {
            let mut waiting = Gauge::up(counters, |c| &c.inqueue, 1);
            waiting.cancelled = true;
            let seat = t.wait(QUEUE_WAIT_LIMIT).await;
            waiting.cancelled = false;
            if seat.is_none() {
                counters.time_out.fetch_add(1, Ordering::Relaxed);
            }
            seat.map(Some).ok_or(())
        }
        Admission::Rejected => {
            let reason = if qs.params().queues == 0 {
                &counters.concurrency_limit
            } else {
                &counters.queue_full
            };
            reason.fetch_add(1, Ordering::Relaxed);
            Err(())
        }
    }
}

/// Keeps `apf` in step with the FlowSchemas and PriorityLevelConfigurations of `api`: reloads
/// on every change, re-creates missing mandatory objects and writes the `Dangling` conditions.
/// Ends when the server is dropped.
pub async fn follow(api: Weak<crate::ApiServer>, apf: Weak<Apf>) {
    let fs_prefix = key::resource_prefix(GROUP, "flowschemas");
    let pl_prefix = key::resource_prefix(GROUP, "prioritylevelconfigurations");
    loop {
        let Some(a) = api.upgrade() else { return };
        let cache: Arc<WatchCache> = a.cache.clone();
        drop(a);
        let (Ok(mut fs_watch), Ok(mut pl_watch)) = (
            cache.watch(&fs_prefix, None).await,
            cache.watch(&pl_prefix, None).await,
        ) else {
            return;
        };
        drop(cache);
        loop {
            let (Some(api), Some(apf)) = (api.upgrade(), apf.upgrade()) else {
                return;
            };
            reconcile(&api, &apf).await;
            drop((api, apf));
            let lagged = tokio::select! {
                r = fs_watch.live.recv() => r.is_err(),
                r = pl_watch.live.recv() => r.is_err(),
            };
            if lagged {
                break;
            }
        }
    }
}

fn listed<T: serde::de::DeserializeOwned>(cache: &WatchCache, prefix: &str) -> Vec<T> {
    cache
        .list(prefix, prefix)
        .items
        .iter()
        .filter_map(|e| e.decode_as().ok())
        .collect()
}

/// One round of [`follow`].
async fn reconcile(api: &Arc<crate::ApiServer>, apf: &Apf) {
    let fs_prefix = key::resource_prefix(GROUP, "flowschemas");
    let pl_prefix = key::resource_prefix(GROUP, "prioritylevelconfigurations");
    let schemas: Vec<FlowSchema> = listed(&api.cache, &fs_prefix);
    let levels: Vec<PriorityLevelConfiguration> = listed(&api.cache, &pl_prefix);
    let client = api.client();
    for o in bootstrap::mandatory() {
        let plural = if o.types.kind == "FlowSchema" {
            "flowschemas"
        } else {
            "prioritylevelconfigurations"
        };
        let present = |n: Option<&String>| n.map(String::as_str) == Some(o.name());
        let exists = if plural == "flowschemas" {
            schemas.iter().any(|s| present(s.metadata.name.as_ref()))
        } else {
            levels.iter().any(|l| present(l.metadata.name.as_ref()))
        };
        if !exists {
            if let Some(info) = orch_types::registry::by_kind(bootstrap::API_VERSION, &o.types.kind)
            {
                if let Err(e) = client
                    .create(&info.api_resource(), None, &o, &Default::default())
                    .await
                {
                    if !e.is_already_exists() {
                        tracing::warn!(error = %e, name = o.name(), plural, "re-creating a mandatory APF object failed");
                    }
                }
            }
        }
    }
    apf.reload(schemas.clone(), levels);
    let config = apf.config();
    for fs in schemas {
        let spec = fs.spec.clone().unwrap_or_default();
        let pl = spec.priority_level_configuration.name;
        let dangling = !config.has_level(&pl);
        let (status, reason, message) = if dangling {
            ("True", "NotFound", format!("This FlowSchema references the PriorityLevelConfiguration object named {pl:?} but there is no such object"))
        } else {
            ("False", "Found", format!("This FlowSchema references the PriorityLevelConfiguration object named {pl:?} and it exists"))
        };
        let current = fs
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_.as_deref() == Some("Dangling")));
        if current.is_some_and(|c| {
            c.status.as_deref() == Some(status) && c.reason.as_deref() == Some(reason)
        }) {
            continue;
        }
        let mut next = fs.clone();
        let st = next.status.get_or_insert_with(Default::default);
        let conditions = st.conditions.get_or_insert_with(Vec::new);
        conditions.retain(|c| c.type_.as_deref() != Some("Dangling"));
        conditions.push(FlowSchemaCondition {
            type_: Some("Dangling".into()),
            status: Some(status.into()),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(crate::rest::meta::time(jiff::Timestamp::now())),
        });
        let Ok(obj) = orch_types::DynamicObject::from_typed(&next) else {
            continue;
        };
        if let Some(info) = orch_types::registry::by_kind(bootstrap::API_VERSION, "FlowSchema") {
            // A conflict means a newer version is on its way: the next round looks again.
            let _ = client
                .update_status(&info.api_resource(), None, &obj, &Default::default())
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::request_info::parse;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            username: Some(name.into()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            ..Default::default()
        }
    }

    fn defaults(total: usize) -> Config {
        let mut schemas = Vec::new();
        let mut levels = Vec::new();
        for o in bootstrap::mandatory()
            .into_iter()
            .chain(bootstrap::suggested())
        {
            if o.types.kind == "FlowSchema" {
                schemas.push(o.to_typed().unwrap());
            } else {
                levels.push(o.to_typed().unwrap());
            }
        }
        Config::build(schemas, levels, total, None)
    }

    fn schema_of(c: &Config, u: &UserInfo, method: &str, path: &str) -> String {
        let info = parse(method, path, &Default::default());
        c.classify(u, &info).map(|c| c.schema).unwrap_or_default()
    }

    #[test]
    fn requests_are_classified_by_precedence() {
        let c = defaults(600);
        let admin = user("admin", &["system:masters", "system:authenticated"]);
        let node = user("system:node:n1", &["system:nodes", "system:authenticated"]);
        let tenant = user("alice", &["system:authenticated"]);
        let anonymous = user("system:anonymous", &["system:unauthenticated"]);
        let ksa = user(
            "system:serviceaccount:kube-system:ctl",
            &["system:serviceaccounts", "system:authenticated"],
        );
        let sa = user(
            "system:serviceaccount:team:app",
            &["system:serviceaccounts", "system:authenticated"],
        );
        let sched = user("system:kube-scheduler", &["system:authenticated"]);
        let lease = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1";
        for (u, method, path, want) in [
            (&admin, "GET", "/api/v1/pods", "exempt"),
            (&node, "PUT", lease, "system-node-high"),
            (
                &node,
                "PATCH",
                "/api/v1/nodes/n1/status",
                "system-node-high",
            ),
            (&node, "GET", "/api/v1/pods", "system-nodes"),
            (&tenant, "GET", "/api/v1/configmaps", "global-default"),
            (&tenant, "GET", "/version", "global-default"),
            (&anonymous, "GET", "/healthz", "probes"),
            (&anonymous, "GET", "/api", "global-default"),
            (&ksa, "PUT", lease, "system-leader-election"),
            (&ksa, "GET", "/api/v1/pods", "kube-system-service-accounts"),
            (&sa, "GET", "/api/v1/pods", "service-accounts"),
            (
                &sched,
                "POST",
                "/api/v1/namespaces/d/pods/p/binding",
                "kube-scheduler",
            ),
            (&user("nobody", &[]), "GET", "/api/v1/pods", ""),
        ] {
            assert_eq!(schema_of(&c, u, method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn distinguishers_name_the_flows() {
        let c = defaults(600);
        let info = |p: &str| parse("GET", p, &Default::default());
        let flow = |u: &UserInfo, p: &str| c.classify(u, &info(p)).unwrap().flow;
        let (a, b) = (
            user("a", &["system:authenticated"]),
            user("b", &["system:authenticated"]),
        );
        assert_ne!(flow(&a, "/api/v1/pods"), flow(&b, "/api/v1/pods"), "ByUser");
        assert_eq!(flow(&a, "/api/v1/pods"), flow(&a, "/api/v1/nodes"));
        let s = user("system:kube-scheduler", &[]);
        assert_eq!(
            flow(&s, "/api/v1/namespaces/x/pods"),
            flow(&s, "/api/v1/namespaces/x/configmaps"),
            "ByNamespace"
        );
        assert_ne!(
            flow(&s, "/api/v1/namespaces/x/pods"),
            flow(&s, "/api/v1/namespaces/y/pods")
        );
    }

    #[test]
    fn levels_share_the_total_and_keep_their_own_seats() {
        let c = defaults(600);
        let seats = |name: &str| match &c.level(name).unwrap().limit {
            Limit::Limited(qs) => qs.params().limit,
            Limit::Exempt => usize::MAX,
        };
        // Σ shares = 5 + 30 + 40 + 10 + 40 + 100 + 20 = 245.
        assert_eq!(seats("global-default"), 49);
        assert_eq!(seats("node-high"), 98);
        assert_eq!(seats("catch-all"), 13);
        assert!(matches!(c.level("exempt").unwrap().limit, Limit::Exempt));
        let Limit::Limited(tenant) = &c.level("global-default").unwrap().limit else {
            panic!()
        };
        let held: Vec<_> = (0..49).map(|_| tenant.enqueue(1, 1)).collect();
        assert!(held.iter().all(|a| matches!(a, Admission::Run(_))));
        assert!(matches!(tenant.enqueue(1, 1), Admission::Queued(_)));
        let Limit::Limited(nodes) = &c.level("node-high").unwrap().limit else {
            panic!()
        };
        assert!(
            matches!(nodes.enqueue(7, 1), Admission::Run(_)),
            "another level's seats"
        );
    }

    #[tokio::test]
    async fn a_seat_is_held_until_the_answer_is_sent() {
        let qs = QueueSet::new(super::super::queueset::Params {
            limit: 1,
            queues: 1,
            hand_size: 1,
            queue_length_limit: 1,
        });
        let Admission::Run(seat) = qs.enqueue(0, 1) else {
            panic!("a free seat")
        };
        let resp = hold_until_sent(Response::new(axum::body::Body::from("a list")), seat);
        assert_eq!(resp.headers()[axum::http::header::CONTENT_LENGTH], "6");
        assert_eq!(qs.load(), (1, 0), "held while the body is unsent");
        let body = axum::body::to_bytes(resp.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"a list");
        assert_eq!(qs.load(), (0, 0), "freed once sent");
        let Admission::Run(seat) = qs.enqueue(0, 1) else {
            panic!("a free seat")
        };
        drop(hold_until_sent(
            Response::new(axum::body::Body::from("unsent")),
            seat,
        ));
        assert_eq!(qs.load(), (0, 0), "freed when the answer is dropped");
    }

    #[test]
    fn list_width_follows_the_stored_objects() {
        let q = |k: &str, v: &str| [(k.to_string(), v.to_string())].into_iter().collect();
        let list = parse(
            "GET",
            "/api/v1/namespaces/d/configmaps",
            &Default::default(),
        );
        assert_eq!(width(&list, || 100), 1);
        assert_eq!(width(&list, || 101), 2);
        assert_eq!(width(&list, || 5_000), MAXIMUM_SEATS);
        let named = parse(
            "GET",
            "/api/v1/namespaces/d/configmaps",
            &q("fieldSelector", "metadata.name=a"),
        );
        assert_eq!(width(&named, || 5_000), 1, "a list of one named object");
        let watch = parse(
            "GET",
            "/api/v1/namespaces/d/configmaps",
            &q("watch", "true"),
        );
        assert_eq!(width(&watch, || 5_000), 1);
        let get = parse(
            "GET",
            "/api/v1/namespaces/d/configmaps/a",
            &Default::default(),
        );
        assert_eq!(width(&get, || 5_000), 1);
    }

    #[test]
    fn a_schema_of_a_missing_level_is_skipped_and_a_change_keeps_the_queues() {
        let c = defaults(600);
        let mut dangling: FlowSchema = bootstrap::suggested()
            .into_iter()
            .find(|o| o.name() == "global-default" && o.types.kind == "FlowSchema")
            .unwrap()
            .to_typed()
            .unwrap();
        dangling.metadata.name = Some("first".into());
        dangling.spec.as_mut().unwrap().matching_precedence = Some(2);
        dangling
            .spec
            .as_mut()
            .unwrap()
            .priority_level_configuration
            .name = "gone".into();
        let next = Config::build(vec![dangling], Vec::new(), 600, Some(&c));
        let tenant = user("t", &["system:authenticated"]);
        assert_eq!(schema_of(&next, &tenant, "GET", "/api"), "catch-all");
        assert!(!next.has_level("gone"));
        let (Limit::Limited(a), Limit::Limited(b)) = (
            &c.level("catch-all").unwrap().limit,
            &next.level("catch-all").unwrap().limit,
        ) else {
            panic!()
        };
        assert!(Arc::ptr_eq(a, b), "a level that stays keeps its queue set");
        assert_eq!(b.params().limit, 600, "catch-all alone has every seat");
    }
}
