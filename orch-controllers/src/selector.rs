//! Selector adapters for the controllers, over `orch_types::labels` and `orch_types::intstr`.
//!
//! An apps/v1 `LabelSelector` follows `metav1.LabelSelectorAsSelector` (empty selects
//! everything, missing selects nothing); the equality map of a ReplicationController or Service
//! selects nothing when empty (upstream RC/endpoints controllers skip empty selectors).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
pub use orch_types::labels::{Selector, SelectorError};
use std::collections::BTreeMap;

/// From an API `LabelSelector` (`None` matches nothing).
pub fn from_label_selector(sel: Option<&LabelSelector>) -> Result<Selector, SelectorError> {
    Selector::from_optional(sel)
}

/// From an equality map; empty or missing selects nothing.
pub fn from_map(m: Option<&BTreeMap<String, String>>) -> Selector {
    match m {
        Some(m) if !m.is_empty() => Selector::from_map(m),
        _ => Selector::nothing(),
    }
}

/// Whether `sel` (parsed once by the caller; `None` when it did not parse) selects an
/// object's labels.
pub fn selects(sel: Option<&Selector>, m: &ObjectMeta) -> bool {
    sel.is_some_and(|s| s.matches_opt(m.labels.as_ref()))
}

/// `intstr.GetScaledValueFromIntOrPercent`; a missing value is 0, a malformed one 0 as well
/// (validation rejects it before it reaches a controller).
pub fn scaled_value(v: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    v.map_or(0, |v| {
        orch_types::intstr::scaled_value(v, total, round_up).unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_map_selects_nothing_but_empty_label_selector_everything() {
        let l: BTreeMap<String, String> = [("app".into(), "web".into())].into();
        assert!(!from_map(Some(&BTreeMap::new())).matches(&l));
        assert!(from_map(Some(&l)).matches(&l));
        assert!(from_label_selector(Some(&LabelSelector::default()))
            .unwrap()
            .is_everything());
        assert!(!from_label_selector(None).unwrap().matches(&l));
        assert_eq!(
            scaled_value(Some(&IntOrString::String("25%".into())), 10, true),
            3
        );
    }
}
