"""Per-step bookkeeping: ``get('a/b/c')`` and ``next_step()`` against the alternatives.

Targets (issue 2): ``get`` at most 3x a plain nested-dict lookup; ``next_step()`` plus a ``get``
under 1 microsecond. Every number is measured in this run; ratios are against the plain lookup.

    python benchmarks/bench_config_get.py
"""

from __future__ import annotations

import timeit

from speedrun import BaseExperiment

NUMBER = 1_000_000
REPEAT = 7

CONFIG = {"training": {"optimizer": {"lr": 0.1, "name": "Adam"}, "epochs": 10}, "seed": 0}


def original_get(config: dict, tag: str, default=None):
    """The original speedrun getter, re-implemented: split the path on every call."""
    paths = tag.split("/")
    data = config
    for path in paths:
        data = data.get(path, default if path == paths[-1] else {})
    return data


def best(statement: str, namespace: dict) -> float:
    """Best-of-REPEAT seconds per call."""
    return min(timeit.repeat(statement, globals=namespace, number=NUMBER, repeat=REPEAT)) / NUMBER


def main() -> None:
    experiment = BaseExperiment()
    experiment._config = CONFIG
    namespace = {"config": CONFIG, "experiment": experiment, "original_get": original_get}
    rows = [
        (
            "plain dict: config['training']['optimizer']['lr']",
            "config['training']['optimizer']['lr']",
        ),
        (
            "speedrun: experiment.get('training/optimizer/lr')",
            "experiment.get('training/optimizer/lr')",
        ),
        (
            "original speedrun getter (split every call)",
            "original_get(config, 'training/optimizer/lr')",
        ),
    ]
    try:
        from omegaconf import OmegaConf

        namespace["omega"] = OmegaConf.create(CONFIG)
        namespace["OmegaConf"] = OmegaConf
        rows.append(("OmegaConf: cfg.training.optimizer.lr", "omega.training.optimizer.lr"))
        rows.append(
            (
                "OmegaConf.select(cfg, 'training.optimizer.lr')",
                "OmegaConf.select(omega, 'training.optimizer.lr')",
            )
        )
    except ImportError:
        print("(omegaconf not installed: its rows are skipped)")
    baseline = best(rows[0][1], namespace)
    print(f"{'what':55s} {'ns/call':>9s} {'ratio':>7s}")
    for label, statement in rows:
        seconds = baseline if statement == rows[0][1] else best(statement, namespace)
        print(f"{label:55s} {seconds * 1e9:9.1f} {seconds / baseline:6.2f}x")
    step = best("experiment.next_step(); experiment.get('training/optimizer/lr')", namespace)
    print(f"{'next_step() + get(...)':55s} {step * 1e9:9.1f}   (target < 1000 ns)")
    print("targets: speedrun get <= 3.00x plain dict; next_step()+get < 1 us")


if __name__ == "__main__":
    main()
