//! API discovery: `/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`, and aggregated discovery.
//!
//! Everything is built from [`orch_types::registry::BUILTIN`], the custom resources the server's
//! CRDs define ([`crate::crd::Catalog`]), and the storage-less groups
//! the API server answers itself, which are not kinds of the registry: [`crate::metrics`]
//! (`metrics.k8s.io`, see [`all_resources`]). Legacy documents are
//! `APIVersions`, `APIGroupList` and `APIResourceList` (subresources appear as `pods/eviction`
//! with their own group, version and kind, which `kubectl drain` relies on). When the `Accept`
//! header asks for `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList` (or
//! `v2beta1`), `/api` and `/apis` answer with the aggregated `APIGroupDiscoveryList` and that
//! exact content type, so kubectl discovers everything in two requests
//! (upstream `staging/src/k8s.io/apiserver/pkg/endpoints/discovery/aggregated/handler.go`).
//!
//! ```
//! use orch_apiserver::discovery;
//! let list = discovery::resource_list("apps", "v1", None).unwrap();
//! assert!(list["resources"].as_array().unwrap().iter().any(|r| r["name"] == "deployments/scale"));
//! let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
//! assert_eq!(discovery::negotiate(accept), discovery::Format::Aggregated("v2"));
//! ```

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

use crate::crd::Catalog;
use crate::server::ApiServer;
use axum::extract::State;
use orch_types::registry::{self, ResourceInfo};
use serde_json::{json, Value};

/// The representation a discovery request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `APIVersions` / `APIGroupList` / `APIResourceList`.
    Legacy,
    /// `APIGroupDiscoveryList` of `apidiscovery.k8s.io` at this version (`v2` or `v2beta1`).
    Aggregated(&'static str),
}

/// Picks the first acceptable entry of an `Accept` header (protobuf entries are skipped).
pub fn negotiate(accept: &str) -> Format {
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut g, mut v, mut as_) = ("", "", "");
        for p in parts {
            match p.split_once('=') {
                Some(("g", x)) => g = x,
                Some(("v", x)) => v = x,
                Some(("as", x)) => as_ = x,
                _ => {}
            }
        }
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        if as_.is_empty() {
            return Format::Legacy;
        }
        if as_ == "APIGroupDiscoveryList" && g == "apidiscovery.k8s.io" {
            match v {
                "v2" => return Format::Aggregated("v2"),
                "v2beta1" => return Format::Aggregated("v2beta1"),
                _ => {}
            }
        }
    }
    Format::Legacy
}

/// The content type of an aggregated discovery answer.
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// Every resource discovery lists: the registry's built-in kinds, then the read-only
/// `metrics.k8s.io` resources ([`crate::metrics::RESOURCES`]), which have no storage and are
/// answered by their own routes. Keeping them out of the registry keeps the generic REST
/// handlers, watch cache and OpenAPI from treating them as stored kinds.
pub fn all_resources() -> impl Iterator<Item = &'static ResourceInfo> {
    registry::BUILTIN
        .iter()
        .chain(registry::CONVERTED)
        .chain(crate::metrics::RESOURCES.iter())
}

/// What discovery lists: the built-in resources and the custom ones of a [`Catalog`].
struct View<'a> {
    resources: Vec<&'static ResourceInfo>,
    custom: Option<&'a Catalog>,
}

impl<'a> View<'a> {
    fn new(custom: Option<&'a Catalog>) -> Self {
        Self::with(custom, &[])
    }

