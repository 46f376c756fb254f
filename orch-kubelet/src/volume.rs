//! Pod volumes backed by PersistentVolumeClaims, as upstream's volume manager sees them: the
//! desired-state-of-world populator resolves each claim to its bound PersistentVolume
//! (`desired_state_of_world_populator.go` `getPVCExtractPV` / `getPVSpec`), and the pod's
//! containers start only once every such volume can be mounted (`volume_manager.go`
//! `WaitForAttachAndMount`; until then the kubelet records `FailedMount`).
//!
//! Pure: the driver fetches the claims ([`claim_names`]) and their volumes and hands them to
//! [`PodVolumes::resolve`] (through [`crate::pod_sync::env_context`]); the worker holds the
//! pod's sandbox back while [`PodVolumes::mount_error`] says why, and gives each container the
//! [`Mount`]s of its `volumeMounts` ([`PodVolumes::mounts`]). A volume is mounted from the
//! directory its PersistentVolume's `local` or `hostPath` source names on this node; other
//! volume sources are not supported. Other pod volume types (emptyDir, hostPath, configMap, …)
//! are not handled here.

use crate::runtime::Mount;
use k8s_openapi::api::core::v1::{Container, PersistentVolume, PersistentVolumeClaim, Pod};
use orch_runtime::volume::{claim_volume, local_path, pod_claims};
use std::collections::BTreeMap;

/// Whether one pod volume (claim-backed, or projected: [`PodVolumes::insert`]) can be
/// mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeState {
    /// Bound: mounted from this directory on the node.
    Ready {
        /// The directory (the volume's `local.path` or `hostPath.path`).
        host_path: String,
        /// The pod volume's `persistentVolumeClaim.readOnly`.
        read_only: bool,
    },
    /// Not mountable yet, with upstream's reason (`error processing PVC default/data: PVC is
    /// not bound`).
    Failed(String),
}

/// The claim-backed volumes of a pod, by pod volume name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    states: BTreeMap<String, VolumeState>,
}

/// The claims a pod uses, by name in its namespace: what the driver fetches.
pub fn claim_names(pod: &Pod) -> Vec<String> {
    let mut names: Vec<String> = pod_claims(pod).map(|c| c.claim).collect();
    names.sort();
    names.dedup();
    names
}

