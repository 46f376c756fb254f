//! ResourceQuota controller: keeps each quota's `status.hard` (its `spec.hard`) and
//! `status.used` (what its namespace's objects use) up to date, after upstream
//! `pkg/controller/resourcequota/resource_quota_controller.go` and `resource_quota_monitor.go`
//! (Kubernetes 1.33). What an object uses, and which quotas it falls under, is
//! [`orch_types::quota`], the same code the API server's ResourceQuota admission charges with.
//!
//! - A quota is synced when it appears, when its `spec.hard` changes (its status changes alone
//!   do not: they are the admission's charges and this controller's own writes), and every
//!   [`DEFAULT_SYNC_PERIOD`] (upstream `--resource-quota-sync-period`).
//! - Usage is given back when an object is deleted, a pod reaches a terminal phase, a service
//!   changes between NodePort, LoadBalancer and other types, or a claim's allocated storage
//!   changes (upstream's replenishment): every quota of the namespace that constrains a
//!   resource of the object's kind is synced (admission charges creations, so they need no
//!   sync).
//! - A sync recounts every resource of `spec.hard` that an evaluator measures: pods (requests,
//!   limits, `pods` for those not terminal nor past their deletion grace period, `count/pods`
//!   for all), services, claims, and `count/<resource>.<group>` for every namespaced built-in
//!   kind (objects counted from the metadata caches). Scopes select pods only; a scoped quota
//!   counts no other kind. Resources no evaluator measures keep the `used` they had.
//! - The status is written only when `hard` differs from `spec.hard` or `used` changed, with
//!   the cached resourceVersion: a conflict with an admission's charge retries the key.
//!
//! Not modelled: upstream's priority queue for quotas missing usage (every sync is one queue
//! here), quotas of custom resources (no cache to count them from; admission still charges
//! them), and Events (never quota'd, upstream's default ignored resources).
//!
//! Like upstream, the recount can race with an admission charge whose object is not yet in
//! the caches: the write wins only if no charge happened since the quota was cached (the
//! resourceVersion check), which narrows the window to a charge whose quota write the cache
//! has seen but whose object it has not.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaStatus, Service,
};
use orch_runtime::action::Action;
use orch_runtime::controller::{Caches, Controller, MetaChange, Watches};
use orch_runtime::object::{key_of, namespace};
use orch_runtime::store::Change;
use orch_types::quantity::Quantity;
use orch_types::quota::{
    self, scope_selectors, spec_hard, status_hard, status_used, Evaluator, Item,
};
use orch_types::registry::{self, ApiResource};
use orch_types::resources::ResourceList;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How often every quota is recounted (upstream `--resource-quota-sync-period`, 5 minutes).
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(300);

/// The ResourceQuota controller's declaration.
#[derive(Debug, Clone)]
pub struct ResourceQuotaController {
    /// Full recount period of each quota.
    pub sync_period: Duration,
}

impl Default for ResourceQuotaController {
    fn default() -> Self {
        Self {
            sync_period: DEFAULT_SYNC_PERIOD,
        }
    }
}

/// The resources quota can count: namespaced built-in kinds that can be created, listed,
/// watched and deleted (upstream `QuotableResources`), but Events.
pub fn quotable_resources() -> Vec<ApiResource> {
    registry::BUILTIN
        .iter()
        .filter(|r| r.namespaced)
        .filter(|r| {
            ["create", "list", "watch", "delete"]
                .iter()
                .all(|v| r.verbs.contains(v))
        })
        .filter(|r| !quota::ignored(r.group, r.plural))
        .map(|r| r.api_resource())
        .collect()
}

/// The objects of one namespace a recount reads.
pub trait NamespaceObjects {
    /// Its pods.
    fn pods(&self) -> Vec<Arc<Pod>>;
    /// Its services.
    fn services(&self) -> Vec<Arc<Service>>;
    /// Its claims.
    fn claims(&self) -> Vec<Arc<PersistentVolumeClaim>>;
    /// How many objects of `resource` it has.
    fn count(&self, resource: &ApiResource) -> usize;
}

