//! The `LimitRanger` admission plugin, after upstream
//! `plugin/pkg/admission/limitranger/admission.go` (1.33): the LimitRanges of a namespace
//! default and bound what its pods and claims ask for.
//!
//! - On pod creation, each container and init container that misses a resource gets the
//!   `default` (limits) and `defaultRequest` (requests) of the `Container` item of each
//!   LimitRange, and the pod is annotated `kubernetes.io/limit-ranger: LimitRanger plugin set:
//!   cpu, memory request for container web; cpu limit for container web` ([`default_pod`]).
//!   Pod updates are not looked at (containers' resources are immutable).
//! - Then every pod is held to the `min`, `max` and `maxLimitRequestRatio` of the `Container`
//!   item for each container and init container, and of the `Pod` item for the pod's effective
//!   requests and limits (without overhead); claims (create and update) to the `storage`
//!   `min`/`max` of the `PersistentVolumeClaim` item ([`validate_pod`], [`validate_claim`]).
//!   The first LimitRange with a violation refuses the request with 403 and all of its
//!   messages, e.g. `maximum cpu usage per Container is 1, but limit is 2`.
//!
//! Upstream iterates Go maps, so the order of several messages varies there; here they come in
//! resource name order. Objects being deleted are not looked at.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, LimitRange, LimitRangeItem, PersistentVolumeClaim, Pod, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use orch_types::quantity::Quantity;
use orch_types::resources::{
    pod_limits_with, pod_requests_with, PodResourcesOptions, ResourceList,
};

/// The annotation naming what the plugin set on a pod.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// Upstream `resource.MaxMilliValue`.
const MAX_MILLI_VALUE: i64 = i64::MAX / 1000;

type List = BTreeMap<String, K8sQuantity>;

/// The defaults of the `Container` items of a LimitRange: (requests, limits) (upstream
/// `defaultContainerResourceRequirements`).
fn container_defaults(lr: &LimitRange) -> (List, List) {
    let (mut requests, mut limits) = (List::new(), List::new());
    for item in items(lr).filter(|i| i.type_ == "Container") {
        requests.extend(item.default_request.clone().unwrap_or_default());
        limits.extend(item.default.clone().unwrap_or_default());
    }
    (requests, limits)
}

fn items(lr: &LimitRange) -> impl Iterator<Item = &LimitRangeItem> {
    lr.spec.iter().flat_map(|s| s.limits.iter())
}

/// Fills what `c` misses from the defaults; the annotation parts for it (upstream
/// `mergeContainerResources`).
fn merge_container(
    c: &mut Container,
    (requests, limits): &(List, List),
    what: &str,
    notes: &mut Vec<String>,
) {
    let r = c
        .resources
        .get_or_insert_with(ResourceRequirements::default);
    let fill = |have: &mut Option<List>, defaults: &List| {
        let mut set = Vec::new();
        for (k, v) in defaults {
            let have = have.get_or_insert_with(List::new);
            if !have.contains_key(k) {
                have.insert(k.clone(), v.clone());
                set.push(k.clone());
            }
        }
        if have.as_ref().is_some_and(List::is_empty) {
            *have = None;
        }
        set
    };
    let set_limits = fill(&mut r.limits, limits);
    let set_requests = fill(&mut r.requests, requests);
    if *r == ResourceRequirements::default() {
        c.resources = None;
    }
    if !set_requests.is_empty() {
        notes.push(format!(
            "{} request for {what} {}",
            set_requests.join(", "),
            c.name
        ));
    }
    if !set_limits.is_empty() {
        notes.push(format!(
            "{} limit for {what} {}",
            set_limits.join(", "),
            c.name
        ));
    }
}

