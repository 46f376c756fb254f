//! ResourceQuota accounting, shared by the API server's `ResourceQuota` admission and the
//! `resourcequota` controller: which quota resources an object uses and how much, which
//! quotas it falls under, whether a request fits, and the resource-list arithmetic of upstream
//! `k8s.io/apiserver/pkg/quota/v1` (`resources.go`, `generic/evaluator.go`) and
//! `pkg/quota/v1/evaluator/core` (`pods.go`, `services.go`, `persistent_volume_claims.go`,
//! `registry.go`), Kubernetes 1.33.
//!
//! - An [`Evaluator`] per resource: [`Evaluator::Pods`] (`pods`, `count/pods`, `cpu`,
//!   `requests.*`, `limits.*`, hugepages, extended resources as `requests.<name>`),
//!   [`Evaluator::Services`] (`services`, `services.nodeports`, `services.loadbalancers`),
//!   [`Evaluator::PersistentVolumeClaims`] (`persistentvolumeclaims`, `requests.storage`, and
//!   both per storage class as `<class>.storageclass.storage.k8s.io/<resource>`), and
//!   [`Evaluator::ObjectCount`] for every other kind (`count/<plural>.<group>`, plus the legacy
//!   names `configmaps`, `secrets`, `replicationcontrollers`, `resourcequotas`).
//! - A pod's compute usage is its effective requests and limits ([`crate::resources`]:
//!   max(sum of containers and sidecars, each init container with the sidecars before it) +
//!   overhead); a pod in a terminal phase, or being deleted past its grace period, uses only
//!   its `count/pods` ([`pod_counts`], upstream `QuotaV1Pod`).
//! - Scopes (`spec.scopes`, each an `Exists` requirement, and `spec.scopeSelector`) select
//!   pods only: `Terminating` (`activeDeadlineSeconds` set), `NotTerminating`, `BestEffort`,
//!   `NotBestEffort`, `PriorityClass` (with `In`/`NotIn`/`Exists`/`DoesNotExist` on the pod's
//!   `priorityClassName`) and `CrossNamespacePodAffinity`. A quota with any scope matches no
//!   other kind (upstream `MatchesNoScopeFunc`).
//! - [`check`] is upstream's admission `CheckRequest`: for each quota that matches the object
//!   and constrains one of its resources, the "must specify" rule for pods, the "status
//!   unknown" rule, then the new usage against `status.hard` with upstream's messages
//!   (`exceeded quota: NAME, requested: …, used: …, limited: …`).
//!
//! Events are never quota'd (upstream `install.DefaultIgnoredResources`).
//!
//! ```
//! use orch_types::quota::{Evaluator, Item};
//! use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
//! use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
//! let pod = Pod {
//!     spec: Some(PodSpec {
//!         containers: vec![Container {
//!             name: "c".into(),
//!             resources: Some(ResourceRequirements {
//!                 requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
//!                 ..Default::default()
//!             }),
//!             ..Default::default()
//!         }],
//!         ..Default::default()
//!     }),
//!     ..Default::default()
//! };
//! let now = jiff::Timestamp::UNIX_EPOCH;
//! let used = Evaluator::Pods.usage(Item::Pod(&pod), now);
//! assert_eq!(used.to_string(), "count/pods=1,cpu=250m,pods=1,requests.cpu=250m");
//! ```

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, Pod, PodAffinityTerm, ResourceQuota,
    ScopedResourceSelectorRequirement, Service,
};

use crate::quantity::{Format, Quantity};
use crate::resources::{pod_limits, pod_requests, ResourceList};

