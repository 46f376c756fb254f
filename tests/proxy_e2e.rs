//! The service proxy end to end: `orch up --pod-network netns` (root, `nft`, `ip netns`), a
//! Deployment of two HTTP servers (`python3 -m http.server`, each answering its pod name), a
//! third server with the same labels that never turns ready, and Services applied with real
//! kubectl; then, from the host and from inside a pod (`kubectl exec`), requests to the
//! cluster IP and to the node port reach both ready pods and never the unready one, a
//! ClientIP-affinity Service keeps sending a client to one pod, and a Service without
//! endpoints refuses connections at once. When `orch up` stops, its nftables table is gone.
//!
//! Without root, `nft`, `ip` or `python3` the test says why and checks nothing.
//!
//! The cluster gets a service range of its own, picked at random
//! (`--service-cluster-ip-range 10.100.N.0/24`), and its Services take allocated addresses and
//! node ports, so that clusters of other tests on the same host do not answer for ours: a host
//! process's connection to a service IP goes through every cluster's table.

mod common;

use common::{OrchProcess, TestEnv};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    if !orch_kubelet::runtime::process::is_root() {
        return Some("not running as root".into());
    }
    for (tool, args) in [
        ("nft", &["--version"][..]),
        ("ip", &["-V"][..]),
        ("python3", &["--version"][..]),
    ] {
        if !Command::new(tool)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

/// A small random number (no `rand` dependency): the clock's nanoseconds and the PID.
fn random(modulo: u32) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % modulo
}

fn manifests() -> String {
    let server = |probe: &str| {
        format!(
            r#"
      containers:
      - name: web
        image: python:3
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        command: ["sh", "-c", "d=$(mktemp -d) && cd $d && echo $POD_NAME > index.html && exec python3 -m http.server 8080"]
        readinessProbe:
          {probe}
          periodSeconds: 1
      terminationGracePeriodSeconds: 1"#
        )
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:{ready}
---
apiVersion: v1
kind: Pod
metadata: {{name: unready, labels: {{app: web}}}}
spec:{unready}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports:
  - {{port: 80, targetPort: 8080}}
---
apiVersion: v1
kind: Service
metadata: {{name: sticky}}
spec:
  selector: {{app: web}}
  sessionAffinity: ClientIP
  ports:
  - {{port: 80, targetPort: 8080}}
---
apiVersion: v1
kind: Service
metadata: {{name: nothing}}
spec:
  selector: {{app: nobody}}
  ports:
  - {{port: 80, targetPort: 8080}}
"#,
        ready = server("tcpSocket: {port: 8080}"),
        unready = server("exec: {command: [\"false\"]}"),
    )
}

/// One `GET /` over a fresh connection: the body's first line (the pod's name).
fn get(addr: SocketAddr) -> Result<String, std::io::Error> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string())
}

/// `n` GETs of `url` from inside pod `pod` (its network namespace, through `kubectl exec`):
/// the names answered, or `refused` / the error per request.
fn gets_from_pod(env: &TestEnv, pod: &str, url: &str, n: usize) -> Vec<String> {
    let script = "import sys, urllib.request\n\
        for _ in range(int(sys.argv[2])):\n\
        \x20   try:\n\
        \x20       print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())\n\
        \x20   except Exception as e:\n\
        \x20       print('refused' if 'refused' in str(e).lower() else 'error: %s' % e)\n";
    let out = env.kubectl(&[
        "exec",
        pod,
        "--",
        "python3",
        "-c",
        script,
        url,
        &n.to_string(),
    ]);
    out.lines().map(str::to_string).collect()
}

