"""The main job: run the example as RUN-0, then RUN-1 inheriting RUN-0 with one change.

Prints both runs' output, the difference between them (``speedrun diff``) and the listing of
the runs (``speedrun ls``).
Run from the repository root: ``python examples/run_example.py`` (or ``hatch run example``).
"""

from __future__ import annotations

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


def speedrun_command(*args: str) -> None:
    """``speedrun ARGS`` (as ``python -m speedrun``, so no PATH set-up is needed)."""
    print("\n$ speedrun", *args, flush=True)
    subprocess.run([sys.executable, "-m", "speedrun", *args], check=False)


def main() -> int:
    root = os.path.join(os.getcwd(), "experiments")
    run_0, run_1 = os.path.join(root, "RUN-0"), os.path.join(root, "RUN-1")
    run(os.path.relpath(run_0), "--inherit", os.path.relpath(BASE), "--purge")
    run(
        os.path.relpath(run_1),
        "--inherit",
        os.path.relpath(run_0),
        "--config.training.lr",
        "0.01",
        "--purge",
    )
    speedrun_command("diff", os.path.relpath(run_0), os.path.relpath(run_1))
    speedrun_command("ls", os.path.relpath(root))
    print("\nSee the curves with:  tensorboard --logdir experiments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
