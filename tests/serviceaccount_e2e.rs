//! Service accounts on `orch up` with real kubectl: the `default` ServiceAccount and the
//! `kube-root-ca.crt` ConfigMap appear in a new namespace (and come back when deleted); a pod
//! gets `serviceAccountName: default` and the projected token volume mounted in its
//! containers, unless `automountServiceAccountToken: false`; a pod naming a missing service
//! account is refused with upstream's message; `kubectl create token` answers a bound JWT with
//! upstream's claims (duration, pod binding), refuses lifetimes under ten minutes and pods of
//! another namespace. On the process runtime, in-cluster clients: service-account tokens
//! authenticate (and stop when their pod is gone), the `kubernetes` Service, and a pod listing
//! pods with the Python client's in-cluster configuration.

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

/// A kubeconfig for the API at `addr` that authenticates with `token` only (no client
/// certificate: kubectl would present the admin's and the server would take it first).
fn token_kubeconfig(env: &TestEnv, addr: std::net::SocketAddr, token: &str) -> String {
    let ca = env.data_dir().join("pki").join("ca.crt");
    let path = env
        .path()
        .join(format!("token-{}.kubeconfig", common::unique()));
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "c", "cluster": {
            "server": format!("https://{addr}"),
            "certificate-authority": ca.to_str().unwrap()}}],
        "users": [{"name": "u", "user": {"token": token.trim()}}],
        "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}],
    });
    std::fs::write(&path, config.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

/// The Python interpreter with the `kubernetes` client: `ORCH_PYTHON`, else the repository's
/// `.venv`. Panics when it cannot import `kubernetes`: the check never passes without running.
fn python() -> std::path::PathBuf {
    let p = std::env::var_os("ORCH_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
        });
    let ok = std::process::Command::new(&p)
        .args(["-c", "import kubernetes"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} cannot import the Python `kubernetes` client: run scripts/test-all.sh once to \
         create .venv, or set ORCH_PYTHON",
        p.display()
    );
    p
}

/// What the pod runs: reads its token volume and lists the pods of its namespace with the
/// Python client's in-cluster configuration. The volume is at the well-known path when the
/// kubelet runs as root; else at the kubelet's per-pod path (docs/design/process-runtime.md).
const IN_CLUSTER: &str = r#"
import glob, os
from kubernetes import client, config
from kubernetes.config.incluster_config import InClusterConfigLoader
d = "/var/run/secrets/kubernetes.io/serviceaccount"
if not os.path.exists(d + "/token"):
    d = glob.glob(os.environ["KUBELET_ROOT"] + "/pods/" + os.environ["POD_UID"]
                  + "/volumes/kubernetes.io~projected/kube-api-access-*")[0]
print("dir:", d)
print("token:", len(open(d + "/token").read().split(".")))
print("ca:", open(d + "/ca.crt").read().splitlines()[0])
print("namespace:", open(d + "/namespace").read())
print("service:", os.environ["KUBERNETES_PORT"])
InClusterConfigLoader(token_filename=d + "/token", cert_filename=d + "/ca.crt").load_and_set()
pods = client.CoreV1Api().list_namespaced_pod(open(d + "/namespace").read())
print("pods:", sorted(p.metadata.name for p in pods.items))
"#;

