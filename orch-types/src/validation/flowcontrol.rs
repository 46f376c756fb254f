//! Validation of `flowcontrol.apiserver.k8s.io/v1` FlowSchema and PriorityLevelConfiguration
//! (upstream `pkg/apis/flowcontrol/validation/validation.go`): the essentials — names,
//! matching precedence, the referenced priority level, subjects and rules, exempt vs limited
//! levels and their queuing numbers, condition types.

use std::collections::BTreeSet;

use k8s_openapi::api::flowcontrol::v1::{
    FlowSchema, NonResourcePolicyRule, PolicyRulesWithSubjects, PriorityLevelConfiguration,
    ResourcePolicyRule, Subject,
};

use super::field::{FieldError, Path};
use super::meta;
use crate::names;

/// The largest `matchingPrecedence` (upstream `FlowSchemaMaxMatchingPrecedence`).
pub const MAX_MATCHING_PRECEDENCE: i32 = 10_000;
/// The most queues a level may have (upstream `priorityLevelConfigurationQueuingMaxQueues`).
const MAX_QUEUES: i32 = 10_000_000;
/// Upstream `shufflesharding.MaxHashBits`: a hand must be dealt from a 64-bit hash.
const MAX_HASH_BITS: f64 = 60.0;

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "proxy",
    "update",
    "watch",
];
const SUBJECT_KINDS: &[&str] = &["Group", "ServiceAccount", "User"];
const DISTINGUISHERS: &[&str] = &["ByNamespace", "ByUser"];
const LEVEL_TYPES: &[&str] = &["Exempt", "Limited"];
const LIMIT_RESPONSES: &[&str] = &["Queue", "Reject"];

/// Go's `%v` of a string slice, as upstream prints a list value: `[]string{"a", "b"}`.
fn list(v: &[String]) -> String {
    let quoted: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// FlowSchema (`ValidateFlowSchema`).
pub(crate) fn flow_schema(fs: &FlowSchema) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&fs.metadata, false, meta::NameRule::Subdomain);
    let sp = Path::new("spec");
    let name = fs.metadata.name.as_deref().unwrap_or("");
    let spec = fs.spec.clone().unwrap_or_default();
    let precedence = spec.matching_precedence.unwrap_or(0);
    let pp = sp.child("matchingPrecedence");
    let p64 = i64::from(precedence);
    if precedence <= 0 {
        errs.push(FieldError::invalid_num(
            &pp,
            p64,
            "must be a positive value",
        ));
    }
    if precedence > MAX_MATCHING_PRECEDENCE {
        errs.push(FieldError::invalid_num(
            &pp,
            p64,
            format!("must not be greater than {MAX_MATCHING_PRECEDENCE}"),
        ));
    }
    if precedence == 1 && name != "exempt" {
        errs.push(FieldError::invalid_num(
            &pp,
            p64,
            "only the schema named 'exempt' may have matchingPrecedence 1",
        ));
    }
    if let Some(d) = &spec.distinguisher_method {
        if !DISTINGUISHERS.contains(&d.type_.as_str()) {
            errs.push(FieldError::not_supported(
                sp.child("distinguisherMethod").child("type"),
                &d.type_,
                DISTINGUISHERS,
            ));
        }
    }
    let pl = &spec.priority_level_configuration.name;
    let plp = sp.child("priorityLevelConfiguration").child("name");
    if pl.is_empty() {
        errs.push(FieldError::required(
            &plp,
            "must reference a priority level",
        ));
    } else {
        for m in names::is_dns1123_subdomain(pl) {
            errs.push(FieldError::invalid(&plp, pl, m));
        }
    }
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        errs.extend(rules(rule, &sp.child("rules").index(i)));
    }
    let conditions = fs.status.as_ref().and_then(|s| s.conditions.as_ref());
    errs.extend(condition_types(
        conditions
            .into_iter()
            .flatten()
            .map(|c| c.type_.as_deref().unwrap_or("")),
    ));
    errs
}

