use serde_json::{json, Value};

use super::*;

fn now() -> Timestamp {
    "2025-06-01T12:00:00Z".parse().expect("timestamp")
}

fn headers(t: &Value) -> Vec<String> {
    t["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter(|c| c["priority"] == 0)
        .map(|c| c["name"].as_str().unwrap_or_default().to_uppercase())
        .collect()
}

#[test]
fn human_durations_match_upstream() {
    let cases = [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60 * 5, "3h5m"),
        (47 * 3600, "47h"),
        (3 * 86400 + 3600, "3d1h"),
        (30 * 86400, "30d"),
        (3 * 365 * 86400, "3y"),
        (3 * 365 * 86400 + 86400 * 5, "3y5d"),
        (10 * 365 * 86400, "10y"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(secs), want, "{secs}s");
    }
}

#[test]
fn accept_header_detection() {
    assert!(wants_table(
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
    ));
    assert!(!wants_table("application/json"));
    assert!(!wants_table(
        "application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io"
            .split(", ")
            .nth(2)
            .unwrap_or("application/json")
    ));
    assert!(!wants_table(
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
    ));
}

fn pod(status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "uid": "u1",
                     "creationTimestamp": "2025-06-01T11:55:00Z", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": status,
    })
}

#[test]
fn pod_status_column() {
    let cases: &[(&str, Value, [&str; 3])] = &[
        (
            "pending, unscheduled",
            json!({"phase": "Pending"}),
            ["0/2", "Pending", "0"],
        ),
        (
            "running and ready",
            json!({"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-06-01T11:59:00Z"}}}]}),
            ["2/2", "Running", "2 (60s ago)"],
        ),
        (
            "crash loop wins over phase",
            json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
            ["1/2", "CrashLoopBackOff", "0"],
        ),
        (
            "terminated without reason shows exit code",
            json!({"phase": "Failed", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 3}}}]}),
            ["0/2", "ExitCode:3", "0"],
        ),
        (
            "init container running",
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i", "ready": false, "restartCount": 0, "state": {"running": {}}}]}),
            ["0/2", "Init:0/0", "0"],
        ),
        (
            "scheduling gated",
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            ["0/2", "SchedulingGated", "0"],
        ),
    ];
    for (name, status, want) in cases {
        let t = table(
            "",
            "Pod",
            &[pod(status.clone())],
            IncludeObject::None,
            now(),
            None,
        );
        let cells = &t["rows"][0]["cells"];
        assert_eq!(
            [&cells[1], &cells[2], &cells[3]],
            [&json!(want[0]), &json!(want[1]), &json!(want[2])],
            "{name}"
        );
    }
    let mut terminating = pod(json!({"phase": "Running"}));
    terminating["metadata"]["deletionTimestamp"] = json!("2025-06-01T11:59:00Z");
    let t = table("", "Pod", &[terminating], IncludeObject::None, now(), None);
    assert_eq!(t["rows"][0]["cells"][2], "Terminating");
}

#[test]
fn include_object_modes() {
    let p = pod(json!({"phase": "Running"}));
    let meta = table(
        "",
        "Pod",
        std::slice::from_ref(&p),
        IncludeObject::Metadata,
        now(),
        None,
    );
    assert_eq!(meta["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(
        meta["rows"][0]["object"]["metadata"]["labels"]["app"],
        "web"
    );
    let full = table(
        "",
        "Pod",
        std::slice::from_ref(&p),
        IncludeObject::Object,
        now(),
        None,
    );
    assert_eq!(full["rows"][0]["object"], p);
    let none = table(
        "",
        "Pod",
        &[p],
        IncludeObject::None,
        now(),
        Some(&json!({"resourceVersion": "42"})),
    );
    assert!(none["rows"][0].get("object").is_none());
    assert_eq!(none["metadata"]["resourceVersion"], "42");
    assert_eq!(
        IncludeObject::from_param(Some("Object")),
        IncludeObject::Object
    );
    assert_eq!(IncludeObject::from_param(None), IncludeObject::Metadata);
}

#[test]
fn default_headers_per_kind() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("", "Pod", &["NAME", "READY", "STATUS", "RESTARTS", "AGE"]),
        ("", "Node", &["NAME", "STATUS", "ROLES", "AGE", "VERSION"]),
        (
            "apps",
            "Deployment",
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ),
        (
            "apps",
            "ReplicaSet",
            &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ),
        (
            "",
            "Service",
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
        ),
        (
            "",
            "Event",
            &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        ),
        (
            "batch",
            "Job",
            &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        ),
        ("", "ConfigMap", &["NAME", "DATA", "AGE"]),
        (
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &["NAME", "CREATED AT"],
        ),
    ];
    for (g, k, want) in cases {
        let t = table(g, k, &[], IncludeObject::None, now(), None);
        assert_eq!(headers(&t), *want, "{k}");
    }
}

