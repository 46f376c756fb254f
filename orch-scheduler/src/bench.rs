//! Benchmark workloads modeled on upstream `test/integration/scheduler_perf` (5000-node
//! variants of `performance-config.yaml`), the throughput measurement (pods/s, mean and
//! p50/p90/p99 of fixed windows, as upstream's SchedulingThroughput) of the pure algorithm, and
//! the "scan limit": a bare loop over packed per-node free CPU/memory arrays that picks the
//! best node per pod, i.e. the least work any scheduler must do.
//!
//! Node template: 4 CPU, 32Gi, 110 pods (`node-default.yaml`); pod template: `pause`,
//! 100m/500Mi (`pod-default.yaml`). Timing uses `std::time::Instant`: this is a harness, not a
//! scheduling core.

use crate::decision::{Decision, Outcome};
use crate::pod_info::PodInfo;
use crate::scheduler::Scheduler;
use crate::snapshot::Snapshot;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Workload names.
pub const WORKLOADS: &[&str] = &[
    "SchedulingBasic",
    "SchedulingPodAntiAffinity",
    "SchedulingPodAffinity",
    "SchedulingNodeAffinity",
    "TopologySpreading",
    "PreferredTopologySpreading",
    "PreemptionBasic",
    "SchedulingDaemonset",
];

/// A workload: nodes, pods created (and scheduled) before measuring, measured pods.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Name.
    pub name: String,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Pods scheduled before measuring.
    pub init_pods: Vec<Pod>,
    /// Pods whose scheduling is measured.
    pub measured_pods: Vec<Pod>,
}

fn node(i: usize, labels: Value) -> Node {
    let name = format!("node-{i}");
    let mut l = json!({"kubernetes.io/hostname": name});
    if let (Some(m), Some(extra)) = (l.as_object_mut(), labels.as_object()) {
        for (k, v) in extra {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": l},
        "status": {"capacity": {"pods": "110", "cpu": "4", "memory": "32Gi"},
                   "allocatable": {"pods": "110", "cpu": "4", "memory": "32Gi"}}}))
    .unwrap_or_default()
}

fn pod(ns: &str, name: String, labels: Value, extra_spec: Value, cpu: &str) -> Pod {
    let mut spec = json!({"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
        "ports": [{"containerPort": 80}],
        "resources": {"requests": {"cpu": cpu, "memory": "500Mi"}, "limits": {"cpu": cpu, "memory": "500Mi"}}}]});
    if let (Some(m), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": spec}),
    )
    .unwrap_or_default()
}

