//! Strategic merge patch (`application/strategic-merge-patch+json`), applied on the server.
//!
//! A port of upstream's `StrategicMergePatch` as the API server runs it
//! (`k8s.io/apimachinery/pkg/util/strategicpatch/patch.go`, `mergeMap` with
//! `MergeParallelList: true, IgnoreUnmatchedNulls: true`):
//!
//! - maps merge key by key; `null` deletes a key;
//! - a list merges only when its field has `patchStrategy: merge` (from [`crate::schema`]):
//!   lists of objects by their merge key (`containers` by `name`, `ports` by `containerPort`),
//!   lists of scalars as a set union; every other list is replaced;
//! - directives: `$patch: replace` / `$patch: delete` in a map, `{"$patch": "replace"}` and
//!   `{"$patch": "delete", <key>: v}` elements in a merged list, `$setElementOrder/<list>`,
//!   `$retainKeys`, `$deleteFromPrimitiveList/<list>`. Like upstream, `$patch: merge` is
//!   rejected (it is the default and "merging lists cannot yet be specified in the patch").
//!
//! The result's list order follows upstream: `$setElementOrder` first, then the order in the
//! patch, then the order in the live object.
//!
//! ```
//! # use orch_apiserver::{patch::strategic::strategic_merge, schema::Schemas};
//! # use serde_json::json;
//! let live = json!({"spec": {"containers": [{"name": "a", "image": "x:1", "ports": [{"containerPort": 80}]}]}});
//! let patch = json!({"spec": {"containers": [{"name": "a", "image": "x:2"}]}});
//! let pod = Schemas::builtin().root("", "v1", "Pod").unwrap();
//! let out = strategic_merge(&live, &patch, pod).unwrap();
//! assert_eq!(out["spec"]["containers"][0]["image"], "x:2");
//! assert_eq!(out["spec"]["containers"][0]["ports"][0]["containerPort"], 80);
//! ```

use serde_json::{Map, Value};

use crate::schema::SchemaNode;

const DIRECTIVE: &str = "$patch";
const REPLACE: &str = "replace";
const DELETE: &str = "delete";
const MERGE: &str = "merge";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Why a strategic merge patch cannot be applied (messages as upstream's `mergepatch` errors).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SmpError {
    /// The patch or the object is not a JSON object.
    #[error("invalid JSON document")]
    BadJsonDoc,
    /// Unknown `$patch` value.
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType {
        /// The directive's value.
        directive: String,
        /// The map holding it.
        map: String,
    },
    /// `$patch: merge` on a list element.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// A list element lacks its merge key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey {
        /// The element.
        map: String,
        /// The merge key.
        key: String,
    },
    /// A list of lists.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// Elements of different types in one merged list.
    #[error("list element types are not identical: {0}")]
    MixedListTypes(String),
    /// A list of objects marked `merge` but without merge key.
    #[error("cannot merge lists without merge key for {0}")]
    MissingMergeKey(String),
    /// Malformed `$retainKeys`, or a patch key not listed in it.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// A `$setElementOrder` key without `/<list>`.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// The patch list's order disagrees with `$setElementOrder`.
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    OrderMismatch {
        /// The patch list.
        patch: String,
        /// The `$setElementOrder` list.
        order: String,
    },
    /// A `$deleteFromPrimitiveList` key without `/<list>`.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// A value of the wrong JSON type where a map or list is required.
    #[error("expected a {expected}, but received a {got}")]
    BadArgType {
        /// What was expected.
        expected: &'static str,
        /// What was found.
        got: &'static str,
    },
}