fn rules(rule: &PolicyRulesWithSubjects, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if rule.subjects.is_empty() {
        errs.push(FieldError::required(
            p.child("subjects"),
            "subjects must contain at least one value",
        ));
    }
    for (i, s) in rule.subjects.iter().enumerate() {
        errs.extend(subject(s, &p.child("subjects").index(i)));
    }
    let resource = rule.resource_rules.as_deref().unwrap_or(&[]);
    let non_resource = rule.non_resource_rules.as_deref().unwrap_or(&[]);
    if resource.is_empty() && non_resource.is_empty() {
        errs.push(FieldError::required(
            p,
            "at least one of resourceRules and nonResourceRules has to be non-empty",
        ));
    }
    for (i, r) in resource.iter().enumerate() {
        errs.extend(resource_rule(r, &p.child("resourceRules").index(i)));
    }
    for (i, r) in non_resource.iter().enumerate() {
        errs.extend(non_resource_rule(r, &p.child("nonResourceRules").index(i)));
    }
    errs
}

fn subject(s: &Subject, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match s.kind.as_str() {
        "ServiceAccount" => {
            let sp = p.child("serviceAccount");
            match &s.service_account {
                None => errs.push(FieldError::required(
                    &sp,
                    "serviceAccount is required when subject kind is 'ServiceAccount'",
                )),
                Some(sa) => {
                    if sa.name.is_empty() {
                        errs.push(FieldError::required(sp.child("name"), ""));
                    } else if sa.name != "*" {
                        for m in names::is_dns1123_subdomain(&sa.name) {
                            errs.push(FieldError::invalid(sp.child("name"), &sa.name, m));
                        }
                    }
                    if sa.namespace.is_empty() {
                        errs.push(FieldError::required(
                            sp.child("namespace"),
                            "must specify namespace for service account",
                        ));
                    } else {
                        for m in names::is_dns1123_label(&sa.namespace) {
                            errs.push(FieldError::invalid(sp.child("namespace"), &sa.namespace, m));
                        }
                    }
                }
            }
        }
        "User" => named_subject(
            &mut errs,
            s.user.as_ref().map(|u| u.name.as_str()),
            p,
            "user",
        ),
        "Group" => named_subject(
            &mut errs,
            s.group.as_ref().map(|g| g.name.as_str()),
            p,
            "group",
        ),
        other => {
            errs.push(FieldError::not_supported(
                p.child("kind"),
                other,
                SUBJECT_KINDS,
            ));
            return errs;
        }
    }
    // The fields of the other kinds must be unset.
    for (set, field, kind) in [
        (
            s.service_account.is_some(),
            "serviceAccount",
            "ServiceAccount",
        ),
        (s.user.is_some(), "user", "User"),
        (s.group.is_some(), "group", "Group"),
    ] {
        if set && kind != s.kind {
            errs.push(FieldError::forbidden(
                p.child(field),
                format!("{field} is forbidden when subject kind is not '{kind}'"),
            ));
        }
    }
    errs
}

/// A `User` or `Group` subject: its `field` (`user`, `group`) is required, with a name.
fn named_subject(errs: &mut Vec<FieldError>, name: Option<&str>, p: &Path, field: &str) {
    let kind = if field == "user" { "User" } else { "Group" };
    match name {
        None => errs.push(FieldError::required(
            p.child(field),
            format!("{field} is required when subject kind is '{kind}'"),
        )),
        Some("") => errs.push(FieldError::required(p.child(field).child("name"), "")),
        Some(_) => {}
    }
}

/// A list of a rule that must not be empty (`required` says so) and may hold `*` only alone
/// (the message names the entries as `what`): verbs, API groups, resources.
fn star_alone(v: &[String], p: Path, required: &str, what: &str) -> Option<FieldError> {
    if v.is_empty() {
        Some(FieldError::required(p, required))
    } else if v.len() > 1 && v.iter().any(|x| x == "*") {
        Some(FieldError::invalid_raw(
            p,
            list(v),
            format!("if '*' is present, must not specify other {what}"),
        ))
    } else {
        None
    }
}

fn verbs(v: &[String], p: &Path) -> Option<FieldError> {
    let vp = p.child("verbs");
    let required = "verbs must contain at least one value";
    star_alone(v, vp.clone(), required, "verbs").or_else(|| {
        v.iter()
            .find(|x| *x != "*" && !VERBS.contains(&x.as_str()))
            .map(|bad| FieldError::not_supported(vp, bad, VERBS))
    })
}

