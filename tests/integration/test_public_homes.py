"""Every public class and function reports its public home, in every distribution.

``speedrun.ConfigError``, not ``speedrun._errors.ConfigError``: names exported by ``speedrun``
report ``speedrun``, names only ``speedrun.ext`` exports report ``speedrun.ext``, and each mixin
distribution's names report ``speedrun.mixins.<name>`` (``speedrun.ext.set_public_module``,
called last in each ``__init__``). The home is a real one: the object is found there under its
qualified name, so pickle, copy and multiprocessing use it, and tracebacks print it.
"""

from __future__ import annotations

import importlib
import pickle
import sys
import typing
from pathlib import Path
from types import ModuleType

import pytest

import speedrun

ROOT = Path(__file__).resolve().parents[2]
MIXINS = sorted(
    f"speedrun.mixins.{init.parent.name}"
    for init in ROOT.glob("packages/speedrun-*/src/speedrun/mixins/*/__init__.py")
)
PUBLIC = ["speedrun", "speedrun.ext", *MIXINS]


def _import(name: str) -> ModuleType:
    """The module, or a skip when a third-party library it needs is missing (inferno)."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        if (error.name or "speedrun").partition(".")[0] == "speedrun":
            raise
        pytest.skip(f"{name} needs {error.name}, which is not installed")


def _exported(module: ModuleType) -> list[tuple[str, typing.Any]]:
    """The classes and functions in ``module.__all__`` (constants have no module to report)."""
    return [
        (name, getattr(module, name))
        for name in module.__all__
        if isinstance(getattr(module, name), type) or hasattr(getattr(module, name), "__code__")
    ]


def _expected_home(module: ModuleType, name: str, obj: object) -> str:
    if name in speedrun.__all__ and getattr(speedrun, name) is obj:
        return "speedrun"  # also for speedrun.ext, which re-exports speedrun's errors
    return module.__name__


@pytest.mark.parametrize("module_name", PUBLIC)
def test_public_classes_and_functions_report_their_public_home(module_name: str) -> None:
    module = _import(module_name)
    exported = _exported(module)
    assert exported, f"{module_name} exports no class or function"
    wrong = []
    for name, obj in exported:
        if obj.__name__ != name:  # an alias (request_preemption) keeps the home of its name
            assert not isinstance(obj, type), f"{module_name}.{name} is a class named {obj!r}"
        elif obj.__module__ != _expected_home(module, name, obj):
            wrong.append(f"{name}: {obj.__module__}")
        home = sys.modules[obj.__module__]
        assert getattr(home, obj.__qualname__) is obj, (name, obj.__module__, obj.__qualname__)
        assert pickle.loads(pickle.dumps(obj)) is obj
    assert wrong == [], f"{module_name}: expected its public names to report {module_name}"


# A private attribute annotated with a class of a library imported lazily (tensorboardX's
# SummaryWriter): importing it to resolve the annotation would cost every start-up.
TYPE_CHECKING_ONLY = {"TensorboardMixin"}


@pytest.mark.parametrize("module_name", PUBLIC)
def test_type_hints_of_public_classes_still_resolve(module_name: str) -> None:
    """``typing.get_type_hints`` evaluates a class's annotations in the module of its
    ``__module__``; a moved class's annotations still resolve in the module that wrote them."""
    module = _import(module_name)
    failed = []
    for name, obj in _exported(module):
        if not isinstance(obj, type) or name in TYPE_CHECKING_ONLY:
            continue
        try:
            typing.get_type_hints(obj)
        except NameError as error:
            failed.append(f"{name}: {error}")
    assert failed == []


def test_tracebacks_print_the_public_home() -> None:
    import traceback

    error = speedrun.ConfigError("expected a mapping")
    assert traceback.format_exception_only(type(error), error) == [
        "speedrun.ConfigError: expected a mapping\n"
    ]
