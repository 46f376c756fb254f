//! The subresources kubectl and the components need besides `status`: `scale` (autoscaling/v1
//! `Scale` for deployments, replicasets, statefulsets and replicationcontrollers),
//! `pods/binding`, `pods/eviction` (a delete that PodDisruptionBudgets allow or refuse, see
//! [`ApiServer::evict_pod`]) and `pods/log` (proxied to the kubelet).
//!
//! The conversions are pure ([`scale_of`], [`replicas_from_scale`], [`binding_target`]);
//! the async functions run them inside the API server's guaranteed-update loop so every
//! change is one compare-and-swap write, with admission, like a PUT.
//!
//! ```
//! use orch_apiserver::subresources::scale_of;
//! use orch_types::DynamicObject;
//! let d: DynamicObject = serde_json::from_value(serde_json::json!({
//!     "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
//!     "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
//!     "status": {"replicas": 2}})).unwrap();
//! let s = scale_of(&d);
//! assert_eq!((s["spec"]["replicas"].as_i64(), s["status"]["selector"].as_str()), (Some(3), Some("app=web")));
//! ```

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceSubresourceScale;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails, Time};
use orch_types::client::{DeleteParams, ListParams, PostParams, Preconditions};
use orch_types::labels::Selector;
use orch_types::status::reason;
use orch_types::{ApiError, DynamicObject};
use serde_json::{json, Value};

use crate::patch::strategic::strategic_merge;
use crate::rest::patch::PatchType;
use crate::rest::update::Part;
use crate::rest::{qualified, Resource, RestResult};
use crate::schema::{SchemaNode, Schemas};
use crate::server::ApiServer;

/// A label selector (`matchLabels` + `matchExpressions`, or a replication controller's plain
/// map) in its string form, as `Scale.status.selector` carries it.
fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel.and_then(Value::as_object) else {
        return String::new();
    };
    let mut parts: Vec<String> = Vec::new();
    let plain = !sel.contains_key("matchLabels") && !sel.contains_key("matchExpressions");
    let labels = if plain {
        Some(sel)
    } else {
        sel.get("matchLabels").and_then(Value::as_object)
    };
    for (k, v) in labels.into_iter().flatten() {
        parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let mut vals: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        vals.sort_unstable();
        parts.push(
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => format!("{key} in ({})", vals.join(",")),
                "NotIn" => format!("{key} notin ({})", vals.join(",")),
                "Exists" => key.to_string(),
                _ => format!("!{key}"),
            },
        );
    }
    parts.sort();
    parts.join(",")
}

/// The autoscaling/v1 `Scale` of a scalable object.
pub fn scale_of(o: &DynamicObject) -> Value {
    let spec = o.data.get("spec");
    let replicas = spec
        .and_then(|s| s.get("replicas"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let status_replicas = o
        .data
        .get("status")
        .and_then(|s| s.get("replicas"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    scale_document(
        o,
        replicas,
        status_replicas,
        &selector_string(spec.and_then(|s| s.get("selector"))),
    )
}

/// The autoscaling/v1 `Scale` document of `o` with these counts and selector.
fn scale_document(o: &DynamicObject, replicas: i64, status_replicas: i64, selector: &str) -> Value {
    let m = &o.metadata;
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": m.name, "namespace": m.namespace, "uid": m.uid,
            "resourceVersion": m.resource_version, "creationTimestamp": m.creation_timestamp,
        },
        "spec": {"replicas": replicas},
        "status": {"replicas": status_replicas, "selector": selector},
    })
}

/// The value at a custom resource's scale path (`.spec.replicas`: dot-separated fields, as
/// upstream's CRD validation requires of `specReplicasPath` and the others).
fn at_path<'a>(o: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(o, |v, seg| v.get(seg))
}

