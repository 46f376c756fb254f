//! Content negotiation, in one place: what the client accepts ([`response_format`]), how bodies
//! are decoded ([`decode_body`]) and how objects, lists, watch events and errors are encoded.
//!
//! To add a representation (Table, protobuf): add a [`Format`] variant, recognise it in
//! [`response_format`] / [`decode_body`], and render it in [`render`].

use super::Resource;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use orch_types::status::reason;
use orch_types::ApiError;
use serde::Serialize;
use serde_json::Value;

/// A response representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json` (the default).
    Json,
    /// `application/yaml`.
    Yaml,
    /// `application/json;as=Table;v=v1;g=meta.k8s.io` (server-side printing, [`crate::table`]),
    /// with the request's `includeObject` (see [`Format::with_query`]).
    Table(crate::table::IncludeObject),
}

impl Format {
    /// Completes the format with query parameters (`includeObject` for Tables).
    pub fn with_query(self, include_object: Option<&str>) -> Self {
        match self {
            Format::Table(_) => {
                Format::Table(crate::table::IncludeObject::from_param(include_object))
            }
            f => f,
        }
    }
}

/// What the `Accept` header asks for; 406 when nothing acceptable is offered.
pub fn response_format(headers: &HeaderMap) -> Result<Format, ApiError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Format::Json);
    };
    if accept.trim().is_empty() {
        return Ok(Format::Json);
    }
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<&str> = parts.collect();
        let as_table = params.iter().any(|p| p.eq_ignore_ascii_case("as=Table"));
        let other_as = params
            .iter()
            .any(|p| p.starts_with("as=") && !p.eq_ignore_ascii_case("as=Table"));
        match media.as_str() {
            "application/json" | "application/*" | "*/*" if as_table => {
                return Ok(Format::Table(crate::table::IncludeObject::default()))
            }
            "application/json" | "application/*" | "*/*" if !other_as => return Ok(Format::Json),
            "application/yaml" if !other_as && !as_table => return Ok(Format::Yaml),
            _ => continue,
        }
    }
    Err(ApiError::new(
        406,
        "NotAcceptable",
        format!("only the following media types are accepted: application/json, application/yaml (got {accept:?})"),
    ))
}

/// Decodes a request body as JSON or YAML by `Content-Type`; 415 for anything else.
pub fn decode_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let base = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was in an unknown format: invalid JSON: {e}"
            ))
        }),
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml_ng::from_slice(body)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request was in an unknown format: invalid YAML: {e}"
                ))
            }),
        crate::protobuf::CONTENT_TYPE => crate::protobuf::decode(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was in an unknown format: {e}"
            ))
        }),
        _ => Err(unsupported_media(ct)),
    }
}

/// 415 for a content type the server cannot decode.
pub fn unsupported_media(ct: &str) -> ApiError {
    ApiError::new(
        415,
        reason::UNSUPPORTED_MEDIA_TYPE,
        format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct:?})"),
    )
}

/// Encodes a value (object, list, Status) in the negotiated format.
pub fn render<T: Serialize>(
    info: Option<Resource>,
    format: Format,
    code: StatusCode,
    value: &T,
    warnings: &[String],
) -> Response {
    let (ct, body) = match format {
        Format::Table(include) => {
            let v = serde_json::to_value(value).unwrap_or_default();
            let t = crate::table::convert_for(info, &v, include, jiff::Timestamp::now());
            match serde_json::to_vec(&t) {
                Ok(v) => ("application/json", Bytes::from(v)),
                Err(_) => {
                    return Failure(ApiError::internal("cannot encode response")).into_response()
                }
            }
        }
        Format::Yaml => match serde_yaml_ng::to_string(value) {
            Ok(s) => ("application/yaml", Bytes::from(s)),
            Err(_) => return Failure(ApiError::internal("cannot encode response")).into_response(),
        },
        Format::Json => match serde_json::to_vec(value) {
            Ok(v) => ("application/json", Bytes::from(v)),
            Err(_) => return Failure(ApiError::internal("cannot encode response")).into_response(),
        },
    };
    let mut resp = (code, [(header::CONTENT_TYPE, ct)], body).into_response();
    add_warnings(resp.headers_mut(), warnings);
    resp
}

/// A JSON body encoded already (a list spliced from stored objects).
pub fn render_json(code: StatusCode, body: Vec<u8>, warnings: &[String]) -> Response {
    let mut resp = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from(body),
    )
        .into_response();
    add_warnings(resp.headers_mut(), warnings);
    resp
}

/// Adds `Warning: 299 - "..."` headers.
pub fn add_warnings(headers: &mut HeaderMap, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "'"));
        if let Ok(v) = HeaderValue::from_str(&text) {
            headers.append(header::WARNING, v);
        }
    }
}

/// An [`ApiError`] as an HTTP response: a `kind: Status` body with the error's code, and a
/// `Retry-After` header when its details ask the client to wait (upstream `ErrorNegotiated` in
/// `apiserver/pkg/endpoints/handlers/responsewriters/writers.go`), as a 429 from `pods/eviction`
/// does.
#[derive(Debug, Clone)]
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.0.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // kube-apiserver's bytes: its field order and a trailing newline.
        let body = self.0.to_json_bytes();
        let mut resp = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        let retry = self.0.details.as_ref().and_then(|d| d.retry_after_seconds);
        if let Some(secs) = retry.filter(|s| *s > 0) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_that_asks_to_wait_sets_retry_after() {
        let waiting = crate::subresources::disruption_budget_error("needs 2".into(), 10);
        let resp = Failure(waiting).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "10");
        let plain = Failure(ApiError::bad_request("no")).into_response();
        assert!(plain.headers().get(header::RETRY_AFTER).is_none());
    }

    async fn body(resp: Response) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    /// A 404 and a 409 as kube-apiserver sends them, byte for byte (issue 21).
    #[tokio::test]
    async fn failure_bodies_are_kube_apiservers_bytes() {
        let resp = Failure(ApiError::not_found("pods", "nope")).into_response();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body(resp).await,
            concat!(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
                r#""message":"pods \"nope\" not found","reason":"NotFound","#,
                r#""details":{"name":"nope","kind":"pods"},"code":404}"#,
                "\n"
            )
        );
        let resp = Failure(ApiError::already_exists("configmaps", "c")).into_response();
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert_eq!(
            body(resp).await,
            concat!(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
                r#""message":"configmaps \"c\" already exists","reason":"AlreadyExists","#,
                r#""details":{"name":"c","kind":"configmaps"},"code":409}"#,
                "\n"
            )
        );
    }
}
