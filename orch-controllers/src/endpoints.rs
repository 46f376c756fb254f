//! Endpoints controller (`pkg/controller/endpoint/endpoints_controller.go`): one Endpoints
//! object per Service with a selector, named like the Service, listing the ready addresses and
//! the not-ready addresses of matching pods with the Service's ports resolved against each
//! pod's container ports (named target ports per pod). Subsets are grouped by port set.

use crate::endpointutil::{
    find_port, hostname, pod_state, services_of_pod, should_pod_be_in_endpoints, target_ref,
};
use crate::selector::from_map;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_self, Caches, Controller, Watches};
use orch_runtime::object::{is_deleting, key_of, split_key};
use orch_runtime::store::Change;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Label added to Endpoints of headless services.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The desired Endpoints of a Service, or `None` when the Service has no selector.
pub fn desired(svc: &Service, pods: &[Arc<Pod>]) -> Option<Endpoints> {
    let spec = svc.spec.as_ref()?;
    let sel = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    let selector = from_map(Some(sel));
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.clone().unwrap_or_default();
    // port set (serialized) -> (ports, ready, not ready)
    type Group = (
        Vec<EndpointPort>,
        Vec<EndpointAddress>,
        Vec<EndpointAddress>,
    );
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for p in pods
        .iter()
        .filter(|p| p.metadata.namespace == svc.metadata.namespace)
    {
        if !selector.matches_opt(p.metadata.labels.as_ref())
            || !should_pod_be_in_endpoints(p, publish)
        {
            continue;
        }
        let addr = EndpointAddress {
            ip: p
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default(),
            node_name: p.spec.as_ref().and_then(|s| s.node_name.clone()),
            hostname: hostname(p, svc),
            target_ref: Some(target_ref(p)),
        };
        // Only terminating pods of a Service publishing not-ready addresses get here, and
        // those are ready.
        let ready = pod_state(p, publish).ready;
        let mut eps: Vec<EndpointPort> = Vec::new();
        if ports.is_empty() && !headless {
            continue;
        }
        for sp in &ports {
            let proto = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
            if let Some(port) = find_port(p, sp) {
                eps.push(EndpointPort {
                    name: sp.name.clone(),
                    port,
                    protocol: Some(proto),
                    app_protocol: sp.app_protocol.clone(),
                });
            }
        }
        if eps.is_empty() && !ports.is_empty() {
            continue;
        }
        let key = serde_json::to_string(&eps).unwrap_or_default();
        let g = groups
            .entry(key)
            .or_insert_with(|| (eps, Vec::new(), Vec::new()));
        if ready {
            g.1.push(addr);
        } else {
            g.2.push(addr);
        }
    }
    let subsets: Vec<EndpointSubset> = groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if headless {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    Some(Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    })
}

/// One pass for the Service key: create, update or delete its Endpoints.
pub fn reconcile(
    svc: Option<&Service>,
    existing: Option<&Endpoints>,
    pods: &[Arc<Pod>],
) -> Vec<Action> {
    let Some(svc) = svc else {
        return existing
            .map(|e| vec![Action::delete(e)])
            .unwrap_or_default();
    };
    if is_deleting(&svc.metadata) {
        return Vec::new();
    }
    let Some(want) = desired(svc, pods) else {
        return Vec::new();
    };
    match existing {
        // Not in the cache does not mean not stored: the cache may not have seen the object
        // this controller created a moment ago (or one made by someone else), and a plain
        // create would fail with 409 AlreadyExists until it does. Upstream's `syncService`
        // (`pkg/controller/endpoint/endpoints_controller.go`) updates the Endpoints it finds
        // (copy, new subsets and labels); the create-or-update makes that update at once.
        None => vec![Action::create_or_update(&want)],
        Some(cur) if cur.subsets == want.subsets && cur.metadata.labels == want.metadata.labels => {
            Vec::new()
        }
        Some(cur) => {
            let mut next = cur.clone();
            next.subsets = want.subsets;
            next.metadata.labels = want.metadata.labels;
            vec![Action::update(&next)]
        }
    }
}

/// The Endpoints controller (`endpoints`) as a declaration: watches Services, deletions of
/// Endpoints, and pods whose labels (before or after a change) a Service selects; syncs one
/// Service key over the pods of its namespace.
#[derive(Debug, Default)]
pub struct EndpointsController;

impl Controller for EndpointsController {
    fn name(&self) -> &'static str {
        "endpoints"
    }

    fn component(&self) -> &'static str {
        "endpoint-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<Service>(trigger_self());
        w.watch::<Endpoints>(Arc::new(|c, _, keys| {
            if let Change::Deleted(e) = c {
                keys.push(key_of(&e.metadata));
            }
        }));
        w.watch::<Pod>(services_of_pod());
    }

    fn sync(&self, key: &str, caches: &Caches, _now: jiff::Timestamp) -> Vec<Action> {
        let (svc, ep) = (
            caches.get::<Service>().get(key),
            caches.get::<Endpoints>().get(key),
        );
        let pods = caches
            .get::<Pod>()
            .list_namespace(split_key(key).0.unwrap_or(""));
        reconcile(svc.as_deref(), ep.as_deref(), &pods)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, ready: bool, app: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "labels": {"app": app}},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"phase": "Running", "podIP": ip,
                           "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn lists_ready_and_not_ready_addresses_with_resolved_ports() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "fe"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
        }))
        .unwrap();
        let pods = vec![
            pod("b", "10.0.0.2", true, "web"),
            pod("a", "10.0.0.1", false, "web"),
            pod("x", "10.0.0.9", true, "db"),
        ];
        let actions = reconcile(Some(&svc), None, &pods);
        let [Action::CreateOrUpdate { object, .. }] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        insta::assert_yaml_snapshot!(object.to_value(), @r#"
        apiVersion: v1
        kind: Endpoints
        metadata:
          labels:
            tier: fe
          name: web
          namespace: default
        subsets:
          - addresses:
              - ip: 10.0.0.2
                nodeName: n1
                targetRef:
                  kind: Pod
                  name: b
                  namespace: default
                  uid: u-b
            notReadyAddresses:
              - ip: 10.0.0.1
                nodeName: n1
                targetRef:
                  kind: Pod
                  name: a
                  namespace: default
                  uid: u-a
            ports:
              - name: http
                port: 8080
                protocol: TCP
        "#);
        // Unchanged -> no write; service gone -> endpoints deleted.
        let e: Endpoints = object.to_typed().unwrap();
        assert!(reconcile(Some(&svc), Some(&e), &pods).is_empty());
        assert!(matches!(
            reconcile(None, Some(&e), &pods).as_slice(),
            [Action::Delete { .. }]
        ));
    }
}
