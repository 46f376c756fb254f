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
//! exited container's code is read from its `exit` file.
//!
//! Pod sandboxes ([`PodNetwork`], chosen once at [`open`](ProcessRuntime::open)):
//! - `netns` (the default when running as root and `ip netns add` works): each pod gets its own
//!   network namespace on the node bridge with an IP from the node's `spec.podCIDR`
//!   ([`netns`], [`ipam`]); its containers share `localhost`; exec probes and hooks run inside
//!   it; host ports are forwarded to the pod IP ([`hostport`]). Sandboxes are recorded under
//!   `<root-dir>/sandboxes/`, so a restarted kubelet finds the same namespace and IP.
//! - `host`: the pod IP is the node IP and a pod whose host ports collide with another pod's
//!   (or a port in use on the host) is refused. `spec.hostNetwork` pods always run like this.
//!
//! Where cgroups can be managed (root, v1 or v2), pods and containers get cgroups with their
//! CPU shares/quota and memory limit ([`cgroup`]); a container killed by the kernel's OOM
//! killer is reported as `OOMKilled` (exit code 137).
//!
//! A container with volume mounts (claim-backed volumes, [`crate::volume`]) runs in a mount
//! namespace of its own with each node directory bind-mounted at its mount path ([`mounts`]).
//!
//! Known limit: raw output files are truncated once fully collected and larger than 1 MiB; a
//! line written between the last read and the truncation can be lost.

pub mod cgroup;
pub mod claim;
pub mod hostport;
pub mod ipam;
pub mod mounts;
pub mod netns;
pub mod stream;

use super::*;
use crate::image::{ImageSource, LocalCatalog};
use crate::prober;
use cgroup::{Cgroups, Limits};
use hostport::{Forward, Mapping};
use ipam::{Cidr, Ipam};
use netns::{Network, PodNet};
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

/// Joins the cgroups given as `N file…` (its own PID into each `cgroup.procs`, so whatever the
/// command forks is inside the limit), then waits for the command and records its exit code;
/// `trap` keeps the shim alive on SIGTERM (the command, in the same process group, receives it
/// too) so the code is still written.
const SHIM: &str = r#"f="$1"; shift; n="$1"; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; trap 'true' TERM INT; "$@"; c=$?; echo "$c" > "$f"; exit "$c""#;

/// How pods are networked (`--pod-network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodNetwork {
    /// `netns` when running as root and `ip netns add` works, else `host`.
    #[default]
    Auto,
    /// Host networking: pod IP = node IP, host ports must not collide.
    Host,
    /// A network namespace per pod on the node bridge (fails to start without root/`ip`).
    Netns,
}

impl std::fmt::Display for PodNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Host => "host",
            Self::Netns => "netns",
        })
    }
}

impl std::str::FromStr for PodNetwork {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "host" => Ok(Self::Host),
            "netns" => Ok(Self::Netns),
            _ => Err(format!("invalid pod network {s:?} (auto, host or netns)")),
        }
    }
}

/// Settings of the process runtime.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// Root dir (`--root-dir`).
    pub root_dir: PathBuf,
    /// The node IP, used as the pod IP with host networking.
    pub host_ip: String,
    /// Rotate `container.log` past this size.
    pub log_max_bytes: u64,
    /// Pod networking (`--pod-network`).
    pub pod_network: PodNetwork,
    /// The node's pod CIDR when known up front (`--pod-cidr`, standalone kubelets); otherwise
    /// the kubelet passes `spec.podCIDR` through [`ContainerRuntime::update_pod_cidr`].
    pub pod_cidr: Option<String>,
    /// Manage cgroups (CPU/memory limits) when possible.
    pub cgroups: bool,
}

