//! Table-driven validation tests. Each case names the upstream rule
//! (`pkg/apis/<group>/validation/validation.go` function) it pins.

use serde_json::{json, Value};

use super::{invalid_error, validate, validate_update, FieldErrorKind};
use crate::DynamicObject;

fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

fn errors(v: Value) -> Vec<String> {
    validate(&obj(v)).iter().map(ToString::to_string).collect()
}

fn pod_with(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
}

fn ctr(extra: Value) -> Value {
    let mut base = json!({"name": "c", "image": "nginx:1.27"});
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

fn deploy(spec_patch: Value) -> Value {
    let mut spec = json!({"selector": {"matchLabels": {"app": "w"}},
        "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [ctr(json!({}))]}}});
    if let (Value::Object(b), Value::Object(e)) = (&mut spec, spec_patch) {
        b.extend(e);
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"}, "spec": spec})
}

/// (rule, object, expected error lines; empty = valid)
#[test]
fn table() {
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("valid pod", pod_with(json!({"containers": [ctr(json!({}))]})), vec![]),
        ("ValidateObjectMeta: name required", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
            vec!["metadata.name: Required value: name or generateName is required"]),
        ("ValidateObjectMeta: generateName suffices", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cm-"}}), vec![]),
        ("NameIsDNSSubdomain", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}),
            vec!["metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
        ("ValidateNamespaceName: DNS label", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}),
            vec!["metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
        ("cluster-scoped namespace forbidden", json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "namespace": "x"}}),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]),
        ("ValidateLabels: bad value", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "-x"}}}),
            vec!["metadata.labels[a]: Invalid value: \"-x\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
        ("ValidateLabels: bad key", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"/a": "x"}}}),
            vec!["metadata.labels: Invalid value: \"/a\": prefix part must be non-empty"]),
        ("ValidateAnnotations: total size", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {"a": "x".repeat(262_144)}}}),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]),
        ("validateContainers: required", pod_with(json!({"containers": []})), vec!["spec.containers: Required value"]),
        ("validateContainers: duplicate names", pod_with(json!({"containers": [ctr(json!({})), ctr(json!({}))]})),
            vec!["spec.containers[1].name: Duplicate value: \"c\""]),
        ("validateContainers: init/regular names share a namespace", pod_with(json!({"initContainers": [ctr(json!({}))], "containers": [ctr(json!({}))]})),
            vec!["spec.containers[0].name: Duplicate value: \"c\""]),
        ("validateContainerCommon: image required", pod_with(json!({"containers": [{"name": "c"}]})), vec!["spec.containers[0].image: Required value"]),
        ("validateContainerCommon: an empty image is missing", pod_with(json!({"containers": [ctr(json!({"image": ""}))]})), vec!["spec.containers[0].image: Required value"]),
        ("validateContainersOnlyForPod: no surrounding whitespace", pod_with(json!({"containers": [ctr(json!({"image": " nginx"}))]})),
            vec!["spec.containers[0].image: Invalid value: \" nginx\": must not have leading or trailing whitespace"]),
        ("validateContainerCommon: a template's container needs an image too", deploy(json!({"template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "c"}]}}})),
            vec!["spec.template.spec.containers[0].image: Required value"]),
        ("validateContainerCommon: a template's whitespace image is a placeholder", deploy(json!({"template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [ctr(json!({"image": " "}))]}}})), vec![]),
        ("validateContainerPorts: range", pod_with(json!({"containers": [ctr(json!({"ports": [{"containerPort": 70000}]}))]})),
            vec!["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]),
        ("validateContainerPorts: protocol", pod_with(json!({"containers": [ctr(json!({"ports": [{"containerPort": 80, "protocol": "HTTP"}]}))]})),
            vec!["spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""]),
        ("validateContainerPorts: duplicate names", pod_with(json!({"containers": [ctr(json!({"ports": [{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]}))]})),
            vec!["spec.containers[0].ports[1].name: Duplicate value: \"http\""]),
        ("validateProbe: exactly one handler (none)", pod_with(json!({"containers": [ctr(json!({"livenessProbe": {"periodSeconds": 5}}))]})),
            vec!["spec.containers[0].livenessProbe: Required value: must specify a handler type"]),
        ("validateProbe: exactly one handler (two)", pod_with(json!({"containers": [ctr(json!({"readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}}))]})),
            vec!["spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"]),
        ("validateProbe: liveness successThreshold must be 1", pod_with(json!({"containers": [ctr(json!({"livenessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2}}))]})),
            vec!["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"]),
        ("validateProbe: negative period", pod_with(json!({"containers": [ctr(json!({"readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": -1}}))]})),
            vec!["spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0"]),
        ("validateInitContainers: probes need restartPolicy Always", pod_with(json!({"initContainers": [ctr(json!({"name": "i", "readinessProbe": {"tcpSocket": {"port": 80}}}))], "containers": [ctr(json!({}))]})),
            vec!["spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"]),
        ("sidecar init containers may have probes", pod_with(json!({"initContainers": [ctr(json!({"name": "i", "restartPolicy": "Always", "readinessProbe": {"tcpSocket": {"port": 80}}}))], "containers": [ctr(json!({}))]})), vec![]),
        ("container restartPolicy forbidden on regular containers", pod_with(json!({"containers": [ctr(json!({"restartPolicy": "Always"}))]})),
            vec!["spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"]),
        ("ValidateResourceRequirements: requests <= limits", pod_with(json!({"containers": [ctr(json!({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}))]})),
            vec!["spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1"]),
        ("ValidateResourceRequirements: bad quantity", pod_with(json!({"containers": [ctr(json!({"resources": {"requests": {"memory": "12 GB"}}}))]})),
            vec!["spec.containers[0].resources.requests[memory]: Invalid value: \"12 GB\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]),
        ("validateRestartPolicy", pod_with(json!({"restartPolicy": "Sometimes", "containers": [ctr(json!({}))]})),
            vec!["spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""]),
        ("validateDNSPolicy", pod_with(json!({"dnsPolicy": "Google", "containers": [ctr(json!({}))]})),
            vec!["spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\""]),
        ("validatePodDNSConfig: None needs a nameserver", pod_with(json!({"dnsPolicy": "None", "dnsConfig": {"searches": ["a.example"]}, "containers": [ctr(json!({}))]})),
            vec!["spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"]),
        ("validatePodDNSConfig: nameservers", pod_with(json!({"dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "dns.example"]}, "containers": [ctr(json!({}))]})),
            vec!["spec.dnsConfig.nameservers: Invalid value: []string{\"1.1.1.1\", \"2.2.2.2\", \"3.3.3.3\", \"dns.example\"}: must not have more than 3 nameservers",
                 "spec.dnsConfig.nameservers[3]: Invalid value: \"dns.example\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]),
        ("validatePodDNSConfig: searches and options", pod_with(json!({"dnsConfig": {"searches": ["ok.example.", "Bad_Domain"], "options": [{"value": "2"}]}, "containers": [ctr(json!({}))]})),
            vec!["spec.dnsConfig.searches[1]: Invalid value: \"Bad_Domain\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                 "spec.dnsConfig.options[0]: Required value: must not be empty"]),
        ("validateImagePullPolicy", pod_with(json!({"containers": [ctr(json!({"imagePullPolicy": "Sometimes"}))]})),
            vec!["spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""]),
        ("ValidateVolumes: duplicate names and mount not found", pod_with(json!({"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}],
            "containers": [ctr(json!({"volumeMounts": [{"name": "w", "mountPath": "/x"}]}))]})),
            vec!["spec.volumes[1].name: Duplicate value: \"v\"", "spec.containers[0].volumeMounts[0].name: Not found: \"w\""]),
        ("validateVolumeSource: one type", pod_with(json!({"volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}], "containers": [ctr(json!({}))]})),
            vec!["spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"]),
        ("ValidateTolerations: Exists with value", pod_with(json!({"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}], "containers": [ctr(json!({}))]})),
            vec!["spec.tolerations[0].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'"]),
        ("ValidateTolerations: empty key needs Exists", pod_with(json!({"tolerations": [{"operator": "Equal", "value": "v"}], "containers": [ctr(json!({}))]})),
            vec!["spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\""]),
        ("ValidateTolerations: tolerationSeconds needs NoExecute", pod_with(json!({"tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}], "containers": [ctr(json!({}))]})),
            vec!["spec.tolerations[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set"]),
        ("validateNodeSelectorRequirement: Gt needs one integer", pod_with(json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Gt", "values": ["a"]}]}]}}}, "containers": [ctr(json!({}))]})),
            vec!["spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"]),
        ("validatePodAffinityTerm: topologyKey required", pod_with(json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"a": "b"}}, "topologyKey": ""}]}}, "containers": [ctr(json!({}))]})),
            vec!["spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value: can not be empty"]),
        ("hostNetwork: hostPort must equal containerPort", pod_with(json!({"hostNetwork": true, "containers": [ctr(json!({"ports": [{"containerPort": 80, "hostPort": 81}]}))]})),
            vec!["spec.containers[0].ports[0].hostPort: Invalid value: 81: must match `containerPort` when `hostNetwork` is true"]),
        ("validateTopologySpreadConstraints", pod_with(json!({"topologySpreadConstraints": [{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "Sometimes"}], "containers": [ctr(json!({}))]})),
            vec!["spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero", "spec.topologySpreadConstraints[0].whenUnsatisfiable: Unsupported value: \"Sometimes\": supported values: \"DoNotSchedule\", \"ScheduleAnyway\""]),
        // Services.
        ("ValidateService: DNS-1035 name", json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}}),
            vec!["metadata.name: Invalid value: \"1svc\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]),
        ("ValidateService: ports required", json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}}), vec!["spec.ports: Required value"]),
        ("ValidateService: headless without ports ok", json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "None"}}), vec![]),
        ("ValidateService: port names required when several", json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}, {"port": 443, "name": "https"}]}}),
            vec!["spec.ports[0].name: Required value"]),
        ("ValidateService: type", json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "Magic", "ports": [{"port": 80}]}}),
            vec!["spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]),
        ("ValidateService: nodePort with ClusterIP", json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "nodePort": 30080}]}}),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]),
        ("ValidateService: ExternalName needs externalName", json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "ExternalName"}}),
            vec!["spec.externalName: Required value"]),
        // ConfigMap / Secret.
        ("ValidateConfigMap: keys", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a b": "x"}}),
            vec!["data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"]),
        ("ValidateConfigMap: key in data and binaryData", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "x"}, "binaryData": {"k": "eA=="}}),
            vec!["binaryData[k]: Invalid value: \"k\": duplicate of key present in data"]),
        ("ValidateSecret: tls keys", json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}),
            vec!["data[tls.key]: Required value"]),
        ("ValidateSecret: service account token annotation", json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/service-account-token"}),
            vec!["metadata.annotations[kubernetes.io/service-account.name]: Required value"]),
        ("ValidateNodeSpec: taint effect", json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}),
            vec!["spec.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""]),
        ("ValidateReplicationController: template restartPolicy", json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"},
            "spec": {"selector": {"a": "b"}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"restartPolicy": "Never", "containers": [ctr(json!({}))]}}}}),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]),
        // apps.
        ("valid deployment", deploy(json!({})), vec![]),
        ("ValidateDeploymentSpec: selector must match template", deploy(json!({"selector": {"matchLabels": {"app": "x"}}})),
            vec!["spec.template.metadata.labels: Invalid value: {\"app\": \"w\"}: `selector` does not match template `labels`"]),
        ("ValidateDeploymentSpec: empty selector", deploy(json!({"selector": {}})),
            vec!["spec.selector: Invalid value: \"\": empty selector is invalid for deployment"]),
        ("ValidateDeploymentStrategy: Recreate with rollingUpdate", deploy(json!({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}})),
            vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]),
        ("ValidateDeploymentStrategy: type", deploy(json!({"strategy": {"type": "BlueGreen"}})),
            vec!["spec.strategy.Type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\""]),
        ("ValidateRollingUpdateDeployment: both zero", deploy(json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}})),
            vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"]),
        ("ValidateRollingUpdateDeployment: over 100%", deploy(json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}}})),
            vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%"]),
        ("ValidatePositiveIntOrPercent", deploy(json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x"}}})),
            vec!["spec.strategy.rollingUpdate.maxSurge: Invalid value: \"x\": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"]),
        ("ValidateDeploymentSpec: progressDeadlineSeconds > minReadySeconds", deploy(json!({"minReadySeconds": 30, "progressDeadlineSeconds": 10})),
            vec!["spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"]),
        ("ValidatePodTemplateSpecForReplicaSet: restartPolicy Always", deploy(json!({"template": {"metadata": {"labels": {"app": "w"}}, "spec": {"restartPolicy": "OnFailure", "containers": [ctr(json!({}))]}}})),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\""]),
        ("ValidateDaemonSetUpdateStrategy: surge and unavailable", json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [ctr(json!({}))]}}}}),
            vec!["spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero"]),
        ("ValidateStatefulSetSpec: podManagementPolicy", json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {"podManagementPolicy": "Random", "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [ctr(json!({}))]}}}}),
            vec!["spec.podManagementPolicy: Unsupported value: \"Random\": supported values: \"OrderedReady\", \"Parallel\""]),
        // batch.
        ("ValidateJobSpec: restartPolicy OnFailure/Never (defaulted Always rejected)", json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [ctr(json!({}))]}}}}),
            vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]),
        ("ValidateJobSpec: negative backoffLimit", json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"backoffLimit": -1, "template": {"spec": {"restartPolicy": "Never", "containers": [ctr(json!({}))]}}}}),
            vec!["spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"]),
        ("ValidateJobSpec: Indexed needs completions", json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"completionMode": "Indexed", "parallelism": 2, "template": {"spec": {"restartPolicy": "Never", "containers": [ctr(json!({}))]}}}}),
            vec!["spec.completions: Required value: when completion mode is Indexed"]),
        // policy.
        ("ValidatePodDisruptionBudgetSpec: minAvailable xor maxUnavailable", json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"}, "spec": {"minAvailable": 1, "maxUnavailable": 1}}),
            vec!["spec: Invalid value: {...}: minAvailable and maxUnavailable cannot be both set"]),
        ("ValidatePodDisruptionBudgetSpec: percent", json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"}, "spec": {"minAvailable": "120%"}}),
            vec!["spec.minAvailable: Invalid value: \"120%\": must not be greater than 100%"]),
        // others.
        ("ValidateHorizontalPodAutoscaler: min/max", json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"minReplicas": 5, "maxReplicas": 2, "scaleTargetRef": {"kind": "Deployment", "name": "w"}}}),
            vec!["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]),
        ("ValidatePriorityClass: system- prefix and value", json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "system-x"}, "value": 2_000_000_000}),
            vec!["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved", "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]),
        ("ValidateLease: duration", json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}),
            vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]),
        ("ValidateCustomResourceDefinition: name", json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "shirts.example.com"},
            "spec": {"group": "stable.example.com", "scope": "Namespaced", "names": {"plural": "shirts", "kind": "Shirt"},
                     "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}}),
            vec!["metadata.name: Invalid value: \"shirts.example.com\": must be spec.names.plural+\".\"+spec.group"]),
        ("ValidateEventCreate (events.k8s.io): required fields", json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": "2024-01-01T00:00:00.000000Z"}),
            vec!["reportingController: Required value", "reportingInstance: Required value", "action: Required value", "reason: Required value"]),
    ];
    for (rule, input, want) in cases {
        assert_eq!(errors(input), want, "{rule}");
    }
}

