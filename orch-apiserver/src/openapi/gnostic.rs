//! The protobuf form of an OpenAPI v2 document: gnostic's `openapi.v2.Document` message, the
//! body of `/openapi/v2` for `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
//! (what client-go's `discovery.OpenAPISchema()` asks for and kubectl's v2 fallbacks parse).
//!
//! The messages are written here because no crate provides them: there is no gnostic crate on
//! crates.io, and `k8s-pb` carries only the Kubernetes API types. Field numbers and types follow
//! gnostic-models' `openapiv2/OpenAPIv2.proto` (package `openapi.v2`); only the messages a
//! Kubernetes document uses are written. Left out: security definitions and requirements,
//! top-level tags, external docs, `xml`, file schemas and the document-wide parameter and response
//! definitions — orch's document has none of them, and decoders skip fields they do not know.
//! Query and formData parameters share one message shape (same field numbers), as do path and
//! header parameters.
//!
//! [`Document::from_json`] is gnostic's `ParseDocument` for the documents orch serves: every
//! object becomes its message, every `x-` key a [`NamedAny`] whose [`Any::yaml`] holds the
//! value as YAML text (kubectl reads extensions back with a YAML decoder,
//! `k8s.io/kube-openapi/pkg/util/proto/document.go` `VendorExtensionToMap`), and so do
//! `default`, `example` and `enum` values.

use serde_json::{Map, Value};

