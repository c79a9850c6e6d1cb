"""Sharded checkpoints: speedrun's ``checkpoint()``/``load_from_checkpoint()`` vs DCP by hand.

An MLP of about ``--size-mb`` MB of float32 parameters (plus Adam's two moments, so the
checkpoint is three times that) is sharded with FSDP2 (``fully_shard``) over ``--nproc``
processes (gloo on CPU; on GPUs the same code runs with NCCL). Variants, interleaved (which one
goes first alternates) and each timed on rank 0 between two barriers:

- save, baseline: what one writes by hand with DCP: ``get_state_dict(model, optimizer)`` and
  ``dcp.save`` into a fresh directory (``FileSystemWriter``, fsync on);
- save, speedrun: ``experiment.checkpoint()`` (the same DCP save, plus the envelope with the
  rest of the state and rank 0's random state, the other ranks' random states, the temporary
  directory, the commit marker, fsyncs, the rename, retention bookkeeping);
- load, baseline: ``get_state_dict`` + ``dcp.load`` + ``set_state_dict``;
- load, speedrun: ``experiment.load_from_checkpoint(step)`` (discovery, commit check, envelope,
  the same DCP load, each rank's random state).

Deleting the previous run's directories is not timed for either. speedrun's part is a fixed
cost per save (three small fsynced files, a directory fsync, a rename, two small collectives),
so the ratio falls with the checkpoint's size; on a busy disk the fsyncs dominate small runs.
Target (issue 19): speedrun adds <= 10% (save and load ratios <= 1.10); times are medians,
ratios the median of the per-run ratios.

    python benchmarks/bench_sharded.py [--size-mb 64] [--nproc 2] [--runs 16] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def _launch(args: argparse.Namespace) -> int:
    """Start this script under torchrun (the parent process only launches)."""
    env = dict(
        os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), BENCH_SHARDED_WORKER="1"
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={args.nproc}",
        os.path.abspath(__file__),
        "--size-mb",
        str(args.size_mb),
        "--runs",
        str(args.runs),
        "--dir",
        args.dir,
    ]
    return subprocess.call(command, env=env)


def _worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.checkpoint import state_dict_loader, state_dict_saver
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from speedrun import BaseExperiment

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    width = 1024
    layers = max(1, args.size_mb * 2**20 // (4 * width * width))
    torch.manual_seed(0)
    model = torch.nn.Sequential(*(torch.nn.Linear(width, width) for _ in range(layers)))
    for layer in model:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, width)).sum().backward()
    optimizer.step()  # Adam's moments exist: the optimizer state is twice the model

    root = args.dir if rank == 0 else ""
    shared = [root]
    dist.broadcast_object_list(shared)
    folder = shared[0]
    experiment = BaseExperiment(os.path.join(folder, "RUN"))
    experiment.model, experiment.optimizer = model, optimizer
    experiment.losses = [0.5] * 1000  # the rest of the state: plain attributes
    weights = os.path.join(folder, "RUN", "Weights")

    def timed(action) -> float:  # type: ignore[no-untyped-def]  # the timed action is any callable
        dist.barrier()
        start = time.perf_counter()
        action()
        dist.barrier()
        return time.perf_counter() - start

    def clean() -> None:
        dist.barrier()
        if rank == 0:
            for name in os.listdir(folder):
                if name != "RUN":
                    shutil.rmtree(os.path.join(folder, name))
            for name in os.listdir(weights) if os.path.isdir(weights) else []:
                path = os.path.join(weights, name)
                if os.path.isdir(path):  # the checkpoints; the run's record file stays
                    shutil.rmtree(path)
        dist.barrier()

    def save_by_hand(run: int) -> None:
        model_state, optimizer_state = get_state_dict(model, optimizer)
        state_dict_saver.save(
            {"model": model_state, "optimizer": optimizer_state},
            checkpoint_id=os.path.join(folder, f"hand_{run}"),
        )

    def load_by_hand(run: int) -> None:
        model_state, optimizer_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optimizer": optimizer_state}
        state_dict_loader.load(state, checkpoint_id=os.path.join(folder, f"hand_{run}"))
        set_state_dict(
            model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"]
        )

    def save_speedrun(run: int) -> None:
        experiment._step = run
        experiment.checkpoint()

    def load_speedrun(run: int) -> None:
        experiment.load_from_checkpoint(run)

    times: dict[str, list[float]] = {
        name: [] for name in ("save_hand", "save_speedrun", "load_hand", "load_speedrun")
    }
    for run in range(args.runs + 1):  # run 0 warms both paths up and is not counted
        clean()
        order = [("hand", save_by_hand, load_by_hand), ("speedrun", save_speedrun, load_speedrun)]
        if run % 2:
            order.reverse()
        results = {}
        for name, save, _ in order:
            results[f"save_{name}"] = timed(lambda save=save, run=run: save(run))
        for name, _, load in order:
            results[f"load_{name}"] = timed(lambda load=load, run=run: load(run))
        if run:
            for key, value in results.items():
                times[key].append(value)
    clean()
    if rank != 0:
        return
    state_mb = 3 * sum(p.numel() for p in model.parameters()) * 4 / 2**20
    print(
        f"FSDP2 over {world} processes, checkpoint {state_mb:.0f} MB (model + Adam), "
        f"{args.runs} runs, medians:"
    )
    for kind in ("save", "load"):
        hand, ours = times[f"{kind}_hand"], times[f"{kind}_speedrun"]
        ratio = statistics.median(o / h for o, h in zip(ours, hand, strict=True))
        verdict = "ok" if ratio <= 1.10 else "ABOVE TARGET"
        extra = statistics.median(o - h for o, h in zip(ours, hand, strict=True))
        print(
            f"  {kind}: DCP by hand {statistics.median(hand) * 1000:8.1f} ms   speedrun "
            f"{statistics.median(ours) * 1000:8.1f} ms   ratio {ratio:.3f} (target <= 1.10: "
            f"{verdict}); speedrun adds {extra * 1000:+.1f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    if os.environ.get("BENCH_SHARDED_WORKER"):
        _worker(args)
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench_sharded_") as folder:
        args.dir = folder
        return _launch(args)


if __name__ == "__main__":
    raise SystemExit(main())