#[test]
fn status_causes_use_upstream_reasons() {
    let d = obj(pod_with(
        json!({"restartPolicy": "x", "containers": [{"name": "c"}]}),
    ));
    let errs = validate(&d);
    let reasons: Vec<String> = errs
        .iter()
        .map(|e| e.to_status_cause().reason.unwrap())
        .collect();
    assert_eq!(reasons, ["FieldValueRequired", "FieldValueNotSupported"]);
    let api = invalid_error(&d, &errs);
    assert_eq!(api.code, 422);
    assert_eq!(
        api.message,
        "Pod \"p\" is invalid: [spec.containers[0].image: Required value, spec.restartPolicy: Unsupported value: \"x\": supported values: \"Always\", \"OnFailure\", \"Never\"]"
    );
    let causes = api.details.unwrap().causes.unwrap();
    assert_eq!(causes[0].field.as_deref(), Some("spec.containers[0].image"));
    let kinds = [
        FieldErrorKind::Duplicate,
        FieldErrorKind::Invalid,
        FieldErrorKind::TooLong,
        FieldErrorKind::Forbidden,
    ];
    let names: Vec<&str> = kinds.iter().map(|k| k.cause_type()).collect();
    assert_eq!(
        names,
        [
            "FieldValueDuplicate",
            "FieldValueInvalid",
            "FieldValueTooLong",
            "FieldValueForbidden"
        ]
    );
}