#[test]
fn every_row_has_one_cell_per_column() {
    let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2025-06-01T11:00:00Z"}});
    for r in orch_types::registry::BUILTIN {
        let t = table(
            r.group,
            r.kind,
            std::slice::from_ref(&obj),
            IncludeObject::None,
            now(),
            None,
        );
        assert_eq!(
            t["rows"][0]["cells"].as_array().map(Vec::len),
            t["columnDefinitions"].as_array().map(Vec::len),
            "{}",
            r.kind
        );
    }
}

#[test]
fn snapshot_of_wide_rows() {
    let deploy = json!({
        "metadata": {"name": "web", "creationTimestamp": "2025-06-01T10:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                 "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]},
                 "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                                      {"name": "log", "image": "busybox"}]}}},
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    });
    let node = json!({
        "metadata": {"name": "node-a", "creationTimestamp": "2025-05-30T12:00:00Z",
                     "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "node-a"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "nodeInfo": {"kubeletVersion": "v1.33.0-orch", "osImage": "Debian", "kernelVersion": "6.1",
                                "containerRuntimeVersion": "orch://0.1"}}
    });
    let event = json!({
        "metadata": {"name": "web-1.17", "creationTimestamp": "2025-06-01T11:50:00Z"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{a}"},
        "type": "Normal", "reason": "Scheduled", "message": "Successfully assigned default/web-1 to node-a",
        "source": {"component": "default-scheduler"},
        "firstTimestamp": "2025-06-01T11:50:00Z", "lastTimestamp": "2025-06-01T11:58:00Z", "count": 2
    });
    let rows: Vec<Value> = [
        ("apps", "Deployment", deploy),
        ("", "Node", node),
        ("", "Event", event),
    ]
    .into_iter()
    .map(|(g, k, o)| {
        let t = table(g, k, &[o], IncludeObject::None, now(), None);
        let names: Vec<Value> = t["columnDefinitions"]
            .as_array()
            .map(|a| a.iter().map(|c| c["name"].clone()).collect())
            .unwrap_or_default();
        json!({"kind": k, "columns": names, "cells": t["rows"][0]["cells"]})
    })
    .collect();
    insta::assert_yaml_snapshot!(rows);
}

