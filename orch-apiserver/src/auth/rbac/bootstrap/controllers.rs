//! The roles of the controllers orch's controller manager runs, as upstream
//! `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/controller_policy.go` (one
//! `system:controller:NAME` ClusterRole each, bound to the ServiceAccount `kube-system/NAME`).
//!
//! Upstream's controller manager runs each controller with its service account's credentials
//! (`--use-service-account-credentials`, what kubeadm sets); orch's runs every controller as
//! itself, so each binding also names the user `system:kube-controller-manager` (the identity
//! `orch up` issues in `controller-manager.conf`): together they grant it what upstream's
//! controllers hold, no more.

use super::{binding, events, named, role, rule, READ};
use serde_json::Value;

/// The user orch's controller manager authenticates as.
const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";

fn controller(name: &str, mut rules: Vec<Value>, with_events: bool) -> Value {
    if with_events {
        rules.extend(events());
    }
    role(&format!("system:controller:{name}"), &[], rules)
}

/// The controller roles (the clusterrole aggregation controller's is among the bootstrap
/// roles).
pub fn roles() -> Vec<Value> {
    let (apps, batch, ext) = ("apps", "batch", "extensions");
    let certs = "certificates.k8s.io";
    let rw_pods = &["list", "watch", "patch", "create", "delete"];
    vec![
        controller(
            "cronjob-controller",
            vec![
                rule(&["get", "list", "watch", "update"], &[batch], &["cronjobs"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "delete", "patch",
                    ],
                    &[batch],
                    &["jobs"],
                ),
                rule(&["update"], &[batch], &["cronjobs/status"]),
                rule(&["update"], &[batch], &["cronjobs/finalizers"]),
                rule(&["list", "watch", "delete"], &[""], &["pods"]),
            ],
            true,
        ),
        controller(
            "daemon-set-controller",
            vec![
                rule(READ, &[ext, apps], &["daemonsets"]),
                rule(&["update"], &[ext, apps], &["daemonsets/status"]),
                rule(&["update"], &[ext, apps], &["daemonsets/finalizers"]),
                rule(&["list", "watch"], &[""], &["nodes"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
                rule(&["create"], &[""], &["pods/binding"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "delete", "update", "patch",
                    ],
                    &[apps],
                    &["controllerrevisions"],
                ),
            ],
            true,
        ),
        controller(
            "deployment-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[ext, apps],
                    &["deployments"],
                ),
                rule(&["update"], &[ext, apps], &["deployments/status"]),
                rule(&["update"], &[ext, apps], &["deployments/finalizers"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &[apps, ext],
                    &["replicasets"],
                ),
                rule(&["get", "list", "watch", "update"], &[""], &["pods"]),
            ],
            true,
        ),
        controller(
            "disruption-controller",
            vec![
                rule(READ, &[ext, apps], &["deployments"]),
                rule(READ, &[apps, ext], &["replicasets"]),
                rule(READ, &[""], &["replicationcontrollers"]),
                rule(READ, &["policy"], &["poddisruptionbudgets"]),
                rule(READ, &[apps], &["statefulsets"]),
                rule(&["update"], &["policy"], &["poddisruptionbudgets/status"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["get"], &["*"], &["*/scale"]),
            ],
            true,
        ),
        controller(
            "endpoint-controller",
            vec![
                rule(READ, &[""], &["services", "pods"]),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &[""],
                    &["endpoints"],
                ),
                rule(&["create"], &[""], &["endpoints/restricted"]),
            ],
            true,
        ),
        controller(
            "endpointslice-controller",
            vec![
                rule(READ, &[""], &["services", "pods", "nodes"]),
                rule(&["update"], &[""], &["services/finalizers"]),
                rule(
                    &["get", "list", "create", "update", "delete"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
            true,
        ),
        controller(
            "endpointslicemirroring-controller",
            vec![
                rule(READ, &[""], &["services", "endpoints"]),
                rule(&["update"], &[""], &["endpoints/finalizers"]),
                rule(
                    &["get", "list", "create", "update", "delete"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
            true,
        ),
        controller(
            "generic-garbage-collector",
            vec![rule(
                &["get", "list", "watch", "patch", "update", "delete"],
                &["*"],
                &["*"],
            )],
            true,
        ),
        controller(
            "horizontal-pod-autoscaler",
            vec![
                rule(READ, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(
                    &["update"],
                    &["autoscaling"],
                    &["horizontalpodautoscalers/status"],
                ),
                rule(&["get", "update"], &["*"], &["*/scale"]),
                rule(&["list", "watch"], &[""], &["pods"]),
                rule(&["list", "watch"], &["metrics.k8s.io"], &["pods"]),
                rule(READ, &["custom.metrics.k8s.io"], &["*"]),
                rule(READ, &["external.metrics.k8s.io"], &["*"]),
            ],
            true,
        ),
        controller(
            "job-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    &[batch],
                    &["jobs"],
                ),
                rule(&["update"], &[batch], &["jobs/status"]),
                rule(&["update"], &[batch], &["jobs/finalizers"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
            ],
            true,
        ),
        controller(
            "namespace-controller",
            vec![
                rule(&["get", "list", "watch", "delete"], &[""], &["namespaces"]),
                rule(
                    &["update"],
                    &[""],
                    &["namespaces/finalize", "namespaces/status"],
                ),
                rule(
                    &["get", "list", "watch", "delete", "deletecollection"],
                    &["*"],
                    &["*"],
                ),
            ],
            false,
        ),
        controller(
            "node-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update", "delete", "patch"],
                    &[""],
                    &["nodes"],
                ),
                rule(&["patch", "update"], &[""], &["nodes/status"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["list", "watch", "get", "delete"], &[""], &["pods"]),
            ],
            true,
        ),
        controller(
            "persistent-volume-binder",
            vec![
                rule(
                    &["get", "list", "watch", "update", "create", "delete"],
                    &[""],
                    &["persistentvolumes"],
                ),
                rule(&["update"], &[""], &["persistentvolumes/status"]),
                rule(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(&["update"], &[""], &["persistentvolumeclaims/status"]),
                rule(
                    &["list", "watch", "get", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                rule(READ, &["storage.k8s.io"], &["storageclasses"]),
                rule(&["list", "watch"], &[""], &["nodes"]),
                rule(&["watch"], &[""], &["events"]),
                rule(&["get"], &[""], &["services"]),
            ],
            true,
        ),
        controller(
            "pod-garbage-collector",
            vec![
                rule(&["list", "watch", "delete"], &[""], &["pods"]),
                rule(READ, &[""], &["nodes"]),
                rule(&["patch"], &[""], &["pods/status"]),
            ],
            false,
        ),
        controller(
            "replicaset-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[apps, ext],
                    &["replicasets"],
                ),
                rule(&["update"], &[apps, ext], &["replicasets/status"]),
                rule(&["update"], &[apps, ext], &["replicasets/finalizers"]),
                rule(rw_pods, &[""], &["pods"]),
            ],
            true,
        ),
        controller(
            "replication-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["replicationcontrollers"],
                ),
                rule(&["update"], &[""], &["replicationcontrollers/status"]),
                rule(&["update"], &[""], &["replicationcontrollers/finalizers"]),
                rule(rw_pods, &[""], &["pods"]),
            ],
            true,
        ),
        controller(
            "resourcequota-controller",
            vec![
                rule(&["list", "watch"], &["*"], &["*"]),
                rule(&["update"], &[""], &["resourcequotas/status"]),
            ],
            true,
        ),
        controller(
            "service-account-controller",
            vec![rule(&["create"], &[""], &["serviceaccounts"])],
            true,
        ),
        controller(
            "statefulset-controller",
            vec![
                rule(&["list", "watch"], &[""], &["pods"]),
                rule(READ, &[apps], &["statefulsets"]),
                rule(&["update"], &[apps], &["statefulsets/status"]),
                rule(&["update"], &[apps], &["statefulsets/finalizers"]),
                rule(
                    &["get", "create", "delete", "update", "patch"],
                    &[""],
                    &["pods"],
                ),
                rule(
                    &[
                        "get", "create", "delete", "update", "patch", "list", "watch",
                    ],
                    &[apps],
                    &["controllerrevisions"],
                ),
                rule(
                    &["get", "create", "list", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(&["update", "delete"], &[""], &["persistentvolumeclaims"]),
                rule(&["update"], &[""], &["pods/finalizers"]),
            ],
            true,
        ),
        controller(
            "certificate-controller",
            vec![
                rule(
                    &["get", "list", "watch", "delete"],
                    &[certs],
                    &["certificatesigningrequests"],
                ),
                rule(
                    &["update"],
                    &[certs],
                    &[
                        "certificatesigningrequests/status",
                        "certificatesigningrequests/approval",
                    ],
                ),
                named(
                    &["approve"],
                    &[certs],
                    &["signers"],
                    &["kubernetes.io/kube-apiserver-client-kubelet"],
                ),
                named(
                    &["sign"],
                    &[certs],
                    &["signers"],
                    &[
                        "kubernetes.io/legacy-unknown",
                        "kubernetes.io/kube-apiserver-client",
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kubelet-serving",
                    ],
                ),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
            true,
        ),
        controller(
            "ttl-after-finished-controller",
            vec![rule(
                &["get", "list", "watch", "delete"],
                &[batch],
                &["jobs"],
            )],
            true,
        ),
        controller(
            "root-ca-cert-publisher",
            vec![rule(&["create", "update"], &[""], &["configmaps"])],
            true,
        ),
    ]
}

/// One binding per controller role: its ServiceAccount and orch's controller manager.
pub fn bindings() -> Vec<Value> {
    roles()
        .iter()
        .filter_map(|r| r["metadata"]["name"].as_str().map(str::to_string))
        .map(|name| {
            let sa = format!(
                "kube-system/{}",
                name.trim_start_matches("system:controller:")
            );
            binding(
                &name,
                &[
                    ("ServiceAccount", sa.as_str()),
                    ("User", CONTROLLER_MANAGER),
                ],
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_controller_role_is_bound_to_its_account_and_the_controller_manager() {
        let (roles, bindings) = (roles(), bindings());
        assert_eq!(roles.len(), bindings.len());
        let b = bindings
            .iter()
            .find(|b| b["metadata"]["name"] == "system:controller:deployment-controller")
            .expect("deployment controller binding");
        assert_eq!(
            b["roleRef"]["name"],
            "system:controller:deployment-controller"
        );
        assert_eq!(b["subjects"][0]["name"], "deployment-controller");
        assert_eq!(b["subjects"][0]["namespace"], "kube-system");
        assert_eq!(b["subjects"][1]["name"], CONTROLLER_MANAGER);
    }
}
