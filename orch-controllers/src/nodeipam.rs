//! Node IPAM, range allocator (`pkg/controller/nodeipam/ipam/range_allocator.go`): every node
//! gets a `spec.podCIDR` (and `podCIDRs`) carved from `--cluster-cidr` (default 10.244.0.0/16,
//! one /24 per node); the range is released when the node is deleted. Existing assignments are
//! occupied first so a restart never hands out a CIDR twice.

use k8s_openapi::api::core::v1::Node;
use orch_runtime::action::Action;
use orch_runtime::controller::{Caches, Controller, Watches};
use orch_runtime::object::key_of;
use orch_runtime::store::Change;
use orch_types::events::{reason, ObjectRef};
use parking_lot::Mutex;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Bad allocator configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// Not `a.b.c.d/n`.
    #[error("invalid CIDR {0:?}")]
    InvalidCidr(String),
    /// Node mask not inside the cluster mask, or too many subnets.
    #[error("node mask /{node} does not fit cluster CIDR /{cluster}")]
    BadMask {
        /// Cluster prefix length.
        cluster: u8,
        /// Node prefix length.
        node: u8,
    },
}

/// Parses `a.b.c.d/n`.
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), IpamError> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| IpamError::InvalidCidr(s.into()))?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| IpamError::InvalidCidr(s.into()))?;
    let len: u8 = len.parse().map_err(|_| IpamError::InvalidCidr(s.into()))?;
    if len > 32 {
        return Err(IpamError::InvalidCidr(s.into()));
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((Ipv4Addr::from(u32::from(ip) & mask), len))
}

/// The allocator.
#[derive(Debug, Clone)]
pub struct CidrAllocator {
    base: u32,
    node_len: u8,
    count: u32,
    used: BTreeSet<u32>,
    by_node: BTreeMap<String, u32>,
    /// Every index below this one is used (the lowest free is looked for from here).
    low: u32,
}

impl CidrAllocator {
    /// A /`node_mask` allocator over `cluster_cidr`.
    pub fn new(cluster_cidr: &str, node_mask: u8) -> Result<Self, IpamError> {
        let (base, len) = parse_cidr(cluster_cidr)?;
        if node_mask < len || node_mask > 32 || node_mask - len > 24 {
            return Err(IpamError::BadMask {
                cluster: len,
                node: node_mask,
            });
        }
        Ok(Self {
            base: u32::from(base),
            node_len: node_mask,
            count: 1u32 << (node_mask - len),
            used: BTreeSet::new(),
            by_node: BTreeMap::new(),
            low: 0,
        })
    }

    fn cidr(&self, i: u32) -> String {
        let ip = Ipv4Addr::from(self.base + (i << (32 - u32::from(self.node_len))));
        format!("{ip}/{}", self.node_len)
    }

    fn index_of(&self, cidr: &str) -> Option<u32> {
        let (ip, len) = parse_cidr(cidr).ok()?;
        if len != self.node_len {
            return None;
        }
        let off = u32::from(ip).checked_sub(self.base)? >> (32 - u32::from(self.node_len));
        (off < self.count).then_some(off)
    }

    /// Marks a node's existing CIDR as used (startup / observed nodes).
    pub fn occupy(&mut self, node: &str, cidr: &str) {
        if let Some(i) = self.index_of(cidr) {
            self.used.insert(i);
            self.by_node.insert(node.into(), i);
        }
    }

    /// Releases a deleted node's CIDR.
    pub fn release(&mut self, node: &str) {
        if let Some(i) = self.by_node.remove(node) {
            self.used.remove(&i);
            self.low = self.low.min(i);
        }
    }

    /// Number of CIDRs in use.
    pub fn used(&self) -> usize {
        self.used.len()
    }

