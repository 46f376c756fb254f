//! Server-side printing: `meta.k8s.io/v1` `Table` answers for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! Each kind has upstream's columns ([`printers`], from upstream
//! `pkg/printers/internalversion/printers.go`): the columns kubectl shows by default
//! (priority 0) and the extra `-o wide` ones (priority 1). Rows carry the object as
//! `PartialObjectMetadata` (`includeObject=Metadata`, the default), the full object
//! (`Object`) or nothing (`None`). Ages are rendered like upstream's `HumanDuration`
//! relative to a `now` the caller passes in (from its `Clock`).
//!
//! ```
//! use orch_apiserver::table::{self, IncludeObject};
//! use serde_json::json;
//! let pod = json!({"apiVersion": "v1", "kind": "Pod",
//!     "metadata": {"name": "web", "creationTimestamp": "2025-01-01T00:00:00Z"},
//!     "spec": {"containers": [{"name": "c"}]},
//!     "status": {"phase": "Running", "containerStatuses": [
//!         {"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
//! let now = "2025-01-01T00:05:00Z".parse().unwrap();
//! let t = table::table("", "Pod", &[pod], IncludeObject::Metadata, now, None);
//! let cells = t["rows"][0]["cells"].as_array().unwrap();
//! assert_eq!(cells[..5], [json!("web"), json!("1/1"), json!("Running"), json!("0"), json!("5m")]);
//! assert_eq!(t["columnDefinitions"][5]["name"], "IP"); // priority 1: `-o wide`
//! ```

pub mod printers;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

