//! Work queue: de-duplicating, one worker per key at a time, delayed adds and client-go's
//! default controller rate limiter (per-item exponential 5 ms → 1000 s, combined with an overall
//! 10 qps / burst 100 token bucket; `workqueue/default_rate_limiters.go`).
//!
//! [`RateLimiter`] is the pure core (time comes in as a [`Timestamp`]); [`WorkQueue`] is the
//! async driver.

use jiff::{SignedDuration, Timestamp};
use orch_types::clock::SharedClock;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// client-go's `DefaultControllerRateLimiter`: max of per-item exponential back-off and an
/// overall token bucket.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    base: Duration,
    max: Duration,
    failures: HashMap<String, u32>,
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Option<Timestamp>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
            10.0,
            100,
        )
    }
}

impl RateLimiter {
    /// Per-item back-off from `base` doubling to `max`; overall `qps` with `burst`.
    pub fn new(base: Duration, max: Duration, qps: f64, burst: u32) -> Self {
        Self {
            base,
            max,
            failures: HashMap::new(),
            qps,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: None,
        }
    }

    /// The delay before `key` may be retried, counting this as one more failure.
    pub fn when(&mut self, key: &str, now: Timestamp) -> Duration {
        let n = self.failures.entry(key.to_string()).or_insert(0);
        let exp = 2f64.powi((*n).min(64) as i32);
        *n += 1;
        let item = self.base.mul_f64(exp).min(self.max);
        item.max(self.bucket(now))
    }

    fn bucket(&mut self, now: Timestamp) -> Duration {
        if let Some(last) = self.last {
            let elapsed = now.duration_since(last).as_secs_f64().max(0.0);
            self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        }
        self.last = Some(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }

    /// Forgets the failures of `key` (after a successful sync).
    pub fn forget(&mut self, key: &str) {
        self.failures.remove(key);
    }

    /// How many times `key` failed in a row.
    pub fn num_requeues(&self, key: &str) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
    delayed: BTreeMap<(Timestamp, u64), String>,
    seq: u64,
    limiter: RateLimiter,
    shut_down: bool,
}

/// An async work queue of string keys (`namespace/name`), shared by handlers and workers.
#[derive(Debug, Clone)]
pub struct WorkQueue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    clock: SharedClock,
}

