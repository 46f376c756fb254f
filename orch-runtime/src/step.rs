//! The steppable driver: runs the same [`Controller`] declarations as [`crate::live`], one key
//! at a time, for the simulator. Its caches are fed from what the server returned for its own
//! writes (through the [`Applier`]'s [`Observer`]) and from what its host reports with
//! [`Stepper::observe`] — no watch fan-out, so the order of everything is fixed. Queues are the
//! same [`WorkQueue`]s on the host's (manual) clock; the host advances the clock to
//! [`Stepper::next_due`] when nothing is ready.
//!
//! Discovered sets ([`Watches::watch_discovered_metadata`](crate::controller::Watches::watch_discovered_metadata))
//! start from the built-in resources; the API is discovered at the first [`Stepper::step`],
//! at the first step after a CustomResourceDefinition change reached the caches, and at the
//! first step [`REDISCOVER`] of clock time after the last discovery (no timer of its own, so
//! it never wakes the host), or when the host calls [`Stepper::rediscover`]. A cache that
//! discovery adds is filled by one list right away, so the order of everything stays fixed.
//!
//! ```
//! # async fn f(client: orch_types::client::SharedClient, ctls: Vec<std::sync::Arc<dyn orch_runtime::controller::Controller>>) {
//! use orch_runtime::step::{StepConfig, Stepper};
//! let clock = orch_types::clock::ManualClock::at_epoch_seconds(0);
//! let mut s = Stepper::new(client, std::sync::Arc::new(clock.clone()), ctls, StepConfig::default());
//! while s.step().await.is_some() {}          // everything ready now
//! if let Some(t) = s.next_due() { clock.set(t) } // then the next timer
//! # }
//! ```

use crate::action::{Applier, NameGenerator, Observer};
use crate::controller::{
    resource_key, wire, Caches, Controller, Dynamic, Slot, TypedSlot, REDISCOVER,
};
use crate::live::{applier_for, settle_key};
use crate::object::Kind;
use crate::queue::WorkQueue;
use crate::store::Change;
use jiff::Timestamp;
use orch_types::client::SharedClient;
use orch_types::clock::SharedClock;
use orch_types::events::{EventType, ObjectRef};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Settings of the steppable driver.
#[derive(Clone, Default)]
pub struct StepConfig {
    /// Generated names (seeded, for determinism); `None`: the API server's.
    pub names: Option<Arc<dyn NameGenerator>>,
    /// Write Events to the API (the [`Stepper::take_events`] log has them either way).
    pub write_events: bool,
}

impl std::fmt::Debug for StepConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepConfig")
            .field("seeded_names", &self.names.is_some())
            .field("write_events", &self.write_events)
            .finish()
    }
}

/// An event a controller recorded, as the step driver reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// The controller's component.
    pub component: &'static str,
    /// About this object.
    pub object: ObjectRef,
    /// Normal / Warning.
    pub type_: EventType,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

enum Fed {
    Written(DynamicObject),
    Deleted(DynamicObject),
}

/// Collects what one controller's applier wrote, for the driver to feed into its caches.
struct Outbox {
    component: &'static str,
    writes: Arc<Mutex<Vec<Fed>>>,
    events: Arc<Mutex<Vec<RecordedEvent>>>,
}

impl Observer for Outbox {
    fn written(&self, _: &ApiResource, object: DynamicObject) {
        self.writes.lock().push(Fed::Written(object));
    }
    fn deleted(&self, _: &ApiResource, object: DynamicObject) {
        self.writes.lock().push(Fed::Deleted(object));
    }
    fn event(&self, object: &ObjectRef, type_: EventType, reason: &str, message: &str) {
        self.events.lock().push(RecordedEvent {
            component: self.component,
            object: object.clone(),
            type_,
            reason: reason.into(),
            message: message.into(),
        });
    }
}

struct Running {
    ctl: Arc<dyn Controller>,
    queue: WorkQueue,
    applier: Applier,
}

/// Changes of one kind, as a host subscribed to them ([`Stepper::subscribe`]).
#[derive(Debug)]
pub struct Subscription<K>(Arc<Mutex<VecDeque<Change<K>>>>);

