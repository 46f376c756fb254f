//! EndpointSlices on `orch up` (process runtime) with real kubectl 1.33: a Deployment behind a
//! Service gets a `web-xxxxx` slice listing its pods' IPs and the resolved target port, shown
//! with upstream's columns (`NAME ADDRESSTYPE PORTS ENDPOINTS AGE`); after a scale-down the
//! pod on its way out (it ignores SIGTERM for its grace period) stays listed as terminating and
//! not ready, then goes; the `kubernetes` Service has its `kubernetes` slice; Endpoints written
//! for a Service without a selector are mirrored; deleting the Service deletes its slices
//! (owner references, garbage collector).

mod common;

use common::{wait_for, TestEnv, Up};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const SELECTOR: &str = "kubernetes.io/service-name=web";

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 4
      containers:
        - name: app
          image: busybox:1.36
          command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
          ports:
            - name: http
              containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - name: http
      port: 80
      targetPort: http
"#;

const EXTERNAL: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: ext
spec:
  ports:
    - port: 80
      targetPort: 9000
---
apiVersion: v1
kind: Endpoints
metadata:
  name: ext
subsets:
  - addresses:
      - ip: 192.0.2.10
    notReadyAddresses:
      - ip: 192.0.2.11
    ports:
      - port: 9000
"#;

/// The endpoints of the `web` slices, each as (address, ready, serving, terminating).
fn endpoints(env: &TestEnv) -> Result<Vec<(String, bool, bool, bool)>, String> {
    let mut out = Vec::new();
    for s in env.get_items(&["endpointslices", "-l", SELECTOR])? {
        for e in s["endpoints"].as_array().into_iter().flatten() {
            let c = &e["conditions"];
            let flag = |k: &str| c[k].as_bool().unwrap_or(false);
            out.push((
                e["addresses"][0].as_str().unwrap_or("").to_string(),
                flag("ready"),
                flag("serving"),
                flag("terminating"),
            ));
        }
    }
    out.sort();
    Ok(out)
}

fn pod_ips(env: &TestEnv) -> Result<BTreeSet<String>, String> {
    Ok(env
        .get_items(&["pods", "-l", "app=web"])?
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .collect())
}

#[test]
fn endpointslices_follow_the_pods_of_a_service() {
    let env = TestEnv::new();
    let _up = Up::start(&env, 1, "process", &[]);
    env.apply(APP);

    // Both pods, ready, in one slice with the resolved target port.
    let ips = wait_for("two ready endpoints", WAIT, || {
        let ips = pod_ips(&env)?;
        let eps = endpoints(&env)?;
        let ready: BTreeSet<String> = eps
            .iter()
            .filter(|e| e.1 && e.2 && !e.3)
            .map(|e| e.0.clone())
            .collect();
        if ips.len() == 2 && ready == ips && eps.len() == 2 {
            Ok(ips)
        } else {
            Err(format!("pods {ips:?}, endpoints {eps:?}"))
        }
    });
    let slice = &env.get_items(&["endpointslices", "-l", SELECTOR]).unwrap()[0];
    let meta = &slice["metadata"];
    assert_eq!(meta["generateName"], "web-", "{slice}");
    assert_eq!(
        meta["labels"]["endpointslice.kubernetes.io/managed-by"], "endpointslice-controller.k8s.io",
        "{slice}"
    );
    assert_eq!(meta["ownerReferences"][0]["kind"], "Service", "{slice}");
    assert_eq!(
        slice["ports"],
        serde_json::json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    let table = env.kubectl(&["get", "endpointslices", "-l", SELECTOR]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        "{table}"
    );
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[1][0].starts_with("web-") && lines[1][0].len() == 9,
        "{table}"
    );
    assert_eq!(lines[1][1..3], ["IPv4", "8080"], "{table}");
    let shown: BTreeSet<String> = lines[1][3].split(',').map(str::to_string).collect();
    assert_eq!(shown, ips, "{table}");

    // Scale down: the pod that goes ignores SIGTERM for its 4 s grace period, listed as
    // terminating (never ready) meanwhile, then removed.
    env.kubectl(&["scale", "deployment", "web", "--replicas=1"]);
    let going = wait_for("a terminating endpoint", WAIT, || {
        let eps = endpoints(&env)?;
        match eps.iter().find(|e| e.3) {
            Some(e) if !e.1 => Ok(e.clone()),
            _ => Err(format!("{eps:?}")),
        }
    });
    wait_for("the terminating endpoint to go", WAIT, || {
        let eps = endpoints(&env)?;
        if eps.len() == 1 && eps[0].0 != going.0 && eps[0].1 {
            Ok(())
        } else {
            Err(format!("{eps:?}"))
        }
    });

    // The API server's own slice for the kubernetes Service.
    let k8s = env.get_json(&["endpointslice", "kubernetes"]).unwrap();
    assert_eq!(k8s["addressType"], "IPv4", "{k8s}");
    assert_eq!(
        k8s["metadata"]["labels"]["kubernetes.io/service-name"],
        "kubernetes"
    );
    let port = env.get_json(&["endpoints", "kubernetes"]).unwrap()["subsets"][0]["ports"][0]
        ["port"]
        .clone();
    assert_eq!(k8s["ports"][0]["port"], port, "{k8s}");
    assert!(!k8s["endpoints"][0]["addresses"][0].is_null(), "{k8s}");

    // Endpoints written by hand for a Service without a selector are mirrored.
    env.apply(EXTERNAL);
    let mirrored = wait_for("the mirrored slice", WAIT, || {
        let items = env.get_items(&["endpointslices", "-l", "kubernetes.io/service-name=ext"])?;
        match items.as_slice() {
            [s] if s["endpoints"].as_array().map(Vec::len) == Some(2) => Ok(s.clone()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(
        mirrored["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslicemirroring-controller.k8s.io",
        "{mirrored}"
    );
    assert_eq!(
        mirrored["metadata"]["ownerReferences"][0]["kind"],
        "Endpoints"
    );
    let ready: Vec<(&str, bool)> = mirrored["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["addresses"][0].as_str().unwrap_or(""),
                e["conditions"]["ready"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(ready, [("192.0.2.10", true), ("192.0.2.11", false)]);
    assert_eq!(mirrored["ports"][0]["port"], 9000);

    // The Service goes: its slices follow.
    env.kubectl(&["delete", "service", "web"]);
    wait_for("the slices to be garbage collected", WAIT, || {
        let left: Vec<Value> = env.get_items(&["endpointslices", "-l", SELECTOR])?;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{} left", left.len()))
        }
    });
}
