//! `orch apiserver`: the API server alone, on the embedded store in `--data-dir`, in memory or on
//! etcd (several API servers may share one etcd); HTTPS with the cluster PKI of `DATA_DIR/pki`
//! (created on first start, or the given `--tls-cert-file`, `--tls-private-key-file`,
//! `--client-ca-file`, `--service-account-key-file`), plain HTTP only with `--insecure-http`;
//! writes `DATA_DIR/kubeconfig` (admin, CA and client certificate embedded); stops cleanly on
//! SIGINT/SIGTERM.

use super::storage::{storage_config, EtcdArgs, StorageArg};
use orch_apiserver::kubeconfig::Endpoint;
use orch_apiserver::pki::{Pki, PkiOptions};
use orch_apiserver::{serve, serve_tls, tls, ApiServer, ApiServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `orch apiserver`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiServerArgs {
    /// Listen address (HTTPS). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Serve plain HTTP without authentication instead of HTTPS: for tests only (anyone who
    /// reaches the port is cluster admin; keep it on loopback).
    #[arg(long)]
    pub insecure_http: bool,
    /// Serving certificate (PEM, chain) instead of `DATA_DIR/pki/apiserver.crt`.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// CA bundle (PEM) client certificates are verified against, instead of
    /// `DATA_DIR/pki/ca.crt`.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// ECDSA P-256 private key (PEM) signing service-account tokens, instead of
    /// `DATA_DIR/pki/sa.key`.
    #[arg(long)]
    pub service_account_key_file: Option<PathBuf>,
    /// Data dir: the store and the kubeconfig.
    #[arg(long, default_value = ".orch-apiserver")]
    pub data_dir: PathBuf,
    /// Storage backend.
    #[arg(long, value_enum, default_value = "embedded")]
    pub storage: StorageArg,
    /// etcd connection (with `--storage etcd`).
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Events are deleted this long after their last write (kube-apiserver's `--event-ttl`);
    /// `0` keeps them.
    #[arg(long, default_value = "1h", value_parser = super::parse_duration)]
    pub event_ttl: std::time::Duration,
    /// Authentication and authorization.
    #[command(flatten)]
    pub auth: super::auth::AuthArgs,
    /// Max-in-flight limits.
    #[command(flatten)]
    pub inflight: super::flowcontrol::MaxInFlightArgs,
    /// Service cluster IP and node port ranges.
    #[command(flatten)]
    pub services: ServiceRangeArgs,
}

/// kube-apiserver's Service range flags (`orch apiserver`, `orch up`).
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceRangeArgs {
    /// CIDR Service cluster IPs are allocated from (at most 20 host bits; the first address is
    /// the `kubernetes` Service's).
    #[arg(long, default_value = orch_apiserver::service_alloc::range::DEFAULT_CLUSTER_IP_RANGE)]
    pub service_cluster_ip_range: String,
    /// Port range NodePort Services are allocated from (`30000-32767`, `30000+2767`).
    #[arg(long, default_value = orch_apiserver::service_alloc::range::DEFAULT_NODE_PORT_RANGE)]
    pub service_node_port_range: String,
}

impl ServiceRangeArgs {
    /// The allocation configuration, or why a flag is refused.
    pub fn config(&self) -> Result<orch_apiserver::service_alloc::ServiceAllocConfig, String> {
        orch_apiserver::service_alloc::ServiceAllocConfig::from_flags(
            Some(&self.service_cluster_ip_range),
            Some(&self.service_node_port_range),
        )
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn run_async(args: ApiServerArgs) -> Result<(), String> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let mut config = ApiServerConfig {
        storage: storage_config(args.storage, &args.etcd, &args.data_dir)?,
        auth: args.auth.config(!args.insecure_http),
        event_ttl: (!args.event_ttl.is_zero()).then_some(args.event_ttl),
        service_account_admission: true,
        max_requests_inflight: args.inflight.max_requests_inflight,
        max_mutating_requests_inflight: args.inflight.max_mutating_requests_inflight,
        enable_priority_and_fairness: args.inflight.enable_priority_and_fairness,
        services: args.services.config()?,
        ..ApiServerConfig::memory()
    };
    let service_ip = config.services.kubernetes_service_ip().to_string();
    let listener = orch_apiserver::listen(args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    config.kubernetes_service = Some(
        orch_apiserver::kubernetes_service::KubernetesServiceConfig {
            service_ip: service_ip.clone(),
            ..orch_apiserver::kubernetes_service::KubernetesServiceConfig::new(addr)
        },
    );
    let kubeconfig = args.data_dir.join("kubeconfig");
    let tls = if args.insecure_http {
        orch_apiserver::kubeconfig::write_kubeconfig(&kubeconfig, &format!("http://{addr}"))
            .map_err(|e| e.to_string())?;
        None
    } else {
        let pki = Pki::load_or_create(&PkiOptions {
            serving_hosts: vec![addr.ip().to_string(), service_ip],
            tls_cert_file: args.tls_cert_file.clone(),
            tls_private_key_file: args.tls_private_key_file.clone(),
            client_ca_file: args.client_ca_file.clone(),
            service_account_key_file: args.service_account_key_file.clone(),
            ..PkiOptions::new(args.data_dir.join("pki"))
        })
        .map_err(|e| format!("PKI: {e}"))?;
        let ep = Endpoint {
            ca_pem: Some(pki.ca_cert_pem().to_string()),
            client: Some(pki.admin().map_err(|e| format!("PKI: {e}"))?),
            ..Endpoint::new(format!("https://{addr}"))
        };
        orch_apiserver::kubeconfig::write(&kubeconfig, &ep).map_err(|e| e.to_string())?;
        config.service_account_tokens.signing_key_pem =
            Some(pki.service_account_key_pem().to_string());
        let kubelet_client = pki
            .apiserver_kubelet_client()
            .map_err(|e| format!("PKI: {e}"))?;
        config.kubelet_tls = Some(Arc::new(
            tls::client_config(
                &tls::ServerTrust::Ca(pki.ca_cert_pem().to_string()),
                Some(&kubelet_client),
            )
            .map_err(|e| e.to_string())?,
        ));
        Some(tls::api_server_tls(pki.serving(), pki.client_ca_pem()).map_err(|e| e.to_string())?)
    };
    let api = ApiServer::open(config).await.map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("orch apiserver listening on {scheme}://{addr}");
    eprintln!("kubeconfig: {}", kubeconfig.display());
    match tls {
        Some(tls) => serve_tls(api, listener, tls, shutdown_signal()).await,
        None => serve(api, listener, shutdown_signal()).await,
    }
    .map_err(|e| e.to_string())?;
    eprintln!("orch apiserver stopped");
    Ok(())
}

/// Runs `orch apiserver`; returns the exit code.
pub fn run(args: ApiServerArgs) -> i32 {
    let Some(rt) = super::runtime(true) else {
        return 1;
    };
    match rt.block_on(run_async(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
