//! The cluster's DNS records as a pure function of its Services, endpoints and Pods
//! ([`ClusterZone::build`]) and the answer to one question ([`ClusterZone::lookup`]).
//!
//! The schema is the Kubernetes DNS specification (kubernetes/dns `docs/specification.md`, the
//! schema CoreDNS's `kubernetes` plugin serves), for a cluster domain `<zone>`:
//!
//! - a Service with a cluster IP: `<svc>.<ns>.svc.<zone>` A (AAAA for IPv6 cluster IPs), PTR
//!   of each cluster IP back to that name, and `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV
//!   (`0 100 <port> <svc>.<ns>.svc.<zone>`) for each named port;
//! - a headless Service (`clusterIP: None`): one A/AAAA per ready endpoint address on the
//!   Service name; `<hostname>.<svc>.<ns>.svc.<zone>` per endpoint (its `hostname`, which the
//!   endpoints controller sets from the Pod's `hostname` when its `subdomain` is the Service:
//!   StatefulSet pods are `web-0.nginx.default.svc.<zone>`), or the dashed IP
//!   (`10-244-0-5.<svc>…`) for an endpoint without one; PTR of each endpoint IP to that name;
//!   SRV per named port with one target per endpoint;
//! - an ExternalName Service: a CNAME to `spec.externalName` (followed while the target is in
//!   the cluster domain);
//! - pods: `<a-b-c-d>.<ns>.pod.<zone>` A for any well-formed dashed address (CoreDNS's
//!   `pods insecure`, what kubeadm configures), and PTR of each running Pod's IP to that name
//!   when no headless Service names it;
//! - `dns-version.<zone>` TXT `1.1.0` and the SOA of the zone.
//!
//! `publishNotReadyAddresses` Services publish their not-ready endpoints too; other Services
//! only ready ones. A name that exists (a record's owner or an interior name such as
//! `<ns>.svc.<zone>`) without records of the asked type answers NODATA (NOERROR, no answer);
//! any other name in the zone NXDOMAIN; names outside the zone, and reverse names of
//! addresses the cluster does not know, are not ours ([`Answer::NotOurs`]: the server forwards
//! them). Wildcard queries (`*.svc.<zone>`, deprecated by the specification) are not served.
//!
//! A Service without a cluster IP yet (`clusterIP` empty: its allocation has not happened) is
//! answered like a headless one on its Service name (its ready endpoint addresses), so names
//! resolve to something reachable; it gets no per-endpoint names.

use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// TTL of every answer in seconds (CoreDNS `kubernetes` plugin default).
pub const TTL: u32 = 5;

/// The `dns-version` TXT record of the specification this schema follows.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The cluster domain is not a valid DNS name.
#[derive(Debug, thiserror::Error)]
#[error("invalid cluster domain {domain:?}: {message}")]
pub struct ZoneError {
    /// The domain given.
    pub domain: String,
    /// Why it is not a name.
    pub message: String,
}

/// One port of a set of endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPort {
    /// The port's name (empty: unnamed, no SRV record).
    pub name: String,
    /// The port number.
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

/// One endpoint address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointAddress {
    /// Its IP.
    pub ip: IpAddr,
    /// Its `hostname` (empty: none).
    pub hostname: String,
    /// Ready (serving traffic).
    pub ready: bool,
}

/// The endpoints of one Service, from its Endpoints object (or EndpointSlices), reduced to
/// what DNS needs: groups of addresses that share the same ports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceEndpoints {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub service: String,
    /// (addresses, ports) groups.
    pub groups: Vec<(Vec<EndpointAddress>, Vec<EndpointPort>)>,
}

impl ServiceEndpoints {
    /// Reads an Endpoints object (its subsets' `addresses` are ready, `notReadyAddresses` not);
    /// addresses that are not IPs are skipped.
    pub fn from_endpoints(ep: &Endpoints) -> Self {
        let groups = ep
            .subsets
            .iter()
            .flatten()
            .map(|s| {
                let addr = |a: &k8s_openapi::api::core::v1::EndpointAddress, ready: bool| {
                    IpAddr::from_str(&a.ip).ok().map(|ip| EndpointAddress {
                        ip,
                        hostname: a.hostname.clone().unwrap_or_default(),
                        ready,
                    })
                };
                let addresses = s
                    .addresses
                    .iter()
                    .flatten()
                    .filter_map(|a| addr(a, true))
                    .chain(
                        s.not_ready_addresses
                            .iter()
                            .flatten()
                            .filter_map(|a| addr(a, false)),
                    )
                    .collect();
                let ports = s
                    .ports
                    .iter()
                    .flatten()
                    .filter_map(|p| {
                        Some(EndpointPort {
                            name: p.name.clone().unwrap_or_default(),
                            port: u16::try_from(p.port).ok()?,
                            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        })
                    })
                    .collect();
                (addresses, ports)
            })
            .collect();
        Self {
            namespace: ep.metadata.namespace.clone().unwrap_or_default(),
            service: ep.metadata.name.clone().unwrap_or_default(),
            groups,
        }
    }
}

