"""``orch.Cluster``: a live in-process cluster with a kubeconfig."""

from __future__ import annotations

import os
import time
from typing import Any

from orch import _orch
from orch._api import Condition, ReconcileFn, _Objects


class Cluster(_Objects):
    """A live cluster in this process: API server (HTTP on 127.0.0.1, kubeconfig written),
    scheduler, controller manager and ``nodes`` kubelets. ``runtime="process"`` runs real
    processes; ``"sim"`` simulates containers from ``sim.orch.dev/*`` annotations.
    ``storage`` is ``"memory"`` or a directory for the durable store. Use it as a context
    manager; ``kubectl --kubeconfig cluster.kubeconfig`` and the ``kubernetes`` client work
    against it."""

    def __init__(
        self,
        nodes: int = 1,
        runtime: str = "process",
        storage: str | os.PathLike[str] = "memory",
        *,
        ready_timeout: float = 30.0,
    ) -> None:
        self._cluster = _orch.Cluster(nodes, runtime, os.fspath(storage), ready_timeout)
        self._handle = self._cluster.handle()

    def __repr__(self) -> str:
        state = "closed" if self._cluster.closed else self._cluster.url
        return f"<orch.Cluster {state} nodes={len(self._cluster.node_names)}>"

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def kubeconfig(self) -> str | None:
        """Path of the kubeconfig file."""
        return self._cluster.kubeconfig

    @property
    def url(self) -> str | None:
        """The API server's URL."""
        return self._cluster.url

    @property
    def node_names(self) -> list[str]:
        """Names of the in-process nodes."""
        return self._cluster.node_names

    def shutdown(self) -> None:
        """Stop every component gracefully (idempotent); the store is closed afterwards, so a
        new cluster can open the same directory."""
        self._cluster.shutdown()
        self._handle = _ShutDown()  # type: ignore[assignment]

    def _add_controller(self, api_version: str, kind: str, owns: list[str], fn: ReconcileFn) -> None:
        self._cluster.add_controller(api_version, kind, owns, fn)

    def logs(self, pod: str, namespace: str | None = None, *, container: str | None = None, tail_lines: int | None = None) -> str:
        """A container's log (``pods/log`` over HTTP, proxied to the kubelet)."""
        return self._cluster.logs(pod, namespace, container, tail_lines)

    def kubernetes_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` configured from this cluster's kubeconfig."""
        from kubernetes import config  # type: ignore[import-untyped,unused-ignore]

        return config.new_client_from_config(config_file=self.kubeconfig)

    def _wait(self, kind: str, name: str, condition: Condition, timeout: float, namespace: str | None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            ok, obj = self._check(kind, name, condition, namespace)
            if ok:
                return obj
            if time.monotonic() >= deadline:
                raise _orch.TimeoutError(f"timed out after {timeout:g}s waiting for {kind} {name} to be {condition!r}")
            time.sleep(0.05)


class _ShutDown:
    """Stands in for the object handle after shutdown: every call raises OrchError."""

    def __getattr__(self, name: str) -> Any:
        raise _orch.OrchError("the cluster is shut down")
