//! Strategic merge patch tests.
//!
//! Most cases are upstream's own (`strategicpatch/patch_test.go`), extracted verbatim into
//! `testdata/upstream_cases.json` by `scripts/gen_smp_cases.py` and run against upstream's test
//! schema `testdata/swagger-merge-item-v3.json`: applying each case's two-way patch to its
//! original must give its modified (or two-way result) object, and applying its three-way patch
//! to its current object must give its result. The rest exercise the real Kubernetes schemas.

use serde_json::{json, Value};

use super::*;
use crate::schema::Schemas;

fn merge_item_schemas() -> Schemas {
    let doc: Value = serde_json::from_str(include_str!("../testdata/swagger-merge-item-v3.json"))
        .expect("test schema parses");
    let defs = doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas")
        .clone();
    Schemas::from_definitions(defs)
}

fn yaml(text: &str) -> Value {
    let v: Value = serde_yaml_ng::from_str(text).expect("test YAML parses");
    if v.is_null() {
        json!({})
    } else {
        v
    }
}

struct Case {
    description: String,
    base: Value,
    patch: Value,
    expected: Value,
}

fn upstream_cases() -> Vec<Case> {
    let fixture: Value = serde_json::from_str(include_str!("../testdata/upstream_cases.json"))
        .expect("fixture parses");
    let mut out = Vec::new();
    let field = |c: &Value, f: &str| c.get(f).and_then(Value::as_str).map(yaml);
    let mut push = |c: &Value, get: &dyn Fn(&Value, &str) -> Option<Value>| {
        let description = c["description"].as_str().unwrap_or_default().to_string();
        if let Some(two_way) = get(c, "twoWay") {
            out.push(Case {
                description: format!("{description}/TwoWay"),
                base: get(c, "original").unwrap_or_else(|| json!({})),
                patch: two_way,
                expected: get(c, "twoWayResult")
                    .or_else(|| get(c, "modified"))
                    .unwrap_or_else(|| json!({})),
            });
        }
        if let (Some(current), Some(three_way), Some(result)) =
            (get(c, "current"), get(c, "threeWay"), get(c, "result"))
        {
            out.push(Case {
                description: format!("{description}/ThreeWay"),
                base: current,
                patch: three_way,
                expected: result,
            });
        }
    };
    for c in fixture["rawCases"].as_array().expect("rawCases") {
        push(c, &|c: &Value, f: &str| field(c, f));
    }
    let structured = yaml(fixture["yamlCases"].as_str().expect("yamlCases"));
    for c in structured["testCases"].as_array().expect("testCases") {
        push(c, &|c: &Value, f: &str| {
            c.get(f).filter(|v| !v.is_null()).cloned()
        });
    }
    out
}

