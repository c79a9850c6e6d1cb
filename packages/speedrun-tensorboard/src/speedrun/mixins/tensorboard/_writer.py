"""One synchronous, buffered event file per run and process, shared by every writer.

TensorBoard event files are TFRecord files: per record a little-endian uint64 length, its masked
CRC32C, the payload (a serialized ``Event`` protocol buffer) and the payload's masked CRC32C.

:class:`EventFile` appends records to one file through an in-memory buffer, in the calling
thread: no queue, no writer thread, so the order of the file is the order of the calls.
Scalars are encoded directly (``Event{wall_time, step, summary{value{tag, simple_value}}}``,
byte for byte what protobuf writes, the tag's part cached), everything else is serialized by
tensorboardX's own protobuf classes. :func:`open_writer` gives a tensorboardX ``SummaryWriter`` whose
file writers (the run's own and the ``add_scalars`` subfolders) write through such files, so
``writer.add_histogram(...)`` and ``log_scalar`` land in the same file, in call order.

Durability: the buffer reaches the operating system when it holds ``buffer_bytes``, at the
latest ``flush_secs`` after the first unwritten event (a daemon thread checks), and on
:meth:`EventFile.flush`; ``flush(fsync=True)`` also forces it onto the disk.
"""

from __future__ import annotations

import atexit
import math
import os
import socket
import struct
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

__all__ = ["DISCARD", "EventFile", "encode_scalar_event", "event_file_name", "open_writer"]

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_FLOAT = struct.Struct("<f")
_WALL_TIME = struct.Struct("<Bd")  # field 1 (wall_time, fixed64): key 0x09, then the double
_MASK_DELTA = 0xA282EAD8
_U64_MASK = (1 << 64) - 1
_SMALL_STEPS = [b""] + [bytes((0x10, step)) for step in range(1, 128)]  # field 2 (step)

# crc32c (the native package when installed, else tensorboardX's pure-Python one), bound on
# first use so that importing this module stays light.
_crc32c: Any = None


def _load_crc32c() -> Any:
    global _crc32c
    if _crc32c is None:
        from tensorboardX.crc32c import crc32c

        _crc32c = crc32c
    return _crc32c


def _masked_crc(data: bytes) -> int:
    crc: int = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    value &= _U64_MASK  # negative int64 values take 10 bytes, as in protobuf
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _float32(value: float) -> bytes:
    try:
        return _FLOAT.pack(value)
    except OverflowError:  # beyond float32's range: protobuf stores an infinity
        return _FLOAT.pack(math.copysign(math.inf, value))


def _value_field(tag: str) -> bytes:
    """``Summary.value`` entry for ``tag`` up to the 4 bytes of its ``simple_value``."""
    encoded = tag.encode("utf-8")
    value = b"\x0a" + _varint(len(encoded)) + encoded + b"\x15"  # tag (1), simple_value (2)
    return b"\x0a" + _varint(len(value) + 4) + value


def _summary_field(values: bytes) -> bytes:
    return b"\x2a" + _varint(len(values)) + values  # Event.summary is field 5


def encode_scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """The serialized ``Event`` of one scalar, as protobuf (and tensorboardX) would write it."""
    return (
        _WALL_TIME.pack(0x09, wall_time)
        + (b"\x10" + _varint(step) if step else b"")
        + _summary_field(_value_field(tag) + _float32(value))
    )


def event_file_name(directory: str) -> str:
    """A new event file name in ``directory``: ``events.out.tfevents.<s>.<host>.<ns>.<pid>``.

    The nanosecond part keeps two files opened in the same second apart and sorts them in
    opening order (TensorBoard reads the files of a run in name order).
    """
    now = time.time_ns()
    return os.path.join(
        directory,
        f"events.out.tfevents.{now // 10**9:010d}.{socket.gethostname()}.{now:020d}.{os.getpid()}",
    )


