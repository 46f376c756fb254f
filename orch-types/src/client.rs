//! The [`Client`] trait: the one way the scheduler, controllers and kubelet talk to an API
//! server, in-process, over HTTP, in a simulation or against real Kubernetes.
//!
//! The trait is object safe and works on [`DynamicObject`]; [`Api`] adds a typed view on top for
//! any k8s-openapi kind. Implementations live in `orch-apiserver`; this crate has none.

use crate::dynamic::{ConvertError, DynamicObject};
use crate::registry::ApiResource;
use crate::status::ApiError;
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, Status};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::sync::Arc;

/// Errors from a [`Client`] call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a `Status` (404, 409, 422, …).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The request could not be delivered or the connection broke.
    #[error("transport error: {0}")]
    Transport(String),
    /// The server's answer could not be decoded.
    #[error("decode error: {0}")]
    Decode(String),
    /// A typed/dynamic conversion failed.
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

impl ClientError {
    /// The `ApiError` if the server answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) => Some(e),
            _ => None,
        }
    }
    /// 404 from the server.
    pub fn is_not_found(&self) -> bool {
        self.api().is_some_and(ApiError::is_not_found)
    }
    /// 409 Conflict from the server.
    pub fn is_conflict(&self) -> bool {
        self.api().is_some_and(ApiError::is_conflict)
    }
    /// 409 AlreadyExists from the server.
    pub fn is_already_exists(&self) -> bool {
        self.api().is_some_and(ApiError::is_already_exists)
    }
    /// 410 Gone from the server.
    pub fn is_gone(&self) -> bool {
        self.api().is_some_and(ApiError::is_gone)
    }
}

/// Result of a client call.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// `resourceVersionMatch` for lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionMatch {
    /// Data at least as new as the given resourceVersion.
    NotOlderThan,
    /// Data at exactly the given resourceVersion.
    Exact,
}

/// Options of a list call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListParams {
    /// `labelSelector` in kubectl syntax.
    pub label_selector: Option<String>,
    /// `fieldSelector`, e.g. `spec.nodeName=n1`.
    pub field_selector: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
    /// Continue token from the previous page.
    pub continue_token: Option<String>,
    /// `resourceVersion` (`"0"` = any, served from the watch cache).
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<VersionMatch>,
}

impl ListParams {
    /// Sets the label selector.
    pub fn labels(mut self, s: &str) -> Self {
        self.label_selector = Some(s.into());
        self
    }
    /// Sets the field selector.
    pub fn fields(mut self, s: &str) -> Self {
        self.field_selector = Some(s.into());
        self
    }
    /// Sets the page size.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
}

/// Options of a watch call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchParams {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// Start after this revision; `None` sends synthetic ADDED events for current objects first.
    pub resource_version: Option<String>,
    /// `allowWatchBookmarks`.
    pub allow_bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u32>,
    /// `sendInitialEvents` (ends with a bookmark annotated `k8s.io/initial-events-end`).
    pub send_initial_events: bool,
}

/// `dryRun` / `fieldManager` / `fieldValidation` of create and update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PostParams {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `fieldValidation`: `Strict`, `Warn` or `Ignore`.
    pub field_validation: Option<String>,
}

/// Options of a patch call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatchParams {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager` (required for server-side apply).
    pub field_manager: Option<String>,
    /// `force` (server-side apply conflicts).
    pub force: bool,
    /// `fieldValidation`.
    pub field_validation: Option<String>,
}

impl PatchParams {
    /// Server-side apply as `manager`.
    pub fn apply(manager: &str) -> Self {
        Self {
            field_manager: Some(manager.into()),
            ..Default::default()
        }
    }
}

/// A patch body with its content type.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch {
    /// `application/merge-patch+json` (RFC 7386).
    Merge(serde_json::Value),
    /// `application/json-patch+json` (RFC 6902), an array of operations.
    Json(serde_json::Value),
    /// `application/strategic-merge-patch+json`.
    Strategic(serde_json::Value),
    /// `application/apply-patch+yaml` (server-side apply; JSON is valid YAML).
    Apply(serde_json::Value),
}

