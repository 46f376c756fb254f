//! Kubernetes REST semantics, independent of HTTP: the operations of [`ApiServer`] that both the
//! HTTP router ([`router`]) and the in-process client call.
//!
//! One file per verb family: [`create`], [`update`] (PUT, status, finalize, the guaranteed-update
//! loop), [`delete`], [`read`] (get, list, pagination), [`watch`], [`patch`]. Object bookkeeping
//! (generation, status reset, server-set fields) is in [`meta`]; selectors in [`filter`].

pub mod converted;
pub mod create;
pub mod delete;
pub mod filter;
pub mod meta;
pub mod negotiate;
mod options;
pub mod patch;
pub mod read;
pub mod router;
pub mod subresource;
pub mod update;
pub mod watch;

use crate::cache::CacheError;
use crate::server::ApiServer;
use crate::storage::{key, StorageError};
use orch_types::registry::{self, ApiResource, ResourceInfo};
use orch_types::ApiError;

/// Result of a REST operation: a Kubernetes `Status` error on failure.
pub type RestResult<T> = Result<T, ApiError>;

/// A resolved resource type.
pub type Resource = &'static ResourceInfo;

/// `pods` or `deployments.apps`, as upstream names resources in messages.
pub fn qualified(info: Resource) -> String {
    info.group_resource()
}

/// Maps a storage error on `name` to the API error upstream returns
/// (`staging/src/k8s.io/apiserver/pkg/storage/errors.go` → `registry/generic/registry/store.go`).
pub fn storage_error(info: Resource, name: &str, e: StorageError) -> ApiError {
    let res = qualified(info);
    match e {
        StorageError::KeyExists { .. } => ApiError::already_exists(&res, name),
        StorageError::NotFound { .. } => ApiError::not_found(&res, name),
        StorageError::Conflict { .. } => ApiError::conflict(
            &res,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ),
        StorageError::Compacted { requested, .. } => ApiError::expired(format!(
            "too old resource version: {requested}"
        )),
        StorageError::FutureRevision { requested, current } => ApiError::new(
            504,
            orch_types::status::reason::TIMEOUT,
            format!("Too large resource version: {requested}, current: {current}"),
        ),
        StorageError::WatchLagged { .. } => ApiError::expired(e.to_string()),
        // etcd's NOSPACE alarm reaches kube-apiserver's clients as a 500 carrying etcd's
        // `mvcc: database space exceeded`: the error passes through `storage/errors.go`
        // uninterpreted and `endpoints/handlers/responsewriters/status.go` (ErrorToAPIStatus)
        // makes any such error a 500. The embedded store's full disk answers the same code,
        // with a message naming the data directory.
        StorageError::NoSpace { .. } => {
            tracing::error!(error = %e, resource = %res, name, "storage full");
            ApiError::internal(format!("Internal error occurred: {e}"))
        }
        other => {
            tracing::error!(error = %other, resource = %res, name, "storage failure");
            ApiError::internal("Internal error occurred: storage failure")
        }
    }
}

/// Maps a watch-cache error.
pub fn cache_error(info: Resource, e: CacheError) -> ApiError {
    match e {
        CacheError::Expired { requested, .. } => {
            ApiError::expired(format!("too old resource version: {requested}"))
        }
        CacheError::TooLarge { requested, current } => ApiError::new(
            504,
            orch_types::status::reason::TIMEOUT,
            format!("Too large resource version: {requested}, current: {current}"),
        ),
        CacheError::Storage(s) => storage_error(info, "", s),
    }
}

impl ApiServer {
    /// Resolves a client-side resource type to a served one.
    pub fn resolve(&self, r: &ApiResource) -> RestResult<Resource> {
        let info = self
            .lookup(&r.group, &r.version, &r.plural)
            .ok_or_else(|| {
                ApiError::unknown_resource(&format!("{}/{}", r.api_version(), r.plural))
            })?;
        match self.storage_of(info) {
            // Conversion happens at the HTTP edge (`rest::converted`); in-process clients use
            // the storage version every component reads.
            Some(stored) => Err(ApiError::unknown_resource(&format!(
                "{}/{}: in-process clients use {}",
                r.api_version(),
                r.plural,
                stored.api_version()
            ))),
            None => Ok(info),
        }
    }

    /// The entry of the version `info`'s objects are stored in, when `info` is served at
    /// another version (a converted built-in or a CRD's non-storage version).
    pub fn storage_of(&self, info: Resource) -> Option<Resource> {
        registry::storage_of(info).or_else(|| {
            self.custom(info)
                .filter(|c| !std::ptr::eq(c.storage, c.info))
                .map(|c| c.storage)
        })
    }

    /// The namespace a call on `info` addresses: required for namespaced kinds, dropped for
    /// cluster-scoped ones.
    pub(crate) fn object_namespace<'a>(
        &self,
        info: Resource,
        ns: Option<&'a str>,
    ) -> RestResult<Option<&'a str>> {
        if !info.namespaced {
            return Ok(None);
        }
        match ns {
            Some(ns) if !ns.is_empty() => Ok(Some(ns)),
            _ => Err(ApiError::bad_request(format!(
                "the namespace is required for {} (a namespaced resource)",
                qualified(info)
            ))),
        }
    }

    /// Storage key of one object.
    pub(crate) fn key(&self, info: Resource, ns: Option<&str>, name: &str) -> String {
        key::object_key(info.group, info.plural, ns, name)
    }
}
