//! [`Scheduler`]: one scheduling cycle (upstream `schedule_one.go` `schedulePod`): PreFilter,
//! Filter over a rotating window of nodes limited by percentageOfNodesToScore, PostFilter
//! (preemption) when nothing fits, PreScore/Score/normalize/weights, and a seeded tie-break.

use crate::config::{num_feasible_nodes_to_find, ConfigError, KubeSchedulerConfiguration};
use crate::cycle_state::CycleState;
use crate::decision::*;
use crate::framework::{NodeStatuses, PostFilterResult};
use crate::pod_info::PodInfo;
use crate::profile::{Profile, Registry};
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Seed of the tie-breaking RNG unless [`Scheduler::with_seed`] says otherwise.
pub const DEFAULT_SEED: u64 = 0x6f72_6368;

/// The scheduling algorithm with its profiles. Not `Sync`: one scheduling loop owns it.
pub struct Scheduler {
    profiles: Vec<Arc<Profile>>,
    next_start: usize,
    rng: ChaCha8Rng,
    explain: bool,
    state: CycleState,
    feasible: Vec<usize>,
    failed: Vec<(usize, Status)>,
    scores: Vec<i64>,
    totals: Vec<i64>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("profiles", &self.profiles)
            .field("explain", &self.explain)
            .finish()
    }
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new(vec![Profile::default()])
    }
}

/// Runs every PreFilter and the Filters of one node with a fresh cycle state (preemption's
/// "does the pod fit now" check).
pub fn fits_on(profile: &Profile, pod: &PodInfo, snap: &Snapshot, node: usize) -> Status {
    let mut state = CycleState::default();
    for (name, p) in &profile.pre_filter {
        let r = p.pre_filter(&mut state, pod, snap);
        match r.status.code {
            Code::Success => {
                if let Some(names) = r.node_names {
                    if !names.contains(&snap.node(node).name) {
                        return Status::new(
                            Code::UnschedulableAndUnresolvable,
                            Reason::Other {
                                message: format!("node(s) didn't satisfy plugin(s) [{name}]"),
                            },
                        )
                        .with_plugin(name);
                    }
                }
            }
            Code::Skip => state.skip_filter(name),
            _ => return r.status.with_plugin(name),
        }
    }
    let active = active_filters(profile, &state);
    run_filters(profile, &active, &state, pod, snap, node, None)
}

/// Indices of the filter plugins not skipped in this cycle (computed once per cycle so the
/// per-node loop does no name comparisons).
fn active_filters(profile: &Profile, state: &CycleState) -> Vec<usize> {
    (0..profile.filter.len())
        .filter(|i| !state.is_filter_skipped(profile.filter[*i].0))
        .collect()
}

fn run_filters(
    profile: &Profile,
    active: &[usize],
    state: &CycleState,
    pod: &PodInfo,
    snap: &Snapshot,
    node: usize,
    mut explain: Option<&mut Vec<FilterResult>>,
) -> Status {
    let ni = snap.node(node);
    for &k in active {
        let (name, f) = &profile.filter[k];
        let s = f.filter(state, pod, ni, snap);
        if let Some(e) = explain.as_deref_mut() {
            e.push(FilterResult {
                plugin: (*name).to_string(),
                code: s.code,
                reasons: s.reasons.to_vec(),
            });
        }
        if !s.is_success() {
            return s.with_plugin(name);
        }
    }
    Status::success()
}

impl Scheduler {
    /// A scheduler with these profiles.
    pub fn new(profiles: Vec<Profile>) -> Self {
        Self {
            profiles: profiles.into_iter().map(Arc::new).collect(),
            next_start: 0,
            rng: ChaCha8Rng::seed_from_u64(DEFAULT_SEED),
            explain: false,
            state: CycleState::default(),
            feasible: Vec::new(),
            failed: Vec::new(),
            scores: Vec::new(),
            totals: Vec::new(),
        }
    }

