//! Validation of admissionregistration.k8s.io/v1 webhook configurations (upstream
//! `pkg/apis/admissionregistration/validation/validation.go`, create rules of v1).
//!
//! One difference: `admissionReviewVersions` must include `v1` (upstream accepts `v1beta1`
//! alone too), as orch only speaks AdmissionReview v1.

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhookConfiguration, RuleWithOperations,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::field::{FieldError, Path};
use super::meta;
use crate::names;

/// The variables a `matchConditions` expression may use (upstream also declares
/// `authorizer`, which orch does not provide).
pub const MATCH_CONDITION_VARIABLES: &[&str] = &["object", "oldObject", "request"];

/// Most `matchConditions` of one webhook (upstream `maxMatchConditions`).
const MAX_MATCH_CONDITIONS: usize = 64;

/// The fields both webhook kinds share.
struct Hook<'a> {
    name: &'a str,
    client_config: &'a WebhookClientConfig,
    rules: Option<&'a Vec<RuleWithOperations>>,
    failure_policy: Option<&'a str>,
    match_policy: Option<&'a str>,
    namespace_selector: Option<&'a LabelSelector>,
    object_selector: Option<&'a LabelSelector>,
    side_effects: &'a str,
    timeout_seconds: Option<i32>,
    admission_review_versions: &'a [String],
    match_conditions: Option<&'a Vec<MatchCondition>>,
}

/// MutatingWebhookConfiguration.
pub(crate) fn mutating(c: &MutatingWebhookConfiguration) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&c.metadata, false, meta::NameRule::Subdomain);
    let mut seen = BTreeSet::new();
    for (i, w) in c.webhooks.iter().flatten().enumerate() {
        let p = Path::new("webhooks").index(i);
        if !seen.insert(w.name.as_str()) {
            errs.push(FieldError::duplicate(p.child("name"), &w.name));
        }
        errs.extend(hook(
            &Hook {
                name: &w.name,
                client_config: &w.client_config,
                rules: w.rules.as_ref(),
                failure_policy: w.failure_policy.as_deref(),
                match_policy: w.match_policy.as_deref(),
                namespace_selector: w.namespace_selector.as_ref(),
                object_selector: w.object_selector.as_ref(),
                side_effects: &w.side_effects,
                timeout_seconds: w.timeout_seconds,
                admission_review_versions: &w.admission_review_versions,
                match_conditions: w.match_conditions.as_ref(),
            },
            &p,
        ));
        if let Some(r) = w.reinvocation_policy.as_deref() {
            if !["Never", "IfNeeded"].contains(&r) {
                errs.push(FieldError::not_supported(
                    p.child("reinvocationPolicy"),
                    r,
                    &["IfNeeded", "Never"],
                ));
            }
        }
    }
    errs
}

/// ValidatingWebhookConfiguration.
pub(crate) fn validating(c: &ValidatingWebhookConfiguration) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&c.metadata, false, meta::NameRule::Subdomain);
    let mut seen = BTreeSet::new();
    for (i, w) in c.webhooks.iter().flatten().enumerate() {
        let p = Path::new("webhooks").index(i);
        if !seen.insert(w.name.as_str()) {
            errs.push(FieldError::duplicate(p.child("name"), &w.name));
        }
        errs.extend(hook(
            &Hook {
                name: &w.name,
                client_config: &w.client_config,
                rules: w.rules.as_ref(),
                failure_policy: w.failure_policy.as_deref(),
                match_policy: w.match_policy.as_deref(),
                namespace_selector: w.namespace_selector.as_ref(),
                object_selector: w.object_selector.as_ref(),
                side_effects: &w.side_effects,
                timeout_seconds: w.timeout_seconds,
                admission_review_versions: &w.admission_review_versions,
                match_conditions: w.match_conditions.as_ref(),
            },
            &p,
        ));
    }
    errs
}

/// Go's `%v` of a `[]string` as `field.Invalid` prints it.
fn go_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

