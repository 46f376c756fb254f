//! [`DynamicObject`]: an object of any kind, typed metadata plus the rest as JSON.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{Map, Value};

/// `apiVersion` + `kind`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeMeta {
    /// `apiVersion`, e.g. `apps/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// `kind`, e.g. `Deployment`.
    #[serde(default)]
    pub kind: String,
}

/// An object whose kind may only be known at run time: TypeMeta + ObjectMeta + every other
/// top-level field (`spec`, `status`, `data`, …) as JSON.
///
/// ```
/// use orch_types::DynamicObject;
/// let o: DynamicObject = serde_json::from_str(
///     r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"b"}}"#,
/// ).unwrap();
/// assert_eq!(o.name(), "c");
/// assert_eq!(o.data["data"]["a"], "b");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DynamicObject {
    /// `apiVersion` and `kind`.
    #[serde(flatten)]
    pub types: TypeMeta,
    /// Standard object metadata, without the empty values Go's `omitempty` leaves out (see
    /// [`omit_empty_meta`]): they are dropped when the object is decoded and never encoded.
    #[serde(
        default,
        serialize_with = "serialize_meta",
        deserialize_with = "deserialize_meta"
    )]
    pub metadata: ObjectMeta,
    /// Every other top-level field.
    #[serde(flatten)]
    pub data: Map<String, Value>,
}

/// Drops what Go's `encoding/json` leaves out of an `ObjectMeta` under `omitempty`: empty
/// `labels`, `annotations`, `finalizers`, `ownerReferences` and `managedFields`, empty strings
/// (`name`, `generateName`, `namespace`, `selfLink`, `uid`, `resourceVersion`) and a zero
/// `generation`. kube-apiserver decodes every write into its Go struct and encodes it again, so
/// a JSON patch that removes the last owner reference stores no `ownerReferences` at all (not
/// `[]`), and kubectl prints nothing for `{.metadata.ownerReferences}`
/// (upstream `staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go`, `ObjectMeta`: every
/// one of these fields is tagged `omitempty`; custom resources get the same through
/// `apiextensions-apiserver/pkg/apiserver/schema/objectmeta/coerce.go`, which round-trips their
/// metadata through that struct).
///
/// [`DynamicObject`] applies it when it is decoded and when it is encoded, so stored objects,
/// watch events and responses follow the rule whichever writer produced the empty value.
///
/// ```
/// use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
/// let mut m = ObjectMeta { owner_references: Some(vec![]), name: Some("p".into()), ..Default::default() };
/// orch_types::dynamic::omit_empty_meta(&mut m);
/// assert_eq!(m, ObjectMeta { name: Some("p".into()), ..Default::default() });
/// ```
pub fn omit_empty_meta(m: &mut ObjectMeta) {
    fn none_if<T>(v: &mut Option<T>, empty: impl Fn(&T) -> bool) {
        if v.as_ref().is_some_and(empty) {
            *v = None;
        }
    }
    none_if(&mut m.labels, |v| v.is_empty());
    none_if(&mut m.annotations, |v| v.is_empty());
    none_if(&mut m.finalizers, |v| v.is_empty());
    none_if(&mut m.owner_references, |v| v.is_empty());
    none_if(&mut m.managed_fields, |v| v.is_empty());
    for s in [
        &mut m.name,
        &mut m.generate_name,
        &mut m.namespace,
        &mut m.self_link,
        &mut m.uid,
        &mut m.resource_version,
    ] {
        none_if(s, |v| v.is_empty());
    }
    none_if(&mut m.generation, |g| *g == 0);
}

/// Whether [`omit_empty_meta`] would change `m` (so encoding needs no copy in the usual case).
fn has_omitted(m: &ObjectMeta) -> bool {
    let empty_str = |s: &Option<String>| s.as_deref() == Some("");
    m.labels.as_ref().is_some_and(|v| v.is_empty())
        || m.annotations.as_ref().is_some_and(|v| v.is_empty())
        || m.finalizers.as_ref().is_some_and(|v| v.is_empty())
        || m.owner_references.as_ref().is_some_and(|v| v.is_empty())
        || m.managed_fields.as_ref().is_some_and(|v| v.is_empty())
        || [
            &m.name,
            &m.generate_name,
            &m.namespace,
            &m.self_link,
            &m.uid,
            &m.resource_version,
        ]
        .into_iter()
        .any(empty_str)
        || m.generation == Some(0)
}

