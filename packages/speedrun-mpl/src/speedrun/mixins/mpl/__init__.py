"""speedrun-mpl: matplotlib figures to arrays, and figures saved under ``Plots/``.

``from speedrun.mixins.mpl import MatplotlibMixin`` (or, the legacy way, ``from speedrun
import MatplotlibMixin``). Importing this package does not import matplotlib, and the mixin
never switches matplotlib's backend.
"""

from __future__ import annotations

from speedrun.ext import set_public_module

from ._mixin import MatplotlibMixin

__all__ = ["MatplotlibMixin"]

__version__ = "0.2.0"

# Last: the classes and functions above report this package as their module (tracebacks,
# repr() and pickles say speedrun.mixins.mpl.X, not its private module).
set_public_module(globals())
