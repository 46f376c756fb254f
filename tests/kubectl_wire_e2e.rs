//! What real clients see on the wire, against `orch up` (sim runtime) with the real `kubectl`
//! (issue 21): empty metadata lists are omitted as Go's `omitempty` omits them, error bodies are
//! kube-apiserver's bytes, and the endpoints controller does not fail its writes after a plain
//! `kubectl apply` of a Service.

mod common;

use common::{http_get, wait_for, TestEnv, Up};
use std::time::Duration;

const RS: &str = r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx
        ports:
        - {name: http, containerPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {port: 80, targetPort: http}
"#;

#[test]
fn empty_lists_are_omitted_and_error_bodies_are_kube_apiservers() {
    let env = TestEnv::new();
    let up = Up::start(&env, 1, "sim", &[]);
    env.apply(RS);
    let pods = env.wait_count(
        "the ReplicaSet's pod",
        &["pods", "-l", "app=web"],
        1,
        Duration::from_secs(60),
        |p| p["metadata"]["ownerReferences"].is_array(),
    );
    let pod = pods[0]["metadata"]["name"]
        .as_str()
        .expect("pod name")
        .to_string();

    // Orphaning: the garbage collector removes the pod's only owner reference (a JSON patch
    // `remove`, which leaves `[]`); kube-apiserver stores no ownerReferences at all, so the
    // jsonpath prints nothing (issue 21: orch printed `[]`).
    env.kubectl(&["delete", "rs", "web", "--cascade=orphan"]);
    let path = format!("pod/{pod}");
    wait_for(
        "the orphaned pod to lose its owner reference",
        Duration::from_secs(30),
        || {
            let refs =
                env.kubectl_try(&["get", &path, "-o", "jsonpath={.metadata.ownerReferences}"])?;
            if refs.is_empty() {
                Ok(())
            } else {
                Err(format!("ownerReferences: {refs:?}"))
            }
        },
    );
    let json = env.get_json(&[&path]).expect("get pod");
    let meta = json["metadata"].as_object().expect("metadata");
    for absent in ["ownerReferences", "finalizers"] {
        assert!(!meta.contains_key(absent), "{absent} in {json:#}");
    }
    assert_eq!(
        env.kubectl(&["get", &path, "-o", "jsonpath={.metadata.finalizers}"]),
        ""
    );

    // A 404 as kube-apiserver sends it, byte for byte.
    let (code, body) = http_get(
        &env.kubeconfig,
        up.addr,
        "/api/v1/namespaces/default/pods/nope",
    )
    .expect("GET");
    assert_eq!(code, 404, "{body}");
    assert_eq!(
        body,
        concat!(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
            r#""message":"pods \"nope\" not found","reason":"NotFound","#,
            r#""details":{"name":"nope","kind":"pods"},"code":404}"#,
            "\n"
        )
    );

    // The Service applied with the ReplicaSet got its Endpoints, and the endpoints controller
    // never failed a write on the way (issue 21: `endpoints "web" already exists` in a loop).
    wait_for("the Service's endpoints", Duration::from_secs(30), || {
        let ep = env.get_json(&["endpoints", "web"])?;
        match ep["subsets"][0]["ports"][0]["port"].as_i64() {
            Some(8080) => Ok(()),
            _ => Err(format!("{ep:#}")),
        }
    });
    let log = up.proc.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("endpoints") && l.contains("already exists")),
        "{}",
        up.proc.log_tail(40)
    );
}
