"""speedrun's extension API: what a mixin distribution may use of speedrun-core.

Mixins (``speedrun.mixins.<name>``, each its own distribution) import ``speedrun`` and this
module, never ``speedrun._*`` or core's internal subpackages. Every name here is covered by
speedrun-core's semantic versioning: it keeps its name, arguments and meaning within a minor
series (``0.2.x``), and a change is announced in speedrun-core's CHANGELOG.

Files
    :func:`atomic_open`, :func:`atomic_write_bytes`, :func:`atomic_write_text`,
    :func:`keep_previous_version`; :func:`tagged_file` and :func:`relative_parts` (the rule that
    turns a tag such as ``"val/prediction"`` into a file below ``Plots/`` or ``Logs/``).
YAML
    :func:`load_yaml`, :func:`load_mapping`, :func:`loads_yaml`, :func:`dump_yaml`,
    :func:`dumps_yaml` (speedrun's safe loader and dumper: no code, speedrun's tags).
Experiment directories
    The layout (:data:`CONFIGURATIONS`, :data:`LOGS`, :data:`WEIGHTS`, :data:`PLOTS`,
    :data:`SUBDIRECTORIES`, :data:`CONFIG_FILE_NAME`), :func:`is_experiment_directory`,
    :func:`ensure_experiment_directory`, :func:`purge_experiment_directory`; the writer lock
    (:class:`WriterLock`, :data:`LOCK_NAME`, :func:`is_locked`, :func:`read_lock_holder`); the run record
    (:func:`read_run_record`, :func:`resolve_status`); checkpoints (:func:`list_checkpoints`).
Command line and provenance
    :func:`parse_arguments` and :class:`Arguments`; :func:`parse_setup` and
    :class:`SetupRequest` (the set-up a command line asks for, as plain data);
    :func:`diff_overrides`, :func:`git_state`.
Preemption
    :func:`install_preemption_handlers`, :func:`uninstall_preemption_handlers`,
    :func:`preemption_requested`, :func:`preemption_signal`, :func:`reset_preemption` (for
    code that runs an experiment itself, e.g. a job runner); :class:`speedrun.Preempted` and
    :data:`speedrun.PREEMPTION_EXIT_CODE` are in :mod:`speedrun`.
Optional imports
    :func:`require` imports a module or raises an ImportError that names the ``pip install``.
The mixin contract
    :class:`ConfigKey` declares a config key a class reads (listed in its ``CONFIG_KEYS``);
    ``NOT_CHECKPOINTED`` (a class attribute) names the attributes that stay out of checkpoints.
    Both are collected over the MRO; see ``BaseExperiment.config_value``.
Mixins working together
    :class:`TagScopeMixin` (``tagscope``, ``set_tagscope``, ``get_full_tag``: one tag scope
    shared by every mixin that tags things), :func:`has_mixin` (the one way a mixin checks
    whether the experiment has another one).
Images
    :func:`to_image_array` (tensors and arrays to ``(H, W, C)`` uint8 pixels, one rule for
    layouts and value ranges), :class:`ImageError`, :data:`ACCEPTED_IMAGES`,
    :func:`encode_png`, :func:`write_png`, and :func:`plot_file` (the one ``Plots/`` naming
    rule of ``print_image``, ``save_figure`` and ``save_image_grid``).
Hooks
    :data:`PRE_DISPATCH`, :data:`CLEAN_UP`, :data:`POST_LOAD`, :data:`PRE_CHECKPOINT`,
    :data:`HOOK_KEYS`, for
    :func:`speedrun.register_hook`.
Public names
    :func:`set_public_module` (called last in a package's ``__init__``: its exported classes
    and functions report that package as their module, e.g.
    ``speedrun.mixins.tensorboard.TensorboardMixin``, in tracebacks, ``repr()`` and pickles).
Errors
    The error classes of :mod:`speedrun`, re-exported.
"""

from __future__ import annotations

from ._errors import (
    ArgumentError,
    CheckpointError,
    ConfigError,
    DispatchError,
    ExperimentDirectoryError,
    LockError,
    SpeedrunError,
)
from ._homes import set_public_module
from ._require import require
from .checkpoint._files import list_checkpoints
from .config._arguments import Arguments, SetupRequest, parse_arguments, parse_setup
from .config._keys import ConfigKey
from .config._tree import diff_overrides
from .config._yaml import dump_yaml, dumps_yaml, load_mapping, load_yaml, loads_yaml
from .directory._fs import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_text,
    keep_previous_version,
)
from .directory._layout import (
    CONFIG_FILE_NAME,
    CONFIGURATIONS,
    LOGS,
    PLOTS,
    SUBDIRECTORIES,
    WEIGHTS,
    ensure_experiment_directory,
    is_experiment_directory,
    is_run_directory,
)
from .directory._lock import LOCK_NAME, WriterLock, is_locked, read_lock_holder
from .directory._paths import relative_parts, tagged_file
from .directory._purge import purge_experiment_directory
from .distributed._preemption import install as install_preemption_handlers
from .distributed._preemption import received_signal as preemption_signal
from .distributed._preemption import requested as preemption_requested
from .distributed._preemption import reset as reset_preemption
from .distributed._preemption import uninstall as uninstall_preemption_handlers
from .experiment._discovery import has_mixin
from .experiment._dispatch import (
    CLEAN_UP,
    HOOK_KEYS,
    POST_LOAD,
    PRE_CHECKPOINT,
    PRE_DISPATCH,
)
from .experiment._provenance import GitState, git_state
from .experiment._runinfo import read_run_record, resolve_status
from .experiment._tags import TagScopeMixin
from .media._images import (
    ACCEPTED_IMAGES,
    ImageError,
    encode_png,
    plot_file,
    to_image_array,
    write_png,
)

__all__ = [
    "ACCEPTED_IMAGES",
    "ImageError",
    "TagScopeMixin",
    "encode_png",
    "has_mixin",
    "plot_file",
    "to_image_array",
    "write_png",
    "CLEAN_UP",
    "CONFIGURATIONS",
    "CONFIG_FILE_NAME",
    "HOOK_KEYS",
    "LOCK_NAME",
    "LOGS",
    "PLOTS",
    "POST_LOAD",
    "PRE_CHECKPOINT",
    "PRE_DISPATCH",
    "SUBDIRECTORIES",
    "WEIGHTS",
    "ArgumentError",
    "Arguments",
    "SetupRequest",
    "CheckpointError",
    "ConfigKey",
    "ConfigError",
    "DispatchError",
    "ExperimentDirectoryError",
    "GitState",
    "LockError",
    "SpeedrunError",
    "WriterLock",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "diff_overrides",
    "dump_yaml",
    "dumps_yaml",
    "ensure_experiment_directory",
    "git_state",
    "install_preemption_handlers",
    "is_experiment_directory",
    "is_run_directory",
    "is_locked",
    "keep_previous_version",
    "list_checkpoints",
    "load_mapping",
    "load_yaml",
    "loads_yaml",
    "parse_arguments",
    "parse_setup",
    "preemption_requested",
    "preemption_signal",
    "purge_experiment_directory",
    "read_lock_holder",
    "read_run_record",
    "relative_parts",
    "require",
    "reset_preemption",
    "resolve_status",
    "set_public_module",
    "tagged_file",
    "uninstall_preemption_handlers",
]

# Last: the names above that only this module exports report ``speedrun.ext`` as their module
# (the errors, exported by ``speedrun`` too, already report ``speedrun``).
set_public_module(globals())