fn resource_rule(r: &ResourcePolicyRule, p: &Path) -> Vec<FieldError> {
    let mut errs: Vec<FieldError> = verbs(&r.verbs, p).into_iter().collect();
    errs.extend(star_alone(
        &r.api_groups,
        p.child("apiGroups"),
        "resource rules must supply at least one api group",
        "api groups",
    ));
    errs.extend(star_alone(
        &r.resources,
        p.child("resources"),
        "resource rules must supply at least one resource",
        "resources",
    ));
    let namespaces = r.namespaces.as_deref().unwrap_or(&[]);
    if namespaces.is_empty() && !r.cluster_scope.unwrap_or(false) {
        errs.push(FieldError::required(
            p.child("namespaces"),
            "resource rules that are not cluster scoped must supply at least one namespace",
        ));
    } else if namespaces.iter().any(|x| x == "*") {
        if namespaces.len() > 1 {
            errs.push(FieldError::invalid_raw(
                p.child("namespaces"),
                list(namespaces),
                "if '*' is present, must not specify other namespaces",
            ));
        }
    } else {
        for (i, ns) in namespaces.iter().enumerate() {
            for m in names::is_dns1123_label(ns) {
                errs.push(FieldError::invalid(
                    p.child("namespaces").index(i),
                    ns,
                    format!("each member of this list must be '*' or a DNS-1123 label; {m}"),
                ));
            }
        }
    }
    errs
}

fn non_resource_rule(r: &NonResourcePolicyRule, p: &Path) -> Vec<FieldError> {
    let mut errs: Vec<FieldError> = verbs(&r.verbs, p).into_iter().collect();
    let up = p.child("nonResourceURLs");
    if r.non_resource_urls.is_empty() {
        errs.push(FieldError::required(
            up,
            "nonResourceURLs must contain at least one value",
        ));
    } else if r.non_resource_urls.iter().any(|u| u == "*") {
        if r.non_resource_urls.len() > 1 {
            errs.push(FieldError::invalid_raw(
                up,
                list(&r.non_resource_urls),
                "if '*' is present, must not specify other non-resource URLs",
            ));
        }
    } else {
        for (i, u) in r.non_resource_urls.iter().enumerate() {
            if let Some(m) = url_path_problem(u) {
                errs.push(FieldError::invalid(up.index(i), u, m));
            }
        }
    }
    errs
}

/// Upstream `ValidateNonResourceURLPath`: a path from the root, no blanks or double slashes,
/// `*` only as a last `/*` segment.
fn url_path_problem(u: &str) -> Option<&'static str> {
    if u.is_empty() {
        return Some("must not be empty");
    }
    if u == "/" {
        return None;
    }
    if !u.starts_with('/') {
        Some("must start with slash")
    } else if u.contains(' ') {
        Some("must not contain white-space")
    } else if u.contains("//") {
        Some("must not contain double slash")
    } else {
        let stars = u.matches('*').count();
        (stars > 1 || (stars == 1 && !u.ends_with("/*")))
            .then_some("wildcard can only do suffix matching")
    }
}

fn condition_types<'a>(types: impl Iterator<Item = &'a str>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, t) in types.enumerate() {
        let p = Path::new("status")
            .child("conditions")
            .index(i)
            .child("type");
        if !seen.insert(t) {
            errs.push(FieldError::duplicate(&p, t));
        }
        if t.is_empty() {
            errs.push(FieldError::required(&p, "must not be empty"));
        }
    }
    errs
}

