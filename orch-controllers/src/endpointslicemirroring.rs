//! EndpointSlice mirroring controller (`pkg/controller/endpointslicemirroring/`): the
//! EndpointSlices of Endpoints written by someone else, for Services without a selector (the
//! endpointslice controller writes those of Services with one).
//!
//! - Mirrored: Endpoints whose Service exists and has no selector, without the label
//!   `endpointslice.kubernetes.io/skip-mirror: "true"` (the `kubernetes` Endpoints carry it)
//!   and without the leader-election annotation. Otherwise every slice mirrored for the name is
//!   deleted.
//! - The subsets are packed by port set (upstream `RepackSubsets`); each port set and address
//!   type is one slice of at most 1,000 endpoints (`--mirroring-max-endpoints-per-subset`):
//!   `ready` for `addresses`, not ready for `notReadyAddresses`, with the address's node name,
//!   hostname and target. Addresses that are not IPs are skipped (Warning `InvalidIPAddress` on
//!   the Endpoints), so are those past the limit (`AddressesSkipped`).
//! - Slices carry the Endpoints' labels and annotations (but the reserved labels,
//!   `last-change-trigger-time` and `last-applied-configuration`),
//!   `kubernetes.io/service-name`, `endpointslice.kubernetes.io/managed-by:
//!   endpointslicemirroring-controller.k8s.io` and a controller reference to the Endpoints.
//!   One slice per port set and address type is kept, rewritten when it differs; a slice to
//!   create replaces one to delete by an update. Names as [`crate::endpointslice`]'s.

use crate::endpointslice::{
    endpoint_key, managed_slices, name_creates, name_prefix, ports_key, slices_of, Desired,
    LABEL_HEADLESS, LABEL_MANAGED_BY, LABEL_SERVICE_NAME,
};
use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_self, Caches, Controller, Watches};
use orch_runtime::object::{controller_ref_of, split_key};
use orch_types::events::ObjectRef;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// This controller's [`LABEL_MANAGED_BY`] value.
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
/// Endpoints with this label set to `"true"` are not mirrored.
pub const LABEL_SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Endpoints used for leader election (upstream `resourcelock.LeaderElectionRecordAnnotationKey`)
/// are not mirrored.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// Default `--mirroring-max-endpoints-per-subset`.
pub const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;

/// A port set's addresses by IP, each with whether it is ready.
type Addresses = BTreeMap<String, (EndpointAddress, bool)>;

/// `shouldMirror`.
fn should_mirror(ep: &Endpoints) -> bool {
    let skip = ep
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_SKIP_MIRROR))
        .is_some_and(|v| v == "true");
    let leader = ep
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(LEADER_ANNOTATION));
    !skip && !leader
}

/// `addressToEndpoint`.
fn address_to_endpoint(a: &EndpointAddress, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![a.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..Default::default()
        }),
        target_ref: a.target_ref.clone(),
        node_name: a.node_name.clone(),
        hostname: a.hostname.clone().filter(|h| !h.is_empty()),
        ..Default::default()
    }
}

/// `newEndpointSlice` of the mirroring controller (unnamed).
fn new_slice(ep: &Endpoints, ports: &[EndpointPort], address_type: &str) -> EndpointSlice {
    let strip = |m: Option<&BTreeMap<String, String>>, keys: &[&str]| -> BTreeMap<String, String> {
        m.into_iter()
            .flatten()
            .filter(|(k, _)| !keys.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut labels = strip(
        ep.metadata.labels.as_ref(),
        &[LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LABEL_HEADLESS],
    );
    labels.insert(
        LABEL_SERVICE_NAME.into(),
        ep.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    let annotations = strip(
        ep.metadata.annotations.as_ref(),
        &[
            "endpoints.kubernetes.io/last-change-trigger-time",
            "kubectl.kubernetes.io/last-applied-configuration",
        ],
    );
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(name_prefix(&ep.metadata)),
            namespace: ep.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![controller_ref_of(ep)]),
            ..Default::default()
        },
        address_type: address_type.into(),
        endpoints: Vec::new(),
        ports: Some(ports.to_vec()),
    }
}

