//! The `ResourceQuota` admission plugin, after upstream
//! `staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota/` (`admission.go`,
//! `controller.go`, 1.33): a write that would take a namespace's usage over a quota's
//! `status.hard` is refused with 403, and an admitted one is charged to the quota's
//! `status.used` before it is stored.
//!
//! - What an object uses and which quotas it falls under is [`orch_types::quota`]; this module
//!   reads the namespace's quotas from storage (not the watch cache, so a quota created a
//!   moment ago already applies, as upstream's live lookup does), checks, and charges.
//! - The charge is a compare-and-swap of each changed quota on the revision read (upstream
//!   `UpdateStatus` with the quota's resourceVersion): two admissions that read the same usage
//!   cannot both be charged against it; the loser re-reads the quotas that conflicted and checks
//!   again (upstream `checkQuotas` retries). Checks of one namespace also run one at a time
//!   (upstream's evaluator works one namespace in one worker), so only the quota controller's
//!   writes conflict with them.
//! - The quota controller later recounts `status.used` from what is stored, so a charge whose
//!   object was then not stored (a failed write) is given back at its next sync.
//! - Subresource writes, dry runs (checked, not charged), cluster-scoped kinds and Events are
//!   left alone.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota, Service};
use orch_types::quota::{self, CheckError, Evaluator, Item, Operation};
use orch_types::{ApiError, DynamicObject};

use crate::rest::{qualified, storage_error, Resource, RestResult};
use crate::server::ApiServer;
use crate::storage::{key, ListOptions, StorageError};

/// How often a charge is tried when quota writes conflict (upstream: once and 3 retries).
const ATTEMPTS: usize = 4;

/// One async mutex per namespace with quota checks in flight.
#[derive(Debug, Default)]
pub struct NamespaceLocks(parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// Holds a namespace's lock; the entry goes when no one else waits for it.
struct Held<'a> {
    locks: &'a NamespaceLocks,
    ns: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.0.lock();
        if map.get(&self.ns).is_some_and(|m| Arc::strong_count(m) == 1) {
            map.remove(&self.ns);
        }
    }
}

impl NamespaceLocks {
    async fn lock(&self, ns: &str) -> Held<'_> {
        let m = self.0.lock().entry(ns.to_string()).or_default().clone();
        Held {
            locks: self,
            ns: ns.to_string(),
            guard: Some(m.lock_owned().await),
        }
    }
}

/// An object decoded for its evaluator.
enum Typed {
    Pod(Box<Pod>),
    Service(Box<Service>),
    Claim(Box<PersistentVolumeClaim>),
    Other,
}

impl Typed {
    fn of(ev: &Evaluator, o: &DynamicObject) -> RestResult<Self> {
        let bad = |e: orch_types::dynamic::ConvertError| {
            ApiError::internal(format!("quota cannot read the object: {e}"))
        };
        Ok(match ev {
            Evaluator::Pods => Self::Pod(Box::new(o.to_typed().map_err(bad)?)),
            Evaluator::Services => Self::Service(Box::new(o.to_typed().map_err(bad)?)),
            Evaluator::PersistentVolumeClaims => Self::Claim(Box::new(o.to_typed().map_err(bad)?)),
            Evaluator::ObjectCount { .. } => Self::Other,
        })
    }

    fn item(&self) -> Item<'_> {
        match self {
            Self::Pod(p) => Item::Pod(p),
            Self::Service(s) => Item::Service(s),
            Self::Claim(c) => Item::Claim(c),
            Self::Other => Item::Object,
        }
    }
}

/// A stored quota with the revision it was read at.
struct Stored {
    key: String,
    revision: u64,
    quota: ResourceQuota,
}

impl ApiServer {
    /// The ResourceQuotas of `ns` as stored now.
    async fn namespace_quotas(&self, ns: &str) -> RestResult<Vec<Stored>> {
        let info = resource_quotas()?;
        let prefix = key::collection_prefix(info.group, info.plural, Some(ns));
        let list = self
            .storage
            .list(&prefix, &ListOptions::default())
            .await
            .map_err(|e| storage_error(info, "", e))?;
        list.items
            .into_iter()
            .map(|(key, v)| {
                let quota = v.object.to_typed::<ResourceQuota>().map_err(|e| {
                    ApiError::internal(format!("cannot read ResourceQuota {key}: {e}"))
                })?;
                Ok(Stored {
                    key,
                    revision: v.mod_revision,
                    quota,
                })
            })
            .collect()
    }

