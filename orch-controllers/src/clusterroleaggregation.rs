//! The ClusterRole aggregation controller, after upstream
//! `pkg/controller/clusterroleaggregation/clusterroleaggregation_controller.go`: a ClusterRole
//! with an `aggregationRule` gets as `rules` those of every other ClusterRole one of its
//! selectors matches, selector by selector, the matching roles by name, each rule once (the
//! first time it is seen). That is how `admin`, `edit` and `view` get their rules from the
//! `system:aggregate-to-*` roles and from any role labelled
//! `rbac.authorization.k8s.io/aggregate-to-view: "true"`.
//!
//! Any ClusterRole change queues every aggregated role, as upstream does (the set is small and
//! which roles a change feeds is only known by evaluating the selectors). Upstream writes with
//! a forced server-side apply of `rules` and falls back to an update; orch updates.

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use orch_runtime::action::Action;
use orch_runtime::controller::{Caches, Controller, Watches};
use orch_types::labels::Selector;
use std::sync::Arc;

/// The controller's declaration. Keys are names of ClusterRoles with an `aggregationRule`.
#[derive(Debug, Default)]
pub struct ClusterRoleAggregationController;

/// The rules `role` aggregates from `all` (every ClusterRole), or `None` when it has no
/// `aggregationRule` or a selector does not parse (validation refuses such selectors).
pub fn aggregated_rules(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Option<Vec<PolicyRule>> {
    let rule = role.aggregation_rule.as_ref()?;
    let mut sorted: Vec<&ClusterRole> = all.iter().map(|r| r.as_ref()).collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out: Vec<PolicyRule> = Vec::new();
    for sel in rule.cluster_role_selectors.iter().flatten() {
        let sel = Selector::from_optional(Some(sel)).ok()?;
        for other in &sorted {
            if other.metadata.name == role.metadata.name
                || !sel.matches_opt(other.metadata.labels.as_ref())
            {
                continue;
            }
            for r in other.rules.iter().flatten() {
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
    }
    Some(out)
}

/// What aggregating `role` changes: an update of its rules when they differ from
/// [`aggregated_rules`].
pub fn reconcile(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Vec<Action> {
    let Some(rules) = aggregated_rules(role, all) else {
        return Vec::new();
    };
    if role.rules.as_deref().unwrap_or_default() == rules.as_slice() {
        return Vec::new();
    }
    let mut updated = role.clone();
    updated.rules = Some(rules);
    vec![Action::update(&updated)]
}

impl Controller for ClusterRoleAggregationController {
    fn name(&self) -> &'static str {
        "clusterrole-aggregation"
    }

    fn component(&self) -> &'static str {
        "clusterrole-aggregation-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<ClusterRole>(Arc::new(|_, caches, keys| {
            for r in caches.get::<ClusterRole>().list() {
                if r.aggregation_rule.is_some() {
                    keys.extend(r.metadata.name.clone());
                }
            }
        }));
    }

    fn sync(&self, key: &str, caches: &Caches, _now: Timestamp) -> Vec<Action> {
        let store = caches.get::<ClusterRole>();
        let Some(role) = store.get(key) else {
            return Vec::new();
        };
        reconcile(&role, &store.list())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn rule(verb: &str, resource: &str) -> PolicyRule {
        PolicyRule {
            verbs: vec![verb.into()],
            api_groups: Some(vec![String::new()]),
            resources: Some(vec![resource.into()]),
            ..Default::default()
        }
    }

    fn role(name: &str, labels: &[&str], rules: Vec<PolicyRule>) -> Arc<ClusterRole> {
        Arc::new(ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|l| (l.to_string(), "true".into()))
                        .collect(),
                ),
                ..Default::default()
            },
            rules: Some(rules),
            aggregation_rule: None,
        })
    }

    fn aggregating(name: &str, selects: &[&str], own: &[&str]) -> Arc<ClusterRole> {
        let mut r = (*role(name, own, Vec::new())).clone();
        r.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(
                selects
                    .iter()
                    .map(|l| LabelSelector {
                        match_labels: Some([(l.to_string(), "true".into())].into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
        });
        Arc::new(r)
    }

    #[test]
    fn rules_come_by_selector_then_name_each_once() {
        let view = aggregating("view", &["to-view", "extra"], &[]);
        let all = vec![
            view.clone(),
            role(
                "z",
                &["to-view"],
                vec![rule("get", "pods"), rule("list", "pods")],
            ),
            role("a", &["to-view"], vec![rule("get", "secrets")]),
            role("b", &["extra", "to-view"], vec![rule("get", "pods")]),
            role("c", &["extra"], vec![rule("watch", "pods")]),
            role("unrelated", &[], vec![rule("*", "*")]),
        ];
        let got = aggregated_rules(&view, &all).unwrap();
        assert_eq!(
            got,
            [
                rule("get", "secrets"),
                rule("get", "pods"),
                rule("list", "pods"),
                rule("watch", "pods")
            ]
        );
    }

    #[test]
    fn a_role_is_updated_only_when_its_rules_differ_and_never_feeds_itself() {
        let edit = aggregating("edit", &["to-edit"], &["to-edit"]);
        let all = vec![
            edit.clone(),
            role("x", &["to-edit"], vec![rule("get", "pods")]),
        ];
        match &reconcile(&edit, &all)[..] {
            [Action::Update { object, .. }] => {
                assert_eq!(object.data["rules"][0]["resources"][0], "pods");
                assert_eq!(object.data["rules"].as_array().map(Vec::len), Some(1));
            }
            other => panic!("{other:?}"),
        }
        let mut done = (*edit).clone();
        done.rules = Some(vec![rule("get", "pods")]);
        assert!(reconcile(&done, &all).is_empty());
        assert!(reconcile(&all[1], &all).is_empty());
    }

    #[test]
    fn an_empty_aggregation_is_written_as_no_rules() {
        let mut admin = (*aggregating("admin", &["to-admin"], &[])).clone();
        admin.rules = Some(vec![rule("get", "stale")]);
        let out = reconcile(&admin, &[]);
        match &out[..] {
            [Action::Update { object, .. }] => {
                assert_eq!(object.data["rules"], serde_json::json!([]))
            }
            other => panic!("{other:?}"),
        }
    }
}
