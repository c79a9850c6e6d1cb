"""Deleting an experiment directory safely: ``--purge``.

Only speedrun's own directories are deleted (see :func:`_check_purgeable_content`), never
across a mount point, never while another live process holds the writer lock, and always by an
atomic rename first, so an interrupted purge never leaves a half-deleted directory that still
looks like an experiment. :func:`purge_and_recreate` replaces a directory by a new one while
holding its writer lock throughout.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import TYPE_CHECKING

from .._errors import ExperimentDirectoryError
from ._fs import fsync_directory
from ._layout import (
    PURGING_INFIX,
    SUBDIRECTORIES,
    _create_layout,
    _entries,
    _foreign_entries,
    _listing,
    _write_marker,
    read_marker,
)
from ._lock import LOCK_NAME, _clean_path, _describe_holder, _hostname, _take_for_removal

if TYPE_CHECKING:
    from typing import Any, NoReturn

    PathLike = str | os.PathLike[str]

__all__ = [
    "check_purge_allowed",
    "leftover_purges",
    "purge_and_recreate",
    "purge_experiment_directory",
]


def _real(path: PathLike) -> str:
    return os.path.realpath(path)


def _is_within(path: str, folder: str) -> bool:
    """Whether the resolved ``path`` is the resolved ``folder`` or inside it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _protected_reason(real: str) -> str | None:
    """Why deleting the (resolved) folder ``real`` would be a disaster, or None."""
    if os.path.dirname(real) == real:
        return "the file system root"
    homes = {_real(os.path.expanduser("~"))}
    with contextlib.suppress(ImportError, KeyError, OSError):
        import pwd

        homes.add(_real(pwd.getpwuid(os.getuid()).pw_dir))
    for home in homes:
        if home == real:
            return "your home folder"
        if _is_within(home, real):
            return f"a parent of your home folder {home}"
    try:
        cwd = _real(os.getcwd())
    except OSError:  # The working directory was deleted: nothing to protect there.
        return None
    if cwd == real:
        return "the current working directory"
    if _is_within(cwd, real):
        return f"a parent of the current working directory {cwd}"
    return None


def _refuse(path: str, why: str, fix: str = "Fix: delete it yourself if you are sure.") -> NoReturn:
    raise ExperimentDirectoryError(f"Refusing to purge {path}: {why}. It was left untouched. {fix}")


def _check_purgeable_content(directory: str) -> None:
    """Refuse unless ``directory`` is speedrun's: created by it, or nothing but its layout.

    A folder that an older speedrun adopted (``"adopted": true`` in its marker) may hold entries
    that were there before: it is purged only while it holds nothing but speedrun's layout.
    """
    marker = read_marker(directory)
    if marker is not None and not marker.get("adopted"):
        return
    entries = _entries(directory)
    foreign = _foreign_entries(directory, entries)
    if foreign and marker is not None:
        before = [name for name in marker.get("entries_before_adoption") or [] if name in foreign]
        why = (
            f"{_listing(before)} were there before speedrun adopted it"
            if before
            else "they may have been there before speedrun adopted it"
        )
        _refuse(
            directory,
            "speedrun adopted this folder rather than creating it, and it holds entries other "
            f"than speedrun's {'/, '.join(SUBDIRECTORIES)}/ layout: {_listing(foreign)} ({why})",
            "Fix: move those entries out first, or delete the folder yourself if you are sure.",
        )
    if foreign:
        _refuse(
            directory,
            "it is not a speedrun experiment directory (it has no .speedrun marker, and it "
            f"holds entries other than speedrun's {'/, '.join(SUBDIRECTORIES)}/ layout: "
            f"{_listing(foreign)})",
            "Fix: check the path; delete it yourself if you are sure.",
        )
    layout = [name for name in entries if name in SUBDIRECTORIES]
    if layout and "Configurations" not in layout:
        _refuse(
            directory,
            "it is not a speedrun experiment directory (it has neither a .speedrun marker nor "
            f"a Configurations/ folder, only {_listing(layout)})",
            "Fix: check the path; delete it yourself if you are sure.",
        )


def _check_purge_target(directory: str) -> str | None:
    """Every refusal of a purge that needs no lock; the resolved path, or None if missing."""
    if os.path.islink(directory):
        _refuse(
            directory,
            f"it is a symbolic link (to {os.readlink(directory)!r}) and speedrun never follows "
            "links when deleting",
            f"Fix: remove the link itself (rm {directory}), or purge the folder it points to.",
        )
    if not os.path.exists(directory):
        return None
    if not os.path.isdir(directory):
        _refuse(directory, "it is a file, not an experiment directory")
    real = _real(directory)
    reason = _protected_reason(real)
    if reason is not None:
        fix = "Fix: pass the experiment directory itself (e.g. experiments/RUN-0)"
        if "working directory" in reason:
            fix += ", or change to another working directory first"
        _refuse(directory, f"it is {reason}", fix + "; delete it yourself if you are sure.")
    _check_purgeable_content(directory)
    mounts = _mount_points_inside(real)
    if mounts:
        _refuse(
            directory,
            f"another file system is mounted inside it ({_listing(mounts)}), and a purge never "
            "deletes files on another file system",
            "Fix: unmount it first (umount PATH), then purge again.",
        )
    return real


