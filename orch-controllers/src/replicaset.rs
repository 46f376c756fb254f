//! ReplicaSet and ReplicationController reconciler (`pkg/controller/replicaset/replica_set.go`;
//! the RC controller upstream is the same code behind a conversion, and so it is here).
//!
//! One pass: claim pods (adopt matching orphans, release pods whose labels stopped matching),
//! create or delete pods towards `spec.replicas` when expectations are satisfied (creations in
//! slow-start batches, deletions ranked as `getPodsToDelete`), then compute status.

use crate::controller_utils::{
    claim, delete_pod, is_pod_active, is_pod_available, is_pod_ready, pod_from_template,
    pods_to_delete, until_available,
};
use crate::selector::{from_label_selector, from_map, Selector, SelectorError};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_self, Caches, Controller, Watches};
use orch_runtime::expectations::Expectations;
use orch_runtime::object::{
    controller_key, controller_of, controller_ref, is_deleting, key_of, name, namespace, uid,
};
use orch_runtime::store::Change;
use orch_types::client::ClientError;
use orch_types::events::ObjectRef;
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Upstream `BurstReplicas`: at most this many creations or deletions per sync.
pub const BURST_REPLICAS: i32 = 500;

/// Which kind a [`Workload`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// v1 ReplicationController.
    ReplicationController,
}

impl WorkloadKind {
    fn api_version(self) -> &'static str {
        match self {
            Self::ReplicaSet => "apps/v1",
            Self::ReplicationController => "v1",
        }
    }
    fn kind(self) -> &'static str {
        match self {
            Self::ReplicaSet => "ReplicaSet",
            Self::ReplicationController => "ReplicationController",
        }
    }
    fn resource(self) -> ApiResource {
        match self {
            Self::ReplicaSet => ApiResource::of::<ReplicaSet>(),
            Self::ReplicationController => ApiResource::of::<ReplicationController>(),
        }
    }
}

/// A ReplicaSet or ReplicationController, normalised.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Source kind.
    pub kind: WorkloadKind,
    /// Metadata.
    pub meta: ObjectMeta,
    /// `spec.replicas` (default 1).
    pub replicas: i32,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i32,
    /// `spec.selector`, compiled.
    pub selector: Result<Selector, SelectorError>,
    /// `spec.template`.
    pub template: Option<PodTemplateSpec>,
    /// Current status (RC status has the same fields).
    pub status: ReplicaSetStatus,
    original: DynamicObject,
}

impl Workload {
    /// From a ReplicaSet.
    pub fn from_replica_set(rs: &ReplicaSet) -> Self {
        let spec = rs.spec.clone().unwrap_or_default();
        Self {
            kind: WorkloadKind::ReplicaSet,
            meta: rs.metadata.clone(),
            replicas: spec.replicas.unwrap_or(1),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            selector: from_label_selector(Some(&spec.selector)),
            template: spec.template,
            status: rs.status.clone().unwrap_or_default(),
            original: DynamicObject::from_typed(rs).unwrap_or_default(),
        }
    }

    /// From a ReplicationController (equality selector; defaults to the template labels).
    pub fn from_replication_controller(rc: &ReplicationController) -> Self {
        let spec = rc.spec.clone().unwrap_or_default();
        let template = spec.template.clone();
        let sel = spec.selector.clone().or_else(|| {
            template
                .as_ref()
                .and_then(|t| t.metadata.as_ref()?.labels.clone())
        });
        let status = rc
            .status
            .as_ref()
            .map(|s| {
                serde_json::from_value(serde_json::to_value(s).unwrap_or_default())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        Self {
            kind: WorkloadKind::ReplicationController,
            meta: rc.metadata.clone(),
            replicas: spec.replicas.unwrap_or(1),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            selector: Ok(from_map(sel.as_ref())),
            template,
            status,
            original: DynamicObject::from_typed(rc).unwrap_or_default(),
        }
    }

    /// Event target.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::new(
            self.kind.api_version(),
            self.kind.kind(),
            self.meta.namespace.as_deref(),
            name(&self.meta),
            uid(&self.meta),
        )
    }
}