    /// Built-in and custom resources, then those of aggregated API servers.
    fn with(custom: Option<&'a Catalog>, aggregated: &[&'static ResourceInfo]) -> Self {
        let mut resources: Vec<&'static ResourceInfo> = all_resources().collect();
        if let Some(c) = custom {
            resources.extend(c.resources().iter().map(|r| r.info));
        }
        resources.extend(aggregated.iter().copied());
        Self { resources, custom }
    }

    /// The (group, version) pairs, in order of first appearance.
    fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for r in &self.resources {
            if !out.contains(&(r.group, r.version)) {
                out.push((r.group, r.version));
            }
        }
        out
    }

    fn served_groups(&self) -> Vec<&'static str> {
        let mut out: Vec<&str> = Vec::new();
        for (g, _) in self.group_versions() {
            if !g.is_empty() && !out.contains(&g) {
                out.push(g);
            }
        }
        out
    }

    fn versions_of(&self, group: &str) -> Vec<&'static str> {
        self.group_versions()
            .into_iter()
            .filter(|(g, _)| *g == group)
            .map(|(_, v)| v)
            .collect()
    }

    fn resources_of<'b>(
        &'b self,
        group: &'b str,
        version: &'b str,
    ) -> impl Iterator<Item = &'static ResourceInfo> + 'b {
        self.resources
            .iter()
            .copied()
            .filter(move |r| r.group == group && r.version == version)
    }

    /// The resource whose storage version `r` is stored in.
    fn stored(&self, r: &'static ResourceInfo) -> &'static ResourceInfo {
        if let Some(s) = registry::storage_of(r) {
            return s;
        }
        self.custom
            .and_then(|c| c.get(r.group, r.version, r.plural))
            .map_or(r, |c| c.storage)
    }

    fn group_entry(&self, group: &str) -> Value {
        let versions: Vec<Value> = self
            .versions_of(group)
            .into_iter()
            .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
            .collect();
        let preferred = versions.first().cloned().unwrap_or(Value::Null);
        json!({"name": group, "versions": versions, "preferredVersion": preferred})
    }

    fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .served_groups()
            .into_iter()
            .map(|g| self.group_entry(g))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    fn api_group(&self, group: &str) -> Option<Value> {
        if group.is_empty() || self.versions_of(group).is_empty() {
            return None;
        }
        let mut g = self.group_entry(group);
        if let Some(m) = g.as_object_mut() {
            m.insert("kind".into(), "APIGroup".into());
            m.insert("apiVersion".into(), "v1".into());
        }
        Some(g)
    }

    fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let mut resources = Vec::new();
        for r in self.resources_of(group, version) {
            let mut e = json!({
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": r.verbs,
            });
            if !r.short_names.is_empty() {
                e["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                e["categories"] = json!(r.categories);
            }
            let stored = self.stored(r);
            e["storageVersionHash"] =
                storage_version_hash(stored.group, stored.version, stored.kind).into();
            resources.push(e);
            for s in r.subresources {
                resources.push(json!({
                    "name": format!("{}/{}", r.plural, s.name),
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "group": s.group,
                    "version": s.version,
                    "kind": s.kind,
                    "verbs": s.verbs,
                }));
            }
        }
        if resources.is_empty() {
            return None;
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }))
    }

    fn discovery_group(&self, group: &str) -> Value {
        let versions: Vec<Value> = self
            .versions_of(group)
            .into_iter()
            .map(|v| {
                let resources: Vec<Value> = self
                    .resources_of(group, v)
                    .map(discovery_resource)
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        let metadata = if group.is_empty() {
            json!({"creationTimestamp": null})
        } else {
            json!({"name": group, "creationTimestamp": null})
        };
        json!({"metadata": metadata, "versions": versions})
    }

    fn aggregated(&self, legacy: bool, version: &str) -> Value {
        let items: Vec<Value> = if legacy {
            vec![self.discovery_group("")]
        } else {
            self.served_groups()
                .into_iter()
                .map(|g| self.discovery_group(g))
                .collect()
        };
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": format!("apidiscovery.k8s.io/{version}"),
            "metadata": {},
            "items": items,
        })
    }
}

/// `GET /api`: `APIVersions`.
pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    })
}

/// `GET /apis`: `APIGroupList` (custom groups of `custom` after the built-in ones).
pub fn api_group_list(custom: Option<&Catalog>) -> Value {
    View::new(custom).api_group_list()
}

/// `GET /apis/GROUP`: `APIGroup`, or `None` if the group is not served.
pub fn api_group(group: &str, custom: Option<&Catalog>) -> Option<Value> {
    View::new(custom).api_group(group)
}

/// `GET /api/v1` or `/apis/GROUP/VERSION`: `APIResourceList`, or `None` if not served.
pub fn resource_list(group: &str, version: &str, custom: Option<&Catalog>) -> Option<Value> {
    View::new(custom).resource_list(group, version)
}

/// The opaque hash of a resource's storage version that discovery publishes, so clients (the
/// storage version migrator) notice when it changes: base64 of the first 8 bytes of the
/// SHA-256 of `group/version/kind` (upstream `apiserver/pkg/endpoints/discovery`,
/// `StorageVersionHash`), of the version the resource is stored in.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    use base64::Engine;
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{group}/{version}/{kind}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
}

