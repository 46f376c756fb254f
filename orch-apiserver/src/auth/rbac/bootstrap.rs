//! The roles and bindings every RBAC cluster starts with, as data (upstream
//! `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`), and their reconciliation at
//! start (upstream `pkg/registry/rbac/rest/storage_rbac.go` `EnsureRBACPolicy`): a missing
//! object is created; one whose `rbac.authorization.kubernetes.io/autoupdate` annotation is
//! not `false` gets the rules, subjects, labels and aggregation rule it lacks (extra
//! permissions an administrator added are kept).

mod controllers;

use crate::rest::update::Part;
use crate::server::ApiServer;
use orch_types::DynamicObject;
use serde_json::{json, Value};

/// The annotation that lets reconciliation update an object.
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// The label of every bootstrap object.
const BOOTSTRAPPING: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
/// The label selecting roles aggregated into `admin`, `edit` and `view`.
pub const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
}

fn urls(verbs: &[&str], paths: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": paths})
}

/// Upstream `eventsRule`: recording events in both event APIs.
fn events() -> [Value; 2] {
    [
        rule(&["create", "update", "patch"], &[""], &["events"]),
        rule(
            &["create", "update", "patch"],
            &["events.k8s.io"],
            &["events"],
        ),
    ]
}

fn role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .chain([&BOOTSTRAPPING])
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": {"name": name, "labels": labels, "annotations": {AUTOUPDATE: "true"}},
           "rules": rules})
}

/// A ClusterRole whose rules are those of the roles labelled `aggregate-to-<to>`.
fn aggregated(name: &str, labels: &[(&str, &str)], to: &str) -> Value {
    let mut r = role(name, labels, Vec::new());
    r["aggregationRule"] =
        json!({"clusterRoleSelectors": [{"matchLabels": {format!("{AGGREGATE_TO}{to}"): "true"}}]});
    r
}

