//! Calling admission webhooks: upstream `admission/plugin/webhook/mutating/dispatcher.go` and
//! `validating/dispatcher.go`, on JSON objects and independent of the API server, so that
//! tests drive them with a webhook server and no storage.
//!
//! Mutating webhooks run one after another in order (configurations by name, then the
//! webhooks of each in order); a webhook with `reinvocationPolicy: IfNeeded` is called once
//! more when a later webhook changed the object. Validating webhooks run in parallel; the
//! first rejection or failure in webhook order answers the request.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhookConfiguration, RuleWithOperations,
    ValidatingWebhookConfiguration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use orch_types::ApiError;
use serde_json::{json, Value};

use super::client::{post_json, CallError, ClientConfig};
use super::matching::{object_selector_matches, rule_matches, selector, RuleInput};

/// One webhook of a Mutating- or ValidatingWebhookConfiguration, as the dispatcher uses it.
#[derive(Debug, Clone)]
pub struct Hook {
    /// `webhooks[].name`.
    pub name: String,
    /// Where to call it.
    pub client: ClientConfig,
    /// `rules`.
    pub rules: Vec<RuleWithOperations>,
    /// `failurePolicy: Ignore` (the default, Fail, is `false`).
    pub ignore_failures: bool,
    /// `namespaceSelector`.
    pub namespace_selector: Option<LabelSelector>,
    /// `objectSelector`.
    pub object_selector: Option<LabelSelector>,
    /// `sideEffects`.
    pub side_effects: String,
    /// `timeoutSeconds`.
    pub timeout: Duration,
    /// `matchConditions`.
    pub match_conditions: Vec<MatchCondition>,
    /// `reinvocationPolicy: IfNeeded` (mutating webhooks only).
    pub reinvoke_if_needed: bool,
}

fn timeout(t: Option<i32>) -> Duration {
    Duration::from_secs(u64::try_from(t.unwrap_or(10).clamp(1, 30)).unwrap_or(10))
}

/// The webhooks of mutating configurations, in calling order (configurations sorted by name).
pub fn mutating_hooks(mut configs: Vec<MutatingWebhookConfiguration>) -> Vec<Hook> {
    configs.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    configs
        .into_iter()
        .flat_map(|c| c.webhooks.unwrap_or_default())
        .map(|w| Hook {
            client: ClientConfig::from(&w.client_config),
            name: w.name,
            rules: w.rules.unwrap_or_default(),
            ignore_failures: w.failure_policy.as_deref() == Some("Ignore"),
            namespace_selector: w.namespace_selector,
            object_selector: w.object_selector,
            side_effects: w.side_effects,
            timeout: timeout(w.timeout_seconds),
            match_conditions: w.match_conditions.unwrap_or_default(),
            reinvoke_if_needed: w.reinvocation_policy.as_deref() == Some("IfNeeded"),
        })
        .collect()
}

/// The webhooks of validating configurations, in order (configurations sorted by name).
pub fn validating_hooks(mut configs: Vec<ValidatingWebhookConfiguration>) -> Vec<Hook> {
    configs.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    configs
        .into_iter()
        .flat_map(|c| c.webhooks.unwrap_or_default())
        .map(|w| Hook {
            client: ClientConfig::from(&w.client_config),
            name: w.name,
            rules: w.rules.unwrap_or_default(),
            ignore_failures: w.failure_policy.as_deref() == Some("Ignore"),
            namespace_selector: w.namespace_selector,
            object_selector: w.object_selector,
            side_effects: w.side_effects,
            timeout: timeout(w.timeout_seconds),
            match_conditions: w.match_conditions.unwrap_or_default(),
            reinvoke_if_needed: false,
        })
        .collect()
}

