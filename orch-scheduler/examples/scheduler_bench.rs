//! Runs scheduler benchmark workloads without building the whole `orch` binary:
//! `cargo run --release -p orch-scheduler --example scheduler_bench -- SchedulingBasic`.
//! With `--cycle`, also measures the same pods through `SchedulingCycle` (queue, effects and
//! the executor's bookkeeping, as the driver and the simulator run them).

fn main() {
    let mut cycle = false;
    let mut names: Vec<String> = Vec::new();
    for a in std::env::args().skip(1) {
        if a == "--cycle" {
            cycle = true;
        } else {
            names.push(a);
        }
    }
    let names: Vec<&str> = if names.is_empty() {
        orch_scheduler::bench::WORKLOADS.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    for n in names {
        match orch_scheduler::bench::run(n) {
            Ok(r) => println!("{}", serde_json::to_string(&r).unwrap_or_default()),
            Err(e) => eprintln!("{n}: {e}"),
        }
        if cycle {
            let r = orch_scheduler::bench::workload(n)
                .ok_or_else(|| format!("unknown workload {n:?}"))
                .and_then(|w| orch_scheduler::bench::run_cycle(&w));
            match r {
                Ok(t) => println!("{}", serde_json::json!({"workload": n, "cycle": t})),
                Err(e) => eprintln!("{n}: {e}"),
            }
        }
    }
}
