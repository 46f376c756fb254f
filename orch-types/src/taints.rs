//! Taints and tolerations: the one rule for "does this toleration tolerate that taint".
//!
//! The scheduler (TaintToleration, NodeUnschedulable, PodTopologySpread), node lifecycle's taint
//! eviction and the DefaultTolerationSeconds admission plugin all answer the question through
//! [`tolerates`], so a pod the scheduler places on a tainted node is not then evicted from it for
//! the same taint.
//!
//! The rule is upstream's `Toleration.ToleratesTaint` in
//! `staging/src/k8s.io/api/core/v1/toleration.go` (kubernetes/kubernetes). Upstream's numeric
//! `Lt`/`Gt` operators (feature gate `TaintTolerationComparisonOperators`, off by default) are not
//! supported: like any other unknown operator they tolerate nothing.

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Toleration operator that matches every value of the key.
pub const OP_EXISTS: &str = "Exists";
/// Toleration operator that requires the taint's value; an empty or unset operator means this.
pub const OP_EQUAL: &str = "Equal";

/// Whether `toleration` tolerates `taint` (upstream `Toleration.ToleratesTaint`,
/// `staging/src/k8s.io/api/core/v1/toleration.go`).
///
/// Unset and empty strings are the same thing here, as in Go. The toleration must pass all of:
///
/// 1. **effect** — an empty effect matches every taint effect; otherwise the effects are equal.
/// 2. **key** — an empty key matches every taint key; otherwise the keys are equal. (Validation
///    only admits an empty key together with `Exists`, which then means "every taint".)
/// 3. **operator** — `Exists` matches any value; `Equal` or empty (empty means `Equal`) needs the
///    toleration's value to equal the taint's; any other operator tolerates nothing.
///
/// ```
/// use k8s_openapi::api::core::v1::{Taint, Toleration};
/// use orch_types::taints::tolerates;
/// let taint = Taint { key: "gpu".into(), value: Some("a100".into()), effect: "NoSchedule".into(),
///                     time_added: None };
/// let equal = Toleration { key: Some("gpu".into()), operator: Some("".into()),
///                          value: Some("a100".into()), ..Default::default() };
/// assert!(tolerates(&equal, &taint));
/// let exists = Toleration { operator: Some("Exists".into()), ..Default::default() };
/// assert!(tolerates(&exists, &taint));
/// let other = Toleration { key: Some("gpu".into()), value: Some("h100".into()),
///                          ..Default::default() };
/// assert!(!tolerates(&other, &taint));
/// ```
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if set(&toleration.effect).is_some_and(|e| e != taint.effect) {
        return false;
    }
    if set(&toleration.key).is_some_and(|k| k != taint.key) {
        return false;
    }
    match set(&toleration.operator).unwrap_or(OP_EQUAL) {
        OP_EXISTS => true,
        OP_EQUAL => set(&toleration.value) == set(&taint.value),
        _ => false,
    }
}

