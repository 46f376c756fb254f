//! The `orch` command line (clap derive). Each subcommand lives in its own module.

use clap::{Parser, Subcommand};

pub mod apiserver;
pub mod auth;
pub mod bench;
pub mod controller_manager;
pub mod dns;
pub mod flowcontrol;
pub mod images;
pub mod kubelet;
pub mod leader_elect;
pub mod proxy;
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
    /// Run the cluster DNS server against an API server.
    Dns(dns::DnsArgs),
    /// Run the service proxy of this host (nftables; root) against an API server.
    Proxy(proxy::ProxyArgs),
    /// Container images of a `--runtime cri` cluster: build the test images, load an image
    /// archive into a node's containerd, list a node's images.
    Images {
        /// What to do.
        #[command(subcommand)]
        what: images::ImagesCommand,
    },
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
        Command::Images { what } => images::run(what),
        Command::Kubelet(args) => kubelet::run(args),
        Command::Dns(args) => dns::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Apiserver(args) => apiserver::run(args),
        Command::Schedule(args) => schedule::run(args),
        Command::Scheduler(args) => scheduler::run(args),
        Command::ControllerManager(args) => controller_manager::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("orch").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("orch {}: {e}", args.join(" ")))
            .command
    }

    #[test]
    fn up_takes_go_durations() {
        let Command::Up(a) = parse(&[
            "up",
            "--event-ttl",
            "1h30m",
            "--node-monitor-grace-period",
            "40s",
        ]) else {
            panic!("not up")
        };
        assert_eq!(a.event_ttl, Duration::from_secs(5400));
        assert_eq!(a.node_monitor_grace_period, Some(Duration::from_secs(40)));
    }

    #[test]
    fn apiserver_takes_go_durations() {
        let Command::Apiserver(a) = parse(&["apiserver", "--event-ttl", "1.5h"]) else {
            panic!("not apiserver")
        };
        assert_eq!(a.event_ttl, Duration::from_secs(5400));
    }

    /// The command of issue 21: `--node-monitor-grace-period 40s` was refused ("invalid
    /// digit") because the flag took a number of seconds.
    #[test]
    fn controller_manager_takes_go_durations() {
        let Command::ControllerManager(a) = parse(&[
            "controller-manager",
            "--kubeconfig",
            "k",
            "--node-monitor-grace-period",
            "40s",
            "--leader-elect-lease-duration",
            "1m",
            "--leader-elect-renew-deadline",
            "500ms",
            "--leader-elect-retry-period",
            "1m30s",
        ]) else {
            panic!("not controller-manager")
        };
        assert_eq!(a.node_monitor_grace_period, Duration::from_secs(40));
        assert_eq!(
            a.leader.leader_elect_lease_duration,
            Duration::from_secs(60)
        );
        assert_eq!(
            a.leader.leader_elect_renew_deadline,
            Duration::from_millis(500)
        );
        assert_eq!(a.leader.leader_elect_retry_period, Duration::from_secs(90));
        // The default, and a plain number (seconds) as the flag took before.
        let Command::ControllerManager(d) = parse(&["controller-manager", "--kubeconfig", "k"])
        else {
            panic!("not controller-manager")
        };
        assert_eq!(d.node_monitor_grace_period, Duration::from_secs(50));
        let Command::ControllerManager(n) = parse(&[
            "controller-manager",
            "--kubeconfig",
            "k",
            "--node-monitor-grace-period=2m",
        ]) else {
            panic!("not controller-manager")
        };
        assert_eq!(n.node_monitor_grace_period, Duration::from_secs(120));
    }

    #[test]
    fn scheduler_takes_go_durations() {
        let Command::Scheduler(a) = parse(&[
            "scheduler",
            "--kubeconfig",
            "k",
            "--leader-elect-lease-duration",
            "2m",
            "--leader-elect-renew-deadline",
            "1.5m",
            "--leader-elect-retry-period",
            "250ms",
        ]) else {
            panic!("not scheduler")
        };
        assert_eq!(
            a.leader.leader_elect_lease_duration,
            Duration::from_secs(120)
        );
        assert_eq!(
            a.leader.leader_elect_renew_deadline,
            Duration::from_secs(90)
        );
        assert_eq!(
            a.leader.leader_elect_retry_period,
            Duration::from_millis(250)
        );
    }

    /// Every flag of every command whose name says it is a duration reads Go's syntax, so a
    /// flag added later with a plain number parser fails here.
    #[test]
    fn every_duration_flag_of_every_command_reads_go_durations() {
        fn walk(cmd: &clap::Command, path: &str, seen: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                let durationish = [
                    "period",
                    "duration",
                    "deadline",
                    "ttl",
                    "timeout",
                    "interval",
                    "frequency",
                    "grace",
                    "delay",
                ]
                .iter()
                .any(|w| long.contains(w));
                if !durationish {
                    continue;
                }
                // The command alone, its other flags optional, parses `--flag TEXT`.
                let alone = cmd
                    .clone()
                    .subcommand_required(false)
                    .mut_args(|a| a.required(false));
                for text in ["40s", "2m", "1h30m", "500ms", "1.5h"] {
                    let flag = format!("--{long}={text}");
                    let parsed = alone.clone().try_get_matches_from(["orch", &flag]);
                    assert!(
                        parsed.is_ok(),
                        "{path} {flag}: {}",
                        parsed.err().map(|e| e.to_string()).unwrap_or_default()
                    );
                }
                seen.push(format!("{path} --{long}"));
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), seen);
            }
        }
        let mut seen = Vec::new();
        walk(&Cli::command(), "orch", &mut seen);
        for want in [
            "orch up --event-ttl",
            "orch up --node-monitor-grace-period",
            "orch apiserver --event-ttl",
            "orch controller-manager --node-monitor-grace-period",
            "orch controller-manager --leader-elect-lease-duration",
            "orch scheduler --leader-elect-retry-period",
        ] {
            assert!(
                seen.iter().any(|s| s == want),
                "{want} not found in {seen:?}"
            );
        }
    }

    #[test]
    fn a_bad_duration_names_the_syntax() {
        let e = Cli::try_parse_from([
            "orch",
            "controller-manager",
            "--kubeconfig",
            "k",
            "--node-monitor-grace-period",
            "40x",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("--node-monitor-grace-period"), "{e}");
        assert!(e.contains("1h30m"), "{e}");
    }
}
