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
    try:
        __import__(serializer)
    except ImportError:
        raise ImportError(
            f"The {serializer!r} checkpoint serializer needs {serializer}: pip install {serializer}"
        ) from None
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

    class _Probe(module.Pickler):  # type: ignore[misc]
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
        except BaseException as err:  # noqa: BLE001 - any failure names the attribute
            offenders.append((name, err))
    return offenders


# ------------------------------------------------------------------------------------------------
# read


def read_payload(path: Path, map_location: Any) -> tuple[Any, str]:
    """Deserialize the regular file ``path`` with its writer's reader: ``(payload, serializer)``.

    Raises
    ------
    CheckpointError
        The file is unreadable, truncated or corrupt (a ``_CorruptCheckpointError``, which
        ``load_latest_valid`` skips), or refers to code that cannot be imported now.
    ImportError
        The file needs torch or dill and it is not installed.
    """
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise _CorruptCheckpointError(f"cannot read {path}: {exc}") from exc
    if magic == _ZIP_MAGIC:
        return _load_torch(path, map_location), "torch"
    if magic[:1] == bytes([_PICKLE_MAGIC]):
        return _load_pickle_stream(path, map_location)
    raise _CorruptCheckpointError(
        f"{path} is not a speedrun checkpoint: it starts with bytes {magic!r}, expected a "
        "torch.save archive or a pickle stream"
    )


def _load_torch(path: Path, map_location: Any) -> Any:
    try:
        import torch
    except ImportError:
        raise _MissingLibraryError(
            f"Checkpoint {path} was written by torch.save; loading it needs torch: "
            "pip install torch"
        ) from None
    with _unpickling_errors(path):
        return torch.load(os.fspath(path), map_location=map_location, weights_only=False)


def _load_pickle_stream(path: Path, map_location: Any) -> tuple[Any, str]:
    import pickle

    with _unpickling_errors(path), open(path, "rb") as handle:
        first = pickle.load(handle)
        if isinstance(first, dict) and first.get("format") == _HEADER_FORMAT:
            serializer = first.get("serializer")
            if serializer == "dill":
                try:
                    import dill
                except ImportError:
                    raise _MissingLibraryError(
                        f"Checkpoint {path} was written with dill; loading it needs dill: "
                        "pip install dill"
                    ) from None
                return dill.load(handle), "dill"
            if serializer == "pickle":
                return pickle.load(handle), "pickle"
            raise _CorruptCheckpointError(
                f"{path} names an unknown serializer {serializer!r}; expected 'dill' or 'pickle'"
            )
        if isinstance(first, int) and first == _TORCH_LEGACY_MAGIC:  # torch < 1.6 file format
            return _load_torch(path, map_location), "torch"
        return first, "pickle"  # a bare pickle (e.g. written by hand)


@contextlib.contextmanager
def _unpickling_errors(path: Path) -> Iterator[None]:
    """Turn deserialization failures into CheckpointErrors; truncation and corruption skippable."""
    try:
        yield
    except (CheckpointError, _MissingLibraryError, MemoryError):
        raise
    except Exception as exc:
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
