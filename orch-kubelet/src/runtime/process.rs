//! The `process` runtime: every container is a real host process in its own process group.
//!
//! Layout under `<root-dir>/containers/<id>/`: `state.json` (what was started, pid, process
//! start time, exit), `stdout`/`stderr` (what the process writes, directly, so it survives a
//! kubelet restart), `exit` (written by a tiny `sh` shim that waits for the command, so the exit
//! code survives a kubelet restart too) and `container.log` (CRI log format, one
//! `<RFC3339Nano> <stream> F <line>` per line, filled by [`ContainerRuntime::housekeeping`],
//! rotated to `container.log.1` past `log_max_bytes`).
//!
//! A restarted kubelet calls [`ProcessRuntime::open`] on the same root dir: it re-attaches to
//! every container whose process is still alive (pid plus `/proc` start time, so a reused pid
//! is not mistaken for ours), and the pod workers adopt them, so nothing is started twice; an
//! exited container's code is read from its `exit` file. Pods use host networking: the pod IP
//! is the node IP and a pod whose host ports collide with another pod's (or a port in use on
//! the host) is refused. Network namespaces and cgroup limits are not implemented.
//!
//! Known limit: raw output files are truncated once fully collected and larger than 1 MiB; a
//! line written between the last read and the truncation can be lost.

use super::*;
use crate::image::{ImageSource, LocalCatalog};
use crate::prober;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

/// `PATH` given to containers that do not set one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Waits for the command and records its exit code; `trap` keeps the shim alive on SIGTERM
/// (the command, in the same process group, receives it too) so the code is still written.
const SHIM: &str =
    r#"f="$1"; shift; trap 'true' TERM INT; "$@"; c=$?; echo "$c" > "$f"; exit "$c""#;

/// Settings of the process runtime.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// Root dir (`--root-dir`).
    pub root_dir: PathBuf,
    /// The node IP, used as the pod IP (host networking).
    pub host_ip: String,
    /// Rotate `container.log` past this size.
    pub log_max_bytes: u64,
}

