//! What the proxy programs, as plain data: one [`ServicePort`] per port of a proxied Service,
//! with its destinations and its endpoints, built from Services and either Endpoints or
//! EndpointSlices (the [`EndpointsSource`] trait hides which).
//!
//! Which Services are proxied follows upstream `pkg/proxy/servicechangetracker.go` and
//! `pkg/proxy/serviceport.go`: not ExternalName, not headless (`clusterIP: None`), not those
//! labelled `service.kubernetes.io/service-proxy-name` (another proxy owns them); IPv4 only.

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Label naming another proxy for a Service (upstream `LabelServiceProxyName`).
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";

/// Label of an EndpointSlice naming its Service (upstream `discovery.LabelServiceName`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `sessionAffinity: ClientIP`'s default timeout (upstream `DefaultClientIPServiceAffinitySeconds`).
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;

/// A transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// From the API's `TCP` / `UDP` / `SCTP` (absent = TCP); `None` for anything else.
    pub fn from_api(s: Option<&str>) -> Option<Self> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }

    /// nftables' name (`tcp`, `udp`, `sctp`).
    pub fn nft(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// One backend of a Service port, with its EndpointSlice conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Address.
    pub ip: Ipv4Addr,
    /// Target port.
    pub port: u16,
    /// `conditions.ready`.
    pub ready: bool,
    /// `conditions.serving`.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
}

impl Endpoint {
    /// A ready, serving, not terminating endpoint.
    pub fn ready(ip: Ipv4Addr, port: u16) -> Self {
        Self {
            ip,
            port,
            ready: true,
            serving: true,
            terminating: false,
        }
    }
}

/// One port of a proxied Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// `ports[].name` (may be empty for a single-port Service).
    pub port_name: String,
    /// `ports[].protocol`.
    pub protocol: Protocol,
    /// `spec.clusterIP`, when set.
    pub cluster_ip: Option<Ipv4Addr>,
    /// `ports[].port`.
    pub port: u16,
    /// `ports[].nodePort`, when set.
    pub node_port: Option<u16>,
    /// `spec.externalIPs` and `status.loadBalancer.ingress[].ip`: reached like the cluster IP.
    pub external_ips: Vec<Ipv4Addr>,
    /// `sessionAffinity: ClientIP`: its timeout in seconds.
    pub affinity_seconds: Option<u32>,
    /// Every endpoint of the port, ready or not (sorted, no duplicates).
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `namespace/name/protocol/port`: unique per Service port (the API refuses two ports with
    /// the same number and protocol), used to name its chains.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.protocol.nft(),
            self.port
        )
    }

    /// The endpoints that get new connections: the ready ones; when there are none, the
    /// serving terminating ones (upstream `CategorizeEndpoints`, ProxyTerminatingEndpoints);
    /// else none.
    pub fn usable_endpoints(&self) -> Vec<Endpoint> {
        let ready: Vec<Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| e.ready && !e.terminating)
            .copied()
            .collect();
        if !ready.is_empty() {
            return ready;
        }
        self.endpoints
            .iter()
            .filter(|e| e.serving && e.terminating)
            .copied()
            .collect()
    }
}

/// Endpoints of one Service port as a source knows them.
pub trait EndpointsSource {
    /// The endpoints of port `port_name` / `protocol` of Service `namespace/name`.
    fn endpoints(
        &self,
        namespace: &str,
        name: &str,
        port_name: &str,
        protocol: Protocol,
    ) -> Vec<Endpoint>;
}

