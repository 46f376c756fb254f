//! The fields of an object and the difference between two objects, read through the kind's
//! schema.
//!
//! Model: upstream `sigs.k8s.io/structured-merge-diff/typed` (`tofieldset.go`, `compare.go`,
//! `helpers.go`): a map is granular unless `x-kubernetes-map-type: atomic`; a list is atomic
//! unless it is a `set` (elements `v:…`) or a `map` list keyed by its `x-kubernetes-list-map-keys`
//! (or the patch merge key; elements `k:{…}`); a value without schema is granular if a map and
//! atomic if a list. Atomic values, scalars and empty maps/lists are leaves.
//!
//! One deviation, for lack of Go types: upstream compares against the typed Go object, where
//! value (non-pointer) structs and fields without `omitempty` always exist, so they are never
//! recorded as added (`".": {}`). Here a struct-valued field is treated as such a value struct
//! when its name is in [`VALUE_STRUCT_FIELDS`], and a list or map as always present when its
//! parent's schema lists it as `required` (the OpenAPI form of "no `omitempty`").
//!
//! Work is proportional to the size of the objects walked (one pass; list elements are indexed
//! by key).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::fieldset::{FieldSet, Segment};
use crate::schema::SchemaNode;

/// Struct fields that are value (non-pointer) structs in the upstream Go types, so present in
/// every typed object (`metadata`, `spec`, `status`, pod templates, strategies, container
/// `resources`, …).
pub const VALUE_STRUCT_FIELDS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "jobTemplate",
    "strategy",
    "updateStrategy",
    "resources",
    "loadBalancer",
    "daemonEndpoints",
    "kubeletEndpoint",
    "nodeInfo",
    "scaleTargetRef",
    "involvedObject",
    "source",
    "names",
];

/// Metadata fields no manager ever owns (upstream `stripmeta.go`).
pub const STRIPPED_META: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// Which parts of an object a write's field sets cover: everything but the stripped metadata
/// ([`STRIPPED_META`], `apiVersion`, `kind`) and the fields the write's strategy resets
/// (upstream `GetResetFields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope {
    /// `status` is reset (the main resource of a kind with a status subresource).
    pub no_status: bool,
    /// Only `status` counts (the status subresource).
    pub status_only: bool,
    /// `spec.finalizers` is reset (the main resource of a Namespace: only `/finalize` sets it).
    pub no_spec_finalizers: bool,
}

impl Scope {
    fn skips_root(&self, key: &str) -> bool {
        matches!(key, "apiVersion" | "kind")
            || (self.no_status && key == "status")
            || (self.status_only && key != "status")
    }
}

/// What changed between two objects: leaves and owned nodes added, modified and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Present only in the new object.
    pub added: FieldSet,
    /// Leaves present in both with different values.
    pub modified: FieldSet,
    /// Present only in the old object.
    pub removed: FieldSet,
}

impl Comparison {
    /// `added ∪ modified`: what a writer takes over.
    pub fn changed(&self) -> FieldSet {
        let mut s = self.added.clone();
        s.union_with(&self.modified);
        s
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// An object as the walk sees it: its metadata and its other top-level fields (either may
/// hold `apiVersion`/`kind`, which are skipped).
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    /// `metadata`.
    pub metadata: Option<&'a Value>,
    /// The top-level fields (a `metadata` key here is ignored).
    pub fields: &'a Map<String, Value>,
}

impl<'a> Object<'a> {
    /// The view of a JSON object (`{}` for anything else).
    pub fn of(v: &'a Value) -> Self {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        Self {
            metadata: v.get("metadata"),
            fields: v.as_object().unwrap_or_else(|| EMPTY.get_or_init(Map::new)),
        }
    }
}

/// How one value is to be walked, from its schema and its parent's.
#[derive(Clone, Copy)]
struct Node<'a> {
    /// The value's schema (for a list: its elements' schema).
    schema: SchemaNode<'a>,
    /// The property schema in the parent (carries `x-kubernetes-list-type` and friends).
    prop: Option<&'a Value>,
    /// The patch merge key of a list.
    merge_key: Option<&'a str>,
    /// Whether the node itself is recorded when added or removed (`".": {}`).
    owned: bool,
}

fn ext<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    v?.get(key)?.as_str()
}