/// Builds a workload by name (`None` if unknown).
pub fn workload(name: &str) -> Option<Workload> {
    let zones = ["moon-1", "moon-2", "moon-3"];
    let plain = |n: usize| (0..n).map(|i| node(i, json!({}))).collect::<Vec<_>>();
    let pods = |prefix: &str, n: usize, labels: Value, spec: Value, cpu: &str| {
        (0..n)
            .map(|i| {
                pod(
                    "sched-0",
                    format!("{prefix}-{i}"),
                    labels.clone(),
                    spec.clone(),
                    cpu,
                )
            })
            .collect::<Vec<_>>()
    };
    let w = |nodes, init, measured| {
        Some(Workload {
            name: name.to_string(),
            nodes,
            init_pods: init,
            measured_pods: measured,
        })
    };
    match name {
        "SchedulingBasic" => w(
            plain(5000),
            pods("init", 1000, json!({}), json!({}), "100m"),
            pods("pod", 10000, json!({}), json!({}), "100m"),
        ),
        "SchedulingPodAntiAffinity" => {
            let spec = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"color": "green"}}, "topologyKey": "kubernetes.io/hostname",
                 "namespaces": ["sched-0", "sched-1"]}]}}});
            w(
                plain(5000),
                pods(
                    "init",
                    1000,
                    json!({"color": "green"}),
                    spec.clone(),
                    "100m",
                ),
                pods("pod", 1000, json!({"color": "green"}), spec, "100m"),
            )
        }
        "SchedulingPodAffinity" => {
            let nodes = (0..5000)
                .map(|i| node(i, json!({"topology.kubernetes.io/zone": "zone1"})))
                .collect();
            let spec = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"foo": ""}}, "topologyKey": "topology.kubernetes.io/zone",
                 "namespaces": ["sched-0", "sched-1"]}]}}});
            w(
                nodes,
                pods("init", 5000, json!({"foo": ""}), spec.clone(), "100m"),
                pods("pod", 5000, json!({"foo": ""}), spec, "100m"),
            )
        }
        "SchedulingNodeAffinity" => {
            let nodes = (0..5000)
                .map(|i| node(i, json!({"topology.kubernetes.io/zone": "zone1"})))
                .collect();
            let spec = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone1", "zone2"]}]}]}}}});
            w(
                nodes,
                pods("init", 5000, json!({}), spec.clone(), "100m"),
                pods("pod", 5000, json!({}), spec, "100m"),
            )
        }
        "TopologySpreading" | "PreferredTopologySpreading" => {
            let nodes = (0..5000)
                .map(|i| node(i, json!({"topology.kubernetes.io/zone": zones[i % 3]})))
                .collect();
            let when = if name == "TopologySpreading" {
                "DoNotSchedule"
            } else {
                "ScheduleAnyway"
            };
            let spec = json!({"topologySpreadConstraints": [{"maxSkew": 5, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": when, "labelSelector": {"matchExpressions": [{"key": "color", "operator": "In", "values": ["blue"]}]}}]});
            w(
                nodes,
                pods("init", 5000, json!({}), json!({}), "100m"),
                pods("pod", 5000, json!({"color": "blue"}), spec, "100m"),
            )
        }
        "PreemptionBasic" => {
            let low = pods("low", 2000, json!({}), json!({"priority": 10}), "900m");
            let high = pods("high", 500, json!({}), json!({"priority": 1000}), "3000m");
            w(plain(500), low, high)
        }
        "SchedulingDaemonset" => {
            let n = 15000;
            let measured = (0..n)
                .map(|i| {
                    let spec = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [format!("node-{i}")]}]}]}}},
                        "tolerations": [{"operator": "Exists"}]});
                    pod("sched-0", format!("ds-{i}"), json!({"app": "ds"}), spec, "100m")
                })
                .collect();
            w(plain(n), Vec::new(), measured)
        }
        _ => None,
    }
}

/// Pods/s figures of one measurement.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Throughput {
    /// Pods measured.
    pub pods: usize,
    /// Pods that got a node.
    pub scheduled: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// pods / seconds.
    pub mean: f64,
    /// Window length used for the percentiles (1 s; 100 ms for runs under 5 s).
    pub window_ms: u64,
    /// Median window throughput (pods/s).
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Records completion times and computes [`Throughput`].
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    stamps: Vec<Duration>,
    scheduled: usize,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::start()
    }
}

impl Recorder {
    /// Starts the clock.
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
            stamps: Vec::new(),
            scheduled: 0,
        }
    }

    /// One pod done (`scheduled`: it got a node).
    pub fn done(&mut self, scheduled: bool) {
        self.stamps.push(self.start.elapsed());
        self.scheduled += usize::from(scheduled);
    }

    /// The figures. Percentiles are over *completed* windows (upstream samples every second);
    /// "p50" is the median window's rate.
    pub fn finish(&self) -> Throughput {
        let total = self.start.elapsed();
        let secs = total.as_secs_f64();
        let window = if secs >= 5.0 {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        };
        let full = (total.as_nanos() / window.as_nanos()) as usize;
        let mut counts = vec![0usize; full.max(1)];
        for s in &self.stamps {
            let w = (s.as_nanos() / window.as_nanos()) as usize;
            if w < counts.len() {
                counts[w] += 1;
            }
        }
        let per_sec = 1.0 / window.as_secs_f64();
        let mut rates: Vec<f64> = counts.iter().map(|c| *c as f64 * per_sec).collect();
        rates.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| {
            if rates.is_empty() {
                return 0.0;
            }
            // Upstream reports the rate that p% of windows reach or exceed the lower tail of;
            // we report the p-th percentile of window rates (nearest rank).
            let idx = ((p / 100.0) * rates.len() as f64).ceil() as usize;
            rates[idx.clamp(1, rates.len()) - 1]
        };
        Throughput {
            pods: self.stamps.len(),
            scheduled: self.scheduled,
            seconds: secs,
            mean: if secs > 0.0 {
                self.stamps.len() as f64 / secs
            } else {
                0.0
            },
            window_ms: window.as_millis() as u64,
            p50: pct(50.0),
            p90: pct(90.0),
            p99: pct(99.0),
        }
    }
}

