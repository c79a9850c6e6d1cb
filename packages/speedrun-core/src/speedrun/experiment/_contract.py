"""The mixin contract: what a class declares, collected over its MRO.

- ``NOT_CHECKPOINTED``: names of instance attributes that never go into a checkpoint and are
  never overwritten by a load (open files, writers, loaders, this process's state). Each class
  lists only its own; the experiment uses the union over its MRO, plus the names given at run
  time to ``register_unpickleable``.
- ``CONFIG_KEYS``: the :class:`~speedrun.ext.ConfigKey` s a class reads. A path declared by two
  classes in one MRO must agree on the default, else the class is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config._keys import ConfigKey
from ..distributed._preemption import DEFAULT_SIGNALS

if TYPE_CHECKING:
    from typing import Any

__all__ = ["CORE_CONFIG_KEYS", "declared_keys", "not_checkpointed"]

_KEYS_CACHE: dict[type, dict[str, tuple[ConfigKey, str]]] = {}
_EXCLUDED_CACHE: dict[type, frozenset[str]] = {}


def not_checkpointed(cls: type) -> frozenset[str]:
    """The union of ``NOT_CHECKPOINTED`` over ``cls``'s MRO."""
    try:
        return _EXCLUDED_CACHE[cls]
    except KeyError:
        pass
    names: set[str] = set()
    for klass in cls.__mro__:
        declared = vars(klass).get("NOT_CHECKPOINTED", ())
        if isinstance(declared, str):
            raise TypeError(
                f"{klass.__name__}.NOT_CHECKPOINTED must be a collection of "
                f"attribute names, got the string {declared!r}"
            )
        names.update(declared)
    result = _EXCLUDED_CACHE[cls] = frozenset(names)
    return result


def _owner(klass: type) -> str:
    """How messages name the class that declares a key (core's inner classes: BaseExperiment)."""
    return "BaseExperiment" if klass.__module__.startswith(__package__ + ".") else klass.__name__


def declared_keys(cls: type) -> dict[str, tuple[ConfigKey, str]]:
    """``{path: (ConfigKey, owner class name)}`` over ``cls``'s MRO, base classes first.

    Raises
    ------
    TypeError
        Two classes declare one path with different defaults.
    """
    try:
        return _KEYS_CACHE[cls]
    except KeyError:
        pass
    found: dict[str, tuple[ConfigKey, str]] = {}
    for klass in reversed(cls.__mro__):
        for key in vars(klass).get("CONFIG_KEYS", ()):
            known = found.get(key.path)
            if known is not None and known[0].default != key.default:
                raise TypeError(
                    f"{cls.__name__}: config key '{key.path}' is declared by {known[1]} "
                    f"(default {known[0].default!r}) and {_owner(klass)} (default "
                    f"{key.default!r}). Expected one default: change one of them."
                )
            found[key.path] = (key, _owner(klass))
    _KEYS_CACHE[cls] = found
    return found


def _boolean_word(value: Any) -> str | None:
    from ..config._arguments import _BOOLEAN_WORDS

    if not isinstance(value, str) or value.lower() in _BOOLEAN_WORDS:
        return None
    return "true or false"


def _positive_whole(value: Any) -> str | None:
    if value is None or (value > 0 and float(value).is_integer()):
        return None
    return "a positive whole number (or null)"


CORE_CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "training/checkpoint_every",
        None,
        "checkpoint(force=False) saves when step % checkpoint_every == 0; unset: never.",
        kinds=(int, float, type(None)),
        check=_positive_whole,
    ),
    ConfigKey(
        "training/checkpoint_keep",
        None,
        "Keep only the newest N checkpoints; unset: keep all.",
        kinds=(int, float, type(None)),
        check=_positive_whole,
    ),
    ConfigKey(
        "speedrun/preemption_signals",
        [signal.name for signal in DEFAULT_SIGNALS],
        "Signals that checkpoint and exit with status 75 at the next step.",
        kinds=(list, tuple),
    ),
)
"""The config keys BaseExperiment itself reads."""

CORE_CONFIG_KEYS += (
    ConfigKey(
        "training/checkpoint_sharded",
        None,
        "Sharded checkpoints through torch.distributed.checkpoint: true always, false "
        "never, unset when the state holds DTensors (FSDP2).",
        kinds=(bool, type(None)),
    ),
    ConfigKey(
        "training/checkpoint_async",
        False,
        "Save checkpoints in the background: checkpoint() only takes a snapshot "
        "(single files: a writer thread; sharded: dcp.async_save).",
        kinds=(bool, str, type(None)),
        check=_boolean_word,
    ),
)