impl<'a> Node<'a> {
    fn root(schema: SchemaNode<'a>) -> Self {
        Self {
            schema,
            prop: None,
            merge_key: None,
            owned: false,
        }
    }

    /// The node of field `key` of this map.
    fn child(&self, key: &str) -> Node<'a> {
        let (schema, _) = self.schema.field(key);
        let parent = self.schema.schema();
        let declared = parent
            .and_then(|s| s.get("properties"))
            .and_then(|p| p.get(key));
        let prop = declared.or_else(|| {
            parent
                .and_then(|s| s.get("additionalProperties"))
                .filter(|v| v.is_object())
        });
        let owned = if declared.is_some() {
            let required = parent
                .and_then(|s| s.get("required"))
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|f| f == key));
            !required && !VALUE_STRUCT_FIELDS.contains(&key)
        } else {
            true
        };
        Node {
            schema,
            prop,
            merge_key: ext(prop, "x-kubernetes-patch-merge-key"),
            owned,
        }
    }

    /// The node of an element of this list.
    fn element(&self) -> Node<'a> {
        Node {
            schema: self.schema,
            prop: None,
            merge_key: None,
            owned: true,
        }
    }

    fn map_atomic(&self) -> bool {
        ext(self.prop, "x-kubernetes-map-type") == Some("atomic")
            || ext(self.schema.schema(), "x-kubernetes-map-type") == Some("atomic")
    }

    /// How a list is tracked.
    fn list_kind(&self) -> ListKind<'a> {
        let list_type = ext(self.prop, "x-kubernetes-list-type");
        if list_type == Some("atomic") {
            return ListKind::Atomic;
        }
        if list_type == Some("set") {
            return ListKind::Set;
        }
        let keys: Vec<&'a str> = self
            .prop
            .and_then(|p| p.get("x-kubernetes-list-map-keys"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !keys.is_empty() {
            return ListKind::Map(keys);
        }
        if let Some(k) = self.merge_key {
            return ListKind::Map(vec![k]);
        }
        let merge = ext(self.prop, "x-kubernetes-patch-strategy")
            .is_some_and(|s| s.split(',').any(|p| p.trim() == "merge"));
        if merge {
            ListKind::Set
        } else {
            ListKind::Atomic
        }
    }
}

enum ListKind<'a> {
    Atomic,
    Set,
    Map(Vec<&'a str>),
}

/// The `k:{…}` segment of a list element: its key fields sorted by name, values as JSON. A
/// missing `protocol` key is its OpenAPI default, `TCP`; `None` when no key field is present.
fn element_key(item: &Value, keys: &[&str]) -> Option<Segment> {
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    let mut parts = Vec::with_capacity(sorted.len());
    let tcp = Value::String("TCP".into());
    for k in sorted {
        let v = match item.get(k) {
            Some(v) => v,
            None if k == "protocol" => &tcp,
            None => continue,
        };
        parts.push(format!(
            "{}:{v}",
            serde_json::to_string(k).unwrap_or_default()
        ));
    }
    (!parts.is_empty()).then(|| format!("k:{{{}}}", parts.join(",")))
}

fn set_element(v: &Value) -> Segment {
    format!("v:{v}")
}

