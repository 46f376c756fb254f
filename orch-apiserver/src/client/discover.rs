//! Discovery over HTTP for [`super::HttpClient::discover`]: the documents of aggregated
//! discovery (`apidiscovery.k8s.io` `APIGroupDiscoveryList`, two requests) or, from a server
//! that does not offer it, of legacy discovery (`APIGroupList` and one `APIResourceList` per
//! group version), reduced to one version of each group and resource as upstream client-go
//! `discovery.ServerPreferredResources` does: the group's preferred version where it serves
//! the resource, else the first version that does. orch's built-in kinds are taken at the
//! version orch's components use (their storage version) whenever the server serves it.

use orch_types::client::DiscoveredResource;
use orch_types::registry::{self, ApiResource};
use serde_json::Value;
use std::borrow::Cow;

/// `Accept` of the root discovery requests: aggregated discovery first, then legacy.
pub(crate) const ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

/// One resource of one group version, in the order discovery listed it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) plural: String,
    pub(crate) kind: String,
    pub(crate) namespaced: bool,
    pub(crate) verbs: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `doc` is an aggregated discovery document.
pub(crate) fn is_aggregated(doc: &Value) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some("APIGroupDiscoveryList")
}

/// The entries of an `APIGroupDiscoveryList` (versions in the server's priority order).
pub(crate) fn aggregated_entries(doc: &Value, out: &mut Vec<Entry>) {
    for item in doc
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let group = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        for v in item
            .get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let version = v.get("version").and_then(Value::as_str).unwrap_or("");
            for r in v
                .get("resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(plural), Some(kind)) = (
                    r.get("resource").and_then(Value::as_str),
                    r.pointer("/responseKind/kind").and_then(Value::as_str),
                ) else {
                    continue;
                };
                out.push(Entry {
                    group: group.into(),
                    version: version.into(),
                    plural: plural.into(),
                    kind: kind.into(),
                    namespaced: r.get("scope").and_then(Value::as_str) == Some("Namespaced"),
                    verbs: strings(&r["verbs"]),
                });
            }
        }
    }
}

/// The group versions of an `APIGroupList`, preferred version of each group first.
pub(crate) fn legacy_group_versions(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for g in doc
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = g.get("name").and_then(Value::as_str).unwrap_or("");
        let preferred = g
            .pointer("/preferredVersion/version")
            .and_then(Value::as_str);
        let mut versions: Vec<&str> = g
            .get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("version").and_then(Value::as_str))
            .collect();
        if let Some(p) = preferred {
            versions.retain(|v| *v != p);
            versions.insert(0, p);
        }
        out.extend(
            versions
                .into_iter()
                .map(|v| (name.to_string(), v.to_string())),
        );
    }
    out
}

/// The entries of one `APIResourceList` of `group`/`version` (subresources skipped).
pub(crate) fn legacy_entries(group: &str, version: &str, doc: &Value, out: &mut Vec<Entry>) {
    for r in doc
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(plural) = r.get("name").and_then(Value::as_str) else {
            continue;
        };
        if plural.contains('/') {
            continue;
        }
        out.push(Entry {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: r.get("kind").and_then(Value::as_str).unwrap_or("").into(),
            namespaced: r
                .get("namespaced")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            verbs: strings(&r["verbs"]),
        });
    }
}

/// One entry per group and resource: the built-in storage version when listed, else the
/// first listed (the preferred version comes first), in listing order.
pub(crate) fn preferred(entries: Vec<Entry>) -> Vec<DiscoveredResource> {
    let mut picked: Vec<Entry> = Vec::new();
    for e in entries {
        let builtin = registry::by_kind(
            &if e.group.is_empty() {
                e.version.clone()
            } else {
                format!("{}/{}", e.group, e.version)
            },
            &e.kind,
        )
        .is_some_and(|i| i.plural == e.plural);
        match picked
            .iter_mut()
            .find(|p| p.group == e.group && p.plural == e.plural)
        {
            Some(p) if builtin => *p = e,
            Some(_) => {}
            None => picked.push(e),
        }
    }
    picked
        .into_iter()
        .map(|e| DiscoveredResource {
            resource: ApiResource {
                group: Cow::Owned(e.group),
                version: Cow::Owned(e.version),
                kind: Cow::Owned(e.kind),
                plural: Cow::Owned(e.plural),
                namespaced: e.namespaced,
            },
            verbs: e.verbs,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aggregated_picks_the_preferred_version_and_orchs_storage_version() {
        let named = json!({"kind": "APIGroupDiscoveryList", "items": [
            {"metadata": {"name": "autoscaling"}, "versions": [
                {"version": "v1", "resources": [{"resource": "horizontalpodautoscalers",
                    "responseKind": {"group": "autoscaling", "version": "v1", "kind": "HorizontalPodAutoscaler"},
                    "scope": "Namespaced", "verbs": ["list", "watch", "delete"]}]},
                {"version": "v2", "resources": [{"resource": "horizontalpodautoscalers",
                    "responseKind": {"group": "autoscaling", "version": "v2", "kind": "HorizontalPodAutoscaler"},
                    "scope": "Namespaced", "verbs": ["list", "watch", "delete"]}]}]},
            {"metadata": {"name": "example.com"}, "versions": [
                {"version": "v2", "resources": [{"resource": "backups",
                    "responseKind": {"group": "example.com", "version": "v2", "kind": "Backup"},
                    "scope": "Namespaced", "verbs": ["get", "list"],
                    "subresources": [{"subresource": "status"}]}]},
                {"version": "v1", "resources": [{"resource": "backups",
                    "responseKind": {"group": "example.com", "version": "v1", "kind": "Backup"},
                    "scope": "Namespaced", "verbs": ["get"]}]}]}
        ]});
        assert!(is_aggregated(&named));
        let mut entries = Vec::new();
        aggregated_entries(&named, &mut entries);
        let got: Vec<(String, Vec<String>)> = preferred(entries)
            .into_iter()
            .map(|d| (d.resource.api_version() + "/" + &d.resource.plural, d.verbs))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "autoscaling/v2/horizontalpodautoscalers".to_string(),
                    vec!["list".to_string(), "watch".into(), "delete".into()]
                ),
                (
                    "example.com/v2/backups".to_string(),
                    vec!["get".to_string(), "list".into()]
                ),
            ]
        );
    }

    #[test]
    fn legacy_documents_skip_subresources_and_put_the_preferred_version_first() {
        let groups = json!({"kind": "APIGroupList", "groups": [{"name": "example.com",
            "versions": [{"version": "v1"}, {"version": "v2"}],
            "preferredVersion": {"version": "v2"}}]});
        assert!(!is_aggregated(&groups));
        assert_eq!(
            legacy_group_versions(&groups),
            [
                ("example.com".to_string(), "v2".to_string()),
                ("example.com".to_string(), "v1".to_string())
            ]
        );
        let list = json!({"resources": [
            {"name": "pods", "kind": "Pod", "namespaced": true, "verbs": ["list"]},
            {"name": "pods/status", "kind": "Pod", "namespaced": true, "verbs": ["get"]}]});
        let mut entries = Vec::new();
        legacy_entries("", "v1", &list, &mut entries);
        let d = preferred(entries);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].resource,
            ApiResource::of::<k8s_openapi::api::core::v1::Pod>()
        );
        assert!(d[0].supports(&["list"]) && !d[0].supports(&["list", "watch"]));
    }
}
