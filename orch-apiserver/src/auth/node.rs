//! Nodes as clients: the Node authorizer (upstream
//! `plugin/pkg/auth/authorizer/node/node_authorizer.go`, with a simplified graph) and
//! NodeRestriction admission (`plugin/pkg/admission/noderestriction/admission.go`).
//!
//! A node is the user `system:node:NAME` in the group `system:nodes`. It may read the
//! secrets, configmaps, persistent volume claims (and their volumes) and service-account
//! tokens of the pods bound to it — found by reading those pods from the watch cache — and
//! otherwise holds the rules of the bootstrap `system:node` role. NodeRestriction then keeps
//! its writes to its own Node, its own Lease and the pods bound to it.

use super::authz::{Attributes, Authorizer, Decision, Rule};
use super::UserInfo;
use crate::cache::WatchCache;
use crate::storage::key;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::PolicyRule;
use orch_types::{ApiError, DynamicObject};
use std::sync::Arc;

/// The group of nodes.
pub const NODES_GROUP: &str = "system:nodes";
/// The user-name prefix of nodes.
pub const NODE_PREFIX: &str = "system:node:";

/// The node a user is, if it is one (upstream `NodeIdentifier`).
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.username.as_deref()?.strip_prefix(NODE_PREFIX)?;
    let in_group = user.groups.iter().flatten().any(|g| g == NODES_GROUP);
    (in_group && !name.is_empty()).then_some(name)
}

/// The Node authorizer.
#[derive(Debug)]
pub struct NodeAuthorizer {
    cache: Arc<WatchCache>,
    rules: Vec<PolicyRule>,
}

impl NodeAuthorizer {
    /// An authorizer reading pods from `cache`.
    pub fn new(cache: Arc<WatchCache>) -> Self {
        let rules = super::rbac::bootstrap::cluster_roles()
            .into_iter()
            .find(|r| r["metadata"]["name"] == "system:node")
            .and_then(|r| serde_json::from_value(r["rules"].clone()).ok())
            .unwrap_or_default();
        Self { cache, rules }
    }

    /// The pods in `namespace` bound to `node`.
    fn pods_on(&self, node: &str, namespace: &str) -> Vec<Pod> {
        let res = key::resource_prefix("", "pods");
        let prefix = key::collection_prefix("", "pods", Some(namespace));
        self.cache
            .list(&res, &prefix)
            .items
            .iter()
            .filter_map(|e| e.decode_as::<Pod>().ok())
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .collect()
    }

    /// Whether a pod on `node` references the object (upstream's graph edges).
    fn related(&self, node: &str, resource: &str, namespace: &str, name: &str) -> bool {
        if name.is_empty() {
            return false;
        }
        let pods = self.pods_on(node, namespace);
        pods.iter().any(|p| {
            let Some(spec) = &p.spec else { return false };
            let v = serde_json::to_value(spec).unwrap_or_default();
            match resource {
                "serviceaccounts" => {
                    spec.service_account_name.as_deref().unwrap_or("default") == name
                }
                "secrets" => {
                    references(&v, &["secretName", "secretRef", "secretKeyRef"], name)
                        || spec
                            .image_pull_secrets
                            .iter()
                            .flatten()
                            .any(|s| s.name == name)
                }
                "configmaps" => {
                    references(&v, &["configMap", "configMapRef", "configMapKeyRef"], name)
                }
                "persistentvolumeclaims" => references(&v, &["persistentVolumeClaim"], name),
                _ => false,
            }
        })
    }
}