/// `openapi.v2.Document`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Document {
    /// `swagger` (`"2.0"`).
    #[prost(string, tag = "1")]
    pub swagger: String,
    /// `info`.
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    /// `host`.
    #[prost(string, tag = "3")]
    pub host: String,
    /// `basePath`.
    #[prost(string, tag = "4")]
    pub base_path: String,
    /// `schemes`.
    #[prost(string, repeated, tag = "5")]
    pub schemes: Vec<String>,
    /// `consumes`.
    #[prost(string, repeated, tag = "6")]
    pub consumes: Vec<String>,
    /// `produces`.
    #[prost(string, repeated, tag = "7")]
    pub produces: Vec<String>,
    /// `paths`.
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    /// `definitions`.
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    /// `x-` keys.
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.Info`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Info {
    /// `title`.
    #[prost(string, tag = "1")]
    pub title: String,
    /// `version`.
    #[prost(string, tag = "2")]
    pub version: String,
    /// `description`.
    #[prost(string, tag = "3")]
    pub description: String,
    /// `termsOfService`.
    #[prost(string, tag = "4")]
    pub terms_of_service: String,
    /// `x-` keys.
    #[prost(message, repeated, tag = "7")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.Any`: a value as YAML text (`value` is only set by gnostic extension handlers).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    /// `google.protobuf.Any value`.
    #[prost(message, optional, tag = "1")]
    pub value: Option<ProtoAny>,
    /// The value as YAML.
    #[prost(string, tag = "2")]
    pub yaml: String,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAny {
    /// `type_url`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// `value`.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `openapi.v2.NamedAny`: one `x-` key and its value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedAny {
    /// The key.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

/// `openapi.v2.Paths`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Paths {
    /// `x-` keys.
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    /// The paths in document order.
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

/// `openapi.v2.NamedPathItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedPathItem {
    /// The path (`/apis/apps/v1/namespaces/{namespace}/deployments`).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its operations.
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

/// `openapi.v2.PathItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PathItem {
    /// `$ref`.
    #[prost(string, tag = "1")]
    pub xref: String,
    /// `get`.
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    /// `put`.
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    /// `post`.
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    /// `delete`.
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    /// `options`.
    #[prost(message, optional, tag = "6")]
    pub options: Option<Operation>,
    /// `head`.
    #[prost(message, optional, tag = "7")]
    pub head: Option<Operation>,
    /// `patch`.
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    /// Parameters of every operation of the path.
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    /// `x-` keys.
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.Operation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Operation {
    /// `tags`.
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    /// `summary`.
    #[prost(string, tag = "2")]
    pub summary: String,
    /// `description`.
    #[prost(string, tag = "3")]
    pub description: String,
    /// `operationId`.
    #[prost(string, tag = "5")]
    pub operation_id: String,
    /// `produces`.
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    /// `consumes`.
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    /// `parameters`.
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    /// `responses`.
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    /// `schemes`.
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    /// `deprecated`.
    #[prost(bool, tag = "11")]
    pub deprecated: bool,
    /// `x-` keys (`x-kubernetes-action`, `x-kubernetes-group-version-kind`).
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.ParametersItem`: a parameter or a reference to one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ParametersItem {
    /// Which.
    #[prost(oneof = "ParametersItemOneof", tags = "1, 2")]
    pub oneof: Option<ParametersItemOneof>,
}

/// The choice of [`ParametersItem`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParametersItemOneof {
    /// An inline parameter.
    #[prost(message, tag = "1")]
    Parameter(Box<Parameter>),
    /// `{"$ref": …}`.
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

/// `openapi.v2.JsonReference`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JsonReference {
    /// `$ref`.
    #[prost(string, tag = "1")]
    pub xref: String,
    /// `description`.
    #[prost(string, tag = "2")]
    pub description: String,
}

/// `openapi.v2.Parameter`: a body parameter or another one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Parameter {
    /// Which.
    #[prost(oneof = "ParameterOneof", tags = "1, 2")]
    pub oneof: Option<ParameterOneof>,
}

/// The choice of [`Parameter`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterOneof {
    /// `in: body`.
    #[prost(message, tag = "1")]
    BodyParameter(BodyParameter),
    /// `in: query|path|header|formData`.
    #[prost(message, tag = "2")]
    NonBodyParameter(NonBodyParameter),
}

/// `openapi.v2.BodyParameter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BodyParameter {
    /// `description`.
    #[prost(string, tag = "1")]
    pub description: String,
    /// `name`.
    #[prost(string, tag = "2")]
    pub name: String,
    /// `in` (`body`).
    #[prost(string, tag = "3")]
    pub r#in: String,
    /// `required`.
    #[prost(bool, tag = "4")]
    pub required: bool,
    /// `schema`.
    #[prost(message, optional, tag = "5")]
    pub schema: Option<Schema>,
    /// `x-` keys.
    #[prost(message, repeated, tag = "6")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.NonBodyParameter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NonBodyParameter {
    /// Which.
    #[prost(oneof = "NonBodyParameterOneof", tags = "1, 2, 3, 4")]
    pub oneof: Option<NonBodyParameterOneof>,
}

/// The choice of [`NonBodyParameter`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NonBodyParameterOneof {
    /// `in: header`.
    #[prost(message, tag = "1")]
    Header(HeaderParameterSubSchema),
    /// `in: formData`.
    #[prost(message, tag = "2")]
    FormData(FormDataParameterSubSchema),
    /// `in: query` (kubectl's `QueryParamVerifier` looks for `fieldValidation` here).
    #[prost(message, tag = "3")]
    Query(QueryParameterSubSchema),
    /// `in: path`.
    #[prost(message, tag = "4")]
    Path(PathParameterSubSchema),
}

/// `openapi.v2.QueryParameterSubSchema` (and `FormDataParameterSubSchema`, same numbers).
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryParameterSubSchema {
    /// `required`.
    #[prost(bool, tag = "1")]
    pub required: bool,
    /// `in`.
    #[prost(string, tag = "2")]
    pub r#in: String,
    /// `description`.
    #[prost(string, tag = "3")]
    pub description: String,
    /// `name`.
    #[prost(string, tag = "4")]
    pub name: String,
    /// `allowEmptyValue`.
    #[prost(bool, tag = "5")]
    pub allow_empty_value: bool,
    /// `type`.
    #[prost(string, tag = "6")]
    pub r#type: String,
    /// `format`.
    #[prost(string, tag = "7")]
    pub format: String,
    /// `items`.
    #[prost(message, optional, tag = "8")]
    pub items: Option<PrimitivesItems>,
    /// `collectionFormat`.
    #[prost(string, tag = "9")]
    pub collection_format: String,
    /// `default`.
    #[prost(message, optional, tag = "10")]
    pub default: Option<Any>,
    /// `maximum`.
    #[prost(double, tag = "11")]
    pub maximum: f64,
    /// `exclusiveMaximum`.
    #[prost(bool, tag = "12")]
    pub exclusive_maximum: bool,
    /// `minimum`.
    #[prost(double, tag = "13")]
    pub minimum: f64,
    /// `exclusiveMinimum`.
    #[prost(bool, tag = "14")]
    pub exclusive_minimum: bool,
    /// `maxLength`.
    #[prost(int64, tag = "15")]
    pub max_length: i64,
    /// `minLength`.
    #[prost(int64, tag = "16")]
    pub min_length: i64,
    /// `pattern`.
    #[prost(string, tag = "17")]
    pub pattern: String,
    /// `maxItems`.
    #[prost(int64, tag = "18")]
    pub max_items: i64,
    /// `minItems`.
    #[prost(int64, tag = "19")]
    pub min_items: i64,
    /// `uniqueItems`.
    #[prost(bool, tag = "20")]
    pub unique_items: bool,
    /// `enum`.
    #[prost(message, repeated, tag = "21")]
    pub r#enum: Vec<Any>,
    /// `multipleOf`.
    #[prost(double, tag = "22")]
    pub multiple_of: f64,
    /// `x-` keys.
    #[prost(message, repeated, tag = "23")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.FormDataParameterSubSchema`: numbered as the query parameter.
pub type FormDataParameterSubSchema = QueryParameterSubSchema;

/// `openapi.v2.PathParameterSubSchema` (and `HeaderParameterSubSchema`, same numbers): a query
/// parameter without `allowEmptyValue`, so every later field is one lower.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PathParameterSubSchema {
    /// `required`.
    #[prost(bool, tag = "1")]
    pub required: bool,
    /// `in`.
    #[prost(string, tag = "2")]
    pub r#in: String,
    /// `description`.
    #[prost(string, tag = "3")]
    pub description: String,
    /// `name`.
    #[prost(string, tag = "4")]
    pub name: String,
    /// `type`.
    #[prost(string, tag = "5")]
    pub r#type: String,
    /// `format`.
    #[prost(string, tag = "6")]
    pub format: String,
    /// `items`.
    #[prost(message, optional, tag = "7")]
    pub items: Option<PrimitivesItems>,
    /// `collectionFormat`.
    #[prost(string, tag = "8")]
    pub collection_format: String,
    /// `default`.
    #[prost(message, optional, tag = "9")]
    pub default: Option<Any>,
    /// `maximum`.
    #[prost(double, tag = "10")]
    pub maximum: f64,
    /// `exclusiveMaximum`.
    #[prost(bool, tag = "11")]
    pub exclusive_maximum: bool,
    /// `minimum`.
    #[prost(double, tag = "12")]
    pub minimum: f64,
    /// `exclusiveMinimum`.
    #[prost(bool, tag = "13")]
    pub exclusive_minimum: bool,
    /// `maxLength`.
    #[prost(int64, tag = "14")]
    pub max_length: i64,
    /// `minLength`.
    #[prost(int64, tag = "15")]
    pub min_length: i64,
    /// `pattern`.
    #[prost(string, tag = "16")]
    pub pattern: String,
    /// `maxItems`.
    #[prost(int64, tag = "17")]
    pub max_items: i64,
    /// `minItems`.
    #[prost(int64, tag = "18")]
    pub min_items: i64,
    /// `uniqueItems`.
    #[prost(bool, tag = "19")]
    pub unique_items: bool,
    /// `enum`.
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    /// `multipleOf`.
    #[prost(double, tag = "21")]
    pub multiple_of: f64,
    /// `x-` keys.
    #[prost(message, repeated, tag = "22")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.HeaderParameterSubSchema`: numbered as the path parameter.
pub type HeaderParameterSubSchema = PathParameterSubSchema;

/// `openapi.v2.PrimitivesItems`: `items` of a non-body parameter.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PrimitivesItems {
    /// `type`.
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// `format`.
    #[prost(string, tag = "2")]
    pub format: String,
    /// `items`.
    #[prost(message, optional, boxed, tag = "3")]
    pub items: Option<Box<PrimitivesItems>>,
    /// `collectionFormat`.
    #[prost(string, tag = "4")]
    pub collection_format: String,
    /// `default`.
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    /// `maximum`.
    #[prost(double, tag = "6")]
    pub maximum: f64,
    /// `exclusiveMaximum`.
    #[prost(bool, tag = "7")]
    pub exclusive_maximum: bool,
    /// `minimum`.
    #[prost(double, tag = "8")]
    pub minimum: f64,
    /// `exclusiveMinimum`.
    #[prost(bool, tag = "9")]
    pub exclusive_minimum: bool,
    /// `maxLength`.
    #[prost(int64, tag = "10")]
    pub max_length: i64,
    /// `minLength`.
    #[prost(int64, tag = "11")]
    pub min_length: i64,
    /// `pattern`.
    #[prost(string, tag = "12")]
    pub pattern: String,
    /// `maxItems`.
    #[prost(int64, tag = "13")]
    pub max_items: i64,
    /// `minItems`.
    #[prost(int64, tag = "14")]
    pub min_items: i64,
    /// `uniqueItems`.
    #[prost(bool, tag = "15")]
    pub unique_items: bool,
    /// `enum`.
    #[prost(message, repeated, tag = "16")]
    pub r#enum: Vec<Any>,
    /// `multipleOf`.
    #[prost(double, tag = "17")]
    pub multiple_of: f64,
    /// `x-` keys.
    #[prost(message, repeated, tag = "18")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.Responses`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Responses {
    /// By status code (or `default`).
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
    /// `x-` keys.
    #[prost(message, repeated, tag = "2")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.NamedResponseValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedResponseValue {
    /// The status code.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The response.
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

/// `openapi.v2.ResponseValue`: a response or a reference to one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseValue {
    /// Which.
    #[prost(oneof = "ResponseValueOneof", tags = "1, 2")]
    pub oneof: Option<ResponseValueOneof>,
}

/// The choice of [`ResponseValue`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ResponseValueOneof {
    /// An inline response.
    #[prost(message, tag = "1")]
    Response(Box<Response>),
    /// `{"$ref": …}`.
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

/// `openapi.v2.Response`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// `description`.
    #[prost(string, tag = "1")]
    pub description: String,
    /// `schema`.
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
    /// `x-` keys.
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.SchemaItem` (only its `schema` choice; `file_schema` is tag 2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaItem {
    /// Which.
    #[prost(oneof = "SchemaItemOneof", tags = "1")]
    pub oneof: Option<SchemaItemOneof>,
}

/// The choice of [`SchemaItem`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum SchemaItemOneof {
    /// A schema.
    #[prost(message, tag = "1")]
    Schema(Schema),
}

/// `openapi.v2.Definitions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Definitions {
    /// The definitions by name, in document order.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// `openapi.v2.NamedSchema`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedSchema {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The schema.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

/// `openapi.v2.Properties`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Properties {
    /// The properties by name, in document order.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// `openapi.v2.TypeItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeItem {
    /// One type (or several).
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

/// `openapi.v2.ItemsItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ItemsItem {
    /// One schema (or several, for a JSON array of schemas).
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

/// `openapi.v2.AdditionalPropertiesItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AdditionalPropertiesItem {
    /// Which.
    #[prost(oneof = "AdditionalPropertiesOneof", tags = "1, 2")]
    pub oneof: Option<AdditionalPropertiesOneof>,
}

/// The choice of [`AdditionalPropertiesItem`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AdditionalPropertiesOneof {
    /// The schema of the values.
    #[prost(message, tag = "1")]
    Schema(Box<Schema>),
    /// `true` or `false`.
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

/// `openapi.v2.Schema`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Schema {
    /// `$ref` (`#/definitions/…`).
    #[prost(string, tag = "1")]
    pub xref: String,
    /// `format`.
    #[prost(string, tag = "2")]
    pub format: String,
    /// `title`.
    #[prost(string, tag = "3")]
    pub title: String,
    /// `description`.
    #[prost(string, tag = "4")]
    pub description: String,
    /// `default`.
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    /// `multipleOf`.
    #[prost(double, tag = "6")]
    pub multiple_of: f64,
    /// `maximum`.
    #[prost(double, tag = "7")]
    pub maximum: f64,
    /// `exclusiveMaximum`.
    #[prost(bool, tag = "8")]
    pub exclusive_maximum: bool,
    /// `minimum`.
    #[prost(double, tag = "9")]
    pub minimum: f64,
    /// `exclusiveMinimum`.
    #[prost(bool, tag = "10")]
    pub exclusive_minimum: bool,
    /// `maxLength`.
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    /// `minLength`.
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    /// `pattern`.
    #[prost(string, tag = "13")]
    pub pattern: String,
    /// `maxItems`.
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    /// `minItems`.
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    /// `uniqueItems`.
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    /// `maxProperties`.
    #[prost(int64, tag = "17")]
    pub max_properties: i64,
    /// `minProperties`.
    #[prost(int64, tag = "18")]
    pub min_properties: i64,
    /// `required`.
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    /// `enum`.
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    /// `additionalProperties`.
    #[prost(message, optional, boxed, tag = "21")]
    pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
    /// `type`.
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    /// `items`.
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    /// `allOf`.
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    /// `properties`.
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    /// `discriminator`.
    #[prost(string, tag = "26")]
    pub discriminator: String,
    /// `readOnly`.
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    /// `example`.
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    /// `x-` keys (`x-kubernetes-group-version-kind`, `x-kubernetes-patch-merge-key`, …).
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

/// Typed reads of one JSON object's fields (absent or mistyped reads as the proto3 default).
struct Obj<'a>(&'a Map<String, Value>);

