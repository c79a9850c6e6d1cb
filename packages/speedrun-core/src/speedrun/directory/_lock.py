"""One live writer per experiment directory.

The lock is an advisory ``flock`` on ``<directory>/.speedrun.lock``. The kernel frees it when
the holding process exits for any reason (crash, ``SIGKILL``, node reboot), so a dead run never
blocks the next one. The file also carries a small JSON note about the holder (PID, host, start
time, command line) that is only used to write helpful messages.

This module targets Linux and macOS (``fcntl``); Windows is not supported.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import time
import warnings

# Kept off the start-up path: pathlib, json and typing are imported only where they are used.
from typing import TYPE_CHECKING

from .._errors import ExperimentDirectoryError, LockError

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType
    from typing import Any

    PathLike = str | os.PathLike[str]

__all__ = ["LOCK_NAME", "WriterLock", "is_locked", "read_lock_holder"]

LOCK_NAME = ".speedrun.lock"
"""Name of the lock file inside an experiment directory."""

# A probe (``is_locked``, ``read_lock_holder``, a purge) holds the lock for a few microseconds;
# an ``acquire`` that collides with one retries for this long before it reports a conflict.
_CONFLICT_GRACE_SECONDS = 0.2
_RETRY_INTERVAL_SECONDS = 0.01
_MAX_INFO_BYTES = 64 * 1024
_IDENTITY_RETRIES = 50

_BUSY_ERRNOS = frozenset({errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES})


def _clean_path(path: PathLike) -> str:
    """``path`` spelled as ``str(pathlib.Path(path))`` does, without importing pathlib.

    ``a//b/./c/`` becomes ``a/b/c`` and ``""`` becomes ``"."``; ``..`` is kept (POSIX rules).
    """
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"expected a str or os.PathLike path, got {type(text).__name__} {text!r}")
    if text.startswith("//") and not text.startswith("///"):
        root = "//"
    else:
        root = "/" if text.startswith("/") else ""
    return root + "/".join(part for part in text.split("/") if part and part != ".") or "."


def _hostname() -> str:
    """This machine's host name (``socket.gethostname()`` without importing socket)."""
    return os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")


def _now_iso() -> str:
    from datetime import datetime

    return datetime.now().astimezone().isoformat(timespec="seconds")


def _lock_path(directory: PathLike) -> str:
    return os.path.join(_clean_path(directory), LOCK_NAME)


