//! Validation of a custom object against its compiled schema: the OpenAPI v3 keywords (upstream
//! kube-openapi `validate`, messages from `errors/schema.go`, turned into field errors as
//! `apiserver/validation/validation.go` does), list types (`schema/listtype`), embedded resources
//! (`schema/objectmeta`) and CEL rules (`schema/cel/validation.go`).

use serde_json::Value;

use super::cel::Outcome;
use super::formats;
use super::node::{Additional, Node};
use crate::names;
use crate::validation::{FieldError, FieldErrorKind, Path};

/// Errors in upstream's order: schema keywords, list types, embedded metadata, CEL.
#[derive(Default)]
pub(crate) struct Errors {
    pub schema: Vec<FieldError>,
    pub lists: Vec<FieldError>,
    pub meta: Vec<FieldError>,
    pub cel: Vec<FieldError>,
}

impl Errors {
    pub(crate) fn into_vec(self) -> Vec<FieldError> {
        let mut v = self.schema;
        v.extend(self.lists);
        v.extend(self.meta);
        v.extend(self.cel);
        v
    }
}

/// How a value prints in a field error (Go `%q` for strings, bare numbers, JSON otherwise).
pub(crate) fn render(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// kube-openapi's error name: the path, `"<root>"`-less as upstream prints the top level.
fn name(path: &Path) -> &str {
    path.as_str()
}

fn invalid(path: &Path, value: String, msg: String) -> FieldError {
    FieldError {
        path: path.to_string(),
        kind: FieldErrorKind::Invalid,
        message: msg,
        value: Some(value),
    }
}

/// Validates `v` against `node` at `path`; `old` is the correlated old value (update only).
pub(crate) fn validate(
    node: &Node,
    v: &Value,
    old: Option<&Value>,
    path: &Path,
    errs: &mut Errors,
) {
    keywords(node, v, path, &mut errs.schema);
    if !v.is_null() {
        list_type(node, v, path, &mut errs.lists);
        if node.embedded {
            embedded(v, path, &mut errs.meta);
        }
        rules(node, v, old, path, &mut errs.cel);
    }
    // Recurse along the structural schema.
    match v {
        Value::Object(o) => {
            let correlatable = node.map_type.as_deref() != Some("atomic");
            for (k, x) in o {
                let Some(sub) = node.field(k) else { continue };
                let old_x = old.filter(|_| correlatable).and_then(|o| o.get(k));
                validate(sub, x, old_x, &path.child(k), errs);
            }
        }
        Value::Array(a) => {
            if let Some(items) = &node.items {
                for (i, x) in a.iter().enumerate() {
                    let old_x = old.and_then(|o| correlate_item(node, x, o));
                    validate(items, x, old_x, &path.index(i), errs);
                }
            }
        }
        _ => {}
    }
}

/// The old item a new list item stands for: only `x-kubernetes-list-type: map` lists
/// correlate, by their keys (upstream `cel.MapIsCorrelatable` / `listtype` correlation).
fn correlate_item<'a>(node: &Node, item: &Value, old: &'a Value) -> Option<&'a Value> {
    if node.list_type.as_deref() != Some("map") || node.list_map_keys.is_empty() {
        return None;
    }
    let key = |v: &Value| -> Option<Vec<Value>> {
        node.list_map_keys
            .iter()
            .map(|k| v.get(k).cloned())
            .collect()
    };
    let want = key(item)?;
    old.as_array()?
        .iter()
        .find(|o| key(o).is_some_and(|k| k.iter().zip(&want).all(|(a, b)| json_eq(a, b))))
}

