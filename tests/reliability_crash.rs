//! Crash and restart under load (issue 21): `orch up` on the embedded store with two sim-runtime
//! kubelets and two Deployments; several clients issue creates, updates with resourceVersion
//! preconditions, deletes (with and without precondition) and status writes over HTTPS (the
//! kubeconfig `orch up` writes), a scaler resizes the Deployments, watchers follow the
//! ConfigMaps and resume from random resourceVersions; `orch up` is killed with SIGKILL at a
//! random point and restarted on the same data dir, again and again. Then:
//!
//! - the durability checks of the history (no acknowledged write lost, nothing half-applied,
//!   resourceVersions only increase, one identity per resourceVersion) and its linearizability
//!   per object (`tests/reliability/`);
//! - the watch validator on every watch session (resumes inside a server's life are served with
//!   exactly the missing events, resumes from before a restart get 410 Expired);
//! - the cluster converges: each Deployment has its replicas Ready, each ReplicaSet exactly its
//!   replicas of live pods (no duplicate for a slot), no pod ever changed node.
//!
//! Cycles: `ORCH_CRASH_CYCLES` (default 4, what `.ci/run` runs; 0 is a plain linearizability
//! run); the seed is printed and `ORCH_SEED` replays its choices (the timing of a real cluster
//! does not replay); `ORCH_HISTORY_DUMP=FILE` writes the history and the watch sessions.

mod common;
mod reliability;

use common::{free_port, wait_for, LogsOnPanic, TestEnv, Up};
use futures::StreamExt;
use orch_apiserver::client::HttpClient;
use orch_types::client::{Client, ClientError, Patch, PatchParams, WatchEvent, WatchParams};
use orch_types::registry::{self, ApiResource};
use orch_types::DynamicObject;
use reliability::history::{
    check_durability, check_linearizable, History, Input, Output, Recorder, Version,
};
use reliability::watch::{self, Committed, End, Session, Window};
use reliability::Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NS: &str = "default";
/// ConfigMap keys the clients fight over.
const KEYS: u64 = 6;
/// Services whose status the clients write.
const SERVICES: u64 = 2;
const CLIENTS: usize = 4;
const WATCHERS: usize = 3;

const DEPLOYMENTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: example.invalid/web:1
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: c
        image: example.invalid/api:1
"#;

fn resource(name: &str) -> ApiResource {
    registry::by_name(name)[0].api_resource()
}