impl Patch {
    /// The HTTP content type.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Merge(_) => "application/merge-patch+json",
            Self::Json(_) => "application/json-patch+json",
            Self::Strategic(_) => "application/strategic-merge-patch+json",
            Self::Apply(_) => "application/apply-patch+yaml",
        }
    }
    /// The body.
    pub fn body(&self) -> &serde_json::Value {
        match self {
            Self::Merge(v) | Self::Json(v) | Self::Strategic(v) | Self::Apply(v) => v,
        }
    }
}

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PropagationPolicy {
    /// Dependents deleted in the background by the garbage collector.
    Background,
    /// Owner waits (`foregroundDeletion` finalizer) until blocking dependents are gone.
    Foreground,
    /// Dependents are orphaned (ownerReferences removed).
    Orphan,
}

/// Preconditions of a delete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Preconditions {
    /// Required UID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Required resourceVersion.
    #[serde(rename = "resourceVersion", skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// Options of a delete (the body of `DeleteOptions`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteParams {
    /// `propagationPolicy`.
    pub propagation_policy: Option<PropagationPolicy>,
    /// `gracePeriodSeconds` (0 = immediately).
    pub grace_period_seconds: Option<i64>,
    /// Preconditions.
    pub preconditions: Option<Preconditions>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl DeleteParams {
    /// Delete immediately (grace period 0).
    pub fn immediate() -> Self {
        Self {
            grace_period_seconds: Some(0),
            ..Default::default()
        }
    }
    /// With the given propagation policy.
    pub fn propagation(p: PropagationPolicy) -> Self {
        Self {
            propagation_policy: Some(p),
            ..Default::default()
        }
    }
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteOutcome {
    /// The object is gone; its last state.
    Deleted(DynamicObject),
    /// The object still exists, marked with a deletionTimestamp (finalizers or grace period).
    Pending(DynamicObject),
}

impl DeleteOutcome {
    /// The object either way.
    pub fn object(&self) -> &DynamicObject {
        match self {
            Self::Deleted(o) | Self::Pending(o) => o,
        }
    }
}

/// A list result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectList<K> {
    /// `metadata.resourceVersion` and `continue`.
    pub metadata: ListMeta,
    /// The items.
    pub items: Vec<K>,
}

/// A watch event, in the wire shape `{"type": "ADDED", "object": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "object", rename_all = "UPPERCASE")]
#[allow(clippy::large_enum_variant)] // events are moved once; boxing would cost every consumer
pub enum WatchEvent<K> {
    /// Object created (or synthetic initial event).
    Added(K),
    /// Object changed.
    Modified(K),
    /// Object deleted (its last state).
    Deleted(K),
    /// Progress marker: only `metadata.resourceVersion` (and annotations) are meaningful.
    Bookmark(K),
    /// The watch failed; the `Status` says why (e.g. 410 Expired). Written in upstream's field
    /// order, as error bodies are.
    #[serde(serialize_with = "crate::ApiError::serialize_status")]
    Error(Status),
}

impl<K> WatchEvent<K> {
    /// Maps the object of the event.
    pub fn try_map<T, E>(self, f: impl FnOnce(K) -> Result<T, E>) -> Result<WatchEvent<T>, E> {
        Ok(match self {
            Self::Added(o) => WatchEvent::Added(f(o)?),
            Self::Modified(o) => WatchEvent::Modified(f(o)?),
            Self::Deleted(o) => WatchEvent::Deleted(f(o)?),
            Self::Bookmark(o) => WatchEvent::Bookmark(f(o)?),
            Self::Error(s) => WatchEvent::Error(s),
        })
    }
}

/// A stream of watch events.
pub type WatchStream<K> = BoxStream<'static, Result<WatchEvent<K>>>;

/// Log options for `pods/log`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogParams {
    /// `container`.
    pub container: Option<String>,
    /// `follow`.
    pub follow: bool,
    /// `tailLines`.
    pub tail_lines: Option<i64>,
    /// `previous`.
    pub previous: bool,
    /// `timestamps`.
    pub timestamps: bool,
    /// `sinceSeconds`.
    pub since_seconds: Option<i64>,
    /// `limitBytes`.
    pub limit_bytes: Option<i64>,
}

/// One resource as discovery lists it (upstream `metav1.APIResource`): the resource and the
/// verbs served on it. Subresources are not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredResource {
    /// The resource, at the version a component should use.
    pub resource: ApiResource,
    /// Verbs served on the main resource (`list`, `watch`, `delete`, …).
    pub verbs: Vec<String>,
}

impl DiscoveredResource {
    /// Whether every one of `verbs` is served (upstream `discovery.SupportsAllVerbs`).
    pub fn supports(&self, verbs: &[&str]) -> bool {
        verbs.iter().all(|v| self.verbs.iter().any(|x| x == v))
    }

