"""Weights & Biases for speedrun experiments: ``WandBMixin``, ``WandBSweepMixin``, ``SweepRunner``.

>>> from speedrun import BaseExperiment
>>> from speedrun.mixins.wandb import WandBMixin
>>> class Train(WandBMixin, BaseExperiment):
...     WANDB_PROJECT = "my-project"
"""

from __future__ import annotations

from speedrun.ext import set_public_module

from ._connect import WandBInitError
from ._mixin import WandBMixin
from ._sweep import SweepRunner, WandBSweepMixin

__all__ = ["SweepRunner", "WandBInitError", "WandBMixin", "WandBSweepMixin"]

__version__ = "0.2.0"

# Last: the classes and functions above report this package as their module (tracebacks,
# repr() and pickles say speedrun.mixins.wandb.X, not its private module).
set_public_module(globals())
