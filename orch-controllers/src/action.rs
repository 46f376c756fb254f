//! [`Action`]: what a reconciler wants done, as data. Drivers apply actions through a
//! `Client` ([`apply`]); tests and the simulator inspect them directly.

use crate::expectations::Expectations;
use orch_types::client::{
    ClientError, DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
    SharedClient,
};
use orch_types::events::{reason, EventRecorder, EventType, ObjectRef};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
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
    /// Look at this object again after the delay.
    Requeue(Duration),
}

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

/// Everything a driver needs to apply actions.
#[derive(Clone)]
pub struct Applier {
    /// The API.
    pub client: SharedClient,
    /// Event sink.
    pub recorder: std::sync::Arc<EventRecorder>,
    /// Expectations of the controller (create/delete in flight).
    pub expectations: Expectations,
    /// Time source (expectation timestamps).
    pub clock: orch_types::clock::SharedClock,
    /// fieldManager for writes.
    pub field_manager: String,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("field_manager", &self.field_manager)
            .finish_non_exhaustive()
    }
}

impl Applier {
    fn post(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        }
    }

    /// Applies actions in order; stops at the first API error (the key is then requeued with
    /// back-off by the caller). Returns the requeue delay asked for, if any.
    pub async fn apply(&self, actions: Vec<Action>) -> Result<Option<Duration>, ClientError> {
        let requeue = requeue_of(&actions);
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
        let mut first_err = None;
        for a in actions {
            if let Err(e) = self.apply_one(a).await {
                tracing::debug!(error = %e, "action failed");
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(requeue),
        }
    }

    async fn apply_one(&self, a: Action) -> Result<(), ClientError> {
        match a {
            Action::Create { resource, object } => {
                let ns = object.namespace().map(str::to_string);
                self.client
                    .create(&resource, ns.as_deref(), &object, &self.post())
                    .await?;
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
                self.client
                    .update(&resource, ns.as_deref(), &object, &self.post())
                    .await?;
            }
            Action::UpdateStatus { resource, object } => {
                let ns = object.namespace().map(str::to_string);
                self.client
                    .update_status(&resource, ns.as_deref(), &object, &self.post())
                    .await?;
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
                    ..Default::default()
                };
                self.client
                    .patch(
                        &resource,
                        namespace.as_deref(),
                        &name,
                        subresource.as_deref(),
                        &patch,
                        &p,
                    )
                    .await?;
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
                match (r, owner) {
                    (Ok(_), Some((_, o))) => {
                        self.event(
                            &o,
                            EventType::Normal,
                            reason::SUCCESSFUL_DELETE,
                            &format!("Deleted pod: {name}"),
                        )
                        .await;
                    }
                    (Ok(_), None) => {}
                    (Err(e), _) if e.is_not_found() => {
                        // Already gone: the deletion will not be observed as an event of ours
                        // only if the cache never saw it; either way it is done.
                    }
                    (Err(e), Some((k, o))) => {
                        self.expectations.deletion_observed(&k);
                        self.event(
                            &o,
                            EventType::Warning,
                            reason::FAILED_DELETE,
                            &format!("Error deleting: {e}"),
                        )
                        .await;
                        return Err(e);
                    }
                    (Err(e), None) => return Err(e),
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
            Action::Requeue(_) => {}
        }
        Ok(())
    }

    async fn event(&self, o: &ObjectRef, t: EventType, reason: &str, msg: &str) {
        if let Err(e) = self.recorder.record(o, t, reason, msg).await {
            tracing::debug!(error = %e, "event not recorded");
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
            let chunk: Vec<DynamicObject> = it.by_ref().take(n).collect();
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
                        self.event(
                            owner,
                            EventType::Normal,
                            reason::SUCCESSFUL_CREATE,
                            &format!("Created pod: {}", created.name()),
                        )
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
    use std::sync::Arc;

    #[tokio::test]
    async fn slow_start_stops_at_first_failure_and_lowers_expectations() {
        let client = Arc::new(ScriptedClient {
            fail_create_at: Some(3),
            ..Default::default()
        });
        let clock: orch_types::clock::SharedClock =
            Arc::new(orch_types::clock::ManualClock::at_epoch_seconds(0));
        let exp = Expectations::new();
        let ap = Applier {
            client: client.clone(),
            recorder: Arc::new(EventRecorder::new(
                client.clone(),
                clock.clone(),
                "replicaset-controller",
                None,
            )),
            expectations: exp.clone(),
            clock,
            field_manager: "test".into(),
        };
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
}
