//! Pod DNS: the resolver configuration (`/etc/resolv.conf`) of a pod from its `dnsPolicy` and
//! `dnsConfig` and the kubelet's `--cluster-dns`, `--cluster-domain` and `--resolv-conf`, as
//! upstream's kubelet forms it (`pkg/kubelet/network/dns/dns.go`, `GetPodDNS`):
//!
//! - `ClusterFirst` (the default; `Default` for a `hostNetwork` pod) and
//!   `ClusterFirstWithHostNet`: the cluster DNS servers only, search
//!   `<ns>.svc.<domain> svc.<domain> <domain>` followed by the host's search domains,
//!   `options ndots:5`. Without `--cluster-dns` the pod falls back to `Default` (upstream
//!   also records a `MissingClusterDNS` event; orch does not, or every pod of a cluster
//!   without DNS, such as a simulated one, would carry that warning).
//! - `Default`: the host's resolver configuration (`--resolv-conf`; an empty path means
//!   "no resolver": `nameserver 127.0.0.1`, `search .`).
//! - `None`: nothing but the pod's `dnsConfig`.
//!
//! Then the pod's `dnsConfig` is appended (nameservers and searches without duplicates, options
//! merged by name, the pod's winning), and the result is cut to the resolver's limits
//! (3 nameservers, 32 search domains of at most 253 characters, 2,048 characters in the search
//! line), with a warning when something was dropped (upstream's `DNSConfigForming` event).

use k8s_openapi::api::core::v1::Pod;
use std::net::IpAddr;
use std::path::PathBuf;

/// Most nameservers a resolv.conf may list (upstream `MaxDNSNameservers`, glibc `MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;
/// Most search domains (upstream `MaxDNSSearchPaths` with ExpandedDNSConfig, GA in 1.28).
pub const MAX_SEARCH_PATHS: usize = 32;
/// Most characters of the search line (upstream `MaxDNSSearchListChars`, expanded).
pub const MAX_SEARCH_LIST_CHARS: usize = 2048;
/// Longest search domain (`DNS1123SubdomainMaxLength`; glibc 2.28 aborts on longer ones).
const MAX_SEARCH_DOMAIN: usize = 253;

/// The kubelet's DNS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// `--cluster-dns`: the cluster DNS servers (empty: none configured).
    pub cluster_dns: Vec<IpAddr>,
    /// `--cluster-domain` (empty: no cluster search domains).
    pub cluster_domain: String,
    /// Use the node bridge's gateway (the first address of `spec.podCIDR`) as the cluster DNS
    /// server once the podCIDR is known: `orch up` serves DNS on the host's port 53, which pods
    /// in network namespaces reach through their gateway (docs/design/services.md).
    pub cluster_dns_on_gateway: bool,
    /// `--resolv-conf`: the host resolver configuration the pods' is based on (`None`: no
    /// host resolver, pods with `Default` get `nameserver 127.0.0.1`).
    pub resolv_conf: Option<PathBuf>,
}

impl Default for DnsSettings {
    /// No cluster DNS, domain `cluster.local`, the host's `/etc/resolv.conf`.
    fn default() -> Self {
        Self {
            cluster_dns: vec![],
            cluster_domain: "cluster.local".into(),
            cluster_dns_on_gateway: false,
            resolv_conf: Some(PathBuf::from("/etc/resolv.conf")),
        }
    }
}

/// A resolver configuration: what a pod's `/etc/resolv.conf` says (CRI `DNSConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolverConfig {
    /// `nameserver` lines.
    pub servers: Vec<String>,
    /// The `search` line.
    pub searches: Vec<String>,
    /// The `options` line.
    pub options: Vec<String>,
}

impl ResolverConfig {
    /// Parses resolv.conf text: `nameserver` lines accumulate, the last `search` and
    /// `options` lines win, comments (`#`, `;`) are skipped; a trailing dot of a search domain
    /// is dropped (upstream `parseResolvConf`).
    pub fn parse(text: &str) -> Self {
        let mut c = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => c.servers.extend(fields.next().map(str::to_string)),
                Some("search") => {
                    c.searches = fields
                        .map(|s| s.strip_suffix('.').unwrap_or(s).to_string())
                        .collect()
                }
                Some("options") => c.options = fields.map(str::to_string).collect(),
                _ => {}
            }
        }
        c
    }

    /// The resolv.conf text.
    pub fn to_resolv_conf(&self) -> String {
        let mut s = String::new();
        for n in &self.servers {
            s.push_str(&format!("nameserver {n}\n"));
        }
        if !self.searches.is_empty() {
            s.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        if !self.options.is_empty() {
            s.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        s
    }
}

/// A pod's resolver configuration and what was wrong while forming it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodDns {
    /// The configuration.
    pub config: ResolverConfig,
    /// Warnings for the pod's events (`DNSConfigForming`): (reason,
    /// message).
    pub warnings: Vec<(String, String)>,
}