#[test]
fn upstream_cases_apply() {
    let schemas = merge_item_schemas();
    let root = schemas.node("mergeItem");
    let cases = upstream_cases();
    assert!(cases.len() > 150, "fixture has {} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        match strategic_merge(&c.base, &c.patch, root) {
            Ok(got) if got == c.expected => {}
            Ok(got) => failures.push(format!(
                "{}:\n  patch:    {}\n  expected: {}\n  got:      {}",
                c.description, c.patch, c.expected, got
            )),
            Err(e) => failures.push(format!("{}: error {e}", c.description)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} upstream cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Table of directive cases on upstream's test schema (`mergingList` merges by `name`,
/// `mergingIntList` merges scalars, `nonMergingList` replaces, `retainKeysMap` …).
#[test]
fn directives() {
    let schemas = merge_item_schemas();
    let root = schemas.node("mergeItem");
    let cases: &[(&str, Value, Value, Value)] = &[
        (
            "null deletes a key; unmatched null is ignored",
            json!({"name": "a", "value": "b"}),
            json!({"value": null, "other": null}),
            json!({"name": "a"}),
        ),
        (
            "$patch: replace on a map replaces it",
            json!({"simpleMap": {"a": "1", "b": "2"}}),
            json!({"simpleMap": {"$patch": "replace", "c": "3"}}),
            json!({"simpleMap": {"c": "3"}}),
        ),
        (
            "$patch: delete on a map empties it",
            json!({"simpleMap": {"a": "1"}}),
            json!({"simpleMap": {"$patch": "delete"}}),
            json!({"simpleMap": {}}),
        ),
        (
            "$patch: delete element of a merged list",
            json!({"mergingList": [{"name": "a"}, {"name": "b", "value": "1"}]}),
            json!({"mergingList": [{"name": "b", "$patch": "delete"}]}),
            json!({"mergingList": [{"name": "a"}]}),
        ),
        (
            "$patch: replace element replaces the whole list",
            json!({"mergingList": [{"name": "a"}, {"name": "b"}]}),
            json!({"mergingList": [{"name": "c"}, {"$patch": "replace"}]}),
            json!({"mergingList": [{"name": "c"}]}),
        ),
        (
            "merged list keeps server-only items after patch items in live order",
            json!({"mergingList": [{"name": "a", "value": "1"}, {"name": "b"}]}),
            json!({"mergingList": [{"name": "c"}, {"name": "a", "other": "x"}]}),
            json!({"mergingList": [{"name": "c"}, {"name": "a", "value": "1", "other": "x"}, {"name": "b"}]}),
        ),
        (
            "$setElementOrder sets the order of a merged list",
            json!({"mergingList": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
            json!({"$setElementOrder/mergingList": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
                   "mergingList": [{"name": "a", "value": "1"}]}),
            json!({"mergingList": [{"name": "c"}, {"name": "a", "value": "1"}, {"name": "b"}]}),
        ),
        (
            "$setElementOrder on a list of scalars",
            json!({"mergingIntList": [1, 2, 3]}),
            json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
            json!({"mergingIntList": [3, 2, 1]}),
        ),
        (
            "scalar merge list is a set union",
            json!({"mergingIntList": [1, 2]}),
            json!({"mergingIntList": [2, 3]}),
            json!({"mergingIntList": [1, 2, 3]}),
        ),
        (
            "$deleteFromPrimitiveList removes scalars",
            json!({"mergingIntList": [1, 2, 3]}),
            json!({"$deleteFromPrimitiveList/mergingIntList": [2]}),
            json!({"mergingIntList": [1, 3]}),
        ),
        (
            "non-merging list is replaced",
            json!({"nonMergingList": [{"name": "a"}, {"name": "b"}]}),
            json!({"nonMergingList": [{"name": "c"}]}),
            json!({"nonMergingList": [{"name": "c"}]}),
        ),
        (
            "$retainKeys drops keys not listed",
            json!({"retainKeysMap": {"name": "n", "value": "v", "other": "o"}}),
            json!({"retainKeysMap": {"$retainKeys": ["name", "other"], "other": "p"}}),
            json!({"retainKeysMap": {"name": "n", "other": "p"}}),
        ),
        (
            "type change takes the patch value without directives",
            json!({"name": "a"}),
            json!({"name": {"x": {"$patch": "delete"}, "y": 1}}),
            json!({"name": {"y": 1}}),
        ),
        (
            "new key drops nulls inside",
            json!({}),
            json!({"simpleMap": {"a": null, "b": "1"}}),
            json!({"simpleMap": {"b": "1"}}),
        ),
    ];
    for (name, original, patch, expected) in cases {
        let got = strategic_merge(original, patch, root)
            .unwrap_or_else(|e| panic!("{name}: unexpected error {e}"));
        assert_eq!(&got, expected, "{name}");
    }
}

#[test]
fn errors() {
    let schemas = merge_item_schemas();
    let root = schemas.node("mergeItem");
    let cases: &[(&str, Value, Value, SmpError)] = &[
        (
            "$patch: merge in a map",
            json!({"simpleMap": {"a": "1"}}),
            json!({"simpleMap": {"$patch": "merge"}}),
            SmpError::BadPatchType {
                directive: "merge".into(),
                map: r#"{"$patch":"merge"}"#.into(),
            },
        ),
        (
            "$patch: merge in a list",
            json!({"mergingList": [{"name": "a"}]}),
            json!({"mergingList": [{"$patch": "merge"}]}),
            SmpError::MergeDirectiveInList,
        ),
        (
            "unknown $patch",
            json!({}),
            json!({"$patch": "explode"}),
            SmpError::BadPatchType {
                directive: "explode".into(),
                map: r#"{"$patch":"explode"}"#.into(),
            },
        ),
        (
            "element without merge key",
            json!({"mergingList": [{"name": "a"}]}),
            json!({"mergingList": [{"value": "x"}]}),
            SmpError::NoMergeKey {
                map: r#"{"value":"x"}"#.into(),
                key: "name".into(),
            },
        ),
        (
            "retainKeys not a list",
            json!({}),
            json!({"$retainKeys": "name"}),
            SmpError::BadRetainKeys,
        ),
        (
            "patch key missing from retainKeys",
            json!({}),
            json!({"$retainKeys": ["name"], "value": "v"}),
            SmpError::BadRetainKeys,
        ),
        (
            "setElementOrder not a list",
            json!({}),
            json!({"$setElementOrder/mergingList": {"name": "a"}}),
            SmpError::BadSetElementOrder,
        ),
        (
            "mixed element types",
            json!({"mergingIntList": [1]}),
            json!({"mergingIntList": ["a"]}),
            SmpError::MixedListTypes(r#"[1] ["a"]"#.into()),
        ),
        (
            "list of lists",
            json!({"mergingIntList": [[1]]}),
            json!({"mergingIntList": [[2]]}),
            SmpError::ListOfLists,
        ),
        ("not an object", json!({}), json!([1]), SmpError::BadJsonDoc),
    ];
    for (name, original, patch, expected) in cases {
        assert_eq!(
            strategic_merge(original, patch, root).as_ref(),
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
