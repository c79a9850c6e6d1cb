"""Every error for a missing library comes from ``speedrun.ext.require``, in every distribution.

``require(module, feature=..., install=...)`` gives one message, ``<feature> needs <module>,
which is not installed. Fix: pip install ...``; a hand-written ``raise ImportError(...)`` is how
the nine different messages of the past came about. A ``try: import ... except ImportError``
that only decides something (a fallback, whether a compatibility fix is needed) stays allowed.
This walks the syntax tree of every source file.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "packages").glob("speedrun-*/src/speedrun/**/*.py"))
# The files allowed to build an ImportError themselves, and why.
ALLOWED = {
    # require() itself
    "speedrun-core/src/speedrun/_require.py",
    # ``from speedrun import IOMixin`` (a legacy name) when speedrun-io is not installed: no
    # module to import, an entry point to look up; its message names pip install speedrun-io.
    "speedrun-core/src/speedrun/_mixins.py",
}
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _import_error_classes(tree: ast.AST) -> set[str]:
    """ImportError, ModuleNotFoundError and the classes this module derives from them."""
    names = set(_IMPORT_ERRORS)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
            isinstance(base, ast.Name) and base.id in names for base in node.bases
        ):
            names.add(node.name)
    return names


def _raised_name(node: ast.Raise) -> str | None:
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    if isinstance(exc, ast.Name):
        return exc.id
    if isinstance(exc, ast.Attribute):
        return exc.attr
    return None


def test_the_sources_are_found() -> None:
    assert len(SOURCES) > 50
    assert any(path.name == "_require.py" for path in SOURCES)


def test_no_hand_written_import_errors() -> None:
    # Subclasses defined in one module and raised in another (core's _MissingLibraryError).
    classes = set(_IMPORT_ERRORS)
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in SOURCES}
    for tree in trees.values():
        classes |= _import_error_classes(tree)
    found = []
    for path, tree in trees.items():
        relative = path.relative_to(ROOT / "packages").as_posix()
        if relative in ALLOWED:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                name = _raised_name(node)
                if name in classes and isinstance(node.exc, ast.Call):
                    found.append(f"{relative}:{node.lineno} raises {name}(...)")
    assert found == [], (
        "Raise missing-library errors with speedrun.ext.require(module, feature=..., "
        "install='pip install ...') instead:\n" + "\n".join(found)
    )
