//! HTTP requests for a resource served at a version other than its storage version
//! ([`orch_types::registry::CONVERTED`], and the non-storage versions of a CRD): the request is answered by the storage version's
//! handlers, with bodies converted on the way in and objects on the way out
//! ([`crate::conversion`]), the way kube-apiserver serves every version of a kind through one
//! storage version.
//!
//! - Writes (`POST`, `PUT`, also of `status`): the body is checked against the served
//!   version's schema (`fieldValidation`), converted, and handled as a write of the storage
//!   version.
//! - `PATCH`: the patch applies to the object as the served version shows it; the result is
//!   converted back and written with the object's resourceVersion as a precondition (retried
//!   on a conflict the patch did not ask for). Server-side apply is refused for these versions:
//!   field ownership is recorded in the storage version's field paths.
//! - Reads, lists, watches and deletes answer with converted objects. Tables are printed from
//!   the stored objects (the columns are the same for every version).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use orch_types::client::PostParams;
use orch_types::status::reason;
use orch_types::{ApiError, DynamicObject};
use serde_json::Value;

use super::negotiate::{self, decode_body, render, response_format, Format};
use super::patch::{apply_patch, PatchType};
use super::router::{dispatch, Request};
use super::update::Part;
use super::{Resource, RestResult};
use crate::server::ApiServer;

/// Converts a stored object to the served version. Custom resources convert with the `None`
/// strategy here: only `apiVersion` changes (upstream `nopConverter`); those with the
/// `Webhook` strategy go through [`served_all`].
fn to_served(served: Resource, v: &Value) -> Value {
    match (served.group, served.version, served.kind) {
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => crate::conversion::hpa_v2_to_v1(v),
        _ => with_api_version(v, served),
    }
}

/// Converts an object of the served version to the storage version `stored` (400 when it
/// cannot be).
fn to_stored(served: Resource, stored: Resource, v: &Value) -> RestResult<Value> {
    match (served.group, served.version, served.kind) {
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => crate::conversion::hpa_v1_to_v2(v)
            .map_err(|e| ApiError::bad_request(format!("cannot convert {}: {e}", served.kind))),
        _ => Ok(with_api_version(v, stored)),
    }
}

fn with_api_version(v: &Value, to: Resource) -> Value {
    let mut out = v.clone();
    if let Some(m) = out.as_object_mut() {
        m.insert("apiVersion".into(), to.api_version().into());
    }
    out
}

/// Converts stored objects to the served version: a CRD with `strategy: Webhook` through its
/// conversion webhook ([`crate::webhook::conversion`]), everything else with [`to_served`].
async fn served_all(
    api: &ApiServer,
    served: Resource,
    items: Vec<Value>,
) -> RestResult<Vec<Value>> {
    if let Some(cr) = api.custom(served) {
        if crate::webhook::conversion::uses_webhook(&cr.crd) {
            return crate::webhook::conversion::convert(&cr.crd, items, &served.api_version())
                .await;
        }
    }
    Ok(items.iter().map(|v| to_served(served, v)).collect())
}

/// [`to_stored`], through the conversion webhook of a CRD with `strategy: Webhook`.
async fn stored_one(
    api: &ApiServer,
    served: Resource,
    stored: Resource,
    v: &Value,
) -> RestResult<Value> {
    if let Some(cr) = api.custom(served) {
        if crate::webhook::conversion::uses_webhook(&cr.crd) {
            let mut out = crate::webhook::conversion::convert(
                &cr.crd,
                vec![v.clone()],
                &stored.api_version(),
            )
            .await?;
            return Ok(out.pop().unwrap_or_default());
        }
    }
    to_stored(served, stored, v)
}

/// Converts objects of the stored kind inside a response body (an object, a list, a watch
/// event).
async fn convert_out(api: &ApiServer, served: Resource, v: &mut Value) -> RestResult<()> {
    match v.get("kind").and_then(Value::as_str) {
        Some(k) if k == served.kind => {
            let one = std::mem::take(v);
            *v = served_all(api, served, vec![one])
                .await?
                .pop()
                .unwrap_or_default();
        }
        Some(k) if k == format!("{}List", served.kind) => {
            v["apiVersion"] = served.api_version().into();
            if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
                let taken = std::mem::take(items);
                *items = served_all(api, served, taken).await?;
            }
        }
        _ => {
            if let Some(obj) = v.get_mut("object") {
                if obj.get("kind").and_then(Value::as_str) == Some(served.kind) {
                    let one = std::mem::take(obj);
                    *obj = served_all(api, served, vec![one])
                        .await?
                        .pop()
                        .unwrap_or_default();
                }
            }
        }
    }
    Ok(())
}

