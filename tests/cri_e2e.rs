//! The `cri` runtime end to end (issue 22): `orch up --runtime cri` starts a containerd per
//! kubelet; the project's test images (built by `orch images build-test` from Debian's
//! busybox-static) are loaded with `orch images load` and listed with `orch images ls`; then,
//! with real kubectl, on one cluster:
//! - a busybox pod `echo hello; exit 3` with `restartPolicy: Never` terminates with exit code
//!   3 and is not restarted, and `kubectl logs` prints `hello` (the CRI log file);
//! - the same with `restartPolicy: OnFailure` is restarted;
//! - `imagePullPolicy: Never` with a missing image waits in `ErrImageNeverPull`;
//! - an httpd pod with an httpGet readiness probe and an exec liveness probe (CRI `ExecSync`)
//!   becomes Ready and answers on its pod IP;
//! - a pod limited to 20 MiB that allocates more is `OOMKilled`;
//! - `kubectl delete` ends the containers: no containerd shim of this cluster keeps running;
//!   and when `orch up` stops, its containerd and its cgroups are gone.
//!
//! Needs root, containerd, runc, ctr, the CNI plugins in /usr/lib/cni and busybox-static
//! (`.ci/run` installs them); elsewhere the test says why and checks nothing.
#![cfg(feature = "cri")]

mod common;

use common::{orch_bin, pod_ready, wait_for, TestEnv, Up};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    if !orch_kubelet::runtime::process::is_root() {
        return Some("not running as root (containerd needs root)".into());
    }
    for tool in ["containerd", "runc", "ctr"] {
        if !Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(format!(
                "`{tool}` is not installed (apt-get install -y containerd runc)"
            ));
        }
    }
    for f in ["/usr/lib/cni/bridge", "/bin/busybox"] {
        if !Path::new(f).exists() {
            return Some(format!(
                "{f} is missing (apt-get install -y containernetworking-plugins busybox-static)"
            ));
        }
    }
    None
}

fn orch(args: &[&str]) -> String {
    let o = Command::new(orch_bin())
        .args(args)
        .output()
        .expect("run orch");
    assert!(
        o.status.success(),
        "orch {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// PIDs of the containerd shims serving the containerd at `socket` (not zombies).
fn shims(socket: &Path) -> Vec<String> {
    let sock = socket.display().to_string();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|p| {
                    let pid = p.file_name().to_string_lossy().into_owned();
                    pid.parse::<u32>().ok()?;
                    let cmd = std::fs::read(p.path().join("cmdline")).ok()?;
                    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                    (cmd.contains("containerd-shim") && cmd.contains(&sock)).then_some(pid)
                })
                .collect()
        })
        .unwrap_or_default()
}

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hello}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: orch.test/busybox:v1
    command: [sh, -c, 'echo hello; exit 3']
---
apiVersion: v1
kind: Pod
metadata: {name: again}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: orch.test/busybox:v1
    command: [sh, -c, 'echo again; exit 3']
---
apiVersion: v1
kind: Pod
metadata: {name: never}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: orch.test/missing:v1
    imagePullPolicy: Never
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: orch.test/httpd:v1
    ports: [{containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /, port: 8080}
      periodSeconds: 1
    livenessProbe:
      exec: {command: [sh, -c, 'test -f /www/index.html']}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: oom}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: orch.test/busybox:v1
    command: [sh, -c, 'tail /dev/zero']
    resources:
      limits: {memory: 20Mi}
"#;

