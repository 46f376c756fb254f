//! `orch kubelet --kubeconfig F --node-name N --runtime process|sim [--root-dir DIR] …`: the node
//! agent as its own process, against any API server through the HTTP client (HTTPS with the
//! kubeconfig's CA and client certificate).
//!
//! The kubelet's own server (logs, stats, exec/attach/port-forward) speaks HTTPS when given
//! `--tls-cert-file`/`--tls-private-key-file` (a serving certificate for `--node-ip` signed by
//! the cluster CA, e.g. issued with `orch_apiserver::pki::Pki::kubelet_serving`) and
//! `--client-ca-file` (the CA the API server's client certificate is verified against; requests
//! without a verified certificate get 401); without them it serves plain HTTP, which an API
//! server speaking TLS to kubelets refuses. (Certificates by TLS bootstrap are a later step.)
//!
//! Ctrl-C or SIGTERM stops the pods' containers gracefully and exits; a killed kubelet (SIGKILL)
//! leaves them running and the next start on the same `--root-dir` re-attaches to them.

use orch_kubelet::node::{
    parse_pairs, parse_quantity, parse_resources, parse_taint, NodeConfigError,
};
use orch_kubelet::runtime::ContainerRuntime;
use orch_kubelet::{Kubelet, KubeletConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// Container runtime choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KubeletRuntime {
    /// Real host processes.
    Process,
    /// Simulated containers (pod annotations drive them).
    Sim,
}

/// Where the node pressure signals come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeStatsSource {
    /// Fixed, healthy values: the node never reports pressure (deterministic).
    Fixed,
    /// This host: `/proc/meminfo`, free space and inodes of `--root-dir`, PIDs in use.
    Host,
}

/// Arguments of `orch kubelet`.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeletArgs {
    /// Kubeconfig of the API server.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Name of the Node to register.
    #[arg(long)]
    pub node_name: String,
    /// Container runtime.
    #[arg(long, value_enum, default_value = "process")]
    pub runtime: KubeletRuntime,
    /// State dir: containers, logs, `images.yaml` (default `./.orch-kubelet/NODE`).
    #[arg(long)]
    pub root_dir: Option<PathBuf>,
    /// Port of the kubelet's log endpoint (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Node IP (InternalIP, host IP of pods).
    #[arg(long, default_value = "127.0.0.1")]
    pub node_ip: String,
    /// CPU capacity (default: the host's CPUs).
    #[arg(long)]
    pub cpu: Option<String>,
    /// Memory capacity (default: the host's memory).
    #[arg(long)]
    pub memory: Option<String>,
    /// Maximum number of pods.
    #[arg(long, default_value_t = 110)]
    pub pods: i64,
    /// Resources reserved for Kubernetes daemons, e.g. `cpu=100m,memory=256Mi`.
    #[arg(long)]
    pub kube_reserved: Option<String>,
    /// Resources reserved for the system, e.g. `cpu=100m,memory=256Mi`.
    #[arg(long)]
    pub system_reserved: Option<String>,
    /// Extra node labels, `k=v,k2=v2`.
    #[arg(long)]
    pub node_labels: Option<String>,
    /// Taints to register with, `key=value:Effect,...`.
    #[arg(long)]
    pub register_with_taints: Option<String>,
    /// Allow privileged containers.
    #[arg(long)]
    pub allow_privileged: bool,
    /// Pod networking of the process runtime: `auto` (a network namespace per pod when running
    /// as root and `ip netns` works, else host networking), `host` or `netns`.
    #[arg(long, default_value = "auto")]
    pub pod_network: orch_kubelet::runtime::process::PodNetwork,
    /// The node's pod CIDR for a kubelet without a node IPAM controller (standalone); by
    /// default the node's `spec.podCIDR` is used once assigned.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// Hard eviction thresholds that raise the node's pressure conditions, e.g.
    /// `memory.available<100Mi,nodefs.available<10%` (replaces all the defaults).
    #[arg(long)]
    pub eviction_hard: Option<String>,
    /// Where pressure signals come from. `host` is what a real kubelet does; the default is
    /// `fixed` because with upstream's default thresholds a disk more than 85 % full (common
    /// on dev machines) gives every node DiskPressure and a NoSchedule taint.
    #[arg(long, value_enum, default_value = "fixed")]
    pub node_stats: NodeStatsSource,
    /// Serving certificate (PEM) of the kubelet's HTTPS server.
    #[arg(long, requires_all = ["tls_private_key_file", "client_ca_file"])]
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// CA bundle (PEM) client certificates are verified against.
    #[arg(long, requires = "tls_cert_file")]
    pub client_ca_file: Option<PathBuf>,
}

