//! Field management: who owns which fields of an object, recorded in `metadata.managedFields`
//! by every write.
//!
//! Model: upstream `k8s.io/apimachinery/pkg/util/managedfields/internal` (the `Manager` chain
//! built by `NewDefaultFieldManager` in `fieldmanager.go`) over
//! `sigs.k8s.io/structured-merge-diff` (`merge/update.go`). What each write does:
//!
//! - **Update** (create, PUT, JSON/merge/strategic PATCH, and the `status`, `scale` and
//!   `finalize` subresources; [`record_update`]): the fields this write added or changed
//!   (compared with the stored object, or with nothing for a create) are taken from every other
//!   entry and added to the writer's entry, whose `time` is then refreshed; removed fields leave
//!   every entry. A write that changes nothing leaves the entries as they were. An entry is
//!   one per (manager, `Update`, apiVersion, subresource); upstream `buildmanagerinfo.go` names
//!   a manager without a name `unknown`.
//! - **Apply** ([`crate::apply`]): the applied configuration's fields become the applier's
//!   entry; fields another entry (Apply *or* Update) owns whose value would change are
//!   conflicts unless forced (`structuredmerge.go`, `merge.Updater.Apply`). An object without
//!   entries first gets a `before-first-apply` Update entry for its fields
//!   (`skipnonapplied.go`), and the `kubectl` applier upgrades from client-side apply
//!   ([`last_applied_allowed`], `lastappliedmanager.go`, `lastappliedupdater.go`).
//! - never recorded: `apiVersion`, `kind`, the server's metadata ([`typed::STRIPPED_META`],
//!   `stripmeta.go`), and what the write's strategy resets ([`Scope`]: `status` for the main
//!   resource of a kind with a status subresource, everything but `status` for `/status`).
//! - an update of an object that has no entries records none (`skipnonapplied.go`), and
//!   `metadata.managedFields: []` (or `[{}]`) in the request clears them (`fieldmanager.go`,
//!   `isResetManagedFields`); entries sent with a main-resource update replace the stored ones.
//! - at most [`MAX_UPDATE_MANAGERS`] Update entries: the oldest are merged, per apiVersion,
//!   into `ancient-changes` ([`Managed::cap_updates`], `capmanagers.go`).
//! - entries are sorted as upstream encodes them (`managedfields.go`): Apply before Update,
//!   then by time, manager, apiVersion, subresource.
//!
//! The manager name is the request's `fieldManager` (at most 128 bytes, printable:
//! [`validate_manager`]) or, over HTTP, the part of the User-Agent before the first `/`
//! ([`prefix_from_user_agent`], upstream `handlers/create.go`).

pub mod fieldset;
pub mod typed;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    FieldsV1, ManagedFieldsEntry, ObjectMeta, StatusCause, Time,
};
use orch_types::status::reason;
use orch_types::{ApiError, DynamicObject};
use serde::Serialize;
use serde_json::{Map, Value};

pub use fieldset::{FieldPath, FieldSet};
pub use typed::{Comparison, Object, Scope};

use crate::rest::Resource;
use crate::schema::{SchemaNode, Schemas};

/// Most Update entries kept (upstream `DefaultMaxUpdateManagers`).
pub const MAX_UPDATE_MANAGERS: usize = 10;
/// The manager older Update entries are merged into.
pub const ANCIENT_CHANGES: &str = "ancient-changes";
/// The Update entry an object's fields get when it is first applied to without entries.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// The manager of a write without a name.
pub const UNKNOWN_MANAGER: &str = "unknown";
/// Longest `fieldManager` (upstream `validation.FieldManagerMaxLength`).
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;
/// The annotation of client-side apply.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The applier that upgrades from client-side apply (kubectl's default server-side manager).
pub const KUBECTL_APPLIER: &str = "kubectl";

/// `Apply` or `Update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

impl Operation {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// Whose entry: upstream `BuildManagerIdentifier` (an applier is one entry whatever its
/// apiVersion; an updater one per apiVersion).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The manager name.
    pub manager: String,
    /// The operation.
    pub operation: Operation,
    /// The apiVersion (empty for appliers).
    pub api_version: String,
    /// The subresource written through (empty for the main resource).
    pub subresource: String,
}

impl Identity {
    /// An updater's identity.
    pub fn update(manager: &str, api_version: &str, subresource: &str) -> Self {
        Self {
            manager: manager.to_string(),
            operation: Operation::Update,
            api_version: api_version.to_string(),
            subresource: subresource.to_string(),
        }
    }