/// Answers `req` (addressed to `served`) through the handlers of `stored`.
pub(crate) async fn handle(
    api: &Arc<ApiServer>,
    mut req: Request,
    stored: Resource,
) -> RestResult<Response> {
    let served = req.target.info;
    let format = response_format(&req.headers)?.with_query(req.param("includeObject"));
    let mut warnings = Vec::new();
    match req.method {
        Method::POST | Method::PUT => {
            let body = decode_body(&req.headers, &req.body)?;
            let obj = DynamicObject::from_value(body.clone()).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request does not fit a {}: {}",
                    served.kind, e.source
                ))
            })?;
            if obj.types.api_version != served.api_version() || obj.types.kind != served.kind {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({}) does not match the expected API version ({}) or the kind ({}) does not match {}",
                    obj.types.api_version,
                    served.api_version(),
                    obj.types.kind,
                    served.kind
                )));
            }
            warnings = api.check_fields(
                served,
                &obj,
                Some(req.param("fieldValidation").unwrap_or("Warn")),
            )?;
            let converted = stored_one(api, served, stored, &body).await?;
            req.body = Bytes::from(serde_json::to_vec(&converted).unwrap_or_default());
            req.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        Method::PATCH => return patch(api, req, stored, format).await,
        _ => {}
    }
    req.target.info = stored;
    if let Format::Table(_) = format {
        return dispatch(api, req).await;
    }
    req.headers
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let watching = req.method == Method::GET && super::router::query_flag(req.param("watch"));
    let resp = dispatch(api, req).await?;
    if watching {
        return Ok(convert_watch(api.clone(), served, resp));
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|_| ApiError::internal("cannot read the response"))?;
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    };
    if v.get("kind").and_then(Value::as_str) == Some("Status") {
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    }
    convert_out(api, served, &mut v).await?;
    let mut out = render(Some(served), format, parts.status, &v, &warnings);
    for (k, value) in parts.headers.iter().filter(|(k, _)| *k == "warning") {
        out.headers_mut().append(k, value.clone());
    }
    Ok(out)
}

/// A JSON watch stream with each event's object converted (one event per chunk, as
/// `router::watch_response` writes them). An event whose object cannot be converted becomes
/// an `ERROR` event with the Status.
fn convert_watch(api: Arc<ApiServer>, served: Resource, resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let stream = body.into_data_stream().then(move |chunk| {
        let api = api.clone();
        async move {
            let chunk = chunk?;
            let mut out = Vec::with_capacity(chunk.len());
            for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                match serde_json::from_slice::<Value>(line) {
                    Ok(mut ev) => {
                        if let Err(e) = convert_out(&api, served, &mut ev).await {
                            let status: Value =
                                serde_json::from_slice(&e.to_json_bytes()).unwrap_or_default();
                            ev = serde_json::json!({"type": "ERROR", "object": status});
                        }
                        out.extend(serde_json::to_vec(&ev).unwrap_or_default());
                    }
                    Err(_) => out.extend_from_slice(line),
                }
                out.push(b'\n');
            }
            Ok::<_, axum::Error>(Bytes::from(out))
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// `PATCH` of a converted resource: applied to the object as the served version shows it.
async fn patch(
    api: &Arc<ApiServer>,
    req: Request,
    stored: Resource,
    format: Format,
) -> RestResult<Response> {
    let served = req.target.info;
    let ct = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind = PatchType::from_content_type(ct).ok_or_else(|| negotiate::unsupported_media(ct))?;
    if kind == PatchType::Apply {
        return Err(ApiError::new(
            415,
            reason::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "server-side apply of {} {} is not supported: apply the {} version",
                served.api_version(),
                served.plural,
                stored.api_version()
            ),
        ));
    }
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("invalid patch body: {e}")))?;
    let part = Part::from_subresource(req.target.subresource.as_deref()).ok_or_else(|| {
        ApiError::new(
            405,
            reason::METHOD_NOT_ALLOWED,
            "the server does not allow this method on the requested resource",
        )
    })?;
    let name = req.target.name.clone().ok_or_else(|| {
        ApiError::new(
            405,
            reason::METHOD_NOT_ALLOWED,
            "a patch needs an object name",
        )
    })?;
    let ns = req.target.namespace.as_deref();
    let params = PostParams {
        dry_run: req.param("dryRun") == Some("All"),
        field_manager: req.field_manager(),
        field_validation: Some(req.param("fieldValidation").unwrap_or("Warn").to_string()),
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let cur = api.get_object(stored, ns, &name).await?;
        let cur_served = served_all(
            api,
            served,
            vec![serde_json::to_value(&*cur).unwrap_or_default()],
        )
        .await?
        .pop()
        .unwrap_or_default();
        let patched = apply_patch(served, kind, &cur_served, &body)?;
        let asked_rv =
            patched["metadata"]["resourceVersion"] != cur_served["metadata"]["resourceVersion"];
        let mut obj = DynamicObject::from_value(stored_one(api, served, stored, &patched).await?)
            .map_err(|e| {
            ApiError::new(
                422,
                reason::INVALID,
                format!(
                    "the patched object is not a valid {}: {}",
                    served.kind, e.source
                ),
            )
        })?;
        if !asked_rv {
            obj.metadata.resource_version = cur.metadata.resource_version.clone();
        }
        match api
            .update_object(stored, ns, &name, part, obj, &params)
            .await
        {
            Ok(out) => {
                let w = out.written();
                if let Format::Table(_) = format {
                    return Ok(render(
                        Some(stored),
                        format,
                        StatusCode::OK,
                        &*w.object,
                        &w.warnings,
                    ));
                }
                let mut v = serde_json::to_value(&*w.object).unwrap_or_default();
                convert_out(api, served, &mut v).await?;
                return Ok(render(
                    Some(served),
                    format,
                    StatusCode::OK,
                    &v,
                    &w.warnings,
                ));
            }
            Err(e) if e.is_conflict() && !asked_rv && attempts < 5 => continue,
            Err(e) => return Err(e),
        }
    }
}
