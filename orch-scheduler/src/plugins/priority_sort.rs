//! PrioritySort: higher priority first, then earlier queue timestamp (upstream `queuesort`).

use crate::framework::{Plugin, QueueSortPlugin};
use crate::queue::QueuedPod;

/// The plugin.
#[derive(Debug, Default)]
pub struct PrioritySort;

impl PrioritySort {
    /// Registry name.
    pub const NAME: &'static str = "PrioritySort";
}

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        Self::NAME
    }
}

impl QueueSortPlugin for PrioritySort {
    fn less(&self, a: &QueuedPod, b: &QueuedPod) -> bool {
        let (pa, pb) = (a.pod.priority, b.pod.priority);
        pa > pb || (pa == pb && a.timestamp < b.timestamp)
    }
}
