//! `orch proxy --kubeconfig F [--cluster-name N] [--nodeport-addresses CIDR,…]`: the service
//! proxy of this host as its own process (`orch up` runs one itself). It programs the kernel's
//! packet filter (nftables, with the `nft` tool) so that Services' cluster IPs, external IPs
//! and node ports reach their ready endpoints; it needs root and refuses to start without it
//! or without `nft`. Ctrl-C or SIGTERM removes its rules and exits. See
//! `orch_kubelet::proxy` and `docs/design/services.md`.

use super::parse_duration;
use orch_kubelet::proxy::{Proxy, ProxyConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `orch proxy`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// Kubeconfig of the API server.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// The cluster's name on this host, which names its nftables table: two proxies of one
    /// cluster share it, clusters must not. Default: the kubeconfig's directory (the data dir
    /// of `orch up` / `orch apiserver`), as `orch up` names it.
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// CIDRs of the node addresses that serve node ports (comma separated); default: every
    /// address of the host but loopback.
    #[arg(long, value_delimiter = ',')]
    pub nodeport_addresses: Vec<String>,
    /// Full re-sync period.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub sync_period: Duration,
    /// Least time between two syncs (changes in between are applied together).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub min_sync_period: Duration,
}

/// The cluster name of a data dir: its absolute path.
pub fn cluster_name(data_dir: &Path) -> String {
    std::fs::canonicalize(data_dir)
        .unwrap_or_else(|_| std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.into()))
        .to_string_lossy()
        .into_owned()
}

/// Checks `--nodeport-addresses`: IPv4 CIDRs.
fn check_cidrs(cidrs: &[String]) -> Result<(), String> {
    for c in cidrs {
        if c.parse::<orch_kubelet::runtime::process::ipam::Cidr>()
            .is_err()
        {
            return Err(format!("--nodeport-addresses: {c:?} is not an IPv4 CIDR"));
        }
    }
    Ok(())
}

/// Runs `orch proxy`; returns the exit code.
pub fn run(args: ProxyArgs) -> i32 {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    if let Err(e) = check_cidrs(&args.nodeport_addresses) {
        eprintln!("error: {e}");
        return 2;
    }
    let client = match super::kubeconfig_client(&args.kubeconfig) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let name = args
        .cluster_name
        .clone()
        .unwrap_or_else(|| cluster_name(args.kubeconfig.parent().unwrap_or(Path::new("."))));
    let config = ProxyConfig {
        nodeport_addresses: args.nodeport_addresses.clone(),
        sync_period: args.sync_period,
        min_sync_period: args.min_sync_period,
        ..ProxyConfig::new(&name)
    };
    let table = config.table.clone();
    let proxy = match Proxy::new(client, config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let Some(rt) = super::runtime(true) else {
        return 1;
    };
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(proxy.run(rx));
        eprintln!("orch proxy: programming nftables table `ip {table}`; Ctrl-C to stop");
        super::up::wait_for_stop_signal().await;
        tx.send_replace(true);
        let _ = task.await;
    });
    0
}

/// The proxy `orch up` runs for its nodes, stopped with [`UpProxy::stop`].
#[derive(Debug)]
pub struct UpProxy {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl UpProxy {
    /// Starts the proxy of the cluster on `data_dir`; `Err` says why there is none (not root,
    /// no `nft`).
    pub fn start(
        data_dir: &Path,
        client: orch_types::client::SharedClient,
    ) -> Result<(Self, String), String> {
        let config = ProxyConfig::new(&cluster_name(data_dir));
        let table = config.table.clone();
        let proxy = Proxy::new(client, config).map_err(|e| e.to_string())?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(proxy.run(rx));
        Ok((Self { stop, task }, table))
    }

    /// Stops it; its rules are removed.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodeport_addresses_must_be_cidrs() {
        assert!(check_cidrs(&["192.168.0.0/16".into()]).is_ok());
        let e = check_cidrs(&["eth0".into()]).unwrap_err();
        assert!(e.contains("not an IPv4 CIDR"), "{e}");
    }
}
