"""Race: N processes run ``train.py RUN --purge`` at the same instant on one existing run.

Each round: a run is set up; a live run may be holding it (``--live``); N processes wait on a
barrier file, then all call ``auto_setup()`` with ``--purge``. Exactly one may get through
set-up (none when a live run holds the directory), the directory of a live run is never
removed, and no process ends up holding a lock file that is not the one at the path.

    python tests/core/hardening/purge_race.py [--rounds 250] [--procs 4] [--live]

Prints one line per problem and a summary; exits 1 when any round went wrong.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

TRAIN = textwrap.dedent("""
    import os, sys, time
    from speedrun import BaseExperiment
    from speedrun._errors import SpeedrunError

    class T(BaseExperiment):
        pass

    barrier, report = os.environ["BARRIER"], os.environ["REPORT"]
    open(f"{barrier}.ready-{os.getpid()}", "w").close()
    while not os.path.exists(barrier):
        time.sleep(0.0005)
    try:
        experiment = T()
        experiment.auto_setup()
    except SpeedrunError as error:
        with open(report, "a") as handle:
            handle.write(f"lost {type(error).__name__}\\n")
        sys.exit(3)
    lock = os.path.join(sys.argv[1], ".speedrun.lock")
    held = os.fstat(experiment._writer_lock._fd)
    now = os.stat(lock)
    same = (held.st_ino == now.st_ino) and held.st_nlink > 0
    config = experiment.get("a")
    with open(report, "a") as handle:
        handle.write(f"won {os.getpid()} same_file={same} a={config}\\n")
    # Hold the run until every other process has reported: a second winner must overlap.
    deadline = time.monotonic() + 30
    procs = int(os.environ.get("PROCS", "1"))
    while time.monotonic() < deadline:
        with open(report) as handle:
            if len(handle.read().splitlines()) >= procs:
                break
        time.sleep(0.01)
""")

LIVE = textwrap.dedent("""
    import os, sys, time
    from speedrun import BaseExperiment

    class T(BaseExperiment):
        pass

    experiment = T()
    experiment.auto_setup()
    with open(os.path.join(sys.argv[1], "Weights", "live.txt"), "w") as handle:
        handle.write("alive")
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes stdin
    alive = os.path.exists(os.path.join(sys.argv[1], "Weights", "live.txt"))
    print("intact" if alive else "REMOVED", flush=True)
""")


def run_rounds(rounds: int, procs: int, live: bool, root: str) -> list[str]:
    problems: list[str] = []
    train = os.path.join(root, "train.py")
    with open(train, "w") as handle:
        handle.write(TRAIN)
    live_script = os.path.join(root, "live.py")
    with open(live_script, "w") as handle:
        handle.write(LIVE)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    for index in range(rounds):
        run = os.path.join(root, f"RUN-{index}")
        os.makedirs(os.path.join(run, "Configurations"))
        with open(os.path.join(run, "Configurations", "train_config.yml"), "w") as handle:
            handle.write("a: 0\n")
        subprocess.run(
            [sys.executable, train, run],
            check=True,
            env=dict(env, BARRIER=root, REPORT=os.path.join(root, "setup.txt")),
        )
        holder = None
        if live:
            holder = subprocess.Popen(
                [sys.executable, live_script, run],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert holder.stdout is not None
            if holder.stdout.readline().strip() != "ready":
                problems.append(f"round {index}: the live run did not start")
                continue
        barrier = os.path.join(root, f"go-{index}")
        report = os.path.join(root, f"report-{index}.txt")
        children = [
            subprocess.Popen(
                [sys.executable, train, run, "--purge", "--config.a", str(n + 1)],
                env=dict(env, BARRIER=barrier, REPORT=report, PROCS=str(procs)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(procs)
        ]
        deadline = time.monotonic() + 60  # every child is waiting at the barrier
        while (
            time.monotonic() < deadline
            and len([n for n in os.listdir(root) if n.startswith(f"go-{index}.ready-")]) < procs
        ):
            time.sleep(0.005)
        open(barrier, "w").close()
        errors = [child.communicate(timeout=60)[1] for child in children]
        with open(report) as handle:
            lines = handle.read().splitlines()
        winners = [line for line in lines if line.startswith("won")]
        expected = 0 if live else 1
        if len(winners) != expected:
            problems.append(f"round {index}: {len(winners)} winners, expected {expected}: {lines}")
        if len(lines) != procs:
            problems.append(
                f"round {index}: {len(lines)} reports from {procs} processes; "
                f"stderr: {[e[-300:] for e in errors if 'Error' in e]}"
            )
        for line in winners:
            if "same_file=True" not in line:
                problems.append(f"round {index}: a winner holds a lock file not at the path")
        if holder is not None:
            out, _ = holder.communicate("", timeout=30)
            if "intact" not in out:
                problems.append(f"round {index}: the live run's directory was removed ({out!r})")
        elif winners:
            with open(os.path.join(run, "Configurations", "train_config.yml")) as handle:
                text = handle.read()
            if f"a: {winners[0].split('a=')[1]}" not in text:
                problems.append(f"round {index}: config does not hold the winner's value: {text}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=250)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--live", action="store_true", help="a live run holds the directory")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as root:
        problems = run_rounds(args.rounds, args.procs, args.live, root)
    for problem in problems:
        print(problem)
    print(
        f"{args.rounds} rounds x {args.procs} processes{' (live run)' if args.live else ''}: "
        f"{len(problems)} problems in {time.monotonic() - started:.0f} s"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