/// Result of one workload run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkloadReport {
    /// Workload.
    pub workload: String,
    /// Nodes.
    pub nodes: usize,
    /// Initial pods.
    pub init_pods: usize,
    /// The pure algorithm on the snapshot (schedule + assume; preemption applied).
    pub algorithm: Throughput,
    /// The scan-limit loop.
    pub scan_limit: Throughput,
    /// algorithm.mean / scan_limit.mean.
    pub ratio: f64,
}

/// Applies a decision to the snapshot: a preemption deletes its victims and retries once.
pub fn apply(s: &mut Scheduler, snap: &mut Snapshot, info: &PodInfo, d: Decision) -> Decision {
    if let Outcome::Unschedulable {
        nominated_node: Some(n),
        victims,
        ..
    } = &d.outcome
    {
        for v in victims {
            snap.remove_pod(v);
        }
        let mut p = info.clone();
        p.nominated_node = Some(n.clone());
        return s.schedule_and_assume(&p, snap);
    }
    d
}

/// Builds the snapshot with nodes and scheduled init pods.
pub fn prepare(w: &Workload, s: &mut Scheduler) -> Result<Snapshot, String> {
    let mut snap = Snapshot::new();
    for n in &w.nodes {
        snap.upsert_node(n.clone()).map_err(|e| e.to_string())?;
    }
    for p in &w.init_pods {
        let info = PodInfo::new(p.clone()).map_err(|e| e.to_string())?;
        let d = s.schedule_and_assume(&info, &mut snap);
        apply(s, &mut snap, &info, d);
    }
    Ok(snap)
}

/// Measures the pure algorithm: `PodInfo::new` + schedule + assume per pod.
pub fn run_algorithm(w: &Workload) -> Result<(Throughput, Snapshot), String> {
    let mut s = Scheduler::default();
    let mut snap = prepare(w, &mut s)?;
    let mut rec = Recorder::start();
    for p in &w.measured_pods {
        let info = PodInfo::new(Arc::new(p.clone())).map_err(|e| e.to_string())?;
        let d = s.schedule_and_assume(&info, &mut snap);
        let d = apply(&mut s, &mut snap, &info, d);
        rec.done(d.node().is_some());
    }
    Ok((rec.finish(), snap))
}

