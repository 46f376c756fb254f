//! [`Snapshot`]: the cluster as the scheduler sees it, updated incrementally. Adding, updating
//! or removing a node or a pod is O(1) amortized (plus the size of that one object); nothing is
//! rebuilt per scheduled pod.

use crate::node_info::NodeInfo;
use crate::pod_info::{PodInfo, PodInfoError};
use crate::resources::InvalidQuantity;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Errors updating the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// A node's resources are invalid.
    #[error("node {node}: {source}")]
    Node {
        /// Node name.
        node: String,
        /// The error.
        #[source]
        source: InvalidQuantity,
    },
    /// A node has no name.
    #[error("node without metadata.name")]
    NodeWithoutName,
    /// A pod is invalid.
    #[error(transparent)]
    Pod(#[from] PodInfoError),
    /// A PodDisruptionBudget is invalid.
    #[error("poddisruptionbudget {name}: {message}")]
    Pdb {
        /// `namespace/name`.
        name: String,
        /// Why.
        message: String,
    },
}

/// A compiled PodDisruptionBudget (what preemption needs).
#[derive(Debug, Clone)]
pub struct PdbInfo {
    /// `namespace/name`.
    pub key: String,
    /// Namespace.
    pub namespace: String,
    /// Selector (`Nothing` for a nil selector, as upstream).
    pub selector: orch_types::labels::Selector,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i32,
    /// Pods already disrupted (`status.disruptedPods`).
    pub disrupted_pods: Vec<String>,
}

/// PersistentVolumeClaims, PersistentVolumes and StorageClasses: what the VolumeBinding
/// plugin reads. Shared copy-on-write between a snapshot and its clones.
#[derive(Debug, Clone, Default)]
pub struct StorageInfo {
    /// Claims by `namespace/name`.
    claims: HashMap<String, Arc<PersistentVolumeClaim>>,
    /// Volumes by name, sorted (volume matching is deterministic).
    volumes: BTreeMap<String, Arc<PersistentVolume>>,
    /// Classes by name.
    classes: HashMap<String, Arc<StorageClass>>,
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// One pod change on a node, for plugins that keep incremental caches.
pub type PodChange = (Arc<PodInfo>, u32, i32);

/// Identity and change log of a snapshot: plugins cache per-node aggregates and replay the
/// pod changes since their last look (see [`Snapshot::changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeCursor {
    /// Snapshot identity (a clone gets a new one).
    pub snapshot: u64,
    /// Bumped whenever a node is added or removed (indices may change), a node's labels
    /// change, or a namespace's labels change.
    pub node_generation: u64,
    /// Absolute position in the pod change log.
    pub position: u64,
}

const MAX_LOG: usize = 1 << 16;

/// The cluster state the plugins read.
#[derive(Debug)]
pub struct Snapshot {
    id: u64,
    node_generation: u64,
    log: Vec<PodChange>,
    log_base: u64,
    nodes: Vec<NodeInfo>,
    node_index: HashMap<String, usize>,
    /// Every pod by key (its `node_name` says which node, or orphan list, holds it).
    pods: HashMap<String, Arc<PodInfo>>,
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    image_nodes: HashMap<String, u32>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    pdbs: Vec<PdbInfo>,
    storage: Arc<StorageInfo>,
    pods_with_affinity: usize,
    pods_with_required_anti_affinity: usize,
    empty: BTreeMap<String, String>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            id: next_id(),
            node_generation: 0,
            log: Vec::new(),
            log_base: 0,
            nodes: Vec::new(),
            node_index: HashMap::new(),
            pods: HashMap::new(),
            orphans: HashMap::new(),
            image_nodes: HashMap::new(),
            namespaces: HashMap::new(),
            pdbs: Vec::new(),
            storage: Arc::default(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            empty: BTreeMap::new(),
        }
    }
}