fn discovery_resource(r: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            json!({
                "subresource": s.name,
                "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                "verbs": s.verbs,
            })
        })
        .collect();
    let mut e = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        e["subresources"] = json!(subresources);
    }
    e
}

/// Aggregated discovery: `APIGroupDiscoveryList` of the core group (`legacy = true`, for
/// `/api`) or of every named group (for `/apis`), at `apidiscovery.k8s.io/<version>`.
pub fn aggregated(legacy: bool, version: &str, custom: Option<&Catalog>) -> Value {
    View::new(custom).aggregated(legacy, version)
}

fn json_response(content_type: &str, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::VARY, "Accept".to_string()),
        ],
        body,
    )
        .into_response()
}

fn root(headers: &HeaderMap, legacy: bool, api: &ApiServer) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let custom = api.custom_catalog();
    let aggregated = api.aggregator.current().resources();
    let view = View::with(Some(&custom), &aggregated);
    match negotiate(accept) {
        Format::Aggregated(v) => {
            json_response(&aggregated_content_type(v), &view.aggregated(legacy, v))
        }
        Format::Legacy if legacy => json_response("application/json", &api_versions()),
        Format::Legacy => json_response("application/json", &view.api_group_list()),
    }
}

/// The discovery document of a custom or aggregated group (`/apis/GROUP`) or of a custom
/// group version (`/apis/GROUP/VERSION`) that `custom` serves; `None` for any other path.
/// Built-in ones have static routes ([`routes`]); an aggregated group version's own document
/// comes from its server.
pub fn custom_document(
    path: &str,
    custom: &Catalog,
    aggregated: &[&'static ResourceInfo],
) -> Option<Response> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let view = View::with(Some(custom), aggregated);
    let doc = match segs.as_slice() {
        ["apis", g] => view.api_group(g)?,
        ["apis", g, v] => view.resource_list(g, v)?,
        _ => return None,
    };
    Some(json_response("application/json", &doc))
}

