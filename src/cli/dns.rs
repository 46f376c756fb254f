//! `orch dns --kubeconfig F [--listen ADDR]… [--cluster-domain D] [--upstream ADDR]…`: the
//! cluster DNS server ([`crate::dns`]) as its own process, against any API server (orch or
//! Kubernetes) through the HTTP client. Names under the cluster domain are answered from the
//! cluster's Services, Endpoints and Pods; others are forwarded to `--upstream` (default: the
//! nameservers of the host's `/etc/resolv.conf`).

use crate::dns::{DnsConfig, DnsServer, Forwarder, DEFAULT_CLUSTER_DOMAIN};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Arguments of `orch dns`.
#[derive(Debug, Clone, clap::Args)]
pub struct DnsArgs {
    /// Kubeconfig of the API server.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Address to serve on, UDP and TCP (repeatable; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:53")]
    pub listen: Vec<SocketAddr>,
    /// The cluster domain (kubelet `--cluster-domain`).
    #[arg(long, default_value = DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// Upstream nameserver for names outside the cluster, `IP` (port 53) or `IP:PORT`
    /// (repeatable; default: the nameservers of /etc/resolv.conf).
    #[arg(long, value_parser = parse_upstream)]
    pub upstream: Vec<SocketAddr>,
}

/// `IP` (port 53) or `IP:PORT`.
pub fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("invalid nameserver {s:?} (IP or IP:PORT)"))
}

/// Runs `orch dns` until Ctrl-C or SIGTERM; returns the exit code.
pub fn run(args: DnsArgs) -> i32 {
    let client: orch_types::client::SharedClient = match super::kubeconfig_client(&args.kubeconfig)
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let Some(rt) = super::runtime(true) else {
        return 1;
    };
    let upstream = if args.upstream.is_empty() {
        Forwarder::system_nameservers()
    } else {
        args.upstream.clone()
    };
    let config = DnsConfig {
        listen: args.listen.clone(),
        cluster_domain: args.cluster_domain.clone(),
        upstream,
    };
    rt.block_on(async move {
        let server = match DnsServer::bind(&config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        let addrs: Vec<String> = server.local_addrs().iter().map(|a| a.to_string()).collect();
        println!(
            "cluster DNS for {} on {} (upstream: {})",
            config.cluster_domain,
            addrs.join(", "),
            if config.upstream.is_empty() {
                "none".to_string()
            } else {
                config
                    .upstream
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        match server.run(client, super::up::wait_for_stop_signal()).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_takes_ip_or_ip_port() {
        assert_eq!(
            parse_upstream("10.0.0.2").unwrap(),
            "10.0.0.2:53".parse().unwrap()
        );
        assert_eq!(
            parse_upstream("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_upstream("[::1]:53").unwrap(),
            "[::1]:53".parse().unwrap()
        );
        assert!(parse_upstream("dns.example").is_err());
    }
}
