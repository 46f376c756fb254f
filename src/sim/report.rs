//! What a simulation reports: latencies, unschedulable pods, evictions, utilization over time,
//! the scheduling-decision log and the autoscalers' decisions. Everything here is a function of the event log, so two runs with
//! the same input and seed produce the same report (wall time aside).

use serde::{Deserialize, Serialize};

/// Nearest-rank percentiles of a set of latencies, in seconds of virtual time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    /// How many samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (any order).
    ///
    /// ```
    /// use orch::sim::report::Percentiles;
    /// let p = Percentiles::of(&mut vec![3.0, 1.0, 2.0, 4.0]);
    /// assert_eq!((p.p50, p.p99, p.max, p.count), (2.0, 4.0, 4.0, 4));
    /// ```
    pub fn of(samples: &mut [f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            // Nearest rank: ceil(q * n), 1-based.
            let n = samples.len();
            let r = ((q * n as f64).ceil() as usize).clamp(1, n);
            samples[r - 1]
        };
        Self {
            count: samples.len(),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: samples[samples.len() - 1],
        }
    }
}

/// Pod counts by phase at the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCounts {
    /// Every pod that exists at the end.
    pub total: usize,
    /// Not yet bound to a node.
    pub unscheduled: usize,
    /// `Pending` (bound or not).
    pub pending: usize,
    /// `Running`.
    pub running: usize,
    /// `Succeeded`.
    pub succeeded: usize,
    /// `Failed`.
    pub failed: usize,
}

/// A pod that could not be placed, with the scheduler's reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unschedulable {
    /// `namespace/name`.
    pub pod: String,
    /// e.g. `0/3 nodes are available: 3 Insufficient cpu.`
    pub reason: String,
}

/// A pod removed from a node by the system (taint eviction, drain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Eviction {
    /// Virtual seconds since the start.
    pub time: f64,
    /// `namespace/name`.
    pub pod: String,
    /// Node it ran on.
    pub node: String,
    /// Why (`TaintManagerEviction`, `Drain`, `NodeDeleted`…).
    pub reason: String,
}

/// Cluster-wide utilization at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UtilizationSample {
    /// Virtual seconds since the start.
    pub time: f64,
    /// Requested / allocatable CPU over Ready nodes (0..1).
    pub cpu: f64,
    /// Requested / allocatable memory over Ready nodes (0..1).
    pub memory: f64,
    /// Pods bound to a node.
    pub pods_bound: usize,
    /// Pods not bound to any node.
    pub pods_pending: usize,
    /// Pods in phase Running.
    pub pods_running: usize,
    /// Evictions so far.
    pub evicted: usize,
    /// Nodes that are Ready.
    pub nodes_ready: usize,
}

/// One node's utilization at the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeUtilization {
    /// Node name.
    pub node: String,
    /// Zone label, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Requested / allocatable CPU (0..1).
    pub cpu: f64,
    /// Requested / allocatable memory (0..1).
    pub memory: f64,
    /// Pods on the node.
    pub pods: usize,
}

/// One scheduling attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// Virtual seconds since the start.
    pub time: f64,
    /// `namespace/name`.
    pub pod: String,
    /// Chosen node, or `None` when unschedulable.
    pub node: Option<String>,
    /// Nodes that passed every filter.
    pub feasible: usize,
    /// Final score of the chosen node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<i64>,
    /// The scheduler's sentence (why this node, or why none).
    pub message: String,
}

/// A HorizontalPodAutoscaler's state after a metrics scrape was acted on (or after a rescale
/// between scrapes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaSample {
    /// Virtual seconds since the start.
    pub time: f64,
    /// Namespace of the autoscaler.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `spec.minReplicas` (1 when unset).
    pub min_replicas: i32,
    /// `spec.maxReplicas`.
    pub max_replicas: i32,
    /// `status.currentReplicas`: the target's replicas at the last sync.
    pub current_replicas: i32,
    /// `status.desiredReplicas`: what the last sync asked for.
    pub desired_replicas: i32,
    /// The pods' CPU in percent of their requests at the last sync (`status.currentMetrics`,
    /// a `Resource` cpu metric), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_utilization: Option<i32>,
    /// The reason of the `SuccessfulRescale` events since the previous sample (`cpu
    /// resource utilization (percentage of request) above target`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescale: Option<String>,
}

/// The report of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Seed of the run.
    pub seed: u64,
    /// Virtual seconds simulated.
    pub virtual_seconds: f64,
    /// Real seconds it took (the one field that differs between identical runs).
    pub wall_seconds: f64,
    /// Nodes at the end.
    pub nodes: usize,
    /// Pods by phase at the end.
    pub pods: PodCounts,
    /// Pod created → bound.
    pub scheduling_latency: Percentiles,
    /// Pod created → Running.
    pub startup_latency: Percentiles,
    /// Pods still unschedulable at the end, with the last reason.
    pub unschedulable: Vec<Unschedulable>,
    /// Evictions.
    pub evictions: Vec<Eviction>,
    /// Cluster utilization over time.
    pub utilization: Vec<UtilizationSample>,
    /// Per-node utilization at the end.
    pub node_utilization: Vec<NodeUtilization>,
    /// Scheduling decisions (the last `decisionLimit`, oldest first).
    pub decisions: Vec<DecisionRecord>,
    /// Every HorizontalPodAutoscaler at each metrics scrape, oldest first (empty without
    /// autoscalers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hpa: Vec<HpaSample>,
    /// Lines in the event log.
    pub event_count: usize,
    /// FNV-1a 64 of the event log: equal for equal input and seed.
    pub event_log_hash: String,
}

/// FNV-1a 64-bit hash, used to fingerprint the event log.
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    /// The hash.
    pub fn value(&self) -> u64 {
        self.0
    }
    /// The hash as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
        let p = Percentiles::of(&mut [7.0]);
        assert_eq!((p.p50, p.p99), (7.0, 7.0));
    }

    #[test]
    fn fnv_is_stable() {
        let mut h = Fnv64::default();
        h.write(b"a");
        assert_eq!(h.hex(), "af63dc4c8601ec8c");
    }
}
