//! Exponential back-off per key, as upstream `k8s.io/client-go/util/flowcontrol/backoff.go` is
//! used by the kubelet for crash loops and image pulls: 10 s doubling to 300 s, forgotten once the
//! container ran for 2 × max = 10 minutes.

use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    last_update: Timestamp,
}

/// Back-off state for many keys.
///
/// ```
/// use orch_kubelet::backoff::Backoff;
/// use jiff::Timestamp;
/// let mut b = Backoff::kubelet();
/// let t0 = Timestamp::from_second(1000).unwrap();
/// assert!(!b.in_backoff_since("c", t0, t0)); // first failure: restart at once
/// b.next("c", t0, t0);
/// assert_eq!(b.delay("c").as_secs(), 10);
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

fn since(a: Timestamp, b: Timestamp) -> Duration {
    let d: SignedDuration = a.duration_since(b);
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

impl Backoff {
    /// A back-off from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    /// The kubelet's: 10 s doubling to 300 s.
    pub fn kubelet() -> Self {
        Self::new(Duration::from_secs(10), Duration::from_secs(300))
    }

    fn expired(&self, e: &Entry, event_time: Timestamp) -> bool {
        since(event_time, e.last_update) > self.max * 2
    }

    /// True while `now - event_time` is shorter than the current delay of `key`
    /// (upstream `IsInBackOffSince`, with `event_time` the container's finish time). An entry
    /// older than 2 × max relative to `event_time` is forgotten (the container ran long enough).
    pub fn in_backoff_since(&self, key: &str, event_time: Timestamp, now: Timestamp) -> bool {
        match self.entries.get(key) {
            None => false,
            Some(e) if self.expired(e, event_time) => false,
            Some(e) => since(now, event_time) < e.delay,
        }
    }

    /// True while `now - last update` is shorter than the delay (upstream `IsInBackOffSinceUpdate`,
    /// used for image pulls).
    pub fn in_backoff_since_update(&self, key: &str, now: Timestamp) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| since(now, e.last_update) < e.delay)
    }

    /// When the back-off of `key` started at `event_time` ends.
    pub fn until(&self, key: &str, event_time: Timestamp) -> Option<Timestamp> {
        let e = self.entries.get(key)?;
        let d = SignedDuration::try_from(e.delay).ok()?;
        event_time.checked_add(d).ok()
    }

    /// When the back-off of `key` measured from its last update ends.
    pub fn until_update(&self, key: &str) -> Option<Timestamp> {
        let e = self.entries.get(key)?;
        self.until(key, e.last_update)
    }

    /// Records a failure that happened at `event_time`, acted on at `now` (upstream `Next`): the
    /// delay starts at `initial`, else doubles up to `max`; an entry whose last update is more
    /// than 2 × max before `event_time` starts over.
    pub fn next(&mut self, key: &str, event_time: Timestamp, now: Timestamp) {
        let delay = match self.entries.get(key) {
            Some(e) if !self.expired(e, event_time) => (e.delay * 2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                delay,
                last_update: now,
            },
        );
    }

    /// The current delay of `key` (zero if none).
    pub fn delay(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.delay)
    }

    /// Forgets `key`.
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// Formats a delay the way Go's `time.Duration.String()` does for whole seconds
/// (`10s`, `1m20s`, `5m0s`), as it appears in CrashLoopBackOff messages.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{}h{}m{}s", s / 3600, (s % 3600) / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn doubles_to_cap_and_resets_after_ten_minutes() {
        let mut b = Backoff::kubelet();
        let mut delays = vec![];
        let mut now = 0;
        for _ in 0..8 {
            b.next("k", t(now), t(now));
            delays.push(b.delay("k").as_secs());
            now += 1;
        }
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300, 300]);
        assert!(b.in_backoff_since("k", t(now), t(now + 299)));
        assert!(!b.in_backoff_since("k", t(now), t(now + 300)));
        // ran for more than 10 minutes since the last restart: forgotten
        assert!(!b.in_backoff_since("k", t(now + 601), t(now + 602)));
        b.next("k", t(now + 601), t(now + 601));
        assert_eq!(b.delay("k").as_secs(), 10);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
