//! PersistentVolume and claim helpers shared by the `persistentvolume-binder` controller, the
//! scheduler's VolumeBinding plugin and the kubelet: which claims a pod uses, a claim's and a
//! volume's class, sizes, and whether a volume can serve a claim on a node (upstream
//! `pkg/controller/volume/persistentvolume/util` `FindMatchingVolume` and
//! `component-helpers/storage/volume`), so the three agree.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use orch_types::quantity::Quantity;
use orch_types::resources::claim_storage_request;
use std::collections::BTreeMap;

/// The beta annotation that names a claim's or volume's class (still read upstream).
pub const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// The provisioner of a class whose volumes are only ever created by hand.
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

fn annotation<'a>(m: &'a ObjectMeta, k: &str) -> Option<&'a str> {
    m.annotations.as_ref()?.get(k).map(String::as_str)
}

/// A claim a pod uses, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodClaim {
    /// The claim's name (in the pod's namespace).
    pub claim: String,
    /// The pod volume that names it.
    pub volume: String,
    /// From a generic ephemeral volume (`<pod>-<volume>`, created by the ephemeral volume
    /// controller) rather than a `persistentVolumeClaim` volume.
    pub ephemeral: bool,
}

/// The claims a pod uses: its `persistentVolumeClaim` volumes and the claims of its generic
/// ephemeral volumes (upstream `ephemeral.VolumeClaimName`).
///
/// ```
/// let p: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
///     "metadata": {"name": "web"}, "spec": {"containers": [], "volumes": [
///         {"name": "data", "persistentVolumeClaim": {"claimName": "www"}},
///         {"name": "tmp", "emptyDir": {}}]}})).unwrap();
/// let names: Vec<String> = orch_runtime::volume::pod_claims(&p).map(|c| c.claim).collect();
/// assert_eq!(names, ["www"]);
/// ```
pub fn pod_claims(p: &Pod) -> impl Iterator<Item = PodClaim> + '_ {
    let pod = p.metadata.name.as_deref().unwrap_or("");
    p.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(move |v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(PodClaim {
                    claim: c.claim_name.clone(),
                    volume: v.name.clone(),
                    ephemeral: false,
                })
            } else {
                v.ephemeral.as_ref().map(|_| PodClaim {
                    claim: format!("{pod}-{}", v.name),
                    volume: v.name.clone(),
                    ephemeral: true,
                })
            }
        })
}

/// A claim's class: the beta annotation, else `spec.storageClassName` (`""`: none).
pub fn claim_class(c: &PersistentVolumeClaim) -> &str {
    annotation(&c.metadata, ANN_BETA_STORAGE_CLASS)
        .or_else(|| c.spec.as_ref()?.storage_class_name.as_deref())
        .unwrap_or("")
}

/// A volume's class, as [`claim_class`].
pub fn volume_class(v: &PersistentVolume) -> &str {
    annotation(&v.metadata, ANN_BETA_STORAGE_CLASS)
        .or_else(|| v.spec.as_ref()?.storage_class_name.as_deref())
        .unwrap_or("")
}

