//! Engine tests: scenarios end to end on the virtual clock.

use super::*;

const BASIC: &str = r#"
duration: 10m
nodeGroups:
  - name: pool
    count: 3
    zones: [a, b, c]
    template: {status: {capacity: {cpu: "2", memory: 4Gi, pods: "110"}}}
workloads:
  - at: 0s
    yaml: |
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: web, namespace: default}
      spec:
        replicas: 6
        selector: {matchLabels: {app: web}}
        template:
          metadata:
            labels: {app: web}
            annotations: {sim.orch.dev/start-seconds: "2"}
          spec:
            containers:
              - name: app
                image: nginx:1
                resources: {requests: {cpu: 500m, memory: 256Mi}}
  - at: 10s
    manifests:
      - apiVersion: v1
        kind: Pod
        metadata: {name: huge, namespace: default}
        spec:
          containers: [{name: c, image: x, resources: {requests: {cpu: "64"}}}]
disruptions:
  - {at: 60s, action: scale, target: deployment/web, replicas: 9}
  - {at: 90s, action: zoneDown, zone: a}
"#;

async fn run(text: &str, seed: u64) -> (Report, Vec<String>) {
    let s = Scenario::from_yaml(text).unwrap();
    let mut sim = Simulation::new(
        s,
        SimOptions {
            seed,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let r = sim.run_scenario().await;
    (r, sim.event_log().to_vec())
}

#[tokio::test]
async fn deployment_runs_scales_and_survives_a_zone_loss() {
    let (r, log) = run(BASIC, 1).await;
    let text = log.join("\n");
    assert_eq!(r.nodes, 3);
    assert!(
        (r.virtual_seconds - 600.0).abs() < 1e-6,
        "{}",
        r.virtual_seconds
    );
    // 9 replicas of 500m on 3 × 2 CPU nodes fit; after zone a is lost its pods are evicted
    // and only 2 nodes (8 slots) remain: replacements that do not fit stay pending.
    assert!(r.pods.running >= 8, "{:?}\n{text}", r.pods);
    assert!(!r.evictions.is_empty(), "no evictions\n{text}");
    assert!(
        r.evictions.iter().all(|e| e.node == "pool-0"),
        "{:?}",
        r.evictions
    );
    assert!(
        r.unschedulable
            .iter()
            .any(|u| u.pod == "default/huge" && u.reason.contains("Insufficient cpu")),
        "{:?}",
        r.unschedulable
    );
    assert!(
        r.startup_latency.count >= 6 && r.startup_latency.p50 >= 2.0,
        "{:?}",
        r.startup_latency
    );
    assert!(r.utilization.len() >= 60, "{}", r.utilization.len());
    assert!(text.contains("KUBELET DOWN node pool-0"), "{text}");
}

#[tokio::test]
async fn same_seed_same_log_byte_for_byte() {
    let (a, la) = run(BASIC, 7).await;
    let (b, lb) = run(BASIC, 7).await;
    assert_eq!(la, lb);
    assert_eq!(a.event_log_hash, b.event_log_hash);
    assert_eq!(a.event_count, la.len());
}

#[tokio::test]
async fn different_seed_changes_names() {
    let (a, _) = run(BASIC, 1).await;
    let (b, _) = run(BASIC, 2).await;
    assert_ne!(a.event_log_hash, b.event_log_hash);
}

/// The scheduling decisions of `notebooks/scenarios/snapshot.yaml`, pinned. Notebook 4 checks
/// the Python API against this same snapshot file.
#[tokio::test]
async fn snapshot_scenario_decisions() {
    let text = include_str!("../../notebooks/scenarios/snapshot.yaml");
    let (r, _) = run(text, 0).await;
    insta::assert_yaml_snapshot!("snapshot_scenario_decisions", r.decisions);
}

/// Utilization samples count a pod as running only while its node's kubelet is up: after the
/// zone goes down the API still says Running (until the taint eviction), the sample does not.
#[tokio::test]
async fn utilization_does_not_count_pods_on_unreachable_nodes() {
    let s = Scenario::from_yaml(BASIC).unwrap();
    let mut sim = Simulation::new(s, SimOptions::default()).await.unwrap();
    sim.run_until(120.0, || false).await;
    let r = sim.report();
    let down = r
        .node_utilization
        .iter()
        .find(|n| n.node == "pool-0")
        .map_or(0, |n| n.pods);
    assert!(down > 0, "{:?}", r.node_utilization);
    let last = r.utilization.last().unwrap();
    assert!(last.time > 90.0, "{}", last.time);
    assert_eq!(last.pods_running, r.pods.running - down, "{:?}", r.pods);
    let before = r.utilization.iter().rev().find(|u| u.time < 90.0).unwrap();
    assert_eq!(before.pods_running, before.pods_bound, "{before:?}");
}

/// One instant with tens of thousands of writes: the watch cache must keep up while the engine
/// runs (on a current-thread runtime it only runs when the engine waits), or it falls more than
/// its storage broadcast behind, reloads, and ends every watch opened before the run.
#[tokio::test]
async fn watch_cache_keeps_up_within_one_instant() {
    let opts = SimOptions {
        keep_log: false,
        events: false,
        explain: false,
        ..Default::default()
    };
    let mut sim = Simulation::new(bench::scenario(60, 6_000), opts)
        .await
        .unwrap();
    sim.run_until_stable(600.0, || false).await;
    assert_eq!(sim.report().pods.running, 6_000);
    let api = sim.api_server();
    let written = api.storage().current_revision();
    assert!(written > 3 * 6_000, "creates, binds and status writes");
    // Nothing has waited since the run returned: what the cache applied, it applied while the
    // engine was running.
    let applied = api.watch_cache().applied();
    assert!(
        applied + engine::SYNC_CACHE_EVERY > written,
        "the watch cache applied {applied} of {written} revisions during the run"
    );
}

/// The simulated kubelets admit pods as the live kubelet does: a pod bound straight to a node
/// it does not fit (no scheduler involved) is rejected with upstream's `OutOfcpu`.
#[tokio::test]
async fn kubelet_admission_rejects_a_pod_that_does_not_fit() {
    let s = Scenario::from_yaml(
        "nodeGroups:\n  - name: pool\n    count: 1\n    template: {status: {capacity: {cpu: \"2\", memory: 4Gi, pods: \"110\"}}}\n",
    )
    .unwrap();
    let mut sim = Simulation::new(s, SimOptions::default()).await.unwrap();
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "big", "namespace": "default"},
        "spec": {"nodeName": "pool-0", "containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "3"}}}]},
    });
    sim.apply(vec![pod]).await.unwrap();
    sim.run_until(5.0, || false).await;
    let got = sim
        .client()
        .get(
            &orch_types::ApiResource::of::<k8s_openapi::api::core::v1::Pod>(),
            Some("default"),
            "big",
        )
        .await
        .unwrap();
    let status = &got.data["status"];
    assert_eq!(status["phase"], "Failed", "{status}");
    assert_eq!(status["reason"], "OutOfcpu", "{status}");
}

