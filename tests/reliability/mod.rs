//! The reliability harness's checkers (issue 21), shared by the tests that attack a running
//! cluster (`tests/reliability_crash.rs`, `tests/reliability_watch.rs`,
//! `tests/reliability_linearizability.rs`) and unit-tested on hand-made histories in
//! `tests/reliability_checker.rs`.
//!
//! - [`history`]: what clients did — each operation with its client, key, input, invocation and
//!   completion times and outcome (a definite answer, or unknown when the connection broke) — and
//!   the durability checks of a history that spans crashes: acknowledged writes are never lost,
//!   nothing half-applied appears, resourceVersions of an object only increase, UIDs stay.
//! - [`linearizability`]: a Wing–Gong search with Porcupine's improvements (Lowe's memoization
//!   of the linearized set and the model state, per-key partitioning because an object is a
//!   P-compositional register), over any [`linearizability::Model`]; [`history::ObjectModel`] is
//!   the model of one Kubernetes object (get, create, update and status update with a
//!   resourceVersion precondition, delete).
//! - [`watch`]: the watch validator (the idea of etcd's `tests/robustness/validate`): per watch
//!   session, events ordered and unique, no gaps relative to everything committed in the watched
//!   set, bookmarks monotonic and never ahead of delivered events, 410 Expired exactly outside
//!   the window.
//! - [`load`]: what the crash tests share: the operation mix of a client, following a watch
//!   session, the final read and the verdict of a run.
//!
//! Why our own checker rather than a crate: see `docs/design/reliability.md`.
//!
//! Every test file includes this module; not every file uses every item.
#![allow(dead_code)]

pub mod history;
pub mod linearizability;
pub mod load;
pub mod watch;

/// A small seeded generator (SplitMix64): the tests print their seed, and the same seed gives
/// the same choices of operations, keys and kill points.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The seed of a run: `ORCH_SEED` if set, else taken from the clock.
    pub fn seed_from_env() -> u64 {
        std::env::var("ORCH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A new generator for a sub-task (a client), independent of later draws of this one.
    pub fn fork(&mut self) -> Self {
        Self(self.next_u64())
    }
}
