"""Memory amounts: parse ``"8GB"`` / ``"512 MiB"``, format byte counts, read free RAM."""

from __future__ import annotations

import math
import re
from typing import Any

from speedrun import ArgumentError

from ._lazy import import_psutil

__all__ = ["MEMORY_UNITS", "available_memory", "format_bytes", "parse_memory_size", "total_memory"]

#: Accepted units (matched case-insensitively) and their size in bytes. KB/MB/GB/TB are decimal
#: (powers of 1000, like ``free --si`` and disk vendors); KiB/MiB/GiB/TiB are binary (powers of 1024,
#: like SLURM's ``--mem=8G``).
MEMORY_UNITS: dict[str, int] = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}
_UNITS_LOWER = {unit.lower(): size for unit, size in MEMORY_UNITS.items()}
_ACCEPTED = ", ".join(MEMORY_UNITS)
_PATTERN = re.compile(r"^\s*(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>[A-Za-z]*)\s*$")


def parse_memory_size(value: Any, *, what: str = "--wait.memory") -> int:
    """Parse a memory amount with a unit into a number of bytes.

    Parameters
    ----------
    value : str
        A non-negative number followed by a unit, e.g. ``"8GB"``, ``"1.5 GiB"``, ``"512mib"``.
        Units (case-insensitive): B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB
        (powers of 1024). A bare number is refused because ``16`` could mean bytes or gigabytes.
    what : str
        Name of the setting, used in error messages.

    Returns
    -------
    int
        The amount in bytes (rounded up).

    Raises
    ------
    ArgumentError
        If ``value`` is not a number with one of the accepted units.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ArgumentError(
            f"{what} expects a memory amount with a unit like '8GB' or '512MiB', got {value!r} "
            f"({type(value).__name__}). Accepted units (case-insensitive): {_ACCEPTED}."
        )
    if isinstance(value, (int, float)):
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        raise ArgumentError(
            f"{what} needs a unit: got the bare number {value!r}, which could mean bytes or "
            f"gigabytes. Write e.g. '{shown}GB' or '{shown}GiB' (for bytes: '{shown}B'). "
            f"Accepted units (case-insensitive): {_ACCEPTED}."
        )
    match = _PATTERN.match(value)
    if match is None:
        hint = " Negative amounts make no sense here." if value.strip().startswith("-") else ""
        raise ArgumentError(
            f"{what} expects a non-negative number followed by a unit, like '8GB', '1.5GiB' or "
            f"'512 MB'; got {value!r}.{hint} Accepted units (case-insensitive): {_ACCEPTED}."
        )
    number, unit = match.group("number"), match.group("unit")
    if not unit:
        raise ArgumentError(
            f"{what} needs a unit: got {value!r}, which could mean bytes or gigabytes. Write e.g. "
            f"'{number}GB' or '{number}GiB' (for bytes: '{number}B'). Accepted units "
            f"(case-insensitive): {_ACCEPTED}."
        )
    size = _UNITS_LOWER.get(unit.lower())
    if size is None:
        hint = ""
        if unit.lower() in {"k", "m", "g", "t"}:
            letter = unit.upper()
            hint = f" For '{unit}', write '{letter}B' (powers of 1000) or '{letter}iB' (powers of 1024)."
        raise ArgumentError(
            f"{what} got the unknown unit {unit!r} in {value!r}. Accepted units "
            f"(case-insensitive): {_ACCEPTED}.{hint}"
        )
    return int(math.ceil(float(number) * size))


def format_bytes(count: float) -> str:
    """Format a byte count for humans, in the same decimal units the parser accepts (``'7.9 GB'``)."""
    for unit in ("TB", "GB", "MB", "KB"):
        if abs(count) >= MEMORY_UNITS[unit]:
            return f"{count / MEMORY_UNITS[unit]:.1f} {unit}"
    return f"{int(count)} B"


def available_memory() -> int:
    """Bytes of RAM available to new processes without swapping (``psutil.virtual_memory().available``)."""
    return int(import_psutil().virtual_memory().available)


def total_memory() -> int:
    """Total bytes of physical RAM on this machine."""
    return int(import_psutil().virtual_memory().total)
