//! The CRI v1 client of the `cri` runtime (feature `cri`): see the parent module.

use super::containerd::Containerd;
use super::*;
use crate::runtime::{
    ContainerConfig, ContainerId, ContainerRecord, ContainerRuntime, ContainerState, ExitReason,
    HandlerAction, HandlerKind, HandlerOutcome, HandlerTarget, ImageInfo, PullContext, PullOutcome,
    RuntimeError, RuntimeInfo, SandboxConfig, SandboxInfo, StopSignal,
};
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint, Uri};

/// Timeout of ordinary CRI calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of a pull.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a new pod waits for the node's podCIDR (as on the process runtime).
const POD_CIDR_WAIT: Duration = Duration::from_secs(5);

/// A sandbox this kubelet created.
#[derive(Debug, Clone)]
struct Sandbox {
    id: String,
    config: cri::PodSandboxConfig,
    ip: String,
    host_network: bool,
}

/// A pull running in the background: `None` until done.
type PullSlot = Arc<Mutex<Option<Result<ImageInfo, String>>>>;

#[derive(Debug, Default)]
struct State {
    sandboxes: HashMap<String, Sandbox>,
    /// Container ID → its log file.
    containers: HashMap<String, PathBuf>,
    pulls: HashMap<String, PullSlot>,
    pod_cidr: Option<String>,
}

/// The CRI runtime (see the module docs).
#[derive(Debug)]
pub struct CriRuntime {
    cfg: CriConfig,
    rt: Option<tokio::runtime::Runtime>,
    rs: RuntimeServiceClient<Channel>,
    is: ImageServiceClient<Channel>,
    containerd: Mutex<Option<Containerd>>,
    version: String,
    state: Mutex<State>,
    /// 8 hex digits of the root dir: the CNI bridge of this kubelet (`cri<tag>`).
    tag: String,
}

fn status_msg(s: &tonic::Status) -> String {
    if s.message().is_empty() {
        format!("{:?}", s.code())
    } else {
        s.message().to_string()
    }
}

/// A lazily connected channel over the Unix socket `path`.
fn unix_channel(path: PathBuf) -> Result<Channel, String> {
    let ep = Endpoint::try_from("http://localhost")
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5));
    Ok(
        ep.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let p = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
            }
        })),
    )
}

