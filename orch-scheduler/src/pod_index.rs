//! [`PodIndex`]: what PodTopologySpread and InterPodAffinity would otherwise recompute from
//! every pod of the cluster in each cycle, kept up to date from the snapshot's change log:
//!
//! - per-node counts of the pods a [`PodFilter`] selects (a spread constraint's selector, or
//!   the incoming pod's affinity terms);
//! - per topology key, the domain (label value) of every node;
//! - the (anti-)affinity terms of the existing pods grouped by identical term, with per-node
//!   counts of the pods carrying each ([`TermGroup`]), so a cycle matches the incoming pod
//!   once per distinct term instead of once per existing pod (upstream `interpodaffinity`
//!   PreFilter/PreScore walk `PodsWithRequiredAntiAffinity` / `PodsWithAffinity` every cycle;
//!   the counts are the same).
//!
//! A cycle then aggregates integers per node. Everything is rebuilt when the snapshot's nodes
//! or namespaces change (the change log only records pod moves).

use crate::node_info::NodeInfo;
use crate::pod_info::{AffinityTerm, PodInfo};
use crate::snapshot::{ChangeCursor, Snapshot};
use orch_types::labels::Selector;
use std::collections::HashMap;
use std::sync::Arc;

/// `domain_of` value of a node without the topology key.
pub const MISSING: u32 = u32::MAX;
const MAX_CACHES: usize = 64;

/// Which pods a per-node count counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodFilter {
    /// Not terminating, in the namespace, labels matching the selector (a spread constraint).
    Spread {
        /// Namespace.
        namespace: String,
        /// Selector.
        selector: Selector,
    },
    /// Matching every term (the incoming pod's affinity terms against existing pods).
    AllTerms(Vec<AffinityTerm>),
}

impl PodFilter {
    fn matches(&self, pod: &PodInfo, snap: &Snapshot) -> bool {
        match self {
            Self::Spread {
                namespace,
                selector,
            } => !pod.terminating && pod.namespace == *namespace && selector.matches(&pod.labels),
            Self::AllTerms(terms) => terms.iter().all(|t| t.matches_in(pod, snap)),
        }
    }
}

/// The nodes' domains for one topology key, indexed like [`Snapshot::nodes`].
#[derive(Debug, Clone)]
pub struct Domains {
    /// Topology key.
    pub key: String,
    /// Per node: index into `names`, or [`MISSING`].
    pub domain_of: Arc<[u32]>,
    /// Distinct values, in first-seen node order.
    pub names: Arc<[String]>,
}

impl Domains {
    /// The domain of a node of `snap` (the snapshot these domains were built from).
    #[inline]
    pub fn of(&self, node: &NodeInfo, snap: &Snapshot) -> Option<usize> {
        match snap.index_of(node) {
            Some(i) => match self.domain_of.get(i).copied() {
                Some(MISSING) | None => None,
                Some(d) => Some(d as usize),
            },
            // A node outside the snapshot: find its value by name.
            None => {
                let v = node.labels.get(&self.key)?;
                Some(self.names.iter().position(|n| n == v).unwrap_or(usize::MAX))
            }
        }
    }

    /// Sums per-node values into per-domain totals (nodes without the key are left out).
    pub fn totals(&self, per_node: &[i64]) -> Vec<i64> {
        let mut out = vec![0; self.names.len()];
        for (d, v) in self.domain_of.iter().zip(per_node) {
            if *d != MISSING {
                out[*d as usize] += *v;
            }
        }
        out
    }
}

/// Which list of an existing pod a grouped term comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TermKind {
    /// `podAffinity.required…`.
    RequiredAffinity,
    /// `podAntiAffinity.required…`.
    RequiredAntiAffinity,
    /// `podAffinity.preferred…`.
    PreferredAffinity,
    /// `podAntiAffinity.preferred…`.
    PreferredAntiAffinity,
}

/// One distinct term of existing pods, with how many pods on each node carry it.
#[derive(Debug, Clone)]
pub struct TermGroup {
    /// The list it comes from.
    pub kind: TermKind,
    /// The term (with its weight).
    pub term: AffinityTerm,
    /// Per node (indexed like [`Snapshot::nodes`]): pods carrying the term.
    pub per_node: Vec<i64>,
    /// Sum of `per_node`.
    pub total: i64,
}