    /// An applier's identity.
    pub fn apply(manager: &str, subresource: &str) -> Self {
        Self {
            manager: manager.to_string(),
            operation: Operation::Apply,
            api_version: String::new(),
            subresource: subresource.to_string(),
        }
    }

    /// upstream's identifier string (the entry as JSON without fields and time): the order
    /// that breaks ties when capping and groups conflict messages.
    pub fn key(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut s = format!(
            "{{\"manager\":{},\"operation\":\"{}\"",
            q(&self.manager),
            self.operation.as_str()
        );
        if !self.api_version.is_empty() {
            s.push_str(&format!(",\"apiVersion\":{}", q(&self.api_version)));
        }
        if !self.subresource.is_empty() {
            s.push_str(&format!(",\"subresource\":{}", q(&self.subresource)));
        }
        s.push('}');
        s
    }

    /// How a conflict names the manager (upstream `printManager`): `"kubectl"`,
    /// `"kubectl-client-side-apply" using apps/v1`, `"x" with subresource "scale" using apps/v1`.
    pub fn describe(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut s = q(&self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {}", q(&self.subresource)));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// One decoded `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Whose.
    pub id: Identity,
    /// The apiVersion of its fields.
    pub api_version: String,
    /// The fields owned.
    pub fields: FieldSet,
    /// When the fields last changed (second precision).
    pub time: Option<Timestamp>,
}

/// The decoded `managedFields` of an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Managed {
    /// The entries, one per identity.
    pub entries: Vec<Entry>,
}

impl Managed {
    /// Decodes `managedFields` (upstream `DecodeManagedFields`): each entry needs an operation
    /// `Apply` or `Update`, an apiVersion and `fieldsType: FieldsV1`.
    pub fn decode(wire: &[ManagedFieldsEntry]) -> Result<Self, String> {
        let mut out = Managed::default();
        for (i, e) in wire.iter().enumerate() {
            let operation = match e.operation.as_deref() {
                Some("Apply") => Operation::Apply,
                Some("Update") => Operation::Update,
                _ => return Err("operation must be `Apply` or `Update`".into()),
            };
            let api_version = e.api_version.clone().unwrap_or_default();
            if api_version.is_empty() {
                return Err("apiVersion must not be empty".into());
            }
            match e.fields_type.as_deref() {
                Some("FieldsV1") => {}
                None | Some("") => {
                    return Err(format!("missing fieldsType in managed fields entry {i}"))
                }
                Some(t) => {
                    return Err(format!(
                        "invalid fieldsType {t:?} in managed fields entry {i}"
                    ))
                }
            }
            let fields = match &e.fields_v1 {
                Some(FieldsV1(v)) => FieldSet::from_fields_v1(v)?,
                None => FieldSet::new(),
            };
            let manager = e.manager.clone().unwrap_or_default();
            let subresource = e.subresource.clone().unwrap_or_default();
            let id = match operation {
                Operation::Apply => Identity::apply(&manager, &subresource),
                Operation::Update => Identity::update(&manager, &api_version, &subresource),
            };
            let entry = Entry {
                id,
                api_version,
                fields,
                time: e.time.as_ref().map(|t| t.0),
            };
            match out.entries.iter_mut().find(|x| x.id == entry.id) {
                Some(x) => *x = entry,
                None => out.entries.push(entry),
            }
        }
        Ok(out)
    }

    /// Decodes the `managedFields` of a JSON object (absent: none).
    pub fn decode_json(obj: &Value) -> Result<Self, String> {
        match obj.get("metadata").and_then(|m| m.get("managedFields")) {
            None | Some(Value::Null) => Ok(Self::default()),
            Some(v) => {
                let wire: Vec<ManagedFieldsEntry> =
                    serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
                Self::decode(&wire)
            }
        }
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of `id`.
    pub fn get(&self, id: &Identity) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == *id)
    }

