//! [`FieldError`] and [`Path`]: apimachinery `pkg/util/validation/field` in Rust.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause;

/// The kind of a field error (upstream `field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum FieldErrorKind {
    /// A required field is missing.
    Required,
    /// A value is malformed or out of range.
    Invalid,
    /// A value must be unique but is not.
    Duplicate,
    /// A value is not one of the supported values.
    NotSupported,
    /// A value is too long.
    TooLong,
    /// A list has too many items.
    TooMany,
    /// The field may not be set (or changed) in this context.
    Forbidden,
    /// A referenced item does not exist.
    NotFound,
}

impl FieldErrorKind {
    /// Upstream `ErrorType.String()` (`Required value`, `Invalid value`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::Duplicate => "Duplicate value",
            Self::NotSupported => "Unsupported value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
        }
    }

    /// The `StatusCause.reason` (upstream `metav1.CauseType`).
    pub fn cause_type(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::Duplicate => "FieldValueDuplicate",
            Self::NotSupported => "FieldValueNotSupported",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Forbidden => "FieldValueForbidden",
            Self::NotFound => "FieldValueNotFound",
        }
    }
}

/// One validation error: field path, kind, the offending value (rendered as upstream does:
/// strings quoted, numbers bare) and a detail message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Field path, e.g. `spec.template.spec.containers[0].name`.
    pub path: String,
    /// Error kind.
    pub kind: FieldErrorKind,
    /// Detail message, e.g. `must be greater than or equal to 0`.
    pub message: String,
    /// The bad value as upstream prints it (`"abc"`, `-1`), if shown.
    pub value: Option<String>,
}

impl FieldError {
    /// Upstream `ErrorBody()`: the error without the field path, e.g.
    /// `Invalid value: -1: must be greater than or equal to 0`.
    pub fn body(&self) -> String {
        let mut s = self.kind.as_str().to_string();
        let shows_value = !matches!(
            self.kind,
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong
        );
        if shows_value {
            if let Some(v) = &self.value {
                s.push_str(": ");
                s.push_str(v);
            }
        }
        if !self.message.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        s
    }

    /// The `StatusCause` kube-apiserver puts in a 422 `Status.details.causes`.
    ///
    /// ```
    /// use orch_types::validation::{FieldError};
    /// let e = FieldError::required("metadata.name", "name or generateName is required");
    /// let c = e.to_status_cause();
    /// assert_eq!(c.reason.as_deref(), Some("FieldValueRequired"));
    /// assert_eq!(c.field.as_deref(), Some("metadata.name"));
    /// assert_eq!(c.message.as_deref(), Some("Required value: name or generateName is required"));
    /// ```
    pub fn to_status_cause(&self) -> StatusCause {
        StatusCause {
            field: Some(self.path.clone()),
            message: Some(self.body()),
            reason: Some(self.kind.cause_type().to_string()),
        }
    }

    fn new(
        path: impl fmt::Display,
        kind: FieldErrorKind,
        value: Option<String>,
        msg: impl Into<String>,
    ) -> Self {
        Self {
            path: path.to_string(),
            kind,
            message: msg.into(),
            value,
        }
    }

    /// `field.Required`.
    pub fn required(path: impl fmt::Display, msg: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::Required, None, msg)
    }

    /// `field.Invalid` with a string value (printed quoted).
    pub fn invalid(path: impl fmt::Display, value: &str, msg: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::Invalid, Some(quote(value)), msg)
    }

    /// `field.Invalid` with a number.
    pub fn invalid_num(path: impl fmt::Display, value: i64, msg: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::Invalid, Some(value.to_string()), msg)
    }

    /// `field.Invalid` with a pre-rendered value (e.g. a map).
    pub fn invalid_raw(
        path: impl fmt::Display,
        value: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        Self::new(path, FieldErrorKind::Invalid, Some(value.into()), msg)
    }

    /// `field.Invalid` with `field.OmitValueType{}`: `Invalid value: <msg>`, no value shown.
    pub fn invalid_no_value(path: impl fmt::Display, msg: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::Invalid, None, msg)
    }

    /// `field.Duplicate` with a number.
    pub fn duplicate_num(path: impl fmt::Display, value: i64) -> Self {
        Self::new(path, FieldErrorKind::Duplicate, Some(value.to_string()), "")
    }

    /// `field.Duplicate` with a string value.
    pub fn duplicate(path: impl fmt::Display, value: &str) -> Self {
        Self::new(path, FieldErrorKind::Duplicate, Some(quote(value)), "")
    }

    /// `field.NotSupported`: `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(path: impl fmt::Display, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        Self::new(
            path,
            FieldErrorKind::NotSupported,
            Some(quote(value)),
            format!("supported values: {}", list.join(", ")),
        )
    }

    /// `field.TooLong`: `Too long: may not be more than N bytes`.
    pub fn too_long(path: impl fmt::Display, max: usize) -> Self {
        Self::new(
            path,
            FieldErrorKind::TooLong,
            None,
            format!("may not be more than {max} bytes"),
        )
    }

    /// `field.TooMany`.
    pub fn too_many(path: impl fmt::Display, actual: usize, max: usize) -> Self {
        Self::new(
            path,
            FieldErrorKind::TooMany,
            Some(actual.to_string()),
            format!("must have at most {max} items"),
        )
    }

    /// `field.Forbidden`.
    pub fn forbidden(path: impl fmt::Display, msg: impl Into<String>) -> Self {
        Self::new(path, FieldErrorKind::Forbidden, None, msg)
    }

    /// `field.NotFound` with a string value.
    pub fn not_found(path: impl fmt::Display, value: &str) -> Self {
        Self::new(path, FieldErrorKind::NotFound, Some(quote(value)), "")
    }
}

impl fmt::Display for FieldError {
    /// Upstream `Error()`: `path: body`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.body())
    }
}

impl std::error::Error for FieldError {}

/// Go `%q` for plain strings (quotes and backslashes escaped).
pub(crate) fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// A field path builder: `Path::new("spec").child("containers").index(0).child("name")`
/// displays as `spec.containers[0].name`; map keys as `metadata.labels[app]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path(String);

impl Path {
    /// A root path segment.
    pub fn new(root: &str) -> Self {
        Self(root.to_string())
    }

    /// `.name`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// `[i]`.
    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    /// `[key]`.
    pub fn key(&self, k: &str) -> Self {
        Self(format!("{}[{k}]", self.0))
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
