//! The `orch` command line (clap derive). Each subcommand lives in its own module.

use clap::{Parser, Subcommand};

pub mod apiserver;
pub mod bench;
pub mod controller_manager;
pub mod kubelet;
pub mod leader_elect;
pub mod schedule;
pub mod scheduler;
pub mod sim;
pub mod storage;
pub mod storage_migrate;
pub mod up;
pub mod validate;

/// orch: a Kubernetes-compatible orchestrator.
#[derive(Debug, Parser)]
#[command(name = "orch", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Every `orch` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version.
    Version,
    /// Decode and validate manifests like `kubectl apply --validate=strict` (no cluster needed).
    Validate(validate::ValidateArgs),
    /// Run a whole cluster in this process (API server, scheduler, controllers, kubelets).
    Up(up::UpArgs),
    /// Schedule the pending pods of a cluster description offline and print the decisions.
    Schedule(schedule::ScheduleArgs),
    /// Run the scheduler against an API server (leader-elected).
    Scheduler(scheduler::SchedulerArgs),
    /// Run the API server alone (embedded or memory store), writing DATA_DIR/kubeconfig.
    Apiserver(apiserver::ApiServerArgs),
    /// Run the controllers against an API server (leader-elected).
    ControllerManager(controller_manager::ControllerManagerArgs),
    /// Run the node agent (kubelet) against an API server.
    Kubelet(kubelet::KubeletArgs),
    /// Run a scenario in virtual time (`orch sim -f scenario.yaml`).
    Sim(sim::SimArgs),
    /// Storage maintenance: `orch storage migrate --from SPEC --to SPEC` copies a cluster
    /// between stores (embedded, etcd).
    Storage {
        /// What to do.
        #[command(subcommand)]
        what: storage_migrate::StorageCommand,
    },
    /// Run a benchmark.
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

/// A duration flag: `500ms`, `30s`, `10m`, `2h`, `1h30m` or a plain number of seconds (the
/// simulator's [`crate::sim::scenario::parse_duration`], with its message for clap).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::sim::scenario::parse_duration(s).map_err(|e| e.to_string())
}

/// The HTTP client of a component from its `--kubeconfig`, or the message to print.
pub fn kubeconfig_client(
    path: &std::path::Path,
) -> Result<std::sync::Arc<orch_apiserver::client::HttpClient>, String> {
    orch_apiserver::client::HttpClient::from_kubeconfig(path)
        .map(std::sync::Arc::new)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The tokio runtime of a command, multi-threaded or on the calling thread; `None` after
/// printing why it could not start (the command then exits with 1).
pub fn runtime(multi_thread: bool) -> Option<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    match builder.enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Version => {
            println!("orch {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::Up(args) => up::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Bench { what } => bench::run(what),
        Command::Storage { what } => storage_migrate::run(what),
        Command::Sim(args) => sim::run(args),
        Command::Kubelet(args) => kubelet::run(args),
        Command::Apiserver(args) => apiserver::run(args),
        Command::Schedule(args) => schedule::run(args),
        Command::Scheduler(args) => scheduler::run(args),
        Command::ControllerManager(args) => controller_manager::run(args),
    }
}
