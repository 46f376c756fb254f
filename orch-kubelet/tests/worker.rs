//! Pod-worker rules on the fake runtime and a manual clock.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use orch_kubelet::runtime::fake::{FakeCall, FakeRuntime};
use orch_kubelet::runtime::{ContainerRuntime, HandlerKind, HandlerOutcome, StopSignal};
use orch_kubelet::worker::{Job, PodEvent, PodWorker, WorkerConfig};
use orch_types::clock::{Clock, ManualClock};
use serde_json::json;
use std::time::Duration;

struct H {
    clock: ManualClock,
    rt: FakeRuntime,
    w: PodWorker,
    events: Vec<PodEvent>,
    held: Vec<Job>,
    hold: Vec<HandlerKind>,
}

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "uid-1"},
        "spec": spec,
    }))
    .unwrap()
}

impl H {
    fn new(spec: serde_json::Value) -> Self {
        let clock = ManualClock::at_epoch_seconds(1_700_000_000);
        let cfg = WorkerConfig {
            node_name: "n1".into(),
            host_ip: "192.0.2.1".into(),
            allow_privileged: false,
            dns: Default::default(),
        };
        let w = PodWorker::new(cfg, pod(spec), clock.now());
        Self {
            clock,
            rt: FakeRuntime::new(),
            w,
            events: vec![],
            held: vec![],
            hold: vec![],
        }
    }
    fn now(&self) -> Timestamp {
        self.clock.now()
    }
    /// Ticks and answers every job at once (except kinds in `hold`), until quiet.
    fn step(&mut self) {
        for _ in 0..20 {
            let jobs = self.w.tick(self.now(), &self.rt);
            let mut any = false;
            for j in jobs {
                if self.hold.contains(&j.kind) {
                    self.held.push(j);
                    continue;
                }
                any = true;
                let out =
                    self.rt
                        .run_handler(&j.id, j.kind, &j.action, &j.target, j.timeout, self.now());
                self.w.handler_done(&j, out, self.now());
            }
            self.events.extend(self.w.take_events());
            if !any {
                break;
            }
        }
    }
    /// Advances one second at a time, stepping each second.
    fn run_for(&mut self, secs: u64) {
        for _ in 0..secs {
            self.clock.advance(Duration::from_secs(1));
            self.step();
        }
    }
    fn status(&mut self) -> PodStatus {
        let now = self.now();
        self.w.status(now)
    }
    fn phase(&mut self) -> String {
        self.status().phase.unwrap()
    }
    fn cond(&mut self, t: &str) -> (String, Option<String>, Option<String>) {
        let s = self.status();
        let c = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == t)
            .unwrap();
        (c.status, c.reason, c.message)
    }
    fn cs(&mut self, name: &str) -> k8s_openapi::api::core::v1::ContainerStatus {
        let s = self.status();
        s.container_statuses
            .into_iter()
            .flatten()
            .chain(s.init_container_statuses.into_iter().flatten())
            .find(|c| c.name == name)
            .unwrap()
    }
    fn waiting_reason(&mut self, name: &str) -> Option<String> {
        self.cs(name).state.unwrap().waiting.and_then(|w| w.reason)
    }
    fn reasons(&self) -> Vec<String> {
        self.events.iter().map(|e| e.reason.clone()).collect()
    }
    fn exit(&mut self, name: &str, code: i32) {
        assert!(self.rt.exit(name, code, self.now()), "{name} not running");
    }
}

#[test]
fn init_containers_run_one_at_a_time_in_order() {
    let mut h = H::new(json!({
        "initContainers": [{"name": "a", "image": "busybox:1"}, {"name": "b", "image": "busybox:1"}],
        "containers": [{"name": "app", "image": "nginx:1"}]
    }));
    h.step();
    assert_eq!(h.rt.starts(), vec![("a".to_string(), 0)]);
    assert_eq!(h.phase(), "Pending");
    assert_eq!(
        h.cond("Initialized"),
        (
            "False".into(),
            Some("ContainersNotInitialized".into()),
            Some("containers with incomplete status: [a b]".into())
        )
    );
    assert_eq!(h.waiting_reason("app").as_deref(), Some("PodInitializing"));
    assert_eq!(h.waiting_reason("b").as_deref(), Some("PodInitializing"));
    h.run_for(5);
    assert_eq!(h.rt.starts().len(), 1, "b must wait for a");
    h.exit("a", 0);
    h.step();
    assert_eq!(h.rt.starts().last().unwrap().0, "b");
    let a = h.cs("a");
    assert_eq!(
        a.state.unwrap().terminated.unwrap().reason.as_deref(),
        Some("Completed")
    );
    h.exit("b", 0);
    h.step();
    assert_eq!(h.rt.starts().last().unwrap().0, "app");
    assert_eq!(h.phase(), "Running");
    assert_eq!(h.cond("Initialized").0, "True");
    assert_eq!(h.cond("Ready").0, "True");
    assert_eq!(h.cond("PodReadyToStartContainers").0, "True");
}

