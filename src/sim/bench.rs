//! `orch bench sim`: a large cluster driven to steady state in virtual time; wall time and
//! peak memory are the figures. Measured here, never asserted in tests.

use super::engine::{SimOptions, Simulation};
use super::scenario::{NodeGroup, Scenario, Workload};
use serde::Serialize;
use serde_json::json;
use std::time::Instant;

/// Figures of one `orch bench sim` run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimBench {
    /// Nodes simulated.
    pub nodes: usize,
    /// Pods asked for (Deployment replicas).
    pub pods: usize,
    /// Pods Running at the end.
    pub running: usize,
    /// Virtual seconds until steady state.
    pub virtual_seconds: f64,
    /// Wall seconds to build the cluster (nodes registered).
    pub setup_seconds: f64,
    /// Wall seconds from the workloads' creation to steady state.
    pub run_seconds: f64,
    /// Peak resident memory of the process (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Pods per wall second during the run.
    pub pods_per_second: f64,
    /// Scheduling latency p99, virtual seconds.
    pub scheduling_p99: f64,
}

impl std::fmt::Display for SimBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "orch bench sim: {} nodes, {} pods",
            self.nodes, self.pods
        )?;
        writeln!(f, "  setup (nodes registered)  {:.2} s", self.setup_seconds)?;
        writeln!(
            f,
            "  run to steady state       {:.2} s wall, {:.1} s virtual",
            self.run_seconds, self.virtual_seconds
        )?;
        writeln!(f, "  pods running              {}", self.running)?;
        writeln!(
            f,
            "  throughput                {:.0} pods/s",
            self.pods_per_second
        )?;
        writeln!(
            f,
            "  scheduling latency p99    {:.3} s (virtual)",
            self.scheduling_p99
        )?;
        write!(
            f,
            "  peak RSS                  {:.0} MiB",
            self.peak_rss_mib
        )
    }
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The benchmark scenario: `nodes` nodes of 32 CPU / 128 GiB over 3 zones, and `pods` pods in
/// Deployments of at most 1,000 replicas each (100m CPU, 128 MiB per pod).
pub fn scenario(nodes: u32, pods: u32) -> Scenario {
    let mut workloads = Vec::new();
    let mut left = pods;
    let mut i = 0;
    while left > 0 {
        let n = left.min(1000);
        left -= n;
        workloads.push(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("app-{i}"), "namespace": "default"},
            "spec": {
                "replicas": n,
                "selector": {"matchLabels": {"app": format!("app-{i}")}},
                "template": {
                    "metadata": {"labels": {"app": format!("app-{i}")}},
                    "spec": {"containers": [{"name": "app", "image": "registry.example/app:1",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
                }
            }
        }));
        i += 1;
    }
    Scenario {
        node_groups: vec![NodeGroup {
            name: "node".into(),
            count: nodes,
            zones: vec!["a".into(), "b".into(), "c".into()],
            template: json!({"status": {"capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"}}}),
        }],
        workloads: vec![Workload {
            manifests: workloads,
            ..Default::default()
        }],
        sample_every: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    }
}

/// Runs the benchmark.
pub async fn run(nodes: u32, pods: u32) -> Result<SimBench, super::SimError> {
    let t0 = Instant::now();
    let opts = SimOptions {
        keep_log: false,
        events: false,
        decision_limit: 1000,
        explain: false,
        ..Default::default()
    };
    let mut sim = Simulation::new(scenario(nodes, pods), opts).await?;
    let setup = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    sim.run_until_stable(3600.0, || false).await;
    let run = t1.elapsed().as_secs_f64();
    let r = sim.report();
    // Freeing hundreds of thousands of objects one by one takes seconds and measures nothing:
    // the process ends right after the figures are printed.
    std::mem::forget(sim);
    Ok(SimBench {
        nodes: nodes as usize,
        pods: pods as usize,
        running: r.pods.running,
        virtual_seconds: r.virtual_seconds,
        setup_seconds: setup,
        run_seconds: run,
        peak_rss_mib: peak_rss_mib(),
        pods_per_second: if run > 0.0 {
            r.pods.running as f64 / run
        } else {
            0.0
        },
        scheduling_p99: r.scheduling_latency.p99,
    })
}
