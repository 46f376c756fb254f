//! The `orch` command line (clap derive). Each subcommand lives in its own module.

use clap::{Parser, Subcommand};

pub mod bench;
pub mod up;

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
    /// Run a whole cluster in this process (API server, scheduler, controllers, kubelets).
    Up(up::UpArgs),
    /// Run a benchmark.
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Version => {
            println!("orch {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::Up(args) => up::run(args),
        Command::Bench { what } => bench::run(what),
    }
}
