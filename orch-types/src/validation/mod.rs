//! Validation of built-in objects as kube-apiserver does it (upstream `pkg/apis/*/validation`
//! for the wave-1 kinds), returning every problem as a [`FieldError`] with the upstream path,
//! kind and message.
//!
//! Like the API server, [`validate`] checks the object *after defaulting* (it defaults a copy
//! first), so a manifest that leaves `restartPolicy` or `imagePullPolicy` out is valid.
//! [`validate_update`] adds the immutability rules of each kind (selectors, most of a pod's
//! spec, secret types, ...). A missing `metadata.namespace` on a namespaced kind is accepted:
//! the server fills it in from the request.
//!
//! One file per API group: core/v1 rules live in `core.rs`, apps/v1 in `apps.rs`, and so on.
//!
//! ```
//! use orch_types::{validation::{validate, FieldErrorKind}, DynamicObject};
//! let d: DynamicObject = serde_json::from_value(serde_json::json!({
//!     "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
//!     "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "web"}},
//!              "template": {"metadata": {"labels": {"app": "other"}},
//!                           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})).unwrap();
//! let errs = validate(&d);
//! let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
//! assert_eq!(lines, [
//!     "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
//!     "spec.template.metadata.labels: Invalid value: {\"app\": \"other\"}: `selector` does not match template `labels`",
//! ]);
//! assert_eq!(errs[0].kind, FieldErrorKind::Invalid);
//! ```

pub mod admissionregistration;
mod apps;
mod batch;
pub mod certificates;
mod core;
mod discovery;
mod field;
mod flowcontrol;
mod meta;
mod other;
mod policy;
mod quota;
pub mod rbac;
mod settings;
mod storage;

pub use field::{FieldError, FieldErrorKind, Path};
pub use meta::NameRule;

use serde::de::DeserializeOwned;

use crate::dynamic::DynamicObject;
use crate::registry;
use crate::status::ApiError;

fn conversion_error(e: impl std::fmt::Display) -> FieldError {
    FieldError::invalid_raw("", "{...}", e.to_string())
}

fn typed<K: DeserializeOwned>(obj: &DynamicObject) -> Result<K, FieldError> {
    obj.to_typed::<K>().map_err(conversion_error)
}

fn defaulted(obj: &DynamicObject) -> Result<DynamicObject, FieldError> {
    let mut d = obj.clone();
    crate::defaults::apply_defaults(&mut d).map_err(conversion_error)?;
    Ok(d)
}

macro_rules! check {
    ($obj:expr, $ty:ty, $f:path) => {
        match typed::<$ty>($obj) {
            Ok(t) => $f(&t),
            Err(e) => vec![e],
        }
    };
}

macro_rules! check_update {
    ($new:expr, $old:expr, $ty:ty, $f:path) => {
        match (typed::<$ty>($new), typed::<$ty>($old)) {
            (Ok(n), Ok(o)) => $f(&n, &o),
            (Err(e), _) | (_, Err(e)) => vec![e],
        }
    };
}

/// Validates an object for create. Kinds orch does not know get metadata checks only.
pub fn validate(obj: &DynamicObject) -> Vec<FieldError> {
    if registry::by_kind(&obj.types.api_version, &obj.types.kind).is_none() {
        return meta::object_meta(&obj.metadata, true, NameRule::Subdomain);
    }
    match defaulted(obj) {
        Ok(d) => validate_defaulted(&d),
        Err(e) => vec![e],
    }
}

/// [`validate`] for an object that is already defaulted (by
/// [`apply_defaults`](crate::defaults::apply_defaults), as the API server's admission does):
/// the same checks without defaulting a copy first (defaulting is idempotent).
pub fn validate_defaulted(d: &DynamicObject) -> Vec<FieldError> {
    let mut errs = object_rules(d);
    if d.types.api_version == "v1" && d.types.kind == "Pod" {
        errs.extend(check!(d, k8s_openapi::api::core::v1::Pod, core::pod_create));
    }
    errs
}