def check_purge_allowed(path: PathLike) -> None:
    """Raise the :class:`ExperimentDirectoryError` that a purge of ``path`` would, without it.

    Checks everything but the lock (see :func:`purge_experiment_directory`); a missing
    ``path`` passes.
    """
    _check_purge_target(_clean_path(path))


def purge_experiment_directory(path: PathLike) -> None:
    """Delete an experiment directory, but only when that is safe.

    The directory must carry the ``.speedrun`` marker, or hold nothing but speedrun's
    ``Configurations/``, ``Logs/``, ``Weights/``, ``Plots/`` (an unmarked directory of the
    original speedrun). It is refused, and left untouched, when it is a symbolic link, the
    file system root, your home folder (or a parent of it), the current working directory
    (or a parent of it), when another file system is mounted inside it, or when another live
    process holds its writer lock.

    The folder is first renamed atomically to a hidden sibling ``.<name>.purging-<pid>`` and
    then deleted, so an interrupted purge never leaves a half-deleted directory that still
    looks like a valid experiment (:func:`leftover_purges` finds such leftovers). A missing
    ``path`` is a no-op.

    Parameters
    ----------
    path
        The experiment directory to delete.

    Raises
    ------
    ExperimentDirectoryError
        The directory is not safe to delete (the message says why and what to do), or it
        could not be deleted completely (the message names the hidden leftover folder).
    """
    directory = _clean_path(path)
    real = _check_purge_target(directory)
    if real is None:
        return
    lock_fd, holder = _take_for_removal(real)
    if lock_fd is None:
        holder = holder or {}
        if holder.get("pid") == os.getpid() and holder.get("host") == _hostname():
            _refuse(
                directory,
                "this process holds its writer lock",
                "Fix: release the WriterLock of this directory before purging it, or use "
                "purge_and_recreate() with that lock.",
            )
        _refuse(
            directory,
            f"it is in use: {_describe_holder(holder)} holds its writer lock",
            "Fix: wait for that run to finish or stop it, then purge again.",
        )
    try:
        _rename_and_delete(directory, real)
    finally:
        os.close(lock_fd)


def _mount_points_inside(real: str) -> list[str]:
    """Folders below ``real`` on another file system (mount points), as relative paths."""
    try:
        device = os.lstat(real).st_dev
    except OSError:
        return []
    found: list[str] = []
    stack = [real]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                if entry.stat(follow_symlinks=False).st_dev != device:
                    found.append(os.path.relpath(entry.path, real))
                    continue
            except OSError:
                continue
            stack.append(entry.path)
    return sorted(found)


def _remove_tree(root: str) -> list[str]:
    """Delete ``root`` without crossing into other file systems; the mount points left."""
    import shutil

    device = os.lstat(root).st_dev
    kept: list[str] = []

    def remove(folder: str) -> bool:
        whole = True
        for entry in list(os.scandir(folder)):
            if entry.is_dir(follow_symlinks=False):
                if entry.stat(follow_symlinks=False).st_dev != device:
                    kept.append(entry.path)
                    whole = False
                elif remove(entry.path):
                    os.rmdir(entry.path)
                else:
                    whole = False
            else:
                os.unlink(entry.path)
        return whole

    if not _mount_points_inside(root):
        shutil.rmtree(root)  # the fast path: one file system
        return []
    if remove(root):
        os.rmdir(root)
    return kept


def leftover_purges(path: PathLike) -> list[str]:
    """Hidden ``.<name>.purging-*`` siblings of ``path`` left by purges that were killed."""
    directory = _clean_path(path)
    parent, name = os.path.split(os.path.abspath(directory))
    prefix = f".{name}{PURGING_INFIX}"
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    return sorted(
        os.path.join(os.path.dirname(directory), entry)
        for entry in names
        if entry.startswith(prefix)
    )


def _hidden_sibling(real: str, tag: str = "") -> str:
    parent, name = os.path.split(real)
    counter = 0
    while True:
        suffix = f"-{counter}" if counter else ""
        hidden = os.path.join(parent, f".{name}{PURGING_INFIX}{os.getpid()}{tag}{suffix}")
        if not os.path.lexists(hidden):
            return hidden
        counter += 1


