"""How mixins find each other: :func:`has_mixin`, one check used by every speedrun mixin."""

from __future__ import annotations

import sys

__all__ = ["has_mixin"]


def has_mixin(experiment: object, mixin: str) -> bool:
    """Whether ``experiment`` is an instance of the mixin class named ``"module:Class"``.

    ``has_mixin(self, "speedrun.mixins.tensorboard:TensorboardMixin")`` is how speedrun-mpl
    decides to log figures to TensorBoard, speedrun-firelight to log image grids, Inferno to
    share the TensorBoard writer and speedrun-waiter to print through ``IOMixin``. It never
    imports anything: a class that is among the experiment's bases has been imported already,
    so a module that is not loaded means "no" (and a distribution that is not installed too).

    Raises
    ------
    ValueError
        ``mixin`` is not of the form ``"package.module:ClassName"``.
    """
    module_name, _, class_name = mixin.partition(":")
    if not module_name or not class_name or "." in class_name:
        raise ValueError(
            f"has_mixin expects 'package.module:ClassName', got {mixin!r}. Fix: e.g. "
            f"has_mixin(self, 'speedrun.mixins.tensorboard:TensorboardMixin')"
        )
    module = sys.modules.get(module_name)
    cls = getattr(module, class_name, None) if module is not None else None
    return isinstance(cls, type) and isinstance(experiment, cls)