/// The bootstrap ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let auth = "authorization.k8s.io";
    let authn = "authentication.k8s.io";
    let certs = "certificates.k8s.io";
    let coord = "coordination.k8s.io";
    let to = |r: &'static str| (format!("{AGGREGATE_TO}{r}"), "true");
    let (admin_l, edit_l, view_l) = (to("admin"), to("edit"), to("view"));
    let admin_label = [(admin_l.0.as_str(), admin_l.1)];
    let edit_label = [(edit_l.0.as_str(), edit_l.1)];
    let view_label = [(view_l.0.as_str(), view_l.1)];
    let mut node = vec![
        rule(&["create"], &[authn], &["tokenreviews"]),
        rule(
            &["create"],
            &[auth],
            &["subjectaccessreviews", "localsubjectaccessreviews"],
        ),
        rule(READ, &[""], &["services"]),
        rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        rule(&["update", "patch"], &[""], &["nodes/status"]),
        rule(&["update", "patch"], &[""], &["nodes"]),
        rule(READ, &[""], &["pods"]),
        rule(&["create", "delete"], &[""], &["pods"]),
        rule(&["update", "patch"], &[""], &["pods/status"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(&["get"], &[""], &["secrets", "configmaps"]),
        rule(
            &["get"],
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        rule(
            &["update", "patch"],
            &[""],
            &["persistentvolumeclaims/status"],
        ),
        rule(
            &["create", "get", "list", "watch"],
            &[certs],
            &["certificatesigningrequests"],
        ),
        rule(
            &["get", "create", "update", "patch", "delete"],
            &[coord],
            &["leases"],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
    ];
    node.extend(events());
    let mut proxier = vec![
        rule(&["list", "watch"], &[""], &["services", "endpoints"]),
        rule(READ, &[""], &["nodes"]),
        rule(
            &["list", "watch"],
            &["discovery.k8s.io"],
            &["endpointslices"],
        ),
    ];
    proxier.extend(events());
    let mut scheduler = vec![
        rule(&["create"], &[coord], &["leases"]),
        named(
            &["get", "update"],
            &[coord],
            &["leases"],
            &["kube-scheduler"],
        ),
        rule(&["create"], &[""], &["endpoints"]),
        named(
            &["get", "update"],
            &[""],
            &["endpoints"],
            &["kube-scheduler"],
        ),
        rule(READ, &[""], &["nodes"]),
        rule(&["delete", "get", "list", "watch"], &[""], &["pods"]),
        rule(&["create"], &[""], &["bindings", "pods/binding"]),
        rule(&["patch", "update"], &[""], &["pods/status"]),
        rule(READ, &[""], &["replicationcontrollers", "services"]),
        rule(READ, &["apps"], &["replicasets", "statefulsets"]),
        rule(READ, &["policy"], &["poddisruptionbudgets"]),
        rule(
            READ,
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        rule(&["create"], &[authn], &["tokenreviews"]),
        rule(&["create"], &[auth], &["subjectaccessreviews"]),
        rule(
            READ,
            &["storage.k8s.io"],
            &[
                "csinodes",
                "storageclasses",
                "csidrivers",
                "csistoragecapacities",
            ],
        ),
        rule(READ, &[""], &["namespaces"]),
    ];
    scheduler.extend(events());
    let mut controller_manager = vec![
        rule(&["create"], &[coord], &["leases"]),
        named(
            &["get", "update"],
            &[coord],
            &["leases"],
            &["kube-controller-manager"],
        ),
        rule(&["create"], &[""], &["secrets", "serviceaccounts"]),
        rule(&["delete"], &[""], &["secrets"]),
        rule(
            &["get"],
            &[""],
            &["configmaps", "namespaces", "secrets", "serviceaccounts"],
        ),
        rule(&["update"], &[""], &["secrets", "serviceaccounts"]),
        rule(&["create"], &[authn], &["tokenreviews"]),
        rule(&["create"], &[auth], &["subjectaccessreviews"]),
        rule(&["list", "watch"], &["*"], &["*"]),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
    ];
    controller_manager.extend(events());
    vec![
        role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        role(
            "system:discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        role(
            "system:monitoring",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/metrics",
                    "/metrics/slis",
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/livez/*",
                    "/readyz/*",
                    "/healthz/*",
                ],
            )],
        ),
        role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &[auth],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(&["create"], &[authn], &["selfsubjectreviews"]),
            ],
        ),
        role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        aggregated("admin", &[], "admin"),
        aggregated("edit", &admin_label, "edit"),
        aggregated("view", &edit_label, "view"),
        role(
            "system:aggregate-to-admin",
            &admin_label,
            vec![
                rule(&["create"], &[auth], &["localsubjectaccessreviews"]),
                rule(
                    READ_WRITE,
                    &["rbac.authorization.k8s.io"],
                    &["roles", "rolebindings"],
                ),
            ],
        ),
        role(
            "system:aggregate-to-edit",
            &edit_label,
            vec![
                rule(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                    ],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                        "persistentvolumeclaims",
                        "configmaps",
                        "secrets",
                        "events",
                    ],
                ),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    &["apps"],
                    &[
                        "statefulsets",
                        "statefulsets/scale",
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "replicasets",
                        "replicasets/scale",
                    ],
                ),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["jobs", "cronjobs"]),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    WRITE,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses"],
                ),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(READ, &[""], &["secrets"]),
            ],
        ),
        role(
            "system:aggregate-to-view",
            &view_label,
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "configmaps",
                    ],
                ),
                rule(
                    READ,
                    &[""],
                    &[
                        "limitranges",
                        "resourcequotas",
                        "bindings",
                        "events",
                        "pods/status",
                        "resourcequotas/status",
                        "namespaces/status",
                        "replicationcontrollers/status",
                        "pods/log",
                    ],
                ),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "statefulsets",
                        "statefulsets/status",
                        "statefulsets/scale",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/status",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/status",
                        "replicasets/scale",
                    ],
                ),
                rule(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                rule(
                    READ,
                    &["batch"],
                    &["jobs", "jobs/status", "cronjobs", "cronjobs/status"],
                ),
                rule(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                ),
            ],
        ),
        role("system:node", &[], node),
        role("system:node-proxier", &[], proxier),
        role("system:kube-scheduler", &[], scheduler),
        role("system:kube-controller-manager", &[], controller_manager),
        role(
            "system:node-bootstrapper",
            &[],
            vec![rule(
                &["create", "get", "list", "watch"],
                &[certs],
                &["certificatesigningrequests"],
            )],
        ),
        role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[],
            vec![rule(
                &["create"],
                &[certs],
                &["certificatesigningrequests/nodeclient"],
            )],
        ),
        role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[],
            vec![rule(
                &["create"],
                &[certs],
                &["certificatesigningrequests/selfnodeclient"],
            )],
        ),
        role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["create"], &[authn], &["tokenreviews"]),
                rule(&["create"], &[auth], &["subjectaccessreviews"]),
            ],
        ),
        role(
            "system:kubelet-api-admin",
            &[],
            vec![
                rule(READ, &[""], &["nodes"]),
                rule(&["proxy"], &[""], &["nodes"]),
                rule(
                    &["*"],
                    &[""],
                    &["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"],
                ),
            ],
        ),
        role(
            "system:controller:clusterrole-aggregation-controller",
            &[],
            vec![rule(
                &["escalate", "get", "list", "patch", "update", "watch"],
                &["rbac.authorization.k8s.io"],
                &["clusterroles"],
            )],
        ),
    ]
}

fn binding(role: &str, subjects: &[(&str, &str)]) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|(kind, name)| match *kind {
            "ServiceAccount" => {
                let (ns, n) = name.split_once('/').unwrap_or(("kube-system", name));
                json!({"kind": kind, "name": n, "namespace": ns})
            }
            _ => json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}),
        })
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": role, "labels": {BOOTSTRAPPING.0: BOOTSTRAPPING.1},
                        "annotations": {AUTOUPDATE: "true"}},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
           "subjects": subjects})
}

/// The bootstrap ClusterRoleBindings (`system:node` has no subject: the Node authorizer
/// decides for nodes, as upstream).
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding(
            "cluster-admin",
            &[("Group", super::super::authz::PRIVILEGED_GROUP)],
        ),
        binding("system:monitoring", &[("Group", "system:monitoring")]),
        binding("system:discovery", &[("Group", "system:authenticated")]),
        binding("system:basic-user", &[("Group", "system:authenticated")]),
        binding(
            "system:public-info-viewer",
            &[
                ("Group", "system:authenticated"),
                ("Group", "system:unauthenticated"),
            ],
        ),
        binding("system:node", &[]),
        binding("system:node-proxier", &[("User", "system:kube-proxy")]),
        binding(
            "system:kube-scheduler",
            &[("User", "system:kube-scheduler")],
        ),
        binding(
            "system:kube-controller-manager",
            &[("User", "system:kube-controller-manager")],
        ),
        // Kubelet TLS bootstrap, as `kubeadm init` binds them: bootstrap tokens may create
        // CertificateSigningRequests that csrapproving approves, nodes may renew their own.
        binding(
            "system:node-bootstrapper",
            &[("Group", "system:bootstrappers")],
        ),
        binding(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[("Group", "system:bootstrappers")],
        ),
        binding(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[("Group", "system:nodes")],
        ),
        binding(
            "system:controller:clusterrole-aggregation-controller",
            &[
                (
                    "ServiceAccount",
                    "kube-system/clusterrole-aggregation-controller",
                ),
                ("User", "system:kube-controller-manager"),
            ],
        ),
    ]
}

/// `wanted`'s entries under `field` that `have` lacks, appended to `have`; whether any was.
fn add_missing(have: &mut Value, wanted: &Value, field: &str) -> bool {
    let Some(want) = wanted.get(field).and_then(Value::as_array) else {
        return false;
    };
    if !have.get(field).is_some_and(Value::is_array) {
        have[field] = json!([]);
    }
    let Some(list) = have[field].as_array_mut() else {
        return false;
    };
    let mut changed = false;
    for w in want {
        if !list.contains(w) {
            list.push(w.clone());
            changed = true;
        }
    }
    changed
}

/// Adds `wanted`'s labels and annotations that `have` lacks.
fn add_meta(have: &mut Value, wanted: &Value) -> bool {
    let mut changed = false;
    for field in ["labels", "annotations"] {
        let Some(want) = wanted["metadata"][field].as_object() else {
            continue;
        };
        if !have["metadata"][field].is_object() {
            have["metadata"][field] = json!({});
        }
        for (k, v) in want {
            if have["metadata"][field].get(k).is_none() {
                have["metadata"][field][k] = v.clone();
                changed = true;
            }
        }
    }
    changed
}

/// What reconciling `have` against `wanted` changes (`None`: nothing, or autoupdate is off).
fn reconciled(have: &Value, wanted: &Value) -> Option<Value> {
    if have["metadata"]["annotations"][AUTOUPDATE] == "false" {
        return None;
    }
    let mut out = have.clone();
    let mut changed = add_meta(&mut out, wanted);
    if wanted.get("aggregationRule").is_some() {
        if out.get("aggregationRule") != wanted.get("aggregationRule") {
            out["aggregationRule"] = wanted["aggregationRule"].clone();
            changed = true;
        }
    } else {
        changed |= add_missing(&mut out, wanted, "rules");
    }
    changed |= add_missing(&mut out, wanted, "subjects");
    changed.then_some(out)
}

impl ApiServer {
    /// Creates or reconciles the bootstrap roles and bindings (run at start when RBAC is one
    /// of the authorization modes).
    pub(crate) async fn ensure_rbac_policy(&self) -> Result<(), orch_types::ApiError> {
        let kinds = [
            (
                "ClusterRole",
                [cluster_roles(), controllers::roles()].concat(),
            ),
            (
                "ClusterRoleBinding",
                [cluster_role_bindings(), controllers::bindings()].concat(),
            ),
        ];
        for (kind, objects) in kinds {
            let Some(info) = orch_types::registry::by_kind("rbac.authorization.k8s.io/v1", kind)
            else {
                continue;
            };
            for wanted in objects {
                let name = wanted["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let obj = DynamicObject::from_value(wanted.clone())
                    .map_err(|e| orch_types::ApiError::internal(e.to_string()))?;
                match self.get_object(info, None, &name).await {
                    Err(e) if e.is_not_found() => {
                        match self
                            .create_object(info, None, obj, &Default::default())
                            .await
                        {
                            Ok(_) => {}
                            Err(e) if e.is_already_exists() => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) => return Err(e),
                    Ok(have) => {
                        let have = serde_json::to_value(&*have)
                            .map_err(|e| orch_types::ApiError::internal(e.to_string()))?;
                        if let Some(out) = reconciled(&have, &wanted) {
                            let out = DynamicObject::from_value(out)
                                .map_err(|e| orch_types::ApiError::internal(e.to_string()))?;
                            match self
                                .update_object(
                                    info,
                                    None,
                                    &name,
                                    Part::Main,
                                    out,
                                    &Default::default(),
                                )
                                .await
                            {
                                Ok(_) => {}
                                Err(e) if e.is_conflict() => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bootstrap_object_is_valid() {
        for v in cluster_roles().into_iter().chain(cluster_role_bindings()) {
            let d = DynamicObject::from_value(v).unwrap();
            let errs = orch_types::validation::validate(&d);
            assert!(errs.is_empty(), "{}: {errs:?}", d.name());
        }
    }

    #[test]
    fn reconciling_adds_what_is_missing_and_keeps_extra() {
        let wanted = role("r", &[], vec![rule(&["get"], &[""], &["pods"])]);
        let mut have = role("r", &[], vec![rule(&["list"], &[""], &["secrets"])]);
        let out = reconciled(&have, &wanted).unwrap();
        assert_eq!(out["rules"].as_array().unwrap().len(), 2);
        assert!(reconciled(&out, &wanted).is_none(), "idempotent");
        have["metadata"]["annotations"][AUTOUPDATE] = json!("false");
        assert!(reconciled(&have, &wanted).is_none(), "autoupdate off");
    }
}