/// `pods`: pods in a non-terminal state.
pub const PODS: &str = "pods";
/// `services`.
pub const SERVICES: &str = "services";
/// `services.nodeports`.
pub const SERVICES_NODE_PORTS: &str = "services.nodeports";
/// `services.loadbalancers`.
pub const SERVICES_LOAD_BALANCERS: &str = "services.loadbalancers";
/// `persistentvolumeclaims`.
pub const PERSISTENT_VOLUME_CLAIMS: &str = "persistentvolumeclaims";
/// `requests.storage`.
pub const REQUESTS_STORAGE: &str = "requests.storage";
/// `requests.cpu`.
pub const REQUESTS_CPU: &str = "requests.cpu";
/// `requests.memory`.
pub const REQUESTS_MEMORY: &str = "requests.memory";
/// `requests.ephemeral-storage`.
pub const REQUESTS_EPHEMERAL_STORAGE: &str = "requests.ephemeral-storage";
/// `limits.cpu`.
pub const LIMITS_CPU: &str = "limits.cpu";
/// `limits.memory`.
pub const LIMITS_MEMORY: &str = "limits.memory";
/// `limits.ephemeral-storage`.
pub const LIMITS_EPHEMERAL_STORAGE: &str = "limits.ephemeral-storage";
/// The prefix of hugepages resources (`hugepages-2Mi`).
pub const HUGEPAGES_PREFIX: &str = "hugepages-";
/// The prefix of requested resources in a quota (`requests.nvidia.com/gpu`).
pub const REQUESTS_PREFIX: &str = "requests.";
/// What a per-storage-class claim resource ends with before its resource name
/// (`gold.storageclass.storage.k8s.io/requests.storage`).
pub const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// The scopes a quota may name (upstream `standardResourceQuotaScopes`).
pub const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
    "VolumeAttributesClass",
];

/// The quota resources a pod's compute usage is made of (upstream `podResources`).
const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    REQUESTS_CPU,
    REQUESTS_MEMORY,
    REQUESTS_EPHEMERAL_STORAGE,
    LIMITS_CPU,
    LIMITS_MEMORY,
    LIMITS_EPHEMERAL_STORAGE,
    PODS,
];

/// Resources whose quota makes every container name them (upstream `validationSet`: "it was a
/// mistake, but if a quota tracks cpu or memory related resources, the incoming pod is
/// required to have those values set").
const MUST_SPECIFY: &[&str] = &[
    "cpu",
    "memory",
    REQUESTS_CPU,
    REQUESTS_MEMORY,
    LIMITS_CPU,
    LIMITS_MEMORY,
];

const SERVICE_RESOURCES: &[&str] = &[
    "count/services",
    SERVICES,
    SERVICES_NODE_PORTS,
    SERVICES_LOAD_BALANCERS,
];

const CLAIM_RESOURCES: &[&str] = &[PERSISTENT_VOLUME_CLAIMS, REQUESTS_STORAGE];

/// The quota resource counting the objects of a resource: `count/pods`,
/// `count/deployments.apps` (upstream `ObjectCountQuotaResourceNameFor`).
pub fn object_count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// Whether quota leaves a resource alone entirely (upstream `DefaultIgnoredResources`: events).
pub fn ignored(group: &str, plural: &str) -> bool {
    plural == "events" && (group.is_empty() || group == "events.k8s.io")
}

