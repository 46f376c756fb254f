//! EndpointSlice controller (`pkg/controller/endpointslice/endpointslice_controller.go`, its
//! reconciler `staging/src/k8s.io/endpointslice/reconciler.go` and `utils.go`): the
//! discovery.k8s.io/v1 EndpointSlices of every Service with a selector, beside the Endpoints of
//! [`crate::endpoints`].
//!
//! - One set of slices per address type of the Service (`spec.ipFamilies`; without them, the
//!   family of the cluster IP, both for a headless Service; IPv4 for a Service without a cluster
//!   IP yet). Within it, pods are grouped by the ports their Service ports resolve to (named
//!   target ports per pod); each group fills slices of at most `max_endpoints_per_slice`
//!   (100, upstream `--max-endpoints-per-slice`) endpoints.
//! - Every pod that is not terminal and has an IP is listed, terminating ones too, with the
//!   conditions of [`crate::endpointutil::pod_state`]: `serving` = Ready, `terminating` =
//!   being deleted, `ready` = serving and not terminating (always, with
//!   `publishNotReadyAddresses`), plus `nodeName`, the node's `topology.kubernetes.io/zone`,
//!   the pod's hostname when its subdomain is the Service, and a `targetRef`. A pod whose
//!   node is not known is left out (and the Service looked at again) unless the Service
//!   publishes not-ready addresses.
//! - Slices are labelled with the Service's labels, `kubernetes.io/service-name`,
//!   `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io` and, for a
//!   Service without a cluster IP, `service.kubernetes.io/headless`; they carry a controller
//!   reference to the Service, so the garbage collector deletes them with it. A Service
//!   without endpoints gets one empty placeholder slice per address type.
//! - Changes are as small as upstream's: endpoints no longer wanted are dropped (a slice left
//!   empty is deleted), changed ones rewritten in place, new ones fill the slices being
//!   updated first, then the unchanged slice closest to full that takes them all, then new
//!   slices; a slice to create replaces one to delete by an update.
//!
//! Names: upstream creates slices with `generateName: <service>-` and keeps an
//! expectations tracker so that a sync on a cache that has not yet seen its last create does
//! not create again. Here the five characters after `<service>-` are derived from the
//! Service's uid, the address type and a counter (the first not in use), and the create is
//! [`Action::create_or_update`]: a sync on a stale cache picks the same name and rewrites the
//! slice it created instead of adding a second one. `generateName` is still set.

use crate::deployment::util::safe_encode_string;
use crate::endpointutil::{
    find_port, hostname, pod_state, services_of_pod, should_pod_be_in_endpoints, target_ref,
};
use crate::selector::from_map;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_self, Caches, Controller, Mapper, Watches};
use orch_runtime::object::{controller_ref_of, is_deleting, key_from, split_key};
use orch_runtime::store::{Change, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// Label naming the Service of a slice (`discovery.LabelServiceName`).
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Label naming the writer of a slice (`discovery.LabelManagedBy`).
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's [`LABEL_MANAGED_BY`] value (`ControllerName`).
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Label of the slices of a Service without a cluster IP (`v1.IsHeadlessService`).
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Node label giving an endpoint's zone (`v1.LabelTopologyZone`).
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// Default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Delay before looking at a Service again when a pod was left out for its unknown node
/// (upstream returns an error and the queue retries).
const NODE_NOT_FOUND_RETRY: Duration = Duration::from_secs(1);

/// What one sync reads besides the Service.
pub struct View<'a> {
    /// Pods of the Service's namespace (the selector is applied here).
    pub pods: &'a [Arc<Pod>],
    /// Slices labelled as this controller's for the Service, not being deleted.
    pub slices: &'a [Arc<EndpointSlice>],
    /// A node by name.
    pub node: &'a dyn Fn(&str) -> Option<Arc<Node>>,
    /// Whether a slice of this name exists in the Service's namespace.
    pub name_taken: &'a dyn Fn(&str) -> bool,
}

