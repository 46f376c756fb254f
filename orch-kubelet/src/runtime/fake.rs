//! A scriptable in-memory runtime for tests, and the skeleton to copy when adding a runtime.
//!
//! Tests decide everything: which images exist or fail to pull, when a container exits and with
//! which code, what each probe and hook answers, whether a container ignores SIGTERM. Every
//! start and signal is recorded so a test can assert on order.

use super::*;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};

/// Something the fake runtime was asked to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    /// A container was started (name, attempt).
    Start(String, i32),
    /// A stop signal was sent (name, signal).
    Stop(String, StopSignal),
    /// A handler ran (name, kind).
    Handler(String, HandlerKind),
}

#[derive(Debug)]
struct FakeContainer {
    cfg: ContainerConfig,
    state: ContainerState,
}

#[derive(Debug, Default)]
struct Inner {
    present: BTreeSet<String>,
    pull_errors: HashMap<String, String>,
    pulls: Vec<String>,
    containers: HashMap<ContainerId, FakeContainer>,
    next: u64,
    calls: Vec<FakeCall>,
    handlers: HashMap<(String, HandlerKind), HandlerOutcome>,
    ignore_term: BTreeSet<String>,
    sandboxes: BTreeSet<String>,
    sandbox_error: Option<String>,
    sandboxes_created: u32,
}

/// The fake runtime. Cloning shares state.
#[derive(Debug, Clone, Default)]
pub struct FakeRuntime {
    inner: std::sync::Arc<Mutex<Inner>>,
}

impl FakeRuntime {
    /// An empty fake runtime: every image pulls instantly, every handler succeeds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks an image as already present.
    pub fn add_image(&self, image: &str) {
        self.inner.lock().present.insert(image.into());
    }

    /// Makes pulls of `image` fail with `message` (`None` clears the failure).
    pub fn fail_pull(&self, image: &str, message: Option<&str>) {
        let mut i = self.inner.lock();
        match message {
            Some(m) => i.pull_errors.insert(image.into(), m.into()),
            None => i.pull_errors.remove(image),
        };
    }

    /// Images pulled so far, in order.
    pub fn pulls(&self) -> Vec<String> {
        self.inner.lock().pulls.clone()
    }

    /// Makes sandbox creation fail.
    pub fn fail_sandbox(&self, message: Option<&str>) {
        self.inner.lock().sandbox_error = message.map(str::to_string);
    }

    /// Makes the sandbox of pod `pod_uid` die (as a deleted network namespace would):
    /// [`ContainerRuntime::sandbox_alive`] answers false until the sandbox is created again.
    /// The pod's containers keep running (the worker has to stop them). Returns false if the
    /// pod has no sandbox.
    pub fn kill_sandbox(&self, pod_uid: &str) -> bool {
        self.inner.lock().sandboxes.remove(pod_uid)
    }

    /// How many times a sandbox was created (each [`ContainerRuntime::run_sandbox`] call that
    /// succeeded), for asserting on recreation.
    pub fn sandboxes_created(&self) -> u32 {
        self.inner.lock().sandboxes_created
    }

    /// Sets what a container's probe or hook answers from now on.
    pub fn set_handler(&self, container: &str, kind: HandlerKind, outcome: HandlerOutcome) {
        self.inner
            .lock()
            .handlers
            .insert((container.into(), kind), outcome);
    }

    /// Makes `container` ignore SIGTERM (only SIGKILL stops it).
    pub fn ignore_term(&self, container: &str) {
        self.inner.lock().ignore_term.insert(container.into());
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.inner.lock().calls.clone()
    }

    /// Only the starts, as (container, attempt).
    pub fn starts(&self) -> Vec<(String, i32)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                FakeCall::Start(n, a) => Some((n, a)),
                _ => None,
            })
            .collect()
    }

    /// The running instance of `container`, if any.
    pub fn running(&self, container: &str) -> Option<ContainerId> {
        let i = self.inner.lock();
        i.containers
            .iter()
            .filter(|(_, c)| c.cfg.name == container)
            .filter(|(_, c)| matches!(c.state, ContainerState::Running { .. }))
            .map(|(id, _)| id.clone())
            .next()
    }

    /// The config of the latest start of `container`.
    pub fn last_config(&self, container: &str) -> Option<ContainerConfig> {
        let i = self.inner.lock();
        i.containers
            .values()
            .filter(|c| c.cfg.name == container)
            .max_by_key(|c| c.cfg.attempt)
            .map(|c| c.cfg.clone())
    }

    /// Makes the running instance of `container` exit with `code` at `at`.
    /// Returns false if it is not running.
    pub fn exit(&self, container: &str, code: i32, at: Timestamp) -> bool {
        self.exit_with(container, code, None, at)
    }

    /// Like [`exit`](Self::exit) with an explicit reason (e.g. OOMKilled).
    pub fn exit_with(
        &self,
        container: &str,
        code: i32,
        reason: Option<ExitReason>,
        at: Timestamp,
    ) -> bool {
        let Some(id) = self.running(container) else {
            return false;
        };
        let mut i = self.inner.lock();
        let Some(c) = i.containers.get_mut(&id) else {
            return false;
        };
        if let ContainerState::Running { started_at } = c.state {
            let reason = reason.unwrap_or(if code == 0 {
                ExitReason::Completed
            } else {
                ExitReason::Error
            });
            c.state = ContainerState::Exited {
                started_at,
                finished_at: at,
                exit_code: code,
                signal: None,
                reason,
            };
            return true;
        }
        false
    }
}

