//! Pod phase and kubelet-owned conditions from container statuses: ports of upstream
//! `pkg/kubelet/kubelet_pods.go` `getPhase` and `pkg/kubelet/status/generate.go`.

use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec};

/// Pod phases.
pub mod phase {
    /// Not all containers started yet.
    pub const PENDING: &str = "Pending";
    /// Bound, all containers created, at least one running.
    pub const RUNNING: &str = "Running";
    /// All containers terminated successfully and will not restart.
    pub const SUCCEEDED: &str = "Succeeded";
    /// All containers terminated, at least one in failure.
    pub const FAILED: &str = "Failed";
}

/// Whether an init container is a sidecar (`restartPolicy: Always`).
pub fn is_sidecar(c: &k8s_openapi::api::core::v1::Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn find<'a>(info: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    info.iter().find(|s| s.name == name)
}

fn state_of(s: &ContainerStatus) -> (bool, Option<i32>, bool) {
    let st = s.state.as_ref();
    (
        st.is_some_and(|x| x.running.is_some()),
        st.and_then(|x| x.terminated.as_ref()).map(|t| t.exit_code),
        st.is_some_and(|x| x.waiting.is_some()),
    )
}

fn last_terminated(s: &ContainerStatus) -> Option<i32> {
    s.last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .map(|t| t.exit_code)
}

/// True once any regular container has started (running, terminated, or restarting).
pub fn any_regular_started(spec: &PodSpec, info: &[ContainerStatus]) -> bool {
    spec.containers.iter().any(|c| {
        find(info, &c.name).is_some_and(|s| {
            let (running, term, _) = state_of(s);
            running || term.is_some() || last_terminated(s).is_some()
        })
    })
}

/// Upstream `getPhase`. `info` holds init and regular container statuses.
pub fn pod_phase(spec: &PodSpec, info: &[ContainerStatus], pod_is_terminal: bool) -> &'static str {
    let mut pending_init = 0;
    let mut failed_init = 0;
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    for c in inits.iter().filter(|c| !is_sidecar(c)) {
        let Some(s) = find(info, &c.name) else {
            pending_init += 1;
            continue;
        };
        let (running, term, waiting) = state_of(s);
        if running {
            pending_init += 1;
        } else if let Some(code) = term {
            if code != 0 {
                failed_init += 1;
            }
        } else if waiting {
            match last_terminated(s) {
                Some(code) if code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in inits.iter().filter(|c| is_sidecar(c)) {
        let Some(s) = find(info, &c.name) else {
            unknown += 1;
            continue;
        };
        let (r, term, w) = state_of(s);
        if r {
            if s.started != Some(true) {
                pending_init += 1;
            }
            running += 1;
        } else if term.is_some() {
        } else if w {
            if last_terminated(s).is_none() {
                pending_init += 1;
                waiting += 1;
            }
        } else {
            pending_init += 1;
            unknown += 1;
        }
    }
    for c in &spec.containers {
        let Some(s) = find(info, &c.name) else {
            unknown += 1;
            continue;
        };
        let (r, term, w) = state_of(s);
        if r {
            running += 1;
        } else if let Some(code) = term {
            stopped += 1;
            if code == 0 {
                succeeded += 1;
            }
        } else if w {
            if last_terminated(s).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if failed_init > 0 && policy == "Never" {
        return phase::FAILED;
    }
    if (pending_init > 0 && !any_regular_started(spec, info)) || waiting > 0 {
        return phase::PENDING;
    }
    if running > 0 && unknown == 0 {
        return phase::RUNNING;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                phase::SUCCEEDED
            } else {
                phase::FAILED
            };
        }
        if policy == "Always" {
            return phase::RUNNING;
        }
        if stopped == succeeded {
            return phase::SUCCEEDED;
        }
        if policy == "Never" {
            return phase::FAILED;
        }
        return phase::RUNNING;
    }
    phase::PENDING
}

fn cond(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.map(str::to_string),
        message,
        ..Default::default()
    }
}

fn list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

/// `ContainersReady` (upstream `GenerateContainersReadyCondition`).
pub fn containers_ready(spec: &PodSpec, info: &[ContainerStatus], phase: &str) -> PodCondition {
    let mut unknown = vec![];
    let mut unready = vec![];
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c));
    for c in sidecars.chain(spec.containers.iter()) {
        match find(info, &c.name) {
            None => unknown.push(c.name.clone()),
            Some(s) if !s.ready => unready.push(c.name.clone()),
            Some(_) => {}
        }
    }
    if phase == phase::SUCCEEDED && unknown.is_empty() {
        return cond("ContainersReady", false, Some("PodCompleted"), None);
    }
    let mut msgs = vec![];
    if !unknown.is_empty() {
        msgs.push(format!(
            "containers with unknown status: {}",
            list(&unknown)
        ));
    }
    if !unready.is_empty() {
        msgs.push(format!(
            "containers with unready status: {}",
            list(&unready)
        ));
    }
    if !msgs.is_empty() {
        return cond(
            "ContainersReady",
            false,
            Some("ContainersNotReady"),
            Some(msgs.join(", ")),
        );
    }
    cond("ContainersReady", true, None, None)
}

