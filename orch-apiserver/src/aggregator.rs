//! API aggregation: `apiregistration.k8s.io/v1` APIServices route a group version to an
//! extension API server (upstream `staging/src/k8s.io/kube-aggregator`).
//!
//! - **Availability** ([`run`]): every API server checks each APIService with a `service`
//!   about once a second: the Service and its Endpoints are read from the watch cache (a
//!   ready address on the port the Service's `port` maps to — upstream's
//!   `--enable-aggregator-routing` mode: orch does not route to ClusterIPs), then the
//!   backend's discovery document `GET /apis/GROUP/VERSION` is fetched over HTTPS, verified
//!   against `caBundle`. The `Available` condition says how that went with upstream's reasons
//!   (`Passed`, `ServiceNotFound`, `ServicePortError`, `MissingEndpoints`,
//!   `FailedDiscoveryCheck`). An available backend is probed again every
//!   [`RECHECK`]; an unavailable one every second.
//! - **Proxy** ([`proxy`]): a request under `/apis/GROUP/VERSION` of an APIService that is not
//!   a built-in or CRD group version is forwarded as is (method, path, query, body, content
//!   headers) to the backend and its answer streamed back (watches included); an unavailable
//!   backend answers 503 `ServiceUnavailable` naming the APIService and why.
//! - **Discovery and OpenAPI**: the resources the backend lists appear in `/apis`,
//!   aggregated discovery and `/apis/GROUP`; its `/openapi/v3/apis/GROUP/VERSION` document, when
//!   it serves one, is published in the v3 index.
//!
//! Not done: `insecureSkipTLSVerify` (refused as unavailable: give a `caBundle`), APIServices
//! without a `service` (the built-in group versions are served locally without them), and the
//! front-proxy identity headers (`X-Remote-User`): orch has no authentication yet.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::{
    APIService, APIServiceCondition,
};
use orch_types::registry::{self, ResourceInfo};
use orch_types::status::reason;
use orch_types::{ApiError, DynamicObject};
use parking_lot::RwLock;
use serde_json::Value;

use crate::rest::update::Part;
use crate::server::ApiServer;
use crate::storage::key;

/// How often an available backend's discovery is fetched again.
pub const RECHECK: Duration = Duration::from_secs(5);
/// How long a discovery or OpenAPI fetch may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting to a backend for a proxied request may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where an available APIService's backend is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Address (an endpoint IP).
    pub host: String,
    /// Port.
    pub port: u16,
    /// PEM CA bundle that signs its serving certificate.
    pub ca_bundle: Vec<u8>,
}

/// One APIService with a backend, as this server last checked it.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The APIService's name (`v1.metrics.example.com`).
    pub name: String,
    /// Group.
    pub group: String,
    /// Version.
    pub version: String,
    /// The backend, or why it is unavailable (reason, message).
    pub state: Result<Endpoint, (String, String)>,
    /// The resources of its discovery document, as entries discovery lists.
    pub resources: Vec<&'static ResourceInfo>,
    /// Its OpenAPI v3 document of the group version: (hash, bytes).
    pub openapi: Option<(String, Vec<u8>)>,
    checked: Instant,
}

/// The APIServices this server routes, by group and version.
#[derive(Debug, Default)]
pub struct Aggregated {
    by_gv: HashMap<(String, String), Arc<Backend>>,
}

impl Aggregated {
    /// The backend of a group version.
    pub fn get(&self, group: &str, version: &str) -> Option<&Arc<Backend>> {
        self.by_gv.get(&(group.to_string(), version.to_string()))
    }

    /// Resources of available backends, for discovery.
    pub fn resources(&self) -> Vec<&'static ResourceInfo> {
        let mut sorted: Vec<&Arc<Backend>> = self.by_gv.values().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        sorted
            .into_iter()
            .filter(|b| b.state.is_ok())
            .flat_map(|b| b.resources.iter().copied())
            .collect()
    }

    /// OpenAPI v3 documents of available backends, by `apis/GROUP/VERSION`.
    pub fn openapi(&self) -> BTreeMap<String, (String, Vec<u8>)> {
        self.by_gv
            .values()
            .filter(|b| b.state.is_ok())
            .filter_map(|b| {
                b.openapi
                    .clone()
                    .map(|d| (format!("apis/{}/{}", b.group, b.version), d))
            })
            .collect()
    }
}

