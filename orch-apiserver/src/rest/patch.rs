//! PATCH: the patch types, one dispatch `match` ([`apply_patch`]), and the patch operation on
//! top of the guaranteed-update loop.
//!
//! To add a patch type: add a [`PatchType`] variant, its content type in
//! [`PatchType::from_content_type`], and an arm in [`apply_patch`].

use super::update::{Part, UpdateOutcome};
use super::{Resource, RestResult};
use crate::server::ApiServer;
use orch_types::client::PatchParams;
use orch_types::status::reason;
use orch_types::{ApiError, DynamicObject};
use serde_json::Value;

/// A patch format, by request `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// From a `Content-Type` header value (parameters ignored); `None`: 415.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }

    /// From the client trait's patch.
    pub fn of(p: &orch_types::client::Patch) -> Self {
        use orch_types::client::Patch;
        match p {
            Patch::Json(_) => Self::Json,
            Patch::Merge(_) => Self::Merge,
            Patch::Strategic(_) => Self::Strategic,
            Patch::Apply(_) => Self::Apply,
        }
    }
}

/// Applies a patch document to the current object's JSON. The one place patch types dispatch.
pub fn apply_patch(
    info: Resource,
    kind: PatchType,
    current: &Value,
    patch: &Value,
) -> RestResult<Value> {
    match kind {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            let mut doc = current.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| {
                ApiError::bad_request(format!("the server rejected our request due to an error in our request: invalid JSON patch: {e}"))
            })?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    reason::INVALID,
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
            Ok(doc)
        }
        // Custom resources have no patch strategies: upstream's CR handler does not accept
        // the type (`apiextensions-apiserver/pkg/apiserver/customresource_handler.go`).
        PatchType::Strategic if !super::meta::builtin(info) => Err(ApiError::new(
            415,
            reason::UNSUPPORTED_MEDIA_TYPE,
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )),
        PatchType::Strategic => {
            let schemas = crate::schema::Schemas::builtin();
            let node = schemas
                .root(info.group, info.version, info.kind)
                .unwrap_or_else(|| crate::schema::SchemaNode::unknown(schemas));
            crate::patch::strategic::strategic_merge(current, patch, node)
                .map_err(|e| ApiError::bad_request(e.to_string()))
        }
        PatchType::Apply => Err(ApiError::new(
            415,
            reason::UNSUPPORTED_MEDIA_TYPE,
            "server-side apply is not supported yet",
        )),
    }
}

impl ApiServer {
    /// Patches an object or its `status`.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch_object(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        part: Part,
        kind: PatchType,
        patch: &Value,
        p: &PatchParams,
    ) -> RestResult<UpdateOutcome> {
        if kind == PatchType::Apply {
            // Server-side apply has its own flow (create if missing, managedFields): crate::apply.
            return self.apply_object(info, ns, name, part, patch, p).await;
        }
        crate::fieldmanager::validate_manager(p.field_manager.as_deref(), "PatchOptions")?;
        let ns = self.object_namespace(info, ns)?;
        let mut warnings = Vec::new();
        let writer = crate::fieldmanager::Writer {
            manager: p.field_manager.as_deref(),
            subresource: part.subresource(),
        };
        let out = self
            .guaranteed_update_as(info, ns, name, part, p.dry_run, Some(&writer), |cur| {
                let cur_json = serde_json::to_value(cur)
                    .map_err(|_| ApiError::internal("cannot encode object"))?;
                let patched = apply_patch(info, kind, &cur_json, patch)?;
                let mut obj: DynamicObject = DynamicObject::from_value(patched).map_err(|e| {
                    ApiError::new(
                        422,
                        reason::INVALID,
                        format!(
                            "the patched object is not a valid {}: {}",
                            info.kind, e.source
                        ),
                    )
                })?;
                warnings = self.check_fields(info, &obj, p.field_validation.as_deref())?;
                // A patch that does not set resourceVersion is not a precondition: retry on conflict.
                if obj.metadata.resource_version == cur.metadata.resource_version {
                    obj.metadata.resource_version = None;
                }
                Ok(obj)
            })
            .await?;
        Ok(match out {
            UpdateOutcome::Updated(mut w) => {
                w.warnings.extend(warnings);
                UpdateOutcome::Updated(w)
            }
            other => other,
        })
    }
}
