//! [`Action`]: what a reconciler wants done, as data, and the [`Applier`] that carries actions
//! out through a `Client` for both drivers: slow-start pod batches, expectations raised before
//! and lowered on failure, events recorded after the API answered, one field manager. What the
//! server returned for each write is handed to an [`Observer`] (the steppable driver feeds its
//! caches from it); generated names can come from a seeded [`NameGenerator`].

use crate::expectations::Expectations;
use orch_types::client::{
    ClientError, DeleteOutcome, DeleteParams, Patch, PatchParams, PostParams, Preconditions,
    PropagationPolicy, SharedClient,
};
use orch_types::events::{reason, EventRecorder, EventType, ObjectRef};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use std::sync::Arc;
use std::time::Duration;

/// One step a reconciler asks for.
#[must_use = "an action does nothing until a driver applies it"]
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// POST an object (namespace from the object).
    Create {
        /// Resource type.
        resource: ApiResource,
        /// The object.
        object: DynamicObject,
    },
    /// POST an object; when one of that name exists already (409 AlreadyExists: the
    /// reconciler's cache has not seen it), PUT the object's labels and content over the stored
    /// one instead (its other metadata and resourceVersion kept), so that a controller that
    /// owns an object by name converges instead of failing its create until its cache catches
    /// up. Upstream controllers choose between create and update from their lister and retry
    /// a failed create (`pkg/controller/endpoint/endpoints_controller.go` `syncService`); this
    /// takes the update they would make on the retry.
    CreateOrUpdate {
        /// Resource type.
        resource: ApiResource,
        /// The object (namespace and name set).
        object: DynamicObject,
    },
    /// Create controller-owned pods in slow-start batches of 1, 2, 4, … stopping at the
    /// first failure (`controller_utils.go` `slowStartBatch`); each success emits
    /// `SuccessfulCreate` on `owner`, the first failure `FailedCreate`.
    CreatePods {
        /// The pods (with `generateName`).
        pods: Vec<DynamicObject>,
        /// The owning controller (event target).
        owner: ObjectRef,
        /// Expectations key of the owner.
        expectation_key: String,
    },
    /// PUT an object.
    Update {
        /// Resource type.
        resource: ApiResource,
        /// The object (with resourceVersion for optimistic concurrency).
        object: DynamicObject,
    },
    /// PUT the status subresource.
    UpdateStatus {
        /// Resource type.
        resource: ApiResource,
        /// The object.
        object: DynamicObject,
    },
    /// PATCH an object or subresource.
    Patch {
        /// Resource type.
        resource: ApiResource,
        /// Namespace.
        namespace: Option<String>,
        /// Name.
        name: String,
        /// Subresource (`status`, `finalize`).
        subresource: Option<String>,
        /// The patch.
        patch: Patch,
    },
    /// DELETE an object.
    Delete {
        /// Resource type.
        resource: ApiResource,
        /// Namespace.
        namespace: Option<String>,
        /// Name.
        name: String,
        /// UID precondition (never delete a newer object of the same name).
        uid: Option<String>,
        /// Propagation policy.
        propagation: Option<PropagationPolicy>,
        /// `gracePeriodSeconds` (`Some(0)` = force).
        grace_period_seconds: Option<i64>,
        /// Expectations key and event target of a controller deleting its pods
        /// (`SuccessfulDelete` / `FailedDelete`).
        owner: Option<(String, ObjectRef)>,
    },
    /// Record an Event.
    Event {
        /// About this object.
        object: ObjectRef,
        /// Normal / Warning.
        type_: EventType,
        /// Upstream reason.
        reason: String,
        /// Message.
        message: String,
    },
    /// Carry out `then` only if the API confirms, now, that every object of `absent` is gone:
    /// a cache may lag behind the server (upstream garbage collector `isDangling`, namespace
    /// deleter's final list). If one is still there, nothing is done and the key is looked at
    /// again after a second.
    Guarded {
        /// What must be absent.
        absent: Vec<Lookup>,
        /// What to do then.
        then: Vec<Action>,
    },
    /// Ask the API, with each [`Authorization`]'s SubjectAccessReview in turn, whether a user
    /// may do something, and carry out the actions of the first one allowed (upstream CSR
    /// approver's `authorize`, `pkg/controller/certificates/approver/sarapprove.go`). When
    /// none is, nothing is done and the key is looked at again after [`UNAUTHORIZED_RETRY`].
    Authorized(Vec<Authorization>),
    /// Look at this object again after the delay.
    Requeue(Duration),
}

