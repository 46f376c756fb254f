//! CPU and memory limits through cgroups, v1 (one hierarchy per controller) or v2 (unified),
//! in the kubelet's layout (`pkg/kubelet/cm/qos_container_manager_linux.go`,
//! `pod_container_manager_linux.go`): `<node>/kubepods/pod<uid>` for Guaranteed pods,
//! `<node>/kubepods/{burstable,besteffort}/pod<uid>` for the others, one child per container
//! named by its ID. `<node>` is `orch<hash>` (the name of the node bridge), so several kubelets on
//! one host keep apart.
//!
//! Values as upstream (`pkg/kubelet/cm/helpers_linux.go`): `cpu.shares` = requests in milliCPU ×
//! 1024 / 1000 (at least 2; a container without request gets 2), CFS quota = limit in milliCPU ×
//! period / 1000 with a 100 ms period (at least 1 ms), memory limit = limits.memory. On v2 the
//! shares become `cpu.weight` = 1 + (shares − 2) × 9999 / 262142 and the quota `cpu.max`.
//!
//! A container process joins its cgroup itself before running the command (the shim writes its
//! PID into `cgroup.procs`), so nothing it forks escapes the limit. An out-of-memory kill is
//! read from the `oom_kill` counter (`memory.oom_control` on v1, `memory.events` on v2).

use std::fs;
use std::path::{Path, PathBuf};

/// `CPUPeriod` of upstream: 100 ms.
pub const CFS_PERIOD_US: i64 = 100_000;
const MIN_SHARES: u64 = 2;
const MIN_QUOTA_US: i64 = 1_000;

/// Limits of one cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `cpu.shares` (v1 units).
    pub cpu_shares: Option<u64>,
    /// CFS quota in µs per [`CFS_PERIOD_US`].
    pub cpu_quota_us: Option<i64>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<i64>,
}

impl Limits {
    /// From requests.cpu / limits.cpu in milliCPU and limits.memory in bytes, as upstream.
    pub fn from_resources(
        cpu_request_milli: Option<i64>,
        cpu_limit_milli: Option<i64>,
        memory_limit: Option<i64>,
    ) -> Self {
        // upstream: a request defaults to the limit when only the limit is set (API defaulting)
        let req = cpu_request_milli.or(cpu_limit_milli).unwrap_or(0).max(0) as u64;
        Self {
            cpu_shares: Some((req * 1024 / 1000).max(MIN_SHARES)),
            cpu_quota_us: cpu_limit_milli
                .filter(|m| *m > 0)
                .map(|m| (m * CFS_PERIOD_US / 1000).max(MIN_QUOTA_US)),
            memory_bytes: memory_limit.filter(|m| *m > 0),
        }
    }
}

/// `CpuSharesToCPUWeight` of upstream (`pkg/kubelet/cm/cgroup_manager_linux.go`).
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

#[derive(Debug, Clone)]
enum Version {
    /// Controller name → mount point, for `memory` and `cpu`.
    V1 {
        memory: PathBuf,
        cpu: PathBuf,
    },
    V2 {
        root: PathBuf,
    },
}

/// The node's cgroup tree.
#[derive(Debug, Clone)]
pub struct Cgroups {
    version: Version,
    node: String,
}