/// `getAddressTypesForService`.
fn address_types(svc: &Service) -> Vec<&'static str> {
    let spec = svc.spec.as_ref();
    let mut types: Vec<&'static str> = spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some("IPv4"),
            "IPv6" => Some("IPv6"),
            _ => None,
        })
        .collect();
    types.dedup();
    if !types.is_empty() {
        return types;
    }
    match spec.and_then(|s| s.cluster_ip.as_deref()) {
        Some("None") => vec!["IPv4", "IPv6"],
        Some(ip) if ip.contains(':') => vec!["IPv6"],
        _ => vec!["IPv4"],
    }
}

/// `getEndpointPorts`: the Service ports resolved on this pod (those it does not have are
/// left out), in a fixed order (upstream sorts them to key the port map).
fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut ports: Vec<EndpointPort> = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|sp| {
            Some(EndpointPort {
                port: Some(find_port(pod, sp)?),
                name: Some(sp.name.clone().unwrap_or_default()),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();
    ports.sort_by(|a, b| (&a.name, a.port, &a.protocol).cmp(&(&b.name, b.port, &b.protocol)));
    ports
}

pub(crate) fn ports_key(ports: &[EndpointPort]) -> String {
    serde_json::to_string(ports).unwrap_or_default()
}

/// `getEndpointAddresses`: the pod's IPs of the address type.
fn addresses(pod: &Pod, address_type: &str) -> Vec<String> {
    let status = pod.status.clone().unwrap_or_default();
    let ips: Vec<String> = match status.pod_ips.filter(|ips| !ips.is_empty()) {
        Some(ips) => ips.into_iter().map(|i| i.ip).collect(),
        None => status.pod_ip.into_iter().collect(),
    };
    ips.into_iter()
        .filter(|ip| ip.contains(':') == (address_type == "IPv6"))
        .collect()
}

/// `podToEndpoint`.
fn pod_to_endpoint(pod: &Pod, node: Option<&Node>, svc: &Service, address_type: &str) -> Endpoint {
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let state = pod_state(pod, publish);
    Endpoint {
        addresses: addresses(pod, address_type),
        conditions: Some(EndpointConditions {
            ready: Some(state.ready),
            serving: Some(state.serving),
            terminating: Some(state.terminating),
        }),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        zone: node
            .and_then(|n| n.metadata.labels.as_ref()?.get(LABEL_ZONE).cloned())
            .filter(|z| !z.is_empty()),
        hostname: hostname(pod, svc),
        target_ref: Some(target_ref(pod)),
        ..Default::default()
    }
}

/// `hashEndpoint`: what identifies an endpoint across syncs (its sorted addresses, hostname
/// and target).
pub(crate) fn endpoint_key(e: &Endpoint) -> EndpointKey {
    let mut addrs = e.addresses.clone();
    addrs.sort();
    let t = e.target_ref.as_ref();
    (
        addrs,
        e.hostname.clone().unwrap_or_default(),
        t.and_then(|t| t.namespace.clone()).unwrap_or_default(),
        t.and_then(|t| t.name.clone()).unwrap_or_default(),
    )
}

/// What identifies an endpoint ([`endpoint_key`]).
pub(crate) type EndpointKey = (Vec<String>, String, String, String);

/// Wanted endpoints by key, in key order.
pub(crate) type Desired = BTreeMap<EndpointKey, Endpoint>;

/// `setEndpointSliceLabels`: the Service's labels (but the reserved ones), the headless
/// label for a Service without a cluster IP, the service name and manager.
fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| {
            ![LABEL_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let ip = svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    if ip.is_none_or(|ip| ip.is_empty() || ip == "None") {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(
        LABEL_SERVICE_NAME.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

/// `getEndpointSlicePrefix`: `<service>-` when that is a valid name prefix.
pub(crate) fn name_prefix(owner: &ObjectMeta) -> String {
    let name = owner.name.clone().unwrap_or_default();
    let prefix = format!("{name}-");
    if orch_types::names::is_dns1123_subdomain(&format!("{prefix}a")).is_empty() {
        prefix
    } else {
        name
    }
}

/// `newEndpointSlice` (unnamed until [`name_creates`]).
fn new_slice(svc: &Service, ports: &[EndpointPort], address_type: &str) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(name_prefix(&svc.metadata)),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![controller_ref_of(svc)]),
            ..Default::default()
        },
        address_type: address_type.into(),
        endpoints: Vec::new(),
        ports: Some(ports.to_vec()),
    }
}

/// `ownedBy`: the slice's owner references include this Service (by uid).
fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    slice.metadata.owner_references.iter().flatten().any(|r| {
        r.kind == "Service" && r.api_version == "v1" && Some(&r.uid) == svc.metadata.uid.as_ref()
    })
}

/// `placeholderSliceCompare`: namespace, labels, owner references and content.
fn same_placeholder(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    let ports = |s: &EndpointSlice| s.ports.clone().unwrap_or_default();
    a.metadata.namespace == b.metadata.namespace
        && a.metadata.labels.clone().unwrap_or_default()
            == b.metadata.labels.clone().unwrap_or_default()
        && a.metadata.owner_references.clone().unwrap_or_default()
            == b.metadata.owner_references.clone().unwrap_or_default()
        && a.address_type == b.address_type
        && a.endpoints == b.endpoints
        && ports(a) == ports(b)
}

/// Slices to create, update and delete.
#[derive(Debug, Default)]
struct Plan {
    create: Vec<EndpointSlice>,
    update: Vec<EndpointSlice>,
    delete: Vec<EndpointSlice>,
}

/// `reconcileByPortMapping`.
fn reconcile_by_port_mapping(
    svc: &Service,
    existing: &[EndpointSlice],
    mut desired: Desired,
    ports: &[EndpointPort],
    address_type: &str,
    max: usize,
) -> Plan {
    let mut plan = Plan::default();
    let labels = slice_labels(svc);
    let mut update: Vec<EndpointSlice> = Vec::new();
    let mut unchanged: Vec<EndpointSlice> = Vec::new();
    // 1. Keep the endpoints still wanted (in their new form), drop the others.
    for slice in existing {
        let mut kept = Vec::new();
        let mut changed = false;
        for e in &slice.endpoints {
            if let Some(want) = desired.remove(&endpoint_key(e)) {
                changed |= &want != e;
                kept.push(want);
            }
        }
        let labels_changed = slice.metadata.labels.as_ref() != Some(&labels);
        if changed || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                plan.delete.push(slice.clone());
            } else {
                let mut s = slice.clone();
                s.endpoints = kept;
                s.metadata.labels = Some(labels.clone());
                update.push(s);
            }
        } else if labels_changed {
            let mut s = slice.clone();
            s.metadata.labels = Some(labels.clone());
            update.push(s);
        } else {
            unchanged.push(slice.clone());
        }
    }
    // 2. Fill the slices being updated, fullest first.
    update.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
    for s in &mut update {
        while s.endpoints.len() < max {
            let Some((_, e)) = desired.pop_first() else {
                break;
            };
            s.endpoints.push(e);
        }
    }
    // 3. Then the unchanged slice closest to full that takes all that is left, then new ones.
    while !desired.is_empty() {
        let fill = (desired.len() < max)
            .then(|| {
                let mut best: Option<(usize, usize)> = None;
                for (i, s) in unchanged.iter().enumerate() {
                    let room = max.checked_sub(desired.len() + s.endpoints.len());
                    if let Some(room) = room {
                        if best.is_none_or(|(_, r)| room < r) {
                            best = Some((i, room));
                        }
                    }
                }
                best.map(|(i, _)| i)
            })
            .flatten();
        let (mut s, existed) = match fill {
            Some(i) => (unchanged.remove(i), true),
            None => (new_slice(svc, ports, address_type), false),
        };
        while s.endpoints.len() < max {
            let Some((_, e)) = desired.pop_first() else {
                break;
            };
            s.endpoints.push(e);
        }
        if existed {
            update.push(s);
        } else {
            plan.create.push(s);
        }
    }
    plan.update = update;
    plan
}

