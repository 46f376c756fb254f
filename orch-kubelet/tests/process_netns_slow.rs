//! The process runtime's pod network namespaces and cgroup limits with real processes, bridges
//! and cgroups (slow, and only meaningful as root): each test prints why it skips when the
//! machine cannot do it (not root, no `ip netns`, no cgroups, no python3).
//!
//! Every test uses its own root dir (so its own bridge) and its own pod CIDR under
//! 10.251.0.0/16, so they run in parallel.

use jiff::Timestamp;
use orch_kubelet::runtime::process::{PodNetwork, ProcessConfig, ProcessRuntime};
use orch_kubelet::runtime::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A runtime with per-pod namespaces on `cidr`, or `None` (printed) when impossible here.
fn netns_runtime(dir: &Path, cidr: &str) -> Option<ProcessRuntime> {
    let mut c = ProcessConfig::new(dir);
    c.pod_network = PodNetwork::Netns;
    c.pod_cidr = Some(cidr.into());
    match ProcessRuntime::open(c) {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

fn python() -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if p.is_empty() {
        eprintln!("skipping: python3 not found");
        None
    } else {
        Some(p)
    }
}

fn sandbox(uid: &str) -> SandboxConfig {
    SandboxConfig {
        pod_uid: uid.into(),
        namespace: "default".into(),
        name: uid.into(),
        ..Default::default()
    }
}

fn container(uid: &str, name: &str, argv: &[&str]) -> ContainerConfig {
    ContainerConfig {
        pod_uid: uid.into(),
        namespace: "default".into(),
        pod_name: uid.into(),
        name: name.into(),
        image: "local:1".into(),
        command: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn wait_exit(rt: &ProcessRuntime, id: &str, limit: Duration) -> ContainerState {
    let deadline = Instant::now() + limit;
    loop {
        let s = rt.container_state(id, Timestamp::now()).unwrap();
        if matches!(s, ContainerState::Exited { .. }) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn exit_of(s: &ContainerState) -> (i32, ExitReason) {
    match s {
        ContainerState::Exited {
            exit_code, reason, ..
        } => (*exit_code, *reason),
        other => panic!("not exited: {other:?}"),
    }
}

/// `GET /` over plain TCP, retried until `limit` (the server may still be starting).
fn http_get(addr: (Ipv4Addr, u16), limit: Duration) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    loop {
        let r = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(1))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match r {
            Ok(body) if body.starts_with("HTTP/") => return Ok(body),
            Ok(body) if Instant::now() > deadline => return Err(format!("bad answer {body:?}")),
            Err(e) if Instant::now() > deadline => return Err(e.to_string()),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A python HTTP server container on `bind:port` in pod `uid`.
fn server(rt: &ProcessRuntime, py: &str, uid: &str, bind: &str, port: u16) -> ContainerId {
    let p = port.to_string();
    let argv = [py, "-m", "http.server", &p, "--bind", bind];
    rt.start_container(&container(uid, "server", &argv), Timestamp::now())
        .unwrap()
}

/// A python client container that fetches `url` (exit 0 = got an answer).
fn fetch(rt: &ProcessRuntime, py: &str, uid: &str, url: &str) -> (i32, ExitReason) {
    let script = format!(
        "import time, urllib.request\nfor i in range(50):\n    try:\n        urllib.request.urlopen('{url}', timeout=2); break\n    except Exception:\n        time.sleep(0.1)\nelse:\n    raise SystemExit(7)\n"
    );
    let id = rt
        .start_container(
            &container(uid, "client", &[py, "-c", &script]),
            Timestamp::now(),
        )
        .unwrap();
    exit_of(&wait_exit(rt, &id, Duration::from_secs(30)))
}

fn stop_all(rt: &ProcessRuntime) {
    for c in rt.list_containers() {
        let _ = rt.stop_container(&c.id, StopSignal::Kill, Timestamp::now());
        let _ = rt.remove_container(&c.id);
        let _ = rt.remove_sandbox(&c.pod_uid);
    }
}

fn ip_of(info: &SandboxInfo) -> Ipv4Addr {
    info.ip.parse().unwrap()
}

/// A TCP port free on every host address right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn netns_list() -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned()
}

#[test]
#[ignore = "slow: real namespaces, bridges and cgroups (root); run with --include-ignored"]
fn slow_netns_containers_of_a_pod_share_localhost() {
    let dir = tempfile::tempdir().unwrap();
    let (Some(rt), Some(py)) = (netns_runtime(dir.path(), "10.251.1.0/24"), python()) else {
        return;
    };
    let info = rt.run_sandbox(&sandbox("share")).unwrap();
    assert!(
        ip_of(&info).to_string().starts_with("10.251.1."),
        "{info:?}"
    );
    server(&rt, &py, "share", "127.0.0.1", 18080);
    assert_eq!(
        fetch(&rt, &py, "share", "http://127.0.0.1:18080/"),
        (0, ExitReason::Completed)
    );
    // the host's localhost is another one
    assert!(TcpStream::connect_timeout(
        &"127.0.0.1:18080".parse().unwrap(),
        Duration::from_millis(300)
    )
    .is_err());
    stop_all(&rt);
}

#[test]
#[ignore = "slow: real namespaces, bridges and cgroups (root); run with --include-ignored"]
fn slow_netns_pods_reach_each_other_across_nodes_and_from_the_host() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let (Some(n1), Some(n2), Some(py)) = (
        netns_runtime(d1.path(), "10.251.2.0/24"),
        netns_runtime(d2.path(), "10.251.3.0/24"),
        python(),
    ) else {
        return;
    };
    assert_ne!(n1.bridge(), n2.bridge(), "one bridge per kubelet");
    let a = ip_of(&n1.run_sandbox(&sandbox("pa")).unwrap());
    let b = ip_of(&n1.run_sandbox(&sandbox("pb")).unwrap());
    let c = ip_of(&n2.run_sandbox(&sandbox("pc")).unwrap());
    assert_ne!(a, b, "two pods, two IPs");
    assert_eq!(
        n1.run_sandbox(&sandbox("pa")).unwrap().ip,
        a.to_string(),
        "idempotent"
    );
    assert!(c.to_string().starts_with("10.251.3."));
    server(&n1, &py, "pa", "0.0.0.0", 8000);
    let url = format!("http://{a}:8000/");
    // the host reaches the pod IP
    http_get((a, 8000), Duration::from_secs(10)).unwrap();
    // same node and other node
    assert_eq!(fetch(&n1, &py, "pb", &url), (0, ExitReason::Completed));
    assert_eq!(fetch(&n2, &py, "pc", &url), (0, ExitReason::Completed));
    stop_all(&n1);
    stop_all(&n2);
}

#[test]
#[ignore = "slow: real namespaces, bridges and cgroups (root); run with --include-ignored"]
fn slow_netns_host_port_is_forwarded_and_collisions_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (Some(rt), Some(py)) = (netns_runtime(dir.path(), "10.251.4.0/24"), python()) else {
        return;
    };
    let port = free_port();
    let mut sb = sandbox("hp");
    sb.host_ports = vec![(i32::from(port), "TCP".into())];
    sb.port_mappings = vec![PortMapping {
        host_port: i32::from(port),
        container_port: 8000,
        protocol: "TCP".into(),
        host_ip: String::new(),
    }];
    rt.run_sandbox(&sb).unwrap();
    server(&rt, &py, "hp", "0.0.0.0", 8000);
    let body = http_get((Ipv4Addr::LOCALHOST, port), Duration::from_secs(10)).unwrap();
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    let mut other = sb.clone();
    other.pod_uid = "hp2".into();
    other.name = "hp2".into();
    let err = rt.run_sandbox(&other).unwrap_err();
    assert!(
        err.to_string().contains("already used by pod default/hp"),
        "{err}"
    );
    stop_all(&rt);
    // freed with the sandbox
    std::thread::sleep(Duration::from_millis(100));
    assert!(std::net::TcpListener::bind(("0.0.0.0", port)).is_ok());
}

#[test]
#[ignore = "slow: real namespaces, bridges and cgroups (root); run with --include-ignored"]
fn slow_netns_sandbox_removal_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let Some(rt) = netns_runtime(dir.path(), "10.251.5.0/24") else {
        return;
    };
    rt.run_sandbox(&sandbox("gone")).unwrap();
    let ns = rt.pod_netns("gone").unwrap();
    let cgroups = rt.pod_cgroups("gone");
    let id = rt
        .start_container(&container("gone", "c", &["sleep", "300"]), Timestamp::now())
        .unwrap();
    let ccg = rt.container_cgroups(&id);
    assert!(netns_list().contains(&ns));
    assert!(rt.sandbox_alive("gone"));
    if rt.cgroup_version().is_some() {
        assert!(!cgroups.is_empty() && cgroups.iter().all(|d| d.is_dir()));
        assert!(ccg.iter().all(|d| d.is_dir()));
    }
    rt.stop_container(&id, StopSignal::Kill, Timestamp::now())
        .unwrap();
    rt.remove_container(&id).unwrap();
    assert!(ccg.iter().all(|d| !d.exists()), "container cgroup removed");
    rt.remove_sandbox("gone").unwrap();
    assert!(!netns_list().contains(&ns), "netns removed");
    assert!(cgroups.iter().all(|d| !d.exists()), "pod cgroup removed");
    let ips = std::fs::read_dir(dir.path().join("network/ips"))
        .unwrap()
        .count();
    assert_eq!(ips, 1, "only last_reserved_ip is left");
    let bridge = rt.bridge().unwrap();
    assert!(
        !Path::new("/sys/class/net").join(&bridge).exists(),
        "bridge without pods removed"
    );
    assert!(!rt.sandbox_alive("gone"));
}

#[test]
#[ignore = "slow: real namespaces, bridges and cgroups (root); run with --include-ignored"]
fn slow_netns_restart_reattaches_to_the_same_namespace_and_ip() {
    let dir = tempfile::tempdir().unwrap();
    let (Some(rt), Some(py)) = (netns_runtime(dir.path(), "10.251.6.0/24"), python()) else {
        return;
    };
    let port = free_port();
    let mut sb = sandbox("keep");
    sb.port_mappings = vec![PortMapping {
        host_port: i32::from(port),
        container_port: 8000,
        protocol: "TCP".into(),
        host_ip: String::new(),
    }];
    sb.host_ports = vec![(i32::from(port), "TCP".into())];
    let ip = rt.run_sandbox(&sb).unwrap().ip;
    let id = server(&rt, &py, "keep", "0.0.0.0", 8000);
    http_get((ip.parse().unwrap(), 8000), Duration::from_secs(10)).unwrap();
    drop(rt); // the kubelet goes away; the pod stays

    let rt = netns_runtime(dir.path(), "10.251.6.0/24").unwrap();
    assert_eq!(rt.list_sandboxes(), vec!["keep".to_string()]);
    assert!(rt.sandbox_alive("keep"));
    assert_eq!(
        rt.run_sandbox(&sb).unwrap().ip,
        ip,
        "same IP after a restart"
    );
    assert!(matches!(
        rt.container_state(&id, Timestamp::now()),
        Some(ContainerState::Running { .. })
    ));
    assert_eq!(
        netns_list().matches("orch-keep").count(),
        1,
        "no duplicate namespace"
    );
    http_get((ip.parse().unwrap(), 8000), Duration::from_secs(5)).unwrap();
    http_get((Ipv4Addr::LOCALHOST, port), Duration::from_secs(5)).unwrap();
    // a new pod does not get the kept pod's IP
    assert_ne!(rt.run_sandbox(&sandbox("new")).unwrap().ip, ip);
    // a deleted namespace is a dead sandbox
    Command::new("ip")
        .args(["netns", "del", "orch-keep"])
        .status()
        .unwrap();
    assert!(!rt.sandbox_alive("keep"));
    stop_all(&rt);
    let _ = rt.remove_sandbox("new");
}

#[test]
#[ignore = "slow: real namespaces, bridges and cgroups (root); run with --include-ignored"]
fn slow_cgroup_memory_overrun_is_oom_killed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(rt) = netns_runtime(dir.path(), "10.251.7.0/24") else {
        return;
    };
    if rt.cgroup_version().is_none() {
        eprintln!("skipping: no cgroup limits on this machine");
        return;
    }
    let mut sb = sandbox("oom");
    sb.memory_limit = Some(50 << 20);
    sb.qos_class = "Burstable".into();
    rt.run_sandbox(&sb).unwrap();
    // `tail` keeps the whole (newline-free) 200 MB line in memory
    let mut c = container(
        "oom",
        "hog",
        &[
            "sh",
            "-c",
            "head -c 200000000 /dev/zero | tail -n 1 >/dev/null",
        ],
    );
    c.memory_limit = Some(50 << 20);
    let id = rt.start_container(&c, Timestamp::now()).unwrap();
    assert_eq!(
        exit_of(&wait_exit(&rt, &id, Duration::from_secs(30))),
        (137, ExitReason::OomKilled)
    );
    // the same limit, staying below it: not OOMKilled
    let mut c = container(
        "oom",
        "fits",
        &[
            "sh",
            "-c",
            "head -c 1000000 /dev/zero | tail -n 1 >/dev/null",
        ],
    );
    c.memory_limit = Some(50 << 20);
    let id = rt.start_container(&c, Timestamp::now()).unwrap();
    assert_eq!(
        exit_of(&wait_exit(&rt, &id, Duration::from_secs(30))),
        (0, ExitReason::Completed)
    );
    stop_all(&rt);
}

#[test]
#[ignore = "slow: real namespaces, bridges and cgroups (root); run with --include-ignored"]
fn slow_cgroup_cpu_and_memory_limits_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let Some(rt) = netns_runtime(dir.path(), "10.251.8.0/24") else {
        return;
    };
    let Some(version) = rt.cgroup_version() else {
        eprintln!("skipping: no cgroup limits on this machine");
        return;
    };
    let mut sb = sandbox("cpu");
    sb.qos_class = "Guaranteed".into();
    rt.run_sandbox(&sb).unwrap();
    let pod = rt.pod_cgroups("cpu");
    assert!(
        pod[0].to_string_lossy().ends_with("/kubepods/podcpu"),
        "{pod:?}"
    );
    let mut c = container("cpu", "c", &["sleep", "300"]);
    c.cpu_request_milli = Some(250);
    c.cpu_limit_milli = Some(500);
    c.memory_limit = Some(64 << 20);
    let id = rt.start_container(&c, Timestamp::now()).unwrap();
    let dirs = rt.container_cgroups(&id);
    let read = |f: &str| {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(d.join(f)).ok())
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    if version == "v1" {
        assert_eq!(read("cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu.cfs_period_us"), "100000");
        assert_eq!(read("cpu.shares"), "256");
        assert_eq!(read("memory.limit_in_bytes"), (64u64 << 20).to_string());
    } else {
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("cpu.weight"), "10");
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
    }
    // the container's process is in it
    let deadline = Instant::now() + Duration::from_secs(5);
    while read("cgroup.procs").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !read("cgroup.procs").is_empty(),
        "container process joined its cgroup"
    );
    stop_all(&rt);
}