/// What the driver remembers about the previous attempt (for the ReplicaFailure condition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManageFailure {
    /// Creating pods failed (reason `FailedCreate`).
    Create(String),
    /// Deleting pods failed (reason `FailedDelete`).
    Delete(String),
}

/// Inputs of one sync besides the object.
#[derive(Debug, Clone, Copy)]
pub struct SyncContext<'a> {
    /// Pods of the object's namespace (the cache view).
    pub pods: &'a [Arc<Pod>],
    /// Expectations satisfied: safe to create/delete.
    pub expectations_satisfied: bool,
    /// Failure of the previous manage step, if any.
    pub last_failure: Option<&'a ManageFailure>,
    /// Now.
    pub now: Timestamp,
}

/// One reconcile of a ReplicaSet / ReplicationController.
pub fn reconcile(w: &Workload, cx: SyncContext<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    let selector = match &w.selector {
        Ok(s) => s,
        Err(e) => {
            actions.push(Action::warning(
                w.object_ref(),
                "SelectorError",
                e.to_string(),
            ));
            return actions;
        }
    };
    let owner_ref = controller_ref(w.kind.api_version(), w.kind.kind(), &w.meta);
    // Claim (controller_ref_manager.go ClaimPods) over active pods: a released pod is
    // replaced, an adopted one counts.
    let active: Vec<Arc<Pod>> = cx
        .pods
        .iter()
        .filter(|p| is_pod_active(p))
        .cloned()
        .collect();
    let c = claim(&active, &w.meta, &owner_ref, |p: &Pod| {
        selector.matches_opt(p.metadata.labels.as_ref())
    });
    actions.extend(c.actions);
    let claimed_pods = c
        .owned
        .iter()
        .chain(&c.adopted)
        .cloned()
        .collect::<Vec<_>>();
    let claimed: Vec<&Pod> = claimed_pods.iter().map(Arc::as_ref).collect();

    // Manage replicas.
    let diff = claimed.len() as i64 - i64::from(w.replicas);
    if cx.expectations_satisfied && !is_deleting(&w.meta) {
        let key = key_of(&w.meta);
        if diff < 0 {
            let n = (-diff).min(i64::from(BURST_REPLICAS)) as usize;
            if let Some(t) = &w.template {
                let pods = (0..n)
                    .map(|_| pod_from_template(t, &w.meta, owner_ref.clone()))
                    .filter_map(|p| DynamicObject::from_typed(&p).ok())
                    .collect();
                actions.push(Action::CreatePods {
                    pods,
                    owner: w.object_ref(),
                    expectation_key: key,
                });
            }
        } else if diff > 0 {
            let n = diff.min(i64::from(BURST_REPLICAS)) as usize;
            for p in pods_to_delete(&claimed, &claimed, n) {
                actions.push(delete_pod(p, None, Some((key.clone(), w.object_ref()))));
            }
        }
    }

    // Status (replica_set_utils.go calculateStatus).
    let template_labels = w
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully = claimed
        .iter()
        .filter(|p| {
            let l = p.metadata.labels.clone().unwrap_or_default();
            template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .count() as i32;
    let ready = claimed.iter().filter(|p| is_pod_ready(p)).count() as i32;
    let available = claimed
        .iter()
        .filter(|p| is_pod_available(p, w.min_ready_seconds, cx.now))
        .count() as i32;
    let mut status = w.status.clone();
    status.replicas = claimed.len() as i32;
    status.fully_labeled_replicas = Some(fully);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.observed_generation = w.meta.generation;
    let mut conds: Vec<ReplicaSetCondition> = status.conditions.take().unwrap_or_default();
    let had = conds.iter().any(|c| c.type_ == "ReplicaFailure");
    match cx.last_failure {
        Some(f) if diff != 0 => {
            let (reason, msg) = match f {
                ManageFailure::Create(m) => ("FailedCreate", m),
                ManageFailure::Delete(m) => ("FailedDelete", m),
            };
            if !had {
                conds.push(ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(msg.clone()),
                    last_transition_time: Some(Time(cx.now)),
                });
            }
        }
        _ => conds.retain(|c| c.type_ != "ReplicaFailure"),
    }
    status.conditions = (!conds.is_empty()).then_some(conds);
    if status != w.status {
        let mut obj = w.original.clone();
        obj.data.insert(
            "status".into(),
            serde_json::to_value(&status).unwrap_or_default(),
        );
        actions.push(Action::UpdateStatus {
            resource: w.kind.resource(),
            object: obj,
        });
    }

    // Come back when ready pods become available (replica_set.go: enqueueAfter minReadySeconds).
    if w.min_ready_seconds > 0 && ready == w.replicas && available != w.replicas {
        if let Some(d) = claimed
            .iter()
            .filter_map(|p| until_available(p, w.min_ready_seconds, cx.now))
            .min()
        {
            actions.push(Action::requeue(d));
        }
    }
    actions
}

/// The ReplicaSet (`replicaset`) or ReplicationController (`replicationcontroller`) controller
/// as a declaration: watches its own kind and pods (a pod's controller, the expectations of
/// creations and deletions in flight, orphans its selector matches), syncs one object over its
/// pods and the orphans of its namespace.
pub struct WorkloadController {
    kind: WorkloadKind,
    expectations: Expectations,
    /// The failure of the last manage step per key (the ReplicaFailure condition).
    failures: Mutex<HashMap<String, ManageFailure>>,
    /// Whether the last sync of a key asked to create pods (what a failure was).
    creating: Mutex<HashMap<String, bool>>,
}

impl WorkloadController {
    /// The ReplicaSet controller.
    pub fn replica_sets() -> Self {
        Self::new(WorkloadKind::ReplicaSet)
    }

    /// The ReplicationController controller.
    pub fn replication_controllers() -> Self {
        Self::new(WorkloadKind::ReplicationController)
    }

    fn new(kind: WorkloadKind) -> Self {
        Self {
            kind,
            expectations: Expectations::new(),
            failures: Mutex::default(),
            creating: Mutex::default(),
        }
    }

    fn workload(kind: WorkloadKind, caches: &Caches, key: &str) -> Option<Workload> {
        match kind {
            WorkloadKind::ReplicaSet => caches
                .get::<ReplicaSet>()
                .get(key)
                .map(|r| Workload::from_replica_set(&r)),
            WorkloadKind::ReplicationController => caches
                .get::<ReplicationController>()
                .get(key)
                .map(|r| Workload::from_replication_controller(&r)),
        }
    }

    fn workloads_in(kind: WorkloadKind, caches: &Caches, ns: &str) -> Vec<Workload> {
        match kind {
            WorkloadKind::ReplicaSet => caches
                .get::<ReplicaSet>()
                .list_namespace(ns)
                .iter()
                .map(|r| Workload::from_replica_set(r))
                .collect(),
            WorkloadKind::ReplicationController => caches
                .get::<ReplicationController>()
                .list_namespace(ns)
                .iter()
                .map(|r| Workload::from_replication_controller(r))
                .collect(),
        }
    }
}

impl Controller for WorkloadController {
    fn name(&self) -> &'static str {
        match self.kind {
            WorkloadKind::ReplicaSet => "replicaset",
            WorkloadKind::ReplicationController => "replicationcontroller",
        }
    }

    fn component(&self) -> &'static str {
        match self.kind {
            WorkloadKind::ReplicaSet => "replicaset-controller",
            WorkloadKind::ReplicationController => "replication-controller",
        }
    }

    fn watches(&self, w: &mut Watches) {
        match self.kind {
            WorkloadKind::ReplicaSet => w.watch::<ReplicaSet>(trigger_self()),
            WorkloadKind::ReplicationController => w.watch::<ReplicationController>(trigger_self()),
        };
        let (kind, exp) = (self.kind, self.expectations.clone());
        let owner = kind.kind();
        // Orphans whose labels a selector of their namespace matches (adoption).
        let orphan = move |pod: &Pod, caches: &Caches, keys: &mut Vec<String>| {
            for w in Self::workloads_in(kind, caches, namespace(&pod.metadata)) {
                if w.selector
                    .as_ref()
                    .is_ok_and(|s| s.matches_opt(pod.metadata.labels.as_ref()))
                {
                    keys.push(key_of(&w.meta));
                }
            }
        };
        // upstream replica_set.go addPod / updatePod / deletePod.
        w.watch::<Pod>(Arc::new(move |c, caches, keys| {
            let p = c.object();
            match c {
                Change::Added(_) => match controller_key(&p.metadata, owner) {
                    Some(k) => {
                        exp.creation_observed(&k);
                        keys.push(k);
                    }
                    None if controller_of(&p.metadata).is_none() => orphan(p, caches, keys),
                    None => {}
                },
                Change::Updated(old, new) => {
                    let (ko, kn) = (
                        controller_key(&old.metadata, owner),
                        controller_key(&new.metadata, owner),
                    );
                    if is_deleting(&new.metadata) && !is_deleting(&old.metadata) {
                        if let Some(k) = &kn {
                            exp.deletion_observed(k);
                        }
                    }
                    keys.extend(kn.clone());
                    if ko != kn {
                        keys.extend(ko);
                    }
                    if controller_of(&new.metadata).is_none()
                        && old.metadata.labels != new.metadata.labels
                    {
                        orphan(new, caches, keys);
                    }
                }
                Change::Deleted(_) => {
                    if let Some(k) = controller_key(&p.metadata, owner) {
                        if !is_deleting(&p.metadata) {
                            exp.deletion_observed(&k);
                        }
                        keys.push(k);
                    }
                }
                Change::Resync(_) => {}
            }
        }));
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let Some(w) = Self::workload(self.kind, caches, key) else {
            self.expectations.delete(key);
            self.failures.lock().remove(key);
            return Vec::new();
        };
        let pods = caches
            .get::<Pod>()
            .claimable(uid(&w.meta), namespace(&w.meta));
        let last = self.failures.lock().get(key).cloned();
        let actions = reconcile(
            &w,
            SyncContext {
                pods: &pods,
                expectations_satisfied: self.expectations.satisfied(key, now),
                last_failure: last.as_ref(),
                now,
            },
        );
        let creates = actions
            .iter()
            .any(|a| matches!(a, Action::CreatePods { .. }));
        self.creating.lock().insert(key.to_string(), creates);
        actions
    }

    fn expectations(&self) -> Option<Expectations> {
        Some(self.expectations.clone())
    }

    fn applied(&self, key: &str, result: &Result<Option<Duration>, ClientError>) {
        let creates = self.creating.lock().remove(key).unwrap_or(false);
        match result {
            Ok(_) => drop(self.failures.lock().remove(key)),
            Err(e) => {
                let f = if creates {
                    ManageFailure::Create(e.to_string())
                } else {
                    ManageFailure::Delete(e.to_string())
                };
                self.failures.lock().insert(key.to_string(), f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{make_ready, pod, replica_set};

    fn ctx(pods: &[Arc<Pod>]) -> SyncContext<'_> {
        SyncContext {
            pods,
            expectations_satisfied: true,
            last_failure: None,
            now: Timestamp::UNIX_EPOCH,
        }
    }

    fn creates(actions: &[Action]) -> usize {
        actions
            .iter()
            .map(|a| match a {
                Action::CreatePods { pods, .. } => pods.len(),
                _ => 0,
            })
            .sum()
    }

    fn deleted(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn creates_missing_pods_with_controller_ref_and_generate_name() {
        let rs = replica_set("web", 3, &[("app", "web")]);
        let w = Workload::from_replica_set(&rs);
        let actions = reconcile(&w, ctx(&[]));
        let Some(Action::CreatePods {
            pods,
            expectation_key,
            ..
        }) = actions.first()
        else {
            panic!("expected CreatePods, got {actions:?}");
        };
        assert_eq!(pods.len(), 3);
        assert_eq!(expectation_key, "default/web");
        assert_eq!(pods[0].metadata.generate_name.as_deref(), Some("web-"));
        let r = &pods[0].metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (r.kind.as_str(), r.uid.as_str(), r.controller),
            ("ReplicaSet", "uid-web", Some(true))
        );
        assert_eq!(r.block_owner_deletion, Some(true));
        // No manage while expectations are pending.
        let mut c = ctx(&[]);
        c.expectations_satisfied = false;
        assert_eq!(creates(&reconcile(&w, c)), 0);
    }

    #[test]
    fn scale_down_deletes_unscheduled_and_not_ready_first() {
        let rs = replica_set("web", 1, &[("app", "web")]);
        let owner = Some(("ReplicaSet", "web", "uid-web"));
        let mut ready = pod("ready", &[("app", "web")], owner);
        make_ready(&mut ready, "n1", Timestamp::UNIX_EPOCH);
        let pending = pod("pending", &[("app", "web")], owner);
        let pods = vec![Arc::new(ready), Arc::new(pending)];
        let actions = reconcile(&Workload::from_replica_set(&rs), ctx(&pods));
        assert_eq!(deleted(&actions), ["pending"]);
    }

    #[test]
    fn adopts_orphans_and_releases_relabelled_pods() {
        let rs = replica_set("web", 2, &[("app", "web")]);
        let orphan = pod("orphan", &[("app", "web")], None);
        let relabelled = pod(
            "isolated",
            &[("app", "debug")],
            Some(("ReplicaSet", "web", "uid-web")),
        );
        let foreign = pod(
            "foreign",
            &[("app", "web")],
            Some(("ReplicaSet", "other", "uid-other")),
        );
        let pods = vec![Arc::new(orphan), Arc::new(relabelled), Arc::new(foreign)];
        let actions = reconcile(&Workload::from_replica_set(&rs), ctx(&pods));
        let patched: Vec<(String, String)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Patch {
                    name,
                    patch: orch_types::client::Patch::Json(v),
                    ..
                } => Some((
                    name.clone(),
                    v[v.as_array()?.len() - 1]["op"].as_str()?.to_string(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            patched,
            [
                ("orphan".to_string(), "add".to_string()),
                ("isolated".to_string(), "remove".to_string())
            ]
        );
        // Adopted orphan counts; the released pod does not: one replacement is created.
        assert_eq!(creates(&actions), 1);
    }

    #[test]
    fn status_counts_ready_available_and_replica_failure() {
        let mut rs = replica_set("web", 2, &[("app", "web")]);
        rs.spec.as_mut().unwrap().min_ready_seconds = Some(10);
        let owner = Some(("ReplicaSet", "web", "uid-web"));
        let mut a = pod("a", &[("app", "web")], owner);
        make_ready(&mut a, "n1", Timestamp::UNIX_EPOCH);
        let pods = vec![Arc::new(a)];
        let fail = ManageFailure::Create("pods \"web-\" is forbidden: exceeded quota".into());
        let mut c = ctx(&pods);
        c.last_failure = Some(&fail);
        c.now = Timestamp::from_second(5).unwrap();
        let actions = reconcile(&Workload::from_replica_set(&rs), c);
        let status = actions
            .iter()
            .find_map(|a| match a {
                Action::UpdateStatus { object, .. } => Some(object.data["status"].clone()),
                _ => None,
            })
            .expect("status update");
        insta::assert_yaml_snapshot!(status, @r#"
        availableReplicas: 0
        conditions:
          - lastTransitionTime: "1970-01-01T00:00:05Z"
            message: "pods \"web-\" is forbidden: exceeded quota"
            reason: FailedCreate
            status: "True"
            type: ReplicaFailure
        fullyLabeledReplicas: 1
        observedGeneration: 1
        readyReplicas: 1
        replicas: 1
        "#);
    }

    #[test]
    fn replication_controller_uses_equality_selector() {
        let rc: ReplicationController = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "rc", "namespace": "default", "uid": "uid-rc", "generation": 1},
            "spec": {"replicas": 2, "selector": {"app": "rc"},
                     "template": {"metadata": {"labels": {"app": "rc"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}
        }))
        .unwrap();
        let w = Workload::from_replication_controller(&rc);
        let orphan = pod("p", &[("app", "rc")], None);
        let pods = vec![Arc::new(orphan)];
        let actions = reconcile(&w, ctx(&pods));
        assert_eq!(creates(&actions), 1);
        let Some(Action::CreatePods { pods, .. }) = actions
            .iter()
            .find(|a| matches!(a, Action::CreatePods { .. }))
        else {
            panic!("create expected")
        };
        let r = &pods[0].metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (r.api_version.as_str(), r.kind.as_str()),
            ("v1", "ReplicationController")
        );
    }
}
