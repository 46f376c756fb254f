//! `orch bench overload`: node heartbeats and a scheduler over HTTP, first alone, then beside
//! one tenant keeping thousands of list calls in flight; API Priority and Fairness
//! ([`crate::flowcontrol`]) should keep the heartbeats far inside the node grace period.
//!
//! One API server (memory store, plain HTTP, bearer tokens) serves: a Lease renewal every
//! `heartbeat` per node as `system:node:NAME` in `system:nodes` (level `node-high`); a
//! scheduler as `system:kube-scheduler` (level `workload-high`) binding pending pods; in the
//! loaded phase, `lists` tasks of the user `tenant` (level `global-default`), each listing
//! ConfigMaps back to back. Load and server share the machine's CPUs, as on one host.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orch_types::client::{ListParams, Patch, PatchParams, PostParams, SharedClient};
use orch_types::registry;
use orch_types::DynamicObject;
use serde::Serialize;
use serde_json::json;

use super::crd::Latency;
use super::BenchError;
use crate::client::HttpClient;
use crate::{serve, ApiServer, ApiServerConfig};

/// Parameters of `orch bench overload`.
#[derive(Debug, Clone)]
pub struct OverloadBenchConfig {
    /// Nodes renewing their Lease.
    pub nodes: usize,
    /// Time between two renewals of one node (kubelets: 10 s).
    pub heartbeat: Duration,
    /// Concurrent list calls of the tenant in the loaded phase.
    pub lists: usize,
    /// ConfigMaps the tenant lists (1 KiB each).
    pub configmaps: usize,
    /// Pods the scheduler binds in each phase.
    pub pods: usize,
    /// Length of each phase.
    pub duration: Duration,
    /// The node grace period the largest heartbeat gap is compared with.
    pub grace: Duration,
}

impl Default for OverloadBenchConfig {
    fn default() -> Self {
        Self {
            nodes: 50,
            heartbeat: Duration::from_secs(1),
            lists: 5000,
            configmaps: 100,
            pods: 10_000,
            duration: Duration::from_secs(20),
            grace: Duration::from_secs(40),
        }
    }
}

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// `no load` or `N lists`.
    pub name: String,
    /// Lease renewals answered 200.
    pub renewals: usize,
    /// Lease renewals refused or failed.
    pub renewal_failures: usize,
    /// Renewal latency.
    pub heartbeat: Latency,
    /// The longest time a node went without a successful renewal, in seconds.
    pub max_gap_s: f64,
    /// Pods bound per second.
    pub pods_bound_per_s: f64,
    /// Tenant list calls answered (200 or 429).
    pub tenant_requests: usize,
    /// Their share answered 429.
    pub tenant_429_share: f64,
    /// Tenant lists served per second.
    pub tenant_lists_per_s: f64,
}

/// The report: both phases side by side.
#[derive(Debug, Clone, Serialize)]
pub struct OverloadBenchReport {
    /// Nodes.
    pub nodes: usize,
    /// Seconds between renewals of one node.
    pub heartbeat_s: f64,
    /// Grace period in seconds.
    pub grace_s: f64,
    /// Server seats (`--max-requests-inflight` + `--max-mutating-requests-inflight`).
    pub seats: usize,
    /// No load, then loaded.
    pub phases: Vec<Phase>,
}

impl fmt::Display for OverloadBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "overload: {} nodes renewing every {:.1} s, a scheduler binding pods, API Priority and Fairness with {} seats",
            self.nodes, self.heartbeat_s, self.seats
        )?;
        let col = |f: &mut fmt::Formatter<'_>, label: &str, v: &dyn Fn(&Phase) -> String| {
            write!(f, "  {label:<30}")?;
            for p in &self.phases {
                write!(f, " {:>16}", v(p))?;
            }
            writeln!(f)
        };
        col(f, "", &|p| p.name.clone())?;
        col(f, "heartbeat p50 ms", &|p| {
            format!("{:.2}", p.heartbeat.p50_ms)
        })?;
        col(f, "heartbeat p99 ms", &|p| {
            format!("{:.2}", p.heartbeat.p99_ms)
        })?;
        col(f, "heartbeat max ms", &|p| {
            format!("{:.2}", p.heartbeat.max_ms)
        })?;
        col(f, "renewals ok / failed", &|p| {
            format!("{} / {}", p.renewals, p.renewal_failures)
        })?;
        col(
            f,
            &format!("max heartbeat gap s (grace {:.0})", self.grace_s),
            &|p| format!("{:.2}", p.max_gap_s),
        )?;
        col(f, "scheduler pods bound/s", &|p| {
            format!("{:.0}", p.pods_bound_per_s)
        })?;
        col(f, "tenant requests", &|p| p.tenant_requests.to_string())?;
        col(f, "tenant 429 share", &|p| {
            format!("{:.1}%", p.tenant_429_share * 100.0)
        })?;
        col(f, "tenant lists served/s", &|p| {
            format!("{:.0}", p.tenant_lists_per_s)
        })
    }
}

