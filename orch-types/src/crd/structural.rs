//! The checks a CRD version's schema must pass: upstream `ValidateCustomResourceDefinitionOpenAPISchema`
//! (`pkg/apis/apiextensions/validation/validation.go`), `ValidateStructural` and its
//! completeness check (`pkg/apiserver/schema/validation.go`, `complete.go`) and
//! `ValidateDefaults` (`schema/defaulting/validation.go`).

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

use super::cel::{Rule, SUPPORTED_REASONS};
use super::node::Node;
use super::validate::{self, parse_field_path, render, Seg};
use crate::validation::{FieldError, Path};

const TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];
const META_FIELDS: &[&str] = &["metadata", "kind", "apiVersion"];

/// Where a schema sits, for the rules that depend on it (upstream `specStandardValidator`).
#[derive(Clone, Default)]
struct Ctx {
    /// Why `default` is forbidden here, if it is.
    no_defaults: Option<String>,
    inside_meta: bool,
    /// The first ancestor that cannot correlate old and new values (no `oldSelf` below).
    uncorrelatable: Option<String>,
}

fn props(
    p: &Option<std::collections::BTreeMap<String, JSONSchemaProps>>,
) -> impl Iterator<Item = (&String, &JSONSchemaProps)> {
    p.iter().flatten()
}

fn item_schema(p: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &p.items {
        Some(JSONSchemaPropsOrArray::Schema(s)) => Some(s),
        _ => None,
    }
}

fn additional_schema(p: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &p.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s),
        _ => None,
    }
}

/// All schema errors of `p` (the root `openAPIV3Schema` at `path`), without CEL compile errors.
pub(crate) fn check(p: &JSONSchemaProps, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if p.nullable == Some(true) {
        errs.push(FieldError::forbidden(
            path.child("nullable"),
            "nullable cannot be true at the root",
        ));
    }
    openapi(p, path, &Ctx::default(), true, &mut errs);
    let mut structural = Vec::new();
    invariants(p, Level::Root, path, &mut structural);
    completeness(p, path, &mut structural);
    // Upstream sorts the structural errors by their text.
    structural.sort_by_key(|e| e.to_string());
    errs.extend(structural);
    errs
}

