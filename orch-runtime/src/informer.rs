//! [`Informer`]: list + watch one resource into a [`Store`] over any `Client`, with periodic
//! resync, relist on `410 Gone` and reconnect with exponential back-off (client-go's
//! `Reflector` + `SharedInformer`, reduced to one writer and a list of handlers).

use crate::object::Object;
use crate::store::{Change, Store, Writer};
use futures::StreamExt;
use orch_types::client::{ListParams, SharedClient, WatchEvent, WatchParams};
use orch_types::registry::ApiResource;
use std::sync::Arc;
use std::time::Duration;

/// A callback run for every change, in order, on the informer's task. Keep it cheap (enqueue).
pub type Handler<K> = Arc<dyn Fn(&Change<K>) + Send + Sync>;

/// Watches one resource type and keeps a [`Store`] of it.
pub struct Informer<K: Object> {
    client: SharedClient,
    resource: ApiResource,
    namespace: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    resync: Option<Duration>,
    poll: Option<Duration>,
    writer: Writer<K>,
    handlers: Vec<Handler<K>>,
}

impl<K: Object> std::fmt::Debug for Informer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informer")
            .field("resource", &self.resource)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Back-off between failed list/watch attempts: 800 ms doubling to 30 s (client-go reflector).
const BACKOFF_INITIAL: Duration = Duration::from_millis(800);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

impl<K: Object> Informer<K> {
    /// An informer over all namespaces of `resource`.
    pub fn new(client: SharedClient, resource: ApiResource) -> Self {
        Self::from_parts(client, resource, Writer::new())
    }

    /// An informer filling an existing cache (the drivers build caches before informers).
    pub(crate) fn from_parts(
        client: SharedClient,
        resource: ApiResource,
        writer: Writer<K>,
    ) -> Self {
        Self {
            client,
            resource,
            namespace: None,
            label_selector: None,
            field_selector: None,
            resync: None,
            poll: None,
            writer,
            handlers: Vec::new(),
        }
    }

    /// Restricts to one namespace.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    /// Restricts by field selector (e.g. `spec.nodeName=n1`).
    pub fn fields(mut self, s: &str) -> Self {
        self.field_selector = Some(s.into());
        self
    }

    /// Restricts by label selector.
    pub fn labels(mut self, s: &str) -> Self {
        self.label_selector = Some(s.into());
        self
    }

    /// Re-delivers every object as [`Change::Resync`] at this period.
    pub fn resync(mut self, every: Duration) -> Self {
        self.resync = Some(every);
        self
    }

    /// A reader of the cache.
    pub fn store(&self) -> Store<K> {
        self.writer.store()
    }

    /// Adds a change handler.
    pub fn on_change(&mut self, h: Handler<K>) {
        self.handlers.push(h);
    }

    fn emit(&self, c: &Change<K>) {
        for h in &self.handlers {
            h(c);
        }
    }