#[derive(Debug)]
struct Groups {
    cursor: ChangeCursor,
    groups: Vec<TermGroup>,
    index: HashMap<(TermKind, AffinityTerm), usize>,
}

fn terms_of(pod: &PodInfo) -> impl Iterator<Item = (TermKind, &AffinityTerm)> {
    let tag = |k: TermKind| move |t| (k, t);
    pod.required_affinity
        .iter()
        .map(tag(TermKind::RequiredAffinity))
        .chain(
            pod.required_anti_affinity
                .iter()
                .map(tag(TermKind::RequiredAntiAffinity)),
        )
        .chain(
            pod.preferred_affinity
                .iter()
                .map(tag(TermKind::PreferredAffinity)),
        )
        .chain(
            pod.preferred_anti_affinity
                .iter()
                .map(tag(TermKind::PreferredAntiAffinity)),
        )
}

impl Groups {
    fn build(snap: &Snapshot) -> Self {
        let mut g = Groups {
            cursor: snap.cursor(),
            groups: Vec::new(),
            index: HashMap::new(),
        };
        for (i, n) in snap.nodes().iter().enumerate() {
            if n.pods_with_affinity == 0 {
                continue;
            }
            for p in &n.pods {
                g.apply(p, i, 1, snap.len());
            }
        }
        g
    }

    fn apply(&mut self, pod: &PodInfo, node: usize, delta: i64, nodes: usize) {
        for (kind, t) in terms_of(pod) {
            let gi = match self.index.get(&(kind, t.clone())) {
                Some(&gi) => gi,
                None => {
                    self.groups.push(TermGroup {
                        kind,
                        term: t.clone(),
                        per_node: vec![0; nodes],
                        total: 0,
                    });
                    self.index.insert((kind, t.clone()), self.groups.len() - 1);
                    self.groups.len() - 1
                }
            };
            let g = &mut self.groups[gi];
            if let Some(x) = g.per_node.get_mut(node) {
                *x += delta;
                g.total += delta;
            }
        }
    }
}

#[derive(Debug)]
struct CountCache {
    cursor: ChangeCursor,
    filter: PodFilter,
    per_node: Vec<i64>,
    /// `per_node` summed per domain, for the keys asked of [`PodIndex::domain_counts`].
    by_domain: Vec<(Domains, Vec<i64>)>,
}

#[derive(Debug)]
struct DomainCache {
    cursor: ChangeCursor,
    domains: Domains,
}

/// The caches of one plugin instance (see the module docs).
#[derive(Debug, Default)]
pub struct PodIndex {
    counts: Vec<CountCache>,
    domains: Vec<DomainCache>,
    groups: Option<Groups>,
}

fn same_nodes(a: &ChangeCursor, b: &ChangeCursor) -> bool {
    a.snapshot == b.snapshot && a.node_generation == b.node_generation
}

impl PodIndex {
    /// Drops old caches; call at the start of a cycle, before taking indices (indices stay
    /// valid until the next call).
    pub fn trim(&mut self) {
        if self.counts.len() > MAX_CACHES {
            let extra = self.counts.len() - MAX_CACHES;
            self.counts.drain(..extra);
        }
        if self.domains.len() > MAX_CACHES {
            let extra = self.domains.len() - MAX_CACHES;
            self.domains.drain(..extra);
        }
    }

    /// Index of the up-to-date per-node counts of `filter` (see [`PodIndex::per_node`]).
    pub fn counts(&mut self, snap: &Snapshot, filter: &PodFilter) -> usize {
        let now = snap.cursor();
        if let Some(i) = self.counts.iter().position(|c| c.filter == *filter) {
            let c = &mut self.counts[i];
            if let Some(changes) = snap.changes(&c.cursor) {
                for (pod, node, delta) in changes {
                    let node = *node as usize;
                    if node < c.per_node.len() && filter.matches(pod, snap) {
                        c.per_node[node] += i64::from(*delta);
                        for (d, totals) in &mut c.by_domain {
                            if let Some(&dom) = d.domain_of.get(node).filter(|d| **d != MISSING) {
                                totals[dom as usize] += i64::from(*delta);
                            }
                        }
                    }
                }
                c.cursor = now;
                return i;
            }
            c.per_node = Self::count_all(snap, filter);
            c.by_domain.clear();
            c.cursor = now;
            return i;
        }
        self.counts.push(CountCache {
            cursor: now,
            filter: filter.clone(),
            per_node: Self::count_all(snap, filter),
            by_domain: Vec::new(),
        });
        self.counts.len() - 1
    }

