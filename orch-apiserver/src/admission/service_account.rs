//! The ServiceAccount admission plugin on pod creation (upstream
//! `plugin/pkg/admission/serviceaccount/admission.go`):
//!
//! - a pod without `spec.serviceAccountName` runs as `default`;
//! - a pod whose service account does not exist is refused (403, upstream's message; the
//!   `default` account is looked for a few more times, as the serviceaccount controller may
//!   be creating it in a namespace just made);
//! - unless `automountServiceAccountToken` is false (on the pod, else on the service account),
//!   the pod gets the projected volume `kube-api-access-XXXXX` (a bound service-account token
//!   `token`, the cluster CA `ca.crt` from the ConfigMap `kube-root-ca.crt`, and `namespace`
//!   from the downward API) mounted read-only at [`TOKEN_MOUNT_PATH`] in every container and
//!   init container that has nothing mounted there yet;
//! - the service account's `imagePullSecrets` are copied to a pod that has none;
//! - a mirror pod (annotation `kubernetes.io/config.mirror`) is left alone, but may not name a
//!   service account or mount a secret.
//!
//! Changing `spec.serviceAccountName` later is refused by pod update validation (only a few
//! pod fields are mutable). The plugin is on when [`crate::ApiServerConfig::service_account_admission`]
//! is (`orch up` and `orch apiserver` turn it on, as kube-apiserver enables it by default).

use crate::rest::RestResult;
use k8s_openapi::api::core::v1::ServiceAccount;
use orch_types::{ApiError, DynamicObject};
use serde_json::{json, Value};

/// Where the token directory is mounted in containers.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The prefix of the projected volume's name (`kube-api-access-` + 5 random characters).
pub const VOLUME_PREFIX: &str = "kube-api-access-";

/// The service account a pod runs as when it names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Lifetime asked for the projected token (upstream: one hour and seven seconds, so that the
/// API server can tell kubelet-requested tokens apart).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// The annotation marking a mirror pod.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The ConfigMap with the cluster CA bundle in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// `pods "NAME" is forbidden: why` (`pods is forbidden: why` for a pod without a name yet),
/// as upstream `admission.NewForbidden`.
fn forbidden(name: &str, why: &str) -> ApiError {
    if name.is_empty() {
        ApiError::new(403, "Forbidden", format!("pods is forbidden: {why}"))
    } else {
        ApiError::forbidden("pods", name, why)
    }
}

/// The service account `pod` runs as (after [`default_name`]).
pub fn service_account_name(pod: &DynamicObject) -> &str {
    pod.data
        .get("spec")
        .and_then(|s| s.get("serviceAccountName"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Whether `pod` is a mirror pod.
pub fn is_mirror_pod(pod: &DynamicObject) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION))
}

/// A mirror pod may not name a service account nor mount a secret (upstream's checks before
/// leaving it alone).
pub fn check_mirror_pod(pod: &DynamicObject) -> RestResult<()> {
    let name = pod.name();
    if !service_account_name(pod).is_empty() {
        return Err(forbidden(
            name,
            "a mirror pod may not reference service accounts",
        ));
    }
    let volumes = pod.data.get("spec").and_then(|s| s.get("volumes"));
    for v in volumes.and_then(Value::as_array).into_iter().flatten() {
        let projected_secret = v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|s| s.get("secret").is_some()));
        if v.get("secret").is_some() || projected_secret {
            return Err(forbidden(name, "a mirror pod may not reference secrets"));
        }
        let projected_token = v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|s| s.get("serviceAccountToken").is_some()));
        if projected_token {
            return Err(forbidden(
                name,
                "a mirror pod may not use ServiceAccountToken volume projections",
            ));
        }
    }
    Ok(())
}

/// Sets `spec.serviceAccountName` to [`DEFAULT_SERVICE_ACCOUNT`] when empty; returns the name.
pub fn default_name(pod: &mut DynamicObject) -> String {
    let spec = pod.data.entry("spec").or_insert_with(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        let empty = spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if empty {
            spec.insert("serviceAccountName".into(), DEFAULT_SERVICE_ACCOUNT.into());
        }
    }
    service_account_name(pod).to_string()
}

/// The refusal of a pod whose service account `ns/name` does not exist.
pub fn missing(pod: &DynamicObject, ns: &str, name: &str) -> ApiError {
    forbidden(
        pod.name(),
        &format!(
            "service account {ns}/{name} was not found, retry after the service account is created"
        ),
    )
}

/// Whether the token is mounted: the pod's `automountServiceAccountToken`, else the service
/// account's, else yes (upstream `shouldAutomount`).
pub fn should_automount(pod: &DynamicObject, sa: &ServiceAccount) -> bool {
    let on_pod = pod
        .data
        .get("spec")
        .and_then(|s| s.get("automountServiceAccountToken"))
        .and_then(Value::as_bool);
    on_pod
        .or(sa.automount_service_account_token)
        .unwrap_or(true)
}

/// The projected volume of the service-account token, CA bundle and namespace.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
            "defaultMode": 0o644,
        }
    })
}

/// Mounts the token volume in every container and init container without a mount at
/// [`TOKEN_MOUNT_PATH`], adding the volume (named by `generate`, unless a
/// `kube-api-access-` volume is there already) when one of them needed it.
pub fn mount_token(pod: &mut DynamicObject, generate: impl FnOnce() -> String) {
    let Some(spec) = pod.data.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(str::to_string);
    let volume = existing.clone().unwrap_or_else(generate);
    let mount = json!({"name": volume, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let containers = spec.get_mut(list).and_then(Value::as_array_mut);
        for c in containers.into_iter().flatten() {
            let Some(c) = c.as_object_mut() else { continue };
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            let there = mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH));
            if !there {
                mounts.push(mount.clone());
                needed = true;
            }
        }
    }
    if needed && existing.is_none() {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(v) = volumes.as_array_mut() {
            v.push(token_volume(&volume));
        }
    }
}

