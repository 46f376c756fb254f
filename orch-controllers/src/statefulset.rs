//! StatefulSet controller, after upstream `pkg/controller/statefulset/stateful_set_control.go`
//! and `stateful_set_utils.go` (Kubernetes 1.33):
//! - pods `<set>-<ordinal>` for ordinals `[start, start + replicas)` (`spec.ordinals.start`),
//!   with the labels `statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index`,
//!   hostname = pod name and subdomain = `serviceName`;
//! - `OrderedReady`: one pod created at a time, each after its predecessors are Running and
//!   Ready (and available after `minReadySeconds`); scale-down deletes the highest ordinal
//!   first, one at a time; `Parallel`: all at once;
//! - failed or succeeded pods are deleted and created again;
//! - `volumeClaimTemplates`: claim `<template>-<pod>` created before its pod (labels of the
//!   template plus the selector's `matchLabels`), kept when the pod goes; the pod mounts it
//!   under the template's name. `persistentVolumeClaimRetentionPolicy`: `whenDeleted: Delete`
//!   makes the StatefulSet an owner of its claims (the garbage collector deletes them with it);
//!   `whenScaled: Delete` makes a condemned pod the owner of its claims before it is deleted;
//! - ControllerRevisions (`currentRevision`, `updateRevision`; pods carry the revision *name*
//!   in `controller-revision-hash`); pods below `partition` are created from the current
//!   revision;
//! - `RollingUpdate`: the highest ordinal not at the update revision is deleted (recreated at
//!   the new one), waiting for every pod to be healthy between two, down to `partition`;
//!   `OnDelete`: only pods someone deleted are recreated at the update revision;
//! - status: replicas, ready, available, current, updated, the two revisions,
//!   `observedGeneration`, `collisionCount`.
//!
//! Pods and claims are claimed by controller reference and name only: orphans are not adopted.
//! `maxUnavailable` for rolling updates (alpha upstream) is not modelled: one pod at a time.

use crate::controller_utils::{
    claim, is_pod_available, is_pod_ready, orphan_pods, owned_pods, phase, pod_from_template,
};
use crate::history::{self, pod_hash, template_of, REVISION_HASH};
use crate::selector::{from_label_selector, selects, Selector};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_owner, trigger_self, Caches, Controller, Watches};
use orch_runtime::expectations::Expectations;
use orch_runtime::object::{controller_ref, is_deleting, key_of, name};
use orch_types::dynamic::DynamicObject;
use orch_types::events::ObjectRef;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Label with the pod's name (for a per-pod Service).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

fn set_ref(set: &StatefulSet) -> ObjectRef {
    ObjectRef::of(set)
}

fn owner_ref(set: &StatefulSet) -> OwnerReference {
    controller_ref("apps/v1", "StatefulSet", &set.metadata)
}

/// The set's ordinal of a pod named `<set>-<n>` (`getParentNameAndOrdinal`).
pub fn ordinal_of(set_name: &str, pod_name: &str) -> Option<i32> {
    let (parent, n) = pod_name.rsplit_once('-')?;
    if parent != set_name || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

fn replicas(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

fn min_ready(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

fn strategy(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

fn partition(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
}

fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or_default()
}

/// `whenDeleted` and `whenScaled` are `Delete`.
fn retention(set: &StatefulSet) -> (bool, bool) {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.is_some_and(|v| v == "Delete");
    (
        delete(p.and_then(|p| p.when_deleted.as_ref())),
        delete(p.and_then(|p| p.when_scaled.as_ref())),
    )
}

fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", name(&set.metadata))
}

/// `getPersistentVolumeClaimName`: `<template>-<set>-<ordinal>`.
pub fn claim_name(template: &str, set: &StatefulSet, ordinal: i32) -> String {
    format!("{template}-{}", pod_name(set, ordinal))
}

fn is_running_and_ready(p: &Pod) -> bool {
    phase(p) == "Running" && is_pod_ready(p)
}

fn is_healthy(p: &Pod) -> bool {
    is_running_and_ready(p) && !is_deleting(&p.metadata)
}

/// `isCreated`: the API gave it a phase.
fn is_created(p: &Pod) -> bool {
    !phase(p).is_empty()
}

/// `newStatefulSetPod`: the pod for `ordinal` from `template` at `revision`.
fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let mut pod = pod_from_template(template, &set.metadata, owner_ref(set));
    let pname = pod_name(set, ordinal);
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(pname.clone());
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), pname.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_HASH.into(), revision.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(pname);
    if let Some(svc) = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.as_deref())
        .filter(|s| !s.is_empty())
    {
        spec.subdomain = Some(svc.into());
    }
    // `updateStorage`: each claim template becomes a volume of that name.
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for t in claim_templates(set) {
        let tname = name(&t.metadata).to_string();
        volumes.retain(|v| v.name != tname);
        volumes.push(Volume {
            name: tname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&tname, set, ordinal),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    pod
}

/// The claims of the pod at `ordinal` (`getPersistentVolumeClaims`), with owner references as
/// the retention policy asks for a pod in range.
fn new_claims(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let (when_deleted, _) = retention(set);
    let match_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|t| {
            let mut c = t.clone();
            c.metadata = ObjectMeta {
                name: Some(claim_name(name(&t.metadata), set, ordinal)),
                namespace: set.metadata.namespace.clone(),
                labels: Some({
                    let mut l = t.metadata.labels.clone().unwrap_or_default();
                    l.extend(match_labels.clone());
                    l
                }),
                annotations: t.metadata.annotations.clone(),
                owner_references: when_deleted.then(|| {
                    vec![OwnerReference {
                        controller: None,
                        block_owner_deletion: None,
                        ..owner_ref(set)
                    }]
                }),
                ..Default::default()
            };
            c.status = None;
            c
        })
        .collect()
}

