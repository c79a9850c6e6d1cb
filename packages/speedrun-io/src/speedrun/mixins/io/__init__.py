"""speedrun-io: printing to the screen and to ``Logs/``, progress bars, images, YAML dumps.

``from speedrun.mixins.io import IOMixin`` (or, the legacy way, ``from speedrun import
IOMixin``). Importing this package imports neither tqdm, NumPy, Pillow nor torch; they are
loaded on first use.
"""

from __future__ import annotations

from ._mixin import IOMixin, Printer

__all__ = ["IOMixin", "Printer"]

__version__ = "0.2.0"
