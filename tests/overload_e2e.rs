//! Overload protection (issue 21) with real kubectl.
//!
//! API Priority and Fairness (the default): the FlowSchemas and PriorityLevelConfigurations
//! are served, answers carry the `X-Kubernetes-PF-*` headers, and one tenant flooding lists
//! gets 429s with `Retry-After` from its own level while a node's Lease renewals (another
//! level) keep succeeding.
//!
//! Max-in-flight on `orch apiserver --enable-priority-and-fairness=false
//! --max-mutating-requests-inflight 1 --max-requests-inflight 0`: a create whose body is still arriving holds
//! the only mutating seat; another write is answered upstream's 429 (`Retry-After: 1`, a
//! `TooManyRequests` Status), reads are not limited (0), and `kubectl create` started
//! meanwhile succeeds once the seat is free (client-go waits `Retry-After` and retries).

mod common;

use common::{LogsOnPanic, Split, TestEnv};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

/// Sends the headers of a create of `len` body bytes and the first `sent` of `body`.
fn start_create(addr: SocketAddr, body: &str, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "POST {CONFIGMAPS} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..sent]
    )
    .expect("write");
    s
}

/// Reads a whole `Connection: close` answer: (status line, headers, body).
fn answer(mut s: TcpStream) -> (String, String, String) {
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read answer");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_lowercase(), body.to_string())
}

fn configmap(name: &str) -> String {
    format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#)
}