#[test]
fn failed_init_container_fails_pod_when_restart_policy_never() {
    let mut h = H::new(json!({
        "restartPolicy": "Never",
        "initContainers": [{"name": "a", "image": "busybox:1"}],
        "containers": [{"name": "app", "image": "nginx:1"}]
    }));
    h.step();
    h.exit("a", 3);
    h.step();
    assert_eq!(h.phase(), "Failed");
    let a = h.cs("a").state.unwrap().terminated.unwrap();
    assert_eq!((a.exit_code, a.reason.as_deref()), (3, Some("Error")));
    assert_eq!(h.rt.starts().len(), 1, "app never starts, a never restarts");
    assert!(h.w.is_finished());
}

#[test]
fn failed_init_container_restarts_with_backoff_under_always() {
    let mut h = H::new(json!({
        "initContainers": [{"name": "a", "image": "busybox:1"}],
        "containers": [{"name": "app", "image": "nginx:1"}]
    }));
    h.step();
    h.exit("a", 1);
    h.step();
    assert_eq!(
        h.rt.starts(),
        vec![("a".into(), 0), ("a".into(), 1)],
        "first restart is immediate"
    );
    assert_eq!(h.phase(), "Pending");
    h.exit("a", 1);
    h.step();
    assert_eq!(h.waiting_reason("a").as_deref(), Some("CrashLoopBackOff"));
    let cs = h.cs("a");
    assert_eq!(cs.restart_count, 1);
    assert_eq!(cs.last_state.unwrap().terminated.unwrap().exit_code, 1);
    assert_eq!(h.phase(), "Pending");
    h.run_for(9);
    assert_eq!(h.rt.starts().len(), 2);
    h.run_for(1);
    assert_eq!(h.rt.starts().len(), 3);
    assert_eq!(h.cs("a").restart_count, 2);
}

