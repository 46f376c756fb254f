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
use orch_apiserver::client::HttpClient;
use orch_types::client::{Client, Patch, PatchParams};
use reliability::history::{History, Output, Recorder};
use reliability::load::{self, cycles, resource, Run, NS};
use reliability::watch::{Session, Window};
use reliability::Rng;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// One client: a random mix of operations until stopped.
async fn client_loop(s: Arc<Shared>, id: usize, mut rng: Rng) {
    let client: &dyn Client = &s.client;
    let mut cms = Recorder::new(&s.history, client, resource("configmaps"), NS, id);
    let mut svcs = Recorder::new(&s.history, client, resource("services"), NS, id);
    while !s.stop.load(Ordering::SeqCst) {
        let out = load::random_operation(&mut cms, &mut svcs, &mut rng).await;
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
        let length = Duration::from_millis(300 + rng.below(2500));
        let session = load::watch_session(&s.client, id, (start, window), length, |e| {
            if e.kind != "BOOKMARK" && s.epoch.load(Ordering::SeqCst) == epoch {
                seen.1.push(e.rv);
            }
            s.saw(e.rv);
        })
        .await;
        let Some(session) = session else {
            wait_up(&s).await;
            continue;
        };
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
    rt.block_on(load::create_services(&shared.history, &shared.client));
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
    let final_state = rt.block_on(load::final_state(&shared.history, &shared.client, seed));
    let ops = shared.history.operations();
    let sessions: Vec<Session> = shared.sessions.lock().expect("lock").clone();
    let odd = shared.odd.lock().expect("lock").clone();
    load::judge(&Run {
        name: "reliability_crash",
        seed,
        cycles,
        elapsed: started.elapsed(),
        ops: &ops,
        final_state: &final_state,
        sessions: &sessions,
        odd: &odd,
    });

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