/// What the zone answers to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The records of the answer section (a CNAME chain first when there is one).
    Records(Vec<Record>),
    /// The name exists, without records of the asked type: NOERROR with the SOA.
    NoData,
    /// No such name in the zone: NXDOMAIN with the SOA.
    NxDomain,
    /// Not in the cluster domain, or the reverse name of an address the cluster does not
    /// know: to be forwarded.
    NotOurs,
}

/// The records of a cluster domain, built once per change of the cluster and then only read.
#[derive(Debug, Clone)]
pub struct ClusterZone {
    domain: Name,
    records: HashMap<(Name, RecordType), Vec<Record>>,
    /// Every owner name and each of its ancestors up to the domain.
    names: HashSet<Name>,
    /// Reverse names (`…in-addr.arpa.`) the cluster answers.
    reverse: HashMap<Name, Vec<Record>>,
    soa: Record,
}

/// The answer-building state of [`ClusterZone::build`].
struct Builder {
    domain: Name,
    records: HashMap<(Name, RecordType), Vec<Record>>,
    names: HashSet<Name>,
    reverse: HashMap<Name, Vec<Record>>,
}

impl Builder {
    fn add(&mut self, name: Name, rdata: RData) {
        let mut n = name.clone();
        while n.num_labels() > self.domain.num_labels() && self.names.insert(n.clone()) {
            n = n.base_name();
        }
        let record = Record::from_rdata(name.clone(), TTL, rdata);
        let set = self
            .records
            .entry((name, record.record_type()))
            .or_default();
        if !set.contains(&record) {
            set.push(record);
        }
    }

    fn add_ip(&mut self, name: &Name, ip: IpAddr) {
        let rdata = match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        self.add(name.clone(), rdata);
    }

    fn add_ptr(&mut self, ip: IpAddr, target: &Name) {
        let arpa = Name::from(ip);
        let record = Record::from_rdata(arpa.clone(), TTL, RData::PTR(PTR(target.clone())));
        let set = self.reverse.entry(arpa).or_default();
        if !set.contains(&record) {
            set.push(record);
        }
    }
}

/// `name` + `.` + `base`, `None` when a label is not a valid DNS label.
fn child(base: &Name, label: &str) -> Option<Name> {
    base.prepend_label(label).ok()
}

/// The dashed form of an address (`10-244-0-5`, IPv6 `fd00--1`), as endpoint and pod names use.
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The address of a dashed label, if it is one.
fn undashed(label: &str) -> Option<IpAddr> {
    if label.contains('.') || label.contains(':') {
        return None;
    }
    Ipv4Addr::from_str(&label.replace('-', "."))
        .map(IpAddr::V4)
        .or_else(|_| Ipv6Addr::from_str(&label.replace('-', ":")).map(IpAddr::V6))
        .ok()
}

