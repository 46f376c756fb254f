//! A scripted `Client` for driver tests: lists return the current items, each `watch` call
//! plays the next scripted batch of events (then stays open), creates can be made to fail.

use futures::StreamExt;
use orch_types::client::*;
use orch_types::registry::ApiResource;
use orch_types::{ApiError, DynamicObject};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Default)]
pub struct ScriptedClient {
    pub items: Mutex<Vec<DynamicObject>>,
    /// Successive list results (each list call takes the next one, if any, as the new state).
    pub next_items: Mutex<VecDeque<Vec<DynamicObject>>>,
    pub rv: Mutex<u64>,
    pub watches: Mutex<VecDeque<Vec<Result<WatchEvent<DynamicObject>>>>>,
    pub lists: AtomicUsize,
    pub creates: AtomicUsize,
    /// Creates with this 1-based index fail.
    pub fail_create_at: Option<usize>,
    pub created: Mutex<Vec<DynamicObject>>,
    /// Objects PUT, in order (`update` answers with them, resourceVersion bumped).
    pub updated: Mutex<Vec<DynamicObject>>,
}

fn unsupported() -> ClientError {
    ClientError::Transport("not scripted".into())
}

#[async_trait::async_trait]
impl Client for ScriptedClient {
    async fn get(&self, _: &ApiResource, _: Option<&str>, name: &str) -> Result<DynamicObject> {
        self.items
            .lock()
            .iter()
            .find(|o| o.name() == name)
            .cloned()
            .ok_or_else(|| ApiError::not_found("objects", name).into())
    }
    async fn list(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &ListParams,
    ) -> Result<ObjectList<DynamicObject>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        if let Some(next) = self.next_items.lock().pop_front() {
            *self.items.lock() = next;
            *self.rv.lock() += 1;
        }
        let mut l = ObjectList {
            items: self.items.lock().clone(),
            ..Default::default()
        };
        l.metadata.resource_version = Some(self.rv.lock().to_string());
        Ok(l)
    }
    async fn create(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        obj: &DynamicObject,
        _: &PostParams,
    ) -> Result<DynamicObject> {
        let n = self.creates.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_create_at == Some(n) {
            return Err(ApiError::new(403, "Forbidden", "exceeded quota").into());
        }
        if let Some(name) = obj.metadata.name.as_deref().filter(|n| !n.is_empty()) {
            if self.items.lock().iter().any(|o| o.name() == name) {
                return Err(ApiError::already_exists("objects", name).into());
            }
        }
        let mut o = obj.clone();
        o.metadata.name = Some(format!(
            "{}{n}",
            o.metadata.generate_name.clone().unwrap_or_default()
        ));
        self.created.lock().push(o.clone());
        Ok(o)
    }
    async fn update(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        obj: &DynamicObject,
        _: &PostParams,
    ) -> Result<DynamicObject> {
        let mut o = obj.clone();
        let rv: u64 = o.resource_version().unwrap_or("0").parse().unwrap_or(0);
        o.metadata.resource_version = Some((rv + 1).to_string());
        self.updated.lock().push(obj.clone());
        Ok(o)
    }
    async fn update_status(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &DynamicObject,
        _: &PostParams,
    ) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn patch(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &str,
        _: Option<&str>,
        _: &Patch,
        _: &PatchParams,
    ) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn delete(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &str,
        _: &DeleteParams,
    ) -> Result<DeleteOutcome> {
        Err(unsupported())
    }
    async fn create_subresource(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &str,
        _: &str,
        _: &DynamicObject,
    ) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn watch(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &WatchParams,
    ) -> Result<WatchStream<DynamicObject>> {
        let batch = self.watches.lock().pop_front().unwrap_or_default();
        Ok(futures::stream::iter(batch)
            .chain(futures::stream::pending())
            .boxed())
    }
}

/// An in-memory API of several resources for driver tests: lists answer the objects of the
/// resource asked for, watches follow [`FakeApi::put`] and [`FakeApi::remove`], discovery
/// answers [`FakeApi::discovered`], and the number of open watches of each resource is
/// counted (an informer that was stopped has none).
#[derive(Default)]
pub struct FakeApi {
    objects: Mutex<std::collections::BTreeMap<String, Vec<DynamicObject>>>,
    senders: Mutex<
        Vec<(
            String,
            futures::channel::mpsc::UnboundedSender<WatchEvent<DynamicObject>>,
        )>,
    >,
    pub discovered: Mutex<Vec<DiscoveredResource>>,
    pub open_watches: std::sync::Arc<Mutex<std::collections::BTreeMap<String, usize>>>,
}

fn rkey(r: &ApiResource) -> String {
    format!("{}/{}", r.api_version(), r.kind)
}

/// Decrements the count of open watches of a resource when its stream is dropped.
struct Open(
    std::sync::Arc<Mutex<std::collections::BTreeMap<String, usize>>>,
    String,
);

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(n) = self.0.lock().get_mut(&self.1) {
            *n = n.saturating_sub(1);
        }
    }
}

impl FakeApi {
    /// Stores `o` (of resource `r`) and tells its watchers.
    pub fn put(&self, r: &ApiResource, o: DynamicObject) {
        let k = rkey(r);
        let mut objects = self.objects.lock();
        let list = objects.entry(k.clone()).or_default();
        list.retain(|x| x.name() != o.name() || x.namespace() != o.namespace());
        list.push(o.clone());
        self.send(&k, WatchEvent::Added(o));
    }

