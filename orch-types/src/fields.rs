//! Field selectors (`?fieldSelector=metadata.name=x,spec.nodeName!=y`), as upstream
//! `apimachinery/pkg/fields/selector.go`, with the per-kind field sets of the upstream
//! registries (`pkg/registry/*/strategy.go` `ToSelectableFields`) and conversions
//! (`pkg/apis/*/v1/conversion.go` `AddFieldLabelConversionFunc`).
//!
//! ```
//! use orch_types::fields::FieldSelector;
//! let sel: FieldSelector = "spec.nodeName=node-1,status.phase!=Failed".parse().unwrap();
//! let sel = sel.for_kind("", "Pod").unwrap(); // checks the fields are supported for pods
//! let pod = serde_json::json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"},
//!     "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}});
//! assert!(sel.matches(&pod));
//! assert!("spec.bogus=1".parse::<FieldSelector>().unwrap().for_kind("", "Pod").is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// `=`/`==` or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOp {
    /// `field=value` (also `==`).
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One `field op value` term.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldTerm {
    /// Field path, e.g. `spec.nodeName`.
    pub field: String,
    /// Operator.
    pub op: FieldOp,
    /// Value (unescaped).
    pub value: String,
}

/// Field selector errors (messages as upstream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term without an operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Syntax {
        /// Whole selector.
        selector: String,
        /// The bad term.
        term: String,
    },
    /// A bad `\` escape or an unescaped `=`/`,` in a value.
    #[error("invalid field selector: {0}")]
    Escape(String),
    /// A field the kind does not support (HTTP 400 from the API server).
    #[error("field label not supported: {0}")]
    Unsupported(String),
}

/// A parsed field selector: every term must hold. The empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// Fields every kind supports.
pub const GENERIC_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// The selectable fields of a kind beyond the generic ones (upstream registries, v1.33).
pub fn supported_fields(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "Event") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "deprecatedSource",
            "type",
        ],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Namespace") => &["status.phase"],
        ("", "Secret") => &["type"],
        ("", "ReplicationController") => &["status.replicas"],
        ("apps", "ReplicaSet") => &["status.replicas"],
        ("batch", "Job") => &["status.successful"],
        _ => &[],
    }
}

fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, seg| v.get(seg))
}

fn scalar(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The value a field has on an object's JSON, as the upstream registry computes it (absent
/// fields read as `""`; booleans and counts default as upstream).
pub fn field_value(obj: &Value, field: &str) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    match (kind, field) {
        ("Pod", "spec.hostNetwork") => lookup(obj, field)
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        ("Pod", "status.podIP") | ("Pod", "status.podIPs") => {
            let first = obj
                .pointer("/status/podIPs/0/ip")
                .or_else(|| obj.pointer("/status/podIP"));
            scalar(first)
        }
        ("Node", "spec.unschedulable") => lookup(obj, field)
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        (_, "status.replicas") | (_, "status.successful") => lookup(obj, field)
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
        ("Event", "source") | ("Event", "deprecatedSource") => {
            let src = if field == "source" {
                obj.pointer("/source/component")
            } else {
                obj.pointer("/deprecatedSource/component")
            };
            let s = scalar(src);
            if s.is_empty() {
                // upstream: source falls back to reportingController
                let rc = if field == "source" {
                    obj.get("reportingComponent")
                } else {
                    obj.get("reportingController")
                };
                scalar(rc)
            } else {
                s
            }
        }
        _ => scalar(lookup(obj, field)),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn unescape(s: &str) -> Result<String, FieldSelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(other) => {
                    return Err(FieldSelectorError::Escape(format!(
                        "invalid escape sequence: \\{other}"
                    )))
                }
                None => {
                    return Err(FieldSelectorError::Escape(
                        "invalid escape sequence: trailing \\".into(),
                    ))
                }
            },
            ',' | '=' => {
                return Err(FieldSelectorError::Escape(format!(
                    "unescaped {c} in value {s:?}"
                )))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Splits on unescaped `sep`.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

impl FromStr for FieldSelector {
    type Err = FieldSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self { terms });
        }
        for part in split_unescaped(s, ',') {
            if part.is_empty() {
                continue;
            }
            // Operators in upstream order: `!=`, `==`, `=`.
            let found = ["!=", "==", "="]
                .iter()
                .filter_map(|op| part.find(op).map(|i| (i, *op)))
                .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())));
            let Some((i, op)) = found else {
                return Err(FieldSelectorError::Syntax {
                    selector: s.into(),
                    term: part.into(),
                });
            };
            terms.push(FieldTerm {
                field: part[..i].trim().to_string(),
                op: if op == "!=" {
                    FieldOp::NotEquals
                } else {
                    FieldOp::Equals
                },
                value: unescape(&part[i + op.len()..])?,
            });
        }
        Ok(Self { terms })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match t.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", t.field, escape(&t.value))?;
        }
        Ok(())
    }
}

