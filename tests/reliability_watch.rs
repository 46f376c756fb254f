//! The watch validator against many concurrent HTTP watchers (issue 21): an API server on the
//! embedded store with a small watch window (200 events per resource), bookmarks after 300 ms
//! idle and compaction every second, served over real sockets; three writers create, update and
//! delete ConfigMaps (pausing now and then so idle watches get bookmarks); six watchers open
//! sessions from random starts — a fresh list, a resourceVersion seen a few events ago (inside
//! the window: exactly the missing events), one many window-lengths ago (outside: 410 Expired),
//! one from before a restart (outside: 410) — while the server is restarted twice on the same
//! data dir. Then `tests/reliability/watch.rs` validates every session against every other and
//! against the acknowledged writes, the history is checked for linearizability, and a list at
//! an exact resourceVersion older than the compacted revision answers 410 Expired.
//!
//! The server is in-process (`orch_apiserver::serve`, plain HTTP) so that the window, the
//! bookmark interval and the compaction interval can be small; crashes of the whole `orch up`
//! are `tests/reliability_crash.rs`'s business.

mod reliability;

use orch_apiserver::client::HttpClient;
use orch_apiserver::{serve, ApiServer, ApiServerConfig};
use orch_types::client::{Client, ListParams, VersionMatch, WatchParams};
use orch_types::registry::{self, ApiResource};
use orch_types::DynamicObject;
use reliability::history::{check_linearizable, History, Output, Recorder};
use reliability::load;
use reliability::watch::{self, Session, Window};
use reliability::Rng;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const NS: &str = "default";
const WINDOW: usize = 200;
const KEYS: u64 = 8;
const WRITERS: usize = 3;
const WATCHERS: usize = 6;
const RESTARTS: usize = 2;

fn configmaps() -> ApiResource {
    registry::by_name("configmaps")[0].api_resource()
}