/// The Job controller runs in virtual time like the live one: 12 completions, 4 at a time,
/// each pod running 10 simulated seconds, finish after three waves (~30 s), counted once each.
#[tokio::test]
async fn a_job_runs_its_completions_in_virtual_time() {
    let s = Scenario::from_yaml(
        "nodeGroups:\n  - name: pool\n    count: 2\n    template: {status: {capacity: {cpu: \"8\", memory: 16Gi, pods: \"110\"}}}\n",
    )
    .unwrap();
    let mut sim = Simulation::new(s, SimOptions::default()).await.unwrap();
    let job = serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "batch", "namespace": "default"},
        "spec": {"completions": 12, "parallelism": 4, "template": {
            "metadata": {"annotations": {"sim.orch.dev/run-seconds": "10"}},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "busybox"}]}}},
    });
    sim.apply(vec![job]).await.unwrap();
    let job_r = orch_types::ApiResource::of::<k8s_openapi::api::batch::v1::Job>();
    sim.run_until(25.0, || false).await;
    let mid = sim
        .client()
        .get(&job_r, Some("default"), "batch")
        .await
        .unwrap();
    assert_eq!(mid.data["status"]["succeeded"], 8, "{}", mid.data["status"]);
    sim.run_until(60.0, || false).await;
    let done = sim
        .client()
        .get(&job_r, Some("default"), "batch")
        .await
        .unwrap();
    let st = &done.data["status"];
    assert_eq!(st["succeeded"], 12, "{st}");
    // The interim SuccessCriteriaMet first, then Complete once every pod is counted.
    let types: Vec<&str> = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"], "{st}");
    let finished = st["completionTime"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    let started = st["startTime"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    let took = finished.duration_since(started).as_secs();
    assert!((30..=33).contains(&took), "three waves of 10 s: {took} s");
}

/// A DaemonSet puts one pod on every node, a node cordoned before it came included, and rolls
/// a new image out node by node within `maxUnavailable`, all in virtual time.
#[tokio::test]
async fn a_daemon_set_covers_every_node_and_rolls_out_in_virtual_time() {
    let s = Scenario::from_yaml(
        r#"
nodeGroups:
  - name: pool
    count: 20
    template: {status: {capacity: {cpu: "8", memory: 16Gi, pods: "110"}}}
workloads:
  - at: 0s
    yaml: |
      apiVersion: apps/v1
      kind: DaemonSet
      metadata: {name: agent, namespace: kube-system}
      spec:
        selector: {matchLabels: {app: agent}}
        updateStrategy: {rollingUpdate: {maxUnavailable: 4}}
        template:
          metadata:
            labels: {app: agent}
            annotations: {sim.orch.dev/start-seconds: "5"}
          spec:
            containers: [{name: agent, image: "agent:1"}]
disruptions:
  - {at: 0s, action: cordon, node: pool-3}
  - {at: 60s, action: setImage, target: daemonset/kube-system/agent, image: "agent:2"}
"#,
    )
    .unwrap();
    let mut sim = Simulation::new(s, SimOptions::default()).await.unwrap();
    let ds_r = orch_types::ApiResource::of::<k8s_openapi::api::apps::v1::DaemonSet>();
    let pod_r = orch_types::ApiResource::of::<k8s_openapi::api::core::v1::Pod>();
    sim.run_until(50.0, || false).await;
    let ds = sim
        .client()
        .get(&ds_r, Some("kube-system"), "agent")
        .await
        .unwrap();
    let st = &ds.data["status"];
    assert_eq!(st["desiredNumberScheduled"], 20, "{st}");
    assert_eq!(st["numberAvailable"], 20, "{st}");
    // Four nodes at a time, five seconds each: five waves, then the last status.
    sim.run_until(60.0 + 5.0 * 5.0 + 10.0, || false).await;
    let ds = sim
        .client()
        .get(&ds_r, Some("kube-system"), "agent")
        .await
        .unwrap();
    let st = &ds.data["status"];
    assert_eq!(st["updatedNumberScheduled"], 20, "{st}");
    assert_eq!(st["numberAvailable"], 20, "{st}");
    let pods = sim
        .client()
        .list(&pod_r, Some("kube-system"), &Default::default())
        .await
        .unwrap();
    let mut nodes: Vec<String> = pods
        .items
        .iter()
        .filter(|p| p.data["spec"]["containers"][0]["image"] == "agent:2")
        .map(|p| {
            p.data["spec"]["nodeName"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 20);
}

/// A StatefulSet in virtual time: each pod is created once its predecessor is Ready, so three
/// pods that take five seconds to start are all ready after fifteen.
#[tokio::test]
async fn a_stateful_set_starts_its_pods_in_order_in_virtual_time() {
    let s = Scenario::from_yaml(
        r#"
nodeGroups:
  - name: pool
    count: 2
    template: {status: {capacity: {cpu: "8", memory: 16Gi, pods: "110"}}}
workloads:
  - at: 0s
    yaml: |
      apiVersion: apps/v1
      kind: StatefulSet
      metadata: {name: db, namespace: default}
      spec:
        serviceName: db
        replicas: 3
        selector: {matchLabels: {app: db}}
        template:
          metadata:
            labels: {app: db}
            annotations: {sim.orch.dev/start-seconds: "5"}
          spec:
            containers: [{name: db, image: "db:1"}]
"#,
    )
    .unwrap();
    let mut sim = Simulation::new(s, SimOptions::default()).await.unwrap();
    let sts_r = orch_types::ApiResource::of::<k8s_openapi::api::apps::v1::StatefulSet>();
    let pod_r = orch_types::ApiResource::of::<k8s_openapi::api::core::v1::Pod>();
    sim.run_until(7.0, || false).await;
    let pods = sim
        .client()
        .list(&pod_r, Some("default"), &Default::default())
        .await
        .unwrap();
    let mut names: Vec<String> = pods.items.iter().map(|p| p.name().to_string()).collect();
    names.sort();
    assert_eq!(names, ["db-0", "db-1"], "db-1 only once db-0 is ready");
    sim.run_until(16.0, || false).await;
    let sts = sim
        .client()
        .get(&sts_r, Some("default"), "db")
        .await
        .unwrap();
    assert_eq!(
        sts.data["status"]["readyReplicas"], 3,
        "{}",
        sts.data["status"]
    );
}

/// The CronJob controller runs in virtual time: a `*/5 * * * *` CronJob created at 00:00 runs
/// three Jobs in 16 minutes (00:05, 00:10, 00:15), each done after its pod's 10 s, and
/// `successfulJobsHistoryLimit: 2` deletes the oldest once the third has succeeded.
#[tokio::test]
async fn a_cron_job_runs_on_schedule_in_virtual_time() {
    let s = Scenario::from_yaml(
        "nodeGroups:\n  - name: pool\n    count: 1\n    template: {status: {capacity: {cpu: \"8\", memory: 16Gi, pods: \"110\"}}}\n",
    )
    .unwrap();
    let mut sim = Simulation::new(s, SimOptions::default()).await.unwrap();
    let cron = serde_json::json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "default"},
        "spec": {"schedule": "*/5 * * * *", "successfulJobsHistoryLimit": 2,
                 "jobTemplate": {"spec": {"template": {
                     "metadata": {"annotations": {"sim.orch.dev/run-seconds": "10"}},
                     "spec": {"restartPolicy": "Never",
                              "containers": [{"name": "c", "image": "busybox"}]}}}}},
    });
    sim.apply(vec![cron]).await.unwrap();
    sim.run_until(16.0 * 60.0, || false).await;
    let log = sim.event_log().join("\n");
    let minute = |m: i64| format!("tick-{}", engine::EPOCH_SECONDS / 60 + m);
    let runs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CronJob/default/tick SuccessfulCreate"))
        .collect();
    assert_eq!(runs.len(), 3, "{log}");
    for (line, m) in runs.iter().zip([5, 10, 15]) {
        assert!(
            line.ends_with(&format!("Created job {}", minute(m))),
            "{line}"
        );
        let at: f64 = line.split_whitespace().next().unwrap().parse().unwrap();
        assert!((at - m as f64 * 60.0).abs() < 1.0, "on time: {line}");
    }
    assert!(
        log.contains(&format!("SuccessfulDelete: Deleted job {}", minute(5))),
        "{log}"
    );
    let job_r = orch_types::ApiResource::of::<k8s_openapi::api::batch::v1::Job>();
    let jobs = sim
        .client()
        .list(&job_r, Some("default"), &Default::default())
        .await
        .unwrap();
    let names: Vec<&str> = jobs.items.iter().map(|j| j.name()).collect();
    assert_eq!(names, [minute(10), minute(15)]);
    for j in &jobs.items {
        assert_eq!(j.data["status"]["succeeded"], 1, "{}", j.data["status"]);
    }
    let cj_r = orch_types::ApiResource::of::<k8s_openapi::api::batch::v1::CronJob>();
    let cj = sim
        .client()
        .get(&cj_r, Some("default"), "tick")
        .await
        .unwrap();
    let st = &cj.data["status"];
    assert_eq!(st["lastScheduleTime"], "2025-01-01T00:15:00Z", "{st}");
    assert!(st.get("active").is_none(), "{st}");
    assert!(
        st["lastSuccessfulTime"]
            .as_str()
            .is_some_and(|t| t.starts_with("2025-01-01T00:15:1")),
        "{st}"
    );
}

