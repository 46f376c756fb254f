//! The admission plugins that judge what an object uses, with what the namespace allows:
//! [`limit_ranger`](super::limit_ranger) then [`resource_quota`](super::resource_quota), in
//! upstream's plugin order (so requests a LimitRange defaulted count against quota). Both read
//! the namespace's LimitRanges and ResourceQuotas from storage, which is why they run after
//! the synchronous chain of [`ApiServer::admit`], just before the object is written.

use k8s_openapi::api::core::v1::{LimitRange, PersistentVolumeClaim, Pod};
use orch_types::{ApiError, DynamicObject};

use super::limit_ranger;
use super::resource_quota::forbidden;
use crate::rest::{storage_error, Resource, RestResult};
use crate::server::ApiServer;
use crate::storage::{key, ListOptions};

/// What LimitRanger holds to the namespace's LimitRanges.
enum Subject {
    Pod(Box<Pod>),
    Claim(Box<PersistentVolumeClaim>),
}

impl ApiServer {
    /// Runs LimitRanger (which may set a new pod's missing requests and limits) and
    /// ResourceQuota (which charges the namespace's quotas unless `dry_run`) on an admitted
    /// create (`old == None`) or update of the main resource.
    pub(crate) async fn admit_usage(
        &self,
        info: Resource,
        obj: &mut DynamicObject,
        old: Option<&DynamicObject>,
        dry_run: bool,
    ) -> RestResult<()> {
        self.admit_limits(info, obj, old).await?;
        self.admit_quota(info, obj, old, dry_run).await
    }

    /// The LimitRanges of `ns` as stored now (upstream reads its informer and, when that has
    /// none, lists them live), in name order.
    async fn limit_ranges(&self, info: Resource, ns: &str) -> RestResult<Vec<LimitRange>> {
        let prefix = key::collection_prefix("", "limitranges", Some(ns));
        let list = self
            .storage
            .list(&prefix, &ListOptions::default())
            .await
            .map_err(|e| storage_error(info, "", e))?;
        list.items
            .into_iter()
            .map(|(k, v)| {
                v.object
                    .to_typed::<LimitRange>()
                    .map_err(|e| ApiError::internal(format!("cannot read LimitRange {k}: {e}")))
            })
            .collect()
    }

    /// LimitRanger: pods on create (defaults, then bounds), claims on create and update
    /// (bounds); objects being deleted are left alone.
    async fn admit_limits(
        &self,
        info: Resource,
        obj: &mut DynamicObject,
        old: Option<&DynamicObject>,
    ) -> RestResult<()> {
        let pod = match (info.group, info.kind) {
            ("", "Pod") if old.is_none() => true,
            ("", "PersistentVolumeClaim") => false,
            _ => return Ok(()),
        };
        if old.is_some_and(|o| o.metadata.deletion_timestamp.is_some()) {
            return Ok(());
        }
        let Some(ns) = obj
            .namespace()
            .filter(|n| !n.is_empty())
            .map(str::to_string)
        else {
            return Ok(());
        };
        let ranges = self.limit_ranges(info, &ns).await?;
        if ranges.is_empty() {
            return Ok(());
        }
        let bad = |e: orch_types::dynamic::ConvertError| {
            ApiError::internal(format!("LimitRanger cannot read the object: {e}"))
        };
        let subject = if pod {
            let mut p: Pod = obj.to_typed().map_err(bad)?;
            if limit_ranger::default_pod(&mut p, &ranges) {
                *obj = DynamicObject::from_typed(&p).map_err(bad)?;
                // Upstream validates after the mutating plugins: a default that makes a
                // request exceed its limit is a 422.
                let errors = orch_types::validation::validate_defaulted(obj);
                if !errors.is_empty() {
                    let causes = errors.iter().map(|e| e.to_status_cause()).collect();
                    return Err(ApiError::invalid(info.kind, obj.name(), causes));
                }
            }
            Subject::Pod(Box::new(p))
        } else {
            Subject::Claim(Box::new(obj.to_typed().map_err(bad)?))
        };
        for lr in &ranges {
            let errs = match &subject {
                Subject::Pod(p) => limit_ranger::validate_pod(lr, p),
                Subject::Claim(c) => limit_ranger::validate_claim(lr, c),
            };
            if !errs.is_empty() {
                return Err(forbidden(info, obj.name(), &limit_ranger::aggregate(&errs)));
            }
        }
        Ok(())
    }
}
