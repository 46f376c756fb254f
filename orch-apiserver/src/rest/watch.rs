//! WATCH: events from the watch cache, filtered per watcher, with bookmarks, timeouts and
//! `sendInitialEvents`.
//!
//! Selector transitions follow upstream `cacher/cache_watcher.go` (`convertToWatchEvent`): an
//! object that starts matching is ADDED, one that stops matching is DELETED (its previous state
//! at the event's resourceVersion).

use super::filter::Filter;
use super::read::parse_rv;
use super::{cache_error, Resource, RestResult};
use crate::server::ApiServer;
use crate::storage::{key, Event, EventType, Revision};
use futures::stream::BoxStream;
use futures::StreamExt;
use orch_types::client::{WatchEvent, WatchParams};
use orch_types::{ApiError, DynamicObject};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Annotation on the bookmark that ends the initial events of `sendInitialEvents=true`.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// A stream of watch events sharing the cache's objects.
pub type ObjectWatch = BoxStream<'static, WatchEvent<Arc<DynamicObject>>>;

struct State {
    pending: VecDeque<WatchEvent<Arc<DynamicObject>>>,
    live: Option<broadcast::Receiver<Arc<Event>>>,
    start: Revision,
    prefix: String,
    filter: Filter,
    info: Resource,
    api: Arc<ApiServer>,
    bookmarks: bool,
    bookmark_every: Duration,
    deadline: Option<tokio::time::Instant>,
    stop: tokio::sync::watch::Receiver<bool>,
    last_sent: Revision,
}

/// A bookmark object: only kind, apiVersion and resourceVersion (plus annotations).
fn bookmark(info: Resource, rv: Revision, initial_end: bool) -> Arc<DynamicObject> {
    let mut o = DynamicObject::new(&info.api_version(), info.kind, "");
    o.metadata.name = None;
    o.metadata.resource_version = Some(rv.to_string());
    if initial_end {
        o.metadata.annotations =
            Some([(INITIAL_EVENTS_END.to_string(), "true".to_string())].into());
    }
    Arc::new(o)
}

fn with_rv(o: &DynamicObject, rv: Revision) -> Arc<DynamicObject> {
    let mut o = o.clone();
    o.metadata.resource_version = Some(rv.to_string());
    Arc::new(o)
}

/// Converts a storage event for one watcher (None: not visible to it).
fn convert(ev: &Event, prefix: &str, filter: &Filter) -> Option<WatchEvent<Arc<DynamicObject>>> {
    if !ev.key.starts_with(prefix) {
        return None;
    }
    let object = ev.object()?;
    let cur = filter.matches(object);
    match ev.kind {
        EventType::Added => cur.then(|| WatchEvent::Added(object.clone())),
        EventType::Deleted => cur.then(|| WatchEvent::Deleted(object.clone())),
        EventType::Modified => {
            let prev = if filter.is_empty() {
                None
            } else {
                ev.prev_object()
            };
            let old = ev.prev.is_some() && prev.is_none_or(|p| filter.matches(p));
            match (old, cur) {
                (true, true) => Some(WatchEvent::Modified(object.clone())),
                (false, true) => Some(WatchEvent::Added(object.clone())),
                (true, false) => prev.map(|p| WatchEvent::Deleted(with_rv(p, ev.revision))),
                (false, false) => None,
            }
        }
        // Progress notifications stop at the watch cache, which never holds one.
        EventType::Progress => None,
    }
}

