//! What a request asks to do, as authorizers see it: upstream `RequestInfoFactory.NewRequestInfo`
//! (`staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`).
//!
//! `/api/v1/namespaces/default/pods/web/log` is a resource request: verb `get`, namespace
//! `default`, resource `pods`, name `web`, subresource `log`. A `GET` on a collection is `list`
//! (`watch` with `?watch=true` or under `/watch/`), a `DELETE` on one is `deletecollection`.
//! Anything else (`/healthz`, `/version`, discovery of `/apis/apps/v1`) is a non-resource
//! request whose verb is the lower-case HTTP method.

use std::collections::HashMap;

/// The parsed request (upstream `request.RequestInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// A request for a resource (else a non-resource path).
    pub is_resource_request: bool,
    /// The URL path.
    pub path: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `proxy`; for non-resource requests the lower-case method.
    pub verb: String,
    /// `api` or `apis`.
    pub api_prefix: String,
    /// API group (`""` for core).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Namespace (`""` for cluster-scoped requests).
    pub namespace: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Object name.
    pub name: String,
}

/// Upstream `specialVerbs`: path segments before the resource that set the verb.
const SPECIAL_VERBS: &[&str] = &["proxy", "watch"];
/// Upstream `namespaceSubresources`: `/namespaces/NAME/status` is the namespace's subresource.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// The verb of a resource request's HTTP method (before collection and watch adjustments).
fn method_verb(method: &str) -> &'static str {
    match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
}

/// Whether `name` is a valid path segment (upstream `path.IsValidPathSegmentName`).
fn valid_segment(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// The exact `metadata.name` a field selector requires, if any.
fn selected_name(selector: &str) -> Option<&str> {
    selector.split(',').find_map(|term| {
        let term = term.trim();
        let value = term
            .strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))?;
        Some(value)
    })
}

/// Parses a request from its method, path and (decoded) query parameters.
///
/// ```
/// use orch_apiserver::auth::request_info::parse;
/// let q = Default::default();
/// let r = parse("GET", "/api/v1/namespaces/default/pods/web/log", &q);
/// assert_eq!((r.verb.as_str(), r.namespace.as_str(), r.resource.as_str()), ("get", "default", "pods"));
/// assert_eq!((r.name.as_str(), r.subresource.as_str()), ("web", "log"));
/// assert_eq!(parse("DELETE", "/apis/apps/v1/namespaces/d/deployments", &q).verb, "deletecollection");
/// let healthz = parse("GET", "/healthz", &q);
/// assert!(!healthz.is_resource_request);
/// assert_eq!(healthz.verb, "get");
/// ```
pub fn parse(method: &str, path: &str, query: &HashMap<String, String>) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_string(),
        verb: method.to_ascii_lowercase(),
        ..Default::default()
    };
    let mut parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts.len() == 1 && parts[0].is_empty() {
        parts.clear();
    }
    if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
        return info;
    }
    let prefix = parts[0];
    let mut rest = &parts[1..];
    let mut group = "";
    if prefix == "apis" {
        if rest.len() < 3 {
            return info;
        }
        group = rest[0];
        rest = &rest[1..];
    }
    let version = rest[0];
    rest = &rest[1..];
    let mut verb = method_verb(method);
    if let Some(special) = rest.first().filter(|s| SPECIAL_VERBS.contains(s)) {
        if rest.len() < 2 {
            return info;
        }
        verb = if *special == "watch" {
            "watch"
        } else {
            "proxy"
        };
        rest = &rest[1..];
    }
    info.is_resource_request = true;
    info.api_prefix = prefix.to_string();
    info.api_group = group.to_string();
    info.api_version = version.to_string();
    info.verb = verb.to_string();
    if rest.first() == Some(&"namespaces") {
        if let Some(ns) = rest.get(1) {
            info.namespace = (*ns).to_string();
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
    }
    if rest.len() >= 3 && info.verb != "proxy" {
        info.subresource = rest[2].to_string();
    }
    if rest.len() >= 2 {
        info.name = rest[1].to_string();
    }
    if let Some(r) = rest.first() {
        info.resource = (*r).to_string();
    }
    if info.name.is_empty() && info.verb == "get" {
        let watch = crate::rest::router::query_flag(query.get("watch").map(String::as_str));
        info.verb = if watch { "watch" } else { "list" }.to_string();
        if let Some(name) = query.get("fieldSelector").and_then(|s| selected_name(s)) {
            if valid_segment(name) {
                info.name = name.to_string();
            }
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".to_string();
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(method: &str, path: &str, query: &[(&str, &str)]) -> RequestInfo {
        let q = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(method, path, &q)
    }

    fn short(r: &RequestInfo) -> (&str, &str, &str, &str, &str, &str) {
        (
            &r.verb,
            &r.api_group,
            &r.namespace,
            &r.resource,
            &r.name,
            &r.subresource,
        )
    }

    #[test]
    fn resource_requests() {
        #[allow(clippy::type_complexity)]
        let cases: &[(
            &str,
            &str,
            &[(&str, &str)],
            (&str, &str, &str, &str, &str, &str),
        )] = &[
            ("GET", "/api/v1/pods", &[], ("list", "", "", "pods", "", "")),
            (
                "GET",
                "/api/v1/namespaces/d/pods",
                &[("watch", "true")],
                ("watch", "", "d", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/d/pods/p",
                &[],
                ("watch", "", "d", "pods", "p", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/d/pods",
                &[("fieldSelector", "metadata.name=p")],
                ("list", "", "d", "pods", "p", ""),
            ),
            (
                "POST",
                "/apis/apps/v1/namespaces/d/deployments",
                &[],
                ("create", "apps", "d", "deployments", "", ""),
            ),
            (
                "PUT",
                "/api/v1/nodes/n1/status",
                &[],
                ("update", "", "", "nodes", "n1", "status"),
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/d/deployments/w/scale",
                &[],
                ("patch", "apps", "d", "deployments", "w", "scale"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/d/pods",
                &[],
                ("deletecollection", "", "d", "pods", "", ""),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/d/pods/p",
                &[],
                ("delete", "", "d", "pods", "p", ""),
            ),
            // A namespace is its own namespace; its status and finalize are subresources.
            (
                "GET",
                "/api/v1/namespaces/d",
                &[],
                ("get", "", "d", "namespaces", "d", ""),
            ),
            (
                "PUT",
                "/api/v1/namespaces/d/finalize",
                &[],
                ("update", "", "d", "namespaces", "d", "finalize"),
            ),
            (
                "GET",
                "/api/v1/namespaces",
                &[],
                ("list", "", "", "namespaces", "", ""),
            ),
            (
                "GET",
                "/api/v1/proxy/nodes/n1/a/b",
                &[],
                ("proxy", "", "", "nodes", "n1", ""),
            ),
        ];
        for (method, path, q, want) in cases {
            let r = p(method, path, q);
            assert!(r.is_resource_request, "{path}");
            assert_eq!(short(&r), *want, "{method} {path}");
        }
    }

    #[test]
    fn non_resource_requests() {
        for path in [
            "/healthz",
            "/version",
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/openapi/v2",
            "/",
        ] {
            let r = p("GET", path, &[]);
            assert!(!r.is_resource_request, "{path}");
            assert_eq!(r.verb, "get");
        }
        assert_eq!(p("POST", "/logs", &[]).verb, "post");
    }
}