/// PriorityLevelConfiguration (`ValidatePriorityLevelConfiguration`): `Exempt` if and only if
/// the name is `exempt`; a limited level's shares, percentages and queuing numbers.
pub(crate) fn priority_level(pl: &PriorityLevelConfiguration) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&pl.metadata, false, meta::NameRule::Subdomain);
    let name = pl.metadata.name.as_deref().unwrap_or("");
    let sp = Path::new("spec");
    let spec = pl.spec.clone().unwrap_or_default();
    if (name == "exempt") != (spec.type_ == "Exempt") {
        errs.push(FieldError::invalid(
            sp.child("type"),
            &spec.type_,
            "type must be 'Exempt' if and only if name is 'exempt'",
        ));
    }
    match spec.type_.as_str() {
        "Exempt" => {
            if spec.limited.is_some() {
                errs.push(FieldError::forbidden(
                    sp.child("limited"),
                    "must be nil if the type is not Limited",
                ));
            }
            if let Some(e) = &spec.exempt {
                let ep = sp.child("exempt");
                errs.extend(non_negative(e.nominal_concurrency_shares, &ep));
                errs.extend(percent(e.lendable_percent, &ep.child("lendablePercent")));
            }
        }
        "Limited" => {
            if spec.exempt.is_some() {
                errs.push(FieldError::forbidden(
                    sp.child("exempt"),
                    "must be nil if the type is Limited",
                ));
            }
            match &spec.limited {
                None => errs.push(FieldError::required(
                    sp.child("limited"),
                    "must not be empty when type is Limited",
                )),
                Some(l) => {
                    let lp = sp.child("limited");
                    errs.extend(non_negative(l.nominal_concurrency_shares, &lp));
                    errs.extend(percent(l.lendable_percent, &lp.child("lendablePercent")));
                    if let Some(b) = l.borrowing_limit_percent.filter(|b| *b < 0) {
                        errs.push(FieldError::invalid_num(
                            lp.child("borrowingLimitPercent"),
                            i64::from(b),
                            "if specified, must be a non-negative integer",
                        ));
                    }
                    errs.extend(limit_response(
                        l.limit_response.as_ref(),
                        &lp.child("limitResponse"),
                    ));
                }
            }
        }
        other => errs.push(FieldError::not_supported(
            sp.child("type"),
            other,
            LEVEL_TYPES,
        )),
    }
    let conditions = pl.status.as_ref().and_then(|s| s.conditions.as_ref());
    errs.extend(condition_types(
        conditions
            .into_iter()
            .flatten()
            .map(|c| c.type_.as_deref().unwrap_or("")),
    ));
    errs
}

fn non_negative(shares: Option<i32>, p: &Path) -> Option<FieldError> {
    shares.filter(|s| *s < 0).map(|s| {
        FieldError::invalid_num(
            p.child("nominalConcurrencyShares"),
            i64::from(s),
            "must be a non-negative integer",
        )
    })
}

fn percent(v: Option<i32>, p: &Path) -> Option<FieldError> {
    v.filter(|v| !(0..=100).contains(v))
        .map(|v| FieldError::invalid_num(p, i64::from(v), "must be between 0 and 100, inclusive"))
}