/// The `includeObject` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object in rows.
    None,
    /// `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the query parameter (unknown values fall back to the default).
    pub fn from_param(p: Option<&str>) -> Self {
        match p {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// One column definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Header (kubectl upper-cases it).
    pub name: &'static str,
    /// `string`, `integer`, `date` …
    pub kind: &'static str,
    /// `name` for the name column, `date-time`, or empty.
    pub format: &'static str,
    /// 0: always shown; 1: `-o wide`.
    pub priority: u8,
    /// Description.
    pub description: &'static str,
}

impl Column {
    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// Upstream `duration.HumanDuration` of `now - t`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Age of an RFC 3339 timestamp (`<unknown>` when absent or unparsable).
pub fn age(ts: Option<&Value>, now: Timestamp) -> String {
    match ts
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok())
    {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

pub(crate) fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A `Table` of `objects` of one kind (`group` `""` for core). `list_metadata` (with
/// `resourceVersion`, `continue`) is copied to the table's metadata.
pub fn table(
    group: &str,
    kind: &str,
    objects: &[Value],
    include: IncludeObject,
    now: Timestamp,
    list_metadata: Option<&Value>,
) -> Value {
    let printer = printers::printer(group, kind);
    let columns: Vec<Value> = printer.columns.iter().map(|c| c.to_json()).collect();
    assemble(
        columns,
        objects,
        |o| (printer.cells)(o, now),
        include,
        list_metadata,
    )
}

/// A `Table` with `columns`, one row per object with the cells `cells` computes and the
/// object as `include` asks, and `list_metadata` (built-in printers and custom resources'
/// columns, `crate::crd::table`, share it).
pub(crate) fn assemble(
    columns: Vec<Value>,
    objects: &[Value],
    cells: impl Fn(&Value) -> Vec<Value>,
    include: IncludeObject,
    list_metadata: Option<&Value>,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells(o)));
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row.insert("object".into(), partial_metadata(o));
                }
                IncludeObject::Object => {
                    row.insert("object".into(), o.clone());
                }
            }
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata.cloned().unwrap_or_else(|| json!({})),
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Converts an API answer to what a Table request gets: a list (`items`) becomes a Table of
/// its items with the list's metadata, a `Status` stays as it is, any other object becomes a
/// one-row Table.
pub fn convert(
    group: &str,
    kind: &str,
    v: &Value,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    convert_with(v, |objects, meta| {
        table(group, kind, objects, include, now, meta)
    })
}

/// [`convert`] with the Table of some objects (and list metadata) made by `make` (custom
/// resources print their own columns, `crate::crd::table`).
pub fn convert_with(v: &Value, make: impl Fn(&[Value], Option<&Value>) -> Value) -> Value {
    if v.get("kind").and_then(Value::as_str) == Some("Status") {
        return v.clone();
    }
    match v.get("items").and_then(Value::as_array) {
        Some(items) => make(items, v.get("metadata")),
        None => {
            let rv = v
                .get("metadata")
                .and_then(|m| m.get("resourceVersion"))
                .cloned()
                .map(|rv| json!({"resourceVersion": rv}));
            make(std::slice::from_ref(v), rv.as_ref())
        }
    }
}

/// A watch event's object as a Table: one row for an object; an empty Table carrying the
/// resourceVersion for a `BOOKMARK`; `ERROR` Statuses unchanged. Column definitions are sent
/// only when `with_columns` (upstream sends them in the first event; kubectl reuses them).
pub fn watch_event(
    group: &str,
    kind: &str,
    event: &Value,
    include: IncludeObject,
    now: Timestamp,
    with_columns: bool,
) -> Value {
    watch_event_with(event, with_columns, |objects, meta| {
        table(group, kind, objects, include, now, meta)
    })
}

/// [`watch_event`] with the Tables made by `make` (see [`convert_with`]).
pub fn watch_event_with(
    event: &Value,
    with_columns: bool,
    make: impl Fn(&[Value], Option<&Value>) -> Value,
) -> Value {
    let ty = event.get("type").and_then(Value::as_str).unwrap_or("");
    let Some(obj) = event.get("object") else {
        return event.clone();
    };
    let mut t = match ty {
        "ERROR" => return event.clone(),
        "BOOKMARK" => {
            let mut t = make(&[], None);
            if let Some(m) = obj.get("metadata") {
                t["metadata"] = m.clone();
            }
            t
        }
        _ => convert_with(obj, &make),
    };
    if !with_columns {
        t["columnDefinitions"] = json!([]);
    }
    json!({"type": ty, "object": t})
}

/// The Table of an API answer about `info`'s objects: custom resources print their
/// `additionalPrinterColumns` ([`crate::crd::table`]), built-in kinds their printers.
pub fn convert_for(
    info: Option<crate::rest::Resource>,
    v: &Value,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    match info.and_then(crate::crd::table::columns) {
        Some(cols) => convert_with(v, |objects, meta| {
            crate::crd::table::table(&cols, objects, include, now, meta)
        }),
        None => {
            let (group, kind) = info.map_or(("", ""), |i| (i.group, i.kind));
            convert(group, kind, v, include, now)
        }
    }
}

/// [`watch_event`] for `info`'s objects (see [`convert_for`]).
pub fn watch_event_for(
    info: crate::rest::Resource,
    event: &Value,
    include: IncludeObject,
    now: Timestamp,
    with_columns: bool,
) -> Value {
    match crate::crd::table::columns(info) {
        Some(cols) => watch_event_with(event, with_columns, |objects, meta| {
            crate::crd::table::table(&cols, objects, include, now, meta)
        }),
        None => watch_event(info.group, info.kind, event, include, now, with_columns),
    }
}

/// Whether an `Accept` header asks for a `meta.k8s.io/v1` Table (first acceptable entry wins).
pub fn wants_table(accept: &str) -> bool {
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let get = |k: &str| params.iter().find(|(a, _)| *a == k).map(|(_, v)| *v);
        return get("as") == Some("Table")
            && get("g").is_none_or(|g| g == "meta.k8s.io")
            && get("v").is_none_or(|v| v == "v1" || v == "v1beta1");
    }
    false
}

#[cfg(test)]
mod tests;
