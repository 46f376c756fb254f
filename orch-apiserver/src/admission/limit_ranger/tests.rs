//! Cases after upstream `plugin/pkg/admission/limitranger/admission_test.go`
//! (`TestMergePodResourceRequirements`, `TestPodLimitFunc`, `TestPersistentVolumeClaimLimitFunc`),
//! in our words.

use super::*;
use orch_types::testing::PodBuilder;

fn range(yaml: &str) -> LimitRange {
    serde_yaml_ng::from_str(&format!(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {{name: limits, namespace: default}}\nspec:\n  limits:\n{yaml}"
    ))
    .unwrap()
}

fn resources(pod: &Pod, i: usize) -> serde_json::Value {
    serde_json::to_value(&pod.spec.as_ref().unwrap().containers[i].resources).unwrap()
}

#[test]
fn defaults_fill_what_containers_miss() {
    let lr = range(
        "  - type: Container\n    default: {cpu: 500m, memory: 256Mi}\n    defaultRequest: {cpu: 100m, memory: 128Mi}\n",
    );
    // A pod without resources gets both, and the annotation says so.
    let mut pod = PodBuilder::new("p").build();
    assert!(default_pod(&mut pod, std::slice::from_ref(&lr)));
    assert_eq!(
        resources(&pod, 0),
        serde_json::json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
    );
    assert_eq!(
        pod.metadata.annotations.as_ref().unwrap()[ANNOTATION],
        "LimitRanger plugin set: cpu, memory request for container c0; cpu, memory limit for container c0"
    );
    // What is given is kept; only the missing entries are filled; init containers are named so.
    let mut pod = PodBuilder::new("p")
        .req("cpu", "50m")
        .limit("cpu", "1")
        .limit("memory", "1Gi")
        .init_container("init", &[("memory", "64Mi")])
        .build();
    assert!(default_pod(&mut pod, std::slice::from_ref(&lr)));
    assert_eq!(
        resources(&pod, 0),
        serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "50m", "memory": "128Mi"}})
    );
    assert_eq!(
        pod.metadata.annotations.as_ref().unwrap()[ANNOTATION],
        "LimitRanger plugin set: memory request for container c0; cpu request for init container init; cpu, memory limit for init container init"
    );
    // Nothing missing: nothing changed, no annotation.
    let mut full = PodBuilder::new("p")
        .req("cpu", "1")
        .req("memory", "1Mi")
        .limit("cpu", "1")
        .limit("memory", "1Mi")
        .build();
    assert!(!default_pod(&mut full, std::slice::from_ref(&lr)));
    assert!(full.metadata.annotations.is_none());
    // A LimitRange without Container defaults changes nothing.
    let pod_only = range("  - type: Pod\n    max: {cpu: '2'}\n");
    let mut pod = PodBuilder::new("p").build();
    assert!(!default_pod(&mut pod, &[pod_only]));
    assert!(pod.spec.as_ref().unwrap().containers[0].resources.is_none());
}

