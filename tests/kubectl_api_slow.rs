//! Real kubectl 1.32 and 1.33 against `orch apiserver`: discovery, OpenAPI v3 validation,
//! server-side Tables, strategic merge patch, client- and server-side apply, protobuf request
//! bodies, subresources, watch, wait, describe, diff, explain, cordon; and the same kind of
//! flows through the Python `kubernetes` client (`ORCH_TEST_PYTHON` or the repository `.venv`).
//!
//! The tests start the `orch` binary built for this test run and call the bundled kubectl of
//! each minor version directly (beside the target of `readlink -f $(command -v kubectl)`).
//! They are `#[ignore]`d by default because each one starts a server and runs ~40 kubectl
//! processes (tens of seconds): run them with
//! `cargo test --test kubectl_api_slow -- --include-ignored`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{bundled_kubectl, wait_for, Split, TestEnv};
use serde_json::Value;

struct Kubectl<'a> {
    bin: PathBuf,
    env: &'a TestEnv,
}

impl Kubectl<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.env.kubeconfig)
            .arg("--cache-dir")
            .arg(self.env.path().join("kube-cache"))
            .arg("--request-timeout=30s")
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl; (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let o = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", self.bin.display()));
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Runs kubectl and returns stdout; panics with stderr on failure.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "kubectl {} failed: {err}{out}", args.join(" "));
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
    }

    fn file(&self, name: &str, yaml: &str) -> String {
        let p = self.env.path().join(name);
        std::fs::write(&p, yaml).expect("write manifest");
        p.to_str().expect("utf-8 path").to_string()
    }
}

fn deployment(image: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: nginx
        image: {image}
        ports:
        - containerPort: 80
      - name: sidecar
        image: busybox
        command: ["sleep", "3600"]
"#
    )
}

fn first_line(s: &str) -> Vec<&str> {
    s.lines().next().unwrap_or("").split_whitespace().collect()
}

fn container<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("container {name} missing: {d}"))
}

