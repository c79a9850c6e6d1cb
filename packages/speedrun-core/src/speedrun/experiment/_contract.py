"""The mixin contract: what a class declares, collected over its MRO.

- ``NOT_CHECKPOINTED``: names of instance attributes that never go into a checkpoint and are
  never overwritten by a load (open files, writers, loaders, this process's state). Each class
  lists only its own; the experiment uses the union over its MRO, plus the names given at run
  time to ``register_unpickleable``.
- ``CONFIG_KEYS``: the :class:`~speedrun.ext.ConfigKey` s a class reads. A path declared by two
  classes in one MRO must agree on the default, else the class is refused. The run record keeps
  them as plain data (:func:`recorded_keys`), so ``speedrun show`` lists them without importing
  the experiment's module.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..config._keys import ConfigKey
from ..distributed._preemption import DEFAULT_SIGNALS

if TYPE_CHECKING:
    from typing import Any

__all__ = ["CORE_CONFIG_KEYS", "declared_keys", "not_checkpointed", "recorded_keys"]

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


_PLAIN_DEPTH = 20  # deeper (or cyclic) defaults are recorded as their repr


def _is_plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is data that JSON and YAML write and read back as it is (exact
    builtin types, finite floats, string keys)."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return True
    if kind is float:
        return math.isfinite(value)
    if depth >= _PLAIN_DEPTH:
        return False
    if kind in (list, tuple):
        return all(_is_plain(item, depth + 1) for item in value)
    if kind is dict:
        return all(type(k) is str and _is_plain(v, depth + 1) for k, v in value.items())
    return False


def _as_plain(value: Any) -> Any:
    """A plain value (see :func:`_is_plain`) with its tuples as lists."""
    if isinstance(value, (list, tuple)):
        return [_as_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_plain(item) for key, item in value.items()}
    return value


def recorded_keys(cls: type) -> list[dict[str, Any]]:
    """The config keys ``cls`` declares, as the run record keeps them, sorted by path.

    One dict per key: ``path``, ``default``, ``kinds`` (``"int or null"``), ``owner`` (the
    declaring class, ``BaseExperiment`` for core's) and ``doc``. A default that is not plain
    JSON/YAML data (an object, a NaN, a tuple key) is kept as its ``repr`` text, marked with
    ``"default_is_repr": true``.
    """
    rows = []
    for path, (key, owner) in sorted(declared_keys(cls).items()):
        row: dict[str, Any] = {"path": path}
        if _is_plain(key.default):
            row["default"] = _as_plain(key.default)
        else:
            try:
                row["default"] = repr(key.default)
            except Exception as error:  # a broken __repr__ costs the default, not the run
                row["default"] = f"<{type(key.default).__name__}: repr failed: {error!r}>"
            row["default_is_repr"] = True
        row.update(kinds=key.kind_names, owner=owner, doc=key.doc)
        rows.append(row)
    return rows


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