/// `endpointSlicesEqual`: content, labels and annotations.
fn same(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    let ports = |s: &EndpointSlice| s.ports.clone().unwrap_or_default();
    let map = |m: &Option<BTreeMap<String, String>>| m.clone().unwrap_or_default();
    a.address_type == b.address_type
        && a.endpoints == b.endpoints
        && ports(a) == ports(b)
        && map(&a.metadata.labels) == map(&b.metadata.labels)
        && map(&a.metadata.annotations) == map(&b.metadata.annotations)
}

/// One pass for an Endpoints object: the slice writes mirroring it. `svc` is the Service of
/// the same name, `slices` the slices mirrored for the name, `taken` whether a slice name is
/// in use in the namespace.
pub fn reconcile(
    ep: Option<&Endpoints>,
    svc: Option<&Service>,
    slices: &[Arc<EndpointSlice>],
    taken: &dyn Fn(&str) -> bool,
    max: usize,
) -> Vec<Action> {
    let delete_all = || slices.iter().map(|s| Action::delete(&**s)).collect();
    let Some(ep) = ep.filter(|e| should_mirror(e)) else {
        return delete_all();
    };
    let selectorless =
        svc.is_some_and(|s| s.spec.as_ref().and_then(|x| x.selector.as_ref()).is_none());
    if !selectorless {
        return delete_all();
    }
    // RepackSubsets: one group per port set, an address ready if it is ready in any subset.
    let mut groups: BTreeMap<String, (Vec<EndpointPort>, Addresses)> = BTreeMap::new();
    for ss in ep.subsets.iter().flatten() {
        let mut ports: Vec<EndpointPort> = ss
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        ports.sort_by(|a, b| (&a.name, a.port, &a.protocol).cmp(&(&b.name, b.port, &b.protocol)));
        let g = groups
            .entry(ports_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new()));
        for (list, ready) in [(&ss.addresses, true), (&ss.not_ready_addresses, false)] {
            for a in list.iter().flatten() {
                let e =
                    g.1.entry(a.ip.clone())
                        .or_insert_with(|| (a.clone(), ready));
                e.1 |= ready;
            }
        }
    }
    let (mut invalid, mut skipped) = (0usize, 0usize);
    // (ports key, address type) -> (ports, endpoints)
    let mut desired: BTreeMap<(String, &str), (Vec<EndpointPort>, Desired)> = BTreeMap::new();
    for (key, (ports, addrs)) in &groups {
        let mut added = 0;
        // Ready addresses first, as upstream walks `addresses` before `notReadyAddresses`.
        let mut ordered: Vec<&(EndpointAddress, bool)> = addrs.values().collect();
        ordered.sort_by_key(|(_, ready)| !ready);
        for (a, ready) in ordered {
            if added >= max {
                skipped += 1;
                continue;
            }
            let address_type = match a.ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => "IPv4",
                Ok(IpAddr::V6(_)) => "IPv6",
                Err(_) => {
                    invalid += 1;
                    skipped += 1;
                    continue;
                }
            };
            let e = address_to_endpoint(a, *ready);
            desired
                .entry((key.clone(), address_type))
                .or_insert_with(|| (ports.clone(), Desired::new()))
                .1
                .insert(endpoint_key(&e), e);
            added += 1;
        }
    }
    let mut existing: BTreeMap<(String, String), Vec<EndpointSlice>> = BTreeMap::new();
    for s in slices {
        let key = (
            ports_key(s.ports.as_deref().unwrap_or_default()),
            s.address_type.clone(),
        );
        existing.entry(key).or_default().push((**s).clone());
    }
    let (mut create, mut update, mut delete) = (Vec::new(), Vec::new(), Vec::new());
    for ((key, address_type), (ports, eps)) in desired {
        let mut olds = existing
            .remove(&(key, address_type.to_string()))
            .unwrap_or_default()
            .into_iter();
        let old = olds.next();
        delete.extend(olds);
        let mut s = new_slice(ep, &ports, address_type);
        s.endpoints = eps.into_values().collect();
        match old {
            Some(o) if same(&s, &o) => {}
            Some(o) => {
                s.metadata = ObjectMeta {
                    labels: s.metadata.labels,
                    annotations: s.metadata.annotations,
                    ..o.metadata
                };
                update.push(s);
            }
            None => create.push(s),
        }
    }
    delete.extend(existing.into_values().flatten());
    // A slice to create takes the place of one to delete.
    while !delete.is_empty() && !create.is_empty() {
        let (Some(gone), Some(mut s)) = (delete.pop(), create.pop()) else {
            break;
        };
        s.metadata = ObjectMeta {
            labels: s.metadata.labels,
            annotations: s.metadata.annotations,
            ..gone.metadata
        };
        update.push(s);
    }
    name_creates(&ep.metadata, taken, &mut create);
    let me = ObjectRef::of(ep);
    let mut actions: Vec<Action> = Vec::new();
    if invalid > 0 {
        actions.push(Action::warning(
            me.clone(),
            "InvalidIPAddress",
            format!("Skipped {invalid} invalid IP addresses when mirroring to EndpointSlices"),
        ));
    }
    if skipped > invalid {
        actions.push(Action::warning(
            me,
            "AddressesSkipped",
            format!(
                "Skipped {} addresses when mirroring to EndpointSlices",
                skipped - invalid
            ),
        ));
    }
    actions.extend(create.iter().map(Action::create_or_update));
    actions.extend(update.iter().map(Action::update));
    actions.extend(delete.iter().map(Action::delete));
    actions
}

