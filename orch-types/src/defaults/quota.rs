//! ResourceQuota and LimitRange defaults, after upstream `pkg/apis/core/v1/defaults.go`
//! (`SetDefaults_LimitRangeItem`) and the generated `SetDefaults_ResourceList` calls on their
//! resource lists (1.33).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::core::resource_list;

/// Resource lists of a quota in canonical form.
pub(crate) fn resource_quota(q: &mut ResourceQuota) {
    if let Some(s) = q.spec.as_mut() {
        resource_list(&mut s.hard);
    }
    if let Some(s) = q.status.as_mut() {
        resource_list(&mut s.hard);
        resource_list(&mut s.used);
    }
}

/// Fills `to[k]` from `from[k]` where missing; an empty result stays absent (Go drops empty
/// maps from JSON).
fn fill(
    to: &mut Option<BTreeMap<String, K8sQuantity>>,
    from: Option<&BTreeMap<String, K8sQuantity>>,
) {
    for (k, v) in from.into_iter().flatten() {
        to.get_or_insert_with(BTreeMap::new)
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
}

/// `SetDefaults_LimitRangeItem` for each item: for `Container` limits, a missing `default`
/// takes `max`, a missing `defaultRequest` takes `default`, then `min`. Every list canonical.
pub(crate) fn limit_range(lr: &mut LimitRange) {
    for item in lr.spec.iter_mut().flat_map(|s| s.limits.iter_mut()) {
        if item.type_ == "Container" {
            let max = item.max.clone();
            fill(&mut item.default, max.as_ref());
            let default = item.default.clone();
            fill(&mut item.default_request, default.as_ref());
            let min = item.min.clone();
            fill(&mut item.default_request, min.as_ref());
        }
        resource_list(&mut item.max);
        resource_list(&mut item.min);
        resource_list(&mut item.default);
        resource_list(&mut item.default_request);
        resource_list(&mut item.max_limit_request_ratio);
    }
}

#[cfg(test)]
mod tests {
    use crate::defaults::apply_defaults;
    use crate::DynamicObject;

    fn defaulted(yaml: &str) -> serde_json::Value {
        let mut d: DynamicObject = serde_yaml_ng::from_str(yaml).unwrap();
        apply_defaults(&mut d).unwrap();
        let again = d.clone();
        apply_defaults(&mut d).unwrap();
        assert_eq!(d, again, "idempotent");
        d.to_value()
    }

    /// Upstream `TestSetDefaultLimitRangeItem` in our words: a missing default limit takes the
    /// max, a missing default request the default limit, then the min.
    #[test]
    fn limit_range_items() {
        let v = defaulted(
            "apiVersion: v1\nkind: LimitRange\nmetadata: {name: l}\nspec:\n  limits:\n  - type: Container\n    max: {cpu: '2', memory: 1Gi}\n    min: {ephemeral-storage: 1Mi}\n    default: {memory: 512Mi}\n  - type: Pod\n    max: {cpu: '4'}\n",
        );
        let c = &v["spec"]["limits"][0];
        assert_eq!(
            c["default"],
            serde_json::json!({"cpu": "2", "memory": "512Mi"})
        );
        assert_eq!(
            c["defaultRequest"],
            serde_json::json!({"cpu": "2", "memory": "512Mi", "ephemeral-storage": "1Mi"})
        );
        let p = &v["spec"]["limits"][1];
        assert!(p.get("default").is_none() && p.get("defaultRequest").is_none());
    }

    #[test]
    fn quota_lists_are_canonical() {
        let v = defaulted(
            "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {hard: {cpu: '0.5', memory: 1024Mi}}\n",
        );
        assert_eq!(
            v["spec"]["hard"],
            serde_json::json!({"cpu": "500m", "memory": "1Gi"})
        );
    }
}
