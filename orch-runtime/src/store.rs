//! The local cache an informer fills: one [`Writer`], many cheap [`Store`] readers (as
//! kube-runtime's `reflector/store.rs`), indexed by namespace, owner UID, label, and the
//! objects without a controller (candidates for adoption) by namespace.

use crate::object::{controller_of, key_of, Object};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use parking_lot::RwLock;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// A change the writer applied, handed to event handlers.
#[derive(Debug, Clone)]
pub enum Change<K> {
    /// A new object.
    Added(Arc<K>),
    /// An object changed (old, new).
    Updated(Arc<K>, Arc<K>),
    /// An object went away (its last state).
    Deleted(Arc<K>),
    /// Periodic resync: the object did not change, but handlers should look again.
    Resync(Arc<K>),
}

impl<K> Change<K> {
    /// The current (or last) state of the object.
    pub fn object(&self) -> &Arc<K> {
        match self {
            Self::Added(o) | Self::Updated(_, o) | Self::Deleted(o) | Self::Resync(o) => o,
        }
    }
}

#[derive(Debug)]
struct Inner<K> {
    objects: HashMap<String, Arc<K>>,
    by_namespace: HashMap<String, BTreeSet<String>>,
    by_owner: HashMap<String, BTreeSet<String>>,
    by_label: HashMap<(String, String), BTreeSet<String>>,
    orphans: HashMap<String, BTreeSet<String>>,
    resource_version: String,
    synced: bool,
}

impl<K> Default for Inner<K> {
    fn default() -> Self {
        Self {
            objects: HashMap::new(),
            by_namespace: HashMap::new(),
            by_owner: HashMap::new(),
            by_label: HashMap::new(),
            orphans: HashMap::new(),
            resource_version: String::new(),
            synced: false,
        }
    }
}

impl<K: Object> Inner<K> {
    fn index(&mut self, key: &str, o: &K) {
        let m = o.meta();
        self.by_namespace
            .entry(m.namespace.clone().unwrap_or_default())
            .or_default()
            .insert(key.into());
        for r in m.owner_references.as_deref().unwrap_or_default() {
            self.by_owner
                .entry(r.uid.clone())
                .or_default()
                .insert(key.into());
        }
        for (k, v) in m.labels.iter().flatten() {
            self.by_label
                .entry((k.clone(), v.clone()))
                .or_default()
                .insert(key.into());
        }
        if controller_of(m).is_none() {
            self.orphans
                .entry(m.namespace.clone().unwrap_or_default())
                .or_default()
                .insert(key.into());
        }
    }

    fn unindex(&mut self, key: &str, o: &K) {
        fn rm<I: std::hash::Hash + Eq>(map: &mut HashMap<I, BTreeSet<String>>, i: I, key: &str) {
            if let Some(s) = map.get_mut(&i) {
                s.remove(key);
                if s.is_empty() {
                    map.remove(&i);
                }
            }
        }
        let m = o.meta();
        rm(
            &mut self.by_namespace,
            m.namespace.clone().unwrap_or_default(),
            key,
        );
        for r in m.owner_references.as_deref().unwrap_or_default() {
            rm(&mut self.by_owner, r.uid.clone(), key);
        }
        for (k, v) in m.labels.iter().flatten() {
            rm(&mut self.by_label, (k.clone(), v.clone()), key);
        }
        if controller_of(m).is_none() {
            rm(
                &mut self.orphans,
                m.namespace.clone().unwrap_or_default(),
                key,
            );
        }
    }

    /// Same metadata for every index (the common update: a status write).
    fn same_index(a: &ObjectMeta, b: &ObjectMeta) -> bool {
        a.namespace == b.namespace
            && a.owner_references == b.owner_references
            && a.labels == b.labels
    }

    fn put(&mut self, o: Arc<K>) -> Option<Arc<K>> {
        let key = key_of(o.meta());
        let old = self.objects.insert(key.clone(), o.clone());
        match &old {
            Some(old) if Self::same_index(old.meta(), o.meta()) => {}
            Some(old) => {
                self.unindex(&key, old);
                self.index(&key, &o);
            }
            None => self.index(&key, &o),
        }
        old
    }

