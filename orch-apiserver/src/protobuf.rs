//! Decoding of `application/vnd.kubernetes.protobuf` request bodies into Kubernetes JSON.
//!
//! kubectl 1.32+ sends protobuf for `create deployment|configmap|secret|namespace|…`. The body
//! is the magic `k8s\0` followed by a `runtime.Unknown` envelope (type meta + the raw message).
//! The decoder is descriptor-driven: upstream's `generated.proto` files, vendored unmodified in
//! `orch-apiserver/vendor/`, are compiled once at first use with `protox`, and the message is
//! decoded with `prost-reflect` and walked into JSON. Upstream's proto field names are the JSON
//! names; only apimachinery's special messages need a rule of their own: `Quantity` (a string),
//! `IntOrString`, `Time`/`MicroTime` (RFC 3339), `Duration`, `RawExtension` and `FieldsV1`
//! (embedded JSON); `bytes` fields become base64 like in JSON.
//!
//! ```
//! let err = orch_apiserver::protobuf::decode(b"{}").unwrap_err();
//! assert_eq!(err.to_string(), "protobuf body does not start with the k8s\\0 magic");
//! ```

use std::sync::OnceLock;

use base64::Engine;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MapKey, MessageDescriptor, ReflectMessage, Value as PValue,
};
use serde_json::{Map, Number, Value};

/// The protobuf content type.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body lacks the `k8s\0` prefix.
    #[error("protobuf body does not start with the k8s\\0 magic")]
    BadMagic,
    /// The `runtime.Unknown` envelope does not decode.
    #[error("invalid protobuf envelope: {0}")]
    Envelope(String),
    /// The envelope names a type with no vendored definition.
    #[error("no protobuf definition for {api_version}, Kind={kind}")]
    UnknownType {
        /// `apiVersion` from the envelope.
        api_version: String,
        /// `kind` from the envelope.
        kind: String,
    },
    /// The raw message does not decode as its type.
    #[error("invalid protobuf {kind}: {message}")]
    Body {
        /// Kind being decoded.
        kind: String,
        /// Decoder message.
        message: String,
    },
    /// Only the identity content encoding is supported.
    #[error("unsupported protobuf content encoding {0:?}")]
    ContentEncoding(String),
    /// The vendored definitions failed to compile (a build defect, not bad input).
    #[error("protobuf definitions unavailable: {0}")]
    Definitions(String),
}

macro_rules! vendored {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../vendor/", $path)))),*]
    };
}

/// Every vendored `.proto` file: import path and source.
static FILES: &[(&str, &str)] = vendored![
    "k8s.io/apimachinery/pkg/runtime/schema/generated.proto",
    "k8s.io/apimachinery/pkg/runtime/generated.proto",
    "k8s.io/apimachinery/pkg/util/intstr/generated.proto",
    "k8s.io/apimachinery/pkg/api/resource/generated.proto",
    "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",
    "k8s.io/api/core/v1/generated.proto",
    "k8s.io/api/apps/v1/generated.proto",
    "k8s.io/api/scheduling/v1alpha3/generated.proto",
    "k8s.io/api/batch/v1/generated.proto",
    "k8s.io/api/autoscaling/v1/generated.proto",
    "k8s.io/api/autoscaling/v2/generated.proto",
    "k8s.io/api/policy/v1/generated.proto",
    "k8s.io/api/coordination/v1/generated.proto",
    "k8s.io/api/scheduling/v1/generated.proto",
    "k8s.io/api/events/v1/generated.proto",
];

struct Embedded;

impl protox::file::FileResolver for Embedded {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match FILES.iter().find(|(n, _)| *n == name) {
            Some((n, src)) => protox::file::File::from_source(n, src),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

fn pool() -> Result<&'static DescriptorPool, ProtobufError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut c = protox::Compiler::with_file_resolver(Embedded);
        c.include_imports(true);
        c.open_files(FILES.iter().map(|(n, _)| *n))
            .map_err(|e| e.to_string())?;
        Ok(c.descriptor_pool())
    })
    .as_ref()
    .map_err(|e| ProtobufError::Definitions(e.clone()))
}

/// The protobuf message name of a kind: `apps/v1` `Deployment` →
/// `k8s.io.api.apps.v1.Deployment`; `v1` → `k8s.io.api.core.v1`; `*.k8s.io` groups drop the
/// suffix (`coordination.k8s.io/v1` → `k8s.io.api.coordination.v1`).
pub fn message_name(api_version: &str, kind: &str) -> String {
    let (group, version) = orch_types::registry::split_api_version(api_version);
    let group = match group {
        "" => "core",
        g => g.strip_suffix(".k8s.io").unwrap_or(g),
    };
    format!("k8s.io.api.{group}.{version}.{kind}")
}

