"""speedrun-mpl: matplotlib figures to arrays, and figures saved under ``Plots/``.

``from speedrun.mixins.mpl import MatplotlibMixin`` (or, the legacy way, ``from speedrun
import MatplotlibMixin``). Importing this package does not import matplotlib, and the mixin
never switches matplotlib's backend.
"""

from __future__ import annotations

from ._mixin import MatplotlibMixin

__all__ = ["MatplotlibMixin"]

__version__ = "0.2.0"