fn is_empty_container(v: Option<&Value>) -> bool {
    match v {
        None => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// The field set of a configuration (upstream `TypedValue.ToFieldSet`): every leaf, every list
/// element and every entry of a map that is not a struct.
pub fn field_set(obj: Object<'_>, schema: SchemaNode<'_>, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    let root = Node::root(schema);
    for (k, v) in root_fields(obj, None, scope) {
        let Some(v) = v.1 else { continue };
        let node = root.child(k);
        path.push(format!("f:{k}"));
        if k == "metadata" {
            meta_fields(v, node, &mut path, &mut out);
        } else {
            to_set(v, node, &mut path, &mut out);
            if k == "spec" && scope.no_spec_finalizers {
                let mut fin = FieldSet::new();
                fin.insert(&["f:spec".into(), "f:finalizers".into()]);
                out.remove_recursive(&fin);
            }
        }
        path.pop();
    }
    out
}

fn meta_fields(meta: &Value, node: Node<'_>, path: &mut Vec<Segment>, out: &mut FieldSet) {
    let Some(m) = meta.as_object() else { return };
    for (k, v) in m {
        if STRIPPED_META.contains(&k.as_str()) {
            continue;
        }
        path.push(format!("f:{k}"));
        to_set(v, node.child(k), path, out);
        path.pop();
    }
}

fn to_set(v: &Value, node: Node<'_>, path: &mut Vec<Segment>, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !node.map_atomic() => {
            let fields = node.schema.schema().and_then(|s| s.get("properties"));
            for (k, child) in m {
                path.push(format!("f:{k}"));
                to_set(child, node.child(k), path, out);
                // Entries of maps that are not structs are members (upstream `FindField`).
                if fields.is_none_or(|f| f.get(k).is_none()) {
                    out.insert(path);
                }
                path.pop();
            }
        }
        Value::Array(items) => match node.list_kind() {
            ListKind::Atomic => out.insert(path),
            ListKind::Set => {
                for item in items {
                    path.push(set_element(item));
                    out.insert(path);
                    path.pop();
                }
            }
            ListKind::Map(keys) => {
                for item in items {
                    let Some(seg) = element_key(item, &keys) else {
                        continue;
                    };
                    path.push(seg);
                    to_set(item, node.element(), path, out);
                    out.insert(path);
                    path.pop();
                }
            }
        },
        _ => out.insert(path),
    }
}

/// The old and the new value of one field.
type Pair<'a> = (Option<&'a Value>, Option<&'a Value>);

/// The top-level pairs `(key, (old, new))` of two objects within `scope`, `metadata` first.
fn root_fields<'a>(
    new: Object<'a>,
    old: Option<Object<'a>>,
    scope: Scope,
) -> Vec<(&'a str, Pair<'a>)> {
    let mut out = Vec::new();
    let old_meta = old.and_then(|o| o.metadata);
    if (new.metadata.is_some() || old_meta.is_some()) && !scope.status_only {
        out.push(("metadata", (old_meta, new.metadata)));
    }
    for (k, v) in new.fields {
        if k == "metadata" || scope.skips_root(k) {
            continue;
        }
        out.push((k.as_str(), (old.and_then(|o| o.fields.get(k)), Some(v))));
    }
    if let Some(o) = old {
        for (k, v) in o.fields {
            if k == "metadata" || scope.skips_root(k) || new.fields.contains_key(k) {
                continue;
            }
            out.push((k.as_str(), (Some(v), None)));
        }
    }
    out
}

/// Compares two objects (upstream `TypedValue.Compare`): leaves added, modified or removed,
/// and owned nodes (list elements, map entries, lists and maps that may be absent) added or
/// removed. `old` is `None` for a create.
pub fn compare(
    old: Option<Object<'_>>,
    new: Object<'_>,
    schema: SchemaNode<'_>,
    scope: Scope,
) -> Comparison {
    let mut w = Walker {
        out: Comparison::default(),
        path: Vec::new(),
    };
    let root = Node::root(schema);
    for (k, (l, r)) in root_fields(new, old, scope) {
        let node = root.child(k);
        w.path.push(format!("f:{k}"));
        if k == "metadata" {
            w.metadata(l, r, node);
        } else {
            w.compare(l, r, node);
        }
        w.path.pop();
    }
    if scope.no_spec_finalizers {
        let mut fin = FieldSet::new();
        fin.insert(&["f:spec".into(), "f:finalizers".into()]);
        w.out.added.remove_recursive(&fin);
        w.out.modified.remove_recursive(&fin);
        w.out.removed.remove_recursive(&fin);
    }
    w.out
}

struct Walker {
    out: Comparison,
    path: Vec<Segment>,
}

impl Walker {
    fn leaf(&mut self, l: Option<&Value>, r: Option<&Value>) {
        match (l, r) {
            (None, Some(_)) => self.out.added.insert(&self.path),
            (Some(_), None) => self.out.removed.insert(&self.path),
            (Some(a), Some(b)) if a != b => self.out.modified.insert(&self.path),
            _ => {}
        }
    }

