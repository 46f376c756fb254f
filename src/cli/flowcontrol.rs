//! Overload-protection flags shared by `orch apiserver` and `orch up` (kube-apiserver's
//! `--max-requests-inflight`, `--max-mutating-requests-inflight` and
//! `--enable-priority-and-fairness`; see
//! [`orch_apiserver::flowcontrol`]).

use orch_apiserver::flowcontrol::maxinflight::{
    DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT, DEFAULT_MAX_REQUESTS_INFLIGHT,
};

/// How many requests the API server serves at once over HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct MaxInFlightArgs {
    /// Reads served at once before answering 429 Too Many Requests with `Retry-After: 1`
    /// (watches, exec, attach, port-forward, proxy and logs are not counted; `system:masters`
    /// is never refused); 0: no limit.
    #[arg(long, default_value_t = DEFAULT_MAX_REQUESTS_INFLIGHT)]
    pub max_requests_inflight: usize,
    /// Writes served at once before answering 429 Too Many Requests; 0: no limit.
    #[arg(long, default_value_t = DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT)]
    pub max_mutating_requests_inflight: usize,
    /// API Priority and Fairness: the FlowSchemas and PriorityLevelConfigurations share the
    /// two limits above among priority levels, with fair queues per level; false: the two
    /// max-in-flight pools, no queueing.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_priority_and_fairness: bool,
}
