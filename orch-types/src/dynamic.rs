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
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Every other top-level field.
    #[serde(flatten)]
    pub data: Map<String, Value>,
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
            Some(meta) => match ObjectMeta::deserialize(meta) {
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
