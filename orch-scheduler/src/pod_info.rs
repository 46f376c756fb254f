//! [`PodInfo`]: everything the plugins need from a pod, computed once when the pod enters the
//! snapshot or the queue (requests as integers, compiled selectors, ports, images), so the
//! per-node loop never parses a quantity or a selector.

use crate::resources::{pod_requests, InvalidQuantity, PodRequests};
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, Toleration};
use orch_types::labels::{Operator, Requirement, Selector, SelectorError};
use orch_types::node_selector::{CompiledNodeSelector, CompiledTerm};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A pod could not be prepared for scheduling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodInfoError {
    /// A resource quantity is invalid.
    #[error("pod {pod}: {source}")]
    Quantity {
        /// `namespace/name`.
        pod: String,
        /// The error.
        #[source]
        source: InvalidQuantity,
    },
    /// A selector is invalid.
    #[error("pod {pod}: {field}: {source}")]
    Selector {
        /// `namespace/name`.
        pod: String,
        /// Field path.
        field: &'static str,
        /// The error.
        #[source]
        source: SelectorError,
    },
    /// The pod has no name.
    #[error("pod without metadata.name")]
    NoName,
}

/// A host port a container asks for (`0.0.0.0` when no hostIP, `TCP` when no protocol).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// Host IP.
    pub ip: String,
    /// Protocol.
    pub protocol: String,
    /// Port.
    pub port: i32,
}

impl HostPort {
    /// True when both cannot be bound at once (upstream `HostPortInfo.CheckConflict`).
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A compiled pod (anti-)affinity term (upstream `framework.AffinityTerm`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AffinityTerm {
    /// Namespaces listed (or the pod's own when neither list nor selector is given).
    pub namespaces: Vec<String>,
    /// Namespace selector (`None` = nothing).
    pub namespace_selector: Selector,
    /// Pod label selector.
    pub selector: Selector,
    /// Topology key.
    pub topology_key: String,
    /// Weight (preferred terms) or 1.
    pub weight: i64,
}

impl AffinityTerm {
    fn new(term: &PodAffinityTerm, pod_ns: &str, weight: i64) -> Result<Self, SelectorError> {
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        let namespace_selector = Selector::from_optional(term.namespace_selector.as_ref())?;
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.push(pod_ns.to_string());
        }
        namespaces.sort();
        // matchLabelKeys / mismatchLabelKeys are merged into labelSelector by the API server
        // in 1.33 (MatchLabelKeysInPodAffinity), so the scheduler only reads the selector.
        let selector = Selector::from_optional(term.label_selector.as_ref())?;
        Ok(Self {
            namespaces,
            namespace_selector,
            selector,
            topology_key: term.topology_key.clone(),
            weight,
        })
    }

    /// True when `pod` (whose namespace has labels `ns_labels`) matches the term.
    #[inline]
    pub fn matches(&self, pod: &PodInfo, ns_labels: &BTreeMap<String, String>) -> bool {
        (self.namespaces.binary_search(&pod.namespace).is_ok()
            || self.namespace_selector.matches(ns_labels))
            && self.selector.matches(&pod.labels)
    }

    /// Like [`AffinityTerm::matches`], looking the namespace's labels up in the snapshot only
    /// when the namespace selector needs them (the per-pod loops stay hash-free).
    #[inline]
    pub fn matches_in(&self, pod: &PodInfo, snap: &crate::snapshot::Snapshot) -> bool {
        if !self.selector.matches(&pod.labels) {
            return false;
        }
        if self.namespaces.binary_search(&pod.namespace).is_ok() {
            return true;
        }
        !self.namespace_selector.is_nothing()
            && self
                .namespace_selector
                .matches(snap.namespace_labels(&pod.namespace))
    }
}

/// A compiled topology spread constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpreadConstraint {
    /// maxSkew.
    pub max_skew: i32,
    /// topologyKey.
    pub topology_key: String,
    /// `DoNotSchedule` (true) or `ScheduleAnyway`.
    pub hard: bool,
    /// Selector with matchLabelKeys merged in.
    pub selector: Selector,
    /// minDomains (1 when unset).
    pub min_domains: i32,
    /// nodeAffinityPolicy Honor (default) vs Ignore.
    pub honor_node_affinity: bool,
    /// nodeTaintsPolicy Honor vs Ignore (default).
    pub honor_node_taints: bool,
}

