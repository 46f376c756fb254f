//! The nftables ruleset of the proxy, generated from [`ServicePort`]s as `nft -f` text. Pure:
//! the same ports and options give the same text, so it is snapshot-tested.
//!
//! The shape is kube-proxy's nftables mode (`pkg/proxy/nftables/proxier.go` and its
//! README), written anew for one `ip` table per cluster:
//!
//! - base chains: `nat-prerouting` (traffic from pods and other machines) and `nat-output`
//!   (from host processes), both `type nat priority dstnat`, jump to `services`, which looks
//!   `daddr . l4proto . dport` up in the `service-ips` verdict map (cluster IPs, external IPs,
//!   load-balancer IPs) and, for the node's own addresses (`fib daddr type local`, never
//!   `127.0.0.0/8`, or only `--nodeport-addresses`), `l4proto . dport` in `service-nodeports`;
//! - per Service port a chain `svc-NS/NAME/PROTO/PORT`: marks the connection for
//!   masquerade, keeps ClientIP affinity (`ip saddr @aff-…` goes back to the endpoint chosen
//!   before; the endpoint chain records the client with `update @aff-… { ip saddr }`, the
//!   set's element timeout being the affinity timeout), then `numgen random mod N` picks one
//!   of the N usable endpoints' chains `ep-…__IP/PORT`, which DNAT;
//! - a port with no usable endpoint is in `no-endpoint-services` / `no-endpoint-nodeports`,
//!   looked up from `type filter` chains on input, forward and output for new connections,
//!   which jump to `reject-chain` (`icmp port-unreachable`: the client's connect fails at
//!   once); a cluster IP's undefined port is rejected too (`cluster-ips`);
//! - `nat-postrouting` masquerades marked connections (`meta mark & 0x4000`, the bit
//!   kube-proxy uses).
//!
//! Masquerade: every proxied connection is masqueraded (kube-proxy's `--masquerade-all`).
//! orch's pod network is a plain Linux bridge without `br_netfilter`, so a pod that answers
//! a client on its own bridge would answer it directly, bypassing the host's conntrack and
//! its reverse DNAT; masquerading makes every reply come back through the host. Hairpin
//! traffic (a pod reaching itself through its Service) needs it in any case. The cost is the
//! client address, which backends see as the node's (the bridge's gateway for pods).
//!
//! The transaction ([`Ruleset::transaction`]) is atomic (`nft -f` applies one netlink batch):
//! the first one deletes and recreates the table; later ones are partial, as kube-proxy's:
//! only the chains whose rules changed are flushed and refilled, map elements are added and
//! deleted one by one, and chains and affinity sets that are gone are deleted once nothing
//! refers to them (affinity survives syncs; a changed timeout is a new set).

use super::model::ServicePort;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The firewall mark bit that asks `nat-postrouting` to masquerade.
pub const MASQUERADE_MARK: &str = "0x4000";

/// What the ruleset depends on besides the Service ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOptions {
    /// Name of the `ip` table (one per cluster, so clusters on one host do not clash).
    pub table: String,
    /// `--nodeport-addresses`: the CIDRs of node addresses that serve node ports; empty means
    /// every local address but loopback.
    pub nodeport_addresses: Vec<String>,
}

/// A generated ruleset: its objects and their contents, kept to diff against the next sync.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    /// Rules of the fixed chains (`add rule …` lines), rewritten on every sync.
    pub fixed: String,
    /// Regular chains of Service and endpoint ports, each with its `add rule …` lines.
    pub chains: BTreeMap<String, String>,
    /// Affinity sets, each with its element timeout in seconds (in the name too, so that a
    /// changed timeout is a new set and rewrites the chains that use it).
    pub affinity_sets: BTreeMap<String, u32>,
    /// Map and set elements: (map, key, verdict or "" for a set).
    pub elements: BTreeSet<(&'static str, String, String)>,
    /// Service ports with at least one usable endpoint.
    pub services_with_endpoints: usize,
    /// Endpoint chains.
    pub endpoints: usize,
}

