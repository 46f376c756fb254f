//! # Virtual-time simulation (`orch sim`, `orch.Simulation`)
//!
//! The live cluster's components on a virtual clock: the real API server (memory storage); every
//! controller of the live controller manager, from the same declarations, on orch-runtime's
//! steppable driver; the live scheduler's decision step (`SchedulingCycle`: its queue with
//! back-off, its snapshot and plugins); and the live kubelet's pod sync step on the simulated
//! container runtime, where a pod's run time, exit code and probe results come from
//! annotations. Nothing sleeps in real time: when no work is pending, time jumps to the next
//! timer, so an hour of cluster life takes seconds.
//!
//! A [`Scenario`] names node groups, workloads applied at given times, disruptions (node or zone
//! down/up, cordon, drain, scale, image change, CPU load on a workload) and a duration; a run
//! yields a [`Report`] (latency percentiles, unschedulable pods with reasons, evictions,
//! utilization over time, the decision log, the autoscalers' decisions) and an event log whose
//! hash is equal for equal input and seed.

pub mod bench;
pub mod engine;
pub mod report;
pub mod scenario;

pub use engine::{SimError, SimOptions, Simulation};
pub use report::Report;
pub use scenario::{Action, Disruption, NodeGroup, Scenario, ScenarioError, Workload};

#[cfg(test)]
mod tests;
