//! The simulated runtime: no processes; behaviour comes from pod annotations and time comes
//! from the caller (a [`Clock`](orch_types::clock::Clock)), so it runs in virtual time.
//!
//! | annotation | meaning | default |
//! |---|---|---|
//! | `sim.orch.dev/pull-seconds` | image pull time (first pull per image) | `0` |
//! | `sim.orch.dev/start-seconds` | time from create to running | `0` |
//! | `sim.orch.dev/run-seconds` | run time before exiting | forever (init containers: `0`) |
//! | `sim.orch.dev/exit-code` | exit code after `run-seconds` | `0` |
//! | `sim.orch.dev/ready-after-seconds` | readiness probe succeeds from this age on | `0` |
//! | `sim.orch.dev/fail-liveness-after-seconds` | liveness probe fails from this age on | never |
//! | `sim.orch.dev/pull-error` | every pull of the pod's images fails with this message | none |
//! | `sim.orch.dev/sandbox-dies-after-seconds` | the pod sandbox dies this long after it was created (each new sandbox again), so the kubelet kills the containers, creates a new sandbox and re-runs the init containers | never |
//! | `sim.orch.dev/cpu-usage` | CPU each running container uses, a quantity (`250m`, `1`), as `/stats/summary` and `kubectl top` report it | `0` |
//! | `sim.orch.dev/memory-usage` | memory working set of each running container, a quantity (`64Mi`) | `0` |
//!
//! Every key also accepts a per-container form, `<key>.<container-name>` (e.g.
//! `sim.orch.dev/run-seconds.migrate`), which wins over the pod-wide one. Values are seconds,
//! fractions allowed, except the two usage keys, which are quantities (an invalid one counts
//! as `0`, with a warning). SIGTERM ends a container at once with exit code 0 (a well-behaved app);
//! SIGKILL with 137. Probes and hooks other than those above succeed, whatever their type
//! (`exec`, `httpGet`, `tcpSocket`, `grpc`).
//!
//! `kubectl exec` gets a scripted reply ([`ContainerRuntime::exec`]): `exit N` exits with `N`,
//! any other command prints `sim: would run [ARGV…] in container NAME` and exits 0; `kubectl
//! attach` gets one scripted line, `sim: attached to container NAME, which runs no process`, and
//! ends with success; port-forward is refused before the upgrade with 400 `BadRequest` (the
//! simulated pods have no network: nothing listens on any port), never a fake connection.
//!
//! Sandbox death is noticed at the runtime's latest time: the latest `now` it was handed by
//! any call (the kubelet's clock is shared and only moves forward), and
//! [`ContainerRuntime::next_change`] announces it so virtual time jumps there.

use super::*;
use parking_lot::Mutex;
use std::collections::HashMap;

/// Prefix of every sim annotation.
pub const PREFIX: &str = "sim.orch.dev/";

/// Why port-forward is refused on the sim runtime (400 `BadRequest`).
pub const NO_NETWORK: &str =
    "the sim runtime has no network: its pods run no processes and listen on no port, so there is nothing to forward to";

/// The line `kubectl attach` gets from container `name` on the sim runtime.
pub fn attach_reply(name: &str) -> String {
    format!("sim: attached to container {name}, which runs no process")
}

/// A container: what `list_containers` reports of its config (not the whole config, whose
/// environment and annotations the simulation has no use for once the timings are known).
#[derive(Debug, Clone)]
struct SimContainer {
    pod_uid: String,
    name: String,
    attempt: i32,
    image: String,
    start_at: Timestamp,
    exit_at: Option<Timestamp>,
    exit_code: i32,
    stopped: Option<(Timestamp, i32, i32)>,
    /// `cpu-usage` in nano-cores and `memory-usage` in bytes.
    usage: (u64, u64),
}

#[derive(Debug, Default)]
struct Inner {
    images: HashMap<String, ImageInfo>,
    pulls: HashMap<String, Timestamp>,
    containers: HashMap<ContainerId, SimContainer>,
    next: u64,
    next_ip: u32,
    sandboxes: HashMap<String, SimSandbox>,
    /// The latest `now` any call was handed.
    latest: Option<Timestamp>,
}

#[derive(Debug, Clone)]
struct SimSandbox {
    ip: String,
    created_at: Option<Timestamp>,
    /// Set at the pod's first container start (when the annotations are known).
    dies_at: Option<Timestamp>,
    armed: bool,
}

