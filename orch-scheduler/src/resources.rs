//! [`Resources`]: a resource vector in packed integers (milli-CPU, bytes, counts), the form every
//! hot-path computation uses. The pod request rules (init containers as max, sidecars,
//! overhead, non-zero defaults; upstream `resourcehelper.PodRequests`) live in
//! [`orch_types::resources`]; [`pod_requests`] runs them once per pod and packs the results.

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as WireQuantity;
use orch_types::quantity::{Format, Quantity};
pub use orch_types::resources::InvalidQuantity;
use orch_types::resources::{try_pod_requests_with, PodResourcesOptions, ResourceList};
pub use orch_types::resources::{CPU, EPHEMERAL_STORAGE, MEMORY, PODS};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

/// CPU assumed for a container without a CPU request when scoring (upstream
/// `schedutil.DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container without a memory request when scoring (200 MiB, upstream
/// `schedutil.DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// A resource vector: CPU in milli-cores, memory and ephemeral storage in bytes, allowed pod
/// count, and scalar (extended, hugepages) resources by name in whole units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// CPU, milli-cores.
    pub milli_cpu: i64,
    /// Memory, bytes.
    pub memory: i64,
    /// Ephemeral storage, bytes.
    pub ephemeral_storage: i64,
    /// Allowed pods (allocatable only).
    pub allowed_pods: i64,
    /// Scalar resources sorted by name.
    pub scalar: Vec<(Arc<str>, i64)>,
}

impl Resources {
    /// From a wire resource list (node allocatable or container requests).
    pub fn from_list(list: &BTreeMap<String, WireQuantity>) -> Result<Self, InvalidQuantity> {
        ResourceList::try_from_k8s(list).map(|l| Self::pack(&l))
    }

    /// Packs a parsed resource list into integers.
    pub fn pack(list: &ResourceList) -> Self {
        let mut r = Resources::default();
        for (name, q) in list.iter() {
            r.set(name, q);
        }
        r
    }

    fn set(&mut self, name: &str, q: &Quantity) {
        match name {
            CPU => self.milli_cpu = q.milli_value(),
            MEMORY => self.memory = q.value(),
            EPHEMERAL_STORAGE => self.ephemeral_storage = q.value(),
            PODS => self.allowed_pods = q.value(),
            _ if is_scalar_resource(name) => self.set_scalar(name, q.value()),
            _ => {}
        }
    }

    /// The amount of a scalar resource (0 when absent).
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .iter()
            .find(|(n, _)| &**n == name)
            .map_or(0, |(_, v)| *v)
    }

    /// The amount of any resource by name.
    pub fn get(&self, name: &str) -> i64 {
        match name {
            CPU => self.milli_cpu,
            MEMORY => self.memory,
            EPHEMERAL_STORAGE => self.ephemeral_storage,
            PODS => self.allowed_pods,
            _ => self.scalar(name),
        }
    }

    fn set_scalar(&mut self, name: &str, v: i64) {
        match self.scalar.binary_search_by(|(n, _)| (**n).cmp(name)) {
            Ok(i) => self.scalar[i].1 = v,
            Err(i) => self.scalar.insert(i, (Arc::from(name), v)),
        }
    }

    fn entry(&mut self, name: &Arc<str>) -> &mut i64 {
        let i = match self.scalar.binary_search_by(|(n, _)| (**n).cmp(name)) {
            Ok(i) => i,
            Err(i) => {
                self.scalar.insert(i, (name.clone(), 0));
                i
            }
        };
        &mut self.scalar[i].1
    }

    /// Adds `other` (all fields).
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        for (n, v) in &other.scalar {
            *self.entry(n) += *v;
        }
    }

    /// Subtracts `other` (all fields).
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        for (n, v) in &other.scalar {
            *self.entry(n) -= *v;
        }
    }

    /// Per-dimension maximum.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (n, v) in &other.scalar {
            let e = self.entry(n);
            *e = (*e).max(*v);
        }
    }

    /// True when nothing is requested.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }
}

/// Scalar resources: extended resources (`domain/name` outside `kubernetes.io/`), `hugepages-*`
/// and `attachable-volumes-*` (upstream `schedutil.IsScalarResourceName`).
pub fn is_scalar_resource(name: &str) -> bool {
    is_extended_resource(name)
        || name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
}

/// Extended resources: fully qualified, not in the `kubernetes.io/` namespace, not `requests.`.
pub fn is_extended_resource(name: &str) -> bool {
    name.contains('/')
        && !name.starts_with("kubernetes.io/")
        && !name.contains(".kubernetes.io/")
        && !name.starts_with("requests.")
}

/// A pod's requests as the scheduler sees them, in the two flavours it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodRequests {
    /// Actual requests (filter, node accounting).
    pub requested: Resources,
    /// Requests with missing CPU/memory defaulted to 100m/200Mi per container (scoring).
    pub non_zero: Resources,
}

/// The options of the non-zero flavour: missing CPU/memory container requests count as
/// 100m/200Mi (upstream `NonMissingContainerRequests` in `noderesources`).
static NON_ZERO: LazyLock<PodResourcesOptions> = LazyLock::new(|| {
    let mut d = ResourceList::new();
    d.insert(CPU, Quantity::from_milli(DEFAULT_MILLI_CPU_REQUEST));
    d.insert(
        MEMORY,
        Quantity::from_value(DEFAULT_MEMORY_REQUEST, Format::BinarySI),
    );
    PodResourcesOptions {
        exclude_overhead: false,
        non_missing_container_requests: Some(d),
    }
});

/// Computes a pod's requests with [`orch_types::resources::try_pod_requests_with`] and packs
/// both flavours.
///
/// ```
/// use k8s_openapi::api::core::v1::PodSpec;
/// let spec: PodSpec = serde_json::from_value(serde_json::json!({
///   "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}],
///   "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]
/// })).unwrap();
/// let r = orch_scheduler::resources::pod_requests(&spec).unwrap();
/// assert_eq!(r.requested.milli_cpu, 2000);
/// assert_eq!(r.non_zero.memory, 200 * 1024 * 1024);
/// ```
pub fn pod_requests(spec: &PodSpec) -> Result<PodRequests, InvalidQuantity> {
    let requested = Resources::pack(&try_pod_requests_with(
        spec,
        &PodResourcesOptions::default(),
    )?);
    // When every container requests CPU and memory the defaults change nothing.
    let all_set = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .all(|c| {
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .is_some_and(|r| r.contains_key(CPU) && r.contains_key(MEMORY))
        });
    let non_zero = if all_set {
        requested.clone()
    } else {
        Resources::pack(&try_pod_requests_with(spec, &NON_ZERO)?)
    };
    Ok(PodRequests {
        requested,
        non_zero,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn init_containers_are_max_and_overhead_adds() {
        let s = spec(json!({
            "containers": [
                {"name": "c1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                {"name": "c2", "resources": {"requests": {"cpu": "1", "memory": "1G"}}}],
            "initContainers": [
                {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                {"name": "i2", "resources": {"requests": {"cpu": "2", "memory": "3G"}}}],
            "overhead": {"cpu": "100m"}
        }));
        let r = pod_requests(&s).unwrap();
        assert_eq!(r.requested.milli_cpu, 3100);
        assert_eq!(r.requested.memory, 3_000_000_000);
    }

    #[test]
    fn sidecars_add_to_sum_and_later_init_peaks() {
        let s = spec(json!({
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
                {"name": "i", "resources": {"requests": {"cpu": "3"}}}]
        }));
        // sum = 1 + 1 (sidecar) = 2; init peak = 3 + 1 (running sidecar) = 4.
        assert_eq!(pod_requests(&s).unwrap().requested.milli_cpu, 4000);
    }

    #[test]
    fn non_zero_defaults_only_missing_requests() {
        let s = spec(json!({"containers": [
            {"name": "a"},
            {"name": "b", "resources": {"requests": {"cpu": "0", "nvidia.com/gpu": "1"}}}]}));
        let r = pod_requests(&s).unwrap();
        assert_eq!(r.non_zero.milli_cpu, 100);
        assert_eq!(r.non_zero.memory, 2 * DEFAULT_MEMORY_REQUEST);
        assert_eq!(r.requested.milli_cpu, 0);
        assert_eq!(r.requested.scalar("nvidia.com/gpu"), 1);
    }

    #[test]
    fn bad_quantity_is_an_error() {
        let s =
            spec(json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "x"}}}]}));
        let e = pod_requests(&s).unwrap_err();
        assert_eq!(e.resource, "cpu");
    }
}