/// `examples/sim/hpa-load-step.yaml`: the engine scrapes metrics every 15 s while an
/// autoscaler exists, and a `load` step drives it. 3 CPU over pods requesting 500m at a 50 %
/// target asks for 3 / (0.5 × 0.5) = 12 replicas: reached as 2 → 4 → 8 (a scale up at most
/// doubles, at least to 4) → 10 (maxReplicas) on three successive syncs. After the load falls
/// to 0.2 CPU at 10m, the count holds until the 5-minute downscale stabilization window no
/// longer holds a high recommendation (the last one at 585 s, within the window up to 885 s
/// inclusive, upstream's `rec.timestamp.Before(cutoff)`), then goes to minReplicas.
#[tokio::test]
async fn an_autoscaler_follows_a_load_step_in_virtual_time() {
    let text = include_str!("../../examples/sim/hpa-load-step.yaml");
    let (r, log) = run(text, 3).await;
    let all = log.join("\n");
    let rescales: Vec<(f64, &str)> = log
        .iter()
        .filter(|l| l.contains("HorizontalPodAutoscaler/default/web SuccessfulRescale"))
        .map(|l| {
            let (t, rest) = l.split_once(' ').unwrap();
            let size = rest.split("New size: ").nth(1).unwrap();
            (t.parse().unwrap(), size.split(';').next().unwrap())
        })
        .collect();
    assert_eq!(
        rescales,
        [(60.0, "4"), (75.0, "8"), (90.0, "10"), (900.0, "2")],
        "{all}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("reason: All metrics below target")),
        "{all}"
    );
    // The report samples the autoscaler at every scrape.
    let at = |t: f64| r.hpa.iter().find(|h| h.time == t).unwrap();
    assert_eq!(r.hpa.len(), 81, "a sample every 15 s from 0 to 1200 s");
    assert!(r.hpa.iter().all(|h| h.desired_replicas <= h.max_replicas));
    assert_eq!(at(45.0).cpu_utilization, Some(20), "idle: 100m of 500m");
    assert_eq!(
        (at(60.0).cpu_utilization, at(60.0).desired_replicas),
        (Some(300), 4)
    );
    assert_eq!(
        (at(105.0).cpu_utilization, at(105.0).current_replicas),
        (Some(60), 10),
        "3 CPU over 10 pods"
    );
    assert_eq!(at(600.0).cpu_utilization, Some(4), "0.2 CPU over 10 pods");
    assert_eq!(at(885.0).desired_replicas, 10, "still stabilized");
    assert_eq!(
        at(900.0).rescale.as_deref(),
        Some("All metrics below target")
    );
    assert_eq!(
        (at(915.0).current_replicas, at(915.0).cpu_utilization),
        (2, Some(20)),
        "0.2 CPU over 2 pods"
    );
    assert_eq!(r.pods.running, 2, "{:?}", r.pods);
    // Same seed, same log.
    let (again, log2) = run(text, 3).await;
    assert_eq!(log, log2);
    assert_eq!(r.hpa, again.hpa);
}