/// The mirroring controller (`endpointslicemirroring`) as a declaration: watches Endpoints,
/// Services (same key) and the slices it manages (keyed by their
/// `kubernetes.io/service-name`).
#[derive(Debug)]
pub struct EndpointSliceMirroringController {
    /// Most endpoints mirrored from one subset (`--mirroring-max-endpoints-per-subset`).
    pub max_endpoints_per_subset: usize,
}

impl Default for EndpointSliceMirroringController {
    fn default() -> Self {
        Self {
            max_endpoints_per_subset: MAX_ENDPOINTS_PER_SUBSET,
        }
    }
}

impl Controller for EndpointSliceMirroringController {
    fn name(&self) -> &'static str {
        "endpointslicemirroring"
    }

    fn component(&self) -> &'static str {
        "endpointslicemirroring-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<Endpoints>(trigger_self());
        w.watch::<Service>(trigger_self());
        w.watch::<EndpointSlice>(slices_of(CONTROLLER_NAME));
    }

    fn sync(&self, key: &str, caches: &Caches, _now: jiff::Timestamp) -> Vec<Action> {
        let ns = split_key(key).0;
        let store = caches.get::<EndpointSlice>();
        let slices = managed_slices(&store, key, CONTROLLER_NAME);
        let ep = caches.get::<Endpoints>().get(key);
        let svc = caches.get::<Service>().get(key);
        reconcile(
            ep.as_deref(),
            svc.as_deref(),
            &slices,
            &|n| store.get_in(ns, n).is_some(),
            self.max_endpoints_per_subset,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::written_slices as written;
    use serde_json::json;

    fn endpoints(v: serde_json::Value) -> Endpoints {
        serde_json::from_value(v).unwrap()
    }

    fn external() -> Service {
        serde_json::from_value(json!({"metadata": {"name": "ext", "namespace": "default"},
            "spec": {"ports": [{"port": 80}]}}))
        .unwrap()
    }

    #[test]
    fn endpoints_of_a_selectorless_service_are_mirrored() {
        let ep = endpoints(json!({
            "metadata": {"name": "ext", "namespace": "default", "uid": "ep-uid",
                         "labels": {"team": "a", "kubernetes.io/service-name": "other"},
                         "annotations": {"note": "x", "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "subsets": [
                {"addresses": [{"ip": "192.0.2.1"}, {"ip": "not-an-ip"}], "notReadyAddresses": [{"ip": "2001:db8::1"}],
                 "ports": [{"name": "http", "port": 8080}]},
                {"addresses": [{"ip": "192.0.2.2", "hostname": "b", "nodeName": "n1"}],
                 "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
            ]
        }));
        let none = |_: &str| false;
        let actions = reconcile(Some(&ep), Some(&external()), &[], &none, 1000);
        let warnings: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Event { reason, .. } => Some(reason.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(warnings, ["InvalidIPAddress"]);
        let slices = written(&actions);
        assert_eq!(slices.len(), 2, "{actions:?}");
        let v4 = slices.iter().find(|s| s.address_type == "IPv4").unwrap();
        let v6 = slices.iter().find(|s| s.address_type == "IPv6").unwrap();
        let addrs: Vec<&str> = v4
            .endpoints
            .iter()
            .map(|e| e.addresses[0].as_str())
            .collect();
        assert_eq!(addrs, ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(v4.endpoints[1].hostname.as_deref(), Some("b"));
        assert_eq!(
            v6.endpoints[0].conditions.as_ref().unwrap().ready,
            Some(false)
        );
        let labels = v4.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_SERVICE_NAME], "ext");
        assert_eq!(labels[LABEL_MANAGED_BY], CONTROLLER_NAME);
        assert_eq!(labels["team"], "a");
        assert_eq!(
            v4.metadata.annotations,
            Some(BTreeMap::from([("note".to_string(), "x".to_string())]))
        );
        let owner = &v4.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Endpoints", "ep-uid")
        );
        assert_eq!(
            v4.ports.as_deref(),
            Some(
                &[EndpointPort {
                    name: Some("http".into()),
                    port: Some(8080),
                    protocol: Some("TCP".into()),
                    app_protocol: None,
                }][..]
            )
        );
        // Stored as written: nothing to do but the warning; a change rewrites the slice.
        let again = reconcile(Some(&ep), Some(&external()), &slices, &none, 1000);
        assert!(written(&again).is_empty(), "{again:?}");
        let mut fewer = ep.clone();
        fewer.subsets.as_mut().unwrap().truncate(1);
        let actions = reconcile(Some(&fewer), Some(&external()), &slices, &none, 1000);
        let changed = written(&actions);
        assert_eq!(changed.len(), 1);
        assert!(matches!(actions.last(), Some(Action::Update { .. })));
        // Past the limit: skipped with a warning.
        let actions = reconcile(Some(&ep), Some(&external()), &slices, &none, 1);
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::Event { reason, .. } if reason == "AddressesSkipped")));
    }

    #[test]
    fn what_is_not_mirrored_loses_its_slices() {
        let ep = endpoints(json!({"metadata": {"name": "ext", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]}));
        let none = |_: &str| false;
        let slices = written(&reconcile(Some(&ep), Some(&external()), &[], &none, 1000));
        assert_eq!(slices.len(), 1);
        let deletes =
            |a: Vec<Action>| a.iter().all(|a| matches!(a, Action::Delete { .. })) && a.len() == 1;
        // No Service, a Service with a selector, skip-mirror, the Endpoints gone.
        assert!(deletes(reconcile(Some(&ep), None, &slices, &none, 1000)));
        let selected: Service = serde_json::from_value(json!({"metadata": {"name": "ext"},
            "spec": {"selector": {"app": "x"}}}))
        .unwrap();
        assert!(deletes(reconcile(
            Some(&ep),
            Some(&selected),
            &slices,
            &none,
            1000
        )));
        let mut skip = ep.clone();
        skip.metadata.labels = Some(BTreeMap::from([(
            LABEL_SKIP_MIRROR.to_string(),
            "true".to_string(),
        )]));
        assert!(deletes(reconcile(
            Some(&skip),
            Some(&external()),
            &slices,
            &none,
            1000
        )));
        assert!(deletes(reconcile(
            None,
            Some(&external()),
            &slices,
            &none,
            1000
        )));
    }
}
