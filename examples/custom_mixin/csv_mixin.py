"""A mixin written against speedrun's public API only: metrics rows to ``Logs/<tag>.csv``.

``docs/how-to/write-a-mixin.md`` walks through it; ``python examples/custom_mixin/csv_mixin.py
DIR`` runs the small experiment at the bottom.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from speedrun import (
    BaseExperiment,
    is_main_process,
    register_default_dispatch,
    register_hook,
)
from speedrun.ext import CLEAN_UP, PRE_CHECKPOINT, atomic_write_text, tagged_file


class CSVMixin:
    """``log_row(tag, **values)``: one CSV file per tag under ``Logs/``, written atomically.

    The rows are a plain attribute, so checkpoints keep them and ``--resume`` continues the
    files. They are written before each checkpoint and when the run ends, by the main process.
    """

    def log_row(self: Any, tag: str, **values: float) -> None:
        rows = self.__dict__.setdefault("csv_rows", {})
        rows.setdefault(tag, []).append({"step": self.step, **values})

    def _csv_write(self: Any) -> None:
        if not is_main_process() or self.log_directory is None:
            return
        for tag, rows in self.__dict__.get("csv_rows", {}).items():
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
            path = tagged_file(self.log_directory, tag, suffix=".csv", what="CSV tag")
            atomic_write_text(path, buffer.getvalue())

    # hooks are named constants; a misspelt key fails when the class is created
    register_hook(_csv_write, PRE_CHECKPOINT)
    register_hook(_csv_write, CLEAN_UP)


class Fit(CSVMixin, BaseExperiment):
    @register_default_dispatch
    def train(self) -> None:
        weight = self.get("weight", 0.0)
        while self.step < self.get("num_steps", 10):
            weight -= 0.5 * (weight - 2.0)
            self.log_row("train/fit", weight=weight, error=abs(weight - 2.0))
            self.next_step()
            if self.step == 5:
                self.checkpoint(force=True)  # PRE_CHECKPOINT: Logs/train/fit.csv has 5 rows now
        self.set("weight", weight)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    Fit(sys.argv[1]).run()
    print(Path(sys.argv[1], "Logs", "train", "fit.csv").read_text(), end="")