/// What an API server aggregates, swapped whole after each round of checks.
#[derive(Debug, Default)]
pub struct Aggregator {
    current: RwLock<Arc<Aggregated>>,
}

impl Aggregator {
    /// The current state.
    pub fn current(&self) -> Arc<Aggregated> {
        self.current.read().clone()
    }
}

fn api_services(api: &ApiServer) -> Vec<APIService> {
    let p = key::resource_prefix("apiregistration.k8s.io", "apiservices");
    api.cache
        .list(&p, &p)
        .items
        .iter()
        .filter_map(|e| e.decode_as::<APIService>().ok())
        .collect()
}

fn cached(api: &ApiServer, plural: &str, ns: &str, name: &str) -> Option<Value> {
    let p = key::resource_prefix("", plural);
    let k = key::object_key("", plural, Some(ns), name);
    api.cache
        .list(&p, &k)
        .items
        .iter()
        .filter_map(|e| e.decode_as::<Value>().ok())
        .find(|o| o["metadata"]["name"] == name)
}

/// Where the APIService's service sends traffic (upstream `ResolveEndpoint` of the
/// aggregator's routing mode), or why it cannot.
fn resolve(api: &ApiServer, a: &APIService) -> Result<Endpoint, (String, String)> {
    let spec = a.spec.clone().unwrap_or_default();
    let Some(svc_ref) = &spec.service else {
        return Err((
            "Local".into(),
            "Local APIServices are served by this API server".into(),
        ));
    };
    if spec.insecure_skip_tls_verify == Some(true) {
        return Err((
            "FailedDiscoveryCheck".into(),
            "insecureSkipTLSVerify is not supported by orch: give a caBundle".into(),
        ));
    }
    let ns = svc_ref.namespace.as_deref().unwrap_or("");
    let name = svc_ref.name.as_deref().unwrap_or("");
    let port = svc_ref.port.unwrap_or(443);
    let Some(svc) = cached(api, "services", ns, name) else {
        return Err((
            "ServiceNotFound".into(),
            format!("service/{name} in \"{ns}\" is not present"),
        ));
    };
    let Some(svc_port) = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_i64() == Some(i64::from(port)))
    else {
        return Err((
            "ServicePortError".into(),
            format!("service/{name} in \"{ns}\" is not listening on port {port}"),
        ));
    };
    let port_name = svc_port["name"].as_str().unwrap_or("");
    let endpoints = cached(api, "endpoints", ns, name);
    let found = endpoints
        .as_ref()
        .and_then(|e| e["subsets"].as_array())
        .into_iter()
        .flatten()
        .find_map(|subset| {
            let ip = subset["addresses"].as_array()?.first()?["ip"].as_str()?;
            let p = subset["ports"]
                .as_array()?
                .iter()
                .find(|p| p["name"].as_str().unwrap_or("") == port_name)?;
            Some((ip.to_string(), u16::try_from(p["port"].as_i64()?).ok()?))
        });
    let Some((host, port)) = found else {
        return Err((
            "MissingEndpoints".into(),
            format!("endpoints for service/{name} in \"{ns}\" have no addresses with port name \"{port_name}\""),
        ));
    };
    Ok(Endpoint {
        host,
        port,
        ca_bundle: spec.ca_bundle.map(|b| b.0).unwrap_or_default(),
    })
}