/// Copies the service account's `imagePullSecrets` to a pod that has none.
pub fn copy_pull_secrets(pod: &mut DynamicObject, sa: &ServiceAccount) {
    let Some(secrets) = sa.image_pull_secrets.as_ref().filter(|s| !s.is_empty()) else {
        return;
    };
    let Some(spec) = pod.data.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let has = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has {
        if let Ok(v) = serde_json::to_value(secrets) {
            spec.insert("imagePullSecrets".into(), v);
        }
    }
}

/// The whole plugin on a pod being created, once its service account is known (`sa`, `None`:
/// not found).
pub fn admit(
    pod: &mut DynamicObject,
    ns: &str,
    sa: Option<&ServiceAccount>,
    generate: impl FnOnce() -> String,
) -> RestResult<()> {
    if is_mirror_pod(pod) {
        return check_mirror_pod(pod);
    }
    let name = default_name(pod);
    let Some(sa) = sa else {
        return Err(missing(pod, ns, &name));
    };
    if should_automount(pod, sa) {
        mount_token(pod, generate);
    }
    copy_pull_secrets(pod, sa);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> DynamicObject {
        DynamicObject::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn two_containers() -> Value {
        json!({"initContainers": [{"name": "i", "image": "x"}],
               "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]})
    }

    fn name() -> String {
        "kube-api-access-abcde".into()
    }

    #[test]
    fn a_pod_runs_as_default_with_the_token_volume_in_every_container() {
        let mut p = pod(two_containers());
        admit(&mut p, "ns", Some(&ServiceAccount::default()), name).unwrap();
        let spec = &p.data["spec"];
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(
            spec["volumes"],
            json!([token_volume("kube-api-access-abcde")])
        );
        for c in ["initContainers", "containers"] {
            for c in spec[c].as_array().unwrap() {
                assert_eq!(
                    c["volumeMounts"],
                    json!([{"name": "kube-api-access-abcde", "readOnly": true,
                            "mountPath": TOKEN_MOUNT_PATH}])
                );
            }
        }
        let sources = &spec["volumes"][0]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(
            sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
        assert_eq!(spec["volumes"][0]["projected"]["defaultMode"], 420);
    }

    #[test]
    fn a_missing_service_account_is_forbidden() {
        let mut p = pod(json!({"serviceAccountName": "builder", "containers": []}));
        let e = admit(&mut p, "ns", None, name).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: service account ns/builder was not found, retry after the service account is created"
        );
    }

    #[test]
    fn automount_false_on_the_pod_or_the_account_mounts_nothing() {
        let mut p = pod(json!({"automountServiceAccountToken": false,
                               "containers": [{"name": "a", "image": "x"}]}));
        admit(&mut p, "ns", Some(&ServiceAccount::default()), name).unwrap();
        assert!(p.data["spec"].get("volumes").is_none());
        let off = ServiceAccount {
            automount_service_account_token: Some(false),
            ..Default::default()
        };
        let mut p = pod(two_containers());
        admit(&mut p, "ns", Some(&off), name).unwrap();
        assert!(p.data["spec"].get("volumes").is_none());
        // The pod's own choice wins over the account's.
        let mut p = pod(json!({"automountServiceAccountToken": true,
                               "containers": [{"name": "a", "image": "x"}]}));
        admit(&mut p, "ns", Some(&off), name).unwrap();
        assert!(p.data["spec"]["volumes"].is_array());
    }

    #[test]
    fn a_container_with_its_own_mount_there_keeps_it() {
        let mut p = pod(json!({"containers": [{"name": "a", "image": "x",
            "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]}],
            "volumes": [{"name": "mine", "emptyDir": {}}]}));
        admit(&mut p, "ns", Some(&ServiceAccount::default()), name).unwrap();
        assert_eq!(p.data["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(
            p.data["spec"]["containers"][0]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn mirror_pods_are_left_alone_but_may_not_use_accounts_or_secrets() {
        let mirror = |spec: Value| {
            let mut p = pod(spec);
            p.metadata.annotations = Some([(MIRROR_POD_ANNOTATION.into(), "x".into())].into());
            p
        };
        let mut p = mirror(json!({"containers": [{"name": "a", "image": "x"}]}));
        admit(&mut p, "ns", None, name).unwrap();
        assert!(p.data["spec"].get("serviceAccountName").is_none());
        let mut p = mirror(json!({"serviceAccountName": "x", "containers": []}));
        let e = admit(&mut p, "ns", None, name).unwrap_err();
        assert!(e
            .message
            .ends_with("a mirror pod may not reference service accounts"));
        let mut p = mirror(
            json!({"containers": [], "volumes": [{"name": "s", "secret": {"secretName": "s"}}]}),
        );
        let e = admit(&mut p, "ns", None, name).unwrap_err();
        assert!(e
            .message
            .ends_with("a mirror pod may not reference secrets"));
    }

    #[test]
    fn pull_secrets_come_from_the_account() {
        let sa: ServiceAccount = serde_json::from_value(json!({
            "imagePullSecrets": [{"name": "registry"}]}))
        .unwrap();
        let mut p = pod(json!({"containers": []}));
        admit(&mut p, "ns", Some(&sa), name).unwrap();
        assert_eq!(
            p.data["spec"]["imagePullSecrets"],
            json!([{"name": "registry"}])
        );
    }
}
