//! Decoding of `application/vnd.kubernetes.protobuf` request bodies into Kubernetes JSON.
//!
//! kubectl 1.32+ sends protobuf for `create deployment|configmap|secret|namespace|…`,
//! `autoscale` and `auth can-i`. The body is the magic `k8s\0` followed by a `runtime.Unknown`
//! envelope (type meta + the raw message).
//!
//! The wire definitions come from the [`k8s_pb`] crate (the kube-rs project's prost types of
//! every Kubernetes API group): the envelope names the kind, [`KINDS`] picks its prost type, and
//! prost decodes the message. Those types carry neither serde nor reflection, so the decoded
//! message reaches JSON through the one generic view prost derives for them, its `Debug` text
//! (type and field names, `Some`/`None`, lists, maps, strings), which [`debug_text`] reads back
//! into a tree. The tree becomes JSON guided by the kind's OpenAPI schema, the same schema the
//! API server validates with:
//! - field names: prost's snake_case names (`host_ipc`) are matched to the schema's JSON names
//!   (`hostIPC`) ignoring case and underscores;
//! - omitted values: upstream's generated marshallers write every non-pointer scalar, even when
//!   it is the zero value; Go's JSON drops those (`omitempty`) unless the field is required, and
//!   protobuf cannot tell an empty list or map from an absent one, so both are dropped too. A
//!   zero in a Go pointer field (`replicas: 0`, `enableServiceLinks: false`, the schema's
//!   `table::POINTER_SCALARS`) is a value the client set, and is kept;
//! - Go structs embedded with `json:",inline"` (Probe's `handler`, Volume's `volumeSource`) are
//!   nested messages in protobuf but flat in JSON: a message field the schema does not know is
//!   such an embedding;
//! - `bytes` fields (`format: byte`) become base64, as in JSON;
//! - apimachinery's special messages: `Quantity` (a string), `IntOrString`, `Time`/`MicroTime`
//!   (RFC 3339), `Duration`, and `RawExtension`/`FieldsV1` (embedded JSON).
//!
//! ```
//! let err = orch_apiserver::protobuf::decode(b"{}").unwrap_err();
//! assert_eq!(err.to_string(), "protobuf body does not start with the k8s\\0 magic");
//! ```

mod debug_text;

use base64::Engine;
use debug_text::Dv;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Number, Value};

use crate::schema::{SchemaNode, Schemas};

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
    /// The envelope names a kind without a protobuf decoder.
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
}

/// Decodes one kind's raw message with its prost type into the message's `Debug` text.
type DecodeFn = fn(&[u8]) -> Result<String, prost::DecodeError>;

macro_rules! kinds {
    ($($ty:ty),* ; $(($api_version:literal, $kind:literal) => $sub:ty),* $(,)?) => {
        /// Every kind whose protobuf body is decoded: `(apiVersion, kind, decoder)`. These are
        /// the kinds the API server serves, named by the `k8s_pb` types' own `Resource`
        /// constants, and the subresource kinds clients post (`Eviction`, `Scale`).
        pub static KINDS: &[(&str, &str, DecodeFn)] = &[$((
            <$ty as k8s_pb::Resource>::API_VERSION,
            <$ty as k8s_pb::Resource>::KIND,
            |raw| <$ty as Message>::decode(raw).map(|m| format!("{m:?}")),
        ),)* $((
            $api_version,
            $kind,
            |raw| <$sub as Message>::decode(raw).map(|m| format!("{m:?}")),
        )),*];
    };
}

