"""``orch.schedule``: the pure scheduler with explained decisions, no cluster."""

from __future__ import annotations

from typing import Any

from orch import _orch
from orch._inputs import ObjectsLike, to_native


def schedule(
    nodes: ObjectsLike,
    pods: ObjectsLike,
    config: str | dict[str, Any] | None = None,
    *,
    explain: bool = True,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Schedule ``pods`` onto ``nodes`` and explain every decision.

    ``nodes`` and ``pods`` are anything :meth:`Cluster.apply` takes (YAML text, a path, dicts,
    ``kubernetes`` models). Pods that already have ``spec.nodeName`` count as running there; the
    others are placed one by one in order, each seeing the ones before. ``config`` is a
    ``KubeSchedulerConfiguration`` (YAML text or dict), e.g. to switch ``NodeResourcesFit`` to
    ``MostAllocated``. Returns one dict per pending pod: ``pod``, ``result`` (``scheduled``,
    ``unschedulable``, ``gated``, ``error``), ``node`` or ``message``, and with ``explain`` the
    per-node ``explanation`` (filters, scores, winner).
    """
    return _orch.schedule(to_native(nodes), to_native(pods), config, explain=explain, seed=seed)
