//! Defaulting, as upstream `pkg/apis/*/v1/defaults.go` plus the `+default` markers of the
//! `k8s.io/api` types, for the wave-1 kinds (Kubernetes 1.33 with default feature gates).
//!
//! [`apply_defaults`] works on a [`DynamicObject`] by converting it to its typed k8s-openapi
//! struct, defaulting, and converting back; kinds without defaults (and kinds orch does not
//! know) are left untouched. Defaulting is idempotent: applying it twice equals applying it once.
//! Quantities in resource lists are rounded up to milli precision and written in canonical
//! form, as the API server stores them.
//!
//! ```
//! use orch_types::{defaults::apply_defaults, DynamicObject};
//! let mut d: DynamicObject = serde_json::from_value(serde_json::json!({
//!     "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
//!     "spec": {"selector": {"matchLabels": {"app": "web"}},
//!              "template": {"metadata": {"labels": {"app": "web"}},
//!                           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})).unwrap();
//! apply_defaults(&mut d).unwrap();
//! let spec = &d.data["spec"];
//! assert_eq!(spec["replicas"], 1);
//! assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], "25%");
//! assert_eq!(spec["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always");
//! ```

mod admissionregistration;
mod apps;
mod batch;
mod core;
mod flowcontrol;
mod other;
mod quota;
mod rbac;
mod settings;
mod storage;

use serde::{de::DeserializeOwned, Serialize};

use crate::dynamic::{ConvertError, DynamicObject};
use crate::registry;

fn typed<K>(obj: &mut DynamicObject, f: impl FnOnce(&mut K)) -> Result<(), ConvertError>
where
    K: k8s_openapi::Resource + Serialize + DeserializeOwned,
{
    let mut t: K = obj.to_typed()?;
    f(&mut t);
    *obj = DynamicObject::from_typed(&t)?;
    Ok(())
}

/// Applies upstream defaults to a built-in object in place. Returns an error (and leaves the
/// object unchanged) when it does not fit its typed struct.
pub fn apply_defaults(obj: &mut DynamicObject) -> Result<(), ConvertError> {
    use k8s_openapi::api::{
        apps::v1 as kapps, autoscaling::v2 as as2, batch::v1 as kbatch, core::v1 as kcore,
        scheduling::v1 as sched, storage::v1 as kstorage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    let Some(info) = registry::by_kind(&obj.types.api_version, &obj.types.kind) else {
        return Ok(());
    };
    let mut work = obj.clone();
    match (info.group, info.kind) {
        ("", "Pod") => typed::<kcore::Pod>(&mut work, core::pod)?,
        ("", "Service") => typed::<kcore::Service>(&mut work, core::service)?,
        ("", "ReplicationController") => {
            typed::<kcore::ReplicationController>(&mut work, core::replication_controller)?
        }
        ("", "Secret") => typed::<kcore::Secret>(&mut work, core::secret)?,
        ("", "PodTemplate") => typed::<kcore::PodTemplate>(&mut work, |t| {
            if let Some(t) = t.template.as_mut() {
                core::pod_template(t);
            }
        })?,
        ("", "Namespace") => typed::<kcore::Namespace>(&mut work, core::namespace)?,
        ("", "Node") => typed::<kcore::Node>(&mut work, core::node)?,
        ("", "Endpoints") => typed::<kcore::Endpoints>(&mut work, core::endpoints)?,
        ("", "PersistentVolumeClaim") => {
            typed::<kcore::PersistentVolumeClaim>(&mut work, storage::pvc)?
        }
        ("", "PersistentVolume") => typed::<kcore::PersistentVolume>(&mut work, storage::pv)?,
        ("", "ResourceQuota") => typed::<kcore::ResourceQuota>(&mut work, quota::resource_quota)?,
        ("", "LimitRange") => typed::<kcore::LimitRange>(&mut work, quota::limit_range)?,
        ("apps", "Deployment") => typed::<kapps::Deployment>(&mut work, apps::deployment)?,
        ("apps", "ReplicaSet") => typed::<kapps::ReplicaSet>(&mut work, apps::replica_set)?,
        ("apps", "DaemonSet") => typed::<kapps::DaemonSet>(&mut work, apps::daemon_set)?,
        ("apps", "StatefulSet") => typed::<kapps::StatefulSet>(&mut work, apps::stateful_set)?,
        ("batch", "Job") => typed::<kbatch::Job>(&mut work, batch::job)?,
        ("batch", "CronJob") => typed::<kbatch::CronJob>(&mut work, batch::cron_job)?,
        ("autoscaling", "HorizontalPodAutoscaler") => {
            typed::<as2::HorizontalPodAutoscaler>(&mut work, other::hpa)?
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            typed::<sched::PriorityClass>(&mut work, other::priority_class)?
        }
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => typed::<
            k8s_openapi::api::flowcontrol::v1::FlowSchema,
        >(
            &mut work, flowcontrol::flow_schema
        )?,
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => {
            typed::<k8s_openapi::api::flowcontrol::v1::PriorityLevelConfiguration>(
                &mut work,
                flowcontrol::priority_level,
            )?
        }
        ("settings.k8s.io", "PodPreset") => {
            typed::<crate::settings::PodPreset>(&mut work, settings::pod_preset)?
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            typed::<apiext::CustomResourceDefinition>(&mut work, other::crd)?
        }
        ("discovery.k8s.io", "EndpointSlice") => typed::<
            k8s_openapi::api::discovery::v1::EndpointSlice,
        >(&mut work, other::endpoint_slice)?,
        ("apiregistration.k8s.io", "APIService") => typed::<
            k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
        >(&mut work, other::api_service)?,
        ("storage.k8s.io", "StorageClass") => {
            typed::<kstorage::StorageClass>(&mut work, storage::storage_class)?
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            typed::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>(
                &mut work,
                admissionregistration::mutating,
            )?
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            typed::<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration>(
                &mut work,
                admissionregistration::validating,
            )?
        }
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            typed::<k8s_openapi::api::rbac::v1::RoleBinding>(&mut work, rbac::role_binding)?
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            typed::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(
                &mut work,
                rbac::cluster_role_binding,
            )?
        }
        _ => return Ok(()),
    }
    *obj = work;
    Ok(())
}

