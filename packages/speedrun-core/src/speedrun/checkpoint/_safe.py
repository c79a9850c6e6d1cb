"""Loading checkpoints without running code: the policy for the globals a pickle may name.

Unpickling calls whatever global a file names (``os.system``, ``subprocess.Popen``...), so a
planted or downloaded checkpoint could run code on ``--resume``. By default speedrun unpickles
with a :class:`pickle.Unpickler` whose ``find_class`` applies the policy below: for torch files
through ``torch.load(pickle_module=...)`` (torch's own weights-only unpickler cannot rebuild
whole experiment states: it refuses the ``defaultdict`` in every optimizer's state), for pickle
and dill files directly. A global is admitted when it is

1. on torch's own weights-only allow-list (tensors, storages, their rebuild functions), or
   marked safe by the program itself with ``torch.serialization.add_safe_globals``;
2. one of speedrun's classes of plain data, under its public path (``speedrun.Config``,
   ``speedrun.Namespace``: what pickles name since the classes report their public module), its
   private one (``speedrun.config._tree.Config``: what checkpoints written before name) or a
   former one (``speedrun._namespace`` and ``speedrun._config`` moved to ``speedrun.config``),
   or a known reconstructor of plain data (``collections.OrderedDict``,
   ``copyreg._reconstructor``, numpy's array rebuilders...);
3. a class (never a function, never a metaclass) from a module that is already imported when
   the checkpoint loads, outside the modules that reach the operating system or the
   interpreter (``os``, ``subprocess``, ``builtins``, ``importlib``, ``pickle``, ``types``...),
   with no such class among its bases, and -- for a file in a run's ``Weights/`` whose record
   lists the globals it wrote -- one of the globals this run's own save recorded for that file.

Rule 3 is what lets a run's own checkpoints load by default: the experiment's classes (the
model, the optimizer, your dataclasses) are imported by the time ``--resume`` loads, and the
save recorded them. A planted file cannot abuse it: it is not in the run's record, so it is
never even considered (see :mod:`speedrun.checkpoint._files`); a file put in place of a
recorded one may name only the classes that run itself saved; and nothing it names is imported
or called unless it is a class of an already imported, harmless module.

Full unpickling (any global, so any code) is an explicit opt-in: ``trust=True`` on
:func:`~speedrun.checkpoint._io.load_checkpoint`, ``load_from_checkpoint(trust=True)``, the
``--trust-checkpoint`` flag or ``SPEEDRUN_TRUST_CHECKPOINT=1``. Never the run's own config:
that file travels with the run and could be planted as well.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from .._errors import CheckpointError

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = ["UnsafeCheckpointError", "resolve_global", "trusted_by_environment"]

TRUST_ENVIRONMENT_VARIABLE = "SPEEDRUN_TRUST_CHECKPOINT"

# Former module paths of speedrun's own classes (core moved into concept subpackages). The
# private modules still define the classes, so files that name them keep loading.
_RENAMED_MODULES = {
    "speedrun._namespace": "speedrun.config._namespace",
    "speedrun._config": "speedrun.config._tree",
}

# Reconstructors and containers of plain data, admitted under these exact names.
_KNOWN: dict[str, frozenset[str]] = {
    "builtins": frozenset(
        {
            "set",
            "frozenset",
            "list",
            "dict",
            "tuple",
            "complex",
            "slice",
            "range",
            "bytearray",
            "bytes",
            "str",
            "int",
            "float",
            "bool",
            "object",
        }
    ),
    "collections": frozenset({"OrderedDict", "defaultdict", "deque", "Counter"}),
    "copyreg": frozenset({"_reconstructor"}),
    "_codecs": frozenset({"encode"}),
    "numpy": frozenset({"ndarray", "dtype"}),
    "numpy.core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy._core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy.core.numeric": frozenset({"_frombuffer"}),
    "numpy._core.numeric": frozenset({"_frombuffer"}),
    "numpy.random._pickle": frozenset(
        {"__randomstate_ctor", "__generator_ctor", "__bit_generator_ctor"}
    ),
    "datetime": frozenset({"datetime", "date", "time", "timedelta", "timezone"}),
    "decimal": frozenset({"Decimal"}),
    "fractions": frozenset({"Fraction"}),
    "uuid": frozenset({"UUID"}),
    "pathlib": frozenset(
        {"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"}
    ),
    # speedrun's own classes of plain data: their public path (what pickles name now) and the
    # private ones that checkpoints written before name. Each rebuilds from plain data only.
    "speedrun": frozenset({"Config", "Namespace"}),
    "speedrun.config._namespace": frozenset({"Namespace"}),
    "speedrun.config._tree": frozenset({"Config", "ConfigNode"}),
    # dill's rebuilders of plain data: an array from an admitted reconstructor, a numpy dtype
    # class (``_load_type`` is admitted too, but only for the types above: see safe_unpickler)
    "dill._dill": frozenset({"_create_array", "_create_dtypemeta"}),
}

# Modules whose classes reach the operating system, the interpreter or the import machinery.
_DENIED = (
    "builtins",
    "os",
    "posix",
    "nt",
    "sys",
    "subprocess",
    "shutil",
    "importlib",
    "pickle",
    "_pickle",
    "copyreg",
    "dill",
    "cloudpickle",
    "marshal",
    "ctypes",
    "_ctypes",
    "socket",
    "runpy",
    "code",
    "codeop",
    "pty",
    "multiprocessing",
    "threading",
    "_thread",
    "signal",
    "io",
    "_io",
    "tempfile",
    "types",
    "functools",
    "operator",
    "webbrowser",
    "pdb",
    "bdb",
    "inspect",
    "ast",
    "gc",
    "weakref",
    "asyncio",
    "concurrent",
    "pydoc",
    "platform",
    "ssl",
    "http",
    "urllib",
    "smtplib",
    "ftplib",
    "sqlite3",
    "zipimport",
    "zipfile",
    "tarfile",
    "glob",
    "logging",
    "atexit",
    "site",
    "sysconfig",
    "venv",
    "ensurepip",
    "timeit",
    "trace",
    "torch.hub",
    "torch.jit",
    "torch.package",
    "torch._dynamo",
    "torch._inductor",
    "torch.utils.cpp_extension",
    "torch.utils.data",
    "torch.multiprocessing",
    "torch._ops",
    "torch.ops",
    "numpy.ctypeslib",
    "numpy.testing",
    "numpy.distutils",
    "numpy.f2py",
)


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint names a global that safe loading never imports or calls."""


