//! Server-side apply (`PATCH` with `application/apply-patch+yaml`).
//!
//! What is modelled (upstream `structured-merge-diff`, simplified):
//! - the applied configuration is merged into the live object with the merge semantics of
//!   [`crate::schema`] (lists with a merge key merge by key, atomic lists are replaced);
//! - each manager's fields are recorded in `metadata.managedFields` (`fieldsType: FieldsV1`,
//!   `operation: Apply`), with list elements keyed by their merge key (`k:{"name":"nginx"}`),
//!   set members as `v:` and atomic lists as leaves;
//! - applying a value different from the live one for a field another manager owns is a
//!   conflict (409, one `FieldManagerConflict` cause per field) unless `force=true`, which
//!   takes the fields over;
//! - fields a manager applied before and omits now are removed, unless another manager owns
//!   them;
//! - a missing object is created.
//!
//! Not modelled: ownership recorded for non-apply writes (`operation: Update`), so conflicts
//! are detected between appliers only.
//!
//! ```
//! use orch_apiserver::{apply::apply, schema::Schemas};
//! use serde_json::json;
//! let cm = Schemas::builtin().root("", "v1", "ConfigMap").unwrap();
//! let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
//! let live = apply(None, &cfg, "alice", false, cm, "2025-01-01T00:00:00Z").unwrap();
//! assert_eq!(live["metadata"]["managedFields"][0]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
//! let bob = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
//! assert!(apply(Some(&live), &bob, "bob", false, cm, "2025-01-01T00:00:00Z").is_err());
//! ```

use std::collections::BTreeSet;

use orch_types::client::{PatchParams, PostParams};
use orch_types::status::reason;
use orch_types::{ApiError, DynamicObject};
use serde_json::{json, Map, Value};

use crate::patch::strategic::strategic_merge;
use crate::rest::update::{Part, UpdateOutcome};
use crate::rest::{Resource, RestResult};
use crate::schema::{SchemaNode, Schemas};
use crate::server::ApiServer;

/// A field path in `fieldsV1` segments (`f:spec`, `k:{"name":"c"}`, `v:"x"`, `.`).
type Path = Vec<String>;

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change.
    #[error("Apply failed with {} conflict{}: {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.iter().map(|c| format!("conflict with \"{}\" using {}: {}", c.manager, c.api_version, c.field)).collect::<Vec<_>>().join("\n"))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration is malformed.
    #[error("{0}")]
    Invalid(String),
}

/// One conflicting field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager owning the field.
    pub manager: String,
    /// That manager's apiVersion.
    pub api_version: String,
    /// The field, as upstream prints it (`.spec.replicas`).
    pub field: String,
}

impl ApplyError {
    /// The API error (409 Conflict with causes, or 400/422).
    pub fn to_api_error(&self, kind: &str, name: &str) -> ApiError {
        match self {
            ApplyError::Conflicts(cs) => {
                let mut e = ApiError::new(409, reason::CONFLICT, self.to_string());
                e.details = Some(
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
                        name: Some(name.into()),
                        kind: Some(kind.into()),
                        causes: Some(
                            cs.iter()
                                .map(|c| {
                                    k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                                        field: Some(c.field.clone()),
                                        message: Some(format!(
                                            "conflict with \"{}\" using {}",
                                            c.manager, c.api_version
                                        )),
                                        reason: Some("FieldManagerConflict".into()),
                                    }
                                })
                                .collect(),
                        ),
                        ..Default::default()
                    },
                );
                e
            }
            ApplyError::Invalid(m) => ApiError::bad_request(m.clone()),
        }
    }
}

/// Metadata fields nobody owns (server-set or identity).
const UNMANAGED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The part of an object that fields are tracked for (no apiVersion/kind/status/identity).
fn tracked(v: &Value) -> Value {
    let mut out = v.clone();
    if let Some(m) = out.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        m.remove("status");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in UNMANAGED_META {
                meta.remove(*k);
            }
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
    }
    out
}

fn list_keys(meta_key: Option<&str>, schema_prop: Option<&Value>) -> Vec<String> {
    if let Some(keys) = schema_prop
        .and_then(|p| p.get("x-kubernetes-list-map-keys"))
        .and_then(Value::as_array)
    {
        return keys
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
    }
    meta_key.map(|k| vec![k.to_string()]).unwrap_or_default()
}

fn prop_schema<'a>(parent: SchemaNode<'a>, key: &str) -> Option<&'a Value> {
    parent
        .schema()
        .and_then(|s| s.get("properties"))
        .and_then(|p| p.get(key))
}

fn element_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    (!m.is_empty()).then(|| format!("k:{}", Value::Object(m)))
}