    /// A built-in resource of the registry.
    pub fn builtin(info: &crate::registry::ResourceInfo) -> Self {
        Self {
            resource: info.api_resource(),
            verbs: info.verbs.iter().map(|v| v.to_string()).collect(),
        }
    }
}

/// Every built-in resource at its storage version, as [`Client::discover`] answers by default.
pub fn builtin_resources() -> Vec<DiscoveredResource> {
    crate::registry::BUILTIN
        .iter()
        .map(DiscoveredResource::builtin)
        .collect()
}

/// The API, as the scheduler, controllers and kubelet use it.
///
/// `namespace` is ignored for cluster-scoped resources; for namespaced ones `None` in `list` and
/// `watch` means all namespaces.
#[async_trait]
pub trait Client: Send + Sync + 'static {
    /// GET one object.
    async fn get(&self, r: &ApiResource, ns: Option<&str>, name: &str) -> Result<DynamicObject>;
    /// LIST objects.
    async fn list(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        p: &ListParams,
    ) -> Result<ObjectList<DynamicObject>>;
    /// POST a new object (namespace taken from `ns`, else from the object).
    async fn create(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        obj: &DynamicObject,
        p: &PostParams,
    ) -> Result<DynamicObject>;
    /// PUT an object (optimistic concurrency on `metadata.resourceVersion`).
    async fn update(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        obj: &DynamicObject,
        p: &PostParams,
    ) -> Result<DynamicObject>;
    /// PUT the `status` subresource.
    async fn update_status(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        obj: &DynamicObject,
        p: &PostParams,
    ) -> Result<DynamicObject>;
    /// PATCH an object, or a subresource when `subresource` is given (`status`, `scale`).
    async fn patch(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        patch: &Patch,
        p: &PatchParams,
    ) -> Result<DynamicObject>;
    /// DELETE an object.
    async fn delete(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        name: &str,
        p: &DeleteParams,
    ) -> Result<DeleteOutcome>;
    /// POST to a create-only subresource (`pods/binding`, `pods/eviction`).
    async fn create_subresource(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        name: &str,
        subresource: &str,
        body: &DynamicObject,
    ) -> Result<DynamicObject>;
    /// WATCH objects.
    async fn watch(
        &self,
        r: &ApiResource,
        ns: Option<&str>,
        p: &WatchParams,
    ) -> Result<WatchStream<DynamicObject>>;
    /// The resources the server serves now, one version of each group and resource (the one
    /// components should use: the storage version in-process, the preferred version over
    /// HTTP, as upstream `ServerPreferredResources`), built-in and defined by
    /// CustomResourceDefinitions. The default answers the built-in resources only (clients
    /// of a fixed API, test doubles).
    async fn discover(&self) -> Result<Vec<DiscoveredResource>> {
        Ok(builtin_resources())
    }
    /// GET `pods/NAME/log` as bytes (non-follow).
    async fn logs(&self, ns: &str, pod: &str, p: &LogParams) -> Result<Vec<u8>> {
        let _ = (ns, pod, p);
        Err(ApiError::new(
            405,
            crate::status::reason::METHOD_NOT_ALLOWED,
            "logs not supported by this client",
        )
        .into())
    }
}

/// A shared client.
pub type SharedClient = Arc<dyn Client>;

/// A typed view of one resource type over any [`Client`], like kube-rs' `Api<K>`.
///
/// ```no_run
/// # async fn f(client: orch_types::client::SharedClient) -> orch_types::client::Result<()> {
/// use k8s_openapi::api::core::v1::Pod;
/// use orch_types::client::Api;
/// let pods: Api<Pod> = Api::namespaced(client, "default");
/// let p = pods.get("web-0").await?;
/// # Ok(()) }
/// ```
pub struct Api<K> {
    client: SharedClient,
    resource: ApiResource,
    namespace: Option<String>,
    _k: std::marker::PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            resource: self.resource.clone(),
            namespace: self.namespace.clone(),
            _k: std::marker::PhantomData,
        }
    }
}

