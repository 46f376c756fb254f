//! Defaults of `flowcontrol.apiserver.k8s.io/v1` (upstream
//! `pkg/apis/flowcontrol/v1/defaults.go`).

use k8s_openapi::api::flowcontrol::v1::{
    ExemptPriorityLevelConfiguration, FlowSchema, PriorityLevelConfiguration,
};

/// Upstream `FlowSchemaDefaultMatchingPrecedence`.
const DEFAULT_MATCHING_PRECEDENCE: i32 = 1000;
/// Upstream `PriorityLevelConfigurationDefaultNominalConcurrencyShares`.
const DEFAULT_NOMINAL_CONCURRENCY_SHARES: i32 = 30;

fn zero_to(slot: &mut Option<i32>, v: i32) {
    if slot.unwrap_or(0) == 0 {
        *slot = Some(v);
    }
}

/// `SetDefaults_FlowSchemaSpec`: matching precedence 1000.
pub(crate) fn flow_schema(fs: &mut FlowSchema) {
    if let Some(spec) = fs.spec.as_mut() {
        zero_to(&mut spec.matching_precedence, DEFAULT_MATCHING_PRECEDENCE);
    }
}

/// `SetDefaults_PriorityLevelConfiguration` and friends: an exempt level's shares and
/// lendable percent 0; a limited one's shares 30 and lendable percent 0; queuing 64 queues,
/// hand size 8, queue length limit 50.
pub(crate) fn priority_level(pl: &mut PriorityLevelConfiguration) {
    let Some(spec) = pl.spec.as_mut() else { return };
    if spec.type_ == "Exempt" && spec.exempt.is_none() {
        spec.exempt = Some(ExemptPriorityLevelConfiguration::default());
    }
    if let Some(e) = spec.exempt.as_mut() {
        e.nominal_concurrency_shares.get_or_insert(0);
        e.lendable_percent.get_or_insert(0);
    }
    if let Some(l) = spec.limited.as_mut() {
        l.nominal_concurrency_shares
            .get_or_insert(DEFAULT_NOMINAL_CONCURRENCY_SHARES);
        l.lendable_percent.get_or_insert(0);
        if let Some(q) = l.limit_response.as_mut().and_then(|r| r.queuing.as_mut()) {
            zero_to(&mut q.hand_size, 8);
            zero_to(&mut q.queues, 64);
            zero_to(&mut q.queue_length_limit, 50);
        }
    }
}
