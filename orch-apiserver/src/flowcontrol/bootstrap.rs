//! The FlowSchemas and PriorityLevelConfigurations an API server starts with: our version of
//! upstream's mandatory and suggested objects
//! (`staging/src/k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap/default.go`), the 1.33 set.
//!
//! Every object carries `apf.kubernetes.io/autoupdate-spec: "true"`. The API server creates
//! the missing ones at start ([`crate::ApiServer`]'s bootstrap) and re-creates deleted
//! [`mandatory`] ones with the system namespaces (upstream's `apf_controller` config producer
//! ensures them). Unlike upstream, a changed spec of an auto-updated object is not written back.

use orch_types::DynamicObject;
use serde_json::{json, Value};

/// The annotation upstream's config producer reads to know it may overwrite the spec.
pub const AUTOUPDATE_ANNOTATION: &str = "apf.kubernetes.io/autoupdate-spec";

/// The group of both kinds.
pub const GROUP: &str = "flowcontrol.apiserver.k8s.io";
/// Its served version.
pub const API_VERSION: &str = "flowcontrol.apiserver.k8s.io/v1";

/// The exempt level and schema name.
pub const EXEMPT: &str = "exempt";
/// The catch-all level and schema name.
pub const CATCH_ALL: &str = "catch-all";

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    let v = json!({
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "annotations": {AUTOUPDATE_ANNOTATION: "true"}},
        "spec": spec,
    });
    serde_json::from_value(v).expect("a bootstrap object is a valid DynamicObject")
}

fn level(
    name: &str,
    shares: i32,
    lendable: i32,
    queuing: Option<(i32, i32, i32)>,
) -> DynamicObject {
    let limit_response = match queuing {
        Some((queues, hand_size, queue_length_limit)) => json!({"type": "Queue", "queuing": {
            "queues": queues, "handSize": hand_size, "queueLengthLimit": queue_length_limit}}),
        None => json!({"type": "Reject"}),
    };
    object(
        "PriorityLevelConfiguration",
        name,
        json!({"type": "Limited", "limited": {"nominalConcurrencyShares": shares,
            "lendablePercent": lendable, "limitResponse": limit_response}}),
    )
}

fn group(name: &str) -> Value {
    json!({"kind": "Group", "group": {"name": name}})
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "user": {"name": name}})
}

fn kube_system_service_accounts(name: &str) -> Value {
    json!({"kind": "ServiceAccount", "serviceAccount": {"namespace": "kube-system", "name": name}})
}

/// Every verb, group, resource and namespace, cluster-scoped too; every non-resource URL.
fn everything(subjects: Vec<Value>) -> Value {
    json!({
        "subjects": subjects,
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
            "namespaces": ["*"], "clusterScope": true}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
    })
}

fn schema(
    name: &str,
    level: &str,
    precedence: i32,
    by: Option<&str>,
    rules: Vec<Value>,
) -> DynamicObject {
    let mut spec = json!({
        "priorityLevelConfiguration": {"name": level},
        "matchingPrecedence": precedence,
        "rules": rules,
    });
    if let Some(by) = by {
        spec["distinguisherMethod"] = json!({"type": by});
    }
    object("FlowSchema", name, spec)
}

fn resource_rule(
    verbs: &[&str],
    group: &str,
    resources: &[&str],
    namespaces: &[&str],
    cluster: bool,
) -> Value {
    json!({"verbs": verbs, "apiGroups": [group], "resources": resources,
        "namespaces": namespaces, "clusterScope": cluster})
}

