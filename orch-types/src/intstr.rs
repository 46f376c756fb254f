//! `IntOrString` helpers: percentages resolved against a total as upstream
//! `apimachinery/pkg/util/intstr.GetScaledValueFromIntOrPercent`.
//!
//! ```
//! use orch_types::intstr::scaled_value;
//! use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
//! let pct = IntOrString::String("25%".into());
//! assert_eq!(scaled_value(&pct, 10, true).unwrap(), 3);  // maxSurge rounds up
//! assert_eq!(scaled_value(&pct, 10, false).unwrap(), 2); // maxUnavailable rounds down
//! assert_eq!(scaled_value(&IntOrString::Int(4), 10, false).unwrap(), 4);
//! ```

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Errors resolving an `IntOrString`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntOrStringError {
    /// A string value without a trailing `%`.
    #[error("invalid value for IntOrString: invalid type: string is not a percentage")]
    NotPercent,
    /// A percentage whose number does not parse.
    #[error("invalid value for IntOrString: invalid value {0:?}")]
    BadNumber(String),
}

/// The value as (number, is_percent), as upstream `getIntOrPercentValueSafely`.
pub fn int_or_percent(v: &IntOrString) -> Result<(i32, bool), IntOrStringError> {
    match v {
        IntOrString::Int(i) => Ok((*i, false)),
        IntOrString::String(s) => {
            let n = s.strip_suffix('%').ok_or(IntOrStringError::NotPercent)?;
            n.parse::<i32>()
                .map(|n| (n, true))
                .map_err(|_| IntOrStringError::BadNumber(s.clone()))
        }
    }
}

/// Resolves an integer or a percentage of `total`; percentages round up when `round_up`, else
/// down (integer arithmetic, same result as upstream's float `Ceil`/`Floor` for 32-bit inputs).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, IntOrStringError> {
    let (n, pct) = int_or_percent(v)?;
    if !pct {
        return Ok(n);
    }
    let prod = i64::from(n) * i64::from(total);
    let r = if round_up {
        prod.div_euclid(100) + i64::from(prod.rem_euclid(100) != 0)
    } else {
        prod.div_euclid(100)
    };
    Ok(r.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
}

/// Deployment surge/unavailability fenceposts (upstream `deploymentutil.ResolveFenceposts`):
/// `maxSurge` rounds up, `maxUnavailable` rounds down, and if both come out zero
/// `maxUnavailable` becomes 1 so a rollout can progress. Returns `(surge, unavailable)`.
///
/// ```
/// # use orch_types::intstr::resolve_fenceposts;
/// # use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
/// let p = |s: &str| IntOrString::String(s.into());
/// assert_eq!(resolve_fenceposts(Some(&p("25%")), Some(&p("25%")), 10).unwrap(), (3, 2));
/// assert_eq!(resolve_fenceposts(Some(&p("0%")), Some(&p("0%")), 1).unwrap(), (0, 1));
/// ```
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), IntOrStringError> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.into())
    }

    /// Cases from upstream intstr_test.go TestGetScaledValueFromIntOrPercent.
    #[test]
    fn table() {
        let cases: &[(IntOrString, i32, bool, Result<i32, IntOrStringError>)] = &[
            (IntOrString::Int(123), 0, false, Ok(123)),
            (s("90%"), 100, true, Ok(90)),
            (s("90%"), 95, true, Ok(86)),
            (s("90%"), 95, false, Ok(85)),
            (
                s("%"),
                0,
                false,
                Err(IntOrStringError::BadNumber("%".into())),
            ),
            (
                s("#%"),
                0,
                false,
                Err(IntOrStringError::BadNumber("#%".into())),
            ),
            (s("90"), 100, false, Err(IntOrStringError::NotPercent)),
            (s("25%"), 10, true, Ok(3)),
            (s("25%"), 10, false, Ok(2)),
            (s("100%"), 3, false, Ok(3)),
            (s("0%"), 7, true, Ok(0)),
        ];
        for (v, total, up, want) in cases {
            assert_eq!(
                &scaled_value(v, *total, *up),
                want,
                "{v:?} of {total} up={up}"
            );
        }
    }
}
