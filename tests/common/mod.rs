//! Shared harness of the end-to-end tests: real `orch` processes, real `kubectl`, bounded waits.
//!
//! Every test gets its own temporary directory holding the data dir, the kubeconfig and a
//! kubectl discovery cache (`--cache-dir`), so tests never share state with each other or with
//! the user's `~/.kube`. Processes listen on ports probed free on 127.0.0.1 (or port 0 where the
//! component reports its address), are stopped gracefully (SIGINT) when dropped and killed if they
//! do not exit in time. Every wait is bounded and its panic message says what was awaited and
//! shows the last observation, plus the tail of each process's log.
//!
//! Not every test file uses every helper; hence the `dead_code` allowance below (each file is
//! its own crate that includes this module).
#![allow(dead_code)]

pub mod journey;

// A test CA, a serving certificate for 127.0.0.1 it signs and an HTTPS server of an axum router
// (webhook and aggregation tests); shared with orch-apiserver's unit tests.
#[path = "../../orch-apiserver/src/test_tls.rs"]
#[allow(clippy::duplicate_mod)]
pub mod tls;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `orch` binary built by cargo for these tests.
pub fn orch_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orch"))
}

/// The bundled kubectl of a minor version (`1.32`), or `None` when not installed.
pub fn bundled_kubectl(minor: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
        .ok()?;
    let target = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let p = target.parent()?.join(format!("kubectl.{minor}"));
    p.exists().then_some(p)
}

// A port on 127.0.0.1 that was free a moment ago, below the ephemeral range; shared with
// orch-apiserver's etcd test helper. Only for components that cannot report the port they
// bound; prefer `--listen 127.0.0.1:0`.
#[path = "../../orch-apiserver/tests/common/port.rs"]
#[allow(clippy::duplicate_mod)] // tests including both helpers load it twice
mod port;
pub use port::free_port;

/// A kubectl command of binary `bin` (a bundled version, see [`bundled_kubectl`]) with `env`'s
/// kubeconfig and cache dir.
pub fn kubectl_command(env: &TestEnv, bin: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .arg("--cache-dir")
        .arg(env.path().join("kube-cache"))
        .env_remove("KUBECONFIG");
    c
}

/// Runs `bin ARGS` ([`kubectl_command`]) with `input` on stdin; the raw output.
pub fn kubectl_with_input(env: &TestEnv, bin: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = kubectl_command(env, bin)
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

/// Polls `f` every 200 ms until it returns `Some`, at most `timeout`.
///
/// Panics naming `what` and the last `Err` observation when time runs out.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match f() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last observation: {last}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A minimal HTTP/1.0 GET on 127.0.0.1 as the user of `kubeconfig` (HTTPS verifying the
/// server against its CA and presenting its client certificate, or its bearer token, when its
/// server is `https://`), returning (status code, body). Only the kubeconfig reading and TLS
/// settings of the client crate are used, not its HTTP client.
pub fn http_get(kubeconfig: &Path, addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let ep = orch_apiserver::kubeconfig::read_endpoint(kubeconfig).map_err(|e| e.to_string())?;
    let Some(tls) = ep.tls_config().map_err(|e| e.to_string())? else {
        return http_get_plain(addr, path);
    };
    let (tcp, mut request) = connect(addr, path)?;
    if let Some(token) = &ep.token {
        request.insert_str(
            request.len() - 2,
            &format!("Authorization: Bearer {token}\r\n"),
        );
    }
    let name = rustls::pki_types::ServerName::from(addr.ip());
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(tls), name).map_err(|e| e.to_string())?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = String::new();
    read_to_end_lenient(&mut s, &mut buf)?;
    parse_answer(&buf)
}

/// A plain HTTP/1.0 GET (a pod's server, or plain HTTP sent to a TLS port).
pub fn http_get_plain(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let (mut s, request) = connect(addr, path)?;
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    parse_answer(&buf)
}

fn connect(addr: SocketAddr, path: &str) -> Result<(TcpStream, String), String> {
    let tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    Ok((tcp, request))
}

