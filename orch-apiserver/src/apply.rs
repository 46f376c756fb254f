//! Server-side apply (`PATCH` with `application/apply-patch+yaml`).
//!
//! What is modelled (upstream `structured-merge-diff` `merge.Updater.Apply` and the field
//! manager chain of [`crate::fieldmanager`]):
//! - the applied configuration is merged into the live object with the merge semantics of
//!   [`crate::schema`] (lists with a merge key merge by key, atomic lists are replaced);
//! - the applier's entry in `metadata.managedFields` (`operation: Apply`, one per manager and
//!   subresource) holds exactly the fields of its configuration, with list elements keyed by
//!   their keys (`k:{"name":"nginx"}`), set members as `v:` and atomic values as leaves;
//! - applying a value different from the live one for a field another entry owns, whether an
//!   applier's or an updater's (`operation: Update`: `kubectl create`, `scale`, client-side
//!   apply, controllers…), is a conflict (409, one `FieldManagerConflict` cause per field)
//!   unless `force=true`, which takes the fields over; equal values are shared;
//! - fields a manager applied before and omits now are removed, unless another entry owns
//!   them;
//! - an object without entries first gets a `before-first-apply` Update entry for its fields;
//! - the `kubectl` applier upgrades an object from client-side apply: conflicts only on fields
//!   of the `kubectl.kubernetes.io/last-applied-configuration` annotation whose value is the
//!   live one are forced, and the annotation is kept up to date with the applied
//!   configuration (upstream `lastappliedmanager.go`, `lastappliedupdater.go`);
//! - a missing object is created.
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

use jiff::Timestamp;
use orch_types::client::{PatchParams, PostParams};
use orch_types::{registry, ApiError, DynamicObject};
use serde_json::{json, Map, Value};

use crate::fieldmanager::typed::{self, Object};
use crate::fieldmanager::{
    self, FieldPath, FieldSet, Identity, Managed, Scope, BEFORE_FIRST_APPLY, KUBECTL_APPLIER,
    LAST_APPLIED,
};
use crate::patch::strategic::strategic_merge;
use crate::rest::update::{Part, UpdateOutcome};
use crate::rest::{Resource, RestResult};
use crate::schema::SchemaNode;
use crate::server::ApiServer;

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change.
    #[error("{}", fieldmanager::conflict_error(&.0.iter().map(|c| (c.manager.clone(), c.field.clone())).collect::<Vec<_>>()).message)]
    Conflicts(Vec<Conflict>),
    /// The applied configuration is malformed.
    #[error("{0}")]
    Invalid(String),
}

/// One conflicting field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The entry owning the field.
    pub manager: Identity,
    /// The field.
    pub field: FieldPath,
}

impl ApplyError {
    /// The API error (409 Conflict with causes, or 400).
    pub fn to_api_error(&self) -> ApiError {
        match self {
            ApplyError::Conflicts(cs) => fieldmanager::conflict_error(
                &cs.iter()
                    .map(|c| (c.manager.clone(), c.field.clone()))
                    .collect::<Vec<_>>(),
            ),
            ApplyError::Invalid(m) => ApiError::bad_request(m.clone()),
        }
    }
}

/// How an apply is made.
#[derive(Debug, Clone, Copy)]
pub struct Applier<'a> {
    /// The manager.
    pub manager: &'a str,
    /// The subresource applied through (empty: the main resource).
    pub subresource: &'a str,
    /// Take conflicting fields over.
    pub force: bool,
    /// The time recorded when the object changes.
    pub now: Timestamp,
}

/// Whether `item` is the list element keyed by `key` (a missing `protocol` is `TCP`).
fn key_matches(item: &Value, key: &Map<String, Value>) -> bool {
    key.iter().all(|(k, v)| match item.get(k) {
        Some(x) => x == v,
        None => k == "protocol" && v == "TCP",
    })
}

/// Removes the value at a path (a list element for a `k:`/`v:` last segment).
fn remove_at(v: &mut Value, path: &[String]) {
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
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|item| key_matches(item, &key)))
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
            a.retain(|item| !key_matches(item, &key));
        }
    } else if let Some(x) = last.strip_prefix("v:") {
        if let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(x), cur.as_array_mut()) {
            a.retain(|item| *item != want);
        }
    }
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
    let now: Timestamp = now
        .parse()
        .map_err(|e| ApplyError::Invalid(format!("invalid time {now:?}: {e}")))?;
    apply_as(
        live,
        config,
        &Applier {
            manager,
            subresource: "",
            force,
            now,
        },
        schema,
    )
}

/// The scope of an apply of `config` (resolved from its apiVersion and kind).
fn scope_of(config: &Value, subresource: &str) -> Scope {
    let api_version = config.get("apiVersion").and_then(Value::as_str);
    let kind = config.get("kind").and_then(Value::as_str);
    let sub = (!subresource.is_empty()).then_some(subresource);
    match api_version
        .zip(kind)
        .and_then(|(v, k)| registry::by_kind(v, k))
    {
        Some(info) => fieldmanager::scope_of(info, sub),
        None => fieldmanager::scope_of_unknown(sub),
    }
}

