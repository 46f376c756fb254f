//! apps/v1 defaults, after upstream `pkg/apis/apps/v1/defaults.go` (Kubernetes 1.33, default
//! feature gates: `StatefulSetAutoDeletePVC` on, `MaxUnavailableStatefulSet` off).

use k8s_openapi::api::apps::v1::{
    DaemonSet, Deployment, ReplicaSet, RollingUpdateDaemonSet, RollingUpdateDeployment,
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::core::pod_template;

fn set<T>(slot: &mut Option<T>, v: T) {
    if slot.is_none() {
        *slot = Some(v);
    }
}

fn set_str(slot: &mut Option<String>, v: &str) {
    if slot.as_deref().is_none_or(str::is_empty) {
        *slot = Some(v.to_string());
    }
}

/// `SetDefaults_Deployment`.
pub(crate) fn deployment(d: &mut Deployment) {
    let Some(s) = d.spec.as_mut() else { return };
    set(&mut s.replicas, 1);
    let strategy = s.strategy.get_or_insert_with(Default::default);
    set_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        set(&mut ru.max_unavailable, IntOrString::String("25%".into()));
        set(&mut ru.max_surge, IntOrString::String("25%".into()));
    }
    set(&mut s.revision_history_limit, 10);
    set(&mut s.progress_deadline_seconds, 600);
    pod_template(&mut s.template);
}

/// `SetDefaults_DaemonSet`.
pub(crate) fn daemon_set(ds: &mut DaemonSet) {
    let Some(s) = ds.spec.as_mut() else { return };
    let us = s.update_strategy.get_or_insert_with(Default::default);
    set_str(&mut us.type_, "RollingUpdate");
    if us.type_.as_deref() == Some("RollingUpdate") {
        let ru = us
            .rolling_update
            .get_or_insert_with(RollingUpdateDaemonSet::default);
        set(&mut ru.max_unavailable, IntOrString::Int(1));
        set(&mut ru.max_surge, IntOrString::Int(0));
    }
    set(&mut s.revision_history_limit, 10);
    pod_template(&mut s.template);
}

/// `SetDefaults_StatefulSet`.
pub(crate) fn stateful_set(sts: &mut StatefulSet) {
    let Some(s) = sts.spec.as_mut() else { return };
    set_str(&mut s.pod_management_policy, "OrderedReady");
    let us = s.update_strategy.get_or_insert_with(Default::default);
    if us.type_.as_deref().is_none_or(str::is_empty) {
        us.type_ = Some("RollingUpdate".into());
        set(
            &mut us.rolling_update,
            RollingUpdateStatefulSetStrategy::default(),
        );
    }
    if us.type_.as_deref() == Some("RollingUpdate") {
        if let Some(ru) = us.rolling_update.as_mut() {
            set(&mut ru.partition, 0);
        }
    }
    let policy = s
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
    set_str(&mut policy.when_deleted, "Retain");
    set_str(&mut policy.when_scaled, "Retain");
    set(&mut s.replicas, 1);
    set(&mut s.revision_history_limit, 10);
    pod_template(&mut s.template);
    for pvc in s.volume_claim_templates.iter_mut().flatten() {
        if let Some(spec) = pvc.spec.as_mut() {
            set_str(&mut spec.volume_mode, "Filesystem");
        }
        let st = pvc.status.get_or_insert_with(Default::default);
        set_str(&mut st.phase, "Pending");
    }
}

/// `SetDefaults_ReplicaSet`.
pub(crate) fn replica_set(rs: &mut ReplicaSet) {
    let Some(s) = rs.spec.as_mut() else { return };
    set(&mut s.replicas, 1);
    if let Some(t) = s.template.as_mut() {
        pod_template(t);
    }
}