/// The volume a claim is bound (or being bound) to: `spec.volumeName`, `""` when none.
pub fn claim_volume(c: &PersistentVolumeClaim) -> &str {
    c.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

/// The volume's `capacity.storage`.
pub fn capacity(v: &PersistentVolume) -> Option<Quantity> {
    let q = v.spec.as_ref()?.capacity.as_ref()?.get("storage")?;
    Quantity::try_from(q).ok()
}

/// Whether the class binds a claim only once a pod using it is scheduled.
pub fn waits_for_first_consumer(class: &StorageClass) -> bool {
    class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
}

/// Whether the volume's node affinity admits a node with these labels (no affinity admits
/// every node; upstream `CheckNodeAffinity`).
pub fn affinity_admits(
    v: &PersistentVolume,
    labels: &BTreeMap<String, String>,
    node: &str,
) -> bool {
    match v
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    {
        None => true,
        Some(sel) => {
            orch_types::node_selector::CompiledNodeSelector::new_lenient(sel).matches(labels, node)
        }
    }
}

/// Whether the volume could serve the claim, its `claimRef` aside (upstream
/// `FindMatchingVolume`'s checks and its access-mode index): capacity ≥ the request, the same
/// volume mode and class, every requested access mode, the claim's `selector`, and node
/// affinity admitting `node` (name and labels) when one is given.
pub fn fits(
    v: &PersistentVolume,
    c: &PersistentVolumeClaim,
    node: Option<(&str, &BTreeMap<String, String>)>,
) -> bool {
    let (Some(spec), Some(cs)) = (v.spec.as_ref(), c.spec.as_ref()) else {
        return false;
    };
    let enough = match (capacity(v), claim_storage_request(c)) {
        (Some(have), Some(want)) => have >= want,
        _ => false,
    };
    let mode = |m: Option<&String>| m.map_or("Filesystem", String::as_str).to_string();
    let modes = spec.access_modes.as_deref().unwrap_or_default();
    let all_modes = cs.access_modes.iter().flatten().all(|m| modes.contains(m));
    let selected = match &cs.selector {
        None => true,
        Some(s) => orch_types::labels::Selector::try_from(s)
            .is_ok_and(|s| s.matches_opt(v.metadata.labels.as_ref())),
    };
    enough
        && mode(spec.volume_mode.as_ref()) == mode(cs.volume_mode.as_ref())
        && volume_class(v) == claim_class(c)
        && all_modes
        && selected
        && node.is_none_or(|(n, labels)| affinity_admits(v, labels, n))
}

/// Whether the volume's `claimRef` names this claim (and its UID, once set).
pub fn reserved_for(v: &PersistentVolume, c: &PersistentVolumeClaim) -> bool {
    v.spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .is_some_and(|r| {
            r.namespace.as_deref() == c.metadata.namespace.as_deref()
                && r.name.as_deref() == c.metadata.name.as_deref()
                && r.uid
                    .as_deref()
                    .is_none_or(|u| u.is_empty() || Some(u) == c.metadata.uid.as_deref())
        })
}

/// The directory on its node a volume's `local` or `hostPath` source names.
pub fn local_path(v: &PersistentVolume) -> Option<&str> {
    let s = v.spec.as_ref()?;
    s.local
        .as_ref()
        .map(|l| l.path.as_str())
        .or_else(|| s.host_path.as_ref().map(|h| h.path.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pvc(spec: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(
            json!({"metadata": {"name": "c", "namespace": "d", "uid": "u"},
            "spec": spec}),
        )
        .unwrap()
    }

    fn pv(spec: serde_json::Value, labels: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(json!({"metadata": {"name": "v", "labels": labels}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn fit_rules() {
        let c = pvc(
            json!({"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
            "resources": {"requests": {"storage": "1Gi"}}, "selector": {"matchLabels": {"tier": "a"}}}),
        );
        let base = json!({"accessModes": ["ReadWriteOnce", "ReadWriteMany"], "storageClassName": "fast",
            "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/x"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}}});
        let labels = json!({"tier": "a"});
        let n1 = BTreeMap::from([("kubernetes.io/hostname".to_string(), "n1".to_string())]);
        let n2 = BTreeMap::from([("kubernetes.io/hostname".to_string(), "n2".to_string())]);
        let ok = pv(base.clone(), labels.clone());
        assert!(fits(&ok, &c, None));
        assert!(fits(&ok, &c, Some(("n1", &n1))));
        assert!(!fits(&ok, &c, Some(("n2", &n2))), "node affinity");
        let tweak = |k: &str, v: serde_json::Value| {
            let mut s = base.clone();
            s[k] = v;
            pv(s, labels.clone())
        };
        assert!(!fits(
            &tweak("capacity", json!({"storage": "512Mi"})),
            &c,
            None
        ));
        assert!(!fits(&tweak("storageClassName", json!("slow")), &c, None));
        assert!(!fits(
            &tweak("accessModes", json!(["ReadOnlyMany"])),
            &c,
            None
        ));
        assert!(!fits(&tweak("volumeMode", json!("Block")), &c, None));
        assert!(
            !fits(&pv(base.clone(), json!({"tier": "b"})), &c, None),
            "selector"
        );
        assert_eq!(local_path(&ok), Some("/x"));
    }
}