/// The objects of a namespace in the controller's caches.
struct Cached<'a> {
    caches: &'a Caches,
    ns: &'a str,
}

impl NamespaceObjects for Cached<'_> {
    fn pods(&self) -> Vec<Arc<Pod>> {
        self.caches.get::<Pod>().list_namespace(self.ns)
    }
    fn services(&self) -> Vec<Arc<Service>> {
        self.caches.get::<Service>().list_namespace(self.ns)
    }
    fn claims(&self) -> Vec<Arc<PersistentVolumeClaim>> {
        self.caches
            .get::<PersistentVolumeClaim>()
            .list_namespace(self.ns)
    }
    fn count(&self, resource: &ApiResource) -> usize {
        self.caches
            .meta(resource)
            .map_or(0, |m| m.namespace_meta(self.ns).len())
    }
}

fn names(l: &ResourceList) -> Vec<&str> {
    l.0.keys().map(String::as_str).collect()
}

/// What the objects of `objs` use of the resources of `quota.spec.hard` that an evaluator
/// measures, under the quota's scopes (upstream `CalculateUsage` with `CalculateUsageStats`).
pub fn calculate_usage(
    q: &ResourceQuota,
    objs: &dyn NamespaceObjects,
    now: Timestamp,
) -> ResourceList {
    let hard = spec_hard(q);
    let scopes = scope_selectors(q);
    let mut matched: BTreeSet<String> = BTreeSet::new();
    let mut used = ResourceList::new();
    for r in quotable_resources() {
        let ev = Evaluator::for_resource(&r.group, &r.plural);
        let measured = ev.matching_resources(names(&hard));
        if measured.is_empty() {
            continue;
        }
        for m in &measured {
            if used.get(m).is_none() {
                used.insert(m.clone(), Quantity::ZERO);
            }
        }
        matched.extend(measured);
        let in_scope = |item: Item<'_>| {
            scopes
                .iter()
                .all(|s| ev.matches_scope(s, item).unwrap_or(false))
        };
        match &ev {
            Evaluator::Pods => {
                for p in objs.pods() {
                    if in_scope(Item::Pod(&p)) {
                        used.add(&ev.usage(Item::Pod(&p), now));
                    }
                }
            }
            Evaluator::Services => {
                for s in objs.services() {
                    if in_scope(Item::Service(&s)) {
                        used.add(&ev.usage(Item::Service(&s), now));
                    }
                }
            }
            Evaluator::PersistentVolumeClaims => {
                for c in objs.claims() {
                    if in_scope(Item::Claim(&c)) {
                        used.add(&ev.usage(Item::Claim(&c), now));
                    }
                }
            }
            Evaluator::ObjectCount { .. } => {
                if scopes.is_empty() {
                    let n = i64::try_from(objs.count(&r)).unwrap_or(i64::MAX);
                    let mut each = ev.usage(Item::Object, now);
                    for v in each.0.values_mut() {
                        *v = v.mul(n);
                    }
                    used.add(&each);
                }
            }
        }
    }
    quota::mask(&used, matched.iter().map(String::as_str))
}

/// One sync of `q` (upstream `syncResourceQuota`): the status update when `hard` or `used`
/// changed.
pub fn reconcile(q: &ResourceQuota, objs: &dyn NamespaceObjects, now: Timestamp) -> Vec<Action> {
    let hard = spec_hard(q);
    let st = q.status.as_ref();
    let limits_dirty = hard != status_hard(q);
    let mut used = status_used(q);
    for (k, v) in calculate_usage(q, objs, now).iter() {
        used.insert(k.clone(), *v);
    }
    let used = quota::mask(&used, names(&hard));
    let dirty = limits_dirty
        || st.and_then(|s| s.hard.as_ref()).is_none()
        || st.and_then(|s| s.used.as_ref()).is_none()
        || used != status_used(q);
    if !dirty {
        return Vec::new();
    }
    let mut out = q.clone();
    out.status = Some(ResourceQuotaStatus {
        hard: Some(hard.to_k8s()),
        used: Some(used.to_k8s()),
    });
    vec![Action::update_status(&out)]
}