#[test]
fn sidecar_starts_then_next_init_proceeds_while_it_runs() {
    let mut h = H::new(json!({
        "initContainers": [
            {"name": "proxy", "image": "envoy:1", "restartPolicy": "Always",
             "startupProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 10}},
            {"name": "migrate", "image": "busybox:1"}
        ],
        "containers": [{"name": "app", "image": "nginx:1"}]
    }));
    h.rt.set_handler(
        "proxy",
        HandlerKind::Startup,
        HandlerOutcome::Failure("not yet".into()),
    );
    h.step();
    assert_eq!(h.rt.starts(), vec![("proxy".to_string(), 0)]);
    h.run_for(2);
    assert_eq!(
        h.rt.starts().len(),
        1,
        "migrate waits for the sidecar to be started"
    );
    h.rt.set_handler("proxy", HandlerKind::Startup, HandlerOutcome::Success);
    h.run_for(1);
    assert_eq!(h.rt.starts().last().unwrap().0, "migrate");
    assert!(h.rt.running("proxy").is_some());
    h.exit("migrate", 0);
    h.step();
    assert_eq!(h.rt.starts().last().unwrap().0, "app");
    assert_eq!(h.phase(), "Running");
    // the sidecar counts for ContainersReady
    assert_eq!(h.cs("proxy").started, Some(true));
    assert_eq!(h.cond("ContainersReady").0, "True");
}

#[test]
fn sidecars_stop_after_main_containers_and_do_not_block_completion() {
    let mut h = H::new(json!({
        "restartPolicy": "Never",
        "initContainers": [{"name": "log", "image": "fluent:1", "restartPolicy": "Always"}],
        "containers": [{"name": "job", "image": "busybox:1"}]
    }));
    h.step();
    h.step();
    assert!(h.rt.running("job").is_some());
    h.exit("job", 0);
    h.step();
    assert!(h
        .rt
        .calls()
        .contains(&FakeCall::Stop("log".into(), StopSignal::Term)));
    h.step();
    assert_eq!(h.phase(), "Succeeded");
}

#[test]
fn post_start_hook_holds_running_state_until_it_returns() {
    let mut h = H::new(json!({
        "containers": [{"name": "app", "image": "nginx:1",
            "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "sleep 1"]}}}}]
    }));
    h.hold = vec![HandlerKind::PostStart];
    h.step();
    assert_eq!(h.held.len(), 1);
    assert_eq!(
        h.waiting_reason("app").as_deref(),
        Some("ContainerCreating")
    );
    assert_eq!(h.phase(), "Pending");
    let j = h.held.remove(0);
    let now = h.now();
    h.w.handler_done(&j, HandlerOutcome::Success, now);
    h.step();
    assert!(h.cs("app").state.unwrap().running.is_some());
    assert_eq!(h.phase(), "Running");
}

#[test]
fn failing_post_start_hook_kills_and_restarts_container() {
    let mut h = H::new(json!({
        "containers": [{"name": "app", "image": "nginx:1",
            "lifecycle": {"postStart": {"httpGet": {"path": "/hook", "port": 8080}}}}]
    }));
    h.rt.set_handler(
        "app",
        HandlerKind::PostStart,
        HandlerOutcome::Failure("connection refused".into()),
    );
    h.step();
    assert!(h.reasons().contains(&"FailedPostStartHook".to_string()));
    assert!(h
        .rt
        .calls()
        .contains(&FakeCall::Stop("app".into(), StopSignal::Term)));
    h.step();
    // restart policy Always: restarted (first restart immediate)
    assert_eq!(h.rt.starts(), vec![("app".into(), 0), ("app".into(), 1)]);
    assert_eq!(h.cs("app").restart_count, 1);
}

#[test]
fn liveness_failure_threshold_restarts_container() {
    let mut h = H::new(json!({
        "containers": [{"name": "app", "image": "nginx:1",
            "livenessProbe": {"exec": {"command": ["check"]}, "initialDelaySeconds": 5,
                              "periodSeconds": 10, "failureThreshold": 3}}]
    }));
    h.step();
    h.run_for(4);
    assert!(
        !h.rt
            .calls()
            .iter()
            .any(|c| matches!(c, FakeCall::Handler(_, HandlerKind::Liveness))),
        "initial delay"
    );
    h.run_for(1);
    assert_eq!(
        h.rt.calls()
            .iter()
            .filter(|c| matches!(c, FakeCall::Handler(_, HandlerKind::Liveness)))
            .count(),
        1
    );
    h.rt.set_handler(
        "app",
        HandlerKind::Liveness,
        HandlerOutcome::Failure("exit 1".into()),
    );
    h.run_for(10); // failure 1 at t=15
    h.run_for(10); // failure 2 at t=25
    assert_eq!(h.rt.starts().len(), 1);
    h.run_for(10); // failure 3 at t=35: kill and restart
    assert_eq!(h.rt.starts().len(), 2);
    let cs = h.cs("app");
    assert_eq!(cs.restart_count, 1);
    assert_eq!(cs.last_state.unwrap().terminated.unwrap().exit_code, 143);
    let unhealthy = h.reasons().iter().filter(|r| *r == "Unhealthy").count();
    assert_eq!(unhealthy, 3);
    assert!(h
        .events
        .iter()
        .any(|e| e.message == "Container app failed liveness probe, will be restarted"));
}

#[test]
fn readiness_thresholds_drive_ready_and_conditions() {
    let mut h = H::new(json!({
        "containers": [{"name": "app", "image": "nginx:1",
            "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1,
                               "successThreshold": 2, "failureThreshold": 2}}]
    }));
    h.step();
    assert!(!h.cs("app").ready, "one success is not enough");
    assert_eq!(
        h.cond("ContainersReady"),
        (
            "False".into(),
            Some("ContainersNotReady".into()),
            Some("containers with unready status: [app]".into())
        )
    );
    assert_eq!(h.cond("Ready").1.as_deref(), Some("ContainersNotReady"));
    h.run_for(1);
    assert!(h.cs("app").ready);
    assert_eq!(h.cond("Ready").0, "True");
    h.rt.set_handler(
        "app",
        HandlerKind::Readiness,
        HandlerOutcome::Failure("refused".into()),
    );
    h.run_for(1);
    assert!(h.cs("app").ready, "one failure is not enough");
    h.run_for(1);
    assert!(!h.cs("app").ready);
    assert_eq!(h.phase(), "Running");
    assert_eq!(h.rt.starts().len(), 1, "readiness never restarts");
}

#[test]
fn startup_probe_gates_liveness_and_readiness() {
    let mut h = H::new(json!({
        "containers": [{"name": "app", "image": "nginx:1",
            "startupProbe": {"exec": {"command": ["s"]}, "periodSeconds": 1, "failureThreshold": 5},
            "livenessProbe": {"exec": {"command": ["l"]}, "periodSeconds": 1},
            "readinessProbe": {"exec": {"command": ["r"]}, "periodSeconds": 1}}]
    }));
    h.rt.set_handler(
        "app",
        HandlerKind::Startup,
        HandlerOutcome::Failure("starting".into()),
    );
    h.step();
    h.run_for(3);
    let kinds: Vec<_> =
        h.rt.calls()
            .into_iter()
            .filter_map(|c| match c {
                FakeCall::Handler(_, k) => Some(k),
                _ => None,
            })
            .collect();
    assert!(kinds.iter().all(|k| *k == HandlerKind::Startup));
    assert_eq!(h.cs("app").started, Some(false));
    h.rt.set_handler("app", HandlerKind::Startup, HandlerOutcome::Success);
    h.run_for(1);
    assert_eq!(h.cs("app").started, Some(true));
    h.run_for(1);
    let kinds: Vec<_> =
        h.rt.calls()
            .into_iter()
            .filter_map(|c| match c {
                FakeCall::Handler(_, k) => Some(k),
                _ => None,
            })
            .collect();
    assert!(kinds.contains(&HandlerKind::Liveness) && kinds.contains(&HandlerKind::Readiness));
    assert!(h.cs("app").ready);
}

#[test]
fn startup_probe_failure_threshold_kills() {
    let mut h = H::new(json!({
        "containers": [{"name": "app", "image": "nginx:1",
            "startupProbe": {"exec": {"command": ["s"]}, "periodSeconds": 1, "failureThreshold": 3}}]
    }));
    h.rt.set_handler(
        "app",
        HandlerKind::Startup,
        HandlerOutcome::Failure("no".into()),
    );
    h.step();
    h.run_for(1);
    assert_eq!(h.rt.starts().len(), 1);
    h.run_for(1);
    assert_eq!(h.rt.starts().len(), 2);
    assert!(h
        .events
        .iter()
        .any(|e| e.message.contains("failed startup probe")));
}

#[test]
fn crash_loop_backoff_doubles_from_10s_to_300s() {
    let mut h = H::new(json!({"containers": [{"name": "app", "image": "nginx:1"}]}));
    h.step();
    let t0 = h.now();
    let mut start_times = vec![0i64];
    while start_times.len() < 9 {
        h.exit("app", 1);
        let before = h.rt.starts().len();
        loop {
            h.step();
            if h.rt.starts().len() > before {
                break;
            }
            h.clock.advance(Duration::from_secs(1));
        }
        start_times.push(h.now().duration_since(t0).as_secs());
    }
    let gaps: Vec<i64> = start_times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, vec![0, 10, 20, 40, 80, 160, 300, 300]);
    h.exit("app", 1);
    h.step();
    let w = h.cs("app").state.unwrap().waiting.unwrap();
    assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        w.message.as_deref(),
        Some("back-off 5m0s restarting failed container=app pod=p_default(uid-1)")
    );
    assert_eq!(
        h.phase(),
        "Running",
        "Always: restarting containers keep the pod Running"
    );
}