fn workflows(minor: &str) {
    let Some(bin) = bundled_kubectl(minor) else {
        panic!("kubectl.{minor} is not installed beside the kubectl on PATH");
    };
    let env = TestEnv::new();
    let _api = Split::apiserver(&env);
    let k = Kubectl { bin, env: &env };
    let version = k.ok(&["version", "-o", "json"]);
    assert!(version.contains("\"minor\": \"33\""), "{version}");

    // Client-side apply: create, unchanged, image change keeps ports (strategic merge patch
    // with $setElementOrder), default OpenAPI-backed validation on.
    let v1 = k.file("web-v1.yaml", &deployment("nginx:1.25", 2));
    assert!(k
        .ok(&["apply", "-f", &v1])
        .contains("deployment.apps/web created"));
    assert!(k
        .ok(&["apply", "-f", &v1])
        .contains("deployment.apps/web unchanged"));
    let v2 = k.file("web-v2.yaml", &deployment("nginx:1.26", 2));
    assert!(k
        .ok(&["apply", "-f", &v2])
        .contains("deployment.apps/web configured"));
    let d = k.json(&["deployment", "web"]);
    let nginx = container(&d, "nginx");
    assert_eq!(nginx["image"], "nginx:1.26");
    assert_eq!(nginx["ports"][0]["containerPort"], 80, "{nginx}");
    assert_eq!(container(&d, "sidecar")["image"], "busybox");
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .is_some_and(|s| s.contains("nginx:1.26"))
    );

    // Strict validation reaches the server: an unknown field is rejected.
    let bad = k.file(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {a: b}\nbogus: 1\n",
    );
    let (code, _, err) = k.run(&["apply", "-f", &bad]);
    assert_ne!(code, 0, "unknown field accepted");
    assert!(err.contains("bogus"), "{err}");

    // Server-side apply: create, managedFields, conflict and force.
    let cm = k.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n",
    );
    assert!(k
        .ok(&["apply", "--server-side", "-f", &cm])
        .contains("serverside-applied"));
    let live = k.json(&["configmap", "settings", "--show-managed-fields"]);
    assert_eq!(live["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(live["metadata"]["managedFields"][0]["operation"], "Apply");
    let cm2 = k.file(
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: slow}\n",
    );
    let (code, _, err) = k.run(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &cm2,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("conflict with \"kubectl\""), "{err}");
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        &cm2,
    ]);
    assert_eq!(k.json(&["configmap", "settings"])["data"]["mode"], "slow");

    // create -f and the protobuf-bodied create commands.
    let pod = k.file(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: box, labels: {app: box}}\nspec:\n  containers:\n  - {name: c, image: busybox}\n",
    );
    assert!(k.ok(&["create", "-f", &pod]).contains("pod/box created"));
    assert!(k
        .ok(&[
            "create",
            "deployment",
            "nginx",
            "--image=nginx",
            "--replicas=2",
            "--port=80"
        ])
        .contains("deployment.apps/nginx created"));
    let nginx = k.json(&["deployment", "nginx"]);
    assert_eq!(nginx["spec"]["replicas"], 2);
    assert_eq!(container(&nginx, "nginx")["ports"][0]["containerPort"], 80);
    k.ok(&["create", "configmap", "cm1", "--from-literal=a=b"]);
    assert_eq!(k.json(&["configmap", "cm1"])["data"]["a"], "b");
    k.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "--from-literal=pw=hunter2",
    ]);
    assert_eq!(k.json(&["secret", "s1"])["data"]["pw"], "aHVudGVyMg==");
    k.ok(&["create", "namespace", "team-a"]);
    assert_eq!(
        k.json(&["namespace", "team-a"])["status"]["phase"],
        "Active"
    );

    // Server-side printing: default and wide columns, namespaces across.
    let table = k.ok(&["get", "deployments"]);
    assert_eq!(
        first_line(&table),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("0/2")),
        "{table}"
    );
    let wide = k.ok(&["get", "deployments", "-o", "wide"]);
    assert_eq!(
        first_line(&wide),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(
        wide.contains("nginx,sidecar")
            && wide.contains("nginx:1.26,busybox")
            && wide.contains("app=web"),
        "{wide}"
    );
    let pods = k.ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(
        first_line(&pods),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    let all = k.ok(&["get", "configmaps", "-A"]);
    assert_eq!(first_line(&all), ["NAMESPACE", "NAME", "DATA", "AGE"]);

    // get -w: a Table per watch event.
    let mut watch = k
        .command(&["get", "configmaps", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn get -w");
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        let out = watch.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(mut s) = seen.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        })
    };
    wait_for("get -w to list", Duration::from_secs(20), || {
        let s = seen.lock().map(|s| s.clone()).unwrap_or_default();
        if s.contains("cm1") {
            Ok(())
        } else {
            Err(s)
        }
    });
    k.ok(&["create", "configmap", "watched", "--from-literal=x=y"]);
    wait_for(
        "get -w to show the new configmap",
        Duration::from_secs(20),
        || {
            let s = seen.lock().map(|s| s.clone()).unwrap_or_default();
            if s.lines()
                .any(|l| l.starts_with("watched ") && l.split_whitespace().nth(1) == Some("1"))
            {
                Ok(())
            } else {
                Err(s)
            }
        },
    );
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = reader.join();
    let printed = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(
        printed.lines().filter(|l| l.starts_with("NAME")).count(),
        1,
        "{printed}"
    );

    // scale (the scale subresource), label, annotate, patch in three flavours.
    assert!(k
        .ok(&["scale", "deployment", "web", "--replicas=3"])
        .contains("scaled"));
    assert_eq!(k.json(&["deployment", "web"])["spec"]["replicas"], 3);
    let scale = k.json(&["deployment", "web", "--subresource=scale"]);
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(3))
    );
    k.ok(&["label", "deployment", "web", "tier=frontend"]);
    k.ok(&["annotate", "deployment", "web", "owner=team-a"]);
    let d = k.json(&["deployment", "web"]);
    assert_eq!(d["metadata"]["labels"]["tier"], "frontend");
    assert_eq!(d["metadata"]["annotations"]["owner"], "team-a");
    k.ok(&["label", "deployment", "web", "tier-"]);
    assert!(k.json(&["deployment", "web"])["metadata"]["labels"]
        .get("tier")
        .is_none());
    k.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#,
    ]);
    let d = k.json(&["deployment", "web"]);
    assert_eq!(container(&d, "nginx")["image"], "nginx:1.27");
    assert_eq!(container(&d, "nginx")["ports"][0]["containerPort"], 80);
    assert_eq!(container(&d, "sidecar")["image"], "busybox");
    k.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"m":"1"}}}"#,
    ]);
    k.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
    ]);
    let d = k.json(&["deployment", "web"]);
    assert_eq!(
        (
            d["metadata"]["labels"]["m"].as_str(),
            d["spec"]["replicas"].as_i64()
        ),
        (Some("1"), Some(2))
    );

    // wait --for=jsonpath, explain, diff (a dry-run PATCH).
    let waited = k.ok(&[
        "wait",
        "--for=jsonpath={.spec.replicas}=2",
        "deployment/web",
        "--timeout=30s",
    ]);
    assert!(waited.contains("condition met"), "{waited}");
    let explain = k.ok(&["explain", "deployment.spec.strategy"]);
    assert!(
        explain.contains("rollingUpdate") && explain.contains("DeploymentStrategy"),
        "{explain}"
    );
    let v3 = k.file("web-v3.yaml", &deployment("nginx:1.28", 2));
    let (code, out, err) = k.run(&["diff", "-f", &v3]);
    assert_eq!(code, 1, "diff should report changes: {err}{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with('+') && l.contains("image: nginx:1.28")),
        "{out}"
    );
    assert_eq!(
        container(&k.json(&["deployment", "web"]), "nginx")["image"],
        "nginx:1.27",
        "diff must not write"
    );

    // describe pod shows the events recorded for it.
    let uid = k.json(&["pod", "box"])["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ev = k.file(
        "event.yaml",
        &format!(
            "apiVersion: v1\nkind: Event\nmetadata: {{name: box.1}}\ninvolvedObject: {{kind: Pod, name: box, namespace: default, uid: {uid}}}\nreason: Scheduled\nmessage: Successfully assigned default/box to node-a\ntype: Normal\nsource: {{component: default-scheduler}}\nfirstTimestamp: \"2025-01-01T00:00:00Z\"\nlastTimestamp: \"2025-01-01T00:00:00Z\"\ncount: 1\n"
        ),
    );
    k.ok(&["create", "-f", &ev]);
    let describe = k.ok(&["describe", "pod", "box"]);
    assert!(
        describe.contains("Events:")
            && describe.contains("Successfully assigned default/box to node-a"),
        "{describe}"
    );
    let events = k.ok(&["get", "events"]);
    assert_eq!(
        first_line(&events),
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );

    // cordon / uncordon a Node object.
    let node = k.file(
        "node.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: node-a, labels: {node-role.kubernetes.io/worker: \"\"}}\n",
    );
    k.ok(&["create", "-f", &node]);
    assert!(k.ok(&["cordon", "node-a"]).contains("node/node-a cordoned"));
    assert_eq!(k.json(&["node", "node-a"])["spec"]["unschedulable"], true);
    let nodes = k.ok(&["get", "nodes"]);
    assert!(
        nodes.contains("SchedulingDisabled") && nodes.contains("worker"),
        "{nodes}"
    );
    assert!(k
        .ok(&["uncordon", "node-a"])
        .contains("node/node-a uncordoned"));
    assert!(k.json(&["node", "node-a"])["spec"]
        .get("unschedulable")
        .is_none());
    // drain: cordon, find the node's pods (field selector spec.nodeName), evict them through
    // pods/eviction (discovered as policy/v1 Eviction), wait until they are gone.
    let on_node = k.file(
        "on-node.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: on-node}\nspec:\n  nodeName: node-a\n  containers:\n  - {name: c, image: busybox}\n",
    );
    k.ok(&["create", "-f", &on_node]);
    let drained = k.ok(&[
        "drain",
        "node-a",
        "--force",
        "--grace-period=0",
        "--timeout=30s",
    ]);
    assert!(
        drained.contains("pod/on-node evicted") && drained.contains("node/node-a drained"),
        "{drained}"
    );
    let (code, _, err) = k.run(&["get", "pod", "on-node"]);
    assert!(code != 0 && err.contains("NotFound"), "{err}");

    // delete, with and without orphaning.
    assert!(k.ok(&["delete", "deployment", "web"]).contains("deleted"));
    // Orphaning marks the object with the `orphan` finalizer for the garbage collector (not
    // running here), so don't wait for it to disappear.
    assert!(k
        .ok(&[
            "delete",
            "deployment",
            "nginx",
            "--cascade=orphan",
            "--wait=false"
        ])
        .contains("deleted"));
    let orphaned = k.json(&["deployment", "nginx"]);
    assert!(
        orphaned["metadata"]["deletionTimestamp"].is_string(),
        "{orphaned}"
    );
    assert_eq!(
        orphaned["metadata"]["finalizers"],
        serde_json::json!(["orphan"])
    );
    let left = k.ok(&["get", "deployments", "-o", "name"]);
    assert_eq!(left.trim(), "deployment.apps/nginx", "{left}");
    k.ok(&["delete", "pod", "box", "--grace-period=0", "--force"]);
}