impl<'a> Obj<'a> {
    fn of(v: &'a Value) -> Obj<'a> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        Obj(v.as_object().unwrap_or_else(|| EMPTY.get_or_init(Map::new)))
    }
    fn get(&self, k: &str) -> Option<&'a Value> {
        self.0.get(k)
    }
    fn s(&self, k: &str) -> String {
        self.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
    fn b(&self, k: &str) -> bool {
        self.get(k).and_then(Value::as_bool).unwrap_or_default()
    }
    fn f(&self, k: &str) -> f64 {
        self.get(k).and_then(Value::as_f64).unwrap_or_default()
    }
    fn i(&self, k: &str) -> i64 {
        self.get(k).and_then(Value::as_i64).unwrap_or_default()
    }
    fn strs(&self, k: &str) -> Vec<String> {
        match self.get(k) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }
    fn any(&self, k: &str) -> Option<Any> {
        self.get(k).map(any)
    }
    fn anys(&self, k: &str) -> Vec<Any> {
        self.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(any).collect())
            .unwrap_or_default()
    }
    /// The `x-` keys in document order.
    fn ext(&self) -> Vec<NamedAny> {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with("x-"))
            .map(|(k, v)| NamedAny {
                name: k.clone(),
                value: Some(any(v)),
            })
            .collect()
    }
}

