use serde_json::json;

use super::*;

fn v2() -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 10,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 60}}},
                {"type": "Resource", "resource": {"name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                {"type": "Pods", "pods": {"metric": {"name": "qps"},
                    "target": {"type": "AverageValue", "averageValue": "10"}}}
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}
        },
        "status": {
            "currentReplicas": 3, "desiredReplicas": 4,
            "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 75, "averageValue": "150m"}}}
            ],
            "conditions": [{"type": "AbleToScale", "status": "True",
                "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "ReadyForNewScale"}]
        }
    })
}

#[test]
fn v2_fields_travel_in_v1_annotations() {
    let v1 = hpa_v2_to_v1(&v2());
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
    assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 75);
    assert!(v1["spec"].get("metrics").is_none());
    let a = &v1["metadata"]["annotations"];
    assert_eq!(a["team"], "a");
    assert_eq!(
        a[METRIC_SPECS_ANNOTATION],
        r#"[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"100Mi"}},{"type":"Pods","pods":{"metricName":"qps","targetAverageValue":"10"}}]"#
    );
    assert_eq!(
        a[METRIC_STATUSES_ANNOTATION],
        r#"[{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":75,"currentAverageValue":"150m"}}]"#
    );
    assert_eq!(
        a[BEHAVIOR_ANNOTATION],
        r#"{"scaleDown":{"stabilizationWindowSeconds":60}}"#
    );
    assert!(a[CONDITIONS_ANNOTATION]
        .as_str()
        .is_some_and(|c| c.contains("ReadyForNewScale")));
}

/// A v1 read-modify-write keeps everything v1 cannot express; the CPU metric comes last, as
/// upstream's conversion appends it after the annotation's metrics.
#[test]
fn v1_round_trip_keeps_v2_fields() {
    let back = hpa_v1_to_v2(&hpa_v2_to_v1(&v2())).expect("converts");
    let orig = v2();
    assert_eq!(back["metadata"], orig["metadata"]);
    assert_eq!(back["spec"]["behavior"], orig["spec"]["behavior"]);
    let metrics = array(&back["spec"]["metrics"]);
    assert_eq!(metrics.len(), 3);
    assert_eq!(metrics[2], orig["spec"]["metrics"][0]);
    assert_eq!(metrics[0], orig["spec"]["metrics"][1]);
    assert_eq!(metrics[1], orig["spec"]["metrics"][2]);
    assert_eq!(back["status"], orig["status"]);
}

#[test]
fn v1_without_target_gets_the_default_cpu_target() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "w"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "maxReplicas": 3}});
    let v2 = hpa_v1_to_v2(&v1).expect("converts");
    assert_eq!(
        v2["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
}

#[test]
fn every_metric_source_round_trips() {
    let metrics = json!([
        {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
            "target": {"type": "Utilization", "averageUtilization": 50}}},
        {"type": "Object", "object": {"describedObject": {"kind": "Ingress", "name": "main", "apiVersion": "networking.k8s.io/v1"},
            "metric": {"name": "rps"}, "target": {"type": "Value", "value": "2k"}}},
        {"type": "External", "external": {"metric": {"name": "queue", "selector": {"matchLabels": {"q": "jobs"}}},
            "target": {"type": "AverageValue", "averageValue": "30"}}}
    ]);
    let mut obj = v2();
    obj["spec"]["metrics"] = metrics.clone();
    let back = hpa_v1_to_v2(&hpa_v2_to_v1(&obj)).expect("converts");
    assert_eq!(back["spec"]["metrics"], metrics);
}

#[test]
fn a_broken_annotation_is_an_error() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "w", "annotations": {METRIC_SPECS_ANNOTATION: "{not json"}},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "maxReplicas": 3}});
    let err = hpa_v1_to_v2(&v1).expect_err("refused");
    assert!(
        err.starts_with("annotation autoscaling.alpha.kubernetes.io/metrics"),
        "{err}"
    );
}
