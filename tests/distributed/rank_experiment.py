"""A plain-Python experiment that the tests start as several processes (RANK, WORLD_SIZE set).

Each rank seeds Python's ``random`` with its rank and draws one number per step, so a resumed
rank draws exactly what an uninterrupted one would only if its own random state came back.
Writes ``$TEST_OUT/rank<r>.json`` (its config, first step, draws) when training ends.
``TEST_MAIN_DELAY`` delays rank 0 before ``auto_setup()``, ``TEST_FOLLOWER_DELAY`` the other
ranks after it; ``TEST_CRASH_AT`` raises after that step on every rank.
"""

from __future__ import annotations

import json
import os
import random
import time

from speedrun import BaseExperiment, get_rank, register_default_dispatch


class RankExperiment(BaseExperiment):
    def __init__(self) -> None:
        super().__init__()
        delay = float(os.environ.get("TEST_MAIN_DELAY", "0"))
        if delay and get_rank() == 0:
            time.sleep(delay)
        self.auto_setup()
        delay = float(os.environ.get("TEST_FOLLOWER_DELAY", "0"))
        if delay and get_rank() != 0:  # rank 0 trains on (and saves newer checkpoints) meanwhile
            time.sleep(delay)
        random.seed(get_rank())
        self.rank_at_save = get_rank()  # checkpointed by rank 0: loads as 0 on every rank

    @register_default_dispatch
    def train(self) -> None:
        first, draws = self.step, []
        for _ in range(self.step, self.get("training/num_steps")):
            draws.append(random.random())
            self.next_step()
            self.checkpoint(force=False)
            if self.step == int(os.environ.get("TEST_CRASH_AT", "-1")):
                raise RuntimeError(f"crash requested at step {self.step}")
        result = {
            "config": self._config,
            "first_step": first,
            "draws": draws,
            "step": self.step,
            "rank_at_save": self.rank_at_save,
        }
        with open(os.path.join(os.environ["TEST_OUT"], f"rank{get_rank()}.json"), "w") as handle:
            json.dump(result, handle)


if __name__ == "__main__":
    RankExperiment().run()