impl Inner {
    fn saw(&mut self, now: Timestamp) {
        self.latest = Some(self.latest.map_or(now, |l| l.max(now)));
    }
}

/// The simulated runtime (one per simulated node; cloning shares state).
#[derive(Debug, Clone, Default)]
pub struct SimRuntime {
    inner: std::sync::Arc<Mutex<Inner>>,
    node_index: u32,
}

fn lookup(ann: &BTreeMap<String, String>, key: &str, container: &str) -> Option<String> {
    ann.get(&format!("{PREFIX}{key}.{container}"))
        .or_else(|| ann.get(&format!("{PREFIX}{key}")))
        .cloned()
}

fn seconds(ann: &BTreeMap<String, String>, key: &str, container: &str) -> Option<Duration> {
    let v = lookup(ann, key, container)?;
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        _ => {
            tracing::warn!(annotation = %key, value = %v, "ignoring invalid sim annotation (want seconds)");
            None
        }
    }
}

/// A usage annotation as a quantity in `unit`s per whole unit (`1e9` nano-cores per core, `1`
/// byte per byte), rounded up; absent or invalid = 0.
fn usage(ann: &BTreeMap<String, String>, key: &str, container: &str, nano: bool) -> u64 {
    let Some(v) = lookup(ann, key, container) else {
        return 0;
    };
    match v.trim().parse::<orch_types::quantity::Quantity>() {
        Ok(q) if q.nanos() >= 0 => {
            let n = if nano {
                q.nanos()
            } else {
                i128::from(q.value())
            };
            u64::try_from(n).unwrap_or(u64::MAX)
        }
        _ => {
            tracing::warn!(annotation = %key, value = %v, "ignoring invalid sim annotation (want a quantity)");
            0
        }
    }
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(t)
}

fn age(now: Timestamp, since: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO)
}

use jiff::SignedDuration;

impl SimRuntime {
    /// A sim runtime; `node_index` picks the pod IP range `10.<244+i/256>.<i%256>.0/24`-ish.
    pub fn new(node_index: u32) -> Self {
        Self {
            inner: Default::default(),
            node_index,
        }
    }

    fn state_of(c: &SimContainer, now: Timestamp) -> ContainerState {
        if let Some((at, code, signal)) = c.stopped {
            return ContainerState::Exited {
                started_at: c.start_at,
                finished_at: at,
                exit_code: code,
                signal: (signal != 0).then_some(signal),
                reason: if code == 0 {
                    ExitReason::Completed
                } else {
                    ExitReason::Error
                },
            };
        }
        if now < c.start_at {
            return ContainerState::Created;
        }
        match c.exit_at {
            Some(at) if at <= now => ContainerState::Exited {
                started_at: c.start_at,
                finished_at: at,
                exit_code: c.exit_code,
                signal: None,
                reason: if c.exit_code == 0 {
                    ExitReason::Completed
                } else {
                    ExitReason::Error
                },
            },
            _ => ContainerState::Running {
                started_at: c.start_at,
            },
        }
    }
}