#[test]
fn backoff_resets_after_ten_minutes_of_running() {
    let mut h = H::new(json!({"containers": [{"name": "app", "image": "nginx:1"}]}));
    h.step();
    for _ in 0..3 {
        h.exit("app", 1);
        for _ in 0..100 {
            h.step();
            if h.rt.running("app").is_some() {
                break;
            }
            h.clock.advance(Duration::from_secs(1));
        }
    }
    assert_eq!(h.rt.starts().len(), 4);
    h.clock.advance(Duration::from_secs(601));
    h.step();
    h.exit("app", 1);
    h.step();
    assert_eq!(h.rt.starts().len(), 5, "restart at once after a long run");
}

#[test]
fn restart_policies_decide_phase() {
    for (policy, code, phase, starts) in [
        ("OnFailure", 0, "Succeeded", 1),
        ("OnFailure", 2, "Running", 2),
        ("Never", 2, "Failed", 1),
        ("Never", 0, "Succeeded", 1),
        ("Always", 0, "Running", 2),
    ] {
        let mut h = H::new(
            json!({"restartPolicy": policy, "containers": [{"name": "app", "image": "nginx:1"}]}),
        );
        h.step();
        h.exit("app", code);
        h.step();
        assert_eq!(h.phase(), phase, "{policy} exit {code}");
        assert_eq!(h.rt.starts().len(), starts, "{policy} exit {code}");
    }
}

#[test]
fn graceful_deletion_sends_term_then_kill_after_grace_then_deletes() {
    let mut h = H::new(
        json!({"terminationGracePeriodSeconds": 30, "containers": [{"name": "app", "image": "nginx:1"}]}),
    );
    h.rt.ignore_term("app");
    h.step();
    let mut p = h.w.pod().clone();
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        h.now(),
    ));
    p.metadata.deletion_grace_period_seconds = Some(30);
    h.w.update_pod(p);
    h.step();
    assert_eq!(
        h.rt.calls().last(),
        Some(&FakeCall::Stop("app".into(), StopSignal::Term))
    );
    h.run_for(29);
    assert!(!h
        .rt
        .calls()
        .contains(&FakeCall::Stop("app".into(), StopSignal::Kill)));
    assert!(!h.w.wants_delete());
    h.run_for(1);
    assert!(h
        .rt
        .calls()
        .contains(&FakeCall::Stop("app".into(), StopSignal::Kill)));
    assert!(h.w.wants_delete());
    let t = h.cs("app").state.unwrap().terminated.unwrap();
    assert_eq!(t.exit_code, 137);
    assert_eq!(h.phase(), "Failed");
    assert!(h
        .events
        .iter()
        .any(|e| e.reason == "Killing" && e.message == "Stopping container app"));
}

#[test]
fn pre_stop_runs_first_and_gets_one_two_second_extension() {
    let mut h = H::new(
        json!({"terminationGracePeriodSeconds": 5, "containers": [{"name": "app", "image": "nginx:1",
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "100"]}}}}]}),
    );
    h.rt.ignore_term("app");
    h.hold = vec![HandlerKind::PreStop];
    h.step();
    let mut p = h.w.pod().clone();
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        h.now(),
    ));
    h.w.update_pod(p);
    h.step();
    assert_eq!(h.held.len(), 1, "preStop started");
    assert!(
        !h.rt.calls().iter().any(|c| matches!(c, FakeCall::Stop(..))),
        "no SIGTERM while preStop runs"
    );
    h.run_for(5);
    assert_eq!(
        h.rt.calls().last(),
        Some(&FakeCall::Stop("app".into(), StopSignal::Term))
    );
    h.run_for(1);
    assert!(!h
        .rt
        .calls()
        .contains(&FakeCall::Stop("app".into(), StopSignal::Kill)));
    h.run_for(1);
    assert_eq!(
        h.rt.calls().last(),
        Some(&FakeCall::Stop("app".into(), StopSignal::Kill))
    );
}

