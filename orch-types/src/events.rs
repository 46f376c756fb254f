//! [`EventRecorder`]: records core/v1 `Event`s through any [`Client`], aggregating repeats.
//!
//! Mirrors client-go's `tools/record` (`event.go`, `events_cache.go`): an event is keyed by its
//! source, involved object, type, reason and message; the first occurrence creates an `Event`
//! named `<object>.<hex unix nanos>` in the object's namespace (`default` for cluster-scoped
//! objects), every repeat patches that event's `count` and `lastTimestamp` instead of creating a
//! new object. The decision is made by the pure [`EventAggregator`]; [`EventRecorder`] applies it.
//!
//! Upstream reasons used across orch live in [`reason`].
//!
//! ```
//! use orch_types::clock::ManualClock;
//! use orch_types::events::{EventAggregator, EventType, EventWrite, ObjectRef};
//! let clock = ManualClock::at_epoch_seconds(1_700_000_000);
//! let mut agg = EventAggregator::new("replicaset-controller", None);
//! let rs = ObjectRef::new("apps/v1", "ReplicaSet", Some("default"), "web-5d8f", "uid-1");
//! let first = agg.observe(&rs, EventType::Normal, "SuccessfulCreate", "Created pod: web-5d8f-abcde", &clock);
//! assert!(matches!(first, EventWrite::Create(_)));
//! let again = agg.observe(&rs, EventType::Normal, "SuccessfulCreate", "Created pod: web-5d8f-abcde", &clock);
//! assert!(matches!(again, EventWrite::Update { count: 2, .. }));
//! ```

use crate::client::{ClientError, Patch, PatchParams, PostParams, SharedClient};
use crate::clock::{Clock, SharedClock};
use crate::dynamic::DynamicObject;
use crate::registry::ApiResource;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use parking_lot::Mutex;
use std::collections::HashMap;

/// Event reasons used by upstream components (kept verbatim so `kubectl describe` reads the same).
pub mod reason {
    /// A controller created a pod (`controller_utils.go`).
    pub const SUCCESSFUL_CREATE: &str = "SuccessfulCreate";
    /// A controller failed to create a pod.
    pub const FAILED_CREATE: &str = "FailedCreate";
    /// A controller deleted a pod.
    pub const SUCCESSFUL_DELETE: &str = "SuccessfulDelete";
    /// A controller failed to delete a pod.
    pub const FAILED_DELETE: &str = "FailedDelete";
    /// The deployment controller scaled a ReplicaSet.
    pub const SCALING_REPLICA_SET: &str = "ScalingReplicaSet";
    /// A deployment's selector selects everything.
    pub const SELECTING_ALL: &str = "SelectingAll";
    /// A deployment rolled back.
    pub const DEPLOYMENT_ROLLBACK: &str = "DeploymentRollback";
    /// The scheduler bound a pod.
    pub const SCHEDULED: &str = "Scheduled";
    /// The scheduler could not place a pod.
    pub const FAILED_SCHEDULING: &str = "FailedScheduling";
    /// The taint manager deleted a pod for a NoExecute taint.
    pub const TAINT_MANAGER_EVICTION: &str = "TaintManagerEviction";
    /// Node lifecycle: a node's Ready condition changed.
    pub const NODE_NOT_READY: &str = "NodeNotReady";
    /// Node lifecycle: node became schedulable / unschedulable etc.
    pub const REGISTERED_NODE: &str = "RegisteredNode";
    /// Node lifecycle: node disappeared.
    pub const REMOVING_NODE: &str = "RemovingNode";
    /// Node IPAM ran out of CIDRs.
    pub const CIDR_NOT_AVAILABLE: &str = "CIDRNotAvailable";
    /// Node IPAM assigned a CIDR.
    pub const CIDR_ASSIGNMENT_FAILED: &str = "CIDRAssignmentFailed";
    /// Garbage collector: owner reference points into another namespace.
    pub const OWNER_REF_INVALID_NAMESPACE: &str = "OwnerRefInvalidNamespace";
    /// Kubelet: pulling an image.
    pub const PULLING: &str = "Pulling";
    /// Kubelet: image pulled.
    pub const PULLED: &str = "Pulled";
    /// Kubelet: container created.
    pub const CREATED: &str = "Created";
    /// Kubelet: container started.
    pub const STARTED: &str = "Started";
    /// Kubelet: container killed.
    pub const KILLING: &str = "Killing";
    /// Kubelet: back-off restarting a failed container.
    pub const BACK_OFF: &str = "BackOff";
    /// Kubelet: probe failed.
    pub const UNHEALTHY: &str = "Unhealthy";
    /// Kubelet: generic failure.
    pub const FAILED: &str = "Failed";
}

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Informational.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// The object an event is about (becomes `involvedObject`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `namespace` (`None` for cluster-scoped objects).
    pub namespace: Option<String>,
    /// `name`.
    pub name: String,
    /// `uid`.
    pub uid: String,
    /// `resourceVersion` (not part of the aggregation key).
    pub resource_version: Option<String>,
    /// `fieldPath`, e.g. `spec.containers{app}` (kubelet).
    pub field_path: Option<String>,
}