class MissingCodeError(CheckpointError):
    """A checkpoint names a module that is not installed (not a safety refusal)."""


def trusted_by_environment() -> bool:
    """Whether ``SPEEDRUN_TRUST_CHECKPOINT`` opts into full unpickling (``1``/``true``/``yes``)."""
    return os.environ.get(TRUST_ENVIRONMENT_VARIABLE, "").strip().lower() in {"1", "true", "yes"}


def renamed(module: str) -> str:
    """The current module path of a former speedrun module (unchanged for any other)."""
    if module in _RENAMED_MODULES:
        return _RENAMED_MODULES[module]
    return module


def _denied(module: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in _DENIED)


def _lookup(module_object: Any, name: str) -> Any:
    target = module_object
    for part in name.split("."):
        if (
            not part
            or part.startswith("__")
            and part not in {"__randomstate_ctor", "__generator_ctor", "__bit_generator_ctor"}
        ):
            raise AttributeError(name)
        target = getattr(target, part)
    return target


def resolve_global(module: str, name: str, recorded: set[str] | None = None) -> Any:
    """The object a checkpoint's pickle names as ``module.name``, when the policy admits it.

    ``recorded``: the globals the run's own save recorded for this file (None: not known).

    Raises
    ------
    UnsafeCheckpointError
        The policy refuses it; the message names the global and why.
    """
    original = f"{module}.{name}"
    module = renamed(module)
    vetted = _torch_allowed().get(f"{module}.{name}") or _marked_safe_in_torch(f"{module}.{name}")
    if vetted is not None:
        return vetted
    known = _KNOWN.get(module)
    if known is not None and name in known:
        try:
            __import__(module)
            return _lookup(sys.modules[module], name)
        except (ImportError, AttributeError):
            raise UnsafeCheckpointError(
                f"{original}: it cannot be found in this installation"
            ) from None
    if _denied(module):
        raise UnsafeCheckpointError(
            f"{original}: module {module} reaches the operating system or the interpreter, and "
            "nothing from it is loaded from a checkpoint"
        )
    if recorded is not None and original not in recorded and f"{module}.{name}" not in recorded:
        raise UnsafeCheckpointError(
            f"{original}: this run's own save of the file did not use it (the file was "
            "replaced after it was saved)"
        )
    loaded = sys.modules.get(module)
    if loaded is None:
        top = module.partition(".")[0]
        if top not in sys.modules:
            import importlib.util

            try:
                missing = importlib.util.find_spec(top) is None  # looks, never imports
            except (ImportError, ValueError):
                missing = True
            if missing:
                raise MissingCodeError(
                    f"No module named {top!r} (needed for {original}); install the missing "
                    "package or restore the renamed module or class"
                )
        raise UnsafeCheckpointError(
            f"{original}: module {module} is not imported, and safe loading never imports a "
            "module a file names (import it before loading, e.g. by creating your objects "
            "first)"
        )
    try:
        value = _lookup(loaded, name)
    except AttributeError:
        raise UnsafeCheckpointError(f"{original}: {module} has no {name}") from None
    if not isinstance(value, type):
        raise UnsafeCheckpointError(
            f"{original}: it is a {type(value).__name__}, not a class, and safe loading calls "
            "no functions (a checkpoint that needs one can run any code)"
        )
    if issubclass(value, type):
        raise UnsafeCheckpointError(f"{original}: it is a metaclass")
    for base in value.__mro__[1:]:
        if (
            base is object
            or base.__module__ == "builtins"
            and base.__name__ in _KNOWN["builtins"]
            or base.__module__ == "builtins"
            and issubclass(base, BaseException)
        ):
            continue
        if _denied(base.__module__):
            raise UnsafeCheckpointError(
                f"{original}: it derives from {base.__module__}.{base.__qualname__}, which "
                "reaches the operating system or the interpreter"
            )
    return value


