"""The asynchronous-save half of ``bench_checkpoint.py --async`` and ``bench_checkpoint_gpu.py``.

Not a benchmark of its own: ``python benchmarks/bench_checkpoint.py --async`` runs it. All
figures are measured in one process, interleaved, against baselines measured in the same run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from typing import Any

from bench_checkpoint import _status, _tensors, make_state, reset_peak, state_bytes

CLASS = "bench.Experiment"
_FIXED_OVERHEAD = 32 * 2**20  # bytes beyond the snapshot buffers allowed at the peak


# ------------------------------------------------------------------------------------------------
# the pieces measured


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class MemcpyFloor:
    """A bare copy of every tensor into buffers allocated once (pinned host memory for CUDA)."""

    def __init__(self, state: dict, device: str) -> None:
        import torch

        pinned = device.startswith("cuda")
        self.pairs = [
            (t, torch.empty(t.shape, dtype=t.dtype, pin_memory=pinned)) for t in _tensors(state)
        ]
        self.device = device

    def __call__(self) -> float:
        started = time.perf_counter()
        for source, buffer in self.pairs:
            buffer.copy_(source, non_blocking=True)
        _sync(self.device)
        return time.perf_counter() - started


def _process_writer(requests: Any, replies: Any) -> None:
    """The writer process of the comparison: torch.save of shared buffers, fsync, rename."""
    import torch

    buffers = requests.get()
    replies.put("ready")
    while True:
        path = requests.get()
        if path is None:
            return
        temp = path + ".tmp"
        with open(temp, "wb") as handle:
            torch.save(buffers, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        replies.put("done")


class ProcessWriter:
    """The alternative to the background thread: a persistent writer process fed from shared
    memory (the torchtitan / NVIDIA resiliency design). A prototype for the measurement only:
    it saves the flat list of tensors, not the whole object structure."""

    def __init__(self, state: dict, folder: str) -> None:
        import torch
        import torch.multiprocessing as mp

        self.sources = list(_tensors(state))
        self.buffers = [torch.empty(t.shape, dtype=t.dtype).share_memory_() for t in self.sources]
        context = mp.get_context("spawn")
        self.requests, self.replies = context.Queue(), context.Queue()
        self.process = context.Process(
            target=_process_writer, args=(self.requests, self.replies), daemon=True
        )
        self.process.start()
        self.requests.put(self.buffers)
        assert self.replies.get(timeout=300) == "ready"
        self.folder, self.pending = folder, False

    def save(self, step: int) -> None:
        self.wait()
        for source, buffer in zip(self.sources, self.buffers, strict=True):
            buffer.copy_(source)
        self.requests.put(os.path.join(self.folder, f"process_{step % 2}.pt"))
        self.pending = True

    def wait(self) -> None:
        if self.pending:
            assert self.replies.get(timeout=600) == "done"
            self.pending = False

    def close(self) -> None:
        self.wait()
        self.requests.put(None)
        self.process.join(timeout=60)
        self.buffers = []


class RawWriter:
    """The floor of any background save: copy the tensors into preallocated buffers, then a
    thread (at the saver's priority) writes their bare bytes to one file, fsyncs and renames it.
    No serialisation, no checkpoint format: what the disk and the CPU cost at least."""

    def __init__(self, state: dict, folder: str) -> None:
        self.copy = MemcpyFloor(state, "cpu")
        self.folder = folder
        self.thread: Any = None

    def save(self, step: int) -> None:
        import threading

        self.wait()
        self.copy()
        self.thread = threading.Thread(target=self._write, args=(step,))
        self.thread.start()

    def _write(self, step: int) -> None:
        from speedrun.checkpoint._async import _yield_cpu_to_training

        _yield_cpu_to_training()
        path = os.path.join(self.folder, f"raw_{step % 2}.bin")
        with open(path + ".tmp", "wb") as handle:
            for _, buffer in self.copy.pairs:
                handle.write(buffer.numpy().data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(path + ".tmp", path)

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None


# ------------------------------------------------------------------------------------------------
# the training loop


class Work:
    """One training step's compute: GIL-free matmuls sized to about ``step_ms``, plus an
    in-place update of one state tensor (so the state really changes between saves)."""

    def __init__(self, state: dict, device: str, step_ms: float) -> None:
        import torch

        self.device = device
        self.layers = [t for t in _tensors(state) if t.dim() == 2]
        size = 4096 if device.startswith("cuda") else 512  # a step of many small kernels on a
        self.a = torch.randn(size, size, device=device) / size**0.5  # GPU would time Python
        self.repeats = 1
        elapsed = min(self._time(1) for _ in range(5))
        self.repeats = max(1, round(step_ms / 1000 / elapsed))
        self.step_s = min(self._time(self.repeats) for _ in range(3))

    def _time(self, repeats: int) -> float:
        started = time.perf_counter()
        self.repeats, saved = repeats, self.repeats
        self(0)
        self.repeats = saved
        return time.perf_counter() - started

    def __call__(self, step: int) -> None:
        x = self.a
        for _ in range(self.repeats):
            x = (x @ self.a).tanh_()
        layer = self.layers[step % len(self.layers)]
        layer.add_(1e-6)
        float(x[0, 0])  # the step ends when its result is known (a host sync on GPUs)


def train(work: Work, steps: int, every: int, save: Any, finish: Any) -> float:
    """Steps per second of ``steps`` steps, saving at the middle of every interval of ``every``
    steps; the wait for the last save is inside the timed span."""
    started = time.perf_counter()
    for step in range(1, steps + 1):
        work(step)
        if save is not None and step % every == every // 2:
            save(step)
    if finish is not None:
        finish()
    return steps / (time.perf_counter() - started)


# ------------------------------------------------------------------------------------------------
# the benchmark


def run_async_benchmark(args: Any) -> None:
    import torch

    from speedrun.checkpoint._async import AsyncSaver
    from speedrun.checkpoint._io import save_checkpoint

    device = args.device
    state = make_state(args.size_mb, device)
    size = state_bytes(state)
    mb = size / 2**20
    folder = tempfile.mkdtemp(prefix="bench_checkpoint_async_", dir=args.dir)
    print(
        f"state: {mb:.0f} MB in {sum(1 for _ in _tensors(state))} tensors on {device}; "
        f"folder: {folder}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"{args.runs} interleaved runs"
    )
    saver = AsyncSaver()
    step = 0

    def async_save(at: int) -> None:
        saver.save(folder, at, state, experiment_class=CLASS, keep=2)

    def sync_save(at: int) -> None:
        save_checkpoint(folder, at, state, experiment_class=CLASS, keep=2)

    try:
        # -- peak memory: the first async save allocates the snapshot buffers ------------------
        save_checkpoint(folder, 0, {"warm": torch.zeros(1)}, experiment_class=CLASS)
        peak = None
        measured = reset_peak()
        before = _status("VmRSS")
        started = time.perf_counter()
        async_save(1)
        first_stall = time.perf_counter() - started
        saver.wait()
        if measured:
            peak = max(0, _status("VmHWM") - before)
        held = saver.buffer_bytes

        # -- stall per save ----------------------------------------------------------------------
        floor = MemcpyFloor(state, device)
        floor()
        times: dict[str, list[float]] = {
            "memcpy": [],
            "async": [],
            "write": [],
            "sync": [],
            "copies": [],
        }
        for run in range(args.runs):
            order = ["memcpy", "async", "sync"]
            for name in order if run % 2 else order[::-1]:
                step += 1
                if name == "memcpy":
                    times["memcpy"].append(floor())
                elif name == "async":
                    started = time.perf_counter()
                    async_save(step)
                    times["async"].append(time.perf_counter() - started)
                    _sync(device)  # device-to-host copies done (GPU only: no cost on CPU)
                    times["copies"].append(time.perf_counter() - started)
                    saver.wait()
                    times["write"].append(time.perf_counter() - started)
                else:
                    started = time.perf_counter()
                    sync_save(step)
                    times["sync"].append(time.perf_counter() - started)
        del floor

        # -- training throughput -----------------------------------------------------------------
        if args.loop_threads:
            torch.set_num_threads(args.loop_threads)
        work = Work(state, device, step_ms=50.0)
        every = max(2, round(args.every_s / work.step_s))
        steps = every * args.intervals
        print(
            f"training loop ({torch.get_num_threads()} threads): {work.step_s * 1000:.0f} ms/step, "
            f"a checkpoint every {every} "
            f"steps (~{args.every_s:g} s), {steps} steps per run"
        )
        loops: dict[str, list[float]] = {
            "none": [],
            "async": [],
            "raw": [],
            "sync": [],
            "process": [],
        }
        raw = RawWriter(state, folder)
        variants: list[tuple[str, Any, Any]] = [
            ("none", None, None),
            ("async", async_save, saver.wait),
            ("raw", raw.save, raw.wait),
            ("sync", sync_save, None),
        ]
        writer = None
        for run in range(args.loop_rounds):
            for name, save, finish in variants if run % 2 else variants[::-1]:
                loops[name].append(train(work, steps, every, save, finish))
        del raw  # its buffers
        if not args.no_process:
            saver.release()  # the process variant brings its own shared buffers
            writer = ProcessWriter(state, folder)
            for _ in range(args.loop_rounds):
                loops["process"].append(train(work, steps, every, writer.save, writer.wait))
                loops["none"].append(train(work, steps, every, None, None))
            writer.close()
        _report(args, mb, size, times, loops, first_stall, peak, held)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _report(
    args: Any,
    mb: float,
    size: int,
    times: dict[str, list[float]],
    loops: dict[str, list[float]],
    first_stall: float,
    peak: int | None,
    held: int,
) -> None:
    med = {key: statistics.median(values) for key, values in times.items() if values}

    def spread(values: list[float]) -> str:
        return f"{min(values):.3f}-{max(values):.3f}"

    def paired(new: str, base: str) -> float:
        return statistics.median(a / b for a, b in zip(times[new], times[base], strict=True))

    print()
    print(
        f"{'per save (' + format(mb, '.0f') + ' MB)':<44} {'median s':>9} {'min-max':>13} "
        f"{'ratio':>7} {'target':>7}  verdict"
    )
    rows = [
        ("bare copy into preallocated buffers", "memcpy", None, None),
        ("async save: stall in the caller", "async", ("memcpy", 1.2), "x copy"),
        ("async save: stall vs synchronous save", "async", ("sync", 0.3), "x sync"),
        ("async save: until the copies are done", "copies", None, None),
        ("async save: until committed (background)", "write", None, None),
        ("synchronous durable save", "sync", None, None),
    ]
    for label, key, target, _unit in rows:
        ratio_text, target_text, verdict = "-", "-", ""
        if target is not None:
            ratio = paired(key, target[0])
            ratio_text, target_text = f"{ratio:.3f}", f"<={target[1]:.2f}"
            verdict = "ok" if ratio <= target[1] else "MISSED"
        print(
            f"{label:<44} {med[key]:>9.3f} {spread(times[key]):>13} {ratio_text:>7} "
            f"{target_text:>7}  {verdict}"
        )
    print(f"{'first async save (allocates the buffers)':<44} {first_stall:>9.3f}")
    print()
    base = statistics.median(loops["none"])
    print(
        f"{'training loop':<44} {'steps/s':>9} {'min-max':>13} {'ratio':>7} {'target':>7}  verdict"
    )
    for name, label, target in (
        ("none", "no checkpoints", None),
        ("async", "async saves (background thread)", 0.95),
        ("raw", "floor: copy + background write of the bytes", None),
        ("sync", "synchronous saves", None),
        ("process", "writer process, shared memory", None),
    ):
        values = loops[name]
        if not values:
            continue
        ratio = statistics.median(values) / base
        verdict = "" if target is None else ("ok" if ratio >= target else "MISSED")
        target_text = f">={target:.2f}" if target is not None else "-"
        print(
            f"{label:<44} {statistics.median(values):>9.2f} "
            f"{min(values):>6.2f}-{max(values):<6.2f} {ratio:>7.3f} {target_text:>7}  {verdict}"
        )
    print()
    print(
        f"snapshot buffers held between saves: {held / 2**20:.1f} MB "
        f"= {held / size:.3f}x state size"
    )
    if peak is not None:
        # One snapshot (the buffers) plus a fixed few MB (the tensor-free pickle, the thread).
        verdict = "ok" if peak <= size + _FIXED_OVERHEAD else "MISSED"
        print(
            f"peak RSS above the live state during the first async save: {peak / 2**20:.1f} MB "
            f"= {peak / size:.3f}x state size (target: one snapshot, <= 1.00x + "
            f"{_FIXED_OVERHEAD // 2**20} MB, i.e. <= 2x in total) {verdict}"
        )
    else:
        print("peak RSS: /proc/self/clear_refs not writable here; not measured")
