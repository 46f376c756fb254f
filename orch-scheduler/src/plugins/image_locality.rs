//! ImageLocality: prefers nodes that already have the pod's images, scaled by how widely the
//! image is spread (upstream `imagelocality`).

use crate::cycle_state::CycleState;
use crate::framework::{Plugin, ScorePlugin, MAX_NODE_SCORE};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::snapshot::Snapshot;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// The plugin.
#[derive(Debug, Default)]
pub struct ImageLocality;

impl ImageLocality {
    /// Registry name.
    pub const NAME: &'static str = "ImageLocality";
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

fn calculate_priority(sum: i64, num_containers: usize) -> i64 {
    let max_threshold = MAX_CONTAINER_THRESHOLD * num_containers as i64;
    let sum = sum.clamp(MIN_THRESHOLD, max_threshold.max(MIN_THRESHOLD));
    if max_threshold <= MIN_THRESHOLD {
        return 0;
    }
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
}

impl ScorePlugin for ImageLocality {
    #[inline]
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, snap: &Snapshot) -> i64 {
        if node.images.is_empty() {
            return 0;
        }
        let total = snap.len().max(1) as f64;
        let mut sum = 0i64;
        for img in &pod.images {
            if let Some(size) = node.images.get(img) {
                let spread = f64::from(snap.image_num_nodes(img)) / total;
                sum += (*size as f64 * spread) as i64;
            }
        }
        calculate_priority(sum, pod.num_containers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::pod;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    #[test]
    fn score_table() {
        // TestImageLocalityPriority "two images spread on two nodes, prefer the larger image one":
        // node1 has gcr.io/40:latest (40MB) and gcr.io/300:latest (300MB), node2 has 250MB image.
        let mk = |name: &str, imgs: serde_json::Value| -> Node {
            serde_json::from_value(json!({"metadata": {"name": name}, "status": {"images": imgs}}))
                .unwrap()
        };
        let mut snap = Snapshot::new();
        snap.upsert_node(mk(
            "node1",
            json!([
            {"names": ["gcr.io/40:latest", "gcr.io/40:v1"], "sizeBytes": 40 * MB},
            {"names": ["gcr.io/300:latest", "gcr.io/300:v1"], "sizeBytes": 300 * MB}]),
        ))
        .unwrap();
        snap.upsert_node(mk(
            "node2",
            json!([
            {"names": ["gcr.io/250:latest"], "sizeBytes": 250 * MB},
            {"names": ["gcr.io/10:latest", "gcr.io/10:v1"], "sizeBytes": 10 * MB}]),
        ))
        .unwrap();
        let p = pod(
            json!({"containers": [{"name": "a", "image": "gcr.io/40"}, {"name": "b", "image": "gcr.io/300"}]}),
        );
        let st = CycleState::default();
        // node1: (40+300)MB * 1/2 = 170MB -> 100*(170-23)/(2000-23) = 7; node2: 0.
        assert_eq!(ImageLocality.score(&st, &p, snap.node(0), &snap), 7);
        assert_eq!(ImageLocality.score(&st, &p, snap.node(1), &snap), 0);
        let p2 = pod(json!({"containers": [{"name": "a", "image": "gcr.io/250"}]}));
        // node2: 250MB * 1/2 = 125MB -> 100*(125-23)/(1000-23) = 10.
        assert_eq!(ImageLocality.score(&st, &p2, snap.node(1), &snap), 10);
    }
}
