"""The object API shared by :class:`orch.Cluster` and :class:`orch.Simulation`."""

from __future__ import annotations

import builtins
from typing import Any, Callable, Iterable, Iterator, Union

from orch import _frames, _orch
from orch._inputs import ObjectsLike, to_native

Condition = Union[str, Callable[[dict[str, Any]], bool]]

#: A reconcile function: the object (a dict, as read) and its :class:`orch.ReconcileContext`;
#: returns seconds after which to reconcile it again, or None.
ReconcileFn = Callable[[dict[str, Any], "_orch.ReconcileContext"], Union[float, None]]


def _rolled_out(obj: dict[str, Any]) -> bool:
    """What ``kubectl rollout status`` waits for, by kind (kubectl's status viewers)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if (status.get("observedGeneration") or 0) < (obj.get("metadata", {}).get("generation") or 0):
        return False
    kind = obj.get("kind")
    if kind == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0)
        return bool(status.get("updatedNumberScheduled", 0) >= want and status.get("numberAvailable", 0) >= want)
    if kind == "StatefulSet":
        want = spec.get("replicas", 1)
        if status.get("readyReplicas", 0) < want:
            return False
        partition = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition")
        if partition is not None:
            return bool(status.get("updatedReplicas", 0) >= want - partition)
        return bool(status.get("updateRevision") == status.get("currentRevision"))
    want = spec.get("replicas", 1)
    return bool(
        status.get("updatedReplicas", 0) == want
        and status.get("availableReplicas", 0) == want
        and status.get("replicas", 0) == want
    )


def _condition_met(obj: dict[str, Any], condition: Condition) -> bool:
    """``condition``: a callable on the object, a condition type that must be ``True``
    (``Ready``, ``Available``, ``Complete``…), a phase (``Running``, ``Succeeded``…), or
    ``"rolledOut"`` (a Deployment, DaemonSet or StatefulSet rolled out as ``kubectl rollout
    status`` sees it)."""
    if callable(condition):
        return bool(condition(obj))
    status = obj.get("status") or {}
    if condition == "rolledOut":
        return _rolled_out(obj)
    if status.get("phase") == condition:
        return True
    for c in status.get("conditions") or []:
        if c.get("type") == condition and c.get("status") == "True":
            return True
    return False


class _Objects:
    """Kubernetes-shaped object access; subclasses provide ``_handle`` and ``_wait``."""

    _handle: _orch.Handle

    def _after_write(self, kind: str, name: str, namespace: str | None) -> None:
        """Hook: the simulation re-reads objects written behind the engine's back."""

    def controller(
        self, api_version: str, kind: str, *, owns: Iterable[str] = ()
    ) -> Callable[[ReconcileFn], ReconcileFn]:
        """Decorator: run ``fn(obj, ctx)`` as a controller of ``kind`` in ``api_version``.

        The function is called with each object of the kind when it is created or changes
        (and when a child of a kind in ``owns`` — ``"ConfigMap"`` or ``"Kind.group"`` — whose
        controller ownerReference names it changes). It asks for writes through ``ctx``
        (``ctx.apply(child, owner=obj)``, ``ctx.patch_status({...})``, ``ctx.patch``,
        ``ctx.delete``, ``ctx.event``), which the driver carries out after it returns, and
        returns seconds after which to look at the object again, or None. It runs in
        orch-runtime's drivers like a built-in controller: the live one for a
        :class:`orch.Cluster`, the simulator's on the virtual clock for a
        :class:`orch.Simulation` (same seed, same result). An exception is logged on the
        ``orch.controller`` logger with the key and retried with back-off (0.1 s doubling,
        at most 300 s). The function must not call back into this cluster or simulation;
        it sees only ``obj`` and ``ctx``. The CRD may be applied before or after.

        Returns the function unchanged."""

        def register(fn: ReconcileFn) -> ReconcileFn:
            self._add_controller(api_version, kind, list(owns), fn)
            return fn

        return register

    def _add_controller(self, api_version: str, kind: str, owns: builtins.list[str], fn: ReconcileFn) -> None:
        raise NotImplementedError

    def apply(self, obj: ObjectsLike) -> list[dict[str, Any]]:
        """Create or update objects: YAML text, a path (file or directory), a dict, a list of
        dicts, or a ``kubernetes`` client model. Returns the objects as stored."""
        return self._handle.apply(to_native(obj))

    def create(self, obj: ObjectsLike) -> builtins.list[dict[str, Any]]:
        """Create objects (same inputs as :meth:`apply`); raises :class:`orch.AlreadyExistsError`
        when one exists."""
        out = self._handle.create(to_native(obj))
        for o in out:
            self._after_write(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))
        return out

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """One object (``kind`` is anything kubectl accepts: ``po``, ``pods``, ``Deployment``)."""
        return self._handle.get(kind, name, namespace)

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Objects of a kind; every namespace when ``namespace`` is None."""
        return self._handle.list(kind, namespace, label_selector, field_selector)

    def patch(
        self,
        kind: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """Patch an object (``merge``, ``json`` or ``strategic``)."""
        out = self._handle.patch(kind, name, patch, namespace, patch_type, subresource)
        self._after_write(kind, name, namespace)
        return out

    def delete(
        self, kind: str, name: str, namespace: str | None = None, *, grace_period_seconds: int | None = None
    ) -> dict[str, Any]:
        """Delete an object; returns its last state."""
        out = self._handle.delete(kind, name, namespace, grace_period_seconds)
        self._after_write(kind, name, namespace)
        return out

    def watch(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout: float | None = 5.0,
    ) -> Iterator[dict[str, Any]]:
        """Iterate ``{"type": "ADDED"|"MODIFIED"|"DELETED", "object": {...}}`` events; starts
        with the current objects unless ``resource_version`` is given, and ends after
        ``timeout`` seconds without an event (None: never)."""
        return iter(
            self._handle.watch(kind, namespace, label_selector, field_selector, resource_version, timeout)
        )

    def events(self, namespace: str | None = None, *, involved: str | None = None) -> builtins.list[dict[str, Any]]:
        """core/v1 Events, oldest first; ``involved`` filters on the object's name."""
        fs = f"involvedObject.name={involved}" if involved else None
        evs = self._handle.list("events", namespace, None, fs)
        if involved:  # servers without the field selector still filter correctly
            evs = [e for e in evs if (e.get("involvedObject") or {}).get("name") == involved]
        return sorted(evs, key=lambda e: (e.get("lastTimestamp") or e.get("eventTime") or "", e["metadata"]["name"]))

    def logs(self, pod: str, namespace: str | None = None, *, container: str | None = None, tail_lines: int | None = None) -> str:
        """A container's log."""
        return self._handle.logs(pod, namespace, container, tail_lines)

    def wait_for(
        self, kind: str, name: str, condition: Condition = "Ready", timeout: float = 60.0, namespace: str | None = None
    ) -> dict[str, Any]:
        """Wait until the object meets ``condition`` (see ``_condition_met``) or ``"deleted"``;
        raises :class:`orch.TimeoutError` after ``timeout`` seconds (virtual in a simulation)."""
        return self._wait(kind, name, condition, timeout, namespace)

    def _wait(
        self, kind: str, name: str, condition: Condition, timeout: float, namespace: str | None
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _check(self, kind: str, name: str, condition: Condition, namespace: str | None) -> tuple[bool, dict[str, Any]]:
        try:
            obj = self.get(kind, name, namespace)
        except _orch.NotFoundError:
            if condition == "deleted":
                return True, {}
            return False, {}
        if condition == "deleted":
            return False, obj
        return _condition_met(obj, condition), obj

    # DataFrames -------------------------------------------------------------------------

    def pods_df(self, namespace: str | None = None, *, label_selector: str | None = None) -> Any:
        """Pods as a DataFrame (needs pandas)."""
        return _frames.pods_df(self.list("pods", namespace, label_selector=label_selector))

    def nodes_df(self) -> Any:
        """Nodes as a DataFrame (needs pandas)."""
        return _frames.nodes_df(self.list("nodes"))

    def jobs_df(self, namespace: str | None = None) -> Any:
        """Jobs as a DataFrame (needs pandas): completions, counts, start, completion, duration, status."""
        return _frames.jobs_df(self.list("jobs", namespace))

    def events_df(self, namespace: str | None = None) -> Any:
        """Events as a DataFrame (needs pandas)."""
        return _frames.events_df(self.events(namespace))

    def hpa_df(self, namespace: str | None = None) -> Any:
        """The HorizontalPodAutoscalers' decisions over time (needs pandas): one row per
        rescale, from their ``SuccessfulRescale`` events (``New size: N; reason: …``), with the
        autoscaler's min and max; a simulation has a row per metrics scrape instead."""
        hpas = {(h["metadata"].get("namespace"), h["metadata"]["name"]): h for h in self.list("hpa", namespace)}
        rows = []
        for e in self.events(namespace):
            inv = e.get("involvedObject") or {}
            if e.get("reason") != "SuccessfulRescale" or inv.get("kind") != "HorizontalPodAutoscaler":
                continue
            size, _, reason = (e.get("message") or "").partition("; reason: ")
            spec = (hpas.get((inv.get("namespace"), inv.get("name"))) or {}).get("spec") or {}
            rows.append(
                {
                    "time": e.get("lastTimestamp") or e.get("eventTime"),
                    "namespace": inv.get("namespace"),
                    "name": inv.get("name"),
                    "minReplicas": spec.get("minReplicas"),
                    "maxReplicas": spec.get("maxReplicas"),
                    "desiredReplicas": int(size.removeprefix("New size: ")) if size.startswith("New size: ") else None,
                    "rescale": reason or None,
                }
            )
        rows.sort(key=lambda r: r["time"] or "")
        return _frames.hpa_df(rows)

    def decisions_df(self, namespace: str | None = None) -> Any:
        """Scheduling decisions (from Scheduled / FailedScheduling events) as a DataFrame."""
        rows = []
        for e in self.events(namespace):
            if e.get("reason") not in ("Scheduled", "FailedScheduling"):
                continue
            inv = e.get("involvedObject") or {}
            msg = e.get("message") or ""
            node = msg.rsplit(" to ", 1)[-1] if e.get("reason") == "Scheduled" else None
            rows.append(
                {
                    "time": e.get("lastTimestamp"),
                    "pod": f"{inv.get('namespace')}/{inv.get('name')}",
                    "result": "scheduled" if node else "unschedulable",
                    "node": node,
                    "message": msg,
                }
            )
        return _frames.decisions_df(rows)