/// What one sync of a StatefulSet sees.
pub struct StatefulSetView<'a> {
    /// Pods the StatefulSet controls.
    pub pods: &'a [Arc<Pod>],
    /// ControllerRevisions it controls.
    pub revisions: &'a [Arc<ControllerRevision>],
    /// A ControllerRevision of the set's namespace by name (for hash collisions).
    pub revision_named: &'a dyn Fn(&str) -> Option<Arc<ControllerRevision>>,
    /// A PersistentVolumeClaim of the set's namespace by name.
    pub claim: &'a dyn Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
    /// Whether earlier creates and deletes have all been observed.
    pub expectations_satisfied: bool,
    /// Now.
    pub now: Timestamp,
}

/// One slot of `[start, start + replicas)`: the pod there, or the one to create.
enum Slot<'a> {
    Live(&'a Pod),
    Missing(i32),
}

struct Pass<'a, 'v> {
    set: &'a StatefulSet,
    view: &'v StatefulSetView<'a>,
    current: (String, PodTemplateSpec),
    update: (String, PodTemplateSpec),
    monotonic: bool,
    actions: Vec<Action>,
}

impl Pass<'_, '_> {
    fn key(&self) -> String {
        key_of(&self.set.metadata)
    }

    /// `newVersionedStatefulSetPod`: below the partition (or the current replica count
    /// without a rolling-update block) a pod is made from the current revision.
    fn versioned_pod(&self, ordinal: i32) -> Pod {
        let cur_replicas = self
            .set
            .status
            .as_ref()
            .and_then(|s| s.current_replicas)
            .unwrap_or(0);
        let has_ru = self
            .set
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .is_some_and(|u| u.rolling_update.is_some());
        let start = start_ordinal(self.set);
        let below = if has_ru {
            ordinal < start + partition(self.set)
        } else {
            ordinal < start + cur_replicas
        };
        let (rev, t) = if strategy(self.set) == "RollingUpdate" && below {
            &self.current
        } else {
            &self.update
        };
        new_pod(self.set, t, rev, ordinal)
    }

    /// Creates the pod's missing claims, then the pod (`CreateStatefulPod`).
    fn create(&mut self, ordinal: i32) {
        for c in new_claims(self.set, ordinal) {
            match (self.view.claim)(name(&c.metadata)) {
                None => self.actions.push(Action::create(&c)),
                Some(existing) if is_deleting(&existing.metadata) => {
                    // `PodClaimIsStale`-like: wait for the old claim to go.
                    self.actions.push(Action::warning(
                        set_ref(self.set),
                        "FailedCreate",
                        format!(
                            "create Claim {} for Pod {} in StatefulSet {} failed error: PVC is being deleted",
                            name(&c.metadata),
                            pod_name(self.set, ordinal),
                            name(&self.set.metadata)
                        ),
                    ));
                    self.actions
                        .push(Action::Requeue(std::time::Duration::from_secs(1)));
                    return;
                }
                Some(_) => {}
            }
        }
        let pod = self.versioned_pod(ordinal);
        self.actions.push(Action::CreatePods {
            pods: vec![DynamicObject::from_typed(&pod).unwrap_or_default()],
            owner: set_ref(self.set),
            expectation_key: self.key(),
        });
    }

