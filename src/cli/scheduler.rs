//! `orch scheduler --kubeconfig F [--config FILE]`: the scheduler as its own process, against
//! any API server (orch or Kubernetes) through the HTTP client (`orch_scheduler::driver`).

use orch_scheduler::config::KubeSchedulerConfiguration;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `orch scheduler`.
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulerArgs {
    /// Kubeconfig of the API server.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// KubeSchedulerConfiguration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs `orch scheduler` until Ctrl-C; returns the exit code.
pub fn run(args: SchedulerArgs) -> i32 {
    let config = match &args.config {
        Some(p) => match std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| KubeSchedulerConfiguration::from_yaml(&t).map_err(|e| e.to_string()))
        {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {}: {e}", p.display());
                return 1;
            }
        },
        None => None,
    };
    let client = match orch_apiserver::client::HttpClient::from_kubeconfig(&args.kubeconfig) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("error: {}: {e}", args.kubeconfig.display());
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let clock = Arc::new(orch_types::clock::SystemClock);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match rt.block_on(orch_scheduler::driver::run(
        client,
        config.as_ref(),
        clock,
        shutdown,
    )) {
        Ok(stats) => {
            eprintln!(
                "scheduler stopped: {} bound, {} unschedulable attempts",
                stats.bound, stats.unschedulable
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
