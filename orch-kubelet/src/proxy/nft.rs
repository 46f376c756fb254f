//! Running the `nft` tool (Debian package `nftables`): one `nft -f -` per transaction, which
//! the kernel applies atomically (one netlink batch), as kube-proxy does through knftables.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The `nft` tool, optionally run inside a network namespace.
#[derive(Debug, Clone)]
pub struct Nft {
    bin: PathBuf,
    /// Prefix that enters a network namespace (`nsenter --net=…`), empty for the host's.
    prefix: Vec<String>,
}

impl Nft {
    /// Checks the proxy can program the packet filter here: running as root, `nft` installed
    /// and answering. The error says why not.
    pub fn detect() -> Result<Self, String> {
        if !crate::runtime::process::is_root() {
            return Err("the service proxy programs nftables and needs root".into());
        }
        let bin = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or("the `nft` command is not installed (Debian package `nftables`)")?;
        let nft = Self {
            bin,
            prefix: vec![],
        };
        nft.run(&["list", "tables"], None)
            .map_err(|e| format!("nftables does not answer: {e}"))?;
        Ok(nft)
    }

    /// The same tool, run in network namespace `/run/netns/NAME` (tests and benchmarks that
    /// must not touch the host's rules).
    pub fn in_netns(&self, name: &str) -> Self {
        Self {
            bin: self.bin.clone(),
            prefix: vec!["nsenter".into(), format!("--net=/run/netns/{name}")],
        }
    }

    /// Applies one transaction (`nft -f -`).
    pub fn apply(&self, transaction: &str) -> Result<(), String> {
        self.run(&["-f", "-"], Some(transaction)).map(|_| ())
    }

    /// `nft ARGS`, with `stdin` fed; stdout, or nft's error message.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bin.display()))?;
        let writer = match (stdin, child.stdin.take()) {
            (Some(text), Some(mut w)) => {
                let text = text.to_string();
                Some(std::thread::spawn(move || w.write_all(text.as_bytes())))
            }
            _ => None,
        };
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            // nft quotes the failing line and more; the first lines say what is wrong
            let head: Vec<&str> = err.lines().take(3).collect();
            Err(format!(
                "`nft {}` failed: {}",
                args.join(" "),
                head.join(" | ")
            ))
        }
    }
}

/// Turns `net.ipv4.ip_forward` on: connections from pods and other machines are forwarded to
/// the endpoints after DNAT. (`route_localnet` is not needed: node ports are not served on
/// `127.0.0.0/8`.) Logs what it did.
pub fn enable_forwarding() {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "1") {
        return;
    }
    match std::fs::write(path, "1") {
        Ok(()) => tracing::info!("service proxy: enabled net.ipv4.ip_forward (DNAT to endpoints from pods and other machines)"),
        Err(e) => tracing::warn!(error = %e, "service proxy: cannot enable net.ipv4.ip_forward; only host processes reach Services"),
    }
}

/// Where each running proxy records its table and PID: one file per table, named after it,
/// holding the owner's PID. `/run` is emptied at boot, as the kernel's rules are.
pub const OWNERS_DIR: &str = "/run/orch-proxy";

/// Records this process as the owner of `table`.
pub fn claim_table(table: &str) {
    let dir = std::path::Path::new(OWNERS_DIR);
    if let Err(e) = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join(table), std::process::id().to_string()))
    {
        tracing::warn!(error = %e, "service proxy: cannot record its table in {OWNERS_DIR}");
    }
}

/// Forgets the owner record of `table` (its rules were removed).
pub fn release_table(table: &str) {
    let _ = std::fs::remove_file(std::path::Path::new(OWNERS_DIR).join(table));
}

/// Deletes the tables of proxies that died without cleaning up (`kill -9`, a crash): those
/// whose recorded owner is no longer a running `orch`. Their rules would keep sending a dead
/// cluster's service addresses to its old endpoints.
pub fn remove_stale_tables(nft: &Nft) {
    let Ok(dir) = std::fs::read_dir(OWNERS_DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let table = entry.file_name().to_string_lossy().into_owned();
        let pid = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let alive = std::fs::read(format!("/proc/{}/cmdline", pid.trim()))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("orch"));
        if alive || !table.starts_with("orch-") {
            continue;
        }
        match nft.apply(&super::rules::cleanup(&table)) {
            Ok(()) => {
                tracing::info!(%table, pid = pid.trim(), "service proxy: removed the table of a proxy that is gone");
                let _ = std::fs::remove_file(entry.path());
            }
            Err(e) => {
                tracing::warn!(%table, error = %e, "service proxy: cannot remove a stale table")
            }
        }
    }
}
