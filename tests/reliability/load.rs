//! What the load tests that crash servers share (`tests/reliability_crash.rs` on `orch up`,
//! `tests/reliability_crash_etcd.rs` on API servers sharing an etcd, and the watch sessions of
//! `tests/reliability_watch.rs`): the objects and the operation mix of a client, following one
//! watch session, the final read of every key, and the verdict of a run — the durability,
//! linearizability and watch checks, their figures, the history dump and the assertions.

use super::history::{
    check_durability, check_linearizable, key_of, History, Input, Operation, Output, Recorder,
    Version,
};
use super::watch::{self, Committed, End, Session, Window};
use super::Rng;
use futures::StreamExt;
use orch_types::client::{Client, ClientError, WatchEvent, WatchParams, WatchStream};
use orch_types::registry::{self, ApiResource};
use orch_types::DynamicObject;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The namespace of every object of the load.
pub const NS: &str = "default";
/// ConfigMap keys the clients fight over.
pub const KEYS: u64 = 6;
/// Services whose status the clients write.
pub const SERVICES: u64 = 2;

/// The API resource of a registry name (`configmaps`).
pub fn resource(name: &str) -> ApiResource {
    registry::by_name(name)[0].api_resource()
}

/// A ConfigMap of the load.
pub fn configmap(name: &str) -> DynamicObject {
    let mut o = DynamicObject::new("v1", "ConfigMap", name);
    o.data.insert("data".into(), json!({"k": name}));
    o
}

/// A Service of the load (its status is what the clients write).
pub fn service(name: &str) -> DynamicObject {
    let mut o = DynamicObject::new("v1", "Service", name);
    o.data.insert(
        "spec".into(),
        json!({"ports": [{"port": 80, "protocol": "TCP"}]}),
    );
    o
}

/// The number of crash cycles of a run: `ORCH_CRASH_CYCLES`, default 4 (what `.ci/run` runs).
pub fn cycles() -> usize {
    std::env::var("ORCH_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

/// Creates the Services of the load through `client` (recorded as client 0).
pub async fn create_services(history: &History, client: &dyn Client) {
    let mut r = Recorder::new(history, client, resource("services"), NS, 0);
    for i in 0..SERVICES {
        let out = r.create(&service(&format!("svc-{i}"))).await;
        assert!(matches!(out, Output::Ok(_)), "create svc-{i}: {out:?}");
    }
}

/// One operation of a client's mix, on a random key: a get, a create, an update with its
/// resourceVersion precondition, a delete with and without precondition (ConfigMaps), or an
/// update of a Service or of its status.
pub async fn random_operation(
    cms: &mut Recorder<'_>,
    svcs: &mut Recorder<'_>,
    rng: &mut Rng,
) -> Output {
    let name = format!("cm-{}", rng.below(KEYS));
    match rng.below(100) {
        0..15 => cms.get(&name).await,
        15..35 => cms.create(&configmap(&name)).await,
        35..65 => match cms.read(&name).await {
            Some(cur) => cms.update(&cur).await,
            None => Output::NotFound,
        },
        65..75 => cms.delete(&name, None).await,
        75..85 => match cms.read(&name).await {
            Some(cur) => {
                let rv = Version::of(&cur).rv;
                cms.delete(&name, Some(rv)).await
            }
            None => Output::NotFound,
        },
        _ => {
            let name = format!("svc-{}", rng.below(SERVICES));
            match svcs.read(&name).await {
                Some(cur) if rng.below(2) == 0 => svcs.update_status(&cur).await,
                Some(cur) => svcs.update(&cur).await,
                None => Output::NotFound,
            }
        }
    }
}

/// A session of watcher `watcher` on the ConfigMaps from `start`, expected to end as `window`
/// says.
pub fn session(watcher: usize, start: u64, window: Window) -> Session {
    Session {
        watcher,
        prefix: format!("configmaps/{NS}/"),
        start,
        window,
        events: Vec::new(),
        end: End::Closed,
    }
}

/// How a session ends when the watch call failed: 410 Expired, another API error, or `None`
/// when nothing answered (the server is down: nothing was served, nothing to check).
pub fn refused(e: &ClientError) -> Option<End> {
    match e {
        ClientError::Api(e) if e.code == 410 => Some(End::Expired),
        ClientError::Api(e) => Some(End::Error(e.to_string())),
        _ => None,
    }
}

/// Watches the ConfigMaps through `client` from `start` (with bookmarks) for `length` as
/// watcher `watcher`, handing each event to `seen` ([`follow`]): the session, expected to end
/// as `window` says, or `None` when nothing answered (the server is down: nothing was served,
/// nothing to check).
pub async fn watch_session(
    client: &dyn Client,
    watcher: usize,
    (start, window): (u64, Window),
    length: Duration,
    seen: impl FnMut(&watch::Event),
) -> Option<Session> {
    let p = WatchParams {
        resource_version: Some(start.to_string()),
        allow_bookmarks: true,
        ..Default::default()
    };
    let mut session = session(watcher, start, window);
    match client.watch(&resource("configmaps"), Some(NS), &p).await {
        Err(e) => session.end = refused(&e)?,
        Ok(stream) => follow(stream, &mut session, Instant::now() + length, seen).await,
    }
    Some(session)
}

/// Follows `stream` until `until` or its end, adding each ConfigMap event to `session` after
/// handing it to `seen`; an error event ends the session (410: Expired).
pub async fn follow(
    mut stream: WatchStream<DynamicObject>,
    session: &mut Session,
    until: Instant,
    mut seen: impl FnMut(&watch::Event),
) {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Err(_) | Ok(None) | Ok(Some(Err(_))) => return,
            Ok(Some(Ok(WatchEvent::Error(st)))) => {
                session.end = if st.code == Some(410) {
                    End::Expired
                } else {
                    End::Error(format!("{st:?}"))
                };
                return;
            }
            Ok(Some(Ok(ev))) => {
                if let Some(e) = watch::Event::of("configmaps", &ev) {
                    seen(&e);
                    session.events.push(e);
                }
            }
        }
    }
}

