"""How the ``speedrun`` command shows things: times, durations, config values on one line,
JSON, and tables whose columns stay aligned with wide characters (measured with
``unicodedata.east_asian_width``) and long cells shortened."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from .._errors import SpeedrunError
from ._inspection import Tagged

__all__ = [
    "display_width",
    "format_duration",
    "format_time",
    "format_value",
    "jsonable",
    "print_json",
    "shorten",
    "table",
]


def format_time(moment: float | None) -> str:
    if moment is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment))


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 48:
        return f"{hours // 24}d{hours % 24:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _plain_string(text: str) -> bool:
    """Whether ``text`` reads back as the same string when written without quotes."""
    if not text or text != text.strip() or any(ch in text for ch in "\n#:{}[],&*!|>'\"%@`"):
        return False
    from ..config._yaml import loads_yaml

    try:
        return bool(loads_yaml(text) == text)
    except SpeedrunError:
        return False


def format_value(value: Any) -> str:
    """A config value on one line, YAML-like: ``0.01``, ``cosine``, ``'0.1'``, ``[64, 64]``."""
    if isinstance(value, Tagged):
        return f"{value.tag} {format_value(value.data)}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if _plain_string(value) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{format_value(k)}: {format_value(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    return str(value)


def jsonable(value: Any) -> Any:
    if isinstance(value, Tagged):
        return {"tag": value.tag, "data": jsonable(value.data)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: East Asian wide and full-width characters take
    two, combining marks and other zero-width characters none."""
    import unicodedata

    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` columns, ending in ``…`` when cut."""
    if display_width(text) <= limit:
        return text
    kept, width = [], 0
    for char in text:
        width += display_width(char)
        if width > limit - 1:
            break
        kept.append(char)
    return "".join(kept) + "…"


def table(header: Sequence[str], rows: list[list[str]]) -> str:
    widths = [
        max(display_width(str(cell)) for cell in column)
        for column in zip(header, *rows, strict=True)
    ]
    lines = []
    for row in [list(header), *rows]:
        lines.append(
            "  ".join(
                str(cell) + " " * (width - display_width(str(cell)))
                for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )
    return "\n".join(lines)
