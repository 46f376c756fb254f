//! TLS everywhere (issue 18), with real `orch` processes and real kubectl 1.33 and 1.27:
//!
//! - `orch up` serves HTTPS; its kubeconfig embeds the cluster CA and the admin client
//!   certificate; kubectl gets, applies and watches over it.
//! - A client certificate from another CA is answered 401 (checked after the handshake, as
//!   upstream's); plain HTTP sent to the HTTPS port is told so (Go's answer).
//! - The kubelet serves HTTPS and answers 401 to a client without a verified certificate;
//!   `kubectl logs` reaches it through the API server, which verifies its certificate.
//! - A kubelet whose serving certificate another CA signed is refused by the API server: the
//!   log proxy fails with a clear error.

mod common;

use common::{http_get, http_get_plain, wait_for, LogsOnPanic, Split, TestEnv, Up};
use orch_apiserver::kubeconfig::{read_endpoint, write, Endpoint};
use orch_apiserver::pki::{Pki, PkiOptions};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// kubectl `minor` with `kubeconfig`; (success, stdout, stderr).
fn kubectl(minor: &str, kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let bin = common::bundled_kubectl(minor)
        .unwrap_or_else(|| panic!("kubectl {minor} beside the kubectl on PATH"));
    let out = Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The kubelet port of `node` from its status.
fn kubelet_port(env: &TestEnv, node: &str) -> u16 {
    let n = env.get_json(&["node", node]).expect("node");
    n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .expect("kubelet port")
}

#[test]
fn kubectl_over_https_and_what_is_refused() {
    let env = TestEnv::new();
    let _logs = LogsOnPanic(vec![env.path().to_path_buf()]);
    let up = Up::start(&env, 1, "process", &["--pod-network", "host"]);
    let admin = read_endpoint(&env.kubeconfig).expect("kubeconfig");
    assert!(admin.server.starts_with("https://"), "{}", admin.server);
    assert!(admin.ca_pem.is_some() && admin.client.is_some());
    for f in ["ca.key", "apiserver.key", "sa.key", "admin.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.data_dir().join("pki").join(f))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }

    // get / apply / watch with both kubectl versions.
    for minor in ["1.33", "1.27"] {
        let (ok, out, err) = kubectl(minor, &env.kubeconfig, &["get", "namespaces", "-o", "name"]);
        assert!(
            ok && out.contains("namespace/default"),
            "{minor}: {out}{err}"
        );
        let name = format!("tls-{}", minor.replace('.', "-"));
        let mut watch = Command::new(common::bundled_kubectl(minor).expect("kubectl"))
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .args(["get", "configmaps", "--watch-only", "-o", "name"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl watch");
        std::thread::sleep(Duration::from_secs(1));
        let manifest = env.path().join(format!("{name}.yaml"));
        std::fs::write(
            &manifest,
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"),
        )
        .expect("write manifest");
        let (ok, out, err) = kubectl(
            minor,
            &env.kubeconfig,
            &["apply", "-f", manifest.to_str().expect("utf-8")],
        );
        assert!(ok, "{minor}: {out}{err}");
        let stdout = watch.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the watch sees the ConfigMap");
        assert_eq!(line, format!("configmap/{name}"), "kubectl {minor}");
        let _ = watch.kill();
        let _ = watch.wait();
    }

    // A client certificate from another CA (for the same user name and groups as the admin's)
    // is answered 401: kubectl says so, rather than reporting a failed handshake.
    let other = Pki::load_or_create(&PkiOptions::new(env.path().join("other-pki"))).expect("pki");
    let stranger = env.path().join("stranger.kubeconfig");
    write(
        &stranger,
        &Endpoint {
            client: Some(other.admin().expect("other admin")),
            ..admin.clone()
        },
    )
    .expect("write kubeconfig");
    for minor in ["1.33", "1.27"] {
        let (ok, out, err) = kubectl(minor, &stranger, &["get", "namespaces"]);
        assert!(!ok, "kubectl {minor} with a foreign certificate: {out}");
        assert!(
            err.contains("You must be logged in to the server (Unauthorized)"),
            "kubectl {minor}: {err}"
        );
    }
    // Nor does a client trust the server without the cluster CA.
    let wrong_ca = env.path().join("wrong-ca.kubeconfig");
    write(
        &wrong_ca,
        &Endpoint {
            ca_pem: Some(other.ca_cert_pem().to_string()),
            ..admin.clone()
        },
    )
    .expect("write kubeconfig");
    let (ok, _, err) = kubectl("1.33", &wrong_ca, &["get", "namespaces"]);
    assert!(!ok && err.contains("certificate"), "{err}");

    // Plain HTTP to the HTTPS port.
    let (code, body) = http_get_plain(up.addr, "/readyz").expect("an answer");
    assert_eq!(
        (code, body.as_str()),
        (400, "Client sent an HTTP request to an HTTPS server.\n")
    );

    // The kubelet: HTTPS with a certificate the cluster CA signs, 401 without a client
    // certificate, served to one the CA signed.
    let port = kubelet_port(&env, "node-1");
    let kubelet: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let anonymous = env.path().join("anonymous.kubeconfig");
    write(
        &anonymous,
        &Endpoint {
            client: None,
            ..admin.clone()
        },
    )
    .expect("write kubeconfig");
    let (code, body) = http_get(&anonymous, kubelet, "/stats/summary").expect("kubelet answers");
    assert_eq!(code, 401, "{body}");
    let (code, body) = http_get(&env.kubeconfig, kubelet, "/stats/summary").expect("kubelet");
    assert_eq!(code, 200, "{body}");

    // kubectl logs through the API server's verified TLS connection to the kubelet.
    let pod = env.path().join("hello.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\nspec:\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: busybox\n    \
         command: [sh, -c, 'echo hello-over-tls; sleep 3600']\n",
    )
    .expect("write pod");
    env.kubectl(&["apply", "-f", pod.to_str().expect("utf-8")]);
    for minor in ["1.33", "1.27"] {
        wait_for("the pod's log", T, || {
            let (ok, out, err) = kubectl(minor, &env.kubeconfig, &["logs", "hello"]);
            if ok && out.trim() == "hello-over-tls" {
                Ok(())
            } else {
                Err(format!("{out}{err}"))
            }
        });
    }
}

#[test]
fn a_kubelet_with_a_certificate_of_another_ca_is_refused() {
    let env = TestEnv::new();
    let _logs = LogsOnPanic(vec![env.path().to_path_buf()]);
    let mut split = Split::apiserver(&env);
    // A kubelet serving a certificate another CA signed, trusting the cluster CA for clients.
    let other = Pki::load_or_create(&PkiOptions::new(env.path().join("other-pki"))).expect("pki");
    other
        .kubelet_serving("rogue", &["127.0.0.1".to_string()])
        .expect("rogue certificate");
    let file = |dir: &std::path::Path, f: &str| dir.join(f).to_str().expect("utf-8").to_string();
    let other_dir = env.path().join("other-pki");
    let root = file(env.path(), "rogue");
    split.component(
        &env,
        "kubelet-rogue",
        "kubelet",
        &[
            "--node-name",
            "rogue",
            "--runtime",
            "sim",
            "--root-dir",
            &root,
            "--port",
            "0",
            "--tls-cert-file",
            &file(&other_dir, "kubelet-rogue.crt"),
            "--tls-private-key-file",
            &file(&other_dir, "kubelet-rogue.key"),
            "--client-ca-file",
            &file(&env.data_dir().join("pki"), "ca.crt"),
        ],
    );
    env.wait_nodes_ready(1, T);
    // No controller manager here: the default ServiceAccount that admission wants is made by
    // hand.
    let _ = env.kubectl_try(&["create", "serviceaccount", "default"]);
    env.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  nodeName: rogue\n  \
         containers:\n  - name: app\n    image: busybox\n",
    );
    let err = wait_for("the log proxy to fail", T, || {
        match env.kubectl_try(&["logs", "p"]) {
            Ok(out) => Err(format!("unexpected success: {out}")),
            Err(e) if e.contains("cannot reach the kubelet") => Ok(e),
            Err(e) => Err(e),
        }
    });
    assert!(
        err.contains("cannot reach the kubelet of node \"rogue\"") && err.contains("certificate"),
        "{err}"
    );
}