/// The autoscaling/v1 `Scale` of a custom object, read at the paths of its CRD version's
/// `subresources.scale` (upstream `customresource/registry/scale.go`, `scaleFromCustomResource`:
/// a missing spec or status count is 0; the selector is the string at `labelSelectorPath`).
pub fn custom_scale_of(o: &DynamicObject, paths: &CustomResourceSubresourceScale) -> Value {
    let v = o.to_value();
    let count = |p: &str| at_path(&v, p).and_then(Value::as_i64).unwrap_or(0);
    let selector = paths
        .label_selector_path
        .as_deref()
        .and_then(|p| at_path(&v, p))
        .and_then(Value::as_str)
        .unwrap_or("");
    scale_document(
        o,
        count(&paths.spec_replicas_path),
        count(&paths.status_replicas_path),
        selector,
    )
}

/// `spec.replicas` from a `Scale` document; 422 when missing or negative, like upstream's
/// `ValidateScale`.
pub fn replicas_from_scale(scale: &Value, name: &str) -> RestResult<i64> {
    let invalid = |msg: &str| {
        ApiError::invalid(
            "Scale",
            name,
            vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                    field: Some("spec.replicas".into()),
                    message: Some(msg.into()),
                    reason: Some("FieldValueInvalid".into()),
                },
            ],
        )
    };
    match scale.get("spec").and_then(|s| s.get("replicas")) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 && n <= i64::from(i32::MAX) => Ok(n),
            Some(_) => Err(invalid("must be greater than or equal to 0")),
            None => Err(invalid("must be an integer")),
        },
    }
}

fn scale_subject(info: Resource) -> RestResult<()> {
    if info.subresource("scale").is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found(
            &format!("{}/scale", qualified(info)),
            "",
        ))
    }
}

/// Sets `spec.replicas` from a `Scale`; a non-empty `metadata.resourceVersion` in the Scale is a
/// precondition on the object (upstream scale update semantics).
fn apply_scale(
    cur: &DynamicObject,
    scale: &Value,
    name: &str,
    custom: Option<&CustomResourceSubresourceScale>,
) -> RestResult<DynamicObject> {
    let replicas = replicas_from_scale(scale, name)?;
    let mut new = cur.clone();
    if let Some(rv) = scale
        .get("metadata")
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
    {
        new.metadata.resource_version = Some(rv.to_string());
    } else {
        new.metadata.resource_version = None;
    }
    let path = custom.map_or("spec.replicas", |c| {
        c.spec_replicas_path.trim_start_matches('.')
    });
    let segs: Vec<&str> = path.split('.').collect();
    let Some((last, parents)) = segs.split_last() else {
        return Ok(new);
    };
    let mut at = &mut new.data;
    for seg in parents {
        let next = at.entry(seg.to_string()).or_insert_with(|| json!({}));
        if !next.is_object() {
            *next = json!({});
        }
        let Some(m) = next.as_object_mut() else {
            return Ok(new);
        };
        at = m;
    }
    at.insert(last.to_string(), json!(replicas));
    Ok(new)
}

/// A write through `scale`: the parent object's `spec.replicas` moves to the writer's entry
/// with `subresource: scale` (upstream `ScaleHandler`).
fn scale_writer(field_manager: Option<&str>) -> crate::fieldmanager::Writer<'_> {
    crate::fieldmanager::Writer {
        manager: field_manager,
        subresource: Some("scale"),
    }
}

/// Applies a patch of any type to a `Scale` document.
fn patch_scale(kind: PatchType, scale: &Value, patch: &Value) -> RestResult<Value> {
    match kind {
        PatchType::Merge | PatchType::Apply => {
            let mut doc = scale.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            let mut doc = scale.clone();
            json_patch::patch(&mut doc, &ops)
                .map_err(|e| ApiError::new(422, reason::INVALID, e.to_string()))?;
            Ok(doc)
        }
        PatchType::Strategic => {
            let schemas = Schemas::builtin();
            let node = schemas
                .root("autoscaling", "v1", "Scale")
                .unwrap_or_else(|| SchemaNode::unknown(schemas));
            strategic_merge(scale, patch, node).map_err(|e| ApiError::bad_request(e.to_string()))
        }
    }
}

impl ApiServer {
    /// The scale paths of a custom resource's version (`None` for built-in kinds).
    fn custom_scale(&self, info: Resource) -> Option<CustomResourceSubresourceScale> {
        self.custom(info)?
            .version
            .subresources
            .as_ref()?
            .scale
            .clone()
    }

