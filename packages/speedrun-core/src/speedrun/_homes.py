"""Public homes: exported classes and functions report the module users import them from.

:func:`set_public_module`, called last in each public ``__init__``, makes ``ConfigError``
report ``speedrun`` (tracebacks, ``repr()``, pickles) instead of ``speedrun._errors``. The
private modules still define the objects, so pickles written before load; :func:`public_path`
maps a former private path to the public one. A moved class's own annotations become
``typing.ForwardRef`` s naming the module that wrote them, so ``typing.get_type_hints`` (which
evaluates in ``sys.modules[cls.__module__]``) resolves them as before. ``inspect.getsource``
of a moved class looks in the public module's file (as with pluggy and trio). ARCHITECTURE.md,
"The public API", has the rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

__all__ = ["public_path", "set_public_module"]

#: ``"former.private.module.QualName"`` -> ``"public.module.QualName"``, for each object moved.
_MOVED: dict[str, str] = {}


def set_public_module(namespace: Mapping[str, Any], names: Iterable[str] | None = None) -> None:
    """Make the classes and functions a public module exports report it as their module.

    Call it last in a package's ``__init__``: ``set_public_module(globals())`` (``names``
    defaults to the module's ``__all__``). An exported object moves when

    - it is a class or a Python function exported under its own name (an alias such as
      ``request_preemption = request`` keeps its home: ``module.request`` would not exist),
      defined at the top level of its module;
    - its current module is a private one (a part of the dotted name starts with ``_``) of the
      same top-level package (``speedrun``), so re-exported third-party objects and names
      already public (``speedrun.ConfigError`` re-exported by ``speedrun.ext``) stay as they are.

    Afterwards ``getattr(sys.modules[obj.__module__], obj.__qualname__) is obj`` for each
    object moved: pickle, copy and multiprocessing find it under its public path, and
    ``repr()`` and tracebacks print that path. Constants are left alone (they have no module).

    Raises
    ------
    KeyError
        ``names`` (or ``__all__``) lists a name the namespace does not define.
    """
    module: str = namespace["__name__"]
    root = module.partition(".")[0]
    for name in namespace["__all__"] if names is None else names:
        try:
            obj = namespace[name]
        except KeyError:
            raise KeyError(
                f"set_public_module: {module} exports {name!r} but does not define it; "
                f"import it in {module} or remove it from __all__"
            ) from None
        if not (isinstance(obj, type) or hasattr(obj, "__code__")):
            continue  # constants, builtins, partials: nothing to name
        home = getattr(obj, "__module__", None)
        if (
            getattr(obj, "__name__", None) != name
            or getattr(obj, "__qualname__", None) != name
            or not isinstance(home, str)
            or home == module
            or home.partition(".")[0] != root
            or not any(part.startswith("_") for part in home.split("."))
        ):
            continue
        _MOVED[f"{home}.{name}"] = f"{module}.{name}"
        obj.__module__ = module
        if isinstance(obj, type):
            _keep_annotations_resolvable(obj, home)


def _keep_annotations_resolvable(cls: type, written_in: str) -> None:
    """Make ``cls``'s own annotations evaluate in ``written_in`` (see the module doc): strings,
    and the module-less ``ForwardRef`` s that ``typing.NamedTuple`` makes of them."""
    annotations = cls.__dict__.get("__annotations__")
    if not isinstance(annotations, dict) or not annotations:
        return
    from typing import ForwardRef  # loaded already: speedrun's own modules import typing

    for key, value in annotations.items():
        if isinstance(value, str):
            text, is_argument, is_class = value, False, True
        elif isinstance(value, ForwardRef) and value.__forward_module__ is None:
            text = value.__forward_arg__
            is_argument, is_class = value.__forward_is_argument__, value.__forward_is_class__
        else:
            continue
        try:
            annotations[key] = ForwardRef(
                text, is_argument=is_argument, module=written_in, is_class=is_class
            )
        except SyntaxError:  # not an expression: get_type_hints could not evaluate it anyway
            continue


def public_path(path: str) -> str:
    """The public ``"module.QualName"`` of a class once named by its private ``path``.

    ``public_path("speedrun.experiment._experiment.BaseExperiment")`` is
    ``"speedrun.BaseExperiment"``; any other path (also of a package not imported yet) is
    returned unchanged.
    """
    return _MOVED.get(path, path)
