"""Issue 13 (and issue 12 item 1), tried as an adversary would: real processes, kill -9, full
disks, planted files. Each test reproduces one item; the counts are small so the file stays
fast (the full 250-round purge race runs by hand: tests/core/hardening/purge_race.py)."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "hardening"))

import purge_race

TRAIN = textwrap.dedent("""
    import os, sys
    from speedrun import BaseExperiment, register_default_dispatch

    class T(BaseExperiment):
        def __init__(self):
            super().__init__()
            self.auto_setup()
            self.values = []

        @register_default_dispatch
        def train(self):
            while self.step < int(self.get("steps", 3)):
                self.values.append(self.step)
                self.next_step()
                self.checkpoint(force=False)
            print("step", self.step, "values", self.values, flush=True)

    if __name__ == "__main__":
        T().run()
""")


def run(
    tmp_path: Path,
    *args: str,
    code: str | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    torch: bool = True,
) -> subprocess.CompletedProcess:
    """``python train.py ARGS`` (or ``python -c code ARGS``) in ``tmp_path``.

    ``torch=False`` hides torch from the process (checkpoints are pickled then): a second
    faster per process on a small machine.
    """
    if not torch:
        hide = tmp_path / "no_torch"
        hide.mkdir(exist_ok=True)
        (hide / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
        env = {
            **(env or {}),
            "PYTHONPATH": os.pathsep.join(
                [str(hide), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
    script = tmp_path / "train.py"
    if not script.exists():
        script.write_text(TRAIN)
    command = [sys.executable, "-c", code] if code else [sys.executable, str(script)]
    result = subprocess.run(
        [*command, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def unmount_all_below(folder: Path) -> None:
    """Unmount every file system mounted below ``folder`` (wherever a rename moved it)."""
    with open("/proc/self/mounts") as handle:
        points = [line.split()[1] for line in handle]
    for point in sorted(points, reverse=True):
        if point.startswith(str(folder) + "/"):
            subprocess.run(["umount", "-l", point], capture_output=True)


def speedrun_cli(tmp_path: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "speedrun", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------------------------------------------------------
# 1. concurrent --purge: exactly one winner, a live run's directory never removed


def test_concurrent_purges_have_exactly_one_winner(tmp_path):
    assert purge_race.run_rounds(rounds=6, procs=4, live=False, root=str(tmp_path)) == []


def test_concurrent_purges_never_remove_a_live_run(tmp_path):
    assert purge_race.run_rounds(rounds=2, procs=3, live=True, root=str(tmp_path)) == []


# ------------------------------------------------------------------------------------------------
# issue 12 item 1: --purge never destroys the config it is about to use


def test_purge_keeps_the_hand_written_config_it_uses(tmp_path):
    config = tmp_path / "H" / "Configurations" / "train_config.yml"
    config.parent.mkdir(parents=True)
    config.write_text("lr: 0.5\nsteps: 2\n")
    run(tmp_path, "H")
    (tmp_path / "H" / "Logs" / "old.log").write_text("old")
    result = run(tmp_path, "H", "--purge", "--config.extra", "1")
    assert "step 2" in result.stdout
    text = config.read_text()
    assert "lr: 0.5" in text and "extra: 1" in text
    assert not (tmp_path / "H" / "Logs" / "old.log").exists()
    # --purge --inherit the run itself: its config is read before the purge.
    run(tmp_path, "H", "--purge", "--inherit", "H")
    assert "lr: 0.5" in config.read_text()
    assert not [p for p in tmp_path.iterdir() if ".purging-" in p.name]
    run(tmp_path, "NEW", "--purge")  # nothing to purge yet: a plain start


# ------------------------------------------------------------------------------------------------
# 2. a foreign folder, once adopted, is never purged


def test_an_adopted_foreign_folder_is_never_purged(tmp_path):
    project = tmp_path / "proj"
    for name in ("Configurations", "src", ".git"):
        (project / name).mkdir(parents=True)
    (project / "thesis.tex").write_text("years of work")
    refused = run(tmp_path, "proj", "--purge", check=False)
    assert refused.returncode != 0 and "Refusing to purge" in refused.stderr
    run(tmp_path, "proj")  # adopted (it has Configurations/): the marker records what was there
    marker = json.loads((project / ".speedrun").read_text())
    assert marker["adopted"] and {".git", "src", "thesis.tex"} <= set(
        marker["entries_before_adoption"]
    )
    refused = run(tmp_path, "proj", "--purge", check=False)
    assert refused.returncode != 0
    assert "adopted" in refused.stderr and "thesis.tex" in refused.stderr
    assert (project / "thesis.tex").read_text() == "years of work"
    assert (project / ".git").is_dir() and (project / "src").is_dir()


# ------------------------------------------------------------------------------------------------
# 3. replacing the config: kill -9 at any instant, or a full disk, never loses it

_SLOW_FSYNC = textwrap.dedent("""
    import os, sys, time
    real_fsync = os.fsync
    def slow_fsync(fd):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if ".train_config.yml." in name:  # the new config's temp file: the window to hit
            open(os.environ["ANNOUNCE"], "w").close()
            time.sleep(0.3)
        real_fsync(fd)
    os.fsync = slow_fsync
    sys.argv = [sys.argv[0], *sys.argv[1:]]
    exec(open("train.py").read())
