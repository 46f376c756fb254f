//! Runs scheduler benchmark workloads without building the whole `orch` binary:
//! `cargo run --release -p orch-scheduler --example scheduler_bench -- SchedulingBasic`.

fn main() {
    let names: Vec<String> = std::env::args().skip(1).collect();
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
    }
}
