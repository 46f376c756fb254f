//! Service ClusterIP and NodePort allocation, crash-safe and shared by every API server on one
//! store (upstream `pkg/registry/core/service/storage/alloc.go`, the IPAddress-based
//! `pkg/registry/core/service/ipallocator` and `portallocator`, the repair controllers
//! `ipallocator/controller/repair.go`, `portallocator/controller/repair.go`).
//!
//! Every address and node port a Service holds has an allocation record in storage, one key per
//! address (`/serviceips/10.96.0.10`, as upstream's `networking.k8s.io` IPAddress objects) or
//! port (`/servicenodeports/30080`), naming the Service (`spec.parentRef`). A record is created
//! with the store's "key absent" compare *before* the Service that holds the value is written,
//! and deleted only *after* the Service stopped holding it (deleted, or updated to another
//! value): so a value held by a stored Service always has its record, and no other API server,
//! nor this one after a restart, can take it again. A failed write deletes the records it
//! created (compare on their revision); a crash between the record and the Service write leaks
//! the record, which [`repair`] frees once it is older than [`ServiceAllocConfig::leak_grace`]
//! and no Service holds it. Repair also re-creates the record of a value a Service holds
//! without one (data written before allocation existed). The records are outside `/registry/`:
//! no API serves or watches them (as `/masterleases/`).
//!
//! Dynamic allocation picks a random free value above the range's static band first (KEP-3070,
//! KEP-3668), the band below it is left to requested values until the rest is full. What this
//! server knows to be taken is kept in memory as a hint; storage decides.
//!
//! Field rules (upstream `initIPFamilyFields`, `patchAllocatedValues`,
//! `dropTypeDependentFields` of `pkg/registry/core/service/storage/storage.go` and
//! `strategy.go`): single-stack clusters; `clusterIP: None` (headless) and `ExternalName`
//! Services get no address; `NodePort` and `LoadBalancer` Services get a node port per port
//! (ports with the same number share one; `allocateLoadBalancerNodePorts: false` allocates only
//! requested ones) and a `LoadBalancer` with `externalTrafficPolicy: Local` a
//! `healthCheckNodePort`; an update that omits allocated values keeps them, one that changes
//! the type drops the values the new type does not use, and values no longer held are released
//! once the update is stored.

pub mod range;
pub mod repair;
#[cfg(test)]
mod tests;

pub use range::{IpRange, PortRange};

use crate::rest::{Resource, RestResult};
use crate::server::ApiServer;
use crate::storage::{Revision, Storage, StorageError, WriteOp};
use orch_types::validation::{invalid_error, FieldError};
use orch_types::{ApiError, DynamicObject};
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Where the address records are kept.
pub const IP_PREFIX: &str = "/serviceips/";
/// Where the node port records are kept.
pub const NODE_PORT_PREFIX: &str = "/servicenodeports/";

/// How Services are given addresses and node ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAllocConfig {
    /// `--service-cluster-ip-range`.
    pub cluster_ip_range: IpRange,
    /// `--service-node-port-range`.
    pub node_port_range: PortRange,
    /// How often [`repair`] runs (upstream: every 3 minutes), besides once at start.
    pub repair_interval: Duration,
    /// A record no Service holds is freed once it is this old: longer than a write takes
    /// between its record and the Service (upstream's request timeout, one minute).
    pub leak_grace: Duration,
}

impl Default for ServiceAllocConfig {
    fn default() -> Self {
        Self {
            cluster_ip_range: IpRange::parse(range::DEFAULT_CLUSTER_IP_RANGE)
                .unwrap_or_else(|e| unreachable!("{e}")),
            node_port_range: PortRange::parse(range::DEFAULT_NODE_PORT_RANGE)
                .unwrap_or_else(|e| unreachable!("{e}")),
            repair_interval: Duration::from_secs(180),
            leak_grace: Duration::from_secs(60),
        }
    }
}

impl ServiceAllocConfig {
    /// With the ranges given as kube-apiserver's flags (`None`: the default).
    pub fn from_flags(
        cluster_ip_range: Option<&str>,
        node_port_range: Option<&str>,
    ) -> Result<Self, String> {
        let mut c = Self::default();
        if let Some(r) = cluster_ip_range {
            c.cluster_ip_range = IpRange::parse(r)?;
        }
        if let Some(r) = node_port_range {
            c.node_port_range = PortRange::parse(r)?;
        }
        Ok(c)
    }