/// A value as gnostic stores it: YAML text (block style, as gnostic's `yaml.Marshal`).
fn any(v: &Value) -> Any {
    Any {
        value: None,
        yaml: serde_yaml_ng::to_string(v).unwrap_or_default(),
    }
}

impl Document {
    /// The message of a Swagger 2.0 JSON document (gnostic's `ParseDocument`, for the keys orch's
    /// documents use; see the module doc for what is left out).
    pub fn from_json(doc: &Value) -> Document {
        let o = Obj::of(doc);
        Document {
            swagger: o.s("swagger"),
            info: o.get("info").map(|i| {
                let i = Obj::of(i);
                Info {
                    title: i.s("title"),
                    version: i.s("version"),
                    description: i.s("description"),
                    terms_of_service: i.s("termsOfService"),
                    vendor_extension: i.ext(),
                }
            }),
            host: o.s("host"),
            base_path: o.s("basePath"),
            schemes: o.strs("schemes"),
            consumes: o.strs("consumes"),
            produces: o.strs("produces"),
            paths: o.get("paths").map(|p| Paths {
                vendor_extension: Obj::of(p).ext(),
                path: p
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| k.starts_with('/'))
                    .map(|(k, v)| NamedPathItem {
                        name: k.clone(),
                        value: Some(path_item(v)),
                    })
                    .collect(),
            }),
            definitions: o.get("definitions").map(|d| Definitions {
                additional_properties: named_schemas(d),
            }),
            vendor_extension: o.ext(),
        }
    }
}