_TORCH_ALLOWED: dict[str, Any] | None = None


def _torch_allowed() -> dict[str, Any]:
    """torch's own weights-only allow-list (``"module.name"`` -> object), once torch is loaded."""
    global _TORCH_ALLOWED
    if _TORCH_ALLOWED is None:
        if sys.modules.get("torch") is None:  # not loaded (or hidden): no tensors to rebuild
            return {}
        try:
            from torch import _weights_only_unpickler

            _TORCH_ALLOWED = dict(_weights_only_unpickler._get_allowed_globals())
        except Exception:
            import torch

            _TORCH_ALLOWED = {
                f"torch._utils.{name}": getattr(torch._utils, name)
                for name in (
                    "_rebuild_tensor",
                    "_rebuild_tensor_v2",
                    "_rebuild_parameter",
                    "_rebuild_parameter_with_state",
                    "_rebuild_device_tensor_from_numpy",
                )
                if hasattr(torch._utils, name)
            }
    return _TORCH_ALLOWED


def _marked_safe_in_torch(full: str) -> Any:
    """A global the program itself marked safe (``torch.serialization.add_safe_globals``)."""
    if sys.modules.get("torch") is None:
        return None
    try:
        from torch import _weights_only_unpickler

        allowed: dict[str, Any] = _weights_only_unpickler._get_user_allowed_globals()  # type: ignore[no-untyped-call]  # torch's private helper is unannotated
        return allowed.get(full)
    except Exception:
        return None


def refusal(path: Path | str, problems: list[str]) -> UnsafeCheckpointError:
    """The error for a checkpoint whose globals the policy refuses (names each one)."""
    listing = "\n  ".join(problems[:10])
    more = f"\n  (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return UnsafeCheckpointError(
        f"Refusing to load checkpoint {path}: unpickling it would import or call globals that "
        f"safe loading never admits, since a checkpoint that names them can run any code:\n  "
        f"{listing}{more}\nIf you trust this file (you or someone you trust wrote it), load it "
        f"with full unpickling: load_from_checkpoint(trust=True) or load_checkpoint(..., "
        f"trust=True), the --trust-checkpoint flag, or {TRUST_ENVIRONMENT_VARIABLE}=1. "
        "Otherwise move it out of Weights/."
    )


