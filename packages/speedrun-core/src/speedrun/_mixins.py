"""Legacy names (``from speedrun import TensorboardMixin``) found through entry points."""

from __future__ import annotations

__all__ = ["LEGACY_MIXINS", "resolve_mixin"]

#: Mixin class name -> the distribution suffix that ships it (``speedrun-<suffix>``).
LEGACY_MIXINS = {
    "TensorboardMixin": "tensorboard",
    "IOMixin": "io",
    "MatplotlibMixin": "mpl",
    "InfernoMixin": "inferno",
    "FirelightMixin": "firelight",
    "WaiterMixin": "waiter",
    "WandBMixin": "wandb",
    "WandBSweepMixin": "wandb",
    "SweepRunner": "wandb",
}


def resolve_mixin(name: str) -> type:
    """Load the mixin class called ``name`` from the ``speedrun.mixins`` entry points.

    Raises
    ------
    ImportError
        ``name`` is a known mixin whose distribution is not installed (the message names the
        ``pip install`` to run).
    AttributeError
        No installed distribution provides a mixin of that name.
    """
    from importlib import import_module
    from importlib.metadata import entry_points

    for entry_point in entry_points(group="speedrun.mixins"):
        if entry_point.value.rpartition(":")[2].rpartition(".")[2] == name:
            loaded = entry_point.load()
            if not isinstance(loaded, type):
                raise ImportError(
                    f"the speedrun.mixins entry point {entry_point.name!r} should name a class, "
                    f"but {entry_point.value!r} is a {type(loaded).__name__}"
                )
            return loaded
    if name in LEGACY_MIXINS:
        dist = LEGACY_MIXINS[name]
        # A distribution's other legacy names (WandBSweepMixin, SweepRunner) live in the module
        # of its entry point.
        for entry_point in entry_points(group="speedrun.mixins"):
            if entry_point.name == dist:
                found = getattr(import_module(entry_point.module), name, None)
                if isinstance(found, type):
                    return found
        raise ImportError(
            f"{name} is in the speedrun-{dist} distribution, which is not installed. "
            f"Install it with: pip install speedrun-{dist}"
        )
    raise AttributeError(f"module 'speedrun' has no attribute {name!r}")