    fn count_all(snap: &Snapshot, filter: &PodFilter) -> Vec<i64> {
        snap.nodes()
            .iter()
            .map(|n| n.pods.iter().filter(|p| filter.matches(p, snap)).count() as i64)
            .collect()
    }

    /// The counts of `filter` summed per domain of `key` (nodes without the key left out),
    /// kept up to date like the per-node counts: O(changes) per call instead of O(nodes).
    pub fn domain_counts(
        &mut self,
        snap: &Snapshot,
        filter: &PodFilter,
        key: &str,
    ) -> (Domains, &[i64]) {
        let domains = self.domains(snap, key).clone();
        let i = self.counts(snap, filter);
        let c = &mut self.counts[i];
        let j = match c
            .by_domain
            .iter()
            .position(|(d, _)| Arc::ptr_eq(&d.domain_of, &domains.domain_of))
        {
            Some(j) => j,
            None => {
                c.by_domain.retain(|(d, _)| d.key != key);
                c.by_domain
                    .push((domains.clone(), domains.totals(&c.per_node)));
                c.by_domain.len() - 1
            }
        };
        (domains, &c.by_domain[j].1)
    }

    /// The per-node counts behind an index from [`PodIndex::counts`].
    pub fn per_node(&self, i: usize) -> &[i64] {
        &self.counts[i].per_node
    }

    /// The nodes' domains for a topology key.
    pub fn domains(&mut self, snap: &Snapshot, key: &str) -> &Domains {
        let now = snap.cursor();
        let i = match self.domains.iter().position(|d| d.domains.key == key) {
            Some(i) if same_nodes(&self.domains[i].cursor, &now) => i,
            found => {
                let mut names: Vec<String> = Vec::new();
                let mut index: HashMap<&str, u32> = HashMap::new();
                let mut domain_of = Vec::with_capacity(snap.len());
                for n in snap.nodes() {
                    domain_of.push(match n.labels.get(key) {
                        Some(v) => *index.entry(v.as_str()).or_insert_with(|| {
                            names.push(v.clone());
                            (names.len() - 1) as u32
                        }),
                        None => MISSING,
                    });
                }
                let fresh = DomainCache {
                    cursor: now,
                    domains: Domains {
                        key: key.to_string(),
                        domain_of: domain_of.into(),
                        names: names.into(),
                    },
                };
                match found {
                    Some(i) => {
                        self.domains[i] = fresh;
                        i
                    }
                    None => {
                        self.domains.push(fresh);
                        self.domains.len() - 1
                    }
                }
            }
        };
        &self.domains[i].domains
    }

    /// A group from the last [`PodIndex::term_groups`].
    pub fn group(&self, i: usize) -> Option<&TermGroup> {
        self.groups.as_ref()?.groups.get(i)
    }

