//! POST: create an object.

use super::meta::{generate_name, initial_status, time, tracks_generation};
use super::{qualified, storage_error, Resource, RestResult};
use crate::server::ApiServer;
use crate::storage::WriteOp;
use orch_types::client::PostParams;
use orch_types::{ApiError, DynamicObject};
use std::sync::Arc;

/// The outcome of a write: the stored object and any `Warning` headers to send.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object as stored (or as it would be, for a dry run).
    pub object: Arc<DynamicObject>,
    /// Warnings (e.g. unknown fields with `fieldValidation=Warn`).
    pub warnings: Vec<String>,
}

impl ApiServer {
    /// Checks that `ns` exists and is not terminating (upstream `NamespaceLifecycle` admission).
    pub(crate) async fn check_namespace_for_create(
        &self,
        info: Resource,
        ns: &str,
        name: &str,
    ) -> RestResult<()> {
        let ns_key = crate::storage::key::object_key("", "namespaces", None, ns);
        let found = self
            .storage
            .get(&ns_key)
            .await
            .map_err(|e| storage_error(info, name, e))?;
        match found {
            None => Err(ApiError::not_found("namespaces", ns)),
            Some(v) if v.object.metadata.deletion_timestamp.is_some() => Err(ApiError::forbidden(
                &qualified(info),
                name,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Creates an object (`POST`). `ns` is the namespace of the request.
    pub async fn create_object(
        &self,
        info: Resource,
        ns: Option<&str>,
        obj: DynamicObject,
        p: &PostParams,
    ) -> RestResult<Written> {
        crate::fieldmanager::validate_manager(p.field_manager.as_deref(), "CreateOptions")?;
        let writer = crate::fieldmanager::Writer {
            manager: p.field_manager.as_deref(),
            subresource: None,
        };
        self.create_object_as(info, ns, obj, p, Some(&writer)).await
    }

    /// [`Self::create_object`] recording the object's fields in `managedFields` as `writer`'s
    /// Update ([`crate::fieldmanager`]; `None`: server-side apply recorded them).
    pub(crate) async fn create_object_as(
        &self,
        info: Resource,
        ns: Option<&str>,
        mut obj: DynamicObject,
        p: &PostParams,
        writer: Option<&crate::fieldmanager::Writer<'_>>,
    ) -> RestResult<Written> {
        if let Some(review) = crate::auth::review::create(self, info, ns, &obj).await {
            return review.map(|o| Written {
                object: Arc::new(o),
                warnings: Vec::new(),
            });
        }
        if info.kind == "Binding" && info.group.is_empty() {
            // POST .../bindings binds the pod named by the Binding (legacy form of pods/binding).
            if let Some(pods) = orch_types::registry::by_kind("v1", "Pod") {
                let name = obj.name().to_string();
                let ns = ns.or(obj.namespace()).map(str::to_string);
                let object = self
                    .create_subresource(pods, ns.as_deref(), &name, "binding", obj)
                    .await?;
                return Ok(Written {
                    object,
                    warnings: Vec::new(),
                });
            }
        }
        let ns = match (info.namespaced, ns, obj.metadata.namespace.as_deref()) {
            (false, _, _) => None,
            (true, Some(url), Some(body)) if !url.is_empty() && url != body => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            (true, Some(url), _) if !url.is_empty() => Some(url.to_string()),
            (true, _, Some(body)) if !body.is_empty() => Some(body.to_string()),
            (true, _, _) => Some("default".to_string()),
        };
        self.check_type_meta(info, &mut obj)?;
        let mut warnings = self.check_fields(info, &obj, p.field_validation.as_deref())?;
        if obj.metadata.name.as_deref().unwrap_or("").is_empty() {
            match obj.metadata.generate_name.as_deref() {
                Some(base) if !base.is_empty() => {
                    obj.metadata.name = Some(generate_name(base));
                }
                _ => {
                    return Err(ApiError::invalid(
                        info.kind,
                        "",
                        vec![cause(
                            "metadata.name",
                            "FieldValueRequired",
                            "name or generateName is required",
                        )],
                    ))
                }
            }
        }
        let name = obj.name().to_string();
        if obj
            .metadata
            .resource_version
            .as_deref()
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if let Some(ns) = ns.as_deref() {
            self.check_namespace_for_create(info, ns, &name).await?;
        }
        // BeforeCreate: server-owned metadata.
        let m = &mut obj.metadata;
        m.namespace = ns.clone();
        m.uid = Some(uuid::Uuid::new_v4().to_string());
        m.creation_timestamp = Some(time(self.config.clock.now()));
        m.deletion_timestamp = None;
        m.deletion_grace_period_seconds = None;
        m.generation = tracks_generation(info).then_some(1);
        if let Some(cr) = self.custom(info) {
            if cr.terminating() {
                return Err(ApiError::new(
                    405,
                    orch_types::status::reason::METHOD_NOT_ALLOWED,
                    "create not allowed while custom resource definition is terminating",
                ));
            }
            // With a status subresource, status is written there only
            // (upstream `customresource/strategy.go` PrepareForCreate).
            if cr.has_status() {
                obj.data.shift_remove("status");
            }
        }
        if let Some(status) = initial_status(info) {
            obj.data.insert("status".into(), status);
        }
        if info.kind == "Namespace" {
            namespace_finalizer(&mut obj);
        }
        if crate::certificates::is_csr(info) {
            crate::certificates::prepare_create(&mut obj);
        }
        let mut admitted = self
            .admit(info, &mut obj, None, super::update::Part::Main, p.dry_run)
            .await?;
        self.admit_usage(info, &mut obj, None, p.dry_run).await?;
        if info.kind == "Pod" && info.group.is_empty() {
            pod_qos_class(&mut obj);
        }
        warnings.append(&mut admitted.warnings);
        if let Some(w) = writer {
            let now = time(self.config.clock.now()).0;
            let custom = self.custom(info);
            crate::fieldmanager::update_object(info, custom.as_deref(), None, &mut obj, w, now);
        }
        // Service cluster IPs and node ports (upstream's service REST `beginCreate`).
        let allocation = self
            .allocate_service(info, &mut obj, None, p.dry_run)
            .await?;
        if p.dry_run {
            return Ok(Written {
                object: Arc::new(obj),
                warnings,
            });
        }
        let key = self.key(info, ns.as_deref(), &name);
        let create = WriteOp::Create {
            key,
            object: obj,
            ttl: self.ttl(info),
        };
        let v = match self.storage.write(create).await {
            Ok(v) => {
                allocation.commit(self).await;
                v
            }
            Err(e) => {
                allocation.revert(self).await;
                return Err(storage_error(info, &name, e));
            }
        };
        admitted.after_store(self, &v.object);
        Ok(Written {
            object: v.object,
            warnings,
        })
    }

    /// Fills in or checks `apiVersion` and `kind` against the resource addressed.
    pub(crate) fn check_type_meta(
        &self,
        info: Resource,
        obj: &mut DynamicObject,
    ) -> RestResult<()> {
        let want = info.api_version();
        if obj.types.api_version.is_empty() {
            obj.types.api_version = want.clone();
        }
        if obj.types.kind.is_empty() {
            obj.types.kind = info.kind.to_string();
        }
        if obj.types.api_version != want || obj.types.kind != info.kind {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({want}) or the kind ({}) does not match {}",
                obj.types.api_version, obj.types.kind, info.kind
            )));
        }
        Ok(())
    }
}

/// A `details.causes[]` entry.
pub fn cause(
    field: &str,
    reason: &str,
    message: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
        field: Some(field.into()),
        reason: Some(reason.into()),
        message: Some(message.into()),
    }
}

