//! ReplicaSet and ReplicationController reconciler (`pkg/controller/replicaset/replica_set.go`;
//! the RC controller upstream is the same code behind a conversion, and so it is here).
//!
//! One pass: claim pods (adopt matching orphans, release pods whose labels stopped matching),
//! create or delete pods towards `spec.replicas` when expectations are satisfied (creations in
//! slow-start batches, deletions ranked as `getPodsToDelete`), then compute status.

use crate::action::Action;
use crate::controller_utils::{
    is_pod_active, is_pod_available, is_pod_ready, pod_from_template, pods_to_delete,
    until_available,
};
use crate::object::{controller_of, controller_ref, is_deleting, key_of, name, uid};
use crate::selector::{from_label_selector, from_map, Selector, SelectorError};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use orch_types::client::Patch;
use orch_types::events::ObjectRef;
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use serde_json::json;
use std::sync::Arc;

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

/// JSON patch adopting a pod (guarded by the pod's UID, like upstream's patch).
fn adopt_patch(pod: &Pod, owner: &serde_json::Value) -> Patch {
    let mut ops = vec![json!({"op": "test", "path": "/metadata/uid", "value": uid(&pod.metadata)})];
    if pod
        .metadata
        .owner_references
        .as_ref()
        .is_none_or(Vec::is_empty)
    {
        ops.push(json!({"op": "add", "path": "/metadata/ownerReferences", "value": [owner]}));
    } else {
        ops.push(json!({"op": "add", "path": "/metadata/ownerReferences/-", "value": owner}));
    }
    Patch::Json(serde_json::Value::Array(ops))
}

/// JSON patch removing the owner reference with `owner_uid` from `meta`.
pub fn release_patch(meta: &ObjectMeta, owner_uid: &str) -> Option<Patch> {
    let refs = meta.owner_references.as_deref().unwrap_or_default();
    let i = refs.iter().position(|r| r.uid == owner_uid)?;
    Some(Patch::Json(json!([
        {"op": "test", "path": "/metadata/uid", "value": uid(meta)},
        {"op": "test", "path": format!("/metadata/ownerReferences/{i}/uid"), "value": owner_uid},
        {"op": "remove", "path": format!("/metadata/ownerReferences/{i}")},
    ])))
}

fn pod_patch(pod: &Pod, patch: Patch) -> Action {
    Action::Patch {
        resource: ApiResource::of::<Pod>(),
        namespace: pod.metadata.namespace.clone(),
        name: name(&pod.metadata).into(),
        subresource: None,
        patch,
    }
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
    let owner_json = serde_json::to_value(&owner_ref).unwrap_or_default();
    // Claim (controller_ref_manager.go ClaimPods) over active pods.
    let mut claimed: Vec<&Pod> = Vec::new();
    for p in cx.pods.iter().map(Arc::as_ref).filter(|p| is_pod_active(p)) {
        let matches = selector.matches_opt(p.metadata.labels.as_ref());
        match controller_of(&p.metadata) {
            Some(r) if r.uid == uid(&w.meta) => {
                if matches {
                    claimed.push(p);
                } else if let Some(patch) = release_patch(&p.metadata, uid(&w.meta)) {
                    // Labels stopped matching: release (the pod is then replaced).
                    actions.push(pod_patch(p, patch));
                }
            }
            Some(_) => {}
            None => {
                if matches && !is_deleting(&w.meta) && p.metadata.namespace == w.meta.namespace {
                    actions.push(pod_patch(p, adopt_patch(p, &owner_json)));
                    claimed.push(p);
                }
            }
        }
    }

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
                actions.push(Action::Delete {
                    resource: ApiResource::of::<Pod>(),
                    namespace: p.metadata.namespace.clone(),
                    name: name(&p.metadata).into(),
                    uid: p.metadata.uid.clone(),
                    propagation: None,
                    grace_period_seconds: None,
                    owner: Some((key.clone(), w.object_ref())),
                });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{make_ready, pod, replica_set};
    use orch_types::client::Patch;

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
                    patch: Patch::Json(v),
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