""")


def test_kill_while_the_config_is_replaced_leaves_a_config(tmp_path):
    (tmp_path / "train.py").write_text(TRAIN)
    run(tmp_path, "R", "--config.lr", "0.1")
    config = tmp_path / "R" / "Configurations" / "train_config.yml"
    for trial in range(5):
        announce = tmp_path / f"fsync-{trial}"
        child = subprocess.Popen(
            [sys.executable, "-c", _SLOW_FSYNC, "R", "--resume", "--config.lr", str(trial + 2)],
            cwd=tmp_path,
            env={**os.environ, "ANNOUNCE": str(announce)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not announce.exists() and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(0.02 + 0.05 * trial)
        child.kill()
        child.wait()
        assert announce.exists(), "the kill did not land while the config was replaced"
        assert config.is_file(), f"trial {trial}: no config left"
        assert "lr:" in config.read_text()
    assert "step" in run(tmp_path, "R", "--resume").stdout  # and the run can be resumed


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount
    finally:
        unmount_all_below(tmp_path)


def test_a_full_disk_gives_a_clear_error_and_keeps_the_config(tmp_path, small_disk):
    (tmp_path / "train.py").write_text(TRAIN)
    run(tmp_path, str(small_disk / "R"), "--config.lr", "0.1")
    config = small_disk / "R" / "Configurations" / "train_config.yml"
    before = config.read_text()
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)  # fill the disk...
    with contextlib.suppress(OSError):
        while True:
            os.write(fd, b"\0" * 4096)
    os.close(fd)
    size = os.path.getsize(small_disk / "filler")
    os.truncate(small_disk / "filler", size - 4096)  # ...but one page: the lock's note fits
    result = run(
        tmp_path,
        str(small_disk / "R"),
        "--resume",
        "--config.lr",
        "'" + "x" * 9000 + "'",
        check=False,
    )
    assert result.returncode != 0
    assert "No space left on device" in result.stderr and "nothing was lost" in result.stderr
    assert config.read_text() == before


# ------------------------------------------------------------------------------------------------
# 4. an unreadable newest checkpoint stops the resume; a corrupt one is set aside

_EIO_ON_STEP_2 = textwrap.dedent("""
    import builtins, errno, os, sys
    real_open = builtins.open
    def flaky_open(file, *args, **kwargs):
        if str(file).endswith("checkpoint_iter_2.pt"):
            raise OSError(errno.EIO, "Input/output error", str(file))
        return real_open(file, *args, **kwargs)
    builtins.open = flaky_open
    exec(real_open("train.py").read())