/// A loaded pod's share goes to its containers in proportion to their CPU requests, evenly
/// when none requests any; the parts always add up to the share.
#[test]
fn load_splits_over_containers_by_request() {
    use orch_kubelet::runtime::ContainerUsage;
    use orch_kubelet::stats::ContainerSample;
    let pod = |reqs: &[(&str, Option<&str>)]| -> k8s_openapi::api::core::v1::Pod {
        let containers: Vec<serde_json::Value> = reqs
            .iter()
            .map(|(n, r)| match r {
                Some(r) => serde_json::json!({"name": n, "resources": {"requests": {"cpu": r}}}),
                None => serde_json::json!({"name": n}),
            })
            .collect();
        serde_json::from_value(serde_json::json!({"spec": {"containers": containers}})).unwrap()
    };
    let samples = |names: &[&str]| -> Vec<ContainerSample> {
        names
            .iter()
            .map(|n| ContainerSample {
                name: n.to_string(),
                start_time: jiff::Timestamp::UNIX_EPOCH,
                usage: ContainerUsage {
                    cpu_nano_cores: 7,
                    ..Default::default()
                },
            })
            .collect()
    };
    let cpu = |s: &[ContainerSample]| s.iter().map(|c| c.usage.cpu_nano_cores).collect::<Vec<_>>();
    let mut s = samples(&["app", "side"]);
    engine::spread_cpu(
        &pod(&[("app", Some("750m")), ("side", Some("250m"))]),
        1_000_000_000,
        &mut s,
    );
    assert_eq!(cpu(&s), [750_000_000, 250_000_000]);
    let mut s = samples(&["a", "b", "c"]);
    engine::spread_cpu(&pod(&[("a", None), ("b", None), ("c", None)]), 100, &mut s);
    assert_eq!(cpu(&s), [33, 33, 34]);
}

