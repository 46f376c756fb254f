//! [`FieldSet`]: a set of field paths, the `fieldsV1` tree of a `managedFields` entry.
//!
//! Model: upstream `sigs.k8s.io/structured-merge-diff/fieldpath` (`Set` with `Members` and
//! `Children`) and its `FieldsV1` encoding (`fieldpath/serialize.go`,
//! `managedfields/internal/fields.go`). A path is a list of segments spelled as in `fieldsV1`:
//! `f:name` (a field), `k:{"name":"c"}` (a list element by its keys), `v:"x"` (a set element),
//! `i:0` (an index). A path is a *member* when the set owns that node itself: every leaf, and
//! the list elements and map entries whose existence a manager owns (encoded as `".": {}` beside
//! the node's children).
//!
//! ```
//! use orch_apiserver::fieldmanager::FieldSet;
//! use serde_json::json;
//! let fs = FieldSet::from_fields_v1(&json!({"f:spec": {"f:replicas": {}}})).unwrap();
//! assert!(fs.has(&["f:spec".into(), "f:replicas".into()]));
//! assert_eq!(fs.to_fields_v1(), json!({"f:spec": {"f:replicas": {}}}));
//! assert_eq!(fs.paths()[0].to_string(), ".spec.replicas");
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// One path segment as `fieldsV1` spells it (`f:spec`, `k:{"name":"c"}`, `v:"x"`, `i:0`).
pub type Segment = String;

/// A set of field paths (see the module docs). Children never hold empty sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<Segment>,
    children: BTreeMap<Segment, FieldSet>,
}

/// A field path, printed as upstream prints conflicts (`.spec.containers[name="c"].image`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<Segment>);

