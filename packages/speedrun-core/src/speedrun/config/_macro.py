"""Macros: secondary YAML files merged into a configuration (``--macro a.yml:b.yml``).

A macro is merged key by key into the configuration: mappings merge recursively, every other
value replaces what was there. Two commands, given under the wake key ``__speedrun__``, change
that:

``purge`` (or ``__purge__``), in a mapping
    the macro's mapping replaces the configuration's mapping wholesale::

        optimizer:
          __speedrun__: purge
          name: SGD        # the old optimizer's other keys are dropped

``append`` (or ``__append__``), as an element of a list
    the list's other elements are appended to the configuration's list::

        callbacks:
          - {__speedrun__: append}
          - EarlyStopping

Several commands can be given separated by ``;``. The wake keys never reach the result.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING

from .._errors import ConfigError
from ._yaml import load_mapping

if TYPE_CHECKING:
    from typing import Any


__all__ = ["WAKE_KEY", "merge_macro", "read_macro_files"]

#: The key under which a macro gives commands to the merge.
WAKE_KEY = "__speedrun__"
_SEPARATOR = ";"
_MAPPING_COMMANDS = {"purge": "purge", "__purge__": "purge"}
_LIST_COMMANDS = {"append": "append", "__append__": "append"}


def _path(keys: tuple[Any, ...]) -> str:
    return "/".join(str(key) for key in keys) if keys else "(top level)"


def _parse(value: Any, keys: tuple[Any, ...], accepted: Mapping[str, str], where: str) -> set[str]:
    """Turn a wake key's value (``"purge; ..."``) into the set of canonical commands."""
    choices = ", ".join(repr(name) for name in accepted)
    if not isinstance(value, str):
        raise ConfigError(
            f"macro key {_path(keys)!r}: {WAKE_KEY} expects a string of ';'-separated commands "
            f"({where}: {choices}); got {type(value).__name__} {value!r}"
        )
    commands = set()
    for raw in value.split(_SEPARATOR):
        command = raw.strip()
        if not command:
            continue
        if command not in accepted:
            raise ConfigError(
                f"macro key {_path(keys)!r}: unknown {WAKE_KEY} command {command!r}; accepted "
                f"{where}: {choices} (several separated by '{_SEPARATOR}'). Fix the spelling."
            )
        commands.add(accepted[command])
    return commands


def _is_marker(value: Any) -> bool:
    """A list element that only carries commands: ``{__speedrun__: append}``."""
    return isinstance(value, Mapping) and len(value) == 1 and WAKE_KEY in value


def _clean(value: Any, keys: tuple[Any, ...]) -> Any:
    """Deep copy of a macro value without wake keys (commands are validated, then dropped)."""
    if isinstance(value, Mapping):
        if WAKE_KEY in value:
            _parse(value[WAKE_KEY], keys, _MAPPING_COMMANDS, "in a mapping")
        return {key: _clean(item, (*keys, key)) for key, item in value.items() if key != WAKE_KEY}
    if isinstance(value, (list, tuple)):
        items = _list_items(value, keys)[1]
        return items if isinstance(value, list) else tuple(items)
    return copy.deepcopy(value)


def _list_items(
    value: list[Any] | tuple[Any, ...], keys: tuple[Any, ...]
) -> tuple[bool, list[Any]]:
    """Split a macro list into (append requested, cleaned elements without markers)."""
    append = False
    items = []
    for index, element in enumerate(value):
        if _is_marker(element):
            commands = _parse(element[WAKE_KEY], (*keys, index), _LIST_COMMANDS, "in a list")
            append = append or "append" in commands
            continue
        if isinstance(element, Mapping) and WAKE_KEY in element:
            commands = element[WAKE_KEY]
            if isinstance(commands, str) and any(
                part.strip() in _LIST_COMMANDS for part in commands.split(_SEPARATOR)
            ):
                raise ConfigError(
                    f"macro key {_path((*keys, index))!r}: the append marker must be a list "
                    f"element of its own, e.g. `- {{{WAKE_KEY}: append}}`; got it inside the "
                    f"mapping {dict(element)!r}. Move it to its own element."
                )
        items.append(_clean(element, (*keys, index)))
    return append, items


