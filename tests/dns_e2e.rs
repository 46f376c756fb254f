//! Cluster DNS end to end on `orch up` with real kubectl: a ClusterIP Service with a named
//! port, a headless Service behind a StatefulSet and an ExternalName Service are applied; the
//! server `orch up` publishes as `kube-system/kube-dns` (its Endpoints say where it listens)
//! then answers, over UDP and TCP from the host: A of the Service (its cluster IP), SRV of its
//! named port, the headless Service's pod addresses and the StatefulSet pod name
//! `web-0.nginx.default.svc.cluster.local`, PTR of the cluster IP and of a pod IP, a pod A
//! record (`1-2-3-4.default.pod.cluster.local`), the ExternalName CNAME, `kubernetes.default`,
//! and NXDOMAIN for a missing name (an answer, not a timeout). A `dnsConfig` without a
//! nameserver for `dnsPolicy: None` is refused with upstream's message.
//!
//! From inside a pod (root, pods in network namespaces, where `orch up` serves DNS on port 53
//! of the host and pods use their gateway): the pod's `/etc/resolv.conf` is the kubelet's
//! (`search default.svc.cluster.local svc.cluster.local cluster.local`, `ndots:5`) and
//! `getent hosts web.default.svc.cluster.local` and `getent hosts kubernetes.default` resolve
//! through it; a `dnsPolicy: None` pod gets exactly its `dnsConfig`. Elsewhere that part says
//! why it is skipped.

mod common;

use common::{wait_for, TestEnv, Up};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use orch::dns::client::{query, Transport};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(2);

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: default}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: web, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: search, namespace: default}
spec: {type: ExternalName, externalName: www.example.com}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: default}
spec:
  serviceName: nginx
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: custom, namespace: default}
spec:
  dnsPolicy: None
  dnsConfig:
    nameservers: [192.0.2.53]
    searches: [corp.example]
    options: [{name: ndots, value: "2"}]
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
"#;

/// One question to the server; the answer.
fn ask(server: SocketAddr, name: &str, rtype: RecordType, transport: Transport) -> Message {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(query(server, name, rtype, transport, TIMEOUT))
        .unwrap_or_else(|e| panic!("{name} {rtype}: {e}"))
}

/// The answer section as text (`rdata` only).
fn data(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers().iter().map(|r| r.data().to_string()).collect();
    v.sort();
    v
}