impl ProcessConfig {
    /// Defaults: 10 MiB logs, 127.0.0.1.
    pub fn new(root_dir: impl Into<PathBuf>) -> Self {
        Self {
            root_dir: root_dir.into(),
            host_ip: "127.0.0.1".into(),
            log_max_bytes: 10 << 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Finished {
    at: Timestamp,
    exit_code: i32,
    unknown: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateFile {
    id: String,
    pod_uid: String,
    name: String,
    attempt: i32,
    image: String,
    pid: i32,
    proc_start: Option<u64>,
    started_at: Timestamp,
    env: Vec<(String, String)>,
    working_dir: Option<String>,
    killed: bool,
    finished: Option<Finished>,
    offsets: [u64; 2],
}

#[derive(Debug)]
struct Proc {
    st: StateFile,
    child: Option<Child>,
    partial: [Vec<u8>; 2],
    flushed: bool,
}

#[derive(Debug, Default)]
struct Inner {
    procs: HashMap<ContainerId, Proc>,
    sandboxes: HashMap<String, SandboxConfig>,
    pulled: BTreeSet<String>,
}

/// The process runtime.
#[derive(Debug, Clone)]
pub struct ProcessRuntime {
    cfg: ProcessConfig,
    images: Arc<dyn ImageSource>,
    inner: Arc<Mutex<Inner>>,
}

fn io(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Io(e.to_string())
}

/// Field 22 of `/proc/<pid>/stat`: the process start time in clock ticks since boot.
fn proc_start(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// A zombie has exited; only its parent has not reaped it yet.
fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

const STREAMS: [&str; 2] = ["stdout", "stderr"];

impl ProcessRuntime {
    /// Opens (or creates) the runtime state under `cfg.root_dir`, re-attaching to containers a
    /// previous kubelet left. Images come from `<root-dir>/images.yaml`.
    pub fn open(cfg: ProcessConfig) -> Result<Self, RuntimeError> {
        let catalog = LocalCatalog::load(&cfg.root_dir.join("images.yaml")).map_err(io)?;
        Self::with_images(cfg, Arc::new(catalog))
    }

    /// Like [`open`](Self::open) with another image source.
    pub fn with_images(
        cfg: ProcessConfig,
        images: Arc<dyn ImageSource>,
    ) -> Result<Self, RuntimeError> {
        fs::create_dir_all(cfg.root_dir.join("containers")).map_err(io)?;
        fs::create_dir_all(cfg.root_dir.join("sandboxes")).map_err(io)?;
        let mut inner = Inner::default();
        for e in fs::read_dir(cfg.root_dir.join("containers"))
            .map_err(io)?
            .flatten()
        {
            let Ok(text) = fs::read_to_string(e.path().join("state.json")) else {
                continue;
            };
            let Ok(st) = serde_json::from_str::<StateFile>(&text) else {
                tracing::warn!(path = %e.path().display(), "ignoring unreadable container state");
                continue;
            };
            inner.pulled.insert(st.image.clone());
            inner.procs.insert(
                st.id.clone(),
                Proc {
                    st,
                    child: None,
                    partial: [vec![], vec![]],
                    flushed: false,
                },
            );
        }
        for e in fs::read_dir(cfg.root_dir.join("sandboxes"))
            .map_err(io)?
            .flatten()
        {
            let Ok(text) = fs::read_to_string(e.path()) else {
                continue;
            };
            if let Ok(s) = serde_json::from_str::<SandboxFile>(&text) {
                inner.sandboxes.insert(s.pod_uid.clone(), s.into());
            }
        }
        Ok(Self {
            cfg,
            images,
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.cfg.root_dir.join("containers").join(id)
    }

    fn save(&self, st: &StateFile) {
        let path = self.dir(&st.id).join("state.json");
        let tmp = path.with_extension("tmp");
        let ok = serde_json::to_vec(st)
            .ok()
            .and_then(|b| fs::write(&tmp, b).ok())
            .and_then(|_| fs::rename(&tmp, &path).ok());
        if ok.is_none() {
            tracing::warn!(container = %st.id, "cannot save container state");
        }
    }

    /// Moves new output into `container.log` (CRI format), rotating it when too big.
    fn collect(&self, p: &mut Proc) {
        let dir = self.dir(&p.st.id);
        let now = Timestamp::now();
        let mut out = Vec::new();
        let mut changed = false;
        for (k, stream) in STREAMS.iter().enumerate() {
            let Ok(mut f) = File::open(dir.join(stream)) else {
                continue;
            };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < p.st.offsets[k] {
                p.st.offsets[k] = 0; // truncated underneath us
            }
            if len == p.st.offsets[k] && (p.st.finished.is_none() || p.partial[k].is_empty()) {
                continue;
            }
            if f.seek(SeekFrom::Start(p.st.offsets[k])).is_err() {
                continue;
            }
            let mut buf = vec![];
            let n = f.take(4 << 20).read_to_end(&mut buf).unwrap_or(0);
            p.st.offsets[k] += n as u64;
            changed |= n > 0;
            p.partial[k].extend_from_slice(&buf);
            while let Some(i) = p.partial[k].iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = p.partial[k].drain(..=i).collect();
                out.extend_from_slice(format!("{now} {stream} F ").as_bytes());
                out.extend_from_slice(&line);
            }
            if p.st.finished.is_some() && !p.partial[k].is_empty() {
                out.extend_from_slice(format!("{now} {stream} F ").as_bytes());
                out.append(&mut p.partial[k]);
                out.push(b'\n');
            }
            if p.st.offsets[k] == len && len > (1 << 20) && p.partial[k].is_empty() {
                if let Ok(f) = OpenOptions::new().write(true).open(dir.join(stream)) {
                    let _ = f.set_len(0);
                    p.st.offsets[k] = 0;
                }
            }
        }
        if !out.is_empty() {
            let log = dir.join("container.log");
            if fs::metadata(&log).map(|m| m.len()).unwrap_or(0) + out.len() as u64
                > self.cfg.log_max_bytes
            {
                let _ = fs::rename(&log, dir.join("container.log.1"));
            }
            match OpenOptions::new().create(true).append(true).open(&log) {
                Ok(mut f) => {
                    let _ = f.write_all(&out);
                }
                Err(e) => tracing::warn!(error = %e, "cannot write container log"),
            }
        }
        if changed {
            self.save(&p.st);
        }
    }

    /// Checks whether the process exited; records the exit (and kills leftovers of its group).
    fn poll(&self, p: &mut Proc, now: Timestamp) {
        if p.st.finished.is_some() {
            return;
        }
        let status = match &mut p.child {
            Some(c) => match c.try_wait() {
                Ok(Some(s)) => Some(Some(s)),
                Ok(None) => None,
                Err(_) => Some(None),
            },
            None => {
                let alive = kill(Pid::from_raw(p.st.pid), None).is_ok()
                    && proc_start(p.st.pid) == p.st.proc_start
                    && !is_zombie(p.st.pid);
                if alive {
                    None
                } else {
                    Some(None)
                }
            }
        };
        let Some(status) = status else { return };
        // no orphans: whatever else is left in the group goes too
        let _ = killpg(Pid::from_raw(p.st.pid), Signal::SIGKILL);
        let exit_file = self.dir(&p.st.id).join("exit");
        let from_file = fs::read_to_string(&exit_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let at = fs::metadata(&exit_file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| Timestamp::try_from(t).ok())
            .filter(|_| from_file.is_some())
            .unwrap_or(now);
        let (exit_code, unknown) = match (from_file, status) {
            (Some(c), _) => (c, false),
            (None, Some(s)) => (
                s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)),
                false,
            ),
            (None, None) => (137, !p.st.killed),
        };
        p.st.finished = Some(Finished {
            at,
            exit_code,
            unknown,
        });
        p.child = None;
        self.collect(p);
        p.flushed = true;
        self.save(&p.st);
    }

    fn state_of(st: &StateFile) -> ContainerState {
        match &st.finished {
            None => ContainerState::Running {
                started_at: st.started_at,
            },
            Some(f) => ContainerState::Exited {
                started_at: st.started_at,
                finished_at: f.at,
                exit_code: f.exit_code,
                signal: (f.exit_code > 128).then_some(f.exit_code - 128),
                reason: if f.unknown {
                    ExitReason::Unknown
                } else if f.exit_code == 0 {
                    ExitReason::Completed
                } else {
                    ExitReason::Error
                },
            },
        }
    }

    fn argv(&self, cfg: &ContainerConfig) -> Result<Launch, RuntimeError> {
        let spec = self.images.resolve(&cfg.image);
        let argv: Vec<String> = match (&spec, cfg.command.is_empty(), cfg.args.is_empty()) {
            (_, false, _) => cfg.command.iter().chain(cfg.args.iter()).cloned().collect(),
            (Some(s), true, false) => s
                .entrypoint
                .iter()
                .chain(cfg.args.iter())
                .cloned()
                .collect(),
            (Some(s), true, true) => s.entrypoint.iter().chain(s.args.iter()).cloned().collect(),
            (None, true, _) => cfg.args.clone(),
        };
        if argv.is_empty() {
            return Err(RuntimeError::Start(format!(
                "image \"{}\" is not in the local image catalog and the container has no command",
                cfg.image
            )));
        }
        let mut env: Vec<(String, String)> = spec
            .as_ref()
            .map(|s| s.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for (k, v) in &cfg.env {
            env.retain(|(n, _)| n != k);
            env.push((k.clone(), v.clone()));
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        if !env.iter().any(|(k, _)| k == "HOSTNAME") {
            env.push(("HOSTNAME".into(), cfg.pod_name.clone()));
        }
        let wd = cfg
            .working_dir
            .clone()
            .or_else(|| spec.and_then(|s| s.working_dir));
        Ok((argv, env, wd))
    }
}

/// argv, environment and working directory of a container process.
type Launch = (Vec<String>, Vec<(String, String)>, Option<String>);

#[derive(Debug, Serialize, Deserialize)]
struct SandboxFile {
    pod_uid: String,
    namespace: String,
    name: String,
    host_ports: Vec<(i32, String)>,
}

impl From<SandboxFile> for SandboxConfig {
    fn from(s: SandboxFile) -> Self {
        SandboxConfig {
            pod_uid: s.pod_uid,
            namespace: s.namespace,
            name: s.name,
            host_network: true,
            host_ports: s.host_ports,
        }
    }
}

impl ContainerRuntime for ProcessRuntime {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            name: "process".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn image_status(&self, image: &str) -> Option<ImageInfo> {
        self.inner.lock().pulled.contains(image).then(|| ImageInfo {
            reference: image.into(),
            id: format!("process://{image}"),
            size_bytes: 0,
        })
    }

    fn pull_image(&self, image: &str, ctx: &PullContext, _now: Timestamp) -> PullOutcome {
        match self.images.pull(image, &ctx.secrets) {
            Ok(()) => {
                self.inner.lock().pulled.insert(image.into());
                PullOutcome::Ready(ImageInfo {
                    reference: image.into(),
                    id: format!("process://{image}"),
                    size_bytes: 0,
                })
            }
            Err(e) => PullOutcome::Failed(e),
        }
    }

    fn list_images(&self) -> Vec<ImageInfo> {
        let pulled: Vec<String> = self.inner.lock().pulled.iter().cloned().collect();
        pulled.iter().filter_map(|i| self.image_status(i)).collect()
    }

    fn run_sandbox(&self, cfg: &SandboxConfig) -> Result<SandboxInfo, RuntimeError> {
        let ip = self.cfg.host_ip.clone();
        let mut inner = self.inner.lock();
        if inner.sandboxes.contains_key(&cfg.pod_uid) {
            return Ok(SandboxInfo { ip });
        }
        for (port, proto) in &cfg.host_ports {
            for other in inner.sandboxes.values() {
                if other
                    .host_ports
                    .iter()
                    .any(|(p, pr)| p == port && pr == proto)
                {
                    return Err(RuntimeError::Sandbox(format!(
                        "host port {port}/{proto} is already used by pod {}/{}",
                        other.namespace, other.name
                    )));
                }
            }
            let free = match proto.as_str() {
                "UDP" => std::net::UdpSocket::bind(("0.0.0.0", *port as u16)).is_ok(),
                _ => std::net::TcpListener::bind(("0.0.0.0", *port as u16)).is_ok(),
            };
            if !free {
                return Err(RuntimeError::Sandbox(format!(
                    "host port {port}/{proto} is already in use on the node"
                )));
            }
        }
        let file = SandboxFile {
            pod_uid: cfg.pod_uid.clone(),
            namespace: cfg.namespace.clone(),
            name: cfg.name.clone(),
            host_ports: cfg.host_ports.clone(),
        };
        let path = self
            .cfg
            .root_dir
            .join("sandboxes")
            .join(format!("{}.json", cfg.pod_uid));
        fs::write(&path, serde_json::to_vec(&file).map_err(io)?).map_err(io)?;
        inner.sandboxes.insert(cfg.pod_uid.clone(), cfg.clone());
        Ok(SandboxInfo { ip })
    }

    fn remove_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        self.inner.lock().sandboxes.remove(pod_uid);
        let path = self
            .cfg
            .root_dir
            .join("sandboxes")
            .join(format!("{pod_uid}.json"));
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }

    fn start_container(
        &self,
        cfg: &ContainerConfig,
        now: Timestamp,
    ) -> Result<ContainerId, RuntimeError> {
        let (argv, env, wd) = self.argv(cfg)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.dir(&id);
        fs::create_dir_all(&dir).map_err(io)?;
        let open = |n: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(n))
                .map_err(io)
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(SHIM)
            .arg("orch-shim")
            .arg(dir.join("exit"))
            .args(&argv)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(open("stdout")?))
            .stderr(Stdio::from(open("stderr")?))
            .process_group(0);
        match &wd {
            Some(d) if Path::new(d).is_dir() => {
                cmd.current_dir(d);
            }
            Some(d) => {
                return Err(RuntimeError::Start(format!(
                    "working directory {d} does not exist"
                )))
            }
            None => {
                cmd.current_dir(&dir);
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        let pid = child.id() as i32;
        let st = StateFile {
            id: id.clone(),
            pod_uid: cfg.pod_uid.clone(),
            name: cfg.name.clone(),
            attempt: cfg.attempt,
            image: cfg.image.clone(),
            pid,
            proc_start: proc_start(pid),
            started_at: now,
            env,
            working_dir: wd,
            killed: false,
            finished: None,
            offsets: [0, 0],
        };
        self.save(&st);
        self.inner.lock().procs.insert(
            id.clone(),
            Proc {
                st,
                child: Some(child),
                partial: [vec![], vec![]],
                flushed: false,
            },
        );
        Ok(id)
    }

    fn container_state(&self, id: &str, now: Timestamp) -> Option<ContainerState> {
        let mut inner = self.inner.lock();
        let p = inner.procs.get_mut(id)?;
        self.poll(p, now);
        Some(Self::state_of(&p.st))
    }

    fn stop_container(
        &self,
        id: &str,
        signal: StopSignal,
        now: Timestamp,
    ) -> Result<(), RuntimeError> {
        let mut inner = self.inner.lock();
        let p = inner
            .procs
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        self.poll(p, now);
        if p.st.finished.is_some() {
            return Ok(());
        }
        let sig = match signal {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Kill => {
                p.st.killed = true;
                self.save(&p.st);
                Signal::SIGKILL
            }
        };
        match killpg(Pid::from_raw(p.st.pid), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(io(e)),
        }
        if signal == StopSignal::Kill {
            // give the kernel a moment so the exit is visible right away
            for _ in 0..50 {
                self.poll(p, now);
                if p.st.finished.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(())
    }

    fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.lock().procs.remove(id);
        match fs::remove_dir_all(self.dir(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }

    fn list_containers(&self) -> Vec<ContainerRecord> {
        self.inner
            .lock()
            .procs
            .values()
            .map(|p| ContainerRecord {
                id: p.st.id.clone(),
                pod_uid: p.st.pod_uid.clone(),
                name: p.st.name.clone(),
                attempt: p.st.attempt,
                image: p.st.image.clone(),
            })
            .collect()
    }

    fn run_handler(
        &self,
        id: &str,
        _kind: HandlerKind,
        action: &HandlerAction,
        target: &HandlerTarget,
        timeout: Duration,
        _now: Timestamp,
    ) -> HandlerOutcome {
        match action {
            HandlerAction::Exec(e) => {
                let (env, wd) = {
                    let inner = self.inner.lock();
                    match inner.procs.get(id) {
                        Some(p) => (
                            p.st.env.clone(),
                            p.st.working_dir
                                .clone()
                                .map(PathBuf::from)
                                .unwrap_or_else(|| self.dir(id)),
                        ),
                        None => {
                            return HandlerOutcome::Failure(format!("container {id} not found"))
                        }
                    }
                };
                let argv = e.command.clone().unwrap_or_default();
                match prober::exec_with_timeout(&argv, &env, Some(&wd), timeout) {
                    Ok((Some(0), _)) => HandlerOutcome::Success,
                    // upstream exec prober: the failure message is the command's output
                    Ok((Some(_), out)) => HandlerOutcome::Failure(out),
                    Ok((None, _)) => HandlerOutcome::Failure(format!(
                        "command {argv:?} timed out after {}s",
                        timeout.as_secs()
                    )),
                    Err(e) => HandlerOutcome::Failure(e),
                }
            }
            other => prober::run_network(other, target, timeout),
        }
    }

    fn log_path(&self, id: &str) -> Option<PathBuf> {
        let p = self.dir(id).join("container.log");
        Some(p)
    }

    fn housekeeping(&self) {
        let mut inner = self.inner.lock();
        let ids: Vec<String> = inner.procs.keys().cloned().collect();
        for id in ids {
            if let Some(p) = inner.procs.get_mut(&id) {
                if !p.flushed {
                    self.collect(p);
                }
            }
        }
    }
}
