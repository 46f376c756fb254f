//! Volume mounts of process containers: a container with [`Mount`]s runs in a mount namespace
//! of its own in which each node directory is bind-mounted at its `mountPath` (read-only when
//! asked), so it sees its volume where the pod spec says and no other process does.
//!
//! The container's command (and its exec probes and hooks, which enter the same kind of
//! namespace) is prefixed with `unshare --mount --propagation private` and a short `sh` script
//! that makes each mount point (`mkdir -p`: on the node's filesystem, since process containers
//! share it), bind-mounts the directory there, remounts it read-only when asked, and `exec`s
//! the command. How the namespace is made is decided once per process ([`MountMode::detect`]):
//!
//! - as root: a plain mount namespace;
//! - otherwise, where the kernel lets unprivileged users create user namespaces: a user
//!   namespace mapping the kubelet's user to root, with a mount namespace in it (the container
//!   then sees itself as uid 0; files it writes belong to the kubelet's user). Mount points that
//!   do not exist must be creatable by the kubelet's user;
//! - else mounts are refused: the container does not start (`RunContainerError`) and says
//!   why.
//!
//! The node directory itself is created (`mkdir -p`) before the container starts.

use crate::runtime::Mount;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Bind-mounts `n` (source, target, `ro`|`rw`) triples, then runs the command.
const SCRIPT: &str = r#"n="$1"; shift; while [ "$n" -gt 0 ]; do mkdir -p "$2" && mount --bind "$1" "$2" || exit 125; if [ "$3" = ro ]; then mount -o remount,bind,ro "$2" || exit 125; fi; shift 3; n=$((n-1)); done; exec "$@""#;

/// How containers with volume mounts get their mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountMode {
    /// Running as root: `unshare --mount`.
    Namespace,
    /// Not root, unprivileged user namespaces allowed: `unshare --user --map-root-user --mount`.
    UserNamespace,
    /// Neither: containers with volume mounts cannot start (why).
    Unavailable(String),
}

fn works(args: &[&str]) -> bool {
    Command::new("unshare")
        .args(args)
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl MountMode {
    /// Probes once per process (runs `unshare … true`) and remembers the answer.
    pub fn detect() -> &'static MountMode {
        static MODE: OnceLock<MountMode> = OnceLock::new();
        MODE.get_or_init(|| {
            let mode = if super::is_root() && works(&["--mount", "--propagation", "private"]) {
                MountMode::Namespace
            } else if works(&[
                "--user",
                "--map-root-user",
                "--mount",
                "--propagation",
                "private",
            ]) {
                MountMode::UserNamespace
            } else {
                MountMode::Unavailable(
                    "volume mounts need root or unprivileged user namespaces (unshare from util-linux)"
                        .into(),
                )
            };
            tracing::info!(?mode, "process containers' volume mounts");
            mode
        })
    }

    /// The argv prefix that runs a command with `mounts` in place; empty without mounts.
    pub fn prefix(&self, mounts: &[Mount]) -> Result<Vec<String>, String> {
        if mounts.is_empty() {
            return Ok(Vec::new());
        }
        let unshare: &[&str] = match self {
            MountMode::Namespace => &["unshare", "--mount", "--propagation", "private"],
            MountMode::UserNamespace => &[
                "unshare",
                "--user",
                "--map-root-user",
                "--mount",
                "--propagation",
                "private",
            ],
            MountMode::Unavailable(why) => return Err(why.clone()),
        };
        let mut out: Vec<String> = unshare.iter().map(|s| s.to_string()).collect();
        out.extend(
            ["/bin/sh", "-c", SCRIPT, "orch-mount"]
                .iter()
                .map(|s| s.to_string()),
        );
        out.push(mounts.len().to_string());
        for m in mounts {
            out.push(m.host_path.clone());
            out.push(m.container_path.clone());
            out.push(if m.read_only { "ro" } else { "rw" }.into());
        }
        Ok(out)
    }
}

/// Creates the node directories of `mounts` (`mkdir -p`).
pub fn prepare(mounts: &[Mount]) -> Result<(), String> {
    for m in mounts {
        std::fs::create_dir_all(&m.host_path)
            .map_err(|e| format!("volume directory {}: {e}", m.host_path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_lists_each_mount_as_a_triple() {
        let m = [
            Mount {
                host_path: "/v/a".into(),
                container_path: "/data".into(),
                read_only: false,
            },
            Mount {
                host_path: "/v/b".into(),
                container_path: "/ro".into(),
                read_only: true,
            },
        ];
        let p = MountMode::Namespace.prefix(&m).unwrap();
        assert_eq!(&p[..4], ["unshare", "--mount", "--propagation", "private"]);
        assert_eq!(
            &p[p.len() - 7..],
            ["2", "/v/a", "/data", "rw", "/v/b", "/ro", "ro"]
        );
        assert!(MountMode::Namespace.prefix(&[]).unwrap().is_empty());
        assert_eq!(
            MountMode::Unavailable("no".into()).prefix(&m).unwrap_err(),
            "no"
        );
    }

    /// The script itself, without mounting anything: it runs the command with its arguments.
    #[test]
    fn the_script_execs_the_command() {
        let out = Command::new("/bin/sh")
            .args(["-c", SCRIPT, "orch-mount", "0", "echo", "hello", "world"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello world\n");
    }
}
