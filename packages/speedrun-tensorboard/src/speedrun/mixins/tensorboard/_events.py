"""Reading scalars back from TensorBoard event files (for ``dump_logs_to_json``).

Event files are TFRecord files of ``Event`` protocol buffers: per record a little-endian
uint64 length, its masked CRC32C, the payload and the payload's masked CRC32C. The payloads are
parsed with tensorboardX's own ``Event`` class and the checksums computed with tensorboardX's
CRC32C (the ``crc32c`` package when installed). Like TensorBoard, a ``SessionLog.START`` event at step ``T`` (written by a writer
opened with ``purge_step=T`` after a resume) discards previously read events at steps ``>= T``.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["event_files", "iter_events", "read_scalars"]

_HEADER = struct.Struct("<QI")
_CRC = struct.Struct("<I")


def _masked_crc32c(data: bytes) -> int:
    from tensorboardX.crc32c import crc32c  # the crc32c package when installed

    crc = int(crc32c(data))
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _records(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while True:
            header = handle.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return  # end of file, or a record still being written
            length, length_crc = _HEADER.unpack(header)
            if _masked_crc32c(header[:8]) != length_crc:
                warnings.warn(
                    f"{path}: corrupt record header at byte {handle.tell() - 12}; "
                    f"ignoring the rest of this file",
                    stacklevel=4,
                )
                return
            payload = handle.read(length)
            footer = handle.read(_CRC.size)
            if len(payload) < length or len(footer) < _CRC.size:
                return  # truncated tail: the writer has not finished this record
            if _masked_crc32c(payload) != _CRC.unpack(footer)[0]:
                warnings.warn(
                    f"{path}: corrupt record at byte {handle.tell() - length - 16}; "
                    f"ignoring the rest of this file",
                    stacklevel=4,
                )
                return
            yield payload


def iter_events(path: str) -> Iterator[Any]:
    """The ``Event`` protocol buffers stored in one event file, in order."""
    from tensorboardX.proto.event_pb2 import Event

    for payload in _records(path):
        yield Event.FromString(payload)


def event_files(directory: str) -> list[str]:
    """The event files directly in ``directory``, in the order TensorBoard reads them."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(
        os.path.join(directory, name)
        for name in names
        if "tfevents" in name and os.path.isfile(os.path.join(directory, name))
    )


def _read_run(directory: str) -> dict[str, list[list[float]]]:
    from tensorboardX.proto.event_pb2 import SessionLog

    scalars: dict[str, list[list[float]]] = {}
    for path in event_files(directory):
        for event in iter_events(path):
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                for tag, points in list(scalars.items()):
                    kept = [point for point in points if point[1] < event.step]
                    if kept:
                        scalars[tag] = kept
                    else:
                        del scalars[tag]
            if event.HasField("summary"):
                for value in event.summary.value:
                    if value.HasField("simple_value"):
                        scalars.setdefault(value.tag, []).append(
                            [event.wall_time, event.step, value.simple_value]
                        )
    return scalars


def read_scalars(log_directory: str) -> dict[str, list[list[float]]]:
    """Every scalar TensorBoard would show for ``log_directory``.

    Returns ``{tag: [[wall_time, step, value], ...]}``. Runs in subfolders (tensorboardX's
    ``add_scalars`` writes one per curve) are included with the subfolder as tag prefix
    (``'sub/folder/tag'``).
    """
    result: dict[str, list[list[float]]] = {}
    for root, folders, _ in os.walk(log_directory):
        folders.sort()
        relative = os.path.relpath(root, log_directory)
        prefix = "" if relative == os.curdir else relative.replace(os.sep, "/") + "/"
        for tag, points in _read_run(root).items():
            result[prefix + tag] = points
    return result