impl<K> Subscription<K> {
    /// Takes the changes so far, in order.
    pub fn drain(&self) -> VecDeque<Change<K>> {
        std::mem::take(&mut *self.0.lock())
    }

    /// Takes the oldest change, if any.
    pub fn pop(&self) -> Option<Change<K>> {
        self.0.lock().pop_front()
    }
}

/// What one [`Stepper::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stepped {
    /// The controller.
    pub controller: &'static str,
    /// The key it synced.
    pub key: String,
    /// Whether the sync asked for anything but a requeue.
    pub acted: bool,
    /// The API error that stopped its actions, if any (the key is retried with back-off).
    pub error: Option<String>,
}

/// The steppable driver.
pub struct Stepper {
    client: SharedClient,
    slots: BTreeMap<String, Box<dyn Slot>>,
    caches: Caches,
    running: Vec<Running>,
    clock: SharedClock,
    writes: Arc<Mutex<Vec<Fed>>>,
    events: Arc<Mutex<Vec<RecordedEvent>>>,
    next: usize,
    dynamic: Dynamic,
    /// When the API is discovered again at the latest (`None`: at the next step).
    next_discovery: Option<Timestamp>,
}

impl std::fmt::Debug for Stepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stepper")
            .field("controllers", &self.names())
            .field("caches", &self.caches)
            .finish()
    }
}

impl Stepper {
    /// Wires `controllers`: empty, synced caches (feed them with [`observe`](Self::observe))
    /// and their initial keys queued.
    pub fn new(
        client: SharedClient,
        clock: SharedClock,
        controllers: Vec<Arc<dyn Controller>>,
        config: StepConfig,
    ) -> Self {
        let discovered = if crate::live::watches_discovered(&controllers) {
            orch_types::client::builtin_resources()
        } else {
            Vec::new()
        };
        let mut wiring = wire(&controllers, &clock, discovered);
        let queues = std::mem::take(&mut wiring.queues);
        for s in wiring.slots.values_mut() {
            s.mark_synced();
        }
        let writes: Arc<Mutex<Vec<Fed>>> = Arc::default();
        let events: Arc<Mutex<Vec<RecordedEvent>>> = Arc::default();
        let mut running = Vec::new();
        for ((ctl, queue), initial) in controllers.into_iter().zip(queues).zip(&wiring.initial) {
            for k in initial {
                queue.add(k);
            }
            let mut applier =
                applier_for(ctl.as_ref(), &client, &clock).with_observer(Arc::new(Outbox {
                    component: ctl.component(),
                    writes: writes.clone(),
                    events: events.clone(),
                }));
            if let Some(n) = &config.names {
                applier = applier.with_names(n.clone());
            }
            if !config.write_events {
                applier = applier.without_events();
            }
            running.push(Running {
                ctl,
                queue,
                applier,
            });
        }
        Self {
            client,
            slots: wiring.slots,
            caches: wiring.caches,
            running,
            clock,
            writes,
            events,
            next: 0,
            dynamic: wiring.dynamic,
            next_discovery: None,
        }
    }