fn image_id(image: &str) -> String {
    // A stable fake digest: 64 hex digits from FNV-1a over the reference.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::new();
    for round in 0..4u8 {
        for b in image.bytes().chain([round]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    format!("{image}@sha256:{out}")
}

impl ContainerRuntime for SimRuntime {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            name: "sim".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn image_status(&self, image: &str) -> Option<ImageInfo> {
        self.inner.lock().images.get(image).cloned()
    }

    fn pull_image(&self, image: &str, ctx: &PullContext, now: Timestamp) -> PullOutcome {
        let mut i = self.inner.lock();
        i.saw(now);
        if let Some(info) = i.images.get(image) {
            return PullOutcome::Ready(info.clone());
        }
        match i.pulls.get(image).copied() {
            Some(ready) if ready <= now => {
                let info = ImageInfo {
                    reference: image.into(),
                    id: image_id(image),
                    size_bytes: 10 << 20,
                };
                i.pulls.remove(image);
                i.images.insert(image.into(), info.clone());
                PullOutcome::Ready(info)
            }
            Some(ready) => PullOutcome::InProgress {
                ready_at: Some(ready),
            },
            None => {
                if let Some(err) = lookup(&ctx.annotations, "pull-error", &ctx.container) {
                    return PullOutcome::Failed(err);
                }
                let d =
                    seconds(&ctx.annotations, "pull-seconds", &ctx.container).unwrap_or_default();
                i.pulls.insert(image.into(), plus(now, d));
                drop(i);
                self.pull_image(image, ctx, now)
            }
        }
    }

    fn list_images(&self) -> Vec<ImageInfo> {
        self.inner.lock().images.values().cloned().collect()
    }

    fn run_sandbox(&self, cfg: &SandboxConfig) -> Result<SandboxInfo, RuntimeError> {
        let mut i = self.inner.lock();
        if let Some(sb) = i.sandboxes.get(&cfg.pod_uid) {
            return Ok(SandboxInfo { ip: sb.ip.clone() });
        }
        i.next_ip += 1;
        let n = i.next_ip;
        let ip = format!(
            "10.{}.{}.{}",
            244 + (self.node_index / 256) % 12,
            self.node_index % 256,
            n % 254 + 1
        );
        let created_at = i.latest;
        i.sandboxes.insert(
            cfg.pod_uid.clone(),
            SimSandbox {
                ip: ip.clone(),
                created_at,
                dies_at: None,
                armed: false,
            },
        );
        Ok(SandboxInfo { ip })
    }

    fn sandbox_alive(&self, pod_uid: &str) -> bool {
        let i = self.inner.lock();
        match (i.sandboxes.get(pod_uid), i.latest) {
            (None, _) => false,
            (Some(sb), Some(now)) => sb.dies_at.is_none_or(|d| now < d),
            (Some(_), None) => true,
        }
    }

    fn remove_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        self.inner.lock().sandboxes.remove(pod_uid);
        Ok(())
    }

    fn start_container(
        &self,
        cfg: &ContainerConfig,
        now: Timestamp,
    ) -> Result<ContainerId, RuntimeError> {
        let ann = &cfg.annotations;
        let start_at = plus(
            now,
            seconds(ann, "start-seconds", &cfg.name).unwrap_or_default(),
        );
        let run = seconds(ann, "run-seconds", &cfg.name)
            .or(cfg.run_to_completion.then_some(Duration::ZERO));
        let exit_code = lookup(ann, "exit-code", &cfg.name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut i = self.inner.lock();
        i.saw(now);
        if let Some(sb) = i.sandboxes.get_mut(&cfg.pod_uid) {
            if !sb.armed {
                sb.armed = true;
                sb.dies_at = seconds(ann, "sandbox-dies-after-seconds", &cfg.name)
                    .map(|d| plus(sb.created_at.unwrap_or(now), d));
            }
        }
        i.next += 1;
        let id = format!("{:064x}", i.next);
        i.containers.insert(
            id.clone(),
            SimContainer {
                pod_uid: cfg.pod_uid.clone(),
                name: cfg.name.clone(),
                attempt: cfg.attempt,
                image: cfg.image.clone(),
                start_at,
                exit_at: run.map(|r| plus(start_at, r)),
                exit_code,
                stopped: None,
                usage: (
                    usage(ann, "cpu-usage", &cfg.name, true),
                    usage(ann, "memory-usage", &cfg.name, false),
                ),
            },
        );
        Ok(id)
    }

    /// No processes to run: a scripted reply. `exit N` exits with `N`; any other command
    /// prints `sim: would run [ARGV…] in container NAME` on stdout and exits 0. Stdin is read
    /// and discarded.
    fn exec(&self, id: &str, req: &StreamRequest) -> Result<ProcessIo, StreamError> {
        let name = {
            let i = self.inner.lock();
            let c = i
                .containers
                .get(id)
                .ok_or_else(|| StreamError::NotRunning(id.into()))?;
            c.name.clone()
        };
        let code = match req.command.as_slice() {
            [exit, n] if exit == "exit" => n
                .parse::<i32>()
                .map_err(|_| StreamError::BadRequest(format!("exit: invalid code {n:?}")))?,
            _ => 0,
        };
        let reply = if code == 0 {
            format!("sim: would run {:?} in container {name}\n", req.command)
        } else {
            String::new()
        };
        Ok(ProcessIo {
            stdin: req
                .stdin
                .then(|| Box::new(std::io::sink()) as Box<dyn std::io::Write + Send>),
            stdout: req.stdout.then(|| {
                Box::new(std::io::Cursor::new(reply.into_bytes())) as Box<dyn std::io::Read + Send>
            }),
            stderr: None,
            resize: None,
            wait: Box::new(move || Ok(code)),
            cancel: None,
        })
    }

    /// No process to attach to: one scripted line on stdout (when asked for), stdin read and
    /// discarded, then the session ends with success.
    fn attach(&self, id: &str, req: &StreamRequest) -> Result<ProcessIo, StreamError> {
        let name = {
            let i = self.inner.lock();
            let c = i
                .containers
                .get(id)
                .ok_or_else(|| StreamError::NotRunning(id.into()))?;
            c.name.clone()
        };
        let reply = format!("{}\n", attach_reply(&name));
        Ok(ProcessIo {
            stdin: req
                .stdin
                .then(|| Box::new(std::io::sink()) as Box<dyn std::io::Write + Send>),
            stdout: req.stdout.then(|| {
                Box::new(std::io::Cursor::new(reply.into_bytes())) as Box<dyn std::io::Read + Send>
            }),
            stderr: None,
            resize: None,
            wait: Box::new(|| Ok(0)),
            cancel: None,
        })
    }

    /// Refused: simulated pods have no network namespace and nothing listens in them.
    fn port_forward_available(&self, pod_uid: &str) -> Result<(), StreamError> {
        let _ = pod_uid;
        Err(StreamError::BadRequest(NO_NETWORK.into()))
    }

    /// Refused as [`port_forward_available`](Self::port_forward_available) does.
    fn port_forward(&self, pod_uid: &str, port: u16) -> Result<std::net::TcpStream, StreamError> {
        let _ = (pod_uid, port);
        Err(StreamError::BadRequest(NO_NETWORK.into()))
    }

    fn container_state(&self, id: &str, now: Timestamp) -> Option<ContainerState> {
        let mut i = self.inner.lock();
        i.saw(now);
        i.containers.get(id).map(|c| Self::state_of(c, now))
    }

    fn stop_container(
        &self,
        id: &str,
        signal: StopSignal,
        now: Timestamp,
    ) -> Result<(), RuntimeError> {
        let mut i = self.inner.lock();
        let c = i
            .containers
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        if matches!(Self::state_of(c, now), ContainerState::Exited { .. }) {
            return Ok(());
        }
        c.stopped = Some(match signal {
            StopSignal::Term => (now, 0, 0),
            StopSignal::Kill => (now, 137, 9),
        });
        Ok(())
    }

    fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.lock().containers.remove(id);
        Ok(())
    }

    fn list_containers(&self) -> Vec<ContainerRecord> {
        self.inner
            .lock()
            .containers
            .iter()
            .map(|(id, c)| ContainerRecord {
                id: id.clone(),
                pod_uid: c.pod_uid.clone(),
                name: c.name.clone(),
                attempt: c.attempt,
                image: c.image.clone(),
            })
            .collect()
    }

    fn run_handler(
        &self,
        id: &str,
        kind: HandlerKind,
        _action: &HandlerAction,
        target: &HandlerTarget,
        _timeout: Duration,
        now: Timestamp,
    ) -> HandlerOutcome {
        let started = match self.container_state(id, now) {
            Some(ContainerState::Running { started_at }) => started_at,
            _ => return HandlerOutcome::Failure("container is not running".into()),
        };
        let ann = &target.annotations;
        let c = &target.container;
        match kind {
            HandlerKind::Readiness => {
                let after = seconds(ann, "ready-after-seconds", c).unwrap_or_default();
                if age(now, started) >= after {
                    HandlerOutcome::Success
                } else {
                    HandlerOutcome::Failure("simulated: not ready yet".into())
                }
            }
            HandlerKind::Liveness => match seconds(ann, "fail-liveness-after-seconds", c) {
                Some(after) if age(now, started) >= after => {
                    HandlerOutcome::Failure("simulated: liveness failure".into())
                }
                _ => HandlerOutcome::Success,
            },
            _ => HandlerOutcome::Success,
        }
    }

    fn log_path(&self, _id: &str) -> Option<PathBuf> {
        None
    }

    fn container_usage(&self, id: &str, now: Timestamp) -> Option<ContainerUsage> {
        let i = self.inner.lock();
        let c = i.containers.get(id)?;
        if !matches!(Self::state_of(c, now), ContainerState::Running { .. }) {
            return None;
        }
        let (cpu, mem) = c.usage;
        let ran = age(now, c.start_at);
        Some(ContainerUsage {
            cpu_nano_cores: cpu,
            cpu_core_nano_seconds: Some(
                u64::try_from(u128::from(cpu) * ran.as_nanos() / 1_000_000_000).unwrap_or(u64::MAX),
            ),
            memory_working_set_bytes: mem,
            window: Duration::ZERO,
        })
    }

    fn needs_polling(&self) -> bool {
        false
    }

    fn next_change(&self, id: &str, now: Timestamp) -> Option<Timestamp> {
        let mut i = self.inner.lock();
        i.saw(now);
        let c = i.containers.get(id)?;
        if c.stopped.is_some() {
            return None;
        }
        let death = i
            .sandboxes
            .get(&c.pod_uid)
            .and_then(|sb| sb.dies_at)
            .filter(|t| *t > now);
        let own = if now < c.start_at {
            Some(c.start_at)
        } else {
            c.exit_at.filter(|t| *t > now)
        };
        match (own, death) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn cfg(name: &str, ann: &[(&str, &str)], init: bool) -> ContainerConfig {
        ContainerConfig {
            pod_uid: "u".into(),
            name: name.into(),
            image: "img:1".into(),
            annotations: ann
                .iter()
                .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
                .collect(),
            run_to_completion: init,
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_long_running_and_init_completes_at_once() {
        let rt = SimRuntime::new(0);
        let app = rt.start_container(&cfg("app", &[], false), t(0)).unwrap();
        let init = rt.start_container(&cfg("init", &[], true), t(0)).unwrap();
        assert!(matches!(
            rt.container_state(&app, t(86_400)),
            Some(ContainerState::Running { .. })
        ));
        assert!(matches!(
            rt.container_state(&init, t(0)),
            Some(ContainerState::Exited { exit_code: 0, .. })
        ));
        assert_eq!(rt.next_change(&app, t(5)), None);
    }

    #[test]
    fn annotations_drive_start_run_exit_and_probes() {
        let rt = SimRuntime::new(0);
        let ann = [
            ("start-seconds", "2"),
            ("run-seconds", "10"),
            ("exit-code", "1"),
            ("exit-code.special", "7"),
            ("ready-after-seconds", "3"),
            ("fail-liveness-after-seconds", "5"),
        ];
        let id = rt.start_container(&cfg("app", &ann, false), t(0)).unwrap();
        assert_eq!(rt.container_state(&id, t(1)), Some(ContainerState::Created));
        assert_eq!(rt.next_change(&id, t(1)), Some(t(2)));
        assert_eq!(rt.next_change(&id, t(3)), Some(t(12)));
        let target = HandlerTarget {
            annotations: ann
                .iter()
                .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
                .collect(),
            container: "app".into(),
            ..Default::default()
        };
        let exec = HandlerAction::Exec(Default::default());
        let probe = |k, at| rt.run_handler(&id, k, &exec, &target, Duration::from_secs(1), t(at));
        assert!(matches!(
            probe(HandlerKind::Readiness, 4),
            HandlerOutcome::Failure(_)
        ));
        assert_eq!(probe(HandlerKind::Readiness, 5), HandlerOutcome::Success);
        assert_eq!(probe(HandlerKind::Liveness, 6), HandlerOutcome::Success);
        assert!(matches!(
            probe(HandlerKind::Liveness, 7),
            HandlerOutcome::Failure(_)
        ));
        match rt.container_state(&id, t(12)) {
            Some(ContainerState::Exited {
                exit_code,
                finished_at,
                ..
            }) => {
                assert_eq!((exit_code, finished_at), (1, t(12)))
            }
            other => panic!("{other:?}"),
        }
        let special = rt
            .start_container(&cfg("special", &ann, false), t(0))
            .unwrap();
        assert!(matches!(
            rt.container_state(&special, t(20)),
            Some(ContainerState::Exited { exit_code: 7, .. })
        ));
    }

    #[test]
    fn pulls_take_their_time_once_and_signals_stop() {
        let rt = SimRuntime::new(3);
        let ctx = PullContext {
            annotations: [(format!("{PREFIX}pull-seconds"), "4".to_string())].into(),
            container: "app".into(),
            ..Default::default()
        };
        assert_eq!(
            rt.pull_image("img:1", &ctx, t(0)),
            PullOutcome::InProgress {
                ready_at: Some(t(4))
            }
        );
        assert!(matches!(
            rt.pull_image("img:1", &ctx, t(4)),
            PullOutcome::Ready(_)
        ));
        assert!(rt.image_status("img:1").is_some());
        let bad = PullContext {
            annotations: [(
                format!("{PREFIX}pull-error"),
                "manifest unknown".to_string(),
            )]
            .into(),
            ..Default::default()
        };
        assert_eq!(
            rt.pull_image("other:1", &bad, t(0)),
            PullOutcome::Failed("manifest unknown".into())
        );
        let id = rt.start_container(&cfg("app", &[], false), t(0)).unwrap();
        rt.stop_container(&id, StopSignal::Term, t(3)).unwrap();
        assert!(
            matches!(rt.container_state(&id, t(9)), Some(ContainerState::Exited { exit_code: 0, finished_at, .. }) if finished_at == t(3))
        );
        let ip = rt
            .run_sandbox(&SandboxConfig {
                pod_uid: "u".into(),
                ..Default::default()
            })
            .unwrap()
            .ip;
        assert_eq!(ip, "10.244.3.2");
    }

    #[test]
    fn usage_comes_from_annotations_while_running() {
        let rt = SimRuntime::new(0);
        let ann = [
            ("cpu-usage", "250m"),
            ("memory-usage", "64Mi"),
            ("memory-usage.side", "1Ki"),
            ("start-seconds", "1"),
            ("run-seconds", "10"),
        ];
        let app = rt.start_container(&cfg("app", &ann, false), t(0)).unwrap();
        let side = rt.start_container(&cfg("side", &ann, false), t(0)).unwrap();
        assert_eq!(rt.container_usage(&app, t(0)), None, "not started yet");
        let u = rt.container_usage(&app, t(5)).unwrap();
        assert_eq!(u.cpu_nano_cores, 250_000_000);
        assert_eq!(u.memory_working_set_bytes, 64 * 1024 * 1024);
        assert_eq!(
            u.cpu_core_nano_seconds,
            Some(1_000_000_000),
            "0.25 core for 4s"
        );
        let u = rt.container_usage(&side, t(5)).unwrap();
        assert_eq!(
            u.memory_working_set_bytes, 1024,
            "the per-container key wins"
        );
        assert_eq!(rt.container_usage(&app, t(20)), None, "exited");
        let plain = rt.start_container(&cfg("p", &[], false), t(0)).unwrap();
        let bad = rt
            .start_container(&cfg("b", &[("cpu-usage", "lots")], false), t(0))
            .unwrap();
        for id in [plain, bad] {
            let u = rt.container_usage(&id, t(1)).unwrap();
            assert_eq!((u.cpu_nano_cores, u.memory_working_set_bytes), (0, 0));
        }
    }

    #[test]
    fn exec_and_attach_are_scripted_and_port_forward_is_refused() {
        use std::io::Read;
        let rt = SimRuntime::new(0);
        let app = rt.start_container(&cfg("app", &[], false), t(0)).unwrap();
        let req = |command: &[&str]| StreamRequest {
            command: command.iter().map(|s| s.to_string()).collect(),
            stdin: true,
            stdout: true,
            ..Default::default()
        };
        let out = |io: ProcessIo| {
            let mut s = String::new();
            io.stdout.unwrap().read_to_string(&mut s).unwrap();
            (s, (io.wait)().unwrap())
        };
        assert_eq!(
            out(rt.exec(&app, &req(&["echo", "hi"])).unwrap()),
            (
                "sim: would run [\"echo\", \"hi\"] in container app\n".into(),
                0
            )
        );
        assert_eq!(
            out(rt.exec(&app, &req(&["exit", "4"])).unwrap()),
            (String::new(), 4)
        );
        assert!(matches!(
            rt.exec(&app, &req(&["exit", "x"])),
            Err(StreamError::BadRequest(_))
        ));
        let attached = rt.attach(&app, &req(&[])).unwrap();
        assert!(attached.stdin.is_some());
        assert_eq!(out(attached), (format!("{}\n", attach_reply("app")), 0));
        assert!(matches!(
            rt.attach("nope", &req(&[])),
            Err(StreamError::NotRunning(_))
        ));
        assert_eq!(
            rt.port_forward_available("u"),
            Err(StreamError::BadRequest(NO_NETWORK.into()))
        );
        assert!(rt.port_forward("u", 80).is_err());
    }
}
