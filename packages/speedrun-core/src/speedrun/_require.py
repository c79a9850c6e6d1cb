"""Optional imports whose error names the ``pip install`` that fixes them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["require"]


def require(
    module: str,
    *,
    feature: str,
    install: str,
    error_type: type[ImportError] = ImportError,
) -> ModuleType:
    """Import and return ``module``, or raise an ImportError that says what needs it and the fix.

    ``require("tensorboardX", feature="TensorboardMixin", install="pip install
    speedrun-tensorboard")`` returns the ``tensorboardX`` module, or raises
    ``ImportError: TensorboardMixin needs tensorboardX, which is not installed. Fix: pip install
    speedrun-tensorboard`` chained to the original error (which says why an installed module
    failed to import, if it did).

    ``error_type`` (a subclass of ImportError, built from the message and ``name=module``) is
    the class of the raised error, for a caller that must tell a missing library apart from
    other ImportErrors around it.
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
        raise error_type(f"{feature} needs {what}. Fix: {install}", name=module) from error
