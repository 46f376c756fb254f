//! PUT (main resource, `status`, namespace `finalize`) and the guaranteed-update loop every
//! read-modify-write (patch, graceful delete) goes through.

use super::create::Written;
use super::meta::{has_status, spec_changed, tracks_generation};
use super::{storage_error, Resource, RestResult};
use crate::fieldmanager::Writer;
use crate::server::ApiServer;
use crate::storage::{StorageError, Versioned, WriteOp};
use orch_types::client::PostParams;
use orch_types::{ApiError, DynamicObject};
use std::sync::Arc;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: status changes are ignored when the kind has a status subresource.
    Main,
    /// `/status`: only status changes are kept.
    Status,
    /// Namespace `/finalize`: only `spec.finalizers` changes are kept.
    Finalize,
    /// Pod `/ephemeralcontainers`: only `spec.ephemeralContainers` changes are kept, and they
    /// are validated as upstream's `podEphemeralContainersStrategy` does
    /// (`pkg/registry/core/pod/strategy.go`, served by `EphemeralContainersREST` in
    /// `pkg/registry/core/pod/storage/storage.go`): containers may only be added.
    EphemeralContainers,
    /// CertificateSigningRequest `/approval`: only the conditions are kept
    /// ([`crate::certificates`]).
    Approval,
}

impl Part {
    /// From a subresource name.
    pub fn from_subresource(s: Option<&str>) -> Option<Self> {
        match s {
            None | Some("") => Some(Self::Main),
            Some("status") => Some(Self::Status),
            Some("finalize") => Some(Self::Finalize),
            Some("ephemeralcontainers") => Some(Self::EphemeralContainers),
            Some("approval") => Some(Self::Approval),
            _ => None,
        }
    }

    /// The subresource name (`None` for the main resource).
    pub fn subresource(self) -> Option<&'static str> {
        match self {
            Self::Main => None,
            Self::Status => Some("status"),
            Self::Finalize => Some("finalize"),
            Self::EphemeralContainers => Some("ephemeralcontainers"),
            Self::Approval => Some("approval"),
        }
    }
}

/// Most retries of a guaranteed update whose caller gave no resourceVersion.
const MAX_RETRIES: usize = 16;

/// What an update did.
#[derive(Debug, Clone)]
pub enum UpdateOutcome {
    /// Stored (or unchanged for a no-op).
    Updated(Written),
    /// A server-side apply created the object (answered with 201, as upstream's
    /// `PatchResource` does when the patch created it).
    Created(Written),
    /// The update removed the last finalizer of an object being deleted: it is gone.
    Deleted(Written),
}

impl UpdateOutcome {
    /// The resulting object.
    pub fn written(&self) -> &Written {
        match self {
            Self::Updated(w) | Self::Created(w) | Self::Deleted(w) => w,
        }
    }
}

fn conflict(info: Resource, name: &str) -> ApiError {
    storage_error(
        info,
        name,
        StorageError::Conflict {
            key: String::new(),
            expected: 0,
            actual: 0,
        },
    )
}

/// Copies what a write to `part` may not change from `old` into `new`.
fn restrict_to_part(
    info: Resource,
    part: Part,
    old: &DynamicObject,
    new: DynamicObject,
) -> DynamicObject {
    match part {
        Part::Main => {
            let mut new = new;
            if has_status(info) {
                match old.data.get("status") {
                    Some(s) => new.data.insert("status".into(), s.clone()),
                    None => new.data.remove("status"),
                };
            }
            if info.kind == "Namespace" {
                let old_fins = old
                    .data
                    .get("spec")
                    .and_then(|s| s.get("finalizers"))
                    .cloned();
                let spec = new
                    .data
                    .entry("spec")
                    .or_insert_with(|| serde_json::json!({}));
                if let Some(spec) = spec.as_object_mut() {
                    match old_fins {
                        Some(f) => spec.insert("finalizers".into(), f),
                        None => spec.remove("finalizers"),
                    };
                }
            }
            new
        }
        Part::Status | Part::Approval => {
            // The old object with the new status, in the old field order; the new status is
            // moved, only the rest of the old object is copied.
            let mut new = new;
            let mut status = new.data.shift_remove("status");
            let mut data = serde_json::Map::new();
            for (k, v) in &old.data {
                if k == "status" {
                    if let Some(s) = status.take() {
                        data.insert(k.clone(), s);
                    }
                } else {
                    data.insert(k.clone(), v.clone());
                }
            }
            if let Some(s) = status {
                data.insert("status".into(), s);
            }
            let mut out = DynamicObject {
                types: old.types.clone(),
                metadata: old.metadata.clone(),
                data,
            };
            out.metadata.resource_version = new.metadata.resource_version;
            out
        }
        Part::Finalize => {
            let mut out = old.clone();
            let fins = new
                .data
                .get("spec")
                .and_then(|s| s.get("finalizers"))
                .cloned();
            let spec = out
                .data
                .entry("spec")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(spec) = spec.as_object_mut() {
                match fins {
                    Some(f) => spec.insert("finalizers".into(), f),
                    None => spec.remove("finalizers"),
                };
            }
            out.metadata.resource_version = new.metadata.resource_version;
            out
        }
        Part::EphemeralContainers => {
            // Upstream `dropNonEphemeralContainerUpdates`: the stored pod (metadata too, as
            // `ResetObjectMetaForStatus`) with the new `spec.ephemeralContainers`.
            let mut out = old.clone();
            let list = new
                .data
                .get("spec")
                .and_then(|s| s.get("ephemeralContainers"))
                .cloned();
            if let Some(spec) = out.data.get_mut("spec").and_then(|s| s.as_object_mut()) {
                match list {
                    Some(l) => spec.insert("ephemeralContainers".into(), l),
                    None => spec.remove("ephemeralContainers"),
                };
            }
            out.metadata.resource_version = new.metadata.resource_version;
            out
        }
    }
}