/// Base chains: name and hook definition.
const BASE_CHAINS: &[(&str, &str)] = &[
    (
        "nat-prerouting",
        "type nat hook prerouting priority dstnat ;",
    ),
    // `dstnat` by number: nft before 1.0.7 accepts the name on prerouting only
    ("nat-output", "type nat hook output priority -100 ;"),
    (
        "nat-postrouting",
        "type nat hook postrouting priority srcnat ;",
    ),
    ("filter-input", "type filter hook input priority filter ;"),
    (
        "filter-forward",
        "type filter hook forward priority filter ;",
    ),
    ("filter-output", "type filter hook output priority filter ;"),
];

/// Regular chains every ruleset has.
const FIXED_CHAINS: &[&str] = &[
    "services",
    "no-endpoints",
    "mark-for-masquerade",
    "masquerading",
    "reject-chain",
];

/// Maps and sets every ruleset has, with their definitions.
const MAPS: &[(&str, &str, &str)] = &[
    (
        "map",
        "service-ips",
        "type ipv4_addr . inet_proto . inet_service : verdict ;",
    ),
    (
        "map",
        "service-nodeports",
        "type inet_proto . inet_service : verdict ;",
    ),
    (
        "map",
        "no-endpoint-services",
        "type ipv4_addr . inet_proto . inet_service : verdict ;",
    ),
    (
        "map",
        "no-endpoint-nodeports",
        "type inet_proto . inet_service : verdict ;",
    ),
    ("set", "cluster-ips", "type ipv4_addr ;"),
];

/// The match of a node-port destination: the node's own addresses but loopback (DNAT of
/// `127.0.0.1` would need `route_localnet`, which kube-proxy's nftables mode does not set
/// either), or only those in `--nodeport-addresses`.
fn nodeport_match(o: &RuleOptions) -> String {
    if o.nodeport_addresses.is_empty() {
        "fib daddr type local ip daddr != 127.0.0.0/8".into()
    } else {
        format!(
            "fib daddr type local ip daddr {{ {} }}",
            o.nodeport_addresses.join(", ")
        )
    }
}

