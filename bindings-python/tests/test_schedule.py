"""orch.schedule: the pure scheduler with explained decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import orch
from helpers import node, pod

MOST_ALLOCATED = """
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
  - schedulerName: default-scheduler
    pluginConfig:
      - name: NodeResourcesFit
        args:
          scoringStrategy:
            type: MostAllocated
            resources: [{name: cpu, weight: 1}, {name: memory, weight: 1}]
"""


def test_every_pod_gets_an_explained_decision() -> None:
    nodes = [node("a", cpu="2"), node("b", cpu="2")]
    pods = [pod(f"p{i}", cpu="900m") for i in range(5)]
    ds = orch.schedule(nodes, pods)
    assert [d["pod"] for d in ds] == [f"default/p{i}" for i in range(5)]
    placed = [d["node"] for d in ds if d["result"] == "scheduled"]
    assert sorted(placed) == ["a", "a", "b", "b"]
    last = ds[-1]
    assert last["result"] == "unschedulable"
    assert last["message"].startswith("0/2 nodes are available: 2 Insufficient cpu.")
    ex = ds[0]["explanation"]
    assert ex["nodes_total"] == 2 and ex["nodes_feasible"] == 2
    fit = [s for n in ex["nodes"] for s in n["scores"] if s["plugin"] == "NodeResourcesFit"]
    assert len(fit) == 2
    assert ex["winner"]["node"] == ds[0]["node"]


def test_bound_pods_use_capacity() -> None:
    ds = orch.schedule([node("a", cpu="1"), node("b", cpu="1")], [pod("old", cpu="800m", node_name="a"), pod("new", cpu="500m")])
    assert len(ds) == 1
    assert ds[0]["node"] == "b"
    a = next(n for n in ds[0]["explanation"]["nodes"] if n["node"] == "a")
    assert not a["feasible"]


def test_most_allocated_packs_where_least_allocated_spreads() -> None:
    nodes = [node(f"n{i}", cpu="4") for i in range(4)]
    pods = [pod(f"p{i}", cpu="500m") for i in range(4)]
    spread = {d["node"] for d in orch.schedule(nodes, pods)}
    packed = {d["node"] for d in orch.schedule(nodes, pods, config=MOST_ALLOCATED)}
    assert len(spread) == 4
    assert len(packed) == 1


def test_inputs_as_yaml_text_path_and_kubernetes_models(tmp_path: Path) -> None:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    text = yaml.safe_dump_all([node("a"), node("b")])
    f = tmp_path / "nodes.yaml"
    f.write_text(text)
    kubernetes = pytest.importorskip("kubernetes")
    m = kubernetes.client
    model = m.V1Pod(
        metadata=m.V1ObjectMeta(name="model", namespace="default"),
        spec=m.V1PodSpec(containers=[m.V1Container(name="c", image="nginx")]),
    )
    for nodes_in in (text, str(f), f):
        ds = orch.schedule(nodes_in, [model])
        assert ds[0]["pod"] == "default/model" and ds[0]["node"] in ("a", "b")


def test_no_explanation_when_not_asked() -> None:
    ds = orch.schedule([node("a")], [pod("p")], explain=False)
    assert "explanation" not in ds[0]


def test_seed_breaks_ties_reproducibly() -> None:
    nodes = [node(f"n{i}") for i in range(8)]
    pods = [pod(f"p{i}") for i in range(8)]
    one = [d["node"] for d in orch.schedule(nodes, pods, seed=7)]
    two = [d["node"] for d in orch.schedule(nodes, pods, seed=7)]
    assert one == two


def test_no_nodes_is_an_error_decision() -> None:
    ds = orch.schedule([], [pod("p")])
    assert ds[0]["result"] == "error"


@pytest.mark.parametrize(
    "nodes,pods,match",
    [
        ([{"kind": "Node", "metadata": {"name": "a"}, "status": {"capacity": {"cpu": "lots"}}}], [], "nodes\\[0\\]"),
        ([node("a")], [{"kind": "Pod", "metadata": {}, "spec": {"containers": []}}], "pods\\[0\\]"),
        ([node("a")], "kind: [", "document 1"),
    ],
)
def test_bad_input_raises_orch_error(nodes: Any, pods: Any, match: str) -> None:
    with pytest.raises(orch.OrchError, match=match) as e:
        orch.schedule(nodes, pods)
    assert e.value.code == 400


def test_bad_config_raises() -> None:
    with pytest.raises(orch.OrchError, match="config"):
        orch.schedule([node("a")], [pod("p")], config="profiles: 3")


def test_wrong_python_type_raises_type_error() -> None:
    with pytest.raises(TypeError):
        orch.schedule([node("a")], 42)  # type: ignore[arg-type]


def test_decisions_df() -> None:
    pd = pytest.importorskip("pandas")
    df = orch.decisions_df(orch.schedule([node("a", cpu="1")], [pod("p", cpu="600m"), pod("q", cpu="600m")]))
    assert isinstance(df, pd.DataFrame)
    assert list(df["result"]) == ["scheduled", "unschedulable"]
    assert df.loc[0, "node"] == "a"
    assert "Insufficient cpu" in df.loc[1, "message"]