#[test]
fn force_deletion_kills_at_once() {
    let mut h = H::new(json!({"containers": [{"name": "app", "image": "nginx:1"}]}));
    h.rt.ignore_term("app");
    h.step();
    h.w.pod_removed();
    h.step();
    assert_eq!(
        h.rt.calls().last(),
        Some(&FakeCall::Stop("app".into(), StopSignal::Kill))
    );
    assert!(h.w.is_finished());
    assert!(!h.w.wants_delete(), "object already gone");
}

#[test]
fn image_pull_policies_and_backoff() {
    let mut h = H::new(
        json!({"containers": [{"name": "app", "image": "nginx:1", "imagePullPolicy": "Never"}]}),
    );
    h.step();
    let w = h.cs("app").state.unwrap().waiting.unwrap();
    assert_eq!(w.reason.as_deref(), Some("ErrImageNeverPull"));
    assert_eq!(
        w.message.as_deref(),
        Some("Container image \"nginx:1\" is not present with pull policy of Never")
    );
    assert_eq!(h.phase(), "Pending");

    let mut h = H::new(json!({"containers": [{"name": "app", "image": "nginx:1"}]}));
    h.rt.add_image("nginx:1");
    h.step();
    assert!(
        h.rt.pulls().is_empty(),
        "IfNotPresent (tagged) does not pull a present image"
    );

    let mut h = H::new(json!({"containers": [{"name": "app", "image": "nginx"}]}));
    h.rt.add_image("nginx");
    h.step();
    assert_eq!(
        h.rt.pulls(),
        vec!["nginx".to_string()],
        "untagged means :latest means Always"
    );

    let mut h = H::new(json!({"containers": [{"name": "app", "image": "nope:1"}]}));
    h.rt.fail_pull("nope:1", Some("not found"));
    h.step();
    assert_eq!(h.waiting_reason("app").as_deref(), Some("ErrImagePull"));
    h.run_for(1);
    assert_eq!(h.waiting_reason("app").as_deref(), Some("ImagePullBackOff"));
    assert_eq!(h.rt.pulls().len(), 1);
    h.run_for(9);
    assert_eq!(h.rt.pulls().len(), 2, "retry after 10 s");
    assert_eq!(h.waiting_reason("app").as_deref(), Some("ErrImagePull"));
    h.rt.fail_pull("nope:1", None);
    h.run_for(20);
    assert!(h.rt.running("app").is_some());
    assert!(h.reasons().contains(&"Pulling".to_string()));
}

#[test]
fn privileged_container_is_refused_without_allow_privileged() {
    let mut h = H::new(
        json!({"containers": [{"name": "app", "image": "nginx:1", "securityContext": {"privileged": true}}]}),
    );
    h.step();
    let w = h.cs("app").state.unwrap().waiting.unwrap();
    assert_eq!(w.reason.as_deref(), Some("CreateContainerConfigError"));
    assert!(w
        .message
        .unwrap()
        .contains("specified privileged container, but is disallowed"));
    assert!(h.rt.starts().is_empty());
}

#[test]
fn missing_config_map_is_a_config_error() {
    let mut h = H::new(json!({"containers": [{"name": "app", "image": "nginx:1",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}]}));
    h.step();
    let w = h.cs("app").state.unwrap().waiting.unwrap();
    assert_eq!(w.reason.as_deref(), Some("CreateContainerConfigError"));
    assert_eq!(w.message.as_deref(), Some("configmap \"cfg\" not found"));
}