impl ProcessConfig {
    /// Defaults: 10 MiB logs, 127.0.0.1, automatic pod network, cgroups when possible.
    pub fn new(root_dir: impl Into<PathBuf>) -> Self {
        Self {
            root_dir: root_dir.into(),
            host_ip: "127.0.0.1".into(),
            log_max_bytes: 10 << 20,
            pod_network: PodNetwork::Auto,
            pod_cidr: None,
            cgroups: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Finished {
    at: Timestamp,
    exit_code: i32,
    unknown: bool,
    #[serde(default)]
    oom: bool,
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
    /// The container's cgroup dirs (one per hierarchy), empty without cgroups.
    #[serde(default)]
    cgroups: Vec<PathBuf>,
    /// `ip netns exec <ns>` when the pod has a network namespace.
    #[serde(default)]
    exec_prefix: Vec<String>,
    /// `stdinOnce`: the first attach that closes stdin closes it for good.
    #[serde(default)]
    stdin_once: bool,
}

#[derive(Debug)]
struct Proc {
    st: StateFile,
    child: Option<Child>,
    partial: [Vec<u8>; 2],
    flushed: bool,
    /// The write end of the stdin FIFO of a container with `stdin: true` ([`stream`]).
    stdin: Option<File>,
}

#[derive(Debug, Default)]
struct Inner {
    procs: HashMap<ContainerId, Proc>,
    sandboxes: HashMap<String, Sandbox>,
    /// Held host ports (proxies) per pod.
    forwards: HashMap<String, Vec<Forward>>,
    /// Sandboxes being created or torn down outside the lock (the bridge stays while any is).
    creating: usize,
    pulled: BTreeSet<String>,
    pod_cidr: Option<Cidr>,
    /// The last CPU-time sample of each container (nanoseconds, when), for usage rates.
    cpu_samples: HashMap<ContainerId, (u64, Timestamp)>,
}

/// The process runtime.
#[derive(Debug, Clone)]
pub struct ProcessRuntime {
    cfg: ProcessConfig,
    images: Arc<dyn ImageSource>,
    inner: Arc<Mutex<Inner>>,
    net: Option<Arc<Network>>,
    cgroups: Option<Arc<Cgroups>>,
    ipam: Ipam,
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

/// True if the effective UID is 0 (the `Uid:` line of `/proc/self/status`: real, effective, …).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A zombie has exited; only its parent has not reaped it yet.
fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

/// `USER_HZ`, the unit of the times in `/proc/<pid>/stat`: fixed at 100 for user space on Linux
/// (`man 5 proc`, `sysconf(_SC_CLK_TCK)`).
const USER_HZ: u64 = 100;

/// CPU time (ns) and resident memory (bytes) of a container from its cgroup (v2
/// `cpu.stat usage_usec` and `memory.current`), when it has one that reports them.
fn cgroup_usage(dirs: &[std::path::PathBuf]) -> Option<(u64, u64)> {
    let dir = dirs.iter().find(|d| d.join("cpu.stat").is_file())?;
    let usec: u64 = fs::read_to_string(dir.join("cpu.stat"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))?
        .trim()
        .parse()
        .ok()?;
    let mem: u64 = fs::read_to_string(dir.join("memory.current"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some((usec * 1_000, mem))
}

/// CPU time (ns, user + system) and resident memory (bytes, `VmRSS`) of every process of the
/// process group `pgid` (field 5 of `/proc/<pid>/stat`): a container without a cgroup.
fn group_usage(pgid: i32) -> Option<(u64, u64)> {
    let (mut ticks, mut rss, mut found) = (0u64, 0u64, false);
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(i) = stat.rfind(')') else {
            continue;
        };
        // After the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime stime …
        let f: Vec<&str> = stat[i + 2..].split_whitespace().collect();
        if f.get(2).and_then(|g| g.parse::<i32>().ok()) != Some(pgid) {
            continue;
        }
        found = true;
        let num = |k: usize| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        ticks += num(11) + num(12);
        rss += fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024;
    }
    found.then(|| (ticks * (1_000_000_000 / USER_HZ), rss))
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
        let net = match cfg.pod_network {
            PodNetwork::Host => None,
            PodNetwork::Netns => Some(Arc::new(Network::detect(&cfg.root_dir).map_err(|e| {
                RuntimeError::Io(format!("--pod-network netns is not possible here: {e}"))
            })?)),
            PodNetwork::Auto => match Network::detect(&cfg.root_dir) {
                Ok(n) => Some(Arc::new(n)),
                Err(e) => {
                    tracing::info!(reason = %e, "pods use host networking (no per-pod network namespaces)");
                    None
                }
            },
        };
        let abs = fs::canonicalize(&cfg.root_dir).unwrap_or_else(|_| cfg.root_dir.clone());
        let node_id = format!("orch{}", netns::short_hash(&abs.to_string_lossy()));
        let cgroups = if cfg.cgroups {
            match Cgroups::detect(&node_id) {
                Ok(c) => {
                    tracing::info!(version = c.version(), "cgroup limits enabled");
                    Some(Arc::new(c))
                }
                Err(e) => {
                    tracing::info!(reason = %e, "no cgroup limits (CPU/memory limits are not enforced)");
                    None
                }
            }
        } else {
            None
        };
        let mut inner = Inner::default();
        if let Some(c) = &cfg.pod_cidr {
            inner.pod_cidr = Some(c.parse()?);
        }
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
                    stdin: None, // reopened by the first attach
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
            if let Ok(s) = serde_json::from_str::<Sandbox>(&text) {
                if let Some(pn) = &s.net {
                    // the kubelet restarted: hold the host ports again
                    let fw: Vec<Forward> = s
                        .mappings
                        .iter()
                        .filter_map(|m| match hostport::forward(m, pn.ip) {
                            Ok(f) => Some(f),
                            Err(e) => {
                                tracing::warn!(error = %e, port = m.host_port, "cannot forward host port again");
                                None
                            }
                        })
                        .collect();
                    inner.forwards.insert(s.pod_uid.clone(), fw);
                }
                inner.sandboxes.insert(s.pod_uid.clone(), s);
            }
        }
        let ipam = Ipam::new(cfg.root_dir.join("network").join("ips"));
        Ok(Self {
            cfg,
            images,
            inner: Arc::new(Mutex::new(inner)),
            net,
            cgroups,
            ipam,
        })
    }

    /// True if pods get their own network namespace.
    pub fn uses_netns(&self) -> bool {
        self.net.is_some()
    }

    /// The cgroup version managed (`v1`, `v2`), `None` without cgroup limits.
    pub fn cgroup_version(&self) -> Option<&'static str> {
        self.cgroups.as_ref().map(|c| c.version())
    }

    /// The node bridge, with per-pod network namespaces.
    pub fn bridge(&self) -> Option<String> {
        self.net.as_ref().map(|n| n.bridge().to_string())
    }

    /// The network namespace of a pod (`ip netns` name), if it has one.
    pub fn pod_netns(&self, pod_uid: &str) -> Option<String> {
        let inner = self.inner.lock();
        inner
            .sandboxes
            .get(pod_uid)?
            .net
            .as_ref()
            .map(|n| n.netns.clone())
    }

    /// The cgroup dirs of a pod (one per hierarchy), empty without cgroups.
    pub fn pod_cgroups(&self, pod_uid: &str) -> Vec<PathBuf> {
        let inner = self.inner.lock();
        inner
            .sandboxes
            .get(pod_uid)
            .map(|s| s.cgroups.clone())
            .unwrap_or_default()
    }

    /// The cgroup dirs of a container, empty without cgroups.
    pub fn container_cgroups(&self, id: &str) -> Vec<PathBuf> {
        let inner = self.inner.lock();
        inner
            .procs
            .get(id)
            .map(|p| p.st.cgroups.clone())
            .unwrap_or_default()
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
        let oom = exit_code == 137
            && self
                .cgroups
                .as_ref()
                .is_some_and(|c| c.oom_kills(&p.st.cgroups) > 0);
        p.st.finished = Some(Finished {
            at,
            exit_code,
            unknown,
            oom,
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
                } else if f.oom {
                    ExitReason::OomKilled
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
            // The pod's hostname, as container runtimes set it (also without root, where the
            // process keeps the node's UTS hostname: docs/design/process-runtime.md).
            let hostname = self
                .inner
                .lock()
                .sandboxes
                .get(&cfg.pod_uid)
                .map(|s| s.hostname.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| cfg.pod_name.clone());
            env.push(("HOSTNAME".into(), hostname));
        }
        let wd = cfg
            .working_dir
            .clone()
            .or_else(|| spec.and_then(|s| s.working_dir));
        Ok((argv, env, wd))
    }
}

/// The prefix that runs a command in new UTS and mount namespaces with the pod's hostname,
/// `/etc/hosts` and `/etc/resolv.conf`: `unshare --uts --mount` (util-linux), then a shell
/// writes the name to `/proc/sys/kernel/hostname` (per UTS namespace; no `hostname` binary
/// needed), bind-mounts the pod's managed hosts file over `/etc/hosts` and, when the kubelet
/// formed one ([`crate::dns`]), its resolver configuration over `/etc/resolv.conf` (kept going
/// if either fails) and execs the rest.
/// Every container (and every exec into one) gets its own namespaces with the pod's hostname:
/// what `hostname` prints is upstream's, though a container that renames itself does not rename
/// its pod's other containers (docs/design/process-runtime.md).
fn uts_prefix(hostname: &str, hosts: &Path, resolv: Option<&Path>) -> Vec<String> {
    [
        "unshare",
        "--uts",
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        "printf '%s' \"$0\" > /proc/sys/kernel/hostname || exit 125; \
         mount --bind \"$1\" /etc/hosts 2>/dev/null; \
         [ -z \"$2\" ] || mount --bind \"$2\" /etc/resolv.conf 2>/dev/null; shift 2; exec \"$@\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        hostname.to_string(),
        hosts.to_string_lossy().into_owned(),
        resolv
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default(),
    ])
    .collect()
}

/// The kubelet-managed `/etc/hosts` of a pod: loopback entries, then the pod IP with its
/// hostname (upstream `managedHostsFileContent` in `pkg/kubelet/kubelet_pods.go`).
fn managed_hosts(pod_ip: &str, hostname: &str) -> String {
    format!(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n\
         {pod_ip}\t{hostname}\n"
    )
}

/// argv, environment and working directory of a container process.
type Launch = (Vec<String>, Vec<(String, String)>, Option<String>);

/// A pod sandbox as recorded in `<root-dir>/sandboxes/<uid>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sandbox {
    pod_uid: String,
    namespace: String,
    name: String,
    host_ports: Vec<(i32, String)>,
    /// The pod network namespace; `None` = host networking.
    #[serde(default)]
    net: Option<PodNet>,
    /// Forwarded host ports (with `net`).
    #[serde(default)]
    mappings: Vec<Mapping>,
    /// The pod's cgroup dirs.
    #[serde(default)]
    cgroups: Vec<PathBuf>,
    /// The pod's hostname (`HOSTNAME`, and the UTS hostname with `uts`); empty: the pod name.
    #[serde(default)]
    hostname: String,
    /// Containers run in their own UTS namespace with `hostname` (root, not `hostNetwork`).
    #[serde(default)]
    uts: bool,
    /// With `uts`: the pod has its own resolver configuration, bind-mounted over
    /// `/etc/resolv.conf` (without a mount namespace the pod reads the node's).
    #[serde(default)]
    resolv: bool,
}

impl ProcessRuntime {
    fn sandbox_path(&self, pod_uid: &str) -> PathBuf {
        self.cfg
            .root_dir
            .join("sandboxes")
            .join(format!("{pod_uid}.json"))
    }

