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

    /// The wire `Status` as JSON with `apiVersion: v1`, `kind: Status`, its fields in
    /// kube-apiserver's order (see [`ApiError::to_json_bytes`]).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.wire()).unwrap_or_default()
    }

    /// The body kube-apiserver sends for this error, byte for byte: compact JSON with the
    /// fields in the order of upstream's Go structs, empty ones left out as `omitempty` does,
    /// and a trailing newline (Go's `json.Encoder.Encode`, which upstream's JSON serializer
    /// uses, ends every value with `\n`).
    ///
    /// Upstream `staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go`: `Status` is
    /// `kind`, `apiVersion` (the inlined `TypeMeta`), `metadata` (a `ListMeta` struct, so `{}`
    /// even when empty), `status`, `message`, `reason`, `details`, `code`; `StatusDetails` is
    /// `name`, `group`, `kind`, `uid`, `causes`, `retryAfterSeconds`; `StatusCause` is
    /// `reason`, `message`, `field`. The encoder is `json.go` in
    /// `staging/src/k8s.io/apimachinery/pkg/runtime/serializer/json/`.
    ///
    /// ```
    /// let body = orch_types::ApiError::not_found("pods", "x").to_json_bytes();
    /// assert!(body.starts_with(br#"{"kind":"Status","apiVersion":"v1","metadata":{},"#));
    /// assert!(body.ends_with(b"\"code\":404}\n"));
    /// ```
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut body = serde_json::to_vec(&self.wire()).unwrap_or_default();
        body.push(b'\n');
        body
    }

    fn wire(&self) -> wire::Status<'_> {
        wire::Status {
            kind: "Status",
            api_version: "v1",
            metadata: wire::ListMeta {},
            status: "Failure",
            message: &self.message,
            reason: &self.reason,
            details: self.details.as_ref().map(|d| wire::Details {
                name: d.name.as_deref().unwrap_or(""),
                group: d.group.as_deref().unwrap_or(""),
                kind: d.kind.as_deref().unwrap_or(""),
                uid: d.uid.as_deref().unwrap_or(""),
                causes: d
                    .causes
                    .iter()
                    .flatten()
                    .map(|c| wire::Cause {
                        reason: c.reason.as_deref().unwrap_or(""),
                        message: c.message.as_deref().unwrap_or(""),
                        field: c.field.as_deref().unwrap_or(""),
                    })
                    .collect(),
                retry_after_seconds: d.retry_after_seconds.unwrap_or(0),
            }),
            code: i32::from(self.code),
        }
    }

    /// Serializes a wire `Status` as [`ApiError::to_json_bytes`] does (upstream's field order
    /// and `omitempty`), e.g. the object of a watch `ERROR` event.
    pub(crate) fn serialize_status<S: serde::Serializer>(
        s: &Status,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&Self::from_status(s).wire(), serializer)
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

/// `Status` as upstream's Go structs encode it: their field order, `omitempty` on every field
/// but `metadata` (see [`ApiError::to_json_bytes`]).
mod wire {
    use serde::Serialize;

    fn empty(s: &&str) -> bool {
        s.is_empty()
    }

    fn zero(n: &i32) -> bool {
        *n == 0
    }

    #[derive(Serialize)]
    pub(super) struct Status<'a> {
        pub kind: &'static str,
        #[serde(rename = "apiVersion")]
        pub api_version: &'static str,
        pub metadata: ListMeta,
        #[serde(skip_serializing_if = "empty")]
        pub status: &'a str,
        #[serde(skip_serializing_if = "empty")]
        pub message: &'a str,
        #[serde(skip_serializing_if = "empty")]
        pub reason: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub details: Option<Details<'a>>,
        #[serde(skip_serializing_if = "zero")]
        pub code: i32,
    }

    /// An empty `ListMeta`: errors carry none, and Go still writes the struct as `{}`.
    #[derive(Serialize)]
    pub(super) struct ListMeta {}

    #[derive(Serialize)]
    pub(super) struct Details<'a> {
        #[serde(skip_serializing_if = "empty")]
        pub name: &'a str,
        #[serde(skip_serializing_if = "empty")]
        pub group: &'a str,
        #[serde(skip_serializing_if = "empty")]
        pub kind: &'a str,
        #[serde(skip_serializing_if = "empty")]
        pub uid: &'a str,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub causes: Vec<Cause<'a>>,
        #[serde(rename = "retryAfterSeconds", skip_serializing_if = "zero")]
        pub retry_after_seconds: i32,
    }

    #[derive(Serialize)]
    pub(super) struct Cause<'a> {
        #[serde(skip_serializing_if = "empty")]
        pub reason: &'a str,
        #[serde(skip_serializing_if = "empty")]
        pub message: &'a str,
        #[serde(skip_serializing_if = "empty")]
        pub field: &'a str,
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

    /// The exact bytes kube-apiserver (1.33) sends for these errors (`kubectl get --raw` and
    /// `curl` against a kind cluster), field order and trailing newline included.
    #[test]
    fn error_bodies_are_byte_identical_to_kube_apiservers() {
        let text = |e: ApiError| String::from_utf8(e.to_json_bytes()).unwrap();
        assert_eq!(
            text(ApiError::not_found("pods", "nope")),
            concat!(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
                r#""message":"pods \"nope\" not found","reason":"NotFound","#,
                r#""details":{"name":"nope","kind":"pods"},"code":404}"#,
                "\n"
            )
        );
        assert_eq!(
            text(ApiError::already_exists("deployments.apps", "web")),
            concat!(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
                r#""message":"deployments.apps \"web\" already exists","reason":"AlreadyExists","#,
                r#""details":{"name":"web","group":"apps","kind":"deployments"},"code":409}"#,
                "\n"
            )
        );
        assert_eq!(
            text(ApiError::conflict(
                "configmaps",
                "c",
                "the object has been modified; please apply your changes to the latest version and try again"
            )),
            concat!(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
                r#""message":"Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again","#,
                r#""reason":"Conflict","details":{"name":"c","kind":"configmaps"},"code":409}"#,
                "\n"
            )
        );
        let invalid = ApiError::invalid(
            "Pod",
            "p",
            vec![StatusCause {
                field: Some("spec.containers".into()),
                message: Some("Required value".into()),
                reason: Some("FieldValueRequired".into()),
            }],
        );
        assert_eq!(
            text(invalid),
            concat!(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
                r#""message":"Pod \"p\" is invalid: spec.containers: Required value","reason":"Invalid","#,
                r#""details":{"name":"p","kind":"Pod","causes":[{"reason":"FieldValueRequired","#,
                r#""message":"Required value","field":"spec.containers"}]},"code":422}"#,
                "\n"
            )
        );
        // An unknown path: `details` present and empty.
        assert!(text(ApiError::unknown_resource("x")).contains(r#","details":{},"code":404}"#));
        // The JSON value keeps the same order.
        let keys: Vec<String> = ApiError::not_found("pods", "x")
            .to_json()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "kind",
                "apiVersion",
                "metadata",
                "status",
                "message",
                "reason",
                "details",
                "code"
            ]
        );
    }
}