#[test]
fn env_and_command_expansion_reach_the_runtime() {
    let mut h = H::new(json!({"containers": [{"name": "app", "image": "nginx:1",
        "command": ["echo", "$(GREETING) $(POD)"],
        "env": [{"name": "GREETING", "value": "hi"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}));
    h.step();
    let cfg = h.rt.last_config("app").unwrap();
    assert_eq!(cfg.command, vec!["echo", "hi p"]);
}

#[test]
fn adopt_reattaches_without_duplicates() {
    let mut h = H::new(json!({"containers": [{"name": "app", "image": "nginx:1"}]}));
    h.step();
    assert_eq!(h.rt.starts().len(), 1);
    let cfg = WorkerConfig {
        node_name: "n1".into(),
        host_ip: "192.0.2.1".into(),
        allow_privileged: false,
        dns: Default::default(),
    };
    let mut fresh = PodWorker::new(cfg, h.w.pod().clone(), h.now());
    fresh.adopt(&h.rt.list_containers(), &h.rt, h.now());
    fresh.tick(h.now(), &h.rt);
    assert_eq!(h.rt.starts().len(), 1, "no second start after re-attach");
    assert_eq!(fresh.status(h.now()).phase.as_deref(), Some("Running"));
}

#[test]
fn status_snapshot_running_pod_with_restart() {
    let mut h = H::new(json!({
        "initContainers": [{"name": "init", "image": "busybox:1"}],
        "containers": [{"name": "app", "image": "nginx:1",
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}}]
    }));
    h.step();
    h.exit("init", 0);
    h.step();
    h.run_for(3);
    h.exit("app", 2);
    h.step();
    let s = h.status();
    insta::assert_yaml_snapshot!(s, {
        ".conditions[].lastTransitionTime" => "[time]",
        ".startTime" => "[time]",
        ".**.startedAt" => "[time]",
        ".**.finishedAt" => "[time]",
    });
}

#[test]
fn sim_runtime_in_virtual_time_jumps_from_timer_to_timer() {
    use orch_kubelet::runtime::sim::SimRuntime;
    let clock = ManualClock::at_epoch_seconds(1_700_000_000);
    let rt = SimRuntime::new(0);
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "uid-1", "annotations": {
            "sim.orch.dev/pull-seconds": "5",
            "sim.orch.dev/start-seconds": "1",
            "sim.orch.dev/fail-liveness-after-seconds": "30"
        }},
        "spec": {"containers": [{"name": "app", "image": "nginx:1",
            "livenessProbe": {"exec": {"command": ["x"]}, "periodSeconds": 10, "failureThreshold": 3}}]}
    }))
    .unwrap();
    let cfg = WorkerConfig {
        node_name: "n1".into(),
        host_ip: "192.0.2.1".into(),
        allow_privileged: false,
        dns: Default::default(),
    };
    let mut w = PodWorker::new(cfg, p, clock.now());
    let t0 = clock.now();
    let mut steps = 0;
    let mut running_at = None;
    while steps < 100 {
        steps += 1;
        let now = clock.now();
        for j in w.tick(now, &rt) {
            let out = rt.run_handler(&j.id, j.kind, &j.action, &j.target, j.timeout, now);
            w.handler_done(&j, out, now);
        }
        let s = w.status(clock.now());
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        if running_at.is_none() && cs.state.as_ref().unwrap().running.is_some() {
            running_at = Some(clock.now().duration_since(t0).as_secs());
        }
        if cs.restart_count == 1 {
            break;
        }
        let next = w
            .next_wakeup(clock.now(), &rt)
            .expect("a timer is always pending");
        clock.set(next);
    }
    assert_eq!(running_at, Some(6), "5 s pull + 1 s start");
    // liveness fails from age 30 s (t=36): failures at 36, 46, 56 → killed and restarted
    assert_eq!(clock.now().duration_since(t0).as_secs(), 56);
    assert!(steps < 20, "jumped between timers ({steps} steps)");
}

#[test]
fn image_change_restarts_the_container_even_under_never() {
    let mut h = H::new(
        json!({"restartPolicy": "Never", "containers": [{"name": "app", "image": "nginx:1"}]}),
    );
    h.step();
    let mut p = h.w.pod().clone();
    p.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
    h.w.update_pod(p);
    h.step();
    assert_eq!(h.rt.starts(), vec![("app".into(), 0), ("app".into(), 1)]);
    assert_eq!(h.rt.last_config("app").unwrap().image, "nginx:2");
    let cs = h.cs("app");
    assert_eq!((cs.image.as_str(), cs.restart_count), ("nginx:2", 1));
    assert!(h
        .events
        .iter()
        .any(|e| e.message == "Container app definition changed, will be restarted"));
    assert_eq!(h.phase(), "Running");
}

fn sandbox_ip(h: &mut H) -> Option<String> {
    h.status().pod_ip
}

#[test]
fn sandbox_death_kills_everything_and_reruns_all_init_containers_in_order() {
    let mut h = H::new(json!({
        "initContainers": [
            {"name": "a", "image": "busybox:1"},
            {"name": "b", "image": "busybox:1"},
            {"name": "side", "image": "busybox:1", "restartPolicy": "Always"}
        ],
        "containers": [{"name": "app", "image": "nginx:1"}],
        "terminationGracePeriodSeconds": 20
    }));
    h.step();
    h.exit("a", 0);
    h.step();
    h.exit("b", 0);
    h.step();
    assert_eq!(h.phase(), "Running");
    assert_eq!(h.cond("PodReadyToStartContainers").0, "True");
    assert_eq!(sandbox_ip(&mut h).as_deref(), Some("10.0.0.7"));
    let before = h.rt.calls().len();
    h.events.clear();

    h.rt.ignore_term("app");
    assert!(h.rt.kill_sandbox("uid-1"));
    h.step();
    // No ready sandbox while the old containers are being stopped.
    assert_eq!(h.cond("PodReadyToStartContainers").0, "False");
    assert_eq!(h.cond("Initialized").0, "True", "stays True once apps ran");
    assert_eq!(
        h.rt.sandboxes_created(),
        1,
        "no new sandbox before all stopped"
    );
    h.run_for(19);
    assert_eq!(h.rt.sandboxes_created(), 1);
    h.run_for(1);
    // SIGKILL after the grace period, then the sidecar stops, then a new sandbox.
    assert_eq!(h.rt.sandboxes_created(), 2);
    assert_eq!(h.cond("PodReadyToStartContainers").0, "True");
    assert_eq!(sandbox_ip(&mut h).as_deref(), Some("10.0.0.8"), "new IP");
    assert_eq!(h.rt.starts().last().unwrap(), &("a".to_string(), 1));
    assert_eq!(h.phase(), "Running", "apps ran before: not Pending again");
    h.exit("a", 0);
    h.step();
    assert_eq!(h.rt.starts().last().unwrap(), &("b".to_string(), 1));
    h.exit("b", 0);
    h.step();
    let after: Vec<_> = h.rt.calls()[before..]
        .iter()
        .map(|c| format!("{c:?}"))
        .collect();
    let events: Vec<_> = h
        .events
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e.reason,
                e.field_path.as_deref().unwrap_or("pod"),
                e.message
            )
        })
        .collect();
    insta::assert_yaml_snapshot!("sandbox_recreation", (after, events));
    for (name, restarts) in [("a", 1), ("b", 1), ("side", 1), ("app", 1)] {
        assert_eq!(h.cs(name).restart_count, restarts, "{name}");
    }
    let a = h.cs("a");
    assert_eq!(
        a.last_state.unwrap().terminated.unwrap().reason.as_deref(),
        Some("Completed")
    );
    let app = h.cs("app");
    assert!(app.state.unwrap().running.is_some());
    assert_eq!(app.last_state.unwrap().terminated.unwrap().exit_code, 137);
    assert_eq!(h.phase(), "Running");
    assert_eq!(h.cond("Ready").0, "True");
}