/// The mandatory objects: the `exempt` and `catch-all` levels, then the `exempt` schema
/// (`system:masters`, precedence 1) and the `catch-all` schema (everyone, 10000).
pub fn mandatory() -> Vec<DynamicObject> {
    let all = vec![
        group("system:unauthenticated"),
        group("system:authenticated"),
    ];
    vec![
        object(
            "PriorityLevelConfiguration",
            EXEMPT,
            json!({"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}),
        ),
        level(CATCH_ALL, 5, 0, None),
        schema(
            EXEMPT,
            EXEMPT,
            1,
            None,
            vec![everything(vec![group("system:masters")])],
        ),
        schema(
            CATCH_ALL,
            CATCH_ALL,
            10_000,
            Some("ByUser"),
            vec![everything(all)],
        ),
    ]
}

/// The suggested objects: levels `system`, `node-high`, `leader-election`, `workload-high`,
/// `workload-low`, `global-default` and the schemas that lead to them.
pub fn suggested() -> Vec<DynamicObject> {
    let rw = ["get", "create", "update"];
    let all = || {
        vec![
            group("system:unauthenticated"),
            group("system:authenticated"),
        ]
    };
    let leases = resource_rule(&rw, "coordination.k8s.io", &["leases"], &["*"], false);
    vec![
        level("system", 30, 33, Some((64, 6, 50))),
        level("node-high", 40, 25, Some((64, 6, 50))),
        level("leader-election", 10, 0, Some((16, 4, 50))),
        level("workload-high", 40, 50, Some((128, 6, 50))),
        level("workload-low", 100, 90, Some((128, 6, 50))),
        level("global-default", 20, 50, Some((128, 6, 50))),
        schema(
            "probes",
            EXEMPT,
            2,
            None,
            vec![json!({
                "subjects": all(),
                "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}],
            })],
        ),
        schema(
            "system-leader-election",
            "leader-election",
            100,
            Some("ByUser"),
            vec![json!({
                "subjects": [user("system:kube-controller-manager"), user("system:kube-scheduler"),
                    kube_system_service_accounts("*")],
                "resourceRules": [leases],
            })],
        ),
        schema(
            "endpoint-controller",
            "workload-high",
            150,
            Some("ByUser"),
            vec![json!({
                "subjects": [user("system:kube-controller-manager"),
                    kube_system_service_accounts("endpoint-controller"),
                    kube_system_service_accounts("endpointslice-controller")],
                "resourceRules": [
                    resource_rule(&["get", "create", "update", "delete"], "", &["endpoints"], &["*"], false),
                    resource_rule(&["get", "create", "update", "delete"], "discovery.k8s.io",
                        &["endpointslices"], &["*"], false),
                ],
            })],
        ),
        schema(
            "workload-leader-election",
            "leader-election",
            200,
            Some("ByUser"),
            vec![json!({
                "subjects": [kube_system_service_accounts("*")],
                "resourceRules": [leases],
            })],
        ),
        schema(
            "system-node-high",
            "node-high",
            400,
            Some("ByUser"),
            vec![json!({
                "subjects": [group("system:nodes")],
                "resourceRules": [
                    resource_rule(&["*"], "", &["nodes", "nodes/status"], &[], true),
                    resource_rule(&["*"], "coordination.k8s.io", &["leases"], &["*"], false),
                ],
            })],
        ),
        schema(
            "system-nodes",
            "system",
            500,
            Some("ByUser"),
            vec![everything(vec![group("system:nodes")])],
        ),
        schema(
            "kube-controller-manager",
            "workload-high",
            800,
            Some("ByNamespace"),
            vec![everything(vec![user("system:kube-controller-manager")])],
        ),
        schema(
            "kube-scheduler",
            "workload-high",
            800,
            Some("ByNamespace"),
            vec![everything(vec![user("system:kube-scheduler")])],
        ),
        schema(
            "kube-system-service-accounts",
            "workload-high",
            900,
            Some("ByNamespace"),
            vec![everything(vec![kube_system_service_accounts("*")])],
        ),
        schema(
            "service-accounts",
            "workload-low",
            9000,
            Some("ByUser"),
            vec![everything(vec![group("system:serviceaccounts")])],
        ),
        schema(
            "global-default",
            "global-default",
            9900,
            Some("ByUser"),
            vec![everything(all())],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_object_is_valid_and_annotated() {
        for o in mandatory().into_iter().chain(suggested()) {
            let errs = orch_types::validation::validate(&o);
            assert!(errs.is_empty(), "{}: {errs:?}", o.name());
            let a = o.metadata.annotations.as_ref().unwrap();
            assert_eq!(a[AUTOUPDATE_ANNOTATION], "true");
        }
        let levels: Vec<String> = suggested()
            .iter()
            .filter(|o| o.types.kind == "PriorityLevelConfiguration")
            .map(|o| o.name().to_string())
            .collect();
        for l in [
            "system",
            "node-high",
            "leader-election",
            "workload-high",
            "workload-low",
            "global-default",
        ] {
            assert!(levels.iter().any(|x| x == l), "{l}");
        }
    }
}
