"""Append-only, line-at-a-time text logs that can be rewound to a checkpoint.

Each line goes to the file in one unbuffered ``write`` on an ``O_APPEND`` descriptor, so
``tail -f`` sees complete lines as soon as they are printed and nothing sits in a buffer when the
process dies. The writer remembers the file size and the last bytes it wrote (a
:class:`Mark`); after resuming from a checkpoint, :func:`rewind` cuts the file back to the mark
stored in the checkpoint, so lines printed between that checkpoint and the crash are not
printed twice. Cut lines are kept in ``<file>.discarded`` rather than deleted.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import BinaryIO, NamedTuple

__all__ = ["Mark", "LineFile", "current_mark", "rewind", "DISCARDED_SUFFIX"]

DISCARDED_SUFFIX = ".discarded"
_TAIL_BYTES = 64


class Mark(NamedTuple):
    """Where a log file ended after our last write: its size and its last bytes (picklable)."""

    size: int
    tail: bytes


class LineFile:
    """An open log file that appends whole UTF-8 lines.

    Parameters
    ----------
    path
        The file; its folder must exist. It is created if missing and never truncated here.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._handle: BinaryIO = open(path, "ab", buffering=0)
        self._tail = b""

    def write_line(self, text: str) -> Mark:
        """Append ``text`` and a newline; return the file's new :class:`Mark`."""
        data = (text + "\n").encode("utf-8", errors="backslashreplace")
        view = memoryview(data)
        while view:
            written = self._handle.write(view)
            view = view[written or 0 :]
        self._tail = (self._tail + data)[-_TAIL_BYTES:]
        size = os.fstat(self._handle.fileno()).st_size
        return Mark(size, self._tail)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._handle.closed

    def close(self) -> None:
        """Flush to disk and close (idempotent)."""
        if self._handle.closed:
            return
        with contextlib.suppress(OSError):  # e.g. filesystems without fsync
            os.fsync(self._handle.fileno())
        self._handle.close()


def current_mark(path: str) -> Mark:
    """The :class:`Mark` of ``path`` as it is now (``Mark(0, b"")`` if it does not exist)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            return Mark(size, handle.read())
    except FileNotFoundError:
        return Mark(0, b"")


def rewind(path: str, mark: Mark, *, note: str = "") -> int:
    """Cut ``path`` back to ``mark``, moving the cut bytes to ``path + ".discarded"``.

    Nothing happens unless the file is longer than the mark and its bytes just before
    ``mark.size`` equal ``mark.tail``, i.e. it really is the file the mark was taken from (a
    checkpoint loaded into another experiment, or a log edited by hand, is left alone).

    Parameters
    ----------
    path
        The log file.
    mark
        The :class:`Mark` recorded when the checkpoint was saved.
    note
        Text for the header line written above the cut bytes in the ``.discarded`` file.

    Returns
    -------
    int
        The number of bytes moved, 0 if there was nothing to cut, -1 if the file does not match
        the mark and was left untouched.
    """
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return 0
    if size <= mark.size:
        return 0 if size == mark.size else -1
    with open(path, "r+b") as handle:
        handle.seek(mark.size - len(mark.tail))
        if handle.read(len(mark.tail)) != mark.tail:
            return -1
        extra = handle.read()
        stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        header = f"# speedrun: moved here on resume at {stamp}. {note}".rstrip() + "\n"
        with open(path + DISCARDED_SUFFIX, "ab") as discarded:
            discarded.write(header.encode("utf-8") + extra)
            if not extra.endswith(b"\n"):
                discarded.write(b"\n")
            discarded.flush()
            os.fsync(discarded.fileno())
        handle.truncate(mark.size)
        handle.flush()
        os.fsync(handle.fileno())
    return len(extra)
