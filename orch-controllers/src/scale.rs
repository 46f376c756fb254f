//! The scale of a workload read from the caches: what `GET …/scale` answers for the built-in
//! kinds that have the subresource (ReplicationController, ReplicaSet, Deployment,
//! StatefulSet). The disruption controller counts expected pods with it; the
//! HorizontalPodAutoscaler reads its target's replicas and pod selector with it and writes
//! through the scale subresource itself.
//!
//! Custom resources ([`CustomScales`]): the kinds CustomResourceDefinitions define are resolved
//! through discovery (upstream's RESTMapper), and the scale is computed from the object in its
//! discovered cache at the CRD version's `subresources.scale` paths, as the API server's
//! `scaleFromCustomResource` does. [`Workloads::scale`] answers `Ok(None)` for them; the
//! HorizontalPodAutoscaler asks [`CustomScales::scale`] next. The disruption controller does
//! not (yet): a pod controlled by a custom kind counts as without a scalable controller.

use crate::selector::{from_label_selector, from_map, Selector};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use orch_runtime::controller::{Caches, MetaMapper, ResourceFilter, Watches};
use orch_runtime::object::uid;
use orch_runtime::store::Store;
use orch_types::client::DiscoveredResource;
use orch_types::dynamic::DynamicObject;
use orch_types::registry::{by_group_kind, by_kind, ApiResource};
use serde_json::Value;
use std::sync::Arc;

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

/// Looks up a custom object (whole, in its wire form) of a resource in a namespace by name.
pub type ObjectLookup =
    Arc<dyn Fn(&ApiResource, &str, &str) -> Option<Arc<DynamicObject>> + Send + Sync>;

/// What reading the scale of a custom resource needs (upstream's RESTMapper and scale
/// client, here from caches): what discovery listed, the CustomResourceDefinitions (for their
/// scale paths) and the custom objects.
#[derive(Clone)]
pub struct CustomScales {
    /// The resources discovery listed, at the version a component uses.
    pub discovered: Vec<DiscoveredResource>,
    /// CustomResourceDefinitions in their wire form, by name (`PLURAL.GROUP`).
    pub crds: Store<DynamicObject>,
    /// The objects of the discovered resources.
    pub objects: ObjectLookup,
}

impl Default for CustomScales {
    /// Nothing discovered: every custom kind is unknown.
    fn default() -> Self {
        Self {
            discovered: vec![],
            crds: orch_runtime::store::Writer::new().store(),
            objects: Arc::new(|_, _, _| None),
        }
    }
}

impl std::fmt::Debug for CustomScales {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomScales")
            .field("discovered", &self.discovered.len())
            .finish()
    }
}

/// The resource of CustomResourceDefinitions.
pub fn crd_resource() -> ApiResource {
    by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .expect("a built-in kind")
        .api_resource()
}

/// Whether a discovered resource is one a CustomResourceDefinition (or an aggregated API)
/// serves and can be cached: not a built-in kind, listable and watchable.
pub fn is_custom(d: &DiscoveredResource) -> bool {
    by_group_kind(&d.resource.group, &d.resource.kind).is_none() && d.supports(&["list", "watch"])
}

/// The value at a scale path (`.spec.workers`: dot-separated field names, as the API server
/// accepts for `specReplicasPath` and friends).
fn at_path<'a>(o: &'a DynamicObject, path: &str) -> Option<&'a Value> {
    let mut fields = path.strip_prefix('.').unwrap_or(path).split('.');
    let mut v = o.data.get(fields.next()?)?;
    for f in fields {
        v = v.get(f)?;
    }
    Some(v)
}

impl CustomScales {
    /// Declares the caches [`CustomScales::from_caches`] reads: the CustomResourceDefinitions
    /// (wire form) and, through discovery, every custom resource ([`is_custom`]), whose
    /// changes trigger nothing.
    pub fn declare(w: &mut Watches) {
        let filter: ResourceFilter = Arc::new(is_custom);
        let ignore: MetaMapper = Arc::new(|_, _, _, _| {});
        w.reads_dynamic(crd_resource())
            .watch_discovered_metadata(filter, ignore);
    }

    /// The view of `caches` (declared with [`CustomScales::declare`]). A discovered resource's
    /// cache holds whole objects unless some controller of the same driver declared the kind
    /// typed: then only its metadata is here, and its scale reads as 0 replicas.
    pub fn from_caches(caches: &Caches) -> Self {
        let index = caches.metadata();
        Self {
            discovered: index.discovered().to_vec(),
            crds: caches
                .dynamic(&crd_resource())
                .unwrap_or_else(|| orch_runtime::store::Writer::new().store()),
            objects: Arc::new(move |r, ns, name| index.get(r)?.get_meta(Some(ns), name)),
        }
    }

    /// The scale of the custom `kind` `name` of API group `group` in `ns` (upstream
    /// `scaleFromCustomResource`): `spec.replicas` and `status.replicas` at the CRD version's
    /// `specReplicasPath` and `statusReplicasPath` (0 when absent), the selector string at
    /// `labelSelectorPath`. Errors as the HPA reports them: a kind discovery does not list
    /// (RESTMapper's `no matches for kind`), a resource without the scale subresource, a
    /// missing object.
    pub fn scale(&self, group: &str, kind: &str, ns: &str, name: &str) -> Result<Scale, String> {
        let Some(d) = self
            .discovered
            .iter()
            .find(|d| d.resource.group == group && d.resource.kind == kind)
        else {
            return Err(format!(
                "unable to determine resource for scale target reference: no matches for kind {kind:?} in group {group:?}"
            ));
        };
        let r = &d.resource;
        let gr = format!("{}.{}", r.plural, r.group);
        let paths = self
            .crds
            .get_in(None, &gr)
            .and_then(|crd| {
                let versions = crd.data.get("spec")?.get("versions")?.as_array()?;
                let v = versions.iter().find(|v| v["name"] == *r.version)?;
                v.get("subresources")?.get("scale").cloned()
            })
            .ok_or_else(|| format!("{gr} does not implement the scale subresource"))?;
        let path = |k: &str| paths.get(k).and_then(Value::as_str).unwrap_or("");
        let Some(o) = (self.objects)(r, ns, name) else {
            return Err(format!("{gr} {name:?} not found"));
        };
        let int = |p: &str| {
            at_path(&o, p)
                .and_then(Value::as_i64)
                .map_or(0, |n| n.clamp(0, i32::MAX as i64) as i32)
        };
        let selector = match at_path(&o, path("labelSelectorPath")).and_then(Value::as_str) {
            None | Some("") => Err("selector is required".to_string()),
            Some(s) => s.parse::<Selector>().map_err(|e| e.to_string()),
        };
        Ok(Scale {
            resource: r.clone(),
            uid: uid(&o.metadata).to_string(),
            replicas: int(path("specReplicasPath")),
            status_replicas: int(path("statusReplicasPath")),
            selector,
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
