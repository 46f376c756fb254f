//! The process runtime with real processes (slow: real time, real signals).

use jiff::Timestamp;
use orch_kubelet::runtime::process::{ProcessConfig, ProcessRuntime};
use orch_kubelet::runtime::*;
use std::time::{Duration, Instant};

fn cfg(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        pod_uid: "uid-1".into(),
        namespace: "default".into(),
        pod_name: "p".into(),
        name: name.into(),
        image: "busybox:1".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("GREETING".into(), "hello".into())],
        ..Default::default()
    }
}

fn wait_exit(rt: &ProcessRuntime, id: &str) -> ContainerState {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = rt.container_state(id, Timestamp::now()).unwrap();
        if matches!(s, ContainerState::Exited { .. }) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn code(s: &ContainerState) -> (i32, ExitReason) {
    match s {
        ContainerState::Exited {
            exit_code, reason, ..
        } => (*exit_code, *reason),
        other => panic!("not exited: {other:?}"),
    }
}

#[test]
fn slow_exit_codes_env_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::open(ProcessConfig::new(dir.path())).unwrap();
    let id = rt
        .start_container(
            &cfg("c", "echo $GREETING; echo oops >&2; exit 3"),
            Timestamp::now(),
        )
        .unwrap();
    assert_eq!(code(&wait_exit(&rt, &id)), (3, ExitReason::Error));
    let log = std::fs::read_to_string(rt.log_path(&id).unwrap()).unwrap();
    let lines: Vec<&str> = log.lines().map(|l| l.split_once(' ').unwrap().1).collect();
    assert!(lines.contains(&"stdout F hello"), "{log}");
    assert!(lines.contains(&"stderr F oops"), "{log}");
    let id = rt
        .start_container(&cfg("ok", "true"), Timestamp::now())
        .unwrap();
    assert_eq!(code(&wait_exit(&rt, &id)), (0, ExitReason::Completed));
}

#[test]
fn slow_sigterm_then_sigkill_after_grace() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::open(ProcessConfig::new(dir.path())).unwrap();
    let id = rt
        .start_container(&cfg("polite", "sleep 30"), Timestamp::now())
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    rt.stop_container(&id, StopSignal::Term, Timestamp::now())
        .unwrap();
    assert_eq!(code(&wait_exit(&rt, &id)).0, 143);

    let id = rt
        .start_container(
            &cfg("stubborn", "trap '' TERM; while true; do sleep 0.05; done"),
            Timestamp::now(),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    rt.stop_container(&id, StopSignal::Term, Timestamp::now())
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        matches!(
            rt.container_state(&id, Timestamp::now()),
            Some(ContainerState::Running { .. })
        ),
        "ignores SIGTERM"
    );
    rt.stop_container(&id, StopSignal::Kill, Timestamp::now())
        .unwrap();
    assert_eq!(code(&wait_exit(&rt, &id)), (137, ExitReason::Error));
}

#[test]
fn slow_restart_reattaches_without_duplicate_or_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let (long, short) = {
        let rt = ProcessRuntime::open(ProcessConfig::new(dir.path())).unwrap();
        let long = rt
            .start_container(&cfg("long", "echo up; sleep 30"), Timestamp::now())
            .unwrap();
        let short = rt
            .start_container(&cfg("short", "sleep 0.3; exit 4"), Timestamp::now())
            .unwrap();
        (long, short)
    }; // the "kubelet" goes away; processes stay
    std::thread::sleep(Duration::from_millis(600));
    let rt = ProcessRuntime::open(ProcessConfig::new(dir.path())).unwrap();
    let mut names: Vec<String> = rt.list_containers().into_iter().map(|r| r.name).collect();
    names.sort();
    assert_eq!(names, vec!["long", "short"]);
    assert!(matches!(
        rt.container_state(&long, Timestamp::now()),
        Some(ContainerState::Running { .. })
    ));
    assert_eq!(
        code(&rt.container_state(&short, Timestamp::now()).unwrap()),
        (4, ExitReason::Error),
        "exit code survives the restart"
    );
    rt.stop_container(&long, StopSignal::Term, Timestamp::now())
        .unwrap();
    assert_eq!(code(&wait_exit(&rt, &long)).0, 143);
    rt.housekeeping();
    let log = std::fs::read_to_string(rt.log_path(&long).unwrap()).unwrap();
    assert!(log.contains("stdout F up"), "{log}");
}

#[test]
fn slow_exec_probe_runs_with_container_env() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::open(ProcessConfig::new(dir.path())).unwrap();
    let id = rt
        .start_container(&cfg("c", "sleep 30"), Timestamp::now())
        .unwrap();
    let exec = |s: &str| {
        HandlerAction::Exec(k8s_openapi::api::core::v1::ExecAction {
            command: Some(vec!["sh".into(), "-c".into(), s.into()]),
        })
    };
    let run = |a: &HandlerAction, t: u64| {
        rt.run_handler(
            &id,
            HandlerKind::Liveness,
            a,
            &HandlerTarget::default(),
            Duration::from_millis(t),
            Timestamp::now(),
        )
    };
    assert_eq!(
        run(&exec("test \"$GREETING\" = hello"), 5000),
        HandlerOutcome::Success
    );
    assert!(matches!(
        run(&exec("exit 1"), 5000),
        HandlerOutcome::Failure(_)
    ));
    match run(&exec("sleep 5"), 100) {
        HandlerOutcome::Failure(m) => assert!(m.contains("timed out"), "{m}"),
        o => panic!("{o:?}"),
    }
    rt.stop_container(&id, StopSignal::Kill, Timestamp::now())
        .unwrap();
}

