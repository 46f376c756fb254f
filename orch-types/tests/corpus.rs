//! Every manifest of the Kubernetes website examples corpus (shared/corpus) decodes; the kinds
//! orch serves validate clean (or with exactly the errors listed below); JSON round trips are
//! lossless; defaulting is idempotent.
//!
//! The corpus lives beside the repository (`../shared/corpus`, i.e. `../../shared/corpus` from
//! this crate) or wherever `ORCH_CORPUS` points; the test prints a note and passes when absent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orch_types::decode::{decode_documents, strict_errors};
use orch_types::defaults::apply_defaults;
use orch_types::registry;
use orch_types::validation::validate;
use orch_types::DynamicObject;
use serde_json::Value;

fn corpus_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ORCH_CORPUS") {
        let p = PathBuf::from(p);
        return p.is_dir().then_some(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/kubernetes-website-examples");
    p.is_dir().then_some(p)
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
}

/// Drops JSON nulls (absent and null are the same thing on the wire).
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

fn via<K>(v: &Value) -> Value
where
    K: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: K = serde_json::from_value(v.clone()).expect("fits its typed struct");
    serde_json::to_value(typed).expect("serializes")
}

/// The object decoded into its k8s-openapi struct and encoded again.
fn typed_round_trip(kind: &str, v: &Value) -> Option<Value> {
    use k8s_openapi::api::{apps::v1 as apps, autoscaling::v2 as as2, batch::v1 as batch};
    use k8s_openapi::api::{core::v1 as core, policy::v1 as policy};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    Some(match kind {
        "Pod" => via::<core::Pod>(v),
        "Service" => via::<core::Service>(v),
        "ConfigMap" => via::<core::ConfigMap>(v),
        "Secret" => via::<core::Secret>(v),
        "ServiceAccount" => via::<core::ServiceAccount>(v),
        "ReplicationController" => via::<core::ReplicationController>(v),
        "Deployment" => via::<apps::Deployment>(v),
        "ReplicaSet" => via::<apps::ReplicaSet>(v),
        "DaemonSet" => via::<apps::DaemonSet>(v),
        "StatefulSet" => via::<apps::StatefulSet>(v),
        "Job" => via::<batch::Job>(v),
        "PodDisruptionBudget" => via::<policy::PodDisruptionBudget>(v),
        "HorizontalPodAutoscaler" => via::<as2::HorizontalPodAutoscaler>(v),
        "CustomResourceDefinition" => via::<apiext::CustomResourceDefinition>(v),
        _ => return None,
    })
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Null => true,
    }
}

/// Removes what k8s-openapi adds on the way through its structs and Go would not: zero values
/// of fields it models as required (`status: ""` in a pod-failure-policy pattern) and the
/// apiVersion/kind it always writes on embedded resources (volumeClaimTemplates), and numbers
/// it reads into string-typed fields (quantities). Anything
/// else that differs still fails the comparison.
fn prune_typed_additions(rt: &mut Value, raw: &Value) {
    match (rt, raw) {
        (Value::Object(r), Value::Object(o)) => {
            r.retain(|k, v| o.contains_key(k) || !(is_zero(v) || k == "apiVersion" || k == "kind"));
            for (k, v) in r.iter_mut() {
                if let Some(ov) = o.get(k) {
                    prune_typed_additions(v, ov);
                }
            }
        }
        (Value::Array(r), Value::Array(o)) => {
            for (v, ov) in r.iter_mut().zip(o) {
                prune_typed_additions(v, ov);
            }
        }
        // Quantities and IntOrStrings written as YAML numbers come back as strings.
        (r @ Value::String(_), Value::Number(n)) if r.as_str() == Some(&n.to_string()) => {
            *r = Value::Number(n.clone());
        }
        _ => {}
    }
}

