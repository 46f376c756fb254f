//! `kubectl exec`, `cp`, `attach` and the Python client's `stream()` against `orch up` on the
//! process runtime, through the API server's proxy to the kubelet's WebSocket endpoints; and
//! the sim runtime's scripted answer. Each kubectl of [`KUBECTLS`] that is installed runs the
//! same checks (older ones speak SPDY, added with that transport).

mod common;

use common::{OrchProcess, TestEnv};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
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
        let o = common::kubectl_with_input(
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
        let o = common::kubectl_with_input(
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
        let o = common::kubectl_with_input(
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
        let o = common::kubectl_with_input(
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
        let o = common::kubectl_with_input(
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

/// What a terminal shows: everything read from the master side of a pty so far.
#[derive(Clone, Default)]
struct Screen(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Screen {
    fn text(&self) -> String {
        text(&self.0.lock().expect("screen lock"))
    }

    /// Waits until the screen holds `want` after byte `from`; returns the offset after it.
    fn wait(&self, want: &str, from: usize) -> usize {
        common::wait_for(
            &format!("{want:?} on the terminal"),
            Duration::from_secs(30),
            || {
                let t = self.text();
                match t.get(from..).and_then(|rest| rest.find(want)) {
                    Some(i) => Ok(from + i + want.len()),
                    None => Err(t),
                }
            },
        )
    }
}

/// `kubectl exec -it` on a terminal: kubectl runs on a pty of ours (its controlling terminal,
/// through util-linux `setsid --ctty`, so it gets SIGWINCH), an interactive shell in the
/// container answers a command typed on it, sees the terminal's size, and sees it change when
/// the window is resized; its exit code is kubectl's.
#[test]
fn kubectl_exec_it_interactive_shell_with_resize() {
    use std::os::fd::AsFd;
    let env = TestEnv::new();
    let _up = up(&env, "process");
    env.apply(POD);
    wait_running(&env, "shell");
    let bin = kubectl_bin("1.33").unwrap_or_else(|| PathBuf::from("kubectl"));
    let size = |rows: u16, cols: u16| nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size(40, 100)), None).expect("openpty");
    let slave = std::fs::File::from(pty.slave);
    let mut child = Command::new("setsid")
        .arg("--ctty")
        .arg(&bin)
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["exec", "-it", "shell", "-c", "app", "--", "sh"])
        .env_remove("KUBECONFIG")
        .env("TERM", "dumb")
        .stdin(slave.try_clone().expect("pty slave"))
        .stdout(slave.try_clone().expect("pty slave"))
        .stderr(slave)
        .spawn()
        .expect("run kubectl exec -it");
    let master = std::fs::File::from(pty.master);
    let mut keyboard = master.try_clone().expect("pty master");
    let screen = Screen::default();
    let s = screen.clone();
    let mut reader = master.try_clone().expect("pty master");
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        // EIO once kubectl (the last holder of the slave) is gone
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            s.0.lock()
                .expect("screen lock")
                .extend_from_slice(&buf[..n]);
        }
    });
    let mut type_line = |line: &str| {
        keyboard
            .write_all(format!("{line}\r").as_bytes())
            .expect("type on the terminal");
    };
    // the shell answers (the result, not the echo of what was typed)
    type_line("echo $((6 * 7))-$GREETING");
    let at = screen.wait("42-hello", 0);
    // the terminal's size as kubectl sent it at the start
    type_line("stty size");
    let at = screen.wait("40 100", at);
    // a resize of the window reaches the container's terminal
    rustix::termios::tcsetwinsize(
        master.as_fd(),
        rustix::termios::Winsize {
            ws_row: 50,
            ws_col: 132,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .expect("resize the pty");
    let mut at = at;
    common::wait_for(
        "the resize in the container",
        Duration::from_secs(30),
        || {
            type_line("stty size");
            let t = screen.text();
            match t.get(at..).and_then(|rest| rest.find("50 132")) {
                Some(_) => Ok(()),
                None => {
                    std::thread::sleep(Duration::from_millis(300));
                    at = at.max(t.len().saturating_sub(64));
                    Err(t)
                }
            }
        },
    );
    type_line("exit 7");
    let status = common::wait_for("kubectl to exit", Duration::from_secs(30), || {
        child
            .try_wait()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| screen.text())
    });
    assert_eq!(status.code(), Some(7), "{}", screen.text());
}

/// The Python interpreter with the `kubernetes` client: `ORCH_PYTHON` (or `ORCH_TEST_PYTHON`,
/// as the other suites name it), else the repository's `.venv`, else `python3`. Panics when it
/// cannot import `kubernetes`: the Python checks never pass without running.
fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let p = std::env::var_os("ORCH_PYTHON")
        .or_else(|| std::env::var_os("ORCH_TEST_PYTHON"))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if venv.exists() {
                venv
            } else {
                PathBuf::from("python3")
            }
        });
    let o = Command::new(&p).args(["-c", "import kubernetes"]).output();
    let ok = o.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} cannot import the Python `kubernetes` client ({}): run scripts/test-all.sh once to \
         create .venv, or set ORCH_PYTHON to a Python that has it",
        p.display(),
        match &o {
            Ok(o) => text(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        }
    );
    p
}

