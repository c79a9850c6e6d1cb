"""Tests of speedrun.directory._lock: one live writer per experiment directory, across real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import speedrun.directory._lock
from speedrun._errors import ExperimentDirectoryError, LockError
from speedrun.directory._lock import LOCK_NAME, WriterLock, is_locked, read_lock_holder

# The source folder of the speedrun under test, so that child processes import the same code.
_SOURCE_ROOT = str(Path(speedrun.__file__).resolve().parents[1])

_HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys
    from speedrun.directory._lock import WriterLock

    lock = WriterLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    command = sys.stdin.readline().strip()
    if command == "release":
        lock.release()
        print("released", flush=True)
        sys.stdin.readline()
    """
)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SOURCE_ROOT, env.get("PYTHONPATH")]))
    return env


class Holder:
    """A separate Python process that holds a directory's writer lock until told otherwise."""

    def __init__(self, directory: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER_SCRIPT, str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_child_env(),
        )
        line = self.process.stdout.readline().strip()  # type: ignore[union-attr]  # the pipes are opened with PIPE
        if line != "locked":
            self.process.kill()
            _, err = self.process.communicate(timeout=30)
            raise AssertionError(f"the holder process failed to lock: {line!r}\n{err}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def release(self) -> None:
        self.process.stdin.write("release\n")  # type: ignore[union-attr]  # the pipes are opened with PIPE
        self.process.stdin.flush()  # type: ignore[union-attr]  # the pipes are opened with PIPE
        assert self.process.stdout.readline().strip() == "released"  # type: ignore[union-attr]  # the pipes are opened with PIPE

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.communicate(input="exit\n", timeout=30)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=30)
        assert self.process.returncode == -signal.SIGKILL


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    folder = tmp_path / "RUN-0"
    folder.mkdir()
    return folder


@pytest.fixture
def holder(directory: Path):
    process = Holder(directory)
    yield process
    if process.process.poll() is None:
        process.process.kill()
        process.process.communicate(timeout=30)


def test_acquire_writes_holder_note_and_release_keeps_an_empty_file(directory: Path) -> None:
    lock = WriterLock(directory)
    assert not lock.held
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # A fresh directory must not warn about a takeover.
        assert lock.acquire() is lock
    assert lock.held
    assert lock.took_over_from is None
    note = json.loads((directory / LOCK_NAME).read_text())
    assert note["pid"] == os.getpid()
    assert note["host"] == socket.gethostname()
    assert note["argv"] == sys.argv
    assert note["started"][:4].isdigit() and "T" in note["started"]
    assert lock.holder_info == note

    lock.release()
    assert not lock.held
    assert (directory / LOCK_NAME).exists()  # Never unlinked.
    assert (directory / LOCK_NAME).read_bytes() == b""
    lock.release()  # Releasing twice is harmless.


def test_clean_release_does_not_look_like_a_takeover(directory: Path) -> None:
    WriterLock(directory).acquire().release()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lock = WriterLock(directory).acquire()
    assert lock.took_over_from is None
    lock.release()


def test_acquire_twice_on_one_object_is_a_no_op(directory: Path) -> None:
    lock = WriterLock(directory).acquire()
    first_note = (directory / LOCK_NAME).read_bytes()
    assert lock.acquire() is lock
    assert lock.held
    assert (directory / LOCK_NAME).read_bytes() == first_note
    lock.release()


def test_two_objects_in_one_process_conflict(directory: Path) -> None:
    first = WriterLock(directory).acquire()
    second = WriterLock(directory)
    with pytest.raises(LockError) as caught:
        second.acquire()
    message = str(caught.value)
    assert str(os.getpid()) in message and "[this process]" in message
    assert "release the other WriterLock" in message
    assert f"kill {os.getpid()}" not in message  # never advise killing ourselves
    assert not second.held
    first.release()
    second.acquire()
    assert second.held
    second.release()


def test_context_manager_releases_on_error(directory: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with WriterLock(directory) as lock:
            assert lock.held and is_locked(directory)
            raise RuntimeError("boom")
    assert not lock.held
    assert not is_locked(directory)


def test_garbage_collected_lock_is_released(directory: Path) -> None:
    WriterLock(directory).acquire()  # Dropped at once.
    import gc

    gc.collect()
    assert not is_locked(directory)


def test_second_process_fails_at_once_with_holder_pid_and_host(
    directory: Path, holder: Holder
) -> None:
    with pytest.raises(LockError) as caught:
        WriterLock(directory).acquire()
    message = str(caught.value)
    assert f"process {holder.pid} on host {socket.gethostname()}" in message
    assert "started " in message
    assert "wait for that run" in message and "another experiment directory" in message
    assert f"kill {holder.pid}" in message
    assert isinstance(caught.value, ExperimentDirectoryError)
    assert caught.value.holder["pid"] == holder.pid  # type: ignore[attr-defined]  # the lock error carries its holder
    # The failed attempt must not have disturbed the holder's note.
    assert json.loads((directory / LOCK_NAME).read_text())["pid"] == holder.pid


def test_is_locked_and_read_lock_holder_while_held_and_free(
    directory: Path, holder: Holder
) -> None:
    assert is_locked(directory)
    info = read_lock_holder(directory)
    assert info is not None
    assert info["pid"] == holder.pid
    assert info["host"] == socket.gethostname()
    assert info["argv"][1] == str(directory)
    # Probing does not steal the lock.
    assert is_locked(directory)

    holder.release()
    assert not is_locked(directory)
    assert read_lock_holder(directory) is None
    holder.stop()


def test_release_lets_another_process_acquire(directory: Path, holder: Holder) -> None:
    holder.release()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lock = WriterLock(directory).acquire()
    assert lock.took_over_from is None
    assert read_lock_holder(directory) == lock.holder_info
    assert json.loads((directory / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    holder.stop()


def test_lock_of_a_killed_process_is_taken_over_with_a_warning(
    directory: Path, holder: Holder
) -> None:
    dead_pid = holder.pid
    holder.kill()
    assert not is_locked(directory)  # The kernel freed the lock when the process died.
    lock = WriterLock(directory)
    with pytest.warns(RuntimeWarning, match=rf"process {dead_pid} on host {socket.gethostname()}"):
        lock.acquire()
    assert lock.held
    assert lock.took_over_from is not None
    assert lock.took_over_from["pid"] == dead_pid
    assert lock.took_over_from["host"] == socket.gethostname()
    assert json.loads((directory / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_probes_of_missing_directories_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert not is_locked(missing)
    assert read_lock_holder(missing) is None
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not is_locked(empty)
    assert read_lock_holder(empty) is None
    assert os.listdir(empty) == []


def test_acquire_on_missing_directory_names_the_fix(tmp_path: Path) -> None:
    expected = "does not exist.*prepare_experiment_directory"
    with pytest.raises(ExperimentDirectoryError, match=expected):
        WriterLock(tmp_path / "missing").acquire()
    assert not (tmp_path / "missing").exists()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ExperimentDirectoryError, match="not a folder"):
        WriterLock(a_file).acquire()


def test_lock_file_symlink_is_not_followed(directory: Path, tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (directory / LOCK_NAME).symlink_to(target)
    with pytest.raises(ExperimentDirectoryError, match="symlink"):
        WriterLock(directory).acquire()
    assert target.read_text() == "keep me"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_release_in_a_forked_child_keeps_the_parents_lock(directory: Path) -> None:
    lock = WriterLock(directory).acquire()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            lock.release()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert lock.held
    assert is_locked(directory)
    assert json.loads((directory / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not is_locked(directory)