def _rename_and_delete(directory: str, real: str) -> None:
    parent = os.path.dirname(real)
    before = os.lstat(real)
    hidden = _hidden_sibling(real)
    try:
        os.rename(real, hidden)
    except OSError as error:
        raise ExperimentDirectoryError(
            f"Cannot purge {directory}: renaming it to {os.path.basename(hidden)} failed "
            f"({error.strerror or error}). It was left untouched. "
            "Fix: check that you may write to its parent folder and that it is not a mount point."
        ) from error
    after = os.lstat(hidden)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        # Someone replaced the folder between the checks and the rename: put it back.
        with contextlib.suppress(OSError):
            os.rename(hidden, real)
        raise ExperimentDirectoryError(
            f"Refusing to purge {directory}: it was replaced by another file or folder while "
            "being purged. It was left in place. Fix: check who else writes there, then retry."
        )
    fsync_directory(parent)
    _delete_hidden(directory, hidden)
    fsync_directory(parent)


def _delete_hidden(directory: str, hidden: str) -> None:
    try:
        kept = _remove_tree(hidden)
    except OSError as error:
        raise ExperimentDirectoryError(
            f"{directory} was moved to {hidden} but could not be deleted completely "
            f"({error.strerror or error}: {error.filename}). The experiment directory itself "
            f"is gone. Fix: delete {hidden} yourself."
        ) from error
    if kept:
        raise ExperimentDirectoryError(
            f"{directory} was moved to {hidden}, and everything on its own file system was "
            f"deleted, but {_listing(kept)} is another file system mounted inside it and was "
            f"not touched. Fix: unmount it, then delete {hidden} yourself."
        )


def _exchange(first: str, second: str) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    import sys

    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), first)


def purge_and_recreate(path: PathLike, lock: Any, files: dict[str, bytes] | None = None) -> None:
    """Replace the experiment directory ``path`` by a new, empty one, holding ``lock`` throughout.

    ``lock`` is this process's held :class:`~speedrun.directory._lock.WriterLock` of ``path``:
    no other process can start in the directory, or purge it, at any instant of this call. The
    new directory is built beside the old one (layout, ``files`` such as the configuration
    the run is about to use, keyed by their path relative to the directory, its own lock file,
    already locked, and the marker), then swapped with the old one in one atomic step (Linux;
    elsewhere two renames), and only then is the old one deleted. A kill at any instant leaves
    either the old directory or the new one at ``path``, plus at most a hidden
    ``.<name>.purging-<pid>`` folder (see :func:`leftover_purges`).

    Raises
    ------
    ExperimentDirectoryError
        As :func:`purge_experiment_directory` (the directory is then left untouched), or when
        the old directory could not be deleted completely after the swap.
    """
    import json

    from ._lock import _flock_with_grace, _now_iso, _open_lock_file

    directory = _clean_path(path)
    if not lock.held:
        raise ExperimentDirectoryError(
            f"purge_and_recreate({directory!r}) needs this process to hold the directory's "
            "writer lock; acquire a WriterLock first."
        )
    real = _check_purge_target(directory)
    if real is None:
        raise ExperimentDirectoryError(f"Cannot purge {directory}: it does not exist.")
    fresh = _hidden_sibling(real, "-new")
    fd: int | None = None
    try:
        os.mkdir(fresh)
        _create_layout(fresh, mark=False, new=True)
        for relative, data in (files or {}).items():
            target = os.path.join(fresh, relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        fd = _open_lock_file(os.path.join(fresh, LOCK_NAME), create=True)
        assert fd is not None
        if not _flock_with_grace(fd):  # nobody else can know this folder yet
            raise OSError(errno.EAGAIN, "the new lock file is locked by someone else")
        info = dict(lock.holder_info or {}, started=_now_iso())
        os.pwrite(fd, (json.dumps(info, indent=2) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        _write_marker(fresh, adopted=False)
        for folder in (fresh, *(os.path.join(fresh, name) for name in SUBDIRECTORIES)):
            fsync_directory(folder)
    except OSError as error:
        if fd is not None:
            os.close(fd)
        import shutil

        shutil.rmtree(fresh, ignore_errors=True)
        raise ExperimentDirectoryError(
            f"Cannot purge {directory}: building its replacement failed "
            f"({error.strerror or error}). The directory was left untouched. "
            "Fix: check the free space and permissions of its parent folder."
        ) from error
    parent = os.path.dirname(real)
    try:
        swapped = _exchange(fresh, real)
        if swapped:
            old = fresh
        else:  # two renames: a moment without a folder at the path
            old = _hidden_sibling(real)
            os.rename(real, old)
            try:
                os.rename(fresh, real)
            except OSError:
                with contextlib.suppress(OSError):
                    os.rename(old, real)
                raise
    except OSError as error:
        os.close(fd)
        import shutil

        shutil.rmtree(fresh, ignore_errors=True)
        raise ExperimentDirectoryError(
            f"Cannot purge {directory}: swapping in its replacement failed "
            f"({error.strerror or error}). The directory was left in place. "
            "Fix: check that you may write to its parent folder, then retry."
        ) from error
    fsync_directory(parent)
    lock._hand_over(fd, info)  # now the old lock file may go: the new one is locked and in place
    _delete_hidden(directory, old)
    fsync_directory(parent)
