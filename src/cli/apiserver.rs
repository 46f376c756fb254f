//! `orch apiserver`: the API server alone, on the embedded store in `--data-dir`, in memory or on
//! etcd (several API servers may share one etcd), plain HTTP on loopback; writes
//! `DATA_DIR/kubeconfig`; stops cleanly on SIGINT/SIGTERM.

use super::storage::{storage_config, EtcdArgs, StorageArg};
use orch_apiserver::{serve, ApiServer, ApiServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Arguments of `orch apiserver`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiServerArgs {
    /// Listen address (plain HTTP; keep it on loopback). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
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
    let config = ApiServerConfig {
        storage: storage_config(args.storage, &args.etcd, &args.data_dir)?,
        event_ttl: (!args.event_ttl.is_zero()).then_some(args.event_ttl),
        service_account_admission: true,
        ..ApiServerConfig::memory()
    };
    let api = ApiServer::open(config).await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let kubeconfig = args.data_dir.join("kubeconfig");
    orch_apiserver::kubeconfig::write_kubeconfig(&kubeconfig, &format!("http://{addr}"))
        .map_err(|e| e.to_string())?;
    eprintln!("orch apiserver listening on http://{addr}");
    eprintln!("kubeconfig: {}", kubeconfig.display());
    serve(api, listener, shutdown_signal())
        .await
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