/// One choice of an [`Action::Authorized`].
#[derive(Debug, Clone, PartialEq)]
pub struct Authorization {
    /// The `authorization.k8s.io/v1` SubjectAccessReview to create (its `spec`).
    pub review: DynamicObject,
    /// What to do when its answer is `allowed`.
    pub then: Vec<Action>,
}

/// Delay before a key none of whose [`Authorization`]s was allowed is looked at again.
pub const UNAUTHORIZED_RETRY: Duration = Duration::from_secs(30);

/// An object (or any object of a namespace) an [`Action::Guarded`] requires to be absent.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// Resource type.
    pub resource: ApiResource,
    /// Namespace.
    pub namespace: Option<String>,
    /// Name; `None`: any object of the resource in `namespace`.
    pub name: Option<String>,
    /// Only an object with this UID counts as present (another UID under the name is a new
    /// object, so the one referenced is gone).
    pub uid: Option<String>,
}

/// Delay before a key whose guard found the object still present is looked at again.
pub const GUARD_RETRY: Duration = Duration::from_secs(1);

impl Action {
    /// Reconcile again after `after` (kube-runtime style).
    pub fn requeue(after: Duration) -> Self {
        Self::Requeue(after)
    }

    /// A Normal event.
    pub fn normal(object: ObjectRef, reason: &str, message: impl Into<String>) -> Self {
        Self::Event {
            object,
            type_: EventType::Normal,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A Warning event.
    pub fn warning(object: ObjectRef, reason: &str, message: impl Into<String>) -> Self {
        Self::Event {
            object,
            type_: EventType::Warning,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A typed create.
    pub fn create<K: crate::object::Object + k8s_openapi::Resource>(o: &K) -> Self
    where
        K::Scope: 'static,
    {
        Self::Create {
            resource: ApiResource::of::<K>(),
            object: to_dyn(o),
        }
    }

    /// A typed [`Action::CreateOrUpdate`].
    pub fn create_or_update<K: crate::object::Object + k8s_openapi::Resource>(o: &K) -> Self
    where
        K::Scope: 'static,
    {
        Self::CreateOrUpdate {
            resource: ApiResource::of::<K>(),
            object: to_dyn(o),
        }
    }

    /// A typed update.
    pub fn update<K: crate::object::Object + k8s_openapi::Resource>(o: &K) -> Self
    where
        K::Scope: 'static,
    {
        Self::Update {
            resource: ApiResource::of::<K>(),
            object: to_dyn(o),
        }
    }

    /// A typed status update.
    pub fn update_status<K: crate::object::Object + k8s_openapi::Resource>(o: &K) -> Self
    where
        K::Scope: 'static,
    {
        Self::UpdateStatus {
            resource: ApiResource::of::<K>(),
            object: to_dyn(o),
        }
    }

    /// A typed merge patch.
    pub fn merge_patch<K: k8s_openapi::Resource>(
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        body: serde_json::Value,
    ) -> Self
    where
        K::Scope: 'static,
    {
        Self::Patch {
            resource: ApiResource::of::<K>(),
            namespace: namespace.map(Into::into),
            name: name.into(),
            subresource: subresource.map(Into::into),
            patch: Patch::Merge(body),
        }
    }

    /// A merge patch of the status subresource of `o` to `status` (serialized as the
    /// object's `status`): fields `status` leaves out are kept as stored, so one controller
    /// can own part of a status; no resourceVersion, so no conflict with writers of the spec.
    pub fn patch_status<K, S>(o: &K, status: &S) -> Self
    where
        K: crate::object::Object + k8s_openapi::Resource,
        K::Scope: 'static,
        S: serde::Serialize,
    {
        let m = o.meta();
        // A derived `Serialize` cannot fail; never send `null` (that would clear the status).
        let body = serde_json::to_value(status).unwrap_or_else(|_| serde_json::json!({}));
        Self::Patch {
            resource: ApiResource::of::<K>(),
            namespace: m.namespace.clone(),
            name: m.name.clone().unwrap_or_default(),
            subresource: Some("status".into()),
            patch: Patch::Merge(serde_json::json!({ "status": body })),
        }
    }

    /// A typed delete with UID precondition.
    pub fn delete<K: crate::object::Object + k8s_openapi::Resource>(o: &K) -> Self
    where
        K::Scope: 'static,
    {
        let m = o.meta();
        Self::Delete {
            resource: ApiResource::of::<K>(),
            namespace: m.namespace.clone(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone(),
            propagation: None,
            grace_period_seconds: None,
            owner: None,
        }
    }
}

fn to_dyn<K: crate::object::Object>(o: &K) -> DynamicObject {
    // Serializing a typed k8s-openapi struct cannot fail; keep an empty object if it ever did.
    o.to_dynamic().unwrap_or_default()
}

/// The shortest requeue among `actions`.
pub fn requeue_of(actions: &[Action]) -> Option<Duration> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Requeue(d) => Some(*d),
            _ => None,
        })
        .min()
}

/// Sees what the server returned for each write an [`Applier`] made.
pub trait Observer: Send + Sync {
    /// The object as stored after a create, update, patch, or a delete that is still pending
    /// (finalizers, graceful deletion).
    fn written(&self, resource: &ApiResource, object: DynamicObject);
    /// The last state of an object a delete removed.
    fn deleted(&self, resource: &ApiResource, object: DynamicObject);
    /// An event the applier recorded (whether or not it was written to the API).
    fn event(&self, _object: &ObjectRef, _type_: EventType, _reason: &str, _message: &str) {}
}

/// Suffixes for `metadata.generateName` filled in by the client side (the simulator's seeded
/// names); without one the API server generates them.
pub trait NameGenerator: Send + Sync {
    /// The next five-character suffix.
    fn suffix(&self) -> String;
}

/// A deterministic [`NameGenerator`]: SplitMix64 from a seed, upstream's alphabet
/// (`bcdfghjklmnpqrstvwxz2456789`, `apiserver/pkg/storage/names`).
#[derive(Debug)]
pub struct SeededNames(parking_lot::Mutex<u64>);

impl SeededNames {
    /// Names from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(parking_lot::Mutex::new(seed))
    }
}

impl NameGenerator for SeededNames {
    fn suffix(&self) -> String {
        const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut state = self.0.lock();
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let mut v = z ^ (z >> 31);
        (0..5)
            .map(|_| {
                let c = ALPHA[(v % ALPHA.len() as u64) as usize] as char;
                v /= ALPHA.len() as u64;
                c
            })
            .collect()
    }
}

/// Carries out [`Action`]s through a `Client`; one per controller, cheap to clone.
#[derive(Clone)]
pub struct Applier {
    client: SharedClient,
    recorder: Option<Arc<EventRecorder>>,
    expectations: Expectations,
    clock: orch_types::clock::SharedClock,
    field_manager: String,
    observer: Option<Arc<dyn Observer>>,
    names: Option<Arc<dyn NameGenerator>>,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("field_manager", &self.field_manager)
            .finish_non_exhaustive()
    }
}

