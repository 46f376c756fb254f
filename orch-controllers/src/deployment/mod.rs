//! Deployment reconciler (`pkg/controller/deployment/{deployment_controller,sync,rolling,
//! recreate,progress}.go`).
//!
//! One pass over a Deployment and the ReplicaSets/pods of its namespace: claim ReplicaSets,
//! then (as upstream `syncDeployment`) status-only when deleting, `sync` (scale + cleanup)
//! when paused or on a scaling event, otherwise a Recreate or RollingUpdate step, and finally
//! the status with its Available/Progressing conditions. Writes made during the pass are applied
//! to local copies so later steps see them, as upstream does with the objects it gets back.

pub mod util;

use crate::controller_utils::{claim, is_pod_terminal};
use crate::selector::from_label_selector;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_self, Caches, Controller, Watches};
use orch_runtime::object::{
    controller_key, controller_of, controller_ref, is_deleting, key_of, name, namespace, uid,
};
use orch_runtime::store::Change;
use orch_types::client::Patch;
use orch_types::events::{reason, ObjectRef};
use orch_types::registry::ApiResource;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use util::*;

/// The cache view a deployment sync reads.
#[derive(Debug, Clone, Copy)]
pub struct DeploymentView<'a> {
    /// ReplicaSets the deployment may claim (its own and the orphans of its namespace).
    pub replica_sets: &'a [Arc<ReplicaSet>],
    /// Pods of those ReplicaSets (Recreate waits for old pods to stop).
    pub pods: &'a [Arc<Pod>],
    /// Now.
    pub now: Timestamp,
}

struct Pass<'a> {
    d: Deployment,
    /// Claimed ReplicaSets, local copies (writes applied).
    rs: Vec<ReplicaSet>,
    pods: &'a [Arc<Pod>],
    now: Timestamp,
    actions: Vec<Action>,
    status_dirty: bool,
}

fn d_ref(d: &Deployment) -> ObjectRef {
    ObjectRef::new(
        "apps/v1",
        "Deployment",
        d.metadata.namespace.as_deref(),
        name(&d.metadata),
        uid(&d.metadata),
    )
}

fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    let t = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
    t(a).cmp(&t(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// One reconcile of a Deployment.
pub fn reconcile(d: &Deployment, view: DeploymentView<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    let spec = d.spec.clone().unwrap_or_default();
    let selector = match from_label_selector(Some(&spec.selector)) {
        Ok(s) => s,
        Err(e) => {
            actions.push(Action::warning(d_ref(d), "SelectorError", e.to_string()));
            return actions;
        }
    };
    if selector.is_everything() {
        actions.push(Action::warning(
            d_ref(d),
            reason::SELECTING_ALL,
            "This deployment will select all pods. A non-empty selector is required.",
        ));
        let st = d.status.clone().unwrap_or_default();
        if st.observed_generation < d.metadata.generation {
            let mut st = st;
            st.observed_generation = d.metadata.generation;
            actions.push(status_patch(d, &st));
        }
        return actions;
    }
    // Claim ReplicaSets (ClaimReplicaSets); an adopted one counts with its new reference.
    let owner = controller_ref("apps/v1", "Deployment", &d.metadata);
    let c = claim(view.replica_sets, &d.metadata, &owner, |rs: &ReplicaSet| {
        selector.matches_opt(rs.metadata.labels.as_ref())
    });
    actions.extend(c.actions);
    let mut claimed: Vec<ReplicaSet> = c.owned.iter().map(|rs| rs.as_ref().clone()).collect();
    claimed.extend(c.adopted.iter().map(|rs| {
        let mut rs = rs.as_ref().clone();
        rs.metadata
            .owner_references
            .get_or_insert_with(Vec::new)
            .push(owner.clone());
        rs
    }));
    claimed.sort_by(by_creation);
    let mut p = Pass {
        d: d.clone(),
        rs: claimed,
        pods: view.pods,
        now: view.now,
        actions,
        status_dirty: false,
    };
    p.run();
    p.actions
}

fn rs_patch(rs: &ReplicaSet, patch: Patch) -> Action {
    Action::Patch {
        resource: ApiResource::of::<ReplicaSet>(),
        namespace: rs.metadata.namespace.clone(),
        name: name(&rs.metadata).into(),
        subresource: None,
        patch,
    }
}

fn status_patch(d: &Deployment, st: &DeploymentStatus) -> Action {
    Action::merge_patch::<Deployment>(
        d.metadata.namespace.as_deref(),
        name(&d.metadata),
        Some("status"),
        json!({ "status": st }),
    )
}

impl Pass<'_> {
    fn run(&mut self) {
        if is_deleting(&self.d.metadata) {
            let (new, _) = self.new_and_old(false);
            self.sync_status(new);
            return;
        }
        self.check_paused_conditions();
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused || self.is_scaling_event() {
            self.sync();
            return;
        }
        if is_rolling(&self.d) {
            self.rollout_rolling();
        } else {
            self.rollout_recreate();
        }
    }

    fn status(&mut self) -> &mut DeploymentStatus {
        self.d.status.get_or_insert_with(Default::default)
    }

    fn replicas(&self) -> i32 {
        replicas(&self.d)
    }

    /// `getAllReplicaSetsAndSyncRevision`: index of the new RS (created if asked) and indices
    /// of the old ones.
    fn new_and_old(&mut self, create: bool) -> (Option<usize>, Vec<usize>) {
        let template = self
            .d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let new = self.rs.iter().position(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, &template))
        });
        let old: Vec<usize> = (0..self.rs.len()).filter(|i| Some(*i) != new).collect();
        let max_old = old
            .iter()
            .map(|i| revision_of(self.rs[*i].metadata.annotations.as_ref()))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        if let Some(i) = new {
            let mut c = self.rs[i].clone();
            let annotations_updated = set_new_rs_annotations(&self.d, &mut c, new_revision, true);
            let mrs = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let cur_mrs = c.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if annotations_updated || mrs.unwrap_or(0) != cur_mrs.unwrap_or(0) {
                if let Some(s) = c.spec.as_mut() {
                    s.min_ready_seconds = mrs;
                }
                self.actions.push(rs_patch(
                    &c,
                    Patch::Merge(json!({"metadata": {"annotations": c.metadata.annotations}, "spec": {"minReadySeconds": mrs.unwrap_or(0)}})),
                ));
                self.rs[i] = c;
                return (Some(i), old);
            }
            let rev = self.rs[i]
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .cloned()
                .unwrap_or_default();
            self.set_deployment_revision(&rev);
            if progress_deadline(&self.d).is_some()
                && condition(self.status(), "Progressing").is_none()
            {
                let msg = format!("Found new replica set {:?}", name(&self.rs[i].metadata));
                let c = new_condition("Progressing", "True", reasons::FOUND_NEW_RS, msg, self.now);
                set_condition(self.status(), c);
                self.status_dirty = true;
            }
            return (Some(i), old);
        }
        if !create {
            return (None, old);
        }
        // Create the new ReplicaSet (sync.go getNewReplicaSet).
        let collision = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template, collision);
        let rs_name = format!("{}-{}", name(&self.d.metadata), hash);
        let mut tpl = template.clone();
        tpl.metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut sel = self
            .d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        sel.match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        // A ReplicaSet of that name exists but is not ours or has another template: hash
        // collision, bump collisionCount and retry next pass.
        if self.rs.iter().any(|r| name(&r.metadata) == rs_name) {
            let st = self.status();
            st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
            self.status_dirty = true;
            self.flush_status();
            return (None, old);
        }
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                labels: tpl.metadata.as_ref().and_then(|m| m.labels.clone()),
                owner_references: Some(vec![controller_ref(
                    "apps/v1",
                    "Deployment",
                    &self.d.metadata,
                )]),
                creation_timestamp: Some(Time(self.now)),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.d.spec.as_ref().and_then(|s| s.min_ready_seconds),
                selector: sel,
                template: Some(tpl),
            }),
            status: None,
        };
        self.rs.push(rs.clone());
        let idx = self.rs.len() - 1;
        let all: Vec<usize> = (0..self.rs.len()).collect();
        let count = self.new_rs_new_replicas(&all, idx);
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(count);
        }
        set_new_rs_annotations(&self.d, &mut rs, new_revision, false);
        self.actions.push(Action::create(&rs));
        if count > 0 {
            self.actions.push(Action::normal(
                d_ref(&self.d),
                reason::SCALING_REPLICA_SET,
                format!("Scaled up replica set {rs_name} from 0 to {count}"),
            ));
        }
        self.rs[idx] = rs;
        if progress_deadline(&self.d).is_some() {
            let c = new_condition(
                "Progressing",
                "True",
                reasons::NEW_RS,
                format!("Created new replica set {rs_name:?}"),
                self.now,
            );
            set_condition(self.status(), c);
            self.status_dirty = true;
        }
        self.set_deployment_revision(&new_revision.to_string());
        (Some(idx), old)
    }

    fn set_deployment_revision(&mut self, rev: &str) {
        let cur = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .cloned();
        if cur.as_deref() != Some(rev) && !rev.is_empty() {
            self.d
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(REVISION.into(), rev.into());
            self.actions.push(Action::merge_patch::<Deployment>(
                self.d.metadata.namespace.as_deref(),
                name(&self.d.metadata),
                None,
                json!({"metadata": {"annotations": {REVISION: rev}}}),
            ));
        }
    }

    fn flush_status(&mut self) {
        if self.status_dirty {
            let st = self.d.status.clone().unwrap_or_default();
            self.actions.push(status_patch(&self.d, &st));
            self.status_dirty = false;
        }
    }

    fn sum<F: Fn(&ReplicaSet) -> i32>(&self, idx: &[usize], f: F) -> i32 {
        idx.iter().map(|i| f(&self.rs[*i])).sum()
    }

    fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|i| rs_replicas(&self.rs[*i]) > 0)
            .collect()
    }

    /// `NewRSNewReplicas`.
    fn new_rs_new_replicas(&self, all: &[usize], new: usize) -> i32 {
        let new_replicas = rs_replicas(&self.rs[new]);
        if !is_rolling(&self.d) {
            return self.replicas();
        }
        let current = self.sum(all, rs_replicas);
        let max_total = self.replicas() + max_surge(&self.d);
        if current >= max_total {
            return new_replicas;
        }
        let up = (max_total - current).min(self.replicas() - new_replicas);
        new_replicas + up
    }

    /// `scaleReplicaSet` (+ event when the size changes).
    fn scale_rs(&mut self, i: usize, to: i32, op: &str) -> bool {
        let desired = self.replicas();
        let max = desired + max_surge(&self.d);
        let from = rs_replicas(&self.rs[i]);
        let size = from != to;
        let ann = replicas_annotations_need_update(&self.rs[i], desired, max);
        if !size && !ann {
            return false;
        }
        let rs = &mut self.rs[i];
        rs.spec.get_or_insert_with(Default::default).replicas = Some(to);
        set_replicas_annotations(rs, desired, max);
        let body = json!({"metadata": {"annotations": {DESIRED_REPLICAS: desired.to_string(), MAX_REPLICAS: max.to_string()}},
                          "spec": {"replicas": to}});
        let rs_name = name(&rs.metadata).to_string();
        let a = rs_patch(rs, Patch::Merge(body));
        self.actions.push(a);
        if size {
            self.actions.push(Action::normal(
                d_ref(&self.d),
                reason::SCALING_REPLICA_SET,
                format!("Scaled {op} replica set {rs_name} from {from} to {to}"),
            ));
        }
        size
    }

    fn scale_to(&mut self, i: usize, to: i32) -> bool {
        let op = if to > rs_replicas(&self.rs[i]) {
            "up"
        } else {
            "down"
        };
        self.scale_rs(i, to, op)
    }

    fn is_scaling_event(&mut self) -> bool {
        let (new, old) = self.new_and_old(false);
        let all: Vec<usize> = old.iter().copied().chain(new).collect();
        let n = self.replicas();
        self.active(&all).iter().any(|i| {
            self.rs[*i]
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESIRED_REPLICAS))
                .and_then(|v| v.parse::<i32>().ok())
                .is_some_and(|v| v != n)
        })
    }

    fn check_paused_conditions(&mut self) {
        if progress_deadline(&self.d).is_none() {
            return;
        }
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let st = self.d.status.clone().unwrap_or_default();
        let cond = condition(&st, "Progressing");
        let is_paused_reason = cond.is_some_and(|c| c.reason.as_deref() == Some(reasons::PAUSED));
        let c = if paused && !is_paused_reason {
            new_condition(
                "Progressing",
                "Unknown",
                reasons::PAUSED,
                "Deployment is paused".into(),
                self.now,
            )
        } else if !paused && is_paused_reason {
            new_condition(
                "Progressing",
                "Unknown",
                reasons::RESUMED,
                "Deployment is resumed".into(),
                self.now,
            )
        } else {
            return;
        };
        set_condition(self.status(), c);
        self.status_dirty = true;
    }

    /// `sync`: scale (proportionally) and clean up, no rollout.
    fn sync(&mut self) {
        let (new, old) = self.new_and_old(false);
        self.scale(new, &old);
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused {
            self.cleanup(&old);
        }
        self.sync_status(new);
    }

    /// `scale`: proportional scaling (sync.go).
    fn scale(&mut self, new: Option<usize>, old: &[usize]) {
        let n = self.replicas();
        // FindActiveOrLatest.
        let mut old_sorted = old.to_vec();
        old_sorted.sort_by(|a, b| by_creation(&self.rs[*b], &self.rs[*a]));
        let all: Vec<usize> = old_sorted.iter().copied().chain(new).collect();
        let active = self.active(&all);
        let active_or_latest = match active.len() {
            0 => new.or(old_sorted.first().copied()),
            1 => Some(active[0]),
            _ => None,
        };
        if new.is_none() && old.is_empty() {
            return;
        }
        if let Some(i) = active_or_latest {
            if rs_replicas(&self.rs[i]) != n {
                self.scale_to(i, n);
            }
            return;
        }
        // IsSaturated: the new RS is fully up and available; scale old ones to zero.
        if let Some(ni) = new {
            let r = &self.rs[ni];
            let desired = r
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESIRED_REPLICAS))
                .and_then(|v| v.parse::<i32>().ok());
            if rs_replicas(r) == n && desired == Some(n) && rs_status(r).1 == n {
                for i in self.active(old) {
                    self.scale_to(i, 0);
                }
                return;
            }
        }
        if !is_rolling(&self.d) {
            return;
        }
        let mut rss = active;
        let total = self.sum(&rss, rs_replicas);
        let allowed = if n > 0 { n + max_surge(&self.d) } else { 0 };
        let to_add = allowed - total;
        let size_newer = |s: &Self, a: &usize, b: &usize| {
            rs_replicas(&s.rs[*b])
                .cmp(&rs_replicas(&s.rs[*a]))
                .then_with(|| by_creation(&s.rs[*b], &s.rs[*a]))
        };
        let size_older = |s: &Self, a: &usize, b: &usize| {
            rs_replicas(&s.rs[*b])
                .cmp(&rs_replicas(&s.rs[*a]))
                .then_with(|| by_creation(&s.rs[*a], &s.rs[*b]))
        };
        let op = if to_add > 0 {
            rss.sort_by(|a, b| size_newer(self, a, b));
            "up"
        } else if to_add < 0 {
            rss.sort_by(|a, b| size_older(self, a, b));
            "down"
        } else {
            ""
        };
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(rss.len());
        for i in &rss {
            let cur = rs_replicas(&self.rs[*i]);
            if to_add != 0 {
                let prop = self.proportion(*i, to_add, added);
                sizes.push(cur + prop);
                added += prop;
            } else {
                sizes.push(cur);
            }
        }
        for (k, i) in rss.iter().enumerate() {
            if k == 0 && to_add != 0 {
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            self.scale_rs(*i, sizes[k], op);
        }
    }

    /// `GetProportion` / `getReplicaSetFraction`.
    fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
        let rs = &self.rs[i];
        let cur = rs_replicas(rs);
        if cur == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let n = self.replicas();
        let fraction = if n == 0 {
            -cur
        } else {
            let deployment_replicas = n + max_surge(&self.d);
            let annotated = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(MAX_REPLICAS))
                .and_then(|v| v.parse::<i32>().ok())
                .unwrap_or_else(|| self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
            if annotated == 0 {
                0
            } else {
                let size = f64::from(cur) * f64::from(deployment_replicas) / f64::from(annotated);
                size.round() as i32 - cur
            }
        };
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    fn rollout_rolling(&mut self) {
        let (new, old) = self.new_and_old(true);
        let Some(new) = new else {
            self.flush_status();
            return;
        };
        let all: Vec<usize> = old.iter().copied().chain([new]).collect();
        // reconcileNewReplicaSet
        let n = self.replicas();
        let new_replicas = rs_replicas(&self.rs[new]);
        let scaled_up = if new_replicas == n {
            false
        } else if new_replicas > n {
            self.scale_to(new, n)
        } else {
            let count = self.new_rs_new_replicas(&all, new);
            self.scale_to(new, count)
        };
        if scaled_up {
            self.sync_rollout_status(Some(new));
            return;
        }
        if self.reconcile_old(&all, &old, new) {
            self.sync_rollout_status(Some(new));
            return;
        }
        let st = self.d.status.clone().unwrap_or_default();
        if is_complete(&self.d, &st) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(Some(new));
    }

    /// `reconcileOldReplicaSets` (rolling.go).
    fn reconcile_old(&mut self, all: &[usize], old: &[usize], new: usize) -> bool {
        if self.sum(old, rs_replicas) == 0 {
            return false;
        }
        let all_pods = self.sum(all, rs_replicas);
        let min_available = self.replicas() - max_unavailable(&self.d);
        let new_unavailable = rs_replicas(&self.rs[new]) - rs_status(&self.rs[new]).1;
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        // cleanupUnhealthyReplicas: old RSs by creation, scale down unavailable pods first.
        let mut old_sorted = self.active(old);
        old_sorted.sort_by(|a, b| by_creation(&self.rs[*a], &self.rs[*b]));
        let mut cleaned = 0;
        for i in &old_sorted {
            if cleaned >= max_scaled_down {
                break;
            }
            let r = rs_replicas(&self.rs[*i]);
            let avail = rs_status(&self.rs[*i]).1;
            if r == 0 || r == avail {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(r - avail);
            self.scale_to(*i, r - down);
            cleaned += down;
        }
        // scaleDownOldReplicaSetsForRollingUpdate: never below minAvailable available pods.
        let available = self.sum(all, |r| rs_status(r).1);
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for i in &old_sorted {
                if scaled >= total {
                    break;
                }
                let r = rs_replicas(&self.rs[*i]);
                if r == 0 {
                    continue;
                }
                let down = r.min(total - scaled);
                self.scale_to(*i, r - down);
                scaled += down;
            }
        }
        cleaned + scaled > 0
    }

    fn rollout_recreate(&mut self) {
        let (new, old) = self.new_and_old(false);
        let mut scaled_down = false;
        for i in self.active(&old) {
            if self.scale_to(i, 0) {
                scaled_down = true;
            }
        }
        if scaled_down {
            self.sync_rollout_status(new);
            return;
        }
        // oldPodsRunning: wait for every old pod to terminate.
        let old_running = self.sum(&old, |r| rs_status(r).0) > 0
            || self.pods.iter().any(|p| {
                controller_of(&p.metadata)
                    .is_some_and(|c| old.iter().any(|i| uid(&self.rs[*i].metadata) == c.uid))
                    && !is_pod_terminal(p)
            });
        if old_running {
            self.sync_rollout_status(new);
            return;
        }
        let (new, old) = match new {
            Some(n) => (Some(n), old),
            None => self.new_and_old(true),
        };
        if let Some(ni) = new {
            let n = self.replicas();
            if rs_replicas(&self.rs[ni]) != n {
                self.scale_to(ni, n);
            }
        }
        let st = self.d.status.clone().unwrap_or_default();
        if is_complete(&self.d, &st) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(new);
    }

    /// `cleanupDeployment`: delete old ReplicaSets beyond revisionHistoryLimit (default 10).
    fn cleanup(&mut self, old: &[usize]) {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let mut cleanable: Vec<usize> = old
            .iter()
            .copied()
            .filter(|i| !is_deleting(&self.rs[*i].metadata))
            .collect();
        let diff = cleanable.len() as i32 - limit;
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| {
            let ra = revision_of(self.rs[*a].metadata.annotations.as_ref());
            let rb = revision_of(self.rs[*b].metadata.annotations.as_ref());
            ra.cmp(&rb)
                .then_with(|| by_creation(&self.rs[*a], &self.rs[*b]))
        });
        for i in cleanable.into_iter().take(diff as usize) {
            let rs = &self.rs[i];
            let st = rs.status.clone().unwrap_or_default();
            if st.replicas != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0)
            {
                continue;
            }
            self.actions.push(Action::delete(rs));
        }
    }

    /// `calculateStatus`.
    fn calculate_status(&self, new: Option<usize>) -> DeploymentStatus {
        let all: Vec<usize> = (0..self.rs.len()).collect();
        let available = self.sum(&all, |r| rs_status(r).1);
        let total = self.sum(&all, rs_replicas);
        let mut st = self.d.status.clone().unwrap_or_default();
        st.observed_generation = self.d.metadata.generation;
        st.replicas = Some(self.sum(&all, |r| rs_status(r).0));
        st.updated_replicas = Some(new.map_or(0, |i| rs_status(&self.rs[i]).0));
        st.ready_replicas = Some(self.sum(&all, |r| rs_status(r).2));
        st.available_replicas = Some(available);
        st.unavailable_replicas = Some((total - available).max(0));
        let c = if available >= self.replicas() - max_unavailable(&self.d) {
            new_condition(
                "Available",
                "True",
                reasons::MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                self.now,
            )
        } else {
            new_condition(
                "Available",
                "False",
                reasons::MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                self.now,
            )
        };
        set_condition(&mut st, c);
        st
    }

    /// `syncDeploymentStatus`.
    fn sync_status(&mut self, new: Option<usize>) {
        let st = self.calculate_status(new);
        if Some(&st) != self.d.status.as_ref() || self.status_dirty {
            self.d.status = Some(st);
            self.status_dirty = true;
        }
        self.flush_status();
    }

    /// `syncRolloutStatus` (progress.go).
    fn sync_rollout_status(&mut self, new: Option<usize>) {
        let old_status = self.d.status.clone().unwrap_or_default();
        let mut st = self.calculate_status(new);
        if progress_deadline(&self.d).is_some() {
            let cur = condition(&st, "Progressing").cloned();
            let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
            let timed_out_already = cur
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(reasons::TIMED_OUT));
            if !paused && !timed_out_already {
                let new_name = new
                    .map(|i| name(&self.rs[i].metadata).to_string())
                    .unwrap_or_default();
                if is_complete(&self.d, &st) {
                    let c = new_condition(
                        "Progressing",
                        "True",
                        reasons::NEW_RS_AVAILABLE,
                        format!("ReplicaSet {new_name:?} has successfully progressed."),
                        self.now,
                    );
                    set_condition(&mut st, c);
                } else if is_progressing(&old_status, &st) {
                    let mut c = new_condition(
                        "Progressing",
                        "True",
                        reasons::RS_UPDATED,
                        format!("ReplicaSet {new_name:?} is progressing."),
                        self.now,
                    );
                    // Keep the transition time while Progressing stays True; update the rest.
                    if let Some(cur) = cur.filter(|c| c.status == "True") {
                        c.last_transition_time = cur.last_transition_time;
                    }
                    remove_condition(&mut st, "Progressing");
                    st.conditions.get_or_insert_with(Vec::new).push(c);
                } else if is_timed_out(&self.d, &st, self.now) {
                    let c = new_condition(
                        "Progressing",
                        "False",
                        reasons::TIMED_OUT,
                        format!("ReplicaSet {new_name:?} has timed out progressing."),
                        self.now,
                    );
                    set_condition(&mut st, c);
                }
            }
        }
        // Surface ReplicaFailure from the ReplicaSets (progress.go).
        let failure = self.rs.iter().find_map(|r| {
            r.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
                .cloned()
        });
        match failure {
            Some(f) => {
                let c = new_condition(
                    "ReplicaFailure",
                    &f.status,
                    f.reason.as_deref().unwrap_or(""),
                    f.message.unwrap_or_default(),
                    self.now,
                );
                set_condition(&mut st, c);
            }
            None => remove_condition(&mut st, "ReplicaFailure"),
        }
        if Some(&st) != self.d.status.as_ref() || self.status_dirty {
            self.d.status = Some(st.clone());
            self.status_dirty = true;
        }
        self.flush_status();
        // requeueStuckDeployment: look again when the progress deadline would pass.
        if let (Some(secs), Some(c)) = (progress_deadline(&self.d), condition(&st, "Progressing")) {
            if !is_complete(&self.d, &st) && c.reason.as_deref() != Some(reasons::TIMED_OUT) {
                if let Some(t) = c.last_update_time.as_ref() {
                    let deadline =
                        t.0.checked_add(jiff::SignedDuration::from_secs(i64::from(secs)))
                            .ok();
                    if let Some(dl) = deadline {
                        let after = if dl > self.now {
                            Duration::try_from(dl.duration_since(self.now)).unwrap_or_default()
                                + Duration::from_secs(1)
                        } else {
                            Duration::from_secs(1)
                        };
                        self.actions.push(Action::requeue(after));
                    }
                }
            }
        }
    }
}

