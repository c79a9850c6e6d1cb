"""What --wait.for accepts, and waiting for real runs that hold their experiment directory's lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from speedrun import ArgumentError, ExperimentDirectoryError, SpeedrunError
from speedrun.ext import WriterLock, ensure_experiment_directory, is_locked
from speedrun.mixins.waiter import WaitTimeout, wait_for
from speedrun.mixins.waiter._targets import (
    DirectoryTarget,
    ProcessTarget,
    parse_wait_for,
)

# A stand-in for a live run: takes the writer lock of a directory exactly as a speedrun run
# does, says so, and holds it until its stdin is closed (or it is killed).
_HOLDER = """
import sys
from speedrun.ext import WriterLock
lock = WriterLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


class Holder:
    def __init__(self, directory: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line == "locked\n", line
        assert is_locked(directory)

    def finish(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return Path(ensure_experiment_directory(tmp_path / "RUN-0"))


@pytest.fixture
def holder(run_dir: Path):
    running = Holder(run_dir)
    yield running
    running.close()


def test_waits_until_the_run_finishes(
    run_dir: Path, holder: Holder, capsys: pytest.CaptureFixture[str]
) -> None:
    threading.Timer(0.4, holder.finish).start()
    waited = wait_for(str(run_dir), check_interval=0.05, timeout=30)
    assert waited >= 0.3
    assert not is_locked(run_dir)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"[waiter] Waiting for {run_dir} (run PID {holder.process.pid})")
    assert lines[1].startswith("[waiter] Done waiting after")


def test_a_killed_run_releases_its_lock_and_ends_the_wait(run_dir: Path, holder: Holder) -> None:
    threading.Timer(0.3, holder.kill).start()
    assert wait_for(run_dir, check_interval=0.05, timeout=30, verbose=False) >= 0.2
    assert holder.process.wait() == -signal.SIGKILL


def test_timeout_while_the_run_holds_its_lock(
    run_dir: Path, holder: Holder, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(WaitTimeout) as info:
        wait_for(run_dir, check_interval=0.05, timeout=0.2, verbose=False)
    assert isinstance(info.value, SpeedrunError)
    assert info.value.pending == (f"{run_dir} (run PID {holder.process.pid})",)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1  # the give-up line is printed even when not verbose
    assert "Gave up waiting after" in captured.err and str(run_dir) in captured.err
    assert holder.process.poll() is None  # the run itself is untouched


def test_a_finished_run_needs_no_wait(run_dir: Path) -> None:
    WriterLock(run_dir).acquire().release()  # the lock file exists and is free
    assert (run_dir / ".speedrun.lock").exists()
    assert wait_for(run_dir, check_interval=5, verbose=False) == 0.0


def test_accepted_directories(tmp_path: Path) -> None:
    marked = Path(ensure_experiment_directory(tmp_path / "marked"))
    original_layout = tmp_path / "original"  # the original speedrun's, or written by hand
    (original_layout / "Configurations").mkdir(parents=True)
    (original_layout / "Configurations" / "train_config.yml").write_text("lr: 0.1\n")
    for directory in (marked, original_layout):
        target = DirectoryTarget(directory)
        assert target.finished()
    # A folder speedrun's own `ls`, `show` and `--resume` would not call a run is refused too:
    # one rule for every tool (speedrun.ext.is_run_directory).
    not_a_run = tmp_path / "locked-only"
    not_a_run.mkdir()
    WriterLock(not_a_run).acquire().release()
    with pytest.raises(ExperimentDirectoryError, match="not a speedrun experiment directory"):
        DirectoryTarget(not_a_run)


def test_plain_directory_is_refused_and_untouched(tmp_path: Path) -> None:
    plain = tmp_path / "photos"
    plain.mkdir()
    (plain / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(ExperimentDirectoryError) as info:
        wait_for(str(plain))
    message = str(info.value)
    assert "not a speedrun experiment directory" in message
    assert "experiments/RUN-0" in message and "12345" in message  # names what is accepted
    assert sorted(os.listdir(plain)) == ["cat.jpg"]


def test_file_and_missing_paths_are_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("hi")
    with pytest.raises(ExperimentDirectoryError, match="is a file"):
        wait_for(str(a_file))
    with pytest.raises(ArgumentError, match="neither a process ID nor an existing directory"):
        wait_for(str(tmp_path / "RUN-404"))


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("banana", "neither a process ID nor an existing directory"),
        ("123 456", r'write a list: --wait.for "\[123, 456\]"'),
        (True, "a boolean"),
        ("", "empty string"),
        (1.5, "float"),
        ([[1, 2]], "nested value"),
        ({"pid": 1}, "dict"),
        (-5, "positive integer"),
    ],
)
def test_bad_values_name_what_is_accepted(value: object, hint: str) -> None:
    with pytest.raises(ArgumentError, match=hint) as info:
        parse_wait_for(value)
    assert "several PIDs" in str(info.value) or "process ID" in str(info.value)


def test_own_pid_is_refused() -> None:
    with pytest.raises(ArgumentError, match="this very process"):
        parse_wait_for(os.getpid())


def test_own_locked_directory_is_refused(run_dir: Path) -> None:
    with WriterLock(run_dir):
        with pytest.raises(ArgumentError, match="this very run"):
            parse_wait_for(str(run_dir))
    assert parse_wait_for(str(run_dir))[0].finished()  # once released, it is just a free run


def test_lists_mix_pids_and_directories_and_drop_duplicates(run_dir: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        targets = parse_wait_for(
            [sleeper.pid, str(run_dir), sleeper.pid, str(run_dir) + "/", str(sleeper.pid)]
        )
        assert [type(target) for target in targets] == [ProcessTarget, DirectoryTarget]
        assert targets[0].pid == sleeper.pid and not targets[0].finished()
        assert targets[0].create_time == psutil.Process(sleeper.pid).create_time()
        assert len(parse_wait_for((sleeper.pid,))) == 1
        assert parse_wait_for(None) == [] and parse_wait_for([]) == []
    finally:
        sleeper.kill()
        sleeper.wait()
    assert targets[0].finished()  # sticky from now on, whatever gets this PID next


def test_digit_named_directory_needs_a_path_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path(ensure_experiment_directory(tmp_path / "777"))
    (target,) = parse_wait_for("./777")
    assert isinstance(target, DirectoryTarget)
    (target,) = parse_wait_for("777")  # an existing directory wins over the PID reading
    assert isinstance(target, DirectoryTarget)


def test_several_processes_print_one_line_per_state_change(
    capsys: pytest.CaptureFixture[str],
) -> None:
    short = subprocess.Popen(["sleep", "0.6"])
    long = subprocess.Popen(["sleep", "1.2"])
    try:
        # A just-forked child may not have exec'd `sleep` yet (its command line is not yet
        # "sleep 0.6"): wait for that, so the line below names what each process runs.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(
            psutil.Process(child.pid).cmdline()[:1] == ["sleep"] for child in (short, long)
        ):
            time.sleep(0.005)
        wait_for([short.pid, long.pid], check_interval=0.02, timeout=30)
    finally:
        short.wait()
        long.wait()
    lines = capsys.readouterr().out.splitlines()
    # About 60 checks, 3 state changes: started, the short one finished, all done.
    assert len(lines) == 3, lines
    assert lines[0].startswith(
        f"[waiter] Waiting for PID {short.pid} (sleep 0.6), PID {long.pid} (sleep 1.2)."
    )
    assert f"(My PID is {os.getpid()}.)" in lines[0]
    assert lines[1].startswith(f"[waiter] PID {short.pid} (sleep 0.6) finished after")
    assert lines[1].endswith(f"still waiting for PID {long.pid} (sleep 1.2).")
    assert lines[2].startswith("[waiter] Done waiting after")


def test_memory_that_is_available_needs_no_wait(capsys: pytest.CaptureFixture[str]) -> None:
    assert wait_for(memory="1KB", check_interval=5) == 0.0
    out = capsys.readouterr().out
    assert out.startswith("[waiter] Nothing to wait for: ") and "of RAM available" in out


def test_memory_beyond_the_machine_is_an_error_not_an_endless_wait() -> None:
    total = psutil.virtual_memory().total
    with pytest.raises(ArgumentError, match="only has .* of RAM in total"):
        wait_for(memory=f"{total + 1}B")


def test_memory_that_is_not_available_times_out(capsys: pytest.CaptureFixture[str]) -> None:
    # All of the machine's RAM is never "available": the kernel and this process use some.
    total = psutil.virtual_memory().total
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as info:
        wait_for(memory=f"{total}B", check_interval=0.05, timeout=0.2)
    assert time.monotonic() - started >= 0.2
    assert "of available RAM (now" in info.value.pending[0]
    assert "of available RAM" in capsys.readouterr().err


def test_memory_is_checked_after_the_processes_end(capsys: pytest.CaptureFixture[str]) -> None:
    short = subprocess.Popen(["sleep", "0.1"])
    total = psutil.virtual_memory().total
    try:
        with pytest.raises(WaitTimeout) as info:
            wait_for(short.pid, memory=f"{total}B", check_interval=0.05, timeout=0.5)
    finally:
        short.wait()
    assert len(info.value.pending) == 1 and "RAM" in info.value.pending[0]
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "finished after" in out[1] and "RAM" in out[1]


def test_timeout_zero_checks_once() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(WaitTimeout):
            wait_for(sleeper.pid, timeout=0, verbose=False)
        assert wait_for(_free_pid(), timeout=0, verbose=False) == 0.0
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"check_interval": -1}, "positive number of seconds"),
        ({"check_interval": 0}, "positive number of seconds"),
        ({"timeout": -3}, "0 or more"),
        ({"timeout": "soon"}, "0 or more"),
        ({"verbose": "maybe"}, "True or False"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], hint: str) -> None:
    with pytest.raises(ArgumentError, match=hint):
        wait_for(None, **kwargs)  # type: ignore[arg-type]  # wrong settings on purpose


def _free_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
