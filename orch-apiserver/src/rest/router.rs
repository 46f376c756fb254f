//! The HTTP router: Kubernetes paths to the REST operations of [`ApiServer`].
//!
//! Layout, so that other modules plug in without touching the verbs:
//! - [`system_routes`]: `/version`, and `/healthz`, `/livez`, `/readyz` ([`crate::health`]);
//! - [`extension_routes`]: discovery (`/api`, `/apis`, per group version), OpenAPI — add routes
//!   there; static routes win over the resource catch-alls;
//! - `/api/{*path}` and `/apis/{*path}`: [`parse_target`] resolves the resource, then
//!   [`dispatch`] maps (method, collection/object, subresource) to a verb; subresources other
//!   than `status`/`finalize` go to [`super::subresource::handle`].
//!
//! Content negotiation is [`super::negotiate`]; patch types dispatch in
//! [`super::patch::apply_patch`].

use super::delete::Deleted;
use super::negotiate::{self, decode_body, render, response_format, Failure, Format};
use super::update::{Part, UpdateOutcome};
use super::{qualified, Resource, RestResult};
use crate::server::ApiServer;
use axum::body::Body;
use axum::extract::{Request as HttpRequest, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use orch_types::client::{
    DeleteParams, ListParams, PatchParams, PostParams, Preconditions, PropagationPolicy,
    VersionMatch, WatchParams,
};
use orch_types::status::reason;
use orch_types::{ApiError, DynamicObject};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The Kubernetes version reported by `/version` (kubectl picks its bundled 1.33 from it).
pub const KUBE_GIT_VERSION: &str = "v1.33.0";

/// The router with every route.
pub fn router(api: Arc<ApiServer>) -> Router {
    Router::new()
        .merge(system_routes())
        .merge(extension_routes())
        .route("/api/{*path}", any(resource_handler))
        .route("/apis/{*path}", any(resource_handler))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            crate::flowcontrol::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            crate::auth::authn::middleware,
        ))
        .with_state(api)
}

/// `/version`, health endpoints.
pub fn system_routes() -> Router<Arc<ApiServer>> {
    Router::new()
        .route("/version", get(version))
        .route("/version/", get(version))
        .merge(crate::health::routes())
        .route("/metrics", get(crate::flowcontrol::metrics))
}

/// Discovery, OpenAPI and `metrics.k8s.io` routes (owned by the discovery/OpenAPI/metrics
/// modules).
pub fn extension_routes() -> Router<Arc<ApiServer>> {
    Router::new()
        .merge(crate::discovery::routes())
        .merge(crate::openapi::routes())
        .merge(crate::metrics::routes())
}

async fn not_found(req: HttpRequest) -> Response {
    Failure(ApiError::unknown_resource(req.uri().path())).into_response()
}

async fn version() -> Response {
    let v = serde_json::json!({
        "major": "1",
        "minor": "33",
        "gitVersion": KUBE_GIT_VERSION,
        "gitCommit": "orch",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "orch",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    });
    axum::Json(v).into_response()
}

/// What a resource path addresses.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource type.
    pub info: Resource,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Object name (None: the collection).
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, …).
    pub subresource: Option<String>,
}

/// A parsed request, as handlers see it.
#[derive(Debug)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// What the path addresses.
    pub target: Target,
    /// Query parameters (last value wins).
    pub query: HashMap<String, String>,
    /// Headers.
    pub headers: HeaderMap,
    /// The body (at most the configured limit).
    pub body: Bytes,
}

