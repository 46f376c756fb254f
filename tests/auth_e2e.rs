//! Authentication and authorization of `orch up` (HTTPS, `Node,RBAC` by default) driven with
//! real kubectl 1.33 and 1.27 and the Python `kubernetes` client: users of a static token
//! file, the admin client certificate, anonymous requests, a bad token, a client certificate
//! of another CA, a node's certificate, a service-account token. Every request that must be
//! refused is counted if it succeeds; the count must be 0.

mod common;

use common::{wait_for, TestEnv};
use orch_apiserver::kubeconfig::{read_endpoint, write, Endpoint};
use orch_apiserver::pki::{Pki, PkiOptions};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The static token file: `token,user,uid,"groups"`.
const TOKENS: &str =
    "alice-token,alice,1001\nbob-token,bob,1002,\"devs\"\ncarol-token,carol,1003\n";

/// What the admin sets up: a namespace, a pod reader role bound to bob, what carol may do
/// (write role bindings in `team`, get pods there, create ClusterRoles), a pod to read.
const SETUP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: present, namespace: team}
data: {a: "1"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: team}
rules:
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-reads-pods, namespace: team}
subjects: [{kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: Role, name: pod-reader, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-views, namespace: team}
subjects: [{kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: view, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: binder, namespace: team}
rules:
  - apiGroups: [rbac.authorization.k8s.io]
    resources: [rolebindings]
    verbs: [create, get, list]
  - apiGroups: [""]
    resources: [pods]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-getter, namespace: team}
rules:
  - apiGroups: [""]
    resources: [pods]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: carol-binds, namespace: team}