#[test]
#[ignore = "slow: starts orch apiserver and runs kubectl 1.32 (--include-ignored to run)"]
fn slow_kubectl_1_32_workflows() {
    workflows("1.32");
}

#[test]
#[ignore = "slow: starts orch apiserver and runs kubectl 1.33 (--include-ignored to run)"]
fn slow_kubectl_1_33_workflows() {
    workflows("1.33");
}

/// The Python interpreter with the `kubernetes` client: `ORCH_TEST_PYTHON`, else the
/// repository's `.venv`.
fn python_with_kubernetes() -> PathBuf {
    let p = std::env::var_os("ORCH_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import kubernetes"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import `kubernetes`: set ORCH_TEST_PYTHON to a Python with the kubernetes client",
        p.display()
    );
    p
}

/// The flows of the Python `kubernetes` client (typed APIs, watch, scale, patch, dynamic
/// client with discovery and server-side apply), asserted inside the script.
const PYTHON_FLOWS: &str = r#"
import sys
from kubernetes import client, config, watch, dynamic

config.load_kube_config(config_file=sys.argv[1])
api = client.ApiClient()
assert client.VersionApi(api).get_code().minor == "33"
core = client.CoreV1Api(api)
apps = client.AppsV1Api(api)

cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm", labels={"app": "py"}), data={"a": "1"})
core.create_namespaced_config_map("default", cm)
assert core.read_namespaced_config_map("py-cm", "default").data == {"a": "1"}
assert [c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="app=py").items] == ["py-cm"]
core.patch_namespaced_config_map("py-cm", "default", {"data": {"b": "2"}})
assert core.read_namespaced_config_map("py-cm", "default").data == {"a": "1", "b": "2"}

