//! PersistentVolume binder and the `orch.dev/local` provisioner, after upstream
//! `pkg/controller/volume/persistentvolume` (`pv_controller.go`: `syncClaim`, `syncVolume`,
//! `bind`, `reclaimVolume`; `index.go` / `util.go` `FindMatchingVolume`), Kubernetes 1.33.
//!
//! Keys: a claim is keyed `namespace/name`, a volume by its name (cluster-scoped, no `/`), as
//! upstream's two queues. What one sync does:
//!
//! - **An unbound claim** binds to the volume already reserved for it (`spec.claimRef` naming
//!   it: pre-bound by a user, or provisioned for it), else to the smallest `Available` volume
//!   that fits: same class, every requested access mode, same volume mode, capacity ≥ the
//!   `storage` request, the claim's `selector`, and — when the class binds on first consumer
//!   — node affinity that admits the consumer's node. Else, for a class of the
//!   [`PROVISIONER`], a volume is provisioned: `Immediate` at once (on the ready node with the
//!   fewest local volumes), `WaitForFirstConsumer` once a pod using the claim has
//!   `spec.nodeName` (or the claim carries `volume.kubernetes.io/selected-node`). The volume is
//!   named `pvc-<claim uid>`, a `local` directory `<volume root>/pvc-<claim uid>` (root
//!   [`DEFAULT_VOLUME_ROOT`], see [`PersistentVolumeController::new`]) with node affinity
//!   `kubernetes.io/hostname In [node]`, capacity = the request, the class's reclaim policy
//!   and mount options, `claimRef` to the claim and annotation `pv.kubernetes.io/provisioned-by`.
//! - **Binding** is two steps, as upstream's `bind`: the volume is reserved first (its
//!   `claimRef` written with the resourceVersion read, so two claims never take one volume),
//!   then the volume's phase becomes `Bound` and the claim gets `spec.volumeName`, the
//!   annotations `pv.kubernetes.io/bind-completed` (and `pv.kubernetes.io/bound-by-controller`
//!   where the controller chose), and status `Bound` with the volume's capacity and access
//!   modes.
//! - **A bound claim** whose volume disappeared is `Lost` (event `ClaimLost`), one whose volume
//!   is bound to another claim `Lost` too (`ClaimMisbound`).
//! - **A volume** without a claim is `Available`; one whose claim is gone (confirmed by a live
//!   GET, [`Action::Guarded`]) is released: `Retain` (and `Recycle`, which orch does not run)
//!   → phase `Released`; `Delete` → the volume object is deleted, once no pod that is not
//!   finished still names the claim (what upstream's `kubernetes.io/pvc-protection` finalizer
//!   guarantees, here checked before the delete instead).
//!
//! Writes are merge patches (with `metadata.resourceVersion` where they must not race);
//! phase changes set `status.lastPhaseTransitionTime`. Events follow upstream's reasons
//! (`WaitForFirstConsumer`, `FailedBinding`, `ExternalProvisioning`, `Provisioning`,
//! `ProvisioningSucceeded`, `ProvisioningFailed`, `ClaimLost`, `ClaimMisbound`).
//!
//! Not modelled: volume expansion, `Recycle`, the `kubernetes.io/pv-protection` and
//! `kubernetes.io/pvc-protection` finalizers, data sources, `volumeAttributesClassName`. The
//! directory of a deleted local volume stays on its node.

