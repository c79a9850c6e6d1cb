"""Each distribution's README "Config keys" table is what its code declares (CONFIG_KEYS)."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "config_keys.py"


def test_the_tables_are_current(capsys) -> None:
    main = runpy.run_path(str(SCRIPT))["main"]
    code = main(["--check"])
    assert code == 0, capsys.readouterr().err


def test_the_table_lists_each_declared_key() -> None:
    namespace = runpy.run_path(str(SCRIPT))
    rows = namespace["declared_rows"](ROOT / "packages" / "speedrun-core")
    text = namespace["table"](rows)
    assert "| `training/checkpoint_every` | `None` | int or float or null |" in text
    stale = "<!-- config-keys:start -->\nold\n<!-- config-keys:end -->"
    assert namespace["updated"](stale, rows) == (
        f"<!-- config-keys:start -->\n{text}\n<!-- config-keys:end -->"
    )
    assert namespace["updated"]("no block", rows) is None
