//! Garbage collector (`pkg/controller/garbagecollector/garbagecollector.go`): deletes
//! dependents whose owners are gone, and implements the `orphan` and `foregroundDeletion`
//! finalizers of owners being deleted.
//!
//! For one object ([`reconcile`]):
//! - owner being deleted with `orphan`: strip its ownerReference from every dependent, then
//!   drop the finalizer;
//! - owner being deleted with `foregroundDeletion`: delete its dependents; drop the finalizer
//!   once no dependent with `blockOwnerDeletion: true` is left;
//! - dependent: classify its owners as solid / dangling (absent or UID mismatch) / waiting
//!   (being foreground-deleted) as `attemptToDeleteItem`: with a solid owner only the dangling
//!   references are removed; with none it is deleted (foreground if an owner waits on it and it
//!   has dependents of its own; otherwise with the policy its own finalizers ask for).
//! - a cluster-scoped dependent naming a namespaced owner is invalid: the reference counts as
//!   dangling and an `OwnerRefInvalidNamespace` event is recorded.
//!
//! What it watches is what the API serves ([`deletable`]): built-in kinds and custom
//! resources alike, rediscovered as CustomResourceDefinitions come and go (upstream's
//! `GarbageCollector.Sync` resyncs its monitors from `GetDeletableResources`). An owner of a
//! kind the API does not serve (a CRD that was deleted, or not discovered yet) is never
//! taken for gone.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use orch_runtime::action::Action;
use orch_runtime::action::Lookup;
use orch_runtime::controller::{Caches, Controller, MetaChange, MetaIndex, Watches};
use orch_runtime::object::{is_deleting, key_from, split_key, uid};
use orch_types::client::{DiscoveredResource, Patch, PropagationPolicy};
use orch_types::events::{reason, ObjectRef};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// `orphan` finalizer.
pub const ORPHAN: &str = "orphan";
/// `foregroundDeletion` finalizer.
pub const FOREGROUND: &str = "foregroundDeletion";

/// What the view knows about an owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerState {
    /// No object with that name and UID.
    Absent,
    /// Present and not being foreground-deleted.
    Present,
    /// Being deleted with `foregroundDeletion`: waits for its dependents.
    WaitingForDependents,
    /// The reference cannot resolve (namespaced owner of a cluster-scoped object).
    InvalidNamespace,
}

/// A resource-typed object of the graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its resource.
    pub resource: ApiResource,
    /// The object.
    pub object: Arc<DynamicObject>,
}

/// The graph as the collector reads it (informer caches, confirmed by live reads in the driver).
pub trait GcView {
    /// State of the owner an ownerReference of a dependent in `namespace` points at.
    fn owner_state(&self, namespace: Option<&str>, r: &OwnerReference) -> OwnerState;
    /// Objects with an ownerReference to `uid`.
    fn dependents(&self, uid: &str) -> Vec<Node>;
}

fn has_finalizer(o: &DynamicObject, f: &str) -> bool {
    o.metadata
        .finalizers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|x| x == f)
}

fn remove_finalizer(item: &Node, f: &str) -> Action {
    let rest: Vec<String> = item
        .object
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|x| *x != f)
        .cloned()
        .collect();
    Action::Patch {
        resource: item.resource.clone(),
        namespace: item.object.metadata.namespace.clone(),
        name: item.object.name().into(),
        subresource: None,
        // Guarded by resourceVersion so a concurrent finalizer change is not lost.
        patch: Patch::Merge(json!({"metadata": {
            "finalizers": rest,
            "resourceVersion": item.object.metadata.resource_version,
        }})),
    }
}

fn strip_refs(item: &Node, uids: &[&str]) -> Action {
    let refs = item
        .object
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default();
    let mut ops =
        vec![json!({"op": "test", "path": "/metadata/uid", "value": uid(&item.object.metadata)})];
    // Remove from the back so indices stay valid.
    for (i, r) in refs.iter().enumerate().rev() {
        if uids.contains(&r.uid.as_str()) {
            ops.push(json!({"op": "test", "path": format!("/metadata/ownerReferences/{i}/uid"), "value": r.uid}));
            ops.push(json!({"op": "remove", "path": format!("/metadata/ownerReferences/{i}")}));
        }
    }
    Action::Patch {
        resource: item.resource.clone(),
        namespace: item.object.metadata.namespace.clone(),
        name: item.object.name().into(),
        subresource: None,
        patch: Patch::Json(serde_json::Value::Array(ops)),
    }
}

