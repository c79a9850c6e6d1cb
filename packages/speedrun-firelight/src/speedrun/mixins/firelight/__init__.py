"""speedrun-firelight: image grids of tensors with firelight, as PNG files or in TensorBoard.

``FirelightMixin`` builds a firelight visualizer from the experiment's ``firelight``
configuration (or a YAML file) and turns a dictionary of tensors into an image grid.
"""

from __future__ import annotations

from speedrun.ext import set_public_module

from ._firelight import FirelightMixin, import_firelight

__all__ = ["FirelightMixin", "import_firelight"]

__version__ = "0.2.0"

# Last: the classes and functions above report this package as their module (tracebacks,
# repr() and pickles say speedrun.mixins.firelight.X, not its private module).
set_public_module(globals())