impl Clone for Snapshot {
    fn clone(&self) -> Self {
        Self {
            id: next_id(),
            node_generation: self.node_generation,
            log: Vec::new(),
            log_base: self.log_base + self.log.len() as u64,
            nodes: self.nodes.clone(),
            node_index: self.node_index.clone(),
            pods: self.pods.clone(),
            orphans: self.orphans.clone(),
            image_nodes: self.image_nodes.clone(),
            namespaces: self.namespaces.clone(),
            pdbs: self.pdbs.clone(),
            storage: self.storage.clone(),
            pods_with_affinity: self.pods_with_affinity,
            pods_with_required_anti_affinity: self.pods_with_required_anti_affinity,
            empty: BTreeMap::new(),
        }
    }
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the change log is now.
    pub fn cursor(&self) -> ChangeCursor {
        ChangeCursor {
            snapshot: self.id,
            node_generation: self.node_generation,
            position: self.log_base + self.log.len() as u64,
        }
    }

    /// Pod changes since `since`, or `None` when the caller must rebuild (other snapshot, node
    /// changes, or the log was truncated).
    pub fn changes(&self, since: &ChangeCursor) -> Option<&[PodChange]> {
        if since.snapshot != self.id
            || since.node_generation != self.node_generation
            || since.position < self.log_base
        {
            return None;
        }
        let from = usize::try_from(since.position - self.log_base).ok()?;
        self.log.get(from..)
    }

    fn record(&mut self, pod: &Arc<PodInfo>, node: usize, delta: i32) {
        if self.log.len() >= MAX_LOG {
            self.log_base += self.log.len() as u64;
            self.log.clear();
        }
        self.log.push((pod.clone(), node as u32, delta));
    }

    /// All nodes, in insertion order (removal moves the last node into the hole).
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// Node by index.
    pub fn node(&self, i: usize) -> &NodeInfo {
        &self.nodes[i]
    }

    /// Index of a node of this snapshot (`None` for a node that is not one of
    /// [`Snapshot::nodes`], e.g. a copy). O(1): plugins use it to read per-node arrays.
    #[inline]
    pub fn index_of(&self, node: &NodeInfo) -> Option<usize> {
        self.nodes
            .get(node.index)
            .filter(|n| std::ptr::eq(*n, node))
            .map(|_| node.index)
    }

    /// Index of a node by name.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.node_index.get(name).copied()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Number of nodes that have the (normalized) image.
    pub fn image_num_nodes(&self, image: &str) -> u32 {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    /// Labels of a namespace (empty when unknown).
    pub fn namespace_labels(&self, ns: &str) -> &BTreeMap<String, String> {
        self.namespaces.get(ns).unwrap_or(&self.empty)
    }

    /// Sets a namespace's labels (for namespaceSelector in affinity terms). Plugin caches
    /// that matched namespace selectors are invalidated (as by a node change).
    pub fn set_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) {
        if self.namespaces.get(name) != Some(&labels) {
            self.node_generation += 1;
            self.namespaces.insert(name.to_string(), labels);
        }
    }

    /// Total pods with (anti-)affinity on any node.
    pub fn pods_with_affinity(&self) -> usize {
        self.pods_with_affinity
    }

    /// Total pods with required anti-affinity.
    pub fn pods_with_required_anti_affinity(&self) -> usize {
        self.pods_with_required_anti_affinity
    }

    /// Node a pod (key `namespace/name`) is on.
    pub fn pod_node(&self, key: &str) -> Option<&str> {
        self.pods.get(key)?.node_name.as_deref()
    }

    /// A pod by key.
    pub fn pod(&self, key: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(key)
    }

    /// PodDisruptionBudgets.
    pub fn pdbs(&self) -> &[PdbInfo] {
        &self.pdbs
    }

    /// A PersistentVolumeClaim by namespace and name.
    pub fn claim(&self, namespace: &str, name: &str) -> Option<&Arc<PersistentVolumeClaim>> {
        self.storage
            .claims
            .get(&orch_runtime::object::key_from(Some(namespace), name))
    }

    /// Adds or replaces a PersistentVolumeClaim.
    pub fn upsert_claim(&mut self, claim: Arc<PersistentVolumeClaim>) {
        let key = orch_runtime::object::key_of(&claim.metadata);
        Arc::make_mut(&mut self.storage).claims.insert(key, claim);
    }

    /// Removes a PersistentVolumeClaim by `namespace/name`.
    pub fn remove_claim(&mut self, key: &str) {
        Arc::make_mut(&mut self.storage).claims.remove(key);
    }

