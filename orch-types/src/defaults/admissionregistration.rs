//! Defaults of admissionregistration.k8s.io/v1 (upstream
//! `pkg/apis/admissionregistration/v1/defaults.go`): `failurePolicy: Fail`,
//! `matchPolicy: Equivalent`, empty (match-everything) `namespaceSelector` and
//! `objectSelector`, `timeoutSeconds: 10`, `reinvocationPolicy: Never` on mutating webhooks,
//! `scope: "*"` on rules and port 443 on service references.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhookConfiguration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fn set<T>(slot: &mut Option<T>, v: T) {
    if slot.is_none() {
        *slot = Some(v);
    }
}

fn common(
    failure: &mut Option<String>,
    matching: &mut Option<String>,
    ns: &mut Option<LabelSelector>,
    obj: &mut Option<LabelSelector>,
    timeout: &mut Option<i32>,
    rules: &mut Option<Vec<RuleWithOperations>>,
    service: Option<&mut ServiceReference>,
) {
    set(failure, "Fail".to_string());
    set(matching, "Equivalent".to_string());
    set(ns, LabelSelector::default());
    set(obj, LabelSelector::default());
    set(timeout, 10);
    for r in rules.iter_mut().flatten() {
        set(&mut r.scope, "*".to_string());
    }
    if let Some(s) = service {
        set(&mut s.port, 443);
    }
}

/// MutatingWebhookConfiguration.
pub(super) fn mutating(c: &mut MutatingWebhookConfiguration) {
    for w in c.webhooks.iter_mut().flatten() {
        common(
            &mut w.failure_policy,
            &mut w.match_policy,
            &mut w.namespace_selector,
            &mut w.object_selector,
            &mut w.timeout_seconds,
            &mut w.rules,
            w.client_config.service.as_mut(),
        );
        set(&mut w.reinvocation_policy, "Never".to_string());
    }
}

/// ValidatingWebhookConfiguration.
pub(super) fn validating(c: &mut ValidatingWebhookConfiguration) {
    for w in c.webhooks.iter_mut().flatten() {
        common(
            &mut w.failure_policy,
            &mut w.match_policy,
            &mut w.namespace_selector,
            &mut w.object_selector,
            &mut w.timeout_seconds,
            &mut w.rules,
            w.client_config.service.as_mut(),
        );
    }
}