def _merge(
    config: MutableMapping[Any, Any], macro: Mapping[Any, Any], keys: tuple[Any, ...]
) -> None:
    for key, value in macro.items():
        if key == WAKE_KEY:
            continue
        here = (*keys, key)
        existing = config.get(key)
        if isinstance(value, Mapping):
            purge = WAKE_KEY in value and "purge" in _parse(
                value[WAKE_KEY], here, _MAPPING_COMMANDS, "in a mapping"
            )
            if purge or not isinstance(existing, MutableMapping):
                config[key] = _clean(value, here)
            else:
                _merge(existing, value, here)
        elif isinstance(value, list):
            append, items = _list_items(value, here)
            if append and isinstance(existing, list):
                # Assign a new list rather than extend in place, so a config that watches its
                # mutations (the core's ConfigNode clears a lookup memo) sees the change.
                config[key] = [*existing, *items]
            else:
                config[key] = items
        else:
            config[key] = _clean(value, here)


def merge_macro(config: dict[Any, Any], macro: Mapping[Any, Any]) -> dict[Any, Any]:
    """Merge ``macro`` into ``config`` in place and return ``config``.

    Mappings merge key by key, recursively; any other value replaces the configuration's.
    ``__speedrun__: purge`` in a macro mapping replaces the configuration's mapping wholesale;
    a ``{__speedrun__: append}`` element in a macro list appends the list's other elements to
    the configuration's list (when there is one). ``macro`` is never modified, and nothing of
    it is shared with ``config`` afterwards.

    Raises
    ------
    ConfigError
        ``macro`` is not a mapping, or it holds an unknown ``__speedrun__`` command (the
        message names the key path); ``config`` is then left unchanged.
    """
    if not isinstance(macro, Mapping):
        raise ConfigError(
            f"expected a macro mapping (key: value pairs) to merge into the configuration, got "
            f"{type(macro).__name__} {macro!r}"
        )
    # Validate every command before touching the config: a bad macro leaves it as it was.
    replacement = _clean(macro, ())
    commands = _parse(macro.get(WAKE_KEY, ""), (), _MAPPING_COMMANDS, "in a mapping")
    if "purge" in commands:
        config.clear()
        config.update(replacement)
        return config
    _merge(config, macro, ())
    return config


def _split_spec(spec: str) -> list[str]:
    """Split ``a.yml:b.yml``, keeping Windows drive letters (``C:\\x.yml``) whole."""
    parts = spec.split(":")
    paths: list[str] = []
    index = 0
    while index < len(parts):
        part = parts[index]
        following = parts[index + 1] if index + 1 < len(parts) else None
        if (
            len(part) == 1
            and part.isalpha()
            and following is not None
            and following[:1] in ("\\", "/")
            and os.name == "nt"
        ):
            part = f"{part}:{following}"
            index += 1
        index += 1
        if part.strip():
            paths.append(part.strip())
    return paths


def read_macro_files(spec: str) -> list[tuple[str, dict[Any, Any]]]:
    """Load the macro files of a ``--macro`` value, in order.

    Parameters
    ----------
    spec
        Colon-separated paths, e.g. ``"macros/small.yml:macros/debug.yml"``; ``~`` is expanded
        in each (shells only expand it at the start of the word).

    Returns
    -------
    list of (path, mapping)
        One entry per file, in the order given; apply them with :func:`merge_macro`.

    Raises
    ------
    ConfigError
        ``spec`` names no file, a file is missing, malformed, or not a mapping.
    """
    if not isinstance(spec, str):
        raise ConfigError(
            f"expected the macro files as a colon-separated string (e.g. 'a.yml:b.yml'), got "
            f"{type(spec).__name__} {spec!r}"
        )
    paths = [os.path.expanduser(path) for path in _split_spec(spec)]
    if not paths:
        raise ConfigError(
            f"expected at least one macro file in {spec!r}; pass colon-separated YAML paths, "
            "e.g. --macro macros/small.yml:macros/debug.yml"
        )
    macros = []
    for path in paths:
        if not os.path.isfile(path):
            found = "a folder" if os.path.isdir(path) else "nothing"
            raise ConfigError(
                f"macro file {path!r} (from {spec!r}) does not exist: found {found} at "
                f"{os.path.abspath(path)!r}; check the path (relative paths start at the "
                f"current directory, {os.getcwd()!r})"
            )
        macros.append((path, load_mapping(path)))
    return macros