    /// Checks `obj` (created, or updated from `old`) against the quotas of its namespace and
    /// charges them (unless `dry_run`); 403 with upstream's message when it does not fit.
    pub(crate) async fn admit_quota(
        &self,
        info: Resource,
        obj: &DynamicObject,
        old: Option<&DynamicObject>,
        dry_run: bool,
    ) -> RestResult<()> {
        if !info.namespaced || quota::ignored(info.group, info.plural) {
            return Ok(());
        }
        let Some(ns) = obj.namespace().filter(|n| !n.is_empty()) else {
            return Ok(());
        };
        let ev = Evaluator::for_resource(info.group, info.plural);
        let new = Typed::of(&ev, obj)?;
        let before = old.map(|o| Typed::of(&ev, o)).transpose()?;
        let op = match &before {
            None => Operation::Create,
            Some(b) => Operation::Update(b.item()),
        };
        if !ev.handles(op, new.item()) {
            return Ok(());
        }
        // A namespace without quotas admits at once, as upstream's checkQuotas does
        // (plugin/pkg/admission/resourcequota/controller.go); a quota created after this read
        // counts the object at its controller's first recount.
        if self.namespace_quotas(ns).await?.is_empty() {
            return Ok(());
        }
        let _held = self.quota_locks.lock(ns).await;
        let now = self.config.clock.now();
        // The quotas still to charge: all at first, then those whose charge conflicted.
        let mut only: Option<BTreeSet<String>> = None;
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let mut quotas = self.namespace_quotas(ns).await?;
            if let Some(names) = &only {
                quotas.retain(|q| names.contains(q.quota.metadata.name.as_deref().unwrap_or("")));
            }
            if quotas.is_empty() {
                return Ok(());
            }
            let typed: Vec<ResourceQuota> = quotas.iter().map(|q| q.quota.clone()).collect();
            let charged = quota::check(&typed, &ev, new.item(), op, now).map_err(|e| match e {
                CheckError::Forbidden(why) => forbidden(info, obj.name(), &why),
                CheckError::Internal(why) => ApiError::internal(why),
            })?;
            if dry_run {
                return Ok(());
            }
            let mut failed = BTreeSet::new();
            for (stored, used) in quotas.into_iter().zip(charged) {
                let Some(used) = used else { continue };
                let name = stored.quota.metadata.name.clone().unwrap_or_default();
                match self.charge(stored, used).await {
                    Ok(()) => {}
                    Err(e @ (StorageError::Conflict { .. } | StorageError::NotFound { .. })) => {
                        last = Some((name.clone(), e));
                        failed.insert(name);
                    }
                    Err(e) => return Err(storage_error(resource_quotas()?, &name, e)),
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            only = Some(failed);
        }
        let (name, e) = last.unwrap_or_else(|| {
            (
                String::new(),
                StorageError::Conflict {
                    key: String::new(),
                    expected: 0,
                    actual: 0,
                },
            )
        });
        Err(storage_error(resource_quotas()?, &name, e))
    }

    /// Writes a quota's new `status.used` if it is still at the revision it was read at.
    async fn charge(
        &self,
        stored: Stored,
        used: orch_types::resources::ResourceList,
    ) -> Result<(), StorageError> {
        let mut q = stored.quota;
        q.status.get_or_insert_with(Default::default).used = Some(used.to_k8s());
        let obj = DynamicObject::from_typed(&q)
            .map_err(|e| StorageError::Backend(format!("cannot encode ResourceQuota: {e}")))?;
        self.storage
            .update(&stored.key, obj, Some(stored.revision))
            .await
            .map(|_| ())
    }
}

fn resource_quotas() -> RestResult<Resource> {
    orch_types::registry::by_kind("v1", "ResourceQuota")
        .ok_or_else(|| ApiError::internal("ResourceQuota kind is not registered"))
}

/// 403 `pods "web-1" is forbidden: why` (upstream `admission.NewForbidden`); without a name,
/// `pods is forbidden: why`.
pub(crate) fn forbidden(info: Resource, name: &str, why: &str) -> ApiError {
    let resource = qualified(info);
    let message = if name.is_empty() {
        format!("{resource} is forbidden: {why}")
    } else {
        format!("{resource} \"{name}\" is forbidden: {why}")
    };
    let mut e = ApiError::new(403, orch_types::status::reason::FORBIDDEN, message);
    e.details = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
            name: (!name.is_empty()).then(|| name.to_string()),
            group: (!info.group.is_empty()).then(|| info.group.to_string()),
            kind: Some(info.plural.to_string()),
            ..Default::default()
        },
    );
    e
}

#[cfg(test)]
mod tests;