    /// A PersistentVolume by name.
    pub fn volume(&self, name: &str) -> Option<&Arc<PersistentVolume>> {
        self.storage.volumes.get(name)
    }

    /// Every PersistentVolume, by name.
    pub fn volumes(&self) -> impl Iterator<Item = &Arc<PersistentVolume>> {
        self.storage.volumes.values()
    }

    /// Adds or replaces a PersistentVolume.
    pub fn upsert_volume(&mut self, volume: Arc<PersistentVolume>) {
        let name = volume.metadata.name.clone().unwrap_or_default();
        Arc::make_mut(&mut self.storage)
            .volumes
            .insert(name, volume);
    }

    /// Removes a PersistentVolume by name.
    pub fn remove_volume(&mut self, name: &str) {
        Arc::make_mut(&mut self.storage).volumes.remove(name);
    }

    /// A StorageClass by name.
    pub fn storage_class(&self, name: &str) -> Option<&Arc<StorageClass>> {
        self.storage.classes.get(name)
    }

    /// Adds or replaces a StorageClass.
    pub fn upsert_storage_class(&mut self, class: Arc<StorageClass>) {
        let name = class.metadata.name.clone().unwrap_or_default();
        Arc::make_mut(&mut self.storage).classes.insert(name, class);
    }

    /// Removes a StorageClass by name.
    pub fn remove_storage_class(&mut self, name: &str) {
        Arc::make_mut(&mut self.storage).classes.remove(name);
    }

    /// Adds or replaces a PodDisruptionBudget.
    pub fn upsert_pdb(&mut self, pdb: &PodDisruptionBudget) -> Result<(), SnapshotError> {
        let ns = pdb
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let key =
            orch_runtime::object::key_from(Some(&ns), pdb.metadata.name.as_deref().unwrap_or(""));
        let spec = pdb.spec.clone().unwrap_or_default();
        let selector = orch_types::labels::Selector::from_optional(spec.selector.as_ref())
            .map_err(|e| SnapshotError::Pdb {
                name: key.clone(),
                message: e.to_string(),
            })?;
        let status = pdb.status.clone().unwrap_or_default();
        let info = PdbInfo {
            key: key.clone(),
            namespace: ns,
            selector,
            disruptions_allowed: status.disruptions_allowed,
            disrupted_pods: status
                .disrupted_pods
                .unwrap_or_default()
                .into_keys()
                .collect(),
        };
        self.pdbs.retain(|p| p.key != key);
        self.pdbs.push(info);
        Ok(())
    }

    /// Removes a PodDisruptionBudget by `namespace/name`.
    pub fn remove_pdb(&mut self, key: &str) {
        self.pdbs.retain(|p| p.key != key);
    }

    /// Adds a node, or updates it if one with the same name exists.
    pub fn upsert_node(&mut self, node: impl Into<Arc<Node>>) -> Result<(), SnapshotError> {
        let node: Arc<Node> = node.into();
        let name = node
            .metadata
            .name
            .clone()
            .ok_or(SnapshotError::NodeWithoutName)?;
        let err = |source| SnapshotError::Node {
            node: name.clone(),
            source,
        };
        if let Some(&i) = self.node_index.get(&name) {
            // A status-only update (heartbeats, allocatable) keeps the plugins' caches: they
            // depend on node positions and labels only.
            let old = &self.nodes[i].labels;
            let relabeled = node
                .metadata
                .labels
                .as_ref()
                .map_or(!old.is_empty(), |l| l != old);
            self.forget_images(i);
            self.nodes[i].set_node(node).map_err(err)?;
            self.count_images(i);
            if relabeled {
                self.node_generation += 1;
            }
            return Ok(());
        }
        self.node_generation += 1;
        let mut info = NodeInfo::new(node).map_err(err)?;
        for p in self.orphans.remove(&name).unwrap_or_default() {
            info.add_pod(p);
        }
        let i = self.nodes.len();
        info.index = i;
        self.nodes.push(info);
        self.node_index.insert(name, i);
        self.count_images(i);
        Ok(())
    }

    fn count_images(&mut self, i: usize) {
        for img in self.nodes[i].images.keys() {
            *self.image_nodes.entry(img.clone()).or_default() += 1;
        }
    }

