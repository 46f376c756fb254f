"""Turning what users pass (YAML text, paths, dicts, lists, ``kubernetes`` models) into manifests."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Union

Manifest = dict[str, Any]
ObjectsLike = Union[str, "os.PathLike[str]", Manifest, list[Any], Any]


_GROUPS = {
    "Deployment": "apps", "ReplicaSet": "apps", "StatefulSet": "apps", "DaemonSet": "apps",
    "ControllerRevision": "apps", "Job": "batch", "CronJob": "batch",
    "PodDisruptionBudget": "policy", "Lease": "coordination.k8s.io",
    "HorizontalPodAutoscaler": "autoscaling", "Ingress": "networking.k8s.io",
    "NetworkPolicy": "networking.k8s.io", "PriorityClass": "scheduling.k8s.io",
    "CustomResourceDefinition": "apiextensions.k8s.io",
}
_MODEL_NAME = re.compile(r"^(V\d+(?:alpha\d+|beta\d+)?)([A-Z]\w*)$")


def _model_to_dict(obj: Any) -> Manifest | None:
    """A ``kubernetes`` client model (``V1Pod`` …) as a camelCase dict, or None if ``obj`` is
    not one. Models built in code often lack ``api_version``/``kind``: they are inferred from
    the class name (``V1Deployment`` → ``apps/v1`` ``Deployment``)."""
    if not hasattr(obj, "openapi_types") or not hasattr(obj, "attribute_map"):
        return None
    try:
        from kubernetes.client import ApiClient  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - a model without the package cannot exist
        return None
    d = ApiClient().sanitize_for_serialization(obj)
    if not isinstance(d, dict):
        return None
    m = _MODEL_NAME.match(type(obj).__name__)
    if m and ("kind" not in d or "apiVersion" not in d):
        version, kind = m.group(1).lower(), m.group(2)
        group = _GROUPS.get(kind)
        d.setdefault("kind", kind)
        d.setdefault("apiVersion", f"{group}/{version}" if group else version)
    return d


def _read_path(p: Path) -> str:
    if p.is_dir():
        files = sorted(
            f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json") and f.is_file()
        )
        return "\n---\n".join(f.read_text() for f in files)
    return p.read_text()


def _looks_like_path(s: str) -> bool:
    return "\n" not in s and ":" not in s and (s.endswith((".yaml", ".yml", ".json")) or os.path.exists(s))


def to_native(obj: ObjectsLike) -> str | list[Any]:
    """YAML text for the native layer, or a list of dicts.

    A ``str`` is a path when it names an existing file (or a directory of ``*.yaml``) or ends in
    ``.yaml``/``.yml``/``.json``; otherwise it is YAML or JSON text.
    """
    if isinstance(obj, os.PathLike):
        return _read_path(Path(obj))
    if isinstance(obj, str):
        if _looks_like_path(obj):
            return _read_path(Path(obj))
        return obj
    if isinstance(obj, dict):
        return [obj]
    if isinstance(obj, (list, tuple)):
        out: list[Any] = []
        for item in obj:
            native = to_native(item)
            if isinstance(native, str):
                raise TypeError("a list passed to apply() must hold dicts or kubernetes models, not text")
            out.extend(native)
        return out
    d = _model_to_dict(obj)
    if d is not None:
        return [d]
    raise TypeError(
        f"cannot apply a {type(obj).__name__}: pass YAML text, a path, a dict, a list or a kubernetes model"
    )