fn hook(h: &Hook<'_>, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    errs.extend(fully_qualified_name(h.name, &p.child("name")));
    for (i, r) in h.rules.into_iter().flatten().enumerate() {
        errs.extend(rule(r, &p.child("rules").index(i)));
    }
    if let Some(f) = h.failure_policy {
        if !["Ignore", "Fail"].contains(&f) {
            errs.push(FieldError::not_supported(
                p.child("failurePolicy"),
                f,
                &["Fail", "Ignore"],
            ));
        }
    }
    if let Some(m) = h.match_policy {
        if !["Exact", "Equivalent"].contains(&m) {
            errs.push(FieldError::not_supported(
                p.child("matchPolicy"),
                m,
                &["Equivalent", "Exact"],
            ));
        }
    }
    match h.side_effects {
        "" => errs.push(FieldError::required(
            p.child("sideEffects"),
            "must specify one of None, NoneOnDryRun",
        )),
        "None" | "NoneOnDryRun" => {}
        other => errs.push(FieldError::not_supported(
            p.child("sideEffects"),
            other,
            &["None", "NoneOnDryRun"],
        )),
    }
    if let Some(t) = h.timeout_seconds {
        if !(1..=30).contains(&t) {
            errs.push(FieldError::invalid_num(
                p.child("timeoutSeconds"),
                i64::from(t),
                "the timeout value must be between 1 and 30 seconds",
            ));
        }
    }
    errs.extend(review_versions(
        h.admission_review_versions,
        &p.child("admissionReviewVersions"),
    ));
    if let Some(s) = h.namespace_selector {
        errs.extend(meta::label_selector(s, &p.child("namespaceSelector")));
    }
    if let Some(s) = h.object_selector {
        errs.extend(meta::label_selector(s, &p.child("objectSelector")));
    }
    errs.extend(client_config(h.client_config, &p.child("clientConfig")));
    if let Some(conds) = h.match_conditions {
        errs.extend(match_conditions(conds, &p.child("matchConditions")));
    }
    errs
}

/// Upstream `IsFullyQualifiedName`.
fn fully_qualified_name(name: &str, p: &Path) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError::required(p, "")];
    }
    let mut errs: Vec<FieldError> = names::is_dns1123_subdomain(name)
        .into_iter()
        .map(|m| FieldError::invalid(p, name, m))
        .collect();
    if name.split('.').count() < 3 {
        errs.push(FieldError::invalid(
            p,
            name,
            "should be a domain with at least three segments separated by dots",
        ));
    }
    errs
}