/// The rules an object is held to on create and on every update (upstream's
/// `validatePodMetadataAndSpec` and the like); create-only ones are in [`validate_defaulted`].
fn object_rules(d: &DynamicObject) -> Vec<FieldError> {
    use k8s_openapi::api::{
        apps::v1 as kapps, autoscaling::v2 as as2, batch::v1 as kbatch, coordination::v1 as coord,
        core::v1 as kcore, events::v1 as kevents, policy::v1 as kpolicy, scheduling::v1 as sched,
        storage::v1 as kstorage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    let Some(info) = registry::by_kind(&d.types.api_version, &d.types.kind) else {
        return meta::object_meta(&d.metadata, true, NameRule::Subdomain);
    };
    let sub = NameRule::Subdomain;
    match (info.group, info.kind) {
        ("", "Pod") => check!(&d, kcore::Pod, core::pod),
        ("", "Service") => check!(&d, kcore::Service, core::service),
        ("", "ConfigMap") => check!(&d, kcore::ConfigMap, core::config_map),
        ("", "PodTemplate") => check!(&d, kcore::PodTemplate, core::pod_template),
        ("", "Secret") => check!(&d, kcore::Secret, core::secret),
        ("", "Namespace") => check!(&d, kcore::Namespace, core::namespace),
        ("", "Node") => check!(&d, kcore::Node, core::node),
        ("", "Endpoints") => check!(&d, kcore::Endpoints, core::endpoints),
        ("", "Event") => check!(&d, kcore::Event, core::event),
        ("", "ReplicationController") => {
            check!(
                &d,
                kcore::ReplicationController,
                core::replication_controller
            )
        }
        ("", "PersistentVolumeClaim") => {
            check!(&d, kcore::PersistentVolumeClaim, storage::pvc)
        }
        ("", "PersistentVolume") => check!(&d, kcore::PersistentVolume, storage::pv),
        ("", "ResourceQuota") => check!(&d, kcore::ResourceQuota, quota::resource_quota),
        ("", "LimitRange") => check!(&d, kcore::LimitRange, quota::limit_range),
        ("apps", "Deployment") => check!(&d, kapps::Deployment, apps::deployment),
        ("apps", "ReplicaSet") => check!(&d, kapps::ReplicaSet, apps::replica_set),
        ("apps", "DaemonSet") => check!(&d, kapps::DaemonSet, apps::daemon_set),
        ("apps", "StatefulSet") => check!(&d, kapps::StatefulSet, apps::stateful_set),
        ("apps", "ControllerRevision") => {
            check!(&d, kapps::ControllerRevision, apps::controller_revision)
        }
        ("batch", "Job") => check!(&d, kbatch::Job, batch::job),
        ("batch", "CronJob") => check!(&d, kbatch::CronJob, batch::cron_job),
        ("policy", "PodDisruptionBudget") => check!(&d, kpolicy::PodDisruptionBudget, policy::pdb),
        ("policy", "Eviction") => check!(&d, kpolicy::Eviction, policy::eviction),
        ("coordination.k8s.io", "Lease") => check!(&d, coord::Lease, other::lease),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            check!(&d, as2::HorizontalPodAutoscaler, other::hpa)
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            check!(&d, sched::PriorityClass, other::priority_class)
        }
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => check!(
            &d,
            k8s_openapi::api::flowcontrol::v1::FlowSchema,
            flowcontrol::flow_schema
        ),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => check!(
            &d,
            k8s_openapi::api::flowcontrol::v1::PriorityLevelConfiguration,
            flowcontrol::priority_level
        ),
        ("settings.k8s.io", "PodPreset") => {
            check!(&d, crate::settings::PodPreset, settings::pod_preset)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            check!(&d, apiext::CustomResourceDefinition, other::crd)
        }
        ("events.k8s.io", "Event") => check!(&d, kevents::Event, other::event),
        ("apiregistration.k8s.io", "APIService") => check!(
            &d,
            k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
            other::api_service
        ),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => check!(
            &d,
            k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
            admissionregistration::mutating
        ),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => check!(
            &d,
            k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
            admissionregistration::validating
        ),
        ("storage.k8s.io", "StorageClass") => {
            check!(&d, kstorage::StorageClass, storage::storage_class)
        }
        ("rbac.authorization.k8s.io", "Role") => {
            check!(&d, k8s_openapi::api::rbac::v1::Role, rbac::role)
        }
        ("rbac.authorization.k8s.io", "ClusterRole") => {
            check!(
                &d,
                k8s_openapi::api::rbac::v1::ClusterRole,
                rbac::cluster_role
            )
        }
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            check!(
                &d,
                k8s_openapi::api::rbac::v1::RoleBinding,
                rbac::role_binding
            )
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => check!(
            &d,
            k8s_openapi::api::rbac::v1::ClusterRoleBinding,
            rbac::cluster_role_binding
        ),
        ("discovery.k8s.io", "EndpointSlice") => check!(
            &d,
            k8s_openapi::api::discovery::v1::EndpointSlice,
            discovery::endpoint_slice
        ),
        ("certificates.k8s.io", "CertificateSigningRequest") => check!(
            &d,
            k8s_openapi::api::certificates::v1::CertificateSigningRequest,
            certificates::csr_create
        ),
        // ServiceAccount, Binding, Scale: metadata rules only.
        _ => meta::object_meta(&d.metadata, info.namespaced, sub),
    }
}

