//! Fixtures are real request bodies captured from kubectl 1.33 (`kubectl create deployment
//! nginx --image=nginx --replicas=2 --port=80`, `create configmap cm1 --from-literal=a=b`,
//! `create secret generic s1 --from-literal=pw=hunter2`, `create namespace team-a`,
//! `create serviceaccount sa1`, `create job j1 --image=busybox -- echo hi`).

use prost::Message;
use serde_json::json;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/src/protobuf/testdata/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn kubectl_create_bodies_decode() {
    let decoded: Vec<Value> = [
        "create_deployment",
        "create_configmap",
        "create_secret",
        "create_namespace",
        "create_serviceaccount",
        "create_job",
    ]
    .iter()
    .map(|n| decode(&fixture(n)).unwrap_or_else(|e| panic!("{n}: {e}")))
    .collect();
    insta::assert_yaml_snapshot!(decoded);
}

#[test]
fn decoded_objects_are_valid_typed_objects() {
    use k8s_openapi::api::{apps::v1::Deployment, batch::v1::Job, core::v1::Secret};
    let d: Deployment =
        serde_json::from_value(decode(&fixture("create_deployment")).expect("decodes"))
            .expect("typed");
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let c = &spec.template.spec.expect("pod spec").containers[0];
    assert_eq!(c.image.as_deref(), Some("nginx"));
    assert_eq!(c.ports.as_ref().map(|p| p[0].container_port), Some(80));
    assert!(d.metadata.namespace.is_none(), "empty strings are dropped");
    assert!(d.metadata.creation_timestamp.is_none(), "zero Time is null");
    let s: Secret =
        serde_json::from_value(decode(&fixture("create_secret")).expect("decodes")).expect("typed");
    assert_eq!(s.data.expect("data")["pw"].0, b"hunter2");
    let j: Job =
        serde_json::from_value(decode(&fixture("create_job")).expect("decodes")).expect("typed");
    let args = j.spec.expect("spec").template.spec.expect("pod").containers[0]
        .command
        .clone();
    assert_eq!(args, Some(vec!["echo".to_string(), "hi".to_string()]));
}

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>, encoding: &str) -> Vec<u8> {
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(encoding.into()),
        content_type: None,
    };
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

#[test]
fn special_messages() {
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    use k8s_pb::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1 as meta};
    let port = |s: &str| IntOrString {
        r#type: Some(1),
        int_val: None,
        str_val: Some(s.into()),
    };
    let int_port = |i: i32| IntOrString {
        r#type: Some(0),
        int_val: Some(i),
        str_val: None,
    };
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: Some("p".into()),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_700_000_000),
                nanos: None,
            }),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            host_ipc: Some(true),
            containers: vec![core::Container {
                name: Some("c".into()),
                image: Some("x".into()),
                resources: Some(core::ResourceRequirements {
                    limits: [(
                        "cpu".to_string(),
                        Quantity {
                            string: Some("500m".into()),
                        },
                    )]
                    .into_iter()
                    .collect(),
                    ..Default::default()
                }),
                liveness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            port: Some(port("http")),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(5),
                    ..Default::default()
                }),
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        tcp_socket: Some(core::TcpSocketAction {
                            port: Some(int_port(8080)),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            volumes: vec![core::Volume {
                name: Some("v".into()),
                volume_source: Some(core::VolumeSource {
                    empty_dir: Some(core::EmptyDirVolumeSource::default()),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        }),
        status: None,
    };
    let v = decode(&envelope("v1", "Pod", pod.encode_to_vec(), "")).expect("decodes");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["kind"], "Pod");
    assert_eq!(v["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(
        v["spec"]["hostIPC"], true,
        "snake_case names map to irregular JSON names"
    );
    let c = &v["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"]["cpu"], "500m");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["tcpSocket"]["port"], 8080);
    assert_eq!(c["livenessProbe"]["periodSeconds"], 5);
    assert_eq!(
        v["spec"]["volumes"][0],
        json!({"name": "v", "emptyDir": {}})
    );
}