/// The OpenAPI keywords of `node` (and of its `allOf`/`anyOf`/`oneOf`/`not`) on `v`.
fn keywords(node: &Node, v: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let n = name(path);
    if v.is_null() {
        if node.nullable || (node.ty.is_none() && !node.int_or_string) {
            return;
        }
        let expected = node.ty.as_deref().unwrap_or("integer,string");
        errs.push(invalid(
            path,
            "\"null\"".into(),
            format!("{n} in body must be of type {expected}: \"null\""),
        ));
        return;
    }
    let actual = json_type(v);
    let type_ok = if node.int_or_string {
        matches!(actual, "integer" | "string")
    } else {
        match node.ty.as_deref() {
            None => true,
            Some("number") => matches!(actual, "integer" | "number"),
            Some(t) => t == actual,
        }
    };
    if !type_ok {
        let expected = if node.int_or_string {
            "integer,string"
        } else {
            node.ty.as_deref().unwrap_or_default()
        };
        errs.push(invalid(
            path,
            format!("{actual:?}"),
            format!("{n} in body must be of type {expected}: {actual:?}"),
        ));
        return;
    }
    if let Some(allowed) = &node.enum_ {
        if !allowed.iter().any(|a| json_eq(a, v)) {
            let list: Vec<String> = allowed
                .iter()
                .map(|a| match a {
                    Value::String(s) => format!("{s:?}"),
                    other => format!("{:?}", other.to_string()),
                })
                .collect();
            errs.push(FieldError {
                path: path.to_string(),
                kind: FieldErrorKind::NotSupported,
                message: format!("supported values: {}", list.join(", ")),
                value: Some(render(v)),
            });
        }
    }
    match v {
        Value::String(s) => string_keywords(node, s, path, errs),
        Value::Number(num) => number_keywords(node, num, path, errs),
        Value::Array(a) => array_keywords(node, a, path, errs),
        Value::Object(o) => {
            let count = o.len() as i64;
            if let Some(max) = node.max_properties.filter(|m| count > *m) {
                errs.push(FieldError::too_many(
                    path.clone(),
                    count as usize,
                    max.max(0) as usize,
                ));
            }
            if let Some(min) = node.min_properties.filter(|m| count < *m) {
                errs.push(invalid(
                    path,
                    count.to_string(),
                    format!("{n} in body should have at least {min} properties"),
                ));
            }
            for r in &node.required {
                if !o.contains_key(r) {
                    errs.push(FieldError::required(path.child(r), ""));
                }
            }
            if matches!(node.additional, Some(Additional::Allow(false)))
                && node.properties.is_empty()
            {
                for k in o.keys() {
                    errs.push(invalid(
                        &path.child(k),
                        format!("{k:?}"),
                        format!("{n}.{k} in body is a forbidden property"),
                    ));
                }
            }
        }
        _ => {}
    }
    combinators(node, v, path, errs);
}

fn string_keywords(node: &Node, s: &str, path: &Path, errs: &mut Vec<FieldError>) {
    let n = name(path);
    let len = s.chars().count() as i64;
    if let Some(max) = node.max_length.filter(|m| len > *m) {
        errs.push(FieldError::too_long(path.clone(), max.max(0) as usize));
    }
    if let Some(min) = node.min_length.filter(|m| len < *m) {
        errs.push(invalid(
            path,
            format!("{s:?}"),
            format!("{n} in body should be at least {min} chars long"),
        ));
    }
    if let Some((src, re)) = &node.pattern {
        if !re.is_match(s) {
            errs.push(invalid(
                path,
                format!("{s:?}"),
                format!("{n} in body should match '{src}'"),
            ));
        }
    }
    if let Some(f) = &node.format {
        if formats::check(f, s) == Some(false) {
            errs.push(invalid(
                path,
                format!("{s:?}"),
                format!("{n} in body must be of type {f}: {s:?}"),
            ));
        }
    }
}

fn number_keywords(node: &Node, num: &serde_json::Number, path: &Path, errs: &mut Vec<FieldError>) {
    let n = name(path);
    let Some(x) = num.as_f64() else { return };
    let shown = num.to_string();
    if let Some(max) = node.maximum {
        if (node.exclusive_maximum && x >= max) || x > max {
            let m = if node.exclusive_maximum {
                format!("{n} in body should be less than {max}")
            } else {
                format!("{n} in body should be less than or equal to {max}")
            };
            errs.push(invalid(path, shown.clone(), m));
        }
    }
    if let Some(min) = node.minimum {
        if (node.exclusive_minimum && x <= min) || x < min {
            let m = if node.exclusive_minimum {
                format!("{n} in body should be greater than {min}")
            } else {
                format!("{n} in body should be greater than or equal to {min}")
            };
            errs.push(invalid(path, shown.clone(), m));
        }
    }
    if let Some(m) = node.multiple_of.filter(|m| *m > 0.0) {
        let q = x / m;
        if (q - q.round()).abs() > 1e-9 * q.abs().max(1.0) {
            errs.push(invalid(
                path,
                shown,
                format!("{n} in body should be a multiple of {m}"),
            ));
        }
    }
}