def _split(full: str) -> tuple[str, str]:
    """``module``, ``name`` of a dotted global, preferring a module that is known or loaded."""
    parts = full.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if module in _KNOWN or module in _RENAMED_MODULES or module in sys.modules:
            return module, ".".join(parts[cut:])
    module, _, name = full.rpartition(".")
    return module, name


def safe_unpickler(base: type, path: Path | str, recorded: set[str] | None) -> type:
    """A subclass of the unpickler ``base`` whose ``find_class`` applies the policy."""

    class SafeUnpickler(base):  # type: ignore[misc]  # the unpickler base is chosen by the caller
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) == ("__builtin__", "NoneType"):  # dill's name for type(None)
                return type(None)
            module, name = _python3_name(module, name)
            if (module, name) == ("torch.storage", "_load_from_bytes"):
                return _safe_load_from_bytes(path, recorded)
            if (module, name) == ("dill._dill", "_load_type"):
                return _safe_load_type(path)
            try:
                return resolve_global(module, name, recorded)
            except MissingCodeError as missing:
                raise CheckpointError(
                    f"Checkpoint {path} refers to code that cannot be imported now ({missing})."
                ) from None
            except UnsafeCheckpointError as refused:
                raise refusal(path, [str(refused)]) from None

    return SafeUnpickler


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """The Python 3 name of a global a protocol-2 pickle spells the Python 2 way."""
    import _compat_pickle

    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _safe_load_type(path: Path | str) -> Any:
    """dill names builtin types by name (``_load_type('list')``); only plain data types are
    handed out (never ``FunctionType`` or ``CodeType``, which would build code)."""
    plain = {name: getattr(__import__("builtins"), name) for name in _KNOWN["builtins"]}
    plain["NoneType"] = type(None)

    def load_type(name: str) -> Any:
        if name in plain:
            return plain[name]
        raise refusal(
            path,
            [
                f"dill._dill._load_type({name!r}): only plain data types are "
                "rebuilt from a checkpoint"
            ],
        )

    return load_type


def _safe_load_from_bytes(path: Path | str, recorded: set[str] | None) -> Any:
    """Tensors pickled with plain pickle rebuild through ``torch.storage._load_from_bytes``,
    which calls ``torch.load(weights_only=False)``: rebuild them under the policy instead."""

    def load_from_bytes(data: bytes) -> Any:
        import io

        import torch

        return torch.load(
            io.BytesIO(data),
            weights_only=False,
            pickle_module=pickle_module(path, trust=False, recorded=recorded),
        )

    return load_from_bytes


def renaming_unpickler(base: type) -> type:
    """A subclass of ``base`` (trusted loading) that maps former speedrun module paths."""

    class RenamingUnpickler(base):  # type: ignore[misc]  # the unpickler base is chosen by the caller
        def find_class(self, module: str, name: str) -> Any:
            module, name = _python3_name(module, name)
            return super().find_class(renamed(module), name)

    return RenamingUnpickler


def pickle_module(path: Path | str, *, trust: bool, recorded: set[str] | None) -> Any:
    """A stand-in for the ``pickle`` module, for ``torch.load(pickle_module=...)``: its
    ``Unpickler`` applies the policy (or, with ``trust``, only maps former module paths)."""
    import pickle
    import types

    module = types.ModuleType("speedrun_pickle")
    module.__dict__.update(
        {key: getattr(pickle, key) for key in dir(pickle) if not key.startswith("__")}
    )
    unpickler = (
        renaming_unpickler(pickle.Unpickler)
        if trust
        else safe_unpickler(pickle.Unpickler, path, recorded)
    )
    module.Unpickler = unpickler  # type: ignore[attr-defined]  # a private copy of the pickle module gets the safe unpickler

    def load(file: Any, **kwargs: Any) -> Any:
        return unpickler(file, **kwargs).load()

    module.load = load  # type: ignore[attr-defined]  # a private copy of the pickle module gets the safe load
    return module