    /// The `Scale` of `o`: built-in or at a custom resource's paths.
    fn scale_view(
        &self,
        o: &DynamicObject,
        custom: Option<&CustomResourceSubresourceScale>,
    ) -> Value {
        match custom {
            Some(paths) => custom_scale_of(o, paths),
            None => scale_of(o),
        }
    }

    /// `GET …/scale`.
    pub async fn get_scale(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
    ) -> RestResult<Value> {
        scale_subject(info)?;
        let custom = self.custom_scale(info);
        Ok(self.scale_view(&*self.get_object(info, ns, name).await?, custom.as_ref()))
    }

    /// `PUT …/scale`.
    pub async fn update_scale(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        scale: &Value,
        dry_run: bool,
        field_manager: Option<&str>,
    ) -> RestResult<Value> {
        scale_subject(info)?;
        crate::fieldmanager::validate_manager(field_manager, "UpdateOptions")?;
        let ns = self.object_namespace(info, ns)?;
        let writer = scale_writer(field_manager);
        let custom = self.custom_scale(info);
        let out = self
            .guaranteed_update_as(info, ns, name, Part::Main, dry_run, Some(&writer), |cur| {
                apply_scale(cur, scale, name, custom.as_ref())
            })
            .await?;
        Ok(self.scale_view(&out.written().object, custom.as_ref()))
    }

