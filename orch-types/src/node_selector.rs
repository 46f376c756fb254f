//! Node selectors and node affinity matching, as upstream
//! `component-helpers/scheduling/corev1/nodeaffinity/nodeaffinity.go`.
//!
//! A `NodeSelector` matches a node when ANY of its terms matches; a term matches when ALL of its
//! `matchExpressions` (on labels: In, NotIn, Exists, DoesNotExist, Gt, Lt) and `matchFields`
//! (only `metadata.name`, In/NotIn with one value) hold. An empty term matches nothing, and a
//! term that fails to parse is skipped (as upstream does).
//!
//! ```
//! use orch_types::node_selector::term_matches;
//! use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
//! use std::collections::BTreeMap;
//! let term = NodeSelectorTerm {
//!     match_expressions: Some(vec![NodeSelectorRequirement {
//!         key: "cpus".into(), operator: "Gt".into(), values: Some(vec!["4".into()]) }]),
//!     match_fields: None,
//! };
//! let labels = BTreeMap::from([("cpus".to_string(), "8".to_string())]);
//! assert!(term_matches(&term, &labels, "node-1").unwrap());
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};

use crate::labels::{Operator, Requirement, Selector, SelectorError};

/// The only field `matchFields` supports for nodes.
pub const NODE_FIELD_METADATA_NAME: &str = "metadata.name";

/// Converts `matchExpressions` into label requirements (upstream
/// `nodeSelectorRequirementsAsSelector`).
pub fn requirements_as_selector(
    reqs: &[NodeSelectorRequirement],
) -> Result<Selector, SelectorError> {
    let mut out = Vec::with_capacity(reqs.len());
    for r in reqs {
        let op = match r.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            "Gt" => Operator::Gt,
            "Lt" => Operator::Lt,
            other => {
                return Err(SelectorError {
                    position: 0,
                    message: format!("{other:?} is not a valid node selector operator"),
                })
            }
        };
        out.push(Requirement::new(
            &r.key,
            op,
            r.values.iter().flatten().map(String::as_str),
        )?);
    }
    Ok(Selector::from_requirements(out))
}

/// One `matchFields` requirement (upstream `nodeSelectorRequirementsAsFieldSelector`: `In` /
/// `NotIn` with exactly one value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FieldRequirement {
    key: String,
    not_in: bool,
    value: String,
}

impl FieldRequirement {
    fn new(r: &NodeSelectorRequirement) -> Result<Self, SelectorError> {
        let values = r.values.as_deref().unwrap_or_default();
        if values.len() != 1 {
            return Err(SelectorError {
                position: 0,
                message: format!(
                    "unexpected number of value ({}) for node field selector operator {:?}",
                    values.len(),
                    r.operator
                ),
            });
        }
        let not_in = match r.operator.as_str() {
            "In" => false,
            "NotIn" => true,
            other => {
                return Err(SelectorError {
                    position: 0,
                    message: format!("{other:?} is not a valid node field selector operator"),
                })
            }
        };
        Ok(Self {
            key: r.key.clone(),
            not_in,
            value: values[0].clone(),
        })
    }

    fn matches(&self, node_name: &str) -> bool {
        // Fields other than metadata.name are absent, and an absent field reads as "".
        let actual = if self.key == NODE_FIELD_METADATA_NAME {
            node_name
        } else {
            ""
        };
        (actual == self.value) != self.not_in
    }
}

/// A `NodeSelectorTerm` parsed once (upstream `nodeaffinity.nodeSelectorTerm`), to match many
/// nodes without re-parsing: label requirements and `matchFields`, ANDed; a term without any
/// requirement matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompiledTerm {
    labels: Option<Selector>,
    fields: Vec<FieldRequirement>,
}

