"""IOMixin progress bars: nesting and printing in a terminal, no flooding in log files."""

from __future__ import annotations

import contextlib
import io
import os
import re
import time

import pytest

from speedrun import BaseExperiment
from speedrun.mixins.io import IOMixin


class Experiment(BaseExperiment, IOMixin):
    pass


class Terminal(io.StringIO):
    """A text stream that says it is a terminal; :func:`screen` replays what it received."""

    def isatty(self) -> bool:
        return True


def screen(text: str) -> list[str]:
    """What a terminal shows after receiving ``text`` (handles \\r, \\n and cursor-up)."""
    rows: list[list[str]] = [[]]
    row = col = 0
    index = 0
    while index < len(text):
        if text.startswith("\x1b[A", index):
            row, index = max(0, row - 1), index + 3
            continue
        char = text[index]
        index += 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
            while len(rows) <= row:
                rows.append([])
        else:
            line = rows[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = char
            else:
                line.append(char)
            col += 1
    return ["".join(line).rstrip() for line in rows]


@contextlib.contextmanager
def output_to(stream):
    """Send both stdout and stderr to ``stream`` (set inside the test: pytest's capturing
    replaces sys.stdout/sys.stderr between fixture set-up and the test body)."""
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        yield stream


@pytest.fixture
def terminal():
    return Terminal()


@pytest.fixture
def logfile():
    return io.StringIO()  # not a terminal: like a CI log or a SLURM output file


# -- terminal ---------------------------------------------------------------------------------


def test_printing_between_nested_bars_keeps_messages_and_bars_intact(terminal):
    with output_to(terminal):
        exp = Experiment()
        for epoch in exp.progress(range(3), tag="epochs", mininterval=0):
            for step in exp.progress(range(4), tag="steps", mininterval=0):
                exp.log_progress("steps", loss=step)
            exp.print(f"epoch {epoch} done")
        shown = [line for line in screen(terminal.getvalue()) if line]
        assert shown[:3] == ["epoch 0 done", "epoch 1 done", "epoch 2 done"]
        assert re.match(r"epochs: 100%\|.*\| 3/3 ", shown[3])
        assert len(shown) == 4  # inner bars cleared themselves when done


def test_messages_printed_mid_bar_appear_above_the_redrawn_bar(terminal):
    with output_to(terminal):
        exp = Experiment()
        bar = exp.progress(total=10, tag="work", mininterval=0)
        bar.update(4)
        exp.print("halfway message")
        exp.print("through tqdm", printer="tqdm")
        exp.print("custom printer", printer=lambda message: terminal.write(message + "\n"))
        bar.update(6)
        bar.close()
        shown = [line for line in screen(terminal.getvalue()) if line]
        assert shown[:3] == ["halfway message", "through tqdm", "custom printer"]
        assert re.match(r"work: 100%\|.*\| 10/10 ", shown[3])


def test_postfix_from_log_progress_is_shown(terminal):
    with output_to(terminal):
        exp = Experiment()
        bar = exp.progress(range(2), tag="train", mininterval=0)
        for _ in bar:
            exp.log_progress("train", loss=0.25, acc=0.5)
        assert "acc=0.5, loss=0.25" in screen(terminal.getvalue())[0]


# -- not a terminal ---------------------------------------------------------------------------


def test_log_output_has_plain_lines_only_and_does_not_flood(logfile, tmp_path):
    with output_to(logfile):
        exp = Experiment(str(tmp_path / "exp")).print_to_file()
        for epoch in exp.progress(range(3), tag="epochs"):
            for step in exp.progress(range(500), tag="steps"):
                exp.log_progress("steps", loss=step)
            exp.print(f"epoch {epoch} done")
        text = logfile.getvalue()
        assert "\r" not in text and "\x1b" not in text
        lines = text.splitlines()
        # One final line per finished bar and the printed messages: nothing else.
        assert len(lines) == 3 + 3 + 1, lines
        assert [line for line in lines if line.startswith("epoch ")] == [
            f"epoch {i} done" for i in range(3)
        ]
        assert sum(bool(re.match(r"steps: 100%\|.*\| 500/500 .*loss=499", x)) for x in lines) == 3
        assert re.match(r"epochs: 100%\|.*\| 3/3 ", lines[-1])
        with open(os.path.join(exp.log_directory, "stdout"), encoding="utf-8") as handle:
            assert handle.read() == "epoch 0 done\nepoch 1 done\nepoch 2 done\n"
        exp.execute_hooks("clean_up")


def test_log_lines_respect_the_interval(logfile):
    with output_to(logfile):
        exp = Experiment()
        bar = exp.progress(total=40, tag="slow", mininterval=0.05)
        start = time.monotonic()
        for _ in range(40):
            time.sleep(0.005)
            bar.update()
        bar.close()
        elapsed = time.monotonic() - start
        lines = logfile.getvalue().splitlines()
        assert 2 <= len(lines) <= elapsed / 0.05 + 2, lines
        assert all(line.startswith("slow:") for line in lines)
        assert lines[-1].startswith("slow: 100%")
        numbers = [int(re.search(r"\| (\d+)/40", line).group(1)) for line in lines]
        assert numbers == sorted(set(numbers))  # never the same state twice


def test_tqdm_options_override_the_defaults(logfile):
    with output_to(logfile):
        exp = Experiment()
        for _ in exp.progress(range(5), tag="quiet", disable=True):
            pass
        for _ in exp.progress(range(5), desc="named"):
            pass
        lines = logfile.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("named: 100%"), lines


# -- registry and clean-up --------------------------------------------------------------------


def test_tagged_bars_are_kept_and_untagged_ones_are_not(logfile):
    with output_to(logfile):
        exp = Experiment()
        tagged = exp.progress(range(3), tag="a")
        exp.progress(range(3))
        assert exp.progress_bars == {"a": tagged}
        assert exp.log_progress("missing", loss=1) is exp  # no bar: nothing to do


def test_the_originals_iterator_keyword_still_works(logfile):
    with output_to(logfile):
        exp = Experiment()
        assert list(exp.progress(iterator=range(4), tag="legacy")) == [0, 1, 2, 3]


def test_clean_up_closes_bars_left_open_by_an_error(terminal, tmp_path):
    with output_to(terminal):

        class Failing(Experiment):
            def train(self):
                for _ in self.progress(range(5), tag="epochs", mininterval=0):
                    for step in self.progress(range(5), tag="steps", mininterval=0):
                        if step == 2:
                            raise RuntimeError("boom")

        exp = Failing(str(tmp_path / "exp"))
        exp.set_default_dispatch("train")
        with pytest.raises(RuntimeError, match="boom"):
            exp.run()
        assert all(bar.disable for bar in exp.progress_bars.values())  # closed
        shown = [line for line in screen(terminal.getvalue()) if line]
        assert len(shown) == 1 and shown[0].startswith("epochs:   0%")


def test_progress_bars_stay_out_of_checkpoints(logfile, tmp_path):
    with output_to(logfile):
        exp = Experiment(str(tmp_path / "exp"))
        bar = exp.progress(range(3), tag="epochs")
        exp.checkpoint()  # would fail if the bar (locks, streams) were pickled
        bar.close()
        resumed = Experiment(exp.experiment_directory)
        resumed.load_from_checkpoint()
        assert resumed.progress_bars == {}


def test_missing_tqdm_names_the_install(tmp_path, monkeypatch) -> None:
    import sys

    experiment = Experiment(str(tmp_path / "RUN-0"))
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` fails as if missing
    with pytest.raises(ImportError) as caught:
        experiment.progress(range(3))
    assert str(caught.value) == (
        "speedrun-io (progress bars) needs tqdm, which is not installed. "
        "Fix: pip install speedrun-io (or pip install tqdm)"
    )
