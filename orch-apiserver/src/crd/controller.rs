//! The CRD controllers each API server runs on its own CustomResourceDefinitions, after
//! upstream's apiextensions-apiserver (`pkg/controller/status/naming_controller.go`,
//! `pkg/controller/establish/establishing_controller.go`,
//! `pkg/controller/finalizer/crd_finalizer.go`):
//!
//! - [`run`] follows the CRDs in the watch cache: on every change it rebuilds the served
//!   [`Catalog`] and brings each CRD's status to [`desired_status`];
//! - naming: `status.acceptedNames` takes each requested name not used by another CRD of the
//!   group; a name in use gives `NamesAccepted=False` with a `…Conflict` reason and
//!   `"NAME" is already in use`;
//! - establishing: `Established=True` once all names are accepted (never set back to false);
//!   upstream's second controller for this only adds a delay for HA masters;
//! - `storedVersions` gains the storage version (upstream's CRD strategy does it on the write;
//!   here it follows the write by one watch round trip);
//! - finalizing: a CRD marked for deletion carries [`CLEANUP_FINALIZER`] (added by the
//!   delete, [`mark_deleted`]); [`finalize`] deletes every object of the resource through
//!   the REST layer (so their own finalizers run), waits until none is left, then removes the
//!   finalizer, with the `Terminating` condition saying where it is.
//!
//! While a CRD is terminating its objects stay readable and deletable, but creates are refused
//! (`rest::create`).
//!
//! Several API servers on one storage each run these; they compute the same status, so the
//! loser of a write race finds nothing left to change.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionCondition, CustomResourceDefinitionNames,
    CustomResourceDefinitionStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use orch_types::client::{DeleteParams, ListParams};
use orch_types::DynamicObject;
use parking_lot::Mutex;

use super::{crd_info, Catalog, CLEANUP_FINALIZER};
use crate::rest::update::Part;
use crate::server::ApiServer;
use crate::storage::key;

/// How often a finalizing CRD checks whether its objects are gone.
const FINALIZE_POLL: Duration = Duration::from_millis(200);

fn prefix() -> String {
    key::resource_prefix("apiextensions.k8s.io", "customresourcedefinitions")
}

/// The CRDs in the watch cache.
fn cached_crds(api: &ApiServer) -> Vec<Arc<CustomResourceDefinition>> {
    let p = prefix();
    api.cache
        .list(&p, &p)
        .items
        .iter()
        .filter_map(|e| match e.decode_as::<CustomResourceDefinition>() {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                tracing::warn!(error = %e, "skipping a CustomResourceDefinition that does not decode");
                None
            }
        })
        .collect()
}

/// Rebuilds the served catalog from the cached CRDs; returns them.
pub(crate) fn rebuild(api: &ApiServer) -> Vec<Arc<CustomResourceDefinition>> {
    let crds = cached_crds(api);
    let previous = api.custom_resources.catalog();
    api.custom_resources
        .replace(Catalog::build(&crds, Some(&previous)));
    crds
}

/// CRDs whose finalization runs in this process (one task each).
#[derive(Debug, Default)]
pub(crate) struct Finalizing(Mutex<HashSet<String>>);

/// Follows the CRDs in the watch cache until the server is dropped.
pub(crate) async fn run(api: Weak<ApiServer>) {
    let mut live = {
        let Some(a) = api.upgrade() else { return };
        match a.cache.watch(&prefix(), None).await {
            Ok(w) => w.live,
            Err(e) => {
                tracing::error!(error = %e, "cannot follow CustomResourceDefinitions");
                return;
            }
        }
    };
    loop {
        {
            let Some(a) = api.upgrade() else { return };
            let crds = rebuild(&a);
            reconcile(&a, &crds).await;
        }
        match live.recv().await {
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
        // Take whatever else is already queued: one rebuild covers it.
        while live.try_recv().is_ok() {}
    }
}

/// Writes each CRD's [`desired_status`] where it differs and starts finalizers.
async fn reconcile(api: &Arc<ApiServer>, crds: &[Arc<CustomResourceDefinition>]) {
    let now = crate::rest::meta::time(api.config.clock.now());
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let want = desired_status(crd, crds, &now);
        if crd.status.as_ref() != Some(&want) {
            if let Err(e) = write_status(api, crd, want).await {
                if !e.is_conflict() && !e.is_not_found() {
                    tracing::warn!(crd = %name, error = %e, "updating the CRD status failed");
                }
            }
        }
        let finalizing = crd.metadata.deletion_timestamp.is_some()
            && crd
                .metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == CLEANUP_FINALIZER);
        if finalizing && api.crd_finalizing.0.lock().insert(name.clone()) {
            tokio::spawn(finalize(Arc::downgrade(api), name));
        }
    }
}