/// The scan limit: per pod, one pass over packed free-CPU/free-memory arrays of all nodes,
/// picking the node with most free CPU that fits, then subtracting the request.
pub fn run_scan_limit(w: &Workload) -> Result<Throughput, String> {
    let mut s = Scheduler::default();
    let snap = prepare(w, &mut s)?;
    let mut cpu: Vec<i64> = snap
        .nodes()
        .iter()
        .map(|n| n.allocatable.milli_cpu - n.requested.milli_cpu)
        .collect();
    let mut mem: Vec<i64> = snap
        .nodes()
        .iter()
        .map(|n| n.allocatable.memory - n.requested.memory)
        .collect();
    let reqs: Vec<(i64, i64)> = w
        .measured_pods
        .iter()
        .map(|p| {
            PodInfo::new(p.clone())
                .map(|i| (i.requests.requested.milli_cpu, i.requests.requested.memory))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let mut rec = Recorder::start();
    for (c, m) in reqs {
        let mut best = usize::MAX;
        let mut best_score = i64::MIN;
        for i in 0..cpu.len() {
            if cpu[i] >= c && mem[i] >= m {
                let score = cpu[i] + (mem[i] >> 20);
                if score > best_score {
                    best_score = score;
                    best = i;
                }
            }
        }
        if best != usize::MAX {
            cpu[best] -= c;
            mem[best] -= m;
        }
        rec.done(best != usize::MAX);
    }
    Ok(rec.finish())
}

/// Measures the same pods through [`SchedulingCycle`](crate::cycle::SchedulingCycle), as the
/// driver and the simulator run them: `pod_added` (queue admission), `step` (pop, schedule,
/// assume, bind effect), then the executor's side done synchronously (`bind_succeeded` and
/// the bound pod back through `pod_updated`; preemption victims through `pod_deleted`). Time
/// is a [`ManualClock`](orch_types::clock::ManualClock) moved to `next_due` when nothing is
/// active (preemptors wait out their back-off). Init pods go the same way, unmeasured.
pub fn run_cycle(w: &Workload) -> Result<Throughput, String> {
    use crate::cycle::{Effect, SchedulingCycle};
    let clock = orch_types::clock::ManualClock::at_epoch_seconds(1_000_000);
    let mut c = SchedulingCycle::new(Scheduler::default(), Arc::new(clock.clone()));
    for n in &w.nodes {
        c.node_added(Arc::new(n.clone()));
    }
    let drain = |c: &mut SchedulingCycle, mut rec: Option<&mut Recorder>| {
        loop {
            let Some(a) = c.step() else {
                match c.next_due() {
                    Some(t) if c.queue().lens().1 > 0 => {
                        clock.set(t);
                        continue;
                    }
                    _ => break,
                }
            };
            let mut bound = false;
            for e in a.effects {
                match e {
                    Effect::Bind { pod, node, .. } => {
                        c.bind_succeeded(&pod.key);
                        let mut p = (*pod.pod).clone();
                        p.spec.get_or_insert_with(Default::default).node_name = Some(node);
                        c.pod_updated(Arc::new(p));
                        bound = true;
                    }
                    Effect::Preempt { victims } => {
                        for v in victims {
                            if let Some(p) = c.snapshot().pod(&v).map(|p| p.pod.clone()) {
                                c.pod_deleted(&p);
                            }
                        }
                    }
                    Effect::MarkUnschedulable { .. } | Effect::Event(_) => {}
                }
            }
            // A pod counts once: when it is bound, or when it is given up on.
            let retried = c.queue().contains(&a.key);
            if let Some(r) = rec.as_deref_mut() {
                if bound || !retried {
                    r.done(bound);
                }
            }
        }
    };
    for p in &w.init_pods {
        c.pod_added(Arc::new(p.clone()));
    }
    drain(&mut c, None);
    let mut rec = Recorder::start();
    for p in &w.measured_pods {
        c.pod_added(Arc::new(p.clone()));
    }
    drain(&mut c, Some(&mut rec));
    Ok(rec.finish())
}

/// Runs a workload: algorithm, then scan limit.
pub fn run(name: &str) -> Result<WorkloadReport, String> {
    let w = workload(name)
        .ok_or_else(|| format!("unknown workload {name:?}; known: {}", WORKLOADS.join(", ")))?;
    let (algorithm, _) = run_algorithm(&w)?;
    let scan_limit = run_scan_limit(&w)?;
    Ok(WorkloadReport {
        workload: w.name.clone(),
        nodes: w.nodes.len(),
        init_pods: w.init_pods.len(),
        ratio: if scan_limit.mean > 0.0 {
            algorithm.mean / scan_limit.mean
        } else {
            0.0
        },
        algorithm,
        scan_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_builds() {
        for name in WORKLOADS {
            let w = workload(name).unwrap();
            assert!(!w.nodes.is_empty() && !w.measured_pods.is_empty(), "{name}");
            assert!(PodInfo::new(w.measured_pods[0].clone()).is_ok(), "{name}");
        }
        assert!(workload("Nope").is_none());
    }

    #[test]
    fn recorder_percentiles() {
        let mut r = Recorder::start();
        for _ in 0..10 {
            r.done(true);
        }
        let t = r.finish();
        assert_eq!(t.pods, 10);
        assert_eq!(t.scheduled, 10);
        assert!(t.p99 >= t.p50);
    }

    #[test]
    fn the_cycle_schedules_a_small_workload_like_the_algorithm() {
        for name in ["SchedulingBasic", "PreemptionBasic"] {
            let mut w = workload(name).unwrap();
            w.nodes.truncate(5);
            w.init_pods.truncate(20);
            w.measured_pods.truncate(5);
            let (algorithm, _) = run_algorithm(&w).unwrap();
            let cycle = run_cycle(&w).unwrap();
            assert_eq!(cycle.pods, 5, "{name}");
            assert_eq!(cycle.scheduled, algorithm.scheduled, "{name}");
        }
    }

    #[test]
    fn small_preemption_run_places_high_priority_pods() {
        let mut w = workload("PreemptionBasic").unwrap();
        w.nodes.truncate(5);
        w.init_pods.truncate(20);
        w.measured_pods.truncate(5);
        let (t, snap) = run_algorithm(&w).unwrap();
        assert_eq!(t.scheduled, 5);
        // Each high-priority pod evicted three 900m pods.
        assert_eq!(snap.all_pods().filter(|p| p.priority == 10).count(), 5);
    }
}
