"""Type stubs of the native module ``orch._orch`` (checked by ``python -m mypy.stubtest orch``)."""

from collections.abc import Callable, Iterator
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
    "Simulation",
    "Cluster",
    "schedule",
    "Watch",
    "ReconcileContext",
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
    def create(self, objs: str | list[Any] | dict[str, Any]) -> list[dict[str, Any]]: ...
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

@final
class Simulation:
    """A simulated cluster on a virtual clock."""

    def __new__(
        cls,
        scenario: str | dict[str, Any],
        seed: int = 0,
        events: bool = True,
        keep_log: bool = True,
        explain: bool = True,
    ) -> Simulation: ...
    def handle(self) -> Handle: ...
    @property
    def now(self) -> float: ...
    @property
    def time(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def duration(self) -> float | None: ...
    def run_until(self, until: float) -> float: ...
    def step(self, max: float = 60.0) -> float: ...
    def run_until_stable(self, limit: float = 3600.0) -> float: ...
    def apply(self, objs: str | list[Any] | dict[str, Any]) -> list[dict[str, Any]]: ...
    def refresh(self, kind: str, name: str, namespace: str | None = None) -> None: ...
    def add_controller(
        self,
        api_version: str,
        kind: str,
        owns: list[str],
        func: Callable[[dict[str, Any], ReconcileContext], float | None],
    ) -> None: ...
    def disrupt(self, action: dict[str, Any]) -> None: ...
    def report(self) -> dict[str, Any]: ...
    def event_log(self) -> list[str]: ...

@final
class Cluster:
    """A live in-process cluster."""

    def __new__(
        cls, nodes: int = 1, runtime: str = "process", storage: str = "memory", ready_timeout: float = 30.0
    ) -> Cluster: ...
    def handle(self) -> Handle: ...
    def add_controller(
        self,
        api_version: str,
        kind: str,
        owns: list[str],
        func: Callable[[dict[str, Any], ReconcileContext], float | None],
    ) -> None: ...
    def logs(
        self,
        pod: str,
        namespace: str | None = None,
        container: str | None = None,
        tail_lines: int | None = None,
    ) -> str: ...
    @property
    def kubeconfig(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...
    @property
    def node_names(self) -> list[str]: ...
    @property
    def closed(self) -> bool: ...
    def shutdown(self) -> None: ...

@final
class ReconcileContext:
    """What a reconcile function asks for; carried out by the driver after it returns."""

    @property
    def key(self) -> str: ...
    @property
    def now(self) -> str: ...
    def apply(self, obj: dict[str, Any], owner: dict[str, Any] | None = None) -> None: ...
    def patch_status(self, status: dict[str, Any]) -> None: ...
    def patch(self, patch: dict[str, Any]) -> None: ...
    def delete(self, obj: dict[str, Any]) -> None: ...
    def event(self, reason: str, message: str, type: str = "Normal") -> None: ...
