"""Weights & Biases for speedrun experiments: ``WandBMixin``, ``WandBSweepMixin``, ``SweepRunner``.

>>> from speedrun import BaseExperiment
>>> from speedrun.mixins.wandb import WandBMixin
>>> class Train(WandBMixin, BaseExperiment):
...     WANDB_PROJECT = "my-project"
"""

from __future__ import annotations

from ._connect import WandBInitError
from ._mixin import WandBMixin
from ._sweep import SweepRunner, WandBSweepMixin

__all__ = ["SweepRunner", "WandBInitError", "WandBMixin", "WandBSweepMixin"]

__version__ = "0.2.0"