impl Request {
    /// A query parameter.
    pub fn param(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    /// The manager of a write (upstream `managerOrUserAgent`): `fieldManager`, or the
    /// User-Agent up to its first `/`; `None` when neither names one.
    pub fn field_manager(&self) -> Option<String> {
        self.param("fieldManager")
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .or_else(|| {
                let ua = self.headers.get(header::USER_AGENT)?.to_str().ok()?;
                Some(crate::fieldmanager::prefix_from_user_agent(ua)).filter(|m| !m.is_empty())
            })
    }

    fn flag(&self, k: &str) -> bool {
        query_flag(self.param(k))
    }
}

/// A boolean query parameter (`watch`, `allowWatchBookmarks`, `sendInitialEvents`, `force`) as
/// upstream's parameter codec reads it (`Convert_Slice_string_To_bool` and
/// `Convert_Slice_string_To_Pointer_bool`,
/// `staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/conversion.go`): absent, `0`, or `false`
/// in any case is false; any other value, the empty one included (`?watch=`, `?watch=yes`), is
/// true. No value is refused.
pub fn query_flag(value: Option<&str>) -> bool {
    value.is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// An integer query parameter (`limit`, `timeoutSeconds`) as upstream's parameter codec reads
/// it (`Convert_Slice_string_To_int64`, `Convert_Slice_string_To_Pointer_int64`: Go's
/// `strconv.ParseInt`, base 10, 64 bits): absent is `None`; a value that does not parse, the
/// empty one included, is a 400 BadRequest with Go's message, as the list and watch handlers
/// turn the codec's error into one (`staging/src/k8s.io/apiserver/pkg/endpoints/handlers/get.go`
/// `ListResource`).
pub fn query_int(value: Option<&str>) -> RestResult<Option<i64>> {
    let Some(v) = value else { return Ok(None) };
    v.parse().map(Some).map_err(|e: std::num::ParseIntError| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: {why}"))
    })
}

/// Resolves `/api/v1/...` or `/apis/GROUP/VERSION/...` to a resource target: a built-in
/// resource or one that `api`'s CRDs define.
pub fn parse_target(api: &ApiServer, path: &str) -> RestResult<Target> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::unknown_resource(path)),
    };
    let find = |plural: &str| {
        api.lookup(group, version, plural)
            .ok_or_else(|| ApiError::unknown_resource(path))
    };
    let owned = |s: &&str| Some((*s).to_string());
    let t = match rest {
        [plural] => Target {
            info: find(plural)?,
            namespace: None,
            name: None,
            subresource: None,
        },
        ["namespaces", ns, plural]
            if api
                .lookup(group, version, plural)
                .is_some_and(|r| r.namespaced) =>
        {
            Target {
                info: find(plural)?,
                namespace: owned(ns),
                name: None,
                subresource: None,
            }
        }
        ["namespaces", ns, plural, name]
            if api
                .lookup(group, version, plural)
                .is_some_and(|r| r.namespaced) =>
        {
            Target {
                info: find(plural)?,
                namespace: owned(ns),
                name: owned(name),
                subresource: None,
            }
        }
        ["namespaces", ns, plural, name, sub]
            if api
                .lookup(group, version, plural)
                .is_some_and(|r| r.namespaced) =>
        {
            Target {
                info: find(plural)?,
                namespace: owned(ns),
                name: owned(name),
                subresource: owned(sub),
            }
        }
        [plural, name] => Target {
            info: find(plural)?,
            namespace: None,
            name: owned(name),
            subresource: None,
        },
        [plural, name, sub] => Target {
            info: find(plural)?,
            namespace: None,
            name: owned(name),
            subresource: owned(sub),
        },
        _ => return Err(ApiError::unknown_resource(path)),
    };
    if t.info.namespaced && t.namespace.is_none() && t.name.is_some() {
        return Err(ApiError::unknown_resource(&format!(
            "{} is namespaced: use /namespaces/NAMESPACE/{}/{}",
            qualified(t.info),
            t.info.plural,
            t.name.as_deref().unwrap_or("")
        )));
    }
    if let Some(sub) = &t.subresource {
        if t.info.subresource(sub).is_none() {
            return Err(ApiError::unknown_resource(path));
        }
    }
    Ok(t)
}