impl WorkQueue {
    /// An empty queue reading time from `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::default())),
            notify: Arc::new(Notify::new()),
            clock,
        }
    }

    /// Adds a key now (no-op if it is already waiting).
    pub fn add(&self, key: &str) {
        let mut s = self.state.lock();
        if s.shut_down || s.dirty.contains(key) {
            return;
        }
        s.dirty.insert(key.into());
        if !s.processing.contains(key) {
            s.queue.push_back(key.into());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Adds a key after a delay.
    pub fn add_after(&self, key: &str, after: Duration) {
        if after.is_zero() {
            return self.add(key);
        }
        let at = self
            .clock
            .now()
            .saturating_add(SignedDuration::try_from(after).unwrap_or(SignedDuration::MAX))
            .unwrap_or_else(|_| self.clock.now());
        let mut s = self.state.lock();
        let seq = s.seq;
        s.seq += 1;
        s.delayed.insert((at, seq), key.into());
        drop(s);
        self.notify.notify_one();
    }

    /// Adds a key after its rate-limited back-off.
    pub fn add_rate_limited(&self, key: &str) {
        let d = self.state.lock().limiter.when(key, self.clock.now());
        self.add_after(key, d);
    }

    /// Resets the back-off of a key after a successful sync.
    pub fn forget(&self, key: &str) {
        self.state.lock().limiter.forget(key);
    }

    /// Marks a key done; if it was re-added while processing, it is queued again.
    pub fn done(&self, key: &str) {
        let mut s = self.state.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.into());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Stops the queue; waiting `get` calls return `None`.
    pub fn shut_down(&self) {
        self.state.lock().shut_down = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Number of keys ready now.
    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// No key ready now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves due delayed keys into the queue; returns the time until the next one.
    fn promote(&self) -> Option<Duration> {
        let now = self.clock.now();
        let mut s = self.state.lock();
        let mut next = None;
        while let Some(((at, seq), _)) = s.delayed.first_key_value().map(|(k, v)| (*k, v.clone())) {
            if at <= now {
                if let Some(key) = s.delayed.remove(&(at, seq)) {
                    if !s.dirty.contains(&key) {
                        s.dirty.insert(key.clone());
                        if !s.processing.contains(&key) {
                            s.queue.push_back(key);
                        }
                    }
                }
            } else {
                next = Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO));
                break;
            }
        }
        next
    }

    /// Takes the next key, waiting for one; `None` after shut down. Call [`done`](Self::done)
    /// when finished with it.
    pub async fn get(&self) -> Option<String> {
        loop {
            let wait = self.promote();
            {
                let mut s = self.state.lock();
                if s.shut_down {
                    return None;
                }
                if let Some(k) = s.queue.pop_front() {
                    s.dirty.remove(&k);
                    s.processing.insert(k.clone());
                    return Some(k);
                }
            }
            let notified = self.notify.notified();
            match wait {
                // Real time drives the delay here; the steppable driver takes keys with `try_get`.
                Some(d) => {
                    let _ = tokio::time::timeout(d.max(Duration::from_millis(1)), notified).await;
                }
                None => notified.await,
            }
        }
    }

    /// Takes a key that is ready now without waiting (simulation and tests).
    pub fn try_get(&self) -> Option<String> {
        self.promote();
        let mut s = self.state.lock();
        let k = s.queue.pop_front()?;
        s.dirty.remove(&k);
        s.processing.insert(k.clone());
        Some(k)
    }

    /// When the earliest delayed key becomes due (simulation advances virtual time to it).
    pub fn next_due(&self) -> Option<Timestamp> {
        self.state
            .lock()
            .delayed
            .first_key_value()
            .map(|((at, _), _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_types::clock::ManualClock;

    #[test]
    fn per_item_backoff_doubles_and_caps() {
        let mut rl = RateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(1),
            1e9,
            1_000_000,
        );
        let t = Timestamp::UNIX_EPOCH;
        let ds: Vec<_> = (0..10).map(|_| rl.when("a", t)).collect();
        assert_eq!(ds[0], Duration::from_millis(5));
        assert_eq!(ds[1], Duration::from_millis(10));
        assert_eq!(ds[3], Duration::from_millis(40));
        assert_eq!(ds[9], Duration::from_secs(1));
        assert_eq!(rl.when("b", t), Duration::from_millis(5));
        rl.forget("a");
        assert_eq!(rl.num_requeues("a"), 0);
    }

    #[test]
    fn bucket_limits_bursts_overall() {
        let mut rl = RateLimiter::default();
        let t = Timestamp::UNIX_EPOCH;
        for i in 0..100 {
            assert_eq!(rl.when(&format!("k{i}"), t), Duration::from_millis(5));
        }
        // The 101st distinct key within the same instant waits for a token (100 ms at 10 qps).
        assert_eq!(rl.when("k100", t), Duration::from_millis(100));
    }

    #[test]
    fn dedups_and_requeues_keys_added_while_processing() {
        let clock = ManualClock::at_epoch_seconds(0);
        let q = WorkQueue::new(Arc::new(clock.clone()));
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let k = q.try_get();
        assert_eq!(k.as_deref(), Some("a"));
        q.add("a"); // while processing: not handed out twice
        assert_eq!(q.try_get().as_deref(), Some("b"));
        assert_eq!(q.try_get(), None);
        q.done("a");
        assert_eq!(q.try_get().as_deref(), Some("a"));
        q.add_after("c", Duration::from_secs(5));
        assert_eq!(q.try_get(), None);
        assert_eq!(q.next_due().map(|t| t.as_second()), Some(5));
        clock.advance(Duration::from_secs(5));
        assert_eq!(q.try_get().as_deref(), Some("c"));
    }
}