    /// `PATCH …/scale` (merge, JSON, strategic).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch_scale(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        kind: PatchType,
        patch: &Value,
        dry_run: bool,
        field_manager: Option<&str>,
    ) -> RestResult<Value> {
        scale_subject(info)?;
        crate::fieldmanager::validate_manager(field_manager, "PatchOptions")?;
        let ns = self.object_namespace(info, ns)?;
        let writer = scale_writer(field_manager);
        let custom = self.custom_scale(info);
        let out = self
            .guaranteed_update_as(info, ns, name, Part::Main, dry_run, Some(&writer), |cur| {
                let patched = patch_scale(kind, &self.scale_view(cur, custom.as_ref()), patch)?;
                apply_scale(cur, &patched, name, custom.as_ref())
            })
            .await?;
        Ok(self.scale_view(&out.written().object, custom.as_ref()))
    }

    /// `POST pods/NAME/binding`: sets `spec.nodeName` of an unbound pod (409 if bound).
    ///
    /// Like upstream's `BindingREST`, this is its own compare-and-swap write, not a pod update:
    /// pod update validation forbids changing `spec.nodeName`.
    pub async fn bind_pod(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        binding: &DynamicObject,
    ) -> RestResult<Arc<DynamicObject>> {
        let node = binding_target(binding)?;
        let ns = self.object_namespace(info, ns)?;
        let key = self.key(info, ns, name);
        let res = qualified(info);
        for _ in 0..16 {
            let cur = self
                .storage()
                .get(&key)
                .await
                .map_err(|e| crate::rest::storage_error(info, name, e))?
                .ok_or_else(|| ApiError::not_found(&res, name))?;
            let now = self.config().clock.now();
            let new = bound_pod(&cur.object, &node, binding, name, now)?;
            match self
                .storage()
                .update(&key, new, Some(cur.mod_revision))
                .await
            {
                Ok(v) => return Ok(v.object),
                Err(crate::storage::StorageError::Conflict { .. }) => continue,
                Err(e) => return Err(crate::rest::storage_error(info, name, e)),
            }
        }
        Err(ApiError::conflict(&res, name, "the object has been modified; please apply your changes to the latest version and try again"))
    }

    /// `POST pods/NAME/eviction`: deletes the pod with the eviction's `deleteOptions` if the
    /// PodDisruptionBudgets that select it allow, as upstream
    /// `pkg/registry/core/pod/storage/eviction.go` (Kubernetes 1.33):
    /// - a pod that is terminal, `Pending` or already being deleted is deleted without a look
    ///   at budgets (`canIgnorePDB`);
    /// - more than one budget: 500; none: deleted;
    /// - a pod that is not Ready is deleted without spending the budget if its
    ///   `unhealthyPodEvictionPolicy` is `AlwaysAllow`, or (`IfHealthyBudget`, the default) if
    ///   the budget has its desired healthy pods; such a delete is conditional on the pod's
    ///   resourceVersion, so a pod that became Ready meanwhile is not deleted (429);
    /// - otherwise the budget must allow a disruption ([`check_and_decrement`]): one is taken
    ///   from `status.disruptionsAllowed` and the pod recorded in `status.disruptedPods` with an
    ///   optimistic-concurrency write of the budget's status (retried on conflict), and only
    ///   then is the pod deleted.
    ///
    /// `deleteOptions.dryRun` checks everything and writes nothing.
    pub async fn evict_pod(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        eviction: &DynamicObject,
    ) -> RestResult<Arc<DynamicObject>> {
        let opts = eviction_delete_params(eviction)?;
        let ns = self.object_namespace(info, ns)?;
        let pinned = opts
            .preconditions
            .as_ref()
            .is_some_and(|p| p.resource_version.is_some());
        // A pod that can ignore its budgets goes at once; a conflict (the pod changed under the
        // resourceVersion precondition set here) is retried unless the client pinned one.
        let mut tries = 0;
        let pod = loop {
            let pod = self.get_object(info, ns, name).await?;
            if !can_ignore_pdb(&pod) {
                break pod;
            }
            let mut p = opts.clone();
            if should_enforce_resource_version(&pod) && !pinned {
                pin_resource_version(&mut p, &pod);
            }
            match self.delete_object(info, ns, name, &p).await {
                Ok(_) => return eviction_success(),
                Err(e) if e.is_conflict() && !pinned && tries + 1 < EVICTION_RETRIES => {
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let mut budgets = self.pod_disruption_budgets(&pod).await?;
        if budgets.len() > 1 {
            return Err(ApiError::new(
                500,
                reason::INTERNAL_ERROR,
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        let Some(pdb) = budgets.pop() else {
            self.delete_object(info, ns, name, &opts).await?;
            return eviction_success();
        };
        let pdb_name = pdb.metadata.name.clone().unwrap_or_default();
        // IsPodReady stands for healthy: an unhealthy pod does not count towards the budget.
        let spend = pod_is_ready(&pod) || {
            let spec = pdb.spec.clone().unwrap_or_default();
            let st = pdb.status.clone().unwrap_or_default();
            let always = spec.unhealthy_pod_eviction_policy.as_deref() == Some("AlwaysAllow");
            let healthy_budget = st.current_healthy >= st.desired_healthy && st.desired_healthy > 0;
            !(always || healthy_budget)
        };
        let mut p = opts.clone();
        if spend {
            self.check_and_decrement(name, pdb, opts.dry_run).await?;
        } else {
            // Conditional on the pod's version: it must not have become Ready since.
            pin_resource_version(&mut p, &pod);
        }
        match self.delete_object(info, ns, name, &p).await {
            Ok(_) => eviction_success(),
            Err(e) if e.is_conflict() && !spend && !pinned => Err(still_processing(&pdb_name)),
            Err(e) => Err(e),
        }
    }

    /// The PodDisruptionBudgets of the pod's namespace whose selector matches it (an invalid
    /// selector matches nothing; policy/v1: an empty one matches every pod).
    async fn pod_disruption_budgets(
        &self,
        pod: &DynamicObject,
    ) -> RestResult<Vec<PodDisruptionBudget>> {
        let pdbs = pdb_resource()?;
        let ns = pod.namespace().unwrap_or_default();
        let list = self
            .list_objects(pdbs, Some(ns), &ListParams::default())
            .await?;
        let mut out = Vec::new();
        for o in list.items {
            let pdb: PodDisruptionBudget = o
                .to_typed()
                .map_err(|e| ApiError::internal(format!("cannot read PodDisruptionBudget: {e}")))?;
            let selected =
                Selector::from_optional(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()))
                    .is_ok_and(|s| s.matches_opt(pod.metadata.labels.as_ref()));
            if selected {
                out.push(pdb);
            }
        }
        Ok(out)
    }

    /// Takes one disruption from `pdb` for pod `pod` (upstream `checkAndDecrement` in
    /// `RetryOnConflict`): refused with 429 while the budget's status lags its spec or allows
    /// none; otherwise `disruptionsAllowed` is decremented and the pod recorded in
    /// `disruptedPods` (nothing written on a dry run), by a status update pinned to the
    /// resourceVersion read; a conflict reads the budget again and retries.
    async fn check_and_decrement(
        &self,
        pod: &str,
        mut pdb: PodDisruptionBudget,
        dry_run: bool,
    ) -> RestResult<()> {
        let pdbs = pdb_resource()?;
        let ns = pdb.metadata.namespace.clone();
        let name = pdb.metadata.name.clone().unwrap_or_default();
        for attempt in 0..EVICTION_RETRIES {
            if attempt > 0 {
                pdb = self
                    .get_object(pdbs, ns.as_deref(), &name)
                    .await?
                    .to_typed()
                    .map_err(|e| {
                        ApiError::internal(format!("cannot read PodDisruptionBudget: {e}"))
                    })?;
            }
            let generation = pdb.metadata.generation.unwrap_or(0);
            let st = pdb.status.get_or_insert_with(Default::default);
            if st.observed_generation.unwrap_or(0) < generation {
                return Err(still_processing(&name));
            }
            if st.disruptions_allowed < 0 {
                return Err(pdb_forbidden(&name, "pdb disruptions allowed is negative"));
            }
            if st.disrupted_pods.as_ref().map_or(0, |m| m.len()) > MAX_DISRUPTED_PODS {
                return Err(pdb_forbidden(
                    &name,
                    "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
                ));
            }
            if st.disruptions_allowed == 0 {
                return Err(disruption_budget_error(
                    format!(
                        "The disruption budget {name} needs {} healthy pods and has {} currently",
                        st.desired_healthy, st.current_healthy
                    ),
                    0,
                ));
            }
            let now = self.config().clock.now();
            st.disruptions_allowed -= 1;
            if st.disruptions_allowed == 0 {
                orch_types::conditions::update_disruption_allowed_condition(st, now);
            }
            if dry_run {
                return Ok(());
            }
            // The disruption controller does not count the pod as healthy while it waits to
            // see it deleted (at most its DeletionTimeout).
            st.disrupted_pods
                .get_or_insert_with(Default::default)
                .insert(pod.to_string(), Time(now));
            let obj = DynamicObject::from_typed(&pdb).map_err(|e| {
                ApiError::internal(format!("cannot encode PodDisruptionBudget: {e}"))
            })?;
            match self
                .update_object(
                    pdbs,
                    ns.as_deref(),
                    &name,
                    Part::Status,
                    obj,
                    &PostParams::default(),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            }
        }
        // Upstream meant a Timeout here ("couldn't update PodDisruptionBudget due to
        // conflicts"), but client-go's retry hands back the last Conflict; a 429 tells clients
        // such as `kubectl drain` to come back, which is what a busy budget needs.
        Err(disruption_budget_error(
            format!("couldn't update PodDisruptionBudget {name:?} due to conflicts"),
            10,
        ))
    }

    /// `GET pods/NAME/log`: proxies to the pod's kubelet
    /// (`GET http://<InternalIP>:<kubelet port>/containerLogs/{ns}/{pod}/{container}`),
    /// passing the query through and streaming the answer (`follow=true` keeps it open).
    pub async fn pod_log(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        query: &[(String, String)],
    ) -> RestResult<Response> {
        let pod = self.get_object(info, ns, name).await?;
        let namespace = pod.namespace().unwrap_or("default").to_string();
        let container = log_container(&pod, query)?;
        let node_name = pod
            .data
            .get("spec")
            .and_then(|s| s.get("nodeName"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: pod is not scheduled"
                ))
            })?
            .to_string();
        let nodes = orch_types::registry::by_plural("", "v1", "nodes")
            .ok_or_else(|| ApiError::internal("nodes not served"))?;
        let node = self.get_object(nodes, None, &node_name).await?;
        let url = crate::kubelet_client::with_scheme(
            self,
            kubelet_log_url(&node, &namespace, name, &container, query)?,
        );
        let resp = crate::kubelet_client::http(self)
            .get(&url)
            .send()
            .await
            .map_err(|e| {
                crate::kubelet_client::unreachable(&node, &crate::kubelet_client::error_chain(&e))
            })?;
        let status =
            StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(ApiError::new(
                status.as_u16(),
                reason::BAD_REQUEST,
                text.trim().to_string(),
            ));
        }
        let stream =
            futures::StreamExt::map(resp.bytes_stream(), |r| r.map_err(std::io::Error::other));
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from_stream(stream))
            .map_err(|_| ApiError::internal("cannot start log stream"))
    }
}

