"""Tests of speedrun.distributed._preemption with real signals, in this process and in child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import pytest

import speedrun.distributed._preemption as preemption
from speedrun._errors import SpeedrunError
from speedrun.distributed._preemption import PREEMPTION_EXIT_CODE, Preempted

_SOURCE_ROOT = str(Path(preemption.__file__).resolve().parents[1])


@pytest.fixture(autouse=True)
def _clean_state():
    yield
    preemption.uninstall()
    preemption.reset()


# A training loop as BaseExperiment runs it: poll at each step boundary, checkpoint, exit 75.
_LOOP = """
    import sys, time
    from speedrun.distributed import _preemption as preemption

    signals = sys.argv[1].split(",") if sys.argv[1] else None
    assert preemption.install(signals)
    print("ready", flush=True)
    step = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.001)                      # one training step
        step += 1
        if preemption.requested():             # the step boundary
            print(f"checkpoint at step {step}", flush=True)
            raise preemption.Preempted(step=step)
    print("never preempted", flush=True)
"""


def _start(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=_SOURCE_ROOT)
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout.readline().strip() == "ready"
    return child


@pytest.mark.parametrize(
    ("configured", "sent"),
    [("", signal.SIGTERM), ("", signal.SIGUSR1), ("SIGUSR2,TERM", signal.SIGUSR2)],
)
def test_signal_requests_checkpoint_and_exit_75(configured, sent):
    child = _start(_LOOP, configured)
    child.send_signal(sent)
    out, err = child.communicate(timeout=30)
    assert child.returncode == PREEMPTION_EXIT_CODE == 75, err
    assert "checkpoint at step" in out and "never preempted" not in out
    assert "Traceback" not in err


def test_signals_not_configured_keep_their_default_action():
    child = _start(_LOOP, "SIGUSR2")
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGTERM and "checkpoint" not in out


_UNINSTALL = """
    import signal, sys, time
    from speedrun.distributed import _preemption as preemption

    def mine(signum, frame):
        print("own handler", flush=True)
        sys.exit(3)

    signal.signal(signal.SIGUSR1, mine)
    preemption.install()
    preemption.install()   # twice: must not record its own handler as the previous one
    assert preemption.installed_signals() == (signal.SIGTERM, signal.SIGUSR1)
    preemption.uninstall()
    assert signal.getsignal(signal.SIGUSR1) is mine
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert preemption.installed_signals() == ()
    print("ready", flush=True)
    time.sleep(30)
"""


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGUSR1, 3), (signal.SIGTERM, -signal.SIGTERM)])
def test_uninstall_restores_previous_handlers(sent, code):
    child = _start(_UNINSTALL)
    child.send_signal(sent)
    out, err = child.communicate(timeout=30)
    assert child.returncode == code, err


def test_real_signal_in_this_process_only_sets_the_flag():
    previous = signal.getsignal(signal.SIGUSR1)
    assert preemption.install(["SIGUSR1"]) is True
    assert preemption.installed_signals() == (signal.SIGUSR1,)
    assert not preemption.requested() and preemption.received_signal() is None
    os.kill(os.getpid(), signal.SIGUSR1)
    for _ in range(1000):  # the handler runs at the next bytecode boundary of the main thread
        if preemption.requested():
            break
    assert preemption.requested() and preemption.received_signal() == signal.SIGUSR1
    exc = Preempted(step=12)
    assert "SIGUSR1" in str(exc) and "step 12" in str(exc) and "--resume" in str(exc)
    preemption.reset()
    assert not preemption.requested() and preemption.received_signal() is None
    preemption.uninstall()
    assert signal.getsignal(signal.SIGUSR1) is previous


def test_request_and_exception():
    preemption.request()
    assert preemption.requested() and preemption.received_signal() is None
    exc = Preempted("custom message")
    assert isinstance(exc, SystemExit) and exc.code == 75 and str(exc) == "custom message"
    assert "Preempted by a request" in str(Preempted())
    assert str(Preempted(message="other")) == "other"
    exc = Preempted(40, signal.SIGTERM)
    assert (exc.step, exc.signum, exc.code) == (40, signal.SIGTERM, 75)
    assert "signal SIGTERM at step 40" in str(exc)
    with pytest.raises(SystemExit) as info:
        raise Preempted(step=3)
    assert info.value.code == PREEMPTION_EXIT_CODE


def test_install_off_the_main_thread_warns_and_changes_nothing():
    before = signal.getsignal(signal.SIGTERM)
    results = []

    def worker():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results.append(preemption.install())
        results.append([str(w.message) for w in caught])

    thread = threading.Thread(target=worker, name="trainer")
    thread.start()
    thread.join()
    installed, messages = results
    assert installed is False
    assert len(messages) == 1 and "main thread" in messages[0] and "'trainer'" in messages[0]
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize(
    ("signals", "match"),
    [
        (["SIGNOPE"], "Unknown signal name 'SIGNOPE'"),
        ([signal.SIGTERM, signal.SIGKILL], "SIGKILL.*cannot be caught"),
        ([9999], "valid signal number"),
        ([1.5], "got float"),
    ],
)
def test_bad_signals_are_refused_and_nothing_changes(signals, match):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SpeedrunError, match=match):
        preemption.install(signals)
    assert signal.getsignal(signal.SIGTERM) is before
    assert preemption.installed_signals() == ()


def test_a_second_signal_ends_a_run_that_never_reaches_a_step(tmp_path):
    import subprocess
    import sys
    import time

    script = tmp_path / "stuck.py"
    script.write_text(
        "import time\n"
        "from speedrun.distributed import _preemption\n"
        "_preemption.install()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert process.poll() is None, "the first SIGTERM only requests a checkpoint"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == -signal.SIGTERM
    finally:
        process.kill()
        process.wait()