#[test]
fn pod_limits_table() {
    struct Case {
        name: &'static str,
        range: &'static str,
        pod: Pod,
        want: &'static [&'static str],
    }
    let cases = vec![
        Case {
            name: "within container min and max",
            range: "  - type: Container\n    min: {cpu: 100m}\n    max: {cpu: '1'}\n",
            pod: PodBuilder::new("p").req("cpu", "200m").limit("cpu", "1").build(),
            want: &[],
        },
        Case {
            name: "container limit over max",
            range: "  - type: Container\n    max: {cpu: '1'}\n",
            pod: PodBuilder::new("p").req("cpu", "1").limit("cpu", "2").build(),
            want: &["maximum cpu usage per Container is 1, but limit is 2"],
        },
        Case {
            name: "container without a limit under a max",
            range: "  - type: Container\n    max: {memory: 1Gi}\n",
            pod: PodBuilder::new("p").req("memory", "1Mi").build(),
            want: &["maximum memory usage per Container is 1Gi.  No limit is specified"],
        },
        Case {
            name: "container request under min",
            range: "  - type: Container\n    min: {cpu: 500m}\n",
            pod: PodBuilder::new("p").req("cpu", "100m").limit("cpu", "1").build(),
            want: &["minimum cpu usage per Container is 500m, but request is 100m"],
        },
        Case {
            name: "container without a request over a min",
            range: "  - type: Container\n    min: {cpu: 500m}\n",
            pod: PodBuilder::new("p").build(),
            want: &["minimum cpu usage per Container is 500m.  No request is specified"],
        },
        Case {
            name: "init containers are held to the same",
            range: "  - type: Container\n    max: {cpu: '1'}\n",
            pod: PodBuilder::new("p")
                .limit("cpu", "1")
                .init_container("init", &[("cpu", "2")])
                .build(),
            want: &[
                "maximum cpu usage per Container is 1.  No limit is specified",
            ],
        },
        Case {
            name: "ratio over the maximum",
            range: "  - type: Container\n    maxLimitRequestRatio: {memory: '2'}\n",
            pod: PodBuilder::new("p").req("memory", "100Mi").limit("memory", "300Mi").build(),
            want: &["memory max limit to request ratio per Container is 2, but provided ratio is 3.000000"],
        },
        Case {
            name: "ratio without a request",
            range: "  - type: Container\n    maxLimitRequestRatio: {cpu: '2'}\n",
            pod: PodBuilder::new("p").limit("cpu", "1").build(),
            want: &["cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"],
        },
        Case {
            name: "pod sums its containers",
            range: "  - type: Pod\n    max: {cpu: '2'}\n",
            pod: PodBuilder::new("p")
                .req("cpu", "1")
                .limit("cpu", "1500m")
                .container("b", "nginx")
                .req("cpu", "1")
                .limit("cpu", "1")
                .build(),
            want: &["maximum cpu usage per Pod is 2, but limit is 2500m"],
        },
        Case {
            name: "pod requests under min",
            range: "  - type: Pod\n    min: {memory: 1Gi}\n",
            pod: PodBuilder::new("p")
                .req("memory", "100Mi")
                .limit("memory", "100Mi")
                .build(),
            want: &["minimum memory usage per Pod is 1Gi, but request is 100Mi"],
        },
        Case {
            name: "two violations, one message each, deduplicated across containers",
            range: "  - type: Container\n    max: {cpu: '1', memory: 1Gi}\n",
            pod: PodBuilder::new("p")
                .req("cpu", "1")
                .limit("cpu", "2")
                .limit("memory", "2Gi")
                .container("b", "nginx")
                .limit("cpu", "2")
                .limit("memory", "1Gi")
                .build(),
            want: &[
                "maximum cpu usage per Container is 1, but limit is 2",
                "maximum memory usage per Container is 1Gi, but limit is 2Gi",
            ],
        },
    ];
    for c in cases {
        let got = validate_pod(&range(c.range), &c.pod);
        assert_eq!(got, c.want, "{}", c.name);
    }
    assert_eq!(
        aggregate(&["a".into(), "b".into()]),
        "[a, b]",
        "several messages read as upstream's aggregate"
    );
    assert_eq!(aggregate(&["a".into()]), "a");
}

#[test]
fn claim_storage_bounds() {
    let lr = range(
        "  - type: PersistentVolumeClaim\n    min: {storage: 1Gi}\n    max: {storage: 10Gi}\n",
    );
    let claim = |storage: Option<&str>| -> PersistentVolumeClaim {
        let requests = storage
            .map(|s| format!("resources: {{requests: {{storage: {s}}}}}"))
            .unwrap_or_default();
        serde_yaml_ng::from_str(&format!(
            "metadata: {{name: c}}\nspec: {{accessModes: [ReadWriteOnce], {requests}}}"
        ))
        .unwrap()
    };
    assert!(validate_claim(&lr, &claim(Some("5Gi"))).is_empty());
    assert_eq!(
        validate_claim(&lr, &claim(Some("20Gi"))),
        ["maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
    );
    assert_eq!(
        validate_claim(&lr, &claim(Some("500Mi"))),
        ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
    );
    assert_eq!(
        validate_claim(&lr, &claim(None)),
        [
            "minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified",
            "maximum storage usage per PersistentVolumeClaim is 10Gi.  No request is specified"
        ]
    );
}