use crate::controller_utils::is_pod_terminal;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    LocalVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, Pod,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use orch_runtime::action::{Action, Lookup};
use orch_runtime::controller::{Caches, Controller, Watches};
use orch_runtime::object::{is_deleting, key_from, key_of, name, namespace, split_key, uid};
use orch_runtime::store::Change;
use orch_runtime::volume::{
    capacity, claim_class, claim_volume as volume_name, fits, pod_claims, reserved_for,
    volume_class, waits_for_first_consumer,
};
use orch_types::events::ObjectRef;
use orch_types::registry::ApiResource;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The provisioner of orch's default StorageClass `local`.
pub const PROVISIONER: &str = "orch.dev/local";
/// Where provisioned local volumes live on their node (`<root>/pvc-<claim uid>`).
pub const DEFAULT_VOLUME_ROOT: &str = "/var/lib/orch/volumes";
/// Claim annotation: binding is complete (upstream `AnnBindCompleted`).
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Claim and volume annotation: the controller, not a user, made the binding
/// (`AnnBoundByController`).
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// Claim annotation: the node its first consumer runs on (`AnnSelectedNode`).
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Volume annotation: who provisioned it (`AnnDynamicallyProvisioned`).
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// Claim annotation: the provisioner asked for a volume (`AnnStorageProvisioner`).
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// Its beta form, still written upstream (`AnnBetaStorageProvisioner`).
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// The node label a local volume's affinity names.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// How often a claim that found no node to provision on, or a volume whose claim a running
/// pod still names, is looked at again.
const RETRY: Duration = Duration::from_secs(10);

/// The `persistentvolume-binder` controller's declaration.
#[derive(Debug, Clone)]
pub struct PersistentVolumeController {
    volume_root: String,
}

impl Default for PersistentVolumeController {
    fn default() -> Self {
        Self::new(DEFAULT_VOLUME_ROOT)
    }
}

impl PersistentVolumeController {
    /// A controller provisioning local volumes under `volume_root` on their node.
    pub fn new(volume_root: impl Into<String>) -> Self {
        Self {
            volume_root: volume_root.into(),
        }
    }

    /// The root directory of provisioned volumes.
    pub fn volume_root(&self) -> &str {
        &self.volume_root
    }
}

/// What a claim's sync reads besides the claim.
#[derive(Debug, Clone, Copy)]
pub struct ClaimView<'a> {
    /// Every PersistentVolume.
    pub volumes: &'a [Arc<PersistentVolume>],
    /// Every StorageClass.
    pub classes: &'a [Arc<StorageClass>],
    /// The pods of the claim's namespace (its consumers among them).
    pub pods: &'a [Arc<Pod>],
    /// Every node (where an `Immediate` local volume may go).
    pub nodes: &'a [Arc<Node>],
    /// Root directory of provisioned volumes.
    pub volume_root: &'a str,
}

fn annotation<'a>(m: &'a ObjectMeta, k: &str) -> Option<&'a str> {
    m.annotations.as_ref()?.get(k).map(String::as_str)
}

fn claim_phase(c: &PersistentVolumeClaim) -> &str {
    c.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn volume_phase(v: &PersistentVolume) -> &str {
    v.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn claim_ref(v: &PersistentVolume) -> Option<&ObjectReference> {
    v.spec.as_ref()?.claim_ref.as_ref()
}

/// Whether a pod that has not finished names claim `claim` (pods of its namespace only).
fn in_use_by(pods: &[Arc<Pod>], claim: &str) -> bool {
    pods.iter()
        .any(|p| !is_pod_terminal(p) && pod_claims(p).any(|c| c.claim == claim))
}

/// The node of the claim's first consumer: its `volume.kubernetes.io/selected-node`, else the
/// `spec.nodeName` of a pod using it (the first by name).
fn consumer_node<'a>(c: &'a PersistentVolumeClaim, pods: &'a [Arc<Pod>]) -> Option<&'a str> {
    if let Some(n) = annotation(&c.metadata, ANN_SELECTED_NODE).filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let claim = name(&c.metadata);
    pods.iter()
        .filter(|p| !is_pod_terminal(p) && !is_deleting(&p.metadata))
        .filter(|p| pod_claims(p).any(|x| x.claim == claim))
        .find_map(|p| {
            p.spec
                .as_ref()?
                .node_name
                .as_deref()
                .filter(|n| !n.is_empty())
        })
}

/// The labels a node is matched with: its own, or just its hostname when it is not known.
fn node_labels(nodes: &[Arc<Node>], node: &str) -> BTreeMap<String, String> {
    nodes
        .iter()
        .find(|n| name(&n.metadata) == node)
        .and_then(|n| n.metadata.labels.clone())
        .unwrap_or_else(|| BTreeMap::from([(HOSTNAME_LABEL.to_string(), node.to_string())]))
}

/// The smallest unreserved, not deleted volume that [`fits`] the claim.
fn best_match<'a>(
    volumes: &'a [Arc<PersistentVolume>],
    c: &PersistentVolumeClaim,
    node: Option<(&str, &BTreeMap<String, String>)>,
) -> Option<&'a Arc<PersistentVolume>> {
    volumes
        .iter()
        .filter(|v| claim_ref(v).is_none() && !is_deleting(&v.metadata) && fits(v, c, node))
        .min_by(|a, b| {
            capacity(a)
                .cmp(&capacity(b))
                .then_with(|| key_of(&a.metadata).cmp(&key_of(&b.metadata)))
        })
}