/// The Services' ports to proxy, sorted by id, each with the endpoints `source` has for it.
pub fn service_ports(services: &[&Service], source: &dyn EndpointsSource) -> Vec<ServicePort> {
    let mut out = Vec::new();
    for svc in services {
        let meta = &svc.metadata;
        let (Some(namespace), Some(name), Some(spec)) = (&meta.namespace, &meta.name, &svc.spec)
        else {
            continue;
        };
        if meta
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL))
            || spec.type_.as_deref() == Some("ExternalName")
            || spec.cluster_ip.as_deref() == Some("None")
        {
            continue;
        }
        let cluster_ip = spec.cluster_ip.as_deref().and_then(|s| s.parse().ok());
        let mut external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|s| s.parse().ok())
            .collect();
        external_ips.extend(
            svc.status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
        external_ips.sort();
        external_ips.dedup();
        let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_SECONDS)
        });
        for p in spec.ports.iter().flatten() {
            let (Some(protocol), Ok(port)) = (
                Protocol::from_api(p.protocol.as_deref()),
                u16::try_from(p.port),
            ) else {
                continue;
            };
            let port_name = p.name.clone().unwrap_or_default();
            let node_port = p
                .node_port
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0);
            if cluster_ip.is_none() && node_port.is_none() && external_ips.is_empty() {
                continue;
            }
            out.push(ServicePort {
                namespace: namespace.clone(),
                name: name.clone(),
                endpoints: source.endpoints(namespace, name, &port_name, protocol),
                port_name,
                protocol,
                cluster_ip,
                port,
                node_port,
                external_ips: external_ips.clone(),
                affinity_seconds,
            });
        }
    }
    out.sort_by_key(|s| s.id());
    out
}

