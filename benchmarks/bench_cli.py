"""The run record's cost at start-up, and ``speedrun ls`` over 1,000 experiment directories.

Part 1, start-up (issue 8 target: the run record adds under 50 ms). Fresh processes doing the
``bench_startup.py`` job (inherit a parent config, two overrides, git revision, dump), interleaved,
median of each:

- ``pyyaml``: the plain PyYAML script of ``bench_startup.py`` (the baseline of issue 2);
- ``speedrun, no record``: ``auto_setup()`` with the run record switched off;
- ``speedrun``: ``auto_setup()`` as shipped, in a clean git tree;
- ``speedrun, dirty tree``: the same with uncommitted changes (``git diff`` writes the patch).

It also times the record alone in-process (start + end, clean and dirty tree).

Part 2, listing (target: 1,000 directories in under 1 s). ``speedrun ls`` and ``speedrun ls
--json`` as whole processes over 1,000 experiment directories (config, run record, two
checkpoints each; finished, crashed and killed runs), against a hand-written script that reads
every ``train_config.yml`` with PyYAML's C loader.

    python benchmarks/bench_cli.py [--runs 15] [--directories 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_startup import ENV, PARENT_CONFIG, PYYAML_SCRIPT

SPEEDRUN_SCRIPT = """\
from speedrun import BaseExperiment
BaseExperiment().auto_setup()
"""

NO_RECORD_SCRIPT = """\
import speedrun.experiment._runinfo
speedrun.experiment._runinfo.start_run_record = lambda *args, **kwargs: None  # the run record switched off
from speedrun import BaseExperiment
BaseExperiment().auto_setup()
"""

HAND_LISTING = """\
import os, sys
import yaml
root = sys.argv[1]
for name in sorted(os.listdir(root)):
    path = os.path.join(root, name, "Configurations", "train_config.yml")
    if os.path.isfile(path):
        with open(path) as handle:
            config = yaml.load(handle, Loader=yaml.CSafeLoader)
        print(name, config.get("git_rev"), len(os.listdir(os.path.join(root, name, "Weights"))))
"""


def timed(command: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start


def git(folder: str, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=b@b", "-c", "user.name=b", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


def make_project(folder: str, dirty: bool) -> None:
    os.makedirs(os.path.join(folder, "RUN-0", "Configurations"))
    with open(os.path.join(folder, "RUN-0", "Configurations", "train_config.yml"), "w") as f:
        f.write(PARENT_CONFIG)
    for name, text in (
        ("speedrun_job.py", SPEEDRUN_SCRIPT),
        ("pyyaml_job.py", PYYAML_SCRIPT),
        ("norecord_job.py", NO_RECORD_SCRIPT),
    ):
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    with open(os.path.join(folder, "model.py"), "w") as f:
        f.write("".join(f"def layer_{i}(x):\n    return x * {i}\n\n" for i in range(200)))
    git(folder, "init", "-q")
    git(folder, "add", "model.py", "speedrun_job.py")
    git(folder, "commit", "-q", "-m", "bench")
    if dirty:
        with open(os.path.join(folder, "model.py"), "a") as f:
            f.write("def extra(x):\n    return x\n")


def bench_startup(work: str, runs: int) -> None:
    clean, dirty = os.path.join(work, "clean"), os.path.join(work, "dirty")
    make_project(clean, dirty=False)
    make_project(dirty, dirty=True)
    overrides = ["--config.training.lr", "0.01", "--config.model.depth", "50"]
    variants = {
        "pyyaml": (
            clean,
            lambda i: [sys.executable, "pyyaml_job.py", f"P-{i}", "--inherit", "RUN-0", *overrides],
        ),
        "speedrun, no record": (
            clean,
            lambda i: [
                sys.executable,
                "norecord_job.py",
                f"N-{i}",
                "--inherit",
                "RUN-0",
                *overrides,
            ],
        ),
        "speedrun": (
            clean,
            lambda i: [
                sys.executable,
                "speedrun_job.py",
                f"S-{i}",
                "--inherit",
                "RUN-0",
                *overrides,
            ],
        ),
        "speedrun, dirty tree": (
            dirty,
            lambda i: [
                sys.executable,
                "speedrun_job.py",
                f"D-{i}",
                "--inherit",
                "RUN-0",
                *overrides,
            ],
        ),
    }
    for folder, make in variants.values():  # warm the OS caches and the bytecode
        timed(make("warm"), folder)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(runs):
        for name, (folder, make) in variants.items():
            times[name].append(timed(make(i), folder))
    assert os.path.isfile(os.path.join(dirty, "D-0", "Configurations", "git_diff.patch"))
    base = statistics.median(times["pyyaml"])
    without = statistics.median(times["speedrun, no record"])
    print(f"start-up, whole processes ({runs} runs each, interleaved)")
    print(f"  {'variant':22s} {'median ms':>10s} {'vs pyyaml':>10s} {'record adds':>12s}")
    for name, values in times.items():
        median = statistics.median(values)
        added = (
            ""
            if name in ("pyyaml", "speedrun, no record")
            else f"{(median - without) * 1e3:+10.1f} ms"
        )
        print(f"  {name:22s} {median * 1e3:10.1f} {median / base:9.2f}x {added:>12s}")

    code = """\
