//! The watch validator: what many watchers received, session by session, checked against each
//! other and against the acknowledged writes (the idea of etcd's `tests/robustness/validate`,
//! written for the Kubernetes watch API).
//!
//! A session is one watch connection of one collection from a resourceVersion. Rules:
//! - events are ordered by resourceVersion and unique;
//! - two sessions (or a session and an acknowledged write) never disagree on what a
//!   resourceVersion is (which key, which value, which event type);
//! - no gaps: a session that started after `s` and got as far as `e` (its last event or
//!   bookmark) delivered exactly the events with a resourceVersion in `(s, e]` of its collection
//!   that anyone saw or that an acknowledged write produced — so resuming from a resourceVersion
//!   inside the window gives exactly the missing events;
//! - bookmarks never go back and are never ahead of delivered events (no event at or below a
//!   bookmark's resourceVersion comes after it);
//! - a start inside the window is served, one before it gets 410 Expired.

use super::history::annotation;
use orch_types::client::WatchEvent;
use orch_types::DynamicObject;
use std::collections::BTreeMap;

/// A watch event as the validator keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `ADDED`, `MODIFIED`, `DELETED` or `BOOKMARK`.
    pub kind: &'static str,
    /// `resource/namespace/name` (empty for bookmarks).
    pub key: String,
    /// The object's resourceVersion.
    pub rv: u64,
    /// The value annotation.
    pub value: String,
}

impl Event {
    /// From a wire event of a `resource` collection; `None` for errors.
    pub fn of(resource: &str, ev: &WatchEvent<DynamicObject>) -> Option<Self> {
        let (kind, o) = match ev {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            WatchEvent::Bookmark(o) => ("BOOKMARK", o),
            WatchEvent::Error(_) => return None,
        };
        let rv = o
            .resource_version()
            .and_then(|r| r.parse().ok())
            .unwrap_or_default();
        let key = if kind == "BOOKMARK" {
            String::new()
        } else {
            format!(
                "{resource}/{}/{}",
                o.metadata.namespace.as_deref().unwrap_or_default(),
                o.name()
            )
        };
        Some(Self {
            kind,
            key,
            rv,
            value: annotation(o),
        })
    }
}

/// Where a session's start was meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Inside the window: must be served.
    Inside,
    /// Before the window (compacted, or from before a restart): must get 410 Expired.
    Outside,
    /// Either is right (a start near the edge).
    Either,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Refused with 410 Expired (at the start or later in the stream).
    Expired,
    /// Ended otherwise (the server closed it, the connection broke, the test stopped it).
    Closed,
    /// Refused or ended with another error.
    Error(String),
}

/// One watch connection.
#[derive(Debug, Clone)]
pub struct Session {
    /// The watcher (for messages).
    pub watcher: usize,
    /// Keys of this collection start with this (`configmaps/default/`).
    pub prefix: String,
    /// The resourceVersion it started after.
    pub start: u64,
    /// What the start was meant to be.
    pub window: Window,
    /// What it received, in order.
    pub events: Vec<Event>,
    /// How it ended.
    pub end: End,
}

/// What [`validate`] found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Sessions checked.
    pub sessions: usize,
    /// Events (bookmarks included) checked.
    pub events: usize,
    /// Sessions refused with 410 Expired.
    pub expired: usize,
    /// Bookmarks received.
    pub bookmarks: usize,
    /// Every violation found.
    pub violations: Vec<String>,
}

/// An acknowledged write as the validator needs it: its key, resourceVersion and value.
#[derive(Debug, Clone)]
pub struct Committed {
    /// `resource/namespace/name`.
    pub key: String,
    /// The resourceVersion it got.
    pub rv: u64,
    /// The value (empty for a delete).
    pub value: String,
}