#[test]
fn conversion_of_lists_objects_statuses_and_watch_events() {
    let p = pod(json!({"phase": "Running"}));
    let list = json!({"kind": "PodList", "metadata": {"resourceVersion": "7", "continue": "c"}, "items": [p.clone(), p.clone()]});
    let t = convert("", "Pod", &list, IncludeObject::Metadata, now());
    assert_eq!(t["rows"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "7", "continue": "c"})
    );
    let status = json!({"kind": "Status", "status": "Success"});
    assert_eq!(
        convert("", "Pod", &status, IncludeObject::Metadata, now()),
        status
    );
    let ev = json!({"type": "MODIFIED", "object": p});
    let first = watch_event("", "Pod", &ev, IncludeObject::Metadata, now(), true);
    assert_eq!(first["type"], "MODIFIED");
    assert_eq!(first["object"]["kind"], "Table");
    assert_eq!(first["object"]["rows"][0]["cells"][0], "web-1");
    assert!(first["object"]["columnDefinitions"]
        .as_array()
        .is_some_and(|c| !c.is_empty()));
    let later = watch_event("", "Pod", &ev, IncludeObject::Metadata, now(), false);
    assert_eq!(later["object"]["columnDefinitions"], json!([]));
    let bm = json!({"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "9"}}});
    let b = watch_event("", "Pod", &bm, IncludeObject::Metadata, now(), false);
    assert_eq!(b["object"]["metadata"]["resourceVersion"], "9");
    assert_eq!(b["object"]["rows"], json!([]));
}

/// upstream `printPersistentVolume`, `printPersistentVolumeClaim`, `printStorageClass`.
#[test]
fn storage_rows() {
    let cells = |g: &str, k: &str, o: Value| -> (Vec<String>, Value) {
        let t = table(g, k, &[o], IncludeObject::None, now(), None);
        (headers(&t), t["rows"][0]["cells"].clone())
    };
    let created = "2025-06-01T11:00:00Z";
    let (h, c) = cells(
        "storage.k8s.io",
        "StorageClass",
        json!({"metadata": {"name": "local", "creationTimestamp": created,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "orch.dev/local", "volumeBindingMode": "WaitForFirstConsumer"}),
    );
    assert_eq!(
        h,
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ]
    );
    assert_eq!(
        c,
        json!([
            "local (default)",
            "orch.dev/local",
            "Delete",
            "WaitForFirstConsumer",
            false,
            "60m"
        ])
    );
    let (h, c) = cells(
        "",
        "PersistentVolumeClaim",
        json!({"metadata": {"name": "data", "creationTimestamp": created},
            "spec": {"volumeName": "pvc-1", "storageClassName": "local", "volumeMode": "Filesystem",
                     "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "2Gi"},
                       "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}}),
    );
    assert_eq!(
        h,
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE"
        ]
    );
    assert_eq!(
        c,
        json!([
            "data",
            "Bound",
            "pvc-1",
            "2Gi",
            "RWO,RWX",
            "local",
            "<unset>",
            "60m",
            "Filesystem"
        ])
    );
    let (_, pending) = cells(
        "",
        "PersistentVolumeClaim",
        json!({"metadata": {"name": "data", "creationTimestamp": created,
                            "deletionTimestamp": created},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Pending", "accessModes": ["ReadWriteOnce"]}}),
    );
    assert_eq!(
        pending,
        json!([
            "data",
            "Terminating",
            "",
            "",
            "",
            "",
            "<unset>",
            "60m",
            "<unset>"
        ])
    );
    let (h, c) = cells(
        "",
        "PersistentVolume",
        json!({"metadata": {"name": "pvc-1", "creationTimestamp": created},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local",
                     "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}}),
    );
    assert_eq!(
        h,
        [
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
            "AGE"
        ]
    );
    assert_eq!(
        c,
        json!([
            "pvc-1",
            "1Gi",
            "RWO",
            "Delete",
            "Bound",
            "default/data",
            "local",
            "<unset>",
            "",
            "60m",
            "Filesystem"
        ])
    );
}

/// upstream `printCronJob`: NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE, then the
/// Job template's containers, images and selector when wide.
#[test]
fn cronjob_rows() {
    let row = |o: Value| -> (Vec<String>, Value) {
        let t = table("batch", "CronJob", &[o], IncludeObject::None, now(), None);
        (headers(&t), t["rows"][0]["cells"].clone())
    };
    let (h, c) = row(
        json!({"metadata": {"name": "tick", "creationTimestamp": "2025-06-01T11:00:00Z"},
        "spec": {"schedule": "*/1 * * * *", "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "tick", "image": "busybox"}]}}}}},
        "status": {"active": [{"kind": "Job", "name": "tick-29145719"}],
                   "lastScheduleTime": "2025-06-01T11:59:00Z"}}),
    );
    assert_eq!(
        h,
        [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE"
        ]
    );
    assert_eq!(
        c,
        json!([
            "tick",
            "*/1 * * * *",
            "<none>",
            "False",
            1,
            "60s",
            "60m",
            "tick",
            "busybox",
            "<none>"
        ])
    );
    let (_, c) = row(json!({"metadata": {"name": "paris"},
        "spec": {"schedule": "@daily", "timeZone": "Europe/Paris", "suspend": true}}));
    assert_eq!(
        &c.as_array().unwrap()[..6],
        &json!(["paris", "@daily", "Europe/Paris", "True", 0, "<none>"])
            .as_array()
            .unwrap()[..]
    );
}

/// `kubectl get quota` (upstream `printResourceQuota`) and `kubectl get limits` (Name and
/// Created At).
#[test]
fn resource_quota_and_limit_range_rows() {
    let quota = json!({
        "metadata": {"name": "compute", "creationTimestamp": "2025-06-01T11:58:00Z"},
        "spec": {"hard": {"pods": "2", "requests.cpu": "1", "limits.memory": "2Gi", "count/configmaps": "5"}},
        "status": {"hard": {"pods": "2", "requests.cpu": "1", "limits.memory": "2Gi", "count/configmaps": "5"},
                   "used": {"pods": "1", "requests.cpu": "500m", "limits.memory": "0"}}
    });
    let t = table(
        "",
        "ResourceQuota",
        &[quota],
        IncludeObject::None,
        now(),
        None,
    );
    assert_eq!(headers(&t), ["NAME", "AGE", "REQUEST", "LIMIT"]);
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "compute",
            "2m",
            "count/configmaps: 0/5, pods: 1/2, requests.cpu: 500m/1",
            "limits.memory: 0/2Gi"
        ])
    );
    let limits =
        json!({"metadata": {"name": "limits", "creationTimestamp": "2025-06-01T11:58:00Z"}});
    let t = table(
        "",
        "LimitRange",
        &[limits],
        IncludeObject::None,
        now(),
        None,
    );
    assert_eq!(headers(&t), ["NAME", "CREATED AT"]);
    assert_eq!(
        t["rows"][0]["cells"],
        json!(["limits", "2025-06-01T11:58:00Z"])
    );
}

#[test]
fn rbac_columns_as_upstream() {
    let role = json!({"metadata": {"name": "r", "creationTimestamp": "2025-06-01T11:55:00Z"}});
    let p = printers::printer("rbac.authorization.k8s.io", "ClusterRole");
    let names: Vec<&str> = p.columns.iter().map(|c| c.name).collect();
    assert_eq!(names, ["Name", "Created At"]);
    assert_eq!(
        (p.cells)(&role, now()),
        [json!("r"), json!("2025-06-01T11:55:00Z")]
    );

    let binding = json!({
        "metadata": {"name": "b", "creationTimestamp": "2025-06-01T11:55:00Z"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "bob"}, {"kind": "User", "name": "carol"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "robot", "namespace": "team"},
        ],
    });
    for kind in ["RoleBinding", "ClusterRoleBinding"] {
        let p = printers::printer("rbac.authorization.k8s.io", kind);
        let cols: Vec<(&str, u8)> = p.columns.iter().map(|c| (c.name, c.priority)).collect();
        assert_eq!(
            cols,
            [
                ("Name", 0),
                ("Role", 0),
                ("Age", 0),
                ("Users", 1),
                ("Groups", 1),
                ("ServiceAccounts", 1)
            ]
        );
        assert_eq!(
            (p.cells)(&binding, now()),
            [
                json!("b"),
                json!("ClusterRole/view"),
                json!("5m"),
                json!("bob, carol"),
                json!("devs"),
                json!("team/robot")
            ]
        );
    }
}

/// `kubectl get endpointslices` (upstream `printEndpointSlice`): three ports and three
/// addresses at most, `<unset>` for none.
#[test]
fn endpointslice_rows() {
    let row = |o: Value| -> (Vec<String>, Value) {
        let t = table(
            "discovery.k8s.io",
            "EndpointSlice",
            &[o],
            IncludeObject::None,
            now(),
            None,
        );
        (headers(&t), t["rows"][0]["cells"].clone())
    };
    let eps: Vec<Value> = (1..=5)
        .map(|i| json!({"addresses": [format!("10.0.0.{i}")]}))
        .collect();
    let (h, c) = row(
        json!({"metadata": {"name": "web-x2z4b", "creationTimestamp": "2025-06-01T11:00:00Z"},
        "addressType": "IPv4", "endpoints": eps,
        "ports": [{"name": "http", "port": 8080}, {"name": "named"}, {}, {"port": 9}]}),
    );
    assert_eq!(h, ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]);
    assert_eq!(
        c,
        json!([
            "web-x2z4b",
            "IPv4",
            "8080,named,* + 1 more...",
            "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...",
            "60m"
        ])
    );
    let (_, c) =
        row(json!({"metadata": {"name": "web-empty"}, "addressType": "IPv6", "endpoints": []}));
    assert_eq!(
        &c.as_array().unwrap()[..4],
        &json!(["web-empty", "IPv6", "<unset>", "<unset>"])
            .as_array()
            .unwrap()[..]
    );
}