/// Decodes a `k8s\0` + `runtime.Unknown` body into the object's JSON (with `apiVersion` and
/// `kind` from the envelope).
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::BadMagic)?;
    let pool = pool()?;
    let unknown_desc = pool
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.Unknown")
        .ok_or_else(|| ProtobufError::Definitions("runtime.Unknown missing".into()))?;
    let unknown = DynamicMessage::decode(unknown_desc, rest)
        .map_err(|e| ProtobufError::Envelope(e.to_string()))?;
    let text = |m: &DynamicMessage, f: &str| {
        m.get_field_by_name(f)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let type_meta = unknown
        .get_field_by_name("typeMeta")
        .and_then(|v| v.as_message().cloned())
        .ok_or_else(|| ProtobufError::Envelope("missing typeMeta".into()))?;
    let api_version = text(&type_meta, "apiVersion");
    let kind = text(&type_meta, "kind");
    let encoding = text(&unknown, "contentEncoding");
    if !encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(encoding));
    }
    let raw = unknown
        .get_field_by_name("raw")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let desc: MessageDescriptor = pool
        .get_message_by_name(&message_name(&api_version, &kind))
        .ok_or_else(|| ProtobufError::UnknownType {
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
    let msg = DynamicMessage::decode(desc, raw.as_ref()).map_err(|e| ProtobufError::Body {
        kind: kind.clone(),
        message: e.to_string(),
    })?;
    let mut v = message_to_json(&msg);
    if let Value::Object(m) = &mut v {
        let mut out = Map::new();
        out.insert("apiVersion".into(), api_version.into());
        out.insert("kind".into(), kind.into());
        out.extend(std::mem::take(m));
        *m = out;
    }
    Ok(v)
}

fn timestamp(m: &DynamicMessage, micro: bool) -> Value {
    let secs = m
        .get_field_by_name("seconds")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let nanos = m
        .get_field_by_name("nanos")
        .and_then(|v| v.as_i32())
        .unwrap_or(0);
    if secs == 0 && nanos == 0 {
        // Go's zero `metav1.Time` (always marshalled) is `null` in JSON.
        return Value::Null;
    }
    match jiff::Timestamp::new(secs, if micro { nanos } else { 0 }) {
        Ok(t) if micro => Value::String(t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
        Ok(t) => Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        Err(_) => Value::Null,
    }
}

fn embedded_json(m: &DynamicMessage, field: &str) -> Value {
    m.get_field_by_name(field)
        .and_then(|v| v.as_bytes().cloned())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

fn message_to_json(m: &DynamicMessage) -> Value {
    match m.descriptor().full_name() {
        "k8s.io.apimachinery.pkg.api.resource.Quantity" => m
            .get_field_by_name("string")
            .and_then(|v| v.as_str().map(|s| Value::String(s.to_string())))
            .unwrap_or(Value::Null),
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => {
            let ty = m
                .get_field_by_name("type")
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            if ty == 1 {
                m.get_field_by_name("strVal")
                    .and_then(|v| v.as_str().map(|s| Value::String(s.to_string())))
                    .unwrap_or(Value::Null)
            } else {
                Value::from(
                    m.get_field_by_name("intVal")
                        .and_then(|v| v.as_i32())
                        .unwrap_or(0),
                )
            }
        }
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time" => timestamp(m, false),
        "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => timestamp(m, true),
        "k8s.io.apimachinery.pkg.apis.meta.v1.Duration" => {
            let ns = m
                .get_field_by_name("duration")
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            Value::String(format!("{}s", ns as f64 / 1e9))
        }
        "k8s.io.apimachinery.pkg.runtime.RawExtension" => embedded_json(m, "raw"),
        "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1" => embedded_json(m, "Raw"),
        name => {
            // Upstream's generated marshallers write every non-pointer scalar, even when it
            // is the zero value; Go's JSON drops those (`omitempty`) unless the field is
            // required. The schema's `required` list tells which is which.
            let def = definition(name);
            let required: Vec<&str> = def
                .and_then(|d| d.get("required"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let properties = def
                .and_then(|d| d.get("properties"))
                .and_then(Value::as_object);
            let mut out = Map::new();
            for (f, v) in m.fields() {
                let j = value_to_json(v);
                // Go structs embedded with `json:",inline"` (Probe's `handler`, Volume's
                // `volumeSource`) are nested messages in protobuf but flat in JSON: a message
                // field the JSON schema does not know is such an embedding.
                if let (Some(props), Value::Object(inner)) = (properties, &j) {
                    if !props.contains_key(f.name()) {
                        out.extend(inner.clone());
                        continue;
                    }
                }
                let zero = match &j {
                    Value::Null => true,
                    Value::String(s) => s.is_empty(),
                    Value::Bool(b) => !b,
                    Value::Number(n) => n.as_f64() == Some(0.0),
                    _ => false,
                };
                if zero && !required.contains(&f.name()) {
                    continue;
                }
                out.insert(f.name().to_string(), j);
            }
            Value::Object(out)
        }
    }
}

/// The OpenAPI definition of a message (`k8s.io.api.…` → `io.k8s.api.…`).
fn definition(message: &str) -> Option<&'static Value> {
    let rest = message.strip_prefix("k8s.io.")?;
    crate::schema::Schemas::builtin().definition(&format!("io.k8s.{rest}"))
}

fn value_to_json(v: &PValue) -> Value {
    match v {
        PValue::Bool(b) => Value::Bool(*b),
        PValue::I32(i) => Value::from(*i),
        PValue::I64(i) => Value::from(*i),
        PValue::U32(i) => Value::from(*i),
        PValue::U64(i) => Value::from(*i),
        PValue::F32(f) => Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number),
        PValue::F64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        PValue::String(s) => Value::String(s.clone()),
        PValue::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        PValue::EnumNumber(n) => Value::from(*n),
        PValue::Message(m) => message_to_json(m),
        PValue::List(items) => Value::Array(items.iter().map(value_to_json).collect()),
        PValue::Map(entries) => {
            let mut pairs: Vec<(String, Value)> = entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        MapKey::String(s) => s.clone(),
                        MapKey::Bool(b) => b.to_string(),
                        MapKey::I32(i) => i.to_string(),
                        MapKey::I64(i) => i.to_string(),
                        MapKey::U32(i) => i.to_string(),
                        MapKey::U64(i) => i.to_string(),
                    };
                    (key, value_to_json(v))
                })
                .collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(pairs.into_iter().collect())
        }
    }
}

#[cfg(test)]
mod tests;