/// [`apply`] with every option.
pub fn apply_as(
    live: Option<&Value>,
    config: &Value,
    by: &Applier<'_>,
    schema: SchemaNode<'_>,
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
    let scope = scope_of(&cfg, by.subresource);
    let base = live.cloned().unwrap_or_else(|| json!({}));
    let mut managed = Managed::decode_json(&base).unwrap_or_default();
    if managed.is_empty() && live.is_some() {
        // upstream skipnonapplied.go: the fields already there become an Update entry first.
        let cmp = typed::compare(None, Object::of(&base), schema, scope);
        let id = Identity::update(BEFORE_FIRST_APPLY, &api_version, by.subresource);
        fieldmanager::record_update(&mut managed, &cmp, &id, &api_version, Some(by.now));
    }
    let id = Identity::apply(by.manager, by.subresource);
    let applied = typed::field_set(Object::of(&cfg), schema, scope);
    let previous = managed.remove(&id);

    let mut merged =
        strategic_merge(&base, &cfg, schema).map_err(|e| ApplyError::Invalid(e.to_string()))?;
    // Fields this manager applied before and no longer applies go, unless someone owns them.
    if let Some(prev) = &previous {
        let mut gone = prev.fields.clone();
        gone.remove_all(&applied);
        let mut owned = applied.clone();
        managed
            .entries
            .iter()
            .for_each(|e| owned.union_with(&e.fields));
        for p in gone.paths() {
            if !owned.has_prefix(&p.0) {
                remove_at(&mut merged, &p.0);
            }
        }
    }

    // Conflicts: another entry owns a field this apply changes.
    let cmp = typed::compare(Some(Object::of(&base)), Object::of(&merged), schema, scope);
    let changed = cmp.changed();
    let conflicts: Vec<Conflict> = managed
        .entries
        .iter()
        .flat_map(|e| {
            e.fields
                .intersection(&changed)
                .paths()
                .into_iter()
                .map(|field| Conflict {
                    manager: e.id.clone(),
                    field,
                })
        })
        .collect();
    if !conflicts.is_empty() && !by.force {
        // The kubectl applier may take over what its client-side apply set.
        let allowed = (by.manager == KUBECTL_APPLIER)
            .then(|| fieldmanager::last_applied_allowed(&base, &api_version, schema, scope))
            .flatten();
        let remaining: Vec<Conflict> = conflicts
            .into_iter()
            .filter(|c| {
                !allowed
                    .as_ref()
                    .is_some_and(|a: &FieldSet| a.has(&c.field.0))
            })
            .collect();
        if !remaining.is_empty() {
            return Err(ApplyError::Conflicts(remaining));
        }
    }
    for e in &mut managed.entries {
        e.fields.remove_all(&changed);
        e.fields.remove_all(&cmp.removed);
    }
    // upstream managedfieldsupdater.go: the time moves only when the object changes.
    let time = if merged != base {
        Some(by.now)
    } else {
        previous.and_then(|p| p.time)
    };
    managed.entries.push(fieldmanager::Entry {
        id,
        api_version,
        fields: applied,
        time,
    });
    managed.drop_empty();

    if let Some(m) = merged.as_object_mut() {
        let meta = m.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let annotations = meta.get_mut("annotations").and_then(Value::as_object_mut);
            if let Some(a) = annotations {
                let has_last = a
                    .get(LAST_APPLIED)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                if by.manager == KUBECTL_APPLIER && has_last {
                    a.insert(
                        LAST_APPLIED.into(),
                        fieldmanager::last_applied_of(config).into(),
                    );
                }
            }
            meta.insert("managedFields".into(), managed.encode_json());
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
        let manager = p.field_manager.as_deref().unwrap_or("");
        if manager.is_empty() {
            let mut e = ApiError::invalid(
                "PatchOptions.meta.k8s.io",
                "",
                vec![crate::rest::create::cause(
                    "fieldManager",
                    "FieldValueRequired",
                    "Required value: is required for apply patch",
                )],
            );
            if let Some(d) = &mut e.details {
                d.kind = Some("PatchOptions".into());
                d.group = Some("meta.k8s.io".into());
            }
            return Err(e);
        }
        fieldmanager::validate_manager(Some(manager), "PatchOptions")?;
        let gv = config.get("apiVersion").and_then(Value::as_str);
        let kind = config.get("kind").and_then(Value::as_str);
        if let (Some(gv), Some(kind)) = (gv, kind) {
            if gv != info.api_version() || kind != info.kind {
                return Err(ApiError::bad_request(format!(
                    "invalid object type: {gv}, Kind={kind}"
                )));
            }
        }
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
        let schema = fieldmanager::schema_of(info, self.custom(info).as_deref());
        // The server's clock (virtual in simulations), like creationTimestamp.
        let by = Applier {
            manager,
            subresource: part.subresource().unwrap_or(""),
            force: p.force,
            now: crate::rest::meta::time(self.config().clock.now()).0,
        };
        let to_err = |e: ApplyError| e.to_api_error();
        for _ in 0..4 {
            match self.get_object(info, ns, name).await {
                Err(e) if e.is_not_found() && part == Part::Main => {
                    let mut v = apply_as(None, config, &by, schema).map_err(to_err)?;
                    v["metadata"]["name"] = json!(name);
                    let obj = DynamicObject::from_value(v).map_err(|e| {
                        ApiError::bad_request(format!("invalid apply configuration: {}", e.source))
                    })?;
                    let pp = PostParams {
                        dry_run: p.dry_run,
                        field_manager: Some(manager.to_string()),
                        field_validation: p.field_validation.clone(),
                    };
                    match self.create_object_as(info, ns, obj, &pp, None).await {
                        Ok(w) => return Ok(UpdateOutcome::Created(w)),
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
                            let v = apply_as(Some(&live), config, &by, schema).map_err(to_err)?;
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
