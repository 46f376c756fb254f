//! `kubectl exec`, `cp`, `attach` and the Python client's `stream()` against `orch up` on the
//! process runtime, through the API server's proxy to the kubelet's WebSocket endpoints; and
//! the sim runtime's scripted answer. Each kubectl of [`KUBECTLS`] that is installed runs the
//! same checks (older ones speak SPDY, added with that transport).

mod common;

use common::{OrchProcess, TestEnv};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The kubectl minors whose WebSocket exec is checked (kubectl ≥ 1.30 uses WebSocket for
/// exec, attach and cp by default).
const KUBECTLS: &[&str] = &["1.33"];

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: busybox:1.36
      command: ["sh", "-c", "trap 'exit 0' TERM; echo started; while true; do sleep 1; done"]
      env:
        - name: GREETING
          value: hello
    - name: talk
      image: busybox:1.36
      stdin: true
      command: ["sh", "-c", "while read line; do echo \"got $line\"; done; echo stdin closed"]
"#;

fn up(env: &TestEnv, runtime: &str) -> OrchProcess {
    let data = env.data_dir();
    let p = OrchProcess::spawn(
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
            runtime,
        ],
    );
    env.wait_api_ready(Duration::from_secs(60));
    env.wait_nodes_ready(1, Duration::from_secs(60));
    p
}

fn kubectl_bin(minor: &str) -> Option<PathBuf> {
    common::bundled_kubectl(minor)
}

/// Runs `kubectl ARGS` of version `bin` with `input` on stdin.
fn run(env: &TestEnv, bin: &PathBuf, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(bin)
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .arg("--cache-dir")
        .arg(env.path().join("kube-cache"))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("kubectl output")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn wait_running(env: &TestEnv, pod: &str) {
    common::wait_for("the pod to run", Duration::from_secs(60), || {
        let p = env.get_json(&["pod", pod])?;
        let ready = p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|a| a.iter().all(|c| c["state"]["running"].is_object()));
        if ready {
            Ok(())
        } else {
            Err(format!("{}", p["status"]))
        }
    });
}

