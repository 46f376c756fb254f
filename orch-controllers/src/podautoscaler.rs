//! HorizontalPodAutoscaler controller (`autoscaling/v2`), after upstream
//! `pkg/controller/podautoscaler/horizontal.go` and `replica_calculator.go` (Kubernetes 1.33).
//!
//! Every [`HpaConfig::sync_period`] (15 s, `--horizontal-pod-autoscaler-sync-period`) each
//! autoscaler is reconciled from the caches:
//!
//! - **Target**: the scale of `scaleTargetRef` (a Deployment, ReplicaSet, StatefulSet or
//!   ReplicationController, [`crate::scale`]; or a custom kind, resolved through discovery and
//!   read from its cached object at its CRD's `subresources.scale` paths,
//!   [`crate::scale::CustomScales`]): `spec.replicas` and the pod selector. A missing target,
//!   a kind discovery does not list or one without the scale subresource sets
//!   `AbleToScale=False/FailedGetScale`; an empty selector
//!   `ScalingActive=False/InvalidSelector`.
//! - **Limits first**: a target at 0 replicas with `minReplicas` > 0 is left alone
//!   (`ScalingActive=False/ScalingDisabled`); above `maxReplicas` or below `minReplicas` it is
//!   brought inside without looking at metrics.
//! - **Metrics** (`Resource` and `ContainerResource`, targets `Utilization` and
//!   `AverageValue`): pod figures come from `metrics.k8s.io` PodMetrics, a cache the live
//!   driver lists every [`METRICS_POLL`] and the simulator feeds. Pods being deleted or failed
//!   are left out; pending pods, and for CPU pods not ready yet or within
//!   [`HpaConfig::cpu_initialization_period`] of starting whose figure predates readiness, are
//!   *unready*; running pods without a figure are *missing*. The usage ratio (utilization over
//!   target, from the summed requests, or average value over target) proposes
//!   `ceil(ratio × ready pods)`; within [`HpaConfig::tolerance`] of 1 nothing changes. With
//!   missing or unready pods the ratio is computed again counting missing pods at their request
//!   (scale down, at least the target above 100 %) or at zero (scale up) and unready pods at
//!   zero (scale up only); if that flips the direction or lands within tolerance, nothing
//!   changes. Several metrics: the largest proposal; if some metric failed, no scale down.
//!   `Pods`, `Object` and `External` metrics need a custom or external metrics API, which orch
//!   does not serve: they fail with `ScalingActive=False` and a `FailedGet…Metric` event, as
//!   upstream does without an adapter.
//! - **Without `behavior`**: the largest recommendation of the last
//!   [`HpaConfig::downscale_stabilization`] (5 min) wins (`ScaleDownStabilized`), and a scale up
//!   is limited to `max(2 × current, 4)` (`ScaleUpLimit`), then `min/maxReplicas`
//!   (`TooFewReplicas`/`TooManyReplicas`) → `ScalingLimited`.
//! - **With `behavior`** (defaulted by the API server: scale up 0 s window, `Max` of 4 pods or
//!   100 % per 15 s; scale down 300 s window, 100 % per 15 s): the recommendation is held
//!   between the lowest of the scale-up window and the highest of the scale-down window; then
//!   each policy bounds the change from the replica count at the start of its period (what
//!   this controller's own scale events of that period added or removed), `selectPolicy`
//!   `Max`/`Min`/`Disabled` choosing among them.
//! - **Writes**: a rescale is a merge patch of the target's `scale` subresource, with a
//!   `SuccessfulRescale` event `New size: N; reason: …`; a failed write is retried with
//!   back-off and leaves the status as it was. The status (`currentReplicas`,
//!   `desiredReplicas`, `currentMetrics`, `lastScaleTime`, conditions `AbleToScale`,
//!   `ScalingActive`, `ScalingLimited`) is written when it changed.
//!
//! Recommendations and scale events live in this controller's memory, as upstream's do: a
//! restarted controller starts its windows afresh.
//!
//! ```
//! use orch_controllers::podautoscaler::{scale_up_limit, HorizontalController};
//! use orch_runtime::controller::Controller;
//! assert_eq!(HorizontalController::default().name(), "horizontalpodautoscaling");
//! assert_eq!(scale_up_limit(1), 4);
//! assert_eq!(scale_up_limit(10), 20);
//! ```

use crate::controller_utils::pod_condition;
use crate::scale::{CustomScales, Workloads};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus,
    MetricTarget, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use orch_runtime::action::Action;
