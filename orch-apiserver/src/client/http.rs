//! [`HttpClient`]: a [`Client`] over HTTP or HTTPS for orch or any Kubernetes API server (bearer
//! tokens, client certificates and the CA from a kubeconfig, rustls on ring).
//!
//! Watches stream newline-delimited JSON; when the server ends a watch the client did not bound
//! with `timeoutSeconds`, it reconnects from the last resourceVersion it delivered (bookmarks
//! included). A `410 Gone` on reconnect is delivered as a `WatchEvent::Error` and ends the stream:
//! the caller relists (as informers do) and watches from the new list's resourceVersion.

use crate::kubeconfig::{read_endpoint, Endpoint, KubeconfigError};
use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, Status};
use orch_types::client::{
    Client, ClientError, DeleteOutcome, DeleteParams, DiscoveredResource, ListParams, LogParams,
    ObjectList, Patch, PatchParams, PostParams, PropagationPolicy, Result, VersionMatch,
    WatchEvent, WatchParams, WatchStream,
};
use orch_types::registry::ApiResource;
use orch_types::{ApiError, DynamicObject};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::VecDeque;

/// An HTTP client of a Kubernetes API.
#[derive(Debug, Clone)]
pub struct HttpClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

fn transport(e: reqwest::Error) -> ClientError {
    ClientError::Transport(e.to_string())
}

fn decode_err(e: impl std::fmt::Display) -> ClientError {
    ClientError::Decode(e.to_string())
}

impl HttpClient {
    /// A client of the plain-HTTP server at `url` (e.g. `http://127.0.0.1:6443`) without
    /// credentials; see [`HttpClient::from_endpoint`] for HTTPS.
    pub fn new(url: &str) -> Self {
        Self {
            base: url.trim_end_matches('/').to_string(),
            token: None,
            http: crate::tls::reqwest_client(Self::builder(), None).unwrap_or_default(),
        }
    }

    fn builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder().pool_max_idle_per_host(64)
    }

    /// A client of `ep`: HTTPS verifying the server against its CA and presenting its client
    /// certificate, and its bearer token.
    pub fn from_endpoint(ep: &Endpoint) -> Result<Self, crate::tls::TlsError> {
        let tls = ep.tls_config()?;
        let http = crate::tls::reqwest_client(Self::builder(), tls)
            .map_err(|e| crate::tls::TlsError::Client(e.to_string()))?;
        Ok(Self {
            base: ep.server.trim_end_matches('/').to_string(),
            token: ep.token.clone(),
            http,
        })
    }

    /// A client of `ep` presenting the client certificate `resolver` holds at each new
    /// connection instead of the endpoint's own (a certificate renewed while the client runs);
    /// `ep` must be `https://`.
    pub fn from_endpoint_resolving(
        ep: &Endpoint,
        resolver: std::sync::Arc<dyn rustls::client::ResolvesClientCert>,
    ) -> Result<Self, crate::tls::TlsError> {
        let trust = ep
            .trust()?
            .ok_or_else(|| crate::tls::TlsError::Client(format!("{} is not https", ep.server)))?;
        let tls = crate::tls::client_config_resolving(&trust, resolver)?;
        let http = crate::tls::reqwest_client(Self::builder(), Some(tls))
            .map_err(|e| crate::tls::TlsError::Client(e.to_string()))?;
        Ok(Self {
            base: ep.server.trim_end_matches('/').to_string(),
            token: ep.token.clone(),
            http,
        })
    }

    /// A client of the current context of a kubeconfig file.
    pub fn from_kubeconfig(path: impl AsRef<std::path::Path>) -> Result<Self, KubeconfigError> {
        let path = path.as_ref();
        let ep = read_endpoint(path)?;
        Self::from_endpoint(&ep).map_err(|source| KubeconfigError::Tls {
            path: path.display().to_string(),
            source,
        })
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Accept", "application/json");
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<(StatusCode, bytes::Bytes)> {
        let resp = r.send().await.map_err(transport)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            Ok((status, body))
        } else {
            Err(error_from(status, &body))
        }
    }

    async fn object(&self, r: reqwest::RequestBuilder) -> Result<DynamicObject> {
        let (_, body) = self.send(r).await?;
        serde_json::from_slice(&body).map_err(decode_err)
    }

    /// POST or PUT `obj` as JSON to `path` with the write query parameters.
    async fn write(
        &self,
        method: Method,
        path: &str,
        obj: &DynamicObject,
        p: &PostParams,
    ) -> Result<DynamicObject> {
        self.object(self.request(method, path).query(&post_query(p)).json(obj))
            .await
    }

    /// GET a path with an `Accept` header of the caller's, as JSON.
    async fn get_json_accept(&self, path: &str, accept: &str) -> Result<Value> {
        let mut r = self
            .http
            .request(Method::GET, format!("{}{path}", self.base))
            .header("Accept", accept);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        let (_, body) = self.send(r).await?;
        serde_json::from_slice(&body).map_err(decode_err)
    }

    /// GET a path and return the JSON body (discovery, `/version`, …).
    pub async fn get_json(&self, path: &str) -> Result<Value> {
        let (_, body) = self.send(self.request(Method::GET, path)).await?;
        serde_json::from_slice(&body).map_err(decode_err)
    }
}