/// The keys of the quotas of `ns` that constrain a resource of `resource` (upstream
/// `replenishQuota`).
fn quotas_tracking(caches: &Caches, ns: &str, resource: &ApiResource, keys: &mut Vec<String>) {
    let ev = Evaluator::for_resource(&resource.group, &resource.plural);
    for q in caches.get::<ResourceQuota>().list_namespace(ns) {
        let hard = status_hard(&q);
        if !ev.matching_resources(names(&hard)).is_empty() {
            keys.push(key_of(&q.metadata));
        }
    }
}

fn service_type(s: &Service) -> &str {
    let t = s
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or_default();
    if matches!(t, "NodePort" | "LoadBalancer") {
        t
    } else {
        ""
    }
}

fn allocated_storage(c: &PersistentVolumeClaim) -> Option<&str> {
    c.status
        .as_ref()?
        .allocated_resources
        .as_ref()?
        .get("storage")
        .map(|q| q.0.as_str())
}

/// A pod in a terminal phase (the time-based half of upstream `QuotaV1Pod`, past the deletion
/// grace period, is left to the periodic sync and the pod's deletion).
fn terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed" | "Succeeded")
    )
}

impl Controller for ResourceQuotaController {
    fn name(&self) -> &'static str {
        "resourcequota"
    }

    fn component(&self) -> &'static str {
        "resourcequota-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<ResourceQuota>(Arc::new(|c, _, keys| match c {
            Change::Updated(old, new) if spec_hard(old) == spec_hard(new) => {}
            Change::Deleted(_) => {}
            _ => keys.push(key_of(&c.object().metadata)),
        }));
        w.watch::<Pod>(Arc::new(|c, caches, keys| {
            let freed = match c {
                Change::Deleted(_) => true,
                Change::Updated(old, new) => !terminal(old) && terminal(new),
                _ => false,
            };
            if freed {
                let ns = namespace(&c.object().metadata);
                quotas_tracking(caches, ns, &ApiResource::of::<Pod>(), keys);
            }
        }));
        w.watch::<Service>(Arc::new(|c, caches, keys| {
            let freed = match c {
                Change::Deleted(_) => true,
                Change::Updated(old, new) => service_type(old) != service_type(new),
                _ => false,
            };
            if freed {
                let ns = namespace(&c.object().metadata);
                quotas_tracking(caches, ns, &ApiResource::of::<Service>(), keys);
            }
        }));
        w.watch::<PersistentVolumeClaim>(Arc::new(|c, caches, keys| {
            let freed = match c {
                Change::Deleted(_) => true,
                Change::Updated(old, new) => allocated_storage(old) != allocated_storage(new),
                _ => false,
            };
            if freed {
                let ns = namespace(&c.object().metadata);
                quotas_tracking(
                    caches,
                    ns,
                    &ApiResource::of::<PersistentVolumeClaim>(),
                    keys,
                );
            }
        }));
        let typed = [
            ApiResource::of::<Pod>(),
            ApiResource::of::<Service>(),
            ApiResource::of::<PersistentVolumeClaim>(),
        ];
        let counted: Vec<ApiResource> = quotable_resources()
            .into_iter()
            .filter(|r| !typed.contains(r))
            .collect();
        w.watch_metadata(
            counted,
            Arc::new(|r, c, caches, keys| {
                if let MetaChange::Deleted(m) = c {
                    quotas_tracking(caches, namespace(m), r, keys);
                }
            }),
        );
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let Some(q) = caches.get::<ResourceQuota>().get(key) else {
            return Vec::new();
        };
        let objs = Cached {
            caches,
            ns: namespace(&q.metadata),
        };
        let mut actions = reconcile(&q, &objs, now);
        actions.push(Action::requeue(self.sync_period));
        actions
    }
}

#[cfg(test)]
mod tests;