/// The object a quota is evaluated on, as its evaluator needs it.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// A pod.
    Pod(&'a Pod),
    /// A service.
    Service(&'a Service),
    /// A claim.
    Claim(&'a PersistentVolumeClaim),
    /// Any other object (only counted).
    Object,
}

/// How quota measures the objects of one resource (upstream `quota.Evaluator`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluator {
    /// `pods` (upstream `podEvaluator`).
    Pods,
    /// `services` (upstream `serviceEvaluator`).
    Services,
    /// `persistentvolumeclaims` (upstream `pvcEvaluator`).
    PersistentVolumeClaims,
    /// Any other resource: one per object (upstream `objectCountEvaluator`).
    ObjectCount {
        /// `count/<plural>.<group>`.
        count: String,
        /// The legacy name also charged (`configmaps`, `secrets`, …).
        alias: Option<&'static str>,
    },
}

/// The operation being admitted.
#[derive(Debug, Clone, Copy)]
pub enum Operation<'a> {
    /// A create.
    Create,
    /// An update from this old object.
    Update(Item<'a>),
}

impl Evaluator {
    /// The evaluator of a resource (upstream core `NewEvaluators`, then a generic object count
    /// evaluator for anything else).
    pub fn for_resource(group: &str, plural: &str) -> Self {
        match (group, plural) {
            ("", "pods") => Self::Pods,
            ("", "services") => Self::Services,
            ("", "persistentvolumeclaims") => Self::PersistentVolumeClaims,
            _ => {
                let alias = match (group, plural) {
                    ("", "configmaps") => Some("configmaps"),
                    ("", "secrets") => Some("secrets"),
                    ("", "replicationcontrollers") => Some("replicationcontrollers"),
                    ("", "resourcequotas") => Some("resourcequotas"),
                    _ => None,
                };
                Self::ObjectCount {
                    count: object_count_name(group, plural),
                    alias,
                }
            }
        }
    }

    /// Whether admission evaluates this operation (upstream `Handles`): pods on create, or on an
    /// update that changes the `Terminating` scope; services and claims on create and update
    /// (a type change, a resize); other kinds on create.
    pub fn handles(&self, op: Operation<'_>, new: Item<'_>) -> bool {
        match (self, op) {
            (_, Operation::Create) => true,
            (Self::Pods, Operation::Update(old)) => match (old, new) {
                (Item::Pod(o), Item::Pod(n)) => is_terminating(o) != is_terminating(n),
                _ => false,
            },
            (Self::Services | Self::PersistentVolumeClaims, Operation::Update(_)) => true,
            (Self::ObjectCount { .. }, Operation::Update(_)) => false,
        }
    }

    /// The names among `input` this evaluator measures (upstream `MatchingResources`).
    pub fn matching_resources<'s>(&self, input: impl IntoIterator<Item = &'s str>) -> Vec<String> {
        input
            .into_iter()
            .filter(|r| self.measures(r))
            .map(str::to_string)
            .collect()
    }

    fn measures(&self, r: &str) -> bool {
        match self {
            Self::Pods => {
                POD_RESOURCES.contains(&r)
                    || r.starts_with(HUGEPAGES_PREFIX)
                    || r.starts_with("requests.hugepages-")
                    || is_extended_quota_name(r)
            }
            Self::Services => SERVICE_RESOURCES.contains(&r),
            Self::PersistentVolumeClaims => {
                r == "count/persistentvolumeclaims"
                    || CLAIM_RESOURCES.contains(&r)
                    || CLAIM_RESOURCES
                        .iter()
                        .any(|c| r.ends_with(&format!("{STORAGE_CLASS_SUFFIX}{c}")))
            }
            Self::ObjectCount { count, alias } => r == count || alias.is_some_and(|a| a == r),
        }
    }

    /// Whether `item` falls under one scope requirement (upstream `podMatchesScopeFunc`; other
    /// kinds match no scope).
    pub fn matches_scope(
        &self,
        req: &ScopedResourceSelectorRequirement,
        item: Item<'_>,
    ) -> Result<bool, String> {
        let (Self::Pods, Item::Pod(pod)) = (self, item) else {
            return Ok(false);
        };
        let spec = pod.spec.clone().unwrap_or_default();
        Ok(match req.scope_name.as_str() {
            "Terminating" => is_terminating(pod),
            "NotTerminating" => !is_terminating(pod),
            "BestEffort" => is_best_effort(pod),
            "NotBestEffort" => !is_best_effort(pod),
            "PriorityClass" => {
                let class = spec
                    .priority_class_name
                    .as_deref()
                    .filter(|c| !c.is_empty());
                let values = req.values.as_deref().unwrap_or_default();
                match req.operator.as_str() {
                    "Exists" => class.is_some(),
                    "DoesNotExist" => class.is_none(),
                    "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
                    "NotIn" => !class.is_some_and(|c| values.iter().any(|v| v == c)),
                    other => {
                        return Err(format!(
                            "failed to parse and convert selector: {other:?} is not a valid pod selector operator"
                        ))
                    }
                }
            }
            "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
            _ => false,
        })
    }

    /// Whether `quota` applies to `item`: it constrains a resource this evaluator measures (in
    /// `status.hard`) and every one of its scopes matches (upstream `generic.Matches`).
    pub fn matches(&self, quota: &ResourceQuota, item: Item<'_>) -> Result<bool, String> {
        let hard = status_hard(quota);
        if self
            .matching_resources(hard.0.keys().map(String::as_str))
            .is_empty()
        {
            return Ok(false);
        }
        for req in scope_selectors(quota) {
            if !self.matches_scope(&req, item)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// What `item` uses at `now` (upstream `Usage`).
    pub fn usage(&self, item: Item<'_>, now: Timestamp) -> ResourceList {
        match (self, item) {
            (Self::Pods, Item::Pod(p)) => pod_usage(p, now),
            (Self::Services, Item::Service(s)) => service_usage(s),
            (Self::PersistentVolumeClaims, Item::Claim(c)) => claim_usage(c),
            (Self::ObjectCount { count, alias }, _) => {
                let mut out = ResourceList::new();
                out.insert(count.clone(), one());
                if let Some(a) = alias {
                    out.insert(*a, one());
                }
                out
            }
            // The kind does not fit the evaluator: it is still one object.
            (Self::Pods, _) => count_only("count/pods"),
            (Self::Services, _) => count_only("count/services"),
            (Self::PersistentVolumeClaims, _) => count_only("count/persistentvolumeclaims"),
        }
    }

    /// The rule that a pod names every cpu and memory resource a quota constrains, in each
    /// container and init container (upstream `podEvaluator.Constraints`): `must specify
    /// limits.cpu for: a,b; requests.memory for: c`. Other kinds have no constraint.
    pub fn constraints(&self, required: &[String], item: Item<'_>) -> Result<(), String> {
        let (Self::Pods, Item::Pod(pod)) = (self, item) else {
            return Ok(());
        };
        let required: BTreeSet<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|r| MUST_SPECIFY.contains(r))
            .collect();
        if required.is_empty() {
            return Ok(());
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let mut missing: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let all = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for c in all {
            let has = container_usage(c);
            for r in &required {
                if has.get(r).is_none() {
                    missing.entry(r).or_default().insert(c.name.as_str());
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(r, names)| {
                let names: Vec<&str> = names.iter().copied().collect();
                format!("{r} for: {}", names.join(","))
            })
            .collect();
        Err(format!("must specify {}", parts.join("; ")))
    }
}

fn one() -> Quantity {
    Quantity::from_value(1, Format::DecimalSI)
}

fn count_only(name: &str) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert(name, one());
    out
}

/// An extended resource as a quota names it: `requests.<name>` where `<name>` is not a native
/// (kubernetes.io) resource (upstream `isExtendedResourceNameForQuota`).
fn is_extended_quota_name(r: &str) -> bool {
    r.strip_prefix(REQUESTS_PREFIX)
        .is_some_and(|rest| rest.contains('/') && !rest.contains("kubernetes.io/"))
}

/// An extended resource as a container requests it: fully qualified outside kubernetes.io
/// (upstream `IsExtendedResourceName`).
fn is_extended_resource(r: &str) -> bool {
    r.contains('/') && !r.contains("kubernetes.io/") && !r.starts_with(REQUESTS_PREFIX)
}

/// Upstream `podComputeUsageHelper`: `pods` 1, requests as `<r>` and `requests.<r>`, limits as
/// `limits.<r>` for cpu, memory and ephemeral-storage; hugepages and extended resources as
/// requested.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert(PODS, one());
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(r) {
            out.insert(r, *q);
            out.insert(format!("{REQUESTS_PREFIX}{r}"), *q);
        }
        if let Some(q) = limits.get(r) {
            out.insert(format!("limits.{r}"), *q);
        }
    }
    for (r, q) in requests.iter() {
        if r.starts_with(HUGEPAGES_PREFIX) {
            out.insert(r.clone(), *q);
            out.insert(format!("{REQUESTS_PREFIX}{r}"), *q);
        } else if is_extended_resource(r) {
            out.insert(format!("{REQUESTS_PREFIX}{r}"), *q);
        }
    }
    out
}

fn container_usage(c: &Container) -> ResourceList {
    let r = c.resources.as_ref();
    compute_usage(
        &ResourceList::from_k8s_opt(r.and_then(|r| r.requests.as_ref())),
        &ResourceList::from_k8s_opt(r.and_then(|r| r.limits.as_ref())),
    )
}

/// Whether a pod still uses compute quota at `now`: not in a terminal phase, and not being
/// deleted past its grace period (a pod stuck terminating on a lost node must not hold quota;
/// upstream `QuotaV1Pod`).
pub fn pod_counts(pod: &Pod, now: Timestamp) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Failed" | "Succeeded")) {
        return false;
    }
    if let (Some(deleted), Some(grace)) = (
        pod.metadata.deletion_timestamp.as_ref(),
        pod.metadata.deletion_grace_period_seconds,
    ) {
        let until = deleted
            .0
            .checked_add(jiff::SignedDuration::from_secs(grace))
            .unwrap_or(deleted.0);
        if now > until {
            return false;
        }
    }
    true
}

