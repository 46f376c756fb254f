//! Validation of the remaining wave-1 groups: coordination.k8s.io, autoscaling/v2,
//! scheduling.k8s.io, apiextensions.k8s.io and events.k8s.io (upstream
//! `pkg/apis/*/validation`, `apiextensions-apiserver/pkg/apis/apiextensions/validation`).

use std::collections::BTreeSet;

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscaler};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use super::field::{FieldError, Path};
use super::meta::{self, immutable, non_negative, positive};
use crate::names;

/// Lease.
pub(crate) fn lease(l: &Lease) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&l.metadata, true, meta::NameRule::Subdomain);
    if let Some(s) = &l.spec {
        let sp = Path::new("spec");
        errs.extend(positive(
            s.lease_duration_seconds.map(i64::from),
            sp.child("leaseDurationSeconds"),
        ));
        errs.extend(non_negative(
            s.lease_transitions.map(i64::from),
            sp.child("leaseTransitions"),
        ));
    }
    errs
}

fn scaling_rules(r: &HPAScalingRules, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(w) = r.stabilization_window_seconds {
        if !(0..=3600).contains(&w) {
            errs.push(FieldError::invalid_num(
                p.child("stabilizationWindowSeconds"),
                i64::from(w),
                "must be less than or equal to 3600",
            ));
        }
    }
    if let Some(sp) = r.select_policy.as_deref() {
        if !["Max", "Min", "Disabled"].contains(&sp) {
            errs.push(FieldError::not_supported(
                p.child("selectPolicy"),
                sp,
                &["Disabled", "Max", "Min"],
            ));
        }
    }
    for (i, pol) in r.policies.iter().flatten().enumerate() {
        let pp = p.child("policies").index(i);
        if !["Pods", "Percent"].contains(&pol.type_.as_str()) {
            errs.push(FieldError::not_supported(
                pp.child("type"),
                &pol.type_,
                &["Percent", "Pods"],
            ));
        }
        if pol.value <= 0 {
            errs.push(FieldError::invalid_num(
                pp.child("value"),
                i64::from(pol.value),
                "must be greater than zero",
            ));
        }
        if !(1..=1800).contains(&pol.period_seconds) {
            errs.push(FieldError::invalid_num(
                pp.child("periodSeconds"),
                i64::from(pol.period_seconds),
                "must be between 1 and 1800, inclusive",
            ));
        }
    }
    errs
}

/// HorizontalPodAutoscaler (autoscaling/v2).
pub(crate) fn hpa(h: &HorizontalPodAutoscaler) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&h.metadata, true, meta::NameRule::Subdomain);
    let sp = Path::new("spec");
    let Some(s) = &h.spec else {
        errs.push(FieldError::required(sp, ""));
        return errs;
    };
    let rp = sp.child("scaleTargetRef");
    if s.scale_target_ref.kind.is_empty() {
        errs.push(FieldError::required(rp.child("kind"), ""));
    }
    if s.scale_target_ref.name.is_empty() {
        errs.push(FieldError::required(rp.child("name"), ""));
    }
    if let Some(min) = s.min_replicas {
        if min < 1 {
            errs.push(FieldError::invalid_num(
                sp.child("minReplicas"),
                i64::from(min),
                "must be greater than or equal to 1",
            ));
        }
    }
    if s.max_replicas < 1 {
        errs.push(FieldError::invalid_num(
            sp.child("maxReplicas"),
            i64::from(s.max_replicas),
            "must be greater than 0",
        ));
    }
    if let Some(min) = s.min_replicas {
        if s.max_replicas < min {
            errs.push(FieldError::invalid_num(
                sp.child("maxReplicas"),
                i64::from(s.max_replicas),
                "must be greater than or equal to `minReplicas`",
            ));
        }
    }
    for (i, m) in s.metrics.iter().flatten().enumerate() {
        let mp = sp.child("metrics").index(i);
        let (present, child) = match m.type_.as_str() {
            "Resource" => (m.resource.is_some(), "resource"),
            "ContainerResource" => (m.container_resource.is_some(), "containerResource"),
            "Pods" => (m.pods.is_some(), "pods"),
            "Object" => (m.object.is_some(), "object"),
            "External" => (m.external.is_some(), "external"),
            other => {
                errs.push(FieldError::not_supported(
                    mp.child("type"),
                    other,
                    &[
                        "ContainerResource",
                        "External",
                        "Object",
                        "Pods",
                        "Resource",
                    ],
                ));
                continue;
            }
        };
        if !present {
            errs.push(FieldError::required(
                mp.child(child),
                "must populate information for the given metric source",
            ));
        }
        if let Some(r) = &m.resource {
            let tp = mp.child("resource").child("target");
            if r.name.is_empty() {
                errs.push(FieldError::required(
                    mp.child("resource").child("name"),
                    "must specify a resource name",
                ));
            }
            match r.target.type_.as_str() {
                "Utilization" => {
                    if r.target.average_utilization.is_none_or(|u| u <= 0) {
                        errs.push(FieldError::required(
                            tp.child("averageUtilization"),
                            "must set either a target raw value or a target utilization",
                        ));
                    }
                }
                "AverageValue" | "Value" => {}
                other => errs.push(FieldError::not_supported(
                    tp.child("type"),
                    other,
                    &["AverageValue", "Utilization", "Value"],
                )),
            }
        }
    }
    if let Some(b) = &s.behavior {
        if let Some(r) = &b.scale_up {
            errs.extend(scaling_rules(r, &sp.child("behavior").child("scaleUp")));
        }
        if let Some(r) = &b.scale_down {
            errs.extend(scaling_rules(r, &sp.child("behavior").child("scaleDown")));
        }
    }
    errs
}