/// Everything the plugins need from a pod.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// The pod itself.
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    /// Namespace (`default` when unset).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// Requests.
    pub requests: PodRequests,
    /// Host ports.
    pub host_ports: Vec<HostPort>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// `spec.nodeName`.
    pub node_name: Option<String>,
    /// `spec.schedulerName` (`default-scheduler` when unset).
    pub scheduler_name: String,
    /// `spec.nodeSelector` as a label map.
    pub node_selector: BTreeMap<String, String>,
    /// Required node affinity.
    pub required_node_affinity: Option<CompiledNodeSelector>,
    /// Preferred node affinity terms with weights.
    pub preferred_node_affinity: Vec<(i64, CompiledTerm)>,
    /// Required pod affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod affinity terms.
    pub preferred_affinity: Vec<AffinityTerm>,
    /// Preferred pod anti-affinity terms.
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    /// Topology spread constraints.
    pub spread: Vec<SpreadConstraint>,
    /// Normalized container images (init + regular).
    pub images: Vec<String>,
    /// Number of containers (init + regular).
    pub num_containers: usize,
    /// Remaining scheduling gates.
    pub scheduling_gates: Vec<String>,
    /// `preemptionPolicy: Never`.
    pub never_preempt: bool,
    /// Being deleted.
    pub terminating: bool,
    /// `status.startTime` (or creation time) in seconds, for victim ordering.
    pub start_time: Option<i64>,
    /// `status.nominatedNodeName`.
    pub nominated_node: Option<String>,
}

/// Appends `:latest` when the image has no tag (upstream `normalizedImageName`).
pub fn normalized_image(name: &str) -> String {
    let colon = name.rfind(':');
    let slash = name.rfind('/');
    if colon.map(|c| c as isize).unwrap_or(-1) <= slash.map(|s| s as isize).unwrap_or(-1) {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

/// `status.startTime`, else the creation time, in seconds: what victim ordering compares.
fn start_time(pod: &Pod) -> Option<i64> {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0.as_second())
}

/// `status.nominatedNodeName` when set and not empty.
fn nominated_node(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|s| !s.is_empty())
}

