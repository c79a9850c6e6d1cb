"""The config keys that core and the installed mixins declare, for ``speedrun mixins --keys``
and ``--config.<TAB>`` completion.

Loading every mixin class imports its library (tensorboardX, torch, ...), which is too slow for
a key press, so the list is cached in ``$XDG_CACHE_HOME/speedrun/config-keys.json`` (else
``~/.cache/...``), keyed by the installed speedrun distributions and their versions: a new
install or upgrade makes the next completion rebuild it.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from ..experiment._contract import CORE_CONFIG_KEYS, declared_keys

if TYPE_CHECKING:
    from typing import Any

__all__ = ["installed_config_keys"]

_CACHE_FORMAT = 1


def _cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "speedrun", "config-keys.json")


def _fingerprint() -> list[str]:
    from importlib.metadata import entry_points

    from ..experiment._provenance import speedrun_distributions

    points = sorted(f"{e.name}={e.value}" for e in entry_points(group="speedrun.mixins"))
    versions = sorted(f"{name}=={version}" for name, version in speedrun_distributions().items())
    return versions + points


def _row(key: Any, owner: str, source: str) -> dict[str, Any]:
    return {
        "path": key.path,
        "default": repr(key.default),
        "kinds": key.kind_names,
        "doc": key.doc,
        "owner": owner,
        "source": source,
    }


def _collect() -> tuple[list[dict[str, Any]], list[str]]:
    from importlib.metadata import entry_points

    rows = [_row(key, "BaseExperiment", "speedrun-core") for key in CORE_CONFIG_KEYS]
    problems = []
    for entry_point in sorted(entry_points(group="speedrun.mixins"), key=lambda e: e.name):
        try:
            cls = entry_point.load()
            keys = declared_keys(cls)
        except Exception as error:
            problems.append(f"{entry_point.name}: {type(error).__name__}: {error}")
            continue
        dist = getattr(entry_point, "dist", None)
        source = dist.name if dist is not None else entry_point.name
        rows += [_row(key, owner, source) for key, owner in keys.values()]
    unique = {row["path"]: row for row in rows}  # a key a mixin shares with core: listed once
    return sorted(unique.values(), key=lambda row: row["path"]), problems


def installed_config_keys(*, refresh: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """``(rows, problems)``: one row per declared key (path, default, kinds, doc, owner,
    source distribution), and one line per mixin that could not be loaded."""
    fingerprint = _fingerprint()
    path = _cache_path()
    if not refresh:
        try:
            with open(path, encoding="utf-8") as handle:
                cached = json.load(handle)
            if (
                isinstance(cached, dict)
                and cached.get("format") == _CACHE_FORMAT
                and cached.get("fingerprint") == fingerprint
                and isinstance(cached.get("keys"), list)
            ):
                return cached["keys"], []
        except (OSError, ValueError):
            pass
    rows, problems = _collect()
    if not problems:
        from ..directory._fs import atomic_write_text

        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write_text(
                path,
                json.dumps({"format": _CACHE_FORMAT, "fingerprint": fingerprint, "keys": rows}),
                durable=False,
            )
        except OSError:  # a read-only home: no cache, still correct
            pass
    return rows, problems
