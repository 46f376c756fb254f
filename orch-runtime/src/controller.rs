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
use orch_types::client::{ClientError, DiscoveredResource};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use parking_lot::RwLock;
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Picks the resources a [`Watches::watch_discovered_metadata`] declaration watches among
/// those discovery lists.
pub type ResourceFilter = Arc<dyn Fn(&DiscoveredResource) -> bool + Send + Sync>;

/// How often the drivers discover the API again when no CustomResourceDefinition change
/// asked for it first (upstream's garbage collector and namespace controller re-read
/// discovery every 30 s).
pub const REDISCOVER: Duration = Duration::from_secs(30);

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
        /// Declared through [`Watches::watch_dynamic`] / [`Watches::reads_dynamic`].
        dynamic: bool,
    },
    Meta {
        resources: Vec<ApiResource>,
        mapper: MetaMapper,
    },
    Discovered {
        filter: ResourceFilter,
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
    /// Whether it declares a discovered set.
    pub(crate) fn has_discovered(&self) -> bool {
        self.decls
            .iter()
            .any(|d| matches!(d, Decl::Discovered { .. }))
    }

    /// Watches `K`; each change is mapped to keys by `mapper`.
    pub fn watch<K: Kind>(&mut self, mapper: Mapper<K>) -> &mut Self {
        self.decls.push(Decl::Typed {
            resource: K::api_resource(),
            make: make_slot::<K>,
            mapper: Some(Box::new(mapper)),
            poll: None,
            dynamic: false,
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
            dynamic: false,
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
            dynamic: false,
        });
        self
    }

    /// Watches every object of `resource` as a [`DynamicObject`] (a kind known only at run
    /// time, such as one a CustomResourceDefinition defines: [`crate::custom::resource`]);
    /// `sync` reads the cache through [`Caches::dynamic`]. Where another controller watches
    /// the same resource typed, the cache is the typed one: this mapper still sees every
    /// change (converted), but [`Caches::dynamic`] has no store for it.
    pub fn watch_dynamic(
        &mut self,
        resource: ApiResource,
        mapper: Mapper<DynamicObject>,
    ) -> &mut Self {
        self.decls.push(Decl::Typed {
            resource,
            make: make_dynamic_slot,
            mapper: Some(Box::new(mapper)),
            poll: None,
            dynamic: true,
        });
        self
    }

    /// Reads every object of `resource` from a [`DynamicObject`] cache ([`Caches::dynamic`])
    /// without being triggered by it.
    pub fn reads_dynamic(&mut self, resource: ApiResource) -> &mut Self {
        self.decls.push(Decl::Typed {
            resource,
            make: make_dynamic_slot,
            mapper: None,
            poll: None,
            dynamic: true,
        });
        self
    }

    /// Watches the metadata of every object of `resources` (typed caches where another
    /// controller declared the kind, dynamic ones otherwise).
    pub fn watch_metadata(&mut self, resources: Vec<ApiResource>, mapper: MetaMapper) -> &mut Self {
        self.decls.push(Decl::Meta { resources, mapper });
        self
    }

    /// Watches the metadata of every resource the API serves that `filter` accepts, built-in
    /// or defined by a CustomResourceDefinition: a set that changes while the controller runs,
    /// as upstream's garbage collector (`pkg/controller/garbagecollector/garbagecollector.go`,
    /// `Sync`) and namespace deleter (`pkg/controller/namespace/deletion/
    /// namespaced_resources_deleter.go`) follow discovery.
    ///
    /// Both drivers discover the API through [`orch_types::client::Client::discover`] when
    /// they start, again soon after a CustomResourceDefinition changes, and every
    /// [`REDISCOVER`]. A resource that appears gets a cache (the typed one where another
    /// declaration has it, a dynamic one otherwise) whose first list reaches `mapper` as
    /// additions; a resource that goes away has its dynamic cache stopped and dropped from
    /// [`Caches::metadata`]. Whenever the set changes, `mapper` also sees every object of
    /// every resource it watches as a [`MetaChange::Resync`] (a reference to a kind that just
    /// became known can now be resolved). [`MetaIndex::discovered`] tells `sync` which
    /// resources were discovered.
    pub fn watch_discovered_metadata(
        &mut self,
        filter: ResourceFilter,
        mapper: MetaMapper,
    ) -> &mut Self {
        self.decls.push(Decl::Discovered { filter, mapper });
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
    /// Calls `f` with the metadata of every object, in key order.
    fn for_each_meta(&self, f: &mut dyn FnMut(&ObjectMeta));
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
    fn for_each_meta(&self, f: &mut dyn FnMut(&ObjectMeta)) {
        for o in self.store.list() {
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
    fn for_each_meta(&self, f: &mut dyn FnMut(&ObjectMeta)) {
        for o in self.0.list() {
            f(&o.metadata);
        }
    }
}

/// Metadata views by resource key, with their resources.
type MetaViews = BTreeMap<String, (ApiResource, Arc<dyn MetaStore>)>;

/// The metadata views of the caches at one moment, and the discovery they follow: what a
/// sync reads as one consistent picture while the drivers add and drop dynamic caches.
#[derive(Default)]
pub struct MetaIndex {
    views: MetaViews,
    discovered: Vec<DiscoveredResource>,
}

impl std::fmt::Debug for MetaIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaIndex")
            .field("resources", &self.views.keys().collect::<Vec<_>>())
            .field("discovered", &self.discovered.len())
            .finish()
    }
}

impl MetaIndex {
    /// The metadata view of `resource`, if a controller watches it.
    pub fn get(&self, resource: &ApiResource) -> Option<&Arc<dyn MetaStore>> {
        self.views
            .get(&resource_key(&resource.api_version(), &resource.kind))
            .map(|(_, s)| s)
    }

    /// The metadata view of the resource of `apiVersion` and `kind` (any version of a group
    /// matches, as owner references name one version), with its resource.
    pub fn by_kind(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Option<(&ApiResource, &Arc<dyn MetaStore>)> {
        if let Some((r, s)) = self.views.get(&resource_key(api_version, kind)) {
            return Some((r, s));
        }
        let (group, _) = orch_types::registry::split_api_version(api_version);
        self.views
            .values()
            .find(|(r, _)| !group.is_empty() && r.group == group && r.kind == kind)
            .map(|(r, s)| (r, s))
    }

    /// Every resource with a metadata view, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&ApiResource, &Arc<dyn MetaStore>)> {
        self.views.values().map(|(r, s)| (r, s))
    }

    /// What the last discovery listed (empty when no controller watches a discovered set).
    pub fn discovered(&self) -> &[DiscoveredResource] {
        &self.discovered
    }
}

/// The caches every running controller reads: one store per watched kind, shared.
#[derive(Clone, Default)]
pub struct Caches {
    typed: Arc<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    /// Stores of the resources declared with [`Watches::watch_dynamic`] or
    /// [`Watches::reads_dynamic`], by resource key.
    dynamic: Arc<HashMap<String, Store<DynamicObject>>>,
    meta: Arc<RwLock<Arc<MetaIndex>>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field(
                "resources",
                &self.metadata().views.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The key of a resource among the caches: `apiVersion/kind`.
pub(crate) fn resource_key(api_version: &str, kind: &str) -> String {
    format!("{api_version}/{kind}")
}

fn key_of_resource(r: &ApiResource) -> String {
    resource_key(&r.api_version(), &r.kind)
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

    /// The store of `resource` declared with [`Watches::watch_dynamic`] or
    /// [`Watches::reads_dynamic`]: whole objects in their wire form. `None` when no running
    /// controller declared it so, or when another declared it typed (read it with
    /// [`Caches::get`] then, or its metadata with [`Caches::meta`]).
    pub fn dynamic(&self, resource: &ApiResource) -> Option<Store<DynamicObject>> {
        self.dynamic.get(&key_of_resource(resource)).cloned()
    }

    /// The metadata views now (a snapshot: caches the drivers add or drop later are not in it).
    pub fn metadata(&self) -> Arc<MetaIndex> {
        self.meta.read().clone()
    }

    /// The metadata view of `resource`, if a controller watches it.
    pub fn meta(&self, resource: &ApiResource) -> Option<Arc<dyn MetaStore>> {
        self.metadata().get(resource).cloned()
    }

    /// The metadata view of the resource of `apiVersion` and `kind` (any version of a group
    /// matches), with its resource ([`MetaIndex::by_kind`]).
    pub fn meta_by_kind(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Option<(ApiResource, Arc<dyn MetaStore>)> {
        self.metadata()
            .by_kind(api_version, kind)
            .map(|(r, s)| (r.clone(), s.clone()))
    }

    fn set_metadata(&self, index: MetaIndex) {
        *self.meta.write() = Arc::new(index);
    }
}

/// Where the keys a trigger produced go (a work queue's `add`).
pub(crate) type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// One cache and its change handlers, type-erased so drivers can hold every kind in one map.
pub(crate) trait Slot: Send {
    fn resource(&self) -> &ApiResource;
    fn store_any(&self) -> Option<(TypeId, Box<dyn Any + Send + Sync>)>;
    /// The store of a dynamic cache (`None` for a typed one).
    fn dynamic_store(&self) -> Option<Store<DynamicObject>>;
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

/// A typed change in the wire form (`None` if an object does not convert).
fn dynamic_change<K: Object>(c: &Change<K>) -> Option<Change<DynamicObject>> {
    let d = |o: &Arc<K>| o.to_dynamic().ok().map(Arc::new);
    Some(match c {
        Change::Added(o) => Change::Added(d(o)?),
        Change::Updated(a, b) => Change::Updated(d(a)?, d(b)?),
        Change::Deleted(o) => Change::Deleted(d(o)?),
        Change::Resync(o) => Change::Resync(d(o)?),
    })
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
    fn dynamic_store(&self) -> Option<Store<DynamicObject>> {
        let any: Box<dyn Any> = Box::new(self.writer.store());
        any.downcast::<Store<DynamicObject>>().ok().map(|s| *s)
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
            // A dynamic declaration of a resource another controller declared typed: the
            // mapper sees the changes in their wire form.
            if let Some(m) = mapper.downcast_ref::<Mapper<DynamicObject>>() {
                let (m, caches) = (m.clone(), caches.clone());
                self.handlers.push(Arc::new(move |c: &Change<K>| {
                    let Some(c) = dynamic_change(c) else { return };
                    let mut keys = Vec::new();
                    m(&c, &caches, &mut keys);
                    for k in &keys {
                        sink(k);
                    }
                }));
            }
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
            Err(_) if deleted => {
                // A name-only tombstone (the host's `forget`): the cached state goes.
                if let Some(c) = self.writer.delete_key(&key_of(&obj.metadata)) {
                    self.emit(&c);
                }
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
    /// Slots by resource key: the declared ones and those of the first discovery.
    pub(crate) slots: BTreeMap<String, Box<dyn Slot>>,
    pub(crate) caches: Caches,
    /// Initial keys of each controller, in controller order.
    pub(crate) initial: Vec<Vec<String>>,
    /// The work queue of each controller, in controller order.
    pub(crate) queues: Vec<crate::queue::WorkQueue>,
    /// The declarations of discovered sets, for the drivers to follow discovery.
    pub(crate) dynamic: Dynamic,
}

/// Raised when a CustomResourceDefinition changed: the drivers discover the API again.
#[derive(Debug, Default)]
pub(crate) struct Rediscover {
    flag: AtomicBool,
    /// Woken on every raise (the live driver waits on it).
    pub(crate) notify: tokio::sync::Notify,
}

impl Rediscover {
    fn raise(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Whether it was raised since the last call (and lowers it).
    pub(crate) fn take(&self) -> bool {
        self.flag.swap(false, Ordering::SeqCst)
    }
}

/// One [`Watches::watch_discovered_metadata`] declaration, wired.
struct DynamicDecl {
    filter: ResourceFilter,
    mapper: MetaMapper,
    sink: Sink,
    /// Keys of the resources it watches now.
    selected: Arc<RwLock<BTreeSet<String>>>,
}

/// What the wiring keeps to follow discovery: the discovered-set declarations, the views of
/// the declared caches (never dropped) and of the caches only a discovered set asked for.
pub(crate) struct Dynamic {
    decls: Vec<DynamicDecl>,
    fixed: MetaViews,
    discovered: MetaViews,
    caches: Caches,
    pub(crate) rediscover: Arc<Rediscover>,
}

impl std::fmt::Debug for Dynamic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dynamic")
            .field("decls", &self.decls.len())
            .field("discovered", &self.discovered.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What one discovery changed.
pub(crate) struct Delta {
    /// New caches (handlers attached) for the driver to fill and start.
    pub(crate) added: Vec<(String, Box<dyn Slot>)>,
    /// Keys of the caches to stop: their resources are no longer served.
    pub(crate) removed: Vec<String>,
    /// The declarations whose set changed, for [`Dynamic::replay`] once the new caches
    /// are filled.
    pub(crate) changed: Vec<usize>,
}

impl Delta {
    /// Whether the discovery changed nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// `mapper`, called only while `key` is among the resources `selected`.
fn gated(selected: &Arc<RwLock<BTreeSet<String>>>, mapper: &MetaMapper, key: &str) -> MetaMapper {
    let (selected, mapper, key) = (selected.clone(), mapper.clone(), key.to_string());
    Arc::new(move |r, c, caches, keys| {
        if selected.read().contains(&key) {
            mapper(r, c, caches, keys);
        }
    })
}

/// The resource of CustomResourceDefinitions, whose changes make the drivers rediscover.
fn crd_resource() -> Option<ApiResource> {
    orch_types::registry::by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .map(|i| i.api_resource())
}

impl Dynamic {
    /// Whether any controller watches a discovered set (else the drivers never discover).
    pub(crate) fn is_empty(&self) -> bool {
        self.decls.is_empty()
    }

    fn attach(&self, key: &str, slot: &mut dyn Slot) {
        for d in &self.decls {
            slot.add_meta_mapper(
                gated(&d.selected, &d.mapper, key),
                &self.caches,
                d.sink.clone(),
            );
        }
    }

    /// Takes a discovery: each declaration's set is what its filter accepts of `discovered`;
    /// a resource no cache has gets a dynamic one, and dynamic caches of resources no set has
    /// any more are dropped from [`Caches::metadata`] (the driver stops them).
    pub(crate) fn apply(&mut self, discovered: Vec<DiscoveredResource>) -> Delta {
        let mut union: BTreeMap<String, ApiResource> = BTreeMap::new();
        let mut changed = Vec::new();
        for (i, d) in self.decls.iter().enumerate() {
            let set: BTreeSet<String> = discovered
                .iter()
                .filter(|r| (d.filter)(r))
                .map(|r| {
                    let k = key_of_resource(&r.resource);
                    union.entry(k.clone()).or_insert_with(|| r.resource.clone());
                    k
                })
                .collect();
            let mut cur = d.selected.write();
            if *cur != set {
                *cur = set;
                changed.push(i);
            }
        }
        let mut added = Vec::new();
        for (k, r) in &union {
            if self.fixed.contains_key(k) || self.discovered.contains_key(k) {
                continue;
            }
            let mut slot = make_dynamic_slot(r.clone());
            self.attach(k, slot.as_mut());
            self.discovered
                .insert(k.clone(), (r.clone(), slot.meta_store()));
            added.push((k.clone(), slot));
        }
        let removed: Vec<String> = self
            .discovered
            .keys()
            .filter(|k| !union.contains_key(*k))
            .cloned()
            .collect();
        for k in &removed {
            self.discovered.remove(k);
        }
        let mut views = self.fixed.clone();
        views.extend(self.discovered.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.caches.set_metadata(MetaIndex { views, discovered });
        Delta {
            added,
            removed,
            changed,
        }
    }

    /// Hands every object of every resource each of `changed` watches to its mapper as a
    /// resync.
    pub(crate) fn replay(&self, changed: &[usize]) {
        let index = self.caches.metadata();
        for d in changed.iter().filter_map(|i| self.decls.get(*i)) {
            let selected = d.selected.read().clone();
            for k in &selected {
                let Some((r, store)) = index.views.get(k) else {
                    continue;
                };
                let mut keys = Vec::new();
                store.for_each_meta(&mut |m| {
                    (d.mapper)(r, MetaChange::Resync(m), &self.caches, &mut keys)
                });
                for k in &keys {
                    (d.sink)(k);
                }
            }
        }
    }
}

/// Builds one cache per declared kind (typed where any controller declared the type, dynamic
/// for kinds only watched through metadata) and per resource of `discovered` a discovered set
/// watches, one work queue per controller on `clock`, and hooks every controller's triggers
/// to its queue.
pub(crate) fn wire(
    controllers: &[Arc<dyn Controller>],
    clock: &orch_types::clock::SharedClock,
    discovered: Vec<DiscoveredResource>,
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
    wire_sinks(controllers, &sinks, queues, discovered)
}

fn wire_sinks(
    controllers: &[Arc<dyn Controller>],
    sinks: &[Sink],
    queues: Vec<crate::queue::WorkQueue>,
    discovered: Vec<DiscoveredResource>,
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
    // Typed caches first, so a kind watched typed and dynamically or through metadata has
    // one cache, the typed one.
    for pass_dynamic in [false, true] {
        for w in &declared {
            for d in &w.decls {
                if let Decl::Typed {
                    resource,
                    make,
                    poll,
                    dynamic,
                    ..
                } = d
                {
                    if *dynamic != pass_dynamic {
                        continue;
                    }
                    let k = key_of_resource(resource);
                    let slot = slots.entry(k).or_insert_with(|| make(resource.clone()));
                    if let Some(every) = poll {
                        slot.poll_every(*every);
                    }
                }
            }
        }
    }
    let dynamic_keys: BTreeSet<String> = declared
        .iter()
        .flat_map(|w| &w.decls)
        .filter_map(|d| match d {
            Decl::Typed {
                resource,
                dynamic: true,
                ..
            } => Some(key_of_resource(resource)),
            _ => None,
        })
        .collect();
    let any_discovered = declared
        .iter()
        .any(|w| w.decls.iter().any(|d| matches!(d, Decl::Discovered { .. })));
    let crd = crd_resource().filter(|_| any_discovered);
    for w in &declared {
        for d in &w.decls {
            if let Decl::Meta { resources, .. } = d {
                for r in resources {
                    slots
                        .entry(key_of_resource(r))
                        .or_insert_with(|| make_dynamic_slot(r.clone()));
                }
            }
        }
    }
    if let Some(r) = &crd {
        slots
            .entry(key_of_resource(r))
            .or_insert_with(|| make_dynamic_slot(r.clone()));
    }
    let mut typed = HashMap::new();
    let mut dynamic_stores = HashMap::new();
    let mut fixed = MetaViews::new();
    for (k, s) in &slots {
        if let Some((t, st)) = s.store_any() {
            typed.insert(t, st);
        }
        if dynamic_keys.contains(k) {
            if let Some(st) = s.dynamic_store() {
                dynamic_stores.insert(k.clone(), st);
            }
        }
        fixed.insert(k.clone(), (s.resource().clone(), s.meta_store()));
    }
    let caches = Caches {
        typed: Arc::new(typed),
        dynamic: Arc::new(dynamic_stores),
        meta: Arc::new(RwLock::new(Arc::new(MetaIndex {
            views: fixed.clone(),
            discovered: Vec::new(),
        }))),
    };
    let mut initial = Vec::new();
    let mut decls = Vec::new();
    for (w, sink) in declared.into_iter().zip(sinks) {
        for d in w.decls {
            match d {
                Decl::Typed {
                    resource,
                    mapper: Some(m),
                    ..
                } => {
                    if let Some(s) = slots.get_mut(&key_of_resource(&resource)) {
                        s.add_mapper(m.as_ref(), &caches, sink.clone());
                    }
                }
                Decl::Typed { mapper: None, .. } => {}
                Decl::Meta { resources, mapper } => {
                    for r in resources {
                        if let Some(s) = slots.get_mut(&key_of_resource(&r)) {
                            s.add_meta_mapper(mapper.clone(), &caches, sink.clone());
                        }
                    }
                }
                Decl::Discovered { filter, mapper } => decls.push(DynamicDecl {
                    filter,
                    mapper,
                    sink: sink.clone(),
                    selected: Arc::default(),
                }),
            }
        }
        initial.push(w.initial);
    }
    let rediscover = Arc::new(Rediscover::default());
    let mut dynamic = Dynamic {
        decls,
        fixed,
        discovered: MetaViews::new(),
        caches: caches.clone(),
        rediscover: rediscover.clone(),
    };
    if let Some(r) = &crd {
        if let Some(s) = slots.get_mut(&key_of_resource(r)) {
            s.add_meta_mapper(
                Arc::new(move |_, c, _, _| {
                    if !matches!(c, MetaChange::Resync(_)) {
                        rediscover.raise();
                    }
                }),
                &caches,
                Arc::new(|_: &str| {}),
            );
        }
    }
    for (k, s) in slots.iter_mut() {
        dynamic.attach(k, s.as_mut());
    }
    if !dynamic.is_empty() {
        let delta = dynamic.apply(discovered);
        slots.extend(delta.added);
    }
    Wiring {
        slots,
        caches,
        initial,
        queues,
        dynamic,
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
        let mut w = wire_sinks(&ctls, &sinks, Vec::new(), Vec::new());
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

    /// Watches `example.com` Backups dynamically.
    struct DynBackups;
    impl Controller for DynBackups {
        fn name(&self) -> &'static str {
            "dyn"
        }
        fn component(&self) -> &'static str {
            "dyn"
        }
        fn watches(&self, w: &mut Watches) {
            w.watch_dynamic(crate::testclient::backups(), trigger_self());
        }
        fn sync(&self, _: &str, _: &Caches, _: Timestamp) -> Vec<Action> {
            vec![]
        }
    }

    /// The same Backups as a typed custom kind.
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Backup {
        metadata: ObjectMeta,
    }
    crate::custom_kind!(
        Backup,
        group = "example.com",
        version = "v1",
        kind = "Backup",
        plural = "backups",
        scope = Namespaced
    );
    struct TypedBackups;
    impl Controller for TypedBackups {
        fn name(&self) -> &'static str {
            "typed"
        }
        fn component(&self) -> &'static str {
            "typed"
        }
        fn watches(&self, w: &mut Watches) {
            w.watch::<Backup>(Arc::new(|c, _, keys| {
                keys.push(format!("typed {}", key_of(c.object().meta())))
            }));
        }
        fn sync(&self, _: &str, _: &Caches, _: Timestamp) -> Vec<Action> {
            vec![]
        }
    }

    /// A custom kind whose spec is required.
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Strict {
        metadata: ObjectMeta,
        spec: StrictSpec,
    }
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct StrictSpec {
        database: String,
    }
    crate::custom_kind!(
        Strict,
        group = "example.com",
        version = "v1",
        kind = "Strict",
        plural = "stricts",
        scope = Namespaced
    );

    #[test]
    fn a_name_only_tombstone_removes_an_object_its_type_cannot_decode() {
        let mut slot = TypedSlot::<Strict>::new(Strict::api_resource(), false);
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s = seen.clone();
        slot.handlers.push(Arc::new(move |c: &Change<Strict>| {
            let what = match c {
                Change::Deleted(o) => format!("deleted {}", o.spec.database),
                other => format!("changed {}", key_of(other.object().meta())),
            };
            s.lock().push(what);
        }));
        let mut o = DynamicObject::new("example.com/v1", "Strict", "a");
        o.metadata.namespace = Some("ns".into());
        o.data
            .insert("spec".into(), serde_json::json!({"database": "db"}));
        slot.feed(&o, false);
        let mut gone = DynamicObject::new("example.com/v1", "Strict", "a");
        gone.metadata.namespace = Some("ns".into());
        slot.feed(&gone, true);
        assert_eq!(*seen.lock(), ["changed ns/a", "deleted db"]);
        assert!(slot.writer.store().is_empty());
    }

    #[test]
    fn a_dynamic_declaration_has_a_wire_form_cache_unless_another_declares_the_kind_typed() {
        use crate::testclient::{backup, backups};
        let key = "example.com/v1/Backup";
        let seen: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
        let sinks: Vec<Sink> = (0..2)
            .map(|i| {
                let s = seen.clone();
                Arc::new(move |k: &str| s.lock().push((i, k.to_string()))) as Sink
            })
            .collect();
        // Alone: a dynamic cache, read whole through `Caches::dynamic`.
        let ctls: Vec<Arc<dyn Controller>> = vec![Arc::new(DynBackups)];
        let mut w = wire_sinks(&ctls, &sinks, Vec::new(), Vec::new());
        w.slots.get_mut(key).unwrap().feed(&backup("b1"), false);
        assert_eq!(*seen.lock(), [(0, "ns/b1".to_string())]);
        let store = w.caches.dynamic(&backups()).expect("a dynamic store");
        assert_eq!(store.get("ns/b1").unwrap().types.kind, "Backup");
        assert!(w.caches.get::<Backup>().is_empty());
        // Declared after a typed one (in either order): one typed cache, both triggered.
        for ctls in [
            vec![
                Arc::new(DynBackups) as Arc<dyn Controller>,
                Arc::new(TypedBackups),
            ],
            vec![
                Arc::new(TypedBackups) as Arc<dyn Controller>,
                Arc::new(DynBackups),
            ],
        ] {
            seen.lock().clear();
            let dyn_first = ctls[0].name() == "dyn";
            let mut w = wire_sinks(&ctls, &sinks, Vec::new(), Vec::new());
            w.slots.get_mut(key).unwrap().feed(&backup("b2"), false);
            let (d, t) = if dyn_first { (0, 1) } else { (1, 0) };
            let mut got = seen.lock().clone();
            got.sort();
            let mut want = vec![(d, "ns/b2".to_string()), (t, "typed ns/b2".to_string())];
            want.sort();
            assert_eq!(got, want);
            assert_eq!(w.caches.get::<Backup>().len(), 1);
            assert!(w.caches.dynamic(&backups()).is_none());
        }
    }

    #[test]
    fn a_discovered_set_shares_declared_caches_and_adds_and_drops_its_own() {
        use crate::testclient::{backup, backups, backups_discovered, Census};
        let seen: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
        let sinks: Vec<Sink> = (0..2)
            .map(|i| {
                let s = seen.clone();
                Arc::new(move |k: &str| s.lock().push((i, k.to_string()))) as Sink
            })
            .collect();
        let ctls: Vec<Arc<dyn Controller>> = vec![Arc::new(Rs), Arc::new(Census::default())];
        let pods = orch_types::client::DiscoveredResource::builtin(
            orch_types::registry::by_kind("v1", "Pod").unwrap(),
        );
        let mut w = wire_sinks(&ctls, &sinks, Vec::new(), vec![pods.clone()]);
        // Pods and ReplicaSets (declared) and CRDs (the trigger); example.com not served yet.
        assert_eq!(
            w.slots.keys().collect::<Vec<_>>(),
            [
                "apiextensions.k8s.io/v1/CustomResourceDefinition",
                "apps/v1/ReplicaSet",
                "v1/Pod"
            ]
        );
        let delta = w.dynamic.apply(vec![pods.clone(), backups_discovered()]);
        assert_eq!(delta.changed, [0]);
        let (key, mut slot) = delta.added.into_iter().next().expect("a backups cache");
        assert_eq!(key, "example.com/v1/Backup");
        assert!(w.caches.meta(&backups()).is_some());
        slot.feed(&backup("b1"), false);
        w.dynamic.replay(&[0]);
        assert_eq!(
            *seen.lock(),
            [
                (1, "Backup|ns/b1".to_string()),
                (1, "Backup|ns/b1".to_string())
            ]
        );
        // Pods are not example.com: the declared cache triggers the ReplicaSet controller only.
        w.slots
            .get_mut("v1/Pod")
            .unwrap()
            .feed(&pod("a", Some("web")), false);
        assert_eq!(seen.lock().last().unwrap(), &(0, "ns/web".to_string()));
        // The resource goes away: its view is dropped, the set no longer reaches the mapper.
        let delta = w.dynamic.apply(vec![pods]);
        assert_eq!(delta.removed, ["example.com/v1/Backup"]);
        assert!(w.caches.meta(&backups()).is_none());
        let n = seen.lock().len();
        slot.feed(&backup("b2"), false);
        assert_eq!(seen.lock().len(), n);
        // Nothing changed: an empty delta.
        assert!(w
            .dynamic
            .apply(w.caches.metadata().discovered().to_vec())
            .is_empty());
    }
}
