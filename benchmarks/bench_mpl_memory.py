"""Figures in a long run: memory and time of speedrun-mpl against the same work by hand.

Every variant draws ``--figures`` (default 500) figures of 200 x 200 pixels, one line each,
after a warm-up of 30, in a fresh process, and reports the growth of resident memory (RSS)
and the time per figure:

- hand, no close: ``plt.figure()`` + ``fig.savefig(path)`` — the classic leak, pyplot keeps
  every figure alive;
- hand, closed: the same plus ``plt.close(fig)`` — what a careful user writes;
- speedrun save_figure: ``plt.figure()`` + ``exp.save_figure(tag, fig)`` (closes, atomic write);
- speedrun new_figure: ``exp.new_figure()`` + ``exp.save_figure(tag, fig)`` (pyplot never
  sees the figure);
- figure2array, hand: ``FigureCanvasAgg(fig).draw()`` + ``np.array(canvas.buffer_rgba())``;
- figure2array, speedrun: ``exp.figure2array(fig)``.

Targets (issue 5): memory flat for speedrun (growth within noise, far below the leak), time per
figure <= 1.1x the careful hand-written version.

    python benchmarks/bench_mpl_memory.py [--figures 500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

VARIANTS = (
    "hand, no close",
    "hand, closed",
    "speedrun save_figure",
    "speedrun new_figure",
    "figure2array, hand",
    "figure2array, speedrun",
)
WARM_UP = 30


def run_variant(variant: str, figures: int) -> dict[str, float]:
    """Run one variant in this process; return RSS growth (MB) and time per figure (ms)."""
    import gc
    import time

    import matplotlib

    matplotlib.use("agg")  # the benchmark picks a headless backend; the library never does
    import matplotlib.pyplot as plt
    import numpy as np
    import psutil
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.lines import Line2D

    from speedrun import BaseExperiment
    from speedrun.mixins.mpl import MatplotlibMixin

    class Experiment(MatplotlibMixin, BaseExperiment):
        pass

    folder = tempfile.mkdtemp(prefix="bench_mpl_")
    exp = Experiment(os.path.join(folder, "exp"))
    by_hand = os.path.join(folder, "by_hand")
    os.makedirs(by_hand)

    def line(figure: object, index: int) -> None:
        figure.add_artist(  # type: ignore[attr-defined]  # matplotlib is imported lazily, the figure is untyped here
            Line2D([0, 1], [0, (index % 10) / 10], transform=figure.transFigure)  # type: ignore[attr-defined]  # matplotlib is imported lazily, the figure is untyped here
        )

    def one(index: int) -> None:
        if variant == "speedrun new_figure":
            figure = exp.new_figure(figsize=(2, 2), dpi=100)
        else:
            figure = plt.figure(figsize=(2, 2), dpi=100)
        line(figure, index)
        if variant.startswith("hand"):
            figure.savefig(os.path.join(by_hand, f"loss_step_{index}.png"), format="png")
            if variant == "hand, closed":
                plt.close(figure)
        elif variant.startswith("speedrun"):
            exp.save_figure("curves/loss", figure)
            exp.next_step()
        elif variant == "figure2array, hand":
            canvas = FigureCanvasAgg(figure)
            canvas.draw()
            np.array(canvas.buffer_rgba())[..., :3].copy()
            plt.close(figure)
        else:
            exp.figure2array(figure)
            plt.close(figure)

    for index in range(WARM_UP):
        one(index)
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    start = time.perf_counter()
    for index in range(figures):
        one(index)
    elapsed = time.perf_counter() - start
    gc.collect()
    grown = process.memory_info().rss - before
    return {"rss_growth_mb": grown / 2**20, "ms_per_figure": 1000 * elapsed / figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", type=int, default=500)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.figures)))
        return

    results = {}
    for variant in VARIANTS:
        output = subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--figures", str(args.figures)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[variant] = json.loads(output.strip().splitlines()[-1])

    print(
        f"{args.figures} figures of 200 x 200 px after {WARM_UP} warm-up figures, "
        f"each variant in a fresh process\n"
    )
    print(f"{'variant':<24} {'RSS growth':>11} {'ms/figure':>10} {'time ratio':>11}")
    baselines = {
        "hand": "hand, closed",
        "speedrun": "hand, closed",
        "figure2array": "figure2array, hand",
    }
    for variant, result in results.items():
        base = results[baselines[variant.split(",")[0].split(" ")[0]]]
        ratio = result["ms_per_figure"] / base["ms_per_figure"]
        print(
            f"{variant:<24} {result['rss_growth_mb']:>8.1f} MB {result['ms_per_figure']:>10.2f} "
            f"{ratio:>10.2f}x"
        )
    leak = results["hand, no close"]["rss_growth_mb"]
    ours = results["speedrun save_figure"]["rss_growth_mb"]
    print(
        f"\nmemory: save_figure grows RSS by {ours:.1f} MB where the unclosed loop grows it by "
        f"{leak:.1f} MB ({ours / leak:.3f}x)"
        if leak > 0
        else ""
    )
    print(
        "time ratios: speedrun rows against 'hand, closed'; figure2array rows against "
        "'figure2array, hand'. Target <= 1.1x."
    )


if __name__ == "__main__":
    main()