    fn get_mut(&mut self, id: &Identity) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.id == *id)
    }

    /// Takes the entry of `id` out.
    pub fn remove(&mut self, id: &Identity) -> Option<Entry> {
        let i = self.entries.iter().position(|e| e.id == *id)?;
        Some(self.entries.remove(i))
    }

    /// Drops entries that own nothing.
    pub fn drop_empty(&mut self) {
        self.entries.retain(|e| !e.fields.is_empty());
    }

    /// Keeps at most `max` Update entries: the oldest are merged, per apiVersion, into an
    /// `ancient-changes` entry (upstream `capManagersManager.capUpdateManagers`).
    pub fn cap_updates(&mut self, max: usize) {
        let mut updaters: Vec<(i64, String, Identity)> = self
            .entries
            .iter()
            .filter(|e| e.id.operation == Operation::Update)
            .map(|e| {
                (
                    e.time.map_or(0, |t| t.as_second()),
                    e.id.key(),
                    e.id.clone(),
                )
            })
            .collect();
        if updaters.len() <= max {
            return;
        }
        updaters.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut length = updaters.len();
        let mut first_of_version: Vec<(String, Identity)> = Vec::new();
        for (_, _, id) in updaters {
            if length <= max {
                break;
            }
            let Some(entry) = self.get(&id).cloned() else {
                continue;
            };
            let version = entry.api_version.clone();
            let bucket = Identity::update(ANCIENT_CHANGES, &version, "");
            match first_of_version.iter().find(|(v, _)| *v == version) {
                Some((_, first)) => {
                    if self.get(&bucket).is_none() {
                        if let Some(f) = self.get_mut(first) {
                            f.id = bucket.clone();
                        }
                    }
                    self.remove(&id);
                    if let Some(b) = self.get_mut(&bucket) {
                        b.fields.union_with(&entry.fields);
                        b.time = entry.time;
                    }
                    length -= 1;
                }
                None => first_of_version.push((version, id)),
            }
        }
    }

    /// The wire form, sorted as upstream (`sortEncodedManagedFields`); `None` when empty.
    pub fn encode(&self) -> Option<Vec<ManagedFieldsEntry>> {
        if self.entries.is_empty() {
            return None;
        }
        let mut sorted: Vec<&Entry> = self.entries.iter().collect();
        sorted.sort_by(|a, b| {
            let time = |e: &Entry| e.time.map_or(0, |t| t.as_second());
            (
                a.id.operation,
                time(a),
                &a.id.manager,
                &a.api_version,
                &a.id.subresource,
            )
                .cmp(&(
                    b.id.operation,
                    time(b),
                    &b.id.manager,
                    &b.api_version,
                    &b.id.subresource,
                ))
        });
        Some(
            sorted
                .into_iter()
                .map(|e| ManagedFieldsEntry {
                    manager: (!e.id.manager.is_empty()).then(|| e.id.manager.clone()),
                    operation: Some(e.id.operation.as_str().into()),
                    api_version: Some(e.api_version.clone()),
                    time: e.time.map(Time),
                    fields_type: Some("FieldsV1".into()),
                    fields_v1: Some(FieldsV1(e.fields.to_fields_v1())),
                    subresource: (!e.id.subresource.is_empty()).then(|| e.id.subresource.clone()),
                })
                .collect(),
        )
    }

    /// [`Self::encode`] as JSON (`null` when empty).
    pub fn encode_json(&self) -> Value {
        serde_json::to_value(self.encode()).unwrap_or(Value::Null)
    }
}

/// Records an Update (upstream `managedFieldsUpdater.Update` over `merge.Updater.Update`,
/// then `capManagersManager`): what `cmp` added or modified moves from every entry to `id`'s,
/// whose time becomes `now`; what it removed leaves every entry.
pub fn record_update(
    managed: &mut Managed,
    cmp: &Comparison,
    id: &Identity,
    api_version: &str,
    now: Option<Timestamp>,
) {
    let changed = cmp.changed();
    for e in &mut managed.entries {
        e.fields.remove_all(&changed);
        e.fields.remove_all(&cmp.removed);
    }
    let mut taken = changed;
    taken.remove_all(&cmp.removed);
    if !taken.is_empty() {
        match managed.get_mut(id) {
            Some(e) => {
                e.fields.union_with(&taken);
                e.api_version = api_version.to_string();
                e.time = now;
            }
            None => managed.entries.push(Entry {
                id: id.clone(),
                api_version: api_version.to_string(),
                fields: taken,
                time: now,
            }),
        }
    }
    managed.drop_empty();
    managed.cap_updates(MAX_UPDATE_MANAGERS);
}

/// Who makes an Update write.
#[derive(Debug, Clone, Copy, Default)]
pub struct Writer<'a> {
    /// The manager (`fieldManager` or the User-Agent prefix); `None` or empty: `unknown`.
    pub manager: Option<&'a str>,
    /// The subresource written through (`status`, `scale`, `finalize`).
    pub subresource: Option<&'a str>,
}

impl Writer<'_> {
    fn name(&self) -> &str {
        self.manager
            .filter(|m| !m.is_empty())
            .unwrap_or(UNKNOWN_MANAGER)
    }
}

