"""The state every experiment has: its directory, step and epoch counters, configuration and
cache (``ExperimentState``, the lowest base class of ``BaseExperiment``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from .._errors import ConfigError, ExperimentDirectoryError, SpeedrunError
from ..checkpoint._files import checkpoint_file_name
from ..config._keys import ConfigKey  # at run time too: typing.get_type_hints resolves it
from ..config._namespace import Namespace
from ..config._tree import Config
from ..config._yaml import dumps_yaml, load_mapping
from ..directory._fs import replace_keeping_previous
from ..directory._layout import (
    CONFIG_FILE_NAME,
    ensure_experiment_directory,
    inherit_source,
)
from ..distributed import _ranks as _distributed
from ._contract import CORE_CONFIG_KEYS, declared_keys

if TYPE_CHECKING:
    from typing import Any, TypeVar

    S = TypeVar("S", bound="ExperimentState")

__all__ = ["ExperimentState", "NotInitialisedError"]

_MISSING: Any = object()


def _called_by_speedrun() -> bool:
    """Whether ``get()``'s caller is speedrun's own code (core or a mixin distribution), which
    reads optional keys and takes ``None`` for "not configured"."""
    caller: str = sys._getframe(2).f_globals.get("__name__", "")
    return caller == "speedrun" or caller.startswith("speedrun.")


class NotInitialisedError(SpeedrunError, AttributeError):
    """An attribute speedrun sets in ``BaseExperiment.__init__`` is missing: the subclass's
    ``__init__`` did not call ``super().__init__()``."""


class ExperimentState:
    """Directory, counters, configuration and cache of an experiment.

    Everything here is set in ``__init__``; the classes above it (``Checkpointing``,
    ``CommandLineSetup``, ``BaseExperiment``) each initialise their own attributes too.
    """

    #: The config keys this class reads (see ``config_value``); mixins add their own.
    CONFIG_KEYS: ClassVar[tuple[ConfigKey, ...]] = CORE_CONFIG_KEYS

    def __init__(self, experiment_directory: str | os.PathLike[str] | None = None) -> None:
        self._experiment_directory: str | None = None
        self._step: int | None = None
        self._epoch: int | None = None
        self._tree = Config()
        self._config_memo = self._tree.memo
        # Whether the config was filled (auto_setup, a file, set(), an assignment): until then,
        # get() of a missing key without a default is an error rather than a silent None.
        self._configured = False
        self._meta_config: dict[str, list[str]] = {
            "exclude_attrs_from_save": [],
            "stateless_attributes": [],
            "stateful_attributes": [],
        }
        self._cache: dict[str, Any] = {}
        self._read_only = False
        self.experiment_directory = experiment_directory
        super().__init__()

    def _require_initialised(self) -> None:
        """Raise :class:`NotInitialisedError` when ``__init__`` of the experiment's class did
        not run ``BaseExperiment.__init__`` (a forgotten ``super().__init__()``). Checked where
        an experiment starts (``auto_setup()``, ``record_args()``, ``run()``) and by ``get()``,
        rather than by a ``__getattr__``, which would hide the real AttributeError raised
        inside a property."""
        if "_tree" not in vars(self):
            name = type(self).__name__
            raise NotInitialisedError(
                f"speedrun's set-up of the experiment did not run: {name}.__init__ must call "
                "super().__init__() before anything else (before self.auto_setup())."
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(experiment_directory={self._experiment_directory!r}, "
            f"step={self.step}, epoch={self.epoch})"
        )

    # -- counters ------------------------------------------------------------------------------
    @property
    def step(self) -> int:
        """The current (global) step."""
        if self._step is None:
            self._step = 0
        return self._step

    @property
    def epoch(self) -> int:
        """The current epoch."""
        if self._epoch is None:
            self._epoch = 0
        return self._epoch

    def next_epoch(self: S) -> S:
        """Increment the epoch counter."""
        self._epoch = (self._epoch or 0) + 1
        return self

    # -- directories ---------------------------------------------------------------------------
    @property
    def experiment_directory(self) -> str | None:
        """The experiment's folder (``None`` until set)."""
        return self._experiment_directory

    @experiment_directory.setter
    def experiment_directory(self, value: str | os.PathLike[str] | None) -> None:
        if value is not None:
            if _distributed.is_main_process():  # other ranks use the folder rank 0 creates
                ensure_experiment_directory(value)
            self._experiment_directory = os.fspath(value)

    def _subdirectory(self, name: str) -> str | None:
        if self._experiment_directory is None:
            return None
        return os.path.join(self._experiment_directory, name)

    @property
    def log_directory(self) -> str | None:
        """``<experiment>/Logs``."""
        return self._subdirectory("Logs")

    @property
    def checkpoint_directory(self) -> str | None:
        """``<experiment>/Weights``."""
        return self._subdirectory("Weights")

    @property
    def plot_directory(self) -> str | None:
        """``<experiment>/Plots``."""
        return self._subdirectory("Plots")

    @property
    def configuration_directory(self) -> str | None:
        """``<experiment>/Configurations``."""
        return self._subdirectory("Configurations")

    @property
    def checkpoint_path(self) -> str | None:
        """The file a checkpoint at the current step is written to."""
        directory = self.checkpoint_directory
        if directory is None:
            return None
        return os.path.join(directory, checkpoint_file_name(self.step))

    def _require_directory(self, purpose: str) -> str:
        if self._experiment_directory is None:
            raise ExperimentDirectoryError(
                f"{purpose} needs an experiment directory, but none is set: pass one on the "
                f"command line (python {os.path.basename(sys.argv[0] or 'train.py')} "
                f"experiments/RUN-0) with auto_setup(), or set experiment.experiment_directory."
            )
        return self._experiment_directory

    # -- configuration -------------------------------------------------------------------------
    @property
    def _config(self) -> Config:
        return self._tree

    @_config.setter
    def _config(self, value: Any) -> None:
        self._tree.replace(value)
        self._configured = True

    def get(self, tag: str, default: Any = _MISSING, ensure_exists: bool = False) -> Any:
        """The config value at ``tag`` (``'training/lr'``), or ``default`` if it is missing.

        ``ensure_exists=True`` raises a :class:`~speedrun.ConfigError` naming the missing key.
        A missing key without a ``default`` gives ``None`` once the config was filled (by
        ``auto_setup()``, ``read_config_file()``, ``inherit_configuration()``, ``set()`` or
        an assignment). Before that, your code gets a ConfigError (the config is still empty:
        ``auto_setup()`` was not called yet); speedrun's own mixins, which read optional keys,
        get ``None``.
        """
        try:
            return self._config_memo[tag]
        except KeyError:
            pass
        except AttributeError:
            self._require_initialised()
            raise
        if default is _MISSING:
            if not self._configured and not ensure_exists and not _called_by_speedrun():
                raise ConfigError(
                    f"get({tag!r}) before the configuration was read: the config is still "
                    "empty. Call self.auto_setup() (or read_config_file(), or set()) first, or "
                    f"pass a default: get({tag!r}, default)."
                )
            default = None
        return self._tree.lookup(tag, default, ensure_exists)

    def config_value(self, path: str) -> Any:
        """The value of a declared config key (see ``CONFIG_KEYS``): the config's, validated, or
        the declared default.

        Raises
        ------
        KeyError
            ``path`` is not declared by this class or any base class or mixin.
        ConfigError
            The config's value is not what the declaration accepts.
        """
        declared = declared_keys(type(self)).get(path)
        if declared is None:
            known = ", ".join(sorted(declared_keys(type(self)))) or "none"
            raise KeyError(
                f"config key {path!r} is not declared in the CONFIG_KEYS of "
                f"{type(self).__name__} or its bases (declared: {known})"
            )
        key, owner = declared
        value = self._tree.lookup(path, _MISSING, False)
        return key.default if value is _MISSING else key.validate(value, owner=owner)

    def _validate_config_keys(self) -> None:
        """Check every declared key the config sets (at set-up: a wrong value fails at once)."""
        for path, (key, owner) in declared_keys(type(self)).items():
            value = self._tree.lookup(path, _MISSING, False)
            if value is not _MISSING:
                key.validate(value, owner=owner)

    def set(self: S, tag: str, value: Any) -> S:
        """Set the config value at ``tag``, creating intermediate mappings."""
        self._tree.assign(tag, value)
        self._configured = True
        return self

    def read_config_file(self: S, file_name: str = CONFIG_FILE_NAME, path: str | None = None) -> S:
        """Replace the config with the YAML file ``path`` (default: this run's config file).

        Raises ``FileNotFoundError`` when the file does not exist.
        """
        if path is None:
            path = os.path.join(
                self._require_directory("read_config_file"), "Configurations", file_name
            )
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"no configuration file at {path}: create it, pass --inherit with another "
                f"experiment directory, or give values with --config.a.b VALUE"
            )
        self._tree.replace(load_mapping(path))
        self._configured = True
        return self

    def inherit_configuration(
        self: S,
        from_experiment_directory: str,
        file_name: str = CONFIG_FILE_NAME,
        read: bool = True,
    ) -> S:
        """Take the configuration of another experiment directory (or a ``.yml`` file).

        With ``read=True`` the config is loaded from there; with ``read=False`` the file is
        copied into this run's ``Configurations/`` (an existing different file is kept under
        ``Configurations/previous/``).
        """
        source = inherit_source(os.fspath(from_experiment_directory), file_name)
        if read:
            self._tree.replace(load_mapping(source))
            self._configured = True
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
            self._write_config_text(text, file_name)
        return self

    def dump_configuration(self: S, file_name: str = CONFIG_FILE_NAME) -> S:
        """Write the config, exactly as the run uses it, to ``Configurations/<file_name>``.

        The write is atomic; a different file already there is kept under
        ``Configurations/previous/`` rather than lost.
        """
        self._write_config_text(dumps_yaml(self._tree), file_name)
        return self

    def _refuse_if_read_only(self, purpose: str) -> None:
        if self._read_only:
            raise ExperimentDirectoryError(
                f"{purpose} would write into {self._experiment_directory}, which was opened "
                "read-only (BaseExperiment.open()). Open it with --resume to continue the run, "
                "or copy what you need elsewhere."
            )

    def _write_config_text(self, text: str, file_name: str) -> None:
        self._refuse_if_read_only("dump_configuration")
        directory = os.path.join(self._require_directory("dump_configuration"), "Configurations")
        if not _distributed.is_main_process():
            return
        # The old version is kept by link or copy, then replaced atomically (never moved away
        # first): a kill or a full disk at any instant leaves a complete config file.
        replace_keeping_previous(os.path.join(directory, file_name), text)

    # -- cache ---------------------------------------------------------------------------------
    @property
    def cache_keys(self) -> list[str]:
        """The keys in the cache."""
        return list(self._cache)

    def read_from_cache(self, tag: str, default: Any = None, ensure_exists: bool = False) -> Any:
        """The cached value of ``tag``, or ``default``."""
        if ensure_exists and tag not in self._cache:
            raise KeyError(f"'{tag}' is not in the cache; cached keys: {self.cache_keys}")
        return self._cache.get(tag, default)

    def write_to_cache(self: S, tag: str, value: Any) -> S:
        """Store ``value`` under ``tag``."""
        self._cache[tag] = value
        return self

    def accumulate_in_cache(
        self: S, tag: str, value: Any, accumulate_fn: Callable[[Any, Any], Any] | None = None
    ) -> S:
        """Add ``value`` to the cached ``tag`` (``+=``, or ``accumulate_fn(old, value)``)."""
        if tag not in self._cache:
            self._cache[tag] = value
        elif accumulate_fn is None:
            self._cache[tag] += value
        else:
            if not callable(accumulate_fn):
                raise TypeError(f"accumulate_fn must be callable, got {accumulate_fn!r}")
            self._cache[tag] = accumulate_fn(self._cache[tag], value)
        return self

    def clear_in_cache(self: S, tag: str) -> S:
        """Remove ``tag`` from the cache (no error when absent)."""
        self._cache.pop(tag, None)
        return self

    def clear_cache(self: S) -> S:
        """Empty the cache."""
        self._cache.clear()
        return self

    def bundle(self, **kwargs: Any) -> Namespace:
        """Pack ``kwargs`` into a :class:`~speedrun.Namespace`."""
        return Namespace(**kwargs)
