//! The concepts journey of the README tour against `orch up` with the process runtime, driven by
//! the real `kubectl`: nodes (get, cordon, drain), pods (lifecycle, init containers, hooks,
//! probes, restarts, logs), ReplicaSets (selectors, adoption, isolation by relabelling,
//! orphaning) and Deployments (rollout, history, undo, pause/resume, scale).
//!
//! Slow (real processes, real probes and back-offs): `#[ignore]`d by default; CI runs them with
//! `ORCH_SLOW=1` (`cargo test -- --include-ignored`).

mod common;

use common::journey::{
    controller_of, example, live, names, uids, wait_gone, wait_none, wait_ready_pods, T,
};
use common::{condition, pod_ready, summarize, wait_for, TestEnv, Up};
use serde_json::Value;
use std::collections::BTreeSet;

#[test]
#[ignore = "slow end-to-end test (real processes); run with ORCH_SLOW=1 or --include-ignored"]
fn slow_nodes_get_cordon_drain() {
    let env = TestEnv::new();
    let _up = Up::start(&env, 2, "process", &[]);

    let table = env.kubectl(&["get", "nodes"]);
    for n in ["node-1", "node-2"] {
        let line = table
            .lines()
            .find(|l| l.starts_with(n))
            .unwrap_or_else(|| panic!("{n} missing:\n{table}"));
        assert!(line.contains(" Ready"), "{line}");
    }
    let node = env.get_json(&["node", "node-1"]).expect("get node");
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        "node-1"
    );
    assert!(
        node["status"]["addresses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["type"] == "InternalIP")),
        "{node:#}"
    );
    let leases = env
        .get_items(&["leases", "-n", "kube-node-lease"])
        .expect("leases");
    assert_eq!(
        names(&leases),
        BTreeSet::from(["node-1".to_string(), "node-2".to_string()])
    );

    env.kubectl(&["apply", "-f", &example("tour/deployment.yaml")]);
    wait_ready_pods(&env, "app=app", 3);

    // Cordon: unschedulable, shown as SchedulingDisabled.
    env.kubectl(&["cordon", "node-2"]);
    let n2 = env.get_json(&["node", "node-2"]).expect("get node");
    assert_eq!(n2["spec"]["unschedulable"], true);
    let line = env.kubectl(&["get", "node", "node-2", "--no-headers"]);
    assert!(line.contains("Ready,SchedulingDisabled"), "{line}");

    // Drain: evictions; the Deployment's replacements land on node-1 only.
    env.kubectl(&[
        "drain",
        "node-2",
        "--ignore-daemonsets",
        "--timeout=120s",
        "--grace-period=5",
    ]);
    wait_for("all app pods Ready on node-1", T, || {
        let pods: Vec<Value> = env
            .get_items(&["pods", "-l", "app=app"])?
            .into_iter()
            .filter(live)
            .collect();
        let on1 = pods
            .iter()
            .filter(|p| pod_ready(p) && p["spec"]["nodeName"] == "node-1")
            .count();
        if on1 == 3 && pods.len() == 3 {
            Ok(())
        } else {
            Err(summarize(&pods))
        }
    });
    let on2 = env
        .get_items(&["pods", "-A", "--field-selector", "spec.nodeName=node-2"])
        .expect("pods on node-2");
    assert!(on2.is_empty(), "node-2 drained: {}", summarize(&on2));

    // Scaling up while cordoned keeps node-2 empty.
    env.kubectl(&["scale", "deployment/app", "--replicas=4"]);
    let pods = wait_ready_pods(&env, "app=app", 4);
    assert!(pods.iter().all(|p| p["spec"]["nodeName"] == "node-1"));

    env.kubectl(&["uncordon", "node-2"]);
    let n2 = env.get_json(&["node", "node-2"]).expect("get node");
    assert!(n2["spec"]["unschedulable"].is_null() || n2["spec"]["unschedulable"] == false);
    let line = env.kubectl(&["get", "node", "node-2", "--no-headers"]);
    assert!(!line.contains("SchedulingDisabled"), "{line}");
}

