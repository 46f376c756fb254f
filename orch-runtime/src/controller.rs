//! The controller declaration: what a controller watches, how a change maps to the keys it
//! reconciles, and a synchronous `sync(key, caches, now) -> Vec<Action>` (kube-runtime's
//! `Controller::new(api).owns(child).watches(other, mapper)`, with the reconciler pure).
//!
//! A declaration is run by either driver: [`crate::live`] (informers, work queues, tokio
//! timers) or [`crate::step`] (the simulator's: caches fed from the results of its own writes,
//! queues pumped on a manual clock). Neither knows any controller; no controller knows which
//! driver runs it.
//!
//! ```
//! use k8s_openapi::api::apps::v1::ReplicaSet;
//! use k8s_openapi::api::core::v1::Pod;
//! use orch_runtime::action::Action;
//! use orch_runtime::controller::{trigger_owner, trigger_self, Caches, Controller, Watches};
//!
//! /// Counts the pods of each ReplicaSet (a controller that asks for nothing).
//! struct Census;
//! impl Controller for Census {
//!     fn name(&self) -> &'static str { "census" }
//!     fn component(&self) -> &'static str { "census-controller" }
//!     fn watches(&self, w: &mut Watches) {
//!         w.watch::<ReplicaSet>(trigger_self());
//!         w.watch::<Pod>(trigger_owner("ReplicaSet"));
//!     }
//!     fn sync(&self, key: &str, caches: &Caches, _now: jiff::Timestamp) -> Vec<Action> {
//!         let Some(rs) = caches.get::<ReplicaSet>().get(key) else { return vec![] };
//!         let uid = rs.metadata.uid.as_deref().unwrap_or("");
//!         let _pods = caches.get::<Pod>().owned_by(uid).len();
//!         vec![]
//!     }
//! }
//! ```

use crate::action::Action;
use crate::expectations::Expectations;
use crate::object::{controller_key, key_of, Kind, Object};
use crate::store::{Change, Store, Writer};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use orch_types::client::ClientError;
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// One controller, declared once and run by either driver.
pub trait Controller: Send + Sync + 'static {
    /// The name `--controllers` knows it by (upstream's, e.g. `replicaset`).
    fn name(&self) -> &'static str;
    /// Event source and field manager of its writes (e.g. `replicaset-controller`).
    fn component(&self) -> &'static str;
    /// Declares what it watches and how each change maps to keys.
    fn watches(&self, w: &mut Watches);
    /// Reconciles one key from the caches at `now`: what to do, as data.
    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action>;
    /// Expectations its triggers lower and the applier raises (controllers of pods).
    fn expectations(&self) -> Option<Expectations> {
        None
    }
    /// Told how applying the actions of the last sync of `key` went.
    fn applied(&self, _key: &str, _result: &Result<Option<Duration>, ClientError>) {}
    /// Keys synced at once by the live driver; `Some(1)` serializes (node IPAM).
    fn max_workers(&self) -> Option<usize> {
        None
    }
}

/// Maps a change of a `K` to the keys to reconcile.
pub type Mapper<K> = Arc<dyn Fn(&Change<K>, &Caches, &mut Vec<String>) + Send + Sync>;