impl CriRuntime {
    /// Connects to `cfg.endpoint`, or starts a containerd of its own; waits until the CRI
    /// answers and the sandbox image is present.
    pub fn open(cfg: CriConfig) -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cri-client")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the CRI client's async runtime: {e}"))?;
        let (socket, own) = match &cfg.endpoint {
            Some(e) => (endpoint_path(e)?, None),
            None => {
                if cfg.sandbox_image.is_empty() {
                    return Err("the cri runtime needs a sandbox image".into());
                }
                let paths = ContainerdPaths::new(cfg.root_dir.join("containerd"));
                let c = Containerd::start(paths, &cfg.sandbox_image, &cfg.cni_bin_dir)?;
                (c.paths().socket(), Some(c))
            }
        };
        let channel = {
            let _guard = rt.enter();
            unix_channel(socket.clone())?
        };
        let tag = short_hash(&cfg.root_dir.display().to_string());
        let mut me = Self {
            rs: RuntimeServiceClient::new(channel.clone()),
            is: ImageServiceClient::new(channel),
            rt: Some(rt),
            containerd: Mutex::new(own),
            version: String::new(),
            state: Mutex::new(State::default()),
            tag,
            cfg,
        };
        // The CRI plugin answers a little after the socket appears.
        let until = Instant::now() + Duration::from_secs(20);
        let version = loop {
            let mut c = me.rs.clone();
            match me.call(Duration::from_secs(2), async move {
                c.version(cri::VersionRequest::default()).await
            }) {
                Ok(v) => break v,
                Err(e) if Instant::now() > until => {
                    return Err(format!(
                        "the CRI runtime at {} does not answer: {}",
                        socket.display(),
                        status_msg(&e)
                    ))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        me.version = version.runtime_version.clone();
        tracing::info!(
            runtime = %version.runtime_name,
            version = %version.runtime_version,
            socket = %socket.display(),
            "connected to the CRI runtime"
        );
        if me.owns_containerd() {
            me.ensure_sandbox_image(&socket)?;
            if let Some(c) = me.cfg.pod_cidr.clone() {
                me.update_pod_cidr(&c);
            }
        }
        Ok(me)
    }

    fn owns_containerd(&self) -> bool {
        self.containerd.lock().is_some()
    }

    /// Imports the sandbox image from its archive unless containerd already has it.
    fn ensure_sandbox_image(&self, socket: &Path) -> Result<(), String> {
        if self.image_status(&self.cfg.sandbox_image).is_some() {
            return Ok(());
        }
        let Some(archive) = &self.cfg.sandbox_image_archive else {
            return Err(format!(
                "the sandbox image {} is not in containerd and no archive of it was given",
                self.cfg.sandbox_image
            ));
        };
        containerd::import_archive(socket, archive)?;
        Ok(())
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.rt
            .as_ref()
            .map(|r| r.handle())
            .expect("the runtime lives as long as self")
    }

    /// Runs one gRPC call on the client's runtime and waits for its answer.
    fn call<T, F>(&self, timeout: Duration, f: F) -> Result<T, tonic::Status>
    where
        T: Send + 'static,
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle().spawn(async move {
            let r = match tokio::time::timeout(timeout, f).await {
                Ok(r) => r.map(tonic::Response::into_inner),
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "no answer within {}s",
                    timeout.as_secs()
                ))),
            };
            let _ = tx.send(r);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(tonic::Status::unavailable("the CRI client stopped")))
    }

    /// Starts a call without waiting for it (stops: the pod worker polls the state).
    fn call_detached<T, F>(&self, what: &'static str, id: String, f: F)
    where
        T: Send + 'static,
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send + 'static,
    {
        self.handle().spawn(async move {
            if let Err(e) = f.await {
                if e.code() != tonic::Code::NotFound {
                    tracing::warn!(container = %id, error = %status_msg(&e), "CRI {what} failed");
                }
            }
        });
    }

    /// The pod's log directory (upstream `BuildPodLogsDirectory`: `NAMESPACE_NAME_UID`).
    fn pod_log_dir(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.cfg
            .root_dir
            .join("logs")
            .join(format!("{namespace}_{name}_{uid}"))
    }

    /// The cgroup parent of a pod's sandbox and containers.
    fn cgroup_parent(&self, pod_uid: &str) -> String {
        format!("/{}/pod{pod_uid}", node_cgroup(&self.cfg.root_dir))
    }

    /// Waits up to [`POD_CIDR_WAIT`] for the podCIDR when this kubelet writes the network
    /// list; false if it did not come.
    fn wait_pod_cidr(&self) -> bool {
        let until = Instant::now() + POD_CIDR_WAIT;
        while self.needs_pod_cidr() {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// A ready sandbox of `pod_uid` made before a kubelet restart.
    fn find_sandbox(&self, pod_uid: &str) -> Option<String> {
        let mut c = self.rs.clone();
        let filter = cri::PodSandboxFilter {
            state: Some(cri::PodSandboxStateValue {
                state: cri::PodSandboxState::SandboxReady as i32,
            }),
            label_selector: [
                (LABEL_POD_UID.to_string(), pod_uid.to_string()),
                (LABEL_NODE.to_string(), self.cfg.node_name.clone()),
            ]
            .into(),
            ..Default::default()
        };
        let list = self
            .call(CALL_TIMEOUT, async move {
                c.list_pod_sandbox(cri::ListPodSandboxRequest {
                    filter: Some(filter),
                })
                .await
            })
            .ok()?;
        list.items.into_iter().next().map(|s| s.id)
    }

    fn sandbox_ip(&self, id: &str) -> Result<String, tonic::Status> {
        let mut c = self.rs.clone();
        let id = id.to_string();
        let st = self.call(CALL_TIMEOUT, async move {
            c.pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: id,
                verbose: false,
            })
            .await
        })?;
        Ok(st
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default())
    }

    fn image_info(reference: &str, img: cri::Image) -> ImageInfo {
        ImageInfo {
            reference: reference.to_string(),
            id: img.repo_digests.first().cloned().unwrap_or(img.id),
            size_bytes: i64::try_from(img.size).unwrap_or(i64::MAX),
        }
    }

    /// Removes the cgroup directories of a pod (runc removes the containers' own).
    fn remove_pod_cgroups(&self, pod_uid: &str) {
        self.remove_cgroup_dir(self.cgroup_parent(pod_uid).trim_start_matches('/'));
    }

    /// Removes the (empty) cgroup directory `rel` in the unified hierarchy and in every v1
    /// hierarchy.
    fn remove_cgroup_dir(&self, rel: &str) {
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        let mut dirs: Vec<PathBuf> = vec![Path::new("/sys/fs/cgroup").join(rel)];
        dirs.extend(hierarchies.flatten().map(|h| h.path().join(rel)));
        for d in dirs {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

/// The CRI namespace options of a pod: its own network namespace, or the node's.
fn namespace_options(host_network: bool) -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: if host_network {
            cri::NamespaceMode::Node as i32
        } else {
            cri::NamespaceMode::Pod as i32
        },
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// The `RunPodSandbox` configuration of a pod (upstream `generatePodSandboxConfig` in
/// `kuberuntime_sandbox.go`).
fn sandbox_request(
    cfg: &SandboxConfig,
    node: &str,
    log_dir: &Path,
    cgroup_parent: &str,
) -> cri::PodSandboxConfig {
    let port_mappings = cfg
        .port_mappings
        .iter()
        .map(|m| cri::PortMapping {
            protocol: match m.protocol.as_str() {
                "UDP" => cri::Protocol::Udp,
                "SCTP" => cri::Protocol::Sctp,
                _ => cri::Protocol::Tcp,
            } as i32,
            container_port: m.container_port,
            host_port: m.host_port,
            host_ip: m.host_ip.clone(),
        })
        .collect();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: cfg.name.clone(),
            uid: cfg.pod_uid.clone(),
            namespace: cfg.namespace.clone(),
            attempt: 0,
        }),
        hostname: if cfg.host_network {
            String::new()
        } else if cfg.hostname.is_empty() {
            cfg.name.clone()
        } else {
            cfg.hostname.clone()
        },
        log_directory: log_dir.display().to_string(),
        // The pod's resolv.conf per its dnsPolicy (upstream `generatePodSandboxConfig` sets
        // `DnsConfig` from `GetPodDNS`); none: containerd copies the node's.
        dns_config: cfg.dns.as_ref().map(|d| cri::DnsConfig {
            servers: d.servers.clone(),
            searches: d.searches.clone(),
            options: d.options.clone(),
        }),
        port_mappings,
        labels: [
            (LABEL_POD_NAME.to_string(), cfg.name.clone()),
            (LABEL_POD_NAMESPACE.to_string(), cfg.namespace.clone()),
            (LABEL_POD_UID.to_string(), cfg.pod_uid.clone()),
            (LABEL_NODE.to_string(), node.to_string()),
        ]
        .into(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_string(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(cfg.host_network)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// CPU shares of a request in milliCPU, at least 2 (upstream `MilliCPUToShares` in
/// `pkg/kubelet/cm/helpers_linux.go`).
fn cpu_shares(milli: Option<i64>) -> i64 {
    milli.map_or(2, |m| (m * 1024 / 1000).max(2))
}

/// The CFS period, 100 ms (upstream `QuotaPeriod`).
const CPU_PERIOD: i64 = 100_000;

/// CFS quota of a limit in milliCPU, at least 1 ms (upstream `MilliCPUToQuota`).
fn cpu_quota(milli: i64) -> i64 {
    (milli * CPU_PERIOD / 1000).max(1000)
}

/// The log file of a container relative to its pod's log directory (upstream
/// `BuildContainerLogsDirectory` + `RESTART_COUNT.log`).
fn container_log_rel(name: &str, attempt: i32) -> String {
    format!("{name}/{attempt}.log")
}

/// The `CreateContainer` configuration (upstream `generateContainerConfig` in
/// `kuberuntime_container.go` and `generateLinuxContainerResources` in
/// `kuberuntime_container_linux.go`).
fn container_request(
    cfg: &ContainerConfig,
    host_network: bool,
    node: &str,
) -> cri::ContainerConfig {
    let resources = cri::LinuxContainerResources {
        cpu_shares: cpu_shares(cfg.cpu_request_milli.or(cfg.cpu_limit_milli)),
        cpu_period: if cfg.cpu_limit_milli.is_some() {
            CPU_PERIOD
        } else {
            0
        },
        cpu_quota: cfg.cpu_limit_milli.map_or(0, cpu_quota),
        memory_limit_in_bytes: cfg.memory_limit.unwrap_or(0),
        ..Default::default()
    };
    let attempt = u32::try_from(cfg.attempt).unwrap_or(0);
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: cfg.name.clone(),
            attempt,
        }),
        image: Some(cri::ImageSpec {
            image: cfg.image.clone(),
            user_specified_image: cfg.image.clone(),
            ..Default::default()
        }),
        command: cfg.command.clone(),
        args: cfg.args.clone(),
        working_dir: cfg.working_dir.clone().unwrap_or_default(),
        envs: cfg
            .env
            .iter()
            .map(|(k, v)| cri::KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        mounts: cfg
            .mounts
            .iter()
            .map(|m| cri::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.clone(),
                readonly: m.read_only,
                ..Default::default()
            })
            .collect(),
        labels: [
            (LABEL_POD_NAME.to_string(), cfg.pod_name.clone()),
            (LABEL_POD_NAMESPACE.to_string(), cfg.namespace.clone()),
            (LABEL_POD_UID.to_string(), cfg.pod_uid.clone()),
            (LABEL_CONTAINER_NAME.to_string(), cfg.name.clone()),
            (LABEL_NODE.to_string(), node.to_string()),
        ]
        .into(),
        annotations: [(
            "io.kubernetes.container.restartCount".to_string(),
            cfg.attempt.to_string(),
        )]
        .into(),
        log_path: container_log_rel(&cfg.name, cfg.attempt),
        stdin: cfg.stdin,
        stdin_once: cfg.stdin_once,
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(namespace_options(host_network)),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// A CRI timestamp (nanoseconds since the epoch).
fn ts(nanos: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(nanos)).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The state of a CRI `ContainerStatus` (upstream `toKubeContainerState` and the reason
/// handling of `convertToAPIContainerStatuses`: containerd reports `OOMKilled`, `Completed`
/// or `Error`).
fn container_state_of(s: &cri::ContainerStatus) -> ContainerState {
    match cri::ContainerState::try_from(s.state) {
        Ok(cri::ContainerState::ContainerCreated) => ContainerState::Created,
        Ok(cri::ContainerState::ContainerRunning) => ContainerState::Running {
            started_at: ts(s.started_at),
        },
        Ok(cri::ContainerState::ContainerExited) => {
            let reason = match (s.reason.as_str(), s.exit_code) {
                ("OOMKilled", _) => ExitReason::OomKilled,
                (_, 0) => ExitReason::Completed,
                _ => ExitReason::Error,
            };
            ContainerState::Exited {
                started_at: ts(s.started_at.max(s.created_at)),
                finished_at: ts(s.finished_at),
                exit_code: s.exit_code,
                signal: (s.exit_code > 128 && s.exit_code < 160).then(|| s.exit_code - 128),
                reason,
            }
        }
        _ => ContainerState::Exited {
            started_at: ts(s.started_at),
            finished_at: ts(s.finished_at.max(s.started_at)),
            exit_code: 128,
            signal: None,
            reason: ExitReason::Unknown,
        },
    }
}

impl ContainerRuntime for CriRuntime {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            name: "containerd".into(),
            version: self.version.clone(),
        }
    }

    fn image_status(&self, image: &str) -> Option<ImageInfo> {
        // While a pull of the image has not been reported by `pull_image`, the image counts
        // as absent: the pod worker then asks `pull_image`, which reports the pull with its
        // real duration and size instead of "already present on machine".
        if self.state.lock().pulls.contains_key(image) {
            return None;
        }
        let mut c = self.is.clone();
        let spec = cri::ImageSpec {
            image: image.to_string(),
            ..Default::default()
        };
        let r = self
            .call(CALL_TIMEOUT, async move {
                c.image_status(cri::ImageStatusRequest {
                    image: Some(spec),
                    verbose: false,
                })
                .await
            })
            .ok()?;
        r.image.map(|i| Self::image_info(image, i))
    }

    fn pull_image(&self, image: &str, ctx: &PullContext, _now: Timestamp) -> PullOutcome {
        let _ = ctx;
        let slot = {
            let mut st = self.state.lock();
            if let Some(slot) = st.pulls.get(image).cloned() {
                let done = slot.lock().take();
                match done {
                    Some(r) => {
                        st.pulls.remove(image);
                        return match r {
                            Ok(info) => PullOutcome::Ready(info),
                            Err(e) => PullOutcome::Failed(e),
                        };
                    }
                    None => return PullOutcome::InProgress { ready_at: None },
                }
            }
            let slot: PullSlot = Arc::default();
            st.pulls.insert(image.to_string(), slot.clone());
            slot
        };
        let mut rs = self.is.clone();
        let reference = image.to_string();
        self.handle().spawn(async move {
            let spec = cri::ImageSpec {
                image: reference.clone(),
                ..Default::default()
            };
            let pulled = tokio::time::timeout(
                PULL_TIMEOUT,
                rs.pull_image(cri::PullImageRequest {
                    image: Some(spec.clone()),
                    auth: None,
                    sandbox_config: None,
                }),
            )
            .await;
            let r = match pulled {
                Err(_) => Err(format!("no answer within {}s", PULL_TIMEOUT.as_secs())),
                Ok(Err(e)) => Err(format!(
                    "rpc error: code = {:?} desc = {}",
                    e.code(),
                    e.message()
                )),
                Ok(Ok(_)) => match rs
                    .image_status(cri::ImageStatusRequest {
                        image: Some(spec),
                        verbose: false,
                    })
                    .await
                {
                    Ok(r) => r
                        .into_inner()
                        .image
                        .map(|i| CriRuntime::image_info(&reference, i))
                        .ok_or_else(|| format!("image {reference} is missing after its pull")),
                    Err(e) => Err(status_msg(&e)),
                },
            };
            *slot.lock() = Some(r);
        });
        PullOutcome::InProgress { ready_at: None }
    }

    fn list_images(&self) -> Vec<ImageInfo> {
        let mut c = self.is.clone();
        let Ok(r) = self.call(CALL_TIMEOUT, async move {
            c.list_images(cri::ListImagesRequest::default()).await
        }) else {
            return vec![];
        };
        r.images
            .into_iter()
            .map(|i| {
                let reference = i.repo_tags.first().cloned().unwrap_or_else(|| i.id.clone());
                Self::image_info(&reference, i)
            })
            .collect()
    }

    fn run_sandbox(&self, cfg: &SandboxConfig) -> Result<SandboxInfo, RuntimeError> {
        if let Some(s) = self.state.lock().sandboxes.get(&cfg.pod_uid) {
            return Ok(SandboxInfo { ip: s.ip.clone() });
        }
        let log_dir = self.pod_log_dir(&cfg.namespace, &cfg.name, &cfg.pod_uid);
        let config = sandbox_request(
            cfg,
            &self.cfg.node_name,
            &log_dir,
            &self.cgroup_parent(&cfg.pod_uid),
        );
        let id = match self.find_sandbox(&cfg.pod_uid) {
            Some(id) => id,
            None => {
                if !cfg.host_network && !self.wait_pod_cidr() {
                    return Err(RuntimeError::Sandbox(
                        "network is not ready: the node has no spec.podCIDR yet".into(),
                    ));
                }
                std::fs::create_dir_all(&log_dir).map_err(|e| {
                    RuntimeError::Sandbox(format!("cannot create {}: {e}", log_dir.display()))
                })?;
                let mut c = self.rs.clone();
                let req = cri::RunPodSandboxRequest {
                    config: Some(config.clone()),
                    runtime_handler: String::new(),
                };
                self.call(CALL_TIMEOUT, async move { c.run_pod_sandbox(req).await })
                    .map_err(|e| RuntimeError::Sandbox(status_msg(&e)))?
                    .pod_sandbox_id
            }
        };
        let ip = if cfg.host_network {
            self.cfg.host_ip.clone()
        } else {
            self.sandbox_ip(&id)
                .map_err(|e| RuntimeError::Sandbox(status_msg(&e)))?
        };
        self.state.lock().sandboxes.insert(
            cfg.pod_uid.clone(),
            Sandbox {
                id,
                config,
                ip: ip.clone(),
                host_network: cfg.host_network,
            },
        );
        Ok(SandboxInfo { ip })
    }

    fn remove_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        let known = self.state.lock().sandboxes.remove(pod_uid);
        let id = match known {
            Some(s) => Some(s.id),
            None => self.find_sandbox(pod_uid),
        };
        if let Some(id) = id {
            let mut c = self.rs.clone();
            let sid = id.clone();
            self.call(CALL_TIMEOUT, async move {
                c.stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: sid,
                })
                .await
            })
            .map_err(|e| RuntimeError::Io(status_msg(&e)))?;
            let mut c = self.rs.clone();
            self.call(CALL_TIMEOUT, async move {
                c.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
                    .await
            })
            .map_err(|e| RuntimeError::Io(status_msg(&e)))?;
        }
        self.remove_pod_cgroups(pod_uid);
        // The log files stay until their containers are removed (a terminated pod's logs
        // are read after its sandbox is gone); an empty log directory goes now.
        if let Ok(dirs) = std::fs::read_dir(self.cfg.root_dir.join("logs")) {
            for d in dirs.flatten() {
                if d.file_name()
                    .to_string_lossy()
                    .ends_with(&format!("_{pod_uid}"))
                {
                    let _ = std::fs::remove_dir(d.path());
                }
            }
        }
        Ok(())
    }

    fn list_sandboxes(&self) -> Vec<String> {
        let mut c = self.rs.clone();
        let filter = cri::PodSandboxFilter {
            label_selector: [(LABEL_NODE.to_string(), self.cfg.node_name.clone())].into(),
            ..Default::default()
        };
        self.call(CALL_TIMEOUT, async move {
            c.list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(filter),
            })
            .await
        })
        .map(|r| {
            r.items
                .into_iter()
                .filter_map(|s| s.labels.get(LABEL_POD_UID).cloned())
                .collect()
        })
        .unwrap_or_default()
    }

    fn needs_pod_cidr(&self) -> bool {
        self.owns_containerd() && self.state.lock().pod_cidr.is_none()
    }

    fn update_pod_cidr(&self, pod_cidr: &str) {
        if self.state.lock().pod_cidr.as_deref() == Some(pod_cidr) {
            return;
        }
        if let Some(c) = self.containerd.lock().as_ref() {
            let paths = c.paths().clone();
            let bridge = format!("cri{}", self.tag);
            let Some(text) = containerd::cni_conflist(&bridge, pod_cidr, &paths.ipam_dir()) else {
                tracing::warn!(pod_cidr, "the cri runtime supports IPv4 podCIDRs only");
                return;
            };
            if let Err(e) = containerd::write_conflist(&paths, &text) {
                tracing::error!(error = %e, "cannot write the CNI network list");
                return;
            }
        }
        let mut c = self.rs.clone();
        let cidr = pod_cidr.to_string();
        let _ = self.call(CALL_TIMEOUT, async move {
            c.update_runtime_config(cri::UpdateRuntimeConfigRequest {
                runtime_config: Some(cri::RuntimeConfig {
                    network_config: Some(cri::NetworkConfig { pod_cidr: cidr }),
                }),
            })
            .await
        });
        // containerd loads the new network list asynchronously: wait until it says the
        // network is ready, so the first sandbox does not fail.
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            let mut c = self.rs.clone();
            let ready = self
                .call(CALL_TIMEOUT, async move {
                    c.status(cri::StatusRequest { verbose: false }).await
                })
                .ok()
                .and_then(|s| s.status)
                .is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.r#type == "NetworkReady" && c.status)
                });
            if ready {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.state.lock().pod_cidr = Some(pod_cidr.to_string());
        tracing::info!(pod_cidr, "pod network configured");
    }

    fn start_container(
        &self,
        cfg: &ContainerConfig,
        _now: Timestamp,
    ) -> Result<ContainerId, RuntimeError> {
        let Some(sb) = self.state.lock().sandboxes.get(&cfg.pod_uid).cloned() else {
            return Err(RuntimeError::Start(format!(
                "pod {} has no sandbox",
                cfg.pod_uid
            )));
        };
        let log_dir = PathBuf::from(&sb.config.log_directory);
        let rel = container_log_rel(&cfg.name, cfg.attempt);
        let log_path = log_dir.join(&rel);
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                RuntimeError::Start(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        // A container restarted with the same attempt (after a kubelet restart) appends.
        for m in &cfg.mounts {
            std::fs::create_dir_all(&m.host_path).map_err(|e| {
                RuntimeError::Start(format!("volume directory {}: {e}", m.host_path))
            })?;
        }
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: sb.id.clone(),
            config: Some(container_request(cfg, sb.host_network, &self.cfg.node_name)),
            sandbox_config: Some(sb.config.clone()),
        };
        let mut c = self.rs.clone();
        let id = self
            .call(CALL_TIMEOUT, async move { c.create_container(req).await })
            .map_err(|e| RuntimeError::Start(status_msg(&e)))?
            .container_id;
        self.state.lock().containers.insert(id.clone(), log_path);
        let mut c = self.rs.clone();
        let cid = id.clone();
        if let Err(e) = self.call(CALL_TIMEOUT, async move {
            c.start_container(cri::StartContainerRequest { container_id: cid })
                .await
        }) {
            // The pod worker retries with the same attempt, whose name the created container
            // still reserves in containerd: remove it (its log with it).
            let _ = self.remove_container(&id);
            return Err(RuntimeError::Start(status_msg(&e)));
        }
        Ok(id)
    }

    fn container_state(&self, id: &str, _now: Timestamp) -> Option<ContainerState> {
        let mut c = self.rs.clone();
        let cid = id.to_string();
        let r = self
            .call(CALL_TIMEOUT, async move {
                c.container_status(cri::ContainerStatusRequest {
                    container_id: cid,
                    verbose: false,
                })
                .await
            })
            .ok()?;
        r.status.as_ref().map(container_state_of)
    }

    fn stop_container(
        &self,
        id: &str,
        signal: StopSignal,
        _now: Timestamp,
    ) -> Result<(), RuntimeError> {
        // CRI's StopContainer sends the stop signal and SIGKILL after `timeout` seconds; the
        // pod worker sends `Kill` itself when the grace period is spent, so `Term` waits long.
        let timeout = match signal {
            StopSignal::Term => 3600,
            StopSignal::Kill => 0,
        };
        let mut c = self.rs.clone();
        let cid = id.to_string();
        self.call_detached("StopContainer", id.to_string(), async move {
            c.stop_container(cri::StopContainerRequest {
                container_id: cid,
                timeout,
            })
            .await
        });
        Ok(())
    }

    fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let mut c = self.rs.clone();
        let cid = id.to_string();
        match self.call(CALL_TIMEOUT, async move {
            c.remove_container(cri::RemoveContainerRequest { container_id: cid })
                .await
        }) {
            Ok(_) => {}
            Err(e) if e.code() == tonic::Code::NotFound => {}
            Err(e) => return Err(RuntimeError::Io(status_msg(&e))),
        }
        if let Some(log) = self.state.lock().containers.remove(id) {
            let _ = std::fs::remove_file(&log);
            // The container's directory, then the pod's, once empty.
            for dir in log.ancestors().skip(1).take(2) {
                if std::fs::remove_dir(dir).is_err() {
                    break;
                }
            }
        }
        Ok(())
    }

    fn list_containers(&self) -> Vec<ContainerRecord> {
        let mut c = self.rs.clone();
        let filter = cri::ContainerFilter {
            label_selector: [(LABEL_NODE.to_string(), self.cfg.node_name.clone())].into(),
            ..Default::default()
        };
        let Ok(list) = self.call(CALL_TIMEOUT, async move {
            c.list_containers(cri::ListContainersRequest {
                filter: Some(filter),
            })
            .await
        }) else {
            return vec![];
        };
        let mut out = Vec::new();
        let mut st = self.state.lock();
        for ctr in list.containers {
            let pod_uid = ctr.labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
            let meta = ctr.metadata.unwrap_or_default();
            let attempt = i32::try_from(meta.attempt).unwrap_or(0);
            if let (Some(ns), Some(pod)) = (
                ctr.labels.get(LABEL_POD_NAMESPACE),
                ctr.labels.get(LABEL_POD_NAME),
            ) {
                let log_path = self
                    .pod_log_dir(ns, pod, &pod_uid)
                    .join(container_log_rel(&meta.name, attempt));
                st.containers.insert(ctr.id.clone(), log_path);
            }
            out.push(ContainerRecord {
                id: ctr.id,
                pod_uid,
                name: meta.name,
                attempt,
                image: ctr.image.map(|i| i.image).unwrap_or_default(),
            });
        }
        out
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
                let cmd = e.command.clone().unwrap_or_default();
                let mut c = self.rs.clone();
                let req = cri::ExecSyncRequest {
                    container_id: id.to_string(),
                    cmd: cmd.clone(),
                    timeout: i64::try_from(timeout.as_secs().max(1)).unwrap_or(i64::MAX),
                };
                match self.call(timeout + Duration::from_secs(5), async move {
                    c.exec_sync(req).await
                }) {
                    Ok(r) if r.exit_code == 0 => HandlerOutcome::Success,
                    // upstream exec prober: the failure message is the command's output
                    Ok(r) => {
                        let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
                        out.push_str(&String::from_utf8_lossy(&r.stderr));
                        out.truncate(10 * 1024);
                        HandlerOutcome::Failure(out)
                    }
                    Err(e) if e.code() == tonic::Code::DeadlineExceeded => HandlerOutcome::Failure(
                        format!("command {cmd:?} timed out after {}s", timeout.as_secs()),
                    ),
                    Err(e) => HandlerOutcome::Failure(status_msg(&e)),
                }
            }
            other => crate::prober::run_network(other, target, timeout),
        }
    }

    fn log_path(&self, id: &str) -> Option<PathBuf> {
        self.state.lock().containers.get(id).cloned()
    }
}