/// The query parameters of a request, percent-decoded; of a repeated parameter the first value
/// counts, as upstream's parameter codec takes the first (`Convert_Slice_string_To_string` and
/// the like) and Go's `url.Values.Get` does.
pub(crate) fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(pct_decode(k)).or_insert_with(|| pct_decode(v));
    }
    out
}

/// Percent-decodes a query component (`+` is a space).
pub(crate) fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn resource_handler(State(api): State<Arc<ApiServer>>, req: HttpRequest) -> Response {
    match handle(api, req).await {
        Ok(r) => r,
        Err(e) => Failure(e).into_response(),
    }
}

async fn handle(api: Arc<ApiServer>, req: HttpRequest) -> RestResult<Response> {
    let (parts, body) = req.into_parts();
    let mut path = parts.uri.path().to_string();
    let mut query = parse_query(parts.uri.query());
    // Legacy `/api/v1/watch/...` paths.
    for legacy in ["/api/v1/watch/", "/watch/"] {
        if let Some(i) = path.find(legacy) {
            let (head, tail) = path.split_at(i);
            let tail = &tail[legacy.len()..];
            path = format!(
                "{}/{tail}",
                if legacy == "/watch/" {
                    head.to_string()
                } else {
                    "/api/v1".to_string()
                }
            );
            query.insert("watch".into(), "true".into());
            break;
        }
    }
    if let Some(t) = crate::subresources::stream::target(&path) {
        let req = HttpRequest::from_parts(parts, body);
        return crate::subresources::stream::proxy(&api, req, t).await;
    }
    if let Some(backend) = api.aggregated_backend(&path) {
        let body = read_body(body, &parts.headers, api.config.max_body_bytes).await?;
        let pq = parts
            .uri
            .path_and_query()
            .map_or(path.as_str(), |p| p.as_str());
        return Ok(
            crate::aggregator::proxy(&backend, parts.method, pq, &parts.headers, body).await,
        );
    }
    if parts.method == Method::GET {
        if let Some(doc) = crate::discovery::custom_document(
            &path,
            &api.custom_catalog(),
            &api.aggregator.current().resources(),
        ) {
            return Ok(doc);
        }
    }
    let target = parse_target(&api, &path)?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    super::options::check_query(&parts.method, &query, content_type.unwrap_or(""))?;
    let body = read_body(body, &parts.headers, api.config.max_body_bytes).await?;
    let req = Request {
        method: parts.method,
        target,
        query,
        headers: parts.headers,
        body,
    };
    if let Some(stored) = api.storage_of(req.target.info) {
        return super::converted::handle(&api, req, stored).await;
    }
    if let Some(resp) = super::subresource::handle(&api, &req).await {
        return Ok(resp);
    }
    dispatch(&api, req).await
}