    /// The `kubernetes` Service's address: the range's first.
    pub fn kubernetes_service_ip(&self) -> IpAddr {
        self.cluster_ip_range.first()
    }
}

/// The Service a record belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Owner {
    namespace: String,
    name: String,
}

impl Owner {
    fn of(svc: &DynamicObject) -> Self {
        Self {
            namespace: svc.namespace().unwrap_or_default().to_string(),
            name: svc.name().to_string(),
        }
    }

    fn of_record(record: &DynamicObject) -> Option<Self> {
        let p = record.data.get("spec")?.get("parentRef")?;
        Some(Self {
            namespace: p.get("namespace")?.as_str()?.to_string(),
            name: p.get("name")?.as_str()?.to_string(),
        })
    }
}

fn ip_key(ip: &str) -> String {
    format!("{IP_PREFIX}{ip}")
}

fn port_key(port: u16) -> String {
    format!("{NODE_PORT_PREFIX}{port}")
}

/// Why a value could not be taken.
enum TakeError {
    NotInRange,
    Allocated,
    Full,
    Storage(StorageError),
}

/// Holds the ranges and the values known to be taken; [`ApiServer::allocate_service`] and
/// [`repair`] use it.
#[derive(Debug)]
pub struct ServiceAllocator {
    config: ServiceAllocConfig,
    /// Offsets in the IP range known to be taken (a hint).
    taken_ips: Mutex<HashSet<u64>>,
    /// Ports known to be taken (a hint).
    taken_ports: Mutex<HashSet<u16>>,
}