/// The HTTPS configuration from `--tls-cert-file`, `--tls-private-key-file` and
/// `--client-ca-file`; `None` without them.
fn tls(args: &KubeletArgs) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let (Some(cert), Some(key), Some(ca)) = (
        &args.tls_cert_file,
        &args.tls_private_key_file,
        &args.client_ca_file,
    ) else {
        return Ok(None);
    };
    let read =
        |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let serving = orch_apiserver::pki::CertKey {
        cert_pem: read(cert)?,
        key_pem: read(key)?,
    };
    orch_apiserver::tls::server_config(&serving, &read(ca)?)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn config(args: &KubeletArgs) -> Result<KubeletConfig, NodeConfigError> {
    let mut cfg = KubeletConfig::new(&args.node_name);
    let n = &mut cfg.node;
    n.ip = args.node_ip.clone();
    n.port = args.port;
    n.pods = args.pods;
    n.cpu = args
        .cpu
        .as_deref()
        .map(|v| parse_quantity("--cpu", v))
        .transpose()?;
    n.memory = args
        .memory
        .as_deref()
        .map(|v| parse_quantity("--memory", v))
        .transpose()?;
    if let Some(s) = &args.kube_reserved {
        n.kube_reserved = parse_resources("--kube-reserved", s)?;
    }
    if let Some(s) = &args.system_reserved {
        n.system_reserved = parse_resources("--system-reserved", s)?;
    }
    if let Some(s) = &args.node_labels {
        n.labels = parse_pairs("--node-labels", s)?;
    }
    if let Some(s) = &args.register_with_taints {
        n.taints = s
            .split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| parse_taint(t.trim()))
            .collect::<Result<_, _>>()?;
    }
    if let Some(s) = &args.eviction_hard {
        n.eviction_hard = orch_kubelet::eviction::parse_eviction_hard(s)?;
    }
    cfg.allow_privileged = args.allow_privileged;
    Ok(cfg)
}

/// Runs `orch kubelet` until Ctrl-C or SIGTERM; returns the exit code.
pub fn run(args: KubeletArgs) -> i32 {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let mut cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match tls(&args) {
        Ok(t) => cfg.tls = t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    }
    let client = match super::kubeconfig_client(&args.kubeconfig) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let root = args
        .root_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".orch-kubelet").join(&args.node_name));
    if args.node_stats == NodeStatsSource::Host {
        cfg.node.stats = Arc::new(orch_kubelet::eviction::HostStats::new(&root));
    }
    let runtime: Arc<dyn ContainerRuntime> = match args.runtime {
        KubeletRuntime::Sim => Arc::new(orch_kubelet::runtime::sim::SimRuntime::new(0)),
        KubeletRuntime::Process => {
            // Projected volumes (the service-account token) beside the runtime's state.
            cfg.root_dir = Some(root.clone());
            let mut pc = orch_kubelet::runtime::process::ProcessConfig::new(root);
            pc.host_ip = args.node_ip.clone();
            pc.pod_network = args.pod_network;
            pc.pod_cidr = args.pod_cidr.clone();
            match orch_kubelet::runtime::process::ProcessRuntime::open(pc) {
                Ok(r) => Arc::new(r),
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            }
        }
    };
    let Some(rt) = super::runtime(true) else {
        return 1;
    };
    let clock = Arc::new(orch_types::clock::SystemClock);
    let kubelet = Kubelet::new(cfg, client, runtime, clock);
    let shutdown = async {
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                        return;
                    }
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    match rt.block_on(kubelet.run(shutdown)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
