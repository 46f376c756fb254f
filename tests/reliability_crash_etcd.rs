//! Crash and restart of API servers on etcd under load (issue 21; cargo feature `etcd`): three
//! `orch apiserver` processes share one real etcd; several clients issue creates, updates with
//! resourceVersion preconditions, deletes (with and without precondition) and status writes,
//! each operation through a server picked at random among those up, and watchers follow the
//! ConfigMaps through a random server from random resourceVersions. Now and then API servers are
//! killed with SIGKILL in the middle of the load — one at a time, and every fourth cycle all
//! three — and restarted on the same address. Then, over the whole run and across servers:
//!
//! - the durability checks of the history (`tests/reliability/history.rs`): every acknowledged
//!   write present with its resourceVersion, nothing half-applied, resourceVersions only
//!   increase, UIDs unchanged, one identity per resourceVersion;
//! - linearizability of each object's history although its operations went through different
//!   servers (`tests/reliability/linearizability.rs`);
//! - the watch validator (`tests/reliability/watch.rs`) on every session of every server: no
//!   gap, no duplicate, every server agrees on what a resourceVersion is; a resume from a
//!   resourceVersion inside the server's window is served with exactly the missing events, one
//!   from before the server's last start gets 410 Expired (its watch cache starts at etcd's
//!   revision when it starts, as upstream's cacher).
//!
//! Cycles: `ORCH_CRASH_CYCLES` (default 4, what `.ci/run` runs); the seed is printed and
//! `ORCH_SEED` replays the choices; `ORCH_HISTORY_DUMP=FILE` writes the history and the
//! sessions.
#![cfg(feature = "etcd")]

mod common;
// The etcd process helper of the storage conformance suite (its TLS half is unused here).
#[allow(dead_code)]
#[path = "../orch-apiserver/tests/common/etcd.rs"]
mod etcd;
mod reliability;

use common::{free_port, LogsOnPanic, Split, TestEnv};
use etcd::EtcdServer;
use orch_apiserver::client::HttpClient;
use orch_types::client::Client;
use reliability::history::{History, Output, Recorder};
use reliability::load::{self, cycles, resource, Run, NS};
use reliability::watch::{Session, Window};
use reliability::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The API servers.
const SERVERS: usize = 3;
const CLIENTS: usize = 4;
const WATCHERS: usize = 3;
/// A resourceVersion seen longer ago is no longer a resume point: within this, a server's
/// window (10,000 events) holds it.
const RESUME_HORIZON: Duration = Duration::from_secs(10);

/// `--insecure-http --storage etcd --etcd-servers URL --etcd-prefix /crash`.
fn etcd_flags(url: &str) -> [&str; 7] {
    [
        // Driven with raw HTTP: this test is about storage and restarts, not transport.
        "--insecure-http",
        "--storage",
        "etcd",
        "--etcd-servers",
        url,
        "--etcd-prefix",
        "/crash",
    ]
}

/// One API server as the load sees it.
struct Server {
    client: HttpClient,
    /// Whether it is up (the test clears it just before a kill, sets it once ready).
    up: AtomicBool,
    /// Lives so far (incremented at every restart).
    life: AtomicU64,
    /// The highest resourceVersion anyone observed before its last kill: a resume from below
    /// it is outside the window of its current life.
    before: AtomicU64,
    /// When its current life became ready.
    ready: Mutex<Instant>,
}

/// What the load tasks share with the test.
struct Shared {
    history: History,
    servers: Vec<Server>,
    stop: AtomicBool,
    /// Highest resourceVersion observed so far.
    max_seen: AtomicU64,
    sessions: Mutex<Vec<Session>>,
    /// API errors that are neither an answer the history models nor a 5xx.
    odd: Mutex<Vec<String>>,
}

impl Shared {
    fn saw(&self, rv: u64) {
        self.max_seen.fetch_max(rv, Ordering::SeqCst);
    }

