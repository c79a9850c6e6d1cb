"""Method dispatch and hooks: ``run()``, ``--dispatch``, default dispatch, pre-dispatch and
clean-up hooks, and the decorators that mark methods for them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import DispatchError

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])


__all__ = [
    "CLEAN_UP",
    "HOOK_KEYS",
    "POST_LOAD",
    "PRE_CHECKPOINT",
    "PRE_DISPATCH",
    "Dispatcher",
    "find_marked",
    "register_default_dispatch",
    "register_hook",
    "register_pre_dispatch_hook",
]

_DEFAULT_DISPATCH_MARK = "__is_speedrun_default_dispatch"

PRE_DISPATCH = "pre_dispatch"
"""Hook key: called by ``run()`` before the dispatched method."""
CLEAN_UP = "clean_up"
"""Hook key: called by ``run()`` after the dispatched method, even when it raised."""
POST_LOAD = "post_load"
"""Hook key: called after ``load_from_checkpoint()`` restored the experiment's state."""
PRE_CHECKPOINT = "pre_checkpoint"
"""Hook key: called by ``checkpoint()`` before a save (and only when it saves), in every process:
flush and fsync what was logged, so that everything up to the checkpoint's step survives a crash."""
HOOK_KEYS = frozenset({PRE_DISPATCH, CLEAN_UP, POST_LOAD, PRE_CHECKPOINT})
"""Every hook key speedrun calls."""


def _hook_mark(key: str) -> str:
    if key not in HOOK_KEYS:
        raise ValueError(
            f"Unknown hook key {key!r}: expected one of {', '.join(sorted(HOOK_KEYS))} "
            "(the constants in speedrun.ext)."
        )
    return f"__is_speedrun_{key}_hook"


def register_hook(fn: F, key: str) -> F:
    """Mark ``fn`` as a hook for ``key``; ``BaseExperiment.execute_hooks(key)`` calls it.

    Use it in a class body after the method: ``register_hook(_close_files, CLEAN_UP)``.
    ``key`` is one of :data:`HOOK_KEYS`; any other key raises ``ValueError`` listing them, so
    a typo fails when the class is created rather than leaving a hook that never runs.
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
    return register_hook(fn, PRE_DISPATCH)


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


class Dispatcher:
    """Dispatch and hooks; ``BaseExperiment`` derives from it.

    Subclasses fill in four steps of :meth:`run`: ``_dispatch_flag()`` (the ``--dispatch``
    value), ``_before_dispatch()``, ``_after_dispatch(key)`` (when the method returned
    normally) and ``_after_run()`` (always called last).
    """

    #: Name of the method ``run()`` calls when nothing else names one.
    DEFAULT_DISPATCH: str | None = None
    _default_dispatch: str | None = None

    register_hook = staticmethod(register_hook)
    register_default_dispatch = staticmethod(register_default_dispatch)
    register_pre_dispatch_hook = staticmethod(register_pre_dispatch_hook)

    def _dispatch_flag(self) -> str | None:
        return None

    def _before_dispatch(self) -> None:
        pass

    def _after_dispatch(self, key: str) -> None:
        pass

    def _after_run(self) -> None:
        pass

    def execute_hooks(self, key: str) -> dict[str, Any]:
        """Call every method marked as a ``key`` hook; returns ``{name: result}``."""
        return {name: getattr(self, name)() for name in find_marked(type(self), key)}

    def execute_pre_dispatch_hooks(self) -> dict[str, Any]:
        """Call the pre-dispatch hooks (see ``register_pre_dispatch_hook``)."""
        return self.execute_hooks(PRE_DISPATCH)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Dispatch the method named by ``--dispatch`` (or the default) with ``args``.

        Resumes first if ``--resume`` asked for it, then runs the pre-dispatch hooks.
        ``clean_up()`` and the ``'clean_up'`` hooks always run afterwards, even on errors.
        """
        try:
            self._before_dispatch()
            self.execute_pre_dispatch_hooks()
            key = self.get_dispatch_key()
            result = self.dispatch(key, *args, **kwargs)
            self._after_dispatch(key)  # returned normally (e.g. the final checkpoint)
            return result
        finally:
            try:
                self.clean_up()
            finally:
                try:
                    self.execute_hooks(CLEAN_UP)
                finally:
                    self._after_run()

    def dispatch(self, key: str, *args: Any, **kwargs: Any) -> Any:
        """Call the method named ``key`` with ``args`` and ``kwargs``."""
        method = getattr(self, key, None)
        if not callable(method):
            found = "a non-callable attribute" if hasattr(self, key) else "no such method"
            raise DispatchError(
                f"cannot dispatch {key!r}: expected the name of a method of "
                f"{type(self).__name__}, found {found}. Methods you can dispatch: "
                f"{', '.join(self._dispatchable()) or 'none'}"
            )
        return method(*args, **kwargs)

    def _dispatchable(self) -> list[str]:
        """Public methods defined outside speedrun's own classes (the user's)."""
        ours = {
            name
            for klass in type(self).__mro__
            if klass.__module__.partition(".")[0] == "speedrun"
            for name in vars(klass)
        }
        return sorted(
            name
            for name in dir(type(self))
            if not name.startswith("_")
            and name not in ours
            and callable(getattr(type(self), name, None))
        )

    def get_dispatch_key(self) -> str:
        """The method to dispatch: ``--dispatch``, else the decorated default, else the
        instance's ``set_default_dispatch``, else the class's ``DEFAULT_DISPATCH``."""
        key = self._dispatch_flag()
        if key is None:
            key = self.find_default_dispatch() or self._default_dispatch or self.DEFAULT_DISPATCH
        if key is None:
            raise DispatchError(
                "no method to dispatch: pass --dispatch NAME, decorate a method with "
                "@register_default_dispatch, call set_default_dispatch(NAME) or set "
                f"DEFAULT_DISPATCH. Candidates: {', '.join(self._dispatchable()) or 'none'}"
            )
        return key

    def set_default_dispatch(self, method_name: str) -> Dispatcher:
        """Make ``method_name`` this instance's default dispatch."""
        if not callable(getattr(type(self), method_name, None)):
            raise DispatchError(
                f"set_default_dispatch expects the name of a method of {type(self).__name__}, "
                f"got {method_name!r}. Methods: {', '.join(self._dispatchable()) or 'none'}"
            )
        self._default_dispatch = method_name
        return self

    def get_default_dispatch(self) -> str | None:
        """The instance's default dispatch (``set_default_dispatch``), if any."""
        return self._default_dispatch

    def find_default_dispatch(self) -> str | None:
        """The method marked with ``register_default_dispatch``, if any."""
        marked = find_marked(type(self), None)
        return marked[0] if marked else None

    def clean_up(self) -> None:
        """Override to release resources; ``run()`` always calls it, even on errors."""
