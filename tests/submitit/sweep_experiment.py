"""A small plain-Python experiment for the sweep tests (no torch: jobs start fast).

Each step adds ``training/lr * random.random()`` to ``total`` (Python's generator, seeded with
``seed``) and sleeps ``training/sleep`` seconds. At the end it writes ``Logs/result.json``: the
total (equal to a direct computation only if every resume restored the random state), the
(step, attempt) at which each job started, the swept values and the final step.
``training/fail_at`` raises after that step; ``training/preempt_at`` requests a preemption.
"""

from __future__ import annotations

import json
import os
import random
import time

from speedrun import BaseExperiment, is_main_process, register_default_dispatch
from speedrun import request_preemption as request
from speedrun.ext import atomic_write_text
from speedrun.mixins.submitit import SubmititMixin


class SweepExperiment(BaseExperiment, SubmititMixin):
    def __init__(self) -> None:
        super().__init__()
        self.auto_setup()
        random.seed(self.get("seed", 0))
        self.total = 0.0
        self.starts: list[list[int]] = []

    @register_default_dispatch
    def train(self) -> float:
        self.starts.append([self.step, self.job_attempt])
        lr, sleep = self.get("training/lr"), self.get("training/sleep", 0.0)
        for _ in range(self.step, self.get("training/num_steps")):
            self.total += lr * random.random()
            time.sleep(sleep)
            if self.step + 1 == self.get("training/preempt_at"):
                request()
            self.next_step()
            self.checkpoint(force=False)
            if self.step == self.get("training/fail_at"):
                raise ValueError(f"failing at step {self.step} as asked")
        result = {
            "total": self.total,
            "starts": self.starts,
            "step": self.step,
            "overrides": self.sweep_overrides,
            "point": (self.sweep_point or {}).get("point"),
            "job_id": self.job_id,
        }
        if is_main_process():
            atomic_write_text(os.path.join(self.log_directory, "result.json"), json.dumps(result))
        return self.total


if __name__ == "__main__":
    SweepExperiment().run()