/// A pod serving HTTP on port 8765 (`python3 -m http.server`) from a directory with
/// `index.html`.
const WEB_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: web
      image: python:3.12
      command: ["sh", "-c", "d=$(mktemp -d) && cd $d && echo served by the pod > index.html && exec python3 -m http.server 8765"]
      ports:
        - containerPort: 8765
"#;

/// The Python client's `stream()` exec: output (`v5.channel.k8s.io`, which it offers first),
/// stdin with `_preload_content=False` (`write_stdin`, the v5 close of stdin as EOF, reads
/// and the exit code from `returncode`), and `portforward()` (`v4.channel.k8s.io` with
/// `ports=`) carrying a real HTTP request to a server in a pod. Each check prints one line.
const PYTHON_STREAMS: &str = r#"
import sys, time
from kubernetes import client, config
from kubernetes.stream import stream, portforward
config.load_kube_config(sys.argv[1])
v1 = client.CoreV1Api()

r = stream(v1.connect_get_namespaced_pod_exec, "shell", "default", container="app",
           command=["sh", "-c", "echo from python $GREETING"], stderr=True, stdin=False,
           stdout=True, tty=False)
print("exec:", r.strip())

def session(command, lines, close):
    resp = stream(v1.connect_get_namespaced_pod_exec, "shell", "default", container="app",
                  command=command, stdin=True, stdout=True, stderr=True, tty=False,
                  _preload_content=False)
    for l in lines:
        resp.write_stdin(l)
    if close:
        resp.close_channel(0)
    out, err = "", ""
    deadline = time.time() + 30
    while resp.is_open() and time.time() < deadline:
        resp.update(timeout=1)
        if resp.peek_stdout():
            out += resp.read_stdout()
        if resp.peek_stderr():
            err += resp.read_stderr()
    code = resp.returncode
    resp.close()
    return out, err, code

out, err, code = session(["sh", "-c", "read a; echo got $a; echo bad >&2; exit 5"], ["ping\n"], False)
print("stdin:", repr(out), repr(err), code)
out, err, code = session(["sh", "-c", "cat; echo end"], ["one\n", "two\n"], True)
print("eof:", repr(out), repr(err), code)

body, last = b"", None
deadline = time.time() + 60
while time.time() < deadline:
    try:
        pf = portforward(v1.connect_get_namespaced_pod_portforward, "web", "default", ports="8765")
        sock = pf.socket(8765)
        sock.setblocking(True)
        sock.sendall(b"GET /index.html HTTP/1.0\r\nHost: web\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        sock.close()
        pf.close()
        if data.startswith(b"HTTP/1.0 200"):
            body = data.split(b"\r\n\r\n", 1)[1]
            break
        last = data
    except Exception as e:
        last = e
    time.sleep(0.5)
print("portforward:", repr(body.decode()), "" if body else repr(last))
"#;

/// The Python `kubernetes` client's `stream()` (exec, exec with stdin and exit codes) and
/// `portforward()` with an HTTP request through it, on the process runtime.
#[test]
fn python_client_stream_and_portforward() {
    let python = python();
    let env = TestEnv::new();
    let _up = up(&env, "process");
    env.apply(POD);
    env.apply(WEB_POD);
    wait_running(&env, "shell");
    wait_running(&env, "web");
    let o = Command::new(&python)
        .args(["-c", PYTHON_STREAMS])
        .arg(&env.kubeconfig)
        .output()
        .expect("run python");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "exec: from python hello\n\
         stdin: 'got ping\\n' 'bad\\n' 5\n\
         eof: 'one\\ntwo\\nend\\n' '' 0\n\
         portforward: 'served by the pod\\n' \n",
        "{}",
        text(&o.stderr)
    );
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
    let o = common::kubectl_with_input(
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
    let o = common::kubectl_with_input(
        &env,
        &bin,
        &["exec", "shell", "-c", "app", "--", "exit", "4"],
        b"",
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    // attach: one scripted line, then the session ends with success
    let o = common::kubectl_with_input(&env, &bin, &["attach", "shell", "-c", "app"], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "sim: attached to container app, which runs no process\n"
    );
    // port-forward: refused before the upgrade, 400 with the documented reason
    let no_network = "the sim runtime has no network";
    let o = common::kubectl_with_input(
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
    let o = common::kubectl_with_input(&env, &bin, &["port-forward", "pod/shell", ":8080"], b"");
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains(no_network), "{}", text(&o.stderr));
}