""")


def test_an_unreadable_checkpoint_stops_the_resume_and_is_never_overwritten(tmp_path):
    run(
        tmp_path,
        "R",
        "--config.steps",
        "2",
        "--config.training",
        "{'checkpoint_every': 1}",
        torch=False,
    )
    newest = tmp_path / "R" / "Weights" / "checkpoint_iter_2.pt"
    original = newest.read_bytes()
    result = run(tmp_path, "R", "--resume", code=_EIO_ON_STEP_2, check=False, torch=False)
    assert result.returncode != 0
    assert "Cannot read checkpoint" in result.stderr and "EIO" in result.stderr
    assert newest.read_bytes() == original


def test_a_corrupt_checkpoint_is_skipped_and_kept_aside(tmp_path):
    run(
        tmp_path,
        "R",
        "--config.steps",
        "2",
        "--config.training",
        "{'checkpoint_every': 1}",
        torch=False,
    )
    newest = tmp_path / "R" / "Weights" / "checkpoint_iter_2.pt"
    damaged = newest.read_bytes()[: newest.stat().st_size // 2]
    newest.write_bytes(damaged)
    result = run(tmp_path, "R", "--resume", "--config.steps", "3", torch=False)
    assert "Skipping checkpoint" in result.stderr and "step 3" in result.stdout
    aside = [
        p for p in newest.parent.iterdir() if p.name.startswith("checkpoint_iter_2.pt.corrupt")
    ]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged


# ------------------------------------------------------------------------------------------------
# 5. purge never crosses mount points; leftovers of killed purges are reported


def test_purge_never_deletes_files_on_a_file_system_mounted_inside(tmp_path):
    run(tmp_path, "R")
    mount = tmp_path / "R" / "Logs" / "shared"
    mount.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        (mount / "dataset.bin").write_text("precious")
        result = run(tmp_path, "R", "--purge", check=False)
        assert result.returncode != 0 and "mounted inside it" in result.stderr
        assert (mount / "dataset.bin").read_text() == "precious"
        assert not [p for p in tmp_path.iterdir() if ".purging-" in p.name]
    finally:
        unmount_all_below(tmp_path)


def test_leftover_purging_folders_are_reported(tmp_path):
    run(tmp_path, "R")
    (tmp_path / ".R.purging-12345").mkdir()
    result = run(tmp_path, "R", "--purge")
    assert ".R.purging-12345" in result.stderr and "interrupted" in result.stderr
    listing = speedrun_cli(tmp_path, "ls", ".")
    assert ".R.purging-12345" in listing.stderr


# ------------------------------------------------------------------------------------------------
# 6./7. only the run's own checkpoints count; a planted checkpoint never runs code

_PAYLOAD = textwrap.dedent("""
    import os, pickle, sys
    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + sys.argv[2],))
    target = sys.argv[1]
    if sys.argv[3] == "torch":
        import torch
        torch.save({"format": "speedrun-checkpoint", "version": 1, "step": 999,
                    "experiment_class": None, "state": {"x": Payload()}}, target)
    else:
        with open(target, "wb") as handle:
            pickle.dump({"x": Payload()}, handle, protocol=2)
