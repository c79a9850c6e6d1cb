"""Asynchronous checkpoint saves: a consistent snapshot in the caller, the durable write behind it.

:class:`AsyncSaver` splits a save in two:

1. **Snapshot, in the calling (training) thread.** The state is pickled *without its tensor
   data*: every torch storage is replaced by a reference, and its bytes are copied into a host
   buffer that the saver keeps and reuses from save to save (CPU storages: one ``memcpy``;
   CUDA storages: page-locked buffers filled by non-blocking device-to-host copies on one side
   stream per device, which the training stream then waits for, so later kernels cannot change
   the parameters before they are copied). NumPy arrays (and other protocol-5 buffers) are
   copied into reusable ``bytearray`` buffers the same way. Everything else (plain attributes,
   the optimizer's hyper-parameters, the random states) is captured by value in the pickle
   itself. So the snapshot holds the state exactly as it was when ``save()`` was called, and
   pickling errors (an open file, a lambda) are raised right there, in the caller.
2. **Write, in a background thread.** The snapshot is unpickled (objects rebuilt around the
   snapshot buffers, no tensor bytes copied) and handed to
   :func:`~speedrun.checkpoint._io.save_checkpoint`: serialise, write to a temp file, fsync,
   rename, fsync the folder, prune old checkpoints. Tensors that came from a GPU are recorded
   under their original device, so the file is the one a synchronous save writes.

Rules
-----
- At most one save in flight: ``save()`` (and :meth:`AsyncSaver.submit`) first waits for the
  previous one. The buffers of one snapshot are therefore all the extra host memory a saver
  ever holds: peak memory is the live state plus one snapshot (at most 2x the state), and the
  buffers stay allocated between saves so that no save pays for fresh pages (or fresh pinned
  memory). :meth:`AsyncSaver.release` frees them.
- A background failure is never lost: it is stored and raised in the calling thread by the next
  :meth:`~AsyncSaver.wait` or :meth:`~AsyncSaver.raise_failure` (``checkpoint()``,
  ``next_step()`` and ``run()``'s clean-up call them), as a :class:`CheckpointError` whose
  ``__cause__`` is the original exception. The write is atomic, so the previous checkpoint stays.
- The writer is a fresh non-daemon thread per save: the interpreter waits for a pending write
  before it exits (and prints a failure that nobody collected), and a ``kill -9`` during the
  write leaves the previous checkpoint loadable, as with synchronous saves.
- Why a thread and not a process: the background work is the file write and fsync, which hold
  no GIL (``torch.save`` releases it while writing storages), plus unpickling and pickling of
  the small tensor-free structure. ``benchmarks/bench_checkpoint.py --async`` measures a writer
  process fed from shared memory beside the thread: it costs the same or more per save and
  needs shared buffers and a second interpreter.

torch and numpy are never imported here: only used when the state holds their objects.
"""

from __future__ import annotations

import atexit
import io
import pickle
import sys
import threading
import weakref
from typing import TYPE_CHECKING

from .._errors import CheckpointError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path
    from typing import Any

__all__ = ["AsyncSaver", "Snapshot", "take_snapshot"]


# ------------------------------------------------------------------------------------------------
# snapshot buffers


class _Buffers:
    """Host buffers kept from one snapshot to the next (matched by position and size)."""

    def __init__(self) -> None:
        self.storages: list[Any] = []  # torch.UntypedStorage, pinned when it holds GPU data
        self.pinned: list[bool] = []
        self.blobs: list[bytearray] = []

    def storage(self, index: int, nbytes: int, pinned: bool, torch: Any) -> Any:
        if index < len(self.storages):
            found = self.storages[index]
            if found.nbytes() == nbytes and self.pinned[index] == pinned:
                return found
            _LOCATIONS.pop(found.data_ptr(), None)
        buffer = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned).untyped_storage()
        if index < len(self.storages):
            self.storages[index], self.pinned[index] = buffer, pinned
        else:
            self.storages.append(buffer)
            self.pinned.append(pinned)
        return buffer

    def blob(self, index: int, data: memoryview) -> bytearray:
        if index < len(self.blobs) and len(self.blobs[index]) == data.nbytes:
            found = self.blobs[index]
            found[:] = data
            return found
        copy = bytearray(data)
        if index < len(self.blobs):
            self.blobs[index] = copy
        else:
            self.blobs.append(copy)
        return copy

    def trim(self, storages: int, blobs: int) -> None:
        for extra in self.storages[storages:]:
            _LOCATIONS.pop(extra.data_ptr(), None)
        del self.storages[storages:], self.pinned[storages:], self.blobs[blobs:]

    def clear(self) -> None:
        self.trim(0, 0)

    def nbytes(self) -> int:
        storage_bytes: int = sum(s.nbytes() for s in self.storages)
        return storage_bytes + sum(len(b) for b in self.blobs)