    /// The existing pods' terms, grouped, up to date.
    pub fn term_groups(&mut self, snap: &Snapshot) -> &[TermGroup] {
        let now = snap.cursor();
        let fresh = match self.groups.as_mut() {
            Some(g) => match snap.changes(&g.cursor) {
                Some(changes) => {
                    for (pod, node, delta) in changes {
                        g.apply(pod, *node as usize, i64::from(*delta), snap.len());
                    }
                    g.cursor = now;
                    // Many emptied groups (terms of pods that are gone): start over.
                    let empty = g.groups.iter().filter(|x| x.total == 0).count();
                    empty > MAX_CACHES && empty * 2 > g.groups.len()
                }
                None => true,
            },
            None => true,
        };
        if fresh {
            self.groups = Some(Groups::build(snap));
        }
        self.groups.as_ref().map_or(&[], |g| g.groups.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod_named, snapshot};
    use serde_json::json;
    use std::sync::Arc;

    fn anti(name: &str, app: &str, node: &str) -> PodInfo {
        pod_named(
            name,
            json!({"app": app}),
            json!({"nodeName": node, "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "zone"}]}}}),
        )
    }

    /// Counts and groups kept from the change log equal the ones built from scratch.
    #[test]
    fn incremental_equals_rebuilt() {
        let nodes = vec![
            node("a", json!({"zone": "z1"}), json!({})),
            node("b", json!({"zone": "z2"}), json!({})),
            node("c", json!({}), json!({})),
        ];
        let mut snap = snapshot(nodes, vec![anti("p1", "web", "a")]);
        let web = anti("x", "web", "a").required_anti_affinity.clone();
        let filter = PodFilter::AllTerms(web);
        let mut kept = PodIndex::default();
        let c = kept.counts(&snap, &filter);
        assert_eq!(kept.per_node(c), &[1, 0, 0]);
        assert_eq!(kept.term_groups(&snap)[0].per_node, vec![1, 0, 0]);
        assert_eq!(kept.domain_counts(&snap, &filter, "zone").1, &[1, 0]);
        snap.upsert_pod_info(Arc::new(anti("p2", "web", "b")));
        snap.upsert_pod_info(Arc::new(anti("p3", "db", "c")));
        snap.upsert_pod_info(Arc::new(anti("p1", "web", "c"))); // moved
        snap.remove_pod("default/p2");
        // p1 moved to node c, which has no zone: no domain counts it any more.
        assert_eq!(kept.domain_counts(&snap, &filter, "zone").1, &[0, 0]);
        let c = kept.counts(&snap, &filter);
        let kept_counts = kept.per_node(c).to_vec();
        let kept_groups: Vec<(TermKind, Vec<i64>, i64)> = kept
            .term_groups(&snap)
            .iter()
            .map(|g| (g.kind, g.per_node.clone(), g.total))
            .collect();
        let mut fresh = PodIndex::default();
        let c = fresh.counts(&snap, &filter);
        assert_eq!(kept_counts, fresh.per_node(c));
        assert_eq!(kept_counts, vec![0, 0, 1]);
        let fresh_groups: Vec<_> = fresh
            .term_groups(&snap)
            .iter()
            .map(|g| (g.kind, g.per_node.clone(), g.total))
            .collect();
        // The kept index may hold emptied groups; the live ones are the same.
        let live: Vec<_> = kept_groups.into_iter().filter(|g| g.2 > 0).collect();
        assert_eq!(live, fresh_groups);
        let d = fresh.domains(&snap, "zone").clone();
        assert_eq!(&*d.names, &["z1".to_string(), "z2".to_string()]);
        assert_eq!(d.totals(&[1, 2, 5]), vec![1, 2]);
        assert_eq!(d.of(snap.node(2), &snap), None);
        assert_eq!(
            d.of(&node("z", json!({"zone": "z2"}), json!({})), &snap),
            Some(1)
        );
    }

    /// A namespace label change invalidates counts that depend on namespace selectors.
    #[test]
    fn namespace_change_rebuilds() {
        let p = pod_named("e", json!({"app": "web"}), json!({"nodeName": "a"}));
        let p = PodInfo {
            namespace: "other".into(),
            key: "other/e".into(),
            ..p
        };
        let mut snap = snapshot(vec![node("a", json!({}), json!({}))], vec![p]);
        let incoming = pod_named(
            "x",
            json!({}),
            json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone",
                 "namespaceSelector": {"matchLabels": {"team": "a"}}}]}}}),
        );
        let filter = PodFilter::AllTerms(incoming.required_affinity.clone());
        let mut idx = PodIndex::default();
        let c = idx.counts(&snap, &filter);
        assert_eq!(idx.per_node(c), &[0]);
        snap.set_namespace("other", [("team".to_string(), "a".to_string())].into());
        let c = idx.counts(&snap, &filter);
        assert_eq!(idx.per_node(c), &[1]);
    }
}
