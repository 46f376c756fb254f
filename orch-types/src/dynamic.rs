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
        serde_json::from_value(v).map_err(|source| ConvertError {
            kind: K::KIND.into(),
            source,
        })
    }

    /// Converts into a typed object.
    pub fn to_typed<K: DeserializeOwned>(&self) -> Result<K, ConvertError> {
        let v = serde_json::to_value(self).map_err(|source| ConvertError {
            kind: self.types.kind.clone(),
            source,
        })?;
        serde_json::from_value(v).map_err(|source| ConvertError {
            kind: self.types.kind.clone(),
            source,
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
        serde_json::from_value(v).map_err(|source| ConvertError { kind, source })
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
}