    fn remove(&mut self, key: &str) -> Option<Arc<K>> {
        let old = self.objects.remove(key)?;
        self.unindex(key, &old);
        Some(old)
    }
}

/// A read handle on the cache; clone freely.
#[derive(Debug)]
pub struct Store<K> {
    inner: Arc<RwLock<Inner<K>>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K: Object> Store<K> {
    /// By key (`namespace/name` or `name`).
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.inner.read().objects.get(key).cloned()
    }

    /// By namespace and name.
    pub fn get_in(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        match namespace {
            Some(ns) if !ns.is_empty() => self.get(&format!("{ns}/{name}")),
            _ => self.get(name),
        }
    }

    /// Every object, sorted by key (deterministic for simulation).
    pub fn list(&self) -> Vec<Arc<K>> {
        let g = self.inner.read();
        let mut keys: Vec<&String> = g.objects.keys().collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|k| g.objects.get(k).cloned())
            .collect()
    }

    /// Objects in one namespace, sorted by key.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let g = self.inner.read();
        g.by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .filter_map(|k| g.objects.get(k).cloned())
            .collect()
    }

    /// Objects with an ownerReference to `uid`, sorted by key.
    pub fn owned_by(&self, uid: &str) -> Vec<Arc<K>> {
        let g = self.inner.read();
        g.by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| g.objects.get(k).cloned())
            .collect()
    }

    /// Objects carrying label `key=value`, sorted by key.
    pub fn with_label(&self, key: &str, value: &str) -> Vec<Arc<K>> {
        let g = self.inner.read();
        g.by_label
            .get(&(key.to_string(), value.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|k| g.objects.get(k).cloned())
            .collect()
    }

    /// Objects of namespace `namespace` without a controller reference, sorted by key.
    pub fn orphans_in(&self, namespace: &str) -> Vec<Arc<K>> {
        let g = self.inner.read();
        g.orphans
            .get(namespace)
            .into_iter()
            .flatten()
            .filter_map(|k| g.objects.get(k).cloned())
            .collect()
    }

    /// What a controller with `uid` in `namespace` may claim: the objects owned by `uid` and
    /// the objects of `namespace` without a controller, sorted by key.
    pub fn claimable(&self, uid: &str, namespace: &str) -> Vec<Arc<K>> {
        let g = self.inner.read();
        let owned = g.by_owner.get(uid);
        let orphans = g.orphans.get(namespace);
        let mut keys: Vec<&String> = owned.into_iter().flatten().collect();
        keys.extend(orphans.into_iter().flatten());
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| g.objects.get(k).cloned())
            .collect()
    }

    /// Keys of every object, sorted.
    pub fn keys(&self) -> Vec<String> {
        let g = self.inner.read();
        let mut keys: Vec<String> = g.objects.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.inner.read().objects.len()
    }

    /// No objects.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first list has been applied.
    pub fn is_synced(&self) -> bool {
        self.inner.read().synced
    }

    /// resourceVersion of the last list or event applied.
    pub fn resource_version(&self) -> String {
        self.inner.read().resource_version.clone()
    }
}

/// The single writer of a [`Store`].
#[derive(Debug)]
pub struct Writer<K> {
    store: Store<K>,
}