    /// The pod's `/etc/resolv.conf` (with `resolv`), beside its sandbox record.
    fn resolv_path(&self, pod_uid: &str) -> PathBuf {
        self.cfg
            .root_dir
            .join("sandboxes")
            .join(format!("{pod_uid}.resolv"))
    }

    /// The pod's managed `/etc/hosts` (with `uts`), beside its sandbox record.
    fn hosts_path(&self, pod_uid: &str) -> PathBuf {
        self.cfg
            .root_dir
            .join("sandboxes")
            .join(format!("{pod_uid}.hosts"))
    }

    fn pod_ip(&self, s: &Sandbox) -> String {
        s.net
            .as_ref()
            .map_or_else(|| self.cfg.host_ip.clone(), |n| n.ip.to_string())
    }

    /// Network namespace, forwarded host ports and cgroups of a new sandbox (no lock held).
    fn build_sandbox(
        &self,
        cfg: &SandboxConfig,
        cidr: Option<Cidr>,
    ) -> Result<(Sandbox, Vec<Forward>), RuntimeError> {
        let mut sb = Sandbox {
            pod_uid: cfg.pod_uid.clone(),
            namespace: cfg.namespace.clone(),
            name: cfg.name.clone(),
            host_ports: cfg.host_ports.clone(),
            net: None,
            mappings: vec![],
            cgroups: vec![],
            hostname: if cfg.hostname.is_empty() {
                cfg.name.clone()
            } else {
                cfg.hostname.clone()
            },
            // hostNetwork pods keep the node's hostname, as upstream's share its UTS namespace.
            uts: !cfg.host_network && is_root(),
            resolv: false,
        };
        let mut forwards = vec![];
        let netns = self.net.as_ref().filter(|_| !cfg.host_network);
        let mappings: Vec<Mapping> = if cfg.port_mappings.is_empty() {
            // callers that only fill host_ports: hostPort = containerPort
            cfg.host_ports
                .iter()
                .map(|(p, proto)| Mapping {
                    host_port: *p,
                    container_port: *p,
                    protocol: proto.clone(),
                    host_ip: String::new(),
                })
                .collect()
        } else {
            cfg.port_mappings
                .iter()
                .map(|m| Mapping {
                    host_port: m.host_port,
                    container_port: m.container_port,
                    protocol: m.protocol.clone(),
                    host_ip: m.host_ip.clone(),
                })
                .collect()
        };
        let in_use = |m: &Mapping| {
            RuntimeError::Sandbox(format!(
                "host port {}/{} is already in use on the node",
                m.host_port, m.protocol
            ))
        };
        if let Some(net) = netns {
            let cidr = cidr.ok_or_else(|| {
                RuntimeError::Sandbox(
                    "network is not ready: the node has no spec.podCIDR yet (the node IPAM \
                     controller assigns it; a standalone kubelet takes --pod-cidr)"
                        .into(),
                )
            })?;
            let ip = self.ipam.allocate(&cidr, &cfg.pod_uid)?;
            for m in &mappings {
                match hostport::forward(m, ip) {
                    Ok(f) => forwards.push(f),
                    Err(_) => {
                        self.ipam.release(&cfg.pod_uid);
                        return Err(in_use(m));
                    }
                }
            }
            match net.setup_pod(&cfg.pod_uid, ip, &cidr) {
                Ok(pn) => sb.net = Some(pn),
                Err(e) => {
                    self.ipam.release(&cfg.pod_uid);
                    return Err(e);
                }
            }
            sb.mappings = mappings;
        } else if let Some(m) = mappings.iter().find(|m| !hostport::is_free(m)) {
            return Err(in_use(m));
        }
        if let Some(cg) = &self.cgroups {
            let limits = Limits::from_resources(
                cfg.cpu_request_milli,
                cfg.cpu_limit_milli,
                cfg.memory_limit,
            );
            match cg.create_pod(&cfg.qos_class, &cfg.pod_uid, &limits) {
                Ok(dirs) => sb.cgroups = dirs,
                Err(e) => {
                    self.teardown(&sb);
                    return Err(RuntimeError::Sandbox(format!("pod cgroup: {e}")));
                }
            }
        }
        if sb.uts {
            // The pod's hostname must resolve, as upstream's kubelet-managed /etc/hosts makes
            // it (programs look their own name up: Python's http.server, Java's
            // getLocalHost); without it they wait on DNS.
            let hosts = managed_hosts(&self.pod_ip(&sb), &sb.hostname);
            let path = self.hosts_path(&sb.pod_uid);
            if let Err(e) = path
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| fs::write(&path, hosts))
            {
                self.teardown(&sb);
                return Err(RuntimeError::Sandbox(format!("pod hosts file: {e}")));
            }
            if let Some(dns) = &cfg.dns {
                if let Err(e) = fs::write(self.resolv_path(&sb.pod_uid), dns.to_resolv_conf()) {
                    self.teardown(&sb);
                    return Err(RuntimeError::Sandbox(format!("pod resolv.conf: {e}")));
                }
                sb.resolv = true;
            }
        }
        Ok((sb, forwards))
    }