/// Writes `status` to the CRD as read (a conflict means someone wrote since: the next event
/// brings it back here).
async fn write_status(
    api: &ApiServer,
    crd: &CustomResourceDefinition,
    status: CustomResourceDefinitionStatus,
) -> Result<(), orch_types::ApiError> {
    let mut updated = crd.clone();
    updated.status = Some(status);
    let obj = DynamicObject::from_typed(&updated)
        .map_err(|e| orch_types::ApiError::internal(e.to_string()))?;
    api.update_object(
        crd_info(),
        None,
        crd.metadata.name.as_deref().unwrap_or_default(),
        Part::Status,
        obj,
        &Default::default(),
    )
    .await?;
    Ok(())
}

/// Sets condition `c` in `conditions` the way upstream's `SetCRDCondition` does: the
/// transition time changes only when the status does.
fn set_condition(
    conditions: &mut Vec<CustomResourceDefinitionCondition>,
    mut c: CustomResourceDefinitionCondition,
) {
    match conditions.iter_mut().find(|x| x.type_ == c.type_) {
        Some(old) => {
            if old.status == c.status {
                c.last_transition_time = old.last_transition_time.clone();
            }
            *old = c;
        }
        None => conditions.push(c),
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &Time,
) -> CustomResourceDefinitionCondition {
    CustomResourceDefinitionCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(now.clone()),
    }
}

/// The status `crd` should have among `all` (itself included): accepted names and the
/// `NamesAccepted` / `Established` conditions as upstream's naming controller computes them
/// (`calculateNamesAndConditions`), and the storage version among `storedVersions`.
pub fn desired_status(
    crd: &CustomResourceDefinition,
    all: &[Arc<CustomResourceDefinition>],
    now: &Time,
) -> CustomResourceDefinitionStatus {
    let mut status = crd.status.clone().unwrap_or_default();
    let accepted = status.accepted_names.clone().unwrap_or_default();
    let requested = &crd.spec.names;
    // Names (plural, singular, short names) and kinds in use in the group.
    let mut resources: BTreeSet<String> = BTreeSet::new();
    let mut kinds: BTreeSet<String> = BTreeSet::new();
    for other in all.iter().filter(|c| c.spec.group == crd.spec.group) {
        let Some(n) = other
            .status
            .as_ref()
            .and_then(|s| s.accepted_names.as_ref())
        else {
            continue;
        };
        resources.insert(n.plural.clone());
        resources.extend(n.singular.clone());
        resources.extend(n.short_names.iter().flatten().cloned());
        kinds.insert(n.kind.clone());
        kinds.extend(n.list_kind.clone());
    }
    let fresh = |requested: &str, accepted: &str, used: &BTreeSet<String>| {
        if requested == accepted || !used.contains(requested) {
            Ok(())
        } else {
            Err(format!("\"{requested}\" is already in use"))
        }
    };
    let mut names = accepted.clone();
    let mut conflict: Option<(&str, String)> = None;
    match fresh(&requested.plural, &accepted.plural, &resources) {
        Ok(()) => names.plural = requested.plural.clone(),
        Err(m) => conflict = Some(("PluralConflict", m)),
    }
    let singular = requested.singular.clone().unwrap_or_default();
    match fresh(
        &singular,
        accepted.singular.as_deref().unwrap_or_default(),
        &resources,
    ) {
        Ok(()) => names.singular = requested.singular.clone(),
        Err(m) => conflict = Some(("SingularConflict", m)),
    }
    if requested.short_names != accepted.short_names {
        let mine: BTreeSet<&String> = accepted.short_names.iter().flatten().collect();
        let errs: Vec<String> = requested
            .short_names
            .iter()
            .flatten()
            .filter(|s| !mine.contains(s))
            .filter_map(|s| fresh(s, "", &resources).err())
            .collect();
        if errs.is_empty() {
            names.short_names = requested.short_names.clone();
        } else {
            conflict = Some(("ShortNamesConflict", errs.join(", ")));
        }
    }
    match fresh(&requested.kind, &accepted.kind, &kinds) {
        Ok(()) => names.kind = requested.kind.clone(),
        Err(m) => conflict = Some(("KindConflict", m)),
    }
    let list_kind = requested.list_kind.clone().unwrap_or_default();
    match fresh(
        &list_kind,
        accepted.list_kind.as_deref().unwrap_or_default(),
        &kinds,
    ) {
        Ok(()) => names.list_kind = requested.list_kind.clone(),
        Err(m) => conflict = Some(("ListKindConflict", m)),
    }
    // Categories are not names anybody can conflict with.
    names.categories = requested.categories.clone();
    let names_accepted = match &conflict {
        None => condition(
            "NamesAccepted",
            "True",
            "NoConflicts",
            "no conflicts found",
            now,
        ),
        Some((reason, message)) => condition("NamesAccepted", "False", reason, message, now),
    };
    let mut conditions = status.conditions.take().unwrap_or_default();
    let established_now = conditions
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    let established = if established_now {
        None
    } else if conflict.is_none() {
        Some(condition(
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
            now,
        ))
    } else {
        Some(condition(
            "Established",
            "False",
            "NotAccepted",
            "not all names are accepted",
            now,
        ))
    };
    set_condition(&mut conditions, names_accepted);
    if let Some(e) = established {
        set_condition(&mut conditions, e);
    }
    status.conditions = Some(conditions);
    status.accepted_names = Some(CustomResourceDefinitionNames { ..names });
    if let Some(storage) = crd.spec.versions.iter().find(|v| v.storage) {
        let stored = status.stored_versions.get_or_insert_with(Vec::new);
        if !stored.contains(&storage.name) {
            stored.push(storage.name.clone());
        }
    }
    status
}