impl<K: Object> Default for Writer<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Object> Writer<K> {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            store: Store {
                inner: Arc::new(RwLock::new(Inner::default())),
            },
        }
    }

    /// A reader.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Adds or replaces one object.
    pub fn apply(&mut self, o: K) -> Change<K> {
        self.apply_arc(Arc::new(o))
    }

    /// Adds or replaces one object already shared behind an `Arc`.
    pub fn apply_arc(&mut self, new: Arc<K>) -> Change<K> {
        let mut g = self.store.inner.write();
        if let Some(rv) = &new.meta().resource_version {
            g.resource_version = rv.clone();
        }
        match g.put(new.clone()) {
            Some(old) => Change::Updated(old, new),
            None => Change::Added(new),
        }
    }

    /// Removes one object.
    pub fn delete(&mut self, o: K) -> Change<K> {
        let key = key_of(o.meta());
        let mut g = self.store.inner.write();
        if let Some(rv) = &o.meta().resource_version {
            g.resource_version = rv.clone();
        }
        let cached = g.remove(&key);
        // The final state sent with the event is the freshest one: the server's (it has a
        // resourceVersion), else the cached one (a host reporting only "it is gone").
        match cached {
            Some(c) if o.meta().resource_version.is_none() => Change::Deleted(c),
            _ => Change::Deleted(Arc::new(o)),
        }
    }

    /// Removes the object under `key`, if cached: what a host reports as gone when all it has
    /// is a name (a tombstone that does not convert to `K`, such as a custom kind's struct
    /// with required spec fields). The change carries the cached state.
    pub fn delete_key(&mut self, key: &str) -> Option<Change<K>> {
        self.store.inner.write().remove(key).map(Change::Deleted)
    }

    /// Records a bookmark's resourceVersion.
    pub fn bookmark(&mut self, resource_version: &str) {
        self.store.inner.write().resource_version = resource_version.into();
    }

    /// Replaces the whole content with a fresh list (relist); returns the differences.
    pub fn replace(&mut self, items: Vec<K>, resource_version: &str) -> Vec<Change<K>> {
        let mut g = self.store.inner.write();
        let mut fresh: BTreeMap<String, K> = BTreeMap::new();
        for o in items {
            fresh.insert(key_of(o.meta()), o);
        }
        let mut changes = Vec::new();
        let gone: Vec<String> = g
            .objects
            .keys()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(old) = g.remove(&k) {
                changes.push(Change::Deleted(old));
            }
        }
        for (_, o) in fresh {
            let new = Arc::new(o);
            let same = g.objects.get(&key_of(new.meta())).is_some_and(|old| {
                old.meta().resource_version.is_some()
                    && old.meta().resource_version == new.meta().resource_version
            });
            if same {
                continue;
            }
            match g.put(new.clone()) {
                Some(old) => changes.push(Change::Updated(old, new)),
                None => changes.push(Change::Added(new)),
            }
        }
        g.resource_version = resource_version.into();
        g.synced = true;
        changes
    }

    /// Marks the cache synced without data (tests, simulation seeding).
    pub fn mark_synced(&mut self) {
        self.store.inner.write().synced = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod(name: &str, rv: &str, owner: Option<&str>, app: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                labels: Some([("app".to_string(), app.to_string())].into()),
                owner_references: owner.map(|u| {
                    vec![OwnerReference {
                        uid: u.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn indexes_follow_updates_and_relists() {
        let mut w = Writer::<Pod>::new();
        let s = w.store();
        assert!(!s.is_synced());
        let ch = w.replace(
            vec![pod("a", "1", Some("u1"), "web"), pod("b", "2", None, "db")],
            "2",
        );
        assert_eq!(ch.len(), 2);
        assert!(s.is_synced());
        assert_eq!(s.owned_by("u1").len(), 1);
        assert_eq!(s.with_label("app", "web").len(), 1);
        assert_eq!(
            s.orphans_in("ns").len(),
            2,
            "owner references without controller: true"
        );
        assert_eq!(s.claimable("u1", "ns").len(), 2);
        // relabel + release
        assert!(matches!(
            w.apply(pod("a", "3", None, "db")),
            Change::Updated(..)
        ));
        assert!(s.owned_by("u1").is_empty());
        assert_eq!(s.with_label("app", "db").len(), 2);
        // relist without b: b deleted, a unchanged (same rv) is not reported
        let ch = w.replace(vec![pod("a", "3", None, "db")], "9");
        assert_eq!(ch.len(), 1);
        assert!(matches!(&ch[0], Change::Deleted(p) if p.metadata.name.as_deref() == Some("b")));
        assert_eq!(s.list_namespace("ns").len(), 1);
        assert_eq!(s.resource_version(), "9");
    }
}