    /// Discovers the API now: caches of resources that appeared are added and filled by a
    /// list, those of resources that went away are dropped, and the discovered sets that
    /// changed get their resync. A failed discovery keeps the current caches.
    pub async fn rediscover(&mut self) {
        if self.dynamic.is_empty() {
            return;
        }
        self.dynamic.rediscover.take();
        self.next_discovery = Some(self.clock.now() + REDISCOVER);
        let discovered = match self.client.discover().await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "rediscovery failed; keeping the current caches");
                return;
            }
        };
        let delta = self.dynamic.apply(discovered);
        for key in &delta.removed {
            self.slots.remove(key);
        }
        for (key, mut slot) in delta.added {
            let r = slot.resource().clone();
            match self
                .client
                .list(&r, None, &orch_types::client::ListParams::default())
                .await
            {
                Ok(list) => {
                    for o in &list.items {
                        slot.feed(o, false);
                    }
                }
                Err(e) => {
                    tracing::debug!(resource = %key, error = %e, "list of a discovered resource failed")
                }
            }
            slot.mark_synced();
            self.slots.insert(key, slot);
        }
        self.dynamic.replay(&delta.changed);
    }

    /// The caches (the host reads the same stores the controllers do).
    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// Names of the controllers, in the order they are stepped.
    pub fn names(&self) -> Vec<&'static str> {
        self.running.iter().map(|r| r.ctl.name()).collect()
    }

    /// Takes an object the server returned for a write made outside the controllers (the
    /// host's scheduler, kubelets, user). Kinds no controller watches are ignored.
    pub fn observe(&mut self, obj: &DynamicObject) {
        if let Some(s) = self.slot(obj) {
            s.feed(obj, false);
        }
    }

    /// Like [`observe`](Self::observe) for an object the host already holds typed and shared.
    pub fn observe_typed<K: Kind>(&mut self, obj: Arc<K>) {
        let r = K::api_resource();
        let key = resource_key(&r.api_version(), &r.kind);
        match self
            .slots
            .get_mut(&key)
            .and_then(|s| s.as_any_mut().downcast_mut::<TypedSlot<K>>())
        {
            Some(s) => s.feed_typed(obj),
            None => {
                if let Ok(d) = obj.to_dynamic() {
                    self.observe(&d);
                }
            }
        }
    }

    /// Replaces the whole cache of `K` with `items`, as the live driver's list of a polled
    /// cache ([`Watches::polls`](crate::controller::Watches::polls)) does: what is not among
    /// them leaves the cache. The differences reach handlers and subscribers like any change.
    /// Kinds no controller reads are ignored.
    pub fn replace_typed<K: Kind>(&mut self, items: Vec<K>) {
        let r = K::api_resource();
        if let Some(s) = self
            .slots
            .get_mut(&resource_key(&r.api_version(), &r.kind))
            .and_then(|s| s.as_any_mut().downcast_mut::<TypedSlot<K>>())
        {
            s.feed_all(items);
        }
    }

    /// Takes the last state of an object deleted outside the controllers.
    pub fn forget(&mut self, obj: &DynamicObject) {
        if let Some(s) = self.slot(obj) {
            s.feed(obj, true);
        }
    }

    fn slot(&mut self, obj: &DynamicObject) -> Option<&mut Box<dyn Slot>> {
        self.slots
            .get_mut(&resource_key(&obj.types.api_version, &obj.types.kind))
    }

    /// Every change of `K` from now on, for the host (its scheduler, kubelets, log). `K` must
    /// be a kind some controller watches; otherwise nothing is ever delivered.
    pub fn subscribe<K: Kind>(&mut self) -> Subscription<K> {
        let q: Arc<Mutex<VecDeque<Change<K>>>> = Arc::default();
        let r = K::api_resource();
        if let Some(s) = self
            .slots
            .get_mut(&resource_key(&r.api_version(), &r.kind))
            .and_then(|s| s.as_any_mut().downcast_mut::<TypedSlot<K>>())
        {
            let q2 = q.clone();
            s.handlers.push(Arc::new(move |c: &Change<K>| {
                q2.lock().push_back(c.clone())
            }));
        }
        Subscription(q)
    }

    /// Events the controllers recorded since the last call, in order.
    pub fn take_events(&self) -> Vec<RecordedEvent> {
        std::mem::take(&mut *self.events.lock())
    }

    fn drain_writes(&mut self) {
        loop {
            let batch = std::mem::take(&mut *self.writes.lock());
            if batch.is_empty() {
                return;
            }
            for f in batch {
                match f {
                    Fed::Written(o) => self.observe(&o),
                    Fed::Deleted(o) => self.forget(&o),
                }
            }
        }
    }

    /// Syncs one key that is ready now (controllers take turns, keys in queue order) and feeds
    /// the results of its writes into the caches; `None` when no key is ready.
    pub async fn step(&mut self) -> Option<Stepped> {
        if !self.dynamic.is_empty()
            && (self.dynamic.rediscover.take()
                || self.next_discovery.is_none_or(|t| self.clock.now() >= t))
        {
            self.rediscover().await;
        }
        let n = self.running.len();
        for i in 0..n {
            let idx = (self.next + i) % n;
            let Some(key) = self.running[idx].queue.try_get() else {
                continue;
            };
            self.next = (idx + 1) % n;
            let r = &self.running[idx];
            let (ctl, queue, applier) = (r.ctl.clone(), r.queue.clone(), r.applier.clone());
            let actions = ctl.sync(&key, &self.caches, self.clock.now());
            let acted = actions
                .iter()
                .any(|a| !matches!(a, crate::action::Action::Requeue(_)));
            let updated = updated_objects(&actions);
            let res = applier.apply(actions).await;
            ctl.applied(&key, &res);
            settle_key(&queue, &key, &res);
            self.drain_writes();
            if res.as_ref().is_err_and(|e| e.is_conflict()) {
                self.refetch(&updated).await;
            }
            let error = res.err().map(|e| e.to_string());
            return Some(Stepped {
                controller: ctl.name(),
                key,
                acted,
                error,
            });
        }
        None
    }

    /// Re-reads objects an update of which conflicted: someone else (an API server admission
    /// plugin, a host component) wrote them since the cache saw them. The live driver's
    /// informer would bring the newer version; here nothing else would, and the key would
    /// conflict forever.
    async fn refetch(&mut self, objects: &[(ApiResource, Option<String>, String)]) {
        for (r, ns, name) in objects {
            match self.client.get(r, ns.as_deref(), name).await {
                Ok(o) => self.observe(&o),
                Err(e) if e.is_not_found() => {
                    let mut gone = DynamicObject::new(&r.api_version(), &r.kind, name);
                    gone.metadata.namespace = ns.clone();
                    self.forget(&gone);
                }
                Err(_) => {}
            }
        }
    }

    /// When the earliest delayed key of any controller is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.running.iter().filter_map(|r| r.queue.next_due()).min()
    }

    /// Whether any key is ready now.
    pub fn has_ready(&self) -> bool {
        let now = self.clock.now();
        self.running
            .iter()
            .any(|r| !r.queue.is_empty() || r.queue.next_due().is_some_and(|t| t <= now))
    }
}

