//! `orch kubelet --kubeconfig F --node-name N --runtime process|sim [--root-dir DIR] …`: the node
//! agent as its own process, against any API server through the HTTP client (HTTPS with the
//! kubeconfig's CA and client certificate).
//!
//! The kubelet's own server (logs, stats, exec/attach/port-forward) speaks HTTPS when given
//! `--tls-cert-file`/`--tls-private-key-file` (a serving certificate for `--node-ip` signed by
//! the cluster CA, e.g. issued with `orch_apiserver::pki::Pki::kubelet_serving`) and
//! `--client-ca-file` (the CA the API server's client certificate is verified against; requests
//! without a verified certificate get 401), or with `--rotate-server-certificates` (a
//! `kubernetes.io/kubelet-serving` certificate requested from the cluster, served once someone
//! approves it with `kubectl certificate approve`, renewed before it expires); without either
//! it serves plain HTTP, which an API server speaking TLS to kubelets refuses (`kubectl logs`
//! and `exec` to the node then fail with "cannot reach the kubelet").
//!
//! With `--bootstrap-kubeconfig` the kubelet joins by TLS bootstrap: a bootstrap token buys its
//! client certificate (`system:node:NAME`), which it renews in the background before it expires
//! and uses from the next connection on, without a restart.
//!
//! Ctrl-C or SIGTERM stops the pods' containers gracefully and exits; a killed kubelet (SIGKILL)
//! leaves them running and the next start on the same `--root-dir` re-attaches to them.

