//! What a write of a custom object goes through besides the generic REST bookkeeping, in
//! upstream's order (`apiextensions-apiserver/pkg/apiserver/customresource_handler.go`,
//! `schemaCoercingConverter`, `pkg/registry/customresource/validator.go`): unknown fields are
//! pruned (reported per `fieldValidation` like a built-in kind's), `default`s are applied,
//! then the object is validated against the version's structural schema and its
//! `x-kubernetes-validations` rules (transition rules against the old object on updates).
//! Invalid objects get a 422 naming each field, with the group-qualified kind
//! (`Backup.ops.example.org "x" is invalid: …`), and nothing is written.

use orch_types::validation::FieldError;
use orch_types::{ApiError, DynamicObject};

use super::CustomResource;
use crate::rest::RestResult;

/// `Kind.group`, as upstream names a custom kind in errors (`GroupKind.String()`).
pub fn qualified_kind(cr: &CustomResource) -> String {
    format!("{}.{}", cr.info.kind, cr.info.group)
}

fn decode_error(cr: &CustomResource, e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "the body of the request does not fit a {}: {e}",
        qualified_kind(cr)
    ))
}

/// The fields of `obj` the version's schema does not specify (what [`mutate`] prunes).
pub fn unknown_fields(cr: &CustomResource, obj: &DynamicObject) -> Vec<String> {
    let Some(schema) = &cr.structural else {
        return Vec::new();
    };
    let mut v = obj.to_value();
    schema.prune(&mut v)
}

/// Prunes unknown fields and applies defaults.
pub fn mutate(cr: &CustomResource, obj: &mut DynamicObject) -> RestResult<()> {
    let Some(schema) = &cr.structural else {
        return Ok(());
    };
    let mut v = obj.to_value();
    schema.prune(&mut v);
    schema.apply_defaults(&mut v);
    *obj = DynamicObject::from_value(v).map_err(|e| decode_error(cr, e.source))?;
    Ok(())
}

/// The schema's errors on `obj` (`old`: the stored object of an update).
pub fn validate(
    cr: &CustomResource,
    obj: &DynamicObject,
    old: Option<&DynamicObject>,
) -> Vec<FieldError> {
    let Some(schema) = &cr.structural else {
        return Vec::new();
    };
    let old = old.map(DynamicObject::to_value);
    schema.validate(&obj.to_value(), old.as_ref())
}
