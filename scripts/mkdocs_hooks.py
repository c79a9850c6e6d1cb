"""MkDocs hooks (mkdocs.yml ``hooks:``): pages generated from the distributions themselves.

- ``reference/<module>.md``: the API reference of every public module (``speedrun``,
  ``speedrun.ext`` and each ``speedrun.mixins.<name>``), rendered by mkdocstrings from the
  docstrings; one page per distribution found in ``packages/*/pyproject.toml``.
- ``changelog/<name>.md``: each distribution's CHANGELOG.md.
- ``<!-- help: COMMAND ARGS -->`` in a page becomes the ``--help`` output of a console script
  of a distribution (``speedrun``, ``speedrun-sweep``, ...), run from the sources, so the
  command-line reference cannot go stale.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("_speedrun_release", ROOT / "scripts" / "release.py")
assert _spec and _spec.loader
release = importlib.util.module_from_spec(_spec)
sys.modules["_speedrun_release"] = release
_spec.loader.exec_module(release)

_HELP = re.compile(r"<!-- help: ([\w-]+)((?: [\w.-]+)*) -->")
#: Every distribution's ``speedrun/`` merged into one tree, as an install of all of them lays it
#: out in site-packages; mkdocstrings (griffe) reads the sources from here (mkdocs.yml ``paths``).
SOURCES = ROOT / "build" / "docs-src"


def merge_sources() -> None:
    """Copy every ``packages/*/src/speedrun`` into :data:`SOURCES`.

    griffe reads a package whose ``__init__`` extends its ``__path__`` with pkgutil as a pure
    namespace and skips the rest of that ``__init__`` (core's names and docstring). In the merged
    copy one tree holds every module, so the ``extend_path`` line is written in a form griffe does
    not take for that idiom, and ``speedrun/mixins/`` (a PEP 420 namespace, which griffe does not
    look into below a regular package) gets an ``__init__.py`` here; nothing else changes.
    """
    if SOURCES.exists():
        shutil.rmtree(SOURCES)
    for dist in release.discover():
        shutil.copytree(
            dist.folder / "src" / "speedrun",
            SOURCES / "speedrun",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    init = SOURCES / "speedrun" / "__init__.py"
    text = init.read_text(encoding="utf-8")
    init.write_text(
        text.replace("extend_path(__path__, __name__)", "extend_path(__path__,__name__)"),
        encoding="utf-8",
    )
    (SOURCES / "speedrun" / "mixins" / "__init__.py").write_text(
        '"""The mixins of the installed speedrun distributions."""\n', encoding="utf-8"
    )


merge_sources()


def _pages() -> list[tuple[str, str, str, str]]:
    """``(nav title, path, content, section)`` of every generated page."""
    pages = []
    for dist in release.discover():
        modules = ["speedrun", "speedrun.ext"] if dist.is_core else [dist.module]
        for module in modules:
            content = (
                f"# `{module}`\n\n"
                f"From the distribution `{dist.name}` {dist.version} (`pip install {dist.name}`).\n\n"
                f"::: {module}\n"
                "    options:\n      show_root_heading: false\n      show_root_toc_entry: false\n"
            )
            pages.append((module, f"reference/{module}.md", content, "API reference"))
        changelog = dist.changelog.read_text(encoding="utf-8")
        # The file's links are relative to its folder; the docs link to the repository instead.
        pages.append((dist.name, f"changelog/{dist.name}.md", changelog, "Release notes"))
    return pages


def on_config(config: Any) -> Any:
    for title, path, _, section in _pages():
        for entry in config["nav"]:
            if isinstance(entry, dict) and section in entry:
                entry[section].append({title: path})
    return config


def on_files(files: Files, config: Any) -> Files:
    for _, path, content, _ in _pages():
        files.append(File.generated(config, path, content=content))
    return files


def _scripts() -> dict[str, tuple[str, list[Path]]]:
    """``{console script: (module:function, source folders to import it from)}``."""
    dists = release.discover()
    core = release.find(release.CORE, dists)
    found = {}
    for dist in dists:
        for name, target in dist.project.get("scripts", {}).items():
            found[name] = (target, sorted({core.folder / "src", dist.folder / "src"}))
    return found


def _help(command: str, args: str) -> str:
    scripts = _scripts()
    if command not in scripts:
        raise ValueError(
            f"<!-- help: {command} --> names no console script; known: {sorted(scripts)}"
        )
    target, paths = scripts[command]
    module, function = target.split(":")
    code = f"import sys; sys.argv[0] = {command!r}; from {module} import {function}; sys.exit({function}())"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths)), "COLUMNS": "100"}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args.split(), "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{command}{args} --help failed ({proc.returncode}):\n{proc.stderr}")
    return f"```console\n$ {command}{args} --help\n{proc.stdout.rstrip()}\n```"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    return _HELP.sub(lambda m: _help(m.group(1), m.group(2)), markdown)
