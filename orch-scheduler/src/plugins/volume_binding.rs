//! VolumeBinding: a pod's PersistentVolumeClaims must exist, and their volumes must be usable
//! from the node (upstream `pkg/scheduler/framework/plugins/volumebinding`, `PreFilter` and
//! `Filter` with `FindPodVolumes`).
//!
//! PreFilter (once per pod): no claim → Skip; a claim missing or being deleted, or a claim of an
//! `Immediate` class not bound yet → the pod is rejected on every node
//! (UnschedulableAndUnresolvable; the PV controller binds it, and the claim's update brings
//! the pod back). Filter (per node): a bound claim's volume must exist and its node affinity
//! admit the node (`node(s) had volume node affinity conflict`); an unbound claim of a
//! `WaitForFirstConsumer` class needs an available volume that fits on the node, or a class that
//! can provision (any provisioner but `kubernetes.io/no-provisioner`) with `allowedTopologies`
//! admitting the node (`node(s) didn't find available persistent volumes to bind`).
//!
//! What orch leaves out: upstream's Reserve/PreBind (assume the chosen volumes, write
//! `volume.kubernetes.io/selected-node`): orch's `persistentvolume-binder` binds a
//! `WaitForFirstConsumer` claim once a pod using it has `spec.nodeName`, so two pods scheduled
//! at once may both count on the same available volume; the second one then waits for another.
//! Storage capacity tracking (CSIStorageCapacity) and the Score of `StorageCapacityScoring`
//! are not modelled.

use crate::cycle_state::CycleState;
use crate::framework::{FilterPlugin, Plugin, PreFilterPlugin, PreFilterResult};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use orch_runtime::volume::{
    affinity_admits, claim_class, claim_volume, fits, pod_claims, waits_for_first_consumer,
    NO_PROVISIONER,
};
use std::sync::Arc;

/// The plugin.
#[derive(Debug, Default)]
pub struct VolumeBinding;

impl VolumeBinding {
    /// Registry name.
    pub const NAME: &'static str = "VolumeBinding";
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

/// What PreFilter found: the pod's bound claims and those that wait for their first consumer.
struct PodVolumes {
    /// The volumes of bound claims (`None`: the claim names a volume that does not exist).
    bound: Vec<Option<Arc<PersistentVolume>>>,
    /// Unbound claims of `WaitForFirstConsumer` classes, with their class.
    to_bind: Vec<(Arc<PersistentVolumeClaim>, Arc<StorageClass>)>,
}

fn reject(reason: Reason) -> PreFilterResult {
    Status::new(Code::UnschedulableAndUnresolvable, reason).into()
}

impl PreFilterPlugin for VolumeBinding {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
    ) -> PreFilterResult {
        let mut found = PodVolumes {
            bound: Vec::new(),
            to_bind: Vec::new(),
        };
        let mut any = false;
        let mut immediate_unbound = false;
        for pc in pod_claims(&pod.pod) {
            any = true;
            let Some(c) = snap.claim(&pod.namespace, &pc.claim) else {
                return reject(if pc.ephemeral {
                    Reason::EphemeralPvcNotCreated { name: pc.claim }
                } else {
                    Reason::PvcNotFound { name: pc.claim }
                });
            };
            if c.metadata.deletion_timestamp.is_some() {
                return reject(Reason::PvcBeingDeleted { name: pc.claim });
            }
            let volume = claim_volume(c);
            if !volume.is_empty() {
                found.bound.push(snap.volume(volume).cloned());
                continue;
            }
            let class = snap.storage_class(claim_class(c));
            match class {
                Some(sc) if waits_for_first_consumer(sc) => {
                    found.to_bind.push((c.clone(), sc.clone()));
                }
                _ => immediate_unbound = true,
            }
        }
        if !any {
            return Status::skip().into();
        }
        if immediate_unbound {
            return reject(Reason::UnboundImmediatePvc);
        }
        state.write(found);
        Status::success().into()
    }
}

/// Whether an unbound claim waiting for its first consumer can get a volume on `node`: an
/// available one that fits there, or a provisioned one (upstream `findMatchingVolumes` then
/// `checkVolumeProvisions`).
fn can_bind(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &NodeInfo,
    snap: &Snapshot,
) -> bool {
    let at = Some((node.name.as_str(), &node.labels));
    let available = snap.volumes().any(|v| {
        v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).is_none()
            && v.metadata.deletion_timestamp.is_none()
            && fits(v, claim, at)
    });
    if available {
        return true;
    }
    if class.provisioner == NO_PROVISIONER {
        return false;
    }
    match &class.allowed_topologies {
        None => true,
        Some(terms) if terms.is_empty() => true,
        Some(terms) => terms.iter().any(|t| {
            t.match_label_expressions.iter().flatten().all(|e| {
                node.labels
                    .get(&e.key)
                    .is_some_and(|v| e.values.iter().any(|x| x == v))
            })
        }),
    }
}

static NODE_CONFLICT: [Reason; 1] = [Reason::VolumeNodeAffinityConflict];
static BIND_CONFLICT: [Reason; 1] = [Reason::VolumeBindConflict];
static PV_NOT_EXIST: [Reason; 1] = [Reason::PvNotExist];