impl ContainerRuntime for FakeRuntime {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            name: "fake".into(),
            version: "0.0.1".into(),
        }
    }

    fn image_status(&self, image: &str) -> Option<ImageInfo> {
        let i = self.inner.lock();
        i.present.contains(image).then(|| ImageInfo {
            reference: image.into(),
            id: format!("fake://{image}"),
            size_bytes: 1,
        })
    }

    fn pull_image(&self, image: &str, _ctx: &PullContext, _now: Timestamp) -> PullOutcome {
        let mut i = self.inner.lock();
        i.pulls.push(image.into());
        if let Some(m) = i.pull_errors.get(image) {
            return PullOutcome::Failed(m.clone());
        }
        i.present.insert(image.into());
        PullOutcome::Ready(ImageInfo {
            reference: image.into(),
            id: format!("fake://{image}"),
            size_bytes: 1,
        })
    }

    fn list_images(&self) -> Vec<ImageInfo> {
        let present: Vec<String> = self.inner.lock().present.iter().cloned().collect();
        present
            .iter()
            .filter_map(|p| self.image_status(p))
            .collect()
    }

    fn run_sandbox(&self, cfg: &SandboxConfig) -> Result<SandboxInfo, RuntimeError> {
        let mut i = self.inner.lock();
        if let Some(m) = &i.sandbox_error {
            return Err(RuntimeError::Sandbox(m.clone()));
        }
        if i.sandboxes.insert(cfg.pod_uid.clone()) {
            i.sandboxes_created += 1;
        }
        // The first sandbox gets 10.0.0.7, each recreation the next address (the IP may change).
        Ok(SandboxInfo {
            ip: format!("10.0.0.{}", 6 + i.sandboxes_created),
        })
    }

    fn remove_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        self.inner.lock().sandboxes.remove(pod_uid);
        Ok(())
    }

    fn sandbox_alive(&self, pod_uid: &str) -> bool {
        self.inner.lock().sandboxes.contains(pod_uid)
    }

    fn start_container(
        &self,
        cfg: &ContainerConfig,
        now: Timestamp,
    ) -> Result<ContainerId, RuntimeError> {
        let mut i = self.inner.lock();
        i.next += 1;
        let id = format!("{:016x}", i.next);
        i.calls.push(FakeCall::Start(cfg.name.clone(), cfg.attempt));
        i.containers.insert(
            id.clone(),
            FakeContainer {
                cfg: cfg.clone(),
                state: ContainerState::Running { started_at: now },
            },
        );
        Ok(id)
    }

    fn container_state(&self, id: &str, _now: Timestamp) -> Option<ContainerState> {
        self.inner
            .lock()
            .containers
            .get(id)
            .map(|c| c.state.clone())
    }

    fn stop_container(
        &self,
        id: &str,
        signal: StopSignal,
        now: Timestamp,
    ) -> Result<(), RuntimeError> {
        let mut i = self.inner.lock();
        let name = i
            .containers
            .get(id)
            .map(|c| c.cfg.name.clone())
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        i.calls.push(FakeCall::Stop(name.clone(), signal));
        let ignores = i.ignore_term.contains(&name);
        let Some(c) = i.containers.get_mut(id) else {
            return Err(RuntimeError::NotFound(id.into()));
        };
        if let ContainerState::Running { started_at } = c.state {
            let (code, sig) = match signal {
                StopSignal::Term if ignores => return Ok(()),
                StopSignal::Term => (143, 15),
                StopSignal::Kill => (137, 9),
            };
            c.state = ContainerState::Exited {
                started_at,
                finished_at: now,
                exit_code: code,
                signal: Some(sig),
                reason: ExitReason::Error,
            };
        }
        Ok(())
    }

    fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.lock().containers.remove(id);
        Ok(())
    }

    fn list_containers(&self) -> Vec<ContainerRecord> {
        let i = self.inner.lock();
        i.containers
            .iter()
            .map(|(id, c)| ContainerRecord {
                id: id.clone(),
                pod_uid: c.cfg.pod_uid.clone(),
                name: c.cfg.name.clone(),
                attempt: c.cfg.attempt,
                image: c.cfg.image.clone(),
            })
            .collect()
    }

    fn run_handler(
        &self,
        id: &str,
        kind: HandlerKind,
        _action: &HandlerAction,
        _target: &HandlerTarget,
        _timeout: Duration,
        _now: Timestamp,
    ) -> HandlerOutcome {
        let mut i = self.inner.lock();
        let name = i
            .containers
            .get(id)
            .map(|c| c.cfg.name.clone())
            .unwrap_or_default();
        i.calls.push(FakeCall::Handler(name.clone(), kind));
        i.handlers
            .get(&(name, kind))
            .cloned()
            .unwrap_or(HandlerOutcome::Success)
    }

    fn log_path(&self, _id: &str) -> Option<PathBuf> {
        None
    }
}