/// An optional string field, with `Some("")` read as unset (Go has no difference between the two).
fn set(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Whether any of `tolerations` tolerates `taint` (upstream `TolerationsTolerateTaint`).
///
/// ```
/// use k8s_openapi::api::core::v1::{Taint, Toleration};
/// use orch_types::taints::tolerations_tolerate;
/// let taint = Taint { key: "k".into(), effect: "NoExecute".into(), ..Default::default() };
/// let tols = [Toleration { key: Some("k".into()), operator: Some("Exists".into()),
///                          ..Default::default() }];
/// assert!(tolerations_tolerate(&tols, &taint));
/// assert!(!tolerations_tolerate(&[], &taint));
/// ```
pub fn tolerations_tolerate<'a>(
    tolerations: impl IntoIterator<Item = &'a Toleration>,
    taint: &Taint,
) -> bool {
    tolerations.into_iter().any(|t| tolerates(t, taint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    /// A toleration where `None` means the field is absent and `Some("")` is an explicit empty
    /// string (the two must behave the same).
    fn tol(
        key: Option<&str>,
        op: Option<&str>,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            toleration_seconds: None,
        }
    }

    #[test]
    fn empty_operator_means_equal() {
        let t = taint("k", "v", "NoExecute");
        for op in [None, Some(""), Some("Equal")] {
            assert!(
                tolerates(&tol(Some("k"), op, Some("v"), Some("NoExecute")), &t),
                "{op:?}"
            );
            assert!(
                !tolerates(&tol(Some("k"), op, Some("w"), Some("NoExecute")), &t),
                "{op:?}"
            );
        }
    }

    #[test]
    fn value_mismatch_does_not_tolerate() {
        let t = taint("k", "v", "NoSchedule");
        assert!(!tolerates(
            &tol(Some("k"), Some("Equal"), Some("other"), None),
            &t
        ));
        // A valueless Equal toleration matches only a valueless taint (unset == "").
        assert!(!tolerates(&tol(Some("k"), Some("Equal"), None, None), &t));
        assert!(tolerates(
            &tol(Some("k"), Some("Equal"), Some(""), None),
            &taint("k", "", "NoSchedule")
        ));
    }

    #[test]
    fn exists_matches_any_value() {
        let t = taint("k", "v", "NoSchedule");
        assert!(tolerates(&tol(Some("k"), Some("Exists"), None, None), &t));
        assert!(tolerates(
            &tol(Some("k"), Some("Exists"), None, None),
            &taint("k", "", "NoSchedule")
        ));
        assert!(!tolerates(
            &tol(Some("other"), Some("Exists"), None, None),
            &t
        ));
    }

    #[test]
    fn exists_without_key_matches_every_taint() {
        for key in [None, Some("")] {
            let all = tol(key, Some("Exists"), None, None);
            assert!(tolerates(&all, &taint("a", "1", "NoSchedule")));
            assert!(tolerates(&all, &taint("b", "", "NoExecute")));
            assert!(tolerates(&all, &taint("c", "x", "PreferNoSchedule")));
            // Still limited by its effect when one is given.
            let no_exec = tol(key, Some("Exists"), None, Some("NoExecute"));
            assert!(tolerates(&no_exec, &taint("a", "1", "NoExecute")));
            assert!(!tolerates(&no_exec, &taint("a", "1", "NoSchedule")));
        }
    }

    #[test]
    fn empty_effect_matches_every_effect() {
        for effect in [None, Some("")] {
            let t = tol(Some("k"), Some("Equal"), Some("v"), effect);
            for e in ["NoSchedule", "PreferNoSchedule", "NoExecute"] {
                assert!(tolerates(&t, &taint("k", "v", e)), "{effect:?} vs {e}");
            }
        }
    }

    #[test]
    fn effect_must_be_equal_when_set() {
        let t = tol(Some("k"), Some("Exists"), None, Some("NoSchedule"));
        assert!(tolerates(&t, &taint("k", "v", "NoSchedule")));
        assert!(!tolerates(&t, &taint("k", "v", "NoExecute")));
        assert!(!tolerates(&t, &taint("k", "v", "PreferNoSchedule")));
    }

    #[test]
    fn key_must_be_equal_when_set() {
        let t = tol(Some("k"), Some("Equal"), Some("v"), None);
        assert!(!tolerates(&t, &taint("K", "v", "NoSchedule")));
        assert!(!tolerates(&t, &taint("k2", "v", "NoSchedule")));
    }

    #[test]
    fn unknown_operator_tolerates_nothing() {
        let t = taint("k", "v", "NoSchedule");
        for op in ["Maybe", "exists", "equal", "Lt", "Gt"] {
            assert!(
                !tolerates(&tol(Some("k"), Some(op), Some("v"), None), &t),
                "{op}"
            );
            assert!(!tolerates(&tol(None, Some(op), None, None), &t), "{op}");
        }
    }

    #[test]
    fn any_of_a_list() {
        let t = taint("k", "v", "NoExecute");
        let tols = [
            tol(Some("x"), Some("Exists"), None, None),
            tol(Some("k"), None, Some("v"), Some("NoExecute")),
        ];
        assert!(tolerations_tolerate(&tols, &t));
        assert!(!tolerations_tolerate(&tols[..1], &t));
        assert!(!tolerations_tolerate(std::iter::empty(), &t));
        let refs: Vec<&Toleration> = tols.iter().collect();
        assert!(tolerations_tolerate(refs.iter().copied(), &t));
    }
}
