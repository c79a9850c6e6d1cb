"""Durable file writes: temp file in the same folder, flush, fsync, ``os.replace``, fsync folder."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import IO, Any

    PathLike = str | os.PathLike[str]

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "fsync_directory",
    "keep_previous_version",
    "replace_keeping_previous",
]


def fsync_directory(path: PathLike) -> None:
    """Flush a folder's entry table to disk, so a rename inside it survives a power loss."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", *, durable: bool = True) -> Iterator[IO[Any]]:
    """Open a temp file next to ``path``; on success it replaces ``path`` atomically.

    Readers see either the old file or the complete new one, never a partial write. On an
    exception, the temp file is removed and ``path`` is left exactly as it was.
    ``durable=True`` fsyncs the file before the rename and the folder after it.
    """
    if "w" not in mode:
        raise ValueError(f"atomic_open writes whole files: expected a 'w' mode, got {mode!r}")
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    fd, tmp = _create_temp(folder, os.path.basename(target))
    try:
        encoding = None if "b" in mode else "utf-8"
        # open() over our descriptor, so that ``handle.name`` is the temp file's path
        with open(tmp, mode, encoding=encoding, opener=lambda _path, _flags: fd) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_directory(folder)


def _create_temp(folder: str, name: str) -> tuple[int, str]:
    """Create ``.<name>.<random>.tmp`` exclusively, with the mode a plain ``open()`` gives."""
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666
            ), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
    raise FileExistsError(f"could not create a temporary file for {name} in {folder}")


def atomic_write_bytes(path: PathLike, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb", durable=durable) as handle:
        handle.write(data)


def atomic_write_text(path: PathLike, text: str, *, durable: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w", durable=durable) as handle:
        handle.write(text)


def keep_previous_version(path: PathLike, *, copy: bool = False) -> str | None:
    """Move (or with ``copy=True`` link or copy) ``path`` to ``previous/<stem>.<mtime><ext>``.

    Used before a file is replaced by a different version, so nothing the user had is lost.
    With ``copy=True`` the file itself stays in place (a hard link, or a durable copy where the
    file system has no links): replace it afterwards with an atomic write, and no instant is
    without a complete file at ``path``. Returns the new path, or None when there is no file
    at ``path``.
    """
    import time

    source = os.fspath(path)
    if not os.path.isfile(source):
        return None
    previous = os.path.join(os.path.dirname(source), "previous")
    os.makedirs(previous, exist_ok=True)
    stem, extension = os.path.splitext(os.path.basename(source))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(os.path.getmtime(source)))
    target = os.path.join(previous, f"{stem}.{stamp}{extension}")
    counter = 1
    while os.path.exists(target):
        target = os.path.join(previous, f"{stem}.{stamp}-{counter}{extension}")
        counter += 1
    if not copy:
        os.replace(source, target)
        return target
    try:
        os.link(source, target)
    except OSError:
        import shutil

        with open(source, "rb") as handle:
            data = handle.read()
        atomic_write_bytes(target, data)
        shutil.copystat(source, target)
    fsync_directory(previous)
    return target


def replace_keeping_previous(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically, keeping a different old version in ``previous/``.

    The old version is linked (or copied) into ``previous/`` first and the file is then
    replaced in one atomic step, so a ``kill -9`` or a full disk at any instant leaves a
    complete configuration at ``path`` (the old one or the new one).

    Raises
    ------
    ExperimentDirectoryError
        The disk refused the write (full, read-only, permissions); ``path`` is unchanged.
    """
    from .._errors import ExperimentDirectoryError

    target = os.fspath(path)
    try:
        with open(target, encoding="utf-8") as handle:
            existing: str | None = handle.read()
    except FileNotFoundError:
        existing = None
    except (OSError, UnicodeDecodeError):
        existing = ""  # unreadable as text: keep a copy of it all the same
    if existing == text:
        return
    try:
        if existing is not None:
            keep_previous_version(target, copy=True)
        atomic_write_text(target, text)
    except OSError as error:
        import errno

        hint = (
            "free some disk space"
            if error.errno in (errno.ENOSPC, errno.EDQUOT)
            else "check the folder's permissions and free space"
        )
        raise ExperimentDirectoryError(
            f"Cannot write {target}: {error.strerror or error}. The file was left as it was "
            f"({'the previous version is intact' if existing is not None else 'no file'}); "
            f"nothing was lost. Fix: {hint}, then start again."
        ) from error