#[test]
fn slow_host_port_collisions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut pc = ProcessConfig::new(dir.path());
    pc.pod_network = orch_kubelet::runtime::process::PodNetwork::Host;
    let rt = ProcessRuntime::open(pc).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port() as i32;
    let sb = |uid: &str| SandboxConfig {
        pod_uid: uid.into(),
        namespace: "default".into(),
        name: uid.into(),
        host_network: false,
        host_ports: vec![(port, "TCP".into())],
        ..Default::default()
    };
    rt.run_sandbox(&sb("a")).unwrap();
    let err = rt.run_sandbox(&sb("b")).unwrap_err();
    assert!(
        err.to_string().contains("already used by pod default/a"),
        "{err}"
    );
    rt.remove_sandbox("a").unwrap();
    rt.run_sandbox(&sb("b")).unwrap();
    rt.remove_sandbox("b").unwrap();
}

#[test]
fn slow_unknown_image_without_command_is_a_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::open(ProcessConfig::new(dir.path())).unwrap();
    let mut c = cfg("c", "");
    c.command.clear();
    let err = rt.start_container(&c, Timestamp::now()).unwrap_err();
    assert!(
        err.to_string().contains("not in the local image catalog"),
        "{err}"
    );
}

/// A claim-backed volume: the node directory is created and the container sees it at its
/// mount path (in a mount namespace of its own, so nothing else does); a read-only mount
/// refuses writes. Needs root or unprivileged user namespaces (else the start is refused,
/// which is checked instead).
#[test]
fn slow_volume_mounts_show_the_node_directory_at_the_mount_path() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::open(ProcessConfig::new(dir.path().join("kubelet"))).unwrap();
    let node_dir = dir.path().join("volumes/pvc-1");
    let mount_path = dir.path().join("in-container/data");
    let mut c = cfg(
        "writer",
        &format!(
            "echo written > {mp}/file && ! touch {mp}-ro/denied 2>/dev/null",
            mp = mount_path.display()
        ),
    );
    c.mounts = vec![
        Mount {
            host_path: node_dir.display().to_string(),
            container_path: mount_path.display().to_string(),
            read_only: false,
        },
        Mount {
            host_path: node_dir.display().to_string(),
            container_path: format!("{}-ro", mount_path.display()),
            read_only: true,
        },
    ];
    let mode = orch_kubelet::runtime::process::mounts::MountMode::detect();
    if let orch_kubelet::runtime::process::mounts::MountMode::Unavailable(why) = mode {
        let e = rt.start_container(&c, Timestamp::now()).unwrap_err();
        assert!(e.to_string().contains(why.as_str()), "{e}");
        return;
    }
    let id = rt.start_container(&c, Timestamp::now()).unwrap();
    let state = wait_exit(&rt, &id);
    let log = std::fs::read_to_string(rt.log_path(&id).unwrap()).unwrap_or_default();
    assert_eq!(code(&state), (0, ExitReason::Completed), "{log}");
    assert_eq!(
        std::fs::read_to_string(node_dir.join("file")).unwrap(),
        "written\n"
    );
    // The mount was the container's alone: the mount point on the node is empty.
    assert!(!mount_path.join("file").exists());
}

/// Containers see their pod's hostname (`spec.hostname` here, else the pod name), as
/// upstream's do through the pod's UTS namespace: `hostname` and `$HOSTNAME` inside, the node's
/// hostname untouched (issue 21). Without root only `HOSTNAME` can be given.
#[test]
fn slow_containers_see_the_pod_hostname() {
    let dir = tempfile::tempdir().unwrap();
    let mut pc = ProcessConfig::new(dir.path());
    pc.pod_network = orch_kubelet::runtime::process::PodNetwork::Host;
    let rt = ProcessRuntime::open(pc).unwrap();
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    rt.run_sandbox(&SandboxConfig {
        pod_uid: "uid-1".into(),
        namespace: "default".into(),
        name: "web-0".into(),
        hostname: pod_hostname("web-0", Some("db-0")),
        ..Default::default()
    })
    .unwrap();
    let mut c = cfg(
        "c",
        "echo uts=$(cat /proc/sys/kernel/hostname); echo cmd=$(hostname); echo env=$HOSTNAME; \
         echo hosts=$(grep -c db-0 /etc/hosts)",
    );
    c.pod_name = "web-0".into();
    let id = rt.start_container(&c, Timestamp::now()).unwrap();
    assert_eq!(code(&wait_exit(&rt, &id)), (0, ExitReason::Completed));
    let log = std::fs::read_to_string(rt.log_path(&id).unwrap()).unwrap();
    assert!(log.contains("stdout F env=db-0"), "{log}");
    if orch_kubelet::runtime::process::is_root() {
        assert!(log.contains("stdout F uts=db-0"), "{log}");
        assert!(log.contains("stdout F cmd=db-0"), "{log}");
        // The name resolves, through the pod's managed /etc/hosts (the node's is untouched).
        assert!(log.contains("stdout F hosts=1"), "{log}");
    } else {
        eprintln!(
            "skipping the UTS hostname check: not running as root (without root the process \
             runtime cannot give a pod its own UTS namespace; only HOSTNAME is set)"
        );
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        node,
        "the node's hostname changed"
    );
    let etc_hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    assert!(!etc_hosts.contains("db-0"), "{etc_hosts}");
    rt.remove_sandbox("uid-1").unwrap();
}
