//! The reliability checkers (`tests/reliability/`) on small hand-made histories whose verdict is
//! known: linearizable ones, a stale read, a lost update, a half-applied write, an acknowledged
//! write lost in a crash, and watch sessions with a gap, a duplicate, a bookmark ahead of its
//! events and a wrong 410.

mod reliability;

use reliability::history::{
    check_durability, check_linearizable, Input, Operation, Output, Version,
};
use reliability::watch::{validate, Committed, End, Event, Session, Window};
use std::collections::BTreeMap;
use std::time::Duration;

const KEY: &str = "configmaps/default/a";

fn v(rv: u64, value: &str) -> Version {
    Version {
        rv,
        uid: "u1".into(),
        value: value.into(),
        status: String::new(),
    }
}

fn op(client: usize, call: u64, ret: Option<u64>, input: Input, output: Output) -> Operation {
    Operation {
        client,
        key: KEY.into(),
        input,
        call,
        ret,
        output,
    }
}

fn create(value: &str) -> Input {
    Input::Create {
        value: value.into(),
    }
}

fn update(expected_rv: u64, value: &str) -> Input {
    Input::Update {
        expected_rv,
        value: value.into(),
    }
}

fn linearizable(ops: &[Operation]) -> Result<(), String> {
    let r = check_linearizable(ops, Duration::from_secs(10));
    assert!(r.unknown.is_empty(), "{r:?}");
    match r.illegal.first() {
        None => Ok(()),
        Some((k, why)) => Err(format!("{k}: {why}")),
    }
}

#[test]
fn a_sequential_history_is_linearizable() {
    let h = [
        op(0, 0, Some(1), Input::Get, Output::NotFound),
        op(0, 2, Some(3), create("a"), Output::Ok(v(5, "a"))),
        op(0, 4, Some(5), Input::Get, Output::Ok(v(5, "a"))),
        op(0, 6, Some(7), update(5, "b"), Output::Ok(v(9, "b"))),
        op(0, 8, Some(9), update(5, "c"), Output::Conflict),
        op(
            0,
            10,
            Some(11),
            Input::Delete {
                expected_rv: Some(9),
            },
            Output::Ok(v(12, "b")),
        ),
        op(0, 12, Some(13), Input::Get, Output::NotFound),
        op(0, 14, Some(15), update(9, "d"), Output::NotFound),
    ];
    assert_eq!(linearizable(&h), Ok(()));
}

#[test]
fn concurrent_writers_and_readers_in_some_order() {
    // Two CAS on rv 5 overlap: one wins; a read overlapping both may see either state, and a
    // read that starts after the winner returned sees it.
    let h = [
        op(0, 0, Some(1), create("a"), Output::Ok(v(5, "a"))),
        op(1, 2, Some(10), update(5, "b"), Output::Conflict),
        op(2, 3, Some(8), update(5, "c"), Output::Ok(v(7, "c"))),
        op(3, 4, Some(5), Input::Get, Output::Ok(v(5, "a"))),
        op(3, 6, Some(9), Input::Get, Output::Ok(v(7, "c"))),
        op(4, 11, Some(12), Input::Get, Output::Ok(v(7, "c"))),
    ];
    assert_eq!(linearizable(&h), Ok(()));
}

#[test]
fn a_stale_read_is_not_linearizable() {
    let h = [
        op(0, 0, Some(1), create("a"), Output::Ok(v(5, "a"))),
        op(0, 2, Some(3), update(5, "b"), Output::Ok(v(6, "b"))),
        // Starts after the update returned, yet sees the state before it.
        op(1, 4, Some(5), Input::Get, Output::Ok(v(5, "a"))),
    ];
    let err = linearizable(&h).expect_err("stale read");
    assert!(err.contains("Get"), "{err}");
}

#[test]
fn a_lost_update_is_not_linearizable() {
    // Both CAS on rv 5 succeed: the second overwrote the first without seeing it.
    let h = [
        op(0, 0, Some(1), create("a"), Output::Ok(v(5, "a"))),
        op(1, 2, Some(6), update(5, "b"), Output::Ok(v(6, "b"))),
        op(2, 3, Some(7), update(5, "c"), Output::Ok(v(7, "c"))),
    ];
    assert!(linearizable(&h).is_err());
}

#[test]
fn a_write_with_unknown_outcome_may_land_later_or_never() {
    let landed = [
        op(0, 0, Some(1), create("a"), Output::Ok(v(5, "a"))),
        op(1, 2, None, update(5, "b"), Output::Unknown),
        // Seen long after, with a resourceVersion nobody was told.
        op(2, 100, Some(101), Input::Get, Output::Ok(v(8, "b"))),
        op(2, 102, Some(103), update(8, "c"), Output::Ok(v(9, "c"))),
    ];
    assert_eq!(linearizable(&landed), Ok(()));
    let never = [
        op(0, 0, Some(1), create("a"), Output::Ok(v(5, "a"))),
        op(1, 2, None, update(5, "b"), Output::Unknown),
        op(2, 100, Some(101), Input::Get, Output::Ok(v(5, "a"))),
    ];
    assert_eq!(linearizable(&never), Ok(()));
    // But not landed, then undone.
    let undone = [
        op(0, 0, Some(1), create("a"), Output::Ok(v(5, "a"))),
        op(1, 2, None, update(5, "b"), Output::Unknown),
        op(2, 100, Some(101), Input::Get, Output::Ok(v(8, "b"))),
        op(2, 102, Some(103), Input::Get, Output::Ok(v(5, "a"))),
    ];
    assert!(linearizable(&undone).is_err());
}