#[test]
#[ignore = "slow end-to-end test (real processes); run with ORCH_SLOW=1 or --include-ignored"]
fn slow_pod_lifecycle_init_hooks_probes_logs() {
    let env = TestEnv::new();
    let _up = Up::start(&env, 1, "process", &[]);

    // Init containers in order, postStart hook, readiness probe.
    env.kubectl(&["apply", "-f", &example("tour/lifecycle-pod.yaml")]);
    let pod = wait_for("lifecycle pod Ready", T, || {
        let p = env.get_json(&["pod", "lifecycle"])?;
        if pod_ready(&p) {
            Ok(p)
        } else {
            Err(format!("{:#}", p["status"]))
        }
    });
    let inits = pod["status"]["initContainerStatuses"]
        .as_array()
        .expect("initContainerStatuses");
    assert_eq!(inits.len(), 2);
    for (i, name) in ["init-config", "init-wait"].iter().enumerate() {
        assert_eq!(inits[i]["name"], *name);
        assert_eq!(inits[i]["state"]["terminated"]["reason"], "Completed");
        assert_eq!(inits[i]["state"]["terminated"]["exitCode"], 0);
        assert_eq!(inits[i]["ready"], true);
    }
    let first_done = inits[0]["state"]["terminated"]["finishedAt"]
        .as_str()
        .expect("finishedAt");
    let second_start = inits[1]["state"]["terminated"]["startedAt"]
        .as_str()
        .expect("startedAt");
    assert!(
        first_done <= second_start,
        "init containers run one after the other: {first_done} > {second_start}"
    );
    for c in ["Initialized", "ContainersReady", "Ready", "PodScheduled"] {
        assert_eq!(condition(&pod, c), Some("True"), "{c}: {:#}", pod["status"]);
    }
    let main = &pod["status"]["containerStatuses"][0];
    assert_eq!(main["name"], "main");
    assert!(
        main["state"]["running"]["startedAt"].is_string(),
        "{main:#}"
    );
    assert_eq!(main["restartCount"], 0);
    assert_eq!(pod["status"]["qosClass"], "BestEffort");

    // Logs of the app container and of an init container; --tail.
    let logs = wait_for("ticks in the logs", T, || {
        let l = env.kubectl_try(&["logs", "lifecycle"])?;
        if l.contains("tick 2") {
            Ok(l)
        } else {
            Err(l)
        }
    });
    assert!(logs.contains("main started on node-1"), "{logs}");
    let init_logs = env.kubectl(&["logs", "lifecycle", "-c", "init-wait"]);
    assert_eq!(init_logs.trim(), "init-wait done");
    let tail = env.kubectl(&["logs", "lifecycle", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("tick "), "{tail}");

    // The table shows the phase.
    let row = env.kubectl(&["get", "pod", "lifecycle", "--no-headers"]);
    assert!(row.contains("1/1") && row.contains("Running"), "{row}");

    // Graceful deletion: preStop, SIGTERM (the trap exits 0), then the object goes.
    env.kubectl(&["delete", "pod", "lifecycle", "--timeout=60s"]);
    wait_gone(&env, "pod", "lifecycle");

    // Liveness failure restarts the container; the pod stays Running.
    env.kubectl(&["apply", "-f", &example("tour/liveness-pod.yaml")]);
    let p = wait_for("liveness restart", T, || {
        let p = env.get_json(&["pod", "liveness"])?;
        let rc = p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0);
        if rc >= 1 {
            Ok(p)
        } else {
            Err(format!("{:#}", p["status"]))
        }
    });
    assert_eq!(p["status"]["phase"], "Running");
    let last = &p["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert!(
        last.is_object(),
        "lastState.terminated set: {:#}",
        p["status"]
    );
    let events = wait_for("Unhealthy event", T, || {
        let ev = env.get_items(&[
            "events",
            "--field-selector",
            "involvedObject.name=liveness,reason=Unhealthy",
        ])?;
        if ev.is_empty() {
            Err("no Unhealthy event yet".into())
        } else {
            Ok(ev)
        }
    });
    assert!(
        events[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Liveness probe failed")),
        "{:#}",
        events[0]
    );

    // A crashing container: exit code 3, CrashLoopBackOff, logs of the previous attempt.
    env.kubectl(&["apply", "-f", &example("tour/crashing-pod.yaml")]);
    let st = wait_for("CrashLoopBackOff", T, || {
        let p = env.get_json(&["pod", "crasher"])?;
        let cs = p["status"]["containerStatuses"][0].clone();
        if cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" {
            Ok(cs)
        } else {
            Err(format!("{cs:#}"))
        }
    });
    assert_eq!(st["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(st["lastState"]["terminated"]["reason"], "Error");
    assert!(st["restartCount"].as_i64().unwrap_or(0) >= 1);
    let prev = env.kubectl(&["logs", "crasher", "--previous"]);
    assert_eq!(prev.trim(), "about to fail");
    let row = env.kubectl(&["get", "pod", "crasher", "--no-headers"]);
    assert!(
        row.contains("CrashLoopBackOff") || row.contains("Error"),
        "{row}"
    );
    env.kubectl(&["delete", "pod", "crasher", "liveness", "--timeout=60s"]);
}

#[test]
#[ignore = "slow end-to-end test (real processes); run with ORCH_SLOW=1 or --include-ignored"]
fn slow_web_deployment_readiness_and_endpoints() {
    let env = TestEnv::new();
    let _up = Up::start(&env, 1, "process", &[]);
    env.kubectl(&["apply", "-f", &example("web.yaml")]);
    let out = env.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = wait_ready_pods(&env, "app=web", 1);
    let ip = pods[0]["status"]["podIP"]
        .as_str()
        .expect("podIP")
        .to_string();
    let addr = format!("{ip}:8080").parse().expect("pod address");
    let (code, body) = common::http_get_plain(addr, "/").expect("GET /");
    assert_eq!((code, body.trim()), (200, "hello from orch"));

    let ep = wait_for("endpoints of web", T, || {
        let ep = env.get_json(&["endpoints", "web"])?;
        if ep["subsets"][0]["addresses"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            Ok(ep)
        } else {
            Err(format!("{ep:#}"))
        }
    });
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], ip);
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 8080);
    env.kubectl(&["delete", "-f", &example("web.yaml"), "--timeout=60s"]);
    wait_none(&env, "pods", "app=web");
}