/// The pod after binding it to `node` at `now`: `spec.nodeName`, the binding's annotations and
/// the `PodScheduled=True` condition (upstream `BindingREST.setPodNodeAndMetadata` in
/// `pkg/registry/core/pod/storage/storage.go`, which calls `podutil.UpdatePodCondition`).
fn bound_pod(
    cur: &DynamicObject,
    node: &str,
    binding: &DynamicObject,
    name: &str,
    now: jiff::Timestamp,
) -> RestResult<DynamicObject> {
    if cur.metadata.deletion_timestamp.is_some() {
        return Err(ApiError::conflict(
            "pods/binding",
            name,
            "pod is being deleted, cannot be assigned to a host",
        ));
    }
    if let Some(bound) = cur
        .data
        .get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(ApiError::conflict(
            "pods/binding",
            name,
            &format!("pod {name} is already assigned to node \"{bound}\""),
        ));
    }
    let mut new = cur.clone();
    if let Some(annotations) = &binding.metadata.annotations {
        new.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .extend(annotations.clone());
    }
    if let Some(s) = new
        .data
        .entry("spec")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        s.insert("nodeName".into(), json!(node));
    }
    set_scheduled(&mut new, now);
    Ok(new)
}

/// Upstream `UpdatePodCondition` with `PodScheduled=True`: the condition replaces any earlier
/// one (e.g. the scheduler's `False`/`Unschedulable`, reason and message dropped); its
/// transition time is `now` unless it was already `True`.
fn set_scheduled(pod: &mut DynamicObject, now: jiff::Timestamp) {
    let Some(status) = pod
        .data
        .entry("status")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    let Some(conditions) = status
        .entry("conditions")
        .or_insert_with(|| json!([]))
        .as_array_mut()
    else {
        return;
    };
    let old = conditions
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"));
    let since = old
        .map(|i| &conditions[i])
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(crate::rest::meta::time(now)));
    let condition = json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": since,
    });
    match old {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// The node a `Binding` targets.
pub fn binding_target(binding: &DynamicObject) -> RestResult<String> {
    let target = binding.data.get("target");
    let kind = target
        .and_then(|t| t.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("Node");
    if kind != "Node" && !kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "binding target kind must be Node, not {kind}"
        )));
    }
    target
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::invalid(
                "Binding",
                binding.name(),
                vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                        field: Some("target.name".into()),
                        message: Some("Required value".into()),
                        reason: Some("FieldValueRequired".into()),
                    },
                ],
            )
        })
}

