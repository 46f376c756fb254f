"""orch.Cluster: a live in-process cluster, its kubeconfig and the object API."""

from __future__ import annotations

from pathlib import Path

import pytest

import orch
from helpers import deployment


@pytest.fixture(scope="module")
def cluster() -> orch.Cluster:
    with orch.Cluster(nodes=2, runtime="sim") as c:
        yield c  # type: ignore[misc]


def test_nodes_and_kubeconfig(cluster: orch.Cluster) -> None:
    assert cluster.node_names == ["node-1", "node-2"]
    assert {n["metadata"]["name"] for n in cluster.list("nodes")} == {"node-1", "node-2"}
    assert cluster.kubeconfig and Path(cluster.kubeconfig).read_text().count(cluster.url or "?") == 1
    assert "nodes=2" in repr(cluster)


def test_kubernetes_client_connects(cluster: orch.Cluster) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    api = kubernetes.client.CoreV1Api(cluster.kubernetes_client())
    names = sorted(n.metadata.name for n in api.list_node().items)
    assert names == ["node-1", "node-2"]


def test_deployment_rolls_out_and_updates(cluster: orch.Cluster) -> None:
    cluster.apply(deployment("web", 2))
    cluster.wait_for("deploy", "web", "rolledOut", timeout=30)
    w = cluster.watch("pods", "default", label_selector="app=web", timeout=2)
    cluster.patch("deployments", "web", {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}}, patch_type="strategic")
    cluster.wait_for("deploy", "web", "rolledOut", timeout=30)
    seen = {(e["type"], e["object"]["metadata"]["name"]) for e in w}
    assert any(t == "DELETED" for t, _ in seen), seen
    images = {p["spec"]["containers"][0]["image"] for p in cluster.list("pods", "default", label_selector="app=web")
              if not p["metadata"].get("deletionTimestamp")}
    assert images == {"nginx:2"}
    reasons = set(cluster.events_df()["reason"])
    assert {"Scheduled", "Started", "ScalingReplicaSet"} <= reasons
    df = cluster.decisions_df()
    assert (df["result"] == "scheduled").all() and len(df) >= 4
    assert set(cluster.pods_df(label_selector="app=web")["node"]) <= {"node-1", "node-2"}
    cluster.delete("deployments", "web")


def test_hpa_scales_on_cpu_and_hpa_df_shows_it(cluster: orch.Cluster) -> None:
    """Pods using 200 % of their CPU request against a 50 % target: the autoscaler scales the
    Deployment to its max (two steps: the first is limited to max(2 × 1, 4))."""
    d = deployment("busy", 1)
    tpl = d["spec"]["template"]
    tpl["metadata"]["annotations"] = {"sim.orch.dev/cpu-usage": "400m", "sim.orch.dev/memory-usage": "32Mi"}
    tpl["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "200m"}}
    cluster.apply(d)
    cluster.wait_for("deploy", "busy", "rolledOut", timeout=30)
    cluster.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "busy"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "busy"},
                "minReplicas": 1,
                "maxReplicas": 5,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            },
        }
    )
    h = cluster.wait_for("hpa", "busy", lambda h: (h.get("status") or {}).get("desiredReplicas") == 5, timeout=150)
    assert h["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] == 200
    df = cluster.hpa_df()
    assert list(df["desired_replicas"]) == [4, 5], df
    assert set(df["max_replicas"]) == {5}
    assert all(r.endswith("above target") for r in df["rescale"]), df
    cluster.delete("hpa", "busy")
    cluster.delete("deployments", "busy")


def test_errors(cluster: orch.Cluster) -> None:
    with pytest.raises(orch.NotFoundError) as e:
        cluster.get("pods", "ghost")
    assert e.value.code == 404 and e.value.reason == "NotFound"
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"k": "v"}})
    with pytest.raises(orch.ConflictError):
        cluster.patch("cm", "c1", {"metadata": {"resourceVersion": "1"}, "data": {"k": "w"}})
    with pytest.raises(orch.AlreadyExistsError):
        cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}})
    with pytest.raises(orch.InvalidError) as inv:
        cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "UPPER"}})
    assert inv.value.causes and inv.value.causes[0]["field"] == "metadata.name"
    with pytest.raises(orch.TimeoutError):
        cluster.wait_for("cm", "c1", "Ready", timeout=0.2)
    with pytest.raises(orch.OrchError, match="unknown runtime"):
        orch.Cluster(runtime="vm")


def test_durable_storage_survives_restart(tmp_path: Path) -> None:
    with orch.Cluster(nodes=0, runtime="sim", storage=tmp_path) as c:
        uid = c.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"a": "1"}})[0]["metadata"]["uid"]
    with orch.Cluster(nodes=0, runtime="sim", storage=tmp_path) as c:
        assert c.get("cm", "keep")["metadata"]["uid"] == uid


def test_process_runtime_logs() -> None:
    with orch.Cluster(nodes=1, runtime="process") as c:
        c.apply({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "c", "image": "busybox:1.36",
                "command": ["sh", "-c", "echo hello from orch; trap 'exit 0' TERM; while true; do sleep 1; done"],
            }]},
        })
        c.wait_for("pods", "hello", "Running", timeout=30)
        for _ in range(50):
            out = c.logs("hello")
            if "hello from orch" in out:
                break
            import time

            time.sleep(0.1)
        assert "hello from orch" in out
    assert "closed" in repr(c)