def _try_flock(fd: int) -> bool:
    """Take an exclusive, non-blocking ``flock`` on ``fd``; False when someone else holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in _BUSY_ERRNOS:
            return False
        raise
    return True


def _read_info(fd: int) -> dict[str, Any] | None:
    """Read the holder note from an open lock file; None when it is empty or unreadable."""
    try:
        raw = os.pread(fd, _MAX_INFO_BYTES, 0)
    except OSError:
        return None
    if not raw.strip():
        return None
    import json

    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _read_info_of_live_holder(fd: int) -> dict[str, Any]:
    """Read the note of a holder that may have just taken the lock and not yet written it."""
    deadline = time.monotonic() + _CONFLICT_GRACE_SECONDS
    while True:
        info = _read_info(fd)
        if info is not None or time.monotonic() >= deadline:
            return info or {}
        time.sleep(_RETRY_INTERVAL_SECONDS)


def _open_lock_file(path: str, *, create: bool, write: bool = True) -> int | None:
    """Open the lock file (never following a symlink); None if it is missing and not created."""
    flags = (os.O_RDWR if write else os.O_RDONLY) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NOFOLLOW", 0)
    if create:
        flags |= os.O_CREAT
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        if create:
            raise
        return None


def _still_at_path(fd: int, path: str) -> bool:
    """Whether the open lock file ``fd`` is still the file at ``path`` (not unlinked or replaced).

    A purge renames and deletes the folder holding the lock file: a process that opened the old
    file and took its ``flock`` after the purge let go would otherwise hold a lock nobody else
    can see. Checked after every successful ``flock``.
    """
    try:
        held = os.fstat(fd)
        current = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return held.st_nlink > 0 and (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)


# Lock files this process holds, closed in a forked child (os.register_at_fork): the child of a
# run (a multiprocessing worker) must not keep the run's lock alive after the run dies.
_HELD_FDS: set[int] = set()


def _close_in_forked_child() -> None:
    for fd in list(_HELD_FDS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_forked_child)


class _FlockRefused(OSError):
    """The file system refused ``flock`` itself (not a busy lock)."""


def _open_and_flock(
    path: str, *, create: bool, write: bool = True, grace: bool = True
) -> tuple[int | None, bool]:
    """Open the lock file at ``path`` and take its lock: ``(fd, True)``, or ``(fd, False)`` busy.

    Retries when the file it locked was unlinked or replaced meanwhile (see
    :func:`_still_at_path`), so the lock taken is always the one at ``path``. ``(None, False)``
    when the file is missing and ``create`` is False. ``grace``: retry a busy lock briefly (a
    probe may hold it for microseconds); a probe itself tries once. Raises OSError as
    ``os.open``/``flock`` do.
    """
    for _ in range(_IDENTITY_RETRIES):
        fd = _open_lock_file(path, create=create, write=write)
        if fd is None:
            return None, False
        try:
            taken = _flock_with_grace(fd) if grace else _try_flock(fd)
        except OSError as error:
            os.close(fd)
            raise _FlockRefused(error.errno, error.strerror) from error
        if not taken:
            if _still_at_path(fd, path):
                return fd, False
            os.close(fd)  # we waited on a file that is gone: look again
            continue
        if _still_at_path(fd, path):
            return fd, True
        os.close(fd)  # locked a file a purge had removed: try the one now at the path
    raise OSError(errno.EAGAIN, f"the lock file {path} kept being replaced while locking it")


def _flock_with_grace(fd: int) -> bool:
    """Take the lock, retrying briefly so that a concurrent probe does not look like a holder."""
    deadline = time.monotonic() + _CONFLICT_GRACE_SECONDS
    while not _try_flock(fd):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_RETRY_INTERVAL_SECONDS)
    return True


def _describe_holder(info: dict[str, Any], *, mark_self: bool = True) -> str:
    """One line about a lock holder, for messages: ``process 12 on host gpu01 (started ...)``."""
    if not info:
        return "a process that has not written its details yet"
    pid = info.get("pid", "?")
    host = info.get("host", "?")
    text = f"process {pid} on host {host}"
    extras = []
    if info.get("started"):
        extras.append(f"started {info['started']}")
    argv = info.get("argv")
    if isinstance(argv, list) and argv:
        command = " ".join(str(part) for part in argv)
        if len(command) > 200:
            command = command[:197] + "..."
        extras.append(f"command: {command}")
    if extras:
        text += " (" + ", ".join(extras) + ")"
    if mark_self and pid == os.getpid() and host == _hostname():
        text += " [this process]"
    return text


def _lock_unsupported(path: str, error: OSError) -> ExperimentDirectoryError:
    return ExperimentDirectoryError(
        f"Cannot lock {path}: the file system refused flock ({error.strerror or error}). "
        "Expected a local or NFS file system that supports advisory locks. "
        "Fix: put the experiment directory on a file system that supports flock."
    )


class WriterLock:
    """Exclusive writer lock of one experiment directory.

    Only one live ``WriterLock`` can hold a directory at a time, across processes and hosts
    sharing the file system, and also within one process (two objects on the same directory
    conflict like two processes). The lock is freed by :meth:`release`, by leaving the ``with``
    block, when the object is garbage collected, and by the kernel when the process dies.

    Parameters
    ----------
    directory
        The experiment directory; it must exist. The lock file is
        ``<directory>/.speedrun.lock`` and is never deleted.

    Examples
    --------
    >>> with WriterLock("experiments/RUN-0"):  # doctest: +SKIP
    ...     train()
    """

    def __init__(self, directory: PathLike) -> None:
        self._directory = _clean_path(directory)
        self._path = os.path.join(self._directory, LOCK_NAME)
        self.took_over_from: dict[str, Any] | None = None
        """Note of a previous holder that died without releasing the lock, if any."""
        self.holder_info: dict[str, Any] | None = None
        """The note this object wrote while it holds the lock."""
        self._fd: int | None = None
        self._owner_pid: int | None = None

    @property
    def directory(self) -> Path:
        """The experiment directory, as a :class:`~pathlib.Path`."""
        from pathlib import Path

        return Path(self._directory)

    @property
    def path(self) -> Path:
        """The lock file ``<directory>/.speedrun.lock``, as a :class:`~pathlib.Path`."""
        from pathlib import Path

        return Path(self._path)

    @property
    def held(self) -> bool:
        """Whether this object currently holds the lock."""
        return self._fd is not None and self._owner_pid == os.getpid()

    def acquire(self) -> WriterLock:
        """Take the lock, or raise :class:`~speedrun.LockError` at once if a live process holds it.

        Acquiring a lock this object already holds does nothing.

        Returns
        -------
        WriterLock
            ``self``, for chaining.

        Raises
        ------
        LockError
            Another live process (or another ``WriterLock`` of this process) holds the lock.
        ExperimentDirectoryError
            The directory does not exist, or its file system does not support locks.
        """
        if self.held:
            return self
        if not os.path.isdir(self._directory):
            found = "it is not a folder" if os.path.exists(self._directory) else "it does not exist"
            raise ExperimentDirectoryError(
                f"Cannot lock experiment directory {self._directory}: expected an existing "
                f"folder, but {found}. "
                "Fix: create it first with prepare_experiment_directory()."
            )
        try:
            fd, taken = _open_and_flock(self._path, create=True)
        except OSError as error:
            if isinstance(error, _FlockRefused):
                raise _lock_unsupported(self._path, error) from error
            raise ExperimentDirectoryError(
                f"Cannot open the lock file {self._path}: {error.strerror or error}. "
                "Expected a writable experiment directory holding a regular lock file. "
                "Fix: check the folder's permissions, or remove the lock file if it is a symlink."
            ) from error
        assert fd is not None
        if not taken:
            holder = _read_info_of_live_holder(fd)
            os.close(fd)
            if holder.get("pid") == os.getpid() and holder.get("host") == _hostname():
                fix = (
                    "Fix: release the other WriterLock of this directory first, "
                    "or use another experiment directory."
                )
            else:
                kill_hint = ""
                if holder.get("pid"):
                    kill_hint = f" (kill {holder['pid']} on {holder.get('host', '?')})"
                fix = (
                    f"Fix: wait for that run to finish, stop it{kill_hint}, "
                    "or use another experiment directory."
                )
            conflict = LockError(
                f"Experiment directory {self._directory} is in use: "
                f"{_describe_holder(holder)} holds its writer lock ({self._path}). "
                f"Only one run may write to an experiment directory at a time. {fix}"
            )
            conflict.holder = holder  # type: ignore[attr-defined]  # the holder rides on the error for callers that report it
            raise conflict

        previous = _read_info(fd)
        info = {
            "pid": os.getpid(),
            "host": _hostname(),
            "started": _now_iso(),
            "argv": list(sys.argv),
        }
        import json

        # Not fsynced: the holder's description only serves messages, the lock itself is the
        # flock (released by the kernel when the holder dies), and after a power loss an empty
        # description just means "holder unknown".
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info, indent=2) + "\n").encode("utf-8"), 0)
        except OSError as error:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise ExperimentDirectoryError(
                f"Cannot write the lock file {self._path}: {error.strerror or error}. "
                "Fix: check the free space and permissions of the experiment directory."
            ) from error

        self._fd = fd
        _HELD_FDS.add(fd)
        self._owner_pid = os.getpid()
        self.holder_info = info
        self.took_over_from = previous
        if previous is not None:
            warnings.warn(
                f"Took over the writer lock of {self._directory} from "
                f"{_describe_holder(previous, mark_self=False)}, which did not "
                "release it: that run has exited or crashed. Check that its outputs are complete.",
                RuntimeWarning,
                stacklevel=2,
            )
        return self

    def release(self) -> None:
        """Release the lock and close the lock file (the file itself stays).

        Releasing a lock that is not held does nothing. A forked child never holds its parent's
        lock: the child's copy of the lock file is closed right after ``fork()``, so a worker
        process cannot keep a dead run's directory locked.
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._owner_pid != os.getpid():  # a forked child: its copy was closed at fork
            self._owner_pid = None
            self.holder_info = None
            return
        _HELD_FDS.discard(fd)
        try:
            if self._owner_pid == os.getpid():
                # Clear the note first: a note in a free lock file means "its holder died".
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._owner_pid = None
            self.holder_info = None
            os.close(fd)

    def _hand_over(self, fd: int, info: dict[str, Any]) -> None:
        """Hold the already locked ``fd`` instead of the current file, then let the old one go.

        Used by the purge that re-creates this directory under the lock: ``fd`` is the lock file
        of the new folder, now at this lock's path; the old file (in the folder being deleted)
        is closed, which frees its lock only after the new one is in place.
        """
        old, self._fd = self._fd, fd
        _HELD_FDS.add(fd)
        self._owner_pid = os.getpid()
        self.holder_info = info
        if old is not None:
            _HELD_FDS.discard(old)
            os.close(old)

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()

    def __repr__(self) -> str:
        return f"WriterLock({self._directory!r}, held={self.held})"