kinds![
    k8s_pb::api::core::v1::Pod,
    k8s_pb::api::core::v1::Node,
    k8s_pb::api::core::v1::Namespace,
    k8s_pb::api::core::v1::Service,
    k8s_pb::api::core::v1::Endpoints,
    k8s_pb::api::core::v1::Event,
    k8s_pb::api::core::v1::ConfigMap,
    k8s_pb::api::core::v1::Secret,
    k8s_pb::api::core::v1::ServiceAccount,
    k8s_pb::api::core::v1::PodTemplate,
    k8s_pb::api::core::v1::ReplicationController,
    k8s_pb::api::core::v1::Binding,
    k8s_pb::api::core::v1::PersistentVolumeClaim,
    k8s_pb::api::core::v1::PersistentVolume,
    k8s_pb::api::core::v1::ResourceQuota,
    k8s_pb::api::core::v1::LimitRange,
    k8s_pb::api::apps::v1::ReplicaSet,
    k8s_pb::api::apps::v1::Deployment,
    k8s_pb::api::apps::v1::DaemonSet,
    k8s_pb::api::apps::v1::StatefulSet,
    k8s_pb::api::apps::v1::ControllerRevision,
    k8s_pb::api::batch::v1::Job,
    k8s_pb::api::batch::v1::CronJob,
    k8s_pb::api::policy::v1::PodDisruptionBudget,
    k8s_pb::api::coordination::v1::Lease,
    k8s_pb::api::autoscaling::v2::HorizontalPodAutoscaler,
    k8s_pb::api::autoscaling::v1::HorizontalPodAutoscaler,
    k8s_pb::api::storage::v1::StorageClass,
    k8s_pb::api::scheduling::v1::PriorityClass,
    k8s_pb::api::flowcontrol::v1::FlowSchema,
    k8s_pb::api::flowcontrol::v1::PriorityLevelConfiguration,
    k8s_pb::api::events::v1::Event,
    k8s_pb::api::discovery::v1::EndpointSlice,
    k8s_pb::api::certificates::v1::CertificateSigningRequest,
    k8s_pb::api::rbac::v1::Role,
    k8s_pb::api::rbac::v1::ClusterRole,
    k8s_pb::api::rbac::v1::RoleBinding,
    k8s_pb::api::rbac::v1::ClusterRoleBinding,
    k8s_pb::api::authorization::v1::SelfSubjectAccessReview,
    k8s_pb::api::authorization::v1::SubjectAccessReview,
    k8s_pb::api::authorization::v1::LocalSubjectAccessReview,
    k8s_pb::api::authorization::v1::SelfSubjectRulesReview,
    k8s_pb::api::authentication::v1::SelfSubjectReview,
    k8s_pb::api::authentication::v1::TokenReview,
    k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    ("policy/v1", "Eviction") => k8s_pb::api::policy::v1::Eviction,
    ("autoscaling/v1", "Scale") => k8s_pb::api::autoscaling::v1::Scale,
    ("authentication.k8s.io/v1", "TokenRequest") => k8s_pb::api::authentication::v1::TokenRequest,
];

/// The option kinds a protobuf client may send as a body, under any group version (upstream
/// `metav1.AddToGroupVersion` registers them in each): kind, decoder, schema definition.
static OPTION_KINDS: &[(&str, DecodeFn, &str)] = &[(
    "DeleteOptions",
    |raw| {
        <k8s_pb::apimachinery::pkg::apis::meta::v1::DeleteOptions as Message>::decode(raw)
            .map(|m| format!("{m:?}"))
    },
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
)];

/// Decodes a `k8s\0` + `runtime.Unknown` body into the object's JSON (with `apiVersion` and
/// `kind` from the envelope).
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::BadMagic)?;
    let unknown = Unknown::decode(rest).map_err(|e| ProtobufError::Envelope(e.to_string()))?;
    let type_meta = unknown
        .type_meta
        .ok_or_else(|| ProtobufError::Envelope("missing typeMeta".into()))?;
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if let Some(encoding) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(ProtobufError::ContentEncoding(encoding));
    }
    let (group, version) = orch_types::registry::split_api_version(&api_version);
    let schemas = Schemas::builtin();
    let (decode_kind, root) = if let Some((_, _, f)) = KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
    {
        let root = schemas.root(group, version, &kind);
        (*f, root.unwrap_or_else(|| SchemaNode::unknown(schemas)))
    } else if let Some((_, f, definition)) = OPTION_KINDS.iter().find(|(k, _, _)| *k == kind) {
        (*f, schemas.node(definition))
    } else {
        return Err(ProtobufError::UnknownType { api_version, kind });
    };
    let body_error = |message: String| ProtobufError::Body {
        kind: kind.clone(),
        message,
    };
    let text =
        decode_kind(&unknown.raw.unwrap_or_default()).map_err(|e| body_error(e.to_string()))?;
    let tree = debug_text::parse(&text).map_err(body_error)?;
    let mut out = Map::new();
    out.insert("apiVersion".into(), api_version.as_str().into());
    out.insert("kind".into(), kind.as_str().into());
    if let Value::Object(fields) = to_json(&tree, root) {
        out.extend(fields);
    }
    Ok(Value::Object(out))
}

/// The JSON of one decoded value at schema position `node`.
fn to_json(v: &Dv, node: SchemaNode<'_>) -> Value {
    match v {
        Dv::Null => Value::Null,
        Dv::Bool(b) => Value::Bool(*b),
        Dv::Str(s) => Value::String(s.clone()),
        Dv::Num(n) => number(n),
        Dv::List(items) if is_bytes(node) => bytes(items)
            .map(|b| Value::String(base64::engine::general_purpose::STANDARD.encode(b)))
            .unwrap_or(Value::Null),
        Dv::List(items) => Value::Array(items.iter().map(|i| to_json(i, node)).collect()),
        Dv::Map(entries) => {
            let mut pairs: Vec<(String, Value)> = entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Dv::Str(s) | Dv::Num(s) => s.clone(),
                        Dv::Bool(b) => b.to_string(),
                        _ => String::new(),
                    };
                    let value = to_json(v, node.field(&key).0);
                    (key, value)
                })
                .collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(pairs.into_iter().collect())
        }
        Dv::Struct(name, fields) => special(name, fields).unwrap_or_else(|| object(fields, node)),
    }
}

