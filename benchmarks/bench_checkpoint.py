"""Checkpoint save and load: speedrun's atomic, durable checkpoints vs the same work by hand.

The state is ``--size-mb`` (default 256) MB of float32 tensors: half a model state dict, half an
optimizer-like dict (two moment tensors per parameter, as Adam keeps). Variants:

- save, baseline: ``torch.save`` into a temp file, flush, fsync, ``os.replace`` (hand-written);
- save, speedrun: ``save_checkpoint`` (the same, plus the envelope, fsync of the folder,
  temp-file clean-up and discovery);
- load, baseline: ``torch.load(path, weights_only=False)``;
- load, speedrun: ``load_checkpoint`` (format detection, envelope and class checks);
- ``dd if=/dev/zero bs=1M conv=fsync`` of the same size: what the disk does at best.

Peak memory during a save is VmHWM minus VmRSS right before it, after resetting the high-water
mark through ``/proc/self/clear_refs``. Loads read from the page cache for both variants.

Targets (issue 3): save <= 1.1x baseline, load <= 1.05x baseline, peak memory above baseline
during a save <= 1.1x the state size. Runs are interleaved (alternating which variant goes
first); times are medians, ratios the median of the per-run ratios.

    python benchmarks/bench_checkpoint.py [--size-mb 256] [--runs 9] [--dir /tmp]

Asynchronous saves (issue 17), ``--async`` (default state 1024 MB):

    python benchmarks/bench_checkpoint.py --async [--size-mb 1024] [--runs 5] [--every-s 15]
        [--loop-threads N]

- stall per async save (``AsyncSaver.save``: the snapshot, in the calling thread) against a bare
  copy of the state into preallocated buffers (the floor of a consistent snapshot without
  copy-on-write; target <= 1.2x) and against the synchronous durable save (target <= 0.3x);
- a training loop (GIL-free matmuls plus an in-place update of one state tensor per step) that
  checkpoints every ``--every-s`` seconds' worth of steps: throughput without checkpoints,
  with async saves (target >= 0.95x), with the floor of any background save (a copy, then a
  thread writing the bare bytes, no format), with synchronous saves, and with a writer
  *process* fed from shared memory (the alternative to the background thread, measured beside
  it). When the loop keeps every core busy, the floor shows what the write itself takes from it
  (``--loop-threads`` leaves cores to the writer, as a GPU loop or a spare core does);
- peak RSS above the state during the first async save (buffers allocated then) against the
  state size (target <= 1.0x extra, i.e. <= 2x the state in total).

``--device cuda`` (used by ``bench_checkpoint_gpu.py``) keeps the state on the GPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time


def make_state(size_mb: int, device: str = "cpu") -> dict:
    import torch

    # Per layer four 8 MB tensors: the weight, its EMA copy, and Adam's two moments. The model
    # half (weights + EMA) and the optimizer half are the same size.
    layer_bytes = 8 * 2**20
    layers = max(1, size_mb * 2**20 // (4 * layer_bytes))
    generator = torch.Generator().manual_seed(0)
    model, ema, moments = {}, {}, {}
    for index in range(layers):
        shape = (layer_bytes // 4 // 1024, 1024)
        model[f"layers.{index}.weight"] = torch.randn(shape, generator=generator).to(device)
        ema[f"layers.{index}.weight"] = model[f"layers.{index}.weight"].clone()
        moments[index] = {
            "step": torch.tensor(100.0),
            "exp_avg": torch.randn(shape, generator=generator).to(device),
            "exp_avg_sq": torch.rand(shape, generator=generator).to(device),
        }
    optimizer = {
        "state": moments,
        "param_groups": [
            {
                "lr": 1e-3,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 0.0,
                "params": list(range(layers)),
            }
        ],
    }
    return {"model": model, "ema": ema, "optimizer": optimizer, "_step": 100, "_epoch": 3}


def state_bytes(state: dict) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in _tensors(state))


def _status(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def baseline_save(folder: str, state: dict) -> str:
    import torch

    final = os.path.join(folder, "baseline.pt")
    temp = final + ".tmp"
    with open(temp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, final)
    return final


def speedrun_save(folder: str, state: dict, step: int) -> str:
    from speedrun.checkpoint._io import save_checkpoint

    return str(save_checkpoint(folder, step, state, experiment_class="bench.Experiment", keep=1))


def dd(folder: str, size_mb: int) -> float:
    target = os.path.join(folder, "dd.bin")
    started = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={size_mb}", "conv=fsync"],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    os.unlink(target)
    return elapsed


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def peak_during(function, *args) -> int | None:
    if not reset_peak():
        return None
    before = _status("VmRSS")
    function(*args)
    return max(0, _status("VmHWM") - before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size-mb", type=int, default=None, help="state size (default 256; 1024 with --async)"
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="interleaved runs (default 9; 5 with --async)"
    )
    parser.add_argument("--dir", default=None, help="folder on the disk to test (default: temp)")
    parser.add_argument(
        "--async",
        dest="background",
        action="store_true",
        help="measure asynchronous saves (stall, training throughput, memory)",
    )
    parser.add_argument(
        "--every-s",
        type=float,
        default=15.0,
        help="--async: seconds of training between checkpoints",
    )
    parser.add_argument(
        "--intervals",
        type=int,
        default=2,
        help="--async: checkpoint intervals per training-loop run",
    )
    parser.add_argument(
        "--loop-rounds", type=int, default=2, help="--async: runs of each training-loop variant"
    )
    parser.add_argument(
        "--loop-threads",
        type=int,
        default=None,
        help="--async: torch threads of the training loop (default: torch's, every core)",
    )
    parser.add_argument("--device", default="cpu", help="--async: where the state lives")
    parser.add_argument(
        "--no-process", action="store_true", help="--async: skip the writer-process comparison"
    )
    args = parser.parse_args()
    if args.background:
        from _bench_async import run_async_benchmark

        args.size_mb = args.size_mb or 1024
        args.runs = args.runs or 5
        run_async_benchmark(args)
        return
    args.size_mb = args.size_mb or 256
    args.runs = args.runs or 9

    import torch

    from speedrun.checkpoint._io import load_checkpoint

    state = make_state(args.size_mb)
    size = state_bytes(state)
    mb = size / 2**20
    folder = tempfile.mkdtemp(prefix="bench_checkpoint_", dir=args.dir)
    weights = os.path.join(folder, "Weights")
    os.makedirs(weights)
    print(
        f"state: {mb:.0f} MB in {sum(1 for _ in _tensors(state))} tensors; folder: {folder}; "
        f"torch {torch.__version__}; {args.runs} interleaved runs"
    )
    try:
        speedrun_save(weights, state, 0)  # warm-up both paths (imports, first allocation)
        baseline_save(folder, state)
        times: dict[str, list[float]] = {
            k: [] for k in ("save_base", "save_sr", "load_base", "load_sr", "dd")
        }
        peaks: dict[str, list[int]] = {"save_base": [], "save_sr": []}
        for run in range(1, args.runs + 1):
            times["dd"].append(dd(folder, round(mb)))
            # Alternate which variant goes first, so that neither always follows the other's
            # write-back or cache state.
            paths = {}
            saves = [
                ("save_base", baseline_save, (folder, state)),
                ("save_sr", speedrun_save, (weights, state, run)),
            ]
            for key, function, arguments in saves if run % 2 else saves[::-1]:
                elapsed, paths[key] = timed(function, *arguments)
                times[key].append(elapsed)
            loads = [
                ("load_base", lambda p: torch.load(p, weights_only=False), paths["save_base"]),
                ("load_sr", load_checkpoint, paths["save_sr"]),
            ]
            for key, function, path in loads if run % 2 else loads[::-1]:
                elapsed, loaded = timed(function, path)
                times[key].append(elapsed)
                del loaded
            for key, function, arguments in saves:
                if key == "save_sr":
                    arguments = (weights, state, run + 1000)
                peak = peak_during(function, *arguments)
                if peak is not None:
                    peaks[key].append(peak)
        med = {key: statistics.median(values) for key, values in times.items()}

        def paired(new: str, base: str) -> float:
            # The median of per-run ratios: robust to the machine getting busier mid-benchmark.
            return statistics.median(a / b for a, b in zip(times[new], times[base], strict=True))

        rows = [
            ("dd bs=1M conv=fsync (disk bound)", med["dd"], None, None, None),
            ("save: torch.save+fsync+replace", med["save_base"], None, None, None),
            (
                "save: speedrun save_checkpoint",
                med["save_sr"],
                med["save_sr"] / med["save_base"],
                1.10,
                "x baseline save",
            ),
            ("load: torch.load", med["load_base"], None, None, None),
            (
                "load: speedrun load_checkpoint",
                med["load_sr"],
                med["load_sr"] / med["load_base"],
                1.05,
                "x baseline load",
            ),
        ]
        print()
        print(f"{'operation':<36} {'median s':>9} {'MB/s':>8} {'ratio':>7} {'target':>7}  verdict")
        for name, seconds, ratio, target, _unit in rows:
            ratio_text = f"{ratio:.3f}" if ratio is not None else "-"
            target_text = f"<={target:.2f}" if target is not None else "-"
            verdict = "" if ratio is None else ("ok" if ratio <= target else "MISSED")
            print(
                f"{name:<36} {seconds:>9.3f} {mb / seconds:>8.0f} {ratio_text:>7} "
                f"{target_text:>7}  {verdict}"
            )
        best_save = min(times["save_sr"]) / min(times["save_base"])
        best_load = min(times["load_sr"]) / min(times["load_base"])
        print(
            f"{'ratios of the fastest runs':<36} {'':>9} {'':>8} "
            f"save {best_save:.3f}, load {best_load:.3f}"
        )
        print(
            f"{'speedrun save vs dd':<36} {'':>9} {'':>8} "
            f"{med['save_sr'] / med['dd']:>7.3f} {'-':>7}"
        )
        print()
        if peaks["save_sr"]:
            for key, label in (("save_base", "baseline save"), ("save_sr", "speedrun save")):
                peak = statistics.median(peaks[key])
                ratio = peak / size
                verdict = "" if key == "save_base" else ("ok" if ratio <= 1.10 else "MISSED")
                print(
                    f"peak RSS above baseline during {label:<14}: {peak / 2**20:8.1f} MB "
                    f"= {ratio:.3f}x state size  (target <= 1.10x) {verdict}"
                )
        else:
            print("peak RSS: /proc/self/clear_refs not writable here; not measured")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _tensors(value):
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


if __name__ == "__main__":
    main()
