//! The `cri` runtime: real OCI containers through the CRI v1 gRPC API of containerd (issue 22).
//!
//! Upstream's kubelet does the same in `pkg/kubelet/kuberuntime/` (`kuberuntime_sandbox.go`,
//! `kuberuntime_container.go`, `kuberuntime_image.go`, `labels.go`): one pod sandbox per pod
//! (`RunPodSandbox`; the pod IP from `PodSandboxStatus`), containers created in it
//! (`CreateContainer` + `StartContainer`) with their command, args, env, working dir, mounts
//! and `LinuxContainerResources`, stopped with `StopContainer`, exec probes through `ExecSync`,
//! logs in CRI log files under the pod's log directory (`<root-dir>/logs/NS_NAME_UID/NAME/
//! ATTEMPT.log`, as upstream's `/var/log/pods`), which [`crate::logs`] reads.
//!
//! The [`ContainerRuntime`] trait is synchronous; each call here runs its gRPC request on a
//! small tokio runtime of its own and waits for the answer (bounded by a timeout), so it may
//! be called from any thread. Pulls are the exception: [`ContainerRuntime::pull_image`] starts
//! `PullImage` in the background and answers `InProgress` until it is done, so the pod worker
//! measures the real pull time and reports the real size.
//!
//! Without `--container-runtime-endpoint` the runtime starts a containerd of its own
//! ([`containerd`]), writes the CNI network list once the node's podCIDR is known, imports the
//! sandbox (pause) image from its archive, and stops containerd (after removing its sandboxes)
//! when dropped.

pub mod containerd;

// The client needs the CRI types of `k8s-cri`, whose build script runs `protoc`: it is built
// with the `cri` feature only, so a default build needs no protoc. The configuration, the
// containerd helpers and the cgroup naming below are always there (`orch images`).
#[cfg(feature = "cri")]
mod client;
#[cfg(feature = "cri")]
pub use client::CriRuntime;

use containerd::ContainerdPaths;
use std::path::{Path, PathBuf};

/// Label of the pod name (upstream `pkg/kubelet/types/labels.go`, `KubernetesPodNameLabel`).
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// Label of the pod namespace (`KubernetesPodNamespaceLabel`).
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Label of the pod UID (`KubernetesPodUIDLabel`).
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// Label of the container name (`KubernetesContainerNameLabel`).
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// The node whose kubelet made a sandbox or container (several kubelets may share one
/// containerd given with `--container-runtime-endpoint`).
pub const LABEL_NODE: &str = "orch.dev/node";

/// How the runtime reaches containerd and what it configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriConfig {
    /// The kubelet's root dir: pod logs under `logs/`, the own containerd under `containerd/`.
    pub root_dir: PathBuf,
    /// Node name (the [`LABEL_NODE`] of everything this kubelet creates).
    pub node_name: String,
    /// The node's IP (the pod IP of `hostNetwork` pods).
    pub host_ip: String,
    /// `unix:///path` (or a plain path) of a running CRI runtime; `None`: start containerd.
    pub endpoint: Option<String>,
    /// The sandbox image of an own containerd.
    pub sandbox_image: String,
    /// An OCI archive of [`sandbox_image`](Self::sandbox_image), imported at start when the
    /// image is missing (there is no registry to pull it from).
    pub sandbox_image_archive: Option<PathBuf>,
    /// Where the CNI plugins are.
    pub cni_bin_dir: String,
    /// The node's podCIDR when known up front (`--pod-cidr`).
    pub pod_cidr: Option<String>,
}

impl CriConfig {
    /// Defaults for `root_dir`: an own containerd with Debian's CNI plugin dir.
    pub fn new(root_dir: impl Into<PathBuf>, node_name: &str) -> Self {
        Self {
            root_dir: root_dir.into(),
            node_name: node_name.to_string(),
            host_ip: "127.0.0.1".into(),
            endpoint: None,
            sandbox_image: String::new(),
            sandbox_image_archive: None,
            cni_bin_dir: containerd::DEBIAN_CNI_BIN_DIR.into(),
            pod_cidr: None,
        }
    }

    /// The socket of the own containerd (`orch images load` uses it too).
    pub fn own_socket(root_dir: &Path) -> PathBuf {
        ContainerdPaths::new(root_dir.join("containerd")).socket()
    }
}

/// The socket path of an endpoint: `unix:///run/x.sock` or `/run/x.sock`.
pub fn endpoint_path(endpoint: &str) -> Result<PathBuf, String> {
    match endpoint.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
        None if endpoint.starts_with('/') => Ok(PathBuf::from(endpoint)),
        _ => Err(format!(
            "container runtime endpoint {endpoint:?}: only unix:///absolute/path sockets are supported"
        )),
    }
}

/// The cgroup directory (in each hierarchy) holding the pods of the kubelet whose root dir is
/// `root_dir`: `orch-cri-<8 hex digits of the path>`, removed when the runtime is dropped.
pub fn node_cgroup(root_dir: &Path) -> String {
    format!("orch-cri-{}", short_hash(&root_dir.display().to_string()))
}

/// FNV-1a of `s`, as 8 hex digits.
fn short_hash(s: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}
