//! Shared input formats of the fuzz targets in `fuzz_targets/` (docs/design/fuzzing.md).
//!
//! Targets that need a kind and several documents read text inputs of this shape, so the
//! corpus in `corpus/<target>/` stays readable and easy to extend by hand:
//!
//! ```text
//! apps/v1 Deployment
//! {"metadata":{"name":"web"},"spec":{"replicas":1}}
//! {"spec":{"replicas":3}}
//! ```
//!
//! The first line names a built-in kind (`apiVersion Kind`, as in a manifest); the rest is a
//! stream of JSON values (whitespace-separated), e.g. the live object and a patch.

use orch_types::registry::{self, ResourceInfo};
use serde_json::Value;

/// Splits an input into the built-in kind named on its first line and the rest; `None` when
/// the line names no kind the registry knows (the input is skipped).
pub fn split_kind(data: &[u8]) -> Option<(&'static ResourceInfo, &[u8])> {
    let end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let line = std::str::from_utf8(&data[..end]).ok()?;
    let (api_version, kind) = line.trim().split_once(' ')?;
    let info = registry::by_kind(api_version, kind.trim())?;
    Some((info, data.get(end + 1..).unwrap_or_default()))
}

/// The first `n` JSON values of `data`; `None` when there are fewer or one is malformed.
pub fn json_values(data: &[u8], n: usize) -> Option<Vec<Value>> {
    let values: Vec<Value> = serde_json::Deserializer::from_slice(data)
        .into_iter::<Value>()
        .take(n)
        .collect::<Result<_, _>>()
        .ok()?;
    (values.len() == n).then_some(values)
}

/// Request headers with only a `Content-Type`, as the server's body decoder reads them.
pub fn content_type(ct: &'static str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ct),
    );
    h
}