/// The objects `actions` update (main resource or status), to re-read after a conflict.
fn updated_objects(
    actions: &[crate::action::Action],
) -> Vec<(ApiResource, Option<String>, String)> {
    use crate::action::Action;
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Update { resource, object } | Action::UpdateStatus { resource, object } => {
                Some((
                    resource.clone(),
                    object.metadata.namespace.clone(),
                    object.name().to_string(),
                ))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testclient::{backup, backup_crd, backups, backups_discovered, Census, FakeApi};

    #[tokio::test]
    async fn caches_of_discovered_resources_follow_crds_and_the_clock() {
        let api = Arc::new(FakeApi::default());
        let census = Arc::new(Census::default());
        let clock = orch_types::clock::ManualClock::at_epoch_seconds(0);
        let mut s = Stepper::new(
            api.clone(),
            Arc::new(clock.clone()),
            vec![census.clone() as Arc<dyn Controller>],
            StepConfig::default(),
        );
        assert!(s.step().await.is_none());
        assert!(s.caches().meta(&backups()).is_none());
        // A CRD reaches the caches: the next step discovers and lists backups.
        api.discovered.lock().push(backups_discovered());
        api.put(&backups(), backup("b1"));
        s.observe(&backup_crd());
        let st = s.step().await.expect("the backup is synced");
        assert_eq!(st.key, "Backup|ns/b1");
        let meta = s.caches().meta(&backups()).expect("a cache of backups");
        assert!(meta.get_meta(Some("ns"), "b1").is_some());
        assert_eq!(s.caches().metadata().discovered(), [backups_discovered()]);
        // Written objects of the new resource reach its cache.
        s.observe(&backup("b2"));
        assert_eq!(s.step().await.expect("b2").key, "Backup|ns/b2");
        // The CRD goes away: the cache is dropped at the next step.
        api.discovered.lock().clear();
        s.forget(&backup_crd());
        assert!(s.step().await.is_none());
        assert!(s.caches().meta(&backups()).is_none());
        // Without a CRD change, discovery runs again once REDISCOVER has passed.
        api.discovered.lock().push(backups_discovered());
        assert!(s.step().await.is_none());
        clock.advance(REDISCOVER);
        assert!(s.step().await.is_some());
        assert!(s.caches().meta(&backups()).is_some());
        assert_eq!(
            *census.synced.lock(),
            ["Backup|ns/b1", "Backup|ns/b2", "Backup|ns/b1"]
        );
    }
}