/// A pod's usage (upstream `PodUsageFunc`): always `count/pods` (object count quotas track
/// every stored object), and while [`pod_counts`], its effective requests and limits.
pub fn pod_usage(pod: &Pod, now: Timestamp) -> ResourceList {
    let mut out = count_only("count/pods");
    if !pod_counts(pod, now) {
        return out;
    }
    let spec = pod.spec.clone().unwrap_or_default();
    out.add(&compute_usage(&pod_requests(&spec), &pod_limits(&spec)));
    out
}

/// `Terminating` scope: `activeDeadlineSeconds` is set (upstream `IsTerminating`).
pub fn is_terminating(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .is_some_and(|d| d >= 0)
}

/// `BestEffort` scope: the pod's QoS class ([`crate::resources::qos_class`], upstream
/// `qos.GetPodQOS`) is BestEffort.
pub fn is_best_effort(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .is_none_or(|spec| crate::resources::qos_class(spec) == "BestEffort")
}

fn cross_namespace(t: &PodAffinityTerm) -> bool {
    t.namespaces.as_ref().is_some_and(|n| !n.is_empty()) || t.namespace_selector.is_some()
}

/// `CrossNamespacePodAffinity` scope: a pod (anti-)affinity term names namespaces or a
/// namespace selector (upstream `usesCrossNamespacePodAffinity`).
fn uses_cross_namespace_affinity(pod: &Pod) -> bool {
    let Some(a) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return false;
    };
    let terms =
        |req: Option<&Vec<PodAffinityTerm>>,
         pref: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
            req.into_iter().flatten().any(cross_namespace)
                || pref
                    .into_iter()
                    .flatten()
                    .any(|w| cross_namespace(&w.pod_affinity_term))
        };
    a.pod_affinity.as_ref().is_some_and(|p| {
        terms(
            p.required_during_scheduling_ignored_during_execution
                .as_ref(),
            p.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    }) || a.pod_anti_affinity.as_ref().is_some_and(|p| {
        terms(
            p.required_during_scheduling_ignored_during_execution
                .as_ref(),
            p.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    })
}

/// A service's usage (upstream `serviceEvaluator.Usage`): one service; node ports for a
/// NodePort or LoadBalancer service, one per port (for a LoadBalancer that does not allocate
/// node ports, only the ports that ask for one); one load balancer.
pub fn service_usage(svc: &Service) -> ResourceList {
    let spec = svc.spec.clone().unwrap_or_default();
    let ports = spec.ports.as_deref().unwrap_or_default();
    let n = |k: usize| Quantity::from_value(k as i64, Format::DecimalSI);
    let mut out = ResourceList::new();
    out.insert("count/services", one());
    out.insert(SERVICES, one());
    out.insert(SERVICES_LOAD_BALANCERS, Quantity::ZERO);
    out.insert(SERVICES_NODE_PORTS, Quantity::ZERO);
    match spec.type_.as_deref() {
        Some("NodePort") => out.insert(SERVICES_NODE_PORTS, n(ports.len())),
        Some("LoadBalancer") => {
            let node_ports = if spec.allocate_load_balancer_node_ports == Some(false) {
                ports
                    .iter()
                    .filter(|p| p.node_port.unwrap_or(0) != 0)
                    .count()
            } else {
                ports.len()
            };
            out.insert(SERVICES_NODE_PORTS, n(node_ports));
            out.insert(SERVICES_LOAD_BALANCERS, one());
        }
        _ => {}
    }
    out
}

/// A claim's storage class: `spec.storageClassName`, else the beta annotation (upstream
/// `GetPersistentVolumeClaimClass`).
fn claim_class(c: &PersistentVolumeClaim) -> Option<&str> {
    c.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .or_else(|| {
            c.metadata
                .annotations
                .as_ref()?
                .get("volume.beta.kubernetes.io/storage-class")
                .map(String::as_str)
        })
        .filter(|s| !s.is_empty())
}

/// Rounds up to a whole number of bytes (upstream `RoundUp(0)`, so that storage usage passes
/// quota validation).
fn whole(q: Quantity) -> Quantity {
    let v = q.value();
    let w = Quantity::from_value(v, q.format());
    if w == q {
        q
    } else {
        w
    }
}

/// A claim's usage (upstream `pvcEvaluator.Usage`): one claim, its storage request rounded up
/// to whole bytes (or `status.allocatedResources` when larger, as with
/// `RecoverVolumeExpansionFailure`), each also per storage class.
pub fn claim_usage(c: &PersistentVolumeClaim) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert(PERSISTENT_VOLUME_CLAIMS, one());
    out.insert("count/persistentvolumeclaims", one());
    let class = claim_class(c);
    if let Some(class) = class {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}{PERSISTENT_VOLUME_CLAIMS}"),
            one(),
        );
    }
    let requested = crate::resources::claim_storage_request(c).map(whole);
    let allocated = c
        .status
        .as_ref()
        .and_then(|s| s.allocated_resources.as_ref())
        .and_then(|m| m.get("storage"))
        .and_then(|q| Quantity::try_from(q).ok());
    let storage = match (requested, allocated) {
        (Some(r), Some(a)) if a > r => Some(whole(a)),
        (r, _) => r,
    };
    if let Some(s) = storage {
        out.insert(REQUESTS_STORAGE, s);
        if let Some(class) = class {
            out.insert(
                format!("{class}{STORAGE_CLASS_SUFFIX}{REQUESTS_STORAGE}"),
                s,
            );
        }
    }
    out
}

