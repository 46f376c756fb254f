//! ObjectMeta, labels, annotations, label selectors and shared helpers, after upstream
//! `apimachinery/pkg/api/validation/objectmeta.go` and `apis/meta/v1/validation`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::field::{FieldError, Path};
use crate::names;

/// Upstream `TotalAnnotationSizeLimitB`.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// How a kind's names are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (Namespace, ...).
    Label,
    /// DNS-1035 label (Service).
    Dns1035,
    /// Anything but `.`/`..`/containing `/` or `%` (path segment names: Event, ...).
    PathSegment,
}

fn name_errors(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Subdomain => names::is_dns1123_subdomain(name),
        NameRule::Label => names::is_dns1123_label(name),
        NameRule::Dns1035 => names::is_dns1035_label(name),
        NameRule::PathSegment => {
            let mut v = Vec::new();
            if name == "." || name == ".." {
                v.push(format!("may not be '{name}'"));
            }
            for bad in ["/", "%"] {
                if name.contains(bad) {
                    v.push(format!("may not contain '{bad}'"));
                }
            }
            v
        }
    }
}

/// Upstream `ValidateObjectMeta` (namespace presence is the API server's business: a missing
/// namespace on a namespaced kind is accepted here, as `kubectl apply` fills it in).
pub fn object_meta(m: &ObjectMeta, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let p = Path::new("metadata");
    let mut errs = Vec::new();
    match m.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => {
            for msg in name_errors(rule, name) {
                errs.push(FieldError::invalid(p.child("name"), name, msg));
            }
        }
        None => {
            if m.generate_name.as_deref().is_none_or(str::is_empty) {
                errs.push(FieldError::required(
                    p.child("name"),
                    "name or generateName is required",
                ));
            }
        }
    }
    if let Some(ns) = m.namespace.as_deref().filter(|n| !n.is_empty()) {
        if namespaced {
            for msg in names::is_dns1123_label(ns) {
                errs.push(FieldError::invalid(p.child("namespace"), ns, msg));
            }
        } else {
            errs.push(FieldError::forbidden(
                p.child("namespace"),
                "not allowed on this type",
            ));
        }
    }
    if let Some(g) = m.generation {
        if g < 0 {
            errs.push(FieldError::invalid_num(
                p.child("generation"),
                g,
                "must be greater than or equal to 0",
            ));
        }
    }
    errs.extend(labels(m.labels.as_ref(), &p.child("labels")));
    errs.extend(annotations(m.annotations.as_ref(), &p.child("annotations")));
    for (i, f) in m.finalizers.iter().flatten().enumerate() {
        for msg in names::is_qualified_name(f) {
            errs.push(FieldError::invalid(p.child("finalizers").index(i), f, msg));
        }
    }
    let mut controllers = Vec::new();
    for (i, o) in m.owner_references.iter().flatten().enumerate() {
        let op = p.child("ownerReferences").index(i);
        if o.api_version.is_empty() {
            errs.push(FieldError::invalid(
                op.child("apiVersion"),
                "",
                "version must not be empty",
            ));
        }
        if o.kind.is_empty() {
            errs.push(FieldError::invalid(
                op.child("kind"),
                "",
                "kind must not be empty",
            ));
        }
        if o.name.is_empty() {
            errs.push(FieldError::invalid(
                op.child("name"),
                "",
                "name must not be empty",
            ));
        }
        if o.uid.is_empty() {
            errs.push(FieldError::invalid(
                op.child("uid"),
                "",
                "uid must not be empty",
            ));
        }
        if o.controller == Some(true) {
            controllers.push(format!("{}/{}", o.kind, o.name));
        }
    }
    if controllers.len() > 1 {
        errs.push(FieldError::invalid_raw(
            p.child("ownerReferences"),
            format!("{} references", m.owner_references.as_ref().map_or(0, Vec::len)),
            format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {} and {}",
                controllers[0], controllers[1]
            ),
        ));
    }
    errs
}