dep = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "py-web"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "py-web"}},
             "template": {"metadata": {"labels": {"app": "py-web"}},
                          "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}}},
}
apps.create_namespaced_deployment("default", dep)
apps.patch_namespaced_deployment_scale("py-web", "default", {"spec": {"replicas": 3}})
assert apps.read_namespaced_deployment_scale("py-web", "default").spec.replicas == 3
apps.patch_namespaced_deployment("py-web", "default",
    {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}})
c = apps.read_namespaced_deployment("py-web", "default").spec.template.spec.containers[0]
assert c.image == "nginx:1.27", c.image

seen = []
for ev in watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=2):
    seen.append((ev["type"], ev["object"].metadata.name))
assert ("ADDED", "py-cm") in seen, seen

dyn = dynamic.DynamicClient(api)
cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
cms.server_side_apply(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-ssa"}, "data": {"x": "y"}},
                      namespace="default", field_manager="python")
got = cms.get(name="py-ssa", namespace="default")
assert got.data.x == "y"
assert got.metadata.managedFields[0].manager == "python"

apps.delete_namespaced_deployment("py-web", "default")
try:
    apps.read_namespaced_deployment("py-web", "default")
    raise AssertionError("deployment still there")
except client.exceptions.ApiException as e:
    assert e.status == 404, e.status
print("python flows ok")
"#;

#[test]
#[ignore = "slow: starts orch apiserver and runs the Python kubernetes client (--include-ignored to run)"]
fn slow_python_client_flows() {
    let python = python_with_kubernetes();
    let env = TestEnv::new();
    let _api = Split::apiserver(&env);
    let script = env.path().join("flows.py");
    std::fs::write(&script, PYTHON_FLOWS).expect("write script");
    let out = Command::new(python)
        .arg(&script)
        .arg(&env.kubeconfig)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("python flows ok"),
        "python flows failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        stdout
    );
}