/// Known, deliberate findings: `file#kind/name` → exact validation or strict-decoding errors.
fn expected() -> BTreeMap<&'static str, Vec<&'static str>> {
    BTreeMap::from([
        // The corpus README: this version of the file writes `nodeSelectorTerms` as a list of
        // preference/weight items, which the Pod schema rejects.
        (
            "pods/pod-with-node-affinity.yaml#Pod/with-node-affinity",
            vec!["decode: invalid type: sequence, expected NodeSelector"],
        ),
        // This (older) version writes the gRPC handler as `gRPC`; the field is `grpc` and
        // kube-apiserver decodes case-sensitively, so strict validation names the field.
        (
            "pods/probe/grpc-liveness.yaml#Pod/etcd-with-grpc",
            vec!["spec.containers[0].livenessProbe.gRPC: unknown field \"gRPC\""],
        ),
        // Numeric toleration operators (`Gt`/`Lt`) arrived after Kubernetes 1.33, which only
        // supports Equal and Exists.
        (
            "pods/pod-with-numeric-toleration.yaml#Pod/nginx-numeric-toleration",
            vec!["spec.tolerations[0].operator: Unsupported value: \"Gt\": supported values: \"Equal\", \"Exists\""],
        ),
    ])
}

#[test]
fn corpus_decodes_validates_round_trips_and_defaults_idempotently() {
    let Some(dir) = corpus_dir() else {
        println!(
            "note: corpus not found (set ORCH_CORPUS or place shared/ beside the repo); skipping"
        );
        return;
    };
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    assert!(
        files.len() >= 50,
        "corpus looks incomplete: {} files",
        files.len()
    );
    let expected = expected();
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut served = 0;
    let mut typed = 0;
    let mut objects = 0;
    for path in &files {
        let rel = path
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(path).unwrap();
        let docs = decode_documents(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(!docs.is_empty(), "{rel}: no objects");
        for d in docs {
            objects += 1;
            let key = format!("{rel}#{}/{}", d.object.types.kind, d.object.name());

            // Lossless JSON round trip of the dynamic object.
            let json = serde_json::to_string(&d.object).unwrap();
            let back: DynamicObject = serde_json::from_str(&json).unwrap();
            assert_eq!(back, d.object, "{key}: JSON round trip");
            assert_eq!(
                strip_nulls(&d.object.to_value()),
                strip_nulls(&d.raw),
                "{key}: raw JSON preserved"
            );

            if registry::by_kind(&d.object.types.api_version, &d.object.types.kind).is_none() {
                continue;
            }
            served += 1;
            let mut errs: Vec<String> = Vec::new();
            for e in strict_errors(&d, &text) {
                errs.push(if e.field.is_empty() {
                    format!("decode: {}", e.message)
                } else {
                    format!("{}: {}", e.field, e.message)
                });
            }
            if errs.is_empty() {
                // Lossless through the typed wire struct too.
                if let Some(mut rt) = typed_round_trip(&d.object.types.kind, &d.raw) {
                    prune_typed_additions(&mut rt, &d.raw);
                    assert_eq!(
                        strip_nulls(&rt),
                        strip_nulls(&d.raw),
                        "{key}: typed round trip"
                    );
                    typed += 1;
                }
                errs.extend(validate(&d.object).iter().map(ToString::to_string));
                // Defaulting is idempotent and survives a JSON round trip.
                let mut once = d.object.clone();
                apply_defaults(&mut once).unwrap_or_else(|e| panic!("{key}: {e}"));
                let mut twice = once.clone();
                apply_defaults(&mut twice).unwrap();
                assert_eq!(twice, once, "{key}: defaulting not idempotent");
                let rt: DynamicObject =
                    serde_json::from_str(&serde_json::to_string(&once).unwrap()).unwrap();
                assert_eq!(rt, once, "{key}: defaulted JSON round trip");
                assert!(
                    validate(&once).is_empty() || !errs.is_empty(),
                    "{key}: defaulted copy invalid"
                );
            }
            if !errs.is_empty() {
                found.insert(key, errs);
            }
        }
    }
    let want: BTreeMap<String, Vec<String>> = expected
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
        .collect();
    assert_eq!(
        found, want,
        "validation findings differ from the expected list"
    );
    println!(
        "corpus: {} files, {objects} objects, {served} of served kinds, {typed} typed round trips",
        files.len()
    );
    assert!(typed > 80, "typed round trips ran for only {typed} objects");
}
