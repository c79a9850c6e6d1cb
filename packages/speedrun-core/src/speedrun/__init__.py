"""speedrun: a no-strings-attached toolkit for reproducible ML experiments.

Subclass :class:`BaseExperiment`, call ``self.auto_setup()`` and ``run()``. Mixins live in
their own distributions (``speedrun.mixins.<name>``); the original names
(``from speedrun import TensorboardMixin``) are resolved lazily from the installed ones.
"""

import os as _os
import sys as _sys

from ._errors import (
    ArgumentError,
    CheckpointError,
    ConfigError,
    DispatchError,
    ExperimentDirectoryError,
    LockError,
    SpeedrunError,
)
from ._homes import set_public_module as _set_public_module
from ._version import __version__ as __version__  # the one source of the version
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

# The namespace recipe (ARCHITECTURE.md): every ``speedrun`` folder on sys.path joins this
# package's path, so editable installs (one ``src/`` per sys.path entry) see each other's
# ``speedrun/mixins/*``. This is what ``pkgutil.extend_path`` does for plain folders, without
# the ~2 ms of imports (typing, weakref, importlib.util) that pkgutil costs at start-up.
__path__ = [
    *__path__,
    *(
        portion
        for portion in (
            _os.path.join(entry, "speedrun") for entry in _sys.path if isinstance(entry, str)
        )
        if portion not in __path__ and _os.path.isdir(portion)
    ),
]
del _os, _sys

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
