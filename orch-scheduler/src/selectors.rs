//! Label and node selectors compiled once per pod into the form the per-node loop matches
//! without allocating: requirements with their values sorted, matched against a label map.
//!
//! The wire forms (`LabelSelector`, `NodeSelector`) are converted here, once, in
//! [`crate::pod_info::PodInfo::new`]; semantics follow apimachinery `labels.Selector` and
//! component-helpers `nodeaffinity` (`Gt`/`Lt` parse integers, a term with no requirements
//! matches nothing, terms are ORed, requirements ANDed).

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use std::collections::BTreeMap;

/// A selector could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector: {0}")]
pub struct SelectorError(pub String);

/// A requirement's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Label value in the set.
    In,
    /// Label absent or value not in the set.
    NotIn,
    /// Label present.
    Exists,
    /// Label absent.
    DoesNotExist,
    /// Label value, as an integer, greater than the value.
    Gt,
    /// Label value, as an integer, less than the value.
    Lt,
}

/// One requirement `key op values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub op: Op,
    /// Values (sorted).
    pub values: Vec<String>,
    num: i64,
}

impl Requirement {
    fn new(key: &str, op: &str, values: &[String]) -> Result<Self, SelectorError> {
        let op = match op {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" => Op::Gt,
            "Lt" => Op::Lt,
            other => return Err(SelectorError(format!("{other:?} is not a valid operator"))),
        };
        let mut values = values.to_vec();
        values.sort();
        values.dedup();
        let mut num = 0;
        match op {
            Op::In | Op::NotIn if values.is_empty() => {
                return Err(SelectorError(format!(
                    "key {key:?}: values must be non-empty for In/NotIn"
                )))
            }
            Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                return Err(SelectorError(format!(
                    "key {key:?}: values must be empty for Exists/DoesNotExist"
                )))
            }
            Op::Gt | Op::Lt => {
                if values.len() != 1 {
                    return Err(SelectorError(format!(
                        "key {key:?}: Gt/Lt need exactly one value"
                    )));
                }
                num = values[0].parse().map_err(|_| {
                    SelectorError(format!("key {key:?}: {:?} is not an integer", values[0]))
                })?;
            }
            _ => {}
        }
        Ok(Self {
            key: key.into(),
            op,
            values,
            num,
        })
    }

    /// Matches one label map.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match self.op {
            Op::In => v.is_some_and(|v| self.values.binary_search(v).is_ok()),
            Op::NotIn => v.is_none_or(|v| self.values.binary_search(v).is_err()),
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
            Op::Gt => v
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|n| n > self.num),
            Op::Lt => v
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|n| n < self.num),
        }
    }
}

/// A compiled label selector: all requirements must match. `Nothing` matches no object (a nil
/// selector in affinity terms and spread constraints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelMatcher {
    /// Matches nothing.
    Nothing,
    /// Matches when every requirement matches (empty = everything).
    All(Vec<Requirement>),
}

impl LabelMatcher {
    /// Compiles an API `LabelSelector`; `None` compiles to [`LabelMatcher::Nothing`].
    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        let Some(sel) = sel else {
            return Ok(Self::Nothing);
        };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement::new(k, "In", std::slice::from_ref(v))?);
        }
        for LabelSelectorRequirement {
            key,
            operator,
            values,
        } in sel.match_expressions.iter().flatten()
        {
            if matches!(operator.as_str(), "Gt" | "Lt") {
                return Err(SelectorError(format!(
                    "{operator:?} is not a valid label selector operator"
                )));
            }
            reqs.push(Requirement::new(
                key,
                operator,
                values.as_deref().unwrap_or(&[]),
            )?);
        }
        Ok(Self::All(reqs))
    }

    /// Everything.
    pub fn everything() -> Self {
        Self::All(Vec::new())
    }

    /// Adds `key In (value)` (used for `matchLabelKeys`).
    pub fn and_equals(&mut self, key: &str, value: &str) {
        if let Self::All(reqs) = self {
            if let Ok(r) = Requirement::new(key, "In", &[value.to_string()]) {
                reqs.push(r);
            }
        }
    }

    /// Matches a label map.
    #[inline]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Nothing => false,
            Self::All(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }

    /// True when it matches every object.
    pub fn is_everything(&self) -> bool {
        matches!(self, Self::All(r) if r.is_empty())
    }
}

