//! Builders for the unit tests of this crate.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use std::collections::BTreeMap;

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn template(l: &[(&str, &str)], image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(l)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

pub fn replica_set(name: &str, replicas: i32, l: &[(&str, &str)]) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            generation: Some(1),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(l)),
                ..Default::default()
            },
            template: Some(template(l, "nginx:1")),
            min_ready_seconds: None,
        }),
        status: None,
    }
}

pub fn pod(name: &str, l: &[(&str, &str)], owner: Option<(&str, &str, &str)>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("1".into()),
            labels: Some(labels(l)),
            creation_timestamp: Some(Time(Timestamp::UNIX_EPOCH)),
            owner_references: owner.map(|(kind, n, u)| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: kind.into(),
                    name: n.into(),
                    uid: u.into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        }),
    }
}

pub fn make_ready(p: &mut Pod, node: &str, since: Timestamp) {
    p.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
    let st = p.status.get_or_insert_with(Default::default);
    st.phase = Some("Running".into());
    st.conditions = Some(vec![PodCondition {
        type_: "Ready".into(),
        status: "True".into(),
        last_transition_time: Some(Time(since)),
        ..Default::default()
    }]);
}

/// The EndpointSlices written by `actions` (creates and updates), as the server stores them.
pub fn written_slices(
    actions: &[orch_runtime::action::Action],
) -> Vec<std::sync::Arc<k8s_openapi::api::discovery::v1::EndpointSlice>> {
    use orch_runtime::action::Action;
    actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateOrUpdate { object, .. } | Action::Update { object, .. } => {
                object.to_typed().ok().map(std::sync::Arc::new)
            }
            _ => None,
        })
        .collect()
}
