//! discovery.k8s.io/v1 EndpointSlice, after upstream
//! `pkg/apis/discovery/validation/validation.go` (1.33): the address type is IPv4, IPv6 or
//! FQDN (and immutable), at most 1,000 endpoints of 1 to 100 addresses each, addresses valid
//! for the address type (IPs neither unspecified nor link-local, as `ValidateEndpointIP` in
//! `pkg/apis/core/validation`), node names and hostnames well formed, at most 16
//! `deprecatedTopology` labels, at most 8 zone hints, at most 20,000 ports with unique
//! DNS-label names, a known protocol and a qualified-name `appProtocol`.
//!
//! One deliberate difference: loopback addresses are accepted (upstream refuses
//! `127.0.0.0/8` and `::1`), as orch's Endpoints accept them. On one machine the API server
//! (`orch up` listens on 127.0.0.1 by default), the node IP and so the IPs of pods without a
//! network namespace of their own are loopback addresses; refused, neither the `kubernetes`
//! Service's slice nor the slices of those pods could be written.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointHints, EndpointPort, EndpointSlice};

use super::field::{FieldError, Path};
use super::meta::{self, immutable, NameRule};
use crate::names;

/// Address types a v1 EndpointSlice may have (upstream `supportedAddressTypes`).
pub const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const MAX_TOPOLOGY_LABELS: usize = 16;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 20_000;
const MAX_ENDPOINTS: usize = 1000;
const MAX_ZONE_HINTS: usize = 8;

/// EndpointSlice (create and update): upstream `ValidateEndpointSlice`.
pub(crate) fn endpoint_slice(s: &EndpointSlice) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&s.metadata, true, NameRule::Subdomain);
    let at = Path::new("addressType");
    if s.address_type.is_empty() {
        errs.push(FieldError::required(at, ""));
    } else if !ADDRESS_TYPES.contains(&s.address_type.as_str()) {
        errs.push(FieldError::not_supported(
            at,
            &s.address_type,
            ADDRESS_TYPES,
        ));
    }
    errs.extend(endpoints(&s.endpoints, &s.address_type));
    errs.extend(ports(s.ports.as_deref().unwrap_or_default()));
    errs
}

/// EndpointSlice update: the create rules and an immutable `addressType`
/// (upstream `ValidateEndpointSliceUpdate`).
pub(crate) fn endpoint_slice_update(new: &EndpointSlice, old: &EndpointSlice) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if new.address_type != old.address_type {
        errs.push(immutable(Path::new("addressType"), &new.address_type));
    }
    errs
}

fn invalid_all(p: &Path, value: &str, msgs: Vec<String>) -> Vec<FieldError> {
    msgs.into_iter()
        .map(|m| FieldError::invalid(p.clone(), value, m))
        .collect()
}

fn endpoints(eps: &[Endpoint], address_type: &str) -> Vec<FieldError> {
    let root = Path::new("endpoints");
    if eps.len() > MAX_ENDPOINTS {
        return vec![FieldError::too_many(root, eps.len(), MAX_ENDPOINTS)];
    }
    let mut errs = Vec::new();
    for (i, ep) in eps.iter().enumerate() {
        let ip = root.index(i);
        let ap = ip.child("addresses");
        if ep.addresses.is_empty() {
            errs.push(FieldError::required(
                ap.clone(),
                "must contain at least 1 address",
            ));
        } else if ep.addresses.len() > MAX_ADDRESSES {
            errs.push(FieldError::too_many(
                ap.clone(),
                ep.addresses.len(),
                MAX_ADDRESSES,
            ));
        }
        for (j, a) in ep.addresses.iter().enumerate() {
            errs.extend(address(a, address_type, &ap.index(j)));
        }
        if let Some(n) = &ep.node_name {
            let np = ip.child("nodeName");
            errs.extend(invalid_all(&np, n, names::is_dns1123_subdomain(n)));
        }
        let tp = ip.child("deprecatedTopology");
        let topology = ep.deprecated_topology.as_ref();
        if let Some(t) = topology.filter(|t| t.len() > MAX_TOPOLOGY_LABELS) {
            errs.push(FieldError::too_many(
                tp.clone(),
                t.len(),
                MAX_TOPOLOGY_LABELS,
            ));
        }
        errs.extend(meta::labels(topology, &tp));
        if let Some(h) = &ep.hostname {
            errs.extend(invalid_all(
                &ip.child("hostname"),
                h,
                names::is_dns1123_label(h),
            ));
        }
        if let Some(h) = &ep.hints {
            errs.extend(hints(h, &ip.child("hints")));
        }
    }
    errs
}

