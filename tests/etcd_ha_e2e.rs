//! High availability on etcd (cargo feature `etcd`), with real processes and real kubectl:
//!
//! 1. Control-plane failover across API servers: two `orch apiserver` processes (A and B) on one
//!    etcd; a scheduler and a controller manager on each (leader-elected on the Leases
//!    `kube-system/kube-scheduler` and `kube-system/kube-controller-manager`, with short lease
//!    durations); a kubelet on B. A Deployment created through A becomes Available with its pods
//!    Running, scheduled and created by the leaders on A. Then A and its components are killed
//!    with SIGKILL, during a write load through both: through B, the components on B take the
//!    Leases over, every create acknowledged through either API server is there, a scale-up gets
//!    new pods created, scheduled and Running, every object created before the kill is still
//!    there with its UID, and the Deployment journey of the concepts tour
//!    (`tests/common/journey.rs`) runs through B.
//! 2. Watch across API servers during load (before the kill): while two writers create
//!    ConfigMaps through A's HTTP API, a watch through B's HTTP API, opened at a list's
//!    resourceVersion, delivers every acknowledged create once, with its UID and
//!    resourceVersion, in strictly increasing resourceVersion order.
//! 3. An etcd member killed during load: one API server on a three-member etcd cluster; writers
//!    create ConfigMaps through it while the etcd leader member is killed with SIGKILL. The API
//!    server keeps serving (writes succeed again within seconds) and every create answered
//!    `201 Created` is listed afterwards with the same UID and resourceVersion.
#![cfg(feature = "etcd")]

mod common;
// The etcd process helper of the storage conformance suite (its TLS half is unused here).
#[allow(dead_code)]
#[path = "../orch-apiserver/tests/common/etcd.rs"]
mod etcd;

use common::{journey, wait_for, LogsOnPanic, Split, TestEnv};
use etcd::{EtcdCluster, EtcdServer};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The tests start many processes on a small machine: one at a time, so that the failover
/// timings they check are not those of a starved machine.
static SERIAL: Mutex<()> = Mutex::new(());

/// Short leader election timings, so a takeover happens within seconds.
const LEADER_ELECT: [&str; 3] = [
    "--leader-elect-lease-duration=4s",
    "--leader-elect-renew-deadline=3s",
    "--leader-elect-retry-period=1s",
];

/// The Deployment of part 1: a shell loop, ready at once.
const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: web
          image: busybox:1.36
          command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
          readinessProbe:
            exec:
              command: ["true"]
            periodSeconds: 1
"#;

/// `--insecure-http --storage etcd --etcd-servers URLS --etcd-prefix /ha`.
fn etcd_flags(urls: &str) -> [&str; 7] {
    [
        // Two API servers with their own data dirs (so their own PKIs), driven with raw
        // HTTP: this test is about storage failover, not transport.
        "--insecure-http",
        "--storage",
        "etcd",
        "--etcd-servers",
        urls,
        "--etcd-prefix",
        "/ha",
    ]
}

/// Starts `orch scheduler` and `orch controller-manager` against `split`'s API server, with the
/// Lease identities `scheduler-SUFFIX` and `controller-manager-SUFFIX`.
fn control_plane(split: &mut Split, env: &TestEnv, suffix: &str) {
    for component in ["scheduler", "controller-manager"] {
        let name = format!("{component}-{suffix}");
        let mut args = vec!["--identity", &name];
        args.extend_from_slice(&LEADER_ELECT);
        split.component(env, &name, component, &args);
    }
}

/// `spec.holderIdentity` of the Lease `kube-system/NAME`, through `env`'s API server.
fn lease_holder(env: &TestEnv, name: &str) -> Result<String, String> {
    let lease = env.get_json(&["lease", "-n", "kube-system", name])?;
    lease["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no holder: {lease}"))
}