fn serialize_meta<S: serde::Serializer>(m: &ObjectMeta, s: S) -> Result<S::Ok, S::Error> {
    if has_omitted(m) {
        let mut m = m.clone();
        omit_empty_meta(&mut m);
        m.serialize(s)
    } else {
        m.serialize(s)
    }
}

fn deserialize_meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let mut m = ObjectMeta::deserialize(d)?;
    omit_empty_meta(&mut m);
    Ok(m)
}

/// Errors converting between typed and dynamic objects.
#[derive(Debug, thiserror::Error)]
#[error("cannot convert {kind} object: {source}")]
pub struct ConvertError {
    /// Kind being converted.
    pub kind: String,
    /// The underlying serde error.
    #[source]
    pub source: serde_json::Error,
}

impl DynamicObject {
    /// A new empty object of the given type.
    pub fn new(api_version: &str, kind: &str, name: &str) -> Self {
        Self {
            types: TypeMeta {
                api_version: api_version.into(),
                kind: kind.into(),
            },
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Map::new(),
        }
    }

    /// `metadata.name` or `""`.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata.namespace.as_deref()
    }

    /// `metadata.resourceVersion`.
    pub fn resource_version(&self) -> Option<&str> {
        self.metadata.resource_version.as_deref()
    }

    /// Converts a typed k8s-openapi object (setting apiVersion and kind).
    pub fn from_typed<K: k8s_openapi::Resource + Serialize>(obj: &K) -> Result<Self, ConvertError> {
        let mut v = serde_json::to_value(obj).map_err(|source| ConvertError {
            kind: K::KIND.into(),
            source,
        })?;
        if let Value::Object(m) = &mut v {
            m.insert("apiVersion".into(), Value::String(K::API_VERSION.into()));
            m.insert("kind".into(), Value::String(K::KIND.into()));
        }
        Self::split(v).map_err(|source| ConvertError {
            kind: K::KIND.into(),
            source,
        })
    }

    /// Converts into a typed object.
    ///
    /// Deserializes straight from the borrowed fields (only the metadata is encoded first), so
    /// `spec` and `status` are not copied into an intermediate JSON value.
    pub fn to_typed<K: DeserializeOwned>(&self) -> Result<K, ConvertError> {
        let err = |source| ConvertError {
            kind: self.types.kind.clone(),
            source,
        };
        let head = [
            ("apiVersion", Value::String(self.types.api_version.clone())),
            ("kind", Value::String(self.types.kind.clone())),
            (
                "metadata",
                serde_json::to_value(&self.metadata).map_err(err)?,
            ),
        ];
        let fields = head
            .iter()
            .map(|(k, v)| (*k, v))
            .chain(self.data.iter().map(|(k, v)| (k.as_str(), v)));
        let de = serde::de::value::MapDeserializer::<_, serde_json::Error>::new(fields);
        K::deserialize(de).map_err(err)
    }

    /// Splits a JSON object into TypeMeta, ObjectMeta and the rest without serde's `flatten`
    /// buffering; anything unusual (a non-string `kind`, metadata that does not fit) goes
    /// through the derived deserializer so errors read exactly the same.
    fn split(v: Value) -> Result<Self, serde_json::Error> {
        let Value::Object(mut m) = v else {
            return serde_json::from_value(v);
        };
        let plain = |k: &str| m.get(k).is_none_or(Value::is_string);
        if !plain("apiVersion") || !plain("kind") {
            return serde_json::from_value(Value::Object(m));
        }
        let metadata = match m.get("metadata") {
            None => ObjectMeta::default(),
            Some(meta) => match deserialize_meta(meta) {
                Ok(meta) => meta,
                Err(_) => return serde_json::from_value(Value::Object(m)),
            },
        };
        let mut take = |k: &str| match m.shift_remove(k) {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        let types = TypeMeta {
            api_version: take("apiVersion"),
            kind: take("kind"),
        };
        m.shift_remove("metadata");
        Ok(Self {
            types,
            metadata,
            data: m,
        })
    }

    /// The whole object as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Parses a JSON value.
    pub fn from_value(v: Value) -> Result<Self, ConvertError> {
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Self::split(v).map_err(|source| ConvertError { kind, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn typed_round_trip() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let d = DynamicObject::from_typed(&pod).unwrap();
        assert_eq!(d.types.kind, "Pod");
        assert_eq!(d.types.api_version, "v1");
        let back: Pod = d.to_typed().unwrap();
        assert_eq!(back, pod);
    }

    /// The fast split keeps field order and reads exactly like the derived deserializer,
    /// errors included.
    #[test]
    fn from_value_matches_the_derived_deserializer() {
        let cases = [
            serde_json::json!({"kind": "Pod", "apiVersion": "v1", "status": {"b": 1, "a": 2},
                               "metadata": {"name": "p", "labels": {"z": "1", "a": "2"}},
                               "spec": {"x": [1, 2]}}),
            serde_json::json!({"data": {"a": "b"}}),
            serde_json::json!({"kind": 5, "metadata": {}}),
            serde_json::json!({"kind": "Pod", "metadata": {"name": 7}}),
            serde_json::json!({"kind": "Pod", "metadata": null}),
            serde_json::json!([1, 2]),
        ];
        for v in cases {
            let derived = serde_json::from_value::<DynamicObject>(v.clone());
            let fast = DynamicObject::from_value(v.clone());
            match (derived, fast) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "{v}");
                    let keys = |o: &DynamicObject| o.data.keys().cloned().collect::<Vec<_>>();
                    assert_eq!(keys(&a), keys(&b), "{v}");
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.source.to_string(), "{v}"),
                (a, b) => panic!("{v}: derived {a:?} vs fast {b:?}"),
            }
        }
    }

    /// Go's `omitempty` on ObjectMeta: an emptied list or map is neither kept nor sent, on
    /// every way in (decoded JSON, a typed object) and out (encoding).
    #[test]
    fn empty_metadata_lists_and_maps_are_omitted() {
        let v = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "p", "namespace": "default", "ownerReferences": [], "finalizers": [],
            "labels": {}, "annotations": {}, "managedFields": [], "generateName": "",
            "generation": 0}});
        let want = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                                      "metadata": {"name": "p", "namespace": "default"}});
        let fast = DynamicObject::from_value(v.clone()).unwrap();
        assert_eq!(fast.to_value(), want);
        assert_eq!(fast.metadata.owner_references, None);
        let derived: DynamicObject = serde_json::from_value(v).unwrap();
        assert_eq!(derived, fast);
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                owner_references: Some(vec![]),
                finalizers: Some(vec![]),
                labels: Some(Default::default()),
                ..Default::default()
            },
            ..Default::default()
        };
        let typed = DynamicObject::from_typed(&pod).unwrap();
        assert_eq!(typed.to_value(), want);
        // Built by hand and encoded as is: still omitted on the wire.
        let mut built = DynamicObject::new("v1", "Pod", "p");
        built.metadata.namespace = Some("default".into());
        built.metadata.owner_references = Some(vec![]);
        assert_eq!(serde_json::to_value(&built).unwrap(), want);
        // Non-empty values are kept.
        let kept = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "p", "finalizers": ["f"], "labels": {"a": "b"}, "generation": 2}});
        assert_eq!(
            DynamicObject::from_value(kept.clone()).unwrap().to_value(),
            kept
        );
    }

    #[test]
    fn to_typed_reports_what_does_not_fit() {
        let d = DynamicObject::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": "nope"}}))
        .unwrap();
        let e = d.to_typed::<Pod>().unwrap_err();
        assert_eq!(e.kind, "Pod");
        assert!(e.source.to_string().contains("invalid type"), "{e}");
    }
}