#[test]
fn resource_versions_never_go_back_and_uids_stay() {
    let back = [
        op(0, 0, Some(1), create("a"), Output::Ok(v(5, "a"))),
        op(0, 2, Some(3), update(5, "b"), Output::Ok(v(4, "b"))),
    ];
    assert!(linearizable(&back).is_err());
    let mut other = v(6, "b");
    other.uid = "u2".into();
    let uid = [
        op(0, 0, Some(1), create("a"), Output::Ok(v(5, "a"))),
        op(0, 2, Some(3), update(5, "b"), Output::Ok(other)),
    ];
    assert!(linearizable(&uid).is_err());
}

#[test]
fn durability_finds_lost_and_half_applied_writes() {
    let h = [
        op(0, 0, Some(1), create("a"), Output::Ok(v(5, "a"))),
        op(0, 2, Some(3), update(5, "b"), Output::Ok(v(6, "b"))),
        op(1, 4, None, update(6, "c"), Output::Unknown),
    ];
    // The crash kept the acknowledged update, or the unknown one on top: fine.
    for fin in [v(6, "b"), v(9, "c")] {
        let r = check_durability(&h, &BTreeMap::from([(KEY.to_string(), Some(fin))]));
        assert!(r.violations().is_empty(), "{:?}", r.violations());
        assert_eq!(r.acknowledged_writes, 2);
    }
    // Back to the state before an acknowledged write: lost.
    let r = check_durability(&h, &BTreeMap::from([(KEY.to_string(), Some(v(5, "a")))]));
    assert_eq!(r.lost.len(), 1, "{r:?}");
    // Gone without a delete: both writes lost.
    let r = check_durability(&h, &BTreeMap::from([(KEY.to_string(), None)]));
    assert_eq!(r.lost.len(), 2, "{r:?}");
    // A value nobody wrote (a torn write).
    let r = check_durability(&h, &BTreeMap::from([(KEY.to_string(), Some(v(9, "c\0")))]));
    assert_eq!(r.half_applied.len(), 1, "{r:?}");
    // Two acknowledged writes with one resourceVersion (a revision reused after a restart).
    let mut twice = h.to_vec();
    twice.push(op(2, 5, Some(6), update(6, "d"), Output::Ok(v(6, "d"))));
    let r = check_durability(
        &twice,
        &BTreeMap::from([(KEY.to_string(), Some(v(6, "b")))]),
    );
    assert!(!r.identity.is_empty(), "{r:?}");
}

fn ev(kind: &'static str, name: &str, rv: u64) -> Event {
    Event {
        kind,
        key: if kind == "BOOKMARK" {
            String::new()
        } else {
            format!("configmaps/default/{name}")
        },
        rv,
        value: format!("v{rv}"),
    }
}

fn session(watcher: usize, start: u64, window: Window, events: Vec<Event>, end: End) -> Session {
    Session {
        watcher,
        prefix: "configmaps/default/".into(),
        start,
        window,
        events,
        end,
    }
}

#[test]
fn watch_sessions_that_agree_pass() {
    let all = vec![
        ev("ADDED", "a", 3),
        ev("MODIFIED", "a", 4),
        ev("BOOKMARK", "", 6),
        ev("DELETED", "a", 7),
    ];
    let s = [
        session(0, 2, Window::Inside, all.clone(), End::Closed),
        // Resumed from 4: exactly what came after.
        session(1, 4, Window::Inside, all[2..].to_vec(), End::Closed),
        session(2, 1, Window::Outside, vec![], End::Expired),
    ];
    let committed = [Committed {
        key: "configmaps/default/a".into(),
        rv: 4,
        value: "v4".into(),
    }];
    let r = validate(&s, &committed);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!((r.sessions, r.expired, r.bookmarks), (3, 1, 2));
}

#[test]
fn watch_validator_finds_gaps_duplicates_and_bad_bookmarks() {
    let full = session(
        0,
        2,
        Window::Inside,
        vec![
            ev("ADDED", "a", 3),
            ev("MODIFIED", "a", 4),
            ev("ADDED", "b", 5),
        ],
        End::Closed,
    );
    let cases = [
        // Misses 4.
        (
            session(
                1,
                2,
                Window::Inside,
                vec![ev("ADDED", "a", 3), ev("ADDED", "b", 5)],
                End::Closed,
            ),
            "missing [4]",
        ),
        // 4 twice.
        (
            session(
                1,
                3,
                Window::Inside,
                vec![ev("MODIFIED", "a", 4), ev("MODIFIED", "a", 4)],
                End::Closed,
            ),
            "duplicate",
        ),
        // A bookmark at 5 before the event at 5.
        (
            session(
                1,
                4,
                Window::Inside,
                vec![ev("BOOKMARK", "", 5), ev("ADDED", "b", 5)],
                End::Closed,
            ),
            "out of order",
        ),
        // Expired inside the window.
        (
            session(1, 3, Window::Inside, vec![], End::Expired),
            "410 Expired",
        ),
        // Served from before the window.
        (
            session(
                1,
                1,
                Window::Outside,
                vec![ev("ADDED", "a", 3)],
                End::Closed,
            ),
            "before the window",
        ),
    ];
    for (bad, what) in cases {
        let r = validate(&[full.clone(), bad.clone()], &[]);
        assert!(
            r.violations.iter().any(|v| v.contains(what)),
            "{what}: {:?} for {bad:?}",
            r.violations
        );
    }
    // An acknowledged write no watcher delivered is a gap of every session spanning it.
    let committed = [Committed {
        key: "configmaps/default/c".into(),
        rv: 6,
        value: "x".into(),
    }];
    let later = session(1, 5, Window::Inside, vec![ev("ADDED", "d", 7)], End::Closed);
    let r = validate(&[full, later], &committed);
    assert!(
        r.violations.iter().any(|v| v.contains("missing [6]")),
        "{:?}",
        r.violations
    );
}