impl ClusterZone {
    /// The records of `domain` (e.g. `cluster.local`) for these objects; `serial` is the SOA
    /// serial (bump it on each rebuild so caches can tell versions apart).
    pub fn build(
        domain: &str,
        serial: u32,
        services: &[&Service],
        endpoints: &[ServiceEndpoints],
        pods: &[&Pod],
    ) -> Result<Self, ZoneError> {
        let invalid = |message: String| ZoneError {
            domain: domain.into(),
            message,
        };
        let mut zone = Name::from_ascii(domain.trim_end_matches('.'))
            .map_err(|e| invalid(e.to_string()))?
            .to_lowercase();
        zone.set_fqdn(true);
        if zone.is_root() {
            return Err(invalid("the root is not a cluster domain".into()));
        }
        let mname = Name::from_ascii("ns.dns")
            .and_then(|n| n.append_domain(&zone))
            .map_err(|e| invalid(e.to_string()))?;
        let rname = Name::from_ascii("hostmaster")
            .and_then(|n| n.append_domain(&zone))
            .map_err(|e| invalid(e.to_string()))?;
        // Refresh, retry, expire and minimum as CoreDNS's kubernetes plugin sets them.
        let soa = Record::from_rdata(
            zone.clone(),
            TTL,
            RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, TTL)),
        );
        let mut b = Builder {
            domain: zone.clone(),
            records: HashMap::new(),
            names: HashSet::new(),
            reverse: HashMap::new(),
        };
        b.records
            .insert((zone.clone(), RecordType::SOA), vec![soa.clone()]);
        if let Some(v) = child(&zone, "dns-version") {
            b.add(v, RData::TXT(TXT::new(vec![SCHEMA_VERSION.into()])));
        }
        let svc_base = child(&zone, "svc").ok_or_else(|| invalid("too long".into()))?;
        let pod_base = child(&zone, "pod").ok_or_else(|| invalid("too long".into()))?;
        b.names.insert(svc_base.clone());
        b.names.insert(pod_base.clone());

        let by_service: HashMap<(&str, &str), &ServiceEndpoints> = endpoints
            .iter()
            .map(|e| ((e.namespace.as_str(), e.service.as_str()), e))
            .collect();
        // IPs a headless Service names, so pods' own PTRs do not shadow them.
        let mut named_ips = HashSet::new();
        for svc in services {
            let (Some(ns), Some(name), Some(spec)) = (
                svc.metadata.namespace.as_deref(),
                svc.metadata.name.as_deref(),
                svc.spec.as_ref(),
            ) else {
                continue;
            };
            let Some(svc_name) = child(&svc_base, ns).and_then(|n| child(&n, name)) else {
                continue;
            };
            let eps = by_service.get(&(ns, name));
            let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
            let groups = || {
                eps.into_iter().flat_map(|e| e.groups.iter()).map(|(a, p)| {
                    let a: Vec<&EndpointAddress> =
                        a.iter().filter(|a| a.ready || publish_not_ready).collect();
                    (a, p)
                })
            };
            if spec.type_.as_deref() == Some("ExternalName") {
                let Some(target) = spec
                    .external_name
                    .as_deref()
                    .and_then(|t| Name::from_ascii(t.trim_end_matches('.')).ok())
                else {
                    continue;
                };
                let mut target = target;
                target.set_fqdn(true);
                b.add(svc_name, RData::CNAME(CNAME(target)));
                continue;
            }
            let cluster_ips: Vec<&str> = match (&spec.cluster_ips, &spec.cluster_ip) {
                (Some(ips), _) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
                (_, Some(ip)) if !ip.is_empty() => vec![ip.as_str()],
                _ => vec![],
            };
            let headless = cluster_ips.first() == Some(&"None");
            let service_ports: Vec<(String, u16, String)> = spec
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some((
                        p.name.clone().filter(|n| !n.is_empty())?,
                        u16::try_from(p.port).ok()?,
                        p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    ))
                })
                .collect();
            if !headless && !cluster_ips.is_empty() {
                for ip in cluster_ips.iter().filter_map(|i| IpAddr::from_str(i).ok()) {
                    b.add_ip(&svc_name, ip);
                    b.add_ptr(ip, &svc_name);
                }
                for (port, number, proto) in &service_ports {
                    if let Some(srv) = srv_name(&svc_name, port, proto) {
                        b.add(srv, RData::SRV(SRV::new(0, 100, *number, svc_name.clone())));
                    }
                }
                continue;
            }
            // Headless, or no cluster IP yet: the endpoints themselves.
            let mut any = false;
            for (addresses, ports) in groups() {
                for a in &addresses {
                    any = true;
                    b.add_ip(&svc_name, a.ip);
                    if !headless {
                        continue;
                    }
                    let label = if a.hostname.is_empty() {
                        dashed(a.ip)
                    } else {
                        a.hostname.clone()
                    };
                    let Some(ep_name) = child(&svc_name, &label) else {
                        continue;
                    };
                    b.add_ip(&ep_name, a.ip);
                    b.add_ptr(a.ip, &ep_name);
                    named_ips.insert(a.ip);
                    for p in ports.iter().filter(|p| !p.name.is_empty()) {
                        if let Some(srv) = srv_name(&svc_name, &p.name, &p.protocol) {
                            b.add(srv, RData::SRV(SRV::new(0, 100, p.port, ep_name.clone())));
                        }
                    }
                }
                if !headless {
                    for p in ports.iter().filter(|p| !p.name.is_empty()) {
                        if let Some(srv) = srv_name(&svc_name, &p.name, &p.protocol) {
                            b.add(srv, RData::SRV(SRV::new(0, 100, p.port, svc_name.clone())));
                        }
                    }
                }
            }
            if !any {
                // The Service exists even with nothing behind it: its name answers NODATA.
                b.names.insert(svc_name.clone());
                let mut n = svc_name.base_name();
                while n.num_labels() > zone.num_labels() && b.names.insert(n.clone()) {
                    n = n.base_name();
                }
            }
        }
        for pod in pods {
            let Some(status) = pod.status.as_ref() else {
                continue;
            };
            let host_network = pod
                .spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false);
            if host_network || !matches!(status.phase.as_deref(), Some("Running" | "Pending")) {
                continue;
            }
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let ips = status
                .pod_ips
                .iter()
                .flatten()
                .map(|p| p.ip.as_str())
                .chain(status.pod_ip.as_deref());
            for ip in ips.filter_map(|i| IpAddr::from_str(i).ok()) {
                if named_ips.contains(&ip) {
                    continue;
                }
                if let Some(name) = child(&pod_base, ns).and_then(|n| child(&n, &dashed(ip))) {
                    b.add_ptr(ip, &name);
                }
            }
        }
        let mut records = b.records;
        // A stable order: the same objects give the same answers.
        for set in records.values_mut() {
            set.sort_by_key(|r| r.data().to_string());
        }
        Ok(Self {
            domain: zone,
            records,
            names: b.names,
            reverse: b.reverse,
            soa,
        })
    }

    /// The cluster domain (fully qualified, lower case).
    pub fn domain(&self) -> &Name {
        &self.domain
    }

    /// The SOA record of the zone (for the authority section of negative answers).
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// Number of distinct (name, type) record sets, for logs and benchmarks.
    pub fn len(&self) -> usize {
        self.records.len() + self.reverse.len()
    }

    /// Whether the zone holds nothing but its SOA and version (never: kept for clippy's
    /// `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.reverse.is_empty()
    }

    /// The answer to `name` `rtype` (names compare case-insensitively).
    pub fn lookup(&self, name: &Name, rtype: RecordType) -> Answer {
        let mut name = name.clone();
        name.set_fqdn(true);
        if let Some(ptrs) = self.reverse.get(&name) {
            return match rtype {
                RecordType::PTR | RecordType::ANY => Answer::Records(ptrs.clone()),
                _ => Answer::NoData,
            };
        }
        if !self.domain.zone_of(&name) {
            return Answer::NotOurs;
        }
        if let Some(ip) = self.pod_address(&name) {
            return match (ip, rtype) {
                (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => {
                    Answer::Records(vec![Record::from_rdata(name, TTL, RData::A(A(v4)))])
                }
                (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => {
                    Answer::Records(vec![Record::from_rdata(name, TTL, RData::AAAA(AAAA(v6)))])
                }
                _ => Answer::NoData,
            };
        }
        let mut chain = Vec::new();
        let mut current = name;
        // CNAMEs inside the zone are followed (a few hops at most: ExternalName Services can
        // point at each other).
        for _ in 0..8 {
            if rtype == RecordType::ANY {
                let all: Vec<Record> = self
                    .records
                    .iter()
                    .filter(|((n, _), _)| *n == current)
                    .flat_map(|(_, r)| r.iter().cloned())
                    .collect();
                if !all.is_empty() {
                    chain.extend(all);
                    return Answer::Records(chain);
                }
            } else if let Some(rs) = self.records.get(&(current.clone(), rtype)) {
                chain.extend(rs.iter().cloned());
                return Answer::Records(chain);
            }
            if let Some(cname) = self.records.get(&(current.clone(), RecordType::CNAME)) {
                chain.extend(cname.iter().cloned());
                let Some(RData::CNAME(CNAME(target))) = cname.first().map(Record::data) else {
                    break;
                };
                if !self.domain.zone_of(target) {
                    // Out of the zone: the client (or the server) resolves the target.
                    return Answer::Records(chain);
                }
                current = target.clone();
                continue;
            }
            break;
        }
        if !chain.is_empty() {
            return Answer::Records(chain);
        }
        if self.names.contains(&current) || current == self.domain {
            Answer::NoData
        } else {
            Answer::NxDomain
        }
    }

    /// The address of `<a-b-c-d>.<ns>.pod.<zone>`, if `name` is one.
    fn pod_address(&self, name: &Name) -> Option<IpAddr> {
        let extra = name.num_labels().checked_sub(self.domain.num_labels())?;
        if extra != 3 {
            return None;
        }
        let labels: Vec<&[u8]> = name.iter().collect();
        if !labels[2].eq_ignore_ascii_case(b"pod") {
            return None;
        }
        undashed(std::str::from_utf8(labels[0]).ok()?)
    }
}

/// `_<port>._<proto>.<service name>`.
fn srv_name(service: &Name, port: &str, protocol: &str) -> Option<Name> {
    let proto = format!("_{}", protocol.to_ascii_lowercase());
    child(service, &proto).and_then(|n| child(&n, &format!("_{port}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn rdata(a: &Answer) -> Vec<String> {
        match a {
            Answer::Records(rs) => rs
                .iter()
                .map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data()))
                .collect(),
            other => vec![format!("{other:?}")],
        }
    }

    fn ep(
        ns: &str,
        svc: &str,
        addrs: &[(&str, &str, bool)],
        ports: &[(&str, u16)],
    ) -> ServiceEndpoints {
        ServiceEndpoints {
            namespace: ns.into(),
            service: svc.into(),
            groups: vec![(
                addrs
                    .iter()
                    .map(|(ip, h, ready)| EndpointAddress {
                        ip: ip.parse().unwrap(),
                        hostname: (*h).into(),
                        ready: *ready,
                    })
                    .collect(),
                ports
                    .iter()
                    .map(|(n, p)| EndpointPort {
                        name: (*n).into(),
                        port: *p,
                        protocol: "TCP".into(),
                    })
                    .collect(),
            )],
        }
    }

    /// A cluster with one of each kind of Service.
    fn zone() -> ClusterZone {
        let web = svc(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                               {"port": 8080}]}
        }));
        let v6 = svc(json!({
            "metadata": {"name": "six", "namespace": "default"},
            "spec": {"clusterIP": "fd00::20", "clusterIPs": ["fd00::20"], "ports": [{"port": 80}]}
        }));
        let nginx = svc(json!({
            "metadata": {"name": "nginx", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80}]}
        }));
        let ext = svc(json!({
            "metadata": {"name": "search", "namespace": "prod"},
            "spec": {"type": "ExternalName", "externalName": "www.example.com"}
        }));
        let alias = svc(json!({
            "metadata": {"name": "alias", "namespace": "prod"},
            "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local."}
        }));
        let pending = svc(json!({
            "metadata": {"name": "noip", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80}]}
        }));
        let empty = svc(json!({
            "metadata": {"name": "empty", "namespace": "default"},
            "spec": {"clusterIP": "None"}
        }));
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "status": {"phase": "Running", "podIP": "10.244.0.9", "podIPs": [{"ip": "10.244.0.9"}]}
        }))
        .unwrap();
        let eps = vec![
            ep(
                "default",
                "nginx",
                &[
                    ("10.244.0.5", "web-0", true),
                    ("10.244.0.6", "", true),
                    ("10.244.0.7", "web-2", false),
                ],
                &[("web", 80)],
            ),
            ep(
                "default",
                "noip",
                &[("10.244.0.8", "", true)],
                &[("http", 80)],
            ),
        ];
        ClusterZone::build(
            "cluster.local",
            1,
            &[&web, &v6, &nginx, &ext, &alias, &pending, &empty],
            &eps,
            &[&pod],
        )
        .unwrap()
    }

    #[test]
    fn cluster_ip_service_a_srv_ptr() {
        let z = zone();
        assert_eq!(
            rdata(&z.lookup(&name("web.default.svc.cluster.local."), RecordType::A)),
            ["web.default.svc.cluster.local. A 10.96.0.20"]
        );
        // Case does not matter.
        assert_eq!(
            rdata(&z.lookup(&name("WEB.Default.svc.cluster.local."), RecordType::A)).len(),
            1
        );
        assert_eq!(
            rdata(&z.lookup(&name("_http._tcp.web.default.svc.cluster.local."), RecordType::SRV)),
            ["_http._tcp.web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local."]
        );
        assert_eq!(
            rdata(&z.lookup(&name("20.0.96.10.in-addr.arpa."), RecordType::PTR)),
            ["20.0.96.10.in-addr.arpa. PTR web.default.svc.cluster.local."]
        );
        // The unnamed port has no SRV; the name above it exists.
        assert_eq!(
            z.lookup(
                &name("_tcp.web.default.svc.cluster.local."),
                RecordType::SRV
            ),
            Answer::NoData
        );
    }

    #[test]
    fn ipv6_cluster_ip_is_aaaa() {
        let z = zone();
        let n = name("six.default.svc.cluster.local.");
        assert_eq!(
            rdata(&z.lookup(&n, RecordType::AAAA)),
            ["six.default.svc.cluster.local. AAAA fd00::20"]
        );
        assert_eq!(z.lookup(&n, RecordType::A), Answer::NoData);
        assert_eq!(
            rdata(&z.lookup(
                &Name::from(IpAddr::from_str("fd00::20").unwrap()),
                RecordType::PTR
            )),
            [format!(
                "{} PTR six.default.svc.cluster.local.",
                Name::from(IpAddr::from_str("fd00::20").unwrap())
            )]
        );
    }

    #[test]
    fn headless_service_per_endpoint_records() {
        let z = zone();
        // Ready endpoints only.
        assert_eq!(
            rdata(&z.lookup(&name("nginx.default.svc.cluster.local."), RecordType::A)),
            [
                "nginx.default.svc.cluster.local. A 10.244.0.5",
                "nginx.default.svc.cluster.local. A 10.244.0.6"
            ]
        );
        // StatefulSet pod name (hostname.subdomain).
        assert_eq!(
            rdata(&z.lookup(
                &name("web-0.nginx.default.svc.cluster.local."),
                RecordType::A
            )),
            ["web-0.nginx.default.svc.cluster.local. A 10.244.0.5"]
        );
        // An endpoint without hostname gets its dashed IP.
        assert_eq!(
            rdata(&z.lookup(
                &name("10-244-0-6.nginx.default.svc.cluster.local."),
                RecordType::A
            )),
            ["10-244-0-6.nginx.default.svc.cluster.local. A 10.244.0.6"]
        );
        assert_eq!(
            z.lookup(
                &name("web-2.nginx.default.svc.cluster.local."),
                RecordType::A
            ),
            Answer::NxDomain
        );
        assert_eq!(
            rdata(&z.lookup(&name("_web._tcp.nginx.default.svc.cluster.local."), RecordType::SRV)),
            [
                "_web._tcp.nginx.default.svc.cluster.local. SRV 0 100 80 10-244-0-6.nginx.default.svc.cluster.local.",
                "_web._tcp.nginx.default.svc.cluster.local. SRV 0 100 80 web-0.nginx.default.svc.cluster.local."
            ]
        );
        assert_eq!(
            rdata(&z.lookup(&name("5.0.244.10.in-addr.arpa."), RecordType::PTR)),
            ["5.0.244.10.in-addr.arpa. PTR web-0.nginx.default.svc.cluster.local."]
        );
        // A headless Service without endpoints exists: NODATA, not NXDOMAIN.
        assert_eq!(
            z.lookup(&name("empty.default.svc.cluster.local."), RecordType::A),
            Answer::NoData
        );
    }

    #[test]
    fn publish_not_ready_addresses() {
        let s = svc(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true}
        }));
        let z = ClusterZone::build(
            "cluster.local",
            1,
            &[&s],
            &[ep("default", "db", &[("10.244.1.2", "db-0", false)], &[])],
            &[],
        )
        .unwrap();
        assert_eq!(
            rdata(&z.lookup(&name("db-0.db.default.svc.cluster.local."), RecordType::A)),
            ["db-0.db.default.svc.cluster.local. A 10.244.1.2"]
        );
    }

    #[test]
    fn service_without_cluster_ip_answers_its_endpoints() {
        let z = zone();
        assert_eq!(
            rdata(&z.lookup(&name("noip.default.svc.cluster.local."), RecordType::A)),
            ["noip.default.svc.cluster.local. A 10.244.0.8"]
        );
        assert_eq!(
            rdata(&z.lookup(&name("_http._tcp.noip.default.svc.cluster.local."), RecordType::SRV)),
            ["_http._tcp.noip.default.svc.cluster.local. SRV 0 100 80 noip.default.svc.cluster.local."]
        );
    }

    #[test]
    fn external_name_is_a_cname() {
        let z = zone();
        assert_eq!(
            rdata(&z.lookup(&name("search.prod.svc.cluster.local."), RecordType::A)),
            ["search.prod.svc.cluster.local. CNAME www.example.com."]
        );
        assert_eq!(
            rdata(&z.lookup(&name("search.prod.svc.cluster.local."), RecordType::CNAME)),
            ["search.prod.svc.cluster.local. CNAME www.example.com."]
        );
        // In-zone targets are followed.
        assert_eq!(
            rdata(&z.lookup(&name("alias.prod.svc.cluster.local."), RecordType::A)),
            [
                "alias.prod.svc.cluster.local. CNAME web.default.svc.cluster.local.",
                "web.default.svc.cluster.local. A 10.96.0.20"
            ]
        );
    }

    #[test]
    fn pod_records_and_ptr() {
        let z = zone();
        assert_eq!(
            rdata(&z.lookup(&name("1-2-3-4.default.pod.cluster.local."), RecordType::A)),
            ["1-2-3-4.default.pod.cluster.local. A 1.2.3.4"]
        );
        assert_eq!(
            z.lookup(
                &name("1-2-3-4.default.pod.cluster.local."),
                RecordType::AAAA
            ),
            Answer::NoData
        );
        assert_eq!(
            z.lookup(&name("not-an-ip.default.pod.cluster.local."), RecordType::A),
            Answer::NxDomain
        );
        assert_eq!(
            rdata(&z.lookup(&name("9.0.244.10.in-addr.arpa."), RecordType::PTR)),
            ["9.0.244.10.in-addr.arpa. PTR 10-244-0-9.default.pod.cluster.local."]
        );
    }

    #[test]
    fn nxdomain_nodata_and_not_ours() {
        let z = zone();
        assert_eq!(
            z.lookup(&name("missing.default.svc.cluster.local."), RecordType::A),
            Answer::NxDomain
        );
        assert_eq!(
            z.lookup(&name("web.nowhere.svc.cluster.local."), RecordType::A),
            Answer::NxDomain
        );
        // Interior names exist.
        for n in [
            "default.svc.cluster.local.",
            "svc.cluster.local.",
            "cluster.local.",
        ] {
            assert_eq!(z.lookup(&name(n), RecordType::A), Answer::NoData, "{n}");
        }
        assert_eq!(
            z.lookup(&name("web.default.svc.cluster.local."), RecordType::TXT),
            Answer::NoData
        );
        assert_eq!(
            z.lookup(&name("example.com."), RecordType::A),
            Answer::NotOurs
        );
        // The reverse name of an address the cluster does not know is forwarded.
        assert_eq!(
            z.lookup(&name("8.8.8.8.in-addr.arpa."), RecordType::PTR),
            Answer::NotOurs
        );
        assert_eq!(
            rdata(&z.lookup(&name("dns-version.cluster.local."), RecordType::TXT)),
            ["dns-version.cluster.local. TXT 1.1.0"]
        );
        assert_eq!(
            rdata(&z.lookup(&name("cluster.local."), RecordType::SOA)).len(),
            1
        );
    }

    #[test]
    fn custom_domain_and_endpoints_object() {
        let s = svc(json!({
            "metadata": {"name": "api", "namespace": "team"},
            "spec": {"clusterIP": "None"}
        }));
        let e: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "api", "namespace": "team"},
            "subsets": [{"addresses": [{"ip": "10.1.0.4", "hostname": "api-0"}],
                         "notReadyAddresses": [{"ip": "10.1.0.5"}],
                         "ports": [{"name": "grpc", "port": 9000, "protocol": "TCP"}]}]
        }))
        .unwrap();
        let z = ClusterZone::build(
            "corp.example",
            3,
            &[&s],
            &[ServiceEndpoints::from_endpoints(&e)],
            &[],
        )
        .unwrap();
        assert_eq!(
            rdata(&z.lookup(&name("_grpc._tcp.api.team.svc.corp.example."), RecordType::SRV)),
            ["_grpc._tcp.api.team.svc.corp.example. SRV 0 100 9000 api-0.api.team.svc.corp.example."]
        );
        assert_eq!(
            z.lookup(&name("api.team.svc.cluster.local."), RecordType::A),
            Answer::NotOurs
        );
        assert!(ClusterZone::build("", 1, &[], &[], &[]).is_err());
        assert!(ClusterZone::build("bad..domain", 1, &[], &[], &[]).is_err());
    }
}