fn eviction_delete_params(eviction: &DynamicObject) -> RestResult<DeleteParams> {
    let opts = eviction.data.get("deleteOptions");
    let mut p = DeleteParams::default();
    if let Some(o) = opts {
        p.grace_period_seconds = o.get("gracePeriodSeconds").and_then(Value::as_i64);
        if let Some(pre) = o.get("preconditions") {
            p.preconditions = Some(
                serde_json::from_value::<Preconditions>(pre.clone()).map_err(|e| {
                    ApiError::bad_request(format!("invalid deleteOptions.preconditions: {e}"))
                })?,
            );
        }
        p.dry_run = o
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    }
    Ok(p)
}

/// Tries of the budget status write (upstream `EvictionsRetry.Steps`).
const EVICTION_RETRIES: usize = 20;
/// More `disruptedPods` entries than this refuse evictions (upstream `MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;
/// The message of a refused eviction.
const EVICTION_REFUSED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
/// `Status.details.causes[].reason` of a refused eviction (upstream `DisruptionBudgetCause`).
pub const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";

fn pdb_resource() -> RestResult<Resource> {
    orch_types::registry::by_plural("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets not served"))
}

/// 429 `Cannot evict pod as it would violate the pod's disruption budget.` with one
/// `DisruptionBudget` cause saying why, and `retryAfterSeconds` when not 0 (upstream
/// `errors.NewTooManyRequests` plus the cause `checkAndDecrement` appends).
pub fn disruption_budget_error(cause: String, retry_after_seconds: i32) -> ApiError {
    let mut e = ApiError::new(429, reason::TOO_MANY_REQUESTS, EVICTION_REFUSED);
    e.details = Some(StatusDetails {
        causes: Some(vec![StatusCause {
            reason: Some(DISRUPTION_BUDGET_CAUSE.into()),
            message: Some(cause),
            field: None,
        }]),
        retry_after_seconds: (retry_after_seconds > 0).then_some(retry_after_seconds),
        ..Default::default()
    });
    e
}