fn path_item(v: &Value) -> PathItem {
    let o = Obj::of(v);
    let op = |k: &str| o.get(k).map(operation);
    PathItem {
        xref: o.s("$ref"),
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        options: op("options"),
        head: op("head"),
        patch: op("patch"),
        parameters: parameters(o.get("parameters")),
        vendor_extension: o.ext(),
    }
}

fn operation(v: &Value) -> Operation {
    let o = Obj::of(v);
    Operation {
        tags: o.strs("tags"),
        summary: o.s("summary"),
        description: o.s("description"),
        operation_id: o.s("operationId"),
        produces: o.strs("produces"),
        consumes: o.strs("consumes"),
        parameters: parameters(o.get("parameters")),
        responses: o.get("responses").map(|r| Responses {
            response_code: r
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !k.starts_with("x-"))
                .map(|(k, v)| NamedResponseValue {
                    name: k.clone(),
                    value: Some(response(v)),
                })
                .collect(),
            vendor_extension: Obj::of(r).ext(),
        }),
        schemes: o.strs("schemes"),
        deprecated: o.b("deprecated"),
        vendor_extension: o.ext(),
    }
}

fn response(v: &Value) -> ResponseValue {
    let o = Obj::of(v);
    let oneof = if o.get("$ref").is_some() {
        ResponseValueOneof::JsonReference(JsonReference {
            xref: o.s("$ref"),
            description: o.s("description"),
        })
    } else {
        ResponseValueOneof::Response(Box::new(Response {
            description: o.s("description"),
            schema: o.get("schema").map(|s| SchemaItem {
                oneof: Some(SchemaItemOneof::Schema(schema(s))),
            }),
            vendor_extension: o.ext(),
        }))
    };
    ResponseValue { oneof: Some(oneof) }
}