fn parse_answer(buf: &str) -> Result<(u16, String), String> {
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad HTTP answer: {buf:?}"))?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Reads until EOF; a TLS peer closing without close_notify after the answer is not an error.
fn read_to_end_lenient(s: &mut impl Read, buf: &mut String) -> Result<(), String> {
    let mut bytes = Vec::new();
    match s.read_to_end(&mut bytes) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !bytes.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    *buf = String::from_utf8_lossy(&bytes).into_owned();
    Ok(())
}

/// A running `orch` process; SIGINT on drop, SIGKILL if it has not exited 10 s later.
pub struct OrchProcess {
    /// A short name for messages (`up`, `kubelet-n1`, …).
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl OrchProcess {
    /// Spawns `orch ARGS…` with stdout and stderr appended to `dir/NAME.log`.
    pub fn spawn(name: &str, dir: &Path, args: &[&str]) -> Self {
        Self::spawn_command(name, dir, Command::new(orch_bin()), args)
    }

    /// Spawns `orch ARGS…` inside the network namespace `netns` (`ip netns exec NETNS orch
    /// ARGS…`: `ip` execs orch, so the process is orch itself); needs root.
    pub fn spawn_in_netns(name: &str, dir: &Path, netns: &str, args: &[&str]) -> Self {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", netns]).arg(orch_bin());
        Self::spawn_command(name, dir, c, args)
    }

    fn spawn_command(name: &str, dir: &Path, mut command: Command, args: &[&str]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open process log");
        let err = out.try_clone().expect("clone log handle");
        let child = command
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn orch {args:?}: {e}"));
        Self {
            name: name.into(),
            child: Some(child),
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Last `n` lines of the log (for failure messages).
    pub fn log_tail(&self, n: usize) -> String {
        let l = self.log();
        let lines: Vec<&str> = l.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// `None` while running, else the exit status.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits for the process to exit on its own (bounded); returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let name = self.name.clone();
        let st = wait_for(&format!("{name} to exit"), timeout, || {
            self.try_exit().ok_or_else(|| "still running".to_string())
        });
        self.child = None;
        st.code()
    }

    /// Sends a signal by name (`INT`, `TERM`, `STOP`, `CONT`, …) without waiting.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            send_signal(c.id(), sig);
        }
    }

    /// SIGINT (Ctrl-C) and wait up to `timeout` for a clean exit; returns the exit code.
    pub fn interrupt(&mut self, timeout: Duration) -> Option<i32> {
        self.signal("INT");
        self.wait_exit(timeout)
    }

    /// SIGKILL and reap (a crash, as far as the process can tell).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Panics with the log tail if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(st) = self.try_exit() {
            panic!(
                "{} exited early with {st}; log:\n{}",
                self.name,
                self.log_tail(60)
            );
        }
    }
}

impl Drop for OrchProcess {
    fn drop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        send_signal(c.id(), "INT");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// `kill -SIG PID` (the harness needs no signal crate and no unsafe code).
pub fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Prints the last lines of every `*.log` file in the given directories (the logs of the
/// processes a test started there) when dropped while the test panics, so that a failure shows
/// what the processes said. Declare it after the directories' owners, so it drops first.
pub struct LogsOnPanic(pub Vec<PathBuf>);

impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for dir in &self.0 {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            let mut logs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            logs.sort();
            for log in logs {
                let text = fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!(
                    "--- {} (last 40 lines) ---\n{}",
                    log.display(),
                    lines[lines.len().saturating_sub(40)..].join("\n")
                );
            }
        }
    }
}

/// A per-test directory with a kubeconfig location and a private kubectl cache.
pub struct TestEnv {
    /// The temporary directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The kubeconfig kubectl uses.
    pub kubeconfig: PathBuf,
}

