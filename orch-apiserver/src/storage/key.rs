//! Storage keys of API objects: `/registry/GROUP/PLURAL/[NAMESPACE/]NAME`, core group as `core`.
//!
//! ```
//! use orch_apiserver::storage::key;
//! assert_eq!(key::object_key("", "pods", Some("default"), "web"), "/registry/core/pods/default/web");
//! assert_eq!(key::collection_prefix("apps", "deployments", None), "/registry/apps/deployments/");
//! ```

/// Root prefix of every API object key.
pub const ROOT: &str = "/registry/";

fn group_segment(group: &str) -> &str {
    if group.is_empty() {
        "core"
    } else {
        group
    }
}

/// Prefix of every object of one resource type (all namespaces).
pub fn resource_prefix(group: &str, plural: &str) -> String {
    format!("{ROOT}{}/{plural}/", group_segment(group))
}

/// Prefix of a collection: one namespace, or all objects when `namespace` is `None`.
pub fn collection_prefix(group: &str, plural: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{}{ns}/", resource_prefix(group, plural)),
        None => resource_prefix(group, plural),
    }
}

/// Key of one object.
pub fn object_key(group: &str, plural: &str, namespace: Option<&str>, name: &str) -> String {
    format!("{}{name}", collection_prefix(group, plural, namespace))
}

/// The resource prefix (`/registry/GROUP/PLURAL/`) a key belongs to.
pub fn resource_prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(ROOT)?;
    let g = rest.find('/')?;
    let p = rest[g + 1..].find('/')?;
    Some(&key[..ROOT.len() + g + 1 + p + 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_of_key() {
        let k = object_key("", "pods", Some("ns"), "p");
        assert_eq!(resource_prefix_of(&k), Some("/registry/core/pods/"));
        assert_eq!(resource_prefix_of("/registry/x"), None);
        assert_eq!(resource_prefix_of("/other/a/b/c"), None);
    }
}
