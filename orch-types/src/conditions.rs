//! `metav1.Condition` helpers shared by the API server and the controllers: upstream
//! `apimachinery/pkg/api/meta/conditions.go` (`SetStatusCondition`) and
//! `component-helpers/apps/poddisruptionbudget/helpers.go` (`UpdateDisruptionAllowedCondition`),
//! which the disruption controller and the eviction subresource both call.

use jiff::Timestamp;
use k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The PodDisruptionBudget condition type.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
/// Its reason when a disruption is allowed.
pub const SUFFICIENT_PODS: &str = "SufficientPods";
/// Its reason when none is.
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";

/// Sets `c` in `conds` as `meta.SetStatusCondition`: the transition time moves only when the
/// status changes; reason, message and observedGeneration are always taken.
///
/// ```
/// use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
/// use orch_types::conditions::set_status_condition;
/// let at = |s| Time(jiff::Timestamp::from_second(s).unwrap());
/// let c = |status: &str, t| Condition { type_: "Ready".into(), status: status.into(),
///     reason: "R".into(), message: String::new(), observed_generation: None,
///     last_transition_time: at(t) };
/// let mut conds = vec![c("True", 1)];
/// set_status_condition(&mut conds, c("True", 2));
/// assert_eq!(conds[0].last_transition_time, at(1));
/// set_status_condition(&mut conds, c("False", 3));
/// assert_eq!(conds[0].last_transition_time, at(3));
/// ```
pub fn set_status_condition(conds: &mut Vec<Condition>, c: Condition) {
    match conds.iter_mut().find(|x| x.type_ == c.type_) {
        None => conds.push(c),
        Some(x) => {
            if x.status != c.status {
                x.status = c.status;
                x.last_transition_time = c.last_transition_time;
            }
            x.reason = c.reason;
            x.message = c.message;
            x.observed_generation = c.observed_generation;
        }
    }
}

/// Sets the `DisruptionAllowed` condition from the status' `disruptionsAllowed`
/// (`UpdateDisruptionAllowedCondition`).
pub fn update_disruption_allowed_condition(st: &mut PodDisruptionBudgetStatus, now: Timestamp) {
    let (status, reason) = if st.disruptions_allowed > 0 {
        ("True", SUFFICIENT_PODS)
    } else {
        ("False", INSUFFICIENT_PODS)
    };
    let og = st.observed_generation;
    set_status_condition(
        st.conditions.get_or_insert_with(Vec::new),
        Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: og,
            last_transition_time: Time(now),
        },
    );
}
