//! Pod resource arithmetic: [`ResourceList`] and the effective requests/limits of a pod, as
//! upstream `k8s.io/component-helpers/resource/helpers.go` (`PodRequests`, `PodLimits`), which
//! is what the scheduler, kubelet admission and quota use.
//!
//! Effective requests = max(sum of regular containers + sum of sidecars (init containers with
//! `restartPolicy: Always`), max over each init container i of (its requests + the sidecars
//! started before it)) + `spec.overhead`.
//!
//! Not modelled: pod-level resources (`spec.resources`, alpha in 1.33 behind the
//! `PodLevelResources` gate) and in-place resize status.
//!
//! ```
//! use orch_types::resources::pod_requests;
//! use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
//! use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
//! let c = |name: &str, cpu: &str| Container {
//!     name: name.into(),
//!     resources: Some(ResourceRequirements {
//!         requests: Some([("cpu".to_string(), Quantity(cpu.into()))].into()),
//!         ..Default::default()
//!     }),
//!     ..Default::default()
//! };
//! let spec = PodSpec {
//!     containers: vec![c("a", "500m"), c("b", "250m")],
//!     init_containers: Some(vec![c("init", "1")]),
//!     ..Default::default()
//! };
//! assert_eq!(pod_requests(&spec).get("cpu").unwrap().to_string(), "1");
//! ```

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use crate::quantity::Quantity;

/// `cpu`.
pub const CPU: &str = "cpu";
/// `memory`.
pub const MEMORY: &str = "memory";
/// `ephemeral-storage`.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// `pods`.
pub const PODS: &str = "pods";

/// A map resource name → quantity (upstream `v1.ResourceList`), with arithmetic.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ResourceList(pub BTreeMap<String, Quantity>);