/// `reconcileByAddressType` and `finalize` for one address type.
fn reconcile_address_type(
    svc: &Service,
    view: &View<'_>,
    existing: &[EndpointSlice],
    address_type: &str,
    max: usize,
    retry: &mut bool,
) -> Plan {
    let mut plan = Plan::default();
    let mut by_ports: BTreeMap<String, Vec<EndpointSlice>> = BTreeMap::new();
    for s in existing {
        if owned_by(s, svc) {
            by_ports
                .entry(ports_key(s.ports.as_deref().unwrap_or_default()))
                .or_default()
                .push(s.clone());
        } else {
            plan.delete.push(s.clone());
        }
    }
    let spec = svc.spec.clone().unwrap_or_default();
    let selector = from_map(spec.selector.as_ref());
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut desired: BTreeMap<String, (Vec<EndpointPort>, Desired)> = BTreeMap::new();
    for pod in view.pods {
        if pod.metadata.namespace != svc.metadata.namespace
            || !selector.matches_opt(pod.metadata.labels.as_ref())
            || !should_pod_be_in_endpoints(pod, true)
        {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let group = desired
            .entry(ports_key(&ports))
            .or_insert_with(|| (ports, Desired::new()));
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("");
        let node = (view.node)(node_name);
        if node.is_none() && !publish {
            *retry = true;
            continue;
        }
        let e = pod_to_endpoint(pod, node.as_deref(), svc, address_type);
        if !e.addresses.is_empty() {
            group.1.insert(endpoint_key(&e), e);
        }
    }
    for (key, (ports, eps)) in desired.iter() {
        let p = reconcile_by_port_mapping(
            svc,
            by_ports.get(key).map(Vec::as_slice).unwrap_or_default(),
            eps.clone(),
            ports,
            address_type,
            max,
        );
        plan.create.extend(p.create);
        plan.update.extend(p.update);
        plan.delete.extend(p.delete);
    }
    for (key, slices) in by_ports {
        if !desired.contains_key(&key) {
            plan.delete.extend(slices);
        }
    }
    if existing.len() == plan.delete.len() && plan.create.is_empty() {
        let placeholder = new_slice(svc, &[], address_type);
        if plan.delete.len() == 1 && same_placeholder(&plan.delete[0], &placeholder) {
            plan.delete.clear();
        } else {
            plan.create.push(placeholder);
        }
    }
    // finalize: a slice to create takes the place of one to delete.
    let mut i = 0;
    while i < plan.delete.len() && !plan.create.is_empty() {
        if plan.delete[i].address_type == address_type && owned_by(&plan.delete[i], svc) {
            let gone = plan.delete.remove(i);
            let mut s = plan.create.pop().unwrap_or_default();
            s.metadata = ObjectMeta {
                labels: s.metadata.labels,
                ..gone.metadata
            };
            plan.update.push(s);
        } else {
            i += 1;
        }
    }
    plan
}

/// Names the slices to create for `owner` (a Service, or the Endpoints a slice mirrors):
/// [`name_prefix`] and five characters from the owner's uid, the address type and the first
/// counter whose name is free (not `taken`, not given in this pass).
pub(crate) fn name_creates(
    owner: &ObjectMeta,
    taken: &dyn Fn(&str) -> bool,
    creates: &mut [EndpointSlice],
) {
    let prefix = name_prefix(owner);
    let uid = owner.uid.clone().unwrap_or_default();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut n: u64 = 0;
    for s in creates {
        let name = loop {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&uid, &s.address_type, n).hash(&mut h);
            n += 1;
            let hex = format!("{:05x}", h.finish() & 0xf_ffff);
            let name = format!("{prefix}{}", safe_encode_string(&hex));
            if !taken(&name) && used.insert(name.clone()) {
                break name;
            }
        };
        s.metadata.name = Some(name);
    }
}