/// A new pod's `status.qosClass`, from its resources once admission (LimitRanger) has set
/// their defaults (upstream pod strategy `PrepareForCreate`, which runs after mutating
/// admission).
fn pod_qos_class(pod: &mut DynamicObject) {
    let Some(spec) = pod.data.get("spec").and_then(|s| {
        serde_json::from_value::<k8s_openapi::api::core::v1::PodSpec>(s.clone()).ok()
    }) else {
        return;
    };
    let qos = orch_types::resources::qos_class(&spec);
    if let Some(status) = pod.data.get_mut("status").and_then(|s| s.as_object_mut()) {
        status.insert("qosClass".into(), qos.into());
    }
}

/// Namespaces get the `kubernetes` finalizer in `spec.finalizers` (upstream namespace strategy).
fn namespace_finalizer(obj: &mut DynamicObject) {
    let spec = obj
        .data
        .entry("spec")
        .or_insert_with(|| serde_json::json!({}));
    if let Some(spec) = spec.as_object_mut() {
        let fins = spec
            .entry("finalizers")
            .or_insert_with(|| serde_json::json!([]));
        if let Some(list) = fins.as_array_mut() {
            if !list.iter().any(|f| f == "kubernetes") {
                list.push("kubernetes".into());
            }
        }
    }
}