#[test]
fn cluster_dns_answers_every_record_type() {
    let env = TestEnv::new();
    let _up = Up::start(&env, 1, "process", &[]);
    env.apply(MANIFESTS);

    // Where the server listens, from the kube-dns Endpoints `orch up` wrote.
    let server = wait_for("the kube-dns endpoints", WAIT, || {
        let ep = env.get_json(&["endpoints", "kube-dns", "-n", "kube-system"])?;
        let ip: IpAddr = ep["subsets"][0]["addresses"][0]["ip"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or("no address")?;
        let port = ep["subsets"][0]["ports"][0]["port"]
            .as_u64()
            .ok_or("no port")?;
        Ok(SocketAddr::new(ip, port as u16))
    });
    let svc = env
        .get_json(&["svc", "kube-dns", "-n", "kube-system"])
        .unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 53, "{svc}");

    let cluster_ip = env.get_json(&["svc", "web"]).unwrap()["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let kubernetes_ip = env.get_json(&["svc", "kubernetes"]).unwrap()["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let pods: Vec<(String, String)> = wait_for("both StatefulSet pods with IPs", WAIT, || {
        let items = env.get_items(&["pods", "-l", "app=web"])?;
        let ready: Vec<(String, String)> = items
            .iter()
            .filter(|p| common::pod_ready(p))
            .filter_map(|p| {
                Some((
                    p["metadata"]["name"].as_str()?.to_string(),
                    p["status"]["podIP"].as_str()?.to_string(),
                ))
            })
            .collect();
        (ready.len() == 2)
            .then_some(ready)
            .ok_or_else(|| format!("{} ready", items.len()))
    });
    let web0_ip = pods.iter().find(|(n, _)| n == "web-0").unwrap().1.clone();
    let mut pod_ips: Vec<String> = pods.iter().map(|(_, ip)| ip.clone()).collect();
    pod_ips.sort();

    // A of a ClusterIP Service, over UDP and TCP.
    for t in [Transport::Udp, Transport::Tcp] {
        let m = ask(server, "web.default.svc.cluster.local", RecordType::A, t);
        assert_eq!(data(&m), std::slice::from_ref(&cluster_ip), "{t:?}");
        assert!(m.authoritative());
    }
    // SRV of its named port.
    let m = ask(
        server,
        "_http._tcp.web.default.svc.cluster.local",
        RecordType::SRV,
        Transport::Udp,
    );
    assert_eq!(data(&m), ["0 100 80 web.default.svc.cluster.local."]);
    // Headless: the pods (once the endpoints controller has them), and StatefulSet names.
    wait_for("the headless Service's addresses", WAIT, || {
        let m = ask(
            server,
            "nginx.default.svc.cluster.local",
            RecordType::A,
            Transport::Udp,
        );
        (data(&m) == pod_ips)
            .then_some(())
            .ok_or_else(|| format!("{:?}", data(&m)))
    });
    let m = ask(
        server,
        "web-0.nginx.default.svc.cluster.local",
        RecordType::A,
        Transport::Udp,
    );
    assert_eq!(data(&m), std::slice::from_ref(&web0_ip));
    let m = ask(
        server,
        "_web._tcp.nginx.default.svc.cluster.local",
        RecordType::SRV,
        Transport::Tcp,
    );
    assert_eq!(
        data(&m),
        [
            "0 100 80 web-0.nginx.default.svc.cluster.local.",
            "0 100 80 web-1.nginx.default.svc.cluster.local."
        ]
    );
    // PTR of the cluster IP and of a pod IP.
    let arpa = |ip: &str| hickory_proto::rr::Name::from(ip.parse::<IpAddr>().unwrap()).to_string();
    let m = ask(server, &arpa(&cluster_ip), RecordType::PTR, Transport::Udp);
    assert_eq!(data(&m), ["web.default.svc.cluster.local."]);
    let m = ask(server, &arpa(&web0_ip), RecordType::PTR, Transport::Udp);
    assert_eq!(data(&m), ["web-0.nginx.default.svc.cluster.local."]);
    // Pod A record, ExternalName, kubernetes.default.
    let m = ask(
        server,
        "1-2-3-4.default.pod.cluster.local",
        RecordType::A,
        Transport::Udp,
    );
    assert_eq!(data(&m), ["1.2.3.4"]);
    let m = ask(
        server,
        "search.default.svc.cluster.local",
        RecordType::CNAME,
        Transport::Udp,
    );
    assert_eq!(data(&m), ["www.example.com."]);
    let m = ask(
        server,
        "kubernetes.default.svc.cluster.local",
        RecordType::A,
        Transport::Udp,
    );
    assert_eq!(data(&m), std::slice::from_ref(&kubernetes_ip));
    // A missing name is an answer: NXDOMAIN with the zone's SOA, not a timeout.
    let m = ask(
        server,
        "missing.default.svc.cluster.local",
        RecordType::A,
        Transport::Udp,
    );
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert_eq!(m.name_servers()[0].record_type(), RecordType::SOA);

    // Bad dnsConfig: upstream's 422.
    let err = env
        .kubectl_try(&[
            "run",
            "nodns",
            "--image=busybox",
            "--overrides",
            r#"{"spec": {"dnsPolicy": "None", "dnsConfig": {"searches": ["a.example"]}}}"#,
        ])
        .expect_err("dnsPolicy None without nameservers must be refused");
    assert!(
        err.contains("spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"),
        "{err}"
    );

    // From inside a pod.
    if !orch_kubelet::runtime::process::is_root() || server.ip().is_loopback() {
        eprintln!(
            "skipping the in-pod checks: {}",
            if orch_kubelet::runtime::process::is_root() {
                "orch up could not serve DNS on port 53 for pods"
            } else {
                "not running as root (pods have no network or mount namespaces)"
            }
        );
        return;
    }
    let resolv = env.kubectl(&["exec", "web-0", "--", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains(&format!("nameserver {}", server.ip()))
            && resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local")
            && resolv.contains("options ndots:5"),
        "{resolv}"
    );
    let out = env.kubectl(&[
        "exec",
        "web-0",
        "--",
        "getent",
        "hosts",
        "web.default.svc.cluster.local",
    ]);
    assert!(out.starts_with(&cluster_ip), "{out}");
    let out = env.kubectl(&[
        "exec",
        "web-0",
        "--",
        "getent",
        "hosts",
        "kubernetes.default",
    ]);
    assert!(out.starts_with(&kubernetes_ip), "{out}");
    wait_for("the dnsPolicy None pod", WAIT, || {
        let p = env.get_json(&["pod", "custom"])?;
        common::pod_ready(&p)
            .then_some(())
            .ok_or("not ready".to_string())
    });
    let resolv = env.kubectl(&["exec", "custom", "--", "cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv.trim(),
        "nameserver 192.0.2.53\nsearch corp.example\noptions ndots:2"
    );
}
