//! batch/v1 validation, after upstream `pkg/apis/batch/validation/validation.go` (1.33).

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::{
    CronJob, CronJobSpec, Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule, SuccessPolicy, SuccessPolicyRule,
};

use super::core::workload_template;
use super::field::{quote, FieldError, Path};
use super::meta::{self, immutable, non_negative};
use crate::cron::{load_time_zone, Schedule};
use crate::labels::Selector;
use crate::names;

/// The most parallelism an Indexed Job may have; it caps `.status.completedIndexes`
/// (upstream `maxParallelismForIndexedJob`).
const MAX_PARALLELISM_FOR_INDEXED_JOB: i32 = 100_000;
/// The most failed indexes an Indexed Job may tolerate (upstream
/// `maxFailedIndexesForIndexedJob`).
const MAX_FAILED_INDEXES_FOR_INDEXED_JOB: i32 = 100_000;
/// Above this many completions, a Job with `backoffLimitPerIndex` gets tighter limits
/// (upstream `completionsSoftLimit` and the two `…LimitForHighCompletions`).
const COMPLETIONS_SOFT_LIMIT: i32 = 100_000;
const PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS: i32 = 10_000;
const MAX_FAILED_INDEXES_LIMIT_FOR_HIGH_COMPLETIONS: i32 = 10_000;
/// upstream `maxPodFailurePolicyRules`, `maxPodFailurePolicyOnExitCodesValues`,
/// `maxPodFailurePolicyOnPodConditionsPatterns`.
const MAX_POD_FAILURE_POLICY_RULES: usize = 20;
const MAX_ON_EXIT_CODES_VALUES: usize = 255;
const MAX_ON_POD_CONDITIONS_PATTERNS: usize = 20;
/// upstream `maxSuccessPolicyRule` and `maxJobSuccessPolicySucceededIndexesLimit`.
const MAX_SUCCESS_POLICY_RULES: usize = 20;
const MAX_SUCCEEDED_INDEXES_LEN: usize = 64 * 1024;

/// upstream `supportedPodFailurePolicyActions`, `…OnExitCodesOperator`,
/// `…OnPodConditionsStatus`, sorted as upstream's `sets.List` prints them.
const POD_FAILURE_POLICY_ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
const ON_EXIT_CODES_OPERATORS: &[&str] = &["In", "NotIn"];
const ON_POD_CONDITIONS_STATUSES: &[&str] = &["False", "True", "Unknown"];

/// Go's `fmt.Sprintf("valid values: %q", list)`: `valid values: ["a" "b"]`.
fn valid_values(list: &[&str]) -> String {
    let quoted: Vec<String> = list.iter().map(|v| quote(v)).collect();
    format!("valid values: [{}]", quoted.join(" "))
}

fn is_indexed(s: &JobSpec) -> bool {
    s.completion_mode.as_deref() == Some("Indexed")
}

/// Job (create), upstream `ValidateJob`. A missing selector is fine: the API server
/// generates it from the uid.
pub(crate) fn job(j: &Job) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&j.metadata, true, meta::NameRule::Subdomain);
    let sp = Path::new("spec");
    let Some(s) = &j.spec else {
        errs.push(FieldError::required(sp, ""));
        return errs;
    };
    let mut sel = None;
    if let Some(ls) = &s.selector {
        errs.extend(meta::label_selector(ls, &sp.child("selector")));
        sel = Selector::try_from(ls).ok();
    }
    errs.extend(job_spec(s, &sp, sel.as_ref()));
    // An Indexed Job's pods get the hostname `<name>-<index>`; the last one must still be
    // a DNS label.
    if let (true, Some(c)) = (is_indexed(s), s.completions.filter(|&c| c > 0)) {
        let name = j.metadata.name.as_deref().unwrap_or("");
        let host = format!("{name}-{}", c - 1);
        if !names::is_dns1123_label(&host).is_empty() {
            errs.push(FieldError::invalid(
                Path::new("metadata").child("name"),
                name,
                format!("will not able to create pod with invalid DNS label: {host}"),
            ));
        }
    }
    errs
}

