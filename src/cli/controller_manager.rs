//! `orch controller-manager --kubeconfig F [--controllers a,b,...]`: the controllers as their
//! own process against any API server (orch or Kubernetes), with leader election on the Lease
//! `kube-system/kube-controller-manager` so two instances never act at once.

use super::leader_elect::LeaderElectArgs;
use orch_controllers::leader::run_as_leader;
use orch_controllers::manager::{parse_controllers, ControllerManager, ManagerConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `orch controller-manager`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControllerManagerArgs {
    /// Kubeconfig of the API server.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Controllers to run: `*` (all), names, `-name` to disable (kube-controller-manager syntax).
    #[arg(long, default_value = "*")]
    pub controllers: String,
    /// Time without heartbeat after which a node becomes Unknown (a duration: `40s`, `2m`;
    /// a plain number is seconds), as kube-controller-manager's flag.
    #[arg(long, default_value = "50s", value_parser = super::parse_duration)]
    pub node_monitor_grace_period: std::time::Duration,
    /// `--cluster-cidr` for node IPAM.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// `--node-cidr-mask-size`.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// `--terminated-pod-gc-threshold` (0 disables).
    #[arg(long, default_value_t = 12_500)]
    pub terminated_pod_gc_threshold: usize,
    /// The cluster CA bundle (PEM) the `root-ca-cert-publisher` puts in every namespace's
    /// `kube-root-ca.crt` ConfigMap (kube-controller-manager's `--root-ca-file`); without it an
    /// empty `ca.crt` is published.
    #[arg(long)]
    pub root_ca_file: Option<PathBuf>,
    /// The CA certificate (PEM) `csrsigning` issues CertificateSigningRequests' certificates
    /// with (kube-controller-manager's flag); with `--cluster-signing-key-file`.
    #[arg(long, requires = "cluster_signing_key_file")]
    pub cluster_signing_cert_file: Option<PathBuf>,
    /// The CA's private key (PEM).
    #[arg(long, requires = "cluster_signing_cert_file")]
    pub cluster_signing_key_file: Option<PathBuf>,
    /// The longest certificate `csrsigning` issues (a request's `expirationSeconds` may ask
    /// for less).
    #[arg(long, default_value = "8760h", value_parser = super::parse_duration)]
    pub cluster_signing_duration: std::time::Duration,
    /// Leader election on the Lease `kube-system/kube-controller-manager`.
    #[command(flatten)]
    pub leader: LeaderElectArgs,
}

/// Runs `orch controller-manager` until Ctrl-C; returns the exit code.
pub fn run(args: ControllerManagerArgs) -> i32 {
    let controllers = match parse_controllers(&args.controllers) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: --controllers: {e}");
            return 2;
        }
    };
    let mut config = ManagerConfig {
        controllers,
        cluster_cidr: args.cluster_cidr.clone(),
        node_cidr_mask: args.node_cidr_mask_size,
        ..Default::default()
    };
    config.node_lifecycle.grace_period =
        k8s_openapi::jiff::SignedDuration::try_from(args.node_monitor_grace_period)
            .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX);
    config.pod_gc.terminated_pod_threshold = args.terminated_pod_gc_threshold;
    if let Some(path) = &args.root_ca_file {
        match std::fs::read_to_string(path) {
            Ok(pem) => config.root_ca = pem,
            Err(e) => {
                eprintln!("error: --root-ca-file {}: {e}", path.display());
                return 2;
            }
        }
    }
    if let (Some(cert), Some(key)) = (
        &args.cluster_signing_cert_file,
        &args.cluster_signing_key_file,
    ) {
        let read =
            |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        match (read(cert), read(key)) {
            (Ok(cert_pem), Ok(key_pem)) => {
                config.cluster_signing =
                    Some(orch_controllers::certificates::signer::ClusterSigning {
                        cert_pem,
                        key_pem,
                        duration: args.cluster_signing_duration,
                    });
            }
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("error: --cluster-signing-*-file {e}");
                return 2;
            }
        }
    }
    let client: orch_types::client::SharedClient = match super::kubeconfig_client(&args.kubeconfig)
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let clock: orch_types::clock::SharedClock = Arc::new(orch_types::clock::SystemClock);
    let cm = match ControllerManager::new(client.clone(), clock.clone(), config) {
        Ok(cm) => cm,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let Some(rt) = super::runtime(true) else {
        return 1;
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if !args.leader.leader_elect {
        rt.block_on(cm.run(shutdown));
        return 0;
    }
    let le = match args.leader.config("kube-controller-manager") {
        Ok(le) => le,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let result = rt.block_on(run_as_leader(
        client,
        clock,
        le,
        shutdown,
        move |stop| async move {
            cm.run(async {
                let _ = stop.await;
            })
            .await;
        },
    ));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