impl FieldSelector {
    /// The terms.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// True for the empty selector.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Checks every field is supported for the kind and applies upstream's label conversions
    /// (`spec.host` → `spec.nodeName` for pods). Unsupported fields are
    /// [`FieldSelectorError::Unsupported`] (a 400 from the API server).
    pub fn for_kind(&self, group: &str, kind: &str) -> Result<FieldSelector, FieldSelectorError> {
        let mut f = self.clone();
        if group.is_empty() && kind == "Pod" {
            for t in &mut f.terms {
                if t.field == "spec.host" {
                    t.field = "spec.nodeName".into();
                }
            }
        }
        f.with_fields(supported_fields(group, kind))
    }

    /// Checks every field is generic or one of `extra` (a custom resource's
    /// `selectableFields`, without their leading `.`).
    pub fn with_fields<S: AsRef<str>>(
        &self,
        extra: &[S],
    ) -> Result<FieldSelector, FieldSelectorError> {
        for t in &self.terms {
            let known = GENERIC_FIELDS.contains(&t.field.as_str())
                || extra.iter().any(|e| e.as_ref() == t.field);
            if !known {
                return Err(FieldSelectorError::Unsupported(t.field.clone()));
            }
        }
        Ok(self.clone())
    }

    /// The value required by an `=` term on `field`, if any (lets a server narrow a list, e.g.
    /// `spec.nodeName=X` for a kubelet).
    pub fn exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.op == FieldOp::Equals)
            .map(|t| t.value.as_str())
    }

    /// Whether the object (its JSON, with `kind`) satisfies every term.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let v = field_value(obj, &t.field);
            match t.op {
                FieldOp::Equals => v == t.value,
                FieldOp::NotEquals => v != t.value,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_display_and_errors() {
        let s: FieldSelector = "a=b,c!=d,e==f".parse().unwrap();
        assert_eq!(s.to_string(), "a=b,c!=d,e=f");
        let esc: FieldSelector = r"a=x\,y\=z\\".parse().unwrap();
        assert_eq!(esc.terms()[0].value, r"x,y=z\");
        assert_eq!(esc.to_string(), r"a=x\,y\=z\\");
        assert!(matches!(
            "abc".parse::<FieldSelector>(),
            Err(FieldSelectorError::Syntax { .. })
        ));
        assert!(matches!(
            r"a=b\q".parse::<FieldSelector>(),
            Err(FieldSelectorError::Escape(_))
        ));
        assert!(matches!(
            "a=b=c".parse::<FieldSelector>(),
            Err(FieldSelectorError::Escape(_))
        ));
        assert!("".parse::<FieldSelector>().unwrap().is_empty());
        assert_eq!("a=".parse::<FieldSelector>().unwrap().terms()[0].value, "");
    }

    /// Per-kind supported sets (upstream conversion.go field label funcs).
    #[test]
    fn supported_per_kind() {
        let ok = [
            ("", "Pod", "spec.nodeName=n"),
            ("", "Pod", "spec.host=n"),
            ("", "Pod", "status.nominatedNodeName=n"),
            ("", "Event", "involvedObject.uid=u,reason=Failed"),
            ("", "Node", "spec.unschedulable=false"),
            ("", "Namespace", "status.phase=Active"),
            ("", "Secret", "type=kubernetes.io/service-account-token"),
            ("apps", "ReplicaSet", "status.replicas=0"),
            ("", "ConfigMap", "metadata.name=x,metadata.namespace=y"),
        ];
        for (g, k, s) in ok {
            let sel: FieldSelector = s.parse().unwrap();
            assert!(sel.for_kind(g, k).is_ok(), "{k}: {s}");
        }
        let bad = [
            ("", "ConfigMap", "data.x=1"),
            ("", "Node", "spec.nodeName=x"),
            ("apps", "Deployment", "status.replicas=1"),
        ];
        for (g, k, s) in bad {
            let sel: FieldSelector = s.parse().unwrap();
            let e = sel.for_kind(g, k).unwrap_err();
            assert!(
                e.to_string().starts_with("field label not supported: "),
                "{e}"
            );
        }
        let conv: FieldSelector = "spec.host=n1".parse().unwrap();
        assert_eq!(
            conv.for_kind("", "Pod")
                .unwrap()
                .exact_match("spec.nodeName"),
            Some("n1")
        );
    }

    #[test]
    fn matching_uses_registry_values() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
            "spec": {}, "status": {"podIPs": [{"ip": "10.0.0.1"}]}});
        for (s, want) in [
            ("spec.hostNetwork=false", true),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
            ("status.podIP=10.0.0.1", true),
            ("metadata.namespace=ns,metadata.name=p", true),
            ("metadata.name!=p", false),
        ] {
            assert_eq!(
                s.parse::<FieldSelector>().unwrap().matches(&pod),
                want,
                "{s}"
            );
        }
        let ev = json!({"kind": "Event", "reportingComponent": "kubelet", "involvedObject": {"kind": "Pod"}});
        assert!("source=kubelet,involvedObject.kind=Pod"
            .parse::<FieldSelector>()
            .unwrap()
            .matches(&ev));
        let rs = json!({"kind": "ReplicaSet", "status": {}});
        assert!("status.replicas=0"
            .parse::<FieldSelector>()
            .unwrap()
            .matches(&rs));
    }
}
