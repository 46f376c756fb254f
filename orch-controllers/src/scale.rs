//! The scale of a workload read from the caches: what `GET …/scale` answers for the built-in
//! kinds that have the subresource (ReplicationController, ReplicaSet, Deployment,
//! StatefulSet). The disruption controller counts expected pods with it; the
//! HorizontalPodAutoscaler reads its target's replicas and pod selector with it and writes
//! through the scale subresource itself.
//!
//! Not modelled: custom resources with a scale subresource (their scale is not in any cache;
//! [`Workloads::scale`] answers `Ok(None)` for them, as for a missing object).

use crate::selector::{from_label_selector, from_map, Selector};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use orch_runtime::controller::Caches;
use orch_runtime::object::uid;
use orch_runtime::store::Store;
use orch_types::registry::{by_group_kind, ApiResource};

/// The caches of the kinds with a scale subresource (upstream's listers of the disruption
/// controller's `finders()`).
#[derive(Debug, Clone)]
pub struct Workloads {
    /// ReplicationControllers.
    pub replication_controllers: Store<ReplicationController>,
    /// ReplicaSets.
    pub replica_sets: Store<ReplicaSet>,
    /// Deployments.
    pub deployments: Store<Deployment>,
    /// StatefulSets.
    pub stateful_sets: Store<StatefulSet>,
}

/// An autoscaling/v1 `Scale`, as the API server would compute it from the object.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    /// The object's resource (where its `scale` subresource is).
    pub resource: ApiResource,
    /// The object's UID.
    pub uid: String,
    /// `spec.replicas` (1 when unset, as defaulting makes it).
    pub replicas: i32,
    /// `status.replicas`.
    pub status_replicas: i32,
    /// The pod selector `status.selector` carries; an error when it is empty (a scale with
    /// no selector cannot be autoscaled) or invalid.
    pub selector: Result<Selector, String>,
}

fn label_selector(sel: Option<&LabelSelector>) -> Result<Selector, String> {
    let empty = sel.is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    });
    if empty {
        return Err("selector is required".into());
    }
    from_label_selector(sel).map_err(|e| e.to_string())
}

fn scale<K: k8s_openapi::Resource>(
    m: &ObjectMeta,
    replicas: Option<i32>,
    status: i32,
    selector: Result<Selector, String>,
) -> Scale
where
    K::Scope: 'static,
{
    Scale {
        resource: ApiResource::of::<K>(),
        uid: uid(m).to_string(),
        replicas: replicas.unwrap_or(1),
        status_replicas: status,
        selector,
    }
}

impl Workloads {
    /// The stores of `caches` (declare them with `reads` in the controller's `watches`).
    pub fn from_caches(caches: &Caches) -> Self {
        Self {
            replication_controllers: caches.get(),
            replica_sets: caches.get(),
            deployments: caches.get(),
            stateful_sets: caches.get(),
        }
    }

    /// The scale of `kind` `name` in `ns` (API group `group`); `Ok(None)` when it is not in
    /// the caches; an error naming the resource when a built-in kind has no scale subresource
    /// (a Job, a DaemonSet), as upstream's `implementsScale`.
    pub fn scale(
        &self,
        group: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> Result<Option<Scale>, String> {
        Ok(match (group, kind) {
            ("", "ReplicationController") => self
                .replication_controllers
                .get_in(Some(ns), name)
                .map(|rc| {
                    let spec = rc.spec.as_ref();
                    let sel = spec.and_then(|s| s.selector.as_ref());
                    let selector = match sel {
                        Some(m) if !m.is_empty() => Ok(from_map(Some(m))),
                        _ => Err("selector is required".into()),
                    };
                    let status = rc.status.as_ref().map_or(0, |s| s.replicas);
                    scale::<ReplicationController>(
                        &rc.metadata,
                        spec.and_then(|s| s.replicas),
                        status,
                        selector,
                    )
                }),
            ("apps" | "extensions", "ReplicaSet") => {
                self.replica_sets.get_in(Some(ns), name).map(|rs| {
                    let spec = rs.spec.as_ref();
                    let status = rs.status.as_ref().map_or(0, |s| s.replicas);
                    let selector = label_selector(spec.map(|s| &s.selector));
                    scale::<ReplicaSet>(
                        &rs.metadata,
                        spec.and_then(|s| s.replicas),
                        status,
                        selector,
                    )
                })
            }
            ("apps" | "extensions", "Deployment") => {
                self.deployments.get_in(Some(ns), name).map(|d| {
                    let spec = d.spec.as_ref();
                    let status = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                    let selector = label_selector(spec.map(|s| &s.selector));
                    scale::<Deployment>(
                        &d.metadata,
                        spec.and_then(|s| s.replicas),
                        status,
                        selector,
                    )
                })
            }
            ("apps", "StatefulSet") => self.stateful_sets.get_in(Some(ns), name).map(|ss| {
                let spec = ss.spec.as_ref();
                let status = ss.status.as_ref().map_or(0, |s| s.replicas);
                let selector = label_selector(spec.map(|s| &s.selector));
                scale::<StatefulSet>(
                    &ss.metadata,
                    spec.and_then(|s| s.replicas),
                    status,
                    selector,
                )
            }),
            _ => {
                if let Some(info) =
                    by_group_kind(group, kind).filter(|i| i.subresource("scale").is_none())
                {
                    let gr = info.group_resource();
                    return Err(format!("{gr} does not implement the scale subresource"));
                }
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_runtime::store::Writer;

    fn workloads(deployments: Vec<Deployment>) -> Workloads {
        let mut w = Writer::new();
        for d in deployments {
            w.apply(d);
        }
        Workloads {
            replication_controllers: Writer::new().store(),
            replica_sets: Writer::new().store(),
            deployments: w.store(),
            stateful_sets: Writer::new().store(),
        }
    }

    fn deployment(name: &str, replicas: Option<i32>, labels: &[(&str, &str)]) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}")},
            "spec": {"replicas": replicas, "template": {},
                     "selector": {"matchLabels": labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()}},
            "status": {"replicas": 2},
        }))
        .unwrap()
    }

    #[test]
    fn scale_of_a_deployment_and_of_kinds_without_one() {
        let w = workloads(vec![
            deployment("web", Some(3), &[("app", "web")]),
            deployment("bare", None, &[]),
        ]);
        let s = w.scale("apps", "Deployment", "ns", "web").unwrap().unwrap();
        assert_eq!(
            (s.uid.as_str(), s.replicas, s.status_replicas),
            ("u-web", 3, 2)
        );
        assert_eq!(s.selector.unwrap().to_string(), "app=web");
        let bare = w
            .scale("apps", "Deployment", "ns", "bare")
            .unwrap()
            .unwrap();
        assert_eq!(bare.replicas, 1);
        assert_eq!(bare.selector, Err("selector is required".into()));
        assert_eq!(w.scale("apps", "Deployment", "ns", "gone"), Ok(None));
        assert_eq!(
            w.scale("batch", "Job", "ns", "j"),
            Err("jobs.batch does not implement the scale subresource".into())
        );
        assert_eq!(w.scale("example.com", "Widget", "ns", "w"), Ok(None));
    }
}
