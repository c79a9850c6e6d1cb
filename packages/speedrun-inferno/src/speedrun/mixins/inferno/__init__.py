"""speedrun-inferno: train speedrun experiments with an inferno ``Trainer``.

``InfernoMixin`` builds the trainer, model, loss, metric, optimizer, data loaders,
intervals, TensorBoard logging and callbacks from the experiment's configuration.
inferno-pytorch itself is installed separately, without its outdated pins::

    pip install speedrun-inferno
    pip install --no-deps inferno-pytorch==0.1.7
"""

from __future__ import annotations

from speedrun.ext import set_public_module

from ._compat import INFERNO_INSTALL_HINT, applied_fixes
from ._inferno import InfernoMixin
from ._parsing import ParsingMixin, create_instance, locate

__all__ = [
    "INFERNO_INSTALL_HINT",
    "InfernoMixin",
    "ParsingMixin",
    "applied_fixes",
    "create_instance",
    "locate",
]

__version__ = "0.2.0"

# Last: the classes and functions above report this package as their module (tracebacks,
# repr() and pickles say speedrun.mixins.inferno.X, not its private module).
set_public_module(globals())
