"""The configuration tree: nested mappings addressed by slash paths (``'training/lr'``).

Lookups are memoised per path, which makes ``get('a/b/c')`` about as cheap as a plain nested
``dict`` lookup. The memo stays exact because every mapping in the tree is a :class:`ConfigNode`,
a ``dict`` that clears the memo whenever it is changed, however it is reached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from .._errors import ConfigError

__all__ = ["Config", "ConfigNode", "MISSING", "diff_overrides", "short_repr", "to_plain"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def _split(tag: str) -> list[str]:
    if not isinstance(tag, str):
        raise TypeError(f"config paths are strings like 'training/lr', got {tag!r}")
    return tag.strip("/").split("/")


class ConfigNode(dict[Any, Any]):
    """A ``dict`` in the configuration tree; any change clears the tree's lookup memo."""

    __slots__ = ("_memo",)
    _memo: dict[str, Any]

    def __init__(
        self,
        data: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = (),
        *,
        memo: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self._memo = {} if memo is None else memo
        dict.update(self, ((k, self._adopt(v)) for k, v in dict(data).items()))

    def _adopt(self, value: Any) -> Any:
        if isinstance(value, ConfigNode) and value._memo is self._memo:
            return value
        if isinstance(value, Mapping):
            return ConfigNode(value, memo=self._memo)
        return value

    # -- every mutating dict method clears the memo ------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, self._adopt(value))
        self._memo.clear()

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)
        self._memo.clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            dict.__setitem__(self, key, self._adopt(value))
        self._memo.clear()

    def __ior__(self, other: Any) -> ConfigNode:  # type: ignore[misc]  # merges in place and returns the node, unlike dict's |
        self.update(other)
        return self

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def pop(self, key: Any, *default: Any) -> Any:
        value = dict.pop(self, key, *default)
        self._memo.clear()
        return value

    def popitem(self) -> tuple[Any, Any]:
        item = dict.popitem(self)
        self._memo.clear()
        return item

    def clear(self) -> None:
        dict.clear(self)
        self._memo.clear()

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and deepcopy as a fresh tree of plain data.
        return (type(self), (to_plain(self),))

    def to_dict(self) -> dict[Any, Any]:
        """A deep copy of this node as plain ``dict``/``list`` data."""
        return cast("dict[Any, Any]", to_plain(self))


class Config(ConfigNode):
    """The root of a configuration tree, with slash-path access.

    Examples
    --------
    >>> config = Config({"training": {"lr": 0.1}})
    >>> config.lookup("training/lr")
    0.1
    >>> config.assign("model/depth", 3).lookup("model")
    {'depth': 3}
    """

    __slots__ = ()

    @property
    def memo(self) -> dict[str, Any]:
        """The lookup memo (path → value), shared by every node of this tree."""
        return self._memo

    def lookup(self, tag: str, default: Any = None, ensure_exists: bool = False) -> Any:
        """The value at ``tag`` (slash path), or ``default`` when any part is missing.

        Lists are indexed with integer parts (``'layers/0/width'``). With ``ensure_exists``,
        a missing path raises a :class:`ConfigError` naming the first missing part.
        """
        memo = self._memo
        try:
            return memo[tag]
        except KeyError:
            pass
        node: Any = self
        cacheable = True
        parts = _split(tag)
        for depth, part in enumerate(parts):
            if isinstance(node, Mapping):
                if part in node:
                    node = node[part]
                    continue
                if part.lstrip("-").isdigit() and int(part) in node:
                    node = node[int(part)]
                    continue
            elif isinstance(node, (list, tuple)) and part.lstrip("-").isdigit():
                cacheable = False
                index = int(part)
                if -len(node) <= index < len(node):
                    node = node[index]
                    continue
            if ensure_exists:
                where = "/".join(parts[:depth]) or "the top level"
                have = (
                    sorted(map(str, node))[:12]
                    if isinstance(node, Mapping)
                    else f"a {type(node).__name__}"
                )
                raise ConfigError(
                    f"config path '{tag}' does not exist: expected key '{part}' under {where}, "
                    f"which has {have}. Set it in train_config.yml or pass "
                    f"--config.{'.'.join(parts)} VALUE."
                )
            return default
        if cacheable:
            memo[tag] = node
        return node

    def assign(self, tag: str, value: Any) -> Config:
        """Set ``tag`` (slash path) to ``value``, creating intermediate mappings."""
        parts = _split(tag)
        node: Any = self
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part, MISSING) if isinstance(node, Mapping) else MISSING
            if child is MISSING:
                node[part] = {}
                child = dict.__getitem__(node, part)
            elif not isinstance(child, Mapping):
                raise ConfigError(
                    f"cannot set '{tag}': '{'/'.join(parts[: depth + 1])}' holds "
                    f"{type(child).__name__} {child!r}, not a mapping. Set the parent to a "
                    f"mapping first or choose another path."
                )
            node = child
        node[parts[-1]] = value
        return self

    def replace(self, data: Mapping[Any, Any] | None) -> Config:
        """Replace the whole content with ``data`` (the object identity stays)."""
        dict.clear(self)
        self.update(data or {})
        return self


def to_plain(value: Any) -> Any:
    """Deep-convert mappings to ``dict`` and lists/tuples to ``list`` copies."""
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


def _flatten(mapping: Mapping[Any, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, path + "/"))
        else:
            flat[path] = value
    return flat


def diff_overrides(base: Mapping[Any, Any], overrides: Iterable[tuple[str, Any]]) -> list[str]:
    """Describe overrides that add keys ``base`` lacks or change a value's type.

    An empty ``base`` (a config built from flags alone) gives no findings. ``int`` replacing
    ``float`` and anything replacing ``None`` count as compatible.
    """
    if not base:
        return []
    base_tree = base if isinstance(base, Config) else Config(base)
    findings: list[str] = []
    for tag, value in overrides:
        old = base_tree.lookup(tag, MISSING)
        if old is MISSING:
            findings.append(f"{tag}: new key (not in the base config), set to {short_repr(value)}")
        elif old is not None and not _compatible(old, value):
            findings.append(
                f"{tag}: type changes from {type(old).__name__} ({short_repr(old)}) "
                f"to {type(value).__name__} ({short_repr(value)})"
            )
    return findings


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` on one line, shortened to ``limit`` characters with ``...`` and the full
    length (a huge override must not flood a warning)."""
    text = repr(value).replace("\n", "\\n")
    if len(text) <= limit:
        return text
    return f"{text[: limit - 3]}... ({len(text)} characters)"


def _compatible(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, float) and isinstance(new, int):
        return True
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return True
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return True
    return type(old) is type(new)