/// The `fieldsV1` set of an object's tracked fields.
pub fn fieldset(v: &Value, schema: SchemaNode<'_>) -> Value {
    fields_of(&tracked(v), schema)
}

fn fields_of(v: &Value, schema: SchemaNode<'_>) -> Value {
    let mut out = Map::new();
    let Some(m) = v.as_object() else {
        return Value::Object(out);
    };
    for (k, child) in m {
        let (sub, meta) = schema.field(k);
        let node = match child {
            Value::Object(_) => fields_of(child, sub),
            Value::Array(items) => {
                let prop = prop_schema(schema, k);
                let list_type = prop
                    .and_then(|p| p.get("x-kubernetes-list-type"))
                    .and_then(Value::as_str);
                let keys = list_keys(meta.merge_key.as_deref(), prop);
                let is_set = list_type == Some("set") || (meta.merge && keys.is_empty());
                let mut lm = Map::new();
                if !keys.is_empty() && list_type != Some("atomic") {
                    for item in items {
                        if let Some(key) = element_key(item, &keys) {
                            let mut inner = fields_of(item, sub);
                            if let Some(im) = inner.as_object_mut() {
                                im.insert(".".into(), json!({}));
                            }
                            lm.insert(key, inner);
                        }
                    }
                } else if is_set {
                    for item in items {
                        lm.insert(format!("v:{item}"), json!({}));
                    }
                }
                Value::Object(lm)
            }
            _ => json!({}),
        };
        out.insert(format!("f:{k}"), node);
    }
    Value::Object(out)
}

/// Leaf paths of a `fieldsV1` set (a `.` marks ownership of a list element itself).
pub fn leaves(fs: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    fn walk(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, c) in m {
                    prefix.push(k.clone());
                    walk(c, prefix, out);
                    prefix.pop();
                }
            }
            _ => {
                out.insert(prefix.clone());
            }
        }
    }
    walk(fs, &mut Vec::new(), &mut out);
    out
}

fn from_leaves(paths: &BTreeSet<Path>) -> Value {
    fn insert(m: &mut Map<String, Value>, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let child = m.entry(first.clone()).or_insert_with(|| json!({}));
        if let Some(cm) = child.as_object_mut() {
            insert(cm, rest);
        }
    }
    let mut root = Map::new();
    for p in paths {
        insert(&mut root, p);
    }
    Value::Object(root)
}

/// The value at a path of an object (`None` if absent).
fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        if seg == "." {
            continue;
        }
        cur = if let Some(f) = seg.strip_prefix("f:") {
            cur.get(f)?
        } else if let Some(k) = seg.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur.as_array()?
                .iter()
                .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))?
        } else if let Some(x) = seg.strip_prefix("v:") {
            let want: Value = serde_json::from_str(x).ok()?;
            cur.as_array()?.iter().find(|item| **item == want)?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// Removes the value at a path (a `.`-path removes the list element).
fn remove_at(v: &mut Value, path: &[String]) {
    let path: Vec<&String> = path.iter().filter(|s| *s != ".").collect();
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        let next = if let Some(f) = seg.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = seg.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(key), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(k),
            cur.as_array_mut(),
        ) {
            a.retain(|item| !key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)));
        }
    } else if let Some(x) = last.strip_prefix("v:") {
        if let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(x), cur.as_array_mut()) {
            a.retain(|item| *item != want);
        }
    }
}

fn print_path(p: &[String]) -> String {
    let mut s = String::new();
    for seg in p {
        if let Some(f) = seg.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            s.push('[');
            s.push_str(&k.replace(':', "="));
            s.push(']');
        } else if let Some(x) = seg.strip_prefix("v:") {
            s.push_str(&format!("[{x}]"));
        }
    }
    s
}

struct Entry {
    raw: Value,
    manager: String,
    api_version: String,
    is_apply: bool,
    fields: BTreeSet<Path>,
}