/// Upstream `ValidateCustomResourceDefinitionOpenAPISchema` for one schema and below.
fn openapi(p: &JSONSchemaProps, path: &Path, ctx: &Ctx, is_root: bool, errs: &mut Vec<FieldError>) {
    standard(p, path, ctx, errs);
    if p.unique_items == Some(true) {
        errs.push(FieldError::forbidden(
            path.child("uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let has_props = p.properties.as_ref().is_some_and(|m| !m.is_empty());
    if let Some(a) = &p.additional_properties {
        if has_props && !matches!(a, JSONSchemaPropsOrBool::Bool(true)) {
            errs.push(FieldError::forbidden(
                path.child("additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if let Some(s) = additional_schema(p) {
            let mut sub = ctx.clone();
            if ctx.inside_meta {
                sub.no_defaults =
                    Some("inside additionalProperties applying to object metadata".into());
            }
            openapi(s, &path.child("additionalProperties"), &sub, false, errs);
        }
    }
    let embedded = p.x_kubernetes_embedded_resource == Some(true);
    for (k, s) in props(&p.properties) {
        let mut sub = ctx.clone();
        if p.x_kubernetes_map_type.as_deref() == Some("atomic") && sub.uncorrelatable.is_none() {
            sub.uncorrelatable = Some(path.to_string());
        }
        if (is_root || embedded) && META_FIELDS.contains(&k.as_str()) {
            sub.inside_meta = true;
            if is_root {
                sub.no_defaults = Some(format!("in top-level {k}"));
            }
        }
        openapi(s, &path.child("properties").key(k), &sub, false, errs);
    }
    if let Some(n) = &p.not {
        openapi(n, &path.child("not"), ctx, false, errs);
    }
    for (name, list) in [
        ("allOf", &p.all_of),
        ("oneOf", &p.one_of),
        ("anyOf", &p.any_of),
    ] {
        for (i, s) in list.iter().flatten().enumerate() {
            openapi(s, &path.child(name).index(i), ctx, false, errs);
        }
    }
    if let Some(items) = item_schema(p) {
        let mut sub = ctx.clone();
        if p.x_kubernetes_list_type.as_deref() != Some("map") && sub.uncorrelatable.is_none() {
            sub.uncorrelatable = Some(path.to_string());
        }
        openapi(items, &path.child("items"), &sub, false, errs);
    }
    if p.x_kubernetes_preserve_unknown_fields == Some(false) {
        errs.push(FieldError::invalid_raw(
            path.child("x-kubernetes-preserve-unknown-fields"),
            "false",
            "must be true or undefined",
        ));
    }
    extensions(p, path, errs);
    rules(p, path, ctx, errs);
}

/// Upstream `specStandardValidatorV3.validate`.
fn standard(p: &JSONSchemaProps, path: &Path, ctx: &Ctx, errs: &mut Vec<FieldError>) {
    match p.type_.as_deref() {
        Some("null") => errs.push(FieldError::forbidden(
            path.child("type"),
            "type cannot be set to null, use nullable as an alternative",
        )),
        Some(t) if !t.is_empty() && !TYPES.contains(&t) => {
            errs.push(FieldError::not_supported(path.child("type"), t, TYPES))
        }
        _ => {}
    }
    if p.default.is_some() {
        if let Some(why) = &ctx.no_defaults {
            errs.push(FieldError::forbidden(
                path.child("default"),
                format!("must not be set {why}"),
            ));
        }
    }
    let forbidden: [(bool, &str, &str); 7] = [
        (
            p.id.as_deref().is_some_and(|s| !s.is_empty()),
            "id",
            "id is not supported",
        ),
        (
            p.additional_items.is_some(),
            "additionalItems",
            "additionalItems is not supported",
        ),
        (
            p.pattern_properties.as_ref().is_some_and(|m| !m.is_empty()),
            "patternProperties",
            "patternProperties is not supported",
        ),
        (
            p.definitions.as_ref().is_some_and(|m| !m.is_empty()),
            "definitions",
            "definitions is not supported",
        ),
        (
            p.dependencies.is_some(),
            "dependencies",
            "dependencies is not supported",
        ),
        (p.ref_path.is_some(), "$ref", "$ref is not supported"),
        (
            matches!(p.items, Some(JSONSchemaPropsOrArray::Schemas(_))),
            "items",
            "items must be a schema object and not an array",
        ),
    ];
    for (bad, f, msg) in forbidden {
        if bad {
            errs.push(FieldError::forbidden(path.child(f), msg));
        }
    }
    if ctx.inside_meta && p.x_kubernetes_embedded_resource == Some(true) {
        errs.push(FieldError::forbidden(
            path.child("x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
}

/// `x-kubernetes-map-type`, `x-kubernetes-list-type` and `x-kubernetes-list-map-keys`.
fn extensions(p: &JSONSchemaProps, path: &Path, errs: &mut Vec<FieldError>) {
    let ty = p.type_.as_deref().unwrap_or("");
    if let Some(mt) = &p.x_kubernetes_map_type {
        if ty != "object" {
            errs.push(type_must(
                path,
                ty,
                "must be object if x-kubernetes-map-type is specified",
            ));
        }
        if mt != "atomic" && mt != "granular" {
            errs.push(FieldError::not_supported(
                path.child("x-kubernetes-map-type"),
                mt,
                &["atomic", "granular"],
            ));
        }
    }
    let lt = p.x_kubernetes_list_type.as_deref();
    if let Some(lt) = lt {
        if ty != "array" {
            errs.push(type_must(
                path,
                ty,
                "must be array if x-kubernetes-list-type is specified",
            ));
        } else if lt == "set" {
            if let Some(is) = item_schema(p) {
                match is.type_.as_deref() {
                    Some("array")
                        if is
                            .x_kubernetes_list_type
                            .as_deref()
                            .is_some_and(|t| t != "atomic") =>
                    {
                        errs.push(FieldError::invalid(
                            path.child("items").child("x-kubernetes-list-type"),
                            is.x_kubernetes_list_type.as_deref().unwrap_or(""),
                            "must be atomic as item of a list with x-kubernetes-list-type=set",
                        ))
                    }
                    Some("object") if is.x_kubernetes_map_type.as_deref() != Some("atomic") => errs
                        .push(FieldError::invalid_raw(
                            path.child("items").child("x-kubernetes-map-type"),
                            "null",
                            "must be atomic as item of a list with x-kubernetes-list-type=set",
                        )),
                    _ => {}
                }
            }
        }
        if !["atomic", "set", "map"].contains(&lt) {
            errs.push(FieldError::not_supported(
                path.child("x-kubernetes-list-type"),
                lt,
                &["atomic", "set", "map"],
            ));
        }
    }
    let keys = p.x_kubernetes_list_map_keys.clone().unwrap_or_default();
    let keys_shown = serde_json::to_string(&keys).unwrap_or_default();
    if !keys.is_empty() {
        match lt {
            None => errs.push(FieldError::required(
                path.child("x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some(l) if l != "map" => errs.push(FieldError::invalid(
                path.child("x-kubernetes-list-type"),
                l,
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            _ => {}
        }
    }
    if lt == Some("map") {
        if keys.is_empty() {
            errs.push(FieldError::required(
                path.child("x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match &p.items {
            None => errs.push(FieldError::required(
                path.child("items"),
                "must have a schema if x-kubernetes-list-type is map",
            )),
            Some(JSONSchemaPropsOrArray::Schemas(_)) => errs.push(FieldError::invalid_raw(
                path.child("items"),
                "[...]",
                "must only have a single schema if x-kubernetes-list-type is map",
            )),
            Some(JSONSchemaPropsOrArray::Schema(is)) => {
                let ity = is.type_.as_deref().unwrap_or("");
                if ity != "object" {
                    errs.push(FieldError::invalid(
                        path.child("items").child("type"),
                        ity,
                        "must be object if parent array's x-kubernetes-list-type is map",
                    ));
                } else {
                    let mut seen = BTreeSet::new();
                    for k in &keys {
                        match is.properties.as_ref().and_then(|m| m.get(k)) {
                            Some(ks) => {
                                if matches!(ks.type_.as_deref(), Some("array" | "object")) {
                                    errs.push(FieldError::invalid(
                                        path.child("items").child("properties").key(k).child("type"),
                                        ity,
                                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                                    ));
                                }
                            }
                            None => errs.push(FieldError::invalid_raw(
                                path.child("x-kubernetes-list-map-keys"),
                                keys_shown.clone(),
                                "entries must all be names of item properties",
                            )),
                        }
                        if !seen.insert(k) {
                            errs.push(FieldError::invalid_raw(
                                path.child("x-kubernetes-list-map-keys"),
                                keys_shown.clone(),
                                "must not contain duplicate entries",
                            ));
                        }
                    }
                }
            }
        }
    }
    // Upstream `validateMapListKeysMapSet`.
    if let (Some(l @ ("set" | "map")), Some(is)) = (lt, item_schema(p)) {
        if is.nullable == Some(true) {
            errs.push(FieldError::forbidden(
                path.child("items").child("nullable"),
                format!("cannot be nullable when x-kubernetes-list-type is {l}"),
            ));
        }
        if l == "map" {
            let required = is.required.clone().unwrap_or_default();
            for k in &keys {
                let Some(ks) = is.properties.as_ref().and_then(|m| m.get(k)) else {
                    continue;
                };
                let kp = path.child("items").child("properties").key(k);
                if !required.contains(k) && ks.default.is_none() {
                    errs.push(FieldError::required(
                        kp.child("default"),
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    ));
                }
                if ks.nullable == Some(true) {
                    errs.push(FieldError::forbidden(
                        kp.child("nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    ));
                }
            }
        }
    }
}

fn type_must(path: &Path, ty: &str, msg: &str) -> FieldError {
    if ty.is_empty() {
        FieldError::required(path.child("type"), msg)
    } else {
        FieldError::invalid(path.child("type"), ty, msg)
    }
}

/// The static checks of `x-kubernetes-validations` entries (CEL compilation is the node's).
fn rules(p: &JSONSchemaProps, path: &Path, ctx: &Ctx, errs: &mut Vec<FieldError>) {
    for (i, r) in p.x_kubernetes_validations.iter().flatten().enumerate() {
        let rp = path.child("x-kubernetes-validations").index(i);
        let rule = r.rule.trim();
        let msg = r.message.as_deref().unwrap_or("");
        let has_newline = |s: &str| s.contains(['\n', '\r']);
        if rule.is_empty() {
            errs.push(FieldError::required(
                rp.child("rule"),
                "rule is not specified",
            ));
        } else if !msg.is_empty() && msg.trim().is_empty() {
            errs.push(FieldError::invalid(
                rp.child("message"),
                msg,
                "message must be non-empty if specified",
            ));
        } else if has_newline(msg.trim()) {
            errs.push(FieldError::invalid(
                rp.child("message"),
                msg,
                "message must not contain line breaks",
            ));
        } else if has_newline(rule) && msg.trim().is_empty() {
            errs.push(FieldError::required(
                rp.child("message"),
                "message must be specified if rule contains line breaks",
            ));
        }
        if let Some(me) = &r.message_expression {
            if !me.is_empty() && me.trim().is_empty() {
                errs.push(FieldError::required(
                    rp.child("messageExpression"),
                    "messageExpression must be non-empty if specified",
                ));
            }
        }
        if let Some(reason) = &r.reason {
            if !SUPPORTED_REASONS.contains(&reason.as_str()) {
                errs.push(FieldError::not_supported(
                    rp.child("reason"),
                    reason,
                    SUPPORTED_REASONS,
                ));
            }
        }
        if let Some(fp) = &r.field_path {
            if !fp.is_empty() && fp.trim().is_empty() {
                errs.push(FieldError::invalid(
                    rp.child("fieldPath"),
                    fp,
                    "fieldPath must be non-empty if specified",
                ));
            }
            if has_newline(fp) {
                errs.push(FieldError::invalid(
                    rp.child("fieldPath"),
                    fp,
                    "fieldPath must not contain line breaks",
                ));
            }
            if !fp.trim().is_empty() && !field_path_valid(p, fp) {
                errs.push(FieldError::invalid(
                    rp.child("fieldPath"),
                    fp,
                    "fieldPath must be a valid path",
                ));
            }
        }
        if let Ok(compiled) = Rule::compile(r) {
            if compiled.uses_old_self {
                if let Some(up) = &ctx.uncorrelatable {
                    errs.push(FieldError::invalid(
                        rp.child("rule"),
                        &r.rule,
                        format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {up}"),
                    ));
                }
            } else if let Some(o) = r.optional_old_self {
                errs.push(FieldError::invalid_raw(
                    rp.child("optionalOldSelf"),
                    o.to_string(),
                    "may not be set if oldSelf is not used in rule",
                ));
            }
        }
    }
}

/// Whether a rule's `fieldPath` names a field the schema defines (upstream `cel.ValidFieldPath`).
fn field_path_valid(p: &JSONSchemaProps, fp: &str) -> bool {
    let Some(segs) = parse_field_path(fp) else {
        return false;
    };
    let mut s = p;
    for seg in segs {
        s = match seg {
            Seg::Field(f) => match s.properties.as_ref().and_then(|m| m.get(&f)) {
                Some(x) => x,
                None => return false,
            },
            Seg::Key(k) => match s.properties.as_ref().and_then(|m| m.get(&k)) {
                Some(x) => x,
                None => match additional_schema(s) {
                    Some(a) => a,
                    None => return false,
                },
            },
            Seg::Index(_) => match item_schema(s) {
                Some(x) => x,
                None => return false,
            },
        };
    }
    true
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

/// Upstream `validateStructuralInvariants`.
fn invariants(p: &JSONSchemaProps, lvl: Level, path: &Path, errs: &mut Vec<FieldError>) {
    let ty = p.type_.as_deref().unwrap_or("");
    let embedded = p.x_kubernetes_embedded_resource == Some(true);
    let preserve = p.x_kubernetes_preserve_unknown_fields == Some(true);
    let int_or_string = p.x_kubernetes_int_or_string == Some(true);
    if ty == "array" && p.items.is_none() {
        errs.push(FieldError::required(
            path.child("items"),
            "must be specified",
        ));
    }
    if let Some(items) = item_schema(p) {
        invariants(items, Level::Item, &path.child("items"), errs);
    }
    for (k, s) in props(&p.properties) {
        invariants(s, Level::Field, &path.child("properties").key(k), errs);
    }
    if p.additional_properties.is_some() {
        if lvl == Level::Root {
            errs.push(FieldError::forbidden(
                path.child("additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(s) = additional_schema(p) {
            invariants(s, Level::Field, &path.child("additionalProperties"), errs);
        }
    }
    if int_or_string && preserve {
        errs.push(FieldError::invalid_raw(
            path.child("x-kubernetes-preserve-unknown-fields"),
            "true",
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        errs.push(FieldError::invalid_raw(
            path.child("x-kubernetes-embedded-resource"),
            "true",
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let skip_any_of = int_or_string_any_of(p.any_of.as_deref());
    let skip_first_all_of_any_of = p
        .all_of
        .as_ref()
        .and_then(|a| a.first())
        .is_some_and(|first| int_or_string_any_of(first.any_of.as_deref()));
    value_validation(p, skip_any_of, skip_first_all_of_any_of, path, errs);

    if embedded && ty != "object" {
        errs.push(type_must(
            path,
            ty,
            "must be object if x-kubernetes-embedded-resource is true",
        ));
    } else if ty.is_empty() && !int_or_string && !preserve {
        let msg = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(path.child("type"), msg));
    }
    if embedded && p.additional_properties.is_some() {
        errs.push(FieldError::forbidden(
            path.child("additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        errs.push(FieldError::invalid(
            path.child("type"),
            ty,
            "must be object at the root",
        ));
    }
    let check_meta = lvl == Level::Root || embedded;
    let pp = path.child("properties");
    for f in ["kind", "apiVersion"] {
        if let Some(s) = p.properties.as_ref().and_then(|m| m.get(f)) {
            let st = s.type_.as_deref().unwrap_or("");
            if check_meta && st != "string" {
                errs.push(FieldError::invalid(
                    pp.key(f).child("type"),
                    st,
                    "must be string",
                ));
            }
        }
    }
    if let Some(m) = p.properties.as_ref().and_then(|m| m.get("metadata")) {
        let mp = pp.key("metadata");
        let mt = m.type_.as_deref().unwrap_or("");
        if check_meta && mt != "object" {
            errs.push(FieldError::invalid(mp.child("type"), mt, "must be object"));
        }
        if lvl == Level::Root && !root_metadata_ok(m) {
            errs.push(FieldError::forbidden(
                mp,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if embedded && !preserve && p.properties.as_ref().is_none_or(|m| m.is_empty()) {
        errs.push(FieldError::required(
            path.child("properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// The root `metadata` schema may only restrict `name` and `generateName` (upstream
/// `validateStructuralMetadataInvariants`): besides `type` and `default` (checked elsewhere),
/// nothing but `properties` with those two keys may be set.
fn root_metadata_ok(m: &JSONSchemaProps) -> bool {
    let mut rest = m.clone();
    rest.type_ = None;
    rest.default = None;
    if let Some(ps) = &rest.properties {
        if !ps.is_empty() && ps.keys().all(|k| k == "name" || k == "generateName") {
            rest.properties = None;
        }
    }
    if rest.properties.as_ref().is_some_and(|p| p.is_empty()) {
        rest.properties = None;
    }
    rest == JSONSchemaProps::default()
}

/// `anyOf: [{type: integer}, {type: string}]` exactly (the int-or-string exception).
fn int_or_string_any_of(any_of: Option<&[JSONSchemaProps]>) -> bool {
    let Some([a, b]) = any_of else { return false };
    let only_type = |s: &JSONSchemaProps, t: &str| {
        let mut c = s.clone();
        let ok = c.type_.as_deref() == Some(t);
        c.type_ = None;
        ok && c == JSONSchemaProps::default()
    };
    only_type(a, "integer") && only_type(b, "string")
}

/// Upstream `validateValueValidation` (the junctors of a structural node).
fn value_validation(
    p: &JSONSchemaProps,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, s) in p.any_of.iter().flatten().enumerate() {
            nested(s, false, &path.child("anyOf").index(i), errs);
        }
    }
    for (i, s) in p.all_of.iter().flatten().enumerate() {
        nested(
            s,
            skip_first_all_of_any_of && i == 0,
            &path.child("allOf").index(i),
            errs,
        );
    }
    for (i, s) in p.one_of.iter().flatten().enumerate() {
        nested(s, false, &path.child("oneOf").index(i), errs);
    }
    if let Some(n) = &p.not {
        nested(n, false, &path.child("not"), errs);
    }
}

/// Upstream `validateNestedValueValidation`: what a schema under a junctor may not set.
fn nested(p: &JSONSchemaProps, skip_any_of: bool, path: &Path, errs: &mut Vec<FieldError>) {
    value_validation(p, skip_any_of, false, path, errs);
    if let Some(items) = item_schema(p) {
        nested(items, false, &path.child("items"), errs);
    }
    for (k, s) in props(&p.properties) {
        nested(s, false, &path.child("properties").key(k), errs);
    }
    let checks: [(bool, &str, &str); 14] = [
        (
            p.type_.as_deref().is_some_and(|t| !t.is_empty()),
            "type",
            "must be empty to be structural",
        ),
        (
            p.additional_properties.is_some(),
            "additionalProperties",
            "must be undefined to be structural",
        ),
        (
            p.default.is_some(),
            "default",
            "must be undefined to be structural",
        ),
        (
            p.title.as_deref().is_some_and(|t| !t.is_empty()),
            "title",
            "must be empty to be structural",
        ),
        (
            p.description.as_deref().is_some_and(|t| !t.is_empty()),
            "description",
            "must be empty to be structural",
        ),
        (
            p.nullable == Some(true),
            "nullable",
            "must be false to be structural",
        ),
        (
            p.external_docs.is_some(),
            "externalDocs",
            "must be undefined to be structural",
        ),
        (
            p.x_kubernetes_preserve_unknown_fields == Some(true),
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        ),
        (
            p.x_kubernetes_embedded_resource == Some(true),
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        ),
        (
            p.x_kubernetes_int_or_string == Some(true),
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        ),
        (
            p.x_kubernetes_list_map_keys
                .as_ref()
                .is_some_and(|k| !k.is_empty()),
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        ),
        (
            p.x_kubernetes_list_type.is_some(),
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        ),
        (
            p.x_kubernetes_map_type.is_some(),
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        ),
        (
            // Upstream allows rules under junctors only behind an option CRDs do not set.
            p.x_kubernetes_validations
                .as_ref()
                .is_some_and(|v| !v.is_empty()),
            "x-kubernetes-validations",
            "must be empty to be structural",
        ),
    ];
    for (bad, f, msg) in checks {
        if bad {
            errs.push(FieldError::forbidden(path.child(f), msg));
        }
    }
    if p.properties
        .as_ref()
        .is_some_and(|m| m.contains_key("metadata"))
    {
        errs.push(FieldError::forbidden(
            path.child("properties").key("metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// Upstream `validateStructuralCompleteness`: every field or array a junctor specifies is
/// specified in the structural schema too. Checked at every structural node.
fn completeness(p: &JSONSchemaProps, path: &Path, errs: &mut Vec<FieldError>) {
    junctor_completeness(p, Some(p), path, path, errs);
    if let Some(items) = item_schema(p) {
        completeness(items, &path.child("items"), errs);
    }
    for (k, s) in props(&p.properties) {
        completeness(s, &path.child("properties").key(k), errs);
    }
    if let Some(a) = additional_schema(p) {
        completeness(a, &path.child("additionalProperties"), errs);
    }
}

fn junctor_completeness(
    v: &JSONSchemaProps,
    s: Option<&JSONSchemaProps>,
    s_path: &Path,
    v_path: &Path,
    errs: &mut Vec<FieldError>,
) {
    if let Some(n) = &v.not {
        nested_completeness(n, s, s_path, &v_path.child("not"), errs);
    }
    for (name, list) in [
        ("allOf", &v.all_of),
        ("anyOf", &v.any_of),
        ("oneOf", &v.one_of),
    ] {
        for (i, x) in list.iter().flatten().enumerate() {
            nested_completeness(x, s, s_path, &v_path.child(name).index(i), errs);
        }
    }
}

fn nested_completeness(
    v: &JSONSchemaProps,
    s: Option<&JSONSchemaProps>,
    s_path: &Path,
    v_path: &Path,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        errs.push(FieldError::required(
            s_path.clone(),
            format!("because it is defined in {v_path}"),
        ));
        return;
    };
    junctor_completeness(v, Some(s), s_path, v_path, errs);
    if let Some(vi) = item_schema(v) {
        nested_completeness(
            vi,
            item_schema(s),
            &s_path.child("items"),
            &v_path.child("items"),
            errs,
        );
    }
    for (k, vf) in props(&v.properties) {
        let sf = s.properties.as_ref().and_then(|m| m.get(k));
        if sf.is_none() {
            errs.push(FieldError::required(
                s_path.child("properties").key(k),
                format!(
                    "because it is defined in {}",
                    v_path.child("properties").key(k)
                ),
            ));
        } else {
            nested_completeness(
                vf,
                sf,
                &s_path.child("properties").key(k),
                &v_path.child("properties").key(k),
                errs,
            );
        }
    }
}

/// Upstream `ValidateDefaults`: every `default` (outside `additionalProperties` and resource
/// metadata) is pruned and valid under its schema. `node` is the compiled form of `p`.
pub(crate) fn defaults(
    p: &JSONSchemaProps,
    node: &Node,
    path: &Path,
    resource_root: bool,
    inside_meta: bool,
    errs: &mut Vec<FieldError>,
) {
    if let (Some(d), false) = (&node.default, inside_meta) {
        let dp = path.child("default");
        let mut pruned = d.clone();
        let mut dropped = Vec::new();
        super::prune::prune(&mut pruned, Some(node), node.embedded, "", &mut dropped);
        if !dropped.is_empty() {
            errs.push(FieldError::invalid_raw(
                dp.clone(),
                render(d),
                "must not have unknown fields",
            ));
        }
        let mut e = validate::Errors::default();
        validate::validate(node, d, None, &dp, &mut e);
        errs.extend(e.into_vec());
    }
    if let (Some(items), Some(inode)) = (item_schema(p), node.items.as_deref()) {
        defaults(items, inode, &path.child("items"), false, inside_meta, errs);
    }
    let resource = resource_root || node.embedded;
    for (k, s) in props(&p.properties) {
        let Some(sub) = node.properties.get(k) else {
            continue;
        };
        let meta = inside_meta || (resource && META_FIELDS.contains(&k.as_str()));
        defaults(s, sub, &path.child("properties").key(k), false, meta, errs);
    }
}
