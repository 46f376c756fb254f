//! apps/v1 validation, after upstream `pkg/apis/apps/validation/validation.go` (1.33).

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::core::workload_template;
use super::field::{FieldError, Path};
use super::meta::{self, int_or_percent, non_negative, not_more_than_100_percent};
use crate::labels::Selector;

fn selector_repr(s: &LabelSelector) -> String {
    Selector::try_from(s)
        .map(|s| format!("{:?}", s.to_string()))
        .unwrap_or_else(|_| "\"<invalid>\"".into())
}

/// Selector checks shared by ReplicaSet/Deployment/DaemonSet/StatefulSet: required, valid,
/// non-empty (`empty selector is invalid for <what>`). Returns the parsed selector.
fn workload_selector(
    s: &LabelSelector,
    p: &Path,
    what: &str,
    errs: &mut Vec<FieldError>,
) -> Option<Selector> {
    errs.extend(meta::label_selector(s, p));
    match Selector::try_from(s) {
        Ok(sel) if sel.is_everything() => {
            errs.push(FieldError::invalid_raw(
                p.clone(),
                selector_repr(s),
                format!("empty selector is invalid for {what}"),
            ));
            None
        }
        Ok(sel) => Some(sel),
        Err(_) => {
            errs.push(FieldError::invalid_raw(
                p.clone(),
                selector_repr(s),
                "invalid label selector",
            ));
            None
        }
    }
}

fn ios_value(v: Option<&IntOrString>) -> i64 {
    match v {
        Some(IntOrString::Int(i)) => i64::from(*i),
        Some(s) => meta::percent_value(s).unwrap_or(0),
        None => 0,
    }
}

fn ios_repr(v: Option<&IntOrString>) -> String {
    match v {
        Some(IntOrString::Int(i)) => i.to_string(),
        Some(IntOrString::String(s)) => format!("{s:?}"),
        None => "null".into(),
    }
}