/// Validates the sessions against each other and the acknowledged writes.
pub fn validate(sessions: &[Session], committed: &[Committed]) -> Report {
    let mut r = Report {
        sessions: sessions.len(),
        ..Default::default()
    };
    // rv → (key, kind, value) as first seen, and who saw it.
    let mut reference: BTreeMap<u64, (Event, String)> = BTreeMap::new();
    for (i, s) in sessions.iter().enumerate() {
        let who = format!("watcher {} session {i} (from {})", s.watcher, s.start);
        r.events += s.events.len();
        if s.end == End::Expired && s.events.is_empty() {
            r.expired += 1;
        }
        match (s.window, &s.end, s.events.is_empty()) {
            (Window::Inside, End::Expired, true) => r
                .violations
                .push(format!("{who}: 410 Expired for a start inside the window")),
            (Window::Outside, e, _) if *e != End::Expired || !s.events.is_empty() => {
                r.violations.push(format!(
                    "{who}: a start before the window was served ({} events, {e:?})",
                    s.events.len()
                ))
            }
            (_, End::Error(e), _) => r.violations.push(format!("{who}: error {e}")),
            _ => {}
        }
        let mut last_event = s.start;
        let mut last_bookmark = 0;
        for ev in &s.events {
            if ev.kind == "BOOKMARK" {
                r.bookmarks += 1;
                if ev.rv < last_bookmark || ev.rv < last_event {
                    r.violations.push(format!(
                        "{who}: bookmark {} after bookmark {last_bookmark} / event {last_event}",
                        ev.rv
                    ));
                }
                last_bookmark = last_bookmark.max(ev.rv);
                continue;
            }
            if ev.rv <= last_event || ev.rv <= last_bookmark {
                r.violations.push(format!(
                    "{who}: {} {} at {} after event {last_event} / bookmark {last_bookmark} \
                     (out of order or duplicate)",
                    ev.kind, ev.key, ev.rv
                ));
            }
            if !ev.key.starts_with(&s.prefix) {
                r.violations
                    .push(format!("{who}: {} is outside {}", ev.key, s.prefix));
            }
            last_event = last_event.max(ev.rv);
            match reference.get(&ev.rv) {
                Some((known, by)) if known != ev => r.violations.push(format!(
                    "{who} got {ev:?} where {by} got {known:?} at the same resourceVersion"
                )),
                Some(_) => {}
                None => {
                    reference.insert(ev.rv, (ev.clone(), who.clone()));
                }
            }
        }
    }
    for c in committed {
        match reference.get(&c.rv) {
            Some((known, by)) => {
                let value_ok = known.kind == "DELETED" || known.value == c.value;
                if known.key != c.key || !value_ok {
                    r.violations.push(format!(
                        "acknowledged write {c:?} but {by} got {known:?} at that resourceVersion"
                    ));
                }
            }
            None => {
                reference.insert(
                    c.rv,
                    (
                        Event {
                            kind: "WRITE",
                            key: c.key.clone(),
                            rv: c.rv,
                            value: c.value.clone(),
                        },
                        "an acknowledged write".into(),
                    ),
                );
            }
        }
    }
    for (i, s) in sessions.iter().enumerate() {
        let end = s
            .events
            .iter()
            .map(|e| e.rv)
            .max()
            .unwrap_or(s.start)
            .max(s.start);
        let got: Vec<u64> = s
            .events
            .iter()
            .filter(|e| e.kind != "BOOKMARK")
            .map(|e| e.rv)
            .collect();
        let want: Vec<u64> = reference
            .range(s.start + 1..end + 1)
            .filter(|(_, (e, _))| e.key.starts_with(&s.prefix))
            .map(|(rv, _)| *rv)
            .collect();
        if got != want {
            let missing: Vec<_> = want.iter().filter(|rv| !got.contains(rv)).collect();
            let extra: Vec<_> = got.iter().filter(|rv| !want.contains(rv)).collect();
            r.violations.push(format!(
                "watcher {} session {i} (from {} to {end}): missing {missing:?} ({}), \
                 unexpected {extra:?}",
                s.watcher,
                s.start,
                missing
                    .iter()
                    .take(3)
                    .filter_map(|rv| reference.get(rv))
                    .map(|(e, by)| format!("{e:?} seen by {by}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    r
}