/// What is being admitted: the `request` of an AdmissionReview without its `object`.
#[derive(Debug, Clone)]
pub struct Request {
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub operation: &'static str,
    /// Group of the resource.
    pub group: String,
    /// Version of the resource (the version objects are stored in).
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource (`status`), `""` for the main resource.
    pub subresource: String,
    /// Namespace of the request (`""` when cluster-scoped).
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// The object before the request (UPDATE, DELETE).
    pub old_object: Option<Value>,
    /// `dryRun`.
    pub dry_run: bool,
    /// `options`: a CreateOptions, UpdateOptions or DeleteOptions.
    pub options: Value,
    /// Labels of the request's namespace for namespace selectors (`None`: the selector does
    /// not apply, a cluster-scoped object other than a Namespace).
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// Who is asking (`request.userInfo`): the authenticated user of the request.
    pub user: std::sync::Arc<crate::auth::UserInfo>,
}

impl Request {
    fn rule_input(&self) -> RuleInput<'_> {
        RuleInput {
            operation: self.operation,
            group: &self.group,
            version: &self.version,
            resource: &self.resource,
            subresource: &self.subresource,
            namespace: &self.namespace,
        }
    }

    /// The `request` of an AdmissionReview, with `uid` and `object`.
    fn review_request(&self, uid: &str, object: Option<&Value>) -> Value {
        let kind = json!({"group": self.group, "version": self.version, "kind": self.kind});
        let resource =
            json!({"group": self.group, "version": self.version, "resource": self.resource});
        let mut r = json!({
            "uid": uid,
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
            "name": self.name,
            "operation": self.operation,
            "userInfo": *self.user,
            "object": object.cloned().unwrap_or(Value::Null),
            "oldObject": self.old_object.clone().unwrap_or(Value::Null),
            "dryRun": self.dry_run,
            "options": self.options,
        });
        if !self.subresource.is_empty() {
            r["subResource"] = self.subresource.clone().into();
            r["requestSubResource"] = self.subresource.clone().into();
        }
        if !self.namespace.is_empty() {
            r["namespace"] = self.namespace.clone().into();
        }
        r
    }
}

/// Whether `hook` is called for `req` on `object`: rules, namespace selector, object selector
/// (`Ok(false)` to skip it), then matchConditions (an evaluation error is a call failure).
fn matches(hook: &Hook, req: &Request, object: Option<&Value>) -> Result<bool, CallError> {
    let input = req.rule_input();
    if !hook.rules.iter().any(|r| rule_matches(r, &input)) {
        return Ok(false);
    }
    let ns_sel = selector(hook.namespace_selector.as_ref());
    if !ns_sel.is_everything() {
        if let Some(labels) = &req.namespace_labels {
            if !ns_sel.matches(labels) {
                return Ok(false);
            }
        }
    }
    let labels = |v: Option<&Value>| -> Option<BTreeMap<String, String>> {
        let v = v?;
        Some(serde_json::from_value(v["metadata"]["labels"].clone()).unwrap_or_default())
    };
    let obj_sel = selector(hook.object_selector.as_ref());
    if !object_selector_matches(
        &obj_sel,
        labels(object).as_ref(),
        labels(req.old_object.as_ref()).as_ref(),
    ) {
        return Ok(false);
    }
    if hook.match_conditions.is_empty() {
        return Ok(true);
    }
    let request = req.review_request("", None);
    let null = Value::Null;
    let vars = [
        ("object", object.unwrap_or(&null)),
        ("oldObject", req.old_object.as_ref().unwrap_or(&null)),
        ("request", &request),
    ];
    for c in &hook.match_conditions {
        let expr =
            orch_types::validation::admissionregistration::compile_match_condition(&c.expression)
                .map_err(|e| CallError::Config(format!("matchCondition {:?}: {e}", c.name)))?;
        match expr.evaluate_bool(&vars) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => {
                return Err(CallError::Config(format!(
                    "failed evaluating match conditions: matchCondition {:?}: {e}",
                    c.name
                )))
            }
        }
    }
    Ok(true)
}

