"""The config keys a run's experiment class declared, with the values the run used, for
``speedrun show``.

``auto_setup()`` keeps the declared keys in the run record (``config_keys``: path, default,
kinds, declaring class, doc; see :func:`speedrun.experiment._contract.recorded_keys`), so they
are read back here without importing the experiment's module. The value a run used is the
resolved config's when it sets the key (even to ``null``), else the declared default, as
``config_value`` reads it. A record of the latest attempt holds the keys of that start.
"""

from __future__ import annotations

from typing import Any

from ..config._tree import Config
from ._format import format_value, shorten, table

__all__ = ["key_lines", "used_keys"]

_VALUE_WIDTH = 40
_NOT_RECORDED_OLD = "not recorded (run made with an older speedrun)"
_NOT_RECORDED_NO_RECORD = (
    "not recorded (no run record: run not started by auto_setup(), or by the original speedrun)"
)
_NOT_A_RUN = "- (a configuration file, not a run)"
_MISSING = object()


def used_keys(record: dict[str, Any] | None, config: dict[Any, Any]) -> list[dict[str, Any]] | None:
    """One dict per declared key of the run, sorted by path, or None when the record keeps none.

    Each holds ``path``, ``value`` (what the run used), ``source`` (``"config"``: the resolved
    config sets it; ``"default"``: the declared default), ``default``, ``owner`` (the declaring
    class), ``kinds``, ``doc``, and ``default_is_repr`` (the default was not plain data and is
    its ``repr`` text; so is ``value`` when ``source`` is ``"default"``). Entries of a
    hand-edited record that are not such dicts are left out.
    """
    if not record:
        return None
    recorded = record.get("config_keys")
    if not isinstance(recorded, list):
        return None
    tree = Config(config if isinstance(config, dict) else {})
    rows = []
    for entry in recorded:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        path = entry["path"]
        value = tree.lookup(path, _MISSING)
        from_config = value is not _MISSING
        rows.append(
            {
                "path": path,
                "value": value if from_config else entry.get("default"),
                "source": "config" if from_config else "default",
                "default": entry.get("default"),
                "default_is_repr": entry.get("default_is_repr") is True,
                "owner": entry.get("owner"),
                "kinds": entry.get("kinds"),
                "doc": entry.get("doc"),
            }
        )
    return sorted(rows, key=lambda row: row["path"])


def _default_text(row: dict[str, Any]) -> str:
    if row["default_is_repr"]:
        return str(row["default"])
    return format_value(row["default"])


def key_lines(
    record: dict[str, Any] | None, config: dict[Any, Any], *, is_run: bool = True
) -> list[str]:
    """``speedrun show``'s "declared config keys" section, its title line first."""
    title = "declared config keys"
    if not is_run:
        return [f"{title}: {_NOT_A_RUN}"]
    rows = used_keys(record, config)
    if rows is None:
        return [f"{title}: {_NOT_RECORDED_OLD if record else _NOT_RECORDED_NO_RECORD}"]
    if not rows:
        return [f"{title}: none"]
    cells = []
    for row in rows:
        if row["source"] == "config":
            value = format_value(row["value"])
        else:
            value = _default_text(row)
        cells.append(
            [
                row["path"],
                shorten(value, _VALUE_WIDTH),
                row["source"],
                shorten(_default_text(row), _VALUE_WIDTH),
                str(row["owner"] or "?"),
            ]
        )
    lines = table(["KEY", "VALUE", "FROM", "DEFAULT", "READ BY"], cells).splitlines()
    return [
        f"{title} (what the run used: the resolved config's value, else the declared default):",
        *("  " + line for line in lines),
    ]