/// The scope of a write to `info` through `subresource`.
pub fn scope_of(info: Resource, subresource: Option<&str>) -> Scope {
    match subresource {
        None => Scope {
            no_status: crate::rest::meta::has_status(info),
            no_spec_finalizers: info.kind == "Namespace" && info.group.is_empty(),
            ..Scope::default()
        },
        sub => scope_of_unknown(sub),
    }
}

/// The scope of a write to a kind the registry does not know.
pub fn scope_of_unknown(subresource: Option<&str>) -> Scope {
    Scope {
        status_only: subresource == Some("status"),
        ..Scope::default()
    }
}

/// The schema root of `info`: a built-in kind's, the `openAPIV3Schema` of `custom`, the
/// custom resource the server serves `info` as ([`crate::crd::openapi::apply_schema`]), or
/// unknown (a custom resource without schema).
pub fn schema_of(
    info: Resource,
    custom: Option<&crate::crd::CustomResource>,
) -> SchemaNode<'static> {
    let schemas = Schemas::builtin();
    schemas
        .root(info.group, info.version, info.kind)
        .or_else(|| custom.and_then(crate::crd::openapi::apply_schema))
        .unwrap_or_else(|| SchemaNode::unknown(schemas))
}

/// The metadata fields that can be owned, borrowed for the walk (the rest is stripped).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OwnableMeta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a std::collections::BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_grace_period_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_timestamp: Option<&'a Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finalizers: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generate_name: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a std::collections::BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_references:
        Option<&'a Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
}

fn ownable_meta(m: &ObjectMeta) -> Value {
    serde_json::to_value(OwnableMeta {
        annotations: m.annotations.as_ref(),
        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
        deletion_timestamp: m.deletion_timestamp.as_ref(),
        finalizers: m.finalizers.as_ref(),
        generate_name: m.generate_name.as_ref(),
        labels: m.labels.as_ref(),
        owner_references: m.owner_references.as_ref(),
    })
    .unwrap_or(Value::Null)
}

/// Whether a request's `managedFields` asks to clear them: `[]` or `[{}]`.
fn is_reset(mf: &[ManagedFieldsEntry]) -> bool {
    mf.is_empty() || (mf.len() == 1 && mf[0] == ManagedFieldsEntry::default())
}

/// Records an Update write of `new` (over `old`, `None` for a create) by `writer` in
/// `new.metadata.managedFields` (upstream `FieldManager.Update` with the default chain);
/// `custom` is the custom resource the server serves `info` as, if it is one ([`schema_of`]).
/// `now` is the server's clock; a write through `scale` records no time, as upstream's
/// `ScaleHandler` (which takes the entries' times from the parent object's entries).
pub fn update_object(
    info: Resource,
    custom: Option<&crate::crd::CustomResource>,
    old: Option<&DynamicObject>,
    new: &mut DynamicObject,
    writer: &Writer<'_>,
    now: Timestamp,
) {
    let old_managed = || {
        old.and_then(|o| o.metadata.managed_fields.as_deref())
            .map(|mf| Managed::decode(mf).unwrap_or_default())
            .unwrap_or_default()
    };
    let sent = new.metadata.managed_fields.take();
    let mut managed = match (&sent, writer.subresource) {
        (_, Some(_)) | (None, None) => old_managed(),
        (Some(mf), None) if is_reset(mf) => Managed::default(),
        (Some(mf), None) => match Managed::decode(mf) {
            Ok(m) if !m.is_empty() => m,
            _ => old_managed(),
        },
    };
    if managed.is_empty() && old.is_some() {
        // An object without entries is tracked again only once applied to.
        return;
    }
    let api_version = info.api_version();
    let old_meta = old.map(|o| ownable_meta(&o.metadata));
    let new_meta = ownable_meta(&new.metadata);
    let cmp = typed::compare(
        old.map(|o| Object {
            metadata: old_meta.as_ref(),
            fields: &o.data,
        }),
        Object {
            metadata: Some(&new_meta),
            fields: &new.data,
        },
        schema_of(info, custom),
        scope_of(info, writer.subresource),
    );
    let id = Identity::update(
        writer.name(),
        &api_version,
        writer.subresource.unwrap_or(""),
    );
    let time = (writer.subresource != Some("scale")).then_some(now);
    record_update(&mut managed, &cmp, &id, &api_version, time);
    new.metadata.managed_fields = managed.encode();
}