/// Upstream `ValidateObjectMetaUpdate`: name, namespace, uid, creationTimestamp immutable.
pub fn object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> Vec<FieldError> {
    let p = Path::new("metadata");
    let mut errs = Vec::new();
    let pairs = [
        ("name", &new.name, &old.name),
        ("namespace", &new.namespace, &old.namespace),
        ("uid", &new.uid, &old.uid),
    ];
    for (f, n, o) in pairs {
        if o.is_some() && n != o {
            errs.push(immutable(p.child(f), n.as_deref().unwrap_or("")));
        }
    }
    if old.creation_timestamp.is_some() && new.creation_timestamp != old.creation_timestamp {
        errs.push(FieldError::invalid_raw(
            p.child("creationTimestamp"),
            "\"…\"",
            "field is immutable",
        ));
    }
    errs
}

/// `field is immutable` (upstream `ValidateImmutableField`).
pub fn immutable(path: Path, value: &str) -> FieldError {
    FieldError::invalid(path, value, "field is immutable")
}

/// Upstream `ValidateLabels`.
pub fn labels(l: Option<&BTreeMap<String, String>>, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in l.into_iter().flatten() {
        for msg in names::is_qualified_name(k) {
            errs.push(FieldError::invalid(p.clone(), k, msg));
        }
        for msg in names::is_valid_label_value(v) {
            errs.push(FieldError::invalid(p.key(k), v, msg));
        }
    }
    errs
}

/// Upstream `ValidateAnnotations`.
pub fn annotations(a: Option<&BTreeMap<String, String>>, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in a.into_iter().flatten() {
        for msg in names::is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(p.clone(), k, msg));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(p.clone(), TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// Upstream `ValidateLabelSelector`.
pub fn label_selector(s: &LabelSelector, p: &Path) -> Vec<FieldError> {
    let mut errs = labels(s.match_labels.as_ref(), &p.child("matchLabels"));
    for (i, r) in s.match_expressions.iter().flatten().enumerate() {
        let rp = p.child("matchExpressions").index(i);
        let nvalues = r.values.as_ref().map_or(0, Vec::len);
        match r.operator.as_str() {
            "In" | "NotIn" => {
                if nvalues == 0 {
                    errs.push(FieldError::required(
                        rp.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if nvalues > 0 {
                    errs.push(FieldError::forbidden(
                        rp.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                rp.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        for msg in names::is_qualified_name(&r.key) {
            errs.push(FieldError::invalid(rp.child("key"), &r.key, msg));
        }
        for (j, v) in r.values.iter().flatten().enumerate() {
            for msg in names::is_valid_label_value(v) {
                errs.push(FieldError::invalid(rp.child("values").index(j), v, msg));
            }
        }
    }
    errs
}

/// `must be greater than or equal to 0` (upstream `ValidateNonnegativeField`).
pub fn non_negative(v: Option<i64>, p: Path) -> Option<FieldError> {
    match v {
        Some(n) if n < 0 => Some(FieldError::invalid_num(
            p,
            n,
            "must be greater than or equal to 0",
        )),
        _ => None,
    }
}

/// `must be greater than 0` for a set value.
pub fn positive(v: Option<i64>, p: Path) -> Option<FieldError> {
    match v {
        Some(n) if n <= 0 => Some(FieldError::invalid_num(p, n, "must be greater than 0")),
        _ => None,
    }
}

/// Upstream `ValidatePositiveIntOrPercent` (+ `IsValidPercent`): ints ≥ 0, strings `N%`.
pub fn int_or_percent(v: &IntOrString, p: &Path) -> Vec<FieldError> {
    match v {
        IntOrString::Int(i) if *i < 0 => vec![FieldError::invalid_num(
            p.clone(),
            i64::from(*i),
            "must be greater than or equal to 0",
        )],
        IntOrString::Int(_) => vec![],
        IntOrString::String(s) => {
            let ok = s
                .strip_suffix('%')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
            if ok {
                vec![]
            } else {
                vec![FieldError::invalid(
                    p.clone(),
                    s,
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                )]
            }
        }
    }
}

/// Percent value of an IntOrString (None for ints).
pub fn percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::String(s) => s.strip_suffix('%').and_then(|n| n.parse().ok()),
        IntOrString::Int(_) => None,
    }
}

/// Upstream `IsNotMoreThan100Percent`.
pub fn not_more_than_100_percent(v: &IntOrString, p: &Path) -> Option<FieldError> {
    match percent_value(v) {
        Some(n) if n > 100 => match v {
            IntOrString::String(s) => Some(FieldError::invalid(
                p.clone(),
                s,
                "must not be greater than 100%",
            )),
            IntOrString::Int(_) => None,
        },
        _ => None,
    }
}
