//! `orch bench proxy`: the cost of one full sync of N Services × M endpoints (the issue's
//! figure is 1,000 × 10), split into generating the ruleset text and applying it with
//! `nft -f`. The rules go into a scratch network namespace (`ip netns add`), never the host's.
//!
//! Measured: the generation (ports → ruleset → transaction text, median of 5), the first
//! apply (a fresh table: every chain, map element and rule created) and a re-sync after one
//! endpoint changed (a partial sync: the changed Service's chains rewritten, the stale
//! endpoint chain deleted, the rest left alone).

use super::model::{Endpoint, Protocol, ServicePort};
use super::nft::Nft;
use super::rules::{self, RuleOptions};
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

/// What one run measured.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyBenchReport {
    /// Services (one TCP port each).
    pub services: usize,
    /// Ready endpoints per Service.
    pub endpoints_per_service: usize,
    /// Chains in the ruleset.
    pub chains: usize,
    /// Size of the first transaction.
    pub transaction_bytes: usize,
    /// Generating the first transaction's text, ms (median of 5).
    pub generate_ms: f64,
    /// `nft -f` of the first transaction (fresh table), ms.
    pub first_apply_ms: f64,
    /// Generating and applying a re-sync after one endpoint changed, ms.
    pub resync_ms: f64,
}

impl std::fmt::Display for ProxyBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "proxy sync: {} Services x {} endpoints ({} chains, {} KiB of nft input)",
            self.services,
            self.endpoints_per_service,
            self.chains,
            self.transaction_bytes / 1024
        )?;
        writeln!(f, "  generate ruleset:     {:>9.1} ms", self.generate_ms)?;
        writeln!(f, "  nft -f, fresh table:  {:>9.1} ms", self.first_apply_ms)?;
        write!(f, "  re-sync, one change:  {:>9.1} ms", self.resync_ms)
    }
}

/// `services` ClusterIP Services on port 80, each with `endpoints` ready endpoints on 8080.
pub fn synthetic_ports(services: usize, endpoints: usize) -> Vec<ServicePort> {
    let base = u32::from(Ipv4Addr::new(10, 96, 0, 10));
    let pods = u32::from(Ipv4Addr::new(10, 244, 0, 2));
    let mut out: Vec<ServicePort> = (0..services)
        .map(|i| ServicePort {
            namespace: "bench".into(),
            name: format!("svc-{i}"),
            port_name: String::new(),
            protocol: Protocol::Tcp,
            cluster_ip: Some(Ipv4Addr::from(base + i as u32)),
            port: 80,
            node_port: None,
            external_ips: vec![],
            affinity_seconds: None,
            endpoints: (0..endpoints)
                .map(|j| Endpoint::ready(Ipv4Addr::from(pods + (i * endpoints + j) as u32), 8080))
                .collect(),
        })
        .collect();
    out.sort_by_key(|s| s.id());
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Deletes the scratch namespace when dropped.
struct ScratchNetns(String);

impl Drop for ScratchNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs the benchmark; the error says why it cannot (not root, no `nft`, no `ip netns`).
pub fn run(services: usize, endpoints: usize) -> Result<ProxyBenchReport, String> {
    let host_nft = Nft::detect()?;
    let name = format!("orch-proxy-bench-{}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .map_err(|e| format!("ip netns add: {e}"))?;
    if !made.success() {
        return Err(format!("`ip netns add {name}` failed"));
    }
    let _scratch = ScratchNetns(name.clone());
    let nft = host_nft.in_netns(&name);
    let options = RuleOptions {
        table: "orch-bench".into(),
        nodeport_addresses: vec![],
    };
    let mut ports = synthetic_ports(services, endpoints);
    let mut times = Vec::new();
    let mut first = None;
    for _ in 0..5 {
        let t = Instant::now();
        let r = rules::generate(&ports, &options);
        let text = r.transaction(&options.table, None);
        times.push(t.elapsed());
        first = Some((r, text));
    }
    times.sort();
    let (ruleset, text) = first.ok_or("no run")?;
    let t = Instant::now();
    nft.apply(&text)?;
    let first_apply = t.elapsed();
    // one endpoint of the first Service moves
    if let Some(e) = ports.first_mut().and_then(|p| p.endpoints.first_mut()) {
        e.ip = Ipv4Addr::new(10, 250, 0, 1);
    }
    let t = Instant::now();
    let next = rules::generate(&ports, &options);
    nft.apply(&next.transaction(&options.table, Some(&ruleset)))?;
    let resync = t.elapsed();
    Ok(ProxyBenchReport {
        services,
        endpoints_per_service: endpoints,
        chains: ruleset.chains.len(),
        transaction_bytes: text.len(),
        generate_ms: ms(times[times.len() / 2]),
        first_apply_ms: ms(first_apply),
        resync_ms: ms(resync),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_ports_have_distinct_addresses() {
        let ports = synthetic_ports(300, 10);
        assert_eq!(ports.len(), 300);
        let ips: std::collections::BTreeSet<_> =
            ports.iter().filter_map(|p| p.cluster_ip).collect();
        assert_eq!(ips.len(), 300);
        let eps: std::collections::BTreeSet<_> = ports
            .iter()
            .flat_map(|p| p.endpoints.iter().map(|e| e.ip))
            .collect();
        assert_eq!(eps.len(), 3000);
        let r = rules::generate(
            &ports,
            &RuleOptions {
                table: "t".into(),
                nodeport_addresses: vec![],
            },
        );
        assert_eq!(r.chains.len(), 300 * 11);
    }
}