/// How much of an oversized request body is read and discarded before the 413 is sent.
const DRAIN_BYTES: usize = 64 << 20;
/// How long reading it may take.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a request body of at most `limit` bytes. An oversized body (by its `Content-Length`
/// or as it arrives) is read on and discarded, up to [`DRAIN_BYTES`] and [`DRAIN_TIME`],
/// before the 413 is answered: a client that writes its whole body before it reads the answer
/// then gets the 413 rather than a broken pipe (Go's `net/http` drains request bodies it did
/// not read the same way, up to a bound).
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> RestResult<Bytes> {
    use http_body_util::BodyExt;
    let too_large = || {
        ApiError::new(
            413,
            reason::REQUEST_ENTITY_TOO_LARGE,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut over = declared.is_some_and(|n| n > limit);
    let mut seen = 0usize;
    let mut deadline = over.then(|| tokio::time::Instant::now() + DRAIN_TIME);
    loop {
        let frame = match deadline {
            // Draining is bounded in time; reading a body that fits is not.
            Some(at) => match tokio::time::timeout_at(at, body.frame()).await {
                Ok(f) => f,
                Err(_) => break,
            },
            None => body.frame().await,
        };
        let Some(Ok(frame)) = frame else { break };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if !over && buf.len() + data.len() > limit {
            over = true;
            buf.clear();
            deadline = Some(tokio::time::Instant::now() + DRAIN_TIME);
        }
        if over {
            if seen > DRAIN_BYTES {
                break;
            }
        } else {
            buf.extend_from_slice(&data);
        }
    }
    if over {
        return Err(too_large());
    }
    Ok(buf.freeze())
}

fn not_allowed(req: &Request) -> ApiError {
    ApiError::new(
        405,
        reason::METHOD_NOT_ALLOWED,
        format!(
            "the server does not allow this method on the requested resource ({} {})",
            req.method,
            qualified(req.target.info)
        ),
    )
}

fn verb_allowed(info: Resource, verb: &str) -> bool {
    info.verbs.contains(&verb)
}

fn list_params(req: &Request) -> RestResult<ListParams> {
    Ok(ListParams {
        label_selector: req.param("labelSelector").map(str::to_string),
        field_selector: req.param("fieldSelector").map(str::to_string),
        // Upstream pages only with a positive limit.
        limit: query_int(req.param("limit"))?
            .filter(|l| *l > 0)
            .map(|l| u32::try_from(l).unwrap_or(u32::MAX)),
        continue_token: req.param("continue").map(str::to_string),
        resource_version: req.param("resourceVersion").map(str::to_string),
        resource_version_match: match req.param("resourceVersionMatch") {
            None | Some("") => None,
            Some("Exact") => Some(VersionMatch::Exact),
            Some("NotOlderThan") => Some(VersionMatch::NotOlderThan),
            Some(o) => {
                return Err(ApiError::bad_request(format!(
                    "invalid resourceVersionMatch {o:?}"
                )))
            }
        },
    })
}

fn watch_params(req: &Request, min_timeout: std::time::Duration) -> RestResult<WatchParams> {
    let mut field_selector = req.param("fieldSelector").map(str::to_string);
    if let Some(name) = &req.target.name {
        let by_name = format!("metadata.name={name}");
        field_selector = Some(match field_selector {
            Some(f) if !f.is_empty() => format!("{f},{by_name}"),
            _ => by_name,
        });
    }
    Ok(WatchParams {
        label_selector: req.param("labelSelector").map(str::to_string),
        field_selector,
        resource_version: req.param("resourceVersion").map(str::to_string),
        allow_bookmarks: req.flag("allowWatchBookmarks"),
        // Upstream (`handlers/get.go` `ListResource`): a negative timeout ends the watch at
        // once; none or zero picks a random one between min-request-timeout and twice that.
        timeout_seconds: match query_int(req.param("timeoutSeconds"))? {
            Some(t) if t < 0 => Some(0),
            Some(t) if t > 0 => Some(u32::try_from(t).unwrap_or(u32::MAX)),
            _ => {
                let min = u32::try_from(min_timeout.as_secs().max(1)).unwrap_or(u32::MAX);
                Some(min.saturating_add(rand::random::<u32>() % min))
            }
        },
        send_initial_events: req.flag("sendInitialEvents"),
    })
}

fn post_params(req: &Request) -> PostParams {
    PostParams {
        dry_run: req.param("dryRun") == Some("All"),
        field_manager: req.field_manager(),
        // Unset means Warn for HTTP requests (upstream default since 1.27).
        field_validation: Some(req.param("fieldValidation").unwrap_or("Warn").to_string()),
    }
}

fn delete_params(req: &Request) -> RestResult<DeleteParams> {
    let mut p = DeleteParams {
        dry_run: req.param("dryRun") == Some("All"),
        ..Default::default()
    };
    let body: Value = if req.body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        decode_body(&req.headers, &req.body)?
    };
    // The body is a DeleteOptions: a value of another shape or a field of the wrong type is
    // a 400, never a delete with the option left out.
    if !body.is_null() {
        serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>(
            body.clone(),
        )
        .map_err(|e| ApiError::bad_request(format!("cannot decode DeleteOptions: {e}")))?;
    }
    let policy = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(req.param("propagationPolicy"));
    p.propagation_policy = match policy {
        None | Some("") => None,
        Some("Background") => Some(PropagationPolicy::Background),
        Some("Foreground") => Some(PropagationPolicy::Foreground),
        Some("Orphan") => Some(PropagationPolicy::Orphan),
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "invalid propagationPolicy {o:?}: must be Background, Foreground or Orphan"
            )))
        }
    };
    let orphan = match body.get("orphanDependents").and_then(Value::as_bool) {
        Some(o) => Some(o),
        None => req.param("orphanDependents").map(parse_bool).transpose()?,
    };
    if let Some(o) = orphan {
        if p.propagation_policy.is_some() {
            return Err(ApiError::bad_request(
                "orphanDependents and propagationPolicy are mutually exclusive",
            ));
        }
        p.propagation_policy = Some(if o {
            PropagationPolicy::Orphan
        } else {
            PropagationPolicy::Background
        });
    }
    p.grace_period_seconds = match body.get("gracePeriodSeconds").and_then(Value::as_i64) {
        Some(g) => Some(g),
        None => req
            .param("gracePeriodSeconds")
            .map(|g| {
                g.parse().map_err(|e: std::num::ParseIntError| {
                    let why = match e.kind() {
                        std::num::IntErrorKind::PosOverflow
                        | std::num::IntErrorKind::NegOverflow => "value out of range",
                        _ => "invalid syntax",
                    };
                    ApiError::bad_request(format!("strconv.ParseInt: parsing {g:?}: {why}"))
                })
            })
            .transpose()?,
    };
    if let Some(pre) = body.get("preconditions") {
        let pre: Preconditions = serde_json::from_value(pre.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid preconditions: {e}")))?;
        p.preconditions = Some(pre);
    }
    if let Some(d) = body.get("dryRun").and_then(Value::as_array) {
        let values: Vec<&str> = d.iter().map(|x| x.as_str().unwrap_or_default()).collect();
        let errs = super::options::dry_run_errors(&values);
        if !errs.is_empty() {
            return Err(super::options::invalid("DeleteOptions", &errs));
        }
        p.dry_run |= !values.is_empty();
    }
    Ok(p)
}