impl ServiceAllocator {
    /// An allocator for `config`.
    pub fn new(config: ServiceAllocConfig) -> Self {
        Self {
            config,
            taken_ips: Mutex::default(),
            taken_ports: Mutex::default(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &ServiceAllocConfig {
        &self.config
    }

    fn hint_ip(&self, ip: IpAddr, taken: bool) {
        if let Some(off) = self.config.cluster_ip_range.offset(ip) {
            let mut t = self.taken_ips.lock().unwrap_or_else(|e| e.into_inner());
            if taken {
                t.insert(off);
            } else {
                t.remove(&off);
            }
        }
    }

    fn hint_port(&self, port: u16, taken: bool) {
        let mut t = self.taken_ports.lock().unwrap_or_else(|e| e.into_inner());
        if taken {
            t.insert(port);
        } else {
            t.remove(&port);
        }
    }

    /// Up to `n` candidate offsets of a range of `size` with a static band of `band`: random
    /// starts above the band, then the band, skipping `taken`.
    fn candidates(size: u64, band: u64, taken: &dyn Fn(u64) -> bool, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let mut rng = rand::rng();
        for (lo, hi) in [(band, size), (0, band)] {
            if lo >= hi {
                continue;
            }
            let span = hi - lo;
            let start = rng.random_range(0..span);
            let mut i = 0;
            while i < span && out.len() < n {
                let off = lo + (start + i) % span;
                if !taken(off) {
                    out.push(off);
                }
                i += 1;
            }
            if out.len() >= n {
                break;
            }
        }
        out
    }

    /// Takes `ip` for `owner` (a record created; on a dry run only checked).
    async fn take_ip(
        &self,
        storage: &dyn Storage,
        ip: IpAddr,
        owner: &Owner,
        now: &str,
        dry_run: bool,
        alloc: &mut Allocation,
    ) -> Result<(), TakeError> {
        if self.config.cluster_ip_range.offset(ip).is_none() {
            return Err(TakeError::NotInRange);
        }
        let key = ip_key(&ip.to_string());
        self.take(storage, key, ip_record(&ip, owner, now), dry_run, alloc)
            .await?;
        if !dry_run {
            self.hint_ip(ip, true);
        }
        Ok(())
    }

    /// Takes a free address for `owner`.
    async fn next_ip(
        &self,
        storage: &dyn Storage,
        owner: &Owner,
        now: &str,
        dry_run: bool,
        alloc: &mut Allocation,
    ) -> Result<IpAddr, TakeError> {
        let r = self.config.cluster_ip_range;
        let offsets = {
            let taken = self.taken_ips.lock().unwrap_or_else(|e| e.into_inner());
            Self::candidates(r.size(), r.static_band(), &|o| taken.contains(&o), 64)
        };
        for off in offsets {
            let ip = r.nth(off);
            match self.take_ip(storage, ip, owner, now, dry_run, alloc).await {
                Ok(()) => return Ok(ip),
                Err(TakeError::Allocated) => self.hint_ip(ip, true),
                Err(e) => return Err(e),
            }
        }
        Err(TakeError::Full)
    }

    /// Takes node port `port` for `owner`.
    async fn take_port(
        &self,
        storage: &dyn Storage,
        port: u16,
        owner: &Owner,
        now: &str,
        dry_run: bool,
        alloc: &mut Allocation,
    ) -> Result<(), TakeError> {
        if !self.config.node_port_range.contains(port) {
            return Err(TakeError::NotInRange);
        }
        self.take(
            storage,
            port_key(port),
            port_record(port, owner, now),
            dry_run,
            alloc,
        )
        .await?;
        if !dry_run {
            self.hint_port(port, true);
        }
        Ok(())
    }

    /// Takes a free node port for `owner`.
    async fn next_port(
        &self,
        storage: &dyn Storage,
        owner: &Owner,
        now: &str,
        dry_run: bool,
        alloc: &mut Allocation,
    ) -> Result<u16, TakeError> {
        let r = self.config.node_port_range;
        let offsets = {
            let taken = self.taken_ports.lock().unwrap_or_else(|e| e.into_inner());
            Self::candidates(
                u64::from(r.size),
                u64::from(r.static_band()),
                &|o| taken.contains(&r.nth(o as u32)),
                64,
            )
        };
        for off in offsets {
            let port = r.nth(off as u32);
            if alloc.holds(&port_key(port)) {
                continue;
            }
            match self
                .take_port(storage, port, owner, now, dry_run, alloc)
                .await
            {
                Ok(()) => return Ok(port),
                Err(TakeError::Allocated) => self.hint_port(port, true),
                Err(e) => return Err(e),
            }
        }
        Err(TakeError::Full)
    }

    /// Creates `record` at `key` if absent (dry run: checks it is absent).
    async fn take(
        &self,
        storage: &dyn Storage,
        key: String,
        record: DynamicObject,
        dry_run: bool,
        alloc: &mut Allocation,
    ) -> Result<(), TakeError> {
        if alloc.holds(&key) {
            return Err(TakeError::Allocated);
        }
        if dry_run {
            return match storage.get(&key).await {
                Ok(None) => {
                    alloc.dry.insert(key);
                    Ok(())
                }
                Ok(Some(_)) => Err(TakeError::Allocated),
                Err(e) => Err(TakeError::Storage(e)),
            };
        }
        let create = WriteOp::Create {
            key: key.clone(),
            object: record,
            ttl: None,
        };
        match storage.write(create).await {
            Ok(v) => {
                alloc.created.push((key, v.mod_revision));
                Ok(())
            }
            Err(StorageError::KeyExists { .. }) => Err(TakeError::Allocated),
            Err(e) => Err(TakeError::Storage(e)),
        }
    }

    /// Deletes the record at `key` if it belongs to `owner`; failures are logged (the record
    /// leaks until [`repair`] frees it).
    async fn release(&self, storage: &dyn Storage, key: &str, owner: &Owner) {
        let result = async {
            let Some(cur) = storage.get(key).await? else {
                return Ok(());
            };
            if Owner::of_record(&cur.object).as_ref() != Some(owner) {
                return Ok(());
            }
            match storage.delete(key, Some(cur.mod_revision)).await {
                Ok(_) | Err(StorageError::NotFound { .. } | StorageError::Conflict { .. }) => {
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        .await;
        match result {
            Ok(()) => self.forget(key),
            Err(e) => {
                tracing::warn!(key, error = %e, "releasing a Service allocation failed; repair frees it later")
            }
        }
    }

    /// Drops `key`'s value from the taken hints.
    fn forget(&self, key: &str) {
        if let Some(ip) = key.strip_prefix(IP_PREFIX).and_then(|s| s.parse().ok()) {
            self.hint_ip(ip, false);
        } else if let Some(p) = key
            .strip_prefix(NODE_PORT_PREFIX)
            .and_then(|s| s.parse().ok())
        {
            self.hint_port(p, false);
        }
    }

    /// Replaces the taken hints with the records listed by [`repair`].
    fn reset_hints(&self, keys: &BTreeSet<String>) {
        let r = self.config.cluster_ip_range;
        let ips: HashSet<u64> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(IP_PREFIX)?.parse().ok())
            .filter_map(|ip| r.offset(ip))
            .collect();
        let ports: HashSet<u16> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(NODE_PORT_PREFIX)?.parse().ok())
            .collect();
        *self.taken_ips.lock().unwrap_or_else(|e| e.into_inner()) = ips;
        *self.taken_ports.lock().unwrap_or_else(|e| e.into_inner()) = ports;
    }
}

fn record(kind: &str, name: &str, owner: &Owner, now: &str, labels: Value) -> DynamicObject {
    let mut o = DynamicObject::new("networking.k8s.io/v1", kind, name);
    if let Ok(meta) = serde_json::from_value(json!({
        "name": name,
        "creationTimestamp": now,
        "labels": labels,
    })) {
        o.metadata = meta;
    }
    o.data.insert(
        "spec".into(),
        json!({"parentRef": {
            "group": "",
            "resource": "services",
            "namespace": owner.namespace,
            "name": owner.name,
        }}),
    );
    o
}

/// An address record, shaped as upstream's IPAddress object.
fn ip_record(ip: &IpAddr, owner: &Owner, now: &str) -> DynamicObject {
    record(
        "IPAddress",
        &ip.to_string(),
        owner,
        now,
        json!({
            "ipaddress.kubernetes.io/ip-family": range::family_of(ip),
            "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io",
        }),
    )
}

/// A node port record (upstream keeps node ports in a bitmap; orch keys them like addresses).
fn port_record(port: u16, owner: &Owner, now: &str) -> DynamicObject {
    record(
        "ServiceNodePort",
        &port.to_string(),
        owner,
        now,
        json!({"service.kubernetes.io/managed-by": "portallocator.k8s.io"}),
    )
}

/// The records one write took and the ones it gives back: [`Allocation::commit`] once the
/// Service is stored, [`Allocation::revert`] if the write failed.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Allocation {
    owner: Option<Owner>,
    /// Records created, with their revision.
    created: Vec<(String, Revision)>,
    /// Keys a dry run found free.
    dry: BTreeSet<String>,
    /// Records the Service no longer holds once written.
    release: Vec<String>,
}

impl Allocation {
    fn holds(&self, key: &str) -> bool {
        self.dry.contains(key) || self.created.iter().any(|(k, _)| k == key)
    }

    /// The Service is stored: gives back what it no longer holds.
    pub async fn commit(self, api: &ApiServer) {
        if let Some(owner) = &self.owner {
            for key in &self.release {
                api.service_alloc
                    .release(api.storage.as_ref(), key, owner)
                    .await;
            }
        }
    }

    /// The write failed: deletes the records this write created (a compare on their revision,
    /// so nobody else's is touched).
    pub async fn revert(self, api: &ApiServer) {
        for (key, rev) in &self.created {
            match api.storage.delete(key, Some(*rev)).await {
                Ok(_) | Err(StorageError::NotFound { .. } | StorageError::Conflict { .. }) => {
                    api.service_alloc.forget(key);
                }
                Err(e) => {
                    tracing::warn!(key, error = %e, "rolling back a Service allocation failed; repair frees it later")
                }
            }
        }
    }
}

/// Whether `info` is the core Service resource.
pub(crate) fn is_service(info: Resource) -> bool {
    info.group.is_empty() && info.kind == "Service"
}

fn spec(o: &DynamicObject) -> Option<&Map<String, Value>> {
    o.data.get("spec")?.as_object()
}

fn str_of<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

fn type_of(s: &Map<String, Value>) -> &str {
    match str_of(s, "type") {
        "" => "ClusterIP",
        t => t,
    }
}

fn needs_cluster_ip(s: &Map<String, Value>) -> bool {
    type_of(s) != "ExternalName"
}

fn needs_node_port(s: &Map<String, Value>) -> bool {
    matches!(type_of(s), "NodePort" | "LoadBalancer")
}

fn needs_hc_node_port(s: &Map<String, Value>) -> bool {
    type_of(s) == "LoadBalancer" && str_of(s, "externalTrafficPolicy") == "Local"
}

/// Whether traffic can come from outside the cluster (upstream `ExternallyAccessible`): the
/// external traffic policy applies.
fn externally_accessible(s: &Map<String, Value>) -> bool {
    needs_node_port(s)
        || (type_of(s) == "ClusterIP"
            && s.get("externalIPs")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()))
}

fn cluster_ips(s: &Map<String, Value>) -> Vec<String> {
    s.get("clusterIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn node_port_of(p: &Value) -> u16 {
    p.get("nodePort")
        .and_then(Value::as_i64)
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(0)
}

fn hc_node_port(s: &Map<String, Value>) -> u16 {
    s.get("healthCheckNodePort")
        .and_then(Value::as_i64)
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(0)
}

fn ports(s: &Map<String, Value>) -> &[Value] {
    s.get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The addresses a stored Service holds (records expected for each).
fn held_ips(s: &Map<String, Value>) -> Vec<String> {
    if !needs_cluster_ip(s) {
        return Vec::new();
    }
    let mut ips = cluster_ips(s);
    if ips.is_empty() {
        ips.push(str_of(s, "clusterIP").to_string());
    }
    ips.retain(|ip| !ip.is_empty() && ip != "None");
    ips
}

/// The node ports a stored Service holds.
fn held_ports(s: &Map<String, Value>) -> BTreeSet<u16> {
    let mut out: BTreeSet<u16> = ports(s).iter().map(node_port_of).collect();
    out.insert(hc_node_port(s));
    out.remove(&0);
    out
}

/// The record keys a stored Service holds.
pub(crate) fn held_keys(svc: &DynamicObject) -> Vec<String> {
    let Some(s) = spec(svc) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = held_ips(s)
        .iter()
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| ip_key(&ip.to_string()))
        .collect();
    keys.extend(held_ports(s).into_iter().map(port_key));
    keys
}

/// Go's `%#v` of a `[]string` (how upstream shows `clusterIPs` in a field error).
fn go_strings(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// Before admission on an update of a Service (upstream `patchAllocatedValues` and
/// `dropTypeDependentFields`): values the client left out are kept from `old` when the type
/// still uses them; values the new type does not use are dropped when the client left them
/// as they were.
pub(crate) fn prepare_update(new: &mut DynamicObject, old: &DynamicObject) {
    let Some(os) = spec(old).cloned() else { return };
    let Some(ns) = new.data.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    // patchAllocatedValues
    if needs_cluster_ip(&os) && needs_cluster_ip(ns) {
        if str_of(ns, "clusterIP").is_empty() && !str_of(&os, "clusterIP").is_empty() {
            ns.insert("clusterIP".into(), os["clusterIP"].clone());
        }
        if cluster_ips(ns).is_empty() && !cluster_ips(&os).is_empty() {
            ns.insert("clusterIPs".into(), os["clusterIPs"].clone());
        }
    }
    if needs_node_port(&os) && needs_node_port(ns) {
        let used_new: BTreeSet<u16> = ports(ns).iter().map(node_port_of).collect();
        let by_name: BTreeMap<String, u16> = ports(&os)
            .iter()
            .map(|p| {
                let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                (name.to_string(), node_port_of(p))
            })
            .collect();
        if let Some(list) = ns.get_mut("ports").and_then(Value::as_array_mut) {
            for p in list.iter_mut() {
                if node_port_of(p) != 0 {
                    continue;
                }
                let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                let old = by_name.get(name).copied().unwrap_or(0);
                if old != 0 && !used_new.contains(&old) {
                    if let Some(p) = p.as_object_mut() {
                        p.insert("nodePort".into(), old.into());
                    }
                }
            }
        }
    }
    if needs_hc_node_port(&os) && needs_hc_node_port(ns) && hc_node_port(ns) == 0 {
        if let Some(v) = os.get("healthCheckNodePort") {
            ns.insert("healthCheckNodePort".into(), v.clone());
        }
    }
    // dropTypeDependentFields
    if needs_cluster_ip(&os) && !needs_cluster_ip(ns) {
        let same = |ns: &Map<String, Value>, k: &str| ns.get(k) == os.get(k);
        if same(ns, "clusterIP") && same(ns, "clusterIPs") {
            ns.remove("clusterIP");
            ns.remove("clusterIPs");
        }
        if same(ns, "ipFamilies") {
            ns.remove("ipFamilies");
        }
        if same(ns, "ipFamilyPolicy") {
            ns.remove("ipFamilyPolicy");
        }
    }
    let new_ports: Vec<u16> = ports(ns).iter().map(node_port_of).collect();
    let old_ports: Vec<u16> = ports(&os).iter().map(node_port_of).collect();
    if needs_node_port(&os) && !needs_node_port(ns) && new_ports == old_ports {
        if let Some(list) = ns.get_mut("ports").and_then(Value::as_array_mut) {
            for p in list.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    }
    if needs_hc_node_port(&os) && !needs_hc_node_port(ns) && hc_node_port(ns) == hc_node_port(&os) {
        ns.remove("healthCheckNodePort");
    }
    let same = |ns: &Map<String, Value>, k: &str| ns.get(k) == os.get(k);
    if type_of(&os) == "LoadBalancer"
        && type_of(ns) != "LoadBalancer"
        && same(ns, "allocateLoadBalancerNodePorts")
    {
        ns.remove("allocateLoadBalancerNodePorts");
    }
    if externally_accessible(&os) && !externally_accessible(ns) && same(ns, "externalTrafficPolicy")
    {
        ns.remove("externalTrafficPolicy");
    }
}

impl ApiServer {
    /// Allocates what a Service being created (`old == None`) or updated needs, after
    /// admission: its `ipFamilies`/`ipFamilyPolicy` defaulted, its cluster IP and node ports
    /// taken (requested ones checked: a 422 if taken or out of range). A dry run takes nothing.
    /// Not a Service: nothing to do.
    pub(crate) async fn allocate_service(
        &self,
        info: Resource,
        svc: &mut DynamicObject,
        old: Option<&DynamicObject>,
        dry_run: bool,
    ) -> RestResult<Allocation> {
        let mut alloc = Allocation::default();
        if !is_service(info) {
            return Ok(alloc);
        }
        alloc.owner = Some(Owner::of(svc));
        match self.allocate_into(svc, old, dry_run, &mut alloc).await {
            Ok(()) => Ok(alloc),
            Err(e) => {
                alloc.revert(self).await;
                Err(e)
            }
        }
    }

    /// Releases what a Service removed from storage held.
    pub(crate) async fn release_service(&self, info: Resource, svc: &DynamicObject) {
        if !is_service(info) {
            return;
        }
        let owner = Owner::of(svc);
        for key in held_keys(svc) {
            self.service_alloc
                .release(self.storage.as_ref(), &key, &owner)
                .await;
        }
    }

    async fn allocate_into(
        &self,
        svc: &mut DynamicObject,
        old: Option<&DynamicObject>,
        dry_run: bool,
        alloc: &mut Allocation,
    ) -> RestResult<()> {
        let a = &self.service_alloc;
        let storage = self.storage.as_ref();
        let owner = Owner::of(svc);
        let now = crate::rest::meta::time(self.config.clock.now())
            .0
            .to_string();
        let snapshot = svc.clone();
        let old_spec = old.and_then(spec).cloned();
        let Some(s) = svc.data.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let invalid = |errs: Vec<FieldError>| invalid_error(&snapshot, &errs);
        init_ip_families(a.config(), s, old_spec.as_ref()).map_err(invalid)?;
        // Cluster IPs.
        let old_ips: Vec<String> = old_spec.as_ref().map(held_ips).unwrap_or_default();
        let mut new_ips = Vec::new();
        if needs_cluster_ip(s) && str_of(s, "clusterIP") != "None" {
            let requested = str_of(s, "clusterIP").to_string();
            let ip = if requested.is_empty() {
                a.next_ip(storage, &owner, &now, dry_run, alloc)
                    .await
                    .map_err(|e| match e {
                        TakeError::Storage(e) => {
                            ApiError::internal(format!("failed to allocate a serviceIP: {e}"))
                        }
                        _ => ApiError::internal("failed to allocate a serviceIP: range is full"),
                    })?
                    .to_string()
            } else if old_ips.contains(&requested) {
                requested
            } else {
                let parsed: IpAddr = requested.parse().map_err(|_| {
                    ApiError::internal(format!("failed to parse service IP {requested:?}"))
                })?;
                if let Err(e) = a
                    .take_ip(storage, parsed, &owner, &now, dry_run, alloc)
                    .await
                {
                    let why = match e {
                        TakeError::NotInRange => format!(
                            "the provided IP ({parsed}) is not in the valid range. The range of valid IPs is {}",
                            a.config().cluster_ip_range
                        ),
                        TakeError::Allocated => "provided IP is already allocated".into(),
                        TakeError::Full => "range is full".into(),
                        TakeError::Storage(e) => {
                            return Err(ApiError::internal(format!(
                                "failed to allocate IP {requested}: {e}"
                            )))
                        }
                    };
                    return Err(invalid(vec![FieldError::invalid_raw(
                        "spec.clusterIPs",
                        go_strings(&cluster_ips(s)),
                        format!("failed to allocate IP {requested}: {why}"),
                    )]));
                }
                parsed.to_string()
            };
            s.insert("clusterIP".into(), ip.clone().into());
            s.insert("clusterIPs".into(), json!([ip.clone()]));
            new_ips.push(ip);
        }
        for ip in old_ips.iter().filter(|ip| !new_ips.contains(ip)) {
            alloc.release.push(ip_key(ip));
        }
        // Node ports.
        let old_ports = old_spec.as_ref().map(held_ports).unwrap_or_default();
        let mut new_ports = BTreeSet::new();
        let port_error = |i: Option<usize>, port: u16, e: TakeError| -> ApiError {
            let why = match e {
                TakeError::NotInRange => format!(
                    "provided port is not in the valid range. The range of valid ports is {}",
                    a.config().node_port_range
                ),
                TakeError::Allocated => "provided port is already allocated".into(),
                TakeError::Full => "range is full".into(),
                TakeError::Storage(e) => e.to_string(),
            };
            match i {
                Some(i) => invalid_error(
                    &snapshot,
                    &[FieldError::invalid_num(
                        format!("spec.ports[{i}].nodePort"),
                        i64::from(port),
                        why,
                    )],
                ),
                None => ApiError::internal(format!(
                    "failed to allocate requested HealthCheck NodePort {port}: {why}"
                )),
            }
        };
        if needs_node_port(s) {
            let all = type_of(s) == "NodePort"
                || s.get("allocateLoadBalancerNodePorts")
                    .and_then(Value::as_bool)
                    != Some(false);
            let list = ports(s).to_vec();
            // Ports with the same number share a node port (upstream `findRequestedNodePort`).
            let mut by_number: BTreeMap<i64, u16> = BTreeMap::new();
            for p in &list {
                let np = node_port_of(p);
                if np != 0 {
                    let number = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    by_number.entry(number).or_insert(np);
                }
            }
            let mut assigned = Vec::with_capacity(list.len());
            for (i, p) in list.iter().enumerate() {
                let number = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                let mut np = node_port_of(p);
                if np == 0 {
                    if !all {
                        assigned.push(0);
                        continue;
                    }
                    if let Some(shared) = by_number.get(&number) {
                        np = *shared;
                    } else {
                        np = a
                            .next_port(storage, &owner, &now, dry_run, alloc)
                            .await
                            .map_err(|e| {
                                let why = match e {
                                    TakeError::Storage(e) => e.to_string(),
                                    _ => "range is full".into(),
                                };
                                ApiError::internal(format!("failed to allocate a nodePort: {why}"))
                            })?;
                        by_number.insert(number, np);
                        new_ports.insert(np);
                    }
                } else if !old_ports.contains(&np) && !new_ports.contains(&np) {
                    a.take_port(storage, np, &owner, &now, dry_run, alloc)
                        .await
                        .map_err(|e| port_error(Some(i), np, e))?;
                }
                new_ports.insert(np);
                assigned.push(np);
            }
            if let Some(list) = s.get_mut("ports").and_then(Value::as_array_mut) {
                for (p, np) in list.iter_mut().zip(assigned) {
                    if let (Some(p), true) = (p.as_object_mut(), np != 0) {
                        p.insert("nodePort".into(), np.into());
                    }
                }
            }
        }
        if needs_hc_node_port(s) {
            let mut hc = hc_node_port(s);
            if hc == 0 {
                hc = a
                    .next_port(storage, &owner, &now, dry_run, alloc)
                    .await
                    .map_err(|_| {
                        ApiError::internal(
                            "failed to allocate a HealthCheck NodePort 0: range is full",
                        )
                    })?;
                s.insert("healthCheckNodePort".into(), hc.into());
            } else if !old_ports.contains(&hc) && !new_ports.contains(&hc) {
                a.take_port(storage, hc, &owner, &now, dry_run, alloc)
                    .await
                    .map_err(|e| port_error(None, hc, e))?;
            }
            new_ports.insert(hc);
        }
        for p in old_ports.iter().filter(|p| !new_ports.contains(p)) {
            alloc.release.push(port_key(*p));
        }
        Ok(())
    }
}

/// Defaults and checks `clusterIP`/`clusterIPs`, `ipFamilies` and `ipFamilyPolicy` for a
/// single-stack cluster (upstream `initIPFamilyFields` and the cluster-IP checks of
/// `ValidateServiceClusterIPsRelatedFields`).
fn init_ip_families(
    config: &ServiceAllocConfig,
    s: &mut Map<String, Value>,
    old: Option<&Map<String, Value>>,
) -> Result<(), Vec<FieldError>> {
    if !needs_cluster_ip(s) {
        return Ok(());
    }
    let family = config.cluster_ip_range.family();
    // `clusterIP` and `clusterIPs[0]` fill each other (upstream v1 conversion).
    let mut ips = cluster_ips(s);
    let ip = str_of(s, "clusterIP").to_string();
    if ips.is_empty() && !ip.is_empty() {
        ips.push(ip.clone());
        s.insert("clusterIPs".into(), json!(ips));
    } else if ip.is_empty() && !ips.is_empty() {
        s.insert("clusterIP".into(), ips[0].clone().into());
    }
    let ip = str_of(s, "clusterIP").to_string();
    let mut errs = Vec::new();
    if !ips.is_empty() && ips[0] != ip {
        errs.push(FieldError::invalid_raw(
            "spec.clusterIPs",
            go_strings(&ips),
            "first value must match `clusterIP`",
        ));
        return Err(errs);
    }
    let headless = ip == "None";
    let selectorless = s
        .get("selector")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    if str_of(s, "ipFamilyPolicy").is_empty() {
        let policy = match old
            .map(|o| str_of(o, "ipFamilyPolicy"))
            .filter(|p| !p.is_empty())
        {
            Some(p) => p,
            None if headless && selectorless => "RequireDualStack",
            None => "SingleStack",
        };
        s.insert("ipFamilyPolicy".into(), policy.into());
    }
    let policy = str_of(s, "ipFamilyPolicy").to_string();
    let mut families: Vec<String> = s
        .get("ipFamilies")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    if policy == "SingleStack" {
        if ips.len() == 2 {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                &policy,
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ));
        }
        if families.len() == 2 {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                &policy,
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ));
        }
    }
    for (i, ip) in ips.iter().enumerate() {
        if ip == "None" {
            break;
        }
        let Ok(parsed) = ip.parse::<IpAddr>() else {
            errs.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
            continue;
        };
        let fam = range::family_of(&parsed);
        match families.get(i) {
            Some(f) if f != fam => errs.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                ip,
                format!("expected an {f} value as indicated by `ipFamilies[{i}]`"),
            )),
            Some(_) => {}
            None if fam != family => errs.push(FieldError::invalid_raw(
                format!("spec.clusterIPs[{i}]"),
                go_strings(&ips),
                format!("{fam} is not configured on this cluster"),
            )),
            None => families.push(fam.to_string()),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    if headless && selectorless {
        if families.is_empty() {
            families.push(family.to_string());
        }
        if families.len() < 2 && policy != "SingleStack" {
            let alt = if families[0] == "IPv4" {
                "IPv6"
            } else {
                "IPv4"
            };
            families.push(alt.to_string());
        }
        s.insert("ipFamilies".into(), json!(families));
        return Ok(());
    }
    if policy == "RequireDualStack" {
        errs.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            &policy,
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, f) in families.iter().enumerate() {
        if f != family {
            errs.push(FieldError::invalid(
                format!("spec.ipFamilies[{i}]"),
                f,
                "not configured on this cluster",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    if families.is_empty() {
        families.push(family.to_string());
    }
    s.insert("ipFamilies".into(), json!(families));
    Ok(())
}