/// Checks a `fieldManager` (upstream `ValidateFieldManager`): at most 128 bytes of printable
/// characters. `options` names the request's options kind (`CreateOptions`, `UpdateOptions`,
/// `PatchOptions`) as the 422 does.
pub fn validate_manager(manager: Option<&str>, options: &str) -> Result<(), ApiError> {
    let Some(m) = manager else { return Ok(()) };
    let mut causes = Vec::new();
    if m.len() > FIELD_MANAGER_MAX_LENGTH {
        causes.push(StatusCause {
            field: Some("fieldManager".into()),
            reason: Some("FieldValueTooLong".into()),
            message: Some(format!(
                "Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes"
            )),
        });
    }
    for (i, c) in m.char_indices() {
        if !is_print(c) {
            causes.push(StatusCause {
                field: Some("fieldManager".into()),
                reason: Some("FieldValueInvalid".into()),
                message: Some(format!(
                    "Invalid value: {}: invalid character U+{:04X} (at position {i})",
                    serde_json::to_string(m).unwrap_or_default(),
                    c as u32
                )),
            });
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    let mut e = ApiError::invalid(&format!("{options}.meta.k8s.io"), "", causes);
    if let Some(d) = &mut e.details {
        d.kind = Some(options.into());
        d.group = Some("meta.k8s.io".into());
    }
    Err(e)
}

/// Go's `unicode.IsPrint`, near enough: no control, format or whitespace characters but the
/// ASCII space.
fn is_print(c: char) -> bool {
    c == ' ' || !(c.is_control() || c.is_whitespace() || ('\u{200b}'..='\u{200f}').contains(&c))
}

/// The manager of a request without `fieldManager`: the User-Agent up to its first `/`,
/// printable characters only, at most 128 bytes (upstream `prefixFromUserAgent`).
pub fn prefix_from_user_agent(user_agent: &str) -> String {
    let head = user_agent.split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in head.chars().filter(|c| is_print(*c)) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

/// The fields client-side apply may hand over to the `kubectl` applier without a conflict
/// (upstream `lastAppliedManager.allowedConflictsFromLastApplied`): those of the
/// `last-applied-configuration` annotation whose value equals the live one. `None` without a
/// usable annotation (or one of another apiVersion).
pub fn last_applied_allowed(
    live: &Value,
    api_version: &str,
    schema: SchemaNode<'_>,
    scope: Scope,
) -> Option<FieldSet> {
    let text = live
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED)?
        .as_str()
        .filter(|s| !s.is_empty())?;
    let last: Value = serde_json::from_str(text).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    let mut allowed = typed::field_set(Object::of(&last), schema, scope);
    let cmp = typed::compare(Some(Object::of(&last)), Object::of(live), schema, scope);
    allowed.remove_all(&cmp.modified);
    allowed.remove_all(&cmp.added);
    allowed.remove_all(&cmp.removed);
    Some(allowed)
}

/// The `last-applied-configuration` the `kubectl` applier leaves (upstream
/// `lastappliedupdater.go`): the applied configuration without that annotation, as compact
/// JSON with sorted keys and a final newline, like Go's encoder of unstructured objects.
pub fn last_applied_of(config: &Value) -> String {
    let mut c = config.clone();
    if let Some(a) = c
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            if let Some(m) = c.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("annotations");
            }
        }
    }
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect::<Map<String, Value>>(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let mut s = serde_json::to_string(&sorted(&c)).unwrap_or_default();
    s.push('\n');
    s
}

/// A 409 for apply conflicts (upstream `NewConflictError`): one `FieldManagerConflict` cause
/// per field; the message names each manager and its fields.
pub fn conflict_error(conflicts: &[(Identity, FieldPath)]) -> ApiError {
    let message = if let [(id, path)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {path}",
            id.describe()
        )
    } else {
        let mut by_manager: Vec<(String, &Identity, Vec<&FieldPath>)> = Vec::new();
        for (id, path) in conflicts {
            match by_manager.iter_mut().find(|(_, i, _)| *i == id) {
                Some((_, _, paths)) => paths.push(path),
                None => by_manager.push((id.key(), id, vec![path])),
            }
        }
        by_manager.sort_by(|a, b| a.0.cmp(&b.0));
        let mut lines = Vec::new();
        for (_, id, paths) in by_manager {
            lines.push(format!("conflicts with {}:", id.describe()));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let mut e = ApiError::new(409, reason::CONFLICT, message);
    e.details = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
            causes: Some(
                conflicts
                    .iter()
                    .map(|(id, path)| StatusCause {
                        reason: Some("FieldManagerConflict".into()),
                        message: Some(format!("conflict with {}", id.describe())),
                        field: Some(path.to_string()),
                    })
                    .collect(),
            ),
            ..Default::default()
        },
    );
    e
}

#[cfg(test)]
mod tests;