/// Update rules (`ValidatePodUpdate`, `ValidateDeploymentUpdate`, ...).
#[test]
fn updates() {
    let old = obj(pod_with(json!({"containers": [ctr(json!({}))]})));
    let mut new_image = old.clone();
    new_image.data["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    assert!(validate_update(&new_image, &old).is_empty());
    let mut new_port = old.clone();
    new_port.data["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .insert("ports".into(), json!([{"containerPort": 80}]));
    let errs = validate_update(&new_port, &old);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "spec");
    assert_eq!(errs[0].kind, FieldErrorKind::Forbidden);
    let mut tol = old.clone();
    tol.data["spec"].as_object_mut().unwrap().insert(
        "tolerations".into(),
        json!([{"key": "k", "operator": "Exists"}]),
    );
    assert!(
        validate_update(&tol, &old).is_empty(),
        "adding tolerations is allowed"
    );
    let mut tol_seconds = tol.clone();
    tol_seconds.data["spec"]["tolerations"] =
        json!([{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]);
    let mut tol_seconds_changed = tol_seconds.clone();
    tol_seconds_changed.data["spec"]["tolerations"][0]["tolerationSeconds"] = json!(60);
    assert!(
        validate_update(&tol_seconds_changed, &tol_seconds).is_empty(),
        "an existing toleration's tolerationSeconds may change"
    );
    let errs: Vec<String> = validate_update(&old, &tol)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"],
        "removing a toleration is refused on its own (upstream validateOnlyAddedTolerations)"
    );

    let d_old = obj(deploy(json!({})));
    let mut d_new = obj(deploy(
        json!({"selector": {"matchLabels": {"app": "w", "x": "y"}},
        "template": {"metadata": {"labels": {"app": "w", "x": "y"}}, "spec": {"containers": [ctr(json!({}))]}}}),
    ));
    d_new.metadata = d_old.metadata.clone();
    let errs: Vec<String> = validate_update(&d_new, &d_old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        ["spec.selector: Invalid value: \"app=w,x=y\": field is immutable"]
    );

    let s_old = obj(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "immutable": true, "data": {"a": "eA=="}}),
    );
    let mut s_new = s_old.clone();
    s_new.data["data"] = json!({"a": "eQ=="});
    s_new
        .data
        .insert("type".into(), json!("kubernetes.io/basic-auth"));
    let errs: Vec<String> = validate_update(&s_new, &s_old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errs.contains(
            &"type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable".to_string()
        ),
        "{errs:?}"
    );
    assert!(
        errs.contains(&"data: Forbidden: field is immutable when `immutable` is set".to_string()),
        "{errs:?}"
    );

    let mut renamed = old.clone();
    renamed.metadata.name = Some("q".into());
    let errs: Vec<String> = validate_update(&renamed, &old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        ["metadata.name: Invalid value: \"q\": field is immutable"]
    );
}

