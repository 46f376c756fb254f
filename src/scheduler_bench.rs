//! `orch bench scheduler`: the scheduler_perf-style workloads of `orch_scheduler::bench`,
//! measured twice — the pure algorithm on the snapshot, and with every binding written through
//! the in-process API server (memory store) — plus the scan-limit loop and the ratio.
//!
//! With binding, the scheduling loop runs on the calling task and each `pods/binding` POST
//! (and each preemption victim DELETE) is spawned on the runtime, as the driver does; the
//! clock stops when the last binding is acknowledged.

use k8s_openapi::api::core::v1::{Node, Pod};
use orch_apiserver::{ApiServer, ApiServerConfig};
use orch_scheduler::bench::{apply, Recorder, Throughput, WorkloadReport};
use orch_scheduler::decision::Outcome;
use orch_scheduler::pod_info::PodInfo;
use orch_scheduler::{Scheduler, Snapshot};
use orch_types::client::{Api, DeleteParams, SharedClient};
use orch_types::{ApiResource, DynamicObject};
use serde::Serialize;
use std::sync::Arc;

/// Both measurements of one workload.
#[derive(Debug, Clone, Serialize)]
pub struct SchedulerBenchReport {
    /// Algorithm-only figures and scan limit.
    #[serde(flatten)]
    pub pure: WorkloadReport,
    /// With every binding written through the in-process API server.
    pub with_binding: Throughput,
    /// with_binding.mean / scan_limit.mean.
    pub binding_ratio: f64,
}

impl std::fmt::Display for SchedulerBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = |f: &mut std::fmt::Formatter<'_>, what: &str, t: &Throughput| {
            writeln!(
                f,
                "  {what:<14} {:>9.0} pods/s mean  p50 {:>9.0}  p90 {:>9.0}  p99 {:>9.0}  ({} of {} scheduled in {:.2}s, {} ms windows)",
                t.mean, t.p50, t.p90, t.p99, t.scheduled, t.pods, t.seconds, t.window_ms
            )
        };
        writeln!(
            f,
            "{} ({} nodes, {} initial pods)",
            self.pure.workload, self.pure.nodes, self.pure.init_pods
        )?;
        line(f, "algorithm", &self.pure.algorithm)?;
        line(f, "with binding", &self.with_binding)?;
        line(f, "scan limit", &self.pure.scan_limit)?;
        write!(
            f,
            "  ratio scheduler/scan-limit: algorithm {:.3}, with binding {:.3}",
            self.pure.ratio, self.binding_ratio
        )
    }
}

async fn bind(client: &SharedClient, pod: &PodInfo, node: &str) -> Result<(), String> {
    let binding = orch_scheduler::framework::BindPlugin::binding(
        &orch_scheduler::framework::DefaultBinder,
        pod,
        node,
    )
    .ok_or("no binding")?;
    let body = DynamicObject::from_typed(&binding).map_err(|e| e.to_string())?;
    client
        .create_subresource(
            &ApiResource::of::<Pod>(),
            Some(&pod.namespace),
            &pod.name,
            "binding",
            &body,
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("binding {}: {e}", pod.key))
}

/// Runs one workload both ways.
pub async fn scheduler(name: &str) -> Result<SchedulerBenchReport, String> {
    let pure = tokio::task::block_in_place(|| orch_scheduler::bench::run(name))?;
    let w = orch_scheduler::bench::workload(name).ok_or("unknown workload")?;
    let api = ApiServer::new(ApiServerConfig::memory()).map_err(|e| e.to_string())?;
    let client: SharedClient = api.client();
    let nodes: Api<Node> = Api::all(client.clone());
    for n in &w.nodes {
        nodes.create(n).await.map_err(|e| e.to_string())?;
    }
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let mut namespace = k8s_openapi::api::core::v1::Namespace::default();
    namespace.metadata.name = Some("sched-0".into());
    ns.create(&namespace).await.map_err(|e| e.to_string())?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "sched-0");
    for p in w.init_pods.iter().chain(w.measured_pods.iter()) {
        pods.create(p).await.map_err(|e| e.to_string())?;
    }
    let mut s = Scheduler::default();
    let mut snap = Snapshot::new();
    for n in &w.nodes {
        snap.upsert_node(n.clone()).map_err(|e| e.to_string())?;
    }
    for p in &w.init_pods {
        let info = PodInfo::new(p.clone()).map_err(|e| e.to_string())?;
        let d = s.schedule_and_assume(&info, &mut snap);
        let d = apply(&mut s, &mut snap, &info, d);
        if let Some(n) = d.node() {
            bind(&client, &info, n).await?;
        }
    }
    let mut rec = Recorder::start();
    let mut inflight = std::collections::VecDeque::new();
    let pods_r = ApiResource::of::<Pod>();
    for p in &w.measured_pods {
        let info = Arc::new(PodInfo::new(Arc::new(p.clone())).map_err(|e| e.to_string())?);
        let d = s.schedule_and_assume(&info, &mut snap);
        if let Outcome::Unschedulable { victims, .. } = &d.outcome {
            for v in victims.clone() {
                let c = client.clone();
                let r = pods_r.clone();
                inflight.push_back(tokio::spawn(async move {
                    let (ns, n) = v.split_once('/').unwrap_or(("default", &v));
                    c.delete(&r, Some(ns), n, &DeleteParams::immediate())
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }));
            }
        }
        let d = apply(&mut s, &mut snap, &info, d);
        let scheduled = d.node().map(str::to_string);
        if let Some(n) = scheduled.clone() {
            let c = client.clone();
            let i = info.clone();
            inflight.push_back(tokio::spawn(async move { bind(&c, &i, &n).await }));
        }
        rec.done(scheduled.is_some());
        while inflight.len() > 256 {
            if let Some(h) = inflight.pop_front() {
                h.await.map_err(|e| e.to_string())??;
            }
        }
    }
    for h in inflight {
        h.await.map_err(|e| e.to_string())??;
    }
    let with_binding = rec.finish();
    Ok(SchedulerBenchReport {
        binding_ratio: if pure.scan_limit.mean > 0.0 {
            with_binding.mean / pure.scan_limit.mean
        } else {
            0.0
        },
        pure,
        with_binding,
    })
}
