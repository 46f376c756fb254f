//! Structural schemas of CustomResourceDefinitions: the checks a CRD version's
//! `schema.openAPIV3Schema` must pass, and what the API server does with custom objects under
//! it — pruning, defaulting, validation (OpenAPI v3 keywords, list types, embedded resources and
//! `x-kubernetes-validations` CEL rules).
//!
//! Modelled on upstream `staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema/`
//! (`validation.go`, `complete.go`, `pruning/`, `defaulting/`, `objectmeta/`, `listtype/`,
//! `cel/`) and `pkg/apis/apiextensions/validation/validation.go`; each file cites the upstream
//! file its rules come from. Pure and synchronous: no I/O, no clock.
//!
//! ```
//! use orch_types::crd::Structural;
//! use orch_types::validation::Path;
//! let schema = serde_json::from_value(serde_json::json!({
//!     "type": "object",
//!     "properties": {"spec": {"type": "object", "properties": {
//!         "replicas": {"type": "integer", "minimum": 1, "default": 1}}}}
//! })).unwrap();
//! let s = Structural::new(&schema, &Path::new("spec.versions[0].schema.openAPIV3Schema")).unwrap();
//! let mut obj = serde_json::json!({"apiVersion": "x/v1", "kind": "X", "spec": {"foo": 1}});
//! assert_eq!(s.prune(&mut obj), vec!["spec.foo".to_string()]);
//! s.apply_defaults(&mut obj);
//! assert_eq!(obj["spec"]["replicas"], 1);
//! obj["spec"]["replicas"] = serde_json::json!("two");
//! assert_eq!(s.validate(&obj, None)[0].to_string(),
//!     r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#);
//! ```
//!
//! CEL rules run on the [`cel`](https://crates.io/crates/cel) crate: see
//! `docs/design/dependencies.md` for what it does and does not support
//! ([`UNSUPPORTED_KUBERNETES_FUNCTIONS`] are refused at compile time).

mod cel;
mod default;
mod formats;
mod node;
mod prune;
mod structural;
#[cfg(test)]
mod tests;
mod validate;

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

pub use self::cel::{Expression, SUPPORTED_REASONS, UNSUPPORTED_KUBERNETES_FUNCTIONS};
use self::node::Node;
pub use self::prune::OBJECT_META_FIELDS;
use crate::validation::{FieldError, Path};

/// The compiled structural schema of one CRD version (cheap to clone: `Arc` inside).
#[derive(Clone, Debug)]
pub struct Structural {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    props: JSONSchemaProps,
    root: Node,
}

impl Structural {
    /// Checks that `props` (a version's `schema.openAPIV3Schema`) is structural and valid as
    /// upstream does when a CRD is created or updated, and compiles it (CEL rules included).
    /// Errors carry field paths under `path` (e.g. `spec.versions[0].schema.openAPIV3Schema`)
    /// with upstream's messages. CEL compile errors are reported only when the schema is
    /// otherwise valid, as upstream does.
    pub fn new(props: &JSONSchemaProps, path: &Path) -> Result<Structural, Vec<FieldError>> {
        let mut errs = structural::check(props, path);
        let mut compile_errs = Vec::new();
        let root = Node::compile(props, path, &mut compile_errs);
        let (cel_errs, pattern_errs): (Vec<_>, Vec<_>) = compile_errs
            .into_iter()
            .partition(|e| e.path.contains("x-kubernetes-validations"));
        errs.extend(pattern_errs);
        if errs.is_empty() {
            errs.extend(cel_errs);
        }
        if errs.is_empty() {
            structural::defaults(props, &root, path, true, false, &mut errs);
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Structural {
            inner: Arc::new(Inner {
                props: props.clone(),
                root,
            }),
        })
    }

    /// The schema this was compiled from.
    pub fn schema(&self) -> &JSONSchemaProps {
        &self.inner.props
    }

