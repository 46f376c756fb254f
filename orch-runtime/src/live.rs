//! The live driver: runs [`Controller`] declarations against an API server. One informer per
//! declared kind (shared by every controller that reads it), one rate-limited [`WorkQueue`]
//! and [`Applier`] per controller, workers on tokio; a key whose actions fail is retried with
//! the queue's back-off, a requeue asked for is a delayed add.
//!
//! When a controller watches a discovered set of resources
//! ([`Watches::watch_discovered_metadata`](crate::controller::Watches::watch_discovered_metadata)),
//! the driver discovers the API before wiring, and again shortly after any
//! CustomResourceDefinition changes and every [`LiveConfig::rediscover`]: informers of
//! resources that appeared are started, those of resources that went away are stopped (as
//! upstream's garbage collector resyncs its monitors, `GarbageCollector.Sync`).
//!
//! ```no_run
//! # async fn f(client: orch_types::client::SharedClient, ctls: Vec<std::sync::Arc<dyn orch_runtime::controller::Controller>>) {
//! use orch_runtime::live::{run, LiveConfig};
//! let clock = std::sync::Arc::new(orch_types::clock::SystemClock);
//! run(client, clock, ctls, LiveConfig::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await;
//! # }
//! ```

use crate::action::Applier;
use crate::controller::{wire, Controller, Dynamic, Watches};
use crate::informer::Informer;
use crate::object::Object;
use crate::queue::WorkQueue;
use orch_types::client::{DiscoveredResource, SharedClient};
use orch_types::clock::SharedClock;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Settings of the live driver.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Workers per controller (`--concurrent-*-syncs`, upstream default 5), unless the
    /// controller asks for fewer.
    pub workers: usize,
    /// Informer resync period.
    pub resync: Option<Duration>,
    /// How often discovered sets are discovered again when no CustomResourceDefinition
    /// change asked for it first.
    pub rediscover: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            workers: 5,
            resync: Some(Duration::from_secs(600)),
            rediscover: crate::controller::REDISCOVER,
        }
    }
}

/// How long after a CustomResourceDefinition change the API is discovered again (changes
/// come in bursts: create, then the names accepted, then established).
const REDISCOVER_DEBOUNCE: Duration = Duration::from_millis(200);

/// How long the live driver waits for the first list of a cache that discovery added before
/// handing the discovered sets their resync anyway.
const NEW_CACHE_SYNC: Duration = Duration::from_secs(30);

/// A shutdown signal shared by the driver's tasks.
#[derive(Clone)]
pub(crate) struct Stop(watch::Receiver<bool>);

impl Stop {
    async fn wait(mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

/// An informer ready to start (type-erased over its kind).
pub(crate) trait RunInformer: Send {
    /// Whether its first list was applied.
    fn synced(&self) -> Box<dyn Fn() -> bool + Send + Sync>;
    /// Starts it until `stop` resolves.
    fn start(
        self: Box<Self>,
        stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> tokio::task::JoinHandle<()>;
}

impl<K: Object> RunInformer for Informer<K> {
    fn synced(&self) -> Box<dyn Fn() -> bool + Send + Sync> {
        let s = self.store();
        Box::new(move || s.is_synced())
    }
    fn start(
        self: Box<Self>,
        stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn((*self).run(stop))
    }
}

/// A running informer: its own stop, and its task.
type Handle = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

/// The running informers by resource key, each stoppable on its own.
#[derive(Default, Clone)]
struct Running(Arc<Mutex<HashMap<String, Handle>>>);

impl Running {
    /// Starts `inf` as the informer of `key`, until `stop` or [`Running::stop`].
    fn start(&self, key: String, inf: Box<dyn RunInformer>, stop: &Stop) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let all = stop.clone();
        let handle = inf.start(Box::pin(async move {
            tokio::select! {
                _ = all.wait() => {}
                _ = rx => {}
            }
        }));
        if let Some((old, _)) = self.0.lock().insert(key, (tx, handle)) {
            let _ = old.send(());
        }
    }

    /// Stops the informer of `key`.
    fn stop(&self, key: &str) {
        if let Some((tx, _)) = self.0.lock().remove(key) {
            let _ = tx.send(());
        }
    }

    /// Every task, for the shutdown to wait on.
    fn take(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.0.lock().drain().map(|(_, (_, h))| h).collect()
    }
}

/// Whether any of `controllers` watches a discovered set.
pub(crate) fn watches_discovered(controllers: &[Arc<dyn Controller>]) -> bool {
    controllers.iter().any(|c| {
        let mut w = Watches::default();
        c.watches(&mut w);
        w.has_discovered()
    })
}

/// What the API serves, or the built-in resources when discovery fails (the next
/// rediscovery tries again).
pub(crate) async fn discover(client: &SharedClient) -> Vec<DiscoveredResource> {
    match client.discover().await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "discovery failed; watching the built-in resources until it works");
            orch_types::client::builtin_resources()
        }
    }
}