/// One pass for a Service: the slice writes that bring its slices to the desired state.
pub fn reconcile(svc: &Service, view: &View<'_>, max: usize) -> Vec<Action> {
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName")
        || spec.selector.as_ref().is_none_or(BTreeMap::is_empty)
    {
        return Vec::new();
    }
    let types = address_types(svc);
    let mut plan = Plan::default();
    let mut by_type: BTreeMap<&str, Vec<EndpointSlice>> = BTreeMap::new();
    for s in view.slices {
        match types.iter().find(|t| **t == s.address_type) {
            Some(t) => by_type.entry(t).or_default().push((**s).clone()),
            None => plan.delete.push((**s).clone()),
        }
    }
    let mut retry = false;
    for t in &types {
        let existing = by_type.remove(t).unwrap_or_default();
        let p = reconcile_address_type(svc, view, &existing, t, max, &mut retry);
        plan.create.extend(p.create);
        plan.update.extend(p.update);
        plan.delete.extend(p.delete);
    }
    let mut actions = Vec::new();
    // No new slices for a Service being deleted: the garbage collector is removing them.
    if !is_deleting(&svc.metadata) {
        name_creates(&svc.metadata, view.name_taken, &mut plan.create);
        actions.extend(plan.create.iter().map(Action::create_or_update));
    }
    actions.extend(plan.update.iter().map(Action::update));
    actions.extend(plan.delete.iter().map(Action::delete));
    if retry {
        actions.push(Action::requeue(NODE_NOT_FOUND_RETRY));
    }
    actions
}