/// Waits until both Leases are held by the components with identity suffix `suffix`.
fn wait_leaders(env: &TestEnv, suffix: &str, timeout: Duration) {
    for (lease, component) in [
        ("kube-scheduler", "scheduler"),
        ("kube-controller-manager", "controller-manager"),
    ] {
        let want = format!("{component}-{suffix}");
        wait_for(
            &format!("{want} to hold the Lease {lease}"),
            timeout,
            || {
                let holder = lease_holder(env, lease)?;
                if holder == want {
                    Ok(())
                } else {
                    Err(format!("held by {holder}"))
                }
            },
        );
    }
}

/// `KIND NAMESPACE/NAME` → UID of every object of these kinds, through `env`'s API server.
fn uids_by_key(env: &TestEnv, kinds: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for kind in kinds {
        let items = env
            .get_items(&[kind, "--all-namespaces"])
            .unwrap_or_else(|e| panic!("list {kind}: {e}"));
        for i in items {
            let m = &i["metadata"];
            let key = format!(
                "{kind} {}/{}",
                m["namespace"].as_str().unwrap_or(""),
                m["name"].as_str().unwrap_or("?")
            );
            out.insert(key, m["uid"].as_str().unwrap_or("").to_string());
        }
    }
    out
}

/// An HTTP agent that returns error statuses as responses, with a deadline per request.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `POST /api/v1/namespaces/NS/configmaps` on `addr`: `Ok((uid, resourceVersion))` on
/// `201 Created`, else what happened.
fn create_configmap(
    agent: &ureq::Agent,
    addr: SocketAddr,
    ns: &str,
    name: &str,
) -> Result<(String, u64), String> {
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"name": name},
    });
    let mut resp = agent
        .post(&format!("http://{addr}/api/v1/namespaces/{ns}/configmaps"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    if status != 201 {
        return Err(format!("{status}: {text}"));
    }
    let obj: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    Ok((
        obj["metadata"]["uid"].as_str().unwrap_or("").to_string(),
        rv(&obj),
    ))
}

/// `metadata.resourceVersion` as a number (orch's are etcd revisions).
fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion: {obj}"))
}

/// Acknowledged creates: name → (UID, resourceVersion).
type Acked = BTreeMap<String, (String, u64)>;