/// Whether `v` holds, under one of `fields`, the name `name` (a string field, or an object
/// with `name`/`claimName`).
fn references(v: &serde_json::Value, fields: &[&str], name: &str) -> bool {
    match v {
        serde_json::Value::Object(m) => m.iter().any(|(k, x)| {
            let here = fields.contains(&k.as_str())
                && (x.as_str() == Some(name)
                    || x.get("name").and_then(|n| n.as_str()) == Some(name)
                    || x.get("claimName").and_then(|n| n.as_str()) == Some(name));
            here || references(x, fields, name)
        }),
        serde_json::Value::Array(a) => a.iter().any(|x| references(x, fields, name)),
        _ => false,
    }
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, a: &Attributes<'_>) -> (Decision, String) {
        let Some(node) = node_name(a.user) else {
            return (Decision::NoOpinion, String::new());
        };
        let r = a.request;
        if r.is_resource_request && r.api_group.is_empty() {
            let graph = matches!(
                (r.resource.as_str(), r.subresource.as_str(), r.verb.as_str()),
                (
                    "secrets" | "configmaps" | "persistentvolumeclaims",
                    "",
                    "get"
                ) | ("serviceaccounts", "token", "create")
            );
            if graph {
                return if self.related(node, &r.resource, &r.namespace, &r.name) {
                    (Decision::Allow, String::new())
                } else {
                    (
                        Decision::NoOpinion,
                        format!("no relationship found between node '{node}' and this object"),
                    )
                };
            }
        }
        if self
            .rules
            .iter()
            .any(|rule| super::rbac::rule_allows(r, rule))
        {
            return (Decision::Allow, String::new());
        }
        (Decision::NoOpinion, String::new())
    }

    fn rules_for(&self, user: &UserInfo, _: &str) -> (Vec<Rule>, bool) {
        if node_name(user).is_none() {
            return (Vec::new(), false);
        }
        (Vec::new(), true)
    }
}

fn forbidden(info: &orch_types::registry::ResourceInfo, name: &str, why: &str) -> ApiError {
    ApiError::forbidden(&info.group_resource(), name, why)
}

/// NodeRestriction: a node's writes are limited to its own Node, its own Lease and the pods
/// bound to it (status, mirror pods).
pub fn admit(
    user: &UserInfo,
    info: &orch_types::registry::ResourceInfo,
    obj: &DynamicObject,
    old: Option<&DynamicObject>,
) -> Result<(), ApiError> {
    let Some(node) = node_name(user) else {
        return Ok(());
    };
    let name = obj.name();
    match (info.group, info.kind) {
        ("", "Node") if name != node => Err(forbidden(
            info,
            name,
            &format!("node {node:?} is not allowed to modify node {name:?}"),
        )),
        ("coordination.k8s.io", "Lease")
            if obj.namespace() == Some("kube-node-lease") && name != node =>
        {
            Err(forbidden(
                info,
                name,
                "can only access node lease with the same name as the requesting node",
            ))
        }
        ("", "Pod") => {
            let bound = |o: &DynamicObject| {
                o.data
                    .get("spec")
                    .and_then(|s| s.get("nodeName"))
                    .and_then(|n| n.as_str())
                    == Some(node)
            };
            match old {
                Some(o) if !bound(o) => Err(forbidden(
                    info,
                    name,
                    &format!("node {node:?} can only update pod status for pods with spec.nodeName set to itself"),
                )),
                Some(_) => Ok(()),
                None => {
                    let mirror = obj
                        .metadata
                        .annotations
                        .as_ref()
                        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
                    if !mirror {
                        Err(forbidden(info, name, &format!(
                            "pod does not have \"kubernetes.io/config.mirror\" annotation, node {node:?} can only create mirror pods"
                        )))
                    } else if !bound(obj) {
                        Err(forbidden(info, name, &format!(
                            "node {node:?} can only create pods with spec.nodeName set to itself"
                        )))
                    } else {
                        Ok(())
                    }
                }
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;
    use crate::storage::SharedStorage;

    /// A kubelet reviews the callers of its HTTPS API (`orch_kubelet::auth`): as upstream's
    /// `system:node` rules allow, a node may create TokenReviews and SubjectAccessReviews.
    #[tokio::test]
    async fn a_node_may_create_the_reviews_of_its_kubelet_api() {
        let storage: SharedStorage = Arc::new(MemoryStore::new());
        let cache = WatchCache::start(storage, 10).await.expect("cache");
        let node = NodeAuthorizer::new(cache);
        let user = UserInfo {
            username: Some("system:node:n1".into()),
            groups: Some(vec![NODES_GROUP.into()]),
            ..Default::default()
        };
        let q = Default::default();
        for path in [
            "/apis/authentication.k8s.io/v1/tokenreviews",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        ] {
            let request = super::super::request_info::parse("POST", path, &q);
            let a = Attributes {
                user: &user,
                request: &request,
            };
            assert_eq!(node.authorize(&a).0, Decision::Allow, "{path}");
        }
        let other = super::super::request_info::parse(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            &q,
        );
        let a = Attributes {
            user: &user,
            request: &other,
        };
        assert_eq!(node.authorize(&a).0, Decision::NoOpinion);
    }
}
