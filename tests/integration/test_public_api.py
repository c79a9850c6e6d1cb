"""The boundary between distributions: outside speedrun-core, only the public API is imported.

Mixin distributions are versioned on their own and declare a range of speedrun-core versions;
that range is honest only while they use what core promises: ``speedrun`` and ``speedrun.ext``.
This walks the syntax tree of every file (so imports inside functions count too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {"speedrun", "speedrun.ext"}  # and speedrun.mixins.*, each distribution's own API
# Everything under these folders may use only core's public API. tests/core and
# tests/distributed test core itself.
CHECKED = sorted(
    [
        path
        for path in (ROOT / "packages").glob("speedrun-*/src")
        if path.parent.name != "speedrun-core"
    ]
    + [
        path
        for path in (ROOT / "tests").iterdir()
        if path.is_dir() and path.name not in {"core", "distributed", "__pycache__"}
    ]
    + [ROOT / "examples"]
)


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "speedrun":  # from speedrun import _private
                found += [
                    (node.lineno, f"speedrun.{alias.name}")
                    for alias in node.names
                    if alias.name.startswith("_")
                ]
    return found


def _allowed(module: str) -> bool:
    if module == "speedrun" or not module.startswith("speedrun."):
        return True
    if module in PUBLIC:
        return True
    return module.startswith("speedrun.mixins.")


def _violations(folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [
            f"{path.relative_to(ROOT)}:{line}: imports {module}"
            for line, module in _imported_modules(tree)
            if not _allowed(module)
        ]
    return found


@pytest.mark.parametrize("folder", CHECKED, ids=lambda path: str(path.relative_to(ROOT)))
def test_only_the_public_api_of_core_is_imported(folder: Path) -> None:
    assert _violations(folder) == [], (
        "Expected imports of speedrun-core's public API only (speedrun, speedrun.ext); "
        "add what is missing to speedrun.ext instead."
    )


def test_the_check_catches_private_imports(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "from speedrun.directory._fs import atomic_open\n"
        "def f():\n    import speedrun.directory\n"
        "from speedrun import _errors, BaseExperiment\n"
        "from speedrun.ext import atomic_open\n"
        "from speedrun.mixins.tensorboard import TensorboardMixin\n",
        encoding="utf-8",
    )
    modules = sorted(
        module
        for _, module in _imported_modules(ast.parse((tmp_path / "bad.py").read_text()))
        if not _allowed(module)
    )
    assert modules == ["speedrun._errors", "speedrun.directory", "speedrun.directory._fs"]
