"""kill -9 at random instants of checkpoint saves: the latest valid checkpoint always loads whole.

A writer process saves a multi-MB state at steps 1, 2, 3, ... (resuming from the latest valid
checkpoint, with retention ``keep=3``), and is killed with SIGKILL after a random delay. After
every kill, ``load_latest_valid`` must succeed without a single warning, every file that
discovery lists must load, and each state must be complete and belong to its step.

Torch writers are forked from one pre-started "zygote" process that imported torch once, so
that 20 trials do not pay 20 torch start-ups; pickle writers are fresh processes. The async
trials use ``AsyncSaver``: the writer's main thread snapshots step after step while the
background thread writes, so most kills land in the middle of a background write.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")  # the kill trials write torch files too

import speedrun.checkpoint._files
from speedrun.checkpoint._files import list_checkpoints
from speedrun.checkpoint._io import load_checkpoint, load_latest_valid, save_checkpoint

_SOURCE_ROOT = str(Path(speedrun.__file__).resolve().parents[1])
_ELEMENTS = 1_000_000  # 4 MB of float32 (pickle: 4 MB of bytes) per checkpoint
CLS = "killtest.Writer"

_WRITER = """
    import os, sys, time

    def state_for(step, serializer):
        if serializer == "torch":
            import torch
            payload = torch.full((ELEMENTS,), float(step))
            payload[-1] = -float(step)  # the last bytes written carry a marker too
        else:
            payload = bytes([step % 251]) * (ELEMENTS * 4 - 1) + b"\\xff"
        return {"payload": payload, "meta": {"step": step, "elements": ELEMENTS}}

    def write_forever(folder, serializer, announce=False, background=False):
        from speedrun.checkpoint._async import AsyncSaver
        from speedrun.checkpoint._io import load_latest_valid, save_checkpoint
        latest = load_latest_valid(folder)
        step = latest.step + 1 if latest is not None else 1
        if announce:  # start-up and the first load are done: kills now land in the save loop
            print("saving", flush=True)
        save = AsyncSaver().save if background else save_checkpoint
        deadline = time.monotonic() + 20  # never outlive a broken test
        while time.monotonic() < deadline:
            # async: returns after the snapshot; the next call waits for this write
            save(folder, step, state_for(step, serializer), experiment_class=CLS,
                 keep=3, serializer=serializer)
            step += 1
        os._exit(0)
"""

_ZYGOTE = """
    import os, sys
    import torch  # once, before forking the writers
    import speedrun.checkpoint._files
    print("ready", flush=True)
    for line in sys.stdin:
        command, argument = line.split()
        if command in ("fork", "fork-async"):
            pid = os.fork()
            if pid == 0:
                try:
                    write_forever(argument, "torch", background=command == "fork-async")
                finally:
                    os._exit(1)
            print(pid, flush=True)
        elif command == "reap":
            _, status = os.waitpid(int(argument), 0)
            print(status, flush=True)
"""

_FRESH = """
    import sys
    write_forever(sys.argv[1], "pickle", announce=True)
"""


def _program(body: str) -> str:
    return (
        f"ELEMENTS = {_ELEMENTS}\nCLS = {CLS!r}\n"
        + textwrap.dedent(_WRITER)
        + textwrap.dedent(body)
    )


def _check_state(step: int, state: dict) -> None:
    assert state["meta"] == {"step": step, "elements": _ELEMENTS}
    payload = state["payload"]
    if isinstance(payload, torch.Tensor):
        assert payload.shape == (_ELEMENTS,)
        assert payload[-1].item() == -float(step)
        assert torch.equal(payload[:-1], torch.full((_ELEMENTS - 1,), float(step)))
    else:
        assert payload == bytes([step % 251]) * (_ELEMENTS * 4 - 1) + b"\xff"


def _check_folder(folder: Path) -> tuple[int, bool]:
    """Everything a kill may leave behind loads; returns (latest step, temp file left)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a skipped (half-written) checkpoint would warn
        latest = load_latest_valid(folder, experiment_class=CLS)
    assert latest is not None
    _check_state(latest.step, latest.state)
    listed = list_checkpoints(folder)
    assert listed[-1][0] == latest.step
    for step, path in listed:
        loaded = load_checkpoint(path, experiment_class=CLS)
        assert loaded.step == step
        _check_state(step, loaded.state)
    temp_left = any(name.endswith(".tmp") for name in os.listdir(folder))
    return latest.step, temp_left


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=_SOURCE_ROOT)


def _seed_folder(folder: Path, serializer: str) -> None:
    """A first complete checkpoint, so that every trial has something that must survive."""
    namespace: dict = {}
    exec(_program(""), namespace)
    save_checkpoint(
        folder,
        0,
        namespace["state_for"](0, serializer),
        experiment_class=CLS,
        serializer=serializer,
    )


@pytest.mark.parametrize("command", ["fork", "fork-async"], ids=["sync", "async"])
def test_kill_during_torch_saves(tmp_path, command):
    folder = tmp_path / "Weights"
    _seed_folder(folder, "torch")
    rng = random.Random(1234)
    zygote = subprocess.Popen(
        [sys.executable, "-c", _program(_ZYGOTE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    steps, temp_trials = [], 0
    try:
        assert zygote.stdout.readline().strip() == "ready"
        for _ in range(20):
            zygote.stdin.write(f"{command} {folder}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            time.sleep(rng.uniform(0.05, 0.3))
            os.kill(pid, signal.SIGKILL)
            zygote.stdin.write(f"reap {pid}\n")
            zygote.stdin.flush()
            status = int(zygote.stdout.readline())
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
            step, temp_left = _check_folder(folder)
            steps.append(step)
            temp_trials += temp_left
    finally:
        zygote.stdin.close()
        zygote.kill()
        zygote.wait()
    assert steps == sorted(steps) and steps[-1] >= 5  # the writers made progress between kills
    # At least some kills hit a save in flight (else this test would prove nothing).
    assert temp_trials >= 3, f"only {temp_trials} of 20 kills interrupted a save"
    save_checkpoint(
        folder, steps[-1] + 1, {"payload": torch.zeros(1), "meta": {}}, experiment_class=CLS
    )
    assert not any(name.endswith(".tmp") for name in os.listdir(folder))


def test_kill_during_pickle_saves_of_fresh_processes(tmp_path):
    folder = tmp_path / "Weights"
    _seed_folder(folder, "pickle")
    rng = random.Random(4321)
    steps, temp_trials, trials = [], 0, 0
    # 10 kills, more (up to 30) until two of them interrupted a save (the point of the test): a
    # loaded machine can make the writers slow to reach their first save
    while (trials < 10 or temp_trials < 2) and trials < 30:
        trials += 1
        writer = subprocess.Popen(
            [sys.executable, "-c", _program(_FRESH), str(folder)],
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        try:
            assert writer.stdout.readline().strip() == "saving"
            time.sleep(rng.uniform(0.05, 0.3))
        finally:
            writer.kill()  # SIGKILL
            writer.wait()
        assert writer.returncode == -signal.SIGKILL
        step, temp_left = _check_folder(folder)
        steps.append(step)
        temp_trials += temp_left
    assert steps == sorted(steps) and steps[-1] >= 3
    assert temp_trials >= 2, f"only {temp_trials} of {trials} kills interrupted a save"
