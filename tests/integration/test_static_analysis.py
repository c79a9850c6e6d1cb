"""ruff (lint and format), mypy --strict and import-linter hold the project's rules.

They run here so that `hatch test` (and CI) fails when a rule is broken; their configuration is
ruff.toml, mypy.ini and .importlinter at the repository root (see ARCHITECTURE.md).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(
            f"{name} is not installed in this environment: it is in hatch.toml's "
            f"hatch-test dependencies; run the tests with `hatch test`"
        )
    return found


def test_ruff_lint() -> None:
    result = _run(_tool("ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run(_tool("ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    sources = sorted(str(path.relative_to(ROOT)) for path in ROOT.glob("packages/*/src/speedrun"))
    result = _run(sys.executable, "-m", "mypy", *sources)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts() -> None:
    result = _run(_tool("lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
