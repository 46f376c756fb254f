//! The options of a write, checked before anything is decoded or stored, as kube-apiserver's
//! handlers do: `ValidateCreateOptions`, `ValidateUpdateOptions`, `ValidatePatchOptions` and
//! `ValidateDeleteOptions` (apimachinery `pkg/apis/meta/v1/validation/validation.go`, called
//! from apiserver `pkg/endpoints/handlers/{create,update,patch,delete}.go`). A bad value is a
//! 422 `Invalid` of the options kind: `CreateOptions.meta.k8s.io "" is invalid: dryRun:
//! Unsupported value: ["bogus"]: supported values: "All"` — never a write that ignores it.

use super::RestResult;
use axum::http::Method;
use orch_types::validation::{invalid_error, FieldError, FieldErrorKind};
use orch_types::{ApiError, DynamicObject};
use std::collections::HashMap;

/// Upstream `FieldManagerMaxLength`.
const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// The options kind a method's query decodes into (`None`: a read, nothing to check).
pub(super) fn options_kind(method: &Method) -> Option<&'static str> {
    match *method {
        Method::POST => Some("CreateOptions"),
        Method::PUT => Some("UpdateOptions"),
        Method::PATCH => Some("PatchOptions"),
        Method::DELETE => Some("DeleteOptions"),
        _ => None,
    }
}

/// Checks the write options in the query of a `method` request (last value of each parameter)
/// whose body is of `content_type`.
pub(super) fn check_query(
    method: &Method,
    query: &HashMap<String, String>,
    content_type: &str,
) -> RestResult<()> {
    let Some(kind) = options_kind(method) else {
        return Ok(());
    };
    let mut errs = Vec::new();
    let media = content_type.split(';').next().unwrap_or("").trim();
    let apply = matches!(
        media,
        "application/apply-patch+yaml" | "application/apply-patch+cbor"
    );
    if kind == "PatchOptions" && !apply && query.contains_key("force") {
        errs.push(FieldError::forbidden(
            "force",
            "may not be specified for non-apply patch",
        ));
    }
    if kind != "DeleteOptions" {
        errs.extend(field_manager_errors(
            query.get("fieldManager").map_or("", String::as_str),
        ));
    }
    if let Some(d) = query.get("dryRun") {
        errs.extend(dry_run_errors(&[d.as_str()]));
    }
    if kind != "DeleteOptions" {
        let v = query.get("fieldValidation").map_or("", String::as_str);
        if !["", "Ignore", "Strict", "Warn"].contains(&v) {
            errs.push(FieldError::not_supported(
                "fieldValidation",
                v,
                &["", "Ignore", "Strict", "Warn"],
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(kind, &errs))
    }
}

/// Upstream `ValidateDryRun`: every value is `All`. The bad value is shown as the list it is.
pub(super) fn dry_run_errors(values: &[&str]) -> Vec<FieldError> {
    if values.iter().all(|v| *v == "All") {
        return Vec::new();
    }
    vec![FieldError {
        path: "dryRun".into(),
        kind: FieldErrorKind::NotSupported,
        message: "supported values: \"All\"".into(),
        value: Some(serde_json::to_string(values).unwrap_or_default()),
    }]
}

/// Upstream `ValidateFieldManager`: at most 128 bytes, printable characters only. Go's
/// `unicode.IsPrint` is taken as: the ASCII space, or neither a control nor a white-space
/// character.
fn field_manager_errors(m: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if m.len() > FIELD_MANAGER_MAX_LENGTH {
        errs.push(FieldError::too_long(
            "fieldManager",
            FIELD_MANAGER_MAX_LENGTH,
        ));
    }
    for (i, c) in m.char_indices() {
        if c != ' ' && (c.is_control() || c.is_whitespace()) {
            errs.push(FieldError::invalid(
                "fieldManager",
                m,
                format!("invalid character U+{:04X} (at position {i})", u32::from(c)),
            ));
        }
    }
    errs
}

/// The 422 of an options kind (`meta.k8s.io`, no name), as upstream `errors.NewInvalid`.
pub(super) fn invalid(kind: &str, errs: &[FieldError]) -> ApiError {
    let obj = DynamicObject::from_value(serde_json::json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": kind,
        "metadata": {},
    }));
    match obj {
        Ok(o) => invalid_error(&o, errs),
        Err(_) => ApiError::bad_request(format!("invalid {kind}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn dry_run_other_than_all_is_a_422_of_the_options_kind() {
        let e = check_query(
            &Method::POST,
            &q(&[("dryRun", "bogus")]),
            "application/json",
        )
        .unwrap_err();
        assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
        assert_eq!(
            e.message,
            r#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["bogus"]: supported values: "All""#
        );
        let d = e.details.unwrap();
        assert_eq!(d.group.as_deref(), Some("meta.k8s.io"));
        assert_eq!(d.kind.as_deref(), Some("CreateOptions"));
        let e =
            check_query(&Method::DELETE, &q(&[("dryRun", "")]), "application/json").unwrap_err();
        assert!(
            e.message.starts_with("DeleteOptions.meta.k8s.io"),
            "{}",
            e.message
        );
        assert!(check_query(&Method::PUT, &q(&[("dryRun", "All")]), "application/json").is_ok());
        assert!(check_query(&Method::GET, &q(&[("dryRun", "bogus")]), "application/json").is_ok());
    }

    #[test]
    fn field_validation_and_field_manager_are_checked_on_writes() {
        let e = check_query(
            &Method::PATCH,
            &q(&[("fieldValidation", "bogus")]),
            "application/json",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            r#"PatchOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "bogus": supported values: "", "Ignore", "Strict", "Warn""#
        );
        let long = "m".repeat(129);
        let e = check_query(
            &Method::PUT,
            &q(&[("fieldManager", &long)]),
            "application/json",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            r#"UpdateOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than 128 bytes"#
        );
        let e = check_query(
            &Method::POST,
            &q(&[("fieldManager", "a\u{7}")]),
            "application/json",
        )
        .unwrap_err();
        assert!(
            e.message
                .ends_with("invalid character U+0007 (at position 1)"),
            "{}",
            e.message
        );
        assert!(check_query(
            &Method::POST,
            &q(&[
                ("fieldManager", "kubectl client"),
                ("fieldValidation", "Strict")
            ]),
            "application/json"
        )
        .is_ok());
        let e = check_query(
            &Method::PATCH,
            &q(&[("force", "true")]),
            "application/merge-patch+json",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            r#"PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch"#
        );
        assert!(check_query(
            &Method::PATCH,
            &q(&[("force", "true")]),
            "application/apply-patch+yaml; charset=utf-8"
        )
        .is_ok());
        // DeleteOptions has neither field.
        assert!(check_query(
            &Method::DELETE,
            &q(&[("fieldValidation", "bogus")]),
            "application/json"
        )
        .is_ok());
    }
}
