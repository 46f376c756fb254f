//! [`LocalClient`]: the in-process client. Calls the REST operations of [`ApiServer`] directly;
//! objects come out of the store and the watch cache as shared `Arc`s and are cloned (no
//! serialization) into the owned objects the `Client` trait returns.

use crate::rest::delete::Deleted;
use crate::rest::patch::PatchType;
use crate::rest::update::Part;
use crate::server::ApiServer;
use async_trait::async_trait;
use futures::StreamExt;
use orch_types::client::{
    Client, DeleteOutcome, DeleteParams, DiscoveredResource, ListParams, ObjectList, Patch,
    PatchParams, PostParams, Result, WatchParams, WatchStream,
};
use orch_types::registry::ApiResource;
use orch_types::status::reason;
use orch_types::{ApiError, DynamicObject};
use std::borrow::Cow;
use std::sync::Arc;

/// The in-process client of an [`ApiServer`].
#[derive(Debug, Clone)]
pub struct LocalClient {
    api: Arc<ApiServer>,
    manager: Option<String>,
}

impl LocalClient {
    /// A client of `api`.
    pub fn new(api: Arc<ApiServer>) -> Self {
        Self { api, manager: None }
    }

    /// This client's writes without a `fieldManager` are recorded in `managedFields` as
    /// `manager`'s (what a User-Agent such as `kube-controller-manager/v1.33.0` names over
    /// HTTP); without one they are `unknown`'s.
    pub fn with_manager(mut self, manager: &str) -> Self {
        self.manager = Some(manager.to_string());
        self
    }

    fn post<'a>(&self, p: &'a PostParams) -> Cow<'a, PostParams> {
        match (&p.field_manager, &self.manager) {
            (None, Some(m)) => Cow::Owned(PostParams {
                field_manager: Some(m.clone()),
                ..p.clone()
            }),
            _ => Cow::Borrowed(p),
        }
    }
}

