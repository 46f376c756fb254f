"""Type stubs of the native module ``orch._orch`` (checked by ``python -m mypy.stubtest orch``)."""

from typing import Any

__all__ = [
    "__version__",
    "OrchError",
    "NotFoundError",
    "AlreadyExistsError",
    "ConflictError",
    "InvalidError",
    "ExpiredError",
    "TimeoutError",
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