# Data pointers of snapshot buffers that hold a GPU storage's bytes -> that storage's location
# tag ("cuda:0"): torch.save asks _snapshot_location first, so such buffers are written as the
# GPU storages they copy, and load back onto the GPU, exactly as with a synchronous save.
_LOCATIONS: dict[int, str] = {}
_TAGGER_LOCK = threading.Lock()
_tagger_registered = False


def _snapshot_location(storage: Any) -> str | None:
    if not _LOCATIONS:
        return None
    try:
        return _LOCATIONS.get(storage.data_ptr())
    except Exception:  # not a storage we know: torch's own taggers decide
        return None


def _no_deserializer(storage: Any, location: str) -> None:
    return None


def _register_tagger(torch: Any) -> None:
    global _tagger_registered
    with _TAGGER_LOCK:
        if _tagger_registered:
            return
        registry = torch.serialization._package_registry
        priority = min((entry[0] for entry in registry), default=10) - 1
        torch.serialization.register_package(priority, _snapshot_location, _no_deserializer)
        _tagger_registered = True


# ------------------------------------------------------------------------------------------------
# taking a snapshot (calling thread)


class Snapshot:
    """A state captured by :func:`take_snapshot`: restore it with :meth:`materialize`.

    Holds the tensor-free pickle of the state, the snapshot buffers its storages and
    out-of-band buffers point into, and the CUDA events that mark when the device-to-host copies
    are done.
    """

    __slots__ = ("_blobs", "_events", "_module", "_storages", "_structure", "nbytes")

    def __init__(
        self,
        structure: bytes,
        storages: list[tuple[Any, Any]],
        blobs: list[bytearray],
        events: list[Any],
        module: Any,
    ) -> None:
        self._structure = structure
        self._storages = storages  # (buffer or original storage, dtype; None: untyped)
        self._blobs = blobs
        self._events = events
        self._module = module
        self.nbytes = (
            len(structure) + sum(len(b) for b in blobs) + sum(s.nbytes() for s, _ in storages)
        )

    def wait_for_copies(self) -> None:
        """Block until the device-to-host copies are complete (nothing to do on CPU)."""
        for event in self._events:
            event.synchronize()
        self._events = []

    def materialize(self) -> Any:
        """The captured object, rebuilt around the snapshot buffers (no tensor bytes copied)."""
        self.wait_for_copies()
        storages = self._storages
        torch = sys.modules.get("torch")

        class _Unpickler(self._module.Unpickler):  # type: ignore[misc,name-defined]  # the pickle module is chosen by the caller
            def persistent_load(self, token: Any) -> Any:
                storage, dtype = storages[token]
                if dtype is None:  # an untyped storage in the state itself
                    return storage
                return torch.storage.TypedStorage(  # type: ignore[union-attr]  # torch is imported lazily and may be None to mypy
                    wrap_storage=storage, dtype=dtype, _internal=True
                )

        value = _Unpickler(io.BytesIO(self._structure), buffers=self._blobs).load()
        self._structure = b""  # by-value data (bytes, lists) now lives in ``value`` only
        return value


def take_snapshot(
    value: Any, serializer: str = "torch", buffers: _Buffers | None = None
) -> Snapshot:
    """Capture ``value`` as it is now, copying tensor and array data into ``buffers``.

    ``serializer`` chooses the pickler of the structure (``"dill"`` pickles what dill can;
    ``"torch"`` and ``"pickle"`` use :mod:`pickle`). Raises what that pickler raises for a value
    it cannot pickle.
    """
    buffers = _Buffers() if buffers is None else buffers
    module: Any = pickle
    if serializer == "dill":
        import dill

        module = dill
    torch = sys.modules.get("torch")
    plan = _CopyPlan(buffers, torch)

    class _Pickler(module.Pickler):  # type: ignore[misc]  # the pickle module is chosen by the caller
        def persistent_id(self, obj: Any) -> Any:
            if torch is not None and (
                isinstance(obj, torch.storage.TypedStorage) or torch.is_storage(obj)
            ):
                return plan.add(obj)
            return None

    stream = io.BytesIO()
    _Pickler(stream, protocol=5, buffer_callback=plan.add_blob).dump(value)
    snapshot = Snapshot(stream.getvalue(), plan.storages, plan.blobs, plan.finish(), module)
    buffers.trim(plan.buffer_count, len(plan.blobs))
    return snapshot