impl Applier {
    /// An applier for `component` (the event source and field manager, e.g.
    /// `replicaset-controller`) that records events and has expectations of its own.
    pub fn new(
        client: SharedClient,
        clock: orch_types::clock::SharedClock,
        component: &str,
    ) -> Self {
        Self {
            recorder: Some(Arc::new(EventRecorder::new(
                client.clone(),
                clock.clone(),
                component,
                None,
            ))),
            client,
            expectations: Expectations::new(),
            clock,
            field_manager: component.into(),
            observer: None,
            names: None,
        }
    }

    /// Shares the controller's expectations (raised before creates and deletes are issued).
    pub fn with_expectations(mut self, e: Expectations) -> Self {
        self.expectations = e;
        self
    }

    /// Hands every write's result to `o`.
    pub fn with_observer(mut self, o: Arc<dyn Observer>) -> Self {
        self.observer = Some(o);
        self
    }

    /// Fills `generateName` with names from `n`.
    pub fn with_names(mut self, n: Arc<dyn NameGenerator>) -> Self {
        self.names = Some(n);
        self
    }

    /// Does not write Events to the API (the observer still sees them).
    pub fn without_events(mut self) -> Self {
        self.recorder = None;
        self
    }

    fn post(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        }
    }

    fn name(&self, o: &mut DynamicObject) {
        if let Some(n) = &self.names {
            if o.metadata.name.as_deref().is_none_or(str::is_empty) {
                if let Some(base) = &o.metadata.generate_name {
                    o.metadata.name = Some(format!("{base}{}", n.suffix()));
                }
            }
        }
    }

    fn written(&self, resource: &ApiResource, o: DynamicObject) {
        if let Some(obs) = &self.observer {
            obs.written(resource, o);
        }
    }

    /// Applies actions in order; stops at the first API error (the key is then requeued with
    /// back-off by the caller). Returns the requeue delay asked for, if any.
    pub async fn apply(&self, actions: Vec<Action>) -> Result<Option<Duration>, ClientError> {
        let mut requeue = requeue_of(&actions);
        // Raise expectations for everything about to be issued before issuing any of it.
        let mut per_key: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
        for a in &actions {
            match a {
                Action::CreatePods {
                    pods,
                    expectation_key,
                    ..
                } => {
                    per_key.entry(expectation_key.clone()).or_default().0 += pods.len() as i64;
                }
                Action::Delete {
                    owner: Some((k, _)),
                    ..
                } => per_key.entry(k.clone()).or_default().1 += 1,
                _ => {}
            }
        }
        let now = self.clock.now();
        for (k, (add, del)) in &per_key {
            self.expectations.expect(k, *add, *del, now);
        }
        let mut actions = actions.into_iter();
        while let Some(a) = actions.next() {
            match self.apply_one(a).await {
                Ok(Some(d)) => requeue = Some(requeue.map_or(d, |r| r.min(d))),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "action failed; the rest are not issued");
                    // What was expected of the actions never issued will not be observed.
                    for skipped in actions {
                        self.unexpect(&skipped);
                    }
                    return Err(e);
                }
            }
        }
        Ok(requeue)
    }

    /// Lowers the expectations `apply` raised for an action it did not issue.
    fn unexpect(&self, a: &Action) {
        match a {
            Action::CreatePods {
                pods,
                expectation_key,
                ..
            } => {
                for _ in pods {
                    self.expectations.creation_observed(expectation_key);
                }
            }
            Action::Delete {
                owner: Some((k, _)),
                ..
            } => self.expectations.deletion_observed(k),
            _ => {}
        }
    }

    /// Whether the API confirms that `l` is absent.
    async fn absent(&self, l: &Lookup) -> Result<bool, ClientError> {
        match &l.name {
            Some(name) => match self
                .client
                .get(&l.resource, l.namespace.as_deref(), name)
                .await
            {
                Ok(o) => Ok(l.uid.is_some() && o.metadata.uid != l.uid),
                Err(e) if e.is_not_found() => Ok(true),
                Err(e) => Err(e),
            },
            None => {
                let p = orch_types::client::ListParams {
                    limit: Some(1),
                    ..Default::default()
                };
                match self
                    .client
                    .list(&l.resource, l.namespace.as_deref(), &p)
                    .await
                {
                    Ok(list) => Ok(list.items.is_empty()),
                    Err(e) if e.is_not_found() || e.api().is_some_and(|a| a.code == 405) => {
                        Ok(true)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// One action; `Some(d)` asks for the key again after `d` (a guard found its object).
    fn apply_one(
        &self,
        a: Action,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<Duration>, ClientError>> + Send + '_>,
    > {
        Box::pin(async move {
            match a {
                Action::Create {
                    resource,
                    mut object,
                } => {
                    self.name(&mut object);
                    let ns = object.namespace().map(str::to_string);
                    let o = self
                        .client
                        .create(&resource, ns.as_deref(), &object, &self.post())
                        .await?;
                    self.written(&resource, o);
                }
                Action::CreateOrUpdate { resource, object } => {
                    let ns = object.namespace().map(str::to_string);
                    let created = self
                        .client
                        .create(&resource, ns.as_deref(), &object, &self.post())
                        .await;
                    match created {
                        Ok(o) => self.written(&resource, o),
                        Err(e) if e.is_already_exists() => {
                            let cur = self
                                .client
                                .get(&resource, ns.as_deref(), object.name())
                                .await?;
                            let mut next = object;
                            let labels = next.metadata.labels.take();
                            next.metadata = cur.metadata.clone();
                            next.metadata.labels = labels;
                            if next.metadata == cur.metadata && next.data == cur.data {
                                self.written(&resource, cur);
                            } else {
                                let o = self
                                    .client
                                    .update(&resource, ns.as_deref(), &next, &self.post())
                                    .await?;
                                self.written(&resource, o);
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                Action::CreatePods {
                    pods,
                    owner,
                    expectation_key,
                } => {
                    self.slow_start(pods, &owner, &expectation_key).await?;
                }
                Action::Update { resource, object } => {
                    let ns = object.namespace().map(str::to_string);
                    let o = self
                        .client
                        .update(&resource, ns.as_deref(), &object, &self.post())
                        .await?;
                    self.written(&resource, o);
                }
                Action::UpdateStatus { resource, object } => {
                    let ns = object.namespace().map(str::to_string);
                    let o = self
                        .client
                        .update_status(&resource, ns.as_deref(), &object, &self.post())
                        .await?;
                    self.written(&resource, o);
                }
                Action::Patch {
                    resource,
                    namespace,
                    name,
                    subresource,
                    patch,
                } => {
                    let p = PatchParams {
                        field_manager: Some(self.field_manager.clone()),
                        // A controller's server-side apply states what it owns: it takes
                        // fields over from other managers instead of failing with a conflict
                        // (controller-runtime's `client.ForceOwnership`).
                        force: matches!(patch, Patch::Apply(_)),
                        ..Default::default()
                    };
                    let o = self
                        .client
                        .patch(
                            &resource,
                            namespace.as_deref(),
                            &name,
                            subresource.as_deref(),
                            &patch,
                            &p,
                        )
                        .await?;
                    // A `scale` answer is an autoscaling/v1 Scale, not the object: an observer
                    // (the step driver's caches) is told the object as it now is. A `finalize`
                    // answer is the namespace itself; every other subresource patch answers
                    // with the whole object.
                    if subresource.as_deref() == Some("scale") {
                        if self.observer.is_some() {
                            let o = self
                                .client
                                .get(&resource, namespace.as_deref(), &name)
                                .await?;
                            self.written(&resource, o);
                        }
                    } else {
                        self.written(&resource, o);
                    }
                }
                Action::Delete {
                    resource,
                    namespace,
                    name,
                    uid,
                    propagation,
                    grace_period_seconds,
                    owner,
                } => {
                    let p = DeleteParams {
                        propagation_policy: propagation,
                        grace_period_seconds,
                        preconditions: uid.map(|u| Preconditions {
                            uid: Some(u),
                            resource_version: None,
                        }),
                        ..Default::default()
                    };
                    let r = self
                        .client
                        .delete(&resource, namespace.as_deref(), &name, &p)
                        .await;
                    match r {
                        Ok(outcome) => {
                            match outcome {
                                DeleteOutcome::Deleted(o) => {
                                    if let Some(obs) = &self.observer {
                                        obs.deleted(&resource, o);
                                    }
                                }
                                DeleteOutcome::Pending(o) => self.written(&resource, o),
                            }
                            if let Some((_, o)) = owner {
                                self.event(
                                    &o,
                                    EventType::Normal,
                                    reason::SUCCESSFUL_DELETE,
                                    &format!("Deleted pod: {name}"),
                                )
                                .await;
                            }
                        }
                        Err(e) if e.is_not_found() => {
                            // Already gone: whoever deleted it, it is done.
                        }
                        Err(e) => {
                            if let Some((k, o)) = owner {
                                self.expectations.deletion_observed(&k);
                                self.event(
                                    &o,
                                    EventType::Warning,
                                    reason::FAILED_DELETE,
                                    &format!("Error deleting: {e}"),
                                )
                                .await;
                            }
                            return Err(e);
                        }
                    }
                }
                Action::Event {
                    object,
                    type_,
                    reason,
                    message,
                } => {
                    self.event(&object, type_, &reason, &message).await;
                }
                Action::Guarded { absent, then } => {
                    for l in &absent {
                        if !self.absent(l).await? {
                            return Ok(Some(GUARD_RETRY));
                        }
                    }
                    let mut requeue = requeue_of(&then);
                    for a in then {
                        if let Some(d) = self.apply_one(a).await? {
                            requeue = Some(requeue.map_or(d, |r| r.min(d)));
                        }
                    }
                    return Ok(requeue);
                }
                Action::Authorized(choices) => {
                    let sar = ApiResource::of::<
                        k8s_openapi::api::authorization::v1::SubjectAccessReview,
                    >();
                    for choice in choices {
                        let answer = self
                            .client
                            .create(&sar, None, &choice.review, &PostParams::default())
                            .await?;
                        let allowed = answer
                            .data
                            .get("status")
                            .and_then(|s| s.get("allowed"))
                            .and_then(serde_json::Value::as_bool)
                            .unwrap_or(false);
                        if allowed {
                            let mut requeue = requeue_of(&choice.then);
                            for a in choice.then {
                                if let Some(d) = self.apply_one(a).await? {
                                    requeue = Some(requeue.map_or(d, |r| r.min(d)));
                                }
                            }
                            return Ok(requeue);
                        }
                    }
                    return Ok(Some(UNAUTHORIZED_RETRY));
                }
                Action::Requeue(_) => {}
            }
            Ok(None)
        })
    }

    async fn event(&self, o: &ObjectRef, t: EventType, reason: &str, msg: &str) {
        if let Some(obs) = &self.observer {
            obs.event(o, t, reason, msg);
        }
        if let Some(rec) = &self.recorder {
            if let Err(e) = rec.record(o, t, reason, msg).await {
                tracing::debug!(error = %e, "event not recorded");
            }
        }
    }

    async fn slow_start(
        &self,
        pods: Vec<DynamicObject>,
        owner: &ObjectRef,
        key: &str,
    ) -> Result<(), ClientError> {
        let pod_res = ApiResource::of::<k8s_openapi::api::core::v1::Pod>();
        let total = pods.len();
        let mut it = pods.into_iter();
        let mut batch = 1usize;
        let mut done = 0usize;
        while done < total {
            let n = batch.min(total - done);
            let mut chunk: Vec<DynamicObject> = it.by_ref().take(n).collect();
            for p in &mut chunk {
                self.name(p);
            }
            let futs = chunk.iter().map(|p| {
                let ns = p.namespace().map(str::to_string);
                let client = self.client.clone();
                let pod_res = pod_res.clone();
                let post = self.post();
                async move { client.create(&pod_res, ns.as_deref(), p, &post).await }
            });
            let results = futures::future::join_all(futs).await;
            let mut err = None;
            for r in results {
                match r {
                    Ok(created) => {
                        let msg = format!("Created pod: {}", created.name());
                        self.written(&pod_res, created);
                        self.event(owner, EventType::Normal, reason::SUCCESSFUL_CREATE, &msg)
                            .await;
                    }
                    Err(e) => {
                        // Not created: it will never be observed.
                        self.expectations.creation_observed(key);
                        self.event(
                            owner,
                            EventType::Warning,
                            reason::FAILED_CREATE,
                            &format!("Error creating: {e}"),
                        )
                        .await;
                        err.get_or_insert(e);
                    }
                }
            }
            done += n;
            if let Some(e) = err {
                // Skip the rest and lower expectations for them (upstream "skippedPods").
                for _ in done..total {
                    self.expectations.creation_observed(key);
                }
                return Err(e);
            }
            batch *= 2;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testclient::ScriptedClient;
    use std::sync::atomic::Ordering;

    /// A create-or-update whose object exists already (the reconciler's cache had not seen
    /// it) updates the stored object instead of failing with 409 AlreadyExists (issue 21: the
    /// endpoints controller's `endpoints "web" already exists` retry loop).
    #[tokio::test]
    async fn create_or_update_updates_an_object_that_exists() {
        let mut stored = DynamicObject::new("v1", "Endpoints", "web");
        stored.metadata.namespace = Some("default".into());
        stored.metadata.resource_version = Some("7".into());
        stored.metadata.uid = Some("u-1".into());
        stored.metadata.annotations = Some([("a".to_string(), "kept".to_string())].into());
        stored.metadata.labels = Some([("old".to_string(), "1".to_string())].into());
        stored.data.insert("subsets".into(), serde_json::json!([]));
        let client = Arc::new(ScriptedClient {
            items: parking_lot::Mutex::new(vec![stored]),
            ..Default::default()
        });
        let clock: orch_types::clock::SharedClock =
            Arc::new(orch_types::clock::ManualClock::at_epoch_seconds(0));
        let ap = Applier::new(client.clone(), clock, "endpoint-controller");
        let mut want = DynamicObject::new("v1", "Endpoints", "web");
        want.metadata.namespace = Some("default".into());
        want.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        let subsets = serde_json::json!([{"addresses": [{"ip": "10.0.0.1"}]}]);
        want.data.insert("subsets".into(), subsets.clone());
        let resource = ApiResource::of::<k8s_openapi::api::core::v1::Endpoints>();
        // A plain create fails, as it did.
        let plain = ap
            .apply(vec![Action::Create {
                resource: resource.clone(),
                object: want.clone(),
            }])
            .await;
        assert!(plain.is_err_and(|e| e.is_already_exists()));
        ap.apply(vec![Action::CreateOrUpdate {
            resource,
            object: want,
        }])
        .await
        .expect("create-or-update");
        let updated = client.updated.lock().clone();
        let [put] = updated.as_slice() else {
            panic!("{updated:?}")
        };
        assert_eq!(put.resource_version(), Some("7"));
        assert_eq!(put.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(put.metadata.annotations.as_ref().unwrap()["a"], "kept");
        assert_eq!(
            put.metadata.labels,
            Some([("app".to_string(), "web".to_string())].into())
        );
        assert_eq!(put.data["subsets"], subsets);
    }

    #[tokio::test]
    async fn slow_start_stops_at_first_failure_and_lowers_expectations() {
        let client = Arc::new(ScriptedClient {
            fail_create_at: Some(3),
            ..Default::default()
        });
        let clock: orch_types::clock::SharedClock =
            Arc::new(orch_types::clock::ManualClock::at_epoch_seconds(0));
        let exp = Expectations::new();
        let ap = Applier::new(client.clone(), clock, "replicaset-controller")
            .with_expectations(exp.clone());
        let mut pod = DynamicObject::new("v1", "Pod", "");
        pod.metadata.name = None;
        pod.metadata.generate_name = Some("web-".into());
        pod.metadata.namespace = Some("default".into());
        let owner = ObjectRef::new("apps/v1", "ReplicaSet", Some("default"), "web", "u");
        let r = ap
            .apply(vec![Action::CreatePods {
                pods: vec![pod; 10],
                owner,
                expectation_key: "default/web".into(),
            }])
            .await;
        assert!(r.is_err());
        // Batches of 1 then 2; the second batch's failure stops the rest (3 calls, not 10).
        // Pod creates plus event creates go through the same client: count pods only.
        assert_eq!(
            client
                .created
                .lock()
                .iter()
                .filter(|o| o.types.kind == "Pod")
                .count(),
            2
        );
        // 10 expected; 1 failed and 7 skipped were lowered; 2 await their watch events.
        assert_eq!(exp.pending("default/web"), (2, 0));
        assert!(client.creates.load(Ordering::SeqCst) >= 3);
    }

    #[tokio::test]
    async fn the_first_failure_stops_the_rest_and_lowers_their_expectations() {
        // The status write fails: nothing after it is issued (a job's finalizers must not go
        // before the UIDs are recorded), and what was expected of the rest is lowered.
        let client = Arc::new(ScriptedClient {
            fail_create_at: Some(1),
            ..Default::default()
        });
        let clock: orch_types::clock::SharedClock =
            Arc::new(orch_types::clock::ManualClock::at_epoch_seconds(0));
        let exp = Expectations::new();
        let ap = Applier::new(client.clone(), clock, "job-controller")
            .with_expectations(exp.clone())
            .without_events();
        let mut status = DynamicObject::new("v1", "ConfigMap", "first");
        status.metadata.namespace = Some("default".into());
        let mut pod = DynamicObject::new("v1", "Pod", "");
        pod.metadata.generate_name = Some("pi-".into());
        pod.metadata.namespace = Some("default".into());
        let owner = ObjectRef::new("batch/v1", "Job", Some("default"), "pi", "u");
        let r = ap
            .apply(vec![
                Action::Create {
                    resource: ApiResource::of::<k8s_openapi::api::core::v1::ConfigMap>(),
                    object: status,
                },
                Action::CreatePods {
                    pods: vec![pod; 3],
                    owner: owner.clone(),
                    expectation_key: "default/pi".into(),
                },
                Action::Delete {
                    resource: ApiResource::of::<k8s_openapi::api::core::v1::Pod>(),
                    namespace: Some("default".into()),
                    name: "pi-old".into(),
                    uid: None,
                    propagation: None,
                    grace_period_seconds: None,
                    owner: Some(("default/pi".into(), owner)),
                },
            ])
            .await;
        assert!(r.is_err());
        assert_eq!(
            client.creates.load(Ordering::SeqCst),
            1,
            "only the failed write"
        );
        assert_eq!(exp.pending("default/pi"), (0, 0));
    }

    #[tokio::test]
    async fn guarded_actions_run_only_when_the_api_confirms_the_owner_is_gone() {
        let client = Arc::new(ScriptedClient::default());
        let clock: orch_types::clock::SharedClock =
            Arc::new(orch_types::clock::ManualClock::at_epoch_seconds(0));
        let ap = Applier::new(client.clone(), clock, "gc").without_events();
        let mut cm = DynamicObject::new("v1", "ConfigMap", "dependent");
        cm.metadata.namespace = Some("default".into());
        let guarded = || Action::Guarded {
            absent: vec![Lookup {
                resource: ApiResource::of::<k8s_openapi::api::apps::v1::ReplicaSet>(),
                namespace: Some("default".into()),
                name: Some("owner".into()),
                uid: Some("u1".into()),
            }],
            then: vec![Action::Create {
                resource: ApiResource::of::<k8s_openapi::api::core::v1::ConfigMap>(),
                object: cm.clone(),
            }],
        };
        // The cache said the owner was gone, but the API still has it: nothing is done and the
        // key is looked at again shortly.
        let mut owner = DynamicObject::new("apps/v1", "ReplicaSet", "owner");
        owner.metadata.uid = Some("u1".into());
        client.items.lock().push(owner.clone());
        assert_eq!(ap.apply(vec![guarded()]).await.unwrap(), Some(GUARD_RETRY));
        assert!(client.created.lock().is_empty());
        // A new object under the same name is not the owner referenced: the guard passes.
        owner.metadata.uid = Some("u2".into());
        *client.items.lock() = vec![owner];
        assert_eq!(ap.apply(vec![guarded()]).await.unwrap(), None);
        assert_eq!(client.created.lock().len(), 1);
        // Gone altogether: passes too.
        client.items.lock().clear();
        assert_eq!(ap.apply(vec![guarded()]).await.unwrap(), None);
        assert_eq!(client.created.lock().len(), 2);
    }
}