/// Part 2: a watch through B opened at a list's resourceVersion sees every create that two
/// writers made through A, once each, in strictly increasing resourceVersion order.
fn watch_through_b_sees_creates_through_a(a: &TestEnv, a_addr: SocketAddr, b_addr: SocketAddr) {
    const NS: &str = "watch-load";
    const PER_WRITER: usize = 60;
    a.kubectl(&["create", "namespace", NS]);
    let list: Value = agent(Duration::from_secs(10))
        .get(&format!(
            "http://{b_addr}/api/v1/namespaces/{NS}/configmaps"
        ))
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("{e}: {t}")))
        .expect("list configmaps through B");
    let from = rv(&list);
    // The watch: each event as (type, name, uid, resourceVersion), read on its own thread.
    let watch = agent(Duration::from_secs(90))
        .get(&format!(
            "http://{b_addr}/api/v1/namespaces/{NS}/configmaps?watch=true\
             &resourceVersion={from}&timeoutSeconds=60"
        ))
        .call()
        .expect("open the watch through B");
    assert_eq!(watch.status().as_u16(), 200, "watch through B");
    let (tx, events) = mpsc::channel();
    let body = watch.into_body().into_reader();
    std::thread::spawn(move || {
        for line in BufReader::new(body).lines().map_while(Result::ok) {
            let Ok(ev) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let o = &ev["object"];
            let item = (
                ev["type"].as_str().unwrap_or("").to_string(),
                o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                o["metadata"]["uid"].as_str().unwrap_or("").to_string(),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0),
            );
            if tx.send(item).is_err() {
                break;
            }
        }
    });

    let writers: Vec<_> = (0..2)
        .map(|w| {
            std::thread::spawn(move || {
                let agent = agent(Duration::from_secs(10));
                let mut acked = Acked::new();
                for n in 0..PER_WRITER {
                    let name = format!("w{w}-{n:03}");
                    let got = create_configmap(&agent, a_addr, NS, &name)
                        .unwrap_or_else(|e| panic!("create {name} through A: {e}"));
                    acked.insert(name, got);
                }
                acked
            })
        })
        .collect();
    let mut acked = Acked::new();
    for w in writers {
        acked.extend(w.join().expect("a writer panicked"));
    }

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The root-ca-cert-publisher controller writes its own ConfigMap into every namespace:
    // only the writers' objects count.
    let ours =
        |ev: &(String, String, String, u64)| ev.0 != "BOOKMARK" && ev.1 != "kube-root-ca.crt";
    while seen.len() < acked.len() && Instant::now() < deadline {
        if let Ok(ev) = events.recv_timeout(Duration::from_millis(200)) {
            if ours(&ev) {
                seen.push(ev);
            }
        }
    }
    // Anything more would be a duplicate.
    while let Ok(ev) = events.recv_timeout(Duration::from_secs(1)) {
        if ours(&ev) {
            seen.push(ev);
        }
    }
    let rvs: Vec<u64> = seen.iter().map(|e| e.3).collect();
    assert!(
        rvs.windows(2).all(|w| w[0] < w[1]),
        "the watch through B delivers in strictly increasing resourceVersion order, once \
         each: {seen:?}"
    );
    assert!(
        seen.iter().all(|e| e.0 == "ADDED"),
        "only ADDED events: {seen:?}"
    );
    let watched: Acked = seen
        .into_iter()
        .map(|(_, name, uid, rv)| (name, (uid, rv)))
        .collect();
    assert_eq!(
        watched.len(),
        acked.len(),
        "the watch through B delivered {} creates of the {} acknowledged through A",
        watched.len(),
        acked.len()
    );
    assert_eq!(
        watched, acked,
        "the watch through B delivers every create through A with its UID and resourceVersion"
    );
    eprintln!(
        "part 2: the watch through B delivered all {} creates through A",
        acked.len()
    );
}