/// What the first DELETE of a CRD does besides marking it and adding [`CLEANUP_FINALIZER`]:
/// the `Terminating` condition (upstream `customresourcedefinition/etcd.go`, `Delete`).
pub(crate) fn mark_deleted(obj: &mut DynamicObject, now: &Time) {
    let Ok(mut crd) = obj.to_typed::<CustomResourceDefinition>() else {
        return;
    };
    let status = crd.status.get_or_insert_with(Default::default);
    set_condition(
        status.conditions.get_or_insert_with(Vec::new),
        condition(
            "Terminating",
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
            now,
        ),
    );
    if let Ok(status) = serde_json::to_value(&crd.status) {
        obj.data.insert("status".into(), status);
    }
}

/// Deletes every object of a CRD being deleted, then removes its finalizer.
async fn finalize(api: Weak<ApiServer>, name: String) {
    let result = finalize_once(&api, &name).await;
    if let Some(a) = api.upgrade() {
        a.crd_finalizing.0.lock().remove(&name);
        if let Err(e) = result {
            tracing::warn!(crd = %name, error = %e, "finalizing the CustomResourceDefinition failed");
        }
    }
}

async fn finalize_once(api: &Weak<ApiServer>, name: &str) -> Result<(), orch_types::ApiError> {
    let terminating = |status: &str, reason: &str, message: &str, api: &ApiServer| {
        let now = crate::rest::meta::time(api.config.clock.now());
        condition("Terminating", status, reason, message, &now)
    };
    {
        let Some(a) = api.upgrade() else {
            return Ok(());
        };
        set_status_condition(
            &a,
            name,
            terminating(
                "True",
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
                &a,
            ),
        )
        .await?;
    }
    loop {
        let Some(a) = api.upgrade() else {
            return Ok(());
        };
        let crd = match a.get_object(crd_info(), None, name).await {
            Ok(c) => c,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let crd: CustomResourceDefinition = crd
            .to_typed()
            .map_err(|e| orch_types::ApiError::internal(e.to_string()))?;
        let Some(storage) = crd.spec.versions.iter().find(|v| v.storage) else {
            break;
        };
        let info = super::intern(&super::Spec::of(&crd, storage));
        let left = a.list_objects(info, None, &ListParams::default()).await?;
        if left.items.is_empty() {
            break;
        }
        let pending = left
            .items
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
            .count();
        if pending > 0 {
            a.delete_collection(info, None, &ListParams::default(), &DeleteParams::default())
                .await?;
        }
        drop(a);
        tokio::time::sleep(FINALIZE_POLL).await;
    }
    let Some(a) = api.upgrade() else {
        return Ok(());
    };
    set_status_condition(
        &a,
        name,
        terminating(
            "False",
            "InstanceDeletionCompleted",
            "removed all instances",
            &a,
        ),
    )
    .await?;
    match a
        .remove_finalizer(crd_info(), None, name, CLEANUP_FINALIZER)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets one condition on a CRD's status (retrying on conflicts).
async fn set_status_condition(
    api: &ApiServer,
    name: &str,
    c: CustomResourceDefinitionCondition,
) -> Result<(), orch_types::ApiError> {
    let result = api
        .guaranteed_update(crd_info(), None, name, Part::Status, false, |o| {
            let mut crd: CustomResourceDefinition = o
                .to_typed()
                .map_err(|e| orch_types::ApiError::internal(e.to_string()))?;
            let status = crd.status.get_or_insert_with(Default::default);
            set_condition(status.conditions.get_or_insert_with(Vec::new), c.clone());
            let mut obj = DynamicObject::from_typed(&crd)
                .map_err(|e| orch_types::ApiError::internal(e.to_string()))?;
            obj.metadata.resource_version = None;
            Ok(obj)
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}
