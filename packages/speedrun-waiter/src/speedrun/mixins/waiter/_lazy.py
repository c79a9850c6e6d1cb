"""psutil, imported on first use so that importing the mixin stays cheap."""

from __future__ import annotations

from typing import Any

__all__ = ["import_psutil"]


def import_psutil() -> Any:
    """Return the ``psutil`` module, or raise an ImportError that names the fix."""
    try:
        import psutil
    except ImportError as error:  # pragma: no cover - psutil is a declared dependency
        raise ImportError(
            "speedrun's WaiterMixin needs psutil, which is not installed: run "
            "`pip install psutil` (or `pip install speedrun-waiter`, which depends on it)."
        ) from error
    return psutil
