"""Write (or check) the "Config keys" table of every distribution's README.

The table is generated from what the code declares (``CONFIG_KEYS``, see ARCHITECTURE.md): core's
README lists ``BaseExperiment``'s keys, each mixin's README the keys its mixin class declares.
It lives between ``<!-- config-keys:start -->`` and ``<!-- config-keys:end -->``.

    python scripts/config_keys.py            # rewrite the tables
    python scripts/config_keys.py --check    # exit 1 and name the stale READMEs
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import import_module
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- config-keys:start -->", "<!-- config-keys:end -->"


def declared_rows(package: Path) -> list[tuple[str, str, str, str]] | None:
    """``(key, default, type, meaning)`` rows for the distribution in ``package``, or None when
    it declares no mixin (and is not core)."""
    from speedrun.experiment._contract import CORE_CONFIG_KEYS, declared_keys

    meta = tomllib.loads((package / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    if meta["name"] == "speedrun-core":
        keys = list(CORE_CONFIG_KEYS)
    else:
        points = meta.get("entry-points", {}).get("speedrun.mixins", {})
        if not points:
            return None
        keys = []
        for value in points.values():
            module, _, name = value.partition(":")
            cls = getattr(import_module(module), name)
            keys += [
                key for key, owner in declared_keys(cls).values() if key not in CORE_CONFIG_KEYS
            ]
    return [(f"`{key.path}`", f"`{key.default!r}`", key.kind_names, key.doc) for key in keys]


def table(rows: list[tuple[str, str, str, str]]) -> str:
    if not rows:
        return "This distribution reads no config keys."
    lines = ["| key | default | type | meaning |", "| --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def updated(readme: str, rows: list[tuple[str, str, str, str]]) -> str | None:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        return None
    return pattern.sub(lambda _: f"{START}\n{table(rows)}\n{END}", readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    args = parser.parse_args(argv)
    problems = []
    for package in sorted((ROOT / "packages").glob("speedrun-*")):
        rows = declared_rows(package)
        if rows is None:
            continue
        readme_path = package / "README.md"
        readme = readme_path.read_text(encoding="utf-8")
        new = updated(readme, rows)
        if new is None:
            problems.append(f"{readme_path.relative_to(ROOT)}: no {START} ... {END} block")
        elif new != readme:
            if args.check:
                problems.append(
                    f"{readme_path.relative_to(ROOT)}: the Config keys table is "
                    "stale; run python scripts/config_keys.py"
                )
            else:
                readme_path.write_text(new, encoding="utf-8")
                print(f"updated {readme_path.relative_to(ROOT)}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