#[test]
#[ignore = "slow: real namespaces, bridges and cgroups (root); run with --include-ignored"]
fn slow_pod_network_host_mode_and_missing_pod_cidr() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ProcessConfig::new(dir.path());
    c.pod_network = PodNetwork::Host;
    let rt = ProcessRuntime::open(c).unwrap();
    assert!(!rt.uses_netns() && !rt.needs_pod_cidr());
    assert_eq!(rt.run_sandbox(&sandbox("h")).unwrap().ip, "127.0.0.1");
    rt.remove_sandbox("h").unwrap();
    // netns without a pod CIDR yet: a clear, retryable sandbox error
    let dir = tempfile::tempdir().unwrap();
    let mut c = ProcessConfig::new(dir.path());
    c.pod_network = PodNetwork::Netns;
    let Ok(rt) = ProcessRuntime::open(c) else {
        eprintln!("skipping the netns half: not possible here");
        return;
    };
    let err = rt.run_sandbox(&sandbox("w")).unwrap_err();
    assert!(err.to_string().contains("no spec.podCIDR yet"), "{err}");
    assert!(rt.needs_pod_cidr());
    rt.update_pod_cidr("10.251.9.0/24");
    assert!(!rt.needs_pod_cidr());
    assert_eq!(rt.run_sandbox(&sandbox("w")).unwrap().ip, "10.251.9.2");
    rt.remove_sandbox("w").unwrap();
}