/// upstream `validateJobSpec`: the rules a Job and a CronJob's `jobTemplate` share; the
/// template's labels must match `selector` when there is one. Errors come in upstream's
/// order. `managedBy`'s format is not checked.
fn job_spec(s: &JobSpec, sp: &Path, sel: Option<&Selector>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (f, v) in [
        ("parallelism", s.parallelism.map(i64::from)),
        ("completions", s.completions.map(i64::from)),
        ("activeDeadlineSeconds", s.active_deadline_seconds),
        ("backoffLimit", s.backoff_limit.map(i64::from)),
        (
            "ttlSecondsAfterFinished",
            s.ttl_seconds_after_finished.map(i64::from),
        ),
        (
            "backoffLimitPerIndex",
            s.backoff_limit_per_index.map(i64::from),
        ),
        ("maxFailedIndexes", s.max_failed_indexes.map(i64::from)),
    ] {
        errs.extend(non_negative(v, sp.child(f)));
    }
    if s.max_failed_indexes.is_some() && s.backoff_limit_per_index.is_none() {
        errs.push(FieldError::required(
            sp.child("backoffLimitPerIndex"),
            "when maxFailedIndexes is specified",
        ));
    }
    match s.completion_mode.as_deref() {
        None | Some("NonIndexed") => {
            for (f, v) in [
                ("backoffLimitPerIndex", s.backoff_limit_per_index),
                ("maxFailedIndexes", s.max_failed_indexes),
            ] {
                if let Some(v) = v {
                    errs.push(FieldError::invalid_num(
                        sp.child(f),
                        v.into(),
                        "requires indexed completion mode",
                    ));
                }
            }
        }
        Some("Indexed") => errs.extend(indexed_limits(s, sp)),
        Some(other) => errs.push(FieldError::not_supported(
            sp.child("completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    if let Some(pfp) = &s.pod_failure_policy {
        errs.extend(pod_failure_policy(s, pfp, &sp.child("podFailurePolicy")));
    }
    if let Some(policy) = &s.success_policy {
        let p = sp.child("successPolicy");
        if is_indexed(s) {
            errs.extend(success_policy(s, policy, &p));
        } else {
            errs.push(FieldError::invalid_raw(
                p,
                "{...}",
                "requires indexed completion mode",
            ));
        }
    }
    // upstream `validatePodReplacementPolicy`.
    match s.pod_replacement_policy.as_deref() {
        None => {}
        Some("Failed") => {}
        Some("TerminatingOrFailed") if s.pod_failure_policy.is_none() => {}
        Some("TerminatingOrFailed") => errs.push(FieldError::not_supported(
            sp.child("podReplacementPolicy"),
            "TerminatingOrFailed",
            &["Failed"],
        )),
        Some(other) => errs.push(FieldError::not_supported(
            sp.child("podReplacementPolicy"),
            other,
            &["Failed", "TerminatingOrFailed"],
        )),
    }
    let tp = sp.child("template");
    errs.extend(workload_template(Some(&s.template), sel, &tp, &[], None));
    // An unset restartPolicy is defaulted to Always, so both read as "not set".
    if let Some(ps) = &s.template.spec {
        let rp = tp.child("spec").child("restartPolicy");
        match ps.restart_policy.as_deref().unwrap_or("") {
            "" | "Always" => errs.push(FieldError::required(
                rp,
                r#"valid values: "OnFailure", "Never""#,
            )),
            "OnFailure" if s.pod_failure_policy.is_some() => errs.push(FieldError::invalid(
                rp,
                "OnFailure",
                r#"only "Never" is supported when podFailurePolicy is specified"#,
            )),
            "OnFailure" | "Never" => {}
            other => errs.push(FieldError::not_supported(
                rp,
                other,
                &["OnFailure", "Never"],
            )),
        }
    }
    errs
}

/// The limits of an Indexed Job (the `IndexedCompletion` branch of upstream
/// `validateJobSpec`): completions are required, parallelism and maxFailedIndexes are
/// bounded, and tighter still above 10^5 completions with `backoffLimitPerIndex`.
fn indexed_limits(s: &JobSpec, sp: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (pp, mp) = (sp.child("parallelism"), sp.child("maxFailedIndexes"));
    if s.completions.is_none() {
        errs.push(FieldError::required(
            sp.child("completions"),
            "when completion mode is Indexed",
        ));
    }
    if let Some(p) = s
        .parallelism
        .filter(|&p| p > MAX_PARALLELISM_FOR_INDEXED_JOB)
    {
        errs.push(FieldError::invalid_num(
            pp.clone(),
            p.into(),
            format!(
                "must be less than or equal to {MAX_PARALLELISM_FOR_INDEXED_JOB} when completion mode is Indexed"
            ),
        ));
    }
    if let (Some(c), Some(m)) = (s.completions, s.max_failed_indexes) {
        if m > c {
            errs.push(FieldError::invalid_num(
                mp.clone(),
                m.into(),
                "must be less than or equal to completions",
            ));
        }
    }
    if let Some(m) = s
        .max_failed_indexes
        .filter(|&m| m > MAX_FAILED_INDEXES_FOR_INDEXED_JOB)
    {
        errs.push(FieldError::invalid_num(
            mp.clone(),
            m.into(),
            format!("must be less than or equal to {MAX_FAILED_INDEXES_FOR_INDEXED_JOB}"),
        ));
    }
    let high = s.completions.is_some_and(|c| c > COMPLETIONS_SOFT_LIMIT);
    if high && s.backoff_limit_per_index.is_some() {
        let why = format!(
            "when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"
        );
        if s.max_failed_indexes.is_none() {
            errs.push(FieldError::required(
                mp.clone(),
                format!("must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"),
            ));
        }
        if let Some(p) = s
            .parallelism
            .filter(|&p| p > PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS)
        {
            errs.push(FieldError::invalid_num(
                pp,
                p.into(),
                format!(
                    "must be less than or equal to {PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS} {why}"
                ),
            ));
        }
        if let Some(m) = s
            .max_failed_indexes
            .filter(|&m| m > MAX_FAILED_INDEXES_LIMIT_FOR_HIGH_COMPLETIONS)
        {
            errs.push(FieldError::invalid_num(
                mp,
                m.into(),
                format!(
                    "must be less than or equal to {MAX_FAILED_INDEXES_LIMIT_FOR_HIGH_COMPLETIONS} {why}"
                ),
            ));
        }
    }
    errs
}

/// upstream `validatePodFailurePolicy`: at most 20 rules; an `onExitCodes.containerName`
/// names a container or init container of the template.
fn pod_failure_policy(s: &JobSpec, pfp: &PodFailurePolicy, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rules = p.child("rules");
    if pfp.rules.len() > MAX_POD_FAILURE_POLICY_RULES {
        errs.push(FieldError::too_many(
            rules.clone(),
            pfp.rules.len(),
            MAX_POD_FAILURE_POLICY_RULES,
        ));
    }
    let containers: BTreeSet<&str> = s
        .template
        .spec
        .iter()
        .flat_map(|ps| {
            ps.containers
                .iter()
                .chain(ps.init_containers.iter().flatten())
        })
        .map(|c| c.name.as_str())
        .collect();
    for (i, rule) in pfp.rules.iter().enumerate() {
        errs.extend(pod_failure_policy_rule(
            s,
            rule,
            &rules.index(i),
            &containers,
        ));
    }
    errs
}

/// upstream `validatePodFailurePolicyRule`: a known action (`FailIndex` only with
/// `backoffLimitPerIndex`) and exactly one of `onExitCodes` / `onPodConditions` (an empty
/// `onPodConditions` counts as none).
fn pod_failure_policy_rule(
    s: &JobSpec,
    rule: &PodFailurePolicyRule,
    p: &Path,
    containers: &BTreeSet<&str>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ap = p.child("action");
    match rule.action.as_str() {
        "" => errs.push(FieldError::required(
            ap,
            valid_values(POD_FAILURE_POLICY_ACTIONS),
        )),
        "FailIndex" if s.backoff_limit_per_index.is_none() => errs.push(FieldError::invalid(
            ap,
            "FailIndex",
            "requires the backoffLimitPerIndex to be set",
        )),
        a if POD_FAILURE_POLICY_ACTIONS.contains(&a) => {}
        a => errs.push(FieldError::not_supported(ap, a, POD_FAILURE_POLICY_ACTIONS)),
    }
    if let Some(req) = &rule.on_exit_codes {
        errs.extend(on_exit_codes(req, &p.child("onExitCodes"), containers));
    }
    let patterns = rule.on_pod_conditions.as_deref().unwrap_or_default();
    if !patterns.is_empty() {
        errs.extend(on_pod_conditions(patterns, &p.child("onPodConditions")));
    }
    match (rule.on_exit_codes.is_some(), !patterns.is_empty()) {
        (true, true) => errs.push(FieldError::invalid_no_value(
            p.clone(),
            "specifying both OnExitCodes and OnPodConditions is not supported",
        )),
        (false, false) => errs.push(FieldError::invalid_no_value(
            p.clone(),
            "specifying one of OnExitCodes and OnPodConditions is required",
        )),
        _ => {}
    }
    errs
}

/// Go's `%#v` of a `[]int32`, as upstream prints `onExitCodes.values`.
fn go_int32_slice(v: &[i32]) -> String {
    let items: Vec<String> = v.iter().map(i32::to_string).collect();
    format!("[]int32{{{}}}", items.join(", "))
}

/// upstream `validatePodFailurePolicyRuleOnExitCodes`: operator `In` / `NotIn`, 1 to 255
/// values, unique and ascending, no `0` with `In`.
fn on_exit_codes(
    req: &PodFailurePolicyOnExitCodesRequirement,
    p: &Path,
    containers: &BTreeSet<&str>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let op = p.child("operator");
    match req.operator.as_str() {
        "" => errs.push(FieldError::required(
            op,
            valid_values(ON_EXIT_CODES_OPERATORS),
        )),
        o if ON_EXIT_CODES_OPERATORS.contains(&o) => {}
        o => errs.push(FieldError::not_supported(op, o, ON_EXIT_CODES_OPERATORS)),
    }
    if let Some(name) = &req.container_name {
        if !containers.contains(name.as_str()) {
            errs.push(FieldError::invalid(
                p.child("containerName"),
                name,
                "must be one of the container or initContainer names in the pod template",
            ));
        }
    }
    let vp = p.child("values");
    if req.values.is_empty() {
        errs.push(FieldError::invalid_raw(
            vp.clone(),
            go_int32_slice(&req.values),
            "at least one value is required",
        ));
    } else if req.values.len() > MAX_ON_EXIT_CODES_VALUES {
        errs.push(FieldError::too_many(
            vp.clone(),
            req.values.len(),
            MAX_ON_EXIT_CODES_VALUES,
        ));
    }
    let mut seen = BTreeSet::new();
    for (j, &v) in req.values.iter().enumerate() {
        if req.operator == "In" && v == 0 {
            errs.push(FieldError::invalid_num(
                vp.index(j),
                0,
                "must not be 0 for the In operator",
            ));
        }
        if !seen.insert(v) {
            errs.push(FieldError::duplicate_num(vp.index(j), v.into()));
        }
    }
    if req.values.windows(2).any(|w| w[0] > w[1]) {
        errs.push(FieldError::invalid_raw(
            vp,
            go_int32_slice(&req.values),
            "must be ordered",
        ));
    }
    errs
}

/// upstream `validatePodFailurePolicyRuleOnPodConditions`: at most 20 patterns, each a
/// qualified condition type and a status True, False or Unknown.
fn on_pod_conditions(
    patterns: &[PodFailurePolicyOnPodConditionsPattern],
    p: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if patterns.len() > MAX_ON_POD_CONDITIONS_PATTERNS {
        errs.push(FieldError::too_many(
            p.clone(),
            patterns.len(),
            MAX_ON_POD_CONDITIONS_PATTERNS,
        ));
    }
    for (j, pat) in patterns.iter().enumerate() {
        let pp = p.index(j);
        for m in names::is_qualified_name(&pat.type_) {
            errs.push(FieldError::invalid(pp.child("type"), &pat.type_, m));
        }
        let st = pp.child("status");
        match pat.status.as_str() {
            "" => errs.push(FieldError::required(
                st,
                valid_values(ON_POD_CONDITIONS_STATUSES),
            )),
            v if ON_POD_CONDITIONS_STATUSES.contains(&v) => {}
            v => errs.push(FieldError::not_supported(st, v, ON_POD_CONDITIONS_STATUSES)),
        }
    }
    errs
}

/// upstream `validateSuccessPolicy` (the Job is Indexed): 1 to 20 rules.
fn success_policy(s: &JobSpec, policy: &SuccessPolicy, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rules = p.child("rules");
    if policy.rules.is_empty() {
        errs.push(FieldError::required(
            rules.clone(),
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if policy.rules.len() > MAX_SUCCESS_POLICY_RULES {
        errs.push(FieldError::too_many(
            rules.clone(),
            policy.rules.len(),
            MAX_SUCCESS_POLICY_RULES,
        ));
    }
    for (i, rule) in policy.rules.iter().enumerate() {
        errs.extend(success_policy_rule(s, rule, &rules.index(i)));
    }
    errs
}

/// upstream `validateSuccessPolicyRule`: `succeededIndexes` and/or `succeededCount`; the
/// indexes an interval list below `completions` (at most 64 KiB); the count non-negative
/// and at most `completions` and the number of listed indexes. Without `completions`
/// (already an error for an Indexed Job) the bounds are not checked.
fn success_policy_rule(s: &JobSpec, rule: &SuccessPolicyRule, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if rule.succeeded_count.is_none() && rule.succeeded_indexes.is_none() {
        errs.push(FieldError::required(
            p.clone(),
            "at least one of succeededCount or succeededIndexes must be specified",
        ));
    }
    let Some(completions) = s.completions else {
        return errs;
    };
    // A bad list counts as zero indexes, as upstream.
    let mut total = 0;
    if let Some(ix) = &rule.succeeded_indexes {
        let ip = p.child("succeededIndexes");
        if ix.len() > MAX_SUCCEEDED_INDEXES_LEN {
            errs.push(FieldError::too_long(ip.clone(), MAX_SUCCEEDED_INDEXES_LEN));
        }
        match count_indexes(ix, completions) {
            Ok(n) => total = n,
            Err(e) => errs.push(FieldError::invalid(
                ip,
                ix,
                format!("error parsing succeededIndexes: {e}"),
            )),
        }
    }
    if let Some(n) = rule.succeeded_count {
        let cp = p.child("succeededCount");
        errs.extend(non_negative(Some(n.into()), cp.clone()));
        if n > completions {
            errs.push(FieldError::invalid_num(
                cp.clone(),
                n.into(),
                format!(
                    "must be less than or equal to {completions} (the number of specified completions)"
                ),
            ));
        }
        if rule.succeeded_indexes.is_some() && i64::from(n) > total {
            errs.push(FieldError::invalid_num(
                cp,
                n.into(),
                format!(
                    "must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)"
                ),
            ));
        }
    }
    errs
}

/// upstream `validateIndexesFormat`: how many indexes an interval list such as `0,2-4`
/// holds; intervals ascending and disjoint, every index below `completions`.
fn count_indexes(list: &str, completions: i32) -> Result<i64, String> {
    if list.is_empty() {
        return Ok(0);
    }
    let mut last: Option<i64> = None;
    let mut total = 0;
    for interval in list.split(',') {
        let (x, y) = index_interval(interval, completions)?;
        if let Some(l) = last.filter(|&l| l >= x) {
            return Err(format!("non-increasing order, previous: {l}, current: {x}"));
        }
        total += y - x + 1;
        last = Some(y);
    }
    Ok(total)
}

/// upstream `parseIndexInterval`: `x` or `x-y` with `x < y < completions`.
fn index_interval(interval: &str, completions: i32) -> Result<(i64, i64), String> {
    let limits: Vec<&str> = interval.split('-').collect();
    if limits.len() > 2 {
        return Err(format!(
            "the fragment {} violates the requirement that an index interval can have at most two parts separated by '-'",
            quote(interval)
        ));
    }
    let parse = |part: &str| -> Result<i64, String> {
        let v: i64 = part.parse().map_err(|_| {
            format!(
                "cannot convert string to integer for index: {}",
                quote(part)
            )
        })?;
        if v >= i64::from(completions) {
            return Err(format!("too large index: {}", quote(part)));
        }
        Ok(v)
    };
    let x = parse(limits[0])?;
    let Some(second) = limits.get(1) else {
        return Ok((x, x));
    };
    let y = parse(second)?;
    if x >= y {
        return Err(format!("non-increasing order, previous: {x}, current: {y}"));
    }
    Ok((x, y))
}

/// Job update, upstream `ValidateJobSpecUpdate`: selector, completionMode,
/// podFailurePolicy, backoffLimitPerIndex, managedBy and successPolicy are immutable
/// (maxFailedIndexes may change); the template is too unless the Job is suspended;
/// completions only changes for elastic Indexed jobs together with parallelism.
pub(crate) fn job_update(new: &Job, old: &Job) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    let (Some(n), Some(o)) = (&new.spec, &old.spec) else {
        return errs;
    };
    let sp = Path::new("spec");
    if o.selector.is_some() && n.selector != o.selector {
        errs.push(FieldError::invalid_raw(
            sp.child("selector"),
            "{...}",
            "field is immutable",
        ));
    }
    if n.completion_mode != o.completion_mode {
        errs.push(immutable(
            sp.child("completionMode"),
            n.completion_mode.as_deref().unwrap_or(""),
        ));
    }
    let elastic = is_indexed(n) && n.completions == n.parallelism;
    if n.completions != o.completions && !elastic {
        errs.push(FieldError::invalid_raw(
            sp.child("completions"),
            n.completions.map_or("null".into(), |c| c.to_string()),
            "field is immutable",
        ));
    }
    if n.template != o.template && o.suspend != Some(true) {
        errs.push(FieldError::invalid_raw(
            sp.child("template"),
            "{...}",
            "field is immutable",
        ));
    }
    // upstream `ValidateImmutableField` prints an unset pointer as "null" and a struct
    // with `%#v`, which we shorten to `{...}` as elsewhere.
    if n.pod_failure_policy != o.pod_failure_policy {
        errs.push(immutable_struct(
            sp.child("podFailurePolicy"),
            n.pod_failure_policy.is_some(),
        ));
    }
    if n.backoff_limit_per_index != o.backoff_limit_per_index {
        errs.push(match n.backoff_limit_per_index {
            Some(v) => FieldError::invalid_num(
                sp.child("backoffLimitPerIndex"),
                v.into(),
                "field is immutable",
            ),
            None => immutable(sp.child("backoffLimitPerIndex"), "null"),
        });
    }
    if n.managed_by != o.managed_by {
        errs.push(immutable(
            sp.child("managedBy"),
            n.managed_by.as_deref().unwrap_or("null"),
        ));
    }
    if n.success_policy != o.success_policy {
        errs.push(immutable_struct(
            sp.child("successPolicy"),
            n.success_policy.is_some(),
        ));
    }
    errs
}

/// `field is immutable` for an optional struct field.
fn immutable_struct(p: Path, set: bool) -> FieldError {
    if set {
        FieldError::invalid_raw(p, "{...}", "field is immutable")
    } else {
        immutable(p, "null")
    }
}

/// The longest CronJob name: its Jobs are named `<name>-<minutes since epoch>`, 11 more
/// characters, and a Job's name must stay a 63-character label (upstream
/// `ValidateCronJobCreate`).
const CRON_JOB_NAME_MAX: usize = 63 - 11;

/// CronJob (create), upstream `ValidateCronJobCreate`.
pub(crate) fn cron_job(c: &CronJob) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&c.metadata, true, meta::NameRule::Subdomain);
    match &c.spec {
        Some(s) => errs.extend(cron_job_spec(s, None)),
        None => errs.push(FieldError::required(Path::new("spec"), "")),
    }
    let name = c.metadata.name.as_deref().unwrap_or("");
    if name.len() > CRON_JOB_NAME_MAX {
        errs.push(FieldError::invalid(
            Path::new("metadata").child("name"),
            name,
            format!("must be no more than {CRON_JOB_NAME_MAX} characters"),
        ));
    }
    errs
}

/// CronJob update, upstream `ValidateCronJobUpdate`: the create rules but the name length
/// (older CronJobs may be longer), and a `TZ=` already in the schedule may stay.
pub(crate) fn cron_job_update(new: &CronJob, old: &CronJob) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if let Some(s) = &new.spec {
        errs.extend(cron_job_spec(s, old.spec.as_ref()));
    }
    errs
}

/// upstream `validateCronJobSpec`.
fn cron_job_spec(s: &CronJobSpec, old: Option<&CronJobSpec>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let sp = Path::new("spec");
    if s.schedule.is_empty() {
        errs.push(FieldError::required(sp.child("schedule"), ""));
    } else {
        let tz_allowed = old.is_some_and(|o| o.schedule.contains("TZ"));
        errs.extend(schedule_format(
            &s.schedule,
            tz_allowed,
            s.time_zone.is_some(),
            sp.child("schedule"),
        ));
    }
    errs.extend(non_negative(
        s.starting_deadline_seconds,
        sp.child("startingDeadlineSeconds"),
    ));
    if old.is_none_or(|o| o.time_zone != s.time_zone) {
        errs.extend(time_zone(s.time_zone.as_deref(), sp.child("timeZone")));
    }
    let cp = sp.child("concurrencyPolicy");
    match s.concurrency_policy.as_deref().unwrap_or("") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required(cp, "")),
        other => errs.push(FieldError::not_supported(
            cp,
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    // upstream `ValidateJobTemplateSpec`: the Job's selector is generated.
    let tp = sp.child("jobTemplate").child("spec");
    match &s.job_template.spec {
        Some(js) => {
            errs.extend(job_spec(js, &tp, None));
            if js.selector.is_some() {
                errs.push(FieldError::invalid_raw(
                    tp.child("selector"),
                    "{...}",
                    "`selector` will be auto-generated",
                ));
            }
            if js.manual_selector == Some(true) {
                errs.push(FieldError::not_supported(
                    tp.child("manualSelector"),
                    "true",
                    &["nil", "false"],
                ));
            }
        }
        None => errs.push(FieldError::required(tp, "")),
    }
    for (f, v) in [
        (
            "successfulJobsHistoryLimit",
            s.successful_jobs_history_limit,
        ),
        ("failedJobsHistoryLimit", s.failed_jobs_history_limit),
    ] {
        errs.extend(non_negative(v.map(i64::from), sp.child(f)));
    }
    errs
}

/// upstream `validateScheduleFormat`: the schedule parses, and carries no `TZ=` / `CRON_TZ=`
/// (use `timeZone`) unless it already did before an update.
fn schedule_format(
    schedule: &str,
    tz_allowed: bool,
    has_time_zone: bool,
    p: Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Err(e) = Schedule::parse(schedule) {
        errs.push(FieldError::invalid(p.clone(), schedule, e.to_string()));
    }
    let has_tz = schedule.contains("TZ");
    if tz_allowed && has_tz && has_time_zone {
        errs.push(FieldError::invalid(
            p,
            schedule,
            "cannot use both timeZone field and TZ or CRON_TZ in schedule",
        ));
    } else if !tz_allowed && has_tz {
        errs.push(FieldError::invalid(
            p,
            schedule,
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    }
    errs
}

/// upstream `validateTimeZone`: an IANA name (each `/`-separated part of 1 to 14 letters,
/// digits, `.`, `-`, `_` or `+`, not `.`, `..` or starting with `-`), not `Local`, that loads.
fn time_zone(tz: Option<&str>, p: Path) -> Vec<FieldError> {
    let Some(tz) = tz else {
        return Vec::new();
    };
    if tz.is_empty() {
        return vec![FieldError::invalid(
            p,
            tz,
            "timeZone must be nil or non-empty string",
        )];
    }
    let part_ok = |part: &str| {
        (1..=14).contains(&part.len())
            && part != "."
            && part != ".."
            && !part.starts_with('-')
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_+".contains(&b))
    };
    if !tz.split('/').all(part_ok) {
        return vec![FieldError::invalid(
            p,
            tz,
            format!("unknown time zone {tz}"),
        )];
    }
    let mut errs = Vec::new();
    if tz.eq_ignore_ascii_case("Local") {
        errs.push(FieldError::invalid(
            p.clone(),
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if let Err(e) = load_time_zone(tz) {
        errs.push(FieldError::invalid(p, tz, e.to_string()));
    }
    errs
}