async fn next(mut st: State) -> Option<(WatchEvent<Arc<DynamicObject>>, State)> {
    loop {
        if let Some(ev) = st.pending.pop_front() {
            return Some((ev, st));
        }
        let live = st.live.as_mut()?;
        let deadline = st.deadline;
        let timeout = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => futures::future::pending().await,
            }
        };
        let tick = tokio::time::sleep(st.bookmark_every);
        let mut stop = st.stop.clone();
        tokio::select! {
            r = live.recv() => match r {
                Ok(ev) => {
                    if ev.revision <= st.start {
                        continue;
                    }
                    st.last_sent = ev.revision;
                    if let Some(out) = convert(&ev, &st.prefix, &st.filter) {
                        return Some((out, st));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Upstream closes watchers that cannot keep up; clients re-watch.
                    st.live = None;
                    let e = ApiError::expired("watch fell behind; re-watch from the last resourceVersion");
                    return Some((WatchEvent::Error(e.to_status()), st));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            _ = timeout => return None,
            _ = stop.wait_for(|s| *s) => return None,
            _ = tick, if st.bookmarks => {
                let applied = st.api.cache.applied();
                if live.is_empty() && applied > st.last_sent {
                    st.last_sent = applied;
                    return Some((WatchEvent::Bookmark(bookmark(st.info, applied, false)), st));
                }
            }
        }
    }
}

impl ApiServer {
    /// Watches a collection (`?watch=true`). `ns == None` watches all namespaces.
    ///
    /// Without a resourceVersion (or with `0`) the stream starts with a synthetic ADDED event per
    /// current object; with one, it replays every change after it (410 Expired when older than
    /// the watch cache window).
    pub async fn watch_objects(
        &self,
        info: Resource,
        ns: Option<&str>,
        p: &WatchParams,
    ) -> RestResult<ObjectWatch> {
        let ns = if info.namespaced {
            ns.filter(|n| !n.is_empty())
        } else {
            None
        };
        let filter = Filter::new(
            info,
            p.label_selector.as_deref(),
            p.field_selector.as_deref(),
        )?;
        let res_prefix = key::resource_prefix(info.group, info.plural);
        let prefix = key::collection_prefix(info.group, info.plural, ns);
        let rv = p
            .resource_version
            .as_deref()
            .filter(|s| !s.is_empty() && *s != "0");
        let after = rv.map(parse_rv).transpose()?;
        let initial = p.send_initial_events || after.is_none();
        let unset = p.resource_version.as_deref().is_none_or(str::is_empty);
        if unset && !p.send_initial_events {
            // No resourceVersion: the synthetic ADDED events are a consistent (most recent) read.
            self.cache.sync().await.map_err(|e| cache_error(info, e))?;
        }
        if p.send_initial_events {
            // Initial state "not older than" the given revision, or consistent when unset.
            match after {
                Some(a) => self.cache.wait_for(a).await,
                None => self.cache.sync().await.map(|_| ()),
            }
            .map_err(|e| cache_error(info, e))?;
        }
        let w = self
            .cache
            .watch(&res_prefix, if initial { None } else { after })
            .await
            .map_err(|e| cache_error(info, e))?;
        let mut pending = VecDeque::new();
        if let Some(objects) = w.initial {
            for e in &objects {
                if let Some(o) = super::read::decode_cached(e, &filter)? {
                    if key_matches(info, &o, ns) {
                        pending.push_back(WatchEvent::Added(o));
                    }
                }
            }
        }
        if p.send_initial_events {
            pending.push_back(WatchEvent::Bookmark(bookmark(info, w.start, true)));
        }
        for ev in &w.backlog {
            if let Some(e) = convert(ev, &prefix, &filter) {
                pending.push_back(e);
            }
        }
        let deadline = p
            .timeout_seconds
            .map(|s| tokio::time::Instant::now() + Duration::from_secs(u64::from(s)));
        let st = State {
            pending,
            live: Some(w.live),
            start: w.start,
            prefix,
            filter,
            info,
            api: self.arc(),
            bookmarks: p.allow_bookmarks,
            bookmark_every: self.config.bookmark_interval,
            deadline,
            stop: self.stop.subscribe(),
            last_sent: w.start,
        };
        Ok(futures::stream::unfold(st, next).boxed())
    }
}

fn key_matches(info: Resource, o: &DynamicObject, ns: Option<&str>) -> bool {
    !info.namespaced || ns.is_none_or(|ns| o.namespace() == Some(ns))
}