/// What a `status` write reads of its body: TypeMeta, metadata and `status` (everything else
/// is put back from the stored object), without copying the rest.
pub(crate) fn status_body(o: &DynamicObject) -> DynamicObject {
    DynamicObject {
        types: o.types.clone(),
        metadata: o.metadata.clone(),
        data: o
            .data
            .get("status")
            .map(|s| ("status".to_string(), s.clone()))
            .into_iter()
            .collect(),
    }
}

/// Whether an object marked for deletion has no finalizers left (metadata, and for namespaces
/// `spec.finalizers`) and no grace period running: upstream `ShouldDeleteDuringUpdate`.
pub(crate) fn finished_deleting(o: &DynamicObject) -> bool {
    o.metadata.deletion_timestamp.is_some()
        && o.metadata.finalizers.as_ref().is_none_or(Vec::is_empty)
        && o.metadata.deletion_grace_period_seconds.unwrap_or(0) == 0
        && o.data
            .get("spec")
            .and_then(|s| s.get("finalizers"))
            .and_then(|f| f.as_array())
            .is_none_or(Vec::is_empty)
}

impl ApiServer {
    /// The guaranteed-update loop: reads the current object, lets `mutate` compute the desired
    /// one, applies server bookkeeping and admission, and writes with a compare on the revision
    /// read; retries on a concurrent write unless `mutate` pinned a resourceVersion.
    pub(crate) async fn guaranteed_update(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        part: Part,
        dry_run: bool,
        mutate: impl FnMut(&DynamicObject) -> RestResult<DynamicObject>,
    ) -> RestResult<UpdateOutcome> {
        self.guaranteed_update_as(info, ns, name, part, dry_run, None, mutate)
            .await
    }

