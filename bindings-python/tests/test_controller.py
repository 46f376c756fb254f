"""Python reconcile functions as controllers: ``@sim.controller`` on the virtual clock and
``@cluster.controller`` in the live driver, on a custom kind (Backup) owning a ConfigMap."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import pytest

import orch

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "backups.ops.example.org"},
    "spec": {
        "group": "ops.example.org",
        "scope": "Namespaced",
        "names": {"plural": "backups", "singular": "backup", "kind": "Backup"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


def backup(name: str, database: str, workers: int) -> dict[str, Any]:
    return {
        "apiVersion": "ops.example.org/v1",
        "kind": "Backup",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"database": database, "workers": workers},
    }


def reconcile(obj: dict[str, Any], ctx: orch.ReconcileContext) -> float | None:
    """Keeps a ConfigMap in step with the spec and reports the workers in status."""
    spec = obj["spec"]
    ctx.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": obj["metadata"]["name"] + "-config"},
            "data": {"database": spec["database"], "workers": str(spec.get("workers", 0))},
        },
        owner=obj,
    )
    ctx.patch_status({"workers": spec.get("workers", 0)})
    return None


def run_sim(seed: int) -> tuple[orch.Simulation, list[str]]:
    sim = orch.Simulation(nodes=1, seed=seed)
    sim.controller("ops.example.org/v1", "Backup", owns=["ConfigMap"])(reconcile)
    sim.apply(CRD)
    sim.run(5)
    sim.apply(backup("nightly", "orders", 3))
    sim.run(10)
    return sim, sim.event_log()


def test_a_simulation_runs_a_python_controller_on_the_virtual_clock() -> None:
    sim, log = run_sim(1)
    cm = sim.get("configmaps", "nightly-config", "default")
    assert cm["data"] == {"database": "orders", "workers": "3"}
    owner = cm["metadata"]["ownerReferences"][0]
    bk = sim.get("backups", "nightly", "default")
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Backup", bk["metadata"]["uid"], True)
    assert bk["status"] == {"workers": 3}

    # A change of spec reconciles again; a child edited behind the controller's back is put
    # right (the ConfigMap is owned, so its change maps to the Backup).
    sim.patch("backups", "nightly", {"spec": {"workers": 5}}, "default")
    sim.run(sim.now + 5)
    assert sim.get("backups", "nightly", "default")["status"] == {"workers": 5}
    sim.patch("configmaps", "nightly-config", {"data": {"workers": "99"}}, "default")
    sim.run(sim.now + 5)
    assert sim.get("configmaps", "nightly-config", "default")["data"]["workers"] == "5"

    # Same seed, same input: the same event log.
    assert run_sim(1)[1] == log


def test_registered_after_the_objects_exist_and_requeue_in_virtual_time() -> None:
    sim = orch.Simulation(nodes=1)
    sim.apply(CRD)
    sim.apply(backup("b1", "orders", 1))
    calls: list[str] = []

    @sim.controller("ops.example.org/v1", "Backup")
    def tick(obj: dict[str, Any], ctx: orch.ReconcileContext) -> float:
        assert ctx.key == "Backup default/b1"
        calls.append(ctx.now)
        return 60.0

    sim.run(sim.now + 300)
    assert 5 <= len(calls) <= 6, calls
    minutes = [c[14:16] for c in calls]
    assert len(set(minutes)) == len(minutes), calls  # one call per virtual minute


def test_an_exception_is_logged_and_retried_with_back_off(caplog: pytest.LogCaptureFixture) -> None:
    sim = orch.Simulation(nodes=1)
    sim.apply(CRD)
    attempts: list[int] = []

    @sim.controller("ops.example.org/v1", "Backup")
    def flaky(obj: dict[str, Any], ctx: orch.ReconcileContext) -> None:
        attempts.append(1)
        if len(attempts) < 4:
            raise RuntimeError("database unreachable")
        ctx.patch_status({"ok": True})

    with caplog.at_level(logging.ERROR, logger="orch.controller"):
        sim.apply(backup("b2", "orders", 1))
        sim.run(30)
    # Three failures, the success that writes status, and the look at that status change.
    assert len(attempts) == 5
    assert sim.get("backups", "b2", "default")["status"] == {"ok": True}
    failures = [r for r in caplog.records if r.name == "orch.controller"]
    assert len(failures) == 3
    assert "Backup default/b2" in failures[0].getMessage()
    assert "database unreachable" in (caplog.text or "")


def test_bad_requests_from_the_function_are_errors_not_crashes(caplog: pytest.LogCaptureFixture) -> None:
    sim = orch.Simulation(nodes=1)
    sim.apply(CRD)

    @sim.controller("ops.example.org/v1", "Backup")
    def bad(obj: dict[str, Any], ctx: orch.ReconcileContext) -> Any:
        ctx.apply({"kind": "ConfigMap"})  # no apiVersion / name: raises ValueError

    with caplog.at_level(logging.ERROR, logger="orch.controller"):
        sim.apply(backup("b3", "orders", 1))
        sim.run(5)
    errors = [r.exc_info[1] for r in caplog.records if r.name == "orch.controller" and r.exc_info]
    assert errors and isinstance(errors[0], ValueError) and "metadata.name" in str(errors[0])
    assert sim.now >= 5  # the simulation kept going


def wait(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = check()
            if v:
                return v
        except orch.NotFoundError:
            pass
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_cluster_runs_a_python_controller_live() -> None:
    with orch.Cluster(nodes=1, runtime="sim") as cluster:
        cluster.controller("ops.example.org/v1", "Backup", owns=["ConfigMap"])(reconcile)
        cluster.apply(CRD)
        cluster.wait_for("customresourcedefinitions", "backups.ops.example.org", "Established", timeout=10)
        cluster.apply(backup("nightly", "orders", 2))
        cm = wait(lambda: cluster.get("configmaps", "nightly-config", "default"))
        assert cm["data"] == {"database": "orders", "workers": "2"}
        assert wait(lambda: cluster.get("backups", "nightly", "default").get("status")) == {"workers": 2}
        cluster.patch("backups", "nightly", {"spec": {"workers": 4}}, "default")
        wait(lambda: cluster.get("configmaps", "nightly-config", "default")["data"]["workers"] == "4")
        # The ConfigMap is owned: deleting the Backup collects it.
        cluster.delete("backups", "nightly", "default")
        wait(lambda: cluster._check("configmaps", "nightly-config", "deleted", "default")[0])