impl PodInfo {
    /// Prepares a pod.
    ///
    /// ```
    /// use k8s_openapi::api::core::v1::Pod;
    /// use orch_scheduler::pod_info::PodInfo;
    /// let pod: Pod = serde_json::from_value(serde_json::json!({
    ///   "metadata": {"name": "p", "namespace": "ns"},
    ///   "spec": {"containers": [{"name": "c", "image": "nginx",
    ///            "resources": {"requests": {"cpu": "250m"}}}]}})).unwrap();
    /// let info = PodInfo::new(pod).unwrap();
    /// assert_eq!(info.requests.requested.milli_cpu, 250);
    /// assert_eq!(info.images, vec!["nginx:latest".to_string()]);
    /// ```
    pub fn new(pod: impl Into<Arc<Pod>>) -> Result<Self, PodInfoError> {
        let pod: Arc<Pod> = pod.into();
        let name = pod.metadata.name.clone().ok_or(PodInfoError::NoName)?;
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let key = orch_runtime::object::key_from(Some(&namespace), &name);
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let default_spec = k8s_openapi::api::core::v1::PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&default_spec);
        let sel_err = |field: &'static str| {
            let key = key.clone();
            move |source| PodInfoError::Selector {
                pod: key,
                field,
                source,
            }
        };
        let requests = pod_requests(spec).map_err(|source| PodInfoError::Quantity {
            pod: key.clone(),
            source,
        })?;
        let mut host_ports = Vec::new();
        for c in &spec.containers {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|hp| *hp > 0) {
                    host_ports.push(HostPort {
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        protocol: p
                            .protocol
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "TCP".into()),
                        port: hp,
                    });
                }
            }
        }
        let affinity = spec.affinity.clone().unwrap_or_default();
        let na = affinity.node_affinity.unwrap_or_default();
        let required_node_affinity = na
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .map(CompiledNodeSelector::new)
            .transpose()
            .map_err(sel_err("spec.affinity.nodeAffinity.required"))?;
        let preferred_node_affinity = na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .map(|p| Ok((i64::from(p.weight), CompiledTerm::new(&p.preference)?)))
            .collect::<Result<Vec<_>, SelectorError>>()
            .map_err(sel_err("spec.affinity.nodeAffinity.preferred"))?;
        let pa = affinity.pod_affinity.unwrap_or_default();
        let paa = affinity.pod_anti_affinity.unwrap_or_default();
        let req_terms = |terms: Option<&Vec<PodAffinityTerm>>| {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(t, &namespace, 1))
                .collect::<Result<Vec<_>, _>>()
        };
        let required_affinity = req_terms(
            pa.required_during_scheduling_ignored_during_execution
                .as_ref(),
        )
        .map_err(sel_err("spec.affinity.podAffinity.required"))?;
        let required_anti_affinity = req_terms(
            paa.required_during_scheduling_ignored_during_execution
                .as_ref(),
        )
        .map_err(sel_err("spec.affinity.podAntiAffinity.required"))?;
        let pref_terms = |terms: Option<
            &Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>,
        >| {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(&t.pod_affinity_term, &namespace, i64::from(t.weight)))
                .collect::<Result<Vec<_>, _>>()
        };
        let preferred_affinity = pref_terms(
            pa.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
        .map_err(sel_err("spec.affinity.podAffinity.preferred"))?;
        let preferred_anti_affinity = pref_terms(
            paa.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
        .map_err(sel_err("spec.affinity.podAntiAffinity.preferred"))?;
        let mut spread = Vec::new();
        for c in spec.topology_spread_constraints.iter().flatten() {
            let mut selector = Selector::from_optional(c.label_selector.as_ref())
                .map_err(sel_err("spec.topologySpreadConstraints.labelSelector"))?;
            if !selector.is_nothing() {
                for k in c.match_label_keys.iter().flatten() {
                    if let Some(Ok(r)) = labels
                        .get(k)
                        .map(|v| Requirement::new(k, Operator::In, [v.as_str()]))
                    {
                        selector = selector.with_requirement(r);
                    }
                }
            }
            spread.push(SpreadConstraint {
                max_skew: c.max_skew,
                topology_key: c.topology_key.clone(),
                hard: c.when_unsatisfiable == "DoNotSchedule",
                selector,
                min_domains: c.min_domains.unwrap_or(1),
                honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            });
        }
        let images: Vec<String> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .filter_map(|c| c.image.as_deref())
            .map(normalized_image)
            .collect();
        let num_containers =
            spec.init_containers.as_ref().map_or(0, Vec::len) + spec.containers.len();
        let start_time = start_time(&pod);
        Ok(Self {
            key,
            namespace,
            name,
            labels,
            priority: spec.priority.unwrap_or(0),
            requests,
            host_ports,
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            node_name: spec.node_name.clone().filter(|s| !s.is_empty()),
            scheduler_name: spec
                .scheduler_name
                .clone()
                .unwrap_or_else(|| "default-scheduler".into()),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_affinity,
            preferred_node_affinity,
            required_affinity,
            required_anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
            spread,
            images,
            num_containers,
            scheduling_gates: spec
                .scheduling_gates
                .iter()
                .flatten()
                .map(|g| g.name.clone())
                .collect(),
            never_preempt: spec.preemption_policy.as_deref() == Some("Never"),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            start_time,
            nominated_node: nominated_node(&pod).map(str::to_string),
            pod,
        })
    }

    /// Whether [`PodInfo::new`] of `pod` (an update of this pod) would give this info again,
    /// so a cache may keep it: same spec (but for `spec.nodeName`, compared with
    /// [`node_name`](Self::node_name): [`bound_to`](Self::bound_to) sets that one alone),
    /// labels and deletion, same start time and nominated node. Neither a status write by
    /// the kubelet (conditions, container states) nor the binding of an assumed pod coming
    /// back changes these.
    pub fn describes(&self, pod: &Pod) -> bool {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty());
        let same_spec = match (self.pod.spec.as_ref(), pod.spec.as_ref()) {
            (Some(mine), Some(theirs)) if mine.node_name != theirs.node_name => {
                let mut mine = mine.clone();
                mine.node_name.clone_from(&theirs.node_name);
                mine == *theirs
            }
            (mine, theirs) => mine == theirs,
        };
        same_spec
            && self.node_name.as_deref() == node
            && self.pod.metadata.labels == pod.metadata.labels
            && self.terminating == pod.metadata.deletion_timestamp.is_some()
            && self.start_time == start_time(pod)
            && self.nominated_node.as_deref() == nominated_node(pod)
    }

    /// True when the pod has any (anti-)affinity term.
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// A copy of this pod bound to `node` (what the scheduler assumes after a decision).
    /// Only [`PodInfo::node_name`] changes; the wire object is shared, not copied.
    pub fn bound_to(&self, node: &str) -> Self {
        let mut p = self.clone();
        p.node_name = Some(node.to_string());
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_normalization() {
        assert_eq!(normalized_image("nginx"), "nginx:latest");
        assert_eq!(normalized_image("nginx:1.2"), "nginx:1.2");
        assert_eq!(
            normalized_image("host:5000/nginx"),
            "host:5000/nginx:latest"
        );
        assert_eq!(normalized_image("host:5000/nginx:1"), "host:5000/nginx:1");
    }

    #[test]
    fn host_port_conflicts() {
        let hp = |ip: &str, port| HostPort {
            ip: ip.into(),
            protocol: "TCP".into(),
            port,
        };
        assert!(hp("0.0.0.0", 80).conflicts(&hp("10.0.0.1", 80)));
        assert!(!hp("10.0.0.2", 80).conflicts(&hp("10.0.0.1", 80)));
        assert!(!hp("0.0.0.0", 80).conflicts(&hp("0.0.0.0", 81)));
    }
}
