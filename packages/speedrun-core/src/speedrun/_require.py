"""Optional imports whose error names the ``pip install`` that fixes them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["require"]


def require(module: str, *, feature: str, install: str) -> ModuleType:
    """Import and return ``module``, or raise an ImportError that says what needs it and the fix.

    ``require("tensorboardX", feature="TensorboardMixin", install="pip install
    speedrun-tensorboard")`` returns the ``tensorboardX`` module, or raises
    ``ImportError: TensorboardMixin needs tensorboardX, which is not installed. Fix: pip install
    speedrun-tensorboard`` chained to the original error (which says why an installed module
    failed to import, if it did).
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top = module.partition(".")[0]
        missing = getattr(error, "name", None)
        if missing is not None and missing != top and not missing.startswith(top + "."):
            what = f"{module}, which failed to import ({error})"
        else:
            what = f"{module}, which is not installed"
        raise ImportError(f"{feature} needs {what}. Fix: {install}", name=module) from error