/// Defaults a write to the `status` subresource, whose object is the stored one (already
/// defaulted: defaulting is idempotent) with the client's `status`: only the status can change,
/// so only the status is converted (checked against its typed struct, unknown fields dropped)
/// instead of the whole object. Node and Namespace, whose defaults touch the status
/// (`SetDefaults_NodeStatus`, `SetDefaults_NamespaceStatus`), get [`apply_defaults`].
/// Returns an error (and leaves the object unchanged) when the status does not fit.
///
/// Upstream decodes (and defaults) the whole body, then the status strategy's
/// `PrepareForUpdate` puts the old spec back (`pkg/registry/core/pod/strategy.go`
/// `podStatusStrategy`); the result is the same.
///
/// ```
/// use orch_types::{defaults::apply_status_defaults, DynamicObject};
/// let mut d: DynamicObject = serde_json::from_value(serde_json::json!({
///     "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
///     "status": {"phase": "Running", "bogus": 1}})).unwrap();
/// apply_status_defaults(&mut d).unwrap();
/// assert_eq!(d.data["status"], serde_json::json!({"phase": "Running"}));
/// d.data.insert("status".into(), serde_json::json!({"phase": 7}));
/// assert!(apply_status_defaults(&mut d).is_err());
/// ```
pub fn apply_status_defaults(obj: &mut DynamicObject) -> Result<(), ConvertError> {
    use k8s_openapi::api::{
        apps::v1 as kapps, autoscaling::v2 as as2, batch::v1 as kbatch, core::v1 as kcore,
        policy::v1 as kpolicy,
    };
    let Some(info) = registry::by_kind(&obj.types.api_version, &obj.types.kind) else {
        return Ok(());
    };
    match (info.group, info.kind) {
        ("", "Pod") => status_only::<kcore::Pod>(obj),
        ("", "Service") => status_only::<kcore::Service>(obj),
        ("", "ReplicationController") => status_only::<kcore::ReplicationController>(obj),
        ("apps", "Deployment") => status_only::<kapps::Deployment>(obj),
        ("apps", "ReplicaSet") => status_only::<kapps::ReplicaSet>(obj),
        ("apps", "DaemonSet") => status_only::<kapps::DaemonSet>(obj),
        ("apps", "StatefulSet") => status_only::<kapps::StatefulSet>(obj),
        ("batch", "Job") => status_only::<kbatch::Job>(obj),
        ("batch", "CronJob") => status_only::<kbatch::CronJob>(obj),
        ("policy", "PodDisruptionBudget") => status_only::<kpolicy::PodDisruptionBudget>(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            status_only::<as2::HorizontalPodAutoscaler>(obj)
        }
        _ => apply_defaults(obj),
    }
}

/// Round-trips `status` alone through `K` (the rest of `K` left empty).
fn status_only<K>(obj: &mut DynamicObject) -> Result<(), ConvertError>
where
    K: k8s_openapi::Resource + Serialize + DeserializeOwned,
{
    let Some(status) = obj.data.shift_remove("status") else {
        return Ok(());
    };
    let mut probe = DynamicObject {
        types: obj.types.clone(),
        metadata: Default::default(),
        data: std::iter::once(("status".to_string(), status)).collect(),
    };
    match probe
        .to_typed::<K>()
        .and_then(|t| DynamicObject::from_typed(&t))
    {
        Ok(mut back) => {
            if let Some(s) = back.data.shift_remove("status") {
                obj.data.insert("status".into(), s);
            }
            Ok(())
        }
        Err(e) => {
            if let Some(s) = probe.data.shift_remove("status") {
                obj.data.insert("status".into(), s);
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;