class _CopyPlan:
    """Copies each distinct storage once, into the next reusable buffer."""

    def __init__(self, buffers: _Buffers, torch: Any) -> None:
        self.buffers = buffers
        self.torch = torch
        self.keys: dict[int, int] = {}
        self.storages: list[tuple[Any, Any]] = []
        self.blobs: list[bytearray] = []
        self.buffer_count = 0
        self.streams: dict[Any, Any] = {}  # CUDA device -> (side stream, training stream)

    def add(self, obj: Any) -> int:
        torch = self.torch
        if isinstance(obj, torch.storage.TypedStorage):
            untyped, dtype = obj._untyped_storage, obj.dtype
        else:
            untyped, dtype = obj, None
        key = untyped._cdata
        if key in self.keys:
            token = self.keys[key]
            if self.storages[token][1] != dtype:  # as torch.save: one dtype per storage
                raise RuntimeError(
                    "Cannot save multiple tensors or storages that view the same "
                    "data as different types"
                )
            return token
        token = len(self.storages)
        self.keys[key] = token
        self.storages.append((self._copy(untyped), dtype))
        return token

    def _copy(self, source: Any) -> Any:
        torch = self.torch
        nbytes = source.nbytes()
        device = source.device
        if nbytes == 0 or device.type == "meta":
            return source  # no data to copy: kept as it is
        if device.type == "cpu":
            buffer = self.buffers.storage(self.buffer_count, nbytes, False, torch)
            self.buffer_count += 1
            _as_words(torch, buffer).copy_(_as_words(torch, source))
            if _LOCATIONS:  # the buffer may have held another device's bytes last time
                _LOCATIONS.pop(buffer.data_ptr(), None)
            return buffer
        location = torch.serialization.location_tag(source)
        if device.type == "cuda":
            pinned = torch.cuda.is_available()
            buffer = self.buffers.storage(self.buffer_count, nbytes, pinned, torch)
            self.buffer_count += 1
            side, _ = self._streams(device)
            view = _as_words(torch, source)
            with torch.cuda.stream(side):
                _as_words(torch, buffer).copy_(view, non_blocking=True)
            view.record_stream(side)  # the allocator keeps the block until the copy is done
        else:  # another accelerator: a plain (blocking) copy to host memory
            buffer = self.buffers.storage(self.buffer_count, nbytes, False, torch)
            self.buffer_count += 1
            _as_words(torch, buffer).copy_(_as_words(torch, source))
        _LOCATIONS[buffer.data_ptr()] = location
        _register_tagger(torch)
        return buffer

    def _streams(self, device: Any) -> tuple[Any, Any]:
        if device not in self.streams:
            torch = self.torch
            training = torch.cuda.current_stream(device)
            side = _side_stream(torch, device)
            side.wait_stream(training)  # copy what the queued kernels have computed
            self.streams[device] = (side, training)
        streams: tuple[Any, Any] = self.streams[device]
        return streams

    def add_blob(self, buffer: pickle.PickleBuffer) -> None:
        with buffer.raw() as view:
            self.blobs.append(self.buffers.blob(len(self.blobs), view))

    def finish(self) -> list[Any]:
        """Order each training stream after its copies; events that mark the copies done."""
        events = []
        for side, training in self.streams.values():
            training.wait_stream(side)  # later kernels cannot modify what is being copied
            event = self.torch.cuda.Event()
            event.record(side)
            events.append(event)
        return events


_SIDE_STREAMS: dict[Any, Any] = {}


def _side_stream(torch: Any, device: Any) -> Any:
    """One copy stream per device for the process, reused by every snapshot."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _SIDE_STREAMS:
        _SIDE_STREAMS[index] = torch.cuda.Stream(device=index)
    return _SIDE_STREAMS[index]


def _as_words(torch: Any, storage: Any) -> Any:
    """A flat tensor over the whole of an untyped storage (no copy), of the widest integer type
    that divides its size: torch copies 8-byte elements ~10% faster than single bytes, and the
    copy is most of a snapshot's time."""
    nbytes = storage.nbytes()
    for dtype, size in ((torch.int64, 8), (torch.int32, 4)):
        if nbytes % size == 0:
            return torch.empty(0, dtype=dtype, device=storage.device).set_(
                storage, 0, (nbytes // size,)
            )
    return torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage)


# ------------------------------------------------------------------------------------------------
# the background writer


