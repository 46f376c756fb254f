//! ControllerRevision history shared by the DaemonSet and StatefulSet controllers, after
//! upstream `pkg/controller/history/controller_history.go` and the two controllers' use of it
//! (`constructHistory` in `daemon/update.go`, `getStatefulSetRevisions` in
//! `statefulset/stateful_set_control.go`): a revision stores the pod template as the strategic
//! merge patch `{"spec":{"template":{…,"$patch":"replace"}}}` that `kubectl rollout undo`
//! sends back; pods carry the `controller-revision-hash` of theirs.

use crate::deployment::util::compute_hash;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use orch_runtime::action::Action;
use orch_runtime::object::{is_deleting, name};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

/// Label with the hash of the ControllerRevision a pod was made from.
pub const REVISION_HASH: &str = "controller-revision-hash";

/// Default `revisionHistoryLimit`.
pub const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// The patch a revision stores for `template` (`getPatch`).
pub fn revision_data(template: &PodTemplateSpec) -> serde_json::Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({ "spec": { "template": t } })
}

/// The template a revision holds (`ApplyRevision` on the template).
pub fn template_of(cr: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = cr.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// A revision's hash: its `controller-revision-hash` label, else its name.
pub fn revision_hash(cr: &ControllerRevision) -> String {
    cr.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_HASH).cloned())
        .unwrap_or_else(|| name(&cr.metadata).to_string())
}

/// A pod's revision hash label.
pub fn pod_hash(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH)
        .map(String::as_str)
}

/// The revision of an owner's current template.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    /// Its name.
    pub name: String,
    /// Its hash (the pods' label).
    pub hash: String,
    /// Its revision number (after any renumbering asked for).
    pub revision: i64,
}

/// What [`sync`] needs to know of the owner.
pub struct Owner<'a> {
    /// The owner's metadata (name, namespace, annotations copied onto a new revision).
    pub meta: &'a ObjectMeta,
    /// The controller reference a new revision gets.
    pub owner_ref: OwnerReference,
    /// The owner's current template.
    pub template: &'a PodTemplateSpec,
    /// `status.collisionCount`.
    pub collision_count: Option<i32>,
}

/// The revision name a template hashes to is taken by another revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameTaken;

/// Finds the revision equal to the owner's template, or asks for it to be created; a revision
/// equal to the template but older than others is renumbered past them (a rollback), and
/// duplicates are deleted after their pods are relabelled. On [`NameTaken`] the caller bumps
/// `collisionCount` and retries.
pub fn sync(
    owner: &Owner<'_>,
    revisions: &[Arc<ControllerRevision>],
    pods: &[Arc<Pod>],
    revision_named: &dyn Fn(&str) -> Option<Arc<ControllerRevision>>,
    actions: &mut Vec<Action>,
) -> Result<Current, NameTaken> {
    let data = revision_data(owner.template);
    let (mut equal, others): (Vec<&Arc<ControllerRevision>>, Vec<_>) = revisions
        .iter()
        .filter(|r| !is_deleting(&r.metadata))
        .partition(|r| r.data.as_ref().is_some_and(|d| d.0 == data));
    let next = others.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    equal.sort_by_key(|r| std::cmp::Reverse(r.revision));
    let Some(cur) = equal.first() else {
        let hash = compute_hash(owner.template, owner.collision_count);
        let cr_name = format!("{}-{hash}", name(owner.meta));
        if revision_named(&cr_name).is_some() {
            return Err(NameTaken);
        }
        let mut labels = owner
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(REVISION_HASH.into(), hash.clone());
        actions.push(Action::create(&ControllerRevision {
            metadata: ObjectMeta {
                name: Some(cr_name.clone()),
                namespace: owner.meta.namespace.clone(),
                labels: Some(labels),
                annotations: owner.meta.annotations.clone(),
                owner_references: Some(vec![owner.owner_ref.clone()]),
                ..Default::default()
            },
            data: Some(RawExtension(data)),
            revision: next,
        }));
        return Ok(Current {
            name: cr_name,
            hash,
            revision: next,
        });
    };
    let hash = revision_hash(cur);
    // Duplicates (`dedupCurHistories`): their pods are relabelled to the one kept, then they go.
    for dup in &equal[1..] {
        let dup_hash = revision_hash(dup);
        for p in pods.iter().filter(|p| pod_hash(p) == Some(&dup_hash)) {
            actions.push(Action::merge_patch::<Pod>(
                p.metadata.namespace.as_deref(),
                name(&p.metadata),
                None,
                json!({"metadata": {"labels": {REVISION_HASH: hash}}}),
            ));
        }
        actions.push(Action::delete(&***dup));
    }
    let mut revision = cur.revision;
    if cur.revision < next {
        revision = next;
        actions.push(Action::merge_patch::<ControllerRevision>(
            cur.metadata.namespace.as_deref(),
            name(&cur.metadata),
            None,
            json!({ "revision": next }),
        ));
    }
    Ok(Current {
        name: name(&cur.metadata).to_string(),
        hash,
        revision,
    })
}

/// Deletes the oldest revisions beyond `limit` that neither a pod nor `keep` uses
/// (`cleanupHistory` / `truncateHistory`). A pod's label names its revision by hash
/// (DaemonSet) or by name (StatefulSet); either counts.
pub fn truncate(
    limit: Option<i32>,
    revisions: &[Arc<ControllerRevision>],
    pods: &[Arc<Pod>],
    keep: &[&str],
    actions: &mut Vec<Action>,
) {
    let limit = limit.unwrap_or(DEFAULT_HISTORY_LIMIT).max(0) as usize;
    let live: HashSet<&str> = pods.iter().filter_map(|p| pod_hash(p)).collect();
    let mut old: Vec<&Arc<ControllerRevision>> = revisions
        .iter()
        .filter(|r| !is_deleting(&r.metadata))
        .filter(|r| {
            !keep.contains(&name(&r.metadata)) && !keep.contains(&revision_hash(r).as_str())
        })
        .collect();
    if old.len() <= limit {
        return;
    }
    old.sort_by_key(|r| r.revision);
    let mut to_kill = old.len() - limit;
    for r in old {
        if to_kill == 0 {
            break;
        }
        if live.contains(revision_hash(r).as_str()) || live.contains(name(&r.metadata)) {
            continue;
        }
        actions.push(Action::delete(&**r));
        to_kill -= 1;
    }
}