/// The pod's QoS parent dir (`""` for Guaranteed).
fn qos_dir(qos: &str) -> &'static str {
    match qos {
        "Guaranteed" => "",
        "BestEffort" => "besteffort",
        _ => "burstable",
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

impl Cgroups {
    /// Detects a usable cgroup v1 (`memory` and `cpu` hierarchies) or v2 (with the memory and
    /// cpu controllers) mount under `/sys/fs/cgroup` and checks we may create `node` there;
    /// the error says why not.
    pub fn detect(node: &str) -> Result<Self, String> {
        Self::detect_at(Path::new("/sys/fs/cgroup"), node)
    }

    fn detect_at(base: &Path, node: &str) -> Result<Self, String> {
        if !super::is_root() {
            return Err("not running as root".into());
        }
        let version = if base.join("cgroup.controllers").exists() {
            let ctrls = fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| ctrls.split_whitespace().any(|w| w == c);
            if !has("memory") || !has("cpu") {
                return Err(format!(
                    "cgroup v2 without the memory and cpu controllers ({:?})",
                    ctrls.trim()
                ));
            }
            Version::V2 { root: base.into() }
        } else {
            let memory = base.join("memory");
            let cpu = ["cpu", "cpu,cpuacct"]
                .iter()
                .map(|c| base.join(c))
                .find(|p| p.join("cpu.shares").exists());
            match (memory.join("memory.limit_in_bytes").exists(), cpu) {
                (true, Some(cpu)) => Version::V1 { memory, cpu },
                _ => return Err("no cgroup v2 mount and no cgroup v1 memory and cpu hierarchies under /sys/fs/cgroup".into()),
            }
        };
        let cg = Self {
            version,
            node: node.into(),
        };
        cg.ensure_base()?;
        cg.remove_node();
        Ok(cg)
    }

    /// `<node>/kubepods` in every hierarchy (v2: with the controllers enabled down to it).
    fn ensure_base(&self) -> Result<(), String> {
        for root in self.roots() {
            let dir = root.join(&self.node).join("kubepods");
            fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        if let Version::V2 { root } = &self.version {
            let mut dir = root.clone();
            for part in [self.node.as_str(), "kubepods"] {
                write(&dir.join("cgroup.subtree_control"), "+memory +cpu")?;
                dir = dir.join(part);
            }
            write(&dir.join("cgroup.subtree_control"), "+memory +cpu")?;
        }
        Ok(())
    }

    /// Removes the node's cgroup tree if no pod is in it (best effort: a busy dir stays).
    pub fn remove_node(&self) {
        for root in self.roots() {
            let node = root.join(&self.node);
            let kp = node.join("kubepods");
            for d in [kp.join("besteffort"), kp.join("burstable"), kp, node] {
                let _ = fs::remove_dir(d);
            }
        }
    }

    /// `v1` or `v2`, for logs.
    pub fn version(&self) -> &'static str {
        match self.version {
            Version::V1 { .. } => "v1",
            Version::V2 { .. } => "v2",
        }
    }

    fn roots(&self) -> Vec<PathBuf> {
        match &self.version {
            Version::V1 { memory, cpu } => vec![memory.clone(), cpu.clone()],
            Version::V2 { root } => vec![root.clone()],
        }
    }

    /// Creates pod `uid`'s cgroup (one dir per hierarchy) with `limits`; returns its dirs.
    pub fn create_pod(
        &self,
        qos: &str,
        uid: &str,
        limits: &Limits,
    ) -> Result<Vec<PathBuf>, String> {
        self.ensure_base()?;
        let mut dirs = vec![];
        for root in self.roots() {
            let parent = root.join(&self.node).join("kubepods").join(qos_dir(qos));
            fs::create_dir_all(&parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            if matches!(self.version, Version::V2 { .. }) && !qos_dir(qos).is_empty() {
                write(&parent.join("cgroup.subtree_control"), "+memory +cpu")?;
            }
            let dir = parent.join(format!("pod{uid}"));
            fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            if matches!(self.version, Version::V2 { .. }) {
                write(&dir.join("cgroup.subtree_control"), "+memory +cpu")?;
            }
            dirs.push(dir);
        }
        self.apply(&dirs, limits)?;
        Ok(dirs)
    }

    /// Creates container `id`'s cgroup under the pod's dirs with `limits`; returns its dirs.
    pub fn create_container(
        &self,
        pod_dirs: &[PathBuf],
        id: &str,
        limits: &Limits,
    ) -> Result<Vec<PathBuf>, String> {
        let mut dirs = vec![];
        for p in pod_dirs {
            let dir = p.join(id);
            fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            dirs.push(dir);
        }
        self.apply(&dirs, limits)?;
        Ok(dirs)
    }

    fn apply(&self, dirs: &[PathBuf], l: &Limits) -> Result<(), String> {
        for d in dirs {
            match &self.version {
                Version::V1 { memory, .. } => {
                    if d.starts_with(memory) {
                        if let Some(m) = l.memory_bytes {
                            write(&d.join("memory.limit_in_bytes"), &m.to_string())?;
                        }
                    } else {
                        if let Some(s) = l.cpu_shares {
                            write(&d.join("cpu.shares"), &s.to_string())?;
                        }
                        if let Some(q) = l.cpu_quota_us {
                            write(&d.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
                            write(&d.join("cpu.cfs_quota_us"), &q.to_string())?;
                        }
                    }
                }
                Version::V2 { .. } => {
                    if let Some(m) = l.memory_bytes {
                        write(&d.join("memory.max"), &m.to_string())?;
                        // no swap: an overrun is an OOM kill, as with swap off on a node
                        let _ = fs::write(d.join("memory.swap.max"), "0");
                    }
                    if let Some(s) = l.cpu_shares {
                        write(&d.join("cpu.weight"), &shares_to_weight(s).to_string())?;
                    }
                    if let Some(q) = l.cpu_quota_us {
                        write(&d.join("cpu.max"), &format!("{q} {CFS_PERIOD_US}"))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The `oom_kill` count of a container's memory cgroup (0 if unreadable).
    pub fn oom_kills(&self, dirs: &[PathBuf]) -> u64 {
        let (file, dirs): (&str, Vec<&PathBuf>) = match &self.version {
            Version::V1 { memory, .. } => (
                "memory.oom_control",
                dirs.iter().filter(|d| d.starts_with(memory)).collect(),
            ),
            Version::V2 { .. } => ("memory.events", dirs.iter().collect()),
        };
        dirs.iter()
            .filter_map(|d| fs::read_to_string(d.join(file)).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| {
                        l.strip_prefix("oom_kill ")
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    })
                    .collect::<Vec<_>>()
            })
            .sum()
    }
}

/// The `cgroup.procs` files a process writes its PID into to join `dirs`.
pub fn procs_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    dirs.iter().map(|d| d.join("cgroup.procs")).collect()
}

/// Kills whatever is left in `dirs` (deepest first) and removes them.
pub fn remove(dirs: &[PathBuf]) {
    for d in dirs {
        if !d.exists() {
            continue;
        }
        let mut subs: Vec<PathBuf> = fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        subs.sort();
        remove(&subs);
        for _ in 0..50 {
            let pids = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            match fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        if d.exists() {
            tracing::warn!(cgroup = %d.display(), "cannot remove cgroup");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_upstream_conversions() {
        // 250m request, 500m limit, 64Mi
        let l = Limits::from_resources(Some(250), Some(500), Some(64 << 20));
        assert_eq!(l.cpu_shares, Some(256));
        assert_eq!(l.cpu_quota_us, Some(50_000));
        assert_eq!(l.memory_bytes, Some(64 << 20));
        // no request: minimum shares; tiny limit: minimum quota (1 ms)
        let l = Limits::from_resources(None, None, None);
        assert_eq!(
            (l.cpu_shares, l.cpu_quota_us, l.memory_bytes),
            (Some(2), None, None)
        );
        let l = Limits::from_resources(Some(1), Some(5), None);
        assert_eq!((l.cpu_shares, l.cpu_quota_us), (Some(2), Some(1_000)));
        // only a limit: the request defaults to it
        assert_eq!(
            Limits::from_resources(None, Some(1000), None).cpu_shares,
            Some(1024)
        );
    }

    #[test]
    fn cpu_weight_conversion() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn qos_parent_dirs() {
        assert_eq!(qos_dir("Guaranteed"), "");
        assert_eq!(qos_dir("BestEffort"), "besteffort");
        assert_eq!(qos_dir("Burstable"), "burstable");
        assert_eq!(qos_dir(""), "burstable");
    }
}