/// The scope requirements of a quota: each of `spec.scopes` as `Exists`, then
/// `spec.scopeSelector.matchExpressions` (upstream `GetScopeSelectorsFromQuota`).
pub fn scope_selectors(quota: &ResourceQuota) -> Vec<ScopedResourceSelectorRequirement> {
    let spec = quota.spec.as_ref();
    let mut out: Vec<ScopedResourceSelectorRequirement> = spec
        .and_then(|s| s.scopes.as_ref())
        .into_iter()
        .flatten()
        .map(|s| ScopedResourceSelectorRequirement {
            scope_name: s.clone(),
            operator: "Exists".into(),
            values: None,
        })
        .collect();
    out.extend(
        spec.and_then(|s| s.scope_selector.as_ref())
            .and_then(|s| s.match_expressions.clone())
            .into_iter()
            .flatten(),
    );
    out
}

/// `status.hard` of a quota, parsed.
pub fn status_hard(quota: &ResourceQuota) -> ResourceList {
    ResourceList::from_k8s_opt(quota.status.as_ref().and_then(|s| s.hard.as_ref()))
}

/// `status.used` of a quota, parsed.
pub fn status_used(quota: &ResourceQuota) -> ResourceList {
    ResourceList::from_k8s_opt(quota.status.as_ref().and_then(|s| s.used.as_ref()))
}

