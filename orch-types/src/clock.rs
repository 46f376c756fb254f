//! Time as an input: the [`Clock`] trait, the real clock and a manual clock for tests and
//! virtual-time simulation. Cores (scheduler, reconcilers, pod worker) read time only from here.

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use std::sync::Arc;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to; cloning shares the same time.
///
/// ```
/// use orch_types::clock::{Clock, ManualClock};
/// let c = ManualClock::at_epoch_seconds(100);
/// c.advance(std::time::Duration::from_secs(5));
/// assert_eq!(c.now().as_second(), 105);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    /// A clock at the given time.
    pub fn new(at: Timestamp) -> Self {
        Self {
            now: Arc::new(Mutex::new(at)),
        }
    }

    /// A clock at `secs` seconds after the Unix epoch.
    pub fn at_epoch_seconds(secs: i64) -> Self {
        Self::new(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    /// Moves time forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.now.lock();
        let d = SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX);
        *now = now.saturating_add(d).unwrap_or(*now);
    }

    /// Sets the time (never backwards).
    pub fn set(&self, to: Timestamp) {
        let mut now = self.now.lock();
        if to > *now {
            *now = to;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock()
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;
