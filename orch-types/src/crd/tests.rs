//! Tests written from the documented rules (Kubernetes "Extend the Kubernetes API with
//! CustomResourceDefinitions" page and the upstream files cited in each module).

use serde_json::{json, Value};

use super::*;
use crate::validation::FieldErrorKind;

const ROOT: &str = "spec.versions[0].schema.openAPIV3Schema";

fn props(v: Value) -> JSONSchemaProps {
    serde_json::from_value(v).expect("test schema parses")
}

fn compile(v: Value) -> Structural {
    match Structural::new(&props(v), &Path::new(ROOT)) {
        Ok(s) => s,
        Err(e) => panic!("schema rejected: {e:?}"),
    }
}

fn reject(v: Value) -> Vec<String> {
    match Structural::new(&props(v), &Path::new(ROOT)) {
        Ok(_) => panic!("schema accepted"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn object(spec: Value) -> Value {
    json!({"type": "object", "properties": {"spec": spec}})
}

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

/// The CronTab schema of the Kubernetes CRD documentation page.
fn crontab() -> Value {
    json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
            "image": {"type": "string"},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 10}
        }}}
    })
}

#[test]
fn crontab_fixture_validates_prunes_and_rejects() {
    let s = compile(crontab());
    let mut ok = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "my-new-cron-object", "junk": 1},
        "spec": {"cronSpec": "* * * * */5", "image": "my-awesome-cron-image", "replicas": 2, "extra": true}});
    assert_eq!(s.prune(&mut ok), vec!["metadata.junk", "spec.extra"]);
    assert!(s.validate(&ok, None).is_empty());
    let bad = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "spec": {"cronSpec": "* * * *", "image": "x", "replicas": 15}});
    let e = messages(&s.validate(&bad, None));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with(
            r#"spec.cronSpec: Invalid value: "* * * *": spec.cronSpec in body should match '^(\d+|"#
        ),
        "{e:?}"
    );
    assert_eq!(e[1], "spec.replicas: Invalid value: 15: spec.replicas in body should be less than or equal to 10");
}

#[test]
fn shirt_crd_from_the_corpus_is_structural() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/kubernetes-website-examples/customresourcedefinition/shirt-resource-definition.yaml"
    );
    // The corpus sits beside the work tree; without it the fixture is the CronTab one above.
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&text).expect("corpus CRD parses");
    assert!(validate_crd_schemas(&crd).is_empty());
}

#[test]
fn non_structural_schemas_are_rejected() {
    let e = reject(object(
        json!({"type": "object", "properties": {"foo": {"description": "x"}}}),
    ));
    assert_eq!(e, vec![format!("{ROOT}.properties[spec].properties[foo].type: Required value: must not be empty for specified object fields")]);
    let e = reject(json!({"properties": {}}));
    assert_eq!(
        e,
        vec![format!(
            "{ROOT}.type: Required value: must not be empty at the root"
        )]
    );
    let e = reject(object(json!({"type": "array"})));
    assert_eq!(
        e,
        vec![format!(
            "{ROOT}.properties[spec].items: Required value: must be specified"
        )]
    );
    let e = reject(object(
        json!({"type": "object", "properties": {"a": {"type": "string"}},
        "additionalProperties": {"type": "string"}}),
    ));
    assert_eq!(e, vec![format!("{ROOT}.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive")]);
    let e = reject(json!({"type": "object", "additionalProperties": {"type": "string"}}));
    assert_eq!(
        e,
        vec![format!(
            "{ROOT}.additionalProperties: Forbidden: must not be used at the root"
        )]
    );
    let e = reject(object(
        json!({"type": "object", "properties": {"a": {"type": "string"}},
        "anyOf": [{"properties": {"b": {"type": "string"}}}]}),
    ));
    assert!(e.contains(&format!("{ROOT}.properties[spec].anyOf[0].properties[b].type: Forbidden: must be empty to be structural")), "{e:?}");
    assert!(e.contains(&format!("{ROOT}.properties[spec].properties[b]: Required value: because it is defined in {ROOT}.properties[spec].anyOf[0].properties[b]")), "{e:?}");
    let e = reject(object(json!({"type": "object", "uniqueItems": true})));
    assert!(e[0].ends_with("uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"));
    let e = reject(object(json!({"type": "null"})));
    assert!(e[0].contains("type cannot be set to null"), "{e:?}");
    let e = reject(object(json!({"type": "string", "pattern": "("})));
    assert!(
        e[0].contains(
            "pattern: Invalid value: \"(\": must be a valid regular expression, but isn't"
        ),
        "{e:?}"
    );
}