#[test]
#[ignore = "slow end-to-end test (real processes); run with ORCH_SLOW=1 or --include-ignored"]
fn slow_replicasets_selectors_adoption_isolation_orphaning() {
    let env = TestEnv::new();
    let _up = Up::start(&env, 1, "process", &[]);

    // Bare pods created first are adopted: the ReplicaSet creates only one more.
    env.kubectl(&["apply", "-f", &example("tour/bare-pods.yaml")]);
    wait_ready_pods(&env, "tier=frontend", 2);
    env.kubectl(&["apply", "-f", &example("tour/replicaset.yaml")]);
    let pods = wait_ready_pods(&env, "tier=frontend", 3);
    let rs = env.get_json(&["rs", "frontend"]).expect("get rs");
    let rs_uid = rs["metadata"]["uid"].as_str().expect("uid").to_string();
    for p in &pods {
        let (kind, name, uid) = controller_of(p).expect("owned");
        assert_eq!(
            (kind.as_str(), name.as_str(), uid.as_str()),
            ("ReplicaSet", "frontend", &*rs_uid)
        );
    }
    assert!(names(&pods).is_superset(&BTreeSet::from(["pod1".to_string(), "pod2".to_string()])));
    wait_for("rs status 3/3 ready", T, || {
        let rs = env.get_json(&["rs", "frontend"])?;
        let st = &rs["status"];
        if st["replicas"] == 3
            && st["readyReplicas"] == 3
            && st["availableReplicas"] == 3
            && st["fullyLabeledReplicas"] == 3
        {
            Ok(())
        } else {
            Err(format!("{st:#}"))
        }
    });
    let row = env.kubectl(&["get", "rs", "frontend", "--no-headers"]);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["3", "3", "3"], "DESIRED CURRENT READY: {row}");
    env.kubectl(&["delete", "rs", "frontend", "--timeout=60s"]);
    wait_none(&env, "pods", "tier=frontend");

    // Created after the ReplicaSet, matching bare pods are surplus and get deleted.
    env.kubectl(&["apply", "-f", &example("tour/replicaset.yaml")]);
    let before = uids(&wait_ready_pods(&env, "tier=frontend", 3));
    env.kubectl(&["apply", "-f", &example("tour/bare-pods.yaml")]);
    wait_gone(&env, "pod", "pod1");
    wait_gone(&env, "pod", "pod2");
    let after = uids(&wait_ready_pods(&env, "tier=frontend", 3));
    assert_eq!(before, after, "the ReplicaSet's own pods are kept");

    // Isolation by relabelling: the pod is released and replaced.
    let victim = after.iter().next().expect("a pod").clone();
    let pods = env
        .get_items(&["pods", "-l", "tier=frontend"])
        .expect("pods");
    let victim_name = pods
        .iter()
        .find(|p| p["metadata"]["uid"] == victim.as_str())
        .and_then(|p| p["metadata"]["name"].as_str())
        .expect("victim name")
        .to_string();
    env.kubectl(&["label", "pod", &victim_name, "tier=debug", "--overwrite"]);
    let pods = wait_ready_pods(&env, "tier=frontend", 3);
    assert!(!uids(&pods).contains(&victim), "a replacement was created");
    let isolated = wait_for("released pod", T, || {
        let p = env.get_json(&["pod", &victim_name])?;
        if controller_of(&p).is_none() {
            Ok(p)
        } else {
            Err(format!("{:#}", p["metadata"]))
        }
    });
    assert!(pod_ready(&isolated), "the isolated pod keeps running");
    let shown = env.kubectl(&["get", "pods", "-L", "tier", "--no-headers"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with(&victim_name) && l.trim_end().ends_with("debug")),
        "{shown}"
    );

    // Orphaning: pods stay when the ReplicaSet is deleted with --cascade=orphan ...
    let kept = uids(&pods);
    env.kubectl(&[
        "delete",
        "rs",
        "frontend",
        "--cascade=orphan",
        "--timeout=60s",
    ]);
    wait_gone(&env, "rs", "frontend");
    wait_for("orphaned pods without owner", T, || {
        let pods = env.get_items(&["pods", "-l", "tier=frontend"])?;
        if uids(&pods) == kept && pods.iter().all(|p| controller_of(p).is_none()) {
            Ok(())
        } else {
            Err(summarize(&pods))
        }
    });
    // ... and a new ReplicaSet with the same selector adopts them, untouched.
    let starts: BTreeSet<String> = pods
        .iter()
        .map(|p| p["status"]["startTime"].to_string())
        .collect();
    env.kubectl(&["apply", "-f", &example("tour/replicaset.yaml")]);
    let rs2 = env.get_json(&["rs", "frontend"]).expect("new rs");
    let rs2_uid = rs2["metadata"]["uid"].as_str().expect("uid").to_string();
    assert_ne!(rs2_uid, rs_uid);
    let adopted = wait_for("adoption by the new ReplicaSet", T, || {
        let pods = env.get_items(&["pods", "-l", "tier=frontend"])?;
        if pods
            .iter()
            .all(|p| controller_of(p).is_some_and(|(_, _, u)| u == rs2_uid))
        {
            Ok(pods)
        } else {
            Err(summarize(&pods))
        }
    });
    assert_eq!(
        uids(&adopted),
        kept,
        "no pod created or deleted on adoption"
    );
    let starts2: BTreeSet<String> = adopted
        .iter()
        .map(|p| p["status"]["startTime"].to_string())
        .collect();
    assert_eq!(starts, starts2);
    assert!(adopted
        .iter()
        .all(|p| p["status"]["containerStatuses"][0]["restartCount"] == 0));

    // The scale subresource, then a cascading delete that spares the isolated pod.
    env.kubectl(&["scale", "rs", "frontend", "--replicas=5"]);
    wait_ready_pods(&env, "tier=frontend", 5);
    env.kubectl(&["scale", "rs", "frontend", "--replicas=2"]);
    wait_ready_pods(&env, "tier=frontend", 2);
    env.kubectl(&["delete", "rs", "frontend", "--timeout=60s"]);
    wait_none(&env, "pods", "tier=frontend");
    let still = env.get_json(&["pod", &victim_name]).expect("isolated pod");
    assert!(live(&still));
}

#[test]
#[ignore = "slow end-to-end test (real processes); run with ORCH_SLOW=1 or --include-ignored"]
fn slow_deployments_rollout_history_undo_pause_scale() {
    let env = TestEnv::new();
    let _up = Up::start(&env, 2, "process", &[]);
    common::journey::deployment_journey(&env);
}