/// Upstream `validateRuleWithOperations` and `validateRule`.
fn rule(r: &RuleWithOperations, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ops = r.operations.as_deref().unwrap_or_default();
    if ops.is_empty() {
        errs.push(FieldError::required(p.child("operations"), ""));
    }
    if ops.len() > 1 && ops.iter().any(|o| o == "*") {
        errs.push(FieldError::invalid_raw(
            p.child("operations"),
            go_list(ops),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, o) in ops.iter().enumerate() {
        if !["*", "CREATE", "UPDATE", "DELETE", "CONNECT"].contains(&o.as_str()) {
            errs.push(FieldError::not_supported(
                p.child("operations").index(i),
                o,
                &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"],
            ));
        }
    }
    let groups = r.api_groups.as_deref().unwrap_or_default();
    if groups.is_empty() {
        errs.push(FieldError::required(p.child("apiGroups"), ""));
    }
    if groups.len() > 1 && groups.iter().any(|g| g == "*") {
        errs.push(FieldError::invalid_raw(
            p.child("apiGroups"),
            go_list(groups),
            "if '*' is present, must not specify other API groups",
        ));
    }
    let versions = r.api_versions.as_deref().unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required(p.child("apiVersions"), ""));
    }
    if versions.len() > 1 && versions.iter().any(|v| v == "*") {
        errs.push(FieldError::invalid_raw(
            p.child("apiVersions"),
            go_list(versions),
            "if '*' is present, must not specify other API versions",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.is_empty() {
            errs.push(FieldError::required(p.child("apiVersions").index(i), ""));
        }
    }
    errs.extend(resources(
        r.resources.as_deref().unwrap_or_default(),
        &p.child("resources"),
    ));
    if let Some(s) = r.scope.as_deref() {
        if !["*", "Cluster", "Namespaced"].contains(&s) {
            errs.push(FieldError::not_supported(
                p.child("scope"),
                s,
                &["*", "Cluster", "Namespaced"],
            ));
        }
    }
    errs
}

/// Upstream `validateResources`.
fn resources(list: &[String], p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if list.is_empty() {
        errs.push(FieldError::required(p, ""));
    }
    let mut res_wild_sub = BTreeSet::new();
    let mut sub_wild_res = BTreeSet::new();
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, rs) in list.iter().enumerate() {
        if rs.is_empty() {
            errs.push(FieldError::required(p.index(i), ""));
            continue;
        }
        double |= rs == "*/*";
        single |= rs == "*";
        let Some((res, sub)) = rs.split_once('/') else {
            plain = rs != "*";
            continue;
        };
        if res_wild_sub.contains(res) {
            errs.push(FieldError::invalid(
                p.index(i),
                rs,
                format!("if '{res}/*' is present, must not specify {rs}"),
            ));
        }
        if sub_wild_res.contains(sub) {
            errs.push(FieldError::invalid(
                p.index(i),
                rs,
                format!("if '*/{sub}' is present, must not specify {rs}"),
            ));
        }
        if sub == "*" {
            res_wild_sub.insert(res);
        }
        if res == "*" {
            sub_wild_res.insert(sub);
        }
    }
    if list.len() > 1 && double {
        errs.push(FieldError::invalid_raw(
            p,
            go_list(list),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if single && plain {
        errs.push(FieldError::invalid_raw(
            p,
            go_list(list),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
    errs
}

/// Upstream `validateAdmissionReviewVersions`, requiring `v1`.
fn review_versions(versions: &[String], p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if versions.is_empty() {
        return vec![FieldError::required(p, "must specify one of v1")];
    }
    let mut seen = BTreeSet::new();
    for (i, v) in versions.iter().enumerate() {
        if !seen.insert(v.as_str()) {
            errs.push(FieldError::duplicate(p.index(i), v));
        }
        for m in names::is_dns1035_label(v) {
            errs.push(FieldError::invalid(p.index(i), v, m));
        }
    }
    if !versions.iter().any(|v| v == "v1") {
        errs.push(FieldError::invalid_raw(
            p,
            go_list(versions),
            "must include at least one of v1",
        ));
    }
    errs
}

/// Upstream `ValidateWebhookClientConfig` (`url` xor `service`; `ValidateWebhookURL` with
/// https forced; `ValidateWebhookService`).
fn client_config(cc: &WebhookClientConfig, p: &Path) -> Vec<FieldError> {
    match (&cc.url, &cc.service) {
        (Some(url), None) => webhook_url(url, &p.child("url")),
        (None, Some(s)) => {
            let sp = p.child("service");
            let mut errs = Vec::new();
            if s.name.is_empty() {
                errs.push(FieldError::required(
                    sp.child("name"),
                    "service name is required",
                ));
            }
            if s.namespace.is_empty() {
                errs.push(FieldError::required(
                    sp.child("namespace"),
                    "service namespace is required",
                ));
            }
            let port = s.port.unwrap_or(443);
            let bad = names::is_valid_port_num(port);
            if !bad.is_empty() {
                errs.push(FieldError::invalid_num(
                    sp.child("port"),
                    i64::from(port),
                    format!("port is not valid: {}", bad.join(", ")),
                ));
            }
            if let Some(path) = s.path.as_deref().filter(|x| !x.is_empty() && *x != "/") {
                errs.extend(service_path(path, &sp.child("path")));
            }
            errs
        }
        _ => vec![FieldError::required(
            p,
            "exactly one of url or service is required",
        )],
    }
}

fn service_path(path: &str, p: &Path) -> Vec<FieldError> {
    if path == "//" {
        return vec![FieldError::invalid(p, path, "segment[0] may not be empty")];
    }
    if !path.starts_with('/') {
        return vec![FieldError::invalid(p, path, "must start with a '/'")];
    }
    let trimmed = path.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let mut errs = Vec::new();
    for (i, seg) in trimmed.split('/').enumerate() {
        if seg.is_empty() {
            errs.push(FieldError::invalid(
                p,
                path,
                format!("segment[{i}] may not be empty"),
            ));
            continue;
        }
        for m in names::is_dns1123_subdomain(seg) {
            errs.push(FieldError::invalid(p, path, format!("segment[{i}]: {m}")));
        }
    }
    errs
}

/// Upstream `ValidateWebhookURL(…, forceHttps = true)`.
fn webhook_url(url: &str, p: &Path) -> Vec<FieldError> {
    const FORM: &str = "; desired format: https://host[/path]";
    let mut errs = Vec::new();
    let Some((scheme, rest)) = url.split_once("://") else {
        return vec![FieldError::required(
            p,
            format!("url must be a valid URL: missing scheme{FORM}"),
        )];
    };
    if scheme != "https" {
        errs.push(FieldError::invalid(
            p,
            scheme,
            format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, f),
        None => (rest, ""),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, q),
        None => (rest, ""),
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.rsplit_once('@') {
        Some((user, host)) => {
            errs.push(FieldError::invalid(
                p,
                user,
                "user information is not permitted in the URL",
            ));
            host
        }
        None => authority,
    };
    if host.is_empty() {
        errs.push(FieldError::invalid(
            p,
            host,
            format!("host must be specified{FORM}"),
        ));
    }
    if !fragment.is_empty() {
        errs.push(FieldError::invalid(
            p,
            fragment,
            "fragments are not permitted in the URL",
        ));
    }
    if !query.is_empty() {
        errs.push(FieldError::invalid(
            p,
            query,
            "query parameters are not permitted in the URL",
        ));
    }
    errs
}

/// Upstream `validateMatchConditions`: unique qualified names, expressions that compile on
/// the CEL engine of [`crate::crd`] with [`MATCH_CONDITION_VARIABLES`].
fn match_conditions(conds: &[MatchCondition], p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if conds.len() > MAX_MATCH_CONDITIONS {
        errs.push(FieldError::too_many(p, conds.len(), MAX_MATCH_CONDITIONS));
    }
    let mut seen = BTreeSet::new();
    for (i, c) in conds.iter().enumerate() {
        let cp = p.index(i);
        if c.name.is_empty() {
            errs.push(FieldError::required(cp.child("name"), ""));
        } else {
            for m in names::is_qualified_name(&c.name) {
                errs.push(FieldError::invalid(cp.child("name"), &c.name, m));
            }
            if !seen.insert(c.name.as_str()) {
                errs.push(FieldError::duplicate(cp.child("name"), &c.name));
            }
        }
        if c.expression.trim().is_empty() {
            errs.push(FieldError::required(cp.child("expression"), ""));
            continue;
        }
        if let Err(e) = compile_match_condition(&c.expression) {
            errs.push(FieldError::invalid(
                cp.child("expression"),
                &c.expression,
                e,
            ));
        }
    }
    errs
}

/// Compiles a `matchConditions` expression as the API server evaluates it; `authorizer` gets
/// a message saying orch does not provide it.
pub fn compile_match_condition(src: &str) -> Result<crate::crd::Expression, String> {
    crate::crd::Expression::compile(src, MATCH_CONDITION_VARIABLES).map_err(|e| {
        if e.ends_with("'authorizer'") {
            format!("{e} (the authorizer variable is not supported by orch)")
        } else {
            e
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::DynamicObject;

    fn errors(v: serde_json::Value) -> Vec<String> {
        let obj: DynamicObject = serde_json::from_value(v).unwrap();
        crate::validation::validate(&obj)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn config(hook: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "c"},
            "webhooks": [hook],
        })
    }

    #[test]
    fn a_valid_webhook_passes() {
        let errs = errors(config(serde_json::json!({
            "name": "deny.example.com",
            "clientConfig": {"url": "https://127.0.0.1:8443/validate"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods", "pods/status"]}],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "matchConditions": [{"name": "not-kube", "expression": "object.metadata.name != 'kube'"}],
        })));
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn bad_fields_are_reported_as_upstream() {
        let errs = errors(config(serde_json::json!({
            "name": "deny",
            "clientConfig": {"url": "http://x/validate?a=b"},
            "rules": [{"operations": ["*", "CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["*", "pods"], "scope": "Everywhere"}],
            "sideEffects": "Some",
            "timeoutSeconds": 31,
            "failurePolicy": "Maybe",
            "admissionReviewVersions": ["v1beta1"],
            "matchConditions": [{"name": "c", "expression": "authorizer.group('') == 1"},
                                {"name": "c", "expression": "object.x +"}],
        })));
        let want = [
            r#"webhooks[0].name: Invalid value: "deny": should be a domain with at least three segments separated by dots"#,
            r#"webhooks[0].rules[0].operations: Invalid value: []string{"*", "CREATE"}: if '*' is present, must not specify other operations"#,
            r#"webhooks[0].rules[0].resources: Invalid value: []string{"*", "pods"}: if '*' is present, must not specify other resources without subresources"#,
            r#"webhooks[0].rules[0].scope: Unsupported value: "Everywhere": supported values: "*", "Cluster", "Namespaced""#,
            r#"webhooks[0].failurePolicy: Unsupported value: "Maybe": supported values: "Fail", "Ignore""#,
            r#"webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun""#,
            r#"webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds"#,
            r#"webhooks[0].admissionReviewVersions: Invalid value: []string{"v1beta1"}: must include at least one of v1"#,
            r#"webhooks[0].clientConfig.url: Invalid value: "http": 'https' is the only allowed URL scheme; desired format: https://host[/path]"#,
            r#"webhooks[0].clientConfig.url: Invalid value: "a=b": query parameters are not permitted in the URL"#,
        ];
        for w in want {
            assert!(errs.iter().any(|e| e == w), "missing {w}\nin {errs:#?}");
        }
        assert!(errs.iter().any(
            |e| e.starts_with("webhooks[0].matchConditions[0].expression")
                && e.contains("authorizer variable is not supported")
        ));
        assert!(errs
            .iter()
            .any(|e| e.starts_with("webhooks[0].matchConditions[1].name: Duplicate value")));
        assert!(errs.iter().any(
            |e| e.starts_with("webhooks[0].matchConditions[1].expression")
                && e.contains("compilation failed")
        ));
    }

    #[test]
    fn url_xor_service() {
        let errs = errors(config(serde_json::json!({
            "name": "a.b.c",
            "clientConfig": {},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        })));
        assert_eq!(
            errs,
            ["webhooks[0].clientConfig: Required value: exactly one of url or service is required"]
        );
    }

    #[test]
    fn defaults_fill_the_policies() {
        let mut obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "c"},
            "webhooks": [{"name": "a.b.c", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                          "clientConfig": {"service": {"name": "s", "namespace": "n"}},
                          "rules": [{"operations": ["CREATE"], "apiGroups": [""],
                                     "apiVersions": ["v1"], "resources": ["pods"]}]}],
        }))
        .unwrap();
        crate::defaults::apply_defaults(&mut obj).unwrap();
        let w = &obj.data["webhooks"][0];
        assert_eq!(w["failurePolicy"], "Fail");
        assert_eq!(w["matchPolicy"], "Equivalent");
        assert_eq!(w["timeoutSeconds"], 10);
        assert_eq!(w["reinvocationPolicy"], "Never");
        assert_eq!(w["namespaceSelector"], serde_json::json!({}));
        assert_eq!(w["rules"][0]["scope"], "*");
        assert_eq!(w["clientConfig"]["service"]["port"], 443);
    }
}