/// Applies `patch` to `original` following `schema` (a kind's root from
/// [`crate::schema::Schemas::root`], or [`SchemaNode::unknown`] for plain JSON semantics).
pub fn strategic_merge(
    original: &Value,
    patch: &Value,
    schema: SchemaNode<'_>,
) -> Result<Value, SmpError> {
    let (Value::Object(o), Value::Object(p)) = (original, patch) else {
        return Err(SmpError::BadJsonDoc);
    };
    merge_map(o.clone(), p.clone(), schema).map(Value::Object)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: SchemaNode<'_>,
) -> Result<Map<String, Value>, SmpError> {
    if let Some(d) = patch.get(DIRECTIVE) {
        return match d.as_str() {
            Some(REPLACE) => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some(DELETE) => Ok(Map::new()),
            _ => Err(SmpError::BadPatchType {
                directive: d.as_str().map_or_else(|| d.to_string(), str::to_string),
                map: Value::Object(patch.clone()).to_string(),
            }),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, schema)?;

    for (key, patch_v) in patch {
        // Like upstream (`preprocessDeletionListForMerging`), an empty list name keeps the
        // directive key itself, which names no live field.
        let (key, is_delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(rest) => match rest.strip_prefix('/') {
                Some("") => (key, true),
                Some(k) => (k.to_string(), true),
                None => return Err(SmpError::BadPrimitiveList),
            },
            None => (key, false),
        };
        if patch_v.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(orig_v) = original.get_mut(&key) else {
            if !is_delete_list {
                let mut v = patch_v;
                discard_nulls(&mut v);
                if let Some(v) = remove_directives(v) {
                    original.insert(key, v);
                }
            }
            continue;
        };
        if !same_type(orig_v, &patch_v) {
            if !is_delete_list {
                let mut v = patch_v;
                discard_nulls(&mut v);
                match remove_directives(v) {
                    Some(v) => *orig_v = v,
                    None => {
                        original.remove(&key);
                    }
                }
            }
            continue;
        }
        match patch_v {
            Value::Object(p) => {
                let (sub, meta) = schema.field(&key);
                let Value::Object(o) = std::mem::take(orig_v) else {
                    unreachable_type()?
                };
                *orig_v = Value::Object(if meta.replace {
                    p
                } else {
                    merge_map(o, p, sub)?
                });
            }
            Value::Array(p) => {
                let (sub, meta) = schema.field(&key);
                let Value::Array(o) = std::mem::take(orig_v) else {
                    unreachable_type()?
                };
                *orig_v = Value::Array(if meta.merge || is_delete_list {
                    merge_slice(o, p, sub, meta.merge_key.as_deref(), is_delete_list, &key)?
                } else {
                    p
                });
            }
            scalar => *orig_v = scalar,
        }
    }
    Ok(original)
}

/// `same_type` guarantees the variants match; this keeps the code panic-free anyway.
fn unreachable_type<T>() -> Result<T, SmpError> {
    Err(SmpError::BadJsonDoc)
}

/// `$retainKeys`: drop every key of `original` not listed (upstream `applyRetainKeysDirective`).
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), SmpError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(list) = retain else {
        return Err(SmpError::BadRetainKeys);
    };
    let keep = |k: &str| list.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !keep(k) {
            return Err(SmpError::BadRetainKeys);
        }
    }
    original.retain(|k, _| keep(k));
    Ok(())
}

/// `$setElementOrder/<list>` together with `<list>` (upstream `mergePatchIntoOriginal`).
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: SchemaNode<'_>,
) -> Result<(), SmpError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let Some(order_v) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order_v else {
            return Err(SmpError::BadArgType {
                expected: "slice",
                got: type_name(&order_v),
            });
        };
        let list_key = match key[SET_ELEMENT_ORDER.len()..].strip_prefix('/') {
            Some(k) => k.to_string(),
            None => return Err(SmpError::BadSetElementOrder),
        };
        let original_list = match original.get(&list_key) {
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => {
                return Err(SmpError::BadArgType {
                    expected: "slice",
                    got: type_name(other),
                })
            }
            None => None,
        };
        let patch_list = match patch.get(&list_key) {
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => {
                return Err(SmpError::BadArgType {
                    expected: "slice",
                    got: type_name(other),
                })
            }
            None => None,
        };
        let (sub, meta) = schema.field(&list_key);
        let merge_key = meta.merge_key.as_deref();
        validate_patch_with_order(patch_list.as_deref().unwrap_or(&[]), &order, merge_key)?;
        let mut merged_order = None;
        let merged = match (&original_list, &patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => match remove_directives(Value::Array(p.clone())) {
                Some(Value::Array(a)) => a,
                _ => continue,
            },
            (Some(o), Some(p)) => {
                if meta.merge {
                    let (m, unsorted) =
                        merge_slice_inner(o.clone(), p.clone(), sub, merge_key, false, &list_key)?;
                    merged_order = unsorted;
                    m
                } else {
                    p.clone()
                }
            }
            (None, None) => continue,
        };
        let (patch_items, server_only) = partition(merged, &order, merge_key)?;
        let elem_is_map = element_is_map(
            original_list.as_deref().unwrap_or(&[]),
            patch_list.as_deref().unwrap_or(&[]),
        )?;
        // Upstream passes the live list here, but for lists of maps Go's in-place slice updates
        // have by then turned it into the merged list before ordering (deleted entries shifted
        // out, new ones appended); ordering by that list reproduces upstream's results.
        let server_order =
            merged_order.unwrap_or_else(|| original_list.clone().unwrap_or_default());
        let both = normalize_element_order(
            patch_items,
            server_only,
            &order,
            &server_order,
            merge_key,
            elem_is_map,
        )?;
        original.insert(list_key.clone(), Value::Array(both));
        patch.remove(&list_key);
    }
    Ok(())
}

