//! ResourceQuota and LimitRange validation, after upstream
//! `pkg/apis/core/validation/validation.go` (`ValidateResourceQuota`,
//! `ValidateResourceQuotaUpdate`, `ValidateResourceQuotaStatusUpdate`, `ValidateLimitRange`)
//! and the resource-name sets of `pkg/apis/core/helper/helpers.go` (1.33).
//!
//! Values the Go validator prints with `%#v` (slices of scopes) are rendered the same way;
//! quantities are printed quoted in canonical form.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::field::{FieldError, Path};
use super::meta;
use crate::names;
use crate::quantity::Quantity;

const FIELD_IMMUTABLE: &str = "field is immutable";

/// Upstream `standardResources`.
const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

/// Upstream `standardQuotaResources`.
const STANDARD_QUOTA_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// Upstream `integerResources`.
const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

/// Upstream `IsQuotaHugePageResourceName`.
fn is_quota_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-") || name.starts_with("requests.hugepages-")
}

/// Upstream `IsNativeResource`: unprefixed or in `kubernetes.io/`.
pub(crate) fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Upstream `IsExtendedResourceName`.
fn is_extended_resource(name: &str) -> bool {
    !is_native_resource(name)
        && !name.starts_with("requests.")
        && names::is_qualified_name(&format!("requests.{name}")).is_empty()
}

/// Upstream `IsOvercommitAllowed`: native and not hugepages.
fn overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !name.starts_with("hugepages-")
}

/// Upstream `validateResourceName`.
fn resource_name(value: &str, p: &Path) -> Vec<FieldError> {
    let errs: Vec<FieldError> = names::is_qualified_name(value)
        .into_iter()
        .map(|m| FieldError::invalid(p.clone(), value, m))
        .collect();
    if !errs.is_empty() {
        return errs;
    }
    if !value.contains('/') && !STANDARD_RESOURCES.contains(&value) && !is_quota_hugepages(value) {
        return vec![FieldError::invalid(
            p.clone(),
            value,
            "must be a standard resource type or fully qualified",
        )];
    }
    Vec::new()
}

