//! Per-pod network namespaces on a node bridge, as the CNI `bridge` plugin with `host-local` IPAM
//! sets them up (`plugins/main/bridge/bridge.go`): one Linux bridge per node whose address is
//! the gateway (first IP of `spec.podCIDR`), and per pod a named network namespace (bind-mounted
//! under `/run/netns` like `ip netns add`, so it outlives a kubelet restart), a veth pair whose
//! host end is a bridge port and whose pod end is `eth0` with the pod IP, `lo` up and a default
//! route via the gateway. The host reaches pod IPs through the bridge's connected route, and
//! pods of different bridges (several kubelets on one host) reach each other through the host,
//! with `net.ipv4.ip_forward` on.
//!
//! Everything goes through the `ip` command of iproute2 (no hand-written netlink). Names: the
//! bridge is `orch` + 8 hex digits of a hash of the kubelet's root dir (≤ 15 characters, one per
//! kubelet even with several kubelets in one process), a pod's namespace is `orch-<pod UID>`,
//! the host end of its veth `vorch` + 8 hex digits of a hash of the UID.

use super::ipam::Cidr;
use super::RuntimeError;
use parking_lot::Mutex;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// FNV-1a, for short stable interface names.
pub(crate) fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", (h >> 32) as u32 ^ h as u32)
}

