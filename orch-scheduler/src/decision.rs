//! [`Decision`]: where a pod goes (or why it cannot go anywhere), with an optional
//! [`Explanation`] of every evaluated node's filter results and scores. Serializable with a
//! stable ordering (nodes by name, plugins in profile order), so decisions snapshot cleanly.

use crate::status::{Code, Reason, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The result of scheduling one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The pod, `namespace/name`.
    pub pod: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Per-node details (when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

impl Decision {
    /// The chosen node, if scheduled.
    pub fn node(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Scheduled { node } => Some(node),
            _ => None,
        }
    }
}

/// What happened to the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Bound (or to be bound) to `node`.
    Scheduled {
        /// The node.
        node: String,
    },
    /// No node fits now.
    Unschedulable {
        /// Upstream's message (`0/5 nodes are available: …`), as in the FailedScheduling event.
        message: String,
        /// Reason histogram of the filter phase, sorted as in the message.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reasons: Vec<ReasonCount>,
        /// Node nominated by preemption.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nominated_node: Option<String>,
        /// Pods preemption deletes (`namespace/name`), in deletion order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        victims: Vec<String>,
        /// Plugins that rejected nodes (the queue moves the pod back on events they care about).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unschedulable_plugins: Vec<String>,
    },
    /// Held back before the queue (scheduling gates).
    Gated {
        /// The message.
        message: String,
    },
    /// Internal error (bad plugin state, no nodes, …).
    Error {
        /// The message.
        message: String,
    },
}

/// How many nodes failed for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    /// Number of nodes.
    pub count: usize,
    /// The reason as data.
    pub reason: Reason,
}

/// One filter plugin's verdict on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterResult {
    /// Plugin name.
    pub plugin: String,
    /// Code.
    pub code: Code,
    /// Reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
}

/// One score plugin's result on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreResult {
    /// Plugin name.
    pub plugin: String,
    /// Score before normalization.
    pub raw: i64,
    /// After normalization (0-100).
    pub normalized: i64,
    /// Plugin weight.
    pub weight: i64,
    /// normalized × weight.
    pub weighted: i64,
}

/// Everything known about one node for this pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeExplanation {
    /// Node name.
    pub node: String,
    /// Filter plugins in order, up to the first failure.
    pub filters: Vec<FilterResult>,
    /// Passed all filters.
    pub feasible: bool,
    /// Score plugins in order (feasible nodes, when scoring ran).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<ScoreResult>,
    /// Sum of weighted scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// Why the winner won.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WinnerExplanation {
    /// The node.
    pub node: String,
    /// Its total score (absent when it was the only feasible node and scoring was skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<i64>,
    /// Best node that lost, with its total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_up: Option<(String, i64)>,
    /// Number of nodes sharing the top score (>1: chosen by the seeded tie-breaker).
    pub tied: usize,
    /// In words.
    pub summary: String,
}

/// Per-node explanation of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Explanation {
    /// Nodes in the cluster.
    pub nodes_total: usize,
    /// Nodes the filters ran on (percentageOfNodesToScore may stop early).
    pub nodes_evaluated: usize,
    /// Nodes that passed.
    pub nodes_feasible: usize,
    /// PreFilter plugins that did not return Success (Skip or a rejection).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_filter: Vec<FilterResult>,
    /// Evaluated nodes, sorted by name.
    pub nodes: Vec<NodeExplanation>,
    /// Why the winner won.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<WinnerExplanation>,
    /// The preemption result, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_filter: Option<String>,
}

/// Renders upstream's FitError message (`framework.FitError.Error`):
/// `0/N nodes are available: <prefilter msg | sorted "count reason" list>. <postfilter msg>.`
///
/// Reasons are counted per node and sorted as strings (`"2 Insufficient cpu"` sorts before
/// `"3 node(s) …"`), exactly as upstream does.
///
/// ```
/// use orch_scheduler::decision::fit_error_message;
/// use orch_scheduler::status::{Code, Reason, Status};
/// let cpu = Status::new(Code::Unschedulable, Reason::InsufficientResource {
///     resource: "cpu".into(), requested: 1, used: 0, capacity: 0 });
/// let taint = Status::new(Code::UnschedulableAndUnresolvable, Reason::UntoleratedTaint {
///     key: "dedicated".into(), value: "gpu".into(), effect: "NoSchedule".into() });
/// let statuses = vec![cpu.clone(), cpu, taint.clone(), taint.clone(), taint];
/// assert_eq!(fit_error_message(5, None, statuses.iter(), None).0,
///     "0/5 nodes are available: 2 Insufficient cpu, 3 node(s) had untolerated taint {dedicated: gpu}.");
/// ```
pub fn fit_error_message<'a>(
    num_all_nodes: usize,
    pre_filter: Option<&Status>,
    node_statuses: impl Iterator<Item = &'a Status>,
    post_filter_msg: Option<&str>,
) -> (String, Vec<ReasonCount>) {
    let mut msg = format!("0/{num_all_nodes} nodes are available:");
    let mut histogram = Vec::new();
    match pre_filter {
        Some(s) => {
            msg.push_str(&format!(" {}.", s.message()));
        }
        None => {
            let mut by_text: BTreeMap<String, (usize, Reason)> = BTreeMap::new();
            for s in node_statuses {
                for r in s.reasons.iter() {
                    let text = r.message().into_owned();
                    let e = by_text.entry(text).or_insert((0, r.clone()));
                    e.0 += 1;
                }
            }
            let mut items: Vec<(String, usize, Reason)> = by_text
                .into_iter()
                .map(|(text, (n, r))| (format!("{n} {text}"), n, r))
                .collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            if !items.is_empty() {
                let joined: Vec<&str> = items.iter().map(|i| i.0.as_str()).collect();
                msg.push_str(&format!(" {}.", joined.join(", ")));
            }
            histogram = items
                .into_iter()
                .map(|(_, count, reason)| ReasonCount { count, reason })
                .collect();
        }
    }
    if let Some(p) = post_filter_msg.filter(|p| !p.is_empty()) {
        msg.push_str(&format!(" {p}."));
    }
    (msg, histogram)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preemption_message_has_upstream_double_period() {
        let s = Status::new(
            Code::Unschedulable,
            Reason::InsufficientResource {
                resource: "cpu".into(),
                requested: 1,
                used: 0,
                capacity: 0,
            },
        );
        let inner = fit_error_message(
            3,
            None,
            [Status::new(
                Code::UnschedulableAndUnresolvable,
                Reason::NoPreemptionVictims,
            )]
            .iter()
            .cycle()
            .take(3),
            None,
        )
        .0;
        let post = format!("preemption: {inner}");
        let (msg, hist) = fit_error_message(3, None, [s.clone(), s.clone(), s].iter(), Some(&post));
        assert_eq!(msg, "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod..");
        assert_eq!(hist.len(), 1);
        assert_eq!(hist[0].count, 3);
    }

    #[test]
    fn prefilter_message_replaces_histogram() {
        let s = Status::new(
            Code::UnschedulableAndUnresolvable,
            Reason::Other {
                message: "boom".into(),
            },
        );
        let (msg, _) = fit_error_message(2, Some(&s), std::iter::empty(), None);
        assert_eq!(msg, "0/2 nodes are available: boom.");
    }
}