/// Upstream `HighestUserDefinablePriority`.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i32 = 1_000_000_000;

/// PriorityClass.
pub(crate) fn priority_class(pc: &PriorityClass) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&pc.metadata, false, meta::NameRule::Subdomain);
    let name = pc.metadata.name.as_deref().unwrap_or("");
    let system = ["system-node-critical", "system-cluster-critical"];
    if name.starts_with("system-") && !system.contains(&name) {
        errs.push(FieldError::forbidden(
            Path::new("metadata").child("name"),
            "priority class names with 'system-' prefix are reserved",
        ));
    }
    if pc.value > HIGHEST_USER_DEFINABLE_PRIORITY && !system.contains(&name) {
        errs.push(FieldError::forbidden(
            "value",
            format!("maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"),
        ));
    }
    if let Some(p) = pc.preemption_policy.as_deref() {
        if !["Never", "PreemptLowerPriority"].contains(&p) {
            errs.push(FieldError::not_supported(
                "preemptionPolicy",
                p,
                &["Never", "PreemptLowerPriority"],
            ));
        }
    }
    errs
}

/// PriorityClass update: value and preemptionPolicy immutable.
pub(crate) fn priority_class_update(new: &PriorityClass, old: &PriorityClass) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if new.value != old.value {
        errs.push(FieldError::forbidden(
            "value",
            "may not be changed in an update.",
        ));
    }
    if new.preemption_policy != old.preemption_policy {
        errs.push(immutable(
            Path::new("preemptionPolicy"),
            new.preemption_policy.as_deref().unwrap_or(""),
        ));
    }
    errs
}