/// The acknowledged creates and updates of ConfigMaps: what the watch sessions must deliver.
pub fn committed(ops: &[Operation]) -> Vec<Committed> {
    ops.iter()
        .filter(|o| o.key.starts_with("configmaps/"))
        .filter(|o| matches!(o.input, Input::Create { .. } | Input::Update { .. }))
        .filter_map(|o| match &o.output {
            Output::Ok(v) => Some(Committed {
                key: o.key.clone(),
                rv: v.rv,
                value: v.value.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Reads every key of the load through `client` with no write in flight (recorded in the
/// history as client 0's gets): key → its version, `None` when absent.
pub async fn final_state(
    history: &History,
    client: &dyn Client,
    seed: u64,
) -> BTreeMap<String, Option<Version>> {
    let mut m = BTreeMap::new();
    let mut cms = Recorder::new(history, client, resource("configmaps"), NS, 0);
    let mut svcs = Recorder::new(history, client, resource("services"), NS, 0);
    for (r, prefix, n) in [(&mut cms, "cm", KEYS), (&mut svcs, "svc", SERVICES)] {
        for i in 0..n {
            let name = format!("{prefix}-{i}");
            let v = match r.get(&name).await {
                Output::Ok(v) => Some(v),
                Output::NotFound => None,
                other => panic!("final read of {name}: {other:?} (seed {seed})"),
            };
            m.insert(key_of(&r.resource, NS, &name), v);
        }
    }
    m
}

/// What a crash run did, to be judged by [`judge`].
pub struct Run<'a> {
    /// The test's name, for its figures.
    pub name: &'a str,
    /// The seed of its choices.
    pub seed: u64,
    /// Crash cycles run.
    pub cycles: usize,
    /// How long the load ran.
    pub elapsed: Duration,
    /// The history.
    pub ops: &'a [Operation],
    /// The final state ([`final_state`]).
    pub final_state: &'a BTreeMap<String, Option<Version>>,
    /// Every watch session.
    pub sessions: &'a [Session],
    /// API errors that are neither an answer the history models nor a 5xx.
    pub odd: &'a [String],
}

/// Checks a crash run — durability of the history against the final state, linearizability
/// per object, the watch sessions against the acknowledged writes — prints the figures,
/// writes the history and the sessions to `ORCH_HISTORY_DUMP` when set, and fails the test on
/// a violation, on a request refused with a 4xx other than 429, or when the load did nothing.
pub fn judge(run: &Run<'_>) {
    let Run {
        name, seed, ops, ..
    } = *run;
    let durability = check_durability(ops, run.final_state);
    let lin = check_linearizable(ops, Duration::from_secs(60));
    let watch_report = watch::validate(run.sessions, &committed(ops));
    let unknown = ops.iter().filter(|o| o.output == Output::Unknown).count();
    eprintln!(
        "{name}: seed {seed}, {} cycles in {:?}: {} operations ({} acknowledged writes, \
         {unknown} unknown outcomes), {} lost acknowledged writes, {} durability violations; \
         linearizability: {} keys, {} operations, {} illegal, {} undecided, in {:?}; watch: {} \
         sessions, {} events, {} bookmarks, {} expired, {} violations",
        run.cycles,
        run.elapsed,
        durability.operations,
        durability.acknowledged_writes,
        durability.lost.len(),
        durability.violations().len(),
        lin.partitions,
        lin.operations,
        lin.illegal.len(),
        lin.unknown.len(),
        lin.elapsed,
        watch_report.sessions,
        watch_report.events,
        watch_report.bookmarks,
        watch_report.expired,
        watch_report.violations.len(),
    );
    if let Ok(path) = std::env::var("ORCH_HISTORY_DUMP") {
        let mut sorted = ops.to_vec();
        sorted.sort_by_key(|o| o.call);
        let mut lines: Vec<String> = sorted
            .iter()
            .map(|o| {
                format!(
                    "{} {} {:?} c{} {:?} -> {:?}",
                    o.key, o.call, o.ret, o.client, o.input, o.output
                )
            })
            .collect();
        lines.extend(run.sessions.iter().map(|s| format!("{s:?}")));
        lines.extend(watch_report.violations.iter().cloned());
        std::fs::write(&path, lines.join("\n")).expect("write the history dump");
    }
    let odd_4xx: Vec<&String> = run
        .odd
        .iter()
        .filter(|e| e.starts_with('4') && !e.starts_with("429"))
        .collect();
    assert!(
        odd_4xx.is_empty(),
        "seed {seed}: requests refused: {odd_4xx:?}"
    );
    assert!(
        durability.violations().is_empty(),
        "seed {seed}: durability violations:\n{}",
        durability.violations().join("\n")
    );
    assert!(
        lin.ok(),
        "seed {seed}: not linearizable: {:?}; undecided: {:?}",
        lin.illegal,
        lin.unknown
    );
    assert!(
        watch_report.violations.is_empty(),
        "seed {seed}: watch violations:\n{}",
        watch_report.violations.join("\n")
    );
    assert!(
        durability.acknowledged_writes > 0 && watch_report.events > 0,
        "seed {seed}: the load did nothing"
    );
}