#[test]
fn a_full_mutating_pool_answers_429_and_kubectl_retries() {
    let env = TestEnv::new();
    let _logs = LogsOnPanic(vec![env.path().to_path_buf()]);
    let split = Split::apiserver_with(
        &env,
        "apiserver",
        &[
            "--insecure-http",
            "--enable-priority-and-fairness=false",
            "--max-requests-inflight",
            "0",
            "--max-mutating-requests-inflight",
            "1",
        ],
    );
    let held_body = configmap("held");
    // The held create takes the seat once its headers are read; a probe that raced it (and
    // got the seat first, so the held create was refused) is removed and both are retried.
    let (mut held, headers, body) =
        common::wait_for("a write refused with 429", Duration::from_secs(30), || {
            let held = start_create(split.addr, &held_body, 10);
            std::thread::sleep(Duration::from_millis(300));
            let probe = configmap("probe");
            let (status, headers, body) = answer(start_create(split.addr, &probe, probe.len()));
            if status.contains(" 429 ") {
                return Ok((held, headers, body));
            }
            drop(held);
            let _ = env.kubectl_try(&["delete", "configmap", "probe", "--ignore-not-found"]);
            Err(status)
        });
    assert!(
        headers.contains("retry-after: 1\r\n") || headers.ends_with("retry-after: 1"),
        "{headers}"
    );
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["code"], 429);
    assert_eq!(
        status["message"],
        "Too many requests, please try again later."
    );
    // Reads are unlimited (0).
    for _ in 0..5 {
        env.kubectl(&["get", "configmaps", "-n", "default"]);
    }
    std::thread::scope(|scope| {
        let waited = scope.spawn(|| env.kubectl_try(&["create", "configmap", "waited"]));
        std::thread::sleep(Duration::from_millis(1500));
        held.write_all(&held_body.as_bytes()[10..])
            .expect("finish the held body");
        let (status, _, body) = answer(held);
        assert!(status.contains(" 201 "), "{status}: {body}");
        let out = waited.join().expect("kubectl thread");
        assert!(
            out.is_ok(),
            "kubectl create after the seat was freed: {out:?}"
        );
    });
    let names = env.kubectl(&[
        "get",
        "configmaps",
        "-n",
        "default",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert!(
        names.contains("held") && names.contains("waited"),
        "{names}"
    );
}

/// A GET as the user of `kubeconfig` (its CA, client certificate or bearer token) over a new
/// TLS connection: (status code, lower-cased headers).
fn get_as(kubeconfig: &Path, addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let ep = orch_apiserver::kubeconfig::read_endpoint(kubeconfig).map_err(|e| e.to_string())?;
    let tls = ep
        .tls_config()
        .map_err(|e| e.to_string())?
        .ok_or("an https kubeconfig")?;
    let tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let auth = ep
        .token
        .as_ref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let name = rustls::pki_types::ServerName::from(addr.ip());
    let conn = rustls::ClientConnection::new(Arc::new(tls), name).map_err(|e| e.to_string())?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    match s.read_to_end(&mut bytes) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !bytes.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    let raw = String::from_utf8_lossy(&bytes);
    let head = raw.split_once("\r\n\r\n").map_or(&*raw, |(h, _)| h);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad answer {head:?}"))?;
    Ok((code, head.to_lowercase()))
}

/// A copy of the admin kubeconfig whose user is the bearer `token`.
fn kubeconfig_for(env: &TestEnv, name: &str, token: &str) -> PathBuf {
    let path = env.path().join(format!("{name}.kubeconfig"));
    std::fs::copy(&env.kubeconfig, &path).expect("copy kubeconfig");
    let kc = path.to_str().expect("utf-8 path");
    env.kubectl(&[
        "--kubeconfig",
        kc,
        "config",
        "set-credentials",
        name,
        &format!("--token={token}"),
    ]);
    env.kubectl(&[
        "--kubeconfig",
        kc,
        "config",
        "set-context",
        "--current",
        &format!("--user={name}"),
    ]);
    path
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1";

/// The tenant's own level: one seat of a tiny share, one queue of one.
const TENANT_LEVEL: &str = r#"
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata:
  name: tenants
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    limitResponse:
      type: Queue
      queuing: {queues: 1, handSize: 1, queueLengthLimit: 1}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata:
  name: tenants
spec:
  priorityLevelConfiguration: {name: tenants}
  matchingPrecedence: 1000
  distinguisherMethod: {type: ByUser}
  rules:
  - subjects: [{kind: User, user: {name: tenant}}]
    resourceRules:
    - {verbs: ["*"], apiGroups: ["*"], resources: ["*"], namespaces: ["*"], clusterScope: true}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: n1
  namespace: kube-node-lease
spec:
  holderIdentity: n1
  leaseDurationSeconds: 40
"#;

#[test]
fn priority_and_fairness_refuses_a_flooding_tenant_not_node_heartbeats() {
    let env = TestEnv::new();
    let _logs = LogsOnPanic(vec![env.path().to_path_buf()]);
    let tokens = env.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "tenant-token,tenant,2001\nnode-token,system:node:n1,2002,\"system:nodes\"\n",
    )
    .expect("token file");
    let split = Split::apiserver_with(
        &env,
        "apiserver",
        &[
            "--token-auth-file",
            tokens.to_str().expect("utf-8 path"),
            "--max-requests-inflight",
            "4",
            "--max-mutating-requests-inflight",
            "2",
        ],
    );
    // The defaults are served.
    let schemas = env.kubectl(&["get", "flowschemas"]);
    for name in ["exempt", "system-node-high", "global-default", "catch-all"] {
        assert!(schemas.contains(name), "{schemas}");
    }
    assert!(schemas.contains("MATCHINGPRECEDENCE"), "{schemas}");
    let levels = env.kubectl(&["get", "prioritylevelconfigurations"]);
    for name in [
        "exempt",
        "system",
        "node-high",
        "leader-election",
        "workload-high",
        "workload-low",
        "global-default",
        "catch-all",
    ] {
        assert!(levels.contains(name), "{levels}");
    }
    // A request of the admin (system:masters) is classified as exempt: the headers name the
    // exempt FlowSchema and level (kubectl -v=8 prints the response headers).
    let uid = |kind: &str, name: &str| {
        env.kubectl(&["get", kind, name, "-o", "jsonpath={.metadata.uid}"])
    };
    let out = env.kubectl_raw(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-v=8",
    ]);
    let log = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        log.contains(&format!(
            "x-kubernetes-pf-flowschema-uid: {}",
            uid("flowschema", "exempt")
        )) && log.contains(&format!(
            "x-kubernetes-pf-prioritylevel-uid: {}",
            uid("prioritylevelconfiguration", "exempt")
        )),
        "{log}"
    );
    // A deleted mandatory object comes back.
    env.kubectl(&["delete", "flowschema", "catch-all"]);
    common::wait_for("catch-all re-created", Duration::from_secs(30), || {
        env.kubectl_try(&["get", "flowschema", "catch-all"])
            .map(|_| ())
    });
    // Invalid objects are refused with upstream's causes.
    let invalid = common::kubectl_with_input(
        &env,
        Path::new("kubectl"),
        &["create", "-f", "-"],
        br#"{"apiVersion":"flowcontrol.apiserver.k8s.io/v1","kind":"FlowSchema","metadata":{"name":"bad"},
            "spec":{"matchingPrecedence":20000,"priorityLevelConfiguration":{"name":""}}}"#,
    );
    let err = String::from_utf8_lossy(&invalid.stderr);
    assert!(
        err.contains(
            "spec.matchingPrecedence: Invalid value: 20000: must not be greater than 10000"
        ) && err.contains(
            "spec.priorityLevelConfiguration.name: Required value: must reference a priority level"
        ),
        "{err}"
    );
    // The tenant's own level, its permissions, and the node's Lease.
    env.apply(TENANT_LEVEL);
    env.kubectl(&[
        "create",
        "clusterrolebinding",
        "tenant-admin",
        "--clusterrole=cluster-admin",
        "--user=tenant",
    ]);
    env.kubectl(&[
        "create",
        "clusterrolebinding",
        "node-admin",
        "--clusterrole=cluster-admin",
        "--user=system:node:n1",
    ]);
    let tenant = kubeconfig_for(&env, "tenant", "tenant-token");
    let node = kubeconfig_for(&env, "node", "node-token");
    // The node's requests are in system-node-high (level node-high).
    let (code, headers) = get_as(&node, split.addr, LEASE).expect("node GET");
    assert_eq!(code, 200, "{headers}");
    assert!(
        headers.contains(&format!(
            "x-kubernetes-pf-prioritylevel-uid: {}",
            uid("prioritylevelconfiguration", "node-high")
        )),
        "{headers}"
    );
    // Big enough lists that many are in flight at once.
    let data = "x".repeat(100_000);
    for i in 0..20 {
        env.kubectl(&[
            "create",
            "configmap",
            &format!("big-{i}"),
            &format!("--from-literal=data={data}"),
        ]);
    }
    // The tenant floods; meanwhile the node renews its Lease with kubectl and reads it back.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let renewals = scope.spawn(|| {
            let mut n = 0;
            let node_kc = node.to_str().expect("utf-8 path");
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || n < 3 {
                let now = format!("2026-01-01T00:{:02}:{:02}.000000Z", n / 60 % 60, n % 60);
                let patch = format!(r#"{{"spec":{{"renewTime":"{now}"}}}}"#);
                env.kubectl(&[
                    "--kubeconfig",
                    node_kc,
                    "patch",
                    "lease",
                    "n1",
                    "-n",
                    "kube-node-lease",
                    "--type=merge",
                    "-p",
                    &patch,
                ]);
                let (code, headers) = get_as(&node, split.addr, LEASE).expect("node GET");
                assert_eq!(code, 200, "a node's Lease read during the flood: {headers}");
                n += 1;
            }
            n
        });
        // Ends the renewals however this thread leaves the scope.
        let _stop = StopOnDrop(&stop);
        let refused = common::wait_for(
            "a tenant list refused with 429",
            Duration::from_secs(120),
            || {
                let answers: Vec<_> = std::thread::scope(|s| {
                    let handles: Vec<_> = (0..48)
                        .map(|_| {
                            s.spawn(|| {
                                get_as(&tenant, split.addr, "/api/v1/namespaces/default/configmaps")
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("thread"))
                        .collect()
                });
                let codes: Vec<String> = answers
                    .iter()
                    .map(|a| match a {
                        Ok((code, _)) => code.to_string(),
                        Err(e) => e.clone(),
                    })
                    .collect();
                answers
                    .into_iter()
                    .flatten()
                    .find(|(code, _)| *code == 429)
                    .ok_or_else(|| format!("no 429 yet: {codes:?}"))
            },
        );
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(refused.1.contains("retry-after: 1"), "{}", refused.1);
        assert!(
            refused.1.contains(&format!(
                "x-kubernetes-pf-prioritylevel-uid: {}",
                uid("prioritylevelconfiguration", "tenants")
            )),
            "{}",
            refused.1
        );
        let n = renewals.join().expect("renewals thread");
        assert!(n >= 3, "{n} renewals");
    });
    // A change of the level takes effect without a restart: with many seats and queues the
    // same flood is served.
    env.kubectl(&[
        "patch", "prioritylevelconfiguration", "tenants", "--type=merge", "-p",
        r#"{"spec":{"limited":{"nominalConcurrencyShares":10000,"limitResponse":{"queuing":{"queues":64,"handSize":6,"queueLengthLimit":50}}}}}"#,
    ]);
    common::wait_for(
        "the tenant served after the change",
        Duration::from_secs(60),
        || {
            let answers: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            get_as(&tenant, split.addr, "/api/v1/namespaces/default/configmaps")
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("thread"))
                    .collect()
            });
            let codes: Vec<u16> = answers.into_iter().flatten().map(|(c, _)| c).collect();
            if codes.len() == 8 && codes.iter().all(|c| *c == 200) {
                Ok(())
            } else {
                Err(format!("{codes:?}"))
            }
        },
    );
}

