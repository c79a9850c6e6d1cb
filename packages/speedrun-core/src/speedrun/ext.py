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
    :func:`parse_arguments` and :class:`Arguments`, :func:`diff_overrides`, :func:`git_state`.
Preemption
    :func:`install_preemption_handlers`, :func:`uninstall_preemption_handlers`,
    :func:`preemption_requested`, :func:`preemption_signal`, :func:`reset_preemption` (for
    code that runs an experiment itself, e.g. a job runner); :class:`speedrun.Preempted` and
    :data:`speedrun.PREEMPTION_EXIT_CODE` are in :mod:`speedrun`.
Optional imports
    :func:`require` imports a module or raises an ImportError that names the ``pip install``.
Hooks
    :data:`PRE_DISPATCH`, :data:`CLEAN_UP`, :data:`POST_LOAD`, :data:`PRE_CHECKPOINT`,
    :data:`HOOK_KEYS`, for
    :func:`speedrun.register_hook`.
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
from ._require import require
from .checkpoint._files import list_checkpoints
from .config._arguments import Arguments, parse_arguments
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
)
from .directory._lock import LOCK_NAME, WriterLock, is_locked, read_lock_holder
from .directory._paths import relative_parts, tagged_file
from .directory._purge import purge_experiment_directory
from .distributed._preemption import install as install_preemption_handlers
from .distributed._preemption import received_signal as preemption_signal
from .distributed._preemption import requested as preemption_requested
from .distributed._preemption import reset as reset_preemption
from .distributed._preemption import uninstall as uninstall_preemption_handlers
from .experiment._dispatch import (
    CLEAN_UP,
    HOOK_KEYS,
    POST_LOAD,
    PRE_CHECKPOINT,
    PRE_DISPATCH,
)
from .experiment._provenance import GitState, git_state
from .experiment._runinfo import read_run_record, resolve_status

__all__ = [
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
    "CheckpointError",
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
    "is_locked",
    "keep_previous_version",
    "list_checkpoints",
    "load_mapping",
    "load_yaml",
    "loads_yaml",
    "parse_arguments",
    "preemption_requested",
    "preemption_signal",
    "purge_experiment_directory",
    "read_lock_holder",
    "read_run_record",
    "relative_parts",
    "require",
    "reset_preemption",
    "resolve_status",
    "tagged_file",
    "uninstall_preemption_handlers",
]