fn push_unique(into: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for i in items {
        if !into.contains(&i) {
            into.push(i);
        }
    }
}

/// Merges options by name (`name` or `name:value`), `extra` winning; the order is the first
/// appearance of each name.
fn merge_options(existing: &[String], extra: &[(String, Option<String>)]) -> Vec<String> {
    let mut merged: Vec<(String, Option<String>)> = Vec::new();
    let split = |o: &str| match o.split_once(':') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (o.to_string(), None),
    };
    for (name, value) in existing
        .iter()
        .map(|o| split(o))
        .chain(extra.iter().cloned())
    {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 = value,
            None => merged.push((name, value)),
        }
    }
    merged
        .into_iter()
        .map(|(n, v)| match v.filter(|v| !v.is_empty()) {
            Some(v) => format!("{n}:{v}"),
            None => n,
        })
        .collect()
}

/// What a pod's resolver configuration is formed from on this node: the kubelet's settings
/// with the host configuration already read (the pod worker does no I/O).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeDns {
    /// `--cluster-dns`.
    pub cluster_dns: Vec<IpAddr>,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// The parsed `--resolv-conf` (`None`: the kubelet has none).
    pub host: Option<ResolverConfig>,
}

impl NodeDns {
    /// Reads `settings.resolv_conf`; an unreadable file counts as empty, with the error.
    pub fn read(settings: &DnsSettings) -> (Self, Option<String>) {
        let (host, error) = match &settings.resolv_conf {
            None => (None, None),
            Some(p) => match std::fs::read_to_string(p) {
                Ok(t) => (Some(ResolverConfig::parse(&t)), None),
                Err(e) => (
                    Some(ResolverConfig::default()),
                    Some(format!("{}: {e}", p.display())),
                ),
            },
        };
        let node = Self {
            cluster_dns: settings.cluster_dns.clone(),
            cluster_domain: settings.cluster_domain.clone(),
            host,
        };
        (node, error)
    }
}