impl TestEnv {
    /// A fresh directory; the kubeconfig path is `DIR/data/kubeconfig` (where `orch up` and
    /// `orch apiserver` write it for `--data-dir DIR/data`).
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("orch-e2e-")
            .tempdir()
            .expect("tempdir");
        let kubeconfig = dir.path().join("data").join("kubeconfig");
        Self { dir, kubeconfig }
    }

    /// The test directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The data dir (`DIR/data`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs kubectl with this test's kubeconfig and cache dir; returns the raw output.
    pub fn kubectl_raw(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .arg("--request-timeout=30s")
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd.output()
            .unwrap_or_else(|e| panic!("run kubectl {args:?}: {e} (is kubectl on PATH?)"))
    }

    /// Runs kubectl; `Ok(stdout)` on success, `Err(stderr)` otherwise.
    pub fn kubectl_try(&self, args: &[&str]) -> Result<String, String> {
        let o = self.kubectl_raw(args);
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {} failed ({}): {}{}",
                args.join(" "),
                o.status,
                String::from_utf8_lossy(&o.stderr),
                String::from_utf8_lossy(&o.stdout)
            ))
        }
    }

    /// Runs kubectl and panics with its stderr on failure.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_try(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `kubectl apply -f -` with the given manifest.
    pub fn apply(&self, yaml: &str) -> String {
        let path = self.dir.path().join(format!("manifest-{}.yaml", unique()));
        fs::write(&path, yaml).expect("write manifest");
        self.kubectl(&["apply", "-f", path.to_str().expect("utf-8 path")])
    }

    /// `kubectl get ARGS -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl_try(&a)?;
        serde_json::from_str(&out).map_err(|e| format!("bad JSON from kubectl: {e}: {out}"))
    }

    /// The items of `kubectl get ARGS -o json` (a list).
    pub fn get_items(&self, args: &[&str]) -> Result<Vec<serde_json::Value>, String> {
        let v = self.get_json(args)?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until `kubectl get ARGS` (a list) has exactly `n` items satisfying `pred`.
    pub fn wait_count(
        &self,
        what: &str,
        args: &[&str],
        n: usize,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        wait_for(what, timeout, || {
            let items = self.get_items(args)?;
            let ok: Vec<_> = items.iter().filter(|i| pred(i)).cloned().collect();
            if ok.len() == n {
                Ok(ok)
            } else {
                Err(format!(
                    "{} of {} match: {}",
                    ok.len(),
                    items.len(),
                    summarize(&items)
                ))
            }
        })
    }

    /// Waits for the API server behind the kubeconfig to answer `kubectl get --raw /readyz`.
    pub fn wait_api_ready(&self, timeout: Duration) {
        wait_for("the API server to be ready", timeout, || {
            if !self.kubeconfig.exists() {
                return Err(format!("{} not written yet", self.kubeconfig.display()));
            }
            self.kubectl_try(&["get", "--raw", "/readyz"]).map(|_| ())
        });
    }

    /// Waits until `n` nodes are Ready.
    pub fn wait_nodes_ready(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        self.wait_count("nodes to be Ready", &["nodes"], n, timeout, |node| {
            condition(node, "Ready") == Some("True")
        })
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        reap_strays(self.dir.path());
    }
}

/// Kills the process groups of container processes left behind under `dir`.
///
/// A kubelet process that is killed or stopped without stopping its pods (as a separate
/// `orch kubelet` is, so that it can re-attach) leaves its containers running. Each container
/// runs in its own process group under a shim whose command line names the container's state
/// dir, so every group whose member mentions `dir` belongs to this test.
pub fn reap_strays(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let own_group = pgid_of("self");
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    for e in procs.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmd).contains(&needle) {
            continue;
        }
        match pgid_of(&pid.to_string()) {
            // Never the test's own group (orch processes spawned by the harness share it).
            Some(g) if g > 1 && Some(g) != own_group => {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{g}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            _ => send_signal(pid, "KILL"),
        }
    }
}

