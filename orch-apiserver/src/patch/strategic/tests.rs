//! Strategic merge patch tests.
//!
//! The cases are ours, written from the documented rules: kubernetes/community's
//! `contributors/devel/sig-api-machinery/strategic-merge-patch.md` (the directives) and
//! kubernetes/design-proposals-archive's `cli/preserve-order-in-strategic-merge-patch.md`
//! (`$setElementOrder`), and, for what those leave open (list order, nulls, directives inside
//! new values, errors), upstream's server-side implementation. `patch.go` below means
//! `staging/src/k8s.io/apimachinery/pkg/util/strategicpatch/patch.go` as the API server runs it
//! (`mergeMap` with `MergeParallelList` and `IgnoreUnmatchedNulls`); a comment names the
//! function that decides a case whose result is not obvious.
//!
//! They run against our own test schema ([`widget_schemas`]): a `Widget` with one field per
//! merge rule and `Widget` children, so the rules are exercised inside merged lists too. Each
//! table row is `name: original + patch => expected`, one table per rule. The three-way group
//! holds patches as kubectl apply computes them from the last-applied configuration, the new one
//! and the live object, applied to live objects with fields only the server set. The last tests
//! use the real Kubernetes schemas.

use serde_json::{json, Value};

use super::*;
use crate::schema::{Schemas, REF_PREFIX};

/// Our test schema: OpenAPI v3 definitions with the extensions [`crate::schema`] reads.
///
/// `Widget` fields by rule: `parts` (objects merged by `name`), `ports` (merged by the integer
/// `port`), `mounts` (merged by `name`, strategy `merge,retainKeys`), `children` (`Widget`s merged
/// by `name`), `tags` / `levels` (string / integer sets), `flags` / `steps` (atomic lists of
/// strings / objects), `history` (strategy `replace`), `zones` / `aliases` (list types `map` /
/// `set` without a patch strategy), `loose` (strategy `merge` without merge key), `settings`
/// (strategy `retainKeys`, behind `allOf`), `frame` (plain nested object), `labels` (map of
/// strings), `selector` (map type `atomic`), `overrides` (strategy `replace`), `slots` (map of
/// `Part`s).
fn widget_schemas() -> Schemas {
    fn r(name: &str) -> Value {
        json!({"$ref": format!("{REF_PREFIX}{name}")})
    }
    fn object(properties: Value) -> Value {
        json!({"type": "object", "properties": properties})
    }
    fn map_of(values: Value) -> Value {
        json!({"type": "object", "additionalProperties": values})
    }
    fn keyed(item: &str, key: &str, strategy: &str) -> Value {
        json!({
            "type": "array", "items": r(item),
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key],
            "x-kubernetes-patch-strategy": strategy, "x-kubernetes-patch-merge-key": key
        })
    }
    fn set(ty: &str) -> Value {
        json!({
            "type": "array", "items": {"type": ty},
            "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"
        })
    }
    fn atomic(items: Value) -> Value {
        json!({"type": "array", "items": items, "x-kubernetes-list-type": "atomic"})
    }
    let string = json!({"type": "string"});
    let int = json!({"type": "integer"});
    let defs = json!({
        "Widget": object(json!({
            "name": string, "color": string, "size": int, "enabled": {"type": "boolean"},
            "labels": map_of(string.clone()),
            "selector": {
                "type": "object", "additionalProperties": string,
                "x-kubernetes-map-type": "atomic"
            },
            "overrides": {
                "type": "object", "additionalProperties": string,
                "x-kubernetes-patch-strategy": "replace"
            },
            "frame": r("Frame"),
            "settings": {"allOf": [r("Settings")], "x-kubernetes-patch-strategy": "retainKeys"},
            "slots": map_of(r("Part")),
            "parts": keyed("Part", "name", "merge"),
            "ports": keyed("Port", "port", "merge"),
            "mounts": keyed("Mount", "name", "merge,retainKeys"),
            "children": keyed("Widget", "name", "merge"),
            "tags": set("string"),
            "levels": set("integer"),
            "flags": atomic(string.clone()),
            "steps": atomic(r("Step")),
            "history": {
                "type": "array", "items": string, "x-kubernetes-patch-strategy": "replace"
            },
            "zones": {
                "type": "array", "items": r("Zone"),
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["zone"]
            },
            "aliases": {"type": "array", "items": string, "x-kubernetes-list-type": "set"},
            "loose": {
                "type": "array", "items": {"type": "object"},
                "x-kubernetes-patch-strategy": "merge"
            }
        })),
        "Part": object(json!({
            "name": string, "material": string, "count": int,
            "holes": set("integer"),
            "finish": object(json!({"color": string, "gloss": {"type": "number"}})),
            "coats": atomic(string.clone())
        })),
        "Port": object(json!({"port": int, "protocol": string, "name": string})),
        "Mount": object(json!({
            "name": string, "readOnly": {"type": "boolean"},
            "disk": object(json!({"size": int})),
            "tmpfs": object(json!({"limit": int}))
        })),
        "Step": object(json!({"name": string, "run": string, "env": map_of(string.clone())})),
        "Zone": object(json!({"zone": string, "weight": int})),
        "Settings": object(json!({
            "mode": string, "retries": int,
            "fast": object(json!({"level": int, "burst": int})),
            "slow": object(json!({"delay": int})),
            "codes": set("integer"),
            "hooks": keyed("Hook", "name", "merge"),
            "notes": atomic(string.clone())
        })),
        "Hook": object(json!({"name": string, "url": string})),
        "Frame": object(json!({
            "width": int, "height": int, "material": string,
            "corner": object(json!({"radius": int, "style": string})),
            "rails": keyed("Rail", "side", "merge")
        })),
        "Rail": object(json!({"side": string, "length": int}))
    });
    let Value::Object(defs) = defs else {
        unreachable!("a JSON object literal")
    };
    Schemas::from_definitions(defs)
}

/// One case: name, original (live) object, patch, expected result.
type Case = (&'static str, Value, Value, Value);

/// Table rows `"name": original + patch => expected;`, each side a literal for [`json!`].
macro_rules! cases {
    ($($name:literal: $original:tt + $patch:tt => $expected:tt;)*) => {
        vec![$(($name, json!($original), json!($patch), json!($expected))),*]
    };
}

/// Applies every case to the `Widget` root and reports all mismatches at once.
fn check(cases: Vec<Case>) {
    let schemas = widget_schemas();
    let root = schemas.node("Widget");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, original, patch, expected)| {
            match strategic_merge(original, patch, root) {
                Ok(got) if &got == expected => None,
                Ok(got) => Some(format!(
                    "{name}:\n  patch:    {patch}\n  expected: {expected}\n  got:      {got}"
                )),
                Err(e) => Some(format!("{name}: error {e}")),
            }
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Maps merge key by key; `null` deletes a key at any depth, a `null` for an absent key is
/// ignored, and nulls inside a value the object did not have are dropped (`patch.go`
/// `mergeMap`, `discardNullValuesFromPatch`).
fn maps_and_nulls() -> Vec<Case> {
    cases![
        "empty patch changes nothing":
            {"name": "w", "color": "red"} + {} => {"name": "w", "color": "red"};
        "empty original takes the patch": {} + {"name": "w", "size": 3} => {"name": "w", "size": 3};
        "scalar replaced": {"color": "red"} + {"color": "blue"} => {"color": "blue"};
        "new key added beside the others":
            {"name": "w"} + {"color": "red"} => {"name": "w", "color": "red"};
        "booleans and numbers replaced":
            {"enabled": true, "size": 1} + {"enabled": false, "size": 2.5}
            => {"enabled": false, "size": 2.5};
        "same value is a no-op": {"size": 1} + {"size": 1} => {"size": 1};
        "null deletes a key": {"name": "w", "color": "red"} + {"color": null} => {"name": "w"};
        "null for an absent key is ignored": {"name": "w"} + {"color": null} => {"name": "w"};
        "null deletes a whole object":
            {"name": "w", "frame": {"width": 1}} + {"frame": null} => {"name": "w"};
        "null deletes a whole list": {"name": "w", "tags": ["a"]} + {"tags": null} => {"name": "w"};
        "nested object merged key by key":
            {"frame": {"width": 1, "height": 2}} + {"frame": {"height": 3}}
            => {"frame": {"width": 1, "height": 3}};
        "null two levels down":
            {"frame": {"width": 1, "corner": {"radius": 2, "style": "round"}}}
            + {"frame": {"corner": {"style": null}}}
            => {"frame": {"width": 1, "corner": {"radius": 2}}};
        "deleting the last key leaves an empty object":
            {"frame": {"width": 1}} + {"frame": {"width": null}} => {"frame": {}};
        "nulls inside a new key are dropped":
            {} + {"frame": {"width": 1, "height": null, "corner": {"radius": null}}}
            => {"frame": {"width": 1, "corner": {}}};
        "nulls inside a new nested key are dropped":
            {"frame": {"width": 1}} + {"frame": {"corner": {"radius": null, "style": "flat"}}}
            => {"frame": {"width": 1, "corner": {"style": "flat"}}};
        // discardNullValuesFromPatch also walks lists.
        "nulls in list items of a new key are dropped":
            {} + {"steps": [{"name": "s", "run": null}]} => {"steps": [{"name": "s"}]};
        "empty object in the patch changes nothing":
            {"frame": {"width": 1}} + {"frame": {}} => {"frame": {"width": 1}};
        "empty object for a new key is added": {} + {"frame": {}} => {"frame": {}};
        "new object holding only nulls becomes empty":
            {} + {"labels": {"a": null}} => {"labels": {}};
        "map of strings: add, change and delete entries":
            {"labels": {"a": "1", "b": "2", "c": "3"}} + {"labels": {"a": "9", "b": null, "d": "4"}}
            => {"labels": {"a": "9", "c": "3", "d": "4"}};
        "fields the patch does not name are untouched":
            {"name": "w", "tags": ["b", "a"], "frame": {"width": 1}} + {"name": "v"}
            => {"name": "v", "tags": ["b", "a"], "frame": {"width": 1}};
        "add, change and delete at several depths at once":
            {"name": "w", "color": "red", "frame": {"width": 1, "corner": {"radius": 2}}}
            + {"color": null, "size": 2,
               "frame": {"width": 3, "corner": {"radius": null, "style": "flat"}}}
            => {"name": "w", "size": 2, "frame": {"width": 3, "corner": {"style": "flat"}}};
        "deep new subtree taken as it is":
            {"name": "w"}
            + {"frame": {"rails": [{"side": "l", "length": 2}], "corner": {"radius": 1}}}
            => {"name": "w",
                "frame": {"rails": [{"side": "l", "length": 2}], "corner": {"radius": 1}}};
        // Only x-kubernetes-patch-strategy and x-kubernetes-patch-merge-key steer a strategic
        // merge (upstream `meta.go`, PatchMetaFromOpenAPIV3): map type atomic still merges.
        "map type atomic is still merged":
            {"selector": {"a": "1"}} + {"selector": {"b": "2"}}
            => {"selector": {"a": "1", "b": "2"}};
        // patch.go mergeMapHandler: strategy replace returns the patch value as it is.
        "object with strategy replace is replaced":
            {"overrides": {"a": "1"}} + {"overrides": {"b": "2"}} => {"overrides": {"b": "2"}};
        "strategy replace keeps the patch value verbatim, nulls included":
            {"overrides": {"a": "1"}} + {"overrides": {"a": null, "b": "2"}}
            => {"overrides": {"a": null, "b": "2"}};
        "map of objects: each value merged by its schema":
            {"slots": {"left": {"name": "l", "holes": [1]}}}
            + {"slots": {"left": {"holes": [2]}, "right": {"name": "r"}}}
            => {"slots": {"left": {"name": "l", "holes": [2, 1]}, "right": {"name": "r"}}};
        "null deletes an entry of a map of objects":
            {"slots": {"left": {"name": "l"}, "right": {"name": "r"}}} + {"slots": {"left": null}}
            => {"slots": {"right": {"name": "r"}}};
        "field behind allOf keeps its schema":
            {"settings": {"codes": [1]}} + {"settings": {"codes": [2]}}
            => {"settings": {"codes": [2, 1]}};
    ]
}

#[test]
fn maps_merge_and_nulls_delete() {
    check(maps_and_nulls());
}

/// A value of another JSON type replaces the live one; nulls and `$patch` maps are taken out of
/// it first, and a value that is itself a `$patch` map removes the key (`patch.go` `mergeMap`,
/// `removeDirectives`). The same holds for values the live object lacks.
fn new_values_and_type_changes() -> Vec<Case> {
    cases![
        "scalar to object": {"color": "red"} + {"color": {"r": 1}} => {"color": {"r": 1}};
        "object to scalar": {"frame": {"width": 1}} + {"frame": "none"} => {"frame": "none"};
        "list to object": {"tags": ["a"]} + {"tags": {"a": "1"}} => {"tags": {"a": "1"}};
        "object to list": {"frame": {"width": 1}} + {"frame": [1, 2]} => {"frame": [1, 2]};
        "string to number": {"size": "3"} + {"size": 3} => {"size": 3};
        "number to boolean": {"enabled": 1} + {"enabled": true} => {"enabled": true};
        "nulls dropped from the new value":
            {"color": "red"} + {"color": {"r": 1, "g": null}} => {"color": {"r": 1}};
        "$patch maps dropped from the new value":
            {"name": "a"} + {"name": {"x": {"$patch": "delete"}, "y": 1}} => {"name": {"y": 1}};
        "new value that is a $patch map removes the key":
            {"name": "w", "color": "red"} + {"color": {"$patch": "replace", "r": 1}}
            => {"name": "w"};
        "scalar to a list with delete elements drops them":
            {"parts": "none"} + {"parts": [{"name": "a"}, {"name": "b", "$patch": "delete"}]}
            => {"parts": [{"name": "a"}]};
        "new list: delete elements dropped":
            {} + {"parts": [{"name": "a"}, {"name": "b", "$patch": "delete"}]}
            => {"parts": [{"name": "a"}]};
        "new list: replace marker dropped":
            {} + {"parts": [{"$patch": "replace"}, {"name": "a"}]} => {"parts": [{"name": "a"}]};
        "new list of only a delete element is empty":
            {} + {"parts": [{"name": "a", "$patch": "delete"}]} => {"parts": []};
        "new object with $patch: replace is not created":
            {"name": "w"} + {"frame": {"$patch": "replace", "width": 1}} => {"name": "w"};
        "new object with $patch: delete is not created":
            {"name": "w"} + {"frame": {"$patch": "delete"}} => {"name": "w"};
        "delete directive inside a new object dropped":
            {} + {"frame": {"width": 1, "corner": {"$patch": "delete"}}} => {"frame": {"width": 1}};
        // removeDirectives only looks for `$patch`; the API server's typed decoding drops the
        // other directive keys of a new value afterwards.
        "new object keeps a $retainKeys key":
            {} + {"settings": {"$retainKeys": ["mode"], "mode": "fast"}}
            => {"settings": {"$retainKeys": ["mode"], "mode": "fast"}};
        "new list of scalars taken as it is, duplicates included":
            {} + {"tags": ["b", "a", "b"]} => {"tags": ["b", "a", "b"]};
    ]
}

#[test]
fn type_changes_and_new_values() {
    check(new_values_and_type_changes());
}

/// Lists with `patchStrategy: merge` of objects merge item by item on the merge key. The
/// result holds the patch's items in the patch's order, with the live-only items slotted in by
/// their live order (`patch.go` `mergeSlice`, `normalizeElementOrder`, `mergeSortedSlice`:
/// a live-only item goes before a patch item that follows it in the live list; an item new to
/// the list has no live position and so goes before the live-only items).
fn merged_lists() -> Vec<Case> {
    cases![
        "item merged by its key":
            {"parts": [{"name": "a", "material": "steel", "count": 1}]}
            + {"parts": [{"name": "a", "count": 2}]}
            => {"parts": [{"name": "a", "material": "steel", "count": 2}]};
        "new item goes before the live items":
            {"parts": [{"name": "a"}]} + {"parts": [{"name": "b"}]}
            => {"parts": [{"name": "b"}, {"name": "a"}]};
        "new items keep the patch's order":
            {"parts": [{"name": "a"}]} + {"parts": [{"name": "c"}, {"name": "b"}]}
            => {"parts": [{"name": "c"}, {"name": "b"}, {"name": "a"}]};
        "live order kept when one item changes":
            {"parts": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
            + {"parts": [{"name": "b", "count": 1}]}
            => {"parts": [{"name": "a"}, {"name": "b", "count": 1}, {"name": "c"}]};
        "patch order for the items it names, live neighbours for the rest":
            {"parts": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
            + {"parts": [{"name": "c", "count": 1}, {"name": "a", "count": 2}]}
            => {"parts": [{"name": "b"}, {"name": "c", "count": 1}, {"name": "a", "count": 2}]};
        "new item and a changed item":
            {"parts": [{"name": "a", "count": 1}, {"name": "b"}]}
            + {"parts": [{"name": "c"}, {"name": "a", "material": "m"}]}
            => {"parts": [{"name": "c"}, {"name": "a", "count": 1, "material": "m"},
                          {"name": "b"}]};
        "null inside an item deletes that field":
            {"parts": [{"name": "a", "material": "steel", "count": 1}]}
            + {"parts": [{"name": "a", "material": null}]}
            => {"parts": [{"name": "a", "count": 1}]};
        "null for a field the item lacks is ignored":
            {"parts": [{"name": "a"}]} + {"parts": [{"name": "a", "material": null}]}
            => {"parts": [{"name": "a"}]};
        // patch.go mergeSliceWithoutSpecialElements appends an unmatched patch item as it is.
        "new item appended verbatim, nulls included":
            {"parts": [{"name": "a"}]} + {"parts": [{"name": "b", "material": null}]}
            => {"parts": [{"name": "b", "material": null}, {"name": "a"}]};
        "object in an item merged":
            {"parts": [{"name": "a", "finish": {"color": "red", "gloss": 1}}]}
            + {"parts": [{"name": "a", "finish": {"gloss": 2}}]}
            => {"parts": [{"name": "a", "finish": {"color": "red", "gloss": 2}}]};
        "set in an item merged":
            {"parts": [{"name": "a", "holes": [1, 2]}]} + {"parts": [{"name": "a", "holes": [3]}]}
            => {"parts": [{"name": "a", "holes": [3, 1, 2]}]};
        "atomic list in an item replaced":
            {"parts": [{"name": "a", "coats": ["x", "y"]}]}
            + {"parts": [{"name": "a", "coats": ["z"]}]}
            => {"parts": [{"name": "a", "coats": ["z"]}]};
        "the same key twice in the patch merges twice":
            {"parts": [{"name": "a", "count": 1}]}
            + {"parts": [{"name": "a", "count": 2}, {"name": "a", "material": "m"}]}
            => {"parts": [{"name": "a", "count": 2, "material": "m"}]};
        // patch.go findMapInSliceBasedOnKeyValue returns the first match.
        "only the first live item with the key is merged":
            {"parts": [{"name": "a", "count": 1}, {"name": "a", "count": 2}]}
            + {"parts": [{"name": "a", "material": "m"}]}
            => {"parts": [{"name": "a", "count": 1, "material": "m"}, {"name": "a", "count": 2}]};
        "item given by its key only changes nothing":
            {"parts": [{"name": "a", "count": 1}, {"name": "b"}]} + {"parts": [{"name": "a"}]}
            => {"parts": [{"name": "a", "count": 1}, {"name": "b"}]};
        "empty patch list leaves the list as it is":
            {"parts": [{"name": "a"}, {"name": "b"}]} + {"parts": []}
            => {"parts": [{"name": "a"}, {"name": "b"}]};
        "empty patch list for an absent field adds an empty list":
            {} + {"parts": []} => {"parts": []};
        "items added to an empty live list":
            {"parts": []} + {"parts": [{"name": "a"}]} => {"parts": [{"name": "a"}]};
        "empty on both sides stays empty": {"parts": []} + {"parts": []} => {"parts": []};
        "integer key: item merged":
            {"ports": [{"port": 80, "protocol": "TCP"}]} + {"ports": [{"port": 80, "name": "http"}]}
            => {"ports": [{"port": 80, "protocol": "TCP", "name": "http"}]};
        "integer key: new port before the live ones":
            {"ports": [{"port": 80}]} + {"ports": [{"port": 443}]}
            => {"ports": [{"port": 443}, {"port": 80}]};
        "integer key: 80 and \"80\" are different keys":
            {"ports": [{"port": 80}]} + {"ports": [{"port": "80", "name": "x"}]}
            => {"ports": [{"port": "80", "name": "x"}, {"port": 80}]};
        "integer key: patch order and a live-only port":
            {"ports": [{"port": 80}, {"port": 443}, {"port": 8080}]}
            + {"ports": [{"port": 8080, "name": "a"}, {"port": 80, "name": "b"}]}
            => {"ports": [{"port": 443}, {"port": 8080, "name": "a"}, {"port": 80, "name": "b"}]};
        "merge,retainKeys list merges like any other without the directive":
            {"mounts": [{"name": "data", "disk": {"size": 1}}]}
            + {"mounts": [{"name": "data", "readOnly": true}]}
            => {"mounts": [{"name": "data", "disk": {"size": 1}, "readOnly": true}]};
        "rails of a nested object merged by side":
            {"frame": {"rails": [{"side": "left", "length": 1}]}}
            + {"frame": {"rails": [{"side": "right", "length": 2}]}}
            => {"frame": {"rails": [{"side": "right", "length": 2},
                                    {"side": "left", "length": 1}]}};
    ]
}

#[test]
fn lists_of_objects_merge_by_key() {
    check(merged_lists());
}

/// `{"$patch": "delete", <key>: v}` in a merged list removes every live item with that key
/// before the rest of the patch list merges (`patch.go` `mergeSliceWithSpecialElements`,
/// `deleteMatchingEntries`); `{"$patch": "delete"}` in an object empties it
/// (`handleDirectiveInMergeMap`). There is no directive to delete a whole list: `null` does.
fn patch_delete() -> Vec<Case> {
    cases![
        "delete an item by its key":
            {"parts": [{"name": "a"}, {"name": "b"}]}
            + {"parts": [{"name": "a", "$patch": "delete"}]}
            => {"parts": [{"name": "b"}]};
        "deleting an absent item is a no-op":
            {"parts": [{"name": "a"}]} + {"parts": [{"name": "z", "$patch": "delete"}]}
            => {"parts": [{"name": "a"}]};
        "delete removes every item with the key":
            {"parts": [{"name": "a", "count": 1}, {"name": "b"}, {"name": "a", "count": 2}]}
            + {"parts": [{"name": "a", "$patch": "delete"}]}
            => {"parts": [{"name": "b"}]};
        "delete one item and add another":
            {"parts": [{"name": "a"}, {"name": "b"}]}
            + {"parts": [{"name": "c"}, {"name": "a", "$patch": "delete"}]}
            => {"parts": [{"name": "c"}, {"name": "b"}]};
        "delete and re-add the same key: the item is replaced":
            {"parts": [{"name": "a", "count": 1, "material": "m"}]}
            + {"parts": [{"name": "a", "count": 2}, {"name": "a", "$patch": "delete"}]}
            => {"parts": [{"name": "a", "count": 2}]};
        "other fields of a delete element are ignored":
            {"parts": [{"name": "a", "material": "m"}]}
            + {"parts": [{"name": "a", "material": "x", "$patch": "delete"}]}
            => {"parts": []};
        "deleting the last item leaves an empty list":
            {"parts": [{"name": "a"}]} + {"parts": [{"name": "a", "$patch": "delete"}]}
            => {"parts": []};
        "delete two items":
            {"parts": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]}
            + {"parts": [{"name": "b", "$patch": "delete"}, {"name": "d", "$patch": "delete"}]}
            => {"parts": [{"name": "a"}, {"name": "c"}]};
        "delete by integer key":
            {"ports": [{"port": 80}, {"port": 443}]}
            + {"ports": [{"port": 443, "$patch": "delete"}]}
            => {"ports": [{"port": 80}]};
        "delete in a nested list":
            {"children": [{"name": "c1", "parts": [{"name": "a"}, {"name": "b"}]}]}
            + {"children": [{"name": "c1", "parts": [{"name": "a", "$patch": "delete"}]}]}
            => {"children": [{"name": "c1", "parts": [{"name": "b"}]}]};
        "delete a child with its subtree":
            {"children": [{"name": "c1", "parts": [{"name": "a"}]}, {"name": "c2"}]}
            + {"children": [{"name": "c1", "$patch": "delete"}]}
            => {"children": [{"name": "c2"}]};
        // patch.go mergeSliceHandler: a list without strategy merge takes the patch list as it is.
        "delete element in an atomic list is taken verbatim":
            {"steps": [{"name": "s1"}]} + {"steps": [{"name": "s1", "$patch": "delete"}]}
            => {"steps": [{"name": "s1", "$patch": "delete"}]};
        "$patch: delete empties an object":
            {"frame": {"width": 1, "height": 2}} + {"frame": {"$patch": "delete"}} => {"frame": {}};
        "$patch: delete ignores the object's other keys":
            {"frame": {"width": 1}} + {"frame": {"$patch": "delete", "width": 2}} => {"frame": {}};
        "$patch: delete at the root": {"name": "w", "color": "red"} + {"$patch": "delete"} => {};
        "$patch: delete on an object in an item":
            {"parts": [{"name": "a", "finish": {"color": "red"}}]}
            + {"parts": [{"name": "a", "finish": {"$patch": "delete"}}]}
            => {"parts": [{"name": "a", "finish": {}}]};
        "$patch: delete wins over $retainKeys":
            {"settings": {"mode": "fast"}}
            + {"settings": {"$patch": "delete", "$retainKeys": ["mode"]}}
            => {"settings": {}};
        "$patch: delete on a map of strings":
            {"labels": {"a": "1"}, "name": "w"} + {"labels": {"$patch": "delete"}}
            => {"labels": {}, "name": "w"};
    ]
}

#[test]
fn patch_delete_directive() {
    check(patch_delete());
}

/// `{"$patch": "replace"}` makes the object holding it, or the list holding it as an element,
/// the patch's value as it is (`patch.go` `handleDirectiveInMergeMap`,
/// `mergeSliceWithSpecialElements`).
fn patch_replace() -> Vec<Case> {
    cases![
        "replace an object":
            {"frame": {"width": 1, "height": 2}} + {"frame": {"$patch": "replace", "height": 3}}
            => {"frame": {"height": 3}};
        "replace the root":
            {"name": "w", "color": "red"} + {"$patch": "replace", "name": "v"} => {"name": "v"};
        "replace with nothing else empties the object":
            {"frame": {"width": 1}} + {"frame": {"$patch": "replace"}} => {"frame": {}};
        "replace does not merge below":
            {"frame": {"corner": {"radius": 1, "style": "s"}}}
            + {"frame": {"$patch": "replace", "corner": {"style": "t"}}}
            => {"frame": {"corner": {"style": "t"}}};
        "replace keeps the patch verbatim, nulls included":
            {"frame": {"width": 1}} + {"frame": {"$patch": "replace", "width": null}}
            => {"frame": {"width": null}};
        "replace a map of strings":
            {"labels": {"a": "1", "b": "2"}} + {"labels": {"$patch": "replace", "c": "3"}}
            => {"labels": {"c": "3"}};
        "replace an object in an item":
            {"parts": [{"name": "a", "finish": {"color": "red", "gloss": 1}}]}
            + {"parts": [{"name": "a", "finish": {"$patch": "replace", "gloss": 2}}]}
            => {"parts": [{"name": "a", "finish": {"gloss": 2}}]};
        "replace a merged list":
            {"parts": [{"name": "a"}, {"name": "b"}]}
            + {"parts": [{"name": "c"}, {"$patch": "replace"}]}
            => {"parts": [{"name": "c"}]};
        "replace with only the marker empties the list":
            {"parts": [{"name": "a"}, {"name": "b"}]} + {"parts": [{"$patch": "replace"}]}
            => {"parts": []};
        "the marker may stand anywhere":
            {"parts": [{"name": "a"}]}
            + {"parts": [{"$patch": "replace"}, {"name": "c"}, {"name": "d"}]}
            => {"parts": [{"name": "c"}, {"name": "d"}]};
        "replace does not merge items":
            {"parts": [{"name": "a", "material": "m"}]}
            + {"parts": [{"$patch": "replace"}, {"name": "a", "count": 1}]}
            => {"parts": [{"name": "a", "count": 1}]};
        // mergeSliceWithSpecialElements drops every `$patch` element, whatever else it holds.
        "a replace element's other keys are dropped":
            {"parts": [{"name": "a", "material": "m"}, {"name": "b"}]}
            + {"parts": [{"name": "a", "count": 1, "$patch": "replace"}]}
            => {"parts": []};
        "replace wins over delete elements":
            {"parts": [{"name": "a"}, {"name": "b"}]}
            + {"parts": [{"$patch": "replace"}, {"name": "c"}, {"name": "a", "$patch": "delete"}]}
            => {"parts": [{"name": "c"}]};
        "replace an integer-keyed list":
            {"ports": [{"port": 80}, {"port": 443}]}
            + {"ports": [{"port": 8080}, {"$patch": "replace"}]}
            => {"ports": [{"port": 8080}]};
        "replace a nested list":
            {"children": [{"name": "c1", "parts": [{"name": "a"}, {"name": "b"}]}]}
            + {"children": [{"name": "c1", "parts": [{"$patch": "replace"}, {"name": "z"}]}]}
            => {"children": [{"name": "c1", "parts": [{"name": "z"}]}]};
        "replace a retainKeys object":
            {"settings": {"mode": "fast", "fast": {"level": 1}}}
            + {"settings": {"$patch": "replace", "mode": "slow"}}
            => {"settings": {"mode": "slow"}};
        // handleDirectiveInMergeMap returns the patch map without looking at its other keys.
        "replace keeps a $retainKeys key as it is":
            {"settings": {"mode": "fast", "retries": 3}}
            + {"settings": {"$patch": "replace", "$retainKeys": ["mode"], "mode": "slow"}}
            => {"settings": {"$retainKeys": ["mode"], "mode": "slow"}};
    ]
}

#[test]
fn patch_replace_directive() {
    check(patch_replace());
}

/// Lists of scalars with `patchStrategy: merge` are sets: the union, without duplicates, patch
/// values in the patch's order with live-only values slotted in by their live order
/// (`patch.go` `mergeSlice`, `deduplicateScalars`, `mergeSortedSlice`).
fn scalar_sets() -> Vec<Case> {
    cases![
        "union: values already there keep their places":
            {"tags": ["a", "b"]} + {"tags": ["b", "c"]} => {"tags": ["a", "b", "c"]};
        "new value goes before the live values":
            {"tags": ["a"]} + {"tags": ["b"]} => {"tags": ["b", "a"]};
        "patch order for the values it names":
            {"tags": ["a", "b", "c"]} + {"tags": ["c", "a"]} => {"tags": ["b", "c", "a"]};
        "live-only values keep their live neighbours":
            {"tags": ["a", "b", "c", "d"]} + {"tags": ["d", "b"]} => {"tags": ["a", "c", "d", "b"]};
        "value already there: no change":
            {"tags": ["a", "b", "c"]} + {"tags": ["b"]} => {"tags": ["a", "b", "c"]};
        "duplicates in the patch collapse":
            {"tags": ["a"]} + {"tags": ["b", "b"]} => {"tags": ["b", "a"]};
        "duplicates in the live list collapse":
            {"tags": ["a", "a"]} + {"tags": ["b"]} => {"tags": ["b", "a"]};
        "integers": {"levels": [1, 2]} + {"levels": [3]} => {"levels": [3, 1, 2]};
        "integer union": {"levels": [1, 2]} + {"levels": [2, 3]} => {"levels": [1, 2, 3]};
        "numbers compare by value":
            {"levels": [1, 2.5]} + {"levels": [2.5, 4]} => {"levels": [1, 2.5, 4]};
        "empty patch list changes nothing": {"tags": ["a"]} + {"tags": []} => {"tags": ["a"]};
        "values added to an empty live list": {"tags": []} + {"tags": ["a"]} => {"tags": ["a"]};
        "set in a child":
            {"children": [{"name": "c1", "tags": ["x"]}]}
            + {"children": [{"name": "c1", "tags": ["y"]}]}
            => {"children": [{"name": "c1", "tags": ["y", "x"]}]};
    ]
}

#[test]
fn lists_of_scalars_merge_as_sets() {
    check(scalar_sets());
}

/// Any list without `patchStrategy: merge` is replaced by the patch's list as it is (`patch.go`
/// `mergeSliceHandler`); list types alone do not make a list merge.
fn replaced_lists() -> Vec<Case> {
    cases![
        "atomic list of scalars replaced":
            {"flags": ["a", "b"]} + {"flags": ["c"]} => {"flags": ["c"]};
        "atomic list of objects replaced whole":
            {"steps": [{"name": "s1", "run": "x"}]} + {"steps": [{"name": "s1", "env": {"k": "v"}}]}
            => {"steps": [{"name": "s1", "env": {"k": "v"}}]};
        "atomic list emptied": {"flags": ["a"]} + {"flags": []} => {"flags": []};
        "atomic list keeps duplicates":
            {"flags": ["a"]} + {"flags": ["b", "b"]} => {"flags": ["b", "b"]};
        "atomic list keeps nulls in its items":
            {"steps": [{"name": "s1"}]} + {"steps": [{"name": "s1", "run": null}]}
            => {"steps": [{"name": "s1", "run": null}]};
        "atomic list may change its element type":
            {"flags": ["a"]} + {"flags": [1]} => {"flags": [1]};
        "list with strategy replace":
            {"history": ["a", "b"]} + {"history": ["c"]} => {"history": ["c"]};
        "list type map without strategy replaced":
            {"zones": [{"zone": "a", "weight": 1}]} + {"zones": [{"zone": "b", "weight": 2}]}
            => {"zones": [{"zone": "b", "weight": 2}]};
        "list type set without strategy replaced":
            {"aliases": ["a", "b"]} + {"aliases": ["b", "c"]} => {"aliases": ["b", "c"]};
        "atomic list in a child replaced":
            {"children": [{"name": "c1", "flags": ["a"]}]}
            + {"children": [{"name": "c1", "flags": ["b"]}]}
            => {"children": [{"name": "c1", "flags": ["b"]}]};
    ]
}

#[test]
fn lists_without_merge_strategy_are_replaced() {
    check(replaced_lists());
}

/// `$retainKeys: [...]` in an object drops every live key it does not list, then the rest of the
/// patch merges; every non-null patch key must be listed (`patch.go`
/// `applyRetainKeysDirective`). The directive works whatever the field's strategy.
fn retain_keys() -> Vec<Case> {
    cases![
        "switching the member of a union":
            {"settings": {"mode": "fast", "fast": {"level": 1}}}
            + {"settings": {"$retainKeys": ["mode", "slow"], "mode": "slow", "slow": {"delay": 5}}}
            => {"settings": {"mode": "slow", "slow": {"delay": 5}}};
        "retainKeys alone clears the keys it does not list":
            {"settings": {"mode": "fast", "fast": {"level": 1}, "retries": 3}}
            + {"settings": {"$retainKeys": ["mode", "retries"]}}
            => {"settings": {"mode": "fast", "retries": 3}};
        "empty retainKeys clears the object":
            {"settings": {"mode": "fast", "retries": 3}} + {"settings": {"$retainKeys": []}}
            => {"settings": {}};
        "retained key still merged":
            {"settings": {"mode": "fast", "fast": {"level": 1, "burst": 2}}}
            + {"settings": {"$retainKeys": ["mode", "fast"], "fast": {"level": 3}}}
            => {"settings": {"mode": "fast", "fast": {"level": 3, "burst": 2}}};
        "null for an unlisted key is allowed":
            {"settings": {"mode": "fast", "fast": {"level": 1}, "retries": 3}}
            + {"settings": {"$retainKeys": ["mode"], "fast": null}}
            => {"settings": {"mode": "fast"}};
        "null for a listed key deletes it":
            {"settings": {"mode": "fast", "retries": 3}}
            + {"settings": {"$retainKeys": ["mode", "retries"], "retries": null}}
            => {"settings": {"mode": "fast"}};
        "listed key absent from the live object is not created":
            {"settings": {"mode": "fast"}} + {"settings": {"$retainKeys": ["mode", "slow"]}}
            => {"settings": {"mode": "fast"}};
        "works on an object without retainKeys strategy":
            {"frame": {"width": 1, "height": 2}} + {"frame": {"$retainKeys": ["width"]}}
            => {"frame": {"width": 1}};
        "works at the root":
            {"name": "w", "color": "red", "size": 1} + {"$retainKeys": ["name", "size"], "size": 2}
            => {"name": "w", "size": 2};
        "directive keys need not be listed":
            {"settings": {"mode": "fast", "codes": [1, 2],
                          "hooks": [{"name": "h1"}, {"name": "h2"}]}}
            + {"settings": {"$retainKeys": ["mode", "codes", "hooks"],
                            "$deleteFromPrimitiveList/codes": [1],
                            "$setElementOrder/hooks": [{"name": "h2"}, {"name": "h1"}]}}
            => {"settings": {"mode": "fast", "codes": [2],
                             "hooks": [{"name": "h2"}, {"name": "h1"}]}};
        "retained merged list merges":
            {"settings": {"mode": "fast", "hooks": [{"name": "h1", "url": "a"}]}}
            + {"settings": {"$retainKeys": ["mode", "hooks"], "hooks": [{"name": "h2"}]}}
            => {"settings": {"mode": "fast",
                             "hooks": [{"name": "h2"}, {"name": "h1", "url": "a"}]}};
        "retained set merges":
            {"settings": {"codes": [1, 2], "retries": 1}}
            + {"settings": {"$retainKeys": ["codes"], "codes": [3]}}
            => {"settings": {"codes": [3, 1, 2]}};
        "retained atomic list replaced":
            {"settings": {"notes": ["a"], "mode": "m"}}
            + {"settings": {"$retainKeys": ["notes", "mode"], "notes": ["b"]}}
            => {"settings": {"notes": ["b"], "mode": "m"}};
        "unlisted lists dropped":
            {"settings": {"mode": "fast", "codes": [1], "hooks": [{"name": "h1"}]}}
            + {"settings": {"$retainKeys": ["mode"]}}
            => {"settings": {"mode": "fast"}};
        "retainKeys in merged list items":
            {"mounts": [{"name": "data", "disk": {"size": 1}, "readOnly": true}]}
            + {"mounts": [{"name": "data", "$retainKeys": ["name", "tmpfs"],
                           "tmpfs": {"limit": 2}}]}
            => {"mounts": [{"name": "data", "tmpfs": {"limit": 2}}]};
        "retainKeys and a null in a merged list item":
            {"mounts": [{"name": "data", "disk": {"size": 1}}, {"name": "logs"}]}
            + {"mounts": [{"name": "data", "$retainKeys": ["name", "tmpfs"], "disk": null,
                           "tmpfs": {"limit": 2}}]}
            => {"mounts": [{"name": "data", "tmpfs": {"limit": 2}}, {"name": "logs"}]};
        "retainKeys in a child's settings":
            {"children": [{"name": "c1", "settings": {"mode": "fast", "fast": {"level": 1}}}]}
            + {"children": [{"name": "c1", "settings": {"$retainKeys": ["mode"], "mode": "slow"}}]}
            => {"children": [{"name": "c1", "settings": {"mode": "slow"}}]};
        "non-string entries retain nothing":
            {"frame": {"width": 1}} + {"frame": {"$retainKeys": [1]}} => {"frame": {}};
    ]
}

#[test]
fn retain_keys_directive() {
    check(retain_keys());
}

/// `$deleteFromPrimitiveList/<list>: [...]` removes those values from a live list of scalars,
/// whatever the list's strategy (`patch.go` `preprocessDeletionListForMerging`, `mergeSlice`,
/// `deleteFromSlice`).
fn delete_from_primitive_list() -> Vec<Case> {
    cases![
        "remove a value":
            {"tags": ["a", "b", "c"]} + {"$deleteFromPrimitiveList/tags": ["b"]}
            => {"tags": ["a", "c"]};
        "remove every copy":
            {"tags": ["a", "b", "a"]} + {"$deleteFromPrimitiveList/tags": ["a"]} => {"tags": ["b"]};
        "absent values ignored":
            {"tags": ["a"]} + {"$deleteFromPrimitiveList/tags": ["z"]} => {"tags": ["a"]};
        "absent list not created":
            {"name": "w"} + {"$deleteFromPrimitiveList/tags": ["a"]} => {"name": "w"};
        "remove and add other values":
            {"tags": ["a", "b"]} + {"tags": ["c"], "$deleteFromPrimitiveList/tags": ["a"]}
            => {"tags": ["c", "b"]};
        "integers":
            {"levels": [1, 2, 3]} + {"$deleteFromPrimitiveList/levels": [2]} => {"levels": [1, 3]};
        "remove everything leaves an empty list":
            {"tags": ["a"]} + {"$deleteFromPrimitiveList/tags": ["a"]} => {"tags": []};
        "empty delete list changes nothing":
            {"tags": ["a"]} + {"$deleteFromPrimitiveList/tags": []} => {"tags": ["a"]};
        "works on an atomic list":
            {"flags": ["a", "b"]} + {"$deleteFromPrimitiveList/flags": ["a"]} => {"flags": ["b"]};
        "in a child":
            {"children": [{"name": "c1", "tags": ["x", "y"]}]}
            + {"children": [{"name": "c1", "$deleteFromPrimitiveList/tags": ["x"]}]}
            => {"children": [{"name": "c1", "tags": ["y"]}]};
        "live value of another type left alone":
            {"tags": "x"} + {"$deleteFromPrimitiveList/tags": ["x"]} => {"tags": "x"};
        // mergeMap strips the prefix before it looks at the value, so null deletes the list.
        "null deletes the list itself":
            {"tags": ["a", "b"], "name": "w"} + {"$deleteFromPrimitiveList/tags": null}
            => {"name": "w"};
        // mergeSlice only takes the deletion path for scalars: a list of objects merges.
        "on a list of objects it merges like the list":
            {"parts": [{"name": "a"}]} + {"$deleteFromPrimitiveList/parts": [{"name": "b"}]}
            => {"parts": [{"name": "b"}, {"name": "a"}]};
        "several lists at once":
            {"tags": ["a", "b"], "levels": [1, 2]}
            + {"$deleteFromPrimitiveList/tags": ["a"], "$deleteFromPrimitiveList/levels": [2]}
            => {"tags": ["b"], "levels": [1]};
        "with $setElementOrder":
            {"tags": ["a", "b", "c"]}
            + {"$setElementOrder/tags": ["a", "c"], "$deleteFromPrimitiveList/tags": ["b"]}
            => {"tags": ["a", "c"]};
        // preprocessDeletionListForMerging keeps the whole key when the name after `/` is empty.
        "empty list name names no field":
            {"tags": ["a"]} + {"$deleteFromPrimitiveList/": ["a"]} => {"tags": ["a"]};
    ]
}

#[test]
fn delete_from_primitive_list_directive() {
    check(delete_from_primitive_list());
}

/// `$setElementOrder/<list>: [...]` gives the order of the items it names (merge keys for lists
/// of objects, values for scalars); the patch list must follow that order and hold no other
/// items. Items only the server has keep their place relative to their live neighbours.
/// Precedence: `$setElementOrder`, then the patch list, then the live list (`patch.go`
/// `mergePatchIntoOriginal`, `validatePatchWithSetOrderList`, `normalizeElementOrder`).
fn set_element_order() -> Vec<Case> {
    cases![
        "reorder only":
            {"parts": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
            + {"$setElementOrder/parts": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}
            => {"parts": [{"name": "c"}, {"name": "a"}, {"name": "b"}]};
        "reorder and change an item":
            {"parts": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
            + {"$setElementOrder/parts": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
               "parts": [{"name": "a", "count": 1}]}
            => {"parts": [{"name": "c"}, {"name": "a", "count": 1}, {"name": "b"}]};
        "change two items, third in place":
            {"parts": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
            + {"$setElementOrder/parts": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
               "parts": [{"name": "c", "count": 1}, {"name": "a", "count": 2}]}
            => {"parts": [{"name": "c", "count": 1}, {"name": "b"}, {"name": "a", "count": 2}]};
        "new item placed where the order says":
            {"parts": [{"name": "a"}, {"name": "b"}]}
            + {"$setElementOrder/parts": [{"name": "a"}, {"name": "x"}, {"name": "b"}],
               "parts": [{"name": "x"}]}
            => {"parts": [{"name": "a"}, {"name": "x"}, {"name": "b"}]};
        "name in neither list ignored":
            {"parts": [{"name": "a"}, {"name": "b"}]}
            + {"$setElementOrder/parts": [{"name": "b"}, {"name": "z"}, {"name": "a"}]}
            => {"parts": [{"name": "b"}, {"name": "a"}]};
        "server-only item stays before the item it preceded":
            {"parts": [{"name": "a"}, {"name": "s"}, {"name": "b"}]}
            + {"$setElementOrder/parts": [{"name": "b"}, {"name": "a"}]}
            => {"parts": [{"name": "s"}, {"name": "b"}, {"name": "a"}]};
        "server-only item at the end stays last":
            {"parts": [{"name": "a"}, {"name": "b"}, {"name": "s"}]}
            + {"$setElementOrder/parts": [{"name": "b"}, {"name": "a"}]}
            => {"parts": [{"name": "b"}, {"name": "a"}, {"name": "s"}]};
        "server-only item at the front stays first":
            {"parts": [{"name": "s"}, {"name": "a"}, {"name": "b"}]}
            + {"$setElementOrder/parts": [{"name": "b"}, {"name": "a"}]}
            => {"parts": [{"name": "s"}, {"name": "b"}, {"name": "a"}]};
        "server-only item beside a new item":
            {"parts": [{"name": "a"}, {"name": "s"}, {"name": "b"}]}
            + {"$setElementOrder/parts": [{"name": "a"}, {"name": "x"}, {"name": "b"}],
               "parts": [{"name": "x"}]}
            => {"parts": [{"name": "a"}, {"name": "x"}, {"name": "s"}, {"name": "b"}]};
        "delete with order":
            {"parts": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
            + {"$setElementOrder/parts": [{"name": "a"}, {"name": "c"}],
               "parts": [{"name": "b", "$patch": "delete"}]}
            => {"parts": [{"name": "a"}, {"name": "c"}]};
        "delete with order and a server-only item":
            {"parts": [{"name": "a"}, {"name": "s"}, {"name": "b"}, {"name": "c"}]}
            + {"$setElementOrder/parts": [{"name": "a"}, {"name": "c"}],
               "parts": [{"name": "b", "$patch": "delete"}]}
            => {"parts": [{"name": "a"}, {"name": "s"}, {"name": "c"}]};
        // mergePatchIntoOriginal orders by the live list after mergeSlice has updated it in
        // place: `b`'s deletion shifts `s` left and the appended `x` lands in the freed slot,
        // so `s` ranks before `x` (live lists decoded from JSON, as upstream's tests do).
        "delete and add with a server-only item":
            {"parts": [{"name": "a"}, {"name": "s"}, {"name": "b"}]}
            + {"$setElementOrder/parts": [{"name": "a"}, {"name": "x"}],
               "parts": [{"name": "x"}, {"name": "b", "$patch": "delete"}]}
            => {"parts": [{"name": "a"}, {"name": "s"}, {"name": "x"}]};
        "integer key":
            {"ports": [{"port": 80}, {"port": 443}]}
            + {"$setElementOrder/ports": [{"port": 443}, {"port": 80}]}
            => {"ports": [{"port": 443}, {"port": 80}]};
        "with $patch: replace in the list":
            {"parts": [{"name": "a"}, {"name": "b"}]}
            + {"$setElementOrder/parts": [{"name": "z"}],
               "parts": [{"$patch": "replace"}, {"name": "z"}]}
            => {"parts": [{"name": "z"}]};
        "list the live object lacks":
            {}
            + {"$setElementOrder/parts": [{"name": "b"}, {"name": "a"}],
               "parts": [{"name": "b"}, {"name": "a", "count": null}]}
            => {"parts": [{"name": "b"}, {"name": "a", "count": null}]};
        "order alone for a list absent everywhere adds nothing":
            {"name": "w"} + {"$setElementOrder/tags": ["a"]} => {"name": "w"};
        "nested list":
            {"children": [{"name": "c1", "parts": [{"name": "a"}, {"name": "b"}]}]}
            + {"children": [{"name": "c1",
                             "$setElementOrder/parts": [{"name": "b"}, {"name": "a"}]}]}
            => {"children": [{"name": "c1", "parts": [{"name": "b"}, {"name": "a"}]}]};
        "outer and inner lists":
            {"children": [{"name": "c1", "parts": [{"name": "a"}, {"name": "b"}]}, {"name": "c2"}]}
            + {"$setElementOrder/children": [{"name": "c2"}, {"name": "c1"}],
               "children": [{"name": "c1",
                             "$setElementOrder/parts": [{"name": "b"}, {"name": "a"}]}]}
            => {"children": [{"name": "c2"},
                             {"name": "c1", "parts": [{"name": "b"}, {"name": "a"}]}]};
        "two lists in one patch":
            {"parts": [{"name": "a"}, {"name": "b"}], "tags": ["x", "y"]}
            + {"$setElementOrder/parts": [{"name": "b"}, {"name": "a"}],
               "$setElementOrder/tags": ["y", "x"]}
            => {"parts": [{"name": "b"}, {"name": "a"}], "tags": ["y", "x"]};
        "reorders an atomic list too":
            {"flags": ["a", "b"]} + {"$setElementOrder/flags": ["b", "a"]} => {"flags": ["b", "a"]};
        "scalars: reorder only":
            {"tags": ["a", "b", "c"]} + {"$setElementOrder/tags": ["c", "b", "a"]}
            => {"tags": ["c", "b", "a"]};
        "scalars: add in the middle":
            {"tags": ["a", "b"]} + {"$setElementOrder/tags": ["a", "c", "b"], "tags": ["c"]}
            => {"tags": ["a", "c", "b"]};
        "scalars: server-only value keeps its live neighbour":
            {"tags": ["a", "s", "b"]} + {"$setElementOrder/tags": ["b", "a"]}
            => {"tags": ["s", "b", "a"]};
        "scalars: server-only value and an addition":
            {"tags": ["a", "s", "b"]} + {"$setElementOrder/tags": ["a", "c", "b"], "tags": ["c"]}
            => {"tags": ["a", "c", "s", "b"]};
        "integers: reorder":
            {"levels": [1, 2, 3]} + {"$setElementOrder/levels": [3, 1, 2]} => {"levels": [3, 1, 2]};
        "integers: add in the middle":
            {"levels": [1, 3]} + {"$setElementOrder/levels": [1, 2, 3], "levels": [2]}
            => {"levels": [1, 2, 3]};
        // extractKey accepts an empty name; like any field the schema lacks, it names nothing here.
        "empty list name names no field":
            {"tags": ["a"]} + {"$setElementOrder/": ["a"]} => {"tags": ["a"]};
    ]
}

#[test]
fn set_element_order_directive() {
    check(set_element_order());
}

/// Every rule applies at any depth: `children` are `Widget`s in a list merged by `name`.
fn nested() -> Vec<Case> {
    cases![
        "item merged two lists deep":
            {"children": [{"name": "c1", "parts": [{"name": "a", "count": 1}]}]}
            + {"children": [{"name": "c1", "parts": [{"name": "a", "count": 2}, {"name": "b"}]}]}
            => {"children": [{"name": "c1", "parts": [{"name": "a", "count": 2}, {"name": "b"}]}]};
        "grandchild's set merged":
            {"children": [{"name": "c1", "children": [{"name": "g1", "tags": ["x"]}]}]}
            + {"children": [{"name": "c1", "children": [{"name": "g1", "tags": ["y"]}]}]}
            => {"children": [{"name": "c1", "children": [{"name": "g1", "tags": ["y", "x"]}]}]};
        "null deletes a grandchild's field":
            {"children": [{"name": "c1", "children": [{"name": "g1", "color": "red", "size": 1}]}]}
            + {"children": [{"name": "c1", "children": [{"name": "g1", "color": null}]}]}
            => {"children": [{"name": "c1", "children": [{"name": "g1", "size": 1}]}]};
        "new child taken with its lists":
            {"children": [{"name": "c1"}]}
            + {"children": [{"name": "c2", "parts": [{"name": "a"}], "tags": ["x"]}]}
            => {"children": [{"name": "c2", "parts": [{"name": "a"}], "tags": ["x"]},
                             {"name": "c1"}]};
        "change in one child leaves its siblings":
            {"children": [{"name": "c1", "size": 1}, {"name": "c2", "size": 2}]}
            + {"children": [{"name": "c2", "size": 3}]}
            => {"children": [{"name": "c1", "size": 1}, {"name": "c2", "size": 3}]};
        "child's ports merged by integer key":
            {"children": [{"name": "c1", "ports": [{"port": 80, "protocol": "TCP"}]}]}
            + {"children": [{"name": "c1", "ports": [{"port": 80, "name": "http"}, {"port": 81}]}]}
            => {"children": [{"name": "c1",
                              "ports": [{"port": 80, "protocol": "TCP", "name": "http"},
                                        {"port": 81}]}]};
        "null deletes a child's list":
            {"children": [{"name": "c1", "parts": [{"name": "a"}], "tags": ["x"]}]}
            + {"children": [{"name": "c1", "parts": null}]}
            => {"children": [{"name": "c1", "tags": ["x"]}]};
        "object in a grandchild's part merged":
            {"children": [{"name": "c1",
                           "children": [{"name": "g1",
                                         "parts": [{"name": "a", "finish": {"color": "red"}}]}]}]}
            + {"children": [{"name": "c1",
                             "children": [{"name": "g1",
                                           "parts": [{"name": "a", "finish": {"gloss": 1}}]}]}]}
            => {"children": [{"name": "c1",
                              "children": [{"name": "g1",
                                            "parts": [{"name": "a",
                                                       "finish": {"color": "red",
                                                                  "gloss": 1}}]}]}]};
        "map of objects in a child":
            {"children": [{"name": "c1", "slots": {"x": {"name": "p", "holes": [1]}}}]}
            + {"children": [{"name": "c1", "slots": {"x": {"holes": [2]}}}]}
            => {"children": [{"name": "c1", "slots": {"x": {"name": "p", "holes": [2, 1]}}}]};
        "new grandchild in an existing child":
            {"children": [{"name": "c1", "children": [{"name": "g1"}]}]}
            + {"children": [{"name": "c1", "children": [{"name": "g2", "tags": ["t"]}]}]}
            => {"children": [{"name": "c1",
                              "children": [{"name": "g2", "tags": ["t"]}, {"name": "g1"}]}]};
        "object in a child's nested object":
            {"children": [{"name": "c1", "frame": {"corner": {"radius": 1, "style": "s"}}}]}
            + {"children": [{"name": "c1", "frame": {"corner": {"radius": null}, "width": 2}}]}
            => {"children": [{"name": "c1", "frame": {"corner": {"style": "s"}, "width": 2}}]};
    ]
}

#[test]
fn rules_apply_at_every_depth() {
    check(nested());
}

/// A field the schema does not know merges like JSON merge patch: objects merge, lists are
/// replaced; directives in objects still apply. (Upstream looks up every such field in the Go
/// type and fails on unknown ones; the API server never meets them, its live objects being
/// typed.)
fn unknown_fields() -> Vec<Case> {
    cases![
        "unknown list replaced": {"extra": [1, 2]} + {"extra": [3]} => {"extra": [3]};
        "unknown object merged":
            {"extra": {"a": 1}} + {"extra": {"b": 2}} => {"extra": {"a": 1, "b": 2}};
        "unknown list of objects replaced, not merged by name":
            {"extra": [{"name": "a", "v": 1}]} + {"extra": [{"name": "a", "w": 2}]}
            => {"extra": [{"name": "a", "w": 2}]};
        "null deletes inside an unknown object":
            {"extra": {"a": 1, "b": 2}} + {"extra": {"a": null}} => {"extra": {"b": 2}};
        "$patch: replace in an unknown object":
            {"extra": {"a": 1}} + {"extra": {"$patch": "replace", "b": 2}} => {"extra": {"b": 2}};
        "delete element in an unknown list taken verbatim":
            {"extra": [{"name": "a"}]} + {"extra": [{"name": "a", "$patch": "delete"}]}
            => {"extra": [{"name": "a", "$patch": "delete"}]};
        "unknown field of a known object":
            {"frame": {"extra": [1]}} + {"frame": {"extra": [2]}} => {"frame": {"extra": [2]}};
        "fields below an unknown object":
            {"extra": {"inner": [1], "m": {"a": 1}}} + {"extra": {"inner": [2], "m": {"b": 2}}}
            => {"extra": {"inner": [2], "m": {"a": 1, "b": 2}}};
        "unknown field in a merged list item":
            {"parts": [{"name": "a", "extra": [1]}]} + {"parts": [{"name": "a", "extra": [2]}]}
            => {"parts": [{"name": "a", "extra": [2]}]};
        "$deleteFromPrimitiveList on an unknown list":
            {"extra": [1, 2]} + {"$deleteFromPrimitiveList/extra": [1]} => {"extra": [2]};
    ]
}

#[test]
fn unknown_fields_merge_like_json() {
    check(unknown_fields());
}

/// kubectl apply's patches (upstream `CreateThreeWayMergePatch` from the last-applied
/// configuration, the new one and the live object), applied to live objects with fields only
/// the server set: those must survive. Each comment gives last-applied → new configuration.
fn kubectl_apply() -> Vec<Case> {
    cases![
        // {name, color: red, size: 1} → {name, size: 1}
        "field dropped from the configuration is deleted, server fields stay":
            {"name": "w", "color": "red", "size": 1, "enabled": true} + {"color": null}
            => {"name": "w", "size": 1, "enabled": true};
        // parts [a (material m1), b] → [a (material m2), b]
        "changed part: server defaults and server-added parts stay":
            {"parts": [{"name": "a", "material": "m1", "count": 3}, {"name": "b"}, {"name": "s"}]}
            + {"$setElementOrder/parts": [{"name": "a"}, {"name": "b"}],
               "parts": [{"material": "m2", "name": "a"}]}
            => {"parts": [{"name": "a", "material": "m2", "count": 3}, {"name": "b"},
                          {"name": "s"}]};
        // parts [a, b] → [a]
        "part dropped from the configuration":
            {"parts": [{"name": "a"}, {"name": "b"}, {"name": "s"}]}
            + {"$setElementOrder/parts": [{"name": "a"}],
               "parts": [{"$patch": "delete", "name": "b"}]}
            => {"parts": [{"name": "a"}, {"name": "s"}]};
        // parts [a, c] → [a, b, c]
        "part inserted in the middle":
            {"parts": [{"name": "a"}, {"name": "c"}, {"name": "s"}]}
            + {"$setElementOrder/parts": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
               "parts": [{"name": "b"}]}
            => {"parts": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "s"}]};
        // parts [a, b] → [b, a]
        "parts reordered: a server-only part keeps its neighbour":
            {"parts": [{"name": "a"}, {"name": "s"}, {"name": "b"}]}
            + {"$setElementOrder/parts": [{"name": "b"}, {"name": "a"}]}
            => {"parts": [{"name": "s"}, {"name": "b"}, {"name": "a"}]};
        // tags [x, y] → [x]
        "tag dropped (like a finalizer); server tag stays":
            {"tags": ["x", "y", "srv"]}
            + {"$deleteFromPrimitiveList/tags": ["y"], "$setElementOrder/tags": ["x"]}
            => {"tags": ["x", "srv"]};
        // tags [x] → [x, y]
        "tag added; server tag stays":
            {"tags": ["x", "srv"]} + {"$setElementOrder/tags": ["x", "y"], "tags": ["y"]}
            => {"tags": ["x", "y", "srv"]};
        // tags [x] → no tags: the whole list goes, server additions included.
        "list dropped from the configuration is deleted whole":
            {"name": "w", "tags": ["x", "srv"]} + {"tags": null} => {"name": "w"};
        // settings {mode: fast, fast: {level: 1}} → {mode: slow, slow: {delay: 5}}
        "settings switched with $retainKeys: the server default goes too":
            {"settings": {"mode": "fast", "fast": {"level": 1}, "retries": 3}}
            + {"settings": {"$retainKeys": ["mode", "slow"], "fast": null, "mode": "slow",
                            "slow": {"delay": 5}}}
            => {"settings": {"mode": "slow", "slow": {"delay": 5}}};
        // mounts [data (disk)] → [data (tmpfs)]
        "mount switched from disk to tmpfs":
            {"mounts": [{"name": "data", "disk": {"size": 1}, "readOnly": false}, {"name": "srv"}]}
            + {"$setElementOrder/mounts": [{"name": "data"}],
               "mounts": [{"$retainKeys": ["name", "tmpfs"], "disk": null, "name": "data",
                           "tmpfs": {"limit": 2}}]}
            => {"mounts": [{"name": "data", "tmpfs": {"limit": 2}}, {"name": "srv"}]};
        // labels {app: w, tier: fe} → {app: w2}
        "labels changed and dropped; server labels stay":
            {"labels": {"app": "w", "tier": "fe", "srv": "x"}}
            + {"labels": {"app": "w2", "tier": null}}
            => {"labels": {"app": "w2", "srv": "x"}};
        // ports [{port: 80, name: http}] → [{port: 8080, name: http}]
        "port number changed: the old port is deleted":
            {"ports": [{"port": 80, "name": "http", "protocol": "TCP"}]}
            + {"$setElementOrder/ports": [{"port": 8080}],
               "ports": [{"name": "http", "port": 8080}, {"$patch": "delete", "port": 80}]}
            => {"ports": [{"name": "http", "port": 8080}]};
        // parts [a, b] → [a, c]; the live order ranks `s` before `c` as in the
        // set_element_order case "delete and add with a server-only item".
        "part replaced by another":
            {"parts": [{"name": "a"}, {"name": "b"}, {"name": "s"}]}
            + {"$setElementOrder/parts": [{"name": "a"}, {"name": "c"}],
               "parts": [{"name": "c"}, {"$patch": "delete", "name": "b"}]}
            => {"parts": [{"name": "a"}, {"name": "s"}, {"name": "c"}]};
        // children [c1, c2] → [c2]
        "child dropped from the configuration":
            {"children": [{"name": "c1", "size": 9}, {"name": "c2", "size": 1}]}
            + {"$setElementOrder/children": [{"name": "c2"}],
               "children": [{"$patch": "delete", "name": "c1"}]}
            => {"children": [{"name": "c2", "size": 1}]};
        // ports [80] → [80, 443]
        "port added; the server's protocol stays":
            {"ports": [{"port": 80, "protocol": "TCP"}]}
            + {"$setElementOrder/ports": [{"port": 80}, {"port": 443}], "ports": [{"port": 443}]}
            => {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 443}]};
        // levels [1, 2] → [1]
        "integer dropped from a set; server value stays":
            {"levels": [1, 2, 7]}
            + {"$deleteFromPrimitiveList/levels": [2], "$setElementOrder/levels": [1]}
            => {"levels": [1, 7]};
        // settings {mode: fast, retries: 2} → {mode: fast}: $retainKeys also clears what the
        // server defaulted.
        "field dropped from a retainKeys object":
            {"settings": {"mode": "fast", "retries": 2, "fast": {"level": 1}}}
            + {"settings": {"$retainKeys": ["mode"], "retries": null}}
            => {"settings": {"mode": "fast"}};
        // frame {width: 1, height: 2} → {width: 1, material: wood}
        "nested field added and another dropped; server field stays":
            {"frame": {"width": 1, "height": 2, "corner": {"radius": 3}}}
            + {"frame": {"height": null, "material": "wood"}}
            => {"frame": {"width": 1, "material": "wood", "corner": {"radius": 3}}};
        // configuration unchanged: kubectl still restates the order of a list the server grew
        "unchanged configuration changes nothing":
            {"name": "w", "tags": ["x", "srv"], "enabled": true} + {"$setElementOrder/tags": ["x"]}
            => {"name": "w", "tags": ["x", "srv"], "enabled": true};
        // steps [{s1, run: a}] → [{s1, run: b}]
        "atomic list changed: sent whole":
            {"steps": [{"name": "s1", "run": "a"}]} + {"steps": [{"name": "s1", "run": "b"}]}
            => {"steps": [{"name": "s1", "run": "b"}]};
        // color red → blue while someone else set it to green
        "value changed by someone else is overwritten":
            {"color": "green"} + {"color": "blue"} => {"color": "blue"};
        // children [c1 {parts [a (m1)]}] → [c1 {parts [a (m2)]}]
        "part of a child changed; the server's fields in the child stay":
            {"children": [{"name": "c1", "size": 9,
                           "parts": [{"name": "a", "material": "m1", "count": 1}, {"name": "s"}]}]}
            + {"$setElementOrder/children": [{"name": "c1"}],
               "children": [{"$setElementOrder/parts": [{"name": "a"}], "name": "c1",
                             "parts": [{"material": "m2", "name": "a"}]}]}
            => {"children": [{"name": "c1", "size": 9,
                              "parts": [{"name": "a", "material": "m2", "count": 1},
                                        {"name": "s"}]}]};
    ]
}

#[test]
fn kubectl_apply_patches() {
    check(kubectl_apply());
}

/// Patches upstream rejects (`patch.go`; messages from `mergepatch/errors.go`).
fn error_cases() -> Vec<(&'static str, Value, Value, SmpError)> {
    vec![
        (
            "$patch: merge in an object",
            json!({"frame": {"width": 1}}),
            json!({"frame": {"$patch": "merge"}}),
            SmpError::BadPatchType {
                directive: "merge".into(),
                map: r#"{"$patch":"merge"}"#.into(),
            },
        ),
        (
            "$patch: merge in a list",
            json!({"parts": [{"name": "a"}]}),
            json!({"parts": [{"$patch": "merge"}]}),
            SmpError::MergeDirectiveInList,
        ),
        (
            "unknown $patch at the root",
            json!({}),
            json!({"$patch": "explode"}),
            SmpError::BadPatchType {
                directive: "explode".into(),
                map: r#"{"$patch":"explode"}"#.into(),
            },
        ),
        (
            "unknown $patch in a list",
            json!({"parts": [{"name": "a"}]}),
            json!({"parts": [{"name": "a", "$patch": "explode"}]}),
            SmpError::BadPatchType {
                directive: "explode".into(),
                map: r#"{"name":"a","$patch":"explode"}"#.into(),
            },
        ),
        (
            "$patch that is not a string",
            json!({"frame": {}}),
            json!({"frame": {"$patch": 1}}),
            SmpError::BadPatchType {
                directive: "1".into(),
                map: r#"{"$patch":1}"#.into(),
            },
        ),
        (
            "item without merge key",
            json!({"parts": [{"name": "a"}]}),
            json!({"parts": [{"count": 1}]}),
            SmpError::NoMergeKey {
                map: r#"{"count":1}"#.into(),
                key: "name".into(),
            },
        ),
        (
            "delete element without merge key",
            json!({"parts": [{"name": "a"}]}),
            json!({"parts": [{"$patch": "delete"}]}),
            SmpError::NoMergeKey {
                map: r#"{"$patch":"delete"}"#.into(),
                key: "name".into(),
            },
        ),
        (
            "live item without merge key",
            json!({"parts": [{"material": "x"}]}),
            json!({"parts": [{"name": "a"}]}),
            SmpError::NoMergeKey {
                map: r#"{"material":"x"}"#.into(),
                key: "name".into(),
            },
        ),
        (
            "list of objects marked merge without merge key",
            json!({"loose": [{"a": 1}]}),
            json!({"loose": [{"b": 2}]}),
            SmpError::MissingMergeKey("loose".into()),
        ),
        (
            "$retainKeys not a list",
            json!({}),
            json!({"$retainKeys": "name"}),
            SmpError::BadRetainKeys,
        ),
        (
            "patch key missing from $retainKeys",
            json!({"settings": {"mode": "fast"}}),
            json!({"settings": {"$retainKeys": ["mode"], "retries": 1}}),
            SmpError::BadRetainKeys,
        ),
        (
            "$setElementOrder not a list",
            json!({"parts": [{"name": "a"}]}),
            json!({"$setElementOrder/parts": {"name": "a"}}),
            SmpError::BadArgType {
                expected: "slice",
                got: "map",
            },
        ),
        (
            "patch item missing from $setElementOrder",
            json!({"parts": [{"name": "a"}]}),
            json!({"$setElementOrder/parts": [{"name": "a"}], "parts": [{"name": "x"}]}),
            SmpError::OrderMismatch {
                patch: r#"[{"name":"x"}]"#.into(),
                order: r#"[{"name":"a"}]"#.into(),
            },
        ),
        (
            "patch order against $setElementOrder",
            json!({"parts": [{"name": "a"}, {"name": "b"}]}),
            json!({"$setElementOrder/parts": [{"name": "a"}, {"name": "b"}],
                   "parts": [{"name": "b"}, {"name": "a"}]}),
            SmpError::OrderMismatch {
                patch: r#"[{"name":"b"},{"name":"a"}]"#.into(),
                order: r#"[{"name":"a"},{"name":"b"}]"#.into(),
            },
        ),
        (
            "scalar order against $setElementOrder",
            json!({"tags": ["a", "b"]}),
            json!({"$setElementOrder/tags": ["a", "b"], "tags": ["b", "a"]}),
            SmpError::OrderMismatch {
                patch: r#"["b","a"]"#.into(),
                order: r#"["a","b"]"#.into(),
            },
        ),
        (
            "$setElementOrder item without merge key",
            json!({"parts": [{"name": "a"}]}),
            json!({"$setElementOrder/parts": [{"title": "a"}], "parts": [{"name": "a"}]}),
            SmpError::NoMergeKey {
                map: r#"{"title":"a"}"#.into(),
                key: "name".into(),
            },
        ),
        (
            "$setElementOrder alone, item without merge key",
            json!({"parts": [{"name": "a"}]}),
            json!({"$setElementOrder/parts": [{"title": "a"}]}),
            SmpError::NoMergeKey {
                map: r#"{"title":"a"}"#.into(),
                key: "name".into(),
            },
        ),
        (
            "$setElementOrder for a live value that is not a list",
            json!({"parts": "x"}),
            json!({"$setElementOrder/parts": [{"name": "a"}]}),
            SmpError::BadArgType {
                expected: "slice",
                got: "string",
            },
        ),
        (
            "$setElementOrder with a patch value that is not a list",
            json!({"parts": [{"name": "a"}]}),
            json!({"$setElementOrder/parts": [{"name": "a"}], "parts": {"name": "a"}}),
            SmpError::BadArgType {
                expected: "slice",
                got: "map",
            },
        ),
        (
            "$setElementOrder without list name",
            json!({}),
            json!({"$setElementOrder": ["a"]}),
            SmpError::BadSetElementOrder,
        ),
        (
            "$deleteFromPrimitiveList without list name",
            json!({"tags": ["a"]}),
            json!({"$deleteFromPrimitiveList": ["a"]}),
            SmpError::BadPrimitiveList,
        ),
        (
            "mixed element types in a set",
            json!({"levels": [1]}),
            json!({"levels": ["1"]}),
            SmpError::MixedListTypes(r#"[1] ["1"]"#.into()),
        ),
        (
            "directive element in a set",
            json!({"tags": ["a"]}),
            json!({"tags": [{"$patch": "replace"}]}),
            SmpError::MixedListTypes(r#"["a"] [{"$patch":"replace"}]"#.into()),
        ),
        (
            "scalar in a list of objects",
            json!({"parts": [{"name": "a"}]}),
            json!({"parts": ["b"]}),
            SmpError::MixedListTypes(r#"[{"name":"a"}] ["b"]"#.into()),
        ),
        (
            "list of lists",
            json!({"tags": [["a"]]}),
            json!({"tags": [["b"]]}),
            SmpError::ListOfLists,
        ),
        (
            "patch not an object",
            json!({}),
            json!([1]),
            SmpError::BadJsonDoc,
        ),
        (
            "original not an object",
            json!([1]),
            json!({}),
            SmpError::BadJsonDoc,
        ),
    ]
}

#[test]
fn errors() {
    let schemas = widget_schemas();
    let root = schemas.node("Widget");
    for (name, original, patch, expected) in error_cases() {
        assert_eq!(
            strategic_merge(&original, &patch, root),
            Err(expected),
            "{name}"
        );
    }
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {"spec": {
                "containers": [{
                    "name": "nginx", "image": "nginx:1.25",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
                }, {"name": "sidecar", "image": "busybox"}],
                "tolerations": [{"key": "x", "operator": "Exists"}],
                "volumes": [{"name": "data", "emptyDir": {}}]
            }}
        }
    })
}

#[test]
fn kubernetes_schemas() {
    let root = Schemas::builtin()
        .root("apps", "v1", "Deployment")
        .expect("Deployment schema");
    let live = deployment();
    type Check = fn(&Value);
    let cases: &[(&str, Value, Check)] = &[
        (
            "kubectl apply image change keeps ports and other containers",
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
                "containers": [{"image": "nginx:1.26", "name": "nginx"}]}}}}),
            |o| {
                let c = &o["spec"]["template"]["spec"]["containers"];
                assert_eq!(c[0]["image"], "nginx:1.26");
                assert_eq!(
                    c[0]["ports"],
                    json!([{"containerPort": 80, "protocol": "TCP"}])
                );
                assert_eq!(c[1]["name"], "sidecar");
            },
        ),
        (
            "env merges by name, $patch delete removes one",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx",
                "env": [{"name": "C", "value": "3"}, {"name": "A", "$patch": "delete"}]}]}}}}),
            |o| {
                assert_eq!(
                    o["spec"]["template"]["spec"]["containers"][0]["env"],
                    json!([{"name": "C", "value": "3"}, {"name": "B", "value": "2"}])
                );
            },
        ),
        (
            "tolerations are atomic: replaced",
            json!({"spec": {"template": {"spec": {"tolerations": [{"key": "y", "operator": "Exists"}]}}}}),
            |o| {
                assert_eq!(
                    o["spec"]["template"]["spec"]["tolerations"],
                    json!([{"key": "y", "operator": "Exists"}])
                );
            },
        ),
        (
            "strategy with $retainKeys drops rollingUpdate when switching to Recreate",
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            |o| assert_eq!(o["spec"]["strategy"], json!({"type": "Recreate"})),
        ),
        (
            "finalizers merge as a set; $deleteFromPrimitiveList removes",
            json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
            |o| assert_eq!(o["metadata"]["finalizers"], json!(["c", "b"])),
        ),
        (
            "labels merge, null deletes (kubectl label x-)",
            json!({"metadata": {"labels": {"app": null, "tier": "fe"}}}),
            |o| assert_eq!(o["metadata"]["labels"], json!({"tier": "fe"})),
        ),
        (
            "rollout pause/resume: null removes spec.paused",
            json!({"spec": {"paused": null, "replicas": 3}}),
            |o| {
                assert!(o["spec"].get("paused").is_none());
                assert_eq!(o["spec"]["replicas"], 3);
            },
        ),
        (
            "volumes merge by name",
            json!({"spec": {"template": {"spec": {"volumes": [{"name": "cache", "emptyDir": {}}]}}}}),
            |o| {
                let names: Vec<&Value> = o["spec"]["template"]["spec"]["volumes"]
                    .as_array()
                    .map(|a| a.iter().map(|v| &v["name"]).collect())
                    .unwrap_or_default();
                assert_eq!(names, [&json!("cache"), &json!("data")]);
            },
        ),
        ("empty patch is a no-op", json!({}), |o| {
            assert_eq!(o, &deployment())
        }),
    ];
    for (name, patch, check) in cases {
        let out = strategic_merge(&live, patch, root)
            .unwrap_or_else(|e| panic!("{name}: unexpected error {e}"));
        check(&out);
    }
}

#[test]
fn node_cordon_and_uncordon() {
    let root = Schemas::builtin()
        .root("", "v1", "Node")
        .expect("Node schema");
    let node = json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.0.0.0/24"}});
    let cordoned =
        strategic_merge(&node, &json!({"spec": {"unschedulable": true}}), root).expect("cordon");
    assert_eq!(cordoned["spec"]["unschedulable"], true);
    let uncordoned = strategic_merge(&cordoned, &json!({"spec": {"unschedulable": null}}), root)
        .expect("uncordon");
    assert_eq!(uncordoned, node);
}

#[test]
fn unknown_schema_replaces_lists_and_merges_maps() {
    let schemas = Schemas::default();
    let out = strategic_merge(
        &json!({"spec": {"items": [1, 2], "m": {"a": 1}}}),
        &json!({"spec": {"items": [3], "m": {"b": 2}}}),
        SchemaNode::unknown(&schemas),
    )
    .expect("merge");
    assert_eq!(out, json!({"spec": {"items": [3], "m": {"a": 1, "b": 2}}}));
}
