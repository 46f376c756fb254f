//! The in-tree plugins, one module each, with upstream names, reasons and default weights.

pub mod default_preemption;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod priority_sort;
pub mod scheduling_gates;
pub mod taint_toleration;
#[cfg(test)]
pub(crate) mod testutil;
pub mod volume_binding;

use crate::framework::DefaultBinder;
use crate::profile::{Factory, PluginHandle};
use std::sync::Arc;

fn args<T: serde::de::DeserializeOwned + Default>(v: &serde_json::Value) -> Result<T, String> {
    if v.is_null() {
        return Ok(T::default());
    }
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn no_args(v: &serde_json::Value) -> Result<(), String> {
    match v {
        serde_json::Value::Null => Ok(()),
        serde_json::Value::Object(m) if m.keys().all(|k| k == "apiVersion" || k == "kind") => {
            Ok(())
        }
        _ => Err("this plugin takes no args".into()),
    }
}

/// `(name, factory)` of every in-tree plugin.
pub fn in_tree() -> Vec<(&'static str, Factory)> {
    vec![
        ("PrioritySort", |a| {
            no_args(a)?;
            Ok(PluginHandle {
                name: priority_sort::PrioritySort::NAME,
                queue_sort: Some(Arc::new(priority_sort::PrioritySort)),
                ..Default::default()
            })
        }),
        ("SchedulingGates", |a| {
            no_args(a)?;
            Ok(PluginHandle {
                name: scheduling_gates::SchedulingGates::NAME,
                pre_enqueue: Some(Arc::new(scheduling_gates::SchedulingGates)),
                ..Default::default()
            })
        }),
        ("NodeUnschedulable", |a| {
            no_args(a)?;
            Ok(PluginHandle {
                name: node_unschedulable::NodeUnschedulable::NAME,
                filter: Some(Arc::new(node_unschedulable::NodeUnschedulable)),
                ..Default::default()
            })
        }),
        ("NodeName", |a| {
            no_args(a)?;
            Ok(PluginHandle {
                name: node_name::NodeName::NAME,
                filter: Some(Arc::new(node_name::NodeName)),
                ..Default::default()
            })
        }),
        ("TaintToleration", |a| {
            no_args(a)?;
            let p = Arc::new(taint_toleration::TaintToleration);
            Ok(PluginHandle {
                name: taint_toleration::TaintToleration::NAME,
                default_weight: 3,
                filter: Some(p.clone()),
                pre_score: Some(p.clone()),
                score: Some(p),
                ..Default::default()
            })
        }),
        ("NodeAffinity", |a| {
            #[derive(serde::Deserialize, Default)]
            #[serde(rename_all = "camelCase", deny_unknown_fields)]
            struct NodeAffinityArgs {
                added_affinity: Option<k8s_openapi::api::core::v1::NodeAffinity>,
            }
            let a: NodeAffinityArgs = args(a)?;
            let p = Arc::new(
                node_affinity::NodeAffinity::new(a.added_affinity.as_ref())
                    .map_err(|e| e.to_string())?,
            );
            Ok(PluginHandle {
                name: node_affinity::NodeAffinity::NAME,
                default_weight: 2,
                pre_filter: Some(p.clone()),
                filter: Some(p.clone()),
                pre_score: Some(p.clone()),
                score: Some(p),
                ..Default::default()
            })
        }),
        ("NodePorts", |a| {
            no_args(a)?;
            let p = Arc::new(node_ports::NodePorts);
            Ok(PluginHandle {
                name: node_ports::NodePorts::NAME,
                pre_filter: Some(p.clone()),
                filter: Some(p),
                ..Default::default()
            })
        }),
        ("NodeResourcesFit", |a| {
            let a: node_resources::FitArgs = args(a)?;
            let p = Arc::new(node_resources::Fit::new(&a));
            Ok(PluginHandle {
                name: node_resources::Fit::NAME,
                default_weight: 1,
                filter: Some(p.clone()),
                score: Some(p),
                ..Default::default()
            })
        }),
        ("NodeResourcesBalancedAllocation", |a| {
            let a: node_resources::BalancedArgs = args(a)?;
            let p = Arc::new(node_resources::BalancedAllocation::new(&a));
            Ok(PluginHandle {
                name: node_resources::BalancedAllocation::NAME,
                default_weight: 1,
                pre_score: Some(p.clone()),
                score: Some(p),
                ..Default::default()
            })
        }),
        ("ImageLocality", |a| {
            no_args(a)?;
            Ok(PluginHandle {
                name: image_locality::ImageLocality::NAME,
                default_weight: 1,
                score: Some(Arc::new(image_locality::ImageLocality)),
                ..Default::default()
            })
        }),
        ("VolumeBinding", |a| {
            /// Upstream `VolumeBindingArgs`; orch binds through its PV controller, so the
            /// bind timeout and the capacity scoring shape are accepted and unused.
            #[derive(serde::Deserialize, Default)]
            #[serde(rename_all = "camelCase", deny_unknown_fields)]
            struct VolumeBindingArgs {
                #[allow(dead_code)]
                bind_timeout_seconds: Option<i64>,
                #[allow(dead_code)]
                shape: Option<serde_json::Value>,
            }
            let _: VolumeBindingArgs = args(a)?;
            let p = Arc::new(volume_binding::VolumeBinding);
            Ok(PluginHandle {
                name: volume_binding::VolumeBinding::NAME,
                pre_filter: Some(p.clone()),
                filter: Some(p),
                ..Default::default()
            })
        }),
        ("PodTopologySpread", |a| {
            let _: pod_topology_spread::PodTopologySpreadArgs = args(a)?;
            let p = Arc::new(pod_topology_spread::PodTopologySpread::default());
            Ok(PluginHandle {
                name: pod_topology_spread::PodTopologySpread::NAME,
                default_weight: 2,
                pre_filter: Some(p.clone()),
                filter: Some(p.clone()),
                pre_score: Some(p.clone()),
                score: Some(p),
                ..Default::default()
            })
        }),
        ("InterPodAffinity", |a| {
            let a: inter_pod_affinity::InterPodAffinityArgs = args(a)?;
            let p = Arc::new(inter_pod_affinity::InterPodAffinity::new(a));
            Ok(PluginHandle {
                name: inter_pod_affinity::InterPodAffinity::NAME,
                default_weight: 2,
                pre_filter: Some(p.clone()),
                filter: Some(p.clone()),
                pre_score: Some(p.clone()),
                score: Some(p),
                ..Default::default()
            })
        }),
        ("DefaultPreemption", |a| {
            let a: default_preemption::DefaultPreemptionArgs = args(a)?;
            Ok(PluginHandle {
                name: default_preemption::DefaultPreemption::NAME,
                post_filter: Some(Arc::new(default_preemption::DefaultPreemption::new(a))),
                ..Default::default()
            })
        }),
        ("DefaultBinder", |a| {
            no_args(a)?;
            Ok(PluginHandle {
                name: DefaultBinder::NAME,
                bind: Some(Arc::new(DefaultBinder)),
                ..Default::default()
            })
        }),
    ]
}