impl LocalClient {
    /// `metrics.k8s.io` lists (served outside the registry, [`crate::metrics`]).
    async fn list_metrics(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        p: &ListParams,
    ) -> Result<ObjectList<DynamicObject>> {
        let list = if r.namespaced {
            self.api.list_pod_metrics(ns, p).await?
        } else {
            self.api.list_node_metrics(p).await?
        };
        let items = match list.get("items") {
            Some(serde_json::Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        Ok(ObjectList {
            metadata: Default::default(),
            items: items
                .into_iter()
                .map(DynamicObject::from_value)
                .collect::<std::result::Result<_, _>>()?,
        })
    }
}

fn owned(o: Arc<DynamicObject>) -> DynamicObject {
    Arc::try_unwrap(o).unwrap_or_else(|a| (*a).clone())
}

#[async_trait]
impl Client for LocalClient {
    /// Every resource the server stores: the built-in ones and the storage version of each
    /// custom resource it serves (in-process clients address objects at their storage version).
    async fn discover(&self) -> Result<Vec<DiscoveredResource>> {
        let mut out = orch_types::client::builtin_resources();
        for c in self.api.custom_catalog().resources() {
            if std::ptr::eq(c.info, c.storage) {
                out.push(DiscoveredResource::builtin(c.info));
            }
        }
        Ok(out)
    }

    async fn get(&self, r: &ApiResource, ns: Option<&str>, name: &str) -> Result<DynamicObject> {
        if r.group == crate::metrics::GROUP {
            let v = match ns {
                Some(ns) => self.api.get_pod_metrics(ns, name).await?,
                None => self.api.get_node_metrics(name).await?,
            };
            return Ok(DynamicObject::from_value(v)?);
        }
        let info = self.api.resolve(r)?;
        Ok(owned(self.api.get_object(info, ns, name).await?))
    }

    async fn list(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        p: &ListParams,
    ) -> Result<ObjectList<DynamicObject>> {
        if r.group == crate::metrics::GROUP {
            return self.list_metrics(r, ns, p).await;
        }
        let info = self.api.resolve(r)?;
        let l = self.api.list_objects(info, ns, p).await?;
        Ok(ObjectList {
            metadata: l.metadata,
            items: l.items.into_iter().map(owned).collect(),
        })
    }

    async fn create(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        obj: &DynamicObject,
        p: &PostParams,
    ) -> Result<DynamicObject> {
        let info = self.api.resolve(r)?;
        Ok(owned(
            self.api
                .create_object(info, ns, obj.clone(), &self.post(p))
                .await?
                .object,
        ))
    }

    async fn update(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        obj: &DynamicObject,
        p: &PostParams,
    ) -> Result<DynamicObject> {
        let info = self.api.resolve(r)?;
        let ns = ns.or(obj.namespace());
        let out = self
            .api
            .update_object(info, ns, obj.name(), Part::Main, obj.clone(), &self.post(p))
            .await?;
        Ok(owned(out.written().object.clone()))
    }

    async fn update_status(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        obj: &DynamicObject,
        p: &PostParams,
    ) -> Result<DynamicObject> {
        let info = self.api.resolve(r)?;
        if info.subresource("status").is_none() {
            return Err(ApiError::not_found(
                &format!("{}/status", crate::rest::qualified(info)),
                obj.name(),
            )
            .into());
        }
        let ns = ns.or(obj.namespace());
        let out = self
            .api
            .update_object(
                info,
                ns,
                obj.name(),
                Part::Status,
                crate::rest::update::status_body(obj),
                &self.post(p),
            )
            .await?;
        Ok(owned(out.written().object.clone()))
    }

    async fn patch(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        patch: &Patch,
        p: &PatchParams,
    ) -> Result<DynamicObject> {
        let info = self.api.resolve(r)?;
        let p = match (&p.field_manager, &self.manager, patch) {
            (None, Some(m), p2) if !matches!(p2, Patch::Apply(_)) => Cow::Owned(PatchParams {
                field_manager: Some(m.clone()),
                ..p.clone()
            }),
            _ => Cow::Borrowed(p),
        };
        if subresource == Some("scale") {
            // The answer is the autoscaling/v1 Scale, as over HTTP.
            let scale = self
                .api
                .patch_scale(
                    info,
                    ns,
                    name,
                    PatchType::of(patch),
                    patch.body(),
                    p.dry_run,
                    p.field_manager.as_deref(),
                )
                .await?;
            return Ok(DynamicObject::from_value(scale)?);
        }
        let part = Part::from_subresource(subresource).ok_or_else(|| {
            ApiError::new(
                405,
                reason::METHOD_NOT_ALLOWED,
                format!("patching subresource {subresource:?} is not supported in-process"),
            )
        })?;
        let out = self
            .api
            .patch_object(info, ns, name, part, PatchType::of(patch), patch.body(), &p)
            .await?;
        Ok(owned(out.written().object.clone()))
    }

    async fn delete(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        name: &str,
        p: &DeleteParams,
    ) -> Result<DeleteOutcome> {
        let info = self.api.resolve(r)?;
        Ok(match self.api.delete_object(info, ns, name, p).await? {
            Deleted::Gone(o) => DeleteOutcome::Deleted(owned(o)),
            Deleted::Pending(o) => DeleteOutcome::Pending(owned(o)),
        })
    }

    async fn create_subresource(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        name: &str,
        subresource: &str,
        body: &DynamicObject,
    ) -> Result<DynamicObject> {
        let info = self.api.resolve(r)?;
        let o = self
            .api
            .create_subresource(info, ns, name, subresource, body.clone())
            .await?;
        Ok(owned(o))
    }

    async fn watch(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        p: &WatchParams,
    ) -> Result<WatchStream<DynamicObject>> {
        let info = self.api.resolve(r)?;
        let s = self.api.watch_objects(info, ns, p).await?;
        Ok(s.map(|ev| ev.try_map(|o| Ok(owned(o)))).boxed())
    }
}