#[test]
fn int_or_string_and_preserve_unknown_fields_are_structural() {
    compile(object(json!({"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "free": {"x-kubernetes-preserve-unknown-fields": true}}})));
    compile(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    let e = reject(object(
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": false}),
    ));
    assert!(e[0].ends_with(
        "x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
    ));
}

#[test]
fn metadata_restrictions() {
    compile(
        json!({"type": "object", "properties": {"metadata": {"type": "object",
        "properties": {"name": {"type": "string", "maxLength": 10}}}}}),
    );
    let e = reject(
        json!({"type": "object", "properties": {"metadata": {"type": "object",
        "properties": {"labels": {"type": "object"}}}}}),
    );
    assert!(e.contains(&format!("{ROOT}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified")), "{e:?}");
    let e = reject(
        json!({"type": "object", "properties": {"metadata": {"type": "object",
        "properties": {"name": {"type": "string", "default": "x"}}}}}),
    );
    assert!(e.contains(&format!("{ROOT}.properties[metadata].properties[name].default: Forbidden: must not be set in top-level metadata")), "{e:?}");
    let e = reject(json!({"type": "object", "properties": {"kind": {"type": "integer"}}}));
    assert!(
        e.contains(&format!(
            "{ROOT}.properties[kind].type: Invalid value: \"integer\": must be string"
        )),
        "{e:?}"
    );
    let e = reject(object(
        json!({"type": "object", "properties": {"a": {"type": "string"}},
        "allOf": [{"properties": {"metadata": {}}}]}),
    ));
    assert!(
        e.iter().any(|m| m.ends_with(
            "allOf[0].properties[metadata]: Forbidden: must not be specified in a nested context"
        )),
        "{e:?}"
    );
}

#[test]
fn defaults_must_validate_and_be_pruned() {
    let e = reject(object(json!({"type": "object", "properties": {
        "replicas": {"type": "integer", "default": "one"}}})));
    assert!(
        e[0].contains("properties[replicas].default: Invalid value: \"string\""),
        "{e:?}"
    );
    let e = reject(object(json!({"type": "object", "properties": {
        "inner": {"type": "object", "properties": {"a": {"type": "string"}}, "default": {"a": "x", "b": 1}}}})));
    assert!(
        e[0].ends_with(r#"default: Invalid value: {"a":"x","b":1}: must not have unknown fields"#),
        "{e:?}"
    );
}

#[test]
fn status_subresource_root_rule() {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "minProperties": 1,
                    "anyOf": [{"required": ["spec"]}],
                    "properties": {"spec": {"type": "object"}}}}}]}
    }))
    .expect("crd parses");
    let e = messages(&validate_crd_schemas(&crd));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with(ROOT), "{e:?}");
    assert!(e[0].contains(
        "fields are allowed at the root of the schema if the status subresource is enabled"
    ));
}

#[test]
fn pruning_with_and_without_preserve_unknown_fields() {
    let s = compile(json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"keep": {"type": "string"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                     "properties": {"known": {"type": "object", "properties": {"x": {"type": "integer"}}}}},
            "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}}}));
    let mut obj = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"}, "status": {},
        "spec": {"keep": "k", "drop": 1,
            "free": {"anything": {"deep": true}, "known": {"x": 1, "y": 2}},
            "list": [{"a": "1", "b": 2}], "labels": {"any": "v"}}});
    let pruned = s.prune(&mut obj);
    assert_eq!(
        pruned,
        vec!["spec.drop", "spec.free.known.y", "spec.list[0].b", "status"]
    );
    assert_eq!(obj["spec"]["free"]["anything"], json!({"deep": true}));
    assert_eq!(obj["spec"]["labels"], json!({"any": "v"}));
    assert_eq!(obj["apiVersion"], "a/v1");
}