/// A running in-process API server.
struct Server {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(dir: &Path) -> Server {
    let config = ApiServerConfig {
        watch_window: WINDOW,
        bookmark_interval: Duration::from_millis(300),
        compaction_interval: Some(Duration::from_secs(1)),
        ..ApiServerConfig::embedded(dir)
    };
    // The previous server's store may take a moment to close its file.
    let mut tries = 0;
    let api = loop {
        match ApiServer::open(config.clone()).await {
            Ok(api) => break api,
            Err(_) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reopen the store: {e}"),
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = serve(api, listener, async move {
            let _ = rx.await;
        })
        .await;
    });
    Server { url, stop, task }
}

struct Shared {
    history: History,
    /// The current server's client (replaced at each restart).
    client: RwLock<Arc<HttpClient>>,
    stop: AtomicBool,
    /// Writers hold off while this is set (idle periods: bookmarks).
    quiet: AtomicBool,
    epoch: AtomicU64,
    before_epoch: AtomicU64,
    max_seen: AtomicU64,
    sessions: Mutex<Vec<Session>>,
}

impl Shared {
    fn client(&self) -> Arc<HttpClient> {
        self.client.read().expect("lock").clone()
    }
}

async fn writer(s: Arc<Shared>, id: usize, mut rng: Rng) {
    // Values stay unique across the recorders of successive servers.
    let mut seq = 0;
    while !s.stop.load(Ordering::SeqCst) {
        if s.quiet.load(Ordering::SeqCst) {
            // ConfigMap watches go idle; writes of another resource move the store on, which
            // is what their bookmarks report (one only when it is past the last event).
            if id == 1 {
                seq += 1;
                let secret = DynamicObject::new("v1", "Secret", &format!("tick-{seq}"));
                let secrets = registry::by_name("secrets")[0].api_resource();
                let _ = s
                    .client()
                    .create(&secrets, Some(NS), &secret, &Default::default())
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let client = s.client();
        let c: &dyn Client = &*client;
        let mut r = Recorder::new(&s.history, c, configmaps(), NS, id);
        r.seq = seq;
        let name = format!("cm-{}", rng.below(KEYS));
        let out = match rng.below(10) {
            0..3 => {
                r.create(&DynamicObject::new("v1", "ConfigMap", &name))
                    .await
            }
            3..8 => match r.read(&name).await {
                Some(cur) => r.update(&cur).await,
                None => Output::NotFound,
            },
            _ => r.delete(&name, None).await,
        };
        seq = r.seq;
        match out {
            Output::Ok(v) => {
                s.max_seen.fetch_max(v.rv, Ordering::SeqCst);
            }
            Output::Unknown => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => {}
        }
    }
}

async fn watcher(s: Arc<Shared>, id: usize, mut rng: Rng) {
    let cms = configmaps();
    let mut life: (u64, Vec<u64>) = (0, Vec::new());
    let mut old: Vec<u64> = Vec::new();
    while !s.stop.load(Ordering::SeqCst) {
        let epoch = s.epoch.load(Ordering::SeqCst);
        if epoch != life.0 {
            old.append(&mut life.1);
            life.0 = epoch;
        }
        let client = s.client();
        let latest = life.1.iter().copied().max().unwrap_or(0);
        let before = s.before_epoch.load(Ordering::SeqCst);
        let pick = |rng: &mut Rng, v: &[u64]| v[rng.below(v.len() as u64) as usize];
        let choice = rng.below(10);
        let (start, window) = if choice < 1 && !old.is_empty() {
            let rv = pick(&mut rng, &old);
            (
                rv,
                if rv < before {
                    Window::Outside
                } else {
                    Window::Either
                },
            )
        } else if choice < 6 && !life.1.is_empty() {
            let rv = pick(&mut rng, &life.1);
            // All writes of this server are ConfigMap writes: fewer than 150 revisions since
            // is fewer than 150 events, inside the 200 of the window; more than 400 is outside.
            let w = match latest.saturating_sub(rv) {
                0..150 => Window::Inside,
                400.. => Window::Outside,
                _ => Window::Either,
            };
            (rv, w)
        } else {
            match client.list(&cms, Some(NS), &ListParams::default()).await {
                Ok(l) => match l.metadata.resource_version.and_then(|r| r.parse().ok()) {
                    Some(rv) => {
                        if s.epoch.load(Ordering::SeqCst) == epoch {
                            life.1.push(rv);
                        }
                        (rv, Window::Inside)
                    }
                    None => continue,
                },
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        };
        let p = WatchParams {
            resource_version: Some(start.to_string()),
            allow_bookmarks: true,
            ..Default::default()
        };
        let mut session = load::session(id, start, window);
        let opened = client.watch(&cms, Some(NS), &p).await;
        if s.epoch.load(Ordering::SeqCst) != epoch {
            // Answered by another server than the label was made for.
            continue;
        }
        match opened {
            Err(e) => match load::refused(&e) {
                Some(end) => session.end = end,
                None => continue,
            },
            Ok(stream) => {
                let until = Instant::now() + Duration::from_millis(200 + rng.below(2000));
                load::follow(stream, &mut session, until, |e| {
                    if s.epoch.load(Ordering::SeqCst) == epoch {
                        life.1.push(e.rv);
                    }
                    s.max_seen.fetch_max(e.rv, Ordering::SeqCst);
                })
                .await;
            }
        }
        s.sessions.lock().expect("lock").push(session);
    }
}

#[test]
fn watchers_across_restarts_and_compaction_get_every_event_once() {
    let seed = Rng::seed_from_env();
    eprintln!("reliability_watch: seed {seed} (ORCH_SEED={seed} replays the choices)");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut server = rt.block_on(start(dir.path()));
    let shared = Arc::new(Shared {
        history: History::new(),
        client: RwLock::new(Arc::new(HttpClient::new(&server.url))),
        stop: AtomicBool::new(false),
        quiet: AtomicBool::new(false),
        epoch: AtomicU64::new(0),
        before_epoch: AtomicU64::new(0),
        max_seen: AtomicU64::new(0),
        sessions: Mutex::new(Vec::new()),
    });
    let mut tasks = Vec::new();
    for id in 1..=WRITERS {
        tasks.push(rt.spawn(writer(shared.clone(), id, rng.fork())));
    }
    for id in 0..WATCHERS {
        tasks.push(rt.spawn(watcher(shared.clone(), id, rng.fork())));
    }
    let started = Instant::now();
    for round in 0..=RESTARTS {
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(1500 + rng.below(1000)));
            // Idle for a while: watches get bookmarks.
            shared.quiet.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(800));
            shared.quiet.store(false, Ordering::SeqCst);
        }
        if round == RESTARTS {
            break;
        }
        shared
            .before_epoch
            .store(shared.max_seen.load(Ordering::SeqCst), Ordering::SeqCst);
        shared.epoch.fetch_add(1, Ordering::SeqCst);
        server = rt.block_on(async {
            let _ = server.stop.send(());
            let _ = server.task.await;
            start(dir.path()).await
        });
        *shared.client.write().expect("lock") = Arc::new(HttpClient::new(&server.url));
    }
    shared.stop.store(true, Ordering::SeqCst);
    rt.block_on(async {
        for t in tasks {
            t.await.expect("task");
        }
    });

    let ops = shared.history.operations();
    let committed = load::committed(&ops);
    let sessions = shared.sessions.lock().expect("lock").clone();
    let report = watch::validate(&sessions, &committed);
    let lin = check_linearizable(&ops, Duration::from_secs(30));
    let inside = sessions
        .iter()
        .filter(|s| s.window == Window::Inside)
        .count();
    let outside = sessions
        .iter()
        .filter(|s| s.window == Window::Outside)
        .count();
    eprintln!(
        "reliability_watch: seed {seed}, {RESTARTS} restarts in {:?}: {} sessions ({inside} \
         inside the window, {outside} outside), {} events, {} bookmarks, {} expired, {} \
         violations; {} writes acknowledged; linearizability: {} keys, {} operations, {} \
         illegal, in {:?}",
        started.elapsed(),
        report.sessions,
        report.events,
        report.bookmarks,
        report.expired,
        report.violations.len(),
        committed.len(),
        lin.partitions,
        lin.operations,
        lin.illegal.len(),
        lin.elapsed,
    );
    assert!(
        report.violations.is_empty(),
        "seed {seed}: watch violations:\n{}",
        report.violations.join("\n")
    );
    assert!(lin.ok(), "seed {seed}: {:?} {:?}", lin.illegal, lin.unknown);
    assert!(
        inside > 0 && outside > 0 && report.bookmarks > 0 && report.expired > 0,
        "seed {seed}: the run did not exercise resumes inside and outside the window and \
         bookmarks: {report:?}"
    );

    // Compacted history: a list at an exact old resourceVersion is 410 Expired.
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let client = shared.client();
        let p = ListParams {
            resource_version: Some(committed[0].rv.to_string()),
            resource_version_match: Some(VersionMatch::Exact),
            ..Default::default()
        };
        match client.list(&configmaps(), Some(NS), &p).await {
            Err(e) => assert_eq!(e.api().map(|a| a.code), Some(410), "{e}"),
            Ok(l) => panic!("a compacted revision was listed: {:?}", l.metadata),
        }
        let _ = server.stop.send(());
        let _ = server.task.await;
    });
}