/// Upstream `validateContainerResourceName`.
fn container_resource_name(value: &str, p: &Path) -> Vec<FieldError> {
    let mut errs = resource_name(value, p);
    if !value.contains('/') {
        let standard = ["cpu", "memory", "ephemeral-storage"].contains(&value)
            || value.starts_with("hugepages-");
        if !standard {
            errs.push(FieldError::invalid(
                p.clone(),
                value,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(value) && !is_extended_resource(value) {
        errs.push(FieldError::invalid(
            p.clone(),
            value,
            "doesn't follow extended resource name standard",
        ));
    }
    errs
}

/// Upstream `ValidateResourceQuotaResourceName`.
fn quota_resource_name(value: &str, p: &Path) -> Vec<FieldError> {
    let mut errs = resource_name(value, p);
    if !value.contains('/')
        && !STANDARD_QUOTA_RESOURCES.contains(&value)
        && !is_quota_hugepages(value)
    {
        errs.push(FieldError::invalid(
            p.clone(),
            value,
            "must be a standard resource for quota",
        ));
    }
    errs
}

fn parse(q: &K8sQuantity, p: &Path) -> Result<Quantity, FieldError> {
    Quantity::try_from(q).map_err(|e| FieldError::invalid(p.clone(), &q.0, e.to_string()))
}

/// Upstream `ValidateResourceQuantityValue`: not negative; whole for integer resources.
fn quantity_value(resource: &str, q: &K8sQuantity, p: &Path) -> Vec<FieldError> {
    let v = match parse(q, p) {
        Ok(v) => v,
        Err(e) => return vec![e],
    };
    let mut errs = Vec::new();
    if v < Quantity::ZERO {
        errs.push(FieldError::invalid(
            p.clone(),
            &v.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    let integer = INTEGER_RESOURCES.contains(&resource) || is_extended_resource(resource);
    if integer && v.milli_value() % 1000 != 0 {
        errs.push(FieldError::invalid(
            p.clone(),
            &v.to_string(),
            "must be an integer",
        ));
    }
    errs
}

/// The names and values of a quota resource list.
fn quota_list(list: Option<&BTreeMap<String, K8sQuantity>>, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in list.into_iter().flatten() {
        let rp = p.key(k);
        errs.extend(quota_resource_name(k, &rp));
        errs.extend(quantity_value(k, v, &rp));
    }
    errs
}

/// Go's `%#v` of a `[]core.ResourceQuotaScope`.
fn scopes_value(scopes: Option<&Vec<String>>) -> String {
    match scopes {
        None => "[]core.ResourceQuotaScope(nil)".into(),
        Some(s) => {
            let items: Vec<String> = s.iter().map(|x| format!("{x:?}")).collect();
            format!("[]core.ResourceQuotaScope{{{}}}", items.join(", "))
        }
    }
}

/// Upstream `IsResourceQuotaScopeValidForResource`: pod scopes constrain pod counts and pod
/// compute resources only; `BestEffort` only `pods`.
fn scope_valid_for(scope: &str, resource: &str) -> bool {
    const POD_COMPUTE: &[&str] = &[
        "cpu",
        "memory",
        "limits.cpu",
        "limits.memory",
        "requests.cpu",
        "requests.memory",
    ];
    match scope {
        "Terminating"
        | "NotTerminating"
        | "NotBestEffort"
        | "PriorityClass"
        | "CrossNamespacePodAffinity" => resource == "pods" || POD_COMPUTE.contains(&resource),
        "BestEffort" => resource == "pods",
        "VolumeAttributesClass" => {
            resource == "persistentvolumeclaims" || resource == "requests.storage"
        }
        _ => true,
    }
}

fn standard_quota_resource(r: &str) -> bool {
    STANDARD_QUOTA_RESOURCES.contains(&r) || is_quota_hugepages(r)
}

const CONFLICTING_SCOPES: &[[&str; 2]] = &[
    ["BestEffort", "NotBestEffort"],
    ["Terminating", "NotTerminating"],
];

/// Upstream `validateResourceQuotaScopes`.
fn quota_scopes(spec: &ResourceQuotaSpec, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(scopes) = spec.scopes.as_ref().filter(|s| !s.is_empty()) else {
        return errs;
    };
    let hard: BTreeSet<&str> = spec
        .hard
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    let sp = p.child("scopes");
    let value = scopes_value(Some(scopes));
    for scope in scopes {
        if !crate::quota::SCOPES.contains(&scope.as_str()) {
            errs.push(FieldError::invalid_raw(
                sp.clone(),
                &value,
                "unsupported scope",
            ));
        }
        for k in &hard {
            if standard_quota_resource(k) && !scope_valid_for(scope, k) {
                errs.push(FieldError::invalid_raw(
                    sp.clone(),
                    &value,
                    "unsupported scope applied to resource",
                ));
            }
        }
    }
    for pair in CONFLICTING_SCOPES {
        if pair.iter().all(|s| scopes.iter().any(|x| x == s)) {
            errs.push(FieldError::invalid_raw(
                sp.clone(),
                &value,
                "conflicting scopes",
            ));
        }
    }
    errs
}

/// Upstream `validateScopedResourceSelectorRequirement`.
fn scope_selector(spec: &ResourceQuotaSpec, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(sel) = &spec.scope_selector else {
        return errs;
    };
    let hard: BTreeSet<&str> = spec
        .hard
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    let mp = p.child("scopeSelector").child("matchExpressions");
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for req in sel.match_expressions.iter().flatten() {
        let scope = req.scope_name.as_str();
        if !crate::quota::SCOPES.contains(&scope) {
            errs.push(FieldError::invalid(
                mp.child("scopeName"),
                scope,
                "unsupported scope",
            ));
        }
        for k in &hard {
            if standard_quota_resource(k) && !scope_valid_for(scope, k) {
                errs.push(FieldError::invalid_raw(
                    mp.clone(),
                    "{...}",
                    "unsupported scope applied to resource",
                ));
            }
        }
        let op = req.operator.as_str();
        if matches!(
            scope,
            "BestEffort"
                | "NotBestEffort"
                | "Terminating"
                | "NotTerminating"
                | "CrossNamespacePodAffinity"
                | "VolumeAttributesClass"
        ) && op != "Exists"
        {
            errs.push(FieldError::invalid(
                mp.child("operator"),
                op,
                "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, \
                 ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, \
                 ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity",
            ));
        }
        let values = req.values.as_deref().unwrap_or_default();
        match op {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                mp.child("values"),
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                let items: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
                errs.push(FieldError::invalid_raw(
                    mp.child("values"),
                    format!("[]string{{{}}}", items.join(", ")),
                    "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
                ))
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => errs.push(FieldError::invalid(
                mp.child("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        seen.insert(scope);
    }
    for pair in CONFLICTING_SCOPES {
        if pair.iter().all(|s| seen.contains(s)) {
            errs.push(FieldError::invalid_raw(
                mp.clone(),
                scopes_value(spec.scopes.as_ref()),
                "conflicting scopes",
            ));
        }
    }
    errs
}

/// Upstream `ValidateResourceQuotaSpec`.
fn quota_spec(spec: &ResourceQuotaSpec, p: &Path) -> Vec<FieldError> {
    let mut errs = quota_list(spec.hard.as_ref(), &p.child("hard"));
    errs.extend(quota_scopes(spec, p));
    errs.extend(scope_selector(spec, p));
    errs
}

/// Upstream `ValidateResourceQuotaStatus`.
fn quota_status(q: &ResourceQuota, p: &Path) -> Vec<FieldError> {
    let Some(st) = &q.status else {
        return Vec::new();
    };
    let mut errs = quota_list(st.hard.as_ref(), &p.child("hard"));
    errs.extend(quota_list(st.used.as_ref(), &p.child("used")));
    errs
}

/// ResourceQuota on create (upstream `ValidateResourceQuota`).
pub(crate) fn resource_quota(q: &ResourceQuota) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&q.metadata, true, meta::NameRule::Subdomain);
    if let Some(spec) = &q.spec {
        errs.extend(quota_spec(spec, &Path::new("spec")));
    }
    errs.extend(quota_status(q, &Path::new("status")));
    errs
}

/// ResourceQuota on update (upstream `ValidateResourceQuotaUpdate`): `spec.scopes` is
/// immutable (the status is the stored one).
pub(crate) fn resource_quota_update(new: &ResourceQuota, old: &ResourceQuota) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    let scopes = |q: &ResourceQuota| -> BTreeSet<String> {
        q.spec
            .as_ref()
            .and_then(|s| s.scopes.clone())
            .into_iter()
            .flatten()
            .collect()
    };
    if scopes(new) != scopes(old) {
        errs.push(FieldError::invalid_raw(
            Path::new("spec").child("scopes"),
            scopes_value(new.spec.as_ref().and_then(|s| s.scopes.as_ref())),
            FIELD_IMMUTABLE,
        ));
    }
    errs
}

/// A write to `resourcequotas/status` (upstream `ValidateResourceQuotaStatusUpdate`): the
/// metadata update and the status' resource names and values.
pub(crate) fn resource_quota_status_update(
    new: &ResourceQuota,
    old: &ResourceQuota,
) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    errs.extend(quota_status(new, &Path::new("status")));
    errs
}

/// Upstream `validateLimitRangeTypeName`.
fn limit_type(value: &str, p: &Path) -> Vec<FieldError> {
    let errs: Vec<FieldError> = names::is_qualified_name(value)
        .into_iter()
        .map(|m| FieldError::invalid(p.clone(), value, m))
        .collect();
    if !errs.is_empty() {
        return errs;
    }
    if !value.contains('/') && !["Pod", "Container", "PersistentVolumeClaim"].contains(&value) {
        return vec![FieldError::invalid(
            p.clone(),
            value,
            "must be a standard limit type or fully qualified",
        )];
    }
    Vec::new()
}

/// Upstream `ValidateLimitRange`.
pub(crate) fn limit_range(lr: &LimitRange) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&lr.metadata, true, meta::NameRule::Subdomain);
    let lp = Path::new("spec").child("limits");
    let mut types: BTreeSet<&str> = BTreeSet::new();
    let items = lr
        .spec
        .as_ref()
        .map(|s| s.limits.as_slice())
        .unwrap_or_default();
    for (i, limit) in items.iter().enumerate() {
        let ip = lp.index(i);
        let ty = limit.type_.as_str();
        errs.extend(limit_type(ty, &ip.child("type")));
        if !types.insert(ty) {
            errs.push(FieldError::duplicate(ip.child("type"), ty));
        }
        let name_rule = |k: &str, p: &Path| match ty {
            "Pod" | "Container" => container_resource_name(k, p),
            _ => resource_name(k, p),
        };
        let read = |field: &str,
                    list: Option<&BTreeMap<String, K8sQuantity>>,
                    errs: &mut Vec<FieldError>|
         -> BTreeMap<String, Quantity> {
            let mut out = BTreeMap::new();
            for (k, v) in list.into_iter().flatten() {
                let rp = ip.child(field).key(k);
                errs.extend(name_rule(k, &rp));
                match parse(v, &rp) {
                    Ok(q) => {
                        out.insert(k.clone(), q);
                    }
                    Err(e) => errs.push(e),
                }
            }
            out
        };
        let max = read("max", limit.max.as_ref(), &mut errs);
        let min = read("min", limit.min.as_ref(), &mut errs);
        let (mut defaults, mut default_requests) = (BTreeMap::new(), BTreeMap::new());
        if ty == "Pod" {
            if limit.default.as_ref().is_some_and(|d| !d.is_empty()) {
                errs.push(FieldError::forbidden(
                    ip.child("default"),
                    "may not be specified when `type` is 'Pod'",
                ));
            }
            if limit
                .default_request
                .as_ref()
                .is_some_and(|d| !d.is_empty())
            {
                errs.push(FieldError::forbidden(
                    ip.child("defaultRequest"),
                    "may not be specified when `type` is 'Pod'",
                ));
            }
        } else {
            defaults = read("default", limit.default.as_ref(), &mut errs);
            default_requests = read("defaultRequest", limit.default_request.as_ref(), &mut errs);
        }
        if ty == "PersistentVolumeClaim"
            && !limit
                .min
                .as_ref()
                .is_some_and(|m| m.contains_key("storage"))
            && !limit
                .max
                .as_ref()
                .is_some_and(|m| m.contains_key("storage"))
        {
            errs.push(FieldError::required(
                ip.child("limits"),
                "either minimum or maximum storage value is required, but neither was provided",
            ));
        }
        let ratios = read(
            "maxLimitRequestRatio",
            limit.max_limit_request_ratio.as_ref(),
            &mut errs,
        );
        let all: BTreeSet<&String> = max
            .keys()
            .chain(min.keys())
            .chain(defaults.keys())
            .chain(default_requests.keys())
            .chain(ratios.keys())
            .collect();
        for k in all {
            errs.extend(limit_item_key(
                &ip,
                k,
                min.get(k),
                max.get(k),
                defaults.get(k),
                default_requests.get(k),
                ratios.get(k),
            ));
        }
    }
    errs
}

/// The cross-field rules of one resource of a LimitRange item.
fn limit_item_key(
    ip: &Path,
    k: &str,
    min: Option<&Quantity>,
    max: Option<&Quantity>,
    default: Option<&Quantity>,
    default_request: Option<&Quantity>,
    ratio: Option<&Quantity>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let at = |f: &str| ip.child(f).key(k);
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            errs.push(FieldError::invalid(
                at("min"),
                &min.to_string(),
                format!("min value {min} is greater than max value {max}"),
            ));
        }
    }
    if let Some(dr) = default_request {
        if let Some(min) = min.filter(|m| *m > dr) {
            errs.push(FieldError::invalid(
                at("defaultRequest"),
                &dr.to_string(),
                format!("min value {min} is greater than default request value {dr}"),
            ));
        }
        if let Some(max) = max.filter(|m| dr > *m) {
            errs.push(FieldError::invalid(
                at("defaultRequest"),
                &dr.to_string(),
                format!("default request value {dr} is greater than max value {max}"),
            ));
        }
        if let Some(d) = default.filter(|d| dr > *d) {
            errs.push(FieldError::invalid(
                at("defaultRequest"),
                &dr.to_string(),
                format!("default request value {dr} is greater than default limit value {d}"),
            ));
        }
    }
    if let Some(d) = default {
        if let Some(min) = min.filter(|m| *m > d) {
            errs.push(FieldError::invalid(
                at("default"),
                &min.to_string(),
                format!("min value {min} is greater than default value {d}"),
            ));
        }
        if let Some(max) = max.filter(|m| d > *m) {
            errs.push(FieldError::invalid(
                at("default"),
                &max.to_string(),
                format!("default value {d} is greater than max value {max}"),
            ));
        }
    }
    if let Some(r) = ratio {
        if *r < Quantity::from_milli(1000) {
            errs.push(FieldError::invalid(
                at("maxLimitRequestRatio"),
                &r.to_string(),
                format!("ratio {r} is less than 1"),
            ));
        }
        if let (Some(min), Some(max)) = (min, max) {
            // upstream compares milli values when none overflows, whole values otherwise.
            let small = [r, min, max].iter().all(|q| q.value() < MAX_MILLI_VALUE);
            let (rv, minv, maxv) = if small {
                (
                    r.milli_value() as f64 / 1000.0,
                    min.milli_value() as f64,
                    max.milli_value() as f64,
                )
            } else {
                (r.value() as f64, min.value() as f64, max.value() as f64)
            };
            let limit = maxv / minv;
            if rv > limit {
                errs.push(FieldError::invalid(
                    at("maxLimitRequestRatio"),
                    &r.to_string(),
                    format!("ratio {r} is greater than max/min = {limit:.6}"),
                ));
            }
        }
    }
    if let (Some(d), Some(dr)) = (default, default_request) {
        if !overcommit_allowed(k) && d != dr {
            errs.push(FieldError::invalid(
                at("defaultRequest"),
                &dr.to_string(),
                format!("default value {d} must equal to defaultRequest value {dr} in {k}"),
            ));
        }
    }
    errs
}

/// Upstream `resource.MaxMilliValue`: the largest value whose milli value fits an `int64`.
pub(crate) const MAX_MILLI_VALUE: i64 = i64::MAX / 1000;

#[cfg(test)]
mod tests {
    //! Cases after upstream `validation_test.go` (`TestValidateResourceQuota`,
    //! `TestValidateLimitRange`), in our words.
    use crate::validation::{validate, validate_status_update, validate_update};
    use crate::DynamicObject;

    fn obj(yaml: &str) -> DynamicObject {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn errors(yaml: &str) -> Vec<String> {
        validate(&obj(yaml))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn resource_quota_table() {
        let head = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q, namespace: ns}\n";
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "standard, counts, hugepages and extended resources",
                "spec: {hard: {cpu: '1', memory: 1Gi, pods: '10', requests.storage: 10Gi, count/deployments.apps: '2', requests.example.com/gpu: '1', hugepages-2Mi: 4Mi}}",
                &[],
            ),
            (
                "negative",
                "spec: {hard: {cpu: '-1'}}",
                &["spec.hard[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"],
            ),
            (
                "fractional count",
                "spec: {hard: {pods: 1500m}}",
                &["spec.hard[pods]: Invalid value: \"1500m\": must be an integer"],
            ),
            (
                "not a quota resource",
                "spec: {hard: {storage: 1Gi}}",
                &["spec.hard[storage]: Invalid value: \"storage\": must be a standard resource for quota"],
            ),
            (
                "unknown name",
                "spec: {hard: {disks: '1'}}",
                &[
                    "spec.hard[disks]: Invalid value: \"disks\": must be a standard resource type or fully qualified",
                    "spec.hard[disks]: Invalid value: \"disks\": must be a standard resource for quota",
                ],
            ),
            (
                "scopes",
                "spec: {hard: {pods: '1', cpu: '1'}, scopes: [NotBestEffort, Terminating]}",
                &[],
            ),
            (
                "unsupported scope",
                "spec: {hard: {pods: '1'}, scopes: [Sometimes]}",
                &["spec.scopes: Invalid value: []core.ResourceQuotaScope{\"Sometimes\"}: unsupported scope"],
            ),
            (
                "scope applied to a resource it does not select",
                "spec: {hard: {cpu: '1'}, scopes: [BestEffort]}",
                &["spec.scopes: Invalid value: []core.ResourceQuotaScope{\"BestEffort\"}: unsupported scope applied to resource"],
            ),
            (
                "conflicting scopes",
                "spec: {hard: {pods: '1'}, scopes: [Terminating, NotTerminating]}",
                &["spec.scopes: Invalid value: []core.ResourceQuotaScope{\"Terminating\", \"NotTerminating\"}: conflicting scopes"],
            ),
            (
                "priority class selector",
                "spec: {hard: {pods: '1'}, scopeSelector: {matchExpressions: [{scopeName: PriorityClass, operator: In, values: [high]}]}}",
                &[],
            ),
            (
                "In without values",
                "spec: {hard: {pods: '1'}, scopeSelector: {matchExpressions: [{scopeName: PriorityClass, operator: In}]}}",
                &["spec.scopeSelector.matchExpressions.values: Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"],
            ),
            (
                "BestEffort with In",
                "spec: {hard: {pods: '1'}, scopeSelector: {matchExpressions: [{scopeName: BestEffort, operator: In, values: [x]}]}}",
                &["spec.scopeSelector.matchExpressions.operator: Invalid value: \"In\": must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"],
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(errors(&format!("{head}{spec}")), *want, "{name}");
        }
    }

    #[test]
    fn resource_quota_updates() {
        let old = obj("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q, namespace: ns, resourceVersion: '1'}\nspec: {hard: {pods: '1'}, scopes: [BestEffort]}\n");
        let mut new = old.clone();
        new.data["spec"]["scopes"] = serde_json::json!(["NotTerminating"]);
        let errs: Vec<String> = validate_update(&new, &old)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            ["spec.scopes: Invalid value: []core.ResourceQuotaScope{\"NotTerminating\"}: field is immutable"]
        );
        let mut hard = old.clone();
        hard.data["spec"]["hard"] = serde_json::json!({"pods": "5"});
        assert!(validate_update(&hard, &old).is_empty());
        let mut status = old.clone();
        status.data.insert(
            "status".into(),
            serde_json::json!({"hard": {"pods": "1"}, "used": {"pods": "-1"}}),
        );
        let errs: Vec<String> = validate_status_update(&status, &old)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            ["status.used[pods]: Invalid value: \"-1\": must be greater than or equal to 0"]
        );
    }

    #[test]
    fn limit_range_table() {
        let head = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: l, namespace: ns}\n";
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "all fields",
                "spec: {limits: [{type: Container, max: {cpu: '2'}, min: {cpu: 100m}, default: {cpu: '1'}, defaultRequest: {cpu: 500m}, maxLimitRequestRatio: {cpu: '4'}}, {type: Pod, max: {memory: 4Gi}}, {type: PersistentVolumeClaim, min: {storage: 1Gi}, max: {storage: 10Gi}}]}",
                &[],
            ),
            (
                "duplicate type",
                "spec: {limits: [{type: Pod, max: {cpu: '1'}}, {type: Pod, max: {cpu: '2'}}]}",
                &["spec.limits[1].type: Duplicate value: \"Pod\""],
            ),
            (
                "unknown type",
                "spec: {limits: [{type: Node, max: {cpu: '1'}}]}",
                &["spec.limits[0].type: Invalid value: \"Node\": must be a standard limit type or fully qualified"],
            ),
            (
                "pod defaults",
                "spec: {limits: [{type: Pod, default: {cpu: '1'}}]}",
                &["spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"],
            ),
            (
                "min above max",
                "spec: {limits: [{type: Pod, min: {cpu: '2'}, max: {cpu: '1'}}]}",
                &["spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1"],
            ),
            (
                "default above max",
                "spec: {limits: [{type: Container, max: {memory: 1Gi}, default: {memory: 2Gi}, defaultRequest: {memory: 1Gi}}]}",
                &["spec.limits[0].default[memory]: Invalid value: \"1Gi\": default value 2Gi is greater than max value 1Gi"],
            ),
            (
                "default request above default",
                "spec: {limits: [{type: Container, default: {cpu: 500m}, defaultRequest: {cpu: '1'}}]}",
                &["spec.limits[0].defaultRequest[cpu]: Invalid value: \"1\": default request value 1 is greater than default limit value 500m"],
            ),
            (
                "ratio below one",
                "spec: {limits: [{type: Container, maxLimitRequestRatio: {cpu: 500m}}]}",
                &["spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: \"500m\": ratio 500m is less than 1"],
            ),
            (
                "ratio above max/min",
                "spec: {limits: [{type: Pod, min: {cpu: 100m}, max: {cpu: 200m}, maxLimitRequestRatio: {cpu: '3'}}]}",
                &["spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: \"3\": ratio 3 is greater than max/min = 2.000000"],
            ),
            (
                "claim without storage bounds",
                "spec: {limits: [{type: PersistentVolumeClaim, min: {cpu: '1'}}]}",
                &["spec.limits[0].limits: Required value: either minimum or maximum storage value is required, but neither was provided"],
            ),
            (
                "not a container resource (defaulting copied it to default and defaultRequest)",
                "spec: {limits: [{type: Container, max: {pods: '1'}}]}",
                &[
                    "spec.limits[0].max[pods]: Invalid value: \"pods\": must be a standard resource for containers",
                    "spec.limits[0].default[pods]: Invalid value: \"pods\": must be a standard resource for containers",
                    "spec.limits[0].defaultRequest[pods]: Invalid value: \"pods\": must be a standard resource for containers",
                ],
            ),
            (
                "extended resources must not overcommit",
                "spec: {limits: [{type: Container, default: {example.com/gpu: '2'}, defaultRequest: {example.com/gpu: '1'}}]}",
                &["spec.limits[0].defaultRequest[example.com/gpu]: Invalid value: \"1\": default value 2 must equal to defaultRequest value 1 in example.com/gpu"],
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(errors(&format!("{head}{spec}")), *want, "{name}");
        }
    }
}