use orch_kubelet::certificate::{self, CurrentCertificate, Issued};
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
    /// OCI containers through CRI: containerd at `--container-runtime-endpoint`, or one the
    /// kubelet starts under its root dir (root; Debian's containerd, runc,
    /// containernetworking-plugins).
    Cri,
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
    /// Kubeconfig of the API server. With `--bootstrap-kubeconfig` it is written by the TLS
    /// bootstrap when missing or when its client certificate is due for renewal.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Kubeconfig with a bootstrap token and the cluster CA: the kubelet asks the cluster for
    /// its client certificate with it (a CertificateSigningRequest the `csrapproving` and
    /// `csrsigning` controllers approve and sign), then runs with `--kubeconfig`.
    #[arg(long)]
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// Where the bootstrap writes the client certificate and key
    /// (`kubelet-client-current.pem`) and `--rotate-server-certificates` the serving ones
    /// (`kubelet-server-current.pem`); default: the root dir's `pki`.
    #[arg(long)]
    pub cert_dir: Option<PathBuf>,
    /// Serve HTTPS with a `kubernetes.io/kubelet-serving` certificate for `--node-ip` and the
    /// node name requested from the cluster (a CertificateSigningRequest an administrator
    /// approves with `kubectl certificate approve`; until then TLS handshakes to the kubelet
    /// fail), renewed before it expires. Client certificates are verified against
    /// `--client-ca-file`, by default the kubeconfig's CA.
    #[arg(long, conflicts_with = "tls_cert_file")]
    pub rotate_server_certificates: bool,
    /// Name of the Node to register.
    #[arg(long)]
    pub node_name: String,
    /// Container runtime.
    #[arg(long, value_enum, default_value = "process")]
    pub runtime: KubeletRuntime,
    /// The CRI socket of a running containerd for `--runtime cri`
    /// (`unix:///run/containerd/containerd.sock`); default: the kubelet starts its own.
    #[arg(long)]
    pub container_runtime_endpoint: Option<String>,
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
    /// CA bundle (PEM) client certificates are verified against (with `--tls-cert-file` or
    /// `--rotate-server-certificates`).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Cluster DNS server IPs (comma-separated) in the resolv.conf of `ClusterFirst` pods.
    #[arg(long, value_delimiter = ',')]
    pub cluster_dns: Vec<std::net::IpAddr>,
    /// The cluster domain: pods search `<ns>.svc.<domain> svc.<domain> <domain>`.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Resolver configuration pods with `dnsPolicy: Default` get (and whose search domains
    /// `ClusterFirst` pods append); empty: none (`nameserver 127.0.0.1`).
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
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
    cfg.dns = orch_kubelet::dns::DnsSettings {
        cluster_dns: args.cluster_dns.clone(),
        cluster_domain: args.cluster_domain.clone(),
        cluster_dns_on_gateway: false,
        resolv_conf: (!args.resolv_conf.as_os_str().is_empty()).then(|| args.resolv_conf.clone()),
    };
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
    if args.client_ca_file.is_some()
        && args.tls_cert_file.is_none()
        && !args.rotate_server_certificates
    {
        eprintln!("error: --client-ca-file needs --tls-cert-file or --rotate-server-certificates");
        return 2;
    }
    let cert_dir = args.cert_dir.clone().unwrap_or_else(|| {
        args.root_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(".orch-kubelet").join(&args.node_name))
            .join("pki")
    });
    if let Some(bootstrap) = &args.bootstrap_kubeconfig {
        if let Err(e) = tls_bootstrap(bootstrap, &args.kubeconfig, &cert_dir, &args.node_name) {
            eprintln!("error: TLS bootstrap: {e}");
            return 1;
        }
    }
    let certs = match Certificates::new(&args, &cert_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let client = certs.client.clone();
    if let Some(serving) = &certs.serving {
        match serving_tls(&args, &certs.endpoint, serving) {
            Ok(t) => cfg.tls = Some(t),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    }
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
        KubeletRuntime::Cri => {
            cfg.root_dir = Some(root.clone());
            match crate::images::open_cri_runtime(
                &root,
                &args.node_name,
                &args.node_ip,
                args.container_runtime_endpoint.clone(),
                args.pod_cidr.clone(),
            ) {
                Ok(r) => r,
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
    let clock: orch_types::clock::SharedClock = Arc::new(orch_types::clock::SystemClock);
    let kubelet = Kubelet::new(cfg, client, runtime, clock.clone());
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
    let run = async {
        certs.rotate(&args, &cert_dir, &clock);
        kubelet.run(shutdown).await
    };
    match rt.block_on(run) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Whether the client certificate of kubeconfig `path` is still good: it reads, and a
/// jittered 70–90 % of its lifetime has not passed.
fn client_certificate_current(path: &std::path::Path) -> bool {
    let Ok(ep) = orch_apiserver::kubeconfig::read_endpoint(path) else {
        return false;
    };
    let Some((from, to)) = ep
        .client
        .as_ref()
        .and_then(|c| orch_kubelet::certificate::validity(&c.cert_pem))
    else {
        return false;
    };
    let now = jiff::Timestamp::now();
    // Jitter from the clock's nanoseconds: in [0, 1).
    let jitter = f64::from(now.subsec_nanosecond().unsigned_abs()) / 1e9;
    now < orch_kubelet::certificate::rotation_deadline(from, to, jitter)
}

/// Kubelet TLS bootstrap (upstream `pkg/kubelet/certificate/bootstrap`): unless `kubeconfig`
/// holds a current client certificate, a new key and a CertificateSigningRequest for
/// `system:node:NODE` made with `bootstrap`'s credentials; once issued, the certificate and
/// key go to `CERT_DIR/kubelet-client-current.pem` and into `kubeconfig` (the bootstrap
/// kubeconfig's server and CA).
fn tls_bootstrap(
    bootstrap: &std::path::Path,
    kubeconfig: &std::path::Path,
    cert_dir: &std::path::Path,
    node: &str,
) -> Result<(), String> {
    if client_certificate_current(kubeconfig) {
        return Ok(());
    }
    let ep = orch_apiserver::kubeconfig::read_endpoint(bootstrap)
        .map_err(|e| format!("{}: {e}", bootstrap.display()))?;
    let client: orch_types::client::SharedClient = Arc::new(
        orch_apiserver::client::HttpClient::from_endpoint(&ep)
            .map_err(|e| format!("{}: {e}", bootstrap.display()))?,
    );
    let rt = super::runtime(false).ok_or("no async runtime")?;
    let issued = rt
        .block_on(orch_kubelet::certificate::obtain(
            &client,
            node,
            &[],
            std::time::Duration::from_secs(300),
        ))
        .map_err(|e| e.to_string())?;
    let mut node_ep = orch_apiserver::kubeconfig::Endpoint::new(ep.server.clone());
    node_ep.ca_pem = ep.ca_pem.clone();
    node_ep.insecure_skip_tls_verify = ep.insecure_skip_tls_verify;
    write_client_certificate(cert_dir, kubeconfig, &node_ep, &issued)
}

/// Writes a client certificate and key to `CERT_DIR/kubelet-client-current.pem` (0600) and
/// into `kubeconfig` (`ep`'s server and CA).
fn write_client_certificate(
    cert_dir: &std::path::Path,
    kubeconfig: &std::path::Path,
    ep: &orch_apiserver::kubeconfig::Endpoint,
    issued: &Issued,
) -> Result<(), String> {
    write_pem(&cert_dir.join(CLIENT_PEM), issued)?;
    let mut node_ep = orch_apiserver::kubeconfig::Endpoint::new(ep.server.clone());
    node_ep.ca_pem = ep.ca_pem.clone();
    node_ep.insecure_skip_tls_verify = ep.insecure_skip_tls_verify;
    node_ep.client = Some(orch_apiserver::pki::CertKey {
        cert_pem: issued.cert_pem.clone(),
        key_pem: issued.key_pem.clone(),
    });
    orch_apiserver::kubeconfig::write(kubeconfig, &node_ep)
        .map_err(|e| format!("{}: {e}", kubeconfig.display()))
}

/// The client certificate file in the cert dir (upstream's name).
const CLIENT_PEM: &str = "kubelet-client-current.pem";
/// The serving certificate file in the cert dir (upstream's name).
const SERVING_PEM: &str = "kubelet-server-current.pem";

/// Writes a certificate and its key, PEM one after the other, to `path` (0600, its dir
/// created).
fn write_pem(path: &std::path::Path, issued: &Issued) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| write!(f, "{}{}", issued.cert_pem, issued.key_pem))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A certificate and key written by [`write_pem`], unless missing, unreadable or expired.
fn read_pem(path: &std::path::Path) -> Option<Issued> {
    let text = std::fs::read_to_string(path).ok()?;
    let key_at = text
        .match_indices("-----BEGIN ")
        .map(|(i, _)| i)
        .find(|&i| {
            text[i..]
                .lines()
                .next()
                .is_some_and(|l| l.contains("PRIVATE KEY"))
        })?;
    let issued = Issued {
        cert_pem: text[..key_at].to_string(),
        key_pem: text[key_at..].to_string(),
    };
    let (_, not_after) = orch_kubelet::certificate::validity(&issued.cert_pem)?;
    (not_after > jiff::Timestamp::now()).then_some(issued)
}

/// The kubelet's API client and the certificates it keeps renewed.
struct Certificates {
    /// The API client (presenting [`Certificates::client_cert`] when bootstrapped).
    client: orch_types::client::SharedClient,
    /// The kubeconfig's endpoint.
    endpoint: orch_apiserver::kubeconfig::Endpoint,
    /// The rotated client certificate (with `--bootstrap-kubeconfig`).
    client_cert: Option<Arc<CurrentCertificate>>,
    /// The rotated serving certificate (with `--rotate-server-certificates`).
    serving: Option<Arc<CurrentCertificate>>,
}

impl Certificates {
    /// The client of `--kubeconfig`: a bootstrapped kubelet presents its client certificate
    /// through a [`CurrentCertificate`] so renewals take effect on the next connection; the
    /// serving certificate of `--rotate-server-certificates` from the cert dir, if still valid.
    fn new(args: &KubeletArgs, cert_dir: &std::path::Path) -> Result<Self, String> {
        let path = &args.kubeconfig;
        let endpoint = orch_apiserver::kubeconfig::read_endpoint(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let (client, client_cert): (orch_types::client::SharedClient, _) =
            match (&args.bootstrap_kubeconfig, &endpoint.client) {
                (Some(_), Some(c)) if endpoint.server.starts_with("https://") => {
                    let current = CurrentCertificate::new(Some(Issued {
                        cert_pem: c.cert_pem.clone(),
                        key_pem: c.key_pem.clone(),
                    }))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                    let client = orch_apiserver::client::HttpClient::from_endpoint_resolving(
                        &endpoint,
                        current.clone(),
                    )
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                    (Arc::new(client), Some(current))
                }
                _ => (super::kubeconfig_client(path)?, None),
            };
        let serving = args
            .rotate_server_certificates
            .then(|| CurrentCertificate::new(read_pem(&cert_dir.join(SERVING_PEM))))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            endpoint,
            client_cert,
            serving,
        })
    }

    /// Spawns the renewals: the client certificate (written back to the cert dir and the
    /// kubeconfig) and the serving certificate (requested at once when there is none).
    fn rotate(
        &self,
        args: &KubeletArgs,
        cert_dir: &std::path::Path,
        clock: &orch_types::clock::SharedClock,
    ) {
        let node = args.node_name.clone();
        let renew = |hosts: Vec<String>| {
            let (client, node) = (self.client.clone(), node.clone());
            move || {
                let (client, node, hosts) = (client.clone(), node.clone(), hosts.clone());
                async move {
                    certificate::obtain(&client, &node, &hosts, certificate::WAIT_TIMEOUT).await
                }
            }
        };
        if let Some(current) = &self.client_cert {
            let (dir, kubeconfig, ep) = (
                cert_dir.to_path_buf(),
                args.kubeconfig.clone(),
                self.endpoint.clone(),
            );
            let rotation = certificate::Rotation::new(current.clone(), clock.clone());
            tokio::spawn(rotation.run(renew(Vec::new()), move |issued: &Issued| {
                match write_client_certificate(&dir, &kubeconfig, &ep, issued) {
                    Ok(()) => tracing::info!("client certificate renewed"),
                    Err(e) => tracing::warn!(error = %e, "renewed client certificate not saved"),
                }
            }));
        }
        if let Some(current) = &self.serving {
            let mut hosts = vec![args.node_ip.clone()];
            if args.node_name.parse::<std::net::IpAddr>().is_err() {
                hosts.push(args.node_name.clone());
            }
            let path = cert_dir.join(SERVING_PEM);
            let rotation = certificate::Rotation::new(current.clone(), clock.clone());
            tokio::spawn(rotation.run(renew(hosts), move |issued: &Issued| {
                match write_pem(&path, issued) {
                    Ok(()) => tracing::info!("serving certificate issued"),
                    Err(e) => tracing::warn!(error = %e, "serving certificate not saved"),
                }
            }));
        }
    }
}

/// The HTTPS configuration of `--rotate-server-certificates`: `serving`'s certificate,
/// client certificates verified against `--client-ca-file` or else the kubeconfig's CA.
fn serving_tls(
    args: &KubeletArgs,
    ep: &orch_apiserver::kubeconfig::Endpoint,
    serving: &Arc<CurrentCertificate>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let ca = match &args.client_ca_file {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => ep.ca_pem.clone().ok_or(
            "--rotate-server-certificates needs --client-ca-file or a kubeconfig with a CA",
        )?,
    };
    orch_apiserver::tls::server_config_resolving(serving.clone(), &ca).map_err(|e| e.to_string())
}