impl FilterPlugin for VolumeBinding {
    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo, snap: &Snapshot) -> Status {
        let Some(found) = state.read::<PodVolumes>() else {
            return Status::success();
        };
        let mut reasons: Vec<&'static [Reason]> = Vec::new();
        for v in &found.bound {
            match v {
                None => {
                    if !reasons.contains(&&PV_NOT_EXIST[..]) {
                        reasons.push(&PV_NOT_EXIST);
                    }
                }
                Some(v) if !affinity_admits(v, &node.labels, &node.name) => {
                    if !reasons.contains(&&NODE_CONFLICT[..]) {
                        reasons.push(&NODE_CONFLICT);
                    }
                }
                Some(_) => {}
            }
        }
        if found
            .to_bind
            .iter()
            .any(|(c, sc)| !can_bind(c, sc, node, snap))
        {
            reasons.push(&BIND_CONFLICT);
        }
        match reasons.as_slice() {
            [] => Status::success(),
            [one] => Status::fixed(Code::UnschedulableAndUnresolvable, one),
            many => Status::with_reasons(
                Code::UnschedulableAndUnresolvable,
                many.iter().flat_map(|r| r.iter().cloned()).collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod};
    use serde_json::{json, Value};

    fn claim(name: &str, class: &str, volume: Option<&str>) -> Arc<PersistentVolumeClaim> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                         "resources": {"requests": {"storage": "1Gi"}}, "volumeName": volume}}))
            .unwrap(),
        )
    }

    fn volume(name: &str, class: &str, node: &str, claim: Option<&str>) -> Arc<PersistentVolume> {
        let claim_ref: Value = match claim {
            Some(c) => json!({"namespace": "default", "name": c, "uid": "u"}),
            None => Value::Null,
        };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
                         "storageClassName": class, "local": {"path": "/v"}, "claimRef": claim_ref,
                         "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}}))
            .unwrap(),
        )
    }

    fn class(name: &str, provisioner: &str, mode: &str) -> Arc<StorageClass> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name}, "provisioner": provisioner,
                "volumeBindingMode": mode}),
            )
            .unwrap(),
        )
    }

    fn with_claims(claims: &[&str]) -> PodInfo {
        let vols: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": format!("v-{c}"), "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        pod(json!({"volumes": vols}))
    }

    fn storage() -> Snapshot {
        let mut s = Snapshot::new();
        s.upsert_storage_class(class("local", "orch.dev/local", "WaitForFirstConsumer"));
        s.upsert_storage_class(class("manual", NO_PROVISIONER, "WaitForFirstConsumer"));
        s.upsert_storage_class(class("now", "orch.dev/local", "Immediate"));
        s.upsert_claim(claim("bound", "manual", Some("pv-n1")));
        s.upsert_claim(claim("lost", "manual", Some("pv-gone")));
        s.upsert_claim(claim("wait-local", "local", None));
        s.upsert_claim(claim("wait-manual", "manual", None));
        s.upsert_claim(claim("unbound-now", "now", None));
        s.upsert_volume(volume("pv-n1", "manual", "n1", Some("bound")));
        s.upsert_volume(volume("free-n2", "manual", "n2", None));
        s
    }

    fn host(n: &str) -> NodeInfo {
        node(n, json!({"kubernetes.io/hostname": n}), json!({}))
    }

    /// (claims, node, PreFilter message, Filter message); empty = success.
    #[test]
    fn table() {
        let snap = storage();
        let cases: &[(&[&str], &str, &str, &str)] = &[
            (&["bound"], "n1", "", ""),
            (
                &["bound"],
                "n2",
                "",
                "node(s) had volume node affinity conflict",
            ),
            (
                &["lost"],
                "n1",
                "",
                "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)",
            ),
            (
                &["nope"],
                "n1",
                "persistentvolumeclaim \"nope\" not found",
                "",
            ),
            (
                &["unbound-now"],
                "n1",
                "pod has unbound immediate PersistentVolumeClaims",
                "",
            ),
            // A class that provisions fits anywhere; one that cannot needs a free volume there.
            (&["wait-local"], "n1", "", ""),
            (&["wait-manual"], "n2", "", ""),
            (
                &["wait-manual"],
                "n1",
                "",
                "node(s) didn't find available persistent volumes to bind",
            ),
            (
                &["bound", "wait-manual"],
                "n2",
                "",
                "node(s) had volume node affinity conflict",
            ),
        ];
        for (claims, n, pre, filter) in cases {
            let p = with_claims(claims);
            let mut state = CycleState::default();
            let r = VolumeBinding.pre_filter(&mut state, &p, &snap);
            assert_eq!(r.status.message(), *pre, "{claims:?} prefilter");
            if !pre.is_empty() {
                assert_eq!(r.status.code, Code::UnschedulableAndUnresolvable);
                continue;
            }
            let s = VolumeBinding.filter(&state, &p, &host(n), &snap);
            assert_eq!(s.message(), *filter, "{claims:?} on {n}");
            if !filter.is_empty() {
                assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
            }
        }
        // No claims: the filter is skipped for the cycle.
        let r = VolumeBinding.pre_filter(&mut CycleState::default(), &pod(json!({})), &snap);
        assert!(r.status.is_skip());
        // A claim being deleted.
        let mut deleting = (*claim("going", "local", None)).clone();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let mut snap = snap;
        snap.upsert_claim(Arc::new(deleting));
        let r =
            VolumeBinding.pre_filter(&mut CycleState::default(), &with_claims(&["going"]), &snap);
        assert_eq!(
            r.status.message(),
            "persistentvolumeclaim \"going\" is being deleted"
        );
    }
}
