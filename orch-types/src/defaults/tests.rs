//! Table-driven defaulting tests; each case names the upstream function it pins.

use serde_json::{json, Value};

use super::apply_defaults;
use crate::DynamicObject;

fn defaulted(v: Value) -> Value {
    let mut d: DynamicObject = serde_json::from_value(v).unwrap();
    apply_defaults(&mut d).unwrap();
    let once = d.to_value();
    // Idempotence: a second pass changes nothing.
    apply_defaults(&mut d).unwrap();
    assert_eq!(d.to_value(), once, "defaulting is not idempotent");
    once
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
}

/// (upstream rule, input, JSON pointer, expected value)
#[test]
fn table() {
    let c = |extra: Value| {
        let mut base = json!({"name": "c", "image": "nginx:1.27"});
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        pod(json!({"containers": [base]}))
    };
    let cases: Vec<(&str, Value, &str, Value)> = vec![
        (
            "SetDefaults_Container: tag latest -> Always",
            pod(json!({"containers": [{"name": "c", "image": "nginx"}]})),
            "/spec/containers/0/imagePullPolicy",
            json!("Always"),
        ),
        (
            "SetDefaults_Container: explicit :latest -> Always",
            pod(json!({"containers": [{"name": "c", "image": "nginx:latest"}]})),
            "/spec/containers/0/imagePullPolicy",
            json!("Always"),
        ),
        (
            "SetDefaults_Container: other tag -> IfNotPresent",
            c(json!({})),
            "/spec/containers/0/imagePullPolicy",
            json!("IfNotPresent"),
        ),
        (
            "SetDefaults_Container: explicit policy kept",
            c(json!({"imagePullPolicy": "Never"})),
            "/spec/containers/0/imagePullPolicy",
            json!("Never"),
        ),
        (
            "SetDefaults_Container: terminationMessagePath",
            c(json!({})),
            "/spec/containers/0/terminationMessagePath",
            json!("/dev/termination-log"),
        ),
        (
            "SetDefaults_Container: terminationMessagePolicy",
            c(json!({})),
            "/spec/containers/0/terminationMessagePolicy",
            json!("File"),
        ),
        (
            "ContainerPort.Protocol +default=TCP",
            c(json!({"ports": [{"containerPort": 80}]})),
            "/spec/containers/0/ports/0/protocol",
            json!("TCP"),
        ),
        (
            "SetDefaults_PodSpec: restartPolicy",
            c(json!({})),
            "/spec/restartPolicy",
            json!("Always"),
        ),
        (
            "SetDefaults_PodSpec: dnsPolicy",
            c(json!({})),
            "/spec/dnsPolicy",
            json!("ClusterFirst"),
        ),
        (
            "SetDefaults_PodSpec: terminationGracePeriodSeconds",
            c(json!({})),
            "/spec/terminationGracePeriodSeconds",
            json!(30),
        ),
        (
            "SetDefaults_PodSpec: schedulerName",
            c(json!({})),
            "/spec/schedulerName",
            json!("default-scheduler"),
        ),
        (
            "SetDefaults_PodSpec: securityContext",
            c(json!({})),
            "/spec/securityContext",
            json!({}),
        ),
        (
            "SetDefaults_Pod: enableServiceLinks",
            c(json!({})),
            "/spec/enableServiceLinks",
            json!(true),
        ),
        (
            "SetDefaults_Probe: timeout",
            c(json!({"livenessProbe": {"httpGet": {"port": 80}}})),
            "/spec/containers/0/livenessProbe/timeoutSeconds",
            json!(1),
        ),
        (
            "SetDefaults_Probe: period",
            c(json!({"livenessProbe": {"exec": {"command": ["true"]}}})),
            "/spec/containers/0/livenessProbe/periodSeconds",
            json!(10),
        ),
        (
            "SetDefaults_Probe: success",
            c(json!({"readinessProbe": {"tcpSocket": {"port": 80}}})),
            "/spec/containers/0/readinessProbe/successThreshold",
            json!(1),
        ),
        (
            "SetDefaults_Probe: failure",
            c(json!({"startupProbe": {"tcpSocket": {"port": 80}}})),
            "/spec/containers/0/startupProbe/failureThreshold",
            json!(3),
        ),
        (
            "SetDefaults_HTTPGetAction: path",
            c(json!({"livenessProbe": {"httpGet": {"port": 80}}})),
            "/spec/containers/0/livenessProbe/httpGet/path",
            json!("/"),
        ),
        (
            "SetDefaults_HTTPGetAction: scheme",
            c(json!({"livenessProbe": {"httpGet": {"port": 80}}})),
            "/spec/containers/0/livenessProbe/httpGet/scheme",
            json!("HTTP"),
        ),
        (
            "SetDefaults_Pod: requests default to limits",
            c(
                json!({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}}),
            ),
            "/spec/containers/0/resources/requests",
            json!({"cpu": "500m", "memory": "1Gi"}),
        ),
        (
            "SetDefaults_ResourceList: round up to milli, canonical",
            c(json!({"resources": {"requests": {"cpu": "0.0001", "memory": "1.5Gi"}}})),
            "/spec/containers/0/resources/requests",
            json!({"cpu": "1m", "memory": "1536Mi"}),
        ),
        (
            "SetDefaults_Pod: hostNetwork ports",
            pod(
                json!({"hostNetwork": true, "containers": [{"name": "c", "image": "x:1", "ports": [{"containerPort": 8080}]}]}),
            ),
            "/spec/containers/0/ports/0/hostPort",
            json!(8080),
        ),
        (
            "SetDefaults_Volume: emptyDir",
            pod(json!({"containers": [{"name": "c", "image": "x:1"}], "volumes": [{"name": "v"}]})),
            "/spec/volumes/0/emptyDir",
            json!({}),
        ),
        (
            "SetDefaults_SecretVolumeSource: defaultMode 0644",
            pod(
                json!({"containers": [{"name": "c", "image": "x:1"}], "volumes": [{"name": "v", "secret": {"secretName": "s"}}]}),
            ),
            "/spec/volumes/0/secret/defaultMode",
            json!(420),
        ),
        (
            "SetDefaults_ConfigMapVolumeSource: defaultMode 0644",
            pod(
                json!({"containers": [{"name": "c", "image": "x:1"}], "volumes": [{"name": "v", "configMap": {"name": "s"}}]}),
            ),
            "/spec/volumes/0/configMap/defaultMode",
            json!(420),
        ),
        (
            "SetDefaults_ObjectFieldSelector: apiVersion v1",
            c(
                json!({"env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}),
            ),
            "/spec/containers/0/env/0/valueFrom/fieldRef/apiVersion",
            json!("v1"),
        ),
        // Services.
        (
            "SetDefaults_Service: type ClusterIP",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
            "/spec/type",
            json!("ClusterIP"),
        ),
        (
            "SetDefaults_Service: sessionAffinity None",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
            "/spec/sessionAffinity",
            json!("None"),
        ),
        (
            "SetDefaults_Service: targetPort = port",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
            "/spec/ports/0/targetPort",
            json!(80),
        ),
        (
            "SetDefaults_Service: named targetPort kept",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "targetPort": "http"}]}}),
            "/spec/ports/0/targetPort",
            json!("http"),
        ),
        (
            "SetDefaults_Service: protocol TCP",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
            "/spec/ports/0/protocol",
            json!("TCP"),
        ),
        (
            "SetDefaults_Service: internalTrafficPolicy",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
            "/spec/internalTrafficPolicy",
            json!("Cluster"),
        ),
        (
            "SetDefaults_Service: NodePort externalTrafficPolicy",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
            "/spec/externalTrafficPolicy",
            json!("Cluster"),
        ),
        (
            "SetDefaults_Service: LB allocateLoadBalancerNodePorts",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
            "/spec/allocateLoadBalancerNodePorts",
            json!(true),
        ),
        (
            "SetDefaults_Service: ClientIP timeout 10800",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}),
            "/spec/sessionAffinityConfig/clientIP/timeoutSeconds",
            json!(10800),
        ),
        // Other core kinds.
        (
            "SetDefaults_Secret: Opaque",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
            "/type",
            json!("Opaque"),
        ),
        (
            "SetDefaults_Namespace: name label",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
            "/metadata/labels/kubernetes.io~1metadata.name",
            json!("team-a"),
        ),
        (
            "SetDefaults_NamespaceStatus: Active",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
            "/status/phase",
            json!("Active"),
        ),
        (
            "SetDefaults_NodeStatus: allocatable = capacity",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4"}}}),
            "/status/allocatable",
            json!({"cpu": "4"}),
        ),
        (
            "SetDefaults_ReplicationController: selector from template",
            json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}),
            "/spec/selector",
            json!({"a": "b"}),
        ),
        (
            "ReplicationControllerSpec.Replicas +default=1",
            json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"}, "spec": {}}),
            "/spec/replicas",
            json!(1),
        ),
        // apps/v1.
        (
            "SetDefaults_Deployment: replicas",
            deploy(),
            "/spec/replicas",
            json!(1),
        ),
        (
            "SetDefaults_Deployment: strategy",
            deploy(),
            "/spec/strategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        ),
        (
            "SetDefaults_Deployment: revisionHistoryLimit",
            deploy(),
            "/spec/revisionHistoryLimit",
            json!(10),
        ),
        (
            "SetDefaults_Deployment: progressDeadlineSeconds",
            deploy(),
            "/spec/progressDeadlineSeconds",
            json!(600),
        ),
        (
            "SetDefaults_PodSpec in templates",
            deploy(),
            "/spec/template/spec/restartPolicy",
            json!("Always"),
        ),
        (
            "SetDefaults_Pod not applied to templates",
            deploy(),
            "/spec/template/spec/enableServiceLinks",
            Value::Null,
        ),
        (
            "SetDefaults_DaemonSet: rollingUpdate 1/0",
            workload("DaemonSet"),
            "/spec/updateStrategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
        ),
        (
            "SetDefaults_StatefulSet: podManagementPolicy",
            workload("StatefulSet"),
            "/spec/podManagementPolicy",
            json!("OrderedReady"),
        ),
        (
            "SetDefaults_StatefulSet: partition 0",
            workload("StatefulSet"),
            "/spec/updateStrategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
        ),
        (
            "SetDefaults_StatefulSet: PVC retention Retain",
            workload("StatefulSet"),
            "/spec/persistentVolumeClaimRetentionPolicy",
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
        ),
        (
            "SetDefaults_ReplicaSet: replicas",
            workload("ReplicaSet"),
            "/spec/replicas",
            json!(1),
        ),
        // batch/v1.
        (
            "SetDefaults_Job: completions",
            job(),
            "/spec/completions",
            json!(1),
        ),
        (
            "SetDefaults_Job: parallelism",
            job(),
            "/spec/parallelism",
            json!(1),
        ),
        (
            "SetDefaults_Job: backoffLimit",
            job(),
            "/spec/backoffLimit",
            json!(6),
        ),
        (
            "SetDefaults_Job: completionMode",
            job(),
            "/spec/completionMode",
            json!("NonIndexed"),
        ),
        (
            "SetDefaults_Job: suspend",
            job(),
            "/spec/suspend",
            json!(false),
        ),
        (
            "SetDefaults_Job: podReplacementPolicy",
            job(),
            "/spec/podReplacementPolicy",
            json!("TerminatingOrFailed"),
        ),
        (
            "SetDefaults_PodFailurePolicyOnPodConditionsPattern: status True",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                   "spec": {"podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
                            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1"}]}}}}),
            "/spec/podFailurePolicy/rules/0/onPodConditions/0/status",
            json!("True"),
        ),
        (
            "SetDefaults_Job: labels from template",
            job(),
            "/metadata/labels",
            json!({"app": "j"}),
        ),
        // Others.
        (
            "SetDefaults_HorizontalPodAutoscaler: minReplicas",
            hpa(),
            "/spec/minReplicas",
            json!(1),
        ),
        (
            "SetDefaults_HorizontalPodAutoscaler: cpu 80%",
            hpa(),
            "/spec/metrics/0/resource/target/averageUtilization",
            json!(80),
        ),
        (
            "SetDefaults_PriorityClass: preemptionPolicy",
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"}, "value": 1000}),
            "/preemptionPolicy",
            json!("PreemptLowerPriority"),
        ),
    ];
    for (rule, input, pointer, want) in cases {
        let out = defaulted(input);
        let got = out.pointer(pointer).cloned().unwrap_or(Value::Null);
        assert_eq!(got, want, "{rule}: {pointer} in {out:#}");
    }
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}})
}