/// The 429 of a budget whose status has not caught up with its spec (upstream
/// `createTooManyRequestsError`).
fn still_processing(pdb: &str) -> ApiError {
    disruption_budget_error(
        format!("The disruption budget {pdb} is still being processed by the server."),
        10,
    )
}

/// 403 on a budget in a state no eviction may use (upstream `errors.NewForbidden`).
fn pdb_forbidden(pdb: &str, why: &str) -> ApiError {
    ApiError::forbidden("poddisruptionbudget.policy", pdb, why)
}

/// The answer to an eviction that went through.
fn eviction_success() -> RestResult<Arc<DynamicObject>> {
    let status: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Status", "metadata": {},
        "status": "Success", "code": 201,
    }))
    .map_err(|_| ApiError::internal("cannot encode status"))?;
    Ok(Arc::new(status))
}

/// The pod's `Ready` condition is `True` (`IsPodReady`).
fn pod_is_ready(pod: &DynamicObject) -> bool {
    pod.data
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

/// Budgets do not apply to a pod that is terminal, `Pending` or already being deleted
/// (upstream `canIgnorePDB`).
fn can_ignore_pdb(pod: &DynamicObject) -> bool {
    matches!(
        crate::rest::meta::phase(pod),
        Some("Succeeded" | "Failed" | "Pending")
    ) || pod.metadata.deletion_timestamp.is_some()
}

/// A delete without budgets is pinned to the pod's version unless the pod is terminal or
/// being deleted (upstream `shouldEnforceResourceVersion`): a `Pending` pod must not become
/// Ready, and so protected, between the read and the delete.
fn should_enforce_resource_version(pod: &DynamicObject) -> bool {
    !matches!(crate::rest::meta::phase(pod), Some("Succeeded" | "Failed"))
        && pod.metadata.deletion_timestamp.is_none()
}

fn pin_resource_version(p: &mut DeleteParams, pod: &DynamicObject) {
    p.preconditions
        .get_or_insert_with(Default::default)
        .resource_version = pod.metadata.resource_version.clone();
}

fn log_container(pod: &DynamicObject, query: &[(String, String)]) -> RestResult<String> {
    if let Some((_, c)) = query
        .iter()
        .find(|(k, v)| k == "container" && !v.is_empty())
    {
        return Ok(c.clone());
    }
    let names: Vec<&str> = pod
        .data
        .get("spec")
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    match names.as_slice() {
        [one] => Ok((*one).to_string()),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {}, choose one of: [{}]",
            pod.name(),
            names.join(" ")
        ))),
    }
}

