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
    let pool = pool().expect("definitions compile");
    let desc = pool
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.Unknown")
        .expect("Unknown");
    let tm_desc = pool
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.TypeMeta")
        .expect("TypeMeta");
    let mut tm = DynamicMessage::new(tm_desc);
    tm.set_field_by_name("apiVersion", PValue::String(api_version.into()));
    tm.set_field_by_name("kind", PValue::String(kind.into()));
    let mut u = DynamicMessage::new(desc);
    u.set_field_by_name("typeMeta", PValue::Message(tm));
    u.set_field_by_name("raw", PValue::Bytes(raw.into()));
    u.set_field_by_name("contentEncoding", PValue::String(encoding.into()));
    let mut out = MAGIC.to_vec();
    out.extend(u.encode_to_vec());
    out
}

fn encode(message: &str, proto_json: Value) -> Vec<u8> {
    let desc = pool()
        .expect("definitions")
        .get_message_by_name(message)
        .expect("message");
    DynamicMessage::deserialize(desc, proto_json)
        .expect("proto JSON")
        .encode_to_vec()
}

#[test]
fn special_messages() {
    let raw = encode(
        "k8s.io.api.core.v1.Pod",
        json!({
            "metadata": {"name": "p", "creationTimestamp": {"seconds": "1700000000"}},
            "spec": {"containers": [{"name": "c", "image": "x",
                "resources": {"limits": {"cpu": {"string": "500m"}}},
                "livenessProbe": {"handler": {"httpGet": {"port": {"type": "1", "strVal": "http"}}},
                                  "periodSeconds": 5},
                "readinessProbe": {"handler": {"tcpSocket": {"port": {"type": "0", "intVal": 8080}}}}}],
                "volumes": [{"name": "v", "volumeSource": {"emptyDir": {}}}]}
        }),
    );
    let v = decode(&envelope("v1", "Pod", raw, "")).expect("decodes");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["kind"], "Pod");
    assert_eq!(v["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
    let c = &v["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"]["cpu"], "500m");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["tcpSocket"]["port"], 8080);
    assert_eq!(c["livenessProbe"]["periodSeconds"], 5);
    assert_eq!(
        v["spec"]["volumes"][0],
        json!({"name": "v", "emptyDir": {}})
    );
    assert_eq!(
        message_name("coordination.k8s.io/v1", "Lease"),
        "k8s.io.api.coordination.v1.Lease"
    );
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