fn unblock_refs(item: &Node, uids: &[&str]) -> Action {
    let refs = item
        .object
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default();
    let mut ops =
        vec![json!({"op": "test", "path": "/metadata/uid", "value": uid(&item.object.metadata)})];
    for (i, r) in refs.iter().enumerate() {
        if uids.contains(&r.uid.as_str()) {
            ops.push(json!({"op": "replace", "path": format!("/metadata/ownerReferences/{i}/blockOwnerDeletion"), "value": false}));
        }
    }
    Action::Patch {
        resource: item.resource.clone(),
        namespace: item.object.metadata.namespace.clone(),
        name: item.object.name().into(),
        subresource: None,
        patch: Patch::Json(serde_json::Value::Array(ops)),
    }
}

fn delete(item: &Node, policy: PropagationPolicy) -> Action {
    Action::Delete {
        resource: item.resource.clone(),
        namespace: item.object.metadata.namespace.clone(),
        name: item.object.name().into(),
        uid: item.object.metadata.uid.clone(),
        propagation: Some(policy),
        grace_period_seconds: None,
        owner: None,
    }
}

/// How soon to look again at an owner waiting for its dependents.
const WAIT_RECHECK: Duration = Duration::from_secs(2);

/// One pass of the collector over `item`.
pub fn reconcile(item: &Node, view: &dyn GcView) -> Vec<Action> {
    let o = &item.object;
    let mut actions = Vec::new();
    if is_deleting(&o.metadata) {
        let my_uid = uid(&o.metadata);
        if has_finalizer(o, ORPHAN) {
            let deps = view.dependents(my_uid);
            if deps.is_empty() {
                actions.push(remove_finalizer(item, ORPHAN));
            } else {
                for d in &deps {
                    actions.push(strip_refs(d, &[my_uid]));
                }
                actions.push(Action::requeue(WAIT_RECHECK));
            }
            return actions;
        }
        if has_finalizer(o, FOREGROUND) {
            let deps = view.dependents(my_uid);
            let blocking: Vec<&Node> = deps
                .iter()
                .filter(|d| {
                    d.object
                        .metadata
                        .owner_references
                        .as_deref()
                        .unwrap_or_default()
                        .iter()
                        .any(|r| r.uid == my_uid && r.block_owner_deletion == Some(true))
                })
                .collect();
            for d in &deps {
                if !is_deleting(&d.object.metadata) {
                    let grand = !view.dependents(uid(&d.object.metadata)).is_empty();
                    let policy = if grand {
                        PropagationPolicy::Foreground
                    } else {
                        PropagationPolicy::Background
                    };
                    actions.push(delete(d, policy));
                }
            }
            if blocking.is_empty() {
                actions.push(remove_finalizer(item, FOREGROUND));
            } else {
                actions.push(Action::requeue(WAIT_RECHECK));
            }
            return actions;
        }
        return actions;
    }
    let refs = o.metadata.owner_references.as_deref().unwrap_or_default();
    if refs.is_empty() {
        return actions;
    }
    let (mut solid, mut dangling, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
    for r in refs {
        match view.owner_state(o.metadata.namespace.as_deref(), r) {
            OwnerState::Present => solid.push(r),
            OwnerState::Absent => dangling.push(r),
            OwnerState::WaitingForDependents => waiting.push(r),
            OwnerState::InvalidNamespace => {
                actions.push(Action::warning(
                    ObjectRef::of_dynamic(o),
                    reason::OWNER_REF_INVALID_NAMESPACE,
                    format!(
                        "ownerRef [{}/{}, namespace: {}, name: {}, uid: {}] does not exist in namespace {:?}",
                        r.api_version,
                        r.kind,
                        o.namespace().unwrap_or(""),
                        r.name,
                        r.uid,
                        o.namespace().unwrap_or("")
                    ),
                ));
                dangling.push(r);
            }
        }
    }
    if !solid.is_empty() {
        if !dangling.is_empty() {
            let uids: Vec<&str> = dangling.iter().map(|r| r.uid.as_str()).collect();
            actions.push(strip_refs(item, &uids));
        }
        let blocking_waiting: Vec<&str> = waiting
            .iter()
            .filter(|r| r.block_owner_deletion == Some(true))
            .map(|r| r.uid.as_str())
            .collect();
        if !blocking_waiting.is_empty() {
            actions.push(unblock_refs(item, &blocking_waiting));
        }
        return actions;
    }
    let has_dependents = !view.dependents(uid(&o.metadata)).is_empty();
    let policy = if !waiting.is_empty() && has_dependents {
        PropagationPolicy::Foreground
    } else if has_finalizer(o, ORPHAN) {
        PropagationPolicy::Orphan
    } else if has_finalizer(o, FOREGROUND) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    };
    actions.push(delete(item, policy));
    actions
}

