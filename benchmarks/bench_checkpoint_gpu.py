"""Asynchronous checkpoint saves of a CUDA state: the figures of ``bench_checkpoint.py --async``
measured on a GPU, in one command that prints a short table (about 2 minutes on an H200).

The state (default 2048 MB of float32: weights, an EMA copy, Adam's two moments) lives on the
GPU. Measured side by side in one process:

- stall per async save in the training thread (snapshot: device-to-host copies queued on a side
  stream into reusable pinned buffers, plus the tensor-free pickle of the structure), against a
  bare copy of every tensor into preallocated pinned buffers (non-blocking, then synchronize:
  target <= 1.2x) and against the synchronous durable save (target <= 0.3x); also the time
  until the copies are complete, and until the background write is committed;
- a training loop of 4096x4096 matmuls (about 50 ms a step) plus an in-place update of one
  state tensor per step, saving every ``--every-s`` seconds' worth of steps: throughput without
  checkpoints, with async saves (target >= 0.95x), with synchronous saves, and with a writer
  process fed from shared host memory;
- peak host RSS above the start during the first async save (it allocates the pinned buffers)
  against the state size.

    python benchmarks/bench_checkpoint_gpu.py [--size-mb 2048] [--runs 5] [--dir /local/disk]

``--device cpu`` runs the same code on the CPU (a dry run where no GPU is available).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs of each save")
    parser.add_argument("--dir", default=None, help="folder on the disk to test (default: temp)")
    parser.add_argument(
        "--every-s", type=float, default=5.0, help="seconds of training between checkpoints"
    )
    parser.add_argument(
        "--intervals", type=int, default=2, help="checkpoint intervals per training-loop run"
    )
    parser.add_argument(
        "--loop-rounds", type=int, default=1, help="runs of each training-loop variant"
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--no-process", action="store_true", help="skip the writer-process comparison"
    )
    args = parser.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(
            "bench_checkpoint_gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); "
            "use --device cpu for a dry run, or bench_checkpoint.py --async on a CPU."
        )
    if args.device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name()}")
    from _bench_async import run_async_benchmark

    run_async_benchmark(args)


if __name__ == "__main__":
    main()
