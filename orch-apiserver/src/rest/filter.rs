//! Label and field selectors of list, watch and deletecollection requests.
//!
//! Seam: parsing and matching belong to `orch_types::labels::Selector` and
//! `orch_types::fields::FieldSelector`; this module adapts them to stored objects and maps their
//! parse errors to 400 Bad Request.

use super::{Resource, RestResult};
use orch_types::{ApiError, DynamicObject};

/// A compiled label + field selector.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    labels: Vec<LabelReq>,
    fields: Vec<(String, bool, String)>,
}

#[derive(Debug, Clone)]
enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn parse_label(part: &str) -> Result<LabelReq, String> {
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let inner = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("expected a parenthesized set in {part:?}"))?;
        Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
    };
    let bad_key = |k: &str| format!("invalid label key {k:?}");
    if let Some(k) = part.strip_prefix('!') {
        let k = k.trim();
        return if valid_key(k) {
            Ok(LabelReq::NotExists(k.into()))
        } else {
            Err(bad_key(k))
        };
    }
    for (op, neg) in [(" notin ", true), (" in ", false)] {
        if let Some((k, rest)) = part.split_once(op) {
            let k = k.trim();
            if !valid_key(k) {
                return Err(bad_key(k));
            }
            let vals = set(rest)?;
            return Ok(if neg {
                LabelReq::NotIn(k.into(), vals)
            } else {
                LabelReq::In(k.into(), vals)
            });
        }
    }
    for (op, neg) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = part.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            if !valid_key(k) {
                return Err(bad_key(k));
            }
            if v.contains(['=', '!', '(', ')', ' ']) {
                return Err(format!("invalid label value {v:?}"));
            }
            return Ok(if neg {
                LabelReq::Ne(k.into(), v.into())
            } else {
                LabelReq::Eq(k.into(), v.into())
            });
        }
    }
    if valid_key(part) {
        Ok(LabelReq::Exists(part.into()))
    } else {
        Err(format!("unable to parse requirement: {part:?}"))
    }
}

/// The value of a dotted field path, as a string (`metadata.name`, `spec.nodeName`, `status.phase`).
fn field_value(obj: &DynamicObject, path: &str) -> String {
    match path {
        "metadata.name" => return obj.name().to_string(),
        "metadata.namespace" => return obj.namespace().unwrap_or("").to_string(),
        _ => {}
    }
    let mut parts = path.split('.');
    let Some(first) = parts.next() else {
        return String::new();
    };
    let mut cur = obj.data.get(first);
    for p in parts {
        cur = cur.and_then(|v| v.get(p));
    }
    match cur {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

impl Filter {
    /// Compiles the selectors of a request; 400 on a syntax error.
    pub fn new(info: Resource, labels: Option<&str>, fields: Option<&str>) -> RestResult<Self> {
        let _ = info;
        let mut f = Filter::default();
        for part in split_top(labels.unwrap_or("")) {
            f.labels.push(
                parse_label(part).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?,
            );
        }
        for part in split_top(fields.unwrap_or("")) {
            let (k, neg, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, false, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: {part:?}: expected KEY=VALUE or KEY!=VALUE"
                )));
            };
            f.fields
                .push((k.trim().to_string(), neg, v.trim().to_string()));
        }
        Ok(f)
    }

    /// True when there is nothing to filter.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether `obj` passes both selectors.
    pub fn matches(&self, obj: &DynamicObject) -> bool {
        let empty = Default::default();
        let labels = obj.metadata.labels.as_ref().unwrap_or(&empty);
        let label_ok = self.labels.iter().all(|r| match r {
            LabelReq::Eq(k, v) => labels.get(k) == Some(v),
            LabelReq::Ne(k, v) => labels.get(k) != Some(v),
            LabelReq::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
            LabelReq::NotIn(k, vs) => labels.get(k).is_none_or(|x| !vs.contains(x)),
            LabelReq::Exists(k) => labels.contains_key(k),
            LabelReq::NotExists(k) => !labels.contains_key(k),
        });
        label_ok
            && self
                .fields
                .iter()
                .all(|(k, neg, v)| (field_value(obj, k) == *v) != *neg)
    }
}