fn deploy() -> Value {
    workload("Deployment")
}

fn workload(kind: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w"},
           "spec": {"selector": {"matchLabels": {"app": "w"}}, "template": template()}})
}

fn job() -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"metadata": {"labels": {"app": "j"}},
                                 "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1"}]}}}})
}

fn hpa() -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
           "spec": {"maxReplicas": 5, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"}}})
}

#[test]
fn unknown_kinds_untouched_and_bad_objects_rejected() {
    let mut cm: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
    )
    .unwrap();
    let before = cm.clone();
    apply_defaults(&mut cm).unwrap();
    assert_eq!(cm, before);
    let mut crd_obj: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Shirt", "metadata": {"name": "s"}, "spec": {"x": 1}})).unwrap();
    let before = crd_obj.clone();
    apply_defaults(&mut crd_obj).unwrap();
    assert_eq!(crd_obj, before);
    let mut bad: DynamicObject = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "nope"}})).unwrap();
    let before = bad.clone();
    assert!(apply_defaults(&mut bad).is_err());
    assert_eq!(bad, before, "no partial write");
}

/// The whole defaulted pod, so a reviewer sees every decision at once.
#[test]
fn pod_snapshot() {
    let out = defaulted(pod(json!({
        "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
                        "resources": {"limits": {"cpu": "0.5"}},
                        "readinessProbe": {"httpGet": {"port": 80}}}],
        "initContainers": [{"name": "init", "image": "busybox:1.36", "command": ["true"]}]
    })));
    insta::assert_yaml_snapshot!(out);
}