fn array_keywords(node: &Node, a: &[Value], path: &Path, errs: &mut Vec<FieldError>) {
    let n = name(path);
    let len = a.len() as i64;
    if let Some(max) = node.max_items.filter(|m| len > *m) {
        errs.push(FieldError::too_many(
            path.clone(),
            a.len(),
            max.max(0) as usize,
        ));
    }
    if let Some(min) = node.min_items.filter(|m| len < *m) {
        errs.push(invalid(
            path,
            len.to_string(),
            format!("{n} in body should have at least {min} items"),
        ));
    }
    if node.unique_items && has_duplicates(a) {
        errs.push(invalid(
            path,
            "\"\"".into(),
            format!("{n} in body shouldn't contain duplicates"),
        ));
    }
}

fn has_duplicates(a: &[Value]) -> bool {
    a.iter()
        .enumerate()
        .any(|(i, x)| a[..i].iter().any(|y| json_eq(x, y)))
}

/// `allOf`, `anyOf`, `oneOf`, `not` (kube-openapi `schema_props.go`). A failing branch of
/// `allOf` reports its own errors; the others report one error at the value's path.
fn combinators(node: &Node, v: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let n = name(path);
    let branch_errors = |b: &Node| {
        let mut e = Errors::default();
        validate_branch(b, v, path, &mut e);
        e.schema
    };
    for b in &node.all_of {
        errs.extend(branch_errors(b));
    }
    if !node.any_of.is_empty() && !node.any_of.iter().any(|b| branch_errors(b).is_empty()) {
        errs.push(invalid(
            path,
            "\"\"".into(),
            format!("{n:?} must validate at least one schema (anyOf)"),
        ));
    }
    if !node.one_of.is_empty() {
        let valid = node
            .one_of
            .iter()
            .filter(|b| branch_errors(b).is_empty())
            .count();
        if valid != 1 {
            let detail = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            errs.push(invalid(
                path,
                "\"\"".into(),
                format!("{n:?} must validate one and only one schema (oneOf). {detail}"),
            ));
        }
    }
    if let Some(not) = &node.not {
        if branch_errors(not).is_empty() {
            errs.push(invalid(
                path,
                "\"\"".into(),
                format!("{n:?} must not validate the schema (not)"),
            ));
        }
    }
}

/// A value-validation branch: its keywords, and those of its `properties`/`items` below.
fn validate_branch(node: &Node, v: &Value, path: &Path, errs: &mut Errors) {
    keywords(node, v, path, &mut errs.schema);
    match v {
        Value::Object(o) => {
            for (k, sub) in &node.properties {
                if let Some(x) = o.get(k) {
                    validate_branch(sub, x, &path.child(k), errs);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = &node.items {
                for (i, x) in a.iter().enumerate() {
                    validate_branch(items, x, &path.index(i), errs);
                }
            }
        }
        _ => {}
    }
}

/// `x-kubernetes-list-type: set|map` uniqueness (upstream `listtype/validation.go`).
fn list_type(node: &Node, v: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Value::Array(a) = v else { return };
    match node.list_type.as_deref() {
        Some("set") => {
            for (i, x) in a.iter().enumerate() {
                if a[..i].iter().any(|y| json_eq(x, y)) {
                    errs.push(FieldError {
                        path: path.index(i).to_string(),
                        kind: FieldErrorKind::Duplicate,
                        message: String::new(),
                        value: Some(render(x)),
                    });
                }
            }
        }
        Some("map") => {
            let keys = |x: &Value| -> serde_json::Map<String, Value> {
                node.list_map_keys
                    .iter()
                    .filter_map(|k| {
                        let val = x.get(k).cloned().or_else(|| {
                            node.items
                                .as_ref()
                                .and_then(|it| it.properties.get(k))
                                .and_then(|p| p.default.clone())
                        })?;
                        Some((k.clone(), val))
                    })
                    .collect()
            };
            let all: Vec<_> = a.iter().map(keys).collect();
            for (i, k) in all.iter().enumerate() {
                let kv = Value::Object(k.clone());
                if all[..i]
                    .iter()
                    .any(|o| json_eq(&Value::Object(o.clone()), &kv))
                {
                    errs.push(FieldError {
                        path: path.index(i).to_string(),
                        kind: FieldErrorKind::Duplicate,
                        message: String::new(),
                        value: Some(kv.to_string()),
                    });
                }
            }
        }
        _ => {}
    }
}

/// An embedded resource: `apiVersion` and `kind` set, `metadata` a valid ObjectMeta
/// (upstream `objectmeta.Validate` with `isResourceRoot`).
fn embedded(v: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Value::Object(o) = v else { return };
    for f in ["apiVersion", "kind"] {
        match o.get(f) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) | None => {
                errs.push(FieldError::required(path.child(f), "must not be empty"))
            }
            Some(other) => errs.push(invalid(
                &path.child(f),
                render(other),
                "must be a string".into(),
            )),
        }
    }
    let Some(meta) = o.get("metadata") else {
        return;
    };
    let mp = path.child("metadata");
    let Value::Object(m) = meta else {
        errs.push(invalid(&mp, render(meta), "must be an object".into()));
        return;
    };
    if let Some(Value::String(name)) = m.get("name") {
        for msg in names::is_dns1123_subdomain(name) {
            errs.push(FieldError::invalid(mp.child("name"), name, msg));
        }
    }
    if let Some(Value::Object(labels)) = m.get("labels") {
        let lp = mp.child("labels");
        for (k, val) in labels {
            for msg in names::is_qualified_name(k) {
                errs.push(FieldError::invalid(lp.clone(), k, msg));
            }
            match val {
                Value::String(s) => {
                    for msg in names::is_valid_label_value(s) {
                        errs.push(FieldError::invalid(lp.key(k), s, msg));
                    }
                }
                other => errs.push(invalid(
                    &lp.key(k),
                    render(other),
                    "must be a string".into(),
                )),
            }
        }
    }
    if let Some(Value::Object(ann)) = m.get("annotations") {
        let ap = mp.child("annotations");
        for k in ann.keys() {
            for msg in names::is_qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid(ap.clone(), k, msg));
            }
        }
    }
}