fn parameters(v: Option<&Value>) -> Vec<ParametersItem> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| ParametersItem {
            oneof: Some(parameter(p)),
        })
        .collect()
}

fn parameter(v: &Value) -> ParametersItemOneof {
    let o = Obj::of(v);
    if o.get("$ref").is_some() {
        return ParametersItemOneof::JsonReference(JsonReference {
            xref: o.s("$ref"),
            description: o.s("description"),
        });
    }
    let p = match o.s("in").as_str() {
        "body" => ParameterOneof::BodyParameter(BodyParameter {
            description: o.s("description"),
            name: o.s("name"),
            r#in: o.s("in"),
            required: o.b("required"),
            schema: o.get("schema").map(schema),
            vendor_extension: o.ext(),
        }),
        location => {
            let q = || QueryParameterSubSchema {
                required: o.b("required"),
                r#in: o.s("in"),
                description: o.s("description"),
                name: o.s("name"),
                allow_empty_value: o.b("allowEmptyValue"),
                r#type: o.s("type"),
                format: o.s("format"),
                items: o.get("items").map(primitives_items),
                collection_format: o.s("collectionFormat"),
                default: o.any("default"),
                maximum: o.f("maximum"),
                exclusive_maximum: o.b("exclusiveMaximum"),
                minimum: o.f("minimum"),
                exclusive_minimum: o.b("exclusiveMinimum"),
                max_length: o.i("maxLength"),
                min_length: o.i("minLength"),
                pattern: o.s("pattern"),
                max_items: o.i("maxItems"),
                min_items: o.i("minItems"),
                unique_items: o.b("uniqueItems"),
                r#enum: o.anys("enum"),
                multiple_of: o.f("multipleOf"),
                vendor_extension: o.ext(),
            };
            let p = || PathParameterSubSchema {
                required: o.b("required"),
                r#in: o.s("in"),
                description: o.s("description"),
                name: o.s("name"),
                r#type: o.s("type"),
                format: o.s("format"),
                items: o.get("items").map(primitives_items),
                collection_format: o.s("collectionFormat"),
                default: o.any("default"),
                maximum: o.f("maximum"),
                exclusive_maximum: o.b("exclusiveMaximum"),
                minimum: o.f("minimum"),
                exclusive_minimum: o.b("exclusiveMinimum"),
                max_length: o.i("maxLength"),
                min_length: o.i("minLength"),
                pattern: o.s("pattern"),
                max_items: o.i("maxItems"),
                min_items: o.i("minItems"),
                unique_items: o.b("uniqueItems"),
                r#enum: o.anys("enum"),
                multiple_of: o.f("multipleOf"),
                vendor_extension: o.ext(),
            };
            let sub = match location {
                "header" => NonBodyParameterOneof::Header(p()),
                "formData" => NonBodyParameterOneof::FormData(q()),
                "path" => NonBodyParameterOneof::Path(p()),
                _ => NonBodyParameterOneof::Query(q()),
            };
            ParameterOneof::NonBodyParameter(NonBodyParameter { oneof: Some(sub) })
        }
    };
    ParametersItemOneof::Parameter(Box::new(Parameter { oneof: Some(p) }))
}

