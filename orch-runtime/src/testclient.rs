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
