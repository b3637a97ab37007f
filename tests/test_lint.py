"""The code passes the project's pinned ruff rules (pyproject.toml [tool.ruff])."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_the_code_passes_ruff() -> None:
    pytest.importorskip("ruff", reason="ruff is installed by the test extra (setup.sh)")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "converters", "dags", "benchmarks", "tools"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