    fn delete(&mut self, p: &Pod) {
        self.actions.push(crate::controller_utils::delete_pod(
            p,
            None,
            Some((self.key(), set_ref(self.set))),
        ));
    }

    /// `processReplica`: returns true when the pass must stop here.
    fn replica(&mut self, slot: &Slot<'_>) -> bool {
        let p = match slot {
            Slot::Missing(ord) => {
                self.create(*ord);
                return self.monotonic;
            }
            Slot::Live(p) => *p,
        };
        if matches!(phase(p), "Failed" | "Succeeded") && !is_deleting(&p.metadata) {
            let (reason, what) = if phase(p) == "Failed" {
                ("RecreatingFailedPod", "failed")
            } else {
                ("RecreatingTerminatedPod", "terminated")
            };
            self.actions.push(Action::warning(
                set_ref(self.set),
                reason,
                format!(
                    "StatefulSet {}/{} is recreating {what} Pod {}",
                    self.set.metadata.namespace.as_deref().unwrap_or(""),
                    name(&self.set.metadata),
                    name(&p.metadata)
                ),
            ));
            self.delete(p);
            return self.monotonic;
        }
        if phase(p) == "Pending" {
            // `createMissingPersistentVolumeClaims`: a claim deleted under a pending pod.
            if let Some(ord) = ordinal_of(name(&self.set.metadata), name(&p.metadata)) {
                for c in new_claims(self.set, ord) {
                    if (self.view.claim)(name(&c.metadata)).is_none() {
                        self.actions.push(Action::create(&c));
                    }
                }
            }
        }
        if !self.monotonic {
            return false;
        }
        is_deleting(&p.metadata)
            || !is_running_and_ready(p)
            || !is_pod_available(p, min_ready(self.set), self.view.now)
    }

    /// `processCondemned`: returns true when the pass must stop here.
    fn condemned(&mut self, p: &Pod, first_unhealthy: Option<&str>) -> bool {
        if is_deleting(&p.metadata) {
            return self.monotonic;
        }
        let first = first_unhealthy == Some(name(&p.metadata));
        if self.monotonic && !first {
            if !is_running_and_ready(p) {
                return true;
            }
            if !is_pod_available(p, min_ready(self.set), self.view.now) {
                return true;
            }
        }
        let (_, when_scaled) = retention(self.set);
        if when_scaled {
            self.own_claims_by(p);
        }
        self.delete(p);
        self.monotonic
    }

    /// `whenScaled: Delete`: the condemned pod becomes the owner of its claims (and the set no
    /// longer is), so the garbage collector deletes them after the pod.
    fn own_claims_by(&mut self, p: &Pod) {
        let Some(ord) = ordinal_of(name(&self.set.metadata), name(&p.metadata)) else {
            return;
        };
        let set_uid = self.set.metadata.uid.clone().unwrap_or_default();
        let pod_uid = p.metadata.uid.clone().unwrap_or_default();
        for t in claim_templates(self.set) {
            let cname = claim_name(name(&t.metadata), self.set, ord);
            let Some(c) = (self.view.claim)(&cname) else {
                continue;
            };
            let mut refs: Vec<OwnerReference> = c
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.uid != set_uid)
                .collect();
            if refs.iter().any(|r| r.uid == pod_uid) {
                continue;
            }
            refs.push(OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: name(&p.metadata).into(),
                uid: pod_uid.clone(),
                controller: None,
                block_owner_deletion: None,
            });
            self.actions
                .push(Action::merge_patch::<PersistentVolumeClaim>(
                    c.metadata.namespace.as_deref(),
                    &cname,
                    None,
                    json!({"metadata": {"ownerReferences": refs,
                                    "resourceVersion": c.metadata.resource_version}}),
                ));
        }
    }
}

