//! API errors: a Kubernetes `Status` with its HTTP code and reason, as every client sees them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

/// Machine-readable `Status.reason` values (upstream `metav1.StatusReason`).
pub mod reason {
    /// 404.
    pub const NOT_FOUND: &str = "NotFound";
    /// 409 on create of an existing name.
    pub const ALREADY_EXISTS: &str = "AlreadyExists";
    /// 409 on a stale resourceVersion or precondition.
    pub const CONFLICT: &str = "Conflict";
    /// 422.
    pub const INVALID: &str = "Invalid";
    /// 400.
    pub const BAD_REQUEST: &str = "BadRequest";
    /// 410 Gone: too old resource version.
    pub const EXPIRED: &str = "Expired";
    /// 410 Gone (generic).
    pub const GONE: &str = "Gone";
    /// 405.
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    /// 413.
    pub const REQUEST_ENTITY_TOO_LARGE: &str = "RequestEntityTooLarge";
    /// 415.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
    /// 500.
    pub const INTERNAL_ERROR: &str = "InternalError";
    /// 504 / watch timeouts.
    pub const TIMEOUT: &str = "Timeout";
    /// 429.
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequests";
    /// 403.
    pub const FORBIDDEN: &str = "Forbidden";
    /// 503.
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
}

/// An error answered by an API server, carrying the full `Status`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} ({reason}, {code})")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason`.
    pub reason: String,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`.
    pub details: Option<StatusDetails>,
}

impl ApiError {
    /// Builds an error with code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            message: message.into(),
            details: None,
        }
    }

    /// 404 `pods "x" not found`.
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::new(
            404,
            reason::NOT_FOUND,
            format!("{resource} \"{name}\" not found"),
        )
        .with_details(resource, name)
    }

    /// 409 `pods "x" already exists`.
    pub fn already_exists(resource: &str, name: &str) -> Self {
        Self::new(
            409,
            reason::ALREADY_EXISTS,
            format!("{resource} \"{name}\" already exists"),
        )
        .with_details(resource, name)
    }

    /// 409 Conflict with upstream's optimistic-concurrency message.
    pub fn conflict(resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            reason::CONFLICT,
            format!("Operation cannot be fulfilled on {resource} \"{name}\": {why}"),
        )
        .with_details(resource, name)
    }

    /// 403 `pods "x" is forbidden: why` (upstream `errors.NewForbidden`), with details.
    pub fn forbidden(resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            403,
            reason::FORBIDDEN,
            format!("{resource} \"{name}\" is forbidden: {why}"),
        )
        .with_details(resource, name)
    }

    /// 404 for a path that names no served resource. kube-apiserver's answer has empty
    /// `details` (`{}`), which clients such as `kubectl debug` expect to be present.
    pub fn unknown_resource(what: &str) -> Self {
        let mut e = Self::new(
            404,
            reason::NOT_FOUND,
            format!("the server could not find the requested resource ({what})"),
        );
        e.details = Some(StatusDetails::default());
        e
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, reason::BAD_REQUEST, message)
    }

    /// 410 Expired: too old resource version.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, reason::EXPIRED, message)
    }

    /// 500 without internal detail.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, reason::INTERNAL_ERROR, message)
    }

    /// 422 Invalid with one cause per field error.
    pub fn invalid(kind: &str, name: &str, causes: Vec<StatusCause>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| {
                format!(
                    "{}: {}",
                    c.field.as_deref().unwrap_or(""),
                    c.message.as_deref().unwrap_or("")
                )
            })
            .collect();
        let mut e = Self::new(
            422,
            reason::INVALID,
            format!("{kind} \"{name}\" is invalid: {}", summary.join(", ")),
        );
        e.details = Some(StatusDetails {
            kind: Some(kind.to_string()),
            name: Some(name.to_string()),
            causes: Some(causes),
            ..Default::default()
        });
        e
    }

    fn with_details(mut self, resource: &str, name: &str) -> Self {
        let (group, kind) = match resource.split_once('.') {
            Some((k, g)) => (Some(g.to_string()), k.to_string()),
            None => (None, resource.to_string()),
        };
        self.details = Some(StatusDetails {
            name: Some(name.into()),
            kind: Some(kind),
            group,
            ..Default::default()
        });
        self
    }

    /// The wire `Status` (`kind: Status`, `status: Failure`).
    pub fn to_status(&self) -> Status {
        Status {
            code: Some(i32::from(self.code)),
            details: self.details.clone(),
            message: Some(self.message.clone()),
            metadata: Default::default(),
            reason: Some(self.reason.clone()),
            status: Some("Failure".into()),
        }
    }

    /// The wire `Status` as JSON with `apiVersion: v1`, `kind: Status`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.to_status()).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".into(), "v1".into());
            m.insert("kind".into(), "Status".into());
            m.entry("metadata").or_insert_with(|| serde_json::json!({}));
        }
        v
    }

    /// Reads an `ApiError` back from a wire `Status`.
    pub fn from_status(s: &Status) -> Self {
        Self {
            code: s.code.and_then(|c| u16::try_from(c).ok()).unwrap_or(500),
            reason: s.reason.clone().unwrap_or_default(),
            message: s.message.clone().unwrap_or_default(),
            details: s.details.clone(),
        }
    }

    /// 404.
    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }
    /// 409 Conflict (stale resourceVersion).
    pub fn is_conflict(&self) -> bool {
        self.code == 409 && self.reason == reason::CONFLICT
    }
    /// 409 AlreadyExists.
    pub fn is_already_exists(&self) -> bool {
        self.code == 409 && self.reason == reason::ALREADY_EXISTS
    }
    /// 410.
    pub fn is_gone(&self) -> bool {
        self.code == 410
    }
    /// 422.
    pub fn is_invalid(&self) -> bool {
        self.code == 422
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip() {
        let e = ApiError::not_found("pods", "x");
        let j = e.to_json();
        assert_eq!(j["kind"], "Status");
        assert_eq!(j["code"], 404);
        assert_eq!(j["message"], "pods \"x\" not found");
        assert_eq!(j["details"]["kind"], "pods");
        let s: Status = serde_json::from_value(j).unwrap();
        assert_eq!(ApiError::from_status(&s), e);
        let c = ApiError::not_found("deployments.apps", "d");
        assert_eq!(c.details.unwrap().group.as_deref(), Some("apps"));
    }
}
