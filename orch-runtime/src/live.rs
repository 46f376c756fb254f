//! The live driver: runs [`Controller`] declarations against an API server. One informer per
//! declared kind (shared by every controller that reads it), one rate-limited [`WorkQueue`]
//! and [`Applier`] per controller, workers on tokio; a key whose actions fail is retried with
//! the queue's back-off, a requeue asked for is a delayed add.
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
use crate::controller::{wire, Controller};
use crate::informer::Informer;
use crate::object::Object;
use crate::queue::WorkQueue;
use orch_types::client::SharedClient;
use orch_types::clock::SharedClock;
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
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            workers: 5,
            resync: Some(Duration::from_secs(600)),
        }
    }
}

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
    /// Starts it until `stop`.
    fn start(self: Box<Self>, stop: Stop) -> tokio::task::JoinHandle<()>;
}

impl<K: Object> RunInformer for Informer<K> {
    fn synced(&self) -> Box<dyn Fn() -> bool + Send + Sync> {
        let s = self.store();
        Box::new(move || s.is_synced())
    }
    fn start(self: Box<Self>, stop: Stop) -> tokio::task::JoinHandle<()> {
        tokio::spawn((*self).run(stop.wait()))
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
    let wiring = wire(&controllers, &clock);
    let caches = wiring.caches.clone();
    let queues = wiring.queues;
    let informers: Vec<Box<dyn RunInformer>> = wiring
        .slots
        .into_values()
        .map(|s| s.into_informer(client.clone(), config.resync))
        .collect();
    let synced: Vec<_> = informers.iter().map(|i| i.synced()).collect();
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = informers
        .into_iter()
        .map(|i| i.start(stop.clone()))
        .collect();
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
}