#[test]
fn cri_runtime_runs_pods_on_containerd() {
    if let Some(why) = missing() {
        eprintln!("skipping cri_e2e: {why}");
        return;
    }
    let env = TestEnv::new();
    let images = env.path().join("images");
    let built = orch(&["images", "build-test", images.to_str().expect("utf-8")]);
    assert!(built.contains("orch.test/httpd:v1"), "{built}");
    let up = Up::start(&env, 1, "cri", &[]);
    let data = env.data_dir();
    let data = data.to_str().expect("utf-8");
    for archive in ["busybox.tar", "httpd.tar"] {
        let out = orch(&[
            "images",
            "load",
            images.join(archive).to_str().expect("utf-8"),
            "--data-dir",
            data,
        ]);
        assert!(out.contains("node-1: unpacking orch.test/"), "{out}");
    }
    let ls = orch(&["images", "ls", "--data-dir", data, "--node", "node-1"]);
    for want in [
        "orch.test/busybox:v1",
        "orch.test/httpd:v1",
        "orch.test/pause:v1",
    ] {
        assert!(ls.contains(want), "{want} missing from:\n{ls}");
    }
    let node = env.kubectl(&[
        "get",
        "node",
        "node-1",
        "-o",
        "jsonpath={.status.nodeInfo.containerRuntimeVersion}",
    ]);
    assert!(node.starts_with("containerd://1."), "{node}");

    env.apply(PODS);
    let state = |pod: &str| -> Result<serde_json::Value, String> {
        let p = env.get_json(&["pod", pod])?;
        Ok(p["status"]["containerStatuses"][0].clone())
    };
    // Exit code 3, not restarted under restartPolicy Never; its log through kubectl.
    let hello = wait_for("hello to terminate", Duration::from_secs(60), || {
        let s = state("hello")?;
        if s["state"]["terminated"].is_object() {
            Ok(s)
        } else {
            Err(format!("{s}"))
        }
    });
    assert_eq!(hello["state"]["terminated"]["exitCode"], 3, "{hello}");
    assert_eq!(hello["state"]["terminated"]["reason"], "Error", "{hello}");
    assert!(
        hello["containerID"]
            .as_str()
            .is_some_and(|id| id.starts_with("containerd://")),
        "{hello}"
    );
    assert_eq!(env.kubectl(&["logs", "hello"]), "hello\n");
    // restartPolicy OnFailure restarts it.
    wait_for("again to be restarted", Duration::from_secs(60), || {
        let s = state("again")?;
        if s["restartCount"].as_i64().unwrap_or(0) >= 1 {
            Ok(())
        } else {
            Err(format!("{s}"))
        }
    });
    // Pull policy Never with a missing image.
    wait_for(
        "never to wait in ErrImageNeverPull",
        Duration::from_secs(30),
        || {
            let s = state("never")?;
            if s["state"]["waiting"]["reason"] == "ErrImageNeverPull" {
                Ok(())
            } else {
                Err(format!("{s}"))
            }
        },
    );
    // OOMKilled at the memory limit.
    let oom = wait_for("oom to be OOMKilled", Duration::from_secs(60), || {
        let s = state("oom")?;
        if s["state"]["terminated"].is_object() {
            Ok(s)
        } else {
            Err(format!("{s}"))
        }
    });
    assert_eq!(oom["state"]["terminated"]["reason"], "OOMKilled", "{oom}");
    assert_eq!(oom["state"]["terminated"]["exitCode"], 137, "{oom}");
    // Ready through its probes, answering on its pod IP.
    let web = wait_for("web to be Ready", Duration::from_secs(60), || {
        let p = env.get_json(&["pod", "web"])?;
        if pod_ready(&p) {
            Ok(p)
        } else {
            Err(format!("{}", p["status"]))
        }
    });
    let ip = web["status"]["podIP"].as_str().expect("pod IP").to_string();
    let addr: std::net::SocketAddr = format!("{ip}:8080").parse().expect("pod address");
    let (code, body) = common::http_get_plain(addr, "/").expect("GET the pod");
    assert_eq!((code, body.as_str()), (200, "hello from orch httpd\n"));
    assert_eq!(web["status"]["containerStatuses"][0]["restartCount"], 0);

    // The images were present: the events say so instead of inventing a pull.
    let events = env.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=hello",
    ]);
    assert!(
        events.contains("Container image \"orch.test/busybox:v1\" already present on machine"),
        "{events}"
    );

    // Deleting the pods ends their containers.
    let socket = env
        .data_dir()
        .join("kubelet/node-1/containerd/containerd.sock");
    assert!(!shims(&socket).is_empty(), "no shim while pods run");
    env.kubectl(&["delete", "pods", "--all", "--wait=true", "--timeout=60s"]);
    wait_for("the shims to exit", Duration::from_secs(30), || {
        let s = shims(&socket);
        if s.is_empty() {
            Ok(())
        } else {
            Err(format!("shims still running: {s:?}"))
        }
    });
    // orch up stops its containerd.
    let pid_file = env
        .data_dir()
        .join("kubelet/node-1/containerd/containerd.pid");
    let pid = std::fs::read_to_string(&pid_file).expect("containerd.pid");
    let mut up = up;
    assert_eq!(up.proc.interrupt(Duration::from_secs(60)), Some(0));
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "containerd {pid} still runs after orch up stopped"
    );
    // Its pods' cgroups are gone too.
    let cgroup =
        orch_kubelet::runtime::cri::node_cgroup(&env.data_dir().join("kubelet").join("node-1"));
    let left: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| {
            d.flatten()
                .map(|h| h.path().join(&cgroup))
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
    // And the CNI bridge (the pods' gateway on the podCIDR).
    let gateway = format!("{}.1", ip.rsplit_once('.').expect("IPv4 pod IP").0);
    let addrs = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .expect("ip addr");
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(
        !addrs.contains(&format!(" {gateway}/")),
        "the pod network's bridge ({gateway}) is still up:\n{addrs}"
    );
}