/// `GET path` on a backend: (status, body).
async fn get(ep: &Endpoint, path: &str) -> Result<(u16, Bytes), String> {
    let exchange = async {
        let mut sender =
            crate::webhook::client::connect(&ep.host, ep.port, Some(&ep.ca_bundle)).await?;
        let req = http::Request::get(path)
            .header(header::HOST, format!("{}:{}", ep.host, ep.port))
            .header(header::ACCEPT, "application/json")
            .header(header::CONNECTION, "close")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = http_body_util::Limited::new(resp.into_body(), 16 << 20)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .map_err(|_| "context deadline exceeded".to_string())?
}

/// Checks one APIService: its endpoint, then its discovery document.
async fn check(api: &ApiServer, a: &APIService, previous: Option<&Backend>) -> Backend {
    let name = a.metadata.name.clone().unwrap_or_default();
    let spec = a.spec.clone().unwrap_or_default();
    let group = spec.group.unwrap_or_default();
    let version = spec.version.unwrap_or_default();
    let mut b = Backend {
        name,
        group: group.clone(),
        version: version.clone(),
        state: Err((String::new(), String::new())),
        resources: Vec::new(),
        openapi: None,
        checked: Instant::now(),
    };
    let ep = match resolve(api, a) {
        Ok(ep) => ep,
        Err(e) => {
            b.state = Err(e);
            return b;
        }
    };
    // An available backend at the same place is not probed again before RECHECK.
    if let Some(p) = previous {
        if p.state.as_ref().ok() == Some(&ep) && p.checked.elapsed() < RECHECK {
            return p.clone();
        }
    }
    let path = format!("/apis/{group}/{version}");
    let url = format!("https://{}:{}{path}", ep.host, ep.port);
    let doc = match get(&ep, &path).await {
        Ok((200, body)) => serde_json::from_slice::<Value>(&body)
            .map_err(|e| format!("invalid discovery document from {url}: {e}")),
        Ok((code, _)) => Err(format!(
            "failing or missing response from {url}: bad status from {url}: {code}"
        )),
        Err(e) => Err(format!("failing or missing response from {url}: {e}")),
    };
    let doc = match doc {
        Ok(d) => d,
        Err(m) => {
            b.state = Err(("FailedDiscoveryCheck".into(), m));
            return b;
        }
    };
    let entries: Vec<&Value> = doc["resources"].as_array().into_iter().flatten().collect();
    for e in &entries {
        let Some(plural) = e["name"].as_str().filter(|n| !n.contains('/')) else {
            continue;
        };
        let subs: Vec<&str> = entries
            .iter()
            .filter_map(|s| s["name"].as_str()?.strip_prefix(plural)?.strip_prefix('/'))
            .collect();
        if let Some(info) = crate::crd::intern_listed(&group, &version, e, &subs) {
            b.resources.push(info);
        }
    }
    if let Ok((200, body)) = get(&ep, &format!("/openapi/v3/apis/{group}/{version}")).await {
        b.openapi = Some((crate::openapi::etag(&body), body.to_vec()));
    }
    b.state = Ok(ep);
    b
}

/// The `Available` condition a checked backend gets.
fn available(
    b: &Backend,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> APIServiceCondition {
    let (status, reason, message) = match &b.state {
        Ok(_) => (
            "True",
            "Passed".to_string(),
            "all checks passed".to_string(),
        ),
        Err((r, m)) => ("False", r.clone(), m.clone()),
    };
    APIServiceCondition {
        type_: "Available".into(),
        status: status.into(),
        reason: Some(reason),
        message: Some(message),
        last_transition_time: Some(now.clone()),
    }
}

/// Writes the `Available` condition when its status, reason or message changed.
async fn write_status(api: &ApiServer, a: &APIService, b: &Backend) {
    let now = crate::rest::meta::time(api.config.clock.now());
    let mut want = available(b, &now);
    let conds = a
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if let Some(old) = conds.iter().find(|c| c.type_ == "Available") {
        if old.status == want.status && old.reason == want.reason && old.message == want.message {
            return;
        }
        if old.status == want.status {
            want.last_transition_time = old.last_transition_time.clone();
        }
    }
    let mut updated = a.clone();
    let mut conds: Vec<APIServiceCondition> = conds
        .into_iter()
        .filter(|c| c.type_ != "Available")
        .collect();
    conds.push(want);
    updated
        .status
        .get_or_insert_with(Default::default)
        .conditions = Some(conds);
    let Ok(obj) = DynamicObject::from_typed(&updated) else {
        return;
    };
    let Some(info) = registry::by_kind("apiregistration.k8s.io/v1", "APIService") else {
        return;
    };
    let name = a.metadata.name.as_deref().unwrap_or_default();
    if let Err(e) = api
        .update_object(info, None, name, Part::Status, obj, &Default::default())
        .await
    {
        if !e.is_conflict() && !e.is_not_found() {
            tracing::warn!(apiservice = name, error = %e, "updating the APIService status failed");
        }
    }
}

/// Checks every APIService about once a second until the server is dropped.
pub(crate) async fn run(api: Weak<ApiServer>) {
    loop {
        {
            let Some(a) = api.upgrade() else { return };
            let previous = a.aggregator.current();
            let mut next = Aggregated::default();
            for svc in api_services(&a) {
                if svc.spec.as_ref().is_none_or(|s| s.service.is_none()) {
                    continue;
                }
                let spec = svc.spec.clone().unwrap_or_default();
                let gv = (
                    spec.group.unwrap_or_default(),
                    spec.version.unwrap_or_default(),
                );
                // Built-in group versions are served here, whatever an APIService says.
                if registry::group_versions().contains(&(gv.0.as_str(), gv.1.as_str())) {
                    continue;
                }
                let b = check(&a, &svc, previous.by_gv.get(&gv).map(Arc::as_ref)).await;
                write_status(&a, &svc, &b).await;
                next.by_gv.insert(gv, Arc::new(b));
            }
            *a.aggregator.current.write() = Arc::new(next);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The aggregated group version a request path addresses (`/apis/GROUP/VERSION[/…]`).
fn group_version(path: &str) -> Option<(&str, &str)> {
    let mut segs = path.trim_start_matches('/').split('/');
    match (segs.next(), segs.next(), segs.next()) {
        (Some("apis"), Some(g), Some(v)) if !g.is_empty() && !v.is_empty() => Some((g, v)),
        _ => None,
    }
}

impl ApiServer {
    /// The backend of the aggregated group version `path` addresses, if any.
    pub fn aggregated_backend(&self, path: &str) -> Option<Arc<Backend>> {
        // `run` never adds a built-in group version.
        let (g, v) = group_version(path)?;
        self.aggregator.current().get(g, v).cloned()
    }
}

fn unavailable(b: &Backend, why: &str) -> ApiError {
    ApiError::new(
        503,
        reason::SERVICE_UNAVAILABLE,
        format!(
            "the server is currently unable to handle the request (APIService {} is not available: {why})",
            b.name
        ),
    )
}

/// Forwards a request to an aggregated API server and streams its answer back.
pub async fn proxy(
    b: &Backend,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let ep = match &b.state {
        Ok(ep) => ep.clone(),
        Err((_, m)) => return crate::rest::negotiate::Failure(unavailable(b, m)).into_response(),
    };
    let connected = tokio::time::timeout(
        CONNECT_TIMEOUT,
        crate::webhook::client::connect(&ep.host, ep.port, Some(&ep.ca_bundle)),
    )
    .await
    .map_err(|_| "connect timed out".to_string())
    .and_then(|r| r);
    let mut sender = match connected {
        Ok(s) => s,
        Err(e) => return crate::rest::negotiate::Failure(unavailable(b, &e)).into_response(),
    };
    let mut req = http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(header::HOST, format!("{}:{}", ep.host, ep.port));
    for h in [
        header::ACCEPT,
        header::CONTENT_TYPE,
        header::USER_AGENT,
        header::ACCEPT_ENCODING,
    ] {
        if let Some(v) = headers.get(&h) {
            req = req.header(h, v.clone());
        }
    }
    let req = match req.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => {
            return crate::rest::negotiate::Failure(ApiError::bad_request(e.to_string()))
                .into_response()
        }
    };
    match sender.send_request(req).await {
        Ok(resp) => {
            let (parts, incoming) = resp.into_parts();
            let mut out = Response::builder().status(parts.status);
            for (k, v) in &parts.headers {
                if k != header::CONNECTION && k != header::TRANSFER_ENCODING {
                    out = out.header(k, v);
                }
            }
            out.body(Body::new(incoming))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => crate::rest::negotiate::Failure(unavailable(b, &e.to_string())).into_response(),
    }
}

#[cfg(test)]
mod tests;