/// A webhook's answer.
#[derive(Debug, Default)]
struct Verdict {
    allowed: bool,
    status: Value,
    patch: Option<json_patch::Patch>,
    warnings: Vec<String>,
}

/// Upstream `VerifyAdmissionResponse`.
fn verdict(v: Value, uid: &str, mutating: bool) -> Result<Verdict, CallError> {
    let invalid = |m: String| CallError::InvalidResponse(m);
    let api_version = v["apiVersion"].as_str().unwrap_or("");
    let kind = v["kind"].as_str().unwrap_or("");
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(invalid(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {api_version}, Kind={kind}"
        )));
    }
    let Some(r) = v.get("response").filter(|r| r.is_object()) else {
        return Err(invalid("webhook response was absent".into()));
    };
    let got = r["uid"].as_str().unwrap_or("");
    if got != uid {
        return Err(invalid(format!(
            "expected response.uid={uid:?}, got {got:?}"
        )));
    }
    let patch = r["patch"].as_str().filter(|p| !p.is_empty());
    let patch_type = r["patchType"].as_str();
    let patch = match (patch, patch_type) {
        (None, None) => None,
        (Some(_), _) if !mutating => {
            return Err(invalid(
                "validating webhook may not return response.patch".into(),
            ))
        }
        (Some(_), None) => {
            return Err(invalid(
                "webhook returned response.patch but not response.patchType".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "webhook returned response.patchType but not response.patch".into(),
            ))
        }
        (Some(p), Some("JSONPatch")) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| invalid(format!("response.patch is not base64: {e}")))?;
            Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| invalid(format!("response.patch is not a JSON patch: {e}")))?,
            )
        }
        (Some(_), Some(t)) => {
            return Err(invalid(format!(
                "webhook returned invalid response.patchType of {t:?}"
            )))
        }
    };
    if let Some(a) = r.get("auditAnnotations").and_then(Value::as_object) {
        // orch keeps no audit log: the annotations are accepted and logged.
        tracing::debug!(annotations = ?a, "admission webhook audit annotations");
    }
    Ok(Verdict {
        allowed: r["allowed"].as_bool().unwrap_or(false),
        status: r.get("status").cloned().unwrap_or(Value::Null),
        patch,
        warnings: r["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(str::to_string))
            .collect(),
    })
}

/// Upstream `webhookerrors.ToStatusErr`: a rejection answered with the webhook's status.
fn denied(hook: &str, status: &Value) -> ApiError {
    let by = format!("admission webhook {hook:?} denied the request");
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let message = status["message"].as_str().unwrap_or("");
    let reason = status["reason"].as_str().unwrap_or("");
    let text = match (message, reason) {
        ("", "") => format!("{by} without explanation"),
        ("", r) => format!("{by}: {r}"),
        (m, _) => format!("{by}: {m}"),
    };
    let mut e = ApiError::new(code, reason, text);
    e.details = serde_json::from_value(status["details"].clone()).ok();
    e
}

/// A failed call under `failurePolicy: Fail` (upstream `apierrors.NewInternalError`).
fn failed(hook: &str, e: &CallError) -> ApiError {
    ApiError::internal(format!(
        "Internal error occurred: failed calling webhook {hook:?}: {e}"
    ))
}

/// Calls `hook` (whose rules matched) on `object`; `Ok(None)` when a failure is ignored.
async fn call(
    hook: &Hook,
    req: &Request,
    object: Option<&Value>,
    mutating: bool,
) -> Result<Option<Verdict>, ApiError> {
    if req.dry_run && !matches!(hook.side_effects.as_str(), "None" | "NoneOnDryRun") {
        return Err(ApiError::bad_request(format!(
            "admission webhook {:?} does not support dry run",
            hook.name
        )));
    }
    let uid = uuid::Uuid::new_v4().to_string();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": req.review_request(&uid, object),
    });
    let answer = match post_json(&hook.client, &review, hook.timeout).await {
        Ok(v) => verdict(v, &uid, mutating),
        Err(e) => Err(e),
    };
    match answer {
        Ok(v) => Ok(Some(v)),
        Err(e) if hook.ignore_failures => {
            tracing::warn!(webhook = %hook.name, error = %e, "failed calling webhook, failing open");
            Ok(None)
        }
        Err(e) => Err(failed(&hook.name, &e)),
    }
}