fn token_file(dir: &std::path::Path, nodes: usize) -> std::io::Result<std::path::PathBuf> {
    let mut csv =
        String::from("tenant-token,tenant,3000\nscheduler-token,system:kube-scheduler,3001\n");
    for i in 0..nodes {
        csv.push_str(&format!(
            "node-{i}-token,system:node:node-{i},{},\"system:nodes\"\n",
            4000 + i
        ));
    }
    let path = dir.join("tokens.csv");
    std::fs::write(&path, csv)?;
    Ok(path)
}

fn client(base: &str, token: &str) -> Result<SharedClient, BenchError> {
    let ep = crate::kubeconfig::Endpoint {
        token: Some(token.to_string()),
        ..crate::kubeconfig::Endpoint::new(base.to_string())
    };
    let c = HttpClient::from_endpoint(&ep).map_err(|e| BenchError::Setup(e.to_string()))?;
    Ok(Arc::new(c))
}

fn resource(
    api_version: &str,
    kind: &str,
) -> Result<orch_types::registry::ApiResource, BenchError> {
    registry::by_kind(api_version, kind)
        .map(|i| i.api_resource())
        .ok_or_else(|| BenchError::Setup(format!("{kind} is not registered")))
}

/// Runs both phases.
pub async fn run(cfg: &OverloadBenchConfig) -> Result<OverloadBenchReport, BenchError> {
    let setup = |e: &dyn fmt::Display| BenchError::Setup(e.to_string());
    let dir = tempfile::tempdir().map_err(|e| setup(&e))?;
    let config = ApiServerConfig {
        auth: crate::auth::AuthConfig {
            token_auth_file: Some(token_file(dir.path(), cfg.nodes).map_err(|e| setup(&e))?),
            ..Default::default()
        },
        ..ApiServerConfig::memory()
    };
    let seats = config.max_requests_inflight + config.max_mutating_requests_inflight;
    // The server runs on its own runtime (its own two threads), so the load generator's tasks
    // compete with it for CPUs, not for the server's scheduler.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            let started = async {
                let api = ApiServer::open(config).await.map_err(|e| e.to_string())?;
                let listener =
                    crate::listen(([127, 0, 0, 1], 0).into()).map_err(|e| e.to_string())?;
                let addr = listener.local_addr().map_err(|e| e.to_string())?;
                Ok::<_, String>((api, listener, addr))
            };
            match started.await {
                Ok((api, listener, addr)) => {
                    let _ = ready_tx.send(Ok((api.client(), addr)));
                    let _ = serve(api, listener, async move {
                        let _ = stop_rx.await;
                    })
                    .await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
    });
    let (admin, addr) = ready_rx
        .await
        .map_err(|e| setup(&e))?
        .map_err(|e| setup(&e))?;
    let base = format!("http://{addr}");

    let leases = resource("coordination.k8s.io/v1", "Lease")?;
    let cms = resource("v1", "ConfigMap")?;
    let pods = resource("v1", "Pod")?;
    let ns = resource("v1", "Namespace")?;
    let pp = PostParams::default();
    admin
        .create(
            &ns,
            None,
            &DynamicObject::new("v1", "Namespace", "bench"),
            &pp,
        )
        .await?;
    for i in 0..cfg.nodes {
        let mut l = DynamicObject::new("coordination.k8s.io/v1", "Lease", &format!("node-{i}"));
        l.metadata.namespace = Some("kube-node-lease".into());
        l.data.insert(
            "spec".into(),
            json!({"holderIdentity": format!("node-{i}"), "leaseDurationSeconds": 40}),
        );
        admin
            .create(&leases, Some("kube-node-lease"), &l, &pp)
            .await?;
    }
    let payload = "x".repeat(1024);
    for i in 0..cfg.configmaps {
        let mut c = DynamicObject::new("v1", "ConfigMap", &format!("cm-{i}"));
        c.metadata.namespace = Some("bench".into());
        c.data.insert("data".into(), json!({ "payload": payload }));
        admin.create(&cms, Some("bench"), &c, &pp).await?;
    }

    let mut phases = Vec::new();
    for (phase, lists) in [(0, 0), (1, cfg.lists)] {
        // The pods of this phase, pending.
        for i in 0..cfg.pods {
            let mut p = DynamicObject::new("v1", "Pod", &format!("p{phase}-{i}"));
            p.metadata.namespace = Some("bench".into());
            p.data.insert(
                "spec".into(),
                json!({"containers": [{"name": "c", "image": "pause"}]}),
            );
            admin.create(&pods, Some("bench"), &p, &pp).await?;
        }
        let name = if lists == 0 {
            "no load".to_string()
        } else {
            format!("{lists} lists")
        };
        phases.push(run_phase(cfg, &base, phase, lists, name).await?);
    }
    let _ = stop_tx.send(());
    Ok(OverloadBenchReport {
        nodes: cfg.nodes,
        heartbeat_s: cfg.heartbeat.as_secs_f64(),
        grace_s: cfg.grace.as_secs_f64(),
        seats,
        phases,
    })
}

