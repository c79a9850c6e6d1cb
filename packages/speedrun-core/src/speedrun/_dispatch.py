"""Marking methods as hooks or as the default dispatch, and finding them on a class."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

__all__ = [
    "find_marked",
    "register_default_dispatch",
    "register_hook",
    "register_pre_dispatch_hook",
]

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULT_DISPATCH_MARK = "__is_speedrun_default_dispatch"


def _hook_mark(key: str) -> str:
    return f"__is_speedrun_{key}_hook"


def register_hook(fn: F, key: str) -> F:
    """Mark ``fn`` as a hook for ``key``; ``BaseExperiment.execute_hooks(key)`` calls it.

    Use it in a class body after the method: ``register_hook(_close_files, "clean_up")``.
    """
    if not callable(fn):
        raise TypeError(f"register_hook expects a function, got {type(fn).__name__} {fn!r}")
    setattr(fn, _hook_mark(key), True)
    return fn


def register_default_dispatch(fn: F) -> F:
    """Decorator: ``run()`` calls this method when no ``--dispatch`` is given."""
    setattr(fn, _DEFAULT_DISPATCH_MARK, True)
    return fn


def register_pre_dispatch_hook(fn: F) -> F:
    """Decorator: ``run()`` calls this method before the dispatched one."""
    return register_hook(fn, "pre_dispatch")


def find_marked(cls: type, key: str | None) -> list[str]:
    """Names of the methods of ``cls`` marked as ``key`` hooks (``None``: default dispatch).

    Order: base classes first, then definition order. A subclass that overrides a marked
    method without marking it again unmarks it.
    """
    mark = _DEFAULT_DISPATCH_MARK if key is None else _hook_mark(key)
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name in vars(klass):
            if name in names:
                continue
            attribute = getattr(cls, name, None)
            if getattr(attribute, mark, False):
                names.append(name)
    return [name for name in names if getattr(getattr(cls, name, None), mark, False)]
