//! [`NodeInfo`]: a node and the pods on it, with aggregates maintained incrementally
//! (requested resources, host ports, images, counts of pods with affinity).

use crate::pod_info::{HostPort, PodInfo};
use crate::resources::{InvalidQuantity, Resources};
use k8s_openapi::api::core::v1::{Node, Taint};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A node's view for the plugins.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node.
    pub node: Arc<Node>,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// Taints.
    pub taints: Vec<Taint>,
    /// Allocatable (status.allocatable, else capacity).
    pub allocatable: Resources,
    /// Sum of requests of the pods on it.
    pub requested: Resources,
    /// Same with 100m/200Mi defaults for missing CPU/memory requests (scoring).
    pub non_zero_requested: Resources,
    /// Pods on the node.
    pub pods: Vec<Arc<PodInfo>>,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// Images present: normalized name → size in bytes.
    pub images: HashMap<String, i64>,
    /// Number of pods with any (anti-)affinity.
    pub pods_with_affinity: u32,
    /// Number of pods with required anti-affinity.
    pub pods_with_required_anti_affinity: u32,
    /// Position in the snapshot that holds it (see [`crate::snapshot::Snapshot::index_of`]).
    pub(crate) index: usize,
}

impl NodeInfo {
    /// Builds a node's info without pods.
    pub fn new(node: impl Into<Arc<Node>>) -> Result<Self, InvalidQuantity> {
        let node: Arc<Node> = node.into();
        let status = node.status.as_ref();
        let alloc = status
            .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
            .map(Resources::from_list)
            .transpose()?
            .unwrap_or_default();
        let mut images = HashMap::new();
        for img in status.and_then(|s| s.images.as_ref()).into_iter().flatten() {
            for n in img.names.iter().flatten() {
                images.insert(
                    crate::pod_info::normalized_image(n),
                    img.size_bytes.unwrap_or(0),
                );
            }
        }
        let spec = node.spec.clone().unwrap_or_default();
        Ok(Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            unschedulable: spec.unschedulable.unwrap_or(false),
            taints: spec.taints.unwrap_or_default(),
            allocatable: alloc,
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            pods: Vec::new(),
            used_ports: Vec::new(),
            images,
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            index: 0,
            node,
        })
    }

    /// Replaces the node object, keeping the pods.
    pub fn set_node(&mut self, node: impl Into<Arc<Node>>) -> Result<(), InvalidQuantity> {
        let mut fresh = NodeInfo::new(node)?;
        std::mem::swap(&mut fresh.pods, &mut self.pods);
        fresh.requested = std::mem::take(&mut self.requested);
        fresh.non_zero_requested = std::mem::take(&mut self.non_zero_requested);
        fresh.used_ports = std::mem::take(&mut self.used_ports);
        fresh.pods_with_affinity = self.pods_with_affinity;
        fresh.pods_with_required_anti_affinity = self.pods_with_required_anti_affinity;
        fresh.index = self.index;
        *self = fresh;
        Ok(())
    }

    /// Adds a pod and its aggregates. O(ports).
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests.requested);
        self.non_zero_requested.add(&pod.requests.non_zero);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes a pod by key; returns it. O(pods on the node), bounded by max pods per node.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.key == key)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests.requested);
        self.non_zero_requested.sub(&pod.requests.non_zero);
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        Some(pod)
    }
}