/// A boolean query parameter as upstream's parameter codec reads it (Go `strconv.ParseBool`):
/// anything else is a 400.
fn parse_bool(v: &str) -> RestResult<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "strconv.ParseBool: parsing {v:?}: invalid syntax"
        ))),
    }
}

fn decode_object(req: &Request) -> RestResult<DynamicObject> {
    let v = decode_body(&req.headers, &req.body)?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    DynamicObject::from_value(v).map_err(|e| {
        ApiError::bad_request(format!(
            "cannot decode {} object: {}",
            req.target.info.kind, e.source
        ))
    })
}

/// The JSON of a list response spliced from the items' stored encodings: the same bytes as
/// [`list_body`] serialized, without decoding or re-encoding an item.
fn list_json(
    info: Resource,
    list: &orch_types::client::ObjectList<crate::storage::Encoded>,
) -> Result<Vec<u8>, serde_json::Error> {
    let items: usize = list.items.iter().map(|e| e.len() + 1).sum();
    let mut out = Vec::with_capacity(items + 256);
    out.extend_from_slice(b"{\"kind\":");
    serde_json::to_writer(&mut out, &format!("{}List", info.kind))?;
    out.extend_from_slice(b",\"apiVersion\":");
    serde_json::to_writer(&mut out, &info.api_version())?;
    out.extend_from_slice(b",\"metadata\":");
    serde_json::to_writer(&mut out, &list.metadata)?;
    out.extend_from_slice(b",\"items\":[");
    for (i, e) in list.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e.as_bytes());
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

fn list_body(info: Resource, list: &orch_types::client::ObjectList<Arc<DynamicObject>>) -> Value {
    serde_json::json!({
        "kind": format!("{}List", info.kind),
        "apiVersion": info.api_version(),
        "metadata": list.metadata,
        "items": list.items,
    })
}