/// The kubelet URL serving a container's log.
pub fn kubelet_log_url(
    node: &DynamicObject,
    namespace: &str,
    pod: &str,
    container: &str,
    query: &[(String, String)],
) -> RestResult<String> {
    let q: Vec<String> = query
        .iter()
        .filter(|(k, _)| k != "container")
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    let mut url = format!(
        "{}/containerLogs/{}/{}/{}",
        kubelet_url(node)?,
        enc(namespace),
        enc(pod),
        enc(container)
    );
    if !q.is_empty() {
        url.push('?');
        url.push_str(&q.join("&"));
    }
    Ok(url)
}

/// The base URL of a node's kubelet server, `http://<InternalIP>:<kubeletEndpoint port>`
/// (from `status.addresses` and `status.daemonEndpoints`), for `pods/log` and the
/// `metrics.k8s.io` answers ([`crate::metrics`]).
pub fn kubelet_url(node: &DynamicObject) -> RestResult<String> {
    let (ip, port) = kubelet_address(node)?;
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip
    };
    Ok(format!("http://{host}:{port}"))
}

/// A node's kubelet address: its `InternalIP` and `status.daemonEndpoints.kubeletEndpoint.Port`;
/// 400 if it has neither.
pub fn kubelet_address(node: &DynamicObject) -> RestResult<(String, u16)> {
    let status = node.data.get("status");
    let ip = status
        .and_then(|s| s.get("addresses"))
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
        })
        .and_then(|x| x.get("address"))
        .and_then(Value::as_str);
    let port = status
        .and_then(|s| s.get("daemonEndpoints"))
        .and_then(|d| d.get("kubeletEndpoint"))
        .and_then(|k| k.get("Port"))
        .and_then(Value::as_i64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0);
    let (Some(ip), Some(port)) = (ip, port) else {
        return Err(ApiError::bad_request(format!(
            "node \"{}\" has no InternalIP address or kubelet port",
            node.name()
        )));
    };
    Ok((ip.to_string(), port))
}

fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// HTTP for `scale` (GET/PUT/PATCH) and `log` (GET); other methods answer 405.
pub async fn handle_http(
    api: &Arc<ApiServer>,
    req: &crate::rest::router::Request,
    sub: &str,
    info: Resource,
    name: &str,
) -> RestResult<Response> {
    use axum::http::Method;
    let ns = req.target.namespace.as_deref();
    let dry_run = req.param("dryRun") == Some("All");
    let manager = req.field_manager();
    match (sub, &req.method) {
        ("scale", &Method::GET) => Ok(json_response(
            StatusCode::OK,
            &api.get_scale(info, ns, name).await?,
        )),
        ("scale", &Method::PUT) => {
            let body = crate::rest::negotiate::decode_body(&req.headers, &req.body)?;
            Ok(json_response(
                StatusCode::OK,
                &api.update_scale(info, ns, name, &body, dry_run, manager.as_deref())
                    .await?,
            ))
        }
        ("scale", &Method::PATCH) => {
            let ct = req
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchType::from_content_type(ct)
                .ok_or_else(|| crate::rest::negotiate::unsupported_media(ct))?;
            let body: Value = if kind == PatchType::Apply {
                serde_yaml_ng::from_slice(&req.body)
                    .map_err(|e| ApiError::bad_request(format!("invalid apply patch: {e}")))?
            } else {
                serde_json::from_slice(&req.body)
                    .map_err(|e| ApiError::bad_request(format!("invalid patch body: {e}")))?
            };
            Ok(json_response(
                StatusCode::OK,
                &api.patch_scale(info, ns, name, kind, &body, dry_run, manager.as_deref())
                    .await?,
            ))
        }
        ("log", &Method::GET) if info.kind == "Pod" => {
            let mut query: Vec<(String, String)> = req
                .query
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            query.sort();
            api.pod_log(info, ns, name, &query).await
        }
        _ => Err(ApiError::new(
            405,
            reason::METHOD_NOT_ALLOWED,
            format!(
                "{} is not supported on {}/{sub}",
                req.method,
                qualified(info)
            ),
        )),
    }
}

/// Renders a JSON value as a 200/201 answer.
pub fn json_response(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

pub mod stream;

#[cfg(test)]
mod tests;