impl ResourceList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a k8s-openapi resource map. Unparsable quantities are skipped (validation
    /// rejects them before an object is stored).
    pub fn from_k8s(map: &BTreeMap<String, K8sQuantity>) -> Self {
        Self(
            map.iter()
                .filter_map(|(k, v)| Quantity::try_from(v).ok().map(|q| (k.clone(), q)))
                .collect(),
        )
    }

    /// Like [`ResourceList::from_k8s`] on an optional map.
    pub fn from_k8s_opt(map: Option<&BTreeMap<String, K8sQuantity>>) -> Self {
        map.map(Self::from_k8s).unwrap_or_default()
    }

    /// Parses a k8s-openapi resource map, failing on the first unparsable quantity (for
    /// consumers such as the scheduler that must not silently drop a request).
    pub fn try_from_k8s(map: &BTreeMap<String, K8sQuantity>) -> Result<Self, InvalidQuantity> {
        map.iter()
            .map(|(k, v)| {
                Quantity::try_from(v)
                    .map(|q| (k.clone(), q))
                    .map_err(|e| InvalidQuantity {
                        resource: k.clone(),
                        value: v.0.clone(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Like [`ResourceList::try_from_k8s`] on an optional map.
    pub fn try_from_k8s_opt(
        map: Option<&BTreeMap<String, K8sQuantity>>,
    ) -> Result<Self, InvalidQuantity> {
        map.map_or_else(|| Ok(Self::default()), Self::try_from_k8s)
    }

    /// The canonical k8s-openapi form.
    pub fn to_k8s(&self) -> BTreeMap<String, K8sQuantity> {
        self.0.iter().map(|(k, v)| (k.clone(), v.into())).collect()
    }

    /// Builder-style insert of a parsed quantity string.
    pub fn with(mut self, name: &str, q: &str) -> Result<Self, crate::quantity::QuantityError> {
        self.0.insert(name.to_string(), q.parse()?);
        Ok(self)
    }

    /// The quantity of a resource.
    pub fn get(&self, name: &str) -> Option<&Quantity> {
        self.0.get(name)
    }

    /// The quantity of a resource, zero when absent.
    pub fn get_or_zero(&self, name: &str) -> Quantity {
        self.0.get(name).copied().unwrap_or(Quantity::ZERO)
    }

    /// Sets a resource.
    pub fn insert(&mut self, name: impl Into<String>, q: Quantity) {
        self.0.insert(name.into(), q);
    }

    /// Iterates over (name, quantity).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Quantity)> {
        self.0.iter()
    }

    /// True when no resource is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// CPU in millicores (0 when absent).
    pub fn milli_cpu(&self) -> i64 {
        self.get(CPU).map_or(0, Quantity::milli_value)
    }

    /// Memory in bytes (0 when absent).
    pub fn memory(&self) -> i64 {
        self.get(MEMORY).map_or(0, Quantity::value)
    }

    /// Adds every entry of `other` (upstream `addResourceList`).
    pub fn add(&mut self, other: &ResourceList) {
        for (k, v) in &other.0 {
            let e = self.0.entry(k.clone()).or_insert(Quantity::ZERO);
            *e = e.add(v);
        }
    }

    /// Subtracts every entry of `other` (missing entries count as zero; results may be negative).
    pub fn sub(&mut self, other: &ResourceList) {
        for (k, v) in &other.0 {
            let e = self.0.entry(k.clone()).or_insert(Quantity::ZERO);
            *e = e.sub(v);
        }
    }

    /// Raises each entry to `other`'s where that is larger (upstream `maxResourceList`).
    pub fn max_with(&mut self, other: &ResourceList) {
        for (k, v) in &other.0 {
            match self.0.get_mut(k) {
                Some(cur) if *cur >= *v => {}
                Some(cur) => *cur = *v,
                None => {
                    self.0.insert(k.clone(), *v);
                }
            }
        }
    }

    /// Adds `other`'s entries only for resources already present (how overhead joins limits).
    fn add_existing(&mut self, other: &ResourceList) {
        for (k, v) in &other.0 {
            if let Some(cur) = self.0.get_mut(k) {
                *cur = cur.add(v);
            }
        }
    }

    /// Entries of `defaults` that are missing here are filled in (upstream `applyNonMissing`).
    fn with_non_missing(&self, defaults: &ResourceList) -> ResourceList {
        let mut out = self.clone();
        for (k, v) in &defaults.0 {
            out.0.entry(k.clone()).or_insert(*v);
        }
        out
    }
}

impl fmt::Display for ResourceList {
    /// `cpu=500m,memory=1Gi`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl FromIterator<(String, Quantity)> for ResourceList {
    fn from_iter<T: IntoIterator<Item = (String, Quantity)>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// A quantity in a resource map does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {value:?} for resource {resource}: {message}")]
pub struct InvalidQuantity {
    /// Resource name.
    pub resource: String,
    /// The text.
    pub value: String,
    /// Why it is invalid.
    pub message: String,
}

/// Options of [`pod_requests_with`] / [`pod_limits_with`] (upstream `PodResourcesOptions`).
#[derive(Debug, Clone, Default)]
pub struct PodResourcesOptions {
    /// Leave `spec.overhead` out.
    pub exclude_overhead: bool,
    /// Values used for containers that do not set a resource listed here (the scheduler's
    /// non-zero defaults: 100m CPU, 200Mi memory).
    pub non_missing_container_requests: Option<ResourceList>,
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn aggregate<E>(
    spec: &PodSpec,
    opts: &PodResourcesOptions,
    pick: impl Fn(&Container) -> Result<ResourceList, E>,
) -> Result<ResourceList, E> {
    let get = |c: &Container| {
        let r = pick(c)?;
        Ok(match &opts.non_missing_container_requests {
            Some(d) => r.with_non_missing(d),
            None => r,
        })
    };
    let mut total = ResourceList::new();
    for c in &spec.containers {
        total.add(&get(c)?);
    }
    let mut sidecars = ResourceList::new();
    let mut init_max = ResourceList::new();
    for c in spec.init_containers.iter().flatten() {
        let r = get(c)?;
        if is_sidecar(c) {
            total.add(&r);
            sidecars.add(&r);
            init_max.max_with(&sidecars);
        } else {
            let mut tmp = r;
            tmp.add(&sidecars);
            init_max.max_with(&tmp);
        }
    }
    total.max_with(&init_max);
    Ok(total)
}

fn requests_of(c: &Container) -> Option<&BTreeMap<String, K8sQuantity>> {
    c.resources.as_ref().and_then(|r| r.requests.as_ref())
}

/// Effective resource requests of a pod, overhead included (upstream `PodRequests` with
/// default options).
pub fn pod_requests(spec: &PodSpec) -> ResourceList {
    pod_requests_with(spec, &PodResourcesOptions::default())
}

/// [`pod_requests`] with options.
pub fn pod_requests_with(spec: &PodSpec, opts: &PodResourcesOptions) -> ResourceList {
    let Ok(mut reqs) = aggregate(spec, opts, |c| {
        Ok::<_, std::convert::Infallible>(ResourceList::from_k8s_opt(requests_of(c)))
    });
    if !opts.exclude_overhead {
        if let Some(o) = &spec.overhead {
            reqs.add(&ResourceList::from_k8s(o));
        }
    }
    reqs
}

/// [`pod_requests_with`] that fails on an unparsable quantity (in a container, an init
/// container or `spec.overhead`) instead of skipping it.
pub fn try_pod_requests_with(
    spec: &PodSpec,
    opts: &PodResourcesOptions,
) -> Result<ResourceList, InvalidQuantity> {
    let mut reqs = aggregate(spec, opts, |c| {
        ResourceList::try_from_k8s_opt(requests_of(c))
    })?;
    if !opts.exclude_overhead {
        if let Some(o) = &spec.overhead {
            reqs.add(&ResourceList::try_from_k8s(o)?);
        }
    }
    Ok(reqs)
}

/// Effective resource limits of a pod (upstream `PodLimits`): same aggregation over limits;
/// overhead is added only to resources that have a limit.
pub fn pod_limits(spec: &PodSpec) -> ResourceList {
    pod_limits_with(spec, &PodResourcesOptions::default())
}

/// [`pod_limits`] with options (`non_missing_container_requests` is ignored for limits).
pub fn pod_limits_with(spec: &PodSpec, opts: &PodResourcesOptions) -> ResourceList {
    let no_defaults = PodResourcesOptions {
        exclude_overhead: opts.exclude_overhead,
        non_missing_container_requests: None,
    };
    let Ok(mut limits) = aggregate(spec, &no_defaults, |c| {
        Ok::<_, std::convert::Infallible>(ResourceList::from_k8s_opt(
            c.resources.as_ref().and_then(|r| r.limits.as_ref()),
        ))
    });
    if !opts.exclude_overhead {
        if let Some(o) = &spec.overhead {
            limits.add_existing(&ResourceList::from_k8s(o));
        }
    }
    limits
}

/// A PersistentVolumeClaim's `spec.resources.requests.storage`, parsed (`None`: absent or not a
/// quantity); the one reading of it for validation, the volume binder and the scheduler.
pub fn claim_storage_request(
    c: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
) -> Option<crate::quantity::Quantity> {
    let q = c
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    crate::quantity::Quantity::try_from(q).ok()
}

/// QoS class (upstream `pkg/apis/core/v1/helper/qos.GetPodQOS`): BestEffort when nothing is
/// requested or limited; Guaranteed when every container limits both cpu and memory and the
/// summed requests equal the summed limits; else Burstable.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let supported = |n: &str| n == "cpu" || n == "memory";
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        let r = c.resources.as_ref();
        for (n, q) in r.and_then(|r| r.requests.as_ref()).into_iter().flatten() {
            if let Ok(q) = Quantity::try_from(q) {
                if supported(n) && q > Quantity::default() {
                    let e = requests.entry(n.clone()).or_default();
                    *e = e.add(&q);
                }
            }
        }
        let mut found = 0;
        for (n, q) in r.and_then(|r| r.limits.as_ref()).into_iter().flatten() {
            if let Ok(q) = Quantity::try_from(q) {
                if supported(n) && q > Quantity::default() {
                    found += 1;
                    let e = limits.entry(n.clone()).or_default();
                    *e = e.add(&q);
                }
            }
        }
        if found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(n, q)| limits.get(n) == Some(q))
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn rl(pairs: &[(&str, &str)]) -> BTreeMap<String, K8sQuantity> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), K8sQuantity(v.to_string())))
            .collect()
    }

    fn c(req: &[(&str, &str)], lim: &[(&str, &str)], sidecar: bool) -> Container {
        Container {
            name: "c".into(),
            restart_policy: sidecar.then(|| "Always".to_string()),
            resources: Some(ResourceRequirements {
                requests: Some(rl(req)),
                limits: Some(rl(lim)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn show(r: &ResourceList) -> String {
        r.to_string()
    }

    /// Cases after upstream helpers_test.go TestPodRequestsAndLimits / sidecar KEP-753 examples.
    #[test]
    fn requests_table() {
        struct Case {
            name: &'static str,
            containers: Vec<Container>,
            init: Vec<Container>,
            overhead: &'static [(&'static str, &'static str)],
            want: &'static str,
        }
        let cases = vec![
            Case {
                name: "sum of containers",
                containers: vec![
                    c(&[("cpu", "1"), ("memory", "1Gi")], &[], false),
                    c(&[("cpu", "500m")], &[], false),
                ],
                init: vec![],
                overhead: &[],
                want: "cpu=1500m,memory=1Gi",
            },
            Case {
                name: "init container max wins",
                containers: vec![c(&[("cpu", "1")], &[], false)],
                init: vec![
                    c(&[("cpu", "2")], &[], false),
                    c(&[("cpu", "1500m"), ("memory", "1Mi")], &[], false),
                ],
                overhead: &[],
                want: "cpu=2,memory=1Mi",
            },
            Case {
                name: "sidecar adds to containers and to later init containers",
                containers: vec![c(&[("cpu", "1")], &[], false)],
                init: vec![
                    c(&[("cpu", "500m")], &[], true),
                    c(&[("cpu", "2")], &[], false),
                ],
                overhead: &[],
                // init 2 runs beside the 500m sidecar: 2.5 > 1 + 0.5.
                want: "cpu=2500m",
            },
            Case {
                name: "sidecar after init container",
                containers: vec![c(&[("cpu", "1")], &[], false)],
                init: vec![
                    c(&[("cpu", "1200m")], &[], false),
                    c(&[("cpu", "500m")], &[], true),
                ],
                overhead: &[],
                want: "cpu=1500m",
            },
            Case {
                name: "overhead added",
                containers: vec![c(&[("cpu", "1")], &[], false)],
                init: vec![],
                overhead: &[("cpu", "250m"), ("memory", "120Mi")],
                want: "cpu=1250m,memory=120Mi",
            },
        ];
        for case in cases {
            let spec = PodSpec {
                containers: case.containers,
                init_containers: Some(case.init),
                overhead: (!case.overhead.is_empty()).then(|| rl(case.overhead)),
                ..Default::default()
            };
            assert_eq!(show(&pod_requests(&spec)), case.want, "{}", case.name);
        }
    }

    #[test]
    fn limits_and_non_missing() {
        let spec = PodSpec {
            containers: vec![
                c(&[], &[("cpu", "1")], false),
                c(&[("cpu", "200m")], &[], false),
            ],
            overhead: Some(rl(&[("cpu", "100m"), ("memory", "10Mi")])),
            ..Default::default()
        };
        // Overhead joins only limits that exist.
        assert_eq!(show(&pod_limits(&spec)), "cpu=1100m");
        let opts = PodResourcesOptions {
            exclude_overhead: true,
            non_missing_container_requests: Some(
                ResourceList::new()
                    .with("cpu", "100m")
                    .unwrap()
                    .with("memory", "200Mi")
                    .unwrap(),
            ),
        };
        assert_eq!(
            show(&pod_requests_with(&spec, &opts)),
            "cpu=300m,memory=400Mi"
        );
    }

    #[test]
    fn arithmetic() {
        let mut a = ResourceList::new().with("cpu", "1").unwrap();
        a.sub(
            &ResourceList::new()
                .with("cpu", "1500m")
                .unwrap()
                .with("memory", "1Gi")
                .unwrap(),
        );
        assert_eq!(a.to_string(), "cpu=-500m,memory=-1Gi");
        assert_eq!(a.milli_cpu(), -500);
        assert_eq!(a.to_k8s()["memory"].0, "-1Gi");
    }

    #[test]
    fn strict_requests_report_the_bad_quantity() {
        let spec = PodSpec {
            containers: vec![c(&[("cpu", "1")], &[], false)],
            init_containers: Some(vec![c(&[("memory", "lots")], &[], false)]),
            ..Default::default()
        };
        let e = try_pod_requests_with(&spec, &PodResourcesOptions::default()).unwrap_err();
        assert_eq!((e.resource.as_str(), e.value.as_str()), ("memory", "lots"));
        // The lenient form skips it.
        assert_eq!(show(&pod_requests(&spec)), "cpu=1");
        let overhead = PodSpec {
            overhead: Some(rl(&[("cpu", "1x")])),
            ..Default::default()
        };
        assert!(try_pod_requests_with(&overhead, &PodResourcesOptions::default()).is_err());
    }
}
