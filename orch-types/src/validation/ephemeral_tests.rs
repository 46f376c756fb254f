//! Ephemeral containers: the pod-spec rules (upstream `validateEphemeralContainers`), the
//! `ephemeralcontainers` subresource's update rules (`ValidatePodEphemeralContainersUpdate`),
//! and what the pod's own create and update rules say about them (`ValidatePodCreate`,
//! `ValidatePodUpdate`), with upstream's messages.

use serde_json::{json, Value};

use super::{validate, validate_ephemeral_containers_update, validate_update};
use crate::DynamicObject;

fn pod(ephemeral: Value) -> DynamicObject {
    let mut o: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "resourceVersion": "7"},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}],
                 "initContainers": [{"name": "setup", "image": "busybox"}],
                 "volumes": [{"name": "data", "emptyDir": {}}],
                 "ephemeralContainers": ephemeral}
    }))
    .unwrap();
    // What admission does before validation.
    crate::defaults::apply_defaults(&mut o).unwrap();
    o
}

fn dbg(extra: Value) -> Value {
    let mut base = json!({"name": "dbg", "image": "busybox", "command": ["sh"]});
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

/// The errors of a write through the subresource from `old` to `new`, as text.
fn through_subresource(old: Value, new: Value) -> Vec<String> {
    validate_ephemeral_containers_update(&pod(new), &pod(old))
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn ephemeral_containers_can_be_added() {
    assert_eq!(
        through_subresource(json!([]), json!([dbg(json!({}))])),
        Vec::<String>::new()
    );
    let targeted = dbg(
        json!({"targetContainerName": "app", "stdin": true, "tty": true,
        "env": [{"name": "A", "value": "1"}], "volumeMounts": [{"name": "data", "mountPath": "/d"}],
        "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}),
    );
    let second = dbg(json!({"name": "dbg2", "targetContainerName": "setup"}));
    assert_eq!(
        through_subresource(json!([targeted]), json!([targeted, second])),
        Vec::<String>::new(),
        "a second one beside the first; the targets name a regular and an init container"
    );
    // A patch need not keep the order: they are matched by name.
    assert_eq!(
        through_subresource(json!([targeted, second]), json!([second, targeted])),
        Vec::<String>::new()
    );
}

#[test]
fn existing_ephemeral_containers_may_not_be_removed_or_changed() {
    assert_eq!(
        through_subresource(json!([dbg(json!({}))]), json!([])),
        ["spec.ephemeralContainers: Forbidden: existing ephemeral containers \"dbg\" may not be removed\n"]
    );
    let changed = through_subresource(
        json!([dbg(json!({}))]),
        json!([dbg(json!({"image": "alpine"}))]),
    );
    assert_eq!(
        changed,
        ["spec.ephemeralContainers: Forbidden: existing ephemeral containers \"dbg\" may not be changed\n-image: \"busybox\"\n+image: \"alpine\"\n"]
    );
}

#[test]
fn ephemeral_container_rules_have_upstreams_messages() {
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("name unique among all containers", json!([dbg(json!({"name": "app"}))]),
            vec!["spec.ephemeralContainers[0].name: Duplicate value: \"app\""]),
        ("name unique among ephemeral containers", json!([dbg(json!({})), dbg(json!({"command": ["ls"]}))]),
            vec!["spec.ephemeralContainers[1].name: Duplicate value: \"dbg\""]),
        ("target must exist", json!([dbg(json!({"targetContainerName": "nope"}))]),
            vec!["spec.ephemeralContainers[0].targetContainerName: Not found: \"nope\""]),
        ("target may not be ephemeral", json!([dbg(json!({})), dbg(json!({"name": "dbg2", "targetContainerName": "dbg"}))]),
            vec!["spec.ephemeralContainers[1].targetContainerName: Not found: \"dbg\""]),
        ("common rules: image", json!([{"name": "dbg"}]),
            vec!["spec.ephemeralContainers[0].image: Required value"]),
        ("common rules: name", json!([dbg(json!({"name": "Dbg"}))]),
            vec!["spec.ephemeralContainers[0].name: Invalid value: \"Dbg\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
        ("forbidden fields, in upstream's order", json!([dbg(json!({
            "lifecycle": {"preStop": {"exec": {"command": ["true"]}}},
            "readinessProbe": {"exec": {"command": ["true"]}},
            "livenessProbe": {"exec": {"command": ["true"]}},
            "startupProbe": {"exec": {"command": ["true"]}},
            "resources": {"limits": {"cpu": "1"}},
            "ports": [{"containerPort": 80}],
            "restartPolicy": "Always"}))]),
            vec!["spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
                 "spec.ephemeralContainers[0].resources: Forbidden: cannot be set for an Ephemeral Container",
                 "spec.ephemeralContainers[0].restartPolicy: Forbidden: cannot be set for an Ephemeral Container",
                 "spec.ephemeralContainers[0].livenessProbe: Forbidden: cannot be set for an Ephemeral Container",
                 "spec.ephemeralContainers[0].readinessProbe: Forbidden: cannot be set for an Ephemeral Container",
                 "spec.ephemeralContainers[0].startupProbe: Forbidden: cannot be set for an Ephemeral Container",
                 "spec.ephemeralContainers[0].lifecycle: Forbidden: cannot be set for an Ephemeral Container"]),
        ("empty resources are Go's zero value", json!([dbg(json!({"resources": {}}))]), vec![]),
        ("no subPath", json!([dbg(json!({"volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "x"}]}))]),
            vec!["spec.ephemeralContainers[0].volumeMounts[0].subPath: Forbidden: cannot be set for an Ephemeral Container"]),
        ("mounts name a volume", json!([dbg(json!({"volumeMounts": [{"name": "other", "mountPath": "/d"}]}))]),
            vec!["spec.ephemeralContainers[0].volumeMounts[0].name: Not found: \"other\""]),
    ];
    for (rule, list, want) in cases {
        assert_eq!(through_subresource(json!([]), list), want, "{rule}");
    }
}

#[test]
fn static_pods_get_no_ephemeral_containers() {
    let mut old = pod(json!([]));
    let mut new = pod(json!([dbg(json!({}))]));
    for o in [&mut old, &mut new] {
        o.metadata.annotations = Some([("kubernetes.io/config.mirror".into(), "x".into())].into());
        o.data["spec"]["nodeName"] = json!("n1");
    }
    let errs: Vec<String> = validate_ephemeral_containers_update(&new, &old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        [": Forbidden: static pods do not support ephemeral containers"]
    );
}

#[test]
fn the_pod_itself_may_neither_be_created_with_nor_change_ephemeral_containers() {
    let errs: Vec<String> = validate(&pod(json!([dbg(json!({}))])))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        ["spec.ephemeralContainers: Forbidden: cannot be set on create"]
    );
    // An update of the main resource: not through the subresource.
    let errs: Vec<String> = validate_update(&pod(json!([dbg(json!({}))])), &pod(json!([])))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
        "{errs:?}"
    );
    // A pod that has them may still be updated otherwise.
    let mut relabelled = pod(json!([dbg(json!({}))]));
    relabelled.metadata.labels = Some([("a".into(), "b".into())].into());
    assert!(validate_update(&relabelled, &pod(json!([dbg(json!({}))]))).is_empty());
}