/// Whether the collector watches a served resource, and namespace deletion removes its
/// objects when it is namespaced: it can be listed, watched and deleted (upstream
/// `GetDeletableResources`, `pkg/controller/garbagecollector/garbagecollector.go`), and is
/// not Events (they expire on their own TTL, as upstream's collector ignores them by
/// default; the simulator does not keep them in its caches).
pub fn deletable(d: &DiscoveredResource) -> bool {
    d.supports(&["list", "watch", "delete"]) && d.resource.kind != "Event"
}

/// The collector's work-queue key of an object: `apiVersion/Kind|namespace/name`.
fn gc_key(r: &ApiResource, namespace: Option<&str>, name: &str) -> String {
    format!(
        "{}/{}|{}",
        r.api_version(),
        r.kind,
        key_from(namespace, name)
    )
}

fn parse_gc_key(key: &str) -> Option<(&str, &str, &str)> {
    let (res, obj) = key.split_once('|')?;
    let (api_version, kind) = res.rsplit_once('/')?;
    Some((api_version, kind, obj))
}

/// The graph as the caches show it (one snapshot of their metadata views).
struct CacheView(Arc<MetaIndex>);

impl CacheView {
    /// The state of the owner `r` of a dependent in `namespace`, and the owner's resource.
    fn owner(
        &self,
        namespace: Option<&str>,
        r: &OwnerReference,
    ) -> Option<(&ApiResource, OwnerState)> {
        let (res, store) = self.0.by_kind(&r.api_version, &r.kind)?;
        if res.namespaced && namespace.is_none() {
            return Some((res, OwnerState::InvalidNamespace));
        }
        let ns = if res.namespaced { namespace } else { None };
        let mut state = OwnerState::Absent;
        store.peek(ns, &r.name, &mut |m| {
            if m.uid.as_deref() == Some(r.uid.as_str()) {
                state = if is_deleting(m) && m.finalizers.iter().flatten().any(|f| f == FOREGROUND)
                {
                    OwnerState::WaitingForDependents
                } else {
                    OwnerState::Present
                };
            }
        });
        Some((res, state))
    }

    /// Keys of the owners of `m` waiting in foreground deletion.
    fn waiting_owner_keys(&self, m: &ObjectMeta, keys: &mut Vec<String>) {
        let ns = m.namespace.as_deref();
        for r in m.owner_references.iter().flatten() {
            if let Some((res, OwnerState::WaitingForDependents)) = self.owner(ns, r) {
                keys.push(gc_key(res, ns, &r.name));
            }
        }
    }

    fn dependent_keys(&self, uid: &str, keys: &mut Vec<String>) {
        for d in self.dependents(uid) {
            keys.push(gc_key(&d.resource, d.object.namespace(), d.object.name()));
        }
    }
}

impl GcView for CacheView {
    fn owner_state(&self, namespace: Option<&str>, r: &OwnerReference) -> OwnerState {
        // A kind the API does not serve (any more, or yet): never treat it as gone.
        self.owner(namespace, r)
            .map_or(OwnerState::Present, |(_, state)| state)
    }

    fn dependents(&self, uid: &str) -> Vec<Node> {
        self.0
            .iter()
            .flat_map(|(res, s)| {
                s.owned_by_meta(uid).into_iter().map(|object| Node {
                    resource: res.clone(),
                    object,
                })
            })
            .collect()
    }
}