#[test]
fn sandbox_death_during_init_restarts_from_the_first_init_container() {
    let mut h = H::new(json!({
        "initContainers": [{"name": "a", "image": "busybox:1"}, {"name": "b", "image": "busybox:1"}],
        "containers": [{"name": "app", "image": "nginx:1"}]
    }));
    h.step();
    h.exit("a", 0);
    h.step();
    assert!(h.rt.running("b").is_some());
    h.rt.kill_sandbox("uid-1");
    h.step();
    assert_eq!(
        h.rt.starts(),
        vec![("a".into(), 0), ("b".into(), 0), ("a".into(), 1)]
    );
    assert_eq!(h.phase(), "Pending");
    assert_eq!(h.cond("Initialized").0, "False");
    assert!(h.reasons().contains(&"SandboxChanged".to_string()));
    h.exit("a", 0);
    h.step();
    h.exit("b", 0);
    h.step();
    assert_eq!(h.rt.starts().last().unwrap(), &("app".to_string(), 0));
    assert_eq!(h.cs("app").restart_count, 0);
    assert_eq!(h.phase(), "Running");
}

#[test]
fn sandbox_death_under_restart_policy_never_only_kills_the_pod() {
    // upstream computePodActions: !shouldRestartOnFailure && attempt != 0 && containers exist
    // → CreateSandbox = false; the killed containers make the pod Failed.
    let mut h = H::new(json!({
        "restartPolicy": "Never",
        "containers": [{"name": "app", "image": "nginx:1"}]
    }));
    h.step();
    assert_eq!(h.phase(), "Running");
    h.rt.kill_sandbox("uid-1");
    h.step();
    assert_eq!(h.rt.sandboxes_created(), 1, "no new sandbox");
    assert!(!h.reasons().contains(&"SandboxChanged".to_string()));
    assert_eq!(h.rt.starts().len(), 1);
    assert!(h.w.is_finished());
    assert_eq!(h.phase(), "Failed");
    assert_eq!(h.cond("PodReadyToStartContainers").0, "False");
    let t = h.cs("app").state.unwrap().terminated.unwrap();
    assert_eq!(t.exit_code, 143);
}

#[test]
fn sandbox_death_before_any_container_is_recreated_even_under_never() {
    let mut h = H::new(json!({
        "restartPolicy": "Never",
        "containers": [{"name": "app", "image": "nginx:1"}]
    }));
    h.rt.fail_pull("nginx:1", Some("registry down"));
    h.step();
    assert_eq!(h.waiting_reason("app").as_deref(), Some("ErrImagePull"));
    h.rt.kill_sandbox("uid-1");
    h.step();
    assert_eq!(h.rt.sandboxes_created(), 2);
    assert!(h.reasons().contains(&"SandboxChanged".to_string()));
    h.rt.fail_pull("nginx:1", None);
    h.run_for(11);
    assert_eq!(h.rt.starts(), vec![("app".into(), 0)]);
    assert_eq!(h.phase(), "Running");
}

#[test]
fn sandbox_death_under_on_failure_restarts_only_unfinished_containers() {
    let mut h = H::new(json!({
        "restartPolicy": "OnFailure",
        "initContainers": [{"name": "init", "image": "busybox:1"}],
        "containers": [{"name": "job", "image": "busybox:1"}, {"name": "srv", "image": "nginx:1"}]
    }));
    h.step();
    h.exit("init", 0);
    h.step();
    h.exit("job", 0);
    h.step();
    h.rt.kill_sandbox("uid-1");
    h.step();
    assert_eq!(h.rt.starts().last().unwrap(), &("init".to_string(), 1));
    h.exit("init", 0);
    h.step();
    assert_eq!(h.rt.starts().last().unwrap(), &("srv".to_string(), 1));
    assert_eq!(
        h.rt.starts().iter().filter(|s| s.0 == "job").count(),
        1,
        "a succeeded container is not run again under OnFailure"
    );
    assert_eq!(h.cs("job").restart_count, 0);
    assert_eq!(h.phase(), "Running");
}