/// Follows discovery until `stop`: discovers again after a CustomResourceDefinition change
/// or every `every`, starts and stops informers as the discovered sets change, then hands
/// the sets that changed their resync.
async fn follow_discovery(
    mut dynamic: Dynamic,
    client: SharedClient,
    running: Running,
    resync: Option<Duration>,
    every: Duration,
    stop: Stop,
) {
    let rediscover = dynamic.rediscover.clone();
    loop {
        tokio::select! {
            _ = stop.clone().wait() => return,
            _ = rediscover.notify.notified() => {
                tokio::select! {
                    _ = stop.clone().wait() => return,
                    _ = tokio::time::sleep(REDISCOVER_DEBOUNCE) => {}
                }
            }
            _ = tokio::time::sleep(every) => {}
        }
        rediscover.take();
        let discovered = match client.discover().await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "rediscovery failed; keeping the current caches");
                continue;
            }
        };
        let delta = dynamic.apply(discovered);
        if delta.is_empty() {
            continue;
        }
        let mut synced = Vec::new();
        for (key, slot) in delta.added {
            tracing::info!(resource = %key, "discovered; starting its informer");
            let inf = slot.into_informer(client.clone(), resync);
            synced.push(inf.synced());
            running.start(key, inf, &stop);
        }
        for key in &delta.removed {
            tracing::info!(resource = %key, "no longer served; stopping its informer");
            running.stop(key);
        }
        let wait = async {
            while !synced.iter().all(|f| f()) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            _ = stop.clone().wait() => return,
            _ = tokio::time::timeout(NEW_CACHE_SYNC, wait) => {}
        }
        dynamic.replay(&delta.changed);
    }
}

/// The applier of `ctl` in either driver: its component, its expectations.
pub(crate) fn applier_for(
    ctl: &dyn Controller,
    client: &SharedClient,
    clock: &SharedClock,
) -> Applier {
    let a = Applier::new(client.clone(), clock.clone(), ctl.component());
    match ctl.expectations() {
        Some(e) => a.with_expectations(e),
        None => a,
    }
}

/// Puts `key` back as the outcome of its actions asks: forgotten and delayed by the requeue
/// asked for, or retried with the rate limiter's back-off after an error; then done.
pub(crate) fn settle_key(
    queue: &WorkQueue,
    key: &str,
    res: &Result<Option<Duration>, orch_types::client::ClientError>,
) {
    match res {
        Ok(requeue) => {
            queue.forget(key);
            if let Some(d) = requeue {
                queue.add_after(key, *d);
            }
        }
        Err(_) => queue.add_rate_limited(key),
    }
    queue.done(key);
}

/// Worker loop: take a key, sync it, apply, requeue as asked or with back-off on error.
async fn work(
    ctl: Arc<dyn Controller>,
    caches: crate::controller::Caches,
    queue: WorkQueue,
    ap: Applier,
    clock: SharedClock,
) {
    while let Some(key) = queue.get().await {
        let actions = ctl.sync(&key, &caches, clock.now());
        let res = ap.apply(actions).await;
        ctl.applied(&key, &res);
        if let Err(e) = &res {
            if e.is_conflict() {
                tracing::debug!(controller = ctl.name(), key, error = %e, "conflict; retrying");
            } else {
                tracing::warn!(controller = ctl.name(), key, error = %e, "sync failed; retrying with back-off");
            }
        }
        settle_key(&queue, &key, &res);
    }
}