/// `SetDefaults_PersistentVolumeClaim(Spec)`, `SetDefaults_PersistentVolume`,
/// `SetDefaults_StorageClass`.
#[test]
fn storage_defaults() {
    let claim = defaulted(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1.5Gi"}}}}));
    assert_eq!(claim["spec"]["volumeMode"], "Filesystem");
    assert_eq!(claim["status"]["phase"], "Pending");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1536Mi");
    let vol = defaulted(json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "v"},
        "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
                 "hostPath": {"path": "/tmp/v"}}}));
    assert_eq!(vol["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(vol["spec"]["volumeMode"], "Filesystem");
    assert_eq!(vol["spec"]["hostPath"]["type"], "");
    assert_eq!(vol["status"]["phase"], "Pending");
    let explicit = defaulted(json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "v"}, "spec": {"persistentVolumeReclaimPolicy": "Delete", "volumeMode": "Block"},
        "status": {"phase": "Bound"}}));
    assert_eq!(explicit["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(explicit["spec"]["volumeMode"], "Block");
    assert_eq!(explicit["status"]["phase"], "Bound");
    let sc = defaulted(
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "fast"}, "provisioner": "orch.dev/local"}),
    );
    assert_eq!(sc["reclaimPolicy"], "Delete");
    assert_eq!(sc["volumeBindingMode"], "Immediate");
}

/// `SetDefaults_CronJob` and the pod defaults of its Job template (not the Job's own).
#[test]
fn cron_job_defaults() {
    let cj = defaulted(
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
        "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
    );
    let spec = &cj["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Allow");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    let job = &spec["jobTemplate"]["spec"];
    assert_eq!(
        job["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
    assert_eq!(job["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(
        job.get("backoffLimit"),
        None,
        "the Job's defaults wait for the Job"
    );
    let kept = defaulted(
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
        "spec": {"schedule": "@hourly", "concurrencyPolicy": "Forbid", "suspend": true,
                 "successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 5,
                 "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}),
    );
    assert_eq!(kept["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(kept["spec"]["suspend"], true);
    assert_eq!(kept["spec"]["successfulJobsHistoryLimit"], 0);
    assert_eq!(kept["spec"]["failedJobsHistoryLimit"], 5);
}
