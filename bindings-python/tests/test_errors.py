"""The exception hierarchy: every class derives from orch.OrchError and carries the server's fields."""

import pytest

import orch


@pytest.mark.parametrize(
    "cls",
    [
        orch.NotFoundError,
        orch.AlreadyExistsError,
        orch.ConflictError,
        orch.InvalidError,
        orch.ExpiredError,
        orch.TimeoutError,
    ],
)
def test_every_error_is_an_orch_error(cls: type) -> None:
    assert issubclass(cls, orch.OrchError)
    assert issubclass(cls, Exception)
    assert cls.__module__ == "orch"
    assert cls.__doc__


def test_orch_error_is_not_a_builtin_timeout() -> None:
    # orch.TimeoutError is orch's own class: `except TimeoutError` in user code keeps meaning the builtin.
    assert orch.TimeoutError is not TimeoutError
    assert not issubclass(orch.TimeoutError, TimeoutError)


def test_version() -> None:
    assert orch.__version__.count(".") == 2