/// Runs `controllers` until `shutdown` resolves: informers first, workers once every cache
/// has its first list.
pub async fn run(
    client: SharedClient,
    clock: SharedClock,
    controllers: Vec<Arc<dyn Controller>>,
    config: LiveConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    let (tx, rx) = watch::channel(false);
    let stop = Stop(rx);
    let discovered = if watches_discovered(&controllers) {
        discover(&client).await
    } else {
        Vec::new()
    };
    let wiring = wire(&controllers, &clock, discovered);
    let caches = wiring.caches.clone();
    let queues = wiring.queues;
    let running = Running::default();
    let mut synced = Vec::new();
    for (key, slot) in wiring.slots {
        let inf = slot.into_informer(client.clone(), config.resync);
        synced.push(inf.synced());
        running.start(key, inf, &stop);
    }
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    if !wiring.dynamic.is_empty() {
        tasks.push(tokio::spawn(follow_discovery(
            wiring.dynamic,
            client.clone(),
            running.clone(),
            config.resync,
            config.rediscover,
            stop.clone(),
        )));
    }
    let wait_sync = async {
        while !synced.iter().all(|f| f()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let mut shutdown: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(shutdown);
    let stopped = tokio::select! {
        _ = &mut shutdown => true,
        _ = wait_sync => false,
    };
    if !stopped {
        let names: Vec<&str> = controllers.iter().map(|c| c.name()).collect();
        tracing::info!(controllers = ?names, "caches synced; starting workers");
        for ((ctl, q), initial) in controllers.iter().zip(&queues).zip(&wiring.initial) {
            for k in initial {
                q.add(k);
            }
            let ap = applier_for(ctl.as_ref(), &client, &clock);
            let n = ctl
                .max_workers()
                .unwrap_or(config.workers)
                .clamp(1, config.workers.max(1));
            for _ in 0..n {
                tasks.push(tokio::spawn(work(
                    ctl.clone(),
                    caches.clone(),
                    q.clone(),
                    ap.clone(),
                    clock.clone(),
                )));
            }
        }
        shutdown.await;
    }
    let _ = tx.send(true);
    for q in &queues {
        q.shut_down();
    }
    for t in tasks {
        let _ = t.await;
    }
    for t in running.take() {
        let _ = t.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testclient::{
        backup, backup_crd, backups, backups_discovered, crds, Census, FakeApi,
    };

    async fn until(what: &str, f: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !f() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    #[tokio::test]
    async fn informers_of_discovered_resources_start_and_stop_with_their_crd() {
        let api = Arc::new(FakeApi::default());
        let census = Arc::new(Census::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let config = LiveConfig {
            workers: 1,
            resync: None,
            // Only a CRD change makes it discover again in this test.
            rediscover: Duration::from_secs(3600),
        };
        let task = tokio::spawn(run(
            api.clone(),
            Arc::new(orch_types::clock::SystemClock),
            vec![census.clone() as Arc<dyn Controller>],
            config,
            async {
                let _ = rx.await;
            },
        ));
        until("the CRD informer", || api.watching(&crds()) == 1).await;
        assert_eq!(api.watching(&backups()), 0);
        // A CRD makes backups served, with an object already there.
        api.discovered.lock().push(backups_discovered());
        api.put(&backups(), backup("b1"));
        api.put(&crds(), backup_crd());
        until("the backup to be synced", || {
            census.synced.lock().iter().any(|k| k == "Backup|ns/b1")
        })
        .await;
        assert_eq!(api.watching(&backups()), 1);
        // Later objects arrive through the new informer's watch.
        api.put(&backups(), backup("b2"));
        until("the second backup", || {
            census.synced.lock().iter().any(|k| k == "Backup|ns/b2")
        })
        .await;
        // The CRD goes away: its informer is stopped, nothing keeps retrying it.
        api.discovered.lock().clear();
        api.remove(&crds(), "backups.example.com");
        until("the backup informer to stop", || {
            api.watching(&backups()) == 0
        })
        .await;
        let _ = tx.send(());
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("shuts down")
            .expect("no panic");
    }
}