/// CustomResourceDefinition, its versions' schemas included ([`crate::crd::validate_crd_schemas`]).
pub(crate) fn crd(c: &CustomResourceDefinition) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&c.metadata, false, meta::NameRule::Subdomain);
    let s = &c.spec;
    let sp = Path::new("spec");
    let name = c.metadata.name.as_deref().unwrap_or("");
    if name != format!("{}.{}", s.names.plural, s.group) {
        errs.push(FieldError::invalid(
            Path::new("metadata").child("name"),
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if s.group.is_empty() {
        errs.push(FieldError::required(sp.child("group"), ""));
    } else {
        for m in names::is_dns1123_subdomain(&s.group) {
            errs.push(FieldError::invalid(sp.child("group"), &s.group, m));
        }
        if s.group.split('.').count() < 2 {
            errs.push(FieldError::invalid(
                sp.child("group"),
                &s.group,
                "should be a domain with at least one dot",
            ));
        }
    }
    if !["Cluster", "Namespaced"].contains(&s.scope.as_str()) {
        errs.push(FieldError::not_supported(
            sp.child("scope"),
            &s.scope,
            &["Cluster", "Namespaced"],
        ));
    }
    let np = sp.child("names");
    for (f, v, required) in [
        ("plural", Some(s.names.plural.as_str()), true),
        ("singular", s.names.singular.as_deref(), false),
    ] {
        match v {
            None | Some("") if required => errs.push(FieldError::required(np.child(f), "")),
            None | Some("") => {}
            Some(v) => {
                for m in names::is_dns1123_label(v) {
                    errs.push(FieldError::invalid(np.child(f), v, m));
                }
            }
        }
    }
    if s.names.kind.is_empty() {
        errs.push(FieldError::required(np.child("kind"), ""));
    }
    let vp = sp.child("versions");
    if s.versions.is_empty() {
        errs.push(FieldError::invalid_raw(
            vp.clone(),
            "[]",
            "must have exactly one version marked as storage version",
        ));
    }
    let storage = s.versions.iter().filter(|v| v.storage).count();
    if !s.versions.is_empty() && storage != 1 {
        errs.push(FieldError::invalid_raw(
            vp.clone(),
            "[...]",
            "must have exactly one version marked as storage version",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, v) in s.versions.iter().enumerate() {
        let ip = vp.index(i);
        for m in names::is_dns1123_label(&v.name) {
            errs.push(FieldError::invalid(ip.child("name"), &v.name, m));
        }
        if !seen.insert(v.name.clone()) {
            errs.push(FieldError::invalid(
                ip.child("name"),
                &v.name,
                "must be unique",
            ));
        }
        if v.schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .is_none()
        {
            errs.push(FieldError::required(
                ip.child("schema").child("openAPIV3Schema"),
                "schemas are required",
            ));
        }
    }
    errs.extend(crd_conversion(c, &sp));
    errs.extend(crate::crd::validate_crd_schemas(c));
    errs
}

/// `spec.conversion` (upstream `apiextensions/validation/validation.go`,
/// `validateCustomResourceConversion`): `None` or `Webhook`; a webhook (with a client config
/// naming an https `url` or a `service`, and review versions including `v1` or `v1beta1`)
/// exactly when the strategy is `Webhook`.
fn crd_conversion(c: &CustomResourceDefinition, sp: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(conv) = &c.spec.conversion else {
        return errs;
    };
    let cp = sp.child("conversion");
    match conv.strategy.as_str() {
        "None" => {
            if conv.webhook.is_some() {
                errs.push(FieldError::forbidden(
                    cp.child("webhook"),
                    "should not be set when strategy is not set to Webhook",
                ));
            }
        }
        "Webhook" => {
            let wp = cp.child("webhook");
            let Some(w) = &conv.webhook else {
                errs.push(FieldError::required(
                    wp,
                    "required when strategy is set to Webhook",
                ));
                return errs;
            };
            match &w.client_config {
                None => errs.push(FieldError::required(
                    wp.child("clientConfig"),
                    "required when strategy is set to Webhook",
                )),
                Some(cc) => {
                    let ccp = wp.child("clientConfig");
                    match (&cc.url, &cc.service) {
                        (Some(_), Some(_)) | (None, None) => errs.push(FieldError::required(
                            ccp,
                            "exactly one of url or service is required",
                        )),
                        (Some(url), None) if !url.starts_with("https://") => {
                            errs.push(FieldError::invalid(
                                ccp.child("url"),
                                url,
                                "'https' is the only allowed URL scheme",
                            ))
                        }
                        _ => {}
                    }
                }
            }
            if !w
                .conversion_review_versions
                .iter()
                .any(|v| v == "v1" || v == "v1beta1")
            {
                errs.push(FieldError::invalid(
                    wp.child("conversionReviewVersions"),
                    &format!("{:?}", w.conversion_review_versions),
                    "must include at least one of v1, v1beta1",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            cp.child("strategy"),
            other,
            &["None", "Webhook"],
        )),
    }
    errs
}

/// events.k8s.io/v1 Event (upstream `ValidateEventCreate` for the events group).
pub(crate) fn event(e: &Event) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&e.metadata, true, meta::NameRule::Subdomain);
    if e.event_time.is_none() {
        errs.push(FieldError::required("eventTime", ""));
    }
    if let Some(t) = e.type_.as_deref() {
        if t != "Normal" && t != "Warning" {
            errs.push(FieldError::invalid(
                "type",
                "",
                format!("has invalid value: {t}"),
            ));
        }
    }
    if let Some(s) = &e.series {
        if s.count < 2 {
            errs.push(FieldError::invalid_num(
                Path::new("series").child("count"),
                i64::from(s.count),
                "should be at least 2",
            ));
        }
    }
    for (f, v, max) in [
        (
            "reportingController",
            e.reporting_controller.as_deref(),
            253,
        ),
        ("reportingInstance", e.reporting_instance.as_deref(), 128),
        ("action", e.action.as_deref(), 128),
        ("reason", e.reason.as_deref(), 128),
    ] {
        match v {
            None | Some("") => errs.push(FieldError::required(f, "")),
            Some(v) if v.len() > max => errs.push(FieldError::too_long(f, max)),
            Some(_) => {}
        }
    }
    if let Some(rc) = e.reporting_controller.as_deref().filter(|s| !s.is_empty()) {
        for m in names::is_qualified_name(rc) {
            errs.push(FieldError::invalid("reportingController", rc, m));
        }
    }
    if e.note.as_ref().is_some_and(|n| n.len() > 1024) {
        errs.push(FieldError::too_long("note", 1024));
    }
    errs
}

/// APIService (upstream `kube-aggregator/pkg/apis/apiregistration/validation/validation.go`).
pub(crate) fn api_service(
    a: &k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&a.metadata, false, meta::NameRule::PathSegment);
    let name = a.metadata.name.as_deref().unwrap_or("");
    let sp = Path::new("spec");
    let Some(s) = &a.spec else {
        errs.push(FieldError::required(sp, ""));
        return errs;
    };
    let group = s.group.as_deref().unwrap_or("");
    let version = s.version.as_deref().unwrap_or("");
    if name.split_once('.').is_none() {
        errs.push(FieldError::invalid(
            Path::new("metadata").child("name"),
            name,
            "must be in the form: <version>.<group>",
        ));
    } else if name != format!("{version}.{group}") {
        errs.push(FieldError::invalid(
            Path::new("metadata").child("name"),
            name,
            "must be `spec.version+\".\"+spec.group`",
        ));
    }
    if group.is_empty() && version != "v1" {
        errs.push(FieldError::required(
            sp.child("group"),
            "only v1 may have an empty group and it better be legacy kube",
        ));
    }
    if !group.is_empty() {
        for m in names::is_dns1123_subdomain(group) {
            errs.push(FieldError::invalid(sp.child("group"), group, m));
        }
    }
    if version.is_empty() {
        errs.push(FieldError::required(sp.child("version"), ""));
    } else {
        for m in names::is_dns1035_label(version) {
            errs.push(FieldError::invalid(sp.child("version"), version, m));
        }
    }
    if !(1..=20000).contains(&s.group_priority_minimum) {
        errs.push(FieldError::invalid(
            sp.child("groupPriorityMinimum"),
            &s.group_priority_minimum.to_string(),
            "must be positive and less than 20000",
        ));
    }
    if !(1..=1000).contains(&s.version_priority) {
        errs.push(FieldError::invalid(
            sp.child("versionPriority"),
            &s.version_priority.to_string(),
            "must be positive and less than 1000",
        ));
    }
    let has_ca = s.ca_bundle.as_ref().is_some_and(|b| !b.0.is_empty());
    let insecure = s.insecure_skip_tls_verify == Some(true);
    match &s.service {
        None => {
            if has_ca {
                errs.push(FieldError::invalid(
                    sp.child("caBundle"),
                    "",
                    "local APIServices may not have a caBundle",
                ));
            }
            if insecure {
                errs.push(FieldError::invalid(
                    sp.child("insecureSkipTLSVerify"),
                    "true",
                    "local APIServices may not have insecureSkipTLSVerify",
                ));
            }
        }
        Some(svc) => {
            let p = sp.child("service");
            if insecure && has_ca {
                errs.push(FieldError::invalid(
                    sp.child("insecureSkipTLSVerify"),
                    "true",
                    "may not be true if caBundle is present",
                ));
            }
            for (f, v) in [("namespace", &svc.namespace), ("name", &svc.name)] {
                match v.as_deref().filter(|v| !v.is_empty()) {
                    None => errs.push(FieldError::required(p.child(f), "")),
                    Some(v) => {
                        for m in names::is_dns1123_label(v) {
                            errs.push(FieldError::invalid(p.child(f), v, m));
                        }
                    }
                }
            }
            if let Some(port) = svc.port {
                if !(1..=65535).contains(&port) {
                    errs.push(FieldError::invalid(
                        p.child("port"),
                        &port.to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }
    errs
}
