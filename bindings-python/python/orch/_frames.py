"""DataFrames of pods, nodes, jobs, events, decisions, utilization and autoscaler decisions
(when pandas is installed)."""

from __future__ import annotations

from typing import Any, Iterable


def _pandas() -> Any:
    try:
        import pandas  # type: ignore[import-untyped,unused-ignore]
    except ImportError as e:  # pragma: no cover - exercised only without pandas
        raise ImportError("DataFrames need pandas: pip install pandas") from e
    return pandas


def _cond(obj: dict[str, Any], kind: str) -> str | None:
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == kind:
            return str(c.get("status"))
    return None


def pods_df(pods: Iterable[dict[str, Any]]) -> Any:
    """One row per pod: namespace, name, phase, node, ready, restarts, created, owner."""
    rows = []
    for p in pods:
        meta, spec, status = p.get("metadata", {}), p.get("spec", {}), p.get("status", {})
        owners = meta.get("ownerReferences") or []
        rows.append(
            {
                "namespace": meta.get("namespace"),
                "name": meta.get("name"),
                "phase": status.get("phase"),
                "node": spec.get("nodeName"),
                "ready": _cond(p, "Ready") == "True",
                "restarts": sum(
                    cs.get("restartCount", 0) for cs in status.get("containerStatuses", []) or []
                ),
                "created": meta.get("creationTimestamp"),
                "owner": f"{owners[0]['kind']}/{owners[0]['name']}" if owners else None,
            }
        )
    return _pandas().DataFrame(
        rows, columns=["namespace", "name", "phase", "node", "ready", "restarts", "created", "owner"]
    )


def nodes_df(nodes: Iterable[dict[str, Any]]) -> Any:
    """One row per node: name, ready, unschedulable, zone, cpu, memory, pods (allocatable), taints."""
    rows = []
    for n in nodes:
        meta, spec, status = n.get("metadata", {}), n.get("spec", {}), n.get("status", {})
        alloc = status.get("allocatable") or status.get("capacity") or {}
        rows.append(
            {
                "name": meta.get("name"),
                "ready": _cond(n, "Ready"),
                "unschedulable": bool(spec.get("unschedulable", False)),
                "zone": (meta.get("labels") or {}).get("topology.kubernetes.io/zone"),
                "cpu": alloc.get("cpu"),
                "memory": alloc.get("memory"),
                "pods": alloc.get("pods"),
                "taints": ",".join(
                    f"{t.get('key')}:{t.get('effect')}" for t in spec.get("taints", []) or []
                ),
            }
        )
    return _pandas().DataFrame(
        rows, columns=["name", "ready", "unschedulable", "zone", "cpu", "memory", "pods", "taints"]
    )


def jobs_df(jobs: Iterable[dict[str, Any]]) -> Any:
    """One row per Job: namespace, name, completions (wanted), succeeded, failed, active,
    started, completed, duration (seconds, once finished), status (Complete / Failed /
    Suspended / Running)."""
    pandas = _pandas()
    rows = []
    for j in jobs:
        meta, spec, status = j.get("metadata", {}), j.get("spec", {}), j.get("status", {})
        started, completed = status.get("startTime"), status.get("completionTime")
        state = "Running"
        for kind in ("Complete", "Failed", "Suspended"):
            if _cond(j, kind) == "True":
                state = kind
                break
        finished = completed
        if state == "Failed":
            finished = next(
                (c.get("lastTransitionTime") for c in status.get("conditions") or [] if c.get("type") == "Failed"),
                None,
            )
        duration = None
        if started and finished:
            duration = (pandas.Timestamp(finished) - pandas.Timestamp(started)).total_seconds()
        rows.append(
            {
                "namespace": meta.get("namespace"),
                "name": meta.get("name"),
                "completions": spec.get("completions"),
                "succeeded": status.get("succeeded", 0),
                "failed": status.get("failed", 0),
                "active": status.get("active", 0),
                "started": started,
                "completed": completed,
                "duration": duration,
                "status": state,
            }
        )
    return pandas.DataFrame(
        rows,
        columns=[
            "namespace", "name", "completions", "succeeded", "failed", "active",
            "started", "completed", "duration", "status",
        ],
    )


def events_df(events: Iterable[dict[str, Any]]) -> Any:
    """One row per Event: time, type, reason, object, message, count, source."""
    rows = []
    for e in events:
        inv = e.get("involvedObject") or e.get("regarding") or {}
        rows.append(
            {
                "time": e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp"),
                "type": e.get("type"),
                "reason": e.get("reason"),
                "object": f"{inv.get('kind')}/{inv.get('name')}",
                "namespace": inv.get("namespace"),
                "message": e.get("message") or e.get("note"),
                "count": e.get("count", 1),
                "source": (e.get("source") or {}).get("component") or e.get("reportingController"),
            }
        )
    df = _pandas().DataFrame(
        rows, columns=["time", "type", "reason", "object", "namespace", "message", "count", "source"]
    )
    return df.sort_values("time", kind="stable").reset_index(drop=True) if len(df) else df


def decisions_df(decisions: Iterable[dict[str, Any]]) -> Any:
    """One row per scheduling decision: pod, result, node, score, feasible nodes, message."""
    rows = []
    for d in decisions:
        ex = d.get("explanation") or {}
        winner = ex.get("winner") or {}
        rows.append(
            {
                "time": d.get("time"),
                "pod": d.get("pod"),
                "result": d.get("result", "scheduled" if d.get("node") else "unschedulable"),
                "node": d.get("node"),
                "score": winner.get("score", d.get("score")),
                "feasible": ex.get("nodes_feasible", d.get("feasible")),
                "message": d.get("message") or winner.get("summary"),
            }
        )
    return _pandas().DataFrame(
        rows, columns=["time", "pod", "result", "node", "score", "feasible", "message"]
    )


def utilization_df(samples: Iterable[dict[str, Any]]) -> Any:
    """Cluster utilization over (virtual) time, one row per sample."""
    return _pandas().DataFrame(list(samples))


HPA_COLUMNS = [
    "time", "namespace", "name", "min_replicas", "max_replicas", "current_replicas",
    "desired_replicas", "cpu_utilization", "rescale",
]


def hpa_df(samples: Iterable[dict[str, Any]]) -> Any:
    """One row per HorizontalPodAutoscaler per metrics scrape: time, namespace, name, min and
    max replicas, current and desired replicas, CPU utilization (% of requests, when the
    autoscaler has a cpu metric) and the reason of the SuccessfulRescale since the previous
    row, if any."""
    rows = [
        {
            "time": h.get("time"),
            "namespace": h.get("namespace"),
            "name": h.get("name"),
            "min_replicas": h.get("minReplicas"),
            "max_replicas": h.get("maxReplicas"),
            "current_replicas": h.get("currentReplicas"),
            "desired_replicas": h.get("desiredReplicas"),
            "cpu_utilization": h.get("cpuUtilization"),
            "rescale": h.get("rescale"),
        }
        for h in samples
    ]
    return _pandas().DataFrame(rows, columns=HPA_COLUMNS)