#[test]
fn sim_runtime_sandbox_death_annotation_recreates_in_virtual_time() {
    use orch_kubelet::runtime::sim::SimRuntime;
    let clock = ManualClock::at_epoch_seconds(1_700_000_000);
    let rt = SimRuntime::new(0);
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "uid-1", "annotations": {
            "sim.orch.dev/sandbox-dies-after-seconds": "30"
        }},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox:1"}],
            "containers": [{"name": "app", "image": "nginx:1"}]
        }
    }))
    .unwrap();
    let cfg = WorkerConfig {
        node_name: "n1".into(),
        host_ip: "192.0.2.1".into(),
        allow_privileged: false,
        dns: Default::default(),
    };
    let mut w = PodWorker::new(cfg, p, clock.now());
    let t0 = clock.now();
    let mut changed_at = vec![];
    for _ in 0..40 {
        let now = clock.now();
        for j in w.tick(now, &rt) {
            let out = rt.run_handler(&j.id, j.kind, &j.action, &j.target, j.timeout, now);
            w.handler_done(&j, out, now);
        }
        for e in w.take_events() {
            if e.reason == "SandboxChanged" {
                changed_at.push(now.duration_since(t0).as_secs());
            }
        }
        if changed_at.len() == 2 {
            break;
        }
        let next = w
            .next_wakeup(now, &rt)
            .expect("the sandbox death is a timer");
        clock.set(next);
    }
    assert_eq!(
        changed_at,
        vec![30, 60],
        "each new sandbox dies 30 s after creation"
    );
    // The second kill found the app in its 10 s crash back-off (upstream doBackOff applies to
    // containers killed for a sandbox change too): it starts again at 70 s.
    let s = w.status(clock.now());
    let app = &s.container_statuses.as_ref().unwrap()[0];
    let waiting = app.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    let next = w.next_wakeup(clock.now(), &rt).unwrap();
    assert_eq!(next.duration_since(t0).as_secs(), 70);
    clock.set(next);
    w.tick(clock.now(), &rt);
    let s = w.status(clock.now());
    let init = &s.init_container_statuses.as_ref().unwrap()[0];
    let app = &s.container_statuses.as_ref().unwrap()[0];
    assert_eq!((init.restart_count, app.restart_count), (2, 2));
    assert!(app.state.as_ref().unwrap().running.is_some());
    assert_eq!(s.phase.as_deref(), Some("Running"));
}

#[test]
fn grpc_probes_are_run_like_the_others() {
    use orch_kubelet::runtime::HandlerAction;
    let mut h = H::new(json!({
        "containers": [{"name": "app", "image": "nginx:1",
            "readinessProbe": {"grpc": {"port": 9090, "service": "ready"}, "periodSeconds": 5}}]
    }));
    h.hold = vec![HandlerKind::Readiness];
    h.step();
    let job = h.held.pop().expect("a readiness job");
    match &job.action {
        HandlerAction::Grpc(g) => assert_eq!((g.port, g.service.as_deref()), (9090, Some("ready"))),
        other => panic!("{other:?}"),
    }
    assert_eq!(job.target.pod_ip, "10.0.0.7");
    assert_eq!(job.timeout, Duration::from_secs(1));
    h.w.handler_done(&job, HandlerOutcome::Success, h.now());
    assert_eq!(h.cond("Ready").0, "True");
}

#[test]
fn sandbox_death_runs_pre_stop_against_the_old_pod_ip() {
    let mut h = H::new(json!({
        "containers": [{"name": "app", "image": "nginx:1",
            "lifecycle": {"preStop": {"httpGet": {"port": 8080, "path": "/drain"}}}}]
    }));
    h.step();
    h.hold = vec![HandlerKind::PreStop];
    h.rt.kill_sandbox("uid-1");
    h.step();
    let job = h.held.pop().expect("preStop runs before the kill");
    assert_eq!(job.target.pod_ip, "10.0.0.7");
    assert_eq!(h.rt.sandboxes_created(), 1, "waits for the hook");
    assert_eq!(h.status().pod_ip.as_deref(), Some("10.0.0.7"));
    h.w.handler_done(&job, HandlerOutcome::Success, h.now());
    h.step();
    assert_eq!(h.rt.sandboxes_created(), 2);
    assert_eq!(h.status().pod_ip.as_deref(), Some("10.0.0.8"));
    assert_eq!(h.rt.starts(), vec![("app".into(), 0), ("app".into(), 1)]);
}

#[test]
fn status_is_stable_once_written_back() {
    let mut h = H::new(json!({"containers": [{"name": "app", "image": "nginx:1"}]}));
    h.step();
    let first = h.status();
    let mut p = h.w.pod().clone();
    p.status = Some(first.clone());
    h.w.update_pod(p);
    h.step();
    let second = h.status();
    // Nothing changed, so there is nothing new to write.
    assert_eq!(first, second);
    let types: Vec<String> = second
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(
        types,
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled"
        ]
    );
}
