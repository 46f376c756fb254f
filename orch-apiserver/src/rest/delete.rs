//! DELETE and deletecollection: preconditions, graceful deletion, finalizers, propagation.
//!
//! Upstream: `staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go` (Delete,
//! `updateForGracefulDeletionAndFinalizers`), `pkg/registry/core/pod/strategy.go`
//! (CheckGracefulDelete) and `pkg/registry/core/namespace/storage/storage.go` (Delete).

use super::meta::{phase, time, tracks_generation};
use super::update::{Part, UpdateOutcome};
use super::{qualified, storage_error, Resource, RestResult};
use crate::server::ApiServer;
use crate::storage::StorageError;
use orch_types::client::{DeleteParams, ListParams, PropagationPolicy};
use orch_types::{ApiError, DynamicObject};
use std::sync::Arc;

/// Finalizer the garbage collector removes after orphaning dependents.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// Finalizer the garbage collector removes after deleting blocking dependents.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Default pod termination grace period (upstream `DefaultTerminationGracePeriodSeconds`).
const DEFAULT_POD_GRACE: i64 = 30;

/// What a delete did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Removed from storage; the last state.
    Gone(Arc<DynamicObject>),
    /// Marked with a deletionTimestamp (finalizers or a grace period), still present.
    Pending(Arc<DynamicObject>),
}

impl Deleted {
    /// The object either way.
    pub fn object(&self) -> &Arc<DynamicObject> {
        match self {
            Self::Gone(o) | Self::Pending(o) => o,
        }
    }
}

/// The grace period a pod deletion gets (0 = immediate). Unscheduled and terminated pods go at
/// once (upstream pod `CheckGracefulDelete`).
fn pod_grace(obj: &DynamicObject, requested: Option<i64>) -> i64 {
    let scheduled = obj
        .data
        .get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(|n| n.as_str())
        .is_some_and(|n| !n.is_empty());
    if !scheduled || matches!(phase(obj), Some("Succeeded" | "Failed")) {
        return 0;
    }
    requested
        .or_else(|| {
            obj.data
                .get("spec")
                .and_then(|s| s.get("terminationGracePeriodSeconds"))
                .and_then(serde_json::Value::as_i64)
        })
        .unwrap_or(DEFAULT_POD_GRACE)
        .max(0)
}

