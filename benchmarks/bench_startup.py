"""Whole-process start-up: ``import speedrun`` + a full ``auto_setup`` vs the same job by hand.

Each variant is a fresh Python process doing the same work: read a parent run's config
(``--inherit``), apply two overrides, record the git revision, create the run folder and dump
the resolved config. Variants:

- ``pyyaml``: a plain script with PyYAML and ``subprocess`` (the baseline);
- ``speedrun``: ``BaseExperiment().auto_setup()`` (also takes the writer lock, writes the marker,
  checks overrides against the parent and writes atomically and durably);
- ``hydra``: a ``@hydra.main`` app with the same config and overrides (if hydra-core is
  installed), which writes its own copy of the config into its run folder.

Target (issue 2): speedrun at most 1.3x the PyYAML script, and at least 5x faster than Hydra.
Runs are interleaved round by round; ratios are medians of the per-round ratios.

    python benchmarks/bench_startup.py [--runs 31]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

PARENT_CONFIG = textwrap.dedent("""\
    seed: 0
    data:
      root: /data/cifar
      batch_size: 128
      num_workers: 4
      augment: {flip: true, crop: 32, jitter: 0.1}
    model:
      name: resnet
      depth: 18
      width: 64
      dropout: 0.1
    training:
      lr: 0.1
      momentum: 0.9
      weight_decay: 0.0005
      epochs: 90
      checkpoint_every: 1000
      schedule: {name: cosine, warmup: 5}
    tensorboard:
      log_scalars_every: 10
      log_images_every: 500
    """)

SPEEDRUN_SCRIPT = """\
from speedrun import BaseExperiment
BaseExperiment().auto_setup()
"""

PYYAML_SCRIPT = """\
import ast, os, subprocess, sys
import yaml
run, parent = sys.argv[1], sys.argv[3]
with open(os.path.join(parent, "Configurations", "train_config.yml")) as f:
    config = yaml.safe_load(f)
for flag, value in zip(sys.argv[4::2], sys.argv[5::2]):
    node = config
    *parents, last = flag[len("--config."):].split(".")
    for key in parents:
        node = node.setdefault(key, {})
    try:
        node[last] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        node[last] = value
try:
    rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    rev = None
config["git_rev"] = rev or None
for sub in ("Configurations", "Logs", "Weights", "Plots"):
    os.makedirs(os.path.join(run, sub), exist_ok=True)
with open(os.path.join(run, "Configurations", "train_config.yml"), "w") as f:
    yaml.safe_dump(config, f, sort_keys=False)
"""

HYDRA_SCRIPT = """\
import subprocess
import hydra
from omegaconf import OmegaConf

@hydra.main(version_base=None, config_path="conf", config_name="train_config")
def main(cfg):
    rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    OmegaConf.set_struct(cfg, False)
    cfg.git_rev = rev or None

if __name__ == "__main__":
    main()
"""


# Bytecode caching as on any normal install (pip compiles wheels; editable installs cache on
# first import). Some shells export PYTHONDONTWRITEBYTECODE, which would make every run
# recompile speedrun's sources while PyYAML's and Hydra's were compiled by pip at install.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=31)
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="speedrun-bench-startup-")
    try:
        os.makedirs(os.path.join(work, "RUN-0", "Configurations"))
        with open(os.path.join(work, "RUN-0", "Configurations", "train_config.yml"), "w") as f:
            f.write(PARENT_CONFIG)
        os.makedirs(os.path.join(work, "conf"))
        shutil.copy(
            os.path.join(work, "RUN-0", "Configurations", "train_config.yml"),
            os.path.join(work, "conf", "train_config.yaml"),
        )
        for name, text in (
            ("speedrun_job.py", SPEEDRUN_SCRIPT),
            ("pyyaml_job.py", PYYAML_SCRIPT),
            ("hydra_job.py", HYDRA_SCRIPT),
        ):
            with open(os.path.join(work, name), "w") as f:
                f.write(text)
        subprocess.run(["git", "init", "-q"], cwd=work, check=True)
        subprocess.run(
            [
                "git",
                "-c",
                "user.email=b@b",
                "-c",
                "user.name=b",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "bench",
            ],
            cwd=work,
            check=True,
        )
        try:
            import hydra  # noqa: F401 - only checks that hydra is installed

            have_hydra = True
        except ImportError:
            have_hydra = False
        overrides = ["--config.training.lr", "0.01", "--config.model.depth", "50"]
        variants = {
            "pyyaml": lambda i: [
                sys.executable,
                "pyyaml_job.py",
                f"P-{i}",
                "--inherit",
                "RUN-0",
                *overrides,
            ],
            "speedrun": lambda i: [
                sys.executable,
                "speedrun_job.py",
                f"S-{i}",
                "--inherit",
                "RUN-0",
                *overrides,
            ],
        }
        if have_hydra:
            variants["hydra"] = lambda i: [
                sys.executable,
                "hydra_job.py",
                "training.lr=0.01",
                "model.depth=50",
                f"hydra.run.dir=H-{i}",
            ]
        times: dict[str, list[float]] = {name: [] for name in variants}
        for make in variants.values():  # warm the OS caches once
            timed(make("warm"), work)
        for i in range(options.runs):
            for name, make in variants.items():
                times[name].append(timed(make(i), work))

        # Ratios per round (each round runs every variant once, back to back), then their
        # median: robust against the machine's speed drifting during the benchmark.
        def ratio(name: str, against: str = "pyyaml") -> float:
            return statistics.median(a / b for a, b in zip(times[name], times[against]))

        print(
            f"{'variant':10s} {'median ms':>10s} {'ratio vs pyyaml':>16s}   "
            f"({options.runs} rounds; median of per-round ratios)"
        )
        for name, values in times.items():
            print(f"{name:10s} {statistics.median(values) * 1e3:10.1f} {ratio(name):15.2f}x")
        if have_hydra:
            print(f"speedrun is {ratio('hydra', 'speedrun'):.1f}x faster than hydra")
        print("targets: speedrun <= 1.30x pyyaml; >= 5x faster than hydra")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