/// One sync of `set` (`UpdateStatefulSet`).
pub fn reconcile(set: &StatefulSet, view: StatefulSetView<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let collisions = set.status.as_ref().and_then(|s| s.collision_count);
    let owner = history::Owner {
        meta: &set.metadata,
        owner_ref: owner_ref(set),
        template: &template,
        collision_count: collisions,
    };
    let update = match history::sync(
        &owner,
        view.revisions,
        view.pods,
        view.revision_named,
        &mut actions,
    ) {
        Ok(cur) => cur,
        Err(history::NameTaken) => {
            let mut st = set.status.clone().unwrap_or_default();
            st.collision_count = Some(collisions.unwrap_or(0) + 1);
            let mut s = set.clone();
            s.status = Some(st);
            actions.push(Action::update_status(&s));
            return actions;
        }
    };
    // The current revision: the one the status names, else the update revision.
    let current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref())
        .and_then(|n| view.revisions.iter().find(|r| name(&r.metadata) == n))
        .and_then(|r| Some((name(&r.metadata).to_string(), template_of(r)?)))
        .unwrap_or_else(|| (update.name.clone(), template.clone()));

    // Partition the pods: in range by ordinal, or condemned.
    let set_name = name(&set.metadata);
    let start = start_ordinal(set);
    let count = replicas(set);
    let mut slots: Vec<Slot<'_>> = (0..count).map(|i| Slot::Missing(start + i)).collect();
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for p in view.pods {
        let Some(ord) = ordinal_of(set_name, name(&p.metadata)) else {
            continue;
        };
        if (start..start + count).contains(&ord) {
            slots[(ord - start) as usize] = Slot::Live(p);
        } else {
            condemned.push((ord, p));
        }
    }
    condemned.sort_by_key(|(o, _)| std::cmp::Reverse(*o));
    let first_unhealthy = slots
        .iter()
        .find_map(|s| match s {
            Slot::Live(p) if !is_healthy(p) => Some(name(&p.metadata)),
            Slot::Missing(_) => None,
            _ => None,
        })
        .or_else(|| {
            condemned
                .iter()
                .rev()
                .find(|(_, p)| !is_healthy(p))
                .map(|(_, p)| name(&p.metadata))
        });

    let full = view.expectations_satisfied && !is_deleting(&set.metadata);
    if full {
        let monotonic = set
            .spec
            .as_ref()
            .and_then(|s| s.pod_management_policy.as_deref())
            != Some("Parallel");
        let mut pass = Pass {
            set,
            view: &view,
            current: current.clone(),
            update: (update.name.clone(), template.clone()),
            monotonic,
            actions: std::mem::take(&mut actions),
        };
        let mut stopped = false;
        for s in &slots {
            if pass.replica(s) {
                stopped = true;
                break;
            }
        }
        if !stopped {
            for (_, p) in &condemned {
                if pass.condemned(p, first_unhealthy) {
                    stopped = true;
                    break;
                }
            }
        }
        // `updateStatefulSetAfterInvariantEstablished`: highest ordinal first, down to the
        // partition, one pod at a time, each only when every later one is healthy.
        let quiet = !pass
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreatePods { .. } | Action::Delete { .. }));
        if !stopped && quiet && strategy(set) == "RollingUpdate" {
            let min = partition(set).max(0) as usize;
            for s in slots.iter().skip(min).rev() {
                let Slot::Live(p) = s else { break };
                if pod_hash(p) != Some(update.name.as_str()) && !is_deleting(&p.metadata) {
                    pass.delete(p);
                    break;
                }
                if !is_healthy(p) {
                    break;
                }
            }
        }
        actions = pass.actions;
        let limit = set.spec.as_ref().and_then(|s| s.revision_history_limit);
        history::truncate(
            limit,
            view.revisions,
            view.pods,
            &[&current.0, &update.name],
            &mut actions,
        );
    }
    status(set, &view, &current.0, &update.name, full, &mut actions);
    actions
}

