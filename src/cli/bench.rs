//! `orch bench <what>`: one variant per benchmark; the measuring code lives in the crate that
//! owns what is measured (the CLI only parses, runs and prints).

use clap::Subcommand;

/// Output format of a benchmark report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BenchOutput {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// Every benchmark.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Simulation at scale: nodes and pods driven to steady state in virtual time
    /// (orch::sim::bench); reports wall time and peak memory.
    Sim {
        /// Nodes.
        #[arg(long, default_value_t = 5000)]
        nodes: u32,
        /// Pods (Deployments of up to 1,000 replicas).
        #[arg(long, default_value_t = 150_000)]
        pods: u32,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: BenchOutput,
    },
    /// `Cluster` start time: memory store, sim runtime, in-process (orch::bench::startup).
    Startup {
        /// Number of clusters started (one after the other).
        #[arg(long, default_value_t = 50)]
        iterations: usize,
        /// Nodes per cluster.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// Also serve HTTP on 127.0.0.1:0 and write a kubeconfig.
        #[arg(long)]
        http: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: BenchOutput,
    },
    /// API server: creates/s and p50/p99 over HTTP at several client counts on the memory and
    /// embedded stores, raw etcd puts beside them and (built with `--features etcd`) two API
    /// servers on one etcd, and watch latency with many watchers (orch_apiserver::bench).
    Api {
        /// Concurrent HTTP clients per round (comma separated).
        #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
        clients: Vec<usize>,
        /// Creates per round.
        #[arg(long, default_value_t = 2000)]
        creates: usize,
        /// Watchers in the watch-latency round (0 skips it).
        #[arg(long, default_value_t = 1000)]
        watchers: usize,
        /// Objects written in the watch-latency round.
        #[arg(long, default_value_t = 100)]
        watch_events: usize,
        /// Also measure the memory store over HTTPS beside plain HTTP (creates, watch latency)
        /// and the connection setup cost both ways (a TLS handshake per connection).
        #[arg(long)]
        tls: bool,
        /// Fresh connections measured each way with `--tls`.
        #[arg(long, default_value_t = 200)]
        connections: usize,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: BenchOutput,
    },
    /// CustomResourceDefinitions: CRD created → resource served and Established (p50/p99),
    /// and custom objects next to ConfigMaps: creates/s, full lists, watch replay
    /// (orch_apiserver::bench::crd).
    Crd {
        /// CRDs created one after the other.
        #[arg(long, default_value_t = 20)]
        crds: usize,
        /// Objects of each kind.
        #[arg(long, default_value_t = 10_000)]
        objects: usize,
        /// Concurrent HTTP clients creating them.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: BenchOutput,
    },
    /// Service proxy: one full sync of N Services x M endpoints, ruleset generation and
    /// `nft -f` timed apart, in a scratch network namespace (root, `nft`;
    /// orch_kubelet::proxy::bench).
    Proxy {
        /// Services (one port each).
        #[arg(long, default_value_t = 1000)]
        services: usize,
        /// Ready endpoints per Service.
        #[arg(long, default_value_t = 10)]
        endpoints: usize,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: BenchOutput,
    },
    /// Overload: node Lease renewals and a scheduler binding pods over HTTP, alone and beside
    /// one tenant keeping thousands of list calls in flight; heartbeat p50/p99, the largest
    /// heartbeat gap against the node grace period, pods bound/s and the tenant's 429 share,
    /// side by side (orch_apiserver::bench::overload).
    Overload {
        /// Nodes renewing their Lease.
        #[arg(long, default_value_t = 50)]
        nodes: usize,
        /// Time between two renewals of one node (kubelets: 10s; shorter gives more samples).
        #[arg(long, default_value = "1s", value_parser = super::parse_duration)]
        heartbeat: std::time::Duration,
        /// Concurrent list calls of the tenant in the loaded phase.
        #[arg(long, default_value_t = 5000)]
        lists: usize,
        /// Pods the scheduler binds in each phase.
        #[arg(long, default_value_t = 10_000)]
        pods: usize,
        /// Length of each phase.
        #[arg(long, default_value = "20s", value_parser = super::parse_duration)]
        duration: std::time::Duration,
        /// Run the API server in this process (default: a child `orch apiserver`, so the load
        /// generator's CPU time is not the server's).
        #[arg(long)]
        in_process: bool,
        /// The tenant retries a 429 at once instead of waiting its `Retry-After` as client-go
        /// does.
        #[arg(long)]
        ignore_retry_after: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: BenchOutput,
    },
    /// Pod startup latency: a Deployment of N replicas created → every pod Running
    /// (orch::bench::pod_startup), on an in-process cluster like `orch up`.
    PodStartup {
        /// Replicas of the Deployment.
        #[arg(long, default_value_t = 100)]
        replicas: usize,
        /// Nodes (kubelets).
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// Container runtime.
        #[arg(long, value_enum, default_value = "process")]
        runtime: crate::cli::up::RuntimeArg,
        /// Pod networking of the process runtime (`auto`, `host`, `netns`); several, e.g.
        /// `host,netns`, run one after the other and are reported side by side.
        #[arg(long, default_value = "auto", value_delimiter = ',')]
        pod_network: Vec<orch_kubelet::runtime::process::PodNetwork>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: BenchOutput,
    },
    /// exec round-trip latency (`exec true` over WebSocket v5, p50/p99) and port-forward
    /// throughput (MB/s, WebSocket v4) through the API server, on an in-process cluster with
    /// the process runtime (orch::exec_bench).
    Exec {
        /// Sequential `exec true` round trips.
        #[arg(long, default_value_t = 200)]
        execs: usize,
        /// MiB transferred through the port-forward.
        #[arg(long, default_value_t = 100)]
        transfer_mib: u64,
        /// Also measure with the API server on plain HTTP, beside HTTPS.
        #[arg(long)]
        plain_http: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: BenchOutput,
    },
    /// Cluster DNS: queries/s and p50/p99 from one UDP client against the server with a zone
    /// of `--services` Services (orch::dns::bench).
    Dns {
        /// Services in the zone.
        #[arg(long, default_value_t = 1000)]
        services: usize,
        /// Questions asked, one at a time.
        #[arg(long, default_value_t = 100_000)]
        queries: usize,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: BenchOutput,
    },
    /// Scheduler throughput on scheduler_perf-style workloads: pure algorithm, with binding
    /// through the in-process API server, and the scan-limit loop (orch::scheduler_bench).
    Scheduler {
        /// Workload.
        #[arg(long, value_enum)]
        workload: SchedulerWorkload,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: BenchOutput,
    },
}