impl CompiledTerm {
    /// Parses a term; errors for an unknown operator, a bad key/value or a field requirement
    /// without exactly one value.
    pub fn new(term: &NodeSelectorTerm) -> Result<Self, SelectorError> {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        Ok(Self {
            labels: if exprs.is_empty() {
                None
            } else {
                Some(requirements_as_selector(exprs)?)
            },
            fields: fields
                .iter()
                .map(FieldRequirement::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether the term matches a node given its labels and name.
    pub fn matches(&self, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
        if self.labels.is_none() && self.fields.is_empty() {
            return false;
        }
        self.labels.as_ref().is_none_or(|s| s.matches(labels))
            && self.fields.iter().all(|f| f.matches(node_name))
    }

    /// The node names this term is limited to by `metadata.name In` field requirements (their
    /// intersection), or `None` when it has none (upstream NodeAffinity `PreFilter`).
    pub fn name_restriction(&self) -> Option<Vec<&str>> {
        let mut names = self
            .fields
            .iter()
            .filter(|f| f.key == NODE_FIELD_METADATA_NAME && !f.not_in)
            .map(|f| f.value.as_str());
        let first = names.next()?;
        Some(if names.all(|n| n == first) {
            vec![first]
        } else {
            Vec::new()
        })
    }
}

/// A `NodeSelector` parsed once (upstream `nodeaffinity.NodeSelector`): its terms are ORed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompiledNodeSelector {
    /// The terms.
    pub terms: Vec<CompiledTerm>,
}

impl CompiledNodeSelector {
    /// Parses every term; errors on the first malformed one.
    pub fn new(sel: &NodeSelector) -> Result<Self, SelectorError> {
        Ok(Self {
            terms: sel
                .node_selector_terms
                .iter()
                .map(CompiledTerm::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Parses the terms, leaving malformed ones out (they never match, upstream's lazy-error
    /// selector as `GetRequiredNodeAffinity` uses it).
    pub fn new_lenient(sel: &NodeSelector) -> Self {
        Self {
            terms: sel
                .node_selector_terms
                .iter()
                .filter_map(|t| CompiledTerm::new(t).ok())
                .collect(),
        }
    }

    /// Whether any term matches the node.
    pub fn matches(&self, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
        self.terms.iter().any(|t| t.matches(labels, node_name))
    }
}

/// Whether one term matches a node given its labels and name. Errors for malformed terms.
pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    node_name: &str,
) -> Result<bool, SelectorError> {
    Ok(CompiledTerm::new(term)?.matches(labels, node_name))
}

/// Whether a `NodeSelector` (ORed terms) matches the node; malformed terms never match.
pub fn node_selector_matches(sel: &NodeSelector, node: &Node) -> bool {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&EMPTY);
    let name = node.metadata.name.as_deref().unwrap_or("");
    sel.node_selector_terms
        .iter()
        .any(|t| term_matches(t, labels, name).unwrap_or(false))
}

/// Whether a pod's `spec.nodeSelector` and required node affinity both match the node
/// (upstream `GetRequiredNodeAffinity(pod).Match(node)`, used by the NodeAffinity filter and
/// the DaemonSet controller).
pub fn pod_matches_node(pod: &Pod, node: &Node) -> bool {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = node.metadata.labels.as_ref().unwrap_or(&EMPTY);
    if let Some(ns) = &spec.node_selector {
        if !Selector::from_map(ns).matches(labels) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(sel) => node_selector_matches(sel, node),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|s| s.to_string()).collect())
            },
        }
    }

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn term(
        exprs: Vec<NodeSelectorRequirement>,
        fields: Vec<NodeSelectorRequirement>,
    ) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(exprs),
            match_fields: Some(fields),
        }
    }

