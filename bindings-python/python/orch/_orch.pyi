"""Type stubs of the native module ``orch._orch`` (checked by ``python -m mypy.stubtest orch``)."""

from collections.abc import Iterator
from typing import Any, final

__all__ = [
    "__version__",
    "OrchError",
    "NotFoundError",
    "AlreadyExistsError",
    "ConflictError",
    "InvalidError",
    "ExpiredError",
    "TimeoutError",
    "Handle",
    "schedule",
    "Watch",
]

__version__: str

class OrchError(Exception):
    """Base class of every error raised by orch."""

    code: int
    reason: str
    causes: list[dict[str, Any]]

class NotFoundError(OrchError):
    """The object does not exist (404 NotFound)."""

class AlreadyExistsError(OrchError):
    """An object with that name already exists (409 AlreadyExists)."""

class ConflictError(OrchError):
    """The write lost an optimistic-concurrency race or a precondition failed (409 Conflict)."""

class InvalidError(OrchError):
    """The object failed validation (422 Invalid); ``causes`` lists the field errors."""

class ExpiredError(OrchError):
    """The requested resourceVersion is too old (410 Gone / Expired)."""

class TimeoutError(OrchError):
    """A wait or a server-side operation timed out."""

@final
class Handle:
    """Object access to one cluster (live or simulated)."""

    def apply(self, objs: str | list[Any] | dict[str, Any]) -> list[dict[str, Any]]: ...
    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]: ...
    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]: ...
    def patch(
        self,
        kind: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> dict[str, Any]: ...
    def delete(
        self,
        kind: str,
        name: str,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> dict[str, Any]: ...
    def watch(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout: float | None = None,
    ) -> Watch: ...
    def logs(
        self,
        pod: str,
        namespace: str | None = None,
        container: str | None = None,
        tail_lines: int | None = None,
    ) -> str: ...

@final
class Watch:
    """An open watch: iterate for ``{"type", "object"}`` dicts."""

    def __iter__(self) -> Iterator[dict[str, Any]]: ...
    def __next__(self) -> dict[str, Any]: ...
    def close(self) -> None: ...

def schedule(
    nodes: Any,
    pods: Any,
    config: Any = None,
    explain: bool = True,
    seed: int | None = None,
) -> list[dict[str, Any]]: ...
