//! Storage defaults: PersistentVolumeClaim and PersistentVolume (upstream
//! `pkg/apis/core/v1/defaults.go` `SetDefaults_PersistentVolume`,
//! `SetDefaults_PersistentVolumeClaim`, `SetDefaults_PersistentVolumeClaimSpec`, and the
//! resource lists the generated defaulters round) and StorageClass
//! (`pkg/apis/storage/v1/defaults.go` `SetDefaults_StorageClass`).

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
};
use k8s_openapi::api::storage::v1::StorageClass;

use super::core::resource_list;

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

/// `SetDefaults_PersistentVolumeClaimSpec`: `volumeMode: Filesystem`; request and limit
/// quantities rounded (`SetDefaults_ResourceList`). Public to the crate so workload templates
/// (`volumeClaimTemplates`) can use it too.
pub(crate) fn pvc_spec(s: &mut PersistentVolumeClaimSpec) {
    set(&mut s.volume_mode, "Filesystem".to_string());
    if let Some(r) = s.resources.as_mut() {
        resource_list(&mut r.requests);
        resource_list(&mut r.limits);
    }
}

/// `SetDefaults_PersistentVolumeClaim` (+ spec): `status.phase: Pending`.
pub(crate) fn pvc(c: &mut PersistentVolumeClaim) {
    pvc_spec(c.spec.get_or_insert_with(Default::default));
    let st = c.status.get_or_insert_with(Default::default);
    set_str(&mut st.phase, "Pending");
    resource_list(&mut st.capacity);
    resource_list(&mut st.allocated_resources);
}

/// `SetDefaults_PersistentVolume`: `status.phase: Pending`, `persistentVolumeReclaimPolicy:
/// Retain`, `volumeMode: Filesystem`, a `hostPath` type of `""`, capacity rounded.
pub(crate) fn pv(v: &mut PersistentVolume) {
    let s = v.spec.get_or_insert_with(Default::default);
    set_str(&mut s.persistent_volume_reclaim_policy, "Retain");
    set(&mut s.volume_mode, "Filesystem".to_string());
    if let Some(h) = s.host_path.as_mut() {
        set(&mut h.type_, String::new());
    }
    resource_list(&mut s.capacity);
    let st = v.status.get_or_insert_with(Default::default);
    set_str(&mut st.phase, "Pending");
}

/// `SetDefaults_StorageClass`: `reclaimPolicy: Delete`, `volumeBindingMode: Immediate`.
pub(crate) fn storage_class(sc: &mut StorageClass) {
    set(&mut sc.reclaim_policy, "Delete".to_string());
    set(&mut sc.volume_binding_mode, "Immediate".to_string());
}