/// Applies the container defaults of each LimitRange (in order) to `pod`; true when it changed
/// anything (upstream `PodMutateLimitFunc`). The annotation says what the last LimitRange that
/// set something set, as upstream overwrites it per LimitRange.
pub fn default_pod(pod: &mut Pod, ranges: &[LimitRange]) -> bool {
    let mut changed = false;
    for lr in ranges {
        let defaults = container_defaults(lr);
        if defaults.0.is_empty() && defaults.1.is_empty() {
            continue;
        }
        let Some(spec) = pod.spec.as_mut() else {
            return changed;
        };
        let mut notes = Vec::new();
        for c in spec.containers.iter_mut() {
            merge_container(c, &defaults, "container", &mut notes);
        }
        for c in spec.init_containers.iter_mut().flatten() {
            merge_container(c, &defaults, "init container", &mut notes);
        }
        if !notes.is_empty() {
            changed = true;
            pod.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(
                    ANNOTATION.into(),
                    format!("LimitRanger plugin set: {}", notes.join("; ")),
                );
        }
    }
    changed
}

/// Request, limit and enforced value at a common precision: milli values when none overflows
/// (upstream `requestLimitEnforcedValues`).
fn common(request: Quantity, limit: Quantity, enforced: Quantity) -> (i64, i64, i64) {
    if [request, limit, enforced]
        .iter()
        .all(|q| q.value() <= MAX_MILLI_VALUE)
    {
        (
            request.milli_value(),
            limit.milli_value(),
            enforced.milli_value(),
        )
    } else {
        (request.value(), limit.value(), enforced.value())
    }
}

fn parse(m: &List) -> ResourceList {
    ResourceList::from_k8s(m)
}

/// Upstream `minConstraint`.
fn min_constraint(
    ty: &str,
    r: &str,
    enforced: Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let Some(req) = requests.get(r).copied() else {
        return Some(format!(
            "minimum {r} usage per {ty} is {enforced}.  No request is specified"
        ));
    };
    let lim = limits.get(r).copied();
    let (rv, lv, ev) = common(req, lim.unwrap_or(Quantity::ZERO), enforced);
    if rv < ev {
        return Some(format!(
            "minimum {r} usage per {ty} is {enforced}, but request is {req}"
        ));
    }
    match lim {
        Some(lim) if lv < ev => Some(format!(
            "minimum {r} usage per {ty} is {enforced}, but limit is {lim}"
        )),
        _ => None,
    }
}

/// Upstream `maxRequestConstraint` (claims: only requests are user input).
fn max_request_constraint(
    ty: &str,
    r: &str,
    enforced: Quantity,
    requests: &ResourceList,
) -> Option<String> {
    let Some(req) = requests.get(r).copied() else {
        return Some(format!(
            "maximum {r} usage per {ty} is {enforced}.  No request is specified"
        ));
    };
    let (rv, _, ev) = common(req, Quantity::ZERO, enforced);
    (rv > ev).then(|| format!("maximum {r} usage per {ty} is {enforced}, but request is {req}"))
}

/// Upstream `maxConstraint`.
fn max_constraint(
    ty: &str,
    r: &str,
    enforced: Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let Some(lim) = limits.get(r).copied() else {
        return Some(format!(
            "maximum {r} usage per {ty} is {enforced}.  No limit is specified"
        ));
    };
    let req = requests.get(r).copied();
    let (rv, lv, ev) = common(req.unwrap_or(Quantity::ZERO), lim, enforced);
    if lv > ev {
        return Some(format!(
            "maximum {r} usage per {ty} is {enforced}, but limit is {lim}"
        ));
    }
    match req {
        Some(req) if rv > ev => Some(format!(
            "maximum {r} usage per {ty} is {enforced}, but request is {req}"
        )),
        _ => None,
    }
}