impl ObjectRef {
    /// A reference from its parts.
    pub fn new(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        uid: &str,
    ) -> Self {
        Self {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
            uid: uid.into(),
            resource_version: None,
            field_path: None,
        }
    }

    /// The reference of a typed object.
    pub fn of<K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>>(obj: &K) -> Self {
        Self::from_meta(K::API_VERSION, K::KIND, obj.metadata())
    }

    /// The reference of a dynamic object.
    pub fn of_dynamic(obj: &DynamicObject) -> Self {
        Self::from_meta(&obj.types.api_version, &obj.types.kind, &obj.metadata)
    }

    fn from_meta(api_version: &str, kind: &str, m: &ObjectMeta) -> Self {
        Self {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: m.namespace.clone(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            resource_version: m.resource_version.clone(),
            field_path: None,
        }
    }

    /// With a `fieldPath`.
    pub fn with_field_path(mut self, p: &str) -> Self {
        self.field_path = Some(p.into());
        self
    }

    fn to_object_reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some(self.api_version.clone()),
            kind: Some(self.kind.clone()),
            namespace: self.namespace.clone(),
            name: Some(self.name.clone()),
            uid: Some(self.uid.clone()),
            resource_version: self.resource_version.clone(),
            field_path: self.field_path.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AggKey {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
    uid: String,
    field_path: Option<String>,
    type_: EventType,
    reason: String,
    message: String,
}

#[derive(Debug, Clone)]
struct Seen {
    namespace: String,
    name: String,
    count: i32,
}

/// What the recorder must write for one observation.
#[derive(Debug, Clone, PartialEq)]
pub enum EventWrite {
    /// First occurrence: create this Event.
    Create(Box<Event>),
    /// A repeat: patch `count` and `lastTimestamp` of an existing Event.
    Update {
        /// Namespace of the Event.
        namespace: String,
        /// Name of the Event.
        name: String,
        /// New `count`.
        count: i32,
        /// New `lastTimestamp`.
        last_timestamp: Timestamp,
    },
}

/// Bound on remembered events, as client-go's LRU (`maxLruCacheEntries`).
const MAX_ENTRIES: usize = 4096;

/// The pure part of the recorder: decides create-or-update per observation.
#[derive(Debug)]
pub struct EventAggregator {
    component: String,
    host: Option<String>,
    seen: HashMap<AggKey, Seen>,
    order: std::collections::VecDeque<AggKey>,
}

impl EventAggregator {
    /// An aggregator for events reported by `component` (e.g. `replicaset-controller`, `kubelet`)
    /// on `host` (the node name for the kubelet).
    pub fn new(component: &str, host: Option<&str>) -> Self {
        Self {
            component: component.into(),
            host: host.map(Into::into),
            seen: HashMap::new(),
            order: Default::default(),
        }
    }

    /// Builds the Event of a first occurrence (pure; no aggregation).
    pub fn build(
        &self,
        obj: &ObjectRef,
        type_: EventType,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) -> Event {
        let namespace = obj.namespace.clone().unwrap_or_else(|| "default".into());
        Event {
            metadata: ObjectMeta {
                // client-go event.go: fmt.Sprintf("%v.%x", ref.Name, t.UnixNano())
                name: Some(format!("{}.{:x}", obj.name, now.as_nanosecond())),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: obj.to_object_reference(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            type_: Some(type_.as_str().into()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone().unwrap_or_else(|| self.component.clone())),
            ..Default::default()
        }
    }

    /// Records one occurrence and says what to write.
    pub fn observe(
        &mut self,
        obj: &ObjectRef,
        type_: EventType,
        reason: &str,
        message: &str,
        clock: &dyn Clock,
    ) -> EventWrite {
        let now = clock.now();
        let key = AggKey {
            api_version: obj.api_version.clone(),
            kind: obj.kind.clone(),
            namespace: obj.namespace.clone(),
            name: obj.name.clone(),
            uid: obj.uid.clone(),
            field_path: obj.field_path.clone(),
            type_,
            reason: reason.into(),
            message: message.into(),
        };
        if let Some(s) = self.seen.get_mut(&key) {
            s.count += 1;
            return EventWrite::Update {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                count: s.count,
                last_timestamp: now,
            };
        }
        let ev = self.build(obj, type_, reason, message, now);
        if self.order.len() >= MAX_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(
            key.clone(),
            Seen {
                namespace: ev.metadata.namespace.clone().unwrap_or_default(),
                name: ev.metadata.name.clone().unwrap_or_default(),
                count: 1,
            },
        );
        self.order.push_back(key);
        EventWrite::Create(Box::new(ev))
    }

    /// Forgets an event whose update failed (e.g. it expired server-side), so the next
    /// occurrence creates a fresh one.
    fn forget(&mut self, namespace: &str, name: &str) {
        self.seen
            .retain(|_, s| !(s.namespace == namespace && s.name == name));
        let seen = &self.seen;
        self.order.retain(|k| seen.contains_key(k));
    }
}

/// Records Events through a [`Client`](crate::client::Client); cheap to share behind an `Arc`.
pub struct EventRecorder {
    client: SharedClient,
    clock: SharedClock,
    agg: Mutex<EventAggregator>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("component", &self.agg.lock().component)
            .finish_non_exhaustive()
    }
}

impl EventRecorder {
    /// A recorder for `component` (and `host`, the node name for node agents).
    pub fn new(
        client: SharedClient,
        clock: SharedClock,
        component: &str,
        host: Option<&str>,
    ) -> Self {
        Self {
            client,
            clock,
            agg: Mutex::new(EventAggregator::new(component, host)),
        }
    }

    /// Records an event; a repeat of an identical event bumps `count` and `lastTimestamp`.
    ///
    /// Errors are returned for the caller to log; recording an event never needs a retry loop.
    pub async fn record(
        &self,
        obj: &ObjectRef,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), ClientError> {
        let write = self
            .agg
            .lock()
            .observe(obj, type_, reason, message, self.clock.as_ref());
        let events = ApiResource::of::<Event>();
        match write {
            EventWrite::Create(ev) => {
                let d = DynamicObject::from_typed(ev.as_ref())?;
                let ns = ev.metadata.namespace.clone();
                self.client
                    .create(&events, ns.as_deref(), &d, &PostParams::default())
                    .await?;
                Ok(())
            }
            EventWrite::Update {
                namespace,
                name,
                count,
                last_timestamp,
            } => {
                let patch = Patch::Merge(serde_json::json!({
                    "count": count,
                    "lastTimestamp": last_timestamp.to_string(),
                }));
                let r = self
                    .client
                    .patch(
                        &events,
                        Some(&namespace),
                        &name,
                        None,
                        &patch,
                        &PatchParams::default(),
                    )
                    .await;
                match r {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_found() => {
                        // The event expired (TTL) or was deleted: start a new one.
                        self.agg.lock().forget(&namespace, &name);
                        Box::pin(self.record(obj, type_, reason, message)).await
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn rs() -> ObjectRef {
        ObjectRef::new("apps/v1", "ReplicaSet", Some("ns1"), "web", "u1")
    }

    #[test]
    fn first_occurrence_builds_upstream_shape() {
        let clock = ManualClock::at_epoch_seconds(1_700_000_000);
        let mut agg = EventAggregator::new("replicaset-controller", None);
        let EventWrite::Create(ev) = agg.observe(
            &rs(),
            EventType::Normal,
            reason::SUCCESSFUL_CREATE,
            "Created pod: web-x",
            &clock,
        ) else {
            panic!("expected a create");
        };
        assert_eq!(ev.metadata.name.as_deref(), Some("web.17979cfe362a0000"));
        assert_eq!(ev.metadata.namespace.as_deref(), Some("ns1"));
        assert_eq!(ev.count, Some(1));
        assert_eq!(ev.type_.as_deref(), Some("Normal"));
        assert_eq!(ev.involved_object.kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(
            ev.source.as_ref().and_then(|s| s.component.as_deref()),
            Some("replicaset-controller")
        );
    }

    #[test]
    fn repeats_are_aggregated_and_different_messages_are_not() {
        let clock = ManualClock::at_epoch_seconds(1_700_000_000);
        let mut agg = EventAggregator::new("c", None);
        let first = agg.observe(&rs(), EventType::Warning, "FailedCreate", "quota", &clock);
        let EventWrite::Create(ev) = first else {
            panic!("create expected")
        };
        clock.advance(std::time::Duration::from_secs(7));
        let w = agg.observe(&rs(), EventType::Warning, "FailedCreate", "quota", &clock);
        assert_eq!(
            w,
            EventWrite::Update {
                namespace: "ns1".into(),
                name: ev.metadata.name.clone().unwrap_or_default(),
                count: 2,
                last_timestamp: clock.now(),
            }
        );
        let other = agg.observe(&rs(), EventType::Warning, "FailedCreate", "other", &clock);
        assert!(matches!(other, EventWrite::Create(_)));
    }

    #[test]
    fn cluster_scoped_objects_report_into_default() {
        let clock = ManualClock::at_epoch_seconds(5);
        let mut agg = EventAggregator::new("node-controller", None);
        let node = ObjectRef::new("v1", "Node", None, "n1", "u");
        let EventWrite::Create(ev) =
            agg.observe(&node, EventType::Normal, "NodeNotReady", "m", &clock)
        else {
            panic!("create expected")
        };
        assert_eq!(ev.metadata.namespace.as_deref(), Some("default"));
    }
}