fn is_ready(n: &Node) -> bool {
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let cordoned = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    ready && !cordoned
}

/// The node of a local volume (its affinity's hostname), if it is one of ours.
fn local_node(v: &PersistentVolume) -> Option<&str> {
    if annotation(&v.metadata, ANN_PROVISIONED_BY) != Some(PROVISIONER) {
        return None;
    }
    let terms = &v
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .find(|r| r.key == HOSTNAME_LABEL && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().map(String::as_str))
}

/// Where an `Immediate` local volume goes: the ready, schedulable node with the fewest local
/// volumes, then the first by name.
fn pick_node<'a>(nodes: &'a [Arc<Node>], volumes: &[Arc<PersistentVolume>]) -> Option<&'a str> {
    nodes
        .iter()
        .filter(|n| is_ready(n))
        .map(|n| name(&n.metadata))
        .min_by_key(|n| {
            let count = volumes.iter().filter(|v| local_node(v) == Some(*n)).count();
            (count, *n)
        })
}

fn time(now: Timestamp) -> String {
    Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

fn event_ref(c: &PersistentVolumeClaim) -> ObjectRef {
    ObjectRef::of(c)
}

/// `status.phase` of a volume (with `lastPhaseTransitionTime`).
fn volume_phase_patch(v: &PersistentVolume, phase: &str, now: Timestamp) -> Action {
    Action::merge_patch::<PersistentVolume>(
        None,
        name(&v.metadata),
        Some("status"),
        json!({"status": {"phase": phase, "lastPhaseTransitionTime": time(now)}}),
    )
}

fn claim_status_patch(c: &PersistentVolumeClaim, status: Value) -> Action {
    Action::merge_patch::<PersistentVolumeClaim>(
        c.metadata.namespace.as_deref(),
        name(&c.metadata),
        Some("status"),
        json!({ "status": status }),
    )
}

/// The claim reference a volume gets (upstream `ref.GetReference`).
fn reference_to(c: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: c.metadata.namespace.clone(),
        name: c.metadata.name.clone(),
        uid: c.metadata.uid.clone(),
        resource_version: c.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// Reserves `v` for `c`: `claimRef` and `bound-by-controller`, guarded by the volume's
/// resourceVersion (upstream `bindVolumeToClaim`, an Update).
fn reserve(v: &PersistentVolume, c: &PersistentVolumeClaim) -> Action {
    Action::merge_patch::<PersistentVolume>(
        None,
        name(&v.metadata),
        None,
        json!({
            "metadata": {
                "resourceVersion": v.metadata.resource_version,
                "annotations": {ANN_BOUND_BY_CONTROLLER: "yes"},
            },
            "spec": {"claimRef": reference_to(c)},
        }),
    )
}

/// Completes the binding of `c` to `v`, which is reserved for it (upstream `bind` after
/// `bindVolumeToClaim`): the volume's phase, the claim's `volumeName` and annotations, the
/// claim's status. Only what differs is written.
fn complete(c: &PersistentVolumeClaim, v: &PersistentVolume, now: Timestamp) -> Vec<Action> {
    let mut out = Vec::new();
    let vname = name(&v.metadata);
    if claim_ref(v).is_some_and(|r| r.uid.as_deref().unwrap_or("").is_empty()) {
        out.push(Action::merge_patch::<PersistentVolume>(
            None,
            vname,
            None,
            json!({"metadata": {"resourceVersion": v.metadata.resource_version},
                   "spec": {"claimRef": {"uid": c.metadata.uid}}}),
        ));
    }
    if volume_phase(v) != "Bound" {
        out.push(volume_phase_patch(v, "Bound", now));
    }
    let chose = volume_name(c).is_empty();
    if chose || annotation(&c.metadata, ANN_BIND_COMPLETED).is_none() {
        let mut annotations = json!({ ANN_BIND_COMPLETED: "yes" });
        if chose {
            annotations[ANN_BOUND_BY_CONTROLLER] = json!("yes");
        }
        out.push(Action::merge_patch::<PersistentVolumeClaim>(
            c.metadata.namespace.as_deref(),
            name(&c.metadata),
            None,
            json!({"metadata": {"resourceVersion": c.metadata.resource_version,
                                "annotations": annotations},
                   "spec": {"volumeName": vname}}),
        ));
    }
    let spec = v.spec.clone().unwrap_or_default();
    let st = c.status.clone().unwrap_or_default();
    if claim_phase(c) != "Bound"
        || st.access_modes != spec.access_modes
        || st.capacity != spec.capacity
    {
        out.push(claim_status_patch(
            c,
            json!({"phase": "Bound", "accessModes": spec.access_modes, "capacity": spec.capacity}),
        ));
    }
    if chose && annotation(&v.metadata, ANN_PROVISIONED_BY) == Some(PROVISIONER) {
        out.push(Action::normal(
            event_ref(c),
            "ProvisioningSucceeded",
            format!("Successfully provisioned volume {vname} using {PROVISIONER}"),
        ));
    }
    out
}

/// The volume provisioned for `c` of class `class` on `node`.
pub fn provisioned_volume(
    c: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &str,
    volume_root: &str,
) -> PersistentVolume {
    let vname = format!("pvc-{}", uid(&c.metadata));
    let spec = c.spec.clone().unwrap_or_default();
    let request = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned();
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(vname.clone()),
            annotations: Some(BTreeMap::from([
                (ANN_PROVISIONED_BY.to_string(), PROVISIONER.to_string()),
                (ANN_BOUND_BY_CONTROLLER.to_string(), "yes".to_string()),
            ])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes.clone(),
            capacity: request.map(|q| BTreeMap::from([("storage".to_string(), q)])),
            claim_ref: Some(reference_to(c)),
            local: Some(LocalVolumeSource {
                path: format!("{}/{vname}", volume_root.trim_end_matches('/')),
                fs_type: None,
            }),
            mount_options: class.mount_options.clone(),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: HOSTNAME_LABEL.into(),
                            operator: "In".into(),
                            values: Some(vec![node.to_string()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: class.metadata.name.clone(),
            volume_mode: spec.volume_mode.clone(),
            ..Default::default()
        }),
        status: None,
    }
}

/// Reconciles one claim (upstream `syncClaim`).
pub fn reconcile_claim(
    c: &PersistentVolumeClaim,
    view: &ClaimView<'_>,
    now: Timestamp,
) -> Vec<Action> {
    if is_deleting(&c.metadata) {
        return Vec::new();
    }
    let bind_completed = annotation(&c.metadata, ANN_BIND_COMPLETED).is_some();
    let wanted = volume_name(c);
    if !wanted.is_empty() {
        // syncBoundClaim (or a claim that asked for a volume by name).
        let Some(v) = view.volumes.iter().find(|v| name(&v.metadata) == wanted) else {
            if bind_completed && claim_phase(c) != "Lost" {
                return vec![
                    claim_status_patch(c, json!({"phase": "Lost"})),
                    Action::warning(
                        event_ref(c),
                        "ClaimLost",
                        "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                    ),
                ];
            }
            return Vec::new();
        };
        return match claim_ref(v) {
            None if is_deleting(&v.metadata) => Vec::new(),
            None => vec![reserve(v, c)],
            Some(_) if reserved_for(v, c) => complete(c, v, now),
            Some(_) if bind_completed => {
                if claim_phase(c) == "Lost" {
                    return Vec::new();
                }
                vec![
                    claim_status_patch(c, json!({"phase": "Lost"})),
                    Action::warning(
                        event_ref(c),
                        "ClaimMisbound",
                        "Two claims are bound to the same volume, this one is bound incorrectly",
                    ),
                ]
            }
            Some(_) => vec![Action::warning(
                event_ref(c),
                "FailedBinding",
                format!("volume \"{wanted}\" already bound to a different claim."),
            )],
        };
    }
    // syncUnboundClaim: a volume reserved for this claim (pre-bound or provisioned) first.
    if let Some(v) = view
        .volumes
        .iter()
        .find(|v| !is_deleting(&v.metadata) && reserved_for(v, c))
    {
        return complete(c, v, now);
    }
    let class_name = claim_class(c);
    let class = if class_name.is_empty() {
        None
    } else {
        match view
            .classes
            .iter()
            .find(|s| name(&s.metadata) == class_name)
        {
            Some(s) => Some(s.as_ref()),
            None => {
                return vec![Action::warning(
                    event_ref(c),
                    "ProvisioningFailed",
                    format!("storageclass.storage.k8s.io \"{class_name}\" not found"),
                )]
            }
        }
    };
    let delayed = class.is_some_and(waits_for_first_consumer);
    let node = if delayed {
        match consumer_node(c, view.pods) {
            Some(n) => Some(n),
            None => {
                return vec![Action::normal(
                    event_ref(c),
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                )]
            }
        }
    } else {
        None
    };
    let labels = node.map(|n| node_labels(view.nodes, n));
    let at = node.zip(labels.as_ref());
    if let Some(v) = best_match(view.volumes, c, at) {
        return vec![reserve(v, c)];
    }
    let Some(class) = class else {
        return vec![Action::normal(
            event_ref(c),
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set",
        )];
    };
    if class.provisioner != PROVISIONER {
        return vec![Action::normal(
            event_ref(c),
            "ExternalProvisioning",
            format!(
                "Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
                class.provisioner
            ),
        )];
    }
    if orch_types::resources::claim_storage_request(c).is_none() {
        return Vec::new(); // validation requires it; nothing to size a volume with
    }
    let Some(node) = node.or_else(|| pick_node(view.nodes, view.volumes)) else {
        return vec![
            Action::warning(
                event_ref(c),
                "ProvisioningFailed",
                "no ready node to create the local volume on",
            ),
            Action::requeue(RETRY),
        ];
    };
    let key = key_of(&c.metadata);
    let pv = provisioned_volume(c, class, node, view.volume_root);
    vec![
        Action::merge_patch::<PersistentVolumeClaim>(
            c.metadata.namespace.as_deref(),
            name(&c.metadata),
            None,
            json!({"metadata": {"annotations": {
                ANN_STORAGE_PROVISIONER: PROVISIONER,
                ANN_BETA_STORAGE_PROVISIONER: PROVISIONER,
                ANN_SELECTED_NODE: node,
            }}}),
        ),
        Action::normal(
            event_ref(c),
            "Provisioning",
            format!("External provisioner is provisioning volume for claim \"{key}\""),
        ),
        Action::create(&pv),
    ]
}

/// Reconciles one volume (upstream `syncVolume` and `reclaimVolume`). `claim` is the claim
/// its `claimRef` names, if the cache has it; `in_use` says whether a pod that has not
/// finished names that claim.
pub fn reconcile_volume(
    v: &PersistentVolume,
    claim: Option<&PersistentVolumeClaim>,
    in_use: bool,
    now: Timestamp,
) -> Vec<Action> {
    if is_deleting(&v.metadata) {
        return Vec::new();
    }
    let phase = volume_phase(v);
    let Some(r) = claim_ref(v) else {
        return if phase == "Available" {
            Vec::new()
        } else {
            vec![volume_phase_patch(v, "Available", now)]
        };
    };
    let ref_uid = r.uid.as_deref().unwrap_or("");
    if ref_uid.is_empty() {
        // Pre-bound by a user to a claim that has not been bound yet.
        return if phase == "Available" {
            Vec::new()
        } else {
            vec![volume_phase_patch(v, "Available", now)]
        };
    }
    match claim.filter(|c| uid(&c.metadata) == ref_uid) {
        Some(c) => {
            let bound_to = volume_name(c);
            if bound_to.is_empty() || bound_to == name(&v.metadata) {
                if phase == "Bound" {
                    Vec::new()
                } else {
                    vec![volume_phase_patch(v, "Bound", now)]
                }
            } else if annotation(&v.metadata, ANN_BOUND_BY_CONTROLLER).is_some() {
                // The claim went to another volume: this one is free again (upstream
                // `unbindVolume`).
                vec![
                    Action::merge_patch::<PersistentVolume>(
                        None,
                        name(&v.metadata),
                        None,
                        json!({"metadata": {"resourceVersion": v.metadata.resource_version,
                                            "annotations": {ANN_BOUND_BY_CONTROLLER: null}},
                               "spec": {"claimRef": null}}),
                    ),
                    volume_phase_patch(v, "Available", now),
                ]
            } else {
                Vec::new()
            }
        }
        None => {
            // The claim is gone (or replaced by a new one of the same name).
            let policy = v
                .spec
                .as_ref()
                .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
                .unwrap_or("Retain");
            let gone = Lookup {
                resource: ApiResource::of::<PersistentVolumeClaim>(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                uid: Some(ref_uid.to_string()),
            };
            let mut then = Vec::new();
            if phase != "Released" && phase != "Failed" {
                then.push(volume_phase_patch(v, "Released", now));
            }
            if policy == "Delete" {
                if in_use {
                    let mut out = Vec::new();
                    if !then.is_empty() {
                        out.push(Action::Guarded {
                            absent: vec![gone],
                            then,
                        });
                    }
                    out.push(Action::requeue(RETRY));
                    return out;
                }
                then.push(Action::delete(v));
            }
            if then.is_empty() {
                Vec::new()
            } else {
                vec![Action::Guarded {
                    absent: vec![gone],
                    then,
                }]
            }
        }
    }
}

/// Keys of the volumes reserved for claim `namespace/claim`.
fn volumes_of(caches: &Caches, namespace: &str, claim: &str, keys: &mut Vec<String>) {
    for v in caches.get::<PersistentVolume>().list() {
        if claim_ref(&v).is_some_and(|r| {
            r.namespace.as_deref() == Some(namespace) && r.name.as_deref() == Some(claim)
        }) {
            let k = key_of(&v.metadata);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
}

/// Keys of every claim not bound yet (of `class`, when given).
fn unbound_claims(caches: &Caches, class: Option<&str>, keys: &mut Vec<String>) {
    for c in caches.get::<PersistentVolumeClaim>().list() {
        if volume_name(&c).is_empty() && class.is_none_or(|k| claim_class(&c) == k) {
            keys.push(key_of(&c.metadata));
        }
    }
}

fn node_of(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

impl Controller for PersistentVolumeController {
    fn name(&self) -> &'static str {
        "persistentvolume-binder"
    }

    fn component(&self) -> &'static str {
        "persistentvolume-binder-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<PersistentVolumeClaim>(Arc::new(|c, caches, keys| {
            let claim = c.object();
            keys.push(key_of(&claim.metadata));
            if let Change::Deleted(claim) = c {
                let ns = namespace(&claim.metadata);
                let wanted = volume_name(claim);
                if !wanted.is_empty() {
                    keys.push(wanted.to_string());
                }
                volumes_of(caches, ns, name(&claim.metadata), keys);
            }
        }));
        w.watch::<PersistentVolume>(Arc::new(|c, caches, keys| {
            let v = c.object();
            keys.push(key_of(&v.metadata));
            if let Change::Updated(old, _) = c {
                if let Some(r) = claim_ref(old) {
                    keys.push(key_from(
                        r.namespace.as_deref(),
                        r.name.as_deref().unwrap_or(""),
                    ));
                }
            }
            match claim_ref(v) {
                Some(r) => {
                    let k = key_from(r.namespace.as_deref(), r.name.as_deref().unwrap_or(""));
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
                // A free volume may be what a waiting claim needs.
                None if !matches!(c, Change::Deleted(_)) => {
                    unbound_claims(caches, Some(volume_class(v)), keys)
                }
                None => {}
            }
        }));
        w.watch::<StorageClass>(Arc::new(|c, caches, keys| {
            if let Change::Added(s) = c {
                unbound_claims(caches, Some(name(&s.metadata)), keys);
            }
        }));
        w.watch::<Pod>(Arc::new(|c, caches, keys| {
            let p = c.object();
            let ns = namespace(&p.metadata);
            let claims: Vec<String> = pod_claims(p).map(|c| c.claim).collect();
            if claims.is_empty() {
                return;
            }
            let scheduled = match c {
                Change::Added(p) | Change::Resync(p) => !node_of(p).is_empty(),
                Change::Updated(old, new) => {
                    node_of(old) != node_of(new) && !node_of(new).is_empty()
                }
                Change::Deleted(_) => false,
            };
            let gone = match c {
                Change::Deleted(_) => true,
                Change::Updated(old, new) => !is_pod_terminal(old) && is_pod_terminal(new),
                _ => false,
            };
            for claim in &claims {
                if scheduled {
                    keys.push(key_from(Some(ns), claim));
                }
                if gone {
                    volumes_of(caches, ns, claim, keys);
                }
            }
        }));
        w.reads::<Node>();
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let (ns, n) = split_key(key);
        match ns {
            Some(ns) => {
                let Some(c) = caches.get::<PersistentVolumeClaim>().get(key) else {
                    return Vec::new();
                };
                let volumes = caches.get::<PersistentVolume>().list();
                let classes = caches.get::<StorageClass>().list();
                let pods = caches.get::<Pod>().list_namespace(ns);
                let nodes = caches.get::<Node>().list();
                let view = ClaimView {
                    volumes: &volumes,
                    classes: &classes,
                    pods: &pods,
                    nodes: &nodes,
                    volume_root: &self.volume_root,
                };
                reconcile_claim(&c, &view, now)
            }
            None => {
                let Some(v) = caches.get::<PersistentVolume>().get(n) else {
                    return Vec::new();
                };
                let (claim, in_use) = match claim_ref(&v) {
                    Some(r) => {
                        let cns = r.namespace.as_deref().unwrap_or("");
                        let cname = r.name.as_deref().unwrap_or("");
                        let claim = caches
                            .get::<PersistentVolumeClaim>()
                            .get_in(Some(cns), cname);
                        let pods = caches.get::<Pod>().list_namespace(cns);
                        (claim, in_use_by(&pods, cname))
                    }
                    None => (None, false),
                };
                reconcile_volume(&v, claim.as_deref(), in_use, now)
            }
        }
    }
}

#[cfg(test)]
mod tests;
