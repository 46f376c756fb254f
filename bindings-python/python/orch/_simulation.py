"""``orch.Simulation``: the real control plane with simulated kubelets on a virtual clock."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orch import _frames, _orch
from orch._api import Condition, ReconcileFn, _Objects


def _scenario_arg(scenario: Any) -> Any:
    if isinstance(scenario, os.PathLike) or (
        isinstance(scenario, str) and "\n" not in scenario and scenario.endswith((".yaml", ".yml", ".json"))
    ):
        return Path(scenario).read_text()
    return scenario


def _nodes_scenario(nodes: int, cpu: str, memory: str, zones: list[str] | None) -> dict[str, Any]:
    return {
        "nodeGroups": [
            {
                "name": "node",
                "count": nodes,
                "zones": zones or [],
                "template": {"status": {"capacity": {"cpu": cpu, "memory": memory, "pods": "110"}}},
            }
        ]
    }


class Simulation(_Objects):
    """A simulated cluster: the real API server, scheduler and controllers, and simulated
    kubelets whose containers follow ``sim.orch.dev/*`` annotations, on a virtual clock that
    jumps to the next timer when nothing is pending.

    Build it from a ``scenario`` (a path, YAML text or a dict with ``nodeGroups``,
    ``workloads``, ``disruptions``, ``duration``) or from ``nodes=N`` identical nodes. Same
    input and seed give the same event log, byte for byte. ``events=False`` skips writing
    core/v1 Events and ``explain=False`` the scheduler's per-node explanations (both faster
    at scale).
    """

    def __init__(
        self,
        scenario: Any = None,
        *,
        nodes: int | None = None,
        node_cpu: str = "4",
        node_memory: str = "16Gi",
        zones: list[str] | None = None,
        seed: int = 0,
        events: bool = True,
        explain: bool = True,
    ) -> None:
        if (scenario is None) == (nodes is None):
            raise ValueError("pass exactly one of scenario= or nodes=")
        spec = _scenario_arg(scenario) if scenario is not None else _nodes_scenario(nodes or 0, node_cpu, node_memory, zones)
        self._sim = _orch.Simulation(spec, seed=seed, events=events, explain=explain)
        self._handle = self._sim.handle()

    def __repr__(self) -> str:
        return f"<orch.Simulation t={self.now:.1f}s seed={self.seed}>"

    def __enter__(self) -> "Simulation":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @property
    def now(self) -> float:
        """Virtual seconds since the start."""
        return self._sim.now

    @property
    def time(self) -> str:
        """The virtual wall-clock time (RFC 3339)."""
        return self._sim.time

    @property
    def seed(self) -> int:
        """The seed."""
        return self._sim.seed

    def run(self, until: float | None = None, *, progress: bool | None = None) -> float:
        """Run to virtual time ``until`` (seconds since the start; default: the scenario's
        duration, else until stable). Shows a tqdm bar when tqdm is installed (``progress``
        forces it on or off). Ctrl-C stops it (KeyboardInterrupt); returns the new time."""
        if until is None:
            until = self._sim.duration
            if until is None:
                return self.run_until_stable()
        start = self.now
        if until <= start:
            return start
        bar = _progress_bar(until - start, progress)
        if bar is None:
            return self._sim.run_until(until)
        chunks = 50
        try:
            for i in range(1, chunks + 1):
                t = self._sim.run_until(start + (until - start) * i / chunks)
                bar.n = round(t - start, 3)
                bar.refresh()
        finally:
            bar.close()
        return self.now

    def step(self, max: float = 60.0) -> float:
        """Advance to the next timer (at most ``max`` seconds); returns the new time."""
        return self._sim.step(max)

    def run_until_stable(self, limit: float = 3600.0) -> float:
        """Run until every bound pod has started and nothing is due, or ``limit`` seconds."""
        return self._sim.run_until_stable(limit)

    def apply(self, obj: Any) -> list[dict[str, Any]]:
        """Create or update objects now (see :meth:`Cluster.apply` for accepted inputs)."""
        from orch._inputs import to_native

        return self._sim.apply(to_native(obj))

    def _add_controller(self, api_version: str, kind: str, owns: list[str], fn: ReconcileFn) -> None:
        self._sim.add_controller(api_version, kind, owns, fn)

    def _after_write(self, kind: str, name: str, namespace: str | None) -> None:
        self._sim.refresh(kind, name, namespace)

    def disrupt(self, action: dict[str, Any]) -> None:
        """Apply a disruption now: ``{"action": "nodeDown"|"nodeUp"|"zoneDown"|"zoneUp"|
        "cordon"|"uncordon"|"drain"|"scale"|"setImage"|"load", ...}`` as in a scenario file."""
        self._sim.disrupt(action)

    def logs(self, pod: str, namespace: str | None = None, *, container: str | None = None, tail_lines: int | None = None) -> str:
        """Simulated containers write no output: an empty string for an existing pod
        (:class:`orch.NotFoundError` otherwise)."""
        self.get("pods", pod, namespace)
        return ""

    def _wait(self, kind: str, name: str, condition: Condition, timeout: float, namespace: str | None) -> dict[str, Any]:
        deadline = self.now + timeout
        while True:
            ok, obj = self._check(kind, name, condition, namespace)
            if ok:
                return obj
            if self.now >= deadline:
                raise _orch.TimeoutError(
                    f"timed out after {timeout:g}s (virtual) waiting for {kind} {name} to be {condition!r}"
                )
            self.step(min(10.0, deadline - self.now))

    def report(self) -> dict[str, Any]:
        """Latency percentiles, unschedulable pods with reasons, evictions, utilization over
        time, the decision log and the event-log hash."""
        return self._sim.report()

    def event_log(self) -> list[str]:
        """The event log so far, one line per change (virtual seconds first)."""
        return self._sim.event_log()

    def utilization_df(self) -> Any:
        """Cluster utilization and pod counts over virtual time (needs pandas)."""
        return _frames.utilization_df(self.report()["utilization"])

    def hpa_df(self, namespace: str | None = None) -> Any:
        """The HorizontalPodAutoscalers' decisions over virtual time, one row per autoscaler
        per metrics scrape (every 15 s while one exists): replicas current and desired, CPU
        utilization and the SuccessfulRescale reason when one happened (needs pandas)."""
        hs = self.report().get("hpa", [])
        if namespace:
            hs = [h for h in hs if h["namespace"] == namespace]
        return _frames.hpa_df(hs)

    def decisions_df(self, namespace: str | None = None) -> Any:
        """Every scheduling decision the engine made (needs pandas)."""
        ds = self.report()["decisions"]
        if namespace:
            ds = [d for d in ds if d["pod"].startswith(namespace + "/")]
        return _frames.decisions_df(ds)


def _progress_bar(total: float, progress: bool | None) -> Any:
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        if progress:
            raise
        return None
    return tqdm(total=round(total, 3), unit="s", desc="simulating", leave=False)