def _probe(directory: PathLike) -> tuple[bool, dict[str, Any] | None]:
    """Return ``(locked, holder_note)`` without creating anything and without keeping the lock."""
    path = _lock_path(directory)
    try:
        fd, free = _open_and_flock(path, create=False, write=False, grace=False)
    except OSError as error:
        if isinstance(error, _FlockRefused):
            raise _lock_unsupported(path, error) from error
        # A lock file nobody can open (permissions, a symlink) cannot be held through
        # WriterLock either.
        return False, None
    if fd is None:
        return False, None
    try:
        if free:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False, None
        return True, _read_info_of_live_holder(fd)
    finally:
        os.close(fd)


def _take_for_removal(directory: PathLike) -> tuple[int | None, dict[str, Any] | None]:
    """Lock ``directory`` for deleting it: ``(fd, None)`` when taken, ``(None, holder)`` if busy.

    The caller keeps ``fd`` open (and so the lock held) until the directory is gone, then
    closes it. No note is written: the file is about to be deleted.
    """
    path = _lock_path(directory)
    try:
        fd, taken = _open_and_flock(path, create=True)
    except OSError as error:
        if isinstance(error, _FlockRefused):
            raise _lock_unsupported(path, error) from error
        raise ExperimentDirectoryError(
            f"Cannot open the lock file {path}: {error.strerror or error}. "
            "Fix: check the folder's permissions, or remove the lock file if it is a symlink."
        ) from error
    assert fd is not None
    if taken:
        return fd, None
    try:
        return None, _read_info_of_live_holder(fd)
    finally:
        os.close(fd)


def read_lock_holder(directory: PathLike) -> dict[str, Any] | None:
    """The note of the live process holding ``directory``'s writer lock, or None when free.

    Parameters
    ----------
    directory
        An experiment directory (need not exist).

    Returns
    -------
    dict or None
        ``{"pid": ..., "host": ..., "started": ..., "argv": [...]}`` of the holder (empty if
        the holder has not written its note yet), or None when nobody holds the lock.
    """
    locked, info = _probe(directory)
    return (info or {}) if locked else None


def is_locked(directory: PathLike) -> bool:
    """Whether a live process holds ``directory``'s writer lock (False if the folder is missing)."""
    return _probe(directory)[0]