/// The CEL rules of `node` on `v` (upstream `cel/validation.go`).
fn rules(node: &Node, v: &Value, old: Option<&Value>, path: &Path, errs: &mut Vec<FieldError>) {
    for rule in &node.rules {
        let (kind_path, detail, failed) = match rule.evaluate(node, v, old) {
            Outcome::Pass | Outcome::Skipped => continue,
            Outcome::Fail(msg) => {
                let p = match &rule.field_path {
                    Some(fp) => append_field_path(path, fp),
                    None => path.clone(),
                };
                (p, msg, true)
            }
            Outcome::Error(msg) => (path.clone(), msg, false),
        };
        let ty = format!("{:?}", node.type_name());
        let e = if !failed {
            invalid(&kind_path, ty, detail)
        } else {
            match rule.reason.as_deref() {
                Some("FieldValueForbidden") => FieldError::forbidden(kind_path, detail),
                Some("FieldValueRequired") => FieldError::required(kind_path, detail),
                Some("FieldValueDuplicate") => FieldError {
                    path: kind_path.to_string(),
                    kind: FieldErrorKind::Duplicate,
                    message: detail,
                    value: Some(ty),
                },
                _ => invalid(&kind_path, ty, detail),
            }
        };
        errs.push(e);
    }
}

/// `path` extended by a rule's `fieldPath` (`.spec.a`, `.m['key']`, `.list[2]`).
pub(crate) fn append_field_path(path: &Path, fp: &str) -> Path {
    let mut p = path.clone();
    for seg in parse_field_path(fp).unwrap_or_default() {
        p = match seg {
            Seg::Field(f) => p.child(&f),
            Seg::Key(k) => p.key(&k),
            Seg::Index(i) => p.index(i),
        };
    }
    p
}

/// One step of a rule's `fieldPath`.
pub(crate) enum Seg {
    Field(String),
    Key(String),
    Index(usize),
}

/// Parses a `fieldPath` (upstream `cel.ValidFieldPath` syntax); `None` if malformed.
pub(crate) fn parse_field_path(fp: &str) -> Option<Vec<Seg>> {
    let mut out = Vec::new();
    let mut rest = fp.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            out.push(Seg::Field(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            if let Some(q) = r.strip_prefix('\'') {
                let end = q.find("']")?;
                out.push(Seg::Key(q[..end].to_string()));
                rest = &q[end + 2..];
            } else {
                let end = r.find(']')?;
                out.push(Seg::Index(r[..end].parse().ok()?));
                rest = &r[end + 1..];
            }
        } else {
            return None;
        }
    }
    Some(out)
}