/// The `ip` binary, if installed.
fn find_ip() -> Option<PathBuf> {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Runs `ip ARGS` (with `stdin` fed to `-batch -`); the error is ip's own message.
fn run(ip: &Path, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new(ip);
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", ip.display()))?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        w.write_all(text.as_bytes())
            .map_err(|e| format!("ip -batch: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn output(ip: &Path, args: &[&str]) -> String {
    Command::new(ip)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The network of one pod.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodNet {
    /// Network namespace name (`/run/netns/<netns>`).
    pub netns: String,
    /// Host end of the veth pair.
    pub veth: String,
    /// The bridge it is attached to.
    pub bridge: String,
    /// Pod IP.
    pub ip: Ipv4Addr,
}

/// The node's pod network: its bridge and the `ip` tool.
#[derive(Debug)]
pub struct Network {
    ip: PathBuf,
    bridge: String,
    /// Serializes bridge setup (several pods start at once); the range the bridge was last
    /// set up with, so the next pods skip the checks.
    bridge_lock: Mutex<Option<Cidr>>,
}

impl Network {
    /// Checks that per-pod namespaces work here (root, `ip` installed, `ip netns add` allowed);
    /// the error says why not.
    pub fn detect(root_dir: &Path) -> Result<Self, String> {
        // once per process: every kubelet of `orch up` would find the same
        static PROBE: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
        let ip = PROBE
            .get_or_init(|| {
                if !super::is_root() {
                    return Err("not running as root".into());
                }
                let ip = find_ip().ok_or("the `ip` command (iproute2) is not installed")?;
                let probe = format!("orch-probe-{}", std::process::id());
                run(&ip, &["netns", "add", &probe], None)?;
                let _ = run(&ip, &["netns", "del", &probe], None);
                Ok(ip)
            })
            .clone()?;
        let abs = std::fs::canonicalize(root_dir).unwrap_or_else(|_| root_dir.to_path_buf());
        Ok(Self {
            ip,
            bridge: format!("orch{}", short_hash(&abs.to_string_lossy())),
            bridge_lock: Mutex::new(None),
        })
    }

    /// The node bridge's name.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The prefix that runs a command inside a pod's namespace: `nsenter --net=…` (util-linux,
    /// only `setns`) when installed, else `ip netns exec` (which also remounts `/sys`).
    pub fn exec_prefix(&self, netns: &str) -> Vec<String> {
        static NSENTER: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
        let nsenter = NSENTER.get_or_init(|| {
            ["/usr/bin/nsenter", "/bin/nsenter", "/usr/sbin/nsenter"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
        });
        match nsenter {
            Some(n) => vec![
                n.to_string_lossy().into_owned(),
                format!("--net=/run/netns/{netns}"),
            ],
            None => vec![
                self.ip.to_string_lossy().into_owned(),
                "netns".into(),
                "exec".into(),
                netns.into(),
            ],
        }
    }

    /// Creates the bridge with the gateway address of `cidr` unless it is already there.
    /// Another device routing an overlapping range is a conflict (another cluster on this
    /// host), except a port-less `orch*` bridge, which a stopped kubelet left and is removed.
    pub fn ensure_bridge(&self, cidr: &Cidr) -> Result<(), RuntimeError> {
        let mut done = self.bridge_lock.lock();
        if *done == Some(*cidr) && link_exists(&self.bridge) {
            return Ok(());
        }
        let err = |e: String| RuntimeError::Sandbox(format!("pod network: {e}"));
        let want = format!("{}/{}", cidr.gateway(), cidr.len);
        if link_exists(&self.bridge) {
            let addrs = output(&self.ip, &["-4", "-o", "addr", "show", "dev", &self.bridge]);
            if addrs.split_whitespace().any(|w| w == want) {
                *done = Some(*cidr);
                return Ok(());
            }
            run(&self.ip, &["addr", "flush", "dev", &self.bridge], None).map_err(err)?;
        }
        for line in output(&self.ip, &["-4", "-o", "route", "show"]).lines() {
            let mut words = line.split_whitespace();
            let Some(dest) = words.next() else { continue };
            let dest = if dest.contains('/') {
                dest.to_string()
            } else {
                format!("{dest}/32")
            };
            let Ok(dest) = dest.parse::<Cidr>() else {
                continue; // default, /31, /32 …
            };
            let dev = line
                .split_whitespace()
                .skip_while(|w| *w != "dev")
                .nth(1)
                .unwrap_or("");
            if dev == self.bridge || !dest.overlaps(cidr) {
                continue;
            }
            let ports = std::fs::read_dir(Path::new("/sys/class/net").join(dev).join("brif"))
                .map(|d| d.count())
                .ok();
            if dev.starts_with("orch") && ports == Some(0) {
                tracing::info!(
                    bridge = dev,
                    "removing a stale pod bridge left by a stopped kubelet"
                );
                let _ = run(&self.ip, &["link", "del", dev], None);
                continue;
            }
            return Err(err(format!(
                "pod CIDR {cidr} overlaps {dest} routed via {dev} on this host (another cluster? give it another --cluster-cidr)"
            )));
        }
        if !link_exists(&self.bridge) {
            run(
                &self.ip,
                &["link", "add", &self.bridge, "type", "bridge"],
                None,
            )
            .map_err(err)?;
        }
        run(&self.ip, &["addr", "add", &want, "dev", &self.bridge], None).map_err(err)?;
        run(&self.ip, &["link", "set", &self.bridge, "up"], None).map_err(err)?;
        enable_forwarding();
        *done = Some(*cidr);
        Ok(())
    }

    /// Creates pod `uid`'s namespace with `ip` on the bridge (replacing a half-made one).
    pub fn setup_pod(&self, uid: &str, ip: Ipv4Addr, cidr: &Cidr) -> Result<PodNet, RuntimeError> {
        self.ensure_bridge(cidr)?;
        let pn = PodNet {
            netns: format!("orch-{uid}"),
            veth: format!("vorch{}", short_hash(uid)),
            bridge: self.bridge.clone(),
            ip,
        };
        self.teardown_pod(&pn);
        let r = self.try_setup(&pn, cidr);
        if r.is_err() {
            self.teardown_pod(&pn);
        }
        r.map(|()| pn)
            .map_err(|e| RuntimeError::Sandbox(format!("pod network: {e}")))
    }

    fn try_setup(&self, pn: &PodNet, cidr: &Cidr) -> Result<(), String> {
        let ip = &self.ip;
        // two `ip` runs: the host side, then the pod side. Hairpin on the bridge port: with
        // `br_netfilter` loaded, a pod's connection to a Service that the proxy sends back to
        // the pod itself leaves the bridge by the port it came in (kubelet's
        // `--hairpin-mode=hairpin-veth`).
        let host = format!(
            "netns add {ns}\nlink add {v} type veth peer name eth0 netns {ns}\nlink set {v} master {br} up\nlink set {v} type bridge_slave hairpin on\n",
            ns = pn.netns,
            v = pn.veth,
            br = pn.bridge
        );
        run(ip, &["-batch", "-"], Some(&host))?;
        let batch = format!(
            "addr add {}/{} dev eth0\nlink set eth0 up\nlink set lo up\nroute add default via {}\n",
            pn.ip,
            cidr.len,
            cidr.gateway()
        );
        run(ip, &["-n", &pn.netns, "-batch", "-"], Some(&batch))
    }

    /// Removes the pod's veth and namespace (whatever of them exists).
    pub fn teardown_pod(&self, pn: &PodNet) {
        if link_exists(&pn.veth) {
            let _ = run(&self.ip, &["link", "del", &pn.veth], None);
        }
        if Path::new("/run/netns").join(&pn.netns).exists() {
            if let Err(e) = run(&self.ip, &["netns", "del", &pn.netns], None) {
                tracing::warn!(error = %e, "cannot delete pod network namespace");
            }
        }
    }

    /// Removes the bridge (no pod left on it).
    pub fn remove_bridge(&self) {
        let mut done = self.bridge_lock.lock();
        let ports = std::fs::read_dir(Path::new("/sys/class/net").join(&self.bridge).join("brif"))
            .map(|d| d.count())
            .unwrap_or(0);
        if link_exists(&self.bridge) && ports == 0 {
            let _ = run(&self.ip, &["link", "del", &self.bridge], None);
            *done = None;
        }
    }

    /// The namespace exists and its veth is still a port of the bridge.
    pub fn alive(&self, pn: &PodNet) -> bool {
        Path::new("/run/netns").join(&pn.netns).exists()
            && std::fs::read_link(Path::new("/sys/class/net").join(&pn.veth).join("master"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy() == pn.bridge))
                .unwrap_or(false)
    }
}

/// Routing between bridges (pods of other kubelets on this host) needs forwarding on.
fn enable_forwarding() {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "1") {
        return;
    }
    match std::fs::write(path, "1") {
        Ok(()) => {
            tracing::info!("enabled net.ipv4.ip_forward for pod-to-pod traffic across bridges")
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot enable net.ipv4.ip_forward; pods of other nodes on this host are unreachable")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_linux_interface_limits() {
        let h = short_hash("/tmp/x/kubelet/node-1");
        assert_eq!(h.len(), 8);
        assert_ne!(h, short_hash("/tmp/x/kubelet/node-2"));
        assert!(format!("orch{h}").len() <= 15);
        assert!(format!("vorch{h}").len() <= 15);
    }
}