/// The `ApiError` of a non-2xx answer (a `Status` body, or the code alone).
fn error_from(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<Status>(body) {
        Ok(s) if s.code.is_some() || s.reason.is_some() => {
            let mut e = ApiError::from_status(&s);
            e.code = status.as_u16();
            ClientError::Api(e)
        }
        _ => ClientError::Api(ApiError::new(
            status.as_u16(),
            status.canonical_reason().unwrap_or("Unknown"),
            String::from_utf8_lossy(body)
                .chars()
                .take(512)
                .collect::<String>(),
        )),
    }
}

fn post_query(p: &PostParams) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if p.dry_run {
        q.push(("dryRun", "All".to_string()));
    }
    if let Some(m) = &p.field_manager {
        q.push(("fieldManager", m.clone()));
    }
    if let Some(v) = &p.field_validation {
        q.push(("fieldValidation", v.clone()));
    }
    q
}

fn ns_of<'a>(ns: Option<&'a str>, obj: &'a DynamicObject) -> Option<&'a str> {
    ns.or(obj.namespace())
}

fn watch_query(p: &WatchParams, rv: Option<&str>) -> Vec<(&'static str, String)> {
    let mut q = vec![("watch", "true".to_string())];
    if let Some(l) = &p.label_selector {
        q.push(("labelSelector", l.clone()));
    }
    if let Some(f) = &p.field_selector {
        q.push(("fieldSelector", f.clone()));
    }
    if let Some(rv) = rv {
        q.push(("resourceVersion", rv.to_string()));
    }
    if p.allow_bookmarks {
        q.push(("allowWatchBookmarks", "true".into()));
    }
    if let Some(t) = p.timeout_seconds {
        q.push(("timeoutSeconds", t.to_string()));
    }
    if p.send_initial_events {
        q.push(("sendInitialEvents", "true".into()));
        q.push(("resourceVersionMatch", "NotOlderThan".into()));
    }
    q
}

struct WatchState {
    client: HttpClient,
    path: String,
    params: WatchParams,
    last_rv: Option<String>,
    body: Option<futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    buf: BytesMut,
    pending: VecDeque<Result<WatchEvent<DynamicObject>>>,
    done: bool,
    first: bool,
}

impl WatchState {
    async fn connect(&mut self) -> Result<()> {
        let rv = if self.first {
            self.params.resource_version.clone()
        } else {
            self.last_rv.clone()
        };
        let mut params = self.params.clone();
        if !self.first {
            // Reconnects resume from where we were; no second initial state.
            params.send_initial_events = false;
        }
        self.first = false;
        let r = self
            .client
            .request(Method::GET, &self.path)
            .query(&watch_query(&params, rv.as_deref()));
        let resp = r.send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.map_err(transport)?;
            return Err(error_from(status, &body));
        }
        self.body = Some(resp.bytes_stream().boxed());
        Ok(())
    }

    fn take_lines(&mut self) {
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line = self.buf.split_to(i + 1);
            let line = &line[..i];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let ev = serde_json::from_slice::<WatchEvent<DynamicObject>>(line).map_err(decode_err);
            if let Ok(ev) = &ev {
                match ev {
                    WatchEvent::Added(o)
                    | WatchEvent::Modified(o)
                    | WatchEvent::Deleted(o)
                    | WatchEvent::Bookmark(o) => {
                        if let Some(rv) = o.resource_version() {
                            self.last_rv = Some(rv.to_string());
                        }
                    }
                    WatchEvent::Error(_) => self.done = true,
                }
            }
            self.pending.push_back(ev);
        }
    }
}