/// A change seen through metadata only (the garbage collector's view of every kind, like
/// upstream's metadata informers).
#[derive(Debug, Clone, Copy)]
pub enum MetaChange<'a> {
    /// A new object.
    Added(&'a ObjectMeta),
    /// An object changed (old, new).
    Updated(&'a ObjectMeta, &'a ObjectMeta),
    /// An object went away (its last state).
    Deleted(&'a ObjectMeta),
    /// Periodic resync.
    Resync(&'a ObjectMeta),
}

impl<'a> MetaChange<'a> {
    /// The current (or last) metadata.
    pub fn meta(&self) -> &'a ObjectMeta {
        match self {
            Self::Added(m) | Self::Updated(_, m) | Self::Deleted(m) | Self::Resync(m) => m,
        }
    }

    fn of<K: Object>(c: &'a Change<K>) -> Self {
        match c {
            Change::Added(o) => Self::Added(o.meta()),
            Change::Updated(a, b) => Self::Updated(a.meta(), b.meta()),
            Change::Deleted(o) => Self::Deleted(o.meta()),
            Change::Resync(o) => Self::Resync(o.meta()),
        }
    }
}

/// Maps a metadata change of an object of `resource` to keys.
pub type MetaMapper =
    Arc<dyn Fn(&ApiResource, MetaChange<'_>, &Caches, &mut Vec<String>) + Send + Sync>;

/// Keys the controller's own objects: `namespace/name` of the changed object.
pub fn trigger_self<K: Object>() -> Mapper<K> {
    Arc::new(|c, _, keys| keys.push(key_of(c.object().meta())))
}

/// Keys the controller (of `kind`) of the changed object, before and after the change
/// (kube-runtime `trigger_owners` for controller references).
pub fn trigger_owner<K: Object>(kind: &'static str) -> Mapper<K> {
    Arc::new(move |c, _, keys| {
        if let Change::Updated(old, _) = c {
            if let Some(k) = controller_key(old.meta(), kind) {
                keys.push(k);
            }
        }
        if let Some(k) = controller_key(c.object().meta(), kind) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    })
}

pub(crate) enum Decl {
    Typed {
        resource: ApiResource,
        make: fn(ApiResource) -> Box<dyn Slot>,
        /// `Mapper<K>`, or `None` for a cache that triggers nothing.
        mapper: Option<Box<dyn Any + Send + Sync>>,
        /// Listed this often instead of watched ([`Watches::polls`]).
        poll: Option<Duration>,
    },
    Meta {
        resources: Vec<ApiResource>,
        mapper: MetaMapper,
    },
}

/// What a controller declares in [`Controller::watches`].
#[derive(Default)]
pub struct Watches {
    pub(crate) decls: Vec<Decl>,
    pub(crate) initial: Vec<String>,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches")
            .field("decls", &self.decls.len())
            .field("initial", &self.initial)
            .finish()
    }
}

impl Watches {
    /// Watches `K`; each change is mapped to keys by `mapper`.
    pub fn watch<K: Kind>(&mut self, mapper: Mapper<K>) -> &mut Self {
        self.decls.push(Decl::Typed {
            resource: K::api_resource(),
            make: make_slot::<K>,
            mapper: Some(Box::new(mapper)),
            poll: None,
        });
        self
    }

    /// Reads `K` from the caches without being triggered by it.
    pub fn reads<K: Kind>(&mut self) -> &mut Self {
        self.decls.push(Decl::Typed {
            resource: K::api_resource(),
            make: make_slot::<K>,
            mapper: None,
            poll: None,
        });
        self
    }

    /// Reads `K` from a cache the live driver fills by listing it every `every` instead of
    /// watching it: for resources served without `watch`, such as `metrics.k8s.io`. Such a
    /// cache counts as synced after its first list even if that failed (an API that is not
    /// there must not hold up every controller), and triggers nothing. The step driver's
    /// host feeds it like any other cache.
    pub fn polls<K: Kind>(&mut self, every: Duration) -> &mut Self {
        self.decls.push(Decl::Typed {
            resource: K::api_resource(),
            make: make_slot::<K>,
            mapper: None,
            poll: Some(every),
        });
        self
    }

    /// Watches the metadata of every object of `resources` (typed caches where another
    /// controller declared the kind, dynamic ones otherwise).
    pub fn watch_metadata(&mut self, resources: Vec<ApiResource>, mapper: MetaMapper) -> &mut Self {
        self.decls.push(Decl::Meta { resources, mapper });
        self
    }

    /// A key reconciled once the caches are synced (periodic controllers requeue it).
    pub fn initial_key(&mut self, key: &str) -> &mut Self {
        self.initial.push(key.into());
        self
    }
}

/// Metadata of the objects of one resource, whatever the type of its cache.
pub trait MetaStore: Send + Sync {
    /// The object `name` in `namespace`, as a metadata-only object (`data` empty for typed
    /// caches).
    fn get_meta(&self, namespace: Option<&str>, name: &str) -> Option<Arc<DynamicObject>>;
    /// Objects with an ownerReference to `uid`, metadata only, sorted by key.
    fn owned_by_meta(&self, uid: &str) -> Vec<Arc<DynamicObject>>;
    /// Objects of one namespace, metadata only, sorted by key.
    fn namespace_meta(&self, namespace: &str) -> Vec<Arc<DynamicObject>>;
    /// Calls `f` with the metadata of `name` in `namespace`, if present, without copying it.
    fn peek(&self, namespace: Option<&str>, name: &str, f: &mut dyn FnMut(&ObjectMeta));
}

fn meta_only<K: Object>(r: &ApiResource, o: &K) -> Arc<DynamicObject> {
    let mut d = DynamicObject::new(&r.api_version(), &r.kind, "");
    d.metadata = o.meta().clone();
    Arc::new(d)
}

struct TypedMeta<K> {
    resource: ApiResource,
    store: Store<K>,
}

impl<K: Object> MetaStore for TypedMeta<K> {
    fn get_meta(&self, namespace: Option<&str>, name: &str) -> Option<Arc<DynamicObject>> {
        self.store
            .get_in(namespace, name)
            .map(|o| meta_only(&self.resource, o.as_ref()))
    }
    fn owned_by_meta(&self, uid: &str) -> Vec<Arc<DynamicObject>> {
        self.store
            .owned_by(uid)
            .iter()
            .map(|o| meta_only(&self.resource, o.as_ref()))
            .collect()
    }
    fn namespace_meta(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        self.store
            .list_namespace(namespace)
            .iter()
            .map(|o| meta_only(&self.resource, o.as_ref()))
            .collect()
    }
    fn peek(&self, namespace: Option<&str>, name: &str, f: &mut dyn FnMut(&ObjectMeta)) {
        if let Some(o) = self.store.get_in(namespace, name) {
            f(o.meta());
        }
    }
}

struct DynamicMeta(Store<DynamicObject>);

impl MetaStore for DynamicMeta {
    fn get_meta(&self, namespace: Option<&str>, name: &str) -> Option<Arc<DynamicObject>> {
        self.0.get_in(namespace, name)
    }
    fn owned_by_meta(&self, uid: &str) -> Vec<Arc<DynamicObject>> {
        self.0.owned_by(uid)
    }
    fn namespace_meta(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        self.0.list_namespace(namespace)
    }
    fn peek(&self, namespace: Option<&str>, name: &str, f: &mut dyn FnMut(&ObjectMeta)) {
        if let Some(o) = self.0.get_in(namespace, name) {
            f(&o.metadata);
        }
    }
}

/// Metadata views by resource key, with their resources.
type MetaViews = BTreeMap<String, (ApiResource, Arc<dyn MetaStore>)>;

/// The caches every running controller reads: one store per watched kind, shared.
#[derive(Clone, Default)]
pub struct Caches {
    typed: Arc<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    meta: Arc<MetaViews>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("resources", &self.meta.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The key of a resource among the caches: `apiVersion/kind`.
pub(crate) fn resource_key(api_version: &str, kind: &str) -> String {
    format!("{api_version}/{kind}")
}

impl Caches {
    /// The store of `K`. A kind no running controller declared has an empty store that is never
    /// filled: declare what `sync` reads with [`Watches::watch`] or [`Watches::reads`].
    pub fn get<K: Kind>(&self) -> Store<K> {
        self.typed
            .get(&TypeId::of::<K>())
            .and_then(|s| s.downcast_ref::<Store<K>>())
            .cloned()
            .unwrap_or_else(|| Writer::new().store())
    }

    /// The metadata view of `resource`, if a controller watches it.
    pub fn meta(&self, resource: &ApiResource) -> Option<&Arc<dyn MetaStore>> {
        self.meta
            .get(&resource_key(&resource.api_version(), &resource.kind))
            .map(|(_, s)| s)
    }

    /// The metadata view of the resource of `apiVersion` and `kind` (any version of a group
    /// matches, as owner references name one version), with its resource.
    pub fn meta_by_kind(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Option<(&ApiResource, &Arc<dyn MetaStore>)> {
        if let Some((r, s)) = self.meta.get(&resource_key(api_version, kind)) {
            return Some((r, s));
        }
        let (group, _) = orch_types::registry::split_api_version(api_version);
        self.meta
            .values()
            .find(|(r, _)| !group.is_empty() && r.group == group && r.kind == kind)
            .map(|(r, s)| (r, s))
    }

    /// Every resource with a metadata view, in key order.
    pub fn all_meta(&self) -> impl Iterator<Item = (&ApiResource, &Arc<dyn MetaStore>)> {
        self.meta.values().map(|(r, s)| (r, s))
    }
}

/// Where the keys a trigger produced go (a work queue's `add`).
pub(crate) type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// One cache and its change handlers, type-erased so drivers can hold every kind in one map.
pub(crate) trait Slot: Send {
    fn resource(&self) -> &ApiResource;
    fn store_any(&self) -> Option<(TypeId, Box<dyn Any + Send + Sync>)>;
    fn meta_store(&self) -> Arc<dyn MetaStore>;
    fn add_mapper(&mut self, mapper: &(dyn Any + Send + Sync), caches: &Caches, sink: Sink);
    fn add_meta_mapper(&mut self, mapper: MetaMapper, caches: &Caches, sink: Sink);
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Step driver: takes a written object (or its last state when `deleted`).
    fn feed(&mut self, obj: &DynamicObject, deleted: bool);
    /// Step driver: marks the cache synced.
    fn mark_synced(&mut self);
    /// Live driver: list every `every` instead of watching (the shortest asked for wins).
    fn poll_every(&mut self, every: Duration);
    /// Live driver: an informer over this cache, started by the returned closure.
    fn into_informer(
        self: Box<Self>,
        client: orch_types::client::SharedClient,
        resync: Option<Duration>,
    ) -> Box<dyn crate::live::RunInformer>;
}

pub(crate) struct TypedSlot<K: Object> {
    pub(crate) resource: ApiResource,
    pub(crate) writer: Writer<K>,
    pub(crate) handlers: Vec<crate::informer::Handler<K>>,
    dynamic: bool,
    poll: Option<Duration>,
}

impl<K: Object> TypedSlot<K> {
    pub(crate) fn new(resource: ApiResource, dynamic: bool) -> Self {
        Self {
            resource,
            writer: Writer::new(),
            handlers: Vec::new(),
            dynamic,
            poll: None,
        }
    }

    pub(crate) fn emit(&self, c: &Change<K>) {
        for h in &self.handlers {
            h(c);
        }
    }

    /// Step driver: takes a typed object as is (shared, no conversion).
    pub(crate) fn feed_typed(&mut self, obj: Arc<K>) {
        let c = self.writer.apply_arc(obj);
        self.emit(&c);
    }

    /// Step driver: replaces the whole content (a polled cache's list).
    pub(crate) fn feed_all(&mut self, items: Vec<K>) {
        let rv = self.writer.store().resource_version();
        for c in self.writer.replace(items, &rv) {
            self.emit(&c);
        }
    }
}

fn make_slot<K: Kind>(resource: ApiResource) -> Box<dyn Slot> {
    Box::new(TypedSlot::<K>::new(resource, false))
}

pub(crate) fn make_dynamic_slot(resource: ApiResource) -> Box<dyn Slot> {
    Box::new(TypedSlot::<DynamicObject>::new(resource, true))
}

impl<K: Object> Slot for TypedSlot<K> {
    fn resource(&self) -> &ApiResource {
        &self.resource
    }
    fn store_any(&self) -> Option<(TypeId, Box<dyn Any + Send + Sync>)> {
        (!self.dynamic).then(|| {
            (
                TypeId::of::<K>(),
                Box::new(self.writer.store()) as Box<dyn Any + Send + Sync>,
            )
        })
    }
    fn meta_store(&self) -> Arc<dyn MetaStore> {
        let store = self.writer.store();
        // A dynamic cache already holds wire objects: hand them out as they are.
        let any: Box<dyn Any> = Box::new(store.clone());
        match any.downcast::<Store<DynamicObject>>() {
            Ok(d) => Arc::new(DynamicMeta(*d)),
            Err(_) => Arc::new(TypedMeta {
                resource: self.resource.clone(),
                store,
            }),
        }
    }
    fn add_mapper(&mut self, mapper: &(dyn Any + Send + Sync), caches: &Caches, sink: Sink) {
        let Some(m) = mapper.downcast_ref::<Mapper<K>>() else {
            return;
        };
        let (m, caches) = (m.clone(), caches.clone());
        self.handlers.push(Arc::new(move |c: &Change<K>| {
            let mut keys = Vec::new();
            m(c, &caches, &mut keys);
            for k in &keys {
                sink(k);
            }
        }));
    }
    fn add_meta_mapper(&mut self, mapper: MetaMapper, caches: &Caches, sink: Sink) {
        let (r, caches) = (self.resource.clone(), caches.clone());
        self.handlers.push(Arc::new(move |c: &Change<K>| {
            let mut keys = Vec::new();
            mapper(&r, MetaChange::of(c), &caches, &mut keys);
            for k in &keys {
                sink(k);
            }
        }));
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn feed(&mut self, obj: &DynamicObject, deleted: bool) {
        match K::from_dynamic(obj) {
            Ok(o) => {
                let c = if deleted {
                    self.writer.delete(o)
                } else {
                    self.writer.apply(o)
                };
                self.emit(&c);
            }
            Err(e) => {
                tracing::warn!(resource = %self.resource.plural, error = %e, "skipping undecodable object")
            }
        }
    }
    fn mark_synced(&mut self) {
        self.writer.mark_synced();
    }
    fn poll_every(&mut self, every: Duration) {
        self.poll = Some(self.poll.map_or(every, |p| p.min(every)));
    }
    fn into_informer(
        self: Box<Self>,
        client: orch_types::client::SharedClient,
        resync: Option<Duration>,
    ) -> Box<dyn crate::live::RunInformer> {
        let this = *self;
        let mut inf = crate::informer::Informer::from_parts(client, this.resource, this.writer);
        match this.poll {
            Some(every) => inf = inf.poll(every),
            None => {
                if let Some(r) = resync {
                    inf = inf.resync(r);
                }
            }
        }
        for h in this.handlers {
            inf.on_change(h);
        }
        Box::new(inf)
    }
}

/// The caches and triggers of a set of controllers, built the same way by both drivers.
pub(crate) struct Wiring {
    /// Slots by resource key.
    pub(crate) slots: BTreeMap<String, Box<dyn Slot>>,
    pub(crate) caches: Caches,
    /// Initial keys of each controller, in controller order.
    pub(crate) initial: Vec<Vec<String>>,
    /// The work queue of each controller, in controller order.
    pub(crate) queues: Vec<crate::queue::WorkQueue>,
}

/// Builds one cache per declared kind (typed where any controller declared the type, dynamic
/// for kinds only watched through metadata), one work queue per controller on `clock`, and
/// hooks every controller's triggers to its queue.
pub(crate) fn wire(
    controllers: &[Arc<dyn Controller>],
    clock: &orch_types::clock::SharedClock,
) -> Wiring {
    let queues: Vec<crate::queue::WorkQueue> = controllers
        .iter()
        .map(|_| crate::queue::WorkQueue::new(clock.clone()))
        .collect();
    let sinks: Vec<Sink> = queues
        .iter()
        .map(|q| {
            let q = q.clone();
            Arc::new(move |k: &str| q.add(k)) as Sink
        })
        .collect();
    wire_sinks(controllers, &sinks, queues)
}

fn wire_sinks(
    controllers: &[Arc<dyn Controller>],
    sinks: &[Sink],
    queues: Vec<crate::queue::WorkQueue>,
) -> Wiring {
    let declared: Vec<Watches> = controllers
        .iter()
        .map(|c| {
            let mut w = Watches::default();
            c.watches(&mut w);
            w
        })
        .collect();
    let mut slots: BTreeMap<String, Box<dyn Slot>> = BTreeMap::new();
    // Typed caches first, so a kind watched both typed and through metadata has one cache.
    for w in &declared {
        for d in &w.decls {
            if let Decl::Typed {
                resource,
                make,
                poll,
                ..
            } = d
            {
                let k = resource_key(&resource.api_version(), &resource.kind);
                let slot = slots.entry(k).or_insert_with(|| make(resource.clone()));
                if let Some(every) = poll {
                    slot.poll_every(*every);
                }
            }
        }
    }
    for w in &declared {
        for d in &w.decls {
            if let Decl::Meta { resources, .. } = d {
                for r in resources {
                    let k = resource_key(&r.api_version(), &r.kind);
                    slots
                        .entry(k)
                        .or_insert_with(|| make_dynamic_slot(r.clone()));
                }
            }
        }
    }
    let mut typed = HashMap::new();
    let mut meta = BTreeMap::new();
    for (k, s) in &slots {
        if let Some((t, st)) = s.store_any() {
            typed.insert(t, st);
        }
        meta.insert(k.clone(), (s.resource().clone(), s.meta_store()));
    }
    let caches = Caches {
        typed: Arc::new(typed),
        meta: Arc::new(meta),
    };
    let mut initial = Vec::new();
    for (w, sink) in declared.into_iter().zip(sinks) {
        for d in w.decls {
            match d {
                Decl::Typed {
                    resource,
                    mapper: Some(m),
                    ..
                } => {
                    let k = resource_key(&resource.api_version(), &resource.kind);
                    if let Some(s) = slots.get_mut(&k) {
                        s.add_mapper(m.as_ref(), &caches, sink.clone());
                    }
                }
                Decl::Typed { mapper: None, .. } => {}
                Decl::Meta { resources, mapper } => {
                    for r in resources {
                        let k = resource_key(&r.api_version(), &r.kind);
                        if let Some(s) = slots.get_mut(&k) {
                            s.add_meta_mapper(mapper.clone(), &caches, sink.clone());
                        }
                    }
                }
            }
        }
        initial.push(w.initial);
    }
    Wiring {
        slots,
        caches,
        initial,
        queues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use parking_lot::Mutex;

    struct Rs;
    impl Controller for Rs {
        fn name(&self) -> &'static str {
            "rs"
        }
        fn component(&self) -> &'static str {
            "rs-controller"
        }
        fn watches(&self, w: &mut Watches) {
            w.watch::<ReplicaSet>(trigger_self());
            w.watch::<Pod>(trigger_owner("ReplicaSet"));
        }
        fn sync(&self, _: &str, _: &Caches, _: Timestamp) -> Vec<Action> {
            vec![]
        }
    }

    struct Gc;
    impl Controller for Gc {
        fn name(&self) -> &'static str {
            "gc"
        }
        fn component(&self) -> &'static str {
            "gc"
        }
        fn watches(&self, w: &mut Watches) {
            w.watch_metadata(
                vec![
                    ApiResource::of::<Pod>(),
                    ApiResource::of::<k8s_openapi::api::core::v1::ConfigMap>(),
                ],
                Arc::new(|r, c, _, keys| keys.push(format!("{}|{}", r.kind, key_of(c.meta())))),
            );
        }
        fn sync(&self, _: &str, _: &Caches, _: Timestamp) -> Vec<Action> {
            vec![]
        }
    }

    fn pod(name: &str, owner: Option<&str>) -> DynamicObject {
        let mut p = DynamicObject::new("v1", "Pod", name);
        p.metadata.namespace = Some("ns".into());
        p.metadata.owner_references = owner.map(|o| {
            vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: o.into(),
                uid: format!("uid-{o}"),
                controller: Some(true),
                ..Default::default()
            }]
        });
        p
    }

    #[test]
    fn one_cache_per_kind_and_triggers_route_to_each_controllers_sink() {
        let seen: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
        let sinks: Vec<Sink> = (0..2)
            .map(|i| {
                let s = seen.clone();
                Arc::new(move |k: &str| s.lock().push((i, k.to_string()))) as Sink
            })
            .collect();
        let ctls: Vec<Arc<dyn Controller>> = vec![Arc::new(Rs), Arc::new(Gc)];
        let mut w = wire_sinks(&ctls, &sinks, Vec::new());
        // Pod is typed (the ReplicaSet controller declared it); ConfigMap is dynamic.
        assert_eq!(w.slots.len(), 3);
        assert!(w.slots["v1/Pod"].store_any().is_some());
        assert!(w.slots["v1/ConfigMap"].store_any().is_none());
        w.slots
            .get_mut("v1/Pod")
            .unwrap()
            .feed(&pod("a", Some("web")), false);
        w.slots
            .get_mut("v1/Pod")
            .unwrap()
            .feed(&pod("b", None), false);
        assert_eq!(
            *seen.lock(),
            [
                (0, "ns/web".to_string()),
                (1, "Pod|ns/a".to_string()),
                (1, "Pod|ns/b".to_string()),
            ]
        );
        // The typed store serves both the typed read and the metadata view.
        assert_eq!(w.caches.get::<Pod>().len(), 2);
        let m = w.caches.meta(&ApiResource::of::<Pod>()).unwrap();
        assert_eq!(m.owned_by_meta("uid-web").len(), 1);
        assert_eq!(w.caches.get::<Pod>().orphans_in("ns").len(), 1);
        // An undeclared kind reads as an empty store.
        assert!(w
            .caches
            .get::<k8s_openapi::api::core::v1::Node>()
            .is_empty());
    }
}
