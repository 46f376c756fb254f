//! Service accounts on `orch up` with real kubectl: the `default` ServiceAccount and the
//! `kube-root-ca.crt` ConfigMap appear in a new namespace (and come back when deleted); a pod
//! gets `serviceAccountName: default` and the projected token volume mounted in its
//! containers, unless `automountServiceAccountToken: false`; a pod naming a missing service
//! account is refused with upstream's message; `kubectl create token` answers a bound JWT with
//! upstream's claims (duration, pod binding), refuses lifetimes under ten minutes and pods of
//! another namespace.

mod common;

use base64::Engine;
use common::{wait_for, TestEnv, Up};
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const NS: &str = "sa-e2e";

/// The claims of a JWT (its payload, not verified: the server's tests verify signatures).
fn claims(token: &str) -> Value {
    let payload = token
        .trim()
        .split('.')
        .nth(1)
        .expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn pod(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n{extra_spec}  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '3600']\n"
    )
}

#[test]
fn service_accounts_and_tokens_with_kubectl() {
    let env = TestEnv::new();
    let _up = Up::start(&env, 1, "sim", &[]);
    env.kubectl(&["create", "namespace", NS]);
    let sa_uid = wait_for("the default service account", WAIT, || {
        env.get_json(&["serviceaccount", "default", "-n", NS])
            .map(|v| v["metadata"]["uid"].as_str().unwrap_or("").to_string())
    });
    let cm = wait_for("kube-root-ca.crt", WAIT, || {
        env.get_json(&["configmap", "kube-root-ca.crt", "-n", NS])
    });
    assert!(cm["data"]["ca.crt"].is_string(), "{cm}");

    // A deleted `default` comes back (another object, another UID).
    env.kubectl(&["delete", "serviceaccount", "default", "-n", NS]);
    wait_for("default to be re-created", WAIT, || {
        let v = env.get_json(&["serviceaccount", "default", "-n", NS])?;
        let uid = v["metadata"]["uid"].as_str().unwrap_or("");
        if uid != sa_uid {
            Ok(())
        } else {
            Err("still the old one".to_string())
        }
    });

    // Admission: the account and the projected volume.
    env.apply(&pod("web", ""));
    let p = env.get_json(&["pod", "web", "-n", NS]).unwrap();
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    let volume = &p["spec"]["volumes"][0];
    let name = volume["name"].as_str().unwrap();
    assert!(name.starts_with("kube-api-access-"), "{volume}");
    let sources = &volume["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(sources[2]["downwardAPI"]["items"][0]["path"], "namespace");
    let mount = &p["spec"]["containers"][0]["volumeMounts"][0];
    assert_eq!(
        mount["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    assert_eq!(mount["readOnly"], true);

    env.apply(&pod("quiet", "  automountServiceAccountToken: false\n"));
    let p = env.get_json(&["pod", "quiet", "-n", NS]).unwrap();
    assert!(p["spec"].get("volumes").is_none(), "{p}");

    let refused = {
        let path = env.path().join("nobody.yaml");
        std::fs::write(&path, pod("nobody", "  serviceAccountName: nobody\n")).unwrap();
        env.kubectl_try(&["create", "-f", path.to_str().unwrap()])
            .unwrap_err()
    };
    assert!(
        refused.contains("pods \"nobody\" is forbidden: service account sa-e2e/nobody was not found, retry after the service account is created"),
        "{refused}"
    );

    // kubectl create token: a one-hour token for the API's audience by default.
    let token = env.kubectl(&["create", "token", "default", "-n", NS]);
    let c = claims(&token);
    assert_eq!(c["sub"], "system:serviceaccount:sa-e2e:default");
    assert_eq!(c["kubernetes.io"]["namespace"], NS);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
    let token = env.kubectl(&["create", "token", "default", "-n", NS, "--duration", "10m"]);
    let c = claims(&token);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
    let short = env
        .kubectl_try(&["create", "token", "default", "-n", NS, "--duration", "5m"])
        .unwrap_err();
    assert!(
        short.contains("may not specify a duration less than 10 minutes"),
        "{short}"
    );

    // Bound to a pod: the pod's name and UID are in the token.
    let token = env.kubectl(&[
        "create",
        "token",
        "default",
        "-n",
        NS,
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "web",
    ]);
    let c = claims(&token);
    assert_eq!(c["kubernetes.io"]["pod"]["name"], "web");
    let web = env.get_json(&["pod", "web", "-n", NS]).unwrap();
    assert_eq!(c["kubernetes.io"]["pod"]["uid"], web["metadata"]["uid"]);
    // A token for namespace default's account bound to this namespace's pod: the pod is
    // looked up in the account's namespace, so it is not found.
    let other = env
        .kubectl_try(&[
            "create",
            "token",
            "default",
            "-n",
            "default",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "web",
        ])
        .unwrap_err();
    assert!(other.contains("pods \"web\" not found"), "{other}");
    // And no token for an account that does not exist.
    let missing = env
        .kubectl_try(&["create", "token", "nobody", "-n", NS])
        .unwrap_err();
    assert!(
        missing.contains("serviceaccounts \"nobody\" not found"),
        "{missing}"
    );
}
