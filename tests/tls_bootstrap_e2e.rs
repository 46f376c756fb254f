//! Kubelet TLS bootstrap (issue 18) against `orch up` with real kubectl 1.33, the kubelet a
//! separate `orch kubelet --bootstrap-kubeconfig … --rotate-server-certificates` process:
//!
//! - a bootstrap token Secret as `kubeadm token create` writes it; a wrong or expired token is
//!   401 Unauthorized and a kubelet bootstrapping with it exits without creating any
//!   CertificateSigningRequest;
//! - with the good token the node client request is approved (AutoApproved) and issued, the
//!   node registers and turns Ready, and the written kubeconfig authenticates as
//!   `system:node:NAME` in `system:nodes` (`kubectl auth whoami`);
//! - the kubelet's serving request (`kubernetes.io/kubelet-serving`) is not auto-approved;
//!   after `kubectl certificate approve` the kubelet serves with it and `kubectl logs` of a pod
//!   on the node goes through the API server's verified TLS to it;
//! - a node asking for a client certificate of another node's name is not auto-approved, and
//!   `kubectl certificate deny` marks it Denied.

mod common;

use common::{condition, wait_for, LogsOnPanic, OrchProcess, TestEnv, Up};
use orch_apiserver::kubeconfig::{write, Endpoint};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// kubectl 1.33 with `kubeconfig`; `Ok(stdout)` or `Err(stdout + stderr)`.
fn kubectl(env: &TestEnv, kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let bin = common::bundled_kubectl("1.33").expect("kubectl 1.33 beside the kubectl on PATH");
    let out = Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(env.path().join("kube-cache"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Creates the Secret `bootstrap-token-ID` in kube-system as `kubeadm token create` does.
fn create_token(env: &TestEnv, id: &str, secret: &str, expiration: jiff::Timestamp) {
    let lit = |k: &str, v: &str| format!("--from-literal={k}={v}");
    let args = [
        "-n".to_string(),
        "kube-system".into(),
        "create".into(),
        "secret".into(),
        "generic".into(),
        format!("bootstrap-token-{id}"),
        "--type".into(),
        "bootstrap.kubernetes.io/token".into(),
        lit("token-id", id),
        lit("token-secret", secret),
        lit("usage-bootstrap-authentication", "true"),
        lit("usage-bootstrap-signing", "true"),
        lit(
            "auth-extra-groups",
            "system:bootstrappers:kubeadm:default-node-token",
        ),
        lit("expiration", &expiration.to_string()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kubectl(env, &env.kubeconfig, &args).expect("create the bootstrap token");
}

/// A bootstrap kubeconfig: the server, the cluster CA, the token.
fn bootstrap_kubeconfig(env: &TestEnv, up: &Up, name: &str, token: &str) -> std::path::PathBuf {
    let path = env.path().join(name);
    let mut ep = Endpoint::new(format!("https://{}", up.addr));
    ep.ca_pem = Some(std::fs::read_to_string(env.data_dir().join("pki/ca.crt")).expect("ca.crt"));
    ep.token = Some(token.to_string());
    write(&path, &ep).expect("write the bootstrap kubeconfig");
    path
}

/// `orch kubelet --bootstrap-kubeconfig B --kubeconfig DIR/NODE.conf` for `node`.
fn kubelet(env: &TestEnv, bootstrap: &Path, node: &str, extra: &[&str]) -> OrchProcess {
    let s = |p: std::path::PathBuf| p.to_str().expect("utf-8 path").to_string();
    let args = [
        "kubelet".to_string(),
        "--bootstrap-kubeconfig".into(),
        s(bootstrap.to_path_buf()),
        "--kubeconfig".into(),
        s(env.path().join(format!("{node}.conf"))),
        "--cert-dir".into(),
        s(env.path().join(node).join("pki")),
        "--root-dir".into(),
        s(env.path().join(node)),
        "--node-name".into(),
        node.into(),
        "--runtime".into(),
        "process".into(),
        "--pod-network".into(),
        "host".into(),
    ];
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    OrchProcess::spawn(&format!("kubelet-{node}"), env.path(), &all)
}

/// The CertificateSigningRequests, as JSON.
fn csrs(env: &TestEnv) -> Vec<serde_json::Value> {
    env.get_items(&["csr"]).expect("kubectl get csr")
}

/// The condition types of a CSR.
fn csr_conditions(csr: &serde_json::Value) -> Vec<String> {
    csr["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["type"].as_str().map(String::from))
        .collect()
}

#[test]
fn a_kubelet_joins_with_a_bootstrap_token_and_serves_with_an_approved_certificate() {
    let env = TestEnv::new();
    let _logs = LogsOnPanic(vec![env.path().to_path_buf()]);
    let up = Up::start(&env, 1, "process", &["--pod-network", "host"]);
    let now = jiff::Timestamp::now();
    create_token(
        &env,
        "abcdef",
        "0123456789abcdef",
        now + jiff::SignedDuration::from_hours(1),
    );
    create_token(
        &env,
        "expire",
        "0123456789abcdef",
        now - jiff::SignedDuration::from_hours(1),
    );

    // A wrong or expired token is 401, and a kubelet bootstrapping with it creates nothing.
    for (name, token) in [
        ("wrong.conf", "abcdef.ffffffffffffffff"),
        ("expired.conf", "expire.0123456789abcdef"),
    ] {
        let kc = bootstrap_kubeconfig(&env, &up, name, token);
        let err = kubectl(&env, &kc, &["get", "--raw", "/api"]).expect_err("refused");
        assert!(err.contains("Unauthorized"), "{name}: {err}");
        let mut k = kubelet(&env, &kc, "refused", &[]);
        assert_eq!(k.wait_exit(T), Some(1), "{}", k.log_tail(20));
        assert!(k.log().contains("TLS bootstrap"), "{}", k.log_tail(20));
    }
    assert!(csrs(&env).is_empty(), "{:?}", csrs(&env));

    // The good token: the client request approved and issued, the node Ready.
    let good = bootstrap_kubeconfig(&env, &up, "bootstrap.conf", "abcdef.0123456789abcdef");
    let who = kubectl(&env, &good, &["auth", "whoami", "-o", "json"]).expect("whoami");
    assert!(who.contains("system:bootstrap:abcdef"), "{who}");
    let mut joiner = kubelet(&env, &good, "joiner", &["--rotate-server-certificates"]);
    wait_for("the joiner node Ready", T, || {
        joiner.assert_running();
        let n = env.get_json(&["node", "joiner"])?;
        (condition(&n, "Ready") == Some("True"))
            .then_some(())
            .ok_or_else(|| "not Ready".to_string())
    });
    let client_csr = csrs(&env)
        .into_iter()
        .find(|c| c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet")
        .expect("the node client request");
    assert_eq!(client_csr["spec"]["username"], "system:bootstrap:abcdef");
    assert_eq!(csr_conditions(&client_csr), ["Approved"]);
    assert_eq!(
        client_csr["status"]["conditions"][0]["reason"],
        "AutoApproved"
    );
    assert!(client_csr["status"]["certificate"].is_string());
    let table = kubectl(&env, &env.kubeconfig, &["get", "csr"]).expect("get csr");
    assert!(table.contains("Approved,Issued"), "{table}");

    // The kubelet's kubeconfig is the node's identity.
    let node_kc = env.path().join("joiner.conf");
    let who = kubectl(&env, &node_kc, &["auth", "whoami", "-o", "json"]).expect("whoami");
    let who: serde_json::Value = serde_json::from_str(&who).expect("json");
    assert_eq!(who["status"]["userInfo"]["username"], "system:node:joiner");
    assert!(
        who["status"]["userInfo"]["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "system:nodes")),
        "{who}"
    );

    // The serving request waits for an administrator.
    let serving = wait_for("the serving request", T, || {
        csrs(&env)
            .into_iter()
            .find(|c| c["spec"]["signerName"] == "kubernetes.io/kubelet-serving")
            .ok_or_else(|| "none yet".to_string())
    });
    assert_eq!(serving["spec"]["username"], "system:node:joiner");
    std::thread::sleep(Duration::from_secs(2));
    let name = serving["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let again = env.get_json(&["csr", &name]).expect("csr");
    assert!(csr_conditions(&again).is_empty(), "{again}");

    // A pod on the node; its logs need the kubelet's approved serving certificate.
    env.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: joined\nspec:\n  nodeName: joiner\n  \
         containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, 'echo joined-ok; sleep 3600']\n",
    );
    env.wait_count("the pod Running", &["pods"], 1, T, common::pod_ready);
    let before = kubectl(&env, &env.kubeconfig, &["logs", "joined"]).expect_err("no cert yet");
    assert!(before.contains("cannot reach the kubelet"), "{before}");
    kubectl(&env, &env.kubeconfig, &["certificate", "approve", &name]).expect("approve");
    let logs = wait_for("kubectl logs through the kubelet", T, || {
        kubectl(&env, &env.kubeconfig, &["logs", "joined"])
    });
    assert!(logs.contains("joined-ok"), "{logs}");
    assert!(env
        .path()
        .join("joiner/pki/kubelet-server-current.pem")
        .exists());

    // A node asking for another node's client certificate is not approved; deny works.
    let (_, request) = orch_kubelet::certificate::new_request("other", &[]).expect("request");
    let csr = serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "not-mine"},
        "spec": {
            "request": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, request),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
        },
    });
    let file = env.path().join("not-mine.json");
    std::fs::write(&file, csr.to_string()).expect("write csr");
    kubectl(
        &env,
        &node_kc,
        &["create", "-f", file.to_str().expect("utf-8")],
    )
    .expect("a node may create requests");
    std::thread::sleep(Duration::from_secs(3));
    let pending = env.get_json(&["csr", "not-mine"]).expect("csr");
    assert!(csr_conditions(&pending).is_empty(), "{pending}");
    kubectl(&env, &env.kubeconfig, &["certificate", "deny", "not-mine"]).expect("deny");
    let denied = env.get_json(&["csr", "not-mine"]).expect("csr");
    assert_eq!(csr_conditions(&denied), ["Denied"]);
    assert!(denied["status"]["certificate"].is_null(), "{denied}");
    joiner.assert_running();
}