/// Validates an update: the create rules on `new` plus each kind's immutability rules
/// against `old`.
pub fn validate_update(new: &DynamicObject, old: &DynamicObject) -> Vec<FieldError> {
    match defaulted(new) {
        Ok(n) => validate_update_defaulted(&n, old),
        Err(e) => {
            let mut errs = validate(new);
            if new.types.kind != old.types.kind || new.types.api_version != old.types.api_version {
                errs.push(kind_changed(new));
            } else {
                errs.push(e);
            }
            errs
        }
    }
}

fn kind_changed(new: &DynamicObject) -> FieldError {
    FieldError::invalid("kind", &new.types.kind, "field is immutable")
}

/// Validates a write to the `status` subresource. Its object is the stored one with the
/// client's status (the server put everything else back, like upstream's status strategies'
/// `PrepareForUpdate`, e.g. `podStatusStrategy` in `pkg/registry/core/pod/strategy.go`), so —
/// like upstream's `ValidatePodStatusUpdate` / `ValidateReplicaSetStatusUpdate`, which check
/// metadata and the status fields, not the spec — it checks the metadata update and the status.
/// Status-field rules: ResourceQuota's resource names and values
/// (`ValidateResourceQuotaStatusUpdate`); other kinds have none yet.
pub fn validate_status_update(new: &DynamicObject, old: &DynamicObject) -> Vec<FieldError> {
    if new.types.kind != old.types.kind || new.types.api_version != old.types.api_version {
        return vec![kind_changed(new)];
    }
    if new.types.api_version == "v1" && new.types.kind == "ResourceQuota" {
        use k8s_openapi::api::core::v1::ResourceQuota;
        return check_update!(new, old, ResourceQuota, quota::resource_quota_status_update);
    }
    if is_csr(new) {
        return csr_update(new, old, certificates::CsrWrite::Status);
    }
    meta::object_meta_update(&new.metadata, &old.metadata)
}

fn is_csr(o: &DynamicObject) -> bool {
    o.types.api_version == "certificates.k8s.io/v1" && o.types.kind == "CertificateSigningRequest"
}

fn csr_update(
    new: &DynamicObject,
    old: &DynamicObject,
    write: certificates::CsrWrite,
) -> Vec<FieldError> {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequest as Csr;
    match (typed::<Csr>(new), typed::<Csr>(old)) {
        (Ok(n), Ok(o)) => certificates::csr_update(&n, &o, write),
        (Err(e), _) | (_, Err(e)) => vec![e],
    }
}

/// Validates a write to a CertificateSigningRequest's `approval` subresource (upstream
/// `ValidateCertificateSigningRequestApprovalUpdate`): its object is the stored request with
/// the client's conditions.
pub fn validate_approval_update(new: &DynamicObject, old: &DynamicObject) -> Vec<FieldError> {
    if new.types.kind != old.types.kind || new.types.api_version != old.types.api_version {
        return vec![kind_changed(new)];
    }
    csr_update(new, old, certificates::CsrWrite::Approval)
}

/// Validates a write to a pod's `ephemeralcontainers` subresource (upstream
/// `ValidatePodEphemeralContainersUpdate`, `podEphemeralContainersStrategy` in
/// `pkg/registry/core/pod/strategy.go`). Its object is the stored pod with the client's
/// `spec.ephemeralContainers` (the server put everything else back), so it checks the pod as
/// on any update (the ephemeral containers' own rules among them) and that existing ephemeral
/// containers stay as they are: they can only be added. `new` is defaulted; `old` is
/// defaulted here.
pub fn validate_ephemeral_containers_update(
    new: &DynamicObject,
    old: &DynamicObject,
) -> Vec<FieldError> {
    use k8s_openapi::api::core::v1::Pod;
    if new.types.kind != old.types.kind || new.types.api_version != old.types.api_version {
        return vec![kind_changed(new)];
    }
    let o = match defaulted(old) {
        Ok(o) => o,
        Err(e) => return vec![e],
    };
    match (typed::<Pod>(new), typed::<Pod>(&o)) {
        (Ok(n), Ok(o)) => core::pod_ephemeral_containers_update(&n, &o, object_rules(new)),
        (Err(e), _) | (_, Err(e)) => vec![e],
    }
}