/// Generates the ruleset of `ports` (sorted by [`ServicePort::id`]).
pub fn generate(ports: &[ServicePort], o: &RuleOptions) -> Ruleset {
    let t = &o.table;
    let mut r = Ruleset::default();
    let mut b = String::with_capacity(4096);
    let np = nodeport_match(o);
    // fixed rules
    let _ = writeln!(b, "add rule ip {t} nat-prerouting jump services");
    let _ = writeln!(b, "add rule ip {t} nat-output jump services");
    let _ = writeln!(b, "add rule ip {t} nat-postrouting jump masquerading");
    let _ = writeln!(
        b,
        "add rule ip {t} filter-input ct state new jump no-endpoints"
    );
    let _ = writeln!(
        b,
        "add rule ip {t} filter-input ct state new {np} meta l4proto . th dport vmap @no-endpoint-nodeports"
    );
    let _ = writeln!(
        b,
        "add rule ip {t} filter-forward ct state new jump no-endpoints"
    );
    let _ = writeln!(
        b,
        "add rule ip {t} filter-output ct state new jump no-endpoints"
    );
    let _ = writeln!(
        b,
        "add rule ip {t} no-endpoints ip daddr . meta l4proto . th dport vmap @no-endpoint-services"
    );
    let _ = writeln!(
        b,
        "add rule ip {t} no-endpoints ip daddr @cluster-ips goto reject-chain"
    );
    let _ = writeln!(
        b,
        "add rule ip {t} mark-for-masquerade meta mark set meta mark or {MASQUERADE_MARK}"
    );
    let _ = writeln!(
        b,
        "add rule ip {t} masquerading meta mark & {MASQUERADE_MARK} == 0 return"
    );
    let _ = writeln!(
        b,
        "add rule ip {t} masquerading meta mark set meta mark xor {MASQUERADE_MARK}"
    );
    let _ = writeln!(b, "add rule ip {t} masquerading masquerade fully-random");
    let _ = writeln!(
        b,
        "add rule ip {t} reject-chain reject with icmp type port-unreachable"
    );
    let _ = writeln!(
        b,
        "add rule ip {t} services ip daddr . meta l4proto . th dport vmap @service-ips"
    );
    let _ = writeln!(
        b,
        "add rule ip {t} services {np} meta l4proto . th dport vmap @service-nodeports"
    );
    r.fixed = b;

    let mut element = |map: &'static str, key: String, verdict: String| {
        r.elements.insert((map, key, verdict));
    };
    let mut chains = BTreeMap::new();
    let mut affinity_sets = BTreeMap::new();
    let (mut with_endpoints, mut endpoints) = (0, 0);
    for sp in ports {
        let id = sp.id();
        let proto = sp.protocol.nft();
        let usable = sp.usable_endpoints();
        let dests: Vec<_> = sp.cluster_ip.iter().chain(&sp.external_ips).collect();
        if let Some(ip) = sp.cluster_ip {
            element("cluster-ips", ip.to_string(), String::new());
        }
        if usable.is_empty() {
            for ip in &dests {
                element(
                    "no-endpoint-services",
                    format!("{ip} . {proto} . {}", sp.port),
                    "goto reject-chain".into(),
                );
            }
            if let Some(n) = sp.node_port {
                element(
                    "no-endpoint-nodeports",
                    format!("{proto} . {n}"),
                    "goto reject-chain".into(),
                );
            }
            continue;
        }
        with_endpoints += 1;
        let svc_chain = format!("svc-{id}");
        for ip in &dests {
            element(
                "service-ips",
                format!("{ip} . {proto} . {}", sp.port),
                format!("goto {svc_chain}"),
            );
        }
        if let Some(n) = sp.node_port {
            element(
                "service-nodeports",
                format!("{proto} . {n}"),
                format!("goto {svc_chain}"),
            );
        }
        let mut b = String::new();
        let _ = writeln!(b, "add rule ip {t} {svc_chain} jump mark-for-masquerade");
        let ep_chains: Vec<String> = usable
            .iter()
            .map(|e| format!("ep-{id}__{}/{}", e.ip, e.port))
            .collect();
        if let Some(timeout) = sp.affinity_seconds {
            for ep in &ep_chains {
                let set = affinity_set(ep, timeout);
                let _ = writeln!(b, "add rule ip {t} {svc_chain} ip saddr @{set} goto {ep}");
                affinity_sets.insert(set, timeout);
            }
        }
        let arms: Vec<String> = ep_chains
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{i} : goto {c}"))
            .collect();
        let _ = writeln!(
            b,
            "add rule ip {t} {svc_chain} numgen random mod {} vmap {{ {} }}",
            ep_chains.len(),
            arms.join(" , ")
        );
        chains.insert(svc_chain, b);
        for (e, chain) in usable.iter().zip(ep_chains) {
            let mut b = String::new();
            if let Some(timeout) = sp.affinity_seconds {
                let set = affinity_set(&chain, timeout);
                let _ = writeln!(b, "add rule ip {t} {chain} update @{set} {{ ip saddr }}");
            }
            let _ = writeln!(
                b,
                "add rule ip {t} {chain} meta l4proto {proto} dnat to {}:{}",
                e.ip, e.port
            );
            chains.insert(chain, b);
            endpoints += 1;
        }
    }
    r.chains = chains;
    r.affinity_sets = affinity_sets;
    r.services_with_endpoints = with_endpoints;
    r.endpoints = endpoints;
    r
}

/// The affinity set of an endpoint chain with a timeout.
fn affinity_set(endpoint_chain: &str, timeout: u32) -> String {
    format!("aff{timeout}-{}", endpoint_chain.trim_start_matches("ep-"))
}