""")


def _plant(tmp_path: Path, target: Path, kind: str) -> Path:
    witness = tmp_path / f"pwned-{kind}-{target.name}"
    run(tmp_path, str(target), str(witness), kind, code=_PAYLOAD)
    return witness


def test_a_stray_checkpoint_is_ignored_never_pruned_never_loaded(tmp_path):
    training = "{'checkpoint_every': 1, 'checkpoint_keep': 2}"
    run(tmp_path, "R", "--config.steps", "3", "--config.training", training, torch=False)
    weights = tmp_path / "R" / "Weights"
    stray = weights / "checkpoint_iter_1000000.pt"
    witness = _plant(tmp_path, stray, "pickle")
    result = run(tmp_path, "R", "--resume", "--config.steps", "5", torch=False)
    assert "step 5" in result.stdout and "values [0, 1, 2, 3, 4]" in result.stdout
    assert "checkpoint_iter_1000000.pt" in result.stderr and "did not write" in result.stderr
    assert stray.exists() and not witness.exists()
    assert sorted(p.name for p in weights.glob("checkpoint_iter_*.pt")) == [
        "checkpoint_iter_1000000.pt",
        "checkpoint_iter_4.pt",
        "checkpoint_iter_5.pt",
    ]


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_a_planted_checkpoint_never_runs_code(tmp_path, kind):
    run(
        tmp_path,
        "R",
        "--config.steps",
        "1",
        "--config.training",
        "{'checkpoint_every': 1}",
        torch=kind == "torch",
    )
    newest = tmp_path / "R" / "Weights" / "checkpoint_iter_1.pt"
    witness = _plant(tmp_path, newest, kind)  # in place of a file the run wrote
    result = run(tmp_path, "R", "--resume", check=False, torch=kind == "torch")
    assert result.returncode != 0 and not witness.exists()
    assert "Refusing to load checkpoint" in result.stderr
    assert "posix.system" in result.stderr or "os.system" in result.stderr
    assert "--trust-checkpoint" in result.stderr
    if kind == "pickle":  # the explicit opt-in unpickles anything (here: runs the payload)
        run(tmp_path, "R", "--resume", "--trust-checkpoint", check=False, torch=False)
        assert witness.exists()


def test_the_runs_own_checkpoints_with_user_classes_load_by_default(tmp_path):
    code = textwrap.dedent("""
        import collections, dataclasses, sys
        import torch
        from speedrun import BaseExperiment

        @dataclasses.dataclass
        class Stats:
            best: float
            history: list

        class T(BaseExperiment):
            def __init__(self):
                super().__init__()
                self.auto_setup()
                self.model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
                self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.1)
                self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, 2)
                self.stats = Stats(0.0, [])
                self.counts = collections.defaultdict(int)

        experiment = T()
        if experiment._resume_pending:
            experiment.load_from_checkpoint()
            print("resumed", experiment.step, experiment.stats, dict(experiment.counts))
        else:
            experiment.model(torch.randn(4, 2)).sum().backward()
            experiment.optimizer.step()
            experiment.stats.best = 0.5
            experiment.counts["a"] += 2
            experiment.next_step()
            experiment.checkpoint()
    """)
    run(tmp_path, "R", code=code)
    result = run(tmp_path, "R", "--resume", code=code)
    assert "resumed 1 Stats(best=0.5, history=[]) {'a': 2}" in result.stdout


def _envelope(state: dict) -> bytes:
    """A checkpoint as a plain protocol-2 pickle stream (globals spelled ``cMODULE\\nNAME``)."""
    envelope = {"format": "speedrun-checkpoint", "version": 1, "step": 1, "state": state}
    return pickle.dumps({**envelope, "experiment_class": None}, protocol=2)


def _plain_data(kind: str):
    from speedrun import Config, Namespace

    return Namespace(a=1, b=Namespace(c=[2])) if kind == "Namespace" else Config({"lr": 0.5})


@pytest.mark.parametrize(
    "module, kind",
    [
        ("speedrun._namespace", "Namespace"),  # speedrun 0.1
        ("speedrun._config", "Config"),  # speedrun 0.1
        ("speedrun.config._namespace", "Namespace"),  # speedrun-core 0.2.0
        ("speedrun.config._tree", "Config"),  # speedrun-core 0.2.0
    ],
)
def test_former_module_paths_of_speedrun_classes_load(tmp_path, module, kind):
    from speedrun.checkpoint._io import load_checkpoint

    expected = _plain_data(kind)
    data = _envelope({"x": expected})
    public = f"cspeedrun\n{kind}\n".encode()  # what pickles name now: the public home
    assert public in data
    path = tmp_path / "checkpoint_iter_1.pt"
    path.write_bytes(data.replace(public, f"c{module}\n{kind}\n".encode()))
    assert f"{module}\n{kind}".encode() in path.read_bytes()
    for trust in (False, True):
        loaded = load_checkpoint(path, trust=trust).state["x"]
        assert type(loaded) is type(expected) and loaded == expected


@pytest.mark.parametrize("serializer", ["torch", "pickle"])
def test_speedruns_classes_saved_now_load_safely(tmp_path, serializer):
    import pickletools

    from speedrun import Config, Namespace
    from speedrun.checkpoint._io import load_checkpoint, save_checkpoint

    if serializer == "torch":
        pytest.importorskip("torch")
    state = {"config": _plain_data("Config"), "n": _plain_data("Namespace")}
    named = {
        argument
        for opcode, argument, _ in pickletools.genops(pickle.dumps(state, protocol=2))
        if opcode.name == "GLOBAL"
    }
    assert named == {"speedrun Config", "speedrun Namespace"}
    path = save_checkpoint(tmp_path, 1, state, experiment_class="train.T", serializer=serializer)
    loaded = load_checkpoint(path).state  # safe loading, no trust
    assert type(loaded["config"]) is Config and loaded["config"].lookup("lr") == 0.5
    assert type(loaded["n"]) is Namespace and loaded["n"] == state["n"]


def test_in_a_recorded_file_speedruns_data_classes_load_and_its_other_globals_do_not(tmp_path):
    import speedrun
    import speedrun.ext
    from speedrun.checkpoint._files import record_checkpoint
    from speedrun.checkpoint._io import load_checkpoint

    class Planted:
        def __init__(self, call, *args):
            self.call, self.args = call, args

        def __reduce__(self):
            return self.call, self.args

    path = tmp_path / "checkpoint_iter_1.pt"
    record_checkpoint(tmp_path, path.name, [])  # the run's record: its save named no global
    # Config and Namespace are on the allow-list (plain data), under their public path
    path.write_bytes(_envelope({"c": _plain_data("Config"), "n": _plain_data("Namespace")}))
    assert load_checkpoint(path).state["n"].b.c == [2]
    # anything else of speedrun's, as any other global, only when this run's save used it
    for planted in (
        Planted(speedrun.get_rank),
        Planted(speedrun.ext.WriterLock, str(tmp_path)),
        Planted(speedrun.BaseExperiment, str(tmp_path / "R")),
    ):
        path.write_bytes(_envelope({"x": planted}))
        with pytest.raises(speedrun.CheckpointError, match="Refusing") as error:
            load_checkpoint(path)
        named = f"{planted.call.__module__}.{planted.call.__name__}"
        assert f"{named}: this run's own save of the file did not use it" in str(error.value)
    # without a record (a file from elsewhere): still no function is called
    elsewhere = tmp_path / "elsewhere" / path.name
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(_envelope({"x": Planted(speedrun.get_rank)}))
    with pytest.raises(speedrun.CheckpointError, match="speedrun.get_rank: it is a function"):
        load_checkpoint(elsewhere)
    assert not (tmp_path / "R").exists()  # nothing was called


# ------------------------------------------------------------------------------------------------
# 8. YAML alias bombs are refused everywhere a config is read

_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


def test_alias_bombs_are_refused_fast(tmp_path):
    (tmp_path / "bomb.yml").write_text(_BOMB)
    started = time.monotonic()
    for args in (["R1", "--inherit", "bomb.yml"], ["R2", "--macro", "bomb.yml"]):
        result = run(tmp_path, *args, check=False, timeout=30)
        assert result.returncode != 0 and "alias" in result.stderr and "bomb.yml" in result.stderr
    own = tmp_path / "R3" / "Configurations" / "train_config.yml"
    own.parent.mkdir(parents=True)
    own.write_text(_BOMB)
    result = run(tmp_path, "R3", check=False, timeout=30)
    assert result.returncode != 0 and "train_config.yml" in result.stderr
    for command in (["show", "--json", "R3"], ["diff", "R3", "bomb.yml"]):
        result = speedrun_cli(tmp_path, *command)
        assert result.returncode == 2 and "alias" in result.stderr
    assert time.monotonic() - started < 30


# ------------------------------------------------------------------------------------------------
# 9./10. odd run.json values, control characters, git.patch, odd YAML and arguments


@pytest.mark.parametrize(
    "odd",
    [
        {"started_at": "yesterday"},
        {"started_at": 1e300},
        {"ended_at": float("nan")},
        {"command": "x"},
        {"nested": "DEEP"},
    ],
)
def test_odd_run_records_never_crash_ls_or_show(tmp_path, odd):
    run(tmp_path, "good")
    run(tmp_path, "odd")
    record_path = tmp_path / "odd" / "Configurations" / "run.json"
    record = json.loads(record_path.read_text())
    record.update(odd)
    text = json.dumps(record)
    if odd.get("nested"):
        text = text[:-1] + ', "deep": ' + "[" * 100000 + "]" * 100000 + "}"
    record_path.write_text(text)
    listing = speedrun_cli(tmp_path, "ls", ".")
    assert "Traceback" not in listing.stderr and listing.returncode == 1
    assert "good" in listing.stdout and "odd" not in listing.stdout
    assert len([line for line in listing.stderr.splitlines() if "skipped" in line]) == 1
    shown = speedrun_cli(tmp_path, "show", "odd")
    assert "Traceback" not in shown.stderr and shown.returncode == 2
    assert len(shown.stderr.strip().splitlines()) == 1


def test_control_characters_are_stripped_and_the_patch_stays_in_the_run(tmp_path):
    run(tmp_path, "a")
    run(tmp_path, "b", "--config.title", "'\x1b]0;owned\x07\x1b[2Jhello\x9b31m'")
    for run_name in ("a", "b"):
        record_path = tmp_path / run_name / "Configurations" / "run.json"
        record = json.loads(record_path.read_text())
        record["git"] = {
            "revision": "abc",
            "dirty": True,
            "branch": "\x1b[31mmain",
            "patch": "../../../../../../../../dev/zero",
        }
        record_path.write_text(json.dumps(record))
    for command in (["diff", "a", "b"], ["show", "b"], ["show", "--json", "b"], ["ls", "."]):
        result = speedrun_cli(tmp_path, *command, timeout=30)
        assert "Traceback" not in result.stderr, result.stderr
        for char in "\x1b\x07\x9b":
            assert char not in result.stdout + result.stderr, (command, result.stdout)
    assert "hello" in speedrun_cli(tmp_path, "show", "b").stdout


def test_odd_yaml_and_arguments_give_clear_errors(tmp_path):
    (tmp_path / "self.yml").write_text("a: &x [*x]\n")
    (tmp_path / "big.yml").write_text("a: " + "9" * 5000 + "\n")
    run(tmp_path, "R")
    for name in ("self.yml", "big.yml"):
        result = speedrun_cli(tmp_path, "diff", "R", name)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert name in result.stderr
        result = run(tmp_path, "S", "--inherit", name, check=False)
        assert "Traceback (most recent call last)" not in result.stderr.split("Error")[-1]
        assert name in result.stderr and result.returncode != 0
    result = run(tmp_path, "T", "--config.d", "{(1, 2): 3}", check=False)
    assert result.returncode != 0 and "read back" in result.stderr
    assert not (tmp_path / "T" / "Configurations" / "train_config.yml").exists()
    result = subprocess.run(
        [sys.executable, str(tmp_path / "train.py"), "U", "--config.s", os.fsdecode(b"\xff\xfe")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "UTF-8" in result.stderr


# ------------------------------------------------------------------------------------------------
# 11. a forked child neither keeps the lock nor swallows SIGTERM

_FORKING = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from speedrun import BaseExperiment
    from speedrun.distributed import _preemption

    def worker():
        os.write(1, f"child {os.getpid()} {_preemption.installed_signals()}\\n".encode())
        time.sleep(60)

    class T(BaseExperiment):
        pass

    experiment = T()
    experiment.auto_setup()
    child = multiprocessing.get_context("fork").Process(target=worker)
    child.start()
    os.write(1, f"parent {os.getpid()} {_preemption.installed_signals()}\\n".encode())
    time.sleep(60)
""")


