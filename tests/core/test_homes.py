"""Public classes and functions report their public home: ``speedrun.ConfigError``, not
``speedrun._errors.ConfigError`` (``speedrun.ext.set_public_module``).

Every distribution's names are checked in tests/integration/test_public_homes.py; here are the
helper's rules and what core does with the homes (tracebacks, pickles, dispatch, class
matching of checkpoints). The checkpoint loading policy is tested in test_hardening.py.
"""

from __future__ import annotations

import pickle
import sys
import traceback
import types
import typing

import pytest

import speedrun
import speedrun.ext as ext
from speedrun._homes import public_path
from speedrun.checkpoint._io import _classes_match
from speedrun.config import _tree


def _module(name: str, **namespace: object) -> dict[str, object]:
    """A module registered in sys.modules, its namespace returned (as ``globals()`` is)."""
    module = types.ModuleType(name)
    module.__dict__.update(namespace)
    sys.modules[name] = module
    return module.__dict__


@pytest.fixture
def private_module():
    """``speedrun_demo._impl`` with a class, a function, an alias, a nested class, a constant."""
    impl = types.ModuleType("speedrun_demo._impl")
    exec(
        "class Thing:\n"
        "    class Inner: ...\n"
        "def make(): return Thing()\n"
        "def request(): ...\n"
        "LIMIT = 3\n",
        impl.__dict__,
    )
    sys.modules[impl.__name__] = impl
    yield impl
    for name in [name for name in sys.modules if name.startswith("speedrun_demo")]:
        del sys.modules[name]


def test_exported_classes_and_functions_move_to_the_public_module(private_module) -> None:
    impl = private_module
    namespace = _module(
        "speedrun_demo",
        Thing=impl.Thing,
        make=impl.make,
        request_thing=impl.request,  # exported under another name: keeps its home
        Inner=impl.Thing.Inner,  # not top-level: speedrun_demo.Thing.Inner is not Inner
        LIMIT=impl.LIMIT,
        OrderedDict=__import__("collections").OrderedDict,  # another package's
        __all__=["Thing", "make", "request_thing", "Inner", "LIMIT", "OrderedDict"],
    )
    ext.set_public_module(namespace)
    assert impl.Thing.__module__ == impl.make.__module__ == "speedrun_demo"
    assert impl.request.__module__ == impl.Thing.Inner.__module__ == "speedrun_demo._impl"
    assert namespace["OrderedDict"].__module__ == "collections"
    assert pickle.loads(pickle.dumps(impl.Thing())).__class__ is impl.Thing
    assert b"_impl" not in pickle.dumps(impl.make)
    assert public_path("speedrun_demo._impl.Thing") == "speedrun_demo.Thing"
    assert public_path("speedrun_demo._impl.request") == "speedrun_demo._impl.request"


def test_a_name_already_public_stays_where_it_is(private_module) -> None:
    # speedrun.ext re-exports speedrun's errors: they stay speedrun.ConfigError
    impl = private_module
    first = _module("speedrun_demo", Thing=impl.Thing, __all__=["Thing"])
    second = _module("speedrun_demo.ext", Thing=impl.Thing, make=impl.make)
    ext.set_public_module(first)
    ext.set_public_module(second, ["Thing", "make"])  # names given: __all__ is not needed
    assert impl.Thing.__module__ == "speedrun_demo"
    assert impl.make.__module__ == "speedrun_demo.ext"


def test_a_name_the_module_does_not_define_is_named(private_module) -> None:
    namespace = _module("speedrun_demo", __all__=["Thing"])
    with pytest.raises(KeyError, match=r"speedrun_demo exports 'Thing' but does not define it"):
        ext.set_public_module(namespace)


def test_speedruns_errors_print_their_public_home_in_tracebacks() -> None:
    assert speedrun.ConfigError.__module__ == "speedrun"
    assert ext.ConfigError is speedrun.ConfigError
    line = traceback.format_exception_only(speedrun.ConfigError, speedrun.ConfigError("bad"))
    assert line == ["speedrun.ConfigError: bad\n"]
    assert repr(speedrun.Config) == "<class 'speedrun.Config'>"
    assert ext.ConfigKey.__module__ == ext.set_public_module.__module__ == "speedrun.ext"
    # an alias keeps the home that defines it under that name
    assert speedrun.request_preemption.__module__ == "speedrun.distributed._preemption"


def test_config_namespace_and_errors_pickle_under_the_public_path() -> None:
    config = speedrun.Config({"training": {"lr": 0.1}})
    data = pickle.dumps(config, protocol=2)
    assert b"cspeedrun\nConfig\n" in data and b"_tree" not in data
    assert pickle.loads(data) == config and type(pickle.loads(data)) is speedrun.Config
    namespace = pickle.loads(pickle.dumps(speedrun.Namespace(a=1)))
    assert type(namespace) is speedrun.Namespace and namespace.a == 1
    error = pickle.loads(pickle.dumps(speedrun.CheckpointError("gone")))
    assert type(error) is speedrun.CheckpointError and str(error) == "gone"
    # the private path still names the class (pickles written before name it)
    assert _tree.Config is speedrun.Config


def test_type_hints_of_moved_classes_resolve_in_their_defining_module() -> None:
    # a NamedTuple and a dataclass whose annotations name Any and str | None
    hints = typing.get_type_hints(ext.SetupRequest)
    assert hints["overrides"] == tuple[tuple[str, typing.Any], ...]
    assert typing.get_type_hints(ext.GitState)["dirty"] == bool | None
    assert typing.get_type_hints(speedrun.Config)["_memo"] == dict[str, typing.Any]
    assert typing.get_type_hints(speedrun.Config.lookup)["tag"] is str


def test_own_annotations_become_references_to_the_module_that_wrote_them(
    private_module,
) -> None:
    impl = private_module
    exec("from typing import Any\nclass Typed:\n    x: 'Any'\n    y: int = 1\n", impl.__dict__)
    namespace = _module("speedrun_demo", Typed=impl.Typed, __all__=["Typed"])
    ext.set_public_module(namespace)
    assert "Any" not in namespace and impl.Typed.__module__ == "speedrun_demo"
    assert typing.get_type_hints(impl.Typed) == {"x": typing.Any, "y": int}


def test_checkpoints_naming_the_former_path_of_a_class_match_the_public_one() -> None:
    saved = "speedrun.experiment._experiment.BaseExperiment"
    assert public_path(saved) == "speedrun.BaseExperiment"
    assert _classes_match(saved, ["train.T", "speedrun.BaseExperiment"])
    assert _classes_match("speedrun.BaseExperiment", saved)
    assert not _classes_match(saved, ["train.T"])


def test_base_experiments_own_methods_are_not_offered_for_dispatch(tmp_path) -> None:
    class Experiment(speedrun.BaseExperiment):
        def fit(self) -> None: ...

    with pytest.raises(speedrun.DispatchError, match=r"Methods you can dispatch: fit$"):
        Experiment(tmp_path / "RUN").dispatch("missing")
