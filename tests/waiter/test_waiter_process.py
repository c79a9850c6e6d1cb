"""Process liveness with real processes: running, finished, zombie, missing, and a reused PID."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from speedrun import ArgumentError
from speedrun.mixins.waiter import WaiterMixin, WaitTimeout, wait_for
from speedrun.mixins.waiter._process import (
    describe_process,
    is_alive,
    process_create_time,
)


def _missing_pid() -> int:
    """A PID that no process has right now (searched from the top of the PID range down)."""
    try:
        with open("/proc/sys/kernel/pid_max") as handle:
            top = int(handle.read())
    except OSError:
        top = 99999
    for pid in range(top - 1, 300, -1):
        if not psutil.pid_exists(pid):
            return pid
    raise RuntimeError("no free PID found")  # pragma: no cover


def _zombie() -> subprocess.Popen[bytes]:
    """A child that has exited but was not reaped: the kernel keeps it as a zombie."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 20
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        if time.monotonic() > deadline:  # pragma: no cover
            child.kill()
            child.wait()
            raise RuntimeError("child did not become a zombie")
        time.sleep(0.01)
    return child


@pytest.fixture
def sleeper():
    process = subprocess.Popen(["sleep", "30"])
    yield process
    process.kill()
    process.wait()


def test_running_process_is_alive(sleeper: subprocess.Popen[bytes]) -> None:
    assert is_alive(sleeper.pid)
    assert WaiterMixin.is_alive(sleeper.pid)
    assert WaiterMixin().is_alive(sleeper.pid)  # the original called it on instances too
    assert is_alive(sleeper.pid, psutil.Process(sleeper.pid).create_time())


def test_finished_and_reaped_process_is_not_alive() -> None:
    process = subprocess.Popen(["sleep", "0"])
    process.wait()
    assert not is_alive(process.pid)


def test_zombie_counts_as_finished() -> None:
    child = _zombie()
    try:
        # os.kill(pid, 0), the original check, still "sees" a zombie.
        os.kill(child.pid, 0)
        assert psutil.pid_exists(child.pid)
        assert not is_alive(child.pid)
        assert process_create_time(child.pid) is None
        started = time.monotonic()
        assert wait_for(child.pid, check_interval=5, timeout=30, verbose=False) == 0.0
        assert time.monotonic() - started < 5  # it did not even sleep once
    finally:
        child.wait()


def test_missing_pid_is_not_alive_and_needs_no_wait(capsys: pytest.CaptureFixture[str]) -> None:
    pid = _missing_pid()
    assert not is_alive(pid)
    assert process_create_time(pid) is None
    assert wait_for(pid, check_interval=5, timeout=30) == 0.0
    out = capsys.readouterr().out
    assert out == f"[waiter] Nothing to wait for: PID {pid} is not running.\n"


def test_reused_pid_is_not_mistaken_for_the_awaited_process() -> None:
    # Simulated PID reuse: the awaited process "was created" 1000 s before the process that
    # holds its PID now (this very test process). A real reuse looks exactly like this to the
    # waiter: same PID, live process, different creation time.
    pid = os.getpid()
    real = psutil.Process(pid).create_time()
    assert is_alive(pid, real)
    assert not is_alive(pid, real - 1000.0)
    assert not WaiterMixin.is_alive(pid, real - 1000.0)
    started = time.monotonic()
    waited = WaiterMixin().wait_for_pid(pid, timeout=5, create_time=real - 1000.0, max_wait=30)
    assert waited == 0.0 and time.monotonic() - started < 5


def test_wait_for_pid_returns_when_the_process_ends() -> None:
    process = subprocess.Popen(["sleep", "0.4"])
    try:
        started = time.monotonic()
        waited = WaiterMixin().wait_for_pid(process.pid, timeout=0.05, max_wait=30)
        assert waited >= 0.3
        assert time.monotonic() - started >= 0.3
        assert process.poll() is not None or not is_alive(process.pid)
    finally:
        process.wait()


def test_wait_for_pid_detects_a_zombie_appearing_during_the_wait() -> None:
    # The child exits while we wait and nobody reaps it (we are its parent and we are busy
    # waiting): the wait must still end.
    child = subprocess.Popen(["sleep", "0.3"])
    try:
        waited = WaiterMixin().wait_for_pid(child.pid, timeout=0.05, max_wait=30)
        assert waited > 0
        assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        child.wait()


def test_wait_for_pid_max_wait(
    sleeper: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(WaitTimeout) as info:
        WaiterMixin().wait_for_pid(sleeper.pid, timeout=0.05, max_wait=0.2)
    assert info.value.code == 124
    assert info.value.waited >= 0.2
    assert info.value.pending == (f"PID {sleeper.pid} (sleep 30)",)
    assert "Gave up" in capsys.readouterr().err


@pytest.mark.parametrize("pid", [0, -1, True, "12", 1.5, None])
def test_invalid_pids(pid: object) -> None:
    with pytest.raises(ArgumentError, match="process ID"):
        is_alive(pid)  # type: ignore[arg-type]  # invalid pids on purpose
    with pytest.raises(ArgumentError, match="process ID"):
        WaiterMixin().wait_for_pid(pid)  # type: ignore[arg-type]  # invalid pids on purpose


@pytest.mark.parametrize("interval", [0, -1, float("nan"), "fast"])
def test_wait_for_pid_refuses_bad_intervals(
    interval: object, sleeper: subprocess.Popen[bytes]
) -> None:
    with pytest.raises(ArgumentError, match="positive number of seconds"):
        WaiterMixin().wait_for_pid(sleeper.pid, timeout=interval)  # type: ignore[arg-type]  # invalid intervals on purpose


def test_describe_process(sleeper: subprocess.Popen[bytes]) -> None:
    assert describe_process(sleeper.pid) == f"PID {sleeper.pid} (sleep 30)"
    assert describe_process(_missing_pid()).startswith("PID ")
    long = describe_process(os.getpid(), width=20)
    assert len(long) <= len(f"PID {os.getpid()} ()") + 20


def test_missing_psutil_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # `import psutil` fails as if missing
    with pytest.raises(ImportError) as caught:
        is_alive(os.getpid())
    assert str(caught.value) == (
        "speedrun's WaiterMixin needs psutil, which is not installed. "
        "Fix: pip install speedrun-waiter (or pip install psutil)"
    )
