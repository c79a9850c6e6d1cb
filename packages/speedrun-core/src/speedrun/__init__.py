__path__ = __import__("pkgutil").extend_path(__path__, __name__)
# extend_path must come first (see DESIGN.md: namespace recipe), so the docstring is set here.
__doc__ = """speedrun: a no-strings-attached toolkit for reproducible ML experiments.

Subclass :class:`BaseExperiment`, call ``self.auto_setup()`` and ``run()``. Mixins live in
their own distributions (``speedrun.mixins.<name>``); the original names
(``from speedrun import TensorboardMixin``) are resolved lazily from the installed ones.
"""

from ._errors import (
    ArgumentError,
    CheckpointError,
    ConfigError,
    DispatchError,
    ExperimentDirectoryError,
    LockError,
    SpeedrunError,
)
from .config._namespace import Namespace
from .config._tree import Config
from .distributed._preemption import PREEMPTION_EXIT_CODE, Preempted
from .distributed._preemption import request as request_preemption
from .distributed._ranks import (
    get_local_rank,
    get_rank,
    get_world_size,
    is_main_process,
    main_process_only,
)
from .experiment._dispatch import (
    register_default_dispatch,
    register_hook,
    register_pre_dispatch_hook,
)
from .experiment._experiment import BaseExperiment

__all__ = [
    "ArgumentError",
    "BaseExperiment",
    "CheckpointError",
    "Config",
    "ConfigError",
    "DispatchError",
    "ExperimentDirectoryError",
    "LockError",
    "Namespace",
    "PREEMPTION_EXIT_CODE",
    "Preempted",
    "SpeedrunError",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "main_process_only",
    "register_default_dispatch",
    "register_hook",
    "register_pre_dispatch_hook",
    "request_preemption",
]

from ._homes import set_public_module as _set_public_module
from ._version import __version__ as __version__  # the one source of the version

# Last: the classes and functions above report ``speedrun`` as their module
# (``speedrun.ConfigError``, not ``speedrun._errors.ConfigError``).
_set_public_module(globals())
del _set_public_module


def __getattr__(name: str) -> type:
    """Resolve legacy mixin names (``from speedrun import TensorboardMixin``) lazily."""
    from ._mixins import LEGACY_MIXINS, resolve_mixin

    if name.startswith("__") or not (name.endswith("Mixin") or name in LEGACY_MIXINS):
        raise AttributeError(f"module 'speedrun' has no attribute {name!r}")

    mixin = resolve_mixin(name)
    globals()[name] = mixin
    return mixin