/// [`validate_update`] for a `new` object that is already defaulted (as after admission's
/// defaulting); `old` is defaulted here, like upstream decodes (and defaults) the stored object.
pub fn validate_update_defaulted(new: &DynamicObject, old: &DynamicObject) -> Vec<FieldError> {
    use k8s_openapi::api::{
        apps::v1 as kapps, batch::v1 as kbatch, core::v1 as kcore, scheduling::v1 as sched,
        storage::v1 as kstorage,
    };
    let mut errs = if registry::by_kind(&new.types.api_version, &new.types.kind).is_none() {
        meta::object_meta(&new.metadata, true, NameRule::Subdomain)
    } else {
        create_rules_on_update(new)
    };
    if new.types.kind != old.types.kind || new.types.api_version != old.types.api_version {
        errs.push(kind_changed(new));
        return errs;
    }
    let n = new;
    let o = match defaulted(old) {
        Ok(o) => o,
        Err(e) => {
            errs.push(e);
            return errs;
        }
    };
    let o = &o;
    let Some(info) = registry::by_kind(&n.types.api_version, &n.types.kind) else {
        errs.extend(meta::object_meta_update(&n.metadata, &o.metadata));
        return errs;
    };
    errs.extend(match (info.group, info.kind) {
        ("", "Pod") => check_update!(n, o, kcore::Pod, core::pod_update),
        ("", "Service") => check_update!(n, o, kcore::Service, core::service_update),
        ("", "ConfigMap") => check_update!(n, o, kcore::ConfigMap, core::config_map_update),
        ("", "Secret") => check_update!(n, o, kcore::Secret, core::secret_update),
        ("", "PersistentVolumeClaim") => {
            check_update!(n, o, kcore::PersistentVolumeClaim, storage::pvc_update)
        }
        ("", "PersistentVolume") => {
            check_update!(n, o, kcore::PersistentVolume, storage::pv_update)
        }
        ("", "ResourceQuota") => {
            check_update!(n, o, kcore::ResourceQuota, quota::resource_quota_update)
        }
        ("apps", "Deployment") => {
            check_update!(n, o, kapps::Deployment, apps::deployment_update)
        }
        ("apps", "ReplicaSet") => {
            check_update!(n, o, kapps::ReplicaSet, apps::replica_set_update)
        }
        ("apps", "DaemonSet") => check_update!(n, o, kapps::DaemonSet, apps::daemon_set_update),
        ("apps", "StatefulSet") => {
            check_update!(n, o, kapps::StatefulSet, apps::stateful_set_update)
        }
        ("apps", "ControllerRevision") => check_update!(
            n,
            o,
            kapps::ControllerRevision,
            apps::controller_revision_update
        ),
        ("batch", "Job") => check_update!(n, o, kbatch::Job, batch::job_update),
        ("batch", "CronJob") => check_update!(n, o, kbatch::CronJob, batch::cron_job_update),
        ("scheduling.k8s.io", "PriorityClass") => {
            check_update!(n, o, sched::PriorityClass, other::priority_class_update)
        }
        ("storage.k8s.io", "StorageClass") => {
            check_update!(n, o, kstorage::StorageClass, storage::storage_class_update)
        }
        ("rbac.authorization.k8s.io", "RoleBinding") => check_update!(
            n,
            o,
            k8s_openapi::api::rbac::v1::RoleBinding,
            rbac::role_binding_update
        ),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => check_update!(
            n,
            o,
            k8s_openapi::api::rbac::v1::ClusterRoleBinding,
            rbac::cluster_role_binding_update
        ),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            csr_update(n, o, certificates::CsrWrite::Main)
        }
        ("discovery.k8s.io", "EndpointSlice") => check_update!(
            n,
            o,
            k8s_openapi::api::discovery::v1::EndpointSlice,
            discovery::endpoint_slice_update
        ),
        _ => meta::object_meta_update(&n.metadata, &o.metadata),
    });
    errs
}

/// The create rules an update is held to as well: all of them, but for CronJob and
/// CertificateSigningRequest, whose update rules (upstream `ValidateCronJobUpdate`,
/// `ValidateCertificateSigningRequestUpdate`) replace them.
fn create_rules_on_update(new: &DynamicObject) -> Vec<FieldError> {
    if new.types.api_version == "batch/v1" && new.types.kind == "CronJob" || is_csr(new) {
        return Vec::new();
    }
    object_rules(new)
}

/// The 422 `Invalid` API error kube-apiserver answers for these errors: message
/// `Deployment.apps "web" is invalid: [...]`, one `details.causes` entry per error.
pub fn invalid_error(obj: &DynamicObject, errs: &[FieldError]) -> ApiError {
    let (group, _) = registry::split_api_version(&obj.types.api_version);
    let qualified = if group.is_empty() {
        obj.types.kind.clone()
    } else {
        format!("{}.{group}", obj.types.kind)
    };
    let mut e = ApiError::invalid(
        &qualified,
        obj.name(),
        errs.iter().map(FieldError::to_status_cause).collect(),
    );
    let joined: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let list = if joined.len() == 1 {
        joined[0].clone()
    } else {
        format!("[{}]", joined.join(", "))
    };
    e.message = format!("{qualified} \"{}\" is invalid: {list}", obj.name());
    if let Some(d) = e.details.as_mut() {
        d.kind = Some(obj.types.kind.clone());
        d.group = (!group.is_empty()).then(|| group.to_string());
    }
    e
}

#[cfg(test)]
mod ephemeral_tests;
#[cfg(test)]
mod tests;