#[test]
fn services_reach_ready_endpoints_from_the_host_and_from_pods() {
    if let Some(why) = missing() {
        eprintln!("SKIPPED proxy_e2e: {why}");
        return;
    }
    let env = TestEnv::new();
    let data = env.data_dir();
    let range = format!("10.100.{}.0/24", random(256));
    let mut up = OrchProcess::spawn(
        "up",
        env.path(),
        &[
            "up",
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
            "--pod-network",
            "netns",
            "--service-cluster-ip-range",
            &range,
        ],
    );
    env.wait_api_ready(Duration::from_secs(60));
    env.wait_nodes_ready(1, Duration::from_secs(60));
    let table = common::wait_for(
        "orch up to start its proxy",
        Duration::from_secs(20),
        || {
            let log = up.log();
            log.lines()
                .find_map(|l| l.strip_prefix("service proxy: nftables table `ip "))
                .map(|t| t.trim_end_matches('`').to_string())
                .ok_or_else(|| log.lines().filter(|l| l.contains("proxy")).collect())
        },
    );

    env.apply(&manifests());
    let cluster_ip = |svc: &str| -> SocketAddr {
        let ip = env.kubectl(&["get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}"]);
        let ip: Ipv4Addr = ip
            .parse()
            .unwrap_or_else(|_| panic!("clusterIP of {svc}: {ip:?}"));
        SocketAddr::from((ip, 80))
    };
    let (web, sticky, nothing) = (
        cluster_ip("web"),
        cluster_ip("sticky"),
        cluster_ip("nothing"),
    );
    let node_port: u16 = env
        .kubectl(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .parse()
        .expect("allocated nodePort");

    let pods = common::journey::wait_ready_pods(&env, "app=web", 2);
    let names: BTreeSet<String> = common::journey::names(&pods);
    assert!(!names.contains("unready"), "{names:?}");
    // the node's address on its pod bridge (the pods' gateway) serves the node port
    let cidr = env.kubectl(&["get", "node", "node-1", "-o", "jsonpath={.spec.podCIDR}"]);
    let network: Ipv4Addr = cidr
        .split('/')
        .next()
        .unwrap_or("")
        .parse()
        .expect("podCIDR");
    let node_ip = Ipv4Addr::from(u32::from(network) + 1);
    let node = SocketAddr::from((node_ip, node_port));
    // the unready pod is running (it would answer if it got traffic) but not ready
    common::wait_for("the unready pod to run", Duration::from_secs(30), || {
        let phase = env.kubectl(&["get", "pod", "unready", "-o", "jsonpath={.status.phase}"]);
        (phase == "Running").then_some(()).ok_or(phase)
    });
    common::wait_for("the Service to answer", Duration::from_secs(20), || {
        get(web).map_err(|e| e.to_string())
    });

    // from the host: cluster IP and node port reach both ready pods, never the unready one
    for addr in [web, node] {
        let seen: BTreeSet<String> = (0..40)
            .map(|_| get(addr).unwrap_or_else(|e| panic!("GET {addr}: {e}")))
            .collect();
        assert_eq!(seen, names, "answers through {addr}");
    }
    // ClientIP affinity: one client, one pod
    let first = get(sticky).expect("GET sticky");
    for _ in 0..10 {
        assert_eq!(get(sticky).expect("GET sticky"), first);
    }
    // no endpoints: refused at once, not a timeout
    let t0 = Instant::now();
    let e = get(nothing).expect_err("a Service without endpoints must refuse");
    assert_eq!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{e} after {:?}",
        t0.elapsed()
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());

    // from a pod (a connection may come back to the pod itself: hairpin)
    let pod = names.iter().next().expect("a pod").clone();
    for url in [format!("http://{web}/"), format!("http://{node}/")] {
        let seen: BTreeSet<String> = gets_from_pod(&env, &pod, &url, 30).into_iter().collect();
        assert_eq!(seen, names, "answers to {pod} through {url}");
    }
    let sticky_seen: BTreeSet<String> = gets_from_pod(&env, &pod, &format!("http://{sticky}/"), 10)
        .into_iter()
        .collect();
    assert_eq!(sticky_seen.len(), 1, "{sticky_seen:?}");
    assert!(names.is_superset(&sticky_seen), "{sticky_seen:?}");
    assert_eq!(
        gets_from_pod(&env, &pod, &format!("http://{nothing}/"), 1),
        vec!["refused".to_string()]
    );

    // stopping orch up removes the cluster's table
    assert_eq!(
        up.interrupt(Duration::from_secs(60)),
        Some(0),
        "{}",
        up.log_tail(30)
    );
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft list tables");
    let tables = String::from_utf8_lossy(&tables.stdout);
    assert!(
        !tables.contains(&format!("table ip {table}\n")),
        "{table} left behind: {tables}"
    );
}