/// The EndpointSlice controller (`endpointslice`) as a declaration: watches Services, pods
/// whose labels (before or after a change) a Service selects, and the slices it manages
/// (keyed by their `kubernetes.io/service-name`); reads Nodes for zones.
#[derive(Debug)]
pub struct EndpointSliceController {
    /// Most endpoints in one slice (`--max-endpoints-per-slice`).
    pub max_endpoints_per_slice: usize,
}

impl Default for EndpointSliceController {
    fn default() -> Self {
        Self {
            max_endpoints_per_slice: MAX_ENDPOINTS_PER_SLICE,
        }
    }
}

/// The key (`namespace/name` of its `kubernetes.io/service-name`) of a slice whose manager
/// is `manager`.
fn managed_key(s: &EndpointSlice, manager: &str) -> Option<String> {
    let labels = s.metadata.labels.as_ref()?;
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(manager) {
        return None;
    }
    let name = labels.get(LABEL_SERVICE_NAME)?;
    Some(key_from(s.metadata.namespace.as_deref(), name))
}

/// EndpointSlice trigger of a slice-writing controller: the [`managed_key`] of the slice
/// before and after the change.
pub(crate) fn slices_of(manager: &'static str) -> Mapper<EndpointSlice> {
    Arc::new(move |c, _, keys| {
        if let Change::Updated(old, _) = c {
            keys.extend(managed_key(old, manager));
        }
        if let Some(k) = managed_key(c.object(), manager) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    })
}

/// The slices `manager` keeps for `key` (upstream lists them by the service-name and
/// managed-by labels), those being deleted left out (`dropEndpointSlicesPendingDeletion`).
pub(crate) fn managed_slices(
    store: &Store<EndpointSlice>,
    key: &str,
    manager: &str,
) -> Vec<Arc<EndpointSlice>> {
    let (ns, name) = split_key(key);
    store
        .with_label(LABEL_SERVICE_NAME, name)
        .into_iter()
        .filter(|s| {
            s.metadata.namespace.as_deref() == ns
                && managed_key(s, manager).is_some()
                && !is_deleting(&s.metadata)
        })
        .collect()
}

impl Controller for EndpointSliceController {
    fn name(&self) -> &'static str {
        "endpointslice"
    }

    fn component(&self) -> &'static str {
        "endpointslice-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<Service>(trigger_self());
        w.watch::<Pod>(services_of_pod());
        w.watch::<EndpointSlice>(slices_of(CONTROLLER_NAME));
        w.reads::<Node>();
    }

    fn sync(&self, key: &str, caches: &Caches, _now: jiff::Timestamp) -> Vec<Action> {
        let Some(svc) = caches.get::<Service>().get(key) else {
            return Vec::new();
        };
        let ns = split_key(key).0.unwrap_or("");
        let store = caches.get::<EndpointSlice>();
        let slices = managed_slices(&store, key, CONTROLLER_NAME);
        let pods = caches.get::<Pod>().list_namespace(ns);
        let nodes = caches.get::<Node>();
        let view = View {
            pods: &pods,
            slices: &slices,
            node: &|n| nodes.get(n),
            name_taken: &|n| store.get_in(Some(ns), n).is_some(),
        };
        reconcile(&svc, &view, self.max_endpoints_per_slice)
    }
}

#[cfg(test)]
mod tests;