fn limit_response(
    lr: Option<&k8s_openapi::api::flowcontrol::v1::LimitResponse>,
    p: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(lr) = lr else {
        errs.push(FieldError::not_supported(
            p.child("type"),
            "",
            LIMIT_RESPONSES,
        ));
        return errs;
    };
    match lr.type_.as_str() {
        "Reject" => {
            if lr.queuing.is_some() {
                errs.push(FieldError::forbidden(
                    p.child("queuing"),
                    "must be nil if limited.limitResponse.type is not Limited",
                ));
            }
        }
        "Queue" => match &lr.queuing {
            None => errs.push(FieldError::required(
                p.child("queuing"),
                "must not be empty if limited.limitResponse.type is Limited",
            )),
            Some(q) => {
                let qp = p.child("queuing");
                let limit = q.queue_length_limit.unwrap_or(0);
                if limit <= 0 {
                    errs.push(FieldError::invalid_num(
                        qp.child("queueLengthLimit"),
                        i64::from(limit),
                        "must be positive",
                    ));
                }
                let queues = q.queues.unwrap_or(0);
                if queues <= 0 {
                    errs.push(FieldError::invalid_num(
                        qp.child("queues"),
                        i64::from(queues),
                        "must be positive",
                    ));
                } else if queues > MAX_QUEUES {
                    errs.push(FieldError::invalid_num(
                        qp.child("queues"),
                        i64::from(queues),
                        format!("must not be greater than {MAX_QUEUES}"),
                    ));
                }
                let hand = q.hand_size.unwrap_or(0);
                let hp = qp.child("handSize");
                if hand <= 0 {
                    errs.push(FieldError::invalid_num(
                        hp,
                        i64::from(hand),
                        "must be positive",
                    ));
                } else if hand > queues {
                    errs.push(FieldError::invalid_num(
                        hp,
                        i64::from(hand),
                        format!("should not be greater than queues ({queues})"),
                    ));
                } else if f64::from(hand) * f64::from(queues).log2() > MAX_HASH_BITS {
                    // Upstream `shufflesharding.RequiredEntropyBits`: ceil(log2(deck) * hand).
                    errs.push(FieldError::invalid_num(
                        hp,
                        i64::from(hand),
                        format!(
                            "required entropy bits of deckSize {queues} and handSize {hand} should not be greater than {MAX_HASH_BITS}"
                        ),
                    ));
                }
            }
        },
        other => errs.push(FieldError::not_supported(
            p.child("type"),
            other,
            LIMIT_RESPONSES,
        )),
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(subject: serde_json::Value) -> Vec<String> {
        let s: Subject = serde_json::from_value(subject).expect("a Subject");
        super::subject(&s, &Path::new("subjects[0]"))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn subjects_need_their_kinds_field_and_no_other() {
        for (subject, want) in [
            (serde_json::json!({"kind": "User", "user": {"name": "jane"}}), vec![]),
            (serde_json::json!({"kind": "Group", "group": {"name": "ops"}}), vec![]),
            (
                serde_json::json!({"kind": "User"}),
                vec!["subjects[0].user: Required value: user is required when subject kind is 'User'"],
            ),
            (
                serde_json::json!({"kind": "Group", "group": {"name": ""}}),
                vec!["subjects[0].group.name: Required value"],
            ),
            (
                serde_json::json!({"kind": "Group", "group": {"name": "ops"}, "user": {"name": "j"},
                    "serviceAccount": {"name": "a", "namespace": "b"}}),
                vec![
                    "subjects[0].serviceAccount: Forbidden: serviceAccount is forbidden when subject kind is not 'ServiceAccount'",
                    "subjects[0].user: Forbidden: user is forbidden when subject kind is not 'User'",
                ],
            ),
            (
                serde_json::json!({"kind": "ServiceAccount",
                    "serviceAccount": {"name": "a", "namespace": "b"}, "group": {"name": "g"}}),
                vec!["subjects[0].group: Forbidden: group is forbidden when subject kind is not 'Group'"],
            ),
            (
                serde_json::json!({"kind": "Robot", "user": {"name": "j"}}),
                vec!["subjects[0].kind: Unsupported value: \"Robot\": supported values: \"Group\", \"ServiceAccount\", \"User\""],
            ),
        ] {
            assert_eq!(errors(subject.clone()), want, "{subject}");
        }
    }

    #[test]
    fn rule_lists_are_required_and_hold_a_star_only_alone() {
        let rule = |v: serde_json::Value| -> Vec<String> {
            let r: ResourcePolicyRule = serde_json::from_value(v).expect("a rule");
            resource_rule(&r, &Path::new("r"))
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let ok = serde_json::json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
            "clusterScope": true});
        assert_eq!(rule(ok), Vec::<String>::new());
        let bad = serde_json::json!({"verbs": ["get", "*"], "apiGroups": [],
            "resources": ["pods", "*"], "clusterScope": true});
        assert_eq!(
            rule(bad),
            [
                r#"r.verbs: Invalid value: []string{"get", "*"}: if '*' is present, must not specify other verbs"#,
                "r.apiGroups: Required value: resource rules must supply at least one api group",
                r#"r.resources: Invalid value: []string{"pods", "*"}: if '*' is present, must not specify other resources"#,
            ]
        );
        let unknown = serde_json::json!({"verbs": ["get", "fly"], "apiGroups": [""],
            "resources": ["pods"], "clusterScope": true});
        assert_eq!(
            rule(unknown),
            [
                r#"r.verbs: Unsupported value: "fly": supported values: "create", "delete", "deletecollection", "get", "list", "patch", "proxy", "update", "watch""#
            ]
        );
    }
}