    /// Prunes fields the schema does not specify, keeping unknown fields under
    /// `x-kubernetes-preserve-unknown-fields`, `apiVersion`/`kind`/`metadata` at the root and in
    /// `x-kubernetes-embedded-resource` objects, and pruning such `metadata` to ObjectMeta's
    /// fields. Returns the pruned paths, sorted, as upstream's warnings name them (`spec.foo`, so the
    /// API server can say `unknown field "spec.foo"`).
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        prune::prune(obj, Some(&self.inner.root), true, "", &mut pruned);
        pruned.sort();
        pruned
    }

    /// Applies `default`s top-down (upstream defaulting algorithm): a missing field, or a
    /// `null` in a non-nullable field, with a default gets a copy of it, then defaulting goes
    /// on inside. Defaults were checked to be pruned when the schema was compiled.
    pub fn apply_defaults(&self, obj: &mut Value) {
        default::apply(obj, &self.inner.root);
    }

    /// Validates an object (already pruned and defaulted) against the schema: OpenAPI v3
    /// keywords, `x-kubernetes-list-type` set/map uniqueness, embedded resources and
    /// `x-kubernetes-validations` rules; with `old` (an update) transition rules using
    /// `oldSelf` run too, on values correlated by field name and list-map keys. The `metadata`
    /// of the root object is left to the API server.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let root = &self.inner.root;
        let mut errs = validate::Errors::default();
        validate::validate(root, obj, old, &Path::default(), &mut errs);
        errs.into_vec()
    }

    /// The sub-schema at a dotted JSON path (`.spec.replicas`; `[*]` or `[]` steps into
    /// array items), as used by `/scale` and printer columns; `None` if the schema does not
    /// define it.
    pub fn at_path(&self, json_path: &str) -> Option<&JSONSchemaProps> {
        let mut s = &self.inner.props;
        let path = json_path.trim().trim_start_matches('.');
        if path.is_empty() {
            return Some(s);
        }
        for raw in path.split('.') {
            let (field, mut rest) = match raw.find('[') {
                Some(i) => (&raw[..i], &raw[i..]),
                None => (raw, ""),
            };
            if !field.is_empty() {
                s = match s.properties.as_ref().and_then(|m| m.get(field)) {
                    Some(x) => x,
                    None => match &s.additional_properties {
                        Some(JSONSchemaPropsOrBool::Schema(a)) => a,
                        _ => return None,
                    },
                };
            }
            while let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']')?;
                s = match &s.items {
                    Some(JSONSchemaPropsOrArray::Schema(i)) => i,
                    _ => return None,
                };
                rest = &r[end + 1..];
            }
        }
        Some(s)
    }
}

/// The root fields upstream allows in a version's schema when the `status` subresource is on
/// (`allowedFieldsAtRootSchema`), by their JSON names.
const ALLOWED_AT_ROOT_WITH_STATUS: &[&str] = &[
    "description",
    "type",
    "format",
    "title",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "required",
    "items",
    "properties",
    "externalDocs",
    "example",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
];

/// The schema rules of a CRD: [`Structural::new`] over every version's schema (paths
/// `spec.versions[i].schema.openAPIV3Schema`), plus the root restriction when the version has
/// the `status` subresource. A version without a schema is left to the CRD's own validation
/// (`schemas are required`).
pub fn validate_crd_schemas(crd: &CustomResourceDefinition) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, v) in crd.spec.versions.iter().enumerate() {
        let Some(props) = v
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
        else {
            continue;
        };
        let sp = Path::new("spec").child("versions").index(i).child("schema");
        let status = v.subresources.as_ref().is_some_and(|s| s.status.is_some());
        if status {
            errs.extend(status_root(props, &sp));
        }
        if let Err(e) = Structural::new(props, &sp.child("openAPIV3Schema")) {
            errs.extend(e);
        }
    }
    errs
}

/// Upstream: with the status subresource, the root schema may only use the fields of
/// [`ALLOWED_AT_ROOT_WITH_STATUS`] and be of type `object`.
fn status_root(props: &JSONSchemaProps, sp: &Path) -> Vec<FieldError> {
    let Ok(Value::Object(fields)) = serde_json::to_value(props) else {
        return Vec::new();
    };
    if let Some(t) = props.type_.as_deref().filter(|t| *t != "object") {
        return vec![FieldError::invalid(
            format!("{sp}.openAPIV3Schema.type"),
            t,
            "only \"object\" is allowed as the type at the root of the schema if the status subresource is enabled",
        )];
    }
    if fields
        .keys()
        .any(|k| !ALLOWED_AT_ROOT_WITH_STATUS.contains(&k.as_str()))
    {
        let shown = serde_json::to_string(props).unwrap_or_default();
        return vec![FieldError::invalid_raw(
            sp.child("openAPIV3Schema"),
            shown,
            format!(
                "only [{}] fields are allowed at the root of the schema if the status subresource is enabled",
                ALLOWED_AT_ROOT_WITH_STATUS.join(" ")
            ),
        )];
    }
    Vec::new()
}
