"""The main job: run the example as RUN-0, then RUN-1 inheriting RUN-0 with one change.

Prints both runs' output and the difference between their resolved configurations.
Run from the repository root: ``python examples/run_example.py`` (or ``hatch run example``).
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "regression", "train.py")
BASE = os.path.join(HERE, "regression", "base_config.yml")


def run(*args: str) -> None:
    command = [sys.executable, SCRIPT, *args]
    print("\n$ python", os.path.relpath(SCRIPT), *args, flush=True)
    subprocess.run(command, check=True)


def config_text(run_directory: str) -> list[str]:
    with open(os.path.join(run_directory, "Configurations", "train_config.yml")) as handle:
        return handle.read().splitlines(keepends=True)


def main() -> int:
    root = os.path.join(os.getcwd(), "experiments")
    run_0, run_1 = os.path.join(root, "RUN-0"), os.path.join(root, "RUN-1")
    run(os.path.relpath(run_0), "--inherit", os.path.relpath(BASE), "--purge")
    run(os.path.relpath(run_1), "--inherit", os.path.relpath(run_0),
        "--config.training.lr", "0.01", "--purge")
    print("\nConfiguration difference RUN-0 -> RUN-1:")
    sys.stdout.writelines(difflib.unified_diff(
        config_text(run_0), config_text(run_1),
        fromfile="RUN-0/Configurations/train_config.yml",
        tofile="RUN-1/Configurations/train_config.yml"))
    print("\nSee the curves with:  tensorboard --logdir experiments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