impl Drop for CriRuntime {
    fn drop(&mut self) {
        if self.owns_containerd() {
            // Containers outlive containerd (their shims keep them): end every pod of this
            // node before stopping it, so nothing keeps running after the kubelet.
            for uid in self.list_sandboxes() {
                if let Err(e) = self.remove_sandbox(&uid) {
                    tracing::warn!(pod_uid = %uid, error = %e, "cannot remove a pod sandbox at shutdown");
                }
            }
            if let Some(mut c) = self.containerd.lock().take() {
                c.stop();
            }
            // The bridge plugin leaves its bridge when the last pod goes.
            let bridge = format!("cri{}", self.tag);
            if std::path::Path::new("/sys/class/net")
                .join(&bridge)
                .exists()
            {
                let _ = std::process::Command::new("ip")
                    .args(["link", "delete", &bridge])
                    .output();
            }
        }
        self.remove_cgroup_dir(&node_cgroup(&self.cfg.root_dir));
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint_path("unix:///run/containerd/containerd.sock").unwrap(),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(endpoint_path("/x.sock").unwrap(), PathBuf::from("/x.sock"));
        assert!(endpoint_path("tcp://1.2.3.4:5").is_err());
        assert!(endpoint_path("unix://relative").is_err());
    }

    #[test]
    fn sandbox_request_carries_identity_ports_and_namespaces() {
        let cfg = SandboxConfig {
            pod_uid: "u1".into(),
            namespace: "ns".into(),
            name: "web".into(),
            hostname: "h".into(),
            port_mappings: vec![crate::runtime::PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "UDP".into(),
                host_ip: String::new(),
            }],
            ..Default::default()
        };
        let r = sandbox_request(
            &cfg,
            "node-1",
            Path::new("/logs/ns_web_u1"),
            "/orch-cri-x/podu1",
        );
        let m = r.metadata.as_ref().unwrap();
        assert_eq!(
            (m.name.as_str(), m.namespace.as_str(), m.uid.as_str()),
            ("web", "ns", "u1")
        );
        assert_eq!(r.hostname, "h");
        assert_eq!(r.log_directory, "/logs/ns_web_u1");
        assert_eq!(r.labels[LABEL_POD_UID], "u1");
        assert_eq!(r.labels[LABEL_NODE], "node-1");
        assert_eq!(r.port_mappings[0].protocol, cri::Protocol::Udp as i32);
        assert_eq!(r.port_mappings[0].host_port, 8080);
        assert!(r.dns_config.is_none());
        let linux = r.linux.as_ref().unwrap();
        assert_eq!(linux.cgroup_parent, "/orch-cri-x/podu1");
        let ns = linux
            .security_context
            .as_ref()
            .unwrap()
            .namespace_options
            .as_ref()
            .unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Pod as i32);
        let with_dns = sandbox_request(
            &SandboxConfig {
                dns: Some(crate::dns::ResolverConfig {
                    servers: vec!["10.96.0.10".into()],
                    searches: vec!["ns.svc.cluster.local".into()],
                    options: vec!["ndots:5".into()],
                }),
                ..cfg.clone()
            },
            "n",
            Path::new("/l"),
            "/p",
        );
        let dns = with_dns.dns_config.unwrap();
        assert_eq!(
            (dns.servers, dns.searches, dns.options),
            (
                vec!["10.96.0.10".to_string()],
                vec!["ns.svc.cluster.local".to_string()],
                vec!["ndots:5".to_string()]
            )
        );
        let host = sandbox_request(
            &SandboxConfig {
                host_network: true,
                ..cfg
            },
            "n",
            Path::new("/l"),
            "/p",
        );
        let ns = host
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
        assert_eq!(host.hostname, "");
    }

    #[test]
    fn container_request_maps_command_env_and_limits() {
        let cfg = ContainerConfig {
            pod_uid: "u1".into(),
            namespace: "ns".into(),
            pod_name: "p".into(),
            name: "c".into(),
            attempt: 2,
            image: "orch.test/busybox:v1".into(),
            command: vec!["sh".into(), "-c".into()],
            args: vec!["echo hi".into()],
            env: vec![("A".into(), "1".into())],
            working_dir: Some("/tmp".into()),
            memory_limit: Some(64 << 20),
            cpu_request_milli: Some(250),
            cpu_limit_milli: Some(500),
            ..Default::default()
        };
        let r = container_request(&cfg, false, "node-1");
        assert_eq!(r.metadata.as_ref().unwrap().attempt, 2);
        assert_eq!(r.image.as_ref().unwrap().image, "orch.test/busybox:v1");
        assert_eq!(r.command, ["sh", "-c"]);
        assert_eq!(r.args, ["echo hi"]);
        assert_eq!(r.working_dir, "/tmp");
        assert_eq!(
            (r.envs[0].key.as_str(), r.envs[0].value.as_str()),
            ("A", "1")
        );
        assert_eq!(r.log_path, "c/2.log");
        assert_eq!(r.labels[LABEL_CONTAINER_NAME], "c");
        let res = r.linux.unwrap().resources.unwrap();
        assert_eq!(res.memory_limit_in_bytes, 64 << 20);
        assert_eq!(res.cpu_shares, 256);
        assert_eq!((res.cpu_quota, res.cpu_period), (50_000, 100_000));
        // No request, no limit: the minimum shares, no quota, no memory limit.
        let best = container_request(&ContainerConfig::default(), false, "n");
        let res = best.linux.unwrap().resources.unwrap();
        assert_eq!(
            (res.cpu_shares, res.cpu_quota, res.memory_limit_in_bytes),
            (2, 0, 0)
        );
        assert_eq!(cpu_quota(1), 1000);
    }

    #[test]
    fn container_states_and_reasons() {
        let s = |state: cri::ContainerState, code: i32, reason: &str| cri::ContainerStatus {
            state: state as i32,
            exit_code: code,
            reason: reason.into(),
            started_at: 1_000_000_000,
            finished_at: 2_000_000_000,
            ..Default::default()
        };
        assert_eq!(
            container_state_of(&s(cri::ContainerState::ContainerRunning, 0, "")),
            ContainerState::Running {
                started_at: ts(1_000_000_000)
            }
        );
        let ContainerState::Exited {
            exit_code,
            reason,
            signal,
            finished_at,
            ..
        } = container_state_of(&s(cri::ContainerState::ContainerExited, 3, "Error"))
        else {
            panic!("not exited")
        };
        assert_eq!((exit_code, reason, signal), (3, ExitReason::Error, None));
        assert_eq!(finished_at, ts(2_000_000_000));
        let ContainerState::Exited { reason, signal, .. } =
            container_state_of(&s(cri::ContainerState::ContainerExited, 137, "OOMKilled"))
        else {
            panic!("not exited")
        };
        assert_eq!((reason, signal), (ExitReason::OomKilled, Some(9)));
        let ContainerState::Exited { reason, .. } =
            container_state_of(&s(cri::ContainerState::ContainerExited, 0, "Completed"))
        else {
            panic!("not exited")
        };
        assert_eq!(reason, ExitReason::Completed);
        assert_eq!(
            container_state_of(&s(cri::ContainerState::ContainerCreated, 0, "")),
            ContainerState::Created
        );
    }
}