    fn forget_images(&mut self, i: usize) {
        for img in self.nodes[i].images.keys() {
            if let Some(c) = self.image_nodes.get_mut(img) {
                *c -= 1;
                if *c == 0 {
                    self.image_nodes.remove(img);
                }
            }
        }
    }

    /// Removes a node; its pods stay known and come back if the node is re-added.
    pub fn remove_node(&mut self, name: &str) -> Option<NodeInfo> {
        let i = self.node_index.remove(name)?;
        self.node_generation += 1;
        self.forget_images(i);
        let mut info = self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            self.nodes[i].index = i;
            let moved = self.nodes[i].name.clone();
            self.node_index.insert(moved, i);
        }
        let pods = std::mem::take(&mut info.pods);
        self.orphans.insert(name.to_string(), pods);
        Some(info)
    }

    /// Adds (or replaces) a pod. Pods without `spec.nodeName` are ignored (they are the queue's
    /// business); returns whether the snapshot changed.
    pub fn upsert_pod(&mut self, pod: impl Into<Arc<Pod>>) -> Result<bool, SnapshotError> {
        let info = PodInfo::new(pod)?;
        Ok(self.upsert_pod_info(Arc::new(info)))
    }

    /// Takes `pod`, a newer copy of pod `key`, when [`PodInfo::describes`] says nothing the
    /// snapshot reads changed (a status write, or the binding of a pod assumed with
    /// [`PodInfo::bound_to`] coming back): the info stays as it is, over the new object
    /// (so the snapshot does not keep the old copy alive beside the caller's), and no change
    /// is recorded. `false` when the pod is not here or changed: [`upsert_pod`](Self::upsert_pod)
    /// it.
    pub fn refresh_pod(&mut self, key: &str, pod: &Arc<Pod>) -> bool {
        let Some(slot) = self.pods.get_mut(key) else {
            return false;
        };
        if !slot.describes(pod) {
            return false;
        }
        let fresh = Arc::new(PodInfo {
            pod: pod.clone(),
            ..PodInfo::clone(slot)
        });
        let old = std::mem::replace(slot, fresh.clone());
        let node = old.node_name.as_deref().unwrap_or_default();
        let list = match self.node_index.get(node) {
            Some(&i) => Some(&mut self.nodes[i].pods),
            None => self.orphans.get_mut(node),
        };
        if let Some(p) = list.into_iter().flatten().find(|p| Arc::ptr_eq(p, &old)) {
            *p = fresh;
        }
        true
    }

    /// Adds (or replaces) a prepared pod.
    pub fn upsert_pod_info(&mut self, pod: Arc<PodInfo>) -> bool {
        let Some(node) = pod.node_name.clone() else {
            let was = self.remove_pod(&pod.key).is_some();
            return was;
        };
        self.remove_pod(&pod.key);
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.insert(pod.key.clone(), pod.clone());
        match self.node_index.get(&node) {
            Some(&i) => {
                self.record(&pod, i, 1);
                self.nodes[i].add_pod(pod)
            }
            None => self.orphans.entry(node).or_default().push(pod),
        }
        true
    }

    /// Removes a pod by key `namespace/name`.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let node = self.pods.remove(key)?.node_name.clone()?;
        let pod = match self.node_index.get(&node).copied() {
            Some(i) => {
                let p = self.nodes[i].remove_pod(key);
                if let Some(p) = &p {
                    self.record(p, i, -1);
                }
                p
            }
            None => {
                let list = self.orphans.get_mut(&node)?;
                let j = list.iter().position(|p| p.key == key)?;
                Some(list.swap_remove(j))
            }
        }?;
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        Some(pod)
    }

    /// Every pod on a node, in the snapshot.
    pub fn all_pods(&self) -> impl Iterator<Item = &Arc<PodInfo>> {
        self.nodes.iter().flat_map(|n| n.pods.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "images": [{"names": ["nginx:1"], "sizeBytes": 100}]}}))
        .unwrap()
    }
    fn pod(name: &str, node: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d"},
            "spec": {"nodeName": node, "containers": [{"name": "c",
                "resources": {"requests": {"cpu": "1"}}}]}}))
        .unwrap()
    }

    #[test]
    fn incremental_updates_keep_aggregates() {
        let mut s = Snapshot::new();
        s.upsert_node(node("a")).unwrap();
        s.upsert_node(node("b")).unwrap();
        s.upsert_pod(pod("p1", "a")).unwrap();
        s.upsert_pod(pod("p2", "a")).unwrap();
        s.upsert_pod(pod("p3", "c")).unwrap(); // node not known yet
        assert_eq!(s.node(0).requested.milli_cpu, 2000);
        assert_eq!(s.image_num_nodes("nginx:1"), 2);
        s.upsert_pod(pod("p1", "b")).unwrap(); // moved
        assert_eq!(s.node(0).requested.milli_cpu, 1000);
        assert_eq!(s.node(1).requested.milli_cpu, 1000);
        s.upsert_node(node("c")).unwrap();
        assert_eq!(s.node(2).pods.len(), 1);
        s.remove_node("a");
        assert_eq!(s.node_index("c"), Some(0));
        assert_eq!(s.image_num_nodes("nginx:1"), 2);
        assert!(s.remove_pod("d/p3").is_some());
        assert_eq!(s.node(0).requested.milli_cpu, 0);
        assert_eq!(s.pod_node("d/p1"), Some("b"));
    }

    #[test]
    fn only_relabeling_a_node_invalidates_plugin_caches() {
        let mut s = Snapshot::new();
        s.upsert_node(node("a")).unwrap();
        let c = s.cursor();
        let mut n = node("a");
        n.status
            .as_mut()
            .unwrap()
            .allocatable
            .as_mut()
            .unwrap()
            .insert(
                "cpu".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("8".into()),
            );
        s.upsert_node(n.clone()).unwrap();
        assert_eq!(s.node(0).allocatable.milli_cpu, 8000);
        assert!(
            s.changes(&c).is_some(),
            "a status update keeps the log usable"
        );
        n.metadata.labels = Some([("zone".to_string(), "z1".to_string())].into());
        s.upsert_node(n).unwrap();
        assert!(s.changes(&c).is_none(), "new labels: caches rebuild");
        let c = s.cursor();
        s.set_namespace("d", [("team".to_string(), "a".to_string())].into());
        assert!(s.changes(&c).is_none(), "namespace labels: caches rebuild");
    }

    #[test]
    fn refresh_keeps_the_info_for_what_it_does_not_read() {
        let mut s = Snapshot::new();
        s.upsert_node(node("a")).unwrap();
        // The cycle assumes a pending pod: the info names the node, the spec does not.
        let mut pending = pod("p", "a");
        pending.spec.as_mut().unwrap().node_name = None;
        let assumed = PodInfo::new(pending).unwrap().bound_to("a");
        s.upsert_pod_info(Arc::new(assumed));
        let c = s.cursor();
        // The binding comes back; then the kubelet writes status.
        let bound = Arc::new(pod("p", "a"));
        assert!(s.refresh_pod("d/p", &bound));
        let mut running = pod("p", "a");
        running.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        let running = Arc::new(running);
        assert!(s.refresh_pod("d/p", &running));
        assert!(
            Arc::ptr_eq(&s.pod("d/p").unwrap().pod, &running),
            "the snapshot holds the newest object, not a stale copy beside it"
        );
        assert!(Arc::ptr_eq(&s.node(0).pods[0].pod, &running));
        assert_eq!(s.node(0).requested.milli_cpu, 1000);
        assert_eq!(s.changes(&c).map(|c| c.len()), Some(0), "nothing recorded");
        // What the plugins read changes: the caller rebuilds the info.
        let mut relabelled = pod("p", "a");
        relabelled.metadata.labels = Some([("app".to_string(), "x".to_string())].into());
        assert!(!s.refresh_pod("d/p", &Arc::new(relabelled)));
        let mut started = pod("p", "a");
        started.status = Some(k8s_openapi::api::core::v1::PodStatus {
            start_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::from_second(1_000).unwrap(),
            )),
            ..Default::default()
        });
        assert!(
            !s.refresh_pod("d/p", &Arc::new(started)),
            "victim order reads startTime"
        );
        assert!(!s.refresh_pod("d/q", &running), "not in the snapshot");
    }
}