impl<K> Api<K>
where
    K: k8s_openapi::Resource + Serialize + DeserializeOwned + Clone + Send + 'static,
    K::Scope: 'static,
{
    /// All namespaces (or a cluster-scoped kind).
    pub fn all(client: SharedClient) -> Self {
        Self {
            client,
            resource: ApiResource::of::<K>(),
            namespace: None,
            _k: std::marker::PhantomData,
        }
    }

    /// One namespace.
    pub fn namespaced(client: SharedClient, ns: &str) -> Self {
        Self {
            namespace: Some(ns.into()),
            ..Self::all(client)
        }
    }

    /// The resource type.
    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }

    fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// GET.
    pub async fn get(&self, name: &str) -> Result<K> {
        Ok(self
            .client
            .get(&self.resource, self.ns(), name)
            .await?
            .to_typed()?)
    }

    /// GET, `None` on 404.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// LIST.
    pub async fn list(&self, p: &ListParams) -> Result<ObjectList<K>> {
        let l = self.client.list(&self.resource, self.ns(), p).await?;
        let items = l
            .items
            .iter()
            .map(DynamicObject::to_typed)
            .collect::<std::result::Result<Vec<K>, _>>()?;
        Ok(ObjectList {
            metadata: l.metadata,
            items,
        })
    }

    /// POST.
    pub async fn create(&self, obj: &K) -> Result<K> {
        let d = DynamicObject::from_typed(obj)?;
        let ns = self.ns().or(d.namespace()).map(str::to_string);
        Ok(self
            .client
            .create(&self.resource, ns.as_deref(), &d, &PostParams::default())
            .await?
            .to_typed()?)
    }

    /// PUT.
    pub async fn replace(&self, obj: &K) -> Result<K> {
        let d = DynamicObject::from_typed(obj)?;
        let ns = self.ns().or(d.namespace()).map(str::to_string);
        Ok(self
            .client
            .update(&self.resource, ns.as_deref(), &d, &PostParams::default())
            .await?
            .to_typed()?)
    }

    /// PUT status.
    pub async fn replace_status(&self, obj: &K) -> Result<K> {
        let d = DynamicObject::from_typed(obj)?;
        let ns = self.ns().or(d.namespace()).map(str::to_string);
        Ok(self
            .client
            .update_status(&self.resource, ns.as_deref(), &d, &PostParams::default())
            .await?
            .to_typed()?)
    }

    /// PATCH.
    pub async fn patch(&self, name: &str, patch: &Patch, p: &PatchParams) -> Result<K> {
        Ok(self
            .client
            .patch(&self.resource, self.ns(), name, None, patch, p)
            .await?
            .to_typed()?)
    }

    /// PATCH status.
    pub async fn patch_status(&self, name: &str, patch: &Patch, p: &PatchParams) -> Result<K> {
        Ok(self
            .client
            .patch(&self.resource, self.ns(), name, Some("status"), patch, p)
            .await?
            .to_typed()?)
    }

    /// DELETE.
    pub async fn delete(&self, name: &str, p: &DeleteParams) -> Result<DeleteOutcome> {
        self.client.delete(&self.resource, self.ns(), name, p).await
    }

    /// WATCH, typed.
    #[allow(clippy::result_large_err)]
    pub async fn watch(&self, p: &WatchParams) -> Result<WatchStream<K>> {
        let s = self.client.watch(&self.resource, self.ns(), p).await?;
        Ok(
            s.map(|ev| ev.and_then(|ev| Ok(ev.try_map(|o| o.to_typed::<K>())?)))
                .boxed(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_event_wire_shape() {
        let ev: WatchEvent<DynamicObject> =
            WatchEvent::Added(DynamicObject::new("v1", "ConfigMap", "c"));
        let j = serde_json::to_value(&ev).unwrap();
        assert_eq!(j["type"], "ADDED");
        assert_eq!(j["object"]["metadata"]["name"], "c");
        let back: WatchEvent<DynamicObject> = serde_json::from_value(j).unwrap();
        assert_eq!(back, ev);
        let err: WatchEvent<DynamicObject> = serde_json::from_str(
            r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","code":410,"reason":"Expired"}}"#,
        )
        .unwrap();
        assert!(matches!(err, WatchEvent::Error(s) if s.code == Some(410)));
    }

    #[test]
    fn watch_error_events_carry_the_status_as_kube_apiserver_writes_it() {
        let e = crate::ApiError::expired("too old resource version: 1 (5)");
        let ev: WatchEvent<DynamicObject> = WatchEvent::Error(e.to_status());
        let mut want = br#"{"type":"ERROR","object":"#.to_vec();
        want.extend(e.to_json_bytes().trim_ascii_end());
        want.push(b'}');
        assert_eq!(
            String::from_utf8(serde_json::to_vec(&ev).unwrap()).unwrap(),
            String::from_utf8(want).unwrap()
        );
        assert!(serde_json::to_string(&ev)
            .unwrap()
            .starts_with(r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure""#));
    }
}