/// Upstream `limitRequestRatioConstraint`.
fn ratio_constraint(
    ty: &str,
    r: &str,
    enforced: Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let req = requests.get(r).copied();
    let lim = limits.get(r).copied();
    let (rv, lv, _) = common(
        req.unwrap_or(Quantity::ZERO),
        lim.unwrap_or(Quantity::ZERO),
        enforced,
    );
    if req.is_none() || rv == 0 {
        return Some(format!(
            "{r} max limit to request ratio per {ty} is {enforced}, but no request is specified or request is 0"
        ));
    }
    if lim.is_none() || lv == 0 {
        return Some(format!(
            "{r} max limit to request ratio per {ty} is {enforced}, but no limit is specified or limit is 0"
        ));
    }
    let observed = lv as f64 / rv as f64;
    let (scaled, max) = if enforced.value() <= MAX_MILLI_VALUE {
        (observed * 1000.0, enforced.milli_value() as f64)
    } else {
        (observed, enforced.value() as f64)
    };
    (scaled > max).then(|| {
        format!(
            "{r} max limit to request ratio per {ty} is {enforced}, but provided ratio is {observed:.6}"
        )
    })
}

/// The min, max and ratio checks of one item against requests and limits.
fn check_item(
    item: &LimitRangeItem,
    requests: &ResourceList,
    limits: &ResourceList,
    errs: &mut Vec<String>,
) {
    let ty = item.type_.as_str();
    for (k, v) in parse(item.min.as_ref().unwrap_or(&List::new())).iter() {
        errs.extend(min_constraint(ty, k, *v, requests, limits));
    }
    for (k, v) in parse(item.max.as_ref().unwrap_or(&List::new())).iter() {
        errs.extend(max_constraint(ty, k, *v, requests, limits));
    }
    let ratios = item.max_limit_request_ratio.as_ref();
    for (k, v) in parse(ratios.unwrap_or(&List::new())).iter() {
        errs.extend(ratio_constraint(ty, k, *v, requests, limits));
    }
}

fn container_lists(c: &Container) -> (ResourceList, ResourceList) {
    let r = c.resources.as_ref();
    (
        ResourceList::from_k8s_opt(r.and_then(|r| r.requests.as_ref())),
        ResourceList::from_k8s_opt(r.and_then(|r| r.limits.as_ref())),
    )
}

/// The violations of `pod` against one LimitRange, deduplicated, in order (upstream
/// `PodValidateLimitFunc`).
pub fn validate_pod(lr: &LimitRange, pod: &Pod) -> Vec<String> {
    let mut errs = Vec::new();
    let spec = pod.spec.clone().unwrap_or_default();
    for item in items(lr) {
        match item.type_.as_str() {
            "Container" => {
                let all = spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten());
                for c in all {
                    let (requests, limits) = container_lists(c);
                    check_item(item, &requests, &limits, &mut errs);
                }
            }
            "Pod" => {
                let opts = PodResourcesOptions {
                    exclude_overhead: true,
                    non_missing_container_requests: None,
                };
                let requests = pod_requests_with(&spec, &opts);
                let limits = pod_limits_with(&spec, &opts);
                check_item(item, &requests, &limits, &mut errs);
            }
            _ => {}
        }
    }
    dedup(errs)
}

/// The violations of `claim` against one LimitRange: storage (or any resource named) `min`
/// and `max` of its requests (upstream `PersistentVolumeClaimValidateLimitFunc`).
pub fn validate_claim(lr: &LimitRange, claim: &PersistentVolumeClaim) -> Vec<String> {
    let mut errs = Vec::new();
    let requests = ResourceList::from_k8s_opt(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    );
    for item in items(lr).filter(|i| i.type_ == "PersistentVolumeClaim") {
        let ty = item.type_.as_str();
        for (k, v) in parse(item.min.as_ref().unwrap_or(&List::new())).iter() {
            errs.extend(min_constraint(ty, k, *v, &requests, &ResourceList::new()));
        }
        for (k, v) in parse(item.max.as_ref().unwrap_or(&List::new())).iter() {
            errs.extend(max_request_constraint(ty, k, *v, &requests));
        }
    }
    dedup(errs)
}

fn dedup(errs: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in errs {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

/// How upstream's error aggregate reads: the one message, or `[a, b]`.
pub fn aggregate(errs: &[String]) -> String {
    match errs {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests;