use orch_runtime::controller::{Caches, Controller, Watches};
use orch_runtime::object::{is_deleting, key_of};
use orch_runtime::store::{Change, Store};
use orch_types::client::ClientError;
use orch_types::events::ObjectRef;
use orch_types::metrics::{milli_value, PodMetrics};
use orch_types::quantity::Quantity;
use orch_types::registry::{by_group_kind, split_api_version};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How often the live driver lists `metrics.k8s.io` PodMetrics (metrics-server's default
/// resolution).
pub const METRICS_POLL: Duration = Duration::from_secs(15);

/// `AbleToScale`: whether the target's scale can be read and written.
pub const ABLE_TO_SCALE: &str = "AbleToScale";
/// `ScalingActive`: whether metrics gave a replica count.
pub const SCALING_ACTIVE: &str = "ScalingActive";
/// `ScalingLimited`: whether the count was clamped by min/max or a rate.
pub const SCALING_LIMITED: &str = "ScalingLimited";

/// Settings (kube-controller-manager `--horizontal-pod-autoscaler-*` flags, upstream
/// defaults).
#[derive(Debug, Clone)]
pub struct HpaConfig {
    /// `--horizontal-pod-autoscaler-sync-period`.
    pub sync_period: Duration,
    /// `--horizontal-pod-autoscaler-tolerance`.
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-downscale-stabilization` (and the scale-down window a
    /// `behavior` without one gets).
    pub downscale_stabilization: Duration,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`.
    pub cpu_initialization_period: Duration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`.
    pub initial_readiness_delay: Duration,
}

impl Default for HpaConfig {
    fn default() -> Self {
        Self {
            sync_period: Duration::from_secs(15),
            tolerance: 0.1,
            downscale_stabilization: Duration::from_secs(300),
            cpu_initialization_period: Duration::from_secs(300),
            initial_readiness_delay: Duration::from_secs(30),
        }
    }
}

/// One pod's figure for one metric: the value in milli-units, when it was sampled and over
/// what window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodMetric {
    /// Milli-units (millicores, thousandths of a byte).
    pub value: i64,
    /// Sample time.
    pub timestamp: Timestamp,
    /// Sample window.
    pub window: SignedDuration,
}

/// Figures by pod name.
pub type PodMetricsInfo = BTreeMap<String, PodMetric>;

/// What a metric's target asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `averageUtilization`: percent of the pods' requests.
    Utilization(i32),
    /// `averageValue` in milli-units.
    AverageValue(i64),
}

/// A replica count a metric proposes and the figure it saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    /// Replicas.
    pub replicas: i32,
    /// Utilization in percent of requests (`Utilization` targets).
    pub utilization: Option<i32>,
    /// Average value per pod in milli-units.
    pub average_milli: i64,
}

struct Groups {
    ready: usize,
    unready: BTreeSet<String>,
    missing: BTreeSet<String>,
    ignored: BTreeSet<String>,
}

fn ts(t: &Time) -> Timestamp {
    t.0
}

/// Upstream `groupPods`.
fn group_pods(
    pods: &[&Pod],
    metrics: &PodMetricsInfo,
    resource: &str,
    now: Timestamp,
    cfg: &HpaConfig,
) -> Groups {
    let mut g = Groups {
        ready: 0,
        unready: BTreeSet::new(),
        missing: BTreeSet::new(),
        ignored: BTreeSet::new(),
    };
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        if is_deleting(&p.metadata) || phase == Some("Failed") {
            g.ignored.insert(name);
            continue;
        }
        if phase == Some("Pending") || phase.is_none() {
            g.unready.insert(name);
            continue;
        }
        let Some(m) = metrics.get(&name) else {
            g.missing.insert(name);
            continue;
        };
        if resource == "cpu" {
            let cond = pod_condition(p, "Ready");
            let start = p.status.as_ref().and_then(|s| s.start_time.as_ref());
            let unready = match (cond, start) {
                (Some(c), Some(start)) => {
                    let changed = c.last_transition_time.as_ref().map_or(ts(start), ts);
                    let init = SignedDuration::try_from(cfg.cpu_initialization_period)
                        .unwrap_or(SignedDuration::ZERO);
                    let delay = SignedDuration::try_from(cfg.initial_readiness_delay)
                        .unwrap_or(SignedDuration::ZERO);
                    if ts(start) + init > now {
                        // Still initialising: a figure taken before a full window of
                        // readiness is not trusted.
                        c.status == "False" || m.timestamp < changed + m.window
                    } else {
                        // Unready and never ready since the start.
                        c.status == "False" && ts(start) + delay > changed
                    }
                }
                _ => true,
            };
            if unready {
                g.unready.insert(name);
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

/// Upstream `calculatePodRequests`: each pod's request of `resource` (of one container, or
/// summed over its containers), milli-units; an error when a container has none.
fn pod_requests(
    pods: &[&Pod],
    resource: &str,
    container: Option<&str>,
) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let mut sum = 0i64;
        for c in p.spec.iter().flat_map(|s| &s.containers) {
            if container.is_some_and(|want| want != c.name) {
                continue;
            }
            let req = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(milli_value);
            match req {
                Some(v) => sum = sum.saturating_add(v),
                None => {
                    return Err(format!(
                        "missing request for {resource} in container {} of Pod {name}",
                        c.name
                    ))
                }
            }
        }
        out.insert(name, sum);
    }
    Ok(out)
}

/// Upstream `GetResourceUtilizationRatio`: (ratio, utilization %, average value).
fn utilization_ratio(
    metrics: &PodMetricsInfo,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut n) = (0i64, 0i64, 0i64);
    for (pod, m) in metrics {
        // A figure of a pod without a known request is extraneous.
        let Some(r) = requests.get(pod) else { continue };
        used = used.saturating_add(m.value);
        requested = requested.saturating_add(*r);
        n += 1;
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = i32::try_from(used.saturating_mul(100) / requested).unwrap_or(i32::MAX);
    Ok((
        f64::from(utilization) / f64::from(target.max(1)),
        utilization,
        used / n,
    ))
}

/// Upstream `GetMetricUsageRatio`: (ratio, average value).
fn usage_ratio(metrics: &PodMetricsInfo, target: i64) -> (f64, i64) {
    let total: i64 = metrics.values().map(|m| m.value).sum();
    let avg = total / (metrics.len().max(1) as i64);
    (avg as f64 / target.max(1) as f64, avg)
}

/// The replica count one resource metric proposes (upstream `GetResourceReplicas` for
/// utilization targets, `GetRawResourceReplicas`/`calcPlainMetricReplicas` for average values).
#[allow(clippy::too_many_arguments)]
pub fn resource_replicas(
    current: i32,
    target: Target,
    resource: &str,
    container: Option<&str>,
    pods: &[&Pod],
    mut metrics: PodMetricsInfo,
    now: Timestamp,
    cfg: &HpaConfig,
) -> Result<Proposal, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let g = group_pods(pods, &metrics, resource, now, cfg);
    metrics.retain(|p, _| !g.ignored.contains(p) && !g.unready.contains(p));
    let requests = match target {
        Target::Utilization(_) => pod_requests(pods, resource, container)?,
        Target::AverageValue(_) => BTreeMap::new(),
    };
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let ratio = |m: &PodMetricsInfo| -> Result<(f64, Option<i32>, i64), String> {
        match target {
            Target::Utilization(t) => {
                utilization_ratio(m, &requests, t).map(|(r, u, a)| (r, Some(u), a))
            }
            Target::AverageValue(t) => {
                let (r, a) = usage_ratio(m, t);
                Ok((r, None, a))
            }
        }
    };
    let (r, utilization, average_milli) = ratio(&metrics)?;
    let proposal = |replicas: i32| Proposal {
        replicas,
        utilization,
        average_milli,
    };
    let ceil = |x: f64| x.ceil().min(f64::from(i32::MAX)) as i32;
    let scale_up_with_unready = !g.unready.is_empty() && r > 1.0;
    if !scale_up_with_unready && g.missing.is_empty() {
        if (1.0 - r).abs() <= cfg.tolerance {
            return Ok(proposal(current));
        }
        return Ok(proposal(ceil(r * g.ready as f64)));
    }
    if r < 1.0 {
        // Scale down: a missing pod counts as using all it asked for (at least the target).
        for p in &g.missing {
            let v = match target {
                Target::Utilization(t) => {
                    requests.get(p).copied().unwrap_or(0) * i64::from(t.max(100)) / 100
                }
                Target::AverageValue(t) => t,
            };
            metrics.insert(p.clone(), fill(v, now));
        }
    } else if r > 1.0 {
        for p in &g.missing {
            metrics.insert(p.clone(), fill(0, now));
        }
    }
    if scale_up_with_unready {
        for p in &g.unready {
            metrics.insert(p.clone(), fill(0, now));
        }
    }
    let (nr, _, _) = ratio(&metrics)?;
    if (1.0 - nr).abs() <= cfg.tolerance || (r < 1.0 && nr > 1.0) || (r > 1.0 && nr < 1.0) {
        return Ok(proposal(current));
    }
    let n = ceil(nr * metrics.len() as f64);
    if (nr < 1.0 && n > current) || (nr > 1.0 && n < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(n))
}

fn fill(value: i64, now: Timestamp) -> PodMetric {
    PodMetric {
        value,
        timestamp: now,
        window: SignedDuration::ZERO,
    }
}

/// The figures of `pods` for `resource` (one container's, or the pod's sum) from the
/// PodMetrics cache; a pod with no figure for a container is left out (missing).
pub fn pod_metrics_info(
    pods: &[&Pod],
    metrics: &Store<PodMetrics>,
    resource: &str,
    container: Option<&str>,
) -> PodMetricsInfo {
    let mut out = PodMetricsInfo::new();
    for p in pods {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        let Some(m) = metrics.get_in(p.metadata.namespace.as_deref(), name) else {
            continue;
        };
        let value = match container {
            Some(c) => m
                .containers
                .iter()
                .find(|x| x.name == c)
                .and_then(|x| milli_value(x.usage.get(resource)?)),
            None => m.usage_millis(resource),
        };
        let Some(value) = value else { continue };
        let window = m
            .window
            .parse::<SignedDuration>()
            .unwrap_or(SignedDuration::ZERO);
        out.insert(
            name.to_string(),
            PodMetric {
                value,
                timestamp: m.timestamp.0,
                window,
            },
        );
    }
    out
}

/// Upstream `calculateScaleUpLimit`: without `behavior`, a scale up at most doubles the
/// replicas (at least to 4).
pub fn scale_up_limit(current: i32) -> i32 {
    current.saturating_mul(2).max(4)
}

/// A recommendation or a scale event with its time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stamped {
    value: i32,
    at: Timestamp,
}

/// What the controller remembers of one autoscaler between syncs (upstream's
/// `recommendations`, `scaleUpEvents`, `scaleDownEvents`).
#[derive(Debug, Clone, Default)]
struct History {
    recommendations: Vec<Stamped>,
    scale_up: Vec<Stamped>,
    scale_down: Vec<Stamped>,
    /// The rescale the last sync asked for, recorded once it succeeded.
    pending: Option<(i32, i32, Timestamp)>,
}

fn secs(s: i64) -> SignedDuration {
    SignedDuration::from_secs(s)
}

fn record(recs: &mut Vec<Stamped>, value: i32, now: Timestamp, keep: SignedDuration) {
    recs.retain(|r| r.at >= now - keep);
    recs.push(Stamped { value, at: now });
}

/// Replicas added (or removed) by this controller within `period` before `now`.
fn changed_within(events: &[Stamped], period: i32, now: Timestamp) -> i32 {
    let cutoff = now - secs(i64::from(period));
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.value)
        .sum()
}

/// A decided condition: (status, reason, message).
type Cond = (&'static str, &'static str, String);

fn policies(r: &HPAScalingRules) -> &[k8s_openapi::api::autoscaling::v2::HPAScalingPolicy] {
    r.policies.as_deref().unwrap_or_default()
}

/// Upstream `calculateScaleUpLimitWithScalingRules`.
fn scale_up_limit_with(rules: &HPAScalingRules, current: i32, h: &History, now: Timestamp) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let mut result = if select == "Min" { i32::MAX } else { i32::MIN };
    for p in policies(rules) {
        let start = current - changed_within(&h.scale_up, p.period_seconds, now)
            + changed_within(&h.scale_down, p.period_seconds, now);
        let proposed = match p.type_.as_str() {
            "Pods" => start.saturating_add(p.value),
            _ => (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32,
        };
        result = if select == "Min" {
            result.min(proposed)
        } else {
            result.max(proposed)
        };
    }
    result
}

/// Upstream `calculateScaleDownLimitWithBehaviors`.
fn scale_down_limit_with(
    rules: &HPAScalingRules,
    current: i32,
    h: &History,
    now: Timestamp,
) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let mut result = if select == "Min" { i32::MIN } else { i32::MAX };
    for p in policies(rules) {
        let start = current - changed_within(&h.scale_up, p.period_seconds, now)
            + changed_within(&h.scale_down, p.period_seconds, now);
        let proposed = match p.type_.as_str() {
            "Pods" => start - p.value,
            _ => (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32,
        };
        result = if select == "Min" {
            result.max(proposed)
        } else {
            result.min(proposed)
        };
    }
    result
}

/// Inputs of the normalization of one proposal.
struct Normalize<'a> {
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    up: Option<&'a HPAScalingRules>,
    down: Option<&'a HPAScalingRules>,
}

/// A bound on the replica count and why it applies: (count, reason, message).
type Bound = (i32, &'static str, &'static str);

/// The highest count a scale up may reach: the rate limit `rate` or `maxReplicas`.
fn upper_bound(max: i32, rate: i32) -> Bound {
    if max > rate {
        (
            rate,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate",
        )
    } else {
        (
            max,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    }
}

/// The lowest count a scale down may reach: the rate limit `rate` or `minReplicas`.
fn lower_bound(min: i32, rate: i32) -> Bound {
    if min < rate {
        (
            rate,
            "ScaleDownLimit",
            "the desired replica count is decreasing faster than the maximum scale rate",
        )
    } else {
        (
            min,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    }
}

/// `count` inside its bounds: `ScalingLimited` says which one held it, if any.
fn clamp(count: i32, lower: Option<Bound>, upper: Option<Bound>) -> (i32, Cond) {
    let (n, reason, message) = match (lower, upper) {
        (Some(b), _) if count < b.0 => b,
        (_, Some(b)) if count > b.0 => b,
        _ => (
            count,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        ),
    };
    let limited = if n == count { "False" } else { "True" };
    (n, (limited, reason, message.to_string()))
}

/// `AbleToScale` after stabilization turned `desired` into `stabilized`; `up`: it held back a
/// scale up (only `behavior` has a scale-up window).
fn stabilization(desired: i32, stabilized: i32, up: bool) -> Cond {
    if stabilized == desired {
        (
            "True",
            "ReadyForNewScale",
            "recommended size matches current size".into(),
        )
    } else if up {
        ("True", "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation".into())
    } else {
        ("True", "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation".into())
    }
}

/// Upstream `normalizeDesiredReplicas` (no `behavior`): the highest recommendation of the
/// downscale window, then `convertDesiredReplicasWithRules`. Returns the replicas,
/// `AbleToScale` and `ScalingLimited`.
fn normalize_default(
    a: &Normalize,
    h: &mut History,
    now: Timestamp,
    window: SignedDuration,
) -> (i32, Cond, Cond) {
    let cutoff = now - window;
    let stabilized = h
        .recommendations
        .iter()
        .filter(|r| r.at >= cutoff)
        .map(|r| r.value)
        .fold(a.desired, i32::max);
    record(&mut h.recommendations, a.desired, now, window);
    let able = stabilization(a.desired, stabilized, false);
    let lower = (
        a.min,
        "TooFewReplicas",
        "the desired replica count is less than the minimum replica count",
    );
    let (n, limited) = clamp(
        stabilized,
        Some(lower),
        Some(upper_bound(a.max, scale_up_limit(a.current))),
    );
    (n, able, limited)
}

fn window_of(r: Option<&HPAScalingRules>, default: i64) -> SignedDuration {
    secs(
        r.and_then(|r| r.stabilization_window_seconds)
            .map_or(default, i64::from),
    )
}

/// Upstream `normalizeDesiredReplicasWithBehaviors`: stabilization between the lowest
/// recommendation of the scale-up window and the highest of the scale-down window, then the
/// policies' rate (`convertDesiredReplicasWithBehaviorRate`).
fn normalize_with_behavior(
    a: &Normalize,
    h: &mut History,
    now: Timestamp,
    default_down_window: SignedDuration,
) -> (i32, Cond, Cond) {
    let up_window = window_of(a.up, 0);
    let down_window = window_of(a.down, default_down_window.as_secs());
    let (mut up_rec, mut down_rec) = (a.desired, a.desired);
    for r in &h.recommendations {
        if r.at > now - up_window {
            up_rec = up_rec.min(r.value);
        }
        if r.at > now - down_window {
            down_rec = down_rec.max(r.value);
        }
    }
    let stabilized = a.current.max(up_rec).min(down_rec);
    record(
        &mut h.recommendations,
        a.desired,
        now,
        up_window.max(down_window),
    );
    let able = stabilization(a.desired, stabilized, a.desired >= a.current);
    let (n, limited) = if stabilized > a.current {
        let rate =
            a.up.map_or(i32::MAX, |r| scale_up_limit_with(r, a.current, h, now))
                .max(a.current);
        clamp(stabilized, None, Some(upper_bound(a.max, rate)))
    } else if stabilized < a.current {
        let rate = a
            .down
            .map_or(i32::MIN, |r| scale_down_limit_with(r, a.current, h, now))
            .min(a.current);
        clamp(stabilized, Some(lower_bound(a.min, rate)), None)
    } else {
        clamp(stabilized, None, None)
    };
    (n, able, limited)
}

/// Upstream `setConditionInList`: the transition time moves only when the status does.
fn set_condition(
    conds: &mut Vec<HorizontalPodAutoscalerCondition>,
    type_: &str,
    (status, reason, message): Cond,
    now: Timestamp,
) {
    let i = match conds.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conds.push(HorizontalPodAutoscalerCondition {
                type_: type_.into(),
                ..Default::default()
            });
            conds.len() - 1
        }
    };
    let c = &mut conds[i];
    if c.status != status {
        c.last_transition_time = Some(Time(now));
    }
    c.status = status.into();
    c.reason = Some(reason.into());
    c.message = Some(message);
}

fn quantity_milli(milli: i64) -> K8sQuantity {
    K8sQuantity(Quantity::from_milli(milli).to_string())
}

/// What one metric gave: its proposal, a description for events, and its status.
type MetricOutcome = Result<(i32, String, MetricStatus), (&'static str, String)>;

/// One metric of the spec (upstream `computeReplicasForMetric`).
fn compute_metric(
    spec: &MetricSpec,
    current: i32,
    pods: &[&Pod],
    metrics: &Store<PodMetrics>,
    now: Timestamp,
    cfg: &HpaConfig,
) -> MetricOutcome {
    let (resource, container, target, failed): (&str, Option<&str>, &MetricTarget, &str) =
        match spec.type_.as_str() {
            "Resource" => {
                let Some(r) = spec.resource.as_ref() else {
                    return Err((
                        "FailedGetResourceMetric",
                        "resource metric source is missing".into(),
                    ));
                };
                (&r.name, None, &r.target, "FailedGetResourceMetric")
            }
            "ContainerResource" => {
                let Some(r) = spec.container_resource.as_ref() else {
                    return Err((
                        "FailedGetContainerResourceMetric",
                        "container resource metric source is missing".into(),
                    ));
                };
                (
                    &r.name,
                    Some(r.container.as_str()),
                    &r.target,
                    "FailedGetContainerResourceMetric",
                )
            }
            "Pods" => {
                return Err((
                    "FailedGetPodsMetric",
                    no_custom_metrics("custom.metrics.k8s.io"),
                ))
            }
            "Object" => {
                return Err((
                    "FailedGetObjectMetric",
                    no_custom_metrics("custom.metrics.k8s.io"),
                ))
            }
            "External" => {
                return Err((
                    "FailedGetExternalMetric",
                    no_custom_metrics("external.metrics.k8s.io"),
                ))
            }
            other => {
                return Err((
                    "InvalidMetricSourceType",
                    format!("unknown metric source type {other:?}"),
                ))
            }
        };
    let t = match (
        target.average_value.as_ref().and_then(milli_value),
        target.average_utilization,
    ) {
        (Some(v), _) => Target::AverageValue(v),
        (None, Some(u)) => Target::Utilization(u),
        (None, None) => {
            return Err((
                failed,
                "invalid resource metric source: neither a utilization target nor a value target was set".into(),
            ))
        }
    };
    let info = pod_metrics_info(pods, metrics, resource, container);
    let p =
        resource_replicas(current, t, resource, container, pods, info, now, cfg).map_err(|e| {
            let what = match container {
                Some(c) => format!("{resource} resource metric value for container {c}"),
                None => format!("{resource} utilization"),
            };
            (failed, format!("failed to get {what}: {e}"))
        })?;
    let current_value = MetricValueStatus {
        average_utilization: p.utilization,
        average_value: Some(quantity_milli(p.average_milli)),
        value: None,
    };
    let description = match (t, container) {
        (Target::Utilization(_), None) => {
            format!("{resource} resource utilization (percentage of request)")
        }
        (Target::Utilization(_), Some(c)) => {
            format!("{resource} container resource utilization (percentage of request) of container {c}")
        }
        (Target::AverageValue(_), None) => format!("{resource} resource"),
        (Target::AverageValue(_), Some(c)) => {
            format!("{resource} container resource of container {c}")
        }
    };
    let status = match container {
        None => MetricStatus {
            type_: "Resource".into(),
            resource: Some(ResourceMetricStatus {
                name: resource.into(),
                current: current_value,
            }),
            ..Default::default()
        },
        Some(c) => MetricStatus {
            type_: "ContainerResource".into(),
            container_resource: Some(ContainerResourceMetricStatus {
                name: resource.into(),
                container: c.into(),
                current: current_value,
            }),
            ..Default::default()
        },
    };
    Ok((p.replicas, description, status))
}

fn no_custom_metrics(group: &str) -> String {
    format!("unable to fetch metrics: the {group} API is not served by this cluster (orch serves only the resource metrics API, metrics.k8s.io)")
}

/// The reads of one reconcile.
pub struct View<'a> {
    /// The targets' scales.
    pub workloads: &'a Workloads,
    /// The scales of custom targets.
    pub custom: &'a CustomScales,
    /// Pods.
    pub pods: &'a Store<Pod>,
    /// Pod figures.
    pub metrics: &'a Store<PodMetrics>,
}

/// The outcome of one reconcile: actions, and the rescale asked for (old, new).
struct Outcome {
    actions: Vec<Action>,
    rescale: Option<(i32, i32)>,
}

fn reconcile(
    hpa: &HorizontalPodAutoscaler,
    view: &View,
    h: &mut History,
    now: Timestamp,
    cfg: &HpaConfig,
) -> Outcome {
    let me = ObjectRef::of(hpa);
    let ns = hpa.metadata.namespace.as_deref().unwrap_or("default");
    let spec = hpa.spec.clone().unwrap_or_default();
    let old_status = hpa.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let mut conds = status.conditions.take().unwrap_or_default();
    let mut actions = Vec::new();
    let target = &spec.scale_target_ref;
    let (group, _) = split_api_version(target.api_version.as_deref().unwrap_or(""));
    let scale = match view.workloads.scale(group, &target.kind, ns, &target.name) {
        Ok(Some(s)) => Ok(s),
        Ok(None) if by_group_kind(group, &target.kind).is_none() => {
            view.custom.scale(group, &target.kind, ns, &target.name)
        }
        Ok(None) => Err(format!(
            "{} {:?} not found",
            plural_of(group, &target.kind),
            target.name
        )),
        Err(e) => Err(e),
    };
    let finish = |mut status: HorizontalPodAutoscalerStatus,
                  conds: Vec<HorizontalPodAutoscalerCondition>,
                  mut actions: Vec<Action>| {
        status.conditions = Some(conds);
        status.observed_generation = hpa.metadata.generation;
        if status != old_status {
            let mut o = hpa.clone();
            o.status = Some(status);
            actions.push(Action::update_status(&o));
        }
        actions.push(Action::requeue(cfg.sync_period));
        actions
    };
    let scale = match scale {
        Ok(s) => s,
        Err(e) => {
            actions.push(Action::warning(me.clone(), "FailedGetScale", e.clone()));
            set_condition(
                &mut conds,
                ABLE_TO_SCALE,
                (
                    "False",
                    "FailedGetScale",
                    format!("the HPA controller was unable to get the target's current scale: {e}"),
                ),
                now,
            );
            return Outcome {
                actions: finish(status, conds, actions),
                rescale: None,
            };
        }
    };
    set_condition(
        &mut conds,
        ABLE_TO_SCALE,
        (
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
        ),
        now,
    );
    let current = scale.replicas;
    if h.recommendations.is_empty() {
        h.recommendations.push(Stamped {
            value: current,
            at: now,
        });
    }
    let min = spec.min_replicas.unwrap_or(1);
    let mut metric_statuses: Option<Vec<MetricStatus>> = None;
    let (desired, reason) = if current == 0 && min != 0 {
        set_condition(
            &mut conds,
            SCALING_ACTIVE,
            (
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            ),
            now,
        );
        (current, String::new())
    } else if current > spec.max_replicas {
        (
            spec.max_replicas,
            "Current number of replicas above Spec.MaxReplicas".to_string(),
        )
    } else if current < min {
        (
            min,
            "Current number of replicas below Spec.MinReplicas".to_string(),
        )
    } else {
        let selector = match &scale.selector {
            Ok(s) => s.clone(),
            Err(e) => {
                let (event, msg) = if e == "selector is required" {
                    (
                        "SelectorRequired",
                        "the HPA target's scale is missing a selector".to_string(),
                    )
                } else {
                    ("InvalidSelector", format!("couldn't convert selector into a corresponding internal selector object: {e}"))
                };
                actions.push(Action::warning(me.clone(), event, e.clone()));
                set_condition(
                    &mut conds,
                    SCALING_ACTIVE,
                    ("False", "InvalidSelector", msg),
                    now,
                );
                status.current_replicas = Some(current);
                return Outcome {
                    actions: finish(status, conds, actions),
                    rescale: None,
                };
            }
        };
        let pods: Vec<std::sync::Arc<Pod>> = view
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| selector.matches_opt(p.metadata.labels.as_ref()))
            .collect();
        let pods: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        let specs = spec.metrics.clone().unwrap_or_default();
        let mut best: Option<(i32, String)> = None;
        let mut statuses = Vec::new();
        let mut first_error: Option<(&'static str, String)> = None;
        let mut invalid = 0usize;
        for m in &specs {
            match compute_metric(m, current, &pods, view.metrics, now, cfg) {
                Ok((n, what, st)) => {
                    statuses.push(st);
                    if best.as_ref().is_none_or(|(b, _)| n > *b) {
                        best = Some((n, what));
                    }
                }
                Err((reason, msg)) => {
                    actions.push(Action::warning(me.clone(), reason, msg.clone()));
                    invalid += 1;
                    first_error.get_or_insert((reason, msg));
                }
            }
        }
        let proposal = best.as_ref().map_or(0, |(n, _)| *n);
        if invalid >= specs.len() || (invalid > 0 && proposal < current) {
            let (reason, msg) = first_error
                .unwrap_or(("FailedGetResourceMetric", "no metrics are specified".into()));
            set_condition(
                &mut conds,
                SCALING_ACTIVE,
                (
                    "False",
                    reason,
                    format!("the HPA was unable to compute the replica count: {msg}"),
                ),
                now,
            );
            status.current_replicas = Some(current);
            status.current_metrics = (!statuses.is_empty()).then_some(statuses);
            actions.push(Action::warning(
                me.clone(),
                "FailedComputeMetricsReplicas",
                format!(
                    "invalid metrics ({invalid} invalid out of {}), first error is: {msg}",
                    specs.len()
                ),
            ));
            return Outcome {
                actions: finish(status, conds, actions),
                rescale: None,
            };
        }
        let (proposal, what) = best.unwrap_or_default();
        set_condition(
            &mut conds,
            SCALING_ACTIVE,
            (
                "True",
                "ValidMetricFound",
                format!("the HPA was able to successfully calculate a replica count from {what}"),
            ),
            now,
        );
        metric_statuses = Some(statuses);
        let reason = if proposal > current {
            format!("{what} above target")
        } else if proposal < current {
            "All metrics below target".to_string()
        } else {
            String::new()
        };
        let args = Normalize {
            current,
            desired: proposal,
            min,
            max: spec.max_replicas,
            up: spec.behavior.as_ref().and_then(|b| b.scale_up.as_ref()),
            down: spec.behavior.as_ref().and_then(|b| b.scale_down.as_ref()),
        };
        let window = SignedDuration::try_from(cfg.downscale_stabilization).unwrap_or(secs(300));
        let (n, able, limited) = if spec.behavior.is_some() {
            normalize_with_behavior(&args, h, now, window)
        } else {
            normalize_default(&args, h, now, window)
        };
        set_condition(&mut conds, ABLE_TO_SCALE, able, now);
        set_condition(&mut conds, SCALING_LIMITED, limited, now);
        (n, reason)
    };
    let rescale = desired != current && !(current == 0 && min != 0);
    status.current_replicas = Some(current);
    status.current_metrics = metric_statuses.filter(|m| !m.is_empty());
    if rescale {
        actions.push(Action::Patch {
            resource: scale.resource.clone(),
            namespace: Some(ns.into()),
            name: target.name.clone(),
            subresource: Some("scale".into()),
            patch: orch_types::client::Patch::Merge(
                serde_json::json!({"spec": {"replicas": desired}}),
            ),
        });
        actions.push(Action::normal(
            me,
            "SuccessfulRescale",
            format!("New size: {desired}; reason: {reason}"),
        ));
        set_condition(
            &mut conds,
            ABLE_TO_SCALE,
            (
                "True",
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            ),
            now,
        );
        status.desired_replicas = desired;
        status.last_scale_time = Some(Time(now));
    } else {
        status.desired_replicas = current;
    }
    Outcome {
        actions: finish(status, conds, actions),
        rescale: rescale.then_some((current, desired)),
    }
}

fn plural_of(group: &str, kind: &str) -> String {
    by_group_kind(group, kind).map_or_else(|| kind.to_lowercase(), |i| i.group_resource())
}

/// The HorizontalPodAutoscaler controller's declaration, with the recommendations and scale
/// events of each autoscaler.
#[derive(Debug, Default)]
pub struct HorizontalController {
    config: HpaConfig,
    history: Mutex<HashMap<String, History>>,
}

impl HorizontalController {
    /// A controller with `config`.
    pub fn new(config: HpaConfig) -> Self {
        Self {
            config,
            history: Mutex::default(),
        }
    }
}

impl Controller for HorizontalController {
    fn name(&self) -> &'static str {
        "horizontalpodautoscaling"
    }
    fn component(&self) -> &'static str {
        "horizontal-pod-autoscaler"
    }
    fn watches(&self, w: &mut Watches) {
        // Upstream enqueues every change after the sync period; here a new autoscaler or a
        // changed spec is looked at at once, and the controller's own status writes (which
        // leave `generation` alone) trigger nothing: each key requeues itself every period.
        w.watch::<HorizontalPodAutoscaler>(Arc::new(|c, _, keys| {
            if let Change::Updated(old, new) = c {
                if old.metadata.generation == new.metadata.generation {
                    return;
                }
            }
            keys.push(key_of(&c.object().metadata));
        }));
        w.reads::<Pod>()
            .reads::<Deployment>()
            .reads::<ReplicaSet>()
            .reads::<StatefulSet>()
            .reads::<ReplicationController>()
            .polls::<PodMetrics>(METRICS_POLL);
        CustomScales::declare(w);
    }
    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        let Some(hpa) = caches.get::<HorizontalPodAutoscaler>().get(key) else {
            self.history.lock().remove(key);
            return vec![];
        };
        let workloads = Workloads::from_caches(caches);
        let custom = CustomScales::from_caches(caches);
        let (pods, metrics) = (caches.get::<Pod>(), caches.get::<PodMetrics>());
        let view = View {
            workloads: &workloads,
            custom: &custom,
            pods: &pods,
            metrics: &metrics,
        };
        let mut all = self.history.lock();
        let h = all.entry(key.to_string()).or_default();
        let out = reconcile(&hpa, &view, h, now, &self.config);
        h.pending = out.rescale.map(|(from, to)| (from, to, now));
        out.actions
    }
    fn applied(&self, key: &str, result: &Result<Option<Duration>, ClientError>) {
        let mut all = self.history.lock();
        let Some(h) = all.get_mut(key) else { return };
        let Some((from, to, at)) = h.pending.take() else {
            return;
        };
        if result.is_err() {
            return;
        }
        // Upstream `storeScaleEvent`: kept for the longest policy period (an hour at most,
        // the longest period validation allows).
        let keep = secs(3600);
        if to > from {
            record(&mut h.scale_up, to - from, at, keep);
        } else {
            record(&mut h.scale_down, from - to, at, keep);
        }
    }
}

#[cfg(test)]
mod tests;
