//! Server-side tables of custom resources: `additionalPrinterColumns` (upstream
//! `apiextensions-apiserver/pkg/registry/customresource/tableconvertor/tableconvertor.go`).
//!
//! The first column is always the name; then the version's printer columns, or — when it
//! declares none — `Age` from `metadata.creationTimestamp`. A cell is the first value the
//! column's JSONPath finds (`null` when none: kubectl prints `<none>`); a `date` column shows
//! the time since the value as kubectl ages do. JSONPath is Kubernetes' dialect (`.spec.x`,
//! `.items[0]`, `.status.conditions[?(@.type=="Ready")].status`, `\.` inside a key), evaluated
//! by `serde_json_path` after translation to RFC 9535.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use serde_json::{json, Value};
use serde_json_path::JsonPath;

use crate::rest::Resource;
use crate::table::IncludeObject;

/// One printer column of a served custom resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrinterColumn {
    /// Header.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean`, `date`.
    pub type_: String,
    /// OpenAPI format (`name` marks the name column).
    pub format: String,
    /// Description.
    pub description: String,
    /// 0: always shown; more: `-o wide`.
    pub priority: i32,
    /// Kubernetes JSONPath of the value, relative to the object.
    pub json_path: String,
}

impl PrinterColumn {
    /// The column of a CRD version's `additionalPrinterColumns` entry.
    pub fn of(c: &CustomResourceColumnDefinition) -> Self {
        Self {
            name: c.name.clone(),
            type_: c.type_.clone(),
            format: c.format.clone().unwrap_or_default(),
            description: c.description.clone().unwrap_or_default(),
            priority: c.priority.unwrap_or(0),
            json_path: c.json_path.clone(),
        }
    }

    /// The `Age` column of versions without printer columns.
    fn age() -> Self {
        Self {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }
    }
}

/// The columns of a version's `additionalPrinterColumns` (`None` when it declares none).
pub fn declared(cols: Option<&Vec<CustomResourceColumnDefinition>>) -> Vec<PrinterColumn> {
    cols.into_iter().flatten().map(PrinterColumn::of).collect()
}

/// The columns a version prints: its printer columns, or `Age` when it declares none.
pub(super) fn printed(columns: &[PrinterColumn]) -> Arc<[PrinterColumn]> {
    if columns.is_empty() {
        vec![PrinterColumn::age()].into()
    } else {
        columns.to_vec().into()
    }
}

/// The printer columns of `info` when it is a custom resource.
pub fn columns(info: Resource) -> Option<Arc<[PrinterColumn]>> {
    super::extras(info).map(|e| e.columns.clone())
}

/// Translates a Kubernetes JSONPath (`.a.b[0]`, optionally in `{…}`) to RFC 9535 (`$.a.b[0]`).
fn translate(path: &str) -> String {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut out = String::from("$");
    let mut chars = p.chars().peekable();
    // Inside brackets (indexes, filters) the syntax is RFC 9535's already: copied as is.
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '[' => {
                depth += 1;
                out.push(c);
            }
            ']' => {
                depth = depth.saturating_sub(1);
                out.push(c);
            }
            '.' if depth == 0 => {
                // A member name up to the next unescaped `.` or `[`.
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    match n {
                        '\\' => {
                            chars.next();
                            if let Some(e) = chars.next() {
                                name.push(e);
                            }
                        }
                        '.' | '[' => break,
                        _ => {
                            name.push(n);
                            chars.next();
                        }
                    }
                }
                if name.is_empty() {
                    continue;
                }
                out.push_str("['");
                out.push_str(&name.replace('\\', "\\\\").replace('\'', "\\'"));
                out.push_str("']");
            }
            other => out.push(other),
        }
    }
    out
}

/// The first value `path` finds in `obj`.
pub fn evaluate<'a>(path: &str, obj: &'a Value) -> Option<&'a Value> {
    let parsed = JsonPath::parse(&translate(path)).ok()?;
    parsed.query(obj).all().into_iter().next()
}

fn cell(col: &PrinterColumn, obj: &Value, now: Timestamp) -> Value {
    let Some(v) = evaluate(&col.json_path, obj) else {
        return Value::Null;
    };
    match col.type_.as_str() {
        "date" => match v.as_str() {
            Some(_) => json!(crate::table::age(Some(v), now)),
            None => Value::Null,
        },
        "string" => match v {
            Value::String(_) => v.clone(),
            Value::Array(_) | Value::Object(_) => json!(v.to_string()),
            other => json!(other.to_string()),
        },
        _ => v.clone(),
    }
}

/// A `Table` of custom `objects` with `columns` (the name column first).
pub fn table(
    columns: &[PrinterColumn],
    objects: &[Value],
    include: IncludeObject,
    now: Timestamp,
    list_metadata: Option<&Value>,
) -> Value {
    let mut defs = vec![json!({
        "name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        "priority": 0,
    })];
    defs.extend(columns.iter().map(|c| {
        json!({
            "name": c.name, "type": c.type_, "format": c.format,
            "description": c.description, "priority": c.priority,
        })
    }));
    let cells = |o: &Value| {
        let mut cells = vec![o
            .get("metadata")
            .and_then(|m| m.get("name"))
            .cloned()
            .unwrap_or(Value::Null)];
        cells.extend(columns.iter().map(|c| cell(c, o, now)));
        cells
    };
    crate::table::assemble(defs, objects, cells, include, list_metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_paths_translate_to_rfc9535() {
        assert_eq!(translate(".spec.cronSpec"), "$['spec']['cronSpec']");
        assert_eq!(translate("{.items[0].x}"), "$['items'][0]['x']");
        assert_eq!(
            translate(r".metadata.labels.app\.kubernetes\.io/name"),
            "$['metadata']['labels']['app.kubernetes.io/name']"
        );
        let obj = json!({"status": {"conditions": [
            {"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(
            evaluate(r#".status.conditions[?(@.type=="Ready")].status"#, &obj),
            Some(&json!("True"))
        );
        assert_eq!(evaluate(".status.missing", &obj), None);
    }

    #[test]
    fn cells_follow_the_column_types() {
        let now: Timestamp = "2025-01-01T01:00:00Z".parse().unwrap();
        let cols = vec![
            PrinterColumn {
                json_path: ".spec.cronSpec".into(),
                type_: "string".into(),
                name: "Spec".into(),
                format: String::new(),
                description: String::new(),
                priority: 0,
            },
            PrinterColumn {
                json_path: ".spec.replicas".into(),
                type_: "integer".into(),
                name: "Replicas".into(),
                format: String::new(),
                description: String::new(),
                priority: 0,
            },
            PrinterColumn::age(),
        ];
        let o = json!({"metadata": {"name": "a", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"cronSpec": "* * * * */5", "replicas": 3}});
        let t = table(
            &cols,
            &[o, json!({"metadata": {"name": "b"}})],
            IncludeObject::None,
            now,
            None,
        );
        assert_eq!(t["rows"][0]["cells"], json!(["a", "* * * * */5", 3, "60m"]));
        assert_eq!(t["rows"][1]["cells"], json!(["b", null, null, null]));
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][3]["type"], "date");
    }
}