import os, sys, time, statistics, warnings
sys.argv = [os.path.abspath("speedrun_job.py"), "X", "--config.a", "1"]
from speedrun import BaseExperiment
from speedrun.experiment import _runinfo
experiments = [BaseExperiment(f"X-{i}").record_args() for i in range(51)]
experiments.pop()._start_run_record()  # asks git; auto_setup shares that with git_rev
samples = []
for experiment in experiments:
    start = time.perf_counter()
    record = experiment._start_run_record()
    record.finish("finished", 0)
    samples.append(time.perf_counter() - start)
print(statistics.median(samples) * 1e3)
"""
    print("  the record alone, in-process (start + end, git status shared, median of 50):")
    for label, folder in (("clean tree", clean), ("dirty tree", dirty)):
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=folder,
            env=ENV,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        print(f"    {label:12s} {float(out):6.2f} ms")
    print("  target: the run record adds < 50 ms; speedrun <= 1.30x pyyaml (issue 2)")


def make_directories(root: str, count: int) -> None:
    """``count`` experiment directories as real runs leave them (made through speedrun)."""
    from speedrun.checkpoint._io import save_checkpoint
    from speedrun.directory._layout import prepare_experiment_directory
    from speedrun.experiment._runinfo import RunRecord

    template_dir = os.path.join(root, "template")
    saved_argv = sys.argv
    sys.argv = ["train.py", template_dir, "--inherit", "parent", "--config.training.lr", "0.01"]
    try:
        from speedrun import BaseExperiment

        experiment = BaseExperiment(template_dir).record_args()
        template = experiment._start_run_record()
        assert template is not None
        template.finish("finished", 0, step=2000)
        record = dict(template.data)
    finally:
        sys.argv = saved_argv
    shutil.rmtree(template_dir)
    now = time.time()
    for index in range(count):
        directory = os.path.join(root, f"RUN-{index:04d}")
        prepare_experiment_directory(directory)
        with open(os.path.join(directory, "Configurations", "train_config.yml"), "w") as f:
            f.write(PARENT_CONFIG + f"git_rev: {index:040x}\ngit_dirty: false\n")
        data = dict(
            record,
            started_at=now - 3600 * (count - index),
            ended_at=now - 3600 * (count - index) + 1800,
        )
        data["status"] = ("finished", "crashed", "running")[index % 3]  # running: killed
        if data["status"] == "crashed":
            data["exception"] = "RuntimeError"
        data["inherit"] = {
            "argument": "parent",
            "path": os.path.join(root, "parent"),
            "config_file": None,
            "kind": "directory",
        }
        RunRecord(directory, data).write()
        for step in (1000, 2000):
            save_checkpoint(
                os.path.join(directory, "Weights"),
                step,
                {"weights": list(range(200))},
                experiment_class="train.Train",
                serializer="pickle",
            )


def bench_ls(work: str, runs: int, count: int) -> None:
    root = os.path.join(work, "experiments")
    os.makedirs(root)
    start = time.perf_counter()
    make_directories(root, count)
    print(
        f"\nspeedrun ls over {count} experiment directories "
        f"(made in {time.perf_counter() - start:.1f} s; {runs} runs each, interleaved)"
    )
    with open(os.path.join(work, "hand_listing.py"), "w") as f:
        f.write(HAND_LISTING)
    variants = {
        "hand-written pyyaml loop": [sys.executable, "hand_listing.py", root],
        "speedrun ls": [sys.executable, "-m", "speedrun", "ls", root],
        "speedrun ls --json": [sys.executable, "-m", "speedrun", "ls", "--json", root],
    }
    listed = subprocess.run(
        variants["speedrun ls --json"],
        cwd=work,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = json.loads(listed)
    assert len(rows) == count, len(rows)
    assert {row["status"] for row in rows} == {"finished", "crashed", "killed"}
    assert {row["step"] for row in rows} == {2000}
    for command in variants.values():
        timed(command, work)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, command in variants.items():
            times[name].append(timed(command, work))
    base = statistics.median(times["hand-written pyyaml loop"])
    print(f"  {'variant':26s} {'median ms':>10s} {'vs pyyaml loop':>15s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:26s} {median * 1e3:10.1f} {median / base:14.2f}x")
    print(f"  target: {count} directories in < 1000 ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--directories", type=int, default=1000)
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="speedrun-bench-cli-")
    try:
        bench_startup(work, options.runs)
        bench_ls(work, max(options.runs // 3, 3), options.directories)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