class AsyncSaver:
    """Saves checkpoints in a background thread, one at a time; see the module docstring."""

    def __init__(self) -> None:
        self._buffers = _Buffers()
        self._thread: threading.Thread | None = None
        self._description: str | None = None
        self._failure: tuple[str, BaseException] | None = None
        _SAVERS.add(self)

    # -- state -----------------------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """Whether a background save is still running."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def buffer_bytes(self) -> int:
        """Bytes held by the reusable snapshot buffers."""
        return self._buffers.nbytes()

    def release(self) -> None:
        """Wait for the pending save (raising its failure), then free the snapshot buffers."""
        self.wait()
        self._buffers.clear()

    # -- saving ----------------------------------------------------------------------------------
    def save(
        self,
        directory: str | Path,
        step: int,
        state: Mapping[str, Any],
        *,
        experiment_class: str,
        keep: int | None = None,
        serializer: str | None = None,
    ) -> None:
        """Snapshot ``state`` now and save it as the checkpoint of ``step`` in the background.

        Arguments as :func:`~speedrun.checkpoint._io.save_checkpoint`. Waits for the previous
        save first (and raises its failure). Raises :class:`CheckpointError` at once when the
        state cannot be pickled (naming the attribute); nothing is written then.
        """
        from ._files import _check_keep, _check_step, checkpoint_file_name
        from ._serialize import resolve_serializer

        step = _check_step(step)
        if keep is not None:
            _check_keep(keep)
        chosen = resolve_serializer(serializer)
        self.wait()
        state = dict(state)
        try:
            snapshot = take_snapshot(state, chosen, self._buffers)
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except BaseException as exc:
            from pathlib import Path

            from ._io import _save_failure

            target = Path(directory) / checkpoint_file_name(step)
            raise _save_failure(target, step, state, chosen, exc) from exc
        del state

        def write() -> None:
            from ._io import save_checkpoint

            save_checkpoint(
                directory,
                step,
                snapshot.materialize(),
                experiment_class=experiment_class,
                keep=keep,
                serializer=chosen,
            )

        self._start(f"checkpoint step {step} in {directory}", write)

    def submit(self, description: str, job: Callable[[], Any]) -> None:
        """Run ``job`` (which must only touch data private to it) as the next background save."""
        self.wait()
        self._start(description, job)

    def _start(self, description: str, job: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                _yield_cpu_to_training()
                job()
            except BaseException as exc:  # kept for the training thread
                self._failure = (description, exc)

        self._description = description
        thread = threading.Thread(target=run, name="speedrun-checkpoint", daemon=False)
        self._thread = thread
        thread.start()

    # -- waiting and failures --------------------------------------------------------------------
    def wait(self) -> None:
        """Block until the pending save is committed; raise its failure (once) if it failed."""
        thread = self._thread
        if thread is not None:
            thread.join()
            self._thread = None
        self.raise_failure()

    def raise_failure(self) -> None:
        """Raise the failure of a finished background save, if any (does not wait)."""
        failure = self._failure
        if failure is None:
            return
        self._failure = None
        description, exc = failure
        if isinstance(exc, CheckpointError):
            detail = str(exc)
        else:
            detail = (
                f"{type(exc).__name__}: {exc}. The previous checkpoints are intact "
                "(the write is atomic)."
            )
        raise CheckpointError(
            f"The background save of {description} failed: {detail} (The save ran in the "
            "background because training/checkpoint_async is on or checkpoint(blocking=False) "
            "was used; the original exception is chained below.)"
        ) from exc

    def _report_at_exit(self) -> None:
        if self._failure is None:
            return
        description, exc = self._failure
        self._failure = None
        import traceback

        sys.stderr.write(
            f"speedrun: the background save of {description} failed and nobody waited for it "
            f"(call wait_for_checkpoint(), or use run(), to have it raised):\n"
        )
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


#: How much lower the writer thread's CPU priority is than the training's (Linux ``nice``).
WRITER_NICENESS = 10


def _yield_cpu_to_training() -> None:
    """Lower the calling (writer) thread's CPU priority, on Linux; elsewhere nothing.

    When the training loop keeps every core busy (CPU training, data loading workers), a writer
    at the same priority takes a core from it for the whole write, and a loop whose threads wait
    for each other loses more than that core. At ``nice`` +10 the writer gets the cycles the
    training leaves (a GPU loop leaves most) and about a tenth of a core otherwise; while the
    training waits for the save (the next ``checkpoint()``, exit) the cores are idle and the
    writer runs at full speed.
    """
    if not sys.platform.startswith("linux"):  # elsewhere a thread id is no process id
        return
    import os

    thread = threading.get_native_id()
    try:  # relative to the training's niceness (which the new thread inherited), at most 19
        os.setpriority(
            os.PRIO_PROCESS,
            thread,
            min(19, os.getpriority(os.PRIO_PROCESS, thread) + WRITER_NICENESS),
        )
    except OSError:  # a sandbox that forbids it: the save still happens
        pass


_SAVERS: weakref.WeakSet[AsyncSaver] = weakref.WeakSet()


@atexit.register
def _report_uncollected_failures() -> None:
    # atexit runs after the interpreter joined the non-daemon writer threads.
    for saver in list(_SAVERS):
        saver._report_at_exit()
