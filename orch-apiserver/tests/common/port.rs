//! A free loopback port for a test's server process, below the kernel's ephemeral range.

use std::net::TcpListener;

/// The lowest port of the kernel's ephemeral range (`ip_local_port_range`), where outgoing
/// connections get their local ports.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A loopback port that is free now, below the ephemeral range, for a process that binds it
/// next: outgoing connections (etcd members dial each other as they start) get their ports from
/// the ephemeral range, and one once took a port picked there before the member it was for
/// could bind it ("address already in use").
///
/// Candidates start at an offset taken from the process id, so that test processes running at
/// the same time try different ports first.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    let span = u32::from(ephemeral_low()).saturating_sub(LOW).max(1);
    // Each copy of this module (test crates include it more than once) starts elsewhere.
    let salt = module_path!()
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let start = std::process::id().wrapping_mul(7919).wrapping_add(salt) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(LOW + (start + n) % span).expect("below the ephemeral range");
        // Free once the listener is dropped; the caller's process binds it right after.
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below the ephemeral range")
}