/// An ordinary message: its fields under their JSON names, zero values left out.
fn object(fields: &[(String, Dv)], node: SchemaNode<'_>) -> Value {
    let schema = node.schema();
    let properties = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object);
    let required: Vec<&str> = schema
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    for (field, value) in fields {
        let name = match properties {
            Some(props) => props.keys().find(|k| same_name(k, field)).cloned(),
            None => Some(lower_camel(field)),
        };
        let Some(name) = name else {
            match value {
                // An inline embedding: its fields belong to this object.
                Dv::Struct(n, inner) if special(n, inner).is_none() => {
                    if let Value::Object(m) = object(inner, node) {
                        out.extend(m);
                    }
                }
                // A field newer than the schema: kept under its camelCase name, for the
                // API server's unknown-field handling to judge.
                _ => {
                    let j = to_json(value, SchemaNode::unknown(Schemas::builtin()));
                    if !absent(value, &j) && !zero(value, &j) {
                        out.insert(lower_camel(field), j);
                    }
                }
            }
            continue;
        };
        let j = to_json(value, node.field(&name).0);
        let zero_kept = required.contains(&name.as_str()) || node.is_pointer_scalar(&name);
        if absent(value, &j) || (!zero_kept && zero(value, &j)) {
            continue;
        }
        out.insert(name, j);
    }
    Value::Object(out)
}

/// Whether a field's value is absent: `None`, a message that stands for `null` (the zero
/// `Time`), or a list or map that protobuf cannot tell from absent when empty.
fn absent(v: &Dv, j: &Value) -> bool {
    match (v, j) {
        (_, Value::Null) => true,
        (Dv::List(_) | Dv::Map(_), Value::Array(a)) => a.is_empty(),
        (Dv::List(_) | Dv::Map(_), Value::Object(m)) => m.is_empty(),
        _ => false,
    }
}

/// Whether a field's value is a zero scalar, which Go's JSON leaves out (`omitempty`). A
/// message that is present stays, even when empty (`emptyDir: {}`) or zero (a Go pointer:
/// `maxUnavailable: 0`).
fn zero(v: &Dv, j: &Value) -> bool {
    match (v, j) {
        (Dv::Struct(..), _) => false,
        (_, Value::String(s)) => s.is_empty(),
        (_, Value::Bool(b)) => !b,
        (_, Value::Number(n)) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// apimachinery's messages whose JSON is not an object.
fn special(name: &str, fields: &[(String, Dv)]) -> Option<Value> {
    let get = |f: &str| {
        fields
            .iter()
            .find(|(n, _)| n.trim_start_matches("r#") == f)
            .map(|(_, v)| v)
    };
    let int = |f: &str| match get(f) {
        Some(Dv::Num(n)) => n.parse::<i64>().unwrap_or(0),
        _ => 0,
    };
    let text = |f: &str| match get(f) {
        Some(Dv::Str(s)) => Value::String(s.clone()),
        _ => Value::Null,
    };
    let embedded = |f: &str| match get(f) {
        Some(Dv::List(items)) => bytes(items)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null),
        _ => Value::Null,
    };
    Some(match name {
        "Quantity" => text("string"),
        "IntOrString" if int("type") == 1 => text("str_val"),
        "IntOrString" => Value::from(int("int_val")),
        "Time" => timestamp(int("seconds"), 0, false),
        "MicroTime" => timestamp(int("seconds"), int("nanos"), true),
        "Duration" => Value::String(format!("{}s", int("duration") as f64 / 1e9)),
        "RawExtension" | "FieldsV1" => embedded("raw"),
        _ => return None,
    })
}

fn timestamp(secs: i64, nanos: i64, micro: bool) -> Value {
    if secs == 0 && nanos == 0 {
        // Go's zero `metav1.Time` (always marshalled) is `null` in JSON.
        return Value::Null;
    }
    let nanos = i32::try_from(nanos).unwrap_or(0);
    match jiff::Timestamp::new(secs, nanos) {
        Ok(t) if micro => Value::String(t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
        Ok(t) => Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        Err(_) => Value::Null,
    }
}

fn number(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(u) = text.parse::<u64>() {
        return Value::from(u);
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// The bytes of a `Vec<u8>` printed as a list of numbers.
fn bytes(items: &[Dv]) -> Option<Vec<u8>> {
    items
        .iter()
        .map(|i| match i {
            Dv::Num(n) => n.parse::<u8>().ok(),
            _ => None,
        })
        .collect()
}

fn is_bytes(node: SchemaNode<'_>) -> bool {
    node.schema()
        .and_then(|s| s.get("format"))
        .and_then(Value::as_str)
        == Some("byte")
}

/// Whether JSON name `json` is prost's field name `field` (`hostIPC` and `host_ipc`,
/// `type` and `r#type`).
fn same_name(json: &str, field: &str) -> bool {
    let mut a = json
        .chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase());
    let mut b = field
        .trim_start_matches("r#")
        .chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (x, y) if x == y => continue,
            _ => return false,
        }
    }
}

/// `host_network` → `hostNetwork`.
fn lower_camel(field: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in field.trim_start_matches("r#").chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