impl Ruleset {
    /// The `nft -f` transaction that turns `previous` (what the last sync applied, `None` on
    /// the first) into this ruleset in table `table`. After the first, only what changed is
    /// written (kube-proxy's partial sync): chains whose rules differ are flushed and
    /// refilled, map elements added and deleted one by one, chains and sets that are gone
    /// deleted once nothing refers to them.
    pub fn transaction(&self, table: &str, previous: Option<&Ruleset>) -> String {
        let t = table;
        let empty = Ruleset::default();
        let prev = previous.unwrap_or(&empty);
        let mut x = String::with_capacity(
            self.fixed.len()
                + self.chains.values().map(|c| c.len() + 128).sum::<usize>() / 2
                + 1024,
        );
        let _ = writeln!(x, "add table ip {t}");
        if previous.is_none() {
            // whatever a previous run left (a crash, an older version): start clean
            let _ = writeln!(x, "delete table ip {t}");
            let _ = writeln!(x, "add table ip {t}");
        }
        for (name, def) in BASE_CHAINS {
            let _ = writeln!(x, "add chain ip {t} {name} {{ {def} }}");
            let _ = writeln!(x, "flush chain ip {t} {name}");
        }
        for name in FIXED_CHAINS {
            let _ = writeln!(x, "add chain ip {t} {name}");
            let _ = writeln!(x, "flush chain ip {t} {name}");
        }
        let changed: Vec<(&String, &String)> = self
            .chains
            .iter()
            .filter(|(name, rules)| prev.chains.get(*name) != Some(*rules))
            .collect();
        for (name, _) in &changed {
            let _ = writeln!(x, "add chain ip {t} {name}");
            if prev.chains.contains_key(*name) {
                let _ = writeln!(x, "flush chain ip {t} {name}");
            }
        }
        let stale: Vec<&String> = prev
            .chains
            .keys()
            .filter(|c| !self.chains.contains_key(*c))
            .collect();
        for name in &stale {
            let _ = writeln!(x, "flush chain ip {t} {name}");
        }
        for (kind, name, def) in MAPS {
            let _ = writeln!(x, "add {kind} ip {t} {name} {{ {def} }}");
        }
        for (map, key, _) in prev.elements.difference(&self.elements) {
            let _ = writeln!(x, "delete element ip {t} {map} {{ {key} }}");
        }
        for name in prev.affinity_sets.keys() {
            if !self.affinity_sets.contains_key(name) {
                let _ = writeln!(x, "delete set ip {t} {name}");
            }
        }
        for (name, timeout) in &self.affinity_sets {
            if !prev.affinity_sets.contains_key(name) {
                let _ = writeln!(
                    x,
                    "add set ip {t} {name} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"
                );
            }
        }
        x.push_str(&self.fixed);
        for (_, rules) in changed {
            x.push_str(rules);
        }
        for (map, key, verdict) in self.elements.difference(&prev.elements) {
            if verdict.is_empty() {
                let _ = writeln!(x, "add element ip {t} {map} {{ {key} }}");
            } else {
                let _ = writeln!(x, "add element ip {t} {map} {{ {key} : {verdict} }}");
            }
        }
        for name in stale {
            let _ = writeln!(x, "delete chain ip {t} {name}");
        }
        x
    }
}