    /// One pass over a node: occupy its CIDR, or allocate one.
    pub fn reconcile(&mut self, node: &Node) -> Vec<Action> {
        let name = node.metadata.name.clone().unwrap_or_default();
        if node.metadata.deletion_timestamp.is_some() {
            return Vec::new();
        }
        if let Some(c) = node.spec.as_ref().and_then(|s| s.pod_cidr.clone()) {
            self.occupy(&name, &c);
            return Vec::new();
        }
        if let Some(i) = self.by_node.get(&name).copied() {
            return vec![self.patch(&name, i)];
        }
        match (self.low..self.count).find(|i| !self.used.contains(i)) {
            Some(i) => {
                self.low = i + 1;
                self.used.insert(i);
                self.by_node.insert(name.clone(), i);
                vec![self.patch(&name, i)]
            }
            None => vec![Action::normal(
                ObjectRef::of(node),
                reason::CIDR_NOT_AVAILABLE,
                format!("Node {name} status is now: {}", reason::CIDR_NOT_AVAILABLE),
            )],
        }
    }

    fn patch(&self, node: &str, i: u32) -> Action {
        let c = self.cidr(i);
        Action::merge_patch::<Node>(
            None,
            node,
            None,
            json!({"spec": {"podCIDR": c, "podCIDRs": [c]}}),
        )
    }
}

/// The node IPAM controller (`nodeipam`) as a declaration: observes every node's CIDR (occupy
/// on sight, release on deletion) and allocates one to nodes without; one worker, so
/// allocations are serialized.
#[derive(Debug)]
pub struct NodeIpamController {
    allocator: Arc<Mutex<CidrAllocator>>,
}

impl NodeIpamController {
    /// `--cluster-cidr` and `--node-cidr-mask-size`.
    pub fn new(cluster_cidr: &str, node_mask: u8) -> Result<Self, IpamError> {
        Ok(Self {
            allocator: Arc::new(Mutex::new(CidrAllocator::new(cluster_cidr, node_mask)?)),
        })
    }
}

impl Controller for NodeIpamController {
    fn name(&self) -> &'static str {
        "nodeipam"
    }

    fn component(&self) -> &'static str {
        "node-ipam-controller"
    }

    fn watches(&self, w: &mut Watches) {
        let al = self.allocator.clone();
        w.watch::<Node>(Arc::new(move |c, _, keys| match c {
            Change::Deleted(n) => al.lock().release(n.metadata.name.as_deref().unwrap_or("")),
            other => {
                let n = other.object();
                match n.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()) {
                    Some(cidr) => al
                        .lock()
                        .occupy(n.metadata.name.as_deref().unwrap_or(""), cidr),
                    None => keys.push(key_of(&n.metadata)),
                }
            }
        }));
    }

    fn sync(&self, key: &str, caches: &Caches, _now: jiff::Timestamp) -> Vec<Action> {
        caches
            .get::<Node>()
            .get(key)
            .map(|n| self.allocator.lock().reconcile(&n))
            .unwrap_or_default()
    }

    fn max_workers(&self) -> Option<usize> {
        Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_types::testing::NodeBuilder;

    fn cidr_of(a: &[Action]) -> String {
        match a {
            [Action::Patch { patch, .. }] => patch.body()["spec"]["podCIDR"]
                .as_str()
                .unwrap()
                .to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn allocates_24s_skips_used_and_reuses_released() {
        let mut a = CidrAllocator::new("10.244.0.0/16", 24).unwrap();
        let mut taken = NodeBuilder::new("old").build();
        taken.spec.get_or_insert_with(Default::default).pod_cidr = Some("10.244.0.0/24".into());
        assert!(a.reconcile(&taken).is_empty());
        assert_eq!(
            cidr_of(&a.reconcile(&NodeBuilder::new("n1").build())),
            "10.244.1.0/24"
        );
        assert_eq!(
            cidr_of(&a.reconcile(&NodeBuilder::new("n2").build())),
            "10.244.2.0/24"
        );
        a.release("n1");
        assert_eq!(
            cidr_of(&a.reconcile(&NodeBuilder::new("n3").build())),
            "10.244.1.0/24"
        );
        let mut tiny = CidrAllocator::new("10.0.0.0/24", 24).unwrap();
        assert_eq!(
            cidr_of(&tiny.reconcile(&NodeBuilder::new("a").build())),
            "10.0.0.0/24"
        );
        assert!(matches!(
            tiny.reconcile(&NodeBuilder::new("b").build()).as_slice(),
            [Action::Event { .. }]
        ));
        assert!(CidrAllocator::new("10.0.0.0/16", 8).is_err());
        assert!(parse_cidr("10.0.0/16").is_err());
    }
}