fn validate_patch_with_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), SmpError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = if merge_key.is_some() {
        patch_list
            .iter()
            .filter(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some(DELETE))
            .collect()
    } else {
        patch_list.iter().collect()
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < non_delete.len() && oi < order.len() {
        if non_delete[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if merge_key_equal(non_delete[pi], &order[oi], merge_key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        return Err(SmpError::OrderMismatch {
            patch: Value::Array(patch_list.to_vec()).to_string(),
            order: Value::Array(order.to_vec()).to_string(),
        });
    }
    Ok(())
}

fn merge_key_equal(l: &Value, r: &Value, merge_key: Option<&str>) -> Result<bool, SmpError> {
    let Some(k) = merge_key else {
        return Ok(l == r);
    };
    Ok(key_of(l, k)? == key_of(r, k)?)
}

fn key_of<'v>(item: &'v Value, key: &str) -> Result<&'v Value, SmpError> {
    match item {
        Value::Object(m) => m.get(key).ok_or_else(|| SmpError::NoMergeKey {
            map: item.to_string(),
            key: key.to_string(),
        }),
        other => Err(SmpError::BadArgType {
            expected: "map",
            got: type_name(other),
        }),
    }
}

/// Whether the elements of both lists are maps (errors on mixed types and lists of lists).
fn element_is_map(a: &[Value], b: &[Value]) -> Result<bool, SmpError> {
    let mut first: Option<&Value> = None;
    for v in a.iter().chain(b) {
        match first {
            None => {
                if v.is_array() {
                    return Err(SmpError::ListOfLists);
                }
                first = Some(v);
            }
            Some(f) if !same_type(f, v) => {
                return Err(SmpError::MixedListTypes(format!(
                    "{} {}",
                    Value::Array(a.to_vec()),
                    Value::Array(b.to_vec())
                )))
            }
            Some(_) => {}
        }
    }
    Ok(first.is_some_and(Value::is_object))
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: SchemaNode<'_>,
    merge_key: Option<&str>,
    is_delete_list: bool,
    field: &str,
) -> Result<Vec<Value>, SmpError> {
    merge_slice_inner(original, patch, schema, merge_key, is_delete_list, field).map(|(m, _)| m)
}

/// Merges two lists; also returns, for lists of maps, the merged list before ordering.
fn merge_slice_inner(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: SchemaNode<'_>,
    merge_key: Option<&str>,
    is_delete_list: bool,
    field: &str,
) -> Result<(Vec<Value>, Option<Vec<Value>>), SmpError> {
    if original.is_empty() && patch.is_empty() {
        return Ok((original, None));
    }
    let is_map = element_is_map(&original, &patch)?;
    let (original_input, patch_input) = if is_map {
        (original.clone(), patch.clone())
    } else {
        (Vec::new(), Vec::new())
    };
    let (merged, original, patch) = if !is_map {
        if is_delete_list {
            let kept = original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect();
            return Ok((kept, None));
        }
        let mut both = original.clone();
        both.extend(patch.iter().cloned());
        (dedup_scalars(both), original, patch)
    } else {
        let Some(key) = merge_key else {
            return Err(SmpError::MissingMergeKey(field.to_string()));
        };
        let (original, patch) = merge_special_elements(original, patch, key)?;
        let merged = merge_without_special_elements(original.clone(), &patch, key, schema)?;
        // Upstream's `original` shares its backing array with `merged`, so merged elements
        // are what later ordering compares against; merge keys are unchanged either way.
        (merged, original, patch)
    };
    let mk = if is_map { merge_key } else { None };
    let unsorted = match (is_map, merge_key) {
        (true, Some(k)) => Some(go_aliased_view(&original_input, &patch_input, k)),
        _ => None,
    };
    let (patch_items, server_only) = partition(merged, &patch, mk)?;
    let sorted = normalize_element_order(patch_items, server_only, &patch, &original, mk, is_map)?;
    Ok((sorted, unsorted))
}