impl PodVolumes {
    /// Resolves the pod's claim-backed volumes from the fetched claims (of its namespace) and
    /// volumes; a claim or volume not among them does not exist.
    pub fn resolve(
        pod: &Pod,
        claims: &[PersistentVolumeClaim],
        volumes: &[PersistentVolume],
    ) -> Self {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let read_only: BTreeMap<&str, bool> = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| {
                let c = v.persistent_volume_claim.as_ref()?;
                Some((v.name.as_str(), c.read_only == Some(true)))
            })
            .collect();
        let mut states = BTreeMap::new();
        for pc in pod_claims(pod) {
            let fail = |why: String| {
                VolumeState::Failed(format!("error processing PVC {ns}/{}: {why}", pc.claim))
            };
            let claim = claims.iter().find(|c| {
                c.metadata.name.as_deref() == Some(&pc.claim)
                    && c.metadata.namespace.as_deref().is_none_or(|n| n == ns)
            });
            let state = match claim {
                None => fail(format!(
                    "failed to fetch PVC from API server: persistentvolumeclaims \"{}\" not found",
                    pc.claim
                )),
                Some(c) if c.metadata.deletion_timestamp.is_some() => {
                    fail("PVC is being deleted".into())
                }
                Some(c)
                    if c.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound")
                        || claim_volume(c).is_empty() =>
                {
                    fail("PVC is not bound".into())
                }
                Some(c) => {
                    let pv_name = claim_volume(c);
                    match volumes
                        .iter()
                        .find(|v| v.metadata.name.as_deref() == Some(pv_name))
                    {
                        None => fail(format!(
                            "failed to fetch PV {pv_name} from API server: persistentvolumes \"{pv_name}\" not found"
                        )),
                        Some(v) => {
                            let claim_ref = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
                            match claim_ref {
                                None => fail(format!(
                                    "found PV object {pv_name} but it has a nil ClaimRef"
                                )),
                                Some(r) if r.uid != c.metadata.uid => fail(format!(
                                    "found PV object {pv_name} but its ClaimRef.UID {} does not point to claim.UID {}",
                                    r.uid.as_deref().unwrap_or(""),
                                    c.metadata.uid.as_deref().unwrap_or("")
                                )),
                                Some(_) => match local_path(v) {
                                    Some(p) => VolumeState::Ready {
                                        host_path: p.to_string(),
                                        read_only: read_only
                                            .get(pc.volume.as_str())
                                            .copied()
                                            .unwrap_or(false),
                                    },
                                    None => fail(format!(
                                        "PersistentVolume {pv_name} has no local or hostPath source this kubelet can mount"
                                    )),
                                },
                            }
                        }
                    }
                }
            };
            states.insert(pc.volume, state);
        }
        Self { states }
    }

    /// Adds a volume the kubelet prepared itself: a projected volume written to a node
    /// directory ([`crate::projected`]), or why it could not be.
    pub fn insert(&mut self, name: &str, state: VolumeState) {
        self.states.insert(name.to_string(), state);
    }

    /// True when the pod has no claim-backed volume.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The state of pod volume `name`.
    pub fn get(&self, name: &str) -> Option<&VolumeState> {
        self.states.get(name)
    }

    /// Why the pod's volumes cannot all be mounted, as the kubelet's `FailedMount` event says
    /// it (upstream `Unable to attach or mount volumes: …`); `None` when they can.
    ///
    /// ```
    /// use orch_kubelet::volume::PodVolumes;
    /// let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
    ///     "metadata": {"name": "web", "namespace": "default"},
    ///     "spec": {"containers": [], "volumes": [
    ///         {"name": "data", "persistentVolumeClaim": {"claimName": "www"}}]}})).unwrap();
    /// let v = PodVolumes::resolve(&pod, &[], &[]);
    /// assert_eq!(v.mount_error().unwrap(), "Unable to attach or mount volumes: \
    ///     unmounted volumes=[data], unattached volumes=[], failed to process volumes=[data]: \
    ///     error processing PVC default/www: failed to fetch PVC from API server: \
    ///     persistentvolumeclaims \"www\" not found");
    /// ```
    pub fn mount_error(&self) -> Option<String> {
        let failed: Vec<(&str, &str)> = self
            .states
            .iter()
            .filter_map(|(n, s)| match s {
                VolumeState::Failed(e) => Some((n.as_str(), e.as_str())),
                VolumeState::Ready { .. } => None,
            })
            .collect();
        if failed.is_empty() {
            return None;
        }
        let names: Vec<&str> = failed.iter().map(|f| f.0).collect();
        let errors: Vec<&str> = failed.iter().map(|f| f.1).collect();
        Some(format!(
            "Unable to attach or mount volumes: unmounted volumes=[{names}], unattached volumes=[], failed to process volumes=[{names}]: {errors}",
            names = names.join(" "),
            errors = errors.join("; ")
        ))
    }

    /// The mounts of a container's `volumeMounts` that name claim-backed volumes: the volume's
    /// directory (plus `subPath`) at `mountPath`, read-only when the mount or the pod volume
    /// says so.
    pub fn mounts(&self, c: &Container) -> Vec<Mount> {
        c.volume_mounts
            .iter()
            .flatten()
            .filter_map(|m| match self.states.get(&m.name)? {
                VolumeState::Ready {
                    host_path,
                    read_only,
                } => {
                    let sub = m.sub_path.as_deref().unwrap_or("").trim_matches('/');
                    let host_path = if sub.is_empty() {
                        host_path.clone()
                    } else {
                        format!("{}/{sub}", host_path.trim_end_matches('/'))
                    };
                    Some(Mount {
                        host_path,
                        container_path: m.mount_path.clone(),
                        read_only: *read_only || m.read_only == Some(true),
                    })
                }
                VolumeState::Failed(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "containers": [{"name": "app", "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "data", "mountPath": "/logs", "subPath": "logs", "readOnly": true},
                    {"name": "cache", "mountPath": "/cache"}]}],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "www"}},
                    {"name": "cache", "emptyDir": {}}]}}))
        .unwrap()
    }

    fn claim(phase: &str, volume: Option<&str>) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "www", "namespace": "default", "uid": "c1"},
            "spec": {"volumeName": volume}, "status": {"phase": phase}}))
        .unwrap()
    }

    fn volume(uid: &str) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": "pvc-c1"},
            "spec": {"local": {"path": "/var/lib/orch/volumes/pvc-c1"},
                     "claimRef": {"namespace": "default", "name": "www", "uid": uid}}}))
        .unwrap()
    }

    #[test]
    fn a_bound_claim_mounts_its_volume_directory() {
        let p = pod();
        assert_eq!(claim_names(&p), ["www"]);
        let pending = PodVolumes::resolve(&p, &[claim("Pending", None)], &[]);
        assert_eq!(
            pending.mount_error().unwrap(),
            "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], \
             failed to process volumes=[data]: error processing PVC default/www: PVC is not bound"
        );
        let wrong = PodVolumes::resolve(&p, &[claim("Bound", Some("pvc-c1"))], &[volume("other")]);
        assert!(wrong.mount_error().unwrap().ends_with(
            "found PV object pvc-c1 but its ClaimRef.UID other does not point to claim.UID c1"
        ));
        let gone = PodVolumes::resolve(&p, &[claim("Bound", Some("pvc-c1"))], &[]);
        assert!(gone.mount_error().unwrap().contains(
            "failed to fetch PV pvc-c1 from API server: persistentvolumes \"pvc-c1\" not found"
        ));
        let ready = PodVolumes::resolve(&p, &[claim("Bound", Some("pvc-c1"))], &[volume("c1")]);
        assert_eq!(ready.mount_error(), None);
        let mounts = ready.mounts(&p.spec.as_ref().unwrap().containers[0]);
        assert_eq!(
            mounts,
            [
                Mount {
                    host_path: "/var/lib/orch/volumes/pvc-c1".into(),
                    container_path: "/data".into(),
                    read_only: false,
                },
                Mount {
                    host_path: "/var/lib/orch/volumes/pvc-c1/logs".into(),
                    container_path: "/logs".into(),
                    read_only: true,
                },
            ]
        );
        assert!(PodVolumes::resolve(&pod_without_claims(), &[], &[]).is_empty());
    }

    fn pod_without_claims() -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}))
            .unwrap()
    }
}