/// Field 5 of `/proc/PID/stat` (after the parenthesised command): the process group.
fn pgid_of(pid: &str) -> Option<u32> {
    let st = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = st.get(st.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// `status.conditions[type=T].status` of an object.
pub fn condition<'a>(obj: &'a serde_json::Value, ty: &str) -> Option<&'a str> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)?["status"]
        .as_str()
}

/// `name phase node` per pod-like item, for failure messages.
pub fn summarize(items: &[serde_json::Value]) -> String {
    items
        .iter()
        .map(|i| {
            format!(
                "{}[{} {} ready={}]",
                i["metadata"]["name"].as_str().unwrap_or("?"),
                i["status"]["phase"].as_str().unwrap_or("-"),
                i["spec"]["nodeName"].as_str().unwrap_or("-"),
                condition(i, "Ready").unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Is the pod Running with condition Ready=True?
pub fn pod_ready(p: &serde_json::Value) -> bool {
    p["status"]["phase"] == "Running" && condition(p, "Ready") == Some("True")
}

/// A process-wide unique counter (file names).
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// An all-in-one `orch up` cluster on the test's data dir.
pub struct Up {
    /// The `orch up` process.
    pub proc: OrchProcess,
    /// The API address.
    pub addr: SocketAddr,
}

impl Up {
    /// Starts `orch up --data-dir DIR/data --listen 127.0.0.1:PORT --nodes N --runtime R
    /// EXTRA…` and waits until the API answers and `nodes` nodes are Ready.
    pub fn start(env: &TestEnv, nodes: usize, runtime: &str, extra: &[&str]) -> Self {
        Self::start_on(env, free_port(), nodes, runtime, extra)
    }

    /// As [`Up::start`] on a given port (restarts reuse the same address).
    pub fn start_on(env: &TestEnv, port: u16, nodes: usize, runtime: &str, extra: &[&str]) -> Self {
        let data = env.data_dir();
        let listen = format!("127.0.0.1:{port}");
        let n = nodes.to_string();
        let mut args = vec![
            "up",
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--listen",
            &listen,
            "--nodes",
            &n,
            "--runtime",
            runtime,
        ];
        args.extend_from_slice(extra);
        let mut proc = OrchProcess::spawn("up", env.path(), &args);
        let addr: SocketAddr = listen.parse().expect("addr");
        wait_for("orch up to serve /readyz", Duration::from_secs(60), || {
            proc.assert_running();
            match http_get(&env.kubeconfig, addr, "/readyz") {
                Ok((200, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
        env.wait_api_ready(Duration::from_secs(30));
        env.wait_nodes_ready(nodes, Duration::from_secs(60));
        Self { proc, addr }
    }
}

/// A cluster whose components run as separate `orch` processes talking HTTP.
pub struct Split {
    /// `orch apiserver`, `orch scheduler`, `orch controller-manager`, then the kubelets.
    pub procs: Vec<OrchProcess>,
    /// The API address.
    pub addr: SocketAddr,
    /// The cluster CIDR claimed for the controller manager (released on drop).
    cidr_claim: Option<orch_kubelet::runtime::process::claim::ClusterCidrClaim>,
}

impl Split {
    /// Starts `orch apiserver` on the test's data dir and waits until it is ready.
    pub fn apiserver(env: &TestEnv) -> Self {
        Self::apiserver_with(env, "apiserver", &[])
    }

    /// Starts `orch apiserver --listen … --data-dir … EXTRA…` (e.g. `--storage etcd …`) as the
    /// process `name` and waits until it is ready.
    pub fn apiserver_with(env: &TestEnv, name: &str, extra: &[&str]) -> Self {
        Self::apiserver_on(env, name, &format!("127.0.0.1:{}", free_port()), extra)
    }

    /// As [`Split::apiserver_with`] listening on `listen` (an address of the test's own, e.g.
    /// on a veth pair it made).
    pub fn apiserver_on(env: &TestEnv, name: &str, listen: &str, extra: &[&str]) -> Self {
        let data = env.data_dir();
        let mut args = vec![
            "apiserver",
            "--listen",
            listen,
            "--data-dir",
            data.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        let mut api = OrchProcess::spawn(name, env.path(), &args);
        let addr: SocketAddr = listen.parse().expect("addr");
        wait_for(
            "orch apiserver to serve /readyz",
            Duration::from_secs(60),
            || {
                api.assert_running();
                match http_get(&env.kubeconfig, addr, "/readyz") {
                    Ok((200, _)) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        );
        env.wait_api_ready(Duration::from_secs(30));
        Self {
            procs: vec![api],
            addr,
            cidr_claim: None,
        }
    }

    /// Starts another component: `orch SUBCOMMAND --kubeconfig K ARGS…`. `orch
    /// controller-manager` without `--cluster-cidr` gets a range no other cluster on this host
    /// uses, claimed as `orch up` claims one (`claim_cluster_cidr`): with its default
    /// 10.244.0.0/16, a node's podCIDR could be the one another cluster's bridge routes (an
    /// `orch up` beside the test), and that kubelet refuses to create any pod's sandbox.
    pub fn component(&mut self, env: &TestEnv, name: &str, subcommand: &str, args: &[&str]) {
        let kc = env.kubeconfig.to_str().expect("utf-8 path").to_string();
        let mut all = vec![subcommand, "--kubeconfig", &kc];
        all.extend_from_slice(args);
        let cidr;
        if subcommand == "controller-manager" && !args.contains(&"--cluster-cidr") {
            let claim = orch_kubelet::runtime::process::claim::claim_cluster_cidr(&env.data_dir());
            cidr = claim.cidr().to_string();
            all.extend(["--cluster-cidr", &cidr]);
            self.cidr_claim = Some(claim);
        }
        self.procs.push(OrchProcess::spawn(name, env.path(), &all));
    }

    /// Starts `orch kubelet` for `node` with the process runtime, root dir `DIR/NODE`; when the
    /// API server has a PKI (HTTPS), the kubelet serves HTTPS with a certificate for 127.0.0.1
    /// the cluster CA signs (`DATA_DIR/pki/kubelet-NODE.crt`).
    pub fn kubelet(&mut self, env: &TestEnv, node: &str) {
        let root = env.path().join(node);
        let root = root.to_str().expect("utf-8 path").to_string();
        let mut args: Vec<String> = [
            "--node-name",
            node,
            "--runtime",
            "process",
            "--root-dir",
            &root,
            "--port",
            "0",
        ]
        .map(String::from)
        .to_vec();
        let pki_dir = env.data_dir().join("pki");
        if pki_dir.join("ca.key").exists() {
            let pki = orch_apiserver::pki::Pki::load_or_create(
                &orch_apiserver::pki::PkiOptions::new(&pki_dir),
            )
            .expect("the cluster PKI");
            pki.kubelet_serving(node, &["127.0.0.1".to_string()])
                .expect("kubelet serving certificate");
            let file = |f: String| pki_dir.join(f).to_str().expect("utf-8 path").to_string();
            args.extend([
                "--tls-cert-file".to_string(),
                file(format!("kubelet-{node}.crt")),
                "--tls-private-key-file".to_string(),
                file(format!("kubelet-{node}.key")),
                "--client-ca-file".to_string(),
                file("ca.crt".to_string()),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.component(env, &format!("kubelet-{node}"), "kubelet", &args);
    }

    /// The process named `name`.
    pub fn proc(&mut self, name: &str) -> &mut OrchProcess {
        self.procs
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// Removes (and thereby stops) the process named `name`, returning it.
    pub fn take(&mut self, name: &str) -> OrchProcess {
        let i = self
            .procs
            .iter()
            .position(|p| p.name == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        self.procs.remove(i)
    }

    /// Log tails of every process (for failure messages).
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.name, p.log_tail(30)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Split {
    fn drop(&mut self) {
        // Kubelets first (they terminate their pods while the API is still there), the API
        // server last.
        while let Some(p) = self.procs.pop() {
            drop(p);
        }
    }
}
