"""orch.Simulation: virtual time, object access, disruptions, reports, determinism, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import orch
from helpers import deployment, pod

SCENARIO = """
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
              - {name: app, image: "nginx:1", resources: {requests: {cpu: 500m, memory: 256Mi}}}
disruptions:
  - {at: 90s, action: zoneDown, zone: a}
"""


@pytest.fixture
def sim() -> orch.Simulation:
    return orch.Simulation(nodes=3, zones=["a", "b", "c"], node_cpu="2", node_memory="4Gi", seed=1)


def test_nodes_exist_ready_at_time_zero(sim: orch.Simulation) -> None:
    assert sim.now == 0.0
    assert sim.time == "2025-01-01T00:00:00Z"
    nodes = sim.list("nodes")
    assert [n["metadata"]["name"] for n in nodes] == ["node-0", "node-1", "node-2"]
    assert nodes[0]["metadata"]["labels"]["topology.kubernetes.io/zone"] == "a"
    df = sim.nodes_df()
    assert list(df["ready"]) == ["True"] * 3


def test_deployment_becomes_available_in_virtual_time(sim: orch.Simulation) -> None:
    d = deployment("web", 4)
    d["spec"]["template"]["metadata"]["annotations"] = {"sim.orch.dev/start-seconds": "3"}
    out = sim.apply(d)
    assert out[0]["metadata"]["uid"]
    got = sim.wait_for("deployments", "web", "Available", timeout=60)
    assert got["status"]["availableReplicas"] == 4
    assert sim.now == pytest.approx(3.0)
    pods = sim.list("pods", "default", label_selector="app=web")
    assert len(pods) == 4 and all(p["status"]["phase"] == "Running" for p in pods)
    on_node0 = sim.list("pods", field_selector="spec.nodeName=node-0")
    assert all(p["spec"]["nodeName"] == "node-0" for p in on_node0)
    assert sim.logs(pods[0]["metadata"]["name"]) == ""
    df = sim.pods_df()
    assert set(df["phase"]) == {"Running"}


def test_rolling_update_by_patch(sim: orch.Simulation) -> None:
    sim.apply(deployment("web", 3))
    sim.wait_for("deploy", "web", "rolledOut", timeout=60)
    sim.patch(
        "deploy", "web", {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}},
        patch_type="strategic",
    )
    sim.wait_for("deploy", "web", "rolledOut", timeout=600)
    images = {p["spec"]["containers"][0]["image"] for p in sim.list("pods")}
    assert images == {"nginx:2"}
    reasons = {e["reason"] for e in sim.events()}
    assert {"ScalingReplicaSet", "Scheduled"} <= reasons


def test_apply_accepts_yaml_path_list_and_models(sim: orch.Simulation, tmp_path: Path) -> None:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    sim.apply(yaml.safe_dump(pod("from-text")))
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(pod("from-path")))
    sim.apply(f)
    sim.apply([pod("from-list-1"), pod("from-list-2")])
    kubernetes = pytest.importorskip("kubernetes")
    m = kubernetes.client
    sim.apply(m.V1ConfigMap(metadata=m.V1ObjectMeta(name="cfg", namespace="default"), data={"a": "b"}))
    names = {p["metadata"]["name"] for p in sim.list("pods")}
    assert {"from-text", "from-path", "from-list-1", "from-list-2"} <= names
    assert sim.get("cm", "cfg")["data"] == {"a": "b"}
    # applying again merges instead of failing
    sim.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"c": "d"}})
    assert sim.get("configmaps", "cfg", "default")["data"] == {"a": "b", "c": "d"}


def test_delete_and_watch(sim: orch.Simulation) -> None:
    sim.apply(pod("p"))
    sim.step()
    w = sim.watch("pods", "default", timeout=0.5)
    first = next(w)
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "p"
    rv = first["object"]["metadata"]["resourceVersion"]
    sim.delete("pods", "p", grace_period_seconds=0)
    events = list(sim.watch("pods", "default", resource_version=rv, timeout=0.5))
    assert events and events[-1]["type"] == "DELETED"
    sim.wait_for("pods", "p", "deleted", timeout=30)
    with pytest.raises(orch.NotFoundError):
        sim.get("pods", "p")


def test_deleting_a_deployment_collects_its_replicasets_and_pods(sim: orch.Simulation) -> None:
    sim.apply(deployment("web", 3))
    sim.wait_for("deploy", "web", "Available", timeout=60)
    assert len(sim.list("replicasets", "default")) == 1
    assert len(sim.list("pods", "default")) == 3
    sim.delete("deployments", "web")
    # The garbage collector of the live controller manager runs in the simulator too: it
    # deletes the ReplicaSet, then its pods, which the simulated kubelets stop.
    sim.run(until=sim.now + 60)
    assert sim.list("replicasets", "default") == []
    assert sim.list("pods", "default") == []
    log = "\n".join(sim.event_log())
    assert "RS default/web-" in log and " deleted" in log


def test_unschedulable_pod_is_reported_with_reason(sim: orch.Simulation) -> None:
    sim.apply(pod("huge", cpu="64"))
    sim.run(30)
    r = sim.report()
    assert r["unschedulable"] == [
        {"pod": "default/huge", "reason": r["unschedulable"][0]["reason"]}
    ]
    assert r["unschedulable"][0]["reason"].startswith("0/3 nodes are available: 3 Insufficient cpu.")
    cond = [c for c in sim.get("pods", "huge")["status"]["conditions"] if c["type"] == "PodScheduled"][0]
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    df = sim.decisions_df()
    assert list(df["result"]) == ["unschedulable"]


def test_scenario_zone_outage_evicts_and_reschedules() -> None:
    sim = orch.Simulation(SCENARIO, seed=3)
    assert sim.run(progress=False) == pytest.approx(600.0)
    r = sim.report()
    assert r["evictions"] and {e["node"] for e in r["evictions"]} == {"pool-0"}
    assert r["pods"]["running"] >= 4
    assert r["schedulingLatency"]["count"] > 6
    df = sim.utilization_df()
    assert df["nodesReady"].iloc[0] == 3 and df["nodesReady"].iloc[-1] == 2
    assert df["evicted"].iloc[-1] == len(r["evictions"])


def test_same_seed_same_event_log() -> None:
    a = orch.Simulation(SCENARIO, seed=5)
    a.run(progress=False)
    b = orch.Simulation(SCENARIO, seed=5)
    b.run(progress=False)
    assert a.event_log() == b.event_log()
    assert a.report()["eventLogHash"] == b.report()["eventLogHash"]


def test_scenario_from_path_and_dict(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(SCENARIO)
    assert orch.Simulation(f).list("nodes")
    assert orch.Simulation(str(f)).list("nodes")
    d: dict[str, Any] = {"nodeGroups": [{"name": "g", "count": 2}]}
    assert len(orch.Simulation(d).list("nodes")) == 2


def test_disrupt_drain_and_cordon(sim: orch.Simulation) -> None:
    sim.apply(deployment("web", 3))
    sim.wait_for("deploy", "web", "rolledOut", timeout=60)
    victims = [p["metadata"]["name"] for p in sim.list("pods", field_selector="spec.nodeName=node-0")]
    sim.disrupt({"action": "drain", "node": "node-0"})
    sim.run(sim.now + 60)
    sim.wait_for("deploy", "web", "rolledOut", timeout=120)
    assert sim.get("nodes", "node-0")["spec"]["unschedulable"] is True
    assert all(p["spec"]["nodeName"] != "node-0" for p in sim.list("pods"))
    assert len(sim.report()["evictions"]) == len(victims)
    sim.disrupt({"action": "uncordon", "node": "node-0"})
    assert not sim.get("nodes", "node-0")["spec"].get("unschedulable")


def test_step_and_run_until_stable(sim: orch.Simulation) -> None:
    d = deployment("web", 2)
    d["spec"]["template"]["metadata"]["annotations"] = {"sim.orch.dev/start-seconds": "5"}
    sim.apply(d)
    t = sim.step()
    assert 0 < t <= 5.0
    assert sim.run_until_stable() == pytest.approx(5.0)
    assert sim.run(3.0) == pytest.approx(5.0)  # never backwards


def test_errors() -> None:
    with pytest.raises(ValueError):
        orch.Simulation()
    with pytest.raises(orch.OrchError, match="nodeGroups\\[0\\].name"):
        orch.Simulation({"nodeGroups": [{"name": "Bad_Name"}]})
    with pytest.raises(orch.OrchError, match="invalid duration"):
        orch.Simulation("duration: soon")
    sim = orch.Simulation(nodes=1)
    with pytest.raises(orch.OrchError, match="invalid disruption"):
        sim.disrupt({"action": "explode"})
    with pytest.raises(orch.OrchError, match="resource type"):
        sim.list("gizmos")
    with pytest.raises(orch.InvalidError) as e:
        sim.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"}, "spec": {"containers": []}})
    assert e.value.code == 422 and e.value.causes
    assert all({"field", "reason", "message"} <= c.keys() for c in e.value.causes)
    with pytest.raises(orch.TimeoutError):
        sim.apply(pod("never", cpu="100"))
        sim.wait_for("pods", "never", "Running", timeout=5)
    with pytest.raises(orch.NotFoundError):
        sim.delete("pods", "ghost")
    sim.create(pod("made"))
    assert sim.get("pods", "made")["metadata"]["name"] == "made"
    with pytest.raises(orch.AlreadyExistsError):
        sim.create(pod("made"))
    with pytest.raises(orch.OrchError, match="unknown patch type"):
        sim.patch("pods", "never", {}, patch_type="weird")
    with pytest.raises(TypeError):
        sim.apply(3.5)


def test_daemon_set_and_job_in_virtual_time() -> None:
    """A DaemonSet over 1,000 nodes and a Job of 500 completions, side by side. A quota on the
    DaemonSet's namespace makes its 1,000 pod creates queue on quota admission's namespace lock
    (they once hung there: ``Exec.block`` lost tokio's deferred wake-ups between slices)."""
    sim = orch.Simulation(nodes=1000, node_cpu="8", node_memory="32Gi", seed=3)
    sim.apply(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "pods", "namespace": "kube-system"},
            "spec": {"hard": {"pods": "1500"}},
        }
    )
    sim.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}, "annotations": {"sim.orch.dev/start-seconds": "2"}},
                    "spec": {"containers": [{"name": "agent", "image": "agent:1"}]},
                },
            },
        }
    )
    sim.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "batch", "namespace": "default"},
            "spec": {
                "completions": 500,
                "parallelism": 100,
                "template": {
                    "metadata": {"annotations": {"sim.orch.dev/run-seconds": "30"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        }
    )
    ds = sim.wait_for("daemonset", "agent", "rolledOut", timeout=60, namespace="kube-system")
    assert ds["status"]["numberAvailable"] == 1000
    quota = sim.get("resourcequota", "pods", namespace="kube-system")
    assert quota["status"]["used"]["pods"] == "1k"  # the canonical form of 1000, as upstream
    sim.wait_for("job", "batch", "Complete", timeout=600)
    df = sim.jobs_df("default")
    row = df.iloc[0]
    assert (row["name"], row["succeeded"], row["status"]) == ("batch", 500, "Complete")
    # Five waves of 100 pods, 30 virtual seconds each.
    assert 150 <= row["duration"] <= 160


def test_hpa_follows_a_load_step() -> None:
    """An autoscaler driven by a ``load`` disruption: it scales up within maxReplicas, and
    ``hpa_df`` shows every decision with the SuccessfulRescale reason."""
    sim = orch.Simulation(nodes=2, node_cpu="4", seed=5)
    sim.apply(deployment("api", 2, cpu="200m"))
    sim.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "api", "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
                "minReplicas": 2,
                "maxReplicas": 6,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                    }
                ],
            },
        }
    )
    sim.run(30)
    sim.disrupt({"action": "load", "target": "deployment/default/api", "cpu": "1"})
    sim.run(120)
    df = sim.hpa_df()
    assert list(df.columns) == [
        "time", "namespace", "name", "min_replicas", "max_replicas", "current_replicas",
        "desired_replicas", "cpu_utilization", "rescale",
    ]
    assert set(df["name"]) == {"api"}
    # Every 15 s from the autoscaler's creation at 0 s.
    assert list(df["time"][:3]) == [0.0, 15.0, 30.0]
    assert (df["desired_replicas"] <= df["max_replicas"]).all()
    # 1 CPU over pods requesting 200m at a 50 % target asks for 10: 2 → 4 → 6 (maxReplicas).
    ups = df[df["rescale"].notna()]
    assert list(ups["desired_replicas"]) == [4, 6]
    assert ups["rescale"].str.contains("above target").all()
    assert df["current_replicas"].iloc[-1] == 6
    assert sim.get("deployment", "api")["spec"]["replicas"] == 6
    assert df[df["time"] == 15.0]["cpu_utilization"].iloc[0] == 0, "no cpu-usage annotation: idle"
    assert sim.hpa_df(namespace="other").empty
