//! `orch schedule -f cluster.yaml [--config FILE] [--explain] [-o yaml|json]`: schedules the
//! pending pods of a cluster description offline and prints every decision in queue order
//! (`orch_scheduler::simulate`). No cluster needed.

use orch_scheduler::config::KubeSchedulerConfiguration;
use orch_scheduler::profile::Registry;
use orch_scheduler::simulate::ClusterInput;
use orch_scheduler::Scheduler;
use std::path::PathBuf;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// YAML (a list of decisions).
    #[default]
    Yaml,
    /// JSON (an array of decisions).
    Json,
}

/// Arguments of `orch schedule`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScheduleArgs {
    /// Cluster description: Nodes, running Pods (with nodeName), pending Pods, PriorityClasses,
    /// PodDisruptionBudgets, Namespaces (`-` for stdin).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// KubeSchedulerConfiguration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Include per-node filter results and scores.
    #[arg(long)]
    pub explain: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    pub output: Format,
    /// Seed of the tie-breaker between equal top scores.
    #[arg(long)]
    pub seed: Option<u64>,
}

fn read(path: &PathBuf) -> Result<String, String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("stdin: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

fn execute(args: &ScheduleArgs) -> Result<String, String> {
    let mut scheduler = match &args.config {
        Some(p) => {
            let cfg = KubeSchedulerConfiguration::from_yaml(&read(p)?)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            Scheduler::from_config(&cfg, &Registry::default())
                .map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => Scheduler::default(),
    };
    if let Some(seed) = args.seed {
        scheduler = scheduler.with_seed(seed);
    }
    scheduler.set_explain(args.explain);
    let input = ClusterInput::from_yaml(&read(&args.file)?)
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    let decisions = input.run(&mut scheduler);
    match args.output {
        Format::Yaml => serde_yaml_ng::to_string(&decisions).map_err(|e| e.to_string()),
        Format::Json => serde_json::to_string_pretty(&decisions).map_err(|e| e.to_string()),
    }
}

/// Runs `orch schedule`; returns the exit code (1 on bad input).
pub fn run(args: ScheduleArgs) -> i32 {
    match execute(&args) {
        Ok(out) => {
            println!("{}", out.trim_end());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
