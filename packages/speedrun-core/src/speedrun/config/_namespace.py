"""``Namespace``: what ``BaseExperiment.bundle`` returns — attributes plus slash-path access."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


__all__ = ["Namespace"]


class Namespace:
    """Attributes from keyword arguments, with ``get``/``set``/``new`` on slash paths.

    It behaves like ``argparse.Namespace`` (``vars()``, ``==``, ``in``, ``repr``) and adds
    item access and slash paths.

    Examples
    --------
    >>> ns = Namespace(loss=0.5)
    >>> ns.set("metrics/accuracy", 0.9).get("metrics/accuracy")
    0.9
    >>> ns.metrics.accuracy, ns["loss"]
    (0.9, 0.5)
    """

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __repr__(self) -> str:
        items = ", ".join(f"{key}={value!r}" for key, value in self.__dict__.items())
        return f"{type(self).__name__}({items})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Namespace):
            return NotImplemented
        return vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, like argparse.Namespace

    def __contains__(self, key: object) -> bool:
        return key in self.__dict__

    def get(self, tag: str, default: Any = None, ensure_exists: bool = False) -> Any:
        """The value at ``tag`` (``'a/b'`` walks nested namespaces and mappings)."""
        node: Any = self
        for part in tag.strip("/").split("/"):
            if isinstance(node, Namespace) and part in node.__dict__:
                node = node.__dict__[part]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            elif ensure_exists:
                raise KeyError(f"'{tag}' is not in this bundle: '{part}' is missing")
            else:
                return default
        return node

    def set(self, tag: str, value: Any) -> Namespace:
        """Set ``tag``, creating nested namespaces on the way."""
        parts = tag.strip("/").split("/")
        node: Any = self
        for part in parts[:-1]:
            if part not in node.__dict__:
                node.__dict__[part] = Namespace()
            node = node.__dict__[part]
            if not isinstance(node, Namespace):
                raise TypeError(f"cannot set '{tag}': '{part}' holds {type(node).__name__}")
        node.__dict__[parts[-1]] = value
        return self

    def new(self, tag: str, **kwargs: Any) -> Namespace:
        """Set ``tag`` to a new namespace holding ``kwargs``."""
        return self.set(tag, Namespace(**kwargs))

    def update(self, with_dict: dict[str, Any]) -> Namespace:
        """Set attributes from a mapping."""
        self.__dict__.update(with_dict)
        return self

    def __getitem__(self, item: str) -> Any:
        return self.__dict__[item]

    def __setitem__(self, key: str, value: Any) -> None:
        self.__dict__[key] = value
