"""TensorBoard logging for speedrun experiments: ``TensorboardMixin`` (through tensorboardX).

>>> from speedrun import BaseExperiment
>>> from speedrun.mixins.tensorboard import TensorboardMixin
>>> class Train(TensorboardMixin, BaseExperiment): ...
"""

from __future__ import annotations

from ._mixin import TensorboardMixin

__all__ = ["TensorboardMixin"]

__version__ = "0.2.0"