async fn run_phase(
    cfg: &OverloadBenchConfig,
    base: &str,
    phase: usize,
    lists: usize,
    name: String,
) -> Result<Phase, BenchError> {
    let done = Arc::new(AtomicBool::new(false));
    let leases = resource("coordination.k8s.io/v1", "Lease")?;
    let pods = resource("v1", "Pod")?;

    // The tenant.
    let served = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    // Raw GETs whose bodies are read and dropped: the tenant costs the server, not itself.
    let tenant = reqwest::Client::new();
    let url = format!("{base}/api/v1/namespaces/bench/configmaps");
    let mut tenant_tasks = Vec::new();
    for _ in 0..lists {
        let (tenant, url, done) = (tenant.clone(), url.clone(), done.clone());
        let (served, refused) = (served.clone(), refused.clone());
        tenant_tasks.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let r = tenant.get(&url).bearer_auth("tenant-token").send().await;
                match r {
                    Ok(resp) if resp.status().as_u16() == 429 => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) if resp.status().is_success() => {
                        if resp.bytes().await.is_ok() {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // Connection errors under load: neither served nor refused.
                    _ => tokio::task::yield_now().await,
                }
            }
        }));
    }
    if lists > 0 {
        // Let the flood build up before measuring.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let start = Instant::now();
    let (served0, refused0) = (
        served.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );

    // The nodes.
    let mut node_tasks = Vec::new();
    for i in 0..cfg.nodes {
        let node = client(base, &format!("node-{i}-token"))?;
        let (leases, done, every) = (leases.clone(), done.clone(), cfg.heartbeat);
        node_tasks.push(tokio::spawn(async move {
            // Spread the nodes over the interval.
            tokio::time::sleep(every.mul_f64(i as f64 / 50.0 % 1.0)).await;
            let mut lat = Vec::new();
            let mut failures = 0usize;
            let mut last_ok = Instant::now();
            let mut max_gap = Duration::ZERO;
            let mut tick = tokio::time::interval(every);
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                let now = jiff::Timestamp::now();
                let renew = format!(
                    "{}.{:06}Z",
                    now.strftime("%Y-%m-%dT%H:%M:%S"),
                    now.subsec_microsecond()
                );
                let patch = Patch::Merge(json!({"spec": {"renewTime": renew}}));
                let t = Instant::now();
                let r = node
                    .patch(
                        &leases,
                        Some("kube-node-lease"),
                        &format!("node-{i}"),
                        None,
                        &patch,
                        &PatchParams::default(),
                    )
                    .await;
                match r {
                    Ok(_) => {
                        lat.push(t.elapsed());
                        max_gap = max_gap.max(last_ok.elapsed());
                        last_ok = Instant::now();
                    }
                    Err(_) => failures += 1,
                }
            }
            max_gap = max_gap.max(last_ok.elapsed());
            (lat, failures, max_gap)
        }));
    }

    // The scheduler: lists its pending pods and binds them round robin, 8 at a time.
    let scheduler = client(base, "scheduler-token")?;
    let bound = Arc::new(AtomicUsize::new(0));
    let sched = {
        let (done, bound, nodes) = (done.clone(), bound.clone(), cfg.nodes);
        let prefix = format!("p{phase}-");
        tokio::spawn(async move {
            let mut next = 0usize;
            while !done.load(Ordering::Relaxed) {
                let list = scheduler
                    .list(
                        &pods,
                        Some("bench"),
                        &ListParams::default().fields("spec.nodeName="),
                    )
                    .await;
                let Ok(list) = list else { continue };
                let pending: Vec<String> = list
                    .items
                    .iter()
                    .map(|p| p.name().to_string())
                    .filter(|n| n.starts_with(&prefix))
                    .collect();
                if pending.is_empty() {
                    return;
                }
                for chunk in pending.chunks(8) {
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                    let binds = chunk.iter().map(|p| {
                        next += 1;
                        let mut b = DynamicObject::new("v1", "Binding", p);
                        b.metadata.namespace = Some("bench".into());
                        b.data.insert(
                            "target".into(),
                            json!({"apiVersion": "v1", "kind": "Node", "name": format!("node-{}", next % nodes)}),
                        );
                        let (scheduler, pods, bound) = (scheduler.clone(), pods.clone(), bound.clone());
                        let p = p.clone();
                        async move {
                            if scheduler
                                .create_subresource(&pods, Some("bench"), &p, "binding", &b)
                                .await
                                .is_ok()
                            {
                                bound.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                    futures::future::join_all(binds.collect::<Vec<_>>()).await;
                }
            }
        })
    };
    let sched_start = Instant::now();
    // All bound before the phase ends: throughput over the time it took.
    let sched_elapsed = match tokio::time::timeout(cfg.duration, sched).await {
        Ok(_) => sched_start.elapsed(),
        Err(_) => cfg.duration,
    };
    let binds = bound.load(Ordering::Relaxed);
    let rest = cfg.duration.saturating_sub(start.elapsed());
    tokio::time::sleep(rest).await;
    let elapsed = start.elapsed();
    let (served1, refused1) = (
        served.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    done.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let (mut ok, mut failures, mut max_gap) = (0, 0, Duration::ZERO);
    for t in node_tasks {
        if let Ok((l, f, g)) = t.await {
            ok += l.len();
            lat.extend(l);
            failures += f;
            max_gap = max_gap.max(g);
        }
    }
    for t in tenant_tasks {
        t.abort();
    }
    let tenant_served = served1 - served0;
    let tenant_refused = refused1 - refused0;
    let tenant_requests = tenant_served + tenant_refused;
    Ok(Phase {
        name,
        renewals: ok,
        renewal_failures: failures,
        heartbeat: Latency::of(lat),
        max_gap_s: max_gap.as_secs_f64(),
        pods_bound_per_s: binds as f64 / sched_elapsed.as_secs_f64().max(1e-9),
        tenant_requests,
        tenant_429_share: if tenant_requests == 0 {
            0.0
        } else {
            tenant_refused as f64 / tenant_requests as f64
        },
        tenant_lists_per_s: tenant_served as f64 / elapsed.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_reports_both_phases() {
        let cfg = OverloadBenchConfig {
            nodes: 3,
            heartbeat: Duration::from_millis(100),
            lists: 50,
            configmaps: 5,
            pods: 20,
            duration: Duration::from_secs(2),
            grace: Duration::from_secs(40),
        };
        let r = run(&cfg).await.expect("bench");
        assert_eq!(r.phases.len(), 2);
        for p in &r.phases {
            assert!(p.renewals > 0, "{p:?}");
            assert_eq!(
                p.renewal_failures, 0,
                "node-high never refuses one node: {p:?}"
            );
            assert!(p.pods_bound_per_s > 0.0, "{p:?}");
        }
        assert_eq!(r.phases[0].tenant_requests, 0);
        assert!(r.phases[1].tenant_requests > 0);
        let text = r.to_string();
        assert!(
            text.contains("tenant 429 share") && text.contains("50 lists"),
            "{text}"
        );
    }
}