#[test]
#[ignore = "slow: real namespaces, bridges and cgroups (root); run with --include-ignored"]
fn slow_netns_concurrent_sandboxes_get_distinct_ips_and_all_go_away() {
    let dir = tempfile::tempdir().unwrap();
    let Some(rt) = netns_runtime(dir.path(), "10.251.10.0/24") else {
        return;
    };
    let t0 = Instant::now();
    let ips: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let rt = rt.clone();
                s.spawn(move || {
                    (0..25)
                        .map(|i| rt.run_sandbox(&sandbox(&format!("c{t}-{i}"))).unwrap().ip)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let made = t0.elapsed();
    let distinct: std::collections::BTreeSet<&String> = ips.iter().collect();
    assert_eq!(distinct.len(), 100, "every pod its own IP");
    let t1 = Instant::now();
    for t in 0..4 {
        for i in 0..25 {
            rt.remove_sandbox(&format!("c{t}-{i}")).unwrap();
        }
    }
    eprintln!(
        "100 sandboxes: created in {made:?}, removed in {:?}",
        t1.elapsed()
    );
    assert!(!netns_list().contains("orch-c0-"), "{}", netns_list());
}

/// The pod worker on the real runtime: the pod IP comes from the pod CIDR (status and the
/// `status.podIP` env var); a deleted namespace is a dead sandbox, so the worker kills the
/// containers, makes a new sandbox and runs the init container again; nothing is left after the
/// pod terminates.
#[test]
#[ignore = "slow: real namespaces, bridges and cgroups (root); run with --include-ignored"]
fn slow_netns_pod_worker_recreates_a_dead_sandbox() {
    use orch_kubelet::worker::{PodWorker, WorkerConfig};
    let dir = tempfile::tempdir().unwrap();
    let Some(rt) = netns_runtime(dir.path(), "10.251.11.0/24") else {
        return;
    };
    let runs = dir.path().join("init-runs");
    let out = dir.path().join("pod-ip");
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "w", "namespace": "default", "uid": "worker-pod"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "initContainers": [{"name": "init", "image": "local:1",
                "command": ["sh", "-c", format!("echo run >> {}", runs.display())]}],
            "containers": [{"name": "app", "image": "local:1",
                "command": ["sh", "-c", format!("echo $MY_IP > {}; exec sleep 300", out.display())],
                "env": [{"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]
        }
    }))
    .unwrap();
    let cfg = WorkerConfig {
        node_name: "n1".into(),
        host_ip: "127.0.0.1".into(),
        allow_privileged: false,
        dns: Default::default(),
    };
    let mut w = PodWorker::new(cfg, pod, Timestamp::now());
    let run_until = |w: &mut PodWorker, what: &str, f: &dyn Fn(&mut PodWorker) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f(w) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                w.status(Timestamp::now())
            );
            w.tick(Timestamp::now(), &rt);
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let running = |w: &mut PodWorker| {
        let s = w.status(Timestamp::now());
        s.container_statuses
            .iter()
            .flatten()
            .any(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
    };
    run_until(&mut w, "Running", &running);
    let ip1 = w.status(Timestamp::now()).pod_ip.unwrap();
    assert!(ip1.starts_with("10.251.11."), "{ip1}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&out).unwrap_or_default().trim() != ip1 {
        assert!(Instant::now() < deadline, "status.podIP env var");
        std::thread::sleep(Duration::from_millis(20));
    }
    // the namespace disappears underneath the pod
    Command::new("ip")
        .args(["netns", "del", "orch-worker-pod"])
        .status()
        .unwrap();
    run_until(&mut w, "a new sandbox", &|w: &mut PodWorker| {
        rt.sandbox_alive("worker-pod") && running(w)
    });
    let inits = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert_eq!(inits, 2, "the init container ran again in the new sandbox");
    assert_eq!(netns_list().matches("orch-worker-pod").count(), 1);
    w.terminate();
    run_until(&mut w, "terminated", &|w: &mut PodWorker| w.is_finished());
    assert!(
        !netns_list().contains("orch-worker-pod"),
        "{}",
        netns_list()
    );
    assert!(rt.pod_cgroups("worker-pod").is_empty());
}