    /// A server that is up, at random; waits while none is.
    async fn pick(&self, rng: &mut Rng) -> Option<usize> {
        while !self.stop.load(Ordering::SeqCst) {
            let up: Vec<usize> = (0..SERVERS)
                .filter(|i| self.servers[*i].up.load(Ordering::SeqCst))
                .collect();
            if !up.is_empty() {
                return Some(up[rng.below(up.len() as u64) as usize]);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

/// One client: a random mix of operations, each through a random server that is up.
async fn client_loop(s: Arc<Shared>, id: usize, mut rng: Rng) {
    let first: &dyn Client = &s.servers[0].client;
    let mut cms = Recorder::new(&s.history, first, resource("configmaps"), NS, id);
    let mut svcs = Recorder::new(&s.history, first, resource("services"), NS, id);
    while let Some(server) = s.pick(&mut rng).await {
        let client: &dyn Client = &s.servers[server].client;
        cms.client = client;
        svcs.client = client;
        let out = load::random_operation(&mut cms, &mut svcs, &mut rng).await;
        if let Output::Ok(v) = &out {
            s.saw(v.rv);
        }
    }
    let mut odd = s.odd.lock().expect("lock");
    odd.extend(cms.odd);
    odd.extend(svcs.odd);
}

/// A resourceVersion a watcher may resume from: where it was seen, and when.
#[derive(Clone, Copy)]
struct Seen {
    rv: u64,
    at: Instant,
    /// A list's resourceVersion (etcd's revision when the list was served), or an event's
    /// from the server `server` in its life `life`.
    origin: Origin,
}

#[derive(Clone, Copy)]
enum Origin {
    /// A consistent list issued at `at`: at or above the start of any server ready before.
    List,
    /// An event from this server in this life: inside that life's window.
    Event { server: usize, life: u64 },
}

/// How a resume from `seen` through `server` must end: served (inside its window), 410
/// (below what was seen before its last kill), or either.
fn window_of(s: &Shared, server: usize, seen: &Seen) -> Window {
    let srv = &s.servers[server];
    if seen.rv < srv.before.load(Ordering::SeqCst) {
        return Window::Outside;
    }
    let inside = match seen.origin {
        Origin::List => seen.at > *srv.ready.lock().expect("lock"),
        Origin::Event { server: from, life } => {
            from == server && life == srv.life.load(Ordering::SeqCst)
        }
    };
    if inside {
        Window::Inside
    } else {
        Window::Either
    }
}

/// One watcher: sessions of random length through a random server, from a fresh list's
/// resourceVersion or from one seen earlier through any server.
async fn watcher(s: Arc<Shared>, id: usize, mut rng: Rng) {
    let cms = resource("configmaps");
    let mut seen: Vec<Seen> = Vec::new();
    while let Some(server) = s.pick(&mut rng).await {
        seen.retain(|x| x.at.elapsed() < RESUME_HORIZON);
        let srv = &s.servers[server];
        let life = srv.life.load(Ordering::SeqCst);
        let (start, window) = if rng.below(10) < 6 && !seen.is_empty() {
            let x = seen[rng.below(seen.len() as u64) as usize];
            (x.rv, window_of(&s, server, &x))
        } else {
            let at = Instant::now();
            match srv.client.list(&cms, Some(NS), &Default::default()).await {
                Ok(l) => match l.metadata.resource_version.and_then(|r| r.parse().ok()) {
                    Some(rv) => {
                        let x = Seen {
                            rv,
                            at,
                            origin: Origin::List,
                        };
                        seen.push(x);
                        (rv, window_of(&s, server, &x))
                    }
                    None => continue,
                },
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        };
        if srv.life.load(Ordering::SeqCst) != life || !srv.up.load(Ordering::SeqCst) {
            // A restart between choosing and watching: the label may be wrong.
            continue;
        }
        let length = Duration::from_millis(300 + rng.below(2500));
        let session = load::watch_session(&srv.client, id, (start, window), length, |e| {
            if e.kind != "BOOKMARK" {
                seen.push(Seen {
                    rv: e.rv,
                    at: Instant::now(),
                    origin: Origin::Event { server, life },
                });
            }
            s.saw(e.rv);
        })
        .await;
        let Some(session) = session else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        s.sessions.lock().expect("lock").push(session);
    }
}

/// One API server process and what it needs to be restarted the same.
struct Process {
    env: TestEnv,
    listen: String,
    split: Option<Split>,
}

impl Process {
    fn start(&mut self, name: &str, etcd_url: &str) {
        self.split = Some(Split::apiserver_on(
            &self.env,
            name,
            &self.listen,
            &etcd_flags(etcd_url),
        ));
    }

    fn kill9(&mut self, name: &str) {
        if let Some(mut split) = self.split.take() {
            split.proc(name).assert_running();
            split.proc(name).kill9();
        }
    }
}

fn name_of(i: usize) -> String {
    format!("apiserver-{i}")
}

#[test]
fn crash_restart_of_api_servers_on_etcd_keeps_acknowledged_writes() {
    let seed = Rng::seed_from_env();
    eprintln!("reliability_crash_etcd: seed {seed} (ORCH_SEED={seed} replays the choices)");
    let mut rng = Rng::new(seed);
    let cycles = cycles();
    let etcd_env = TestEnv::new();
    let etcd = tokio::runtime::Runtime::new()
        .expect("a runtime to start etcd")
        .block_on(EtcdServer::start(etcd_env.path()));
    let mut procs: Vec<Process> = (0..SERVERS)
        .map(|_| Process {
            env: TestEnv::new(),
            listen: format!("127.0.0.1:{}", free_port()),
            split: None,
        })
        .collect();
    let mut dirs = vec![etcd_env.path().to_path_buf()];
    dirs.extend(procs.iter().map(|p| p.env.path().to_path_buf()));
    let _logs = LogsOnPanic(dirs);
    for (i, p) in procs.iter_mut().enumerate() {
        p.start(&name_of(i), &etcd.url);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let servers = procs
        .iter()
        .map(|p| Server {
            client: HttpClient::new(&format!("http://{}", p.listen)),
            up: AtomicBool::new(true),
            life: AtomicU64::new(0),
            before: AtomicU64::new(0),
            ready: Mutex::new(Instant::now()),
        })
        .collect();
    let shared = Arc::new(Shared {
        history: History::new(),
        servers,
        stop: AtomicBool::new(false),
        max_seen: AtomicU64::new(0),
        sessions: Mutex::new(Vec::new()),
        odd: Mutex::new(Vec::new()),
    });
    // The Services exist from the start (their status is what the clients write).
    rt.block_on(load::create_services(
        &shared.history,
        &shared.servers[0].client,
    ));
    let mut tasks = Vec::new();
    for id in 1..=CLIENTS {
        tasks.push(rt.spawn(client_loop(shared.clone(), id, rng.fork())));
    }
    for id in 0..WATCHERS {
        tasks.push(rt.spawn(watcher(shared.clone(), id, rng.fork())));
    }

    let started = Instant::now();
    for cycle in 1..=cycles {
        let load = Duration::from_millis(500 + rng.below(2000));
        std::thread::sleep(load);
        let victims: Vec<usize> = if cycle % 4 == 0 {
            (0..SERVERS).collect()
        } else {
            vec![rng.below(SERVERS as u64) as usize]
        };
        for &v in &victims {
            let srv = &shared.servers[v];
            srv.up.store(false, Ordering::SeqCst);
            srv.before
                .store(shared.max_seen.load(Ordering::SeqCst), Ordering::SeqCst);
            srv.life.fetch_add(1, Ordering::SeqCst);
            procs[v].kill9(&name_of(v));
        }
        // The others carry the load for a while.
        std::thread::sleep(Duration::from_millis(rng.below(1000)));
        for &v in &victims {
            procs[v].start(&name_of(v), &etcd.url);
            let srv = &shared.servers[v];
            *srv.ready.lock().expect("lock") = Instant::now();
            srv.up.store(true, Ordering::SeqCst);
        }
        eprintln!(
            "cycle {cycle}/{cycles}: killed {victims:?} after {load:?} of load, back up ({} \
             operations so far)",
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

    // The final state, read through each server with no write in flight (also part of the
    // history): every server answers the same.
    let mut final_state = BTreeMap::new();
    for server in 0..SERVERS {
        let c = &shared.servers[server].client;
        let state = rt.block_on(load::final_state(&shared.history, c, seed));
        if server > 0 {
            assert_eq!(state, final_state, "seed {seed}: server {server} disagrees");
        }
        final_state = state;
    }
    let ops = shared.history.operations();
    let sessions: Vec<Session> = shared.sessions.lock().expect("lock").clone();
    let odd = shared.odd.lock().expect("lock").clone();
    load::judge(&Run {
        name: "reliability_crash_etcd",
        seed,
        cycles,
        elapsed: started.elapsed(),
        ops: &ops,
        final_state: &final_state,
        sessions: &sessions,
        odd: &odd,
    });
    drop(procs);
}