#[test]
fn pruning_of_embedded_resources() {
    let s = compile(object(json!({"type": "object", "properties": {
        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
            "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}},
        "raw": {"type": "object", "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true}}})));
    let mut obj = json!({"apiVersion": "a/v1", "kind": "K", "spec": {
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1},
                     "spec": {"a": "x", "b": "y"}, "other": 1},
        "raw": {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}, "metadata": {"x": 1}}}});
    let mut pruned = s.prune(&mut obj);
    pruned.sort();
    assert_eq!(
        pruned,
        vec![
            "spec.raw.metadata.x",
            "spec.template.metadata.bogus",
            "spec.template.other",
            "spec.template.spec.b"
        ]
    );
    assert_eq!(obj["spec"]["raw"]["data"], json!({"k": "v"}));
    assert_eq!(obj["spec"]["template"]["kind"], "Pod");
    let bad = json!({"apiVersion": "a/v1", "kind": "K", "spec": {"template": {"metadata": {"name": "Bad_Name"}}}});
    let e = messages(&s.validate(&bad, None));
    assert!(
        e.contains(&"spec.template.apiVersion: Required value: must not be empty".to_string()),
        "{e:?}"
    );
    assert!(
        e.contains(&"spec.template.kind: Required value: must not be empty".to_string()),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("spec.template.metadata.name: Invalid value: \"Bad_Name\"")),
        "{e:?}"
    );
}

#[test]
fn defaulting_nested_and_nullable() {
    let s = compile(object(json!({"type": "object", "properties": {
        "replicas": {"type": "integer", "default": 1},
        "nullable": {"type": "string", "nullable": true, "default": "d"},
        "plain": {"type": "string", "default": "p"},
        "policy": {"type": "object", "default": {},
            "properties": {"mode": {"type": "string", "default": "Auto"}}},
        "items": {"type": "array", "items": {"type": "object",
            "properties": {"w": {"type": "integer", "default": 5}}}}}})));
    let mut obj = json!({"spec": {"nullable": null, "plain": null, "items": [{}, {"w": 2}]}});
    s.apply_defaults(&mut obj);
    assert_eq!(
        obj["spec"],
        json!({"replicas": 1, "nullable": null, "plain": "p",
        "policy": {"mode": "Auto"}, "items": [{"w": 5}, {"w": 2}]})
    );
    // A missing parent without a default stays missing.
    let mut empty = json!({});
    s.apply_defaults(&mut empty);
    assert_eq!(empty, json!({}));
}

/// One passing and one failing value per keyword.
#[test]
fn each_keyword_passes_and_fails() {
    let cases: Vec<(Value, Value, Value, &str)> = vec![
        (
            json!({"type": "integer"}),
            json!(3),
            json!("3"),
            r#"Invalid value: "string": spec.f in body must be of type integer: "string""#,
        ),
        (
            json!({"type": "number"}),
            json!(1.5),
            json!(true),
            r#"must be of type number: "boolean""#,
        ),
        (
            json!({"type": "boolean"}),
            json!(true),
            json!(1),
            r#"must be of type boolean: "integer""#,
        ),
        (
            json!({"type": "string", "enum": ["a", "b"]}),
            json!("a"),
            json!("c"),
            r#"Unsupported value: "c": supported values: "a", "b""#,
        ),
        (
            json!({"type": "string", "pattern": "^a+$"}),
            json!("aa"),
            json!("b"),
            "spec.f in body should match '^a+$'",
        ),
        (
            json!({"type": "integer", "minimum": 2}),
            json!(2),
            json!(1),
            "Invalid value: 1: spec.f in body should be greater than or equal to 2",
        ),
        (
            json!({"type": "integer", "minimum": 2, "exclusiveMinimum": true}),
            json!(3),
            json!(2),
            "should be greater than 2",
        ),
        (
            json!({"type": "integer", "maximum": 2}),
            json!(2),
            json!(3),
            "should be less than or equal to 2",
        ),
        (
            json!({"type": "integer", "maximum": 2, "exclusiveMaximum": true}),
            json!(1),
            json!(2),
            "should be less than 2",
        ),
        (
            json!({"type": "number", "multipleOf": 0.5}),
            json!(1.5),
            json!(1.2),
            "should be a multiple of 0.5",
        ),
        (
            json!({"type": "string", "minLength": 2}),
            json!("ab"),
            json!("a"),
            "should be at least 2 chars long",
        ),
        (
            json!({"type": "string", "maxLength": 2}),
            json!("ab"),
            json!("abc"),
            "Too long: may not be more than 2 bytes",
        ),
        (
            json!({"type": "array", "items": {"type": "integer"}, "minItems": 1}),
            json!([1]),
            json!([]),
            "Invalid value: 0: spec.f in body should have at least 1 items",
        ),
        (
            json!({"type": "array", "items": {"type": "integer"}, "maxItems": 1}),
            json!([1]),
            json!([1, 2]),
            "Too many: 2: must have at most 1 items",
        ),
        (
            json!({"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1}),
            json!({"a": "b"}),
            json!({}),
            "should have at least 1 properties",
        ),
        (
            json!({"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1}),
            json!({"a": "b"}),
            json!({"a": "b", "c": "d"}),
            "Too many: 2: must have at most 1 items",
        ),
        (
            json!({"type": "object", "properties": {"r": {"type": "string"}}, "required": ["r"]}),
            json!({"r": "x"}),
            json!({}),
            "spec.f.r: Required value",
        ),
        (
            json!({"type": "string", "nullable": true}),
            json!(null),
            json!(1),
            "must be of type string",
        ),
        (
            json!({"type": "string"}),
            json!("x"),
            json!(null),
            r#"spec.f in body must be of type string: "null""#,
        ),
        (
            json!({"x-kubernetes-int-or-string": true}),
            json!("25%"),
            json!(true),
            "must be of type integer,string",
        ),
        (
            json!({"type": "string", "format": "date-time"}),
            json!("2024-01-02T03:04:05Z"),
            json!("yesterday"),
            r#"spec.f in body must be of type date-time: "yesterday""#,
        ),
        (
            json!({"type": "string", "format": "date"}),
            json!("2024-01-02"),
            json!("2024-13-02"),
            "must be of type date",
        ),
        (
            json!({"type": "string", "format": "uuid"}),
            json!("123e4567-e89b-12d3-a456-426614174000"),
            json!("nope"),
            "must be of type uuid",
        ),
        (
            json!({"type": "string", "format": "byte"}),
            json!("aGk="),
            json!("!!"),
            "must be of type byte",
        ),
        (
            json!({"type": "string", "format": "ipv4"}),
            json!("10.0.0.1"),
            json!("10.0.0.300"),
            "must be of type ipv4",
        ),
        (
            json!({"type": "string", "format": "duration"}),
            json!("1h30m"),
            json!("soon"),
            "must be of type duration",
        ),
        (
            json!({"type": "integer", "format": "int32"}),
            json!(7),
            json!(7.5),
            "must be of type integer",
        ),
        (
            json!({"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]}),
            json!("bx"),
            json!("cx"),
            r#""spec.f" must validate at least one schema (anyOf)"#,
        ),
        (
            json!({"type": "string", "oneOf": [{"pattern": "^a"}, {"pattern": "b$"}]}),
            json!("ax"),
            json!("ab"),
            "must validate one and only one schema (oneOf). Found 2 valid alternatives",
        ),
        (
            json!({"type": "string", "allOf": [{"minLength": 1}, {"maxLength": 3}]}),
            json!("ab"),
            json!("abcd"),
            "Too long",
        ),
        (
            json!({"type": "string", "not": {"pattern": "^x"}}),
            json!("ab"),
            json!("xy"),
            r#""spec.f" must not validate the schema (not)"#,
        ),
        (
            json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}),
            json!(["a", "b"]),
            json!(["a", "a"]),
            r#"spec.f[1]: Duplicate value: "a""#,
        ),
    ];
    for (schema, good, bad, want) in cases {
        let s = compile(object(
            json!({"type": "object", "properties": {"f": schema.clone()}}),
        ));
        let errs = s.validate(&json!({"spec": {"f": good}}), None);
        assert!(errs.is_empty(), "{schema}: {good} should pass: {errs:?}");
        let errs = messages(&s.validate(&json!({"spec": {"f": bad}}), None));
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{schema}: {bad}: want {want:?} in {errs:?}"
        );
    }
}

#[test]
fn list_type_map_keys_are_unique() {
    let s = compile(object(json!({"type": "object", "properties": {"ports": {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
        "items": {"type": "object", "required": ["port"], "properties": {
            "port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}}}}})));
    let ok = json!({"spec": {"ports": [{"port": 80}, {"port": 80, "protocol": "UDP"}]}});
    assert!(s.validate(&ok, None).is_empty());
    let bad = json!({"spec": {"ports": [{"port": 80}, {"port": 80, "protocol": "TCP"}]}});
    let e = s.validate(&bad, None);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, FieldErrorKind::Duplicate);
    assert_eq!(
        e[0].to_string(),
        r#"spec.ports[1]: Duplicate value: {"port":80,"protocol":"TCP"}"#
    );
    let e = reject(object(
        json!({"type": "object", "properties": {"l": {"type": "array",
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}}),
    ));
    assert!(e[0].ends_with("properties[name].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"), "{e:?}");
}

fn with_rules(spec_props: Value, rules: Value) -> Structural {
    compile(object(
        json!({"type": "object", "properties": spec_props, "x-kubernetes-validations": rules}),
    ))
}

#[test]
fn cel_rules_with_self() {
    let s = with_rules(
        json!({"replicas": {"type": "integer"}, "maxReplicas": {"type": "integer"},
               "name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
               "x-y": {"type": "string"}}),
        json!([
            {"rule": "self.replicas <= self.maxReplicas", "message": "replicas should be smaller than or equal to maxReplicas"},
            {"rule": "!has(self.name) || self.name.startsWith('a') && size(self.name) < 5",
             "messageExpression": "'bad name ' + self.name", "fieldPath": ".name", "reason": "FieldValueForbidden"},
            {"rule": "self.tags.all(t, t.lowerAscii() == t) && !self.tags.exists(t, t == 'x')"},
            {"rule": "!has(self.x__dash__y) || self.x__dash__y.matches('^[a-z]+$')"}
        ]),
    );
    let ok = json!({"spec": {"replicas": 1, "maxReplicas": 2, "name": "abc", "tags": ["a"], "x-y": "z"}});
    assert!(
        s.validate(&ok, None).is_empty(),
        "{:?}",
        s.validate(&ok, None)
    );
    let bad = json!({"spec": {"replicas": 3, "maxReplicas": 2, "name": "bcd", "tags": ["A"], "x-y": "1"}});
    assert_eq!(
        messages(&s.validate(&bad, None)),
        vec![
            r#"spec: Invalid value: "object": replicas should be smaller than or equal to maxReplicas"#,
            "spec.name: Forbidden: bad name bcd",
            r#"spec: Invalid value: "object": failed rule: self.tags.all(t, t.lowerAscii() == t) && !self.tags.exists(t, t == 'x')"#,
            r#"spec: Invalid value: "object": failed rule: !has(self.x__dash__y) || self.x__dash__y.matches('^[a-z]+$')"#,
        ]
    );
    // A missing field reached without has(): an evaluation error, not a panic.
    let e = messages(&s.validate(&json!({"spec": {"replicas": 1}}), None));
    assert!(
        e[0].starts_with(r#"spec: Invalid value: "object": "#)
            && e[0].contains("evaluating rule: self.replicas <= self.maxReplicas"),
        "{e:?}"
    );
}

#[test]
fn cel_transition_rules_use_old_self_on_update_only() {
    let s = compile(object(json!({"type": "object", "properties": {
        "replicas": {"type": "integer", "x-kubernetes-validations": [
            {"rule": "self >= oldSelf", "message": "replicas may not decrease"}]},
        "mode": {"type": "string", "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": "Value is immutable"}]}}})));
    let new = json!({"spec": {"replicas": 2, "mode": "a"}});
    assert!(
        s.validate(&new, None).is_empty(),
        "transition rules are skipped on create"
    );
    let old = json!({"spec": {"replicas": 1, "mode": "a"}});
    assert!(s.validate(&new, Some(&old)).is_empty());
    let old = json!({"spec": {"replicas": 3, "mode": "b"}});
    assert_eq!(
        messages(&s.validate(&new, Some(&old))),
        vec![
            r#"spec.replicas: Invalid value: "integer": replicas may not decrease"#,
            r#"spec.mode: Invalid value: "string": Value is immutable"#,
        ]
    );
    // A field absent from the old object has no oldSelf: the rule does not run.
    assert!(s.validate(&new, Some(&json!({"spec": {}}))).is_empty());
}

#[test]
fn cel_old_self_is_refused_where_values_cannot_be_correlated() {
    let e = reject(object(
        json!({"type": "object", "properties": {"l": {"type": "array",
        "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}}),
    ));
    assert!(
        e[0].contains("oldSelf cannot be used on the uncorrelatable portion of the schema within"),
        "{e:?}"
    );
}

#[test]
fn invalid_cel_gives_a_field_error_naming_the_rule() {
    let e = reject(object(
        json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a ==== 1"}]}),
    ));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(&format!(
            "{ROOT}.properties[spec].x-kubernetes-validations[0].rule: Invalid value: "
        )),
        "{e:?}"
    );
    assert!(
        e[0].contains("self.a ==== 1") && e[0].contains("compilation failed"),
        "{e:?}"
    );
    let e = reject(object(
        json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.l.isSorted()"}]}),
    ));
    assert!(
        e[0].contains("isSorted() is not supported by orch"),
        "{e:?}"
    );
    let e = reject(object(
        json!({"type": "object", "x-kubernetes-validations": [{"rule": "quantity(self.q) > quantity('1')"}]}),
    ));
    assert!(e[0].contains("quantity() is not supported"), "{e:?}");
    let e = reject(object(
        json!({"type": "object", "x-kubernetes-validations": [{"rule": ""}]}),
    ));
    assert!(
        e[0].ends_with("x-kubernetes-validations[0].rule: Required value: rule is not specified"),
        "{e:?}"
    );
    let e = reject(object(
        json!({"type": "object", "x-kubernetes-validations": [{"rule": "true", "reason": "Nope"}]}),
    ));
    assert!(
        e[0].contains("reason: Unsupported value: \"Nope\""),
        "{e:?}"
    );
}

#[test]
fn at_path_finds_sub_schemas() {
    let s = compile(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "replicas": {"type": "integer"},
        "list": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "string"}}}}}}}}),
    );
    assert_eq!(
        s.at_path(".spec.replicas").and_then(|p| p.type_.as_deref()),
        Some("integer")
    );
    assert_eq!(
        s.at_path(".spec.list[*].n")
            .and_then(|p| p.type_.as_deref()),
        Some("string")
    );
    assert!(s.at_path(".spec.nope").is_none());
    assert!(s.at_path(".status.replicas").is_none());
}

#[test]
fn no_panic_on_odd_input() {
    let s = compile(crontab());
    for v in [
        json!(null),
        json!(1),
        json!("x"),
        json!([1, {"a": []}]),
        json!({"spec": [1]}),
        json!({"spec": {"replicas": 1e300}}),
    ] {
        let mut x = v.clone();
        s.prune(&mut x);
        s.apply_defaults(&mut x);
        let _ = s.validate(&x, Some(&v));
    }
    assert!(cel::escape("1abc").is_none());
    assert_eq!(
        cel::escape("a.b-c/d__e").as_deref(),
        Some("a__dot__b__dash__c__slash__d__underscores__e")
    );
    assert_eq!(cel::escape("namespace").as_deref(), Some("__namespace__"));
}

#[test]
fn structural_is_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Structural>();
}

#[test]
fn crd_validation_reports_non_structural_schemas() {
    let objs = crate::decode::decode_all(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: crontabs.stable.example.com}\nspec:\n  group: stable.example.com\n  scope: Namespaced\n  names: {plural: crontabs, singular: crontab, kind: CronTab}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            properties:\n              cronSpec: {type: string}\n",
    )
    .expect("CRD decodes");
    let e = messages(&crate::validation::validate(&objs[0]));
    assert_eq!(e, vec![format!("{ROOT}.properties[spec].type: Required value: must not be empty for specified object fields")]);
}
