//! The compiled form of a structural schema: one [`Node`] per schema, with the value-validation
//! keywords, the compiled `pattern` and the compiled CEL rules ready for use.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use super::cel::Rule;
use crate::validation::{FieldError, Path};

/// What `additionalProperties` allows for keys not in `properties`.
#[derive(Debug)]
pub(crate) enum Additional {
    /// `additionalProperties: true` (any value) or `false` (none).
    Allow(bool),
    /// `additionalProperties: {schema}`: a map whose values follow the schema.
    Schema(Box<Node>),
}

/// One compiled schema. The structural part (`type`, `properties`, `items`,
/// `additionalProperties`, extensions) drives pruning and defaulting; `all_of`, `any_of`,
/// `one_of` and `not` are value validation only (upstream `ValueValidation`).
#[derive(Debug, Default)]
pub(crate) struct Node {
    pub ty: Option<String>,
    pub format: Option<String>,
    pub nullable: bool,
    pub preserve_unknown: bool,
    pub embedded: bool,
    pub int_or_string: bool,
    pub properties: BTreeMap<String, Node>,
    pub additional: Option<Additional>,
    pub items: Option<Box<Node>>,
    pub default: Option<Value>,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub map_type: Option<String>,
    pub enum_: Option<Vec<Value>>,
    pub pattern: Option<(String, regex::Regex)>,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub multiple_of: Option<f64>,
    pub max_length: Option<i64>,
    pub min_length: Option<i64>,
    pub max_items: Option<i64>,
    pub min_items: Option<i64>,
    pub unique_items: bool,
    pub max_properties: Option<i64>,
    pub min_properties: Option<i64>,
    pub required: Vec<String>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    pub rules: Vec<Rule>,
}

impl Node {
    /// Compiles `p` (at schema path `path`); a `pattern` that is no regular expression or a CEL
    /// rule that does not compile is reported in `errs` and left out of the node.
    pub(crate) fn compile(p: &JSONSchemaProps, path: &Path, errs: &mut Vec<FieldError>) -> Node {
        let pattern = p.pattern.as_ref().and_then(|pat| {
            // Go's regexp and the `regex` crate share RE2's syntax (no look-around, no
            // back-references); upstream `validateValueValidation` compiles it the same way.
            match regex::Regex::new(pat) {
                Ok(re) => Some((pat.clone(), re)),
                Err(e) => {
                    errs.push(FieldError::invalid(
                        path.child("pattern"),
                        pat,
                        format!("must be a valid regular expression, but isn't: {e}"),
                    ));
                    None
                }
            }
        });
        let properties = p
            .properties
            .iter()
            .flatten()
            .map(|(k, v)| {
                let sub = Node::compile(v, &path.child("properties").key(k), errs);
                (k.clone(), sub)
            })
            .collect();
        let additional = p.additional_properties.as_ref().map(|a| match a {
            JSONSchemaPropsOrBool::Bool(b) => Additional::Allow(*b),
            JSONSchemaPropsOrBool::Schema(s) => Additional::Schema(Box::new(Node::compile(
                s,
                &path.child("additionalProperties"),
                errs,
            ))),
        });
        let items = match &p.items {
            Some(JSONSchemaPropsOrArray::Schema(s)) => {
                Some(Box::new(Node::compile(s, &path.child("items"), errs)))
            }
            // Tuple items are rejected by the structural checks; nothing to compile.
            Some(JSONSchemaPropsOrArray::Schemas(_)) | None => None,
        };
        let list = |v: &Option<Vec<JSONSchemaProps>>, name: &str, errs: &mut Vec<FieldError>| {
            v.iter()
                .flatten()
                .enumerate()
                .map(|(i, s)| Node::compile(s, &path.child(name).index(i), errs))
                .collect::<Vec<_>>()
        };
        let all_of = list(&p.all_of, "allOf", errs);
        let any_of = list(&p.any_of, "anyOf", errs);
        let one_of = list(&p.one_of, "oneOf", errs);
        let not = p
            .not
            .as_ref()
            .map(|n| Box::new(Node::compile(n, &path.child("not"), errs)));
        let mut node = Node {
            ty: p.type_.clone().filter(|t| !t.is_empty()),
            format: p.format.clone().filter(|f| !f.is_empty()),
            nullable: p.nullable.unwrap_or(false),
            preserve_unknown: p.x_kubernetes_preserve_unknown_fields.unwrap_or(false),
            embedded: p.x_kubernetes_embedded_resource.unwrap_or(false),
            int_or_string: p.x_kubernetes_int_or_string.unwrap_or(false),
            properties,
            additional,
            items,
            default: p.default.as_ref().map(|d| d.0.clone()),
            list_type: p.x_kubernetes_list_type.clone(),
            list_map_keys: p.x_kubernetes_list_map_keys.clone().unwrap_or_default(),
            map_type: p.x_kubernetes_map_type.clone(),
            enum_: p
                .enum_
                .as_ref()
                .map(|e| e.iter().map(|j| j.0.clone()).collect()),
            pattern,
            maximum: p.maximum,
            exclusive_maximum: p.exclusive_maximum.unwrap_or(false),
            minimum: p.minimum,
            exclusive_minimum: p.exclusive_minimum.unwrap_or(false),
            multiple_of: p.multiple_of,
            max_length: p.max_length,
            min_length: p.min_length,
            max_items: p.max_items,
            min_items: p.min_items,
            unique_items: p.unique_items.unwrap_or(false),
            max_properties: p.max_properties,
            min_properties: p.min_properties,
            required: p.required.clone().unwrap_or_default(),
            all_of,
            any_of,
            one_of,
            not,
            rules: Vec::new(),
        };
        let vp = path.child("x-kubernetes-validations");
        for (i, r) in p.x_kubernetes_validations.iter().flatten().enumerate() {
            match Rule::compile(r) {
                Ok(rule) => node.rules.push(rule),
                Err(msg) => errs.push(FieldError::invalid_raw(
                    vp.index(i).child("rule"),
                    serde_json::to_string(r).unwrap_or_default(),
                    msg,
                )),
            }
        }
        node
    }

    /// The schema of the value under object key `key`: its property, else the
    /// `additionalProperties` schema.
    pub(crate) fn field(&self, key: &str) -> Option<&Node> {
        self.properties.get(key).or(match &self.additional {
            Some(Additional::Schema(s)) => Some(s),
            _ => None,
        })
    }

    /// Whether an object value under this schema keeps keys no schema names.
    pub(crate) fn keeps_unknown(&self) -> bool {
        self.preserve_unknown || matches!(self.additional, Some(Additional::Allow(true)))
    }

    /// The type name CEL errors show as the value (`"object"`, `"string"`, …).
    pub(crate) fn type_name(&self) -> &str {
        match &self.ty {
            Some(t) => t,
            None if self.int_or_string => "integer-or-string",
            None => "any",
        }
    }
}
