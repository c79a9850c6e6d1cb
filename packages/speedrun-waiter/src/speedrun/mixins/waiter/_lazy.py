"""psutil, imported on first use so that importing the mixin stays cheap."""

from __future__ import annotations

from typing import Any

__all__ = ["import_psutil"]


def import_psutil() -> Any:
    """Return the ``psutil`` module, or raise an ImportError that names the fix."""
    from speedrun.ext import require

    return require(
        "psutil",
        feature="speedrun's WaiterMixin",
        install="pip install speedrun-waiter (or pip install psutil)",
    )
