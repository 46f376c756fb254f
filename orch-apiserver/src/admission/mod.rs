//! Admission: what runs on every write between decoding and storage, in upstream's order —
//! mutating plugins (defaulting, [`default_tolerations`]), then validation.
//!
//! Defaulting and validation come from `orch_types` (`defaults::apply_defaults`,
//! `validation::validate` / `validate_update`); invalid objects are rejected with 422 and one
//! `details.causes[]` entry per field error, before anything is written.

pub mod default_tolerations;

use crate::rest::{Resource, RestResult};
use crate::server::ApiServer;
use orch_types::{ApiError, DynamicObject};

/// `fieldValidation` of a write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown or duplicate fields fail the request (400).
    Strict,
    /// They are dropped with a `Warning` header (the default).
    Warn,
    /// They are dropped silently.
    Ignore,
}

impl FieldValidation {
    /// Parses the query parameter (`None`: the default, Warn).
    pub fn parse(v: Option<&str>) -> RestResult<Self> {
        match v.unwrap_or("") {
            "" | "Warn" => Ok(Self::Warn),
            "Strict" => Ok(Self::Strict),
            "Ignore" => Ok(Self::Ignore),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Strict, Warn, Ignore; got {other:?}"
            ))),
        }
    }
}

impl ApiServer {
    /// Checks unknown fields per `fieldValidation`; returns the warnings to send.
    pub(crate) fn check_fields(
        &self,
        info: Resource,
        obj: &DynamicObject,
        validation: Option<&str>,
    ) -> RestResult<Vec<String>> {
        let mode = FieldValidation::parse(validation)?;
        if mode == FieldValidation::Ignore {
            return Ok(Vec::new());
        }
        let unknown = crate::admission::unknown_fields(info, obj);
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        match mode {
            FieldValidation::Strict => Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            _ => Ok(unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect()),
        }
    }

    /// Runs the admission chain on a create (`old == None`) or update.
    pub(crate) fn admit(
        &self,
        info: Resource,
        obj: &mut DynamicObject,
        old: Option<&DynamicObject>,
    ) -> RestResult<Vec<String>> {
        if old.is_none() {
            default_tolerations::admit(info, obj);
        }
        Ok(Vec::new())
    }
}

/// Top-level fields of `obj` that its kind does not define.
///
/// Seam: nested unknown fields need the typed schema decoder of `orch_types::decode`; until it
/// is wired, only top-level fields are checked against the kind's known top-level fields.
pub fn unknown_fields(info: Resource, obj: &DynamicObject) -> Vec<String> {
    let known: &[&str] = match info.kind {
        "ConfigMap" => &["data", "binaryData", "immutable"],
        "Secret" => &["data", "stringData", "type", "immutable"],
        "Endpoints" => &["subsets"],
        "ServiceAccount" => &[
            "secrets",
            "imagePullSecrets",
            "automountServiceAccountToken",
        ],
        "Binding" => &["target"],
        "ControllerRevision" => &["data", "revision"],
        "PriorityClass" => &["value", "globalDefault", "description", "preemptionPolicy"],
        "Event" if info.group.is_empty() => &[
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        ],
        "Event" => &[
            "eventTime",
            "series",
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
            "regarding",
            "related",
            "note",
            "type",
            "deprecatedSource",
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount",
        ],
        _ => &["spec", "status"],
    };
    obj.data
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect()
}