#[test]
fn unknown_kinds_get_metadata_checks_and_bad_shapes_are_errors() {
    assert!(errors(
        json!({"apiVersion": "example.com/v1", "kind": "Shirt", "metadata": {"name": "s"}})
    )
    .is_empty());
    let bad = errors(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": 3}}),
    );
    assert_eq!(bad.len(), 1);
    assert!(bad[0].contains("cannot convert Pod object"), "{bad:?}");
}

/// `ValidateStatefulSetUpdate`, `ValidateJobSpecUpdate`, `ValidatePriorityClassUpdate`.
#[test]
fn more_update_rules() {
    let sts = |svc: &str, replicas: i64| {
        obj(
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
            "spec": {"serviceName": svc, "replicas": replicas, "selector": {"matchLabels": {"a": "b"}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}],
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [ctr(json!({"volumeMounts": [{"name": "data", "mountPath": "/d"}]}))]}}}}),
        )
    };
    // Mounting a claim template is valid (union of volumes and volumeClaimTemplates).
    assert!(validate(&sts("svc", 1)).is_empty());
    assert!(
        validate_update(&sts("svc", 5), &sts("svc", 1)).is_empty(),
        "replicas may change"
    );
    let errs = validate_update(&sts("other", 1), &sts("svc", 1));
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (errs[0].path.as_str(), errs[0].kind),
        ("spec", FieldErrorKind::Forbidden)
    );

    let job = |image: &str, suspend: bool| {
        obj(
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"suspend": suspend, "template": {"spec": {"restartPolicy": "Never", "containers": [ctr(json!({"image": image}))]}}}}),
        )
    };
    let errs: Vec<String> = validate_update(&job("busybox:2", false), &job("busybox:1", false))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        ["spec.template: Invalid value: {...}: field is immutable"]
    );
    assert!(
        validate_update(&job("busybox:2", true), &job("busybox:1", true)).is_empty(),
        "suspended jobs may change the template"
    );

    let pc = |v: i64| {
        obj(
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"}, "value": v}),
        )
    };
    let errs: Vec<String> = validate_update(&pc(2), &pc(1))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs, ["value: Forbidden: may not be changed in an update."]);
}

/// Every error of a badly broken Deployment, as a reviewer reads them.
#[test]
fn broken_deployment_snapshot() {
    let d = obj(deploy(json!({
        "replicas": -1,
        "revisionHistoryLimit": -3,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "0%"}},
        "template": {"metadata": {"labels": {"app": "w"}}, "spec": {
            "containers": [
                {"name": "Web", "image": "nginx", "ports": [{"containerPort": 0}]},
                {"name": "side", "image": "busybox", "livenessProbe": {"exec": {"command": []}}}
            ],
            "tolerations": [{"key": "k", "operator": "Maybe"}]
        }}
    })));
    insta::assert_yaml_snapshot!(validate(&d));
}

/// The admission entry points (object already defaulted) give what the defaulting ones give,
/// and a status write checks only what the status subresource may change.
#[test]
fn defaulted_entry_points_agree() {
    use crate::validation::{
        validate_defaulted, validate_status_update, validate_update_defaulted,
    };
    let pod = |image: &str, extra: serde_json::Value| {
        let mut v = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": image}], "restartPolicy": "Bogus"}});
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        DynamicObject::from_value(v).unwrap()
    };
    let old = pod("nginx:1", serde_json::json!({}));
    let new = pod(
        "nginx:2",
        serde_json::json!({"spec": {"containers": [{"name": "c", "image": "x"}], "nodeName": "n"}}),
    );
    let mut dnew = new.clone();
    crate::defaults::apply_defaults(&mut dnew).unwrap();
    let lines = |e: Vec<super::FieldError>| e.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(lines(validate_defaulted(&dnew)), lines(validate(&new)));
    let update = lines(validate_update_defaulted(&dnew, &old));
    assert_eq!(update, lines(validate_update(&new, &old)));
    assert!(
        update.iter().any(|l| l.starts_with("spec: Forbidden")),
        "{update:?}"
    );
    // Status: metadata rules only (the spec is the stored one).
    let mut renamed = old.clone();
    renamed.metadata.name = Some("q".into());
    assert_eq!(
        lines(validate_status_update(&old, &old)),
        Vec::<String>::new()
    );
    assert_eq!(
        lines(validate_status_update(&renamed, &old)),
        ["metadata.name: Invalid value: \"q\": field is immutable"]
    );
}

fn pvc(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}, "spec": spec})
}

fn pv(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "vol"}, "spec": spec})
}

fn local_affinity() -> Value {
    json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}})
}

/// `ValidatePersistentVolumeClaim`, `ValidatePersistentVolume`, `ValidateStorageClass`.
#[test]
fn storage_table() {
    let rwo = json!(["ReadWriteOnce"]);
    let req = json!({"requests": {"storage": "1Gi"}});
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("valid claim", pvc(json!({"accessModes": rwo, "resources": req})), vec![]),
        ("ValidatePersistentVolumeClaimSpec: storage request required (path keyed on resources)",
            pvc(json!({"accessModes": rwo})),
            vec!["spec.resources[storage]: Required value"]),
        ("ValidatePersistentVolumeClaimSpec: access modes required and known",
            pvc(json!({"accessModes": ["ReadWriteSometimes"], "resources": req})),
            vec!["spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\""]),
        ("ValidatePersistentVolumeClaimSpec: at least one access mode",
            pvc(json!({"resources": req})),
            vec!["spec.accessModes: Required value: at least 1 access mode is required"]),
        ("ValidatePersistentVolumeClaimSpec: ReadWriteOncePod alone",
            pvc(json!({"accessModes": ["ReadWriteOncePod", "ReadWriteOnce"], "resources": req})),
            vec!["spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"]),
        ("ValidatePositiveQuantityValue: storage above zero",
            pvc(json!({"accessModes": rwo, "resources": {"requests": {"storage": "0"}}})),
            vec!["spec.resources[storage]: Invalid value: \"0\": must be greater than zero"]),
        ("ValidateClassName", pvc(json!({"accessModes": rwo, "resources": req, "storageClassName": "Fast_SSD"})),
            vec!["spec.storageClassName: Invalid value: \"Fast_SSD\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
        ("supportedVolumeModes", pvc(json!({"accessModes": rwo, "resources": req, "volumeMode": "Raw"})),
            vec!["spec.volumeMode: Unsupported value: \"Raw\": supported values: \"Block\", \"Filesystem\""]),
        ("valid local volume", pv(json!({"accessModes": rwo, "capacity": {"storage": "1Gi"},
            "local": {"path": "/mnt/a"}, "nodeAffinity": local_affinity()})), vec![]),
        ("ValidatePersistentVolumeSpec: capacity, modes and a source required", pv(json!({})),
            vec!["spec.accessModes: Required value",
                 "spec.capacity: Required value",
                 "spec.capacity: Unsupported value: \"[]\": supported values: \"storage\"",
                 "spec: Required value: must specify a volume type"]),
        ("ValidatePersistentVolumeSpec: one volume source", pv(json!({"accessModes": rwo, "capacity": {"storage": "1Gi"},
            "hostPath": {"path": "/tmp/a"}, "nfs": {"server": "s", "path": "/x"}})),
            vec!["spec.nfs: Forbidden: may not specify more than 1 volume type"]),
        ("validateLocalVolumeSource: node affinity required, no backsteps", pv(json!({"accessModes": rwo,
            "capacity": {"storage": "1Gi"}, "local": {"path": "/mnt/../etc"}})),
            vec!["spec.local.path: Invalid value: \"/mnt/../etc\": must not contain '..'",
                 "spec.nodeAffinity: Required value: Local volume requires node affinity"]),
        ("validateVolumeNodeAffinity: required terms", pv(json!({"accessModes": rwo, "capacity": {"storage": "1Gi"},
            "hostPath": {"path": "/tmp/a"}, "nodeAffinity": {}, "persistentVolumeReclaimPolicy": "Keep"})),
            vec!["spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\"",
                 "spec.nodeAffinity.required: Required value: must specify required node constraints"]),
        ("valid storage class", json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
            "provisioner": "orch.dev/local"}), vec![]),
        ("ValidateStorageClass: provisioner, reclaim policy, binding mode", json!({"apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass", "metadata": {"name": "fast"}, "provisioner": "",
            "reclaimPolicy": "Recycle", "volumeBindingMode": "Later"}),
            vec!["provisioner: Required value",
                 "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
                 "volumeBindingMode: Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\""]),
    ];
    for (rule, o, want) in cases {
        assert_eq!(errors(o), want, "{rule}");
    }
}