/// `spec.hard` of a quota, parsed.
pub fn spec_hard(quota: &ResourceQuota) -> ResourceList {
    ResourceList::from_k8s_opt(quota.spec.as_ref().and_then(|s| s.hard.as_ref()))
}

/// The entries of `list` whose names are in `names` (upstream `Mask`).
pub fn mask<'s>(list: &ResourceList, names: impl IntoIterator<Item = &'s str>) -> ResourceList {
    names
        .into_iter()
        .filter_map(|n| list.get(n).map(|q| (n.to_string(), *q)))
        .collect()
}

/// Whether every entry of `a` is at most its entry in `b` (entries missing from `b` are not
/// limited), and the names that are not (upstream `LessThanOrEqual`).
pub fn less_than_or_equal(a: &ResourceList, b: &ResourceList) -> (bool, Vec<String>) {
    let exceeded: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(k).is_some_and(|limit| *v > limit))
        .map(|(k, _)| k.clone())
        .collect();
    (exceeded.is_empty(), exceeded)
}

/// `a − b` for the entries of `a`, never below zero (upstream `SubtractWithNonNegativeResult`).
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    a.iter()
        .map(|(k, v)| {
            let d = b.get(k).map_or(*v, |w| v.sub(w));
            (
                k.clone(),
                if d < Quantity::ZERO {
                    Quantity::ZERO
                } else {
                    d
                },
            )
        })
        .collect()
}

