//! The kubelet's API authenticates and authorizes its callers (issue 18), on `orch up` with the
//! process runtime and real kubectl 1.33:
//!
//! - Called directly, the kubelet answers 401 without credentials or with a bad bearer token;
//!   a service account's token is reviewed (TokenReview) and its request authorized with a
//!   SubjectAccessReview: 403 with upstream's text without a binding, 200 once a ClusterRole
//!   grants `get` on `nodes/stats`, still 403 for `/pods` (`nodes/proxy`); the admin's client
//!   certificate (`system:masters`) is allowed.
//! - Through the API server, `kubectl get --raw /api/v1/nodes/N/proxy/stats/summary` works for
//!   the admin and is 403 for a user without `nodes/proxy`.
//! - `kubectl logs` and `kubectl exec` (the API server calling the kubelet with its own client
//!   certificate) keep working.

mod common;

use common::{http_get, wait_for, TestEnv, Up};
use orch_apiserver::kubeconfig::{read_endpoint, write, Endpoint};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const NS: &str = "kubelet-auth";

/// The kubelet port of `node` from its status.
fn kubelet_port(env: &TestEnv, node: &str) -> u16 {
    let n = env.get_json(&["node", node]).expect("node");
    n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .expect("kubelet port")
}

/// A kubeconfig at `DIR/NAME.kubeconfig` for the admin's server and CA with `token` and no
/// client certificate.
fn token_kubeconfig(env: &TestEnv, name: &str, token: &str) -> std::path::PathBuf {
    let admin = read_endpoint(&env.kubeconfig).expect("kubeconfig");
    let path = env.path().join(format!("{name}.kubeconfig"));
    write(
        &path,
        &Endpoint {
            client: None,
            token: Some(token.trim().to_string()),
            ..admin
        },
    )
    .expect("write kubeconfig");
    path
}

#[test]
fn kubelet_api_authentication_and_authorization() {
    let env = TestEnv::new();
    let _up = Up::start(&env, 1, "process", &["--pod-network", "host"]);
    let port = kubelet_port(&env, "node-1");
    let kubelet: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");

    // No credentials, a bad token: 401.
    let nobody = token_kubeconfig(&env, "bad", "not-a-token");
    let anonymous = env.path().join("anonymous.kubeconfig");
    write(
        &anonymous,
        &Endpoint {
            client: None,
            ..read_endpoint(&env.kubeconfig).expect("kubeconfig")
        },
    )
    .expect("write kubeconfig");
    for kubeconfig in [&anonymous, &nobody] {
        let (code, body) = http_get(kubeconfig, kubelet, "/stats/summary").expect("kubelet");
        assert_eq!((code, body.as_str()), (401, "Unauthorized\n"));
    }

    // The admin's client certificate (system:masters).
    let (code, body) = http_get(&env.kubeconfig, kubelet, "/stats/summary").expect("kubelet");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"nodeName\""), "{body}");

    // Two service accounts: `stranger` without a binding, `stats` with get on nodes/stats.
    env.kubectl(&["create", "namespace", NS]);
    for sa in ["stranger", "stats"] {
        env.kubectl(&["create", "serviceaccount", sa, "-n", NS]);
    }
    env.kubectl(&[
        "create",
        "clusterrole",
        "node-stats-reader",
        "--verb=get",
        "--resource=nodes/stats",
    ]);
    env.kubectl(&[
        "create",
        "clusterrolebinding",
        "node-stats-reader",
        "--clusterrole=node-stats-reader",
        &format!("--serviceaccount={NS}:stats"),
    ]);
    let token = |sa: &str| env.kubectl(&["create", "token", sa, "-n", NS]);
    let stranger = token_kubeconfig(&env, "stranger", &token("stranger"));
    let stats = token_kubeconfig(&env, "stats", &token("stats"));

    let (code, body) = http_get(&stranger, kubelet, "/stats/summary").expect("kubelet");
    assert_eq!(
        (code, body.as_str()),
        (
            403,
            "Forbidden (user=system:serviceaccount:kubelet-auth:stranger, verb=get, \
             resource=nodes, subresource=stats)\n"
        )
    );
    wait_for("the stats reader to be allowed", T, || {
        match http_get(&stats, kubelet, "/stats/summary")? {
            (200, body) if body.contains("\"nodeName\"") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let (code, body) = http_get(&stats, kubelet, "/pods").expect("kubelet");
    assert_eq!(
        (code, body.as_str()),
        (
            403,
            "Forbidden (user=system:serviceaccount:kubelet-auth:stats, verb=get, \
             resource=nodes, subresource=proxy)\n"
        )
    );

    // Through the API server's node proxy: the admin may, the stats reader (no nodes/proxy)
    // may not.
    let raw = "/api/v1/nodes/node-1/proxy/stats/summary";
    let summary = env.kubectl(&["get", "--raw", raw]);
    assert!(
        summary.contains("\"nodeName\": \"node-1\"") || summary.contains("\"nodeName\":\"node-1\""),
        "{summary}"
    );
    let out = std::process::Command::new(common::bundled_kubectl("1.33").expect("kubectl 1.33"))
        .arg("--kubeconfig")
        .arg(&stats)
        .args(["get", "--raw", raw])
        .output()
        .expect("run kubectl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("Forbidden") && err.contains("nodes/proxy"),
        "{err}"
    );

    // The API server reaches the kubelet with its own certificate: logs and exec work.
    env.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\n  namespace: {NS}\nspec:\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: busybox\n    \
         command: [sh, -c, 'echo hello-kubelet; sleep 3600']\n"
    ));
    wait_for("the pod's log", T, || {
        let out = env.kubectl_try(&["logs", "hello", "-n", NS])?;
        if out.trim() == "hello-kubelet" {
            Ok(())
        } else {
            Err(out)
        }
    });
    let out = env.kubectl(&["exec", "hello", "-n", NS, "--", "echo", "exec-ok"]);
    assert_eq!(out.trim(), "exec-ok");
}
