//! GET and LIST: resourceVersion semantics, the watch cache, pagination with continue tokens.
//!
//! Upstream rules (`staging/src/k8s.io/apiserver/pkg/storage/cacher/cacher.go`
//! `shouldDelegateList`, and the API concepts page "Resource versions"):
//! - unset: most recent (consistent) — served from the cache once it has caught up with storage,
//!   or from storage at the current revision when paginating;
//! - `0`: any — served from the cache as it is, `limit` ignored;
//! - `N` (NotOlderThan): at least N — from the cache once it reached N;
//! - `N` with `resourceVersionMatch=Exact`, or N with a limit, or a continue token: from storage
//!   at exactly that revision (410 Expired once compacted).

use super::filter::Filter;
use super::{cache_error, qualified, storage_error, Resource, RestResult};
use crate::server::ApiServer;
use crate::storage::{key, Encoded, ListOptions, Revision};
use base64::Engine;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use orch_types::client::{ListParams, ObjectList, VersionMatch};
use orch_types::{ApiError, DynamicObject};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The continue token: base64 of JSON, as upstream (`storage/continue.go`).
#[derive(Debug, Serialize, Deserialize)]
struct ContinueToken {
    v: String,
    rv: Revision,
    start: String,
}

fn encode_continue(rv: Revision, start_after: &str) -> String {
    let t = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: start_after.into(),
    };
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&t).unwrap_or_default())
}

fn decode_continue(s: &str) -> RestResult<ContinueToken> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if t.v != "meta.k8s.io/v1" || t.start.contains("..") {
        return Err(bad());
    }
    Ok(t)
}

fn undecodable(err: serde_json::Error) -> ApiError {
    ApiError::internal(format!("stored object does not decode: {err}"))
}

/// Decodes a stored object (500 if the stored bytes do not decode).
pub(crate) fn decode(e: &Encoded) -> RestResult<Arc<DynamicObject>> {
    e.decode().map(Arc::new).map_err(undecodable)
}

/// Decodes an object the watch cache handed out if it passes `filter`; the selectors read only
/// what they need, so objects they reject are never decoded.
pub(crate) fn decode_cached(
    e: &Encoded,
    filter: &Filter,
) -> RestResult<Option<Arc<DynamicObject>>> {
    if !filter.matches_encoded(e).map_err(undecodable)? {
        return Ok(None);
    }
    decode(e).map(Some)
}

/// Parses a resourceVersion parameter.
pub fn parse_rv(s: &str) -> RestResult<Revision> {
    s.parse::<Revision>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resource version {s:?}: must be a decimal number"
        ))
    })
}

impl ApiServer {
    /// Reads one object (`GET`).
    pub async fn get_object(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
    ) -> RestResult<Arc<DynamicObject>> {
        decode(&self.get_encoded(info, ns, name).await?)
    }

    /// [`ApiServer::get_object`] without decoding: the stored encoding (a JSON response is
    /// these bytes).
    pub async fn get_encoded(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
    ) -> RestResult<Encoded> {
        let ns = self.object_namespace(info, ns)?;
        let key = self.key(info, ns, name);
        self.storage
            .get_stored(&key)
            .await
            .map_err(|e| storage_error(info, name, e))?
            .map(|s| s.encoded)
            .ok_or_else(|| ApiError::not_found(&qualified(info), name))
    }

    /// Lists objects (`GET` on a collection). `ns == None` lists all namespaces.
    pub async fn list_objects(
        &self,
        info: Resource,
        ns: Option<&str>,
        p: &ListParams,
    ) -> RestResult<ObjectList<Arc<DynamicObject>>> {
        let l = self.list_encoded(info, ns, p).await?;
        Ok(ObjectList {
            metadata: l.metadata,
            items: l.items.iter().map(decode).collect::<RestResult<_>>()?,
        })
    }

    /// [`ApiServer::list_objects`] without decoding: the stored encodings of the items (the
    /// JSON of a list response is spliced from them).
    pub async fn list_encoded(
        &self,
        info: Resource,
        ns: Option<&str>,
        p: &ListParams,
    ) -> RestResult<ObjectList<Encoded>> {
        let ns = if info.namespaced {
            ns.filter(|n| !n.is_empty())
        } else {
            None
        };
        let filter = Filter::new(
            info,
            p.label_selector.as_deref(),
            p.field_selector.as_deref(),
        )?;
        let res_prefix = key::resource_prefix(info.group, info.plural);
        let prefix = key::collection_prefix(info.group, info.plural, ns);
        let rv = p.resource_version.as_deref().filter(|s| !s.is_empty());
        let limit = p.limit.filter(|l| *l > 0).map(|l| l as usize);
        let token = p
            .continue_token
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(decode_continue)
            .transpose()?;
        if token.is_some() && rv.is_some_and(|r| r != "0") {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let exact = p.resource_version_match == Some(VersionMatch::Exact);
        if exact && rv.is_none_or(|r| r == "0") {
            return Err(ApiError::bad_request(
                "resourceVersionMatch \"Exact\" requires a non-zero resourceVersion",
            ));
        }
        let from_storage = token.is_some() || exact || (limit.is_some() && rv != Some("0"));
        if !from_storage {
            match rv {
                Some("0") => {}
                Some(n) => {
                    let at = parse_rv(n)?;
                    if at > self.cache.applied() {
                        self.cache
                            .wait_for(at)
                            .await
                            .map_err(|e| cache_error(info, e))?;
                    }
                }
                // A consistent read: every write committed before it, by any API server.
                None => {
                    self.cache.sync().await.map_err(|e| cache_error(info, e))?;
                }
            }
            let l = self.cache.list(&res_prefix, &prefix);
            // Filtered outside the cache's lock.
            let mut items = Vec::with_capacity(l.items.len());
            for e in l.items {
                if filter.matches_encoded(&e).map_err(undecodable)? {
                    items.push(e);
                }
            }
            return Ok(ObjectList {
                metadata: ListMeta {
                    resource_version: Some(l.revision.to_string()),
                    ..Default::default()
                },
                items,
            });
        }
        let (revision, start_after) = match &token {
            Some(t) => (Some(t.rv), Some(format!("{prefix}{}", t.start))),
            None => (rv.map(parse_rv).transpose()?, None),
        };
        let opts = ListOptions {
            revision,
            // With a selector the page is cut after filtering.
            limit: if filter.is_empty() { limit } else { None },
            start_after,
        };
        let l = self.storage.list_stored(&prefix, &opts).await.map_err(|e| match (e, &token) {
            (crate::storage::StorageError::Compacted { .. }, Some(_)) => ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ),
            (e, _) => storage_error(info, "", e),
        })?;
        let mut items = Vec::new();
        let mut last_key = None;
        let mut more = l.remaining;
        for (k, v) in l.items {
            // Selectors first, on the encoding; only the returned items are decoded.
            if !filter.matches_encoded(&v.encoded).map_err(undecodable)? {
                continue;
            }
            if limit.is_some_and(|lim| items.len() >= lim) {
                more += 1;
                continue;
            }
            items.push(v.encoded);
            last_key = Some(k);
        }
        let mut metadata = ListMeta {
            resource_version: Some(l.revision.to_string()),
            ..Default::default()
        };
        if more > 0 {
            if let Some(k) = last_key {
                metadata.continue_ = Some(encode_continue(
                    l.revision,
                    k.strip_prefix(&prefix).unwrap_or(&k),
                ));
                if filter.is_empty() {
                    metadata.remaining_item_count = i64::try_from(more).ok();
                }
            }
        }
        Ok(ObjectList { metadata, items })
    }
}
