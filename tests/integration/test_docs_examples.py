"""The mixin of docs/how-to/write-a-mixin.md (examples/custom_mixin/csv_mixin.py) runs as shown."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "custom_mixin" / "csv_mixin.py"


def test_the_csv_mixin_example_writes_its_rows(tmp_path):
    run = tmp_path / "RUN-0"
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(run)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with (run / "Logs" / "train" / "fit.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(row["step"]) for row in rows] == list(range(10))
    assert float(rows[-1]["error"]) < 0.01
    assert result.stdout.splitlines()[0] == "step,weight,error"
    assert list((run / "Weights").glob("checkpoint_iter_5*")), sorted(
        p.name for p in run.rglob("*")
    )