subjects: [{kind: User, name: carol, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: Role, name: binder, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: clusterrole-writer}
rules:
  - apiGroups: [rbac.authorization.k8s.io]
    resources: [clusterroles]
    verbs: [create, get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: carol-writes-clusterroles}
subjects: [{kind: User, name: carol, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: clusterrole-writer, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widget-viewer
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, list]
---
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot, namespace: team}
"#;

/// A client identity: a kubeconfig.
struct Who {
    name: &'static str,
    kubeconfig: PathBuf,
}

/// The test's cluster and the refusals that did not happen.
struct Matrix {
    env: TestEnv,
    kubectl: PathBuf,
    unauthorized_successes: Vec<String>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Matrix {
    fn run(&self, who: &Who, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&who.kubeconfig)
            .arg("--cache-dir")
            .arg(self.env.path().join(format!("cache-{}", who.name)))
            .arg("--request-timeout=20s")
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// A request that must succeed; its stdout.
    fn allowed(&self, who: &Who, args: &[&str]) -> String {
        let o = self.run(who, args);
        assert!(
            o.status.success(),
            "{} {}: {}{}",
            who.name,
            args.join(" "),
            text(&o.stderr),
            text(&o.stdout)
        );
        text(&o.stdout)
    }

    /// A request that must become allowed soon (the RBAC index follows the watch cache).
    fn eventually_allowed(&self, who: &Who, args: &[&str]) -> String {
        wait_for(
            &format!("{} to be allowed {}", who.name, args.join(" ")),
            Duration::from_secs(10),
            || {
                let o = self.run(who, args);
                if o.status.success() {
                    Ok(text(&o.stdout))
                } else {
                    Err(text(&o.stderr))
                }
            },
        )
    }

    /// A request that must be refused with stderr containing `expect`; counted if it succeeds.
    fn refused(&mut self, who: &Who, args: &[&str], expect: &str) {
        let o = self.run(who, args);
        let what = format!("{} {}", who.name, args.join(" "));
        if o.status.success() {
            self.unauthorized_successes.push(what);
            return;
        }
        let err = text(&o.stderr);
        assert!(err.contains(expect), "{what}: expected {expect:?} in {err}");
    }

    /// `kubectl auth can-i ARGS` must answer `want` (`yes`/`no`); a wrong `yes` is counted.
    fn can_i(&mut self, who: &Who, args: &[&str], want: &str) {
        let mut a = vec!["auth", "can-i"];
        a.extend_from_slice(args);
        let o = self.run(who, &a);
        let got = text(&o.stdout).trim().to_string();
        let what = format!("{} can-i {}", who.name, args.join(" "));
        if want == "no" && got == "yes" {
            self.unauthorized_successes.push(what);
            return;
        }
        assert_eq!(got, want, "{what}: {}", text(&o.stderr));
        assert_eq!(o.status.success(), want == "yes", "{what}");
    }
}

/// Writes a kubeconfig for `ep` as `DIR/NAME.kubeconfig`.
fn identity(env: &TestEnv, name: &'static str, ep: Endpoint) -> Who {
    let kubeconfig = env.path().join(format!("{name}.kubeconfig"));
    write(&kubeconfig, &ep).expect("write kubeconfig");
    Who { name, kubeconfig }
}

fn token_user(env: &TestEnv, admin: &Endpoint, name: &'static str, token: &str) -> Who {
    identity(
        env,
        name,
        Endpoint {
            token: Some(token.into()),
            ca_pem: admin.ca_pem.clone(),
            ..Endpoint::new(admin.server.clone())
        },
    )
}

fn forbidden(user: &str, verb: &str, resource: &str, group: &str, ns: Option<&str>) -> String {
    let resource_part = match resource.split_once('/') {
        Some((r, sub)) => format!("resource \"{r}/{sub}\""),
        None => format!("resource \"{resource}\""),
    };
    let scope = match ns {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    format!("User \"{user}\" cannot {verb} {resource_part} in API group \"{group}\" {scope}")
}

fn start(env: &TestEnv) -> common::OrchProcess {
    let tokens = env.path().join("tokens.csv");
    std::fs::write(&tokens, TOKENS).expect("token file");
    let data = env.data_dir();
    let p = common::OrchProcess::spawn(
        "up",
        env.path(),
        &[
            "up",
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
            "--nodes",
            "1",
            "--runtime",
            "sim",
            "--token-auth-file",
            tokens.to_str().expect("utf-8 path"),
        ],
    );
    env.wait_api_ready(Duration::from_secs(60));
    env.wait_nodes_ready(1, Duration::from_secs(60));
    p
}

/// The Python `kubernetes` client: `ORCH_TEST_PYTHON`, the repository's `.venv`, or
/// `python3`.
fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let p = std::env::var_os("ORCH_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if venv.exists() {
                venv
            } else {
                PathBuf::from("python3")
            }
        });
    let ok = Command::new(&p)
        .args(["-c", "import kubernetes"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{} cannot import `kubernetes`", p.display());
    p
}

/// Anonymous GETs over TLS verified against the CA: one `CODE BODY` line each.
const ANONYMOUS_CHECK: &str = r#"
import json, ssl, sys, urllib.request, urllib.error
server, ca = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
for path in ("/version", "/healthz", "/api/v1/namespaces/team/pods"):
    try:
        r = urllib.request.urlopen(server + path, context=ctx)
        print(r.status, r.read().decode().replace("\n", " "))
    except urllib.error.HTTPError as e:
        print(e.code, json.loads(e.read())["message"])
"#;

/// system:node:n1 patches its status, then n2's (refused with 403).
const NODE_STATUS_CHECK: &str = r#"
import json, sys
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
body = {"status": {"capacity": {"example.com/widgets": "1"}}}
core.patch_node_status("n1", body)
try:
    core.patch_node_status("n2", body)
    print("unauthorized success")
except ApiException as e:
    assert e.status == 403, e
    print(json.loads(e.body)["message"])
"#;

/// bob over TLS with his token: pods of `team` listed, pods of `default` and a write refused
/// with 403.
const PYTHON_CHECK: &str = r#"
import sys
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_kube_config(config_file=sys.argv[1])
assert client.Configuration.get_default_copy().host.startswith("https://")
core = client.CoreV1Api()
core.list_namespaced_pod("team")
refused = 0
for call in (lambda: core.list_namespaced_pod("default"),
             lambda: core.create_namespaced_config_map("team", {"metadata": {"name": "py"}})):
    try:
        call()
        print("unauthorized success")
    except ApiException as e:
        assert e.status == 403, e
        refused += 1
print(refused)
"#;

#[test]
fn auth_matrix_with_kubectl_and_the_python_client() {
    let env = TestEnv::new();
    let _up = start(&env);
    let admin_ep = read_endpoint(&env.kubeconfig).expect("admin kubeconfig");
    assert!(
        admin_ep.server.starts_with("https://"),
        "{}",
        admin_ep.server
    );
    let admin = Who {
        name: "admin",
        kubeconfig: env.kubeconfig.clone(),
    };
    let alice = token_user(&env, &admin_ep, "alice", "alice-token");
    let bob = token_user(&env, &admin_ep, "bob", "bob-token");
    let carol = token_user(&env, &admin_ep, "carol", "carol-token");
    let bad = token_user(&env, &admin_ep, "bad-token", "not-a-token");
    let pki = Pki::load_or_create(&PkiOptions::new(env.data_dir().join("pki"))).expect("PKI");
    let node = |name: &'static str, node: &str| {
        identity(
            &env,
            name,
            Endpoint {
                ca_pem: admin_ep.ca_pem.clone(),
                client: Some(
                    pki.issue_client(&format!("system:node:{node}"), &["system:nodes"])
                        .expect("node certificate"),
                ),
                ..Endpoint::new(admin_ep.server.clone())
            },
        )
    };
    let n1 = node("n1", "n1");
    let other_ca =
        Pki::load_or_create(&PkiOptions::new(env.path().join("other-pki"))).expect("another CA");
    let mallory = identity(
        &env,
        "mallory",
        Endpoint {
            ca_pem: admin_ep.ca_pem.clone(),
            client: Some(
                other_ca
                    .issue_client("mallory", &["system:masters"])
                    .expect("certificate"),
            ),
            ..Endpoint::new(admin_ep.server.clone())
        },
    );

    let mut kubectls: Vec<PathBuf> = ["1.33", "1.27"]
        .iter()
        .filter_map(|m| common::bundled_kubectl(m))
        .collect();
    if kubectls.is_empty() {
        kubectls.push(PathBuf::from("kubectl"));
    }
    let mut m = Matrix {
        env,
        kubectl: kubectls[0].clone(),
        unauthorized_successes: Vec::new(),
    };
    let setup = m.env.path().join("setup.yaml");
    std::fs::write(&setup, SETUP).expect("write setup");
    m.allowed(
        &admin,
        &["apply", "-f", setup.to_str().expect("utf-8 path")],
    );
    let robot_token = m
        .allowed(&admin, &["create", "token", "robot", "-n", "team"])
        .trim()
        .to_string();
    let robot = token_user(&m.env, &admin_ep, "robot", &robot_token);

    // The aggregation controller fills `view` (and, through it, `edit` and `admin`) with
    // the system:aggregate-to-* rules and the user role labelled aggregate-to-view.
    for role in ["view", "edit", "admin"] {
        wait_for(
            &format!("{role} to aggregate widget-viewer"),
            Duration::from_secs(20),
            || {
                let out = m.allowed(&admin, &["get", "clusterrole", role, "-o", "json"]);
                let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
                let resources: Vec<&str> = v["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|r| r["resources"].as_array().into_iter().flatten())
                    .filter_map(|r| r.as_str())
                    .collect();
                if resources.contains(&"leases") && resources.contains(&"pods") {
                    Ok(())
                } else {
                    Err(format!("{role} rules: {resources:?}"))
                }
            },
        );
    }

    // The RBAC kinds print as upstream's tables.
    let roles = m.allowed(&admin, &["get", "roles", "-n", "team"]);
    assert!(
        roles.starts_with("NAME") && roles.contains("CREATED AT"),
        "{roles}"
    );
    let bindings = m.allowed(&admin, &["get", "rolebindings", "-n", "team", "-o", "wide"]);
    let header: Vec<&str> = bindings
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    );
    let bob_reads = bindings
        .lines()
        .find(|l| l.starts_with("bob-reads-pods "))
        .unwrap_or_else(|| panic!("{bindings}"));
    assert!(
        bob_reads.contains("Role/pod-reader") && bob_reads.contains("bob"),
        "{bob_reads}"
    );

    for kubectl in kubectls {
        let minor = kubectl
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("kubectl")
            .to_string();
        m.kubectl = kubectl;
        println!("checking with {minor}");

        // A user with no bindings: 403 with upstream's message, nothing written.
        m.refused(
            &alice,
            &["get", "pods", "-n", "team"],
            &forbidden("alice", "list", "pods", "", Some("team")),
        );
        m.refused(
            &alice,
            &["create", "configmap", "by-alice", "-n", "team"],
            &forbidden("alice", "create", "configmaps", "", Some("team")),
        );
        m.refused(
            &alice,
            &["get", "nodes"],
            &forbidden("alice", "list", "nodes", "", None),
        );
        // A Role and RoleBinding grant exactly what they say.
        m.eventually_allowed(&bob, &["get", "pods", "-n", "team"]);
        m.allowed(&bob, &["get", "configmap", "present", "-n", "team"]);
        m.refused(
            &bob,
            &["get", "pods", "-n", "default"],
            &forbidden("bob", "list", "pods", "", Some("default")),
        );
        m.refused(
            &bob,
            &["get", "secrets", "-n", "team"],
            &forbidden("bob", "list", "secrets", "", Some("team")),
        );
        m.refused(
            &bob,
            &["delete", "configmap", "present", "-n", "team"],
            &forbidden("bob", "delete", "configmaps", "", Some("team")),
        );

        // can-i, with -n, --as and --list.
        m.can_i(&bob, &["list", "pods", "-n", "team"], "yes");
        m.can_i(&bob, &["list", "pods", "-n", "default"], "no");
        m.can_i(&bob, &["create", "pods", "-n", "team"], "no");
        m.can_i(
            &bob,
            &["list", "leases.coordination.k8s.io", "-n", "team"],
            "yes",
        );
        m.can_i(
            &bob,
            &["delete", "leases.coordination.k8s.io", "-n", "team"],
            "no",
        );
        m.can_i(&alice, &["get", "pods", "-n", "team"], "no");
        m.can_i(
            &admin,
            &["list", "pods", "-n", "team", "--as", "bob"],
            "yes",
        );
        m.can_i(
            &admin,
            &["list", "pods", "-n", "team", "--as", "alice"],
            "no",
        );
        m.can_i(&admin, &["delete", "nodes"], "yes");
        let list = m.allowed(&bob, &["auth", "can-i", "--list", "-n", "team"]);
        let pods_line = list
            .lines()
            .find(|l| l.starts_with("pods "))
            .unwrap_or_else(|| panic!("no pods line in {list}"));
        for verb in ["get", "list", "watch"] {
            assert!(pods_line.contains(verb), "{pods_line}");
        }
        assert!(
            list.lines()
                .any(|l| l.starts_with("leases.coordination.k8s.io")),
            "{list}"
        );

        // whoami (authentication.k8s.io/v1 SelfSubjectReview: kubectl 1.28 and later).
        if !minor.ends_with("1.27") {
            let me = m.allowed(&admin, &["auth", "whoami", "-o", "json"]);
            let me: serde_json::Value = serde_json::from_str(&me).expect("whoami JSON");
            assert_eq!(me["status"]["userInfo"]["username"], "kubernetes-admin");
            assert!(me["status"]["userInfo"]["groups"]
                .as_array()
                .is_some_and(|g| g.iter().any(|g| g == "system:masters")));
            let me = m.allowed(&bob, &["auth", "whoami"]);
            assert!(me.contains("bob") && me.contains("devs"), "{me}");
            let me = m.allowed(&admin, &["auth", "whoami", "--as", "bob"]);
            assert!(me.contains("bob"), "{me}");
            let me = m.allowed(&robot, &["auth", "whoami"]);
            assert!(me.contains("system:serviceaccount:team:robot"), "{me}");
        }
        // Impersonation needs the impersonate verb.
        m.refused(
            &bob,
            &["get", "pods", "-n", "team", "--as", "admin-wannabe"],
            "cannot impersonate resource \"users\"",
        );

        // A bad token is 401; a certificate of another CA is refused.
        m.refused(
            &bad,
            &["get", "pods", "-n", "team"],
            "You must be logged in to the server",
        );
        m.refused(
            &bad,
            &["get", "--raw", "/version"],
            "You must be logged in to the server",
        );
        // Her certificate names system:masters, but its signature does not verify: 401.
        m.refused(
            &mallory,
            &["get", "nodes"],
            "You must be logged in to the server",
        );

        // Escalation: binding a role with more rights than carol holds is refused, one she
        // holds is not; an aggregationRule needs cluster-admin.
        m.refused(
            &carol,
            &[
                "create",
                "rolebinding",
                "carol-admin",
                "--clusterrole=admin",
                "--user=carol",
                "-n",
                "team",
            ],
            "is attempting to grant RBAC permissions not currently held",
        );
        m.refused(
            &carol,
            &[
                "create",
                "rolebinding",
                "dave-reads",
                "--role=pod-reader",
                "--user=dave",
                "-n",
                "team",
            ],
            "is attempting to grant RBAC permissions not currently held",
        );
        let getter = format!("dave-gets-{}", minor.replace('.', "-"));
        m.eventually_allowed(
            &carol,
            &[
                "create",
                "rolebinding",
                &getter,
                "--role=pod-getter",
                "--user=dave",
                "-n",
                "team",
            ],
        );
        let agg = m.env.path().join("agg.yaml");
        std::fs::write(
            &agg,
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: carols-aggregate}\naggregationRule:\n  clusterRoleSelectors: [{matchLabels: {x: z}}]\nrules: []\n",
        )
        .expect("write");
        m.refused(
            &carol,
            &["create", "-f", agg.to_str().expect("utf-8 path")],
            "must have cluster-admin privileges to use the aggregationRule",
        );
        let plain = format!("carols-plain-{}", minor.replace('.', "-"));
        m.refused(
            &carol,
            &[
                "create",
                "clusterrole",
                &plain,
                "--verb=get",
                "--resource=pods",
            ],
            "is attempting to grant RBAC permissions not currently held",
        );
        m.allowed(
            &carol,
            &[
                "create",
                "clusterrole",
                &plain,
                "--verb=get",
                "--resource=clusterroles.rbac.authorization.k8s.io",
            ],
        );

        // A node writes its own Node, not another's (its status through the Python client
        // below: kubectl would first read nodes/status, which the system:node role does not
        // grant).
        let label = format!("example.com/checked-{}=yes", minor.replace('.', "-"));
        m.allowed(&n1, &["label", "node", "n1", &label]);
        m.refused(
            &n1,
            &["label", "node", "n2", &label],
            "node \"n1\" is not allowed to modify node \"n2\"",
        );
        m.refused(
            &n1,
            &["get", "secrets", "-n", "team"],
            &forbidden("system:node:n1", "list", "secrets", "", Some("team")),
        );

        // A service-account token authorizes as system:serviceaccount:team:robot.
        m.refused(
            &robot,
            &["get", "configmaps", "-n", "team"],
            &forbidden(
                "system:serviceaccount:team:robot",
                "list",
                "configmaps",
                "",
                Some("team"),
            ),
        );
    }
    let o = m.run(
        &admin,
        &[
            "create",
            "rolebinding",
            "robot-reads",
            "--role=pod-reader",
            "--serviceaccount=team:robot",
            "-n",
            "team",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    m.eventually_allowed(&robot, &["get", "pods", "-n", "team"]);

    // Nothing refused was written.
    for (kind, name) in [
        ("configmap", "by-alice"),
        ("rolebinding", "carol-admin"),
        ("rolebinding", "dave-reads"),
    ] {
        let o = m.run(&admin, &["get", kind, name, "-n", "team"]);
        if o.status.success() {
            m.unauthorized_successes
                .push(format!("{kind} {name} was written"));
        }
    }
    let o = m.run(&admin, &["get", "clusterrole", "carols-aggregate"]);
    if o.status.success() {
        m.unauthorized_successes
            .push("clusterrole carols-aggregate was written".into());
    }
    let n2 = m.allowed(&admin, &["get", "node", "n2", "-o", "json"]);
    if n2.contains("example.com/") {
        m.unauthorized_successes
            .push("n2's status was written".into());
    }

    // Anonymous requests over TLS (kubectl would prompt for a user name): /version and
    // /healthz answered, pods refused with upstream's 403.
    let ca = m.env.path().join("ca.crt");
    std::fs::write(&ca, admin_ep.ca_pem.as_deref().expect("CA in kubeconfig")).expect("CA");
    let o = Command::new(python())
        .args(["-c", ANONYMOUS_CHECK, &admin_ep.server])
        .arg(&ca)
        .output()
        .expect("run python");
    assert!(o.status.success(), "python: {}", text(&o.stderr));
    let out = text(&o.stdout);
    let codes: Vec<&str> = out
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(codes, ["200", "200", "403"], "{out}");
    if codes[2] == "200" {
        m.unauthorized_successes.push("anonymous list pods".into());
    }
    assert!(
        out.contains(&forbidden(
            "system:anonymous",
            "list",
            "pods",
            "",
            Some("team")
        )),
        "{out}"
    );

    // The node's status, with the Python client over TLS with n1's certificate.
    let o = Command::new(python())
        .args(["-c", NODE_STATUS_CHECK])
        .arg(&n1.kubeconfig)
        .output()
        .expect("run python");
    assert!(o.status.success(), "python: {}", text(&o.stderr));
    let out = text(&o.stdout);
    if out.contains("unauthorized success") {
        m.unauthorized_successes.push(format!("python: {out}"));
    }
    assert!(
        out.contains("node \"n1\" is not allowed to modify node \"n2\""),
        "{out}"
    );
    let n1_status = m.allowed(&admin, &["get", "node", "n1", "-o", "json"]);
    assert!(n1_status.contains("example.com/widgets"), "{n1_status}");
    let n2 = m.allowed(&admin, &["get", "node", "n2", "-o", "json"]);
    if n2.contains("example.com/widgets") {
        m.unauthorized_successes
            .push("n2's status was written".into());
    }

    // The Python client over TLS with bob's token.
    let o = Command::new(python())
        .args(["-c", PYTHON_CHECK])
        .arg(&bob.kubeconfig)
        .output()
        .expect("run python");
    assert!(o.status.success(), "python: {}", text(&o.stderr));
    let out = text(&o.stdout);
    if out.contains("unauthorized success") {
        m.unauthorized_successes.push(format!("python: {out}"));
    }
    assert_eq!(out.trim().lines().last(), Some("2"), "{out}");

    assert!(
        m.unauthorized_successes.is_empty(),
        "unauthorized successes: {:#?}",
        m.unauthorized_successes
    );
}

/// `orch apiserver` (Node,RBAC by default) with the scheduler, the controller manager and a
/// kubelet as separate processes, each with its own identity (client certificates of the
/// data dir's CA: `system:kube-scheduler`, `system:kube-controller-manager`,
/// `system:node:n1`): the bootstrap policy lets each do its work, so a Deployment's pods run,
/// a Job's pod runs, a Service gets endpoints, a new namespace gets its `default`
/// ServiceAccount and a deleted one is emptied and removed, `view` is aggregated.
#[test]
fn split_components_work_with_their_own_identities() {
    let env = TestEnv::new();
    let split = common::Split::apiserver(&env);
    let admin_ep = read_endpoint(&env.kubeconfig).expect("admin kubeconfig");
    let pki = Pki::load_or_create(&PkiOptions::new(env.data_dir().join("pki"))).expect("PKI");
    let kubeconfig = |name: &'static str, user: &str, groups: &[&str]| {
        identity(
            &env,
            name,
            Endpoint {
                ca_pem: admin_ep.ca_pem.clone(),
                client: Some(pki.issue_client(user, groups).expect("certificate")),
                ..Endpoint::new(admin_ep.server.clone())
            },
        )
    };
    let scheduler = kubeconfig("scheduler", "system:kube-scheduler", &[]);
    let manager = kubeconfig("controller-manager", "system:kube-controller-manager", &[]);
    let node = kubeconfig("kubelet-n1", "system:node:n1", &["system:nodes"]);
    let root = env.path().join("n1");
    let path = |w: &Who| w.kubeconfig.to_str().expect("utf-8 path").to_string();
    let mut procs = vec![
        common::OrchProcess::spawn(
            "scheduler",
            env.path(),
            &["scheduler", "--kubeconfig", &path(&scheduler)],
        ),
        common::OrchProcess::spawn(
            "controller-manager",
            env.path(),
            &["controller-manager", "--kubeconfig", &path(&manager)],
        ),
        common::OrchProcess::spawn(
            "kubelet-n1",
            env.path(),
            &[
                "kubelet",
                "--kubeconfig",
                &path(&node),
                "--node-name",
                "n1",
                "--runtime",
                "sim",
                "--root-dir",
                root.to_str().expect("utf-8 path"),
            ],
        ),
    ];
    env.wait_nodes_ready(1, Duration::from_secs(60));
    env.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    env.kubectl(&["expose", "deployment", "web", "--port=80"]);
    env.kubectl(&["create", "job", "once", "--image=busybox"]);
    env.kubectl(&["create", "namespace", "team"]);
    env.kubectl(&["create", "configmap", "c", "-n", "team"]);
    env.wait_count(
        "2 web pods and the job's pod to run",
        &["pods"],
        3,
        Duration::from_secs(60),
        |p| p["status"]["phase"] == "Running",
    );
    wait_for(
        "the web Service's endpoints",
        Duration::from_secs(30),
        || {
            let e = env.get_json(&["endpoints", "web"])?;
            let n = e["subsets"][0]["addresses"].as_array().map_or(0, Vec::len);
            if n == 2 {
                Ok(())
            } else {
                Err(format!("{e}"))
            }
        },
    );
    wait_for(
        "team's default ServiceAccount",
        Duration::from_secs(30),
        || {
            env.get_json(&["serviceaccount", "default", "-n", "team"])
                .map(|_| ())
        },
    );
    wait_for("view to be aggregated", Duration::from_secs(30), || {
        let v = env.get_json(&["clusterrole", "view"])?;
        if v["rules"].as_array().is_some_and(|r| !r.is_empty()) {
            Ok(())
        } else {
            Err(format!("{v}"))
        }
    });
    env.kubectl(&["delete", "namespace", "team", "--wait=false"]);
    wait_for(
        "team to be removed",
        Duration::from_secs(60),
        || match env.kubectl_try(&["get", "namespace", "team"]) {
            Err(e) if e.contains("NotFound") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    for p in &mut procs {
        p.assert_running();
        let log = p.log();
        assert!(
            !log.contains("forbidden") && !log.contains("Forbidden"),
            "{}: {log}",
            p.name
        );
    }
    drop(split);
}
