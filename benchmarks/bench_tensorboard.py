"""Benchmark: TensorboardMixin.log_scalar against raw tensorboardX (and what users pick instead).

Each variant logs one scalar over ``--steps`` steps (default 20,000), once on every step and
once on every 10th step, in a fresh subprocess; the time runs from the first call to the last
event on disk (the writer's ``close()`` returned) and the event files are read back to check
that every variant wrote exactly the expected events. Each subprocess repeats each scenario
``--repeats`` times with a fresh writer and keeps the fastest (load from other processes only
adds time); rounds run the variants in a shuffled order; the table shows the median over the
rounds and the ratio to the baseline.

Variants
--------
tensorboardX         the baseline: ``SummaryWriter.add_scalar`` as ``pip install tensorboardX``
                     installs it, i.e. without the optional ``crc32c`` package (blocked here)
tensorboardX+crc32c  the same with ``crc32c`` importable (to show how much of the gain is that)
torch.utils.tb       ``torch.utils.tensorboard.SummaryWriter.add_scalar`` (if importable)
lightning            Lightning's ``TensorBoardLogger.log_metrics`` (if importable:
                     ``pip install lightning torch==2.13.0``)
speedrun             ``TensorboardMixin.log_scalar`` (+ ``next_step()``, + the
                     ``log_scalars_now`` gate on the every-10th run) with its dependencies

Targets (issue 18): speedrun <= 0.30x the baseline, and below torch.utils.tb and lightning,
in the same run; the last table prints the per-round ratios against each of them.

Then the cost of one ``log_scalars_now`` check is timed in-process.

Usage: ``python benchmarks/bench_tensorboard.py [--steps 20000] [--rounds 5] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit

TAG = "loss"
VARIANTS = ["tensorboardX", "tensorboardX+crc32c", "torch.utils.tb", "lightning", "speedrun"]
BASELINE = "tensorboardX"
SCENARIOS = {"every step": 1, "every 10th step": 10}
_WRITER_USED: list[str] = []


# -- one variant in this (sub)process ----------------------------------------------------------
def _count_loss_events(directory: str) -> int:
    if "crc32c" in sys.modules and sys.modules["crc32c"] is None:
        del sys.modules["crc32c"]  # the baseline blocked it; the check may use it
    from speedrun.mixins.tensorboard._events import read_scalars

    return sum(
        len(points)
        for tag, points in read_scalars(directory).items()
        if tag.rpartition("/")[2] == TAG
    )


def _run_raw(writer_factory, directory: str, steps: int, every: int) -> tuple[float, float]:
    writer = writer_factory(directory)
    start, cpu = time.perf_counter(), time.process_time()
    for step in range(steps):
        value = 1.0 / (step + 1)
        if step % every == 0:
            writer.add_scalar(TAG, value, step)
    writer.close()
    return time.perf_counter() - start, time.process_time() - cpu


def _run_lightning(directory: str, steps: int, every: int) -> tuple[float, float]:
    try:
        from lightning.pytorch.loggers import TensorBoardLogger
    except ImportError:
        from pytorch_lightning.loggers import TensorBoardLogger
    logger = TensorBoardLogger(directory, name="", version="")
    _WRITER_USED.append(type(logger.experiment).__module__)  # created before timing
    start, cpu = time.perf_counter(), time.process_time()
    for step in range(steps):
        value = 1.0 / (step + 1)
        if step % every == 0:
            logger.log_metrics({TAG: value}, step)
    logger.finalize("success")
    return time.perf_counter() - start, time.process_time() - cpu


def _run_speedrun(directory: str, steps: int, every: int) -> tuple[float, float]:
    from speedrun import BaseExperiment
    from speedrun.mixins.tensorboard import TensorboardMixin

    class Experiment(TensorboardMixin, BaseExperiment):
        pass

    experiment = Experiment(directory)
    experiment.set("tensorboard/log_scalars_every", every)
    _ = experiment.logger  # create the writer before timing, as for the other variants
    start, cpu = time.perf_counter(), time.process_time()
    if every == 1:
        for _ in range(steps):
            value = 1.0 / (experiment.step + 1)
            experiment.log_scalar(TAG, value)
            experiment.next_step()
    else:
        for _ in range(steps):
            value = 1.0 / (experiment.step + 1)
            if experiment.log_scalars_now:
                experiment.log_scalar(TAG, value)
            experiment.next_step()
    experiment.execute_hooks("clean_up")  # flush + close: the last event is on disk
    return time.perf_counter() - start, time.process_time() - cpu


def worker(variant: str, steps: int, repeats: int) -> dict[str, object]:
    if variant == BASELINE:
        sys.modules["crc32c"] = None  # type: ignore[assignment]  # as `pip install tensorboardX`
    if variant.startswith("tensorboardX"):
        import tensorboardX
        from tensorboardX import crc32c as tbx_crc

        native = tbx_crc._crc32c_native is not None
        info = f"tensorboardX {tensorboardX.__version__}, native crc32c: {native}"

        def run(directory: str, every: int) -> tuple[float, float]:
            return _run_raw(tensorboardX.SummaryWriter, directory, steps, every)
    elif variant == "torch.utils.tb":
        import torch
        from torch.utils.tensorboard import SummaryWriter

        info = f"torch {torch.__version__}"

        def run(directory: str, every: int) -> tuple[float, float]:
            return _run_raw(SummaryWriter, directory, steps, every)
    elif variant == "lightning":
        try:
            import lightning as package
        except ImportError:
            import pytorch_lightning as package  # type: ignore[no-redef]  # lightning, when installed, bound it above
        info = f"{package.__name__} {package.__version__}"

        def run(directory: str, every: int) -> tuple[float, float]:
            return _run_lightning(directory, steps, every)
    else:
        import tensorboardX
        from tensorboardX import crc32c as tbx_crc

        info = (
            f"tensorboardX {tensorboardX.__version__}, native crc32c: "
            f"{tbx_crc._crc32c_native is not None}"
        )

        def run(directory: str, every: int) -> tuple[float, float]:
            return _run_speedrun(directory, steps, every)

    results: dict[str, object] = {}
    for scenario, every in SCENARIOS.items():
        measured = []
        for _ in range(repeats):
            directory = tempfile.mkdtemp(prefix="bench-tb-")
            try:
                measured.append(run(os.path.join(directory, "run"), every))
                events = _count_loss_events(os.path.join(directory, "run"))
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            expected = len(range(0, steps, every))
            if events != expected:
                raise SystemExit(
                    f"{variant} / {scenario}: {events} events on disk, expected {expected}"
                )
        # The fastest repeat: other processes on the machine can only add time.
        results[scenario] = min(measured)
    if _WRITER_USED:
        info += f" (its writer: {_WRITER_USED[0]})"
    results["info"] = info
    return results


def _available(variant: str) -> str | None:
    """``None`` if the variant can run here, else why not."""
    import importlib.util

    needs = {
        "torch.utils.tb": ["torch", "tensorboard"],
        "lightning": ["lightning|pytorch_lightning"],
    }
    for requirement in needs.get(variant, []):
        if not any(importlib.util.find_spec(name) for name in requirement.split("|")):
            return f"not installed ({requirement.replace('|', ' or ')})"
    return None


# -- the log_scalars_now gate -----------------------------------------------------------------
def gate_costs(number: int = 200_000, repeat: int = 7) -> dict[str, float]:
    from speedrun import BaseExperiment
    from speedrun.mixins.tensorboard import TensorboardMixin

    class Experiment(TensorboardMixin, BaseExperiment):
        pass

    directory = tempfile.mkdtemp(prefix="bench-tb-gate-")
    try:
        experiment = Experiment(os.path.join(directory, "run"))
        experiment.set("tensorboard/log_scalars_every", 10)
        step = 7
        statements = {
            "raw `step % 10 == 0`": ("step % 10 == 0", {"step": step}),
            "experiment.get(key)": ("e.get('tensorboard/log_scalars_every')", {"e": experiment}),
            "experiment.log_scalars_now": ("e.log_scalars_now", {"e": experiment}),
            "experiment.next_step() (core)": ("e.next_step()", {"e": experiment}),
        }
        costs = {}
        for name, (statement, namespace) in statements.items():
            best = min(timeit.repeat(statement, globals=namespace, number=number, repeat=repeat))
            costs[name] = best / number * 1e6
        experiment.set("tensorboard/log_scalars_every", None)
        best = min(
            timeit.repeat(
                "e.log_scalars_now", globals={"e": experiment}, number=number, repeat=repeat
            )
        )
        costs["log_scalars_now (unset)"] = best / number * 1e6
        return costs
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- driver ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs per variant and round (fresh writer each); the fastest counts",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.repeats)))
        return

    variants = []
    for variant in VARIANTS:
        reason = _available(variant)
        if reason is None:
            variants.append(variant)
        else:
            print(f"skipping {variant}: {reason}")
    # times[variant][scenario] = [(wall, cpu) per round]
    times: dict[str, dict[str, list[tuple[float, float]]]] = {
        v: {s: [] for s in SCENARIOS} for v in variants
    }
    infos: dict[str, str] = {}
    print(
        f"{args.steps} steps, {args.rounds} rounds x {args.repeats} repeats (fastest "
        f"repeat per round, median over rounds), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for round_index in range(args.rounds):
        order = variants[:]
        random.shuffle(order)
        for variant in order:
            completed = subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--worker",
                    variant,
                    "--steps",
                    str(args.steps),
                    "--repeats",
                    str(args.repeats),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if completed.returncode != 0:
                raise SystemExit(f"{variant} failed:\n{completed.stderr}")
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            infos[variant] = str(result.pop("info"))
            for scenario in SCENARIOS:
                wall, cpu = result[scenario]
                times[variant][scenario].append((float(wall), float(cpu)))
        print(
            f"  round {round_index + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.1f})"
        )

    print()
    for variant in variants:
        print(f"{variant:20s} {infos[variant]}")
    for scenario in SCENARIOS:
        print(
            f"\n{scenario}: seconds to the last event on disk (wall) and CPU seconds of the "
            f"process; median over rounds and best of all runs; ratio = variant / {BASELINE}"
        )
        print(
            f"  {'variant':20s} {'median wall':>11s} {'ratio':>6s}  {'median cpu':>10s} "
            f"{'ratio':>6s}  {'best wall':>9s} {'ratio':>6s}"
        )
        base = [statistics.median(x) for x in zip(*times[BASELINE][scenario])]
        base_best = min(wall for wall, _ in times[BASELINE][scenario])
        for variant in variants:
            wall, cpu = (statistics.median(x) for x in zip(*times[variant][scenario]))
            best = min(w for w, _ in times[variant][scenario])
            print(
                f"  {variant:20s} {wall:11.3f} {wall / base[0]:5.2f}x  {cpu:10.3f} "
                f"{cpu / base[1]:5.2f}x  {best:9.3f} {best / base_best:5.2f}x"
            )
    targets = {BASELINE: 0.30, "torch.utils.tb": 1.0, "lightning": 1.0}
    for other, target in targets.items():
        if other not in times:
            print(f"\nspeedrun / {other}: not measured ({_available(other)})")
            continue
        print(
            f"\nspeedrun / {other} wall-time ratio per round (same round; target "
            f"{'<=' if other == BASELINE else '<'} {target:.2f}):"
        )
        for scenario in SCENARIOS:
            ratios = [
                ours[0] / base[0]
                for ours, base in zip(times["speedrun"][scenario], times[other][scenario])
            ]
            median = statistics.median(ratios)
            met = median <= target if other == BASELINE else median < target
            print(
                f"  {scenario:16s} median {median:.2f}x ({'met' if met else 'MISSED'})   "
                f"rounds: " + " ".join(f"{r:.2f}" for r in ratios)
            )
    print()
    print("gate cost per check (best of 7 x 200,000):")
    for name, cost in gate_costs().items():
        print(
            f"  {name:30s} {cost:6.3f} us"
            + ("   (target <= 1 us)" if name == "experiment.log_scalars_now" else "")
        )


if __name__ == "__main__":
    main()