    /// From a configuration file, with the in-tree plugins (or your registry).
    pub fn from_config(
        cfg: &KubeSchedulerConfiguration,
        registry: &Registry,
    ) -> Result<Self, ConfigError> {
        let profiles = cfg
            .profiles
            .iter()
            .map(|p| Profile::from_config(p, cfg.percentage_of_nodes_to_score, registry))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(profiles))
    }

    /// Reseeds the tie-breaker.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self
    }

    /// Record explanations in decisions (slower; off by default).
    pub fn set_explain(&mut self, on: bool) {
        self.explain = on;
    }

    /// Profiles.
    pub fn profiles(&self) -> &[Arc<Profile>] {
        &self.profiles
    }

    /// The profile serving a schedulerName.
    pub fn profile(&self, scheduler_name: &str) -> Option<&Arc<Profile>> {
        self.profiles
            .iter()
            .find(|p| p.scheduler_name == scheduler_name)
    }

    /// Schedules one pod and, when it gets a node, adds it to the snapshot bound there (the
    /// scheduler's "assume"), so the next pod sees it.
    pub fn schedule_and_assume(&mut self, pod: &PodInfo, snap: &mut Snapshot) -> Decision {
        let d = self.schedule(pod, snap);
        if let Some(n) = d.node() {
            snap.upsert_pod_info(Arc::new(pod.bound_to(n)));
        }
        d
    }

    /// One scheduling cycle. The snapshot is only borrowed mutably for preemption's dry run
    /// and is unchanged on return.
    pub fn schedule(&mut self, pod: &PodInfo, snap: &mut Snapshot) -> Decision {
        let decide = |outcome, explanation| Decision {
            pod: pod.key.clone(),
            outcome,
            explanation,
        };
        let Some(profile) = self.profile(&pod.scheduler_name).cloned() else {
            return decide(
                Outcome::Error {
                    message: format!("no profile for schedulerName {:?}", pod.scheduler_name),
                },
                None,
            );
        };
        for p in &profile.pre_enqueue {
            let s = p.pre_enqueue(pod);
            if !s.is_success() {
                return decide(
                    Outcome::Gated {
                        message: s.message(),
                    },
                    None,
                );
            }
        }
        let n = snap.len();
        if n == 0 {
            return decide(
                Outcome::Error {
                    message: "no nodes available to schedule pods".into(),
                },
                None,
            );
        }
        let explain = self.explain;
        let mut ex = explain.then(|| Explanation {
            nodes_total: n,
            ..Default::default()
        });
        let mut node_ex: HashMap<usize, NodeExplanation> = HashMap::new();
        let mut state = std::mem::take(&mut self.state);
        state.clear();

        // PreFilter.
        let mut pre_failure: Option<Status> = None;
        let mut allowed: Option<(BTreeSet<String>, Vec<&'static str>)> = None;
        for (name, p) in &profile.pre_filter {
            let r = p.pre_filter(&mut state, pod, snap);
            if let Some(e) = ex.as_mut() {
                if !r.status.is_success() {
                    e.pre_filter.push(FilterResult {
                        plugin: (*name).to_string(),
                        code: r.status.code,
                        reasons: r.status.reasons.to_vec(),
                    });
                }
            }
            match r.status.code {
                Code::Success => {
                    if let Some(names) = r.node_names {
                        allowed = Some(match allowed.take() {
                            None => (names, vec![*name]),
                            Some((prev, mut plugins)) => {
                                plugins.push(name);
                                (prev.intersection(&names).cloned().collect(), plugins)
                            }
                        });
                    }
                }
                Code::Skip => state.skip_filter(name),
                Code::Unschedulable | Code::UnschedulableAndUnresolvable => {
                    pre_failure = Some(r.status.with_plugin(name));
                    break;
                }
                _ => {
                    self.state = state;
                    return decide(
                        Outcome::Error {
                            message: format!(
                                "running PreFilter plugin {name:?}: {}",
                                r.status.message()
                            ),
                        },
                        ex,
                    );
                }
            }
        }

        let active = active_filters(&profile, &state);
        let mut statuses: NodeStatuses = NodeStatuses::new();
        let mut feasible = std::mem::take(&mut self.feasible);
        feasible.clear();
        let mut failed = std::mem::take(&mut self.failed);
        failed.clear();
        if pre_failure.is_none() {
            // The nominated node first (upstream evaluateNominatedNode).
            if let Some(i) = pod
                .nominated_node
                .as_deref()
                .and_then(|nn| snap.node_index(nn))
            {
                let mut fr = explain.then(Vec::new);
                if run_filters(&profile, &active, &state, pod, snap, i, fr.as_mut()).is_success() {
                    feasible.push(i);
                    if let Some(fr) = fr {
                        node_ex.insert(
                            i,
                            NodeExplanation {
                                node: snap.node(i).name.clone(),
                                filters: fr,
                                feasible: true,
                                scores: vec![],
                                total: None,
                            },
                        );
                    }
                }
            }
            if feasible.is_empty() {
                let restricted: Option<Vec<usize>> = allowed.as_ref().map(|(names, _)| {
                    let mut v: Vec<usize> =
                        names.iter().filter_map(|nm| snap.node_index(nm)).collect();
                    v.sort_unstable();
                    v
                });
                let candidates = restricted.as_ref().map_or(n, Vec::len);
                let to_find =
                    num_feasible_nodes_to_find(profile.percentage_of_nodes_to_score, candidates);
                let start = if restricted.is_some() {
                    0
                } else {
                    self.next_start % n
                };
                let mut processed = 0;
                for k in 0..candidates {
                    let i = match &restricted {
                        Some(v) => v[k],
                        None => (start + k) % n,
                    };
                    processed = k + 1;
                    let mut fr = explain.then(Vec::new);
                    let s = run_filters(&profile, &active, &state, pod, snap, i, fr.as_mut());
                    let ok = s.is_success();
                    if let Some(fr) = fr {
                        node_ex.insert(
                            i,
                            NodeExplanation {
                                node: snap.node(i).name.clone(),
                                filters: fr,
                                feasible: ok,
                                scores: vec![],
                                total: None,
                            },
                        );
                    }
                    if ok {
                        feasible.push(i);
                        if feasible.len() >= to_find {
                            break;
                        }
                    } else {
                        failed.push((i, s));
                    }
                }
                if restricted.is_none() {
                    self.next_start = (start + processed) % n;
                }
                // The per-node statuses only matter when nothing fits (PostFilter and the fit
                // error), so the map keyed by node name is built only then.
                if feasible.is_empty() {
                    for (i, s) in failed.drain(..) {
                        statuses.insert(snap.node(i).name.clone(), s);
                    }
                }
                if let (true, Some(v), Some((_, plugins))) =
                    (feasible.is_empty(), &restricted, &allowed)
                {
                    // Nodes outside the PreFilter result.
                    let s = Status::new(
                        Code::UnschedulableAndUnresolvable,
                        Reason::Other {
                            message: format!(
                                "node(s) didn't satisfy plugin(s) [{}]",
                                plugins.join(" ")
                            ),
                        },
                    );
                    for (i, ni) in snap.nodes().iter().enumerate() {
                        if v.binary_search(&i).is_err() {
                            statuses.insert(ni.name.clone(), s.clone());
                        }
                    }
                }
            }
        } else if let Some(s) = &pre_failure {
            for ni in snap.nodes() {
                statuses.insert(ni.name.clone(), s.clone());
            }
        }
        if let Some(e) = ex.as_mut() {
            e.nodes_evaluated = node_ex.len();
            e.nodes_feasible = feasible.len();
        }

        let outcome = if feasible.is_empty() {
            // PostFilter (preemption).
            let mut post_msg: Option<String> = None;
            let mut result = PostFilterResult::default();
            for (_, p) in &profile.post_filter {
                let (r, s) = p.post_filter(pod, snap, &statuses, &profile);
                if s.is_success() {
                    result = r;
                    post_msg = None;
                    break;
                }
                post_msg = Some(s.message());
            }
            let (message, reasons) = fit_error_message(
                n,
                pre_failure.as_ref(),
                statuses.values(),
                post_msg.as_deref(),
            );
            if let Some(e) = ex.as_mut() {
                e.post_filter = Some(match &result.nominated_node {
                    Some(nn) => format!(
                        "preemption nominated node {nn}, evicting {}",
                        result.victims.join(", ")
                    ),
                    None => post_msg.unwrap_or_else(|| "no PostFilter plugin".into()),
                });
            }
            let mut plugins: Vec<String> = statuses
                .values()
                .chain(pre_failure.iter())
                .filter(|s| !s.plugin.is_empty())
                .map(|s| s.plugin.to_string())
                .collect();
            plugins.sort();
            plugins.dedup();
            Outcome::Unschedulable {
                message,
                reasons,
                nominated_node: result.nominated_node,
                victims: result.victims,
                unschedulable_plugins: plugins,
            }
        } else if feasible.len() == 1 {
            let node = snap.node(feasible[0]).name.clone();
            if let Some(e) = ex.as_mut() {
                e.winner = Some(WinnerExplanation {
                    node: node.clone(),
                    score: None,
                    runner_up: None,
                    tied: 1,
                    summary: format!("{node} is the only feasible node; scoring skipped"),
                });
            }
            Outcome::Scheduled { node }
        } else {
            match self.score(
                &profile,
                &mut state,
                pod,
                snap,
                &feasible,
                &mut node_ex,
                explain,
            ) {
                Ok((best, tied)) => {
                    let node = snap.node(feasible[best]).name.clone();
                    if let Some(e) = ex.as_mut() {
                        let top = self.totals[best];
                        let runner_up = (0..feasible.len())
                            .filter(|j| *j != best)
                            .max_by_key(|j| {
                                (
                                    self.totals[*j],
                                    std::cmp::Reverse(snap.node(feasible[*j]).name.clone()),
                                )
                            })
                            .map(|j| (snap.node(feasible[j]).name.clone(), self.totals[j]));
                        let summary = match (&runner_up, tied) {
                            (_, t) if t > 1 => format!("{node} scored {top}, tied with {} other node(s); chosen by the seeded tie-breaker", t - 1),
                            (Some((r, s)), _) => format!("{node} scored {top}, {} more than {r} ({s})", top - s),
                            (None, _) => format!("{node} scored {top}"),
                        };
                        e.winner = Some(WinnerExplanation {
                            node: node.clone(),
                            score: Some(top),
                            runner_up,
                            tied,
                            summary,
                        });
                    }
                    Outcome::Scheduled { node }
                }
                Err(message) => Outcome::Error { message },
            }
        };
        if let Some(e) = ex.as_mut() {
            let mut nodes: Vec<NodeExplanation> = node_ex.into_values().collect();
            nodes.sort_by(|a, b| a.node.cmp(&b.node));
            e.nodes = nodes;
        }
        self.feasible = feasible;
        failed.clear();
        self.failed = failed;
        self.state = state;
        decide(outcome, ex)
    }

    /// PreScore + Score + normalize + weights; returns (index into feasible, tie count).
    #[allow(clippy::too_many_arguments)]
    fn score(
        &mut self,
        profile: &Profile,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
        feasible: &[usize],
        node_ex: &mut HashMap<usize, NodeExplanation>,
        explain: bool,
    ) -> Result<(usize, usize), String> {
        for (name, p) in &profile.pre_score {
            let s = p.pre_score(state, pod, feasible, snap);
            match s.code {
                Code::Success => {}
                Code::Skip => state.skip_score(name),
                _ => return Err(format!("running PreScore plugin {name:?}: {}", s.message())),
            }
        }
        let f = feasible.len();
        let mut totals = std::mem::take(&mut self.totals);
        totals.clear();
        totals.resize(f, 0);
        let mut scores = std::mem::take(&mut self.scores);
        for (name, p, w) in &profile.score {
            if state.is_score_skipped(name) {
                continue;
            }
            scores.clear();
            scores.extend(
                feasible
                    .iter()
                    .map(|i| p.score(state, pod, snap.node(*i), snap)),
            );
            let raw: Option<Vec<i64>> = explain.then(|| scores.clone());
            p.normalize(state, pod, feasible, &mut scores);
            for (j, s) in scores.iter().enumerate() {
                totals[j] += s * w;
            }
            if let Some(raw) = raw {
                for (j, i) in feasible.iter().enumerate() {
                    if let Some(e) = node_ex.get_mut(i) {
                        e.scores.push(ScoreResult {
                            plugin: (*name).to_string(),
                            raw: raw[j],
                            normalized: scores[j],
                            weight: *w,
                            weighted: scores[j] * w,
                        });
                    }
                }
            }
        }
        if explain {
            for (j, i) in feasible.iter().enumerate() {
                if let Some(e) = node_ex.get_mut(i) {
                    e.total = Some(totals[j]);
                }
            }
        }
        // selectHost: reservoir sampling among the top scores.
        let mut best = 0;
        let mut tied = 1usize;
        for j in 1..f {
            if totals[j] > totals[best] {
                best = j;
                tied = 1;
            } else if totals[j] == totals[best] {
                tied += 1;
                if self.rng.random_range(0..tied) == 0 {
                    best = j;
                }
            }
        }
        self.scores = scores;
        self.totals = totals;
        Ok((best, tied))
    }
}
