"""Checkpoint serializers: write with torch, dill or pickle; read back with the writer's reader.

A torch file is torch's zip archive (or its pre-1.6 pickle format). A dill or pickle file is a
pickle stream that starts with a tiny plain-pickle header naming the serializer, followed by the
payload; a bare pickle (written by hand, or by the original speedrun) loads too. So the format
is detected from the file itself, never from its name.

pickle, torch and dill are imported by the functions that use them, so importing this module
costs nothing at start-up.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

from .._errors import CheckpointError
from .._require import require
from ._files import (
    CHECKPOINT_VERSION,
    SERIALIZERS,
    _CorruptCheckpointError,
    _MissingLibraryError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import IO, Any

__all__ = ["dump", "find_unpicklable", "read_payload", "resolve_serializer"]

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = 0x80  # PROTO opcode: every pickle of protocol >= 2 starts with it
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first object of torch's pre-1.6 format
_HEADER_FORMAT = "speedrun-checkpoint-header"


# ------------------------------------------------------------------------------------------------
# write


def resolve_serializer(serializer: str | None) -> str:
    """The serializer to use: ``serializer`` itself (checked), or the best one installed."""
    if serializer is None or serializer == "auto":
        for name in SERIALIZERS:
            try:
                __import__(name)
            except ImportError:
                continue
            return name
        return "pickle"  # pragma: no cover - pickle always imports
    if serializer not in SERIALIZERS:
        raise CheckpointError(
            f"Expected serializer to be one of {', '.join(SERIALIZERS)} (or None for automatic), "
            f"got {serializer!r}."
        )
    require(
        serializer,
        feature=f"The {serializer!r} checkpoint serializer",
        install=f"pip install {serializer}",
    )
    return serializer


def dump(envelope: dict[str, Any], handle: IO[bytes], serializer: str) -> None:
    """Write ``envelope`` to the open binary file ``handle`` with ``serializer``."""
    if serializer == "torch":
        import torch

        torch.save(envelope, handle)
        return
    import pickle

    # A pickle stream: first a tiny header (plain pickle) naming the serializer, then the payload.
    pickle.dump(
        {"format": _HEADER_FORMAT, "version": CHECKPOINT_VERSION, "serializer": serializer},
        handle,
        protocol=2,
    )
    if serializer == "dill":
        import dill

        dill.dump(envelope, handle, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        pickle.dump(envelope, handle, protocol=pickle.HIGHEST_PROTOCOL)


class _NullSink:
    def write(self, data: Any) -> int:
        return len(memoryview(data))


def find_unpicklable(state: dict[str, Any], serializer: str) -> list[tuple[str, BaseException]]:
    """Try each top-level entry on its own (failure path only; tensor bytes are not copied)."""
    import pickle

    module: Any = pickle
    if serializer == "dill":
        import dill

        module = dill
    torch = sys.modules.get("torch")

    class _Probe(module.Pickler):  # type: ignore[misc]  # the pickle module is chosen by the caller
        def persistent_id(self, obj: Any) -> Any:
            if torch is not None and (
                isinstance(obj, torch.storage.TypedStorage) or torch.is_storage(obj)
            ):
                return "storage"
            return None

    offenders = []
    for name, value in state.items():
        try:
            _Probe(_NullSink(), protocol=5, buffer_callback=lambda _buffer: None).dump(value)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:
            offenders.append((name, err))
    return offenders


# ------------------------------------------------------------------------------------------------
# read


def read_payload(
    path: Path, map_location: Any, *, trust: bool = False, recorded: set[str] | None = None
) -> tuple[Any, str]:
    """Deserialize the regular file ``path`` with its writer's reader: ``(payload, serializer)``.

    Safe by default (see :mod:`speedrun.checkpoint._safe`): only globals the policy admits are
    imported or called; ``trust=True`` unpickles anything. ``recorded``: the globals the run's
    own save recorded for this file (None: not known).

    Raises
    ------
    CheckpointError
        The file is truncated or corrupt (a ``_CorruptCheckpointError``, which
        ``load_latest_valid`` skips); it cannot be read (permissions, I/O error: not skipped);
        it names a global safe loading refuses (``UnsafeCheckpointError``); or it refers to
        code that cannot be imported now.
    ImportError
        The file needs torch or dill and it is not installed.
    """
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if magic == _ZIP_MAGIC:
        return _load_torch(path, map_location, trust, recorded), "torch"
    if magic[:1] == bytes([_PICKLE_MAGIC]):
        return _load_pickle_stream(path, map_location, trust, recorded)
    if len(magic) < 4:
        raise _CorruptCheckpointError(f"{path} is truncated ({len(magic)} bytes)")
    raise _CorruptCheckpointError(
        f"{path} is not a speedrun checkpoint: it starts with bytes {magic!r}, expected a "
        "torch.save archive or a pickle stream"
    )


def _unreadable(path: Path, exc: OSError) -> CheckpointError:
    """A file that could not be read is not a corrupt one: stop, do not skip or overwrite it.

    Only errors that say nothing about the file's content stop (permissions, I/O errors, a
    stale or unreachable network file system); a symlink loop or a missing target is a broken
    entry and skipped like a corrupt file.
    """
    import errno

    code = errno.errorcode.get(exc.errno or 0, "error")
    stopping = {
        errno.EACCES,
        errno.EPERM,
        errno.EIO,
        errno.ESTALE,
        errno.ETIMEDOUT,
        errno.EAGAIN,
        errno.EBUSY,
        errno.ENOMEM,
        errno.ENXIO,
        errno.EHOSTDOWN,
        errno.ECONNRESET,
        errno.ENOLINK,
        errno.EREMOTEIO,
    }
    if exc.errno not in stopping:
        return _CorruptCheckpointError(f"cannot read {path}: {exc.strerror or exc} ({code})")
    return CheckpointError(
        f"Cannot read checkpoint {path}: {exc.strerror or exc} ({code}). It was not skipped: "
        "only a file that was read and found truncated or corrupt is, and resuming from an "
        "older checkpoint would later overwrite this one. Fix the file's permissions or the "
        "storage (e.g. a flaky network file system), then start again; or move the file out of "
        "Weights/ to resume from the checkpoint before it."
    )


def _load_torch(path: Path, map_location: Any, trust: bool, recorded: set[str] | None) -> Any:
    torch = require(
        "torch",
        feature=f"Checkpoint {path}, written by torch.save,",
        install="pip install torch",
        error_type=_MissingLibraryError,
    )
    from ._safe import pickle_module

    # weights_only=False only hands unpickling to our pickle module, whose Unpickler admits
    # the globals of the policy alone (full unpickling only with ``trust``).
    with _unpickling_errors(path):
        return torch.load(
            os.fspath(path),
            map_location=map_location,
            weights_only=False,
            pickle_module=pickle_module(path, trust=trust, recorded=recorded),
        )


def _load_pickle_stream(
    path: Path, map_location: Any, trust: bool, recorded: set[str] | None
) -> tuple[Any, str]:
    import pickle

    from ._safe import renaming_unpickler, safe_unpickler

    def reader(base: type) -> type:
        return renaming_unpickler(base) if trust else safe_unpickler(base, path, recorded)

    with _unpickling_errors(path), open(path, "rb") as handle:
        first = reader(pickle.Unpickler)(handle).load()
        if isinstance(first, dict) and first.get("format") == _HEADER_FORMAT:
            serializer = first.get("serializer")
            if serializer == "dill":
                dill = require(
                    "dill",
                    feature=f"Checkpoint {path}, written with dill,",
                    install="pip install dill",
                    error_type=_MissingLibraryError,
                )
                return reader(dill.Unpickler)(handle).load(), "dill"
            if serializer == "pickle":
                return reader(pickle.Unpickler)(handle).load(), "pickle"
            raise _CorruptCheckpointError(
                f"{path} names an unknown serializer {serializer!r}; expected 'dill' or 'pickle'"
            )
        if isinstance(first, int) and first == _TORCH_LEGACY_MAGIC:  # torch < 1.6 file format
            return _load_torch(path, map_location, trust, recorded), "torch"
        return first, "pickle"  # a bare pickle (e.g. written by hand)


def _os_error_in(exc: BaseException) -> OSError | None:
    """An OSError with an errno in ``exc``'s chain (torch wraps them in RuntimeErrors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def _unpickling_errors(path: Path) -> Iterator[None]:
    """Turn deserialization failures into CheckpointErrors; truncation and corruption skippable."""
    try:
        yield
    except (CheckpointError, _MissingLibraryError, MemoryError):
        raise
    except Exception as exc:
        disk = _os_error_in(exc)
        if disk is not None:
            raise _unreadable(path, disk) from exc
        if isinstance(exc, ImportError) or (
            isinstance(exc, AttributeError) and "Can't get attribute" in str(exc)
        ):
            raise CheckpointError(
                f"Checkpoint {path} refers to code that cannot be imported now "
                f"({type(exc).__name__}: {exc}). Install the missing package or restore the "
                "renamed module or class, then load again."
            ) from exc
        raise _CorruptCheckpointError(
            f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc
