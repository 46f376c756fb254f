//! The resource metrics API objects, `metrics.k8s.io/v1beta1` `NodeMetrics` and `PodMetrics`
//! (not in k8s-openapi): what the API server serves for `kubectl top` and what the
//! HorizontalPodAutoscaler reads. Shapes as upstream
//! `staging/src/k8s.io/metrics/pkg/apis/metrics/v1beta1/types.go`.
//!
//! ```
//! use orch_types::metrics::PodMetrics;
//! let m: PodMetrics = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "web-1", "namespace": "default"},
//!     "timestamp": "2025-01-01T00:00:00Z", "window": "10s",
//!     "containers": [{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}}],
//! })).unwrap();
//! assert_eq!(m.usage_millis("cpu"), Some(250));
//! ```

use crate::quantity::Quantity as Fixed;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The API group.
pub const GROUP: &str = "metrics.k8s.io";
/// The served version.
pub const VERSION: &str = "v1beta1";

/// Usage by resource name (`cpu`, `memory`).
pub type Usage = BTreeMap<String, Quantity>;

/// A node's usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeMetrics {
    /// The node's name and labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// When the figures were sampled (the end of `window`).
    pub timestamp: Time,
    /// The interval the figures were measured over (a Go duration, `10s`).
    pub window: String,
    /// The node's usage.
    #[serde(default)]
    pub usage: Usage,
}

/// A pod's usage, per container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodMetrics {
    /// The pod's name, namespace and labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// When the figures were sampled (the end of `window`).
    pub timestamp: Time,
    /// The interval the figures were measured over (a Go duration, `10s`).
    pub window: String,
    /// One entry per container with figures.
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

/// One container's usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerMetrics {
    /// Container name.
    pub name: String,
    /// Its usage.
    #[serde(default)]
    pub usage: Usage,
}

impl PodMetrics {
    /// The pod's total use of `resource` in milli-units (CPU in millicores, memory in
    /// thousandths of a byte), summed over its containers; `None` if a container lacks it
    /// (upstream's metrics client leaves such a pod out, as a pod without figures).
    pub fn usage_millis(&self, resource: &str) -> Option<i64> {
        let mut sum = 0i64;
        for c in &self.containers {
            sum = sum.saturating_add(milli_value(c.usage.get(resource)?)?);
        }
        Some(sum)
    }
}

/// A quantity's value in thousandths, rounded up (upstream `Quantity.MilliValue`); `None` if
/// it does not parse.
pub fn milli_value(q: &Quantity) -> Option<i64> {
    q.0.parse::<Fixed>().ok().map(|f| f.milli_value())
}

macro_rules! metrics_kind {
    ($t:ty, $kind:literal, $plural:literal, $scope:ty) => {
        impl k8s_openapi::Resource for $t {
            const API_VERSION: &'static str = "metrics.k8s.io/v1beta1";
            const GROUP: &'static str = GROUP;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = VERSION;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = $scope;
        }
        impl k8s_openapi::ListableResource for $t {
            const LIST_KIND: &'static str = concat!($kind, "List");
        }
        impl k8s_openapi::Metadata for $t {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

metrics_kind!(
    NodeMetrics,
    "NodeMetrics",
    "nodes",
    k8s_openapi::ClusterResourceScope
);
metrics_kind!(
    PodMetrics,
    "PodMetrics",
    "pods",
    k8s_openapi::NamespaceResourceScope
);

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: serde_json::Value) -> PodMetrics {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "timestamp": "2025-01-01T00:00:00Z", "window": "10s",
            "containers": containers,
        }))
        .unwrap()
    }

    #[test]
    fn usage_sums_containers_in_millis() {
        let m = pod(serde_json::json!([
            {"name": "a", "usage": {"cpu": "250m", "memory": "1Ki"}},
            {"name": "b", "usage": {"cpu": "1", "memory": "1Ki"}},
        ]));
        assert_eq!(m.usage_millis("cpu"), Some(1250));
        assert_eq!(m.usage_millis("memory"), Some(2 * 1024 * 1000));
    }

    #[test]
    fn a_container_without_the_resource_means_no_figure() {
        let m = pod(serde_json::json!([
            {"name": "a", "usage": {"cpu": "250m"}},
            {"name": "b", "usage": {"memory": "1Ki"}},
        ]));
        assert_eq!(m.usage_millis("cpu"), None);
    }

    #[test]
    fn nanocores_round_up_to_a_millicore() {
        let m = pod(serde_json::json!([{"name": "a", "usage": {"cpu": "1500001n"}}]));
        assert_eq!(m.usage_millis("cpu"), Some(2));
    }
}