/// `updateStatus` + `completeRollingUpdate`.
fn status(
    set: &StatefulSet,
    view: &StatefulSetView<'_>,
    current: &str,
    update: &str,
    full: bool,
    actions: &mut Vec<Action>,
) {
    let min_ready = min_ready(set);
    let old = set.status.clone().unwrap_or_default();
    let mut st = StatefulSetStatus {
        observed_generation: if full {
            set.metadata.generation
        } else {
            old.observed_generation
        },
        current_revision: Some(current.into()),
        update_revision: Some(update.into()),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    let (mut total, mut ready, mut available, mut cur, mut upd) = (0, 0, 0, 0, 0);
    for p in view
        .pods
        .iter()
        .filter(|p| ordinal_of(name(&set.metadata), name(&p.metadata)).is_some())
    {
        if is_created(p) {
            total += 1;
        }
        if is_running_and_ready(p) {
            ready += 1;
            if is_pod_available(p, min_ready, view.now) {
                available += 1;
            }
        }
        if is_created(p) && !is_deleting(&p.metadata) {
            let rev = pod_hash(p);
            if rev == Some(current) {
                cur += 1;
            }
            if rev == Some(update) {
                upd += 1;
            }
        }
    }
    st.replicas = total;
    st.ready_replicas = Some(ready);
    st.available_replicas = Some(available);
    st.current_replicas = Some(cur);
    st.updated_replicas = Some(upd);
    if strategy(set) == "RollingUpdate" && upd == total && ready == total {
        st.current_replicas = Some(upd);
        st.current_revision = Some(update.into());
    }
    if st != old {
        let mut s = set.clone();
        s.status = Some(st);
        actions.push(Action::update_status(&s));
    }
    // A ready pod that is not yet available: look again when it is.
    let wake = view
        .pods
        .iter()
        .filter_map(|p| crate::controller_utils::until_available(p, min_ready, view.now))
        .min();
    if let Some(d) = wake {
        actions.push(Action::Requeue(d));
    }
}

/// The StatefulSet controller's declaration.
#[derive(Debug, Default)]
pub struct StatefulSetController {
    expectations: Expectations,
}

/// The set's selector, `None` if it does not parse (it then selects nothing).
fn selector(set: &StatefulSet) -> Option<Selector> {
    from_label_selector(set.spec.as_ref().map(|s| &s.selector)).ok()
}

/// upstream `isMemberOf` and the selector `sel`: a pod named `<set>-<ordinal>` whose labels
/// match.
fn member(set: &StatefulSet, sel: Option<&Selector>, p: &Pod) -> bool {
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    let pod_name = p.metadata.name.as_deref().unwrap_or_default();
    ordinal_of(set_name, pod_name).is_some() && selects(sel, &p.metadata)
}

impl Controller for StatefulSetController {
    fn name(&self) -> &'static str {
        "statefulset"
    }

    fn component(&self) -> &'static str {
        "statefulset-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<StatefulSet>(trigger_self());
        let (owned, orphans) = (
            owned_pods("StatefulSet", self.expectations.clone()),
            orphan_pods::<StatefulSet>(|set, p| member(set, selector(set).as_ref(), p)),
        );
        w.watch::<Pod>(Arc::new(move |c, caches, keys| {
            owned(c, caches, keys);
            orphans(c, caches, keys);
        }));
        w.watch::<ControllerRevision>(trigger_owner("StatefulSet"));
        w.reads::<PersistentVolumeClaim>();
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let Some(set) = caches.get::<StatefulSet>().get(key) else {
            self.expectations.delete(key);
            return Vec::new();
        };
        // Being deleted (foreground or orphaning): its pods and revisions may be going or
        // losing their owner, so no history is built and no pod made (upstream
        // `syncDaemonSet` / `updateStatefulSet` return early); the garbage collector
        // finishes it.
        if is_deleting(&set.metadata) {
            return Vec::new();
        }
        // upstream `getPodsForStatefulSet` (selector and `isMemberOf`) and `ListRevisions` +
        // `ClaimControllerRevisions`: adopt orphans, release what stopped matching.
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let owner = controller_ref("apps/v1", "StatefulSet", &set.metadata);
        let set_ns = set.metadata.namespace.clone().unwrap_or_default();
        let sel = selector(&set);
        let pods = claim(
            &caches.get::<Pod>().claimable(&uid, &set_ns),
            &set.metadata,
            &owner,
            |p: &Pod| member(&set, sel.as_ref(), p),
        );
        let revisions = claim(
            &caches.get::<ControllerRevision>().claimable(&uid, &set_ns),
            &set.metadata,
            &owner,
            |r: &ControllerRevision| selects(sel.as_ref(), &r.metadata),
        );
        let mut claims = pods.actions.clone();
        claims.extend(revisions.actions.iter().cloned());
        let (pods, revisions) = (pods.all(), revisions.all());
        let crs = caches.get::<ControllerRevision>();
        let ns = set.metadata.namespace.clone();
        let ns2 = ns.clone();
        let named = move |n: &str| crs.get_in(ns.as_deref(), n);
        let pvcs = caches.get::<PersistentVolumeClaim>();
        let claim_named = move |n: &str| pvcs.get_in(ns2.as_deref(), n);
        claims.extend(reconcile(
            &set,
            StatefulSetView {
                pods: &pods,
                revisions: &revisions,
                revision_named: &named,
                claim: &claim_named,
                expectations_satisfied: self.expectations.satisfied(key, now),
                now,
            },
        ));
        claims
    }

    fn expectations(&self) -> Option<Expectations> {
        Some(self.expectations.clone())
    }
}

#[cfg(test)]
mod tests;
