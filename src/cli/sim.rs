//! `orch sim [-f] scenario.yaml [--seed N] [-o report.json] [--log events.log]`: runs a
//! scenario in virtual time (see `orch::sim`) and prints a summary; the full report goes to
//! `-o`.

use crate::sim::{Report, Scenario, SimOptions, Simulation};
use std::path::{Path, PathBuf};

/// Arguments of `orch sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Scenario file (YAML).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        conflicts_with = "scenario",
        required_unless_present = "scenario"
    )]
    pub file: Option<PathBuf>,
    /// Scenario file (YAML), given without `-f`.
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Seed (overrides the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the report as JSON here (`-` for stdout).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Write the event log here.
    #[arg(long)]
    pub log: Option<PathBuf>,
}

impl SimArgs {
    /// The scenario file, however it was given.
    pub fn path(&self) -> &Path {
        self.file
            .as_deref()
            .or(self.scenario.as_deref())
            .unwrap_or(Path::new("-"))
    }
}

fn summary(r: &Report) -> String {
    let mut s = format!(
        "simulated {:.0}s in {:.2}s wall (seed {}): {} nodes, {} pods ({} running, {} pending, {} succeeded, {} failed)\n",
        r.virtual_seconds, r.wall_seconds, r.seed, r.nodes, r.pods.total, r.pods.running, r.pods.pending, r.pods.succeeded, r.pods.failed
    );
    s += &format!(
        "scheduling latency p50/p99 {:.3}s/{:.3}s, startup latency p50/p99 {:.3}s/{:.3}s\n",
        r.scheduling_latency.p50,
        r.scheduling_latency.p99,
        r.startup_latency.p50,
        r.startup_latency.p99
    );
    s += &format!(
        "evictions {}, unschedulable {}\n",
        r.evictions.len(),
        r.unschedulable.len()
    );
    for u in r.unschedulable.iter().take(10) {
        s += &format!("  {}: {}\n", u.pod, u.reason);
    }
    let mut hpas: std::collections::BTreeMap<(&str, &str), Vec<&crate::sim::report::HpaSample>> =
        Default::default();
    for h in &r.hpa {
        hpas.entry((&h.namespace, &h.name)).or_default().push(h);
    }
    for ((ns, name), samples) in hpas {
        let rescales = samples.iter().filter(|h| h.rescale.is_some()).count();
        let replicas = samples.iter().map(|h| h.current_replicas);
        let (lo, hi) = (replicas.clone().min(), replicas.max());
        let now = samples.last().map_or(0, |h| h.desired_replicas);
        s += &format!(
            "autoscaler {ns}/{name}: {rescales} rescales, replicas {}..{}, desired now {now}\n",
            lo.unwrap_or(0),
            hi.unwrap_or(0)
        );
    }
    s += &format!(
        "event log: {} lines, hash {}",
        r.event_count, r.event_log_hash
    );
    s
}

/// Runs `orch sim`; returns the exit code.
pub fn run(args: SimArgs) -> i32 {
    let path = args.path().to_path_buf();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return 1;
        }
    };
    let scenario = match Scenario::from_yaml(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return 1;
        }
    };
    let mut scenario = scenario;
    if let Some(seed) = args.seed {
        scenario.seed = Some(seed);
    }
    let Some(rt) = super::runtime(false) else {
        return 1;
    };
    let opts = SimOptions {
        keep_log: args.log.is_some(),
        ..Default::default()
    };
    let result = rt.block_on(async {
        let mut sim = Simulation::new(scenario, opts).await?;
        let report = sim.run_scenario().await;
        Ok::<_, crate::sim::SimError>((report, sim.event_log().join("\n")))
    });
    let (report, log) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if let Some(path) = &args.log {
        if let Err(e) = std::fs::write(path, log + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return 1;
        }
    }
    match &args.output {
        Some(p) => {
            let json = match serde_json::to_string_pretty(&report) {
                Ok(j) => j,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            };
            if p.as_os_str() == "-" {
                println!("{json}");
                return 0;
            }
            if let Err(e) = std::fs::write(p, json) {
                eprintln!("error: cannot write {}: {e}", p.display());
                return 1;
            }
            println!("{}", summary(&report));
        }
        None => println!("{}", summary(&report)),
    }
    0
}