/// Maps a parsed request to a REST operation and renders the answer.
pub async fn dispatch(api: &Arc<ApiServer>, req: Request) -> RestResult<Response> {
    let info = req.target.info;
    let format = response_format(&req.headers)?.with_query(req.param("includeObject"));
    let ns = req.target.namespace.as_deref();
    let name = req.target.name.clone();
    let part = Part::from_subresource(req.target.subresource.as_deref())
        .ok_or_else(|| not_allowed(&req))?;
    if part == Part::Finalize && info.kind != "Namespace"
        || part == Part::Approval && !crate::certificates::is_csr(info)
    {
        return Err(not_allowed(&req));
    }
    let is_watch = req.flag("watch");
    match (&req.method, name) {
        (&Method::GET, _) if is_watch => {
            if !verb_allowed(info, "watch") {
                return Err(not_allowed(&req));
            }
            let p = watch_params(&req, api.config.min_request_timeout)?;
            let stream = api.watch_objects(info, ns, &p).await?;
            Ok(watch_response(info, format, stream))
        }
        (&Method::GET, None) => {
            if !verb_allowed(info, "list") {
                return Err(not_allowed(&req));
            }
            let list = api.list_encoded(info, ns, &list_params(&req)?).await?;
            if format == Format::Json {
                let body = list_json(info, &list)
                    .map_err(|_| ApiError::internal("cannot encode response"))?;
                return Ok(negotiate::render_json(StatusCode::OK, body, &[]));
            }
            let list = orch_types::client::ObjectList {
                metadata: list.metadata,
                items: list
                    .items
                    .iter()
                    .map(super::read::decode)
                    .collect::<RestResult<_>>()?,
            };
            Ok(render(
                Some(info),
                format,
                StatusCode::OK,
                &list_body(info, &list),
                &[],
            ))
        }
        (&Method::GET, Some(name)) => {
            if format == Format::Json {
                let e = api.get_encoded(info, ns, &name).await?;
                return Ok(negotiate::render_json(
                    StatusCode::OK,
                    e.as_bytes().to_vec(),
                    &[],
                ));
            }
            let o = api.get_object(info, ns, &name).await?;
            Ok(render(Some(info), format, StatusCode::OK, &*o, &[]))
        }
        (&Method::POST, None) => {
            if !verb_allowed(info, "create") {
                return Err(not_allowed(&req));
            }
            let obj = decode_object(&req)?;
            let w = api.create_object(info, ns, obj, &post_params(&req)).await?;
            Ok(render(
                Some(info),
                format,
                StatusCode::CREATED,
                &*w.object,
                &w.warnings,
            ))
        }
        (&Method::PUT, Some(name)) => {
            if part == Part::Main && !verb_allowed(info, "update") {
                return Err(not_allowed(&req));
            }
            let obj = decode_object(&req)?;
            let out = api
                .update_object(info, ns, &name, part, obj, &post_params(&req))
                .await?;
            Ok(update_response(info, format, out))
        }
        (&Method::PATCH, Some(name)) => {
            if part == Part::Main && !verb_allowed(info, "patch") {
                return Err(not_allowed(&req));
            }
            let ct = req
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = super::patch::PatchType::from_content_type(ct)
                .ok_or_else(|| negotiate::unsupported_media(ct))?;
            let body: Value = match kind {
                super::patch::PatchType::Apply => serde_yaml_ng::from_slice(&req.body)
                    .map_err(|e| ApiError::bad_request(format!("invalid apply patch: {e}")))?,
                _ => serde_json::from_slice(&req.body)
                    .map_err(|e| ApiError::bad_request(format!("invalid patch body: {e}")))?,
            };
            let p = PatchParams {
                dry_run: req.param("dryRun") == Some("All"),
                // Apply needs `fieldManager` itself; other patches default to the User-Agent.
                field_manager: match kind {
                    super::patch::PatchType::Apply => req.param("fieldManager").map(str::to_string),
                    _ => req.field_manager(),
                },
                force: req.flag("force"),
                field_validation: Some(req.param("fieldValidation").unwrap_or("Warn").to_string()),
            };
            let out = api
                .patch_object(info, ns, &name, part, kind, &body, &p)
                .await?;
            Ok(update_response(info, format, out))
        }
        (&Method::DELETE, Some(name)) if part == Part::Main => {
            if !verb_allowed(info, "delete") {
                return Err(not_allowed(&req));
            }
            let p = delete_params(&req)?;
            match api.delete_object(info, ns, &name, &p).await? {
                Deleted::Gone(o) => Ok(render(Some(info), format, StatusCode::OK, &*o, &[])),
                Deleted::Pending(o) => {
                    Ok(render(Some(info), format, StatusCode::ACCEPTED, &*o, &[]))
                }
            }
        }
        (&Method::DELETE, None) => {
            if !verb_allowed(info, "deletecollection") {
                return Err(not_allowed(&req));
            }
            let p = delete_params(&req)?;
            let items = api
                .delete_collection(info, ns, &list_params(&req)?, &p)
                .await?;
            let list = orch_types::client::ObjectList {
                metadata: Default::default(),
                items,
            };
            Ok(render(
                Some(info),
                format,
                StatusCode::OK,
                &list_body(info, &list),
                &[],
            ))
        }
        _ => Err(not_allowed(&req)),
    }
}