/// `ValidatePersistentVolumeClaimUpdate`, `ValidatePersistentVolumeUpdate`,
/// `ValidateStorageClassUpdate`.
#[test]
fn storage_updates() {
    let lines = |new: &Value, old: &Value| -> Vec<String> {
        validate_update(&obj(new.clone()), &obj(old.clone()))
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let old = pvc(
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "local"}),
    );
    // Binding sets volumeName once.
    let mut bound = old.clone();
    bound["spec"]["volumeName"] = json!("pvc-1");
    assert!(lines(&bound, &old).is_empty());
    let mut rebound = bound.clone();
    rebound["spec"]["volumeName"] = json!("pvc-2");
    assert_eq!(
        lines(&rebound, &bound),
        ["spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"]
    );
    // Expansion only for a bound claim.
    let mut bigger = old.clone();
    bigger["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert_eq!(lines(&bigger, &old).len(), 1, "pending claims cannot grow");
    let mut bound_status = bound.clone();
    bound_status["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"}});
    let mut grown = bound_status.clone();
    grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert!(lines(&grown, &bound_status).is_empty());
    let mut shrunk = bound_status.clone();
    shrunk["spec"]["resources"]["requests"]["storage"] = json!("512Mi");
    assert_eq!(
        lines(&shrunk, &bound_status),
        ["spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"]
    );
    // RetroactiveDefaultStorageClass: a class may be set where there was none.
    let classless = pvc(
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}),
    );
    assert!(lines(&old, &classless).is_empty());
    let mut other_class = old.clone();
    other_class["spec"]["storageClassName"] = json!("fast");
    assert_eq!(lines(&other_class, &old).len(), 1);
    let mut block = old.clone();
    block["spec"]["volumeMode"] = json!("Block");
    assert!(lines(&block, &old)
        .contains(&"volumeMode: Invalid value: \"Block\": field is immutable".to_string()));

    let pv_old = pv(
        json!({"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
        "local": {"path": "/mnt/a"}, "nodeAffinity": local_affinity()}),
    );
    let mut pv_claimed = pv_old.clone();
    pv_claimed["spec"]["claimRef"] = json!({"namespace": "default", "name": "data"});
    assert!(lines(&pv_claimed, &pv_old).is_empty());
    let mut pv_moved = pv_old.clone();
    pv_moved["spec"]["local"]["path"] = json!("/mnt/b");
    assert_eq!(
        lines(&pv_moved, &pv_old),
        ["spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"]
    );

    let sc = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
        "provisioner": "orch.dev/local", "volumeBindingMode": "WaitForFirstConsumer"});
    let mut sc_new = sc.clone();
    sc_new["provisioner"] = json!("other.dev/x");
    sc_new["volumeBindingMode"] = json!("Immediate");
    assert_eq!(
        lines(&sc_new, &sc),
        [
            "provisioner: Forbidden: updates to provisioner are forbidden.",
            "volumeBindingMode: Invalid value: \"Immediate\": field is immutable"
        ]
    );
}

fn cron_job(spec_patch: Value) -> Value {
    let mut spec = json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
        "restartPolicy": "OnFailure", "containers": [ctr(json!({}))]}}}}});
    if let (Value::Object(b), Value::Object(e)) = (&mut spec, spec_patch) {
        b.extend(e);
    }
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"}, "spec": spec})
}