/// One plain-HTTP request as the bearer `token` on a connection of its own (a `PATCH` is a
/// merge patch): (status code, lower-cased head).
async fn plain_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let content_type = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
    let raw = String::from_utf8_lossy(&raw);
    let head = raw.split_once("\r\n\r\n").map_or(&*raw, |(h, _)| h);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad answer {head:?}"))?;
    Ok((code, head.to_lowercase()))
}

/// The bounded form of `orch bench overload` (correctness only, no timing): `orch apiserver`
/// with 4 seats (`--max-requests-inflight 2 --max-mutating-requests-inflight 2`, so the
/// tenant's `global-default` has one seat and its one flow 6 queues of 50). A tenant fires 600
/// concurrent lists of 1 MB: those finding no queue place are answered 429 with
/// `Retry-After: 1`, the rest 200; meanwhile the scheduler binds pods
/// (`system:kube-scheduler`, level `workload-high`) and a node renews its Lease
/// (`system:nodes`, level `node-high`), every call succeeding; `kubectl get --raw /metrics`
/// shows the tenant's `queue-full` rejections and their dispatches.
#[test]
fn a_flood_of_lists_is_refused_while_the_scheduler_and_a_node_keep_working() {
    let env = TestEnv::new();
    let _logs = LogsOnPanic(vec![env.path().to_path_buf()]);
    let tokens = env.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "tenant-token,tenant,2001\nscheduler-token,system:kube-scheduler,2002\nnode-token,system:node:n1,2003,\"system:nodes\"\n",
    )
    .expect("token file");
    let split = Split::apiserver_with(
        &env,
        "apiserver",
        &[
            "--insecure-http",
            "--max-requests-inflight",
            "2",
            "--max-mutating-requests-inflight",
            "2",
            "--token-auth-file",
            tokens.to_str().expect("utf-8 path"),
        ],
    );
    let addr = split.addr;
    let _ = env.kubectl_try(&["create", "serviceaccount", "default"]);
    env.apply(
        r#"
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: n1
  namespace: kube-node-lease
spec:
  holderIdentity: n1
  leaseDurationSeconds: 40
"#,
    );
    let pods = 8;
    for i in 0..pods {
        env.kubectl(&["run", &format!("p{i}"), "--image=pause", "--restart=Never"]);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let data = "x".repeat(100_000);
    rt.block_on(async {
        for i in 0..10 {
            let cm = format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big-{i}"}},"data":{{"d":"{data}"}}}}"#
            );
            let (code, head) = plain_http(addr, "POST", CONFIGMAPS, "tenant-token", &cm)
                .await
                .expect("create");
            assert_eq!(code, 201, "{head}");
        }
    });
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        // The scheduler and the node while the tenant floods (raw HTTP: kubectl sends no bearer
        // token to a plain-HTTP server).
        let others = scope.spawn(|| {
            let mut bound = 0;
            let mut renewals = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || renewals < 3 || bound < pods
            {
                if bound < pods {
                    let binding = format!(
                        r#"{{"apiVersion":"v1","kind":"Binding","metadata":{{"name":"p{bound}"}},"target":{{"kind":"Node","name":"n1"}}}}"#
                    );
                    let path = format!("/api/v1/namespaces/default/pods/p{bound}/binding");
                    let (code, head) = rt
                        .block_on(plain_http(addr, "POST", &path, "scheduler-token", &binding))
                        .expect("bind");
                    assert_eq!(code, 201, "the scheduler's binding during the flood: {head}");
                    bound += 1;
                }
                let patch = format!(
                    r#"{{"spec":{{"renewTime":"2026-01-01T00:00:{:02}.000000Z"}}}}"#,
                    renewals % 60
                );
                let (code, head) = rt
                    .block_on(plain_http(addr, "PATCH", LEASE, "node-token", &patch))
                    .expect("renew");
                assert_eq!(code, 200, "the node's renewal during the flood: {head}");
                renewals += 1;
            }
            (bound, renewals)
        });
        let _stop = StopOnDrop(&stop);
        let refused = common::wait_for(
            "tenant lists refused with 429",
            Duration::from_secs(60),
            || {
                let answers = rt.block_on(async {
                    let lists: Vec<_> = (0..600)
                        .map(|_| {
                            tokio::spawn(plain_http(addr, "GET", CONFIGMAPS, "tenant-token", ""))
                        })
                        .collect();
                    let mut answers = Vec::new();
                    for l in lists {
                        answers.push(l.await.expect("list task"));
                    }
                    answers
                });
                let mut refused = 0;
                for a in &answers {
                    match a {
                        Ok((429, head)) => {
                            assert!(head.contains("\r\nretry-after: 1"), "{head}");
                            refused += 1;
                        }
                        Ok((200, _)) => {}
                        other => return Err(format!("a list answered {other:?}")),
                    }
                }
                if refused > 0 {
                    Ok(refused)
                } else {
                    Err("no list refused".into())
                }
            },
        );
        assert!(refused > 0);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (bound, renewals) = others.join().expect("scheduler and node");
        assert_eq!(bound, pods, "every binding succeeded");
        assert!(renewals >= 3);
    });
    let nodes = env.kubectl(&["get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}"]);
    assert_eq!(
        nodes.split_whitespace().filter(|n| *n == "n1").count(),
        pods,
        "{nodes}"
    );
    let metrics = env.kubectl(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.lines().any(|l| l.starts_with(
            r#"apiserver_flowcontrol_rejected_requests_total{flow_schema="global-default",priority_level="global-default",reason="queue-full"}"#
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"apiserver_flowcontrol_dispatched_requests_total{flow_schema="kube-scheduler",priority_level="workload-high"}"#)
            && metrics.contains(r#"apiserver_flowcontrol_dispatched_requests_total{flow_schema="system-node-high",priority_level="node-high"}"#),
        "{metrics}"
    );
}