fn primitives_items(v: &Value) -> PrimitivesItems {
    let o = Obj::of(v);
    PrimitivesItems {
        r#type: o.s("type"),
        format: o.s("format"),
        items: o.get("items").map(|i| Box::new(primitives_items(i))),
        collection_format: o.s("collectionFormat"),
        default: o.any("default"),
        maximum: o.f("maximum"),
        exclusive_maximum: o.b("exclusiveMaximum"),
        minimum: o.f("minimum"),
        exclusive_minimum: o.b("exclusiveMinimum"),
        max_length: o.i("maxLength"),
        min_length: o.i("minLength"),
        pattern: o.s("pattern"),
        max_items: o.i("maxItems"),
        min_items: o.i("minItems"),
        unique_items: o.b("uniqueItems"),
        r#enum: o.anys("enum"),
        multiple_of: o.f("multipleOf"),
        vendor_extension: o.ext(),
    }
}

fn named_schemas(v: &Value) -> Vec<NamedSchema> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| NamedSchema {
            name: k.clone(),
            value: Some(schema(v)),
        })
        .collect()
}

fn schema(v: &Value) -> Schema {
    let o = Obj::of(v);
    Schema {
        xref: o.s("$ref"),
        format: o.s("format"),
        title: o.s("title"),
        description: o.s("description"),
        default: o.any("default"),
        multiple_of: o.f("multipleOf"),
        maximum: o.f("maximum"),
        exclusive_maximum: o.b("exclusiveMaximum"),
        minimum: o.f("minimum"),
        exclusive_minimum: o.b("exclusiveMinimum"),
        max_length: o.i("maxLength"),
        min_length: o.i("minLength"),
        pattern: o.s("pattern"),
        max_items: o.i("maxItems"),
        min_items: o.i("minItems"),
        unique_items: o.b("uniqueItems"),
        max_properties: o.i("maxProperties"),
        min_properties: o.i("minProperties"),
        required: o.strs("required"),
        r#enum: o.anys("enum"),
        additional_properties: o.get("additionalProperties").map(|a| {
            Box::new(AdditionalPropertiesItem {
                oneof: Some(match a {
                    Value::Bool(b) => AdditionalPropertiesOneof::Boolean(*b),
                    s => AdditionalPropertiesOneof::Schema(Box::new(schema(s))),
                }),
            })
        }),
        r#type: o.get("type").map(|_| TypeItem {
            value: o.strs("type"),
        }),
        items: o.get("items").map(|i| ItemsItem {
            schema: match i {
                Value::Array(a) => a.iter().map(schema).collect(),
                s => vec![schema(s)],
            },
        }),
        all_of: o
            .get("allOf")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(schema).collect())
            .unwrap_or_default(),
        properties: o.get("properties").map(|p| Properties {
            additional_properties: named_schemas(p),
        }),
        discriminator: o.s("discriminator"),
        read_only: o.b("readOnly"),
        example: o.any("example"),
        vendor_extension: o.ext(),
    }
}