/// On `orch up` with the process runtime (HTTPS, Node,RBAC): a service-account token
/// authenticates as its account; a token whose bound pod is gone and one signed by another
/// key are refused with 401; the `kubernetes` Service and its Endpoints show the API server;
/// a pod reads its token volume and lists its namespace's pods with the Python client's
/// in-cluster configuration.
#[test]
fn in_cluster_clients_with_kubectl_and_python() {
    let env = TestEnv::new();
    let up = Up::start(&env, 1, "process", &[]);
    let addr = up.addr;

    // The kubernetes Service and its Endpoints.
    let svc = wait_for("the kubernetes service", WAIT, || {
        env.get_json(&["service", "kubernetes", "-n", "default"])
    });
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1", "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["name"], "https");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], addr.port());
    assert_eq!(svc["metadata"]["labels"]["provider"], "kubernetes");
    let ep = wait_for("the kubernetes endpoints", WAIT, || {
        env.get_json(&["endpoints", "kubernetes", "-n", "default"])
    });
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "127.0.0.1", "{ep}");
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], addr.port());
    let table = env.kubectl(&["get", "endpoints", "kubernetes"]);
    assert!(
        table.contains(&format!("127.0.0.1:{}", addr.port())),
        "{table}"
    );

    // kubectl --token=$(kubectl create token default) auth whoami
    let token = wait_for("a token for default/default", WAIT, || {
        env.kubectl_try(&["create", "token", "default"])
    });
    let as_sa = token_kubeconfig(&env, addr, &token);
    let who = env.kubectl(&[
        "--kubeconfig",
        &as_sa,
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(who, "system:serviceaccount:default:default");

    // A token signed by another key: 401.
    let forged = orch_apiserver::serviceaccount::keys::SigningKey::generate()
        .unwrap()
        .sign(&claims(&token))
        .unwrap();
    let refused = env
        .kubectl_try(&[
            "--kubeconfig",
            &token_kubeconfig(&env, addr, &forged),
            "get",
            "--raw",
            "/api",
        ])
        .unwrap_err();
    assert!(refused.contains("Unauthorized"), "{refused}");

    // A token bound to a pod that was deleted: 401 (tokens live at least ten minutes, so
    // this is how one stops working in a test).
    env.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bound\n  namespace: default\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '3600']\n",
    );
    let bound = env.kubectl(&[
        "create",
        "token",
        "default",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "bound",
    ]);
    let as_bound = token_kubeconfig(&env, addr, &bound);
    env.kubectl(&["--kubeconfig", &as_bound, "auth", "whoami"]);
    env.kubectl(&["delete", "pod", "bound", "--wait=true", "--timeout=60s"]);
    let refused = env
        .kubectl_try(&["--kubeconfig", &as_bound, "get", "--raw", "/api"])
        .unwrap_err();
    assert!(refused.contains("Unauthorized"), "{refused}");

    // A pod using in-cluster config: its account may view its namespace.
    let ns = "sa-client";
    env.kubectl(&["create", "namespace", ns]);
    wait_for("the default service account", WAIT, || {
        env.get_json(&["serviceaccount", "default", "-n", ns])
    });
    env.kubectl(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        &format!("--serviceaccount={ns}:default"),
        "-n",
        ns,
    ]);
    let kubelet_root = env.data_dir().join("kubelet").join("node-1");
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "incluster", "namespace": ns},
        "spec": {
            // The pod reaches the API server on the node's loopback: routing the service IP
            // 10.96.0.1 is the service proxy's job (issue 19), so KUBERNETES_SERVICE_HOST/_PORT
            // are set to the API server's real address here.
            "hostNetwork": true,
            "restartPolicy": "Never",
            "containers": [{
                "name": "c", "image": "python:3.12",
                "command": [python().to_str().unwrap(), "-c", IN_CLUSTER],
                "env": [
                    {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": addr.port().to_string()},
                    {"name": "KUBELET_ROOT", "value": kubelet_root.to_str().unwrap()},
                    {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                ],
            }],
        },
    });
    env.apply(&pod.to_string());
    let done = wait_for(
        "the in-cluster pod to finish",
        Duration::from_secs(60),
        || {
            let p = env.get_json(&["pod", "incluster", "-n", ns])?;
            match p["status"]["phase"].as_str() {
                Some(ph @ ("Succeeded" | "Failed")) => Ok(ph.to_string()),
                other => Err(format!("{other:?}: {}", p["status"])),
            }
        },
    );
    let logs = env.kubectl(&["logs", "incluster", "-n", ns]);
    assert_eq!(done, "Succeeded", "{logs}");
    assert!(logs.contains("token: 3\n"), "{logs}");
    assert!(logs.contains("ca: -----BEGIN CERTIFICATE-----\n"), "{logs}");
    assert!(logs.contains(&format!("namespace: {ns}\n")), "{logs}");
    assert!(logs.contains("service: tcp://10.96.0.1:443\n"), "{logs}");
    assert!(logs.contains("pods: ['incluster']\n"), "{logs}");
    // As root the volume is mounted where every in-cluster client looks for it.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    if root {
        assert!(
            logs.contains("dir: /var/run/secrets/kubernetes.io/serviceaccount\n"),
            "{logs}"
        );
    }
}