fn cycles() -> usize {
    std::env::var("ORCH_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

/// What the load tasks share with the test.
struct Shared {
    history: History,
    client: HttpClient,
    stop: AtomicBool,
    /// Incremented at every restart.
    epoch: AtomicU64,
    /// The highest resourceVersion observed before the current server life started.
    before_epoch: AtomicU64,
    /// Highest resourceVersion observed so far.
    max_seen: AtomicU64,
    sessions: Mutex<Vec<Session>>,
    /// Pod UID → the nodes it was seen bound to.
    bindings: Mutex<HashMap<String, BTreeSet<String>>>,
    /// API errors that are neither an answer the history models nor a 5xx.
    odd: Mutex<Vec<String>>,
}

impl Shared {
    fn saw(&self, rv: u64) {
        self.max_seen.fetch_max(rv, Ordering::SeqCst);
    }
}

/// Waits until the API answers again (after a crash), or the test stops.
async fn wait_up(s: &Shared) {
    let ns = resource("namespaces");
    while !s.stop.load(Ordering::SeqCst) {
        if s.client.get(&ns, None, NS).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn configmap(name: &str) -> DynamicObject {
    let mut o = DynamicObject::new("v1", "ConfigMap", name);
    o.data.insert("data".into(), json!({"k": name}));
    o
}

fn service(name: &str) -> DynamicObject {
    let mut o = DynamicObject::new("v1", "Service", name);
    o.data.insert(
        "spec".into(),
        json!({"ports": [{"port": 80, "protocol": "TCP"}]}),
    );
    o
}

/// One client: a random mix of operations until stopped.
async fn client_loop(s: Arc<Shared>, id: usize, mut rng: Rng) {
    let client: &dyn Client = &s.client;
    let mut cms = Recorder::new(&s.history, client, resource("configmaps"), NS, id);
    let mut svcs = Recorder::new(&s.history, client, resource("services"), NS, id);
    while !s.stop.load(Ordering::SeqCst) {
        let name = format!("cm-{}", rng.below(KEYS));
        let out = match rng.below(100) {
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
        };
        if let Output::Ok(v) = &out {
            s.saw(v.rv);
        }
        if out == Output::Unknown {
            wait_up(&s).await;
        }
    }
    let mut odd = s.odd.lock().expect("lock");
    odd.extend(cms.odd);
    odd.extend(svcs.odd);
}

/// Resizes the Deployments now and then (not part of the history: convergence is checked).
async fn scaler(s: Arc<Shared>, mut rng: Rng) {
    let deploy = resource("deployments");
    while !s.stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(700))).await;
        let name = if rng.below(2) == 0 { "web" } else { "api" };
        let patch = Patch::Merge(json!({"spec": {"replicas": 1 + rng.below(4)}}));
        let _ = s
            .client
            .patch(
                &deploy,
                Some(NS),
                name,
                None,
                &patch,
                &PatchParams::default(),
            )
            .await;
    }
}

/// Records every pod's node as seen by lists.
async fn binding_watch(s: Arc<Shared>) {
    let pods = resource("pods");
    while !s.stop.load(Ordering::SeqCst) {
        if let Ok(list) = s.client.list(&pods, Some(NS), &Default::default()).await {
            let mut b = s.bindings.lock().expect("lock");
            for p in &list.items {
                if let (Some(uid), Some(node)) = (
                    p.metadata.uid.clone(),
                    p.data.get("spec").and_then(|sp| sp["nodeName"].as_str()),
                ) {
                    b.entry(uid).or_default().insert(node.to_string());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One watcher: sessions of random length from random starts — a fresh list, a resourceVersion
/// seen earlier in this server life (inside the window), or one from before the last restart
/// (outside it: 410).
async fn watcher(s: Arc<Shared>, id: usize, mut rng: Rng) {
    let cms = resource("configmaps");
    // (epoch, resourceVersions seen in it)
    let mut seen: (u64, Vec<u64>) = (0, Vec::new());
    let mut old: Vec<u64> = Vec::new();
    while !s.stop.load(Ordering::SeqCst) {
        let epoch = s.epoch.load(Ordering::SeqCst);
        if epoch != seen.0 {
            old.append(&mut seen.1);
            seen.0 = epoch;
        }
        let before = s.before_epoch.load(Ordering::SeqCst);
        let choice = rng.below(10);
        let (start, window) = if choice < 2 && !old.is_empty() {
            let rv = old[rng.below(old.len() as u64) as usize];
            // Strictly below what was seen before this life began: the restarted watch cache
            // starts at or above that, so the start is outside its window.
            (
                rv,
                if rv < before {
                    Window::Outside
                } else {
                    Window::Either
                },
            )
        } else if choice < 6 && !seen.1.is_empty() {
            (
                seen.1[rng.below(seen.1.len() as u64) as usize],
                Window::Inside,
            )
        } else {
            match s.client.list(&cms, Some(NS), &Default::default()).await {
                Ok(l) => match l.metadata.resource_version.and_then(|r| r.parse().ok()) {
                    Some(rv) => {
                        if s.epoch.load(Ordering::SeqCst) == epoch {
                            seen.1.push(rv);
                        }
                        (rv, Window::Inside)
                    }
                    None => continue,
                },
                Err(_) => {
                    wait_up(&s).await;
                    continue;
                }
            }
        };
        if s.epoch.load(Ordering::SeqCst) != epoch {
            // A restart between choosing and watching: the label may be wrong.
            continue;
        }
        let p = WatchParams {
            resource_version: Some(start.to_string()),
            allow_bookmarks: true,
            ..Default::default()
        };
        let mut session = Session {
            watcher: id,
            prefix: format!("configmaps/{NS}/"),
            start,
            window,
            events: Vec::new(),
            end: End::Closed,
        };
        match s.client.watch(&cms, Some(NS), &p).await {
            Err(ClientError::Api(e)) if e.code == 410 => session.end = End::Expired,
            Err(ClientError::Api(e)) => session.end = End::Error(e.to_string()),
            Err(_) => {
                // The server is down: nothing was served, nothing to check.
                wait_up(&s).await;
                continue;
            }
            Ok(mut stream) => {
                let until = Instant::now() + Duration::from_millis(300 + rng.below(2500));
                loop {
                    let left = until.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, stream.next()).await {
                        Err(_) | Ok(None) | Ok(Some(Err(_))) => break,
                        Ok(Some(Ok(WatchEvent::Error(st)))) => {
                            session.end = if st.code == Some(410) {
                                End::Expired
                            } else {
                                End::Error(format!("{st:?}"))
                            };
                            break;
                        }
                        Ok(Some(Ok(ev))) => {
                            if let Some(e) = watch::Event::of("configmaps", &ev) {
                                if e.kind != "BOOKMARK" && s.epoch.load(Ordering::SeqCst) == epoch {
                                    seen.1.push(e.rv);
                                }
                                s.saw(e.rv);
                                session.events.push(e);
                            }
                        }
                    }
                }
            }
        }
        s.sessions.lock().expect("lock").push(session);
    }
}

fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default()
}

/// Deployments Ready at their replicas, each active ReplicaSet with exactly its replicas of
/// live pods.
fn converged(env: &TestEnv) -> Result<String, String> {
    let deploys = env.get_items(&["deployments"])?;
    let rss = env.get_items(&["replicasets"])?;
    let pods = env.get_items(&["pods"])?;
    let mut summary = Vec::new();
    for d in &deploys {
        let name = d["metadata"]["name"].as_str().unwrap_or("?");
        let want = d["spec"]["replicas"].as_i64().unwrap_or(-1);
        let ready = d["status"]["readyReplicas"].as_i64().unwrap_or(0);
        let total = d["status"]["replicas"].as_i64().unwrap_or(0);
        if ready != want || total != want {
            return Err(format!(
                "deployment {name}: {ready} ready, {total} total, want {want}"
            ));
        }
        summary.push(format!("{name}={want}"));
    }
    for rs in &rss {
        let uid = rs["metadata"]["uid"].as_str().unwrap_or("?");
        let want = rs["spec"]["replicas"].as_i64().unwrap_or(-1);
        let live = pods
            .iter()
            .filter(|p| {
                p["metadata"]["deletionTimestamp"].is_null()
                    && p["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|o| o.iter().any(|r| r["uid"] == uid))
            })
            .count() as i64;
        if live != want {
            return Err(format!(
                "replicaset {}: {live} live pods, want {want}",
                rs["metadata"]["name"]
            ));
        }
    }
    Ok(summary.join(" "))
}

#[test]
fn crash_restart_under_load_keeps_acknowledged_writes() {
    let seed = Rng::seed_from_env();
    eprintln!("reliability_crash: seed {seed} (ORCH_SEED={seed} replays the choices)");
    let mut rng = Rng::new(seed);
    let cycles = cycles();
    let env = TestEnv::new();
    let _logs = LogsOnPanic(vec![env.path().to_path_buf()]);
    let port = free_port();
    let mut up = Up::start_on(&env, port, 2, "sim", &[]);
    env.apply(DEPLOYMENTS);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client = HttpClient::from_kubeconfig(&env.kubeconfig).expect("kubeconfig client");
    let shared = Arc::new(Shared {
        history: History::new(),
        client,
        stop: AtomicBool::new(false),
        epoch: AtomicU64::new(0),
        before_epoch: AtomicU64::new(0),
        max_seen: AtomicU64::new(0),
        sessions: Mutex::new(Vec::new()),
        bindings: Mutex::new(HashMap::new()),
        odd: Mutex::new(Vec::new()),
    });
    // The Services exist from the start (their status is what the clients write).
    rt.block_on(async {
        let c: &dyn Client = &shared.client;
        let mut r = Recorder::new(&shared.history, c, resource("services"), NS, 0);
        for i in 0..SERVICES {
            let out = r.create(&service(&format!("svc-{i}"))).await;
            assert!(matches!(out, Output::Ok(_)), "create svc-{i}: {out:?}");
        }
    });
    let mut tasks = Vec::new();
    for id in 1..=CLIENTS {
        tasks.push(rt.spawn(client_loop(shared.clone(), id, rng.fork())));
    }
    for id in 0..WATCHERS {
        tasks.push(rt.spawn(watcher(shared.clone(), id, rng.fork())));
    }
    tasks.push(rt.spawn(scaler(shared.clone(), rng.fork())));
    tasks.push(rt.spawn(binding_watch(shared.clone())));

    let started = Instant::now();
    for cycle in 1..=cycles {
        let load = Duration::from_millis(500 + rng.below(2500));
        std::thread::sleep(load);
        up.proc.assert_running();
        // A new server life from now on: watchers stop resuming from what they saw so far
        // as if it were inside the window.
        shared
            .before_epoch
            .store(shared.max_seen.load(Ordering::SeqCst), Ordering::SeqCst);
        shared.epoch.fetch_add(1, Ordering::SeqCst);
        up.proc.kill9();
        drop(up);
        up = Up::start_on(&env, port, 2, "sim", &[]);
        eprintln!(
            "cycle {cycle}/{cycles}: killed after {load:?} of load, back up ({} operations so far)",
            shared.history.operations().len()
        );
    }
    std::thread::sleep(Duration::from_millis(1000));
    shared.stop.store(true, Ordering::SeqCst);
    rt.block_on(async {
        for t in tasks {
            t.await.expect("load task");
        }
    });

    // The final state, read with no write in flight (also part of the history).
    let final_state: BTreeMap<String, Option<Version>> = rt.block_on(async {
        let c: &dyn Client = &shared.client;
        let mut m = BTreeMap::new();
        let mut cms = Recorder::new(&shared.history, c, resource("configmaps"), NS, 0);
        let mut svcs = Recorder::new(&shared.history, c, resource("services"), NS, 0);
        for (r, prefix, n) in [(&mut cms, "cm", KEYS), (&mut svcs, "svc", SERVICES)] {
            for i in 0..n {
                let name = format!("{prefix}-{i}");
                let v = match r.get(&name).await {
                    Output::Ok(v) => Some(v),
                    Output::NotFound => None,
                    other => panic!("final read of {name}: {other:?} (seed {seed})"),
                };
                m.insert(reliability::history::key_of(&r.resource, NS, &name), v);
            }
        }
        m
    });
    let ops = shared.history.operations();
    let durability = check_durability(&ops, &final_state);
    let lin = check_linearizable(&ops, Duration::from_secs(60));
    let committed: Vec<Committed> = ops
        .iter()
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
        .collect();
    let sessions = shared.sessions.lock().expect("lock").clone();
    let watch_report = watch::validate(&sessions, &committed);
    let unknown = ops.iter().filter(|o| o.output == Output::Unknown).count();
    eprintln!(
        "reliability_crash: seed {seed}, {cycles} cycles in {:?}: {} operations ({} acknowledged \
         writes, {unknown} unknown outcomes), {} lost acknowledged writes, {} durability \
         violations; linearizability: {} keys, {} operations, {} illegal, {} undecided, in {:?}; \
         watch: {} sessions, {} events, {} bookmarks, {} expired, {} violations",
        started.elapsed(),
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
        let mut lines: Vec<String> = Vec::new();
        let mut sorted = ops.clone();
        sorted.sort_by_key(|o| o.call);
        for o in &sorted {
            lines.push(format!(
                "{} {} {:?} c{} {:?} -> {:?}",
                o.key, o.call, o.ret, o.client, o.input, o.output
            ));
        }
        for s in &sessions {
            lines.push(format!("{s:?}"));
        }
        lines.extend(watch_report.violations.iter().cloned());
        std::fs::write(&path, lines.join("\n")).expect("write the history dump");
    }
    let odd = shared.odd.lock().expect("lock").clone();
    let odd_4xx: Vec<&String> = odd
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

    // The cluster converges: replicas back, no duplicate pod for a slot, no pod bound twice.
    let summary = wait_for(
        "the Deployments to converge",
        Duration::from_secs(90),
        || converged(&env),
    );
    let twice: Vec<_> = shared
        .bindings
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, nodes)| nodes.len() > 1)
        .map(|(uid, nodes)| format!("{uid}: {nodes:?}"))
        .collect();
    assert!(twice.is_empty(), "seed {seed}: pods bound twice: {twice:?}");
    let configmaps = env.get_items(&["configmaps"]).expect("configmaps");
    assert!(configmaps.iter().all(|c| rv_of(c) > 0));
    eprintln!("reliability_crash: converged ({summary})");
}