/// Deployment (create).
pub(crate) fn deployment(d: &Deployment) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&d.metadata, true, meta::NameRule::Subdomain);
    let sp = Path::new("spec");
    let Some(s) = &d.spec else {
        errs.push(FieldError::required(sp, ""));
        return errs;
    };
    errs.extend(non_negative(
        s.replicas.map(i64::from),
        sp.child("replicas"),
    ));
    let sel = workload_selector(&s.selector, &sp.child("selector"), "deployment", &mut errs);
    errs.extend(workload_template(
        Some(&s.template),
        sel.as_ref(),
        &sp.child("template"),
        &["Always"],
        Some("ReplicaSet"),
    ));
    if let Some(st) = &s.strategy {
        let stp = sp.child("strategy");
        match st.type_.as_deref().unwrap_or("") {
            "Recreate" => {
                if st.rolling_update.is_some() {
                    errs.push(FieldError::forbidden(
                        stp.child("rollingUpdate"),
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" => {
                if let Some(ru) = &st.rolling_update {
                    let rp = stp.child("rollingUpdate");
                    for (f, v) in [
                        ("maxUnavailable", &ru.max_unavailable),
                        ("maxSurge", &ru.max_surge),
                    ] {
                        if let Some(v) = v {
                            errs.extend(int_or_percent(v, &rp.child(f)));
                        }
                    }
                    if ios_value(ru.max_unavailable.as_ref()) == 0
                        && ios_value(ru.max_surge.as_ref()) == 0
                    {
                        errs.push(FieldError::invalid_raw(
                            rp.child("maxUnavailable"),
                            ios_repr(ru.max_unavailable.as_ref()),
                            "may not be 0 when `maxSurge` is 0",
                        ));
                    }
                    if let Some(v) = &ru.max_unavailable {
                        errs.extend(not_more_than_100_percent(v, &rp.child("maxUnavailable")));
                    }
                }
            }
            // Upstream reports this at `strategy.Type` (capital T).
            other => errs.push(FieldError::not_supported(
                stp.child("Type"),
                other,
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    errs.extend(non_negative(
        s.revision_history_limit.map(i64::from),
        sp.child("revisionHistoryLimit"),
    ));
    errs.extend(non_negative(
        s.min_ready_seconds.map(i64::from),
        sp.child("minReadySeconds"),
    ));
    if let Some(pd) = s.progress_deadline_seconds {
        errs.extend(non_negative(
            Some(i64::from(pd)),
            sp.child("progressDeadlineSeconds"),
        ));
        if pd <= s.min_ready_seconds.unwrap_or(0) {
            errs.push(FieldError::invalid_num(
                sp.child("progressDeadlineSeconds"),
                i64::from(pd),
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

fn selector_update(new: &LabelSelector, old: &LabelSelector) -> Vec<FieldError> {
    if new != old {
        vec![FieldError::invalid_raw(
            Path::new("spec").child("selector"),
            selector_repr(new),
            "field is immutable",
        )]
    } else {
        vec![]
    }
}

/// Deployment update: selector immutable.
pub(crate) fn deployment_update(new: &Deployment, old: &Deployment) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
        errs.extend(selector_update(&n.selector, &o.selector));
    }
    errs
}

/// ReplicaSet (create).
pub(crate) fn replica_set(rs: &ReplicaSet) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&rs.metadata, true, meta::NameRule::Subdomain);
    let sp = Path::new("spec");
    let Some(s) = &rs.spec else {
        errs.push(FieldError::required(sp, ""));
        return errs;
    };
    errs.extend(non_negative(
        s.replicas.map(i64::from),
        sp.child("replicas"),
    ));
    errs.extend(non_negative(
        s.min_ready_seconds.map(i64::from),
        sp.child("minReadySeconds"),
    ));
    // Upstream's ReplicaSet check reuses the Deployment message.
    let sel = workload_selector(&s.selector, &sp.child("selector"), "deployment", &mut errs);
    errs.extend(workload_template(
        s.template.as_ref(),
        sel.as_ref(),
        &sp.child("template"),
        &["Always"],
        Some("ReplicaSet"),
    ));
    errs
}

/// ReplicaSet update: selector immutable.
pub(crate) fn replica_set_update(new: &ReplicaSet, old: &ReplicaSet) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
        errs.extend(selector_update(&n.selector, &o.selector));
    }
    errs
}

/// DaemonSet (create).
pub(crate) fn daemon_set(ds: &DaemonSet) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&ds.metadata, true, meta::NameRule::Subdomain);
    let sp = Path::new("spec");
    let Some(s) = &ds.spec else {
        errs.push(FieldError::required(sp, ""));
        return errs;
    };
    let sel = workload_selector(&s.selector, &sp.child("selector"), "daemonset", &mut errs);
    errs.extend(workload_template(
        Some(&s.template),
        sel.as_ref(),
        &sp.child("template"),
        &["Always"],
        Some("DaemonSet"),
    ));
    if let Some(us) = &s.update_strategy {
        let up = sp.child("updateStrategy");
        match us.type_.as_deref().unwrap_or("") {
            "OnDelete" => {}
            "RollingUpdate" => {
                if let Some(ru) = &us.rolling_update {
                    let rp = up.child("rollingUpdate");
                    for (f, v) in [
                        ("maxUnavailable", &ru.max_unavailable),
                        ("maxSurge", &ru.max_surge),
                    ] {
                        if let Some(v) = v {
                            errs.extend(int_or_percent(v, &rp.child(f)));
                            errs.extend(not_more_than_100_percent(v, &rp.child(f)));
                        }
                    }
                    let has_unavailable = ios_value(ru.max_unavailable.as_ref()) != 0;
                    let has_surge = ios_value(ru.max_surge.as_ref()) != 0;
                    if has_unavailable && has_surge {
                        errs.push(FieldError::invalid_raw(
                            rp.child("maxSurge"),
                            ios_repr(ru.max_surge.as_ref()),
                            "may not be set when maxUnavailable is non-zero",
                        ));
                    } else if !has_unavailable && !has_surge {
                        errs.push(FieldError::required(
                            rp.child("maxUnavailable"),
                            "cannot be 0 when maxSurge is 0",
                        ));
                    }
                }
            }
            other => errs.push(FieldError::not_supported(
                up.child("type"),
                other,
                &["OnDelete", "RollingUpdate"],
            )),
        }
    }
    errs.extend(non_negative(
        s.revision_history_limit.map(i64::from),
        sp.child("revisionHistoryLimit"),
    ));
    errs.extend(non_negative(
        s.min_ready_seconds.map(i64::from),
        sp.child("minReadySeconds"),
    ));
    errs
}

/// DaemonSet update: selector immutable.
pub(crate) fn daemon_set_update(new: &DaemonSet, old: &DaemonSet) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
        errs.extend(selector_update(&n.selector, &o.selector));
    }
    errs
}

/// StatefulSet (create).
pub(crate) fn stateful_set(sts: &StatefulSet) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&sts.metadata, true, meta::NameRule::Subdomain);
    let sp = Path::new("spec");
    let Some(s) = &sts.spec else {
        errs.push(FieldError::required(sp, ""));
        return errs;
    };
    match s.pod_management_policy.as_deref().unwrap_or("") {
        "OrderedReady" | "Parallel" => {}
        "" => errs.push(FieldError::required(sp.child("podManagementPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            sp.child("podManagementPolicy"),
            other,
            &["OrderedReady", "Parallel"],
        )),
    }
    if let Some(us) = &s.update_strategy {
        let up = sp.child("updateStrategy");
        match us.type_.as_deref().unwrap_or("") {
            "RollingUpdate" => {
                if let Some(ru) = &us.rolling_update {
                    errs.extend(non_negative(
                        ru.partition.map(i64::from),
                        up.child("rollingUpdate").child("partition"),
                    ));
                }
            }
            "OnDelete" => {
                if us.rolling_update.is_some() {
                    errs.push(FieldError::invalid_raw(
                        up.child("rollingUpdate"),
                        "{...}",
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            "" => errs.push(FieldError::required(up.child("type"), "")),
            other => errs.push(FieldError::not_supported(
                up.child("type"),
                other,
                &["OnDelete", "RollingUpdate"],
            )),
        }
    }
    if let Some(pol) = &s.persistent_volume_claim_retention_policy {
        let pp = sp.child("persistentVolumeClaimRetentionPolicy");
        for (f, v) in [
            ("whenDeleted", &pol.when_deleted),
            ("whenScaled", &pol.when_scaled),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !["Retain", "Delete"].contains(v)) {
                errs.push(FieldError::not_supported(
                    pp.child(f),
                    v,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    if let Some(o) = &s.ordinals {
        errs.extend(non_negative(
            o.start.map(i64::from),
            sp.child("ordinals").child("start"),
        ));
    }
    errs.extend(non_negative(
        s.replicas.map(i64::from),
        sp.child("replicas"),
    ));
    errs.extend(non_negative(
        s.min_ready_seconds.map(i64::from),
        sp.child("minReadySeconds"),
    ));
    errs.extend(non_negative(
        s.revision_history_limit.map(i64::from),
        sp.child("revisionHistoryLimit"),
    ));
    let sel = workload_selector(&s.selector, &sp.child("selector"), "statefulset", &mut errs);
    // Volume mounts may name volumeClaimTemplates: check mounts against the union of the pod's
    // volumes and the claim templates (upstream skips the pod-spec volume check for
    // StatefulSets for this reason; see the TODO in ValidatePodTemplateSpecForStatefulSet).
    let mut template = s.template.clone();
    if let Some(spec) = template.spec.as_mut() {
        let vols = spec.volumes.get_or_insert_with(Vec::new);
        for pvc in s.volume_claim_templates.iter().flatten() {
            let name = pvc.metadata.name.clone().unwrap_or_default();
            if !vols.iter().any(|v| v.name == name) {
                vols.push(k8s_openapi::api::core::v1::Volume {
                    name,
                    persistent_volume_claim: Some(Default::default()),
                    ..Default::default()
                });
            }
        }
    }
    errs.extend(workload_template(
        Some(&template),
        sel.as_ref(),
        &sp.child("template"),
        &["Always"],
        Some("StatefulSet"),
    ));
    for (i, pvc) in s.volume_claim_templates.iter().flatten().enumerate() {
        let name = pvc.metadata.name.as_deref().unwrap_or("");
        for m in crate::names::is_dns1123_subdomain(name) {
            errs.push(FieldError::invalid(
                sp.child("volumeClaimTemplates")
                    .index(i)
                    .child("metadata")
                    .child("name"),
                name,
                m,
            ));
        }
    }
    errs
}

/// StatefulSet update: only replicas, ordinals, template, updateStrategy,
/// revisionHistoryLimit, persistentVolumeClaimRetentionPolicy and minReadySeconds may change.
pub(crate) fn stateful_set_update(new: &StatefulSet, old: &StatefulSet) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
        let mut m = o.clone();
        m.replicas = n.replicas;
        m.ordinals.clone_from(&n.ordinals);
        m.template = n.template.clone();
        m.update_strategy.clone_from(&n.update_strategy);
        m.revision_history_limit = n.revision_history_limit;
        m.persistent_volume_claim_retention_policy
            .clone_from(&n.persistent_volume_claim_retention_policy);
        m.min_ready_seconds = n.min_ready_seconds;
        if &m != n {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
    errs
}

/// ControllerRevision (create).
pub(crate) fn controller_revision(cr: &ControllerRevision) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&cr.metadata, true, meta::NameRule::Subdomain);
    if cr.data.is_none() {
        errs.push(FieldError::required("data", "data is mandatory"));
    }
    errs.extend(non_negative(Some(cr.revision), Path::new("revision")));
    errs
}

/// ControllerRevision update: data immutable.
pub(crate) fn controller_revision_update(
    new: &ControllerRevision,
    old: &ControllerRevision,
) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if new.data != old.data {
        errs.push(FieldError::invalid_raw(
            "data",
            "{...}",
            "field is immutable",
        ));
    }
    errs
}