/// What upstream's caller still sees of the live list after `mergeSlice` on a list of maps.
///
/// `mergeSlice` deletes (`append(s[:i], s[i+1:]...)`) and appends in place while capacity
/// lasts, so the caller's slice header (original length) then shows the shifted and appended
/// elements, and `$setElementOrder` ordering compares against that. Decoded JSON arrays have
/// a power-of-two capacity (Go's append growth). Only merge keys matter for ordering.
fn go_aliased_view(original: &[Value], patch: &[Value], key: &str) -> Vec<Value> {
    let n = original.len();
    let cap = if n == 0 { 0 } else { n.next_power_of_two() };
    let mut backing: Vec<Value> = original.to_vec();
    backing.resize(cap, Value::Null);
    let mut len = n;
    let mut replace = false;
    for p in patch {
        match p.get(DIRECTIVE).and_then(Value::as_str) {
            Some(DELETE) => {
                let mv = p.get(key);
                while let Some(i) = backing[..len].iter().position(|o| o.get(key) == mv) {
                    // Shift left; Go leaves the old last element in the freed slot.
                    for j in i..len - 1 {
                        backing[j] = backing[j + 1].clone();
                    }
                    len -= 1;
                }
            }
            Some(REPLACE) => replace = true,
            _ => {}
        }
    }
    if !replace {
        let mut current: Vec<Option<Value>> =
            backing[..len].iter().map(|o| o.get(key).cloned()).collect();
        let mut shared = true;
        for p in patch.iter().filter(|p| p.get(DIRECTIVE).is_none()) {
            let mv = p.get(key).cloned();
            if current.contains(&mv) {
                continue;
            }
            current.push(mv);
            if shared && len < cap {
                backing[len] = p.clone();
                len += 1;
            } else {
                shared = false;
            }
        }
    }
    backing.truncate(n);
    backing
}

/// Go's `deduplicateScalars` (keeps its element order exactly).
fn dedup_scalars(mut s: Vec<Value>) -> Vec<Value> {
    if s.is_empty() {
        return s;
    }
    let mut length = s.len() - 1;
    let mut i = 0;
    while i < length {
        let mut j = i + 1;
        while j <= length {
            if s[i] == s[j] {
                s[j] = s[length].clone();
                s.truncate(length);
                length -= 1;
                continue;
            }
            j += 1;
        }
        i += 1;
    }
    s
}

