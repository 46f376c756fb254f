//! [`Encoded`]: one stored object as its compact JSON, shared.
//!
//! The store keeps every version of every object in this form, as etcd keeps bytes; the watch
//! cache holds the same shared encoding as the store (one copy per object in the process) and
//! decodes it when it serves a read, as upstream's cacher decodes what etcd returns. A
//! `serde_json` tree of an object costs several times its compact JSON (a running pod: about
//! 17 KB against 1.9 KB).

use orch_types::DynamicObject;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The compact JSON of one object; cloning shares the bytes.
///
/// ```
/// use orch_apiserver::storage::encoded::Encoded;
/// use orch_types::DynamicObject;
/// let o = DynamicObject::new("v1", "ConfigMap", "a");
/// let e = Encoded::encode(&o).unwrap();
/// assert_eq!(e.decode().unwrap(), o);
/// assert!(e.as_bytes().starts_with(b"{"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Encoded(Arc<[u8]>);

impl Encoded {
    /// Encodes `object` as compact JSON.
    pub fn encode(object: &DynamicObject) -> Result<Self, serde_json::Error> {
        serde_json::to_vec(object).map(|v| Self(v.into()))
    }

    /// Wraps bytes that are already the JSON of an object (e.g. read back from disk); they are
    /// not checked here, [`Encoded::decode`] reports bad ones.
    pub fn from_json_bytes(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }

    /// Decodes the object.
    pub fn decode(&self) -> Result<DynamicObject, serde_json::Error> {
        serde_json::from_slice(&self.0)
    }

    /// Name, namespace and labels only, read without building the rest (for selectors).
    pub fn decode_meta(&self) -> Result<MetaView, serde_json::Error> {
        #[derive(Deserialize)]
        struct Outer {
            #[serde(default)]
            metadata: MetaView,
        }
        serde_json::from_slice::<Outer>(&self.0).map(|o| o.metadata)
    }

    /// Decodes the object as another type (e.g. a k8s-openapi type).
    pub fn decode_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.0)
    }

    /// The JSON bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length of the JSON in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the encoding is empty (never for an encoded object).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What selectors read of an object's metadata: [`Encoded::decode_meta`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MetaView {
    /// `metadata.name`.
    #[serde(default)]
    pub name: Option<String>,
    /// `metadata.namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `metadata.labels`.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) => write!(f, "Encoded({s})"),
            Err(_) => write!(f, "Encoded({} bytes, not UTF-8)", self.0.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_field_order() {
        let o: DynamicObject = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","resourceVersion":"7"},
                "spec":{"z":1,"a":[1,2]},"status":{"phase":"Running"}}"#,
        )
        .unwrap();
        let e = Encoded::encode(&o).unwrap();
        assert_eq!(e.decode().unwrap(), o);
        assert_eq!(e.as_bytes(), serde_json::to_vec(&o).unwrap().as_slice());
        let pod: k8s_openapi::api::core::v1::Pod = e.decode_as().unwrap();
        assert_eq!(pod.metadata.resource_version.as_deref(), Some("7"));
    }

    #[test]
    fn reads_only_the_metadata_selectors_need() {
        let e = Encoded::from_json_bytes(
            br#"{"kind":"Pod","metadata":{"name":"p","namespace":"n","labels":{"a":"b"},
                "annotations":{"x":"y"}},"spec":{"nodeName":"n1"}}"#,
        );
        let m = e.decode_meta().unwrap();
        assert_eq!(m.name.as_deref(), Some("p"));
        assert_eq!(m.namespace.as_deref(), Some("n"));
        assert_eq!(m.labels.unwrap()["a"], "b");
        let none = Encoded::from_json_bytes(br#"{"kind":"Pod"}"#)
            .decode_meta()
            .unwrap();
        assert_eq!(none, MetaView::default());
    }

    #[test]
    fn clones_share_the_bytes() {
        let e = Encoded::encode(&DynamicObject::new("v1", "ConfigMap", "a")).unwrap();
        let f = e.clone();
        assert!(std::ptr::eq(e.as_bytes().as_ptr(), f.as_bytes().as_ptr()));
    }

    #[test]
    fn bad_bytes_fail_to_decode() {
        let e = Encoded::from_json_bytes(b"{\"kind\":");
        assert!(e.decode().is_err());
        assert_eq!(e.len(), 8);
        assert!(!e.is_empty());
    }
}