/// The workload controllers together, as the issue's scenario: a DaemonSet over 1,000 nodes,
/// a Job of 500 completions and an autoscaler following a load step, in one simulation.
#[tokio::test]
async fn daemon_set_job_and_autoscaler_run_together_in_virtual_time() {
    let (r, log) = run(include_str!("../../examples/sim/workloads.yaml"), 0).await;
    assert_eq!(r.pods.succeeded, 500, "every completion: {:?}", r.pods);
    assert_eq!(
        r.pods.running,
        1000 + 8,
        "an agent per node and 8 web pods: {:?}",
        r.pods
    );
    assert!(
        log.iter()
            .any(|l| l.contains("Job/default/sweep Completed")),
        "the job completes"
    );
    let sizes: Vec<&str> = log
        .iter()
        .filter(|l| l.contains("HorizontalPodAutoscaler/default/web SuccessfulRescale"))
        .filter_map(|l| l.split("New size: ").nth(1)?.split(';').next())
        .collect();
    assert_eq!(sizes, ["4", "8"]);
}

/// `examples/sim/quota.yaml`: ResourceQuota and LimitRange in virtual time, through the same
/// API server admission and quota controller as the live cluster. Pods without resources get
/// the LimitRange's 250m; a quota of 1 CPU admits 4 of `web`'s 6 and refuses the rest with
/// upstream's message; once raised to 2 CPU, the ReplicaSet's next retry creates the other 2;
/// after `web` scales down to 2, the controller's recount leaves room for `batch`'s 4 pods.
#[tokio::test]
async fn quota_limits_a_deployment_until_it_is_raised() {
    use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
    use orch_types::client::Api;
    let text = include_str!("../../examples/sim/quota.yaml");
    let mut sim = Simulation::new(
        Scenario::from_yaml(text).unwrap(),
        SimOptions {
            seed: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let r = sim.run_scenario().await;
    let log = sim.event_log().to_vec();
    let all = log.join("\n");
    let created = |deployment: &str, until: f64| {
        log.iter()
            .filter(|l| l.contains(&format!("ReplicaSet/team/{deployment}-")))
            .filter(|l| l.contains("SuccessfulCreate"))
            .filter(|l| l.split(' ').next().unwrap().parse::<f64>().unwrap() <= until)
            .count()
    };
    assert_eq!(created("web", 119.0), 4, "4 of 250m fit in 1 CPU\n{all}");
    assert!(
        log.iter().any(|l| l.contains(
            "FailedCreate: Error creating: pods \"web-"
        ) && l.contains(
            "is forbidden: exceeded quota: compute, requested: requests.cpu=250m, used: requests.cpu=1, limited: requests.cpu=1"
        )),
        "{all}"
    );
    assert_eq!(
        created("web", 299.0),
        6,
        "the rest once the quota is raised\n{all}"
    );
    assert_eq!(created("batch", 480.0), 4, "{all}");
    assert_eq!(r.pods.running, 6, "{:?}", r.pods);
    let quotas: Api<ResourceQuota> = Api::namespaced(sim.client(), "team");
    let st = quotas.get("compute").await.unwrap().status.unwrap();
    assert_eq!(
        serde_json::to_value(&st).unwrap(),
        serde_json::json!({"hard": {"pods": "10", "requests.cpu": "2"},
                           "used": {"pods": "6", "requests.cpu": "1500m"}})
    );
    let pods: Api<Pod> = Api::namespaced(sim.client(), "team");
    for p in pods.list(&Default::default()).await.unwrap().items {
        assert_eq!(
            p.metadata.annotations.as_ref().unwrap()["kubernetes.io/limit-ranger"],
            format!(
                "LimitRanger plugin set: cpu, memory request for container {c}; cpu, memory limit for container {c}",
                c = p.spec.as_ref().unwrap().containers[0].name
            )
        );
    }
    // Same seed, same log.
    let (_, again) = run(text, 5).await;
    assert_eq!(log, again);
}
