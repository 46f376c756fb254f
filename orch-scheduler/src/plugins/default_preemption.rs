//! DefaultPreemption (PostFilter): finds nodes where evicting lower-priority pods lets the pod
//! fit, picks victims as upstream (`framework/preemption` and `defaultpreemption`): remove all
//! lower-priority pods, reprieve PDB-violating pods first then the others, most important
//! first; choose the node with the fewest PDB violations, then the lowest highest-victim
//! priority, lowest priority sum, fewest victims, latest start of the highest-priority victims.

use crate::decision::fit_error_message;
use crate::framework::{NodeStatuses, Plugin, PostFilterPlugin, PostFilterResult};
use crate::pod_info::PodInfo;
use crate::profile::Profile;
use crate::scheduler::fits_on;
use crate::snapshot::{PdbInfo, Snapshot};
use crate::status::{Code, Reason, Status};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `DefaultPreemptionArgs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultPreemptionArgs {
    /// Minimum share of nodes to dry-run (default 10 %).
    #[serde(default = "ten")]
    pub min_candidate_nodes_percentage: i32,
    /// Minimum number of nodes to dry-run (default 100).
    #[serde(default = "hundred")]
    pub min_candidate_nodes_absolute: i32,
}

fn ten() -> i32 {
    10
}
fn hundred() -> i32 {
    100
}

impl Default for DefaultPreemptionArgs {
    fn default() -> Self {
        Self {
            min_candidate_nodes_percentage: 10,
            min_candidate_nodes_absolute: 100,
        }
    }
}

/// The plugin.
#[derive(Debug, Default)]
pub struct DefaultPreemption {
    args: DefaultPreemptionArgs,
}

impl DefaultPreemption {
    /// Registry name.
    pub const NAME: &'static str = "DefaultPreemption";

    /// With args.
    pub fn new(args: DefaultPreemptionArgs) -> Self {
        Self { args }
    }

    fn num_candidates(&self, nodes: usize) -> usize {
        let n = nodes * self.args.min_candidate_nodes_percentage.max(0) as usize / 100;
        n.max(self.args.min_candidate_nodes_absolute.max(0) as usize)
            .min(nodes)
    }
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

/// Upstream `MoreImportantPod`: higher priority, then earlier start.
fn more_important(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority.cmp(&a.priority).then(
        a.start_time
            .unwrap_or(i64::MAX)
            .cmp(&b.start_time.unwrap_or(i64::MAX)),
    )
}

/// Splits pods into (violating, non-violating) PDBs, in order (upstream
/// `filterPodsWithPDBViolation`).
fn split_by_pdb(
    pods: Vec<Arc<PodInfo>>,
    pdbs: &[PdbInfo],
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = pdbs.iter().map(|p| p.disruptions_allowed).collect();
    let (mut bad, mut good) = (Vec::new(), Vec::new());
    for p in pods {
        let mut violating = false;
        for (i, pdb) in pdbs.iter().enumerate() {
            if pdb.namespace != p.namespace
                || pdb.selector.is_everything()
                || !pdb.selector.matches(&p.labels)
                || pdb.disrupted_pods.iter().any(|d| *d == p.name)
            {
                continue;
            }
            allowed[i] -= 1;
            if allowed[i] < 0 {
                violating = true;
            }
        }
        if violating {
            bad.push(p);
        } else {
            good.push(p);
        }
    }
    (bad, good)
}

struct Candidate {
    node: String,
    victims: Vec<Arc<PodInfo>>,
    pdb_violations: usize,
}

/// Removes lower-priority pods from `node`, reprieves as many as possible; restores the
/// snapshot before returning.
fn select_victims(
    profile: &Profile,
    pod: &PodInfo,
    snap: &mut Snapshot,
    node: usize,
    pdbs: &[PdbInfo],
) -> Result<Candidate, Status> {
    let mut potential: Vec<Arc<PodInfo>> = snap
        .node(node)
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status::new(
            Code::UnschedulableAndUnresolvable,
            Reason::NoPreemptionVictims,
        ));
    }
    for p in &potential {
        snap.remove_pod(&p.key);
    }
    let fits = fits_on(profile, pod, snap, node);
    if !fits.is_success() {
        for p in &potential {
            snap.upsert_pod_info(p.clone());
        }
        return Err(fits);
    }
    potential.sort_by(|a, b| more_important(a, b));
    let (violating, non_violating) = split_by_pdb(potential, pdbs);
    let mut victims = Vec::new();
    let mut pdb_violations = 0;
    for (is_violating, list) in [(true, violating), (false, non_violating)] {
        for p in list {
            snap.upsert_pod_info(p.clone());
            if !fits_on(profile, pod, snap, node).is_success() {
                snap.remove_pod(&p.key);
                if is_violating {
                    pdb_violations += 1;
                }
                victims.push(p);
            }
        }
    }
    for v in &victims {
        snap.upsert_pod_info(v.clone());
    }
    victims.sort_by(|a, b| more_important(a, b));
    Ok(Candidate {
        node: snap.node(node).name.clone(),
        victims,
        pdb_violations,
    })
}

/// Upstream `pickOneNodeForPreemption`.
fn pick(cands: &[Candidate]) -> Option<&Candidate> {
    cands.iter().min_by(|a, b| {
        let key = |c: &Candidate| {
            let highest = c.victims.first().map_or(i32::MIN, |v| v.priority);
            let sum: i64 = c
                .victims
                .iter()
                .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
                .sum();
            // Earliest start among the highest-priority victims; later is better.
            let earliest = c
                .victims
                .iter()
                .filter(|v| v.priority == highest)
                .filter_map(|v| v.start_time)
                .min()
                .unwrap_or(i64::MIN);
            (
                c.pdb_violations,
                highest,
                sum,
                c.victims.len(),
                std::cmp::Reverse(earliest),
            )
        };
        key(a).cmp(&key(b))
    })
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(
        &self,
        pod: &PodInfo,
        snap: &mut Snapshot,
        statuses: &NodeStatuses,
        profile: &Profile,
    ) -> (PostFilterResult, Status) {
        let prefix = |msg: String| {
            Status::new(
                Code::Unschedulable,
                Reason::Other {
                    message: format!("preemption: {msg}"),
                },
            )
        };
        if pod.never_preempt {
            return (
                PostFilterResult::default(),
                prefix(Reason::PreemptionPolicyNever.message().into_owned()),
            );
        }
        if let Some(nn) = pod
            .nominated_node
            .as_deref()
            .and_then(|n| snap.node_index(n))
        {
            if snap
                .node(nn)
                .pods
                .iter()
                .any(|p| p.terminating && p.priority < pod.priority)
            {
                return (
                    PostFilterResult::default(),
                    prefix("not eligible due to a terminating pod on the nominated node.".into()),
                );
            }
        }
        let n = snap.len();
        let mut node_statuses: Vec<Status> = Vec::new();
        let mut potential = Vec::new();
        let not_helpful = Status::new(
            Code::UnschedulableAndUnresolvable,
            Reason::PreemptionNotHelpful,
        );
        for i in 0..n {
            match statuses.get(&snap.node(i).name) {
                Some(s) if s.code == Code::UnschedulableAndUnresolvable => {
                    node_statuses.push(not_helpful.clone())
                }
                None => node_statuses.push(not_helpful.clone()),
                Some(_) => potential.push(i),
            }
        }
        let want = self.num_candidates(potential.len());
        let pdbs = snap.pdbs().to_vec();
        let mut candidates = Vec::new();
        for &i in &potential {
            match select_victims(profile, pod, snap, i, &pdbs) {
                Ok(c) => {
                    candidates.push(c);
                    let non_violating = candidates.iter().filter(|c| c.pdb_violations == 0).count();
                    if non_violating > 0 && candidates.len() >= want {
                        break;
                    }
                }
                Err(s) => node_statuses.push(s),
            }
        }
        match pick(&candidates) {
            Some(c) => (
                PostFilterResult {
                    nominated_node: Some(c.node.clone()),
                    victims: c.victims.iter().map(|v| v.key.clone()).collect(),
                },
                Status::success(),
            ),
            None => {
                let (msg, _) = fit_error_message(n, None, node_statuses.iter(), None);
                (PostFilterResult::default(), prefix(msg))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod_named, snapshot};
    use crate::scheduler::Scheduler;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use serde_json::json;

    fn p(
        name: &str,
        prio: i32,
        cpu: &str,
        node: Option<&str>,
        labels: serde_json::Value,
    ) -> PodInfo {
        let mut spec = json!({"priority": prio, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        pod_named(name, labels, spec)
    }

    #[test]
    fn picks_node_with_lowest_priority_victims_and_respects_pdbs() {
        // Two 4-CPU nodes full of pods; node1 has a priority-10 pod, node2 two priority-1 pods.
        let nodes = vec![
            node("node1", json!({}), json!({})),
            node("node2", json!({}), json!({})),
        ];
        let pods = vec![
            p("a", 10, "4", Some("node1"), json!({})),
            p("b", 1, "2", Some("node2"), json!({"app": "b"})),
            p("c", 1, "2", Some("node2"), json!({})),
        ];
        let mut snap = snapshot(nodes, pods);
        let hi = p("hi", 100, "2", None, json!({}));
        let mut s = Scheduler::default();
        let d = s.schedule(&hi, &mut snap);
        match &d.outcome {
            crate::decision::Outcome::Unschedulable {
                nominated_node,
                victims,
                message,
                ..
            } => {
                assert_eq!(nominated_node.as_deref(), Some("node2"));
                assert_eq!(victims.len(), 1);
                assert_eq!(message, "0/2 nodes are available: 2 Insufficient cpu.");
            }
            o => panic!("{o:?}"),
        }
        // A PDB with no disruptions allowed protects b: c becomes the victim.
        let pdb: PodDisruptionBudget =
            serde_json::from_value(json!({"metadata": {"name": "b", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "b"}}}, "status": {"disruptionsAllowed": 0,
            "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}}))
            .unwrap();
        snap.upsert_pdb(&pdb).unwrap();
        let d = s.schedule(&hi, &mut snap);
        match &d.outcome {
            crate::decision::Outcome::Unschedulable { victims, .. } => {
                assert_eq!(victims, &vec!["default/c".to_string()])
            }
            o => panic!("{o:?}"),
        }
        // The snapshot is restored after the dry run.
        assert_eq!(snap.node(1).pods.len(), 2);
    }

    #[test]
    fn no_victims_message() {
        let mut snap = snapshot(
            vec![node("n", json!({}), json!({}))],
            vec![p("a", 100, "4", Some("n"), json!({}))],
        );
        let d = Scheduler::default().schedule(&p("lo", 1, "1", None, json!({})), &mut snap);
        match &d.outcome {
            crate::decision::Outcome::Unschedulable { message, .. } => assert_eq!(message,
                "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."),
            o => panic!("{o:?}"),
        }
        let never = pod_named(
            "nv",
            json!({}),
            json!({"priority": 1000, "preemptionPolicy": "Never",
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}),
        );
        let d = Scheduler::default().schedule(&never, &mut snap);
        match &d.outcome {
            crate::decision::Outcome::Unschedulable { message, .. } => assert!(
                message.ends_with("preemption: not eligible due to preemptionPolicy=Never.."),
                "{message}"
            ),
            o => panic!("{o:?}"),
        }
    }
}
