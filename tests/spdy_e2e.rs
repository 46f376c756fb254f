//! The kubectl versions that speak SPDY/3.1 against `orch up` on the process runtime, through
//! the API server's proxy to the kubelet: exec (exit code, stderr, stdin and its EOF) and `cp`
//! both ways with kubectl 1.27 and 1.29 (SPDY is their only exec transport), and port-forward
//! with real HTTP requests through it with kubectl 1.27 and 1.30 (SPDY is their port-forward
//! transport). kubectl 1.31 and 1.33 port-forward through SPDY tunnelled in a WebSocket
//! (`SPDY/3.1+portforward.k8s.io`, without falling back): a pod, a Service (a named target
//! port) and a Deployment, a multi-megabyte download compared byte for byte, and a port
//! nothing listens on. A kubectl that is not installed is reported and skipped.

mod common;

use common::{TestEnv, Up};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
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
    match get_bytes(addr, path) {
        Ok(answer) => text(&answer),
        Err(e) => e,
    }
}

/// The raw answer to a `GET` on a fresh connection, or what went wrong and what came first.
fn get_bytes(addr: std::net::SocketAddr, path: &str) -> Result<Vec<u8>, String> {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the forwarded port");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n").expect("send the request");
    let mut answer = Vec::new();
    match std::io::Read::read_to_end(&mut s, &mut answer) {
        Ok(_) => Ok(answer),
        Err(e) => Err(format!("{e} after {:?}", text(&answer))),
    }
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
        let o = common::kubectl_with_input(
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

        let o = common::kubectl_with_input(
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
        let o = common::kubectl_with_input(
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
        let o = common::kubectl_with_input(
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
        let mut child = common::kubectl_command(&env, &bin)
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

const TUNNEL_OBJECTS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: web
      image: python:3.12
      command:
        - sh
        - -c
        - |
          mkdir -p /tmp/orch-tunnel-web && cd /tmp/orch-tunnel-web && echo served by the pod > index.html
          python3 -c "open('big.bin', 'wb').write(bytes(i * 7 % 251 for i in range(4000000)))"
          exec python3 -m http.server 8080
      ports:
        - name: http
          containerPort: 8080
      readinessProbe:
        tcpSocket:
          port: 8080
        periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
    - port: 80
      targetPort: http
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: webdep
spec:
  replicas: 1
  selector:
    matchLabels:
      app: webdep
  template:
    metadata:
      labels:
        app: webdep
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: python:3.12
          command: ["sh", "-c", "mkdir -p /tmp/orch-tunnel-dep && cd /tmp/orch-tunnel-dep && echo served by the deployment > index.html && exec python3 -m http.server 8081"]
          readinessProbe:
            tcpSocket:
              port: 8081
            periodSeconds: 1
"#;

/// `kubectl port-forward TARGET 0:PORT -v=4` in the background: the local port kubectl chose,
/// its stderr collected as it comes. Killed on drop.
struct Forward {
    child: Child,
    port: u16,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Forward {
    /// Starts the forward of `target`'s `remote` port; `shown` is the pod port kubectl
    /// resolves it to and prints.
    fn start(
        env: &TestEnv,
        bin: &Path,
        minor: &str,
        target: &str,
        remote: u16,
        shown: u16,
    ) -> Forward {
        let mut child = common::kubectl_command(env, bin)
            .args([
                "port-forward",
                "-v=4",
                "--address",
                "127.0.0.1",
                target,
                &format!("0:{remote}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl port-forward");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (err, collected) = (child.stderr.take().expect("stderr"), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut all = collected.lock().expect("stderr lock");
                all.push_str(&line);
                all.push('\n');
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        out.read_line(&mut first).expect("port-forward output");
        // kubectl prints a line per connection: keep reading, a closed pipe would kill it.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let mut fwd = Forward {
            child,
            port: 0,
            stderr,
        };
        // "Forwarding from 127.0.0.1:PORT -> REMOTE"
        let port = first
            .strip_prefix("Forwarding from 127.0.0.1:")
            .and_then(|r| r.split_once(" -> "))
            .filter(|(_, r)| r.trim() == shown.to_string())
            .and_then(|(p, _)| p.parse().ok());
        match port {
            Some(p) => fwd.port = p,
            None => {
                let _ = fwd.child.kill();
                let _ = fwd.child.wait();
                panic!(
                    "kubectl {minor} port-forward {target}: {first:?}; {}",
                    fwd.stderr()
                );
            }
        }
        fwd
    }

    fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of an HTTP answer with status 200.
fn body_of_200(answer: &[u8], what: &str) -> Vec<u8> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        panic!(
            "{what}: no header end in {:?}",
            text(&answer[..answer.len().min(300)])
        );
    };
    let head = text(&answer[..end]);
    assert!(head.starts_with("HTTP/1.0 200"), "{what}: {head}");
    answer[end + 4..].to_vec()
}

#[test]
fn tunnelled_kubectls_port_forward_pod_service_deployment() {
    let env = TestEnv::new();
    let _up = Up::start(&env, 1, "process", &[]);
    env.apply(TUNNEL_OBJECTS);
    common::wait_for(
        "pods web and webdep to be ready",
        Duration::from_secs(90),
        || {
            let pods = env.get_json(&["pods"])?;
            let items = pods["items"].as_array().cloned().unwrap_or_default();
            if items.len() == 2 && items.iter().all(common::pod_ready) {
                Ok(())
            } else {
                Err(format!("{pods}"))
            }
        },
    );
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 % 251) as u8).collect();

    for minor in ["1.31", "1.33"] {
        let Some(bin) = installed(minor) else {
            continue;
        };
        // A pod: small requests on fresh connections, then 4 MB, far past the SPDY windows
        // and in many WebSocket messages.
        let fwd = Forward::start(&env, &bin, minor, "pod/web", 8080, 8080);
        for _ in 0..2 {
            let answer = get(fwd.addr(), "/index.html");
            assert!(
                answer.starts_with("HTTP/1.0 200")
                    && answer.ends_with("\r\n\r\nserved by the pod\n"),
                "kubectl {minor}: {answer}; port-forward said: {}",
                fwd.stderr()
            );
        }
        let answer = get_bytes(fwd.addr(), "/big.bin")
            .unwrap_or_else(|e| panic!("kubectl {minor}: {e}; {}", fwd.stderr()));
        let body = body_of_200(&answer, &format!("kubectl {minor} big.bin"));
        assert_eq!(body.len(), big.len(), "kubectl {minor}: download length");
        assert!(body == big, "kubectl {minor}: the download differs");
        // The WebSocket tunnel was taken, no fallback to a plain SPDY upgrade.
        let log = fwd.stderr();
        assert!(
            log.contains("Before WebSocket Upgrade Connection")
                && !log.contains("fallback to secondary dialer"),
            "kubectl {minor} fell back to SPDY: {log}"
        );
        drop(fwd);

        // A Service: kubectl picks a pod of its selector and resolves the named target port
        // (it prints the pod's port).
        let fwd = Forward::start(&env, &bin, minor, "svc/web", 80, 8080);
        let answer = get(fwd.addr(), "/index.html");
        assert!(
            answer.ends_with("\r\n\r\nserved by the pod\n"),
            "kubectl {minor} svc/web: {answer}; {}",
            fwd.stderr()
        );
        drop(fwd);

        // A Deployment: one of its pods.
        let fwd = Forward::start(&env, &bin, minor, "deployment/webdep", 8081, 8081);
        let answer = get(fwd.addr(), "/index.html");
        assert!(
            answer.ends_with("\r\n\r\nserved by the deployment\n"),
            "kubectl {minor} deployment/webdep: {answer}; {}",
            fwd.stderr()
        );
        drop(fwd);

        // A port nothing listens on: the connection ends, kubectl prints the error the
        // kubelet sent on the error stream and, as upstream client-go's handleConnection
        // does on any error message, closes the session and exits.
        let mut fwd = Forward::start(&env, &bin, minor, "pod/web", 9, 9);
        let answer = get(fwd.addr(), "/");
        assert!(
            !answer.starts_with("HTTP"),
            "kubectl {minor}: an answer from port 9: {answer}"
        );
        let status = common::wait_for(
            &format!("kubectl {minor} port-forward to port 9 to end"),
            Duration::from_secs(30),
            || match fwd.child.try_wait() {
                Ok(Some(status)) => Ok(status),
                other => Err(format!("{other:?}; {}", fwd.stderr())),
            },
        );
        // The stderr reader may lag behind the exit a moment.
        let log = common::wait_for("kubectl's last lines", Duration::from_secs(5), || {
            let log = fwd.stderr();
            if log.contains("lost connection to pod") {
                Ok(log)
            } else {
                Err(log)
            }
        });
        assert!(!status.success(), "kubectl {minor}: {log}");
        let expected = format!(
            "an error occurred forwarding {} -> 9: error forwarding port 9 to pod ",
            fwd.port
        );
        assert!(
            log.contains(&expected) && log.contains("Connection refused"),
            "kubectl {minor}: {log}"
        );
    }
}
