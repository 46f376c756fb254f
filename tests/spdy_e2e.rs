//! The kubectl versions that speak SPDY/3.1 against `orch up` on the process runtime, through
//! the API server's proxy to the kubelet: exec (exit code, stderr, stdin and its EOF) and `cp`
//! both ways with kubectl 1.27 and 1.29 (SPDY is their only exec transport), and port-forward
//! with real HTTP requests through it with kubectl 1.27 and 1.30 (SPDY is their port-forward
//! transport). A kubectl that is not installed is reported and skipped.

mod common;

use common::{TestEnv, Up};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: busybox:1.36
      command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
      env:
        - name: GREETING
          value: hello
---
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: web
      image: python:3.12
      command: ["sh", "-c", "mkdir -p /tmp/orch-spdy-web && cd /tmp/orch-spdy-web && echo served by the pod > index.html && exec python3 -m http.server 8080"]
      ports:
        - containerPort: 8080
      readinessProbe:
        tcpSocket:
          port: 8080
        periodSeconds: 1
"#;

fn kubectl(env: &TestEnv, bin: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .arg("--cache-dir")
        .arg(env.path().join("kube-cache"))
        .env_remove("KUBECONFIG");
    c
}

/// Runs `kubectl ARGS` with `input` on stdin.
fn run(env: &TestEnv, bin: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = kubectl(env, bin)
        .args(args)
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
    common::wait_for(
        &format!("pod {pod} to run"),
        Duration::from_secs(60),
        || {
            let p = env.get_json(&["pod", pod])?;
            if p["status"]["containerStatuses"]
                .as_array()
                .is_some_and(|a| a.iter().all(|c| c["state"]["running"].is_object()))
            {
                Ok(())
            } else {
                Err(format!("{}", p["status"]))
            }
        },
    );
}

fn installed(minor: &str) -> Option<PathBuf> {
    let bin = common::bundled_kubectl(minor);
    if bin.is_none() {
        println!("kubectl {minor} not installed: skipped");
    }
    bin
}

/// A plain `GET` on a fresh connection: the whole answer (the server closes after it).
fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the forwarded port");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n").expect("send the request");
    let mut answer = Vec::new();
    if let Err(e) = std::io::Read::read_to_end(&mut s, &mut answer) {
        return format!("{e} after {:?}", text(&answer));
    }
    text(&answer)
}

/// `kubectl port-forward` running in the background; killed on drop.
struct PortForward(Child);

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn spdy_kubectls_exec_cp_and_port_forward() {
    let env = TestEnv::new();
    let _up = Up::start(&env, 1, "process", &[]);
    env.apply(PODS);
    wait_running(&env, "shell");
    // Forwarding starts once the server listens.
    common::wait_for("pod web to be ready", Duration::from_secs(60), || {
        let p = env.get_json(&["pod", "web"])?;
        if common::pod_ready(&p) {
            Ok(())
        } else {
            Err(format!("{}", p["status"]))
        }
    });

    // 2 MB through stdin and stdout: far past the 64 KiB SPDY windows.
    let payload: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for minor in ["1.27", "1.29"] {
        let Some(bin) = installed(minor) else {
            continue;
        };
        let o = run(
            &env,
            &bin,
            &[
                "exec",
                "shell",
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
        assert!(
            text(&o.stderr).contains("oops"),
            "kubectl {minor}: {}",
            text(&o.stderr)
        );

        let o = run(
            &env,
            &bin,
            &["exec", "-i", "shell", "--", "sh", "-c", "wc -c; echo end"],
            &payload,
        );
        assert!(o.status.success(), "kubectl {minor}: {}", text(&o.stderr));
        assert_eq!(
            text(&o.stdout).split_whitespace().collect::<Vec<_>>(),
            ["2000000", "end"]
        );

        let local = env.path().join(format!("in-{minor}.bin"));
        std::fs::write(&local, &payload).expect("write");
        let remote = format!("shell:/tmp/orch-spdy-cp-{minor}.bin");
        let o = run(
            &env,
            &bin,
            &["cp", local.to_str().expect("utf-8"), &remote],
            b"",
        );
        assert!(
            o.status.success(),
            "kubectl {minor} cp in: {}",
            text(&o.stderr)
        );
        let back = env.path().join(format!("out-{minor}.bin"));
        let o = run(
            &env,
            &bin,
            &["cp", &remote, back.to_str().expect("utf-8")],
            b"",
        );
        assert!(
            o.status.success(),
            "kubectl {minor} cp out: {}",
            text(&o.stderr)
        );
        assert!(
            std::fs::read(&back).expect("copied file") == payload,
            "kubectl {minor}: cp round trip differs"
        );
    }

    for minor in ["1.27", "1.30"] {
        let Some(bin) = installed(minor) else {
            continue;
        };
        let port = common::free_port();
        let mut child = kubectl(&env, &bin)
            .args([
                "port-forward",
                "--address",
                "127.0.0.1",
                "pod/web",
                &format!("{port}:8080"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl port-forward");
        let stdout = child.stdout.take().expect("stdout");
        let pf = PortForward(child);
        let mut first = String::new();
        let mut out = BufReader::new(stdout);
        out.read_line(&mut first).expect("port-forward output");
        // kubectl prints a line per connection: keep reading, a closed pipe would kill it.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        assert!(
            first.starts_with("Forwarding from"),
            "kubectl {minor}: {first}"
        );
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        // Two requests, two connections: each one a data/error stream pair of one session.
        for _ in 0..2 {
            let answer = get(addr, "/index.html");
            if !answer.starts_with("HTTP/1.0 200") {
                let mut pf = pf;
                let _ = pf.0.kill();
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(
                    &mut pf.0.stderr.take().expect("stderr"),
                    &mut err,
                );
                panic!("kubectl {minor}: {answer}; port-forward said: {err}");
            }
            assert!(
                answer.ends_with("\r\n\r\nserved by the pod\n"),
                "kubectl {minor}: {answer}"
            );
        }
        drop(pf);
    }
}