/// `Ready` (upstream `GeneratePodReadyCondition`): ContainersReady plus readiness gates.
pub fn pod_ready(
    spec: &PodSpec,
    existing: &[PodCondition],
    containers_ready: &PodCondition,
) -> PodCondition {
    if containers_ready.status != "True" {
        let mut c = containers_ready.clone();
        c.type_ = "Ready".into();
        return c;
    }
    let mut unready = vec![];
    for g in spec.readiness_gates.iter().flatten() {
        let ok = existing
            .iter()
            .any(|c| c.type_ == g.condition_type && c.status == "True");
        if !ok {
            unready.push(g.condition_type.clone());
        }
    }
    if !unready.is_empty() {
        let msg = format!(
            "corresponding condition of pod readiness gate \"{}\" does not exist or is not True",
            unready.join("\", \"")
        );
        return cond("Ready", false, Some("ReadinessGatesNotReady"), Some(msg));
    }
    cond("Ready", true, None, None)
}

/// `Initialized` (upstream `GeneratePodInitializedCondition`).
pub fn initialized(spec: &PodSpec, info: &[ContainerStatus], phase: &str) -> PodCondition {
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    if inits.is_empty() {
        return cond("Initialized", true, None, None);
    }
    let mut unknown = vec![];
    let mut incomplete = vec![];
    for c in inits {
        match find(info, &c.name) {
            None => unknown.push(c.name.clone()),
            Some(s) if is_sidecar(c) => {
                if s.started != Some(true) {
                    incomplete.push(c.name.clone());
                }
            }
            Some(s) => {
                let done = s
                    .state
                    .as_ref()
                    .and_then(|x| x.terminated.as_ref())
                    .is_some_and(|t| t.exit_code == 0);
                if !done {
                    incomplete.push(c.name.clone());
                }
            }
        }
    }
    if phase == phase::SUCCEEDED && unknown.is_empty() {
        return cond("Initialized", true, Some("PodCompleted"), None);
    }
    // Once a regular container ran, the pod stays initialized (restarting sidecars included).
    if any_regular_started(spec, info) {
        return cond("Initialized", true, None, None);
    }
    let mut msgs = vec![];
    if !unknown.is_empty() {
        msgs.push(format!(
            "containers with unknown status: {}",
            list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        msgs.push(format!(
            "containers with incomplete status: {}",
            list(&incomplete)
        ));
    }
    if !msgs.is_empty() {
        return cond(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(msgs.join(", ")),
        );
    }
    cond("Initialized", true, None, None)
}

/// `PodReadyToStartContainers`: the sandbox exists and has networking.
pub fn ready_to_start(sandbox_ready: bool) -> PodCondition {
    cond("PodReadyToStartContainers", sandbox_ready, None, None)
}

/// The conditions the kubelet owns (upstream `PodConditionsByKubelet`,
/// pkg/kubelet/types/pod_status.go); others, like readiness gates, are kept.
pub fn is_kubelet_condition(t: &str) -> bool {
    matches!(
        t,
        "PodScheduled" | "Ready" | "Initialized" | "ContainersReady" | "PodReadyToStartContainers"
    )
}