impl fmt::Display for FieldPath {
    /// upstream `fieldpath.Path.String`: `.name` for fields, `[k=v,…]` for keys (values as
    /// JSON), `[=v]` for set values, `[i]` for indices.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for seg in &self.0 {
            if let Some(name) = seg.strip_prefix("f:") {
                write!(f, ".{name}")?;
            } else if let Some(key) = seg.strip_prefix("k:") {
                match serde_json::from_str::<Map<String, Value>>(key) {
                    Ok(fields) => {
                        let parts: Vec<String> =
                            fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        write!(f, "[{}]", parts.join(","))?;
                    }
                    Err(_) => write!(f, "[{key}]")?,
                }
            } else if let Some(v) = seg.strip_prefix("v:") {
                write!(f, "[={v}]")?;
            } else if let Some(i) = seg.strip_prefix("i:") {
                write!(f, "[{i}]")?;
            } else {
                write!(f, "{seg}")?;
            }
        }
        Ok(())
    }
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// No paths at all.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds `path` as a member (the empty path is ignored: the root is never owned).
    pub fn insert(&mut self, path: &[Segment]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether `path` is a member.
    pub fn has(&self, path: &[Segment]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether `path` or any path below it is a member.
    pub fn has_prefix(&self, path: &[Segment]) -> bool {
        match path {
            [] => !self.is_empty(),
            [first, rest @ ..] => {
                (rest.is_empty() && self.members.contains(first))
                    || self.children.get(first).is_some_and(|c| c.has_prefix(rest))
            }
        }
    }

    /// Adds every path of `other`.
    pub fn union_with(&mut self, other: &FieldSet) {
        self.members.extend(other.members.iter().cloned());
        for (k, c) in &other.children {
            self.children.entry(k.clone()).or_default().union_with(c);
        }
    }

    /// Removes every path of `other` (paths below a removed member stay).
    pub fn remove_all(&mut self, other: &FieldSet) {
        if other.is_empty() {
            return;
        }
        self.members.retain(|m| !other.members.contains(m));
        self.children.retain(|k, c| {
            if let Some(o) = other.children.get(k) {
                c.remove_all(o);
            }
            !c.is_empty()
        });
    }

    /// Removes every path of `other` and everything below its members (upstream
    /// `Set.RecursiveDifference`, used for fields a strategy resets).
    pub fn remove_recursive(&mut self, other: &FieldSet) {
        self.members.retain(|m| !other.members.contains(m));
        self.children.retain(|k, c| {
            if other.members.contains(k) {
                return false;
            }
            if let Some(o) = other.children.get(k) {
                c.remove_recursive(o);
            }
            !c.is_empty()
        });
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(k, c)| {
                let both = c.intersection(other.children.get(k)?);
                (!both.is_empty()).then(|| (k.clone(), both))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Every member path, in `fieldsV1` order.
    pub fn paths(&self) -> Vec<FieldPath> {
        fn walk(s: &FieldSet, prefix: &mut Vec<Segment>, out: &mut Vec<FieldPath>) {
            let keys: BTreeSet<&Segment> = s.members.iter().chain(s.children.keys()).collect();
            for k in keys {
                prefix.push(k.clone());
                if s.members.contains(k) {
                    out.push(FieldPath(prefix.clone()));
                }
                if let Some(c) = s.children.get(k) {
                    walk(c, prefix, out);
                }
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// Decodes a `fieldsV1` object (upstream `FieldsToSet`).
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        let Some(m) = v.as_object() else {
            return Err("fieldsV1 must be an object".into());
        };
        let mut out = FieldSet::new();
        for (k, child) in m {
            if k == "." {
                continue;
            }
            if !["f:", "k:", "v:", "i:"].iter().any(|p| k.starts_with(p)) {
                return Err(format!("invalid fieldsV1 path element {k:?}"));
            }
            let Some(cm) = child.as_object() else {
                return Err(format!("fieldsV1 element {k:?} must be an object"));
            };
            if cm.is_empty() || cm.contains_key(".") {
                out.members.insert(k.clone());
            }
            if cm.keys().any(|c| c != ".") {
                let c = FieldSet::from_fields_v1(child)?;
                if !c.is_empty() {
                    out.children.insert(k.clone(), c);
                }
            }
        }
        Ok(out)
    }

    /// Encodes as a `fieldsV1` object: segments in order, a member with children marked by
    /// `".": {}` first.
    pub fn to_fields_v1(&self) -> Value {
        let keys: BTreeSet<&Segment> = self.members.iter().chain(self.children.keys()).collect();
        let mut out = Map::new();
        for k in keys {
            let node = match self.children.get(k) {
                Some(c) => {
                    let mut inner = Map::new();
                    if self.members.contains(k) {
                        inner.insert(".".into(), Value::Object(Map::new()));
                    }
                    if let Value::Object(m) = c.to_fields_v1() {
                        inner.extend(m);
                    }
                    Value::Object(inner)
                }
                None => Value::Object(Map::new()),
            };
            out.insert(k.clone(), node);
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(segs: &[&str]) -> Vec<Segment> {
        segs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_v1_round_trips_with_dot_members() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}}}}
        });
        let fs = FieldSet::from_fields_v1(&v).unwrap();
        assert!(fs.has(&p(&["f:metadata", "f:labels"])));
        assert!(!fs.has(&p(&["f:metadata"])));
        assert_eq!(fs.to_fields_v1(), v);
        let paths: Vec<String> = fs.paths().iter().map(ToString::to_string).collect();
        assert_eq!(
            paths,
            [
                ".metadata.labels",
                ".metadata.labels.app",
                ".spec.containers[name=\"c\"]",
                ".spec.containers[name=\"c\"].image"
            ]
        );
        assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::new();
        a.insert(&p(&["f:spec", "f:replicas"]));
        a.insert(&p(&["f:spec", "f:paused"]));
        let mut b = FieldSet::new();
        b.insert(&p(&["f:spec", "f:replicas"]));
        assert_eq!(a.intersection(&b), b);
        let mut c = a.clone();
        c.remove_all(&b);
        assert!(c.has(&p(&["f:spec", "f:paused"])) && !c.has(&p(&["f:spec", "f:replicas"])));
        c.remove_all(&a);
        assert!(c.is_empty());
        let mut spec = FieldSet::new();
        spec.insert(&p(&["f:spec"]));
        let mut d = a.clone();
        d.remove_all(&spec);
        assert_eq!(d, a, "a plain difference keeps what is below");
        d.remove_recursive(&spec);
        assert!(d.is_empty());
        assert!(a.has_prefix(&p(&["f:spec"])) && !a.has_prefix(&p(&["f:status"])));
        b.union_with(&a);
        assert_eq!(b, a);
    }

    #[test]
    fn conflict_paths_print_like_upstream() {
        let path = FieldPath(p(&[
            "f:spec",
            "f:ports",
            "k:{\"port\":80,\"protocol\":\"TCP\"}",
            "f:targetPort",
        ]));
        assert_eq!(
            path.to_string(),
            ".spec.ports[port=80,protocol=\"TCP\"].targetPort"
        );
        assert_eq!(
            FieldPath(p(&["f:metadata", "f:finalizers", "v:\"x\""])).to_string(),
            ".metadata.finalizers[=\"x\"]"
        );
    }
}