/// The resolver configuration of `pod` on a node.
pub fn pod_dns(node: &NodeDns, pod: &Pod) -> PodDns {
    let (settings, host) = (node, node.host.as_ref());
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let mut warnings = Vec::new();
    let host_config = || match host {
        Some(h) => h.clone(),
        None => ResolverConfig {
            servers: vec!["127.0.0.1".into()],
            searches: vec![".".into()],
            options: vec![],
        },
    };
    let cluster = match policy {
        "None" => None,
        "ClusterFirstWithHostNet" => Some(true),
        "Default" => Some(false),
        _ => Some(!host_network),
    };
    let mut config = match cluster {
        None => ResolverConfig::default(),
        Some(true) if !settings.cluster_dns.is_empty() => {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let mut searches = Vec::new();
            if !settings.cluster_domain.is_empty() {
                let d = &settings.cluster_domain;
                searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            }
            push_unique(
                &mut searches,
                host.map(|h| h.searches.clone()).unwrap_or_default(),
            );
            ResolverConfig {
                servers: settings.cluster_dns.iter().map(|i| i.to_string()).collect(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        // No cluster DNS configured: the host's (see the module docs on MissingClusterDNS).
        Some(_) => host_config(),
    };
    if let Some(dc) = spec.and_then(|s| s.dns_config.as_ref()) {
        push_unique(
            &mut config.servers,
            dc.nameservers.clone().unwrap_or_default(),
        );
        push_unique(
            &mut config.searches,
            dc.searches.clone().unwrap_or_default(),
        );
        let extra: Vec<(String, Option<String>)> = dc
            .options
            .iter()
            .flatten()
            .map(|o| (o.name.clone().unwrap_or_default(), o.value.clone()))
            .collect();
        config.options = merge_options(&config.options, &extra);
    }
    if config.servers.len() > MAX_NAMESERVERS {
        config.servers.truncate(MAX_NAMESERVERS);
        warnings.push((
            "DNSConfigForming".into(),
            format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the \
                 applied nameserver line is: {}",
                config.servers.join(" ")
            ),
        ));
    }
    let mut cut = false;
    if config.searches.len() > MAX_SEARCH_PATHS {
        config.searches.truncate(MAX_SEARCH_PATHS);
        cut = true;
    }
    let before = config.searches.len();
    config.searches.retain(|s| s.len() <= MAX_SEARCH_DOMAIN);
    cut |= config.searches.len() != before;
    while config.searches.join(" ").len() > MAX_SEARCH_LIST_CHARS {
        config.searches.pop();
        cut = true;
    }
    if cut {
        warnings.push((
            "DNSConfigForming".into(),
            format!(
                "Search Line limits were exceeded, some search paths have been omitted, the \
                 applied search line is: {}",
                config.searches.join(" ")
            ),
        ));
    }
    PodDns { config, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "team"},
            "spec": spec
        }))
        .unwrap()
    }

    fn node(host: Option<ResolverConfig>) -> NodeDns {
        NodeDns {
            cluster_dns: vec!["10.96.0.10".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
            host,
        }
    }

    fn host() -> ResolverConfig {
        ResolverConfig::parse(
            "# generated\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example. lab.example\noptions timeout:2\n",
        )
    }

    #[test]
    fn cluster_first() {
        let d = pod_dns(&node(Some(host())), &pod(json!({})));
        assert_eq!(
            d.config.to_resolv_conf(),
            "nameserver 10.96.0.10\n\
             search team.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n\
             options ndots:5\n"
        );
        assert!(d.warnings.is_empty());
        // ClusterFirstWithHostNet on the host network is the same.
        let d2 = pod_dns(
            &node(Some(host())),
            &pod(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"})),
        );
        assert_eq!(d2.config, d.config);
    }

    #[test]
    fn cluster_first_on_host_network_and_default_use_the_host() {
        for spec in [
            json!({"hostNetwork": true}),
            json!({"dnsPolicy": "Default"}),
        ] {
            let d = pod_dns(&node(Some(host())), &pod(spec));
            assert_eq!(
                d.config.to_resolv_conf(),
                "nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example lab.example\noptions timeout:2\n"
            );
        }
        // No host resolver configuration: the local machine.
        let d = pod_dns(&node(None), &pod(json!({"dnsPolicy": "Default"})));
        assert_eq!(
            d.config.to_resolv_conf(),
            "nameserver 127.0.0.1\nsearch .\n"
        );
    }

    #[test]
    fn cluster_first_without_cluster_dns_falls_back() {
        let n = NodeDns {
            cluster_dns: vec![],
            ..node(Some(host()))
        };
        let d = pod_dns(&n, &pod(json!({})));
        assert_eq!(d.config, host());
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn none_uses_dns_config_only_and_merges() {
        let d = pod_dns(
            &node(Some(host())),
            &pod(json!({"dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["1.2.3.4", "1.2.3.4"],
                "searches": ["ns1.svc.cluster-domain.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
            }})),
        );
        assert_eq!(
            d.config.to_resolv_conf(),
            "nameserver 1.2.3.4\nsearch ns1.svc.cluster-domain.example\noptions ndots:2 edns0\n"
        );
        // Appended to ClusterFirst: the pod's option wins.
        let d = pod_dns(
            &node(None),
            &pod(json!({"dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}})),
        );
        assert_eq!(d.config.options, ["ndots:1"]);
    }

    #[test]
    fn limits_cut_with_a_warning() {
        let searches: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        let d = pod_dns(
            &node(None),
            &pod(json!({"dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"],
                "searches": searches
            }})),
        );
        assert_eq!(d.config.servers.len(), MAX_NAMESERVERS);
        assert_eq!(d.config.searches.len(), MAX_SEARCH_PATHS);
        assert_eq!(d.warnings.len(), 2);
        let long = "a".repeat(300);
        let d = pod_dns(
            &node(None),
            &pod(json!({"dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["1.1.1.1"], "searches": [long, "ok.example"]
            }})),
        );
        assert_eq!(d.config.searches, ["ok.example"]);
    }

    #[test]
    fn parse_keeps_the_last_search_and_options() {
        let c = ResolverConfig::parse(
            "search a.example\nsearch b.example\n; c\noptions ndots:1\nnameserver ::1\n",
        );
        assert_eq!(c.searches, ["b.example"]);
        assert_eq!(c.options, ["ndots:1"]);
        assert_eq!(c.servers, ["::1"]);
    }
}