/// The Deployment controller (`deployment`) as a declaration: watches Deployments, their
/// ReplicaSets (and orphans a selector matches), and pod deletions (Recreate waits for old pods
/// to go); syncs one Deployment over the ReplicaSets it may claim and their pods.
#[derive(Debug, Default)]
pub struct DeploymentController;

impl Controller for DeploymentController {
    fn name(&self) -> &'static str {
        "deployment"
    }

    fn component(&self) -> &'static str {
        "deployment-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<Deployment>(trigger_self());
        // upstream deployment_controller.go addReplicaSet / updateReplicaSet / deleteReplicaSet.
        w.watch::<ReplicaSet>(Arc::new(|c, caches, keys| {
            let rs = c.object();
            match controller_key(&rs.metadata, "Deployment") {
                Some(k) => keys.push(k),
                None if controller_of(&rs.metadata).is_none() => {
                    for d in caches
                        .get::<Deployment>()
                        .list_namespace(namespace(&rs.metadata))
                    {
                        let sel = d.spec.as_ref().map(|s| &s.selector);
                        if from_label_selector(sel).is_ok_and(|s| {
                            !s.is_everything() && s.matches_opt(rs.metadata.labels.as_ref())
                        }) {
                            keys.push(key_of(&d.metadata));
                        }
                    }
                }
                None => {}
            }
            if let Change::Updated(old, _) = c {
                if let Some(k) = controller_key(&old.metadata, "Deployment") {
                    keys.push(k);
                }
            }
        }));
        // deletePod: a Recreate Deployment waits for its old pods to go.
        w.watch::<Pod>(Arc::new(|c, caches, keys| {
            if let Change::Deleted(p) = c {
                if let Some(rs) = controller_key(&p.metadata, "ReplicaSet")
                    .and_then(|k| caches.get::<ReplicaSet>().get(&k))
                {
                    keys.extend(controller_key(&rs.metadata, "Deployment"));
                }
            }
        }));
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let Some(d) = caches.get::<Deployment>().get(key) else {
            return Vec::new();
        };
        let rs_store = caches.get::<ReplicaSet>();
        let replica_sets = rs_store.claimable(uid(&d.metadata), namespace(&d.metadata));
        let pod_store = caches.get::<Pod>();
        let mut pods: Vec<Arc<Pod>> = replica_sets
            .iter()
            .flat_map(|rs| pod_store.owned_by(uid(&rs.metadata)))
            .collect();
        pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        pods.dedup_by(|a, b| a.metadata.name == b.metadata.name);
        reconcile(
            &d,
            DeploymentView {
                replica_sets: &replica_sets,
                pods: &pods,
                now,
            },
        )
    }
}

#[cfg(test)]
mod tests;
