"""orch: a Kubernetes-compatible orchestrator, from Python.

- ``orch.schedule(nodes, pods)``: the pure scheduler, with an explanation for every decision.
- ``orch.Simulation(...)``: the real API server, scheduler and controllers with simulated kubelets
  on a virtual clock.
- ``orch.Cluster(...)``: a live in-process cluster (context manager) with a kubeconfig.
- ``@cluster.controller(apiVersion, kind)`` / ``@sim.controller(...)``: a Python reconcile
  function run as a controller (live, or on the simulation's virtual clock).

Objects are Kubernetes-shaped camelCase dicts (the shape of ``kubectl get -o yaml``). Errors are
subclasses of :class:`OrchError`. DataFrame helpers need pandas; progress bars use tqdm when
installed.
"""

from orch._cluster import Cluster
from orch._frames import decisions_df, events_df, nodes_df, pods_df, utilization_df
from orch._orch import (
    AlreadyExistsError,
    ConflictError,
    ExpiredError,
    InvalidError,
    NotFoundError,
    OrchError,
    ReconcileContext,
    TimeoutError,
    __version__,
)
from orch._scheduling import schedule
from orch._simulation import Simulation

__all__ = [
    "AlreadyExistsError",
    "Cluster",
    "ConflictError",
    "ExpiredError",
    "InvalidError",
    "NotFoundError",
    "OrchError",
    "ReconcileContext",
    "Simulation",
    "TimeoutError",
    "__version__",
    "decisions_df",
    "events_df",
    "nodes_df",
    "pods_df",
    "schedule",
    "utilization_df",
]