/// Why [`check`] refused a request: the message after `pods "x" is forbidden: ` in the 403
/// (upstream `admission.NewForbidden`), or an internal failure (matching a scope).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// 403 Forbidden with this reason.
    #[error("{0}")]
    Forbidden(String),
    /// The quota could not be evaluated (500).
    #[error("{0}")]
    Internal(String),
}

/// Upstream `CheckRequest`: whether admitting `item` (created, or updated from an old object)
/// fits `quotas` (each with its `status`), and the new `status.used` of each quota it charges
/// (`None` for the others).
///
/// For each quota that [`Evaluator::matches`] the item: the pod "must specify" rule
/// (`failed quota: NAME: must specify …`), usage known for every constrained resource
/// (`status unknown for quota: NAME, resources: …`); then the item's usage (on update, what it
/// adds to the old object's, never negative) is added to `status.used` and compared with
/// `status.hard`: `exceeded quota: NAME, requested: …, used: …, limited: …`.
pub fn check(
    quotas: &[ResourceQuota],
    ev: &Evaluator,
    item: Item<'_>,
    op: Operation<'_>,
    now: Timestamp,
) -> Result<Vec<Option<ResourceList>>, CheckError> {
    let mut out = vec![None; quotas.len()];
    if !ev.handles(op, item) {
        return Ok(out);
    }
    let mut interesting = Vec::new();
    for (i, q) in quotas.iter().enumerate() {
        let name = q.metadata.name.as_deref().unwrap_or_default();
        if !ev.matches(q, item).map_err(CheckError::Internal)? {
            continue;
        }
        let hard = status_hard(q);
        let restricted = ev.matching_resources(hard.0.keys().map(String::as_str));
        if let Err(e) = ev.constraints(&restricted, item) {
            return Err(CheckError::Forbidden(format!("failed quota: {name}: {e}")));
        }
        let used = status_used(q);
        if restricted.iter().any(|r| used.get(r).is_none()) {
            let mut names = restricted.clone();
            names.sort();
            return Err(CheckError::Forbidden(format!(
                "status unknown for quota: {name}, resources: {}",
                names.join(",")
            )));
        }
        interesting.push(i);
    }
    if interesting.is_empty() {
        return Ok(out);
    }
    let mut delta = ev.usage(item, now);
    let negative: Vec<&str> = delta
        .iter()
        .filter(|(_, v)| **v < Quantity::ZERO)
        .map(|(k, _)| k.as_str())
        .collect();
    if !negative.is_empty() {
        return Err(CheckError::Forbidden(format!(
            "quota usage is negative for resource(s): {}",
            negative.join(",")
        )));
    }
    if let Operation::Update(old) = op {
        delta = subtract_non_negative(&delta, &ev.usage(old, now));
    }
    if delta.iter().all(|(_, v)| v.is_zero()) {
        return Ok(out);
    }
    for i in interesting {
        let q = &quotas[i];
        let hard = status_hard(q);
        let used = status_used(q);
        let requested = mask(&delta, hard.0.keys().map(String::as_str));
        let mut new_used = used.clone();
        new_used.add(&requested);
        let masked = mask(&new_used, requested.0.keys().map(String::as_str));
        let (fits, exceeded) = less_than_or_equal(&masked, &hard);
        if !fits {
            let names = || exceeded.iter().map(String::as_str);
            return Err(CheckError::Forbidden(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                q.metadata.name.as_deref().unwrap_or_default(),
                mask(&requested, names()),
                mask(&used, names()),
                mask(&hard, names()),
            )));
        }
        out[i] = Some(new_used);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