    /// [`Self::guaranteed_update`] recording the write in `managedFields` as `writer`'s
    /// Update ([`crate::fieldmanager`]; `None`: the caller records ownership, or none changes).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn guaranteed_update_as(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        part: Part,
        dry_run: bool,
        writer: Option<&Writer<'_>>,
        mut mutate: impl FnMut(&DynamicObject) -> RestResult<DynamicObject>,
    ) -> RestResult<UpdateOutcome> {
        let key = self.key(info, ns, name);
        for _ in 0..MAX_RETRIES {
            let cur: Versioned = self
                .storage
                .get(&key)
                .await
                .map_err(|e| storage_error(info, name, e))?
                .ok_or_else(|| ApiError::not_found(&super::qualified(info), name))?;
            let old = &*cur.object;
            let mut new = mutate(old)?;
            self.check_type_meta(info, &mut new)?;
            if new.name() != name && !new.name().is_empty() {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    new.name()
                )));
            }
            let pinned = new
                .metadata
                .resource_version
                .as_deref()
                .filter(|rv| !rv.is_empty())
                .map(str::to_string);
            if let Some(rv) = &pinned {
                if rv != old.resource_version().unwrap_or_default() {
                    return Err(conflict(info, name));
                }
            }
            let mut new = restrict_to_part(info, part, old, new);
            if crate::certificates::is_csr(info) {
                let now = super::meta::time(self.config.clock.now());
                crate::certificates::prepare_update(part, old, &mut new, &now.0.to_string());
            }
            // BeforeUpdate: metadata the client cannot change.
            let m = &mut new.metadata;
            m.name = old.metadata.name.clone();
            m.namespace = old.metadata.namespace.clone();
            m.uid = old.metadata.uid.clone();
            m.creation_timestamp = old.metadata.creation_timestamp.clone();
            m.deletion_timestamp = old.metadata.deletion_timestamp.clone();
            m.deletion_grace_period_seconds = old.metadata.deletion_grace_period_seconds;
            m.generation = old.metadata.generation;
            m.resource_version = old.metadata.resource_version.clone();
            if part == Part::Main && crate::service_alloc::is_service(info) {
                crate::service_alloc::prepare_update(&mut new, old);
            }
            let warnings = self
                .admit(info, &mut new, Some(old), part, dry_run)
                .await?
                .warnings;
            if tracks_generation(info) && spec_changed(old, &new) {
                new.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
            }
            if let Some(w) = writer {
                let now = super::meta::time(self.config.clock.now()).0;
                let custom = self.custom(info);
                let custom = custom.as_deref();
                crate::fieldmanager::update_object(info, custom, Some(old), &mut new, w, now);
            }
            if new == *old {
                // A no-op update is not written and keeps the resourceVersion.
                return Ok(UpdateOutcome::Updated(Written {
                    object: cur.object.clone(),
                    warnings,
                }));
            }
            if part == Part::Main {
                self.admit_usage(info, &mut new, Some(old), dry_run).await?;
            }
            let allocation = if part == Part::Main {
                self.allocate_service(info, &mut new, Some(old), dry_run)
                    .await?
            } else {
                Default::default()
            };
            if dry_run {
                return Ok(UpdateOutcome::Updated(Written {
                    object: Arc::new(new),
                    warnings,
                }));
            }
            let expected = Some(cur.mod_revision);
            let result = if finished_deleting(&new) {
                let deleted = self.storage.delete(&key, expected).await;
                if let Ok(v) = &deleted {
                    self.release_service(info, &v.object).await;
                }
                deleted.map(|v| {
                    UpdateOutcome::Deleted(Written {
                        object: v.object,
                        warnings,
                    })
                })
            } else {
                let update = WriteOp::Update {
                    key: key.clone(),
                    object: new,
                    expected,
                    ttl: self.ttl(info),
                };
                self.storage.write(update).await.map(|v| {
                    UpdateOutcome::Updated(Written {
                        object: v.object,
                        warnings,
                    })
                })
            };
            match &result {
                Ok(_) => allocation.commit(self).await,
                Err(_) => allocation.revert(self).await,
            }
            match result {
                Ok(o) => return Ok(o),
                Err(StorageError::Conflict { .. }) if pinned.is_none() => continue,
                Err(StorageError::NotFound { .. }) if pinned.is_none() => continue,
                Err(e) => return Err(storage_error(info, name, e)),
            }
        }
        Err(conflict(info, name))
    }

    /// Replaces an object (`PUT`), its status (`part == Status`) or a namespace's finalizers.
    pub async fn update_object(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        part: Part,
        obj: DynamicObject,
        p: &PostParams,
    ) -> RestResult<UpdateOutcome> {
        let ns = self.object_namespace(info, ns)?;
        if let (Some(url), Some(body)) = (ns, obj.metadata.namespace.as_deref()) {
            if !body.is_empty() && url != body {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        if obj.name() != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                obj.name()
            )));
        }
        crate::fieldmanager::validate_manager(p.field_manager.as_deref(), "UpdateOptions")?;
        let mut warnings = self.check_fields(info, &obj, p.field_validation.as_deref())?;
        let mut obj = obj;
        if matches!(part, Part::Status | Part::Approval) {
            // Only the status (and metadata) of the body is read: drop the rest now rather
            // than copy it on every try.
            obj.data.retain(|k, _| k == "status");
        }
        let writer = Writer {
            manager: p.field_manager.as_deref(),
            subresource: part.subresource(),
        };
        let mut out = self
            .guaranteed_update_as(info, ns, name, part, p.dry_run, Some(&writer), |_| {
                Ok(obj.clone())
            })
            .await?;
        match &mut out {
            UpdateOutcome::Updated(w) | UpdateOutcome::Created(w) | UpdateOutcome::Deleted(w) => {
                warnings.append(&mut w.warnings);
                w.warnings = warnings;
            }
        }
        Ok(out)
    }
}