    /// After upstream nodeaffinity_test.go TestNodeSelectorMatch.
    #[test]
    fn table() {
        let n = node("host_1", &[("foo", "bar"), ("gen", "5")]);
        let cases: Vec<(&str, Vec<NodeSelectorTerm>, bool)> = vec![
            ("no terms", vec![], false),
            ("empty term", vec![term(vec![], vec![])], false),
            (
                "in",
                vec![term(vec![req("foo", "In", &["bar", "baz"])], vec![])],
                true,
            ),
            (
                "notin",
                vec![term(vec![req("foo", "NotIn", &["bar"])], vec![])],
                false,
            ),
            (
                "exists",
                vec![term(vec![req("foo", "Exists", &[])], vec![])],
                true,
            ),
            (
                "dne",
                vec![term(vec![req("zzz", "DoesNotExist", &[])], vec![])],
                true,
            ),
            (
                "gt",
                vec![term(vec![req("gen", "Gt", &["4"])], vec![])],
                true,
            ),
            (
                "lt",
                vec![term(vec![req("gen", "Lt", &["4"])], vec![])],
                false,
            ),
            (
                "gt non-int value is invalid",
                vec![term(vec![req("gen", "Gt", &["x"])], vec![])],
                false,
            ),
            (
                "field name in",
                vec![term(vec![], vec![req("metadata.name", "In", &["host_1"])])],
                true,
            ),
            (
                "field name notin",
                vec![term(
                    vec![],
                    vec![req("metadata.name", "NotIn", &["host_1"])],
                )],
                false,
            ),
            (
                "field with two values is invalid",
                vec![term(
                    vec![],
                    vec![req("metadata.name", "In", &["host_1", "x"])],
                )],
                false,
            ),
            (
                "fields and labels ANDed",
                vec![term(
                    vec![req("foo", "In", &["bar"])],
                    vec![req("metadata.name", "In", &["other"])],
                )],
                false,
            ),
            (
                "terms ORed, invalid term skipped",
                vec![
                    term(vec![req("foo", "Bogus", &["bar"])], vec![]),
                    term(vec![req("foo", "In", &["bar"])], vec![]),
                ],
                true,
            ),
        ];
        for (name, terms, want) in cases {
            let sel = NodeSelector {
                node_selector_terms: terms,
            };
            assert_eq!(node_selector_matches(&sel, &n), want, "{name}");
        }
    }

    #[test]
    fn pod_node_selector_and_affinity() {
        let n = node("n1", &[("disk", "ssd"), ("zone", "a")]);
        let mut pod = Pod {
            spec: Some(PodSpec {
                node_selector: Some(BTreeMap::from([("disk".into(), "ssd".into())])),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(pod_matches_node(&pod, &n));
        let spec = pod.spec.as_mut().unwrap();
        spec.affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![term(vec![req("zone", "In", &["b"])], vec![])],
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(!pod_matches_node(&pod, &n));
        pod.spec.as_mut().unwrap().node_selector =
            Some(BTreeMap::from([("disk".into(), "hdd".into())]));
        pod.spec.as_mut().unwrap().affinity = None;
        assert!(!pod_matches_node(&pod, &n));
    }

    #[test]
    fn compiled_selector_strict_lenient_and_name_restriction() {
        let bad = term(vec![req("foo", "Bogus", &["bar"])], vec![]);
        let by_name = term(
            vec![],
            vec![
                req("metadata.name", "In", &["n1"]),
                req("metadata.name", "NotIn", &["n2"]),
            ],
        );
        let sel = NodeSelector {
            node_selector_terms: vec![bad.clone(), by_name.clone()],
        };
        let e = CompiledNodeSelector::new(&sel).unwrap_err();
        assert!(e.message.contains("Bogus"), "{e}");
        let lenient = CompiledNodeSelector::new_lenient(&sel);
        assert_eq!(lenient.terms.len(), 1);
        assert!(lenient.matches(&BTreeMap::new(), "n1"));
        assert!(!lenient.matches(&BTreeMap::new(), "n3"));
        assert_eq!(lenient.terms[0].name_restriction(), Some(vec!["n1"]));
        let two = CompiledTerm::new(&term(
            vec![],
            vec![
                req("metadata.name", "In", &["n1"]),
                req("metadata.name", "In", &["n2"]),
            ],
        ))
        .unwrap();
        assert_eq!(two.name_restriction(), Some(vec![]));
        let labels_only = CompiledTerm::new(&term(vec![req("a", "Exists", &[])], vec![])).unwrap();
        assert_eq!(labels_only.name_restriction(), None);
        assert!(!CompiledTerm::new(&term(vec![], vec![]))
            .unwrap()
            .matches(&BTreeMap::new(), "n1"));
    }
}