/// `ValidateCronJobCreate` / `validateCronJobSpec` / `validateScheduleFormat` /
/// `validateTimeZone` / `ValidateJobTemplateSpec`.
#[test]
fn cron_job_table() {
    let long = "c".repeat(53);
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("valid", cron_job(json!({})), vec![]),
        ("valid: names, descriptor, time zone", cron_job(json!({"schedule": "0 9 * JAN-MAR mon-fri", "timeZone": "Europe/Paris"})), vec![]),
        ("valid: @every", cron_job(json!({"schedule": "@every 1h"})), vec![]),
        ("schedule must parse", cron_job(json!({"schedule": "not a cron"})),
            vec!["spec.schedule: Invalid value: \"not a cron\": expected exactly 5 fields, found 3: [not a cron]"]),
        ("schedule bounds", cron_job(json!({"schedule": "0 24 * * *"})),
            vec!["spec.schedule: Invalid value: \"0 24 * * *\": end of range (24) above maximum (23): 24"]),
        ("schedule required", cron_job(json!({"schedule": ""})),
            vec!["spec.schedule: Required value"]),
        ("TZ in schedule", cron_job(json!({"schedule": "TZ=UTC 0 * * * *"})),
            vec!["spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"]),
        ("CRON_TZ in schedule", cron_job(json!({"schedule": "CRON_TZ=Europe/Paris 0 * * * *"})),
            vec!["spec.schedule: Invalid value: \"CRON_TZ=Europe/Paris 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"]),
        ("unknown time zone", cron_job(json!({"timeZone": "Mars/Olympus_Mons"})),
            vec!["spec.timeZone: Invalid value: \"Mars/Olympus_Mons\": unknown time zone Mars/Olympus_Mons"]),
        ("bad time zone characters", cron_job(json!({"timeZone": "../etc/passwd"})),
            vec!["spec.timeZone: Invalid value: \"../etc/passwd\": unknown time zone ../etc/passwd"]),
        ("empty time zone", cron_job(json!({"timeZone": ""})),
            vec!["spec.timeZone: Invalid value: \"\": timeZone must be nil or non-empty string"]),
        ("Local time zone", cron_job(json!({"timeZone": "Local"})),
            vec!["spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"]),
        ("concurrencyPolicy", cron_job(json!({"concurrencyPolicy": "Sometimes"})),
            vec!["spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""]),
        ("startingDeadlineSeconds", cron_job(json!({"startingDeadlineSeconds": -1})),
            vec!["spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0"]),
        ("history limits", cron_job(json!({"successfulJobsHistoryLimit": -1, "failedJobsHistoryLimit": -2})),
            vec!["spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
                 "spec.failedJobsHistoryLimit: Invalid value: -2: must be greater than or equal to 0"]),
        ("jobTemplate like a Job's spec", cron_job(json!({"jobTemplate": {"spec": {"backoffLimit": -1, "template": {"spec": {"containers": [ctr(json!({}))]}}}}})),
            vec!["spec.jobTemplate.spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
                 "spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]),
        ("jobTemplate selector is generated", cron_job(json!({"jobTemplate": {"spec": {"selector": {"matchLabels": {"a": "b"}}, "manualSelector": true,
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"restartPolicy": "Never", "containers": [ctr(json!({}))]}}}}})),
            vec!["spec.jobTemplate.spec.selector: Invalid value: {...}: `selector` will be auto-generated",
                 "spec.jobTemplate.spec.manualSelector: Unsupported value: \"true\": supported values: \"nil\", \"false\""]),
    ];
    for (rule, input, want) in cases {
        assert_eq!(errors(input), want, "{rule}");
    }
    let mut named = cron_job(json!({}));
    named["metadata"]["name"] = json!(long);
    assert_eq!(
        errors(named),
        [format!(
            "metadata.name: Invalid value: \"{long}\": must be no more than 52 characters"
        )]
    );
}

/// `ValidateCronJobUpdate`: a `TZ=` already in the schedule may stay (but not beside
/// `timeZone`); the name length is not checked again; a time zone is only checked when it
/// changes.
#[test]
fn cron_job_updates() {
    let upd = |new: Value, old: Value| -> Vec<String> {
        validate_update(&obj(new), &obj(old))
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let legacy = cron_job(json!({"schedule": "TZ=UTC 0 * * * *"}));
    assert!(upd(
        cron_job(json!({"schedule": "TZ=UTC 5 * * * *"})),
        legacy.clone()
    )
    .is_empty());
    assert_eq!(
        upd(
            cron_job(json!({"schedule": "TZ=UTC 5 * * * *", "timeZone": "UTC"})),
            legacy
        ),
        ["spec.schedule: Invalid value: \"TZ=UTC 5 * * * *\": cannot use both timeZone field and TZ or CRON_TZ in schedule"]
    );
    assert_eq!(
        upd(
            cron_job(json!({"schedule": "TZ=UTC 5 * * * *"})),
            cron_job(json!({}))
        ),
        ["spec.schedule: Invalid value: \"TZ=UTC 5 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"]
    );
    let mut long = cron_job(json!({"suspend": true}));
    long["metadata"]["name"] = json!("c".repeat(60));
    let mut long_old = cron_job(json!({}));
    long_old["metadata"]["name"] = json!("c".repeat(60));
    assert!(upd(long, long_old).is_empty());
}

/// A valid Job (`restartPolicy: Never`, one container `c`, one init container `init`) with
/// `spec_patch` merged into its spec.
fn job(spec_patch: Value) -> Value {
    let mut spec = json!({"template": {"spec": {"restartPolicy": "Never",
        "initContainers": [{"name": "init", "image": "busybox:1"}], "containers": [ctr(json!({}))]}}});
    if let (Value::Object(b), Value::Object(e)) = (&mut spec, spec_patch) {
        b.extend(e);
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": spec})
}

/// An Indexed Job of `completions` with `spec_patch` merged into its spec.
fn indexed_job(completions: i64, spec_patch: Value) -> Value {
    let mut j = job(spec_patch);
    j["spec"]["completionMode"] = json!("Indexed");
    j["spec"]["completions"] = json!(completions);
    j
}

/// A pod failure policy of these rules.
fn pfp(rules: Value) -> Value {
    json!({"podFailurePolicy": {"rules": rules}})
}

/// `validatePodFailurePolicy`, `validatePodFailurePolicyRule`, `…RuleOnExitCodes`,
/// `…RuleOnPodConditions` and the `restartPolicy` rule of `validateJobSpec`.
#[test]
fn job_pod_failure_policy_table() {
    let exit = |op: &str, values: Value| json!([{"action": "FailJob", "onExitCodes": {"operator": op, "values": values}}]);
    let cases: Vec<(&str, Value, Vec<String>)> = vec![
        ("valid: exit codes, a condition without status (defaulted True), NotIn 0",
            job(pfp(json!([
                {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [1, 2, 42]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {"action": "Count", "onExitCodes": {"containerName": "init", "operator": "NotIn", "values": [0]}}]))),
            vec![]),
        ("restartPolicy must be Never", {
            let mut j = job(pfp(exit("In", json!([1]))));
            j["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
            j
        }, vec!["spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified".into()]),
        ("at most 20 rules", job(pfp(Value::Array(vec![exit("In", json!([1]))[0].clone(); 21]))),
            vec!["spec.podFailurePolicy.rules: Too many: 21: must have at most 20 items".into()]),
        ("exactly one of onExitCodes / onPodConditions", job(pfp(json!([
                {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}, "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {"action": "Ignore"},
                {"action": "Ignore", "onPodConditions": []}]))),
            vec!["spec.podFailurePolicy.rules[0]: Invalid value: specifying both OnExitCodes and OnPodConditions is not supported".into(),
                 "spec.podFailurePolicy.rules[1]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required".into(),
                 "spec.podFailurePolicy.rules[2]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required".into()]),
        ("action", job(pfp(json!([
                {"action": "", "onExitCodes": {"operator": "In", "values": [1]}},
                {"action": "Retry", "onExitCodes": {"operator": "In", "values": [1]}},
                {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]}}]))),
            vec!["spec.podFailurePolicy.rules[0].action: Required value: valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]".into(),
                 "spec.podFailurePolicy.rules[1].action: Unsupported value: \"Retry\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"".into(),
                 "spec.podFailurePolicy.rules[2].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set".into()]),
        ("onExitCodes operator", job(pfp(json!([
                {"action": "FailJob", "onExitCodes": {"operator": "", "values": [1]}},
                {"action": "FailJob", "onExitCodes": {"operator": "Equals", "values": [1]}}]))),
            vec!["spec.podFailurePolicy.rules[0].onExitCodes.operator: Required value: valid values: [\"In\" \"NotIn\"]".into(),
                 "spec.podFailurePolicy.rules[1].onExitCodes.operator: Unsupported value: \"Equals\": supported values: \"In\", \"NotIn\"".into()]),
        ("onExitCodes containerName", job(pfp(json!([{"action": "FailJob", "onExitCodes": {"containerName": "sidecar", "operator": "In", "values": [1]}}]))),
            vec!["spec.podFailurePolicy.rules[0].onExitCodes.containerName: Invalid value: \"sidecar\": must be one of the container or initContainer names in the pod template".into()]),
        ("onExitCodes values required", job(pfp(exit("NotIn", json!([])))),
            vec!["spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32{}: at least one value is required".into()]),
        ("onExitCodes at most 255 values", job(pfp(exit("NotIn", json!((1..=256).collect::<Vec<i32>>())))),
            vec!["spec.podFailurePolicy.rules[0].onExitCodes.values: Too many: 256: must have at most 255 items".into()]),
        ("onExitCodes: no 0 with In, unique, ascending", job(pfp(exit("In", json!([0, 3, 2, 2])))),
            vec!["spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator".into(),
                 "spec.podFailurePolicy.rules[0].onExitCodes.values[3]: Duplicate value: 2".into(),
                 "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32{0, 3, 2, 2}: must be ordered".into()]),
        ("onPodConditions type and status", job(pfp(json!([{"action": "Ignore", "onPodConditions": [
                {"type": "Disruption Target", "status": "True"}, {"type": "Ready", "status": "Maybe"}]}]))),
            vec!["spec.podFailurePolicy.rules[0].onPodConditions[0].type: Invalid value: \"Disruption Target\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into(),
                 "spec.podFailurePolicy.rules[0].onPodConditions[1].status: Unsupported value: \"Maybe\": supported values: \"False\", \"True\", \"Unknown\"".into()]),
        ("onPodConditions at most 20 patterns", job(pfp(json!([{"action": "Ignore",
                "onPodConditions": vec![json!({"type": "DisruptionTarget", "status": "True"}); 21]}]))),
            vec!["spec.podFailurePolicy.rules[0].onPodConditions: Too many: 21: must have at most 20 items".into()]),
        ("validatePodReplacementPolicy: only Failed with a pod failure policy", {
            let mut j = job(pfp(exit("In", json!([1]))));
            j["spec"]["podReplacementPolicy"] = json!("TerminatingOrFailed");
            j
        }, vec!["spec.podReplacementPolicy: Unsupported value: \"TerminatingOrFailed\": supported values: \"Failed\"".into()]),
    ];
    for (rule, input, want) in cases {
        assert_eq!(errors(input), want, "{rule}");
    }
}

/// `validateJobSpec` on `backoffLimitPerIndex` / `maxFailedIndexes` / Indexed limits, and
/// `ValidateJob`'s pod hostname rule.
#[test]
fn job_indexed_limits_table() {
    let long = "j".repeat(60);
    let cases: Vec<(&str, Value, Vec<String>)> = vec![
        ("valid: per-index backoff, FailIndex",
            indexed_job(10, json!({"backoffLimitPerIndex": 1, "maxFailedIndexes": 10, "podFailurePolicy": {"rules": [
                {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}}]}})),
            vec![]),
        ("NonIndexed", job(json!({"backoffLimitPerIndex": 1, "maxFailedIndexes": 2})),
            vec!["spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode".into(),
                 "spec.maxFailedIndexes: Invalid value: 2: requires indexed completion mode".into()]),
        ("maxFailedIndexes needs backoffLimitPerIndex", indexed_job(5, json!({"maxFailedIndexes": 1})),
            vec!["spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified".into()]),
        ("negative", indexed_job(5, json!({"backoffLimitPerIndex": -1, "maxFailedIndexes": -1})),
            vec!["spec.backoffLimitPerIndex: Invalid value: -1: must be greater than or equal to 0".into(),
                 "spec.maxFailedIndexes: Invalid value: -1: must be greater than or equal to 0".into()]),
        ("maxFailedIndexes at most completions", indexed_job(3, json!({"backoffLimitPerIndex": 1, "maxFailedIndexes": 4})),
            vec!["spec.maxFailedIndexes: Invalid value: 4: must be less than or equal to completions".into()]),
        ("Indexed parallelism at most 10^5", indexed_job(100_001, json!({"parallelism": 100_001})),
            vec!["spec.parallelism: Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed".into()]),
        ("above 10^5 completions with backoffLimitPerIndex: maxFailedIndexes required, parallelism at most 10^4",
            indexed_job(200_000, json!({"parallelism": 20_000, "backoffLimitPerIndex": 1})),
            vec!["spec.maxFailedIndexes: Required value: must be specified when completions is above 100000".into(),
                 "spec.parallelism: Invalid value: 20000: must be less than or equal to 10000 when completions are above 100000 and used with backoff limit per index".into()]),
        ("maxFailedIndexes at most 10^5, and 10^4 above 10^5 completions",
            indexed_job(200_000, json!({"parallelism": 10, "backoffLimitPerIndex": 1, "maxFailedIndexes": 150_000})),
            vec!["spec.maxFailedIndexes: Invalid value: 150000: must be less than or equal to 100000".into(),
                 "spec.maxFailedIndexes: Invalid value: 150000: must be less than or equal to 10000 when completions are above 100000 and used with backoff limit per index".into()]),
        ("ValidateJob: the last pod hostname is a DNS label", {
            let mut j = indexed_job(1000, json!({}));
            j["metadata"]["name"] = json!(long);
            j
        }, vec![format!("metadata.name: Invalid value: \"{long}\": will not able to create pod with invalid DNS label: {long}-999")]),
    ];
    for (rule, input, want) in cases {
        assert_eq!(errors(input), want, "{rule}");
    }
}

/// `validateSuccessPolicy`, `validateSuccessPolicyRule`, `validateIndexesFormat`.
#[test]
fn job_success_policy_table() {
    let sp = |rules: Value| json!({"successPolicy": {"rules": rules}});
    let ix = |s: &str| indexed_job(5, sp(json!([{"succeededIndexes": s}])));
    let parse_err = |s: &str, e: &str| {
        vec![format!("spec.successPolicy.rules[0].succeededIndexes: Invalid value: \"{s}\": error parsing succeededIndexes: {e}")]
    };
    let cases: Vec<(&str, Value, Vec<String>)> = vec![
        ("valid", indexed_job(5, sp(json!([{"succeededIndexes": "0,2-4", "succeededCount": 4}, {"succeededCount": 0}]))), vec![]),
        ("Indexed only", job(sp(json!([{"succeededCount": 1}]))),
            vec!["spec.successPolicy: Invalid value: {...}: requires indexed completion mode".into()]),
        ("at least one rule", indexed_job(5, sp(json!([]))),
            vec!["spec.successPolicy.rules: Required value: at least one rules must be specified when the successPolicy is specified".into()]),
        ("at most 20 rules", indexed_job(5, sp(Value::Array(vec![json!({"succeededCount": 1}); 21]))),
            vec!["spec.successPolicy.rules: Too many: 21: must have at most 20 items".into()]),
        ("a rule needs indexes or a count", indexed_job(5, sp(json!([{}]))),
            vec!["spec.successPolicy.rules[0]: Required value: at least one of succeededCount or succeededIndexes must be specified".into()]),
        ("indexes below completions", ix("1,5"), parse_err("1,5", "too large index: \"5\"")),
        ("indexes ascending", ix("1-2,2"), parse_err("1-2,2", "non-increasing order, previous: 2, current: 2")),
        ("interval ascending", ix("3-1"), parse_err("3-1", "non-increasing order, previous: 3, current: 1")),
        ("indexes are integers", ix("a"), parse_err("a", "cannot convert string to integer for index: \"a\"")),
        ("two-part intervals", ix("1-2-3"),
            parse_err("1-2-3", "the fragment \"1-2-3\" violates the requirement that an index interval can have at most two parts separated by '-'")),
        ("indexes at most 64 KiB", ix(&"0".repeat(65_537)),
            vec!["spec.successPolicy.rules[0].succeededIndexes: Too long: may not be more than 65536 bytes".into()]),
        ("count non-negative, at most completions", indexed_job(5, sp(json!([{"succeededCount": -1}, {"succeededCount": 6}]))),
            vec!["spec.successPolicy.rules[0].succeededCount: Invalid value: -1: must be greater than or equal to 0".into(),
                 "spec.successPolicy.rules[1].succeededCount: Invalid value: 6: must be less than or equal to 5 (the number of specified completions)".into()]),
        ("count at most the listed indexes", indexed_job(5, sp(json!([{"succeededIndexes": "0-1", "succeededCount": 3}]))),
            vec!["spec.successPolicy.rules[0].succeededCount: Invalid value: 3: must be less than or equal to 2 (the number of indexes in the specified succeededIndexes field)".into()]),
    ];
    for (rule, input, want) in cases {
        assert_eq!(errors(input), want, "{rule}");
    }
}

/// `ValidateJobSpecUpdate`: podFailurePolicy, backoffLimitPerIndex and successPolicy are
/// immutable; maxFailedIndexes is not.
#[test]
fn job_policy_updates() {
    let upd = |new: Value, old: Value| -> Vec<String> {
        validate_update(&obj(new), &obj(old))
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let per_index = |limit: i64, max_failed: i64| {
        indexed_job(
            5,
            json!({"backoffLimitPerIndex": limit, "maxFailedIndexes": max_failed}),
        )
    };
    assert!(upd(per_index(1, 2), per_index(1, 1)).is_empty());
    assert_eq!(
        upd(per_index(2, 1), per_index(1, 1)),
        ["spec.backoffLimitPerIndex: Invalid value: 2: field is immutable"]
    );
    let with_pfp = |code: i64| {
        job(pfp(
            json!([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [code]}}]),
        ))
    };
    assert_eq!(
        upd(with_pfp(2), with_pfp(1)),
        ["spec.podFailurePolicy: Invalid value: {...}: field is immutable"]
    );
    let with_sp = |count: Option<i64>| match count {
        Some(c) => indexed_job(
            5,
            json!({"successPolicy": {"rules": [{"succeededCount": c}]}}),
        ),
        None => indexed_job(5, json!({})),
    };
    assert_eq!(
        upd(with_sp(Some(1)), with_sp(None)),
        ["spec.successPolicy: Invalid value: {...}: field is immutable"]
    );
    assert_eq!(
        upd(with_sp(None), with_sp(Some(1))),
        ["spec.successPolicy: Invalid value: \"null\": field is immutable"]
    );
}

/// A CronJob's `jobTemplate` gets the same Job rules (and the pattern status default).
#[test]
fn cron_job_template_policies() {
    let rules = json!({"podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}});
    let mut never = rules.clone();
    never["template"] = json!({"spec": {"restartPolicy": "Never", "containers": [ctr(json!({}))]}});
    assert!(errors(cron_job(json!({"jobTemplate": {"spec": never}}))).is_empty());
    let mut on_failure = rules;
    on_failure["template"] =
        json!({"spec": {"restartPolicy": "OnFailure", "containers": [ctr(json!({}))]}});
    assert_eq!(
        errors(cron_job(json!({"jobTemplate": {"spec": on_failure}}))),
        ["spec.jobTemplate.spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified"]
    );
}

#[test]
fn crd_conversion_needs_a_webhook_exactly_with_the_webhook_strategy() {
    let crd = |conversion: Value| {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "shirts.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "shirts", "kind": "Shirt"},
                "conversion": conversion,
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
    };
    let hook = json!({"clientConfig": {"url": "https://conv.example.com/convert"},
        "conversionReviewVersions": ["v1"]});
    assert_eq!(
        errors(crd(json!({"strategy": "Webhook", "webhook": hook}))),
        Vec::<String>::new()
    );
    assert_eq!(
        errors(crd(json!({"strategy": "Webhook"}))),
        ["spec.conversion.webhook: Required value: required when strategy is set to Webhook"]
    );
    assert_eq!(
        errors(crd(json!({"strategy": "None", "webhook": hook}))),
        ["spec.conversion.webhook: Forbidden: should not be set when strategy is not set to Webhook"]
    );
    let plain = json!({"clientConfig": {"url": "http://conv.example.com/convert"},
        "conversionReviewVersions": ["v2"]});
    assert_eq!(
        errors(crd(json!({"strategy": "Webhook", "webhook": plain}))),
        [
            "spec.conversion.webhook.clientConfig.url: Invalid value: \"http://conv.example.com/convert\": 'https' is the only allowed URL scheme",
            "spec.conversion.webhook.conversionReviewVersions: Invalid value: \"[\\\"v2\\\"]\": must include at least one of v1, v1beta1",
        ]
    );
    assert_eq!(
        errors(crd(json!({"strategy": "Magic"}))),
        ["spec.conversion.strategy: Unsupported value: \"Magic\": supported values: \"None\", \"Webhook\""]
    );
}