    /// Lists every `every` instead of watching, for resources served without `watch`
    /// (`metrics.k8s.io`): each list replaces the cache and reports the differences. The
    /// cache counts as synced after the first attempt, even a failed one.
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = Some(every);
        self
    }

    async fn run_polling(
        mut self,
        every: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        tokio::pin!(shutdown);
        loop {
            let listed = tokio::select! {
                _ = &mut shutdown => return,
                r = self.relist() => r,
            };
            if let Err(e) = listed {
                tracing::debug!(resource = %self.resource.plural, error = %e, "poll failed");
                self.writer.mark_synced();
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(every) => {},
            }
        }
    }

    /// One list into the cache; returns its resourceVersion.
    async fn relist(&mut self) -> Result<String, orch_types::client::ClientError> {
        let p = ListParams {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            ..Default::default()
        };
        let list = self
            .client
            .list(&self.resource, self.namespace.as_deref(), &p)
            .await?;
        let rv = list.metadata.resource_version.clone().unwrap_or_default();
        let mut items = Vec::with_capacity(list.items.len());
        for d in &list.items {
            match K::from_dynamic(d) {
                Ok(o) => items.push(o),
                Err(e) => {
                    tracing::warn!(resource = %self.resource.plural, error = %e, "skipping undecodable object")
                }
            }
        }
        for c in self.writer.replace(items, &rv) {
            self.emit(&c);
        }
        Ok(rv)
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()> + Send) {
        if let Some(every) = self.poll {
            return self.run_polling(every, shutdown).await;
        }
        tokio::pin!(shutdown);
        let mut backoff = BACKOFF_INITIAL;
        let mut rv: Option<String> = None;
        let mut resync_timer = self
            .resync
            .map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
        loop {
            let current = match rv.clone() {
                Some(v) => v,
                None => {
                    let listed = tokio::select! {
                        _ = &mut shutdown => return,
                        r = self.relist() => r,
                    };
                    match listed {
                        Ok(v) => {
                            backoff = BACKOFF_INITIAL;
                            rv = Some(v.clone());
                            v
                        }
                        Err(e) => {
                            tracing::warn!(resource = %self.resource.plural, error = %e, "list failed; backing off");
                            tokio::select! {
                                _ = &mut shutdown => return,
                                _ = tokio::time::sleep(backoff) => {},
                            }
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                            continue;
                        }
                    }
                }
            };
            let wp = WatchParams {
                label_selector: self.label_selector.clone(),
                field_selector: self.field_selector.clone(),
                resource_version: Some(current),
                allow_bookmarks: true,
                timeout_seconds: Some(300),
                send_initial_events: false,
            };
            let mut stream = match self
                .client
                .watch(&self.resource, self.namespace.as_deref(), &wp)
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    if e.is_gone() {
                        rv = None;
                        continue;
                    }
                    tracing::warn!(resource = %self.resource.plural, error = %e, "watch failed; backing off");
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(backoff) => {},
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    _ = &mut shutdown => return,
                    _ = async { match resync_timer.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending::<()>().await } } => {
                        for o in self.writer.store().list() {
                            self.emit(&Change::Resync(o));
                        }
                        continue;
                    }
                    n = stream.next() => n,
                };
                match next {
                    None => break, // server closed the watch: resume from the last rv
                    Some(Err(e)) => {
                        if e.is_gone() {
                            rv = None;
                        }
                        tracing::debug!(resource = %self.resource.plural, error = %e, "watch broke");
                        break;
                    }
                    Some(Ok(ev)) => {
                        backoff = BACKOFF_INITIAL;
                        match ev {
                            WatchEvent::Added(d) | WatchEvent::Modified(d) => {
                                if let Ok(o) = K::from_dynamic(&d) {
                                    let c = self.writer.apply(o);
                                    self.emit(&c);
                                }
                                rv = d.metadata.resource_version.clone().or(rv);
                            }
                            WatchEvent::Deleted(d) => {
                                if let Ok(o) = K::from_dynamic(&d) {
                                    let c = self.writer.delete(o);
                                    self.emit(&c);
                                }
                                rv = d.metadata.resource_version.clone().or(rv);
                            }
                            WatchEvent::Bookmark(d) => {
                                if let Some(v) = d.metadata.resource_version.as_deref() {
                                    self.writer.bookmark(v);
                                    rv = Some(v.into());
                                }
                            }
                            WatchEvent::Error(s) => {
                                if s.code == Some(410) {
                                    rv = None; // expired: relist
                                }
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testclient::ScriptedClient;
    use k8s_openapi::api::core::v1::ConfigMap;
    use orch_types::DynamicObject;
    use std::sync::atomic::Ordering;

    fn cm(name: &str, rv: &str) -> DynamicObject {
        let mut o = DynamicObject::new("v1", "ConfigMap", name);
        o.metadata.namespace = Some("ns".into());
        o.metadata.resource_version = Some(rv.into());
        o
    }

    #[tokio::test]
    async fn relists_after_410_and_reports_the_differences() {
        let client = Arc::new(ScriptedClient::default());
        // First list: a. The watch adds b, then expires (410). The relist finds only c.
        *client.next_items.lock() = vec![vec![cm("a", "1")], vec![cm("c", "5")]].into();
        let gone = k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
            code: Some(410),
            reason: Some("Expired".into()),
            ..Default::default()
        };
        client.watches.lock().push_back(vec![
            Ok(WatchEvent::Added(cm("b", "2"))),
            Ok(WatchEvent::Error(gone)),
        ]);
        let mut inf = Informer::<ConfigMap>::new(client.clone(), ApiResource::of::<ConfigMap>());
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        inf.on_change(Arc::new(move |c: &Change<ConfigMap>| {
            let kind = match c {
                Change::Added(_) => "add",
                Change::Updated(..) => "update",
                Change::Deleted(_) => "delete",
                Change::Resync(_) => "resync",
            };
            s2.lock().push(format!(
                "{kind} {}",
                c.object().metadata.name.clone().unwrap_or_default()
            ));
        }));
        let store = inf.store();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(inf.run(async {
            let _ = rx.await;
        }));
        tokio::time::timeout(Duration::from_secs(5), async {
            while store.get("ns/c").is_none() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("relist after 410");
        let _ = tx.send(());
        let _ = task.await;
        assert_eq!(client.lists.load(Ordering::SeqCst), 2);
        assert_eq!(store.len(), 1);
        assert_eq!(store.resource_version(), "2");
        let mut log = seen.lock().clone();
        log[2..].sort();
        assert_eq!(log, ["add a", "add b", "add c", "delete a", "delete b"]);
    }

    #[tokio::test]
    async fn polling_lists_again_and_never_watches() {
        let client = Arc::new(ScriptedClient::default());
        // Objects without a resourceVersion, as metrics are: every list is news.
        let mut a = cm("a", "1");
        a.metadata.resource_version = None;
        *client.next_items.lock() = vec![vec![a.clone()], vec![]].into();
        let inf = Informer::<ConfigMap>::new(client.clone(), ApiResource::of::<ConfigMap>())
            .poll(Duration::from_millis(10));
        let store = inf.store();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(inf.run(async {
            let _ = rx.await;
        }));
        tokio::time::timeout(Duration::from_secs(5), async {
            while client.lists.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("lists again");
        let _ = tx.send(());
        let _ = task.await;
        assert!(store.is_synced());
        assert!(store.is_empty(), "the second list had nothing");
        assert_eq!(client.watches.lock().len(), 0);
    }
}