    /// Removes what a sandbox holds on the host (namespace, veth, IP, cgroups).
    fn teardown(&self, sb: &Sandbox) {
        if let (Some(net), Some(pn)) = (&self.net, &sb.net) {
            net.teardown_pod(pn);
        }
        if sb.net.is_some() {
            self.ipam.release(&sb.pod_uid);
        }
        cgroup::remove(&sb.cgroups);
        if sb.uts {
            let _ = fs::remove_file(self.hosts_path(&sb.pod_uid));
        }
        if sb.resolv {
            let _ = fs::remove_file(self.resolv_path(&sb.pod_uid));
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
        let cidr = {
            let mut inner = self.inner.lock();
            if let Some(s) = inner.sandboxes.get(&cfg.pod_uid) {
                return Ok(SandboxInfo { ip: self.pod_ip(s) });
            }
            for (port, proto) in &cfg.host_ports {
                if let Some(other) = inner
                    .sandboxes
                    .values()
                    .find(|o| o.host_ports.iter().any(|(p, pr)| p == port && pr == proto))
                {
                    return Err(RuntimeError::Sandbox(format!(
                        "host port {port}/{proto} is already used by pod {}/{}",
                        other.namespace, other.name
                    )));
                }
            }
            inner.creating += 1;
            inner.pod_cidr
        };
        // namespaces and cgroups take a few `ip` calls: not under the lock
        let built = self.build_sandbox(cfg, cidr);
        let mut inner = self.inner.lock();
        inner.creating -= 1;
        let (sb, forwards) = built?;
        let write = serde_json::to_vec(&sb)
            .map_err(io)
            .and_then(|b| fs::write(self.sandbox_path(&cfg.pod_uid), b).map_err(io));
        if let Err(e) = write {
            drop(inner);
            self.teardown(&sb);
            return Err(e);
        }
        let ip = self.pod_ip(&sb);
        inner.forwards.insert(cfg.pod_uid.clone(), forwards);
        inner.sandboxes.insert(cfg.pod_uid.clone(), sb);
        Ok(SandboxInfo { ip })
    }

    fn remove_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        let (sb, forwards) = {
            let mut inner = self.inner.lock();
            let forwards = inner.forwards.remove(pod_uid);
            let sb = inner.sandboxes.remove(pod_uid);
            if sb.is_some() {
                inner.creating += 1; // keeps the bridge until this teardown is done
            }
            (sb, forwards)
        };
        drop(forwards);
        match &sb {
            // deleting a namespace takes tens of ms: not under the lock
            Some(sb) => self.teardown(sb),
            // a sandbox half-made before a crash: its IP file may still be there
            None => self.ipam.release(pod_uid),
        }
        let removed = fs::remove_file(self.sandbox_path(pod_uid));
        let mut inner = self.inner.lock();
        if sb.is_some() {
            inner.creating -= 1;
        }
        if inner.creating == 0 {
            // no pod left: remove the bridge and the node's cgroups (under the lock, so no
            // sandbox is being made or torn down meanwhile)
            let no_netns = inner.sandboxes.values().all(|s| s.net.is_none());
            if let (true, Some(net)) = (no_netns, &self.net) {
                net.remove_bridge();
            }
            if let (true, Some(cg)) = (inner.sandboxes.is_empty(), &self.cgroups) {
                cg.remove_node();
            }
        }
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }

    fn sandbox_alive(&self, pod_uid: &str) -> bool {
        let pn = {
            let inner = self.inner.lock();
            match inner.sandboxes.get(pod_uid) {
                None => return false,
                Some(s) => s.net.clone(),
            }
        };
        match (pn, &self.net) {
            (Some(pn), Some(net)) => net.alive(&pn),
            _ => true,
        }
    }

    fn list_sandboxes(&self) -> Vec<String> {
        self.inner.lock().sandboxes.keys().cloned().collect()
    }

    fn needs_pod_cidr(&self) -> bool {
        self.net.is_some() && self.inner.lock().pod_cidr.is_none()
    }

    fn update_pod_cidr(&self, pod_cidr: &str) {
        match pod_cidr.parse::<Cidr>() {
            Ok(c) => {
                let mut inner = self.inner.lock();
                if inner.pod_cidr != Some(c) {
                    tracing::info!(pod_cidr = %c, "node pod CIDR");
                    inner.pod_cidr = Some(c);
                }
            }
            Err(e) => tracing::warn!(error = %e, "ignoring the node's pod CIDR"),
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
        let (pod_cgroups, exec_prefix) = {
            let inner = self.inner.lock();
            match inner.sandboxes.get(&cfg.pod_uid) {
                Some(s) => {
                    let mut prefix = if s.uts {
                        uts_prefix(
                            &s.hostname,
                            &self.hosts_path(&s.pod_uid),
                            s.resolv.then(|| self.resolv_path(&s.pod_uid)).as_deref(),
                        )
                    } else {
                        vec![]
                    };
                    if let (Some(pn), Some(net)) = (&s.net, &self.net) {
                        prefix.extend(net.exec_prefix(&pn.netns));
                    }
                    (s.cgroups.clone(), prefix)
                }
                None => (vec![], vec![]),
            }
        };
        let cgroups = match &self.cgroups {
            Some(cg) if !pod_cgroups.is_empty() => {
                let limits = Limits::from_resources(
                    cfg.cpu_request_milli,
                    cfg.cpu_limit_milli,
                    cfg.memory_limit,
                );
                cg.create_container(&pod_cgroups, &id, &limits)
                    .map_err(|e| RuntimeError::Start(format!("container cgroup: {e}")))?
            }
            _ => vec![],
        };
        // Claim-backed volumes: the node directories exist, the container runs in a mount
        // namespace with them at their mount paths (its exec probes and hooks too).
        let mut exec_prefix = exec_prefix;
        if !cfg.mounts.is_empty() {
            let mounted = mounts::prepare(&cfg.mounts)
                .and_then(|()| mounts::MountMode::detect().prefix(&cfg.mounts));
            match mounted {
                Ok(p) => exec_prefix.extend(p),
                Err(e) => {
                    cgroup::remove(&cgroups);
                    return Err(RuntimeError::Start(e));
                }
            }
        }
        let procs = cgroup::procs_files(&cgroups);
        let open = |n: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(n))
                .map_err(io)
        };
        // `stdin: true`: a FIFO the runtime holds open for attach ([`stream`]).
        let (stdin_writer, stdin) = if cfg.stdin {
            let w = stream::open_stdin(&dir, true)
                .map_err(|e| RuntimeError::Start(format!("container stdin: {e}")))?;
            let r = File::open(dir.join("stdin"))
                .map_err(|e| RuntimeError::Start(format!("container stdin: {e}")))?;
            (w, Stdio::from(r))
        } else {
            (None, Stdio::null())
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(SHIM)
            .arg("orch-shim")
            .arg(dir.join("exit"))
            .arg(procs.len().to_string())
            .args(&procs)
            .args(&exec_prefix)
            .args(&argv)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(stdin)
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
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                cgroup::remove(&cgroups);
                return Err(RuntimeError::Start(e.to_string()));
            }
        };
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
            cgroups,
            exec_prefix,
            stdin_once: cfg.stdin_once,
        };
        self.save(&st);
        self.inner.lock().procs.insert(
            id.clone(),
            Proc {
                st,
                child: Some(child),
                partial: [vec![], vec![]],
                flushed: false,
                stdin: stdin_writer,
            },
        );
        Ok(id)
    }

    /// Real figures: the container's cgroup as root, else its process group from `/proc`. The
    /// CPU rate is over the time since the previous sample (the container's lifetime for the
    /// first one).
    fn container_usage(&self, id: &str, now: Timestamp) -> Option<ContainerUsage> {
        let mut inner = self.inner.lock();
        let p = inner.procs.get(id)?;
        if p.st.finished.is_some() {
            return None;
        }
        let (pid, started, cgroups) = (p.st.pid, p.st.started_at, p.st.cgroups.clone());
        let (cpu_ns, mem) = cgroup_usage(&cgroups).or_else(|| group_usage(pid))?;
        let (prev_ns, since) = inner
            .cpu_samples
            .insert(id.to_string(), (cpu_ns, now))
            .unwrap_or((0, started));
        let window = Duration::try_from(now.duration_since(since)).unwrap_or_default();
        let rate = match window.as_nanos() {
            0 => 0,
            w => (u128::from(cpu_ns.saturating_sub(prev_ns)) * 1_000_000_000 / w) as u64,
        };
        Some(ContainerUsage {
            cpu_nano_cores: rate,
            cpu_core_nano_seconds: Some(cpu_ns),
            memory_working_set_bytes: mem,
            window,
        })
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
        let gone = {
            let mut inner = self.inner.lock();
            inner.cpu_samples.remove(id);
            inner.procs.remove(id)
        };
        if let Some(p) = gone {
            cgroup::remove(&p.st.cgroups);
        }
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
                let (env, wd, prefix) = {
                    let inner = self.inner.lock();
                    match inner.procs.get(id) {
                        Some(p) => (
                            p.st.env.clone(),
                            p.st.working_dir
                                .clone()
                                .map(PathBuf::from)
                                .unwrap_or_else(|| self.dir(id)),
                            p.st.exec_prefix.clone(),
                        ),
                        None => {
                            return HandlerOutcome::Failure(format!("container {id} not found"))
                        }
                    }
                };
                let argv = e.command.clone().unwrap_or_default();
                // inside the pod's network namespace, as the container itself
                let full: Vec<String> = if argv.is_empty() {
                    argv.clone()
                } else {
                    prefix.into_iter().chain(argv.iter().cloned()).collect()
                };
                match prober::exec_with_timeout(&full, &env, Some(&wd), timeout) {
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

    fn mounts_anywhere(&self) -> bool {
        *mounts::MountMode::detect() == mounts::MountMode::Namespace
    }

    fn log_path(&self, id: &str) -> Option<PathBuf> {
        let p = self.dir(id).join("container.log");
        Some(p)
    }

    fn exec(&self, id: &str, req: &StreamRequest) -> Result<ProcessIo, StreamError> {
        self.stream_exec(id, req)
    }

    fn attach(&self, id: &str, req: &StreamRequest) -> Result<ProcessIo, StreamError> {
        self.stream_attach(id, req)
    }

    fn port_forward(&self, pod_uid: &str, port: u16) -> Result<std::net::TcpStream, StreamError> {
        self.stream_port_forward(pod_uid, port)
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

#[cfg(test)]
mod usage_tests {
    use super::*;

    /// A busy process in its own process group shows CPU time and resident memory.
    #[test]
    fn a_process_group_reports_cpu_time_and_memory() {
        let mut child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let pgid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(300));
        let usage = group_usage(pgid);
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        let _ = child.wait();
        let (cpu_ns, rss) = usage.expect("the group is found");
        assert!(cpu_ns >= 10_000_000, "a busy loop used {cpu_ns} ns of CPU");
        assert!(rss > 0);
        assert_eq!(group_usage(pgid), None, "a group with no process left");
    }
}