/// Handles `{"$patch": ...}` elements; returns the (possibly shortened or replaced) original
/// and the patch without special elements.
fn merge_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), SmpError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for v in patch {
        let Some(d) = v.get(DIRECTIVE) else {
            plain.push(v);
            continue;
        };
        match d.as_str() {
            Some(DELETE) => {
                let mv = key_of(&v, key)?.clone();
                let mut kept = Vec::with_capacity(original.len());
                for o in original {
                    match o.as_object() {
                        Some(m) if m.get(key) == Some(&mv) => {}
                        Some(_) => kept.push(o),
                        None => {
                            return Err(SmpError::BadArgType {
                                expected: "map",
                                got: type_name(&o),
                            })
                        }
                    }
                }
                original = kept;
            }
            Some(REPLACE) => replace = true,
            Some(MERGE) => return Err(SmpError::MergeDirectiveInList),
            _ => {
                return Err(SmpError::BadPatchType {
                    directive: d.as_str().map_or_else(|| d.to_string(), str::to_string),
                    map: v.to_string(),
                })
            }
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

fn merge_without_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    schema: SchemaNode<'_>,
) -> Result<Vec<Value>, SmpError> {
    for v in patch {
        let mv = key_of(v, key)?;
        let mut found = None;
        for (i, o) in original.iter().enumerate() {
            match o {
                Value::Object(m) => {
                    if m.get(key) == Some(mv) {
                        found = Some(i);
                        break;
                    }
                }
                other => {
                    return Err(SmpError::BadArgType {
                        expected: "map",
                        got: type_name(other),
                    })
                }
            }
        }
        let Value::Object(pm) = v else {
            return Err(SmpError::BadArgType {
                expected: "map",
                got: type_name(v),
            });
        };
        match found {
            Some(i) => {
                let Value::Object(om) = std::mem::take(&mut original[i]) else {
                    return unreachable_type();
                };
                original[i] = Value::Object(merge_map(om, pm.clone(), schema)?);
            }
            None => original.push(v.clone()),
        }
    }
    Ok(original)
}

/// Splits `merged` into items present in `by` and the rest (maps compare by merge key).
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), SmpError> {
    let mut present = Vec::new();
    let mut rest = Vec::new();
    for v in merged {
        let found = match merge_key {
            None => by.contains(&v),
            Some(k) => {
                let mv = key_of(&v, k)?;
                let mut f = false;
                for b in by {
                    if !b.is_object() {
                        return Err(SmpError::BadArgType {
                            expected: "map",
                            got: type_name(b),
                        });
                    }
                    if b.get(k) == Some(mv) {
                        f = true;
                        break;
                    }
                }
                f
            }
        };
        if found {
            present.push(v);
        } else {
            rest.push(v);
        }
    }
    Ok((present, rest))
}

fn index_of(list: &[Value], item: &Value, merge_key: Option<&str>, is_map: bool) -> Option<usize> {
    match (is_map, merge_key) {
        (true, Some(k)) => {
            let v = item.get(k);
            list.iter().position(|x| x.get(k) == v)
        }
        _ => list.iter().position(|x| x == item),
    }
}

fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    is_map: bool,
) -> Result<Vec<Value>, SmpError> {
    let mut to_sort = to_sort;
    let mut to_delete = Vec::new();
    if is_map {
        if let Some(k) = merge_key {
            for v in to_sort.iter().chain(order) {
                key_of(v, k)?;
            }
        }
        let (keep, del): (Vec<Value>, Vec<Value>) = to_sort
            .into_iter()
            .partition(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some(DELETE));
        to_sort = keep;
        to_delete = del;
    }
    // Stable sort by position in `order`; items missing from it (none in practice) go first.
    to_sort.sort_by_key(|v| index_of(order, v, merge_key, is_map).map_or(-1, |i| i as i64));
    to_sort.extend(to_delete);
    Ok(to_sort)
}

fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    is_map: bool,
) -> Result<Vec<Value>, SmpError> {
    let patch = normalize_slice_order(patch, patch_order, merge_key, is_map)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, is_map)?;
    Ok(merge_sorted(
        server_only,
        patch,
        server_order,
        merge_key,
        is_map,
    ))
}

/// Interleaves server-only items (`left`) into patch items (`right`) using the live order
/// (upstream `mergeSortedSlice`).
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
    is_map: bool,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    loop {
        match (l.peek(), r.peek()) {
            (None, None) => break,
            (Some(_), None) => out.extend(l.next()),
            (None, Some(_)) => out.extend(r.next()),
            (Some(a), Some(b)) => {
                let ia = index_of(server_order, a, merge_key, is_map);
                let ib = index_of(server_order, b, merge_key, is_map);
                match (ia, ib) {
                    (Some(x), Some(y)) if x < y => out.extend(l.next()),
                    _ => out.extend(r.next()),
                }
            }
        }
    }
    out
}

/// Drops `null` members everywhere (a null for a key that does not exist deletes nothing).
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Removes directive-bearing maps (returns `None` if `v` itself is one) and directives inside.
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter_map(|(k, x)| remove_directives(x).map(|x| (k, x)))
                    .collect(),
            ))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

#[cfg(test)]
mod tests;
