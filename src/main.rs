//! The `orch` binary.

use clap::Parser;

fn main() {
    let cli = orch::cli::Cli::parse();
    std::process::exit(orch::cli::run(cli));
}