/// A writer of the kill-under-load check: creates ConfigMaps `TAG-N` in `ns` through `addr`,
/// about a hundred a second, until `stop`, each with a 3 s deadline; returns its acknowledged
/// creates and when the last one was acknowledged.
fn writer(
    addr: SocketAddr,
    ns: &'static str,
    tag: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Acked, Option<Instant>)> {
    std::thread::spawn(move || {
        let agent = agent(Duration::from_secs(3));
        let (mut acked, mut last) = (Acked::new(), None);
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            let name = format!("{tag}-{n:05}");
            n += 1;
            match create_configmap(&agent, addr, ns, &name) {
                Ok(got) => {
                    acked.insert(name, got);
                    last = Some(Instant::now());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(40)),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (acked, last)
    })
}

#[test]
fn control_plane_fails_over_from_one_api_server_to_the_other() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let (a, b) = (TestEnv::new(), TestEnv::new());
    let etcd = tokio::runtime::Runtime::new()
        .expect("a runtime to start etcd")
        .block_on(EtcdServer::start(a.path()));
    let _logs = LogsOnPanic(vec![a.path().to_path_buf(), b.path().to_path_buf()]);
    let mut split_a = Split::apiserver_with(&a, "apiserver-a", &etcd_flags(&etcd.url));
    let mut split_b = Split::apiserver_with(&b, "apiserver-b", &etcd_flags(&etcd.url));

    // The components on A start first and lead; those on B wait behind them.
    control_plane(&mut split_a, &a, "a");
    wait_leaders(&a, "a", Duration::from_secs(60));
    control_plane(&mut split_b, &b, "b");
    split_b.kubelet(&b, "node-1");
    a.wait_nodes_ready(1, journey::T);

    // Through A: a Deployment, Available with its pods Running, on the node of the kubelet
    // that talks to B.
    a.apply(DEPLOYMENT);
    let out = a.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = journey::wait_ready_pods(&a, "app=web", 2);
    for p in &pods {
        assert_eq!(p["spec"]["nodeName"], "node-1", "{p}");
    }
    let dep = a.get_json(&["deployment", "web"]).expect("get deployment");
    assert_eq!(common::condition(&dep, "Available"), Some("True"), "{dep}");
    a.kubectl(&["create", "configmap", "before-kill", "--from-literal=k=v"]);
    // Still led from A (the Leases were renewed through A all along).
    wait_leaders(&a, "a", Duration::from_secs(5));
    let transitions = |env: &TestEnv, lease: &str| {
        env.get_json(&["lease", "-n", "kube-system", lease])
            .map(|l| l["spec"]["leaseTransitions"].as_i64().unwrap_or(0))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let transitions_before = transitions(&a, "kube-scheduler");

    // Part 2, while the cluster runs: a watch through B during writes through A.
    watch_through_b_sees_creates_through_a(&a, split_a.addr, split_b.addr);

    let kinds = [
        "namespaces",
        "nodes",
        "deployments",
        "replicasets",
        "pods",
        "configmaps",
        "leases",
        "services",
    ];
    let before = uids_by_key(&a, &kinds);
    let pod_uids_before = journey::uids(&pods);

    // Kill A and everything connected to it, under a write load through both API servers.
    const LOAD_NS: &str = "kill-load";
    a.kubectl(&["create", "namespace", LOAD_NS]);
    let stop = Arc::new(AtomicBool::new(false));
    let through_a = writer(split_a.addr, LOAD_NS, "a", stop.clone());
    let through_b = writer(split_b.addr, LOAD_NS, "b", stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    for p in &mut split_a.procs {
        p.kill9();
    }
    let killed_at = Instant::now();
    eprintln!("killed apiserver-a, scheduler-a and controller-manager-a");

    // Through B: the components on B take the Leases over.
    wait_leaders(&b, "b", Duration::from_secs(30));
    eprintln!(
        "the Leases were taken over {:?} after the kill",
        killed_at.elapsed()
    );
    assert!(
        transitions(&b, "kube-scheduler") > transitions_before,
        "a takeover counts as a Lease transition"
    );

    // The load: writes through B went on after the kill, and every create acknowledged
    // through either API server is there with its UID and resourceVersion.
    stop.store(true, Ordering::SeqCst);
    let (acked_a, _) = through_a.join().expect("the writer through A panicked");
    let (acked_b, last_b) = through_b.join().expect("the writer through B panicked");
    assert!(
        last_b.is_some_and(|t| t > killed_at),
        "creates through B were acknowledged after A's kill"
    );
    let listed: Acked = b
        .get_items(&["configmaps", "-n", LOAD_NS])
        .expect("list the load's ConfigMaps through B")
        .iter()
        .map(|o| {
            let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
            let uid = o["metadata"]["uid"].as_str().unwrap_or("").to_string();
            (name, (uid, rv(o)))
        })
        .collect();
    let lost: Vec<_> = acked_a
        .iter()
        .chain(&acked_b)
        .filter(|(name, got)| listed.get(*name) != Some(got))
        .map(|(name, _)| name)
        .collect();
    assert!(lost.is_empty(), "acknowledged creates lost: {lost:?}");
    eprintln!(
        "the load: {} creates acknowledged through A before its kill, {} through B; none lost",
        acked_a.len(),
        acked_b.len()
    );

    // Every object created before the kill is still there, with its UID.
    let after = uids_by_key(&b, &kinds);
    let missing: Vec<_> = before
        .iter()
        .filter(|(k, uid)| after.get(*k) != Some(uid))
        .map(|(k, uid)| format!("{k} (uid {uid}, now {:?})", after.get(k)))
        .collect();
    assert!(
        missing.is_empty(),
        "objects created before the kill are gone or were recreated: {missing:?}"
    );

    // A scale-up through B: the controller manager on B creates the pods, the scheduler on B
    // binds them, the kubelet runs them.
    b.kubectl(&["scale", "deployment", "web", "--replicas=4"]);
    let out = b.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = journey::wait_ready_pods(&b, "app=web", 4);
    let new: Vec<&Value> = pods
        .iter()
        .filter(|p| !pod_uids_before.contains(p["metadata"]["uid"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(new.len(), 2, "two new pods: {}", common::summarize(&pods));
    for p in new {
        assert_eq!(p["spec"]["nodeName"], "node-1", "scheduled: {p}");
    }
    let dep = b.get_json(&["deployment", "web"]).expect("get deployment");
    assert_eq!(common::condition(&dep, "Available"), Some("True"), "{dep}");
    assert_eq!(dep["status"]["availableReplicas"], 4, "{dep}");
    for p in &mut split_b.procs {
        p.assert_running();
    }
    assert_eq!(
        dep["metadata"]["uid"].as_str(),
        Some(before["deployments default/web"].as_str()),
        "the Deployment kept its UID"
    );
    // The concepts journey of Deployments (rollout, rolling update, rollback, scaling) through
    // B, run by the control plane that took over.
    let t1 = Instant::now();
    journey::deployment_journey(&b);
    eprintln!("the Deployment journey through B took {:?}", t1.elapsed());
    eprintln!("part 1 and 2 took {:?}", t0.elapsed());
}

/// What one writer of part 3 saw.
#[derive(Default)]
struct Writes {
    acked: Acked,
    failed: Vec<(Instant, String)>,
    last_ack: Option<Instant>,
}

#[test]
fn api_server_survives_the_etcd_leader_member_being_killed() {
    /// How long the API server may take to serve writes again after the kill.
    const RECOVERY: Duration = Duration::from_secs(5);
    /// How long the writers go on after the kill.
    const LOAD_AFTER_KILL: Duration = Duration::from_secs(8);
    const NS: &str = "load";
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new();
    let rt = tokio::runtime::Runtime::new().expect("a runtime for the etcd helper");
    let mut cluster = rt.block_on(EtcdCluster::start(env.path()));
    let _logs = LogsOnPanic(vec![env.path().to_path_buf()]);
    let urls = cluster.urls().join(",");
    let mut split = Split::apiserver_with(&env, "apiserver", &etcd_flags(&urls));
    let addr = split.addr;
    env.kubectl(&["create", "namespace", NS]);

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // A create not answered within 3 s counts as not acknowledged.
                let agent = agent(Duration::from_secs(3));
                let mut out = Writes::default();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let name = format!("w{w}-{n:05}");
                    n += 1;
                    match create_configmap(&agent, addr, NS, &name) {
                        Ok(got) => {
                            out.acked.insert(name, got);
                            out.last_ack = Some(Instant::now());
                        }
                        Err(e) => {
                            out.failed.push((Instant::now(), e));
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
                out
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let leader = rt
        .block_on(cluster.leader())
        .unwrap_or_else(|| panic!("no etcd leader\n{}", cluster.logs()));
    cluster.members[leader].kill();
    let killed_at = Instant::now();
    std::thread::sleep(LOAD_AFTER_KILL);
    stop.store(true, Ordering::SeqCst);
    let (mut acked, mut failed, mut last_acks) = (Acked::new(), Vec::new(), Vec::new());
    for w in writers {
        let w = w.join().expect("a writer panicked");
        acked.extend(w.acked);
        failed.extend(w.failed);
        last_acks.push(w.last_ack);
    }
    let since_kill = |t: &Instant| t.saturating_duration_since(killed_at);
    let last_failure = failed.iter().map(|f| f.0).max();
    eprintln!(
        "killed etcd member m{leader} (the leader); {} creates acknowledged, {} not, the last \
         failure {:?} after the kill: {:?}",
        acked.len(),
        failed.len(),
        last_failure.as_ref().map(since_kill),
        failed.iter().map(|f| &f.1).collect::<BTreeSet<_>>()
    );
    split.proc("apiserver").assert_running();
    assert!(
        last_failure
            .as_ref()
            .map(since_kill)
            .is_none_or(|t| t < RECOVERY),
        "creates still failed {:?} after the kill (allowed: {RECOVERY:?})",
        last_failure.as_ref().map(since_kill)
    );
    let last_failure = last_failure.unwrap_or(killed_at).max(killed_at);
    for (w, last_ack) in last_acks.iter().enumerate() {
        assert!(
            last_ack.is_some_and(|t| t > last_failure),
            "writer {w} had no create acknowledged after the failover"
        );
    }

    // Every acknowledged create is listed with its UID and resourceVersion; a create that was
    // not acknowledged may have been stored too.
    let items = env
        .get_items(&["configmaps", "-n", NS])
        .unwrap_or_else(|e| panic!("list after the failover: {e}"));
    let stored: Acked = items
        .iter()
        .map(|i| {
            let m = &i["metadata"];
            (
                m["name"].as_str().unwrap_or("").to_string(),
                (m["uid"].as_str().unwrap_or("").to_string(), rv(i)),
            )
        })
        .collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|(name, got)| stored.get(*name) != Some(got))
        .map(|(name, got)| format!("{name} {got:?}, listed as {:?}", stored.get(name)))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged creates lost or changed after the etcd leader was killed: {lost:?}"
    );
    // And each is readable on its own.
    for name in acked.keys().step_by(25) {
        let uid = env.kubectl(&[
            "get",
            "configmap",
            "-n",
            NS,
            name,
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        assert_eq!(uid, acked[name].0, "configmap {name}");
    }
    eprintln!(
        "{} acknowledged creates all listed; {} more were stored without an acknowledgement",
        acked.len(),
        stored.len() - acked.len()
    );
}

/// A CRD applied through one API server is served by the other sharing its etcd, objects
/// written through either are defaulted by the same schema, a restarted API server serves it
/// from its first answer, and deleting the CRD through one removes it from both.
#[test]
fn a_crd_is_served_by_every_api_server_and_after_a_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (TestEnv::new(), TestEnv::new());
    let etcd = tokio::runtime::Runtime::new()
        .expect("a runtime to start etcd")
        .block_on(EtcdServer::start(a.path()));
    let _logs = LogsOnPanic(vec![a.path().to_path_buf(), b.path().to_path_buf()]);
    let _split_a = Split::apiserver_with(&a, "apiserver-a", &etcd_flags(&etcd.url));
    let mut split_b = Split::apiserver_with(&b, "apiserver-b", &etcd_flags(&etcd.url));
    let crd = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/crd/backup-crd.yaml");
    a.kubectl(&["apply", "-f", crd]);
    wait_for("B to serve backups", Duration::from_secs(10), || {
        b.kubectl_try(&["get", "backups"])
    });
    b.apply("apiVersion: ops.example.org/v1\nkind: Backup\nmetadata: {name: nightly}\nspec: {database: orders}\n");
    let through_a = a.get_json(&["backup", "nightly"]).expect("read through A");
    assert_eq!(through_a["spec"]["keep"], 7, "defaulted by B: {through_a}");

    // B restarts: its first answer already knows the CRD.
    split_b.proc("apiserver-b").kill9();
    split_b = Split::apiserver_with(&b, "apiserver-b", &etcd_flags(&etcd.url));
    let names = b.kubectl(&["get", "backups", "-o", "name"]);
    assert_eq!(names.trim(), "backup.ops.example.org/nightly");

    b.kubectl(&["delete", "crd", "backups.ops.example.org", "--timeout=60s"]);
    wait_for(
        "A to stop serving backups",
        Duration::from_secs(10),
        || match a.kubectl_try(&["get", "--raw", "/apis/ops.example.org/v1/backups"]) {
            Err(e) if e.contains("NotFound") || e.contains("could not find") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    drop(split_b);
}