def test_a_forked_child_does_not_keep_the_lock_or_the_preemption_handler(tmp_path):
    from speedrun.directory._lock import is_locked

    parent = subprocess.Popen(
        [sys.executable, "-c", _FORKING, "R"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = {}
    for _ in range(2):
        line = parent.stdout.readline()
        kind, pid, handlers = line.split(" ", 2) if line.count(" ") >= 2 else (line, "0", "")
        lines[kind] = (int(pid), handlers.strip())
    assert set(lines) == {"child", "parent"}, (
        lines,
        parent.stderr.read() if parent.poll() is not None else "",
    )
    child_pid = lines["child"][0]
    try:
        assert lines["child"][1] == "()" and lines["parent"][1] != "()"
        assert is_locked(tmp_path / "R")
        parent.kill()
        parent.wait()
        assert os.path.exists(f"/proc/{child_pid}")  # the worker outlives its parent...
        assert not is_locked(tmp_path / "R")  # ...but not the lock
        os.kill(child_pid, signal.SIGTERM)  # and SIGTERM ends it
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{child_pid}/stat") as handle:
                    if handle.read().split(")")[1].split()[0] == "Z":
                        break
            except FileNotFoundError:  # ended and reaped
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the forked child swallowed SIGTERM")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child_pid, signal.SIGKILL)
        parent.kill()
    assert run(tmp_path, "R").returncode == 0  # the next start is not told to kill anyone


def test_a_torch_save_records_its_globals_and_a_file_put_in_its_place_may_name_no_other(
    tmp_path,
):
    import argparse
    import json
    import string

    torch = pytest.importorskip("torch")
    import speedrun
    from speedrun.checkpoint._io import load_checkpoint, save_checkpoint

    state = {"w": torch.ones(2), "ns": argparse.Namespace(lr=0.5)}
    path = save_checkpoint(tmp_path, 1, state, experiment_class="train.T")
    record = json.loads((tmp_path / ".speedrun-checkpoints.json").read_text())
    assert record["files"][path.name]["globals"] == ["argparse.Namespace"]
    assert load_checkpoint(path).state["ns"].lr == 0.5
    # the same name, now holding a class from an imported, harmless module the save never used
    torch.save(
        {
            "format": "speedrun-checkpoint",
            "version": 1,
            "step": 1,
            "experiment_class": None,
            "serializer": "torch",
            "state": {"t": string.Template("$x")},
        },
        path,
    )
    with pytest.raises(speedrun.CheckpointError, match="string.Template: this run's own save"):
        load_checkpoint(path)
    assert load_checkpoint(path, trust=True).state["t"].template == "$x"