/// The garbage collector (`garbagecollector`) as a declaration over the metadata of every
/// [`deletable`] resource the API serves. Like upstream's graph builder it looks at an object when it appears with an
/// owner that is not there, when its owners, finalizers or deletion change, when an owner goes
/// away or starts deleting (its dependents), and when a dependent of an owner waiting in
/// foreground deletion changes. Deletions and reference removals for owners the caches report
/// absent are guarded: the API must confirm the owner is gone first (upstream `isDangling`).
#[derive(Debug, Default)]
pub struct GarbageCollector;

impl Controller for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbagecollector"
    }

    fn component(&self) -> &'static str {
        "garbage-collector-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch_discovered_metadata(
            Arc::new(deletable),
            Arc::new(|r, c, caches, keys| {
                let view = CacheView(caches.metadata());
                let m = c.meta();
                let relevant = m.owner_references.as_ref().is_some_and(|v| !v.is_empty())
                    || m.finalizers
                        .iter()
                        .flatten()
                        .any(|f| f == ORPHAN || f == FOREGROUND);
                let me = || gc_key(r, m.namespace.as_deref(), m.name.as_deref().unwrap_or(""));
                match c {
                    MetaChange::Added(_) | MetaChange::Resync(_) => {
                        let unsettled = is_deleting(m)
                            || m.owner_references.iter().flatten().any(|o| {
                                view.owner_state(m.namespace.as_deref(), o) != OwnerState::Present
                            });
                        if relevant && unsettled {
                            keys.push(me());
                        }
                    }
                    MetaChange::Updated(old, new) => {
                        let changed = old.owner_references != new.owner_references
                            || old.deletion_timestamp != new.deletion_timestamp
                            || old.finalizers != new.finalizers;
                        if relevant && changed {
                            keys.push(me());
                        }
                        if !is_deleting(old) && is_deleting(new) {
                            view.dependent_keys(uid(new), keys);
                        }
                        view.waiting_owner_keys(new, keys);
                    }
                    MetaChange::Deleted(_) => {
                        view.dependent_keys(uid(m), keys);
                        view.waiting_owner_keys(m, keys);
                    }
                }
            }),
        );
    }

    fn sync(&self, key: &str, caches: &Caches, _now: jiff::Timestamp) -> Vec<Action> {
        let Some((api_version, kind, obj)) = parse_gc_key(key) else {
            return Vec::new();
        };
        let view = CacheView(caches.metadata());
        let Some((res, store)) = view.0.by_kind(api_version, kind) else {
            return Vec::new();
        };
        let (ns, name) = split_key(obj);
        let Some(object) = store.get_meta(ns, name) else {
            return Vec::new();
        };
        let item = Node {
            resource: res.clone(),
            object,
        };
        let actions = reconcile(&item, &view);
        let m = &item.object.metadata;
        let absent: Vec<Lookup> = if is_deleting(m) {
            Vec::new()
        } else {
            m.owner_references
                .iter()
                .flatten()
                .filter(|r| view.owner_state(m.namespace.as_deref(), r) == OwnerState::Absent)
                .filter_map(|r| {
                    let (res, _) = view.0.by_kind(&r.api_version, &r.kind)?;
                    Some(Lookup {
                        resource: res.clone(),
                        namespace: if res.namespaced {
                            m.namespace.clone()
                        } else {
                            None
                        },
                        name: Some(r.name.clone()),
                        uid: Some(r.uid.clone()),
                    })
                })
                .collect()
        };
        let acts = actions
            .iter()
            .any(|a| matches!(a, Action::Delete { .. } | Action::Patch { .. }));
        if absent.is_empty() || !acts {
            actions
        } else {
            vec![Action::Guarded {
                absent,
                then: actions,
            }]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Graph {
        owners: HashMap<String, OwnerState>,
        deps: HashMap<String, Vec<Node>>,
    }
    impl GcView for Graph {
        fn owner_state(&self, _ns: Option<&str>, r: &OwnerReference) -> OwnerState {
            self.owners
                .get(&r.uid)
                .cloned()
                .unwrap_or(OwnerState::Absent)
        }
        fn dependents(&self, uid: &str) -> Vec<Node> {
            self.deps.get(uid).cloned().unwrap_or_default()
        }
    }

    fn obj(name: &str, owners: &[(&str, bool)], finalizers: &[&str], deleting: bool) -> Node {
        let mut o = DynamicObject::new("v1", "Pod", name);
        o.metadata.namespace = Some("default".into());
        o.metadata.uid = Some(format!("uid-{name}"));
        o.metadata.owner_references = (!owners.is_empty()).then(|| {
            owners
                .iter()
                .map(|(u, block)| OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: u.to_string(),
                    uid: format!("uid-{u}"),
                    controller: Some(true),
                    block_owner_deletion: Some(*block),
                })
                .collect()
        });
        o.metadata.finalizers =
            (!finalizers.is_empty()).then(|| finalizers.iter().map(|s| s.to_string()).collect());
        if deleting {
            o.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
            );
        }
        Node {
            resource: ApiResource::of::<k8s_openapi::api::core::v1::Pod>(),
            object: Arc::new(o),
        }
    }

    fn kinds(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Delete {
                    name, propagation, ..
                } => format!("delete {name} {propagation:?}"),
                Action::Patch {
                    name,
                    patch: Patch::Json(_),
                    ..
                } => format!("patch-refs {name}"),
                Action::Patch {
                    name,
                    patch: Patch::Merge(b),
                    ..
                } => format!("finalizers {name} {}", b["metadata"]["finalizers"]),
                Action::Requeue(_) => "requeue".into(),
                Action::Event { reason, .. } => format!("event {reason}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn background_deletes_dependents_of_absent_owners_only() {
        let g = Graph::default();
        let dangling = obj("p1", &[("rs", true)], &[], false);
        assert_eq!(
            kinds(&reconcile(&dangling, &g)),
            ["delete p1 Some(Background)"]
        );
        let mut g = Graph::default();
        g.owners.insert("uid-rs".into(), OwnerState::Present);
        assert!(reconcile(&dangling, &g).is_empty());
        // Two owners, one gone: only the reference is removed.
        let two = obj("p2", &[("rs", true), ("gone", false)], &[], false);
        assert_eq!(kinds(&reconcile(&two, &g)), ["patch-refs p2"]);
    }

    #[test]
    fn orphan_strips_references_then_drops_finalizer() {
        let owner = obj("rs", &[], &[ORPHAN], true);
        let mut g = Graph::default();
        g.deps.insert(
            "uid-rs".into(),
            vec![obj("p1", &[("rs", true)], &[], false)],
        );
        assert_eq!(kinds(&reconcile(&owner, &g)), ["patch-refs p1", "requeue"]);
        g.deps.clear();
        assert_eq!(kinds(&reconcile(&owner, &g)), ["finalizers rs []"]);
    }

    #[test]
    fn foreground_waits_for_blocking_dependents() {
        let owner = obj("rs", &[], &[FOREGROUND], true);
        let mut g = Graph::default();
        g.deps.insert(
            "uid-rs".into(),
            vec![
                obj("blocking", &[("rs", true)], &[], false),
                obj("free", &[("rs", false)], &[], false),
            ],
        );
        assert_eq!(
            kinds(&reconcile(&owner, &g)),
            [
                "delete blocking Some(Background)",
                "delete free Some(Background)",
                "requeue"
            ]
        );
        g.deps.insert(
            "uid-rs".into(),
            vec![obj("free", &[("rs", false)], &[], true)],
        );
        assert_eq!(kinds(&reconcile(&owner, &g)), ["finalizers rs []"]);
        // A dependent of a foreground-deleted owner that has dependents is deleted in foreground.
        let mut g = Graph::default();
        g.owners
            .insert("uid-d".into(), OwnerState::WaitingForDependents);
        g.deps.insert(
            "uid-mid".into(),
            vec![obj("leaf", &[("mid", true)], &[], false)],
        );
        let mid = obj("mid", &[("d", true)], &[], false);
        assert_eq!(kinds(&reconcile(&mid, &g)), ["delete mid Some(Foreground)"]);
    }

    #[test]
    fn invalid_namespace_reference_is_dangling_with_event() {
        let mut g = Graph::default();
        g.owners
            .insert("uid-rs".into(), OwnerState::InvalidNamespace);
        let p = obj("p", &[("rs", false)], &[], false);
        assert_eq!(
            kinds(&reconcile(&p, &g)),
            [
                "event OwnerRefInvalidNamespace",
                "delete p Some(Background)"
            ]
        );
    }
}
