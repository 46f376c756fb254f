//! Per-kind columns and cells (upstream `pkg/printers/internalversion/printers.go`).
//!
//! The server always fills every column (upstream converts with `Wide: true`); kubectl hides
//! priority-1 columns unless `-o wide`.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::{age, Column};

/// Columns and the function filling one row's cells.
pub struct Printer {
    /// Column definitions, in order.
    pub columns: &'static [Column],
    /// Cells of one object, one per column.
    pub cells: fn(&Value, Timestamp) -> Vec<Value>,
}

const fn col(
    name: &'static str,
    kind: &'static str,
    priority: u8,
    description: &'static str,
) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority,
        description,
    }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: "Name must be unique within a namespace.",
};
const AGE: Column = col(
    "Age",
    "string",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(*k))
}

fn i(v: &Value, path: &[&str]) -> i64 {
    get(v, path).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn or_none(x: String) -> String {
    if x.is_empty() {
        "<none>".into()
    } else {
        x
    }
}

fn name(o: &Value) -> Value {
    json!(s(o, &["metadata", "name"]))
}

fn created(o: &Value, now: Timestamp) -> Value {
    json!(age(get(o, &["metadata", "creationTimestamp"]), now))
}

/// The printer for a kind (a Name + Created At table for kinds without one, like upstream's
/// default table).
pub fn printer(group: &str, kind: &str) -> Printer {
    match (group, kind) {
        ("", "Pod") => Printer {
            columns: POD,
            cells: pod,
        },
        ("", "Node") => Printer {
            columns: NODE,
            cells: node,
        },
        ("", "Namespace") => Printer {
            columns: NAMESPACE,
            cells: namespace,
        },
        ("", "Service") => Printer {
            columns: SERVICE,
            cells: service,
        },
        ("", "Endpoints") => Printer {
            columns: ENDPOINTS,
            cells: endpoints,
        },
        ("discovery.k8s.io", "EndpointSlice") => Printer {
            columns: ENDPOINTSLICE,
            cells: endpointslice,
        },
        ("", "Event") | ("events.k8s.io", "Event") => Printer {
            columns: EVENT,
            cells: event,
        },
        ("", "ConfigMap") => Printer {
            columns: CONFIGMAP,
            cells: configmap,
        },
        ("", "Secret") => Printer {
            columns: SECRET,
            cells: secret,
        },
        ("", "ServiceAccount") => Printer {
            columns: SERVICEACCOUNT,
            cells: serviceaccount,
        },
        ("", "PodTemplate") => Printer {
            columns: PODTEMPLATE,
            cells: podtemplate,
        },
        ("", "ReplicationController") | ("apps", "ReplicaSet") => Printer {
            columns: REPLICASET,
            cells: replicaset,
        },
        ("apps", "Deployment") => Printer {
            columns: DEPLOYMENT,
            cells: deployment,
        },
        ("apps", "DaemonSet") => Printer {
            columns: DAEMONSET,
            cells: daemonset,
        },
        ("apps", "StatefulSet") => Printer {
            columns: STATEFULSET,
            cells: statefulset,
        },
        ("apps", "ControllerRevision") => Printer {
            columns: CONTROLLERREVISION,
            cells: controllerrevision,
        },
        ("batch", "Job") => Printer {
            columns: JOB,
            cells: job,
        },
        ("batch", "CronJob") => Printer {
            columns: CRONJOB,
            cells: cronjob,
        },
        ("policy", "PodDisruptionBudget") => Printer {
            columns: PDB,
            cells: pdb,
        },
        ("coordination.k8s.io", "Lease") => Printer {
            columns: LEASE,
            cells: lease,
        },
        ("autoscaling", "HorizontalPodAutoscaler") => Printer {
            columns: HPA,
            cells: hpa,
        },
        ("", "ResourceQuota") => Printer {
            columns: RESOURCEQUOTA,
            cells: resourcequota,
        },
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => Printer {
            columns: WEBHOOKCONFIGURATION,
            cells: webhookconfiguration,
        },
        ("apiregistration.k8s.io", "APIService") => Printer {
            columns: APISERVICE,
            cells: apiservice,
        },
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => Printer {
            columns: FLOWSCHEMA,
            cells: flowschema,
        },
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => Printer {
            columns: PRIORITYLEVEL,
            cells: prioritylevel,
        },
        ("scheduling.k8s.io", "PriorityClass") => Printer {
            columns: PRIORITYCLASS,
            cells: priorityclass,
        },
        ("settings.k8s.io", "PodPreset") => Printer {
            columns: PODPRESET,
            cells: podpreset,
        },
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => Printer {
            columns: ROLE,
            cells: role,
        },
        ("rbac.authorization.k8s.io", "RoleBinding") => Printer {
            columns: ROLEBINDING,
            cells: rolebinding,
        },
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => Printer {
            columns: CLUSTERROLEBINDING,
            cells: rolebinding,
        },
        ("certificates.k8s.io", "CertificateSigningRequest") => Printer {
            columns: CSR,
            cells: csr,
        },
        ("", "PersistentVolume") => Printer {
            columns: PERSISTENTVOLUME,
            cells: persistentvolume,
        },
        ("", "PersistentVolumeClaim") => Printer {
            columns: PERSISTENTVOLUMECLAIM,
            cells: persistentvolumeclaim,
        },
        ("storage.k8s.io", "StorageClass") => Printer {
            columns: STORAGECLASS,
            cells: storageclass,
        },
        _ => Printer {
            columns: DEFAULT,
            cells: default,
        },
    }
}

const DEFAULT: &[Column] = &[
    NAME,
    Column {
        name: "Created At",
        kind: "date",
        format: "",
        priority: 0,
        description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
    },
];

fn default(o: &Value, _now: Timestamp) -> Vec<Value> {
    vec![name(o), json!(s(o, &["metadata", "creationTimestamp"]))]
}

const POD: &[Column] = &[
    NAME,
    col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", 0, "The aggregate status of the containers in this pod."),
    col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    col("IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    col("Node", "string", 1, "NodeName is a request to schedule this pod onto a specific node."),
    col("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
    col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
];

fn terminated_reason(t: &Value, prefix: &str) -> String {
    let reason = s(t, &["reason"]);
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = i(t, &["signal"]);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", i(t, &["exitCode"]))
    }
}

fn later(a: Option<Timestamp>, b: Option<&Value>) -> Option<Timestamp> {
    let b = b
        .and_then(Value::as_str)
        .and_then(|x| x.parse::<Timestamp>().ok());
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn has_condition(o: &Value, ty: &str) -> bool {
    arr(o, &["status", "conditions"])
        .iter()
        .any(|c| s(c, &["type"]) == ty && s(c, &["status"]) == "True")
}

/// upstream `printPod`.
fn pod(o: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = arr(o, &["spec", "initContainers"]);
    let is_sidecar = |n: &str| {
        init_specs
            .iter()
            .any(|c| s(c, &["name"]) == n && s(c, &["restartPolicy"]) == "Always")
    };
    let total = arr(o, &["spec", "containers"]).len()
        + init_specs
            .iter()
            .filter(|c| s(c, &["restartPolicy"]) == "Always")
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;
    let mut reason = s(o, &["status", "phase"]).to_string();
    if !s(o, &["status", "reason"]).is_empty() {
        reason = s(o, &["status", "reason"]).to_string();
    }
    for c in arr(o, &["status", "conditions"]) {
        if s(c, &["type"]) == "PodScheduled" && s(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }
    let mut initializing = false;
    let init_statuses = arr(o, &["status", "initContainerStatuses"]);
    for (idx, c) in init_statuses.iter().enumerate() {
        restarts += i(c, &["restartCount"]);
        let finished = get(c, &["lastState", "terminated", "finishedAt"]);
        last_restart = later(last_restart, finished);
        let cname = s(c, &["name"]);
        if is_sidecar(cname) {
            sidecar_restarts += i(c, &["restartCount"]);
            last_sidecar_restart = later(last_sidecar_restart, finished);
            if get(c, &["ready"]).and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
        }
        let terminated = get(c, &["state", "terminated"]);
        let waiting_reason = s(c, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| i(t, &["exitCode"]) == 0) {
            continue;
        }
        if is_sidecar(cname) && get(c, &["started"]).and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = terminated {
            reason = terminated_reason(t, "Init:");
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{idx}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    if !initializing || has_condition(o, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in arr(o, &["status", "containerStatuses"]).iter().rev() {
            restarts += i(c, &["restartCount"]);
            last_restart = later(
                last_restart,
                get(c, &["lastState", "terminated", "finishedAt"]),
            );
            let waiting = s(c, &["state", "waiting", "reason"]);
            let terminated = get(c, &["state", "terminated"]);
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
            } else if get(c, &["ready"]).and_then(Value::as_bool) == Some(true)
                && get(c, &["state", "running"]).is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_condition(o, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    let phase = s(o, &["status", "phase"]);
    if get(o, &["metadata", "deletionTimestamp"]).is_some() {
        if s(o, &["status", "reason"]) == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let mut restarts_str = restarts.to_string();
    if restarts != 0 {
        if let Some(t) = last_restart {
            restarts_str = format!(
                "{restarts} ({} ago)",
                super::human_duration(now.as_second() - t.as_second())
            );
        }
    }
    let ip = arr(o, &["status", "podIPs"])
        .first()
        .map(|p| s(p, &["ip"]).to_string())
        .unwrap_or_else(|| s(o, &["status", "podIP"]).to_string());
    let gates = arr(o, &["spec", "readinessGates"]);
    let gates_str = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_gates = gates
            .iter()
            .filter(|g| has_condition(o, s(g, &["conditionType"])))
            .count();
        format!("{true_gates}/{}", gates.len())
    };
    vec![
        name(o),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_str),
        created(o, now),
        json!(or_none(ip)),
        json!(or_none(s(o, &["spec", "nodeName"]).to_string())),
        json!(or_none(s(o, &["status", "nominatedNodeName"]).to_string())),
        json!(gates_str),
    ]
}

const NODE: &[Column] = &[
    NAME,
    col("Status", "string", 0, "The status of the node"),
    col("Roles", "string", 0, "The roles of the node"),
    AGE,
    col("Version", "string", 0, "Kubelet Version reported by the node."),
    col("Internal-IP", "string", 1, "List of addresses reachable to the node."),
    col("External-IP", "string", 1, "List of addresses reachable to the node."),
    col("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    col("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    col("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];

/// upstream `printNode`.
fn node(o: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    let conds = arr(o, &["status", "conditions"]);
    match conds.iter().find(|c| s(c, &["type"]) == "Ready") {
        Some(c) if s(c, &["status"]) == "True" => status.push("Ready".into()),
        Some(_) => status.push("NotReady".into()),
        None => status.push("Unknown".into()),
    }
    if get(o, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = get(o, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(r) = v.as_str().filter(|r| !r.is_empty()) {
                    roles.push(r.to_string());
                }
            }
        }
    }
    roles.sort();
    roles.dedup();
    let addr = |ty: &str| {
        arr(o, &["status", "addresses"])
            .iter()
            .find(|a| s(a, &["type"]) == ty)
            .map(|a| s(a, &["address"]).to_string())
            .unwrap_or_default()
    };
    let info = |k: &str| s(o, &["status", "nodeInfo", k]).to_string();
    let kernel = info("kernelVersion");
    let runtime = info("containerRuntimeVersion");
    vec![
        name(o),
        json!(status.join(",")),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        created(o, now),
        json!(info("kubeletVersion")),
        json!(or_none(addr("InternalIP"))),
        json!(or_none(addr("ExternalIP"))),
        json!(if info("osImage").is_empty() {
            "<unknown>".to_string()
        } else {
            info("osImage")
        }),
        json!(if kernel.is_empty() {
            "<unknown>".into()
        } else {
            kernel
        }),
        json!(if runtime.is_empty() {
            "<unknown>".into()
        } else {
            runtime
        }),
    ]
}

const NAMESPACE: &[Column] = &[
    NAME,
    col("Status", "string", 0, "The status of the namespace"),
    AGE,
];

fn namespace(o: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(o), json!(s(o, &["status", "phase"])), created(o, now)]
}

const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", 0, "The type of the service."),
    col("Cluster-IP", "string", 0, "The IP address of the service."),
    col(
        "External-IP",
        "string",
        0,
        "The external IP address of the service.",
    ),
    col("Port(s)", "string", 0, "The ports of the service."),
    AGE,
    col(
        "Selector",
        "string",
        1,
        "Route service traffic to pods with label keys and values matching this selector.",
    ),
];

fn selector_string(m: Option<&Value>) -> String {
    let Some(m) = m.and_then(Value::as_object) else {
        return String::new();
    };
    let mut parts: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    parts.sort();
    parts.join(",")
}

fn service(o: &Value, now: Timestamp) -> Vec<Value> {
    let ty = s(o, &["spec", "type"]);
    let ty = if ty.is_empty() { "ClusterIP" } else { ty };
    let cluster_ip = s(o, &["spec", "clusterIP"]);
    let mut external: Vec<String> = arr(o, &["status", "loadBalancer", "ingress"])
        .iter()
        .map(|i| {
            let ip = s(i, &["ip"]);
            if ip.is_empty() {
                s(i, &["hostname"]).to_string()
            } else {
                ip.to_string()
            }
        })
        .collect();
    external.extend(
        arr(o, &["spec", "externalIPs"])
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string),
    );
    let external = match ty {
        "ExternalName" => s(o, &["spec", "externalName"]).to_string(),
        "LoadBalancer" if external.is_empty() => "<pending>".into(),
        _ if external.is_empty() => "<none>".into(),
        _ => external.join(","),
    };
    let ports: Vec<String> = arr(o, &["spec", "ports"])
        .iter()
        .map(|p| {
            let proto = if s(p, &["protocol"]).is_empty() {
                "TCP"
            } else {
                s(p, &["protocol"])
            };
            let node_port = i(p, &["nodePort"]);
            if node_port > 0 {
                format!("{}:{node_port}/{proto}", i(p, &["port"]))
            } else {
                format!("{}/{proto}", i(p, &["port"]))
            }
        })
        .collect();
    vec![
        name(o),
        json!(ty),
        json!(if cluster_ip.is_empty() {
            "<none>"
        } else {
            cluster_ip
        }),
        json!(external),
        json!(or_none(ports.join(","))),
        created(o, now),
        json!(or_none(selector_string(get(o, &["spec", "selector"])))),
    ]
}

const ENDPOINTS: &[Column] = &[
    NAME,
    col(
        "Endpoints",
        "string",
        0,
        "Endpoints is the list of endpoints.",
    ),
    AGE,
];

fn endpoints(o: &Value, now: Timestamp) -> Vec<Value> {
    let mut eps = Vec::new();
    for subset in arr(o, &["subsets"]) {
        let ports = arr(subset, &["ports"]);
        for a in arr(subset, &["addresses"]) {
            let ip = s(a, &["ip"]);
            if ports.is_empty() {
                eps.push(ip.to_string());
            }
            for p in ports {
                eps.push(format!("{ip}:{}", i(p, &["port"])));
            }
        }
    }
    vec![name(o), json!(or_none(first_three(&eps))), created(o, now)]
}

/// The first three items and how many more (upstream's `formatEndpoints`,
/// `listWithMoreString`): `a,b,c + 2 more...`.
fn first_three(l: &[String]) -> String {
    if l.len() > 3 {
        format!("{} + {} more...", l[..3].join(","), l.len() - 3)
    } else {
        l.join(",")
    }
}

const ENDPOINTSLICE: &[Column] = &[
    NAME,
    col("AddressType", "string", 0, "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type."),
    col("Ports", "string", 0, "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list."),
    col("Endpoints", "string", 0, "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints."),
    AGE,
];

/// Upstream `printEndpointSlice`: the first three ports (their number, else their name, else
/// `*`) and the first three addresses, `<unset>` for none (`formatDiscoveryPorts`,
/// `formatDiscoveryEndpoints`, `listWithMoreString`).
fn endpointslice(o: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = arr(o, &["ports"])
        .iter()
        .map(|p| {
            match (
                get(p, &["port"]).and_then(Value::as_i64),
                get(p, &["name"]).and_then(Value::as_str),
            ) {
                (Some(n), _) => n.to_string(),
                (None, Some(name)) => name.to_string(),
                (None, None) => "*".to_string(),
            }
        })
        .collect();
    let addresses: Vec<String> = arr(o, &["endpoints"])
        .iter()
        .flat_map(|e| arr(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or("").to_string())
        .collect();
    let list = |l: &[String]| {
        if l.is_empty() {
            "<unset>".to_string()
        } else {
            first_three(l)
        }
    };
    vec![
        name(o),
        json!(s(o, &["addressType"])),
        json!(list(&ports)),
        json!(list(&addresses)),
        created(o, now),
    ]
}

const EVENT: &[Column] = &[
    col("Last Seen", "string", 0, "Time when last this event was observed."),
    col("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future."),
    col("Reason", "string", 0, "Reason is why the action was taken. It is human-readable. This field can have at most 128 characters."),
    col("Object", "string", 0, "The object this Event is about."),
    col("Subobject", "string", 1, "The subobject this Event is about."),
    col("Source", "string", 1, "The component reporting this event."),
    col("Message", "string", 0, "A human-readable description of the status of this operation."),
    col("First Seen", "string", 1, "The time at which the event was first recorded."),
    col("Count", "string", 1, "The number of times this event has occurred."),
    Column {
        name: "Name",
        kind: "string",
        format: "name",
        priority: 1,
        description: "Name must be unique within a namespace.",
    },
];

/// upstream `printEvent`, for core/v1 and events.k8s.io/v1 field names.
fn event(o: &Value, now: Timestamp) -> Vec<Value> {
    let regarding = get(o, &["involvedObject"]).or_else(|| get(o, &["regarding"]));
    let r = regarding.cloned().unwrap_or(Value::Null);
    let object = format!(
        "{}/{}",
        s(&r, &["kind"]).to_ascii_lowercase(),
        s(&r, &["name"])
    );
    let source = {
        let comp = s(o, &["source", "component"]);
        let comp = if comp.is_empty() {
            s(o, &["reportingController"])
        } else {
            comp
        };
        let host = s(o, &["source", "host"]);
        let host = if host.is_empty() {
            s(o, &["reportingInstance"])
        } else {
            host
        };
        if host.is_empty() {
            comp.to_string()
        } else {
            format!("{comp}, {host}")
        }
    };
    let first = get(o, &["firstTimestamp"])
        .filter(|v| !v.is_null())
        .or_else(|| get(o, &["deprecatedFirstTimestamp"]).filter(|v| !v.is_null()))
        .or_else(|| get(o, &["eventTime"]).filter(|v| !v.is_null()))
        .or_else(|| get(o, &["metadata", "creationTimestamp"]));
    let last = get(o, &["series", "lastObservedTime"])
        .or_else(|| get(o, &["lastTimestamp"]).filter(|v| !v.is_null()))
        .or_else(|| get(o, &["deprecatedLastTimestamp"]).filter(|v| !v.is_null()))
        .or(first);
    let count = get(o, &["series", "count"])
        .and_then(Value::as_i64)
        .or_else(|| get(o, &["count"]).and_then(Value::as_i64))
        .or_else(|| get(o, &["deprecatedCount"]).and_then(Value::as_i64))
        .unwrap_or(1);
    let message = {
        let m = s(o, &["message"]);
        if m.is_empty() {
            s(o, &["note"])
        } else {
            m
        }
    };
    vec![
        json!(age(last, now)),
        json!(s(o, &["type"])),
        json!(s(o, &["reason"])),
        json!(object),
        json!(s(&r, &["fieldPath"])),
        json!(source),
        json!(message.trim()),
        json!(age(first, now)),
        json!(count.to_string()),
        name(o),
    ]
}

const CONFIGMAP: &[Column] = &[
    NAME,
    col(
        "Data",
        "integer",
        0,
        "Data contains the configuration data.",
    ),
    AGE,
];

fn count_keys(o: &Value, fields: &[&str]) -> usize {
    fields
        .iter()
        .filter_map(|f| o.get(*f).and_then(Value::as_object))
        .map(|m| m.len())
        .sum()
}

fn configmap(o: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(o),
        json!(count_keys(o, &["data", "binaryData"])),
        created(o, now),
    ]
}

const SECRET: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        0,
        "Used to facilitate programmatic handling of secret data.",
    ),
    col("Data", "integer", 0, "Data contains the secret data."),
    AGE,
];

fn secret(o: &Value, now: Timestamp) -> Vec<Value> {
    let ty = s(o, &["type"]);
    vec![
        name(o),
        json!(if ty.is_empty() { "Opaque" } else { ty }),
        json!(count_keys(o, &["data", "stringData"])),
        created(o, now),
    ]
}

/// Upstream `podTemplateColumnDefinitions` / `printPodTemplate`.
const PODTEMPLATE: &[Column] = &[
    NAME,
    col(
        "Containers",
        "string",
        0,
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        0,
        "Images referenced by each container in the template.",
    ),
    col(
        "Pod Labels",
        "string",
        0,
        "The labels for the pod template.",
    ),
];

fn podtemplate(o: &Value, _now: Timestamp) -> Vec<Value> {
    let template = get(o, &["template"]).unwrap_or(&Value::Null);
    let (c, im) = template_containers_and_images(template);
    vec![
        name(o),
        json!(c),
        json!(im),
        json!(or_none(selector_string(get(
            template,
            &["metadata", "labels"]
        )))),
    ]
}

const SERVICEACCOUNT: &[Column] = &[
    NAME,
    col("Secrets", "string", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

fn serviceaccount(o: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(o),
        json!(arr(o, &["secrets"]).len().to_string()),
        created(o, now),
    ]
}

/// The container names and images of a workload's `spec.template`.
fn containers_and_images(o: &Value) -> (String, String) {
    template_containers_and_images(get(o, &["spec", "template"]).unwrap_or(&Value::Null))
}

/// The container names and images of a pod template.
fn template_containers_and_images(template: &Value) -> (String, String) {
    let cs = arr(template, &["spec", "containers"]);
    let names: Vec<&str> = cs.iter().map(|c| s(c, &["name"])).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// A label selector (`matchLabels` + `matchExpressions`, or an RC's plain map) in kubectl syntax.
fn label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    if sel.get("matchLabels").is_none() && sel.get("matchExpressions").is_none() {
        let plain = selector_string(Some(sel));
        return if plain.is_empty() {
            "<none>".into()
        } else {
            plain
        };
    }
    let mut parts: Vec<String> = Vec::new();
    let labels = selector_string(sel.get("matchLabels"));
    if !labels.is_empty() {
        parts.extend(labels.split(',').map(str::to_string));
    }
    for e in arr(sel, &["matchExpressions"]) {
        let key = s(e, &["key"]);
        let mut vals: Vec<&str> = arr(e, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        vals.sort_unstable();
        parts.push(match s(e, &["operator"]) {
            "In" => format!("{key} in ({})", vals.join(",")),
            "NotIn" => format!("{key} notin ({})", vals.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    parts.sort();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

const REPLICASET: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        0,
        "Replicas is the number of desired replicas.",
    ),
    col(
        "Current",
        "integer",
        0,
        "Replicas is the most recently observed number of replicas.",
    ),
    col(
        "Ready",
        "integer",
        0,
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    col(
        "Containers",
        "string",
        1,
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        1,
        "Images referenced by each container in the template.",
    ),
    col(
        "Selector",
        "string",
        1,
        "Selector is a label query over pods that should match the replica count.",
    ),
];

fn desired(o: &Value) -> i64 {
    get(o, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn replicaset(o: &Value, now: Timestamp) -> Vec<Value> {
    let (c, im) = containers_and_images(o);
    vec![
        name(o),
        json!(desired(o)),
        json!(i(o, &["status", "replicas"])),
        json!(i(o, &["status", "readyReplicas"])),
        created(o, now),
        json!(c),
        json!(im),
        json!(label_selector(get(o, &["spec", "selector"]))),
    ]
}

const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "string", 0, "Number of the pod with ready state"),
    col("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    col("Containers", "string", 1, "Names of each container in the template."),
    col("Images", "string", 1, "Images referenced by each container in the template."),
    col("Selector", "string", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
];

fn deployment(o: &Value, now: Timestamp) -> Vec<Value> {
    let (c, im) = containers_and_images(o);
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            i(o, &["status", "readyReplicas"]),
            desired(o)
        )),
        json!(i(o, &["status", "updatedReplicas"])),
        json!(i(o, &["status", "availableReplicas"])),
        created(o, now),
        json!(c),
        json!(im),
        json!(label_selector(get(o, &["spec", "selector"]))),
    ]
}

const DAEMONSET: &[Column] = &[
    NAME,
    col("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod."),
    col("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
    col("Ready", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
    col("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),
    col("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
    col("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node."),
    AGE,
    col("Containers", "string", 1, "Names of each container in the template."),
    col("Images", "string", 1, "Images referenced by each container in the template."),
    col("Selector", "string", 1, "A label query over pods that are managed by the daemon set."),
];

fn daemonset(o: &Value, now: Timestamp) -> Vec<Value> {
    let (c, im) = containers_and_images(o);
    vec![
        name(o),
        json!(i(o, &["status", "desiredNumberScheduled"])),
        json!(i(o, &["status", "currentNumberScheduled"])),
        json!(i(o, &["status", "numberReady"])),
        json!(i(o, &["status", "updatedNumberScheduled"])),
        json!(i(o, &["status", "numberAvailable"])),
        json!(or_none(selector_string(get(
            o,
            &["spec", "template", "spec", "nodeSelector"]
        )))),
        created(o, now),
        json!(c),
        json!(im),
        json!(label_selector(get(o, &["spec", "selector"]))),
    ]
}

const STATEFULSET: &[Column] = &[
    NAME,
    col("Ready", "string", 0, "Number of the pod with ready state"),
    AGE,
    col(
        "Containers",
        "string",
        1,
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        1,
        "Images referenced by each container in the template.",
    ),
];

fn statefulset(o: &Value, now: Timestamp) -> Vec<Value> {
    let (c, im) = containers_and_images(o);
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            i(o, &["status", "readyReplicas"]),
            desired(o)
        )),
        created(o, now),
        json!(c),
        json!(im),
    ]
}

const CONTROLLERREVISION: &[Column] = &[
    NAME,
    col("Controller", "string", 0, "Controller of the object"),
    col(
        "Revision",
        "integer",
        0,
        "Revision indicates the revision of the state represented by Data.",
    ),
    AGE,
];

fn controllerrevision(o: &Value, now: Timestamp) -> Vec<Value> {
    let controller = arr(o, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            let api = s(r, &["apiVersion"]);
            let group = api.split_once('/').map(|(g, _)| g).unwrap_or("");
            let kind = s(r, &["kind"]).to_ascii_lowercase();
            let kind = if group.is_empty() {
                kind
            } else {
                format!("{kind}.{group}")
            };
            format!("{kind}/{}", s(r, &["name"]))
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        name(o),
        json!(controller),
        json!(i(o, &["revision"])),
        created(o, now),
    ]
}

const JOB: &[Column] = &[
    NAME,
    col("Status", "string", 0, "Status of the job."),
    col(
        "Completions",
        "string",
        0,
        "The completion status of the job.",
    ),
    col(
        "Duration",
        "string",
        0,
        "Time required to complete the job.",
    ),
    AGE,
    col(
        "Containers",
        "string",
        1,
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        1,
        "Images referenced by each container in the template.",
    ),
    col(
        "Selector",
        "string",
        1,
        "A label query over pods that should match the pod count.",
    ),
];

fn job(o: &Value, now: Timestamp) -> Vec<Value> {
    let (c, im) = containers_and_images(o);
    let completions = match get(o, &["spec", "completions"]).and_then(Value::as_i64) {
        Some(n) => format!("{}/{n}", i(o, &["status", "succeeded"])),
        None => {
            let p = get(o, &["spec", "parallelism"])
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if p > 1 {
                format!("{}/1 of {p}", i(o, &["status", "succeeded"]))
            } else {
                format!("{}/1", i(o, &["status", "succeeded"]))
            }
        }
    };
    let ts = |k: &str| {
        get(o, &["status", k])
            .and_then(Value::as_str)
            .and_then(|x| x.parse::<Timestamp>().ok())
    };
    let duration = match (ts("startTime"), ts("completionTime")) {
        (Some(st), Some(done)) => super::human_duration(done.as_second() - st.as_second()),
        (Some(st), None) => super::human_duration(now.as_second() - st.as_second()),
        _ => String::new(),
    };
    let status = {
        let has = |t: &str| has_condition(o, t);
        if has("Failed") {
            "Failed"
        } else if has("Complete") {
            "Complete"
        } else if has("Suspended") {
            "Suspended"
        } else if has("FailureTarget") {
            "FailureTarget"
        } else if has("SuccessCriteriaMet") {
            "SuccessCriteriaMet"
        } else if get(o, &["metadata", "deletionTimestamp"]).is_some() {
            "Terminating"
        } else {
            "Running"
        }
    };
    vec![
        name(o),
        json!(status),
        json!(completions),
        json!(duration),
        created(o, now),
        json!(c),
        json!(im),
        json!(label_selector(get(o, &["spec", "selector"]))),
    ]
}

/// upstream `cronJobColumnDefinitions`.
const CRONJOB: &[Column] = &[
    NAME,
    col("Schedule", "string", 0, "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    col("Timezone", "string", 0, "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones"),
    col("Suspend", "boolean", 0, "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false."),
    col("Active", "integer", 0, "A list of pointers to currently running jobs."),
    col("Last Schedule", "string", 0, "Information when was the last time the job was successfully scheduled."),
    AGE,
    col("Containers", "string", 1, "Names of each container in the template."),
    col("Images", "string", 1, "Images referenced by each container in the template."),
    col("Selector", "string", 1, "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
];

/// upstream `printCronJob`.
fn cronjob(o: &Value, now: Timestamp) -> Vec<Value> {
    let template = get(o, &["spec", "jobTemplate"]).unwrap_or(&Value::Null);
    let (c, im) = containers_and_images(template);
    let last = match get(o, &["status", "lastScheduleTime"]) {
        Some(t) if !t.is_null() => age(Some(t), now),
        _ => "<none>".into(),
    };
    let suspend = match get(o, &["spec", "suspend"]).and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    vec![
        name(o),
        json!(s(o, &["spec", "schedule"])),
        json!(or_none(s(o, &["spec", "timeZone"]).to_string())),
        json!(suspend),
        json!(arr(o, &["status", "active"]).len()),
        json!(last),
        created(o, now),
        json!(c),
        json!(im),
        json!(label_selector(get(template, &["spec", "selector"]))),
    ]
}

const PDB: &[Column] = &[
    NAME,
    col(
        "Min Available",
        "string",
        0,
        "The minimum number of pods that must be available.",
    ),
    col(
        "Max Unavailable",
        "string",
        0,
        "The maximum number of pods that may be unavailable.",
    ),
    col(
        "Allowed Disruptions",
        "integer",
        0,
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    }
}

fn pdb(o: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(o),
        json!(int_or_string(get(o, &["spec", "minAvailable"]))),
        json!(int_or_string(get(o, &["spec", "maxUnavailable"]))),
        json!(i(o, &["status", "disruptionsAllowed"])),
        created(o, now),
    ]
}

const LEASE: &[Column] = &[
    NAME,
    col("Holder", "string", 0, "The holder of the lease"),
    AGE,
];

fn lease(o: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(o),
        json!(s(o, &["spec", "holderIdentity"])),
        created(o, now),
    ]
}

const HPA: &[Column] = &[
    NAME,
    col("Reference", "string", 0, "Reference to the target resource"),
    col("Targets", "string", 0, "Targets of the metrics"),
    col("MinPods", "string", 0, "Minimum number of replicas"),
    col("MaxPods", "string", 0, "Maximum number of replicas"),
    col("Replicas", "string", 0, "Current number of replicas"),
    AGE,
];

fn hpa(o: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        s(o, &["spec", "scaleTargetRef", "kind"]),
        s(o, &["spec", "scaleTargetRef", "name"])
    );
    let current = arr(o, &["status", "currentMetrics"]);
    let targets: Vec<String> = arr(o, &["spec", "metrics"])
        .iter()
        .enumerate()
        .map(|(idx, m)| {
            let res = s(m, &["resource", "name"]);
            let target = get(m, &["resource", "target", "averageUtilization"])
                .and_then(Value::as_i64)
                .map(|t| format!("{t}%"))
                .unwrap_or_else(|| "<unknown>".into());
            let cur = current
                .get(idx)
                .and_then(|c| get(c, &["resource", "current", "averageUtilization"]))
                .and_then(Value::as_i64)
                .map(|c| format!("{c}%"))
                .unwrap_or_else(|| "<unknown>".into());
            if res.is_empty() {
                format!("{cur}/{target}")
            } else {
                format!("{res}: {cur}/{target}")
            }
        })
        .collect();
    vec![
        name(o),
        json!(reference),
        json!(if targets.is_empty() {
            "<none>".into()
        } else {
            targets.join(", ")
        }),
        json!(get(o, &["spec", "minReplicas"])
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .to_string()),
        json!(i(o, &["spec", "maxReplicas"]).to_string()),
        json!(i(o, &["status", "currentReplicas"]).to_string()),
        created(o, now),
    ]
}

const RESOURCEQUOTA: &[Column] = &[
    NAME,
    AGE,
    col("Request", "string", 0, "Request represents a minimum amount of cpu/memory that a container may consume."),
    col("Limit", "string", 0, "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
];

/// upstream `printResourceQuota`: `resource: used/hard` for each resource of `spec.hard` in
/// name order, `limits.*` in the Limit column and everything else in the Request column.
fn resourcequota(o: &Value, now: Timestamp) -> Vec<Value> {
    let mut names: Vec<&String> = get(o, &["spec", "hard"])
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    names.sort();
    let (mut request, mut limit) = (Vec::new(), Vec::new());
    for r in names {
        let q = |part: &str| {
            let v = s(o, &["status", part, r.as_str()]);
            if v.is_empty() { "0" } else { v }.to_string()
        };
        let cell = format!("{r}: {}/{}", q("used"), q("hard"));
        if r.split('.').next() == Some("limits") && r.contains('.') {
            limit.push(cell);
        } else {
            request.push(cell);
        }
    }
    vec![
        name(o),
        created(o, now),
        json!(request.join(", ")),
        json!(limit.join(", ")),
    ]
}

const APISERVICE: &[Column] = &[
    NAME,
    col(
        "Service",
        "string",
        0,
        "The reference to the service that hosts this API endpoint.",
    ),
    col(
        "Available",
        "string",
        0,
        "Whether this service is available.",
    ),
    AGE,
];

/// upstream `kube-aggregator/pkg/registry/apiservice/etcd` table: `ns/name` or `Local`, and
/// the Available condition's status (with its reason when it is not True).
fn apiservice(o: &Value, now: Timestamp) -> Vec<Value> {
    let service = match o.pointer("/spec/service") {
        Some(svc) if !svc.is_null() => format!(
            "{}/{}",
            svc.get("namespace").and_then(Value::as_str).unwrap_or(""),
            svc.get("name").and_then(Value::as_str).unwrap_or("")
        ),
        _ => "Local".into(),
    };
    let available = arr(o, &["status", "conditions"])
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Available"))
        .map_or_else(
            || "Unknown".to_string(),
            |c| {
                let st = c.get("status").and_then(Value::as_str).unwrap_or("Unknown");
                match c.get("reason").and_then(Value::as_str) {
                    Some(r) if st != "True" => format!("{st} ({r})"),
                    _ => st.to_string(),
                }
            },
        );
    vec![name(o), json!(service), json!(available), created(o, now)]
}

const WEBHOOKCONFIGURATION: &[Column] = &[
    NAME,
    col(
        "Webhooks",
        "integer",
        0,
        "Webhooks indicates the number of webhooks registered in this configuration.",
    ),
    AGE,
];

fn webhookconfiguration(o: &Value, now: Timestamp) -> Vec<Value> {
    let n = o
        .get("webhooks")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    vec![name(o), json!(n), created(o, now)]
}

// Upstream `flowSchemaColumnDefinitions` / `printFlowSchema` and
// `priorityLevelConfigurationColumnDefinitions` / `printPriorityLevelConfiguration`
// (`pkg/printers/internalversion/printers.go`).
const FLOWSCHEMA: &[Column] = &[
    NAME,
    col(
        "PriorityLevel",
        "string",
        0,
        "The name of the priority level of the requests this FlowSchema matches.",
    ),
    col(
        "MatchingPrecedence",
        "string",
        0,
        "The precedence of this FlowSchema among the others (lower first).",
    ),
    col(
        "DistinguisherMethod",
        "string",
        0,
        "How flows of matching requests are told apart (ByUser, ByNamespace).",
    ),
    AGE,
    col(
        "MissingPL",
        "string",
        0,
        "Whether the referenced priority level is missing (the Dangling condition).",
    ),
];

fn flowschema(o: &Value, now: Timestamp) -> Vec<Value> {
    let method = s(o, &["spec", "distinguisherMethod", "type"]);
    let missing = arr(o, &["status", "conditions"])
        .iter()
        .find(|c| s(c, &["type"]) == "Dangling")
        .map_or("?", |c| s(c, &["status"]));
    vec![
        name(o),
        json!(s(o, &["spec", "priorityLevelConfiguration", "name"])),
        json!(i(o, &["spec", "matchingPrecedence"])),
        json!(if method.is_empty() { "*" } else { method }),
        created(o, now),
        json!(missing),
    ]
}

const PRIORITYLEVEL: &[Column] = &[
    NAME,
    col("Type", "string", 0, "Exempt or Limited."),
    col(
        "NominalConcurrencyShares",
        "string",
        0,
        "The share of the server's concurrency this level gets.",
    ),
    col("Queues", "string", 0, "The number of queues of this level."),
    col(
        "HandSize",
        "string",
        0,
        "The number of queues a flow is shuffle-sharded to.",
    ),
    col(
        "QueueLengthLimit",
        "string",
        0,
        "The most requests waiting in one queue.",
    ),
    AGE,
];

fn prioritylevel(o: &Value, now: Timestamp) -> Vec<Value> {
    let none = || json!("<none>");
    let limited = get(o, &["spec", "limited"]);
    let queuing = limited.and_then(|l| get(l, &["limitResponse", "queuing"]));
    let field = |v: Option<&Value>, k: &str| v.and_then(|v| v.get(k)).cloned().unwrap_or_else(none);
    vec![
        name(o),
        json!(s(o, &["spec", "type"])),
        field(limited, "nominalConcurrencyShares"),
        field(queuing, "queues"),
        field(queuing, "handSize"),
        field(queuing, "queueLengthLimit"),
        created(o, now),
    ]
}

const PRIORITYCLASS: &[Column] = &[
    NAME,
    col("Value", "integer", 0, "The integer value of this priority class."),
    col("Global-Default", "boolean", 0, "globalDefault specifies whether this PriorityClass should be considered as the default priority."),
    AGE,
    col("Preemption-Policy", "string", 0, "PreemptionPolicy is the Policy for preempting pods with lower priority."),
];

fn priorityclass(o: &Value, now: Timestamp) -> Vec<Value> {
    let policy = s(o, &["preemptionPolicy"]);
    vec![
        name(o),
        json!(i(o, &["value"])),
        json!(o
            .get("globalDefault")
            .and_then(Value::as_bool)
            .unwrap_or(false)),
        created(o, now),
        json!(if policy.is_empty() {
            "PreemptLowerPriority"
        } else {
            policy
        }),
    ]
}

const PERSISTENTVOLUME: &[Column] = &[
    NAME,
    col("Capacity", "string", 0, "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity"),
    col("Access Modes", "string", 0, "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes"),
    col("Reclaim Policy", "string", 0, "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming"),
    col("Status", "string", 0, "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase"),
    col("Claim", "string", 0, "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding"),
    col("StorageClass", "string", 0, "StorageClass of the pv"),
    col("VolumeAttributesClass", "string", 0, "VolumeAttributesClass of the pv"),
    col("Reason", "string", 0, "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
    AGE,
    col("VolumeMode", "string", 1, "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec."),
];

/// upstream `helper.GetAccessModesAsString`: the abbreviations in a fixed order, comma-joined.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, a)| *a)
    .collect::<Vec<_>>()
    .join(",")
}

/// upstream `GetPersistentVolumeClass` / `GetPersistentVolumeClaimClass`: the beta annotation
/// first, then `spec.storageClassName`.
fn storage_class_of(o: &Value) -> String {
    let beta = s(
        o,
        &[
            "metadata",
            "annotations",
            "volume.beta.kubernetes.io/storage-class",
        ],
    );
    if get(
        o,
        &[
            "metadata",
            "annotations",
            "volume.beta.kubernetes.io/storage-class",
        ],
    )
    .is_some()
    {
        return beta.to_string();
    }
    s(o, &["spec", "storageClassName"]).to_string()
}

/// `Terminating` while a deletion is pending, else `status.phase`.
fn volume_phase(o: &Value) -> String {
    if get(o, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
        "Terminating".into()
    } else {
        s(o, &["status", "phase"]).to_string()
    }
}

fn unset_or(o: &Value, path: &[&str]) -> String {
    match get(o, path).and_then(Value::as_str) {
        Some(v) => v.to_string(),
        None => "<unset>".into(),
    }
}

/// upstream `printPersistentVolume`.
fn persistentvolume(o: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match get(o, &["spec", "claimRef"]) {
        Some(c) if c.is_object() => format!("{}/{}", s(c, &["namespace"]), s(c, &["name"])),
        _ => String::new(),
    };
    vec![
        name(o),
        json!(s(o, &["spec", "capacity", "storage"])),
        json!(access_modes(arr(o, &["spec", "accessModes"]))),
        json!(s(o, &["spec", "persistentVolumeReclaimPolicy"])),
        json!(volume_phase(o)),
        json!(claim),
        json!(storage_class_of(o)),
        json!(unset_or(o, &["spec", "volumeAttributesClassName"])),
        json!(s(o, &["status", "reason"])),
        created(o, now),
        json!(unset_or(o, &["spec", "volumeMode"])),
    ]
}

const PERSISTENTVOLUMECLAIM: &[Column] = &[
    NAME,
    col("Status", "string", 0, "phase represents the current phase of PersistentVolumeClaim."),
    col("Volume", "string", 0, "volumeName is the binding reference to the PersistentVolume backing this claim."),
    col("Capacity", "string", 0, "capacity represents the actual resources of the underlying volume."),
    col("Access Modes", "string", 0, "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1"),
    col("StorageClass", "string", 0, "StorageClass of the pvc"),
    col("VolumeAttributesClass", "string", 0, "VolumeAttributesClass of the pvc"),
    AGE,
    col("VolumeMode", "string", 1, "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec."),
];

/// upstream `printPersistentVolumeClaim`: capacity and access modes only once bound to a
/// volume.
fn persistentvolumeclaim(o: &Value, now: Timestamp) -> Vec<Value> {
    let volume = s(o, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            s(o, &["status", "capacity", "storage"]).to_string(),
            access_modes(arr(o, &["status", "accessModes"])),
        )
    };
    vec![
        name(o),
        json!(volume_phase(o)),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(storage_class_of(o)),
        json!(unset_or(o, &["spec", "volumeAttributesClassName"])),
        created(o, now),
        json!(unset_or(o, &["spec", "volumeMode"])),
    ]
}

const STORAGECLASS: &[Column] = &[
    NAME,
    col("Provisioner", "string", 0, "provisioner indicates the type of the provisioner."),
    col("ReclaimPolicy", "string", 0, "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."),
    col("VolumeBindingMode", "string", 0, "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature."),
    col("AllowVolumeExpansion", "string", 0, "allowVolumeExpansion shows whether the storage class allow volume expand."),
    AGE,
];

/// upstream `printStorageClass`: ` (default)` after the name of a class annotated as the
/// default (`storageclass.kubernetes.io/is-default-class`, or its beta form).
fn storageclass(o: &Value, now: Timestamp) -> Vec<Value> {
    let ann = |k: &str| s(o, &["metadata", "annotations", k]) == "true";
    let mut n = s(o, &["metadata", "name"]).to_string();
    if ann("storageclass.kubernetes.io/is-default-class")
        || ann("storageclass.beta.kubernetes.io/is-default-class")
    {
        n.push_str(" (default)");
    }
    let or = |v: &str, d: &str| {
        if v.is_empty() {
            d.to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        json!(n),
        json!(s(o, &["provisioner"])),
        json!(or(s(o, &["reclaimPolicy"]), "Delete")),
        json!(or(s(o, &["volumeBindingMode"]), "Immediate")),
        json!(o
            .get("allowVolumeExpansion")
            .and_then(Value::as_bool)
            .unwrap_or(false)),
        created(o, now),
    ]
}

/// upstream `podPresetColumnDefinitions` / `printPodPreset` (1.19): name and age.
const PODPRESET: &[Column] = &[NAME, AGE];

fn podpreset(o: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(o), created(o, now)]
}

/// Upstream `roleColumnDefinitions` / `printRole` and `printClusterRole`: name and the
/// creation time in RFC 3339 (UTC).
const ROLE: &[Column] = &[
    NAME,
    col(
        "Created At",
        "date",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
];

fn role(o: &Value, _now: Timestamp) -> Vec<Value> {
    let at = s(o, &["metadata", "creationTimestamp"])
        .parse::<Timestamp>()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    vec![name(o), json!(at)]
}

/// Upstream `roleBindingsColumnDefinitions` / `printRoleBinding` and
/// `printClusterRoleBinding`: `KIND/NAME` of the role, and with `-o wide` the subjects split
/// by kind (`rbac.SubjectsStrings`: service accounts as `NAMESPACE/NAME`).
macro_rules! binding_columns {
    ($role_ref:literal) => {
        &[
            NAME,
            col("Role", "string", 0, $role_ref),
            AGE,
            col("Users", "string", 1, "Users in the roleBinding"),
            col("Groups", "string", 1, "Groups in the roleBinding"),
            col(
                "ServiceAccounts",
                "string",
                1,
                "ServiceAccounts in the roleBinding",
            ),
        ]
    };
}

const ROLEBINDING: &[Column] = binding_columns!("RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.");
const CLUSTERROLEBINDING: &[Column] = binding_columns!("RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.");

fn rolebinding(o: &Value, now: Timestamp) -> Vec<Value> {
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for sub in arr(o, &["subjects"]) {
        let n = s(sub, &["name"]);
        match s(sub, &["kind"]) {
            "User" => users.push(n.to_string()),
            "Group" => groups.push(n.to_string()),
            "ServiceAccount" => sas.push(format!("{}/{n}", s(sub, &["namespace"]))),
            _ => {}
        }
    }
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            s(o, &["roleRef", "kind"]),
            s(o, &["roleRef", "name"])
        )),
        created(o, now),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ]
}

/// Upstream `printCertificateSigningRequest` (`pkg/printers/internalversion/printers.go`).
const CSR: &[Column] = &[
    NAME,
    AGE,
    col("SignerName", "string", 0, "signerName indicates the requested signer, and is a qualified name."),
    col("Requestor", "string", 0, "username contains the name of the user that created the CertificateSigningRequest."),
    col("RequestedDuration", "string", 0, "expirationSeconds is the requested duration of validity of the issued certificate."),
    col("Condition", "string", 0, "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\"."),
];

fn csr(o: &Value, now: Timestamp) -> Vec<Value> {
    let duration = match get(o, &["spec", "expirationSeconds"]).and_then(Value::as_i64) {
        Some(secs) => super::human_duration(secs),
        None => "<none>".into(),
    };
    vec![
        name(o),
        created(o, now),
        json!(or_none(s(o, &["spec", "signerName"]).to_string())),
        json!(s(o, &["spec", "username"])),
        json!(duration),
        json!(csr_condition(o)),
    ]
}

/// Upstream `extractCSRStatus`: Denied, else Approved, else Pending; then `,Failed` and
/// `,Issued`.
fn csr_condition(o: &Value) -> String {
    let has = |t: &str| {
        arr(o, &["status", "conditions"])
            .iter()
            .any(|c| s(c, &["type"]) == t)
    };
    let mut out = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        out.push_str(",Failed");
    }
    if !s(o, &["status", "certificate"]).is_empty() {
        out.push_str(",Issued");
    }
    out
}