/// The transaction that removes the proxy's table (on stop).
pub fn cleanup(table: &str) -> String {
    format!("add table ip {table}\ndelete table ip {table}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::model::{Endpoint, Protocol};

    fn opts() -> RuleOptions {
        RuleOptions {
            table: "orch-test".into(),
            nodeport_addresses: vec![],
        }
    }

    fn ip(s: &str) -> std::net::Ipv4Addr {
        s.parse().unwrap()
    }

    fn port(name: &str, cluster_ip: &str, port: u16, endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            namespace: "default".into(),
            name: name.into(),
            port_name: String::new(),
            protocol: Protocol::Tcp,
            cluster_ip: Some(ip(cluster_ip)),
            port,
            node_port: None,
            external_ips: vec![],
            affinity_seconds: None,
            endpoints,
        }
    }

    fn transaction(ports: &[ServicePort]) -> String {
        generate(ports, &opts()).transaction("orch-test", None)
    }

    #[test]
    fn cluster_ip_balances_over_ready_endpoints() {
        let web = port(
            "web",
            "10.96.0.10",
            80,
            vec![
                Endpoint::ready(ip("10.244.0.5"), 8080),
                Endpoint::ready(ip("10.244.0.6"), 8080),
            ],
        );
        insta::assert_snapshot!(transaction(&[web]));
    }

    #[test]
    fn node_port_and_multiple_ports() {
        let eps = vec![Endpoint::ready(ip("10.244.0.5"), 8080)];
        let mut http = port("web", "10.96.0.10", 80, eps.clone());
        http.port_name = "http".into();
        http.node_port = Some(30080);
        let mut dns = port("web", "10.96.0.10", 53, eps);
        dns.port_name = "dns".into();
        dns.protocol = Protocol::Udp;
        dns.endpoints[0].port = 5353;
        let r = generate(
            &[dns, http],
            &RuleOptions {
                nodeport_addresses: vec!["192.168.1.0/24".into()],
                ..opts()
            },
        );
        insta::assert_snapshot!(r.transaction("orch-test", None));
    }

    #[test]
    fn no_usable_endpoint_rejects() {
        let mut empty = port("empty", "10.96.0.11", 80, vec![]);
        empty.node_port = Some(30081);
        let not_ready = port(
            "unready",
            "10.96.0.12",
            80,
            vec![Endpoint {
                ready: false,
                serving: false,
                ..Endpoint::ready(ip("10.244.0.7"), 80)
            }],
        );
        let r = generate(&[empty, not_ready], &opts());
        assert!(r.chains.is_empty());
        insta::assert_snapshot!(r.transaction("orch-test", None));
    }

    #[test]
    fn only_terminating_endpoints_still_serve() {
        let draining = port(
            "draining",
            "10.96.0.13",
            80,
            vec![
                Endpoint {
                    ready: false,
                    terminating: true,
                    ..Endpoint::ready(ip("10.244.0.8"), 80)
                },
                Endpoint {
                    ready: false,
                    serving: false,
                    terminating: true,
                    ..Endpoint::ready(ip("10.244.0.9"), 80)
                },
            ],
        );
        let r = generate(&[draining], &opts());
        assert_eq!(r.endpoints, 1);
        insta::assert_snapshot!(r.transaction("orch-test", None));
    }

    #[test]
    fn client_ip_affinity_remembers_clients_per_endpoint() {
        let mut sticky = port(
            "sticky",
            "10.96.0.14",
            80,
            vec![
                Endpoint::ready(ip("10.244.0.5"), 80),
                Endpoint::ready(ip("10.244.0.6"), 80),
            ],
        );
        sticky.affinity_seconds = Some(60);
        sticky.external_ips = vec![ip("192.0.2.10")];
        insta::assert_snapshot!(transaction(&[sticky]));
    }

    #[test]
    fn later_syncs_write_only_what_changed() {
        let eps = |ips: &[&str]| ips.iter().map(|i| Endpoint::ready(ip(i), 80)).collect();
        let mut a = port("a", "10.96.0.15", 80, eps(&["10.244.0.5", "10.244.0.6"]));
        a.affinity_seconds = Some(60);
        let b = port("b", "10.96.0.16", 80, eps(&["10.244.0.7"]));
        let first = generate(&[a.clone(), b.clone()], &opts());
        a.endpoints.pop();
        let second = generate(&[a.clone(), b.clone()], &opts());
        let x = second.transaction("orch-test", Some(&first));
        assert!(!x.contains("delete table"), "{x}");
        // b did not change: not touched
        assert!(!x.contains("svc-default/b/"), "{x}");
        assert!(!x.contains("10.96.0.16"), "{x}");
        // a's service chain is rewritten, its gone endpoint deleted with its affinity set,
        // the endpoint that stays keeps its chain and set
        assert!(
            x.contains("flush chain ip orch-test svc-default/a/tcp/80\n"),
            "{x}"
        );
        assert!(x.contains("delete chain ip orch-test ep-default/a/tcp/80__10.244.0.6/80"));
        assert!(x.contains("delete set ip orch-test aff60-default/a/tcp/80__10.244.0.6/80"));
        assert!(
            !x.contains("aff60-default/a/tcp/80__10.244.0.5/80 {"),
            "{x}"
        );
        assert!(
            !x.contains("ep-default/a/tcp/80__10.244.0.5/80 meta"),
            "{x}"
        );
        let delete_at = x.find("delete chain").unwrap();
        let flush_at = x
            .find("flush chain ip orch-test ep-default/a/tcp/80__10.244.0.6/80")
            .unwrap();
        assert!(flush_at < delete_at, "references go before the chain");
        // the last endpoint of b goes: its map element moves to no-endpoint-services
        let third = generate(&[a, port("b", "10.96.0.16", 80, vec![])], &opts());
        let x = third.transaction("orch-test", Some(&second));
        assert!(
            x.contains("delete element ip orch-test service-ips { 10.96.0.16 . tcp . 80 }"),
            "{x}"
        );
        assert!(x.contains("add element ip orch-test no-endpoint-services { 10.96.0.16 . tcp . 80 : goto reject-chain }"), "{x}");
        assert!(
            !x.contains("cluster-ips { 10.96.0.16 }"),
            "the cluster IP stays: {x}"
        );
        // nothing changed: only the fixed chains are rewritten
        let x = third.transaction("orch-test", Some(&third));
        assert!(!x.contains("svc-") && !x.contains("element"), "{x}");
    }

    #[test]
    fn partial_syncs_apply_with_the_real_nft() {
        let Ok(nft) = crate::proxy::Nft::detect() else {
            eprintln!("SKIPPED: needs root and nft");
            return;
        };
        let ns = format!("orch-rules-test-{}", std::process::id());
        if !std::process::Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .is_ok_and(|s| s.success())
        {
            eprintln!("SKIPPED: cannot make a network namespace");
            return;
        }
        let nft = nft.in_netns(&ns);
        let eps = |ips: &[&str]| ips.iter().map(|i| Endpoint::ready(ip(i), 80)).collect();
        let mut a = port("a", "10.96.0.15", 80, eps(&["10.244.0.5", "10.244.0.6"]));
        a.affinity_seconds = Some(60);
        a.node_port = Some(30015);
        let steps = [
            vec![a.clone(), port("b", "10.96.0.16", 80, eps(&["10.244.0.7"]))],
            vec![a.clone(), port("b", "10.96.0.16", 80, vec![])],
            {
                a.endpoints.pop();
                a.affinity_seconds = Some(30);
                vec![a.clone(), port("c", "10.96.0.17", 80, eps(&["10.244.0.8"]))]
            },
            vec![],
        ];
        let mut prev: Option<Ruleset> = None;
        let mut result = Ok(());
        for ports in steps {
            let r = generate(&ports, &opts());
            if let Err(e) = nft.apply(&r.transaction("orch-test", prev.as_ref())) {
                result = Err(format!(
                    "{e}\n{}",
                    r.transaction("orch-test", prev.as_ref())
                ));
                break;
            }
            prev = Some(r);
        }
        let listed = nft.run(&["list", "table", "ip", "orch-test"], None);
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &ns])
            .status();
        result.unwrap();
        let listed = listed.unwrap();
        assert!(!listed.contains("chain svc-"), "{listed}");
        assert!(!listed.contains("set aff"), "{listed}");
    }
}
