//! The `orch` binary.

use clap::Parser;

/// mimalloc instead of glibc's allocator: the API server, controllers and simulator allocate
/// and free many small JSON values; glibc's malloc/free took about a fifth of `orch bench sim`
/// (5,000 nodes / 50,000 pods: 36 s with glibc, 27 s with mimalloc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = orch::cli::Cli::parse();
    std::process::exit(orch::cli::run(cli));
}