/// A pointer to a zero `IntOrString` in Go is kept: `maxUnavailable: 0` must not fall back to
/// the 25% default.
#[test]
fn zero_int_or_string_is_kept() {
    use k8s_pb::api::apps::v1 as apps;
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    let d = apps::Deployment {
        spec: Some(apps::DeploymentSpec {
            strategy: Some(apps::DeploymentStrategy {
                r#type: Some("RollingUpdate".into()),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(0),
                        str_val: None,
                    }),
                    max_surge: None,
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let v = decode(&envelope("apps/v1", "Deployment", d.encode_to_vec(), "")).expect("decodes");
    assert_eq!(
        v["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}})
    );
}

/// Every kind in the table has a schema of the API server's (so its fields get their JSON
/// names) and decodes an empty message.
#[test]
fn every_kind_decodes_with_a_schema() {
    for (api_version, kind, _) in KINDS {
        let (group, version) = orch_types::registry::split_api_version(api_version);
        assert!(
            Schemas::builtin().root(group, version, kind).is_some()
                || ["Binding", "Eviction", "Scale"].contains(kind),
            "{api_version} {kind} has no schema"
        );
        let v = decode(&envelope(api_version, kind, vec![], ""))
            .unwrap_or_else(|e| panic!("{api_version} {kind}: {e}"));
        assert_eq!(v["kind"], *kind);
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    assert!(matches!(decode(b"nope"), Err(ProtobufError::BadMagic)));
    assert!(matches!(
        decode(b"k8s\0\xff\xff"),
        Err(ProtobufError::Envelope(_))
    ));
    let unknown = envelope("example.com/v1", "Widget", vec![], "");
    assert_eq!(
        decode(&unknown).map_err(|e| e.to_string()),
        Err("no protobuf definition for example.com/v1, Kind=Widget".to_string())
    );
    let gz = envelope("v1", "Pod", vec![], "gzip");
    assert!(matches!(
        decode(&gz),
        Err(ProtobufError::ContentEncoding(_))
    ));
    let garbage = envelope("v1", "Pod", vec![0x0a, 0xff], "");
    assert!(matches!(decode(&garbage), Err(ProtobufError::Body { .. })));
}

/// client-go's typed clients send `DeleteOptions` as protobuf under their own group version.
#[test]
fn delete_options_decode_under_any_group_version() {
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    let opts = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: Some("Foreground".into()),
        preconditions: Some(meta::Preconditions {
            uid: Some("u-1".into()),
            resource_version: None,
        }),
        dry_run: vec!["All".into()],
        ..Default::default()
    };
    for api_version in ["v1", "apps/v1", "meta.k8s.io/v1"] {
        let v = decode(&envelope(
            api_version,
            "DeleteOptions",
            opts.encode_to_vec(),
            "",
        ))
        .expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": api_version, "kind": "DeleteOptions",
                   "gracePeriodSeconds": 0, "preconditions": {"uid": "u-1"},
                   "propagationPolicy": "Foreground", "dryRun": ["All"]})
        );
    }
}

/// A zero the client set in a Go pointer field stays: `kubectl create deployment
/// --replicas=0` must not become the default 1, `enableServiceLinks: false` not true.
#[test]
fn zeros_of_pointer_fields_are_kept() {
    use k8s_pb::api::apps::v1 as apps;
    use k8s_pb::api::core::v1 as core;
    let d = apps::Deployment {
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            min_ready_seconds: Some(0),
            template: Some(core::PodTemplateSpec {
                metadata: None,
                spec: Some(core::PodSpec {
                    enable_service_links: Some(false),
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let v = decode(&envelope("apps/v1", "Deployment", d.encode_to_vec(), "")).expect("decodes");
    assert_eq!(
        v["spec"],
        json!({"replicas": 0, "template": {"spec": {"enableServiceLinks": false}}})
    );
}