fn entries(live: &Value) -> Vec<Entry> {
    live.get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    raw: e.clone(),
                    manager: e
                        .get("manager")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    api_version: e
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    is_apply: e.get("operation").and_then(Value::as_str) == Some("Apply"),
                    fields: e.get("fieldsV1").map(leaves).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Applies `config` for `manager` to `live` (`None`: the object does not exist yet) and returns
/// the new object with its `managedFields`. `now` is the RFC 3339 time recorded in the entry.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    schema: SchemaNode<'_>,
    now: &str,
) -> Result<Value, ApplyError> {
    if !config.is_object() {
        return Err(ApplyError::Invalid(
            "apply configuration must be an object".into(),
        ));
    }
    let api_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApplyError::Invalid("apiVersion must be set in the apply configuration".into())
        })?
        .to_string();
    if config
        .get("kind")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(ApplyError::Invalid(
            "kind must be set in the apply configuration".into(),
        ));
    }
    let mut cfg = config.clone();
    if let Some(meta) = cfg.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    let new_fields = leaves(&fieldset(&cfg, schema));
    let base = live.cloned().unwrap_or_else(|| json!({}));
    let mut others = entries(&base);
    let previous: BTreeSet<Path> = others
        .iter()
        .filter(|e| e.manager == manager && e.is_apply)
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    others.retain(|e| !(e.manager == manager && e.is_apply));

    // Conflicts: another manager owns a field whose value would change.
    let mut conflicts = Vec::new();
    let mut conflicting: BTreeSet<Path> = BTreeSet::new();
    for e in &others {
        for p in e.fields.intersection(&new_fields) {
            let differs = if p.last().is_some_and(|s| s == ".") {
                value_at(&base, p).is_some() != value_at(&cfg, p).is_some()
            } else {
                value_at(&base, p) != value_at(&cfg, p)
            };
            if differs {
                conflicting.insert(p.clone());
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    field: print_path(p),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    // Forcing takes over the conflicting fields only; equal values stay shared.
    for e in &mut others {
        e.fields.retain(|p| !conflicting.contains(p));
    }

    let mut merged =
        strategic_merge(&base, &cfg, schema).map_err(|e| ApplyError::Invalid(e.to_string()))?;
    // Fields this manager applied before and no longer applies go, unless someone else owns them.
    let owned_by_others: BTreeSet<&Path> = others.iter().flat_map(|e| e.fields.iter()).collect();
    for p in previous.difference(&new_fields) {
        if !owned_by_others.contains(p) && !owned_by_others.iter().any(|o| o.starts_with(p)) {
            remove_at(&mut merged, p);
        }
    }

    let mut managed: Vec<Value> = others
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut raw = e.raw;
            raw["fieldsV1"] = from_leaves(&e.fields);
            raw
        })
        .collect();
    managed.push(json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": from_leaves(&new_fields),
    }));
    if let Some(m) = merged.as_object_mut() {
        let meta = m.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("managedFields".into(), Value::Array(managed));
        }
    }
    Ok(merged)
}

impl ApiServer {
    /// Server-side apply of `config` to object `name` (creating it when missing).
    pub async fn apply_object(
        &self,
        info: Resource,
        ns: Option<&str>,
        name: &str,
        part: Part,
        config: &Value,
        p: &PatchParams,
    ) -> RestResult<UpdateOutcome> {
        let manager = p
            .field_manager
            .as_deref()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request("PATCH requests with apply content type require fieldManager")
            })?;
        if let Some(n) = config
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
        {
            if n != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        let schemas = Schemas::builtin();
        let schema = schemas
            .root(info.group, info.version, info.kind)
            .unwrap_or_else(|| SchemaNode::unknown(schemas));
        // The server's clock (virtual in simulations), like creationTimestamp.
        let now = self
            .config()
            .clock
            .now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let to_err = |e: ApplyError| e.to_api_error(info.kind, name);
        for _ in 0..4 {
            match self.get_object(info, ns, name).await {
                Err(e) if e.is_not_found() && part == Part::Main => {
                    let mut v =
                        apply(None, config, manager, p.force, schema, &now).map_err(to_err)?;
                    v["metadata"]["name"] = json!(name);
                    let obj = DynamicObject::from_value(v).map_err(|e| {
                        ApiError::bad_request(format!("invalid apply configuration: {}", e.source))
                    })?;
                    let pp = PostParams {
                        dry_run: p.dry_run,
                        field_manager: Some(manager.to_string()),
                        field_validation: p.field_validation.clone(),
                    };
                    match self.create_object(info, ns, obj, &pp).await {
                        Ok(w) => return Ok(UpdateOutcome::Updated(w)),
                        Err(e) if e.is_already_exists() => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
                Ok(_) => {
                    let ns = self.object_namespace(info, ns)?;
                    return self
                        .guaranteed_update(info, ns, name, part, p.dry_run, |cur| {
                            let live = serde_json::to_value(cur)
                                .map_err(|_| ApiError::internal("cannot encode object"))?;
                            let v = apply(Some(&live), config, manager, p.force, schema, &now)
                                .map_err(to_err)?;
                            let mut obj = DynamicObject::from_value(v).map_err(|e| {
                                ApiError::bad_request(format!(
                                    "invalid apply configuration: {}",
                                    e.source
                                ))
                            })?;
                            obj.metadata.resource_version = None;
                            Ok(obj)
                        })
                        .await;
                }
            }
        }
        Err(ApiError::conflict(
            &crate::rest::qualified(info),
            name,
            "the object was created and deleted concurrently; try again",
        ))
    }
}

#[cfg(test)]
mod tests;