    /// Removes `name` of resource `r` and tells its watchers.
    pub fn remove(&self, r: &ApiResource, name: &str) {
        let k = rkey(r);
        let gone: Vec<DynamicObject> = {
            let mut objects = self.objects.lock();
            let list = objects.entry(k.clone()).or_default();
            let gone = list.iter().filter(|x| x.name() == name).cloned().collect();
            list.retain(|x| x.name() != name);
            gone
        };
        for o in gone {
            self.send(&k, WatchEvent::Deleted(o));
        }
    }

    fn send(&self, k: &str, ev: WatchEvent<DynamicObject>) {
        self.senders
            .lock()
            .retain(|(r, tx)| r != k || tx.unbounded_send(ev.clone()).is_ok());
    }

    /// Open watches of `r`.
    pub fn watching(&self, r: &ApiResource) -> usize {
        self.open_watches.lock().get(&rkey(r)).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl Client for FakeApi {
    async fn get(&self, r: &ApiResource, _: Option<&str>, name: &str) -> Result<DynamicObject> {
        self.objects
            .lock()
            .get(&rkey(r))
            .and_then(|l| l.iter().find(|o| o.name() == name).cloned())
            .ok_or_else(|| ApiError::not_found(&r.plural, name).into())
    }
    async fn list(
        &self,
        r: &ApiResource,
        _: Option<&str>,
        _: &ListParams,
    ) -> Result<ObjectList<DynamicObject>> {
        let mut l = ObjectList {
            items: self
                .objects
                .lock()
                .get(&rkey(r))
                .cloned()
                .unwrap_or_default(),
            ..Default::default()
        };
        l.metadata.resource_version = Some("1".into());
        Ok(l)
    }
    async fn create(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &DynamicObject,
        _: &PostParams,
    ) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn update(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &DynamicObject,
        _: &PostParams,
    ) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn update_status(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &DynamicObject,
        _: &PostParams,
    ) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn patch(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &str,
        _: Option<&str>,
        _: &Patch,
        _: &PatchParams,
    ) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn delete(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &str,
        _: &DeleteParams,
    ) -> Result<DeleteOutcome> {
        Err(unsupported())
    }
    async fn create_subresource(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &str,
        _: &str,
        _: &DynamicObject,
    ) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn watch(
        &self,
        r: &ApiResource,
        _: Option<&str>,
        _: &WatchParams,
    ) -> Result<WatchStream<DynamicObject>> {
        let k = rkey(r);
        let (tx, rx) = futures::channel::mpsc::unbounded();
        self.senders.lock().push((k.clone(), tx));
        *self.open_watches.lock().entry(k.clone()).or_default() += 1;
        let open = Open(self.open_watches.clone(), k);
        #[allow(clippy::result_large_err)] // the trait's stream item
        Ok(rx
            .map(move |ev| {
                let _ = &open;
                Ok(ev)
            })
            .boxed())
    }
    async fn discover(&self) -> Result<Vec<DiscoveredResource>> {
        Ok(self.discovered.lock().clone())
    }
}

/// The resource of a custom kind for driver tests (`backups.example.com`).
pub fn backups() -> ApiResource {
    ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        kind: "Backup".into(),
        plural: "backups".into(),
        namespaced: true,
    }
}

/// A Backup in namespace `ns`.
pub fn backup(name: &str) -> DynamicObject {
    let mut o = DynamicObject::new("example.com/v1", "Backup", name);
    o.metadata.namespace = Some("ns".into());
    o.metadata.resource_version = Some("1".into());
    o
}

/// The CustomResourceDefinition resource.
pub fn crds() -> ApiResource {
    orch_types::registry::by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .expect("built-in")
        .api_resource()
}

/// The CRD of [`backups`] (its content does not matter to the drivers).
pub fn backup_crd() -> DynamicObject {
    let mut o = DynamicObject::new(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "backups.example.com",
    );
    o.metadata.resource_version = Some("1".into());
    o
}

/// Discovery's entry of [`backups`].
pub fn backups_discovered() -> DiscoveredResource {
    DiscoveredResource {
        resource: backups(),
        verbs: ["list", "watch", "delete"].map(String::from).to_vec(),
    }
}

/// A controller watching the metadata of every discovered `example.com` resource; records
/// the keys it synced (`Kind|namespace/name`).
#[derive(Default)]
pub struct Census {
    pub synced: Mutex<Vec<String>>,
}

impl crate::controller::Controller for Census {
    fn name(&self) -> &'static str {
        "census"
    }
    fn component(&self) -> &'static str {
        "census"
    }
    fn watches(&self, w: &mut crate::controller::Watches) {
        w.watch_discovered_metadata(
            std::sync::Arc::new(|d| {
                d.resource.group == "example.com" && d.supports(&["list", "watch"])
            }),
            std::sync::Arc::new(|r, c, _, keys| {
                keys.push(format!("{}|{}", r.kind, crate::object::key_of(c.meta())))
            }),
        );
    }
    fn sync(
        &self,
        key: &str,
        _: &crate::controller::Caches,
        _: jiff::Timestamp,
    ) -> Vec<crate::action::Action> {
        self.synced.lock().push(key.to_string());
        Vec::new()
    }
}