/// Endpoints of a port from a core/v1 Endpoints object: `addresses` are ready, `notReadyAddresses`
/// are neither ready nor serving (Endpoints carry no terminating state).
pub fn from_endpoints(ep: &Endpoints, port_name: &str, protocol: Protocol) -> Vec<Endpoint> {
    let mut out = BTreeSet::new();
    for subset in ep.subsets.iter().flatten() {
        let Some(port) = subset.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && Protocol::from_api(p.protocol.as_deref()) == Some(protocol)
        }) else {
            continue;
        };
        let Ok(port) = u16::try_from(port.port) else {
            continue;
        };
        for (addrs, ready) in [
            (&subset.addresses, true),
            (&subset.not_ready_addresses, false),
        ] {
            for a in addrs.iter().flatten() {
                if let Ok(ip) = a.ip.parse::<Ipv4Addr>() {
                    out.insert(Endpoint {
                        ip,
                        port,
                        ready,
                        serving: ready,
                        terminating: false,
                    });
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Endpoints of a port from the EndpointSlices of its Service. Unset conditions read as
/// upstream documents them: `ready` and `serving` true, `terminating` false; `serving`
/// defaults to `ready`.
pub fn from_slices(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: Protocol,
) -> Vec<Endpoint> {
    let mut out = BTreeSet::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && Protocol::from_api(p.protocol.as_deref()) == Some(protocol)
        }) else {
            continue;
        };
        let Some(port) = port.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for e in &slice.endpoints {
            let c = e.conditions.as_ref();
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let serving = c.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            for a in &e.addresses {
                if let Ok(ip) = a.parse::<Ipv4Addr>() {
                    out.insert(Endpoint {
                        ip,
                        port,
                        ready,
                        serving,
                        terminating,
                    });
                }
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ClientIPConfig, EndpointAddress, EndpointPort, EndpointSubset, ServicePort as ApiPort,
        ServiceSpec, SessionAffinityConfig,
    };
    use k8s_openapi::api::discovery::v1::{Endpoint as SliceEndpoint, EndpointConditions};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    struct NoEndpoints;
    impl EndpointsSource for NoEndpoints {
        fn endpoints(&self, _: &str, _: &str, _: &str, _: Protocol) -> Vec<Endpoint> {
            vec![]
        }
    }

    fn svc(name: &str, spec: ServiceSpec) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn port(p: i32) -> ApiPort {
        ApiPort {
            port: p,
            ..Default::default()
        }
    }

    #[test]
    fn headless_external_name_and_foreign_services_are_not_proxied() {
        let headless = svc(
            "headless",
            ServiceSpec {
                cluster_ip: Some("None".into()),
                ports: Some(vec![port(80)]),
                ..Default::default()
            },
        );
        let external = svc(
            "ext",
            ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some("example.com".into()),
                ports: Some(vec![port(80)]),
                ..Default::default()
            },
        );
        let mut foreign = svc(
            "foreign",
            ServiceSpec {
                cluster_ip: Some("10.96.0.20".into()),
                ports: Some(vec![port(80)]),
                ..Default::default()
            },
        );
        foreign.metadata.labels = Some([(SERVICE_PROXY_NAME_LABEL.into(), "x".into())].into());
        let web = svc(
            "web",
            ServiceSpec {
                cluster_ip: Some("10.96.0.10".into()),
                ports: Some(vec![port(80)]),
                session_affinity: Some("ClientIP".into()),
                session_affinity_config: Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(60),
                    }),
                }),
                ..Default::default()
            },
        );
        let got = service_ports(&[&headless, &external, &foreign, &web], &NoEndpoints);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id(), "default/web/tcp/80");
        assert_eq!(got[0].affinity_seconds, Some(60));
    }

    #[test]
    fn endpoints_split_ready_and_not_ready_per_named_port() {
        let ep = Endpoints {
            subsets: Some(vec![EndpointSubset {
                addresses: Some(vec![EndpointAddress {
                    ip: "10.244.0.5".into(),
                    ..Default::default()
                }]),
                not_ready_addresses: Some(vec![EndpointAddress {
                    ip: "10.244.0.6".into(),
                    ..Default::default()
                }]),
                ports: Some(vec![
                    EndpointPort {
                        name: Some("http".into()),
                        port: 8080,
                        ..Default::default()
                    },
                    EndpointPort {
                        name: Some("dns".into()),
                        port: 53,
                        protocol: Some("UDP".into()),
                        ..Default::default()
                    },
                ]),
            }]),
            ..Default::default()
        };
        let got = from_endpoints(&ep, "http", Protocol::Tcp);
        assert_eq!(got.len(), 2);
        assert!(got[0].ready && got[0].port == 8080);
        assert!(!got[1].ready && !got[1].serving);
        assert_eq!(from_endpoints(&ep, "dns", Protocol::Udp)[0].port, 53);
        assert!(from_endpoints(&ep, "dns", Protocol::Tcp).is_empty());
    }

    #[test]
    fn slices_read_unset_conditions_as_ready_and_fall_back_to_terminating() {
        let e = |ip: &str, ready, terminating| SliceEndpoint {
            addresses: vec![ip.into()],
            conditions: Some(EndpointConditions {
                ready,
                serving: Some(true),
                terminating,
            }),
            ..Default::default()
        };
        let slice = EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: vec![
                e("10.244.0.7", None, None),
                e("10.244.0.8", Some(false), Some(true)),
            ],
            ports: Some(vec![k8s_openapi::api::discovery::v1::EndpointPort {
                port: Some(80),
                ..Default::default()
            }]),
            metadata: Default::default(),
        };
        let eps = from_slices(&[&slice], "", Protocol::Tcp);
        let mut sp = ServicePort {
            namespace: "default".into(),
            name: "web".into(),
            port_name: String::new(),
            protocol: Protocol::Tcp,
            cluster_ip: None,
            port: 80,
            node_port: Some(30080),
            external_ips: vec![],
            affinity_seconds: None,
            endpoints: eps,
        };
        assert_eq!(
            sp.usable_endpoints(),
            vec![Endpoint::ready("10.244.0.7".parse().unwrap(), 80)]
        );
        sp.endpoints.retain(|e| e.terminating);
        assert_eq!(
            sp.usable_endpoints().len(),
            1,
            "terminating ones when none is ready"
        );
        sp.endpoints[0].serving = false;
        assert!(sp.usable_endpoints().is_empty());
    }
}
