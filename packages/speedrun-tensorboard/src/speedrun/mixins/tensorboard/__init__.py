"""TensorBoard logging for speedrun experiments: ``TensorboardMixin`` (through tensorboardX).

>>> from speedrun import BaseExperiment
>>> from speedrun.mixins.tensorboard import TensorboardMixin
>>> class Train(TensorboardMixin, BaseExperiment): ...
"""

from __future__ import annotations

from speedrun.ext import set_public_module

from ._mixin import TensorboardMixin

__all__ = ["TensorboardMixin"]

__version__ = "0.2.0"

# Last: the classes and functions above report this package as their module (tracebacks,
# repr() and pickles say speedrun.mixins.tensorboard.X, not its private module).
set_public_module(globals())