class EventFile:
    """An event file written synchronously through a buffer of ``buffer_bytes``.

    A new file starts with the ``file_version`` event; ``append=True`` continues an existing
    file of this process (after a ``close()``) without writing it again.
    """

    def __init__(
        self, path: str, flush_secs: float = 30.0, buffer_bytes: int = 1 << 16, append: bool = False
    ) -> None:
        _load_crc32c()
        self.path = path
        self.flush_secs = flush_secs
        os.makedirs(os.path.dirname(path) or os.curdir, exist_ok=True)
        existed = os.path.exists(path)
        self._file: Any = open(path, "ab", buffering=buffer_bytes)
        self._directory_synced = existed
        self._headers: dict[int, bytes] = {}
        self._scalar_prefixes: dict[str, bytes] = {}
        self._value_fields: dict[str, bytes] = {}
        self._lock = threading.Lock()  # flush/close against the timer thread
        self._pending_since = 0.0  # monotonic time of the oldest unflushed write, 0 if none
        #: True once :meth:`close` ran (a plain attribute: checked on every logged scalar).
        self.closed = False
        if not (append and existed):
            self.write(_file_version_event())
        self._stop = threading.Event()
        reference = weakref.ref(self)
        self._timer = threading.Thread(
            target=_flush_periodically,
            args=(reference, self._stop),
            name=f"speedrun-tensorboard-flush-{os.getpid()}",
            daemon=True,
        )
        self._timer.start()
        atexit.register(_close_at_exit, reference)

    # -- writing -------------------------------------------------------------------------------
    def write(self, payload: bytes) -> None:
        """Append one record holding ``payload`` (a serialized ``Event``)."""
        length = len(payload)
        header = self._headers.get(length)
        if header is None:
            encoded = _U64.pack(length)
            header = encoded + _U32.pack(_masked_crc(encoded))
            if length < 4096:  # the sizes of small events repeat; images' and such do not
                self._headers[length] = header
        crc = _crc32c(payload)
        self._file.write(
            header + payload + _U32.pack((((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF)
        )
        if not self._pending_since:
            self._pending_since = time.monotonic()

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Append the event of one scalar (``value`` a float, ``step`` an int)."""
        prefix = self._scalar_prefixes.get(tag)
        if prefix is None:
            # Event.summary up to the 4 bytes of simple_value (its length counts them)
            prefix = _summary_field(self._value_field(tag) + b"\0\0\0\0")[:-4]
            self._scalar_prefixes[tag] = prefix
        try:
            number = _FLOAT.pack(value)
        except OverflowError:
            number = _float32(value)
        payload = (
            _WALL_TIME.pack(0x09, time.time())
            + (_SMALL_STEPS[step] if 0 <= step < 128 else b"\x10" + _varint(step))
            + prefix
            + number
        )
        length = len(payload)
        header = self._headers.get(length)
        if header is None:
            encoded = _U64.pack(length)
            header = self._headers[length] = encoded + _U32.pack(_masked_crc(encoded))
        crc = _crc32c(payload)
        self._file.write(
            header + payload + _U32.pack((((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF)
        )
        if not self._pending_since:
            self._pending_since = time.monotonic()

    def scalars(self, values: Iterable[tuple[str, float]], step: int) -> None:
        """Append one event holding several scalars."""
        fields = b"".join(self._value_field(tag) + _float32(value) for tag, value in values)
        self.write(
            _WALL_TIME.pack(0x09, time.time())
            + (b"\x10" + _varint(step) if step else b"")
            + _summary_field(fields)
        )

    def _value_field(self, tag: str) -> bytes:
        field = self._value_fields.get(tag)
        if field is None:
            if len(self._value_fields) >= 50_000:  # tags built from data: bound the caches
                self._value_fields.clear()
                self._scalar_prefixes.clear()
            field = self._value_fields[tag] = _value_field(tag)
        return field

    def add_event(self, event: Any) -> None:
        """tensorboardX's ``EventFileWriter.add_event``: append an ``Event`` protocol buffer."""
        if not self.closed:
            self.write(event.SerializeToString())

    # -- flushing ------------------------------------------------------------------------------
    def flush(self, fsync: bool = False) -> None:
        """Hand the buffered events to the operating system; ``fsync`` also to the disk."""
        with self._lock:
            if self.closed:
                return
            self._pending_since = 0.0  # before: a write during the flush sets it again
            self._file.flush()
            if fsync:
                os.fsync(self._file.fileno())
                if not self._directory_synced:  # the new file's directory entry, once
                    _fsync_directory(os.path.dirname(self.path) or os.curdir)
                    self._directory_synced = True

    def _flush_if_due(self) -> None:
        pending = self._pending_since
        if pending and time.monotonic() - pending >= self.flush_secs:
            self.flush()

    def close(self) -> None:
        """Flush, fsync and close the file (a second call does nothing)."""
        if self.closed:
            return
        self.flush(fsync=True)
        with self._lock:
            self.closed = True
            self._stop.set()
            self._file.close()

    # tensorboardX's EventFileWriter interface (used through FileWriter)
    def get_logdir(self) -> str:
        return os.path.dirname(self.path)

    def reopen(self) -> None:  # tensorboardX API; a closed EventFile is replaced, not reopened
        pass


class _Discard:
    """The event file of a process that does not write (ranks other than the main one)."""

    closed = False

    def scalar(self, tag: str, value: float, step: int) -> None:
        pass

    def scalars(self, values: Iterable[tuple[str, float]], step: int) -> None:
        pass


#: Stands for the event file where nothing is written (ranks other than the main one).
DISCARD = _Discard()


def _file_version_event() -> bytes:
    return (
        _WALL_TIME.pack(0x09, time.time())
        + b"\x1a"
        + _varint(len(b"brain.Event:2"))
        + b"brain.Event:2"
    )  # file_version (3)


def _fsync_directory(directory: str) -> None:
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms without directory handles (Windows)
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _flush_periodically(reference: weakref.ref[EventFile], stop: threading.Event) -> None:
    while True:
        events = reference()
        if events is None:
            return
        interval = max(events.flush_secs / 4, 0.05)
        del events
        if stop.wait(interval):
            return
        events = reference()
        if events is None:
            return
        try:
            events._flush_if_due()
        except (OSError, ValueError):  # closed or failing file: the caller's next write says so
            return
        del events


def _close_at_exit(reference: weakref.ref[EventFile]) -> None:
    events = reference()
    if events is not None:
        events.close()


_WRITER_CLASS: type | None = None


def open_writer(
    logdir: str, purge_step: int | None, flush_secs: float, buffer_bytes: int, write_to_disk: bool
) -> Any:
    """A tensorboardX ``SummaryWriter`` on ``logdir`` that writes through :class:`EventFile`."""
    global _WRITER_CLASS
    if _WRITER_CLASS is None:
        _WRITER_CLASS = _make_writer_class()
    return _WRITER_CLASS(logdir, purge_step, flush_secs, buffer_bytes, write_to_disk)


def _make_writer_class() -> type:
    from tensorboardX import SummaryWriter
    from tensorboardX.proto.event_pb2 import Event, SessionLog
    from tensorboardX.summary import scalar as scalar_summary
    from tensorboardX.writer import DummyFileWriter, FileWriter

    class _FileWriter(FileWriter):  # type: ignore[misc]  # tensorboardX is untyped
        """tensorboardX's ``FileWriter`` (``add_summary``, ``add_event``, ...) over an
        :class:`EventFile` instead of its queue and writer thread."""

        def __init__(self, events: EventFile) -> None:  # no FileWriter.__init__: no thread
            self.event_writer = events
            self._default_metadata: dict[str, Any] = {}

        def flush(self, fsync: bool = False) -> None:
            self.event_writer.flush(fsync=fsync)

        def close(self) -> None:
            self.event_writer.close()

    class _Writer(SummaryWriter):  # type: ignore[misc]  # tensorboardX is untyped
        """A tensorboardX ``SummaryWriter`` whose events go through :class:`EventFile`\\ s.

        The run's file is opened with the writer; after ``close()`` the next write appends to
        the same file (one event file per run and process). ``add_scalars`` subfolders get
        their own files, written the same way.
        """

        def __init__(
            self,
            logdir: str,
            purge_step: int | None,
            flush_secs: float,
            buffer_bytes: int,
            write_to_disk: bool,
        ) -> None:
            self.file_writer: Any = None  # set by SummaryWriter.__init__ (_get_file_writer)
            self.all_writers: dict[str, Any] | None = None
            self._speedrun_paths: dict[str, str] = {}
            self._speedrun_buffer_bytes = buffer_bytes
            self._speedrun_purge_step = purge_step
            super().__init__(
                logdir=logdir, purge_step=None, flush_secs=flush_secs, write_to_disk=write_to_disk
            )

        # -- file writers ----------------------------------------------------------------------
        def _speedrun_file_writer(self, logdir: str) -> Any:
            if not self._write_to_disk:
                return DummyFileWriter(logdir=logdir)
            path = self._speedrun_paths.get(logdir)
            append = path is not None
            if path is None:
                path = self._speedrun_paths[logdir] = event_file_name(logdir)
            events = EventFile(
                path,
                flush_secs=self._flush_secs,
                buffer_bytes=self._speedrun_buffer_bytes,
                append=append,
            )
            if self._speedrun_purge_step is not None and not append:
                events.add_event(
                    Event(
                        wall_time=time.time(),
                        step=self._speedrun_purge_step,
                        session_log=SessionLog(status=SessionLog.START),
                    )
                )
            return _FileWriter(events)

        def _get_file_writer(self) -> Any:
            if self.all_writers is None or self.file_writer is None:
                self.file_writer = self._speedrun_file_writer(str(self.logdir))
                self.all_writers = {self.file_writer.get_logdir(): self.file_writer}
            return self.file_writer

        @property
        def events(self) -> EventFile | None:
            """The run's :class:`EventFile` (``None`` in processes that do not write)."""
            writer = self._get_file_writer()
            events = getattr(writer, "event_writer", None)
            return events if isinstance(events, EventFile) else None

        def add_scalars(
            self,
            main_tag: str,
            tag_scalar_dict: dict[str, Any],
            global_step: int | None = None,
            walltime: float | None = None,
        ) -> None:
            """tensorboardX's ``add_scalars``: one subfolder run per key, here each written
            through its own :class:`EventFile` (so checkpoints flush them too)."""
            from tensorboardX.x2num import make_np

            walltime = time.time() if walltime is None else walltime
            root = self._get_file_writer().get_logdir()
            writers = self.all_writers
            assert writers is not None  # set by _get_file_writer
            for tag, value in tag_scalar_dict.items():
                logdir = os.path.join(str(root), main_tag, tag)
                writer = writers.get(logdir)
                if writer is None:
                    writer = writers[logdir] = self._speedrun_file_writer(logdir)
                writer.add_summary(scalar_summary(main_tag, value), global_step, walltime)
                self.scalar_dict.setdefault(logdir, []).append(
                    [walltime, global_step, float(make_np(value).squeeze())]
                )

        # -- resuming and flushing -------------------------------------------------------------
        def purge(self, step: int) -> None:
            """TensorBoard drops this run's events at steps >= ``step`` written before now."""
            self._speedrun_purge_step = step
            for writer in (self.all_writers or {}).values():
                writer.add_event(Event(step=step, session_log=SessionLog(status=SessionLog.START)))

        def flush(self, fsync: bool = False) -> None:
            """Flush every file of this writer; ``fsync=True`` also forces them to disk."""
            for writer in (self.all_writers or {}).values():
                if isinstance(writer, _FileWriter):
                    writer.flush(fsync=fsync)
                else:
                    writer.flush()

    return _Writer