fn update_response(info: Resource, format: Format, out: UpdateOutcome) -> Response {
    let code = match out {
        UpdateOutcome::Created(_) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    let w = out.written();
    render(Some(info), format, code, &*w.object, &w.warnings)
}

fn watch_response(info: Resource, format: Format, stream: super::watch::ObjectWatch) -> Response {
    let mut first = true;
    let body = stream.map(move |ev| {
        let mut line = match format {
            // Tables in watch events (`kubectl get -w`): columns in the first event only.
            Format::Table(include) => {
                let v = serde_json::to_value(&ev).unwrap_or_default();
                let t =
                    crate::table::watch_event_for(info, &v, include, jiff::Timestamp::now(), first);
                first = false;
                serde_json::to_vec(&t).unwrap_or_default()
            }
            _ => serde_json::to_vec(&ev).unwrap_or_default(),
        };
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| Failure(ApiError::internal("cannot start watch")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Encoded;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
    use orch_types::client::ObjectList;
    use orch_types::registry;

    #[test]
    fn spliced_list_json_is_the_serialized_list_body() {
        let info = registry::by_kind("v1", "Pod").unwrap();
        let pod = |n: &str| {
            let mut o = DynamicObject::new("v1", "Pod", n);
            o.metadata.resource_version = Some("5".into());
            o.data.insert(
                "spec".into(),
                serde_json::json!({"z": [1, 2.5], "a": "é\"\n"}),
            );
            o
        };
        let metas = [
            ListMeta {
                resource_version: Some("9".into()),
                ..Default::default()
            },
            ListMeta {
                resource_version: Some("9".into()),
                continue_: Some("abc".into()),
                remaining_item_count: Some(3),
                ..Default::default()
            },
        ];
        for metadata in metas {
            for n in 0..3 {
                let objects: Vec<DynamicObject> = (0..n).map(|i| pod(&format!("p{i}"))).collect();
                let encoded = ObjectList {
                    metadata: metadata.clone(),
                    items: objects
                        .iter()
                        .map(|o| Encoded::encode(o).unwrap())
                        .collect(),
                };
                let decoded = ObjectList {
                    metadata: metadata.clone(),
                    items: objects.into_iter().map(Arc::new).collect(),
                };
                assert_eq!(
                    String::from_utf8(list_json(info, &encoded).unwrap()).unwrap(),
                    serde_json::to_string(&list_body(info, &decoded)).unwrap()
                );
            }
        }
    }

    #[test]
    fn query_parameters_parse_as_upstream_parameter_codec() {
        for (value, want) in [
            (None, false),
            (Some("0"), false),
            (Some("false"), false),
            (Some("False"), false),
            (Some("FALSE"), false),
            (Some("fAlSe"), false),
            (Some("1"), true),
            (Some("true"), true),
            (Some("TRUE"), true),
            (Some(""), true),
            (Some("yes"), true),
            (Some("maybe"), true),
            (Some("2"), true),
            (Some("00"), true),
            (Some(" false"), true),
        ] {
            assert_eq!(query_flag(value), want, "{value:?}");
        }
        for (value, want) in [
            (None, Ok(None)),
            (Some("0"), Ok(Some(0))),
            (Some("500"), Ok(Some(500))),
            (Some("+7"), Ok(Some(7))),
            (Some("-1"), Ok(Some(-1))),
            (
                Some(""),
                Err(r#"strconv.ParseInt: parsing "": invalid syntax"#),
            ),
            (
                Some("ten"),
                Err(r#"strconv.ParseInt: parsing "ten": invalid syntax"#),
            ),
            (
                Some("1.5"),
                Err(r#"strconv.ParseInt: parsing "1.5": invalid syntax"#),
            ),
            (
                Some("99999999999999999999"),
                Err(r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#),
            ),
        ] {
            let got = query_int(value).map_err(|e| {
                assert_eq!((e.code, e.reason.as_str()), (400, reason::BAD_REQUEST));
                e.message
            });
            assert_eq!(got, want.map_err(String::from), "{value:?}");
        }
        let q = parse_query(Some("watch=0&watch=1&limit=5"));
        assert_eq!(
            q.get("watch").map(String::as_str),
            Some("0"),
            "the first value counts"
        );
    }

    #[tokio::test]
    async fn boolean_and_integer_parameters_over_http() {
        use crate::test_router::call;
        use tower::ServiceExt;
        let api = ApiServer::new(crate::ApiServerConfig::memory()).expect("server");
        let cms = "/api/v1/namespaces/default/configmaps";
        let cm =
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let (code, _) = call(&api, Method::POST, cms, Some(cm)).await;
        assert_eq!(code, StatusCode::CREATED);
        // Any value but 0/false makes a watch: it streams the ADDED event, then times out.
        for watch in ["yes", "TRUE", ""] {
            let resp = api
                .router()
                .oneshot(
                    axum::http::Request::get(format!("{cms}?watch={watch}&timeoutSeconds=1"))
                        .body(Body::empty())
                        .expect("request"),
                )
                .await
                .expect("answer");
            assert_eq!(resp.status(), StatusCode::OK);
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body");
            let first: Value =
                serde_json::from_slice(body.split(|b| *b == b'\n').next().expect("an event"))
                    .expect("a watch event");
            assert_eq!(first["type"], "ADDED", "watch={watch}");
        }
        let (code, list) = call(&api, Method::GET, &format!("{cms}?watch=False"), None).await;
        assert_eq!(
            (code, list["kind"].as_str()),
            (StatusCode::OK, Some("ConfigMapList"))
        );
        for (query, message) in [
            (
                "limit=abc",
                r#"strconv.ParseInt: parsing "abc": invalid syntax"#,
            ),
            ("limit=", r#"strconv.ParseInt: parsing "": invalid syntax"#),
            (
                "watch=1&timeoutSeconds=soon",
                r#"strconv.ParseInt: parsing "soon": invalid syntax"#,
            ),
        ] {
            let (code, status) = call(&api, Method::GET, &format!("{cms}?{query}"), None).await;
            assert_eq!(code, StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(status["reason"], "BadRequest", "{query}");
            assert_eq!(status["message"], message, "{query}");
        }
        // A limit of zero or less lists everything, as upstream.
        let (code, list) = call(&api, Method::GET, &format!("{cms}?limit=-1"), None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    }
}