#[test]
fn exec_cp_and_attach_with_kubectl_on_the_process_runtime() {
    let env = TestEnv::new();
    let _up = up(&env, "process");
    env.apply(POD);
    wait_running(&env, "shell");
    for minor in KUBECTLS {
        let Some(bin) = kubectl_bin(minor) else {
            println!("kubectl {minor} not installed: skipped");
            continue;
        };
        // output and exit code
        let o = run(
            &env,
            &bin,
            &[
                "exec",
                "shell",
                "-c",
                "app",
                "--",
                "sh",
                "-c",
                "echo hi $GREETING; echo oops >&2; exit 3",
            ],
            b"",
        );
        assert_eq!(
            o.status.code(),
            Some(3),
            "kubectl {minor}: {}",
            text(&o.stderr)
        );
        assert_eq!(text(&o.stdout), "hi hello\n");
        assert!(text(&o.stderr).contains("oops"), "{}", text(&o.stderr));
        // stdin to the command, its EOF included
        let o = run(
            &env,
            &bin,
            &[
                "exec",
                "-i",
                "shell",
                "-c",
                "app",
                "--",
                "sh",
                "-c",
                "cat; echo end",
            ],
            b"data\n",
        );
        assert!(o.status.success(), "kubectl {minor}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "data\nend\n");
        // a container the pod does not have: upstream's 400
        let o = run(
            &env,
            &bin,
            &["exec", "shell", "-c", "nope", "--", "true"],
            b"",
        );
        assert!(!o.status.success());
        assert!(
            text(&o.stderr).contains("container nope is not valid for pod shell"),
            "{}",
            text(&o.stderr)
        );
        // kubectl cp both ways (tar over exec)
        let local = env.path().join(format!("up-{minor}.txt"));
        std::fs::write(&local, "copied in\n").expect("write");
        let dest = format!("shell:/tmp/orch-cp-{minor}.txt");
        let o = run(
            &env,
            &bin,
            &["cp", "-c", "app", local.to_str().expect("utf-8"), &dest],
            b"",
        );
        assert!(
            o.status.success(),
            "kubectl {minor} cp in: {}",
            text(&o.stderr)
        );
        let back = env.path().join(format!("down-{minor}.txt"));
        let o = run(
            &env,
            &bin,
            &["cp", "-c", "app", &dest, back.to_str().expect("utf-8")],
            b"",
        );
        assert!(
            o.status.success(),
            "kubectl {minor} cp out: {}",
            text(&o.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(&back).expect("copied file"),
            "copied in\n"
        );
    }
    // attach to the container with stdin: what it prints for our input comes back
    let bin = kubectl_bin("1.33").unwrap_or_else(|| PathBuf::from("kubectl"));
    // (`kubectl attach` stays attached until the container exits: read, then stop it)
    let mut child = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["attach", "-i", "shell", "-c", "talk"])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run kubectl attach");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = vec![];
    while !seen.iter().any(|l: &String| l == "got one") && std::time::Instant::now() < deadline {
        let _ = stdin.write_all(b"one\n");
        if let Ok(l) = rx.recv_timeout(Duration::from_secs(1)) {
            seen.push(l);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l == "got one"),
        "attach output: {seen:?}"
    );
}

/// The Python `kubernetes` client's `stream()` exec over `v4.channel.k8s.io`.
#[test]
fn python_client_stream_exec() {
    let python = std::env::var("ORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_client = Command::new(&python)
        .args(["-c", "import kubernetes"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_client {
        println!("the Python kubernetes client is not installed: skipped");
        return;
    }
    let env = TestEnv::new();
    let _up = up(&env, "process");
    env.apply(POD);
    wait_running(&env, "shell");
    let script = r#"
import sys
from kubernetes import client, config
from kubernetes.stream import stream
config.load_kube_config(sys.argv[1])
v1 = client.CoreV1Api()
r = stream(v1.connect_get_namespaced_pod_exec, "shell", "default", container="app",
           command=["sh", "-c", "echo from python $GREETING"], stderr=True, stdin=False,
           stdout=True, tty=False)
print(r.strip())
"#;
    let o = Command::new(&python)
        .args(["-c", script])
        .arg(&env.kubeconfig)
        .output()
        .expect("run python");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "from python hello");
}

/// The sim runtime has no processes: exec and attach answer with its documented scripted
/// replies, port-forward with a 400 saying it has no network.
#[test]
fn exec_on_the_sim_runtime_is_a_scripted_reply() {
    let env = TestEnv::new();
    let _up = up(&env, "sim");
    env.apply(POD);
    wait_running(&env, "shell");
    let bin = kubectl_bin("1.33").unwrap_or_else(|| PathBuf::from("kubectl"));
    let o = run(
        &env,
        &bin,
        &["exec", "shell", "-c", "app", "--", "echo", "hi"],
        b"",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "sim: would run [\"echo\", \"hi\"] in container app\n"
    );
    let o = run(
        &env,
        &bin,
        &["exec", "shell", "-c", "app", "--", "exit", "4"],
        b"",
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    // attach: one scripted line, then the session ends with success
    let o = run(&env, &bin, &["attach", "shell", "-c", "app"], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "sim: attached to container app, which runs no process\n"
    );
    // port-forward: refused before the upgrade, 400 with the documented reason
    let no_network = "the sim runtime has no network";
    let o = run(
        &env,
        &bin,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/shell/portforward?ports=8080",
        ],
        b"",
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains(&format!("Error from server (BadRequest): {no_network}")),
        "{}",
        text(&o.stderr)
    );
    let o = run(&env, &bin, &["port-forward", "pod/shell", ":8080"], b"");
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains(no_network), "{}", text(&o.stderr));
}
