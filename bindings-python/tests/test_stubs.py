"""The type stubs of the native module match what it exports at run time."""

import subprocess
import sys

import pytest


def test_stubtest_passes() -> None:
    pytest.importorskip("mypy")
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "orch"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
