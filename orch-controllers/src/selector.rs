//! Label-selector matching as the controllers need it: `LabelSelector` (apps/v1) and the
//! equality map of ReplicationController / Service selectors.
//!
//! Semantics follow apimachinery `metav1.LabelSelectorAsSelector`: an empty `LabelSelector`
//! selects everything, a nil one nothing; a map selector is an AND of equalities.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// A selector that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector: {0}")]
pub struct SelectorError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A compiled label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMatcher {
    reqs: Vec<Req>,
    nothing: bool,
}

impl LabelMatcher {
    /// From an API `LabelSelector` (`None` matches nothing).
    pub fn from_selector(sel: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        let Some(sel) = sel else {
            return Ok(Self::nothing());
        };
        let mut reqs: Vec<Req> = sel
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| Req::In(k.clone(), vec![v.clone()]))
            .collect();
        for e in sel.match_expressions.iter().flatten() {
            let vals = e.values.clone().unwrap_or_default();
            let r = match e.operator.as_str() {
                "In" | "NotIn" if vals.is_empty() => {
                    return Err(SelectorError(format!(
                        "{}: values must be non-empty for operator {}",
                        e.key, e.operator
                    )))
                }
                "In" => Req::In(e.key.clone(), vals),
                "NotIn" => Req::NotIn(e.key.clone(), vals),
                "Exists" => Req::Exists(e.key.clone()),
                "DoesNotExist" => Req::DoesNotExist(e.key.clone()),
                op => return Err(SelectorError(format!("{}: unknown operator {op:?}", e.key))),
            };
            reqs.push(r);
        }
        Ok(Self {
            reqs,
            nothing: false,
        })
    }

    /// From an equality map (ReplicationController, Service). An empty map matches nothing
    /// here: upstream treats an empty RC/Service selector as "select nothing" for pods.
    pub fn from_map(m: Option<&BTreeMap<String, String>>) -> Self {
        match m {
            Some(m) if !m.is_empty() => Self {
                reqs: m
                    .iter()
                    .map(|(k, v)| Req::In(k.clone(), vec![v.clone()]))
                    .collect(),
                nothing: false,
            },
            _ => Self::nothing(),
        }
    }

    fn nothing() -> Self {
        Self {
            reqs: Vec::new(),
            nothing: true,
        }
    }

    /// Selects every object (empty `LabelSelector`).
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.reqs.is_empty()
    }

    /// Does the selector match these labels?
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        if self.nothing {
            return false;
        }
        let empty = BTreeMap::new();
        let l = labels.unwrap_or(&empty);
        self.reqs.iter().all(|r| match r {
            Req::In(k, vs) => l.get(k).is_some_and(|v| vs.contains(v)),
            Req::NotIn(k, vs) => l.get(k).is_none_or(|v| !vs.contains(v)),
            Req::Exists(k) => l.contains_key(k),
            Req::DoesNotExist(k) => !l.contains_key(k),
        })
    }
}

/// `intstr.GetScaledValueFromIntOrPercent`: an int, or a percentage of `total` rounded up or
/// down.
pub fn scaled_value(
    v: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    total: i32,
    round_up: bool,
) -> Result<i32, SelectorError> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match v {
        None => Ok(0),
        Some(IntOrString::Int(i)) => Ok(*i),
        Some(IntOrString::String(s)) => {
            let p: i64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| SelectorError(format!("invalid value for IntOrString: {s:?}")))?;
            let num = p * i64::from(total);
            let v = if round_up {
                (num + 99).div_euclid(100)
            } else {
                num.div_euclid(100)
            };
            Ok(v as i32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn selector_semantics() {
        let l: BTreeMap<String, String> =
            [("app".into(), "web".into()), ("tier".into(), "fe".into())].into();
        let sel = LabelSelector {
            match_labels: Some([("app".into(), "web".into())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "DoesNotExist".into(),
                values: None,
            }]),
        };
        assert!(LabelMatcher::from_selector(Some(&sel))
            .unwrap()
            .matches(Some(&l)));
        assert!(!LabelMatcher::from_selector(None).unwrap().matches(Some(&l)));
        assert!(LabelMatcher::from_selector(Some(&LabelSelector::default()))
            .unwrap()
            .is_everything());
        assert!(!LabelMatcher::from_map(Some(&BTreeMap::new())).matches(Some(&l)));
        assert!(
            LabelMatcher::from_map(Some(&[("tier".into(), "fe".into())].into())).matches(Some(&l))
        );
    }

    #[test]
    fn percentages_round_like_upstream() {
        let p = IntOrString::String("25%".into());
        assert_eq!(scaled_value(Some(&p), 10, true).unwrap(), 3);
        assert_eq!(scaled_value(Some(&p), 10, false).unwrap(), 2);
        assert!(scaled_value(Some(&IntOrString::String("x".into())), 10, true).is_err());
    }
}
