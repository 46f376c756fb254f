//! `orch up`: the all-in-one cluster in one process (API server, scheduler, controller manager,
//! kubelets), on the embedded store by default. HTTPS by default: the cluster PKI is created in
//! `DATA_DIR/pki` on first start (reused later) and `DATA_DIR/kubeconfig` embeds the CA and the
//! admin client certificate (`scheduler.conf` and `controller-manager.conf` beside it serve the
//! components run as separate processes). Prints where the kubeconfig is; Ctrl-C (or SIGTERM)
//! stops it cleanly; running it again on the same data dir brings everything back.

use super::parse_duration;
use super::storage::{storage_config, EtcdArgs, StorageArg};
use crate::cluster::{Cluster, Runtime, Storage};
use orch_apiserver::StorageConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Container runtime choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeArg {
    /// Real host processes.
    Process,
    /// Simulated containers (pod annotations drive them).
    Sim,
    /// OCI containers through CRI on a containerd each kubelet starts (root; Debian's
    /// containerd, runc and containernetworking-plugins; images with `orch images load`).
    Cri,
}

/// Arguments of `orch up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Data dir: store, kubeconfig, kubelet state.
    #[arg(long, default_value = ".orch")]
    pub data_dir: PathBuf,
    /// API server listen address (HTTPS; its IP is in the serving certificate).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Serve plain HTTP without authentication instead of HTTPS: for tests only (anyone who
    /// reaches the port is cluster admin).
    #[arg(long)]
    pub insecure_http: bool,
    /// Number of in-process kubelets (`node-1` … `node-N`).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Container runtime of the kubelets.
    #[arg(long, value_enum, default_value = "process")]
    pub runtime: RuntimeArg,
    /// Storage backend.
    #[arg(long, value_enum, default_value = "embedded")]
    pub storage: StorageArg,
    /// etcd connection (with `--storage etcd`).
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Events are deleted this long after their last write (kube-apiserver's `--event-ttl`);
    /// `0` keeps them.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub event_ttl: Duration,
    /// Time without heartbeat after which a node becomes Unknown (e.g. `40s`, `2m`).
    #[arg(long, value_parser = parse_duration)]
    pub node_monitor_grace_period: Option<Duration>,
    /// Pod networking of the process runtime: `auto` (a network namespace per pod when running
    /// as root, else host networking), `host` or `netns`.
    #[arg(long, default_value = "auto")]
    pub pod_network: orch_kubelet::runtime::process::PodNetwork,
    /// Cluster CIDR the nodes' podCIDRs are carved from (default 10.244.0.0/16, or the next free
    /// /16 when another cluster on this host uses it).
    #[arg(long)]
    pub cluster_cidr: Option<String>,
    /// Where the cluster DNS server listens (UDP and TCP). On port 53 of all addresses pods in
    /// network namespaces use it through their gateway; when it cannot be bound the server
    /// answers on 127.0.0.1 (a free port) for the host only. Default: `0.0.0.0:53` for the
    /// process runtime with pod network namespaces as root, else `127.0.0.1:0`.
    #[arg(long)]
    pub cluster_dns_listen: Option<SocketAddr>,
    /// The cluster domain of DNS names and pods' search lists.
    #[arg(long, default_value = crate::dns::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// Nameserver for names outside the cluster, `IP` or `IP:PORT` (repeatable; default: the
    /// nameservers of /etc/resolv.conf).
    #[arg(long, value_parser = super::dns::parse_upstream)]
    pub dns_upstream: Vec<SocketAddr>,
    /// Authentication and authorization.
    #[command(flatten)]
    pub auth: super::auth::AuthArgs,
    /// Max-in-flight limits.
    #[command(flatten)]
    pub inflight: super::flowcontrol::MaxInFlightArgs,
    /// Service cluster IP and node port ranges.
    #[command(flatten)]
    pub services: super::apiserver::ServiceRangeArgs,
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings and errors).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs `orch up`; returns the exit code.
pub fn run(args: UpArgs) -> i32 {
    init_logging();
    let Some(rt) = super::runtime(true) else {
        return 1;
    };
    rt.block_on(up(args))
}