    /// The node itself, after its children (upstream's post-item hook).
    fn own(&mut self, l: Option<&Value>, r: Option<&Value>, node: Node<'_>) {
        if !node.owned {
            return;
        }
        match (l, r) {
            (None, Some(_)) => self.out.added.insert(&self.path),
            (Some(_), None) => self.out.removed.insert(&self.path),
            _ => {}
        }
    }

    fn metadata(&mut self, l: Option<&Value>, r: Option<&Value>, node: Node<'_>) {
        let lm = l.and_then(Value::as_object);
        let rm = r.and_then(Value::as_object);
        let keys = union_keys(lm, rm);
        for k in keys {
            if STRIPPED_META.contains(&k) {
                continue;
            }
            self.path.push(format!("f:{k}"));
            self.compare(
                lm.and_then(|m| m.get(k)),
                rm.and_then(|m| m.get(k)),
                node.child(k),
            );
            self.path.pop();
        }
    }

    fn compare(&mut self, l: Option<&Value>, r: Option<&Value>, node: Node<'_>) {
        let both_empty = is_empty_container(l) && is_empty_container(r);
        let is_map = |v: Option<&Value>| v.is_none_or(Value::is_object);
        let is_list = |v: Option<&Value>| v.is_none_or(Value::is_array);
        if both_empty {
            return self.leaf(l, r);
        }
        if is_map(l) && is_map(r) && !node.map_atomic() {
            let lm = l.and_then(Value::as_object);
            let rm = r.and_then(Value::as_object);
            for k in union_keys(lm, rm) {
                self.path.push(format!("f:{k}"));
                self.compare(
                    lm.and_then(|m| m.get(k)),
                    rm.and_then(|m| m.get(k)),
                    node.child(k),
                );
                self.path.pop();
            }
            return self.own(l, r, node);
        }
        if is_list(l) && is_list(r) {
            let la = l
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let ra = r
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            match node.list_kind() {
                ListKind::Atomic => return self.leaf(l, r),
                ListKind::Set => {
                    let lset: HashMap<Segment, ()> =
                        la.iter().map(|v| (set_element(v), ())).collect();
                    let rset: HashMap<Segment, ()> =
                        ra.iter().map(|v| (set_element(v), ())).collect();
                    for seg in lset.keys().filter(|s| !rset.contains_key(*s)) {
                        self.path.push(seg.clone());
                        self.out.removed.insert(&self.path);
                        self.path.pop();
                    }
                    for seg in rset.keys().filter(|s| !lset.contains_key(*s)) {
                        self.path.push(seg.clone());
                        self.out.added.insert(&self.path);
                        self.path.pop();
                    }
                }
                ListKind::Map(keys) => {
                    let index = |a: &[Value]| -> Vec<(Segment, usize)> {
                        let mut seen = HashMap::new();
                        a.iter()
                            .enumerate()
                            .filter_map(|(i, item)| {
                                let k = element_key(item, &keys)?;
                                seen.insert(k.clone(), ()).is_none().then_some((k, i))
                            })
                            .collect()
                    };
                    let li = index(la);
                    let ri = index(ra);
                    let lmap: HashMap<&Segment, usize> = li.iter().map(|(k, i)| (k, *i)).collect();
                    let rmap: HashMap<&Segment, usize> = ri.iter().map(|(k, i)| (k, *i)).collect();
                    let elem = node.element();
                    for (k, i) in &ri {
                        self.path.push(k.clone());
                        self.compare(lmap.get(k).map(|j| &la[*j]), Some(&ra[*i]), elem);
                        self.path.pop();
                    }
                    for (k, i) in &li {
                        if rmap.contains_key(k) {
                            continue;
                        }
                        self.path.push(k.clone());
                        self.compare(Some(&la[*i]), None, elem);
                        self.path.pop();
                    }
                }
            }
            return self.own(l, r, node);
        }
        self.leaf(l, r)
    }
}

fn union_keys<'a>(
    l: Option<&'a Map<String, Value>>,
    r: Option<&'a Map<String, Value>>,
) -> Vec<&'a str> {
    let mut keys: Vec<&str> = r
        .into_iter()
        .flat_map(|m| m.keys())
        .map(String::as_str)
        .collect();
    if let Some(l) = l {
        keys.extend(
            l.keys()
                .map(String::as_str)
                .filter(|k| r.is_none_or(|r| !r.contains_key(*k))),
        );
    }
    keys
}