/// Workloads of `orch bench scheduler` (modeled on upstream scheduler_perf).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchedulerWorkload {
    /// 5000 nodes, 1000 initial + 10000 measured plain pods.
    #[value(name = "SchedulingBasic")]
    SchedulingBasic,
    /// Required pod anti-affinity on hostname.
    #[value(name = "SchedulingPodAntiAffinity")]
    SchedulingPodAntiAffinity,
    /// Required pod affinity on zone.
    #[value(name = "SchedulingPodAffinity")]
    SchedulingPodAffinity,
    /// Required node affinity.
    #[value(name = "SchedulingNodeAffinity")]
    SchedulingNodeAffinity,
    /// Hard zone spreading (maxSkew 5).
    #[value(name = "TopologySpreading")]
    TopologySpreading,
    /// Soft zone spreading.
    #[value(name = "PreferredTopologySpreading")]
    PreferredTopologySpreading,
    /// 500 full nodes, high-priority pods preempt.
    #[value(name = "PreemptionBasic")]
    PreemptionBasic,
    /// 15000 nodes, one pod per node via matchFields.
    #[value(name = "SchedulingDaemonset")]
    SchedulingDaemonset,
}

impl SchedulerWorkload {
    fn name(self) -> &'static str {
        match self {
            Self::SchedulingBasic => "SchedulingBasic",
            Self::SchedulingPodAntiAffinity => "SchedulingPodAntiAffinity",
            Self::SchedulingPodAffinity => "SchedulingPodAffinity",
            Self::SchedulingNodeAffinity => "SchedulingNodeAffinity",
            Self::TopologySpreading => "TopologySpreading",
            Self::PreferredTopologySpreading => "PreferredTopologySpreading",
            Self::PreemptionBasic => "PreemptionBasic",
            Self::SchedulingDaemonset => "SchedulingDaemonset",
        }
    }
}