async fn next_event(mut st: WatchState) -> Option<(Result<WatchEvent<DynamicObject>>, WatchState)> {
    loop {
        if let Some(ev) = st.pending.pop_front() {
            return Some((ev, st));
        }
        if st.done {
            return None;
        }
        if st.body.is_none() {
            if let Err(e) = st.connect().await {
                st.done = true;
                return Some((
                    match e {
                        ClientError::Api(a) => Ok(WatchEvent::Error(a.to_status())),
                        other => Err(other),
                    },
                    st,
                ));
            }
        }
        let chunk = match st.body.as_mut() {
            Some(b) => b.next().await,
            None => None,
        };
        match chunk {
            Some(Ok(bytes)) => {
                st.buf.extend_from_slice(bytes.chunk());
                st.take_lines();
            }
            Some(Err(e)) => {
                st.done = true;
                return Some((Err(transport(e)), st));
            }
            None => {
                // Server ended the watch: done if the caller bounded it, else resume.
                st.body = None;
                if st.params.timeout_seconds.is_some() || st.last_rv.is_none() {
                    return None;
                }
            }
        }
    }
}

#[async_trait]
impl Client for HttpClient {
    /// Aggregated discovery (`/api` and `/apis`), or legacy discovery from a server without
    /// it; one version of each resource ([`super::discover`]).
    async fn discover(&self) -> Result<Vec<DiscoveredResource>> {
        use super::discover as d;
        let core = self.get_json_accept("/api", d::ACCEPT).await?;
        let named = self.get_json_accept("/apis", d::ACCEPT).await?;
        let mut entries = Vec::new();
        if d::is_aggregated(&core) && d::is_aggregated(&named) {
            d::aggregated_entries(&core, &mut entries);
            d::aggregated_entries(&named, &mut entries);
        } else {
            let list = self.get_json("/api/v1").await?;
            d::legacy_entries("", "v1", &list, &mut entries);
            for (g, v) in d::legacy_group_versions(&named) {
                match self.get_json(&format!("/apis/{g}/{v}")).await {
                    Ok(list) => d::legacy_entries(&g, &v, &list, &mut entries),
                    // A group version that went away between the two requests.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(d::preferred(entries))
    }

    async fn get(&self, r: &ApiResource, ns: Option<&str>, name: &str) -> Result<DynamicObject> {
        self.object(self.request(Method::GET, &r.object_path(ns, name)))
            .await
    }

    async fn list(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        p: &ListParams,
    ) -> Result<ObjectList<DynamicObject>> {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(l) = &p.label_selector {
            q.push(("labelSelector", l.clone()));
        }
        if let Some(f) = &p.field_selector {
            q.push(("fieldSelector", f.clone()));
        }
        if let Some(l) = p.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(c) = &p.continue_token {
            q.push(("continue", c.clone()));
        }
        if let Some(rv) = &p.resource_version {
            q.push(("resourceVersion", rv.clone()));
        }
        if let Some(m) = p.resource_version_match {
            q.push((
                "resourceVersionMatch",
                match m {
                    VersionMatch::Exact => "Exact",
                    VersionMatch::NotOlderThan => "NotOlderThan",
                }
                .into(),
            ));
        }
        let (_, body) = self
            .send(self.request(Method::GET, &r.collection_path(ns)).query(&q))
            .await?;
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            metadata: ListMeta,
            #[serde(default)]
            items: Vec<DynamicObject>,
        }
        let l: List = serde_json::from_slice(&body).map_err(decode_err)?;
        let (group, version) = (r.group.as_ref(), r.version.as_ref());
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let items = l
            .items
            .into_iter()
            .map(|mut o| {
                // Items of typed lists come without apiVersion/kind.
                if o.types.kind.is_empty() {
                    o.types.kind = r.kind.to_string();
                    o.types.api_version = api_version.clone();
                }
                o
            })
            .collect();
        Ok(ObjectList {
            metadata: l.metadata,
            items,
        })
    }

    async fn create(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        obj: &DynamicObject,
        p: &PostParams,
    ) -> Result<DynamicObject> {
        let path = r.collection_path(ns_of(ns, obj));
        self.write(Method::POST, &path, obj, p).await
    }

    async fn update(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        obj: &DynamicObject,
        p: &PostParams,
    ) -> Result<DynamicObject> {
        let path = r.object_path(ns_of(ns, obj), obj.name());
        self.write(Method::PUT, &path, obj, p).await
    }

    async fn update_status(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        obj: &DynamicObject,
        p: &PostParams,
    ) -> Result<DynamicObject> {
        let path = format!("{}/status", r.object_path(ns_of(ns, obj), obj.name()));
        self.write(Method::PUT, &path, obj, p).await
    }

    async fn patch(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        patch: &Patch,
        p: &PatchParams,
    ) -> Result<DynamicObject> {
        let mut path = r.object_path(ns, name);
        if let Some(s) = subresource {
            path = format!("{path}/{s}");
        }
        let mut q = Vec::new();
        if p.dry_run {
            q.push(("dryRun", "All".to_string()));
        }
        if let Some(m) = &p.field_manager {
            q.push(("fieldManager", m.clone()));
        }
        if p.force {
            q.push(("force", "true".into()));
        }
        if let Some(v) = &p.field_validation {
            q.push(("fieldValidation", v.clone()));
        }
        let body = serde_json::to_vec(patch.body()).map_err(decode_err)?;
        self.object(
            self.request(Method::PATCH, &path)
                .query(&q)
                .header("Content-Type", patch.content_type())
                .body(body),
        )
        .await
    }

    async fn delete(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        name: &str,
        p: &DeleteParams,
    ) -> Result<DeleteOutcome> {
        let mut opts = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
        if let Some(pp) = p.propagation_policy {
            opts["propagationPolicy"] = json!(match pp {
                PropagationPolicy::Background => "Background",
                PropagationPolicy::Foreground => "Foreground",
                PropagationPolicy::Orphan => "Orphan",
            });
        }
        if let Some(g) = p.grace_period_seconds {
            opts["gracePeriodSeconds"] = json!(g);
        }
        if let Some(pre) = &p.preconditions {
            opts["preconditions"] = serde_json::to_value(pre).map_err(decode_err)?;
        }
        if p.dry_run {
            opts["dryRun"] = json!(["All"]);
        }
        let (status, body) = self
            .send(
                self.request(Method::DELETE, &r.object_path(ns, name))
                    .json(&opts),
            )
            .await?;
        let v: Value = serde_json::from_slice(&body).map_err(decode_err)?;
        let obj = if v.get("kind").and_then(Value::as_str) == Some("Status") {
            let mut o = DynamicObject::new(&r.api_version(), &r.kind, name);
            o.metadata.namespace = ns.map(str::to_string);
            o
        } else {
            DynamicObject::from_value(v)?
        };
        let pending = status == StatusCode::ACCEPTED
            || (obj.metadata.deletion_timestamp.is_some()
                && obj
                    .metadata
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| !f.is_empty()));
        Ok(if pending {
            DeleteOutcome::Pending(obj)
        } else {
            DeleteOutcome::Deleted(obj)
        })
    }

    async fn create_subresource(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        name: &str,
        subresource: &str,
        body: &DynamicObject,
    ) -> Result<DynamicObject> {
        let path = format!("{}/{subresource}", r.object_path(ns, name));
        self.object(self.request(Method::POST, &path).json(body))
            .await
    }

    async fn watch(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        p: &WatchParams,
    ) -> Result<WatchStream<DynamicObject>> {
        let mut st = WatchState {
            client: self.clone(),
            path: r.collection_path(ns),
            params: p.clone(),
            last_rv: p
                .resource_version
                .clone()
                .filter(|s| !s.is_empty() && s != "0"),
            body: None,
            buf: BytesMut::new(),
            pending: VecDeque::new(),
            done: false,
            first: true,
        };
        // Connect now so that request errors (400, 404, 410) surface from `watch` itself.
        st.connect().await?;
        Ok(futures::stream::unfold(st, next_event).boxed())
    }

    async fn logs(&self, ns: &str, pod: &str, p: &LogParams) -> Result<Vec<u8>> {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(c) = &p.container {
            q.push(("container", c.clone()));
        }
        if let Some(t) = p.tail_lines {
            q.push(("tailLines", t.to_string()));
        }
        if p.previous {
            q.push(("previous", "true".into()));
        }
        if p.timestamps {
            q.push(("timestamps", "true".into()));
        }
        if let Some(s) = p.since_seconds {
            q.push(("sinceSeconds", s.to_string()));
        }
        if let Some(l) = p.limit_bytes {
            q.push(("limitBytes", l.to_string()));
        }
        let path = format!("/api/v1/namespaces/{ns}/pods/{pod}/log");
        let (_, body) = self
            .send(self.request(Method::GET, &path).query(&q))
            .await?;
        Ok(body.to_vec())
    }
}
