//! Label and field selectors of list, watch and deletecollection requests.
//!
//! Parsing and matching are `orch_types::labels::Selector` and `orch_types::fields::FieldSelector`
//! (kubectl syntax, per-kind supported fields as upstream); this module adapts them to stored
//! objects and maps their errors to 400 Bad Request.

use super::{Resource, RestResult};
use crate::storage::Encoded;
use orch_types::fields::{FieldSelector, GENERIC_FIELDS};
use orch_types::labels::Selector;
use orch_types::{ApiError, DynamicObject};

/// A compiled label + field selector.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    labels: Option<Selector>,
    fields: Option<FieldSelector>,
    /// Every field term is `metadata.name`/`metadata.namespace` (no JSON needed to match).
    fields_generic: bool,
}

impl Filter {
    /// Compiles the selectors of a request; 400 on a syntax error or an unsupported field.
    pub fn new(info: Resource, labels: Option<&str>, fields: Option<&str>) -> RestResult<Self> {
        let labels = match labels.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(s.parse::<Selector>().map_err(|e| {
                ApiError::bad_request(format!("unable to parse requirement: {}", e.message))
            })?),
        };
        let fields = match fields.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                let f = s
                    .parse::<FieldSelector>()
                    .and_then(|f| match crate::crd::extras(info) {
                        Some(custom) => f.with_fields(&custom.selectable_fields),
                        None => f.for_kind(info.group, info.kind),
                    })
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                (!f.is_empty()).then_some(f)
            }
        };
        let fields_generic = fields.as_ref().is_none_or(|f| {
            f.terms()
                .iter()
                .all(|t| GENERIC_FIELDS.contains(&t.field.as_str()))
        });
        Ok(Self {
            labels: labels.filter(|l| !l.is_everything()),
            fields,
            fields_generic,
        })
    }

    /// True when there is nothing to filter.
    pub fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    /// Whether `obj` passes both selectors.
    pub fn matches(&self, obj: &DynamicObject) -> bool {
        if let Some(l) = &self.labels {
            if !l.matches_opt(obj.metadata.labels.as_ref()) {
                return false;
            }
        }
        let Some(f) = &self.fields else { return true };
        if self.fields_generic {
            let meta = serde_json::json!({
                "metadata": {"name": obj.name(), "namespace": obj.namespace().unwrap_or("")}
            });
            f.matches(&meta)
        } else {
            f.matches(&obj.to_value())
        }
    }

    /// Whether a stored object passes both selectors, read from its encoding without decoding
    /// more than they need: the metadata for labels and `metadata.name`/`namespace` fields, the
    /// JSON value for other fields (what [`Filter::matches`] reads off the tree).
    pub fn matches_encoded(&self, e: &Encoded) -> Result<bool, serde_json::Error> {
        if self.is_empty() {
            return Ok(true);
        }
        if self.labels.is_some() || self.fields_generic {
            let m = e.decode_meta()?;
            if let Some(l) = &self.labels {
                if !l.matches_opt(m.labels.as_ref()) {
                    return Ok(false);
                }
            }
            if self.fields_generic {
                let Some(f) = &self.fields else {
                    return Ok(true);
                };
                let meta = serde_json::json!({
                    "metadata": {
                        "name": m.name.unwrap_or_default(),
                        "namespace": m.namespace.unwrap_or_default(),
                    }
                });
                return Ok(f.matches(&meta));
            }
        }
        match &self.fields {
            None => Ok(true),
            Some(f) => Ok(f.matches(&e.decode_as::<serde_json::Value>()?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_matching_agrees_with_the_tree() {
        let info = orch_types::registry::by_kind("v1", "Pod").unwrap();
        let pods: Vec<DynamicObject> = [
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"x","labels":{"app":"web","tier":"1"}},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b","namespace":"y","labels":{"app":"db"}},"spec":{},"status":{"phase":"Pending"}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"c"},"spec":{"nodeName":"n2"}}"#,
        ]
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
        let selectors = [
            (None, None),
            (Some("app=web"), None),
            (Some("app!=web"), None),
            (Some("tier"), None),
            (None, Some("metadata.name=b")),
            (None, Some("metadata.namespace=x")),
            (None, Some("metadata.namespace=")),
            (None, Some("spec.nodeName=n1")),
            (None, Some("spec.nodeName=")),
            (None, Some("status.phase!=Running")),
            (Some("app"), Some("spec.nodeName!=n2,metadata.name=a")),
        ];
        for (labels, fields) in selectors {
            let f = Filter::new(info, labels, fields).unwrap();
            for p in &pods {
                let e = Encoded::encode(p).unwrap();
                assert_eq!(
                    f.matches_encoded(&e).unwrap(),
                    f.matches(p),
                    "{labels:?} {fields:?} on {}",
                    p.name()
                );
            }
        }
    }
}