impl ApiServer {
    /// Deletes an object (`DELETE`).
    pub async fn delete_object(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        p: &DeleteParams,
    ) -> RestResult<Deleted> {
        let ns = self.object_namespace(info, ns)?;
        let key = self.key(info, ns, name);
        let res = qualified(info);
        if info.group.is_empty()
            && info.kind == "Namespace"
            && crate::server::IMMORTAL_NAMESPACES.contains(&name)
        {
            return Err(ApiError::forbidden(
                &res,
                name,
                "this namespace may not be deleted",
            ));
        }
        for _ in 0..16 {
            let cur = self
                .storage
                .get(&key)
                .await
                .map_err(|e| storage_error(info, name, e))?
                .ok_or_else(|| ApiError::not_found(&res, name))?;
            let obj = &*cur.object;
            if let Some(pre) = &p.preconditions {
                if let Some(uid) = &pre.uid {
                    if obj.metadata.uid.as_ref() != Some(uid) {
                        return Err(ApiError::conflict(
                            &res,
                            name,
                            &format!(
                                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                                obj.metadata.uid.as_deref().unwrap_or("")
                            ),
                        ));
                    }
                }
                if let Some(rv) = &pre.resource_version {
                    if obj.resource_version() != Some(rv.as_str()) {
                        return Err(ApiError::conflict(
                            &res,
                            name,
                            &format!(
                                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                                obj.resource_version().unwrap_or("")
                            ),
                        ));
                    }
                }
            }
            self.admit_delete_by_webhooks(info, obj, p.dry_run).await?;
            let grace = if info.kind == "Pod" && info.group.is_empty() {
                pod_grace(obj, p.grace_period_seconds)
            } else {
                0
            };
            let mut finalizers = obj.metadata.finalizers.clone().unwrap_or_default();
            match p.propagation_policy {
                Some(PropagationPolicy::Orphan) => add(&mut finalizers, ORPHAN_FINALIZER),
                Some(PropagationPolicy::Foreground) => add(&mut finalizers, FOREGROUND_FINALIZER),
                _ => {}
            }
            let ns_finalizers = info.kind == "Namespace"
                && obj
                    .data
                    .get("spec")
                    .and_then(|s| s.get("finalizers"))
                    .and_then(|f| f.as_array())
                    .is_some_and(|f| !f.is_empty());
            let marked = obj.metadata.deletion_timestamp.is_some();
            let crd =
                info.group == "apiextensions.k8s.io" && info.kind == "CustomResourceDefinition";
            if crd && !marked {
                // Its objects go first (`crate::crd::controller`).
                add(&mut finalizers, crate::crd::CLEANUP_FINALIZER);
            }
            let must_wait = !finalizers.is_empty() || ns_finalizers || grace > 0;
            if !must_wait {
                if p.dry_run {
                    return Ok(Deleted::Gone(cur.object.clone()));
                }
                match self.storage.delete(&key, Some(cur.mod_revision)).await {
                    Ok(v) => {
                        self.release_service(info, &v.object).await;
                        return Ok(Deleted::Gone(v.object));
                    }
                    Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => continue,
                    Err(e) => return Err(storage_error(info, name, e)),
                }
            }
            // Graceful: mark (or shorten the grace period of) the object.
            let now = self.config.clock.now();
            let mut new = obj.clone();
            let m = &mut new.metadata;
            if !marked || grace < m.deletion_grace_period_seconds.unwrap_or(i64::MAX) {
                let at = now
                    .checked_add(jiff::SignedDuration::from_secs(grace))
                    .unwrap_or(now);
                m.deletion_timestamp = Some(time(at));
                m.deletion_grace_period_seconds = Some(grace);
            }
            if !finalizers.is_empty() {
                m.finalizers = Some(finalizers);
            }
            if !marked && tracks_generation(info) {
                m.generation = Some(m.generation.unwrap_or(0) + 1);
            }
            if crd && !marked {
                crate::crd::controller::mark_deleted(&mut new, &time(now));
            }
            if info.kind == "Namespace" {
                if let Some(status) = new.data.get_mut("status").and_then(|s| s.as_object_mut()) {
                    status.insert("phase".into(), "Terminating".into());
                } else {
                    new.data
                        .insert("status".into(), serde_json::json!({"phase": "Terminating"}));
                }
            }
            if new == *obj {
                return Ok(Deleted::Pending(cur.object.clone()));
            }
            if p.dry_run {
                return Ok(Deleted::Pending(Arc::new(new)));
            }
            match self.storage.update(&key, new, Some(cur.mod_revision)).await {
                Ok(v) => return Ok(Deleted::Pending(v.object)),
                Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => continue,
                Err(e) => return Err(storage_error(info, name, e)),
            }
        }
        Err(ApiError::conflict(&res, name, "too many concurrent writes"))
    }

    /// Deletes every object of a collection that matches the selectors (`deletecollection`).
    pub async fn delete_collection(
        &self,
        info: Resource,
        ns: Option<&str>,
        lp: &ListParams,
        p: &DeleteParams,
    ) -> RestResult<Vec<Arc<DynamicObject>>> {
        let list = self.list_objects(info, ns, lp).await?;
        let mut out = Vec::with_capacity(list.items.len());
        for item in list.items {
            match self
                .delete_object(info, item.namespace(), item.name(), p)
                .await
            {
                Ok(d) => out.push(d.object().clone()),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Removes `finalizer` from an object (used by tests and the garbage collector path).
    pub async fn remove_finalizer(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        finalizer: &str,
    ) -> RestResult<UpdateOutcome> {
        let ns = self.object_namespace(info, ns)?;
        self.guaranteed_update(info, ns, name, Part::Main, false, |o| {
            let mut n = o.clone();
            if let Some(f) = &mut n.metadata.finalizers {
                f.retain(|x| x != finalizer);
            }
            n.metadata.resource_version = None;
            Ok(n)
        })
        .await
    }
}

fn add(list: &mut Vec<String>, f: &str) {
    if !list.iter().any(|x| x == f) {
        list.push(f.to_string());
    }
}