async fn up(args: UpArgs) -> i32 {
    let storage = match storage_config(args.storage, &args.etcd, &args.data_dir) {
        Ok(StorageConfig::Memory) => Storage::Memory,
        Ok(StorageConfig::Embedded(_)) => Storage::Embedded,
        #[cfg(feature = "etcd")]
        Ok(StorageConfig::Etcd {
            servers,
            prefix,
            tls,
        }) => Storage::Etcd {
            servers,
            prefix,
            tls,
        },
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let service_alloc = match args.services.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut b = Cluster::builder()
        .service_alloc(service_alloc)
        .data_dir(&args.data_dir)
        .listen(Some(args.listen))
        .nodes(args.nodes)
        .auth(args.auth.config(!args.insecure_http))
        .runtime(match args.runtime {
            RuntimeArg::Process => Runtime::Process,
            RuntimeArg::Sim => Runtime::Sim,
            RuntimeArg::Cri => Runtime::Cri,
        })
        .storage(storage)
        .event_ttl((!args.event_ttl.is_zero()).then_some(args.event_ttl))
        .service_account_admission(true)
        .max_in_flight(
            args.inflight.max_requests_inflight,
            args.inflight.max_mutating_requests_inflight,
        )
        .priority_and_fairness(args.inflight.enable_priority_and_fairness)
        .wait_ready(Some(Duration::from_secs(60)));
    if let Some(d) = args.node_monitor_grace_period {
        b = b.node_monitor_grace_period(d);
    }
    b = b.pod_network(args.pod_network);
    if args.insecure_http {
        b = b.insecure_http();
    }
    if let Some(c) = &args.cluster_cidr {
        b = b.cluster_cidr(c.clone());
    }
    let pods_in_netns = args.runtime == RuntimeArg::Process
        && args.pod_network != orch_kubelet::runtime::process::PodNetwork::Host
        && std::fs::metadata("/proc/self")
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    let listen = args.cluster_dns_listen.unwrap_or(if pods_in_netns {
        SocketAddr::from(([0, 0, 0, 0], 53))
    } else {
        SocketAddr::from(([127, 0, 0, 1], 0))
    });
    let mut dns = crate::dns::DnsConfig::new(vec![listen]);
    dns.cluster_domain = args.cluster_domain.clone();
    if !args.dns_upstream.is_empty() {
        dns.upstream = args.dns_upstream.clone();
    }
    b = b.cluster_dns(dns);
    let cluster = match b.start().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let kubeconfig = cluster
        .kubeconfig()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
        .unwrap_or_default();
    println!(
        "orch is up: API server {} ({} node(s), {} runtime, {} storage, started in {:.0?})",
        cluster.url().unwrap_or_default(),
        args.nodes,
        match args.runtime {
            RuntimeArg::Process => "process",
            RuntimeArg::Sim => "sim",
            RuntimeArg::Cri => "cri",
        },
        args.storage.name(),
        cluster.started_in(),
    );
    if let Some(a) = cluster.dns_addrs().first() {
        println!(
            "cluster DNS ({}) on {a} (kube-system/kube-dns)",
            args.cluster_domain
        );
    }
    println!("kubeconfig written to {}", kubeconfig.display());
    println!("export KUBECONFIG={}", kubeconfig.display());
    // The service proxy of this host, for pods with real addresses.
    let proxy = if args.runtime == RuntimeArg::Sim {
        None
    } else {
        match super::proxy::UpProxy::start(&args.data_dir, cluster.client()) {
            Ok((p, table)) => {
                println!("service proxy: nftables table `ip {table}`");
                Some(p)
            }
            Err(e) => {
                println!("service proxy: not running ({e})");
                None
            }
        }
    };
    println!("Press Ctrl-C to stop.");

    wait_for_stop_signal().await;
    eprintln!("stopping orch (Ctrl-C again to force)...");
    if let Some(p) = proxy {
        p.stop().await;
    }
    let shutdown = cluster.shutdown();
    tokio::select! {
        r = shutdown => match r {
            Ok(()) => {
                eprintln!("orch stopped");
                0
            }
            Err(e) => {
                eprintln!("error during shutdown: {e}");
                1
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("forced stop");
            130
        }
    }
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
