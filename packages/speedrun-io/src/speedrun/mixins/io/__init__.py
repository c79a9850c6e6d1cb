"""speedrun-io: printing to the screen and to ``Logs/``, progress bars, images, YAML dumps.

``from speedrun.mixins.io import IOMixin`` (or, the legacy way, ``from speedrun import
IOMixin``). Importing this package imports neither tqdm, NumPy, Pillow nor torch; they are
loaded on first use.
"""

from __future__ import annotations

from speedrun.ext import set_public_module

from ._mixin import IOMixin, Printer

__all__ = ["IOMixin", "Printer"]

__version__ = "0.2.0"

# Last: the classes and functions above report this package as their module (tracebacks,
# repr() and pickles say speedrun.mixins.io.X, not its private module).
set_public_module(globals())