/// One node selector term: label requirements and `metadata.name` field requirements, ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTerm {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl NodeTerm {
    fn new(t: &NodeSelectorTerm) -> Result<Self, SelectorError> {
        let conv = |rs: Option<&Vec<NodeSelectorRequirement>>| {
            rs.into_iter()
                .flatten()
                .map(|r| Requirement::new(&r.key, &r.operator, r.values.as_deref().unwrap_or(&[])))
                .collect::<Result<Vec<_>, _>>()
        };
        let fields = conv(t.match_fields.as_ref())?;
        if let Some(f) = fields.iter().find(|f| f.key != "metadata.name") {
            return Err(SelectorError(format!(
                "{:?} is not a supported node field selector key",
                f.key
            )));
        }
        Ok(Self {
            labels: conv(t.match_expressions.as_ref())?,
            fields,
        })
    }

    /// Matches a node's labels and name. A term without requirements matches nothing.
    pub fn matches(&self, labels: &BTreeMap<String, String>, name: &str) -> bool {
        if self.labels.is_empty() && self.fields.is_empty() {
            return false;
        }
        if !self.labels.iter().all(|r| r.matches(labels)) {
            return false;
        }
        if self.fields.is_empty() {
            return true;
        }
        let mut m = BTreeMap::new();
        m.insert("metadata.name".to_string(), name.to_string());
        self.fields.iter().all(|r| r.matches(&m))
    }

    /// The node names a `metadata.name In (...)` field requirement restricts to.
    pub fn name_restriction(&self) -> Option<&[String]> {
        self.fields
            .iter()
            .find(|f| f.op == Op::In)
            .map(|f| f.values.as_slice())
    }
}

/// A compiled `NodeSelector`: terms ORed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMatcher {
    /// The terms.
    pub terms: Vec<NodeTerm>,
}

impl NodeMatcher {
    /// Compiles a `NodeSelector`.
    pub fn new(sel: &NodeSelector) -> Result<Self, SelectorError> {
        Ok(Self {
            terms: sel
                .node_selector_terms
                .iter()
                .map(NodeTerm::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Matches a node.
    pub fn matches(&self, labels: &BTreeMap<String, String>, name: &str) -> bool {
        self.terms.iter().any(|t| t.matches(labels, name))
    }
}

/// Compiles one term (preferred node affinity).
pub fn node_term(t: &NodeSelectorTerm) -> Result<NodeTerm, SelectorError> {
    NodeTerm::new(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_semantics() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]
        }))
        .unwrap();
        let m = LabelMatcher::from_label_selector(Some(&sel)).unwrap();
        assert!(m.matches(&labels(&[("app", "web")])));
        assert!(!m.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(!m.matches(&labels(&[])));
        assert!(!LabelMatcher::from_label_selector(None)
            .unwrap()
            .matches(&labels(&[])));
        let empty = LabelMatcher::from_label_selector(Some(&LabelSelector::default())).unwrap();
        assert!(empty.matches(&labels(&[])));
    }

    #[test]
    fn node_selector_ops_and_fields() {
        let ns: NodeSelector = serde_json::from_value(json!({"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n9"]}]},
            {}
        ]}))
        .unwrap();
        let m = NodeMatcher::new(&ns).unwrap();
        assert!(m.matches(&labels(&[("cores", "8")]), "n1"));
        assert!(!m.matches(&labels(&[("cores", "4")]), "n1"));
        assert!(!m.matches(&labels(&[("cores", "x")]), "n1"));
        assert!(m.matches(&labels(&[]), "n9"));
    }

    #[test]
    fn invalid_selectors_are_errors() {
        let bad: LabelSelector = serde_json::from_value(json!({
            "matchExpressions": [{"key": "a", "operator": "In"}]}))
        .unwrap();
        assert!(LabelMatcher::from_label_selector(Some(&bad)).is_err());
        let ns: NodeSelector = serde_json::from_value(json!({"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["x"]}]}]}))
        .unwrap();
        assert!(NodeMatcher::new(&ns).is_err());
    }
}