/// Runs one benchmark; returns the exit code.
pub fn run(cmd: BenchCommand) -> i32 {
    // The simulation runs on one thread, as `orch sim` and Python's `orch.Simulation` run it:
    // the engine is one sequential loop, and on a multi-threaded runtime every write would
    // wake the API server's watch-cache task on another thread (5,000 nodes / 50,000 pods:
    // 26 s -> 20 s wall).
    let Some(rt) = super::runtime(!matches!(cmd, BenchCommand::Sim { .. })) else {
        return 1;
    };
    let (report, output) = match cmd {
        BenchCommand::Sim {
            nodes,
            pods,
            output,
        } => (
            rt.block_on(crate::sim::bench::run(nodes, pods))
                .map(|r| (r.to_string(), serde_json::to_string_pretty(&r)))
                .map_err(|e| e.to_string()),
            output,
        ),
        BenchCommand::Startup {
            iterations,
            nodes,
            http,
            output,
        } => (
            rt.block_on(crate::bench::startup(iterations, nodes, http))
                .map(|r| (r.to_string(), serde_json::to_string_pretty(&r)))
                .map_err(|e| e.to_string()),
            output,
        ),
        BenchCommand::Api {
            clients,
            creates,
            watchers,
            watch_events,
            tls,
            connections,
            output,
        } => {
            let mut cfg = orch_apiserver::bench::ApiBenchConfig {
                clients,
                creates,
                watchers,
                watch_events,
                ..Default::default()
            };
            if tls {
                // Plain and TLS side by side, first in the report.
                cfg.stores
                    .insert(1, orch_apiserver::bench::BenchStore::MemoryTls);
                cfg.connections = connections;
            }
            (
                rt.block_on(orch_apiserver::bench::run(&cfg))
                    .map(|r| (r.to_string(), serde_json::to_string_pretty(&r)))
                    .map_err(|e| e.to_string()),
                output,
            )
        }
        BenchCommand::Crd {
            crds,
            objects,
            clients,
            output,
        } => {
            let cfg = orch_apiserver::bench::crd::CrdBenchConfig {
                crds,
                objects,
                clients,
            };
            (
                rt.block_on(orch_apiserver::bench::crd::run(&cfg))
                    .map(|r| (r.to_string(), serde_json::to_string_pretty(&r)))
                    .map_err(|e| e.to_string()),
                output,
            )
        }
        BenchCommand::Proxy {
            services,
            endpoints,
            output,
        } => (
            orch_kubelet::proxy::bench::run(services, endpoints)
                .map(|r| (r.to_string(), serde_json::to_string_pretty(&r))),
            output,
        ),
        BenchCommand::Overload {
            nodes,
            heartbeat,
            lists,
            pods,
            duration,
            in_process,
            ignore_retry_after,
            output,
        } => {
            let server = if in_process {
                None
            } else {
                match std::env::current_exe() {
                    Ok(exe) => Some(exe),
                    Err(e) => {
                        eprintln!("error: cannot find the orch binary to run the API server: {e}");
                        return 1;
                    }
                }
            };
            let cfg = orch_apiserver::bench::overload::OverloadBenchConfig {
                nodes,
                heartbeat,
                lists,
                pods,
                duration,
                server,
                ignore_retry_after,
                ..Default::default()
            };
            (
                rt.block_on(orch_apiserver::bench::overload::run(&cfg))
                    .map(|r| (r.to_string(), serde_json::to_string_pretty(&r)))
                    .map_err(|e| e.to_string()),
                output,
            )
        }
        BenchCommand::PodStartup {
            replicas,
            nodes,
            runtime,
            pod_network,
            output,
        } => {
            let runtime = match runtime {
                crate::cli::up::RuntimeArg::Process => crate::cluster::Runtime::Process,
                crate::cli::up::RuntimeArg::Sim => crate::cluster::Runtime::Sim,
                crate::cli::up::RuntimeArg::Cri => crate::cluster::Runtime::Cri,
            };
            let mut reports = vec![];
            for net in pod_network {
                match rt.block_on(crate::bench::pod_startup(replicas, nodes, runtime, net)) {
                    Ok(r) => reports.push(r),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return 1;
                    }
                }
            }
            let text = reports
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("\n\n");
            let json = if reports.len() == 1 {
                serde_json::to_string_pretty(&reports[0])
            } else {
                serde_json::to_string_pretty(&reports)
            };
            (Ok((text, json)), output)
        }
        BenchCommand::Exec {
            execs,
            transfer_mib,
            plain_http,
            output,
        } => {
            let cfg = crate::exec_bench::ExecBenchConfig {
                execs,
                transfer_bytes: transfer_mib * 1024 * 1024,
                plain_http,
            };
            (
                rt.block_on(crate::exec_bench::run(&cfg))
                    .map(|r| (r.to_string(), serde_json::to_string_pretty(&r)))
                    .map_err(|e| e.to_string()),
                output,
            )
        }
        BenchCommand::Dns {
            services,
            queries,
            output,
        } => (
            rt.block_on(crate::dns::bench::run(services, queries))
                .map(|r| (r.to_string(), serde_json::to_string_pretty(&r))),
            output,
        ),
        BenchCommand::Scheduler { workload, output } => (
            rt.block_on(crate::scheduler_bench::scheduler(workload.name()))
                .map(|r| (r.to_string(), serde_json::to_string_pretty(&r))),
            output,
        ),
    };
    match report {
        Ok((text, json)) => {
            match output {
                BenchOutput::Text => println!("{text}"),
                BenchOutput::Json => match json {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return 1;
                    }
                },
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
