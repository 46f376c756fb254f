//! Expectations: creations and deletions a controller has issued but not yet seen in its
//! cache, so it never double-creates or over-deletes while the cache lags
//! (`pkg/controller/controller_utils.go`, `ControllerExpectations`). Entries expire after 5
//! minutes (`ExpectationsTimeout`) so a lost watch event cannot wedge a controller.

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Upstream `ExpectationsTimeout`.
pub const EXPECTATIONS_TIMEOUT: SignedDuration = SignedDuration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Entry {
    add: i64,
    del: i64,
    at: Timestamp,
}

/// Shared expectations keyed by controller key (`namespace/name`).
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    map: Arc<Mutex<HashMap<String, Entry>>>,
}

impl Expectations {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when nothing is in flight for `key` (or the record expired): safe to sync.
    pub fn satisfied(&self, key: &str, now: Timestamp) -> bool {
        match self.map.lock().get(key) {
            None => true,
            Some(e) => {
                (e.add <= 0 && e.del <= 0) || now.duration_since(e.at) > EXPECTATIONS_TIMEOUT
            }
        }
    }

    /// Records `add` creations and `del` deletions about to be issued (replaces the record).
    pub fn expect(&self, key: &str, add: i64, del: i64, now: Timestamp) {
        self.map
            .lock()
            .insert(key.into(), Entry { add, del, at: now });
    }

    /// A creation was observed (or failed and will not be observed).
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.map.lock().get_mut(key) {
            e.add -= 1;
        }
    }

    /// A deletion was observed (or failed).
    pub fn deletion_observed(&self, key: &str) {
        if let Some(e) = self.map.lock().get_mut(key) {
            e.del -= 1;
        }
    }

    /// Forgets `key` (the controller object was deleted).
    pub fn delete(&self, key: &str) {
        self.map.lock().remove(key);
    }

    /// Pending (creations, deletions) for `key`.
    pub fn pending(&self, key: &str) -> (i64, i64) {
        self.map.lock().get(key).map_or((0, 0), |e| (e.add, e.del))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_after_observations_or_timeout() {
        let t0 = Timestamp::UNIX_EPOCH;
        let e = Expectations::new();
        assert!(e.satisfied("ns/rs", t0));
        e.expect("ns/rs", 2, 0, t0);
        assert!(!e.satisfied("ns/rs", t0));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs", t0));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs", t0));
        e.expect("ns/rs", 0, 1, t0);
        let late = t0.checked_add(SignedDuration::from_secs(301)).unwrap();
        assert!(!e.satisfied("ns/rs", t0));
        assert!(e.satisfied("ns/rs", late));
    }
}