/// Routes for every discovery path (static paths, so they win over the resource catch-alls);
/// the root documents list the server's custom resources too.
pub fn routes() -> Router<Arc<ApiServer>> {
    let core =
        |State(api): State<Arc<ApiServer>>, h: HeaderMap| async move { root(&h, true, &api) };
    let named =
        |State(api): State<Arc<ApiServer>>, h: HeaderMap| async move { root(&h, false, &api) };
    let mut r = Router::new()
        .route("/api", get(core))
        .route("/api/", get(core))
        .route("/apis", get(named))
        .route("/apis/", get(named));
    let view = View::new(None);
    for (g, v) in view.group_versions() {
        let Some(list) = view.resource_list(g, v) else {
            continue;
        };
        let path = if g.is_empty() {
            format!("/api/{v}")
        } else {
            format!("/apis/{g}/{v}")
        };
        let l2 = list.clone();
        r = r
            .route(
                &path,
                get(move || async move { json_response("application/json", &list) }),
            )
            .route(
                &format!("{path}/"),
                get(move || async move { json_response("application/json", &l2) }),
            );
    }
    for g in view.served_groups() {
        if let Some(doc) = view.api_group(g) {
            r = r.route(
                &format!("/apis/{g}"),
                get(move || async move { json_response("application/json", &doc) }),
            );
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    #[test]
    fn negotiation_follows_accept_order() {
        let kubectl = "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(kubectl), Format::Aggregated("v2"));
        assert_eq!(
            negotiate("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"),
            Format::Aggregated("v2beta1")
        );
        assert_eq!(negotiate("application/json"), Format::Legacy);
        assert_eq!(negotiate(""), Format::Legacy);
        assert_eq!(
            negotiate("application/json;g=apidiscovery.k8s.io;v=v9;as=APIGroupDiscoveryList"),
            Format::Legacy
        );
    }

    #[test]
    fn resource_lists_carry_subresource_kinds() {
        let core = resource_list("", "v1", None).expect("core served");
        assert_eq!(core["groupVersion"], "v1");
        let res = core["resources"].as_array().expect("resources");
        let eviction = res
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .expect("pods/eviction");
        assert_eq!(
            (&eviction["group"], &eviction["version"], &eviction["kind"]),
            (&json!("policy"), &json!("v1"), &json!("Eviction"))
        );
        let pods = res.iter().find(|r| r["name"] == "pods").expect("pods");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        // The values kube-apiserver publishes for the same storage versions.
        assert_eq!(pods["storageVersionHash"], "xPOwRZ+Yhw8=");
        assert!(eviction.get("storageVersionHash").is_none());
        let apps = resource_list("apps", "v1", None).expect("apps served");
        let deployments = apps["resources"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == "deployments"))
            .expect("deployments");
        assert_eq!(deployments["storageVersionHash"], "8aSe+NMegvE=");
        let scale = apps["resources"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == "deployments/scale"))
            .expect("deployments/scale");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["group"], "autoscaling");
        assert!(resource_list("apps", "v9", None).is_none());
    }

    #[test]
    fn aggregated_documents() {
        let apis = aggregated(false, "v2", None);
        let items = apis["items"].as_array().expect("items");
        assert!(items.iter().all(|i| i["metadata"]["name"].is_string()));
        let apps = items
            .iter()
            .find(|i| i["metadata"]["name"] == "apps")
            .expect("apps");
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["resource"] == "deployments"))
            .expect("deployments");
        assert_eq!(deploy["scope"], "Namespaced");
        assert_eq!(deploy["responseKind"]["kind"], "Deployment");
        let scale = deploy["subresources"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["subresource"] == "scale"))
            .expect("scale");
        assert_eq!(scale["responseKind"]["group"], "autoscaling");
        let core = aggregated(true, "v2", None);
        assert_eq!(core["items"].as_array().map(Vec::len), Some(1));
        let nodes = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["resource"] == "nodes"))
            .expect("nodes");
        assert_eq!(nodes["scope"], "Cluster");
        let groups = api_group_list(None);
        assert!(groups["groups"].as_array().is_some_and(|g| g
            .iter()
            .any(|g| g["preferredVersion"]["groupVersion"] == "apps/v1")));
    }

    #[test]
    fn metrics_group_is_discovered_read_only() {
        let groups = api_group_list(None);
        assert!(groups["groups"].as_array().is_some_and(|g| g
            .iter()
            .any(|g| g["preferredVersion"]["groupVersion"] == "metrics.k8s.io/v1beta1")));
        assert_eq!(
            api_group("metrics.k8s.io", None).expect("group")["kind"],
            "APIGroup"
        );
        let list = resource_list("metrics.k8s.io", "v1beta1", None).expect("served");
        let res = list["resources"].as_array().expect("resources");
        let kinds: Vec<(&Value, &Value, &Value)> = res
            .iter()
            .map(|r| (&r["name"], &r["kind"], &r["namespaced"]))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (&json!("nodes"), &json!("NodeMetrics"), &json!(false)),
                (&json!("pods"), &json!("PodMetrics"), &json!(true)),
            ]
        );
        assert!(res.iter().all(|r| r["verbs"] == json!(["get", "list"])));
        let apis = aggregated(false, "v2", None);
        let metrics = apis["items"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["metadata"]["name"] == "metrics.k8s.io"))
            .expect("metrics.k8s.io aggregated");
        assert_eq!(metrics["versions"][0]["version"], "v1beta1");
        assert_eq!(
            metrics["versions"][0]["resources"][1]["responseKind"]["kind"],
            "PodMetrics"
        );
        assert!(orch_types::registry::by_plural("metrics.k8s.io", "v1beta1", "pods").is_none());
    }

    #[tokio::test]
    async fn routes_answer_with_negotiated_content_type() {
        let api = crate::ApiServer::new(crate::ApiServerConfig::memory()).expect("server");
        let app: Router = routes().with_state(api);
        let req = Request::get("/apis")
            .header(
                "accept",
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
            )
            .body(Body::empty())
            .expect("request");
        let resp = app.clone().oneshot(req).await.expect("response");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"],
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        let req = Request::get("/api/v1")
            .body(Body::empty())
            .expect("request");
        let resp = app.clone().oneshot(req).await.expect("response");
        assert_eq!(resp.status(), 200);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["kind"], "APIResourceList");
        let req = Request::get("/api").body(Body::empty()).expect("request");
        let resp = app.oneshot(req).await.expect("response");
        assert_eq!(resp.headers()["content-type"], "application/json");
    }
}