/// What the mutating webhooks did.
#[derive(Debug, Default)]
pub struct Mutated {
    /// Whether a patch changed the object.
    pub changed: bool,
    /// `warnings` of the responses, in order.
    pub warnings: Vec<String>,
}

/// Runs the mutating `hooks` over `object` (`None` on DELETE), applying their JSON patches.
pub async fn mutate(
    hooks: &[Hook],
    req: &Request,
    mut object: Option<&mut Value>,
) -> Result<Mutated, ApiError> {
    let mut out = Mutated::default();
    // Per hook: called once, and whether the object changed after that call.
    let mut called = vec![false; hooks.len()];
    let mut changed_after = vec![false; hooks.len()];
    for round in 0..2 {
        for (i, hook) in hooks.iter().enumerate() {
            if round == 1 && !(hook.reinvoke_if_needed && called[i] && changed_after[i]) {
                continue;
            }
            let current = object.as_deref();
            match matches(hook, req, current) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) if hook.ignore_failures => continue,
                Err(e) => return Err(failed(&hook.name, &e)),
            }
            let Some(v) = call(hook, req, current, true).await? else {
                continue;
            };
            called[i] = true;
            out.warnings.extend(v.warnings);
            if !v.allowed {
                return Err(denied(&hook.name, &v.status));
            }
            let Some(patch) = v.patch else { continue };
            let Some(obj) = object.as_deref_mut() else {
                return Err(ApiError::internal(format!(
                    "Internal error occurred: admission webhook {:?} attempted to modify the object, which is not supported for this operation",
                    hook.name
                )));
            };
            let mut patched = obj.clone();
            if let Err(e) = json_patch::patch(&mut patched, &patch) {
                return Err(ApiError::internal(format!(
                    "Internal error occurred: admission webhook {:?} returned a patch that does not apply: {e}",
                    hook.name
                )));
            }
            if patched["apiVersion"] != obj["apiVersion"] || patched["kind"] != obj["kind"] {
                return Err(ApiError::internal(format!(
                    "Internal error occurred: admission webhook {:?} changed the apiVersion or kind of the object",
                    hook.name
                )));
            }
            if patched != *obj {
                *obj = patched;
                out.changed = true;
                for (j, after) in changed_after.iter_mut().enumerate() {
                    if j != i && called[j] {
                        *after = true;
                    }
                }
                if round == 1 {
                    changed_after[i] = false;
                }
            }
        }
        if !out.changed {
            break;
        }
    }
    Ok(out)
}

/// Runs the validating `hooks` in parallel on `object` (`None` on DELETE); returns the
/// warnings, or the first rejection or failure in webhook order.
pub async fn validate(
    hooks: &[Hook],
    req: &Request,
    object: Option<&Value>,
) -> Result<Vec<String>, ApiError> {
    let calls = hooks.iter().map(|hook| async move {
        match matches(hook, req, object) {
            Ok(true) => {}
            Ok(false) => return Ok(Vec::new()),
            Err(_) if hook.ignore_failures => return Ok(Vec::new()),
            Err(e) => return Err(failed(&hook.name, &e)),
        }
        match call(hook, req, object, false).await? {
            None => Ok(Vec::new()),
            Some(v) if v.allowed => Ok(v.warnings),
            Some(v) => Err(denied(&hook.name, &v.status)),
        }
    });
    let mut warnings = Vec::new();
    for r in futures::future::join_all(calls).await {
        warnings.extend(r?);
    }
    Ok(warnings)
}