/// One address checked for the slice's address type; unknown types are not checked, as
/// upstream (their slices are refused for the type already).
fn address(a: &str, address_type: &str, p: &Path) -> Vec<FieldError> {
    let parsed = a.parse::<IpAddr>().ok();
    match address_type {
        "IPv4" | "IPv6" => {
            let (ok, msg) = if address_type == "IPv4" {
                (
                    matches!(parsed, Some(IpAddr::V4(_))),
                    "must be a valid IPv4 address",
                )
            } else {
                (
                    matches!(parsed, Some(IpAddr::V6(_))),
                    "must be a valid IPv6 address",
                )
            };
            let mut errs = Vec::new();
            if !ok {
                errs.push(FieldError::invalid(p.clone(), a, msg));
            }
            errs.extend(endpoint_ip(a, parsed, p));
            errs
        }
        "FQDN" => fqdn(a, p),
        _ => Vec::new(),
    }
}

/// Upstream `ValidateEndpointIP` (`pkg/apis/core/validation/validation.go`) but for its
/// loopback rule (see the module documentation).
fn endpoint_ip(a: &str, parsed: Option<IpAddr>, p: &Path) -> Vec<FieldError> {
    let Some(ip) = parsed else {
        return vec![FieldError::invalid(
            p.clone(),
            a,
            "must be a valid IP address",
        )];
    };
    let (unspecified, link_local, link_local_multicast) = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (
                v4.is_unspecified(),
                v4.is_link_local(),
                o[0] == 224 && o[1] == 0 && o[2] == 0,
            )
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (
                v6.is_unspecified(),
                s[0] & 0xffc0 == 0xfe80,
                s[0] & 0xff0f == 0xff02,
            )
        }
    };
    let mut errs = Vec::new();
    if unspecified {
        errs.push(FieldError::invalid(
            p.clone(),
            a,
            format!("may not be unspecified ({a})"),
        ));
    }
    if link_local {
        errs.push(FieldError::invalid(
            p.clone(),
            a,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_multicast {
        errs.push(FieldError::invalid(
            p.clone(),
            a,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

/// Upstream `IsFullyQualifiedDomainName` (`apimachinery/pkg/util/validation`): a DNS subdomain
/// of at least two labels, a trailing dot allowed; the first problem only.
fn fqdn(name: &str, p: &Path) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError::required(p.clone(), "")];
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let errs = names::is_dns1123_subdomain(name);
    if !errs.is_empty() {
        return vec![FieldError::invalid(p.clone(), name, errs.join(","))];
    }
    if name.split('.').count() < 2 {
        return vec![FieldError::invalid(
            p.clone(),
            name,
            "should be a domain with at least two segments separated by dots",
        )];
    }
    name.split('.')
        .find_map(|label| {
            let errs = names::is_dns1123_label(label);
            (!errs.is_empty()).then(|| FieldError::invalid(p.clone(), label, errs.join(",")))
        })
        .into_iter()
        .collect()
}

fn hints(h: &EndpointHints, p: &Path) -> Vec<FieldError> {
    let zp = p.child("forZones");
    let zones = h.for_zones.as_deref().unwrap_or_default();
    if zones.len() > MAX_ZONE_HINTS {
        return vec![FieldError::too_many(zp, zones.len(), MAX_ZONE_HINTS)];
    }
    let mut seen = BTreeSet::new();
    let mut errs = Vec::new();
    for (i, z) in zones.iter().enumerate() {
        let np = zp.index(i).child("name");
        if !seen.insert(z.name.as_str()) {
            errs.push(FieldError::duplicate(np.clone(), &z.name));
        }
        errs.extend(invalid_all(
            &np,
            &z.name,
            names::is_valid_label_value(&z.name),
        ));
    }
    errs
}

fn ports(ps: &[EndpointPort]) -> Vec<FieldError> {
    let root = Path::new("ports");
    if ps.len() > MAX_PORTS {
        return vec![FieldError::too_many(root, ps.len(), MAX_PORTS)];
    }
    let mut seen = BTreeSet::new();
    let mut errs = Vec::new();
    for (i, port) in ps.iter().enumerate() {
        let ip = root.index(i);
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            errs.extend(invalid_all(
                &ip.child("name"),
                name,
                names::is_dns1123_label(name),
            ));
        }
        if !seen.insert(name) {
            errs.push(FieldError::duplicate(ip.child("name"), name));
        }
        match port.protocol.as_deref() {
            None => errs.push(FieldError::required(ip.child("protocol"), "")),
            Some(x) if !PROTOCOLS.contains(&x) => {
                errs.push(FieldError::not_supported(
                    ip.child("protocol"),
                    x,
                    PROTOCOLS,
                ));
            }
            Some(_) => {}
        }
        if let Some(ap) = &port.app_protocol {
            errs.extend(invalid_all(
                &ip.child("appProtocol"),
                ap,
                names::is_qualified_name(ap),
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests;
