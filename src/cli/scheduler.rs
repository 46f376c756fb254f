//! `orch scheduler --kubeconfig F [--config FILE]`: the scheduler as its own process, against
//! any API server (orch or Kubernetes) through the HTTP client (`orch_scheduler::driver`), with
//! leader election on the Lease `kube-system/kube-scheduler` (as kube-scheduler) so two
//! instances never schedule at once.

use super::leader_elect::LeaderElectArgs;
use orch_controllers::leader::run_as_leader;
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
    /// Leader election on the Lease `kube-system/kube-scheduler`.
    #[command(flatten)]
    pub leader: LeaderElectArgs,
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
    let clock: orch_types::clock::SharedClock = Arc::new(orch_types::clock::SystemClock);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if !args.leader.leader_elect {
        return exit_code(rt.block_on(orch_scheduler::driver::run(
            client,
            config.as_ref(),
            clock,
            shutdown,
        )));
    }
    let le = match args.leader.config("kube-scheduler") {
        Ok(le) => le,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let (work_client, work_clock) = (client.clone(), clock.clone());
    let (code_tx, mut code_rx) = tokio::sync::oneshot::channel();
    let result = rt.block_on(run_as_leader(
        client,
        clock,
        le,
        shutdown,
        move |stop| async move {
            let stopped = async {
                let _ = stop.await;
            };
            let r = orch_scheduler::driver::run(work_client, config.as_ref(), work_clock, stopped)
                .await;
            let _ = code_tx.send(exit_code(r));
        },
    ));
    match result {
        // The scheduler's own exit code once it ran (0 when leadership never came before
        // the shutdown).
        Ok(()) => code_rx.try_recv().unwrap_or(0),
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Reports how the scheduler ended; returns the exit code.
fn exit_code(
    r: Result<orch_scheduler::driver::DriverStats, Box<dyn std::error::Error + Send + Sync>>,
) -> i32 {
    match r {
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
